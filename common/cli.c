/*
 * cli.c — what every subcommand does first: load the config (reporting a
 * mistake as "walbridge: <file>: <json path>: <what>" with exit code 2), open
 * the log as the config says, and warn when the config file is readable by
 * other users while holding a literal password.  Also the option loop and
 * the integer option values the subcommands share.
 */
#include "common/cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <libpq-fe.h>

#include "common/log.h"
#include "common/strbuf.h"

/* Prints "walbridge: <message>" to stderr, passwords masked. */
static void cli_print_error(const char *message)
{
    char *safe = log_redact_text(message);
    fprintf(stderr, "walbridge: %s\n", safe);
    free(safe);
}

/* True when a password value starting at p is written out rather than "${NAME}". */
static bool is_literal_value(const char *p)
{
    if (*p == '\'')
        p++;
    return *p != '\0' && *p != ' ' && *p != '\'' && *p != '&' && *p != '@' &&
           strncmp(p, "${", 2) != 0;
}

/*
 * Does a DSN as written in the file (before ${NAME} substitution) contain a
 * password itself: keyword "password=...", URI "user:...@" or "?password=..."?
 */
static bool dsn_has_literal_password(const char *dsn)
{
    /* libpq's own reading first: it decodes URI escapes ("pass%77ord=..."). */
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (opts != NULL) {
        bool literal = false;
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
            if ((strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0) &&
                o->val != NULL && is_literal_value(o->val))
                literal = true;
        PQconninfoFree(opts);
        if (literal)
            return true;
    }
    for (const char *p = dsn; *p; p++) {
        if (strncasecmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ')
                    q++;
                if (is_literal_value(q))
                    return true;
            }
        }
    }
    const char *scheme = strstr(dsn, "://");
    if (scheme == NULL)
        return false;
    const char *auth = scheme + 3;
    size_t auth_len = strcspn(auth, "/?");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at == NULL)
        return false;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    return colon != NULL && is_literal_value(colon + 1);
}

/* Source/target DSN as written in the file; NULL when not found. */
static const char *raw_dsn(const cJSON *root, const char *side)
{
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, side);
    const cJSON *dsn = cJSON_GetObjectItemCaseSensitive(obj, "dsn");
    return cJSON_IsString(dsn) ? dsn->valuestring : NULL;
}

void cli_warn_file_secrets(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || (st.st_mode & (S_IRGRP | S_IROTH)) == 0)
        return;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    strbuf text;
    strbuf_init(&text);
    /* Only a warning: on a read error the partial text is parsed as it is. */
    (void)strbuf_append_file(&text, f);
    fclose(f);
    cJSON *root = cJSON_Parse(text.data);
    strbuf_free(&text);
    if (root == NULL)
        return;
    static const char *const sides[] = {"source", "target"};
    for (size_t i = 0; i < 2; i++) {
        const char *dsn = raw_dsn(root, sides[i]);
        if (dsn == NULL || !dsn_has_literal_password(dsn))
            continue;
        char hint[512];
        snprintf(hint, sizeof hint,
                 "Run \"chmod 600 %s\", or put the connection string in an environment variable "
                 "and write \"dsn\": \"${%s_DATABASE_URL}\".",
                 path, i == 0 ? "SOURCE" : "TARGET");
        log_full(LOG_WARN, NULL, hint,
                 "config file \"%s\" is readable by other users and %s.dsn contains a password",
                 path, sides[i]);
    }
    cJSON_Delete(root);
}

int cli_setup(const char *config_path, wb_config *cfg)
{
    const char *path = config_default_path(config_path);
    char err[1024];
    if (!config_load(path, cfg, err, sizeof err)) {
        cli_print_error(err);
        return EXIT_USAGE;
    }
    log_options opts = {.file = cfg->log_file,
                        .to_stderr = true,
                        .level = cfg->log_level,
                        .format = cfg->log_format};
    if (!log_open(&opts, err, sizeof err)) {
        char message[1400];
        snprintf(message, sizeof message, "%s: log.file: %s", path, err);
        cli_print_error(message);
        config_free(cfg);
        return EXIT_USAGE;
    }
    cli_warn_file_secrets(path);
    return EXIT_OK;
}

int cli_parse_options(const cli_command *cmd, int argc, char **argv, void *ctx)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "h", cmd->options, NULL)) != -1) {
        if (opt == 'h') {
            cmd->print_help(stdout);
            return EXIT_OK;
        }
        if (opt == '?') {
            cmd->print_help(stderr);
            return EXIT_USAGE;
        }
        if (!cmd->on_option(opt, optarg, ctx))
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "walbridge %s: unexpected argument \"%s\"\n", cmd->name, argv[optind]);
        return EXIT_USAGE;
    }
    return CLI_CONTINUE;
}

bool cli_parse_int(const char *command, const char *option, const char *arg, long min, long max,
                   const char *what, int *out)
{
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "walbridge %s: --%s: \"%s\" is not %s\n", command, option, arg, what);
        return false;
    }
    *out = (int)v;
    return true;
}
