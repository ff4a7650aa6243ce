/*
 * catalog_internal.h — private to catalog.c (reading both catalogs) and
 * catalog_rules.c (building the plan and judging it).  Not for other modules.
 *
 * side_table is what one side's catalog says about one configured table;
 * catalog.c fills one array per side, parallel to wb_config.tables, and
 * frees it after catalog_plan_table has turned it into a table_plan.
 */
#ifndef WALBRIDGE_CATALOG_INTERNAL_H
#define WALBRIDGE_CATALOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/catalog.h"
#include "common/config.h"

/* One column of one table, as one side's catalog describes it. */
typedef struct side_column {
    char *name;
    char *type;    /* format_type(), e.g. "character varying(40)" */
    char *typname; /* pg_type.typname, e.g. "int8", "uuid" */
    char category; /* pg_type.typcategory */
    int typmod;    /* pg_attribute.atttypmod, -1 when unconstrained */
    bool generated;
    bool in_pk;
    bool in_replident; /* member of the REPLICA IDENTITY USING INDEX index */
    bool needs_value;  /* NOT NULL, no default, not identity or generated */
    bool builtin;      /* a built-in type (oid below FirstNormalObjectId), on any server */
    char *fk_schema;   /* single-column FK target, or NULL */
    char *fk_name;
} side_column;

/* A usable unique index: its key column names. */
typedef struct side_index {
    char **cols;
    size_t ncols;
} side_index;

typedef struct side_table {
    bool exists;
    char relkind;
    char replident;
    bool has_pk;
    side_column *cols;
    size_t ncols;
    side_index *uniques;
    size_t nuniques;
    bool deferred; /* target: backfill --defer-indexes dropped its indexes and has not
                    * built them again yet (<state_schema>.deferred_ddl) */
    long pending;  /* target: rows whose reference waits for a reused key's parent
                    * (<state_schema>.pending_refs of this slot) */
} side_table;

/* Appends a problem (message from fmt) to cat->problems; table and hint are copied. */
void catalog_add_problem(catalog *cat, catalog_severity sev, const char *table, const char *hint,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Checks that table index exists on both sides, then fills cat->tables[index]
 * from src and dst and records every problem.  src and dst are borrowed.
 */
void catalog_plan_table(const wb_config *cfg, catalog *cat, size_t index, const side_table *src,
                        const side_table *dst);

#endif
