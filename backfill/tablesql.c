/*
 * tablesql.c — per-table layout and the SQL text of backfill and verify
 * (see tablesql.h for the shapes).  Pure string building: identifiers go
 * through pgconn_append_ident, type names come from format_type() in the
 * catalogs, and no value is ever written into the SQL.
 */
#include "backfill/tablesql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/apply_sql.h"
#include "common/pgconn.h"

static bool type_is_integer(const char *type)
{
    return type != NULL && (strcmp(type, "integer") == 0 || strcmp(type, "bigint") == 0 ||
                            strcmp(type, "smallint") == 0);
}

static int reference_parent(const table_config *t, const char *column)
{
    for (size_t i = 0; i < t->nrefs; i++) {
        if (strcmp(t->refs[i].column, column) == 0)
            return t->refs[i].parent_index;
    }
    return -1;
}

static bool plan_column_is_key(const table_plan *plan, size_t col)
{
    for (size_t i = 0; i < plan->nkey_columns; i++) {
        if (plan->key_columns[i] == (int)col)
            return true;
    }
    return false;
}

bool table_layout_init(table_layout *lay, const wb_config *cfg, const table_plan *plan, char *err,
                       size_t errlen)
{
    const table_config *t = plan->cfg;
    memset(lay, 0, sizeof *lay);
    lay->cfg = cfg;
    lay->table = t;
    lay->cols = wb_xcalloc(plan->ncolumns > 0 ? plan->ncolumns : 1, sizeof *lay->cols);
    for (size_t i = 0; i < plan->ncolumns; i++) {
        const column_plan *c = &plan->columns[i];
        bool is_key = t->kind != TABLE_KEYLESS && plan_column_is_key(plan, i);
        if (!is_key && (c->skipped || c->generated))
            continue;
        layout_column *lc = &lay->cols[lay->ncols++];
        lc->source = c->source;
        lc->source_type = c->source_type;
        lc->is_key = is_key;
        lc->parent = reference_parent(t, c->source);
        if (is_key && t->kind == TABLE_UUID_MAPPED) {
            lc->target = t->legacy_key;
            lc->target_type = c->source_type;
        } else {
            lc->target = c->skipped || c->generated ? NULL
                         : c->target != NULL        ? c->target
                                                    : config_target_column(t, c->source);
            lc->target_type = c->target_type != NULL ? c->target_type : c->source_type;
            lc->target_builtin = c->target_type != NULL && c->target_builtin;
        }
        if (lc->target == NULL) {
            snprintf(err, errlen, "%s: key column \"%s\" has no target column", t->source,
                     c->source);
            table_layout_free(lay);
            return false;
        }
    }
    if (t->kind == TABLE_KEYLESS) {
        lay->nkey = 1;
        lay->key_col[0] = -1;
        lay->key_type[0] = KEYSET_KEY_TEXT;
    } else {
        if (plan->nkey_columns == 0 || plan->nkey_columns > KEYSET_MAX_KEY) {
            snprintf(err, errlen, "%s: key has %zu columns (1..%d supported)", t->source,
                     plan->nkey_columns, KEYSET_MAX_KEY);
            table_layout_free(lay);
            return false;
        }
        for (size_t k = 0; k < plan->nkey_columns; k++) {
            const char *name = plan->columns[plan->key_columns[k]].source;
            int found = -1;
            for (size_t j = 0; j < lay->ncols; j++) {
                if (strcmp(lay->cols[j].source, name) == 0)
                    found = (int)j;
            }
            if (found < 0) {
                snprintf(err, errlen, "%s: key column \"%s\" is not copied", t->source, name);
                table_layout_free(lay);
                return false;
            }
            lay->key_col[k] = found;
            lay->key_type[k] =
                type_is_integer(lay->cols[found].source_type) ? KEYSET_KEY_INT : KEYSET_KEY_TEXT;
        }
        lay->nkey = plan->nkey_columns;
    }
    if (lay->ncols == 0) {
        snprintf(err, errlen, "%s: no column is copied", t->source);
        table_layout_free(lay);
        return false;
    }
    lay->spec.types = lay->key_type;
    lay->spec.nkey = lay->nkey;
    lay->spec.allow_duplicates = t->kind == TABLE_KEYLESS;
    lay->hash = TABLESQL_HASH_RECORD;
    return true;
}

void table_layout_free(table_layout *lay)
{
    free(lay->cols);
    lay->cols = NULL;
    lay->ncols = 0;
}

tablesql_hash_kind tablesql_hash_for_servers(int source_version, int target_version)
{
    int oldest = source_version < target_version ? source_version : target_version;
    if (oldest >= 140000)
        return TABLESQL_HASH_RECORD;
    if (oldest >= 110000)
        return TABLESQL_HASH_TEXT;
    return TABLESQL_HASH_MD5;
}

size_t tablesql_hash_field(const table_layout *lay)
{
    return lay->table->kind == TABLE_KEYLESS ? 0 : lay->nkey;
}

size_t tablesql_row_field(const table_layout *lay)
{
    return tablesql_hash_field(lay) + 1;
}

/* ---------------------------------------------------------------- expressions */

static void append_alias_col(strbuf *out, const char *alias, const char *column)
{
    strbuf_append(out, alias);
    strbuf_append_char(out, '.');
    pgconn_append_ident(out, column);
}

/*
 * A data column whose target type differs from its source type is compared as
 * the target holds it when that type is built in (the source has it too): the
 * source value goes through its text form into the target type, as the copy
 * does (json into jsonb orders keys and drops whitespace; numeric(10,2) into
 * numeric(12,4) gains two zeros).  Any other differing column is compared as
 * the source type (the target casts to it: text into a source enum).
 */
static bool compared_as_target(const layout_column *c)
{
    return !c->is_key && c->parent < 0 && c->target_builtin &&
           strcmp(c->source_type, c->target_type) != 0;
}

/* The type layout column c is compared as (compared_as_target). */
static const char *compared_type(const layout_column *c)
{
    return compared_as_target(c) ? c->target_type : c->source_type;
}

/* Comparable value of layout column i on the source side. */
static void source_value(const table_layout *lay, size_t i, strbuf *out)
{
    const layout_column *c = &lay->cols[i];
    bool convert = compared_as_target(c);
    if (convert)
        strbuf_append(out, "((");
    append_alias_col(out, "s", c->source);
    if (convert)
        strbuf_appendf(out, ")::text)::%s", c->target_type);
}

/* Comparable value of layout column i on the target side (see the joins in target_from). */
static void target_value(const table_layout *lay, size_t i, strbuf *out)
{
    const layout_column *c = &lay->cols[i];
    if (c->parent >= 0) {
        strbuf_appendf(out, "p%zu.", i);
        pgconn_append_ident(out, lay->cfg->tables[c->parent].legacy_key);
        return;
    }
    append_alias_col(out, "t", c->target);
    if (!c->is_key && strcmp(compared_type(c), c->target_type) != 0)
        strbuf_appendf(out, "::%s", c->source_type);
}

typedef void (*value_fn)(const table_layout *lay, size_t i, strbuf *out);

/*
 * The type a column is hashed as by hash_record_extended: its own type when
 * that type's hash is a function of exactly what its text shows (integers
 * as bigint, so that an integer source key and a bigint legacy_key agree),
 * else text (numeric 1.5 and 1.50 hash alike, as do equal jsonb with
 * different number scales, and floats 0 and -0): rendering a timestamp or
 * bytea as text costs more than hashing it.  Both sides hash the type the
 * column is compared as (compared_type).
 */
static const char *record_hash_type(const char *type)
{
    static const char *const exact[] = {"boolean",
                                        "date",
                                        "uuid",
                                        "bytea",
                                        "timestamp with time zone",
                                        "timestamp without time zone"};
    if (type_is_integer(type))
        return "bigint";
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        if (strcmp(type, exact[i]) == 0)
            return exact[i];
    }
    return "text";
}

/*
 * ROW((<value>)::<type>, ...): every column as text, or (hash_types) as
 * record_hash_type, a text field then compared byte for byte (COLLATE "C").
 */
static void append_row(const table_layout *lay, value_fn value, bool hash_types, strbuf *out)
{
    strbuf_append(out, "ROW(");
    for (size_t i = 0; i < lay->ncols; i++) {
        if (i > 0)
            strbuf_append(out, ", ");
        const char *type = hash_types ? record_hash_type(compared_type(&lay->cols[i])) : "text";
        strbuf_append_char(out, '(');
        value(lay, i, out);
        strbuf_appendf(out, ")::%s", type);
        /* hash_record_extended hashes a field by its collation: a nondeterministic
         * one (case-insensitive ICU) would hash 'A' and 'a' alike. */
        if (hash_types && strcmp(type, "text") == 0)
            strbuf_append(out, " COLLATE \"C\"");
    }
    strbuf_append_char(out, ')');
}

/* ROW(<value>::text, ...)::text: the row's source-form text. */
static void append_row_text(const table_layout *lay, value_fn value, strbuf *out)
{
    append_row(lay, value, false, out);
    strbuf_append(out, "::text");
}

/*
 * The hash of a keyed row (tablesql_hash_kind).  It only has to tell a stale
 * row from a current one with the same key: with 64 bits a stale row goes
 * unnoticed with probability 2^-64.  hash_record_extended combines the
 * columns' own hashes (record_hash_type) without building the row's text
 * (NULL hashes as 0, '' does not); both are PostgreSQL's hash_any, stable across
 * versions because hash partitioning depends on it.
 */
static void append_hash(const table_layout *lay, value_fn value, strbuf *out)
{
    switch (lay->hash) {
    case TABLESQL_HASH_RECORD:
        strbuf_append(out, "hash_record_extended(");
        append_row(lay, value, true, out);
        strbuf_append(out, ", 0)");
        return;
    case TABLESQL_HASH_TEXT:
        strbuf_append(out, "hashtextextended(");
        append_row_text(lay, value, out);
        strbuf_append(out, ", 0)");
        return;
    case TABLESQL_HASH_MD5:
        break;
    }
    strbuf_append(out, "md5(");
    append_row_text(lay, value, out);
    strbuf_append(out, ")");
}

/*
 * The key of a keyless row is its hash, and equal hashes pair up as equal
 * rows, so it stays a full md5 (a collision would hide a missing row).
 */
static void append_keyless_hash(const table_layout *lay, value_fn value, strbuf *out)
{
    strbuf_append(out, "md5(");
    append_row_text(lay, value, out);
    strbuf_append(out, ")");
}

/* The key columns as "<expr> AS k0, ..." sorted the keyset way. */
static void append_keys(const table_layout *lay, value_fn value, strbuf *out)
{
    for (size_t k = 0; k < lay->nkey; k++) {
        if (k > 0)
            strbuf_append(out, ", ");
        if (lay->key_col[k] < 0) {
            append_keyless_hash(lay, value, out);
            strbuf_append(out, " COLLATE \"C\"");
        } else if (lay->key_type[k] == KEYSET_KEY_INT) {
            value(lay, (size_t)lay->key_col[k], out);
        } else {
            strbuf_append_char(out, '(');
            value(lay, (size_t)lay->key_col[k], out);
            strbuf_append(out, ")::text COLLATE \"C\"");
        }
        strbuf_appendf(out, " AS k%zu", k);
    }
}

/*
 * Which target rows a FROM clause keeps.  A row of an identity-mapped table whose
 * key references a parent (order_tags.order_id) has a source-form key when every
 * such parent row exists and has a legacy key; it is an orphan when one of them
 * does not exist at all.  A row whose parent exists without a legacy key (a row
 * created in the target only) is neither: like such parents, it is not compared.
 */
typedef enum row_filter {
    ROWS_KEYED,    /* rows with a complete source-form key */
    ROWS_ORPHANED, /* rows whose key references a parent row that does not exist */
    ROWS_ALL       /* both (orphans come out with a NULL key field) */
} row_filter;

static bool is_reference_key(const layout_column *c)
{
    return c->is_key && c->parent >= 0;
}

/*
 * " LEFT JOIN <parent of column i> p<i> ON p<i>.<col> = <child>.<...>": by the
 * parent's target_key from a target row t (the reference as stored), or by its
 * legacy_key from a staged row s (the source value).
 */
static void append_parent_join(const table_layout *lay, size_t i, bool by_legacy_key, strbuf *out)
{
    const table_config *p = &lay->cfg->tables[lay->cols[i].parent];
    strbuf_append(out, " LEFT JOIN ");
    pgconn_append_qualified(out, p->target_schema, p->target_name);
    strbuf_appendf(out, " p%zu ON p%zu.", i, i);
    pgconn_append_ident(out, by_legacy_key ? p->legacy_key : p->target_key);
    strbuf_append(out, " = ");
    if (by_legacy_key)
        strbuf_appendf(out, "s.c%zu", i);
    else
        append_alias_col(out, "t", lay->cols[i].target);
}

/*
 * Over the key's references: "(p0.lk IS NOT NULL AND ...)", every parent has a
 * legacy key (keyed), or "((p0.tk IS NULL AND t.c0 IS NOT NULL) OR ...)", some
 * parent row is gone (orphaned).
 */
static void append_parents_condition(const table_layout *lay, bool orphaned, strbuf *out)
{
    size_t n = 0;
    strbuf_append_char(out, '(');
    for (size_t i = 0; i < lay->ncols; i++) {
        if (!is_reference_key(&lay->cols[i]))
            continue;
        const table_config *p = &lay->cfg->tables[lay->cols[i].parent];
        strbuf_append(out, n++ == 0 ? "" : orphaned ? " OR " : " AND ");
        strbuf_appendf(out, orphaned ? "(p%zu." : "p%zu.", i);
        pgconn_append_ident(out, orphaned ? p->target_key : p->legacy_key);
        strbuf_append(out, orphaned ? " IS NULL AND " : " IS NOT NULL");
        if (orphaned) {
            append_alias_col(out, "t", lay->cols[i].target);
            strbuf_append(out, " IS NOT NULL)");
        }
    }
    strbuf_append_char(out, ')');
}

static void target_from(const table_layout *lay, row_filter filter, strbuf *out)
{
    const table_config *t = lay->table;
    pgconn_append_qualified(out, t->target_schema, t->target_name);
    strbuf_append(out, " t");
    bool reference_key = false;
    for (size_t i = 0; i < lay->ncols; i++) {
        if (lay->cols[i].parent >= 0)
            append_parent_join(lay, i, false, out);
        reference_key = reference_key || is_reference_key(&lay->cols[i]);
    }
    if (t->kind == TABLE_UUID_MAPPED) {
        strbuf_append(out, " WHERE ");
        append_alias_col(out, "t", t->legacy_key);
        strbuf_append(out, " IS NOT NULL");
        return; /* its key is the legacy key: no reference in it */
    }
    if (!reference_key)
        return;
    strbuf_append(out, " WHERE ");
    if (filter != ROWS_ORPHANED)
        append_parents_condition(lay, false, out);
    if (filter == ROWS_ALL)
        strbuf_append(out, " OR ");
    if (filter != ROWS_KEYED)
        append_parents_condition(lay, true, out);
}

static bool has_orphans(const table_layout *lay)
{
    bool any = false;
    for (size_t i = 0; i < lay->ncols; i++)
        any = any || is_reference_key(&lay->cols[i]);
    return any && lay->table->kind != TABLE_UUID_MAPPED;
}

bool tablesql_target_diff_has_orphans(const table_layout *lay, unsigned filter)
{
    return filter == 0 && has_orphans(lay);
}

bool tablesql_target_orphans(const table_layout *lay, strbuf *out)
{
    if (!has_orphans(lay))
        return false;
    strbuf_append(out, "SELECT count(*) FROM ");
    target_from(lay, ROWS_ORPHANED, out);
    return true;
}

void tablesql_resume_setting(size_t i, strbuf *out)
{
    strbuf_appendf(out, "SELECT set_config('walbridge.resume_%zu', $1, false)", i);
}

void tablesql_range_setting(bool high, strbuf *out)
{
    strbuf_appendf(out, "SELECT set_config('walbridge.range_%s', $1, false)", high ? "hi" : "lo");
}

static void append_resume_and_order(const table_layout *lay, unsigned filter, strbuf *out)
{
    const char *glue = " WHERE ";
    if (filter & TABLESQL_RESUME) {
        strbuf_append(out, glue);
        strbuf_append_char(out, '(');
        for (size_t k = 0; k < lay->nkey; k++)
            strbuf_appendf(out, "%sx.k%zu", k > 0 ? ", " : "", k);
        strbuf_append(out, ") > (");
        for (size_t k = 0; k < lay->nkey; k++) {
            strbuf_appendf(out, "%scurrent_setting('walbridge.resume_%zu')", k > 0 ? ", " : "", k);
            strbuf_append(out, lay->key_type[k] == KEYSET_KEY_INT ? "::bigint" : " COLLATE \"C\"");
        }
        strbuf_append_char(out, ')');
        glue = " AND ";
    }
    if (filter & TABLESQL_RANGE_LO) {
        strbuf_appendf(out, "%sx.k0 >= current_setting('walbridge.range_lo')::bigint", glue);
        glue = " AND ";
    }
    if (filter & TABLESQL_RANGE_HI)
        strbuf_appendf(out, "%sx.k0 < current_setting('walbridge.range_hi')::bigint", glue);
    strbuf_append(out, " ORDER BY ");
    for (size_t k = 0; k < lay->nkey; k++)
        strbuf_appendf(out, "%s%zu", k > 0 ? ", " : "", k + 1);
}

static void source_query(const table_layout *lay, bool with_rows, bool with_hash, unsigned filter,
                         strbuf *out)
{
    const table_config *t = lay->table;
    strbuf_append(out, "COPY (SELECT * FROM (SELECT ");
    append_keys(lay, source_value, out);
    if (t->kind != TABLE_KEYLESS && with_hash) {
        strbuf_append(out, ", ");
        append_hash(lay, source_value, out);
        strbuf_append(out, " AS h");
    } else if (t->kind != TABLE_KEYLESS) {
        strbuf_append(out, ", ''::text AS h");
    }
    if (with_rows) {
        for (size_t i = 0; i < lay->ncols; i++) {
            strbuf_append(out, ", ");
            append_alias_col(out, "s", lay->cols[i].source); /* as is: the copy converts */
            strbuf_appendf(out, " AS c%zu", i);
        }
    }
    strbuf_append(out, " FROM ");
    pgconn_append_qualified(out, t->source_schema, t->source_name);
    strbuf_append(out, " s) x");
    append_resume_and_order(lay, filter, out);
    strbuf_append(out, ") TO STDOUT");
}

void tablesql_source_diff(const table_layout *lay, bool with_rows, unsigned filter, strbuf *out)
{
    source_query(lay, with_rows, true, filter, out);
}

void tablesql_source_all_rows(const table_layout *lay, unsigned filter, strbuf *out)
{
    source_query(lay, true, false, filter, out);
}

void tablesql_source_keys(const table_layout *lay, unsigned filter, strbuf *out)
{
    source_query(lay, false, false, filter, out);
}

void tablesql_source_fetch(const table_layout *lay, strbuf *out)
{
    const table_config *t = lay->table;
    strbuf_append(out, "SELECT ");
    append_keys(lay, source_value, out);
    for (size_t i = 0; i < lay->ncols; i++) {
        strbuf_append(out, ", ");
        append_alias_col(out, "s", lay->cols[i].source);
        strbuf_appendf(out, " AS c%zu", i);
    }
    strbuf_append(out, " FROM unnest(");
    for (size_t k = 0; k < lay->nkey; k++)
        strbuf_appendf(out, "%s$%zu::text[]", k > 0 ? ", " : "", k + 1);
    strbuf_append(out, ") AS u(");
    for (size_t k = 0; k < lay->nkey; k++)
        strbuf_appendf(out, "%sk%zu", k > 0 ? ", " : "", k);
    strbuf_append(out, ") JOIN ");
    pgconn_append_qualified(out, t->source_schema, t->source_name);
    strbuf_append(out, " s ON ");
    for (size_t k = 0; k < lay->nkey; k++) {
        const layout_column *c = &lay->cols[lay->key_col[k]];
        if (k > 0)
            strbuf_append(out, " AND ");
        append_alias_col(out, "s", c->source);
        strbuf_appendf(out, " = u.k%zu::%s", k, c->source_type);
    }
}

void tablesql_array_append(strbuf *arr, const char *value, size_t len)
{
    if (arr->len > 0)
        strbuf_append_char(arr, ',');
    strbuf_append_char(arr, '"');
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '"' || value[i] == '\\')
            strbuf_append_char(arr, '\\');
        strbuf_append_char(arr, value[i]);
    }
    strbuf_append_char(arr, '"');
}

void tablesql_target_any(const table_layout *lay, strbuf *out)
{
    strbuf_append(out, "SELECT EXISTS (SELECT 1 FROM ");
    target_from(lay, ROWS_KEYED, out);
    strbuf_append(out, ")");
}

static void target_query(const table_layout *lay, bool with_hash, unsigned filter, strbuf *out)
{
    strbuf_append(out, "COPY (SELECT * FROM (SELECT ");
    append_keys(lay, target_value, out);
    if (lay->table->kind != TABLE_KEYLESS && with_hash) {
        strbuf_append(out, ", ");
        append_hash(lay, target_value, out);
        strbuf_append(out, " AS h");
    } else if (lay->table->kind != TABLE_KEYLESS) {
        strbuf_append(out, ", ''::text AS h");
    }
    strbuf_append(out, " FROM ");
    target_from(lay, tablesql_target_diff_has_orphans(lay, filter) ? ROWS_ALL : ROWS_KEYED, out);
    strbuf_append(out, ") x");
    append_resume_and_order(lay, filter, out);
    strbuf_append(out, ") TO STDOUT");
}

void tablesql_target_diff(const table_layout *lay, unsigned filter, strbuf *out)
{
    target_query(lay, true, filter, out);
}

void tablesql_target_keys(const table_layout *lay, unsigned filter, strbuf *out)
{
    target_query(lay, false, filter, out);
}

/* ---------------------------------------------------------------- staging and insert */

size_t tablesql_stage_width(const table_layout *lay)
{
    size_t n = lay->ncols + (lay->table->kind == TABLE_UUID_MAPPED ? 1 : 0);
    for (size_t i = 0; i < lay->ncols; i++) {
        if (lay->cols[i].parent >= 0)
            n++;
    }
    return n;
}

void tablesql_stage_create(const table_layout *lay, int index, strbuf *out)
{
    strbuf_appendf(out, "CREATE TEMP TABLE IF NOT EXISTS wb_stage_%d (", index);
    for (size_t i = 0; i < lay->ncols; i++) {
        const layout_column *c = &lay->cols[i];
        bool source_typed = c->is_key || c->parent >= 0;
        strbuf_appendf(out, "%sc%zu %s", i > 0 ? ", " : "", i,
                       source_typed ? c->source_type : c->target_type);
    }
    if (lay->table->kind == TABLE_UUID_MAPPED)
        strbuf_append(out, ", wb_id uuid");
    for (size_t i = 0; i < lay->ncols; i++) {
        if (lay->cols[i].parent >= 0)
            strbuf_appendf(out, ", wb_r%zu uuid", i);
    }
    strbuf_append(out, ") ON COMMIT DELETE ROWS");
}

void tablesql_stage_copy(int index, strbuf *out)
{
    strbuf_appendf(out, "COPY pg_temp.wb_stage_%d FROM STDIN", index);
}

static void append_conflict_target(const table_layout *lay, strbuf *out)
{
    strbuf_append(out, " ON CONFLICT (");
    if (lay->table->kind == TABLE_UUID_MAPPED) {
        pgconn_append_ident(out, lay->table->legacy_key);
    } else {
        for (size_t k = 0; k < lay->nkey; k++) {
            if (k > 0)
                strbuf_append(out, ", ");
            pgconn_append_ident(out, lay->cols[lay->key_col[k]].target);
        }
    }
    strbuf_append(out, ")");
}

static void append_conflict_action(const table_layout *lay, bool update, strbuf *out)
{
    size_t nset = 0;
    if (update) {
        for (size_t i = 0; i < lay->ncols; i++) {
            const layout_column *c = &lay->cols[i];
            if (c->is_key)
                continue;
            strbuf_append(out, nset++ == 0 ? " DO UPDATE SET " : ", ");
            pgconn_append_ident(out, c->target);
            strbuf_append(out, " = EXCLUDED.");
            pgconn_append_ident(out, c->target);
        }
    }
    if (nset == 0)
        strbuf_append(out, " DO NOTHING");
}

/* "T (target_key, mapped target columns...)": what a staged or direct row writes. */
static void append_target_columns(const table_layout *lay, strbuf *out)
{
    const table_config *t = lay->table;
    pgconn_append_qualified(out, t->target_schema, t->target_name);
    strbuf_append(out, " (");
    if (t->kind == TABLE_UUID_MAPPED) {
        pgconn_append_ident(out, t->target_key);
        strbuf_append(out, ", ");
    }
    for (size_t i = 0; i < lay->ncols; i++) {
        if (i > 0)
            strbuf_append(out, ", ");
        pgconn_append_ident(out, lay->cols[i].target);
    }
    strbuf_append_char(out, ')');
}

bool tablesql_pends(const table_layout *lay, const tablesql_pending *pending, size_t i)
{
    const layout_column *c = &lay->cols[i];
    return pending != NULL && pending->moved != NULL && lay->table->kind == TABLE_UUID_MAPPED &&
           c->parent >= 0 && !c->is_key && pending->moved[c->parent];
}

void tablesql_stage_insert(const table_layout *lay, int index, bool update, const bool *moved,
                           strbuf *out)
{
    const table_config *t = lay->table;
    const table_config *tables = lay->cfg->tables;
    strbuf_append(out, "INSERT INTO ");
    append_target_columns(lay, out);
    strbuf_append(out, " SELECT ");
    if (t->kind == TABLE_UUID_MAPPED && moved != NULL && moved[t - tables]) {
        apply_sql_key_uuid(t, lay->cfg->state_schema, "s.wb_id", out);
        strbuf_append(out, ", ");
    } else if (t->kind == TABLE_UUID_MAPPED) {
        strbuf_append(out, "s.wb_id, ");
    }
    for (size_t i = 0; i < lay->ncols; i++) {
        if (i > 0)
            strbuf_append(out, ", ");
        int parent = lay->cols[i].parent;
        if (parent < 0) {
            strbuf_appendf(out, "s.c%zu", i);
            continue;
        }
        strbuf_appendf(out, "COALESCE(p%zu.", i);
        pgconn_append_ident(out, tables[parent].target_key);
        strbuf_append(out, ", ");
        char v5[32];
        snprintf(v5, sizeof v5, "s.wb_r%zu", i);
        apply_sql_ref_fallback(lay->cfg, parent, moved, v5, out);
        strbuf_append_char(out, ')');
    }
    strbuf_appendf(out, " FROM pg_temp.wb_stage_%d s", index);
    for (size_t i = 0; i < lay->ncols; i++) {
        if (lay->cols[i].parent >= 0)
            append_parent_join(lay, i, true, out);
    }
    if (t->kind != TABLE_KEYLESS) {
        append_conflict_target(lay, out);
        append_conflict_action(lay, update, out);
    }
}

void tablesql_direct_copy(const table_layout *lay, strbuf *out)
{
    strbuf_append(out, "COPY ");
    append_target_columns(lay, out);
    strbuf_append(out, " FROM STDIN");
}

void tablesql_pending_fix(const table_layout *lay, const tablesql_pending *pending, size_t i,
                          strbuf *out)
{
    const table_config *t = lay->table;
    const layout_column *c = &lay->cols[i];
    const layout_column *key = &lay->cols[lay->key_col[0]];
    const table_config *p = &lay->cfg->tables[c->parent];
    /* f's rows of this table and column */
    const char *where = "f.slot = $1 AND f.table_name = $2 AND f.ref_column = $3";

    strbuf_append(out, "WITH fixed AS (UPDATE ");
    pgconn_append_qualified(out, t->target_schema, t->target_name);
    strbuf_append(out, " c SET ");
    pgconn_append_ident(out, c->target);
    strbuf_append(out, " = p.");
    pgconn_append_ident(out, p->target_key);
    strbuf_append(out, " FROM ");
    pgconn_append_qualified(out, pending->state_schema, "pending_refs");
    strbuf_append(out, " f JOIN ");
    pgconn_append_qualified(out, p->target_schema, p->target_name);
    strbuf_append(out, " p ON p.");
    pgconn_append_ident(out, p->legacy_key);
    strbuf_appendf(out, " = f.parent_key::%s WHERE %s AND c.", c->source_type, where);
    pgconn_append_ident(out, t->legacy_key);
    strbuf_appendf(out, " = f.row_key::%s AND c.", key->target_type);
    pgconn_append_ident(out, c->target);
    strbuf_append(out, " IS NULL RETURNING f.row_key) DELETE FROM ");
    pgconn_append_qualified(out, pending->state_schema, "pending_refs");
    strbuf_appendf(out,
                   " f WHERE %s AND (f.row_key IN (SELECT row_key FROM fixed) OR NOT EXISTS "
                   "(SELECT 1 FROM ",
                   where);
    pgconn_append_qualified(out, t->target_schema, t->target_name);
    strbuf_append(out, " c WHERE c.");
    pgconn_append_ident(out, t->legacy_key);
    strbuf_appendf(out, " = f.row_key::%s AND c.", key->target_type);
    pgconn_append_ident(out, c->target);
    strbuf_append(out, " IS NULL))");
}

/* ---------------------------------------------------------------- extras */

void tablesql_extra_create(const table_layout *lay, int index, strbuf *out)
{
    strbuf_appendf(out, "CREATE TEMP TABLE IF NOT EXISTS wb_extra_%d (", index);
    for (size_t k = 0; k < lay->nkey; k++)
        strbuf_appendf(out, "%sk%zu %s", k > 0 ? ", " : "", k,
                       lay->key_type[k] == KEYSET_KEY_INT ? "bigint" : "text");
    strbuf_append(out, ") ON COMMIT DELETE ROWS");
}

void tablesql_extra_copy(int index, strbuf *out)
{
    strbuf_appendf(out, "COPY pg_temp.wb_extra_%d FROM STDIN", index);
}

/*
 * "DELETE FROM T d WHERE d.ctid IN (", or with the soft policy "UPDATE T d SET
 * col = now() WHERE d.col IS NULL AND d.ctid IN (" (an earlier run's stamp stays).
 */
static void append_delete_head(const table_layout *lay, strbuf *out)
{
    const table_config *t = lay->table;
    if (t->deletes == DELETES_SOFT && t->soft_delete_column != NULL) {
        strbuf_append(out, "UPDATE ");
        pgconn_append_qualified(out, t->target_schema, t->target_name);
        strbuf_append(out, " d SET ");
        pgconn_append_ident(out, t->soft_delete_column);
        strbuf_append(out, " = now() WHERE d.");
        pgconn_append_ident(out, t->soft_delete_column);
        strbuf_append(out, " IS NULL AND d.ctid IN (");
    } else {
        strbuf_append(out, "DELETE FROM ");
        pgconn_append_qualified(out, t->target_schema, t->target_name);
        strbuf_append(out, " d WHERE d.ctid IN (");
    }
}

void tablesql_extra_delete(const table_layout *lay, int index, strbuf *out)
{
    append_delete_head(lay, out);
    if (lay->table->kind == TABLE_KEYLESS) {
        strbuf_append(out, "SELECT z.ctid FROM (SELECT y.ctid, y.h, row_number() OVER "
                           "(PARTITION BY y.h) AS rn FROM (SELECT t.ctid, ");
        append_keyless_hash(lay, target_value, out);
        strbuf_append(out, " COLLATE \"C\" AS h FROM ");
        target_from(lay, ROWS_KEYED, out);
        strbuf_appendf(out,
                       ") y) z JOIN (SELECT k0, count(*) AS n FROM pg_temp.wb_extra_%d "
                       "GROUP BY k0) e ON e.k0 = z.h WHERE z.rn <= e.n)",
                       index);
        return;
    }
    strbuf_append(out, "SELECT x.ctid FROM (SELECT t.ctid, ");
    append_keys(lay, target_value, out);
    strbuf_append(out, " FROM ");
    target_from(lay, ROWS_KEYED, out);
    strbuf_appendf(out, ") x JOIN pg_temp.wb_extra_%d e ON (", index);
    for (size_t k = 0; k < lay->nkey; k++)
        strbuf_appendf(out, "%sx.k%zu", k > 0 ? ", " : "", k);
    strbuf_append(out, ") = (");
    for (size_t k = 0; k < lay->nkey; k++)
        strbuf_appendf(out, "%se.k%zu", k > 0 ? ", " : "", k);
    strbuf_append(out, "))");
}

bool tablesql_orphans_delete(const table_layout *lay, strbuf *out)
{
    if (!has_orphans(lay))
        return false;
    append_delete_head(lay, out);
    strbuf_append(out, "SELECT t.ctid FROM ");
    target_from(lay, ROWS_ORPHANED, out);
    strbuf_append_char(out, ')');
    return true;
}
