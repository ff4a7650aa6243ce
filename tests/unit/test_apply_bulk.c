/*
 * test_apply_bulk.c — unit tests for the pure parts of the stream applier's
 * bulk path (cdc/apply_bulk.c): which tables may take it, the staging table,
 * the COPY text of a row (bytea "\x", escapes, NULL references, UUIDv5
 * columns, skipped and generated columns left out) and the set-based upsert
 * (parents joined by legacy key, deleted parents, conflicts recorded, the
 * guarded form only when asked).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/apply_bulk.h"
#include "cdc/apply_sql.h"
#include "common/config.h"
#include "common/strbuf.h"
#include "tests/unit/column_fixture.h"
#include "common/uuidmap.h"

static const char *const CONFIG =
    "{\"source\":{\"dsn\":\"host=a\"},\"target\":{\"dsn\":\"host=b\"},"
    "\"uuid_namespace\":\"0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42\",\"tables\":["
    "{\"source\":\"public.offices\",\"key\":\"id\",\"legacy_key\":\"legacy_id\"},"
    "{\"source\":\"public.doctors\",\"target\":\"app.doctors\",\"key\":\"id\","
    "\"legacy_key\":\"legacy_id\",\"references\":{\"office_id\":\"public.offices\"}},"
    "{\"source\":\"public.office_tags\",\"key\":[\"office_id\",\"tag\"],"
    "\"references\":{\"office_id\":\"public.offices\"}},"
    "{\"source\":\"public.codes\",\"key\":[\"a\",\"b\"]},"
    "{\"source\":\"public.audit_log\"}]}";

static wb_config cfg;
static table_plan offices, doctors, tags, codes, audit;

static table_plan plan(int index, column_plan *cols, size_t n, int *keys, size_t nkeys)
{
    return (table_plan){.cfg = &cfg.tables[index],
                        .index = index,
                        .columns = cols,
                        .ncolumns = n,
                        .key_columns = keys,
                        .nkey_columns = nkeys};
}

static void setup(void)
{
    char err[512];
    cr_assert(config_parse("t.json", CONFIG, &cfg, err, sizeof err), "%s", err);
    cr_assert_str_eq(cfg.tables[0].source, "public.offices");
    cr_assert_str_eq(cfg.tables[3].source, "public.codes");

    static column_plan oc[2];
    column(&oc[0], "id", "legacy_id", "bigint", COLROLE_KEY, -1);
    column(&oc[1], "name", "name", "text", COLROLE_DATA, -1);
    static int okey[1] = {0};
    offices = plan(0, oc, 2, okey, 1);

    /* doctors: id, office_id (ref), name, photo bytea, full_name generated, secret skipped */
    static column_plan dc[6];
    column(&dc[0], "id", "legacy_id", "integer", COLROLE_KEY, -1);
    column(&dc[1], "office_id", "office_id", "integer", COLROLE_REFERENCE, 0);
    dc[1].target_type = "uuid";
    column(&dc[2], "name", "name", "text", COLROLE_DATA, -1);
    dc[2].target_type = "character varying(40)";
    column(&dc[3], "photo", "photo", "bytea", COLROLE_DATA, -1);
    column(&dc[4], "full_name", "full_name", "text", COLROLE_DATA, -1);
    dc[4].generated = true;
    column(&dc[5], "secret", NULL, "text", COLROLE_DATA, -1);
    static int dkey[1] = {0};
    doctors = plan(1, dc, 6, dkey, 1);

    static column_plan tc[2];
    column(&tc[0], "office_id", "office_id", "bigint", COLROLE_REFERENCE, 0);
    column(&tc[1], "tag", "tag", "text", COLROLE_KEY, -1);
    static int tkey[2] = {0, 1};
    tags = plan(2, tc, 2, tkey, 2);

    static column_plan cc[3];
    column(&cc[0], "a", "a", "integer", COLROLE_KEY, -1);
    column(&cc[1], "b", "b", "text", COLROLE_KEY, -1);
    column(&cc[2], "v", "v", "jsonb", COLROLE_DATA, -1);
    static int ckey[2] = {0, 1};
    codes = plan(3, cc, 3, ckey, 2);

    static column_plan ac[1];
    column(&ac[0], "at", "at", "timestamp with time zone", COLROLE_DATA, -1);
    audit = plan(4, ac, 1, NULL, 0);
}

static void teardown(void)
{
    config_free(&cfg);
}

TestSuite(apply_bulk, .init = setup, .fini = teardown);

Test(apply_bulk, which_tables_take_the_bulk_path)
{
    cr_expect(apply_bulk_table_ok(&cfg, &offices));
    cr_expect(apply_bulk_table_ok(&cfg, &doctors));
    cr_expect(apply_bulk_table_ok(&cfg, &codes), "composite key without references");
    cr_expect(!apply_bulk_table_ok(&cfg, &tags), "a key column that is a reference");
    cr_expect(!apply_bulk_table_ok(&cfg, &audit), "keyless");
}

Test(apply_bulk, staging_table_in_source_form)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_stage(&cfg, &doctors, &sql);
    cr_expect_str_eq(
        sql.data, "SET jit = off; CREATE TEMP TABLE IF NOT EXISTS pg_temp.wb_bulk_1 (c0 integer, "
                  "c1 integer, "
                  "c2 character varying(40), c3 bytea, r1 uuid, wb_id uuid, wb_lsn pg_lsn, "
                  "wb_key text) ON COMMIT DELETE ROWS; TRUNCATE pg_temp.wb_bulk_1");
    strbuf_reset(&sql);
    apply_bulk_sql_copy(&doctors, &sql);
    cr_expect_str_eq(sql.data, "COPY pg_temp.wb_bulk_1 FROM STDIN");
    strbuf_free(&sql);
}

Test(apply_bulk, direct_run_copies_into_the_table_behind_a_savepoint)
{
    /* The columns in the staging line's order, then the target key (the line's wb_id). */
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_direct(&offices, &sql);
    cr_expect_str_eq(sql.data, "SAVEPOINT wb_bulk; COPY \"public\".\"offices\" (\"legacy_id\", "
                               "\"name\", \"id\") FROM STDIN");
    strbuf_free(&sql);
}

static w2j_value val(const char *text)
{
    return (w2j_value){.name = "x", .text = (char *)text, .len = text != NULL ? strlen(text) : 0};
}

Test(apply_bulk, copy_line_of_a_row)
{
    w2j_value id = val("42"), office = val("7"), name = val("tab\there \\ nl\nend"),
              photo = val("00ff"), full = val("generated"), secret = val("s");
    const w2j_value *values[6] = {&id, &office, &name, &photo, &full, &secret};
    char row_id[UUID_TEXT_LEN + 1], office_id[UUID_TEXT_LEN + 1];
    uuidmap_v5(cfg.uuid_namespace, "public.doctors", "42", row_id);
    uuidmap_v5(cfg.uuid_namespace, "public.offices", "7", office_id);

    strbuf line, want;
    strbuf_init(&line);
    strbuf_init(&want);
    apply_bulk_copy_line(&cfg, &doctors, values, "42", "0/16B3748", &line);
    strbuf_appendf(&want, "42\t7\ttab\\there \\\\ nl\\nend\t\\\\x00ff\t%s\t%s\t0/16B3748\t42\n",
                   office_id, row_id);
    cr_expect_str_eq(line.data, want.data);

    /* NULL reference and NULL bytea stay NULL (no UUIDv5 for a NULL parent key). */
    w2j_value null_office = val(NULL), null_photo = val(NULL);
    values[1] = &null_office;
    values[3] = &null_photo;
    strbuf_reset(&line);
    strbuf_reset(&want);
    apply_bulk_copy_line(&cfg, &doctors, values, "42", "0/1", &line);
    strbuf_appendf(&want, "42\t\\N\ttab\\there \\\\ nl\\nend\t\\N\t\\N\t%s\t0/1\t42\n", row_id);
    cr_expect_str_eq(line.data, want.data);
    strbuf_free(&line);
    strbuf_free(&want);
}

Test(apply_bulk, upsert_joins_parents_and_records_conflicts)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_apply(&cfg, &doctors, false, false, NULL, &sql);
    cr_expect_str_eq(
        sql.data,
        "WITH ins (wb_inserted, wb_k0) AS (INSERT INTO \"app\".\"doctors\" (\"id\", "
        "\"legacy_id\", \"office_id\", \"name\", \"photo\") SELECT s.wb_id, s.c0, "
        "COALESCE(p1.\"id\", s.r1), s.c2, s.c3 FROM pg_temp.wb_bulk_1 s LEFT JOIN "
        "\"public\".\"offices\" p1 ON p1.\"legacy_id\" = s.c1 ON CONFLICT (\"legacy_id\") DO "
        "UPDATE SET \"office_id\" = EXCLUDED.\"office_id\", \"name\" = EXCLUDED.\"name\", "
        "\"photo\" = EXCLUDED.\"photo\" RETURNING (xmax = 0), \"legacy_id\"), bad AS (SELECT "
        "CASE WHEN i.wb_inserted THEN 'uuid_taken' ELSE 'insert_existing' END AS kind, "
        "s.wb_key, s.wb_lsn FROM (SELECT * FROM ins WHERE NOT wb_inserted) i JOIN "
        "pg_temp.wb_bulk_1 s ON s.c0 = i.wb_k0), rec AS (INSERT INTO \"walbridge\"."
        "\"conflicts\" (at, slot, lsn, table_name, kind, key) SELECT now(), $1, b.wb_lsn, $2, "
        "b.kind, b.wb_key FROM bad b) SELECT kind, wb_key, wb_lsn::text FROM bad ORDER BY "
        "wb_lsn");
    strbuf_free(&sql);
}

Test(apply_bulk, guarded_upsert_keeps_a_taken_uuid_free)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_apply(&cfg, &offices, true, false, NULL, &sql);
    cr_expect(strstr(sql.data, "WITH ins (wb_inserted, wb_k0, wb_tk) AS (") != NULL, "%s",
              sql.data);
    strbuf chain;
    strbuf_init(&chain);
    strbuf_append(&chain, "SELECT ");
    apply_sql_key_uuid(&cfg.tables[0], "walbridge", "s.wb_id", &chain);
    strbuf_append(&chain, ", s.c0, s.c1 FROM");
    cr_expect(strstr(sql.data, chain.data) != NULL, "%s\nwants %s", sql.data, chain.data);
    cr_expect(strstr(sql.data, "gen_random_uuid") == NULL, "%s", sql.data);
    strbuf_free(&chain);
    cr_expect(strstr(sql.data, "RETURNING (xmax = 0), \"legacy_id\", \"id\")") != NULL, "%s",
              sql.data);
    cr_expect(strstr(sql.data, "WHERE NOT i.wb_inserted OR i.wb_tk <> s.wb_id") != NULL, "%s",
              sql.data);
    strbuf_free(&sql);
}

Test(apply_bulk, references_to_a_moved_parent_fall_back_to_its_key_uuid_chain)
{
    strbuf sql, want;
    strbuf_init(&sql);
    strbuf_init(&want);
    bool moved[8] = {false};
    moved[doctors.columns[1].ref_parent] = true; /* offices had a key change */
    strbuf_append(&want, "COALESCE(p1.\"id\", ");
    apply_sql_key_uuid(&cfg.tables[doctors.columns[1].ref_parent], "walbridge", "s.r1", &want);
    strbuf_append(&want, "), s.c2, s.c3 FROM pg_temp.wb_bulk_1 s LEFT JOIN");
    apply_bulk_sql_apply(&cfg, &doctors, false, false, moved, &sql);
    cr_expect(strstr(sql.data, want.data) != NULL, "%s\nwants %s", sql.data, want.data);
    strbuf_reset(&sql);
    apply_bulk_sql_plain(&cfg, &doctors, moved, &sql);
    cr_expect(strstr(sql.data, want.data) != NULL, "%s\nwants %s", sql.data, want.data);
    strbuf_reset(&sql);
    apply_bulk_sql_plain(&cfg, &doctors, NULL, &sql);
    cr_expect(strstr(sql.data, "COALESCE(p1.\"id\", s.r1), s.c2") != NULL, "%s", sql.data);
    strbuf_free(&sql);
    strbuf_free(&want);
}

Test(apply_bulk, composite_key_matches_every_key_column)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_apply(&cfg, &codes, true, false, NULL,
                         &sql); /* guarded means nothing without UUIDs */
    cr_expect(strstr(sql.data, "WITH ins (wb_inserted, wb_k0, wb_k1) AS (INSERT INTO "
                               "\"public\".\"codes\" (\"a\", \"b\", \"v\") SELECT s.c0, s.c1, "
                               "s.c2 FROM pg_temp.wb_bulk_3 s ON CONFLICT (\"a\", \"b\") DO "
                               "UPDATE SET \"v\" = EXCLUDED.\"v\" RETURNING (xmax = 0), \"a\", "
                               "\"b\")") != NULL,
              "%s", sql.data);
    cr_expect(strstr(sql.data, "ON s.c0 = i.wb_k0 AND s.c1 = i.wb_k1)") != NULL, "%s", sql.data);
    cr_expect(strstr(sql.data, "gen_random_uuid") == NULL);
    strbuf_free(&sql);
}

Test(apply_bulk, full_row_updates_count_rows_inserted_as_update_missing)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_apply(&cfg, &offices, true, true, NULL, &sql); /* updates are never guarded */
    cr_expect(strstr(sql.data, "SELECT s.wb_id, s.c0, s.c1 FROM") != NULL, "%s", sql.data);
    cr_expect(strstr(sql.data, "bad AS (SELECT 'update_missing' AS kind, s.wb_key, s.wb_lsn FROM "
                               "(SELECT * FROM ins WHERE wb_inserted) i JOIN pg_temp.wb_bulk_0 s "
                               "ON s.c0 = i.wb_k0)") != NULL,
              "%s", sql.data);
    strbuf_free(&sql);
}

Test(apply_bulk, insert_run_tried_as_plain_insert_in_a_savepoint)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_plain(&cfg, &offices, NULL, &sql);
    cr_expect_str_eq(sql.data, "SAVEPOINT wb_bulk; INSERT INTO \"public\".\"offices\" (\"id\", "
                               "\"legacy_id\", \"name\") SELECT s.wb_id, s.c0, s.c1 FROM "
                               "pg_temp.wb_bulk_0 s; RELEASE SAVEPOINT wb_bulk");
    strbuf_free(&sql);
}

Test(apply_bulk, full_row_update_run_tried_as_one_update_through_the_key_index)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_bulk_sql_update(&cfg, &doctors, NULL, &sql);
    cr_expect_str_eq(
        sql.data,
        "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; UPDATE "
        "\"app\".\"doctors\" t SET \"office_id\" = x.\"office_id\", \"name\" = x.\"name\", "
        "\"photo\" = x.\"photo\" FROM (SELECT s.wb_id, s.c0, COALESCE(p1.\"id\", s.r1), s.c2, "
        "s.c3 FROM pg_temp.wb_bulk_1 s LEFT JOIN \"public\".\"offices\" p1 ON p1.\"legacy_id\" = "
        "s.c1) x (\"id\", \"legacy_id\", \"office_id\", \"name\", \"photo\") WHERE "
        "t.\"legacy_id\" = x.\"legacy_id\"; SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL "
        "enable_mergejoin TO DEFAULT");
    /* A moved parent: the reference falls back to its key chain, as in the upsert. */
    strbuf want;
    strbuf_init(&want);
    bool moved[8] = {false};
    moved[doctors.columns[1].ref_parent] = true;
    strbuf_append(&want, "COALESCE(p1.\"id\", ");
    apply_sql_key_uuid(&cfg.tables[doctors.columns[1].ref_parent], "walbridge", "s.r1", &want);
    strbuf_reset(&sql);
    apply_bulk_sql_update(&cfg, &doctors, moved, &sql);
    cr_expect(strstr(sql.data, want.data) != NULL, "%s\nwants %s", sql.data, want.data);
    /* A composite key matches every key column; only key columns: a no-op assignment. */
    strbuf_reset(&sql);
    apply_bulk_sql_update(&cfg, &codes, NULL, &sql);
    cr_expect(strstr(sql.data, "UPDATE \"public\".\"codes\" t SET \"v\" = x.\"v\" FROM (SELECT "
                               "s.c0, s.c1, s.c2 FROM pg_temp.wb_bulk_3 s) x (\"a\", \"b\", "
                               "\"v\") WHERE t.\"a\" = x.\"a\" AND t.\"b\" = x.\"b\";") != NULL,
              "%s", sql.data);
    strbuf_reset(&sql);
    apply_bulk_sql_update(&cfg, &tags, NULL, &sql);
    cr_expect(strstr(sql.data, "t SET \"office_id\" = x.\"office_id\" FROM") != NULL, "%s",
              sql.data);
    strbuf_free(&want);
    strbuf_free(&sql);
}
