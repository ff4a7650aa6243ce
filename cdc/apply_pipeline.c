/*
 * apply_pipeline.c — the libpq side of the stream applier (see
 * apply_internal.h): prepared statements in a bounded LRU cache
 * (DEALLOCATEd on eviction), text parameters built from the message
 * (bytea "\x", UUIDv5 of keys and references), libpq pipeline mode with at
 * most APPLY_INFLIGHT_HIGH results outstanding, every result read back in
 * order and checked, and consecutive inserts of one table and column set sent
 * as multi-row statements (power-of-two sizes, so few prepared statements).
 *
 * Results are counted here (apply_stats), and conflicts found in them are
 * logged and recorded in <state_schema>.conflicts in the same transaction.
 */
#include "cdc/apply_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/uuidmap.h"

/* ---- small helpers ---- */

const char *apply_lsn_text(wb_lsn lsn, char buf[LSN_TEXT_MAX])
{
    return lsn_format(lsn, buf);
}

const char *apply_table_name(const applier *a, int table)
{
    return table >= 0 ? a->cfg->tables[table].source : "(none)";
}

/* Logs a failed result with the change's context; returns the classification. */
pgerr_class apply_report_result(applier *a, const PGresult *res, const char *what, int table,
                                uint32_t xid, wb_lsn lsn)
{
    char lt[LSN_TEXT_MAX];
    pgerr_class cls = pgconn_classify(a->conn, res);
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL)
        msg = PQerrorMessage(a->conn);
    log_full(LOG_ERROR, res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL,
             cls == PGERR_RETRY ? "The stream reconnects and resumes from the last applied LSN."
                                : "Nothing past the last applied LSN is confirmed; fix the cause "
                                  "and restart the stream.",
             "apply: %s on table %s failed at LSN %s (xid %u): %s (SQLSTATE %s)", what,
             apply_table_name(a, table), apply_lsn_text(lsn, lt), xid, msg,
             state != NULL ? state : "none");
    return cls;
}

/*
 * A send (or flush, or sync) to the target failed: the connection is in an
 * unknown state.  Logs it, marks the applier broken and the failure
 * retryable; returns false for the caller to propagate.
 */
static bool send_failed(applier *a, const char *what, int table, uint32_t xid, wb_lsn lsn,
                        bool *retryable)
{
    apply_report_result(a, NULL, what, table, xid, lsn);
    a->broken = true;
    *retryable = true;
    return false;
}

/* ---- pending ring ---- */

static pending *ring_push(applier *a)
{
    if (a->ring_count == a->ring_cap) {
        size_t cap = a->ring_cap == 0 ? 1024 : a->ring_cap * 2;
        pending *ring = wb_xcalloc(cap, sizeof *ring);
        for (size_t i = 0; i < a->ring_count; i++)
            ring[i] = a->ring[(a->ring_head + i) % a->ring_cap];
        free(a->ring);
        a->ring = ring;
        a->ring_cap = cap;
        a->ring_head = 0;
    }
    pending *p = &a->ring[(a->ring_head + a->ring_count) % a->ring_cap];
    memset(p, 0, sizeof *p);
    p->table = -1;
    p->cache_slot = -1;
    a->ring_count++;
    a->unflushed = true;
    return p;
}

/* Queues the pending entry of a statement just sent for (table, xid, lsn). */
static pending *push_sent(applier *a, pending_what what, int table, uint32_t xid, wb_lsn lsn)
{
    pending *p = ring_push(a);
    p->what = what;
    p->table = table;
    p->xid = xid;
    p->lsn = lsn;
    return p;
}

static void ring_pop(applier *a)
{
    pending *p = &a->ring[a->ring_head];
    free(p->key);
    p->key = NULL;
    for (int r = 0; r < p->nrows; r++)
        free(p->rows[r].key);
    free(p->rows);
    p->rows = NULL;
    p->nrows = 0;
    a->ring_head = (a->ring_head + 1) % a->ring_cap;
    a->ring_count--;
}

void apply_ring_clear(applier *a)
{
    while (a->ring_count > 0)
        ring_pop(a);
}

/* ---- statement cache ---- */

static uint64_t cache_hash(int table, apply_stmt_kind kind, const bool *present, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    h = (h ^ (uint64_t)table) * 1099511628211ULL;
    h = (h ^ (uint64_t)kind) * 1099511628211ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (present[i] ? 1u : 2u)) * 1099511628211ULL;
    return h;
}

void apply_cache_release(stmt_entry *e)
{
    free(e->present);
    apply_stmt_free(&e->stmt);
    memset(e, 0, sizeof *e);
}

/* Drops entries whose PREPARE was never acknowledged (after a failure). */
void apply_cache_drop_unconfirmed(applier *a)
{
    for (size_t i = 0; i < APPLY_CACHE_MAX; i++) {
        if (a->cache[i].used && !a->cache[i].confirmed)
            apply_cache_release(&a->cache[i]);
    }
}

static void statement_name(uint64_t serial, char buf[32])
{
    snprintf(buf, 32, "wb_apply_%llu", (unsigned long long)serial);
}

/* Picks a free slot, evicting (and DEALLOCATing) the least recently used. */
static stmt_entry *cache_slot(applier *a)
{
    stmt_entry *victim = NULL;
    for (size_t i = 0; i < APPLY_CACHE_MAX; i++) {
        if (!a->cache[i].used)
            return &a->cache[i];
        if (victim == NULL || a->cache[i].last_used < victim->last_used)
            victim = &a->cache[i];
    }
    char name[32], sql[64];
    statement_name(victim->serial, name);
    snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
    if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) == 1) {
        pending *p = ring_push(a);
        p->what = PEND_UTILITY;
        p->key = wb_xstrdup(sql);
    } /* else: the next send fails too and reports the connection error */
    apply_cache_release(victim);
    return victim;
}

/*
 * Finds or prepares the statement for (table, kind, nrows, present), where
 * present is new_present followed by old_present (2 * ncolumns).  Returns
 * NULL after logging when it cannot be built or sent.
 */
static stmt_entry *cache_get(applier *a, int table, apply_stmt_kind kind, int nrows,
                             const bool *flat, wb_lsn lsn, bool *retryable)
{
    const table_plan *t = &a->cat->tables[table];
    size_t n = 2 * t->ncolumns;
    uint64_t h = cache_hash(table, kind, flat, n) ^ ((uint64_t)nrows << 40);
    a->tick++;
    for (size_t i = 0; i < APPLY_CACHE_MAX; i++) {
        stmt_entry *e = &a->cache[i];
        if (e->used && e->hash == h && e->table == table && e->kind == kind &&
            e->stmt.nrows == nrows && e->npresent == n && e->guard_epoch == a->guard_epoch &&
            memcmp(e->present, flat, n * sizeof *flat) == 0) {
            e->last_used = a->tick;
            return e;
        }
    }
    apply_stmt stmt;
    char err[256];
    if (!apply_sql_build_rows(a->cfg, t, kind, flat, flat + t->ncolumns, nrows, a->guarded, &stmt,
                              err, sizeof err)) {
        char lt[LSN_TEXT_MAX];
        log_full(LOG_ERROR, NULL, "Nothing past the last applied LSN is confirmed.",
                 "apply: cannot apply change at LSN %s (xid %u, table %s): %s",
                 apply_lsn_text(lsn, lt), a->xid, apply_table_name(a, table), err);
        *retryable = false;
        return NULL;
    }
    stmt_entry *e = cache_slot(a);
    e->used = true;
    e->table = table;
    e->kind = kind;
    e->hash = h;
    e->guard_epoch = a->guard_epoch;
    e->npresent = n;
    e->present = wb_xmalloc(n * sizeof *e->present + 1);
    memcpy(e->present, flat, n * sizeof *flat);
    e->serial = ++a->next_serial;
    e->last_used = a->tick;
    e->stmt = stmt;
    char name[32];
    statement_name(e->serial, name);
    log_debug("apply: preparing %s for %s: %s", name, apply_table_name(a, table), stmt.sql);
    if (PQsendPrepare(a->conn, name, stmt.sql, 0, NULL) != 1) {
        send_failed(a, "sending a prepared statement", table, a->xid, lsn, retryable);
        apply_cache_release(e);
        return NULL;
    }
    pending *p = push_sent(a, PEND_PREPARE, table, a->xid, lsn);
    p->cache_slot = (int)(e - a->cache);
    p->serial = e->serial;
    return e;
}

/* ---- parameters ---- */

/* The value of column from the new or old row; old key columns fall back to new. */
static const w2j_value *param_value(const applier *a, const table_plan *t, const apply_param *p)
{
    const w2j_value *v = p->old ? a->old_vals[p->column] : a->new_vals[p->column];
    if (v == NULL && p->old && apply_sql_is_key_column(t, (size_t)p->column))
        v = a->new_vals[p->column];
    return v;
}

static void scratch_reserve(applier *a, int n)
{
    if (n <= a->nscratch)
        return;
    a->scratch = wb_xrealloc(a->scratch, (size_t)n * sizeof *a->scratch);
    a->params = wb_xrealloc(a->params, (size_t)n * sizeof *a->params);
    for (int i = a->nscratch; i < n; i++)
        strbuf_init(&a->scratch[i]);
    a->nscratch = n;
}

/* Fills a->params for stmt from the current message's values. */
static void fill_params(applier *a, const table_plan *t, const apply_stmt *stmt)
{
    scratch_reserve(a, stmt->nparams);
    for (int i = 0; i < stmt->nparams; i++) {
        const apply_param *p = &stmt->params[i];
        const w2j_value *v = param_value(a, t, p);
        const char *text = v != NULL ? v->text : NULL;
        strbuf *sb = &a->scratch[i];
        if (sb->cap > APPLY_SCRATCH_KEEP) {
            strbuf_free(sb);
            strbuf_init(sb);
        }
        strbuf_reset(sb);
        a->params[i] = text;
        if (text == NULL)
            continue;
        char uuid[UUID_TEXT_LEN + 1];
        switch (p->how) {
        case APARAM_RAW:
            break;
        case APARAM_BYTEA:
            strbuf_append(sb, "\\x");
            strbuf_append_len(sb, text, v->len);
            a->params[i] = sb->data;
            break;
        case APARAM_V5_ROW:
            uuidmap_v5(a->cfg->uuid_namespace, t->cfg->source, text, uuid);
            strbuf_append(sb, uuid);
            a->params[i] = sb->data;
            break;
        case APARAM_V5_PARENT:
            uuidmap_v5(a->cfg->uuid_namespace,
                       a->cfg->tables[t->columns[p->column].ref_parent].source, text, uuid);
            strbuf_append(sb, uuid);
            a->params[i] = sb->data;
            break;
        }
    }
}

/* ---- pipeline ---- */

static bool send_flush_request(applier *a, bool *retryable)
{
    if (!a->unflushed)
        return true;
    if (PQsendFlushRequest(a->conn) != 1 || PQflush(a->conn) != 0)
        return send_failed(a, "sending to the target", -1, a->xid, a->commit_lsn, retryable);
    a->unflushed = false;
    a->sent_since_push = 0;
    return true;
}

/* Records a conflict: counter, warning, and a row in <state_schema>.conflicts. */
static bool record_conflict_row(applier *a, const pending *p, const char *key, wb_lsn lsn,
                                const char *kind, const char *outcome, bool *retryable)
{
    char lt[LSN_TEXT_MAX];
    apply_lsn_text(lsn, lt);
    log_warn("apply: conflict %s on %s key %s at LSN %s (xid %u): %s", kind,
             apply_table_name(a, p->table), key != NULL ? key : "?", lt, p->xid, outcome);
    const char *params[5] = {a->cfg->slot, lt, apply_table_name(a, p->table), kind, key};
    if (PQsendQueryParams(a->conn, a->conflict_sql, 5, NULL, params, NULL, NULL, 0) != 1)
        return send_failed(a, "recording a conflict", p->table, p->xid, p->lsn, retryable);
    push_sent(a, PEND_UTILITY, p->table, p->xid, lsn);
    return true;
}

static bool record_conflict(applier *a, const pending *p, const char *kind, const char *outcome,
                            bool *retryable)
{
    return record_conflict_row(a, p, p->key, p->lsn, kind, outcome, retryable);
}

/* Rows the result reports: affected rows, or for RETURNING (xmax = 0) the "inserted" flag. */
static long result_rows(const PGresult *res)
{
    const char *n = PQcmdTuples((PGresult *)res);
    return n != NULL && *n != '\0' ? strtol(n, NULL, 10) : 0;
}

static bool result_inserted(const PGresult *res)
{
    return PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
}

/*
 * After an upsert of a UUID-mapped table inserted row `row` of res (RETURNING
 * inserted, tk): when tk is not UUIDv5 of the key, UUIDv5 was taken by a row
 * moved there by a key change and the new row got the next UUID of the chain
 * (apply_sql_key_uuid); recorded as a uuid_taken conflict.
 */
static bool check_uuid_taken(applier *a, const pending *p, const PGresult *res, int row,
                             const char *key, wb_lsn lsn, bool *retryable)
{
    const table_config *tc = &a->cfg->tables[p->table];
    if (tc->kind != TABLE_UUID_MAPPED || key == NULL || PQnfields(res) < 2 ||
        PQgetisnull(res, row, 1))
        return true;
    char v5[UUID_TEXT_LEN + 1];
    uuidmap_v5(a->cfg->uuid_namespace, tc->source, key, v5);
    if (strcmp(PQgetvalue(res, row, 1), v5) == 0)
        return true;
    return record_conflict_row(a, p, key, lsn, "uuid_taken",
                               "its UUIDv5 belongs to a row moved by a key change: inserted with "
                               "the next UUID of its chain (a UUIDv8 derived from it)",
                               retryable);
}

/* Counts a multi-row statement's result: RETURNING gives one row per input row, in order. */
static bool account_rows(applier *a, const pending *p, const PGresult *res, bool *retryable)
{
    apply_stats *s = &a->stats;
    if (p->rows[0].what == PEND_KL_INSERT) {
        s->rows_inserted += (uint64_t)p->nrows;
        return true;
    }
    if (PQntuples(res) != p->nrows) {
        char lt[LSN_TEXT_MAX];
        log_error("apply: upsert of %d rows into %s at LSN %s returned %d rows", p->nrows,
                  apply_table_name(a, p->table), apply_lsn_text(p->lsn, lt), PQntuples(res));
        *retryable = false;
        return false;
    }
    for (int r = 0; r < p->nrows; r++) {
        const batch_row *row = &p->rows[r];
        bool inserted = strcmp(PQgetvalue(res, r, 0), "t") == 0;
        bool ok = true;
        if (row->what == PEND_INSERT) {
            s->rows_inserted++;
            if (!inserted) {
                s->conflicts_insert_existing++;
                ok = record_conflict_row(a, p, row->key, row->lsn, "insert_existing",
                                         "existing row updated", retryable);
            }
        } else {
            s->rows_updated++;
            if (inserted) {
                s->conflicts_update_missing++;
                ok = record_conflict_row(a, p, row->key, row->lsn, "update_missing", "row inserted",
                                         retryable);
            }
        }
        if (ok && inserted)
            ok = check_uuid_taken(a, p, res, r, row->key, row->lsn, retryable);
        if (!ok)
            return false;
    }
    return true;
}

/*
 * A statement that should have touched a row (update, delete): counted in
 * *done when it did, else a conflict counted in *missing and recorded.
 */
static bool expect_row(applier *a, const pending *p, const PGresult *res, uint64_t *done,
                       uint64_t *missing, const char *kind, const char *outcome, bool *retryable)
{
    if (result_rows(res) > 0) {
        (*done)++;
        return true;
    }
    (*missing)++;
    return record_conflict(a, p, kind, outcome, retryable);
}

/* Counts what one successful result says. */
static bool account(applier *a, const pending *p, const PGresult *res, bool *retryable)
{
    apply_stats *s = &a->stats;
    switch (p->what) {
    case PEND_PREPARE:
        if (p->cache_slot >= 0 && a->cache[p->cache_slot].serial == p->serial)
            a->cache[p->cache_slot].confirmed = true;
        return true;
    case PEND_UTILITY:
        return true;
    case PEND_INSERT:
        s->rows_inserted++;
        if (!result_inserted(res)) {
            s->conflicts_insert_existing++;
            return record_conflict(a, p, "insert_existing", "existing row updated", retryable);
        }
        return check_uuid_taken(a, p, res, 0, p->key, p->lsn, retryable);
    case PEND_UPSERT_UPDATE:
        s->rows_updated++;
        if (result_inserted(res)) {
            s->conflicts_update_missing++;
            return record_conflict(a, p, "update_missing", "row inserted", retryable) &&
                   check_uuid_taken(a, p, res, 0, p->key, p->lsn, retryable);
        }
        return true;
    case PEND_UPDATE:
        return expect_row(a, p, res, &s->rows_updated, &s->conflicts_update_missing,
                          "update_missing_partial",
                          "row missing and the update lacks unchanged (TOAST) columns: "
                          "nothing written",
                          retryable);
    case PEND_KEYCHANGE_UPDATE:
        a->keychange_found = result_rows(res) > 0;
        return true;
    case PEND_KEYCHANGE_UPSERT:
        s->rows_updated++;
        if (!a->keychange_found) {
            s->conflicts_update_missing++;
            return record_conflict(a, p, "update_missing",
                                   result_inserted(res) ? "row inserted under the new key"
                                                        : "row under the new key updated",
                                   retryable) &&
                   (!result_inserted(res) ||
                    check_uuid_taken(a, p, res, 0, p->key, p->lsn, retryable));
        }
        return true;
    case PEND_KL_INSERT:
        s->rows_inserted++;
        return true;
    case PEND_KL_UPSERT:
        s->rows_updated++;
        if (result_rows(res) > 0) {
            s->conflicts_update_missing++;
            return record_conflict(a, p, "update_missing", "row inserted", retryable);
        }
        return true;
    case PEND_DELETE:
        return expect_row(a, p, res, &s->rows_deleted, &s->conflicts_delete_missing,
                          "delete_missing", "nothing to delete", retryable);
    case PEND_TRUNCATE:
        return true;
    case PEND_ROWS:
        return account_rows(a, p, res, retryable);
    case PEND_SAVEPOINT:
        a->savepoint_lsn = p->lsn;
        return true;
    }
    return true;
}

static const char *pending_label(pending_what what)
{
    switch (what) {
    case PEND_PREPARE:
        return "preparing a statement";
    case PEND_UTILITY:
        return "bookkeeping statement";
    case PEND_INSERT:
    case PEND_KL_INSERT:
    case PEND_ROWS:
        return "insert";
    case PEND_SAVEPOINT:
        return "savepoint";
    case PEND_DELETE:
        return "delete";
    case PEND_TRUNCATE:
        return "truncate";
    default:
        return "update";
    }
}

/* Reads and checks the result of the oldest outstanding statement. */
static bool consume_one(applier *a, bool *retryable)
{
    if (!send_flush_request(a, retryable))
        return false;
    pending p = a->ring[a->ring_head];
    PGresult *res = PQgetResult(a->conn);
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (res == NULL || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)) {
        a->server_failed = true;
        pgerr_class cls = apply_report_result(a, res, pending_label(p.what), p.table, p.xid, p.lsn);
        *retryable = cls == PGERR_RETRY;
        if (res == NULL)
            a->broken = true;
        PQclear(res);
        return false;
    }
    bool ok = account(a, &p, res, retryable);
    PQclear(res);
    /* In pipeline mode each statement's results end with a NULL. */
    res = PQgetResult(a->conn);
    if (res != NULL) {
        PQclear(res);
        return send_failed(a, "reading results (unexpected extra result)", p.table, p.xid, p.lsn,
                           retryable);
    }
    ring_pop(a);
    return ok;
}

bool apply_consume_until(applier *a, size_t remaining, bool *retryable)
{
    while (a->ring_count > remaining) {
        if (!consume_one(a, retryable))
            return false;
    }
    return true;
}

/* After a statement was queued: push bytes out now and then, read results when many. */
static bool after_send(applier *a, bool *retryable)
{
    if (++a->sent_since_push >= APPLY_SEND_FLUSH_EVERY) {
        a->sent_since_push = 0;
        if (PQflush(a->conn) < 0)
            return send_failed(a, "sending to the target", -1, a->xid, a->commit_lsn, retryable);
    }
    if (a->ring_count >= APPLY_INFLIGHT_HIGH)
        return apply_consume_until(a, APPLY_INFLIGHT_LOW, retryable);
    return true;
}

/* Reads every outstanding result, then syncs and leaves pipeline mode. */
bool apply_pipeline_finish(applier *a, bool *retryable)
{
    if (!a->in_pipeline)
        return true;
    if (!apply_consume_until(a, 0, retryable))
        return false;
    if (PQpipelineSync(a->conn) != 1)
        return send_failed(a, "syncing the pipeline", -1, a->xid, a->commit_lsn, retryable);
    PGresult *res = PQgetResult(a->conn);
    bool ok = res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    if (!ok)
        apply_report_result(a, res, "syncing the pipeline", -1, a->xid, a->commit_lsn);
    PQclear(res);
    if (ok && PQexitPipelineMode(a->conn) != 1) {
        apply_report_result(a, NULL, "leaving pipeline mode", -1, a->xid, a->commit_lsn);
        ok = false;
    }
    if (!ok) {
        a->broken = true;
        *retryable = true;
        return false;
    }
    a->in_pipeline = false;
    a->unflushed = false;
    return true;
}

/* Discards everything outstanding after a failure; false when the connection is unusable. */
bool apply_pipeline_discard(applier *a)
{
    apply_ring_clear(a);
    if (!a->in_pipeline)
        return true;
    a->in_pipeline = false;
    if (a->broken || PQstatus(a->conn) != CONNECTION_OK || PQpipelineSync(a->conn) != 1)
        return false;
    int nulls = 0;
    for (;;) {
        PGresult *res = PQgetResult(a->conn);
        if (res == NULL) {
            if (PQstatus(a->conn) != CONNECTION_OK || ++nulls > 4)
                return false;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
    return PQexitPipelineMode(a->conn) == 1;
}

/* ---- multi-row batches ---- */

void apply_batch_clear(applier *a)
{
    row_batch *rb = &a->batch;
    for (int r = 0; r < rb->nrows; r++) {
        free(rb->rows[r].key);
        rb->rows[r].key = NULL;
    }
    rb->nrows = 0;
    if (rb->arena.cap > 4 * APPLY_BATCH_BYTES) {
        strbuf_free(&rb->arena);
        strbuf_init(&rb->arena);
    }
    strbuf_reset(&rb->arena);
}

/* Sends rows [first, first + n) of the batch as one n-row statement. */
static bool batch_send(applier *a, int first, int n, bool *retryable)
{
    row_batch *rb = &a->batch;
    stmt_entry *e =
        cache_get(a, rb->table, rb->kind, n, rb->present, rb->rows[first].lsn, retryable);
    if (e == NULL)
        return false;
    size_t total = (size_t)n * (size_t)rb->nparams;
    if (total > rb->values_cap) {
        rb->values_cap = total;
        rb->values = wb_xrealloc(rb->values, total * sizeof *rb->values);
    }
    for (size_t i = 0; i < total; i++) {
        long off = rb->offsets[(size_t)first * (size_t)rb->nparams + i];
        rb->values[i] = off < 0 ? NULL : rb->arena.data + off;
    }
    char name[32];
    statement_name(e->serial, name);
    if (PQsendQueryPrepared(a->conn, name, (int)total, rb->values, NULL, NULL, 0) != 1)
        return send_failed(a, "insert", rb->table, a->xid, rb->rows[first].lsn, retryable);
    pending *p = push_sent(a, PEND_ROWS, rb->table, a->xid, rb->rows[first].lsn);
    p->rows = wb_xmalloc((size_t)n * sizeof *p->rows);
    memcpy(p->rows, &rb->rows[first], (size_t)n * sizeof *p->rows);
    p->nrows = n;
    for (int r = first; r < first + n; r++)
        rb->rows[r].key = NULL; /* now owned by the pending entry */
    if (rb->arena.len >= APPLY_PUSH_BYTES)
        a->sent_since_push = APPLY_SEND_FLUSH_EVERY; /* wide rows: push them out now */
    return after_send(a, retryable);
}

/* Sends the gathered rows in power-of-two chunks (few distinct prepared statements). */
bool apply_batch_flush(applier *a, bool *retryable)
{
    row_batch *rb = &a->batch;
    int first = 0;
    while (first < rb->nrows) {
        int n = 1;
        while (n * 2 <= rb->nrows - first)
            n *= 2;
        if (!batch_send(a, first, n, retryable)) {
            apply_batch_clear(a);
            return false;
        }
        first += n;
    }
    apply_batch_clear(a);
    return true;
}

static bool batch_has_key(const row_batch *rb, const char *key)
{
    for (int r = 0; r < rb->nrows; r++) {
        if (rb->rows[r].key != NULL && strcmp(rb->rows[r].key, key) == 0)
            return true;
    }
    return false;
}

/* Adds the current message's row (a->present, a->new_vals) to the batch; takes key. */
bool apply_batch_add(applier *a, int table, apply_stmt_kind kind, pending_what what, char *key,
                     wb_lsn lsn, bool *retryable)
{
    row_batch *rb = &a->batch;
    size_t n = 2 * a->cat->tables[table].ncolumns;
    bool same = rb->nrows > 0 && rb->table == table && rb->kind == kind && rb->npresent == n &&
                memcmp(rb->present, a->present, n * sizeof *rb->present) == 0;
    if (rb->nrows > 0 &&
        (!same || rb->nrows == rb->max_rows || rb->arena.len >= APPLY_BATCH_BYTES ||
         (key != NULL && batch_has_key(rb, key)))) {
        if (!apply_batch_flush(a, retryable)) {
            free(key);
            return false;
        }
    }
    if (rb->nrows == 0) {
        /* No cache lookup happens while a batch gathers rows (any other statement flushes
         * it first), so the 1-row entry found here stays valid until the flush. */
        stmt_entry *e = cache_get(a, table, kind, 1, a->present, lsn, retryable);
        if (e == NULL) {
            free(key);
            return false;
        }
        rb->row_stmt = &e->stmt;
        rb->table = table;
        rb->kind = kind;
        rb->npresent = n;
        memcpy(rb->present, a->present, n * sizeof *rb->present);
        rb->nparams = e->stmt.nparams;
        rb->max_rows = 1;
        while (rb->max_rows * 2 <= APPLY_BATCH_ROWS &&
               rb->max_rows * 2 * (rb->nparams > 0 ? rb->nparams : 1) <= 65535)
            rb->max_rows *= 2;
        size_t need = (size_t)APPLY_BATCH_ROWS * (size_t)rb->nparams;
        if (need > rb->offsets_cap) {
            rb->offsets_cap = need;
            rb->offsets = wb_xrealloc(rb->offsets, need * sizeof *rb->offsets);
        }
    }
    fill_params(a, &a->cat->tables[table], rb->row_stmt);
    long *offs = rb->offsets + (size_t)rb->nrows * (size_t)rb->nparams;
    for (int i = 0; i < rb->nparams; i++) {
        if (a->params[i] == NULL) {
            offs[i] = -1;
            continue;
        }
        offs[i] = (long)rb->arena.len;
        strbuf_append(&rb->arena, a->params[i]);
        strbuf_append_char(&rb->arena, '\0');
    }
    rb->rows[rb->nrows++] = (batch_row){.what = what, .lsn = lsn, .key = key};
    return true;
}

/* Prepares if needed and sends one statement; takes ownership of key. */
bool apply_send_stmt(applier *a, int table, apply_stmt_kind kind, pending_what what, char *key,
                     const w2j_change *c, bool *retryable)
{
    if (!apply_batch_flush(a, retryable)) {
        free(key);
        return false;
    }
    stmt_entry *e = cache_get(a, table, kind, 1, a->present, c->lsn, retryable);
    if (e == NULL) {
        free(key);
        return false;
    }
    fill_params(a, &a->cat->tables[table], &e->stmt);
    char name[32];
    statement_name(e->serial, name);
    if (PQsendQueryPrepared(a->conn, name, e->stmt.nparams, a->params, NULL, NULL, 0) != 1) {
        free(key);
        return send_failed(a, pending_label(what), table, a->xid, c->lsn, retryable);
    }
    pending *p = push_sent(a, what, table, a->xid, c->lsn);
    p->key = key;
    size_t bytes = 0;
    for (int i = 0; i < e->stmt.nparams; i++)
        bytes += a->params[i] != NULL ? strlen(a->params[i]) : 0;
    if (bytes >= APPLY_PUSH_BYTES)
        a->sent_since_push = APPLY_SEND_FLUSH_EVERY; /* wide row: push it out now */
    return after_send(a, retryable);
}

/* Sends one parameterless statement (unnamed) in the pipeline. */
bool apply_send_sql(applier *a, const char *sql, pending_what what, int table, wb_lsn lsn,
                    bool *retryable)
{
    if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
        return send_failed(a, sql, table, a->xid, lsn, retryable);
    push_sent(a, what, table, a->xid, lsn);
    return after_send(a, retryable);
}
