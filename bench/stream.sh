#!/usr/bin/env bash
# bench/stream.sh — `walbridge stream` throughput against the two references of
# issue 5 ("Performance"), on one run, the same two PostgreSQL 15 clusters and the
# same data.  Not a CI test: it starts its own clusters in a temp dir, prints the
# figures and ratios, and stops them.
#
#   bench/stream.sh                                  # build/walbridge
#   WALBRIDGE_BIN=build-x/walbridge ROWS="100000" bench/stream.sh
#
# Scenarios (each a single source transaction on public.bench, id bigint PK,
# md5 text, numeric(12,2), timestamptz):
#   insert-100k, insert-1M   INSERT ... SELECT generate_series in one transaction
#   update-100k              100,000 single-row UPDATEs in one transaction
# Consumers, measured one at a time (each with a fresh slot created just before the
# transaction, so nothing else is decoded):
#   recvlogical  pg_recvlogical -P wal2json format-version 2 (walbridge's options)
#                to /dev/null: the decode ceiling.  Done when the walsender has
#                sent past the commit (pg_stat_replication.sent_lsn reaches the
#                source's WAL position after COMMIT): wal2json's output of the
#                whole transaction has been written to the connection.
#   native       publication/subscription into an identical-schema database on the
#                target cluster (copy_data = false)
#   walbridge    walbridge stream --create-slot into the target (identity mapping)
# Time = from the source COMMIT returning until the last row is visible in the
# target, or the walsender has sent past it (both polled every 20 ms).
# rows/s = rows / time.  Each scenario runs REPEAT times per consumer (default 3);
# the median time is reported, with the fastest and slowest in brackets.
# Then a mixed OLTP run per consumer (native, walbridge): freshness lag p50/p99.
# walbridge peak RSS: VmHWM of the stream process (one process per scenario), and
# the CPU seconds it used from the transaction's start until applied.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${WALBRIDGE_BIN:-$ROOT/build/walbridge}
ROWS=${ROWS:-"100000 1000000"}
UPDATES=${UPDATES:-100000}
REPEAT=${REPEAT:-3}
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
bench_setup bench-stream
STREAM_PID=""
stop_stream_on_exit() {
    [[ -n $STREAM_PID ]] && kill -TERM "$STREAM_PID" 2>/dev/null && wait "$STREAM_PID" 2>/dev/null
    return 0
}
BENCH_CLEANUP_HOOK=stop_stream_on_exit

start_cluster source
start_cluster target
NATIVE_DSN="host=127.0.0.1 port=$TARGET_PORT user=postgres dbname=native"
SCHEMA="CREATE TABLE bench (id bigint PRIMARY KEY, label text, amount numeric(12,2), at timestamptz);
        CREATE TABLE fresh (id bigint PRIMARY KEY, client int, at timestamptz);"
q -d "$SOURCE_DSN" -c "$SCHEMA" -c "CREATE PUBLICATION bench_pub FOR TABLE bench, fresh"
q -d "$TARGET_DSN" -c "$SCHEMA"
q -d "$TARGET_DSN" -c "CREATE DATABASE native"
q -d "$NATIVE_DSN" -c "$SCHEMA"

CFG=$WB_TMP/walbridge.json
cat >"$CFG" <<EOF
{
  "source": { "dsn": "$SOURCE_DSN" },
  "target": { "dsn": "$TARGET_DSN" },
  "slot": "walbridge",
  "uuid_namespace": "0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42",
  "log": { "file": "$WB_TMP/walbridge.log", "level": "info" },
  "tables": [ { "source": "public.bench", "target": "public.bench", "key": "id" },
              { "source": "public.fresh", "target": "public.fresh", "key": "id" } ]
}
EOF

# reset_data PRELOAD: empties every copy of bench; with PRELOAD > 0 loads rows
# 1..PRELOAD into the source and the same rows into both targets (for updates).
reset_data() {
    q -d "$SOURCE_DSN" -c "TRUNCATE bench, fresh"
    q -d "$TARGET_DSN" -c "TRUNCATE bench, fresh"
    q -d "$NATIVE_DSN" -c "TRUNCATE bench, fresh"
    if (($1 > 0)); then
        q -d "$SOURCE_DSN" -c "INSERT INTO bench SELECT g, md5(g::text), g / 100.0, '2024-01-01' FROM generate_series(1, $1) g"
        q -d "$SOURCE_DSN" -c "COPY bench TO STDOUT" | q -d "$TARGET_DSN" -c "COPY bench FROM STDIN"
        q -d "$SOURCE_DSN" -c "COPY bench TO STDOUT" | q -d "$NATIVE_DSN" -c "COPY bench FROM STDIN"
    fi
    q -d "$SOURCE_DSN" -c "CHECKPOINT"
}

# run_txn KIND N: runs the measured source transaction; prints nothing; sets T0.
run_txn() {
    case $1 in
    insert) q -d "$SOURCE_DSN" -c "INSERT INTO bench SELECT g, md5(g::text), g / 100.0, now() FROM generate_series(1, $2) g" ;;
    update) q -d "$SOURCE_DSN" -c "DO \$\$ BEGIN FOR i IN 1..$2 LOOP UPDATE bench SET amount = amount + 1 WHERE id = i; END LOOP; END \$\$" ;;
    esac
    T0=$(now)
}

# The condition that says the whole transaction arrived, as SQL on a target.
done_sql() {
    case $1 in
    insert) echo "SELECT 1 FROM bench WHERE id = $2" ;;
    update) echo "SELECT 1 FROM bench WHERE id = $2 AND amount = $2 / 100.0 + 1" ;;
    esac
}

# wait_target DSN SQL: polls every 20 ms until SQL returns a row; sets T1.
wait_target() {
    until [[ -n $(q -d "$1" -c "$2") ]]; do sleep 0.02; done
    T1=$(now)
}

measure_recvlogical() { # KIND N
    local pid end
    q -d "$SOURCE_DSN" -c "SELECT 1 FROM pg_create_logical_replication_slot('bench_recv', 'wal2json')" >/dev/null
    pg_recvlogical -d "$SOURCE_DSN options='-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex'" \
        --slot bench_recv --start --no-loop -f /dev/null -o format-version=2 -o include-xids=1 \
        -o include-lsn=1 -o include-types=0 -o include-timestamp=1 -o add-tables=public.bench \
        2>"$WB_TMP/recv.err" &
    pid=$!
    sleep 1
    run_txn "$1" "$2"
    end=$(q -d "$SOURCE_DSN" -c "SELECT pg_current_wal_lsn()")
    until [[ $(q -d "$SOURCE_DSN" -c "SELECT sent_lsn >= '$end' FROM pg_stat_replication WHERE application_name = 'pg_recvlogical'") == t ]]; do
        sleep 0.02
    done
    T1=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    until [[ $(q -d "$SOURCE_DSN" -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'bench_recv'") == f ]]; do
        sleep 0.1
    done
    q -d "$SOURCE_DSN" -c "SELECT pg_drop_replication_slot('bench_recv')" >/dev/null
}

measure_native() { # KIND N
    start_native
    run_txn "$1" "$2"
    wait_target "$NATIVE_DSN" "$(done_sql "$1" "$2")"
    stop_native
}

start_walbridge() { # a fresh slot, a running stream (STREAM_PID)
    q -d "$TARGET_DSN" -c "DELETE FROM walbridge.stream_progress" 2>/dev/null || true
    : >"$WB_TMP/walbridge.log"
    "$BIN" -c "$CFG" stream --create-slot </dev/null >"$WB_TMP/stream.out" 2>&1 &
    STREAM_PID=$!
    until grep -q 'streaming from slot' "$WB_TMP/walbridge.log" 2>/dev/null; do
        kill -0 "$STREAM_PID" || { cat "$WB_TMP/stream.out" >&2; exit 3; }
        sleep 0.1
    done
    sleep 1
}

stop_walbridge() {
    kill -TERM "$STREAM_PID"
    wait "$STREAM_PID" || true
    STREAM_PID=""
    # The walsender may outlive the client by a moment: drop the slot once it is inactive.
    until [[ $(q -d "$SOURCE_DSN" -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'walbridge'") == f ]]; do
        sleep 0.1
    done
    q -d "$SOURCE_DSN" -c "SELECT pg_drop_replication_slot('walbridge')" >/dev/null
}

start_native() {
    q -d "$NATIVE_DSN" -c "CREATE SUBSCRIPTION bench_sub CONNECTION '$SOURCE_DSN' PUBLICATION bench_pub WITH (copy_data = false)"
    until [[ $(q -d "$NATIVE_DSN" -c "SELECT pid IS NOT NULL FROM pg_stat_subscription WHERE subname = 'bench_sub'") == t ]]; do
        sleep 0.1
    done
    sleep 1
}

stop_native() {
    q -d "$NATIVE_DSN" -c "DROP SUBSCRIPTION bench_sub"
}

measure_walbridge() { # KIND N
    start_walbridge
    local cpu0 cpu1
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$STREAM_PID/stat")
    run_txn "$1" "$2"
    wait_target "$TARGET_DSN" "$(done_sql "$1" "$2")"
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$STREAM_PID/stat")
    CPU_S=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    local hwm
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$STREAM_PID/status")
    RSS_MB=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
    stop_walbridge
}

printf '%-12s %-11s %10s %9s %10s %12s\n' scenario consumer rows seconds "rows/s" "walbridge/x"
scenarios=()
for n in $ROWS; do scenarios+=("insert:$n"); done
scenarios+=("update:$UPDATES")
for sc in "${scenarios[@]}"; do
    kind=${sc%%:*} n=${sc##*:}
    declare -A R=() TIMES=() RSS=() CPU=()
    for ((rep = 1; rep <= REPEAT; rep++)); do
        for consumer in recvlogical native walbridge; do
            if [[ $kind == update ]]; then reset_data "$n"; else reset_data 0; fi
            RSS_MB="" CPU_S=""
            "measure_$consumer" "$kind" "$n"
            TIMES[$consumer]+=" $(secs "$T0" "$T1")"
            [[ -n $RSS_MB ]] && RSS[$consumer]+=" $RSS_MB" && CPU[$consumer]+=" $CPU_S"
        done
    done
    for consumer in recvlogical native walbridge; do
        med=$(median_of "${TIMES[$consumer]}")
        R[$consumer]=$(rate "$n" "${med%% *}")
        extra=""
        [[ -n ${RSS[$consumer]:-} ]] &&
            extra="  peak RSS $(tr ' ' '\n' <<<"${RSS[$consumer]}" | sort -n | tail -1) MB, walbridge CPU $(median_of "${CPU[$consumer]}") s"
        printf '%-12s %-11s %10s %9s %10s%s\n' "$kind-$n" "$consumer" "$n" "$med" "${R[$consumer]}" "$extra"
    done
    printf '%-12s walbridge/recvlogical %s   walbridge/native %s\n' "$kind-$n" \
        "$(ratio "${R[walbridge]}" "${R[recvlogical]}")" "$(ratio "${R[walbridge]}" "${R[native]}")"
    unset R TIMES RSS CPU
done

# ---- mixed OLTP: freshness lag (newest applied change vs now), sampled every 100 ms
# pgbench, 4 clients at OLTP_TPS in total for OLTP_SECONDS: each transaction inserts a
# bench row and a fresh row (client, clock_timestamp()) and updates a bench row.  The
# sampler reads now() - max(at) of fresh on the consumer's target.  The 1/TPS gap
# between source writes is part of every figure alike.
OLTP_SECONDS=${OLTP_SECONDS:-60}
OLTP_TPS=${OLTP_TPS:-400}
if ((OLTP_SECONDS > 0)); then
    script=$WB_TMP/oltp.pgbench
    cat >"$script" <<'EOS'
\set id random(1, 1000000000)
\set upd random(1, 100000)
BEGIN;
INSERT INTO bench VALUES (1000000 + :id, md5(:id::text), :id / 100.0, now()) ON CONFLICT DO NOTHING;
UPDATE bench SET amount = amount + 1 WHERE id = :upd;
INSERT INTO fresh VALUES (:id, :client_id, clock_timestamp()) ON CONFLICT DO NOTHING;
COMMIT;
EOS
    declare -A P50=() P99=()
    for consumer in native walbridge; do
        reset_data 100000
        "start_$consumer"
        dsn=$TARGET_DSN
        [[ $consumer == native ]] && dsn=$NATIVE_DSN
        pgbench -n -c 4 -j 2 -R "$OLTP_TPS" -T "$OLTP_SECONDS" -f "$script" "$SOURCE_DSN" >"$WB_TMP/oltp.out" 2>&1 &
        bpid=$!
        sleep 2
        : >"$WB_TMP/lag.txt"
        while kill -0 "$bpid" 2>/dev/null; do
            q -d "$dsn" -c "SELECT extract(epoch FROM now() - max(at)) * 1000 FROM fresh" >>"$WB_TMP/lag.txt" || true
            sleep 0.1
        done
        wait "$bpid" || true
        "stop_$consumer"
        sort -n "$WB_TMP/lag.txt" | grep -v '^$' >"$WB_TMP/lag.sorted"
        n=$(wc -l <"$WB_TMP/lag.sorted")
        P50[$consumer]=$(awk -v n="$n" 'NR == int(n * 0.50) + 1 { printf "%.0f", $1 }' "$WB_TMP/lag.sorted")
        P99[$consumer]=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 { printf "%.0f", $1 }' "$WB_TMP/lag.sorted")
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WB_TMP/oltp.out" | head -1)
        printf '%-12s %-11s %6s samples  tps %s  freshness lag p50 %s ms  p99 %s ms\n' oltp "$consumer" \
            "$n" "${tps:-?}" "${P50[$consumer]}" "${P99[$consumer]}"
    done
    printf '%-12s walbridge/native p99 %s\n' oltp "$(ratio "${P99[walbridge]}" "${P99[native]}")"
fi
