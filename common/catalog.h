/*
 * catalog.h — the per-table column plan, built from the config and both
 * databases' catalogs.  Shared by check, backfill, stream and verify so that
 * they all agree which columns travel, under which names, and how keys and
 * references are remapped.
 *
 * catalog_load never stops at the first problem: it records every problem it
 * finds (missing table or column, no usable key or replica identity, target
 * legacy_key not UNIQUE, incompatible types, ...) in the problem list, each
 * naming its table.  check prints them all; the other commands refuse to run
 * when any has severity CATALOG_ERROR.
 *
 * Ownership: catalog_free releases everything catalog_load allocated.  The
 * table_plan.cfg pointers borrow from the wb_config, which must outlive it.
 */
#ifndef WALBRIDGE_CATALOG_H
#define WALBRIDGE_CATALOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "common/config.h"

typedef enum column_role {
    COLROLE_DATA = 0,  /* copied as is */
    COLROLE_KEY,       /* part of the source key; for UUID-mapped: goes to legacy_key */
    COLROLE_REFERENCE, /* FK to a UUID-mapped parent: target gets the parent's uuid */
} column_role;

typedef struct column_plan {
    char *source;      /* source column name */
    char *target;      /* target column name (after rename); NULL when skipped */
    char *source_type; /* format_type() on the source */
    char *target_type; /* format_type() on the target; NULL when skipped */
    column_role role;
    int ref_parent;      /* COLROLE_REFERENCE: index into wb_config.tables; else -1 */
    bool skipped;        /* excluded, target lacks it, or generated on either side */
    bool generated;      /* stored generated column (source or target): never written */
    bool target_builtin; /* target_type is built in: the source has it too */
} column_plan;

typedef struct table_plan {
    const table_config *cfg;
    int index;            /* same index as in wb_config.tables */
    column_plan *columns; /* every source column, in source attnum order */
    size_t ncolumns;
    int *key_columns;     /* indexes into columns of the source key, in key order */
    size_t nkey_columns;
    char replica_identity; /* source relreplident: 'd','f','n','i' */
    bool source_has_pk;
    bool target_legacy_unique; /* UUID-mapped: target legacy_key has a UNIQUE index */
} table_plan;

typedef enum catalog_severity { CATALOG_WARNING = 0, CATALOG_ERROR } catalog_severity;

typedef struct catalog_problem {
    catalog_severity severity;
    char *table;   /* configured source table, or NULL for a global problem */
    char *message; /* what is wrong */
    char *hint;    /* what to do, may be NULL */
} catalog_problem;

typedef struct catalog {
    table_plan *tables; /* parallel to wb_config.tables */
    size_t ntables;
    catalog_problem *problems;
    size_t nproblems;
} catalog;

/* Returns false only when a query fails (logged); problems go into cat->problems. */
bool catalog_load(const wb_config *cfg, PGconn *source, PGconn *target, catalog *cat);
void catalog_free(catalog *cat);
size_t catalog_error_count(const catalog *cat);
/* Logs every problem (warnings as LOG_WARN, errors as LOG_ERROR). */
void catalog_log_problems(const catalog *cat);

/*
 * Appends one problem to the array *problems of *n entries (grown with
 * wb_xrealloc; the array's owner frees it as catalog_free does): the message
 * is formatted from fmt and ap, table and hint are copied (either may be NULL).
 */
void catalog_problems_vappend(catalog_problem **problems, size_t *n, catalog_severity sev,
                              const char *table, const char *hint, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

/* Finds the column plan for a source column name; NULL if unknown. */
const column_plan *catalog_find_column(const table_plan *t, const char *source_column);

#endif
