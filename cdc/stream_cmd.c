/*
 * stream_cmd.c — `walbridge stream`: the always-on consumer of the
 * replication slot (DESIGN.md, "stream").
 *
 *   walbridge [-c FILE] stream [--until-lsn LSN] [--until-caught-up] [--create-slot]
 *                              [--metrics-listen ADDR:PORT]
 *
 * Setup (config, catalog, state schema, where to start), then sessions of
 * cdc/replication.c in a reconnect loop with decorrelated-jitter backoff.
 * Where to start: the target's applied LSN; without one, the slot's
 * confirmed position (said so); without a slot, stop and point at
 * `walbridge backfill`, unless --create-slot creates one and starts from now.
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT or --until reached; 2 usage,
 * config or catalog error; 3 runtime failure (a change that cannot be
 * applied, no slot, connection lost after reconnect_max_attempts).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "cdc/apply.h"
#include "cdc/metrics.h"
#include "cdc/replication.h"
#include "common/catalog.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"

static volatile sig_atomic_t stream_stop_requested = 0;
static volatile sig_atomic_t stream_hup_received = 0;

static void stream_on_stop_signal(int sig)
{
    (void)sig;
    stream_stop_requested = 1;
}

static void stream_on_hup(int sig)
{
    (void)sig;
    stream_hup_received = 1;
    log_request_reopen();
}

static void stream_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = stream_on_stop_signal; /* no SA_RESTART: select() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = stream_on_hup;
    sigaction(SIGHUP, &sa, NULL);
}

static void stream_usage(FILE *out)
{
    fputs("Usage: walbridge [-c FILE] stream [options]\n\n"
          "Streams changes from the replication slot (wal2json) and applies them to the\n"
          "target, exactly once in effect.  Starts at the applied LSN recorded in the target;\n"
          "without one at the slot's confirmed position.\n\n"
          "Options:\n"
          "  --until-lsn LSN            exit 0 once everything up to LSN is applied\n"
          "  --until-caught-up          exit 0 once the source's current WAL position (read\n"
          "                             at start) is applied\n"
          "  --create-slot              create the slot if it does not exist and start from\n"
          "                             now (changes before that are NOT copied: use backfill)\n"
          "  --metrics-listen ADDR:PORT serve /metrics and /healthz (e.g. 127.0.0.1:9187)\n"
          "  -h, --help                 this text\n\n"
          "Signals: SIGTERM/SIGINT finish or roll back the open batch and exit 0; SIGHUP\n"
          "reopens the log file.\n"
          "Exit status: 0 stopped or target LSN reached, 2 usage/config error, 3 runtime\n"
          "failure (a change that cannot be applied, no slot, connections lost).\n",
          out);
}

typedef struct stream_args {
    wb_lsn until_lsn;
    bool until_caught_up;
    bool create_slot;
    const char *metrics_listen;
} stream_args;

/* Returns -1 to continue, else an exit code. */
static int stream_parse_args(int argc, char **argv, stream_args *args)
{
    static const struct option options[] = {{"until-lsn", required_argument, NULL, 'u'},
                                            {"until-caught-up", no_argument, NULL, 'C'},
                                            {"create-slot", no_argument, NULL, 'S'},
                                            {"metrics-listen", required_argument, NULL, 'm'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    memset(args, 0, sizeof *args);
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'u':
            if (!lsn_parse(optarg, &args->until_lsn) || args->until_lsn == LSN_INVALID) {
                fprintf(stderr,
                        "walbridge stream: --until-lsn: invalid LSN \"%s\" (expected "
                        "e.g. 16/B374D848)\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'C':
            args->until_caught_up = true;
            break;
        case 'S':
            args->create_slot = true;
            break;
        case 'm':
            args->metrics_listen = optarg;
            break;
        case 'h':
            stream_usage(stdout);
            return EXIT_OK;
        default:
            fputs("Try \"walbridge stream --help\".\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "walbridge stream: unexpected argument \"%s\"\n", argv[optind]);
        fputs("Try \"walbridge stream --help\".\n", stderr);
        return EXIT_USAGE;
    }
    if (args->metrics_listen != NULL) {
        struct sockaddr_storage addr;
        socklen_t addrlen;
        char err[256];
        if (!metrics_parse_listen(args->metrics_listen, &addr, &addrlen, err, sizeof err)) {
            fprintf(stderr, "walbridge stream: --metrics-listen: %s\n", err);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ slot */

typedef struct slot_info {
    bool exists;
    wb_lsn confirmed_flush;
} slot_info;

/* Reads the slot from pg_replication_slots; checks plugin and database. */
static int stream_read_slot(PGconn *source, const char *slot, slot_info *info)
{
    const char *params[1] = {slot};
    memset(info, 0, sizeof *info);
    PGresult *res =
        pgconn_query(source, "reading the replication slot",
                     "SELECT plugin, slot_type, database = current_database(), "
                     "confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                     1, params, NULL);
    if (res == NULL)
        return EXIT_RUNTIME;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return EXIT_OK;
    }
    info->exists = true;
    const char *plugin = PQgetvalue(res, 0, 0);
    if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 || strcmp(plugin, "wal2json") != 0 ||
        strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        log_full(LOG_ERROR, NULL,
                 "Use another \"slot\" name in the config, or drop that slot if it is unused.",
                 "replication slot \"%s\" is not a wal2json logical slot of this database "
                 "(type %s, plugin %s)",
                 slot, PQgetvalue(res, 0, 1), plugin[0] ? plugin : "-");
        PQclear(res);
        return EXIT_USAGE;
    }
    if (!PQgetisnull(res, 0, 3))
        (void)lsn_parse(PQgetvalue(res, 0, 3), &info->confirmed_flush);
    PQclear(res);
    return EXIT_OK;
}

/* Logs what slot creation is waiting for (oldest running transaction on the source). */
static void stream_log_slot_wait(PGconn *source, int waited_s)
{
    PGresult *res =
        pgconn_query(source, "looking for running transactions",
                     "SELECT pid, datname, to_char(xact_start, 'YYYY-MM-DD HH24:MI:SS'), "
                     "left(regexp_replace(query, '\\s+', ' ', 'g'), 80) FROM pg_stat_activity "
                     "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
                     "ORDER BY xact_start LIMIT 1",
                     0, NULL, NULL);
    if (res != NULL && PQntuples(res) == 1)
        log_warn("creating the slot: waited %d s for running transactions to finish; oldest: "
                 "pid %s in database %s since %s: %s",
                 waited_s, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                 PQgetvalue(res, 0, 3));
    else
        log_warn("creating the slot: waited %d s for running transactions to finish", waited_s);
    PQclear(res);
}

/* stream_create_slot's result when SIGTERM/SIGINT cancelled it (a clean stop). */
#define STREAM_SETUP_STOPPED (-2)

/*
 * Creates the slot on a replication connection, bounded by
 * slot_create_timeout_s.  Returns an exit code, or STREAM_SETUP_STOPPED when
 * a stop signal cancelled the creation (no slot is left behind).
 */
static int stream_create_slot(const wb_config *cfg, PGconn *source, wb_lsn *consistent)
{
    char err[512];
    PGconn *repl = pgconn_open(cfg->source_dsn, PGCONN_REPLICATION, "source (replication)", 3, err,
                               sizeof err);
    if (repl == NULL)
        return EXIT_RUNTIME;
    strbuf cmd;
    strbuf_init(&cmd);
    strbuf_append(&cmd, "CREATE_REPLICATION_SLOT ");
    pgconn_append_ident(&cmd, cfg->slot);
    strbuf_append(&cmd, " LOGICAL wal2json NOEXPORT_SNAPSHOT");
    int rc = EXIT_RUNTIME;
    if (!PQsendQuery(repl, cmd.data)) {
        log_error("could not create replication slot \"%s\": %s", cfg->slot, PQerrorMessage(repl));
        goto done;
    }
    int64_t started = stream_now_ms(), last_note = started;
    int timeout_s =
        cfg->backfill.slot_create_timeout_s > 0 ? cfg->backfill.slot_create_timeout_s : 300;
    while (PQisBusy(repl)) {
        int64_t now = stream_now_ms();
        if (stream_stop_requested || now - started >= (int64_t)timeout_s * 1000) {
            char errbuf[256];
            PGcancel *cancel = PQgetCancel(repl);
            if (cancel != NULL) {
                (void)PQcancel(cancel, errbuf, sizeof errbuf);
                PQfreeCancel(cancel);
            }
            if (stream_stop_requested) {
                log_info("stopped while creating replication slot \"%s\": no slot was created "
                         "and nothing was applied",
                         cfg->slot);
                rc = STREAM_SETUP_STOPPED;
            } else {
                log_full(LOG_ERROR, NULL,
                         "Finish or cancel the long-running transactions on the source, or "
                         "raise backfill.slot_create_timeout_s.",
                         "creating replication slot \"%s\" timed out after %d s waiting for "
                         "running transactions",
                         cfg->slot, timeout_s);
            }
            goto done;
        }
        if (now - last_note >= 10000) {
            stream_log_slot_wait(source, (int)((now - started) / 1000));
            last_note = now;
        }
        fd_set in;
        FD_ZERO(&in);
        FD_SET(PQsocket(repl), &in);
        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
        if (select(PQsocket(repl) + 1, &in, NULL, NULL, &tv) > 0 && !PQconsumeInput(repl)) {
            log_error("lost the connection while creating the slot: %s", PQerrorMessage(repl));
            goto done;
        }
    }
    PGresult *res = PQgetResult(repl);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        !lsn_parse(PQgetvalue(res, 0, 1), consistent)) {
        log_error("could not create replication slot \"%s\": %s", cfg->slot,
                  PQresultErrorMessage(res));
        PQclear(res);
        goto done;
    }
    PQclear(res);
    while ((res = PQgetResult(repl)) != NULL)
        PQclear(res);
    char at[LSN_TEXT_MAX];
    log_info("created replication slot \"%s\" (wal2json); streaming starts at its consistent "
             "point %s: changes committed before it are not streamed",
             cfg->slot, lsn_format(*consistent, at));
    rc = EXIT_OK;
done:
    strbuf_free(&cmd);
    PQfinish(repl);
    return rc;
}

/* Decides where to start (applied LSN, slot position or a new slot). */
static int stream_find_start(const wb_config *cfg, const stream_args *args, PGconn *source,
                             PGconn *target, wb_lsn *start)
{
    wb_lsn applied = LSN_INVALID;
    bool found = false;
    slot_info slot;
    char at[LSN_TEXT_MAX];
    if (!state_get_applied_lsn(target, cfg->state_schema, cfg->slot, &applied, &found, NULL))
        return EXIT_RUNTIME;
    int rc = stream_read_slot(source, cfg->slot, &slot);
    if (rc != EXIT_OK)
        return rc;
    if (!slot.exists) {
        if (found) {
            log_full(LOG_ERROR,
                     "The target records changes applied up to that LSN, but the slot that "
                     "would supply the rest is gone; changes since then may be missing.",
                     "Run walbridge backfill: it recreates the slot and copies what is missing.",
                     "replication slot \"%s\" does not exist on the source (applied LSN %s)",
                     cfg->slot, lsn_format(applied, at));
            return EXIT_RUNTIME;
        }
        if (!args->create_slot) {
            log_full(LOG_ERROR, NULL,
                     "Run walbridge backfill first (it creates the slot and copies existing "
                     "rows), or pass --create-slot to start streaming from now.",
                     "replication slot \"%s\" does not exist on the source and no applied LSN "
                     "is recorded in the target",
                     cfg->slot);
            return EXIT_RUNTIME;
        }
        return stream_create_slot(cfg, source, start);
    }
    if (found) {
        *start = applied;
        log_info("resuming at the applied LSN %s recorded in the target", lsn_format(applied, at));
        return EXIT_OK;
    }
    *start = slot.confirmed_flush;
    log_info("no applied LSN recorded in the target yet: starting at slot \"%s\"'s confirmed "
             "position %s",
             cfg->slot, lsn_format(*start, at));
    return EXIT_OK;
}

static int stream_current_wal_lsn(PGconn *source, wb_lsn *out)
{
    PGresult *res = pgconn_query(source, "reading the source WAL position",
                                 "SELECT pg_current_wal_lsn()::text", 0, NULL, NULL);
    if (res == NULL)
        return EXIT_RUNTIME;
    bool ok = lsn_parse(PQgetvalue(res, 0, 0), out);
    PQclear(res);
    return ok ? EXIT_OK : EXIT_RUNTIME;
}

/* ------------------------------------------------------------ consumer lock */

/*
 * Takes a session advisory lock on the target for this slot, waiting while
 * another session holds it.  After a kill -9, the previous process's target
 * backend may still be executing statements it already received (pipelined
 * changes and even the COMMIT of a batch); reading the applied LSN before that
 * session is gone would apply those transactions twice.  The lock is released
 * when that backend exits, so waiting for it closes the race.  Returns false
 * on a query failure (logged) or when stopped (SIGTERM/SIGINT) while waiting
 * (*stopped set; nothing was applied, so that is a clean stop).
 */
static bool stream_lock_target(PGconn *target, const wb_config *cfg, bool *stopped)
{
    *stopped = false;
    int64_t started = stream_now_ms(), last_note = 0;
    for (;;) {
        bool got = false;
        if (!state_try_stream_lock(target, cfg->slot, &got))
            return false;
        if (got)
            return true;
        int64_t now = stream_now_ms();
        if (last_note == 0 || now - last_note >= 10000) {
            log_warn("waiting for the stream lock of slot \"%s\" on the target: a walbridge "
                     "backfill runs (the stream starts once it ends), another stream runs, or "
                     "the session of a killed one is still finishing (%d s)",
                     cfg->slot, (int)((now - started) / 1000));
            last_note = now;
        }
        if (stream_stop_requested) {
            log_info("stopped while waiting for the stream lock of slot \"%s\": nothing was "
                     "applied",
                     cfg->slot);
            *stopped = true;
            return false;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/* ------------------------------------------------------------ setup */

/*
 * Refuses to start while backfill --defer-indexes has dropped indexes it has not
 * built again: the upserts need the key indexes, and a half-loaded table would
 * take the stream's rows without its constraints.
 */
static bool stream_no_deferred_indexes(PGconn *target, const wb_config *cfg)
{
    long pending = 0;
    strbuf tables;
    strbuf_init(&tables);
    bool ok = state_deferred_pending(target, cfg->state_schema, &pending, &tables);
    if (ok && pending > 0) {
        log_full(LOG_ERROR, NULL,
                 "Run `walbridge backfill --resume`: it finishes the copy and builds them.",
                 "stream refuses to start: backfill --defer-indexes has not built %ld indexes, "
                 "constraints or foreign keys of %s again yet (%s.deferred_ddl)",
                 pending, tables.data, cfg->state_schema);
        ok = false;
    }
    strbuf_free(&tables);
    return ok;
}

typedef struct stream_run {
    wb_config cfg;
    catalog cat;
    bool cat_loaded;
    PGconn *target;
    applier *app;
    stream_metrics metrics;
    bool metrics_ready;
    metrics_server *server;
    bool stopped;     /* SIGTERM/SIGINT during setup (stream lock wait, slot creation) */
    bool lock_held;   /* backfill's catch-up: its own session holds the stream lock */
    bool until_exact; /* stop at the until LSN exactly (replication.h, until_exact) */
} stream_run;

static int stream_prepare(stream_run *run, const stream_args *args, wb_lsn *start, wb_lsn *until)
{
    char err[512];
    run->target = pgconn_open(run->cfg.target_dsn, PGCONN_TARGET, "target", 3, err, sizeof err);
    if (run->target == NULL)
        return EXIT_RUNTIME;
    PGconn *source = pgconn_open(run->cfg.source_dsn, PGCONN_SOURCE, "source", 3, err, sizeof err);
    if (source == NULL)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    if (!run->lock_held && !stream_lock_target(run->target, &run->cfg, &run->stopped)) {
        if (run->stopped)
            rc = EXIT_OK;
        goto done;
    }
    if (!state_ensure(run->target, run->cfg.state_schema) ||
        !stream_no_deferred_indexes(run->target, &run->cfg))
        goto done;
    if (!catalog_load(&run->cfg, source, run->target, &run->cat))
        goto done;
    run->cat_loaded = true;
    if (run->cat.nproblems > 0)
        catalog_log_problems(&run->cat);
    if (catalog_error_count(&run->cat) > 0) {
        log_error("stream refuses to start: %zu catalog problem(s) above (run walbridge check)",
                  catalog_error_count(&run->cat));
        rc = EXIT_USAGE;
        goto done;
    }
    rc = stream_find_start(&run->cfg, args, source, run->target, start);
    if (rc == STREAM_SETUP_STOPPED) {
        run->stopped = true;
        rc = EXIT_OK;
    }
    if (rc != EXIT_OK || run->stopped)
        goto done;
    *until = args->until_lsn;
    if (args->until_caught_up) {
        wb_lsn current;
        rc = stream_current_wal_lsn(source, &current);
        if (rc != EXIT_OK)
            goto done;
        char at[LSN_TEXT_MAX];
        log_info("--until-caught-up: will stop once the source's WAL position %s is applied",
                 lsn_format(current, at));
        if (current > *until)
            *until = current;
    }
    run->app = applier_new(&run->cfg, &run->cat, run->target);
    rc = run->app != NULL ? EXIT_OK : EXIT_RUNTIME;
done:
    PQfinish(source);
    return rc;
}

static int stream_start_metrics(stream_run *run, const char *listen)
{
    char err[256];
    if (!metrics_init(&run->metrics, &run->cfg))
        return EXIT_RUNTIME;
    run->metrics_ready = true;
    if (listen == NULL)
        return EXIT_OK;
    run->server = metrics_server_start(listen, &run->metrics, err, sizeof err);
    if (run->server == NULL) {
        log_error("--metrics-listen %s: %s", listen, err);
        return EXIT_RUNTIME;
    }
    log_info("serving /metrics and /healthz on %s", listen);
    return EXIT_OK;
}

/* Replaces a lost target connection and its applier; false when not reachable yet. */
static bool stream_reopen_target(stream_run *run)
{
    char err[512];
    if (run->app != NULL)
        applier_free(run->app);
    run->app = NULL;
    if (run->target != NULL)
        PQfinish(run->target);
    run->target = pgconn_open(run->cfg.target_dsn, PGCONN_TARGET, "target", 1, err, sizeof err);
    bool stopped;
    if (run->target == NULL ||
        (!run->lock_held && !stream_lock_target(run->target, &run->cfg, &stopped)))
        return false; /* when stopped, the loop sees the stop flag next */
    run->app = applier_new(&run->cfg, &run->cat, run->target);
    return run->app != NULL;
}

/* The session/reconnect loop.  Returns the exit code. */
static int stream_loop(stream_run *run, wb_lsn start, wb_lsn until)
{
    stream_ctl ctl;
    int prev_ms = 0, attempts = 0, rc = EXIT_OK;
    const char *cause = NULL;
    stream_ctl_init(&ctl, &run->cfg);
    ctl.stop_flag = &stream_stop_requested;
    ctl.hup_flag = &stream_hup_received;
    ctl.metrics = run->metrics_ready ? &run->metrics : NULL;
    ctl.start_lsn = start;
    ctl.until_lsn = until;
    ctl.until_exact = run->until_exact;
    for (;;) {
        if (stream_stop_requested)
            break;
        if (run->app == NULL || PQstatus(run->target) != CONNECTION_OK) {
            if (!stream_reopen_target(run)) {
                cause = "target unreachable";
                goto backoff;
            }
            /* The new applier read the stored LSN; forget what an earlier one stored. */
            ctl.stored_idle_lsn = LSN_INVALID;
        }
        ctl.app = run->app;
        ctl.target = run->target;
        wb_lsn durable_before = applier_durable_lsn(run->app);
        int64_t session_start = stream_now_ms();
        stream_stop_reason why = stream_session(&ctl);
        if (why == STREAM_STOP_SIGNAL || why == STREAM_STOP_UNTIL || stream_stop_requested)
            break;
        if (why == STREAM_STOP_FATAL) {
            rc = EXIT_RUNTIME;
            break;
        }
        if (why == STREAM_STOP_TARGET_LOST && run->app != NULL) {
            applier_free(run->app);
            run->app = NULL;
        }
        cause = stream_stop_reason_name(why);
        /* A session that made progress resets the attempt count and the backoff. */
        if ((run->app != NULL && applier_durable_lsn(run->app) > durable_before) ||
            stream_now_ms() - session_start > 60000) {
            attempts = 0;
            prev_ms = 0;
        }
    backoff:
        if (stream_stop_requested)
            break; /* a stop during reconnect is a clean stop, not a failure */
        attempts++;
        if (run->cfg.stream.reconnect_max_attempts > 0 &&
            attempts > run->cfg.stream.reconnect_max_attempts) {
            log_error("giving up after %d reconnect attempts (last cause: %s)", attempts - 1,
                      cause);
            rc = EXIT_RUNTIME;
            break;
        }
        if (ctl.metrics != NULL)
            metrics_record_reconnect(ctl.metrics);
        int cap_ms =
            (run->cfg.stream.reconnect_max_s > 0 ? run->cfg.stream.reconnect_max_s : 60) * 1000;
        int waited = pgconn_backoff_sleep(&prev_ms, 250, cap_ms);
        log_warn("reconnecting (attempt %d, cause: %s) after waiting %d ms", attempts, cause,
                 waited);
    }
    stream_ctl_close(&ctl);
    return rc;
}

/* Frees what stream_prepare and stream_loop left in run (not run->cfg). */
static void stream_run_free(stream_run *run)
{
    metrics_server_stop(run->server);
    if (run->metrics_ready)
        metrics_free(&run->metrics);
    if (run->app != NULL)
        applier_free(run->app);
    if (run->target != NULL)
        PQfinish(run->target);
    if (run->cat_loaded)
        catalog_free(&run->cat);
}

int stream_catch_up(const wb_config *cfg, wb_lsn until, wb_lsn *applied)
{
    stream_args args = {.until_lsn = until};
    stream_run run;
    memset(&run, 0, sizeof run);
    run.cfg = *cfg; /* a shallow copy: borrowed, never freed here */
    if (run.cfg.stream.reconnect_max_attempts <= 0 || run.cfg.stream.reconnect_max_attempts > 5)
        run.cfg.stream.reconnect_max_attempts = 5; /* backfill waits: do not retry forever */
    run.lock_held = true;
    run.until_exact = true;
    wb_lsn start = LSN_INVALID, stop = LSN_INVALID;
    *applied = LSN_INVALID;
    int rc = stream_prepare(&run, &args, &start, &stop);
    if (rc == EXIT_OK && start > until) {
        char s1[LSN_TEXT_MAX], s2[LSN_TEXT_MAX];
        log_full(LOG_ERROR, NULL,
                 "A stream applied past the snapshot meanwhile; run backfill again, it takes "
                 "a new snapshot.",
                 "the stream's applied LSN %s is past the snapshot's consistent point %s",
                 lsn_format(start, s1), lsn_format(until, s2));
        rc = EXIT_RUNTIME;
    }
    if (rc == EXIT_OK && !run.stopped)
        rc = stream_loop(&run, start, stop);
    bool found = false;
    if (rc == EXIT_OK && (run.target == NULL ||
                          !state_get_applied_lsn(run.target, run.cfg.state_schema, run.cfg.slot,
                                                 applied, &found, NULL) ||
                          !found))
        rc = EXIT_RUNTIME;
    stream_run_free(&run);
    return rc;
}

int stream_main(const char *config_path, int argc, char **argv)
{
    stream_args args;
    stream_run run;
    wb_lsn start = LSN_INVALID, until = LSN_INVALID;
    int rc = stream_parse_args(argc, argv, &args);
    if (rc >= 0)
        return rc;
    memset(&run, 0, sizeof run);
    rc = cli_setup(config_path, &run.cfg);
    if (rc != EXIT_OK)
        return rc;
    stream_install_signals();
    rc = stream_prepare(&run, &args, &start, &until);
    if (rc == EXIT_OK && !run.stopped)
        rc = stream_start_metrics(&run, args.metrics_listen);
    if (rc == EXIT_OK && !run.stopped)
        rc = stream_loop(&run, start, until);
    stream_run_free(&run);
    log_info("walbridge stream exiting with status %d", rc);
    log_close();
    config_free(&run.cfg);
    return rc;
}
