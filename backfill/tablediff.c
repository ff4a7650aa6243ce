/*
 * tablediff.c — one table's diff (and repair) for backfill and verify; see
 * tablediff.h for the model.  Three parts: a keyset reader over a COPY TO
 * STDOUT stream, the sink that hands missing/stale rows and extra keys to
 * the batch writer (batchwriter.h) and closes batches between keys, and the
 * driver: checkpoint and resume, both diff queries sent at once, the merge.
 */
#include "backfill/tablediff.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill/batchwriter.h"
#include "backfill/bfsession.h"
#include "backfill/bfstate.h"
#include "backfill/progress.h"
#include "backfill/rowfetch.h"
#include "common/copytext.h"
#include "common/log.h"
#include "common/pgconn.h"

/* ---------------------------------------------------------------- COPY reader */

typedef struct copy_reader {
    PGconn *conn;
    const char *what;  /* "source" or "target" */
    const char *table; /* for messages */
    char *line;        /* current COPY line (PQfreemem) */
    char **fields;
    size_t *lens;
    int nfields;         /* fields every line must have */
    size_t nkey;         /* leading key fields */
    int hash_field;      /* -1: no hash (keyless: the key is the hash) */
    int row_field;       /* first row value, == nfields when none */
    bool skip_null_keys; /* a line with a NULL key field is an orphan: count, skip */
    uint64_t orphans;
    bool done;
} copy_reader;

static void copy_reader_init(copy_reader *r, PGconn *conn, const char *what, const char *table,
                             const table_layout *lay, bool with_rows)
{
    memset(r, 0, sizeof *r);
    r->conn = conn;
    r->what = what;
    r->table = table;
    r->nkey = lay->nkey;
    bool keyless = lay->table->kind == TABLE_KEYLESS;
    r->hash_field = keyless ? -1 : (int)lay->nkey;
    r->row_field = (int)tablesql_row_field(lay);
    r->nfields = r->row_field + (with_rows ? (int)lay->ncols : 0);
    r->fields = wb_xcalloc((size_t)r->nfields, sizeof *r->fields);
    r->lens = wb_xcalloc((size_t)r->nfields, sizeof *r->lens);
}

static void copy_reader_free(copy_reader *r)
{
    if (r->line != NULL)
        PQfreemem(r->line);
    r->line = NULL;
    free(r->fields);
    free(r->lens);
}

/* Collects the results after a COPY OUT ended; false (logged) on an error result. */
static bool drain_results(PGconn *conn, const char *what, const char *table)
{
    bool ok = true;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_OUT) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            log_error("%s: reading the %s rows failed: %s (SQLSTATE %s)", table, what,
                      PQresultErrorMessage(res), state != NULL ? state : "none");
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

/* Reads and splits the next line; *eof at the end of the COPY. */
static bool copy_read_line(copy_reader *r, bool *eof)
{
    if (r->line != NULL) {
        PQfreemem(r->line);
        r->line = NULL;
    }
    if (r->done) {
        *eof = true;
        return true;
    }
    int n = PQgetCopyData(r->conn, &r->line, 0);
    if (n == -1) {
        r->done = true;
        *eof = true;
        return drain_results(r->conn, r->what, r->table);
    }
    if (n < 0) {
        log_error("%s: reading the %s rows failed: %s", r->table, r->what, PQerrorMessage(r->conn));
        return false;
    }
    size_t len = (size_t)n;
    if (len > 0 && r->line[len - 1] == '\n')
        len--;
    int got = copytext_split(r->line, len, r->fields, r->lens, r->nfields);
    if (got != r->nfields) {
        log_error("%s: unexpected COPY line from the %s (%d fields, expected %d)", r->table,
                  r->what, got, r->nfields);
        return false;
    }
    return true;
}

static bool has_null_key(const copy_reader *r)
{
    for (size_t k = 0; k < r->nkey; k++) {
        if (r->fields[k] == NULL)
            return true;
    }
    return false;
}

static bool copy_next(void *ctx, keyset_entry *out, bool *eof)
{
    copy_reader *r = ctx;
    for (;;) {
        if (!copy_read_line(r, eof))
            return false;
        if (*eof)
            return true;
        if (!r->skip_null_keys || !has_null_key(r))
            break;
        r->orphans++;
    }
    for (size_t k = 0; k < r->nkey; k++) {
        out->key[k] = r->fields[k];
        out->key_len[k] = r->lens[k];
    }
    if (r->hash_field >= 0) {
        out->hash = r->fields[r->hash_field];
        out->hash_len = r->lens[r->hash_field];
    }
    out->row = r->fields + r->row_field;
    out->row_len = r->lens + r->row_field;
    out->nrow = r->nfields - r->row_field;
    return true;
}

/* Starts a COPY TO STDOUT without waiting for its rows. */
static bool copy_send(PGconn *conn, const char *sql, const char *what, const char *table)
{
    if (!PQsendQuery(conn, sql)) {
        log_error("%s: sending the %s diff query failed: %s", table, what, PQerrorMessage(conn));
        return false;
    }
    return true;
}

/*
 * Whether the source's (key, hash) diff of a table of about estimate rows is read sorted
 * rather than along its key index.  The target's hash diff sorts before its first row (its
 * key comes through the parent joins), and a source reading along the index would send a
 * few rows, stall until that sort ends, and only then do its own work; sorting too, it
 * does that work meanwhile (and a sequential scan costs less than the index's heap
 * visits).  Only when the sort fits in work_mem, though: a larger table, or one never
 * analyzed (estimate <= 0), is read along the index, so that the source never writes the
 * pairs to temp files (a few GB for tens of millions of rows).  A pair takes 85 bytes of
 * sort memory with a bigint key and 93 with an integer and a short text (EXPLAIN
 * ANALYZE); DIFF_SORT_ROW_BYTES rounds up.
 */
#define DIFF_SORT_ROW_BYTES 100.0
static bool source_sorts(double estimate)
{
    return estimate > 0 && estimate * DIFF_SORT_ROW_BYTES <= BF_DIFF_WORK_MEM_MB * 1024.0 * 1024.0;
}

/* Sends the source diff query (sorted: source_sorts; run_merge resets it once read). */
static bool source_send(PGconn *source, const char *sql, bool sort, const char *table)
{
    return (!sort || pgconn_exec(source, "source", "SET enable_indexscan = off")) &&
           copy_send(source, sql, "source", table);
}

/* Waits for the COPY OUT state of a query sent with copy_send. */
static bool copy_started(PGconn *conn, const char *what, const char *table)
{
    PGresult *res = PQgetResult(conn);
    if (res != NULL && PQresultStatus(res) == PGRES_COPY_OUT) {
        PQclear(res);
        return true;
    }
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    log_error("%s: the %s diff query failed: %s (SQLSTATE %s)", table, what,
              res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn),
              state != NULL ? state : "none");
    PQclear(res);
    drain_results(conn, what, table);
    return false;
}

/* ---------------------------------------------------------------- sink state */

typedef struct diff_ctx {
    const table_layout *lay;
    const tablediff_options *opts;
    tablediff_result *res;
    batch_writer *bw;   /* NULL when not writing */
    bool write_extras;  /* --delete-extra and the table's deletes policy is not "ignore" */
    row_fetcher *fetch; /* missing/stale rows fetched by key; NULL: they come with the diff */
    strbuf key, last;   /* encoded key of this / the previous entry */
    uint64_t source_seen;
    progress_meter meter;
} diff_ctx;

/* A key as one COPY text line (fields escaped, tab-separated): checkpoint form. */
static void encode_key(const table_layout *lay, const keyset_entry *e, strbuf *out)
{
    for (size_t k = 0; k < lay->nkey; k++) {
        if (k > 0)
            strbuf_append_char(out, '\t');
        copytext_escape(out, e->key[k], e->key_len[k]);
    }
}

static void remember_key(diff_ctx *d, const keyset_entry *e, char ***list, size_t *n)
{
    if (d->opts->show <= 0 || *n >= (size_t)d->opts->show)
        return;
    if (*list == NULL)
        *list = wb_xcalloc((size_t)d->opts->show, sizeof **list);
    strbuf text;
    strbuf_init(&text);
    keyset_format_key(&d->lay->spec, e, &text);
    (*list)[(*n)++] = strbuf_detach(&text);
}

static bool diff_sink(void *ctx, keyset_verdict verdict, const keyset_entry *src,
                      const keyset_entry *tgt)
{
    diff_ctx *d = ctx;
    const tablediff_options *o = d->opts;
    batch_writer *bw = d->bw;
    const keyset_entry *e = src != NULL ? src : tgt;
    strbuf_reset(&d->key);
    encode_key(d->lay, e, &d->key);
    /* A batch closes only between two different keys (a multiset group stays whole). */
    size_t pending = d->fetch != NULL ? rowfetch_pending(d->fetch) : 0;
    if (bw != NULL && bw_batch_size(bw) + pending >= (size_t)o->batch_rows &&
        (d->key.len != d->last.len || memcmp(d->key.data, d->last.data, d->key.len) != 0) &&
        ((d->fetch != NULL && !rowfetch_flush(d->fetch)) || !bw_flush(bw, d->last.data)))
        return false;

    switch (verdict) {
    case KEYSET_SAME:
        break;
    case KEYSET_MISSING:
        remember_key(d, e, &d->res->missing_keys, &d->res->nmissing_keys);
        if (d->fetch != NULL && !rowfetch_queue(d->fetch, src, false))
            return false;
        if (d->fetch == NULL && bw != NULL && !bw_stage(bw, src, false))
            return false;
        break;
    case KEYSET_STALE:
        remember_key(d, e, &d->res->stale_keys, &d->res->nstale_keys);
        if (d->fetch != NULL && o->include_stale && !rowfetch_queue(d->fetch, src, true))
            return false;
        if (d->fetch == NULL && bw != NULL && o->include_stale && !bw_stage(bw, src, true))
            return false;
        break;
    case KEYSET_EXTRA:
        remember_key(d, e, &d->res->extra_keys, &d->res->nextra_keys);
        if (bw != NULL && d->write_extras)
            bw_extra(bw, d->key.data, d->key.len);
        break;
    }
    strbuf tmp = d->last;
    d->last = d->key;
    d->key = tmp;
    if (src != NULL)
        progress_tick(&d->meter, ++d->source_seen);
    return true;
}

/* ---------------------------------------------------------------- setup */

/* Runs a set_config statement (sql, one text parameter: value) on one connection. */
static bool send_setting(const table_layout *lay, PGconn *conn, const char *sql, const char *value)
{
    const char *params[1] = {value};
    PGresult *res = pgconn_query(conn, lay->table->source, sql, 1, params, NULL);
    bool ok = res != NULL;
    PQclear(res);
    return ok;
}

/* Sends the resume key (COPY text line) to walbridge.resume_<i> on one connection. */
static bool set_resume_key(const table_layout *lay, PGconn *conn, const char *last_key)
{
    char *copy = wb_xstrdup(last_key);
    char *fields[KEYSET_MAX_KEY];
    size_t lens[KEYSET_MAX_KEY];
    int n = copytext_split(copy, strlen(copy), fields, lens, KEYSET_MAX_KEY);
    bool ok = n == (int)lay->nkey;
    if (!ok)
        log_error("%s: checkpoint key \"%s\" does not fit the table's key; rerun without "
                  "--resume",
                  lay->table->source, last_key);
    for (int i = 0; ok && i < n; i++) {
        char *value = fields[i] != NULL ? wb_xstrndup(fields[i], lens[i]) : NULL;
        strbuf sql;
        strbuf_init(&sql);
        tablesql_resume_setting((size_t)i, &sql);
        ok = send_setting(lay, conn, sql.data, value);
        strbuf_free(&sql);
        free(value);
    }
    free(copy);
    return ok;
}

/* Sets a piece's bound (walbridge.range_lo or _hi) on one connection. */
static bool set_range(const table_layout *lay, PGconn *conn, bool high, const char *value)
{
    strbuf sql;
    strbuf_init(&sql);
    tablesql_range_setting(high, &sql);
    bool ok = send_setting(lay, conn, sql.data, value);
    strbuf_free(&sql);
    return ok;
}

/*
 * Reads the checkpoint; decides resume / skip; resets it for a fresh run (not for a
 * piece: the caller keeps a split table's checkpoint).
 */
static bool prepare_checkpoint(const table_layout *lay, PGconn *tw, const tablediff_options *o,
                               tablediff_result *res, char **resume_key, int64_t *rows_copied)
{
    const char *table = lay->table->source;
    *resume_key = NULL;
    *rows_copied = 0;
    if (o->resume) {
        bf_checkpoint cp;
        if (!bfstate_checkpoint_get(tw, o->state_schema, o->slot, table, &cp))
            return false;
        if (cp.found && cp.done) {
            log_info("%s: finished by an earlier run (checkpoint); skipped", table);
            res->skipped_done = true;
            free(cp.last_key);
            return true;
        }
        if (cp.last_key != NULL) {
            log_info("%s: resuming after key %s (%" PRId64 " rows copied before)", table,
                     cp.last_key, cp.rows_copied);
            *resume_key = cp.last_key;
            *rows_copied = cp.rows_copied;
            res->resumed = true;
            return true;
        }
        free(cp.last_key);
    }
    if (o->piece)
        return true;
    return bfstate_checkpoint_set(tw, o->state_schema, o->slot, table, NULL, 0, false);
}

/* Target rows whose key references a vanished parent: warned about, counted as extra. */
static void report_orphans(const table_layout *lay, uint64_t n, tablediff_result *res)
{
    if (n > 0)
        log_full(LOG_WARN, NULL,
                 "They are counted as extra: backfill --delete-extra deletes them (under the "
                 "table's \"deletes\" policy), or restore their parent rows.",
                 "%s: %" PRIu64 " target rows reference a parent row that does not exist, so "
                 "they have no legacy key to compare",
                 lay->table->source, n);
    res->orphans = n;
}

/* Counts the orphans with a query of their own (when the diff query does not yield them). */
static bool count_orphans(const table_layout *lay, PGconn *target_read, tablediff_result *res)
{
    strbuf sql;
    strbuf_init(&sql);
    if (!tablesql_target_orphans(lay, &sql)) {
        strbuf_free(&sql);
        return true;
    }
    PGresult *r = pgconn_query(target_read, lay->table->source, sql.data, 0, NULL, NULL);
    strbuf_free(&sql);
    if (r == NULL)
        return false;
    report_orphans(lay, strtoull(PQgetvalue(r, 0, 0), NULL, 10), res);
    PQclear(r);
    return true;
}

/* *empty: the target holds no row of the table that has a source-form key. */
static bool target_has_rows(const table_layout *lay, PGconn *target_read, bool *empty)
{
    strbuf sql;
    strbuf_init(&sql);
    tablesql_target_any(lay, &sql);
    PGresult *res = pgconn_query(target_read, lay->table->source, sql.data, 0, NULL, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *empty = strcmp(PQgetvalue(res, 0, 0), "f") == 0;
    PQclear(res);
    return true;
}

static bool run_merge(diff_ctx *d, PGconn *source, PGconn *target_read, const char *resume_key)
{
    const table_layout *lay = d->lay;
    const char *table = lay->table->source;
    bool resume = resume_key != NULL;
    const char *lo = d->opts->range_lo, *hi = d->opts->range_hi;
    unsigned filter = (resume ? TABLESQL_RESUME : 0u) | (lo != NULL ? TABLESQL_RANGE_LO : 0u) |
                      (hi != NULL ? TABLESQL_RANGE_HI : 0u);
    bool orphans_in_diff = tablesql_target_diff_has_orphans(lay, filter);
    /* A direct piece has no orphan: its key is no reference, or its table was empty and
     * its parents are complete (directload.c, splittable). */
    bool direct_piece = d->opts->direct && d->opts->piece;
    if (!orphans_in_diff && !direct_piece && !count_orphans(lay, target_read, d->res))
        return false;
    if (resume &&
        (!set_resume_key(lay, source, resume_key) || !set_resume_key(lay, target_read, resume_key)))
        return false;
    PGconn *both[2] = {source, target_read};
    for (int c = 0; c < 2; c++) {
        if ((lo != NULL && !set_range(lay, both[c], false, lo)) ||
            (hi != NULL && !set_range(lay, both[c], true, hi)))
            return false;
    }
    strbuf src_sql, tgt_sql;
    strbuf_init(&src_sql);
    strbuf_init(&tgt_sql);
    bool target_empty = false; /* a query sent ahead is a diff of a table with rows */
    if (d->opts->write && !d->opts->source_sent &&
        !target_has_rows(lay, target_read, &target_empty))
        return false;
    if (target_empty)
        d->fetch = NULL; /* every row is needed: stream them all */
    bool inline_rows = d->opts->write && d->fetch == NULL;
    bool pairs = !inline_rows && !d->opts->keys_only && lay->table->kind != TABLE_KEYLESS;
    if (d->opts->source_sent && (!pairs || filter != 0)) {
        /* tablediff_send_ahead sent the plain (key, hash) diff; anything else would be
         * read with the wrong fields. */
        log_error("%s: the source query sent ahead is not the diff this table needs (a "
                  "walbridge bug); nothing of it was written: rerun backfill",
                  table);
        return false;
    }
    if (target_empty) {
        /* Nothing to compare with: skip hashing the source rows. */
        log_info("%s: no rows in the target yet: copying every source row", table);
        tablesql_source_all_rows(lay, filter, &src_sql);
    } else if (d->opts->keys_only && inline_rows) {
        tablesql_source_all_rows(lay, filter, &src_sql); /* rows, no hash */
    } else if (d->opts->keys_only) {
        tablesql_source_keys(lay, filter, &src_sql);
    } else {
        tablesql_source_diff(lay, inline_rows, filter, &src_sql);
    }
    if (d->opts->keys_only)
        tablesql_target_keys(lay, filter, &tgt_sql);
    else
        tablesql_target_diff(lay, filter, &tgt_sql);
    log_debug("%s: source diff: %s", table, src_sql.data);
    log_debug("%s: target diff: %s", table, tgt_sql.data);
    /* Both queries run at once: each server sorts and hashes while the other does. */
    bool sort_source = pairs && source_sorts(d->opts->estimate);
    if (pairs)
        log_debug("%s: the source reads its pairs %s (about %.0f rows)", table,
                  sort_source ? "sorted" : "along the key index", d->opts->estimate);
    bool ok = (d->opts->source_sent || source_send(source, src_sql.data, sort_source, table)) &&
              copy_send(target_read, tgt_sql.data, "target", table);
    strbuf_free(&src_sql);
    strbuf_free(&tgt_sql);
    bool src_started = ok && copy_started(source, "source", table);
    bool tgt_started = ok && copy_started(target_read, "target", table);
    if (!src_started || !tgt_started)
        return false;

    copy_reader rs, rt;
    copy_reader_init(&rs, source, "source", table, lay, inline_rows);
    copy_reader_init(&rt, target_read, "target", table, lay, false);
    rt.skip_null_keys = orphans_in_diff;
    keyset_reader src_reader = {copy_next, &rs, "source"};
    keyset_reader tgt_reader = {copy_next, &rt, "target"};
    char err[256];
    ok = keyset_merge(&lay->spec, &src_reader, &tgt_reader, diff_sink, d, &d->res->counts, err,
                      sizeof err);
    if (!ok)
        log_error("%s: diff failed: %s", table, err);
    if (ok && orphans_in_diff)
        report_orphans(lay, rt.orphans, d->res);
    copy_reader_free(&rs);
    copy_reader_free(&rt);
    return ok && (!sort_source || pgconn_exec(source, "source", "RESET enable_indexscan"));
}

bool tablediff_run(const table_layout *lay, int table_index, PGconn *source, PGconn *target_read,
                   PGconn *const *target_write, int nwriters, const tablediff_options *opts,
                   tablediff_result *res)
{
    memset(res, 0, sizeof *res);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    diff_ctx d;
    memset(&d, 0, sizeof d);
    d.lay = lay;
    d.opts = opts;
    d.res = res;
    strbuf_init(&d.key);
    strbuf_init(&d.last);
    progress_init(&d.meter, lay->table->source, opts->estimate, opts->progress);

    batch_writer bw;
    row_fetcher fetch;
    char *resume_key = NULL;
    bool ok = true;
    if (opts->write && opts->delete_extra) {
        d.write_extras = lay->table->deletes != DELETES_IGNORE;
        if (!d.write_extras)
            log_info("%s: \"deletes\": \"ignore\": extra target rows are reported, not "
                     "deleted",
                     lay->table->source);
    }
    if (opts->write) {
        int64_t rows_copied = 0;
        ok = prepare_checkpoint(lay, target_write[0], opts, res, &resume_key, &rows_copied);
        bw_init(&bw, lay, table_index, target_write, nwriters, opts->state_schema, opts->slot,
                opts->include_stale, rows_copied);
        d.bw = &bw;
        bw.direct = opts->direct;
        bw.no_checkpoint = opts->piece;
        ok = ok && (res->skipped_done || bw_prepare(&bw, d.write_extras));
        if (opts->source_fetch != NULL && lay->table->kind != TABLE_KEYLESS) {
            rowfetch_init(&fetch, lay, opts->source_fetch, &bw);
            d.fetch = &fetch;
        }
    }
    if (ok && !res->skipped_done) {
        ok = run_merge(&d, source, target_read, resume_key);
        /* The next table's failure (logged) stops the run once this table is done. */
        bool next_ok = !ok || opts->merged == NULL || opts->merged(opts->merged_ctx);
        res->counts.extra += res->orphans;
        res->counts.target_rows += res->orphans;
        if (d.bw != NULL && d.write_extras)
            bw_orphans_found(d.bw, res->orphans);
        if (ok && d.fetch != NULL)
            ok = rowfetch_flush(d.fetch);
        if (ok && d.bw != NULL)
            ok = bw_finish(d.bw, d.last.len > 0 ? d.last.data : NULL);
        if (!ok && d.bw != NULL)
            bw_abort(d.bw);
        ok = ok && next_ok;
    }
    if (d.bw != NULL) {
        res->copied = bw.copied;
        res->stale_fixed = bw.stale_fixed;
        res->extra_deleted = bw.extra_deleted;
        res->write_seconds = bw.wait_seconds;
        bw_free(&bw);
    }
    if (opts->write && opts->source_fetch != NULL && lay->table->kind != TABLE_KEYLESS)
        rowfetch_free(&fetch);
    progress_done(&d.meter, d.source_seen);
    free(resume_key);
    strbuf_free(&d.key);
    strbuf_free(&d.last);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = progress_seconds(&t0, &t1);
    return ok;
}

bool tablediff_send_ahead(const table_layout *lay, PGconn *source, PGconn *target_read,
                          const tablediff_options *opts, bool *sent)
{
    *sent = false;
    bool plain = opts->write && !opts->keys_only && !opts->resume && !opts->direct &&
                 opts->range_lo == NULL && opts->range_hi == NULL && opts->source_fetch != NULL &&
                 lay->table->kind != TABLE_KEYLESS;
    bool empty = true;
    if (!plain)
        return true;
    if (!target_has_rows(lay, target_read, &empty))
        return false;
    if (empty)
        return true; /* its source query will carry the rows */
    strbuf sql;
    strbuf_init(&sql);
    tablesql_source_diff(lay, false, 0, &sql);
    log_debug("%s: source diff, sent ahead: %s", lay->table->source, sql.data);
    *sent = source_send(source, sql.data, source_sorts(opts->estimate), lay->table->source);
    strbuf_free(&sql);
    return *sent;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void tablediff_result_free(tablediff_result *res)
{
    free_list(res->missing_keys, res->nmissing_keys);
    free_list(res->extra_keys, res->nextra_keys);
    free_list(res->stale_keys, res->nstale_keys);
    res->missing_keys = res->extra_keys = res->stale_keys = NULL;
    res->nmissing_keys = res->nextra_keys = res->nstale_keys = 0;
}

void tablediff_log_result(const table_config *t, const tablediff_result *r, bool delete_extra)
{
    if (!r->skipped_done)
        log_info("%s: %" PRIu64 " source rows, %" PRIu64 " missing, %" PRIu64 " stale, %" PRIu64
                 " extra; copied %" PRIu64 ", stale fixed %" PRIu64 ", extra deleted %" PRIu64
                 " in %.2fs (%.2fs writing batches)",
                 t->source, r->counts.source_rows, r->counts.missing, r->counts.stale,
                 r->counts.extra, r->copied, r->stale_fixed, r->extra_deleted, r->seconds,
                 r->write_seconds);
    if (r->counts.extra > 0 && !delete_extra)
        log_warn("%s: %" PRIu64 " target rows have no source row (kept; --delete-extra "
                 "removes them)",
                 t->source, r->counts.extra);
}
