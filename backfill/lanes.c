/*
 * lanes.c — per-table work on several lanes (lanes.h): the queue ordered largest
 * first, the extra lanes' connections and the shared source snapshot, the lane
 * threads.
 */
#include "backfill/lanes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/strbuf.h"

/* The tables still to diff.  next and failed are guarded by lock; the rest is
 * read-only while lanes run. */
typedef struct lane_queue {
    pthread_mutex_t lock;
    size_t *order; /* config indexes, in the order lanes take them (owned) */
    size_t n;
    size_t next;
    bool failed;    /* a table's work failed: take no more tables */
    size_t running; /* lanes inside job->run */
    const lanes_job *job;
} lane_queue;

typedef struct lane {
    lane_queue *q;
    lane_conns c; /* lane 0: the session's (borrowed); others owned */
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
    if (got) {
        *index = q->order[q->next++];
        q->running++;
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

static void queue_fail(lane_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->failed = true;
    pthread_mutex_unlock(&q->lock);
}

/* A lane is done with the table it took; false when the lanes stop (a failure). */
static bool queue_done(lane_queue *q, bool ok)
{
    pthread_mutex_lock(&q->lock);
    q->running--;
    if (!ok)
        q->failed = true;
    bool go_on = !q->failed;
    pthread_mutex_unlock(&q->lock);
    return go_on;
}

/* The job's idle work, once no table is left to take (lanes_job.idle). */
static void lane_idle(lane *l)
{
    lane_queue *q = l->q;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        bool failed = q->failed, running = q->running > 0;
        pthread_mutex_unlock(&q->lock);
        if (failed)
            return;
        int r = q->job->idle(q->job->ctx, &l->c, running);
        if (r == LANES_IDLE_FAILED)
            queue_fail(q);
        if (r == LANES_IDLE_FAILED || r == LANES_IDLE_DONE)
            return;
        if (r == LANES_IDLE_WAIT) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    lane_queue *q = l->q;
    size_t i;
    while (queue_take(q, &i)) {
        if (q->job->items == NULL) /* items: the job's run says what it takes */
            log_debug("%s: lane %zu takes %s", q->job->what, l->c.number,
                      q->job->s->cfg.tables[i].source);
        if (!queue_done(q, q->job->run(q->job->ctx, &l->c, i)))
            return NULL;
    }
    if (q->job->idle != NULL)
        lane_idle(l);
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

bool lanes_table_size(PGconn *source, const table_config *t, double *rows, double *bytes)
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
        *rows = strtod(PQgetvalue(res, 0, 0), NULL);
        *bytes = strtod(PQgetvalue(res, 0, 1), NULL);
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
static bool order_largest_first(const lanes_job *job, lane_queue *q)
{
    bf_session *s = job->s;
    table_size *sizes = wb_xcalloc(q->n, sizeof *sizes);
    bool all_analyzed = true;
    bool ok = true;
    size_t n = 0;
    for (size_t i = 0; ok && i < s->cfg.ntables; i++) {
        if (!job->tables[i])
            continue;
        sizes[n].index = i;
        ok = lanes_table_size(s->source, &s->cfg.tables[i], &sizes[n].rows, &sizes[n].bytes);
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

/* Opens lane l's own connections; the source one is not in a snapshot yet. */
static bool open_lane(const lanes_job *job, lane *l)
{
    const bf_session *s = job->s;
    char err[512];
    l->c.source = pgconn_open(s->cfg.source_dsn, PGCONN_SOURCE, "source", 3, err, sizeof err);
    if (l->c.source == NULL)
        return false;
    l->c.target = pgconn_open(s->cfg.target_dsn, PGCONN_TARGET, "target", 3, err, sizeof err);
    if (l->c.target == NULL)
        return false;
    if (job->write) {
        l->c.write = pgconn_open(s->cfg.target_dsn, PGCONN_TARGET, "target", 3, err, sizeof err);
        if (l->c.write == NULL)
            return false;
        /* As the session's writers: where the role may not, triggers run (for all). */
        PQclear(PQexec(l->c.write, "SET session_replication_role = replica"));
        if (!pgconn_exec(l->c.write, "target", BF_DIFF_WORK_MEM))
            return false;
    }
    return pgconn_exec(l->c.source, "source", BF_DIFF_WORK_MEM) &&
           pgconn_exec(l->c.target, "target", BF_DIFF_WORK_MEM);
}

static void close_lane(lane *l)
{
    PGconn *conns[3] = {l->c.source, l->c.target, l->c.write};
    for (size_t k = 0; k < 3; k++) {
        if (conns[k] != NULL)
            PQfinish(conns[k]);
    }
    l->c.source = l->c.target = l->c.write = NULL;
}

/*
 * Sets up lanes 1..*nlanes-1 (connections, snapshot); the session's source begins
 * its snapshot transaction here unless job->join_snapshot.  Falls back to one lane
 * (*nlanes = 1) when the source cannot export its snapshot.  False (logged) on a
 * connection failure.
 */
static bool setup_extra_lanes(const lanes_job *job, lane *lanes, size_t *nlanes)
{
    for (size_t k = 1; k < *nlanes; k++) {
        if (!open_lane(job, &lanes[k]))
            return false;
    }
    if (job->join_snapshot != NULL) {
        bool ok = true;
        for (size_t k = 1; ok && k < *nlanes; k++)
            ok = job->join_snapshot(job->ctx, lanes[k].c.source);
        return ok;
    }
    if (!pgconn_exec(job->s->source, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN))
        return false;
    char *name = pgconn_snapshot_export(job->s->source, "one table at a time");
    if (name == NULL) {
        for (size_t k = 1; k < *nlanes; k++)
            close_lane(&lanes[k]);
        *nlanes = 1;
        return true;
    }
    bool ok = true;
    for (size_t k = 1; ok && k < *nlanes; k++)
        ok = pgconn_snapshot_import(lanes[k].c.source, name);
    free(name);
    return ok;
}

/* Runs the lanes: 1..n-1 on threads, lane 0 on the calling thread; joins them. */
static void run_lanes(lane *lanes, size_t nlanes)
{
    for (size_t k = 1; k < nlanes; k++) {
        int err = pthread_create(&lanes[k].thread, NULL, lane_main, &lanes[k]);
        if (err != 0)
            log_warn("%s: cannot start lane %zu (%s); the other lanes take its tables",
                     lanes[k].q->job->what, k, strerror(err));
        lanes[k].threaded = err == 0;
    }
    lane_main(&lanes[0]);
    for (size_t k = 1; k < nlanes; k++) {
        if (lanes[k].threaded)
            pthread_join(lanes[k].thread, NULL);
    }
}

bool lanes_run(const lanes_job *job)
{
    bf_session *s = job->s;
    lane_queue q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.lock, NULL);
    q.job = job;
    for (size_t i = 0; job->items == NULL && i < s->cfg.ntables; i++)
        q.n += job->tables[i] ? 1 : 0;
    if (job->items != NULL)
        q.n = job->nitems;
    q.order = wb_xcalloc(q.n > 0 ? q.n : 1, sizeof *q.order);
    if (job->items != NULL)
        memcpy(q.order, job->items, q.n * sizeof *q.order);
    size_t nlanes = job->jobs > 1 ? (size_t)job->jobs : 1;
    if (nlanes > q.n)
        nlanes = q.n > 0 ? q.n : 1;
    lane *lanes = wb_xcalloc(nlanes, sizeof *lanes);
    for (size_t k = 0; k < nlanes; k++) {
        lanes[k].q = &q;
        lanes[k].c.number = k + 1;
    }
    lanes[0].c.source = s->source;
    lanes[0].c.target = s->target_read;
    lanes[0].c.write = job->write ? s->target_write[0] : NULL;

    bool ok = true;
    if (nlanes == 1) {
        /* Sequential: config order, the session's connections. */
        for (size_t i = 0, n = 0; job->items == NULL && i < s->cfg.ntables; i++) {
            if (job->tables[i])
                q.order[n++] = i;
        }
        if (job->join_snapshot == NULL)
            ok = ok && pgconn_exec(s->source, "source: BEGIN", PGCONN_SNAPSHOT_BEGIN);
    } else {
        ok = ok && (job->items != NULL || order_largest_first(job, &q)) &&
             setup_extra_lanes(job, lanes, &nlanes);
    }
    if (ok && nlanes > 1)
        log_info("%s: %zu %s, %zu at a time, in one source snapshot", job->what, q.n,
                 job->items != NULL ? "pieces" : "tables", nlanes);
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
