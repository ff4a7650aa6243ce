/*
 * verify_lanes.h — runs verify's table diffs on several lanes at once
 * (verify --jobs N).  A lane is one source and one target read connection
 * and, when there is more than one lane, one POSIX thread; each lane takes
 * the next table from a shared queue, largest first (the planner's row
 * estimate), and runs tablediff_run on it.  Results land in the caller's
 * array at each table's config index, so the caller prints them in config
 * order whatever order the tables finish in.
 *
 * Snapshot: the source is read in one REPEATABLE READ snapshot, as with one
 * lane: the session's source connection opens it and exports it
 * (pg_export_snapshot), every other lane's source connection imports it
 * (SET TRANSACTION SNAPSHOT) before any lane starts.  When the source cannot
 * export a snapshot, verify runs on one lane and says so.  The target side
 * reads outside a transaction, as with one lane.
 *
 * With one lane (jobs 1, or one selected table) nothing changes from the
 * sequential verify: no thread, no extra connection, no export, the tables in
 * config order on the session's connections.
 *
 * Thread-safety: the lanes share only the queue (mutex) and read-only data
 * (config, catalog, layouts, tablediff_options); each writes only its own
 * connections and its tables' result slots.  Connections are opened and the
 * snapshot imported on the calling thread.  Logging (log.h) is mutex-guarded.
 */
#ifndef WALBRIDGE_VERIFY_LANES_H
#define WALBRIDGE_VERIFY_LANES_H

#include <stdbool.h>

#include "backfill/bfsession.h"
#include "backfill/tablediff.h"

/*
 * Diffs every selected table of s into results[i] (i the config index; the
 * caller allocates s->cfg.ntables results and frees them with
 * tablediff_result_free) on up to jobs lanes.  s->source must be idle, outside
 * a transaction: on return it is inside the snapshot transaction (the caller
 * commits it).  Connections opened for extra lanes are closed before return.
 * Returns false after logging when a table's diff or a lane's setup failed;
 * tables not yet started are then skipped.
 */
bool verify_lanes_run(bf_session *s, int jobs, const tablediff_options *o,
                      tablediff_result *results);

#endif
