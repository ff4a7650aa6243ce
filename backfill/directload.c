/*
 * directload.c — the direct loads of backfill --defer-indexes on lanes (see
 * directload.h): pieces planned from the source's sizes and key ranges, one lane
 * function that copies a piece, one idle function that builds deferred objects.
 */
#include "backfill/directload.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill/bfstate.h"
#include "backfill/deferidx.h"
#include "backfill/lanes.h"
#include "backfill/progress.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

#define DIRECTLOAD_MAX_PIECES 8

/* One piece of work: a table, or the keys [lo, hi) of one ("" unbounded). */
typedef struct dl_piece {
    size_t table;
    size_t ord; /* its place in the table's key order */
    bool taken; /* a lane runs it (take_piece) */
    char lo[24], hi[24];
    bool split; /* one of several pieces of its table */
    double bytes;
    tablediff_result result;
} dl_piece;

/* Per table: what its pieces add up to (guarded by the lock). */
typedef struct dl_table {
    size_t pieces_left;
    bool split; /* cut into pieces: the last one marks the checkpoint done */
    bool failed;
    int64_t rows_before; /* resumed split table: rows_copied of its checkpoint */
    struct timespec start;
    bool started;
    dl_load load;
} dl_table;

typedef struct dl_run {
    bf_session *s;
    const handoff *h;
    tablediff_options o;
    tablediff_result *results;
    dl_piece *pieces;
    dl_table *tables;
    pthread_mutex_t lock; /* guards tables, results of split tables, ready, steps */
    strbuf ready;         /* regclass[] elements: the copied tables' targets */
    size_t steps;         /* deferred-object steps run, all lanes */
    bool ordered;         /* pieces in table order (parents first), not largest first */
    size_t npieces;
} dl_run;

/* The table starts once its parents are finished (dl_load). */
static bool after_parents(dl_load load)
{
    return load == DL_RESUMED || load == DL_EMPTY;
}

/*
 * A table one may cut by key range (of its first key column): one integer key column
 * that is no reference; or, empty and loaded after its parents (complete then, so no
 * row of it is an orphan), a key whose first column is an integer, a reference too
 * (order_tags.order_id).
 */
static bool splittable(const table_layout *lay, dl_load load)
{
    if (lay->table->kind == TABLE_KEYLESS || lay->key_type[0] != KEYSET_KEY_INT ||
        lay->key_col[0] < 0)
        return false;
    return load == DL_EMPTY || (lay->nkey == 1 && lay->cols[lay->key_col[0]].parent < 0);
}

/* *min, *max of the table's key in the snapshot; *empty when it has no row. */
static bool key_bounds(bf_session *s, const table_layout *lay, int64_t *min, int64_t *max,
                       bool *empty)
{
    const table_config *t = lay->table;
    strbuf sql;
    strbuf_init(&sql);
    strbuf_append(&sql, "SELECT min(");
    pgconn_append_ident(&sql, lay->cols[lay->key_col[0]].source);
    strbuf_append(&sql, ")::text, max(");
    pgconn_append_ident(&sql, lay->cols[lay->key_col[0]].source);
    strbuf_append(&sql, ")::text FROM ");
    pgconn_append_qualified(&sql, t->source_schema, t->source_name);
    PGresult *res = pgconn_query(s->source, t->source, sql.data, 0, NULL, NULL);
    strbuf_free(&sql);
    if (res == NULL)
        return false;
    *empty = PQgetisnull(res, 0, 0);
    if (!*empty) {
        *min = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *max = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return true;
}

/*
 * Cuts table i into k pieces of equal key ranges (appended at pieces[*n]); the first
 * piece has no lower bound and the last no upper one, so every key is in one piece.
 */
static void cut(dl_piece *pieces, size_t *n, size_t i, int64_t min, int64_t max, size_t k,
                double bytes)
{
    uint64_t step = ((uint64_t)max - (uint64_t)min) / k;
    for (size_t j = 0; j < k; j++) {
        dl_piece *p = &pieces[(*n)++];
        memset(p, 0, sizeof *p);
        p->table = i;
        p->ord = j;
        p->split = true;
        p->bytes = bytes / (double)k;
        if (j > 0)
            snprintf(p->lo, sizeof p->lo, "%" PRId64, (int64_t)((uint64_t)min + step * j));
        if (j + 1 < k)
            snprintf(p->hi, sizeof p->hi, "%" PRId64, (int64_t)((uint64_t)min + step * (j + 1)));
    }
}

/* Largest piece first; equal sizes in table order. */
static int compare_pieces(const void *a, const void *b)
{
    const dl_piece *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return x->table < y->table ? -1 : x->table > y->table;
}

/* Table order (parents first), a table's pieces in key order. */
static int compare_pieces_ordered(const void *a, const void *b)
{
    const dl_piece *x = a, *y = b;
    if (x->table != y->table)
        return x->table < y->table ? -1 : 1;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/*
 * Plans the pieces: with more than one lane, a splittable table larger than half a
 * lane's share of the bytes (total / (2 * lanes)) is cut into as many pieces
 * as that share goes into it (at most DIRECTLOAD_MAX_PIECES).  Split tables get their
 * checkpoint reset (a fresh run) or read (--resume) here.
 */
static bool plan_pieces(dl_run *r, const dl_load *load, int jobs, size_t *npieces)
{
    bf_session *s = r->s;
    size_t n = 0, ntables = s->cfg.ntables;
    double *bytes = wb_xcalloc(ntables, sizeof *bytes), total = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < ntables; i++) {
        double rows = 0;
        if (load[i] != DL_NONE)
            ok = lanes_table_size(s->source, &s->cfg.tables[i], &rows, &bytes[i]);
        total += load[i] != DL_NONE ? bytes[i] : 0;
    }
    /* Ordered (children wait for their parents): every level should keep all lanes
     * busy, so tables are cut finer and into a multiple of the lanes. */
    double share = jobs > 1 ? total / ((r->ordered ? 4.0 : 2.0) * jobs) : 0;
    r->pieces = wb_xcalloc(ntables * DIRECTLOAD_MAX_PIECES, sizeof *r->pieces);
    for (size_t i = 0; ok && i < ntables; i++) {
        if (load[i] == DL_NONE)
            continue;
        const table_layout *lay = &s->layouts[i];
        size_t k = 1;
        if (share > 0 && bytes[i] > share && splittable(lay, load[i])) {
            double want = ceil(bytes[i] / share);
            if (r->ordered)
                want = ceil(want / jobs) * jobs;
            k = want > DIRECTLOAD_MAX_PIECES ? DIRECTLOAD_MAX_PIECES : (size_t)want;
        }
        bf_checkpoint cp = {0};
        if (k > 1 && r->o.resume)
            ok = bfstate_checkpoint_get(s->target_write[0], r->o.state_schema, r->o.slot,
                                        lay->table->source, &cp);
        if (ok && cp.found && cp.done)
            k = 1; /* finished: one piece that says so */
        int64_t min = 0, max = 0;
        bool empty = true;
        if (ok && k > 1)
            ok = key_bounds(s, lay, &min, &max, &empty);
        if (ok && k > 1 && !empty && (uint64_t)max - (uint64_t)min >= k) {
            cut(r->pieces, &n, i, min, max, k, bytes[i]);
            r->tables[i].pieces_left = k;
            r->tables[i].split = true;
            r->tables[i].rows_before = cp.found ? cp.rows_copied : 0;
            if (!r->o.resume)
                ok = bfstate_checkpoint_set(s->target_write[0], r->o.state_schema, r->o.slot,
                                            lay->table->source, NULL, 0, false);
            log_info("%s: copied in %zu pieces by key range, on the lanes side by side",
                     lay->table->source, k);
        } else if (ok) {
            dl_piece *p = &r->pieces[n++];
            memset(p, 0, sizeof *p);
            p->table = i;
            p->bytes = bytes[i];
            r->tables[i].pieces_left = 1;
        }
        free(cp.last_key);
    }
    free(bytes);
    qsort(r->pieces, n, sizeof *r->pieces, r->ordered ? compare_pieces_ordered : compare_pieces);
    *npieces = r->npieces = n;
    return ok;
}

static bool dl_join_snapshot(void *ctx, PGconn *source)
{
    const dl_run *r = ctx;
    return handoff_share_snapshot(r->h, r->s->source, source);
}

/* Adds a finished piece's result to its table's. */
static void add_result(tablediff_result *to, const tablediff_result *from)
{
    to->counts.source_rows += from->counts.source_rows;
    to->counts.target_rows += from->counts.target_rows;
    to->counts.same += from->counts.same;
    to->counts.missing += from->counts.missing;
    to->counts.extra += from->counts.extra;
    to->counts.stale += from->counts.stale;
    to->copied += from->copied;
    to->stale_fixed += from->stale_fixed;
    to->extra_deleted += from->extra_deleted;
    to->orphans += from->orphans;
    to->write_seconds += from->write_seconds;
    to->skipped_done = to->skipped_done || from->skipped_done;
    to->resumed = to->resumed || from->resumed;
}

/*
 * The table's last piece is done: a split table's checkpoint says done, the table
 * joins the ready ones (its deferred objects may be built).
 */
static bool table_finished(dl_run *r, const lane_conns *lane, size_t i, const tablediff_result *res)
{
    const table_config *t = &r->s->cfg.tables[i];
    const dl_table *dt = &r->tables[i];
    if (dt->split && !res->skipped_done &&
        !bfstate_checkpoint_set(lane->write, r->o.state_schema, r->o.slot, t->source, NULL,
                                dt->rows_before + (int64_t)res->copied, true))
        return false;
    tablediff_log_result(t, res, r->o.delete_extra);
    strbuf name;
    strbuf_init(&name);
    pgconn_append_qualified(&name, t->target_schema, t->target_name);
    pthread_mutex_lock(&r->lock);
    tablesql_array_append(&r->ready, name.data, name.len);
    pthread_mutex_unlock(&r->lock);
    strbuf_free(&name);
    return true;
}

/*
 * Whether piece k may start (under r->lock): a table loaded with its foreign keys in
 * place (and their checks skipped) starts once every parent loaded directly in this
 * run is finished, so that should a parent's COPY fail (a row someone else wrote
 * meanwhile), no child row is left referencing a parent row that is not there.
 * *failed: such a parent failed.
 */
static bool piece_ready(const dl_run *r, size_t k, bool *failed)
{
    size_t i = r->pieces[k].table;
    const table_layout *lay = &r->s->layouts[i];
    if (!after_parents(r->tables[i].load))
        return true;
    for (size_t c = 0; c < lay->ncols; c++) {
        int p = lay->cols[c].parent;
        if (p < 0 || (size_t)p >= i)
            continue; /* a self-reference; later tables are never direct parents */
        if (r->tables[p].failed) {
            *failed = true;
            log_error("%s: not copied: its parent %s failed to load", lay->table->source,
                      r->s->cfg.tables[p].source);
            return false;
        }
        if (r->tables[p].pieces_left > 0)
            return false;
    }
    return true;
}

/*
 * The piece a lane runs next: the first one in plan order that may start, waiting
 * while none may (its parents are on other lanes).  Each call takes one piece, and
 * lanes call once per piece.  False when a parent it needs failed.
 */
static bool take_piece(dl_run *r, size_t *k)
{
    for (;;) {
        bool failed = false, found = false;
        pthread_mutex_lock(&r->lock);
        for (size_t j = 0; !found && !failed && j < r->npieces; j++) {
            found = !r->pieces[j].taken && piece_ready(r, j, &failed);
            if (found) {
                r->pieces[j].taken = true;
                *k = j;
            }
        }
        pthread_mutex_unlock(&r->lock);
        if (found || failed)
            return found;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
}

/* One piece on a lane: its diff and copy; the table's last piece finishes the table. */
static bool dl_piece_run(void *ctx, const lane_conns *lane, size_t item)
{
    dl_run *r = ctx;
    (void)item; /* the lanes' count of pieces; which one is take_piece's choice */
    size_t k = 0;
    if (!take_piece(r, &k))
        return false;
    dl_piece *p = &r->pieces[k];
    const table_config *t = &r->s->cfg.tables[p->table];
    dl_table *dt = &r->tables[p->table];
    tablediff_options o = r->o;
    o.estimate = p->split ? -1 : bf_session_estimate(lane->source, t);
    o.piece = p->split;
    o.range_lo = p->lo[0] != '\0' ? p->lo : NULL;
    o.range_hi = p->hi[0] != '\0' ? p->hi : NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&r->lock);
    if (!dt->started)
        dt->start = t0;
    dt->started = true;
    pthread_mutex_unlock(&r->lock);
    if (p->split)
        log_info("%s: copying keys [%s, %s) straight into the table (lane %zu)", t->source,
                 p->lo[0] != '\0' ? p->lo : "min", p->hi[0] != '\0' ? p->hi : "max", lane->number);
    else
        log_info("%s: copying straight into the table (lane %zu)", t->source, lane->number);
    bool ok = tablediff_run(&r->s->layouts[p->table], (int)p->table, lane->source, lane->target,
                            &lane->write, 1, &o, &p->result);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_mutex_lock(&r->lock);
    tablediff_result *res = &r->results[p->table];
    add_result(res, &p->result);
    res->seconds = progress_seconds(&dt->start, &t1);
    dt->failed = dt->failed || !ok;
    bool last = --dt->pieces_left == 0 && !dt->failed;
    tablediff_result copy = *res;
    pthread_mutex_unlock(&r->lock);
    return ok && (!last || table_finished(r, lane, p->table, &copy));
}

/*
 * A lane with no piece left builds deferred indexes, constraints and foreign keys of
 * the copied tables, one claimed step at a time, beside the lanes still copying.
 */
static int dl_idle(void *ctx, const lane_conns *lane, bool pieces_running)
{
    dl_run *r = ctx;
    pthread_mutex_lock(&r->lock);
    char *ready = wb_xmalloc(r->ready.len + 3);
    snprintf(ready, r->ready.len + 3, "{%s}", r->ready.data);
    pthread_mutex_unlock(&r->lock);
    bool did = false, more = false;
    bool ok = deferidx_rebuild_step(lane->write, r->s->cfg.state_schema, ready, &did, &more);
    free(ready);
    if (!ok)
        return LANES_IDLE_FAILED;
    if (did) {
        pthread_mutex_lock(&r->lock);
        r->steps++;
        pthread_mutex_unlock(&r->lock);
        return LANES_IDLE_AGAIN;
    }
    return more || pieces_running ? LANES_IDLE_WAIT : LANES_IDLE_DONE;
}

bool directload_run(bf_session *s, const handoff *h, const tablediff_options *o, int jobs,
                    const dl_load *load, tablediff_result *results)
{
    size_t ntables = s->cfg.ntables;
    dl_run r = {.s = s, .h = h, .o = *o, .results = results};
    pthread_mutex_init(&r.lock, NULL);
    strbuf_init(&r.ready);
    r.tables = wb_xcalloc(ntables > 0 ? ntables : 1, sizeof *r.tables);
    size_t ndirect = 0, npieces = 0;
    for (size_t i = 0; i < ntables; i++) {
        ndirect += load[i] != DL_NONE ? 1 : 0;
        r.tables[i].load = load[i];
        r.ordered = r.ordered || after_parents(load[i]);
    }
    r.o.direct = true;
    r.o.source_fetch = NULL;
    /* A stale row would be COPYed in as a second row: no unique index is there to stop
     * it.  Only a resumed load can meet one (rows of an earlier run's snapshot): the
     * caller diffs those tables again for stale rows once their indexes are back. */
    r.o.include_stale = false;
    r.o.keys_only = true;
    r.o.progress = o->progress && (ndirect == 1 || jobs == 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = plan_pieces(&r, load, jobs, &npieces);
    size_t *items = wb_xcalloc(npieces > 0 ? npieces : 1, sizeof *items);
    for (size_t k = 0; k < npieces; k++)
        items[k] = k;
    lanes_job job = {.s = s,
                     .items = items,
                     .nitems = npieces,
                     .jobs = jobs,
                     .write = true,
                     .what = "backfill",
                     .join_snapshot = dl_join_snapshot,
                     .run = dl_piece_run,
                     .idle = dl_idle,
                     .ctx = &r};
    ok = ok && lanes_run(&job);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (ok)
        log_info("backfill: %zu tables copied straight in (%zu pieces) and %zu deferred "
                 "index, constraint and foreign key steps run in %.2fs",
                 ndirect, npieces, r.steps, progress_seconds(&t0, &t1));
    for (size_t k = 0; k < npieces; k++)
        tablediff_result_free(&r.pieces[k].result);
    free(items);
    free(r.pieces);
    free(r.tables);
    strbuf_free(&r.ready);
    pthread_mutex_destroy(&r.lock);
    return ok;
}
