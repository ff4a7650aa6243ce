/*
 * check_report.c — collects what `walbridge check` found and prints it, with
 * the plan, as text (for people) or JSON (for scripts).  See check_report.h.
 *
 * The plan says, per table in processing order (parents first, "cycle" when
 * the table is part of a reference cycle): its kind, how the key maps
 * ("id -> legacy_id, new uuid = v5(ns, 'public.offices:<id>')"), which
 * columns receive a parent's uuid, which columns travel and which are
 * skipped and why.
 */
#include "common/check_report.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

void check_report_init(check_report *r)
{
    memset(r, 0, sizeof *r);
}

static void facts_free(check_fact *facts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(facts[i].name);
        free(facts[i].value);
    }
    free(facts);
}

void check_report_free(check_report *r)
{
    facts_free(r->source_facts, r->nsource_facts);
    facts_free(r->target_facts, r->ntarget_facts);
    for (size_t i = 0; i < r->nfindings; i++) {
        free(r->findings[i].table);
        free(r->findings[i].message);
        free(r->findings[i].hint);
    }
    free(r->findings);
    memset(r, 0, sizeof *r);
}

void check_report_fact(check_report *r, bool source, const char *name, const char *fmt, ...)
{
    check_fact **facts = source ? &r->source_facts : &r->target_facts;
    size_t *n = source ? &r->nsource_facts : &r->ntarget_facts;
    *facts = wb_xrealloc(*facts, (*n + 1) * sizeof **facts);
    strbuf value;
    strbuf_init(&value);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(&value, fmt, ap);
    va_end(ap);
    (*facts)[*n].name = wb_xstrdup(name);
    (*facts)[*n].value = strbuf_detach(&value);
    strbuf_free(&value);
    (*n)++;
}

void check_report_finding(check_report *r, catalog_severity sev, const char *scope,
                          const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    catalog_problems_vappend(&r->findings, &r->nfindings, sev, scope, hint, fmt, ap);
    va_end(ap);
}

size_t check_report_count(const check_report *r, catalog_severity sev)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        n += r->findings[i].severity == sev ? 1 : 0;
    for (size_t i = 0; r->cat != NULL && i < r->cat->nproblems; i++)
        n += r->cat->problems[i].severity == sev ? 1 : 0;
    return n;
}

/* ---- plan pieces shared by both formats -------------------------------- */

static const char *kind_name(table_kind kind)
{
    switch (kind) {
    case TABLE_UUID_MAPPED:
        return "uuid-mapped";
    case TABLE_IDENTITY:
        return "identity";
    case TABLE_KEYLESS:
        return "keyless";
    }
    return "?";
}

static const char *skip_reason(const table_config *t, const column_plan *c)
{
    if (c->generated)
        return "generated";
    if (config_target_column(t, c->source) == NULL)
        return "excluded";
    return "not in target";
}

/* "id -> legacy_id, new uuid = v5(ns, 'public.offices:<id>')" and the like. */
static void append_key_mapping(strbuf *sb, const wb_config *cfg, const table_config *t)
{
    if (t->kind == TABLE_UUID_MAPPED) {
        strbuf_appendf(sb, "%s -> %s; %s keeps the migrated uuid, new rows get v5(%s, '%s:<%s>')",
                       t->key[0], t->legacy_key, t->target_key, cfg->uuid_namespace_text, t->source,
                       t->key[0]);
    } else if (t->kind == TABLE_IDENTITY) {
        strbuf_append(sb, "(");
        for (size_t k = 0; k < t->nkey; k++) {
            const char *dst = config_target_column(t, t->key[k]);
            strbuf_appendf(sb, "%s%s", k > 0 ? ", " : "", t->key[k]);
            if (dst != NULL && strcmp(dst, t->key[k]) != 0)
                strbuf_appendf(sb, " -> %s", dst);
            for (size_t i = 0; i < t->nrefs; i++)
                if (strcmp(t->refs[i].column, t->key[k]) == 0)
                    strbuf_appendf(sb, " as the uuid of %s", t->refs[i].parent);
        }
        strbuf_append(sb, "): same key in the target");
    } else {
        strbuf_append(sb, "none: rows are matched by their full content (REPLICA IDENTITY FULL)");
    }
}

static const char *severity_name(catalog_severity sev)
{
    return sev == CATALOG_ERROR ? "ERROR" : "WARNING";
}

/* ---- text -------------------------------------------------------------- */

static void print_facts(FILE *out, const char *title, const check_fact *facts, size_t n)
{
    fprintf(out, "%s\n", title);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-26s %s\n", facts[i].name, facts[i].value);
}

static void print_table_text(FILE *out, const wb_config *cfg, const table_plan *p, size_t order)
{
    const table_config *t = &cfg->tables[order];
    strbuf sb;
    strbuf_init(&sb);
    fprintf(out, "  %2zu. %s -> %s  %s%s\n", order + 1, t->source, t->target, kind_name(t->kind),
            t->in_cycle ? "  [cycle]" : "");
    append_key_mapping(&sb, cfg, t);
    fprintf(out, "        key:        %s\n", sb.data);
    for (size_t i = 0; i < t->nrefs; i++) {
        const char *dst = config_target_column(t, t->refs[i].column);
        const table_config *parent = &cfg->tables[t->refs[i].parent_index];
        fprintf(out, "        reference:  %s", t->refs[i].column);
        if (dst != NULL && strcmp(dst, t->refs[i].column) != 0)
            fprintf(out, " -> %s", dst);
        fprintf(out, " gets the uuid of %s (%s)\n", t->refs[i].parent,
                parent->target_key != NULL ? parent->target_key : "its key");
    }
    if (p == NULL || p->ncolumns == 0) {
        fputs("        columns:    (not planned: see the problems below)\n", out);
        strbuf_free(&sb);
        return;
    }
    strbuf_reset(&sb);
    size_t copied = 0;
    for (size_t c = 0; c < p->ncolumns; c++) {
        const column_plan *cp = &p->columns[c];
        if (cp->skipped || cp->role != COLROLE_DATA)
            continue;
        strbuf_appendf(&sb, "%s%s", copied > 0 ? ", " : "", cp->source);
        if (strcmp(cp->source, cp->target) != 0)
            strbuf_appendf(&sb, " -> %s", cp->target);
        copied++;
    }
    fprintf(out, "        columns:    %s\n", copied > 0 ? sb.data : "(none besides keys)");
    strbuf_reset(&sb);
    size_t skipped = 0;
    for (size_t c = 0; c < p->ncolumns; c++) {
        const column_plan *cp = &p->columns[c];
        if (!cp->skipped)
            continue;
        strbuf_appendf(&sb, "%s%s (%s)", skipped > 0 ? ", " : "", cp->source, skip_reason(t, cp));
        skipped++;
    }
    if (skipped > 0)
        fprintf(out, "        skipped:    %s\n", sb.data);
    strbuf_free(&sb);
}

static void print_problem_text(FILE *out, const catalog_problem *p)
{
    fprintf(out, "  %-8s %s\n", severity_name(p->severity), p->message);
    if (p->hint != NULL)
        fprintf(out, "           hint: %s\n", p->hint);
}

void check_report_print_text(FILE *out, const check_report *r, const wb_config *cfg)
{
    fprintf(out, "walbridge check: %s\n\n", cfg->path != NULL ? cfg->path : "(config)");
    print_facts(out, "Source", r->source_facts, r->nsource_facts);
    print_facts(out, "Target", r->target_facts, r->ntarget_facts);
    fprintf(out, "\nPlan (%zu table%s, parents first):\n", cfg->ntables,
            cfg->ntables == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->ntables; i++)
        print_table_text(out, cfg, r->cat != NULL ? &r->cat->tables[i] : NULL, i);

    size_t errors = check_report_count(r, CATALOG_ERROR);
    size_t warnings = check_report_count(r, CATALOG_WARNING);
    if (errors + warnings > 0) {
        fputs("\nProblems:\n", out);
        for (int pass = CATALOG_ERROR; pass >= CATALOG_WARNING; pass--) {
            for (size_t i = 0; i < r->nfindings; i++)
                if ((int)r->findings[i].severity == pass)
                    print_problem_text(out, &r->findings[i]);
            for (size_t i = 0; r->cat != NULL && i < r->cat->nproblems; i++)
                if ((int)r->cat->problems[i].severity == pass)
                    print_problem_text(out, &r->cat->problems[i]);
        }
    }
    fprintf(out, "\nResult: %s: %zu error%s, %zu warning%s\n", errors > 0 ? "NOT READY" : "ready",
            errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
}

/* ---- JSON -------------------------------------------------------------- */

static cJSON *facts_json(const check_fact *facts, size_t n)
{
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; obj != NULL && i < n; i++)
        cJSON_AddStringToObject(obj, facts[i].name, facts[i].value);
    return obj;
}

static void add_problem_json(cJSON *arr, const catalog_problem *p)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddStringToObject(o, "severity", p->severity == CATALOG_ERROR ? "error" : "warning");
    if (p->table != NULL)
        cJSON_AddStringToObject(o, "table", p->table);
    else
        cJSON_AddNullToObject(o, "table");
    cJSON_AddStringToObject(o, "message", p->message);
    if (p->hint != NULL)
        cJSON_AddStringToObject(o, "hint", p->hint);
    else
        cJSON_AddNullToObject(o, "hint");
    cJSON_AddItemToArray(arr, o);
}

static cJSON *columns_json(const table_config *t, const table_plan *p)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t c = 0; arr != NULL && p != NULL && c < p->ncolumns; c++) {
        const column_plan *cp = &p->columns[c];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            break;
        static const char *const roles[] = {"data", "key", "reference"};
        cJSON_AddStringToObject(o, "source", cp->source);
        cJSON_AddStringToObject(o, "source_type", cp->source_type);
        if (cp->target != NULL) {
            cJSON_AddStringToObject(o, "target", cp->target);
            cJSON_AddStringToObject(o, "target_type", cp->target_type);
        } else {
            cJSON_AddNullToObject(o, "target");
            cJSON_AddNullToObject(o, "target_type");
        }
        cJSON_AddStringToObject(o, "role", roles[cp->role]);
        cJSON_AddBoolToObject(o, "skipped", cp->skipped);
        if (cp->skipped)
            cJSON_AddStringToObject(o, "skip_reason", skip_reason(t, cp));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *table_json(const wb_config *cfg, const table_plan *p, size_t order)
{
    const table_config *t = &cfg->tables[order];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "order", (double)(order + 1));
    cJSON_AddStringToObject(o, "source", t->source);
    cJSON_AddStringToObject(o, "target", t->target);
    cJSON_AddStringToObject(o, "kind", kind_name(t->kind));
    cJSON_AddBoolToObject(o, "cycle", t->in_cycle);
    cJSON *keys = cJSON_AddArrayToObject(o, "key");
    for (size_t k = 0; keys != NULL && k < t->nkey; k++)
        cJSON_AddItemToArray(keys, cJSON_CreateString(t->key[k]));
    if (t->kind == TABLE_UUID_MAPPED) {
        cJSON_AddStringToObject(o, "target_key", t->target_key);
        cJSON_AddStringToObject(o, "legacy_key", t->legacy_key);
    }
    strbuf sb;
    strbuf_init(&sb);
    append_key_mapping(&sb, cfg, t);
    cJSON_AddStringToObject(o, "key_mapping", sb.data);
    strbuf_free(&sb);
    cJSON *refs = cJSON_AddArrayToObject(o, "references");
    for (size_t i = 0; refs != NULL && i < t->nrefs; i++) {
        cJSON *ref = cJSON_CreateObject();
        if (ref == NULL)
            break;
        const char *dst = config_target_column(t, t->refs[i].column);
        cJSON_AddStringToObject(ref, "column", t->refs[i].column);
        cJSON_AddStringToObject(ref, "target_column", dst != NULL ? dst : t->refs[i].column);
        cJSON_AddStringToObject(ref, "parent", t->refs[i].parent);
        cJSON_AddItemToArray(refs, ref);
    }
    cJSON_AddItemToObject(o, "columns", columns_json(t, p));
    return o;
}

bool check_report_print_json(FILE *out, const check_report *r, const wb_config *cfg)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return false;
    size_t errors = check_report_count(r, CATALOG_ERROR);
    size_t warnings = check_report_count(r, CATALOG_WARNING);
    cJSON_AddStringToObject(root, "config", cfg->path != NULL ? cfg->path : "");
    cJSON_AddBoolToObject(root, "ok", errors == 0);
    cJSON_AddNumberToObject(root, "errors", (double)errors);
    cJSON_AddNumberToObject(root, "warnings", (double)warnings);
    cJSON_AddItemToObject(root, "source", facts_json(r->source_facts, r->nsource_facts));
    cJSON_AddItemToObject(root, "target", facts_json(r->target_facts, r->ntarget_facts));
    cJSON *tables = cJSON_AddArrayToObject(root, "tables");
    for (size_t i = 0; tables != NULL && i < cfg->ntables; i++)
        cJSON_AddItemToArray(tables,
                             table_json(cfg, r->cat != NULL ? &r->cat->tables[i] : NULL, i));
    cJSON *problems = cJSON_AddArrayToObject(root, "problems");
    for (size_t i = 0; problems != NULL && i < r->nfindings; i++)
        add_problem_json(problems, &r->findings[i]);
    for (size_t i = 0; problems != NULL && r->cat != NULL && i < r->cat->nproblems; i++)
        add_problem_json(problems, &r->cat->problems[i]);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text == NULL)
        return false;
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    return true;
}
