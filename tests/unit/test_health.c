/*
 * test_health.c — unit tests for the health verdict (cdc/health.c) and its
 * rendering (cdc/health_render.c): size and duration parsing, every rule of
 * health.h, perfdata, JSON figures and Prometheus line format.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/health.h"
#include "tests/unit/exposition_check.h"

#define MB (1024ULL * 1024ULL)
#define GB (1024ULL * MB)

/* ---- parsing ---------------------------------------------------------- */

Test(health_parse, sizes_with_units)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        {"256MB", 256 * MB},   {"1GB", GB},           {"1gb", GB},      {"512kB", 512 * 1024},
        {"512KB", 512 * 1024}, {"100", 100},          {"100B", 100},    {"0", 0},
        {"2TB", 2048 * GB},    {"1.5GB", 3 * GB / 2}, {"8 MB", 8 * MB}, {"16MiB", 16 * MB},
        {"3G", 3 * GB},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 7;
        cr_assert(health_parse_size(cases[i].text, &v, err, sizeof err), "rejected \"%s\": %s",
                  cases[i].text, err);
        cr_assert_eq(v, cases[i].bytes, "\"%s\" gave %llu", cases[i].text, (unsigned long long)v);
    }
}

Test(health_parse, rejects_bad_sizes)
{
    static const char *bad[] = {"",     "MB",    "-1MB", "+1MB",  "10XB",  "1e3",          "1GBs",
                                " 1GB", "1  GB", "0x10", "1.GB.", "1,5GB", "99999999999TB"};
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        err[0] = '\0';
        cr_assert_not(health_parse_size(bad[i], &v, err, sizeof err), "accepted \"%s\"", bad[i]);
        cr_assert(err[0] != '\0', "no message for \"%s\"", bad[i]);
    }
    health_parse_size("10XB", &(uint64_t){0}, err, sizeof err);
    cr_assert(strstr(err, "unknown unit \"XB\"") != NULL, "%s", err);
}

Test(health_parse, durations)
{
    static const struct {
        const char *text;
        double seconds;
    } cases[] = {{"30s", 30},    {"5min", 300}, {"2h", 7200},   {"1d", 86400},
                 {"500ms", 0.5}, {"45", 45},    {"1.5min", 90}, {"10 s", 10}};
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -7;
        cr_assert(health_parse_duration(cases[i].text, &v, err, sizeof err), "rejected %s: %s",
                  cases[i].text, err);
        cr_assert_float_eq(v, cases[i].seconds, 1e-9, "\"%s\" gave %g", cases[i].text, v);
    }
    static const char *bad[] = {"", "5m", "5 minutes", "-5s", "s", "5sec", "1w"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v;
        cr_assert_not(health_parse_duration(bad[i], &v, err, sizeof err), "accepted \"%s\"",
                      bad[i]);
    }
}

Test(health_parse, pg_settings_units)
{
    int64_t b;
    double s;
    cr_assert(health_setting_bytes("64", "MB", &b));
    cr_assert_eq(b, (int64_t)(64 * MB));
    cr_assert(health_setting_bytes("-1", "MB", &b));
    cr_assert_eq(b, -1);
    cr_assert(health_setting_bytes("1024", "8kB", &b));
    cr_assert_eq(b, 8 * (int64_t)MB);
    cr_assert_not(health_setting_bytes("64", "furlongs", &b));
    cr_assert_not(health_setting_bytes("x", "MB", &b));
    cr_assert(health_setting_seconds("60000", "ms", &s));
    cr_assert_float_eq(s, 60.0, 1e-9);
    cr_assert(health_setting_seconds("2", "min", &s));
    cr_assert_float_eq(s, 120.0, 1e-9);
}

/* ---- verdict ---------------------------------------------------------- */

/* A healthy, active slot 1 kB behind, applied 2 s ago. */
static void healthy(health_facts *f)
{
    health_facts_init(f, "walbridge", "walbridge");
    f->source_ok = true;
    f->source_connected = true;
    f->server_version_num = 150018;
    snprintf(f->wal_level, sizeof f->wal_level, "logical");
    f->max_replication_slots = 10;
    f->slots_used = 1;
    f->has_max_slot_wal_keep_size = true;
    f->max_slot_wal_keep_size = -1;
    f->current_lsn = 0x5000400;
    f->slot_found = true;
    snprintf(f->plugin, sizeof f->plugin, "wal2json");
    snprintf(f->slot_type, sizeof f->slot_type, "logical");
    snprintf(f->slot_database, sizeof f->slot_database, "postgres");
    f->active = true;
    f->active_pid = 4242;
    snprintf(f->wal_status, sizeof f->wal_status, "reserved");
    f->restart_lsn = 0x5000000;
    f->confirmed_flush_lsn = 0x5000400;
    f->target_ok = true;
    f->target_connected = true;
    f->state_exists = true;
    f->applied_found = true;
    f->applied_lsn = 0x5000400;
    f->applied_age_s = 2;
}

static health_verdict judge(const health_facts *f, const health_thresholds *t)
{
    health_verdict v;
    health_evaluate(f, t, &v);
    return v;
}

static bool has_reason(const health_verdict *v, health_status sev, const char *text)
{
    for (size_t i = 0; i < v->nreasons; i++)
        if (v->reasons[i].severity == sev &&
            (strstr(v->reasons[i].message, text) || strstr(v->reasons[i].hint, text)))
            return true;
    return false;
}

Test(health_verdict, healthy_is_ok)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_OK);
    cr_assert_eq(v.nreasons, 0);
    cr_assert_eq(v.retained_bytes, 1024);
    cr_assert_eq(v.lag_bytes, 0);
    cr_assert_eq(v.applied_lag_bytes, 0);
    cr_assert_float_eq(v.stale_s, 0, 1e-9); /* nothing pending */
}

Test(health_verdict, retained_thresholds_are_strictly_greater)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    t.warn_retained = 1024;
    t.crit_retained = 4096;
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK, "equal to warn must pass");
    f.current_lsn = f.restart_lsn + 1025;
    f.confirmed_flush_lsn = f.applied_lsn = f.current_lsn;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_WARNING);
    cr_assert(has_reason(&v, HEALTH_WARNING, "retained WAL 1.0 kB exceeds the warning"));
    f.current_lsn = f.restart_lsn + 5000;
    f.confirmed_flush_lsn = f.applied_lsn = f.current_lsn;
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "retained WAL"));
    t.warn_retained = t.crit_retained = 0; /* disabled */
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);
}

Test(health_verdict, lag_thresholds)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.current_lsn += 300 * MB;
    f.applied_age_s = 1;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_WARNING);
    cr_assert_eq(v.lag_bytes, (int64_t)(300 * MB));
    cr_assert(has_reason(&v, HEALTH_WARNING, "confirmed lag 300.0 MB"));
    f.current_lsn += GB;
    cr_assert_eq(judge(&f, &t).status, HEALTH_CRITICAL);
}

Test(health_verdict, missing_slot_says_rerun_backfill)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.slot_found = false;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "does not exist"));
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "re-run walbridge backfill"));
    cr_assert_eq(v.retained_bytes, -1);
    cr_assert_eq(v.lag_bytes, -1);
}

Test(health_verdict, wal_status_rules)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    snprintf(f.wal_status, sizeof f.wal_status, "extended");
    cr_assert_eq(judge(&f, &t).status, HEALTH_WARNING);
    snprintf(f.wal_status, sizeof f.wal_status, "unreserved");
    cr_assert_eq(judge(&f, &t).status, HEALTH_CRITICAL);
    snprintf(f.wal_status, sizeof f.wal_status, "lost");
    f.restart_lsn = LSN_INVALID;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "invalidated (wal_status lost"));
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "re-run walbridge backfill"));
    cr_assert_eq(v.retained_bytes, -1);
}

Test(health_verdict, pg17_invalidation_and_conflict)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.has_invalidation_reason = true;
    snprintf(f.invalidation_reason, sizeof f.invalidation_reason, "wal_removed");
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "reason wal_removed"));
    healthy(&f);
    f.has_conflicting = true;
    f.conflicting = true;
    cr_assert_eq(judge(&f, &t).status, HEALTH_CRITICAL);
    f.conflicting = false;
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);
}

Test(health_verdict, safe_wal_size_share_of_cap)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.max_slot_wal_keep_size = (int64_t)(100 * MB);
    f.has_safe_wal_size = true;
    f.safe_wal_size = (int64_t)(60 * MB);
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);
    f.safe_wal_size = (int64_t)(40 * MB);
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_WARNING);
    cr_assert(has_reason(&v, HEALTH_WARNING, "under 50%"));
    f.safe_wal_size = (int64_t)(10 * MB);
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "under 20%"));
    f.max_slot_wal_keep_size = -1; /* unlimited: no share rule */
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);
}

Test(health_verdict, inactive_duration_needs_inactive_since)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.active = false;
    f.active_pid = 0;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_OK, "PG15: inactive alone is not judged");
    cr_assert_eq(v.inactive_s, -1);
    f.has_inactive_since = true;
    f.inactive_s = 400;
    cr_assert_eq(judge(&f, &t).status, HEALTH_WARNING);
    f.inactive_s = 4000;
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "slot inactive for 4000 s"));
    t.warn_inactive = t.crit_inactive = -1;
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);
}

Test(health_verdict, stale_only_while_wal_is_pending)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.applied_age_s = 3600; /* idle for an hour, nothing pending */
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);
    f.current_lsn += 100; /* new WAL past applied and confirmed */
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert_float_eq(v.stale_s, 3600, 1e-9);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "applied LSN age 3600 s"));
    f.applied_age_s = 400;
    cr_assert_eq(judge(&f, &t).status, HEALTH_WARNING);
}

Test(health_verdict, confirmed_ahead_of_applied_is_critical)
{
    health_facts f;
    health_thresholds t;
    healthy(&f);
    health_thresholds_default(&t);
    f.applied_lsn = f.confirmed_flush_lsn - 8;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "data may have been skipped"));
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "0/50003F8"));
}

Test(health_verdict, unreachable_sides)
{
    health_facts f;
    health_thresholds t;
    health_thresholds_default(&t);
    healthy(&f);
    f.target_ok = false;
    f.target_connected = false;
    f.applied_found = false;
    snprintf(f.target_error, sizeof f.target_error, "connection refused");
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_WARNING);
    cr_assert(has_reason(&v, HEALTH_WARNING, "target unreachable: connection refused"));
    cr_assert_eq(v.stale_s, -1);

    healthy(&f);
    f.target_ok = false;
    snprintf(f.target_error, sizeof f.target_error, "permission denied for schema walbridge");
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_WARNING);
    cr_assert(has_reason(&v, HEALTH_WARNING, "target query failed: permission denied"));

    healthy(&f);
    f.source_ok = false;
    f.source_connected = false;
    snprintf(f.source_error, sizeof f.source_error, "timeout expired");
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "source unreachable: timeout expired"));
    cr_assert_eq(v.retained_bytes, -1);

    healthy(&f);
    f.source_ok = false;
    snprintf(f.source_error, sizeof f.source_error, "column \"wal_status\" does not exist");
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "source query failed: column"));
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "slot state unknown"));
}

Test(health_verdict, never_ran_and_settings)
{
    health_facts f;
    health_thresholds t;
    health_thresholds_default(&t);
    healthy(&f);
    f.applied_found = false;
    f.state_exists = false;
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_WARNING);
    cr_assert(has_reason(&v, HEALTH_WARNING, "stream has never run"));

    healthy(&f);
    f.has_output_plugin_libraries = true;
    snprintf(f.output_plugin_libraries, sizeof f.output_plugin_libraries, "pgoutput");
    v = judge(&f, &t);
    cr_assert_eq(v.status, HEALTH_CRITICAL);
    cr_assert(has_reason(&v, HEALTH_CRITICAL, "output_plugin_libraries"));
    snprintf(f.output_plugin_libraries, sizeof f.output_plugin_libraries, "pgoutput, wal2json");
    cr_assert_eq(judge(&f, &t).status, HEALTH_OK);

    healthy(&f);
    snprintf(f.plugin, sizeof f.plugin, "pgoutput");
    cr_assert_eq(judge(&f, &t).status, HEALTH_CRITICAL);
    healthy(&f);
    snprintf(f.wal_level, sizeof f.wal_level, "replica");
    cr_assert_eq(judge(&f, &t).status, HEALTH_CRITICAL);
    healthy(&f);
    f.slot_database_matches = false;
    cr_assert_eq(judge(&f, &t).status, HEALTH_CRITICAL);
}

Test(health_verdict, reasons_most_severe_first)
{
    health_facts f;
    health_thresholds t;
    health_thresholds_default(&t);
    healthy(&f);
    snprintf(f.wal_status, sizeof f.wal_status, "extended"); /* WARNING first found */
    f.applied_lsn = f.confirmed_flush_lsn - 1;               /* CRITICAL later */
    health_verdict v = judge(&f, &t);
    cr_assert_eq(v.nreasons, 2);
    cr_assert_eq(v.reasons[0].severity, HEALTH_CRITICAL);
    cr_assert_eq(v.reasons[1].severity, HEALTH_WARNING);
}

/* ---- rendering -------------------------------------------------------- */

static char *render(const health_facts *f, const health_thresholds *t, health_format fmt)
{
    health_verdict v;
    strbuf out;
    health_evaluate(f, t, &v);
    strbuf_init(&out);
    health_render(f, t, &v, fmt, &out);
    return strbuf_detach(&out);
}

Test(health_render, text_status_line_and_perfdata)
{
    health_facts f;
    health_thresholds t;
    health_thresholds_default(&t);
    healthy(&f);
    char *text = render(&f, &t, HEALTH_TEXT);
    char *nl = strchr(text, '\n');
    cr_assert_not_null(nl);
    *nl = '\0';
    cr_assert_str_eq(text,
                     "WALBRIDGE OK - slot \"walbridge\" active, retained 1.0 kB, lag 0 B, applied "
                     "LSN 0/5000400 (2 s ago) | retained=1024B;536870912;2147483648;0; "
                     "lag=0B;268435456;1073741824;0; stale=0s;300;1800;0; "
                     "inactive=0s;300;1800;0; applied_lag=0B;;;0; safe_wal_size=U;;;0;");
    free(text);

    f.slot_found = false;
    text = render(&f, &t, HEALTH_TEXT);
    cr_assert(strncmp(text, "WALBRIDGE CRITICAL - replication slot \"walbridge\" does not exist",
                      62) == 0,
              "%s", text);
    cr_assert(strstr(text, "retained=U;536870912;2147483648;0;") != NULL, "%s", text);
    cr_assert(strstr(text, "  hint: re-run walbridge backfill") != NULL, "%s", text);
    free(text);
}

static double json_number(const cJSON *root, const char *a, const char *b)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b != NULL)
        n = cJSON_GetObjectItemCaseSensitive(n, b);
    cr_assert(cJSON_IsNumber(n), "%s.%s is not a number", a, b ? b : "");
    return n->valuedouble;
}

Test(health_render, json_holds_the_figures)
{
    health_facts f;
    health_thresholds t;
    health_thresholds_default(&t);
    healthy(&f);
    f.current_lsn += 2048;
    f.has_spill = true;
    f.spill_bytes = 77;
    char *text = render(&f, &t, HEALTH_JSON);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root, "invalid JSON: %s", text);
    cr_assert_str_eq(cJSON_GetObjectItem(root, "status")->valuestring, "OK");
    cJSON *src = cJSON_GetObjectItem(root, "source");
    cJSON *slot = cJSON_GetObjectItem(src, "slot");
    cr_assert_float_eq(json_number(src, "slot", "retained_bytes"), 3072, 1e-9);
    cr_assert_float_eq(json_number(src, "slot", "lag_bytes"), 2048, 1e-9);
    cr_assert_float_eq(json_number(src, "decoding", "spill_bytes"), 77, 1e-9);
    cr_assert_str_eq(cJSON_GetObjectItem(slot, "restart_lsn")->valuestring, "0/5000000");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(slot, "safe_wal_size_bytes")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(slot, "invalidation_reason")));
    cr_assert_float_eq(json_number(root, "target", "applied_lag_bytes"), 2048, 1e-9);
    cr_assert_float_eq(json_number(root, "thresholds", "crit_retained_bytes"), 2048.0 * MB, 1);
    cJSON_Delete(root);
    free(text);
}

Test(health_render, prometheus_line_format)
{
    health_facts f;
    health_thresholds t;
    health_thresholds_default(&t);
    healthy(&f);
    snprintf(f.slot, sizeof f.slot, "we\"ird\\slot");
    f.has_safe_wal_size = true;
    f.safe_wal_size = 123;
    char *text = render(&f, &t, HEALTH_PROMETHEUS);
    size_t lines = exposition_check_lines(text);
    free(text);
    cr_assert_gt(lines, 20);

    text = render(&f, &t, HEALTH_PROMETHEUS);
    cr_assert(strstr(text, "walbridge_health_status{slot_name=\"we\\\"ird\\\\slot\"} 0\n"), "%s",
              text);
    cr_assert(strstr(text,
                     "pg_replication_slot_safe_wal_size_bytes{slot_name=\"we\\\"ird\\\\slot\"}"
                     " 123\n"),
              "%s", text);
    cr_assert(strstr(text, "wal_status=\"reserved\"} 1\n"), "%s", text);
    cr_assert(strstr(text, "wal_status=\"lost\"} 0\n"), "%s", text);
    free(text);
}
