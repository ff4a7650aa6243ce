/*
 * log.h — leveled logging to a file and/or stderr, as text or JSON lines.
 *
 * One process-wide logger configured once at startup (log_open).  Messages
 * follow PostgreSQL's shape: a primary line, then optional detail and hint.
 * Anything that may hold a connection string goes through log_redact_dsn
 * first; log_* also redacts "password=..." and "://user:pass@" patterns in
 * every message as a last line of defence.
 *
 * SIGHUP handling: the signal handler only sets a flag (log_request_reopen);
 * the main loop calls log_reopen_if_requested(), which reopens the file
 * (logrotate's create/move pattern).
 */
#ifndef WALBRIDGE_LOG_H
#define WALBRIDGE_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;
typedef enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON } log_format;

typedef struct log_options {
    const char *file;  /* NULL: no file */
    bool to_stderr;    /* also (or only) write to stderr */
    log_level level;
    log_format format;
} log_options;

/* Parse "debug|info|warn|warning|error" / "text|json"; false when unknown. */
bool log_level_parse(const char *s, log_level *out);
bool log_format_parse(const char *s, log_format *out);

/* Opens the log file (append).  Returns false and writes why to err when it cannot. */
bool log_open(const log_options *opts, char *err, size_t errlen);
void log_close(void);
void log_request_reopen(void);      /* async-signal-safe */
void log_reopen_if_requested(void); /* call from the main loop */
void log_set_level(log_level level);

void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Primary message plus optional detail and hint (either may be NULL). */
void log_full(log_level level, const char *detail, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/*
 * Returns a copy of a libpq connection string (keyword=value or URI form)
 * with any password replaced by "********".  Caller frees.
 */
char *log_redact_dsn(const char *dsn);
/* Redacts password patterns inside arbitrary text in place-copy; caller frees. */
char *log_redact_text(const char *text);

#endif
