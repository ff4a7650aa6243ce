/*
 * verify_lanes.c — verify's table diffs on several lanes (verify_lanes.h):
 * the queue ordered largest first, the extra lanes' connections and the
 * shared source snapshot, the lane threads.
 */
#include "backfill/verify_lanes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

/* As bfsession.c sets on the session's own diff connections. */

/* The tables still to diff.  next and failed are guarded by lock; the rest is
 * read-only while lanes run. */
typedef struct lane_queue {
    pthread_mutex_t lock;
    size_t *order; /* config indexes, in the order lanes take them (owned) */
    size_t n;
    size_t next;
    bool failed; /* a diff failed: take no more tables */
    const bf_session *s;
    const tablediff_options *o;
    tablediff_result *results; /* by config index; each slot written by one lane */
} lane_queue;

typedef struct lane {
    lane_queue *q;
    size_t number;  /* 1..N, for messages */
    PGconn *source; /* lane 0: the session's (borrowed); others owned */
    PGconn *target;
    pthread_t thread;
    bool threaded; /* thread started: join it */
} lane;

/* One table's share of the work, for the largest-first order. */
typedef struct table_size {
    size_t index;
    double rows;  /* reltuples; < 0 never analyzed */
    double bytes; /* pg_relation_size */
    double key;   /* what the order compares */
} table_size;

/* Next table for a lane; false when none is left or a lane failed. */
static bool queue_take(lane_queue *q, size_t *index)
{
    pthread_mutex_lock(&q->lock);
    bool got = !q->failed && q->next < q->n;
    if (got)
        *index = q->order[q->next++];
    pthread_mutex_unlock(&q->lock);
    return got;
}

static void queue_fail(lane_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->failed = true;
    pthread_mutex_unlock(&q->lock);
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    lane_queue *q = l->q;
    size_t i;
    while (queue_take(q, &i)) {
        log_debug("verify: lane %zu diffs %s", l->number, q->s->cfg.tables[i].source);
        if (!tablediff_run(&q->s->layouts[i], (int)i, l->source, l->target, NULL, 0, q->o,
                           &q->results[i]))
            queue_fail(q);
    }
    return NULL;
}

/* Largest first; equal sizes in config order. */
static int compare_size(const void *a, const void *b)
{
    const table_size *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool read_size(PGconn *source, const table_config *t, table_size *out)
{
    strbuf name;
    strbuf_init(&name);
    pgconn_append_qualified(&name, t->source_schema, t->source_name);
    const char *params[1] = {name.data};
    PGresult *res = pgconn_query(source, "source: table size",
                                 "SELECT reltuples::float8, pg_relation_size(oid)::float8 "
                                 "FROM pg_class WHERE oid = $1::regclass",
                                 1, params, NULL);
    strbuf_free(&name);
    bool ok = res != NULL && PQntuples(res) == 1;
    if (ok) {
        out->rows = strtod(PQgetvalue(res, 0, 0), NULL);
        out->bytes = strtod(PQgetvalue(res, 0, 1), NULL);
    } else if (res != NULL) {
        log_error("source: table size of %s: no such relation", t->source);
    }
    PQclear(res);
    return ok;
}

/*
 * Fills q->order with the selected tables, largest first: by the planner's
 * row estimate, or by size on disk when a table was never analyzed (its
 * estimate is unknown, and rows and bytes do not compare).
 */
static bool order_largest_first(bf_session *s, lane_queue *q)
{
    table_size *sizes = wb_xcalloc(q->n, sizeof *sizes);
    bool all_analyzed = true;
    bool ok = true;
    size_t n = 0;
    for (size_t i = 0; ok && i < s->cfg.ntables; i++) {
        if (!s->selected[i])
            continue;
        sizes[n].index = i;
        ok = read_size(s->source, &s->cfg.tables[i], &sizes[n]);
        if (sizes[n].rows < 0)
            all_analyzed = false;
        n++;
    }
    if (ok) {
        for (size_t k = 0; k < n; k++)
            sizes[k].key = all_analyzed ? sizes[k].rows : sizes[k].bytes;
        qsort(sizes, n, sizeof *sizes, compare_size);
        for (size_t k = 0; k < n; k++)
            q->order[k] = sizes[k].index;
    }
    free(sizes);
    return ok;
}

/* Opens lane l's own connections, the source one inside the snapshot name. */
static bool open_lane(const bf_session *s, lane *l)
{
    char err[512];
    l->source = pgconn_open(s->cfg.source_dsn, PGCONN_SOURCE, "source", 3, err, sizeof err);
    if (l->source == NULL)
        return false;
    l->target = pgconn_open(s->cfg.target_dsn, PGCONN_TARGET, "target", 3, err, sizeof err);
    if (l->target == NULL)
        return false;
    return pgconn_exec(l->source, "source", BF_DIFF_WORK_MEM) &&
           pgconn_exec(l->target, "target", BF_DIFF_WORK_MEM);
}

static void close_lane(lane *l)
{
    if (l->source != NULL)
        PQfinish(l->source);
    if (l->target != NULL)
        PQfinish(l->target);
    l->source = l->target = NULL;
}

/*
 * Sets up lanes 1..*nlanes-1 (connections, snapshot) after lane 0's
 * snapshot transaction began.  Falls back to one lane (*nlanes = 1) when the
 * source cannot export its snapshot.  False (logged) on a connection failure.
 */
static bool setup_extra_lanes(bf_session *s, lane *lanes, size_t *nlanes)
{
    for (size_t k = 1; k < *nlanes; k++) {
        if (!open_lane(s, &lanes[k]))
            return false;
    }
    if (!pgconn_exec(s->source, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN))
        return false;
    char *name = pgconn_snapshot_export(s->source, "verify runs one table at a time");
    if (name == NULL) {
        for (size_t k = 1; k < *nlanes; k++)
            close_lane(&lanes[k]);
        *nlanes = 1;
        return true;
    }
    bool ok = true;
    for (size_t k = 1; ok && k < *nlanes; k++)
        ok = pgconn_snapshot_import(lanes[k].source, name);
    free(name);
    return ok;
}

/* Runs the lanes: 1..n-1 on threads, lane 0 on the calling thread; joins them. */
static void run_lanes(lane *lanes, size_t nlanes)
{
    for (size_t k = 1; k < nlanes; k++) {
        int err = pthread_create(&lanes[k].thread, NULL, lane_main, &lanes[k]);
        if (err != 0)
            log_warn("verify: cannot start lane %zu (%s); the other lanes take its tables", k,
                     strerror(err));
        lanes[k].threaded = err == 0;
    }
    lane_main(&lanes[0]);
    for (size_t k = 1; k < nlanes; k++) {
        if (lanes[k].threaded)
            pthread_join(lanes[k].thread, NULL);
    }
}

bool verify_lanes_run(bf_session *s, int jobs, const tablediff_options *o,
                      tablediff_result *results)
{
    lane_queue q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.lock, NULL);
    q.s = s;
    q.o = o;
    q.results = results;
    for (size_t i = 0; i < s->cfg.ntables; i++)
        q.n += s->selected[i] ? 1 : 0;
    q.order = wb_xcalloc(q.n > 0 ? q.n : 1, sizeof *q.order);
    size_t nlanes = jobs > 1 ? (size_t)jobs : 1;
    if (nlanes > q.n)
        nlanes = q.n > 0 ? q.n : 1;
    lane *lanes = wb_xcalloc(nlanes, sizeof *lanes);
    for (size_t k = 0; k < nlanes; k++) {
        lanes[k].q = &q;
        lanes[k].number = k + 1;
    }
    lanes[0].source = s->source;
    lanes[0].target = s->target_read;

    bool ok;
    if (nlanes == 1) {
        /* The sequential verify: config order, the session's connections. */
        for (size_t i = 0, n = 0; i < s->cfg.ntables; i++) {
            if (s->selected[i])
                q.order[n++] = i;
        }
        ok = pgconn_exec(s->source, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN);
    } else {
        ok = order_largest_first(s, &q) && setup_extra_lanes(s, lanes, &nlanes);
    }
    if (ok && nlanes > 1)
        log_info("verify: %zu tables, %zu at a time, in one source snapshot", q.n, nlanes);
    if (ok) {
        run_lanes(lanes, nlanes);
        ok = !q.failed;
    }
    for (size_t k = 1; k < nlanes; k++)
        close_lane(&lanes[k]);
    free(lanes);
    free(q.order);
    pthread_mutex_destroy(&q.lock);
    return ok;
}
