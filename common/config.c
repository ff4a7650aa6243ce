/*
 * config.c — loads and validates walbridge.json (DESIGN.md, "Config").
 *
 * The file is parsed with cJSON, then walked object by object: every key is
 * checked against the keys that object may have, every string goes through
 * "${NAME}" environment substitution, defaults fill what is absent, and the
 * tables (config_tables.c) are finally ordered parents-first.  Nothing here
 * touches a database.
 *
 * Every error is one line "<file>: <json path>: <what>", written by
 * cfg_fail where the mistake is found; callers only propagate false.  On
 * failure the partly built wb_config is released with config_free, which
 * copes with any prefix of the construction (all fields start zeroed).
 */
#include "common/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/strbuf.h"
#include "common/uuidmap.h"

bool cfg_fail(cfg_ctx *c, const char *jpath, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s: %s", c->file, jpath, what);
    return false;
}

/* ---- JSON paths --------------------------------------------------------- */

void cfg_jpath_key(char *out, const char *parent, const char *key)
{
    if (parent[0] == '\0')
        snprintf(out, JPATH_MAX, "%s", key);
    else
        snprintf(out, JPATH_MAX, "%s.%s", parent, key);
}

void cfg_jpath_index(char *out, const char *parent, size_t i)
{
    snprintf(out, JPATH_MAX, "%s[%zu]", parent, i);
}

/* ---- typed accessors ---------------------------------------------------- */

/* Levenshtein distance, capped: returns cap + 1 when it is larger. */
static size_t edit_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] > cap ? cap + 1 : row[lb];
}

/* The allowed key closest to a misspelt one (at most 2 edits), or NULL. */
static const char *cfg_nearest_key(const char *key, const char *const *allowed, size_t nallowed)
{
    const char *best = NULL;
    size_t best_distance = 3;
    for (size_t i = 0; i < nallowed; i++) {
        size_t d = edit_distance(key, allowed[i], 2);
        if (d < best_distance) {
            best = allowed[i];
            best_distance = d;
        }
    }
    return best;
}

/*
 * Checks that obj is an object whose keys are all in allowed[] and none is
 * repeated (cJSON keeps duplicates; the file would be ambiguous).
 */
bool cfg_check_object(cfg_ctx *c, const cJSON *obj, const char *jpath, const char *const *allowed,
                      size_t nallowed)
{
    if (!cJSON_IsObject(obj))
        return cfg_fail(c, jpath[0] ? jpath : "top level", "expected an object");
    for (const cJSON *item = obj->child; item != NULL; item = item->next) {
        char path[JPATH_MAX];
        cfg_jpath_key(path, jpath, item->string);
        bool known = allowed == NULL;
        for (size_t i = 0; i < nallowed && !known; i++)
            known = strcmp(item->string, allowed[i]) == 0;
        if (!known) {
            const char *near = cfg_nearest_key(item->string, allowed, nallowed);
            if (near != NULL)
                return cfg_fail(c, path, "unknown key (did you mean \"%s\"?)", near);
            return cfg_fail(c, path, "unknown key");
        }
        for (const cJSON *other = obj->child; other != item; other = other->next)
            if (strcmp(other->string, item->string) == 0)
                return cfg_fail(c, path, "duplicate key");
    }
    return true;
}

static bool is_env_name_start(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool is_env_name_char(char ch)
{
    return is_env_name_start(ch) || (ch >= '0' && ch <= '9');
}

/*
 * Replaces each "${NAME}" by the value of environment variable NAME.  Text
 * that is not exactly "${" + name + "}" stays as written.  An unset variable
 * is an error naming the JSON path and the variable.
 */
static bool cfg_substitute(cfg_ctx *c, const char *jpath, const char *in, char **out)
{
    strbuf sb;
    strbuf_init(&sb);
    const char *p = in;
    while (*p) {
        if (p[0] == '$' && p[1] == '{' && is_env_name_start(p[2])) {
            const char *name = p + 2;
            const char *end = name;
            while (is_env_name_char(*end))
                end++;
            if (*end == '}') {
                char *var = wb_xstrndup(name, (size_t)(end - name));
                const char *value = getenv(var);
                if (value == NULL) {
                    cfg_fail(c, jpath, "environment variable %s is not set", var);
                    free(var);
                    strbuf_free(&sb);
                    return false;
                }
                free(var);
                strbuf_append(&sb, value);
                p = end + 1;
                continue;
            }
        }
        strbuf_append_char(&sb, *p++);
    }
    *out = strbuf_detach(&sb);
    return true;
}

/* A string value after substitution; *out is malloc'd (caller frees). */
bool cfg_string(cfg_ctx *c, const cJSON *item, const char *jpath, char **out)
{
    if (!cJSON_IsString(item))
        return cfg_fail(c, jpath, "expected a string");
    return cfg_substitute(c, jpath, item->valuestring, out);
}

/* Like cfg_string, and the result must not be empty. */
bool cfg_nonempty_string(cfg_ctx *c, const cJSON *item, const char *jpath, char **out)
{
    if (!cfg_string(c, item, jpath, out))
        return false;
    if ((*out)[0] == '\0') {
        free(*out);
        *out = NULL;
        return cfg_fail(c, jpath, "must not be empty");
    }
    return true;
}

/* Optional string member: absent leaves *out untouched (the default). */
bool cfg_opt_string(cfg_ctx *c, const cJSON *obj, const char *jpath, const char *key, char **out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    char path[JPATH_MAX];
    if (item == NULL)
        return true;
    cfg_jpath_key(path, jpath, key);
    char *value;
    if (!cfg_nonempty_string(c, item, path, &value))
        return false;
    free(*out);
    *out = value;
    return true;
}

static bool cfg_opt_int(cfg_ctx *c, const cJSON *obj, const char *jpath, const char *key, int min,
                        int *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    char path[JPATH_MAX];
    if (item == NULL)
        return true;
    cfg_jpath_key(path, jpath, key);
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
        item->valuedouble < INT_MIN || item->valuedouble > INT_MAX)
        return cfg_fail(c, path, "expected an integer");
    if (item->valuedouble < min)
        return cfg_fail(c, path, "must be at least %d", min);
    *out = (int)item->valuedouble;
    return true;
}

/* ---- names -------------------------------------------------------------- */

/*
 * Splits "schema.name" or "name" (schema public) into parts; both must be
 * non-empty and there is at most one dot.
 */
bool cfg_table_name(cfg_ctx *c, const char *jpath, const char *text, char **schema, char **name,
                    char **full)
{
    const char *dot = strchr(text, '.');
    if (dot != NULL && strchr(dot + 1, '.') != NULL)
        return cfg_fail(c, jpath, "\"%s\" is not \"schema.table\" or \"table\"", text);
    if (dot == NULL) {
        *schema = wb_xstrdup("public");
        *name = wb_xstrdup(text);
    } else {
        *schema = wb_xstrndup(text, (size_t)(dot - text));
        *name = wb_xstrdup(dot + 1);
    }
    if ((*schema)[0] == '\0' || (*name)[0] == '\0')
        return cfg_fail(c, jpath, "\"%s\" is not \"schema.table\" or \"table\"", text);
    strbuf sb;
    strbuf_init(&sb);
    strbuf_appendf(&sb, "%s.%s", *schema, *name);
    *full = strbuf_detach(&sb);
    return true;
}

/* "public.x" from "x" or "public.x"; NULL (after reporting) when malformed. */
char *cfg_normalise_table(cfg_ctx *c, const char *jpath, const char *text)
{
    char *schema = NULL, *name = NULL, *full = NULL;
    bool ok = cfg_table_name(c, jpath, text, &schema, &name, &full);
    free(schema);
    free(name);
    if (!ok) {
        free(full);
        return NULL;
    }
    return full;
}

/* A lower-case identifier PostgreSQL accepts unquoted: [a-z_][a-z0-9_]*, <= 63. */
static bool is_plain_identifier(const char *s, bool allow_leading_digit)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || ch == '_' ||
                  (ch >= '0' && ch <= '9' && (i > 0 || allow_leading_digit));
        if (!ok)
            return false;
    }
    return true;
}

/* ---- top-level sections ------------------------------------------------- */

static bool cfg_dsn(cfg_ctx *c, const cJSON *root, const char *key, char **out)
{
    static const char *const allowed[] = {"dsn"};
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, key);
    char path[JPATH_MAX];
    if (obj == NULL)
        return cfg_fail(c, key, "required (an object with \"dsn\")");
    if (!cfg_check_object(c, obj, key, allowed, 1))
        return false;
    const cJSON *dsn = cJSON_GetObjectItemCaseSensitive(obj, "dsn");
    cfg_jpath_key(path, key, "dsn");
    if (dsn == NULL)
        return cfg_fail(c, path, "required");
    return cfg_nonempty_string(c, dsn, path, out);
}

static bool cfg_log(cfg_ctx *c, const cJSON *root, wb_config *cfg)
{
    static const char *const allowed[] = {"file", "level", "format"};
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "log");
    char *text = NULL;
    if (obj == NULL)
        return true;
    if (!cfg_check_object(c, obj, "log", allowed, 3) ||
        !cfg_opt_string(c, obj, "log", "file", &cfg->log_file))
        return false;
    if (!cfg_opt_string(c, obj, "log", "level", &text))
        return false;
    if (text != NULL && !log_level_parse(text, &cfg->log_level)) {
        free(text);
        return cfg_fail(c, "log.level", "expected \"debug\", \"info\", \"warn\" or \"error\"");
    }
    free(text);
    text = NULL;
    if (!cfg_opt_string(c, obj, "log", "format", &text))
        return false;
    if (text != NULL && !log_format_parse(text, &cfg->log_format)) {
        free(text);
        return cfg_fail(c, "log.format", "expected \"text\" or \"json\"");
    }
    free(text);
    return true;
}

static bool cfg_stream(cfg_ctx *c, const cJSON *root, stream_options *s)
{
    static const char *const allowed[] = {"batch_max_rows",      "batch_max_ms",
                                          "feedback_interval_s", "heartbeat_interval_s",
                                          "reconnect_max_s",     "reconnect_max_attempts"};
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (obj == NULL)
        return true;
    return cfg_check_object(c, obj, "stream", allowed, sizeof allowed / sizeof allowed[0]) &&
           cfg_opt_int(c, obj, "stream", "batch_max_rows", 1, &s->batch_max_rows) &&
           cfg_opt_int(c, obj, "stream", "batch_max_ms", 1, &s->batch_max_ms) &&
           cfg_opt_int(c, obj, "stream", "feedback_interval_s", 1, &s->feedback_interval_s) &&
           cfg_opt_int(c, obj, "stream", "heartbeat_interval_s", 0, &s->heartbeat_interval_s) &&
           cfg_opt_int(c, obj, "stream", "reconnect_max_s", 1, &s->reconnect_max_s) &&
           cfg_opt_int(c, obj, "stream", "reconnect_max_attempts", 0, &s->reconnect_max_attempts);
}

static bool cfg_backfill(cfg_ctx *c, const cJSON *root, backfill_options *b)
{
    static const char *const allowed[] = {"batch_rows", "slot_create_timeout_s"};
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "backfill");
    if (obj == NULL)
        return true;
    return cfg_check_object(c, obj, "backfill", allowed, 2) &&
           cfg_opt_int(c, obj, "backfill", "batch_rows", 1, &b->batch_rows) &&
           cfg_opt_int(c, obj, "backfill", "slot_create_timeout_s", 1, &b->slot_create_timeout_s);
}

static bool cfg_namespace(cfg_ctx *c, const cJSON *root, wb_config *cfg)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "uuid_namespace");
    if (item == NULL)
        return cfg_fail(c, "uuid_namespace", "required (a UUID, e.g. from uuidgen)");
    if (!cfg_nonempty_string(c, item, "uuid_namespace", &cfg->uuid_namespace_text))
        return false;
    if (!uuidmap_parse(cfg->uuid_namespace_text, cfg->uuid_namespace))
        return cfg_fail(c, "uuid_namespace", "\"%s\" is not a valid UUID",
                        cfg->uuid_namespace_text);
    return true;
}

/* ---- entry points ------------------------------------------------------- */

static void cfg_defaults(wb_config *cfg)
{
    cfg->slot = wb_xstrdup("walbridge");
    cfg->state_schema = wb_xstrdup("walbridge");
    cfg->log_level = LOG_INFO;
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->stream.batch_max_rows = 10000;
    cfg->stream.batch_max_ms = 200;
    cfg->stream.feedback_interval_s = 10;
    cfg->stream.heartbeat_interval_s = 0;
    cfg->stream.reconnect_max_s = 60;
    cfg->stream.reconnect_max_attempts = 0;
    cfg->backfill.batch_rows = 100000;
    cfg->backfill.slot_create_timeout_s = 300;
}

/* 1-based line and column of byte offset in text. */
static void text_position(const char *text, size_t offset, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

static bool cfg_root(cfg_ctx *c, const cJSON *root, wb_config *cfg)
{
    static const char *const allowed[] = {"source",       "target",         "slot",
                                          "state_schema", "uuid_namespace", "log",
                                          "tables",       "stream",         "backfill"};
    if (!cfg_check_object(c, root, "", allowed, sizeof allowed / sizeof allowed[0]) ||
        !cfg_dsn(c, root, "source", &cfg->source_dsn) ||
        !cfg_dsn(c, root, "target", &cfg->target_dsn) ||
        !cfg_opt_string(c, root, "", "slot", &cfg->slot) ||
        !cfg_opt_string(c, root, "", "state_schema", &cfg->state_schema))
        return false;
    if (!is_plain_identifier(cfg->slot, true))
        return cfg_fail(c, "slot",
                        "\"%s\" is not a valid slot name (lower-case letters, digits and "
                        "underscores, at most 63)",
                        cfg->slot);
    if (!is_plain_identifier(cfg->state_schema, false))
        return cfg_fail(c, "state_schema",
                        "\"%s\" is not a valid schema name (lower-case letters, digits and "
                        "underscores, not starting with a digit, at most 63)",
                        cfg->state_schema);
    return cfg_namespace(c, root, cfg) && cfg_log(c, root, cfg) &&
           cfg_stream(c, root, &cfg->stream) && cfg_backfill(c, root, &cfg->backfill) &&
           config_parse_tables(c, root, cfg) && config_order_tables(c, cfg);
}

bool config_parse(const char *path, const char *json_text, wb_config *out, char *err, size_t errlen)
{
    cfg_ctx c = {path, err, errlen};
    const char *parse_end = NULL;

    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithOpts(json_text, &parse_end, true);
    if (root == NULL) {
        size_t line, column;
        size_t offset = parse_end != NULL ? (size_t)(parse_end - json_text) : 0;
        text_position(json_text, offset, &line, &column);
        snprintf(err, errlen, "%s: line %zu, column %zu: malformed JSON", path, line, column);
        return false;
    }
    out->path = wb_xstrdup(path);
    cfg_defaults(out);
    bool ok = cfg_root(&c, root, out);
    cJSON_Delete(root);
    if (!ok)
        config_free(out);
    return ok;
}

bool config_load(const char *path, wb_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    strbuf text;
    strbuf_init(&text);
    bool read_error = !strbuf_append_file(&text, f);
    int saved_errno = errno;
    fclose(f);
    if (read_error) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(saved_errno));
        strbuf_free(&text);
        return false;
    }
    if (strlen(text.data) != text.len) {
        snprintf(err, errlen, "%s: contains a NUL byte (not a JSON text file)", path);
        strbuf_free(&text);
        return false;
    }
    bool ok = config_parse(path, text.data, out, err, errlen);
    strbuf_free(&text);
    return ok;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void table_config_free(table_config *t)
{
    free(t->source);
    free(t->source_schema);
    free(t->source_name);
    free(t->target);
    free(t->target_schema);
    free(t->target_name);
    free_strings(t->key, t->nkey);
    free(t->target_key);
    free(t->legacy_key);
    for (size_t i = 0; i < t->nrefs; i++) {
        free(t->refs[i].column);
        free(t->refs[i].parent);
    }
    free(t->refs);
    free_strings(t->exclude, t->nexclude);
    for (size_t i = 0; i < t->nrenames; i++) {
        free(t->renames[i].source);
        free(t->renames[i].target);
    }
    free(t->renames);
    free(t->soft_delete_column);
}

void config_free(wb_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->source_dsn);
    free(cfg->target_dsn);
    free(cfg->slot);
    free(cfg->state_schema);
    free(cfg->uuid_namespace_text);
    free(cfg->log_file);
    for (size_t i = 0; i < cfg->ntables; i++)
        table_config_free(&cfg->tables[i]);
    free(cfg->tables);
    memset(cfg, 0, sizeof *cfg);
}

int config_find_source(const wb_config *cfg, const char *schema, const char *name)
{
    if (schema == NULL)
        schema = "public";
    for (size_t i = 0; i < cfg->ntables; i++)
        if (strcmp(cfg->tables[i].source_schema, schema) == 0 &&
            strcmp(cfg->tables[i].source_name, name) == 0)
            return (int)i;
    return -1;
}

const char *config_target_column(const table_config *t, const char *source_column)
{
    for (size_t i = 0; i < t->nexclude; i++)
        if (strcmp(t->exclude[i], source_column) == 0)
            return NULL;
    for (size_t i = 0; i < t->nrenames; i++)
        if (strcmp(t->renames[i].source, source_column) == 0)
            return t->renames[i].target;
    return source_column;
}

const char *config_default_path(const char *cli_path)
{
    if (cli_path != NULL && cli_path[0] != '\0')
        return cli_path;
    const char *env = getenv("WALBRIDGE_CONFIG");
    if (env != NULL && env[0] != '\0')
        return env;
    return "walbridge.json";
}
