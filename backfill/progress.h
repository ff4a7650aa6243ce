/*
 * progress.h — the per-table progress report of backfill: on a terminal a
 * live line on stderr ("public.orders  523,000 rows  410,112 rows/s  ETA 2s"),
 * redrawn at most twice a second; otherwise a log line every ten seconds.
 *
 * The caller owns the struct (stack); nothing is allocated.
 */
#ifndef WALBRIDGE_PROGRESS_H
#define WALBRIDGE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct progress_meter {
    const char *table;           /* borrowed, for the line */
    double estimate;             /* expected rows (<= 0: unknown, no ETA) */
    bool tty;                    /* draw a live line instead of log lines */
    bool drawn;                  /* private: a line is on the screen */
    struct timespec start, last; /* private */
} progress_meter;

void progress_init(progress_meter *m, const char *table, double estimate, bool tty);
/* Reports rows done so far; cheap enough to call per row. */
void progress_tick(progress_meter *m, uint64_t rows);
/* Clears the live line (if any). */
void progress_done(progress_meter *m, uint64_t rows);

/* Elapsed seconds between two monotonic times. */
double progress_seconds(const struct timespec *from, const struct timespec *to);

#endif
