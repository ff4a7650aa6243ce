/*
 * config_tables.c — the "tables" part of walbridge.json: one table_config
 * per entry (names, key kind, references, column options, delete/truncate
 * policies), the checks across tables (duplicates, references to known
 * UUID-mapped tables), and the parents-first ordering.
 *
 * Ordering: the tables form a graph child -> parent through "references".
 * Its strongly connected components (Tarjan) are the reference cycles; the
 * components are emitted in topological order, always choosing the ready
 * component whose first table comes earliest in the file, and the tables of
 * one component in file order.  So a file already written parents-first
 * keeps its order, and a cycle is handled, not refused: its tables are
 * marked in_cycle (as is a table that references itself).
 */
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/strbuf.h"

static bool str_in(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* "key": "col" or ["col", ...] */
static bool table_key(cfg_ctx *c, const cJSON *item, const char *jpath, table_config *t)
{
    if (cJSON_IsString(item)) {
        t->key = wb_xcalloc(1, sizeof *t->key);
        if (!cfg_nonempty_string(c, item, jpath, &t->key[0]))
            return false;
        t->nkey = 1;
        return true;
    }
    if (!cJSON_IsArray(item))
        return cfg_fail(c, jpath, "expected a column name or an array of column names");
    size_t n = (size_t)cJSON_GetArraySize(item);
    if (n == 0)
        return cfg_fail(c, jpath, "must name at least one column");
    t->key = wb_xcalloc(n, sizeof *t->key);
    size_t i = 0;
    for (const cJSON *col = item->child; col != NULL; col = col->next, i++) {
        char path[JPATH_MAX];
        char *name;
        cfg_jpath_index(path, jpath, i);
        if (!cfg_nonempty_string(c, col, path, &name))
            return false;
        if (str_in(t->key, t->nkey, name)) {
            cfg_fail(c, path, "column \"%s\" is listed twice", name);
            free(name);
            return false;
        }
        t->key[t->nkey++] = name;
    }
    return true;
}

static bool table_references(cfg_ctx *c, const cJSON *obj, const char *jpath, table_config *t)
{
    if (!cfg_check_object(c, obj, jpath, NULL, 0))
        return false;
    size_t n = (size_t)cJSON_GetArraySize(obj);
    t->refs = wb_xcalloc(n, sizeof *t->refs);
    for (const cJSON *item = obj->child; item != NULL; item = item->next) {
        char path[JPATH_MAX];
        char *parent_text;
        cfg_jpath_key(path, jpath, item->string);
        if (item->string[0] == '\0')
            return cfg_fail(c, path, "empty column name");
        if (!cfg_nonempty_string(c, item, path, &parent_text))
            return false;
        char *parent = cfg_normalise_table(c, path, parent_text);
        free(parent_text);
        if (parent == NULL)
            return false;
        table_reference *r = &t->refs[t->nrefs++];
        r->column = wb_xstrdup(item->string);
        r->parent = parent;
        r->parent_index = -1;
    }
    return true;
}

static bool table_columns(cfg_ctx *c, const cJSON *obj, const char *jpath, table_config *t)
{
    static const char *const allowed[] = {"exclude", "rename"};
    char path[JPATH_MAX];
    if (!cfg_check_object(c, obj, jpath, allowed, 2))
        return false;
    const cJSON *exclude = cJSON_GetObjectItemCaseSensitive(obj, "exclude");
    if (exclude != NULL) {
        cfg_jpath_key(path, jpath, "exclude");
        if (!cJSON_IsArray(exclude))
            return cfg_fail(c, path, "expected an array of column names");
        t->exclude = wb_xcalloc((size_t)cJSON_GetArraySize(exclude), sizeof *t->exclude);
        size_t i = 0;
        for (const cJSON *col = exclude->child; col != NULL; col = col->next, i++) {
            char item_path[JPATH_MAX];
            cfg_jpath_index(item_path, path, i);
            if (!cfg_nonempty_string(c, col, item_path, &t->exclude[t->nexclude]))
                return false;
            t->nexclude++;
        }
    }
    const cJSON *rename = cJSON_GetObjectItemCaseSensitive(obj, "rename");
    if (rename != NULL) {
        cfg_jpath_key(path, jpath, "rename");
        if (!cfg_check_object(c, rename, path, NULL, 0))
            return false;
        t->renames = wb_xcalloc((size_t)cJSON_GetArraySize(rename), sizeof *t->renames);
        for (const cJSON *item = rename->child; item != NULL; item = item->next) {
            char item_path[JPATH_MAX];
            char *target;
            cfg_jpath_key(item_path, path, item->string);
            if (item->string[0] == '\0')
                return cfg_fail(c, item_path, "empty column name");
            if (!cfg_nonempty_string(c, item, item_path, &target))
                return false;
            for (size_t k = 0; k < t->nrenames; k++) {
                if (strcmp(t->renames[k].target, target) == 0) {
                    cfg_fail(c, item_path, "\"%s\" is also the new name of \"%s\"", target,
                             t->renames[k].source);
                    free(target);
                    return false;
                }
            }
            t->renames[t->nrenames].source = wb_xstrdup(item->string);
            t->renames[t->nrenames].target = target;
            t->nrenames++;
        }
    }
    return true;
}

static bool table_policies(cfg_ctx *c, const cJSON *obj, const char *jpath, table_config *t)
{
    char path[JPATH_MAX];
    const cJSON *deletes = cJSON_GetObjectItemCaseSensitive(obj, "deletes");
    t->deletes = DELETES_APPLY;
    t->truncate_apply = true;
    cfg_jpath_key(path, jpath, "deletes");
    if (cJSON_IsString(deletes) && strcmp(deletes->valuestring, "apply") == 0) {
        t->deletes = DELETES_APPLY;
    } else if (cJSON_IsString(deletes) && strcmp(deletes->valuestring, "ignore") == 0) {
        t->deletes = DELETES_IGNORE;
    } else if (cJSON_IsObject(deletes)) {
        static const char *const allowed[] = {"soft"};
        if (!cfg_check_object(c, deletes, path, allowed, 1))
            return false;
        const cJSON *soft = cJSON_GetObjectItemCaseSensitive(deletes, "soft");
        if (soft == NULL)
            return cfg_fail(c, path, "expected {\"soft\": \"<column>\"}");
        char soft_path[JPATH_MAX];
        cfg_jpath_key(soft_path, path, "soft");
        if (!cfg_nonempty_string(c, soft, soft_path, &t->soft_delete_column))
            return false;
        t->deletes = DELETES_SOFT;
    } else if (deletes != NULL) {
        return cfg_fail(c, path, "expected \"apply\", \"ignore\" or {\"soft\": \"<column>\"}");
    }
    const cJSON *truncate = cJSON_GetObjectItemCaseSensitive(obj, "truncate");
    cfg_jpath_key(path, jpath, "truncate");
    if (cJSON_IsString(truncate) && strcmp(truncate->valuestring, "apply") == 0)
        t->truncate_apply = true;
    else if (cJSON_IsString(truncate) && strcmp(truncate->valuestring, "ignore") == 0)
        t->truncate_apply = false;
    else if (truncate != NULL)
        return cfg_fail(c, path, "expected \"apply\" or \"ignore\"");
    return true;
}

/* Key kind and the consistency of key, legacy_key, target_key and columns. */
static bool table_kind_checks(cfg_ctx *c, const cJSON *obj, const char *jpath, table_config *t)
{
    char path[JPATH_MAX];
    if (t->legacy_key != NULL) {
        t->kind = TABLE_UUID_MAPPED;
        cfg_jpath_key(path, jpath, cJSON_HasObjectItem(obj, "key") ? "key" : "legacy_key");
        if (t->nkey != 1)
            return cfg_fail(c, path,
                            "a UUID-mapped table (legacy_key) needs \"key\" to name exactly one "
                            "integer source column");
        if (t->target_key == NULL)
            t->target_key = wb_xstrdup("id");
        if (strcmp(t->target_key, t->legacy_key) == 0) {
            cfg_jpath_key(path, jpath, "legacy_key");
            return cfg_fail(c, path, "must differ from target_key \"%s\"", t->target_key);
        }
    } else {
        t->kind = t->nkey > 0 ? TABLE_IDENTITY : TABLE_KEYLESS;
        if (t->target_key != NULL) {
            cfg_jpath_key(path, jpath, "target_key");
            return cfg_fail(c, path, "only allowed together with legacy_key");
        }
    }
    for (size_t i = 0; i < t->nexclude; i++) {
        cfg_jpath_key(path, jpath, "columns.exclude");
        if (str_in(t->key, t->nkey, t->exclude[i]))
            return cfg_fail(c, path, "\"%s\" is a key column and cannot be excluded",
                            t->exclude[i]);
        for (size_t k = 0; k < t->nrenames; k++)
            if (strcmp(t->renames[k].source, t->exclude[i]) == 0)
                return cfg_fail(c, path, "\"%s\" is both excluded and renamed", t->exclude[i]);
    }
    for (size_t k = 0; t->kind == TABLE_UUID_MAPPED && k < t->nrenames; k++) {
        char rename_path[JPATH_MAX];
        cfg_jpath_key(rename_path, jpath, "columns.rename");
        cfg_jpath_key(path, rename_path, t->renames[k].source);
        if (strcmp(t->renames[k].source, t->key[0]) == 0)
            return cfg_fail(c, path,
                            "the key of a UUID-mapped table is written to legacy_key \"%s\"; it "
                            "cannot be renamed",
                            t->legacy_key);
        if (strcmp(t->renames[k].target, t->target_key) == 0 ||
            strcmp(t->renames[k].target, t->legacy_key) == 0)
            return cfg_fail(c, path, "\"%s\" is the table's %s column", t->renames[k].target,
                            strcmp(t->renames[k].target, t->target_key) == 0 ? "target_key"
                                                                             : "legacy_key");
    }
    for (size_t i = 0; i < t->nrefs; i++) {
        char refs_path[JPATH_MAX];
        cfg_jpath_key(refs_path, jpath, "references");
        cfg_jpath_key(path, refs_path, t->refs[i].column);
        if (str_in(t->exclude, t->nexclude, t->refs[i].column))
            return cfg_fail(c, path, "column is also in columns.exclude");
        if (t->kind == TABLE_UUID_MAPPED && strcmp(t->key[0], t->refs[i].column) == 0)
            return cfg_fail(c, path,
                            "column is the key of this UUID-mapped table (it becomes "
                            "legacy_key \"%s\"); it cannot also be a reference",
                            t->legacy_key);
    }
    return true;
}

static bool table_parse(cfg_ctx *c, const cJSON *obj, const char *jpath, table_config *t)
{
    static const char *const allowed[] = {"source",     "target",     "key",
                                          "target_key", "legacy_key", "references",
                                          "columns",    "deletes",    "truncate"};
    char path[JPATH_MAX];
    char *text = NULL;
    if (!cfg_check_object(c, obj, jpath, allowed, sizeof allowed / sizeof allowed[0]))
        return false;
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(obj, "source");
    cfg_jpath_key(path, jpath, "source");
    if (source == NULL)
        return cfg_fail(c, path, "required (\"schema.table\")");
    if (!cfg_nonempty_string(c, source, path, &text))
        return false;
    bool ok = cfg_table_name(c, path, text, &t->source_schema, &t->source_name, &t->source);
    free(text);
    text = NULL;
    if (!ok)
        return false;

    const cJSON *target = cJSON_GetObjectItemCaseSensitive(obj, "target");
    cfg_jpath_key(path, jpath, "target");
    if (target == NULL)
        text = wb_xstrdup(t->source);
    else if (!cfg_nonempty_string(c, target, path, &text))
        return false;
    ok = cfg_table_name(c, path, text, &t->target_schema, &t->target_name, &t->target);
    free(text);
    if (!ok)
        return false;

    const cJSON *key = cJSON_GetObjectItemCaseSensitive(obj, "key");
    cfg_jpath_key(path, jpath, "key");
    if (key != NULL && !table_key(c, key, path, t))
        return false;
    if (!cfg_opt_string(c, obj, jpath, "legacy_key", &t->legacy_key) ||
        !cfg_opt_string(c, obj, jpath, "target_key", &t->target_key))
        return false;

    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(obj, "references");
    cfg_jpath_key(path, jpath, "references");
    if (refs != NULL && !table_references(c, refs, path, t))
        return false;
    const cJSON *columns = cJSON_GetObjectItemCaseSensitive(obj, "columns");
    cfg_jpath_key(path, jpath, "columns");
    if (columns != NULL && !table_columns(c, columns, path, t))
        return false;
    return table_policies(c, obj, jpath, t) && table_kind_checks(c, obj, jpath, t);
}

static int find_table(const wb_config *cfg, const char *full)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (strcmp(cfg->tables[i].source, full) == 0)
            return (int)i;
    return -1;
}

/* Duplicates, and every reference names a configured UUID-mapped table. */
static bool tables_cross_checks(cfg_ctx *c, wb_config *cfg)
{
    char path[JPATH_MAX], table_path[JPATH_MAX], refs_path[JPATH_MAX];
    for (size_t i = 0; i < cfg->ntables; i++) {
        const table_config *t = &cfg->tables[i];
        cfg_jpath_index(table_path, "tables", i);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->tables[j].source, t->source) == 0) {
                cfg_jpath_key(path, table_path, "source");
                return cfg_fail(c, path, "table \"%s\" is already configured in tables[%zu]",
                                t->source, j);
            }
            if (strcmp(cfg->tables[j].target, t->target) == 0) {
                cfg_jpath_key(path, table_path, "target");
                return cfg_fail(c, path, "target \"%s\" is also the target of tables[%zu]",
                                t->target, j);
            }
        }
    }
    for (size_t i = 0; i < cfg->ntables; i++) {
        table_config *t = &cfg->tables[i];
        cfg_jpath_index(table_path, "tables", i);
        cfg_jpath_key(refs_path, table_path, "references");
        for (size_t r = 0; r < t->nrefs; r++) {
            cfg_jpath_key(path, refs_path, t->refs[r].column);
            int parent = find_table(cfg, t->refs[r].parent);
            if (parent < 0)
                return cfg_fail(c, path, "unknown table \"%s\"", t->refs[r].parent);
            if (cfg->tables[parent].kind != TABLE_UUID_MAPPED)
                return cfg_fail(c, path, "table \"%s\" is not UUID-mapped (no legacy_key)",
                                t->refs[r].parent);
            t->refs[r].parent_index = parent;
        }
    }
    return true;
}

bool config_parse_tables(cfg_ctx *c, const cJSON *root, wb_config *cfg)
{
    const cJSON *tables = cJSON_GetObjectItemCaseSensitive(root, "tables");
    if (tables == NULL)
        return cfg_fail(c, "tables", "required (an array of tables)");
    if (!cJSON_IsArray(tables))
        return cfg_fail(c, "tables", "expected an array of tables");
    size_t n = (size_t)cJSON_GetArraySize(tables);
    if (n == 0)
        return cfg_fail(c, "tables", "must list at least one table");
    cfg->tables = wb_xcalloc(n, sizeof *cfg->tables);
    size_t i = 0;
    for (const cJSON *item = tables->child; item != NULL; item = item->next, i++) {
        char path[JPATH_MAX];
        cfg_jpath_index(path, "tables", i);
        cfg->ntables = i + 1; /* so config_free releases a half-parsed entry */
        if (!table_parse(c, item, path, &cfg->tables[i]))
            return false;
    }
    return tables_cross_checks(c, cfg);
}

/* ---- ordering ----------------------------------------------------------- */

/* Tarjan's strongly connected components over child -> parent edges. */
typedef struct scc_state {
    const wb_config *cfg;
    int *index; /* visit number, -1 unvisited */
    int *lowlink;
    bool *on_stack;
    int *stack;
    size_t depth;
    int counter;
    int *comp; /* component id per table */
    int ncomp;
} scc_state;

static void scc_visit(scc_state *s, int v)
{
    const table_config *t = &s->cfg->tables[v];
    s->index[v] = s->lowlink[v] = s->counter++;
    s->stack[s->depth++] = v;
    s->on_stack[v] = true;
    for (size_t r = 0; r < t->nrefs; r++) {
        int w = t->refs[r].parent_index;
        if (s->index[w] < 0) {
            scc_visit(s, w);
            if (s->lowlink[w] < s->lowlink[v])
                s->lowlink[v] = s->lowlink[w];
        } else if (s->on_stack[w] && s->index[w] < s->lowlink[v]) {
            s->lowlink[v] = s->index[w];
        }
    }
    if (s->lowlink[v] == s->index[v]) {
        int w;
        do {
            w = s->stack[--s->depth];
            s->on_stack[w] = false;
            s->comp[w] = s->ncomp;
        } while (w != v);
        s->ncomp++;
    }
}

/*
 * Fills order[] with table indexes parents-first (see the file comment) and
 * marks in_cycle.  comp[] from Tarjan.
 */
static void order_components(wb_config *cfg, const int *comp, int ncomp, int *order)
{
    size_t n = cfg->ntables;
    int *pending = wb_xcalloc((size_t)ncomp, sizeof *pending); /* unplaced parent edges */
    int *first = wb_xcalloc((size_t)ncomp, sizeof *first);     /* earliest table in file */
    int *size = wb_xcalloc((size_t)ncomp, sizeof *size);
    bool *placed = wb_xcalloc((size_t)ncomp, sizeof *placed);
    for (int k = 0; k < ncomp; k++)
        first[k] = (int)n;
    for (size_t i = 0; i < n; i++) {
        int k = comp[i];
        size[k]++;
        if ((int)i < first[k])
            first[k] = (int)i;
        for (size_t r = 0; r < cfg->tables[i].nrefs; r++)
            if (comp[cfg->tables[i].refs[r].parent_index] != k)
                pending[k]++;
    }
    size_t placed_tables = 0;
    for (int round = 0; round < ncomp; round++) {
        int best = -1;
        for (int k = 0; k < ncomp; k++)
            if (!placed[k] && pending[k] == 0 && (best < 0 || first[k] < first[best]))
                best = k;
        /* The condensation is acyclic, so some component is always ready. */
        placed[best] = true;
        for (size_t i = 0; i < n; i++) {
            if (comp[i] != best)
                continue;
            order[placed_tables++] = (int)i;
            cfg->tables[i].in_cycle = size[best] > 1;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t r = 0; r < cfg->tables[i].nrefs; r++)
                if (comp[i] != best && comp[cfg->tables[i].refs[r].parent_index] == best)
                    pending[comp[i]]--;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < cfg->tables[i].nrefs; r++)
            if (cfg->tables[i].refs[r].parent_index == (int)i)
                cfg->tables[i].in_cycle = true; /* self-reference */
    free(pending);
    free(first);
    free(size);
    free(placed);
}

bool config_order_tables(cfg_ctx *c, wb_config *cfg)
{
    (void)c;
    size_t n = cfg->ntables;
    scc_state s = {.cfg = cfg, .counter = 0, .depth = 0, .ncomp = 0};
    s.index = wb_xcalloc(n, sizeof *s.index);
    s.lowlink = wb_xcalloc(n, sizeof *s.lowlink);
    s.on_stack = wb_xcalloc(n, sizeof *s.on_stack);
    s.stack = wb_xcalloc(n, sizeof *s.stack);
    s.comp = wb_xcalloc(n, sizeof *s.comp);
    for (size_t i = 0; i < n; i++)
        s.index[i] = -1;
    for (size_t i = 0; i < n; i++)
        if (s.index[i] < 0)
            scc_visit(&s, (int)i);

    int *order = wb_xcalloc(n, sizeof *order);
    order_components(cfg, s.comp, s.ncomp, order);
    table_config *sorted = wb_xcalloc(n, sizeof *sorted);
    for (size_t k = 0; k < n; k++)
        sorted[k] = cfg->tables[order[k]];
    free(cfg->tables);
    cfg->tables = sorted;
    /* parent_index must refer to the final order. */
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < cfg->tables[i].nrefs; r++)
            cfg->tables[i].refs[r].parent_index = find_table(cfg, cfg->tables[i].refs[r].parent);

    free(order);
    free(s.index);
    free(s.lowlink);
    free(s.on_stack);
    free(s.stack);
    free(s.comp);
    return true;
}
