/*
 * replication.c — one logical replication session of `walbridge stream`
 * (see replication.h): START_REPLICATION with wal2json, the receive loop,
 * keepalive replies, batch flushes, standby status feedback, heartbeat
 * messages and the periodic progress line.
 *
 * The loop follows pg_recvlogical.c: PQgetCopyData in async mode; when no
 * data is buffered, select() on the socket with a timeout computed from
 * explicit timers (status interval, batch idle flush, heartbeat, log line);
 * small functions per message type (stream_on_keepalive, stream_on_xlogdata)
 * and for feedback (stream_send_status).
 */
#include "cdc/replication.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "cdc/w2j.h"
#include "cdc/wire.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"

#define STREAM_LOG_INTERVAL_MS 10000
#define STREAM_REPLY_REQUEST_MS 250 /* --until: ask for a keepalive at most this often */
#define STREAM_MAX_WAIT_MS 1000     /* never block longer: signals, timers */

const char *stream_stop_reason_name(stream_stop_reason r)
{
    switch (r) {
    case STREAM_STOP_NONE:
        return "none";
    case STREAM_STOP_SIGNAL:
        return "stop requested";
    case STREAM_STOP_UNTIL:
        return "target LSN reached";
    case STREAM_STOP_SOURCE_LOST:
        return "source connection lost";
    case STREAM_STOP_TARGET_LOST:
        return "target connection lost";
    case STREAM_STOP_FATAL:
        return "unrecoverable error";
    }
    return "unknown";
}

int64_t stream_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void stream_ctl_init(stream_ctl *ctl, const wb_config *cfg)
{
    memset(ctl, 0, sizeof *ctl);
    ctl->cfg = cfg;
    ctl->pending_rows =
        wb_xcalloc(cfg->ntables ? cfg->ntables : 1, STREAM_NACTIONS * sizeof *ctl->pending_rows);
}

void stream_ctl_close(stream_ctl *ctl)
{
    if (ctl->repl != NULL)
        PQfinish(ctl->repl);
    if (ctl->heartbeat != NULL)
        PQfinish(ctl->heartbeat);
    ctl->repl = NULL;
    ctl->heartbeat = NULL;
    free(ctl->pending_rows);
    ctl->pending_rows = NULL;
}

/* ------------------------------------------------------------ commands */

static void stream_append_w2j_escaped(strbuf *out, const char *name)
{
    for (const char *p = name; *p != '\0'; p++) {
        if (strchr(" ',.*\\", *p) != NULL)
            strbuf_append_char(out, '\\');
        strbuf_append_char(out, *p);
    }
}

void stream_append_add_tables(strbuf *out, const wb_config *cfg)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        if (i > 0)
            strbuf_append_char(out, ',');
        stream_append_w2j_escaped(out, cfg->tables[i].source_schema);
        strbuf_append_char(out, '.');
        stream_append_w2j_escaped(out, cfg->tables[i].source_name);
    }
}

/* Appends text as a replication-grammar string literal ('...' with '' doubling). */
static void stream_append_literal(strbuf *out, const char *text)
{
    strbuf_append_char(out, '\'');
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\'')
            strbuf_append_char(out, '\'');
        strbuf_append_char(out, *p);
    }
    strbuf_append_char(out, '\'');
}

void stream_build_start_command(strbuf *out, const wb_config *cfg, wb_lsn start)
{
    char lsn[LSN_TEXT_MAX];
    strbuf tables;
    strbuf_append(out, "START_REPLICATION SLOT ");
    pgconn_append_ident(out, cfg->slot);
    strbuf_appendf(out,
                   " LOGICAL %s (\"format-version\" '2', \"include-xids\" '1', "
                   "\"include-lsn\" '1', \"include-types\" '0', "
                   "\"include-timestamp\" '1', \"add-tables\" ",
                   lsn_format(start, lsn));
    strbuf_init(&tables);
    stream_append_add_tables(&tables, cfg);
    stream_append_literal(out, tables.data);
    strbuf_free(&tables);
    strbuf_append_char(out, ')');
}

/* ------------------------------------------------------------ feedback */

/* What may be confirmed: the applier's durable LSN or an idle LSN stored in the target. */
static wb_lsn stream_flush_position(const stream_ctl *ctl)
{
    wb_lsn durable = applier_durable_lsn(ctl->app);
    return ctl->stored_idle_lsn > durable ? ctl->stored_idle_lsn : durable;
}

/* Sends a standby status update: flush = apply = what is durable, never more. */
static bool stream_send_status(stream_ctl *ctl, bool reply_requested)
{
    unsigned char msg[WIRE_STATUS_LEN];
    wb_lsn flush = stream_flush_position(ctl);
    wb_lsn write = ctl->received_lsn > flush ? ctl->received_lsn : flush;
    wire_build_status(msg, write, flush, flush, wire_now(), reply_requested);
    if (PQputCopyData(ctl->repl, (const char *)msg, WIRE_STATUS_LEN) <= 0 ||
        PQflush(ctl->repl) != 0) {
        log_error("could not send standby status update to the source: %s",
                  PQerrorMessage(ctl->repl));
        return false;
    }
    ctl->last_status_ms = stream_now_ms();
    if (flush != ctl->flush_sent) {
        char buf[LSN_TEXT_MAX];
        log_debug("confirmed flush position %s to the source", lsn_format(flush, buf));
    }
    ctl->flush_sent = flush;
    if (ctl->metrics != NULL)
        metrics_record_feedback(ctl->metrics, flush);
    return true;
}

/*
 * Stores idle_lsn (a keepalive's walEnd seen while nothing was pending) as the
 * applied LSN in the target, in a short transaction of its own, so that the
 * next status update may confirm it: the source's confirmed position never
 * gets ahead of what the target records.  Only when it moved past what may be
 * confirmed already, at most once per feedback interval unless forced, and
 * only while the applier's connection is idle (no batch, no pipeline).
 * Returns STREAM_STOP_NONE, or TARGET_LOST / FATAL (logged).
 */
static stream_stop_reason stream_store_idle(stream_ctl *ctl, bool force)
{
    int64_t now = stream_now_ms();
    wb_lsn lsn = ctl->idle_lsn;
    if (lsn <= stream_flush_position(ctl) || ctl->target == NULL || ctl->unflushed ||
        applier_in_transaction(ctl->app))
        return STREAM_STOP_NONE;
    if (!force &&
        now - ctl->last_idle_store_ms < (int64_t)ctl->cfg->stream.feedback_interval_s * 1000)
        return STREAM_STOP_NONE;
    if (PQstatus(ctl->target) != CONNECTION_OK)
        return STREAM_STOP_TARGET_LOST;
    if (PQtransactionStatus(ctl->target) != PQTRANS_IDLE ||
        PQpipelineStatus(ctl->target) != PQ_PIPELINE_OFF)
        return STREAM_STOP_NONE; /* the applier is using it: next time */
    ctl->last_idle_store_ms = now;
    bool ok =
        pgconn_exec(ctl->target, "stream: storing the idle applied LSN", "BEGIN") &&
        state_set_applied_lsn(ctl->target, ctl->cfg->state_schema, ctl->cfg->slot, lsn, NULL) &&
        pgconn_exec(ctl->target, "stream: storing the idle applied LSN", "COMMIT");
    if (!ok) {
        char at[LSN_TEXT_MAX];
        bool lost = PQstatus(ctl->target) != CONNECTION_OK;
        if (!lost && PQtransactionStatus(ctl->target) != PQTRANS_IDLE)
            (void)pgconn_exec(ctl->target, "stream: rolling back the idle applied LSN", "ROLLBACK");
        log_error("could not record the idle position %s as applied in the target; it is not "
                  "confirmed to the source",
                  lsn_format(lsn, at));
        return lost ? STREAM_STOP_TARGET_LOST : STREAM_STOP_FATAL;
    }
    ctl->stored_idle_lsn = lsn;
    if (ctl->metrics != NULL)
        metrics_set_applied(ctl->metrics, lsn);
    return STREAM_STOP_NONE;
}

/* ------------------------------------------------------------ batches */

static void stream_pending_reset(stream_ctl *ctl)
{
    memset(ctl->pending_rows, 0,
           (ctl->cfg->ntables ? ctl->cfg->ntables : 1) * STREAM_NACTIONS *
               sizeof *ctl->pending_rows);
}

static void stream_report_batch(stream_ctl *ctl, double latency_s)
{
    const apply_stats *st = applier_stats(ctl->app);
    stream_metrics *m = ctl->metrics;
    if (m != NULL) {
        for (size_t t = 0; t < ctl->cfg->ntables; t++) {
            for (int a = 0; a < STREAM_NACTIONS; a++) {
                uint64_t n = ctl->pending_rows[t * STREAM_NACTIONS + (size_t)a];
                if (n > 0)
                    metrics_add_rows(m, (int)t, (metrics_action)a, n);
            }
        }
        metrics_add_conflicts(m, METRICS_CONFLICT_INSERT_EXISTING,
                              st->conflicts_insert_existing -
                                  ctl->reported.conflicts_insert_existing);
        metrics_add_conflicts(m, METRICS_CONFLICT_UPDATE_MISSING,
                              st->conflicts_update_missing -
                                  ctl->reported.conflicts_update_missing);
        metrics_add_conflicts(m, METRICS_CONFLICT_DELETE_MISSING,
                              st->conflicts_delete_missing -
                                  ctl->reported.conflicts_delete_missing);
        metrics_record_batch(m, latency_s, st->txns_applied - ctl->reported.txns_applied);
        metrics_set_applied(m, stream_flush_position(ctl));
    }
    ctl->reported = *st;
    stream_pending_reset(ctl);
}

/*
 * Commits the open batch (only call at a source transaction boundary).
 * Returns STREAM_STOP_NONE, or why the session must stop.
 */
static stream_stop_reason stream_flush(stream_ctl *ctl)
{
    bool retryable = false;
    wb_lsn before = applier_durable_lsn(ctl->app);
    int64_t t0 = stream_now_ms();
    if (!applier_flush(ctl->app, &retryable))
        return retryable ? STREAM_STOP_TARGET_LOST : STREAM_STOP_FATAL;
    ctl->unflushed = false;
    stream_report_batch(ctl, (double)(stream_now_ms() - t0) / 1000.0);
    if (applier_durable_lsn(ctl->app) != before && !stream_send_status(ctl, false))
        return STREAM_STOP_SOURCE_LOST;
    return STREAM_STOP_NONE;
}

static bool stream_nothing_pending(const stream_ctl *ctl)
{
    return !ctl->unflushed && !applier_in_transaction(ctl->app);
}

/* True once --until-lsn / --until-caught-up is satisfied. */
static bool stream_until_reached(const stream_ctl *ctl)
{
    if (ctl->until_lsn == LSN_INVALID)
        return false;
    if (applier_durable_lsn(ctl->app) >= ctl->until_lsn)
        return true;
    return stream_nothing_pending(ctl) && ctl->idle_lsn >= ctl->until_lsn;
}

/* ------------------------------------------------------------ messages */

static void stream_count_row(stream_ctl *ctl, const w2j_change *c)
{
    int action;
    switch (c->action) {
    case W2J_INSERT:
        action = METRICS_INSERT;
        break;
    case W2J_UPDATE:
        action = METRICS_UPDATE;
        break;
    case W2J_DELETE:
        action = METRICS_DELETE;
        break;
    case W2J_TRUNCATE:
        action = METRICS_TRUNCATE;
        break;
    default:
        return;
    }
    int t = config_find_source(ctl->cfg, c->schema, c->table);
    if (t >= 0)
        ctl->pending_rows[(size_t)t * STREAM_NACTIONS + (size_t)action]++;
}

static stream_stop_reason stream_on_keepalive(stream_ctl *ctl, const char *buf, size_t len)
{
    wire_keepalive k;
    char err[128];
    if (!wire_parse_keepalive(buf, len, &k, err, sizeof err)) {
        log_error("invalid keepalive from the source: %s", err);
        return STREAM_STOP_SOURCE_LOST;
    }
    if (k.wal_end > ctl->server_wal_end)
        ctl->server_wal_end = k.wal_end;
    /* Nothing pending: every change before walEnd that we care about is durable. */
    wb_lsn idle = k.wal_end;
    if (ctl->until_exact && idle > ctl->until_lsn)
        idle = ctl->until_lsn; /* nothing after the snapshot counts as applied */
    if (stream_nothing_pending(ctl) && idle > ctl->idle_lsn)
        ctl->idle_lsn = idle;
    ctl->last_keepalive_ms = stream_now_ms();
    if (ctl->metrics != NULL) {
        metrics_set_source_current(ctl->metrics, k.wal_end);
        metrics_record_keepalive(ctl->metrics);
    }
    if (!k.reply_requested)
        return STREAM_STOP_NONE;
    stream_stop_reason why = stream_store_idle(ctl, false);
    if (why != STREAM_STOP_NONE)
        return why;
    if (!stream_send_status(ctl, false))
        return STREAM_STOP_SOURCE_LOST;
    return STREAM_STOP_NONE;
}

/* Logs why a message stops the stream, naming LSN, xid and table. */
static void stream_log_fatal(const w2j_change *c, wb_lsn lsn, wb_lsn durable, const char *why)
{
    char at[LSN_TEXT_MAX], dur[LSN_TEXT_MAX], detail[256];
    snprintf(detail, sizeof detail,
             "The slot is not advanced past %s; walbridge will resume there once the cause is "
             "fixed.",
             lsn_format(durable, dur));
    log_full(LOG_ERROR, detail,
             "Fix the data or the target schema (or the config), then start walbridge stream "
             "again.",
             "stream stopped at LSN %s (xid %u, table %s%s%s): %s", lsn_format(lsn, at),
             (unsigned)c->xid, c->schema != NULL ? c->schema : "-", c->schema != NULL ? "." : "",
             c->table != NULL ? c->table : "", why);
}

static stream_stop_reason stream_on_xlogdata(stream_ctl *ctl, const char *buf, size_t len)
{
    wire_xlogdata w;
    w2j_change c;
    char err[256];
    bool retryable = false;

    if (!wire_parse_xlogdata(buf, len, &w, err, sizeof err)) {
        log_error("invalid XLogData message from the source: %s", err);
        return STREAM_STOP_SOURCE_LOST;
    }
    /* dataStart may be 0 (e.g. non-transactional messages): never move backwards. */
    if (w.data_start > ctl->received_lsn)
        ctl->received_lsn = w.data_start;
    if (w.wal_end > ctl->server_wal_end)
        ctl->server_wal_end = w.wal_end;
    ctl->last_data_ms = stream_now_ms();
    if (ctl->metrics != NULL) {
        metrics_set_received(ctl->metrics, ctl->received_lsn);
        if (w.wal_end != LSN_INVALID)
            metrics_set_source_current(ctl->metrics, w.wal_end);
    }

    if (!w2j_parse(w.data, w.len, &c, err, sizeof err)) {
        char at[LSN_TEXT_MAX], dur[LSN_TEXT_MAX], detail[300];
        snprintf(detail, sizeof detail, "Message starts: %.200s", w.len > 0 ? w.data : "");
        log_full(LOG_ERROR, detail, "The slot is not advanced past the last applied LSN.",
                 "stream stopped at LSN %s: cannot parse wal2json message: %s (applied LSN %s)",
                 lsn_format(w.data_start, at), err, lsn_format(applier_durable_lsn(ctl->app), dur));
        return STREAM_STOP_FATAL;
    }
    if (ctl->until_exact && c.action == W2J_BEGIN) {
        wb_lsn commit = w2j_commit_position(&c);
        if (commit == LSN_INVALID) {
            /* Neither applying it nor stopping before it is known to be right. */
            stream_log_fatal(&c, w.data_start, applier_durable_lsn(ctl->app),
                             "a BEGIN without its commit position (nextlsn): the catch-up "
                             "cannot tell whether the transaction is in the snapshot");
            w2j_change_free(&c);
            return STREAM_STOP_FATAL;
        }
        if (commit > ctl->until_lsn) {
            /* The first transaction past the snapshot: stop before it (commit order). */
            w2j_change_free(&c);
            return STREAM_STOP_UNTIL;
        }
    }
    bool transactional = !(c.action == W2J_MESSAGE && !c.transactional);
    if (!applier_feed(ctl->app, &c, w.data_start, &retryable)) {
        stream_stop_reason r = STREAM_STOP_TARGET_LOST;
        if (!retryable) {
            stream_log_fatal(&c, c.lsn != LSN_INVALID ? c.lsn : w.data_start,
                             applier_durable_lsn(ctl->app), "the change cannot be applied");
            r = STREAM_STOP_FATAL;
        }
        w2j_change_free(&c);
        return r;
    }
    if (transactional && !ctl->unflushed) {
        ctl->unflushed = true;
    }
    stream_count_row(ctl, &c);
    bool commit = c.action == W2J_COMMIT;
    w2j_change_free(&c);
    if (commit && applier_batch_due(ctl->app))
        return stream_flush(ctl);
    return STREAM_STOP_NONE;
}

/* ------------------------------------------------------------ timers */

static void stream_heartbeat(stream_ctl *ctl, int64_t now)
{
    int interval = ctl->cfg->stream.heartbeat_interval_s;
    if (interval <= 0 || now - ctl->last_heartbeat_ms < (int64_t)interval * 1000)
        return;
    ctl->last_heartbeat_ms = now;
    if (ctl->heartbeat == NULL || PQstatus(ctl->heartbeat) != CONNECTION_OK) {
        char err[512];
        if (ctl->heartbeat != NULL)
            PQfinish(ctl->heartbeat);
        ctl->heartbeat = pgconn_open(ctl->cfg->source_dsn, PGCONN_SOURCE, "source (heartbeat)", 1,
                                     err, sizeof err);
        if (ctl->heartbeat == NULL)
            return; /* logged; retried next interval */
    }
    PGresult *res = pgconn_query(ctl->heartbeat, "heartbeat message",
                                 "SELECT pg_logical_emit_message(false, 'walbridge_heartbeat', "
                                 "now()::text)",
                                 0, NULL, NULL);
    if (res == NULL) {
        PQfinish(ctl->heartbeat);
        ctl->heartbeat = NULL;
        return;
    }
    PQclear(res);
}

static void stream_progress_line(stream_ctl *ctl, int64_t now)
{
    if (now - ctl->last_log_ms < STREAM_LOG_INTERVAL_MS)
        return;
    const apply_stats *st = applier_stats(ctl->app);
    uint64_t rows = st->rows_inserted + st->rows_updated + st->rows_deleted;
    uint64_t conflicts =
        st->conflicts_insert_existing + st->conflicts_update_missing + st->conflicts_delete_missing;
    wb_lsn durable = applier_durable_lsn(ctl->app);
    wb_lsn applied = stream_flush_position(ctl);
    uint64_t lag = ctl->server_wal_end > applied ? ctl->server_wal_end - applied : 0;
    double secs = ctl->last_log_ms > 0 ? (double)(now - ctl->last_log_ms) / 1000.0 : 0.0;
    double rate = secs > 0 ? (double)(rows - ctl->last_log_rows) / secs : 0.0;
    char a[LSN_TEXT_MAX], d[LSN_TEXT_MAX];
    log_info("stream: applied LSN %s (confirmed %s), lag %llu bytes, %.0f rows/s, %llu txns, "
             "%llu conflicts",
             lsn_format(durable, d), lsn_format(applied, a), (unsigned long long)lag, rate,
             (unsigned long long)st->txns_applied, (unsigned long long)conflicts);
    ctl->last_log_ms = now;
    ctl->last_log_rows = rows;
}

/* Milliseconds select() may wait before some timer is due. */
static int64_t stream_wait_ms(const stream_ctl *ctl, int64_t now)
{
    int64_t wait = STREAM_MAX_WAIT_MS;
    int64_t status_due =
        ctl->last_status_ms + (int64_t)ctl->cfg->stream.feedback_interval_s * 1000 - now;
    if (status_due < wait)
        wait = status_due;
    if (ctl->unflushed && !applier_in_transaction(ctl->app)) {
        int64_t flush_due = ctl->last_data_ms + ctl->cfg->stream.batch_max_ms - now;
        if (flush_due < wait)
            wait = flush_due;
    }
    return wait < 0 ? 0 : wait;
}

/* Runs the timers; returns why to stop, or STREAM_STOP_NONE. */
static stream_stop_reason stream_on_timers(stream_ctl *ctl)
{
    int64_t now = stream_now_ms();
    /* Idle flush: a complete batch waited batch_max_ms without new data. */
    if (ctl->unflushed && !applier_in_transaction(ctl->app) &&
        (now - ctl->last_data_ms >= ctl->cfg->stream.batch_max_ms || applier_batch_due(ctl->app))) {
        stream_stop_reason r = stream_flush(ctl);
        if (r != STREAM_STOP_NONE)
            return r;
    }
    if (stream_until_reached(ctl))
        return STREAM_STOP_UNTIL;
    if (now - ctl->last_status_ms >= (int64_t)ctl->cfg->stream.feedback_interval_s * 1000) {
        stream_stop_reason why = stream_store_idle(ctl, false);
        if (why != STREAM_STOP_NONE)
            return why;
        if (!stream_send_status(ctl, false))
            return STREAM_STOP_SOURCE_LOST;
    }
    /*
     * While idle with nothing pending, ask the server for a keepalive: its walEnd
     * lets the slot advance past WAL we do not care about (and ends --until).
     */
    if (stream_nothing_pending(ctl) && now - ctl->last_data_ms >= ctl->cfg->stream.batch_max_ms) {
        bool ask;
        if (ctl->until_lsn != LSN_INVALID)
            ask = now - ctl->last_reply_request_ms >= STREAM_REPLY_REQUEST_MS;
        else
            ask = (ctl->idle_lsn < ctl->received_lsn || ctl->idle_lsn < ctl->server_wal_end) &&
                  now - ctl->last_reply_request_ms >=
                      (int64_t)ctl->cfg->stream.feedback_interval_s * 1000;
        if (ask) {
            ctl->last_reply_request_ms = now;
            if (!stream_send_status(ctl, true))
                return STREAM_STOP_SOURCE_LOST;
        }
    }
    stream_heartbeat(ctl, now);
    stream_progress_line(ctl, now);
    log_reopen_if_requested();
    return STREAM_STOP_NONE;
}

/* ------------------------------------------------------------ session */

/* Finishes on SIGTERM/SIGINT or --until: commit at a boundary or roll back, final feedback. */
static stream_stop_reason stream_finish(stream_ctl *ctl, stream_stop_reason why)
{
    if (ctl->unflushed && !applier_in_transaction(ctl->app)) {
        stream_stop_reason r = stream_flush(ctl);
        if (r == STREAM_STOP_FATAL || r == STREAM_STOP_TARGET_LOST)
            return r;
    } else if (applier_in_transaction(ctl->app)) {
        log_info("rolling back the open batch (a source transaction was incomplete); it will be "
                 "applied again on restart");
        applier_abort(ctl->app);
        ctl->unflushed = false;
        stream_pending_reset(ctl);
    }
    if (ctl->streaming && PQstatus(ctl->repl) == CONNECTION_OK) {
        /* An idle position (e.g. --until reached while idle) is stored before it is confirmed. */
        stream_stop_reason stored = stream_store_idle(ctl, true);
        if (stored == STREAM_STOP_FATAL || stored == STREAM_STOP_TARGET_LOST)
            why = stored;
        (void)stream_send_status(ctl, false);
        (void)PQputCopyEnd(ctl->repl, NULL);
        (void)PQflush(ctl->repl);
    }
    char buf[LSN_TEXT_MAX];
    log_info("stream stopped (%s); applied LSN %s confirmed to the source",
             stream_stop_reason_name(why), lsn_format(stream_flush_position(ctl), buf));
    return why;
}

/* After losing a connection: keep complete work, roll back a partial transaction. */
static void stream_salvage(stream_ctl *ctl, stream_stop_reason why)
{
    if (why == STREAM_STOP_SOURCE_LOST && ctl->unflushed && !applier_in_transaction(ctl->app)) {
        if (stream_flush(ctl) == STREAM_STOP_NONE)
            return;
    }
    if (ctl->unflushed || applier_in_transaction(ctl->app))
        applier_abort(ctl->app);
    ctl->unflushed = false;
    stream_pending_reset(ctl);
}

static stream_stop_reason stream_start(stream_ctl *ctl)
{
    char err[512], at[LSN_TEXT_MAX];
    wb_lsn durable = applier_durable_lsn(ctl->app);
    wb_lsn start = durable > ctl->start_lsn ? durable : ctl->start_lsn;

    ctl->repl = pgconn_open(ctl->cfg->source_dsn, PGCONN_REPLICATION, "source (replication)", 1,
                            err, sizeof err);
    if (ctl->repl == NULL)
        return STREAM_STOP_SOURCE_LOST;
    strbuf cmd;
    strbuf_init(&cmd);
    stream_build_start_command(&cmd, ctl->cfg, start);
    PGresult *res = PQexec(ctl->repl, cmd.data);
    strbuf_free(&cmd);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char *msg = log_redact_text(PQresultErrorMessage(res));
        for (char *p = msg; *p != '\0'; p++)
            *p = *p == '\n' ? ' ' : *p;
        stream_stop_reason r = STREAM_STOP_SOURCE_LOST;
        if (state != NULL && strcmp(state, "55006") == 0) {
            /* object_in_use: the previous walsender for the slot has not exited yet. */
            log_warn("replication slot \"%s\" is still in use: %s", ctl->cfg->slot, msg);
        } else if (pgconn_classify(ctl->repl, res) == PGERR_FATAL) {
            log_full(LOG_ERROR, NULL,
                     state != NULL && strcmp(state, "42704") == 0
                         ? "The slot is gone: run walbridge backfill to recreate it and copy "
                           "what is missing."
                         : NULL,
                     "could not start replication from slot \"%s\" at %s: %s (SQLSTATE %s)",
                     ctl->cfg->slot, lsn_format(start, at), msg, state != NULL ? state : "-");
            r = STREAM_STOP_FATAL;
        } else {
            log_warn("could not start replication from slot \"%s\": %s", ctl->cfg->slot, msg);
        }
        free(msg);
        PQclear(res);
        return r;
    }
    PQclear(res);
    ctl->streaming = true;
    log_info("streaming from slot \"%s\" at LSN %s", ctl->cfg->slot, lsn_format(start, at));
    int64_t now = stream_now_ms();
    ctl->received_lsn = start;
    /*
     * An idle position is re-learned from this session's keepalives (the source
     * may have changed); stored_idle_lsn stays: it is what the target records
     * (the caller resets it with a new target connection).
     */
    ctl->idle_lsn = LSN_INVALID;
    ctl->unflushed = false;
    ctl->last_status_ms = 0; /* send one status right away */
    ctl->last_data_ms = now;
    ctl->last_reply_request_ms = 0;
    if (ctl->last_log_ms == 0) {
        ctl->last_log_ms = now;
        const apply_stats *st = applier_stats(ctl->app);
        ctl->last_log_rows = st->rows_inserted + st->rows_updated + st->rows_deleted;
        ctl->reported = *st;
    }
    if (ctl->metrics != NULL) {
        metrics_set_connected(ctl->metrics, true);
        metrics_set_applied(ctl->metrics, durable);
    }
    return STREAM_STOP_NONE;
}

/* Waits for the socket or a timer; returns false when the connection failed. */
static bool stream_wait(stream_ctl *ctl)
{
    int sock = PQsocket(ctl->repl);
    if (sock < 0) {
        log_error("replication connection has no socket");
        return false;
    }
    int64_t wait = stream_wait_ms(ctl, stream_now_ms());
    fd_set input;
    FD_ZERO(&input);
    FD_SET(sock, &input);
    struct timeval tv = {.tv_sec = (time_t)(wait / 1000), .tv_usec = (long)(wait % 1000) * 1000};
    int r = select(sock + 1, &input, NULL, NULL, &tv);
    if (r < 0 && errno != EINTR) {
        log_error("select() on the replication connection failed: %s", strerror(errno));
        return false;
    }
    if (r > 0 && PQconsumeInput(ctl->repl) == 0) {
        char *msg = log_redact_text(PQerrorMessage(ctl->repl));
        log_warn("lost the replication connection to the source: %s", msg);
        free(msg);
        return false;
    }
    return true;
}

/* True when the replication socket has nothing to read right now. */
static bool stream_source_drained(const stream_ctl *ctl)
{
    int sock = PQsocket(ctl->repl);
    if (sock < 0)
        return false;
    fd_set input;
    FD_ZERO(&input);
    FD_SET(sock, &input);
    struct timeval zero = {0, 0};
    return select(sock + 1, &input, NULL, NULL, &zero) == 0;
}

/* One step of the receive loop. */
static stream_stop_reason stream_receive(stream_ctl *ctl)
{
    char *buf = NULL;
    int r = PQgetCopyData(ctl->repl, &buf, 1);
    if (r == 0) {
        /*
         * Nothing buffered: commit a complete batch before blocking if the source has
         * nothing more to send.  Small transactions arriving faster than they are applied
         * still group (the socket is not drained then), and a trickle is visible in the
         * target within a millisecond or two (holding the batch 5 ms first doubled the
         * OLTP freshness p99 against native replication in bench/stream.sh).
         */
        if (ctl->unflushed && !applier_in_transaction(ctl->app) && stream_source_drained(ctl)) {
            stream_stop_reason why = stream_flush(ctl);
            if (why != STREAM_STOP_NONE)
                return why;
        }
        return stream_wait(ctl) ? STREAM_STOP_NONE : STREAM_STOP_SOURCE_LOST;
    }
    if (r == -1) {
        PGresult *res = PQgetResult(ctl->repl);
        char *msg = log_redact_text(PQresultErrorMessage(res));
        log_warn("the source ended the replication stream%s%s", msg[0] ? ": " : "", msg);
        free(msg);
        PQclear(res);
        return STREAM_STOP_SOURCE_LOST;
    }
    if (r < 0) {
        char *msg = log_redact_text(PQerrorMessage(ctl->repl));
        log_warn("lost the replication connection to the source: %s", msg);
        free(msg);
        return STREAM_STOP_SOURCE_LOST;
    }
    stream_stop_reason why;
    if (buf[0] == 'k') {
        why = stream_on_keepalive(ctl, buf, (size_t)r);
    } else if (buf[0] == 'w') {
        why = stream_on_xlogdata(ctl, buf, (size_t)r);
    } else {
        log_error("unrecognized replication message type 0x%02x from the source",
                  (unsigned char)buf[0]);
        why = STREAM_STOP_SOURCE_LOST;
    }
    PQfreemem(buf);
    return why;
}

stream_stop_reason stream_session(stream_ctl *ctl)
{
    stream_stop_reason why = stream_start(ctl);
    while (why == STREAM_STOP_NONE) {
        if (ctl->stop_flag != NULL && *ctl->stop_flag) {
            why = STREAM_STOP_SIGNAL;
            break;
        }
        why = stream_on_timers(ctl);
        if (why == STREAM_STOP_NONE)
            why = stream_receive(ctl);
    }
    if (why == STREAM_STOP_SIGNAL || why == STREAM_STOP_UNTIL)
        why = stream_finish(ctl, why);
    else if (why == STREAM_STOP_FATAL && ctl->streaming && PQstatus(ctl->repl) == CONNECTION_OK)
        (void)stream_send_status(ctl, false); /* only what is durable */
    if (why == STREAM_STOP_SOURCE_LOST || why == STREAM_STOP_TARGET_LOST)
        stream_salvage(ctl, why);
    if (ctl->metrics != NULL)
        metrics_set_connected(ctl->metrics, false);
    if (ctl->repl != NULL) {
        PQfinish(ctl->repl);
        ctl->repl = NULL;
    }
    ctl->streaming = false;
    return why;
}
