/*
 * metrics_server.c — the HTTP side of `stream --metrics-listen ADDR:PORT`:
 * strict ADDR:PORT parsing, a listening socket we bind ourselves (so a
 * "port in use" error says so), and a libmicrohttpd daemon on its own
 * thread answering GET /metrics and GET /healthz from a stream_metrics.
 *
 * The daemon thread is started with every signal blocked, so SIGTERM,
 * SIGINT and SIGHUP keep interrupting the stream loop's own waits.
 */
#include "cdc/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct metrics_server {
    struct MHD_Daemon *daemon;
    stream_metrics *metrics; /* borrowed */
};

bool metrics_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen,
                          char *err, size_t errlen)
{
    char host[64];
    const char *port_text;
    memset(addr, 0, sizeof *addr);
    if (text == NULL || *text == '\0') {
        snprintf(err, errlen, "empty listen address (expected ADDR:PORT, e.g. 127.0.0.1:9187)");
        return false;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host) {
            snprintf(err, errlen,
                     "invalid listen address \"%s\": expected [IPv6]:PORT, e.g. [::1]:9187", text);
            return false;
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof host ||
            memchr(text, ':', (size_t)(colon - text)) != NULL) {
            snprintf(err, errlen,
                     "invalid listen address \"%s\": expected ADDR:PORT, e.g. 127.0.0.1:9187 or "
                     "[::1]:9187",
                     text);
            return false;
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }

    long port = 0;
    const char *p = port_text;
    if (*p == '\0') {
        snprintf(err, errlen, "invalid listen address \"%s\": missing port", text);
        return false;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            snprintf(err, errlen, "invalid listen address \"%s\": port must be 1..65535", text);
            return false;
        }
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "invalid listen address \"%s\": port must be 1..65535", text);
        return false;
    }

    if (text[0] == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            snprintf(err, errlen, "invalid listen address \"%s\": \"%s\" is not an IPv6 address",
                     text, host);
            return false;
        }
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *addrlen = sizeof *in6;
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
        if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
            snprintf(err, errlen,
                     "invalid listen address \"%s\": \"%s\" is not an IPv4 address (host names "
                     "are not accepted; IPv6 goes in brackets)",
                     text, host);
            return false;
        }
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *addrlen = sizeof *in4;
    }
    return true;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned int status, strbuf *body,
                                 const char *content_type)
{
    size_t len = body->len;
    char *data = strbuf_detach(body);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    stream_metrics *m = cls;
    strbuf body;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;

    strbuf_init(&body);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        strbuf_append(&body, "only GET is supported\n");
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, &body, "text/plain; charset=utf-8");
    }
    if (strcmp(url, "/metrics") == 0) {
        metrics_render(m, now_s(), &body);
        return send_text(conn, MHD_HTTP_OK, &body, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0) {
        int status = metrics_healthz(m, now_s(), &body);
        return send_text(conn, (unsigned int)status, &body, "text/plain; charset=utf-8");
    }
    strbuf_append(&body, "not found: try /metrics or /healthz\n");
    return send_text(conn, MHD_HTTP_NOT_FOUND, &body, "text/plain; charset=utf-8");
}

/* Creates, binds and listens; returns the fd or -1 with err filled. */
static int open_listener(const char *listen_text, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int one = 1;
    if (!metrics_parse_listen(listen_text, &addr, &addrlen, err, errlen))
        return -1;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "metrics listener %s: socket: %s", listen_text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, addrlen) != 0 || listen(fd, 16) != 0) {
        snprintf(err, errlen, "metrics listener %s: %s", listen_text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

metrics_server *metrics_server_start(const char *listen_text, stream_metrics *m, char *err,
                                     size_t errlen)
{
    int fd = open_listener(listen_text, err, errlen);
    if (fd < 0)
        return NULL;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, &handle_request, m,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (d == NULL) {
        snprintf(err, errlen, "metrics listener %s: libmicrohttpd could not start", listen_text);
        close(fd);
        return NULL;
    }
    metrics_server *s = wb_xcalloc(1, sizeof *s);
    s->daemon = d;
    s->metrics = m;
    return s;
}

void metrics_server_stop(metrics_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
