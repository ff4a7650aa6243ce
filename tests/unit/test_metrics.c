/*
 * test_metrics.c — unit tests for the stream's live metrics (cdc/metrics.c,
 * cdc/metrics_server.c): counters, the Prometheus text of /metrics, the
 * /healthz verdict and the strict ADDR:PORT parser.  The HTTP server itself
 * is exercised over real HTTP by tests/integration/test_metrics.sh.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdc/metrics.h"
#include "tests/unit/exposition_check.h"

static table_config tables[2];
static wb_config cfg;

static void setup(stream_metrics *m)
{
    memset(tables, 0, sizeof tables);
    memset(&cfg, 0, sizeof cfg);
    tables[0].source = "public.offices";
    tables[1].source = "public.order\"tags";
    cfg.slot = "walbridge";
    cfg.tables = tables;
    cfg.ntables = 2;
    cr_assert(metrics_init(m, &cfg));
}

static char *render(stream_metrics *m)
{
    strbuf out;
    strbuf_init(&out);
    metrics_render(m, (double)time(NULL), &out);
    return strbuf_detach(&out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(metrics, counters_render_as_prometheus_text)
{
    stream_metrics m;
    setup(&m);
    metrics_set_connected(&m, true);
    metrics_set_received(&m, 0x3000000);
    metrics_set_source_current(&m, 0x3000100);
    metrics_set_applied(&m, 0x3000000);
    metrics_set_applied(&m, 0x2000000); /* never backwards */
    metrics_add_rows(&m, 0, METRICS_INSERT, 5);
    metrics_add_rows(&m, 1, METRICS_DELETE, 2);
    metrics_add_rows(&m, 1, METRICS_DELETE, 1);
    metrics_add_rows(&m, 7, METRICS_DELETE, 1); /* unknown table: ignored */
    metrics_add_conflicts(&m, METRICS_CONFLICT_UPDATE_MISSING, 4);
    metrics_record_batch(&m, 0.003, 3);
    metrics_record_batch(&m, 0.2, 2);
    metrics_record_batch(&m, 60, 1);
    metrics_record_reconnect(&m);
    metrics_record_feedback(&m, 0x3000000);
    char *text = render(&m);

    static const char *const expected[] = {
        "walbridge_stream_connected{slot_name=\"walbridge\"} 1\n",
        "walbridge_stream_received_lsn{slot_name=\"walbridge\"} 50331648\n",
        "walbridge_stream_applied_lsn{slot_name=\"walbridge\"} 50331648\n",
        "walbridge_stream_lag_bytes{slot_name=\"walbridge\"} 256\n",
        "walbridge_stream_feedback_lsn{slot_name=\"walbridge\"} 50331648\n",
        "walbridge_stream_rows_applied_total{slot_name=\"walbridge\",table=\"public.offices\","
        "action=\"insert\"} 5\n",
        "walbridge_stream_rows_applied_total{slot_name=\"walbridge\",table=\"public."
        "order\\\"tags\","
        "action=\"delete\"} 3\n",
        "walbridge_stream_rows_applied_total{slot_name=\"walbridge\",table=\"public.offices\","
        "action=\"delete\"} 0\n",
        "walbridge_stream_conflicts_total{slot_name=\"walbridge\",kind=\"update_missing\"} 4\n",
        "walbridge_stream_conflicts_total{slot_name=\"walbridge\",kind=\"insert_existing\"} 0\n",
        "walbridge_stream_transactions_applied_total{slot_name=\"walbridge\"} 6\n",
        "walbridge_stream_batches_applied_total{slot_name=\"walbridge\"} 3\n",
        "# TYPE walbridge_stream_batch_apply_seconds histogram\n",
        "walbridge_stream_batch_apply_seconds_bucket{slot_name=\"walbridge\",le=\"0.001\"} 0\n",
        "walbridge_stream_batch_apply_seconds_bucket{slot_name=\"walbridge\",le=\"0.005\"} 1\n",
        "walbridge_stream_batch_apply_seconds_bucket{slot_name=\"walbridge\",le=\"0.25\"} 2\n",
        "walbridge_stream_batch_apply_seconds_bucket{slot_name=\"walbridge\",le=\"5\"} 2\n",
        "walbridge_stream_batch_apply_seconds_bucket{slot_name=\"walbridge\",le=\"+Inf\"} 3\n",
        "walbridge_stream_batch_apply_seconds_sum{slot_name=\"walbridge\"} 60.203",
        "walbridge_stream_batch_apply_seconds_count{slot_name=\"walbridge\"} 3\n",
        "walbridge_stream_reconnects_total{slot_name=\"walbridge\"} 1\n",
        "# TYPE walbridge_stream_reconnects_total counter\n",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        cr_assert(strstr(text, expected[i]) != NULL, "missing %s in:\n%s", expected[i], text);
    free(text);
    metrics_free(&m);
}

Test(metrics, idle_confirmed_wal_is_not_lag)
{
    stream_metrics m;
    setup(&m);
    metrics_set_applied(&m, 0x1000);
    metrics_set_source_current(&m, 0x5000);
    char *text = render(&m);
    cr_assert(strstr(text, "walbridge_stream_lag_bytes{slot_name=\"walbridge\"} 16384\n"), "%s",
              text);
    free(text);
    metrics_record_feedback(&m, 0x4000); /* idle advance confirmed past applied */
    text = render(&m);
    cr_assert(strstr(text, "walbridge_stream_lag_bytes{slot_name=\"walbridge\"} 4096\n"), "%s",
              text);
    free(text);
    metrics_free(&m);
}

Test(metrics, every_line_is_valid_exposition_text)
{
    stream_metrics m;
    setup(&m);
    metrics_record_batch(&m, 0.01, 1);
    char *text = render(&m);
    exposition_check_lines(text);
    free(text);
    metrics_free(&m);
}

static int healthz(stream_metrics *m, double now, char *body, size_t len)
{
    strbuf out;
    strbuf_init(&out);
    int status = metrics_healthz(m, now, &out);
    snprintf(body, len, "%s", out.data);
    strbuf_free(&out);
    return status;
}

Test(metrics, healthz_connected_and_progressing)
{
    stream_metrics m;
    char body[512];
    setup(&m);
    double now = now_s();
    cr_assert_eq(healthz(&m, now, body, sizeof body), 503);
    cr_assert(strstr(body, "not connected") != NULL, "%s", body);

    metrics_set_connected(&m, true);
    cr_assert_eq(healthz(&m, now_s(), body, sizeof body), 200, "%s", body);
    cr_assert(strncmp(body, "ok: connected", 13) == 0, "%s", body);

    /* idle: only keepalives answered, still healthy within the bound */
    metrics_record_keepalive(&m);
    cr_assert_eq(healthz(&m, now_s() + 59, body, sizeof body), 200, "%s", body);
    /* nothing for longer than the bound */
    cr_assert_eq(healthz(&m, now_s() + 61, body, sizeof body), 503);
    cr_assert(strstr(body, "no progress for 6") != NULL, "%s", body);
    cr_assert(strstr(body, "last keepalive answered") != NULL, "%s", body);

    metrics_set_stale_after(&m, 120);
    cr_assert_eq(healthz(&m, now_s() + 61, body, sizeof body), 200, "%s", body);

    metrics_set_connected(&m, false);
    cr_assert_eq(healthz(&m, now_s(), body, sizeof body), 503);
    metrics_free(&m);
}

Test(metrics, parse_listen_strict)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    cr_assert(metrics_parse_listen("127.0.0.1:9187", &ss, &len, err, sizeof err), "%s", err);
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9187);
    cr_assert_eq(len, sizeof(struct sockaddr_in));
    cr_assert(metrics_parse_listen("0.0.0.0:1", &ss, &len, err, sizeof err));
    cr_assert(metrics_parse_listen("[::1]:65535", &ss, &len, err, sizeof err), "%s", err);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
    cr_assert(metrics_parse_listen("[::]:80", &ss, &len, err, sizeof err));

    static const char *bad[] = {"",
                                "9187",
                                ":9187",
                                "127.0.0.1",
                                "127.0.0.1:",
                                "127.0.0.1:0",
                                "127.0.0.1:65536",
                                "127.0.0.1:99999999999",
                                "127.0.0.1:-1",
                                "127.0.0.1:+80",
                                "127.0.0.1:80x",
                                "127.0.0.1: 80",
                                "localhost:9187",
                                "256.0.0.1:80",
                                "::1:9187",
                                "[::1]9187",
                                "[::1]",
                                "[127.0.0.1]:80",
                                "[::1:80",
                                "1.2.3:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert_not(metrics_parse_listen(bad[i], &ss, &len, err, sizeof err), "accepted \"%s\"",
                      bad[i]);
        cr_assert(err[0] != '\0', "no message for \"%s\"", bad[i]);
    }
    metrics_parse_listen("localhost:9187", &ss, &len, err, sizeof err);
    cr_assert(strstr(err, "not an IPv4 address") != NULL, "%s", err);
}

Test(metrics, server_refuses_bad_address_and_busy_port)
{
    stream_metrics m;
    char err[256];
    setup(&m);
    cr_assert_null(metrics_server_start("nonsense", &m, err, sizeof err));
    cr_assert(strstr(err, "invalid listen address") != NULL, "%s", err);
    /* find a free port by binding one ourselves, then ask for it twice */
    metrics_server *s = NULL;
    int port;
    for (port = 39187; port < 39287 && s == NULL; port++) {
        char listen[32];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        s = metrics_server_start(listen, &m, err, sizeof err);
        if (s != NULL) {
            metrics_server *again = metrics_server_start(listen, &m, err, sizeof err);
            cr_assert_null(again);
            cr_assert(strstr(err, "Address already in use") != NULL, "%s", err);
        }
    }
    cr_assert_not_null(s, "no free port in 39187..39286");
    metrics_server_stop(s);
    /* stopping closes the listening socket: the same port can be taken again */
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port - 1);
    s = metrics_server_start(listen, &m, err, sizeof err);
    cr_assert_not_null(s, "port not released after stop: %s", err);
    metrics_server_stop(s);
    metrics_server_stop(NULL);
    metrics_free(&m);
}
