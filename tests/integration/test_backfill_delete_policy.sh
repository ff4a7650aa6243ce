#!/usr/bin/env bash
# test_backfill_delete_policy.sh — backfill --delete-extra follows each table's
# "deletes" policy: "apply" deletes the extra target rows, {"soft": col} stamps
# col on them (once; the rows stay), "ignore" only reports them.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_clinic_start
wb_psql target -c "ALTER TABLE orders ADD COLUMN deleted_at timestamptz"
cfg=$WB_TMP/walbridge.json
wb_write_config "$WB_TMP/plain.json"
jq '.tables |= map(if .source == "public.orders" then .deletes = {"soft": "deleted_at"}
                   elif .source == "public.audit_log" then .deletes = "ignore"
                   else . end)' "$WB_TMP/plain.json" >"$cfg"

wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill to a clean start exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 20

# ---- plant one extra row per policy (as an application would: FK checks off)
wb_psql target <<'SQL'
SET session_replication_role = replica;
INSERT INTO orders (legacy_id, patient_id, status)
  SELECT 777777, id, 'ghost' FROM patients ORDER BY legacy_id LIMIT 1;
INSERT INTO offices (legacy_id, name) VALUES (888888, 'ghost office');
INSERT INTO audit_log (happened_at, actor, action) VALUES ('2030-01-01 00:00:00+00', 'ghost', 'extra');
SQL
audit_before=$(bf_count target audit_log)

wb_run -c "$cfg" backfill --delete-extra
wb_eq "backfill --delete-extra exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 20
wb_eq "apply: the extra office is deleted" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = 888888")"
wb_eq "soft: the extra order stays, marked deleted" "1|t" \
    "$(wb_psql target -c "SELECT count(*), bool_and(deleted_at IS NOT NULL) FROM orders WHERE legacy_id = 777777")"
wb_eq "soft: no other order is marked deleted" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL AND legacy_id <> 777777")"
wb_eq "ignore: the extra audit row stays" "$audit_before" "$(bf_count target audit_log)"
wb_eq "ignore: the extra audit row is the ghost one" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'ghost'")"
wb_eq "summary: offices 1 deleted" "1 del" "$(awk '$1 == "public.offices" {print $6, $7}' <<<"$WB_OUT")"
wb_eq "summary: orders 1 soft-deleted" "1 soft" "$(awk '$1 == "public.orders" {print $6, $7}' <<<"$WB_OUT")"
wb_eq "summary: audit_log 1 kept" "1 kept" "$(awk '$1 == "public.audit_log" {print $6, $7}' <<<"$WB_OUT")"
wb_contains "log says the ignore policy keeps extra rows" "$WB_ERR" \
    'public.audit_log: "deletes": "ignore": extra target rows are reported, not deleted'

# ---- a second run keeps the first soft-delete stamp
stamp=$(wb_psql target -c "SELECT deleted_at FROM orders WHERE legacy_id = 777777")
wb_run -c "$cfg" backfill --delete-extra
wb_eq "second backfill --delete-extra exits 0" 0 "$WB_RC"
wb_eq "soft: the stamp of the first run stays" "$stamp" \
    "$(wb_psql target -c "SELECT deleted_at FROM orders WHERE legacy_id = 777777")"
wb_eq "summary: orders 0 newly soft-deleted" "0 soft" "$(awk '$1 == "public.orders" {print $6, $7}' <<<"$WB_OUT")"

# ---- a legacy record deleted and created again under a new key, with a value the
# target keeps unique: the extra row goes before the missing one comes in (inserted
# first, it would break the unique index and stop the run)
wb_psql target -c "CREATE UNIQUE INDEX offices_name_key ON offices (name)"
wb_psql target -c "SET session_replication_role = replica;
    INSERT INTO offices (legacy_id, name) VALUES (888888, 'Recreated office')"
wb_psql source -c "INSERT INTO offices (id, name) VALUES (999999, 'Recreated office')"
wb_run -c "$cfg" backfill --delete-extra --tables offices
wb_eq "recreated record: backfill --delete-extra exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 5
wb_eq "recreated record: only the new key holds the name" "999999" \
    "$(wb_psql target -c "SELECT string_agg(legacy_id::text, ',') FROM offices WHERE name = 'Recreated office'")"
wb_eq "summary: offices 1 copied, 1 deleted" "1 1 del" \
    "$(awk '$1 == "public.offices" {print $4, $6, $7}' <<<"$WB_OUT")"

# ---- batches of one row on the two write connections (source keys 1-4 and 999999;
# 2 and 4 missing, 5, 6 and 3000001 extra): a batch deletes its extras once the batch
# before it, whose insert may still run, has committed
wb_psql target -c "SET session_replication_role = replica;
    DELETE FROM offices WHERE legacy_id IN (2, 4);
    INSERT INTO offices (legacy_id, name) VALUES (5, 'ghost 1'), (6, 'ghost 2'),
        (3000001, 'ghost 3')"
wb_run -c "$cfg" backfill --delete-extra --tables offices --batch-rows 1
wb_eq "batches of one row: backfill --delete-extra exits 0" 0 "$WB_RC"
wb_eq "batches of one row: summary 2 copied, 3 deleted" "2 3 del" \
    "$(awk '$1 == "public.offices" {print $4, $6, $7}' <<<"$WB_OUT")"
wb_run -c "$cfg" verify --tables offices
wb_eq "batches of one row: offices identical after" 0 "$WB_RC"
wb_finish
