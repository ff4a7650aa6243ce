# test_deploy.sh — what deploy/ promises, checked against real clusters: the
# least-privilege grant scripts give walbridge exactly what it needs (read +
# replication on the source; write, its state schema, replica role and RLS
# bypass on the target) and nothing more; the example configs and the systemd
# units are valid; with the demo config and those roles, `walbridge check`
# passes and a backfill + verify leave no difference.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"
deploy=$WALBRIDGE_SOURCE_DIR/deploy

# --- static checks
for f in "$deploy"/examples/*.json; do
    wb_check "$(basename "$f") is valid JSON" jq -e . "$f"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    units=$WB_TMP/units
    mkdir -p "$units"
    for f in "$deploy"/systemd/*; do
        # verify insists that ExecStart exists: point it at a binary that does.
        sed 's|/usr/local/bin/walbridge|/bin/true|' "$f" >"$units/$(basename "$f")"
    done
    verify_out=$(cd "$units" && systemd-analyze verify ./*.service ./*.timer 2>&1 || true)
    wb_eq "systemd-analyze verify reports nothing for deploy/systemd" "" "$verify_out"
else
    echo "skip: systemd-analyze not installed"
fi

# --- grants against the clinic dataset
wb_pg_start source
wb_pg_start target
wb_load_clinic source 1
wb_load_clinic target 1
wb_psql source -v password=src-secret -f "$deploy/sql/source_grants.sql"
wb_psql target -v password=tgt-secret -f "$deploy/sql/target_grants.sql"
wb_psql source -f "$deploy/sql/source_grants.sql" # re-runnable
wb_psql target -f "$deploy/sql/target_grants.sql"

src_wb="host=127.0.0.1 port=$SOURCE_PORT user=walbridge dbname=postgres"
tgt_wb="host=127.0.0.1 port=$TARGET_PORT user=walbridge dbname=postgres"
as_wb() {
    psql -X -v ON_ERROR_STOP=1 -qAt -d "$1" -c "$2"
}
fails_as_wb() {
    ! psql -X -v ON_ERROR_STOP=1 -qAt -d "$1" -c "$2" >/dev/null 2>&1
}

wb_eq "source: walbridge reads the tables" 700 "$(as_wb "$src_wb" 'SELECT count(*) FROM orders')"
wb_check "source: walbridge cannot write a table" fails_as_wb "$src_wb" \
    "UPDATE orders SET status = 'x' WHERE id = 1"
wb_check "source: walbridge cannot create tables" fails_as_wb "$src_wb" "CREATE TABLE public.x (a int)"
wb_check "source: walbridge can create a wal2json slot" as_wb "$src_wb" \
    "SELECT pg_create_logical_replication_slot('grants_probe', 'wal2json')"
wb_check "source: walbridge can drop its slot" as_wb "$src_wb" \
    "SELECT pg_drop_replication_slot('grants_probe')"
wb_contains "source: walbridge can open a replication connection" \
    "$(psql -X -qAt -d "$src_wb replication=database" -c 'IDENTIFY_SYSTEM' 2>&1)" "|postgres"

wb_eq "target: walbridge sees every row despite RLS" \
    "$(wb_psql target -c 'SELECT count(*) FROM orders')" "$(as_wb "$tgt_wb" 'SELECT count(*) FROM orders')"
wb_eq "target: walbridge can SET session_replication_role = replica" replica \
    "$(as_wb "$tgt_wb" 'SET session_replication_role = replica; SHOW session_replication_role')"
wb_check "target: as replica, a child row may precede its parent (no FK check)" as_wb "$tgt_wb" \
    "SET session_replication_role = replica;
     INSERT INTO orders (legacy_id, patient_id) VALUES (-5, gen_random_uuid());
     DELETE FROM orders WHERE legacy_id = -5"
as_wb "$tgt_wb" "SET session_replication_role = replica;
    UPDATE patients SET email = email WHERE legacy_id = 1" >/dev/null
wb_eq "target: as replica, the application trigger does not fire" 0 \
    "$(wb_psql target -c 'SELECT count(*) FROM patient_changes')"
wb_check "target: walbridge can create its state tables" as_wb "$tgt_wb" \
    "CREATE TABLE walbridge.grants_probe (a int); DROP TABLE walbridge.grants_probe"
wb_check "target: walbridge cannot drop application tables" fails_as_wb "$tgt_wb" "DROP TABLE orders"
wb_check "target: walbridge cannot alter application tables" fails_as_wb "$tgt_wb" \
    "ALTER TABLE orders ADD COLUMN x int"

# --- the demo config with the least-privilege roles
if [[ -x $WALBRIDGE_BIN ]]; then
    export SOURCE_DATABASE_URL="postgresql://walbridge:src-secret@127.0.0.1:$SOURCE_PORT/postgres"
    export TARGET_DATABASE_URL="postgresql://walbridge:tgt-secret@127.0.0.1:$TARGET_PORT/postgres"
    cd "$WB_TMP"
    wb_run -c "$deploy/examples/demo.json" check
    wb_eq "check passes with deploy/examples/demo.json and the granted roles" 0 "$WB_RC"
    wb_check "check output does not show the passwords" bash -c \
        "! grep -q -e src-secret -e tgt-secret <<<\"\$1\"" _ "$WB_OUT$WB_ERR"
    wb_run -c "$deploy/examples/demo.json" backfill
    wb_eq "backfill succeeds with the granted roles" 0 "$WB_RC"
    wb_run -c "$deploy/examples/demo.json" verify
    wb_eq "verify still finds the stale rows after a plain backfill (exit 1)" 1 "$WB_RC"
    wb_run -c "$deploy/examples/demo.json" backfill --include-stale
    wb_eq "backfill --include-stale succeeds with the granted roles" 0 "$WB_RC"
    wb_run -c "$deploy/examples/demo.json" verify
    wb_eq "verify finds no difference after backfill --include-stale" 0 "$WB_RC"
    wb_psql source -c "INSERT INTO patients (office_id, full_name) VALUES (1, 'Grant Test');
        UPDATE orders SET amount = 1.23 WHERE id = 10; DELETE FROM order_tags WHERE order_id = 2"
    WB_RUN_TIMEOUT=120 wb_run -c "$deploy/examples/demo.json" stream --until-caught-up
    wb_eq "stream --until-caught-up succeeds with the granted roles" 0 "$WB_RC"
    wb_run -c "$deploy/examples/demo.json" verify
    wb_eq "verify finds no difference after streaming source writes" 0 "$WB_RC"
    wb_check "the log file holds no password" bash -c \
        "! grep -q -e src-secret -e tgt-secret '$WB_TMP/walbridge.log'"
else
    echo "skip: $WALBRIDGE_BIN not built"
fi

wb_finish
