#!/usr/bin/env bash
# test_backfill_empty.sh — backfill into an empty target (the whole clinic dataset
# is missing): every table is copied without hashing the source rows, in several
# pipelined batches, and ends equal to the source through the mapping.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 3
wb_psql target -f "$WB_FIXTURES/clinic/target_schema.sql"
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" '"backfill": { "batch_rows": 300 }'

wb_run -c "$cfg" backfill
wb_eq "backfill into an empty target exits 0" 0 "$WB_RC"
wb_contains "log says the source rows are copied without comparing" "$WB_ERR" \
    "public.orders: no rows in the target yet"
wb_eq "every source row copied" "$(bf_summary_sum 2)" "$(bf_summary_sum 4)"
for t in $BF_TABLES; do
    wb_check "$t: equal through the mapping" bf_same_table "$t"
done
wb_eq "no dangling uuid reference" 0 "$(bf_orphans)"
wb_eq "checkpoints all done" 7 "$(wb_psql target -c "SELECT count(*) FROM walbridge.backfill_checkpoint WHERE done")"
wb_run -c "$cfg" verify
wb_eq "verify exits 0" 0 "$WB_RC"
wb_run -c "$cfg" backfill
wb_eq "second run copies nothing" 0 "$(bf_summary_sum 4)"
wb_finish
