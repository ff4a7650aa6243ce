/*
 * promtext.h — pieces of the Prometheus text exposition format shared by
 * the stream's /metrics (cdc/metrics.c) and `walbridge health --format
 * prometheus` (cdc/health_render.c).
 *
 * Pure text building into a caller-owned strbuf; no allocation the caller
 * has to free beyond the strbuf itself.
 */
#ifndef WALBRIDGE_PROMTEXT_H
#define WALBRIDGE_PROMTEXT_H

#include "common/strbuf.h"

/* Appends the label value s escaped per the exposition format (\\, \", \n). */
void promtext_append_label_value(strbuf *out, const char *s);

/* Appends the "# HELP name help" and "# TYPE name type" lines of one metric. */
void promtext_header(strbuf *out, const char *name, const char *type, const char *help);

#endif
