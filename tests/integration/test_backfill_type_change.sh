#!/usr/bin/env bash
# test_backfill_type_change.sh — a column whose type differs between source and target
# (json into jsonb, numeric(10,2) into numeric(12,4), real into double precision, a
# source enum into text) is compared as the target holds it: a correct copy is
# identical, a re-run copies nothing (also for a keyless table, whose rows are
# matched by their hash), and a real difference is still found and repaired.
# Compared as the source type, jsonb's reordered keys made every row differ, a
# keyless table got its rows again on every run, and the source enum (a type the
# target does not have) broke the target's diff query.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target

wb_psql source <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (
    id    integer PRIMARY KEY,
    doc   json,
    price numeric(10, 2),
    ratio real,
    feel  mood
);
INSERT INTO items
SELECT n, ('{"z": ' || n || ',   "a": [1, 2.50], "m": null}')::json, n * 1.25, n / 3.0,
       (ARRAY['sad', 'ok', 'happy'])[1 + n % 3]::mood
FROM generate_series(1, 40) n;
CREATE TABLE events (doc json, feel mood);
ALTER TABLE events REPLICA IDENTITY FULL;
INSERT INTO events SELECT ('{"n": ' || n % 5 || ',  "k": "v"}')::json, 'ok' FROM generate_series(1, 12) n;
SQL
wb_psql target <<'SQL'
CREATE TABLE items (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id bigint NOT NULL UNIQUE,
    doc       jsonb,
    price     numeric(12, 4),
    ratio     double precision,
    feel      text
);
CREATE TABLE events (doc jsonb, feel text);
SQL

cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --tables-json '[
    { "source": "public.items", "key": "id", "target_key": "id", "legacy_key": "legacy_id" },
    { "source": "public.events" } ]'

wb_run -c "$cfg" backfill
wb_eq "backfill into the empty target exits 0" 0 "$WB_RC"
wb_eq "the jsonb holds its own form of the source's json" '{"a": [1, 2.50], "m": null, "z": 7}' \
    "$(wb_psql target -c "SELECT doc FROM items WHERE legacy_id = 7")"
wb_run -c "$cfg" verify --format json
wb_eq "verify after the copy exits 0" 0 "$WB_RC"
wb_eq "verify: nothing differs" "0 0 0 0 0 0" \
    "$(jq -r '[.tables[] | .missing, .extra, .differing] | join(" ")' <<<"$WB_OUT")"

wb_run -c "$cfg" backfill --include-stale
wb_eq "a second backfill --include-stale exits 0" 0 "$WB_RC"
wb_eq "items: nothing copied or fixed again" "0 0" \
    "$(awk '$1 == "public.items" {print $4, $5}' <<<"$WB_OUT")"
wb_eq "events (keyless): no row copied again" 12 "$(wb_psql target -c "SELECT count(*) FROM events")"

# A real difference in each changed column is still seen, named and repaired.
wb_psql target <<'SQL'
UPDATE items SET doc = '{"a": [1, 2.5], "m": null, "z": 3}' WHERE legacy_id = 3;
UPDATE items SET price = 6.2501 WHERE legacy_id = 5;
UPDATE items SET ratio = 3.5 WHERE legacy_id = 9;
UPDATE items SET feel = 'meh' WHERE legacy_id = 11;
SQL
wb_run -c "$cfg" verify --show 10 --format json
wb_eq "verify sees the planted differences (exit 1)" 1 "$WB_RC"
wb_eq "the four rows named" "3 5 9 11" \
    "$(jq -r '.tables[0].differing_keys | join(" ")' <<<"$WB_OUT")"
wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill --include-stale exits 0" 0 "$WB_RC"
wb_eq "items: the four rows fixed" "0 4" "$(awk '$1 == "public.items" {print $4, $5}' <<<"$WB_OUT")"
wb_eq "the repaired values" '{"a": [1, 2.50], "m": null, "z": 3}|6.2500|3|happy' \
    "$(wb_psql target -c "SELECT (SELECT doc::text FROM items WHERE legacy_id = 3),
        (SELECT price FROM items WHERE legacy_id = 5), (SELECT ratio FROM items WHERE legacy_id = 9),
        (SELECT feel FROM items WHERE legacy_id = 11)")"
wb_run -c "$cfg" verify
wb_eq "verify after the repair exits 0" 0 "$WB_RC"
wb_finish
