/*
 * apply.c — applies parsed wal2json changes to the target (see apply.h).
 *
 * Session: SET session_replication_role = replica when the role may (skips
 * triggers and FK checks); otherwise one warning, and parents must come
 * before children, which the source's own order gives.
 *
 * Throughput: each (table, statement kind, column set) gets a prepared
 * statement, kept in a small LRU cache (DEALLOCATEd on eviction).  Changes
 * are sent in libpq pipeline mode inside the open target transaction; every
 * result is read back and checked, in order, at most APPLY_INFLIGHT_HIGH
 * statements behind.  Statements never need a client-side decision before
 * the next one is sent (source-wins logic lives in SQL: upserts, an UPDATE
 * followed by an upsert on a key change, WITH ... INSERT WHERE NOT EXISTS for
 * keyless rows), so the pipeline keeps the source order exactly.
 *
 * Conflicts (source wins, DESIGN.md guarantee 3) are counted in apply_stats,
 * logged as a warning naming table, kind, key and LSN, and inserted into
 * <state_schema>.conflicts in the same target transaction as the change, so
 * the operator's conflict log commits or rolls back with the data.  Kinds:
 * insert_existing (the row was updated), update_missing (the row was
 * inserted), update_missing_partial (the update lacked unchanged TOAST values
 * so the row could not be rebuilt: nothing written), delete_missing (no-op).
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

#include "cdc/apply_sql.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"
#include "common/strbuf.h"
#include "common/uuidmap.h"

#define APPLY_CACHE_MAX 256              /* prepared statements kept per session */
#define APPLY_INFLIGHT_HIGH 512          /* read results back when this many are outstanding */
#define APPLY_INFLIGHT_LOW 128           /* ... down to this many */
#define APPLY_SEND_FLUSH_EVERY 32        /* push buffered statements to the server this often */
#define APPLY_SCRATCH_KEEP (1024 * 1024) /* larger per-parameter buffers are released */
#define APPLY_SAVEPOINTS_MAX 1000 /* source txns per batch: each holds a subtransaction lock */
#define APPLY_BATCH_ROWS 64       /* rows per multi-row statement */
#define APPLY_BATCH_BYTES (1024 * 1024) /* ... or this many bytes of values */

/* What a result in the pipeline means, and how to count it. */
typedef enum pending_what {
    PEND_PREPARE,          /* PQsendPrepare of a cache entry */
    PEND_UTILITY,          /* DEALLOCATE, conflict record: only checked */
    PEND_INSERT,           /* upsert for I: inserted = f is an insert of an existing key */
    PEND_UPSERT_UPDATE,    /* upsert for a full-row U: inserted = t is an update of a missing row */
    PEND_UPDATE,           /* UPDATE of present columns: 0 rows cannot be resolved */
    PEND_KEYCHANGE_UPDATE, /* first half of a full-row key change */
    PEND_KEYCHANGE_UPSERT, /* second half: counts only when the first found no row */
    PEND_KL_INSERT,        /* keyless insert */
    PEND_KL_UPSERT,        /* keyless update-else-insert: 1 row inserted = update of missing */
    PEND_DELETE,           /* DELETE or soft delete: 0 rows = delete of a missing row */
    PEND_TRUNCATE,
    PEND_ROWS,     /* a multi-row upsert / insert: per-row meaning in pending.rows */
    PEND_SAVEPOINT /* SAVEPOINT after the source transactions that end at pending.lsn */
} pending_what;

/* One row of a multi-row statement. */
typedef struct batch_row {
    pending_what what; /* PEND_INSERT, PEND_UPSERT_UPDATE or PEND_KL_INSERT */
    wb_lsn lsn;
    char *key; /* owned, may be NULL */
} batch_row;

typedef struct pending {
    pending_what what;
    int table; /* wb_config index, -1 for none */
    uint32_t xid;
    wb_lsn lsn;
    char *key;       /* owned; key text for conflict messages, may be NULL */
    int cache_slot;  /* PEND_PREPARE: entry being confirmed */
    uint64_t serial; /* PEND_PREPARE: entry serial at send time */
    batch_row *rows; /* PEND_ROWS: owned, nrows entries */
    int nrows;
} pending;

/*
 * Consecutive inserts (and full-row updates, which are upserts too) of one
 * table with the same column set, gathered into one multi-row statement of
 * up to APPLY_BATCH_ROWS rows.  Their parameter texts are copied into arena
 * (offsets, -1 for NULL) because the message is freed after applier_feed.
 */
typedef struct row_batch {
    int table;
    apply_stmt_kind kind;
    bool *present; /* 2 * max_columns, the statement's column set */
    size_t npresent;
    int nparams;                /* per row */
    const apply_stmt *row_stmt; /* the 1-row statement's parameter plan (cache entry) */
    int max_rows;
    int nrows;
    batch_row rows[64];
    strbuf arena;
    long *offsets; /* nrows * nparams */
    size_t offsets_cap;
    const char **values; /* parameter pointers for one send */
    size_t values_cap;
} row_batch;

/* One prepared statement.  Private to this file. */
typedef struct stmt_entry {
    bool used;
    bool confirmed; /* the server acknowledged the PREPARE */
    int table;
    apply_stmt_kind kind;
    uint64_t hash;
    bool *present; /* 2 * ncolumns: new_present then old_present */
    size_t npresent;
    uint64_t serial; /* names the statement: wb_apply_<serial> */
    uint64_t last_used;
    apply_stmt stmt;
} stmt_entry;

struct applier {
    const wb_config *cfg;
    const catalog *cat;
    PGconn *conn; /* borrowed */
    wb_lsn durable_lsn;
    apply_stats stats;

    /* target transaction (batch) */
    bool batch_open;
    bool in_pipeline;
    bool broken;          /* the connection is in an unknown state: every call fails, retryable */
    bool server_failed;   /* a statement failed: later results are "aborted" */
    bool savepoint_sent;  /* a SAVEPOINT was queued in this batch (RELEASE before the next) */
    wb_lsn savepoint_lsn; /* the server holds a savepoint after everything up to here */
    int savepoints;       /* in this batch */
    wb_lsn batch_end_lsn;
    char *batch_commit_time; /* owned */
    uint64_t batch_rows;
    struct timespec batch_started;

    /* source transaction */
    bool in_source;
    bool skipping;
    uint32_t xid;
    wb_lsn commit_lsn;

    /* pending TRUNCATE targets (wb_config indexes) */
    int *truncates;
    size_t ntruncates;

    /* results not read yet: a ring */
    pending *ring;
    size_t ring_cap, ring_head, ring_count;
    bool unflushed;       /* sent since the last flush request */
    int sent_since_push;  /* statements since the last PQflush */
    bool keychange_found; /* result of the last PEND_KEYCHANGE_UPDATE */

    stmt_entry cache[APPLY_CACHE_MAX];
    uint64_t next_serial, tick;

    /* per-message scratch, sized for the widest table */
    size_t max_columns;
    const w2j_value **new_vals, **old_vals;
    bool *present; /* new_present [0, ncolumns) then old_present [ncolumns, 2 ncolumns) */
    strbuf *scratch;
    const char **params;
    int nscratch;

    row_batch batch;

    char **warned; /* "table\x1fcolumn" already warned about */
    size_t nwarned;
    char *conflict_sql;
    bool replica_role;
};

/* ---- small helpers ---- */

static const char *lsn_text(wb_lsn lsn, char buf[LSN_TEXT_MAX])
{
    return lsn_format(lsn, buf);
}

static double elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

static const char *table_name(const applier *a, int table)
{
    return table >= 0 ? a->cfg->tables[table].source : "(none)";
}

/* Logs a failed result with the change's context; returns the classification. */
static pgerr_class report_result(applier *a, const PGresult *res, const char *what, int table,
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
             table_name(a, table), lsn_text(lsn, lt), xid, msg, state != NULL ? state : "none");
    return cls;
}

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
             lsn_text(c->lsn, lt), c->xid, c->schema ? c->schema : "", c->schema ? "." : "",
             c->table ? c->table : "(none)", reason);
    *retryable = false;
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

static void ring_clear(applier *a)
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

static void cache_release(stmt_entry *e)
{
    free(e->present);
    apply_stmt_free(&e->stmt);
    memset(e, 0, sizeof *e);
}

/* Drops entries whose PREPARE was never acknowledged (after a failure). */
static void cache_drop_unconfirmed(applier *a)
{
    for (size_t i = 0; i < APPLY_CACHE_MAX; i++) {
        if (a->cache[i].used && !a->cache[i].confirmed)
            cache_release(&a->cache[i]);
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
    cache_release(victim);
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
            e->stmt.nrows == nrows && e->npresent == n &&
            memcmp(e->present, flat, n * sizeof *flat) == 0) {
            e->last_used = a->tick;
            return e;
        }
    }
    apply_stmt stmt;
    char err[256];
    if (!apply_sql_build_rows(a->cfg, t, kind, flat, flat + t->ncolumns, nrows, &stmt, err,
                              sizeof err)) {
        char lt[LSN_TEXT_MAX];
        log_full(LOG_ERROR, NULL, "Nothing past the last applied LSN is confirmed.",
                 "apply: cannot apply change at LSN %s (xid %u, table %s): %s", lsn_text(lsn, lt),
                 a->xid, table_name(a, table), err);
        *retryable = false;
        return NULL;
    }
    stmt_entry *e = cache_slot(a);
    e->used = true;
    e->table = table;
    e->kind = kind;
    e->hash = h;
    e->npresent = n;
    e->present = wb_xmalloc(n * sizeof *e->present + 1);
    memcpy(e->present, flat, n * sizeof *flat);
    e->serial = ++a->next_serial;
    e->last_used = a->tick;
    e->stmt = stmt;
    char name[32];
    statement_name(e->serial, name);
    log_debug("apply: preparing %s for %s: %s", name, table_name(a, table), stmt.sql);
    if (PQsendPrepare(a->conn, name, stmt.sql, 0, NULL) != 1) {
        report_result(a, NULL, "sending a prepared statement", table, a->xid, lsn);
        *retryable = true;
        a->broken = true;
        cache_release(e);
        return NULL;
    }
    pending *p = ring_push(a);
    p->what = PEND_PREPARE;
    p->table = table;
    p->xid = a->xid;
    p->lsn = lsn;
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
    if (PQsendFlushRequest(a->conn) != 1 || PQflush(a->conn) != 0) {
        report_result(a, NULL, "sending to the target", -1, a->xid, a->commit_lsn);
        a->broken = true;
        *retryable = true;
        return false;
    }
    a->unflushed = false;
    a->sent_since_push = 0;
    return true;
}

/* Records a conflict: counter, warning, and a row in <state_schema>.conflicts. */
static bool record_conflict_row(applier *a, const pending *p, const char *key, wb_lsn lsn,
                                const char *kind, const char *outcome, bool *retryable)
{
    char lt[LSN_TEXT_MAX];
    lsn_text(lsn, lt);
    log_warn("apply: conflict %s on %s key %s at LSN %s (xid %u): %s", kind,
             table_name(a, p->table), key != NULL ? key : "?", lt, p->xid, outcome);
    const char *params[5] = {a->cfg->slot, lt, table_name(a, p->table), kind, key};
    if (PQsendQueryParams(a->conn, a->conflict_sql, 5, NULL, params, NULL, NULL, 0) != 1) {
        report_result(a, NULL, "recording a conflict", p->table, p->xid, p->lsn);
        a->broken = true;
        *retryable = true;
        return false;
    }
    pending *rec = ring_push(a);
    rec->what = PEND_UTILITY;
    rec->table = p->table;
    rec->xid = p->xid;
    rec->lsn = lsn;
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
                  table_name(a, p->table), lsn_text(p->lsn, lt), PQntuples(res));
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
        if (!ok)
            return false;
    }
    return true;
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
        return true;
    case PEND_UPSERT_UPDATE:
        s->rows_updated++;
        if (result_inserted(res)) {
            s->conflicts_update_missing++;
            return record_conflict(a, p, "update_missing", "row inserted", retryable);
        }
        return true;
    case PEND_UPDATE:
        if (result_rows(res) > 0) {
            s->rows_updated++;
            return true;
        }
        s->conflicts_update_missing++;
        return record_conflict(a, p, "update_missing_partial",
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
                                   retryable);
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
        if (result_rows(res) > 0) {
            s->rows_deleted++;
            return true;
        }
        s->conflicts_delete_missing++;
        return record_conflict(a, p, "delete_missing", "nothing to delete", retryable);
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
        pgerr_class cls = report_result(a, res, pending_label(p.what), p.table, p.xid, p.lsn);
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
        report_result(a, NULL, "reading results (unexpected extra result)", p.table, p.xid, p.lsn);
        PQclear(res);
        a->broken = true;
        *retryable = true;
        return false;
    }
    ring_pop(a);
    return ok;
}

static bool consume_until(applier *a, size_t remaining, bool *retryable)
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
        if (PQflush(a->conn) < 0) {
            report_result(a, NULL, "sending to the target", -1, a->xid, a->commit_lsn);
            a->broken = true;
            *retryable = true;
            return false;
        }
    }
    if (a->ring_count >= APPLY_INFLIGHT_HIGH)
        return consume_until(a, APPLY_INFLIGHT_LOW, retryable);
    return true;
}

/* Reads every outstanding result, then syncs and leaves pipeline mode. */
static bool pipeline_finish(applier *a, bool *retryable)
{
    if (!a->in_pipeline)
        return true;
    if (!consume_until(a, 0, retryable))
        return false;
    if (PQpipelineSync(a->conn) != 1) {
        report_result(a, NULL, "syncing the pipeline", -1, a->xid, a->commit_lsn);
        a->broken = true;
        *retryable = true;
        return false;
    }
    PGresult *res = PQgetResult(a->conn);
    bool ok = res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    if (!ok)
        report_result(a, res, "syncing the pipeline", -1, a->xid, a->commit_lsn);
    PQclear(res);
    if (ok && PQexitPipelineMode(a->conn) != 1) {
        report_result(a, NULL, "leaving pipeline mode", -1, a->xid, a->commit_lsn);
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
static bool pipeline_discard(applier *a)
{
    ring_clear(a);
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

static void batch_clear(applier *a)
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
    if (PQsendQueryPrepared(a->conn, name, (int)total, rb->values, NULL, NULL, 0) != 1) {
        report_result(a, NULL, "insert", rb->table, a->xid, rb->rows[first].lsn);
        a->broken = true;
        *retryable = true;
        return false;
    }
    pending *p = ring_push(a);
    p->what = PEND_ROWS;
    p->table = rb->table;
    p->xid = a->xid;
    p->lsn = rb->rows[first].lsn;
    p->rows = wb_xmalloc((size_t)n * sizeof *p->rows);
    memcpy(p->rows, &rb->rows[first], (size_t)n * sizeof *p->rows);
    p->nrows = n;
    for (int r = first; r < first + n; r++)
        rb->rows[r].key = NULL; /* now owned by the pending entry */
    return after_send(a, retryable);
}

/* Sends the gathered rows in power-of-two chunks (few distinct prepared statements). */
static bool batch_flush(applier *a, bool *retryable)
{
    row_batch *rb = &a->batch;
    int first = 0;
    while (first < rb->nrows) {
        int n = 1;
        while (n * 2 <= rb->nrows - first)
            n *= 2;
        if (!batch_send(a, first, n, retryable)) {
            batch_clear(a);
            return false;
        }
        first += n;
    }
    batch_clear(a);
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
static bool batch_add(applier *a, int table, apply_stmt_kind kind, pending_what what, char *key,
                      wb_lsn lsn, bool *retryable)
{
    row_batch *rb = &a->batch;
    size_t n = 2 * a->cat->tables[table].ncolumns;
    bool same = rb->nrows > 0 && rb->table == table && rb->kind == kind && rb->npresent == n &&
                memcmp(rb->present, a->present, n * sizeof *rb->present) == 0;
    if (rb->nrows > 0 &&
        (!same || rb->nrows == rb->max_rows || rb->arena.len >= APPLY_BATCH_BYTES ||
         (key != NULL && batch_has_key(rb, key)))) {
        if (!batch_flush(a, retryable)) {
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

/* Prepares if needed and sends one statement; takes ownership of key. */
static bool send_stmt(applier *a, int table, apply_stmt_kind kind, pending_what what, char *key,
                      const w2j_change *c, bool *retryable)
{
    if (!batch_flush(a, retryable)) {
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
        report_result(a, NULL, pending_label(what), table, a->xid, c->lsn);
        free(key);
        a->broken = true;
        *retryable = true;
        return false;
    }
    pending *p = ring_push(a);
    p->what = what;
    p->table = table;
    p->xid = a->xid;
    p->lsn = c->lsn;
    p->key = key;
    return after_send(a, retryable);
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

static bool apply_insert(applier *a, int ti, const w2j_change *c, bool *retryable)
{
    const table_plan *t = &a->cat->tables[ti];
    if (t->nkey_columns == 0)
        return batch_add(a, ti, APPLY_STMT_INSERT, PEND_KL_INSERT, NULL, c->lsn, retryable);
    return check_key(a, t, c, retryable) && batch_add(a, ti, APPLY_STMT_UPSERT, PEND_INSERT,
                                                      key_text(a, t, true), c->lsn, retryable);
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
        return send_stmt(a, ti, complete ? APPLY_STMT_KL_UPSERT : APPLY_STMT_KL_UPDATE,
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
    if (!complete)
        return send_stmt(a, ti, APPLY_STMT_UPDATE, PEND_UPDATE, key_text(a, t, false), c,
                         retryable);
    if (!key_changed)
        return batch_add(a, ti, APPLY_STMT_UPSERT, PEND_UPSERT_UPDATE, key_text(a, t, false),
                         c->lsn, retryable);
    /* Move the row to its new key, then upsert the full new row under it: either the
     * move found the row (the upsert rewrites the same values) or it inserts it. */
    return send_stmt(a, ti, APPLY_STMT_UPDATE, PEND_KEYCHANGE_UPDATE, NULL, c, retryable) &&
           send_stmt(a, ti, APPLY_STMT_UPSERT, PEND_KEYCHANGE_UPSERT, key_text(a, t, true), c,
                     retryable);
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
        return send_stmt(a, ti, soft ? APPLY_STMT_KL_SOFT_DELETE : APPLY_STMT_KL_DELETE,
                         PEND_DELETE, key_text(a, t, false), c, retryable);
    }
    return check_key(a, t, c, retryable) &&
           send_stmt(a, ti, soft ? APPLY_STMT_SOFT_DELETE : APPLY_STMT_DELETE, PEND_DELETE,
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
    if (!batch_flush(a, retryable))
        return false;
    strbuf sql;
    strbuf_init(&sql);
    apply_sql_truncate(a->cfg, a->truncates, a->ntruncates, &sql);
    log_info("apply: %s", sql.data);
    int sent = PQsendQueryParams(a->conn, sql.data, 0, NULL, NULL, NULL, NULL, 0);
    strbuf_free(&sql);
    pending *p = NULL;
    if (sent == 1) {
        p = ring_push(a);
        p->what = PEND_TRUNCATE;
        p->table = a->truncates[0];
        p->xid = a->xid;
        p->lsn = lsn;
        a->stats.rows_truncated += a->ntruncates; /* tables truncated */
    }
    a->ntruncates = 0;
    if (p == NULL) {
        report_result(a, NULL, "truncate", a->truncates[0], a->xid, lsn);
        a->broken = true;
        *retryable = true;
        return false;
    }
    return after_send(a, retryable);
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
        *retryable = report_result(a, res, "BEGIN", -1, a->xid, a->commit_lsn) == PGERR_RETRY;
        PQclear(res);
        return false;
    }
    PQclear(res);
    a->batch_open = true;
    a->batch_rows = 0;
    a->batch_end_lsn = LSN_INVALID;
    clock_gettime(CLOCK_MONOTONIC, &a->batch_started);
    if (PQenterPipelineMode(a->conn) != 1) {
        report_result(a, NULL, "entering pipeline mode", -1, a->xid, a->commit_lsn);
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

static bool send_utility(applier *a, const char *sql, pending_what what, wb_lsn lsn,
                         bool *retryable)
{
    if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
        report_result(a, NULL, sql, -1, a->xid, lsn);
        a->broken = true;
        *retryable = true;
        return false;
    }
    pending *p = ring_push(a);
    p->what = what;
    p->xid = a->xid;
    p->lsn = lsn;
    return after_send(a, retryable);
}

/*
 * A source transaction joining a batch that already holds complete ones gets a
 * savepoint in front of it: if it cannot be applied, the ones before it are
 * still committed (salvage_before_failure) and the stream stops right at it.
 */
static bool mark_savepoint(applier *a, bool *retryable)
{
    if (a->savepoint_sent &&
        !send_utility(a, "RELEASE SAVEPOINT wb_txn", PEND_UTILITY, a->batch_end_lsn, retryable))
        return false;
    a->savepoint_sent = true;
    a->savepoints++;
    return send_utility(a, "SAVEPOINT wb_txn", PEND_SAVEPOINT, a->batch_end_lsn, retryable);
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
        (void)consume_until(a, 0, &ignored); /* results still due move savepoint_lsn */
    if (!pipeline_discard(a)) {
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
             lsn_text(lsn, lt));
    a->durable_lsn = lsn;
    a->batch_open = false;
    a->stats.batches_committed++;
}

/* The commit position of a B or C message: its end ("nextlsn"), else its "lsn". */
static wb_lsn commit_position(const w2j_change *c)
{
    return c->nextlsn != LSN_INVALID ? c->nextlsn : c->lsn;
}

static bool on_begin(applier *a, const w2j_change *c, bool *retryable)
{
    if (a->in_source) {
        return fail_input(retryable, c, "BEGIN while transaction %u is still open", a->xid);
    }
    a->in_source = true;
    a->xid = c->xid;
    a->commit_lsn = commit_position(c);
    wb_lsn done = a->durable_lsn;
    if (a->batch_open && a->batch_end_lsn > done)
        done = a->batch_end_lsn;
    if (a->commit_lsn != LSN_INVALID && a->commit_lsn <= done) {
        char lt[LSN_TEXT_MAX], dt[LSN_TEXT_MAX];
        log_debug("apply: skipping transaction %u (commit %s, already applied up to %s)", c->xid,
                  lsn_text(a->commit_lsn, lt), lsn_text(done, dt));
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
    wb_lsn commit = commit_position(c);
    if (commit == LSN_INVALID)
        commit = a->commit_lsn != LSN_INVALID ? a->commit_lsn : data_start;
    if (!batch_flush(a, retryable) || !flush_truncates(a, commit, retryable))
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
            return batch_flush(a, retryable) && add_truncate(a, c, retryable);
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
    if (!pipeline_finish(a, retryable))
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
        *retryable = report_result(a, res, "COMMIT", -1, a->xid, a->batch_end_lsn) == PGERR_RETRY;
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
    batch_clear(a);
    bool usable = pipeline_discard(a);
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
    cache_drop_unconfirmed(a);
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
    strbuf sql;
    strbuf_init(&sql);
    apply_sql_conflict_insert(cfg->state_schema, &sql);
    a->conflict_sql = strbuf_detach(&sql);

    bool found = false;
    wb_lsn lsn = LSN_INVALID;
    if (!state_get_applied_lsn(target, cfg->state_schema, cfg->slot, &lsn, &found, NULL) ||
        !read_statement_serial(a)) {
        applier_free(a);
        return NULL;
    }
    a->durable_lsn = found ? lsn : LSN_INVALID;
    set_replica_role(a);
    char lt[LSN_TEXT_MAX];
    log_debug("apply: applied LSN for slot \"%s\" is %s", cfg->slot,
              found ? lsn_text(lsn, lt) : "not recorded yet");
    return a;
}

void applier_free(applier *a)
{
    if (a == NULL)
        return;
    if (a->batch_open || a->in_pipeline)
        applier_abort(a);
    ring_clear(a);
    free(a->ring);
    batch_clear(a);
    strbuf_free(&a->batch.arena);
    free(a->batch.present);
    free(a->batch.offsets);
    free(a->batch.values);
    for (size_t i = 0; i < APPLY_CACHE_MAX; i++) {
        if (a->cache[i].used)
            cache_release(&a->cache[i]);
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
    free(a->conflict_sql);
    free(a->batch_commit_time);
    free(a);
}
