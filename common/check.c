/*
 * check.c — `walbridge [-c FILE] check [--format text|json]`: validates the
 * config against the live source and target, without writing anything that
 * outlives the run, and prints the plan.
 *
 * Order: the config is loaded and validated first (exit 2 on any mistake,
 * before a connection is attempted; a DSN on port 6543 — Supabase's
 * transaction-mode pooler — is such a mistake).  Then both sides are
 * connected (exit 3 naming the side that failed, DSN redacted), probed
 * (check_probe.c), and the catalogs compared (catalog.c).  The report and
 * plan are printed (check_report.c); exit 1 when any ERROR was found, else 0.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/catalog.h"
#include "common/check_report.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "common/pgconn.h"

#define CHECK_CONNECT_ATTEMPTS 2

static void print_help(FILE *out)
{
    fputs("Usage: walbridge [-c FILE] check [--format text|json]\n\n"
          "Validates the config against the live source and target and prints the plan:\n"
          "tables in processing order, key mapping, reference remaps, skipped columns.\n"
          "Nothing is written (a temporary replication slot, which vanishes at disconnect,\n"
          "proves that wal2json loads on the source).\n\n"
          "Options:\n"
          "  --format text|json   output format (default text)\n"
          "  --help               this text\n\n"
          "Exit codes: 0 ready (warnings allowed), 1 a problem was found (ERROR),\n"
          "2 usage or config error (including a target on port 6543, Supabase's\n"
          "transaction-mode pooler), 3 a database could not be reached.\n",
          out);
}

/* ---- the command ------------------------------------------------------- */

typedef enum check_format { CHECK_TEXT, CHECK_JSON } check_format;

/* One option (cli_command.on_option); ctx is the check_format. */
static bool on_option(int opt, const char *arg, void *ctx)
{
    check_format *format = ctx;
    if (opt != 'f')
        return true;
    if (strcmp(arg, "text") == 0)
        *format = CHECK_TEXT;
    else if (strcmp(arg, "json") == 0)
        *format = CHECK_JSON;
    else {
        fprintf(stderr, "walbridge check: --format: expected text or json, got \"%s\"\n", arg);
        return false;
    }
    return true;
}

static const struct option check_options[] = {
    {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
static const cli_command check_command = {"check", check_options, print_help, on_option};

/* Config, log and pooler checks: everything that can fail before a connection. */
static int setup(const char *config_path, wb_config *cfg)
{
    /* Config errors exit 2 here; a world-readable file with a password is warned about. */
    int rc = cli_setup(config_path, cfg);
    if (rc != EXIT_OK)
        return rc;
    /*
     * Check's report is on stdout, so the log goes to the file only; without a
     * file, stderr gets warnings and errors only.
     */
    char err[1024];
    log_options lo = {.file = cfg->log_file,
                      .to_stderr = cfg->log_file == NULL,
                      .level = cfg->log_file == NULL && cfg->log_level < LOG_WARN ? LOG_WARN
                                                                                  : cfg->log_level,
                      .format = cfg->log_format};
    if (!log_open(&lo, err, sizeof err)) {
        fprintf(stderr, "walbridge check: %s: log.file: %s\n", cfg->path, err);
        log_close();
        config_free(cfg);
        return EXIT_USAGE;
    }
    const char *sides[2] = {"source", "target"};
    const char *dsns[2] = {cfg->source_dsn, cfg->target_dsn};
    for (int i = 0; i < 2; i++) {
        if (pgconn_is_transaction_pooler(dsns[i], err, sizeof err)) {
            fprintf(stderr, "walbridge check: %s: %s.dsn: %s\n", cfg->path, sides[i], err);
            log_error("%s: %s.dsn: %s", cfg->path, sides[i], err);
            log_close();
            config_free(cfg);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/* Prints the last libpq error of conn (redacted) for a failed probe. */
static int probe_failed(const char *side, PGconn *conn, const wb_config *cfg)
{
    if (cfg->log_file == NULL)
        return EXIT_RUNTIME; /* the logger has already said why on stderr */
    char *why = log_redact_text(PQerrorMessage(conn));
    why[strcspn(why, "\n")] = '\0';
    fprintf(stderr, "walbridge check: a query on the %s failed: %s\n", side,
            why[0] != '\0' ? why : "see the log");
    free(why);
    return EXIT_RUNTIME;
}

/* Records every finding and catalog problem in the log file. */
static void log_findings(const check_report *r, const catalog *cat)
{
    for (size_t i = 0; i < r->nfindings; i++) {
        const catalog_problem *p = &r->findings[i];
        log_full(p->severity == CATALOG_ERROR ? LOG_ERROR : LOG_WARN, NULL, p->hint, "check: %s",
                 p->message);
    }
    catalog_log_problems(cat);
}

static int run_checks(const wb_config *cfg, PGconn *source, PGconn *target, check_format format)
{
    check_report report;
    check_report_init(&report);
    catalog cat;
    memset(&cat, 0, sizeof cat);
    int rc = -1;
    if (!pgconn_exec(source, "source: setting a statement timeout",
                     "SET statement_timeout = '60s'") ||
        !check_probe_source(&report, source, cfg))
        rc = probe_failed("source", source, cfg);
    else if (!pgconn_exec(target, "target: setting a statement timeout",
                          "SET statement_timeout = '60s'") ||
             !check_probe_target(&report, target, cfg))
        rc = probe_failed("target", target, cfg);
    else if (!catalog_load(cfg, source, target, &cat))
        rc = probe_failed("source or target", PQstatus(source) == CONNECTION_OK ? target : source,
                          cfg);
    if (rc < 0) {
        report.cat = &cat;
        size_t errors = check_report_count(&report, CATALOG_ERROR);
        if (format == CHECK_JSON)
            check_report_print_json(stdout, &report, cfg);
        else
            check_report_print_text(stdout, &report, cfg);
        if (cfg->log_file != NULL) /* without a file the log is stderr: no echo */
            log_findings(&report, &cat);
        log_info("check: %zu error(s), %zu warning(s)", errors,
                 check_report_count(&report, CATALOG_WARNING));
        rc = errors > 0 ? EXIT_FINDING : EXIT_OK;
    }
    catalog_free(&cat);
    check_report_free(&report);
    return rc;
}

/* --format json when a side cannot be reached: still one JSON object on stdout. */
static void print_unreachable_json(const wb_config *cfg, const char *const failures[2])
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return;
    cJSON_AddStringToObject(root, "config", cfg->path != NULL ? cfg->path : "");
    cJSON_AddBoolToObject(root, "ok", false);
    cJSON *arr = cJSON_AddArrayToObject(root, "unreachable");
    static const char *const sides[2] = {"source", "target"};
    for (int i = 0; arr != NULL && i < 2; i++) {
        cJSON *o = failures[i] != NULL ? cJSON_CreateObject() : NULL;
        if (o == NULL)
            continue;
        cJSON_AddStringToObject(o, "side", sides[i]);
        cJSON_AddStringToObject(o, "message", failures[i]);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text != NULL)
        printf("%s\n", text);
    cJSON_free(text);
}

int check_main(const char *config_path, int argc, char **argv)
{
    check_format format = CHECK_TEXT;
    int rc = cli_parse_options(&check_command, argc, argv, &format);
    if (rc != CLI_CONTINUE)
        return rc;
    wb_config cfg;
    rc = setup(config_path, &cfg);
    if (rc >= 0)
        return rc;

    char err[2][1024];
    PGconn *source = pgconn_open(cfg.source_dsn, PGCONN_SOURCE, "source", CHECK_CONNECT_ATTEMPTS,
                                 err[0], sizeof err[0]);
    PGconn *target = pgconn_open(cfg.target_dsn, PGCONN_TARGET, "target", CHECK_CONNECT_ATTEMPTS,
                                 err[1], sizeof err[1]);
    if (source == NULL || target == NULL) {
        const char *failures[2] = {source == NULL ? err[0] : NULL, target == NULL ? err[1] : NULL};
        for (int i = 0; i < 2; i++) {
            /* Without a log file the logger has already said it on stderr. */
            if (failures[i] != NULL && cfg.log_file != NULL)
                fprintf(stderr, "walbridge check: %s\n", failures[i]);
        }
        if (format == CHECK_JSON)
            print_unreachable_json(&cfg, failures);
        rc = EXIT_RUNTIME;
    } else {
        rc = run_checks(&cfg, source, target, format);
    }
    PQfinish(source);
    PQfinish(target);
    log_close();
    config_free(&cfg);
    return rc;
}
