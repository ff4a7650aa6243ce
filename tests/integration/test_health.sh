# test_health.sh — `walbridge health` against real PostgreSQL 15 clusters: exit
# codes and messages for a healthy slot, a stopped consumer whose source keeps
# writing (retained WAL crosses the WARNING then the CRITICAL threshold), an
# applied LSN behind confirmed_flush, an unreachable target and source, a dropped
# slot, and a slot lost to max_slot_wal_keep_size; every figure in --format json;
# the line format of --format prometheus; thresholds in bad units (exit 3).
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target
cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --log-level warn

MB=$((1024 * 1024))

# first_line: the status line of the last run; perf NAME: a perfdata value (digits).
first_line() { head -n 1 <<<"$WB_OUT"; }
perf() { first_line | sed -n "s/.*| .*\\b$1=\\([0-9]*\\)B.*/\\1/p"; }
retained_sql() {
    wb_psql source -c "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint
                       FROM pg_replication_slots WHERE slot_name = 'walbridge'"
}
# write_wal MB: writes about MB megabytes of WAL on the source (outside the config).
write_wal() {
    wb_psql source -c "INSERT INTO filler SELECT g, repeat(md5(g::text), 32)
                       FROM generate_series(1, $1 * 1024 * 1024 / 1100) g"
}
wb_psql source -c "CREATE TABLE filler (id int, pad text)"

# ---------------------------------------------------------------- options
wb_run -c "$cfg" health --warn-retained 10XB
wb_eq "bad size unit: exit 3 (UNKNOWN)" 3 "$WB_RC"
wb_contains "bad size unit: says which option and why" "$(first_line)" \
    'WALBRIDGE UNKNOWN - --warn-retained: invalid size "10XB": unknown unit "XB"'
wb_run -c "$cfg" health --crit-stale 5parsecs
wb_eq "bad duration unit: exit 3" 3 "$WB_RC"
wb_contains "bad duration unit: message" "$(first_line)" '--crit-stale: invalid duration "5parsecs"'
wb_run -c "$cfg" health --warn-lag -1MB
wb_eq "negative size: exit 3" 3 "$WB_RC"
wb_run -c "$cfg" health --warn-retained 2GB --crit-retained 1GB
wb_eq "warn above crit: exit 3" 3 "$WB_RC"
wb_run -c "$cfg" health --format yaml
wb_eq "unknown format: exit 3" 3 "$WB_RC"
wb_run -c "$WB_TMP/missing.json" health
wb_eq "missing config: exit 3" 3 "$WB_RC"
wb_contains "missing config: names the file" "$(first_line)" "missing.json"
wb_run -c "$cfg" health --help
wb_eq "--help exits 0" 0 "$WB_RC"
wb_contains "--help lists the thresholds" "$WB_OUT" "--crit-inactive DUR"

# ---------------------------------------------------------------- no slot yet
wb_run -c "$cfg" health
wb_eq "no slot: exit 2 (CRITICAL)" 2 "$WB_RC"
wb_contains "no slot: status line" "$(first_line)" \
    'WALBRIDGE CRITICAL - replication slot "walbridge" does not exist on the source'
wb_contains "no slot: says to re-run backfill" "$WB_OUT" "re-run walbridge backfill"

# ---------------------------------------------------------------- healthy
# The slot as backfill leaves it, and the applied LSN stream records (state.h schema).
wb_psql source -c "SELECT 1 FROM pg_create_logical_replication_slot('walbridge', 'wal2json')" >/dev/null
confirmed=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots
                               WHERE slot_name = 'walbridge'")
wb_psql target <<SQL
CREATE SCHEMA walbridge;
CREATE TABLE walbridge.stream_progress (slot text PRIMARY KEY, applied_lsn pg_lsn NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(), source_commit_time timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO walbridge.stream_progress (slot, applied_lsn) VALUES ('walbridge', '$confirmed');
SQL
wb_run -c "$cfg" health
wb_eq "healthy slot: exit 0" 0 "$WB_RC"
wb_contains "healthy slot: OK line" "$(first_line)" 'WALBRIDGE OK - slot "walbridge" inactive'
wb_contains "healthy slot: perfdata with thresholds" "$(first_line)" \
    "retained=$(perf retained)B;$((512 * MB));$((2048 * MB));0;"
wb_contains "healthy slot: applied LSN shown" "$WB_OUT" "target: applied LSN $confirmed"

# ---------------------------------------------------------------- target unreachable
wb_pg_stop target
wb_run -c "$cfg" health
wb_eq "target down: exit 1 (WARNING)" 1 "$WB_RC"
wb_contains "target down: says so" "$(first_line)" "WALBRIDGE WARNING - target unreachable"
wb_check "target down: no password or crash" test "$WB_RC" -lt 3
wb_pg_start_again target

# ---------------------------------------------------------------- consumer stopped, source writes
before=$(retained_sql)
write_wal 12
after=$(retained_sql)
wb_run -c "$cfg" health --warn-retained 8MB --crit-retained 40MB
wb_eq "retained over warn: exit 1" 1 "$WB_RC"
wb_contains "retained over warn: WARNING line" "$(first_line)" \
    "WALBRIDGE WARNING - retained WAL"
wb_contains "retained over warn: names the threshold" "$(first_line)" "warning threshold 8.0 MB"
r1=$(perf retained)
wb_check "retained grew with the writes ($before -> $r1)" test "$r1" -ge "$after" -a "$r1" -gt $((before + 8 * MB))
wb_contains "perfdata carries the given thresholds" "$(first_line)" "retained=${r1}B;$((8 * MB));$((40 * MB));0;"

write_wal 36
wb_run -c "$cfg" health --warn-retained 8MB --crit-retained 40MB
wb_eq "retained over crit: exit 2" 2 "$WB_RC"
wb_contains "retained over crit: CRITICAL line" "$(first_line)" \
    "WALBRIDGE CRITICAL - retained WAL"
r2=$(perf retained)
wb_check "retained kept growing ($r1 -> $r2)" test "$r2" -gt $((40 * MB)) -a "$r2" -gt "$r1"
wb_run -c "$cfg" health --warn-retained 8MB --crit-retained 40MB --warn-lag 1MB --crit-lag 2GB
wb_contains "lag threshold reported too" "$WB_OUT" "confirmed lag"

# stale: the source has WAL past the applied LSN and it is older than the threshold
sleep 2
wb_run -c "$cfg" health --warn-stale 1s --crit-stale 1h
wb_eq "stale applied LSN: exit 1" 1 "$WB_RC"
wb_contains "stale applied LSN: message" "$WB_OUT" "applied LSN age"
wb_run -c "$cfg" health --warn-stale off --crit-stale off
wb_eq "stale checks off: OK again" 0 "$WB_RC"

# ---------------------------------------------------------------- json
wb_run -c "$cfg" health --format json --warn-retained 8MB --crit-retained 40MB
wb_eq "json: exit code still the verdict" 2 "$WB_RC"
json=$WB_OUT
wb_check "json parses" python3 -c "import json,sys; json.load(sys.stdin)" <<<"$json"
low=$(retained_sql)
missing=$(python3 - "$json" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
want = {
    "": ["status", "exit_code", "summary", "reasons", "source", "target", "thresholds"],
    "source": ["reachable", "server_version_num", "wal_level", "current_lsn",
               "max_slot_wal_keep_size_bytes", "max_replication_slots", "slots_used",
               "wal_sender_timeout_seconds", "output_plugin_libraries", "slot", "walsender",
               "decoding"],
    "source.slot": ["name", "exists", "plugin", "slot_type", "database", "active", "active_pid",
                    "wal_status", "safe_wal_size_bytes", "restart_lsn", "confirmed_flush_lsn",
                    "retained_bytes", "lag_bytes", "catalog_xmin_age", "conflicting",
                    "inactive_seconds", "invalidation_reason"],
    "source.decoding": ["spill_txns", "spill_count", "spill_bytes", "stream_txns",
                        "stream_count", "stream_bytes", "total_txns", "total_bytes"],
    "target": ["reachable", "state_schema", "state_exists", "applied_lsn",
               "applied_age_seconds", "applied_lag_bytes", "stale_seconds"],
    "thresholds": ["warn_retained_bytes", "crit_retained_bytes", "warn_lag_bytes",
                   "crit_lag_bytes", "warn_stale_seconds", "crit_stale_seconds",
                   "warn_inactive_seconds", "crit_inactive_seconds"],
}
out = []
for path, keys in want.items():
    node = d
    for part in filter(None, path.split(".")):
        node = node[part]
    out += [f"{path}.{k}" for k in keys if k not in node]
print(" ".join(out))
PY
)
wb_eq "json holds every figure" "" "$missing"
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval('d'+sys.argv[2]))" "$json" "$1"; }
wb_eq "json status" CRITICAL "$(jget '["status"]')"
wb_eq "json plugin" wal2json "$(jget '["source"]["slot"]["plugin"]')"
wb_eq "json wal_level" logical "$(jget '["source"]["wal_level"]')"
wb_eq "json applied_lsn" "$confirmed" "$(jget '["target"]["applied_lsn"]')"
wb_eq "json warn threshold in bytes" $((8 * MB)) "$(jget '["thresholds"]["warn_retained_bytes"]')"
jr=$(jget '["source"]["slot"]["retained_bytes"]')
wb_check "json retained_bytes matches the server ($jr ~ $low)" \
    python3 -c "import sys; a=float('$jr'); b=$low; sys.exit(0 if abs(a-b) < 1024*1024 else 1)"
wb_check "json total_txns is a number" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if isinstance(d['source']['decoding']['total_txns'], (int,float)) else 1)" "$json"

# ---------------------------------------------------------------- prometheus
wb_run -c "$cfg" health --format prometheus --warn-retained 8MB --crit-retained 40MB
wb_eq "prometheus: exit code still the verdict" 2 "$WB_RC"
bad=$(grep -Ev '^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$' <<<"$WB_OUT" || true)
wb_eq "prometheus: every line is a comment or a sample" "" "$bad"
wb_contains "prometheus: status gauge" "$WB_OUT" 'walbridge_health_status{slot_name="walbridge"} 2'
wb_contains "prometheus: postgres_exporter name for activity" "$WB_OUT" \
    'pg_replication_slot_slot_is_active{slot_name="walbridge"} 0'
wb_contains "prometheus: retained bytes" "$WB_OUT" 'walbridge_slot_retained_wal_bytes{slot_name="walbridge"}'
types=$(grep -c '^# TYPE' <<<"$WB_OUT")
names=$(grep -v '^#' <<<"$WB_OUT" | sed 's/[{ ].*//' | sort -u | wc -l)
wb_eq "prometheus: one TYPE line per metric" "$names" "$types"

# ---------------------------------------------------------------- confirmed ahead of applied
wb_psql target -c "UPDATE walbridge.stream_progress SET applied_lsn = '0/1'"
wb_run -c "$cfg" health
wb_eq "confirmed_flush ahead of applied: exit 2" 2 "$WB_RC"
wb_contains "confirmed_flush ahead of applied: says data may be skipped" "$(first_line)" \
    "data may have been skipped"
wb_psql target -c "UPDATE walbridge.stream_progress SET applied_lsn = '$confirmed'"

# ---------------------------------------------------------------- target query fails
wb_psql target -c "ALTER TABLE walbridge.stream_progress RENAME applied_lsn TO gone"
wb_run -c "$cfg" health --warn-retained 1GB --crit-retained 2GB --warn-stale off --crit-stale off
wb_eq "target query fails: exit 1 (WARNING)" 1 "$WB_RC"
wb_contains "target query fails: says so with the server's reason" "$(first_line)" \
    'target query failed: reading the applied LSN: column "applied_lsn" does not exist'
wb_psql target -c "ALTER TABLE walbridge.stream_progress RENAME gone TO applied_lsn"

# ---------------------------------------------------------------- source unreachable
sed "s/port=$SOURCE_PORT/port=1/" "$cfg" >"$WB_TMP/nosource.json"
wb_run -c "$WB_TMP/nosource.json" health --format json
wb_eq "source down: exit 2 (CRITICAL)" 2 "$WB_RC"
wb_contains "source down: says slot state unknown" "$WB_OUT" "slot state unknown"
wb_check "source down: json still parses" python3 -c "import json,sys; json.load(sys.stdin)" <<<"$WB_OUT"

# ---------------------------------------------------------------- no stream_progress row
wb_psql target -c "DELETE FROM walbridge.stream_progress"
wb_run -c "$cfg" health --warn-retained 1GB --crit-retained 2GB --warn-stale off --crit-stale off
wb_eq "no applied LSN recorded: exit 1 (WARNING)" 1 "$WB_RC"
wb_contains "no applied LSN recorded: says stream never ran" "$(first_line)" "stream has never run"

# ---------------------------------------------------------------- slot dropped
wb_psql source -c "SELECT pg_drop_replication_slot('walbridge')" >/dev/null
wb_run -c "$cfg" health
wb_eq "slot dropped: exit 2" 2 "$WB_RC"
wb_contains "slot dropped: hint" "$WB_OUT" \
    "re-run walbridge backfill (it creates the slot and records where stream starts)"

# ---------------------------------------------------------------- slot lost to max_slot_wal_keep_size
wb_psql source -c "ALTER SYSTEM SET max_slot_wal_keep_size = '32MB'"
wb_psql source -c "SELECT pg_reload_conf()" >/dev/null
wb_psql source -c "SELECT 1 FROM pg_create_logical_replication_slot('walbridge', 'wal2json')" >/dev/null
confirmed=$(wb_psql source -c "SELECT confirmed_flush_lsn FROM pg_replication_slots
                               WHERE slot_name = 'walbridge'")
wb_psql target -c "INSERT INTO walbridge.stream_progress (slot, applied_lsn)
                   VALUES ('walbridge', '$confirmed')"
wb_run -c "$cfg" health --format json
wb_eq "capped slot, nothing written yet: exit 0" 0 "$WB_RC"
wb_eq "json max_slot_wal_keep_size_bytes" $((32 * MB)) \
    "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['source']['max_slot_wal_keep_size_bytes'])" "$WB_OUT")"
# safe_wal_size (to the segment boundary) shrinks as WAL is written: under half the cap
safe() { wb_psql source -c "SELECT safe_wal_size FROM pg_replication_slots WHERE slot_name = 'walbridge'"; }
for _ in 1 2 3 4 5 6; do
    (($(safe) < 16 * MB)) && break
    write_wal 6
done
s=$(safe)
wb_check "server safe_wal_size now under half the cap ($s)" test "$s" -lt $((16 * MB)) -a "$s" -gt 0
wb_run -c "$cfg" health
expect=1
((s < 32 * MB / 5)) && expect=2
wb_eq "safe_wal_size under 50% (20%) of the cap: WARNING (CRITICAL)" "$expect" "$WB_RC"
wb_contains "safe_wal_size named" "$(first_line)" "safe_wal_size"
wb_contains "safe_wal_size in perfdata" "$(first_line)" "safe_wal_size=${s}B"
for _ in 1 2 3; do
    write_wal 20
    wb_psql source -c "SELECT pg_switch_wal()" >/dev/null
    wb_psql source -c "CHECKPOINT"
done
wb_eq "slot is lost on the server" lost "$(wb_psql source -c "SELECT wal_status FROM pg_replication_slots
                                                           WHERE slot_name = 'walbridge'")"
wb_run -c "$cfg" health
wb_eq "lost slot: exit 2" 2 "$WB_RC"
wb_contains "lost slot: CRITICAL invalidated" "$(first_line)" \
    'WALBRIDGE CRITICAL - slot "walbridge" is invalidated (wal_status lost'
wb_contains "lost slot: hint" "$WB_OUT" "re-run walbridge backfill"

wb_finish
