/*
 * bfsession.c — shared setup of backfill and verify (see bfsession.h).
 */
#include "backfill/bfsession.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

/* Marks one table ("schema.name" or "name"); false (logged) when it is not configured. */
static bool select_one(bf_session *s, char *name)
{
    char *dot = strchr(name, '.');
    int idx;
    if (dot != NULL) {
        *dot = '\0';
        idx = config_find_source(&s->cfg, name, dot + 1);
        *dot = '.';
    } else {
        idx = config_find_source(&s->cfg, NULL, name);
    }
    if (idx < 0) {
        log_full(LOG_ERROR, NULL, "Name a source table listed in the config's \"tables\".",
                 "--tables: \"%s\" is not a configured table (%s)", name, s->cfg.path);
        return false;
    }
    s->selected[idx] = true;
    return true;
}

/* Marks the tables named in a comma list; false (logged) on an unknown name. */
static bool select_tables(bf_session *s, const char *tables)
{
    s->selected = wb_xcalloc(s->cfg.ntables > 0 ? s->cfg.ntables : 1, sizeof *s->selected);
    if (tables == NULL) {
        for (size_t i = 0; i < s->cfg.ntables; i++)
            s->selected[i] = true;
        return true;
    }
    char *list = wb_xstrdup(tables);
    bool ok = true;
    char *name = list;
    while (name != NULL) {
        char *comma = strchr(name, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*name == ' ')
            name++;
        if (*name != '\0' && !select_one(s, name))
            ok = false;
        name = comma != NULL ? comma + 1 : NULL;
    }
    free(list);
    return ok;
}

static PGconn *open_side(const char *dsn, pgconn_kind kind, const char *what)
{
    char err[512];
    return pgconn_open(dsn, kind, what, 3, err, sizeof err); /* logs failures */
}

/* Counts catalog errors that concern the run (global ones, or a selected table). */
static size_t relevant_errors(const bf_session *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->cat.nproblems; i++) {
        const catalog_problem *p = &s->cat.problems[i];
        if (p->severity != CATALOG_ERROR)
            continue;
        if (p->table == NULL) {
            n++;
            continue;
        }
        for (size_t t = 0; t < s->cfg.ntables; t++) {
            if (s->selected[t] && strcmp(s->cfg.tables[t].source, p->table) == 0)
                n++;
        }
    }
    return n;
}

static int build_layouts(bf_session *s)
{
    s->layouts = wb_xcalloc(s->cfg.ntables > 0 ? s->cfg.ntables : 1, sizeof *s->layouts);
    for (size_t i = 0; i < s->cfg.ntables; i++) {
        if (!s->selected[i])
            continue;
        char err[512];
        if (!table_layout_init(&s->layouts[i], &s->cfg, &s->cat.tables[i], err, sizeof err)) {
            log_error("%s", err);
            return EXIT_USAGE;
        }
        s->layouts[i].hash =
            tablesql_hash_for_servers(PQserverVersion(s->source), PQserverVersion(s->target_read));
    }
    return EXIT_OK;
}

int bf_session_open(bf_session *s, const char *config_path, const char *tables, bool want_write)
{
    memset(s, 0, sizeof *s);
    int rc = cli_setup(config_path, &s->cfg);
    if (rc != EXIT_OK)
        return rc;
    s->cfg_loaded = true;
    if (!select_tables(s, tables))
        return EXIT_USAGE;
    s->source = open_side(s->cfg.source_dsn, PGCONN_SOURCE, "source");
    if (s->source == NULL)
        return EXIT_RUNTIME;
    s->target_read = open_side(s->cfg.target_dsn, PGCONN_TARGET, "target");
    if (s->target_read == NULL)
        return EXIT_RUNTIME;
    /* The diff queries sort a whole table by key: in memory, not in temp files. */
    if (!pgconn_exec(s->source, "source", BF_DIFF_WORK_MEM) ||
        !pgconn_exec(s->target_read, "target", BF_DIFF_WORK_MEM))
        return EXIT_RUNTIME;
    if (!catalog_load(&s->cfg, s->source, s->target_read, &s->cat))
        return EXIT_RUNTIME;
    s->cat_loaded = true;
    catalog_log_problems(&s->cat);
    size_t errors = relevant_errors(s);
    if (errors > 0) {
        log_full(LOG_ERROR, NULL,
                 "Fix the config or the schemas; \"walbridge check\" lists the plan.",
                 "%zu problem%s in %s against the live databases; nothing was written", errors,
                 errors == 1 ? "" : "s", s->cfg.path);
        return EXIT_USAGE;
    }
    rc = build_layouts(s);
    if (rc != EXIT_OK)
        return rc;
    if (want_write) {
        s->source_fetch = open_side(s->cfg.source_dsn, PGCONN_SOURCE, "source");
        s->source_ahead = open_side(s->cfg.source_dsn, PGCONN_SOURCE, "source");
        if (s->source_fetch == NULL || s->source_ahead == NULL ||
            !pgconn_exec(s->source_ahead, "source", BF_DIFF_WORK_MEM))
            return EXIT_RUNTIME;
        for (int i = 0; i < 2; i++) {
            s->target_write[i] = open_side(s->cfg.target_dsn, PGCONN_TARGET, "target");
            if (s->target_write[i] == NULL)
                return EXIT_RUNTIME;
            /* The batches' joins to the parents, the deferred foreign keys' validation. */
            if (!pgconn_exec(s->target_write[i], "target", BF_DIFF_WORK_MEM))
                return EXIT_RUNTIME;
        }
    }
    return EXIT_OK;
}

void bf_session_close(bf_session *s)
{
    if (s->layouts != NULL) {
        for (size_t i = 0; i < s->cfg.ntables; i++)
            table_layout_free(&s->layouts[i]);
        free(s->layouts);
    }
    free(s->selected);
    if (s->cat_loaded)
        catalog_free(&s->cat);
    if (s->source != NULL)
        PQfinish(s->source);
    if (s->source_fetch != NULL)
        PQfinish(s->source_fetch);
    if (s->source_ahead != NULL)
        PQfinish(s->source_ahead);
    if (s->target_read != NULL)
        PQfinish(s->target_read);
    for (int i = 0; i < 2; i++) {
        if (s->target_write[i] != NULL)
            PQfinish(s->target_write[i]);
    }
    if (s->cfg_loaded) {
        config_free(&s->cfg);
        log_close();
    }
    memset(s, 0, sizeof *s);
}

double bf_session_estimate(PGconn *source, const table_config *t)
{
    strbuf name;
    strbuf_init(&name);
    pgconn_append_qualified(&name, t->source_schema, t->source_name);
    const char *params[1] = {name.data};
    PGresult *res = pgconn_query(source, "source: row estimate",
                                 "SELECT reltuples::float8 FROM pg_class WHERE oid = $1::regclass",
                                 1, params, NULL);
    strbuf_free(&name);
    double estimate = -1;
    if (res != NULL && PQntuples(res) == 1)
        estimate = strtod(PQgetvalue(res, 0, 0), NULL);
    PQclear(res);
    return estimate;
}
