/*
 * catalog.c — builds the per-table column plan from the config and the two
 * databases' catalogs (catalog.h).  This file reads the catalogs; the rules
 * that turn what it read into a plan and a list of problems are in
 * catalog_rules.c.
 *
 * Two queries per side, for all configured tables at once (the table names
 * travel as text[] parameters): one row per column with the table's relkind,
 * replica identity, primary-key and replica-identity membership, any
 * single-column foreign key and whether the column must be given a value;
 * and one row per key column of every usable UNIQUE index (valid, not
 * partial, no expressions: what ON CONFLICT needs).  A 50-table config
 * against a remote Supabase thus costs four round trips.
 */
#include "common/catalog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/catalog_internal.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"
#include "common/strbuf.h"

static const char *const columns_sql =
    "SELECT q.ord::int, c.relkind, c.relreplident,"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_constraint p"
    "         WHERE p.conrelid = c.oid AND p.contype = 'p'),"
    " a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
    " coalesce(bt.typname, t.typname), coalesce(bt.typcategory, t.typcategory),"
    " a.atttypmod,"
    " a.attgenerated <> '',"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_constraint p"
    "         WHERE p.conrelid = c.oid AND p.contype = 'p' AND a.attnum = ANY (p.conkey)),"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
    "         WHERE i.indrelid = c.oid AND i.indisreplident AND a.attnum = ANY (i.indkey)),"
    " fk.nspname, fk.relname,"
    " a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '',"
    " t.oid < 16384" /* FirstNormalObjectId: a type every server has */
    " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(nsp, rel, ord)"
    " JOIN pg_catalog.pg_namespace n ON n.nspname = q.nsp"
    " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = q.rel"
    " LEFT JOIN pg_catalog.pg_attribute a"
    "   ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype"
    " LEFT JOIN LATERAL (SELECT fn.nspname, fc.relname FROM pg_catalog.pg_constraint f"
    "   JOIN pg_catalog.pg_class fc ON fc.oid = f.confrelid"
    "   JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace"
    "   WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.conkey = ARRAY[a.attnum]"
    "   LIMIT 1) fk ON true"
    " ORDER BY q.ord, a.attnum";

static const char *const uniques_sql =
    "SELECT q.ord::int, i.indexrelid::text, a.attname"
    " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(nsp, rel, ord)"
    " JOIN pg_catalog.pg_namespace n ON n.nspname = q.nsp"
    " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = q.rel"
    " JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisunique AND i.indisvalid"
    "   AND i.indpred IS NULL AND i.indexprs IS NULL"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
    "   AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])"
    " ORDER BY q.ord, i.indexrelid, a.attnum";

/* ---- problems ---------------------------------------------------------- */

void catalog_problems_vappend(catalog_problem **problems, size_t *n, catalog_severity sev,
                              const char *table, const char *hint, const char *fmt, va_list ap)
{
    *problems = wb_xrealloc(*problems, (*n + 1) * sizeof **problems);
    catalog_problem *p = &(*problems)[(*n)++];
    strbuf msg;
    strbuf_init(&msg);
    strbuf_vappendf(&msg, fmt, ap);
    p->severity = sev;
    p->table = table != NULL ? wb_xstrdup(table) : NULL;
    p->message = strbuf_detach(&msg);
    p->hint = hint != NULL ? wb_xstrdup(hint) : NULL;
    strbuf_free(&msg);
}

void catalog_add_problem(catalog *cat, catalog_severity sev, const char *table, const char *hint,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    catalog_problems_vappend(&cat->problems, &cat->nproblems, sev, table, hint, fmt, ap);
    va_end(ap);
}

/* ---- reading one side -------------------------------------------------- */

/* Appends a text[] literal ({"a","b"}) of the given strings. */
static void append_array_literal(strbuf *out, const table_config *tables, size_t n, bool schema,
                                 bool source)
{
    strbuf_append_char(out, '{');
    for (size_t i = 0; i < n; i++) {
        const table_config *t = &tables[i];
        const char *s = source ? (schema ? t->source_schema : t->source_name)
                               : (schema ? t->target_schema : t->target_name);
        if (i > 0)
            strbuf_append_char(out, ',');
        strbuf_append_char(out, '"');
        for (; *s != '\0'; s++) {
            if (*s == '"' || *s == '\\')
                strbuf_append_char(out, '\\');
            strbuf_append_char(out, *s);
        }
        strbuf_append_char(out, '"');
    }
    strbuf_append_char(out, '}');
}

static char *dup_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : wb_xstrdup(PQgetvalue(res, row, col));
}

static bool is_true(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static void fill_columns(const PGresult *res, side_table *tables, size_t ntables)
{
    for (int r = 0; r < PQntuples(res); r++) {
        int ord = atoi(PQgetvalue(res, r, 0));
        if (ord < 1 || (size_t)ord > ntables)
            continue;
        side_table *t = &tables[ord - 1];
        t->exists = true;
        t->relkind = PQgetvalue(res, r, 1)[0];
        t->replident = PQgetvalue(res, r, 2)[0];
        t->has_pk = is_true(res, r, 3);
        if (PQgetisnull(res, r, 4))
            continue; /* a table without columns */
        t->cols = wb_xrealloc(t->cols, (t->ncols + 1) * sizeof *t->cols);
        side_column *c = &t->cols[t->ncols++];
        c->name = wb_xstrdup(PQgetvalue(res, r, 4));
        c->type = wb_xstrdup(PQgetvalue(res, r, 5));
        c->typname = wb_xstrdup(PQgetvalue(res, r, 6));
        c->category = PQgetvalue(res, r, 7)[0];
        c->typmod = atoi(PQgetvalue(res, r, 8));
        c->generated = is_true(res, r, 9);
        c->in_pk = is_true(res, r, 10);
        c->in_replident = is_true(res, r, 11);
        c->fk_schema = dup_or_null(res, r, 12);
        c->fk_name = dup_or_null(res, r, 13);
        c->needs_value = is_true(res, r, 14);
        c->builtin = is_true(res, r, 15);
    }
}

static void fill_uniques(const PGresult *res, side_table *tables, size_t ntables)
{
    const char *prev_index = NULL;
    int prev_ord = -1;
    for (int r = 0; r < PQntuples(res); r++) {
        int ord = atoi(PQgetvalue(res, r, 0));
        if (ord < 1 || (size_t)ord > ntables)
            continue;
        side_table *t = &tables[ord - 1];
        const char *index = PQgetvalue(res, r, 1);
        if (ord != prev_ord || prev_index == NULL || strcmp(index, prev_index) != 0) {
            t->uniques = wb_xrealloc(t->uniques, (t->nuniques + 1) * sizeof *t->uniques);
            t->uniques[t->nuniques].cols = NULL;
            t->uniques[t->nuniques].ncols = 0;
            t->nuniques++;
        }
        side_index *ix = &t->uniques[t->nuniques - 1];
        ix->cols = wb_xrealloc(ix->cols, (ix->ncols + 1) * sizeof *ix->cols);
        ix->cols[ix->ncols++] = wb_xstrdup(PQgetvalue(res, r, 2));
        prev_index = index;
        prev_ord = ord;
    }
}

/* Reads both catalogs queries for one side into tables[ntables] (zeroed by the caller). */
/*
 * Marks the target tables whose indexes backfill --defer-indexes dropped and has not
 * built again (<state_schema>.deferred_ddl, when it exists): their missing key
 * indexes are then expected, not a configuration error.
 */
static bool read_deferred(PGconn *conn, const wb_config *cfg, const char *const *params,
                          side_table *tables)
{
    bool exists = false;
    if (!state_table_exists(conn, cfg->state_schema, "deferred_ddl", &exists))
        return false;
    if (!exists)
        return true;
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT q.ord::int FROM unnest($1::text[], $2::text[]) WITH ORDINALITY "
                        "AS q(nsp, rel, ord) WHERE format('%I.%I', q.nsp, q.rel) IN "
                        "(SELECT table_name FROM ");
    pgconn_append_qualified(&sql, cfg->state_schema, "deferred_ddl");
    strbuf_append(&sql, " WHERE kind <> 'foreign key')");
    PGresult *res =
        pgconn_query(conn, "target: reading deferred indexes", sql.data, 2, params, NULL);
    strbuf_free(&sql);
    bool ok = res != NULL;
    for (int r = 0; ok && r < PQntuples(res); r++) {
        long ord = strtol(PQgetvalue(res, r, 0), NULL, 10);
        if (ord >= 1 && (size_t)ord <= cfg->ntables)
            tables[ord - 1].deferred = true;
    }
    PQclear(res);
    return ok;
}

/*
 * Counts, per table, the rows whose reference backfill wrote NULL to wait for a parent
 * on a reused key (<state_schema>.pending_refs of the slot, when it exists).
 */
static bool read_pending(PGconn *conn, const wb_config *cfg, side_table *tables)
{
    bool exists = false;
    if (!state_table_exists(conn, cfg->state_schema, "pending_refs", &exists))
        return false;
    if (!exists)
        return true;
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT table_name, count(*) FROM ");
    pgconn_append_qualified(&sql, cfg->state_schema, "pending_refs");
    strbuf_append(&sql, " WHERE slot = $1 GROUP BY 1");
    const char *params[1] = {cfg->slot};
    PGresult *res =
        pgconn_query(conn, "target: reading pending references", sql.data, 1, params, NULL);
    strbuf_free(&sql);
    bool ok = res != NULL;
    for (int r = 0; ok && r < PQntuples(res); r++) {
        for (size_t i = 0; i < cfg->ntables; i++) {
            if (strcmp(cfg->tables[i].source, PQgetvalue(res, r, 0)) == 0)
                tables[i].pending = strtol(PQgetvalue(res, r, 1), NULL, 10);
        }
    }
    PQclear(res);
    return ok;
}

static bool read_side(PGconn *conn, const char *side, const wb_config *cfg, bool source,
                      side_table *tables)
{
    strbuf schemas, names;
    strbuf_init(&schemas);
    strbuf_init(&names);
    append_array_literal(&schemas, cfg->tables, cfg->ntables, true, source);
    append_array_literal(&names, cfg->tables, cfg->ntables, false, source);
    const char *params[2] = {schemas.data, names.data};
    char what[64];
    snprintf(what, sizeof what, "%s: reading table columns from the catalog", side);
    PGresult *res = pgconn_query(conn, what, columns_sql, 2, params, NULL);
    bool ok = res != NULL;
    if (ok) {
        fill_columns(res, tables, cfg->ntables);
        PQclear(res);
        snprintf(what, sizeof what, "%s: reading unique indexes from the catalog", side);
        res = pgconn_query(conn, what, uniques_sql, 2, params, NULL);
        ok = res != NULL;
        if (ok)
            fill_uniques(res, tables, cfg->ntables);
        PQclear(res);
        if (ok && !source)
            ok = read_deferred(conn, cfg, params, tables) && read_pending(conn, cfg, tables);
    }
    strbuf_free(&schemas);
    strbuf_free(&names);
    return ok;
}

static void side_tables_free(side_table *tables, size_t n)
{
    for (size_t i = 0; tables != NULL && i < n; i++) {
        side_table *t = &tables[i];
        for (size_t c = 0; c < t->ncols; c++) {
            free(t->cols[c].name);
            free(t->cols[c].type);
            free(t->cols[c].typname);
            free(t->cols[c].fk_schema);
            free(t->cols[c].fk_name);
        }
        free(t->cols);
        for (size_t u = 0; u < t->nuniques; u++) {
            for (size_t c = 0; c < t->uniques[u].ncols; c++)
                free(t->uniques[u].cols[c]);
            free(t->uniques[u].cols);
        }
        free(t->uniques);
    }
    free(tables);
}

bool catalog_load(const wb_config *cfg, PGconn *source, PGconn *target, catalog *cat)
{
    memset(cat, 0, sizeof *cat);
    cat->ntables = cfg->ntables;
    cat->tables = wb_xcalloc(cfg->ntables > 0 ? cfg->ntables : 1, sizeof *cat->tables);
    for (size_t i = 0; i < cfg->ntables; i++) {
        cat->tables[i].cfg = &cfg->tables[i];
        cat->tables[i].index = (int)i;
    }
    if (cfg->ntables == 0)
        return true;
    side_table *src = wb_xcalloc(cfg->ntables, sizeof *src);
    side_table *dst = wb_xcalloc(cfg->ntables, sizeof *dst);
    bool ok =
        read_side(source, "source", cfg, true, src) && read_side(target, "target", cfg, false, dst);
    for (size_t i = 0; ok && i < cfg->ntables; i++)
        catalog_plan_table(cfg, cat, i, &src[i], &dst[i]);
    side_tables_free(src, cfg->ntables);
    side_tables_free(dst, cfg->ntables);
    return ok;
}

void catalog_free(catalog *cat)
{
    for (size_t i = 0; cat->tables != NULL && i < cat->ntables; i++) {
        table_plan *t = &cat->tables[i];
        for (size_t c = 0; c < t->ncolumns; c++) {
            free(t->columns[c].source);
            free(t->columns[c].target);
            free(t->columns[c].source_type);
            free(t->columns[c].target_type);
        }
        free(t->columns);
        free(t->key_columns);
    }
    free(cat->tables);
    for (size_t i = 0; i < cat->nproblems; i++) {
        free(cat->problems[i].table);
        free(cat->problems[i].message);
        free(cat->problems[i].hint);
    }
    free(cat->problems);
    memset(cat, 0, sizeof *cat);
}

size_t catalog_error_count(const catalog *cat)
{
    size_t n = 0;
    for (size_t i = 0; i < cat->nproblems; i++)
        n += cat->problems[i].severity == CATALOG_ERROR ? 1 : 0;
    return n;
}

void catalog_log_problems(const catalog *cat)
{
    for (size_t i = 0; i < cat->nproblems; i++) {
        const catalog_problem *p = &cat->problems[i];
        log_full(p->severity == CATALOG_ERROR ? LOG_ERROR : LOG_WARN, NULL, p->hint, "%s",
                 p->message);
    }
}

const column_plan *catalog_find_column(const table_plan *t, const char *source_column)
{
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (strcmp(t->columns[i].source, source_column) == 0)
            return &t->columns[i];
    }
    return NULL;
}
