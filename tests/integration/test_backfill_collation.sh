#!/usr/bin/env bash
# test_backfill_collation.sh — a text column with a nondeterministic collation
# (case-insensitive ICU, as legacy schemas use for emails) is compared byte for byte:
# a target value that differs from the source only in case is stale.  Under its own
# collation the two are equal, and hashed by it they hash alike, so verify would call
# the tables identical and backfill --include-stale would leave the wrong value.
# people: the source has the collation on one column, the target on another (every row
# used to differ).  handles: both sides have it (a case-only difference went unseen).
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

wb_pg_start source
wb_pg_start target

ci="CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
wb_psql source <<SQL
$ci;
CREATE TABLE people (id integer PRIMARY KEY, email text COLLATE ci, nick text);
INSERT INTO people
SELECT n, 'Person.' || n || '@Example.org', 'Nick' || n FROM generate_series(1, 50) n;
CREATE TABLE handles (id integer PRIMARY KEY, handle text COLLATE ci);
INSERT INTO handles SELECT n, 'Handle' || n FROM generate_series(1, 20) n;
SQL
wb_psql target <<SQL
$ci;
CREATE TABLE people (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id bigint NOT NULL UNIQUE,
    email     text,
    nick      text COLLATE ci
);
CREATE TABLE handles (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id bigint NOT NULL UNIQUE,
    handle    text COLLATE ci
);
SQL
wb_eq "the collation makes case differences equal" t \
    "$(wb_psql source -c "SELECT 'A@x.org'::text COLLATE ci = 'a@x.org'::text COLLATE ci")"

cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" --tables-json '[
    { "source": "public.people", "key": "id", "target_key": "id", "legacy_key": "legacy_id" },
    { "source": "public.handles", "key": "id", "target_key": "id", "legacy_key": "legacy_id" } ]'

wb_run -c "$cfg" backfill
wb_eq "backfill into the empty target exits 0" 0 "$WB_RC"
wb_run -c "$cfg" verify
wb_eq "verify after the copy exits 0" 0 "$WB_RC"

# Plant case-only differences: in the source's ci column, the target's, and both sides'.
wb_psql target -c "UPDATE people SET email = lower(email) WHERE legacy_id = 7"
wb_psql target -c "UPDATE people SET nick = upper(nick) WHERE legacy_id = 9"
wb_psql target -c "UPDATE handles SET handle = lower(handle) WHERE legacy_id = 11"
wb_run -c "$cfg" verify --show 5 --format json
wb_eq "verify sees the case-only differences (exit 1)" 1 "$WB_RC"
wb_eq "people: the two rows named as differing" "7 9" \
    "$(jq -r '.tables[0].differing_keys | join(" ")' <<<"$WB_OUT")"
wb_eq "handles: the row named as differing" "11" \
    "$(jq -r '.tables[1].differing_keys | join(" ")' <<<"$WB_OUT")"
wb_eq "nothing missing or extra" "0 0 0 0" \
    "$(jq -r '[.tables[] | .missing, .extra] | join(" ")' <<<"$WB_OUT")"

wb_run -c "$cfg" backfill --include-stale
wb_eq "backfill --include-stale exits 0" 0 "$WB_RC"
wb_eq "the email has the source's case again" "Person.7@Example.org" \
    "$(wb_psql target -c "SELECT email FROM people WHERE legacy_id = 7")"
wb_eq "the nick has the source's case again" "Nick9" \
    "$(wb_psql target -c "SELECT nick FROM people WHERE legacy_id = 9")"
wb_eq "the handle has the source's case again" "Handle11" \
    "$(wb_psql target -c "SELECT handle FROM handles WHERE legacy_id = 11")"
wb_eq "people: every row byte-equal to the source" \
    "$(wb_psql source -c "SELECT md5(string_agg(concat_ws(' ', id, email, nick), ',' ORDER BY id)) FROM people")" \
    "$(wb_psql target -c "SELECT md5(string_agg(concat_ws(' ', legacy_id, email, nick), ',' ORDER BY legacy_id)) FROM people")"
wb_run -c "$cfg" verify
wb_eq "verify after the repair exits 0" 0 "$WB_RC"
wb_finish
