/*
 * log_redact.c — password redaction for anything that may reach a log line
 * or the terminal (declared in log.h).
 *
 * log_redact_dsn understands both libpq connection string forms: keyword =
 * value (values plain or single-quoted with backslash escapes) and URIs
 * (postgresql://user:secret@host/db?password=secret).  log_redact_text is
 * the pattern-based last line of defence that log_msg applies to every
 * message: "password=..." in any case, quoted or not, and "://user:pass@".
 * Both mask with "********", keep everything else byte for byte, and return
 * a malloc'd string the caller frees.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/strbuf.h"

#define LOG_MASK "********"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Keywords whose values are secrets. */
static bool is_secret_key(const char *key, size_t len)
{
    return (len == 8 && strncasecmp(key, "password", 8) == 0) ||
           (len == 11 && strncasecmp(key, "sslpassword", 11) == 0);
}

/*
 * is_secret_key for a URI query key, which libpq percent-decodes before it
 * compares ("pass%77ord" is "password").  Keys longer than any secret
 * keyword cannot be one.
 */
static bool is_secret_uri_key(const char *key, size_t len)
{
    char decoded[16];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (c == '%' && i + 2 < len) {
            int hi = wb_hex_digit_value(key[i + 1]);
            int lo = wb_hex_digit_value(key[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (char)(hi * 16 + lo);
                i += 2;
            }
        }
        if (n == sizeof decoded)
            return false;
        decoded[n++] = c;
    }
    return is_secret_key(decoded, n);
}

/*
 * End of a libpq keyword=value value starting at p: a single-quoted string
 * with backslash escapes, or a run of non-space characters (backslash
 * escapes the next one).  Unterminated quotes run to the end.
 */
static const char *kv_value_end(const char *p)
{
    if (*p == '\'') {
        for (p++; *p && *p != '\''; p++)
            if (*p == '\\' && p[1])
                p++;
        return *p ? p + 1 : p;
    }
    for (; *p && !is_space(*p); p++)
        if (*p == '\\' && p[1])
            p++;
    return p;
}

/* keyword = value form.  Returns false (output incomplete) when malformed. */
static bool redact_keyword_value(strbuf *out, const char *p)
{
    while (*p) {
        const char *start = p;
        while (is_space(*p))
            p++;
        const char *key = p;
        while (*p && *p != '=' && !is_space(*p))
            p++;
        size_t keylen = (size_t)(p - key);
        while (is_space(*p))
            p++;
        if (keylen == 0 && *p == '\0') {
            strbuf_append(out, start);
            return true;
        }
        if (keylen == 0 || *p != '=')
            return false;
        p++;
        while (is_space(*p))
            p++;
        strbuf_append_len(out, start, (size_t)(p - start));
        const char *end = kv_value_end(p);
        if (is_secret_key(key, keylen))
            strbuf_append(out, LOG_MASK);
        else
            strbuf_append_len(out, p, (size_t)(end - p));
        p = end;
    }
    return true;
}

/* postgresql://user:secret@host/db?password=secret form. */
static void redact_uri(strbuf *out, const char *uri)
{
    const char *auth = strstr(uri, "://") + 3;
    const char *auth_end = auth + strcspn(auth, "/");
    const char *at = NULL;
    for (const char *q = auth; q < auth_end; q++)
        if (*q == '@')
            at = q;
    const char *p = uri;
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon != NULL) {
            strbuf_append_len(out, uri, (size_t)(colon + 1 - uri));
            strbuf_append(out, LOG_MASK);
            p = at;
        }
    }
    const char *query = strchr(at != NULL ? at : auth, '?');
    if (query == NULL) {
        strbuf_append(out, p);
        return;
    }
    strbuf_append_len(out, p, (size_t)(query + 1 - p));
    p = query + 1;
    while (*p) {
        const char *param_end = p + strcspn(p, "&");
        const char *eq = memchr(p, '=', (size_t)(param_end - p));
        if (eq != NULL && is_secret_uri_key(p, (size_t)(eq - p))) {
            strbuf_append_len(out, p, (size_t)(eq + 1 - p));
            strbuf_append(out, LOG_MASK);
        } else {
            strbuf_append_len(out, p, (size_t)(param_end - p));
        }
        p = param_end;
        if (*p == '&')
            strbuf_append_char(out, *p++);
    }
}

char *log_redact_dsn(const char *dsn)
{
    strbuf out;
    strbuf_init(&out);
    if (dsn == NULL)
        return strbuf_detach(&out);
    if (strncmp(dsn, "postgresql://", 13) == 0 || strncmp(dsn, "postgres://", 11) == 0) {
        redact_uri(&out, dsn);
    } else if (!redact_keyword_value(&out, dsn)) {
        /* Not a valid conninfo: fall back to pattern redaction of the whole. */
        strbuf_free(&out);
        return log_redact_text(dsn);
    }
    char *first = strbuf_detach(&out);
    /* Belt and braces: patterns the parsers did not see (malformed input). */
    char *result = log_redact_text(first);
    free(first);
    return result;
}

/*
 * At text[i] == "://": if an authority "user:pass@" follows (before the next
 * space or '/'), returns the position of its ':' and sets *at; else NULL.
 */
static const char *uri_password_span(const char *p, const char **at)
{
    const char *auth = p + 3;
    const char *last_at = NULL;
    for (const char *q = auth; *q && !is_space(*q) && *q != '/'; q++)
        if (*q == '@')
            last_at = q;
    if (last_at == NULL)
        return NULL;
    const char *colon = memchr(auth, ':', (size_t)(last_at - auth));
    *at = last_at;
    return colon;
}

char *log_redact_text(const char *text)
{
    strbuf out;
    strbuf_init(&out);
    if (text == NULL)
        return strbuf_detach(&out);
    const char *p = text;
    while (*p) {
        if (strncasecmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ' || *q == '\t')
                    q++;
                strbuf_append_len(&out, p, (size_t)(q - p));
                strbuf_append(&out, LOG_MASK);
                if (*q == '\'' || *q == '"') {
                    char quote = *q++;
                    for (; *q && *q != quote; q++)
                        if (*q == '\\' && q[1])
                            q++;
                    if (*q)
                        q++;
                } else {
                    for (; *q && !is_space(*q) && *q != '&'; q++)
                        if (*q == '\\' && q[1])
                            q++;
                }
                p = q;
                continue;
            }
        }
        if (strncmp(p, "://", 3) == 0) {
            const char *at = NULL;
            const char *colon = uri_password_span(p, &at);
            if (colon != NULL) {
                strbuf_append_len(&out, p, (size_t)(colon + 1 - p));
                strbuf_append(&out, LOG_MASK);
                p = at;
                continue;
            }
        }
        strbuf_append_char(&out, *p++);
    }
    return strbuf_detach(&out);
}
