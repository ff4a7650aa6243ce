# clinic_config.sh — writes a walbridge.json for the clinic dataset
# (tests/fixtures/clinic).  Sourced by lib.sh (tests), deploy/demo.sh and bench/.
# Only functions and constants; no shell options or traps.
#
#   wb_write_config FILE [--slot S] [--tables t1,t2] [--log-level L] [--log-file F]
#                   ['"member": VALUE' ...]
# uses SOURCE_DSN and TARGET_DSN; the log goes to $WB_TMP/walbridge.log by default.

# The clinic tables in config-file order, as JSON objects (one per line).
wb__clinic_table_json() {
    local m='"key": "id", "target_key": "id", "legacy_key": "legacy_id"'
    case $1 in
    offices) echo "{ \"source\": \"public.offices\", \"target\": \"public.offices\", $m }" ;;
    profiles)
        echo "{ \"source\": \"public.profiles\", \"target\": \"public.profiles\", $m,"
        echo "  \"references\": { \"referred_by\": \"public.profiles\" } }"
        ;;
    doctors)
        echo "{ \"source\": \"public.doctors\", \"target\": \"public.doctors\", $m,"
        echo "  \"references\": { \"office_id\": \"public.offices\", \"profile_id\": \"public.profiles\" } }"
        ;;
    patients)
        echo "{ \"source\": \"public.patients\", \"target\": \"public.patients\", $m,"
        echo "  \"references\": { \"office_id\": \"public.offices\", \"doctor_id\": \"public.doctors\" } }"
        ;;
    orders)
        echo "{ \"source\": \"public.orders\", \"target\": \"public.orders\", $m,"
        echo "  \"references\": { \"patient_id\": \"public.patients\", \"doctor_id\": \"public.doctors\" } }"
        ;;
    order_tags)
        echo "{ \"source\": \"public.order_tags\", \"target\": \"public.order_tags\","
        echo "  \"key\": [\"order_id\", \"tag\"], \"references\": { \"order_id\": \"public.orders\" } }"
        ;;
    audit_log) echo "{ \"source\": \"public.audit_log\", \"target\": \"public.audit_log\" }" ;;
    *)
        echo "wb_write_config: unknown clinic table '$1'" >&2
        return 1
        ;;
    esac
}

WB_CLINIC_TABLES="offices,profiles,doctors,patients,orders,order_tags,audit_log"
WB_UUID_NAMESPACE="0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42"

# wb_write_config FILE [--slot S] [--tables t1,t2 | --tables-json JSON] [--log-level L]
#                 [--log-file F] ['"member": VALUE' ...]
# Writes a walbridge.json for the clinic dataset using SOURCE_DSN and TARGET_DSN;
# --tables-json gives the "tables" array itself instead (a test's own tables).
# Extra arguments are raw JSON members added to the top-level object, e.g.
#   wb_write_config "$cfg" '"stream": { "batch_max_rows": 50 }'
wb_write_config() {
    local file=$1 slot=walbridge tables=$WB_CLINIC_TABLES tables_json="" level=debug
    local logfile=${WB_TMP:-.}/walbridge.log extra=() t first=1
    shift
    while (($#)); do
        case $1 in
        --slot) slot=$2; shift 2 ;;
        --tables) tables=$2; shift 2 ;;
        --tables-json) tables_json=$2; shift 2 ;;
        --log-level) level=$2; shift 2 ;;
        --log-file) logfile=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
        esac
    done
    {
        echo "{"
        echo "  \"source\": { \"dsn\": \"${SOURCE_DSN:?wb_write_config: start the source first}\" },"
        echo "  \"target\": { \"dsn\": \"${TARGET_DSN:?wb_write_config: start the target first}\" },"
        echo "  \"slot\": \"$slot\","
        echo "  \"state_schema\": \"walbridge\","
        echo "  \"uuid_namespace\": \"$WB_UUID_NAMESPACE\","
        echo "  \"log\": { \"file\": \"$logfile\", \"level\": \"$level\", \"format\": \"text\" },"
        for t in "${extra[@]}"; do
            echo "  $t,"
        done
        if [[ -n $tables_json ]]; then
            echo "  \"tables\": $tables_json"
        else
            echo "  \"tables\": ["
            for t in ${tables//,/ }; do
                ((first)) || echo ","
                first=0
                wb__clinic_table_json "$t" | sed 's/^/    /' | sed -z 's/\n$//'
            done
            printf '\n  ]\n'
        fi
        echo "}"
    } >"$file"
    if command -v jq >/dev/null 2>&1 && ! jq -e . "$file" >/dev/null; then
        echo "wb_write_config: wrote invalid JSON to $file" >&2
        return 1
    fi
}

