/*
 * rowfetch.c — source rows of missing and stale keys fetched by key in
 * chunks, on a second connection in the diff's snapshot (see rowfetch.h).
 */
#include "backfill/rowfetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/pgconn.h"

void rowfetch_init(row_fetcher *f, const table_layout *lay, PGconn *conn, batch_writer *bw)
{
    memset(f, 0, sizeof *f);
    f->lay = lay;
    f->conn = conn;
    f->bw = bw;
    strbuf_init(&f->sql);
    tablesql_source_fetch(lay, &f->sql);
    for (int kind = 0; kind < 2; kind++) {
        for (size_t k = 0; k < KEYSET_MAX_KEY; k++)
            strbuf_init(&f->arrays[kind][k]);
    }
}

void rowfetch_free(row_fetcher *f)
{
    strbuf_free(&f->sql);
    for (int kind = 0; kind < 2; kind++) {
        for (size_t k = 0; k < KEYSET_MAX_KEY; k++)
            strbuf_free(&f->arrays[kind][k]);
    }
}

size_t rowfetch_pending(const row_fetcher *f)
{
    return f->queued[0] + f->queued[1];
}

/* Fetches and stages the queued keys of one kind (0 missing, 1 stale). */
static bool fetch_kind(row_fetcher *f, int kind)
{
    const table_layout *lay = f->lay;
    const char *table = lay->table->source;
    size_t nkey = lay->nkey;
    size_t expected = f->queued[kind];
    if (expected == 0)
        return true;
    strbuf params[KEYSET_MAX_KEY];
    const char *values[KEYSET_MAX_KEY] = {NULL};
    for (size_t k = 0; k < nkey; k++) {
        strbuf_init(&params[k]);
        strbuf_append_char(&params[k], '{');
        strbuf_append_len(&params[k], f->arrays[kind][k].data, f->arrays[kind][k].len);
        strbuf_append_char(&params[k], '}');
        values[k] = params[k].data;
        strbuf_reset(&f->arrays[kind][k]);
    }
    f->queued[kind] = 0;
    PGresult *res = pgconn_query(f->conn, table, f->sql.data, (int)nkey, values, NULL);
    for (size_t k = 0; k < nkey; k++)
        strbuf_free(&params[k]);
    if (res == NULL)
        return false;
    bool ok = (size_t)PQntuples(res) == expected;
    if (!ok)
        log_error("%s: fetching %zu %s rows by key from the source returned %d rows (the "
                  "snapshot should hold every one)",
                  table, expected, kind == 0 ? "missing" : "stale", PQntuples(res));
    int nrow = (int)lay->ncols;
    char **row = wb_xcalloc(lay->ncols, sizeof *row);
    size_t *row_len = wb_xcalloc(lay->ncols, sizeof *row_len);
    for (int r = 0; ok && r < PQntuples(res); r++) {
        keyset_entry e;
        memset(&e, 0, sizeof e);
        for (size_t k = 0; k < nkey; k++) {
            e.key[k] = PQgetvalue(res, r, (int)k);
            e.key_len[k] = (size_t)PQgetlength(res, r, (int)k);
        }
        for (int i = 0; i < nrow; i++) {
            int field = (int)nkey + i;
            row[i] = PQgetisnull(res, r, field) ? NULL : PQgetvalue(res, r, field);
            row_len[i] = (size_t)PQgetlength(res, r, field);
        }
        e.row = row;
        e.row_len = row_len;
        e.nrow = nrow;
        ok = bw_stage(f->bw, &e, kind == 1);
    }
    free(row);
    free(row_len);
    PQclear(res);
    return ok;
}

bool rowfetch_queue(row_fetcher *f, const keyset_entry *e, bool stale)
{
    int kind = stale ? 1 : 0;
    for (size_t k = 0; k < f->lay->nkey; k++)
        tablesql_array_append(&f->arrays[kind][k], e->key[k], e->key_len[k]);
    f->queued[kind]++;
    if (rowfetch_pending(f) >= ROWFETCH_CHUNK)
        return rowfetch_flush(f);
    return true;
}

bool rowfetch_flush(row_fetcher *f)
{
    return fetch_kind(f, 0) && fetch_kind(f, 1);
}
