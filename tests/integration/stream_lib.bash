# stream_lib.bash — helpers shared by the stream integration tests
# (test_stream_basic.sh, test_stream_faults.sh): a clinic workload, and a
# comparison of every clinic table between source and target through the UUID
# mapping (target UUIDs translated back to legacy keys), as a user would check.
# Sourced after tests/harness/lib.sh.  Not a test itself (no .sh suffix).

export PGTZ=UTC PGDATESTYLE=ISO

# Source-side and target-side row queries per table: same columns, same order,
# keys and references as legacy integers.  Column k orders the rows.
stream__query() {
    local side=$1 table=$2
    case $side:$table in
    source:offices) echo "SELECT id AS k, name, city, phone, opened_on, created_at FROM offices" ;;
    target:offices) echo "SELECT legacy_id AS k, name, city, phone, opened_on, created_at FROM offices" ;;
    source:profiles) echo "SELECT id AS k, email, full_name, referred_by, balance, settings, created_at FROM profiles" ;;
    target:profiles)
        echo "SELECT p.legacy_id AS k, p.email, p.full_name, r.legacy_id, p.balance, p.settings, p.created_at
              FROM profiles p LEFT JOIN profiles r ON r.id = p.referred_by"
        ;;
    source:doctors) echo "SELECT id AS k, office_id, profile_id, specialty, license_no, rating, active, since FROM doctors" ;;
    target:doctors)
        echo "SELECT d.legacy_id AS k, o.legacy_id, p.legacy_id, d.specialty, d.license_no, d.rating, d.active, d.since
              FROM doctors d LEFT JOIN offices o ON o.id = d.office_id LEFT JOIN profiles p ON p.id = d.profile_id"
        ;;
    source:patients) echo "SELECT id AS k, office_id, doctor_id, full_name, email, birth_date, metadata FROM patients" ;;
    target:patients)
        echo "SELECT p.legacy_id AS k, o.legacy_id, d.legacy_id, p.full_name, p.email, p.birth_date, p.metadata
              FROM patients p LEFT JOIN offices o ON o.id = p.office_id LEFT JOIN doctors d ON d.id = p.doctor_id"
        ;;
    source:orders)
        echo "SELECT id AS k, patient_id, doctor_id, status, md5(notes), amount, total_precise, external_ref,
                     placed_at, items, tags, attachment FROM orders"
        ;;
    target:orders)
        echo "SELECT o.legacy_id AS k, p.legacy_id, d.legacy_id, o.status, md5(o.notes), o.amount, o.total_precise,
                     o.external_ref, o.placed_at, o.items, o.tags, o.attachment
              FROM orders o LEFT JOIN patients p ON p.id = o.patient_id LEFT JOIN doctors d ON d.id = o.doctor_id"
        ;;
    source:order_tags) echo "SELECT order_id || '/' || tag AS k, order_id, tag, added_at FROM order_tags" ;;
    target:order_tags)
        echo "SELECT o.legacy_id || '/' || t.tag AS k, o.legacy_id, t.tag, t.added_at
              FROM order_tags t LEFT JOIN orders o ON o.id = t.order_id"
        ;;
    source:audit_log | target:audit_log)
        echo "SELECT happened_at || actor || action || coalesce(detail::text, '') AS k, happened_at, actor, action, detail FROM audit_log"
        ;;
    esac
}

# stream_table_digest SIDE TABLE: "rows:md5" of the table's rows in mapped form.
stream_table_digest() {
    wb_psql "$1" -c "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY t.k::text, t::text)), '-')
                     FROM ($(stream__query "$1" "$2")) t"
}

# stream_compare_clinic LABEL: one check per clinic table, rows equal through the mapping.
stream_compare_clinic() {
    local t s g
    for t in offices profiles doctors patients orders order_tags audit_log; do
        s=$(stream_table_digest source "$t")
        g=$(stream_table_digest target "$t")
        wb_eq "$1: $t equal through the mapping (source $s)" "$s" "$g"
    done
}

# stream_target_has SQL: true when the query returns a row on the target.
stream_target_has() {
    [[ -n $(wb_psql target -c "$1") ]]
}

# stream_source_has SQL: true when the query returns a row on the source.
stream_source_has() {
    [[ -n $(wb_psql source -c "$1") ]]
}

# stream_slot_confirmed_after SIDE SLOT LSN: the slot's confirmed_flush_lsn > LSN.
stream_slot_confirmed_after() {
    [[ $(wb_psql "$1" -c "SELECT confirmed_flush_lsn > '$3'::pg_lsn FROM pg_replication_slots WHERE slot_name = '$2'") == t ]]
}

# stream_slot_confirmed_at_least SIDE SLOT LSN: the slot's confirmed_flush_lsn >= LSN.
stream_slot_confirmed_at_least() {
    [[ $(wb_psql "$1" -c "SELECT confirmed_flush_lsn >= '$3'::pg_lsn FROM pg_replication_slots WHERE slot_name = '$2'") == t ]]
}

# stream_clinic_workload SIDE: inserts, updates and deletes on every clinic table,
# with awkward values (bigint > 2^53, numeric(20,4), bytea, arrays, jsonb, unicode,
# an out-of-line TOASTed text), a TOAST-untouched update, a key-preserving update,
# a keyless table with duplicates, and a truncate.
stream_clinic_workload() {
    wb_psql "$1" <<'SQL'
BEGIN;
INSERT INTO offices (id, name, city, phone, opened_on) VALUES
  (1, 'Main', 'Paris', '+33 1', '2001-02-03'), (2, 'Annex ☃', NULL, '', NULL), (3, 'Gone', 'x', 'y', NULL);
INSERT INTO profiles (id, email, full_name, referred_by, balance, settings) VALUES
  (1, 'a@x', 'Ann "Quote"', NULL, 1234567890123456.7891, '{"k": [1, 2.50, null], "big": 12345678901234567890}'),
  (2, 'b@x', E'Back\\slash\nNewline', 1, -0.0001, NULL);
INSERT INTO doctors (id, office_id, profile_id, specialty, license_no, rating, active, since) VALUES
  (1, 1, 1, 'cardio', 'L-1', 4.75, true, '2010-01-01'),
  (2, 2, 2, NULL, 'L-2', 1e-7, false, NULL);
INSERT INTO patients (id, office_id, doctor_id, full_name, email, birth_date, metadata) VALUES
  (1, 1, 1, 'Pat One', 'p1@x', '1980-05-06', '{"allergies": ["nuts"]}'),
  (2, 2, NULL, '', NULL, NULL, 'null');
COMMIT;
INSERT INTO orders (id, patient_id, doctor_id, status, notes, amount, total_precise, external_ref,
                    placed_at, items, tags, attachment) VALUES
  (1, 1, 1, 'new', 'short', 12.34, 1234567890123456.7891, 9007199254740993,
   '2024-02-29 23:59:59.999999+05', '[{"sku": "A", "qty": 2}]', ARRAY['a b', 'c,d', NULL], '\x00ff10'),
  (2, 2, NULL, 'new', repeat('0123456789', 5000), NULL, NULL, -9223372036854775808, NULL, NULL, '{}', '');
INSERT INTO order_tags (order_id, tag) VALUES (1, 'urgent'), (1, 'x,y'), (2, 'plain');
INSERT INTO audit_log (happened_at, actor, action, detail) VALUES
  ('2024-01-01 00:00:00+00', 'me', 'dup', NULL), ('2024-01-01 00:00:00+00', 'me', 'dup', NULL),
  ('2024-01-02 00:00:00+00', 'you', 'other', '{"n": 1}');
-- many small transactions
DO $$ BEGIN FOR i IN 10..60 LOOP
  INSERT INTO patients (id, office_id, doctor_id, full_name) VALUES (i, 1 + i % 2, 1, 'bulk ' || i);
  COMMIT;
END LOOP; END $$;
-- one larger transaction
INSERT INTO orders (id, patient_id, status, amount, external_ref)
SELECT g, 10 + g % 50, 'bulk', g / 7.0, g * 1000000000007 FROM generate_series(100, 1600) g;
UPDATE orders SET status = 'paid' WHERE id = 2;             -- notes (TOAST) untouched
UPDATE orders SET amount = amount + 1 WHERE id BETWEEN 100 AND 400;
UPDATE profiles SET referred_by = 2, balance = 99999999999999.9999 WHERE id = 1;
UPDATE patients SET email = 'changed@x', metadata = '{"v": 2}' WHERE id = 1;
DELETE FROM order_tags WHERE order_id = 1 AND tag = 'urgent';
DELETE FROM orders WHERE id BETWEEN 1500 AND 1600;
DELETE FROM offices WHERE id = 3;
UPDATE audit_log SET action = 'changed' WHERE ctid = (SELECT min(ctid) FROM audit_log WHERE action = 'dup');
DELETE FROM audit_log WHERE action = 'other';
TRUNCATE audit_log;
INSERT INTO audit_log (happened_at, actor, action) VALUES
  ('2024-01-03 00:00:00+00', 'me', 'dup'), ('2024-01-03 00:00:00+00', 'me', 'dup');
UPDATE audit_log SET action = 'changed' WHERE ctid = (SELECT min(ctid) FROM audit_log WHERE action = 'dup');
SQL
}
