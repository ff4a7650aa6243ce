#!/usr/bin/env bash
# test_backfill_defer_indexes.sh — `backfill --defer-indexes` on real clusters, as a
# DBA would check it: an empty target is loaded without its indexes, constraints and
# foreign keys, which come back with the same names and definitions (pg_dump -s
# equal, foreign keys validated); a kill -9 mid-copy leaves the definitions in
# walbridge.deferred_ddl, the stream refuses to start meanwhile, a duplicate planted
# in the half-loaded table makes the rebuild fail by name, and --resume finishes once
# it is removed; a table holding rows, or whose key a view depends on, keeps its
# indexes; a running stream makes --defer-indexes refuse.
#
# One source cluster; each scenario uses its own database on the target cluster and
# its own slot (TARGET_DSN is switched, so wb_psql target and the bf_* helpers follow).
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

SCALE=5
wb_pg_start source
wb_pg_start target
wb_load_clinic source "$SCALE"
bf_target_databases

# same_schema FILE: the target's schema equals the dump in FILE (diff shown if not).
same_schema() {
    diff "$1" <(schema_dump)
}

deferred_count() {
    wb_psql target -c "SELECT count(*) FROM walbridge.deferred_ddl"
}

# fk_state: "<foreign keys>|<all validated>" in the public schema.
fk_state() {
    wb_psql target -c "SELECT count(*) || '|' || bool_and(convalidated) FROM pg_constraint
        WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
}

# ------------------------------------------------------------------ a. empty target
new_target a wb_a
# A DBA's comments on an index, a primary key, a unique key's index and a foreign
# key (one with a quote): dropped with their objects, they must come back with them.
wb_psql target -c "COMMENT ON INDEX orders_patient_id_idx IS 'lookups by patient'" \
    -c "COMMENT ON CONSTRAINT orders_pkey ON orders IS 'the Supabase key'" \
    -c "COMMENT ON INDEX patients_legacy_id_key IS 'legacy system''s id'" \
    -c "COMMENT ON CONSTRAINT orders_patient_id_fkey ON orders IS 'every order has a patient'"
# comments: every comment on an index or constraint of the public schema, sorted.
comments() {
    wb_psql target -c "SELECT string_agg(d.description, ',' ORDER BY d.description)
        FROM pg_description d WHERE (d.classoid = 'pg_constraint'::regclass AND d.objoid IN
        (SELECT oid FROM pg_constraint WHERE connamespace = 'public'::regnamespace)) OR
        (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT indexrelid FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace))"
}
comments_a="every order has a patient,legacy system's id,lookups by patient,the Supabase key"
wb_eq "a: the four comments are in place before the run" "$comments_a" "$(comments)"
schema_dump >"$WB_TMP/schema_a.sql"
wb_check "the schema dump holds the comments" \
    grep -q "COMMENT ON CONSTRAINT orders_patient_id_fkey ON public.orders IS 'every order has a patient'" \
    "$WB_TMP/schema_a.sql"
wb_check "the schema dump holds the clinic's constraints" \
    grep -q 'ADD CONSTRAINT orders_legacy_id_key UNIQUE (legacy_id)' "$WB_TMP/schema_a.sql"
wb_eq "empty target: 8 foreign keys, all validated" "8|true" "$(fk_state)"

wb_run -c "$cfg" backfill --defer-indexes
wb_eq "a: backfill --defer-indexes into an empty target exits 0" 0 "$WB_RC"
# saved_and_dropped TABLE: the log line of TABLE's deferral (any count) in $WB_ERR.
saved_and_dropped() {
    grep -qE "public\.$1: [0-9]+ indexes, constraints and foreign keys of \"public\"\.\"$1\" saved in walbridge\.deferred_ddl and dropped" <<<"$WB_ERR"
}
for t in offices profiles doctors patients orders order_tags; do
    wb_check "a: $t's indexes, constraints and foreign keys were saved and dropped" saved_and_dropped "$t"
done
# Steps: 7 plain indexes (one each), 11 primary key and unique constraints (two each:
# the index, then the constraint) and 8 foreign keys (two each: added, validated).
wb_contains "a: the deferred objects were built on the lanes" "$WB_ERR" \
    "backfill: 7 tables copied straight in"
wb_eq "a: every deferred step ran (7 indexes, 11 key constraints in two steps, 8 foreign keys in two)" 45 \
    "$(grep -oE 'and [0-9]+ deferred index, constraint and foreign key steps run' <<<"$WB_ERR" | awk '{ print $2 }')"
wb_check "a: orders, the largest table, was cut into key-range pieces for the two lanes" \
    grep -qE 'public\.orders: copied in [2-8] pieces by key range' <<<"$WB_ERR"
wb_eq "a: no table kept its indexes" 0 "$(grep -c 'kept (not deferred)' <<<"$WB_ERR" || true)"
wb_eq "a: walbridge.deferred_ddl is empty afterwards" 0 "$(deferred_count)"
wb_check "a: schema dump equals the one taken before (every index, constraint, FK back)" \
    same_schema "$WB_TMP/schema_a.sql"
wb_eq "a: 8 foreign keys, all validated" "8|true" "$(fk_state)"
wb_eq "a: the comments on the index, the keys and the foreign key came back" "$comments_a" \
    "$(comments)"
wb_eq "a: every index valid and ready" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT (i.indisvalid AND i.indisready)")"
wb_eq "a: every source row copied" "$(bf_summary_sum 2)" "$(bf_summary_sum 4)"
for t in $BF_TABLES; do
    wb_check "a: $t equal through the mapping" bf_same_table "$t"
done
wb_eq "a: no dangling uuid reference" 0 "$(bf_orphans)"
wb_run -c "$cfg" verify
wb_eq "a: verify exits 0" 0 "$WB_RC"

# ------------------------------------------------------------------ c. a table that holds rows
wb_run -c "$cfg" backfill --defer-indexes
wb_eq "c: second --defer-indexes run exits 0" 0 "$WB_RC"
# Tables without a parent check their rows; their children are then not deferred either.
wb_eq "c: offices, profiles keep their indexes: they hold rows" \
    "public.offices public.profiles" \
    "$(grep -o '[a-z_.]*: indexes of "public"."[a-z_]*" kept (not deferred): it holds rows' <<<"$WB_ERR" |
        cut -d: -f1 | sort | tr '\n' ' ' | sed 's/ $//')"
wb_contains "c: offices: the reason is logged" "$WB_ERR" \
    'public.offices: indexes of "public"."offices" kept (not deferred): it holds rows'
wb_contains "c: audit_log keeps its indexes: keyless, it is diffed after the stream's catch-up" "$WB_ERR" \
    "public.audit_log: indexes kept (not deferred): a keyless table of a re-run is diffed after the stream's catch-up"
wb_eq "c: doctors, patients, orders, order_tags keep theirs: their parents were not loaded" 4 \
    "$(grep -c 'indexes kept (not deferred): it references public\.' <<<"$WB_ERR" || true)"
wb_eq "c: no table saved and dropped anything" 0 "$(grep -c 'saved in walbridge.deferred_ddl' <<<"$WB_ERR" || true)"
wb_eq "c: nothing saved in walbridge.deferred_ddl" 0 "$(deferred_count)"
wb_eq "c: nothing copied" 0 "$(bf_summary_sum 4)"
wb_check "c: schema unchanged" same_schema "$WB_TMP/schema_a.sql"

# ------------------------------------------------------------------ e. a running stream
wb_run_bg -c "$cfg" stream
stream_pid=$WB_BG_PID
slot_active() {
    [[ $(wb_psql source -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'wb_a'") == t ]]
}
wb_wait_for "e: the stream of slot wb_a is running" 30 slot_active || true
wb_run -c "$cfg" backfill --defer-indexes
wb_eq "e: backfill --defer-indexes refuses while the stream runs (exit 3)" 3 "$WB_RC"
wb_contains "e: says a stream runs" "$WB_ERR" \
    'a walbridge stream of slot "wb_a" is running on the target'
wb_eq "e: nothing saved in walbridge.deferred_ddl" 0 "$(deferred_count)"
wb_check "e: schema unchanged" same_schema "$WB_TMP/schema_a.sql"
wb_check "e: the stream still runs" kill -0 "$stream_pid"
kill -TERM "$stream_pid"
wb_bg_wait "$stream_pid" 30
wb_eq "e: the stream stops on SIGTERM (exit 0)" 0 "$WB_RC"
wb_run -c "$cfg" backfill --defer-indexes --tables offices
wb_eq "e: once it stopped, --defer-indexes runs again (exit 0)" 0 "$WB_RC"

# ------------------------------------------------------------------ b. kill -9 mid-copy
# slow_orders_copy: each orders row takes a millisecond more (a trigger that fires
# even under session_replication_role = replica), so what a case does while orders
# is being copied lands mid-copy: without it the copy sometimes ended first.
slow_orders_copy() {
    wb_psql target -c "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql
            AS \$\$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END \$\$" \
        -c "CREATE TRIGGER orders_slow BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION slow_insert()" \
        -c "ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_slow"
}
new_target b wb_b
slow_orders_copy
schema_dump >"$WB_TMP/schema_b.sql"
wb_run_bg -c "$cfg" backfill --defer-indexes --batch-rows 2
pid=$WB_BG_PID
bg_err=$WB_BG_ERR
# orders_mid_copy: orders' definitions are saved and some of its rows are in.
orders_mid_copy() {
    [[ $(wb_psql target -c "SELECT (SELECT count(*) FROM walbridge.deferred_ddl WHERE table_name = 'public.orders') > 0
        AND EXISTS (SELECT 1 FROM orders)" 2>/dev/null) == t ]]
}
# wait_orders_mid_copy LABEL: polls without pause (the copy of orders lasts about a second).
wait_orders_mid_copy() {
    local deadline=$((SECONDS + 60))
    until orders_mid_copy || ((SECONDS >= deadline)); do :; done
    wb_check "$1: backfill is copying orders without their indexes" orders_mid_copy
}
wait_orders_mid_copy b
kill -KILL "$pid"
wb_bg_wait "$pid" 10
wb_eq "b: backfill was killed (SIGKILL)" 137 "$WB_RC"
copied=$(bf_count target orders)
wb_check "b: some but not all orders were copied ($copied of $((700 * SCALE)))" \
    test "$copied" -gt 0 -a "$copied" -lt $((700 * SCALE))
wb_eq "b: orders' definitions wait in walbridge.deferred_ddl" \
    "constraint:orders_legacy_id_key constraint:orders_pkey foreign key:order_tags_order_id_fkey foreign key:orders_doctor_id_fkey foreign key:orders_patient_id_fkey index:orders_doctor_id_idx index:orders_patient_id_idx" \
    "$(wb_psql target -c "SELECT kind || ':' || object_name FROM walbridge.deferred_ddl
        WHERE table_name = 'public.orders' OR on_table = 'public.orders' OR ref_table = 'public.orders' ORDER BY 1" |
        tr '\n' ' ' | sed 's/ $//')"
wb_eq "b: orders has no index meanwhile" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders'")"

# The stream refuses to start and applies nothing (a source change waits in the slot).
wb_psql source -c "INSERT INTO offices (name, city) VALUES ('after the kill', 'Nantes')"
new_office=$(wb_psql source -c "SELECT id FROM offices WHERE name = 'after the kill'")
pending=$(deferred_count)
applied_before=$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'wb_b'")
confirmed_before=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'wb_b'")
wb_run -c "$cfg" stream --until-caught-up
wb_check "b: stream refuses to start while definitions are pending (exit $WB_RC)" test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
wb_contains "b: stream says why, with the count" "$WB_ERR" \
    "stream refuses to start: backfill --defer-indexes has not built $pending indexes, constraints or foreign keys of "
wb_contains "b: stream names orders" "$(grep 'stream refuses to start' <<<"$WB_ERR")" "public.orders"
wb_contains "b: stream names the state table" "$(grep 'stream refuses to start' <<<"$WB_ERR")" "again yet (walbridge.deferred_ddl)"
wb_eq "b: stream applied nothing (the new office is not in the target)" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = $new_office")"
wb_eq "b: stream applied nothing (applied LSN unchanged)" "$applied_before" \
    "$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'wb_b'")"
wb_eq "b: the slot did not move" "$confirmed_before" \
    "$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'wb_b'")"

# A duplicate legacy_id planted in the half-loaded orders (no unique index to stop it).
dup=$(wb_psql target -c "SELECT min(legacy_id) FROM orders")
planted=$(wb_psql target -c "SET session_replication_role = replica;
    INSERT INTO orders SELECT gen_random_uuid(), legacy_id, patient_id, doctor_id, status, notes, amount,
        total_precise, external_ref, placed_at, items, tags, attachment
    FROM orders WHERE legacy_id = $dup RETURNING id")
wb_eq "b: the duplicate is in place" 2 "$(wb_psql target -c "SELECT count(*) FROM orders WHERE legacy_id = $dup")"
wb_run -c "$cfg" backfill --resume
wb_eq "b: --resume with a duplicate legacy_id exits 3" 3 "$WB_RC"
# orders was copied in key-range pieces, which keep no checkpoint key: --resume diffs
# the whole table again and meets the duplicate before it copies or builds anything.
wb_contains "b: the error names the table and the duplicated key" "$WB_ERR" \
    "public.orders: diff failed: target holds key $dup twice (duplicate key)"
wb_contains "b: the hint says what to do" "$WB_ERR" "Two rows with one key: remove the extra row"
wb_eq "b: the orders_legacy_id_key record stays in walbridge.deferred_ddl" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.deferred_ddl WHERE object_name = 'orders_legacy_id_key'")"
wb_eq "b: orders still has no index" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders'")"

wb_psql target -c "DELETE FROM orders WHERE id = '$planted'"
# What a kill can also leave: order_tags rows committed while the orders rows they
# reference were not (lanes load children beside their parents).  Five orders
# lose their row but keep their tags.
keys=$(wb_psql target -c "SELECT string_agg(legacy_id::text, ',') FROM
    (SELECT legacy_id FROM orders ORDER BY legacy_id LIMIT 5) x")
wb_psql source -c "COPY (SELECT order_id, tag, added_at FROM order_tags WHERE order_id IN ($keys)) TO STDOUT" \
    >"$WB_TMP/tags_b.copy"
wb_psql target >/dev/null <<SQL
SET session_replication_role = replica;
CREATE TEMP TABLE t (order_id int, tag text, added_at timestamptz);
\copy t FROM '$WB_TMP/tags_b.copy'
DELETE FROM order_tags ot USING orders o WHERE o.id = ot.order_id AND o.legacy_id IN ($keys);
INSERT INTO order_tags SELECT o.id, t.tag, t.added_at FROM t JOIN orders o ON o.legacy_id = t.order_id;
DELETE FROM orders WHERE legacy_id IN ($keys);
SQL
orphaned=$(wb_psql target -c "SELECT count(*) FROM order_tags ot WHERE NOT EXISTS
    (SELECT 1 FROM orders o WHERE o.id = ot.order_id)")
wb_check "b: order_tags rows wait for their orders rows ($orphaned)" test "$orphaned" -gt 0
# A copied order the source changed after the killed run's snapshot: stale now.
stale_key=$(wb_psql target -c "SELECT max(legacy_id) FROM orders")
wb_psql source -c "UPDATE orders SET status = 'changed after the kill' WHERE id = $stale_key"
wb_run -c "$cfg" backfill --resume --include-stale
wb_eq "b: --resume --include-stale after removing the duplicate exits 0" 0 "$WB_RC"
wb_contains "b: --resume loads on without orders' indexes" "$WB_ERR" \
    "public.orders: its indexes are still deferred by an earlier run"
wb_contains "b: then diffs orders again for stale rows, its indexes back" "$WB_ERR" \
    "public.orders: its resumed load copied missing rows only: diffing it again for stale rows"
wb_eq "b: the summary counts it as a stale row fixed" 1 \
    "$(awk '$1 == "public.orders" { print $5 }' <<<"$WB_OUT")"
wb_eq "b: the stale order is rewritten from the source" "changed after the kill" \
    "$(wb_psql target -c "SELECT status FROM orders WHERE legacy_id = $stale_key")"
wb_eq "b: walbridge.deferred_ddl is empty" 0 "$(deferred_count)"
wb_check "b: schema dump equals the one taken before" same_schema "$WB_TMP/schema_b.sql"
wb_eq "b: 8 foreign keys, all validated" "8|true" "$(fk_state)"
wb_eq "b: no duplicate legacy_id in orders" "$(bf_count target orders)" \
    "$(wb_psql target -c "SELECT count(DISTINCT legacy_id) FROM orders")"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "b: the stream now starts and catches up (exit 0)" 0 "$WB_RC"
wb_eq "b: the stream applied the office inserted after the kill" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = $new_office")"
for t in $BF_TABLES; do
    wb_check "b: $t equal through the mapping" bf_same_table "$t"
done
wb_eq "b: no dangling uuid reference" 0 "$(bf_orphans)"
wb_run -c "$cfg" verify
wb_eq "b: verify exits 0" 0 "$WB_RC"

# ------------------------------------------------------------------ f. a rebuild that fails in the run
# A duplicate legacy_id lands in orders while the same run copies it without its
# indexes: the run copies on, re-adding orders_legacy_id_key fails, backfill stops.
new_target f wb_f
slow_orders_copy
wb_run_bg -c "$cfg" backfill --defer-indexes --batch-rows 2
pid=$WB_BG_PID
bg_err=$WB_BG_ERR
wait_orders_mid_copy f
dup=$(wb_psql target -c "SELECT min(legacy_id) FROM orders")
planted_ok=1
wb_psql target -c "SET session_replication_role = replica;
    INSERT INTO orders SELECT gen_random_uuid(), legacy_id, patient_id, doctor_id, status, notes, amount,
        total_precise, external_ref, placed_at, items, tags, attachment
    FROM orders WHERE legacy_id = $dup" >/dev/null || planted_ok=0
wb_eq "f: a duplicate legacy_id could be planted mid-copy (no unique index)" 1 "$planted_ok"
wb_bg_wait "$pid" 60
wb_eq "f: the run whose rebuild fails exits 3" 3 "$WB_RC"
f_err=$(cat "$bg_err")
wb_contains "f: the error names the table, the kind and the constraint" "$f_err" \
    'public.orders: building constraint "orders_legacy_id_key" again failed'
wb_contains "f: the error gives the server's message" "$f_err" \
    'could not create unique index "orders_legacy_id_key"'
wb_contains "f: the error names the duplicated key" "$f_err" "(legacy_id)=($dup)"
wb_eq "f: the copy itself finished (source rows + the planted one)" "$(($(bf_count source orders) + 1))" \
    "$(bf_count target orders)"
wb_eq "f: the orders_legacy_id_key record stays in walbridge.deferred_ddl" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM walbridge.deferred_ddl WHERE object_name = 'orders_legacy_id_key'")"
# (The other lane may have built another of orders' objects meanwhile: only the
# failed one is asked about.)
wb_eq "f: the failed unique index was not left half-built on orders" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders' AND indexname = 'orders_legacy_id_key'")"
wb_run -c "$cfg" stream --until-caught-up
wb_check "f: stream refuses to start (exit $WB_RC)" test "$WB_RC" -ne 0 -a "$WB_RC" -ne 124
wb_contains "f: stream says why" "$WB_ERR" "stream refuses to start: backfill --defer-indexes has not built"

# ------------------------------------------------------------------ d. a view on the key
new_target d wb_d
wb_psql target -c "CREATE VIEW office_names AS SELECT id, name FROM offices GROUP BY id"
schema_dump >"$WB_TMP/schema_d.sql"
wb_run -c "$cfg" backfill --defer-indexes
wb_eq "d: backfill --defer-indexes exits 0" 0 "$WB_RC"
wb_contains "d: offices keeps its indexes, with the server's reason" "$WB_ERR" \
    'public.offices: indexes of "public"."offices" kept (not deferred): cannot drop constraint offices_pkey on table public.offices because other objects depend on it'
# offices is still empty: it is loaded directly with its indexes in place, so its
# rows have their UUIDv5 and the tables that reference it can be deferred.
wb_contains "d: offices goes straight in with its indexes" "$WB_ERR" \
    "public.offices: no row in the target yet: its rows go straight in with COPY, indexes, constraints and foreign keys in place"
for t in profiles doctors patients orders order_tags; do
    wb_check "d: $t is deferred (its parents are loaded directly)" saved_and_dropped "$t"
done
wb_eq "d: offices: nothing saved and dropped" 0 \
    "$(grep -cE 'public\.offices: [0-9]+ indexes.*dropped' <<<"$WB_ERR" || true)"
wb_eq "d: walbridge.deferred_ddl is empty" 0 "$(deferred_count)"
wb_check "d: schema unchanged (view and offices_pkey kept)" same_schema "$WB_TMP/schema_d.sql"
wb_eq "d: 8 foreign keys, all validated" "8|true" "$(fk_state)"
wb_eq "d: the view answers" "$(bf_count source offices)" "$(wb_psql target -c "SELECT count(*) FROM office_names")"
for t in $BF_TABLES; do
    wb_check "d: $t equal through the mapping" bf_same_table "$t"
done
wb_run -c "$cfg" verify
wb_eq "d: verify exits 0" 0 "$WB_RC"
# ------------------------------------------------------------------ g. one lane, and usage
# --jobs 1: the tables one after the other on the session's connections, no piece,
# the same schema at the end.  --jobs out of range is a usage error.
new_target g wb_g
schema_dump >"$WB_TMP/schema_g.sql"
wb_run -c "$cfg" backfill --defer-indexes --jobs 0
wb_eq "g: --jobs 0 is a usage error (exit 2)" 2 "$WB_RC"
wb_contains "g: --jobs 0 says the range" "$WB_ERR" "a number between 1 and 16"
wb_eq "g: the refused run dropped nothing (orders keeps its 4 indexes)" 4 \
    "$(wb_psql target -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders'")"
wb_run -c "$cfg" backfill --defer-indexes --jobs 1
wb_eq "g: --jobs 1 exits 0" 0 "$WB_RC"
wb_eq "g: no table was cut into pieces on one lane" 0 "$(grep -c 'pieces by key range' <<<"$WB_ERR" || true)"
wb_check "g: every table was saved and dropped" saved_and_dropped orders
wb_eq "g: walbridge.deferred_ddl is empty" 0 "$(deferred_count)"
wb_check "g: schema dump equals the one taken before" same_schema "$WB_TMP/schema_g.sql"
wb_eq "g: 8 foreign keys, all validated" "8|true" "$(fk_state)"
for t in $BF_TABLES; do
    wb_check "g: $t equal through the mapping" bf_same_table "$t"
done
wb_eq "g: no dangling uuid reference" 0 "$(bf_orphans)"
wb_finish
