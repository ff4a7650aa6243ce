/*
 * strbuf.c — growable NUL-terminated byte buffer, reading a whole file into
 * one, a hex digit's value, and the abort-on-OOM allocation helpers (see
 * strbuf.h).
 */
#include "common/strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "walbridge: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *wb_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *wb_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *wb_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *wb_xstrdup(const char *s)
{
    return wb_xstrndup(s, strlen(s));
}

char *wb_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = wb_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

#define STRBUF_INITIAL 64

/*
 * An empty buffer (cap == 0) points at this shared, never-written "" so that
 * strbuf_init and strbuf_detach allocate nothing: a buffer that is never
 * appended to, or is detached and then dropped, cannot leak.
 */
static const char strbuf_empty[1] = "";

void strbuf_init(strbuf *sb)
{
    sb->data = (char *)strbuf_empty;
    sb->len = 0;
    sb->cap = 0;
}

void strbuf_free(strbuf *sb)
{
    if (sb->cap > 0)
        free(sb->data);
    strbuf_init(sb);
}

void strbuf_reset(strbuf *sb)
{
    sb->len = 0;
    if (sb->cap > 0)
        sb->data[0] = '\0';
}

/* Makes room for extra more bytes plus the NUL; always leaves cap > 0. */
static void strbuf_grow(strbuf *sb, size_t extra)
{
    if (extra > SIZE_MAX - sb->len - 1)
        oom(SIZE_MAX);
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : STRBUF_INITIAL;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (sb->cap == 0) {
        sb->data = wb_xmalloc(cap);
        sb->data[0] = '\0';
    } else {
        sb->data = wb_xrealloc(sb->data, cap);
    }
    sb->cap = cap;
}

void strbuf_append_len(strbuf *sb, const char *s, size_t n)
{
    strbuf_grow(sb, n);
    if (n > 0)
        memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void strbuf_append(strbuf *sb, const char *s)
{
    strbuf_append_len(sb, s, strlen(s));
}

void strbuf_append_char(strbuf *sb, char c)
{
    strbuf_grow(sb, 1);
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}

void strbuf_vappendf(strbuf *sb, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    strbuf_grow(sb, 0);
    size_t avail = sb->cap - sb->len;
    int n = vsnprintf(sb->data + sb->len, avail, fmt, copy);
    va_end(copy);
    if (n < 0) {
        /* Encoding error: leave the buffer as it was. */
        sb->data[sb->len] = '\0';
        return;
    }
    if ((size_t)n >= avail) {
        strbuf_grow(sb, (size_t)n);
        va_copy(copy, ap);
        vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, copy);
        va_end(copy);
    }
    sb->len += (size_t)n;
}

void strbuf_appendf(strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(sb, fmt, ap);
    va_end(ap);
}

char *strbuf_detach(strbuf *sb)
{
    char *data = sb->cap > 0 ? sb->data : wb_xstrdup("");
    strbuf_init(sb);
    return data;
}

bool strbuf_append_file(strbuf *sb, FILE *f)
{
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append_len(sb, buf, n);
    return ferror(f) == 0;
}

int wb_escape_letter_value(char c, bool with_v)
{
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'v':
        return with_v ? '\v' : -1;
    default:
        return -1;
    }
}

int wb_hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
