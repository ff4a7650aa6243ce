#!/usr/bin/env bash
# test_verify.sh — walbridge verify finds a planted difference of each kind
# (missing, extra, differing; keyed, composite-key and keyless tables; a changed
# reference), names the keys (--show, text and JSON), exits 0/1/2/3 as documented;
# --jobs 1 and --jobs 3 report the same, in config order;
# backfill --include-stale --delete-extra then repairs every planted difference.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_clinic_start
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg"

wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill to a clean start exits 0" 0 "$WB_RC"
wb_run -c "$cfg" verify
wb_eq "verify of identical databases exits 0" 0 "$WB_RC"
wb_contains "verify says identical" "$WB_OUT" "verify: identical (7 tables)"

# ---- plant one difference of each kind (as an application would: FK checks off)
missing=$(wb_psql target -c "SELECT legacy_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_tags t WHERE t.order_id = o.id) ORDER BY legacy_id LIMIT 1")
differing=$(wb_psql target -c "SELECT legacy_id FROM orders WHERE legacy_id > $missing ORDER BY legacy_id LIMIT 1")
tag_key=$(wb_psql target -c "SELECT o.legacy_id || ',' || t.tag FROM order_tags t JOIN orders o ON o.id = t.order_id ORDER BY 1 LIMIT 1")
wb_psql target <<SQL
SET session_replication_role = replica;
DELETE FROM orders WHERE legacy_id = $missing;
INSERT INTO orders (legacy_id, patient_id, status)
  SELECT 777777, id, 'ghost' FROM patients ORDER BY legacy_id LIMIT 1;
UPDATE orders SET status = 'tampered' WHERE legacy_id = $differing;
UPDATE order_tags t SET added_at = added_at + interval '1 second' FROM orders o
  WHERE o.id = t.order_id AND o.legacy_id || ',' || t.tag = '$tag_key';
UPDATE profiles SET referred_by = (SELECT id FROM profiles WHERE legacy_id = 2) WHERE legacy_id = 3;
DELETE FROM audit_log WHERE ctid = (SELECT ctid FROM audit_log ORDER BY happened_at, actor LIMIT 1);
INSERT INTO audit_log SELECT * FROM audit_log ORDER BY happened_at DESC, actor LIMIT 1;
SQL

wb_run -c "$cfg" verify --show 5
wb_eq "verify with differences exits 1" 1 "$WB_RC"
wb_contains "text output names the missing order" "$WB_OUT" "missing: $missing"
wb_contains "text output names the extra order" "$WB_OUT" "extra: 777777"
wb_contains "text output names the differing order" "$WB_OUT" "differing: $differing"
wb_contains "text output names the composite key" "$WB_OUT" "differing: ($tag_key)"
wb_contains "text output names the profile whose reference changed" "$WB_OUT" "differing: 3"
wb_contains "text output sums up" "$WB_OUT" "verify: 4 of 7 tables differ"

wb_run -c "$cfg" verify --show 5 --format json
wb_eq "json verify exits 1" 1 "$WB_RC"
j() { jq -r "$1" <<<"$WB_OUT"; }
wb_eq "json: identical false" false "$(j .identical)"
wb_eq "json: orders missing/extra/differing" "1 1 1" \
    "$(j '.tables[] | select(.table == "public.orders") | "\(.missing) \(.extra) \(.differing)"')"
wb_eq "json: orders keys" "$missing 777777 $differing" \
    "$(j '.tables[] | select(.table == "public.orders") | "\(.missing_keys[0]) \(.extra_keys[0]) \(.differing_keys[0])"')"
wb_eq "json: order_tags differing key" "($tag_key)" \
    "$(j '.tables[] | select(.table == "public.order_tags") | .differing_keys[0]')"
wb_eq "json: audit_log (keyless) one missing, one extra" "1 1" \
    "$(j '.tables[] | select(.table == "public.audit_log") | "\(.missing) \(.extra)"')"
wb_eq "json: offices untouched" "0 0 0" \
    "$(j '.tables[] | select(.table == "public.offices") | "\(.missing) \(.extra) \(.differing)"')"
wb_eq "json: counts of rows" "$(bf_count source orders) $(bf_count target orders)" \
    "$(j '.tables[] | select(.table == "public.orders") | "\(.source_rows) \(.target_rows)"')"

# ---- --jobs: several tables at once, same report in config order (seconds aside)
# The report without its timing column / field (the one thing that may differ).
no_seconds() {
    if [[ $1 == json ]]; then jq 'del(.tables[].seconds)'; else sed -E 's/ +[0-9]+\.[0-9]{2}$//'; fi
}
for fmt in text json; do
    wb_run -c "$cfg" verify --show 5 --format $fmt --jobs 1
    rc1=$WB_RC out1=$(no_seconds $fmt <<<"$WB_OUT")
    wb_eq "$fmt: --jobs 1 runs one table at a time" "" "$(grep -o 'at a time' <<<"$WB_ERR" || true)"
    wb_run -c "$cfg" verify --show 5 --format $fmt --jobs 3
    rc3=$WB_RC out3=$(no_seconds $fmt <<<"$WB_OUT")
    wb_contains "$fmt: --jobs 3 diffs three tables at once in one snapshot" "$WB_ERR" \
        "verify: 7 tables, 3 at a time, in one source snapshot"
    wb_eq "$fmt: --jobs 1 exits 1" 1 "$rc1"
    wb_eq "$fmt: --jobs 3 exits as --jobs 1" "$rc1" "$rc3"
    wb_eq "$fmt: --jobs 3 prints what --jobs 1 prints" "$out1" "$out3"
    wb_check "$fmt: the report has every table" test "$(grep -c public <<<"$out3")" -ge 7
done
wb_eq "json --jobs 3: tables in config order" \
    "public.offices public.profiles public.doctors public.patients public.orders public.order_tags public.audit_log" \
    "$(jq -r '[.tables[].table] | join(" ")' <<<"$out3")"
# largest first: with the planner's estimates in place, the two lanes start on the
# two largest tables (orders and order_tags, 700 rows each at this scale)
wb_psql source -c "ANALYZE"
wb_run -c "$cfg" verify --jobs 2
wb_eq "--jobs 2: the two lanes start with the two largest tables" \
    "public.order_tags public.orders" \
    "$(grep -o 'lane [0-9]* takes [a-z_.]*' <<<"$WB_ERR" | head -n 2 | awk '{ print $4 }' | sort | xargs)"
wb_run -c "$cfg" verify --jobs 3 --tables offices,public.doctors
wb_eq "--jobs 3 of two unchanged tables exits 0" 0 "$WB_RC"
wb_contains "--jobs 3 of two tables uses two lanes" "$WB_ERR" "2 tables, 2 at a time"
wb_contains "--jobs 3 of two tables covers both" "$WB_OUT" "identical (2 tables)"

wb_run -c "$cfg" verify --tables offices,public.doctors
wb_eq "verify --tables of unchanged tables exits 0" 0 "$WB_RC"
wb_contains "verify --tables covers two tables" "$WB_OUT" "identical (2 tables)"

# ---- usage and runtime errors
wb_run -c "$cfg" verify --format xml
wb_eq "bad --format exits 2" 2 "$WB_RC"
wb_run -c "$cfg" verify --jobs 0
wb_eq "--jobs 0 exits 2" 2 "$WB_RC"
wb_contains "--jobs 0 is named" "$WB_ERR" 'walbridge verify: --jobs: "0" is not'
wb_run -c "$cfg" verify --jobs x
wb_eq "--jobs x exits 2" 2 "$WB_RC"
wb_contains "--jobs x is named" "$WB_ERR" 'walbridge verify: --jobs: "x" is not'
wb_run -c "$cfg" verify --tables public.nope
wb_eq "unknown --tables entry exits 2" 2 "$WB_RC"
wb_contains "unknown table is named" "$WB_ERR" "public.nope"

# ---- repair everything: source wins
wb_run -c "$cfg" backfill --include-stale --delete-extra
wb_eq "backfill --include-stale --delete-extra exits 0" 0 "$WB_RC"
wb_eq "extra order deleted" 0 "$(wb_psql target -c "SELECT count(*) FROM orders WHERE legacy_id = 777777")"
wb_eq "missing order copied" 1 "$(wb_psql target -c "SELECT count(*) FROM orders WHERE legacy_id = $missing")"
wb_eq "duplicate audit row removed, deleted one restored" "$(bf_count source audit_log)" "$(bf_count target audit_log)"
for t in $BF_TABLES; do
    wb_check "$t: equal through the mapping after repair" bf_same_table "$t"
done
wb_run -c "$cfg" verify
wb_eq "verify after repair exits 0" 0 "$WB_RC"

# ---- a composite-key row whose parent vanished cannot be translated: reported, not a crash
tagged=$(wb_psql target -c "SELECT o.legacy_id FROM orders o JOIN order_tags t ON t.order_id = o.id ORDER BY 1 LIMIT 1")
ntags=$(wb_psql target -c "SELECT count(*) FROM order_tags t JOIN orders o ON o.id = t.order_id WHERE o.legacy_id = $tagged")
wb_psql target -c "SET session_replication_role = replica; DELETE FROM orders WHERE legacy_id = $tagged"
wb_run -c "$cfg" verify --format json --tables order_tags
wb_eq "orphaned composite-key rows: verify exits 1" 1 "$WB_RC"
wb_eq "orphaned rows counted as extra" "$ntags" "$(jq '.tables[0].extra' <<<"$WB_OUT")"
wb_contains "orphaned rows explained" "$WB_ERR" "reference a parent row that does not exist"

# ---- one lane's table fails (a lock held past lock_timeout): runtime error, no report
wb_psql target -c "ALTER DATABASE postgres SET lock_timeout = '300ms'"
wb_psql target -c "BEGIN; LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)" \
    >/dev/null 2>&1 &
locker=$!
for _ in $(seq 50); do
    [[ $(wb_psql target -c "SELECT count(*) FROM pg_locks WHERE relation = 'audit_log'::regclass AND mode = 'AccessExclusiveLock' AND granted") == 1 ]] && break
    sleep 0.1
done
wb_run -c "$cfg" verify --jobs 3
wb_eq "a table that cannot be read: verify --jobs 3 exits 3" 3 "$WB_RC"
wb_eq "a table that cannot be read: no report" "" "$WB_OUT"
wb_contains "the failing table is named" "$WB_ERR" "audit_log"
wb_contains "the failure is the lock timeout" "$WB_ERR" "55P03"
wb_psql target -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" || true
wb_psql target -c "ALTER DATABASE postgres RESET lock_timeout"

wb_pg_stop target
wb_run -c "$cfg" verify
wb_eq "verify with the target down exits 3" 3 "$WB_RC"
wb_run -c "$cfg" verify --jobs 3
wb_eq "verify --jobs 3 with the target down exits 3" 3 "$WB_RC"
wb_finish
