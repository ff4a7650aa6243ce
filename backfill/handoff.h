/*
 * handoff.h — the snapshot backfill reads the source through, and the
 * replication slot the stream continues from (DESIGN.md, Guarantee 1).
 *
 * When the slot does not exist, handoff_begin creates it on a replication
 * connection with CREATE_REPLICATION_SLOT ... LOGICAL wal2json (SNAPSHOT
 * 'export'), keeps that connection open (the exported snapshot lives as long
 * as it stays idle), and starts the source connection's transaction with
 * BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT.  Every
 * row backfill reads is then exactly the state at the slot's consistent
 * point, and everything committed after it reaches the stream.  Slot
 * creation waits for running write transactions; the wait is bounded by
 * backfill.slot_create_timeout_s and while it lasts the transactions waited
 * for are logged (pid, start, query) from pg_stat_activity.
 *
 * When the slot exists (a re-run, or --dry-run which never creates it), the
 * source transaction is a fresh REPEATABLE READ snapshot; with exact, it is the
 * exported snapshot of a TEMPORARY slot instead ("<slot>_backfill_<pid>", gone
 * when the replication connection closes), whose consistent point tells which
 * transactions the snapshot holds: backfill brings the stream exactly there
 * before it diffs (keyless tables need it, see backfill_cmd.c).
 *
 * Ownership: the handoff owns the replication connection; handoff_close
 * closes it.  The source connection is borrowed.
 */
#ifndef WALBRIDGE_HANDOFF_H
#define WALBRIDGE_HANDOFF_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "common/config.h"
#include "common/lsn.h"

typedef struct handoff {
    PGconn *repl;          /* replication connection holding the snapshot, or NULL */
    bool slot_existed;     /* the slot was there before this run */
    bool slot_created;     /* this run created it */
    bool snapshot_lsn;     /* the run reads a slot's exported snapshot: consistent_lsn is
                              exactly its position (this run's slot, or a temporary one) */
    wb_lsn consistent_lsn; /* snapshot_lsn: the slot's consistent point */
    char snapshot[64];     /* snapshot_lsn: the exported snapshot's name */
} handoff;

/*
 * Looks up the slot, creates it when missing and create is true, and begins
 * the source transaction on the right snapshot.  Returns false after logging
 * (slot of another plugin, timeout, connection failure).
 */
bool handoff_begin(const wb_config *cfg, PGconn *source, bool create, bool exact, handoff *h);
void handoff_close(handoff *h);

/*
 * Starts other's transaction on the same snapshot as source's (after
 * handoff_begin, before source reads anything): the slot's exported snapshot
 * when this run created the slot, else one exported from source's
 * transaction (pg_export_snapshot).  Returns false when that is not possible
 * (logged; source is then in a fresh snapshot transaction, still usable).
 * other: an idle source connection.
 */
bool handoff_share_snapshot(const handoff *h, PGconn *source, PGconn *other);

#endif
