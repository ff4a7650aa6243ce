#!/usr/bin/env bash
# test_backfill_key_reuse.sh — a legacy key reused after a key change.  The stream
# moves two patients to new keys (the rows keep their UUIDs: a migrated random one,
# and UUIDv5 of the old key for a row walbridge inserted); while the stream is not
# running the source reuses both old keys for new patients and orders referencing
# them.  backfill must copy the new rows (a new row whose UUIDv5 is held by the
# moved row gets the next UUID of its chain, as the stream does), the orders must
# reference the new patients, verify must find nothing, and the stream must go on
# afterwards.  A reference to a reused key whose parent row is not in the target yet
# (staged in a later batch, or its table not in the run; NOT NULL or not) takes the
# UUID the parent row gets when it arrives, never the moved row's UUIDv5, also when
# the moved row is deleted in between.  References that an earlier walbridge left
# NULL in <state_schema>.pending_refs are re-pointed, and check reports them.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_clinic_start
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"
wb_psql target -c 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"'
v5() { wb_psql target -c "SELECT uuid_generate_v5('$WB_UUID_NAMESPACE', '$1')"; }
# The second UUID of a key's chain (apply_sql_key_uuid): a UUIDv8 from md5 of the first.
chain1() {
    wb_psql target -c "SELECT overlay(overlay(md5('walbridge:' || uuid_generate_v5('$WB_UUID_NAMESPACE', '$1')::text)
                       placing '8' from 13 for 1) placing '8' from 17 for 1)::uuid"
}
tgt() { wb_psql target -c "$1"; }
src() { wb_psql source -c "$1"; }
# A key change in the source carries its orders along (as ON UPDATE CASCADE does).
src "ALTER TABLE orders DROP CONSTRAINT orders_patient_id_fkey,
     ADD FOREIGN KEY (patient_id) REFERENCES patients (id) ON UPDATE CASCADE"

wb_run -c "$cfg" backfill --include-stale
wb_eq "first backfill exits 0" 0 "$WB_RC"

# ---- the stream inserts patient 4242 (UUIDv5), then moves it and migrated patient 5
src "INSERT INTO patients (id, office_id, full_name) VALUES (4242, 1, 'first 4242')"
src "INSERT INTO orders (id, patient_id, status) VALUES (990001, 4242, 'of first 4242')"
src "INSERT INTO profiles (id, email, full_name) VALUES (7000, 'p7000@x', 'first 7000')"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream applies the insert" 0 "$WB_RC"
wb_eq "patient 4242 got UUIDv5 of its key" "$(v5 public.patients:4242)" \
    "$(tgt "SELECT id FROM patients WHERE legacy_id = 4242")"
uuid5=$(tgt "SELECT id FROM patients WHERE legacy_id = 5")
uuid4242=$(v5 public.patients:4242)
src "UPDATE patients SET id = 904242 WHERE id = 4242"
src "UPDATE patients SET id = 900005 WHERE id = 5"
src "UPDATE profiles SET id = 907000 WHERE id = 7000"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream applies the key changes" 0 "$WB_RC"
wb_eq "moved rows keep their UUIDs under the new keys" "$uuid5 $uuid4242" \
    "$(tgt "SELECT string_agg(id::text, ' ' ORDER BY legacy_id) FROM patients WHERE legacy_id IN (900005, 904242)")"

# ---- stream stopped: the source reuses the old keys for new rows
src "INSERT INTO patients (id, office_id, full_name) VALUES (5, 2, 'new five'), (4242, 2, 'new 4242')"
src "INSERT INTO orders (id, patient_id, status) VALUES (990005, 5, 'of new five'), (990006, 4242, 'of new 4242')"
# a self-reference: the new profile 7001 (same batch) is referred by the new 7000
src "INSERT INTO profiles (id, email, full_name) VALUES (7000, 'n7000@x', 'new 7000')"
src "INSERT INTO profiles (id, email, full_name, referred_by) VALUES (7001, 'n7001@x', 'new 7001', 7000)"

wb_run -c "$cfg" backfill
wb_eq "backfill with reused keys exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 20
wb_contains "backfill says why patients' new rows may get other UUIDs" "$WB_ERR" \
    "public.patients: key changes were applied (moved_keys): a new row whose UUIDv5 a moved row holds gets the next UUID of its chain"
wb_eq "the new patients are copied" "new 4242|new five" \
    "$(tgt "SELECT string_agg(full_name, '|' ORDER BY full_name) FROM patients WHERE legacy_id IN (5, 4242)")"
wb_eq "new patient 5 has a UUID of its own" 1 \
    "$(tgt "SELECT count(*) FROM patients WHERE legacy_id = 5 AND id NOT IN ('$uuid5', '$uuid4242')")"
wb_eq "new patient 4242 does not take the moved row's UUIDv5: the next of its chain" "$(chain1 public.patients:4242)" \
    "$(tgt "SELECT id FROM patients WHERE legacy_id = 4242")"
wb_eq "new patient 5 keeps UUIDv5 (the moved 5 has a migrated UUID)" "$(v5 public.patients:5)" \
    "$(tgt "SELECT id FROM patients WHERE legacy_id = 5")"
wb_eq "moved rows keep their UUIDs" "$uuid5 $uuid4242" \
    "$(tgt "SELECT string_agg(id::text, ' ' ORDER BY legacy_id) FROM patients WHERE legacy_id IN (900005, 904242)")"
wb_eq "orders of the new patients reference them" "990005 5|new five 990006 4242|new 4242" \
    "$(tgt "SELECT string_agg(o.legacy_id || ' ' || p.legacy_id || '|' || p.full_name, ' ' ORDER BY o.legacy_id)
            FROM orders o JOIN patients p ON p.id = o.patient_id WHERE o.legacy_id IN (990005, 990006)")"
wb_eq "the moved patient's order still references it" "904242" \
    "$(tgt "SELECT p.legacy_id FROM orders o JOIN patients p ON p.id = o.patient_id WHERE o.legacy_id = 990001")"
wb_eq "no order of patient 5 moved to the new patient" 0 \
    "$(tgt "SELECT count(*) FROM orders o JOIN patients p ON p.id = o.patient_id
            WHERE p.legacy_id = 5 AND o.legacy_id <> 990005")"
wb_eq "new profile 7000 does not take the moved row's UUIDv5" "1 0" \
    "$(tgt "SELECT count(*) || ' ' || count(*) FILTER (WHERE id = '$(v5 public.profiles:7000)') FROM profiles WHERE legacy_id = 7000")"
wb_eq "a new profile staged with it references the new profile 7000" "new 7000" \
    "$(tgt "SELECT r.full_name FROM profiles p JOIN profiles r ON r.id = p.referred_by WHERE p.legacy_id = 7001")"
for t in profiles patients orders; do
    wb_check "$t: equal through the mapping" bf_same_table "$t"
done
wb_eq "no reference points nowhere" 0 "$(bf_orphans)"
wb_run -c "$cfg" verify
wb_eq "verify exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_OUT" | tail -n 12

# ---- the re-run finds nothing to do; the stream then replays the same inserts
wb_run -c "$cfg" backfill
wb_eq "second backfill exits 0" 0 "$WB_RC"
wb_eq "second backfill copies nothing" 0 "$(bf_summary_sum 4)"
new5=$(tgt "SELECT id FROM patients WHERE legacy_id = 5")
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream after the backfill exits 0" 0 "$WB_RC"
wb_eq "stream keeps the row backfill copied" "$new5" "$(tgt "SELECT id FROM patients WHERE legacy_id = 5")"
wb_run -c "$cfg" verify
wb_eq "verify after the stream exits 0" 0 "$WB_RC"

pending_count() { tgt "SELECT count(*) FROM walbridge.pending_refs"; }
# move KEY_CHANGE_SQL...: the stream applies each statement (inserts, then key changes).
stream_applies() {
    local sql
    for sql in "$@"; do
        src "$sql"
        wb_run -c "$cfg" stream --until-caught-up
        wb_eq "stream applies: ${sql:0:60}" 0 "$WB_RC"
    done
}

# ---- a self-reference to a reused key staged in a LATER batch (one row per batch)
stream_applies "INSERT INTO profiles (id, email, full_name) VALUES (7100, 'p7100@x', 'first 7100')" \
    "UPDATE profiles SET id = 907100 WHERE id = 7100"
moved7100=$(tgt "SELECT id FROM profiles WHERE legacy_id = 907100")
wb_eq "the moved profile kept UUIDv5 of 7100" "$(v5 public.profiles:7100)" "$moved7100"
src "INSERT INTO profiles (id, email, full_name) VALUES (7100, 'n7100@x', 'new 7100')"
src "INSERT INTO profiles (id, email, full_name, referred_by) VALUES (6990, 'n6990@x', 'new 6990', 7100)"
# profiles only: no keyless table in the run, so no catch-up replays these inserts.
wb_run -c "$cfg" backfill --tables profiles --batch-rows 1
wb_eq "backfill of profiles one row per batch exits 0" 0 "$WB_RC"
wb_contains "it says how a reference to a parent not there yet is written" "$WB_ERR" \
    "public.profiles: key changes were applied (moved_keys)"
wb_eq "new profile 7100 has the second UUID of its chain" "$(chain1 public.profiles:7100)" \
    "$(tgt "SELECT id FROM profiles WHERE legacy_id = 7100")"
wb_eq "profile 6990 (staged before 7100) references the new 7100, not the moved row" "new 7100" \
    "$(tgt "SELECT r.full_name FROM profiles p JOIN profiles r ON r.id = p.referred_by WHERE p.legacy_id = 6990")"
wb_eq "no reference waits in pending_refs" 0 "$(pending_count)"
wb_check "profiles: equal through the mapping" bf_same_table profiles

# ---- a reference to a reused key whose table is not in the run
stream_applies "INSERT INTO doctors (id, office_id, profile_id, license_no) VALUES (3100, 1, 1, 'L-first')" \
    "UPDATE doctors SET id = 903100 WHERE id = 3100"
moved3100=$(tgt "SELECT id FROM doctors WHERE legacy_id = 903100")
src "INSERT INTO doctors (id, office_id, profile_id, license_no) VALUES (3100, 1, 1, 'L-new')"
src "INSERT INTO orders (id, patient_id, doctor_id, status) VALUES (990100, 1, 3100, 'of new doctor 3100')"
wb_run -c "$cfg" backfill --tables orders
wb_eq "backfill of orders without doctors exits 0" 0 "$WB_RC"
wb_contains "it says how such a reference is written" "$WB_ERR" \
    "public.orders: references a table with key changes (moved_keys): a reference to a parent row not in the target yet takes the UUID that row will get"
wb_eq "the order names the UUID the new doctor 3100 will get, not the moved doctor" \
    "$(chain1 public.doctors:3100)" "$(tgt "SELECT doctor_id FROM orders WHERE legacy_id = 990100")"
wb_eq "the moved doctor has no order" 0 "$(tgt "SELECT count(*) FROM orders WHERE doctor_id = '$moved3100'")"
wb_run -c "$cfg" backfill --tables doctors,orders
wb_eq "backfill of doctors and orders exits 0" 0 "$WB_RC"
wb_eq "the order references the new doctor 3100" "L-new" \
    "$(tgt "SELECT d.license_no FROM orders o JOIN doctors d ON d.id = o.doctor_id WHERE o.legacy_id = 990100")"

# ---- the moved row is deleted between the child's copy and the parent's: the chain
# skips UUIDs a recorded key change took, so the parent still gets the child's UUID
stream_applies "INSERT INTO doctors (id, office_id, profile_id, license_no) VALUES (3200, 1, 1, 'L-first 3200')" \
    "UPDATE doctors SET id = 903200 WHERE id = 3200"
src "INSERT INTO doctors (id, office_id, profile_id, license_no) VALUES (3200, 1, 1, 'L-new 3200')"
src "INSERT INTO orders (id, patient_id, doctor_id, status) VALUES (990300, 1, 3200, 'of new doctor 3200')"
wb_run -c "$cfg" backfill --tables orders
wb_eq "backfill of orders (doctor 3200 reused) exits 0" 0 "$WB_RC"
src "DELETE FROM doctors WHERE id = 903200"
tgt "DELETE FROM doctors WHERE legacy_id = 903200" >/dev/null
wb_eq "the moved doctor's UUIDv5 is free again" 0 \
    "$(tgt "SELECT count(*) FROM doctors WHERE id = '$(v5 public.doctors:3200)'")"
wb_run -c "$cfg" backfill --tables doctors
wb_eq "backfill of doctors exits 0" 0 "$WB_RC"
wb_eq "the order references the new doctor 3200" "L-new 3200" \
    "$(tgt "SELECT d.license_no FROM orders o JOIN doctors d ON d.id = o.doctor_id WHERE o.legacy_id = 990300")"

# ---- a NOT NULL reference to a reused key whose table is not in the run
stream_applies "INSERT INTO patients (id, office_id, full_name) VALUES (4300, 1, 'first 4300')" \
    "UPDATE patients SET id = 904300 WHERE id = 4300"
src "INSERT INTO patients (id, office_id, full_name) VALUES (4300, 2, 'new 4300')"
src "INSERT INTO orders (id, patient_id, status) VALUES (990200, 4300, 'of new 4300')"
wb_run -c "$cfg" backfill --tables orders
wb_eq "backfill of orders without patients exits 0" 0 "$WB_RC"
wb_eq "the order was not written against the moved patient" 0 \
    "$(tgt "SELECT count(*) FROM orders o JOIN patients p ON p.id = o.patient_id WHERE o.legacy_id = 990200")"
wb_run -c "$cfg" backfill --tables patients
wb_eq "backfill of patients exits 0" 0 "$WB_RC"
wb_eq "the order references the new patient 4300" "new 4300" \
    "$(tgt "SELECT p.full_name FROM orders o JOIN patients p ON p.id = o.patient_id WHERE o.legacy_id = 990200")"

# ---- a reference an earlier walbridge left NULL in pending_refs is re-pointed
tgt "UPDATE orders SET doctor_id = NULL WHERE legacy_id = 990100;
     INSERT INTO walbridge.pending_refs (slot, table_name, row_key, ref_column, parent_key)
     VALUES ('walbridge', 'public.orders', '990100', 'doctor_id', '3100')" >/dev/null
wb_run -c "$cfg" check
wb_contains "check reports the waiting reference" "$WB_OUT$WB_ERR" \
    "public.orders: 1 row(s) of public.orders reference a parent row not in the target yet (a key reused after a key change): their reference is NULL until backfill re-points it (walbridge.pending_refs)"
wb_run -c "$cfg" backfill --tables orders
wb_eq "backfill of orders exits 0" 0 "$WB_RC"
wb_contains "it re-points the recorded reference" "$WB_ERR" \
    "public.orders: 1 pending reference(s) re-pointed or cleared (doctor_id)"
wb_eq "the order references the new doctor 3100 again" "L-new" \
    "$(tgt "SELECT d.license_no FROM orders o JOIN doctors d ON d.id = o.doctor_id WHERE o.legacy_id = 990100")"
wb_eq "no reference waits any more" 0 "$(pending_count)"

wb_run -c "$cfg" stream --until-caught-up
wb_eq "the stream carries on (exit 0)" 0 "$WB_RC"
for t in profiles doctors patients orders; do
    wb_check "$t: equal through the mapping at the end" bf_same_table "$t"
done
wb_eq "no reference points nowhere at the end" 0 "$(bf_orphans)"
wb_run -c "$cfg" verify
wb_eq "verify at the end exits 0" 0 "$WB_RC"
wb_finish
