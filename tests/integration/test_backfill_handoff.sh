#!/usr/bin/env bash
# test_backfill_handoff.sh — Guarantee 1: backfill creates the slot with an exported
# snapshot, waits (bounded, saying for what) for a running write transaction,
# reads the source only through the snapshot, records the consistent point; rows
# written on the source DURING the backfill are not lost: stream brings them from
# the consistent point.  A slot creation that cannot finish times out with exit 3.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_clinic_start

xact_running() { # xact_running SIDE: a transaction holding an xid, other than ours, exists
    [[ $(wb_psql source -c "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()") -ge 1 ]]
}

# ---- bounded wait: a transaction that outlives the timeout
cfg_short=$WB_TMP/short.json
wb_write_config "$cfg_short" --slot walbridge_short '"backfill": { "slot_create_timeout_s": 2 }'
wb_psql source -c "BEGIN; INSERT INTO audit_log (actor, action) VALUES ('long', 'txn'); SELECT pg_sleep(6); COMMIT;" >/dev/null &
long_pid=$!
wb_wait_for "a long write transaction is running" 10 xact_running || true
wb_run -c "$cfg_short" backfill
wb_eq "slot creation that cannot finish exits 3" 3 "$WB_RC"
wb_contains "the error says it timed out" "$WB_ERR" "timed out after 2 s"
wb_contains "while waiting it names the transaction" "$WB_ERR" "waiting"
wb_contains "the hint names the setting" "$WB_ERR" "slot_create_timeout_s"
wait "$long_pid"
wb_eq "no slot left behind" 0 "$(wb_psql source -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walbridge_short'")"
wb_eq "no stream start recorded" 0 "$(wb_psql target -c "SELECT count(*) FROM walbridge.stream_progress")"

# ---- the real run
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" '"backfill": { "slot_create_timeout_s": 60 }'
# A write transaction running when the slot is created: the slot waits for it, and
# its row is in the snapshot (committed before the consistent point).
wb_psql source -c "BEGIN; INSERT INTO offices (name, city) VALUES ('held-office', 'Oslo'); SELECT pg_sleep(4); COMMIT;" >/dev/null &
held_pid=$!
wb_wait_for "a write transaction is running on the source" 10 xact_running || true
held_backend=$(wb_psql source -c "SELECT pid FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() LIMIT 1")
# Pause the backfill at public.orders (a lock on the target) so that the source
# can change while it runs.
wb_psql target -c "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(12); COMMIT;" >/dev/null &
lock_pid=$!
wb_wait_for "target orders locked" 10 bash -c "[[ \$(psql -X -qAt -d '$TARGET_DSN' -c \"SELECT count(*) FROM pg_locks WHERE relation = 'orders'::regclass AND mode = 'AccessExclusiveLock' AND granted\") == 1 ]]" || true

wb_run_bg -c "$cfg" backfill --include-stale
bf_pid=$WB_BG_PID
# The slot is listed as soon as its creation starts; it is consistent once backfill
# has recorded the consistent point in the target.
wb_wait_for "slot created and its consistent point recorded" 30 bash -c "[[ \$(psql -X -qAt -d '$TARGET_DSN' -c \"SELECT count(*) FROM walbridge.stream_progress WHERE slot = 'walbridge'\") == 1 ]]" || true
# Changes DURING the backfill (after the consistent point).
during_order=$(wb_psql source -c "SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET 10")
gone_order=$(wb_psql source -c "SELECT id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_tags t WHERE t.order_id = o.id) ORDER BY id LIMIT 1 OFFSET 20")
wb_psql source <<SQL
INSERT INTO offices (name, city) VALUES ('during-office', 'Bergen');
INSERT INTO orders (patient_id, status, notes) VALUES (1, 'during', 'written while backfill ran');
UPDATE orders SET status = 'changed-during' WHERE id = $during_order;
DELETE FROM orders WHERE id = $gone_order;
SQL
wb_bg_wait "$bf_pid" 60
wb_eq "backfill exits 0" 0 "$WB_RC"
wait "$held_pid" "$lock_pid" || true
bf_err=$(cat "$WB_BG_ERR")
wb_contains "log: waited for the running transaction, named by pid" "$bf_err" "for transaction of pid $held_backend"
wb_eq "the transaction's row, committed before the consistent point, was copied" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'held-office'")"
wb_eq "a row written during the backfill is not in the snapshot copy" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'during-office'")"
slot_lsn=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walbridge'")
wb_eq "consistent point recorded as the stream start" "$slot_lsn" \
    "$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'walbridge'")"

# ---- stream continues at the consistent point: nothing lost, nothing doubled
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream --until-caught-up exits 0" 0 "$WB_RC"
wb_eq "row inserted during the backfill arrived through the slot" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'during-office'")"
wb_eq "update made during the backfill arrived" "changed-during" \
    "$(wb_psql target -c "SELECT status FROM orders WHERE legacy_id = $during_order")"
wb_eq "delete made during the backfill arrived" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM orders WHERE legacy_id = $gone_order")"
wb_eq "held-office exists once (not doubled by the stream)" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'held-office'")"
wb_run -c "$cfg" verify --show 3
wb_eq "verify after backfill + stream exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || { echo "$WB_OUT"; echo "$WB_ERR" | grep -v DEBUG | tail -n 5; }
wb_finish
