/*
 * promtext.c — Prometheus text exposition format helpers (label value
 * escaping, HELP/TYPE header lines).  See promtext.h.
 */
#include "common/promtext.h"

void promtext_append_label_value(strbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            strbuf_append(out, "\\\\");
        else if (*s == '"')
            strbuf_append(out, "\\\"");
        else if (*s == '\n')
            strbuf_append(out, "\\n");
        else
            strbuf_append_char(out, *s);
    }
}

void promtext_header(strbuf *out, const char *name, const char *type, const char *help)
{
    strbuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}
