/*
 * test_apply_sql.c — unit tests for the stream applier's SQL building
 * (cdc/apply_sql.c): the exact statement text and parameter list for each
 * table kind (UUID-mapped with a reference, identity with a composite key
 * that is also a reference, keyless) and each statement kind, including
 * partial updates (unchanged TOAST absent), skipped and generated columns,
 * bytea, json matching, and the cases that must be refused; a referenced
 * parent's delete and key change remember the old key for children later in
 * the transaction (cascades), and a new row whose UUIDv5 is taken gets a
 * random UUID.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/apply_sql.h"
#include "common/config.h"
#include "common/strbuf.h"
#include "tests/unit/column_fixture.h"

static const char *const CONFIG =
    "{\"source\":{\"dsn\":\"host=a\"},\"target\":{\"dsn\":\"host=b\"},"
    "\"uuid_namespace\":\"0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42\",\"tables\":["
    "{\"source\":\"public.offices\",\"key\":\"id\",\"legacy_key\":\"legacy_id\"},"
    "{\"source\":\"public.doctors\",\"target\":\"app.doctors\",\"key\":\"id\","
    "\"legacy_key\":\"legacy_id\",\"references\":{\"office_id\":\"public.offices\"},"
    "\"deletes\":{\"soft\":\"deleted_at\"}},"
    "{\"source\":\"public.office_tags\",\"key\":[\"office_id\",\"tag\"],"
    "\"references\":{\"office_id\":\"public.offices\"}},"
    "{\"source\":\"public.audit_log\"}]}";

static wb_config cfg;
static table_plan offices, doctors, tags, audit;

static int index_of(const char *source)
{
    for (size_t i = 0; i < cfg.ntables; i++)
        if (strcmp(cfg.tables[i].source, source) == 0)
            return (int)i;
    return -1;
}

static void setup(void)
{
    char err[512];
    cr_assert(config_parse("t.json", CONFIG, &cfg, err, sizeof err), "%s", err);
    int offices_index = index_of("public.offices");
    cr_assert_eq(offices_index, 0, "OFFICE_REF below assumes offices is table 0");

    static column_plan oc[2];
    column(&oc[0], "id", "legacy_id", "bigint", COLROLE_KEY, -1);
    column(&oc[1], "name", "name", "text", COLROLE_DATA, -1);
    static int okey[1] = {0};
    offices = (table_plan){.cfg = &cfg.tables[offices_index],
                           .columns = oc,
                           .ncolumns = 2,
                           .key_columns = okey,
                           .nkey_columns = 1};

    /* doctors: id (key -> legacy_id), office_id (ref), name, photo bytea, full_name generated,
     * secret (skipped) */
    static column_plan dc[6];
    column(&dc[0], "id", "legacy_id", "bigint", COLROLE_KEY, -1);
    column(&dc[1], "office_id", "office_id", "bigint", COLROLE_REFERENCE, offices_index);
    column(&dc[2], "name", "name", "text", COLROLE_DATA, -1);
    column(&dc[3], "photo", "photo", "bytea", COLROLE_DATA, -1);
    column(&dc[4], "full_name", "full_name", "text", COLROLE_DATA, -1);
    dc[4].generated = true;
    column(&dc[5], "secret", NULL, "text", COLROLE_DATA, -1);
    static int dkey[1] = {0};
    doctors = (table_plan){.cfg = &cfg.tables[index_of("public.doctors")],
                           .columns = dc,
                           .ncolumns = 6,
                           .key_columns = dkey,
                           .nkey_columns = 1};

    static column_plan tc[3];
    column(&tc[0], "office_id", "office_id", "bigint", COLROLE_REFERENCE, offices_index);
    column(&tc[1], "tag", "label", "text", COLROLE_KEY, -1);
    column(&tc[2], "note", "note", "text", COLROLE_DATA, -1);
    static int tkey[2] = {0, 1};
    tags = (table_plan){.cfg = &cfg.tables[index_of("public.office_tags")],
                        .columns = tc,
                        .ncolumns = 3,
                        .key_columns = tkey,
                        .nkey_columns = 2};

    static column_plan ac[3];
    column(&ac[0], "at", "at", "timestamp with time zone", COLROLE_DATA, -1);
    column(&ac[1], "who", "who", "character varying(20)", COLROLE_DATA, -1);
    column(&ac[2], "payload", "payload", "json", COLROLE_DATA, -1);
    audit = (table_plan){
        .cfg = &cfg.tables[index_of("public.audit_log")], .columns = ac, .ncolumns = 3};
}

static void teardown(void)
{
    config_free(&cfg);
}

TestSuite(apply_sql, .init = setup, .fini = teardown);

/* apply_sql_build_rows, which must succeed (moved: tables with a key change, or NULL). */
static apply_stmt build_rows(const table_plan *t, apply_stmt_kind kind, const bool *np,
                             const bool *op, int nrows, const bool *moved)
{
    apply_stmt s = {0};
    char err[256] = "";
    cr_assert(apply_sql_build_rows(&cfg, t, kind, np, op, nrows, moved, &s, err, sizeof err), "%s",
              err);
    return s;
}

static apply_stmt build(const table_plan *t, apply_stmt_kind kind, const bool *np, const bool *op)
{
    apply_stmt s = {0};
    char err[256] = "";
    cr_assert(apply_sql_build(&cfg, t, kind, np, op, &s, err, sizeof err), "%s", err);
    return s;
}

static void expect_param(const apply_stmt *s, int n, int column, bool old, apply_param_how how)
{
    cr_assert_gt(s->nparams, n - 1, "statement has only %d parameters", s->nparams);
    const apply_param *p = &s->params[n - 1];
    cr_expect_eq(p->column, column, "$%d column %d, want %d", n, p->column, column);
    cr_expect_eq(p->old, old, "$%d old", n);
    cr_expect_eq(p->how, how, "$%d how %d, want %d", n, (int)p->how, (int)how);
}

/* A new value: live parent, else v5. */
#define OFFICE_REF(raw, v5)                                                                        \
    "COALESCE((SELECT p.\"id\" FROM \"public\".\"offices\" p WHERE p.\"legacy_id\" = $" raw        \
    "), $" v5 "::uuid)"
/* An old row's value: live parent, else the parent deleted or moved in this transaction
 * (offices is table 0), else v5. */
#define OFFICE_REF_OLD(raw, v5)                                                                    \
    "COALESCE((SELECT p.\"id\" FROM \"public\".\"offices\" p WHERE p.\"legacy_id\" = $" raw        \
    "), (SELECT g.tk FROM pg_temp.wb_gone_keys g WHERE g.tbl = 0 AND g.lk = $" raw "::text), $" v5 \
    "::uuid)"

Test(apply_sql, uuid_mapped_upsert_remaps_key_and_reference_and_skips_generated)
{
    bool np[6] = {true, true, true, true, true, true};
    bool op[6] = {true, false, false, false, false, false};
    apply_stmt s = build(&doctors, APPLY_STMT_UPSERT, np, op);
    cr_expect_str_eq(
        s.sql, "INSERT INTO \"app\".\"doctors\" (\"id\", \"legacy_id\", \"office_id\", "
               "\"name\", \"photo\") VALUES ($1, $2, " OFFICE_REF(
                   "3", "4") ", $5, $6)"
                             " ON CONFLICT (\"legacy_id\") DO UPDATE SET \"office_id\" = "
                             "EXCLUDED.\"office_id\", \"name\" = EXCLUDED.\"name\", \"photo\" = "
                             "EXCLUDED.\"photo\" RETURNING (xmax = 0) AS inserted");
    cr_assert_eq(s.nparams, 6);
    expect_param(&s, 1, 0, false, APARAM_V5_ROW);
    expect_param(&s, 2, 0, false, APARAM_RAW);
    expect_param(&s, 3, 1, false, APARAM_RAW);
    expect_param(&s, 4, 1, false, APARAM_V5_PARENT);
    expect_param(&s, 5, 2, false, APARAM_RAW);
    expect_param(&s, 6, 3, false, APARAM_BYTEA);
    apply_stmt_free(&s);
}

Test(apply_sql, partial_update_sets_only_present_columns_and_matches_old_key)
{
    /* photo (TOAST) unchanged: absent from the message */
    bool np[6] = {true, true, true, false, true, false};
    bool op[6] = {true, false, false, false, false, false};
    apply_stmt s = build(&doctors, APPLY_STMT_UPDATE, np, op);
    cr_expect_str_eq(
        s.sql, "UPDATE \"app\".\"doctors\" SET \"legacy_id\" = $1, \"office_id\" = " OFFICE_REF(
                   "2", "3") ", \"name\" = $4 WHERE \"legacy_id\" = $5");
    cr_assert_eq(s.nparams, 5);
    expect_param(&s, 1, 0, false, APARAM_RAW);
    expect_param(&s, 5, 0, true, APARAM_RAW);
    apply_stmt_free(&s);
}

Test(apply_sql, deletes_hard_and_soft_by_legacy_key)
{
    bool op[6] = {true, false, false, false, false, false};
    apply_stmt s = build(&doctors, APPLY_STMT_DELETE, NULL, op);
    cr_expect_str_eq(s.sql, "DELETE FROM \"app\".\"doctors\" WHERE \"legacy_id\" = $1");
    expect_param(&s, 1, 0, true, APARAM_RAW);
    apply_stmt_free(&s);
    s = build(&doctors, APPLY_STMT_SOFT_DELETE, NULL, op);
    cr_expect_str_eq(
        s.sql, "UPDATE \"app\".\"doctors\" SET \"deleted_at\" = now() WHERE \"legacy_id\" = $1");
    apply_stmt_free(&s);
}

Test(apply_sql, identity_table_with_reference_in_composite_key)
{
    bool np[3] = {true, true, true};
    bool op[3] = {true, true, false};
    apply_stmt s = build(&tags, APPLY_STMT_UPSERT, np, op);
    cr_expect_str_eq(
        s.sql, "INSERT INTO \"public\".\"office_tags\" (\"office_id\", \"label\", "
               "\"note\") VALUES (" OFFICE_REF(
                   "1", "2") ", $3, $4) ON CONFLICT "
                             "(\"office_id\", \"label\") DO UPDATE SET \"note\" = EXCLUDED.\"note\""
                             " RETURNING (xmax = 0) AS inserted");
    apply_stmt_free(&s);

    s = build(&tags, APPLY_STMT_DELETE, NULL, op);
    cr_expect_str_eq(s.sql,
                     "DELETE FROM \"public\".\"office_tags\" WHERE \"office_id\" = " OFFICE_REF_OLD(
                         "1", "2") " AND \"label\" = $3");
    expect_param(&s, 1, 0, true, APARAM_RAW);
    expect_param(&s, 2, 0, true, APARAM_V5_PARENT);
    apply_stmt_free(&s);
}

Test(apply_sql, key_only_upsert_still_returns_the_row)
{
    bool np[3] = {true, true, false};
    apply_stmt s = build(&tags, APPLY_STMT_UPSERT, np, NULL);
    cr_expect(strstr(s.sql, "DO UPDATE SET \"office_id\" = EXCLUDED.\"office_id\" RETURNING") !=
                  NULL,
              "%s", s.sql);
    apply_stmt_free(&s);
}

Test(apply_sql, keyless_update_changes_exactly_one_matching_row)
{
    bool np[3] = {true, true, true};
    bool op[3] = {true, true, true};
    apply_stmt s = build(&audit, APPLY_STMT_KL_UPDATE, np, op);
    cr_expect_str_eq(s.sql, "UPDATE \"public\".\"audit_log\" SET \"at\" = $1, \"who\" = $2, "
                            "\"payload\" = $3 WHERE ctid = (SELECT ctid FROM "
                            "\"public\".\"audit_log\" WHERE \"at\" IS NOT DISTINCT FROM $4 AND "
                            "\"who\" IS NOT DISTINCT FROM $5 AND \"payload\"::text IS NOT "
                            "DISTINCT FROM $6::text LIMIT 1)");
    cr_assert_eq(s.nparams, 6);
    expect_param(&s, 4, 0, true, APARAM_RAW);
    expect_param(&s, 6, 2, true, APARAM_RAW);
    apply_stmt_free(&s);
}

Test(apply_sql, keyless_upsert_inserts_when_no_row_matched_reusing_parameters)
{
    bool np[3] = {true, true, true};
    bool op[3] = {true, true, true};
    apply_stmt s = build(&audit, APPLY_STMT_KL_UPSERT, np, op);
    cr_expect(strncmp(s.sql, "WITH u AS (UPDATE \"public\".\"audit_log\" SET", 42) == 0, "%s",
              s.sql);
    cr_expect(strstr(s.sql, " LIMIT 1) RETURNING 1) INSERT INTO \"public\".\"audit_log\" (\"at\", "
                            "\"who\", \"payload\") SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 "
                            "FROM u)") != NULL,
              "%s", s.sql);
    cr_expect_eq(s.nparams, 6, "new values are shared by SET and INSERT");
    apply_stmt_free(&s);
}

Test(apply_sql, keyless_delete_and_plain_insert)
{
    bool np[3] = {true, true, true};
    bool op[3] = {true, false, true};
    apply_stmt s = build(&audit, APPLY_STMT_KL_DELETE, NULL, op);
    cr_expect_str_eq(s.sql, "DELETE FROM \"public\".\"audit_log\" WHERE ctid = (SELECT ctid FROM "
                            "\"public\".\"audit_log\" WHERE \"at\" IS NOT DISTINCT FROM $1 AND "
                            "\"payload\"::text IS NOT DISTINCT FROM $2::text LIMIT 1)");
    apply_stmt_free(&s);
    s = build(&audit, APPLY_STMT_INSERT, np, NULL);
    cr_expect_str_eq(s.sql, "INSERT INTO \"public\".\"audit_log\" (\"at\", \"who\", \"payload\") "
                            "VALUES ($1, $2, $3)");
    apply_stmt_free(&s);
}

Test(apply_sql, refuses_what_cannot_be_applied)
{
    apply_stmt s = {0};
    char err[256] = "";
    bool none[6] = {false};
    cr_expect_not(
        apply_sql_build(&cfg, &audit, APPLY_STMT_KL_DELETE, NULL, none, &s, err, sizeof err));
    cr_expect(strstr(err, "no column to match on") != NULL, "%s", err);
    bool np[6] = {false, true, true, false, false, false};
    cr_expect_not(
        apply_sql_build(&cfg, &doctors, APPLY_STMT_UPSERT, np, NULL, &s, err, sizeof err));
    cr_expect(strstr(err, "key column \"id\"") != NULL, "%s", err);
    cr_expect_not(
        apply_sql_build(&cfg, &doctors, APPLY_STMT_DELETE, NULL, none, &s, err, sizeof err));
    cr_expect_not(
        apply_sql_build(&cfg, &doctors, APPLY_STMT_KL_DELETE, NULL, none, &s, err, sizeof err));
    cr_expect_null(s.sql);
}

Test(apply_sql, truncate_names_all_tables_in_one_statement_and_conflict_insert)
{
    strbuf sb;
    strbuf_init(&sb);
    int tables[2] = {index_of("public.doctors"), index_of("public.offices")};
    apply_sql_truncate(&cfg, tables, 2, &sb);
    cr_expect_str_eq(sb.data, "TRUNCATE \"app\".\"doctors\", \"public\".\"offices\"");
    strbuf_reset(&sb);
    apply_sql_conflict_insert("wb state", &sb);
    cr_expect_str_eq(sb.data, "INSERT INTO \"wb state\".\"conflicts\" (at, slot, lsn, table_name, "
                              "kind, key) VALUES (now(), $1, $2::pg_lsn, $3, $4, $5)");
    strbuf_free(&sb);
}

Test(apply_sql, multi_row_upsert_numbers_each_rows_parameters)
{
    bool np[3] = {true, true, true};
    apply_stmt s = build_rows(&tags, APPLY_STMT_UPSERT, np, NULL, 2, NULL);
    char err[256] = "";
    cr_expect_str_eq(s.sql, "INSERT INTO \"public\".\"office_tags\" (\"office_id\", \"label\", "
                            "\"note\") VALUES (" OFFICE_REF("1", "2") ", $3, $4), (" OFFICE_REF(
                                "5", "6") ", $7, $8) ON CONFLICT (\"office_id\", \"label\") DO "
                                          "UPDATE SET \"note\" = EXCLUDED.\"note\" RETURNING "
                                          "(xmax = 0) AS inserted");
    cr_expect_eq(s.nparams, 4, "parameters are listed once, per row");
    cr_expect_eq(s.nrows, 2);
    apply_stmt_free(&s);
    cr_expect_not(
        apply_sql_build_rows(&cfg, &tags, APPLY_STMT_DELETE, np, np, 2, NULL, &s, err, sizeof err));
}

Test(apply_sql, delete_of_a_referenced_parent_remembers_its_uuid_for_cascaded_children)
{
    bool op[2] = {true, false};
    apply_stmt s = build(&offices, APPLY_STMT_DELETE, NULL, op);
    cr_expect_str_eq(s.sql, "WITH d AS (DELETE FROM \"public\".\"offices\" WHERE \"legacy_id\" = $1"
                            " RETURNING \"legacy_id\", \"id\") INSERT INTO pg_temp.wb_gone_keys "
                            "(tbl, lk, tk) SELECT 0, d.\"legacy_id\"::text, d.\"id\" FROM d ON "
                            "CONFLICT (tbl, lk) DO UPDATE SET tk = EXCLUDED.tk");
    cr_expect_eq(s.nparams, 1);
    expect_param(&s, 1, 0, true, APARAM_RAW);
    apply_stmt_free(&s);
    /* doctors is referenced by no configured table: a plain DELETE */
    bool dop[6] = {true, false, false, false, false, false};
    s = build(&doctors, APPLY_STMT_DELETE, NULL, dop);
    cr_expect_str_eq(s.sql, "DELETE FROM \"app\".\"doctors\" WHERE \"legacy_id\" = $1");
    apply_stmt_free(&s);
}

Test(apply_sql, key_change_is_recorded_and_a_referenced_parent_remembers_the_old_key)
{
    bool np[2] = {true, true};
    bool op[2] = {true, false};
    apply_stmt s = build(&offices, APPLY_STMT_KEY_UPDATE, np, op);
    cr_expect_str_eq(s.sql,
                     "WITH u AS (UPDATE \"public\".\"offices\" SET \"legacy_id\" = $1, "
                     "\"name\" = $2 WHERE \"legacy_id\" = $3 RETURNING tableoid, \"id\"), g AS "
                     "(INSERT INTO pg_temp.wb_gone_keys (tbl, lk, tk) SELECT 0, $3::text, "
                     "u.\"id\" FROM u ON CONFLICT (tbl, lk) DO UPDATE SET tk = EXCLUDED.tk) "
                     "INSERT INTO \"walbridge\".\"moved_keys\" (table_oid, old_key, "
                     "target_key, at) SELECT u.tableoid, $3::text, u.\"id\", now() FROM u");
    cr_expect_eq(s.nparams, 3);
    expect_param(&s, 3, 0, true, APARAM_RAW);
    apply_stmt_free(&s);
    /* doctors is not referenced: the move is recorded, no gone key */
    bool dnp[6] = {true, false, true, false, false, false};
    bool dop[6] = {true, false, false, false, false, false};
    s = build(&doctors, APPLY_STMT_KEY_UPDATE, dnp, dop);
    cr_expect_str_eq(s.sql, "WITH u AS (UPDATE \"app\".\"doctors\" SET \"legacy_id\" = $1, "
                            "\"name\" = $2 WHERE \"legacy_id\" = $3 RETURNING tableoid, \"id\") "
                            "INSERT INTO \"walbridge\".\"moved_keys\" (table_oid, old_key, "
                            "target_key, at) SELECT u.tableoid, $3::text, u.\"id\", now() FROM u");
    apply_stmt_free(&s);
    /* identity-mapped: keys are the same on both sides, a plain UPDATE */
    bool tnp[3] = {true, true, true};
    bool top[3] = {true, true, false};
    s = build(&tags, APPLY_STMT_KEY_UPDATE, tnp, top);
    static const char plain[] = "UPDATE \"public\".\"office_tags\" SET ";
    cr_expect(strncmp(s.sql, plain, sizeof plain - 1) == 0, "%s", s.sql);
    apply_stmt_free(&s);
}

/* apply_sql_key_uuid's chain for app.doctors (key "id") from UUIDv5 expression v5. */
#define DOCTOR_CHAIN(v5)                                                                           \
    "(WITH RECURSIVE wb_c(u, n) AS (SELECT (" v5 ")::uuid, 0 UNION ALL SELECT "                    \
    "overlay(overlay(md5('walbridge:' || wb_c.u::text) placing '8' from 13 for 1) placing '8' "    \
    "from 17 for 1)::uuid, wb_c.n + 1 FROM wb_c WHERE wb_c.n < 100 AND (EXISTS (SELECT 1 FROM "    \
    "\"app\".\"doctors\" x WHERE x.\"id\" = wb_c.u) OR EXISTS (SELECT 1 FROM "                     \
    "\"walbridge\".\"moved_keys\" m WHERE m.target_key = wb_c.u))) SELECT wb_c.u FROM wb_c "       \
    "ORDER BY wb_c.n DESC LIMIT 1)"

Test(apply_sql, guarded_upsert_takes_the_next_uuid_of_its_chain_when_its_uuidv5_is_taken)
{
    bool np[6] = {true, false, true, false, false, false};
    apply_stmt s = build_rows(&doctors, APPLY_STMT_UPSERT_GUARDED, np, NULL, 2, NULL);
    char err[256] = "";
    cr_expect_str_eq(s.sql, "INSERT INTO \"app\".\"doctors\" (\"id\", \"legacy_id\", \"name\") "
                            "VALUES (" DOCTOR_CHAIN("$1::uuid") ", $2, $3), (" DOCTOR_CHAIN(
                                "$4::uuid") ", $5, $6) ON CONFLICT (\"legacy_id\") DO UPDATE SET "
                                            "\"name\" = EXCLUDED.\"name\" RETURNING (xmax = 0) "
                                            "AS inserted, \"id\"");
    expect_param(&s, 1, 0, false, APARAM_V5_ROW);
    apply_stmt_free(&s);
    cr_expect_not(
        apply_sql_build(&cfg, &tags, APPLY_STMT_UPSERT_GUARDED, np, NULL, &s, err, sizeof err));
}

Test(apply_sql, references_to_a_moved_parent_fall_back_to_its_chain)
{
    /* offices had a key change: a new office_tags row whose office is not there yet
     * names the UUID the office's insert will get, not UUIDv5 (a moved row may hold it). */
    bool moved[8] = {false};
    moved[0] = true;
    bool np[3] = {true, true, true};
    apply_stmt s = build_rows(&tags, APPLY_STMT_UPSERT, np, NULL, 1, moved);
    strbuf want;
    strbuf_init(&want);
    strbuf_append(&want,
                  "INSERT INTO \"public\".\"office_tags\" (\"office_id\", \"label\", "
                  "\"note\") VALUES (COALESCE((SELECT p.\"id\" FROM \"public\".\"offices\" p "
                  "WHERE p.\"legacy_id\" = $1), ");
    apply_sql_key_uuid(&cfg.tables[0], "walbridge", "$2::uuid", &want);
    strbuf_append(&want, "), $3, $4)");
    cr_expect(strncmp(s.sql, want.data, want.len) == 0, "%s\nwants %s", s.sql, want.data);
    apply_stmt_free(&s);
    /* An old row's reference: live parent, gone parent, then the chain. */
    bool dnp[6] = {true, true, true, false, false, false};
    bool dop[6] = {true, false, false, false, false, false};
    s = build_rows(&doctors, APPLY_STMT_KEY_UPDATE, dnp, dop, 1, moved);
    strbuf_reset(&want);
    strbuf_append(&want, "\"office_id\" = COALESCE((SELECT p.\"id\" FROM \"public\".\"offices\" p "
                         "WHERE p.\"legacy_id\" = $2), ");
    apply_sql_key_uuid(&cfg.tables[0], "walbridge", "$3::uuid", &want);
    cr_expect(strstr(s.sql, want.data) != NULL, "%s\nwants %s", s.sql, want.data);
    apply_stmt_free(&s);
    strbuf_free(&want);
}

Test(apply_sql, key_uuid_chain_skips_held_and_moved_uuids)
{
    strbuf sb;
    strbuf_init(&sb);
    apply_sql_key_uuid(&cfg.tables[index_of("public.doctors")], "walbridge", "s.wb_id", &sb);
    cr_expect_str_eq(sb.data, DOCTOR_CHAIN("s.wb_id"));
    strbuf_free(&sb);
}

Test(apply_sql, gone_keys_table_is_a_session_temp_table_emptied_at_commit)
{
    strbuf sb;
    strbuf_init(&sb);
    apply_sql_gone_table_create(&sb);
    cr_expect_str_eq(sb.data, "CREATE TEMP TABLE IF NOT EXISTS pg_temp.wb_gone_keys (tbl integer, "
                              "lk text, tk uuid, PRIMARY KEY (tbl, lk)) ON COMMIT DELETE ROWS");
    strbuf_reset(&sb);
    apply_sql_moved_keys_create("wb state", &sb);
    cr_expect_str_eq(sb.data, "CREATE TABLE IF NOT EXISTS \"wb state\".\"moved_keys\" (table_oid "
                              "oid NOT NULL, old_key text NOT NULL, target_key uuid NOT NULL, at "
                              "timestamptz NOT NULL)");
    strbuf_reset(&sb);
    apply_sql_moved_keys_index("wb state", &sb);
    cr_expect_str_eq(sb.data, "CREATE INDEX IF NOT EXISTS moved_keys_target_key ON \"wb state\"."
                              "\"moved_keys\" (target_key)");
    strbuf_free(&sb);
}
