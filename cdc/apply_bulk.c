/*
 * apply_bulk.c — the bulk path of the stream applier (see apply_bulk.h):
 * long runs of inserts into one table go through COPY into a TEMP staging
 * table and one set-based upsert, with the row path's exact semantics.
 *
 * Staging columns (wb_bulk_<table index>): c<i> for every catalog column i
 * that travels (keys and references in source form, typed as on the source;
 * data columns typed as the target column, so COPY's input parsing matches
 * the row path's untyped parameters), r<i> uuid for every reference (UUIDv5
 * under the parent's source name), wb_id uuid (UUIDv5 of the row's key,
 * UUID-mapped tables), wb_lsn and wb_key (the row's LSN and key text, for
 * conflict records).
 *
 * Overlap: a finished run's upsert is sent asynchronously; while the server
 * applies it, the stream keeps decoding and the next run's COPY lines wait in
 * a bounded buffer (PENDING_MAX), sent as soon as the upsert's result is in.
 * So decoding on the source and applying on the target proceed together.
 *
 * Direct runs: an insert run into a table with no reference column (nothing to
 * resolve in SQL) and no moved keys is COPYed straight into the target table
 * behind SAVEPOINT wb_bulk: COPY's batched heap inserts cost the server about a
 * third less than staging plus INSERT ... SELECT.  The run's staging lines are
 * kept meanwhile (at most DIRECT_RUN_MAX bytes: the run is cut there); on a
 * unique violation (a key the target already holds) the savepoint is rolled
 * back and the kept lines take the staging path and its counting upsert, so
 * conflicts are counted and recorded exactly as before.  If the server refuses
 * COPY into the table (row-level security, say), that table uses staging for
 * the rest of the session.
 */
#include "cdc/apply_bulk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdc/apply_internal.h"
#include "common/copytext.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/uuidmap.h"

#define KEYSET_SLOTS (2 * APPLY_BULK_RUN_ROWS) /* power of two, half full at most */
#define PENDING_MAX (4 * 1024 * 1024)          /* COPY bytes held while an upsert runs */
#define DIRECT_RUN_MAX (8 * 1024 * 1024)       /* staging lines kept by a direct run */
#define SAVEPOINT_UNDO "ROLLBACK TO SAVEPOINT wb_bulk; RELEASE SAVEPOINT wb_bulk"

struct apply_bulk {
    int count_table;         /* table of the consecutive inserts counted so far, -1 none */
    long count;              /* how many (sent on the row path) */
    bool count_updates;      /* they are full-row updates */
    bool in_run;             /* a run is open: copying, applying or pending rows */
    int table;               /* the run's table */
    bool guarded;            /* the run's upsert checks for a UUIDv5 taken by a moved row */
    bool updates;            /* the run holds full-row updates (not inserts) */
    bool optimistic;         /* the applying run was sent as a plain INSERT (see send_apply) */
    bool direct;             /* the run being gathered is COPYed into the table itself */
    bool no_direct;          /* a direct run met an existing key: staging until the inserts end */
    bool *direct_refused;    /* per table: the server refused COPY into it (this session) */
    strbuf kept;             /* a direct run's staging lines, for the fallback */
    long rows;               /* rows of the run being gathered (copied or pending) */
    wb_lsn first_lsn;        /* LSN of its first row (messages) */
    bool copying;            /* a COPY into the staging table is open */
    bool applying;           /* the upsert of the previous run is in flight */
    long applying_rows;      /* its rows */
    wb_lsn applying_lsn;     /* its first row's LSN */
    strbuf pending;          /* COPY lines gathered while the upsert runs (bounded) */
    struct timespec started; /* when the run's gathering began */
    double staged_ms;        /* the applying run's gathering time */
    uint64_t *keys;          /* KEYSET_SLOTS hashes of the run's keys, 0 = empty */
    strbuf line;             /* the COPY line being built */
    strbuf sql;
};

/* ---- pure SQL ---- */

static bool is_reference(const wb_config *cfg, const table_plan *t, size_t i)
{
    const column_plan *c = &t->columns[i];
    return c->role == COLROLE_REFERENCE && c->ref_parent >= 0 &&
           (size_t)c->ref_parent < cfg->ntables &&
           cfg->tables[c->ref_parent].kind == TABLE_UUID_MAPPED;
}

static const char *target_name(const table_plan *t, size_t i)
{
    if (t->cfg->kind == TABLE_UUID_MAPPED && apply_sql_is_key_column(t, i))
        return t->cfg->legacy_key;
    return t->columns[i].target;
}

static bool is_bytea(const table_plan *t, size_t i)
{
    return t->columns[i].source_type != NULL && strcmp(t->columns[i].source_type, "bytea") == 0;
}

static void append_stage_name(const table_plan *t, strbuf *out)
{
    strbuf_appendf(out, "pg_temp.wb_bulk_%d", t->index);
}

bool apply_bulk_table_ok(const wb_config *cfg, const table_plan *t)
{
    if (t->cfg->kind == TABLE_KEYLESS || t->nkey_columns == 0)
        return false;
    for (size_t k = 0; k < t->nkey_columns; k++) {
        /* A key that is also a reference would need the parent lookup to match the
         * upsert's RETURNING back to its staged row: such tables keep the row path. */
        if (!apply_sql_column_travels(t, (size_t)t->key_columns[k]) ||
            is_reference(cfg, t, (size_t)t->key_columns[k]))
            return false;
    }
    return true;
}

void apply_bulk_sql_stage(const wb_config *cfg, const table_plan *t, strbuf *out)
{
    /* The upsert's estimated cost starts JIT compilation, which takes longer than the
     * statement itself (~0.5 s for 65k rows); the stream session never gains from it. */
    strbuf_append(out, "SET jit = off; CREATE TEMP TABLE IF NOT EXISTS ");
    append_stage_name(t, out);
    strbuf_append(out, " (");
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i))
            continue;
        const column_plan *c = &t->columns[i];
        bool source_typed = is_reference(cfg, t, i) ||
                            (t->cfg->kind == TABLE_UUID_MAPPED && apply_sql_is_key_column(t, i)) ||
                            c->target_type == NULL;
        strbuf_appendf(out, "c%zu %s, ", i, source_typed ? c->source_type : c->target_type);
    }
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (apply_sql_column_travels(t, i) && is_reference(cfg, t, i))
            strbuf_appendf(out, "r%zu uuid, ", i);
    }
    if (t->cfg->kind == TABLE_UUID_MAPPED)
        strbuf_append(out, "wb_id uuid, ");
    strbuf_append(out, "wb_lsn pg_lsn, wb_key text) ON COMMIT DELETE ROWS; TRUNCATE ");
    append_stage_name(t, out);
}

/* "(columns)": the travelling columns by target name, the target key first or last. */
static void append_column_list(const table_plan *t, bool key_last, strbuf *out)
{
    bool mapped = t->cfg->kind == TABLE_UUID_MAPPED, any = false;
    strbuf_append_char(out, '(');
    if (mapped && !key_last) {
        pgconn_append_ident(out, t->cfg->target_key);
        any = true;
    }
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i))
            continue;
        strbuf_append(out, any ? ", " : "");
        pgconn_append_ident(out, target_name(t, i));
        any = true;
    }
    if (mapped && key_last) {
        strbuf_append(out, any ? ", " : "");
        pgconn_append_ident(out, t->cfg->target_key);
    }
    strbuf_append_char(out, ')');
}

/* "T (columns)" */
static void append_table_columns(const table_plan *t, bool key_last, strbuf *out)
{
    pgconn_append_qualified(out, t->cfg->target_schema, t->cfg->target_name);
    strbuf_append_char(out, ' ');
    append_column_list(t, key_last, out);
}

void apply_bulk_sql_direct(const table_plan *t, strbuf *out)
{
    strbuf_append(out, "SAVEPOINT wb_bulk; COPY ");
    append_table_columns(t, true, out);
    strbuf_append(out, " FROM STDIN");
}

void apply_bulk_sql_copy(const table_plan *t, strbuf *out)
{
    strbuf_append(out, "COPY ");
    append_stage_name(t, out);
    strbuf_append(out, " FROM STDIN");
}

/* The value written for column i of staged row s (see apply_bulk.h). */
static void append_value(const wb_config *cfg, const table_plan *t, size_t i, const bool *moved,
                         strbuf *out)
{
    if (!is_reference(cfg, t, i)) {
        strbuf_appendf(out, "s.c%zu", i);
        return;
    }
    const table_config *p = &cfg->tables[t->columns[i].ref_parent];
    strbuf_appendf(out, "COALESCE(p%zu.", i);
    pgconn_append_ident(out, p->target_key); /* New values name a live parent (apply_sql.h): no
                                                deleted-keys lookup, as the row path. */
    char v5[32];
    snprintf(v5, sizeof v5, "s.r%zu", i);
    strbuf_append(out, ", ");
    apply_sql_ref_fallback(cfg, t->columns[i].ref_parent, moved, v5, out);
    strbuf_append_char(out, ')');
}

/* "SELECT <the row's values> FROM staging s LEFT JOIN <parents>", in append_column_list's
 * order (key first). */
static void append_select(const wb_config *cfg, const table_plan *t, bool guarded,
                          const bool *moved, strbuf *out)
{
    bool mapped = t->cfg->kind == TABLE_UUID_MAPPED;
    strbuf_append(out, "SELECT ");
    if (mapped && !guarded) {
        strbuf_append(out, "s.wb_id, ");
    } else if (mapped) {
        /* UUIDv5 of the key, unless a row moved by a key change holds or held it. */
        apply_sql_key_uuid(t->cfg, cfg->state_schema, "s.wb_id", out);
        strbuf_append(out, ", ");
    }
    bool any = false;
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i))
            continue;
        strbuf_append(out, any ? ", " : "");
        append_value(cfg, t, i, moved, out);
        any = true;
    }
    strbuf_append(out, " FROM ");
    append_stage_name(t, out);
    strbuf_append(out, " s");
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i) || !is_reference(cfg, t, i))
            continue;
        const table_config *p = &cfg->tables[t->columns[i].ref_parent];
        strbuf_append(out, " LEFT JOIN ");
        pgconn_append_qualified(out, p->target_schema, p->target_name);
        strbuf_appendf(out, " p%zu ON p%zu.", i, i);
        pgconn_append_ident(out, p->legacy_key);
        strbuf_appendf(out, " = s.c%zu", i);
    }
}

static void append_insert(const wb_config *cfg, const table_plan *t, bool guarded,
                          const bool *moved, strbuf *out)
{
    strbuf_append(out, "INSERT INTO ");
    append_table_columns(t, false, out);
    strbuf_append_char(out, ' ');
    append_select(cfg, t, guarded, moved, out);
}

/* "SET a = P.a, ..." over the non-key travelling columns (a no-op key assignment when
 * there is none, so the row still counts). */
static void append_assignments(const table_plan *t, const char *from, strbuf *out)
{
    strbuf_append(out, " SET ");
    bool any = false;
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i) || apply_sql_is_key_column(t, i))
            continue;
        strbuf_append(out, any ? ", " : "");
        pgconn_append_ident(out, target_name(t, i));
        strbuf_appendf(out, " = %s.", from);
        pgconn_append_ident(out, target_name(t, i));
        any = true;
    }
    if (!any) {
        const char *name = target_name(t, (size_t)t->key_columns[0]);
        pgconn_append_ident(out, name);
        strbuf_appendf(out, " = %s.", from);
        pgconn_append_ident(out, name);
    }
}

/* " ON CONFLICT (keys) DO UPDATE SET ... RETURNING (xmax = 0), keys[, tk]" */
static void append_conflict(const table_plan *t, bool guarded, strbuf *out)
{
    strbuf_append(out, " ON CONFLICT (");
    for (size_t k = 0; k < t->nkey_columns; k++) {
        strbuf_append(out, k > 0 ? ", " : "");
        pgconn_append_ident(out, target_name(t, (size_t)t->key_columns[k]));
    }
    strbuf_append(out, ") DO UPDATE");
    append_assignments(t, "EXCLUDED", out);
    strbuf_append(out, " RETURNING (xmax = 0)");
    for (size_t k = 0; k < t->nkey_columns; k++) {
        strbuf_append(out, ", ");
        pgconn_append_ident(out, target_name(t, (size_t)t->key_columns[k]));
    }
    if (guarded) {
        strbuf_append(out, ", ");
        pgconn_append_ident(out, t->cfg->target_key);
    }
}

void apply_bulk_sql_apply(const wb_config *cfg, const table_plan *t, bool guarded, bool updates,
                          const bool *moved, strbuf *out)
{
    guarded = guarded && !updates && t->cfg->kind == TABLE_UUID_MAPPED;
    strbuf_append(out, "WITH ins (wb_inserted");
    for (size_t k = 0; k < t->nkey_columns; k++)
        strbuf_appendf(out, ", wb_k%zu", k);
    strbuf_append(out, guarded ? ", wb_tk) AS (" : ") AS (");
    append_insert(cfg, t, guarded, moved, out);
    append_conflict(t, guarded, out);
    if (updates)
        strbuf_append(out, "), bad AS (SELECT 'update_missing' AS kind, s.wb_key, s.wb_lsn FROM "
                           "(SELECT * FROM ins WHERE wb_inserted)");
    else
        strbuf_append(out, "), bad AS (SELECT CASE WHEN i.wb_inserted THEN 'uuid_taken'"
                           " ELSE 'insert_existing' END AS kind, s.wb_key, s.wb_lsn FROM ");
    if (!updates)
        strbuf_append(out, guarded ? "ins" : "(SELECT * FROM ins WHERE NOT wb_inserted)");
    strbuf_append(out, " i JOIN ");
    append_stage_name(t, out);
    strbuf_append(out, " s ON ");
    for (size_t k = 0; k < t->nkey_columns; k++)
        strbuf_appendf(out, "%ss.c%d = i.wb_k%zu", k > 0 ? " AND " : "", t->key_columns[k], k);
    if (guarded)
        strbuf_append(out, " WHERE NOT i.wb_inserted OR i.wb_tk <> s.wb_id");
    strbuf_append(out, "), rec AS (INSERT INTO ");
    pgconn_append_qualified(out, cfg->state_schema, "conflicts");
    strbuf_append(out, " (at, slot, lsn, table_name, kind, key) SELECT now(), $1, b.wb_lsn, $2,"
                       " b.kind, b.wb_key FROM bad b) SELECT kind, wb_key, wb_lsn::text"
                       " FROM bad ORDER BY wb_lsn");
}

void apply_bulk_sql_update(const wb_config *cfg, const table_plan *t, const bool *moved,
                           strbuf *out)
{
    strbuf_append(out, PGCONN_JOINS_BY_INDEX "; UPDATE ");
    pgconn_append_qualified(out, t->cfg->target_schema, t->cfg->target_name);
    strbuf_append(out, " t");
    append_assignments(t, "x", out);
    strbuf_append(out, " FROM (");
    append_select(cfg, t, false, moved, out);
    strbuf_append(out, ") x ");
    append_column_list(t, false, out);
    for (size_t k = 0; k < t->nkey_columns; k++) {
        const char *name = target_name(t, (size_t)t->key_columns[k]);
        strbuf_append(out, k > 0 ? " AND t." : " WHERE t.");
        pgconn_append_ident(out, name);
        strbuf_append(out, " = x.");
        pgconn_append_ident(out, name);
    }
    strbuf_append(out, "; " PGCONN_JOINS_RESET);
}

void apply_bulk_sql_plain(const wb_config *cfg, const table_plan *t, const bool *moved, strbuf *out)
{
    strbuf_append(out, "SAVEPOINT wb_bulk; ");
    append_insert(cfg, t, false, moved, out);
    strbuf_append(out, "; RELEASE SAVEPOINT wb_bulk");
}

void apply_bulk_copy_line(const wb_config *cfg, const table_plan *t, const w2j_value *const *values,
                          const char *key, const char *lsn_text, strbuf *out)
{
    char uuid[UUID_TEXT_LEN + 1];
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i))
            continue;
        const w2j_value *v = values[i];
        if (v != NULL && v->text != NULL && is_bytea(t, i)) {
            strbuf_append(out, "\\\\x"); /* "\x" escaped */
            copytext_escape(out, v->text, v->len);
        } else {
            copytext_escape(out, v != NULL ? v->text : NULL, v != NULL ? v->len : 0);
        }
        strbuf_append_char(out, '\t');
    }
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (!apply_sql_column_travels(t, i) || !is_reference(cfg, t, i))
            continue;
        const w2j_value *v = values[i];
        if (v == NULL || v->text == NULL) {
            strbuf_append(out, "\\N\t");
            continue;
        }
        uuidmap_v5(cfg->uuid_namespace, cfg->tables[t->columns[i].ref_parent].source, v->text,
                   uuid);
        strbuf_append(out, uuid);
        strbuf_append_char(out, '\t');
    }
    if (t->cfg->kind == TABLE_UUID_MAPPED) {
        const w2j_value *v = values[t->key_columns[0]];
        uuidmap_v5(cfg->uuid_namespace, t->cfg->source, v != NULL && v->text ? v->text : "", uuid);
        strbuf_append(out, uuid);
        strbuf_append_char(out, '\t');
    }
    strbuf_append(out, lsn_text);
    strbuf_append_char(out, '\t');
    copytext_escape(out, key, strlen(key));
    strbuf_append_char(out, '\n');
}

/* ---- the run ---- */

apply_bulk *apply_bulk_new(void)
{
    apply_bulk *b = wb_xcalloc(1, sizeof *b);
    b->count_table = -1;
    b->table = -1;
    strbuf_init(&b->pending);
    strbuf_init(&b->kept);
    strbuf_init(&b->line);
    strbuf_init(&b->sql);
    return b;
}

void apply_bulk_free(apply_bulk *b)
{
    if (b == NULL)
        return;
    free(b->keys);
    free(b->direct_refused);
    strbuf_free(&b->pending);
    strbuf_free(&b->kept);
    strbuf_free(&b->line);
    strbuf_free(&b->sql);
    free(b);
}

/* Key text for conflict records, as the row path writes it (apply.c key_text). */
static void row_key_text(const applier *a, const table_plan *t, strbuf *out)
{
    for (size_t j = 0; j < t->nkey_columns && out->len < 200; j++) {
        size_t col = (size_t)t->key_columns[j];
        const w2j_value *v = a->new_vals[col];
        if (t->nkey_columns > 1)
            strbuf_appendf(out, "%s%s=", out->len > 0 ? ", " : "", t->columns[col].source);
        strbuf_append(out, v->text);
    }
}

static void keyset_clear(apply_bulk *b)
{
    if (b->keys == NULL)
        b->keys = wb_xmalloc(KEYSET_SLOTS * sizeof *b->keys);
    memset(b->keys, 0, KEYSET_SLOTS * sizeof *b->keys);
}

/* Adds the key's hash to the run's set; false when it is (probably) there already. */
static bool keyset_add(apply_bulk *b, const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    if (h == 0)
        h = 1;
    size_t mask = KEYSET_SLOTS - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (b->keys[i] == h)
            return false;
        if (b->keys[i] == 0) {
            b->keys[i] = h;
            return true;
        }
    }
}

/* The row can go the bulk way: keyed table, every travelling column present, key not NULL. */
static bool row_eligible(const applier *a, const table_plan *t, bool update)
{
    if (!apply_bulk_table_ok(a->cfg, t))
        return false;
    for (size_t k = 0; update && k < t->nkey_columns; k++) {
        const w2j_value *o = a->old_vals[t->key_columns[k]];
        const w2j_value *n = a->new_vals[t->key_columns[k]];
        if (o != NULL && (n == NULL || o->text == NULL || n->text == NULL || o->len != n->len ||
                          memcmp(o->text, n->text, n->len) != 0))
            return false; /* a key change: the row path moves the row */
    }
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (apply_sql_column_travels(t, i) && a->new_vals[i] == NULL)
            return false;
    }
    for (size_t k = 0; k < t->nkey_columns; k++) {
        if (a->new_vals[t->key_columns[k]]->text == NULL)
            return false;
    }
    return true;
}

static double ms_since(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

/* Empties a direct run's kept lines (releasing a buffer grown past its bound). */
static void forget_kept(apply_bulk *b)
{
    strbuf_reset(&b->kept);
    if (b->kept.cap > DIRECT_RUN_MAX * 2) {
        strbuf_free(&b->kept);
        strbuf_init(&b->kept);
    }
}

/* Forgets the run; drains whatever the server still sends for it. */
static void drop_run(applier *a)
{
    apply_bulk *b = a->bulk;
    if (b->copying && PQputCopyEnd(a->conn, "walbridge: run abandoned") == 1)
        b->applying = true; /* its error result follows */
    if (b->applying) {
        PGresult *res;
        while ((res = PQgetResult(a->conn)) != NULL)
            PQclear(res);
    }
    b->copying = b->applying = b->in_run = b->direct = b->no_direct = false;
    b->rows = b->applying_rows = 0;
    strbuf_reset(&b->pending);
    if (b->pending.cap > PENDING_MAX * 2) {
        strbuf_free(&b->pending);
        strbuf_init(&b->pending);
    }
    forget_kept(b);
    b->count_table = -1;
    b->count = 0;
}

/* After a failure outside pipeline mode: back into it so salvage can use the savepoint. */
static bool fail_run(applier *a, const PGresult *res, const char *what, wb_lsn lsn, bool *retryable)
{
    apply_bulk *b = a->bulk;
    pgerr_class cls = apply_report_result(a, res, what, b->table, a->xid, lsn);
    *retryable = cls == PGERR_RETRY;
    drop_run(a);
    a->server_failed = true;
    if (PQstatus(a->conn) != CONNECTION_OK)
        a->broken = true;
    else if (!a->in_pipeline && PQenterPipelineMode(a->conn) == 1)
        a->in_pipeline = true;
    return false;
}

/*
 * Reads every pending result; returns the first that is not COMMAND_OK (caller clears),
 * or NULL.  updated (or NULL): the row count of the UPDATE among them, -1 when none ran.
 */
static PGresult *first_failure(PGconn *conn, long *updated)
{
    PGresult *failed = NULL, *res;
    if (updated != NULL)
        *updated = -1;
    while ((res = PQgetResult(conn)) != NULL) {
        if (failed == NULL && PQresultStatus(res) != PGRES_COMMAND_OK) {
            failed = res;
            continue;
        }
        if (updated != NULL && strncmp(PQcmdStatus(res), "UPDATE ", 7) == 0)
            *updated = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    return failed;
}

/* A key the target already holds (SQLSTATE 23505). */
static bool unique_violation(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state != NULL && strcmp(state, "23505") == 0;
}

/* Runs one savepoint statement of a run (outside pipeline mode); false after fail_run. */
static bool savepoint_step(applier *a, const char *sql, wb_lsn lsn, bool *retryable)
{
    PGresult *res = PQexec(a->conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fail_run(a, res, "bulk insert: savepoint", lsn, retryable);
    PQclear(res);
    return ok;
}

/* Opens the COPY into the (emptied) staging table and sends the pending lines. */
static bool start_copy(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    const table_plan *t = &a->cat->tables[b->table];
    const char *steps[2] = {"bulk insert: staging table", "bulk insert: COPY"};
    ExecStatusType want[2] = {PGRES_COMMAND_OK, PGRES_COPY_IN};
    for (int i = 0; i < 2; i++) {
        strbuf_reset(&b->sql);
        if (i == 0)
            apply_bulk_sql_stage(a->cfg, t, &b->sql);
        else
            apply_bulk_sql_copy(t, &b->sql);
        PGresult *res = PQexec(a->conn, b->sql.data);
        bool ok = PQresultStatus(res) == want[i];
        if (!ok)
            fail_run(a, res, steps[i], b->first_lsn, retryable);
        PQclear(res);
        if (!ok)
            return false;
    }
    b->copying = true;
    if (b->pending.len > 0 && PQputCopyData(a->conn, b->pending.data, (int)b->pending.len) != 1)
        return fail_run(a, NULL, "bulk insert: sending COPY data", b->first_lsn, retryable);
    strbuf_reset(&b->pending);
    return true;
}

/* Counts and logs the conflicts the run's statement found (it recorded them itself). */
static void account_run(applier *a, const PGresult *res)
{
    apply_bulk *b = a->bulk;
    if (b->updates)
        a->stats.rows_updated += (uint64_t)b->applying_rows;
    else
        a->stats.rows_inserted += (uint64_t)b->applying_rows;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *kind = PQgetvalue(res, r, 0);
        bool existing = strcmp(kind, "insert_existing") == 0;
        bool missing = strcmp(kind, "update_missing") == 0;
        if (existing)
            a->stats.conflicts_insert_existing++;
        if (missing)
            a->stats.conflicts_update_missing++;
        log_warn("apply: conflict %s on %s key %s at LSN %s (xid %u): %s", kind,
                 apply_table_name(a, b->table), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                 a->xid,
                 existing  ? "existing row updated"
                 : missing ? "row inserted"
                           : "its UUIDv5 belongs to a row moved by a key change: inserted with the "
                             "next UUID of its chain (a UUIDv8 derived from it)");
    }
}

/* Ends the COPY and sends the upsert of the staged rows without waiting for it. */
static bool send_apply(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    if (PQputCopyEnd(a->conn, NULL) != 1)
        return fail_run(a, NULL, "bulk insert: ending COPY", b->first_lsn, retryable);
    b->copying = false;
    PGresult *res = PQgetResult(a->conn);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        b->applying = true; /* drain the rest */
        fail_run(a, res, "bulk insert: COPY", b->first_lsn, retryable);
    }
    PQclear(res);
    if (!ok)
        return false;
    while ((res = PQgetResult(a->conn)) != NULL)
        PQclear(res);
    const table_plan *t = &a->cat->tables[b->table];
    strbuf_reset(&b->sql);
    /* Inserts are usually new rows: a plain INSERT (half the server's work of the upsert
     * with its conflict bookkeeping) in a savepoint, redone as the upsert on a conflict. */
    b->optimistic = !b->updates && !b->guarded && !b->no_direct;
    int sent;
    if (b->optimistic) {
        apply_bulk_sql_plain(a->cfg, t, a->guarded, &b->sql);
        sent = PQsendQuery(a->conn, b->sql.data);
    } else if (b->updates) {
        /* Updates are usually of rows the target holds: a plain UPDATE (a quarter less of
         * the server's work than the upsert), followed by the upsert when rows were missing. */
        apply_bulk_sql_update(a->cfg, t, a->guarded, &b->sql);
        sent = PQsendQuery(a->conn, b->sql.data);
    } else {
        apply_bulk_sql_apply(a->cfg, t, b->guarded, b->updates, a->guarded, &b->sql);
        const char *params[2] = {a->cfg->slot, t->cfg->source};
        sent = PQsendQueryParams(a->conn, b->sql.data, 2, NULL, params, NULL, NULL, 0);
    }
    if (sent != 1)
        return fail_run(a, NULL, "bulk insert", b->first_lsn, retryable);
    b->applying = true;
    b->applying_rows = b->rows;
    b->applying_lsn = b->first_lsn;
    b->staged_ms = ms_since(&b->started);
    clock_gettime(CLOCK_MONOTONIC, &b->started);
    b->rows = 0;
    keyset_clear(b);
    return true;
}

/* Runs the run's upsert (outside pipeline mode) and returns its result, or NULL after fail_run. */
static PGresult *run_upsert(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    const table_plan *t = &a->cat->tables[b->table];
    strbuf_reset(&b->sql);
    apply_bulk_sql_apply(a->cfg, t, false, b->updates, a->guarded, &b->sql);
    const char *params[2] = {a->cfg->slot, t->cfg->source};
    PGresult *res = PQexecParams(a->conn, b->sql.data, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_run(a, res, b->updates ? "bulk update" : "bulk insert", b->applying_lsn, retryable);
        PQclear(res);
        return NULL;
    }
    return res;
}

/*
 * Reads the results of a plain INSERT run (SAVEPOINT; INSERT; RELEASE).  On a
 * unique violation, rolls back to the savepoint and runs the upsert instead.
 * Returns the result to account (caller clears), or NULL after a failure.
 */
static PGresult *read_plain(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    PGresult *failed = first_failure(a->conn, NULL);
    if (failed == NULL)
        return PQmakeEmptyPGresult(a->conn, PGRES_COMMAND_OK);
    if (!unique_violation(failed)) {
        fail_run(a, failed, "bulk insert", b->applying_lsn, retryable);
        PQclear(failed);
        return NULL;
    }
    PQclear(failed);
    if (!savepoint_step(a, SAVEPOINT_UNDO, b->applying_lsn, retryable))
        return NULL;
    return run_upsert(a, retryable);
}

/*
 * Reads the results of an update run's plain UPDATE (apply_bulk_sql_update).  When it
 * matched fewer rows than the run holds (rows missing in the target), runs the upsert
 * too: it inserts those rows and records their update_missing conflicts, and writes
 * the same values again over the rows the UPDATE changed.  Returns the result to
 * account (caller clears), or NULL after a failure.
 */
static PGresult *read_update(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    long matched = -1;
    PGresult *failed = first_failure(a->conn, &matched);
    if (failed != NULL) {
        fail_run(a, failed, "bulk update", b->applying_lsn, retryable);
        PQclear(failed);
        return NULL;
    }
    if (matched == b->applying_rows)
        return PQmakeEmptyPGresult(a->conn, PGRES_COMMAND_OK);
    log_debug("apply: bulk update of %s matched %ld of %ld rows: the upsert inserts the others",
              apply_table_name(a, b->table), matched, b->applying_rows);
    return run_upsert(a, retryable);
}

/*
 * Reads the upsert's result when it is in (or, with wait, until it is), then
 * opens the next COPY for the lines gathered meanwhile.
 */
static bool poll_apply(applier *a, bool wait, bool *retryable)
{
    apply_bulk *b = a->bulk;
    if (!b->applying)
        return true;
    if (!wait) {
        if (PQconsumeInput(a->conn) != 1)
            return fail_run(a, NULL, "bulk insert", b->applying_lsn, retryable);
        if (PQisBusy(a->conn))
            return true;
    }
    PGresult *res = b->optimistic ? read_plain(a, retryable)
                    : b->updates  ? read_update(a, retryable)
                                  : PQgetResult(a->conn);
    if ((b->optimistic || b->updates) && res == NULL)
        return false;
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok) {
        account_run(a, res);
        char lt[LSN_TEXT_MAX];
        log_info("apply: bulk %s of %ld rows into %s in one statement: staged in %.0f ms, "
                 "applied in %.0f ms (run from LSN %s)",
                 b->updates ? "update" : "insert", b->applying_rows, apply_table_name(a, b->table),
                 b->staged_ms, ms_since(&b->started), apply_lsn_text(b->applying_lsn, lt));
    } else {
        fail_run(a, res, "bulk insert", b->applying_lsn, retryable);
    }
    PQclear(res);
    if (!ok)
        return false;
    while ((res = PQgetResult(a->conn)) != NULL)
        PQclear(res);
    b->applying = false;
    b->applying_rows = 0;
    return b->rows == 0 || start_copy(a, retryable);
}

/* ---- direct runs (see the top of this file) ---- */

/* The run being started can be COPYed into the table itself. */
static bool direct_ok(const applier *a)
{
    const apply_bulk *b = a->bulk;
    const table_plan *t = &a->cat->tables[b->table];
    if (b->updates || b->guarded || b->no_direct ||
        (b->direct_refused != NULL && b->direct_refused[b->table]))
        return false;
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (apply_sql_column_travels(t, i) && is_reference(a->cfg, t, i))
            return false;
    }
    return true;
}

/*
 * Opens the COPY into the table.  When the server refuses it for this table
 * (not a connection problem), the table takes the staging path from now on
 * and the staging COPY is opened instead.
 */
static bool start_direct(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    strbuf_reset(&b->sql);
    apply_bulk_sql_direct(&a->cat->tables[b->table], &b->sql);
    PGresult *res = PQexec(a->conn, b->sql.data);
    if (PQresultStatus(res) == PGRES_COPY_IN) {
        PQclear(res);
        b->copying = true;
        return true;
    }
    if (PQstatus(a->conn) != CONNECTION_OK || pgconn_classify(a->conn, res) == PGERR_RETRY) {
        fail_run(a, res, "bulk insert: COPY into the table", b->first_lsn, retryable);
        PQclear(res);
        return false;
    }
    log_info("apply: %s does not take COPY from walbridge (%s): its insert runs use the staging "
             "table from now on",
             apply_table_name(a, b->table), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    PQclear(res);
    if (!savepoint_step(a, SAVEPOINT_UNDO, b->first_lsn, retryable))
        return false;
    if (b->direct_refused == NULL)
        b->direct_refused = wb_xcalloc(a->cfg->ntables + 1, sizeof *b->direct_refused);
    b->direct_refused[b->table] = true;
    b->direct = false;
    return start_copy(a, retryable);
}

/* Sends the current line without its last two fields (LSN, key) and keeps it whole. */
static bool send_direct_line(applier *a, wb_lsn lsn, bool *retryable)
{
    apply_bulk *b = a->bulk;
    size_t n = b->line.len - 1; /* the newline; COPY text escapes tabs inside values */
    for (int tabs = 0; n > 0 && tabs < 2;) {
        if (b->line.data[--n] == '\t')
            tabs++;
    }
    if (PQputCopyData(a->conn, b->line.data, (int)n) != 1 || PQputCopyData(a->conn, "\n", 1) != 1)
        return fail_run(a, NULL, "bulk insert: sending COPY data", lsn, retryable);
    strbuf_append_len(&b->kept, b->line.data, b->line.len);
    return true;
}

/*
 * Ends a direct run: the COPY is done and the savepoint released; or, when a
 * row's key is already in the target, the savepoint is rolled back and the
 * kept lines go the staging way, to the counting upsert (applied async).
 */
static bool finish_direct(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    if (PQputCopyEnd(a->conn, NULL) != 1)
        return fail_run(a, NULL, "bulk insert: ending COPY", b->first_lsn, retryable);
    b->copying = false;
    PGresult *failed = first_failure(a->conn, NULL);
    if (failed != NULL) {
        bool existing = unique_violation(failed);
        if (!existing)
            fail_run(a, failed, "bulk insert: COPY into the table", b->first_lsn, retryable);
        PQclear(failed);
        if (!existing || !savepoint_step(a, SAVEPOINT_UNDO, b->first_lsn, retryable))
            return false;
        log_info("apply: a row of the COPY run into %s is already in the target: the run goes "
                 "through the staging table and its upsert",
                 apply_table_name(a, b->table));
        b->no_direct = true; /* the inserts meet existing rows: no more direct runs for now */
        b->direct = false;
        strbuf swap = b->pending; /* empty: direct runs hold nothing there */
        b->pending = b->kept;
        b->kept = swap;
        return start_copy(a, retryable) && send_apply(a, retryable);
    }
    if (!savepoint_step(a, "RELEASE SAVEPOINT wb_bulk", b->first_lsn, retryable))
        return false;
    if (b->rows > 0) {
        char lt[LSN_TEXT_MAX];
        a->stats.rows_inserted += (uint64_t)b->rows;
        log_info("apply: bulk insert of %ld rows into %s by COPY into the table in %.0f ms (run "
                 "from LSN %s)",
                 b->rows, apply_table_name(a, b->table), ms_since(&b->started),
                 apply_lsn_text(b->first_lsn, lt));
    }
    b->rows = 0;
    keyset_clear(b);
    forget_kept(b);
    clock_gettime(CLOCK_MONOTONIC, &b->started);
    return true;
}

static bool start_run(applier *a, int table, bool guarded, bool updates, wb_lsn lsn,
                      bool *retryable)
{
    apply_bulk *b = a->bulk;
    if (!apply_batch_flush(a, retryable) || !apply_pipeline_finish(a, retryable))
        return false;
    b->in_run = true;
    b->table = table;
    b->guarded = guarded;
    b->updates = updates;
    b->first_lsn = lsn;
    b->rows = 0;
    keyset_clear(b);
    clock_gettime(CLOCK_MONOTONIC, &b->started);
    b->direct = direct_ok(a);
    return b->direct ? start_direct(a, retryable) : start_copy(a, retryable);
}

/* Ends the run being gathered: its upsert goes out once the previous one is done. */
static bool cut_run(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    if (b->direct)
        return !b->copying || finish_direct(a, retryable);
    if (!poll_apply(a, true, retryable))
        return false;
    return b->rows == 0 || send_apply(a, retryable);
}

/* Stages the current row: a COPY line, sent at once or held while an upsert runs. */
static bool stage_row(applier *a, const table_plan *t, const char *key, wb_lsn lsn, bool *retryable)
{
    apply_bulk *b = a->bulk;
    char lt[LSN_TEXT_MAX];
    if (b->rows == 0)
        b->first_lsn = lsn;
    if (b->direct && !b->copying && !start_direct(a, retryable))
        return false;
    if (!b->direct && !b->copying && !b->applying && !start_copy(a, retryable))
        return false;
    strbuf_reset(&b->line);
    apply_bulk_copy_line(a->cfg, t, a->new_vals, key, apply_lsn_text(lsn, lt), &b->line);
    b->rows++;
    if (b->direct) {
        if (!send_direct_line(a, lsn, retryable))
            return false;
    } else if (b->copying) {
        if (PQputCopyData(a->conn, b->line.data, (int)b->line.len) != 1)
            return fail_run(a, NULL, "bulk insert: sending COPY data", lsn, retryable);
    } else {
        strbuf_append_len(&b->pending, b->line.data, b->line.len);
        if (b->pending.len >= PENDING_MAX && !poll_apply(a, true, retryable))
            return false;
    }
    if (b->line.cap > APPLY_SCRATCH_KEEP) {
        strbuf_free(&b->line);
        strbuf_init(&b->line);
    }
    return true;
}

bool apply_bulk_offer(applier *a, int table, const w2j_change *c, bool guarded, bool *taken,
                      bool *retryable)
{
    apply_bulk *b = a->bulk;
    const table_plan *t = &a->cat->tables[table];
    *taken = false;
    bool update = c->action == W2J_UPDATE;
    if (update && guarded)
        return apply_bulk_finish(a, retryable); /* two conflicts per row possible: row path */
    if (!row_eligible(a, t, update) ||
        (b->in_run && (b->table != table || b->guarded != guarded || b->updates != update)))
        return apply_bulk_finish(a, retryable);
    if (!b->in_run) {
        if (b->count_table != table || b->count_updates != update) {
            b->count_table = table;
            b->count_updates = update;
            b->count = 0;
        }
        if (++b->count <= APPLY_BULK_THRESHOLD)
            return true; /* the row path sends it */
        if (!start_run(a, table, guarded, update, c->lsn, retryable))
            return false;
    } else if (b->rows % 64 == 0 && !poll_apply(a, false, retryable)) { /* a recv() now and then */
        return false;
    }
    strbuf key;
    strbuf_init(&key);
    row_key_text(a, t, &key);
    bool ok = true;
    if (!keyset_add(b, key.data) || b->rows >= APPLY_BULK_RUN_ROWS ||
        (b->direct && b->kept.len >= DIRECT_RUN_MAX)) {
        /* A repeated key cannot be upserted twice in one statement: cut the run there. */
        ok = cut_run(a, retryable);
        if (ok)
            (void)keyset_add(b, key.data);
    }
    ok = ok && stage_row(a, t, key.data, c->lsn, retryable);
    strbuf_free(&key);
    *taken = ok;
    return ok;
}

bool apply_bulk_finish(applier *a, bool *retryable)
{
    apply_bulk *b = a->bulk;
    b->count_table = -1;
    b->count = 0;
    if (!b->in_run)
        return true;
    if (!cut_run(a, retryable) || !poll_apply(a, true, retryable))
        return false;
    b->in_run = false;
    b->no_direct = false;
    if (PQenterPipelineMode(a->conn) != 1)
        return fail_run(a, NULL, "entering pipeline mode", b->first_lsn, retryable);
    a->in_pipeline = true;
    a->unflushed = false;
    a->sent_since_push = 0;
    return true;
}

void apply_bulk_abort(applier *a)
{
    drop_run(a); /* applier_abort then rolls the transaction back */
}
