/*
 * strbuf.h — a growable, always NUL-terminated byte buffer.
 *
 * Used to build SQL text, COPY lines and log lines without sprintf/strcpy.
 * The caller owns the struct (stack or embedded) and calls strbuf_init /
 * strbuf_free.  All appends abort the process on out-of-memory (walbridge
 * cannot do anything useful without memory and must not confirm an LSN it
 * did not apply), so they return nothing.
 */
#ifndef WALBRIDGE_STRBUF_H
#define WALBRIDGE_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct strbuf {
    char *data; /* NUL-terminated; never NULL after strbuf_init */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* private: bytes allocated */
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_free(strbuf *sb);
void strbuf_reset(strbuf *sb); /* len = 0, keeps the allocation */
void strbuf_append(strbuf *sb, const char *s);
void strbuf_append_len(strbuf *sb, const char *s, size_t n);
void strbuf_append_char(strbuf *sb, char c);
void strbuf_appendf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vappendf(strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Returns the buffer's data, which the caller now owns (free()); sb is reset to empty. */
char *strbuf_detach(strbuf *sb);
/*
 * Appends everything that can be read from f up to its end.  Returns false
 * on a read error (errno as fread left it; what was read before stays
 * appended).  The caller opens and closes f.
 */
bool strbuf_append_file(strbuf *sb, FILE *f);

/* The value of one hexadecimal digit (0-9, a-f, A-F), or -1 for any other char. */
int wb_hex_digit_value(char c);
/*
 * The control character a C-style one-letter escape names (b f n r t, and v
 * when with_v: JSON has no \v, COPY text has), or -1 for any other letter.
 */
int wb_escape_letter_value(char c, bool with_v);

/* xmalloc family: abort with a message on out-of-memory. */
void *wb_xmalloc(size_t n);
void *wb_xcalloc(size_t nmemb, size_t size);
void *wb_xrealloc(void *p, size_t n);
char *wb_xstrdup(const char *s);
char *wb_xstrndup(const char *s, size_t n);

#endif
