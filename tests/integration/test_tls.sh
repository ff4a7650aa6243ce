#!/usr/bin/env bash
# test_tls.sh — a target and a source that require TLS.  Both clusters have ssl = on
# and only hostssl lines in pg_hba.conf (replication included); the certificate (CN
# localhost, SAN DNS:localhost and IP:127.0.0.1) is signed by a test CA made with
# openssl at test time.  With sslmode=verify-full and the right sslrootcert, check,
# backfill, stream (its replication connection too), verify and health connect,
# keyword DSN and URI; a certificate from another CA (target or source), a host name
# the certificate does not name, a missing root certificate and a connection without
# TLS are refused, with libpq's reason in the message and a non-zero exit.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target

# ---------------------------------------------------------------- certificates
tls=$WB_TMP/tls
mkdir -p "$tls"
make_ca() { # make_ca NAME: self-signed CA NAME.crt / NAME.key
    openssl req -x509 -new -nodes -newkey rsa:2048 -days 2 -sha256 \
        -subj "/CN=walbridge test $1" -keyout "$tls/$1.key" -out "$tls/$1.crt" 2>/dev/null
}
make_ca ca
make_ca other-ca
openssl req -new -nodes -newkey rsa:2048 -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' \
    >"$tls/server.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 2 -sha256 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
wb_check "test server certificate is signed by the test CA" \
    openssl verify -CAfile "$tls/ca.crt" "$tls/server.crt"
chmod 600 "$tls/server.key"
[[ $EUID -eq 0 ]] && chown -R postgres: "$tls"
chmod 755 "$tls"

# ---------------------------------------------------------------- both sides require TLS
require_tls() { # require_tls SIDE: ssl = on, only hostssl lines; restarts the cluster
    local dir=${1^^}_DIR
    wb_psql "$1" -c "ALTER SYSTEM SET ssl = on" \
        -c "ALTER SYSTEM SET ssl_cert_file = '$tls/server.crt'" \
        -c "ALTER SYSTEM SET ssl_key_file = '$tls/server.key'"
    wb_pgc_as_postgres tee "${!dir}/pg_hba.conf" >/dev/null <<'HBA'
local   all         all                   trust
hostssl all         all      127.0.0.1/32 trust
hostssl replication all      127.0.0.1/32 trust
HBA
    wb_pg_stop "$1"
    wb_pg_start_again "$1"
}
require_tls target
require_tls source
# The harness's own DSN (sslmode prefer) keeps working over TLS for wb_psql.
wb_eq "target serves TLS" t "$(wb_psql target -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")"
wb_check "target refuses a connection without TLS" \
    bash -c "! psql -X -d '$TARGET_DSN sslmode=disable' -c 'SELECT 1' 2>$WB_TMP/nossl.err"
wb_contains "... because pg_hba.conf has no entry without encryption" "$(cat "$WB_TMP/nossl.err")" \
    "no encryption"
wb_check "source refuses a replication connection without TLS" \
    bash -c "! psql -X -d '$SOURCE_DSN sslmode=disable replication=database' -c 'IDENTIFY_SYSTEM' 2>/dev/null"

wb_load_clinic source 1
wb_load_clinic target 1

src_full="host=localhost hostaddr=127.0.0.1 port=$SOURCE_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.crt"
cfg_with_target() { # cfg_with_target FILE TARGET_DSN [SOURCE_DSN]: source verify-full by default
    SOURCE_DSN=${3:-$src_full} TARGET_DSN=$2 wb_write_config "$1" \
        '"stream": { "reconnect_max_s": 1, "reconnect_max_attempts": 2 }'
}

# ---------------------------------------------------------------- verify-full, right CA
good=$WB_TMP/good.json
cfg_with_target "$good" \
    "host=localhost hostaddr=127.0.0.1 port=$TARGET_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.crt"
wb_run -c "$good" check
wb_eq "check, verify-full with the right CA (keyword DSN): exit 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_OUT$WB_ERR" | tail -n 20
wb_run -c "$good" backfill --include-stale
wb_eq "backfill over TLS: exit 0" 0 "$WB_RC"
wb_psql source -c "INSERT INTO offices (id, name) SELECT max(id) + 1, 'TLS office' FROM offices"
wb_run -c "$good" stream --until-caught-up
wb_eq "stream --until-caught-up over TLS: exit 0" 0 "$WB_RC"
wb_eq "the streamed row arrived over TLS" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'TLS office'")"
wb_run -c "$good" verify
wb_eq "verify over TLS: identical (exit 0)" 0 "$WB_RC"
wb_run -c "$good" health
wb_eq "health over TLS: OK (exit 0)" 0 "$WB_RC"

uri=$WB_TMP/uri.json
cfg_with_target "$uri" \
    "postgresql://postgres@127.0.0.1:$TARGET_PORT/postgres?sslmode=verify-full&sslrootcert=$tls/ca.crt"
wb_run -c "$uri" check
wb_eq "check, verify-full with the right CA (URI, IP SAN 127.0.0.1): exit 0" 0 "$WB_RC"
wb_run -c "$uri" health --format json
wb_eq "health, URI over TLS: OK (exit 0)" 0 "$WB_RC"

# Everything walbridge opened on the target used TLS: no plain session was possible,
# and a stream running now shows up in pg_stat_ssl.
wb_run_bg -c "$good" stream
stream_pid=$WB_BG_PID
ssl_sessions() {
    test "$(wb_psql target -c "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
        WHERE s.ssl AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
          AND a.application_name <> 'psql'")" -ge 1
}
wb_wait_for "a running stream's target session uses TLS" 30 ssl_sessions || true
walsender_ssl() {
    test "$(wb_psql source -c "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_replication r USING (pid)
        WHERE s.ssl")" -ge 1
}
wb_wait_for "... and its replication connection to the source uses TLS" 30 walsender_ssl || true
kill -TERM "$stream_pid"
wb_bg_wait "$stream_pid" 30
wb_eq "stream over TLS stops cleanly on SIGTERM" 0 "$WB_RC"

# ---------------------------------------------------------------- refused
wrongca=$WB_TMP/wrong-ca.json
cfg_with_target "$wrongca" \
    "host=localhost hostaddr=127.0.0.1 port=$TARGET_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/other-ca.crt"
for cmd in check health "backfill --dry-run" verify "stream --until-caught-up"; do
    # shellcheck disable=SC2086
    wb_run -c "$wrongca" $cmd
    wb_check "$cmd, certificate from another CA: refused (exit $WB_RC)" \
        test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
    wb_contains "$cmd, another CA: says the certificate failed verification" \
        "$WB_OUT$WB_ERR$(tail -n 5 "$WB_TMP/walbridge.log")" "certificate verify failed"
done

wronghost=$WB_TMP/wrong-host.json
cfg_with_target "$wronghost" \
    "host=wrong-name.example hostaddr=127.0.0.1 port=$TARGET_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.crt"
for cmd in check health; do
    wb_run -c "$wronghost" $cmd
    wb_check "$cmd, host name not in the certificate: refused (exit $WB_RC)" \
        test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
    wb_contains "$cmd, wrong host: names the mismatch" \
        "$WB_OUT$WB_ERR$(tail -n 5 "$WB_TMP/walbridge.log")" 'does not match host name "wrong-name.example"'
done

nossl=$WB_TMP/no-ssl.json
cfg_with_target "$nossl" "host=127.0.0.1 port=$TARGET_PORT user=postgres dbname=postgres sslmode=disable"
wb_run -c "$nossl" check
wb_check "check without TLS: refused by the server (exit $WB_RC)" test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
wb_contains "check without TLS: says why" "$WB_OUT$WB_ERR$(tail -n 5 "$WB_TMP/walbridge.log")" \
    "no encryption"

noroot=$WB_TMP/no-root.json
cfg_with_target "$noroot" \
    "host=localhost hostaddr=127.0.0.1 port=$TARGET_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/missing.crt"
wb_run -c "$noroot" check
wb_check "check, sslrootcert missing: refused (exit $WB_RC)" test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
wb_contains "check, sslrootcert missing: names the file" "$WB_OUT$WB_ERR$(tail -n 5 "$WB_TMP/walbridge.log")" \
    "missing.crt"

# A source whose certificate is not trusted: the stream's replication connection and
# backfill's snapshot connection are refused as well.
srcbad=$WB_TMP/source-wrong-ca.json
cfg_with_target "$srcbad" \
    "host=localhost hostaddr=127.0.0.1 port=$TARGET_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.crt" \
    "postgresql://postgres@localhost:$SOURCE_PORT/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=$tls/other-ca.crt"
for cmd in check "stream --until-caught-up" "backfill --dry-run"; do
    # shellcheck disable=SC2086
    wb_run -c "$srcbad" $cmd
    wb_check "$cmd, source certificate from another CA: refused (exit $WB_RC)" \
        test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
    wb_contains "$cmd, source with another CA: says the certificate failed verification" \
        "$WB_OUT$WB_ERR$(tail -n 5 "$WB_TMP/walbridge.log")" "certificate verify failed"
done

wb_finish
