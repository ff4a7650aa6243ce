/*
 * fuzz_wire.c — libFuzzer harness for the replication wire decoder
 * (cdc/wire.h): the CopyData payloads a walsender sends ('w' XLogData, 'k'
 * primary keepalive).
 *
 * The input is one CopyData payload of any length.  Both parsers are tried
 * on it (each must refuse a mistyped or short message with a reason, never
 * read past len); a parsed XLogData's data must lie inside the buffer, and
 * its payload is also handed to w2j_parse, as the stream does.  The status
 * builder is round-tripped through the big-endian helpers.
 *
 * Built with clang by fuzz/build.sh (not part of the default gcc build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cdc/w2j.h"
#include "cdc/wire.h"
#include "fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_wire_xlogdata(const char *buf, size_t size)
{
    wire_xlogdata x;
    char err[256];
    if (!wire_parse_xlogdata(buf, size, &x, err, sizeof err))
        return;
    if (size < WIRE_XLOGDATA_HEADER_LEN || x.data < buf || x.data + x.len != buf + size)
        abort(); /* the payload must be exactly the bytes after the 25-byte header */
    w2j_change change;
    w2j_change_init(&change);
    (void)w2j_parse(x.data, x.len, &change, err, sizeof err);
    w2j_change_free(&change);
}

static void fuzz_wire_keepalive(const char *buf, size_t size)
{
    wire_keepalive k;
    char err[256];
    if (wire_parse_keepalive(buf, size, &k, err, sizeof err) && size < WIRE_KEEPALIVE_LEN)
        abort(); /* a short keepalive must be refused */
}

static void fuzz_wire_status_roundtrip(const char *buf, size_t size)
{
    if (size < 32)
        return;
    uint64_t w = wire_get_u64((const unsigned char *)buf);
    uint64_t f = wire_get_u64((const unsigned char *)buf + 8);
    uint64_t a = wire_get_u64((const unsigned char *)buf + 16);
    int64_t t = (int64_t)wire_get_u64((const unsigned char *)buf + 24);
    unsigned char out[WIRE_STATUS_LEN];
    wire_build_status(out, (wb_lsn)w, (wb_lsn)f, (wb_lsn)a, t, true);
    if (out[0] != 'r' || wire_get_u64(out + 1) != w || wire_get_u64(out + 9) != f ||
        wire_get_u64(out + 17) != a || (int64_t)wire_get_u64(out + 25) != t || out[33] != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = fuzz_input_copy(data, size);
    if (copy == NULL)
        return 0;
    fuzz_wire_xlogdata(copy, size);
    fuzz_wire_keepalive(copy, size);
    fuzz_wire_status_roundtrip(copy, size);
    free(copy);
    return 0;
}
