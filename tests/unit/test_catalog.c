/*
 * test_catalog.c — the catalog rules (common/catalog_rules.c) without a
 * database: a config parsed from JSON plus hand-built descriptions of what
 * each side's catalog says, turned into a table plan and a problem list.
 * Reading the catalogs themselves is covered by tests/integration/test_check.sh.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/catalog.h"
#include "common/catalog_internal.h"
#include "common/config.h"

#define NS "0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42"

/* Column shorthands: name, format_type, typname, typcategory. */
#define COL(n, ty, tn, cat)                                                                        \
    {                                                                                              \
        .name = (char *)(n), .type = (char *)(ty), .typname = (char *)(tn), .category = (cat),     \
        .typmod = -1                                                                               \
    }

typedef struct fixture {
    wb_config cfg;
    catalog cat;
} fixture;

static void load(fixture *f, const char *tables_json)
{
    char json[4096], err[512];
    snprintf(json, sizeof json,
             "{\"source\": {\"dsn\": \"host=s\"}, \"target\": {\"dsn\": \"host=t\"},"
             " \"uuid_namespace\": \"" NS "\", \"tables\": [%s]}",
             tables_json);
    cr_assert(config_parse("test.json", json, &f->cfg, err, sizeof err), "config: %s", err);
    memset(&f->cat, 0, sizeof f->cat);
    f->cat.ntables = f->cfg.ntables;
    f->cat.tables = calloc(f->cfg.ntables, sizeof *f->cat.tables);
    for (size_t i = 0; i < f->cfg.ntables; i++) {
        f->cat.tables[i].cfg = &f->cfg.tables[i];
        f->cat.tables[i].index = (int)i;
    }
}

static void done(fixture *f)
{
    catalog_free(&f->cat);
    config_free(&f->cfg);
}

/* The first problem whose message contains needle, or NULL. */
static const catalog_problem *problem_with(const catalog *cat, const char *needle)
{
    for (size_t i = 0; i < cat->nproblems; i++)
        if (strstr(cat->problems[i].message, needle) != NULL)
            return &cat->problems[i];
    return NULL;
}

static const char *const offices_json =
    "{\"source\": \"public.offices\", \"target\": \"public.offices\","
    " \"key\": \"id\", \"target_key\": \"id\", \"legacy_key\": \"legacy_id\"}";

static side_column offices_src_cols[] = {COL("id", "integer", "int4", 'N'),
                                         COL("name", "text", "text", 'S'),
                                         COL("floor", "text", "text", 'S')};
static side_column offices_dst_cols[] = {
    COL("id", "uuid", "uuid", 'U'), COL("legacy_id", "bigint", "int8", 'N'),
    COL("name", "text", "text", 'S'), COL("floor", "integer", "int4", 'N')};
static char *legacy_cols[] = {"legacy_id"};

static void offices_sides(side_table *src, side_table *dst, bool legacy_unique)
{
    static side_index legacy_index = {legacy_cols, 1};
    offices_src_cols[0].in_pk = true;
    *src = (side_table){.exists = true,
                        .relkind = 'r',
                        .replident = 'd',
                        .has_pk = true,
                        .cols = offices_src_cols,
                        .ncols = 2};
    *dst = (side_table){.exists = true,
                        .relkind = 'r',
                        .replident = 'd',
                        .has_pk = true,
                        .cols = offices_dst_cols,
                        .ncols = 3,
                        .uniques = legacy_unique ? &legacy_index : NULL,
                        .nuniques = legacy_unique ? 1 : 0};
}

Test(catalog, uuid_mapped_plan)
{
    fixture f;
    load(&f, offices_json);
    side_table src, dst;
    offices_sides(&src, &dst, true);
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    cr_expect_eq(f.cat.nproblems, 0, "first problem: %s",
                 f.cat.nproblems > 0 ? f.cat.problems[0].message : "");
    const table_plan *t = &f.cat.tables[0];
    cr_assert_eq(t->ncolumns, 2);
    cr_expect_eq(t->columns[0].role, COLROLE_KEY);
    cr_expect_str_eq(t->columns[0].target, "legacy_id");
    cr_expect_str_eq(t->columns[0].target_type, "bigint");
    cr_expect_eq(t->columns[1].role, COLROLE_DATA);
    cr_expect_str_eq(t->columns[1].target, "name");
    cr_assert_eq(t->nkey_columns, 1);
    cr_expect_eq(t->key_columns[0], 0);
    cr_expect(t->target_legacy_unique);
    cr_expect_eq(t->replica_identity, 'd');
    done(&f);
}

Test(catalog, legacy_key_not_unique)
{
    fixture f;
    load(&f, offices_json);
    side_table src, dst;
    offices_sides(&src, &dst, false);
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    const catalog_problem *p = problem_with(&f.cat, "no UNIQUE index");
    cr_assert_not_null(p);
    cr_expect_eq(p->severity, CATALOG_ERROR);
    cr_expect_str_eq(p->table, "public.offices");
    cr_expect_not_null(strstr(p->hint, "CREATE UNIQUE INDEX"));
    cr_expect_eq(catalog_error_count(&f.cat), 1);
    done(&f);
}

Test(catalog, incompatible_type_is_an_error)
{
    fixture f;
    load(&f, offices_json);
    side_table src, dst;
    offices_sides(&src, &dst, true);
    src.ncols = 3; /* floor: text in the source, integer in the target */
    dst.ncols = 4;
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    const catalog_problem *p = problem_with(&f.cat, "\"floor\"");
    cr_assert_not_null(p);
    cr_expect_eq(p->severity, CATALOG_ERROR);
    cr_expect_not_null(strstr(p->message, "incompatible"));
    done(&f);
}

Test(catalog, missing_target_column_is_skipped_with_a_warning)
{
    fixture f;
    load(&f, offices_json);
    side_table src, dst;
    offices_sides(&src, &dst, true);
    src.ncols = 3; /* floor exists only in the source */
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    cr_assert_eq(f.cat.nproblems, 1);
    cr_expect_eq(f.cat.problems[0].severity, CATALOG_WARNING);
    cr_expect_not_null(strstr(f.cat.problems[0].message, "\"floor\" is skipped"));
    const column_plan *c = catalog_find_column(&f.cat.tables[0], "floor");
    cr_assert_not_null(c);
    cr_expect(c->skipped);
    cr_expect_null(c->target);
    done(&f);
}

Test(catalog, replica_identity_rules)
{
    fixture f;
    load(&f, offices_json);
    side_table src, dst;
    offices_sides(&src, &dst, true);

    src.replident = 'n';
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    const catalog_problem *p = problem_with(&f.cat, "REPLICA IDENTITY NOTHING");
    cr_assert_not_null(p);
    cr_expect_eq(p->severity, CATALOG_ERROR);
    cr_expect_not_null(strstr(p->hint, "wal2json drops updates and deletes"));
    done(&f);

    load(&f, offices_json);
    src.replident = 'd';
    src.has_pk = false;
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    cr_expect_not_null(problem_with(&f.cat, "DEFAULT but no primary key"));
    done(&f);

    load(&f, offices_json);
    src.replident = 'i';
    offices_src_cols[0].in_replident = true;
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    cr_expect_eq(catalog_error_count(&f.cat), 0, "USING INDEX carrying the key is fine");
    offices_src_cols[0].in_replident = false;
    done(&f);
}

Test(catalog, keyless_needs_full)
{
    fixture f;
    load(&f, "{\"source\": \"public.audit\", \"target\": \"public.audit\"}");
    side_column cols[] = {COL("actor", "text", "text", 'S')};
    side_table src = {.exists = true, .relkind = 'r', .replident = 'd', .cols = cols, .ncols = 1};
    side_table dst = src;
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    const catalog_problem *p = problem_with(&f.cat, "needs REPLICA IDENTITY FULL");
    cr_assert_not_null(p);
    cr_expect_str_eq(p->table, "public.audit");
    done(&f);

    load(&f, "{\"source\": \"public.audit\", \"target\": \"public.audit\"}");
    src.replident = 'f';
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    cr_expect_eq(f.cat.nproblems, 0);
    done(&f);
}

Test(catalog, references_and_unlisted_foreign_keys)
{
    fixture f;
    load(&f, "{\"source\": \"public.offices\", \"target\": \"public.offices\", \"key\": \"id\","
             " \"target_key\": \"id\", \"legacy_key\": \"legacy_id\"},"
             "{\"source\": \"public.doctors\", \"target\": \"public.doctors\", \"key\": \"id\","
             " \"target_key\": \"id\", \"legacy_key\": \"legacy_id\","
             " \"references\": {\"office_id\": \"public.offices\"}}");
    side_column scols[] = {COL("id", "integer", "int4", 'N'),
                           COL("office_id", "integer", "int4", 'N'),
                           COL("home_office", "integer", "int4", 'N')};
    scols[0].in_pk = true;
    scols[2].fk_schema = "public";
    scols[2].fk_name = "offices";
    side_column dcols[] = {COL("id", "uuid", "uuid", 'U'), COL("legacy_id", "bigint", "int8", 'N'),
                           COL("office_id", "uuid", "uuid", 'U'),
                           COL("home_office", "uuid", "uuid", 'U')};
    side_index ix = {legacy_cols, 1};
    side_table src = {.exists = true,
                      .relkind = 'r',
                      .replident = 'd',
                      .has_pk = true,
                      .cols = scols,
                      .ncols = 3};
    side_table dst = {.exists = true,
                      .relkind = 'r',
                      .replident = 'd',
                      .has_pk = true,
                      .cols = dcols,
                      .ncols = 4,
                      .uniques = &ix,
                      .nuniques = 1};
    int doctors = config_find_source(&f.cfg, "public", "doctors");
    int offices = config_find_source(&f.cfg, "public", "offices");
    cr_assert(doctors >= 0 && offices >= 0);
    catalog_plan_table(&f.cfg, &f.cat, (size_t)doctors, &src, &dst);
    const column_plan *ref = catalog_find_column(&f.cat.tables[doctors], "office_id");
    cr_assert_not_null(ref);
    cr_expect_eq(ref->role, COLROLE_REFERENCE);
    cr_expect_eq(ref->ref_parent, offices);
    const catalog_problem *p = problem_with(&f.cat, "\"home_office\" is a foreign key");
    cr_assert_not_null(p);
    cr_expect_eq(p->severity, CATALOG_ERROR);
    cr_expect_not_null(strstr(p->hint, "\"references\": {\"home_office\": \"public.offices\"}"));
    cr_expect_eq(catalog_error_count(&f.cat), 1);
    done(&f);
}

Test(catalog, unfed_not_null_target_column)
{
    fixture f;
    load(&f, offices_json);
    side_table src, dst;
    offices_sides(&src, &dst, true);
    side_column dcols[5];
    memcpy(dcols, offices_dst_cols, sizeof offices_dst_cols);
    dcols[4] = (side_column)COL("required", "text", "text", 'S');
    dcols[4].needs_value = true;
    dst.cols = dcols;
    dst.ncols = 5;
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    const catalog_problem *p = problem_with(&f.cat, "NOT NULL without a default");
    cr_assert_not_null(p);
    cr_expect_not_null(strstr(p->message, "public.offices.required"));
    done(&f);
}

Test(catalog, missing_tables_are_named)
{
    fixture f;
    load(&f, offices_json);
    side_table src = {0}, dst = {0};
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    cr_expect_not_null(problem_with(&f.cat, "source table public.offices does not exist"));
    cr_expect_not_null(problem_with(&f.cat, "target table public.offices does not exist"));
    cr_expect_eq(f.cat.tables[0].ncolumns, 0);
    done(&f);
}

/* Severity of the problem about column "c" (-1: none) for a source and target type. */
static int type_verdict(side_column sc, side_column dc)
{
    fixture f;
    load(&f, "{\"source\": \"public.t\", \"target\": \"public.t\"}");
    sc.name = dc.name = (char *)"c";
    side_table src = {.exists = true, .relkind = 'r', .replident = 'f', .cols = &sc, .ncols = 1};
    side_table dst = {.exists = true, .relkind = 'r', .replident = 'f', .cols = &dc, .ncols = 1};
    catalog_plan_table(&f.cfg, &f.cat, 0, &src, &dst);
    int verdict = f.cat.nproblems == 0 ? -1 : (int)f.cat.problems[0].severity;
    cr_expect_leq(f.cat.nproblems, 1);
    done(&f);
    return verdict;
}

Test(catalog, type_compatibility)
{
    side_column i4 = COL("", "integer", "int4", 'N'), i8 = COL("", "bigint", "int8", 'N');
    side_column num = COL("", "numeric", "numeric", 'N');
    side_column num12 = COL("", "numeric(12,2)", "numeric", 'N');
    side_column txt = COL("", "text", "text", 'S');
    side_column vc20 = COL("", "character varying(20)", "varchar", 'S');
    side_column vc40 = COL("", "character varying(40)", "varchar", 'S');
    side_column js = COL("", "json", "json", 'U'), jsb = COL("", "jsonb", "jsonb", 'U');
    side_column uid = COL("", "uuid", "uuid", 'U'), ts = COL("", "timestamp", "timestamp", 'D');
    side_column tstz = COL("", "timestamp with time zone", "timestamptz", 'D');
    num12.typmod = (12 << 16 | 2) + 4;
    vc20.typmod = 24;
    vc40.typmod = 44;

    cr_expect_eq(type_verdict(i4, i4), -1);
    cr_expect_eq(type_verdict(i4, i8), -1, "widening int4 -> int8 is silent");
    cr_expect_eq(type_verdict(i8, num), -1);
    cr_expect_eq(type_verdict(vc20, vc40), -1);
    cr_expect_eq(type_verdict(vc20, txt), -1);
    cr_expect_eq(type_verdict(i8, i4), CATALOG_WARNING, "narrowing may overflow");
    cr_expect_eq(type_verdict(i8, num12), CATALOG_WARNING);
    cr_expect_eq(type_verdict(vc40, vc20), CATALOG_WARNING);
    cr_expect_eq(type_verdict(ts, tstz), CATALOG_WARNING);
    cr_expect_eq(type_verdict(js, jsb), CATALOG_WARNING);
    cr_expect_eq(type_verdict(uid, txt), CATALOG_WARNING, "anything fits text, with a warning");
    cr_expect_eq(type_verdict(txt, i4), CATALOG_ERROR, "text into integer is incompatible");
    cr_expect_eq(type_verdict(i4, uid), CATALOG_ERROR);
    cr_expect_eq(type_verdict(tstz, i8), CATALOG_ERROR);
}
