/*
 * apply_internal.h — private to the stream applier (cdc/apply.c,
 * cdc/apply_pipeline.c): the applier struct and the pipeline layer's
 * functions.  Nothing outside cdc/apply*.c includes it.
 *
 * apply.c turns wal2json messages into statements and owns the transaction
 * logic (batches, skipping, savepoints, salvage on failure); apply_pipeline.c
 * owns the libpq side: the prepared-statement cache, parameters, sending in
 * pipeline mode, reading every result back in order and counting what it
 * says (including conflicts), and the multi-row batching of inserts.
 *
 * Failure convention as everywhere: bool functions log once where the
 * failure is detected; *retryable says whether reconnecting may help.
 */
#ifndef WALBRIDGE_APPLY_INTERNAL_H
#define WALBRIDGE_APPLY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <libpq-fe.h>

#include "cdc/apply.h"
#include "cdc/apply_sql.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

#define APPLY_CACHE_MAX 256              /* prepared statements kept per session */
#define APPLY_INFLIGHT_HIGH 512          /* read results back when this many are outstanding */
#define APPLY_INFLIGHT_LOW 128           /* ... down to this many */
#define APPLY_SEND_FLUSH_EVERY 32        /* push buffered statements to the server this often */
#define APPLY_SCRATCH_KEEP (1024 * 1024) /* larger per-parameter buffers are released */
#define APPLY_SAVEPOINTS_MAX 1000 /* source txns per batch: each holds a subtransaction lock */
#define APPLY_BATCH_ROWS 64       /* rows per multi-row statement */
#define APPLY_BATCH_BYTES (1024 * 1024) /* ... or this many bytes of values */
#define APPLY_PUSH_BYTES (64 * 1024)    /* a batch this large is sent to the server at once */

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
    batch_row rows[APPLY_BATCH_ROWS];
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
    unsigned guard_epoch; /* applier.guard_epoch when built */
    bool *present;        /* 2 * ncolumns: new_present then old_present */
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
    bool *guarded; /* per wb_config table: a key change was recorded, upserts use UPSERT_GUARDED */
    unsigned guard_epoch;    /* bumped when a table is first guarded (mark_guarded in apply.c): the
                                statements cached before fall back differently for references */
    struct apply_bulk *bulk; /* apply_bulk.c: the current run of inserts */
};
/* LSN text for messages (buf of LSN_TEXT_MAX bytes); returns buf. */
const char *apply_lsn_text(wb_lsn lsn, char buf[LSN_TEXT_MAX]);
/* The configured source name of a table index, "(none)" for -1. */
const char *apply_table_name(const applier *a, int table);
/* Logs a failed result (NULL: the connection's error) with LSN, xid, table, SQLSTATE. */
pgerr_class apply_report_result(applier *a, const PGresult *res, const char *what, int table,
                                uint32_t xid, wb_lsn lsn);

/* Forgets every outstanding result (after a failure). */
void apply_ring_clear(applier *a);
void apply_cache_release(stmt_entry *e);
/* Drops cache entries whose PREPARE the server never acknowledged. */
void apply_cache_drop_unconfirmed(applier *a);

/* Reads and checks results until at most remaining are outstanding. */
bool apply_consume_until(applier *a, size_t remaining, bool *retryable);
/* Reads every result, syncs and leaves pipeline mode (before COMMIT). */
bool apply_pipeline_finish(applier *a, bool *retryable);
/* Discards outstanding results after a failure; false when the connection is unusable. */
bool apply_pipeline_discard(applier *a);

/* Multi-row batching of inserts/upserts: add the current row (a->present, a->new_vals). */
bool apply_batch_add(applier *a, int table, apply_stmt_kind kind, pending_what what, char *key,
                     wb_lsn lsn, bool *retryable);
/* Sends the gathered rows; every other statement must call it first (source order). */
bool apply_batch_flush(applier *a, bool *retryable);
void apply_batch_clear(applier *a);

/* Prepares if needed and sends one statement for the current row; takes ownership of key. */
bool apply_send_stmt(applier *a, int table, apply_stmt_kind kind, pending_what what, char *key,
                     const w2j_change *c, bool *retryable);
/* Sends one parameterless statement (SAVEPOINT, TRUNCATE ...) in the pipeline. */
bool apply_send_sql(applier *a, const char *sql, pending_what what, int table, wb_lsn lsn,
                    bool *retryable);

#endif
