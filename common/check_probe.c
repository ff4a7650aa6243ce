/*
 * check_probe.c — what `walbridge check` asks each database, apart from the
 * table catalogs (catalog.c).  Nothing here writes anything that outlives
 * the run.
 *
 * Source: server version, wal_level, the role's REPLICATION or superuser
 * attribute, free replication slots and WAL senders, output_plugin_libraries
 * (newer minors load only the listed plugins), the configured slot (plugin,
 * database, active, wal_status), SELECT on the mapped tables, and whether
 * wal2json actually loads: a TEMPORARY logical slot is created on a
 * replication connection and vanishes when that connection closes.  Its
 * creation waits for running transactions, so it is bounded by
 * CHECK_SLOT_TIMEOUT_S and cancelled after.
 *
 * Target: the state schema exists or can be created, SET
 * session_replication_role = replica is allowed (tried in a transaction that
 * is rolled back), INSERT/UPDATE/DELETE/SELECT (and TRUNCATE when truncates
 * are applied) on every mapped table, and row level security in the way.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/check_report.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"
#include "common/strbuf.h"

#define CHECK_SLOT_TIMEOUT_S 10

/* ---- helpers ----------------------------------------------------------- */

static bool value_true(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

/* Appends a text[] literal holding the quoted qualified names of the mapped tables. */
static void append_table_array(strbuf *out, const wb_config *cfg, bool source)
{
    strbuf name;
    strbuf_init(&name);
    strbuf_append_char(out, '{');
    for (size_t i = 0; i < cfg->ntables; i++) {
        const table_config *t = &cfg->tables[i];
        strbuf_reset(&name);
        pgconn_append_qualified(&name, source ? t->source_schema : t->target_schema,
                                source ? t->source_name : t->target_name);
        strbuf_append(out, i > 0 ? ",\"" : "\"");
        for (const char *c = name.data; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\')
                strbuf_append_char(out, '\\');
            strbuf_append_char(out, *c);
        }
        strbuf_append_char(out, '"');
    }
    strbuf_append_char(out, '}');
    strbuf_free(&name);
}

/* True when the comma-separated list names wal2json. */
static bool list_has_wal2json(const char *list)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ',' || *p == '"')
            p++;
        size_t n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '"'))
            n--;
        if (n == 7 && strncmp(p, "wal2json", 7) == 0)
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* ---- source ------------------------------------------------------------ */

typedef struct source_facts {
    bool logical;
    bool can_replicate;
    bool slot_exists;
    bool slot_room;
    bool sender_room;
} source_facts;

static const char *const source_settings_sql =
    "SELECT current_setting('server_version'), current_setting('wal_level'), current_user,"
    " r.rolsuper, r.rolreplication, current_database(),"
    " current_setting('max_replication_slots')::int,"
    " (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,"
    " current_setting('max_wal_senders')::int,"
    " (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender')::int,"
    " (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'output_plugin_libraries'),"
    " current_setting('max_slot_wal_keep_size')"
    " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

static bool probe_source_settings(check_report *r, PGconn *conn, source_facts *f)
{
    PGresult *res =
        pgconn_query(conn, "source: reading settings", source_settings_sql, 0, NULL, NULL);
    if (res == NULL)
        return false;
    const char *wal_level = PQgetvalue(res, 0, 1);
    const char *role = PQgetvalue(res, 0, 2);
    bool super = value_true(res, 0, 3), repl = value_true(res, 0, 4);
    int max_slots = atoi(PQgetvalue(res, 0, 6)), used_slots = atoi(PQgetvalue(res, 0, 7));
    int max_senders = atoi(PQgetvalue(res, 0, 8)), used_senders = atoi(PQgetvalue(res, 0, 9));
    f->logical = strcmp(wal_level, "logical") == 0;
    f->can_replicate = super || repl;
    f->slot_room = used_slots < max_slots;
    f->sender_room = used_senders < max_senders;

    check_report_fact(r, true, "server_version", "%s", PQgetvalue(res, 0, 0));
    check_report_fact(r, true, "database", "%s", PQgetvalue(res, 0, 5));
    check_report_fact(r, true, "wal_level", "%s", wal_level);
    check_report_fact(r, true, "role", "%s (%s)", role,
                      super  ? "superuser"
                      : repl ? "REPLICATION"
                             : "no REPLICATION");
    check_report_fact(r, true, "replication_slots", "%d of %d used", used_slots, max_slots);
    check_report_fact(r, true, "wal_senders", "%d of %d used", used_senders, max_senders);
    const char *keep = PQgetvalue(res, 0, 11);
    check_report_fact(r, true, "max_slot_wal_keep_size", "%s",
                      strcmp(keep, "-1") == 0
                          ? "unlimited (a stalled consumer retains WAL without bound)"
                          : keep);
    if (!f->logical)
        check_report_finding(r, CATALOG_ERROR, "source",
                             "ALTER SYSTEM SET wal_level = logical; then restart the source "
                             "server.",
                             "source: wal_level is \"%s\"; logical decoding needs "
                             "wal_level=logical",
                             wal_level);
    if (!f->can_replicate) {
        strbuf hint;
        strbuf_init(&hint);
        strbuf_append(&hint, "ALTER ROLE ");
        pgconn_append_ident(&hint, role);
        strbuf_append(&hint, " WITH REPLICATION;");
        check_report_finding(r, CATALOG_ERROR, "source", hint.data,
                             "source: role \"%s\" has neither REPLICATION nor superuser; it "
                             "cannot use a replication slot",
                             role);
        strbuf_free(&hint);
    }
    if (max_senders == 0)
        check_report_finding(r, CATALOG_ERROR, "source",
                             "ALTER SYSTEM SET max_wal_senders = 10; then restart.",
                             "source: max_wal_senders is 0: no replication connection possible");
    if (!PQgetisnull(res, 0, 10)) {
        const char *libs = PQgetvalue(res, 0, 10);
        check_report_fact(r, true, "output_plugin_libraries", "%s", libs);
        if (!list_has_wal2json(libs))
            check_report_finding(r, CATALOG_ERROR, "source",
                                 "Add wal2json to output_plugin_libraries on the source (on "
                                 "Supabase: ask support or use the dashboard) and reload.",
                                 "source: output_plugin_libraries (\"%s\") does not list "
                                 "wal2json, so this server will not load it",
                                 libs);
    }
    PQclear(res);
    return true;
}

static bool probe_slot(check_report *r, PGconn *conn, const wb_config *cfg, source_facts *f)
{
    const char *params[1] = {cfg->slot};
    PGresult *res = pgconn_query(conn, "source: reading the replication slot",
                                 "SELECT plugin, slot_type, database = current_database(),"
                                 " active, coalesce(wal_status, ''),"
                                 " coalesce(confirmed_flush_lsn::text, ''), database"
                                 " FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                                 1, params, NULL);
    if (res == NULL)
        return false;
    f->slot_exists = PQntuples(res) > 0;
    if (!f->slot_exists) {
        check_report_fact(r, true, "slot", "\"%s\" does not exist yet (backfill creates it)",
                          cfg->slot);
        if (!f->slot_room)
            check_report_finding(r, CATALOG_ERROR, "source",
                                 "Raise max_replication_slots (restart needed) or drop an "
                                 "unused slot (SELECT * FROM pg_replication_slots).",
                                 "source: all replication slots are in use; backfill cannot "
                                 "create slot \"%s\"",
                                 cfg->slot);
        PQclear(res);
        return true;
    }
    const char *plugin = PQgetvalue(res, 0, 0);
    const char *wal_status = PQgetvalue(res, 0, 4);
    check_report_fact(r, true, "slot", "\"%s\" exists: plugin %s, %s, wal_status %s, confirmed %s",
                      cfg->slot, PQgetisnull(res, 0, 0) ? "(none)" : plugin,
                      value_true(res, 0, 3) ? "active" : "inactive",
                      wal_status[0] != '\0' ? wal_status : "unknown", PQgetvalue(res, 0, 5));
    if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 || strcmp(plugin, "wal2json") != 0)
        check_report_finding(r, CATALOG_ERROR, "source",
                             "Use another \"slot\" name, or drop this slot if nothing uses it.",
                             "source: slot \"%s\" exists but is not a wal2json logical slot "
                             "(type %s, plugin %s)",
                             cfg->slot, PQgetvalue(res, 0, 1), plugin);
    else if (!value_true(res, 0, 2))
        check_report_finding(r, CATALOG_ERROR, "source",
                             "Use another \"slot\" name for this database.",
                             "source: slot \"%s\" belongs to database \"%s\", not this one",
                             cfg->slot, PQgetvalue(res, 0, 6));
    if (strcmp(wal_status, "lost") == 0)
        check_report_finding(r, CATALOG_ERROR, "source",
                             "Drop the slot (SELECT pg_drop_replication_slot(...)) and run "
                             "walbridge backfill again: changes since it was lost are gone.",
                             "source: slot \"%s\" is lost: the WAL it needed was removed",
                             cfg->slot);
    else if (strcmp(wal_status, "unreserved") == 0)
        check_report_finding(
            r, CATALOG_WARNING, "source", "Start (or catch up) walbridge stream now.",
            "source: slot \"%s\" is about to lose WAL (wal_status unreserved)", cfg->slot);
    if (value_true(res, 0, 3))
        check_report_finding(r, CATALOG_WARNING, "source", NULL,
                             "source: slot \"%s\" is active: a consumer (walbridge stream?) is "
                             "connected to it",
                             cfg->slot);
    PQclear(res);
    return true;
}

/* Waits for the pending query on conn until deadline; false on timeout. */
static bool wait_result(PGconn *conn, time_t deadline)
{
    while (PQisBusy(conn)) {
        time_t now = time(NULL);
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&pfd, 1, 1000) < 0 || !PQconsumeInput(conn))
            return true; /* the error surfaces in PQgetResult */
    }
    return true;
}

/* Creates (and, by disconnecting, drops) a temporary wal2json slot. */
typedef enum slot_probe { SLOT_PROBE_LOADED, SLOT_PROBE_FAILED, SLOT_PROBE_TIMEOUT } slot_probe;

/*
 * Creates a TEMPORARY wal2json slot on the replication connection repl (it
 * vanishes when repl is closed), waiting at most CHECK_SLOT_TIMEOUT_S and
 * cancelling after.  On SLOT_PROBE_FAILED *why receives the server's reason
 * (one line, redacted; caller frees).
 */
static slot_probe create_test_slot(PGconn *repl, char **why)
{
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "CREATE_REPLICATION_SLOT ");
    char name[64];
    snprintf(name, sizeof name, "walbridge_check_%ld", (long)getpid());
    pgconn_append_ident(&sql, name);
    strbuf_append(&sql, " TEMPORARY LOGICAL wal2json");
    bool sent = PQsendQuery(repl, sql.data) == 1;
    strbuf_free(&sql);
    if (sent && !wait_result(repl, time(NULL) + CHECK_SLOT_TIMEOUT_S)) {
        PGcancel *cancel = PQgetCancel(repl);
        char cerr[256];
        if (cancel != NULL) {
            PQcancel(cancel, cerr, sizeof cerr);
            PQfreeCancel(cancel);
        }
        return SLOT_PROBE_TIMEOUT;
    }
    *why = sent ? NULL : log_redact_text(PQerrorMessage(repl));
    PGresult *res;
    while (sent && (res = PQgetResult(repl)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && *why == NULL)
            *why = log_redact_text(PQresultErrorMessage(res));
        PQclear(res);
    }
    if (*why == NULL)
        return SLOT_PROBE_LOADED;
    (*why)[strcspn(*why, "\n")] = '\0';
    return SLOT_PROBE_FAILED;
}

/*
 * Slot creation timed out: it waits for every transaction that holds an xid
 * to finish.  Names the oldest one (as far as this role may see it).
 */
static void report_slot_wait(check_report *r, PGconn *source)
{
    PGresult *res =
        pgconn_query(source, "source: looking for the transaction slot creation waits for",
                     "SELECT pid, coalesce(state, '?'), coalesce(usename, '?'),"
                     " coalesce(extract(epoch FROM now() - xact_start)::bigint, 0)"
                     " FROM pg_catalog.pg_stat_activity"
                     " WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()"
                     " AND backend_type = 'client backend' ORDER BY xact_start LIMIT 1",
                     0, NULL, NULL);
    strbuf blocker, hint;
    strbuf_init(&blocker);
    strbuf_init(&hint);
    if (res != NULL && PQntuples(res) > 0) {
        strbuf_appendf(&blocker, "; the oldest is pid %s (%s, user %s, open for %s s)",
                       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                       PQgetvalue(res, 0, 3));
        strbuf_appendf(&hint,
                       "Let it finish, or end it (SELECT pg_terminate_backend(%s);): backfill's "
                       "slot creation would wait for it too.",
                       PQgetvalue(res, 0, 0));
    } else {
        strbuf_append(&hint, "Look for long transactions: SELECT pid, xact_start, state, query "
                             "FROM pg_stat_activity WHERE backend_xid IS NOT NULL;");
    }
    PQclear(res);
    check_report_finding(r, CATALOG_WARNING, "source", hint.data,
                         "source: could not verify wal2json within %d s: creating a test slot "
                         "waits for running transactions to finish%s",
                         CHECK_SLOT_TIMEOUT_S, blocker.data);
    strbuf_free(&blocker);
    strbuf_free(&hint);
}

static void probe_wal2json(check_report *r, PGconn *source, const wb_config *cfg,
                           const source_facts *f)
{
    if (!f->logical || !f->can_replicate || !f->sender_room || (!f->slot_room && !f->slot_exists)) {
        check_report_fact(r, true, "wal2json", "not verified (see the problems above)");
        return;
    }
    if (!f->slot_room) {
        check_report_fact(r, true, "wal2json", "not verified: no free slot for a test slot");
        return;
    }
    char err[512];
    PGconn *repl = pgconn_open(cfg->source_dsn, PGCONN_REPLICATION, "source", 1, err, sizeof err);
    if (repl == NULL) {
        check_report_finding(r, CATALOG_ERROR, "source",
                             "pg_hba.conf must allow this role a replication=database "
                             "connection; max_wal_senders must have room.",
                             "source: replication connection refused: %s", err);
        return;
    }
    char *why = NULL;
    switch (create_test_slot(repl, &why)) {
    case SLOT_PROBE_LOADED:
        check_report_fact(r, true, "wal2json", "loads (temporary test slot created)");
        break;
    case SLOT_PROBE_TIMEOUT:
        check_report_fact(r, true, "wal2json", "not verified: slot creation timed out");
        report_slot_wait(r, source);
        break;
    case SLOT_PROBE_FAILED:
        check_report_fact(r, true, "wal2json", "does NOT load");
        check_report_finding(r, CATALOG_ERROR, "source",
                             "Install wal2json on the source server (Debian: "
                             "postgresql-15-wal2json) and, where output_plugin_libraries "
                             "exists, list it there.",
                             "source: the wal2json output plugin cannot be loaded: %s", why);
        break;
    }
    free(why);
    PQfinish(repl); /* drops the temporary slot */
}

static bool probe_source_tables(check_report *r, PGconn *conn, const wb_config *cfg)
{
    strbuf names;
    strbuf_init(&names);
    append_table_array(&names, cfg, true);
    const char *params[1] = {names.data};
    PGresult *res = pgconn_query(conn, "source: reading table privileges",
                                 "SELECT q.ord::int, pg_catalog.has_table_privilege(c, 'SELECT'),"
                                 " current_user"
                                 " FROM unnest($1::text[]) WITH ORDINALITY AS q(name, ord),"
                                 " LATERAL pg_catalog.to_regclass(q.name) AS c"
                                 " WHERE c IS NOT NULL ORDER BY 1",
                                 1, params, NULL);
    strbuf_free(&names);
    if (res == NULL)
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        const table_config *t = &cfg->tables[atoi(PQgetvalue(res, i, 0)) - 1];
        if (!value_true(res, i, 1)) {
            strbuf hint;
            strbuf_init(&hint);
            strbuf_appendf(&hint, "GRANT SELECT ON %s TO ", t->source);
            pgconn_append_ident(&hint, PQgetvalue(res, i, 2));
            strbuf_append_char(&hint, ';');
            check_report_finding(r, CATALOG_ERROR, t->source, hint.data,
                                 "%s: source role \"%s\" may not SELECT from %s", t->source,
                                 PQgetvalue(res, i, 2), t->source);
            strbuf_free(&hint);
        }
    }
    PQclear(res);
    return true;
}

bool check_probe_source(check_report *r, PGconn *conn, const wb_config *cfg)
{
    source_facts f = {0};
    if (!probe_source_settings(r, conn, &f) || !probe_slot(r, conn, cfg, &f) ||
        !probe_source_tables(r, conn, cfg))
        return false;
    probe_wal2json(r, conn, cfg, &f);
    return true;
}

/* ---- target ------------------------------------------------------------ */

static const char *const target_settings_sql =
    "SELECT current_setting('server_version'), current_user, r.rolsuper, r.rolbypassrls,"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1),"
    " pg_catalog.has_database_privilege(current_database(), 'CREATE'),"
    " CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)"
    "  THEN pg_catalog.has_schema_privilege($1, 'CREATE')"
    "   AND pg_catalog.has_schema_privilege($1, 'USAGE') END,"
    " current_database()"
    " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/* The state schema: present and usable, or creatable. */
static bool probe_state_schema(check_report *r, PGconn *conn, const wb_config *cfg,
                               const PGresult *res)
{
    const char *schema = cfg->state_schema;
    bool exists = value_true(res, 0, 4);
    if (!exists) {
        if (value_true(res, 0, 5)) {
            check_report_fact(r, false, "state_schema", "\"%s\" will be created on first use",
                              schema);
        } else {
            check_report_fact(r, false, "state_schema", "\"%s\" missing", schema);
            check_report_finding(r, CATALOG_ERROR, "target",
                                 "As an administrator: CREATE SCHEMA <state_schema> "
                                 "AUTHORIZATION <walbridge role>; (see deploy/).",
                                 "target: state schema \"%s\" does not exist and role \"%s\" "
                                 "may not create it (no CREATE on the database)",
                                 schema, PQgetvalue(res, 0, 1));
        }
        return true;
    }
    if (!value_true(res, 0, 6)) {
        check_report_fact(r, false, "state_schema", "\"%s\" exists, not usable", schema);
        check_report_finding(r, CATALOG_ERROR, "target",
                             "GRANT USAGE, CREATE ON SCHEMA <state_schema> TO <walbridge role>;",
                             "target: role \"%s\" lacks USAGE or CREATE on state schema \"%s\"",
                             PQgetvalue(res, 0, 1), schema);
        return true;
    }
    wb_lsn lsn = LSN_INVALID;
    bool found = false;
    double age = -1;
    if (!state_get_applied_lsn(conn, schema, cfg->slot, &lsn, &found, &age))
        return false;
    char text[LSN_TEXT_MAX];
    if (found)
        check_report_fact(r, false, "state_schema", "\"%s\" exists; applied LSN %s (%.0f s ago)",
                          schema, lsn_format(lsn, text), age);
    else
        check_report_fact(r, false, "state_schema", "\"%s\" exists; no applied LSN for slot %s",
                          schema, cfg->slot);
    return true;
}

/* SET session_replication_role = replica, inside a transaction rolled back at once. */
static void probe_replication_role(check_report *r, PGconn *conn)
{
    PGresult *res = PQexec(conn, "BEGIN");
    PQclear(res);
    res = PQexec(conn, "SET session_replication_role = replica");
    bool allowed = PQresultStatus(res) == PGRES_COMMAND_OK;
    char *why = allowed ? NULL
                        : log_redact_text(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                                              ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                                              : "failed");
    PQclear(res);
    PQclear(PQexec(conn, "ROLLBACK"));
    check_report_fact(r, false, "session_replication_role", "%s",
                      allowed ? "replica allowed (triggers and FK checks skipped)"
                              : "replica NOT allowed");
    if (!allowed)
        check_report_finding(r, CATALOG_WARNING, "target",
                             "Run walbridge as a role that may SET session_replication_role "
                             "(on Supabase: postgres); otherwise parents must arrive first.",
                             "target: SET session_replication_role = replica is refused (%s): "
                             "triggers and foreign-key checks will run on walbridge's writes",
                             why);
    free(why);
}

static const char *const target_tables_sql =
    "SELECT q.ord::int, pg_catalog.has_table_privilege(c.oid, 'SELECT'),"
    " pg_catalog.has_table_privilege(c.oid, 'INSERT'),"
    " pg_catalog.has_table_privilege(c.oid, 'UPDATE'),"
    " pg_catalog.has_table_privilege(c.oid, 'DELETE'),"
    " pg_catalog.has_table_privilege(c.oid, 'TRUNCATE'),"
    " cl.relrowsecurity AND NOT (cl.relforcerowsecurity = false"
    "   AND pg_catalog.pg_has_role(cl.relowner, 'USAGE')), current_user"
    " FROM unnest($1::text[]) WITH ORDINALITY AS q(name, ord)"
    " CROSS JOIN LATERAL pg_catalog.to_regclass(q.name) AS c(oid)"
    " JOIN pg_catalog.pg_class cl ON cl.oid = c.oid ORDER BY 1";

static bool probe_target_tables(check_report *r, PGconn *conn, const wb_config *cfg,
                                bool bypass_rls)
{
    strbuf names;
    strbuf_init(&names);
    append_table_array(&names, cfg, false);
    const char *params[1] = {names.data};
    PGresult *res =
        pgconn_query(conn, "target: reading table privileges", target_tables_sql, 1, params, NULL);
    strbuf_free(&names);
    if (res == NULL)
        return false;
    static const char *const privs[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"};
    strbuf missing;
    strbuf_init(&missing);
    for (int i = 0; i < PQntuples(res); i++) {
        const table_config *t = &cfg->tables[atoi(PQgetvalue(res, i, 0)) - 1];
        strbuf_reset(&missing);
        for (int p = 0; p < 5; p++) {
            if (p == 4 && !t->truncate_apply)
                continue;
            if (!value_true(res, i, 1 + p))
                strbuf_appendf(&missing, "%s%s", missing.len > 0 ? ", " : "", privs[p]);
        }
        if (missing.len > 0) {
            strbuf hint;
            strbuf_init(&hint);
            strbuf_appendf(&hint, "GRANT %s ON %s TO ", missing.data, t->target);
            pgconn_append_ident(&hint, PQgetvalue(res, i, 7));
            strbuf_append(&hint, "; (see deploy/ for the full grant script)");
            check_report_finding(r, CATALOG_ERROR, t->source, hint.data,
                                 "%s: target role \"%s\" lacks %s on %s", t->source,
                                 PQgetvalue(res, i, 7), missing.data, t->target);
            strbuf_free(&hint);
        }
        if (value_true(res, i, 6) && !bypass_rls)
            check_report_finding(r, CATALOG_WARNING, t->source,
                                 "Use a role with BYPASSRLS (Supabase: postgres) or the table "
                                 "owner, or add policies that allow walbridge's writes.",
                                 "%s: row level security on %s applies to the walbridge role: "
                                 "writes may be refused or rows be invisible",
                                 t->source, t->target);
    }
    strbuf_free(&missing);
    PQclear(res);
    return true;
}

bool check_probe_target(check_report *r, PGconn *conn, const wb_config *cfg)
{
    const char *params[1] = {cfg->state_schema};
    PGresult *res =
        pgconn_query(conn, "target: reading settings", target_settings_sql, 1, params, NULL);
    if (res == NULL)
        return false;
    bool super = value_true(res, 0, 2);
    bool bypass = super || value_true(res, 0, 3);
    check_report_fact(r, false, "server_version", "%s", PQgetvalue(res, 0, 0));
    check_report_fact(r, false, "database", "%s", PQgetvalue(res, 0, 7));
    check_report_fact(r, false, "role", "%s%s", PQgetvalue(res, 0, 1),
                      super    ? " (superuser)"
                      : bypass ? " (BYPASSRLS)"
                               : "");
    bool ok = probe_state_schema(r, conn, cfg, res);
    PQclear(res);
    if (!ok)
        return false;
    probe_replication_role(r, conn);
    return probe_target_tables(r, conn, cfg, bypass);
}
