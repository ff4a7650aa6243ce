#!/usr/bin/env bash
# test_stream_basic.sh — `walbridge stream` end to end on two real PostgreSQL 15
# clusters: slot creation with --create-slot, inserts/updates/deletes on the clinic
# tables (bigint past 2^53, numeric, bytea, arrays, jsonb, TOASTed notes left
# untouched by an update, a keyless table with duplicate rows, truncate) applied and
# compared through the UUID mapping; --until-lsn; no-slot refusal; SIGTERM; the slot's
# confirmed position advancing while idle (keepalives, heartbeat); CLI errors.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/stream_lib.bash"

wb_pg_start source
wb_pg_start target
wb_psql source -f "$WB_FIXTURES/clinic/source_schema.sql"
wb_psql target -f "$WB_FIXTURES/clinic/target_schema.sql"
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" '"stream": { "batch_max_rows": 500, "batch_max_ms": 100, "feedback_interval_s": 1 }'

# --- CLI errors come before anything is written
wb_run -c "$cfg" stream --help
wb_eq "stream --help exits 0" 0 "$WB_RC"
wb_contains "stream --help lists --until-caught-up" "$WB_OUT" "--until-caught-up"
wb_run -c "$cfg" stream --until-lsn nonsense
wb_eq "a bad --until-lsn is a usage error" 2 "$WB_RC"
wb_contains "the bad LSN is named" "$WB_ERR" "nonsense"
wb_run -c "$cfg" stream --bogus
wb_eq "an unknown option is a usage error" 2 "$WB_RC"

# --- no slot, no applied LSN: stop and point at backfill
wb_run -c "$cfg" stream --until-caught-up
wb_eq "no slot: exit 3" 3 "$WB_RC"
wb_contains "no slot: says to run backfill" "$WB_ERR$(cat "$WB_TMP/walbridge.log")" "walbridge backfill"
wb_eq "no slot: nothing created" 0 "$(wb_psql source -c "SELECT count(*) FROM pg_replication_slots")"

# --- --create-slot on an empty source: creates the slot, caught up at once
wb_run -c "$cfg" stream --create-slot --until-caught-up
wb_eq "--create-slot --until-caught-up exits 0" 0 "$WB_RC"
wb_eq "the wal2json slot exists" "wal2json" \
    "$(wb_psql source -c "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'walbridge'")"

# --- a workload on the source
stream_clinic_workload source
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream --until-caught-up exits 0 after the workload" 0 "$WB_RC"
stream_compare_clinic "after the workload"
wb_eq "bigint past 2^53 kept exactly" "9007199254740993" \
    "$(wb_psql target -c "SELECT external_ref FROM orders WHERE legacy_id = 1")"
wb_eq "numeric(20,4) kept exactly" "1234567890123456.7891" \
    "$(wb_psql target -c "SELECT total_precise FROM orders WHERE legacy_id = 1")"
wb_eq "TOASTed notes untouched by a status update are kept" "50000 paid" \
    "$(wb_psql target -c "SELECT length(notes) || ' ' || status FROM orders WHERE legacy_id = 2")"
wb_eq "keyless table: one of two duplicate rows updated (after a truncate)" "1" \
    "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE action = 'dup'")"
wb_eq "the applied LSN is recorded in the target" "1" \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.stream_progress WHERE slot = 'walbridge' AND applied_lsn IS NOT NULL")"

# The slot never claims more than the target recorded.
applied=$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'walbridge'")
confirmed=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walbridge'")
wb_check "the slot's confirmed position is set ($confirmed)" test -n "$confirmed"

# --- --until-lsn: stops once that LSN is applied
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (50, 'until', 'Lyon')"
lsn=$(wb_psql source -c "SELECT pg_current_wal_lsn()")
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (51, 'after', 'Lyon')"
wb_run -c "$cfg" stream --until-lsn "$lsn"
wb_eq "stream --until-lsn exits 0" 0 "$WB_RC"
wb_eq "the change before --until-lsn is applied" "1" \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = 50")"

# --- a running stream: SIGTERM exits 0, and an idle source's slot keeps advancing
mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
wb_run_bg -c "$cfg" stream --metrics-listen "127.0.0.1:$mport"
pid=$WB_BG_PID
wb_wait_for "the running stream applies office 51" 30 \
    stream_target_has "SELECT 1 FROM offices WHERE legacy_id = 51"
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (52, 'metrics', 'Lyon')"
wb_wait_for "the running stream applies office 52" 30 \
    stream_target_has "SELECT 1 FROM offices WHERE legacy_id = 52"
office_inserts_counted() {
    local n
    n=$(curl -s "http://127.0.0.1:$mport/metrics" |
        awk '/^walbridge_stream_rows_applied_total\{slot_name="walbridge",table="public.offices",action="insert"\}/ { print $2 }')
    [[ -n $n && $n -ge 1 ]]
}
wb_wait_for "/metrics counts the office inserts streamed by this run" 10 office_inserts_counted
wb_eq "/healthz answers 200 while streaming" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/healthz" || true)"
wb_psql source -c "CREATE TABLE not_replicated (x int); INSERT INTO not_replicated SELECT generate_series(1, 1000)"
far=$(wb_psql source -c "SELECT pg_current_wal_lsn()")
wb_wait_for "idle: the slot's confirmed position passes unrelated WAL ($far)" 40 \
    stream_slot_confirmed_at_least source walbridge "$far"
kill -TERM "$pid"
wb_bg_wait "$pid" 30
wb_eq "SIGTERM: exit 0" 0 "$WB_RC"
wb_contains "SIGTERM: says it stopped" "$(cat "$WB_TMP/walbridge.log")" "stream stopped (stop requested)"
stream_compare_clinic "after SIGTERM"

# --- heartbeat messages keep the slot moving while the source database is idle
wb_write_config "$cfg" '"stream": { "heartbeat_interval_s": 1, "feedback_interval_s": 1 }'
wb_run_bg -c "$cfg" stream
pid=$WB_BG_PID
before=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walbridge'")
wb_wait_for "heartbeat: walbridge emits walbridge_heartbeat messages on the source" 20 \
    stream_source_has "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_logical_emit_message(false, ''walbridge_heartbeat''%' AND pid <> pg_backend_pid()"
wb_wait_for "heartbeat: the slot's confirmed position moves past $before while the tables are idle" 30 \
    stream_slot_confirmed_after source walbridge "$before"
kill -TERM "$pid"
wb_bg_wait "$pid" 30
wb_eq "heartbeat run: SIGTERM exit 0" 0 "$WB_RC"

wb_finish
