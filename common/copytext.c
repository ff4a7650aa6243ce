/*
 * copytext.c — PostgreSQL COPY text format (tab delimiter, \N for NULL):
 * escaping values for COPY FROM and splitting COPY TO lines into fields.
 *
 * Escaping follows what COPY TO itself writes: backslash, the control
 * characters \b \f \n \r \t \v as escapes, everything else as is.
 * Splitting accepts everything COPY FROM accepts: those escapes, octal
 * (\101), hex (\x41), and a backslash before any other character meaning
 * that character.  A field that is exactly \N (before unescaping) is NULL.
 */
#include "common/copytext.h"

#include <string.h>

void copytext_escape(strbuf *out, const char *value, size_t len)
{
    if (value == NULL) {
        strbuf_append_len(out, "\\N", 2);
        return;
    }
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < len; i++) {
        /* Printable bytes other than the backslash need nothing. */
        if ((unsigned char)value[i] >= ' ' && value[i] != '\\')
            continue;
        char esc;
        switch (value[i]) {
        case '\\':
            esc = '\\';
            break;
        case '\b':
            esc = 'b';
            break;
        case '\f':
            esc = 'f';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\t':
            esc = 't';
            break;
        case '\v':
            esc = 'v';
            break;
        default:
            continue;
        }
        strbuf_append_len(out, value + run, i - run);
        strbuf_append_char(out, '\\');
        strbuf_append_char(out, esc);
        run = i + 1;
    }
    strbuf_append_len(out, value + run, len - run);
}

/*
 * Unescapes the raw field [p, end) in place; returns the unescaped length,
 * or -1 for a backslash at the very end.
 */
static long copytext_unescape(char *p, const char *end)
{
    char *w = p;
    const char *r = p;
    while (r < end) {
        if (*r != '\\') {
            *w++ = *r++;
            continue;
        }
        if (++r == end)
            return -1;
        char c = *r++;
        int ctl = wb_escape_letter_value(c, true);
        if (ctl >= 0) {
            *w++ = (char)ctl;
            continue;
        }
        switch (c) {
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7': {
            unsigned value = (unsigned)(c - '0');
            for (int k = 0; k < 2 && r < end && *r >= '0' && *r <= '7'; k++)
                value = (value << 3) + (unsigned)(*r++ - '0');
            *w++ = (char)(value & 0377);
            break;
        }
        case 'x':
            if (r < end && wb_hex_digit_value(*r) >= 0) {
                int value = wb_hex_digit_value(*r++);
                if (r < end && wb_hex_digit_value(*r) >= 0)
                    value = (value << 4) + wb_hex_digit_value(*r++);
                *w++ = (char)value;
            } else {
                *w++ = 'x';
            }
            break;
        default:
            *w++ = c; /* backslash before any other character: that character */
            break;
        }
    }
    return (long)(w - p);
}

int copytext_split(char *line, size_t len, char **fields, size_t *lens, int max_fields)
{
    int n = 0;
    char *end = line + len;
    char *start = line;
    for (;;) {
        /* The common field has no backslash: find its tab with memchr, nothing to
         * unescape.  Otherwise, as in COPY FROM, a backslash protects the next byte,
         * even a tab. */
        char *tab = memchr(start, '\t', (size_t)(end - start));
        if (tab == NULL)
            tab = end;
        char *bs = memchr(start, '\\', (size_t)(tab - start));
        if (bs != NULL) {
            tab = bs;
            while (tab < end && *tab != '\t')
                tab += (*tab == '\\' && tab + 1 < end) ? 2 : 1;
        }
        if (n >= max_fields)
            return -1;
        if (bs == NULL) {
            fields[n] = start;
            lens[n] = (size_t)(tab - start);
        } else if (tab - start == 2 && start[0] == '\\' && start[1] == 'N') {
            fields[n] = NULL;
            lens[n] = 0;
        } else {
            long flen = copytext_unescape(start, tab);
            if (flen < 0)
                return -1;
            fields[n] = start;
            lens[n] = (size_t)flen;
        }
        n++;
        if (tab == end)
            return n;
        start = tab + 1;
    }
}
