#!/usr/bin/env bash
# bench/lib.sh — what the benchmarks share: PostgreSQL 15 on PATH, a temp dir
# owned by postgres (WB_TMP), clusters started in it and stopped on exit, and
# small timing helpers.  Sourced by bench/*.sh after they set ROOT and BIN:
#
#   bench_setup NAME        # WB_TMP=/tmp/walbridge-NAME.<random>, cleanup trap
#   start_cluster source    # sets SOURCE_DSN, SOURCE_PORT
#   BENCH_CLEANUP_HOOK=fn   # called first by the exit trap (e.g. stop a stream)
PGBIN=/usr/lib/postgresql/15/bin
export PATH=$PGBIN:$PATH PGUSER=postgres PGDATABASE=postgres
export PGOPTIONS="-c client_min_messages=warning"
# shellcheck source=../tests/harness/pg.sh
source "$ROOT/tests/harness/pg.sh"

CLUSTERS=()
BENCH_CLEANUP_HOOK=""

bench_cleanup() {
    local c
    [[ -n $BENCH_CLEANUP_HOOK ]] && "$BENCH_CLEANUP_HOOK"
    for c in "${CLUSTERS[@]}"; do wb_pgc_stop "$c" immediate >/dev/null 2>&1 || true; done
    rm -rf "$WB_TMP"
}

bench_setup() { # bench_setup NAME: checks BIN, makes WB_TMP, installs the exit trap
    [[ -x $BIN ]] || { echo "bench: $BIN not built (set WALBRIDGE_BIN)" >&2; exit 2; }
    WB_TMP=$(mktemp -d "/tmp/walbridge-$1.XXXXXX")
    chmod 755 "$WB_TMP"
    [[ $EUID -eq 0 ]] && chown postgres: "$WB_TMP"
    export WB_TMP
    trap bench_cleanup EXIT
}

start_cluster() { # start_cluster NAME -> sets NAME_DSN, NAME_PORT
    local dir=$WB_TMP/$1 port
    wb_pgc_init "$dir" >/dev/null
    CLUSTERS+=("$dir")
    port=$(wb_pgc_start "$dir")
    printf -v "${1^^}_DSN" '%s' "$(wb_pgc_dsn "$port")"
    printf -v "${1^^}_PORT" '%s' "$port"
}

q() { psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }

# bench_quiet_clusters: autovacuum off on SOURCE_DSN and TARGET_DSN (a step's freshly
# loaded tables would otherwise be vacuumed during the next step), WAL segments kept for
# reuse and made once on the target before any step (otherwise the first steps create
# and zero-fill them and the later ones reuse them).
bench_quiet_clusters() {
    local dsn
    for dsn in "$SOURCE_DSN" "$TARGET_DSN"; do
        q -d "$dsn" -c "ALTER SYSTEM SET autovacuum = off" -c "ALTER SYSTEM SET min_wal_size = '2GB'" \
            -c "ALTER SYSTEM SET max_wal_size = '4GB'" -c "SELECT pg_reload_conf()" >/dev/null
    done
    q -d "$TARGET_DSN" -c "CREATE TABLE wb_warm AS SELECT g, repeat('x', 200) AS pad
        FROM generate_series(1, 6000000) g" -c "DROP TABLE wb_warm" -c "CHECKPOINT"
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
# median_of "t1 t2 ...": the median, and "[min-max]" when more than one.
median_of() {
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f", m; if (NR > 1) printf " [%.2f-%.2f]", v[1], v[NR] }'
}
