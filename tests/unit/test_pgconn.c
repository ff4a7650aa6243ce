/*
 * test_pgconn.c — the pure parts of common/pgconn.c: SQLSTATE classification,
 * identifier quoting, transaction-pooler detection and backoff bounds.
 * (Opening connections is covered by the integration tests.)
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/pgconn.h"
#include "common/strbuf.h"

Test(pgconn, retryable_sqlstates)
{
    static const char *const retry[] = {"08000", "08003", "08006", "08001", "57P01",
                                        "57P02", "57P03", "40001", "40P01", "53000",
                                        "53100", "53200", "53300", "55P03"};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        cr_expect_eq(pgconn_classify_sqlstate(retry[i]), PGERR_RETRY, "%s should retry", retry[i]);
}

Test(pgconn, fatal_sqlstates)
{
    static const char *const fatal[] = {"23505", "23503", "42601", "42P01", "42501", "22P02",
                                        "57014", "55000", "40002", "XX000", "P0001", "0800"};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        cr_expect_eq(pgconn_classify_sqlstate(fatal[i]), PGERR_FATAL, "%s should be fatal",
                     fatal[i]);
}

Test(pgconn, missing_sqlstate_is_a_connection_problem)
{
    cr_expect_eq(pgconn_classify_sqlstate(NULL), PGERR_RETRY);
    cr_expect_eq(pgconn_classify_sqlstate(""), PGERR_RETRY);
    cr_expect_eq(pgconn_classify_sqlstate("00000"), PGERR_OK);
    cr_expect_eq(pgconn_classify(NULL, NULL), PGERR_RETRY);
}

static void expect_ident(const char *ident, const char *quoted)
{
    strbuf sb;
    strbuf_init(&sb);
    pgconn_append_ident(&sb, ident);
    cr_expect_str_eq(sb.data, quoted);
    strbuf_free(&sb);
}

Test(pgconn, identifiers_are_quoted)
{
    expect_ident("offices", "\"offices\"");
    expect_ident("Order", "\"Order\"");
    expect_ident("a\"b", "\"a\"\"b\"");
    expect_ident("\"", "\"\"\"\"");
    expect_ident("", "\"\"");
    expect_ident("drop table x; --", "\"drop table x; --\"");
}

Test(pgconn, qualified_names)
{
    strbuf sb;
    strbuf_init(&sb);
    pgconn_append_qualified(&sb, "public", "order");
    cr_expect_str_eq(sb.data, "\"public\".\"order\"");
    strbuf_reset(&sb);
    pgconn_append_qualified(&sb, NULL, "t");
    cr_expect_str_eq(sb.data, "\"t\"");
    strbuf_free(&sb);
}

Test(pgconn, transaction_pooler_port_is_detected)
{
    char err[512];
    unsetenv("PGPORT");
    err[0] = '\0';
    cr_expect(pgconn_is_transaction_pooler(
        "postgresql://postgres.abc:secret@aws-0-eu.pooler.supabase.com:6543/postgres", err,
        sizeof err));
    cr_expect(strstr(err, "5432") != NULL, "explains the fix: %s", err);
    cr_expect(strstr(err, "session-mode") != NULL, "mentions the session pooler: %s", err);
    cr_expect(strstr(err, "secret") == NULL);
    cr_expect(pgconn_is_transaction_pooler("host=db port=6543 dbname=x", err, sizeof err));
    cr_expect(pgconn_is_transaction_pooler("host=a,b port=5432,6543", err, sizeof err));
    cr_expect(pgconn_is_transaction_pooler("host=a port=' 6543 '", NULL, 0));
}

Test(pgconn, other_ports_are_not_the_pooler)
{
    char err[256];
    unsetenv("PGPORT");
    cr_expect_not(pgconn_is_transaction_pooler("postgresql://u@h:5432/db", err, sizeof err));
    cr_expect_not(pgconn_is_transaction_pooler("postgresql://u@h/db", err, sizeof err));
    cr_expect_not(pgconn_is_transaction_pooler("host=h port=65430", err, sizeof err));
    cr_expect_not(pgconn_is_transaction_pooler("host=h port=16543", err, sizeof err));
    cr_expect_not(pgconn_is_transaction_pooler("dbname=x host=h6543", err, sizeof err));
    cr_expect_not(pgconn_is_transaction_pooler("this is = not a dsn '", err, sizeof err));
}

Test(pgconn, pooler_port_from_environment)
{
    setenv("PGPORT", "6543", 1);
    cr_expect(pgconn_is_transaction_pooler("host=h dbname=x", NULL, 0));
    cr_expect_not(pgconn_is_transaction_pooler("host=h port=5432", NULL, 0));
    unsetenv("PGPORT");
}

Test(pgconn, backoff_stays_within_bounds)
{
    int prev = 0;
    int base = 1, cap = 9;
    bool reached_above_base = false;
    for (int i = 0; i < 200; i++) {
        int before = prev < base ? base : prev;
        int ms = pgconn_backoff_sleep(&prev, base, cap);
        cr_assert_geq(ms, base);
        cr_assert_leq(ms, cap);
        cr_assert_leq(ms, before * 3, "decorrelated jitter: at most 3x the previous wait");
        cr_assert_eq(prev, ms);
        if (ms > base)
            reached_above_base = true;
    }
    cr_expect(reached_above_base, "jitter grows the wait beyond the base");
}

Test(pgconn, backoff_degenerate_arguments)
{
    int prev = 1000;
    int ms = pgconn_backoff_sleep(&prev, 2, 1); /* cap below base: waits base */
    cr_expect_eq(ms, 2);
    prev = -5;
    ms = pgconn_backoff_sleep(&prev, 0, 3);
    cr_expect(ms >= 1 && ms <= 3);
}

Test(pgconn, snapshot_names_are_checked_before_they_reach_sql)
{
    cr_expect(pgconn_snapshot_name_ok("00000003-0000001B-1"));
    cr_expect(pgconn_snapshot_name_ok("0A-ff"));
    cr_expect_not(pgconn_snapshot_name_ok(""));
    cr_expect_not(pgconn_snapshot_name_ok("00000003-0000001B-1'; DROP TABLE x; --"));
    cr_expect_not(pgconn_snapshot_name_ok("0000 0003"));
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_expect_not(pgconn_snapshot_name_ok(longname));
}
