/*
 * log.c — the process-wide logger: levels, text or JSON lines, a log file
 * (append, reopened on SIGHUP) and/or stderr, and password redaction.
 *
 * Text line:  2026-11-25T13:26:50.123Z ERROR: primary message
 *               DETAIL: detail text
 *               HINT: hint text
 * JSON line:  {"ts":"2026-11-25T13:26:50.123Z","level":"error","pid":42,
 *              "message":"...","detail":"...","hint":"..."}
 *
 * Every record is built in memory and written with one write(2) on an
 * O_APPEND descriptor, so lines from several threads (the metrics server)
 * or processes never interleave.  The logger state is the one piece of
 * process-wide mutable state besides signal flags: it is set once by
 * log_open and guarded by a mutex.  Redaction (log_redact_dsn,
 * log_redact_text) is pure and lives in log_redact.c.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"

/* The logger.  Private to this file; see the comment at the top. */
typedef struct logger {
    pthread_mutex_t lock;
    char *path;     /* owned copy of the file name, NULL: no file */
    int fd;         /* -1 when no file is open */
    bool to_stderr; /* write records to stderr too */
    log_level level;
    log_format format;
} logger;

static logger the_log = {PTHREAD_MUTEX_INITIALIZER, NULL, -1, true, LOG_INFO, LOG_FORMAT_TEXT};
static volatile sig_atomic_t reopen_requested = 0;

static const char *const level_upper[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
static const char *const level_lower[] = {"debug", "info", "warning", "error"};

bool log_level_parse(const char *s, log_level *out)
{
    if (s == NULL)
        return false;
    if (strcasecmp(s, "debug") == 0)
        *out = LOG_DEBUG;
    else if (strcasecmp(s, "info") == 0)
        *out = LOG_INFO;
    else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        *out = LOG_WARN;
    else if (strcasecmp(s, "error") == 0)
        *out = LOG_ERROR;
    else
        return false;
    return true;
}

bool log_format_parse(const char *s, log_format *out)
{
    if (s == NULL)
        return false;
    if (strcasecmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

static int log_open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

bool log_open(const log_options *opts, char *err, size_t errlen)
{
    int fd = -1;
    if (opts->file != NULL) {
        fd = log_open_file(opts->file);
        if (fd < 0) {
            snprintf(err, errlen, "could not open log file \"%s\": %s", opts->file,
                     strerror(errno));
            return false;
        }
    }
    pthread_mutex_lock(&the_log.lock);
    if (the_log.fd >= 0)
        close(the_log.fd);
    free(the_log.path);
    the_log.fd = fd;
    the_log.path = opts->file != NULL ? wb_xstrdup(opts->file) : NULL;
    /* With no file at all, stderr is the only place left to write. */
    the_log.to_stderr = opts->to_stderr || opts->file == NULL;
    the_log.level = opts->level;
    the_log.format = opts->format;
    pthread_mutex_unlock(&the_log.lock);
    return true;
}

void log_close(void)
{
    pthread_mutex_lock(&the_log.lock);
    if (the_log.fd >= 0)
        close(the_log.fd);
    free(the_log.path);
    the_log.fd = -1;
    the_log.path = NULL;
    the_log.to_stderr = true;
    the_log.level = LOG_INFO;
    the_log.format = LOG_FORMAT_TEXT;
    pthread_mutex_unlock(&the_log.lock);
}

void log_request_reopen(void)
{
    reopen_requested = 1;
}

void log_reopen_if_requested(void)
{
    if (!reopen_requested)
        return;
    reopen_requested = 0;
    char *failed_path = NULL;
    int saved_errno = 0;

    pthread_mutex_lock(&the_log.lock);
    if (the_log.path != NULL) {
        int fd = log_open_file(the_log.path);
        if (fd >= 0) {
            if (the_log.fd >= 0)
                close(the_log.fd);
            the_log.fd = fd;
        } else {
            /* Keep writing to the old descriptor rather than losing lines. */
            saved_errno = errno;
            failed_path = wb_xstrdup(the_log.path);
        }
    }
    pthread_mutex_unlock(&the_log.lock);
    if (failed_path != NULL) {
        log_msg(LOG_WARN, "could not reopen log file \"%s\": %s; still writing to the old file",
                failed_path, strerror(saved_errno));
        free(failed_path);
    }
}

void log_set_level(log_level level)
{
    pthread_mutex_lock(&the_log.lock);
    the_log.level = level;
    pthread_mutex_unlock(&the_log.lock);
}

/* "2026-11-25T13:26:50.123Z" */
static void log_timestamp(char *buf, size_t len)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)(now.tv_nsec / 1000000L) % 1000u;
    snprintf(buf, len, "%s.%03uZ", base, ms);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2, min = 0x80, cp = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Appends s as a JSON string literal; invalid UTF-8 bytes become U+FFFD. */
static void log_append_json_string(strbuf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    strbuf_append_char(out, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            strbuf_append_char(out, '\\');
            strbuf_append_char(out, (char)c);
        } else if (c == '\n') {
            strbuf_append(out, "\\n");
        } else if (c == '\r') {
            strbuf_append(out, "\\r");
        } else if (c == '\t') {
            strbuf_append(out, "\\t");
        } else if (c < 0x20 || c == 0x7F) {
            strbuf_appendf(out, "\\u%04x", c);
        } else if (c >= 0x80) {
            size_t len = utf8_sequence_len(p + i, n - i);
            if (len == 0) {
                strbuf_append(out, "\\ufffd");
                i++;
                continue;
            }
            strbuf_append_len(out, s + i, len);
            i += len;
            continue;
        } else {
            strbuf_append_char(out, (char)c);
        }
        i++;
    }
    strbuf_append_char(out, '"');
}

/* Appends text, indenting continuation lines so one record stays one block. */
static void log_append_text_block(strbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            strbuf_append(out, "\n    ");
        else if (*s != '\r')
            strbuf_append_char(out, *s);
    }
}

static void log_format_record(strbuf *out, log_format format, log_level level, const char *message,
                              const char *detail, const char *hint)
{
    char ts[48];
    log_timestamp(ts, sizeof ts);
    if (format == LOG_FORMAT_JSON) {
        strbuf_appendf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%ld,\"message\":", ts,
                       level_lower[level], (long)getpid());
        log_append_json_string(out, message);
        if (detail != NULL) {
            strbuf_append(out, ",\"detail\":");
            log_append_json_string(out, detail);
        }
        if (hint != NULL) {
            strbuf_append(out, ",\"hint\":");
            log_append_json_string(out, hint);
        }
        strbuf_append(out, "}\n");
        return;
    }
    strbuf_appendf(out, "%s %s: ", ts, level_upper[level]);
    log_append_text_block(out, message);
    if (detail != NULL) {
        strbuf_append(out, "\n  DETAIL: ");
        log_append_text_block(out, detail);
    }
    if (hint != NULL) {
        strbuf_append(out, "\n  HINT: ");
        log_append_text_block(out, hint);
    }
    strbuf_append_char(out, '\n');
}

static void log_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        data += n;
        len -= (size_t)n;
    }
}

static void log_vemit(log_level level, const char *detail, const char *hint, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));

static void log_vemit(log_level level, const char *detail, const char *hint, const char *fmt,
                      va_list ap)
{
    if ((int)level < LOG_DEBUG || level > LOG_ERROR)
        level = LOG_ERROR;
    log_reopen_if_requested();

    pthread_mutex_lock(&the_log.lock);
    bool wanted = level >= the_log.level;
    log_format format = the_log.format;
    pthread_mutex_unlock(&the_log.lock);
    if (!wanted)
        return;

    strbuf raw, record;
    strbuf_init(&raw);
    strbuf_init(&record);
    strbuf_vappendf(&raw, fmt, ap);
    char *message = log_redact_text(raw.data);
    char *safe_detail = detail != NULL ? log_redact_text(detail) : NULL;
    char *safe_hint = hint != NULL ? log_redact_text(hint) : NULL;
    log_format_record(&record, format, level, message, safe_detail, safe_hint);

    pthread_mutex_lock(&the_log.lock);
    if (the_log.fd >= 0)
        log_write_all(the_log.fd, record.data, record.len);
    if (the_log.to_stderr)
        log_write_all(STDERR_FILENO, record.data, record.len);
    pthread_mutex_unlock(&the_log.lock);

    free(message);
    free(safe_detail);
    free(safe_hint);
    strbuf_free(&raw);
    strbuf_free(&record);
}

void log_msg(log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void log_full(log_level level, const char *detail, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(level, detail, hint, fmt, ap);
    va_end(ap);
}
