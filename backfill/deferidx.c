/*
 * deferidx.c — backfill --defer-indexes: save and drop an empty table's indexes,
 * constraints and foreign keys, and build them again after the copy (see
 * deferidx.h).
 *
 * Every statement names the state table through pgconn_append_qualified; the
 * target table travels as a text parameter ($1, cast to regclass); the stored DDL
 * is what the server itself printed for the objects (pg_get_indexdef,
 * pg_get_constraintdef) and the DROP statements are built server-side with
 * format('%I').
 */
#include "backfill/deferidx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"
#include "backfill/tablesql.h"

/* '"schema"."name"' of the table, as regclass input. */
static void table_text(const table_config *t, strbuf *out)
{
    pgconn_append_qualified(out, t->target_schema, t->target_name);
}

/* "<state_schema>.deferred_ddl" appended to sql. */
static void append_state_table(strbuf *sql, const char *state_schema)
{
    pgconn_append_qualified(sql, state_schema, "deferred_ddl");
}

/*
 * The table's objects to defer: ord 1 foreign keys from or to it, 2 its index-backed
 * constraints, 3 its other indexes.  Columns: table_name, ord, kind, object_name,
 * on_table, ref_table, ddl, index_ddl, attach_ddl, comment_ddl (the object's COMMENT
 * statements, NULL when it has none), drop_ddl.  $1 is the table.
 */
static const char deferidx_objects_sql[] =
    "SELECT format('%I.%I', tn.nspname, t.relname) AS table_name, d.* FROM pg_class t "
    "JOIN pg_namespace tn ON tn.oid = t.relnamespace, LATERAL ("
    " SELECT 1 AS ord, 'foreign key' AS kind, c.conname::text AS object_name,"
    "  format('%I.%I', n.nspname, r.relname) AS on_table,"
    "  format('%I.%I', fn.nspname, f.relname) AS ref_table,"
    "  format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', n.nspname, r.relname, c.conname,"
    "         pg_get_constraintdef(c.oid)) AS ddl,"
    "  NULL::text AS index_ddl, NULL::text AS attach_ddl,"
    "  (SELECT format('COMMENT ON CONSTRAINT %I ON %I.%I IS %L', c.conname, n.nspname,"
    "   r.relname, ds.description) FROM pg_description ds WHERE ds.objoid = c.oid"
    "   AND ds.classoid = 'pg_constraint'::regclass) AS comment_ddl,"
    "  format('ALTER TABLE %I.%I DROP CONSTRAINT %I', n.nspname, r.relname, c.conname)"
    "   AS drop_ddl"
    " FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid"
    " JOIN pg_namespace n ON n.oid = r.relnamespace"
    " JOIN pg_class f ON f.oid = c.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace"
    " WHERE c.contype = 'f' AND (c.conrelid = t.oid OR c.confrelid = t.oid)"
    " UNION ALL"
    " SELECT 2, 'constraint', c.conname::text, format('%I.%I', tn.nspname, t.relname), NULL,"
    "  format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', tn.nspname, t.relname, c.conname,"
    "         pg_get_constraintdef(c.oid)),"
    "  CASE WHEN c.contype IN ('p', 'u') THEN pg_get_indexdef(c.conindid) END,"
    "  CASE WHEN c.contype IN ('p', 'u') THEN format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s"
    " USING INDEX %I%s%s', tn.nspname, t.relname, c.conname, CASE c.contype WHEN 'p' THEN"
    " 'PRIMARY KEY' ELSE 'UNIQUE' END, c.conname, CASE WHEN c.condeferrable THEN ' DEFERRABLE'"
    " ELSE '' END, CASE WHEN c.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END) END,"
    "  nullif(concat_ws('; ', (SELECT format('COMMENT ON CONSTRAINT %I ON %I.%I IS %L',"
    "   c.conname, tn.nspname, t.relname, ds.description) FROM pg_description ds"
    "   WHERE ds.objoid = c.oid AND ds.classoid = 'pg_constraint'::regclass),"
    "  (SELECT format('COMMENT ON INDEX %I.%I IS %L', tn.nspname, ic.relname, ds.description)"
    "   FROM pg_description ds JOIN pg_class ic ON ic.oid = ds.objoid WHERE ds.objoid ="
    "   c.conindid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0)), ''),"
    "  format('ALTER TABLE %I.%I DROP CONSTRAINT %I', tn.nspname, t.relname, c.conname)"
    " FROM pg_constraint c WHERE c.conrelid = t.oid AND c.contype IN ('p', 'u', 'x')"
    " UNION ALL"
    " SELECT 3, 'index', ic.relname::text, format('%I.%I', tn.nspname, t.relname), NULL,"
    "  pg_get_indexdef(i.indexrelid), NULL, NULL,"
    "  (SELECT format('COMMENT ON INDEX %I.%I IS %L', tn.nspname, ic.relname, ds.description)"
    "   FROM pg_description ds WHERE ds.objoid = i.indexrelid"
    "   AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0),"
    "  format('DROP INDEX %I.%I', tn.nspname, ic.relname)"
    " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    " WHERE i.indrelid = t.oid AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
    "  WHERE c.conindid = i.indexrelid AND c.conrelid = t.oid AND c.contype IN ('p', 'u', 'x'))"
    ") d WHERE t.oid = $1::regclass ORDER BY d.ord, d.object_name";

/* Why the table's indexes cannot be deferred, as text ("" when they can). $1: the table. */
static const char deferidx_refusal_sql[] =
    "SELECT CASE WHEN t.relkind = 'p' THEN 'it is partitioned'"
    " WHEN t.relforcerowsecurity AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles"
    "  WHERE rolname = current_user) THEN 'row level security is forced on it (rows may be hidden)'"
    " WHEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indisreplident)"
    "  THEN 'its replica identity is an index'"
    " WHEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indisclustered)"
    "  THEN 'it is clustered on an index'"
    " WHEN EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    "  WHERE i.indrelid = t.oid AND ic.reltablespace <> 0)"
    "  THEN 'an index has its own tablespace'"
    " ELSE '' END FROM pg_class t WHERE t.oid = $1::regclass";

/* "{"<t>"}": target table t as a one-element regclass[] literal. */
static void one_table_array(const table_config *t, strbuf *out)
{
    strbuf name, element;
    strbuf_init(&name);
    strbuf_init(&element);
    table_text(t, &name);
    tablesql_array_append(&element, name.data, name.len);
    strbuf_appendf(out, "{%s}", element.data);
    strbuf_free(&name);
    strbuf_free(&element);
}

/* "(SELECT format('%I.%I') of the regclass[] in $1)": the tables' names as stored. */
static void append_ready_names(strbuf *sql)
{
    strbuf_append(sql, "(SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
                       "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.oid = ANY ($1::regclass[]))");
}

/* *n: records pending for target table t (any kind). */
static bool pending_for(PGconn *conn, const char *state_schema, const table_config *t, long *n)
{
    strbuf sql, one;
    strbuf_init(&sql);
    strbuf_init(&one);
    one_table_array(t, &one);
    strbuf_append(&sql, "SELECT count(*) FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " WHERE table_name IN ");
    append_ready_names(&sql);
    const char *params[1] = {one.data};
    PGresult *res = pgconn_query(conn, t->source, sql.data, 1, params, NULL);
    strbuf_free(&one);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

/*
 * Runs sql (one parameter; or, sql_is_script, several statements and no parameter) in
 * the open transaction; the result, or NULL with why in err (the server's message and
 * detail) and, when state is not NULL, its SQLSTATE.
 */
static PGresult *try_run(PGconn *conn, const char *sql, bool sql_is_script, const char *param,
                         strbuf *err, char state[6])
{
    const char *params[1] = {param};
    PGresult *res = sql_is_script ? PQexec(conn, sql)
                                  : PQexecParams(conn, sql, param != NULL ? 1 : 0, NULL,
                                                 param != NULL ? params : NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    strbuf_reset(err);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    strbuf_append(err, primary != NULL ? primary : PQerrorMessage(conn));
    if (detail != NULL) /* "Key (legacy_id)=(5) is duplicated.": the rows to fix */
        strbuf_appendf(err, ": %s", detail);
    if (state != NULL)
        snprintf(state, 6, "%s", code != NULL ? code : "");
    PQclear(res);
    return NULL;
}

static PGresult *try_query_state(PGconn *conn, const char *sql, const char *param, strbuf *err,
                                 char state[6])
{
    return try_run(conn, sql, false, param, err, state);
}

static PGresult *try_query(PGconn *conn, const char *sql, const char *param, strbuf *err)
{
    return try_query_state(conn, sql, param, err, NULL);
}

/* try_query for a statement whose result is not needed. */
static bool try_exec(PGconn *conn, const char *sql, strbuf *err)
{
    PGresult *res = try_query(conn, sql, NULL, err);
    PQclear(res);
    return res != NULL;
}

/*
 * Inside BEGIN: lock, check, save, drop; *nsaved definitions saved.  False with the
 * reason in why when the table keeps its indexes (the caller rolls back).
 */
static bool save_and_drop(PGconn *conn, const char *state_schema, const char *table, size_t *nsaved,
                          strbuf *why)
{
    strbuf sql;
    strbuf_init(&sql);
    bool ok = false;
    PGresult *res;
    strbuf_append(&sql, "LOCK TABLE ");
    strbuf_append(&sql, table);
    strbuf_append(&sql, " IN ACCESS EXCLUSIVE MODE");
    if (!try_exec(conn, "SET LOCAL lock_timeout = '30s'", why) ||
        !try_exec(conn, "SET LOCAL search_path = pg_catalog", why) ||
        !try_exec(conn, sql.data, why))
        goto done;
    strbuf_reset(&sql);
    strbuf_append(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    strbuf_append(&sql, table);
    strbuf_append(&sql, ")");
    if ((res = try_query(conn, sql.data, NULL, why)) == NULL)
        goto done;
    bool has_rows = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (has_rows) {
        strbuf_append(why, "it holds rows");
        goto done;
    }
    if ((res = try_query(conn, deferidx_refusal_sql, table, why)) == NULL)
        goto done;
    strbuf_append(why, PQgetvalue(res, 0, 0));
    PQclear(res);
    if (why->len > 0)
        goto done;
    /* Save the definitions and read the DROPs in one statement. */
    strbuf_reset(&sql);
    strbuf_appendf(&sql, "WITH d AS (%s), saved AS (INSERT INTO ", deferidx_objects_sql);
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " (table_name, ord, kind, object_name, on_table, ref_table, ddl, "
                        "index_ddl, attach_ddl, comment_ddl) SELECT table_name, ord, kind, "
                        "object_name, on_table, ref_table, ddl, index_ddl, attach_ddl, "
                        "comment_ddl FROM d) "
                        "SELECT drop_ddl FROM d ORDER BY ord, object_name");
    if ((res = try_query(conn, sql.data, table, why)) == NULL)
        goto done;
    *nsaved = (size_t)PQntuples(res);
    ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++)
        ok = try_exec(conn, PQgetvalue(res, i, 0), why);
    PQclear(res);
done:
    strbuf_free(&sql);
    return ok;
}

bool deferidx_begin(PGconn *target, const char *state_schema, const table_config *t, bool defer_new,
                    bool *deferred, bool *resumed)
{
    *deferred = *resumed = false;
    strbuf table, why;
    strbuf_init(&table);
    strbuf_init(&why);
    table_text(t, &table);
    long pending = 0;
    bool ok = pending_for(target, state_schema, t, &pending);
    if (ok && pending > 0) {
        log_info("%s: its indexes are still deferred by an earlier run (%ld definitions in "
                 "%s.deferred_ddl): loading on without them",
                 t->source, pending, state_schema);
        *deferred = *resumed = true;
    } else if (ok && defer_new) {
        size_t nsaved = 0;
        ok = pgconn_exec(target, t->source, "BEGIN");
        bool done = ok && save_and_drop(target, state_schema, table.data, &nsaved, &why);
        if (done) {
            ok = pgconn_exec(target, t->source, "COMMIT");
            *deferred = ok;
            if (ok && nsaved > 0)
                log_info("%s: %zu indexes, constraints and foreign keys of %s saved in "
                         "%s.deferred_ddl and dropped; they are built again after the copy",
                         t->source, nsaved, table.data, state_schema);
            else if (ok)
                log_info("%s: %s is empty and has no index, constraint or foreign key to "
                         "defer: its rows go straight in with COPY",
                         t->source, table.data);
        } else if (ok) {
            pgconn_exec(target, "ROLLBACK", "ROLLBACK");
            log_info("%s: indexes of %s kept (not deferred): %s", t->source, table.data, why.data);
        }
    }
    strbuf_free(&table);
    strbuf_free(&why);
    return ok;
}

/* Logs a failed rebuild step of a record (the server's message as detail). */
static void log_rebuild_failure(const char *state_schema, const char *kind, const char *name,
                                const char *on_table, const char *err)
{
    log_full(LOG_ERROR, err,
             "Fix the target rows the message names, then run `walbridge backfill "
             "--resume`: it builds what the state table still holds.",
             "%s: building %s \"%s\" again failed; its definition stays in %s.deferred_ddl",
             on_table, kind, name, state_schema);
}

/* One claimed record (columns of claim_sql, in order). */
typedef struct deferred_rec {
    const char *id, *kind, *name, *on_table, *ddl, *index_ddl, *attach_ddl;
    const char *comment_ddl; /* run with the last step, NULL: none */
    char state; /* 'n' object missing, 'i' its index only (constraint), 'u' foreign key
                 * not validated, 'v' there (validated) */
} deferred_rec;

/* Where the record's object stands now (rec->state). */
static bool read_state(PGconn *conn, deferred_rec *rec)
{
    const char *params[3] = {rec->on_table, rec->name, rec->kind};
    PGresult *res = pgconn_query(
        conn, rec->on_table,
        "SELECT CASE WHEN $3 = 'index' THEN (SELECT 'v' FROM pg_catalog.pg_index i"
        "  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
        "  WHERE i.indrelid = $1::regclass AND ic.relname = $2)"
        " ELSE coalesce((SELECT CASE WHEN c.convalidated THEN 'v' ELSE 'u' END"
        "  FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::regclass AND c.conname = $2),"
        "  (SELECT 'i' FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic"
        "   ON ic.oid = i.indexrelid WHERE $3 = 'constraint' AND i.indrelid = $1::regclass"
        "   AND ic.relname = $2)) END",
        3, params, NULL);
    if (res == NULL)
        return false;
    rec->state = PQgetisnull(res, 0, 0) ? 'n' : PQgetvalue(res, 0, 0)[0];
    PQclear(res);
    return true;
}

static bool ends_not_valid(const char *ddl)
{
    static const char not_valid[] = " NOT VALID";
    size_t len = strlen(ddl);
    return len >= sizeof not_valid - 1 &&
           strcmp(ddl + len - (sizeof not_valid - 1), not_valid) == 0;
}

/*
 * The next statement for the record, from its state; *keep: the record stays (a step
 * of two).  A primary key or unique constraint is built as its unique index first
 * (which takes a lock other index builds on the table share), then attached with
 * ADD CONSTRAINT ... USING INDEX; a foreign key is added NOT VALID (a moment's lock
 * on both tables, one connection at a time under an advisory lock), then validated
 * (a scan that other tables' work runs beside).  A run killed between two steps finds
 * the object half-way and goes on from there.  Empty: nothing to run.
 */
static void next_step(const deferred_rec *rec, strbuf *sql, bool *keep, bool *serialize)
{
    bool fk = strcmp(rec->kind, "foreign key") == 0;
    *keep = *serialize = false;
    if (rec->state == 'v')
        return;
    if (fk && rec->state == 'u' && !ends_not_valid(rec->ddl)) {
        strbuf_appendf(sql, "ALTER TABLE %s VALIDATE CONSTRAINT ", rec->on_table);
        pgconn_append_ident(sql, rec->name);
    } else if (fk && rec->state == 'n' && !ends_not_valid(rec->ddl)) {
        strbuf_appendf(sql, "%s NOT VALID", rec->ddl);
        *keep = *serialize = true;
    } else if (rec->state == 'i' && rec->attach_ddl != NULL) {
        strbuf_append(sql, rec->attach_ddl);
    } else if (rec->state == 'n' && rec->index_ddl != NULL) {
        strbuf_append(sql, rec->index_ddl);
        *keep = true;
    } else if (rec->state == 'n' || rec->state == 'i') {
        strbuf_append(sql, rec->ddl);
    }
}

/*
 * Runs the claimed record's next step inside the claim transaction and commits it
 * (or rolls back).  *retry: a deadlock or lock timeout, nothing done: try later.
 */
static bool record_step(PGconn *conn, const char *state_schema, deferred_rec *rec, bool *retry)
{
    *retry = false;
    if (!read_state(conn, rec))
        return pgconn_exec(conn, "ROLLBACK", "ROLLBACK"), false;
    strbuf sql, err;
    strbuf_init(&sql);
    strbuf_init(&err);
    bool keep = false, serialize = false, ok = true;
    next_step(rec, &sql, &keep, &serialize);
    if (serialize)
        ok = pgconn_exec(conn, rec->on_table,
                         "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext("
                         "'walbridge deferred foreign keys'))");
    char state[6] = "";
    if (ok && sql.len > 0) {
        PGresult *res = try_query_state(conn, sql.data, NULL, &err, state);
        ok = res != NULL;
        PQclear(res);
        *retry = !ok && (strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0);
        if (!ok && !*retry)
            log_rebuild_failure(state_schema, rec->kind, rec->name, rec->on_table, err.data);
    }
    if (ok && !keep && rec->comment_ddl != NULL && rec->state != 'v') {
        PGresult *res = try_run(conn, rec->comment_ddl, true, NULL, &err, NULL);
        ok = res != NULL;
        PQclear(res);
        if (!ok)
            log_rebuild_failure(state_schema, rec->kind, rec->name, rec->on_table, err.data);
    }
    if (ok && !keep) {
        strbuf_reset(&sql);
        strbuf_append(&sql, "DELETE FROM ");
        append_state_table(&sql, state_schema);
        strbuf_append(&sql, " WHERE id = $1::bigint");
        const char *params[1] = {rec->id};
        PGresult *res = pgconn_query(conn, rec->on_table, sql.data, 1, params, NULL);
        ok = res != NULL;
        PQclear(res);
    }
    ok = ok ? pgconn_exec(conn, rec->on_table, "COMMIT")
            : (pgconn_exec(conn, "ROLLBACK", "ROLLBACK"), false);
    if (ok)
        log_debug("%s: %s \"%s\" %s", rec->on_table, rec->kind, rec->name,
                  keep ? "half built" : "built again");
    strbuf_free(&sql);
    strbuf_free(&err);
    return ok || *retry;
}

/*
 * Claims one record: with $2 an index or constraint (of a table in the regclass[] $1,
 * every table when $1 is NULL), with $3 a foreign key whose two tables have nothing
 * else pending; foreign keys not added yet first, so validations start together.
 */
static void append_claim(strbuf *sql, const char *state_schema)
{
    strbuf_append(sql, "SELECT f.id, f.kind, f.object_name, f.on_table, f.ddl, f.index_ddl, "
                       "f.attach_ddl, f.comment_ddl FROM ");
    append_state_table(sql, state_schema);
    strbuf_append(sql, " f WHERE ($2::boolean AND f.kind <> 'foreign key' AND ($1::text IS NULL OR "
                       "f.table_name IN ");
    append_ready_names(sql);
    strbuf_append(sql,
                  ")) OR ($3::boolean AND f.kind = 'foreign key' AND NOT EXISTS (SELECT 1 FROM ");
    append_state_table(sql, state_schema);
    strbuf_append(sql, " d WHERE d.kind <> 'foreign key' AND d.table_name IN (f.on_table, "
                       "f.ref_table))) ORDER BY f.kind = 'foreign key', EXISTS (SELECT 1 FROM "
                       "pg_catalog.pg_constraint c WHERE c.conrelid = f.on_table::regclass AND "
                       "c.conname = f.object_name), f.ord, f.id LIMIT 1 FOR UPDATE OF f SKIP "
                       "LOCKED");
}

/*
 * Claims and runs one step: *did a step ran; *retry: a claimed step hit a deadlock or
 * lock timeout and was rolled back (try again later).
 */
static bool claim_step(PGconn *conn, const char *state_schema, const char *ready, bool own,
                       bool fks, bool *did, bool *retry)
{
    *did = *retry = false;
    strbuf sql;
    strbuf_init(&sql);
    append_claim(&sql, state_schema);
    const char *params[3] = {ready, own ? "t" : "f", fks ? "t" : "f"};
    bool ok = pgconn_exec(conn, "backfill: BEGIN", "BEGIN");
    PGresult *res =
        ok ? pgconn_query(conn, "claiming deferred_ddl", sql.data, 3, params, NULL) : NULL;
    strbuf_free(&sql);
    if (ok && res == NULL)
        return pgconn_exec(conn, "ROLLBACK", "ROLLBACK"), false;
    if (ok && PQntuples(res) == 0) {
        PQclear(res);
        return pgconn_exec(conn, "backfill: COMMIT", "COMMIT");
    }
    if (ok) {
        deferred_rec rec = {.id = PQgetvalue(res, 0, 0),
                            .kind = PQgetvalue(res, 0, 1),
                            .name = PQgetvalue(res, 0, 2),
                            .on_table = PQgetvalue(res, 0, 3),
                            .ddl = PQgetvalue(res, 0, 4),
                            .index_ddl = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 5),
                            .attach_ddl = PQgetisnull(res, 0, 6) ? NULL : PQgetvalue(res, 0, 6),
                            .comment_ddl = PQgetisnull(res, 0, 7) ? NULL : PQgetvalue(res, 0, 7)};
        ok = record_step(conn, state_schema, &rec, retry);
        *did = ok && !*retry;
    }
    PQclear(res);
    return ok;
}

/* Steps until nothing is claimable (a deadlock or lock timeout is tried again). */
static bool run_all(PGconn *conn, const char *state_schema, const char *ready, bool own, bool fks,
                    size_t *n)
{
    for (;;) {
        bool did = false, retry = false;
        if (!claim_step(conn, state_schema, ready, own, fks, &did, &retry))
            return false;
        if (retry) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
            nanosleep(&pause, NULL);
        } else if (!did) {
            return true;
        }
        *n += did ? 1 : 0;
    }
}

bool deferidx_rebuild(PGconn *target, const char *state_schema)
{
    size_t n = 0;
    bool ok = run_all(target, state_schema, NULL, true, false, &n);
    if (ok && n > 0)
        log_info("backfill: %zu deferred index and constraint steps run", n);
    return ok;
}

bool deferidx_rebuild_foreign_keys(PGconn *target, const char *state_schema)
{
    size_t n = 0;
    bool ok = run_all(target, state_schema, NULL, false, true, &n);
    if (ok && n > 0)
        log_info("backfill: %zu deferred foreign key steps run (added, then validated)", n);
    return ok;
}

/* *more: records remain that ready tables' work will reach (claimed by others, or waiting). */
static bool more_pending(PGconn *conn, const char *state_schema, const char *ready, bool *more)
{
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " f WHERE (f.kind <> 'foreign key' AND f.table_name IN ");
    append_ready_names(&sql);
    strbuf_append(&sql, ") OR (f.kind = 'foreign key' AND NOT EXISTS (SELECT 1 FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " d WHERE d.kind <> 'foreign key' AND d.table_name IN (f.on_table, "
                        "f.ref_table) AND d.table_name NOT IN ");
    append_ready_names(&sql);
    strbuf_append(&sql, ")))");
    const char *params[1] = {ready};
    PGresult *res = pgconn_query(conn, "reading deferred_ddl", sql.data, 1, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *more = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

bool deferidx_rebuild_step(PGconn *target, const char *state_schema, const char *ready, bool *did,
                           bool *more)
{
    bool retry = false;
    *more = false;
    if (!claim_step(target, state_schema, ready, true, true, did, &retry))
        return false;
    if (retry || *did) {
        *more = retry;
        return true;
    }
    return more_pending(target, state_schema, ready, more);
}
