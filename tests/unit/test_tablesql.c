/*
 * test_tablesql.c — the per-table layout and the SQL backfill and verify send
 * (backfill/tablesql.c): which columns travel, how keys sort, how the target
 * side translates UUIDs back to legacy keys, how staged rows are remapped.
 * The SQL itself is exercised against PostgreSQL by the integration tests;
 * here each shape is pinned down by the fragments a reviewer would look for.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backfill/tablesql.h"
#include "common/config.h"

static const char *CONFIG =
    "{\"source\": {\"dsn\": \"host=src\"}, \"target\": {\"dsn\": \"host=tgt\"},"
    " \"uuid_namespace\": \"0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42\","
    " \"tables\": ["
    "  {\"source\": \"public.orders\", \"target\": \"app.orders\", \"key\": \"id\","
    "   \"target_key\": \"id\", \"legacy_key\": \"legacy_id\","
    "   \"references\": {\"patient_id\": \"public.patients\"},"
    "   \"columns\": {\"rename\": {\"note\": \"notes\"}}},"
    "  {\"source\": \"public.patients\", \"key\": \"id\", \"target_key\": \"uid\","
    "   \"legacy_key\": \"old_id\", \"references\": {\"referrer\": \"public.patients\"}},"
    "  {\"source\": \"public.order_tags\", \"key\": [\"order_id\", \"tag\"],"
    "   \"references\": {\"order_id\": \"public.orders\"}},"
    "  {\"source\": \"public.audit_log\"}"
    " ]}";

static wb_config cfg;
static strbuf sql;

static void setup(void)
{
    char err[512];
    cr_assert(config_parse("walbridge.json", CONFIG, &cfg, err, sizeof err), "%s", err);
    strbuf_init(&sql);
}

static void teardown(void)
{
    strbuf_free(&sql);
    config_free(&cfg);
}

static const table_config *table(const char *name)
{
    int i = config_find_source(&cfg, "public", name);
    cr_assert_geq(i, 0, "no table %s", name);
    return &cfg.tables[i];
}

static column_plan col(const char *source, const char *target, const char *stype, const char *ttype,
                       column_role role)
{
    column_plan c = {(char *)source, (char *)target, (char *)stype, (char *)ttype, role, -1,
                     target == NULL, false, true};
    return c;
}

/* public.orders: key, reference, renamed, skipped, generated, type-changed, odd name. */
static column_plan orders_cols[7];
static int orders_key[1] = {0};

static table_plan orders_plan(void)
{
    orders_cols[0] = col("id", "legacy_id", "bigint", "bigint", COLROLE_KEY);
    orders_cols[1] = col("patient_id", "patient_id", "integer", "uuid", COLROLE_REFERENCE);
    orders_cols[2] = col("note", "notes", "text", "text", COLROLE_DATA);
    orders_cols[3] = col("gone", NULL, "text", NULL, COLROLE_DATA);
    orders_cols[4] = col("total", "total", "numeric(20,4)", "numeric(20,4)", COLROLE_DATA);
    orders_cols[5] = col("gen", "gen", "integer", "integer", COLROLE_DATA);
    orders_cols[5].generated = true;
    orders_cols[5].skipped = true;
    orders_cols[6] = col("we\"ird", "we\"ird", "character varying(20)", "text", COLROLE_DATA);
    table_plan p = {table("orders"), 0, orders_cols, 7, orders_key, 1, 'd', true, true};
    return p;
}

static column_plan tags_cols[3];
static int tags_key[2] = {0, 1};

static table_plan tags_plan(void)
{
    tags_cols[0] = col("order_id", "order_id", "bigint", "uuid", COLROLE_REFERENCE);
    tags_cols[1] = col("tag", "tag", "text", "text", COLROLE_KEY);
    tags_cols[2] = col("added_at", "added_at", "timestamp with time zone",
                       "timestamp with time zone", COLROLE_DATA);
    table_plan p = {table("order_tags"), 0, tags_cols, 3, tags_key, 2, 'd', true, false};
    return p;
}

static column_plan audit_cols[2];

static table_plan audit_plan(void)
{
    audit_cols[0] = col("actor", "actor", "text", "text", COLROLE_DATA);
    audit_cols[1] = col("detail", "detail", "jsonb", "jsonb", COLROLE_DATA);
    table_plan p = {table("audit_log"), 0, audit_cols, 2, NULL, 0, 'f', false, false};
    return p;
}

#define HAS(fragment)                                                                              \
    cr_assert(strstr(sql.data, fragment) != NULL, "missing  %s\nin  %s", fragment, sql.data)
#define HAS_NOT(fragment)                                                                          \
    cr_assert(strstr(sql.data, fragment) == NULL, "unexpected  %s\nin  %s", fragment, sql.data)

TestSuite(tablesql, .init = setup, .fini = teardown);

Test(tablesql, uuid_mapped_layout_keeps_mapped_columns_only)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    cr_assert_eq(lay.ncols, 5, "id, patient_id, note, total, we\"ird travel");
    cr_assert_eq(lay.nkey, 1);
    cr_assert_eq(lay.key_type[0], KEYSET_KEY_INT);
    cr_assert_str_eq(lay.cols[0].target, "legacy_id");
    cr_assert_eq(lay.cols[1].parent, config_find_source(&cfg, "public", "patients"));
    cr_assert_eq(tablesql_hash_field(&lay), 1);
    cr_assert_eq(tablesql_row_field(&lay), 2);
    cr_assert_eq(tablesql_stage_width(&lay), 7, "5 columns + row uuid + reference uuid");
    table_layout_free(&lay);
}

Test(tablesql, a_type_change_is_compared_as_the_target_holds_it_when_built_in)
{
    table_plan p = orders_plan();
    p.columns[2] = col("note", "notes", "json", "jsonb", COLROLE_DATA);
    p.columns[4] = col("total", "total", "text", "mood", COLROLE_DATA);
    p.columns[4].target_builtin = false;
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_source_diff(&lay, true, false, &sql);
    HAS("(((s.\"note\")::text)::jsonb)::text COLLATE \"C\", (s.\"total\")::text COLLATE \"C\"");
    HAS("s.\"note\" AS c2, s.\"total\" AS c3");
    strbuf_reset(&sql);
    tablesql_target_diff(&lay, false, &sql);
    HAS("(t.\"notes\")::text COLLATE \"C\", (t.\"total\"::text)::text COLLATE \"C\"");
    table_layout_free(&lay);
}

Test(tablesql, source_diff_hashes_source_form_and_resumes_by_setting)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err));
    tablesql_source_diff(&lay, true, true, &sql);
    HAS("COPY (SELECT * FROM (SELECT s.\"id\" AS k0, hash_record_extended(ROW((s.\"id\")::bigint, "
        "(s.\"patient_id\")::bigint, (s.\"note\")::text COLLATE \"C\", (s.\"total\")::text COLLATE "
        "\"C\", (((s.\"we\"\"ird\")::text)::text)::text COLLATE \"C\"), 0) AS h, s.\"id\" AS c0");
    HAS("FROM \"public\".\"orders\" s) x");
    HAS("WHERE (x.k0) > (current_setting('walbridge.resume_0')::bigint)");
    HAS("ORDER BY 1) TO STDOUT");
    HAS_NOT("gone");
    HAS_NOT("gen");
    strbuf_reset(&sql);
    tablesql_source_diff(&lay, false, false, &sql);
    HAS_NOT(" AS c0");
    HAS_NOT("resume");
    strbuf_reset(&sql);
    tablesql_source_all_rows(&lay, false, &sql);
    HAS("SELECT s.\"id\" AS k0, ''::text AS h, s.\"id\" AS c0");
    HAS_NOT("hash_record_extended");
    HAS_NOT("md5");
    table_layout_free(&lay);
}

Test(tablesql, row_hash_is_the_cheapest_both_servers_have)
{
    cr_assert_eq(tablesql_hash_for_servers(150018, 140000), TABLESQL_HASH_RECORD);
    cr_assert_eq(tablesql_hash_for_servers(130010, 150018), TABLESQL_HASH_TEXT);
    cr_assert_eq(tablesql_hash_for_servers(150018, 110000), TABLESQL_HASH_TEXT);
    cr_assert_eq(tablesql_hash_for_servers(100021, 150018), TABLESQL_HASH_MD5);
    table_plan p = tags_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_target_diff(&lay, false, &sql);
    HAS("hash_record_extended(ROW((p0.\"legacy_id\")::bigint, (t.\"tag\")::text COLLATE \"C\", "
        "(t.\"added_at\")::timestamp with time zone), 0) AS h");
    strbuf_reset(&sql);
    lay.hash = TABLESQL_HASH_TEXT;
    tablesql_target_diff(&lay, false, &sql);
    HAS("hashtextextended(ROW((p0.\"legacy_id\")::text, (t.\"tag\")::text, "
        "(t.\"added_at\")::text)::text, 0) AS h");
    strbuf_reset(&sql);
    lay.hash = TABLESQL_HASH_MD5;
    tablesql_source_diff(&lay, false, false, &sql);
    HAS("md5(ROW((s.\"order_id\")::text, (s.\"tag\")::text, (s.\"added_at\")::text)::text) AS h");
    table_layout_free(&lay);
}

Test(tablesql, fetch_by_key_joins_unnested_text_arrays_cast_to_the_key_types)
{
    table_plan p = tags_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_source_fetch(&lay, &sql);
    HAS("SELECT s.\"order_id\" AS k0, (s.\"tag\")::text COLLATE \"C\" AS k1, s.\"order_id\" AS c0, "
        "s.\"tag\" AS c1, s.\"added_at\" AS c2 FROM unnest($1::text[], $2::text[]) AS u(k0, k1) "
        "JOIN \"public\".\"order_tags\" s ON s.\"order_id\" = u.k0::bigint AND "
        "s.\"tag\" = u.k1::text");
    table_layout_free(&lay);
    strbuf arr;
    strbuf_init(&arr);
    tablesql_array_append(&arr, "42", 2);
    tablesql_array_append(&arr, "a\"b\\c,{}", 8);
    tablesql_array_append(&arr, "", 0);
    cr_assert_str_eq(arr.data, "\"42\",\"a\\\"b\\\\c,{}\",\"\"");
    strbuf_free(&arr);
}

Test(tablesql, keys_only_queries_hash_nothing)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err));
    tablesql_source_keys(&lay, false, &sql);
    HAS("COPY (SELECT * FROM (SELECT s.\"id\" AS k0, ''::text AS h FROM \"public\".\"orders\" s) x "
        "ORDER BY 1) TO STDOUT");
    strbuf_reset(&sql);
    tablesql_target_keys(&lay, true, &sql);
    HAS("SELECT t.\"legacy_id\" AS k0, ''::text AS h FROM \"app\".\"orders\" t");
    HAS("WHERE (x.k0) > (current_setting('walbridge.resume_0')::bigint) ORDER BY 1");
    HAS_NOT("hash_record_extended");
    table_layout_free(&lay);
}

Test(tablesql, target_diff_translates_uuids_back_to_legacy_keys)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err));
    tablesql_target_diff(&lay, false, &sql);
    HAS("SELECT t.\"legacy_id\" AS k0, hash_record_extended(ROW((t.\"legacy_id\")::bigint, "
        "(p1.\"old_id\")::bigint, (t.\"notes\")::text COLLATE \"C\", (t.\"total\")::text COLLATE "
        "\"C\", (t.\"we\"\"ird\")::text COLLATE \"C\"), 0) AS h");
    HAS("FROM \"app\".\"orders\" t LEFT JOIN \"public\".\"patients\" p1 ON p1.\"uid\" = "
        "t.\"patient_id\" WHERE t.\"legacy_id\" IS NOT NULL) x ORDER BY 1");
    strbuf_reset(&sql);
    cr_assert_not(tablesql_target_orphans(&lay, &sql), "no reference in the key");
    table_layout_free(&lay);
}

Test(tablesql, stage_insert_remaps_and_never_touches_existing_ids)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err));
    tablesql_stage_create(&lay, 3, &sql);
    HAS("CREATE TEMP TABLE IF NOT EXISTS wb_stage_3 (c0 bigint, c1 integer, c2 text, "
        "c3 numeric(20,4), c4 text, wb_id uuid, wb_r1 uuid) ON COMMIT DELETE ROWS");
    strbuf_reset(&sql);
    tablesql_stage_insert(&lay, 3, false, NULL, &sql);
    HAS("INSERT INTO \"app\".\"orders\" (\"id\", \"legacy_id\", \"patient_id\", \"notes\", "
        "\"total\", \"we\"\"ird\") SELECT s.wb_id, s.c0, COALESCE(p1.\"uid\", s.wb_r1), s.c2, "
        "s.c3, s.c4 FROM pg_temp.wb_stage_3 s LEFT JOIN \"public\".\"patients\" p1 ON "
        "p1.\"old_id\" = s.c1 ON CONFLICT (\"legacy_id\") DO NOTHING");
    strbuf_reset(&sql);
    tablesql_stage_insert(&lay, 3, true, NULL, &sql);
    HAS("ON CONFLICT (\"legacy_id\") DO UPDATE SET \"patient_id\" = EXCLUDED.\"patient_id\", "
        "\"notes\" = EXCLUDED.\"notes\"");
    HAS_NOT("\"id\" = EXCLUDED");
    HAS_NOT("\"legacy_id\" = EXCLUDED");
    table_layout_free(&lay);
}

Test(tablesql, composite_identity_key_with_reference)
{
    table_plan p = tags_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    cr_assert_eq(lay.nkey, 2);
    cr_assert_eq(lay.key_type[0], KEYSET_KEY_INT);
    cr_assert_eq(lay.key_type[1], KEYSET_KEY_TEXT);
    cr_assert(tablesql_target_diff_has_orphans(&lay, false));
    cr_assert_not(tablesql_target_diff_has_orphans(&lay, true));
    tablesql_target_diff(&lay, false, &sql);
    /* Keyed rows and orphans; a row whose parent has no legacy key is neither. */
    HAS("LEFT JOIN \"app\".\"orders\" p0 ON p0.\"id\" = t.\"order_id\" WHERE "
        "(p0.\"legacy_id\" IS NOT NULL) OR ((p0.\"id\" IS NULL AND t.\"order_id\" IS NOT "
        "NULL))) x ORDER BY 1, 2");
    strbuf_reset(&sql);
    tablesql_target_diff(&lay, true, &sql);
    HAS("SELECT p0.\"legacy_id\" AS k0, (t.\"tag\")::text COLLATE \"C\" AS k1");
    HAS("LEFT JOIN \"app\".\"orders\" p0 ON p0.\"id\" = t.\"order_id\" WHERE "
        "(p0.\"legacy_id\" IS NOT NULL)) x");
    HAS("WHERE (x.k0, x.k1) > (current_setting('walbridge.resume_0')::bigint, "
        "current_setting('walbridge.resume_1') COLLATE \"C\") ORDER BY 1, 2");
    strbuf_reset(&sql);
    cr_assert(tablesql_target_orphans(&lay, &sql));
    HAS("SELECT count(*) FROM \"public\".\"order_tags\" t LEFT JOIN \"app\".\"orders\" p0 ON "
        "p0.\"id\" = t.\"order_id\" WHERE ((p0.\"id\" IS NULL AND t.\"order_id\" IS NOT NULL))");
    HAS_NOT("legacy_id\" IS NULL");
    strbuf_reset(&sql);
    cr_assert(tablesql_orphans_delete(&lay, &sql));
    cr_assert_str_eq(sql.data, "DELETE FROM \"public\".\"order_tags\" d WHERE d.ctid IN (SELECT "
                               "t.ctid FROM \"public\".\"order_tags\" t LEFT JOIN "
                               "\"app\".\"orders\" p0 ON p0.\"id\" = t.\"order_id\" WHERE "
                               "((p0.\"id\" IS NULL AND t.\"order_id\" IS NOT NULL)))");
    strbuf_reset(&sql);
    tablesql_stage_insert(&lay, 0, true, NULL, &sql);
    HAS("SELECT COALESCE(p0.\"id\", s.wb_r0), s.c1, s.c2");
    HAS("ON CONFLICT (\"order_id\", \"tag\") DO UPDATE SET \"added_at\" = EXCLUDED.\"added_at\"");
    strbuf_reset(&sql);
    tablesql_extra_delete(&lay, 0, &sql);
    HAS("JOIN pg_temp.wb_extra_0 e ON (x.k0, x.k1) = (e.k0, e.k1)");
    table_layout_free(&lay);
}

Test(tablesql, soft_delete_policy_stamps_extra_rows_instead_of_deleting)
{
    table_config *t = &cfg.tables[config_find_source(&cfg, "public", "order_tags")];
    t->deletes = DELETES_SOFT;
    t->soft_delete_column = strdup("deleted_at"); /* freed by config_free */
    table_plan p = tags_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_extra_delete(&lay, 0, &sql);
    HAS("UPDATE \"public\".\"order_tags\" d SET \"deleted_at\" = now() WHERE "
        "d.\"deleted_at\" IS NULL AND d.ctid IN (SELECT x.ctid FROM");
    HAS("JOIN pg_temp.wb_extra_0 e ON (x.k0, x.k1) = (e.k0, e.k1)");
    HAS_NOT("DELETE");
    strbuf_reset(&sql);
    cr_assert(tablesql_orphans_delete(&lay, &sql));
    HAS("UPDATE \"public\".\"order_tags\" d SET \"deleted_at\" = now() WHERE "
        "d.\"deleted_at\" IS NULL AND d.ctid IN (SELECT t.ctid FROM");
    HAS("WHERE ((p0.\"id\" IS NULL AND t.\"order_id\" IS NOT NULL)))");
    HAS_NOT("DELETE");
    table_layout_free(&lay);
}

Test(tablesql, tables_without_orphans_have_no_orphan_delete)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    cr_assert_not(tablesql_orphans_delete(&lay, &sql), "UUID-mapped: the key is the legacy key");
    cr_assert_eq(sql.len, 0);
    table_layout_free(&lay);
    p = audit_plan();
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    cr_assert_not(tablesql_orphans_delete(&lay, &sql), "keyless");
    cr_assert_eq(sql.len, 0);
    table_layout_free(&lay);
}

/* The chain apply_sql_key_uuid appends for table T (key column tk) and UUIDv5 expression v5. */
static void append_chain(const char *table, const char *tk, const char *v5, strbuf *out)
{
    strbuf_appendf(out,
                   "(WITH RECURSIVE wb_c(u, n) AS (SELECT (%s)::uuid, 0 UNION ALL SELECT "
                   "overlay(overlay(md5('walbridge:' || wb_c.u::text) placing '8' from 13 for 1) "
                   "placing '8' from 17 for 1)::uuid, wb_c.n + 1 FROM wb_c WHERE wb_c.n < 100 AND "
                   "(EXISTS (SELECT 1 FROM %s x WHERE x.%s = wb_c.u) OR EXISTS (SELECT 1 FROM "
                   "\"walbridge\".\"moved_keys\" m WHERE m.target_key = wb_c.u))) SELECT wb_c.u "
                   "FROM wb_c ORDER BY wb_c.n DESC LIMIT 1)",
                   v5, table, tk);
}

Test(tablesql, a_moved_table_and_references_to_it_take_the_key_uuid_chain)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err));
    /* Config order is parents first: index the flags by the tables' positions. */
    size_t orders_at = (size_t)(table("orders") - cfg.tables);
    size_t patients_at = (size_t)(table("patients") - cfg.tables);
    bool moved[4] = {false, false, false, false};
    moved[orders_at] = true; /* orders had a key change: its new rows take the chain */
    tablesql_stage_insert(&lay, 3, false, moved, &sql);
    strbuf want;
    strbuf_init(&want);
    strbuf_append(&want, "INSERT INTO \"app\".\"orders\" (\"id\", \"legacy_id\", \"patient_id\", "
                         "\"notes\", \"total\", \"we\"\"ird\") SELECT ");
    append_chain("\"app\".\"orders\"", "\"id\"", "s.wb_id", &want);
    /* The reference takes the row holding the parent's legacy key now; patients did not
     * move, so its fallback stays the parent's UUIDv5. */
    strbuf_append(&want, ", s.c0, COALESCE(p1.\"uid\", s.wb_r1), s.c2, s.c3, s.c4 FROM "
                         "pg_temp.wb_stage_3 s LEFT JOIN \"public\".\"patients\" p1 ON "
                         "p1.\"old_id\" = s.c1 ON CONFLICT (\"legacy_id\") DO NOTHING");
    cr_assert_str_eq(sql.data, want.data);
    strbuf_reset(&sql);
    tablesql_stage_insert(&lay, 3, true, moved, &sql);
    HAS("ON CONFLICT (\"legacy_id\") DO UPDATE SET");
    HAS_NOT("\"id\" = EXCLUDED");
    HAS_NOT("gen_random_uuid()");

    /* patients moved: a reference whose parent row is missing takes the parent's chain. */
    moved[orders_at] = false;
    moved[patients_at] = true;
    strbuf_reset(&sql);
    strbuf_reset(&want);
    tablesql_stage_insert(&lay, 3, false, moved, &sql);
    strbuf_append(&want, "SELECT s.wb_id, s.c0, COALESCE(p1.\"uid\", ");
    append_chain("\"public\".\"patients\"", "\"uid\"", "s.wb_r1", &want);
    strbuf_append(&want, "), s.c2, s.c3, s.c4 FROM");
    HAS(want.data);
    HAS_NOT("pending_refs");
    table_layout_free(&lay);

    /* An identity-mapped child whose key holds the reference: the same chain. */
    p = tags_plan();
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    bool orders_moved[4] = {false, false, false, false};
    orders_moved[orders_at] = true;
    strbuf_reset(&sql);
    strbuf_reset(&want);
    tablesql_stage_insert(&lay, 0, false, orders_moved, &sql);
    append_chain("\"app\".\"orders\"", "\"id\"", "s.wb_r0", &want);
    HAS(want.data);
    strbuf_reset(&sql);
    tablesql_stage_insert(&lay, 0, false, NULL, &sql);
    HAS_NOT("WITH RECURSIVE");
    table_layout_free(&lay);
    strbuf_free(&want);
}

Test(tablesql, pending_refs_left_by_earlier_versions_are_re_pointed)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    size_t orders_at = (size_t)(table("orders") - cfg.tables);
    size_t patients_at = (size_t)(table("patients") - cfg.tables);
    bool moved[4] = {false, false, false, false};
    moved[patients_at] = true; /* patients had a key change */
    tablesql_pending pending = {moved, "walbridge", "wb's"};
    cr_assert(tablesql_pends(&lay, &pending, 1), "patient_id references a moved table");
    cr_assert_not(tablesql_pends(&lay, &pending, 2), "not a reference");
    cr_assert_not(tablesql_pends(&lay, NULL, 1));
    tablesql_pending_fix(&lay, &pending, 1, &sql);
    cr_assert_str_eq(
        sql.data,
        "WITH fixed AS (UPDATE \"app\".\"orders\" c SET \"patient_id\" = p.\"uid\" FROM "
        "\"walbridge\".\"pending_refs\" f JOIN \"public\".\"patients\" p ON p.\"old_id\" = "
        "f.parent_key::integer WHERE f.slot = $1 AND f.table_name = $2 AND f.ref_column = $3 "
        "AND c.\"legacy_id\" = f.row_key::bigint AND c.\"patient_id\" IS NULL "
        "RETURNING f.row_key) DELETE FROM \"walbridge\".\"pending_refs\" f WHERE f.slot = $1 "
        "AND f.table_name = $2 AND f.ref_column = $3 AND (f.row_key IN (SELECT "
        "row_key FROM fixed) OR NOT EXISTS (SELECT 1 FROM \"app\".\"orders\" c WHERE "
        "c.\"legacy_id\" = f.row_key::bigint AND c.\"patient_id\" IS NULL))");
    /* Only the parents' key changes count: orders' own is not one of a parent. */
    bool own[4] = {false, false, false, false};
    own[orders_at] = true;
    tablesql_pending self_only = {own, "walbridge", "wb"};
    cr_assert_not(tablesql_pends(&lay, &self_only, 1));
    table_layout_free(&lay);
    /* An identity-mapped child never had records: its reference is part of its key. */
    p = tags_plan();
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    bool orders_moved[4] = {false, false, false, false};
    orders_moved[orders_at] = true;
    tablesql_pending tags_pending = {orders_moved, "walbridge", "wb"};
    cr_assert_not(tablesql_pends(&lay, &tags_pending, 0));
    table_layout_free(&lay);
}

Test(tablesql, keyless_table_is_a_multiset_of_row_hashes)
{
    table_plan p = audit_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    cr_assert(lay.spec.allow_duplicates);
    cr_assert_eq(lay.key_col[0], -1);
    cr_assert_eq(tablesql_hash_field(&lay), 0);
    cr_assert_eq(tablesql_row_field(&lay), 1);
    tablesql_source_diff(&lay, true, false, &sql);
    HAS("SELECT md5(ROW((s.\"actor\")::text, (s.\"detail\")::text)::text) COLLATE \"C\" AS k0, "
        "s.\"actor\" AS c0");
    HAS_NOT(" AS h");
    HAS_NOT("hash_record_extended");
    strbuf_reset(&sql);
    tablesql_source_all_rows(&lay, false, &sql);
    HAS("md5(ROW((s.\"actor\")::text, (s.\"detail\")::text)::text) COLLATE \"C\" AS k0");
    strbuf_reset(&sql);
    tablesql_stage_insert(&lay, 6, true, NULL, &sql);
    HAS_NOT("ON CONFLICT");
    strbuf_reset(&sql);
    tablesql_extra_delete(&lay, 6, &sql);
    HAS("row_number() OVER (PARTITION BY y.h)");
    HAS("WHERE z.rn <= e.n");
    table_layout_free(&lay);
}

Test(tablesql, key_column_not_copied_is_refused)
{
    table_plan p = tags_plan();
    tags_cols[1].skipped = true; /* identity key column the target lacks */
    tags_cols[1].target = NULL;
    table_layout lay;
    char err[256];
    cr_assert_not(table_layout_init(&lay, &cfg, &p, err, sizeof err));
    cr_assert(strstr(err, "public.order_tags") != NULL, "%s", err);
    cr_assert(strstr(err, "\"tag\"") != NULL, "%s", err);
}

Test(tablesql, direct_copy_writes_the_row_uuid_first_then_the_mapped_columns)
{
    /* backfill --defer-indexes: the row line holds the UUIDv5, then the mapped values with
     * each reference already replaced by the parent's UUIDv5: no staging, no join. */
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_direct_copy(&lay, &sql);
    cr_assert_str_eq(sql.data, "COPY \"app\".\"orders\" (\"id\", \"legacy_id\", \"patient_id\", "
                               "\"notes\", \"total\", \"we\"\"ird\") FROM STDIN");
    table_layout_free(&lay);
    strbuf_reset(&sql);
    p = tags_plan();
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_direct_copy(&lay, &sql);
    cr_assert_str_eq(sql.data,
                     "COPY \"public\".\"order_tags\" (\"order_id\", \"tag\", "
                     "\"added_at\") FROM STDIN",
                     "identity-mapped: no uuid column of its own");
    table_layout_free(&lay);
}

Test(tablesql, a_piece_of_a_table_reads_its_key_range_on_both_sides)
{
    table_plan p = orders_plan();
    table_layout lay;
    char err[256];
    cr_assert(table_layout_init(&lay, &cfg, &p, err, sizeof err), "%s", err);
    tablesql_source_all_rows(&lay, TABLESQL_RANGE_LO | TABLESQL_RANGE_HI, &sql);
    HAS(" x WHERE x.k0 >= current_setting('walbridge.range_lo')::bigint AND "
        "x.k0 < current_setting('walbridge.range_hi')::bigint ORDER BY 1) TO STDOUT");
    HAS_NOT("resume");
    strbuf_reset(&sql);
    /* Resumed first piece: after the checkpoint key, below its upper bound. */
    tablesql_target_keys(&lay, TABLESQL_RESUME | TABLESQL_RANGE_HI, &sql);
    HAS(" WHERE (x.k0) > (current_setting('walbridge.resume_0')::bigint) AND "
        "x.k0 < current_setting('walbridge.range_hi')::bigint ORDER BY 1) TO STDOUT");
    HAS_NOT("range_lo");
    strbuf_reset(&sql);
    /* Last piece: no upper bound. */
    tablesql_source_keys(&lay, TABLESQL_RANGE_LO, &sql);
    HAS(" WHERE x.k0 >= current_setting('walbridge.range_lo')::bigint ORDER BY 1) TO STDOUT");
    HAS_NOT("range_hi");
    strbuf_reset(&sql);
    tablesql_range_setting(true, &sql);
    cr_assert_str_eq(sql.data, "SELECT set_config('walbridge.range_hi', $1, false)");
    table_layout_free(&lay);
}
