#!/usr/bin/env bash
# pgcluster.sh — start/stop a throwaway PostgreSQL 15 cluster (wal_level=logical,
# trust auth on 127.0.0.1, fsync off) for the demo and the benchmarks.
#
#   pgcluster.sh start NAME DIR   initdb DIR if needed, start on a free port (or the port
#                                 it used before); prints NAME_PORT=... and NAME_DSN="..."
#                                 lines that can be eval'ed
#   pgcluster.sh stop DIR         stop it (fast shutdown); no-op when not running
#   pgcluster.sh status DIR       exit 0 when running
#
# Never use such a cluster for real data: fsync is off and anyone on localhost may
# connect as the superuser.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pg.sh"

usage() {
    echo "usage: $0 start NAME DIR | stop DIR | status DIR" >&2
    exit 2
}

cmd=${1:-}
case $cmd in
start)
    [[ $# -eq 3 ]] || usage
    name=$2 dir=$3
    mkdir -p "$(dirname "$dir")"
    if [[ ! -f $dir/PG_VERSION ]]; then
        wb_pgc_init "$dir"
    fi
    port=$(wb_pgc_port "$dir")
    if wb_pgc_running "$dir"; then
        : # already running
    elif [[ -n $port ]] && ! wb_pgc_port_busy "$port"; then
        wb_pgc_start "$dir" "$port" >/dev/null
    else
        port=$(wb_pgc_start "$dir")
    fi
    up=${name^^}
    echo "${up}_PORT=$port"
    echo "${up}_DSN=\"$(wb_pgc_dsn "$port")\""
    ;;
stop)
    [[ $# -eq 2 ]] || usage
    wb_pgc_stop "$2" fast
    ;;
status)
    [[ $# -eq 2 ]] || usage
    wb_pgc_running "$2"
    ;;
*)
    usage
    ;;
esac
