/*
 * fuzz_copytext.c — libFuzzer harness for the COPY text codec
 * (common/copytext.h), which carries every backfilled value.
 *
 * Two properties:
 *   round trip: values cut from the input (separated by NUL bytes, so each is
 *   NUL-free like PostgreSQL text; byte 0 marks which are SQL NULL) escaped
 *   with copytext_escape, joined with tabs, and split again with
 *   copytext_split come back byte for byte, NULLs as NULLs;
 *   robustness: the raw input taken as a COPY line splits or is refused
 *   without reading outside it, every field inside the line.
 *
 * Built with clang by fuzz/build.sh (not part of the default gcc build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/copytext.h"
#include "common/strbuf.h"
#include "fuzz/fuzz_input.h"

#define FUZZ_COPYTEXT_MAX_FIELDS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_copytext_roundtrip(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    unsigned null_mask = data[0];
    const char *values[FUZZ_COPYTEXT_MAX_FIELDS];
    size_t value_lens[FUZZ_COPYTEXT_MAX_FIELDS];
    int n = 0;
    const char *p = (const char *)data + 1;
    const char *end = (const char *)data + size;
    while (n < FUZZ_COPYTEXT_MAX_FIELDS) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *stop = nul != NULL ? nul : end;
        values[n] = n < 8 && (null_mask >> n & 1u) ? NULL : p;
        value_lens[n] = (size_t)(stop - p);
        n++;
        if (nul == NULL)
            break;
        p = nul + 1;
    }

    strbuf line;
    strbuf_init(&line);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            strbuf_append_char(&line, '\t');
        copytext_escape(&line, values[i], value_lens[i]);
    }
    if (memchr(line.data, '\n', line.len) != NULL || memchr(line.data, '\r', line.len) != NULL)
        abort(); /* an escaped line must stay one line */

    char *fields[FUZZ_COPYTEXT_MAX_FIELDS];
    size_t lens[FUZZ_COPYTEXT_MAX_FIELDS];
    int got = copytext_split(line.data, line.len, fields, lens, FUZZ_COPYTEXT_MAX_FIELDS);
    if (got != n)
        abort();
    for (int i = 0; i < n; i++) {
        if ((values[i] == NULL) != (fields[i] == NULL))
            abort(); /* NULL and '' (or "\N" text) must stay apart */
        if (values[i] != NULL &&
            (lens[i] != value_lens[i] || memcmp(fields[i], values[i], lens[i]) != 0))
            abort();
    }
    strbuf_free(&line);
}

static void fuzz_copytext_raw(const uint8_t *data, size_t size)
{
    char *line = fuzz_input_cstring(data, size);
    if (line == NULL)
        return;
    char *fields[FUZZ_COPYTEXT_MAX_FIELDS];
    size_t lens[FUZZ_COPYTEXT_MAX_FIELDS];
    int got = copytext_split(line, size, fields, lens, FUZZ_COPYTEXT_MAX_FIELDS);
    if (got > FUZZ_COPYTEXT_MAX_FIELDS)
        abort();
    for (int i = 0; i < got; i++)
        if (fields[i] != NULL && (fields[i] < line || fields[i] + lens[i] > line + size))
            abort();
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_copytext_roundtrip(data, size);
    fuzz_copytext_raw(data, size);
    return 0;
}
