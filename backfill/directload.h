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

/*
 * Copies every table with direct[i] set and builds what is deferred for them;
 * with_indexes[i]: the table starts once its parents are finished (pieces then go
 * parents first): it was empty and keeps its indexes and foreign keys (plain
 * backfill), or it resumes a deferred load of an earlier run.  o is
 * the run's options (copied and adjusted: direct, keys only, no row fetch
 * connection); jobs the lanes wanted.  s->source must be inside the run's snapshot
 * transaction (handoff_begin), h the run's handoff.  False after logging.
 */
bool directload_run(bf_session *s, const handoff *h, const tablediff_options *o, int jobs,
                    const bool *direct, const bool *with_indexes, tablediff_result *results);

#endif
