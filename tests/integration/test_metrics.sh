# test_metrics.sh — `walbridge stream --metrics-listen ADDR:PORT` over real HTTP (curl):
# /metrics is Prometheus text whose counters follow the changes the stream applies,
# /healthz is 200 while connected and 503 (with the reason) once the target is gone
# and the stream has disconnected, 404/405 for other paths and methods; a bad or busy
# listen address is refused before anything runs; `walbridge health` agrees with a
# running stream; SIGTERM stops the server with the stream.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 1
wb_load_clinic target 1
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --tables offices,profiles,doctors,patients,orders,order_tags,audit_log \
    '"stream": { "batch_max_ms": 50, "feedback_interval_s": 1, "reconnect_max_s": 1 }'

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
URL=http://127.0.0.1:$PORT

# metric NAME [LABELS]: the value of one sample of /metrics ("" when absent).
metric() {
    local body
    body=$(curl -sf "$URL/metrics" || true)
    awk -v name="$1" -v labels="${2:-}" '
        { split($0, a, " "); key = a[1] }
        labels == "" && key ~ ("^" name "[{]") { print a[2]; exit }
        labels != "" && index(key, name "{") == 1 && index(key, labels) > 0 { print a[2]; exit }' \
        <<<"$body"
}
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
lsn_bytes() { wb_psql source -c "SELECT ('$1'::pg_lsn - '0/0')::bigint"; }

# ---------------------------------------------------------------- refused addresses
wb_run -c "$cfg" stream --metrics-listen localhost:9187
wb_eq "host name refused: exit 2" 2 "$WB_RC"
wb_contains "host name refused: says why" "$WB_ERR" "not an IPv4 address"
wb_run -c "$cfg" stream --metrics-listen 127.0.0.1:70000
wb_eq "port out of range: exit 2" 2 "$WB_RC"
wb_contains "port out of range: says why" "$WB_ERR" "port must be 1..65535"

# ---------------------------------------------------------------- streaming
wb_run_bg -c "$cfg" stream --create-slot --metrics-listen "127.0.0.1:$PORT"
stream_pid=$WB_BG_PID
stream_err=$WB_BG_ERR
healthz_is() { test "$(http_code "$URL/healthz")" = "$1"; }
if ! wb_wait_for "/healthz answers 200 once streaming" 60 healthz_is 200; then
    tail -n 40 "$stream_err"
    wb_finish
fi
wb_contains "/healthz body says ok" "$(curl -s "$URL/healthz")" "ok: connected"
headers=$(curl -s -D - -o /dev/null "$URL/metrics")
wb_contains "/metrics content type is the exposition format" "$headers" \
    "Content-Type: text/plain; version=0.0.4"
wb_eq "/metrics connected gauge" 1 "$(metric walbridge_stream_connected)"
body=$(curl -sf "$URL/metrics" || true)
bad=$(grep -Ev '^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$' <<<"$body" || true)
wb_eq "/metrics: every line is a comment or a sample" "" "$bad"
wb_eq "unknown path: 404" 404 "$(http_code "$URL/nope")"
wb_eq "POST: 405" 405 "$(http_code -X POST "$URL/metrics")"

# Changes on the source show up in the counters.
wb_psql source <<'SQL'
INSERT INTO offices (id, name) SELECT max(id) + 1, 'Metrics office' FROM offices;
UPDATE profiles SET full_name = full_name || ' (m)' WHERE id IN (SELECT id FROM profiles ORDER BY id LIMIT 3);
SQL
end_lsn=$(wb_psql source -c "SELECT pg_current_wal_insert_lsn()")
end_bytes=$(lsn_bytes "$end_lsn")
applied_ge() { local v; v=$(metric walbridge_stream_applied_lsn); [[ -n $v ]] && python3 -c "import sys; sys.exit(0 if float('$v') >= $end_bytes else 1)"; }
wb_wait_for "/metrics applied LSN reaches the source's LSN after the writes ($end_lsn)" 60 applied_ge || true
wb_eq "rows applied: offices insert" 1 \
    "$(metric walbridge_stream_rows_applied_total 'table="public.offices",action="insert"')"
wb_eq "rows applied: profiles update" 3 \
    "$(metric walbridge_stream_rows_applied_total 'table="public.profiles",action="update"')"
wb_check "transactions applied >= 2" test "$(metric walbridge_stream_transactions_applied_total)" -ge 2
wb_check "batches applied >= 1" test "$(metric walbridge_stream_batches_applied_total)" -ge 1
wb_eq "latency histogram count equals batches" \
    "$(metric walbridge_stream_batches_applied_total)" "$(metric walbridge_stream_batch_apply_seconds_count)"
wb_eq "+Inf bucket equals count" "$(metric walbridge_stream_batch_apply_seconds_count)" \
    "$(metric walbridge_stream_batch_apply_seconds_bucket 'le="+Inf"')"
feedback_set() { local v; v=$(metric walbridge_stream_last_feedback_timestamp_seconds); [[ -n $v && $v != 0 ]]; }
wb_wait_for "feedback timestamp set" 15 feedback_set || true
wb_eq "target has the new office" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'Metrics office'")"

# walbridge health agrees with a running, caught-up stream.
# Checked several times over a few seconds: keepalives keep arriving while idle and
# every standby status update must leave the slot where the target says it is.
health_stays_ok() {
    local i
    for i in 1 2 3 4 5 6; do
        wb_run -c "$cfg" health
        ((WB_RC == 0)) || return 1
        sleep 1
    done
}
wb_check "walbridge health stays OK while the caught-up stream idles" health_stays_ok
((WB_RC == 0)) || echo "$WB_OUT"
wb_contains "health sees the slot active" "$WB_OUT" 'plugin wal2json, active (pid'
wb_contains "health sees the walsender" "$WB_OUT" "walsender: state streaming"

# ---------------------------------------------------------------- target lost
wb_pg_stop target
wb_psql source -c "UPDATE offices SET name = name || '!' WHERE id = (SELECT min(id) FROM offices)"
wb_wait_for "/healthz 503 once the target is gone and the stream disconnected" 60 \
    healthz_is 503 || true
wb_contains "/healthz 503 body says why" "$(curl -s "$URL/healthz")" "unhealthy: not connected"
wb_eq "/metrics still served while disconnected" 0 "$(metric walbridge_stream_connected)"
wb_pg_start_again target
wb_wait_for "/healthz back to 200 after the target returns" 90 healthz_is 200 || true
wb_check "reconnects counted" test "$(metric walbridge_stream_reconnects_total)" -ge 1

# ---------------------------------------------------------------- shutdown
kill -TERM "$stream_pid"
wb_bg_wait "$stream_pid" 30
wb_eq "stream exits 0 on SIGTERM" 0 "$WB_RC"
wb_check "server gone with the stream" test "$(http_code "$URL/healthz")" = 000
# A port another process listens on is refused (the stream exits instead of streaming).
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(120)' "$PORT" &
holder=$!
WB_BG_PIDS+=("$holder")
wb_wait_for "port held by another process" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" || true
WB_RUN_TIMEOUT=120 wb_run -c "$cfg" stream --until-caught-up --metrics-listen "127.0.0.1:$PORT"
wb_check "busy port: refused (exit $WB_RC)" test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
wb_contains "busy port: says so" "$WB_ERR" "Address already in use"
kill "$holder" 2>/dev/null || true

if ((WB_FAILED > 0)); then
    echo "----- stream stderr -----"
    tail -n 40 "$stream_err"
fi

wb_finish
