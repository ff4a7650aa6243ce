#!/usr/bin/env bash
# test_backfill_bad_input.sh — config and CLI mistakes, a target table without its
# legacy key column, and a keyless source table without REPLICA IDENTITY FULL all
# stop backfill before anything is written (no slot, no state schema, no rows),
# with a message naming the file, table or column at fault.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_clinic_start
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"

target_total() {
    wb_psql target -c "SELECT (SELECT count(*) FROM offices) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM audit_log)"
}
nothing_written() { # nothing_written WHAT
    wb_eq "$1: no slot created" 0 "$(wb_psql source -c "SELECT count(*) FROM pg_replication_slots")"
    wb_eq "$1: no state schema created" 0 "$(wb_psql target -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'walbridge'")"
    wb_eq "$1: no target row written" "$total" "$(target_total)"
}
total=$(target_total)

# ---- CLI and config mistakes
wb_run -c "$cfg" backfill --bogus
wb_eq "unknown option exits 2" 2 "$WB_RC"
wb_run -c "$cfg" backfill --batch-rows 0
wb_eq "--batch-rows 0 exits 2" 2 "$WB_RC"
wb_contains "--batch-rows error names the option" "$WB_ERR" "--batch-rows"
wb_run -c "$cfg" backfill --tables public.offices,public.ofices
wb_eq "unknown table in --tables exits 2" 2 "$WB_RC"
wb_contains "the unknown table is named" "$WB_ERR" "public.ofices"
wb_run -c "$WB_TMP/missing.json" backfill
wb_eq "missing config file exits 2" 2 "$WB_RC"
wb_contains "the missing file is named" "$WB_ERR" "missing.json"
sed 's/"public.orders" }/"public.nosuch" }/' "$cfg" >"$WB_TMP/badref.json"
wb_run -c "$WB_TMP/badref.json" backfill
wb_eq "reference to an unconfigured table exits 2" 2 "$WB_RC"
wb_contains "the bad reference is named" "$WB_ERR" "public.nosuch"
nothing_written "config mistakes"
wb_run help
wb_run -c "$cfg" backfill --help
wb_eq "backfill --help exits 0" 0 "$WB_RC"
wb_contains "backfill --help lists --resume" "$WB_OUT" "--resume"
wb_run -c "$cfg" verify --help
wb_contains "verify --help lists --show" "$WB_OUT" "--show"

# ---- target table without the legacy key column
wb_psql target -c "ALTER TABLE offices DROP COLUMN legacy_id"
total=$(target_total)
wb_run -c "$cfg" backfill
wb_eq "target without legacy column: exits 2" 2 "$WB_RC"
wb_contains "message names the table" "$WB_ERR" "public.offices"
wb_contains "message names the column" "$WB_ERR" "legacy_id"
wb_contains "message says nothing was written" "$WB_ERR" "nothing was written"
nothing_written "target without legacy column"
wb_run -c "$cfg" verify
wb_eq "verify refuses it too (exit 2)" 2 "$WB_RC"
wb_load_clinic target 1
total=$(target_total)

# ---- keyless source table without REPLICA IDENTITY FULL
wb_psql source -c "ALTER TABLE audit_log REPLICA IDENTITY DEFAULT"
wb_run -c "$cfg" backfill
wb_eq "keyless table without REPLICA IDENTITY FULL: exits 2" 2 "$WB_RC"
wb_contains "message names the table" "$WB_ERR" "public.audit_log"
wb_contains "message names REPLICA IDENTITY FULL" "$WB_ERR" "REPLICA IDENTITY FULL"
nothing_written "keyless without replica identity"

# ---- a selection without the faulty table runs
wb_run -c "$cfg" backfill --tables offices,profiles
wb_eq "--tables leaving out the faulty table exits 0" 0 "$WB_RC"
wb_eq "only the selected tables are in the summary" "public.offices public.profiles" \
    "$(awk '$1 ~ /^public\./ {print $1}' <<<"$WB_OUT" | tr '\n' ' ' | sed 's/ $//')"
wb_finish
