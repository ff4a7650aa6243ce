/*
 * health_render.c — prints a health verdict: text (monitoring-plugin status
 * line with perfdata, then one detail line per topic), JSON (every figure;
 * unknown ones are null) or Prometheus exposition text (postgres_exporter's
 * pg_replication_slot_* names where they overlap, walbridge_* otherwise).
 * Pure: the facts and the verdict come from health.c / health_cmd.c.
 */
#include "cdc/health.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "common/promtext.h"

/* ---- text ------------------------------------------------------------- */

static void append_bytes_human(strbuf *out, int64_t bytes)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    if (bytes < 0) {
        strbuf_append(out, "unknown");
        return;
    }
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        strbuf_appendf(out, "%lld B", (long long)bytes);
    else
        strbuf_appendf(out, "%.1f %s", v, units[u]);
}

static void append_lsn(strbuf *out, wb_lsn lsn)
{
    char buf[LSN_TEXT_MAX];
    strbuf_append(out, lsn == LSN_INVALID ? "none" : lsn_format(lsn, buf));
}

/* One perfdata item: label=value[uom];warn;crit;0; ("U" when unknown). */
static void append_perf_bytes(strbuf *out, const char *label, int64_t value, uint64_t warn,
                              uint64_t crit)
{
    if (value < 0)
        strbuf_appendf(out, " %s=U", label);
    else
        strbuf_appendf(out, " %s=%lldB", label, (long long)value);
    strbuf_append_char(out, ';');
    if (warn > 0)
        strbuf_appendf(out, "%llu", (unsigned long long)warn);
    strbuf_append_char(out, ';');
    if (crit > 0)
        strbuf_appendf(out, "%llu", (unsigned long long)crit);
    strbuf_append(out, ";0;");
}

static void append_perf_seconds(strbuf *out, const char *label, double value, double warn,
                                double crit)
{
    if (value < 0)
        strbuf_appendf(out, " %s=U", label);
    else
        strbuf_appendf(out, " %s=%.0fs", label, value);
    strbuf_append_char(out, ';');
    if (warn >= 0)
        strbuf_appendf(out, "%.0f", warn);
    strbuf_append_char(out, ';');
    if (crit >= 0)
        strbuf_appendf(out, "%.0f", crit);
    strbuf_append(out, ";0;");
}

static void append_summary(const health_facts *f, const health_verdict *v, strbuf *out)
{
    if (v->nreasons > 0) {
        for (size_t i = 0; i < v->nreasons; i++) {
            if (i > 0)
                strbuf_append(out, "; ");
            strbuf_append(out, v->reasons[i].message);
        }
        return;
    }
    strbuf_appendf(out, "slot \"%s\" %s, retained ", f->slot, f->active ? "active" : "inactive");
    append_bytes_human(out, v->retained_bytes);
    strbuf_append(out, ", lag ");
    append_bytes_human(out, v->lag_bytes);
    if (f->applied_found) {
        strbuf_append(out, ", applied LSN ");
        append_lsn(out, f->applied_lsn);
        if (f->applied_age_s >= 0)
            strbuf_appendf(out, " (%.0f s ago)", f->applied_age_s);
    }
}

static void append_source_details(const health_facts *f, const health_verdict *v, strbuf *out)
{
    if (!f->source_ok) {
        strbuf_appendf(out, "source: not checked: %s\n", f->source_error);
        return;
    }
    strbuf_appendf(out, "source: server_version_num %d, wal_level %s, current LSN ",
                   f->server_version_num, f->wal_level);
    append_lsn(out, f->current_lsn);
    strbuf_appendf(out, ", slots %d/%d, max_slot_wal_keep_size ", f->slots_used,
                   f->max_replication_slots);
    if (!f->has_max_slot_wal_keep_size || f->max_slot_wal_keep_size < 0)
        strbuf_append(out, "unlimited");
    else
        append_bytes_human(out, f->max_slot_wal_keep_size);
    if (f->has_wal_sender_timeout)
        strbuf_appendf(out, ", wal_sender_timeout %.0f s", f->wal_sender_timeout_s);
    if (f->has_output_plugin_libraries)
        strbuf_appendf(out, ", output_plugin_libraries \"%s\"", f->output_plugin_libraries);
    strbuf_append_char(out, '\n');
    if (!f->slot_found) {
        strbuf_appendf(out, "slot \"%s\": missing\n", f->slot);
        return;
    }
    strbuf_appendf(out, "slot \"%s\": plugin %s, %s", f->slot, f->plugin,
                   f->active ? "active" : "inactive");
    if (f->active)
        strbuf_appendf(out, " (pid %d)", f->active_pid);
    else if (v->inactive_s >= 0)
        strbuf_appendf(out, " for %.0f s", v->inactive_s);
    strbuf_appendf(out, ", wal_status %s", f->wal_status[0] ? f->wal_status : "unknown");
    if (f->has_safe_wal_size) {
        strbuf_append(out, ", safe_wal_size ");
        append_bytes_human(out, f->safe_wal_size);
    }
    strbuf_append(out, ", restart_lsn ");
    append_lsn(out, f->restart_lsn);
    strbuf_append(out, ", confirmed_flush_lsn ");
    append_lsn(out, f->confirmed_flush_lsn);
    strbuf_append(out, ", retained ");
    append_bytes_human(out, v->retained_bytes);
    strbuf_append(out, ", lag ");
    append_bytes_human(out, v->lag_bytes);
    if (f->has_catalog_xmin_age)
        strbuf_appendf(out, ", catalog_xmin age %lld", (long long)f->catalog_xmin_age);
    if (f->has_conflicting)
        strbuf_appendf(out, ", conflicting %s", f->conflicting ? "yes" : "no");
    if (f->has_invalidation_reason)
        strbuf_appendf(out, ", invalidation_reason %s", f->invalidation_reason);
    strbuf_append_char(out, '\n');
    if (f->walsender_found) {
        strbuf_appendf(out, "walsender: state %s", f->walsender_state);
        if (f->has_reply_age)
            strbuf_appendf(out, ", last reply %.0f s ago", f->reply_age_s);
        strbuf_append_char(out, '\n');
    }
    if (f->has_spill)
        strbuf_appendf(out,
                       "decoding: spill_txns %lld, spill_bytes %lld, stream_txns %lld, "
                       "total_txns %lld, total_bytes %lld\n",
                       (long long)f->spill_txns, (long long)f->spill_bytes,
                       (long long)f->stream_txns, (long long)f->total_txns,
                       (long long)f->total_bytes);
}

static void append_target_details(const health_facts *f, const health_verdict *v, strbuf *out)
{
    if (!f->target_ok) {
        strbuf_appendf(out, "target: not checked: %s\n", f->target_error);
        return;
    }
    if (!f->applied_found) {
        strbuf_appendf(out, "target: no applied LSN for slot \"%s\" in %s.stream_progress\n",
                       f->slot, f->state_schema);
        return;
    }
    strbuf_append(out, "target: applied LSN ");
    append_lsn(out, f->applied_lsn);
    if (f->applied_age_s >= 0)
        strbuf_appendf(out, ", applied %.0f s ago", f->applied_age_s);
    if (v->applied_lag_bytes >= 0) {
        strbuf_append(out, ", behind the source by ");
        append_bytes_human(out, v->applied_lag_bytes);
    }
    strbuf_append_char(out, '\n');
}

static void render_text(const health_facts *f, const health_thresholds *t, const health_verdict *v,
                        strbuf *out)
{
    strbuf_appendf(out, "WALBRIDGE %s - ", health_status_name(v->status));
    append_summary(f, v, out);
    strbuf_append(out, " |");
    append_perf_bytes(out, "retained", v->retained_bytes, t->warn_retained, t->crit_retained);
    append_perf_bytes(out, "lag", v->lag_bytes, t->warn_lag, t->crit_lag);
    append_perf_seconds(out, "stale", v->stale_s, t->warn_stale, t->crit_stale);
    append_perf_seconds(out, "inactive", v->inactive_s, t->warn_inactive, t->crit_inactive);
    append_perf_bytes(out, "applied_lag", v->applied_lag_bytes, 0, 0);
    append_perf_bytes(out, "safe_wal_size", f->has_safe_wal_size ? f->safe_wal_size : -1, 0, 0);
    strbuf_append_char(out, '\n');
    for (size_t i = 0; i < v->nreasons; i++) {
        strbuf_appendf(out, "%s: %s\n", health_status_name(v->reasons[i].severity),
                       v->reasons[i].message);
        if (v->reasons[i].hint[0])
            strbuf_appendf(out, "  hint: %s\n", v->reasons[i].hint);
    }
    append_source_details(f, v, out);
    append_target_details(f, v, out);
}

/* ---- json ------------------------------------------------------------- */

static void json_lsn(cJSON *obj, const char *name, wb_lsn lsn)
{
    char buf[LSN_TEXT_MAX];
    if (lsn == LSN_INVALID)
        cJSON_AddNullToObject(obj, name);
    else
        cJSON_AddStringToObject(obj, name, lsn_format(lsn, buf));
}

static void json_num(cJSON *obj, const char *name, bool known, double value)
{
    if (known)
        cJSON_AddNumberToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static void json_str(cJSON *obj, const char *name, bool known, const char *value)
{
    if (known)
        cJSON_AddStringToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static cJSON *json_source(const health_facts *f, const health_verdict *v)
{
    cJSON *src = cJSON_CreateObject();
    cJSON_AddBoolToObject(src, "reachable", f->source_connected);
    json_str(src, "error", !f->source_ok, f->source_error);
    json_num(src, "server_version_num", f->source_ok, f->server_version_num);
    json_str(src, "wal_level", f->wal_level[0] != '\0', f->wal_level);
    json_lsn(src, "current_lsn", f->current_lsn);
    json_num(src, "max_slot_wal_keep_size_bytes", f->has_max_slot_wal_keep_size,
             (double)f->max_slot_wal_keep_size);
    json_num(src, "max_replication_slots", f->source_ok, f->max_replication_slots);
    json_num(src, "slots_used", f->source_ok, f->slots_used);
    json_num(src, "wal_sender_timeout_seconds", f->has_wal_sender_timeout, f->wal_sender_timeout_s);
    json_str(src, "output_plugin_libraries", f->has_output_plugin_libraries,
             f->output_plugin_libraries);

    cJSON *slot = cJSON_AddObjectToObject(src, "slot");
    cJSON_AddStringToObject(slot, "name", f->slot);
    cJSON_AddBoolToObject(slot, "exists", f->slot_found);
    bool s = f->slot_found;
    json_str(slot, "plugin", s, f->plugin);
    json_str(slot, "slot_type", s, f->slot_type);
    json_str(slot, "database", s, f->slot_database);
    if (s)
        cJSON_AddBoolToObject(slot, "active", f->active);
    else
        cJSON_AddNullToObject(slot, "active");
    json_num(slot, "active_pid", s && f->active_pid > 0, f->active_pid);
    json_str(slot, "wal_status", s && f->wal_status[0] != '\0', f->wal_status);
    json_num(slot, "safe_wal_size_bytes", s && f->has_safe_wal_size, (double)f->safe_wal_size);
    json_lsn(slot, "restart_lsn", s ? f->restart_lsn : LSN_INVALID);
    json_lsn(slot, "confirmed_flush_lsn", s ? f->confirmed_flush_lsn : LSN_INVALID);
    json_num(slot, "retained_bytes", v->retained_bytes >= 0, (double)v->retained_bytes);
    json_num(slot, "lag_bytes", v->lag_bytes >= 0, (double)v->lag_bytes);
    json_num(slot, "catalog_xmin_age", s && f->has_catalog_xmin_age, (double)f->catalog_xmin_age);
    if (s && f->has_conflicting)
        cJSON_AddBoolToObject(slot, "conflicting", f->conflicting);
    else
        cJSON_AddNullToObject(slot, "conflicting");
    json_num(slot, "inactive_seconds", v->inactive_s >= 0, v->inactive_s);
    json_str(slot, "invalidation_reason", s && f->has_invalidation_reason, f->invalidation_reason);

    cJSON *ws = cJSON_AddObjectToObject(src, "walsender");
    cJSON_AddBoolToObject(ws, "found", f->walsender_found);
    json_str(ws, "state", f->walsender_found, f->walsender_state);
    json_num(ws, "reply_age_seconds", f->walsender_found && f->has_reply_age, f->reply_age_s);

    cJSON *sp = cJSON_AddObjectToObject(src, "decoding");
    json_num(sp, "spill_txns", f->has_spill, (double)f->spill_txns);
    json_num(sp, "spill_count", f->has_spill, (double)f->spill_count);
    json_num(sp, "spill_bytes", f->has_spill, (double)f->spill_bytes);
    json_num(sp, "stream_txns", f->has_spill, (double)f->stream_txns);
    json_num(sp, "stream_count", f->has_spill, (double)f->stream_count);
    json_num(sp, "stream_bytes", f->has_spill, (double)f->stream_bytes);
    json_num(sp, "total_txns", f->has_spill, (double)f->total_txns);
    json_num(sp, "total_bytes", f->has_spill, (double)f->total_bytes);
    return src;
}

static cJSON *json_target(const health_facts *f, const health_verdict *v)
{
    cJSON *tgt = cJSON_CreateObject();
    cJSON_AddBoolToObject(tgt, "reachable", f->target_connected);
    json_str(tgt, "error", !f->target_ok, f->target_error);
    cJSON_AddStringToObject(tgt, "state_schema", f->state_schema);
    if (f->target_ok)
        cJSON_AddBoolToObject(tgt, "state_exists", f->state_exists);
    else
        cJSON_AddNullToObject(tgt, "state_exists");
    json_lsn(tgt, "applied_lsn", f->applied_found ? f->applied_lsn : LSN_INVALID);
    json_num(tgt, "applied_age_seconds", f->applied_found && f->applied_age_s >= 0,
             f->applied_age_s);
    json_num(tgt, "applied_lag_bytes", v->applied_lag_bytes >= 0, (double)v->applied_lag_bytes);
    json_num(tgt, "stale_seconds", v->stale_s >= 0, v->stale_s);
    return tgt;
}

static cJSON *json_thresholds(const health_thresholds *t)
{
    cJSON *th = cJSON_CreateObject();
    json_num(th, "warn_retained_bytes", t->warn_retained > 0, (double)t->warn_retained);
    json_num(th, "crit_retained_bytes", t->crit_retained > 0, (double)t->crit_retained);
    json_num(th, "warn_lag_bytes", t->warn_lag > 0, (double)t->warn_lag);
    json_num(th, "crit_lag_bytes", t->crit_lag > 0, (double)t->crit_lag);
    json_num(th, "warn_stale_seconds", t->warn_stale >= 0, t->warn_stale);
    json_num(th, "crit_stale_seconds", t->crit_stale >= 0, t->crit_stale);
    json_num(th, "warn_inactive_seconds", t->warn_inactive >= 0, t->warn_inactive);
    json_num(th, "crit_inactive_seconds", t->crit_inactive >= 0, t->crit_inactive);
    return th;
}

static void render_json(const health_facts *f, const health_thresholds *t, const health_verdict *v,
                        strbuf *out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", health_status_name(v->status));
    cJSON_AddNumberToObject(root, "exit_code", (double)v->status);
    strbuf summary;
    strbuf_init(&summary);
    append_summary(f, v, &summary);
    cJSON_AddStringToObject(root, "summary", summary.data);
    strbuf_free(&summary);
    cJSON *reasons = cJSON_AddArrayToObject(root, "reasons");
    for (size_t i = 0; i < v->nreasons; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "severity", health_status_name(v->reasons[i].severity));
        cJSON_AddStringToObject(r, "message", v->reasons[i].message);
        json_str(r, "hint", v->reasons[i].hint[0] != '\0', v->reasons[i].hint);
        cJSON_AddItemToArray(reasons, r);
    }
    cJSON_AddItemToObject(root, "source", json_source(f, v));
    cJSON_AddItemToObject(root, "target", json_target(f, v));
    cJSON_AddItemToObject(root, "thresholds", json_thresholds(t));
    char *text = cJSON_Print(root);
    strbuf_append(out, text);
    strbuf_append_char(out, '\n');
    cJSON_free(text);
    cJSON_Delete(root);
}

/* ---- prometheus ------------------------------------------------------- */

static void prom_sample(strbuf *out, const char *name, const char *slot, double value)
{
    strbuf_appendf(out, "%s{slot_name=\"", name);
    promtext_append_label_value(out, slot);
    strbuf_appendf(out, "\"} %.17g\n", value);
}

static void prom_gauge(strbuf *out, const char *name, const char *help, const char *slot,
                       bool known, double value)
{
    if (!known)
        return;
    promtext_header(out, name, "gauge", help);
    prom_sample(out, name, slot, value);
}

static void render_prometheus(const health_facts *f, const health_verdict *v, strbuf *out)
{
    const char *slot = f->slot;
    bool s = f->source_ok && f->slot_found;
    prom_gauge(out, "walbridge_health_status",
               "Verdict of walbridge health: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", slot, true,
               v->status);
    prom_gauge(out, "walbridge_source_up", "1 when the source answered.", slot, true, f->source_ok);
    prom_gauge(out, "walbridge_target_up", "1 when the target answered.", slot, true, f->target_ok);
    prom_gauge(out, "walbridge_slot_exists", "1 when the replication slot exists.", slot,
               f->source_ok, f->slot_found);
    prom_gauge(out, "pg_replication_slot_slot_is_active", "Whether the slot is active.", slot, s,
               f->active);
    prom_gauge(out, "pg_replication_slot_slot_current_wal_lsn",
               "Current WAL LSN of the source (bytes).", slot, s, (double)f->current_lsn);
    prom_gauge(out, "pg_replication_slot_slot_confirmed_flush_lsn",
               "confirmed_flush_lsn of the slot (bytes).", slot, s, (double)f->confirmed_flush_lsn);
    prom_gauge(out, "pg_replication_slot_safe_wal_size_bytes",
               "WAL that can still be written before the slot is in danger of being lost.", slot,
               s && f->has_safe_wal_size, (double)f->safe_wal_size);
    if (s && f->wal_status[0] != '\0') {
        static const char *const statuses[] = {"reserved", "extended", "unreserved", "lost"};
        promtext_header(out, "pg_replication_slot_wal_status", "gauge",
                        "1 for the slot's current wal_status.");
        for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
            strbuf_append(out, "pg_replication_slot_wal_status{slot_name=\"");
            promtext_append_label_value(out, slot);
            strbuf_appendf(out, "\",wal_status=\"%s\"} %d\n", statuses[i],
                           strcmp(f->wal_status, statuses[i]) == 0);
        }
    }
    prom_gauge(out, "walbridge_slot_retained_wal_bytes",
               "WAL retained by the slot: current LSN - restart_lsn.", slot, v->retained_bytes >= 0,
               (double)v->retained_bytes);
    prom_gauge(out, "walbridge_slot_lag_bytes", "Confirmed lag: current LSN - confirmed_flush_lsn.",
               slot, v->lag_bytes >= 0, (double)v->lag_bytes);
    prom_gauge(out, "walbridge_slot_inactive_seconds",
               "Seconds since the slot became inactive (PostgreSQL 17+; 0 while active).", slot,
               v->inactive_s >= 0, v->inactive_s);
    prom_gauge(out, "walbridge_slot_catalog_xmin_age", "Age of the slot's catalog_xmin.", slot,
               s && f->has_catalog_xmin_age, (double)f->catalog_xmin_age);
    prom_gauge(out, "walbridge_slot_spill_bytes", "pg_stat_replication_slots.spill_bytes.", slot,
               s && f->has_spill, (double)f->spill_bytes);
    prom_gauge(out, "walbridge_slot_spill_txns", "pg_stat_replication_slots.spill_txns.", slot,
               s && f->has_spill, (double)f->spill_txns);
    prom_gauge(out, "walbridge_slot_total_bytes", "pg_stat_replication_slots.total_bytes.", slot,
               s && f->has_spill, (double)f->total_bytes);
    prom_gauge(out, "walbridge_source_replication_slots_used",
               "Replication slots in use on the source.", slot, f->source_ok, f->slots_used);
    prom_gauge(out, "walbridge_source_max_replication_slots", "max_replication_slots.", slot,
               f->source_ok, f->max_replication_slots);
    prom_gauge(out, "walbridge_applied_lsn", "Applied LSN recorded in the target (bytes).", slot,
               f->target_ok && f->applied_found, (double)f->applied_lsn);
    prom_gauge(out, "walbridge_applied_age_seconds", "Seconds since the applied LSN was written.",
               slot, f->target_ok && f->applied_found && f->applied_age_s >= 0, f->applied_age_s);
    prom_gauge(out, "walbridge_applied_lag_bytes", "current LSN - applied LSN.", slot,
               v->applied_lag_bytes >= 0, (double)v->applied_lag_bytes);
}

void health_render(const health_facts *f, const health_thresholds *t, const health_verdict *v,
                   health_format format, strbuf *out)
{
    switch (format) {
    case HEALTH_TEXT:
        render_text(f, t, v, out);
        break;
    case HEALTH_JSON:
        render_json(f, t, v, out);
        break;
    case HEALTH_PROMETHEUS:
        render_prometheus(f, v, out);
        break;
    }
}
