/*
 * config.h — the walbridge JSON configuration (DESIGN.md, "Config").
 *
 * config_load reads the file, substitutes "${NAME}" from the environment,
 * applies defaults, validates everything that can be validated without a
 * database, and orders the tables parents-first.  Errors name the file and
 * the JSON path ("walbridge.json: tables[3].references.office_id: unknown
 * table \"public.ofices\"").  No connection is ever made here.
 *
 * Ownership: wb_config and everything it points to belong to the caller
 * after a successful config_load and are released by config_free.
 */
#ifndef WALBRIDGE_CONFIG_H
#define WALBRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "common/log.h"

typedef enum table_kind {
    TABLE_UUID_MAPPED, /* has legacy_key: integer source key -> uuid target key */
    TABLE_IDENTITY,    /* key columns identical on both sides */
    TABLE_KEYLESS      /* no key: REPLICA IDENTITY FULL, multiset semantics */
} table_kind;

typedef enum delete_policy { DELETES_APPLY = 0, DELETES_IGNORE, DELETES_SOFT } delete_policy;

typedef struct table_reference {
    char *column;     /* source FK column (target column of the same name, or renamed) */
    char *parent;     /* parent source table as configured ("public.offices") */
    int parent_index; /* index of the parent in wb_config.tables (after ordering) */
} table_reference;

typedef struct column_rename {
    char *source;
    char *target;
} column_rename;

typedef struct table_config {
    char *source;        /* "schema.name", normalised (schema defaults to public) */
    char *source_schema; /* unquoted identifier parts */
    char *source_name;
    char *target;
    char *target_schema;
    char *target_name;
    table_kind kind;
    char **key; /* source key columns (1 for UUID-mapped); NULL/0 when keyless */
    size_t nkey;
    char *target_key; /* UUID-mapped only: target uuid primary key column ("id") */
    char *legacy_key; /* UUID-mapped only: target column holding the source key */
    table_reference *refs;
    size_t nrefs;
    char **exclude; /* source columns never copied */
    size_t nexclude;
    column_rename *renames;
    size_t nrenames;
    delete_policy deletes;
    char *soft_delete_column; /* DELETES_SOFT: target timestamptz column to set */
    bool truncate_apply;      /* "truncate": "apply" (default) or "ignore" */
    bool in_cycle;            /* part of a reference cycle (order inside it is arbitrary) */
} table_config;

typedef struct stream_options {
    int batch_max_rows;         /* group source txns until this many rows (default 10000) */
    int batch_max_ms;           /* ... or this many milliseconds (default 200) */
    int feedback_interval_s;    /* standby status interval (default 10) */
    int heartbeat_interval_s;   /* pg_logical_emit_message interval, 0 = off (default 0) */
    int reconnect_max_s;        /* backoff cap (default 60) */
    int reconnect_max_attempts; /* give up (exit 3) after this many, 0 = forever (default 0) */
} stream_options;

typedef struct backfill_options {
    int batch_rows;         /* rows per copy batch / checkpoint (default 100000) */
    int slot_create_timeout_s; /* bound on CREATE_REPLICATION_SLOT waiting (default 300) */
} backfill_options;

typedef struct wb_config {
    char *path; /* the file it was loaded from */
    char *source_dsn;
    char *target_dsn;
    char *slot;         /* default "walbridge" */
    char *state_schema; /* default "walbridge" */
    unsigned char uuid_namespace[16];
    char *uuid_namespace_text;
    char *log_file; /* NULL: stderr only */
    log_level log_level;
    log_format log_format;
    table_config *tables; /* parents first */
    size_t ntables;
    stream_options stream;
    backfill_options backfill;
} wb_config;

/*
 * Loads and validates path.  On failure returns false and writes a one-line
 * message naming the file and JSON path into err.
 */
bool config_load(const char *path, wb_config *out, char *err, size_t errlen);
/* Same, from a string already in memory (path is only used in messages). */
bool config_parse(const char *path, const char *json_text, wb_config *out, char *err,
                  size_t errlen);
void config_free(wb_config *cfg);

/* Index of the table whose source is "schema.name" (or "name" = public.name); -1 if none. */
int config_find_source(const wb_config *cfg, const char *schema, const char *name);
/* Target column name for a source column (applies renames); NULL when excluded. */
const char *config_target_column(const table_config *t, const char *source_column);

/* Picks -c, then $WALBRIDGE_CONFIG, then ./walbridge.json. */
const char *config_default_path(const char *cli_path);

#endif
