/*
 * tablediff.c — one table's diff (and repair) for backfill and verify; see
 * tablediff.h for the model.  Three parts: a keyset reader over a COPY TO
 * STDOUT stream, the sink that stages missing rows and extra keys, and the
 * batch commit that turns a staged batch into target rows plus a checkpoint
 * in one transaction.
 */
#include "backfill/tablediff.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill/bfstate.h"
#include "backfill/progress.h"
#include "common/copytext.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/uuidmap.h"

/* ---------------------------------------------------------------- COPY reader */

typedef struct copy_reader {
    PGconn *conn;
    const char *what;  /* "source" or "target" */
    const char *table; /* for messages */
    char *line;        /* current COPY line (PQfreemem) */
    char **fields;
    size_t *lens;
    int nfields;    /* fields every line must have */
    size_t nkey;    /* leading key fields */
    int hash_field; /* -1: no hash (keyless: the key is the hash) */
    int row_field;  /* first row value, == nfields when none */
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

static bool copy_next(void *ctx, keyset_entry *out, bool *eof)
{
    copy_reader *r = ctx;
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
    int index;
    const tablediff_options *opts;
    PGconn *tw; /* target write connection, NULL when not writing */
    tablediff_result *res;
    bool in_txn;
    bool copying;      /* COPY into the stage table is open */
    strbuf line;       /* one staged row */
    strbuf extras;     /* COPY text of the batch's extra keys */
    strbuf key, last;  /* encoded key of this / the previous entry */
    strbuf insert_sql; /* INSERT ... SELECT from the stage */
    strbuf delete_sql; /* DELETE of the staged extra keys */
    size_t batch_size; /* staged rows + extra keys in the open batch */
    uint64_t batch_missing, batch_stale;
    int64_t rows_copied; /* checkpoint's rows_copied: earlier runs + this one */
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

static bool exec_simple(PGconn *conn, const char *what, const char *sql)
{
    return pgconn_exec(conn, what, sql);
}

static bool ensure_txn(diff_ctx *d)
{
    if (d->in_txn)
        return true;
    if (!exec_simple(d->tw, "backfill: BEGIN", "BEGIN"))
        return false;
    d->in_txn = true;
    return true;
}

static void rollback(diff_ctx *d)
{
    if (d->copying) {
        PQputCopyEnd(d->tw, "walbridge: batch abandoned");
        drain_results(d->tw, "target", d->lay->table->source);
        d->copying = false;
    }
    if (d->in_txn) {
        exec_simple(d->tw, "backfill: ROLLBACK", "ROLLBACK");
        d->in_txn = false;
    }
}

/* NUL-terminated copy of a short field (integer key text) for uuidmap_v5. */
static void field_text(const char *value, size_t len, char *buf, size_t cap)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(buf, value, n);
    buf[n] = '\0';
}

static bool stage_row(diff_ctx *d, const keyset_entry *src)
{
    const table_layout *lay = d->lay;
    const char *table = lay->table->source;
    if (!ensure_txn(d))
        return false;
    if (!d->copying) {
        strbuf sql;
        strbuf_init(&sql);
        tablesql_stage_copy(d->index, &sql);
        PGresult *res = PQexec(d->tw, sql.data);
        strbuf_free(&sql);
        bool ok = PQresultStatus(res) == PGRES_COPY_IN;
        if (!ok)
            log_error("%s: starting COPY into the staging table failed: %s", table,
                      PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return false;
        d->copying = true;
    }
    strbuf_reset(&d->line);
    for (size_t i = 0; i < lay->ncols; i++) {
        if (i > 0)
            strbuf_append_char(&d->line, '\t');
        copytext_escape(&d->line, src->row[i], src->row_len[i]);
    }
    char key[64], uuid[UUID_TEXT_LEN + 1];
    if (lay->table->kind == TABLE_UUID_MAPPED) {
        field_text(src->key[0], src->key_len[0], key, sizeof key);
        uuidmap_v5(lay->cfg->uuid_namespace, table, key, uuid);
        strbuf_append_char(&d->line, '\t');
        strbuf_append(&d->line, uuid);
    }
    for (size_t i = 0; i < lay->ncols; i++) {
        const layout_column *c = &lay->cols[i];
        if (c->parent < 0)
            continue;
        strbuf_append_char(&d->line, '\t');
        if (src->row[i] == NULL) {
            strbuf_append(&d->line, "\\N");
            continue;
        }
        field_text(src->row[i], src->row_len[i], key, sizeof key);
        uuidmap_v5(lay->cfg->uuid_namespace, lay->cfg->tables[c->parent].source, key, uuid);
        strbuf_append(&d->line, uuid);
    }
    strbuf_append_char(&d->line, '\n');
    if (PQputCopyData(d->tw, d->line.data, (int)d->line.len) != 1) {
        log_error("%s: writing to the staging table failed: %s", table, PQerrorMessage(d->tw));
        return false;
    }
    d->batch_size++;
    return true;
}

/* Ends the stage COPY and runs the INSERT ... SELECT; *affected = rows written. */
static bool insert_staged(diff_ctx *d, uint64_t *affected)
{
    const char *table = d->lay->table->source;
    *affected = 0;
    if (!d->copying)
        return true;
    d->copying = false;
    if (PQputCopyEnd(d->tw, NULL) != 1) {
        log_error("%s: ending COPY into the staging table failed: %s", table,
                  PQerrorMessage(d->tw));
        return false;
    }
    if (!drain_results(d->tw, "staged", table))
        return false;
    PGresult *res = pgconn_query(d->tw, table, d->insert_sql.data, 0, NULL, NULL);
    if (res == NULL)
        return false;
    *affected = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return true;
}

static bool delete_extras(diff_ctx *d, uint64_t *deleted)
{
    const char *table = d->lay->table->source;
    *deleted = 0;
    if (d->extras.len == 0)
        return true;
    strbuf sql;
    strbuf_init(&sql);
    tablesql_extra_copy(d->index, &sql);
    PGresult *res = PQexec(d->tw, sql.data);
    strbuf_free(&sql);
    bool ok = PQresultStatus(res) == PGRES_COPY_IN;
    if (!ok)
        log_error("%s: starting COPY of extra keys failed: %s", table, PQresultErrorMessage(res));
    PQclear(res);
    if (!ok)
        return false;
    if (PQputCopyData(d->tw, d->extras.data, (int)d->extras.len) != 1 ||
        PQputCopyEnd(d->tw, NULL) != 1) {
        log_error("%s: writing extra keys failed: %s", table, PQerrorMessage(d->tw));
        return false;
    }
    if (!drain_results(d->tw, "extra key", table))
        return false;
    strbuf_reset(&d->extras);
    res = pgconn_query(d->tw, table, d->delete_sql.data, 0, NULL, NULL);
    if (res == NULL)
        return false;
    *deleted = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return true;
}

/* Commits the open batch with its checkpoint (last key handled, or done). */
static bool batch_commit(diff_ctx *d, bool done)
{
    const table_config *t = d->lay->table;
    uint64_t affected = 0, deleted = 0;
    if (!ensure_txn(d) || !insert_staged(d, &affected) || !delete_extras(d, &deleted))
        return false;
    uint64_t staged = d->batch_missing + d->batch_stale;
    if (affected < staged)
        log_info("%s: %" PRIu64 " of %" PRIu64 " staged rows were already present (written "
                 "concurrently, e.g. by the stream) and left as they are",
                 t->source, staged - affected, staged);
    d->rows_copied += (int64_t)d->batch_missing;
    if (!bfstate_checkpoint_set(d->tw, d->opts->state_schema, d->opts->slot, t->source,
                                d->last.len > 0 ? d->last.data : NULL, d->rows_copied, done))
        return false;
    if (!exec_simple(d->tw, "backfill: COMMIT", "COMMIT"))
        return false;
    d->in_txn = false;
    d->res->copied += d->batch_missing;
    d->res->stale_fixed += d->batch_stale;
    d->res->extra_deleted += deleted;
    if (staged > 0 || deleted > 0)
        log_debug("%s: batch committed: %" PRIu64 " copied, %" PRIu64 " stale fixed, %" PRIu64
                  " extra deleted",
                  t->source, d->batch_missing, d->batch_stale, deleted);
    d->batch_size = 0;
    d->batch_missing = d->batch_stale = 0;
    return true;
}

static bool diff_sink(void *ctx, keyset_verdict verdict, const keyset_entry *src,
                      const keyset_entry *tgt)
{
    diff_ctx *d = ctx;
    const tablediff_options *o = d->opts;
    const keyset_entry *e = src != NULL ? src : tgt;
    strbuf_reset(&d->key);
    encode_key(d->lay, e, &d->key);
    bool new_key = d->key.len != d->last.len || memcmp(d->key.data, d->last.data, d->key.len) != 0;
    if (o->write && d->batch_size >= (size_t)o->batch_rows && new_key && !batch_commit(d, false))
        return false;

    switch (verdict) {
    case KEYSET_SAME:
        break;
    case KEYSET_MISSING:
        remember_key(d, e, &d->res->missing_keys, &d->res->nmissing_keys);
        if (o->write) {
            if (!stage_row(d, src))
                return false;
            d->batch_missing++;
        }
        break;
    case KEYSET_STALE:
        remember_key(d, e, &d->res->stale_keys, &d->res->nstale_keys);
        if (o->write && o->include_stale) {
            if (!stage_row(d, src))
                return false;
            d->batch_stale++;
        }
        break;
    case KEYSET_EXTRA:
        remember_key(d, e, &d->res->extra_keys, &d->res->nextra_keys);
        if (o->write && o->delete_extra) {
            strbuf_append_len(&d->extras, d->key.data, d->key.len);
            strbuf_append_char(&d->extras, '\n');
            d->batch_size++;
        }
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

/* Creates the TEMP staging tables on the write connection (idempotent). */
static bool create_stage_tables(const table_layout *lay, int index, PGconn *tw, bool extras)
{
    strbuf sql;
    strbuf_init(&sql);
    tablesql_stage_create(lay, index, &sql);
    bool ok = pgconn_exec(tw, lay->table->source, sql.data);
    if (ok && extras) {
        strbuf_reset(&sql);
        tablesql_extra_create(lay, index, &sql);
        ok = pgconn_exec(tw, lay->table->source, sql.data);
    }
    strbuf_free(&sql);
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
        const char *params[1] = {value};
        PGresult *res = pgconn_query(conn, lay->table->source, sql.data, 1, params, NULL);
        ok = res != NULL;
        PQclear(res);
        strbuf_free(&sql);
        free(value);
    }
    free(copy);
    return ok;
}

/* Reads the checkpoint; decides resume / skip; resets it for a fresh run. */
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
    return bfstate_checkpoint_set(tw, o->state_schema, o->slot, table, NULL, 0, false);
}

/* Counts target rows whose key references a vanished parent; they count as extra. */
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
    uint64_t n = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (n > 0)
        log_full(LOG_WARN, NULL,
                 "Delete them in the target, or restore their parent rows; they are counted as "
                 "extra.",
                 "%s: %" PRIu64 " target rows reference a parent row that does not exist, so "
                 "they have no legacy key to compare",
                 lay->table->source, n);
    res->orphans = n;
    return true;
}

static bool run_merge(diff_ctx *d, PGconn *source, PGconn *target_read, const char *resume_key)
{
    const table_layout *lay = d->lay;
    const char *table = lay->table->source;
    bool resume = resume_key != NULL;
    if (resume &&
        (!set_resume_key(lay, source, resume_key) || !set_resume_key(lay, target_read, resume_key)))
        return false;
    strbuf src_sql, tgt_sql;
    strbuf_init(&src_sql);
    strbuf_init(&tgt_sql);
    tablesql_source_diff(lay, d->opts->write, resume, &src_sql);
    tablesql_target_diff(lay, resume, &tgt_sql);
    log_debug("%s: source diff: %s", table, src_sql.data);
    log_debug("%s: target diff: %s", table, tgt_sql.data);
    /* Both queries run at once: each server sorts and hashes while the other does. */
    bool ok = copy_send(source, src_sql.data, "source", table) &&
              copy_send(target_read, tgt_sql.data, "target", table);
    strbuf_free(&src_sql);
    strbuf_free(&tgt_sql);
    bool src_started = ok && copy_started(source, "source", table);
    bool tgt_started = ok && copy_started(target_read, "target", table);
    if (!src_started || !tgt_started)
        return false;

    copy_reader rs, rt;
    copy_reader_init(&rs, source, "source", table, lay, d->opts->write);
    copy_reader_init(&rt, target_read, "target", table, lay, false);
    keyset_reader src_reader = {copy_next, &rs, "source"};
    keyset_reader tgt_reader = {copy_next, &rt, "target"};
    char err[256];
    ok = keyset_merge(&lay->spec, &src_reader, &tgt_reader, diff_sink, d, &d->res->counts, err,
                      sizeof err);
    if (!ok)
        log_error("%s: diff failed: %s", table, err);
    copy_reader_free(&rs);
    copy_reader_free(&rt);
    return ok;
}

bool tablediff_run(const table_layout *lay, int table_index, PGconn *source, PGconn *target_read,
                   PGconn *target_write, const tablediff_options *opts, tablediff_result *res)
{
    memset(res, 0, sizeof *res);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    diff_ctx d;
    memset(&d, 0, sizeof d);
    d.lay = lay;
    d.index = table_index;
    d.opts = opts;
    d.tw = opts->write ? target_write : NULL;
    d.res = res;
    strbuf_init(&d.line);
    strbuf_init(&d.extras);
    strbuf_init(&d.key);
    strbuf_init(&d.last);
    strbuf_init(&d.insert_sql);
    strbuf_init(&d.delete_sql);
    progress_init(&d.meter, lay->table->source, opts->estimate, opts->progress);

    char *resume_key = NULL;
    bool ok = true;
    if (opts->write) {
        tablesql_stage_insert(lay, table_index, opts->include_stale, &d.insert_sql);
        tablesql_extra_delete(lay, table_index, &d.delete_sql);
        ok = create_stage_tables(lay, table_index, target_write, opts->delete_extra) &&
             prepare_checkpoint(lay, target_write, opts, res, &resume_key, &d.rows_copied);
    }
    if (ok && !res->skipped_done) {
        ok = count_orphans(lay, target_read, res) && run_merge(&d, source, target_read, resume_key);
        res->counts.extra += res->orphans;
        res->counts.target_rows += res->orphans;
        if (ok && opts->write)
            ok = batch_commit(&d, true);
        if (!ok && d.tw != NULL)
            rollback(&d);
    }
    progress_done(&d.meter, d.source_seen);
    free(resume_key);
    strbuf_free(&d.line);
    strbuf_free(&d.extras);
    strbuf_free(&d.key);
    strbuf_free(&d.last);
    strbuf_free(&d.insert_sql);
    strbuf_free(&d.delete_sql);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return ok;
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
