#!/usr/bin/env bash
# test_check.sh — `walbridge check` against real PostgreSQL 15 clusters: the clinic
# setup passes and prints the plan; each broken setup exits 1 with a message naming
# the table (or side) at fault; an unreachable target exits 3 without leaking the
# password; a malformed config and a transaction-pooler target (port 6543) exit 2
# before any connection is attempted.
#
# Exit-code decision for port 6543: it is a config mistake detectable without a
# database, so check exits 2 (usage/config error), like any other config error.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target
wb_load_clinic source
wb_load_clinic target

CFG=$WB_TMP/walbridge.json
wb_write_config "$CFG"

# check_expect RC DESCRIPTION NEEDLE...: runs check, expects exit RC and every needle in
# stdout+stderr.
check_expect() {
    local rc=$1 desc=$2 needle
    shift 2
    wb_run -c "$CFG" check
    wb_eq "$desc: exit code" "$rc" "$WB_RC"
    for needle in "$@"; do
        wb_contains "$desc: output names '$needle'" "$WB_OUT$WB_ERR" "$needle"
    done
}

# ---------------------------------------------------------------- the good setup
wb_run -c "$CFG" check
wb_eq "clinic setup: exit 0" 0 "$WB_RC"
wb_contains "plan is printed" "$WB_OUT" "Plan (7 tables, parents first)"
wb_contains "key mapping shown" "$WB_OUT" \
    "id -> legacy_id; id keeps the migrated uuid, new rows get v5($WB_UUID_NAMESPACE, 'public.offices:<id>')"
wb_contains "reference remap shown" "$WB_OUT" "office_id gets the uuid of public.offices (id)"
wb_contains "self reference marked as cycle" "$WB_OUT" "public.profiles -> public.profiles  uuid-mapped  [cycle]"
wb_contains "keyless table shown" "$WB_OUT" "public.audit_log -> public.audit_log  keyless"
wb_contains "wal2json verified" "$WB_OUT" "loads (temporary test slot created)"
wb_contains "replication role tried" "$WB_OUT" "replica allowed"
wb_contains "verdict" "$WB_OUT" "Result: ready: 0 errors"
# Parents first: offices before doctors before orders.
order=$(grep -oE '^ +[0-9]+\. public\.[a-z_]+' <<<"$WB_OUT" | awk '{print $2}' | tr '\n' ' ')
wb_eq "tables in processing order" \
    "public.offices public.profiles public.doctors public.patients public.orders public.order_tags public.audit_log " \
    "$order"

# Nothing written: no slot left on the source, no state schema in the target.
wb_eq "no slot left behind" 0 "$(wb_psql source -c 'SELECT count(*) FROM pg_replication_slots')"
wb_eq "no state schema created" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'walbridge'")"

wb_run -c "$CFG" check --format json
wb_eq "json: exit 0" 0 "$WB_RC"
wb_eq "json: ok" true "$(jq -r .ok <<<"$WB_OUT")"
wb_eq "json: 7 tables" 7 "$(jq '.tables | length' <<<"$WB_OUT")"
wb_eq "json: order_tags is identity" identity \
    "$(jq -r '.tables[] | select(.source == "public.order_tags") | .kind' <<<"$WB_OUT")"
wb_eq "json: doctors.office_id is a reference" reference \
    "$(jq -r '.tables[] | select(.source == "public.doctors") | .columns[] | select(.source == "office_id") | .role' <<<"$WB_OUT")"
wb_eq "json: offices.id goes to legacy_id" legacy_id \
    "$(jq -r '.tables[0].columns[] | select(.source == "id") | .target' <<<"$WB_OUT")"

# ---------------------------------------------------------------- warnings only
wb_psql source -c "ALTER TABLE offices ADD COLUMN fax text"
check_expect 0 "source column missing in target (warning)" "WARNING" "public.offices" '"fax"' \
    "fax (not in target)"
wb_psql source -c "ALTER TABLE offices DROP COLUMN fax"

# ---------------------------------------------------------------- problems
wb_psql source -c "ALTER TABLE offices ADD COLUMN floor text"
wb_psql target -c "ALTER TABLE offices ADD COLUMN floor integer"
check_expect 1 "incompatible column types" "ERROR" "public.offices" '"floor"' "incompatible"
wb_psql source -c "ALTER TABLE offices DROP COLUMN floor"
wb_psql target -c "ALTER TABLE offices DROP COLUMN floor"

wb_psql target -c "ALTER TABLE audit_log RENAME TO audit_log_old"
check_expect 1 "missing target table" "ERROR" \
    "public.audit_log: target table public.audit_log does not exist"
wb_psql target -c "ALTER TABLE audit_log_old RENAME TO audit_log"

wb_psql target -c "ALTER TABLE offices RENAME COLUMN legacy_id TO old_id"
check_expect 1 "target without legacy column" "ERROR" \
    'public.offices: target table public.offices has no column "legacy_id" (legacy_key)'
wb_psql target -c "ALTER TABLE offices RENAME COLUMN old_id TO legacy_id"

wb_psql target -c "ALTER TABLE offices DROP CONSTRAINT offices_legacy_id_key"
check_expect 1 "legacy column not unique" "ERROR" "public.offices: legacy_key" \
    "has no UNIQUE index" "CREATE UNIQUE INDEX CONCURRENTLY ON public.offices (legacy_id)"
wb_psql target -c "ALTER TABLE offices ADD CONSTRAINT offices_legacy_id_key UNIQUE (legacy_id)"

wb_psql source -c "ALTER TABLE audit_log REPLICA IDENTITY DEFAULT"
check_expect 1 "keyless table without REPLICA IDENTITY FULL" "ERROR" \
    "public.audit_log: a table without a key needs REPLICA IDENTITY FULL" \
    "ALTER TABLE public.audit_log REPLICA IDENTITY FULL"
wb_run -c "$CFG" check --format json
wb_eq "json: not ok" false "$(jq -r .ok <<<"$WB_OUT")"
wb_eq "json: the error names the table" public.audit_log \
    "$(jq -r '[.problems[] | select(.severity == "error")][0].table' <<<"$WB_OUT")"
wb_psql source -c "ALTER TABLE audit_log REPLICA IDENTITY FULL"

wb_psql source -c "ALTER TABLE doctors REPLICA IDENTITY NOTHING"
check_expect 1 "REPLICA IDENTITY NOTHING" "ERROR" \
    "public.doctors: source table has REPLICA IDENTITY NOTHING" "wal2json drops updates and deletes"
wb_psql source -c "ALTER TABLE doctors REPLICA IDENTITY DEFAULT"

wb_run -c "$CFG" check
wb_eq "setup restored: exit 0 again" 0 "$WB_RC"

# ---------------------------------------------------------------- the slot
wb_psql source -c "SELECT pg_create_logical_replication_slot('walbridge', 'test_decoding')" >/dev/null
check_expect 1 "slot with another plugin" "ERROR" \
    'source: slot "walbridge" exists but is not a wal2json logical slot'
wb_psql source -c "SELECT pg_drop_replication_slot('walbridge')" >/dev/null
wb_psql source -c "SELECT pg_create_logical_replication_slot('walbridge', 'wal2json')" >/dev/null
check_expect 0 "existing wal2json slot" '"walbridge" exists: plugin wal2json, inactive'
wb_psql source -c "SELECT pg_drop_replication_slot('walbridge')" >/dev/null

# A transaction holding an xid makes slot creation wait: check gives up after 10 s with a
# warning naming the blocker, and still exits 0 (nothing is wrong with the setup).
( printf 'BEGIN;\nSELECT txid_current();\nSELECT pg_sleep(25);\nCOMMIT;\n' |
    psql -X -q -d "$SOURCE_DSN" >/dev/null 2>&1 || true ) &
blocker=$!
wb_wait_for "blocking transaction open" 10 bash -c \
    "[[ \$(psql -X -qAt -d '$SOURCE_DSN' -c 'SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL') -ge 1 ]]"
blocker_pid=$(wb_psql source -c "SELECT pid FROM pg_stat_activity WHERE backend_xid IS NOT NULL LIMIT 1")
started=$SECONDS
check_expect 0 "slot creation blocked" "WARNING  source: could not verify wal2json within 10 s" \
    "the oldest is pid $blocker_pid" "pg_terminate_backend($blocker_pid)"
wb_check "slot creation blocked: bounded (took $((SECONDS - started)) s)" \
    test $((SECONDS - started)) -le 20
wb_psql source -c "SELECT pg_terminate_backend($blocker_pid)" >/dev/null
wait "$blocker" || true
wb_eq "blocked check left no slot" 0 "$(wb_psql source -c 'SELECT count(*) FROM pg_replication_slots')"

# ---------------------------------------------------------------- an unprivileged role
# Like a fresh Supabase project role: no REPLICATION, no grants, no BYPASSRLS.
wb_psql source -c "CREATE ROLE wb_plain LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO wb_plain;
                   REVOKE SELECT ON orders FROM wb_plain"
wb_psql target -c "CREATE ROLE wb_plain LOGIN; GRANT USAGE ON SCHEMA public TO wb_plain;
                   GRANT SELECT, INSERT ON offices TO wb_plain"
PLAIN=$WB_TMP/plain.json
jq --arg s "$SOURCE_DSN user=wb_plain" --arg t "$TARGET_DSN user=wb_plain" \
    '.source.dsn = $s | .target.dsn = $t' "$CFG" >"$PLAIN"
wb_run -c "$PLAIN" check
wb_eq "unprivileged role: exit 1" 1 "$WB_RC"
wb_contains "no REPLICATION named" "$WB_OUT" \
    'source: role "wb_plain" has neither REPLICATION nor superuser'
wb_contains "REPLICATION hint" "$WB_OUT" 'ALTER ROLE "wb_plain" WITH REPLICATION;'
wb_contains "source SELECT missing, table named" "$WB_OUT" \
    'public.orders: source role "wb_plain" may not SELECT from public.orders'
wb_contains "target privileges missing, table named" "$WB_OUT" \
    'public.offices: target role "wb_plain" lacks UPDATE, DELETE, TRUNCATE on public.offices'
wb_contains "grant hint" "$WB_OUT" 'GRANT UPDATE, DELETE, TRUNCATE ON public.offices TO "wb_plain";'
wb_contains "state schema cannot be created" "$WB_OUT" \
    'target: state schema "walbridge" does not exist and role "wb_plain" may not create it'
wb_contains "replication role refused is a warning" "$WB_OUT" \
    "WARNING  target: SET session_replication_role = replica is refused"
wb_contains "row level security warned" "$WB_OUT" \
    "public.doctors: row level security on public.doctors applies to the walbridge role"

# ---------------------------------------------------------------- wal_level=replica
wb_psql source -c "ALTER SYSTEM SET wal_level = replica"
wb_pg_stop source
wb_pg_start_again source
wb_eq "source restarted with wal_level=replica" replica "$(wb_psql source -c 'SHOW wal_level')"
check_expect 1 "wal_level=replica" "ERROR" 'source: wal_level is "replica"' \
    "ALTER SYSTEM SET wal_level = logical"
wb_psql source -c "ALTER SYSTEM RESET wal_level"
wb_pg_stop source
wb_pg_start_again source

# ---------------------------------------------------------------- unreachable target
dead_port=$(wb_pgc_free_port)
BAD=$WB_TMP/unreachable.json
jq --arg dsn "host=127.0.0.1 port=$dead_port user=postgres password=secret dbname=postgres connect_timeout=2" \
    '.target.dsn = $dsn' "$CFG" >"$BAD"
wb_run -c "$BAD" check
wb_eq "unreachable target: exit 3" 3 "$WB_RC"
wb_contains "unreachable target: names the target" "$WB_ERR" "cannot connect to target"
wb_check "unreachable target: no password in the output" \
    bash -c '! grep -q secret <<<"$1"' _ "$WB_OUT$WB_ERR"
wb_check "unreachable target: no password in the log" bash -c "! grep -q secret '$WB_TMP/walbridge.log'"
wb_contains "unreachable target: DSN redacted" "$WB_ERR" "password=********"
wb_run -c "$BAD" check --format json
wb_eq "unreachable target, json: exit 3" 3 "$WB_RC"
wb_eq "unreachable target, json: names the side" target "$(jq -r '.unreachable[0].side' <<<"$WB_OUT")"
wb_eq "unreachable target, json: not ok" false "$(jq -r .ok <<<"$WB_OUT")"
wb_check "unreachable target, json: no password" bash -c '! grep -q secret <<<"$1"' _ "$WB_OUT"

# ---------------------------------------------------------------- port 6543
POOL=$WB_TMP/pooler.json
jq '.target.dsn = "postgresql://postgres.abcd:secret@127.0.0.1:6543/postgres"' "$CFG" >"$POOL"
wb_run -c "$POOL" check
wb_eq "transaction pooler: exit 2" 2 "$WB_RC"
wb_contains "transaction pooler: explains" "$WB_ERR" "transaction-mode pooler"
wb_contains "transaction pooler: says what to do" "$WB_ERR" \
    "connect directly on port 5432 or through the session-mode pooler"
wb_contains "transaction pooler: names the key" "$WB_ERR" "target.dsn"
wb_check "transaction pooler: no password in the output" \
    bash -c '! grep -q secret <<<"$1"' _ "$WB_OUT$WB_ERR"

# ---------------------------------------------------------------- malformed config
# The DSNs point at a dead port: had check tried to connect it would exit 3, not 2.
MAL=$WB_TMP/malformed.json
printf '{ "source": { "dsn": "host=127.0.0.1 port=%s" }, "target": ' "$dead_port" >"$MAL"
wb_run -c "$MAL" check
wb_eq "malformed JSON: exit 2" 2 "$WB_RC"
wb_contains "malformed JSON: names the file" "$WB_ERR" "$MAL"
MAL2=$WB_TMP/unknown-table.json
jq --arg dsn "host=127.0.0.1 port=$dead_port user=postgres" \
    '.source.dsn = $dsn | .target.dsn = $dsn | .tables[2].references.office_id = "public.ofices"' \
    "$CFG" >"$MAL2"
wb_run -c "$MAL2" check
wb_eq "bad reference in config: exit 2 before connecting" 2 "$WB_RC"
wb_contains "bad reference in config: names the table" "$WB_ERR" "public.ofices"

wb_run -c "$CFG" check --format yaml
wb_eq "bad --format: exit 2" 2 "$WB_RC"
wb_run -c "$CFG" check --help
wb_eq "--help: exit 0" 0 "$WB_RC"
wb_contains "--help describes exit codes" "$WB_OUT" "Exit codes"

wb_finish
