/*
 * handoff.c — slot creation with an exported snapshot, bounded wait with a
 * report of what it waits for, and the source snapshot transaction (see
 * handoff.h).
 */
#include "backfill/handoff.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Looks the slot up; *exists, and false when it belongs to another plugin. */
static bool slot_lookup(PGconn *source, const char *slot, bool *exists)
{
    const char *params[1] = {slot};
    PGresult *res = pgconn_query(source, "source: looking up the replication slot",
                                 "SELECT plugin, slot_type FROM pg_replication_slots "
                                 "WHERE slot_name = $1",
                                 1, params, NULL);
    if (res == NULL)
        return false;
    *exists = PQntuples(res) == 1;
    bool ok = true;
    if (*exists && (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 ||
                    strcmp(PQgetvalue(res, 0, 0), "wal2json") != 0)) {
        log_full(LOG_ERROR, NULL,
                 "Use another \"slot\" name in the config, or drop that slot if it is unused.",
                 "slot \"%s\" exists but is a %s slot of plugin \"%s\", not wal2json", slot,
                 PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
        ok = false;
    }
    PQclear(res);
    return ok;
}

/* Logs the source transactions older than our attempt: what slot creation waits for. */
static void report_waiters(PGconn *source, const char *attempt_ts, const char *slot, double waited)
{
    const char *params[1] = {attempt_ts};
    PGresult *res = pgconn_query(
        source, "source: listing running transactions",
        "SELECT pid, xact_start, coalesce(state, ''), left(regexp_replace(query, '\\s+', ' ', "
        "'g'), 160) FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
        "AND xact_start <= $1::timestamptz AND pid <> pg_backend_pid() ORDER BY xact_start "
        "LIMIT 5",
        1, params, NULL);
    if (res == NULL)
        return;
    if (PQntuples(res) == 0)
        log_info("creating slot \"%s\": waiting %.0fs for transactions running on the source "
                 "to finish",
                 slot, waited);
    for (int i = 0; i < PQntuples(res); i++)
        log_info("creating slot \"%s\": waiting %.0fs for transaction of pid %s (started %s, %s): "
                 "%s",
                 slot, waited, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                 PQgetvalue(res, i, 3));
    PQclear(res);
}

static void cancel_request(PGconn *conn)
{
    PGcancel *cancel = PQgetCancel(conn);
    char errbuf[256];
    if (cancel != NULL) {
        PQcancel(cancel, errbuf, sizeof errbuf);
        PQfreeCancel(cancel);
    }
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
}

/* Waits for the CREATE_REPLICATION_SLOT result, bounded by the timeout. */
static PGresult *wait_for_slot(const wb_config *cfg, const char *slot, PGconn *source, PGconn *repl,
                               const char *attempt_ts)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double next_report = 1.0;
    bool reported = false;
    for (;;) {
        if (!PQconsumeInput(repl)) {
            log_error("creating slot \"%s\" failed: %s", slot, PQerrorMessage(repl));
            return NULL;
        }
        if (!PQisBusy(repl))
            return PQgetResult(repl);
        double waited = seconds_since(&t0);
        if (waited >= cfg->backfill.slot_create_timeout_s) {
            if (!reported)
                report_waiters(source, attempt_ts, slot, waited);
            cancel_request(repl);
            log_full(LOG_ERROR,
                     "CREATE_REPLICATION_SLOT waits until every transaction running when it "
                     "started has finished.",
                     "Finish or cancel the transactions named above, or raise "
                     "backfill.slot_create_timeout_s.",
                     "creating slot \"%s\" timed out after %d s", slot,
                     cfg->backfill.slot_create_timeout_s);
            return NULL;
        }
        if (waited >= next_report) {
            report_waiters(source, attempt_ts, slot, waited);
            reported = true;
            next_report = waited + 5.0;
        }
        struct pollfd pfd = {.fd = PQsocket(repl), .events = POLLIN, .revents = 0};
        poll(&pfd, 1, 250);
    }
}

/*
 * CREATE_REPLICATION_SLOT slot [TEMPORARY] LOGICAL wal2json (SNAPSHOT 'export') on a
 * new replication connection kept in h->repl; h->consistent_lsn and h->snapshot.
 */
static bool create_slot(const wb_config *cfg, PGconn *source, const char *slot, bool temporary,
                        handoff *h)
{
    char err[512];
    h->repl = pgconn_open(cfg->source_dsn, PGCONN_REPLICATION, "source (replication)", 3, err,
                          sizeof err);
    if (h->repl == NULL)
        return false;
    PGresult *now =
        pgconn_query(source, "source: clock", "SELECT clock_timestamp()::text", 0, NULL, NULL);
    if (now == NULL)
        return false;
    char attempt_ts[64];
    snprintf(attempt_ts, sizeof attempt_ts, "%s", PQgetvalue(now, 0, 0));
    PQclear(now);

    strbuf cmd;
    strbuf_init(&cmd);
    strbuf_append(&cmd, "CREATE_REPLICATION_SLOT ");
    pgconn_append_ident(&cmd, slot);
    strbuf_append(&cmd, temporary ? " TEMPORARY LOGICAL wal2json (SNAPSHOT 'export')"
                                  : " LOGICAL wal2json (SNAPSHOT 'export')");
    log_info("creating %sreplication slot \"%s\" (wal2json) with an exported snapshot",
             temporary ? "temporary " : "", slot);
    bool sent = PQsendQuery(h->repl, cmd.data) == 1;
    strbuf_free(&cmd);
    if (!sent) {
        log_error("creating slot \"%s\" failed: %s", slot, PQerrorMessage(h->repl));
        return false;
    }
    PGresult *res = wait_for_slot(cfg, slot, source, h->repl, attempt_ts);
    if (res == NULL)
        return false;
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 3;
    if (!ok) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        log_error("creating slot \"%s\" failed: %s (SQLSTATE %s)", slot, PQresultErrorMessage(res),
                  state != NULL ? state : "none");
    } else if (!lsn_parse(PQgetvalue(res, 0, 1), &h->consistent_lsn) ||
               !pgconn_snapshot_name_ok(PQgetvalue(res, 0, 2))) {
        log_error("creating slot \"%s\": unexpected answer (consistent point \"%s\", snapshot "
                  "\"%s\")",
                  slot, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
        ok = false;
    } else {
        snprintf(h->snapshot, sizeof h->snapshot, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    while ((res = PQgetResult(h->repl)) != NULL)
        PQclear(res);
    if (!ok)
        return false;
    char lsn[LSN_TEXT_MAX];
    log_info("created slot \"%s\": consistent point %s, snapshot %s", slot,
             lsn_format(h->consistent_lsn, lsn), h->snapshot);
    return true;
}

bool handoff_begin(const wb_config *cfg, PGconn *source, bool create, bool exact, handoff *h)
{
    memset(h, 0, sizeof *h);
    bool exists = false;
    if (!slot_lookup(source, cfg->slot, &exists))
        return false;
    h->slot_existed = exists;
    if (exists && exact) {
        /* A temporary slot: dropped when its connection closes, so never left behind. */
        char name[64];
        snprintf(name, sizeof name, "%.40s_backfill_%ld", cfg->slot, (long)getpid());
        log_info("slot \"%s\" exists already: this is a re-run; its snapshot comes from a "
                 "temporary slot, whose consistent point the stream is brought to first",
                 cfg->slot);
        if (!create_slot(cfg, source, name, true, h))
            return false;
        h->snapshot_lsn = true;
    } else if (exists) {
        log_info("slot \"%s\" exists already: this is a re-run on a fresh snapshot; rows the "
                 "stream applied are not overwritten (missing rows are inserted only)",
                 cfg->slot);
    } else if (!create) {
        log_info("slot \"%s\" does not exist; not creating it (dry run)", cfg->slot);
    } else if (!create_slot(cfg, source, cfg->slot, false, h)) {
        return false;
    } else {
        h->slot_created = true;
        h->snapshot_lsn = true;
    }

    /* The slot's snapshot name is server-generated; pgconn checks it is hex and dashes. */
    if (h->snapshot_lsn)
        return pgconn_snapshot_import(source, h->snapshot);
    return pgconn_exec(source, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN);
}

bool handoff_share_snapshot(const handoff *h, PGconn *source, PGconn *other)
{
    if (h->snapshot_lsn) /* the replication connection still holds the exported snapshot */
        return pgconn_snapshot_import(other, h->snapshot);
    char *name = pgconn_snapshot_export(source, "rows are read on one connection");
    if (name == NULL)
        return false;
    bool ok = pgconn_snapshot_import(other, name);
    free(name);
    return ok;
}

void handoff_close(handoff *h)
{
    if (h->repl != NULL)
        PQfinish(h->repl);
    h->repl = NULL;
}
