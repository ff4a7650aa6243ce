/*
 * state.h — walbridge's own tables in the target (schema `state_schema`).
 *
 * state_ensure creates the schema and tables if missing and migrates older
 * versions (schema_version table).  Tables:
 *   <schema>.schema_version(version int)
 *   <schema>.stream_progress(slot text PK, applied_lsn pg_lsn, applied_at timestamptz,
 *                            source_commit_time timestamptz, updated_at timestamptz)
 *   <schema>.backfill_run(run_id bigserial PK, slot text, consistent_lsn pg_lsn,
 *                         started_at, finished_at, status text)
 *   <schema>.backfill_checkpoint(slot text, table_name text, last_key text,
 *                                rows_copied bigint, done bool, updated_at,
 *                                PK (slot, table_name))
 *   <schema>.conflicts(id bigserial, at timestamptz, slot, lsn pg_lsn, table_name,
 *                      kind text, key text)
 *   <schema>.deferred_ddl(id bigserial, table_name text, ord int, kind text,
 *                         object_name text, on_table text, ref_table text, ddl text,
 *                         index_ddl text, attach_ddl text, saved_at timestamptz):
 *                         what backfill --defer-indexes dropped and has not built
 *                         again yet (backfill/deferidx.h)
 */
#ifndef WALBRIDGE_STATE_H
#define WALBRIDGE_STATE_H

#include <stdbool.h>
#include <time.h>
#include <libpq-fe.h>
#include "common/lsn.h"
#include "common/strbuf.h"

bool state_ensure(PGconn *target, const char *schema);

/*
 * *exists: schema.table is there (to_regclass).  A state table may be missing on a
 * target where walbridge never ran, or one older than the migration that adds it.
 */
bool state_table_exists(PGconn *target, const char *schema, const char *table, bool *exists);

/*
 * Reads the applied LSN for slot.  *found is false when no row exists.
 * *age_s (optional) receives seconds since applied_at (-1 when unknown).
 */
bool state_get_applied_lsn(PGconn *target, const char *schema, const char *slot, wb_lsn *lsn,
                           bool *found, double *age_s);
/*
 * Upserts the applied LSN.  Must run inside the same target transaction as
 * the changes it covers (the caller's BEGIN ... COMMIT).  Never moves it
 * backwards (GREATEST in SQL).
 */
bool state_set_applied_lsn(PGconn *target, const char *schema, const char *slot, wb_lsn lsn,
                           const char *source_commit_time);

/*
 * Definitions backfill --defer-indexes dropped and has not rebuilt yet: *count of
 * them, and the tables they belong to ("a, b") in tables (reset first).  The stream
 * refuses to start while any is pending: its upserts need those indexes.
 */
bool state_deferred_pending(PGconn *target, const char *schema, long *count, strbuf *tables);

/*
 * Tries the session advisory lock a running `walbridge stream` of slot holds on the
 * target (released when the session ends).  *got: this session has it now.
 */
bool state_try_stream_lock(PGconn *target, const char *slot, bool *got);

/* Releases the lock state_try_stream_lock took. */
bool state_stream_unlock(PGconn *target, const char *slot);

#endif
