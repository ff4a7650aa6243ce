/*
 * bfstate.c — backfill_run and backfill_checkpoint rows (see bfstate.h).
 * Every value is a text parameter; only the schema is written into the SQL,
 * quoted.
 */
#include "backfill/bfstate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pgconn.h"
#include "common/strbuf.h"

static void append_table(strbuf *sql, const char *schema, const char *table)
{
    pgconn_append_qualified(sql, schema, table);
}

bool bfstate_checkpoint_get(PGconn *target, const char *schema, const char *slot, const char *table,
                            bf_checkpoint *cp)
{
    memset(cp, 0, sizeof *cp);
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT last_key, rows_copied, done FROM ");
    append_table(&sql, schema, "backfill_checkpoint");
    strbuf_append(&sql, " WHERE slot = $1 AND table_name = $2");
    const char *params[2] = {slot, table};
    PGresult *res = pgconn_query(target, "backfill: reading checkpoint", sql.data, 2, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    if (PQntuples(res) == 1) {
        cp->found = true;
        if (!PQgetisnull(res, 0, 0))
            cp->last_key = wb_xstrdup(PQgetvalue(res, 0, 0));
        cp->rows_copied = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        cp->done = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    }
    PQclear(res);
    return true;
}

bool bfstate_checkpoint_set(PGconn *target, const char *schema, const char *slot, const char *table,
                            const char *last_key, int64_t rows_copied, bool done)
{
    char rows[32];
    snprintf(rows, sizeof rows, "%" PRId64, rows_copied);
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "INSERT INTO ");
    append_table(&sql, schema, "backfill_checkpoint");
    strbuf_append(&sql, " AS c (slot, table_name, last_key, rows_copied, done, updated_at)"
                        " VALUES ($1, $2, $3, $4::bigint, $5::boolean, now())"
                        " ON CONFLICT (slot, table_name) DO UPDATE SET last_key = $3,"
                        " rows_copied = $4::bigint, done = $5::boolean, updated_at = now()");
    const char *params[5] = {slot, table, last_key, rows, done ? "true" : "false"};
    PGresult *res = pgconn_query(target, "backfill: writing checkpoint", sql.data, 5, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    PQclear(res);
    return true;
}

bool bfstate_run_start(PGconn *target, const char *schema, const char *slot, wb_lsn consistent,
                       int64_t *run_id)
{
    char lsn[LSN_TEXT_MAX];
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "INSERT INTO ");
    append_table(&sql, schema, "backfill_run");
    strbuf_append(&sql, " (slot, consistent_lsn) VALUES ($1, $2::pg_lsn) RETURNING run_id");
    const char *params[2] = {slot, consistent != LSN_INVALID ? lsn_format(consistent, lsn) : NULL};
    PGresult *res = pgconn_query(target, "backfill: recording the run", sql.data, 2, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *run_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

bool bfstate_run_finish(PGconn *target, const char *schema, int64_t run_id, const char *status)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "UPDATE ");
    append_table(&sql, schema, "backfill_run");
    strbuf_append(&sql, " SET finished_at = now(), status = $2 WHERE run_id = $1::bigint");
    const char *params[2] = {id, status};
    PGresult *res = pgconn_query(target, "backfill: finishing the run", sql.data, 2, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    PQclear(res);
    return true;
}
