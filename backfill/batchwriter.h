/*
 * batchwriter.h — backfill's writes to the target, batch by batch.
 *
 * Rows the diff finds missing (or stale) are staged with COPY into a TEMP
 * table in source form plus the UUIDv5 ids computed here; extra keys to
 * delete are buffered.  Closing a batch ends the COPY, deletes the extra keys
 * (before the insert: a missing row may collide with an extra one on a unique
 * constraint) and sends the set-based INSERT ... SELECT (tablesql.h) without
 * waiting for it; the batch's transaction is finished later: checkpoint
 * written, COMMIT.  With two connections the INSERT of one batch runs on the
 * server while the diff goes on and the next batch is staged on the other
 * connection.  Batches always commit in order, so the checkpoint only moves
 * forward and covers exactly the committed rows.  Orphans (target rows whose
 * key's parent is gone, no key to name them by) are deleted in the last batch.
 *
 * The caller owns the struct (bw_init / bw_free) and borrows the
 * connections, which must be idle, outside a transaction, with the staging
 * tables created (bw_prepare).
 */
#ifndef WALBRIDGE_BATCHWRITER_H
#define WALBRIDGE_BATCHWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "backfill/keyset.h"
#include "backfill/tablesql.h"
#include "common/strbuf.h"

#define BW_MAX_CONNS 2
/*
 * A batch's insert joins each parent by legacy key.  When BW_PROBE_COST * staged rows *
 * joins is below the parents' rows (pg_class.reltuples), the insert runs with hash and
 * merge joins off, so each staged row probes the parent's unique legacy-key index
 * instead of the whole parent table being hashed (a catch-up's small batches).  A
 * probe measured 3-15 us (warm or cold index pages), hashing 0.7 us per parent row.
 */
#define BW_PROBE_COST 20.0

/* One write connection and the batch it holds. Private to batchwriter.c. */
typedef struct bw_conn {
    PGconn *conn;
    bool in_txn;            /* BEGIN sent */
    bool copying;           /* COPY into the stage is open */
    bool sent;              /* INSERT sent, result not yet read */
    bool queued;            /* a closed batch waits to be finished */
    strbuf extras;          /* COPY text of the batch's extra keys */
    strbuf ckpt_key;        /* checkpoint key of the closed batch ("" = none yet) */
    uint64_t missing;       /* rows of the batch that were missing */
    uint64_t stale;         /* rows of the batch that were stale */
    uint64_t nextras;       /* extra keys buffered */
    uint64_t copied_direct; /* rows the direct COPY of the batch wrote */
    uint64_t extra_deleted; /* rows the batch's extra keys deleted (at close) */
} bw_conn;

typedef struct batch_writer {
    const table_layout *lay;
    int index; /* table index: names the TEMP tables */
    const char *state_schema;
    const char *slot;
    bw_conn w[BW_MAX_CONNS];
    int nconns;
    int cur;           /* connection staging the open batch */
    strbuf line;       /* one staged row */
    bool update_stale; /* the INSERT rewrites stale rows (ON CONFLICT DO UPDATE) */
    /* Set after bw_init, before the first row.  direct: rows go with COPY straight into
     * the table, ids and references computed here as UUIDv5 (tablesql_direct_copy); only
     * for a table that held no row when its indexes were deferred and whose parents were
     * loaded the same way, so nothing can conflict and every parent has its UUIDv5.
     * no_checkpoint: batches commit without the checkpoint (a piece of a table). */
    bool direct;
    bool no_checkpoint;
    strbuf insert_sql;        /* INSERT ... SELECT from the stage */
    bool *moved;              /* per wb_config table: a parent with a recorded key change */
    tablesql_pending pending; /* pending_refs records an earlier version may have left */
    bool fix_pending;         /* some column may have such records: bw_finish fixes them */
    int njoins;               /* reference columns: parent tables the insert joins */
    double parent_rows;       /* their reltuples summed (0: one is unknown or empty) */
    strbuf delete_sql;        /* DELETE of the staged extra keys */
    strbuf orphan_sql;        /* DELETE of orphans ("" when they are not deleted) */
    uint64_t orphans;         /* orphans found by the diff: the last batch deletes them */
    int64_t rows_copied;      /* checkpoint's rows_copied: earlier runs + committed batches */
    uint64_t copied, stale_fixed, extra_deleted; /* committed by this run */
    double wait_seconds;                         /* time spent waiting for the target */
} batch_writer;

void bw_init(batch_writer *bw, const table_layout *lay, int index, PGconn *const *conns, int nconns,
             const char *state_schema, const char *slot, bool update_stale, int64_t rows_copied);
void bw_free(batch_writer *bw);
/*
 * Re-points the references of lay's table recorded in pending_refs whose parent row is
 * in the target now, drops the records whose row is gone or holds a reference again,
 * and warns about those still waiting (tablesql.h, tablesql_pending).  Autocommit on
 * conn.  bw_finish runs it for a table that has such references.
 */
bool bw_fix_pending(PGconn *conn, const table_layout *lay, const tablesql_pending *pending);

/*
 * Creates the TEMP staging tables on every connection (idempotent).  For a
 * UUID-mapped table with a recorded key change (<state_schema>.moved_keys, written
 * by the stream) the INSERT gives a new row whose UUIDv5 is taken a random UUID.
 * With extras, orphans (tablesql_orphans_delete) can be deleted: bw_orphans_found.
 */
bool bw_prepare(batch_writer *bw, bool extras);
/* The diff found n orphans: the last batch (bw_finish) deletes them, like extra keys. */
void bw_orphans_found(batch_writer *bw, uint64_t n);

/* Stages one source row (missing, or stale when stale is true). */
bool bw_stage(batch_writer *bw, const keyset_entry *src, bool stale);
/* Buffers one extra key (COPY text line without the newline). */
void bw_extra(batch_writer *bw, const char *key, size_t len);
/* Rows staged + extra keys in the open batch. */
size_t bw_batch_size(const batch_writer *bw);

/* Closes the open batch (its checkpoint: every key up to ckpt_key is handled). */
bool bw_flush(batch_writer *bw, const char *ckpt_key);
/* Closes the open batch and finishes everything; the last checkpoint says done. */
bool bw_finish(batch_writer *bw, const char *ckpt_key);
/* Rolls back whatever is open (after a failure). */
void bw_abort(batch_writer *bw);

#endif
