/*
 * wire.c — codec for the replication sub-protocol messages 'w', 'k' and 'r'
 * (see wire.h).  Pure apart from wire_now reading the clock.
 */
#include "cdc/wire.h"

#include <stdio.h>
#include <time.h>

void wire_put_u64(unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xFF);
        v >>= 8;
    }
}

uint64_t wire_get_u64(const unsigned char *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

static bool wire_check(const char *buf, size_t len, char type, size_t min_len, const char *name,
                       char *err, size_t errlen)
{
    if (buf == NULL || len == 0) {
        snprintf(err, errlen, "empty %s message", name);
        return false;
    }
    if (buf[0] != type) {
        snprintf(err, errlen, "expected a '%c' (%s) message, got type byte 0x%02x", type, name,
                 (unsigned char)buf[0]);
        return false;
    }
    if (len < min_len) {
        snprintf(err, errlen, "%s message too short: %zu bytes, need %zu", name, len, min_len);
        return false;
    }
    return true;
}

bool wire_parse_xlogdata(const char *buf, size_t len, wire_xlogdata *out, char *err, size_t errlen)
{
    if (!wire_check(buf, len, 'w', WIRE_XLOGDATA_HEADER_LEN, "XLogData", err, errlen))
        return false;
    const unsigned char *u = (const unsigned char *)buf;
    out->data_start = wire_get_u64(u + 1);
    out->wal_end = wire_get_u64(u + 9);
    out->send_time = (int64_t)wire_get_u64(u + 17);
    out->data = buf + WIRE_XLOGDATA_HEADER_LEN;
    out->len = len - WIRE_XLOGDATA_HEADER_LEN;
    return true;
}

bool wire_parse_keepalive(const char *buf, size_t len, wire_keepalive *out, char *err,
                          size_t errlen)
{
    if (!wire_check(buf, len, 'k', WIRE_KEEPALIVE_LEN, "keepalive", err, errlen))
        return false;
    const unsigned char *u = (const unsigned char *)buf;
    out->wal_end = wire_get_u64(u + 1);
    out->send_time = (int64_t)wire_get_u64(u + 9);
    out->reply_requested = u[17] != 0;
    return true;
}

void wire_build_status(unsigned char out[WIRE_STATUS_LEN], wb_lsn write_lsn, wb_lsn flush_lsn,
                       wb_lsn apply_lsn, int64_t send_time, bool reply_requested)
{
    out[0] = 'r';
    wire_put_u64(out + 1, write_lsn);
    wire_put_u64(out + 9, flush_lsn);
    wire_put_u64(out + 17, apply_lsn);
    wire_put_u64(out + 25, (uint64_t)send_time);
    out[33] = reply_requested ? 1 : 0;
}

int64_t wire_time_from_unix(int64_t unix_s, int64_t usec)
{
    return (unix_s - WIRE_EPOCH_OFFSET_S) * INT64_C(1000000) + usec;
}

int64_t wire_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return wire_time_from_unix((int64_t)ts.tv_sec, (int64_t)(ts.tv_nsec / 1000));
}
