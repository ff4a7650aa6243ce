/*
 * catalog_rules.c — turns what catalog.c read from both catalogs into a
 * table_plan per configured table, and records every problem found, each
 * naming its table and saying what to do.
 *
 * Rules (DESIGN.md): a UUID-mapped table needs one integer source key, a uuid
 * target_key and an integer, UNIQUE legacy_key in the target; an identity
 * table needs its key columns on both sides and a unique index on them in the
 * target; every keyed source table needs a replica identity that carries its
 * key (wal2json drops updates and deletes otherwise) and a keyless one needs
 * REPLICA IDENTITY FULL; references go into uuid target columns, and a
 * source FK into a UUID-mapped table must be listed as a reference; a source
 * column the target lacks is skipped with a warning; generated columns are
 * never written; types must be compatible (a warning when a cast through
 * text is needed, an error when clearly not); target columns that are NOT
 * NULL without a default must be fed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/catalog.h"
#include "common/catalog_internal.h"
#include "common/strbuf.h"

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

/* Widening order of the exact numeric types (0: not one of them). */
static int integer_rank(const side_column *c)
{
    static const char *const order[] = {"int2", "int4", "int8", "numeric"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(c->typname, order[i]) == 0)
            return i + 1;
    }
    return 0;
}

/* A widening conversion that cannot lose anything: int4 -> int8, varchar -> text, ... */
static bool is_widening(const side_column *s, const side_column *t)
{
    int sr = integer_rank(s), tr = integer_rank(t);
    if (sr > 0 && tr >= sr)
        return tr < 4 || t->typmod == -1; /* numeric(p,s) targets may overflow */
    if (strcmp(s->typname, "float4") == 0 && strcmp(t->typname, "float8") == 0)
        return true;
    return s->category == 'S' && strcmp(t->typname, "text") == 0;
}

/*
 * Whether a source type can travel into a target column of another type.
 * 0: compatible (same type, a wider typmod, a widening conversion),
 * 1: probably, with casts (warning), 2: clearly not (error).
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
    if (is_widening(s, t))
        return 0;
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

/* The key index is missing because backfill --defer-indexes dropped it for a while. */
static void deferred_key_warning(rule_ctx *x, const char *column)
{
    catalog_add_problem(x->cat, CATALOG_WARNING, x->t->source,
                        "Run `walbridge backfill --resume`: it finishes the copy and builds "
                        "the indexes again; the stream waits for that.",
                        "%s: %s has no unique index on (%s) now: backfill --defer-indexes "
                        "dropped it and has not built it again (%s.deferred_ddl)",
                        x->t->source, x->t->target, column, x->cfg->state_schema);
}

static void check_uuid_mapped(rule_ctx *x)
{
    const table_config *t = x->t;
    const char *tbl = t->source;
    const side_column *key = t->nkey == 1 ? find_col(x->src, t->key[0]) : NULL;
    if (t->nkey != 1) {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl,
            "Configure one integer \"key\", or drop \"legacy_key\" to map by identity.",
            "%s: a UUID-mapped table needs exactly one key column (has %zu)", tbl, t->nkey);
    } else if (key != NULL && !is_int_type(key->typname)) {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl,
            "Pick an integer key, or drop \"legacy_key\" to map the table by identity.",
            "%s: key column \"%s\" is %s; a UUID-mapped table needs a single integer "
            "(smallint, integer, bigint) key",
            tbl, key->name, key->type);
    }
    const side_column *tk = find_col(x->dst, t->target_key);
    if (tk == NULL) {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl, "Set \"target_key\" to the target's uuid key.",
            "%s: target table %s has no column \"%s\" (target_key)", tbl, t->target, t->target_key);
    } else if (strcmp(tk->typname, "uuid") != 0) {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl,
            "A UUID-mapped table's target_key must be uuid; map it by identity instead.",
            "%s: target_key %s.%s is %s, not uuid", tbl, t->target, tk->name, tk->type);
    }
    const side_column *lk = find_col(x->dst, t->legacy_key);
    if (lk == NULL) {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl,
            hint_printf(x,
                        "ALTER TABLE %s ADD COLUMN %s bigint; CREATE UNIQUE INDEX ON %s "
                        "(%s); then fill it from the original migration's mapping.",
                        t->target, t->legacy_key, t->target, t->legacy_key),
            "%s: target table %s has no column \"%s\" (legacy_key)", tbl, t->target, t->legacy_key);
        return;
    }
    if (!is_int_type(lk->typname) && strcmp(lk->typname, "numeric") != 0) {
        catalog_add_problem(x->cat, CATALOG_ERROR, tbl,
                            "Store legacy keys in a bigint (or integer) column.",
                            "%s: legacy_key %s.%s is %s, which cannot hold an integer key", tbl,
                            t->target, lk->name, lk->type);
    } else if (key != NULL && strcmp(key->typname, "int8") == 0 &&
               strcmp(lk->typname, "int8") != 0 && strcmp(lk->typname, "numeric") != 0) {
        catalog_add_problem(
            x->cat, CATALOG_WARNING, tbl, "Widen it to bigint.",
            "%s: legacy_key %s.%s is %s but the source key is bigint: large keys will "
            "not fit",
            tbl, t->target, lk->name, lk->type);
    }
    const char *cols[1] = {t->legacy_key};
    x->plan->target_legacy_unique = has_unique_on(x->dst, cols, 1);
    if (!x->plan->target_legacy_unique && x->dst->deferred) {
        deferred_key_warning(x, t->legacy_key);
    } else if (!x->plan->target_legacy_unique) {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl,
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
            catalog_add_problem(
                x->cat, CATALOG_ERROR, t->source,
                "Identity-mapped key columns must exist in the target under the same "
                "name (or their configured rename).",
                "%s: key column \"%s\" has no target column \"%s\" in %s", t->source, t->key[i],
                dst != NULL ? dst : "(excluded)", t->target);
        }
    }
    if (all && !has_unique_on(x->dst, targets, t->nkey)) {
        strbuf cols;
        strbuf_init(&cols);
        for (size_t i = 0; i < t->nkey; i++)
            strbuf_appendf(&cols, "%s%s", i > 0 ? ", " : "", targets[i]);
        if (x->dst->deferred)
            deferred_key_warning(x, cols.data);
        else
            catalog_add_problem(x->cat, CATALOG_ERROR, t->source,
                                hint_printf(x, "CREATE UNIQUE INDEX CONCURRENTLY ON %s (%s);",
                                            t->target, cols.data),
                                "%s: target table %s has no primary key or UNIQUE index on (%s)",
                                t->source, t->target, cols.data);
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
            catalog_add_problem(
                x->cat, CATALOG_ERROR, tbl, fix,
                "%s: a table without a key needs REPLICA IDENTITY FULL on the source "
                "(it has %s)",
                tbl,
                ri == 'n'   ? "NOTHING"
                : ri == 'i' ? "USING INDEX"
                            : "DEFAULT");
        return;
    }
    if (ri == 'n') {
        catalog_add_problem(
            x->cat, CATALOG_ERROR, tbl, fix,
            "%s: source table has REPLICA IDENTITY NOTHING: its updates and deletes "
            "never reach the stream",
            tbl);
        return;
    }
    if (ri == 'd' && !x->src->has_pk) {
        catalog_add_problem(x->cat, CATALOG_ERROR, tbl, fix,
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
            catalog_add_problem(
                x->cat, CATALOG_ERROR, tbl, fix,
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
            catalog_add_problem(
                x->cat, CATALOG_ERROR, t->source,
                "Fix the name in columns.exclude (a typo here would copy the column).",
                "%s: excluded column \"%s\" does not exist in the source", t->source,
                t->exclude[i]);
    }
    for (size_t i = 0; i < t->nrenames; i++) {
        const column_rename *rn = &t->renames[i];
        if (find_col(x->src, rn->source) == NULL)
            catalog_add_problem(x->cat, CATALOG_ERROR, t->source, "Fix the name in columns.rename.",
                                "%s: renamed column \"%s\" does not exist in the source", t->source,
                                rn->source);
        else if (find_col(x->dst, rn->target) == NULL)
            catalog_add_problem(x->cat, CATALOG_ERROR, t->source, "Fix the name in columns.rename.",
                                "%s: column \"%s\" is renamed to \"%s\", which %s does not have",
                                t->source, rn->source, rn->target, t->target);
    }
    for (size_t i = 0; i < t->nrefs; i++) {
        const table_reference *ref = &t->refs[i];
        const char *dst_name = config_target_column(t, ref->column);
        const side_column *dst = find_col(x->dst, dst_name);
        if (find_col(x->src, ref->column) == NULL)
            catalog_add_problem(
                x->cat, CATALOG_ERROR, t->source, "Fix the column name in references.",
                "%s: reference column \"%s\" does not exist in the source", t->source, ref->column);
        if (dst == NULL)
            catalog_add_problem(x->cat, CATALOG_ERROR, t->source,
                                "The target needs a uuid column of the same name (or its rename).",
                                "%s: reference column \"%s\" does not exist in target table %s",
                                t->source, dst_name != NULL ? dst_name : ref->column, t->target);
        else if (strcmp(dst->typname, "uuid") != 0)
            catalog_add_problem(x->cat, CATALOG_ERROR, t->source,
                                "A reference to a UUID-mapped table receives the parent's uuid.",
                                "%s: reference column %s.%s is %s, not uuid", t->source, t->target,
                                dst->name, dst->type);
    }
    if (t->kind != TABLE_KEYLESS)
        for (size_t i = 0; i < t->nkey; i++) {
            if (find_col(x->src, t->key[i]) == NULL)
                catalog_add_problem(x->cat, CATALOG_ERROR, t->source, "Fix \"key\" in the config.",
                                    "%s: key column \"%s\" does not exist in the source", t->source,
                                    t->key[i]);
        }
    if (t->deletes == DELETES_SOFT && find_col(x->dst, t->soft_delete_column) == NULL)
        catalog_add_problem(x->cat, CATALOG_ERROR, t->source,
                            hint_printf(x, "ALTER TABLE %s ADD COLUMN %s timestamptz;", t->target,
                                        t->soft_delete_column),
                            "%s: soft-delete column \"%s\" does not exist in target table %s",
                            t->source, t->soft_delete_column, t->target);
}

/* A source FK into a configured UUID-mapped table that "references" does not list. */
static bool check_unlisted_reference(rule_ctx *x, const side_column *sc)
{
    if (sc->fk_schema == NULL)
        return false;
    int parent = config_find_source(x->cfg, sc->fk_schema, sc->fk_name);
    if (parent < 0 || x->cfg->tables[parent].kind != TABLE_UUID_MAPPED)
        return false;
    const char *parent_name = x->cfg->tables[parent].source;
    catalog_add_problem(
        x->cat, CATALOG_ERROR, x->t->source,
        hint_printf(x, "Add \"references\": {\"%s\": \"%s\"} to this table.", sc->name,
                    parent_name),
        "%s: column \"%s\" is a foreign key to UUID-mapped %s but is not listed in "
        "references, so it would carry the legacy integer instead of the parent's uuid",
        x->t->source, sc->name, parent_name);
    return true;
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
            catalog_add_problem(x->cat, CATALOG_WARNING, t->source,
                                "Add the column to the target, or list it in columns.exclude.",
                                "%s: target table %s has no column \"%s\"; source column \"%s\" is "
                                "skipped",
                                t->source, t->target, dst_name, sc->name);
        else if (dc != NULL && sc->generated != dc->generated)
            catalog_add_problem(
                x->cat, CATALOG_WARNING, t->source, NULL,
                "%s: column \"%s\" is generated in the %s only; it is never written", t->source,
                sc->name, sc->generated ? "source" : "target");
        return;
    }
    cp->target = wb_xstrdup(dc->name);
    cp->target_type = wb_xstrdup(dc->type);
    cp->target_builtin = dc->builtin;
    if (cp->role == COLROLE_DATA && check_unlisted_reference(x, sc))
        return; /* its type mismatch is the same mistake */
    if (cp->role != COLROLE_DATA && !(cp->role == COLROLE_KEY && t->kind == TABLE_IDENTITY))
        return; /* keys into legacy_key and references were checked above */
    int distance = type_distance(sc, dc);
    if (distance == 1)
        catalog_add_problem(x->cat, CATALOG_WARNING, t->source,
                            "Values are converted through their text form; check they fit.",
                            "%s: column \"%s\" is %s in the source but %s in the target", t->source,
                            sc->name, sc->type, dc->type);
    else if (distance == 2)
        catalog_add_problem(
            x->cat, CATALOG_ERROR, t->source,
            "Change the target column type, rename the column, or exclude it.",
            "%s: column \"%s\" is %s in the source but %s in the target: incompatible", t->source,
            sc->name, sc->type, dc->type);
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
            catalog_add_problem(
                x->cat, CATALOG_ERROR, t->source,
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
    if (x->dst->pending > 0)
        catalog_add_problem(x->cat, CATALOG_WARNING, t->source,
                            "Backfill the parent table; any backfill run that includes this "
                            "table then re-points them.",
                            "%s: %ld row(s) of %s reference a parent row not in the target yet "
                            "(a key reused after a key change): their reference is NULL until "
                            "backfill re-points it (%s.pending_refs)",
                            t->source, x->dst->pending, t->target, x->cfg->state_schema);
    if (x->src->relkind == 'p')
        catalog_add_problem(
            x->cat, CATALOG_ERROR, t->source, "Configure each partition as its own table.",
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
        catalog_add_problem(
            cat, CATALOG_ERROR, t->source,
            source ? "Check the table name in the config."
                   : "Create it in the target (the original migration's schema), or fix "
                     "\"target\" in the config.",
            "%s: %s table %s does not exist", t->source, which, name);
        return true;
    }
    if (side->relkind != 'r' && side->relkind != 'p') {
        catalog_add_problem(cat, CATALOG_ERROR, t->source, "Map a plain table.",
                            "%s: %s relation %s is not a table (relkind '%c')", t->source, which,
                            name, side->relkind);
        return true;
    }
    return false;
}

void catalog_plan_table(const wb_config *cfg, catalog *cat, size_t index, const side_table *src,
                        const side_table *dst)
{
    const table_config *t = &cfg->tables[index];
    bool missing = table_missing(cat, t, src, true);
    missing = table_missing(cat, t, dst, false) || missing;
    if (missing)
        return;
    rule_ctx x = {
        .cfg = cfg, .cat = cat, .t = t, .src = src, .dst = dst, .plan = &cat->tables[index]};
    strbuf_init(&x.hint);
    plan_table(&x);
    strbuf_free(&x.hint);
}
