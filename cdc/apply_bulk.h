/*
 * apply_bulk.h — the stream applier's bulk path for long runs of inserts
 * into one table inside a source transaction (private to cdc/apply*.c).
 *
 * The row path (apply_pipeline.c) sends inserts as pipelined 64-row upserts.
 * When more than APPLY_BULK_THRESHOLD consecutive inserts of one keyed table
 * arrive, the following rows are streamed instead as COPY text into a
 * session TEMP staging table (source-form values plus UUIDv5 columns computed
 * in C, like backfill's staging), and the run is applied with ONE set-based
 * statement:
 *
 *   WITH ins (wb_inserted, wb_k0.., wb_tk) AS (
 *       INSERT INTO T (tk, lk, cols) SELECT
 *           s.wb_id  (guarded tables: apply_sql_key_uuid(s.wb_id), the first
 *                     UUID of its chain no row holds and no key change took),
 *           s.c0, COALESCE(p3.tk, s.r3), ...  (a parent table with a key change:
 *                     COALESCE(p3.tk, apply_sql_key_uuid(s.r3)))
 *       FROM pg_temp.wb_bulk_<i> s LEFT JOIN parent p3 ON p3.lk = s.c3 ...
 *       ON CONFLICT (lk) DO UPDATE SET c = EXCLUDED.c ...
 *       RETURNING (xmax = 0), lk [, tk when guarded]),
 *   bad AS (the staged rows whose upsert hit an existing key, or whose UUIDv5 was
 *           taken: kind, key text, LSN),
 *   rec AS (INSERT INTO <state>.conflicts ... FROM bad)
 *   SELECT kind, key, lsn FROM bad
 *
 * so a run has exactly the row path's effect: existing rows keep their UUID,
 * references resolve to the live parent (inserted earlier in the transaction or
 * not), else UUIDv5 (or its chain), as the row path's new values (apply_sql.h); NULL stays NULL;
 * skipped and generated columns are never written; conflicts are counted, logged
 * and recorded the same way.  A run ends (and is applied) when another table or any
 * non-insert message arrives (COMMIT included), when a key repeats within the run
 * (ON CONFLICT cannot touch a row twice), or every APPLY_BULK_RUN_ROWS rows.  COPY
 * data goes to the server as it comes: the client holds only the current line and a
 * set of key hashes.
 *
 * Direct runs (apply_bulk.c): an insert run into a table with no reference
 * column and no recorded key change is COPYed into the table itself behind a
 * savepoint, falling back to the staging table and the upsert above when a key
 * is already there, or for good when the server refuses COPY into the table.
 *
 * libpq cannot COPY in pipeline mode: a run leaves pipeline mode (reading
 * every outstanding result) and re-enters it after the run, inside the same
 * target transaction, so savepoints and salvage keep working.
 */
#ifndef WALBRIDGE_APPLY_BULK_H
#define WALBRIDGE_APPLY_BULK_H

#include <stdbool.h>
#include "cdc/w2j.h"
#include "common/catalog.h"
#include "common/config.h"
#include "common/strbuf.h"

#define APPLY_BULK_THRESHOLD 512  /* consecutive inserts on the row path before a run */
#define APPLY_BULK_RUN_ROWS 16384 /* rows per staged statement */

struct applier;
typedef struct apply_bulk apply_bulk; /* opaque: the state of the current run */

/* ---- pure SQL (tests/unit/test_apply_bulk.c) ---- */

/* True when the table can take the bulk path (keyed; no key column is a reference). */
bool apply_bulk_table_ok(const wb_config *cfg, const table_plan *t);
/* "SET jit = off; CREATE TEMP TABLE IF NOT EXISTS pg_temp.wb_bulk_<i> (...); TRUNCATE ..." */
void apply_bulk_sql_stage(const wb_config *cfg, const table_plan *t, strbuf *out);
/*
 * "SAVEPOINT wb_bulk; COPY T (travelling columns by target name[, target key]) FROM STDIN":
 * a direct run (apply_bulk.c), fed the staging lines without their last two fields.
 */
void apply_bulk_sql_direct(const table_plan *t, strbuf *out);
/* "COPY pg_temp.wb_bulk_<i> (...) FROM STDIN" */
void apply_bulk_sql_copy(const table_plan *t, strbuf *out);
/*
 * The set-based upsert above; $1 is the slot, $2 the table's source name.
 * Unless guarded (UPSERT_GUARDED in apply_sql.h: the table had a key change), the target key is
 * plainly s.wb_id and no uuid_taken check is made.  With updates (a run of full-row updates that
 * keep their key: the row path's upsert too), the conflicts are the rows inserted: update_missing.
 * moved (per wb_config table, or NULL): parents with a key change, whose references fall back to
 * apply_sql_key_uuid.
 */
void apply_bulk_sql_apply(const wb_config *cfg, const table_plan *t, bool guarded, bool updates,
                          const bool *moved, strbuf *out);
/*
 * "PGCONN_JOINS_BY_INDEX; UPDATE T t SET <non-key columns> = x.<...> FROM (SELECT <the
 * upsert's values> FROM staging LEFT JOIN <parents>) x (columns) WHERE t.<key> = x.<key>;
 * PGCONN_JOINS_RESET" (common/pgconn.h): a run of
 * full-row updates tried as updates of rows the target holds, each found through the
 * key's index (a merge join would walk the index from its start); when it matches fewer
 * rows than the run holds, the applier runs apply_bulk_sql_apply(updates) as well, which
 * inserts and records the missing ones.
 */
void apply_bulk_sql_update(const wb_config *cfg, const table_plan *t, const bool *moved,
                           strbuf *out);
/*
 * "SAVEPOINT wb_bulk; INSERT INTO T (...) SELECT ... FROM staging; RELEASE
 * SAVEPOINT wb_bulk": an insert run tried as new rows first (no conflict
 * bookkeeping); on a unique violation the applier rolls back to the
 * savepoint and runs apply_bulk_sql_apply instead.
 */
void apply_bulk_sql_plain(const wb_config *cfg, const table_plan *t, const bool *moved,
                          strbuf *out);
/*
 * Appends one COPY text line (with its newline) for a row: values[i] is the
 * value of catalog column i (NULL when absent or SQL NULL), key the row's key
 * text for conflict records, lsn_text the row's LSN.
 */
void apply_bulk_copy_line(const wb_config *cfg, const table_plan *t, const w2j_value *const *values,
                          const char *key, const char *lsn_text, strbuf *out);

/* ---- the applier's hooks (cdc/apply.c) ---- */

apply_bulk *apply_bulk_new(void);
void apply_bulk_free(apply_bulk *b);
/*
 * Offers the current insert, or full-row update that keeps its key (an upsert on
 * the row path too; not for guarded tables), to the bulk path (a->new_vals and
 * a->old_vals mapped).  *taken says whether it was staged; when not, any open run
 * has been applied first and the caller sends the row on the row path.  guarded:
 * the row path would use APPLY_STMT_UPSERT_GUARDED for this table.
 */
bool apply_bulk_offer(struct applier *a, int table, const w2j_change *c, bool guarded, bool *taken,
                      bool *retryable);
/* Applies the open run, if any, and forgets the insert count (any non-insert message). */
bool apply_bulk_finish(struct applier *a, bool *retryable);
/* Drops an open run after a failure (ends COPY with an error); never fails. */
void apply_bulk_abort(struct applier *a);

#endif
