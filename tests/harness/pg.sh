# pg.sh — throwaway PostgreSQL 15 clusters for walbridge tests, demo and benchmarks.
#
# Sourced by tests/harness/lib.sh (integration tests) and tests/harness/pgcluster.sh
# (the CLI used by deploy/demo.sh and bench/).  Only functions, no traps and no
# shell options, so the caller decides how failures are handled.
#
#   wb_pgc_init DIR            initdb into DIR (owned by postgres), trust auth, UTF8, C.UTF-8
#   wb_pgc_start DIR [PORT]    write the per-run settings and start (free port if none given);
#                              prints the port on stdout
#   wb_pgc_stop DIR [MODE]     pg_ctl stop -m MODE (fast by default; immediate for crash tests)
#   wb_pgc_port DIR            the port the cluster in DIR was configured with
#   wb_pgc_dsn PORT            "host=127.0.0.1 port=PORT user=postgres dbname=postgres"
#
# Every cluster is independent (own data dir, own port, own socket directory = DIR),
# so one can be stopped while the other keeps running.  PostgreSQL refuses to run
# as root, so when we are root every server-side command runs as the postgres user.

WB_PG_BIN=${WB_PG_BIN:-/usr/lib/postgresql/15/bin}

# Runs a command as the postgres OS user (plain when not root).
wb_pgc_as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# True when something already listens on 127.0.0.1:PORT or the port cannot be bound.
wb_pgc_port_busy() {
    local port=$1
    local listening
    listening=$(ss -Htln 2>/dev/null | awk '{print $4}' | grep -Ec "[:.]${port}\$" || true)
    if [[ $listening != 0 ]]; then
        return 0
    fi
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$port" <<'EOF' 2>/dev/null && return 1 || return 0
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
EOF
    fi
    # Fallback: a successful connect means a listener.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 0
    fi
    return 1
}

# Prints a random free port in 20000-40000.
wb_pgc_free_port() {
    local port tries=0
    while ((tries < 200)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 20001))
        if ! wb_pgc_port_busy "$port"; then
            echo "$port"
            return 0
        fi
        tries=$((tries + 1))
    done
    echo "pg.sh: no free port found in 20000-40000" >&2
    return 1
}

wb_pgc_dsn() {
    echo "host=127.0.0.1 port=$1 user=postgres dbname=postgres"
}

# initdb into DIR.  DIR must not exist or be empty; its parent must be traversable
# by the postgres user.
wb_pgc_init() {
    local dir=$1
    mkdir -p "$dir"
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$dir"
    fi
    chmod 700 "$dir"
    if ! wb_pgc_as_postgres "$WB_PG_BIN/initdb" -D "$dir" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir.initdb.log" 2>&1; then
        echo "pg.sh: initdb failed for $dir:" >&2
        cat "$dir.initdb.log" >&2
        return 1
    fi
    rm -f "$dir.initdb.log"
    # PostgreSQL 15.19+ loads only output plugins listed in output_plugin_libraries
    # (default 'pgoutput, test_decoding'): allow wal2json where the setting exists.
    local known
    known=$(wb_pgc_as_postgres "$WB_PG_BIN/postgres" --describe-config 2>/dev/null |
        grep -c '^output_plugin_libraries' || true)
    if [[ $known != 0 ]]; then
        echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2json'" |
            wb_pgc_as_postgres tee -a "$dir/postgresql.conf" >/dev/null
    fi
    # Settings common to every run; port and socket directory are written by
    # wb_pgc_start (walbridge_port.conf), so a copied data directory works too.
    wb_pgc_as_postgres tee -a "$dir/postgresql.conf" >/dev/null <<EOF

# --- walbridge test harness (tests/harness/pg.sh) ---
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
fsync = off                    # tests and demos only: never in production
full_page_writes = off
shared_buffers = 128MB
max_connections = 50
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
include_if_exists = 'walbridge_port.conf'
EOF
}

wb_pgc_port() {
    if [[ -f $1/walbridge_port.conf ]]; then
        sed -n "s/^port = \\([0-9]*\\).*/\\1/p" "$1/walbridge_port.conf"
    fi
}

# Starts the cluster in DIR on PORT (or a free port), waiting until it accepts
# connections.  Retries with another port when the chosen one was taken by a
# concurrent run.  Prints the port.
wb_pgc_start() {
    local dir=$1 port=${2:-} attempt fixed=0
    [[ -n $port ]] && fixed=1
    for attempt in 1 2 3 4 5; do
        if [[ -z $port ]]; then
            port=$(wb_pgc_free_port) || return 1
        fi
        printf "port = %s\nunix_socket_directories = '%s'\n" "$port" "$dir" |
            wb_pgc_as_postgres tee "$dir/walbridge_port.conf" >/dev/null
        if wb_pgc_as_postgres "$WB_PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            start >/dev/null 2>&1; then
            echo "$port"
            return 0
        fi
        if ((fixed)); then
            break
        fi
        # Most likely the port was grabbed between the probe and the bind: retry.
        port=""
        sleep 0.$((RANDOM % 5 + 1))
    done
    echo "pg.sh: could not start the cluster in $dir; last lines of $dir/server.log:" >&2
    tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
    return 1
}

wb_pgc_stop() {
    local dir=$1 mode=${2:-fast}
    [[ -f $dir/postmaster.pid ]] || return 0
    wb_pgc_as_postgres "$WB_PG_BIN/pg_ctl" -D "$dir" -m "$mode" -w -t 60 stop >/dev/null 2>&1 ||
        [[ ! -f $dir/postmaster.pid ]]
}

# Copies an initialised, stopped cluster directory (faster than a second initdb).
wb_pgc_clone() {
    local template=$1 dir=$2
    cp -a "$template" "$dir" || return 1
    rm -f "$dir/walbridge_port.conf" "$dir/server.log" "$dir/postmaster.pid"
}

# True when the cluster in DIR is running.
wb_pgc_running() {
    [[ -f $1/postmaster.pid ]] &&
        wb_pgc_as_postgres "$WB_PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}
