#!/usr/bin/env bash
# test_backfill_basic.sh — walbridge backfill on the clinic dataset: scattered
# missing rows, stale rows, old and new parents, a child whose parent is missing
# too, self-reference, the composite-key identity table, the keyless audit table
# with duplicate rows, NULL references, exact round-trip of every column type;
# the slot handoff is recorded; existing UUIDs are kept, new ones are UUIDv5;
# --dry-run writes nothing; a second run copies nothing.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 2
wb_load_clinic target 2
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"

# Rows the original migration never saw, with awkward values of every type.
wb_psql source <<'SQL'
INSERT INTO profiles (id, email, full_name, referred_by, balance, settings, created_at) VALUES
  (10001, 'new@example.org', 'Zoë Ñew "one"', NULL, 12345678901234.5678,
   '{"lang": "ελληνικά", "big": 123456789012345678901234567890, "nested": {"a": [1, null, "x\ty"]}}',
   '2024-02-29 23:59:59.123456+00'),
  (10002, 'child@example.org', 'Child of new', 10001, -0.0001, NULL, '1999-12-31 23:00:00+00'),
  (10003, 'old-ref@example.org', 'Refers to an old profile', 1, 0, '[]', '2020-01-01 00:00:00+00');
INSERT INTO orders (id, patient_id, doctor_id, status, notes, amount, total_precise, external_ref,
                    placed_at, items, tags, attachment) VALUES
  (900001, 1, NULL, 'new', E'tab\there "quotes" back\\slash\nnewline ünïcødé 🚀', 0.10,
   1234567890123456.7891, 9007199254740993, '2024-02-29 12:34:56.789012+00',
   '{"n": 12345678901234567890, "a": [1, "x", null]}', ARRAY['a b', 'c,d', NULL, '"q"', ''],
   '\x00ff5c0a0d'),
  (900002, 1, 1, 'paid', NULL, NULL, NULL, -9223372036854775808, NULL, NULL, '{}', '\x');
INSERT INTO order_tags (order_id, tag, added_at) VALUES
  (900001, 'é-tag', '2024-01-01 00:00:00+00'), (900001, 'tag with\ttab', '2024-01-01 00:00:01+00');
INSERT INTO audit_log (happened_at, actor, action, detail) VALUES
  ('2024-03-01 00:00:00+00', 'dup', 'same', '{"k": 1}'),
  ('2024-03-01 00:00:00+00', 'dup', 'same', '{"k": 1}'),
  ('2024-03-01 00:00:00+00', 'dup', 'same', '{"k": 1}'),
  ('2024-03-01 00:00:00+00', 'nul', 'detail', NULL);
SQL

declare -A before
for t in $BF_TABLES; do before[$t]=$(bf_count target "$t"); done

# ---- verify before: differences, named
wb_run -c "$cfg" verify --show 2
wb_eq "verify before backfill exits 1" 1 "$WB_RC"
wb_contains "verify names a missing order" "$WB_OUT" "missing:"

# ---- dry run: the diff, nothing written
wb_run -c "$cfg" backfill --dry-run
wb_eq "dry run exits 0" 0 "$WB_RC"
wb_contains "dry run says nothing was written" "$WB_OUT" "nothing was written"
wb_check "dry run reports missing orders" test "$(awk '$1 == "public.orders" {print $4}' <<<"$WB_OUT")" -gt 0
wb_check "dry run compares rows: stale profiles reported" test "$(awk '$1 == "public.profiles" {print $5}' <<<"$WB_OUT")" -gt 0
wb_eq "dry run created no slot" 0 "$(wb_psql source -c "SELECT count(*) FROM pg_replication_slots")"
wb_eq "dry run created no state schema" 0 "$(wb_psql target -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'walbridge'")"
changed=0
for t in $BF_TABLES; do [[ $(bf_count target "$t") == "${before[$t]}" ]] || changed=1; done
wb_eq "dry run changed no target row count" 0 "$changed"

# Remember the UUIDs the original migration gave.
wb_psql target -c "CREATE SCHEMA testcheck; CREATE TABLE testcheck.pre_ids AS
  SELECT 'offices' AS tbl, legacy_id, id FROM offices UNION ALL
  SELECT 'profiles', legacy_id, id FROM profiles UNION ALL
  SELECT 'doctors', legacy_id, id FROM doctors UNION ALL
  SELECT 'patients', legacy_id, id FROM patients UNION ALL
  SELECT 'orders', legacy_id, id FROM orders; CREATE EXTENSION \"uuid-ossp\";"
stale_before=$(wb_psql target -c "SELECT count(*) FROM profiles WHERE full_name LIKE '% (old)'")

# ---- first run: missing rows only
wb_run -c "$cfg" backfill
wb_eq "backfill exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 20
wb_check "backfill copied rows" test "$(bf_summary_sum 4)" -gt 0
wb_eq "without --include-stale rows are not compared: stale column says -" "-" \
    "$(awk '$1 == "public.profiles" {print $5}' <<<"$WB_OUT")"
wb_eq "slot created with wal2json" "wal2json" "$(wb_psql source -c "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'walbridge'")"
slot_lsn=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walbridge'")
wb_eq "stream start recorded at the slot's consistent point" "$slot_lsn" \
    "$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'walbridge'")"
wb_eq "backfill_run row: done, with the consistent point" "done|$slot_lsn" \
    "$(wb_psql target -c "SELECT status, consistent_lsn FROM walbridge.backfill_run ORDER BY run_id DESC LIMIT 1")"
wb_contains "log names the consistent point" "$WB_ERR" "consistent point $slot_lsn"

wb_eq "existing rows kept their UUIDs" 0 "$(wb_psql target -c "
  SELECT count(*) FROM testcheck.pre_ids p WHERE NOT EXISTS (
    SELECT 1 FROM (SELECT 'offices' tbl, legacy_id, id FROM offices UNION ALL
                   SELECT 'profiles', legacy_id, id FROM profiles UNION ALL
                   SELECT 'doctors', legacy_id, id FROM doctors UNION ALL
                   SELECT 'patients', legacy_id, id FROM patients UNION ALL
                   SELECT 'orders', legacy_id, id FROM orders) n
    WHERE n.tbl = p.tbl AND n.legacy_id = p.legacy_id AND n.id = p.id)")"
for t in $BF_UUID_TABLES; do
    res=$(wb_psql target -c "SELECT count(*), count(*) FILTER (WHERE id <> uuid_generate_v5('$WB_UUID_NAMESPACE', 'public.$t:' || legacy_id))
        FROM $t WHERE legacy_id NOT IN (SELECT legacy_id FROM testcheck.pre_ids WHERE tbl = '$t')")
    wb_check "$t: new rows exist and all have UUIDv5(namespace, 'public.$t:<key>') ($res)" \
        test "${res%|*}" -gt 0 -a "${res#*|}" -eq 0
done
wb_eq "new profile refers to its new referrer's UUIDv5" \
    "$(wb_psql target -c "SELECT uuid_generate_v5('$WB_UUID_NAMESPACE', 'public.profiles:10001')")" \
    "$(wb_psql target -c "SELECT referred_by FROM profiles WHERE legacy_id = 10002")"
wb_eq "new profile refers to an old referrer's original random UUID" \
    "$(wb_psql target -c "SELECT id FROM testcheck.pre_ids WHERE tbl = 'profiles' AND legacy_id = 1")" \
    "$(wb_psql target -c "SELECT referred_by FROM profiles WHERE legacy_id = 10003")"
wb_eq "NULL reference stays NULL" "t" "$(wb_psql target -c "SELECT doctor_id IS NULL FROM orders WHERE legacy_id = 900001")"
wb_eq "no dangling uuid reference" 0 "$(bf_orphans)"
wb_eq "stale rows are not overwritten without --include-stale" "$stale_before" \
    "$(wb_psql target -c "SELECT count(*) FROM profiles WHERE full_name LIKE '% (old)'")"
wb_eq "keyless table: all three duplicate rows copied" 3 "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'dup'")"

wb_run -c "$cfg" verify --format json
wb_eq "verify after first run: only stale rows differ (exit 1)" 1 "$WB_RC"
wb_eq "verify after first run: nothing missing or extra" 0 "$(jq '[.tables[] | .missing + .extra] | add' <<<"$WB_OUT")"
wb_check "verify after first run: stale rows reported" test "$(jq '[.tables[].differing] | add' <<<"$WB_OUT")" -gt 0

# ---- second run: stale rows too; with the target analyzed, the few staged rows probe
# their parents' legacy-key indexes instead of hashing the parent tables
wb_psql target -c "ANALYZE" >/dev/null
wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill --include-stale exits 0" 0 "$WB_RC"
wb_contains "a small batch probes its parents' indexes" "$(cat "$WB_TMP/walbridge.log")" \
    "staged rows probe their parents' legacy-key indexes"
wb_contains "re-run notes the existing slot" "$WB_ERR" "exists already"
wb_eq "re-run copies no new row" 0 "$(bf_summary_sum 4)"
wb_check "re-run fixed stale rows" test "$(bf_summary_sum 5)" -gt 0
for t in $BF_TABLES; do
    wb_check "$t: source and target rows equal through the mapping" bf_same_table "$t"
done
wb_eq "special values survive exactly" \
    '9007199254740993|1234567890123456.7891|0.10|{"a b","c,d",NULL,"\"q\"",""}|\x00ff5c0a0d' \
    "$(wb_psql target -c "SELECT external_ref, total_precise, amount, tags, attachment FROM orders WHERE legacy_id = 900001")"
wb_eq "no dangling uuid reference after stale fixes" 0 "$(bf_orphans)"
wb_run -c "$cfg" verify
wb_eq "verify after --include-stale exits 0" 0 "$WB_RC"
wb_contains "verify says identical" "$WB_OUT" "identical"

# ---- third run: nothing to do
for t in $BF_TABLES; do before[$t]=$(bf_count target "$t"); done
wb_run -c "$cfg" backfill
wb_eq "third run exits 0" 0 "$WB_RC"
wb_eq "third run copies nothing" 0 "$(bf_summary_sum 4)"
changed=0
for t in $BF_TABLES; do [[ $(bf_count target "$t") == "${before[$t]}" ]] || changed=1; done
wb_eq "third run changed no row count" 0 "$changed"

wb_finish
