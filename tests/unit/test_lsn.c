/*
 * test_lsn.c — unit tests for LSN text parsing and formatting (common/lsn.c).
 */
#include <criterion/criterion.h>

#include "common/lsn.h"

Test(lsn, parses_postgres_forms)
{
    wb_lsn v = 1;
    cr_assert(lsn_parse("16/B374D848", &v));
    cr_assert_eq(v, ((wb_lsn)0x16 << 32) | 0xB374D848u);
    cr_assert(lsn_parse("0/0", &v));
    cr_assert_eq(v, 0);
    cr_assert(lsn_parse("ffffffff/ffffffff", &v));
    cr_assert_eq(v, UINT64_MAX);
    cr_assert(lsn_parse("0/1A2b3C", &v));
    cr_assert_eq(v, 0x1A2B3Cu);
}

Test(lsn, rejects_junk)
{
    static const char *bad[] = {"",
                                "/",
                                "0/",
                                "/0",
                                "16B374D848",
                                "16/B374D848 ",
                                " 16/B374D848",
                                "16/B374D84G",
                                "1/2/3",
                                "-1/0",
                                "0x1/0",
                                "123456789/0",
                                "0/123456789",
                                "+1/0",
                                "16 /0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wb_lsn v = 77;
        cr_assert_not(lsn_parse(bad[i], &v), "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 77, "modified output for \"%s\"", bad[i]);
    }
    wb_lsn v;
    cr_assert_not(lsn_parse(NULL, &v));
}

Test(lsn, formats_upper_case_without_padding)
{
    char buf[LSN_TEXT_MAX];
    cr_assert_str_eq(lsn_format(((wb_lsn)0x16 << 32) | 0xB374D848u, buf), "16/B374D848");
    cr_assert_str_eq(lsn_format(0, buf), "0/0");
    cr_assert_str_eq(lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
    cr_assert_str_eq(lsn_format(0x1000000A0ull, buf), "1/A0");
}

Test(lsn, round_trip)
{
    static const wb_lsn values[] = {
        0, 1, 0xFFFFFFFFull, 0x100000000ull, 0x123456789ABCDEF0ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[LSN_TEXT_MAX];
        wb_lsn back = 0;
        cr_assert(lsn_parse(lsn_format(values[i], buf), &back));
        cr_assert_eq(back, values[i]);
    }
}
