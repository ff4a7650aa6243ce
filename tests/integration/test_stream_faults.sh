#!/usr/bin/env bash
# test_stream_faults.sh — `walbridge stream` under faults, on real PostgreSQL 15:
#   1. kill -9 the stream at random points 20+ times during a pgbench workload
#      (4 clients), restarting it each time: afterwards every table equals the
#      source through the mapping (no missing row, no duplicate);
#   2. the target cluster restarts mid-stream: the stream reconnects by itself;
#   3. the source cluster restarts mid-stream: same;
#   4. a poison change (a target CHECK constraint the source violates) stops the
#      stream with exit 3 naming the LSN and table, the slot is not confirmed past
#      it, and once the cause is fixed the change is applied.
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/stream_lib.bash"

KILLS=${STREAM_FAULT_KILLS:-20}

wb_pg_start source
wb_pg_start target
wb_psql source -f "$WB_FIXTURES/clinic/source_schema.sql"
wb_psql target -f "$WB_FIXTURES/clinic/target_schema.sql"
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --log-level "${STREAM_LOG_LEVEL:-info}" \
    '"stream": { "batch_max_rows": 300, "batch_max_ms": 50, "feedback_interval_s": 1, "reconnect_max_s": 2 }'
log=$WB_TMP/walbridge.log

wb_run -c "$cfg" stream --create-slot --until-caught-up
wb_eq "slot created" 0 "$WB_RC"

wb_psql source <<'SQL'
INSERT INTO offices (id, name) SELECT g, 'office ' || g FROM generate_series(1, 3) g;
INSERT INTO profiles (id, email, full_name) SELECT g, g || '@x', 'p' || g FROM generate_series(1, 3) g;
INSERT INTO doctors (id, office_id, profile_id, license_no) SELECT g, g, g, 'L' || g FROM generate_series(1, 3) g;
INSERT INTO patients (id, office_id, doctor_id, full_name)
SELECT g, 1 + g % 3, 1 + g % 3, 'patient ' || g FROM generate_series(1, 50) g;
SQL

# pgbench workload: inserts of orders and audit rows, order updates (some leave the
# TOASTed notes untouched), deletes.  Failures (e.g. during a restart) are tolerated.
script=$WB_TMP/workload.pgbench
cat >"$script" <<'EOF'
\set p random(1, 50)
\set n random(1, 1000000)
BEGIN;
INSERT INTO orders (patient_id, status, notes, amount, external_ref)
  VALUES (:p, 'new', repeat('n', 3000 + :n % 3000), :n / 100.0, 9007199254740993 + :n);
UPDATE orders SET status = 'paid', amount = amount + 1
  WHERE id = (SELECT max(id) FROM orders WHERE patient_id = :p);
INSERT INTO audit_log (actor, action) VALUES ('bench', 'n' || (:n % 10));
COMMIT;
DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE patient_id = :p AND status = 'paid')
  AND :n % 3 = 0;
EOF

# ---- 1. kill -9 repeatedly during the workload
pgbench -n -c 4 -j 2 -R 150 -T 600 -f "$script" "$SOURCE_DSN" >"$WB_TMP/pgbench.out" 2>&1 &
bench_pid=$!
for ((i = 1; i <= KILLS; i++)); do
    wb_run_bg -c "$cfg" stream
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.4 + (r % 1200) / 1000 }')"
    kill -KILL "$WB_BG_PID" 2>/dev/null || true
    wait "$WB_BG_PID" 2>/dev/null || true
done
kill -TERM "$bench_pid" 2>/dev/null || true  # (SIGINT is ignored by background jobs)
wait "$bench_pid" 2>/dev/null || true
wb_check "the workload wrote orders during the kills" \
    test "$(wb_psql source -c "SELECT count(*) > 50 FROM orders")" = t
starts=$(grep -c 'streaming from slot' "$log" || true)
wb_check "the stream was started $KILLS times and streamed each time ($starts)" test "$starts" -ge "$KILLS"

wb_run -c "$cfg" stream --until-caught-up
wb_eq "after $KILLS kills: stream --until-caught-up exits 0" 0 "$WB_RC"
stream_compare_clinic "after $KILLS kill -9"
wb_eq "no duplicate legacy keys in orders" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM (SELECT legacy_id FROM orders GROUP BY 1 HAVING count(*) > 1) d")"

# ---- 2 and 3. restart the target, then the source, under a running stream
writer() { # SECONDS: one small transaction every 50 ms, failures tolerated
    local end=$((SECONDS + $1)) n=0
    while ((SECONDS < end)); do
        n=$((n + 1))
        psql -X -q -d "$SOURCE_DSN" -c "INSERT INTO orders (patient_id, status, amount) VALUES (1 + $n % 50, 'w', $n)" \
            >/dev/null 2>&1 || true
        sleep 0.05
    done
}
caught_up() {
    [[ $(stream_table_digest source orders) == "$(stream_table_digest target orders)" ]]
}
for side in target source; do
    wb_run_bg -c "$cfg" stream
    pid=$WB_BG_PID
    writer 12 &
    wpid=$!
    sleep 3
    wb_pg_stop "$side" immediate
    sleep 3
    wb_pg_start_again "$side"
    wait "$wpid" || true
    wb_wait_for "$side restarted mid-stream: the stream catches up by itself" 90 caught_up || true
    wb_check "$side restart: the stream process survived" kill -0 "$pid"
    kill -TERM "$pid" 2>/dev/null || true
    wb_bg_wait "$pid" 30
    wb_eq "$side restart: SIGTERM exits 0" 0 "$WB_RC"
    stream_compare_clinic "after the $side restart"
done
wb_contains "reconnects are logged with their cause" "$(cat "$log")" "reconnecting (attempt"

# ---- 4. a poison change stops the stream without confirming it
wb_psql target -c "ALTER TABLE offices ADD CONSTRAINT poison CHECK (city IS DISTINCT FROM 'POISON')"
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (900, 'fine', 'ok')"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "poison: the stream is caught up before the poison change" 0 "$WB_RC"
before=$(wb_psql source -c "SELECT pg_current_wal_lsn()")
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (901, 'bad', 'POISON')"
after=$(wb_psql source -c "SELECT pg_current_wal_lsn()")
wb_psql source -c "INSERT INTO offices (id, name, city) VALUES (902, 'later', 'ok')"
: >"$log"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "poison: exit 3" 3 "$WB_RC"
errors=$(grep -E 'ERROR' "$log" || true)
wb_contains "poison: the error names the table" "$errors" "offices"
wb_contains "poison: the error names the constraint" "$errors" "poison"
named=$(grep -oE 'LSN [0-9A-F]+/[0-9A-F]+' <<<"$errors" | awk '{print $2}' | sort -u)
inrange=f
for l in $named; do
    r=$(wb_psql source -c "SELECT '$l'::pg_lsn BETWEEN '$before'::pg_lsn AND '$after'::pg_lsn")
    [[ $r == t ]] && inrange=t
done
wb_eq "poison: an LSN of the poison transaction is named ($named in $before..$after)" t "$inrange"
wb_eq "poison: the slot is not confirmed past the poison transaction" t \
    "$(wb_psql source -c "SELECT confirmed_flush_lsn < '$after'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'walbridge'")"
wb_eq "poison: the change before it is still applied" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id = 900")"
wb_eq "poison: nothing after it was applied" 0 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id IN (901, 902)")"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "poison: restarting without a fix stops again with exit 3" 3 "$WB_RC"
wb_psql target -c "ALTER TABLE offices DROP CONSTRAINT poison"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "poison fixed: exit 0" 0 "$WB_RC"
wb_eq "poison fixed: the poison change and the one after it are applied" 2 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE legacy_id IN (901, 902)")"
stream_compare_clinic "at the end"

wb_finish
