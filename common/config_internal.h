/*
 * config_internal.h — private to config.c and config_tables.c: the parse
 * context and the typed JSON accessors both files use.  Not for other modules.
 *
 * Every accessor reports its own failure through cfg_fail (one line
 * "<file>: <json path>: <what>" into the caller's err buffer) and returns
 * false; callers only propagate.  Strings handed back are malloc'd, after
 * "${NAME}" environment substitution, and owned by the caller.
 */
#ifndef WALBRIDGE_CONFIG_INTERNAL_H
#define WALBRIDGE_CONFIG_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

#define JPATH_MAX 256 /* JSON paths in messages ("tables[3].references.office_id") */

typedef struct cfg_ctx {
    const char *file; /* the config file name, for messages */
    char *err;        /* caller's message buffer */
    size_t errlen;
} cfg_ctx;

/* Writes "<file>: <jpath>: <what>" to c->err; always returns false. */
bool cfg_fail(cfg_ctx *c, const char *jpath, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* out (JPATH_MAX bytes) = parent.key / parent[i] */
void cfg_jpath_key(char *out, const char *parent, const char *key);
void cfg_jpath_index(char *out, const char *parent, size_t i);

/* obj is an object whose keys are all in allowed[] and none repeats. */
bool cfg_check_object(cfg_ctx *c, const cJSON *obj, const char *jpath, const char *const *allowed,
                      size_t nallowed);
/* A string value (after substitution) / one that must not be empty. */
bool cfg_string(cfg_ctx *c, const cJSON *item, const char *jpath, char **out);
bool cfg_nonempty_string(cfg_ctx *c, const cJSON *item, const char *jpath, char **out);
/* Optional non-empty string member; absent leaves *out (the default) alone. */
bool cfg_opt_string(cfg_ctx *c, const cJSON *obj, const char *jpath, const char *key, char **out);
/* "schema.name" or "name" (schema public): parts and "schema.name". */
bool cfg_table_name(cfg_ctx *c, const char *jpath, const char *text, char **schema, char **name,
                    char **full);
/* Normalised "schema.name", or NULL after reporting. */
char *cfg_normalise_table(cfg_ctx *c, const char *jpath, const char *text);

/* config_tables.c: the "tables" array, then the parents-first ordering. */
bool config_parse_tables(cfg_ctx *c, const cJSON *root, wb_config *cfg);
bool config_order_tables(cfg_ctx *c, wb_config *cfg);

#endif
