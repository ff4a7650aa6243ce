/*
 * state.c — walbridge's own tables in the target's state schema: creation,
 * migration and the stream's applied LSN.
 *
 * Migrations are an ordered list of DDL scripts; schema_version holds the
 * number of scripts applied.  state_ensure takes a transaction-scoped
 * advisory lock keyed on the schema name, so two walbridge processes starting
 * at once do not both create or migrate; every script is idempotent anyway
 * (IF NOT EXISTS).  The schema is created only when it is missing, so a role
 * without CREATE on the database can still use a schema an administrator
 * prepared (deploy/ grants).
 *
 * SQL text holds only quoted identifiers (the schema, through
 * pgconn_append_ident); every value travels as a text parameter.
 */
#include "common/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

/*
 * Each migration is one script; "@S@" stands for the quoted schema name.
 * Append new migrations at the end; never edit an applied one.
 */
static const char *const state_migrations[] = {
    /* 1: initial tables */
    "CREATE TABLE IF NOT EXISTS @S@.stream_progress ("
    " slot text PRIMARY KEY,"
    " applied_lsn pg_lsn NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now(),"
    " source_commit_time timestamptz,"
    " updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS @S@.backfill_run ("
    " run_id bigserial PRIMARY KEY,"
    " slot text NOT NULL,"
    " consistent_lsn pg_lsn,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " finished_at timestamptz,"
    " status text NOT NULL DEFAULT 'running');"
    "CREATE TABLE IF NOT EXISTS @S@.backfill_checkpoint ("
    " slot text NOT NULL,"
    " table_name text NOT NULL,"
    " last_key text,"
    " rows_copied bigint NOT NULL DEFAULT 0,"
    " done boolean NOT NULL DEFAULT false,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (slot, table_name));"
    "CREATE TABLE IF NOT EXISTS @S@.conflicts ("
    " id bigserial PRIMARY KEY,"
    " at timestamptz NOT NULL DEFAULT now(),"
    " slot text NOT NULL,"
    " lsn pg_lsn,"
    " table_name text NOT NULL,"
    " kind text NOT NULL,"
    " key text);",
    /* 2: index and constraint definitions dropped by backfill --defer-indexes */
    "CREATE TABLE IF NOT EXISTS @S@.deferred_ddl ("
    " id bigserial PRIMARY KEY,"
    " table_name text NOT NULL,"
    " ord int NOT NULL,"
    " kind text NOT NULL,"
    " object_name text NOT NULL,"
    " on_table text NOT NULL,"
    " ref_table text,"
    " ddl text NOT NULL,"
    " index_ddl text,"
    " attach_ddl text,"
    " saved_at timestamptz NOT NULL DEFAULT now());",
    /* 3: the COMMENT statements of the deferred objects, run once they are built again */
    "ALTER TABLE @S@.deferred_ddl ADD COLUMN IF NOT EXISTS comment_ddl text;",
    /* 4: references backfill wrote NULL because the parent's UUIDv5 is held by a moved
     * row and the parent row (a reused key) was not in the target yet */
    "CREATE TABLE IF NOT EXISTS @S@.pending_refs ("
    " slot text NOT NULL,"
    " table_name text NOT NULL,"
    " row_key text NOT NULL,"
    " ref_column text NOT NULL,"
    " parent_key text NOT NULL,"
    " recorded_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (slot, table_name, row_key, ref_column));",
};

#define STATE_VERSION ((int)(sizeof state_migrations / sizeof state_migrations[0]))

/* Appends template with every "@S@" replaced by the quoted schema. */
static void append_with_schema(strbuf *sql, const char *template, const char *schema)
{
    const char *p = template;
    const char *hit;
    while ((hit = strstr(p, "@S@")) != NULL) {
        strbuf_append_len(sql, p, (size_t)(hit - p));
        pgconn_append_ident(sql, schema);
        p = hit + 3;
    }
    strbuf_append(sql, p);
}

static bool exec_with_schema(PGconn *conn, const char *what, const char *template,
                             const char *schema)
{
    strbuf sql;
    strbuf_init(&sql);
    append_with_schema(&sql, template, schema);
    bool ok = pgconn_exec(conn, what, sql.data);
    strbuf_free(&sql);
    return ok;
}

/* Sets *exists from pg_namespace. */
static bool schema_exists(PGconn *conn, const char *schema, bool *exists)
{
    const char *params[1] = {schema};
    PGresult *res =
        pgconn_query(conn, "state: looking up schema",
                     "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1, params, NULL);
    if (res == NULL)
        return false;
    *exists = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

/* Reads the applied migration count (0 for a fresh schema_version table). */
static bool read_version(PGconn *conn, const char *schema, int *version)
{
    strbuf sql;
    strbuf_init(&sql);
    append_with_schema(&sql, "SELECT coalesce(max(version), 0) FROM @S@.schema_version", schema);
    PGresult *res = pgconn_query(conn, "state: reading schema_version", sql.data, 0, NULL, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return true;
}

/* The body of state_ensure, run inside a transaction holding the advisory lock. */
static bool ensure_locked(PGconn *conn, const char *schema)
{
    bool exists = false;
    if (!schema_exists(conn, schema, &exists))
        return false;
    if (!exists) {
        log_info("state: creating schema \"%s\" in the target", schema);
        if (!exec_with_schema(conn, "state: creating schema", "CREATE SCHEMA IF NOT EXISTS @S@",
                              schema))
            return false;
    }
    if (!exec_with_schema(conn, "state: creating schema_version",
                          "CREATE TABLE IF NOT EXISTS @S@.schema_version (version int NOT NULL)",
                          schema))
        return false;
    int version = 0;
    if (!read_version(conn, schema, &version))
        return false;
    if (version > STATE_VERSION) {
        log_full(LOG_ERROR, NULL, "Upgrade walbridge, or use another state_schema.",
                 "state: schema \"%s\" is at version %d, newer than this walbridge (%d)", schema,
                 version, STATE_VERSION);
        return false;
    }
    for (int v = version; v < STATE_VERSION; v++) {
        log_info("state: migrating schema \"%s\" to version %d", schema, v + 1);
        if (!exec_with_schema(conn, "state: migration", state_migrations[v], schema))
            return false;
    }
    if (version == STATE_VERSION)
        return true;
    char vtext[16];
    snprintf(vtext, sizeof vtext, "%d", STATE_VERSION);
    const char *params[1] = {vtext};
    strbuf sql;
    strbuf_init(&sql);
    append_with_schema(&sql, "DELETE FROM @S@.schema_version", schema);
    bool ok = pgconn_exec(conn, "state: recording schema version", sql.data);
    if (ok) {
        strbuf_reset(&sql);
        append_with_schema(&sql, "INSERT INTO @S@.schema_version (version) VALUES ($1::int)",
                           schema);
        PGresult *res =
            pgconn_query(conn, "state: recording schema version", sql.data, 1, params, NULL);
        ok = res != NULL;
        PQclear(res);
    }
    strbuf_free(&sql);
    return ok;
}

bool state_ensure(PGconn *target, const char *schema)
{
    /* Inside the caller's transaction we neither begin nor commit. */
    bool own_txn = PQtransactionStatus(target) == PQTRANS_IDLE;
    if (own_txn && !pgconn_exec(target, "state: begin", "BEGIN"))
        return false;
    strbuf key;
    strbuf_init(&key);
    strbuf_appendf(&key, "walbridge.state:%s", schema);
    const char *params[1] = {key.data};
    PGresult *res =
        pgconn_query(target, "state: taking the migration lock",
                     "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))",
                     1, params, NULL);
    strbuf_free(&key);
    bool ok = res != NULL;
    PQclear(res);
    ok = ok && ensure_locked(target, schema);
    if (own_txn) {
        if (ok)
            ok = pgconn_exec(target, "state: commit", "COMMIT");
        else
            PQclear(PQexec(target, "ROLLBACK"));
    }
    if (!ok)
        log_error("state: could not create or migrate state schema \"%s\" in the target", schema);
    return ok;
}

bool state_table_exists(PGconn *target, const char *schema, const char *table, bool *exists)
{
    strbuf rel;
    strbuf_init(&rel);
    pgconn_append_qualified(&rel, schema, table);
    const char *params[1] = {rel.data};
    char what[128];
    snprintf(what, sizeof what, "state: looking up %s", table);
    PGresult *res = pgconn_query(target, what, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1,
                                 params, NULL);
    strbuf_free(&rel);
    bool ok = res != NULL;
    *exists = ok && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return ok;
}

bool state_get_applied_lsn(PGconn *target, const char *schema, const char *slot, wb_lsn *lsn,
                           bool *found, double *age_s)
{
    *found = false;
    *lsn = LSN_INVALID;
    if (age_s != NULL)
        *age_s = -1;

    /* A target where walbridge never ran has no table: that is "not found". */
    bool table_exists = false;
    if (!state_table_exists(target, schema, "stream_progress", &table_exists))
        return false;
    if (!table_exists)
        return true;

    strbuf sql;
    strbuf_init(&sql);
    append_with_schema(&sql,
                       "SELECT applied_lsn::text,"
                       " extract(epoch FROM (now() - applied_at))::float8"
                       " FROM @S@.stream_progress WHERE slot = $1",
                       schema);
    const char *params[1] = {slot};
    PGresult *res = pgconn_query(target, "state: reading applied LSN", sql.data, 1, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    bool ok = true;
    if (PQntuples(res) > 0) {
        if (!lsn_parse(PQgetvalue(res, 0, 0), lsn)) {
            log_error("state: slot \"%s\": stored applied LSN \"%s\" is not an LSN", slot,
                      PQgetvalue(res, 0, 0));
            ok = false;
        } else {
            *found = true;
            if (age_s != NULL && !PQgetisnull(res, 0, 1))
                *age_s = strtod(PQgetvalue(res, 0, 1), NULL);
        }
    }
    PQclear(res);
    return ok;
}

bool state_set_applied_lsn(PGconn *target, const char *schema, const char *slot, wb_lsn lsn,
                           const char *source_commit_time)
{
    char lsn_text[LSN_TEXT_MAX];
    lsn_format(lsn, lsn_text);
    strbuf sql;
    strbuf_init(&sql);
    append_with_schema(
        &sql,
        "INSERT INTO @S@.stream_progress AS p"
        " (slot, applied_lsn, applied_at, source_commit_time, updated_at)"
        " VALUES ($1, $2::pg_lsn, now(), $3::timestamptz, now())"
        " ON CONFLICT (slot) DO UPDATE SET"
        " applied_lsn = GREATEST(p.applied_lsn, EXCLUDED.applied_lsn),"
        " applied_at = now(),"
        " source_commit_time = coalesce(EXCLUDED.source_commit_time, p.source_commit_time),"
        " updated_at = now()",
        schema);
    const char *params[3] = {slot, lsn_text, source_commit_time};
    char what[160];
    snprintf(what, sizeof what, "state: recording applied LSN %s for slot \"%s\"", lsn_text, slot);
    PGresult *res = pgconn_query(target, what, sql.data, 3, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    PQclear(res);
    return true;
}

bool state_deferred_pending(PGconn *target, const char *schema, long *count, strbuf *tables)
{
    strbuf sql;
    strbuf_init(&sql);
    append_with_schema(&sql,
                       "SELECT count(*), coalesce(string_agg(DISTINCT table_name, ', '), '') "
                       "FROM @S@.deferred_ddl",
                       schema);
    PGresult *res = pgconn_query(target, "state: reading deferred_ddl", sql.data, 0, NULL, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *count = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    strbuf_reset(tables);
    strbuf_append(tables, PQgetvalue(res, 0, 1));
    PQclear(res);
    return true;
}

bool state_try_stream_lock(PGconn *target, const char *slot, bool *got)
{
    const char *params[1] = {slot};
    PGresult *res = pgconn_query(target, "taking the stream lock",
                                 "SELECT pg_try_advisory_lock(hashtext('walbridge stream'), "
                                 "hashtext($1))",
                                 1, params, NULL);
    if (res == NULL)
        return false;
    *got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

bool state_stream_unlock(PGconn *target, const char *slot)
{
    const char *params[1] = {slot};
    PGresult *res = pgconn_query(target, "releasing the stream lock",
                                 "SELECT pg_advisory_unlock(hashtext('walbridge stream'), "
                                 "hashtext($1))",
                                 1, params, NULL);
    PQclear(res);
    return res != NULL;
}
