/*
 * apply.c — applies parsed wal2json changes to the target (see apply.h).
 *
 * Session: SET session_replication_role = replica when the role may (skips
 * triggers and FK checks); otherwise one warning, and parents must come
 * before children, which the source's own order gives.
 *
 * Cascades: wal2json sends the child changes of an ON DELETE / ON UPDATE
 * CASCADE after the parent's.  A DELETE or key change of a referenced
 * UUID-mapped row records (legacy key, UUID) in the session TEMP table
 * pg_temp.wb_gone_keys (emptied at COMMIT), and references translate through
 * it when the live parent is gone (apply_sql.h), so the children still find
 * the parent's migrated UUID.  Without the replica role the target's own FKs
 * act first: ON DELETE CASCADE there deletes the children itself (the
 * source's child deletes then count as delete_missing, data equal); NO ACTION
 * or RESTRICT refuses the parent's DELETE (SQLSTATE 23503) and the stream
 * stops before that transaction, so such an FK must be DEFERRABLE INITIALLY
 * DEFERRED (the child deletes follow in the same transaction) or the role
 * needs SET on session_replication_role.  A key change never touches a
 * target FK (it references the UUID, which does not change).
 *
 * Key reuse: a moved row keeps its UUID (often UUIDv5 of its old key); key
 * changes are recorded in <state_schema>.moved_keys, and upserts of a table
 * with a recorded move use UPSERT_GUARDED: a new row whose UUIDv5 is held (or
 * was, by a moved row since deleted) gets the next UUID of apply_sql_key_uuid's
 * chain, recorded as a uuid_taken conflict.  A reference to such a table whose
 * parent row is not there yet takes the same chain, so it names the row the
 * parent's insert creates, not the moved row (a table's first key change
 * rebuilds the cached statements: a->guard_epoch).
 *
 * Throughput (apply_pipeline.c): each (table, statement kind, column set)
 * gets a prepared statement; changes are sent in libpq pipeline mode inside
 * the open target transaction, inserts as multi-row statements, and every
 * result is read back and checked in order.  Statements never need a
 * client-side decision before the next one is sent (source-wins logic lives
 * in SQL: upserts, an UPDATE followed by an upsert on a key change, WITH ...
 * INSERT WHERE NOT EXISTS for keyless rows), so the pipeline keeps the source
 * order exactly.  A source transaction joining a batch gets a SAVEPOINT in
 * front of it, so a change that cannot be applied still lets the complete
 * transactions before it commit (the stream then stops right at it).
 *
 * Conflicts (source wins, DESIGN.md guarantee 3) are counted in apply_stats,
 * logged as a warning naming table, kind, key and LSN, and inserted into
 * <state_schema>.conflicts in the same target transaction as the change, so
 * the operator's conflict log commits or rolls back with the data.  Kinds:
 * insert_existing (the row was updated), update_missing (the row was
 * inserted), update_missing_partial (the update lacked unchanged TOAST values
 * so the row could not be rebuilt: nothing written), delete_missing (no-op),
 * uuid_taken (a new row's UUIDv5 was held by a moved row: random UUID).
 *
 * Batches: a target transaction opens at the first non-skipped BEGIN and
 * closes in applier_flush, which writes the applied LSN (the last commit's
 * end LSN, "nextlsn") with state_set_applied_lsn and then COMMITs; only after
 * COMMIT succeeded does applier_durable_lsn move.  Memory stays bounded: no
 * row is kept after its statement is sent, and at most APPLY_INFLIGHT_HIGH
 * results are outstanding.
 */
#include "cdc/apply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdc/apply_bulk.h"
#include "cdc/apply_internal.h"
#include "cdc/apply_sql.h"
#include "common/log.h"
#include "common/state.h"

/* A failure not coming from the server (bad input, protocol order): never retryable. */
static bool fail_input(bool *retryable, const w2j_change *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail_input(bool *retryable, const w2j_change *c, const char *fmt, ...)
{
    char lt[LSN_TEXT_MAX];
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    log_full(LOG_ERROR, NULL, "Nothing past the last applied LSN is confirmed.",
             "apply: cannot apply %c message at LSN %s (xid %u, table %s%s%s): %s", (char)c->action,
             apply_lsn_text(c->lsn, lt), c->xid, c->schema ? c->schema : "", c->schema ? "." : "",
             c->table ? c->table : "(none)", reason);
    *retryable = false;
    return false;
}

static double elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

/* ---- messages to statements ---- */

static bool text_equal(const w2j_value *x, const w2j_value *y)
{
    if (x->text == NULL || y->text == NULL)
        return x->text == y->text;
    return x->len == y->len && memcmp(x->text, y->text, x->len) == 0;
}

/* Warns once per table and column about a column the catalog does not know. */
static void warn_unknown_column(applier *a, const table_plan *t, const char *column)
{
    strbuf k;
    strbuf_init(&k);
    strbuf_appendf(&k, "%s\x1f%s", t->cfg->source, column);
    for (size_t i = 0; i < a->nwarned; i++) {
        if (strcmp(a->warned[i], k.data) == 0) {
            strbuf_free(&k);
            return;
        }
    }
    a->warned = wb_xrealloc(a->warned, (a->nwarned + 1) * sizeof *a->warned);
    a->warned[a->nwarned++] = strbuf_detach(&k);
    log_full(LOG_WARN, "It was probably added on the source after the stream started.",
             "Add it to the target table and restart the stream to copy it.",
             "apply: column \"%s\" of %s is not in the column plan; its values are skipped", column,
             t->cfg->source);
}

/* Points out[i] at the value of catalog column i (NULL when absent). */
static void map_values(applier *a, const table_plan *t, const w2j_value *vals, size_t n,
                       const w2j_value **out)
{
    size_t cursor = 0; /* wal2json and the plan both follow attnum order */
    for (size_t i = 0; i < n; i++) {
        const char *name = vals[i].name;
        size_t idx;
        if (cursor < t->ncolumns && strcmp(t->columns[cursor].source, name) == 0) {
            idx = cursor;
        } else {
            const column_plan *cp = catalog_find_column(t, name);
            if (cp == NULL) {
                warn_unknown_column(a, t, name);
                continue;
            }
            idx = (size_t)(cp - t->columns);
        }
        out[idx] = &vals[i];
        cursor = idx + 1;
    }
}

static void map_message(applier *a, const table_plan *t, const w2j_change *c)
{
    memset(a->new_vals, 0, t->ncolumns * sizeof *a->new_vals);
    memset(a->old_vals, 0, t->ncolumns * sizeof *a->old_vals);
    map_values(a, t, c->columns, c->ncolumns, a->new_vals);
    map_values(a, t, c->identity, c->nidentity, a->old_vals);
}

/* new_present / old_present for the statement; keyed tables match on key columns. */
static void set_presence(applier *a, const table_plan *t, bool keyless)
{
    bool *np = a->present;
    bool *op = a->present + t->ncolumns;
    for (size_t i = 0; i < t->ncolumns; i++) {
        bool travels = apply_sql_column_travels(t, i);
        np[i] = a->new_vals[i] != NULL && travels;
        op[i] = keyless ? a->old_vals[i] != NULL && travels : apply_sql_is_key_column(t, i);
    }
}

/* Key text for conflict messages: the key values, or a prefix of the row (keyless). */
static char *key_text(const applier *a, const table_plan *t, bool prefer_new)
{
    strbuf sb;
    strbuf_init(&sb);
    bool keyless = t->nkey_columns == 0;
    size_t n = keyless ? t->ncolumns : t->nkey_columns;
    for (size_t j = 0; j < n && sb.len < 200; j++) {
        size_t col = keyless ? j : (size_t)t->key_columns[j];
        const w2j_value *v = prefer_new ? a->new_vals[col] : a->old_vals[col];
        if (v == NULL)
            v = prefer_new ? a->old_vals[col] : a->new_vals[col];
        if (v == NULL)
            continue;
        if (n > 1)
            strbuf_appendf(&sb, "%s%s=", sb.len > 0 ? ", " : "", t->columns[col].source);
        strbuf_append(&sb, v->text != NULL ? v->text : "NULL");
    }
    return strbuf_detach(&sb);
}

/* Every key column has a non-NULL value in the old row or the new one. */
static bool check_key(applier *a, const table_plan *t, const w2j_change *c, bool *retryable)
{
    for (size_t k = 0; k < t->nkey_columns; k++) {
        size_t col = (size_t)t->key_columns[k];
        const w2j_value *v = a->old_vals[col] != NULL ? a->old_vals[col] : a->new_vals[col];
        if (v == NULL || v->text == NULL)
            return fail_input(retryable, c, "key column \"%s\" is missing or NULL",
                              t->columns[col].source);
    }
    return true;
}

/* True when the new row carries every column the target receives. */
static bool new_row_complete(const applier *a, const table_plan *t)
{
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (apply_sql_column_travels(t, i) && a->new_vals[i] == NULL)
            return false;
    }
    return true;
}

/*
 * Table ti has a recorded key change from now on: its upserts are guarded, and every
 * statement cached before is rebuilt (references to it fall back to its key chain).
 */
static void mark_guarded(applier *a, int ti)
{
    if (!a->guarded[ti])
        a->guard_epoch++;
    a->guarded[ti] = true;
}

/* The upsert kind for table ti: guarded once a key change of it was recorded. */
static apply_stmt_kind upsert_kind(const applier *a, int ti)
{
    return a->guarded[ti] ? APPLY_STMT_UPSERT_GUARDED : APPLY_STMT_UPSERT;
}

static bool apply_insert(applier *a, int ti, const w2j_change *c, bool *retryable)
{
    const table_plan *t = &a->cat->tables[ti];
    if (t->nkey_columns == 0)
        return apply_batch_add(a, ti, APPLY_STMT_INSERT, PEND_KL_INSERT, NULL, c->lsn, retryable);
    return check_key(a, t, c, retryable) &&
           apply_batch_add(a, ti, upsert_kind(a, ti), PEND_INSERT, key_text(a, t, true), c->lsn,
                           retryable);
}

static bool apply_update(applier *a, int ti, const w2j_change *c, bool *retryable)
{
    const table_plan *t = &a->cat->tables[ti];
    bool complete = new_row_complete(a, t);
    if (t->nkey_columns == 0) {
        if (c->nidentity == 0)
            return fail_input(retryable, c, "%s",
                              "update of a keyless table without the old row (needs REPLICA "
                              "IDENTITY FULL)");
        return apply_send_stmt(a, ti, complete ? APPLY_STMT_KL_UPSERT : APPLY_STMT_KL_UPDATE,
                               complete ? PEND_KL_UPSERT : PEND_UPDATE, key_text(a, t, false), c,
                               retryable);
    }
    if (!check_key(a, t, c, retryable))
        return false;
    bool key_changed = false;
    for (size_t k = 0; k < t->nkey_columns; k++) {
        size_t col = (size_t)t->key_columns[k];
        if (a->old_vals[col] != NULL && a->new_vals[col] != NULL &&
            !text_equal(a->old_vals[col], a->new_vals[col]))
            key_changed = true;
    }
    /* A moved row keeps its UUID, maybe UUIDv5 of the old key: from now on (and after
     * restarts, via moved_keys) this table's inserts check that their UUIDv5 is free. */
    if (key_changed && t->cfg->kind == TABLE_UUID_MAPPED)
        mark_guarded(a, ti);
    if (!complete)
        return apply_send_stmt(a, ti, key_changed ? APPLY_STMT_KEY_UPDATE : APPLY_STMT_UPDATE,
                               PEND_UPDATE, key_text(a, t, false), c, retryable);
    if (!key_changed)
        return apply_batch_add(a, ti, upsert_kind(a, ti), PEND_UPSERT_UPDATE, key_text(a, t, false),
                               c->lsn, retryable);
    /* Move the row to its new key, then upsert the full new row under it: either the
     * move found the row (the upsert rewrites the same values) or it inserts it. */
    return apply_send_stmt(a, ti, APPLY_STMT_KEY_UPDATE, PEND_KEYCHANGE_UPDATE, NULL, c,
                           retryable) &&
           apply_send_stmt(a, ti, upsert_kind(a, ti), PEND_KEYCHANGE_UPSERT, key_text(a, t, true),
                           c, retryable);
}

static bool apply_delete(applier *a, int ti, const w2j_change *c, bool *retryable)
{
    const table_plan *t = &a->cat->tables[ti];
    const table_config *tc = &a->cfg->tables[ti];
    if (tc->deletes == DELETES_IGNORE) {
        log_debug("apply: delete on %s ignored (deletes: ignore)", tc->source);
        return true;
    }
    bool soft = tc->deletes == DELETES_SOFT;
    if (t->nkey_columns == 0) {
        if (c->nidentity == 0)
            return fail_input(retryable, c, "%s",
                              "delete from a keyless table without the old row (needs REPLICA "
                              "IDENTITY FULL)");
        return apply_send_stmt(a, ti, soft ? APPLY_STMT_KL_SOFT_DELETE : APPLY_STMT_KL_DELETE,
                               PEND_DELETE, key_text(a, t, false), c, retryable);
    }
    return check_key(a, t, c, retryable) &&
           apply_send_stmt(a, ti, soft ? APPLY_STMT_SOFT_DELETE : APPLY_STMT_DELETE, PEND_DELETE,
                           key_text(a, t, false), c, retryable);
}

static int find_table(const applier *a, const w2j_change *c)
{
    if (c->table == NULL)
        return -1;
    return config_find_source(a->cfg, c->schema != NULL ? c->schema : "public", c->table);
}

static bool apply_row(applier *a, const w2j_change *c, bool *retryable)
{
    int ti = find_table(a, c);
    if (ti < 0)
        return fail_input(retryable, c, "%s",
                          "the table is not in the configuration (stream asks wal2json only for "
                          "configured tables: was the config changed while running?)");
    const table_plan *t = &a->cat->tables[ti];
    map_message(a, t, c);
    set_presence(a, t, t->nkey_columns == 0);
    a->batch_rows++;
    if (c->action == W2J_INSERT || c->action == W2J_UPDATE) {
        bool taken = false; /* long runs of inserts / full-row updates: COPY (apply_bulk.c) */
        bool guarded = t->nkey_columns > 0 && upsert_kind(a, ti) == APPLY_STMT_UPSERT_GUARDED;
        if (!apply_bulk_offer(a, ti, c, guarded, &taken, retryable))
            return false;
        if (taken)
            return true;
    }
    switch (c->action) {
    case W2J_INSERT:
        return apply_insert(a, ti, c, retryable);
    case W2J_UPDATE:
        return apply_update(a, ti, c, retryable);
    default:
        return apply_delete(a, ti, c, retryable);
    }
}

/* Sends the gathered TRUNCATEs as one statement. */
static bool flush_truncates(applier *a, wb_lsn lsn, bool *retryable)
{
    if (a->ntruncates == 0)
        return true;
    if (!apply_batch_flush(a, retryable))
        return false;
    strbuf sql;
    strbuf_init(&sql);
    apply_sql_truncate(a->cfg, a->truncates, a->ntruncates, &sql);
    log_info("apply: %s", sql.data);
    a->stats.rows_truncated += a->ntruncates; /* tables truncated */
    int first = a->truncates[0];
    a->ntruncates = 0;
    bool ok = apply_send_sql(a, sql.data, PEND_TRUNCATE, first, lsn, retryable);
    strbuf_free(&sql);
    return ok;
}

static bool add_truncate(applier *a, const w2j_change *c, bool *retryable)
{
    int ti = find_table(a, c);
    if (ti < 0)
        return fail_input(retryable, c, "the table is not in the configuration");
    if (!a->cfg->tables[ti].truncate_apply) {
        log_info("apply: truncate of %s ignored (truncate: ignore)", a->cfg->tables[ti].source);
        return true;
    }
    for (size_t i = 0; i < a->ntruncates; i++) {
        if (a->truncates[i] == ti)
            return true;
    }
    a->truncates[a->ntruncates++] = ti;
    return true;
}

/* ---- batches and source transactions ---- */

static bool batch_begin(applier *a, bool *retryable)
{
    if (a->batch_open)
        return true;
    PGresult *res = PQexec(a->conn, "BEGIN");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *retryable = apply_report_result(a, res, "BEGIN", -1, a->xid, a->commit_lsn) == PGERR_RETRY;
        PQclear(res);
        return false;
    }
    PQclear(res);
    a->batch_open = true;
    a->batch_rows = 0;
    a->batch_end_lsn = LSN_INVALID;
    clock_gettime(CLOCK_MONOTONIC, &a->batch_started);
    if (PQenterPipelineMode(a->conn) != 1) {
        apply_report_result(a, NULL, "entering pipeline mode", -1, a->xid, a->commit_lsn);
        *retryable = true;
        return false;
    }
    a->in_pipeline = true;
    a->server_failed = false;
    a->savepoint_sent = false;
    a->savepoint_lsn = LSN_INVALID;
    a->savepoints = 0;
    return true;
}

/*
 * A source transaction joining a batch that already holds complete ones gets a
 * savepoint in front of it: if it cannot be applied, the ones before it are
 * still committed (salvage_before_failure) and the stream stops right at it.
 */
static bool mark_savepoint(applier *a, bool *retryable)
{
    if (a->savepoint_sent && !apply_send_sql(a, "RELEASE SAVEPOINT wb_txn", PEND_UTILITY, -1,
                                             a->batch_end_lsn, retryable))
        return false;
    a->savepoint_sent = true;
    a->savepoints++;
    return apply_send_sql(a, "SAVEPOINT wb_txn", PEND_SAVEPOINT, -1, a->batch_end_lsn, retryable);
}

/*
 * After a non-retryable failure inside a batch: commits the complete source
 * transactions before the failing one (up to the last savepoint the server
 * executed), so the durable LSN stops right before the bad change.
 */
static void salvage_before_failure(applier *a)
{
    if (a->broken || !a->batch_open || !a->in_pipeline || !a->savepoint_sent)
        return;
    bool ignored;
    if (!a->server_failed)
        (void)apply_consume_until(a, 0, &ignored); /* results still due move savepoint_lsn */
    if (!apply_pipeline_discard(a)) {
        a->broken = true;
        return;
    }
    wb_lsn lsn = a->savepoint_lsn;
    if (lsn == LSN_INVALID || lsn <= a->durable_lsn)
        return;
    PGresult *res = PQexec(a->conn, "ROLLBACK TO SAVEPOINT wb_txn");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok || !state_set_applied_lsn(a->conn, a->cfg->state_schema, a->cfg->slot, lsn, NULL))
        return;
    res = PQexec(a->conn, "COMMIT");
    ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!ok)
        return;
    char lt[LSN_TEXT_MAX];
    log_info("apply: committed the source transactions before the failing one (applied LSN %s)",
             apply_lsn_text(lsn, lt));
    a->durable_lsn = lsn;
    a->batch_open = false;
    a->stats.batches_committed++;
}

static bool on_begin(applier *a, const w2j_change *c, bool *retryable)
{
    if (a->in_source) {
        return fail_input(retryable, c, "BEGIN while transaction %u is still open", a->xid);
    }
    a->in_source = true;
    a->xid = c->xid;
    a->commit_lsn = w2j_commit_position(c);
    wb_lsn done = a->durable_lsn;
    if (a->batch_open && a->batch_end_lsn > done)
        done = a->batch_end_lsn;
    if (a->commit_lsn != LSN_INVALID && a->commit_lsn <= done) {
        char lt[LSN_TEXT_MAX], dt[LSN_TEXT_MAX];
        log_debug("apply: skipping transaction %u (commit %s, already applied up to %s)", c->xid,
                  apply_lsn_text(a->commit_lsn, lt), apply_lsn_text(done, dt));
        a->skipping = true;
        a->stats.txns_skipped++;
        return true;
    }
    a->skipping = false;
    if (a->batch_open && a->batch_end_lsn != LSN_INVALID)
        return mark_savepoint(a, retryable);
    return batch_begin(a, retryable);
}

static bool on_commit(applier *a, const w2j_change *c, wb_lsn data_start, bool *retryable)
{
    if (!a->in_source)
        return fail_input(retryable, c, "COMMIT without BEGIN");
    a->in_source = false;
    if (a->skipping) {
        a->skipping = false;
        return true;
    }
    wb_lsn commit = w2j_commit_position(c);
    if (commit == LSN_INVALID)
        commit = a->commit_lsn != LSN_INVALID ? a->commit_lsn : data_start;
    if (!apply_batch_flush(a, retryable) || !flush_truncates(a, commit, retryable))
        return false;
    if (commit > a->batch_end_lsn)
        a->batch_end_lsn = commit;
    free(a->batch_commit_time);
    a->batch_commit_time = c->timestamp != NULL ? wb_xstrdup(c->timestamp) : NULL;
    a->stats.txns_applied++;
    return true;
}

static bool feed(applier *a, const w2j_change *c, wb_lsn data_start, bool *retryable)
{
    if (c->action != W2J_INSERT && c->action != W2J_UPDATE && !apply_bulk_finish(a, retryable))
        return false; /* a bulk run ends at any other message */
    switch (c->action) {
    case W2J_BEGIN:
        return on_begin(a, c, retryable);
    case W2J_COMMIT:
        return on_commit(a, c, data_start, retryable);
    case W2J_MESSAGE:
        log_debug("apply: logical message \"%s\" ignored", c->prefix != NULL ? c->prefix : "");
        if (a->in_source && !a->skipping)
            return flush_truncates(a, c->lsn, retryable);
        return true;
    case W2J_TRUNCATE:
    case W2J_INSERT:
    case W2J_UPDATE:
    case W2J_DELETE:
        if (!a->in_source)
            return fail_input(retryable, c, "change outside a transaction");
        if (a->skipping)
            return true;
        if (c->action == W2J_TRUNCATE)
            return apply_batch_flush(a, retryable) && add_truncate(a, c, retryable);
        return flush_truncates(a, c->lsn, retryable) && apply_row(a, c, retryable);
    }
    char action[4] = {(char)c->action, '\0'};
    return fail_input(retryable, c, "unknown action \"%s\"", action);
}

/* ---- public interface ---- */

bool applier_feed(applier *a, const w2j_change *c, wb_lsn data_start, bool *retryable)
{
    *retryable = false;
    if (a->broken) {
        *retryable = true;
        return false;
    }
    if (feed(a, c, data_start, retryable))
        return true;
    if (!*retryable)
        salvage_before_failure(a);
    applier_abort(a);
    return false;
}

bool applier_batch_due(const applier *a)
{
    if (!a->batch_open || a->in_source || a->broken)
        return false;
    if (a->batch_rows >=
            (uint64_t)(a->cfg->stream.batch_max_rows > 0 ? a->cfg->stream.batch_max_rows : 1) ||
        a->savepoints >= APPLY_SAVEPOINTS_MAX)
        return true;
    return elapsed_ms(&a->batch_started) >= (double)a->cfg->stream.batch_max_ms;
}

static bool commit_batch(applier *a, bool *retryable)
{
    if (!apply_pipeline_finish(a, retryable))
        return false;
    if (a->batch_end_lsn > a->durable_lsn &&
        !state_set_applied_lsn(a->conn, a->cfg->state_schema, a->cfg->slot, a->batch_end_lsn,
                               a->batch_commit_time)) {
        *retryable = PQstatus(a->conn) != CONNECTION_OK;
        return false;
    }
    PGresult *res = PQexec(a->conn, "COMMIT");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    if (!ok)
        *retryable =
            apply_report_result(a, res, "COMMIT", -1, a->xid, a->batch_end_lsn) == PGERR_RETRY;
    PQclear(res);
    return ok;
}

bool applier_flush(applier *a, bool *retryable)
{
    *retryable = false;
    if (a->broken) {
        *retryable = true;
        return false;
    }
    if (!a->batch_open || a->in_source)
        return true;
    if (!commit_batch(a, retryable)) {
        if (!*retryable && a->in_pipeline)
            salvage_before_failure(a); /* a change failed: keep the transactions before it */
        a->batch_open = false;         /* COMMIT (or its failure) ended the transaction */
        applier_abort(a);
        return false;
    }
    a->batch_open = false;
    if (a->batch_end_lsn > a->durable_lsn)
        a->durable_lsn = a->batch_end_lsn;
    a->batch_end_lsn = LSN_INVALID;
    a->stats.batches_committed++;
    return true;
}

void applier_abort(applier *a)
{
    apply_bulk_abort(a);
    apply_batch_clear(a);
    bool usable = apply_pipeline_discard(a);
    if (!usable)
        a->broken = true;
    if (PQstatus(a->conn) != CONNECTION_OK)
        a->broken = true;
    if (!a->broken && PQtransactionStatus(a->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(a->conn, "ROLLBACK");
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            a->broken = true;
        PQclear(res);
    }
    apply_cache_drop_unconfirmed(a);
    a->batch_open = false;
    a->batch_end_lsn = LSN_INVALID;
    a->batch_rows = 0;
    a->in_source = false;
    a->skipping = false;
    a->ntruncates = 0;
    a->unflushed = false;
    a->sent_since_push = 0;
}

bool applier_in_transaction(const applier *a)
{
    return a->in_source;
}

wb_lsn applier_durable_lsn(const applier *a)
{
    return a->durable_lsn;
}

const apply_stats *applier_stats(const applier *a)
{
    return &a->stats;
}

/* Continues statement names after any left on this session by an earlier applier. */
static bool read_statement_serial(applier *a)
{
    PGresult *res = pgconn_query(a->conn, "apply: listing prepared statements",
                                 "SELECT coalesce(max(substr(name, 10)::bigint), 0)"
                                 " FROM pg_prepared_statements WHERE name ~ '^wb_apply_[0-9]+$'",
                                 0, NULL, NULL);
    if (res == NULL)
        return false;
    a->next_serial = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

/*
 * The index apply_sql_key_uuid probes moved_keys by, made once.  Only the table's
 * owner may make it (a stream may run as another role): without it, a warning, and
 * the probes scan the table, which holds one row per key change.
 */
static bool index_moved_keys(applier *a, strbuf *sql)
{
    bool exists = false;
    if (!state_table_exists(a->conn, a->cfg->state_schema, "moved_keys_target_key", &exists))
        return false;
    if (exists)
        return true;
    apply_sql_moved_keys_index(a->cfg->state_schema, sql);
    PGresult *res = PQexec(a->conn, sql->data);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        log_full(LOG_WARN, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                 "Run the stream once as the owner of the table, or create the index as it.",
                 "apply: cannot index %s.moved_keys (target_key); checks of reused keys will "
                 "scan it",
                 a->cfg->state_schema);
    PQclear(res);
    return PQstatus(a->conn) == CONNECTION_OK;
}

/*
 * The session's table of keys deleted or moved in the open transaction, and
 * <state_schema>.moved_keys (apply_sql.h); reads which tables have a recorded
 * key change, whose upserts must then be guarded.
 */
static bool prepare_key_tables(applier *a)
{
    strbuf sql;
    strbuf_init(&sql);
    apply_sql_gone_table_create(&sql);
    bool ok = pgconn_exec(a->conn, "apply: creating the session's deleted-keys table", sql.data);
    strbuf_reset(&sql);
    apply_sql_moved_keys_create(a->cfg->state_schema, &sql);
    ok = ok && pgconn_exec(a->conn, "apply: creating the moved-keys table", sql.data);
    strbuf_reset(&sql);
    ok = ok && index_moved_keys(a, &sql);
    strbuf_reset(&sql);
    strbuf_append(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    pgconn_append_qualified(&sql, a->cfg->state_schema, "moved_keys");
    strbuf_append(&sql, " WHERE table_oid = to_regclass($1))");
    for (size_t i = 0; ok && i < a->cfg->ntables; i++) {
        const table_config *tc = &a->cfg->tables[i];
        if (tc->kind != TABLE_UUID_MAPPED)
            continue;
        strbuf name;
        strbuf_init(&name);
        pgconn_append_qualified(&name, tc->target_schema, tc->target_name);
        const char *params[1] = {name.data};
        PGresult *res =
            pgconn_query(a->conn, "apply: reading moved keys", sql.data, 1, params, NULL);
        strbuf_free(&name);
        if (res == NULL) {
            ok = false;
            break;
        }
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
            mark_guarded(a, (int)i);
            log_info("apply: %s had key changes: its inserts check that their UUIDv5 is free",
                     tc->source);
        }
        PQclear(res);
    }
    strbuf_free(&sql);
    return ok;
}

static void set_replica_role(applier *a)
{
    PGresult *res = PQexec(a->conn, "SET session_replication_role = replica");
    a->replica_role = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!a->replica_role)
        log_full(LOG_WARN, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                 "Grant it (PostgreSQL 15: GRANT SET ON PARAMETER session_replication_role) "
                 "to skip target triggers and FK checks while applying.",
                 "apply: SET session_replication_role = replica refused; target triggers and "
                 "foreign-key checks will run (changes still arrive parents first)");
    PQclear(res);
}

applier *applier_new(const wb_config *cfg, const catalog *cat, PGconn *target)
{
    applier *a = wb_xcalloc(1, sizeof *a);
    a->cfg = cfg;
    a->cat = cat;
    a->conn = target;
    a->bulk = apply_bulk_new();
    a->max_columns = 1;
    for (size_t i = 0; i < cat->ntables; i++) {
        if (cat->tables[i].ncolumns > a->max_columns)
            a->max_columns = cat->tables[i].ncolumns;
    }
    a->new_vals = wb_xcalloc(a->max_columns, sizeof *a->new_vals);
    a->old_vals = wb_xcalloc(a->max_columns, sizeof *a->old_vals);
    a->present = wb_xcalloc(2 * a->max_columns, sizeof *a->present);
    a->batch.present = wb_xcalloc(2 * a->max_columns, sizeof *a->batch.present);
    strbuf_init(&a->batch.arena);
    a->truncates = wb_xcalloc(cfg->ntables + 1, sizeof *a->truncates);
    a->guarded = wb_xcalloc(cfg->ntables + 1, sizeof *a->guarded);
    strbuf sql;
    strbuf_init(&sql);
    apply_sql_conflict_insert(cfg->state_schema, &sql);
    a->conflict_sql = strbuf_detach(&sql);

    bool found = false;
    wb_lsn lsn = LSN_INVALID;
    if (!state_get_applied_lsn(target, cfg->state_schema, cfg->slot, &lsn, &found, NULL) ||
        !read_statement_serial(a) || !prepare_key_tables(a)) {
        applier_free(a);
        return NULL;
    }
    a->durable_lsn = found ? lsn : LSN_INVALID;
    set_replica_role(a);
    char lt[LSN_TEXT_MAX];
    log_debug("apply: applied LSN for slot \"%s\" is %s", cfg->slot,
              found ? apply_lsn_text(lsn, lt) : "not recorded yet");
    return a;
}

void applier_free(applier *a)
{
    if (a == NULL)
        return;
    if (a->batch_open || a->in_pipeline)
        applier_abort(a);
    apply_ring_clear(a);
    free(a->ring);
    apply_batch_clear(a);
    strbuf_free(&a->batch.arena);
    free(a->batch.present);
    free(a->batch.offsets);
    free(a->batch.values);
    for (size_t i = 0; i < APPLY_CACHE_MAX; i++) {
        if (a->cache[i].used)
            apply_cache_release(&a->cache[i]);
    }
    for (int i = 0; i < a->nscratch; i++)
        strbuf_free(&a->scratch[i]);
    free(a->scratch);
    free(a->params);
    for (size_t i = 0; i < a->nwarned; i++)
        free(a->warned[i]);
    free(a->warned);
    free(a->new_vals);
    free(a->old_vals);
    free(a->present);
    free(a->truncates);
    free(a->guarded);
    free(a->conflict_sql);
    free(a->batch_commit_time);
    apply_bulk_free(a->bulk);
    free(a);
}
