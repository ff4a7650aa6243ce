# lib.sh — the integration-test harness: real PostgreSQL 15 clusters, the clinic
# dataset, a matching walbridge.json, and a tiny pass/fail counter.
#
#   source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"   # set -eEuo pipefail, WB_TMP, cleanup trap
#   wb_pg_start source ; wb_pg_start target     # initdb + start; SOURCE_PORT/SOURCE_DSN/SOURCE_DIR
#   wb_pg_stop target [immediate] ; wb_pg_start_again target   # same dir, same port
#   wb_psql source -c "SQL"  /  wb_psql target -f file.sql    # psql -X -v ON_ERROR_STOP=1 -qAt
#   wb_load_clinic source|target [SCALE]          # tests/fixtures/clinic (see its README.md)
#   wb_clinic_start [SCALE | --schema-only]       # both clusters, the clinic dataset on each
#   wb_write_config FILE [--slot S] [--tables t1,t2] [--log-level L] ['"key": {...}' ...]
#   wb_run ARGS...             # "$WALBRIDGE_BIN" ARGS; sets WB_OUT, WB_ERR, WB_RC; never aborts
#   wb_run_bg ARGS...          # background run; sets WB_BG_PID, WB_BG_OUT, WB_BG_ERR (files)
#   wb_bg_wait PID TIMEOUT_S   # waits for a background run; sets WB_RC (124 = timed out, killed)
#   wb_check "description" COMMAND...        # counts a pass/fail, prints which
#   wb_eq "description" EXPECTED ACTUAL ; wb_contains "description" HAYSTACK NEEDLE
#   wb_wait_for "description" TIMEOUT_S COMMAND...  # polls; counted like wb_check; returns 0/1
#   wb_finish                  # prints "N passed, N failed"; exit 1 if any failed (or none ran)
#
# Environment: WALBRIDGE_BIN, WALBRIDGE_SOURCE_DIR (set by ctest; defaults derived from
# this file), WB_KEEP=1 keeps WB_TMP and the clusters' files after the run (clusters are
# still stopped), WB_RUN_TIMEOUT (seconds per wb_run, default 600).
#
# On an unexpected failure or failed checks the tails of the server logs and of
# $WB_TMP/walbridge.log are printed, so `ctest --output-on-failure` shows them.

set -eEuo pipefail

WB_HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg.sh
source "$WB_HARNESS_DIR/pg.sh"

WALBRIDGE_SOURCE_DIR=${WALBRIDGE_SOURCE_DIR:-$(cd "$WB_HARNESS_DIR/../.." && pwd)}
WALBRIDGE_BIN=${WALBRIDGE_BIN:-$WALBRIDGE_SOURCE_DIR/build/walbridge}
WB_FIXTURES=$WALBRIDGE_SOURCE_DIR/tests/fixtures
WB_RUN_TIMEOUT=${WB_RUN_TIMEOUT:-600}
export WALBRIDGE_SOURCE_DIR WALBRIDGE_BIN PGCONNECT_TIMEOUT=10 PGUSER=postgres PGDATABASE=postgres

WB_TMP=$(mktemp -d /tmp/walbridge-test.XXXXXX)
chmod 755 "$WB_TMP"
if [[ $EUID -eq 0 ]]; then
    chown postgres: "$WB_TMP"
fi
export WB_TMP

WB_PASSED=0
WB_FAILED=0
WB_FINISHED=0
WB_CLUSTERS=()
WB_BG_PIDS=()
WB_OUT="" WB_ERR="" WB_RC=0
WB_BG_SEQ=0

# ---------------------------------------------------------------- cleanup

wb__dump_logs() {
    local name f
    for name in "${WB_CLUSTERS[@]}"; do
        f=$WB_TMP/$name/server.log
        if [[ -s $f ]]; then
            echo "----- last lines of $name server log ($f) -----" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    f=$WB_TMP/walbridge.log
    if [[ -s $f ]]; then
        echo "----- last lines of $f -----" >&2
        tail -n 40 "$f" >&2 || true
    fi
}

wb__on_err() {
    local rc=$1 line=$2 cmd=$3
    echo "harness: '$cmd' exited with status $rc (line $line of ${BASH_SOURCE[1]:-$0})" >&2
}

wb__cleanup() {
    local rc=$? pid name
    trap - EXIT ERR
    set +e
    if ((WB_FINISHED == 0)); then
        echo "test aborted before wb_finish: $WB_PASSED passed, $WB_FAILED failed" >&2
        ((rc == 0)) && rc=1
    fi
    if ((rc != 0)); then
        wb__dump_logs
    fi
    for pid in "${WB_BG_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            sleep 0.5
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    for name in "${WB_CLUSTERS[@]}"; do
        wb_pgc_stop "$WB_TMP/$name" immediate
    done
    if [[ ${WB_KEEP:-0} == 1 ]]; then
        echo "WB_KEEP=1: kept $WB_TMP" >&2
    else
        rm -rf "$WB_TMP"
    fi
    exit "$rc"
}
# The reaper: a detached process that waits for this test shell to end and then
# stops whatever it left behind (clusters, background walbridge runs).  The EXIT
# trap normally does that; the reaper covers a SIGKILL, e.g. a ctest timeout.
wb__start_reaper() {
    setsid bash -c '
        source "$1/pg.sh"
        while kill -0 "$2" 2>/dev/null; do sleep 1; done
        if [[ -f $3/.bg_pids ]]; then
            while read -r pid; do
                if [[ $(cat "/proc/$pid/cmdline" 2>/dev/null | tr "\0" " ") == *walbridge* ]]; then
                    kill -KILL "$pid" 2>/dev/null
                fi
            done <"$3/.bg_pids"
        fi
        for pidfile in "$3"/*/postmaster.pid; do
            [[ -f $pidfile ]] && wb_pgc_stop "$(dirname "$pidfile")" immediate
        done
        [[ $4 == 1 ]] || rm -rf "$3"
    ' wb-reaper "$WB_HARNESS_DIR" "$$" "$WB_TMP" "${WB_KEEP:-0}" </dev/null >/dev/null 2>&1 &
}
wb__start_reaper

trap 'wb__on_err $? $LINENO "$BASH_COMMAND"' ERR
trap wb__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- clusters

wb__upper() {
    echo "${1^^}"
}

# wb_pg_start NAME: a fresh cluster in $WB_TMP/NAME; exports NAME_PORT, NAME_DSN, NAME_DIR
# (NAME upper-cased: source -> SOURCE_DSN).
wb_pg_start() {
    local name=$1 dir=$WB_TMP/$1 template=$WB_TMP/.template port up
    if [[ -e $dir ]]; then
        echo "wb_pg_start: cluster '$name' exists already (use wb_pg_start_again)" >&2
        return 1
    fi
    if [[ ! -d $template ]]; then
        wb_pgc_init "$template"
    fi
    wb_pgc_clone "$template" "$dir"
    WB_CLUSTERS+=("$name")
    port=$(wb_pgc_start "$dir")
    up=$(wb__upper "$name")
    printf -v "${up}_PORT" '%s' "$port"
    printf -v "${up}_DSN" '%s' "$(wb_pgc_dsn "$port")"
    printf -v "${up}_DIR" '%s' "$dir"
    export "${up}_PORT" "${up}_DSN" "${up}_DIR"
}

# wb_pg_stop NAME [fast|immediate|smart]
wb_pg_stop() {
    wb_pgc_stop "$WB_TMP/$1" "${2:-fast}"
}

# wb_pg_start_again NAME: restarts a stopped cluster on its old port (DSNs stay valid).
wb_pg_start_again() {
    local dir=$WB_TMP/$1
    wb_pgc_start "$dir" "$(wb_pgc_port "$dir")" >/dev/null
}

# wb_psql NAME PSQL-ARGS...
wb_psql() {
    local up dsnvar
    up=$(wb__upper "$1")
    dsnvar=${up}_DSN
    shift
    psql -X -v ON_ERROR_STOP=1 -qAt -d "${!dsnvar}" "$@"
}

# ---------------------------------------------------------------- dataset and config

# wb_load_clinic source|target [SCALE]: loads the clinic schema and data (source) or
# the schema and the "already migrated" part (target).  SCALE=1 is ~2k rows.
wb_load_clinic() {
    local side=$1 scale=${2:-1} dir=$WB_FIXTURES/clinic
    case $side in
    source)
        wb_psql source -v scale="$scale" -f "$dir/source_schema.sql" -f "$dir/source_data.sql"
        ;;
    target)
        wb_psql target -v scale="$scale" -f "$dir/target_schema.sql" \
            -f "$dir/target_migrated.sql"
        ;;
    *)
        echo "wb_load_clinic: expected source or target, got '$side'" >&2
        return 1
        ;;
    esac
}

# wb_clinic_start [SCALE | --schema-only]: the usual start of a test: starts the source
# and target clusters and loads the clinic dataset on both (wb_load_clinic at SCALE,
# default 1), or with --schema-only creates the clinic tables on both, empty.
wb_clinic_start() {
    wb_pg_start source
    wb_pg_start target
    if [[ ${1:-} == --schema-only ]]; then
        wb_psql source -f "$WB_FIXTURES/clinic/source_schema.sql"
        wb_psql target -f "$WB_FIXTURES/clinic/target_schema.sql"
    else
        wb_load_clinic source "${1:-1}"
        wb_load_clinic target "${1:-1}"
    fi
}

# wb_write_config and the clinic table list live in clinic_config.sh (shared with
# deploy/demo.sh and the benchmarks).
# shellcheck source=clinic_config.sh
source "$WB_HARNESS_DIR/clinic_config.sh"

# ---------------------------------------------------------------- running walbridge

# wb_run ARGS...: runs walbridge with stdin from /dev/null and a timeout; never aborts.
wb_run() {
    local out=$WB_TMP/.run.out err=$WB_TMP/.run.err
    WB_RC=0
    timeout -k 10 "$WB_RUN_TIMEOUT" "$WALBRIDGE_BIN" "$@" </dev/null >"$out" 2>"$err" || WB_RC=$?
    WB_OUT=$(cat "$out")
    WB_ERR=$(cat "$err")
    if ((WB_RC == 124)); then
        echo "wb_run: walbridge $* timed out after ${WB_RUN_TIMEOUT}s" >&2
    fi
    return 0
}

# wb_run_bg ARGS...: starts walbridge in the background (killed at cleanup at the latest).
wb_run_bg() {
    WB_BG_SEQ=$((WB_BG_SEQ + 1))
    WB_BG_OUT=$WB_TMP/bg-$WB_BG_SEQ.out
    WB_BG_ERR=$WB_TMP/bg-$WB_BG_SEQ.err
    "$WALBRIDGE_BIN" "$@" </dev/null >"$WB_BG_OUT" 2>"$WB_BG_ERR" &
    WB_BG_PID=$!
    WB_BG_PIDS+=("$WB_BG_PID")
    echo "$WB_BG_PID" >>"$WB_TMP/.bg_pids"
}

# wb_bg_wait PID TIMEOUT_S: waits for a background run to exit; WB_RC is its exit
# status, or 124 when it did not exit in time (it is then killed with SIGKILL).
wb_bg_wait() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        WB_RC=124
        return 0
    fi
    WB_RC=0
    wait "$pid" || WB_RC=$?
    return 0
}

# ---------------------------------------------------------------- checks

wb__pass() {
    WB_PASSED=$((WB_PASSED + 1))
    echo "ok   - $1"
}

wb__fail() {
    WB_FAILED=$((WB_FAILED + 1))
    echo "FAIL - $1"
}

# wb_check "description" COMMAND...: passes when COMMAND exits 0.  COMMAND runs in
# this shell; its output is shown only when it fails.
wb_check() {
    local desc=$1 out=$WB_TMP/.check.out
    shift
    if "$@" >"$out" 2>&1; then
        wb__pass "$desc"
    else
        wb__fail "$desc   (command: $*)"
        tail -n 20 "$out" | sed 's/^/       | /'
    fi
    return 0
}

wb_eq() {
    if [[ $2 == "$3" ]]; then
        wb__pass "$1"
    else
        wb__fail "$1"
        printf '       expected: %s\n       actual:   %s\n' "$2" "$3"
    fi
    return 0
}

wb_contains() {
    if [[ $2 == *"$3"* ]]; then
        wb__pass "$1"
    else
        wb__fail "$1"
        printf '       expected to contain: %s\n       in: %s\n' "$3" "$(head -c 2000 <<<"$2")"
    fi
    return 0
}

# wb_wait_for "description" TIMEOUT_S COMMAND...: polls COMMAND every 0.2 s until it
# succeeds; counted as a pass or a fail.  Returns 1 on timeout (aborting the test under
# set -e unless used in a condition: `wb_wait_for ... || true`).
wb_wait_for() {
    local desc=$1 deadline=$((SECONDS + $2))
    shift 2
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            wb__pass "$desc"
            return 0
        fi
        sleep 0.2
    done
    if "$@" >/dev/null 2>&1; then
        wb__pass "$desc"
        return 0
    fi
    wb__fail "$desc   (timed out: $*)"
    return 1
}

wb_finish() {
    WB_FINISHED=1
    echo "$WB_PASSED passed, $WB_FAILED failed"
    if ((WB_FAILED > 0)); then
        exit 1
    fi
    if ((WB_PASSED == 0)); then
        echo "no checks ran" >&2
        exit 1
    fi
    exit 0
}
