#!/usr/bin/env bash
# test_secrets.sh — passwords never leak.  Source and target require SCRAM password
# authentication for the walbridge roles; the config holds the passwords literally
# (keyword DSN "password=..." for the source, URI "user:pass@" for the target).  Every
# command (check, backfill --dry-run, backfill, verify, health in all formats, stream
# --until-caught-up, a running stream's /metrics, /healthz and process title) and
# every failure (wrong port, wrong password) is grepped, stdout, stderr and log file,
# for both passwords: they must never appear.  Passwords from the environment
# ("${VAR}" in the config) and from a libpq passfile work too.  A config file that
# others can read and that holds a literal password gets a warning; mode 0600 does not.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

SRC_PW='Src-pw-7Kq9xVZt'
TGT_PW='Tgt-pw-3Mw8pRYd'

wb_pg_start source
wb_pg_start target
wb_load_clinic source 1
wb_load_clinic target 1

# The walbridge roles log in with SCRAM passwords; the harness's postgres role keeps
# trust (wb_psql) so the test can inspect both sides.
require_scram() {
    local side=$1 role=$2 pw=$3 dir
    dir=${side^^}_DIR
    wb_psql "$side" -c "SET password_encryption = 'scram-sha-256'" \
        -c "CREATE ROLE $role LOGIN SUPERUSER REPLICATION PASSWORD '$pw'"
    wb_pgc_as_postgres tee "${!dir}/pg_hba.conf" >/dev/null <<HBA
local all         all                    trust
host  all         postgres 127.0.0.1/32  trust
host  replication postgres 127.0.0.1/32  trust
host  all         all      127.0.0.1/32  scram-sha-256
host  replication all      127.0.0.1/32  scram-sha-256
HBA
    wb_psql "$side" -c "SELECT pg_reload_conf()" >/dev/null
}
require_scram source wb_src "$SRC_PW"
require_scram target wb_tgt "$TGT_PW"

src_dsn="host=127.0.0.1 port=$SOURCE_PORT user=wb_src password=$SRC_PW dbname=postgres"
tgt_dsn="postgresql://wb_tgt:$TGT_PW@127.0.0.1:$TARGET_PORT/postgres?application_name=wbtest"
wb_check "the source refuses wb_src without a password" \
    bash -c "! psql -X -w -d 'host=127.0.0.1 port=$SOURCE_PORT user=wb_src dbname=postgres' -c 'SELECT 1'"
wb_check "the source accepts wb_src with its password" \
    psql -X -w -d "$src_dsn" -c "SELECT 1"

log=$WB_TMP/walbridge.log
cfg=$WB_TMP/walbridge.json
SOURCE_DSN=$src_dsn TARGET_DSN=$tgt_dsn wb_write_config "$cfg" --log-file "$log" \
    '"stream": { "batch_max_ms": 50, "feedback_interval_s": 1, "reconnect_max_s": 1, "reconnect_max_attempts": 2 }'
chmod 600 "$cfg"

ALL_OUT=$WB_TMP/all-output.txt
: >"$ALL_OUT"
# run_and_keep DESCRIPTION ARGS...: wb_run, and keeps everything it printed for the grep.
run_and_keep() {
    local desc=$1
    shift
    wb_run "$@"
    printf '===== %s (exit %s)\n%s\n%s\n' "$desc" "$WB_RC" "$WB_OUT" "$WB_ERR" >>"$ALL_OUT"
}
# no_secret DESCRIPTION TEXT: neither password occurs in TEXT.
no_secret() {
    local where=()
    [[ $2 == *"$SRC_PW"* ]] && where+=("source password")
    [[ $2 == *"$TGT_PW"* ]] && where+=("target password")
    if ((${#where[@]})); then
        wb__fail "$1: contains the ${where[*]}"
        grep -n -e "$SRC_PW" -e "$TGT_PW" <<<"$2" | head -n 5 | sed 's/^/       | /'
    else
        wb__pass "$1: no password"
    fi
}

# ---------------------------------------------------------------- every command
run_and_keep "check" -c "$cfg" check
wb_eq "check connects with the passwords (exit 0)" 0 "$WB_RC"
run_and_keep "check json" -c "$cfg" check --format json
wb_eq "check --format json: exit 0" 0 "$WB_RC"
run_and_keep "backfill --dry-run" -c "$cfg" backfill --dry-run
wb_eq "backfill --dry-run: exit 0" 0 "$WB_RC"
run_and_keep "backfill" -c "$cfg" backfill --include-stale
wb_eq "backfill --include-stale: exit 0" 0 "$WB_RC"
run_and_keep "verify" -c "$cfg" verify
wb_eq "verify after backfill: identical (exit 0)" 0 "$WB_RC"
run_and_keep "verify json" -c "$cfg" verify --format json --show 5
wb_eq "verify --format json: exit 0" 0 "$WB_RC"
for fmt in text json prometheus; do
    run_and_keep "health $fmt" -c "$cfg" health --format "$fmt"
    wb_check "health --format $fmt answers (exit $WB_RC, not UNKNOWN)" test "$WB_RC" -le 2
done

wb_psql source -c "INSERT INTO offices (id, name) SELECT max(id) + 1, 'Secret office' FROM offices"
run_and_keep "stream --until-caught-up" -c "$cfg" stream --until-caught-up
wb_eq "stream --until-caught-up: exit 0" 0 "$WB_RC"
wb_eq "the streamed row arrived" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'Secret office'")"

# ---------------------------------------------------------------- a running stream
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
wb_run_bg -c "$cfg" stream --metrics-listen "127.0.0.1:$PORT"
stream_pid=$WB_BG_PID
healthz_ok() { test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" = 200; }
wb_wait_for "running stream serves /healthz" 60 healthz_ok || true
wb_psql source -c "UPDATE offices SET name = name || ' (s)' WHERE name = 'Secret office'"
sleep 1
metrics=$(curl -s "http://127.0.0.1:$PORT/metrics" || true)
wb_contains "/metrics answers" "$metrics" "walbridge_stream_connected"
no_secret "/metrics" "$metrics"
no_secret "/healthz" "$(curl -s "http://127.0.0.1:$PORT/healthz" || true)"
cmdline=$(tr '\0' ' ' <"/proc/$stream_pid/cmdline" 2>/dev/null || true)
wb_contains "process title readable" "$cmdline" "stream"
no_secret "process title (/proc/$stream_pid/cmdline)" "$cmdline"
environ=$(tr '\0' '\n' <"/proc/$stream_pid/environ" 2>/dev/null || true)
no_secret "process environment" "$environ"
# What the servers show other sessions: pg_stat_activity / pg_stat_replication.
no_secret "source pg_stat_activity" \
    "$(wb_psql source -c "SELECT application_name, query FROM pg_stat_activity WHERE usename = 'wb_src'")"
no_secret "target pg_stat_activity" \
    "$(wb_psql target -c "SELECT application_name, query FROM pg_stat_activity WHERE usename = 'wb_tgt'")"
kill -TERM "$stream_pid"
wb_bg_wait "$stream_pid" 30
wb_eq "running stream exits 0 on SIGTERM" 0 "$WB_RC"
state=$(pg_dump -d "$TARGET_DSN" --data-only --schema=walbridge 2>&1 || true)
wb_contains "the state schema dumps" "$state" "COPY walbridge."
no_secret "walbridge's state tables in the target" "$state"
cat "$WB_BG_OUT" "$WB_BG_ERR" >>"$ALL_OUT"

# ---------------------------------------------------------------- failures
bad_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
badcfg=$WB_TMP/wrong-port.json
SOURCE_DSN=${src_dsn/port=$SOURCE_PORT/port=$bad_port} \
    TARGET_DSN=${tgt_dsn/:$TARGET_PORT\//:$bad_port/} wb_write_config "$badcfg" --log-file "$log" \
    '"stream": { "reconnect_max_s": 1, "reconnect_max_attempts": 2 }'
chmod 600 "$badcfg"
run_and_keep "check, wrong port" -c "$badcfg" check
wb_eq "check, wrong port: exit 3" 3 "$WB_RC"
wb_contains "check, wrong port: names the port" "$WB_OUT$WB_ERR" "$bad_port"
run_and_keep "health, wrong port" -c "$badcfg" health --format json
wb_check "health, wrong port: CRITICAL or UNKNOWN (exit $WB_RC)" test "$WB_RC" -ge 2
run_and_keep "backfill --dry-run, wrong port" -c "$badcfg" backfill --dry-run
wb_eq "backfill --dry-run, wrong port: exit 3" 3 "$WB_RC"
run_and_keep "verify, wrong port" -c "$badcfg" verify
wb_eq "verify, wrong port: exit 3" 3 "$WB_RC"
run_and_keep "stream, wrong port" -c "$badcfg" stream --until-caught-up
wb_eq "stream, wrong port: gives up with exit 3" 3 "$WB_RC"
# The same failures logged as JSON lines (escaping must not undo the redaction).
jsonlog=$WB_TMP/walbridge-json.log
sed -e 's/"format": "text"/"format": "json"/' -e "s|\"file\": \"$log\"|\"file\": \"$jsonlog\"|" \
    "$badcfg" >"$WB_TMP/wrong-port-json.json"
chmod 600 "$WB_TMP/wrong-port-json.json"
run_and_keep "check, wrong port, JSON log" -c "$WB_TMP/wrong-port-json.json" check
run_and_keep "stream, wrong port, JSON log" -c "$WB_TMP/wrong-port-json.json" stream
wb_contains "JSON log written, with the redacted DSN" "$(cat "$jsonlog" 2>/dev/null)" "password=********"
no_secret "JSON log file" "$(cat "$jsonlog" 2>/dev/null)"

pwcfg=$WB_TMP/wrong-password.json
SOURCE_DSN=${src_dsn/$SRC_PW/${SRC_PW}x} TARGET_DSN=${tgt_dsn/$TGT_PW/${TGT_PW}x} \
    wb_write_config "$pwcfg" --log-file "$log"
chmod 600 "$pwcfg"
run_and_keep "check, wrong passwords" -c "$pwcfg" check
wb_eq "check, wrong passwords: exit 3" 3 "$WB_RC"
wb_contains "check, wrong passwords: says authentication failed" "$WB_OUT$WB_ERR" \
    "password authentication failed"
run_and_keep "health, wrong passwords" -c "$pwcfg" health
wb_check "health, wrong passwords: not OK (exit $WB_RC)" test "$WB_RC" -ge 2

# A malformed config that still holds the passwords: the error must not quote them.
brokencfg=$WB_TMP/broken.json
sed 's/"slot": /"slott": /' "$cfg" >"$brokencfg"
chmod 600 "$brokencfg"
run_and_keep "check, misspelt key" -c "$brokencfg" check
wb_eq "misspelt key: exit 2" 2 "$WB_RC"
printf '{ "source": { "dsn": "%s" }, "target": { "dsn": "%s" ' "$src_dsn" "$tgt_dsn" >"$brokencfg"
run_and_keep "check, truncated JSON" -c "$brokencfg" check
wb_eq "truncated JSON: exit 2" 2 "$WB_RC"

# ---------------------------------------------------------------- the grep
no_secret "stdout and stderr of every run" "$(cat "$ALL_OUT")"
wb_check "the log file was written" test -s "$log"
no_secret "log file $log" "$(cat "$log")"

# ---------------------------------------------------------------- other sources of passwords
envcfg=$WB_TMP/env.json
SOURCE_DSN='${WB_TEST_SOURCE_URL}' TARGET_DSN='${WB_TEST_TARGET_URL}' \
    wb_write_config "$envcfg" --log-file "$log"
chmod 644 "$envcfg"
WB_TEST_SOURCE_URL=$src_dsn WB_TEST_TARGET_URL=$tgt_dsn wb_run -c "$envcfg" check
wb_eq "passwords from the environment (\${VAR} in a 0644 config): check exit 0" 0 "$WB_RC"
wb_check "no readable-config warning when the config holds only \${VAR}" \
    bash -c "! grep -q 'readable by other users' <<<\"\$1\"" _ "$WB_ERR"
no_secret "check with passwords from the environment" "$WB_OUT$WB_ERR"

passfile=$WB_TMP/pgpass
printf '127.0.0.1:%s:*:wb_src:%s\n127.0.0.1:%s:*:wb_tgt:%s\n' \
    "$SOURCE_PORT" "$SRC_PW" "$TARGET_PORT" "$TGT_PW" >"$passfile"
chmod 600 "$passfile"
pfcfg=$WB_TMP/passfile.json
SOURCE_DSN="host=127.0.0.1 port=$SOURCE_PORT user=wb_src dbname=postgres" \
    TARGET_DSN="postgresql://wb_tgt@127.0.0.1:$TARGET_PORT/postgres" \
    wb_write_config "$pfcfg" --log-file "$log"
PGPASSFILE=$passfile wb_run -c "$pfcfg" check
wb_eq "passwords from a libpq passfile (PGPASSFILE): check exit 0" 0 "$WB_RC"
no_secret "check with a passfile" "$WB_OUT$WB_ERR"
PGPASSFILE=/nonexistent wb_run -c "$pfcfg" check
wb_eq "no password anywhere: check exit 3" 3 "$WB_RC"

# ---------------------------------------------------------------- readable config warning
# The warning may go to stderr or, when the config names a log file, to that file.
chmod 644 "$cfg"
for cmd in "check" "backfill --dry-run" "verify" "health" "stream --until-caught-up"; do
    : >"$log"
    # shellcheck disable=SC2086
    run_and_keep "$cmd, 0644 config" -c "$cfg" $cmd
    wb_contains "$cmd with a 0644 config holding a literal password: warning" \
        "$WB_ERR$(cat "$log")" "readable by other users"
    cat "$log" >>"$ALL_OUT"
done
chmod 600 "$cfg"
: >"$log"
wb_run -c "$cfg" backfill --dry-run
wb_check "a 0600 config: no warning" \
    bash -c "! grep -q 'readable by other users' <<<\"\$1\"" _ "$WB_ERR$(cat "$log")"
no_secret "stdout, stderr and log of the warning runs" "$(cat "$ALL_OUT")"

wb_finish
