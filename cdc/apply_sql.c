/*
 * apply_sql.c — builds the statements the stream applier prepares (see
 * apply_sql.h for the shapes).  Pure string building over a table plan.
 */
#include "cdc/apply_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pgconn.h"

/* State of one build: the statement text and its parameter list so far. */
typedef struct sql_builder {
    const wb_config *cfg;
    const table_plan *t;
    strbuf *sql;
    apply_param *params;
    int nparams;
    int cap;
    int nrows;         /* UPSERT / INSERT: rows in the VALUES list */
    int param_offset;  /* added to every $n while writing row r > 0 */
    bool guarded;      /* UPSERT_GUARDED: UUIDv5 only when no row holds it yet */
    const bool *moved; /* per wb_config table: key changes recorded (apply_sql_build_rows) */
} sql_builder;

bool apply_sql_column_travels(const table_plan *t, size_t column)
{
    const column_plan *c = &t->columns[column];
    return !c->skipped && !c->generated && c->target != NULL;
}

bool apply_sql_is_key_column(const table_plan *t, size_t column)
{
    for (size_t k = 0; k < t->nkey_columns; k++) {
        if (t->key_columns[k] == (int)column)
            return true;
    }
    return false;
}

/* Target column name: the legacy_key column for a UUID-mapped table's key. */
static const char *target_name(const sql_builder *b, size_t column)
{
    if (b->t->cfg->kind == TABLE_UUID_MAPPED && apply_sql_is_key_column(b->t, column))
        return b->t->cfg->legacy_key;
    return b->t->columns[column].target;
}

/* Returns the $n of (column, old, how), adding it to the list when new. */
static int param_ref(sql_builder *b, int column, bool old, apply_param_how how)
{
    for (int i = 0; i < b->nparams; i++) {
        const apply_param *p = &b->params[i];
        if (p->column == column && p->old == old && p->how == how)
            return i + 1 + b->param_offset;
    }
    if (b->nparams == b->cap) {
        b->cap = b->cap == 0 ? 16 : b->cap * 2;
        b->params = wb_xrealloc(b->params, (size_t)b->cap * sizeof *b->params);
    }
    b->params[b->nparams] = (apply_param){.column = column, .old = old, .how = how};
    return ++b->nparams + b->param_offset;
}

static const table_config *ref_parent(const sql_builder *b, size_t column)
{
    const column_plan *c = &b->t->columns[column];
    if (c->role != COLROLE_REFERENCE || c->ref_parent < 0 ||
        (size_t)c->ref_parent >= b->cfg->ntables)
        return NULL;
    const table_config *p = &b->cfg->tables[c->ref_parent];
    return p->kind == TABLE_UUID_MAPPED ? p : NULL;
}

/* wb_config index of the table being built (table_plan.cfg points into cfg->tables). */
static int table_index(const sql_builder *b)
{
    return (int)(b->t->cfg - b->cfg->tables);
}

/* True when t is UUID-mapped and some configured table references it. */
static bool is_referenced_parent(const sql_builder *b)
{
    if (b->t->cfg->kind != TABLE_UUID_MAPPED)
        return false;
    int self = table_index(b);
    for (size_t i = 0; i < b->cfg->ntables; i++) {
        const table_config *tc = &b->cfg->tables[i];
        for (size_t r = 0; r < tc->nrefs; r++) {
            if (tc->refs[r].parent_index == self)
                return true;
        }
    }
    return false;
}

/* "INSERT INTO <gone> (tbl, lk, tk) SELECT <index>, " (the caller adds the rest) */
static void append_gone_insert(sql_builder *b)
{
    strbuf_appendf(b->sql, "INSERT INTO %s (tbl, lk, tk) SELECT %d, ", APPLY_GONE_TABLE,
                   table_index(b));
}

static void append_gone_upsert_tail(sql_builder *b)
{
    strbuf_append(b->sql, " ON CONFLICT (tbl, lk) DO UPDATE SET tk = EXCLUDED.tk");
}

/* Appends the value expression of a column from the new or old row. */
static void append_value(sql_builder *b, size_t column, bool old)
{
    const table_config *parent = ref_parent(b, column);
    if (parent != NULL) {
        int raw = param_ref(b, (int)column, old, APARAM_RAW);
        int v5 = param_ref(b, (int)column, old, APARAM_V5_PARENT);
        strbuf_append(b->sql, "COALESCE((SELECT p.");
        pgconn_append_ident(b->sql, parent->target_key);
        strbuf_append(b->sql, " FROM ");
        pgconn_append_qualified(b->sql, parent->target_schema, parent->target_name);
        strbuf_append(b->sql, " p WHERE p.");
        pgconn_append_ident(b->sql, parent->legacy_key);
        strbuf_appendf(b->sql, " = $%d), ", raw);
        if (old) {
            /* Matching an old row: its parent may have been deleted or moved earlier in
             * this transaction (a cascade).  New values always name a live parent, and
             * inserts skip this subquery (each costs executor set-up per row). */
            strbuf_appendf(b->sql,
                           "(SELECT g.tk FROM %s g WHERE g.tbl = %d AND g.lk = $%d::text), ",
                           APPLY_GONE_TABLE, b->t->columns[column].ref_parent, raw);
        }
        char v5_expr[32];
        snprintf(v5_expr, sizeof v5_expr, "$%d::uuid", v5);
        apply_sql_ref_fallback(b->cfg, b->t->columns[column].ref_parent, b->moved, v5_expr, b->sql);
        strbuf_append_char(b->sql, ')');
        return;
    }
    const char *type = b->t->columns[column].source_type;
    apply_param_how how = type != NULL && strcmp(type, "bytea") == 0 ? APARAM_BYTEA : APARAM_RAW;
    strbuf_appendf(b->sql, "$%d", param_ref(b, (int)column, old, how));
}

/* Types without an equality operator: keyless matching compares their text. */
static bool compare_as_text(const char *type)
{
    static const char *const no_equality[] = {"json", "xml",  "point",   "line",  "lseg",
                                              "box",  "path", "polygon", "circle"};
    if (type == NULL)
        return false;
    size_t n = strcspn(type, "[(");
    for (size_t i = 0; i < sizeof no_equality / sizeof no_equality[0]; i++) {
        if (strlen(no_equality[i]) == n && strncmp(type, no_equality[i], n) == 0)
            return true;
    }
    return false;
}

static void append_table(sql_builder *b)
{
    pgconn_append_qualified(b->sql, b->t->cfg->target_schema, b->t->cfg->target_name);
}

static bool present(const bool *set, size_t i)
{
    return set != NULL && set[i];
}

/* What append_columns writes for each column. */
typedef enum column_item {
    ITEM_NAME,         /* c */
    ITEM_NEW_VALUE,    /* the new row's value expression */
    ITEM_SET,          /* c = <new value> */
    ITEM_SET_EXCLUDED, /* c = EXCLUDED.c */
    ITEM_MATCH_OLD     /* c IS NOT DISTINCT FROM <old value> (as text without equality) */
} column_item;

/* Appends item for column i. */
static void append_item(sql_builder *b, size_t i, column_item item)
{
    if (item == ITEM_NEW_VALUE) {
        append_value(b, i, false);
        return;
    }
    const char *name = target_name(b, i);
    pgconn_append_ident(b->sql, name);
    switch (item) {
    case ITEM_SET:
        strbuf_append(b->sql, " = ");
        append_value(b, i, false);
        break;
    case ITEM_SET_EXCLUDED:
        strbuf_append(b->sql, " = EXCLUDED.");
        pgconn_append_ident(b->sql, name);
        break;
    case ITEM_MATCH_OLD:
        if (compare_as_text(b->t->columns[i].target_type)) {
            strbuf_appendf(b->sql, "::text IS NOT DISTINCT FROM $%d::text",
                           param_ref(b, (int)i, true, APARAM_RAW));
        } else {
            strbuf_append(b->sql, " IS NOT DISTINCT FROM ");
            append_value(b, i, true);
        }
        break;
    case ITEM_NAME:
    case ITEM_NEW_VALUE:
        break;
    }
}

/*
 * Appends item for every column in `set` that travels to the target (for
 * ITEM_SET_EXCLUDED not the key columns), separated by sep.  any: the list
 * already holds an entry, so a separator goes first.  Returns whether the
 * list holds an entry now.
 */
static bool append_columns(sql_builder *b, const bool *set, column_item item, const char *sep,
                           bool any)
{
    for (size_t i = 0; i < b->t->ncolumns; i++) {
        if (!present(set, i) || !apply_sql_column_travels(b->t, i) ||
            (item == ITEM_SET_EXCLUDED && apply_sql_is_key_column(b->t, i)))
            continue;
        if (any)
            strbuf_append(b->sql, sep);
        append_item(b, i, item);
        any = true;
    }
    return any;
}

/* "UPDATE T SET " */
static void append_update_head(sql_builder *b)
{
    strbuf_append(b->sql, "UPDATE ");
    append_table(b);
    strbuf_append(b->sql, " SET ");
}

/* "UPDATE T SET a = $1, b = $2" over the new row's columns; false (err) when none travels. */
static bool append_update_set(sql_builder *b, const bool *new_present, char *err, size_t errlen)
{
    append_update_head(b);
    if (!append_columns(b, new_present, ITEM_SET, ", ", false)) {
        snprintf(err, errlen, "the update carries no column the target has");
        return false;
    }
    return true;
}

/* "UPDATE T SET soft_col = now()" (the deletes policy {"soft": col}). */
static void append_soft_delete_set(sql_builder *b)
{
    append_update_head(b);
    pgconn_append_ident(b->sql, b->t->cfg->soft_delete_column);
    strbuf_append(b->sql, " = now()");
}

/* " WHERE k1 = old1 AND ..." over the key columns. */
static bool append_key_where(sql_builder *b, const bool *new_present, const bool *old_present,
                             char *err, size_t errlen)
{
    strbuf_append(b->sql, " WHERE ");
    for (size_t k = 0; k < b->t->nkey_columns; k++) {
        size_t col = (size_t)b->t->key_columns[k];
        if (!present(old_present, col) && !present(new_present, col)) {
            snprintf(err, errlen, "key column \"%s\" is missing from the message",
                     b->t->columns[col].source);
            return false;
        }
        if (k > 0)
            strbuf_append(b->sql, " AND ");
        pgconn_append_ident(b->sql, target_name(b, col));
        strbuf_append(b->sql, " = ");
        append_value(b, col, true);
    }
    return true;
}

/* " WHERE ctid = (SELECT ctid FROM T WHERE c IS NOT DISTINCT FROM old ... LIMIT 1)" */
static bool append_one_row_where(sql_builder *b, const bool *old_present, char *err, size_t errlen)
{
    strbuf_append(b->sql, " WHERE ctid = (SELECT ctid FROM ");
    append_table(b);
    strbuf_append(b->sql, " WHERE ");
    if (!append_columns(b, old_present, ITEM_MATCH_OLD, " AND ", false)) {
        snprintf(err, errlen, "the old row carries no column to match on (REPLICA IDENTITY FULL?)");
        return false;
    }
    strbuf_append(b->sql, " LIMIT 1)");
    return true;
}

/* "(tk, lk, a, b)" and "VALUES ($1, $2, ...)" or "SELECT $1, ..." */
static bool append_insert_body(sql_builder *b, const bool *new_present, bool as_select, char *err,
                               size_t errlen)
{
    bool uuid_mapped = b->t->cfg->kind == TABLE_UUID_MAPPED;
    for (size_t k = 0; k < b->t->nkey_columns; k++) {
        if (!present(new_present, (size_t)b->t->key_columns[k])) {
            snprintf(err, errlen, "key column \"%s\" is missing from the new row",
                     b->t->columns[b->t->key_columns[k]].source);
            return false;
        }
    }
    strbuf_append(b->sql, " (");
    if (uuid_mapped)
        pgconn_append_ident(b->sql, b->t->cfg->target_key);
    if (!append_columns(b, new_present, ITEM_NAME, ", ", uuid_mapped)) {
        snprintf(err, errlen, "the message carries no column the target has");
        return false;
    }
    strbuf_append(b->sql, as_select ? ") SELECT " : ") VALUES ");
    int rows = as_select ? 1 : b->nrows;
    for (int r = 0; r < rows; r++) {
        /* Row r repeats row 0's expressions with its own parameter numbers. */
        b->param_offset = r * b->nparams;
        strbuf_append(b->sql, r > 0 ? ", (" : as_select ? "" : "(");
        if (uuid_mapped && !b->guarded) {
            strbuf_appendf(b->sql, "$%d", param_ref(b, b->t->key_columns[0], false, APARAM_V5_ROW));
        } else if (uuid_mapped) {
            /* UUIDv5 of the key, unless a row moved by a key change holds or held it. */
            char v5[32];
            snprintf(v5, sizeof v5, "$%d::uuid",
                     param_ref(b, b->t->key_columns[0], false, APARAM_V5_ROW));
            apply_sql_key_uuid(b->t->cfg, b->cfg->state_schema, v5, b->sql);
        }
        append_columns(b, new_present, ITEM_NEW_VALUE, ", ", uuid_mapped);
        if (!as_select)
            strbuf_append_char(b->sql, ')');
    }
    b->param_offset = 0;
    return true;
}

/* " ON CONFLICT (keys) DO UPDATE SET c = EXCLUDED.c ... RETURNING (xmax = 0)" */
static void append_on_conflict(sql_builder *b, const bool *new_present)
{
    strbuf_append(b->sql, " ON CONFLICT (");
    for (size_t k = 0; k < b->t->nkey_columns; k++) {
        if (k > 0)
            strbuf_append(b->sql, ", ");
        pgconn_append_ident(b->sql, target_name(b, (size_t)b->t->key_columns[k]));
    }
    strbuf_append(b->sql, ") DO UPDATE SET ");
    if (!append_columns(b, new_present, ITEM_SET_EXCLUDED, ", ", false)) {
        /* Only key columns: a no-op assignment so RETURNING still reports the row. */
        append_item(b, (size_t)b->t->key_columns[0], ITEM_SET_EXCLUDED);
    }
    strbuf_append(b->sql, " RETURNING (xmax = 0) AS inserted");
    if (b->guarded) {
        strbuf_append(b->sql, ", ");
        pgconn_append_ident(b->sql, b->t->cfg->target_key);
    }
}

/*
 * DELETE of a referenced UUID-mapped row that remembers (legacy key, target key)
 * in the session's gone-keys table, so children deleted after it in the same
 * transaction (ON DELETE CASCADE arrives parent first) still find its UUID.
 * The affected-row count is the number of rows deleted.
 */
static bool build_recorded_delete(sql_builder *b, const bool *new_present, const bool *old_present,
                                  char *err, size_t errlen)
{
    strbuf_append(b->sql, "WITH d AS (DELETE FROM ");
    append_table(b);
    if (!append_key_where(b, new_present, old_present, err, errlen))
        return false;
    strbuf_append(b->sql, " RETURNING ");
    pgconn_append_ident(b->sql, b->t->cfg->legacy_key);
    strbuf_append(b->sql, ", ");
    pgconn_append_ident(b->sql, b->t->cfg->target_key);
    strbuf_append(b->sql, ") ");
    append_gone_insert(b);
    strbuf_append(b->sql, "d.");
    pgconn_append_ident(b->sql, b->t->cfg->legacy_key);
    strbuf_append(b->sql, "::text, d.");
    pgconn_append_ident(b->sql, b->t->cfg->target_key);
    strbuf_append(b->sql, " FROM d");
    append_gone_upsert_tail(b);
    return true;
}

/*
 * UPDATE that moves a UUID-mapped row to a new key.  The row keeps its UUID
 * (possibly UUIDv5 of the old key), so the move is recorded in
 * <state_schema>.moved_keys: the applier then guards this table's inserts
 * (UPSERT_GUARDED), now and after any restart.  For a referenced parent the
 * old key is also remembered in the session's gone-keys table, for children
 * updated after it in the same transaction (ON UPDATE CASCADE).  The
 * affected-row count is the number of rows moved.
 */
static bool build_recorded_key_update(sql_builder *b, const bool *new_present,
                                      const bool *old_present, char *err, size_t errlen)
{
    strbuf_append(b->sql, "WITH u AS (");
    if (!append_update_set(b, new_present, err, errlen) ||
        !append_key_where(b, new_present, old_present, err, errlen))
        return false;
    strbuf_append(b->sql, " RETURNING tableoid, ");
    pgconn_append_ident(b->sql, b->t->cfg->target_key);
    strbuf_append(b->sql, ")");
    int old_key = param_ref(b, b->t->key_columns[0], true, APARAM_RAW);
    if (is_referenced_parent(b)) {
        strbuf_append(b->sql, ", g AS (");
        append_gone_insert(b);
        strbuf_appendf(b->sql, "$%d::text, u.", old_key);
        pgconn_append_ident(b->sql, b->t->cfg->target_key);
        strbuf_append(b->sql, " FROM u");
        append_gone_upsert_tail(b);
        strbuf_append(b->sql, ")");
    }
    strbuf_append(b->sql, " INSERT INTO ");
    pgconn_append_qualified(b->sql, b->cfg->state_schema, "moved_keys");
    strbuf_appendf(b->sql, " (table_oid, old_key, target_key, at) SELECT u.tableoid, $%d::text, u.",
                   old_key);
    pgconn_append_ident(b->sql, b->t->cfg->target_key);
    strbuf_append(b->sql, ", now() FROM u");
    return true;
}

static bool build_keyed(sql_builder *b, apply_stmt_kind kind, const bool *new_present,
                        const bool *old_present, char *err, size_t errlen)
{
    const table_config *cfg = b->t->cfg;
    switch (kind) {
    case APPLY_STMT_UPSERT_GUARDED:
        if (cfg->kind != TABLE_UUID_MAPPED) {
            snprintf(err, errlen, "a guarded upsert needs a UUID-mapped table");
            return false;
        }
        b->guarded = true;
        /* fall through */
    case APPLY_STMT_UPSERT:
        strbuf_append(b->sql, "INSERT INTO ");
        append_table(b);
        if (!append_insert_body(b, new_present, false, err, errlen))
            return false;
        append_on_conflict(b, new_present);
        return true;
    case APPLY_STMT_UPDATE:
        return append_update_set(b, new_present, err, errlen) &&
               append_key_where(b, new_present, old_present, err, errlen);
    case APPLY_STMT_DELETE:
        if (is_referenced_parent(b))
            return build_recorded_delete(b, new_present, old_present, err, errlen);
        strbuf_append(b->sql, "DELETE FROM ");
        append_table(b);
        return append_key_where(b, new_present, old_present, err, errlen);
    case APPLY_STMT_KEY_UPDATE:
        if (cfg->kind == TABLE_UUID_MAPPED)
            return build_recorded_key_update(b, new_present, old_present, err, errlen);
        return build_keyed(b, APPLY_STMT_UPDATE, new_present, old_present, err, errlen);
    case APPLY_STMT_SOFT_DELETE:
        append_soft_delete_set(b);
        return append_key_where(b, new_present, old_present, err, errlen);
    default:
        snprintf(err, errlen, "statement kind %d needs a keyless table", (int)kind);
        return false;
    }
}

static bool build_keyless(sql_builder *b, apply_stmt_kind kind, const bool *new_present,
                          const bool *old_present, char *err, size_t errlen)
{
    switch (kind) {
    case APPLY_STMT_INSERT:
        strbuf_append(b->sql, "INSERT INTO ");
        append_table(b);
        return append_insert_body(b, new_present, false, err, errlen);
    case APPLY_STMT_KL_UPDATE:
    case APPLY_STMT_KL_UPSERT:
        if (kind == APPLY_STMT_KL_UPSERT)
            strbuf_append(b->sql, "WITH u AS (");
        if (!append_update_set(b, new_present, err, errlen) ||
            !append_one_row_where(b, old_present, err, errlen))
            return false;
        if (kind == APPLY_STMT_KL_UPDATE)
            return true;
        strbuf_append(b->sql, " RETURNING 1) INSERT INTO ");
        append_table(b);
        if (!append_insert_body(b, new_present, true, err, errlen))
            return false;
        strbuf_append(b->sql, " WHERE NOT EXISTS (SELECT 1 FROM u)");
        return true;
    case APPLY_STMT_KL_DELETE:
        strbuf_append(b->sql, "DELETE FROM ");
        append_table(b);
        return append_one_row_where(b, old_present, err, errlen);
    case APPLY_STMT_KL_SOFT_DELETE:
        append_soft_delete_set(b);
        return append_one_row_where(b, old_present, err, errlen);
    default:
        snprintf(err, errlen, "statement kind %d needs a keyed table", (int)kind);
        return false;
    }
}

bool apply_sql_build(const wb_config *cfg, const table_plan *t, apply_stmt_kind kind,
                     const bool *new_present, const bool *old_present, apply_stmt *out, char *err,
                     size_t errlen)
{
    return apply_sql_build_rows(cfg, t, kind, new_present, old_present, 1, NULL, out, err, errlen);
}

bool apply_sql_build_rows(const wb_config *cfg, const table_plan *t, apply_stmt_kind kind,
                          const bool *new_present, const bool *old_present, int nrows,
                          const bool *moved, apply_stmt *out, char *err, size_t errlen)
{
    if (nrows < 1 || (nrows > 1 && kind != APPLY_STMT_UPSERT && kind != APPLY_STMT_UPSERT_GUARDED &&
                      kind != APPLY_STMT_INSERT)) {
        snprintf(err, errlen, "%d rows in one statement are only possible for inserts", nrows);
        return false;
    }
    strbuf sql;
    strbuf_init(&sql);
    sql_builder b = {.cfg = cfg, .t = t, .sql = &sql, .nrows = nrows, .moved = moved};
    bool keyless = t->cfg->kind == TABLE_KEYLESS || t->nkey_columns == 0;
    bool ok = keyless ? build_keyless(&b, kind, new_present, old_present, err, errlen)
                      : build_keyed(&b, kind, new_present, old_present, err, errlen);
    if (!ok) {
        strbuf_free(&sql);
        free(b.params);
        return false;
    }
    out->sql = strbuf_detach(&sql);
    out->params = b.params;
    out->nparams = b.nparams;
    out->nrows = nrows;
    return true;
}

void apply_stmt_free(apply_stmt *s)
{
    free(s->sql);
    free(s->params);
    s->sql = NULL;
    s->params = NULL;
    s->nparams = 0;
    s->nrows = 0;
}

void apply_sql_truncate(const wb_config *cfg, const int *tables, size_t ntables, strbuf *out)
{
    strbuf_append(out, "TRUNCATE ");
    for (size_t i = 0; i < ntables; i++) {
        const table_config *t = &cfg->tables[tables[i]];
        if (i > 0)
            strbuf_append(out, ", ");
        pgconn_append_qualified(out, t->target_schema, t->target_name);
    }
}

void apply_sql_gone_table_create(strbuf *out)
{
    strbuf_appendf(out,
                   "CREATE TEMP TABLE IF NOT EXISTS %s (tbl integer, lk text, tk uuid,"
                   " PRIMARY KEY (tbl, lk)) ON COMMIT DELETE ROWS",
                   APPLY_GONE_TABLE);
}

void apply_sql_moved_keys_create(const char *state_schema, strbuf *out)
{
    strbuf_append(out, "CREATE TABLE IF NOT EXISTS ");
    pgconn_append_qualified(out, state_schema, "moved_keys");
    strbuf_append(out, " (table_oid oid NOT NULL, old_key text NOT NULL, target_key uuid NOT NULL,"
                       " at timestamptz NOT NULL)");
}

void apply_sql_moved_keys_index(const char *state_schema, strbuf *out)
{
    strbuf_append(out, "CREATE INDEX IF NOT EXISTS moved_keys_target_key ON ");
    pgconn_append_qualified(out, state_schema, "moved_keys");
    strbuf_append(out, " (target_key)");
}

void apply_sql_key_uuid(const table_config *t, const char *state_schema, const char *v5,
                        strbuf *out)
{
    strbuf_appendf(out,
                   "(WITH RECURSIVE wb_c(u, n) AS (SELECT (%s)::uuid, 0 UNION ALL SELECT "
                   "overlay(overlay(md5('walbridge:' || wb_c.u::text) placing '8' from 13 for 1) "
                   "placing '8' from 17 for 1)::uuid, wb_c.n + 1 FROM wb_c WHERE wb_c.n < %d AND "
                   "(EXISTS (SELECT 1 FROM ",
                   v5, APPLY_KEY_UUID_MAX);
    pgconn_append_qualified(out, t->target_schema, t->target_name);
    strbuf_append(out, " x WHERE x.");
    pgconn_append_ident(out, t->target_key);
    strbuf_append(out, " = wb_c.u) OR EXISTS (SELECT 1 FROM ");
    pgconn_append_qualified(out, state_schema, "moved_keys");
    strbuf_append(out, " m WHERE m.target_key = wb_c.u))) SELECT wb_c.u FROM wb_c ORDER BY wb_c.n "
                       "DESC LIMIT 1)");
}

void apply_sql_ref_fallback(const wb_config *cfg, int parent, const bool *moved, const char *v5,
                            strbuf *out)
{
    if (moved != NULL && moved[parent])
        apply_sql_key_uuid(&cfg->tables[parent], cfg->state_schema, v5, out);
    else
        strbuf_append(out, v5);
}

void apply_sql_conflict_insert(const char *state_schema, strbuf *out)
{
    strbuf_append(out, "INSERT INTO ");
    pgconn_append_qualified(out, state_schema, "conflicts");
    strbuf_append(out, " (at, slot, lsn, table_name, kind, key)"
                       " VALUES (now(), $1, $2::pg_lsn, $3, $4, $5)");
}
