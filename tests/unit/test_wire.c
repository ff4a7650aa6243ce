/*
 * test_wire.c — unit tests for the replication wire codec (cdc/wire.c):
 * exact byte layouts of 'w', 'k' and 'r', big-endian integers, the
 * 2000-01-01 epoch and rejection of short or mistyped messages.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cdc/replication.h"
#include "cdc/wire.h"
#include "common/config.h"
#include "common/strbuf.h"

Test(wire, big_endian_u64)
{
    unsigned char b[8];
    wire_put_u64(b, UINT64_C(0x0102030405060708));
    const unsigned char want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_arr_eq(b, want, 8);
    cr_assert_eq(wire_get_u64(want), UINT64_C(0x0102030405060708));
    wire_put_u64(b, UINT64_MAX);
    cr_assert_eq(wire_get_u64(b), UINT64_MAX);
}

Test(wire, parses_xlogdata_header_and_payload)
{
    const char msg[] = {
        'w',  0,  0, 0,    0x16,       (char)0xB3, 0x74,       (char)0xD8,
        0x48,                                                        /* dataStart 16/B374D848 */
        0,    0,  0, 0x16, (char)0xB3, 0x74,       (char)0xD9, 0x00, /* walEnd 16/B374D900 */
        0,    0,  0, 0,    0,          0,          0x03,       (char)0xE8, /* sendTime 1000 us */
        '{',  '}'};
    wire_xlogdata w;
    char err[128];
    cr_assert(wire_parse_xlogdata(msg, sizeof msg, &w, err, sizeof err), "%s", err);
    cr_assert_eq(w.data_start, (UINT64_C(0x16) << 32) | 0xB374D848u);
    cr_assert_eq(w.wal_end, (UINT64_C(0x16) << 32) | 0xB374D900u);
    cr_assert_eq(w.send_time, 1000);
    cr_assert_eq(w.len, 2);
    cr_assert_eq(w.data, msg + 25);
    /* A header with an empty payload is legal; 24 bytes is not. */
    cr_assert(wire_parse_xlogdata(msg, 25, &w, err, sizeof err));
    cr_assert_eq(w.len, 0);
    cr_assert_not(wire_parse_xlogdata(msg, 24, &w, err, sizeof err));
    cr_assert_str_eq(err, "XLogData message too short: 24 bytes, need 25");
    cr_assert_not(wire_parse_xlogdata("k", 1, &w, err, sizeof err));
    cr_assert(strstr(err, "expected a 'w'") != NULL, "%s", err);
    cr_assert_not(wire_parse_xlogdata(msg, 0, &w, err, sizeof err));
}

Test(wire, parses_keepalive)
{
    char msg[18] = {'k', 0, 0, 0, 1, 0, 0, 0, 0x20, /* walEnd 1/20 */
                    0,   0, 0, 0, 0, 0, 0, 7,       /* sendTime 7 */
                    1};
    wire_keepalive k;
    char err[128];
    cr_assert(wire_parse_keepalive(msg, sizeof msg, &k, err, sizeof err), "%s", err);
    cr_assert_eq(k.wal_end, (UINT64_C(1) << 32) | 0x20);
    cr_assert_eq(k.send_time, 7);
    cr_assert(k.reply_requested);
    msg[17] = 0;
    cr_assert(wire_parse_keepalive(msg, sizeof msg, &k, err, sizeof err));
    cr_assert_not(k.reply_requested);
    cr_assert_not(wire_parse_keepalive(msg, 17, &k, err, sizeof err));
    cr_assert_str_eq(err, "keepalive message too short: 17 bytes, need 18");
    msg[0] = 'w';
    cr_assert_not(wire_parse_keepalive(msg, sizeof msg, &k, err, sizeof err));
}

Test(wire, builds_standby_status_exactly)
{
    unsigned char out[WIRE_STATUS_LEN];
    memset(out, 0xAA, sizeof out);
    wire_build_status(out, UINT64_C(0x0000000100000010), UINT64_C(0x0000000100000008),
                      UINT64_C(0x0000000100000004), INT64_C(0x0102030405060708), true);
    const unsigned char want[WIRE_STATUS_LEN] = {'r', 0, 0, 0, 1, 0, 0, 0,    0x10, /* write */
                                                 0,   0, 0, 1, 0, 0, 0, 0x08,       /* flush */
                                                 0,   0, 0, 1, 0, 0, 0, 0x04,       /* apply */
                                                 1,   2, 3, 4, 5, 6, 7, 8,          /* sendTime */
                                                 1}; /* replyRequested */
    cr_assert_eq(WIRE_STATUS_LEN, 34);
    cr_assert_arr_eq(out, want, WIRE_STATUS_LEN);
    wire_build_status(out, 0, 0, 0, 0, false);
    cr_assert_eq(out[33], 0);
}

Test(wire, epoch_is_2000_01_01_utc_in_microseconds)
{
    cr_assert_eq(wire_time_from_unix(946684800, 0), 0);
    cr_assert_eq(wire_time_from_unix(946684801, 5), 1000005);
    cr_assert_eq(wire_time_from_unix(0, 0), INT64_C(-946684800000000));
    /* Now is after 2020-01-01 (631152000 s after 2000) and before 2100. */
    int64_t now = wire_now();
    cr_assert_gt(now, INT64_C(631152000) * 1000000);
    cr_assert_lt(now, INT64_C(3155760000) * 1000000);
}

/*
 * The START_REPLICATION command (cdc/replication.c): wal2json options and the
 * add-tables list with wal2json's backslash escaping of space, quote, comma,
 * period, asterisk and backslash; single quotes doubled for the replication
 * command grammar.
 */
Test(wire, start_replication_command_escapes_table_names)
{
    const char *json = "{\"source\": {\"dsn\": \"host=src\"}, \"target\": {\"dsn\": \"host=tgt\"},"
                       " \"slot\": \"wb_slot\","
                       " \"uuid_namespace\": \"0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42\","
                       " \"tables\": [{\"source\": \"public.offices\", \"key\": \"id\"},"
                       "  {\"source\": \"My Schema.a,b*d'e\\\\f\", \"key\": \"id\"}]}";
    wb_config cfg;
    char err[512];
    cr_assert(config_parse("walbridge.json", json, &cfg, err, sizeof err), "%s", err);
    strbuf out;
    strbuf_init(&out);
    stream_append_add_tables(&out, &cfg);
    cr_assert_str_eq(out.data, "public.offices,My\\ Schema.a\\,b\\*d\\'e\\\\f");
    strbuf_reset(&out);
    stream_build_start_command(&out, &cfg, ((wb_lsn)0x16 << 32) | 0xB374D848u);
    cr_assert_str_eq(out.data,
                     "START_REPLICATION SLOT \"wb_slot\" LOGICAL 16/B374D848 "
                     "(\"format-version\" '2', \"include-xids\" '1', \"include-lsn\" '1', "
                     "\"include-types\" '0', \"include-timestamp\" '1', \"add-tables\" "
                     "'public.offices,My\\ Schema.a\\,b\\*d\\''e\\\\f')");
    strbuf_free(&out);
    config_free(&cfg);
}
