/*
 * health.c — threshold parsing and the verdict of `walbridge health`
 * (rules in health.h).  Pure: no database, no clock; health_cmd.c gathers
 * the facts and health_render.c prints them.
 */
#include "cdc/health.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *health_status_name(health_status s)
{
    switch (s) {
    case HEALTH_OK:
        return "OK";
    case HEALTH_WARNING:
        return "WARNING";
    case HEALTH_CRITICAL:
        return "CRITICAL";
    case HEALTH_UNKNOWN:
        break;
    }
    return "UNKNOWN";
}

void health_thresholds_default(health_thresholds *t)
{
    const uint64_t mb = 1024 * 1024;
    t->warn_retained = 512 * mb;
    t->crit_retained = 2048 * mb;
    t->warn_lag = 256 * mb;
    t->crit_lag = 1024 * mb;
    t->warn_stale = 300;
    t->crit_stale = 1800;
    t->warn_inactive = 300;
    t->crit_inactive = 1800;
}

typedef struct unit_factor {
    const char *name;
    double factor;
} unit_factor;

static const unit_factor size_units[] = {
    {"", 1.0},
    {"B", 1.0},
    {"kB", 1024.0},
    {"K", 1024.0},
    {"KiB", 1024.0},
    {"MB", 1048576.0},
    {"M", 1048576.0},
    {"MiB", 1048576.0},
    {"GB", 1073741824.0},
    {"G", 1073741824.0},
    {"GiB", 1073741824.0},
    {"TB", 1099511627776.0},
    {"T", 1099511627776.0},
    {"TiB", 1099511627776.0},
};

static const unit_factor duration_units[] = {
    {"", 1.0}, {"ms", 0.001}, {"s", 1.0}, {"min", 60.0}, {"h", 3600.0}, {"d", 86400.0},
};

/*
 * Parses "<digits>[.<digits>][ ]<unit>" with unit from the table (matched
 * case-insensitively).  Signs, exponents, hex and trailing junk are refused.
 */
static bool parse_with_unit(const char *text, const unit_factor *units, size_t nunits,
                            const char *what, const char *examples, double *out, char *err,
                            size_t errlen)
{
    const char *p = text;
    double value = 0;
    bool digits = false;

    if (text == NULL || *text == '\0') {
        snprintf(err, errlen, "empty %s (examples: %s)", what, examples);
        return false;
    }
    while (isdigit((unsigned char)*p)) {
        value = value * 10 + (*p - '0');
        digits = true;
        p++;
    }
    if (*p == '.') {
        double scale = 0.1;
        p++;
        while (isdigit((unsigned char)*p)) {
            value += (*p - '0') * scale;
            scale /= 10;
            digits = true;
            p++;
        }
    }
    if (!digits) {
        snprintf(err, errlen, "invalid %s \"%s\": expected a number and a unit (examples: %s)",
                 what, text, examples);
        return false;
    }
    if (*p == ' ')
        p++;
    for (size_t i = 0; i < nunits; i++) {
        if (strcasecmp(p, units[i].name) == 0) {
            *out = value * units[i].factor;
            return true;
        }
    }
    snprintf(err, errlen, "invalid %s \"%s\": unknown unit \"%s\" (examples: %s)", what, text, p,
             examples);
    return false;
}

bool health_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
    double value;
    if (!parse_with_unit(text, size_units, sizeof size_units / sizeof size_units[0], "size",
                         "256MB, 1GB, 512kB; units B kB MB GB TB", &value, err, errlen))
        return false;
    if (!(value < 18446744073709551616.0)) {
        snprintf(err, errlen, "invalid size \"%s\": too large", text);
        return false;
    }
    *bytes = (uint64_t)value;
    return true;
}

bool health_parse_duration(const char *text, double *seconds, char *err, size_t errlen)
{
    return parse_with_unit(text, duration_units, sizeof duration_units / sizeof duration_units[0],
                           "duration", "30s, 5min, 2h, 1d; units ms s min h d", seconds, err,
                           errlen);
}

bool health_setting_bytes(const char *setting, const char *unit, int64_t *bytes)
{
    char *end;
    errno = 0;
    long long v = strtoll(setting, &end, 10);
    if (errno != 0 || end == setting || *end != '\0')
        return false;
    if (v < 0) {
        *bytes = -1;
        return true;
    }
    double factor;
    if (unit == NULL || *unit == '\0' || strcmp(unit, "B") == 0)
        factor = 1;
    else if (strcmp(unit, "kB") == 0)
        factor = 1024;
    else if (strcmp(unit, "8kB") == 0)
        factor = 8192;
    else if (strcmp(unit, "MB") == 0)
        factor = 1048576;
    else if (strcmp(unit, "16MB") == 0)
        factor = 16777216;
    else if (strcmp(unit, "GB") == 0)
        factor = 1073741824;
    else
        return false;
    *bytes = (int64_t)((double)v * factor);
    return true;
}

bool health_setting_seconds(const char *setting, const char *unit, double *seconds)
{
    char *end;
    errno = 0;
    double v = strtod(setting, &end);
    if (errno != 0 || end == setting || *end != '\0')
        return false;
    if (unit == NULL || *unit == '\0' || strcmp(unit, "s") == 0)
        *seconds = v;
    else if (strcmp(unit, "ms") == 0)
        *seconds = v / 1000.0;
    else if (strcmp(unit, "min") == 0)
        *seconds = v * 60.0;
    else
        return false;
    return true;
}

void health_facts_init(health_facts *f, const char *slot, const char *state_schema)
{
    memset(f, 0, sizeof *f);
    snprintf(f->slot, sizeof f->slot, "%s", slot);
    snprintf(f->state_schema, sizeof f->state_schema, "%s", state_schema);
    f->max_slot_wal_keep_size = -1;
    f->slot_database_matches = true;
    f->applied_age_s = -1;
}

/* ---- verdict ---------------------------------------------------------- */

static void add_reason(health_verdict *v, health_status severity, const char *hint, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void add_reason(health_verdict *v, health_status severity, const char *hint, const char *fmt,
                       ...)
{
    if (v->nreasons == HEALTH_MAX_REASONS)
        return;
    health_reason *r = &v->reasons[v->nreasons++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    snprintf(r->hint, sizeof r->hint, "%s", hint ? hint : "");
    r->severity = severity;
    if (severity == HEALTH_UNKNOWN) {
        if (v->status == HEALTH_OK)
            v->status = HEALTH_UNKNOWN;
    } else if (v->status == HEALTH_UNKNOWN || severity > v->status) {
        v->status = severity;
    }
}

static const char *const backfill_hint =
    "re-run walbridge backfill (it creates the slot and records where stream starts), "
    "then start walbridge stream";

/* Human size for messages: "512.0 MB". */
static void format_bytes(int64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (fabs(v) >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld B", (long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

static int64_t lsn_diff(wb_lsn a, wb_lsn b)
{
    if (a == LSN_INVALID || b == LSN_INVALID)
        return -1;
    return a >= b ? (int64_t)(a - b) : -(int64_t)(b - a);
}

static void check_bytes(health_verdict *v, const char *what, int64_t value, uint64_t warn,
                        uint64_t crit, const char *hint)
{
    char have[32], limit[32];
    if (value < 0)
        return;
    format_bytes(value, have, sizeof have);
    if (crit > 0 && (uint64_t)value > crit) {
        format_bytes((int64_t)crit, limit, sizeof limit);
        add_reason(v, HEALTH_CRITICAL, hint, "%s %s exceeds the critical threshold %s", what, have,
                   limit);
    } else if (warn > 0 && (uint64_t)value > warn) {
        format_bytes((int64_t)warn, limit, sizeof limit);
        add_reason(v, HEALTH_WARNING, hint, "%s %s exceeds the warning threshold %s", what, have,
                   limit);
    }
}

static void check_seconds(health_verdict *v, const char *what, double value, double warn,
                          double crit, const char *hint)
{
    if (value < 0)
        return;
    if (crit >= 0 && value > crit)
        add_reason(v, HEALTH_CRITICAL, hint, "%s %.0f s exceeds the critical threshold %.0f s",
                   what, value, crit);
    else if (warn >= 0 && value > warn)
        add_reason(v, HEALTH_WARNING, hint, "%s %.0f s exceeds the warning threshold %.0f s", what,
                   value, warn);
}

static bool list_has_wal2json(const char *list)
{
    /* comma-separated library names, possibly quoted or with a path / suffix */
    const char *p = strstr(list, "wal2json");
    return p != NULL;
}

static void evaluate_settings(const health_facts *f, health_verdict *v)
{
    if (f->wal_level[0] != '\0' && strcmp(f->wal_level, "logical") != 0)
        add_reason(v, HEALTH_CRITICAL, "set wal_level = logical on the source and restart it",
                   "source wal_level is \"%s\", logical decoding needs \"logical\"", f->wal_level);
    if (f->has_output_plugin_libraries && !list_has_wal2json(f->output_plugin_libraries))
        add_reason(v, HEALTH_CRITICAL,
                   "add wal2json to output_plugin_libraries on the source (on Supabase: ask "
                   "support or use the dashboard's database settings)",
                   "source output_plugin_libraries (\"%s\") does not list wal2json: the slot "
                   "cannot be decoded",
                   f->output_plugin_libraries);
}

static void evaluate_slot(const health_facts *f, const health_thresholds *t, health_verdict *v)
{
    if (!f->slot_found) {
        add_reason(v, HEALTH_CRITICAL, backfill_hint,
                   "replication slot \"%s\" does not exist on the source", f->slot);
        if (f->max_replication_slots > 0 && f->slots_used >= f->max_replication_slots)
            add_reason(v, HEALTH_CRITICAL, "drop an unused slot or raise max_replication_slots",
                       "all %d replication slots are in use: a new slot cannot be created",
                       f->max_replication_slots);
        return;
    }
    if (strcmp(f->plugin, "wal2json") != 0)
        add_reason(v, HEALTH_CRITICAL, "drop the slot, then re-run walbridge backfill",
                   "slot \"%s\" is a %s slot with output plugin \"%s\", not wal2json", f->slot,
                   f->slot_type[0] ? f->slot_type : "unknown", f->plugin);
    if (!f->slot_database_matches)
        add_reason(v, HEALTH_CRITICAL, "point source.dsn at the slot's database",
                   "slot \"%s\" belongs to database \"%s\", not the one source.dsn names", f->slot,
                   f->slot_database);
    if (strcmp(f->wal_status, "lost") == 0 || f->has_invalidation_reason ||
        (f->has_conflicting && f->conflicting)) {
        add_reason(v, HEALTH_CRITICAL, backfill_hint,
                   "slot \"%s\" is invalidated (wal_status %s%s%s): the WAL it needed is gone",
                   f->slot, f->wal_status[0] ? f->wal_status : "unknown",
                   f->has_invalidation_reason ? ", reason " : "",
                   f->has_invalidation_reason ? f->invalidation_reason : "");
        return;
    }
    if (strcmp(f->wal_status, "unreserved") == 0)
        add_reason(v, HEALTH_CRITICAL, "start walbridge stream now or raise max_slot_wal_keep_size",
                   "slot \"%s\" wal_status is unreserved: it will be invalidated at the next "
                   "checkpoint",
                   f->slot);
    else if (strcmp(f->wal_status, "extended") == 0)
        add_reason(v, HEALTH_WARNING, "check that walbridge stream is running and keeping up",
                   "slot \"%s\" wal_status is extended: it retains more than max_wal_size",
                   f->slot);

    if (f->has_safe_wal_size && f->max_slot_wal_keep_size > 0) {
        double share = (double)f->safe_wal_size / (double)f->max_slot_wal_keep_size;
        char have[32], max[32];
        format_bytes(f->safe_wal_size, have, sizeof have);
        format_bytes(f->max_slot_wal_keep_size, max, sizeof max);
        if (share < 0.2)
            add_reason(v, HEALTH_CRITICAL,
                       "start walbridge stream now or raise max_slot_wal_keep_size",
                       "safe_wal_size %s is under 20%% of max_slot_wal_keep_size %s", have, max);
        else if (share < 0.5)
            add_reason(v, HEALTH_WARNING, "check that walbridge stream is running and keeping up",
                       "safe_wal_size %s is under 50%% of max_slot_wal_keep_size %s", have, max);
    }

    check_bytes(v, "retained WAL", v->retained_bytes, t->warn_retained, t->crit_retained,
                "start or fix walbridge stream before the source disk fills or the slot is lost");
    check_bytes(v, "confirmed lag", v->lag_bytes, t->warn_lag, t->crit_lag,
                "check that walbridge stream is running and keeping up");
    if (!f->active)
        check_seconds(v, "slot inactive for", v->inactive_s, t->warn_inactive, t->crit_inactive,
                      "start walbridge stream (systemctl start walbridge-stream)");
}

static void evaluate_target(const health_facts *f, const health_thresholds *t, health_verdict *v)
{
    if (!f->target_ok) {
        add_reason(v, HEALTH_WARNING, "check target.dsn and that the target is up",
                   "target %s: %s (applied LSN unknown)",
                   f->target_connected ? "query failed" : "unreachable",
                   f->target_error[0] ? f->target_error : "unknown error");
        return;
    }
    if (!f->applied_found) {
        add_reason(v, HEALTH_WARNING, "run walbridge backfill, then walbridge stream",
                   "no applied LSN recorded for slot \"%s\" in %s.stream_progress%s: stream has "
                   "never run",
                   f->slot, f->state_schema, f->state_exists ? "" : " (table missing)");
        return;
    }
    if (f->source_ok && f->slot_found && f->confirmed_flush_lsn != LSN_INVALID &&
        f->confirmed_flush_lsn > f->applied_lsn) {
        char confirmed[LSN_TEXT_MAX], applied[LSN_TEXT_MAX];
        add_reason(v, HEALTH_CRITICAL,
                   "run walbridge verify; re-run walbridge backfill to copy what is missing",
                   "slot confirmed_flush_lsn %s is ahead of the target's applied LSN %s: data "
                   "may have been skipped",
                   lsn_format(f->confirmed_flush_lsn, confirmed),
                   lsn_format(f->applied_lsn, applied));
    }
    check_seconds(v, "applied LSN age", v->stale_s, t->warn_stale, t->crit_stale,
                  "check that walbridge stream is running and keeping up");
}

/* Stable order: most severe first, otherwise as found. */
static void sort_reasons(health_verdict *v)
{
    static const int rank[] = {
        [HEALTH_CRITICAL] = 0, [HEALTH_WARNING] = 1, [HEALTH_UNKNOWN] = 2, [HEALTH_OK] = 3};
    for (size_t i = 1; i < v->nreasons; i++) {
        health_reason r = v->reasons[i];
        size_t j = i;
        while (j > 0 && rank[v->reasons[j - 1].severity] > rank[r.severity]) {
            v->reasons[j] = v->reasons[j - 1];
            j--;
        }
        v->reasons[j] = r;
    }
}

void health_evaluate(const health_facts *f, const health_thresholds *t, health_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->status = HEALTH_OK;
    v->retained_bytes = -1;
    v->lag_bytes = -1;
    v->applied_lag_bytes = -1;
    v->stale_s = -1;
    v->inactive_s = -1;

    if (f->source_ok && f->slot_found) {
        v->retained_bytes = lsn_diff(f->current_lsn, f->restart_lsn);
        v->lag_bytes = lsn_diff(f->current_lsn, f->confirmed_flush_lsn);
        if (v->retained_bytes < -1)
            v->retained_bytes = 0;
        if (v->lag_bytes < -1)
            v->lag_bytes = 0;
        if (f->has_inactive_since && !f->active)
            v->inactive_s = f->inactive_s;
        else if (f->active)
            v->inactive_s = 0;
    }
    if (f->source_ok && f->target_ok && f->applied_found) {
        v->applied_lag_bytes = lsn_diff(f->current_lsn, f->applied_lsn);
        if (v->applied_lag_bytes < -1)
            v->applied_lag_bytes = 0;
        /* stale only counts while the source has WAL past both positions */
        wb_lsn done = f->applied_lsn;
        if (f->slot_found && f->confirmed_flush_lsn > done)
            done = f->confirmed_flush_lsn;
        v->stale_s = (f->current_lsn > done && f->applied_age_s >= 0) ? f->applied_age_s : 0;
    }

    if (!f->source_ok) {
        add_reason(v, HEALTH_CRITICAL,
                   "check source.dsn and that the source is up; WAL may be piling up unseen",
                   "source %s: %s (slot state unknown)",
                   f->source_connected ? "query failed" : "unreachable",
                   f->source_error[0] ? f->source_error : "unknown error");
    } else {
        evaluate_settings(f, v);
        evaluate_slot(f, t, v);
    }
    evaluate_target(f, t, v);
    sort_reasons(v);
}
