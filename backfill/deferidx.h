/*
 * deferidx.h — backfill --defer-indexes: load an empty target table without its
 * indexes, then build them once, the way pg_restore and pgcopydb do.
 *
 * Maintaining a random-uuid primary key and the uuid reference indexes row by row
 * costs the target more than the rows themselves; building an index once from the
 * loaded table is several times cheaper.  For a table that holds no row:
 *
 *   deferidx_begin   in one target transaction, under ACCESS EXCLUSIVE lock: the
 *                    definitions of the table's indexes, its index-backed constraints
 *                    (primary key, unique, exclusion) and every foreign key from or to
 *                    it are written to <state_schema>.deferred_ddl, then dropped;
 *   (the copy)       rows go with COPY straight into the table (batchwriter direct);
 *   (the rebuild)    deferidx_rebuild_step, called by the lanes that have nothing
 *                    left to copy (directload.h): one record at a time, claimed with
 *                    FOR UPDATE SKIP LOCKED and run in its own transaction with its
 *                    record: indexes; key constraints as their unique index, then
 *                    ADD CONSTRAINT ... USING INDEX; foreign keys, once both their
 *                    tables have nothing else pending, added NOT VALID, then
 *                    validated.  deferidx_rebuild and deferidx_rebuild_foreign_keys
 *                    run the same steps on one connection for whatever is left.
 *
 * A run killed at any point leaves the records; the next backfill rebuilds what they
 * still hold after the table's copy (or at once when the table is not copied again),
 * and `walbridge stream` refuses to start while any is left (state_deferred_pending).
 * A rebuild that fails (a duplicate key, a reference without its row) stops backfill
 * with the server's message; the record stays for the next run.
 *
 * A table is not deferred, and keeps its indexes, when it has rows, is partitioned,
 * has a replica-identity, clustered or non-default-tablespace index, or when the
 * lock or a DROP is refused (a view depending on the key, not the owner): the copy
 * then goes through staging as usual, and the reason is logged.
 *
 * Connections are borrowed, idle and outside a transaction.  Identifiers in the
 * stored DDL come from pg_get_indexdef / pg_get_constraintdef under
 * search_path = pg_catalog, so they are schema-qualified.
 */
#ifndef WALBRIDGE_DEFERIDX_H
#define WALBRIDGE_DEFERIDX_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "common/config.h"

/*
 * With defer_new, defers the indexes of target table t when it is empty.  *deferred
 * is true when the table is now to be loaded without its indexes: deferred here, or
 * by an earlier run whose records are still pending (a resumed load, *resumed too;
 * checked with or without defer_new).  Returns false only on a failure that should
 * stop backfill (state table unreadable); a refusal is logged and returns true,
 * *deferred false.
 */
bool deferidx_begin(PGconn *target, const char *state_schema, const table_config *t, bool defer_new,
                    bool *deferred, bool *resumed);

/*
 * Rebuilds every pending index and constraint, of any table (what an earlier run left
 * for tables this one does not copy).  False (logged, with the object and the
 * server's message) when one fails; the ones not run stay pending.
 */
bool deferidx_rebuild(PGconn *target, const char *state_schema);

/*
 * Adds back every pending foreign key whose two tables have their indexes and
 * constraints back (NOT VALID, then VALIDATE CONSTRAINT).  Callers running several
 * connections at once serialize these calls (adding one locks both its tables, and
 * two at once could deadlock).  False (logged) when one fails.
 */
bool deferidx_rebuild_foreign_keys(PGconn *target, const char *state_schema);

/*
 * One unit of rebuild work, for connections working side by side (backfill's lanes):
 * claims (FOR UPDATE SKIP LOCKED) one record that can run now -- an index or
 * constraint of a ready table (ready: a regclass[] literal of the target tables whose
 * copy is finished), or a foreign key whose two tables have nothing else pending --
 * and runs it in that transaction.  A foreign key takes two claims: added NOT VALID
 * (one connection at a time, under an advisory lock), then validated, which other
 * connections' validations and index builds run beside.  *did: a step ran; *more:
 * records remain that the ready tables' work will reach (claimed by others, waiting
 * for them, or a step that hit a deadlock or lock timeout): call again later.  False
 * (logged) when a definition fails.
 */
bool deferidx_rebuild_step(PGconn *target, const char *state_schema, const char *ready, bool *did,
                           bool *more);

#endif
