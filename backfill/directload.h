/*
 * directload.h — backfill's direct loads (--defer-indexes): the tables whose
 * indexes are deferred (deferidx.h) are copied straight in with COPY on several
 * lanes at once (lanes.h), all in the run's source snapshot, and the lanes with no
 * table left build the deferred indexes, constraints and foreign keys of the tables
 * already copied (deferidx_rebuild_step), beside the lanes still copying.
 *
 * With more than one lane, a large table with a single integer key (not itself a
 * reference) is cut into pieces by key range, from the source's min and max key,
 * so that the lanes end together: each piece is its own diff and copy of the keys
 * in [lo, hi), the first and last unbounded.  A piece never writes the table's
 * checkpoint; the last piece to finish marks the table done.  A killed run thus
 * leaves the table not done, and `--resume` diffs it again: rows committed by
 * pieces are found present, the rest is copied.
 *
 * Results land in results[i] at each table's config index (a split table's pieces
 * summed, its seconds from its first piece's start to its last piece's end).
 */
#ifndef WALBRIDGE_DIRECTLOAD_H
#define WALBRIDGE_DIRECTLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "backfill/bfsession.h"
#include "backfill/handoff.h"
#include "backfill/tablediff.h"

/* How a table is loaded straight in (per config index). */
typedef enum dl_load {
    DL_NONE = 0, /* not: diffed and upserted (tablediff_run) */
    DL_DEFERRED, /* its indexes deferred by this run (deferidx.h) */
    DL_RESUMED,  /* its indexes deferred by an earlier run: rows are there already, some
                  * maybe without their parent rows, so it starts after its parents */
    DL_EMPTY     /* empty, indexes and foreign keys in place: starts after its parents */
} dl_load;

/*
 * Copies every table whose load[i] is not DL_NONE and builds what is deferred for
 * them.  A table that starts after its parents waits until they are finished, and
 * pieces are then handed out parents first.  o is the run's options (copied and
 * adjusted: direct, keys only, no row fetch connection); jobs the lanes wanted.
 * s->source must be inside the run's snapshot transaction (handoff_begin), h the
 * run's handoff.  False after logging.
 */
bool directload_run(bf_session *s, const handoff *h, const tablediff_options *o, int jobs,
                    const dl_load *load, tablediff_result *results);

#endif
