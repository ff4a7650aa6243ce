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

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

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
 * on_table, ref_table, ddl, drop_ddl.  $1 is the table.
 */
static const char deferidx_objects_sql[] =
    "SELECT format('%I.%I', tn.nspname, t.relname) AS table_name, d.* FROM pg_class t "
    "JOIN pg_namespace tn ON tn.oid = t.relnamespace, LATERAL ("
    " SELECT 1 AS ord, 'foreign key' AS kind, c.conname::text AS object_name,"
    "  format('%I.%I', n.nspname, r.relname) AS on_table,"
    "  format('%I.%I', fn.nspname, f.relname) AS ref_table,"
    "  format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', n.nspname, r.relname, c.conname,"
    "         pg_get_constraintdef(c.oid)) AS ddl,"
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
    "  format('ALTER TABLE %I.%I DROP CONSTRAINT %I', tn.nspname, t.relname, c.conname)"
    " FROM pg_constraint c WHERE c.conrelid = t.oid AND c.contype IN ('p', 'u', 'x')"
    " UNION ALL"
    " SELECT 3, 'index', ic.relname::text, format('%I.%I', tn.nspname, t.relname), NULL,"
    "  pg_get_indexdef(i.indexrelid), format('DROP INDEX %I.%I', tn.nspname, ic.relname)"
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

/* *n: records pending for table $1 (any kind). */
static bool pending_for(PGconn *conn, const char *state_schema, const char *table, long *n)
{
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT count(*) FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " WHERE table_name = (SELECT format('%I.%I', n.nspname, c.relname) "
                        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.oid = $1::regclass)");
    const char *params[1] = {table};
    PGresult *res = pgconn_query(conn, table, sql.data, 1, params, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

/* Runs sql (one parameter) in the open transaction; the result or NULL with why in err. */
static PGresult *try_query(PGconn *conn, const char *sql, const char *param, strbuf *err)
{
    const char *params[1] = {param};
    PGresult *res = PQexecParams(conn, sql, param != NULL ? 1 : 0, NULL,
                                 param != NULL ? params : NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    strbuf_reset(err);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    strbuf_append(err, primary != NULL ? primary : PQerrorMessage(conn));
    if (detail != NULL) /* "Key (legacy_id)=(5) is duplicated.": the rows to fix */
        strbuf_appendf(err, ": %s", detail);
    PQclear(res);
    return NULL;
}

/*
 * Inside BEGIN: lock, check, save, drop.  *deferred set when done; false with the
 * reason in why when the table keeps its indexes (the caller rolls back).
 */
static bool save_and_drop(PGconn *conn, const char *state_schema, const char *table, size_t *nsaved,
                          strbuf *why)
{
    strbuf sql;
    strbuf_init(&sql);
    bool ok = false;
    PGresult *res = try_query(conn, "SET LOCAL lock_timeout = '30s'", NULL, why);
    PQclear(res);
    if (res == NULL)
        goto done;
    res = try_query(conn, "SET LOCAL search_path = pg_catalog", NULL, why);
    PQclear(res);
    if (res == NULL)
        goto done;
    strbuf_append(&sql, "LOCK TABLE ");
    strbuf_append(&sql, table);
    strbuf_append(&sql, " IN ACCESS EXCLUSIVE MODE");
    res = try_query(conn, sql.data, NULL, why);
    PQclear(res);
    if (res == NULL)
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
    strbuf_append(&sql, " (table_name, ord, kind, object_name, on_table, ref_table, ddl) "
                        "SELECT table_name, ord, kind, object_name, on_table, ref_table, ddl "
                        "FROM d) SELECT drop_ddl FROM d ORDER BY ord, object_name");
    if ((res = try_query(conn, sql.data, table, why)) == NULL)
        goto done;
    *nsaved = (size_t)PQntuples(res);
    ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        PGresult *r = try_query(conn, PQgetvalue(res, i, 0), NULL, why);
        ok = r != NULL;
        PQclear(r);
    }
    PQclear(res);
done:
    strbuf_free(&sql);
    return ok;
}

bool deferidx_begin(PGconn *target, const char *state_schema, const table_config *t, bool defer_new,
                    bool *deferred)
{
    *deferred = false;
    strbuf table, why;
    strbuf_init(&table);
    strbuf_init(&why);
    table_text(t, &table);
    long pending = 0;
    bool ok = pending_for(target, state_schema, table.data, &pending);
    if (ok && pending > 0) {
        log_info("%s: its indexes are still deferred by an earlier run (%ld definitions in "
                 "%s.deferred_ddl): loading on without them",
                 t->source, pending, state_schema);
        *deferred = true;
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

/* Runs ddl and deletes record id, in one transaction. */
static bool run_and_forget(PGconn *conn, const char *state_schema, const char *id, const char *kind,
                           const char *name, const char *on_table, const char *ddl)
{
    strbuf sql, err;
    strbuf_init(&sql);
    strbuf_init(&err);
    bool ok = pgconn_exec(conn, on_table, "BEGIN");
    PGresult *res = ok ? try_query(conn, ddl, NULL, &err) : NULL;
    if (ok && res == NULL) {
        log_rebuild_failure(state_schema, kind, name, on_table, err.data);
        pgconn_exec(conn, "ROLLBACK", "ROLLBACK");
        ok = false;
    }
    PQclear(res);
    if (ok) {
        strbuf_append(&sql, "DELETE FROM ");
        append_state_table(&sql, state_schema);
        strbuf_append(&sql, " WHERE id = $1::bigint");
        const char *params[1] = {id};
        res = pgconn_query(conn, on_table, sql.data, 1, params, NULL);
        ok = res != NULL;
        PQclear(res);
        ok = ok ? pgconn_exec(conn, on_table, "COMMIT")
                : (pgconn_exec(conn, "ROLLBACK", "ROLLBACK"), false);
    }
    if (ok)
        log_debug("%s: %s \"%s\" built again", on_table, kind, name);
    strbuf_free(&sql);
    strbuf_free(&err);
    return ok;
}

/* *state: 'n' no such constraint on on_table yet, 'v' validated, 'u' not validated. */
static bool constraint_state(PGconn *conn, const char *on_table, const char *name, char *state)
{
    const char *params[2] = {on_table, name};
    PGresult *res = pgconn_query(conn, on_table,
                                 "SELECT convalidated FROM pg_catalog.pg_constraint "
                                 "WHERE conrelid = $1::regclass AND conname = $2",
                                 2, params, NULL);
    if (res == NULL)
        return false;
    *state = PQntuples(res) == 0 ? 'n' : (strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 'v' : 'u');
    PQclear(res);
    return true;
}

/*
 * A foreign key in two steps, as pg_dump's users do by hand: ADD ... NOT VALID
 * (a moment's lock on both tables), then VALIDATE CONSTRAINT, which scans the rows
 * under a lock that lets the other tables' loads and index builds go on.  A run
 * killed between the two finds the constraint there, not validated, and validates
 * it.  A key that was NOT VALID before is added back as it was.
 */
static bool rebuild_foreign_key(PGconn *conn, const char *state_schema, const char *id,
                                const char *name, const char *on_table, const char *ddl)
{
    static const char not_valid[] = " NOT VALID";
    size_t len = strlen(ddl);
    bool was_valid =
        len < sizeof not_valid - 1 || strcmp(ddl + len - (sizeof not_valid - 1), not_valid) != 0;
    char state = 'n';
    if (!constraint_state(conn, on_table, name, &state))
        return false;
    strbuf sql;
    strbuf_init(&sql);
    bool ok = true;
    if (state == 'n' && was_valid) {
        strbuf_append(&sql, ddl);
        strbuf_append(&sql, not_valid);
        strbuf err;
        strbuf_init(&err);
        PGresult *res = try_query(conn, sql.data, NULL, &err);
        if (res == NULL)
            log_rebuild_failure(state_schema, "foreign key", name, on_table, err.data);
        ok = res != NULL;
        PQclear(res);
        strbuf_free(&err);
        state = 'u';
    }
    strbuf_reset(&sql);
    if (state == 'u' && was_valid) {
        strbuf_appendf(&sql, "ALTER TABLE %s VALIDATE CONSTRAINT ", on_table);
        pgconn_append_ident(&sql, name);
    } else if (state == 'n') {
        strbuf_append(&sql, ddl);
    } else {
        strbuf_append(&sql, "SELECT 1"); /* there already, as it was: forget the record */
    }
    ok = ok && run_and_forget(conn, state_schema, id, "foreign key", name, on_table, sql.data);
    strbuf_free(&sql);
    return ok;
}

/* Runs every record the query (columns id, kind, object_name, on_table, ddl) returns. */
static bool rebuild_rows(PGconn *conn, const char *state_schema, const char *sql, const char *param,
                         size_t *n)
{
    const char *params[1] = {param};
    PGresult *res = pgconn_query(conn, "reading deferred_ddl", sql, param != NULL ? 1 : 0,
                                 param != NULL ? params : NULL, NULL);
    if (res == NULL)
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *kind = PQgetvalue(res, i, 1);
        const char *name = PQgetvalue(res, i, 2), *on_table = PQgetvalue(res, i, 3);
        const char *ddl = PQgetvalue(res, i, 4);
        if (strcmp(kind, "foreign key") == 0)
            ok = rebuild_foreign_key(conn, state_schema, id, name, on_table, ddl);
        else
            ok = run_and_forget(conn, state_schema, id, kind, name, on_table, ddl);
        *n += ok ? 1 : 0;
    }
    PQclear(res);
    return ok;
}

bool deferidx_rebuild(PGconn *target, const char *state_schema, const table_config *t)
{
    strbuf sql, table;
    strbuf_init(&sql);
    strbuf_init(&table);
    size_t n = 0;
    strbuf_append(&sql, "SELECT id, kind, object_name, on_table, ddl FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " WHERE kind <> 'foreign key'");
    if (t != NULL) {
        table_text(t, &table);
        strbuf_append(&sql, " AND table_name = (SELECT format('%I.%I', n.nspname, c.relname) "
                            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE c.oid = $1::regclass)");
    }
    strbuf_append(&sql, " ORDER BY ord, id");
    bool ok = rebuild_rows(target, state_schema, sql.data, t != NULL ? table.data : NULL, &n);
    if (ok && n > 0)
        log_info("%s: %zu deferred index(es) and constraint(s) built again",
                 t != NULL ? t->source : "backfill", n);
    strbuf_free(&sql);
    strbuf_free(&table);
    return ok;
}

bool deferidx_rebuild_foreign_keys(PGconn *target, const char *state_schema)
{
    strbuf sql;
    strbuf_init(&sql);
    size_t n = 0;
    strbuf_append(&sql, "SELECT id, kind, object_name, on_table, ddl FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " f WHERE kind = 'foreign key' AND NOT EXISTS (SELECT 1 FROM ");
    append_state_table(&sql, state_schema);
    strbuf_append(&sql, " d WHERE d.kind <> 'foreign key' AND d.table_name IN (f.on_table, "
                        "f.ref_table)) ORDER BY id");
    bool ok = rebuild_rows(target, state_schema, sql.data, NULL, &n);
    if (ok && n > 0)
        log_info("backfill: %zu deferred foreign key(s) added and validated", n);
    strbuf_free(&sql);
    return ok;
}
