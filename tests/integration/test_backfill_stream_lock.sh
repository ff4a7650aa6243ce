#!/usr/bin/env bash
# test_backfill_stream_lock.sh — backfill holds the stream's lock for its whole run.
# A `walbridge stream` started while backfill runs waits for it, so no change
# committed after backfill's snapshot reaches the target before backfill's rows do:
# a row deleted on the source meanwhile, missing in the target and still in the
# snapshot, is copied by backfill and then deleted by the stream, never the other
# way round (which would leave it in the target for good).  Checked on the first run
# (backfill creates the slot) and on a re-run; a re-run with a stream already
# running goes on, says so and what it risks.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/stream_lib.bash"

wb_clinic_start
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"

AUDIT_COLS="happened_at, actor, action, detail"
# audit_pick N: the Nth audit_log row of the source (keyless: all its columns), as a
# WHERE condition.
audit_pick() {
    wb_psql source -c "SELECT format('happened_at = %L AND actor = %L AND action = %L AND detail IS NOT DISTINCT FROM %L', $AUDIT_COLS)
                       FROM audit_log ORDER BY $AUDIT_COLS LIMIT 1 OFFSET $1"
}
audit_count() { # audit_count SIDE CONDITION
    wb_psql "$1" -c "SELECT count(*) FROM audit_log WHERE $2"
}
# one_delete SIDE CONDITION: deletes one row matching (the tables may hold duplicates).
one_delete() {
    wb_psql "$1" -c "SET session_replication_role = replica; DELETE FROM audit_log WHERE ctid = (SELECT ctid FROM audit_log WHERE $2 LIMIT 1)" >/dev/null
}
target_locked() { # target_locked TABLE: another session holds an exclusive lock on it
    [[ $(wb_psql target -c "SELECT count(*) FROM pg_locks WHERE relation = '$1'::regclass AND mode = 'AccessExclusiveLock' AND granted") == 1 ]]
}
stream_started() { # stream_started ERRFILE: the stream waits for the lock, or streams
    grep -q -e "waiting for the stream lock" -e "streaming from slot" "$1"
}
# caught_up SLOT: the slot confirmed the source's current WAL position.
caught_up() {
    stream_slot_confirmed_at_least source walbridge "$1"
}

# run_paused NAME ARGS...: starts backfill in the background, paused at order_tags
# (a lock on the target table) so that the source can change while it runs; a stream
# is started meanwhile.  Then, on the source, the picked row (missing in the target)
# is deleted and a row is added.  Checks that the stream waited, that backfill exit 0,
# that after the stream caught up the deleted row is gone and the new one is there.
run_paused() {
    local name=$1 gone=$2 lock_pid bf_pid bf_err st_pid st_err lsn
    shift 2
    wb_eq "$name: the picked row is missing in the target" 0 "$(audit_count target "$gone")"
    wb_psql target -c "BEGIN; LOCK TABLE order_tags IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;" >/dev/null &
    lock_pid=$!
    wb_wait_for "$name: target order_tags locked (backfill pauses there)" 10 target_locked order_tags || true
    wb_run_bg -c "$cfg" backfill "$@"
    bf_pid=$WB_BG_PID bf_err=$WB_BG_ERR
    wb_wait_for "$name: backfill recorded its run" 30 bash -c "[[ \$(psql -X -qAt -d '$TARGET_DSN' -c \"SELECT count(*) FROM walbridge.backfill_run WHERE status = 'running'\" 2>/dev/null) -ge 1 ]]" || true
    wb_run_bg -c "$cfg" stream
    st_pid=$WB_BG_PID st_err=$WB_BG_ERR
    wb_wait_for "$name: a stream started during backfill" 20 stream_started "$st_err" || true
    wb_contains "$name: it waits for the lock" "$(cat "$st_err")" "waiting for the stream lock"
    one_delete source "$gone"
    wb_psql source -c "INSERT INTO audit_log (actor, action, detail) VALUES ('$name', 'during backfill', '{}')" >/dev/null
    lsn=$(wb_psql source -c "SELECT pg_current_wal_lsn()")
    wb_bg_wait "$bf_pid" 60
    wb_eq "$name: backfill exits 0" 0 "$WB_RC"
    wait "$lock_pid" || true
    wb_contains "$name: backfill says it holds the stream lock" "$(cat "$bf_err")" "holding the stream lock"
    wb_wait_for "$name: the stream caught up after backfill" 60 caught_up "$lsn" || true
    kill -TERM "$st_pid" 2>/dev/null || true
    wb_bg_wait "$st_pid" 30
    wb_eq "$name: stream stops with exit 0" 0 "$WB_RC"
    wb_eq "$name: the row deleted during backfill is not in the target" 0 "$(audit_count target "$gone")"
    wb_eq "$name: the row added during backfill arrived once" 1 \
        "$(audit_count target "actor = '$name' AND action = 'during backfill'")"
    wb_run -c "$cfg" verify --show 3
    wb_eq "$name: verify exits 0" 0 "$WB_RC"
    [[ $WB_RC == 0 ]] || echo "$WB_OUT"
}

# ---- first run: backfill creates the slot
gone1=$(audit_pick 3)
one_delete target "$gone1"
run_paused first "$gone1" --include-stale

# ---- re-run (the slot exists), with --include-stale
gone2=$(audit_pick 7)
one_delete target "$gone2"
run_paused rerun "$gone2" --include-stale

# ---- re-run while a stream runs already: goes on and says what it risks
wb_run_bg -c "$cfg" stream
st_pid=$WB_BG_PID
wb_wait_for "a stream runs (it holds the lock)" 20 bash -c "[[ \$(psql -X -qAt -d '$TARGET_DSN' -c \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted\") -ge 1 ]]" || true
wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill beside a running stream exits 0" 0 "$WB_RC"
wb_contains "it warns that a stream runs" "$WB_ERR" "a walbridge stream of slot \"walbridge\" is running on the target"
wb_contains "and names the risk of --include-stale" "$WB_ERR" "--include-stale can write a row's older version"
kill -TERM "$st_pid" 2>/dev/null || true
wb_bg_wait "$st_pid" 30
wb_eq "that stream stops with exit 0" 0 "$WB_RC"
wb_finish
