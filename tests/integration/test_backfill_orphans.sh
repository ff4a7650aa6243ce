#!/usr/bin/env bash
# test_backfill_orphans.sh — rows of a composite-key (identity-mapped) table whose
# key references a parent row that is gone have no legacy key to compare: verify
# counts them as extra, and backfill --delete-extra deletes every row it counts as
# extra under the table's "deletes" policy (apply: deleted, {"soft": col}: stamped,
# "ignore": kept), both orphans planted in the target and the ones its own deletion
# of an extra parent leaves behind; a resumed run (orphans counted apart from the diff) too.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_clinic_start
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"
tgt() { wb_psql target -c "$1"; }
tags_of() { tgt "SELECT count(*) FROM order_tags t JOIN orders o ON o.id = t.order_id WHERE o.legacy_id = $1"; }
dangling() { tgt "SELECT count(*) FROM order_tags t WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = t.order_id)"; }
# verify_tags: verify of order_tags; sets WB_RC, WB_ERR and EXTRA (its extra count).
verify_tags() {
    wb_run -c "$cfg" verify --format json --tables order_tags
    EXTRA=$(jq '.tables[0].extra' <<<"$WB_OUT")
}

wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill to a clean start exits 0" 0 "$WB_RC"

# ---- plant: (a) tags whose order row was deleted in the target; (b) an extra order
# (not in the source) with tags of its own
tagged=$(tgt "SELECT o.legacy_id FROM orders o JOIN order_tags t ON t.order_id = o.id ORDER BY 1 LIMIT 1")
ntagged=$(tags_of "$tagged")
wb_psql target <<SQL
SET session_replication_role = replica;
DELETE FROM orders WHERE legacy_id = $tagged;
INSERT INTO orders (legacy_id, patient_id, status)
  SELECT 777777, id, 'ghost' FROM patients ORDER BY legacy_id LIMIT 1;
INSERT INTO order_tags (order_id, tag) SELECT id, unnest(ARRAY['g1', 'g2']) FROM orders WHERE legacy_id = 777777;
-- (c) an order the application created in the target (no legacy key) with a tag:
-- not compared, like its order; never counted nor deleted
ALTER TABLE orders ALTER COLUMN legacy_id DROP NOT NULL;
INSERT INTO orders (legacy_id, patient_id, status)
  SELECT NULL, id, 'app-only' FROM patients ORDER BY legacy_id LIMIT 1;
INSERT INTO order_tags (order_id, tag) SELECT id, 'app' FROM orders WHERE status = 'app-only';
SQL
app_tag() { tgt "SELECT count(*) FROM order_tags t JOIN orders o ON o.id = t.order_id WHERE o.status = 'app-only'"; }
wb_check "planted: $ntagged dangling tags" test "$(dangling)" -eq "$ntagged" -a "$ntagged" -gt 0

verify_tags
wb_eq "verify counts the dangling and the ghost's tags as extra" $((ntagged + 2)) "$EXTRA"
wb_eq "verify exits 1" 1 "$WB_RC"
wb_contains "verify explains the dangling rows" "$WB_ERR" "reference a parent row that does not exist"

# ---- "ignore": reported, kept
jq '.tables |= map(if .source == "public.order_tags" then .deletes = "ignore" else . end)' "$cfg" >"$WB_TMP/ignore.json"
wb_run -c "$WB_TMP/ignore.json" backfill --delete-extra
wb_eq "ignore: backfill --delete-extra exits 0" 0 "$WB_RC"
wb_eq "ignore: the extra order is deleted (orders apply deletes)" 0 "$(tgt "SELECT count(*) FROM orders WHERE legacy_id = 777777")"
wb_eq "ignore: its tags stay, now dangling too" $((ntagged + 2)) "$(dangling)"
wb_eq "ignore: summary of order_tags: $((ntagged + 2)) kept" "$((ntagged + 2)) kept" \
    "$(awk '$1 == "public.order_tags" {print $6, $7}' <<<"$WB_OUT")"

# ---- {"soft": "deleted_at"}: stamped once, kept
wb_psql target -c "ALTER TABLE order_tags ADD COLUMN deleted_at timestamptz"
jq '.tables |= map(if .source == "public.order_tags" then .deletes = {"soft": "deleted_at"} else . end)' "$cfg" >"$WB_TMP/soft.json"
wb_run -c "$WB_TMP/soft.json" backfill --delete-extra
wb_eq "soft: backfill --delete-extra exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 20
wb_eq "soft: every dangling tag is stamped, none removed" "$((ntagged + 2)) $((ntagged + 2))" \
    "$(tgt "SELECT count(*) || ' ' || count(deleted_at) FROM order_tags t WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = t.order_id)")"
wb_eq "soft: no live tag is stamped" 0 \
    "$(tgt "SELECT count(*) FROM order_tags t JOIN orders o ON o.id = t.order_id WHERE t.deleted_at IS NOT NULL")"
wb_eq "soft: summary of order_tags: $((ntagged + 2)) soft" "$((ntagged + 2)) soft" \
    "$(awk '$1 == "public.order_tags" {print $6, $7}' <<<"$WB_OUT")"
stamp=$(tgt "SELECT max(deleted_at) FROM order_tags")
wb_run -c "$WB_TMP/soft.json" backfill --delete-extra
wb_eq "soft: second run exits 0" 0 "$WB_RC"
wb_eq "soft: the first stamp stays" "$stamp" "$(tgt "SELECT max(deleted_at) FROM order_tags")"
wb_eq "soft: summary of order_tags: 0 newly soft-deleted" "0 soft" \
    "$(awk '$1 == "public.order_tags" {print $6, $7}' <<<"$WB_OUT")"
wb_psql target -c "UPDATE order_tags SET deleted_at = NULL"
wb_psql target -c "ALTER TABLE order_tags DROP COLUMN deleted_at"

# ---- "apply" (the default): every row counted as extra is deleted, also the tag
# of an extra order that this run deletes before it gets to order_tags
wb_psql target <<SQL
SET session_replication_role = replica;
INSERT INTO orders (legacy_id, patient_id, status)
  SELECT 777778, id, 'ghost' FROM patients ORDER BY legacy_id LIMIT 1;
INSERT INTO order_tags (order_id, tag) SELECT id, 'g3' FROM orders WHERE legacy_id = 777778;
SQL
wb_run -c "$cfg" backfill --delete-extra
wb_eq "apply: backfill --delete-extra exits 0" 0 "$WB_RC"
[[ $WB_RC == 0 ]] || echo "$WB_ERR" | tail -n 20
wb_eq "apply: the extra order is deleted" 0 "$(tgt "SELECT count(*) FROM orders WHERE legacy_id = 777778")"
wb_eq "apply: summary of order_tags: $((ntagged + 3)) deleted" "$((ntagged + 3)) del" \
    "$(awk '$1 == "public.order_tags" {print $6, $7}' <<<"$WB_OUT")"
wb_eq "apply: no dangling tag is left" 0 "$(dangling)"
wb_eq "apply: the target-only order and its tag stay" "1 1" \
    "$(tgt "SELECT count(*) FROM orders WHERE status = 'app-only'") $(app_tag)"
wb_run -c "$cfg" verify
wb_eq "verify ignores the target-only order and its tag" 0 "$WB_RC"
tgt "DELETE FROM order_tags t USING orders o WHERE o.id = t.order_id AND o.status = 'app-only';
     DELETE FROM orders WHERE status = 'app-only'"
wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill restores the order and its tags" "$ntagged" "$(tags_of "$tagged")"
wb_check "order_tags: equal through the mapping" bf_same_table order_tags
verify_tags
wb_eq "verify counts no extra tag" 0 "$EXTRA"
wb_run -c "$cfg" verify
wb_eq "verify exits 0" 0 "$WB_RC"

# ---- a run resumed in the middle of order_tags (the orphans are counted apart)
wb_psql target <<SQL
SET session_replication_role = replica;
DELETE FROM orders WHERE legacy_id = $tagged;
UPDATE walbridge.backfill_checkpoint SET done = false, last_key = E'1\\tzzz'
  WHERE table_name = 'public.order_tags';
SQL
wb_run -c "$cfg" backfill --delete-extra --resume
wb_eq "--resume --delete-extra exits 0" 0 "$WB_RC"
wb_contains "--resume: order_tags resumed" "$WB_ERR" "public.order_tags: resuming after key"
wb_eq "--resume: summary of order_tags: $ntagged deleted" "$ntagged del" \
    "$(awk '$1 == "public.order_tags" {print $6, $7}' <<<"$WB_OUT")"
wb_eq "--resume: no dangling tag is left" 0 "$(dangling)"
wb_run -c "$cfg" backfill
wb_run -c "$cfg" verify
wb_eq "verify after a final backfill exits 0" 0 "$WB_RC"
wb_finish
