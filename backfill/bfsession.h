/*
 * bfsession.h — what backfill and verify both set up before diffing: the
 * config and log (cli_setup), the --tables selection, the connections, the
 * catalog (refusing to go on when it reports an error for a selected table,
 * before anything is written) and one table_layout per selected table.
 *
 * Ownership: bf_session_close releases everything bf_session_open set up,
 * also after a failed open.
 */
#ifndef WALBRIDGE_BFSESSION_H
#define WALBRIDGE_BFSESSION_H

/* Per diff read and write session: sorts and hashes stay in memory (each parallel worker
 * may use this). */
#define BF_DIFF_WORK_MEM_MB 64
#define BF_STR_(x) #x
#define BF_STR(x) BF_STR_(x)
#define BF_DIFF_WORK_MEM "SET work_mem = '" BF_STR(BF_DIFF_WORK_MEM_MB) "MB'"

#include <stdbool.h>
#include <libpq-fe.h>

#include "backfill/tablesql.h"
#include "common/catalog.h"
#include "common/config.h"

typedef struct bf_session {
    wb_config cfg;
    bool cfg_loaded;
    PGconn *source;          /* plain source connection (diff reads, snapshot) */
    PGconn *source_fetch;    /* second source connection: rows fetched by key in the same
                                snapshot (NULL unless want_write) */
    PGconn *source_ahead;    /* third one: the next table's diff query, sent while this
                                table's last batches are written (NULL unless want_write) */
    PGconn *target_read;     /* target diff reads */
    PGconn *target_write[2]; /* staging, inserts, checkpoints; two so that one batch's insert
                                runs while the next is staged (NULL unless want_write) */
    catalog cat;
    bool cat_loaded;
    bool *selected;        /* per cfg table: part of this run (--tables) */
    table_layout *layouts; /* per cfg table, valid where selected */
} bf_session;

/*
 * Opens everything.  tables is the --tables value (NULL: all).  Returns
 * EXIT_OK, or the exit code to end with (EXIT_USAGE for config/selection/
 * catalog problems, EXIT_RUNTIME for connection failures), after logging.
 */
int bf_session_open(bf_session *s, const char *config_path, const char *tables, bool want_write);
void bf_session_close(bf_session *s);

/* The planner's row estimate of a source table (for the ETA); -1 when unknown. */
double bf_session_estimate(PGconn *source, const table_config *t);

#endif
