/*
 * rowfetch.h — fetching the source rows of missing and stale keys by key,
 * on a second source connection that shares the diff's snapshot.
 *
 * Without it the source diff query would carry every column of every row
 * just to stage the 1% the target lacks: that doubles the source's work
 * (each row rendered for the hash and again for COPY).  With it the diff
 * streams (key, hash) only, and the merge queues the keys it needs here;
 * they are fetched in chunks (one query per chunk: the keys travel as text
 * arrays, unnest()ed and joined to the table by its key, each cast back to
 * the key column's type) and handed to the batch writer as keyset entries
 * shaped like the diff's own rows.  Keyed tables only: a keyless row has no
 * key to fetch it by.
 *
 * The queue holds at most ROWFETCH_CHUNK keys; memory does not grow with
 * the table.  The caller fetches (rowfetch_flush) before it closes a batch,
 * so a batch always holds every row its checkpoint covers.
 *
 * Ownership: the fetcher borrows the layout, the connection and the batch
 * writer; rowfetch_free releases its buffers.
 */
#ifndef WALBRIDGE_ROWFETCH_H
#define WALBRIDGE_ROWFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

#include "backfill/batchwriter.h"
#include "backfill/keyset.h"
#include "backfill/tablesql.h"
#include "common/strbuf.h"

#define ROWFETCH_CHUNK 2000

typedef struct row_fetcher {
    const table_layout *lay;
    PGconn *conn;     /* source connection in the diff's snapshot */
    batch_writer *bw; /* receives the fetched rows */
    strbuf sql;       /* the fetch query (built once) */
    /* Queued keys, per kind (0 missing, 1 stale): one text[] literal per key column. */
    strbuf arrays[2][KEYSET_MAX_KEY];
    size_t queued[2];
} row_fetcher;

void rowfetch_init(row_fetcher *f, const table_layout *lay, PGconn *conn, batch_writer *bw);
void rowfetch_free(row_fetcher *f);

/* Keys queued and not fetched yet. */
size_t rowfetch_pending(const row_fetcher *f);

/* Queues the key of e (missing, or stale); fetches when the queue is full. */
bool rowfetch_queue(row_fetcher *f, const keyset_entry *e, bool stale);

/* Fetches every queued key's row and stages it; false (logged) on failure or a key
 * whose row is not found. */
bool rowfetch_flush(row_fetcher *f);

#endif
