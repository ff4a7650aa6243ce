#!/usr/bin/env bash
# test_hostile_names.sh — names that need quoting and values that break naive
# escaping go through backfill, stream and verify unchanged.
#   names: a schema and a table with spaces, double quotes and upper case
#   (`Weird "Schema"`.`Order`), columns named select, order, group, from, to, with
#   spaces, quotes, backslashes, upper case, a rename to such a name, a UUID-mapped
#   table whose key, target key and legacy key all need quoting, an identity-mapped
#   child whose composite key holds such text, and a keyless REPLICA IDENTITY FULL table;
#   values: single and double quotes, backslashes, COPY's own \N and \. markers, tabs,
#   newlines, carriage returns, every other NUL-free control character, DEL, unicode,
#   '' next to NULL, and 1 MB of text (TOASTed; an update that leaves it untouched).
# A TRUNCATE of the quoted keyless table is streamed too.
# After each phase the rows are compared with psql on both sides through the mapping
# (md5 of every row's text) and `walbridge verify` must agree.
source "${WALBRIDGE_SOURCE_DIR:-$(dirname "$0")/../..}/tests/harness/lib.sh"

export PGTZ=UTC PGDATESTYLE=ISO
wb_pg_start source
wb_pg_start target
ns=0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42

wb_psql source <<'SQL'
CREATE SCHEMA "Weird ""Schema""";
CREATE TABLE "Weird ""Schema"""."Order" (
    "select"      integer PRIMARY KEY,
    "Full Name"   text,
    "quote""col"  text,
    "order"       text,
    "UPPER"       text,
    "back\slash"  text,
    "big text"    text
);
CREATE TABLE public."line items" (
    "Order Id"  integer NOT NULL REFERENCES "Weird ""Schema"""."Order" ON DELETE CASCADE,
    "tag ""x""" text NOT NULL,
    "group"     text,
    PRIMARY KEY ("Order Id", "tag ""x""")
);
CREATE TABLE public."Audit Log" ("from" text, "to" text, "When" integer);
ALTER TABLE public."Audit Log" REPLICA IDENTITY FULL;

-- One value of each nasty kind, numbered: v(n) is used by every table.
CREATE FUNCTION hostile(n integer) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE n % 12
        WHEN 0 THEN 'it''s "quoted" ''twice'''
        WHEN 1 THEN E'back\\slash \\\\ double \\N \\. \\t literal'
        WHEN 2 THEN E'tab\there\nnewline\r\ncrlf'
        WHEN 3 THEN (SELECT string_agg(chr(c), '') FROM generate_series(1, 31) c) || chr(127)
        WHEN 4 THEN E'\\N'
        WHEN 5 THEN E'\\.'
        WHEN 6 THEN ''
        WHEN 7 THEN NULL
        WHEN 8 THEN 'unicode: é ß 漢字 🐘 ' || chr(8232) || chr(65279)
        WHEN 9 THEN E'{"json": "in \\"text\\"", "a": [1, 2]}'
        WHEN 10 THEN ' leading and trailing spaces  '
        ELSE E'semi;colon -- comment /* c */ $$dollar$$ %s %n %%'
    END || CASE WHEN n % 12 IN (4, 5, 6, 7) THEN '' ELSE ' #' || n END
$fn$;
INSERT INTO "Weird ""Schema"""."Order"
SELECT n, hostile(n), hostile(n + 1), hostile(n + 2), hostile(n + 3), hostile(n + 4),
       CASE WHEN n % 10 = 3 THEN repeat(md5(n::text), 32768) || hostile(n) ELSE hostile(n + 5) END
FROM generate_series(1, 40) n;
INSERT INTO public."line items"
SELECT o, coalesce(hostile(o + t), 'null tag') || ' ' || t, hostile(o * t)
FROM generate_series(1, 40) o, generate_series(0, 2) t;
INSERT INTO public."Audit Log"
SELECT hostile(n), hostile(n + 7), n % 5 FROM generate_series(1, 30) n;
SQL

wb_psql target <<'SQL'
CREATE EXTENSION "uuid-ossp";
CREATE SCHEMA "Weird ""Schema""";
CREATE TABLE "Weird ""Schema"""."Order" (
    "the ""id"""        uuid PRIMARY KEY,
    "legacy select"     integer UNIQUE,
    "Full Name"         text,
    "quote""col"        text,
    "order"             text,
    "UPPER"             text,
    "back\slash"        text,
    "Big ""Text"" Here" text
);
CREATE TABLE public."line items" (
    "Order Id"  uuid NOT NULL REFERENCES "Weird ""Schema"""."Order",
    "tag ""x""" text NOT NULL,
    "group"     text,
    PRIMARY KEY ("Order Id", "tag ""x""")
);
CREATE TABLE public."Audit Log" ("from" text, "to" text, "When" integer);
SQL
# The original migration already moved order 1 (with its own UUID) and one of its lines.
wb_psql source -c "COPY (SELECT * FROM \"Weird \"\"Schema\"\"\".\"Order\" WHERE \"select\" = 1) TO STDOUT" |
    wb_psql target -c "CREATE TEMP TABLE o1 (k integer, a text, b text, c text, d text, e text, f text);
        COPY o1 FROM STDIN;
        INSERT INTO \"Weird \"\"Schema\"\"\".\"Order\" SELECT gen_random_uuid(), * FROM o1;"

cfg=$WB_TMP/walbridge.json
wb_write_config "$cfg" '"stream": { "batch_max_ms": 50 }' --tables-json '[
    { "source": "Weird \"Schema\".Order", "target": "Weird \"Schema\".Order",
      "key": "select", "target_key": "the \"id\"", "legacy_key": "legacy select",
      "columns": { "rename": { "big text": "Big \"Text\" Here" } } },
    { "source": "line items", "target": "public.line items",
      "key": ["Order Id", "tag \"x\""],
      "references": { "Order Id": "Weird \"Schema\".Order" } },
    { "source": "public.Audit Log", "target": "public.Audit Log" } ]'

# ---------------------------------------------------------------- comparison with psql
# One md5 per table over every row's text, in source form (target UUIDs turned back
# into legacy keys through the parent's mapping).
src_sum() {
    wb_psql source <<'SQL'
SELECT md5(string_agg(r::text, E'\n' ORDER BY r."select")) FROM "Weird ""Schema"""."Order" r;
SELECT md5(string_agg(ROW(l."Order Id", l."tag ""x""", l."group")::text, E'\n'
       ORDER BY l."Order Id", l."tag ""x""")) FROM public."line items" l;
SELECT md5(string_agg(a::text, E'\n' ORDER BY a::text)) FROM public."Audit Log" a;
SQL
}
tgt_sum() {
    wb_psql target <<'SQL'
SELECT md5(string_agg(ROW(o."legacy select", o."Full Name", o."quote""col", o."order", o."UPPER",
       o."back\slash", o."Big ""Text"" Here")::text, E'\n' ORDER BY o."legacy select"))
FROM "Weird ""Schema"""."Order" o;
SELECT md5(string_agg(ROW(o."legacy select", l."tag ""x""", l."group")::text, E'\n'
       ORDER BY o."legacy select", l."tag ""x"""))
FROM public."line items" l JOIN "Weird ""Schema"""."Order" o ON o."the ""id""" = l."Order Id";
SELECT md5(string_agg(a::text, E'\n' ORDER BY a::text)) FROM public."Audit Log" a;
SQL
}
counts() { # counts SIDE: "orders lines audit"
    wb_psql "$1" <<'SQL'
SELECT format('%s %s %s', (SELECT count(*) FROM "Weird ""Schema"""."Order"),
    (SELECT count(*) FROM public."line items"), (SELECT count(*) FROM public."Audit Log"));
SQL
}
compare() { # compare PHASE "EXPECTED COUNTS"
    local s t
    s=$(src_sum)
    t=$(tgt_sum)
    wb_eq "$1: source row counts (order, line items, audit log)" "$2" "$(counts source)"
    wb_eq "$1: target row counts equal the source's" "$2" "$(counts target)"
    wb_eq "$1: psql gave 3 checksums per side" "3 3" \
        "$(grep -c '^[0-9a-f]\{32\}$' <<<"$s") $(grep -c '^[0-9a-f]\{32\}$' <<<"$t")"
    wb_eq "$1: Order rows equal through the mapping (psql md5)" "$(sed -n 1p <<<"$s")" "$(sed -n 1p <<<"$t")"
    wb_eq "$1: line items equal through the mapping (psql md5)" "$(sed -n 2p <<<"$s")" "$(sed -n 2p <<<"$t")"
    wb_eq "$1: Audit Log equal as a multiset (psql md5)" "$(sed -n 3p <<<"$s")" "$(sed -n 3p <<<"$t")"
    wb_run -c "$cfg" verify --show 5
    wb_eq "$1: walbridge verify says identical (exit 0)" 0 "$WB_RC"
    ((WB_RC == 0)) || printf '%s\n%s\n' "$WB_OUT" "$WB_ERR" | tail -n 30
}

wb_check "the sample holds a 1 MB value" test "$(wb_psql source -c \
    'SELECT max(length("big text")) FROM "Weird ""Schema"""."Order"')" -ge 1048576
wb_check "the sample holds every control character but NUL" test "$(wb_psql source -c \
    "SELECT count(*) FROM \"Weird \"\"Schema\"\"\".\"Order\" WHERE \"Full Name\" LIKE '%' || chr(1) || '%' || chr(31) || '%'")" -ge 1

# ---------------------------------------------------------------- check, backfill
wb_run -c "$cfg" check
wb_eq "check accepts the hostile names (exit 0)" 0 "$WB_RC"
((WB_RC == 0)) || printf '%s\n%s\n' "$WB_OUT" "$WB_ERR" | tail -n 30
wb_run -c "$cfg" verify
wb_eq "verify before backfill: differences (exit 1)" 1 "$WB_RC"
wb_run -c "$cfg" backfill
wb_eq "backfill: exit 0" 0 "$WB_RC"
((WB_RC == 0)) || printf '%s\n%s\n' "$WB_OUT" "$WB_ERR" | tail -n 30
compare "after backfill" "40 120 30"
wb_eq "backfill kept the migrated row's UUID" 1 "$(wb_psql target -c \
    "SELECT count(*) FROM \"Weird \"\"Schema\"\"\".\"Order\" WHERE \"legacy select\" = 1
       AND \"the \"\"id\"\"\" <> uuid_generate_v5('$ns', 'Weird \"Schema\".Order:1')")"
wb_eq "new rows get UUIDv5(namespace, '<source table>:<key>') with the literal names" 39 \
    "$(wb_psql target -c "SELECT count(*) FROM \"Weird \"\"Schema\"\"\".\"Order\"
       WHERE \"the \"\"id\"\"\" = uuid_generate_v5('$ns', 'Weird \"Schema\".Order:' || \"legacy select\")")"

# ---------------------------------------------------------------- stream
wb_psql source <<'SQL'
BEGIN;
INSERT INTO "Weird ""Schema"""."Order"
SELECT n, hostile(n + 6), hostile(n), hostile(n + 1), hostile(n + 2), hostile(n + 3),
       CASE WHEN n = 41 THEN repeat(E'\\\t"''', 262144) ELSE hostile(n + 9) END
FROM generate_series(41, 52) n;
INSERT INTO public."line items"
SELECT o, coalesce(hostile(o + 5), 'null tag') || ' new', hostile(o) FROM generate_series(41, 52) o;
COMMIT;
-- Updates: every text column of some rows; the 1 MB value untouched (TOAST absent
-- from the message); the 1 MB value itself; a key column of the child holding text.
UPDATE "Weird ""Schema"""."Order" SET "Full Name" = hostile("select" + 3), "order" = hostile("select" + 11)
WHERE "select" % 4 = 0;
UPDATE "Weird ""Schema"""."Order" SET "UPPER" = E'updated\t' || hostile(2) WHERE "select" = 13;
UPDATE "Weird ""Schema"""."Order" SET "big text" = repeat(E'\n\\N\r', 400000) WHERE "select" = 23;
UPDATE public."line items" SET "tag ""x""" = "tag ""x""" || E' \\ "renamed"\t' WHERE "Order Id" IN (2, 3, 44);
UPDATE public."line items" SET "group" = NULL WHERE "Order Id" = 5;
UPDATE public."Audit Log" SET "to" = hostile(4) WHERE "When" = 1;
-- Deletes: a parent with its lines (cascade), a line, audit rows found by full identity.
DELETE FROM "Weird ""Schema"""."Order" WHERE "select" IN (7, 33, 50);
DELETE FROM public."line items" WHERE "Order Id" = 9 AND "tag ""x""" LIKE '%1';
DELETE FROM public."Audit Log" WHERE "When" = 3;
INSERT INTO public."Audit Log" SELECT hostile(n), hostile(n + 1), 9 FROM generate_series(1, 12) n;
SQL
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream --until-caught-up: exit 0" 0 "$WB_RC"
((WB_RC == 0)) || printf '%s\n%s\n' "$WB_OUT" "$WB_ERR" | tail -n 30
compare "after stream" "49 124 36"
wb_eq "the untouched 1 MB value kept its content" \
    "$(wb_psql source -c 'SELECT md5("big text") FROM "Weird ""Schema"""."Order" WHERE "select" = 13')" \
    "$(wb_psql target -c 'SELECT md5("Big ""Text"" Here") FROM "Weird ""Schema"""."Order" WHERE "legacy select" = 13')"

# ---------------------------------------------------------------- truncate
wb_psql source <<'SQL'
TRUNCATE public."Audit Log";
INSERT INTO public."Audit Log" SELECT hostile(n), E'after\ttruncate', n FROM generate_series(1, 5) n;
UPDATE "Weird ""Schema"""."Order" SET "quote""col" = E'last \\ "one"' WHERE "select" = 2;
SQL
wb_run -c "$cfg" stream --until-caught-up
wb_eq "stream after TRUNCATE of a quoted table: exit 0" 0 "$WB_RC"
((WB_RC == 0)) || printf '%s\n%s\n' "$WB_OUT" "$WB_ERR" | tail -n 30
compare "after truncate" "49 124 5"

wb_finish
