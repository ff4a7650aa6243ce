/*
 * bfstate.h — backfill's rows in the target state schema (created by
 * state_ensure, common/state.h): one backfill_run row per run and one
 * backfill_checkpoint row per (slot, table).
 *
 * A checkpoint's last_key is the last source key (in source form) up to
 * which the table is fully handled; it is written in the same target
 * transaction as the rows it covers, so a run killed at any point resumes
 * exactly there.  Composite keys are stored as one COPY text line (fields
 * tab-separated and escaped), a keyless table's "key" is the row hash.
 */
#ifndef WALBRIDGE_BFSTATE_H
#define WALBRIDGE_BFSTATE_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "common/lsn.h"

typedef struct bf_checkpoint {
    bool found;
    bool done;
    char *last_key; /* NULL when the table has not got past its first batch; caller frees */
    int64_t rows_copied;
} bf_checkpoint;

/* Reads the checkpoint of one table.  cp->last_key is malloc'd (free it). */
bool bfstate_checkpoint_get(PGconn *target, const char *schema, const char *slot, const char *table,
                            bf_checkpoint *cp);
/* Upserts the checkpoint (call inside the batch's transaction).  last_key may be NULL. */
bool bfstate_checkpoint_set(PGconn *target, const char *schema, const char *slot, const char *table,
                            const char *last_key, int64_t rows_copied, bool done);

/* Inserts a backfill_run row (status 'running'); *run_id receives its id. */
bool bfstate_run_start(PGconn *target, const char *schema, const char *slot, wb_lsn consistent,
                       int64_t *run_id);
/* Sets finished_at = now() and the final status ("done", "failed"). */
bool bfstate_run_finish(PGconn *target, const char *schema, int64_t run_id, const char *status);

#endif
