/*
 * wire.h — the streaming replication sub-protocol messages carried inside
 * CopyData on a START_REPLICATION connection, as a pure codec (no I/O).
 *
 *   'w' XLogData          1 + dataStart(8) + walEnd(8) + sendTime(8) + data  (25-byte header)
 *   'k' Primary keepalive 1 + walEnd(8) + sendTime(8) + replyRequested(1)    (18 bytes)
 *   'r' Standby status    1 + write(8) + flush(8) + apply(8) + sendTime(8) + replyRequested(1)
 *                                                                            (34 bytes)
 *
 * Integers are big-endian; times are microseconds since 2000-01-01 00:00 UTC
 * (PostgreSQL's epoch).  Messages shorter than their fixed layout are
 * rejected with a reason.  Only the flush position of 'r' advances a slot's
 * confirmed_flush_lsn.
 */
#ifndef WALBRIDGE_WIRE_H
#define WALBRIDGE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/lsn.h"

#define WIRE_XLOGDATA_HEADER_LEN 25
#define WIRE_KEEPALIVE_LEN 18
#define WIRE_STATUS_LEN 34

/* Seconds between the Unix epoch and 2000-01-01 00:00:00 UTC. */
#define WIRE_EPOCH_OFFSET_S INT64_C(946684800)

typedef struct wire_xlogdata {
    wb_lsn data_start; /* WAL start of this message; may be 0 (never move backwards on it) */
    wb_lsn wal_end;    /* server's current WAL end */
    int64_t send_time; /* microseconds since 2000-01-01 */
    const char *data;  /* borrowed: points into the message buffer */
    size_t len;
} wire_xlogdata;

typedef struct wire_keepalive {
    wb_lsn wal_end;
    int64_t send_time;
    bool reply_requested;
} wire_keepalive;

/* Big-endian helpers. */
void wire_put_u64(unsigned char *out, uint64_t v);
uint64_t wire_get_u64(const unsigned char *in);

/* Parses a 'w' message (buf[0] must be 'w').  False with a reason when short or mistyped. */
bool wire_parse_xlogdata(const char *buf, size_t len, wire_xlogdata *out, char *err, size_t errlen);
/* Parses a 'k' message (buf[0] must be 'k'). */
bool wire_parse_keepalive(const char *buf, size_t len, wire_keepalive *out, char *err,
                          size_t errlen);
/* Builds a 34-byte 'r' standby status update into out. */
void wire_build_status(unsigned char out[WIRE_STATUS_LEN], wb_lsn write_lsn, wb_lsn flush_lsn,
                       wb_lsn apply_lsn, int64_t send_time, bool reply_requested);

/* Unix time (seconds + microseconds) to PostgreSQL microseconds since 2000-01-01. */
int64_t wire_time_from_unix(int64_t unix_s, int64_t usec);
/* The current time in PostgreSQL microseconds (CLOCK_REALTIME). */
int64_t wire_now(void);

#endif
