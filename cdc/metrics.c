/*
 * metrics.c — the stream's live counters (updated by the stream loop under
 * a mutex) and their Prometheus / healthz rendering.  The HTTP server that
 * serves them is in metrics_server.c.  See metrics.h for the model.
 *
 * Metric names (all carry slot_name="<slot>"):
 *   walbridge_stream_connected                  gauge 0/1
 *   walbridge_stream_received_lsn               gauge, LSN as bytes
 *   walbridge_stream_applied_lsn                gauge, durable applied LSN
 *   walbridge_stream_source_current_lsn         gauge, server WAL end last seen
 *   walbridge_stream_feedback_lsn               gauge, flush LSN last confirmed
 *   walbridge_stream_lag_bytes                  gauge, source current - max(applied, feedback)
 *   walbridge_stream_rows_applied_total         counter {table, action}
 *   walbridge_stream_conflicts_total            counter {kind}
 *   walbridge_stream_transactions_applied_total counter
 *   walbridge_stream_batches_applied_total      counter
 *   walbridge_stream_batch_apply_seconds        histogram
 *   walbridge_stream_reconnects_total           counter
 *   walbridge_stream_last_feedback_timestamp_seconds, ..._last_keepalive_...,
 *   ..._last_batch_..., ..._last_received_..., walbridge_stream_start_time_seconds
 */
#include "cdc/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/promtext.h"

const double metrics_latency_bounds[METRICS_LATENCY_NBUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};

static const char *const action_names[METRICS_NACTIONS] = {"insert", "update", "delete",
                                                           "truncate"};
static const char *const conflict_names[METRICS_NCONFLICTS] = {"insert_existing", "update_missing",
                                                               "delete_missing"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool metrics_init(stream_metrics *m, const wb_config *cfg)
{
    memset(m, 0, sizeof *m);
    int rc = pthread_mutex_init(&m->lock, NULL);
    if (rc != 0) {
        log_error("metrics: cannot create a mutex (%s)", strerror(rc));
        return false;
    }
    m->slot = wb_xstrdup(cfg->slot ? cfg->slot : "walbridge");
    m->ntables = cfg->ntables;
    m->tables = wb_xcalloc(cfg->ntables ? cfg->ntables : 1, sizeof *m->tables);
    for (size_t i = 0; i < cfg->ntables; i++)
        m->tables[i] = wb_xstrdup(cfg->tables[i].source);
    m->rows = wb_xcalloc((cfg->ntables ? cfg->ntables : 1) * METRICS_NACTIONS, sizeof *m->rows);
    m->stale_after_s = METRICS_DEFAULT_STALE_S;
    m->started_at = now_s();
    return true;
}

void metrics_free(stream_metrics *m)
{
    for (size_t i = 0; i < m->ntables; i++)
        free(m->tables[i]);
    free(m->tables);
    free(m->rows);
    free(m->slot);
    pthread_mutex_destroy(&m->lock);
    memset(m, 0, sizeof *m);
}

void metrics_set_stale_after(stream_metrics *m, int seconds)
{
    pthread_mutex_lock(&m->lock);
    m->stale_after_s = seconds > 0 ? seconds : METRICS_DEFAULT_STALE_S;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_connected(stream_metrics *m, bool connected)
{
    double now = now_s();
    pthread_mutex_lock(&m->lock);
    if (connected && !m->connected)
        m->connected_since = now;
    if (!connected)
        m->connected_since = 0;
    m->connected = connected;
    pthread_mutex_unlock(&m->lock);
}

void metrics_record_reconnect(stream_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->reconnects++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_received(stream_metrics *m, wb_lsn lsn)
{
    double now = now_s();
    pthread_mutex_lock(&m->lock);
    if (lsn > m->received_lsn)
        m->received_lsn = lsn;
    m->last_received = now;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_applied(stream_metrics *m, wb_lsn lsn)
{
    pthread_mutex_lock(&m->lock);
    if (lsn > m->applied_lsn)
        m->applied_lsn = lsn;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_source_current(stream_metrics *m, wb_lsn lsn)
{
    pthread_mutex_lock(&m->lock);
    if (lsn > m->source_current_lsn)
        m->source_current_lsn = lsn;
    pthread_mutex_unlock(&m->lock);
}

void metrics_record_feedback(stream_metrics *m, wb_lsn flush_lsn)
{
    double now = now_s();
    pthread_mutex_lock(&m->lock);
    if (flush_lsn > m->feedback_lsn)
        m->feedback_lsn = flush_lsn;
    m->last_feedback = now;
    pthread_mutex_unlock(&m->lock);
}

void metrics_record_keepalive(stream_metrics *m)
{
    double now = now_s();
    pthread_mutex_lock(&m->lock);
    m->last_keepalive = now;
    pthread_mutex_unlock(&m->lock);
}

void metrics_record_batch(stream_metrics *m, double latency_s, uint64_t ntxns)
{
    double now = now_s();
    size_t bucket = 0;
    if (latency_s < 0)
        latency_s = 0;
    while (bucket < METRICS_LATENCY_NBUCKETS && latency_s > metrics_latency_bounds[bucket])
        bucket++;
    pthread_mutex_lock(&m->lock);
    m->batches_applied++;
    m->txns_applied += ntxns;
    m->latency_counts[bucket]++;
    m->latency_sum_s += latency_s;
    m->last_batch = now;
    pthread_mutex_unlock(&m->lock);
}

void metrics_add_rows(stream_metrics *m, int table_index, metrics_action action, uint64_t n)
{
    if (table_index < 0 || (size_t)table_index >= m->ntables || (int)action < 0 ||
        action >= METRICS_NACTIONS)
        return;
    pthread_mutex_lock(&m->lock);
    m->rows[(size_t)table_index * METRICS_NACTIONS + (size_t)action] += n;
    pthread_mutex_unlock(&m->lock);
}

void metrics_add_conflicts(stream_metrics *m, metrics_conflict kind, uint64_t n)
{
    if ((int)kind < 0 || kind >= METRICS_NCONFLICTS)
        return;
    pthread_mutex_lock(&m->lock);
    m->conflicts[kind] += n;
    pthread_mutex_unlock(&m->lock);
}

/* ---- rendering -------------------------------------------------------- */

/* name{slot_name="..."[,extra]} value */
static void sample(strbuf *out, const stream_metrics *m, const char *name, const char *extra,
                   double value)
{
    strbuf_appendf(out, "%s{slot_name=\"", name);
    promtext_append_label_value(out, m->slot);
    strbuf_appendf(out, "\"%s%s} %.17g\n", extra ? "," : "", extra ? extra : "", value);
}

static void single(strbuf *out, const stream_metrics *m, const char *name, const char *type,
                   const char *help, double value)
{
    promtext_header(out, name, type, help);
    sample(out, m, name, NULL, value);
}

static void render_rows(const stream_metrics *m, strbuf *out)
{
    promtext_header(out, "walbridge_stream_rows_applied_total", "counter",
                    "Rows applied to the target, by source table and action.");
    for (size_t t = 0; t < m->ntables; t++) {
        for (size_t a = 0; a < METRICS_NACTIONS; a++) {
            strbuf_append(out, "walbridge_stream_rows_applied_total{slot_name=\"");
            promtext_append_label_value(out, m->slot);
            strbuf_append(out, "\",table=\"");
            promtext_append_label_value(out, m->tables[t]);
            strbuf_appendf(out, "\",action=\"%s\"} %llu\n", action_names[a],
                           (unsigned long long)m->rows[t * METRICS_NACTIONS + a]);
        }
    }
    promtext_header(out, "walbridge_stream_conflicts_total", "counter",
                    "Source-wins conflicts resolved, by kind.");
    for (size_t k = 0; k < METRICS_NCONFLICTS; k++) {
        char label[64];
        snprintf(label, sizeof label, "kind=\"%s\"", conflict_names[k]);
        sample(out, m, "walbridge_stream_conflicts_total", label, (double)m->conflicts[k]);
    }
}

static void render_histogram(const stream_metrics *m, strbuf *out)
{
    static const char name[] = "walbridge_stream_batch_apply_seconds";
    char full[96], label[64];
    uint64_t cumulative = 0;
    promtext_header(out, name, "histogram", "Time to apply and commit one batch in the target.");
    snprintf(full, sizeof full, "%s_bucket", name);
    for (size_t b = 0; b <= METRICS_LATENCY_NBUCKETS; b++) {
        cumulative += m->latency_counts[b];
        if (b < METRICS_LATENCY_NBUCKETS)
            snprintf(label, sizeof label, "le=\"%g\"", metrics_latency_bounds[b]);
        else
            snprintf(label, sizeof label, "le=\"+Inf\"");
        sample(out, m, full, label, (double)cumulative);
    }
    snprintf(full, sizeof full, "%s_sum", name);
    sample(out, m, full, NULL, m->latency_sum_s);
    snprintf(full, sizeof full, "%s_count", name);
    sample(out, m, full, NULL, (double)cumulative);
}

void metrics_render(stream_metrics *m, double now, strbuf *out)
{
    (void)now;
    pthread_mutex_lock(&m->lock);
    single(out, m, "walbridge_stream_connected", "gauge",
           "1 while connected to the source's replication slot.", m->connected);
    single(out, m, "walbridge_stream_received_lsn", "gauge",
           "Highest LSN received from the source (as a byte position).", (double)m->received_lsn);
    single(out, m, "walbridge_stream_applied_lsn", "gauge",
           "LSN durably applied in the target (as a byte position).", (double)m->applied_lsn);
    single(out, m, "walbridge_stream_source_current_lsn", "gauge",
           "Source WAL end reported by the server (as a byte position).",
           (double)m->source_current_lsn);
    single(out, m, "walbridge_stream_feedback_lsn", "gauge",
           "Flush LSN confirmed to the source in the last status update.", (double)m->feedback_lsn);
    /* Idle WAL confirmed by feedback is done too, so it does not count as lag. */
    wb_lsn done = m->applied_lsn > m->feedback_lsn ? m->applied_lsn : m->feedback_lsn;
    double lag = 0;
    if (m->source_current_lsn > done && done != LSN_INVALID)
        lag = (double)(m->source_current_lsn - done);
    single(out, m, "walbridge_stream_lag_bytes", "gauge",
           "Source WAL end minus the applied (or idle-confirmed) LSN, in bytes.", lag);
    render_rows(m, out);
    single(out, m, "walbridge_stream_transactions_applied_total", "counter",
           "Source transactions applied.", (double)m->txns_applied);
    single(out, m, "walbridge_stream_batches_applied_total", "counter",
           "Target transactions (batches) committed.", (double)m->batches_applied);
    render_histogram(m, out);
    single(out, m, "walbridge_stream_reconnects_total", "counter",
           "Reconnections after a lost connection.", (double)m->reconnects);
    single(out, m, "walbridge_stream_last_feedback_timestamp_seconds", "gauge",
           "Unix time of the last standby status update (0 = never).", m->last_feedback);
    single(out, m, "walbridge_stream_last_keepalive_timestamp_seconds", "gauge",
           "Unix time of the last keepalive answered (0 = never).", m->last_keepalive);
    single(out, m, "walbridge_stream_last_batch_timestamp_seconds", "gauge",
           "Unix time of the last batch committed (0 = never).", m->last_batch);
    single(out, m, "walbridge_stream_last_received_timestamp_seconds", "gauge",
           "Unix time of the last message received (0 = never).", m->last_received);
    single(out, m, "walbridge_stream_start_time_seconds", "gauge",
           "Unix time the stream process started.", m->started_at);
    pthread_mutex_unlock(&m->lock);
}

static double latest(double a, double b)
{
    return a > b ? a : b;
}

int metrics_healthz(stream_metrics *m, double now, strbuf *out)
{
    int status;
    char applied[LSN_TEXT_MAX];
    pthread_mutex_lock(&m->lock);
    double progress = latest(latest(m->last_received, m->last_batch),
                             latest(m->last_keepalive, m->connected_since));
    double age = now - progress;
    if (!m->connected) {
        status = 503;
        strbuf_append(out, "unhealthy: not connected to the source\n");
    } else if (age > m->stale_after_s) {
        status = 503;
        strbuf_appendf(out,
                       "unhealthy: no progress for %.0f s (bound %d s): nothing received, "
                       "applied or answered",
                       age, m->stale_after_s);
        if (m->last_keepalive > 0)
            strbuf_appendf(out, "; last keepalive answered %.0f s ago", now - m->last_keepalive);
        if (m->last_batch > 0)
            strbuf_appendf(out, "; last batch %.0f s ago", now - m->last_batch);
        strbuf_append_char(out, '\n');
    } else {
        status = 200;
        strbuf_appendf(out, "ok: connected, applied LSN %s, last progress %.0f s ago\n",
                       lsn_format(m->applied_lsn, applied), age < 0 ? 0 : age);
    }
    pthread_mutex_unlock(&m->lock);
    return status;
}
