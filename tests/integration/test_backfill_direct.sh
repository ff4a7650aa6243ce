#!/usr/bin/env bash
# test_backfill_direct.sh — plain `backfill` (no --defer-indexes) into tables that
# are empty in the target: their rows go straight in with COPY on the lanes, with
# every index, constraint and foreign key in place, and only while no stream of
# the slot runs.  A table holding a row is upserted as before, and so are the tables
# that reference it; a row written into an empty table during the copy stops the
# run with the duplicated key named, and --resume finishes it by upserts.
#
# One source cluster; each scenario uses its own database on the target cluster and
# its own slot (TARGET_DSN is switched, so wb_psql target and the bf_* helpers follow).
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 5
bf_target_databases

# straight_in TABLE: the log line of TABLE's direct load in $WB_ERR.
straight_in() {
    grep -qF "public.$1: no row in the target yet: its rows go straight in with COPY, indexes, constraints and foreign keys in place" <<<"$WB_ERR"
}

# equal_everywhere CASE: every table equal through the mapping, no dangling reference,
# verify exits 0.
equal_everywhere() {
    local t
    for t in $BF_TABLES; do
        wb_check "$1: $t equal through the mapping" bf_same_table "$t"
    done
    wb_eq "$1: no dangling uuid reference" 0 "$(bf_orphans)"
    wb_run -c "$cfg" verify
    wb_eq "$1: verify exits 0" 0 "$WB_RC"
}

# ------------------------------------------------------------------ a. empty target
new_target a wb_a
schema_dump >"$WB_TMP/schema_a.sql"
wb_run -c "$cfg" backfill
wb_eq "a: backfill into an empty target exits 0" 0 "$WB_RC"
for t in offices profiles doctors patients orders order_tags audit_log; do
    wb_check "a: $t goes straight in with its indexes in place" straight_in "$t"
done
wb_check "a: orders was cut into key-range pieces for the lanes" \
    grep -qE 'public\.orders: copied in [2-8] pieces by key range' <<<"$WB_ERR"
wb_check "a: so was order_tags, by the order its key starts with" \
    grep -qE 'public\.order_tags: copied in [2-8] pieces by key range' <<<"$WB_ERR"
wb_eq "a: nothing was deferred or dropped" 0 "$(grep -c 'saved in walbridge.deferred_ddl' <<<"$WB_ERR" || true)"
wb_check "a: the schema is untouched" diff "$WB_TMP/schema_a.sql" <(schema_dump)
wb_eq "a: every source row copied" "$(bf_summary_sum 2)" "$(bf_summary_sum 4)"
wb_eq "a: checkpoints all done" 7 \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.backfill_checkpoint WHERE done")"
equal_everywhere a
# The stream's lock was let go after the direct loads: a stream starts and catches up.
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (900001, 'after the load', 'Ghent')"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "a: a stream starts afterwards and catches up (exit 0)" 0 "$WB_RC"
wb_eq "a: it applied the new office" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = 900001")"
wb_run -c "$cfg" backfill
wb_eq "a: a second run exits 0" 0 "$WB_RC"
wb_eq "a: a second run copies nothing" 0 "$(bf_summary_sum 4)"
wb_eq "a: and loads nothing directly (no table is empty)" 0 \
    "$(grep -c 'straight in with COPY' <<<"$WB_ERR" || true)"

# ------------------------------------------------------------------ b. one table holds a row
# A patient the original migration made (random UUID): patients is upserted, and so
# are orders and order_tags, whose references must find that UUID.
new_target b wb_b
wb_psql target -c "INSERT INTO offices (id, legacy_id, name, city)
    SELECT gen_random_uuid(), id, name, city FROM (VALUES (1, 'kept', 'x')) v(id, name, city)" >/dev/null
kept_uuid=$(wb_psql target -c "SELECT id FROM offices WHERE legacy_id = 1")
wb_run -c "$cfg" backfill
wb_eq "b: backfill exits 0" 0 "$WB_RC"
wb_check "b: offices (holds a row) is not loaded directly" bash -c '! grep -q "public.offices: no row in the target yet" <<<"$1"' _ "$WB_ERR"
for t in doctors patients orders order_tags; do
    wb_check "b: $t (references offices, directly or not) is not loaded directly" \
        bash -c '! grep -q "public.$1: no row in the target yet: its rows go straight in" <<<"$2"' _ "$t" "$WB_ERR"
done
wb_check "b: profiles (no reference to offices) goes straight in" straight_in profiles
wb_eq "b: the existing office keeps its UUID" "$kept_uuid" \
    "$(wb_psql target -c "SELECT id FROM offices WHERE legacy_id = 1")"
wb_check "b: doctors of office 1 reference its existing UUID" test \
    "$(wb_psql target -c "SELECT count(*) FROM doctors d JOIN offices o ON o.id = d.office_id WHERE o.legacy_id = 1")" \
    = "$(bf_count source "doctors WHERE office_id = 1")"
wb_run -c "$cfg" backfill --include-stale
wb_eq "b: --include-stale brings office 1 up to date (exit 0)" 0 "$WB_RC"
wb_eq "b: office 1 still keeps its UUID" "$kept_uuid" \
    "$(wb_psql target -c "SELECT id FROM offices WHERE legacy_id = 1")"
equal_everywhere b

# ------------------------------------------------------------------ c. a running stream
new_target c wb_c
wb_run -c "$cfg" backfill --tables offices
wb_eq "c: offices loaded first (exit 0)" 0 "$WB_RC"
wb_run_bg -c "$cfg" stream
stream_pid=$WB_BG_PID
slot_active() {
    [[ $(wb_psql source -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'wb_c'") == t ]]
}
wb_wait_for "c: the stream of slot wb_c is running" 30 slot_active || true
wb_run -c "$cfg" backfill
wb_eq "c: backfill beside a running stream exits 0" 0 "$WB_RC"
wb_contains "c: says why empty tables are upserted" "$WB_ERR" \
    'a walbridge stream of slot "wb_c" is running: tables that are empty in the target are upserted like the others'
wb_eq "c: no table loaded directly" 0 "$(grep -c 'straight in with COPY' <<<"$WB_ERR" || true)"
wb_check "c: the stream still runs" kill -0 "$stream_pid"
wb_contains "c: the keyless audit_log is left out while the stream runs" "$WB_ERR" \
    "keyless table(s) public.audit_log left out of this run"
kill -TERM "$stream_pid"
wb_bg_wait "$stream_pid" 30
wb_eq "c: the stream stops on SIGTERM (exit 0)" 0 "$WB_RC"
wb_run -c "$cfg" backfill --tables audit_log
wb_eq "c: with the stream stopped, audit_log is backfilled (exit 0)" 0 "$WB_RC"
equal_everywhere c

# ------------------------------------------------------------------ d. a row written meanwhile
# Another writer puts an order into the empty table while backfill loads it: its
# transaction holds a SHARE lock on orders (the emptiness check still passes, the
# COPY waits) and commits once backfill waits.  The COPY then fails on the unique
# legacy_id, backfill stops naming the key, order_tags (which waits for its parent)
# is not copied, so no reference dangles; --resume (orders is no longer empty)
# upserts the rest.
new_target d wb_d
key=$(wb_psql source -c "SELECT min(id) FROM orders")
bf_writer_during "d: the other writer holds its lock on orders" target orders SHARE \
    "SET LOCAL session_replication_role = replica;
     INSERT INTO orders (legacy_id, patient_id, status)
     VALUES ($key, gen_random_uuid(), 'written by someone else')" "$WB_TMP/d_writer.out"
writer=$BF_WRITER_PID
wb_run -c "$cfg" backfill
wait "$writer" || true
wb_eq "d: the run that meets the other writer's row exits 3" 3 "$WB_RC"
wb_contains "d: the error names the duplicated key" "$WB_ERR" "(legacy_id)=($key) already exists"
wb_eq "d: no order_tags row was written (it waits for its parent)" 0 "$(bf_count target order_tags)"
wb_eq "d: no row of backfill's references a missing row after the failure" 0 \
    "$(wb_psql target -c "SELECT (SELECT count(*) FROM orders o WHERE o.legacy_id <> $key AND NOT EXISTS
        (SELECT 1 FROM patients p WHERE p.id = o.patient_id)) + (SELECT count(*) FROM doctors d
        WHERE NOT EXISTS (SELECT 1 FROM offices f WHERE f.id = d.office_id))")"
wb_run -c "$cfg" backfill --resume
wb_eq "d: --resume finishes (exit 0)" 0 "$WB_RC"
wb_check "d: --resume upserts orders (not empty any more)" \
    bash -c '! grep -q "public.orders: no row in the target yet" <<<"$1"' _ "$WB_ERR"
wb_eq "d: the other writer's row is kept (backfill inserts missing rows only)" \
    "written by someone else" "$(wb_psql target -c "SELECT status FROM orders WHERE legacy_id = $key")"
wb_eq "d: every order is there" "$(bf_count source orders)" "$(bf_count target orders)"
wb_run -c "$cfg" backfill --include-stale
wb_eq "d: --include-stale puts the source's row in its place (exit 0)" 0 "$WB_RC"
equal_everywhere d

wb_finish
