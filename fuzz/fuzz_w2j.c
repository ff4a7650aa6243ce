/*
 * fuzz_w2j.c — libFuzzer harness for the wal2json format-version 2 message
 * parser (cdc/w2j.h).
 *
 * The input is one message exactly as it would arrive in an XLogData payload:
 * not NUL-terminated, any bytes.  w2j_parse must either fill the change or
 * fail with a reason; it must never read past len, crash or leak.  On success
 * the lookups are exercised on every parsed name, and the value lengths are
 * checked against the text they describe.
 *
 * Built with clang by fuzz/build.sh (not part of the default gcc build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cdc/w2j.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_w2j_touch(const w2j_change *c, const w2j_value *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (values[i].name == NULL)
            abort(); /* every parsed column has a name */
        if (values[i].text != NULL && memchr(values[i].text, '\0', values[i].len + 1) == NULL)
            abort(); /* text is NUL-terminated at len at the latest */
        (void)w2j_find_column(c, values[i].name);
        (void)w2j_find_identity(c, values[i].name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy of exactly size bytes: ASan then catches any read past len. */
    char *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);

    w2j_change change;
    char err[256];
    w2j_change_init(&change);
    if (w2j_parse(copy, size, &change, err, sizeof err)) {
        fuzz_w2j_touch(&change, change.columns, change.ncolumns);
        fuzz_w2j_touch(&change, change.identity, change.nidentity);
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        abort(); /* the reason must be a terminated string */
    }
    w2j_change_free(&change);
    /* Reusable after free (w2j_change_init state): free again must be harmless. */
    w2j_change_free(&change);
    free(copy);
    return 0;
}
