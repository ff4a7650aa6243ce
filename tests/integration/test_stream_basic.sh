#!/usr/bin/env bash
# test_stream_basic.sh — `walbridge stream` end to end on two real PostgreSQL 15
# clusters: slot creation with --create-slot, inserts/updates/deletes on the clinic
# tables (bigint past 2^53, numeric, bytea, arrays, jsonb, TOASTed notes left
# untouched by an update, a keyless table with duplicate rows, truncate) applied and
# compared through the UUID mapping; --until-lsn; no-slot refusal; SIGTERM (also while
# waiting for the stream lock or for slot creation at startup); the slot's confirmed position advancing while
# idle (keepalives, heartbeat) yet never ahead of the applied LSN stored in the target
# (walbridge health OK); CLI errors.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/stream_lib.bash"

wb_clinic_start --schema-only
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

# The slot never claims more than the target recorded (Guarantee 2; health's rule).
# slot_not_ahead_of_target: confirmed_flush_lsn <= the applied LSN stored in the target.
slot_not_ahead_of_target() {
    local applied confirmed
    # Confirmed first: the stored LSN only grows, so a later read of it is a fair bound.
    confirmed=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walbridge'")
    applied=$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'walbridge'")
    echo "confirmed $confirmed, applied $applied"
    [[ -n $applied && -n $confirmed ]] &&
        [[ $(wb_psql source -c "SELECT '$confirmed'::pg_lsn <= '$applied'::pg_lsn") == t ]]
}
wb_check "after --until-caught-up: the slot's confirmed position is not ahead of the target's applied LSN" \
    slot_not_ahead_of_target

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
# A checkpoint record after the last commit: WAL that no source transaction's commit covers,
# so only the idle (keepalive) position can carry the slot and the applied LSN past it.
wb_psql source -c "CHECKPOINT"
far=$(wb_psql source -c "SELECT pg_current_wal_lsn()")
wb_wait_for "idle: the slot's confirmed position passes unrelated WAL ($far)" 40 \
    stream_slot_confirmed_at_least source walbridge "$far"
# The idle position is recorded in the target before it is confirmed, so health's
# "confirmed ahead of applied" rule holds throughout (checked over a few keepalives).
idle_never_ahead() {
    local i
    for i in 1 2 3 4 5 6; do
        slot_not_ahead_of_target || return 1
        sleep 0.5
    done
}
wb_check "idle: the slot's confirmed position never passes the target's applied LSN" idle_never_ahead
wb_check "idle: the target records the idle position ($far) as applied" \
    stream_target_has "SELECT 1 FROM walbridge.stream_progress WHERE slot = 'walbridge' AND applied_lsn >= '$far'"
wb_run -c "$cfg" health
wb_eq "idle: walbridge health says OK (exit 0)" 0 "$WB_RC"
kill -TERM "$pid"
wb_bg_wait "$pid" 30
wb_eq "SIGTERM: exit 0" 0 "$WB_RC"
wb_contains "SIGTERM: says it stopped" "$(cat "$WB_TMP/walbridge.log")" "stream stopped (stop requested)"
stream_compare_clinic "after SIGTERM"

# --- SIGTERM while waiting for the stream lock at startup: a clean stop, exit 0
wb_psql target -c "SELECT pg_advisory_lock(hashtext('walbridge stream'), hashtext('walbridge')), pg_sleep(60)" \
    >/dev/null 2>&1 &
holder=$!
lock_held() {
    [[ $(wb_psql target -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") -ge 1 ]]
}
wb_wait_for "another session holds the stream lock" 10 lock_held
log_lines=$(wc -l <"$WB_TMP/walbridge.log")
wb_run_bg -c "$cfg" stream
pid=$WB_BG_PID
waiting_for_lock() { tail -n +"$((log_lines + 1))" "$WB_TMP/walbridge.log" | grep -q "waiting for the stream lock"; }
wb_wait_for "the stream waits for the lock" 20 waiting_for_lock
kill -TERM "$pid"
wb_bg_wait "$pid" 10
wb_eq "SIGTERM while waiting for the stream lock: exit 0" 0 "$WB_RC"
wb_contains "SIGTERM while waiting for the lock: says so" \
    "$(tail -n +"$((log_lines + 1))" "$WB_TMP/walbridge.log")" "stopped while waiting for the stream lock"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
wb_psql target -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_advisory_lock(hashtext%' AND pid <> pg_backend_pid()" >/dev/null

# --- SIGTERM while --create-slot waits for a running transaction: exit 0, no slot left
wb_psql source -c "SELECT txid_current(), pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
xact_running() { stream_source_has "SELECT 1 FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"; }
wb_wait_for "a transaction with an xid runs on the source" 10 xact_running
cfg_other=$WB_TMP/other.json
wb_write_config "$cfg_other" --slot wb_other
log_lines=$(wc -l <"$WB_TMP/walbridge.log")
wb_run_bg -c "$cfg_other" stream --create-slot
pid=$WB_BG_PID
creating_slot() { stream_source_has "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE_REPLICATION_SLOT%wb_other%'"; }
wb_wait_for "--create-slot waits for the running transaction" 20 creating_slot
kill -TERM "$pid"
wb_bg_wait "$pid" 10
wb_eq "SIGTERM while creating the slot: exit 0" 0 "$WB_RC"
wb_contains "SIGTERM while creating the slot: says so" \
    "$(tail -n +"$((log_lines + 1))" "$WB_TMP/walbridge.log")" "stopped while creating replication slot"
no_other_slot() { [[ $(wb_psql source -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'wb_other'") == 0 ]]; }
wb_wait_for "SIGTERM while creating the slot: no slot left behind" 10 no_other_slot
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
wb_psql source -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null

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
