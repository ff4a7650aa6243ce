/*
 * apply.h — applying parsed wal2json changes to the target, with the
 * integer→UUID remapping, source-wins conflict handling and exactly-once
 * bookkeeping (DESIGN.md, "Guarantees" 2–5).
 *
 * Model: the stream loop feeds every message of every source transaction in
 * order.  The applier keeps one target transaction open across several small
 * source transactions (a batch) and commits it — together with the applied
 * LSN row in the state schema — when applier_flush is called or when the
 * batch bounds (rows, milliseconds) say so.  A huge source transaction is
 * applied as it arrives into the open target transaction; nothing is buffered
 * whole.  A source transaction whose commit LSN is <= the stored applied LSN
 * is skipped entirely (its BEGIN carries the commit LSN with include-lsn).
 *
 * applier_durable_lsn is the only LSN the stream may confirm to the source.
 *
 * Failure: any function returning false has logged the reason once (LSN, xid,
 * table, SQLSTATE).  *retryable (where present) says whether reconnecting and
 * resuming from applier_durable_lsn may help (connection loss) or the stream
 * must stop (data that cannot be applied).  After a failure the open target
 * transaction is rolled back and nothing past the durable LSN is confirmed.
 * After a retryable failure, free the applier and create a new one on a fresh
 * connection (applier_new re-reads the applied LSN from the target).
 *
 * Conflicts (source wins) are counted in apply_stats, logged as warnings and
 * inserted into <state_schema>.conflicts (kind insert_existing,
 * update_missing, update_missing_partial, delete_missing) in the same target
 * transaction as the change.  LSNs: a source transaction's commit position is
 * its end ("nextlsn" on B/C); that is what is stored and made durable.
 */
#ifndef WALBRIDGE_APPLY_H
#define WALBRIDGE_APPLY_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "cdc/w2j.h"
#include "common/catalog.h"
#include "common/config.h"

typedef struct applier applier; /* opaque */

typedef struct apply_stats {
    uint64_t rows_inserted, rows_updated, rows_deleted, rows_truncated;
    uint64_t conflicts_insert_existing; /* insert of an existing key -> updated */
    uint64_t conflicts_update_missing;  /* update of a missing row -> inserted */
    uint64_t conflicts_delete_missing;  /* delete of a missing row -> no-op */
    uint64_t txns_applied, txns_skipped, batches_committed;
} apply_stats;

/*
 * Creates an applier on an open target connection (which it borrows; the
 * caller closes it after applier_free).  Reads the applied LSN for the slot
 * from the state schema.  Returns NULL on failure (logged).
 */
applier *applier_new(const wb_config *cfg, const catalog *cat, PGconn *target);
void applier_free(applier *a);

/* Feeds one parsed message; data_start is the w message's dataStart LSN. */
bool applier_feed(applier *a, const w2j_change *c, wb_lsn data_start, bool *retryable);
/* True when the open batch should be committed now (bounds reached). */
bool applier_batch_due(const applier *a);
/* Commits the open batch (if any, and only at a source transaction boundary). */
bool applier_flush(applier *a, bool *retryable);
/* Rolls back whatever is open (used on shutdown with an incomplete transaction). */
void applier_abort(applier *a);
/* True while a source transaction is open (BEGIN seen, COMMIT not yet). */
bool applier_in_transaction(const applier *a);

wb_lsn applier_durable_lsn(const applier *a);
const apply_stats *applier_stats(const applier *a);

#endif
