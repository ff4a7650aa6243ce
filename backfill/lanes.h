/*
 * lanes.h — runs per-table work of verify and backfill on several lanes at once
 * (verify --jobs N; backfill's direct loads under --defer-indexes).  A lane is one
 * source connection, one target read connection, optionally one target write
 * connection and, when there is more than one lane, one POSIX thread; each lane
 * takes the next table from a shared queue, largest first (the planner's row
 * estimate), and runs the job's function on it.  Results land wherever the
 * function puts them by config index, so callers print in config order whatever
 * order the tables finish in.
 *
 * Snapshot: every lane reads the source in one REPEATABLE READ snapshot.  Without
 * join_snapshot (verify) the session's source connection begins it here and exports
 * it (pg_export_snapshot), every other lane imports it (SET TRANSACTION SNAPSHOT)
 * before any lane starts; when the source cannot export a snapshot, the work runs
 * on one lane and says so.  With join_snapshot (backfill) the session's source is
 * already inside its snapshot transaction and join_snapshot puts each other lane's
 * source connection into the same one.  The target side reads outside a
 * transaction.
 *
 * With one lane (jobs 1, or one table) nothing changes from sequential work: no
 * thread, no extra connection, no export, the tables in config order on the
 * session's connections (lane 0: s->source, s->target_read, s->target_write[0]).
 *
 * Thread-safety: the lanes share only the queue (mutex) and read-only data
 * (config, catalog, layouts, the job); each writes only its own connections and
 * its tables' result slots.  Connections are opened and snapshots joined on the
 * calling thread.  Logging (log.h) is mutex-guarded.
 */
#ifndef WALBRIDGE_LANES_H
#define WALBRIDGE_LANES_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

#include "backfill/bfsession.h"

/* One lane's connections, as the job's function sees them (borrowed). */
typedef struct lane_conns {
    size_t number; /* 1..N, for messages */
    PGconn *source;
    PGconn *target; /* target reads */
    PGconn *write;  /* target writes (lanes_job.write), else NULL */
} lane_conns;

typedef struct lanes_job {
    bf_session *s;
    const bool *tables; /* per config index: run this table (run gets the index) */
    /* Or, with items: work items taken in this order (run gets the item; tables is
     * then unused), e.g. pieces of tables. */
    const size_t *items;
    size_t nitems;
    int jobs;         /* lanes wanted (at most one per table) */
    bool write;       /* extra lanes open a target write connection, with
                       * session_replication_role = replica where the role may */
    const char *what; /* "verify", "backfill": names the lanes in messages */
    /* NULL: begin and export the session source's snapshot here (above). */
    bool (*join_snapshot)(void *ctx, PGconn *source);
    /* The work on one table; false stops the lanes (no more tables are taken). */
    bool (*run)(void *ctx, const lane_conns *lane, size_t index);
    /*
     * Optional: called by a lane once no table is left to take, again and again until
     * it returns LANES_IDLE_DONE (LANES_IDLE_AGAIN: it did something; LANES_IDLE_WAIT:
     * nothing to do yet, called again after a short pause).  tables_running: other
     * lanes are still inside run().  Lets lanes share work that the tables' work
     * produces (backfill's index builds).
     */
    int (*idle)(void *ctx, const lane_conns *lane, bool tables_running);
    void *ctx;
} lanes_job;

enum { LANES_IDLE_DONE = 0, LANES_IDLE_AGAIN = 1, LANES_IDLE_WAIT = 2, LANES_IDLE_FAILED = -1 };

/* Source size of t: the planner's row estimate (< 0 never analyzed) and bytes on disk. */
bool lanes_table_size(PGconn *source, const table_config *t, double *rows, double *bytes);

/*
 * Runs job->run on every table of job->tables (or item) on up to job->jobs lanes.  Connections
 * opened for extra lanes are closed before return.  Returns false after logging when
 * a table's work or a lane's setup failed; tables not yet started are then skipped.
 */
bool lanes_run(const lanes_job *job);

#endif
