# test_harness.sh — self-test of tests/harness/lib.sh and the clinic dataset: two
# independent PostgreSQL 15 clusters, wal2json usable on the source, the dataset
# loaded as documented (counts, gaps, stale rows, awkward values), real foreign
# keys in the target, and the target stoppable alone.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target
wb_check "source and target listen on different ports" test "$SOURCE_PORT" != "$TARGET_PORT"
wb_eq "source runs with wal_level=logical" logical "$(wb_psql source -c 'SHOW wal_level')"
wb_eq "server is PostgreSQL 15" 15 "$(wb_psql source -c 'SHOW server_version_num' | cut -c1-2)"

# wal2json: a slot can be created and its changes read in format-version 2.
wb_psql source -c "CREATE TABLE harness_probe (id int PRIMARY KEY, v text)"
wb_psql source -c "SELECT 1 FROM pg_create_logical_replication_slot('harness_x', 'wal2json')" >/dev/null
wb_psql source -c "INSERT INTO harness_probe VALUES (1, 'zoë ''q''')"
changes=$(wb_psql source -c "SELECT data FROM pg_logical_slot_get_changes('harness_x', NULL, NULL,
    'format-version', '2', 'add-tables', 'public.harness_probe')")
wb_contains "wal2json v2 reports the insert" "$changes" '"action":"I"'
wb_contains "wal2json v2 carries the value" "$changes" "zoë 'q'"
wb_psql source -c "SELECT pg_drop_replication_slot('harness_x')" >/dev/null
wb_psql source -c "DROP TABLE harness_probe"

# The clinic dataset at scale 1.
wb_load_clinic source 1
wb_load_clinic target 1
expected="offices=4 profiles=100 doctors=20 patients=300 orders=700 order_tags=700 audit_log=100"
actual=""
for t in offices profiles doctors patients orders order_tags audit_log; do
    actual+="$t=$(wb_psql source -c "SELECT count(*) FROM $t") "
done
wb_eq "source row counts at scale 1" "$expected" "${actual% }"
total=$(wb_psql source -c "SELECT (SELECT count(*) FROM offices) + (SELECT count(*) FROM profiles)
    + (SELECT count(*) FROM doctors) + (SELECT count(*) FROM patients) + (SELECT count(*) FROM orders)
    + (SELECT count(*) FROM order_tags) + (SELECT count(*) FROM audit_log)")
wb_check "scale 1 is about 2k rows ($total)" test "$total" -ge 1800 -a "$total" -le 2200

for t in offices profiles doctors patients orders order_tags audit_log; do
    s=$(wb_psql source -c "SELECT count(*) FROM $t")
    m=$(wb_psql target -c "SELECT count(*) FROM $t")
    wb_check "target $t has the migrated part only ($m of $s)" test "$m" -gt 0 -a "$m" -lt "$s"
done
wb_eq "patients: legacy row 97 is a gap in the target" 0 \
    "$(wb_psql target -c 'SELECT count(*) FROM patients WHERE legacy_id = 97')"
wb_eq "patients: rows beyond the cutoff are missing" 0 \
    "$(wb_psql target -c 'SELECT count(*) FROM patients WHERE legacy_id > 240')"
wb_eq "patients: row 50 is stale in the target" "stale-50@example.org" \
    "$(wb_psql target -c 'SELECT email FROM patients WHERE legacy_id = 50')"
wb_eq "orders: target UUID parents match the source's legacy parents" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM orders o JOIN patients p ON p.id = o.patient_id
        WHERE p.legacy_id <> 1 + (o.legacy_id * 31) % 240")"
wb_eq "profiles: self-reference resolved through legacy_id" 1 \
    "$(wb_psql target -c "SELECT r.legacy_id FROM profiles p JOIN profiles r ON r.id = p.referred_by
        WHERE p.legacy_id = 3")"

# Awkward values are really there, exactly.
wb_eq "orders.external_ref past 2^53 is exact" "$((9007199254740993 + 2 * 1000003))" \
    "$(wb_psql source -c 'SELECT external_ref FROM orders WHERE id = 2')"
wb_eq "orders.total_precise numeric(20,4) is exact" "9007199254740002.0002" \
    "$(wb_psql source -c 'SELECT total_precise FROM orders WHERE id = 2')"
wb_check "orders.notes has out-of-line TOAST values" test \
    "$(wb_psql source -c "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'orders'")" -gt 0
wb_eq "audit_log has REPLICA IDENTITY FULL" f \
    "$(wb_psql source -c "SELECT relreplident FROM pg_class WHERE relname = 'audit_log'")"
wb_eq "audit_log contains duplicate rows" 10 \
    "$(wb_psql source -c "SELECT count(*) FROM (SELECT a FROM audit_log a GROUP BY a HAVING count(*) > 1) d")"
wb_eq "source ids continue after the loaded rows" 301 \
    "$(wb_psql source -c "INSERT INTO patients (office_id, full_name) VALUES (1, 'new') RETURNING id")"

# The target has real foreign keys (to id) and unique legacy_id, like a live Supabase target.
wb_eq "target has 8 foreign-key constraints" 8 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_constraint WHERE contype = 'f'
        AND connamespace = 'public'::regnamespace")"
wb_eq "target legacy_id is UNIQUE in the 5 UUID-mapped tables" 5 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_constraint WHERE contype = 'u'
        AND connamespace = 'public'::regnamespace")"
wb_check "target rejects an order whose patient does not exist" bash -c \
    "! psql -X -q -d '$TARGET_DSN' -c \"INSERT INTO orders (legacy_id, patient_id) VALUES (-1, gen_random_uuid())\" 2>/dev/null"
wb_psql target -c "UPDATE patients SET email = email WHERE legacy_id = 1"
wb_eq "the target's application trigger fires for ordinary writes" 1 \
    "$(wb_psql target -c 'SELECT count(*) FROM patient_changes')"

# Config writer.
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" '"stream": { "batch_max_rows": 50 }'
wb_eq "wb_write_config lists the 7 clinic tables" 7 "$(jq '.tables | length' "$cfg")"
wb_eq "order_tags is identity-mapped on a composite key" '["order_id","tag"]' \
    "$(jq -c '.tables[] | select(.source == "public.order_tags") | .key' "$cfg")"
wb_eq "audit_log is keyless" null "$(jq -c '.tables[] | select(.source == "public.audit_log") | .key' "$cfg")"
wb_eq "extra members are added" 50 "$(jq '.stream.batch_max_rows' "$cfg")"

# Clusters are independent: stopping the target leaves the source running.
wb_pg_stop target
wb_check "target is down after wb_pg_stop" bash -c "! pg_isready -q -h 127.0.0.1 -p $TARGET_PORT"
wb_eq "source still answers" 1 "$(wb_psql source -c 'SELECT 1')"
wb_pg_start_again target
wb_wait_for "target is back on the same port" 30 wb_psql target -c 'SELECT 1'

# wb_run captures exit code and output, never aborting.
if [[ -x $WALBRIDGE_BIN ]]; then
    wb_run version
    wb_eq "walbridge version exits 0" 0 "$WB_RC"
    wb_contains "walbridge version prints its name" "$WB_OUT" "walbridge"
    wb_run no-such-command
    wb_eq "an unknown command is a usage error (exit 2)" 2 "$WB_RC"
fi

wb_finish
