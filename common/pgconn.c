/*
 * pgconn.c — opening libpq connections the walbridge way, running queries
 * with text parameters, and classifying failures by SQLSTATE.
 *
 * pgconn_open pins the session settings every walbridge connection relies on
 * (ISO dates in UTC, hex bytea, full float precision, no statement timeout)
 * by appending "-c" switches to the libpq "options" keyword, so that the
 * replication connection, COPY and ordinary queries render values alike.
 * The user's DSN may be a URI or key=value text: it is passed as dbname with
 * expand_dbname, and walbridge's own keywords follow it (later keywords win),
 * after merging with whatever the user set for "options", "application_name"
 * and "connect_timeout".
 *
 * A target on port 6543 (Supabase's transaction-mode pooler) is refused
 * before connecting: that pooler hands each transaction to a different
 * server session, which breaks SET, prepared statements and advisory locks.
 *
 * Retry policy: a failed connection attempt is retried with decorrelated
 * jitter when the failure looks transient (refused, timed out, server
 * starting or shutting down); authentication and "does not exist" failures
 * are final.  Every retry is logged with its cause.  Messages never carry a
 * password: DSNs go through log_redact_dsn and server text through
 * log_redact_text.
 */
#include "common/pgconn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/strbuf.h"

#define PGCONN_POOLER_PORT "6543"
#define PGCONN_DEFAULT_CONNECT_TIMEOUT "10"
#define PGCONN_SESSION_OPTIONS                                                                     \
    "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 "          \
    "-c bytea_output=hex -c statement_timeout=0"
#define PGCONN_BACKOFF_BASE_MS 500
#define PGCONN_BACKOFF_CAP_MS 30000

pgerr_class pgconn_classify_sqlstate(const char *sqlstate)
{
    if (sqlstate == NULL || sqlstate[0] == '\0')
        return PGERR_RETRY;
    if (strlen(sqlstate) != 5)
        return PGERR_FATAL;
    if (strcmp(sqlstate, "00000") == 0)
        return PGERR_OK;
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
        return PGERR_RETRY; /* connection exception, insufficient resources */
    static const char *const retryable[] = {
        "57P01", /* admin_shutdown */
        "57P02", /* crash_shutdown */
        "57P03", /* cannot_connect_now */
        "40001", /* serialization_failure */
        "40P01", /* deadlock_detected */
        "55P03", /* lock_not_available */
    };
    for (size_t i = 0; i < sizeof retryable / sizeof retryable[0]; i++) {
        if (strcmp(sqlstate, retryable[i]) == 0)
            return PGERR_RETRY;
    }
    return PGERR_FATAL;
}

pgerr_class pgconn_classify(PGconn *conn, const PGresult *res)
{
    if (res == NULL)
        return PGERR_RETRY;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
    case PGRES_SINGLE_TUPLE:
    case PGRES_EMPTY_QUERY:
        return PGERR_OK;
    default:
        break;
    }
    if (conn != NULL && PQstatus(conn) == CONNECTION_BAD)
        return PGERR_RETRY;
    return pgconn_classify_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

/* Does a comma-separated libpq port list contain the pooler port? */
static bool port_list_has_pooler(const char *ports)
{
    const char *p = ports;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == strlen(PGCONN_POOLER_PORT) && strncmp(p, PGCONN_POOLER_PORT, n) == 0)
            return true;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

bool pgconn_is_transaction_pooler(const char *dsn, char *err, size_t errlen)
{
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn != NULL ? dsn : "", &parse_err);
    if (opts == NULL) {
        PQfreemem(parse_err);
        return false; /* not parseable: pgconn_open reports that */
    }
    const char *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "port") == 0 && o->val != NULL && o->val[0] != '\0')
            port = o->val;
    }
    if (port == NULL)
        port = getenv("PGPORT"); /* libpq's own default when the DSN has none */
    bool pooler = port != NULL && port_list_has_pooler(port);
    PQconninfoFree(opts);
    if (pooler && err != NULL && errlen > 0) {
        snprintf(err, errlen,
                 "port 6543 is Supabase's transaction-mode pooler, which runs each transaction "
                 "in a different server session and breaks SET, prepared statements and advisory "
                 "locks; connect directly on port 5432 or through the session-mode pooler");
    }
    return pooler;
}

/* Value of keyword in a parsed conninfo array; NULL when unset or empty. */
static const char *conninfo_value(const PQconninfoOption *opts, const char *keyword)
{
    for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, keyword) == 0)
            return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
    }
    return NULL;
}

/*
 * Connection failures carry no SQLSTATE.  Authentication, missing database
 * or role, and pg_hba refusals will not heal by waiting; everything else
 * (refused, timeout, starting up, shutting down, too many clients) may.
 */
static bool connect_failure_retryable(const char *message)
{
    static const char *const final_markers[] = {
        "authentication failed", "pg_hba.conf", "does not exist",    "no password supplied",
        "permission denied",     "invalid",     "must be superuser", "must have",
        "unsupported",           "certificate", "SSL error",         "server does not support SSL",
    };
    if (message == NULL)
        return true;
    for (size_t i = 0; i < sizeof final_markers / sizeof final_markers[0]; i++) {
        if (strstr(message, final_markers[i]) != NULL)
            return false;
    }
    return true;
}

/* Copies libpq's multi-line error text into one redacted line. */
static char *one_line_error(PGconn *conn)
{
    const char *raw = conn != NULL ? PQerrorMessage(conn) : "out of memory";
    char *red = log_redact_text(raw != NULL ? raw : "");
    size_t out = 0;
    bool space = true; /* drops leading blanks and collapses runs */
    for (size_t i = 0; red[i] != '\0'; i++) {
        bool blank = red[i] == '\n' || red[i] == '\r' || red[i] == '\t' || red[i] == ' ';
        if (blank && space)
            continue;
        red[out++] = blank ? ' ' : red[i];
        space = blank;
    }
    while (out > 0 && red[out - 1] == ' ')
        out--;
    red[out] = '\0';
    return red;
}

/* Server notices (NOTICE, WARNING) go to the log instead of raw stderr. */
static void notice_to_log(void *arg, const char *message)
{
    const char *what = arg;
    size_t n = strlen(message);
    while (n > 0 && message[n - 1] == '\n')
        n--;
    if (strncmp(message, "WARNING", 7) == 0)
        log_warn("%s: server %.*s", what, (int)n, message);
    else
        log_debug("%s: server %.*s", what, (int)n, message);
}

/*
 * Logs "cannot connect to <what>: <reason>; DSN: <redacted dsn>" once (the
 * DSN last, so the logger's own password masking has nothing after it to
 * swallow), copies it into err (when given) and returns NULL for pgconn_open
 * to pass on.
 */
static PGconn *connect_failed(char *err, size_t errlen, const char *what, const char *dsn,
                              const char *reason)
{
    char *red = log_redact_dsn(dsn != NULL ? dsn : "");
    char msg[1024];
    if (red[0] != '\0')
        snprintf(msg, sizeof msg, "cannot connect to %s: %s; DSN: %s", what, reason, red);
    else
        snprintf(msg, sizeof msg, "cannot connect to %s: %s", what, reason);
    free(red);
    log_error("%s", msg);
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return NULL;
}

/* The keyword/value arrays handed to PQconnectdbParams, built from the user's DSN. */
typedef struct conn_params {
    const char *keywords[8];
    const char *values[8];
    strbuf options;
} conn_params;

static void conn_params_build(conn_params *p, const char *dsn, const PQconninfoOption *user,
                              pgconn_kind kind)
{
    int n = 0;
    strbuf_init(&p->options);
    const char *user_options = conninfo_value(user, "options");
    if (user_options != NULL) {
        strbuf_append(&p->options, user_options);
        strbuf_append_char(&p->options, ' ');
    }
    strbuf_append(&p->options, PGCONN_SESSION_OPTIONS);

    p->keywords[n] = "dbname";
    p->values[n++] = dsn;
    p->keywords[n] = "options";
    p->values[n++] = p->options.data;
    if (conninfo_value(user, "application_name") == NULL) {
        p->keywords[n] = "application_name";
        p->values[n++] = "walbridge";
    }
    if (conninfo_value(user, "connect_timeout") == NULL) {
        p->keywords[n] = "connect_timeout";
        p->values[n++] = PGCONN_DEFAULT_CONNECT_TIMEOUT;
    }
    if (kind == PGCONN_REPLICATION) {
        p->keywords[n] = "replication";
        p->values[n++] = "database";
    }
    p->keywords[n] = NULL;
    p->values[n] = NULL;
}

/* Decorrelated jitter: next = min(cap, random in [base, prev * 3]). */
static int backoff_next(int prev_ms, int base_ms, int cap_ms)
{
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    long prev = prev_ms < base_ms ? base_ms : prev_ms;
    long upper = prev * 3;
    if (upper > cap_ms)
        upper = cap_ms;
    long next = base_ms;
    if (upper > base_ms)
        next = base_ms + (long)arc4random_uniform((uint32_t)(upper - base_ms + 1));
    return (int)next;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    /* A signal (SIGTERM) cuts the wait short; the caller checks its flags. */
    (void)nanosleep(&ts, NULL);
}

PGconn *pgconn_open(const char *dsn, pgconn_kind kind, const char *what, int max_attempts,
                    char *err, size_t errlen)
{
    char reason[512];
    if (dsn == NULL || dsn[0] == '\0')
        return connect_failed(err, errlen, what, NULL, "no connection string configured");
    if (kind == PGCONN_TARGET && pgconn_is_transaction_pooler(dsn, reason, sizeof reason))
        return connect_failed(err, errlen, what, dsn, reason);
    char *parse_err = NULL;
    PQconninfoOption *user = PQconninfoParse(dsn, &parse_err);
    if (user == NULL) {
        /* Not parseable: the DSN itself is not shown, it may hold a password in a bad spot. */
        char *red = log_redact_text(parse_err != NULL ? parse_err : "out of memory");
        PQfreemem(parse_err);
        for (char *c = red; *c != '\0'; c++)
            *c = *c == '\n' ? ' ' : *c;
        snprintf(reason, sizeof reason, "invalid connection string: %s", red);
        free(red);
        return connect_failed(err, errlen, what, NULL, reason);
    }
    conn_params params;
    conn_params_build(&params, dsn, user, kind);
    PQconninfoFree(user);

    if (max_attempts < 1)
        max_attempts = 1;
    int prev_ms = 0;
    PGconn *conn = NULL;
    for (int attempt = 1;; attempt++) {
        conn = PQconnectdbParams(params.keywords, params.values, 1);
        if (conn != NULL && PQstatus(conn) == CONNECTION_OK) {
            /* arg must outlive conn: a literal per kind, not the caller's what. */
            static const char *const side[] = {"source", "target", "source (replication)"};
            PQsetNoticeProcessor(conn, notice_to_log, (void *)side[kind]);
            break;
        }
        char *why = one_line_error(conn);
        bool retry = conn != NULL && connect_failure_retryable(why);
        PQfinish(conn);
        conn = NULL;
        if (!retry || attempt >= max_attempts) {
            connect_failed(err, errlen, what, dsn, why);
            free(why);
            break;
        }
        char *red = log_redact_dsn(dsn);
        prev_ms = backoff_next(prev_ms, PGCONN_BACKOFF_BASE_MS, PGCONN_BACKOFF_CAP_MS);
        log_warn("%s: connection attempt %d/%d failed: %s; retrying in %d ms; DSN: %s", what,
                 attempt, max_attempts, why, prev_ms, red);
        free(red);
        free(why);
        sleep_ms(prev_ms);
    }
    strbuf_free(&params.options);
    return conn;
}

/* Logs a failed result (or lost connection) as "what: message (SQLSTATE x)", once. */
static void log_failure(PGconn *conn, const PGresult *res, const char *what)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char *conn_msg = NULL;
    if (primary == NULL) {
        conn_msg = one_line_error(conn);
        primary = conn_msg;
    }
    log_full(LOG_ERROR, res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL,
             res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL,
             "%s: %s (SQLSTATE %s)", what, primary, state != NULL ? state : "none");
    free(conn_msg);
}

PGresult *pgconn_query(PGconn *conn, const char *what, const char *sql, int nparams,
                       const char *const *params, pgerr_class *cls)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    pgerr_class c = pgconn_classify(conn, res);
    if (cls != NULL)
        *cls = c;
    if (c == PGERR_OK)
        return res;

    log_failure(conn, res, what);
    PQclear(res);
    return NULL;
}

bool pgconn_exec(PGconn *conn, const char *what, const char *sql)
{
    /* Simple protocol: sql may hold several statements (DDL scripts). */
    PGresult *res = PQexec(conn, sql);
    bool ok = pgconn_classify(conn, res) == PGERR_OK;
    if (!ok)
        log_failure(conn, res, what);
    PQclear(res);
    return ok;
}

void pgconn_append_ident(strbuf *out, const char *ident)
{
    /* Always quoted: correct for reserved words and mixed case alike. */
    strbuf_append_char(out, '"');
    for (const char *c = ident; *c != '\0'; c++) {
        if (*c == '"')
            strbuf_append_char(out, '"');
        strbuf_append_char(out, *c);
    }
    strbuf_append_char(out, '"');
}

void pgconn_append_qualified(strbuf *out, const char *schema, const char *name)
{
    if (schema != NULL && schema[0] != '\0') {
        pgconn_append_ident(out, schema);
        strbuf_append_char(out, '.');
    }
    pgconn_append_ident(out, name);
}

int pgconn_backoff_sleep(int *prev_ms, int base_ms, int cap_ms)
{
    int next = backoff_next(*prev_ms, base_ms, cap_ms);
    *prev_ms = next;
    sleep_ms(next);
    return next;
}

bool pgconn_snapshot_name_ok(const char *name)
{
    if (name[0] == '\0' || strlen(name) >= 64)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        bool hex = (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F') || (*p >= 'a' && *p <= 'f');
        if (!hex && *p != '-')
            return false;
    }
    return true;
}

bool pgconn_snapshot_import(PGconn *conn, const char *name)
{
    if (!pgconn_snapshot_name_ok(name)) {
        log_error("source: \"%.64s\" is not a snapshot name", name);
        return false;
    }
    strbuf sql;
    strbuf_init(&sql);
    strbuf_appendf(&sql, "SET TRANSACTION SNAPSHOT '%s'", name);
    bool ok = pgconn_exec(conn, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN) &&
              pgconn_exec(conn, "source: importing the snapshot", sql.data);
    strbuf_free(&sql);
    return ok;
}

char *pgconn_snapshot_export(PGconn *source, const char *otherwise)
{
    PGresult *res = PQexec(source, "SELECT pg_export_snapshot()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        pgconn_snapshot_name_ok(PQgetvalue(res, 0, 0))) {
        char *name = wb_xstrdup(PQgetvalue(res, 0, 0));
        PQclear(res);
        return name;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    log_info("source: cannot export the snapshot (%s); %s",
             state != NULL ? state : "unexpected answer", otherwise);
    PQclear(res);
    /* Should these fail, the connection is gone and the next query says so. */
    if (pgconn_exec(source, "source: ROLLBACK", "ROLLBACK"))
        pgconn_exec(source, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN);
    return NULL;
}
