/*
 * catalog.c — builds the per-table column plan from the config and the two
 * databases' catalogs, and records every problem it finds on the way.
 *
 * Two queries per side, for all configured tables at once (the table names
 * travel as text[] parameters): one row per column with the table's relkind,
 * replica identity, primary-key and replica-identity membership and any
 * single-column foreign key; and one row per key column of every usable
 * UNIQUE index (valid, not partial, no expressions; what ON CONFLICT needs).
 * The rest is plain C over those rows, so a 50-table config against a remote
 * Supabase costs four round trips.
 *
 * Rules (DESIGN.md): a UUID-mapped table needs one integer source key, a uuid
 * target_key and an integer, UNIQUE legacy_key in the target; an identity
 * table needs its key columns on both sides and a unique index on them in the
 * target; every keyed source table needs a replica identity that carries its
 * key (wal2json drops updates and deletes otherwise) and a keyless one needs
 * REPLICA IDENTITY FULL; references go into uuid target columns; a source
 * column the target lacks is skipped with a warning; generated columns are
 * never written.  Every problem names the table and says what to do.
 */
#include "common/catalog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

/* One column of one table, as one side's catalog describes it. */
typedef struct side_column {
    char *name;
    char *type;    /* format_type(), e.g. "character varying(40)" */
    char *typname; /* pg_type.typname, e.g. "int8", "uuid" */
    char category; /* pg_type.typcategory */
    int typmod;    /* pg_attribute.atttypmod, -1 when unconstrained */
    bool generated;
    bool in_pk;
    bool in_replident; /* member of the REPLICA IDENTITY USING INDEX index */
    bool needs_value;  /* NOT NULL, no default, not identity or generated */
    char *fk_schema;   /* single-column FK target, or NULL */
    char *fk_name;
} side_column;

/* A usable unique index: its key column names. */
typedef struct side_index {
    char **cols;
    size_t ncols;
} side_index;

typedef struct side_table {
    bool exists;
    char relkind;
    char replident;
    bool has_pk;
    side_column *cols;
    size_t ncols;
    side_index *uniques;
    size_t nuniques;
} side_table;

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
    " a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''"
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

static void add_problem(catalog *cat, catalog_severity sev, const char *table, const char *hint,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_problem(catalog *cat, catalog_severity sev, const char *table, const char *hint,
                        const char *fmt, ...)
{
    cat->problems = wb_xrealloc(cat->problems, (cat->nproblems + 1) * sizeof *cat->problems);
    catalog_problem *p = &cat->problems[cat->nproblems++];
    strbuf msg;
    strbuf_init(&msg);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(&msg, fmt, ap);
    va_end(ap);
    p->severity = sev;
    p->table = table != NULL ? wb_xstrdup(table) : NULL;
    p->message = strbuf_detach(&msg);
    p->hint = hint != NULL ? wb_xstrdup(hint) : NULL;
    strbuf_free(&msg);
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

/* ---- small lookups ----------------------------------------------------- */

static const side_column *find_col(const side_table *t, const char *name)
{
    for (size_t i = 0; name != NULL && i < t->ncols; i++) {
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    }
    return NULL;
}

static bool is_int_type(const char *typname)
{
    return strcmp(typname, "int2") == 0 || strcmp(typname, "int4") == 0 ||
           strcmp(typname, "int8") == 0;
}

static bool in_list(char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0)
            return true;
    }
    return false;
}

/* True when the target has a usable unique index on exactly these columns. */
static bool has_unique_on(const side_table *t, const char *const *cols, size_t ncols)
{
    for (size_t u = 0; u < t->nuniques; u++) {
        const side_index *ix = &t->uniques[u];
        if (ix->ncols != ncols)
            continue;
        size_t matched = 0;
        for (size_t c = 0; c < ncols; c++)
            matched += in_list(ix->cols, ix->ncols, cols[c]) ? 1 : 0;
        if (matched == ncols)
            return true;
    }
    return false;
}

static int reference_parent(const table_config *t, const char *column)
{
    for (size_t i = 0; i < t->nrefs; i++) {
        if (strcmp(t->refs[i].column, column) == 0)
            return t->refs[i].parent_index;
    }
    return -1;
}

static bool is_key_column(const table_config *t, const char *column)
{
    return t->key != NULL && in_list(t->key, t->nkey, column);
}

/*
 * Whether a source type can travel into a target column of another type.
 * 0: compatible (same type, or a typmod difference), 1: probably, with
 * casts (warning), 2: clearly not (error).
 */
static int type_distance(const side_column *s, const side_column *t)
{
    if (strcmp(s->type, t->type) == 0)
        return 0;
    if (strcmp(s->typname, t->typname) == 0) {
        /* Only the typmod differs: fine when the target is at least as wide. */
        if (t->typmod == -1)
            return 0;
        if (s->typmod == -1)
            return 1;
        if (strcmp(s->typname, "numeric") == 0) {
            int sp = ((s->typmod - 4) >> 16) & 0xffff, ss = (s->typmod - 4) & 0xffff;
            int tp = ((t->typmod - 4) >> 16) & 0xffff, ts = (t->typmod - 4) & 0xffff;
            return tp - ts >= sp - ss && ts >= ss ? 0 : 1;
        }
        return t->typmod >= s->typmod ? 0 : 1; /* varchar(40) into varchar(80) */
    }
    if (t->category == 'S')
        return 1; /* anything has a text form */
    if (s->category == 'S' && t->category == 'E')
        return 1; /* text into an enum: values must be labels */
    if (s->category == 'U' || t->category == 'U') {
        bool json_pair = (strcmp(s->typname, "json") == 0 || strcmp(s->typname, "jsonb") == 0) &&
                         (strcmp(t->typname, "json") == 0 || strcmp(t->typname, "jsonb") == 0);
        return json_pair ? 1 : 2;
    }
    return s->category == t->category ? 1 : 2;
}

/* ---- rules ------------------------------------------------------------- */

typedef struct rule_ctx {
    const wb_config *cfg;
    catalog *cat;
    const table_config *t;
    const side_table *src;
    const side_table *dst;
    table_plan *plan;
    strbuf hint; /* scratch for hints that quote names */
} rule_ctx;

static const char *hint_printf(rule_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *hint_printf(rule_ctx *x, const char *fmt, ...)
{
    strbuf_reset(&x->hint);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(&x->hint, fmt, ap);
    va_end(ap);
    return x->hint.data;
}

static void check_uuid_mapped(rule_ctx *x)
{
    const table_config *t = x->t;
    const char *tbl = t->source;
    const side_column *key = t->nkey == 1 ? find_col(x->src, t->key[0]) : NULL;
    if (t->nkey != 1) {
        add_problem(x->cat, CATALOG_ERROR, tbl,
                    "Configure one integer \"key\", or drop \"legacy_key\" to map by identity.",
                    "%s: a UUID-mapped table needs exactly one key column (has %zu)", tbl, t->nkey);
    } else if (key != NULL && !is_int_type(key->typname)) {
        add_problem(x->cat, CATALOG_ERROR, tbl,
                    "Pick an integer key, or drop \"legacy_key\" to map the table by identity.",
                    "%s: key column \"%s\" is %s; a UUID-mapped table needs a single integer "
                    "(smallint, integer, bigint) key",
                    tbl, key->name, key->type);
    }
    const side_column *tk = find_col(x->dst, t->target_key);
    if (tk == NULL) {
        add_problem(x->cat, CATALOG_ERROR, tbl, "Set \"target_key\" to the target's uuid key.",
                    "%s: target table %s has no column \"%s\" (target_key)", tbl, t->target,
                    t->target_key);
    } else if (strcmp(tk->typname, "uuid") != 0) {
        add_problem(x->cat, CATALOG_ERROR, tbl,
                    "A UUID-mapped table's target_key must be uuid; map it by identity instead.",
                    "%s: target_key %s.%s is %s, not uuid", tbl, t->target, tk->name, tk->type);
    }
    const side_column *lk = find_col(x->dst, t->legacy_key);
    if (lk == NULL) {
        add_problem(x->cat, CATALOG_ERROR, tbl,
                    hint_printf(x,
                                "ALTER TABLE %s ADD COLUMN %s bigint; CREATE UNIQUE INDEX ON %s "
                                "(%s); then fill it from the original migration's mapping.",
                                t->target, t->legacy_key, t->target, t->legacy_key),
                    "%s: target table %s has no column \"%s\" (legacy_key)", tbl, t->target,
                    t->legacy_key);
        return;
    }
    if (!is_int_type(lk->typname) && strcmp(lk->typname, "numeric") != 0) {
        add_problem(x->cat, CATALOG_ERROR, tbl,
                    "Store legacy keys in a bigint (or integer) column.",
                    "%s: legacy_key %s.%s is %s, which cannot hold an integer key", tbl, t->target,
                    lk->name, lk->type);
    } else if (key != NULL && strcmp(key->typname, "int8") == 0 &&
               strcmp(lk->typname, "int8") != 0 && strcmp(lk->typname, "numeric") != 0) {
        add_problem(x->cat, CATALOG_WARNING, tbl, "Widen it to bigint.",
                    "%s: legacy_key %s.%s is %s but the source key is bigint: large keys will "
                    "not fit",
                    tbl, t->target, lk->name, lk->type);
    }
    const char *cols[1] = {t->legacy_key};
    x->plan->target_legacy_unique = has_unique_on(x->dst, cols, 1);
    if (!x->plan->target_legacy_unique) {
        add_problem(x->cat, CATALOG_ERROR, tbl,
                    hint_printf(x, "CREATE UNIQUE INDEX CONCURRENTLY ON %s (%s);", t->target,
                                t->legacy_key),
                    "%s: legacy_key %s.%s has no UNIQUE index (needed to find and upsert rows "
                    "by legacy key)",
                    tbl, t->target, t->legacy_key);
    }
}

static void check_identity_keys(rule_ctx *x)
{
    const table_config *t = x->t;
    const char **targets = wb_xcalloc(t->nkey, sizeof *targets);
    bool all = true;
    for (size_t i = 0; i < t->nkey; i++) {
        const char *dst = config_target_column(t, t->key[i]);
        targets[i] = dst;
        if (dst == NULL || find_col(x->dst, dst) == NULL) {
            all = false;
            add_problem(x->cat, CATALOG_ERROR, t->source,
                        "Identity-mapped key columns must exist in the target under the same "
                        "name (or their configured rename).",
                        "%s: key column \"%s\" has no target column \"%s\" in %s", t->source,
                        t->key[i], dst != NULL ? dst : "(excluded)", t->target);
        }
    }
    if (all && !has_unique_on(x->dst, targets, t->nkey)) {
        strbuf cols;
        strbuf_init(&cols);
        for (size_t i = 0; i < t->nkey; i++)
            strbuf_appendf(&cols, "%s%s", i > 0 ? ", " : "", targets[i]);
        add_problem(
            x->cat, CATALOG_ERROR, t->source,
            hint_printf(x, "CREATE UNIQUE INDEX CONCURRENTLY ON %s (%s);", t->target, cols.data),
            "%s: target table %s has no primary key or UNIQUE index on (%s)", t->source, t->target,
            cols.data);
        strbuf_free(&cols);
    }
    free(targets);
}

static void check_replica_identity(rule_ctx *x)
{
    const table_config *t = x->t;
    const char *tbl = t->source;
    char ri = x->src->replident;
    const char *fix = hint_printf(x,
                                  "ALTER TABLE %s REPLICA IDENTITY FULL; (or add a primary key): "
                                  "wal2json drops updates and deletes otherwise.",
                                  tbl);
    if (t->kind == TABLE_KEYLESS) {
        if (ri != 'f')
            add_problem(x->cat, CATALOG_ERROR, tbl, fix,
                        "%s: a table without a key needs REPLICA IDENTITY FULL on the source "
                        "(it has %s)",
                        tbl,
                        ri == 'n'   ? "NOTHING"
                        : ri == 'i' ? "USING INDEX"
                                    : "DEFAULT");
        return;
    }
    if (ri == 'n') {
        add_problem(x->cat, CATALOG_ERROR, tbl, fix,
                    "%s: source table has REPLICA IDENTITY NOTHING: its updates and deletes "
                    "never reach the stream",
                    tbl);
        return;
    }
    if (ri == 'd' && !x->src->has_pk) {
        add_problem(x->cat, CATALOG_ERROR, tbl, fix,
                    "%s: source table has REPLICA IDENTITY DEFAULT but no primary key: its "
                    "updates and deletes never reach the stream",
                    tbl);
        return;
    }
    if (ri == 'f')
        return;
    for (size_t i = 0; i < t->nkey; i++) {
        const side_column *c = find_col(x->src, t->key[i]);
        if (c == NULL)
            continue;
        bool carried = ri == 'd' ? c->in_pk : c->in_replident;
        if (!carried)
            add_problem(x->cat, CATALOG_ERROR, tbl, fix,
                        "%s: key column \"%s\" is not part of the source's replica identity (%s), "
                        "so deletes cannot be matched",
                        tbl, c->name, ri == 'd' ? "primary key" : "index");
    }
}

/* Column naming problems in the config's exclude / rename / references lists. */
static void check_config_columns(rule_ctx *x)
{
    const table_config *t = x->t;
    for (size_t i = 0; i < t->nexclude; i++) {
        if (find_col(x->src, t->exclude[i]) == NULL)
            add_problem(x->cat, CATALOG_ERROR, t->source,
                        "Fix the name in columns.exclude (a typo here would copy the column).",
                        "%s: excluded column \"%s\" does not exist in the source", t->source,
                        t->exclude[i]);
    }
    for (size_t i = 0; i < t->nrenames; i++) {
        const column_rename *rn = &t->renames[i];
        if (find_col(x->src, rn->source) == NULL)
            add_problem(x->cat, CATALOG_ERROR, t->source, "Fix the name in columns.rename.",
                        "%s: renamed column \"%s\" does not exist in the source", t->source,
                        rn->source);
        else if (find_col(x->dst, rn->target) == NULL)
            add_problem(x->cat, CATALOG_ERROR, t->source, "Fix the name in columns.rename.",
                        "%s: column \"%s\" is renamed to \"%s\", which %s does not have", t->source,
                        rn->source, rn->target, t->target);
    }
    for (size_t i = 0; i < t->nrefs; i++) {
        const table_reference *ref = &t->refs[i];
        const char *dst_name = config_target_column(t, ref->column);
        const side_column *dst = find_col(x->dst, dst_name);
        if (find_col(x->src, ref->column) == NULL)
            add_problem(x->cat, CATALOG_ERROR, t->source, "Fix the column name in references.",
                        "%s: reference column \"%s\" does not exist in the source", t->source,
                        ref->column);
        if (dst == NULL)
            add_problem(x->cat, CATALOG_ERROR, t->source,
                        "The target needs a uuid column of the same name (or its rename).",
                        "%s: reference column \"%s\" does not exist in target table %s", t->source,
                        dst_name != NULL ? dst_name : ref->column, t->target);
        else if (strcmp(dst->typname, "uuid") != 0)
            add_problem(x->cat, CATALOG_ERROR, t->source,
                        "A reference to a UUID-mapped table receives the parent's uuid.",
                        "%s: reference column %s.%s is %s, not uuid", t->source, t->target,
                        dst->name, dst->type);
    }
    if (t->kind != TABLE_KEYLESS)
        for (size_t i = 0; i < t->nkey; i++) {
            if (find_col(x->src, t->key[i]) == NULL)
                add_problem(x->cat, CATALOG_ERROR, t->source, "Fix \"key\" in the config.",
                            "%s: key column \"%s\" does not exist in the source", t->source,
                            t->key[i]);
        }
    if (t->deletes == DELETES_SOFT && find_col(x->dst, t->soft_delete_column) == NULL)
        add_problem(x->cat, CATALOG_ERROR, t->source,
                    hint_printf(x, "ALTER TABLE %s ADD COLUMN %s timestamptz;", t->target,
                                t->soft_delete_column),
                    "%s: soft-delete column \"%s\" does not exist in target table %s", t->source,
                    t->soft_delete_column, t->target);
}

/* A source FK into a configured UUID-mapped table that "references" does not list. */
static void check_unlisted_reference(rule_ctx *x, const side_column *sc)
{
    if (sc->fk_schema == NULL)
        return;
    int parent = config_find_source(x->cfg, sc->fk_schema, sc->fk_name);
    if (parent < 0 || x->cfg->tables[parent].kind != TABLE_UUID_MAPPED)
        return;
    const char *parent_name = x->cfg->tables[parent].source;
    add_problem(x->cat, CATALOG_ERROR, x->t->source,
                hint_printf(x, "Add \"references\": {\"%s\": \"%s\"} to this table.", sc->name,
                            parent_name),
                "%s: column \"%s\" is a foreign key to UUID-mapped %s but is not listed in "
                "references, so it would carry the legacy integer instead of the parent's uuid",
                x->t->source, sc->name, parent_name);
}

/* Builds the plan of one source column and reports its problems. */
static void plan_column(rule_ctx *x, const side_column *sc, column_plan *cp)
{
    const table_config *t = x->t;
    bool key = t->kind != TABLE_KEYLESS && is_key_column(t, sc->name);
    int parent = reference_parent(t, sc->name);
    cp->source = wb_xstrdup(sc->name);
    cp->source_type = wb_xstrdup(sc->type);
    cp->ref_parent = -1;
    cp->role = COLROLE_DATA;
    const char *dst_name = config_target_column(t, sc->name);
    if (key && t->kind == TABLE_UUID_MAPPED) {
        cp->role = COLROLE_KEY;
        dst_name = t->legacy_key;
    } else if (parent >= 0) {
        /* An identity key column may be a reference too (order_tags.order_id): the value
         * is remapped, and key_columns still lists it. */
        cp->role = COLROLE_REFERENCE;
        cp->ref_parent = parent;
    } else if (key) {
        cp->role = COLROLE_KEY;
    }
    const side_column *dc = find_col(x->dst, dst_name);
    cp->generated = sc->generated || (dc != NULL && dc->generated);
    if (dst_name == NULL || dc == NULL || cp->generated) {
        cp->skipped = true;
        bool renamed = dst_name != NULL && strcmp(dst_name, sc->name) != 0;
        if (dst_name != NULL && dc == NULL && cp->role == COLROLE_DATA && !renamed)
            add_problem(x->cat, CATALOG_WARNING, t->source,
                        "Add the column to the target, or list it in columns.exclude.",
                        "%s: target table %s has no column \"%s\"; source column \"%s\" is "
                        "skipped",
                        t->source, t->target, dst_name, sc->name);
        else if (dc != NULL && sc->generated != dc->generated)
            add_problem(x->cat, CATALOG_WARNING, t->source, NULL,
                        "%s: column \"%s\" is generated in the %s only; it is never written",
                        t->source, sc->name, sc->generated ? "source" : "target");
        return;
    }
    cp->target = wb_xstrdup(dc->name);
    cp->target_type = wb_xstrdup(dc->type);
    if (cp->role == COLROLE_DATA)
        check_unlisted_reference(x, sc);
    if (cp->role != COLROLE_DATA && !(cp->role == COLROLE_KEY && t->kind == TABLE_IDENTITY))
        return; /* keys into legacy_key and references were checked above */
    int distance = type_distance(sc, dc);
    if (distance == 1)
        add_problem(x->cat, CATALOG_WARNING, t->source,
                    "Values are converted through their text form; check they fit.",
                    "%s: column \"%s\" is %s in the source but %s in the target", t->source,
                    sc->name, sc->type, dc->type);
    else if (distance == 2)
        add_problem(x->cat, CATALOG_ERROR, t->source,
                    "Change the target column type, rename the column, or exclude it.",
                    "%s: column \"%s\" is %s in the source but %s in the target: incompatible",
                    t->source, sc->name, sc->type, dc->type);
}

/* Target columns that are NOT NULL without a default but receive nothing. */
static void check_unfed_target_columns(rule_ctx *x)
{
    const table_config *t = x->t;
    for (size_t i = 0; i < x->dst->ncols; i++) {
        const side_column *dc = &x->dst->cols[i];
        if (!dc->needs_value)
            continue;
        bool fed = (t->target_key != NULL && strcmp(dc->name, t->target_key) == 0) ||
                   (t->soft_delete_column != NULL && strcmp(dc->name, t->soft_delete_column) == 0);
        for (size_t c = 0; !fed && c < x->plan->ncolumns; c++) {
            const column_plan *cp = &x->plan->columns[c];
            fed = cp->target != NULL && strcmp(cp->target, dc->name) == 0;
        }
        if (!fed)
            add_problem(x->cat, CATALOG_ERROR, t->source,
                        hint_printf(x,
                                    "Give %s.%s a DEFAULT, make it nullable, or map a source "
                                    "column to it (columns.rename).",
                                    t->target, dc->name),
                        "%s: target column %s.%s is NOT NULL without a default, and no source "
                        "column feeds it: every insert would fail",
                        t->source, t->target, dc->name);
    }
}

static void plan_table(rule_ctx *x)
{
    table_plan *plan = x->plan;
    const table_config *t = x->t;
    plan->replica_identity = x->src->replident;
    plan->source_has_pk = x->src->has_pk;
    check_config_columns(x);
    if (t->kind == TABLE_UUID_MAPPED)
        check_uuid_mapped(x);
    else if (t->kind == TABLE_IDENTITY)
        check_identity_keys(x);
    check_replica_identity(x);

    plan->columns = wb_xcalloc(x->src->ncols > 0 ? x->src->ncols : 1, sizeof *plan->columns);
    plan->ncolumns = x->src->ncols;
    for (size_t i = 0; i < x->src->ncols; i++)
        plan_column(x, &x->src->cols[i], &plan->columns[i]);
    check_unfed_target_columns(x);
    if (x->src->relkind == 'p')
        add_problem(x->cat, CATALOG_ERROR, t->source, "Configure each partition as its own table.",
                    "%s: source table is partitioned: wal2json reports its changes under the "
                    "partitions' names",
                    t->source);
    if (t->kind == TABLE_KEYLESS || t->nkey == 0)
        return;
    plan->key_columns = wb_xcalloc(t->nkey, sizeof *plan->key_columns);
    for (size_t k = 0; k < t->nkey; k++) {
        plan->key_columns[k] = -1;
        for (size_t i = 0; i < plan->ncolumns; i++) {
            if (strcmp(plan->columns[i].source, t->key[k]) == 0)
                plan->key_columns[k] = (int)i;
        }
        if (plan->key_columns[k] >= 0)
            plan->nkey_columns++;
    }
}

static bool table_missing(catalog *cat, const table_config *t, const side_table *side, bool source)
{
    const char *which = source ? "source" : "target";
    const char *name = source ? t->source : t->target;
    if (!side->exists) {
        add_problem(cat, CATALOG_ERROR, t->source,
                    source ? "Check the table name in the config."
                           : "Create it in the target (the original migration's schema), or fix "
                             "\"target\" in the config.",
                    "%s: %s table %s does not exist", t->source, which, name);
        return true;
    }
    if (side->relkind != 'r' && side->relkind != 'p') {
        add_problem(cat, CATALOG_ERROR, t->source, "Map a plain table.",
                    "%s: %s relation %s is not a table (relkind '%c')", t->source, which, name,
                    side->relkind);
        return true;
    }
    return false;
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
    rule_ctx x = {.cfg = cfg, .cat = cat};
    strbuf_init(&x.hint);
    for (size_t i = 0; ok && i < cfg->ntables; i++) {
        const table_config *t = &cfg->tables[i];
        bool missing = table_missing(cat, t, &src[i], true);
        missing = table_missing(cat, t, &dst[i], false) || missing;
        if (missing)
            continue;
        x.t = t;
        x.src = &src[i];
        x.dst = &dst[i];
        x.plan = &cat->tables[i];
        plan_table(&x);
    }
    strbuf_free(&x.hint);
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
