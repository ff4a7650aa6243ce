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
wb_finish
