/*
 * tablediff.h — the diff engine of backfill and verify for one table: both
 * sides' (key, hash) streams as COPY TO STDOUT in flight at once (one source
 * and one target connection), merged by keyset_merge; optionally the missing
 * (and stale) rows are copied and the extra rows deleted on one or two
 * write connections (batchwriter.h), batch by batch, each batch one target
 * transaction carrying its checkpoint.
 *
 * Writing (backfill): the missing (and stale) rows' mapped columns are
 * fetched by key in chunks on a second source connection that shares the
 * snapshot (rowfetch.h), so the diff itself carries only (key, hash).  Without
 * that connection, for a keyless table, and when the target holds no row of
 * the table yet, the source diff query carries each row's columns instead and
 * a missing row is staged the moment the merge finds it.  Staged rows go with COPY into a TEMP
 * table in source form plus their UUIDv5 ids, then one INSERT ... SELECT per batch remaps keys and
 * references in SQL (tablesql.h).  A batch is closed only between two different keys, so a multiset
 * group (keyless table) never straddles a checkpoint.
 *
 * Connections are borrowed: source must already be inside its snapshot
 * transaction; target_read is idle; the nwriters target_write connections
 * are idle (NULL / 0 when not writing).  On failure the write transactions
 * are rolled back and the read connections may be left mid-COPY: close them.
 */
#ifndef WALBRIDGE_TABLEDIFF_H
#define WALBRIDGE_TABLEDIFF_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "backfill/keyset.h"
#include "backfill/tablesql.h"

typedef struct tablediff_options {
    bool write;         /* copy missing rows (backfill without --dry-run) */
    bool include_stale; /* also rewrite stale rows (write only) */
    bool delete_extra;  /* delete extra target rows (write only; the table's "deletes"
                         * policy decides: apply deletes, soft sets the column, ignore
                         * only reports) */
    bool resume;        /* start after the table's checkpoint (write only) */
    bool keys_only;     /* compare keys only, no row hashes: nothing is found stale */
    bool direct;        /* COPY rows straight into the table (batch_writer.direct): its indexes
                         * are deferred (deferidx.h) */
    /* One piece of a table copied on several lanes (a single integer key): the keys in
     * [range_lo, range_hi) (NULL: unbounded).  A piece reads the checkpoint but never
     * writes it; the caller writes the table's when every piece is done. */
    bool piece;
    const char *range_lo, *range_hi;
    int batch_rows;  /* rows per batch / checkpoint */
    int show;        /* remember up to this many keys per kind (verify --show) */
    bool progress;   /* draw a progress line on stderr (a terminal) */
    double estimate; /* source rows expected (reltuples) for the ETA; <= 0 unknown */
    const char *state_schema;
    const char *slot;
    /* A second source connection in the same snapshot (write only; NULL: none).  With
     * it, a keyed table's diff streams (key, hash) only and the missing/stale rows are
     * fetched by key (rowfetch.h); without it they travel with the diff. */
    PGconn *source_fetch;
    /* The source diff query was sent already (tablediff_send_ahead, on the source
     * connection tablediff_run gets). */
    bool source_sent;
    /* Called once the merge has ended, before the table's last rows are fetched and its
     * last batches written (NULL: none): lets the next table's source query run
     * meanwhile.  False stops the run, after this table's rows are written. */
    bool (*merged)(void *ctx);
    void *merged_ctx;
} tablediff_options;

typedef struct tablediff_result {
    keyset_counts counts;
    uint64_t copied;        /* missing rows staged and inserted */
    uint64_t stale_fixed;   /* stale rows rewritten */
    uint64_t extra_deleted; /* extra rows deleted (soft policy: marked deleted) */
    uint64_t orphans;       /* target rows whose key's parent is gone (also in counts.extra) */
    double seconds;
    double write_seconds; /* part of seconds spent waiting for batch writes */
    bool skipped_done;    /* --resume: checkpoint said the table was finished */
    bool resumed;         /* started after a checkpoint key */
    /* verify --show: up to show keys of each kind, as text (caller frees with the result). */
    char **missing_keys, **extra_keys, **stale_keys;
    size_t nmissing_keys, nextra_keys, nstale_keys;
} tablediff_result;

/*
 * Diffs (and with opts->write, repairs) one table.  Returns false after
 * logging the failure (table named).  The result is filled either way.
 */
bool tablediff_run(const table_layout *lay, int table_index, PGconn *source, PGconn *target_read,
                   PGconn *const *target_write, int nwriters, const tablediff_options *opts,
                   tablediff_result *res);
/*
 * The lookahead of a backfill's tables diffed one after another: sends lay's source
 * diff query on source, an idle connection in the snapshot, and returns without
 * waiting, so that the source sorts and hashes the table while the previous table's
 * last batches are written.  Only a plain diff goes ahead: writing (rows fetched by
 * key), hashes, no --resume, no key range, rows in the target (target_read answers
 * that); *sent says whether it went.  Then call tablediff_run for lay on the same
 * source connection with opts->source_sent = *sent.  False after logging a failure.
 */
bool tablediff_send_ahead(const table_layout *lay, PGconn *source, PGconn *target_read,
                          const tablediff_options *opts, bool *sent);

void tablediff_result_free(tablediff_result *res);
/* The log lines of a table's result (and the extra rows kept, unless delete_extra). */
void tablediff_log_result(const table_config *t, const tablediff_result *r, bool delete_extra);

#endif
