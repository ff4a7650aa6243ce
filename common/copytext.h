/*
 * copytext.h — PostgreSQL COPY text format codec (FORMAT text, tab delimiter,
 * \N for NULL).
 *
 * copytext_escape appends one field value escaped for COPY FROM; the splitter
 * walks one line of COPY TO output into fields, unescaping in place.
 */
#ifndef WALBRIDGE_COPYTEXT_H
#define WALBRIDGE_COPYTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include "common/strbuf.h"

/* Appends value (len bytes) escaped for COPY text; value NULL appends \N. */
void copytext_escape(strbuf *out, const char *value, size_t len);

/*
 * Splits one COPY text line (without the trailing newline) into at most
 * max_fields fields, unescaping in place.  fields[i] points into line, or is
 * NULL for \N.  lens[i] is the unescaped length.  Returns the number of
 * fields, or -1 if the line has more than max_fields fields or a bad escape.
 */
int copytext_split(char *line, size_t len, char **fields, size_t *lens, int max_fields);

#endif
