/*
 * pgconn.h — opening libpq connections the walbridge way, and classifying
 * their failures.
 *
 * Every connection gets pinned session settings (DateStyle=ISO, TimeZone=UTC,
 * IntervalStyle=postgres, extra_float_digits=3, bytea_output=hex,
 * statement_timeout=0, application_name=walbridge) through the libpq
 * "options" keyword, so values render identically on the replication
 * connection, in COPY and in queries.  A target DSN on port 6543 (Supabase's
 * transaction-mode pooler) is refused.  Passwords never reach a message:
 * errors quote the DSN through log_redact_dsn.
 *
 * Failure policy (STYLE.md): functions return bool / NULL, log the failure
 * once where it is detected, and callers propagate.
 */
#ifndef WALBRIDGE_PGCONN_H
#define WALBRIDGE_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

typedef enum pgconn_kind {
    PGCONN_SOURCE,     /* plain source connection */
    PGCONN_TARGET,     /* plain target connection (pooler check applies) */
    PGCONN_REPLICATION /* source, replication=database */
} pgconn_kind;

typedef enum pgerr_class {
    PGERR_OK = 0,
    PGERR_RETRY, /* connection loss, admin shutdown, serialization failure, deadlock, ... */
    PGERR_FATAL  /* data, constraint, syntax, privilege: stop with a clear message */
} pgerr_class;

/*
 * Opens a connection, retrying retryable failures with decorrelated-jitter
 * backoff up to max_attempts (1 = no retry), logging each retry with its
 * cause.  what names the side in messages ("source", "target").  Returns NULL
 * after logging and writing a one-line reason (DSN redacted) into err.
 * Caller owns the PGconn (PQfinish).
 */
PGconn *pgconn_open(const char *dsn, pgconn_kind kind, const char *what, int max_attempts,
                    char *err, size_t errlen);

/* True when dsn points at port 6543 (transaction-mode pooler); fills err with why. */
bool pgconn_is_transaction_pooler(const char *dsn, char *err, size_t errlen);

/* Classifies a result (NULL allowed) plus the connection's state. */
pgerr_class pgconn_classify(PGconn *conn, const PGresult *res);
/* Classifies a five-character SQLSTATE; NULL/empty counts as a connection problem. */
pgerr_class pgconn_classify_sqlstate(const char *sqlstate);
/*
 * True when name can be an exported snapshot's name (pg_export_snapshot: hex
 * digits and dashes, under 64 bytes): SET TRANSACTION SNAPSHOT takes no
 * parameter, so the name is checked before it is written into the statement.
 */
bool pgconn_snapshot_name_ok(const char *name);

/*
 * Statements run between these two join their rows by index probes (nested loops):
 * for a few thousand rows against a large table the planner would rather hash the
 * whole table, or merge-join from the index's start.  For the open transaction only.
 */
#define PGCONN_JOINS_BY_INDEX "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
#define PGCONN_JOINS_RESET                                                                         \
    "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT"

/* How every snapshot reader of the source begins its transaction. */
#define PGCONN_SNAPSHOT_BEGIN "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
/* Begins conn's snapshot transaction on the exported snapshot name (checked). */
bool pgconn_snapshot_import(PGconn *conn, const char *name);
/*
 * Exports the snapshot of source's open snapshot transaction (nothing read in
 * it yet); returns its name (caller frees).  When the source refuses, logs
 * why and what happens otherwise ("otherwise"), begins a fresh snapshot
 * transaction on source (as good as the old one) and returns NULL.
 */
char *pgconn_snapshot_export(PGconn *source, const char *otherwise);

/*
 * Runs sql with text parameters (params may be NULL when nparams is 0) and
 * checks the status (PGRES_COMMAND_OK or PGRES_TUPLES_OK).  On failure logs
 * "what: message (SQLSTATE xxxxx)" once and returns NULL; *cls (optional)
 * receives the classification.  Caller PQclears the result.
 */
PGresult *pgconn_query(PGconn *conn, const char *what, const char *sql, int nparams,
                       const char *const *params, pgerr_class *cls);
/*
 * pgconn_query for statements whose result is not needed.  Runs sql through
 * the simple query protocol, so it may hold several statements (DDL scripts)
 * and works on replication connections, where pgconn_query's extended
 * protocol is refused.
 */
bool pgconn_exec(PGconn *conn, const char *what, const char *sql);

/* Quotes an identifier the way quote_ident does ("a""b"), appended to out. Pure. */
#include "common/strbuf.h"
void pgconn_append_ident(strbuf *out, const char *ident);
/* Appends schema.name, each part quoted. */
void pgconn_append_qualified(strbuf *out, const char *schema, const char *name);

/* Sleeps per decorrelated jitter: next = min(cap, random(base, prev*3)); returns ms slept. */
int pgconn_backoff_sleep(int *prev_ms, int base_ms, int cap_ms);

#endif
