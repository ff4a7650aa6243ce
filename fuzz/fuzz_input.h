/*
 * fuzz_input.h — private copies of a libFuzzer input, shared by the
 * harnesses in fuzz/ (header-only: build.sh compiles each fuzz_*.c alone).
 *
 * libFuzzer's buffer may be larger than size; a malloc'ed copy of exactly
 * size bytes lets ASan catch any read past the length a parser was given.
 * Ownership: the caller free()s what these return.  NULL on out-of-memory
 * (the harness then skips the input).
 */
#ifndef WALBRIDGE_FUZZ_INPUT_H
#define WALBRIDGE_FUZZ_INPUT_H

#include <stdlib.h>
#include <string.h>

/* Exactly size bytes of data (one allocated byte when size is 0), not terminated. */
static inline char *fuzz_input_copy(const void *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1);
    if (copy != NULL && size > 0)
        memcpy(copy, data, size);
    return copy;
}

/* The size bytes of data followed by a NUL (an embedded NUL ends the C string early). */
static inline char *fuzz_input_cstring(const void *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return NULL;
    if (size > 0)
        memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
