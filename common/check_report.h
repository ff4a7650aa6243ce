/*
 * check_report.h — what `walbridge check` found, how it is gathered and how
 * it is printed.  Private to common/check.c, check_probe.c and check_report.c.
 *
 * The probes in check.c fill a check_report: facts about each side (shown
 * as "name: value" lines, or JSON members), findings that are not about one
 * table's columns (wal_level, privileges, the slot, ...), and the catalog
 * with its per-table problems.  check_report.c renders the report together
 * with the plan (tables in order, kind, key mapping, reference remaps,
 * skipped columns) as text or JSON.
 *
 * Ownership: check_report_free releases facts and findings; the catalog and
 * config are borrowed and freed by the caller.
 */
#ifndef WALBRIDGE_CHECK_REPORT_H
#define WALBRIDGE_CHECK_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "common/catalog.h"
#include "common/config.h"

typedef struct check_fact {
    char *name;  /* "wal_level" */
    char *value; /* "logical" */
} check_fact;

typedef struct check_report {
    check_fact *source_facts;
    size_t nsource_facts;
    check_fact *target_facts;
    size_t ntarget_facts;
    catalog_problem *findings; /* table: "source", "target" or a configured table */
    size_t nfindings;
    const catalog *cat; /* NULL when the catalog could not be read */
} check_report;

void check_report_init(check_report *r);
void check_report_free(check_report *r);

void check_report_fact(check_report *r, bool source, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void check_report_finding(check_report *r, catalog_severity sev, const char *scope,
                          const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Errors and warnings over findings and catalog problems together. */
size_t check_report_count(const check_report *r, catalog_severity sev);

/*
 * The probes (check_probe.c): add facts and findings about one side.  Return
 * false only when a query failed (logged); the caller then exits 3.
 */
bool check_probe_source(check_report *r, PGconn *source, const wb_config *cfg);
bool check_probe_target(check_report *r, PGconn *target, const wb_config *cfg);

void check_report_print_text(FILE *out, const check_report *r, const wb_config *cfg);
/* Returns false only when the JSON could not be built (out of memory). */
bool check_report_print_json(FILE *out, const check_report *r, const wb_config *cfg);

#endif
