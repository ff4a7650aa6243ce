/*
 * health_cmd.c — `walbridge health`: reads the slot and its settings on the
 * source and the applied LSN in the target, then prints the verdict of
 * health.c as text, JSON or Prometheus text and exits with the
 * monitoring-plugin code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 *
 * It never writes anything and never crashes on a dead database: a source
 * it cannot reach is CRITICAL (the slot's state is unknown and WAL may be
 * piling up), a target it cannot reach is WARNING (the source figures are
 * still judged).  Bad options, bad threshold units and config errors are
 * UNKNOWN (exit 3) with the reason on the first line.  Log messages go to
 * stderr only (not to the configured log file) so cron/Nagios runs do not
 * fill the stream's log.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/health.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"
#include "common/strbuf.h"

#define HEALTH_STATEMENT_TIMEOUT "SET statement_timeout = '15s'"

static void print_help(FILE *out)
{
    fputs("Usage: walbridge [-c FILE] health [options]\n\n"
          "Checks the replication slot on the source and the applied LSN in the target.\n"
          "Exit codes (monitoring-plugin convention): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n"
          "The first line is \"WALBRIDGE <STATUS> - <summary> | <perfdata>\".\n\n"
          "Options:\n"
          "  --format text|json|prometheus   output format (default text)\n"
          "  --warn-retained SIZE   retained WAL (current - restart_lsn) warning (default 512MB)\n"
          "  --crit-retained SIZE   ... critical (default 2GB)\n"
          "  --warn-lag SIZE        confirmed lag (current - confirmed_flush) warning (256MB)\n"
          "  --crit-lag SIZE        ... critical (default 1GB)\n"
          "  --warn-stale DUR       applied LSN age while WAL is pending, warning (5min)\n"
          "  --crit-stale DUR       ... critical (default 30min)\n"
          "  --warn-inactive DUR    slot inactive for longer than this (PostgreSQL 17+), (5min)\n"
          "  --crit-inactive DUR    ... critical (default 30min)\n"
          "  --help                 this text\n\n"
          "SIZE: number with B, kB, MB, GB or TB (1024-based), e.g. 256MB; 0 disables.\n"
          "DUR: number with ms, s, min, h or d, e.g. 30s, 5min; \"off\" disables.\n",
          out);
}

/* Prints "WALBRIDGE UNKNOWN - why" and returns 3. */
static int unknown(const char *why)
{
    printf("WALBRIDGE UNKNOWN - %s\n", why);
    return HEALTH_UNKNOWN;
}

typedef enum option_id {
    OPT_FORMAT = 1000,
    OPT_WARN_RETAINED,
    OPT_CRIT_RETAINED,
    OPT_WARN_LAG,
    OPT_CRIT_LAG,
    OPT_WARN_STALE,
    OPT_CRIT_STALE,
    OPT_WARN_INACTIVE,
    OPT_CRIT_INACTIVE,
    OPT_HELP
} option_id;

static bool parse_size_option(const char *name, const char *value, uint64_t *out, char *err,
                              size_t errlen)
{
    char why[256];
    if (health_parse_size(value, out, why, sizeof why))
        return true;
    snprintf(err, errlen, "--%s: %s", name, why);
    return false;
}

static bool parse_duration_option(const char *name, const char *value, double *out, char *err,
                                  size_t errlen)
{
    char why[256];
    if (strcmp(value, "off") == 0) {
        *out = -1;
        return true;
    }
    if (health_parse_duration(value, out, why, sizeof why))
        return true;
    snprintf(err, errlen, "--%s: %s", name, why);
    return false;
}

/* Parses argv; returns -1 to go on, else the exit code (help printed or error reported). */
static int parse_options(int argc, char **argv, health_format *format, health_thresholds *t)
{
    static const struct option options[] = {
        {"format", required_argument, NULL, OPT_FORMAT},
        {"warn-retained", required_argument, NULL, OPT_WARN_RETAINED},
        {"crit-retained", required_argument, NULL, OPT_CRIT_RETAINED},
        {"warn-lag", required_argument, NULL, OPT_WARN_LAG},
        {"crit-lag", required_argument, NULL, OPT_CRIT_LAG},
        {"warn-stale", required_argument, NULL, OPT_WARN_STALE},
        {"crit-stale", required_argument, NULL, OPT_CRIT_STALE},
        {"warn-inactive", required_argument, NULL, OPT_WARN_INACTIVE},
        {"crit-inactive", required_argument, NULL, OPT_CRIT_INACTIVE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    char err[512];
    int opt, index = 0;
    bool ok = true;

    opterr = 0;
    while (ok && (opt = getopt_long(argc, argv, "+h", options, &index)) != -1) {
        const char *name = NULL;
        for (const struct option *o = options; o->name != NULL; o++)
            if (o->val == opt)
                name = o->name;
        switch (opt) {
        case OPT_FORMAT:
            if (strcmp(optarg, "text") == 0)
                *format = HEALTH_TEXT;
            else if (strcmp(optarg, "json") == 0)
                *format = HEALTH_JSON;
            else if (strcmp(optarg, "prometheus") == 0)
                *format = HEALTH_PROMETHEUS;
            else {
                snprintf(err, sizeof err,
                         "--format: unknown format \"%s\" (expected text, json or prometheus)",
                         optarg);
                ok = false;
            }
            break;
        case OPT_WARN_RETAINED:
            ok = parse_size_option(name, optarg, &t->warn_retained, err, sizeof err);
            break;
        case OPT_CRIT_RETAINED:
            ok = parse_size_option(name, optarg, &t->crit_retained, err, sizeof err);
            break;
        case OPT_WARN_LAG:
            ok = parse_size_option(name, optarg, &t->warn_lag, err, sizeof err);
            break;
        case OPT_CRIT_LAG:
            ok = parse_size_option(name, optarg, &t->crit_lag, err, sizeof err);
            break;
        case OPT_WARN_STALE:
            ok = parse_duration_option(name, optarg, &t->warn_stale, err, sizeof err);
            break;
        case OPT_CRIT_STALE:
            ok = parse_duration_option(name, optarg, &t->crit_stale, err, sizeof err);
            break;
        case OPT_WARN_INACTIVE:
            ok = parse_duration_option(name, optarg, &t->warn_inactive, err, sizeof err);
            break;
        case OPT_CRIT_INACTIVE:
            ok = parse_duration_option(name, optarg, &t->crit_inactive, err, sizeof err);
            break;
        case OPT_HELP:
        case 'h':
            print_help(stdout);
            return EXIT_OK;
        default:
            if (optopt != 0 && optopt >= OPT_FORMAT)
                snprintf(err, sizeof err, "option \"%s\" needs a value", argv[optind - 1]);
            else
                snprintf(err, sizeof err, "unknown option \"%s\" (see walbridge health --help)",
                         argv[optind - 1]);
            ok = false;
        }
    }
    if (ok && optind < argc) {
        snprintf(err, sizeof err, "unexpected argument \"%s\"", argv[optind]);
        ok = false;
    }
    if (ok && t->warn_retained > 0 && t->crit_retained > 0 && t->warn_retained > t->crit_retained) {
        snprintf(err, sizeof err, "--warn-retained is larger than --crit-retained");
        ok = false;
    }
    if (ok && t->warn_lag > 0 && t->crit_lag > 0 && t->warn_lag > t->crit_lag) {
        snprintf(err, sizeof err, "--warn-lag is larger than --crit-lag");
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, "walbridge health: %s\n", err);
        return unknown(err);
    }
    return -1;
}

/*
 * Writes "what: <first line of the connection's last error>" into buf, without
 * the "ERROR:  " severity prefix (the rest of a server error is LINE/context).
 */
static void conn_error(PGconn *conn, const char *what, char *buf, size_t len)
{
    char *red = log_redact_text(PQerrorMessage(conn));
    char *msg = red;
    static const char *const prefixes[] = {"ERROR:  ", "FATAL:  "};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            msg += strlen(prefixes[i]);
    size_t n = strcspn(msg, "\n");
    while (n > 0 && msg[n - 1] == ' ')
        n--;
    if (n == 0)
        snprintf(buf, len, "%s failed", what);
    else
        snprintf(buf, len, "%s: %.*s", what, (int)n, msg);
    free(red);
}

static PGresult *source_query(PGconn *conn, health_facts *f, const char *what, const char *sql,
                              int nparams, const char *const *params)
{
    PGresult *res = pgconn_query(conn, what, sql, nparams, params, NULL);
    if (res == NULL) {
        conn_error(conn, what, f->source_error, sizeof f->source_error);
        f->source_ok = false;
    }
    return res;
}

static bool read_source_basics(PGconn *conn, health_facts *f, char *dbname, size_t dblen)
{
    PGresult *res = source_query(conn, f, "reading the source's WAL position",
                                 "SELECT current_setting('server_version_num')::int,"
                                 " pg_current_wal_lsn()::text, current_database(),"
                                 " (SELECT count(*) FROM pg_catalog.pg_replication_slots)",
                                 0, NULL);
    if (res == NULL)
        return false;
    f->server_version_num = atoi(PQgetvalue(res, 0, 0));
    lsn_parse(PQgetvalue(res, 0, 1), &f->current_lsn);
    snprintf(dbname, dblen, "%s", PQgetvalue(res, 0, 2));
    f->slots_used = atoi(PQgetvalue(res, 0, 3));
    PQclear(res);

    res = source_query(conn, f, "reading the source's settings",
                       "SELECT name, setting, coalesce(unit, '') FROM pg_catalog.pg_settings"
                       " WHERE name IN ('wal_level', 'max_slot_wal_keep_size',"
                       " 'max_replication_slots', 'wal_sender_timeout',"
                       " 'output_plugin_libraries')",
                       0, NULL);
    if (res == NULL)
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        const char *setting = PQgetvalue(res, i, 1);
        const char *unit = PQgetvalue(res, i, 2);
        if (strcmp(name, "wal_level") == 0)
            snprintf(f->wal_level, sizeof f->wal_level, "%s", setting);
        else if (strcmp(name, "max_slot_wal_keep_size") == 0)
            f->has_max_slot_wal_keep_size =
                health_setting_bytes(setting, unit, &f->max_slot_wal_keep_size);
        else if (strcmp(name, "max_replication_slots") == 0)
            f->max_replication_slots = atoi(setting);
        else if (strcmp(name, "wal_sender_timeout") == 0)
            f->has_wal_sender_timeout =
                health_setting_seconds(setting, unit, &f->wal_sender_timeout_s);
        else if (strcmp(name, "output_plugin_libraries") == 0) {
            f->has_output_plugin_libraries = true;
            snprintf(f->output_plugin_libraries, sizeof f->output_plugin_libraries, "%s", setting);
        }
    }
    PQclear(res);
    return true;
}

/* Which of the newer pg_replication_slots columns this server has. */
typedef struct slot_columns {
    bool conflicting, inactive_since, invalidation_reason;
} slot_columns;

static bool read_slot_columns(PGconn *conn, health_facts *f, slot_columns *cols)
{
    PGresult *res = source_query(
        conn, f, "inspecting pg_replication_slots",
        "SELECT attname FROM pg_catalog.pg_attribute"
        " WHERE attrelid = 'pg_catalog.pg_replication_slots'::regclass AND NOT attisdropped"
        " AND attname IN ('conflicting', 'inactive_since', 'invalidation_reason')",
        0, NULL);
    if (res == NULL)
        return false;
    memset(cols, 0, sizeof *cols);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        cols->conflicting |= strcmp(name, "conflicting") == 0;
        cols->inactive_since |= strcmp(name, "inactive_since") == 0;
        cols->invalidation_reason |= strcmp(name, "invalidation_reason") == 0;
    }
    PQclear(res);
    return true;
}

static bool read_slot(PGconn *conn, health_facts *f, const char *dbname)
{
    slot_columns cols;
    if (!read_slot_columns(conn, f, &cols))
        return false;
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT coalesce(plugin, ''), slot_type, coalesce(database, ''),"
                        " active, coalesce(active_pid, 0), coalesce(wal_status, ''),"
                        " safe_wal_size, restart_lsn::text, confirmed_flush_lsn::text,"
                        " age(catalog_xmin), pg_current_wal_lsn()::text, ");
    strbuf_append(&sql, cols.conflicting ? "conflicting, " : "NULL::bool, ");
    strbuf_append(&sql, cols.inactive_since ? "extract(epoch FROM now() - inactive_since)::float8, "
                                            : "NULL::float8, ");
    strbuf_append(&sql, cols.invalidation_reason ? "invalidation_reason::text" : "NULL::text");
    strbuf_append(&sql, " FROM pg_catalog.pg_replication_slots WHERE slot_name = $1");
    const char *params[1] = {f->slot};
    PGresult *res = source_query(conn, f, "reading the replication slot", sql.data, 1, params);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    f->slot_found = PQntuples(res) > 0;
    if (f->slot_found) {
        snprintf(f->plugin, sizeof f->plugin, "%s", PQgetvalue(res, 0, 0));
        snprintf(f->slot_type, sizeof f->slot_type, "%s", PQgetvalue(res, 0, 1));
        snprintf(f->slot_database, sizeof f->slot_database, "%s", PQgetvalue(res, 0, 2));
        f->slot_database_matches = strcmp(f->slot_database, dbname) == 0;
        f->active = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
        f->active_pid = atoi(PQgetvalue(res, 0, 4));
        snprintf(f->wal_status, sizeof f->wal_status, "%s", PQgetvalue(res, 0, 5));
        f->has_safe_wal_size = !PQgetisnull(res, 0, 6);
        f->safe_wal_size = f->has_safe_wal_size ? strtoll(PQgetvalue(res, 0, 6), NULL, 10) : 0;
        if (!PQgetisnull(res, 0, 7))
            lsn_parse(PQgetvalue(res, 0, 7), &f->restart_lsn);
        if (!PQgetisnull(res, 0, 8))
            lsn_parse(PQgetvalue(res, 0, 8), &f->confirmed_flush_lsn);
        f->has_catalog_xmin_age = !PQgetisnull(res, 0, 9);
        f->catalog_xmin_age =
            f->has_catalog_xmin_age ? strtoll(PQgetvalue(res, 0, 9), NULL, 10) : 0;
        lsn_parse(PQgetvalue(res, 0, 10), &f->current_lsn);
        f->has_conflicting = !PQgetisnull(res, 0, 11);
        f->conflicting = strcmp(PQgetvalue(res, 0, 11), "t") == 0;
        f->has_inactive_since = !PQgetisnull(res, 0, 12);
        f->inactive_s = f->has_inactive_since ? strtod(PQgetvalue(res, 0, 12), NULL) : 0;
        f->has_invalidation_reason = !PQgetisnull(res, 0, 13);
        snprintf(f->invalidation_reason, sizeof f->invalidation_reason, "%s",
                 PQgetvalue(res, 0, 13));
    }
    PQclear(res);
    return true;
}

static bool read_slot_activity(PGconn *conn, health_facts *f)
{
    if (f->active && f->active_pid > 0) {
        char pid[16];
        snprintf(pid, sizeof pid, "%d", f->active_pid);
        const char *params[1] = {pid};
        PGresult *res = source_query(conn, f, "reading pg_stat_replication",
                                     "SELECT coalesce(state, ''),"
                                     " extract(epoch FROM now() - reply_time)::float8"
                                     " FROM pg_catalog.pg_stat_replication WHERE pid = $1::int",
                                     1, params);
        if (res == NULL)
            return false;
        f->walsender_found = PQntuples(res) > 0;
        if (f->walsender_found) {
            snprintf(f->walsender_state, sizeof f->walsender_state, "%s", PQgetvalue(res, 0, 0));
            f->has_reply_age = !PQgetisnull(res, 0, 1);
            f->reply_age_s = f->has_reply_age ? strtod(PQgetvalue(res, 0, 1), NULL) : 0;
        }
        PQclear(res);
    }
    if (f->server_version_num < 140000)
        return true;
    const char *params[1] = {f->slot};
    PGresult *res = source_query(conn, f, "reading pg_stat_replication_slots",
                                 "SELECT spill_txns, spill_count, spill_bytes, stream_txns,"
                                 " stream_count, stream_bytes, total_txns, total_bytes"
                                 " FROM pg_catalog.pg_stat_replication_slots"
                                 " WHERE slot_name = $1",
                                 1, params);
    if (res == NULL)
        return false;
    f->has_spill = PQntuples(res) > 0;
    if (f->has_spill) {
        int64_t *fields[] = {&f->spill_txns,   &f->spill_count,  &f->spill_bytes, &f->stream_txns,
                             &f->stream_count, &f->stream_bytes, &f->total_txns,  &f->total_bytes};
        for (int i = 0; i < 8; i++)
            *fields[i] = strtoll(PQgetvalue(res, 0, i), NULL, 10);
    }
    PQclear(res);
    return true;
}

static void gather_source(const wb_config *cfg, health_facts *f)
{
    char err[HEALTH_TEXT_LARGE];
    char dbname[HEALTH_TEXT_SMALL];
    PGconn *conn = pgconn_open(cfg->source_dsn, PGCONN_SOURCE, "source", 1, err, sizeof err);
    if (conn == NULL) {
        snprintf(f->source_error, sizeof f->source_error, "%s", err);
        return;
    }
    f->source_ok = true;
    f->source_connected = true;
    if (pgconn_exec(conn, "source: statement_timeout", HEALTH_STATEMENT_TIMEOUT) &&
        read_source_basics(conn, f, dbname, sizeof dbname) && read_slot(conn, f, dbname))
        read_slot_activity(conn, f);
    else if (f->source_ok)
        conn_error(conn, "setting statement_timeout", f->source_error, sizeof f->source_error);
    if (f->source_error[0] != '\0')
        f->source_ok = false;
    PQfinish(conn);
}

static void gather_target(const wb_config *cfg, health_facts *f)
{
    char err[HEALTH_TEXT_LARGE];
    PGconn *conn = pgconn_open(cfg->target_dsn, PGCONN_TARGET, "target", 1, err, sizeof err);
    if (conn == NULL) {
        snprintf(f->target_error, sizeof f->target_error, "%s", err);
        return;
    }
    f->target_connected = true;
    if (pgconn_exec(conn, "target: statement_timeout", HEALTH_STATEMENT_TIMEOUT) &&
        state_table_exists(conn, cfg->state_schema, "stream_progress", &f->state_exists))
        f->target_ok = state_get_applied_lsn(conn, cfg->state_schema, cfg->slot, &f->applied_lsn,
                                             &f->applied_found, &f->applied_age_s);
    if (!f->target_ok)
        conn_error(conn, "reading the applied LSN", f->target_error, sizeof f->target_error);
    PQfinish(conn);
}

int health_main(const char *config_path, int argc, char **argv)
{
    health_format format = HEALTH_TEXT;
    health_thresholds thresholds;
    health_thresholds_default(&thresholds);
    int rc = parse_options(argc, argv, &format, &thresholds);
    if (rc >= 0)
        return rc;

    wb_config cfg;
    char err[1024];
    if (!config_load(config_default_path(config_path), &cfg, err, sizeof err)) {
        fprintf(stderr, "walbridge health: %s\n", err);
        return unknown(err);
    }
    log_options lo = {.file = NULL, .to_stderr = true, .level = LOG_WARN, .format = cfg.log_format};
    if (cfg.log_level > LOG_WARN)
        lo.level = cfg.log_level;
    if (!log_open(&lo, err, sizeof err)) {
        config_free(&cfg);
        return unknown(err);
    }
    cli_warn_file_secrets(cfg.path);

    health_facts facts;
    health_facts_init(&facts, cfg.slot, cfg.state_schema);
    gather_source(&cfg, &facts);
    gather_target(&cfg, &facts);

    health_verdict verdict;
    health_evaluate(&facts, &thresholds, &verdict);
    strbuf out;
    strbuf_init(&out);
    health_render(&facts, &thresholds, &verdict, format, &out);
    fputs(out.data, stdout);
    fflush(stdout);
    strbuf_free(&out);
    config_free(&cfg);
    log_close();
    return (int)verdict.status;
}
