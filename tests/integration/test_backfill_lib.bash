# test_backfill_lib.bash — helpers shared by the backfill and verify integration
# tests (sourced after tests/harness/lib.sh; not a test itself).
#
# bf_same_table T compares one clinic table between source and target through the
# mapping with queries written here, independently of walbridge's own SQL: the
# target's uuid keys and references are translated back to legacy ids by joins.

export PGOPTIONS="-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3 -c bytea_output=hex"

bf_source_sql() {
    case $1 in
    offices) echo "SELECT id, name, city, phone, opened_on, created_at FROM offices" ;;
    profiles) echo "SELECT id, email, full_name, referred_by, balance, settings, created_at FROM profiles" ;;
    doctors) echo "SELECT id, office_id, profile_id, specialty, license_no, rating, active, since FROM doctors" ;;
    patients) echo "SELECT id, office_id, doctor_id, full_name, email, birth_date, metadata FROM patients" ;;
    orders) echo "SELECT id, patient_id, doctor_id, status, notes, amount, total_precise, external_ref, placed_at, items, tags, attachment FROM orders" ;;
    order_tags) echo "SELECT order_id, tag, added_at FROM order_tags" ;;
    audit_log) echo "SELECT happened_at, actor, action, detail FROM audit_log" ;;
    esac
}

bf_target_sql() {
    case $1 in
    offices) echo "SELECT legacy_id, name, city, phone, opened_on, created_at FROM offices" ;;
    profiles) echo "SELECT p.legacy_id, p.email, p.full_name, r.legacy_id, p.balance, p.settings, p.created_at FROM profiles p LEFT JOIN profiles r ON r.id = p.referred_by" ;;
    doctors) echo "SELECT d.legacy_id, o.legacy_id, p.legacy_id, d.specialty, d.license_no, d.rating, d.active, d.since FROM doctors d LEFT JOIN offices o ON o.id = d.office_id LEFT JOIN profiles p ON p.id = d.profile_id" ;;
    patients) echo "SELECT x.legacy_id, o.legacy_id, d.legacy_id, x.full_name, x.email, x.birth_date, x.metadata FROM patients x LEFT JOIN offices o ON o.id = x.office_id LEFT JOIN doctors d ON d.id = x.doctor_id" ;;
    orders) echo "SELECT x.legacy_id, p.legacy_id, d.legacy_id, x.status, x.notes, x.amount, x.total_precise, x.external_ref, x.placed_at, x.items, x.tags, x.attachment FROM orders x LEFT JOIN patients p ON p.id = x.patient_id LEFT JOIN doctors d ON d.id = x.doctor_id" ;;
    order_tags) echo "SELECT o.legacy_id, t.tag, t.added_at FROM order_tags t LEFT JOIN orders o ON o.id = t.order_id" ;;
    audit_log) echo "SELECT happened_at, actor, action, detail FROM audit_log" ;;
    esac
}

# bf_dump SIDE TABLE: the rows in source form as sorted COPY text.
bf_dump() {
    local sql
    if [[ $1 == source ]]; then sql=$(bf_source_sql "$2"); else sql=$(bf_target_sql "$2"); fi
    wb_psql "$1" -c "COPY ($sql) TO STDOUT" | LC_ALL=C sort
}

# bf_same_table TABLE: true when both sides hold the same rows; the diff is kept in
# $WB_TMP/diff.TABLE and its head printed on a mismatch.
bf_same_table() {
    local t=$1
    if diff <(bf_dump source "$t") <(bf_dump target "$t") >"$WB_TMP/diff.$t"; then
        return 0
    fi
    head -n 6 "$WB_TMP/diff.$t" | sed 's/^/       /'
    return 1
}

# bf_orphans: target rows whose uuid reference points at no parent row (FK checks are
# skipped under session_replication_role = replica, so this must be checked).
bf_orphans() {
    wb_psql target -c "SELECT
        (SELECT count(*) FROM profiles c WHERE c.referred_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = c.referred_by))
      + (SELECT count(*) FROM doctors c WHERE NOT EXISTS (SELECT 1 FROM offices p WHERE p.id = c.office_id))
      + (SELECT count(*) FROM doctors c WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = c.profile_id))
      + (SELECT count(*) FROM patients c WHERE NOT EXISTS (SELECT 1 FROM offices p WHERE p.id = c.office_id))
      + (SELECT count(*) FROM patients c WHERE c.doctor_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM doctors p WHERE p.id = c.doctor_id))
      + (SELECT count(*) FROM orders c WHERE NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = c.patient_id))
      + (SELECT count(*) FROM orders c WHERE c.doctor_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM doctors p WHERE p.id = c.doctor_id))
      + (SELECT count(*) FROM order_tags c WHERE NOT EXISTS (SELECT 1 FROM orders p WHERE p.id = c.order_id))"
}

# bf_summary_sum COLUMN: sums one numeric column of backfill's summary table ($WB_OUT).
bf_summary_sum() {
    awk -v c="$1" '$1 ~ /^public\./ { s += $c } END { print s + 0 }' <<<"$WB_OUT"
}

# bf_count SIDE TABLE
bf_count() {
    wb_psql "$1" -c "SELECT count(*) FROM $2"
}

BF_TABLES="offices profiles doctors patients orders order_tags audit_log"
BF_UUID_TABLES="offices profiles doctors patients orders"

# Scenarios that each use their own database on the target cluster: call
# bf_target_databases once after starting the target, then new_target per scenario.
bf_target_databases() {
    TARGET_POSTGRES_DSN=$TARGET_DSN
}

# new_target DB SLOT: an empty clinic target (target_schema.sql only) in database DB,
# TARGET_DSN pointing at it (so wb_psql target and the bf_* helpers follow), and
# $WB_TMP/DB.json (config $cfg) with slot SLOT.
new_target() {
    TARGET_DSN=$TARGET_POSTGRES_DSN
    wb_psql target -c "CREATE DATABASE $1"
    TARGET_DSN="${TARGET_POSTGRES_DSN/dbname=postgres/dbname=$1}"
    export TARGET_DSN
    wb_psql target -f "$WB_FIXTURES/clinic/target_schema.sql"
    cfg=$WB_TMP/$1.json
    wb_write_config "$cfg" --slot "$2" --log-level info
}

# schema_dump: the target's public schema as pg_dump prints it, without comments,
# blank lines and the per-dump random \restrict key.
schema_dump() {
    pg_dump -s -n public -d "$TARGET_DSN" | grep -Ev '^(--|\\restrict|\\unrestrict|$)'
}

# bf_writer_during LABEL SIDE TABLE MODE SQL OUT: another writer on SIDE, in the
# background (BF_WRITER_PID): it takes LOCK TABLE TABLE IN MODE (e.g. SHARE), runs
# SQL, waits until some session waits for that lock (at most 60 s), writes
# "waiter: <query>" of the waiting sessions to OUT and commits.  Returns once it
# holds the lock (checked as LABEL), so what runs next meets it.
bf_writer_during() {
    local label=$1 side=$2 table=$3 mode=$4 sql=$5 out=$6 lockname
    lockname=$(sed -E 's/(^| )([A-Z])([A-Z]*)/\2\L\3/g' <<<"$mode")Lock
    wb_psql "$side" >"$out" 2>&1 <<SQL &
BEGIN;
LOCK TABLE $table IN $mode MODE;
$sql;
DO \$\$ BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM pg_locks WHERE relation = '$table'::regclass AND NOT granted);
        PERFORM pg_sleep(0.1);
    END LOOP;
END \$\$;
SELECT 'waiter: ' || query FROM pg_stat_activity WHERE wait_event_type = 'Lock'
    AND datname = current_database() AND pid <> pg_backend_pid();
COMMIT;
SQL
    BF_WRITER_PID=$!
    bf__writer_holds_lock() {
        [[ $(wb_psql "$side" -c "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = '$table'::regclass
            AND mode = '$lockname' AND granted)") == t ]]
    }
    wb_wait_for "$label" 30 bf__writer_holds_lock || true
}
