/*
 * health.h — the verdict of `walbridge health`, apart from any I/O.
 *
 * health_cmd.c gathers every figure into a health_facts (source slot,
 * settings, walsender, spill counters; target applied LSN); health_evaluate
 * turns the facts and the thresholds into a verdict with its reasons; the
 * render functions print it as text (monitoring-plugin status line with
 * perfdata, then details), JSON (every figure) or Prometheus exposition
 * text.  Everything here is pure so the unit tests cover each rule.
 *
 * Rules (highest severity wins; every reason is listed):
 *   source unreachable or a query fails          CRITICAL (slot state unknown)
 *   slot missing, wal_status lost, invalidated   CRITICAL, hint: re-run backfill
 *   slot plugin not wal2json / other database    CRITICAL
 *   wal_level not logical                        CRITICAL
 *   output_plugin_libraries lacks wal2json       CRITICAL (when the setting exists)
 *   wal_status unreserved / extended             CRITICAL / WARNING
 *   safe_wal_size < 20% / 50% of max_slot_wal_keep_size   CRITICAL / WARNING
 *   retained WAL (current - restart_lsn) > crit/warn_retained
 *   confirmed lag (current - confirmed_flush) > crit/warn_lag
 *   slot inactive longer than crit/warn_inactive (needs inactive_since,
 *     PostgreSQL 17+; older servers report "inactive" without a duration)
 *   applied LSN older than crit/warn_stale while the source has WAL past
 *     both the applied LSN and confirmed_flush
 *   confirmed_flush ahead of the applied LSN     CRITICAL (data may have been skipped)
 *   target unreachable or its query fails        WARNING (source figures still judged)
 *   no applied LSN recorded (stream never ran)   WARNING
 * Thresholds compare with ">": a value equal to the threshold passes.
 */
#ifndef WALBRIDGE_HEALTH_H
#define WALBRIDGE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/lsn.h"
#include "common/strbuf.h"

typedef enum health_status {
    HEALTH_OK = 0,
    HEALTH_WARNING = 1,
    HEALTH_CRITICAL = 2,
    HEALTH_UNKNOWN = 3
} health_status;

const char *health_status_name(health_status s); /* "OK", "WARNING", ... */

typedef enum health_format { HEALTH_TEXT = 0, HEALTH_JSON, HEALTH_PROMETHEUS } health_format;

/* 0 disables a byte threshold; a negative value disables a duration threshold. */
typedef struct health_thresholds {
    uint64_t warn_retained, crit_retained; /* bytes */
    uint64_t warn_lag, crit_lag;           /* bytes */
    double warn_stale, crit_stale;         /* seconds */
    double warn_inactive, crit_inactive;   /* seconds */
} health_thresholds;

/* Defaults: retained 512MB/2GB, lag 256MB/1GB, stale 5min/30min, inactive 5min/30min. */
void health_thresholds_default(health_thresholds *t);

/*
 * Sizes: a non-negative number (decimals allowed) with an optional unit
 * B, kB, MB, GB, TB (case-insensitive, 1024-based like PostgreSQL; K/M/G/T
 * and KiB/MiB/GiB/TiB also accepted); no unit means bytes.  "256MB", "1GB".
 * Durations: number with ms, s, min, h or d; no unit means seconds.
 * "30s", "5min".  On failure write why into err.
 */
bool health_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen);
bool health_parse_duration(const char *text, double *seconds, char *err, size_t errlen);

/*
 * Converts a pg_settings value and unit ("64","MB"; "-1","MB"; "60000","ms")
 * into bytes or seconds.  Returns false for a unit it does not know.
 */
bool health_setting_bytes(const char *setting, const char *unit, int64_t *bytes);
bool health_setting_seconds(const char *setting, const char *unit, double *seconds);

#define HEALTH_TEXT_SMALL 64
#define HEALTH_TEXT_LARGE 512

/*
 * Every figure health reads.  "has_*" flags say whether a figure is known
 * (column exists on this server version, row found, value not NULL).
 */
typedef struct health_facts {
    char slot[HEALTH_TEXT_SMALL];
    char state_schema[HEALTH_TEXT_SMALL];

    /* source */
    bool source_ok; /* connected and the queries ran */
    bool
        source_connected; /* connected (false: unreachable; true with !source_ok: a query failed) */
    char source_error[HEALTH_TEXT_LARGE];
    int server_version_num;
    char wal_level[HEALTH_TEXT_SMALL];
    bool has_max_slot_wal_keep_size;
    int64_t max_slot_wal_keep_size; /* bytes, -1 = unlimited */
    int max_replication_slots, slots_used;
    bool has_wal_sender_timeout;
    double wal_sender_timeout_s;
    bool has_output_plugin_libraries; /* setting exists (15.19+, 16.15+, 17.11+) */
    char output_plugin_libraries[HEALTH_TEXT_LARGE];
    wb_lsn current_lsn;

    bool slot_found;
    char plugin[HEALTH_TEXT_SMALL];
    char slot_type[HEALTH_TEXT_SMALL];
    bool slot_database_matches; /* slot's database is the DSN's database */
    char slot_database[HEALTH_TEXT_SMALL];
    bool active;
    int active_pid;                     /* 0 when inactive */
    char wal_status[HEALTH_TEXT_SMALL]; /* "" when NULL */
    bool has_safe_wal_size;
    int64_t safe_wal_size;                   /* bytes; may be negative */
    wb_lsn restart_lsn, confirmed_flush_lsn; /* LSN_INVALID when NULL */
    bool has_catalog_xmin_age;
    int64_t catalog_xmin_age;
    bool has_conflicting; /* PG16+ */
    bool conflicting;
    bool has_inactive_since; /* PG17+, and the slot is inactive */
    double inactive_s;
    bool has_invalidation_reason; /* PG17+, and not NULL */
    char invalidation_reason[HEALTH_TEXT_SMALL];

    bool walsender_found; /* pg_stat_replication row of active_pid */
    char walsender_state[HEALTH_TEXT_SMALL];
    bool has_reply_age;
    double reply_age_s;

    bool has_spill; /* pg_stat_replication_slots (PG14+) */
    int64_t spill_txns, spill_count, spill_bytes;
    int64_t stream_txns, stream_count, stream_bytes;
    int64_t total_txns, total_bytes;

    /* target */
    bool target_ok;        /* connected and the applied LSN was read */
    bool target_connected; /* as source_connected */
    char target_error[HEALTH_TEXT_LARGE];
    bool state_exists; /* <schema>.stream_progress exists */
    bool applied_found;
    wb_lsn applied_lsn;
    double applied_age_s; /* -1 unknown */
} health_facts;

/* Zeroes facts and marks every optional figure unknown. */
void health_facts_init(health_facts *f, const char *slot, const char *state_schema);

#define HEALTH_MAX_REASONS 24

typedef struct health_reason {
    health_status severity;
    char message[HEALTH_TEXT_LARGE];
    char hint[HEALTH_TEXT_LARGE]; /* "" when none */
} health_reason;

typedef struct health_verdict {
    health_status status;
    health_reason reasons[HEALTH_MAX_REASONS]; /* most severe first */
    size_t nreasons;
    /* derived figures, -1 when unknown */
    int64_t retained_bytes;
    int64_t lag_bytes;         /* current - confirmed_flush */
    int64_t applied_lag_bytes; /* current - applied */
    double stale_s;            /* applied age, 0 when nothing is pending */
    double inactive_s;
} health_verdict;

void health_evaluate(const health_facts *f, const health_thresholds *t, health_verdict *v);

/* Appends the whole report in the given format to out. */
void health_render(const health_facts *f, const health_thresholds *t, const health_verdict *v,
                   health_format format, strbuf *out);

#endif
