#!/usr/bin/env bash
# test_backfill_snapshot.sh — the lanes of one backfill read the source in the run's
# one snapshot, so the handoff to the stream has no gap and no double apply.
#
# A source writer holds an ACCESS EXCLUSIVE lock on patients while it inserts two
# patients (one key below every existing one, one above: one in each of the two
# key-range pieces the lanes copy), and commits only once backfill, already inside
# its snapshot, waits for that lock.  A lane reading with a snapshot of its own
# would then see the two rows and copy them, and the stream, which replays that
# commit, would meet them as conflicts.  Expected: backfill copies neither, the
# stream inserts both with no conflict, verify finds the two sides equal.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 5
wb_psql target -f "$WB_FIXTURES/clinic/target_schema.sql"
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --log-level debug

# The slot and the stream's start come first (audit_log only: no table references
# it, so the others are still loaded straight in on the lanes), so the writer's
# commit below comes after the slot's consistent point: the stream must replay it.
wb_run -c "$cfg" backfill --tables audit_log
wb_eq "audit_log first: creates the slot (exit 0)" 0 "$WB_RC"

low=-7
high=$(($(wb_psql source -c "SELECT max(id) FROM patients") + 1000))
writer_out=$WB_TMP/writer.out
bf_writer_during "the writer holds its lock on patients" source patients "ACCESS EXCLUSIVE" \
    "INSERT INTO patients (id, office_id, full_name) VALUES ($low, 1, 'written during backfill (low)'),
     ($high, 1, 'written during backfill (high)')" "$writer_out"
writer=$BF_WRITER_PID

# Without audit_log: a re-run with a keyless table reads a temporary slot's snapshot,
# whose creation would wait for the writer's transaction.
wb_run -c "$cfg" backfill --tables offices,profiles,doctors,patients,orders,order_tags
wait "$writer" || true
wb_eq "backfill exits 0" 0 "$WB_RC"
wb_check "backfill waited for the lock after taking its snapshot (in the lanes' planning or copy)" \
    grep -qE '^waiter: (SELECT reltuples|COPY )' "$writer_out"
wb_contains "patients was copied on the lanes, in pieces" "$WB_ERR" "public.patients: copied in"
wb_eq "the writer's two patients are committed on the source" 2 \
    "$(wb_psql source -c "SELECT count(*) FROM patients WHERE id IN ($low, $high)")"
wb_eq "backfill copied neither (they came after its snapshot)" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM patients WHERE legacy_id IN ($low, $high)")"
wb_eq "every patient of the snapshot was copied" $(($(bf_count source patients) - 2)) \
    "$(bf_count target patients)"

wb_run -c "$cfg" stream --until-caught-up
wb_eq "the stream catches up (exit 0)" 0 "$WB_RC"
wb_eq "the stream inserted both, once each" 2 \
    "$(wb_psql target -c "SELECT count(*) FROM patients WHERE legacy_id IN ($low, $high)")"
wb_eq "with no conflict (nothing was applied twice)" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.conflicts")"
for t in $BF_TABLES; do
    wb_check "$t equal through the mapping" bf_same_table "$t"
done
wb_run -c "$cfg" verify
wb_eq "verify exits 0" 0 "$WB_RC"

# A re-run diffs its tables one after another; once a table's merge ends, the next
# table's source query goes ahead on another source connection (the lookahead).
# That connection must read the run's snapshot too.  Some rows of patients and orders
# are missing in the target (so both have batches to write).  A writer holding an
# ACCESS EXCLUSIVE lock on patients adds an order and changes an existing one, and
# commits once backfill's diff of patients waits for that lock: after the snapshot,
# before orders' query goes.  Read in a snapshot of its own, orders' diff would copy
# the new order and rewrite the changed one, and the stream, replaying that commit,
# would meet them as conflicts.  (A lock on orders itself would not tell: a query
# that waited for a lock still reads the snapshot it took before waiting.)
wb_psql target -c "SET session_replication_role = replica" \
    -c "DELETE FROM patients WHERE legacy_id % 10 = 3" -c "DELETE FROM orders WHERE legacy_id % 10 = 4"
new_order=$(($(wb_psql source -c "SELECT max(id) FROM orders") + 1000))
changed=$(wb_psql source -c "SELECT min(id) FROM orders WHERE id % 10 = 5")
before=$(wb_psql target -c "SELECT status FROM orders WHERE legacy_id = $changed")
bf_writer_during "the writer holds its lock on patients" source patients "ACCESS EXCLUSIVE" \
    "INSERT INTO orders (id, patient_id, doctor_id, status, amount) SELECT $new_order, patient_id,
     doctor_id, 'written during backfill', 1.00 FROM orders WHERE id = $changed;
     UPDATE orders SET status = 'changed during backfill' WHERE id = $changed" "$writer_out"
writer=$BF_WRITER_PID
# Two source connections take turns: without offices, orders is the fourth table and
# goes on the lookahead's own connection (the session's first one holds the snapshot).
wb_run -c "$cfg" backfill --include-stale --tables profiles,doctors,patients,orders,order_tags
wait "$writer" || true
wb_eq "the re-run exits 0" 0 "$WB_RC"
wb_contains "orders' source query went ahead while patients' rows were written" "$WB_ERR" \
    "public.orders: source diff, sent ahead"
wb_check "backfill waited for the lock after taking its snapshot" \
    grep -qE '^waiter: COPY ' "$writer_out"
wb_eq "the missing patients were copied" "$(bf_count source patients)" "$(bf_count target patients)"
wb_eq "backfill did not copy the order added after its snapshot" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM orders WHERE legacy_id = $new_order")"
wb_eq "nor rewrite the order changed after its snapshot" "$before" \
    "$(wb_psql target -c "SELECT status FROM orders WHERE legacy_id = $changed")"
wb_eq "every other order is there" $(($(bf_count source orders) - 1)) "$(bf_count target orders)"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "the stream catches up (exit 0)" 0 "$WB_RC"
wb_eq "the stream applied the writer's commit" "1 changed during backfill" \
    "$(wb_psql target -c "SELECT (SELECT count(*) FROM orders WHERE legacy_id = $new_order) || ' ' ||
        (SELECT status FROM orders WHERE legacy_id = $changed)")"
wb_eq "with no conflict (nothing was applied twice)" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.conflicts")"
wb_run -c "$cfg" verify
wb_eq "verify exits 0" 0 "$WB_RC"
wb_finish
