#!/usr/bin/env bash
# demo.sh — walbridge end to end on this machine, in a few minutes.
#
#   bash deploy/demo.sh          install packages (as root), build, start a throwaway
#                                source and target cluster under /tmp/walbridge-demo,
#                                load the clinic dataset, then check, backfill, verify,
#                                write to the source, stream, health
#   bash deploy/demo.sh stop     stop both clusters (files stay under /tmp/walbridge-demo)
#   bash deploy/demo.sh clean    stop them and remove /tmp/walbridge-demo
#
#   SCALE=N bash deploy/demo.sh  bigger dataset (SCALE=1 is ~2k rows, 625 is ~1.2M)
#   WALBRIDGE_DEMO_DIR, WALBRIDGE_BUILD_DIR   override /tmp/walbridge-demo and ./build
#
# The clusters stay up after the demo so you can look around with psql.  They trust
# every local connection and run with fsync=off: never put real data in them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${WALBRIDGE_DEMO_DIR:-/tmp/walbridge-demo}
scale=${SCALE:-1}
pgcluster=$root/tests/harness/pgcluster.sh
build=${WALBRIDGE_BUILD_DIR:-$root/build}
bin=$build/walbridge
config=$demo/walbridge.json

say() {
    printf '\n\033[1m==> %s\033[0m\n' "$*"
}

stop_clusters() {
    local name
    for name in source target; do
        if [[ -d $demo/$name ]]; then
            bash "$pgcluster" stop "$demo/$name"
            echo "stopped $name ($demo/$name)"
        fi
    done
}

case ${1:-run} in
stop)
    stop_clusters
    exit 0
    ;;
clean)
    stop_clusters
    rm -rf "$demo"
    echo "removed $demo"
    exit 0
    ;;
run) ;;
*)
    echo "usage: $0 [run|stop|clean]" >&2
    exit 2
    ;;
esac

# Runs one walbridge step; a failing (or not yet implemented) step does not stop the demo.
step() {
    local rc=0
    printf '\n\033[1m$ walbridge -c %s %s\033[0m\n' "$config" "$*"
    if [[ ! -x $bin ]]; then
        echo "(walbridge was not built: $bin missing)"
        return 0
    fi
    timeout 300 "$bin" -c "$config" "$@" </dev/null || rc=$?
    echo "-> exit code $rc"
}

psql_on() {
    local dsn=$1
    shift
    psql -X -v ON_ERROR_STOP=1 -q -d "$dsn" "$@"
}

say "1/8 packages"
if [[ $EUID -eq 0 ]]; then
    bash "$root/tests/harness/install-deps.sh"
else
    echo "not root: skipping package installation (tests/harness/install-deps.sh lists them)"
fi

say "2/8 build ($build)"
if cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target walbridge; then
    "$bin" version || true
else
    echo "build failed; the walbridge steps below will be skipped"
fi

say "3/8 throwaway clusters in $demo"
stop_clusters >/dev/null 2>&1 || true
rm -rf "$demo"
mkdir -p "$demo"
chmod 755 "$demo"
eval "$(bash "$pgcluster" start source "$demo/source")"
eval "$(bash "$pgcluster" start target "$demo/target")"
export SOURCE_DSN TARGET_DSN
echo "source: $SOURCE_DSN"
echo "target: $TARGET_DSN"

say "4/8 clinic dataset (SCALE=$scale): full source, partly migrated target"
fixtures=$root/tests/fixtures/clinic
psql_on "$SOURCE_DSN" -v scale="$scale" -f "$fixtures/source_schema.sql" \
    -f "$fixtures/source_data.sql"
psql_on "$TARGET_DSN" -v scale="$scale" -f "$fixtures/target_schema.sql" \
    -f "$fixtures/target_migrated.sql"
for t in offices profiles doctors patients orders order_tags audit_log; do
    printf '  %-11s source %7s rows   target %7s rows\n' "$t" \
        "$(psql_on "$SOURCE_DSN" -At -c "SELECT count(*) FROM $t")" \
        "$(psql_on "$TARGET_DSN" -At -c "SELECT count(*) FROM $t")"
done

say "5/8 config $config"
# shellcheck source=../tests/harness/clinic_config.sh
source "$root/tests/harness/clinic_config.sh"
wb_write_config "$config" --log-file "$demo/walbridge.log" --log-level info
cat "$config"

say "6/8 check, backfill, verify"
step check
step backfill
echo "(verify exits 1 next: the migrated part has stale rows that a plain backfill leaves alone)"
step verify
step backfill --include-stale
step verify

say "7/8 the legacy system keeps writing; stream catches up"
psql_on "$SOURCE_DSN" <<'SQL'
INSERT INTO offices (name, city) VALUES ('Office Ünterföhring', 'Ünterföhring');
INSERT INTO patients (office_id, doctor_id, full_name, email)
    VALUES (1, 2, 'Siobhán O''Neill', 'siobhan@example.org');
INSERT INTO orders (patient_id, doctor_id, status, amount, external_ref, items, tags)
    VALUES (1, 2, 'new', 42.50, 9007199254740993, '[{"sku": "SKU-demo", "qty": 1}]', '{demo}');
UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id = 3;
DELETE FROM order_tags WHERE order_id = 2;
INSERT INTO audit_log (actor, action, detail) VALUES ('demo', 'login', '{"from": "demo.sh"}');
SQL
echo "source writes done (insert office/patient/order, update order 3, delete tags of order 2)"
step stream --until-caught-up
step health
step verify

say "8/8 done"
stop_prefix=""
if [[ -n ${WALBRIDGE_DEMO_DIR:-} ]]; then
    stop_prefix="WALBRIDGE_DEMO_DIR=$demo "
fi
cat <<EOF
The clusters are still running:
  psql "$SOURCE_DSN"     # legacy source
  psql "$TARGET_DSN"     # target (Supabase stand-in)
  walbridge log:         $demo/walbridge.log
  config:                $config
Try:  $bin -c $config health --format prometheus
Stop: ${stop_prefix}bash deploy/demo.sh stop      (remove everything: ... clean)
EOF
