/*
 * metrics.h — live counters of the stream loop and the small HTTP server
 * (libmicrohttpd) that exposes them while `walbridge stream
 * --metrics-listen ADDR:PORT` runs.
 *
 *   GET /metrics   Prometheus text exposition format 0.0.4
 *   GET /healthz   200 "ok: ..." or 503 "unhealthy: <why>" (plain text)
 *
 * Model: the stream loop owns one stream_metrics (stack or embedded in its
 * control struct), calls metrics_init once, then the metrics_set_* /
 * metrics_record_* / metrics_add_* functions as things happen.  Each takes
 * the struct's mutex for a few instructions, so they are cheap enough to
 * call per message.  The HTTP server runs on libmicrohttpd's own thread and
 * only reads the struct under the same mutex (metrics_render,
 * metrics_healthz).  metrics_server_stop must be called before
 * metrics_free.
 *
 * /healthz is 200 when the stream is connected AND made progress within
 * stale_after_s seconds (default 60): a batch applied, a message received
 * or a keepalive answered.  An idle source still sends keepalives (every
 * wal_sender_timeout/2), so an idle but healthy stream stays 200.
 * Otherwise 503 with the reason ("not connected to the source", "no
 * progress for 75 s (last keepalive answered 75 s ago)").
 *
 * Fields are private: read them only through metrics_render /
 * metrics_healthz (tests may read them directly).
 */
#ifndef WALBRIDGE_METRICS_H
#define WALBRIDGE_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "common/config.h"
#include "common/lsn.h"
#include "common/strbuf.h"

/* Row actions counted per table. */
typedef enum metrics_action {
    METRICS_INSERT = 0,
    METRICS_UPDATE,
    METRICS_DELETE,
    METRICS_TRUNCATE,
    METRICS_NACTIONS
} metrics_action;

/* Source-wins conflicts (DESIGN.md, Guarantee 3). */
typedef enum metrics_conflict {
    METRICS_CONFLICT_INSERT_EXISTING = 0, /* insert of an existing key -> updated */
    METRICS_CONFLICT_UPDATE_MISSING,      /* update of a missing row -> inserted */
    METRICS_CONFLICT_DELETE_MISSING,      /* delete of a missing row -> no-op */
    METRICS_NCONFLICTS
} metrics_conflict;

/* Upper bounds (seconds) of the batch apply latency histogram; +Inf is implied. */
#define METRICS_LATENCY_NBUCKETS 12
extern const double metrics_latency_bounds[METRICS_LATENCY_NBUCKETS];

#define METRICS_DEFAULT_STALE_S 60

typedef struct stream_metrics {
    pthread_mutex_t lock; /* guards every field below */
    char *slot;           /* owned copy of cfg->slot */
    size_t ntables;
    char **tables;  /* owned copies of cfg->tables[i].source, same indexes */
    uint64_t *rows; /* ntables * METRICS_NACTIONS, row-major by table */
    uint64_t conflicts[METRICS_NCONFLICTS];
    wb_lsn received_lsn;       /* highest LSN received from the source */
    wb_lsn applied_lsn;        /* durable applied LSN (applier_durable_lsn) */
    wb_lsn source_current_lsn; /* server WAL end from the last keepalive / w header */
    wb_lsn feedback_lsn;       /* flush LSN sent in the last standby status update */
    uint64_t txns_applied;
    uint64_t batches_applied;
    uint64_t latency_counts[METRICS_LATENCY_NBUCKETS + 1]; /* per bucket, last = +Inf */
    double latency_sum_s;
    uint64_t reconnects;
    bool connected;
    double started_at;      /* unix seconds (CLOCK_REALTIME); all times below the same */
    double last_received;   /* 0 = never */
    double last_batch;      /* last batch committed */
    double last_feedback;   /* last standby status update sent */
    double last_keepalive;  /* last keepalive answered */
    double connected_since; /* 0 while disconnected */
    int stale_after_s;      /* /healthz bound, default METRICS_DEFAULT_STALE_S */
} stream_metrics;

/*
 * Initialises m for cfg's slot and tables (names copied; cfg may go away).
 * Returns false only if the mutex cannot be created (logged).  Pair with
 * metrics_free.
 */
bool metrics_init(stream_metrics *m, const wb_config *cfg);
void metrics_free(stream_metrics *m);
void metrics_set_stale_after(stream_metrics *m, int seconds);

/* Connection to the source established (true) or lost (false). */
void metrics_set_connected(stream_metrics *m, bool connected);
/* Counts one reconnect attempt (after a lost connection). */
void metrics_record_reconnect(stream_metrics *m);
/* A message up to lsn was received (also stamps the receive time). */
void metrics_set_received(stream_metrics *m, wb_lsn lsn);
/* The applier's durable LSN (after a flush). Never moves backwards. */
void metrics_set_applied(stream_metrics *m, wb_lsn lsn);
/* The server's current WAL end (keepalive walEnd or w header walEnd). */
void metrics_set_source_current(stream_metrics *m, wb_lsn lsn);
/* A standby status update confirming flush_lsn was sent. */
void metrics_record_feedback(stream_metrics *m, wb_lsn flush_lsn);
/* A keepalive was answered (reply requested or not). */
void metrics_record_keepalive(stream_metrics *m);
/* A batch of ntxns source transactions was committed in latency_s seconds. */
void metrics_record_batch(stream_metrics *m, double latency_s, uint64_t ntxns);
/* n rows of table_index (index in cfg->tables) applied with action. */
void metrics_add_rows(stream_metrics *m, int table_index, metrics_action action, uint64_t n);
/* n conflicts of one kind (e.g. the delta of apply_stats between two flushes). */
void metrics_add_conflicts(stream_metrics *m, metrics_conflict kind, uint64_t n);

/*
 * Appends the Prometheus exposition text of m to out, as of now (unix
 * seconds).  Metric names: walbridge_stream_* (see metrics.c).
 */
void metrics_render(stream_metrics *m, double now, strbuf *out);
/* Appends the /healthz body to out; returns 200 or 503. */
int metrics_healthz(stream_metrics *m, double now, strbuf *out);

/*
 * Parses "ADDR:PORT" strictly: IPv4 dotted quad ("127.0.0.1:9187") or a
 * bracketed IPv6 address ("[::1]:9187"); port 1..65535, digits only.
 * Host names are refused.  On failure writes why into err.
 */
bool metrics_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen,
                          char *err, size_t errlen);

typedef struct metrics_server metrics_server; /* opaque */

/*
 * Starts the HTTP server on listen (ADDR:PORT) serving m, which must outlive
 * the server.  Returns NULL and writes why into err (bad address, port in
 * use).  Caller owns the server: metrics_server_stop.
 */
metrics_server *metrics_server_start(const char *listen, stream_metrics *m, char *err,
                                     size_t errlen);
/* Stops the server (waits for its thread) and frees it.  NULL is a no-op. */
void metrics_server_stop(metrics_server *s);

#endif
