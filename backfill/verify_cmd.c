/*
 * verify_cmd.c — `walbridge verify`: compare source and target through the
 * mapping (DESIGN.md, "verify").  The same diff engine as backfill
 * (tablediff.h), read-only: one REPEATABLE READ snapshot on the source, the
 * target's rows translated back to source form, per-table counts of
 * missing, extra and differing rows, and with --show N the first N keys of
 * each kind.  With --jobs N several tables are diffed at once, each lane on
 * its own connections in the same source snapshot (lanes.h); the
 * output stays in config order.  Exit 0 when identical, 1 when not, 2
 * config, 3 runtime.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill/bfsession.h"
#include "backfill/tablediff.h"
#include "backfill/lanes.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/pgconn.h"

typedef struct verify_args {
    bool json;
    int show;
    int jobs; /* lanes: tables diffed at once */
    const char *tables;
} verify_args;

static void print_help(FILE *out)
{
    fputs("Usage: walbridge [-c FILE] verify [options]\n\n"
          "Compares every configured table (or --tables) between source and target,\n"
          "translating the target's UUIDs back to legacy keys: counts, missing, extra and\n"
          "differing rows, from hashes of each row computed on both sides.\n\n"
          "Options:\n"
          "  --format text|json   output format (default text)\n"
          "  --jobs N             diff up to N tables at once, each on its own source and\n"
          "                       target connections, in one source snapshot (default 2)\n"
          "  --show N             list up to N keys of each kind of difference per table\n"
          "  --tables a,b         only these source tables\n"
          "  -h, --help           this text\n\n"
          "Exit status: 0 identical, 1 differences found, 2 usage or config error,\n"
          "3 runtime failure.\n",
          out);
}

/* One option of verify_args (cli_command.on_option). */
static bool on_option(int opt, const char *arg, void *ctx)
{
    verify_args *a = ctx;
    switch (opt) {
    case 'f':
        if (strcmp(arg, "json") == 0) {
            a->json = true;
        } else if (strcmp(arg, "text") != 0) {
            fprintf(stderr, "walbridge verify: --format: \"%s\" is not text or json\n", arg);
            return false;
        }
        break;
    case 'j':
        return cli_parse_int("verify", "jobs", arg, 1, 64, "a count of 1 to 64", &a->jobs);
    case 's':
        return cli_parse_int("verify", "show", arg, 0, 1000000, "a count", &a->show);
    case 't':
        a->tables = arg;
        break;
    }
    return true;
}

static const struct option verify_options[] = {
    {"format", required_argument, NULL, 'f'}, {"jobs", required_argument, NULL, 'j'},
    {"show", required_argument, NULL, 's'},   {"tables", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
static const cli_command verify_command = {"verify", verify_options, print_help, on_option};

static bool differs(const tablediff_result *r)
{
    return r->counts.missing + r->counts.extra + r->counts.stale > 0;
}

static void print_keys(const char *kind, char **keys, size_t n)
{
    if (n == 0)
        return;
    printf("    %s:", kind);
    for (size_t i = 0; i < n; i++)
        printf(" %s", keys[i]);
    printf("\n");
}

static void print_text(const bf_session *s, const tablediff_result *results, size_t ndiffer)
{
    printf("%-28s %12s %12s %10s %10s %10s %8s\n", "table", "source rows", "target rows", "missing",
           "extra", "differing", "seconds");
    size_t ntables = 0;
    for (size_t i = 0; i < s->cfg.ntables; i++) {
        if (!s->selected[i])
            continue;
        ntables++;
        const tablediff_result *r = &results[i];
        printf("%-28s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
               " %8.2f\n",
               s->cfg.tables[i].source, r->counts.source_rows, r->counts.target_rows,
               r->counts.missing, r->counts.extra, r->counts.stale, r->seconds);
        print_keys("missing", r->missing_keys, r->nmissing_keys);
        print_keys("extra", r->extra_keys, r->nextra_keys);
        print_keys("differing", r->stale_keys, r->nstale_keys);
    }
    if (ndiffer == 0)
        printf("verify: identical (%zu tables)\n", ntables);
    else
        printf("verify: %zu of %zu tables differ\n", ndiffer, ntables);
}

static void add_keys(cJSON *obj, const char *name, char **keys, size_t n, int show)
{
    if (show <= 0)
        return;
    cJSON *arr = cJSON_AddArrayToObject(obj, name);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(keys[i]));
}

static void print_json(const bf_session *s, const tablediff_result *results, size_t ndiffer,
                       int show)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "identical", ndiffer == 0);
    cJSON *tables = cJSON_AddArrayToObject(root, "tables");
    for (size_t i = 0; i < s->cfg.ntables; i++) {
        if (!s->selected[i])
            continue;
        const tablediff_result *r = &results[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "table", s->cfg.tables[i].source);
        cJSON_AddNumberToObject(t, "source_rows", (double)r->counts.source_rows);
        cJSON_AddNumberToObject(t, "target_rows", (double)r->counts.target_rows);
        cJSON_AddNumberToObject(t, "missing", (double)r->counts.missing);
        cJSON_AddNumberToObject(t, "extra", (double)r->counts.extra);
        cJSON_AddNumberToObject(t, "differing", (double)r->counts.stale);
        cJSON_AddNumberToObject(t, "seconds", r->seconds);
        add_keys(t, "missing_keys", r->missing_keys, r->nmissing_keys, show);
        add_keys(t, "extra_keys", r->extra_keys, r->nextra_keys, show);
        add_keys(t, "differing_keys", r->stale_keys, r->nstale_keys, show);
        cJSON_AddItemToArray(tables, t);
    }
    char *text = cJSON_Print(root);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
}

/* What verify's lanes share: each diffs a table into its result slot (lanes.h). */
typedef struct verify_lanes {
    bf_session *s;
    const tablediff_options *o;
    tablediff_result *results;
} verify_lanes;

static bool verify_table(void *ctx, const lane_conns *lane, size_t i)
{
    const verify_lanes *v = ctx;
    tablediff_options o = *v->o;
    o.estimate = bf_session_estimate(lane->source, &v->s->cfg.tables[i]);
    return tablediff_run(&v->s->layouts[i], (int)i, lane->source, lane->target, NULL, 0, &o,
                         &v->results[i]);
}

int verify_main(const char *config_path, int argc, char **argv)
{
    verify_args a;
    memset(&a, 0, sizeof a);
    a.jobs = 2;
    int rc = cli_parse_options(&verify_command, argc, argv, &a);
    if (rc != CLI_CONTINUE)
        return rc;
    bf_session s;
    rc = bf_session_open(&s, config_path, a.tables, false);
    if (rc != EXIT_OK) {
        bf_session_close(&s);
        return rc;
    }
    tablediff_result *results = wb_xcalloc(s.cfg.ntables > 0 ? s.cfg.ntables : 1, sizeof *results);
    tablediff_options o = {.show = a.show, .state_schema = s.cfg.state_schema, .slot = s.cfg.slot};
    verify_lanes ctx = {&s, &o, results};
    lanes_job job = {.s = &s,
                     .tables = s.selected,
                     .jobs = a.jobs,
                     .what = "verify",
                     .run = verify_table,
                     .ctx = &ctx};
    bool ok = lanes_run(&job);
    size_t ndiffer = 0;
    for (size_t i = 0; ok && i < s.cfg.ntables; i++) {
        if (s.selected[i] && differs(&results[i]))
            ndiffer++;
    }
    if (ok) {
        if (a.json)
            print_json(&s, results, ndiffer, a.show);
        else
            print_text(&s, results, ndiffer);
        fflush(stdout);
        pgconn_exec(s.source, "source: COMMIT", "COMMIT");
    }
    for (size_t i = 0; i < s.cfg.ntables; i++)
        tablediff_result_free(&results[i]);
    free(results);
    bf_session_close(&s);
    if (!ok)
        return EXIT_RUNTIME;
    return ndiffer == 0 ? EXIT_OK : EXIT_FINDING;
}
