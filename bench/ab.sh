#!/usr/bin/env bash
# bench/ab.sh — two walbridge builds side by side on the catch-up of bench/backfill.sh:
# `backfill --include-stale` into a copy of the same target (1% missing, 0.5% stale),
# then `verify`, alternating the builds PAIRS times (A B, then B A, ...), and the
# medians.  On a shared VM whose speed drifts by 20-40% within an hour, one run of
# each build tells nothing; alternating pairs see the same drift.  Not a CI test.
#
#   bench/ab.sh OLD_BIN NEW_BIN             # SCALE=624 (~1.2M rows), PAIRS=8
#   SCALE=50 PAIRS=3 bench/ab.sh build-old/walbridge build/walbridge
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# == 2 ]] || { echo "usage: bench/ab.sh BIN_A BIN_B" >&2; exit 2; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2") BIN=$BIN_A
[[ -x $BIN_B ]] || { echo "bench: $BIN_B not built" >&2; exit 2; }
SCALE=${SCALE:-624} PAIRS=${PAIRS:-8}
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
# shellcheck source=../tests/harness/clinic_config.sh
source "$ROOT/tests/harness/clinic_config.sh"
bench_setup ab

echo "== setting up: clinic dataset at scale $SCALE, the catch-up's target made by A"
start_cluster source
start_cluster target
bench_quiet_clusters
FIX=$ROOT/tests/fixtures/clinic
q -d "$SOURCE_DSN" -v scale="$SCALE" -f "$FIX/source_schema.sql" -f "$FIX/source_data.sql"
q -d "$SOURCE_DSN" -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"
ADMIN_DSN=$TARGET_DSN
q -d "$ADMIN_DSN" -c "CREATE DATABASE base"
TARGET_DSN=${ADMIN_DSN/dbname=postgres/dbname=base}
q -d "$TARGET_DSN" -f "$FIX/target_schema.sql"
wb_write_config "$WB_TMP/base.json" --log-level warning --slot ab_base
"$BIN_A" -c "$WB_TMP/base.json" backfill >/dev/null 2>"$WB_TMP/err.base" ||
    { tail -n 20 "$WB_TMP/err.base"; exit 3; }
q -d "$SOURCE_DSN" -c "SELECT pg_drop_replication_slot('ab_base')" >/dev/null
q -d "$TARGET_DSN" -f "$ROOT/bench/catchup.sql"
q -d "$TARGET_DSN" -c "DROP SCHEMA walbridge CASCADE" -c "VACUUM ANALYZE" -c "CHECKPOINT"
TARGET_DSN=${ADMIN_DSN/dbname=postgres/dbname=run}
wb_write_config "$WB_TMP/run.json" --log-level warning --slot ab_run

# timed LABEL BIN ARGS...: prints BIN's wall seconds (exit 3 on a failure)
timed() {
    local label=$1 bin=$2 t0 t1 rc=0
    shift 2
    t0=$(now)
    "$bin" -c "$WB_TMP/run.json" "$@" >/dev/null 2>"$WB_TMP/err.$label" || rc=$?
    t1=$(now)
    if ((rc != 0)) && ! [[ $1 == verify && $rc == 1 ]]; then
        echo "bench: $bin $* exited $rc:" >&2
        tail -n 10 "$WB_TMP/err.$label" >&2
        exit 3
    fi
    secs "$t0" "$t1"
}

declare -A CATCHUP=() VERIFY=()
printf '   %-4s %-4s %10s %10s\n' pair bin catch-up verify
for ((pair = 1; pair <= PAIRS; pair++)); do
    order="A B"
    ((pair % 2 == 0)) && order="B A"
    for which in $order; do
        bin=$BIN_A
        [[ $which == B ]] && bin=$BIN_B
        q -d "$SOURCE_DSN" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
            WHERE slot_name = 'ab_run'" >/dev/null
        q -d "$ADMIN_DSN" -c "DROP DATABASE IF EXISTS run" -c "CREATE DATABASE run TEMPLATE base" \
            -c "CHECKPOINT"
        q -d "$SOURCE_DSN" -c "CHECKPOINT"
        c=$(timed catchup "$bin" backfill --include-stale)
        v=$(timed verify "$bin" verify)
        CATCHUP[$which]+=" $c" VERIFY[$which]+=" $v"
        printf '   %-4s %-4s %10s %10s\n' "$pair" "$which" "$c" "$v"
    done
done
echo "== medians [fastest-slowest] over $PAIRS runs each (scale $SCALE, $(nproc) cores)"
echo "   A $BIN_A: catch-up $(median_of "${CATCHUP[A]}") s, verify $(median_of "${VERIFY[A]}") s"
echo "   B $BIN_B: catch-up $(median_of "${CATCHUP[B]}") s, verify $(median_of "${VERIFY[B]}") s"
