/*
 * lsn.c — PostgreSQL LSN text ("16/B374D848") <-> uint64.
 *
 * The parser is strict: exactly 1-8 hex digits, '/', 1-8 hex digits, and
 * nothing else (no sign, spaces, "0x" or trailing junk).
 */
#include "common/lsn.h"

#include <stdio.h>

/* Parses 1..8 hex digits at *p; advances *p; false if none or too many. */
static bool lsn_parse_half(const char **p, uint32_t *out)
{
    uint32_t value = 0;
    int digits = 0;
    for (;;) {
        char c = **p;
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (++digits > 8)
            return false;
        value = (value << 4) | (uint32_t)d;
        (*p)++;
    }
    if (digits == 0)
        return false;
    *out = value;
    return true;
}

bool lsn_parse(const char *text, wb_lsn *out)
{
    uint32_t hi, lo;
    const char *p = text;
    if (text == NULL)
        return false;
    if (!lsn_parse_half(&p, &hi) || *p != '/')
        return false;
    p++;
    if (!lsn_parse_half(&p, &lo) || *p != '\0')
        return false;
    *out = ((wb_lsn)hi << 32) | lo;
    return true;
}

char *lsn_format(wb_lsn lsn, char *buf)
{
    snprintf(buf, LSN_TEXT_MAX, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xFFFFFFFFu));
    return buf;
}
