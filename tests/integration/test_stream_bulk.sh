#!/usr/bin/env bash
# test_stream_bulk.sh — the stream applier's bulk path (cdc/apply_bulk.c): long runs of
# inserts into one table inside one source transaction go through COPY + one set-based
# upsert.  One transaction of 70k+ rows: new parents, then children referencing old
# parents (one of them migrated earlier with a non-UUIDv5 id), parents inserted earlier
# in the same transaction, and NULL references; an insert of a key the target already
# holds (source wins: updated, keeps its UUID, counted as a conflict); every clinic
# column type (bigint past 2^53, numeric, bytea, arrays, jsonb, timestamptz, NULLs);
# a stored generated column that must never be written; a composite-key table.
# Compared with the source through the UUID mapping, as a user would.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/stream_lib.bash"

wb_clinic_start --schema-only
for side in source target; do
    wb_psql "$side" -c "ALTER TABLE patients ADD COLUMN email_lc text GENERATED ALWAYS AS (lower(email)) STORED"
done
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"
wb_psql target -c 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"' # only to check UUIDv5 below

wb_run -c "$cfg" stream --create-slot --until-caught-up
wb_eq "--create-slot --until-caught-up exits 0" 0 "$WB_RC"

# A parent the original migration created: its UUID is not UUIDv5 and must be kept.
wb_psql target -c "INSERT INTO offices (id, legacy_id, name) VALUES ('11111111-1111-4111-8111-111111111111', 3, 'migrated')"
# Old parents, applied on the row path (small transactions).
wb_psql source -c "
    INSERT INTO offices (id, name, city) SELECT g, 'office ' || g, 'city' FROM generate_series(1, 10) g;
    INSERT INTO profiles (id, email, full_name) SELECT g, 'p' || g || '@x', 'P ' || g FROM generate_series(1, 10) g;
    INSERT INTO doctors (id, office_id, profile_id, license_no) SELECT g, g, g, 'L' || g FROM generate_series(1, 10) g;"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "old parents streamed" 0 "$WB_RC"
# A row the target already holds (migrated with its own UUID): the big insert updates it.
wb_psql target -c "INSERT INTO offices (id, legacy_id, name) VALUES ('22222222-2222-4222-8222-222222222222', 1500, 'stale')"

# One source transaction: 2000 offices (one conflicting), 70000 patients, 3000 orders,
# 3000 order tags.
wb_psql source -c "
BEGIN;
INSERT INTO offices (id, name, city, phone, opened_on, created_at)
    SELECT g, 'office ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\there' END, NULL,
           date '2020-01-01' + g, timestamptz '2024-02-29 12:34:56.789012+00' + g * interval '1 s'
    FROM generate_series(1001, 3000) g;
INSERT INTO patients (id, office_id, doctor_id, full_name, email, birth_date, metadata)
    SELECT g,
           CASE WHEN g % 2 = 0 THEN (g % 10) + 1 ELSE 1001 + (g % 2000) END,
           CASE WHEN g % 3 = 0 THEN NULL ELSE (g % 10) + 1 END,
           'Patient ' || g || E' \\\\ back\\nslash', CASE WHEN g % 5 = 0 THEN NULL ELSE 'MiXeD' || g || '@X' END,
           date '1950-01-01' + (g % 20000), jsonb_build_object('g', g, 'u', 'żółw')
    FROM generate_series(1, 70000) g;
INSERT INTO orders (id, patient_id, doctor_id, status, notes, amount, total_precise, external_ref,
                    placed_at, items, tags, attachment)
    SELECT g, g, CASE WHEN g % 4 = 0 THEN NULL ELSE (g % 10) + 1 END, 'new',
           CASE WHEN g = 1 THEN repeat('n', 5000) WHEN g % 2 = 0 THEN NULL ELSE 'note ' || g END,
           g / 100.0, 1234567890123456.7891, 9007199254740993 + g,
           timestamptz '2023-06-01 00:00:00+00' + g * interval '1 min',
           jsonb_build_array(g, 'x'), ARRAY['a' || g, NULL, 'q\"uote'],
           CASE WHEN g % 3 = 0 THEN NULL ELSE decode('00ff5c0a' || lpad(to_hex(g), 8, '0'), 'hex') END
    FROM generate_series(1, 3000) g;
INSERT INTO order_tags (order_id, tag, added_at)
    SELECT g, 'tag' || (g % 3), timestamptz '2023-01-01 00:00:00+00' FROM generate_series(1, 3000) g;
COMMIT;"

wb_run -c "$cfg" stream --until-caught-up
wb_eq "the big transaction streamed (exit 0)" 0 "$WB_RC"
log=$(cat "$WB_TMP/walbridge.log")
wb_contains "patients went the bulk way" "$log" "bulk insert of"
runs=$(grep -c "bulk insert of .* rows into public.patients" <<<"$log" || true)
wb_check "70k patients: several runs, each gathered while the one before was applied ($runs)" \
    test "$runs" -ge 2
stream_compare_clinic "after the 70k-row transaction"

wb_eq "every patient arrived" 70000 "$(wb_psql target -c "SELECT count(*) FROM patients")"
wb_eq "new rows get UUIDv5 of their key" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM patients
                           WHERE id <> uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.patients:' || legacy_id)")"
wb_eq "NULL references of new rows without a parent get UUIDv5 of the parent key" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM orders o JOIN patients p ON p.id = o.patient_id
                           WHERE o.patient_id <> uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.patients:' || p.legacy_id)")"
wb_eq "references to the migrated parent get its own UUID" 7000 \
    "$(wb_psql target -c "SELECT count(*) FROM patients WHERE office_id = '11111111-1111-4111-8111-111111111111'")"
wb_eq "references to parents inserted earlier in the transaction resolve to their rows" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM patients p LEFT JOIN offices o ON o.id = p.office_id WHERE o.id IS NULL")"
wb_eq "NULL references stay NULL" 23333 \
    "$(wb_psql target -c "SELECT count(*) FROM patients WHERE doctor_id IS NULL")"
wb_eq "the existing row keeps its UUID and takes the source's values" \
    "22222222-2222-4222-8222-222222222222|office 1500" \
    "$(wb_psql target -c "SELECT id || '|' || name FROM offices WHERE legacy_id = 1500")"
wb_eq "the conflicts are recorded once each, with their keys (3: row path, 1500: bulk)" \
    "insert_existing|1500|true,insert_existing|3|true" \
    "$(wb_psql target -c "SELECT string_agg(kind || '|' || key || '|' || (lsn IS NOT NULL), ',' ORDER BY key)
                          FROM walbridge.conflicts WHERE table_name = 'public.offices'")"
wb_contains "the conflict is logged" "$log" "conflict insert_existing on public.offices key 1500"
wb_eq "no other conflict is recorded" 2 "$(wb_psql target -c "SELECT count(*) FROM walbridge.conflicts")"
wb_eq "the generated column is computed by the target" "mixed7@x" \
    "$(wb_psql target -c "SELECT email_lc FROM patients WHERE legacy_id = 7")"
wb_eq "bytea round-trips" "00ff5c0a00000001" \
    "$(wb_psql target -c "SELECT encode(attachment, 'hex') FROM orders WHERE legacy_id = 1")"
wb_eq "backslashes, tabs and newlines round-trip" "1|1|1" \
    "$(wb_psql target -c "SELECT (strpos(p.full_name, E'\\\\') > 0)::int || '|' || (strpos(p.full_name, E'\\n') > 0)::int
                                 || '|' || (o.city = E'tab\\there')::int
                          FROM patients p, offices o WHERE p.legacy_id = 4 AND o.legacy_id = 1002")"
# A run of full-row updates (the same upsert): one row is missing in the target, so it
# is inserted and counted as update_missing; the others keep their UUIDs.
wb_psql target -c "DELETE FROM patients WHERE legacy_id = 11234"
wb_psql source -c "UPDATE patients SET full_name = 'Updated ' || id, metadata = NULL WHERE id BETWEEN 10001 AND 12000"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "the update transaction streamed (exit 0)" 0 "$WB_RC"
wb_contains "the updates went the bulk way" "$(cat "$WB_TMP/walbridge.log")" "bulk update of"
wb_eq "the missing row is recorded as update_missing" "update_missing|11234" \
    "$(wb_psql target -c "SELECT string_agg(kind || '|' || key, ',') FROM walbridge.conflicts WHERE kind LIKE 'update%'")"
wb_eq "updated rows keep their UUIDv5" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM patients
                           WHERE id <> uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.patients:' || legacy_id)")"
stream_compare_clinic "after the update transaction"

# Another run of full-row updates in which several rows are missing in the target (late in
# the run: the first rows go the row path), all referencing the office migrated with its own
# UUID: each is inserted with its UUIDv5, its values and that parent's UUID, and recorded once.
wb_psql target -c "DELETE FROM patients WHERE legacy_id IN (13902, 13912, 13922)"
wb_psql source -c "UPDATE patients SET full_name = 'Again ' || id, email = 'again' || id || '@x' WHERE id BETWEEN 12001 AND 14000"
: >"$WB_TMP/walbridge.log"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "missing rows: the update transaction streamed (exit 0)" 0 "$WB_RC"
wb_contains "missing rows: the updates went the bulk way" "$(cat "$WB_TMP/walbridge.log")" \
    "bulk update of"
wb_eq "missing rows: each recorded once as update_missing" "13902,13912,13922" \
    "$(wb_psql target -c "SELECT string_agg(key, ',' ORDER BY key) FROM walbridge.conflicts
                          WHERE kind = 'update_missing' AND key <> '11234'")"
wb_eq "missing rows: inserted with UUIDv5, the source's values and the migrated parent's UUID" \
    "13902|Again 13902|again13902@x|11111111-1111-4111-8111-111111111111|true,13912|Again 13912|again13912@x|11111111-1111-4111-8111-111111111111|true,13922|Again 13922|again13922@x|11111111-1111-4111-8111-111111111111|true" \
    "$(wb_psql target -c "SELECT string_agg(legacy_id || '|' || full_name || '|' || email || '|' || office_id || '|'
                                 || (id = uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.patients:' || legacy_id)),
                                 ',' ORDER BY legacy_id)
                          FROM patients WHERE legacy_id IN (13902, 13912, 13922)")"
wb_eq "missing rows: the rows that existed were updated in place (UUIDv5 kept)" "1997|0" \
    "$(wb_psql target -c "SELECT count(*) FILTER (WHERE full_name = 'Again ' || legacy_id) || '|'
                                 || count(*) FILTER (WHERE id <> uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.patients:' || legacy_id))
                          FROM patients WHERE legacy_id BETWEEN 12001 AND 14000 AND legacy_id NOT IN (13902, 13912, 13922)")"
stream_compare_clinic "after the updates of missing rows"

# A run of full-row updates of rows the target all holds goes as one plain UPDATE (no
# upsert, nothing recorded); the reference moved to the office migrated with its own UUID
# resolves to that UUID, and every row keeps its own.
conflicts_before=$(wb_psql target -c "SELECT count(*) FROM walbridge.conflicts")
wb_psql source -c "UPDATE patients SET full_name = 'Third ' || id, office_id = 3 WHERE id BETWEEN 14001 AND 16000"
: >"$WB_TMP/walbridge.log"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "present rows: the update transaction streamed (exit 0)" 0 "$WB_RC"
log=$(cat "$WB_TMP/walbridge.log")
wb_contains "present rows: the updates went the bulk way" "$log" "bulk update of"
wb_eq "present rows: no run needed the upsert" 0 "$(grep -c "the upsert inserts the others" <<<"$log" || true)"
wb_eq "present rows: no conflict recorded" "$conflicts_before" \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.conflicts")"
wb_eq "present rows: all updated in place, UUIDv5 kept, the migrated office's UUID referenced" "2000|0|2000" \
    "$(wb_psql target -c "SELECT count(*) FILTER (WHERE full_name = 'Third ' || legacy_id) || '|'
                                 || count(*) FILTER (WHERE id <> uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.patients:' || legacy_id)) || '|'
                                 || count(*) FILTER (WHERE office_id = '11111111-1111-4111-8111-111111111111')
                          FROM patients WHERE legacy_id BETWEEN 14001 AND 16000")"
stream_compare_clinic "after the updates of present rows"

# Runs on a composite-key table cut short by deletes in the same transaction.
wb_psql source -c "
BEGIN;
DELETE FROM order_tags WHERE order_id = 1;
INSERT INTO order_tags (order_id, tag) SELECT g, 'extra' FROM generate_series(1, 1000) g;
DELETE FROM order_tags WHERE order_id = 2 AND tag = 'extra';
INSERT INTO order_tags (order_id, tag) SELECT g, 'more' FROM generate_series(1, 1000) g;
COMMIT;"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "the mixed transaction streamed (exit 0)" 0 "$WB_RC"
stream_compare_clinic "after the mixed transaction"

# Direct runs: inserts into a table without references go by COPY into the table itself.
# A row the target already holds (7777) makes the run fall back to staging and the
# counting upsert; the next transaction (no existing key) is COPYed directly.
wb_psql target -c "INSERT INTO offices (id, legacy_id, name) VALUES ('33333333-3333-4333-8333-333333333333', 7777, 'stale')"
wb_psql source -c "INSERT INTO offices (id, name, city) SELECT g, 'direct ' || g, E'a\tb' FROM generate_series(6001, 8000) g"
wb_psql source -c "INSERT INTO offices (id, name, opened_on) SELECT g, 'direct ' || g, date '2001-02-03' FROM generate_series(8001, 10000) g"
: >"$WB_TMP/walbridge.log"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "direct runs: streamed (exit 0)" 0 "$WB_RC"
log=$(cat "$WB_TMP/walbridge.log")
wb_contains "direct runs: a run met an existing key and took the staging way" "$log" \
    "a row of the COPY run into public.offices is already in the target"
wb_check "direct runs: the next transaction was COPYed into the table" \
    grep -q "bulk insert of .* rows into public.offices by COPY into the table" "$WB_TMP/walbridge.log"
wb_eq "direct runs: the existing row keeps its UUID and takes the source's values" \
    "33333333-3333-4333-8333-333333333333|direct 7777" \
    "$(wb_psql target -c "SELECT id || '|' || name FROM offices WHERE legacy_id = 7777")"
wb_eq "direct runs: the conflict is recorded once" "insert_existing|7777" \
    "$(wb_psql target -c "SELECT string_agg(kind || '|' || key, ',') FROM walbridge.conflicts WHERE key = '7777'")"
wb_eq "direct runs: the other 3999 rows have their UUIDv5 and their values" "3999|3999" \
    "$(wb_psql target -c "SELECT count(*) FILTER (WHERE id = uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.offices:' || legacy_id))
                          || '|' || count(*) FILTER (WHERE name = 'direct ' || legacy_id AND (city = E'a\tb' OR opened_on = date '2001-02-03'))
                          FROM offices WHERE legacy_id BETWEEN 6001 AND 10000 AND legacy_id <> 7777")"
stream_compare_clinic "after the direct runs"

# A target role that is subject to row-level security cannot COPY into such a table
# (PostgreSQL refuses COPY FROM under RLS): the table takes the staging way instead.
# It does not own walbridge.moved_keys either: with its index gone, it cannot make it
# again, and says so, and streams on.
wb_psql target -c "DROP INDEX walbridge.moved_keys_target_key"
wb_psql target -c "CREATE ROLE wb_rls LOGIN NOSUPERUSER NOBYPASSRLS;
    GRANT USAGE, CREATE ON SCHEMA public, walbridge TO wb_rls;
    GRANT ALL ON ALL TABLES IN SCHEMA public, walbridge TO wb_rls;
    GRANT TEMPORARY ON DATABASE postgres TO wb_rls;
    ALTER TABLE offices ENABLE ROW LEVEL SECURITY;
    CREATE POLICY wb_all ON offices USING (true) WITH CHECK (true);"
rls_cfg=$WB_TMP/walbridge-rls.json
sed "s/\(\"target\": { \"dsn\": \"[^\"]*\)user=postgres/\1user=wb_rls/" "$cfg" >"$rls_cfg"
wb_check "the RLS config connects to the target as wb_rls" grep -q "user=wb_rls" "$rls_cfg"
wb_psql source -c "INSERT INTO offices (id, name) SELECT g, 'rls ' || g FROM generate_series(20001, 21000) g"
: >"$WB_TMP/walbridge.log"
wb_run -c "$rls_cfg" stream --until-caught-up
wb_eq "RLS: streamed as a role under row-level security (exit 0)" 0 "$WB_RC"
wb_contains "RLS: the refusal is logged, the table uses staging" "$(cat "$WB_TMP/walbridge.log")" \
    "public.offices does not take COPY from walbridge"
wb_contains "RLS: a role that does not own moved_keys cannot index it, and says so" \
    "$(cat "$WB_TMP/walbridge.log")" "apply: cannot index walbridge.moved_keys (target_key)"
wb_eq "RLS: every row arrived with its UUIDv5" "1000" \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id BETWEEN 20001 AND 21000
                          AND id = uuid_generate_v5('$WB_UUID_NAMESPACE'::uuid, 'public.offices:' || legacy_id)")"
wb_psql target -c "ALTER TABLE offices DISABLE ROW LEVEL SECURITY"
stream_compare_clinic "after the RLS runs"

# A run the target refuses: the stream stops naming the table (exit 3), the transaction
# before it is kept, nothing of the failing one is; once fixed, it applies.
wb_psql target -c "ALTER TABLE patients ADD CONSTRAINT no_poison CHECK (email IS DISTINCT FROM 'poison')"
wb_psql source -c "INSERT INTO offices (id, name) VALUES (5000, 'before the poison')"
wb_psql source -c "INSERT INTO patients (id, office_id, full_name, email)
                   SELECT g, 1, 'P', CASE WHEN g = 100900 THEN 'poison' ELSE 'ok' END
                   FROM generate_series(100001, 101000) g"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "a refused run stops the stream (exit 3)" 3 "$WB_RC"
wb_contains "the error names the table" "$(cat "$WB_TMP/walbridge.log")" "bulk insert on table public.patients failed"
wb_eq "the transaction before it is applied" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = 5000")"
wb_eq "nothing of the refused transaction is applied" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM patients WHERE legacy_id > 100000")"
wb_psql target -c "ALTER TABLE patients DROP CONSTRAINT no_poison"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "once fixed, the stream resumes (exit 0)" 0 "$WB_RC"
stream_compare_clinic "after the refused run was fixed"

wb_finish
