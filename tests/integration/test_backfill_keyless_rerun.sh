#!/usr/bin/env bash
# test_backfill_keyless_rerun.sh — a backfill re-run (the slot exists) and keyless
# tables.  A keyless row has no key to conflict on, so a re-run may only diff them
# against a target that holds exactly the snapshot's transactions: backfill holds the
# stream lock, reads a temporary slot's snapshot and first applies the slot's changes
# up to that slot's consistent point, none after.  Then the stream carries on from
# there and no row is applied twice, even after a kill -9 during the catch-up.  With a
# stream running, or when the catch-up cannot apply a change, the keyless tables are
# left out of the run, saying why.
#
# One source cluster; each scenario uses its own database on the target cluster and
# its own slot (TARGET_DSN is switched, so wb_psql target and the bf_* helpers follow).
source "$WALBRIDGE_SOURCE_DIR/tests/harness/lib.sh"
source "$WALBRIDGE_SOURCE_DIR/tests/integration/test_backfill_lib.bash"

wb_pg_start source
wb_pg_start target
wb_load_clinic source 2
bf_target_databases

# equal_everywhere CASE: every table equal through the mapping (duplicate keyless rows
# counted), verify exits 0.
equal_everywhere() {
    local t
    for t in $BF_TABLES; do
        wb_check "$1: $t equal through the mapping" bf_same_table "$t"
    done
    wb_run -c "$cfg" verify
    wb_eq "$1: verify exits 0" 0 "$WB_RC"
}

# copied TABLE: the "copied" column of TABLE in backfill's summary ($WB_OUT).
copied() {
    awk -v t="public.$1" '$1 == t { print $4 }' <<<"$WB_OUT"
}

# temp_slots SLOT: temporary slots of backfill left on the source.
temp_slots() {
    wb_psql source -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '$1\\_backfill\\_%'"
}

# behind_writes TAG: keyless and keyed writes the stream has not applied yet: two
# identical audit rows, one audit row deleted, one updated, an office and its doctor.
behind_writes() {
    wb_psql source <<SQL
INSERT INTO audit_log (happened_at, actor, action, detail)
VALUES ('2024-05-01 10:00+00', '$1', 'twin', '{"n": 1}'), ('2024-05-01 10:00+00', '$1', 'twin', '{"n": 1}');
DELETE FROM audit_log WHERE ctid = (SELECT ctid FROM audit_log WHERE actor NOT LIKE 'tag-%' ORDER BY ctid LIMIT 1);
UPDATE audit_log SET action = '$1-changed'
    WHERE ctid = (SELECT ctid FROM audit_log WHERE actor NOT LIKE 'tag-%' ORDER BY ctid OFFSET 3 LIMIT 1);
INSERT INTO offices (name, city) VALUES ('$1-office', 'Oslo');
SQL
}

# ------------------------------------------------------------------ a. the stream is behind
new_target a wb_a
wb_run -c "$cfg" backfill
wb_eq "a: the first run creates the slot and copies everything (exit 0)" 0 "$WB_RC"
behind_writes tag-a
wb_run -c "$cfg" backfill
wb_eq "a: the re-run exits 0" 0 "$WB_RC"
wb_contains "a: it applies the stream's changes up to the snapshot first" "$WB_ERR" \
    "applying the stream's changes up to the snapshot's consistent point"
wb_contains "a: and says the target holds them" "$WB_ERR" "the target holds every source transaction up to"
wb_eq "a: the catch-up applied the audit rows, so backfill copies none" 0 "$(copied audit_log)"
wb_eq "a: the keyed office, done before the catch-up, is copied from the snapshot" 1 "$(copied offices)"
wb_eq "a: and is in the target once" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'tag-a-office'")"
wb_eq "a: both twins are in the target once each" 2 \
    "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'tag-a'")"
wb_eq "a: the temporary slot is gone" 0 "$(temp_slots wb_a)"
wb_psql source -c "INSERT INTO audit_log (actor, action) VALUES ('tag-a', 'after the re-run')"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "a: the stream carries on (exit 0)" 0 "$WB_RC"
wb_eq "a: the twins are not inserted a second time" 2 \
    "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'tag-a' AND action = 'twin'")"
equal_everywhere a

# ------------------------------------------------------------------ b. writers during the re-run
# Keyless inserts, updates and deletes commit on the source all through the re-run:
# each lands before the temporary slot's consistent point (applied by the catch-up,
# in the snapshot) or after it (in neither, applied by the stream), never both.
new_target b wb_b
wb_run -c "$cfg" backfill
wb_eq "b: the first run (exit 0)" 0 "$WB_RC"
behind_writes tag-b
wb_psql source >"$WB_TMP/b_writer.out" 2>&1 <<'SQL' &
DO $$ BEGIN
    FOR i IN 1..500 LOOP
        INSERT INTO audit_log (happened_at, actor, action) VALUES ('2024-06-01+00', 'tag-b-loop', 'same');
        IF i % 10 = 0 THEN
            DELETE FROM audit_log WHERE ctid = (SELECT ctid FROM audit_log WHERE actor = 'tag-b-loop' LIMIT 1);
            UPDATE audit_log SET detail = jsonb_build_object('i', i)
                WHERE ctid = (SELECT ctid FROM audit_log WHERE actor = 'tag-b-loop' AND detail IS NULL LIMIT 1);
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
SQL
writer=$!
wb_wait_for "b: the writer has started" 20 bash -c "[[ \$(psql -X -qAt -d '$SOURCE_DSN' -c \"SELECT count(*) FROM audit_log WHERE actor = 'tag-b-loop'\") -ge 5 ]]" || true
wb_run -c "$cfg" backfill --include-stale
wb_eq "b: the re-run beside the writer exits 0" 0 "$WB_RC"
wb_check "b: the writer was still writing when the re-run ended" kill -0 "$writer"
wait "$writer"
wb_eq "b: the writer finished" 0 "$?"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "b: the stream carries on (exit 0)" 0 "$WB_RC"
equal_everywhere b

# ------------------------------------------------------------------ c. a stream is running
new_target c wb_c
wb_run -c "$cfg" backfill
wb_eq "c: the first run (exit 0)" 0 "$WB_RC"
# Rows lost from the target's keyless table: only a re-run can bring them back.
wb_psql target -c "DELETE FROM audit_log WHERE ctid IN (SELECT ctid FROM audit_log ORDER BY ctid LIMIT 3)"
wb_run_bg -c "$cfg" stream
stream_pid=$WB_BG_PID
slot_active() {
    [[ $(wb_psql source -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'wb_c'") == t ]]
}
wb_wait_for "c: the stream of slot wb_c is running" 30 slot_active || true
audit_before=$(bf_count target audit_log)
wb_run -c "$cfg" backfill
wb_eq "c: backfill beside a running stream exits 0" 0 "$WB_RC"
wb_contains "c: it says the keyless table is left out, and why" "$WB_ERR" \
    "keyless table(s) public.audit_log left out of this run: a walbridge stream of this slot is running on the target"
wb_contains "c: the summary says so" "$WB_OUT" "(left out: keyless"
wb_eq "c: no audit row was written" "$audit_before" "$(bf_count target audit_log)"
wb_eq "c: no temporary slot was made" 0 "$(temp_slots wb_c)"
kill -TERM "$stream_pid"
wb_bg_wait "$stream_pid" 30
wb_eq "c: the stream stops on SIGTERM (exit 0)" 0 "$WB_RC"
wb_run -c "$cfg" backfill --tables audit_log
wb_eq "c: with the stream stopped, a re-run of the keyless table exits 0" 0 "$WB_RC"
wb_eq "c: it copies the three lost rows" 3 "$(copied audit_log)"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "c: the stream carries on (exit 0)" 0 "$WB_RC"
equal_everywhere c

# ------------------------------------------------------------------ d. the catch-up meets a poison change
# A change the target refuses: the catch-up stops at it, the keyless table is left out
# (its state would not match the snapshot), the keyed tables go on, the run exits 3,
# and the slot is not advanced past the change.
new_target d wb_d
wb_run -c "$cfg" backfill
wb_eq "d: the first run (exit 0)" 0 "$WB_RC"
wb_psql target -c "ALTER TABLE audit_log ADD CONSTRAINT no_poison CHECK (action <> 'poison')"
wb_psql source -c "INSERT INTO audit_log (actor, action) VALUES ('tag-d', 'poison')"
applied_before=$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'wb_d'")
wb_psql source -c "INSERT INTO offices (name, city) VALUES ('tag-d-office', 'Bergen')"
wb_run -c "$cfg" backfill
wb_eq "d: the re-run exits 3" 3 "$WB_RC"
wb_contains "d: and says it finished without the keyless table" "$WB_ERR" \
    "backfill finished without the keyless tables named above (exit 3)"
wb_contains "d: the stream error names the constraint" "$WB_ERR" "no_poison"
wb_contains "d: the keyless table is left out, and why" "$WB_ERR" \
    "keyless table(s) public.audit_log left out of this run: the stream could not be brought to the snapshot"
wb_eq "d: the keyed office is copied by backfill" 1 \
    "$(wb_psql target -c "SELECT count(*) FROM offices WHERE name = 'tag-d-office'")"
wb_eq "d: the applied LSN did not pass the poison change" "$applied_before" \
    "$(wb_psql target -c "SELECT applied_lsn FROM walbridge.stream_progress WHERE slot = 'wb_d'")"
wb_eq "d: the temporary slot is gone" 0 "$(temp_slots wb_d)"
wb_psql target -c "ALTER TABLE audit_log DROP CONSTRAINT no_poison"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "d: once the target takes the change, the stream carries on (exit 0)" 0 "$WB_RC"
equal_everywhere d

# ------------------------------------------------------------------ e. kill -9 during the catch-up
# The stream is 600 audit rows behind and the target takes each slowly (a trigger
# sleeps 5 ms a row), so the kill lands while backfill applies them.  The temporary
# slot goes with backfill's connection, the stream lock with its session; the catch-up
# committed whole source transactions with their applied LSN, so a new run (or the
# stream) goes on from there and nothing is applied twice.
new_target e wb_e
wb_run -c "$cfg" backfill
wb_eq "e: the first run (exit 0)" 0 "$WB_RC"
wb_psql target <<'SQL'
CREATE FUNCTION slow_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.005); RETURN NEW; END $$;
CREATE TRIGGER slow_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION slow_audit();
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER slow_audit;
SQL
wb_psql source -c "DO \$\$ BEGIN FOR i IN 1..600 LOOP
    INSERT INTO audit_log (happened_at, actor, action) VALUES ('2024-07-01+00', 'tag-e', 'twin'); COMMIT;
END LOOP; END \$\$"
wb_run_bg -c "$cfg" backfill
bf_pid=$WB_BG_PID
catching_up() { grep -q "applying the stream's changes up to the snapshot" "$WB_BG_ERR"; }
wb_wait_for "e: backfill is applying the stream's changes" 60 catching_up || true
sleep 1
some_applied() { [[ $(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'tag-e'") -gt 0 ]]; }
wb_wait_for "e: some of them are applied" 30 some_applied || true
applied_at_kill=$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'tag-e'")
kill -KILL "$bf_pid"
wb_bg_wait "$bf_pid" 10
wb_check "e: the kill landed mid catch-up (some of the 600 rows applied, not all)" \
    test "$applied_at_kill" -gt 0 -a "$applied_at_kill" -lt 600
no_temp_slot() { [[ $(temp_slots wb_e) == 0 ]]; }
wb_wait_for "e: the temporary slot is gone with backfill's connection" 30 no_temp_slot
wb_psql target -c "ALTER TABLE audit_log DISABLE TRIGGER slow_audit"
wb_run -c "$cfg" backfill
wb_eq "e: a new run exits 0" 0 "$WB_RC"
wb_eq "e: it copies none of the audit rows (its catch-up applied the rest)" 0 "$(copied audit_log)"
wb_eq "e: each of the 600 rows is in the target once" 600 \
    "$(wb_psql target -c "SELECT count(*) FROM audit_log WHERE actor = 'tag-e'")"
wb_run -c "$cfg" stream --until-caught-up
wb_eq "e: the stream carries on (exit 0)" 0 "$WB_RC"
equal_everywhere e

wb_finish
