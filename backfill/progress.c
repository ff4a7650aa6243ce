/*
 * progress.c — progress line / progress log lines of backfill (progress.h).
 */
#include "backfill/progress.h"

#include <inttypes.h>
#include <stdio.h>

#include "common/log.h"

double progress_seconds(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) + (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

void progress_init(progress_meter *m, const char *table, double estimate, bool tty)
{
    m->table = table;
    m->estimate = estimate;
    m->tty = tty;
    m->drawn = false;
    clock_gettime(CLOCK_MONOTONIC, &m->start);
    m->last = m->start;
}

static void format_eta(const progress_meter *m, uint64_t rows, double rate, char *buf, size_t cap)
{
    if (m->estimate <= 0 || rate <= 0 || (double)rows >= m->estimate) {
        snprintf(buf, cap, "-");
        return;
    }
    double left = (m->estimate - (double)rows) / rate;
    if (left < 60)
        snprintf(buf, cap, "%.0fs", left);
    else
        snprintf(buf, cap, "%ldm%02lds", (long)left / 60, (long)left % 60);
}

void progress_tick(progress_meter *m, uint64_t rows)
{
    if ((rows & 1023) != 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double since_last = progress_seconds(&m->last, &now);
    if (since_last < (m->tty ? 0.5 : 10.0))
        return;
    m->last = now;
    double elapsed = progress_seconds(&m->start, &now);
    double rate = elapsed > 0 ? (double)rows / elapsed : 0;
    char eta[32];
    format_eta(m, rows, rate, eta, sizeof eta);
    if (m->tty) {
        fprintf(stderr, "\r%-28s %12" PRIu64 " rows %10.0f rows/s  ETA %-8s", m->table, rows, rate,
                eta);
        fflush(stderr);
        m->drawn = true;
    } else {
        log_info("%s: %" PRIu64 " source rows compared, %.0f rows/s, ETA %s", m->table, rows, rate,
                 eta);
    }
}

void progress_done(progress_meter *m, uint64_t rows)
{
    (void)rows;
    if (m->drawn) {
        fprintf(stderr, "\r%78s\r", "");
        fflush(stderr);
        m->drawn = false;
    }
}
