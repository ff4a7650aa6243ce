#!/usr/bin/env bash
# test_backfill_resume.sh — backfill killed with SIGKILL in the middle of a table,
# then `backfill --resume`: finished tables are skipped, the interrupted one
# continues after its checkpoint, no row is copied twice and none is lost.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 30
wb_load_clinic target 30
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --log-level info

# 120 identical rows in the keyless table: a multiset group larger than a batch.
wb_psql source -c "INSERT INTO audit_log (happened_at, actor, action, detail)
    SELECT '2024-05-01 00:00:00+00', 'bulk', 'same', '{\"n\": 1}' FROM generate_series(1, 120)"

wb_run -c "$cfg" backfill --dry-run
missing_orders=$(awk '$1 == "public.orders" {print $4}' <<<"$WB_OUT")
wb_check "dry run: orders are missing ($missing_orders)" test "$missing_orders" -gt 1000

# Small batches so the orders table takes many checkpointed transactions.
wb_run_bg -c "$cfg" backfill --batch-rows 20
pid=$WB_BG_PID
mid_table() {
    [[ $(wb_psql target -c "SELECT count(*) FROM walbridge.backfill_checkpoint
        WHERE table_name = 'public.orders' AND NOT done AND last_key IS NOT NULL" 2>/dev/null) == 1 ]]
}
wb_wait_for "backfill reaches the middle of public.orders" 60 mid_table || true
kill -KILL "$pid"
wb_bg_wait "$pid" 10
wb_eq "backfill was killed (SIGKILL)" 137 "$WB_RC"

cp_row=$(wb_psql target -c "SELECT done, last_key, rows_copied FROM walbridge.backfill_checkpoint WHERE table_name = 'public.orders'")
wb_check "orders checkpoint is mid-table ($cp_row)" test "${cp_row%%|*}" = f
copied_before=$(( $(bf_count target orders) - ($(bf_count source orders) - missing_orders) ))
wb_check "some but not all orders were copied before the kill ($copied_before of $missing_orders)" \
    test "$copied_before" -gt 0 -a "$copied_before" -lt "$missing_orders"
wb_eq "checkpoint rows_copied matches the committed rows" "$copied_before" "${cp_row##*|}"
wb_eq "finished tables are checkpointed done" "public.doctors|true public.offices|true public.patients|true public.profiles|true" \
    "$(wb_psql target -c "SELECT table_name || '|' || done FROM walbridge.backfill_checkpoint WHERE table_name <> 'public.orders' AND done ORDER BY 1" | tr '\n' ' ' | sed 's/ $//')"

wb_run -c "$cfg" backfill --resume
wb_eq "backfill --resume exits 0" 0 "$WB_RC"
wb_contains "finished tables are skipped" "$WB_OUT" "finished by an earlier run"
wb_contains "orders resumed" "$(grep public.orders <<<"$WB_OUT")" "(resumed)"
wb_contains "log names the resume key" "$WB_ERR" "public.orders: resuming after key"
copied_after=$(awk '$1 == "public.orders" {print $4}' <<<"$WB_OUT")
wb_eq "resumed run copied exactly the rest (no row twice)" "$((missing_orders - copied_before))" "$copied_after"
wb_eq "orders: target row count equals source (no gap, no duplicate)" "$(bf_count source orders)" "$(bf_count target orders)"
wb_eq "orders: legacy ids are distinct" "$(bf_count target orders)" "$(wb_psql target -c "SELECT count(DISTINCT legacy_id) FROM orders")"
wb_eq "audit_log: same multiset size" "$(bf_count source audit_log)" "$(bf_count target audit_log)"
wb_eq "audit_log: all 120 identical rows copied across batches of 20" 120 \
    "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'bulk'")"

wb_run -c "$cfg" verify --format json
wb_eq "verify: nothing missing or extra after resume" 0 "$(jq '[.tables[] | .missing + .extra] | add' <<<"$WB_OUT")"
wb_eq "no dangling uuid reference" 0 "$(bf_orphans)"

wb_run -c "$cfg" backfill --resume
wb_eq "a second --resume has nothing to do" 0 "$(bf_summary_sum 4)"
wb_finish
