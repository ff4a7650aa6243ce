#!/usr/bin/env bash
# bench/backfill.sh — backfill and verify performance on a ~1.2M-row clinic dataset
# (issue 4, "Performance").  Not a CI test: it starts its own two PostgreSQL 15
# clusters in a temp dir, prints its figures and ratios, and stops them.
#
#   bench/backfill.sh                       # SCALE=624 (~1.2M rows), build/walbridge
#   SCALE=50 WALBRIDGE_BIN=build-x/walbridge bench/backfill.sh
#
# Measures, on one run:
#   1. copy into an empty target (uuid keys, legacy_id UNIQUE, FKs and indexes as a
#      live Supabase target has them): walbridge backfill rows/s, with the indexes in
#      place and with --defer-indexes (into a second empty database), versus
#      a. a plain `COPY ... TO STDOUT | COPY ... FROM STDIN` pipe into a database
#         with the legacy schema (same indexes and foreign keys), table by table;
#      b. `pgcopydb clone` of the source into an empty database (data, indexes,
#         constraints);
#   2. catch-up: 1% of the rows deleted from the target (scattered), 0.5% made stale:
#      wall time of `backfill --include-stale`, then of `verify`;
#   3. peak RSS of every walbridge run (GNU time);
#   4. CPU seconds of each walbridge run: its own, and the source's and target's
#      server processes' (from the postmasters' reaped-children times), which
#      unlike wall time barely depend on what else the machine is doing.
# Every timed step starts on quiet clusters: autovacuum is off (a step's freshly
# loaded tables would otherwise be vacuumed during the next step) and both clusters
# are checkpointed first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${WALBRIDGE_BIN:-$ROOT/build/walbridge}
SCALE=${SCALE:-624}
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
# shellcheck source=../tests/harness/clinic_config.sh
source "$ROOT/tests/harness/clinic_config.sh"
bench_setup bench

# server_cpu NAME: CPU ticks of the cluster's exited backends and workers so far
# (utime + stime of reaped children in /proc/<postmaster>/stat).
server_cpu() {
    awk '{ print $16 + $17 }' "/proc/$(head -n 1 "$WB_TMP/$1/postmaster.pid")/stat"
}

# settle: let the previous step's background work end before the next is timed:
# any autovacuum worker still running (up to 120 s), then both clusters' checkpoints.
settle() {
    local i dsn
    for dsn in "$SOURCE_DSN" "$TARGET_DSN"; do
        for ((i = 0; i < 240; i++)); do
            [[ $(q -d "$dsn" -c "SELECT count(*) FROM pg_stat_activity
                WHERE backend_type = 'autovacuum worker'") == 0 ]] && break
            sleep 0.5
        done
        q -d "$dsn" -c "CHECKPOINT"
    done
}

# run_timed LABEL ARGS...: runs walbridge under GNU time; sets WALL, RSS_MB and CPU
# ("client X s, source Y s, target Z s").
run_timed() {
    local label=$1
    shift
    settle
    local tf=$WB_TMP/time.$label rc=0 s0 t0 s1 t1 user sys
    s0=$(server_cpu source) t0=$(server_cpu target)
    /usr/bin/time -f "%e %M %U %S" -o "$tf" "$BIN" "$@" >"$WB_TMP/out.$label" 2>"$WB_TMP/err.$label" || rc=$?
    sleep 0.5 # let the postmasters reap the backends
    s1=$(server_cpu source) t1=$(server_cpu target)
    read -r WALL RSS_KB user sys < <(tail -n 1 "$tf") # GNU time adds a line on a non-zero exit
    RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')
    CPU=$(awk -v u="$user" -v s="$sys" -v a=$((s1 - s0)) -v b=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "cpu: client %.2f s, source %.2f s, target %.2f s", u + s, a / hz, b / hz }')
    RC=$rc
}

echo "== setting up: clinic dataset at scale $SCALE"
start_cluster source
start_cluster target
bench_quiet_clusters # autovacuum off, WAL segments made once (lib.sh)
FIX=$ROOT/tests/fixtures/clinic
t0=$(now)
q -d "$SOURCE_DSN" -v scale="$SCALE" -f "$FIX/source_schema.sql" -f "$FIX/source_data.sql"
q -d "$TARGET_DSN" -f "$FIX/target_schema.sql"
q -d "$TARGET_DSN" -c "CREATE DATABASE pipe" -c "CREATE DATABASE cloned" -c "CREATE DATABASE deferred"
q -d "${TARGET_DSN/dbname=postgres/dbname=deferred}" -f "$FIX/target_schema.sql"
q -d "${TARGET_DSN/dbname=postgres/dbname=pipe}" -f "$FIX/source_schema.sql"
rows=$(q -d "$SOURCE_DSN" -c "SELECT (SELECT count(*) FROM offices) + (SELECT count(*) FROM profiles)
    + (SELECT count(*) FROM doctors) + (SELECT count(*) FROM patients) + (SELECT count(*) FROM orders)
    + (SELECT count(*) FROM order_tags) + (SELECT count(*) FROM audit_log)")
echo "   $rows source rows, loaded in $(secs "$t0" "$(now)") s"
# The legacy rows are old: frozen, hint bits set, statistics current.  Otherwise the
# first step to read the source (walbridge's) would also pay for setting every hint bit.
q -d "$SOURCE_DSN" -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"

cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --log-level info

echo "== 1. copy into an empty target"
run_timed full -c "$cfg" backfill
[[ $RC == 0 ]] || { tail -n 20 "$WB_TMP/err.full"; exit 3; }
full_wall=$WALL full_rss=$RSS_MB
full_rate=$(awk -v r="$rows" -v s="$full_wall" 'BEGIN { printf "%.0f", r / s }')
echo "   walbridge backfill:  $full_wall s  ($full_rate rows/s, peak RSS $full_rss MB; $CPU)"
sed -n '1,9p' "$WB_TMP/out.full" | sed 's/^/     /'

dcfg=$WB_TMP/deferred.json
(TARGET_DSN=${TARGET_DSN/dbname=postgres/dbname=deferred} wb_write_config "$dcfg" --log-level info --slot walbridge_deferred)
run_timed deferred -c "$dcfg" backfill --defer-indexes
[[ $RC == 0 ]] || { tail -n 20 "$WB_TMP/err.deferred"; exit 3; }
deferred_wall=$WALL deferred_rss=$RSS_MB
deferred_rate=$(rate "$rows" "$deferred_wall")
echo "   walbridge backfill --defer-indexes: $deferred_wall s  ($deferred_rate rows/s, peak RSS $deferred_rss MB; $CPU)"
sed -n '1,9p' "$WB_TMP/out.deferred" | sed 's/^/     /'

PIPE_DSN=${TARGET_DSN/dbname=postgres/dbname=pipe}
settle
t0=$(now)
for t in offices profiles doctors patients orders order_tags audit_log; do
    q -d "$SOURCE_DSN" -c "COPY $t TO STDOUT" | q -d "$PIPE_DSN" -c "COPY $t FROM STDIN"
done
pipe_wall=$(secs "$t0" "$(now)")
pipe_rate=$(awk -v r="$rows" -v s="$pipe_wall" 'BEGIN { printf "%.0f", r / s }')
echo "   plain COPY pipe:     $pipe_wall s  ($pipe_rate rows/s, legacy schema with the same indexes and FKs)"

CLONED_DSN="postgresql://postgres@127.0.0.1:$TARGET_PORT/cloned"
SOURCE_URI="postgresql://postgres@127.0.0.1:$SOURCE_PORT/postgres"
settle
t0=$(now)
if pgcopydb clone --source "$SOURCE_URI" --target "$CLONED_DSN" --dir "$WB_TMP/pgcopydb" \
    --no-owner --no-acl --skip-extensions --not-consistent >"$WB_TMP/pgcopydb.log" 2>&1; then
    pgcopydb_wall=$(secs "$t0" "$(now)")
    echo "   pgcopydb clone:      $pgcopydb_wall s  (data, indexes, constraints)"
else
    pgcopydb_wall=""
    echo "   pgcopydb clone failed:"
    tail -n 5 "$WB_TMP/pgcopydb.log" | sed 's/^/     /'
fi

echo "== 2. catch-up: 1% missing (scattered), 0.5% stale"
q -d "$TARGET_DSN" -f "$ROOT/bench/catchup.sql"
q -d "$TARGET_DSN" -c "VACUUM ANALYZE" -c "CHECKPOINT"

run_timed diff -c "$cfg" verify
diff_wall=$WALL diff_rss=$RSS_MB
echo "   verify before catch-up: $diff_wall s (exit $RC, peak RSS $diff_rss MB; $CPU)"
run_timed catchup -c "$cfg" backfill --include-stale
[[ $RC == 0 ]] || { tail -n 20 "$WB_TMP/err.catchup"; exit 3; }
catchup_wall=$WALL catchup_rss=$RSS_MB
echo "   backfill --include-stale: $catchup_wall s (peak RSS $catchup_rss MB; $CPU)"
sed -n '1,9p' "$WB_TMP/out.catchup" | sed 's/^/     /'
run_timed verify -c "$cfg" verify
verify_wall=$WALL verify_rss=$RSS_MB
echo "   verify after catch-up:  $verify_wall s (exit $RC: $(tail -n 1 "$WB_TMP/out.verify"), peak RSS $verify_rss MB; $CPU)"

echo "== summary (scale $SCALE, $rows rows, $(nproc) cores)"
printf '   %-44s %10s\n' "catch-up backfill --include-stale (s)" "$catchup_wall"
printf '   %-44s %10s\n' "verify (s)" "$verify_wall"
printf '   %-44s %10s\n' "copy into empty target, walbridge (rows/s)" "$full_rate"
printf '   %-44s %10s\n' "copy into empty target, plain pipe (rows/s)" "$pipe_rate"
printf '   %-44s %10s\n' "walbridge / plain pipe (rows/s ratio)" "$(ratio "$full_rate" "$pipe_rate")"
printf '   %-44s %10s\n' "copy, walbridge --defer-indexes (rows/s)" "$deferred_rate"
printf '   %-44s %10s\n' "walbridge --defer-indexes / plain pipe" "$(ratio "$deferred_rate" "$pipe_rate")"
if [[ -n $pgcopydb_wall ]]; then
    printf '   %-44s %10s\n' "pgcopydb clone / walbridge (time ratio)" "$(ratio "$pgcopydb_wall" "$full_wall")"
    printf '   %-44s %10s\n' "pgcopydb clone / walbridge --defer-indexes" "$(ratio "$pgcopydb_wall" "$deferred_wall")"
fi
max_rss=$(printf '%s\n' "$full_rss" "$deferred_rss" "$diff_rss" "$catchup_rss" "$verify_rss" | sort -n | tail -n 1)
printf '   %-44s %10s\n' "walbridge peak RSS, any run (MB)" "$max_rss"
