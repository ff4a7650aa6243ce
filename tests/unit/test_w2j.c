/*
 * test_w2j.c — unit tests for the wal2json format-version 2 parser
 * (cdc/w2j.c) against golden fixtures captured from the real wal2json 2.5 on
 * PostgreSQL 15 (tests/fixtures/wal2json, see its README), plus malformed
 * input.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/w2j.h"

/* Returns line n (0-based) of a fixture file, without its newline; caller frees. */
static char *fixture_line(const char *file, int n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/wal2json/%s", WALBRIDGE_FIXTURES, file);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = -1;
    for (int i = 0; i <= n; i++) {
        got = getline(&line, &cap, f);
        cr_assert(got > 0, "%s has no line %d", path, n);
    }
    fclose(f);
    if (line[got - 1] == '\n')
        line[got - 1] = '\0';
    return line;
}

/* Parses line n of file into c, asserting success. */
static void parse_fixture(const char *file, int n, w2j_change *c)
{
    char err[256];
    char *line = fixture_line(file, n);
    bool ok = w2j_parse(line, strlen(line), c, err, sizeof err);
    free(line);
    cr_assert(ok, "%s line %d: %s", file, n, err);
}

static void assert_value(const w2j_change *c, const char *name, const char *expected)
{
    const w2j_value *v = w2j_find_column(c, name);
    cr_assert_not_null(v, "column %s absent", name);
    if (expected == NULL) {
        cr_assert_null(v->text, "column %s: expected NULL, got \"%s\"", name, v->text);
        return;
    }
    cr_assert_not_null(v->text, "column %s: expected \"%s\", got NULL", name, expected);
    cr_assert_str_eq(v->text, expected, "column %s", name);
    cr_assert_eq(v->len, strlen(expected), "column %s length", name);
}

static wb_lsn lsn_of(const char *text)
{
    wb_lsn v = 0;
    cr_assert(lsn_parse(text, &v));
    return v;
}

Test(w2j, begin_and_commit_carry_xid_and_commit_lsn)
{
    w2j_change b, c;
    parse_fixture("types.jsonl", 0, &b);
    parse_fixture("types.jsonl", 4, &c);
    cr_assert_eq(b.action, W2J_BEGIN);
    cr_assert_eq(c.action, W2J_COMMIT);
    cr_assert_eq(b.xid, 735);
    cr_assert_eq(c.xid, 735);
    cr_assert_eq(b.lsn, lsn_of("0/154ED98"));
    cr_assert_eq(b.nextlsn, lsn_of("0/154EDC8"));
    cr_assert_eq(c.lsn, b.lsn);
    cr_assert_not_null(b.timestamp);
    cr_assert_eq(strlen(b.timestamp) > 20, true);
    cr_assert_null(b.table);
    w2j_change_free(&b);
    w2j_change_free(&c);
}

Test(w2j, every_value_keeps_its_exact_text)
{
    w2j_change c;
    parse_fixture("types.jsonl", 1, &c);
    cr_assert_eq(c.action, W2J_INSERT);
    cr_assert_str_eq(c.schema, "public");
    cr_assert_str_eq(c.table, "types");
    cr_assert_eq(c.lsn, lsn_of("0/154EA30"));
    cr_assert_eq(c.ncolumns, 16);
    assert_value(&c, "id", "1");
    assert_value(&c, "big", "9007199254740993"); /* 2^53 + 1: a double would say ...992 */
    assert_value(&c, "num", "12345678901234567890.0123456789");
    assert_value(&c, "num_free", NULL); /* numeric NaN arrives as null */
    assert_value(&c, "flt", NULL);      /* Infinity arrives as null */
    assert_value(&c, "rl", NULL);       /* -Infinity arrives as null */
    assert_value(&c, "txt", "caf\xc3\xa9 \xe2\x98\x83 \"quoted\" back\\slash\nnewline\ttab");
    assert_value(&c, "bin", "deadbeef00ff");
    assert_value(&c, "doc",
                 "{\"a\": 1, \"b\": [true, null, \"x\\\"y\"], \"big\": "
                 "12345678901234567890}");
    assert_value(&c, "tags", "{\"a b\",\"c,d\",\"\\\"q\\\"\",NULL}");
    assert_value(&c, "nums", "{1,2,3}");
    assert_value(&c, "at", "2024-02-29 11:14:15.123456+00");
    assert_value(&c, "day", "2024-02-29");
    assert_value(&c, "flag", "true");
    assert_value(&c, "span", "1 day 02:03:04.5");
    assert_value(&c, "uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    cr_assert_eq(c.nidentity, 0);
    w2j_change_free(&c);
}

Test(w2j, extremes_empty_strings_and_nulls)
{
    w2j_change c;
    parse_fixture("types.jsonl", 2, &c);
    assert_value(&c, "big", "-9223372036854775808");
    assert_value(&c, "num", "-0.0000000001");
    assert_value(&c, "num_free", "0");
    assert_value(&c, "flt", "1.5e-300");
    assert_value(&c, "rl", "3.25");
    assert_value(&c, "txt", ""); /* empty string is not NULL */
    assert_value(&c, "bin", ""); /* empty bytea */
    assert_value(&c, "doc", "null");
    assert_value(&c, "tags", "{}");
    assert_value(&c, "nums", NULL);
    assert_value(&c, "flag", "false");
    w2j_change_free(&c);

    parse_fixture("types.jsonl", 3, &c);
    assert_value(&c, "id", "3");
    for (size_t i = 1; i < c.ncolumns; i++)
        cr_assert_null(c.columns[i].text, "column %s should be NULL", c.columns[i].name);
    w2j_change_free(&c);
}

Test(w2j, unchanged_toast_column_is_absent)
{
    w2j_change c;
    parse_fixture("toast.jsonl", 1, &c); /* insert: body present, 10000 chars */
    const w2j_value *body = w2j_find_column(&c, "body");
    cr_assert_not_null(body);
    cr_assert_eq(body->len, 10000);
    cr_assert_eq(strncmp(body->text, "0123456789", 10), 0);
    w2j_change_free(&c);

    parse_fixture("toast.jsonl", 4, &c); /* UPDATE title only */
    cr_assert_eq(c.action, W2J_UPDATE);
    cr_assert_eq(c.ncolumns, 2);
    assert_value(&c, "title", "renamed");
    cr_assert_null(w2j_find_column(&c, "body"), "unchanged TOAST column must be absent");
    cr_assert_eq(c.nidentity, 1);
    cr_assert_str_eq(w2j_find_identity(&c, "id")->text, "1");
    w2j_change_free(&c);

    parse_fixture("toast.jsonl", 7, &c); /* UPDATE body */
    assert_value(&c, "body", "short now");
    w2j_change_free(&c);
}

Test(w2j, key_change_and_delete_carry_the_old_key)
{
    w2j_change c;
    parse_fixture("toast.jsonl", 10, &c); /* UPDATE SET id = 2 WHERE id = 1 */
    cr_assert_eq(c.action, W2J_UPDATE);
    assert_value(&c, "id", "2");
    cr_assert_str_eq(w2j_find_identity(&c, "id")->text, "1");
    w2j_change_free(&c);

    parse_fixture("toast.jsonl", 13, &c);
    cr_assert_eq(c.action, W2J_DELETE);
    cr_assert_eq(c.ncolumns, 0);
    cr_assert_eq(c.nidentity, 1);
    cr_assert_str_eq(w2j_find_identity(&c, "id")->text, "2");
    w2j_change_free(&c);
}

Test(w2j, full_identity_carries_the_whole_old_row)
{
    w2j_change c;
    parse_fixture("full.jsonl", 4, &c); /* UPDATE full_ident SET name = 'b' */
    cr_assert_eq(c.action, W2J_UPDATE);
    cr_assert_str_eq(c.table, "full_ident");
    cr_assert_null(w2j_find_column(&c, "body"), "unchanged TOAST absent from columns");
    cr_assert_eq(c.nidentity, 3);
    cr_assert_str_eq(w2j_find_identity(&c, "name")->text, "a");
    cr_assert_eq(w2j_find_identity(&c, "body")->len, 10000);
    w2j_change_free(&c);

    parse_fixture("full.jsonl", 14, &c); /* keyless audit_log update */
    cr_assert_eq(c.action, W2J_UPDATE);
    cr_assert_str_eq(c.table, "audit_log");
    assert_value(&c, "what", "changed");
    cr_assert_str_eq(w2j_find_identity(&c, "what")->text, "dup");
    cr_assert_str_eq(w2j_find_identity(&c, "at")->text, "2024-01-01 00:00:00+00");
    w2j_change_free(&c);

    parse_fixture("full.jsonl", 17, &c); /* keyless delete */
    cr_assert_eq(c.action, W2J_DELETE);
    cr_assert_eq(c.nidentity, 3);
    w2j_change_free(&c);
}

Test(w2j, messages_truncate_and_odd_names)
{
    w2j_change c;
    parse_fixture("truncate_messages.jsonl", 3, &c);
    cr_assert_eq(c.action, W2J_MESSAGE);
    cr_assert(c.transactional);
    cr_assert_str_eq(c.prefix, "walbridge_test");
    cr_assert_str_eq(c.content, "in txn");
    cr_assert_eq(c.xid, 747);
    w2j_change_free(&c);

    parse_fixture("truncate_messages.jsonl", 5, &c); /* non-transactional: xid null */
    cr_assert_eq(c.action, W2J_MESSAGE);
    cr_assert_not(c.transactional);
    cr_assert_eq(c.xid, 0);
    cr_assert_null(c.timestamp);
    cr_assert_str_eq(c.prefix, "walbridge_heartbeat");
    cr_assert_eq(c.lsn, lsn_of("0/1559F38"));
    w2j_change_free(&c);

    parse_fixture("truncate_messages.jsonl", 7, &c);
    cr_assert_str_eq(c.table, "Odd, Name.x");
    w2j_change_free(&c);

    parse_fixture("truncate_messages.jsonl", 10, &c);
    cr_assert_eq(c.action, W2J_TRUNCATE);
    cr_assert_str_eq(c.schema, "public");
    cr_assert_str_eq(c.table, "child");
    cr_assert_eq(c.ncolumns, 0);
    w2j_change_free(&c);
    parse_fixture("truncate_messages.jsonl", 11, &c);
    cr_assert_str_eq(c.table, "parent");
    w2j_change_free(&c);
}

Test(w2j, every_fixture_line_parses)
{
    static const char *files[] = {"types.jsonl", "toast.jsonl", "full.jsonl",
                                  "truncate_messages.jsonl"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/wal2json/%s", WALBRIDGE_FIXTURES, files[f]);
        FILE *fp = fopen(path, "r");
        cr_assert_not_null(fp);
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        int n = 0;
        while ((got = getline(&line, &cap, fp)) > 0) {
            w2j_change c;
            char err[256];
            cr_assert(w2j_parse(line, (size_t)got, &c, err, sizeof err), "%s:%d: %s", files[f], n,
                      err);
            cr_assert_neq(c.lsn, LSN_INVALID, "%s:%d has an lsn", files[f], n);
            w2j_change_free(&c);
            n++;
        }
        free(line);
        fclose(fp);
        cr_assert_gt(n, 4);
    }
}

/* Parsing must fail with a reason containing want, and leave c empty. */
static void assert_rejects(const char *json, size_t len, const char *want)
{
    w2j_change c;
    char err[256];
    cr_assert_not(w2j_parse(json, len, &c, err, sizeof err), "accepted: %.*s", (int)len, json);
    cr_assert(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    cr_assert_null(c.columns);
    cr_assert_null(c.table);
}

Test(w2j, malformed_input_is_rejected_with_a_reason)
{
    char *line = fixture_line("types.jsonl", 1);
    size_t len = strlen(line);
    for (size_t cut = 1; cut < len; cut += 7) /* every truncation: no crash, an error */
        assert_rejects(line, cut, "JSON");
    assert_rejects(line, 100, "truncated JSON");
    free(line);

    const char *unknown = "{\"action\":\"X\",\"xid\":1}";
    assert_rejects(unknown, strlen(unknown), "unknown action \"X\"");
    const char *no_action = "{\"xid\":1}";
    assert_rejects(no_action, strlen(no_action), "missing field \"action\"");
    const char *no_table = "{\"action\":\"I\",\"schema\":\"public\",\"columns\":[]}";
    assert_rejects(no_table, strlen(no_table), "missing field \"table\"");
    const char *no_cols = "{\"action\":\"I\",\"schema\":\"public\",\"table\":\"t\"}";
    assert_rejects(no_cols, strlen(no_cols), "missing field \"columns\"");
    const char *no_ident =
        "{\"action\":\"D\",\"schema\":\"public\",\"table\":\"t\",\"columns\":[]}";
    assert_rejects(no_ident, strlen(no_ident), "missing field \"identity\"");
    const char *bad_lsn = "{\"action\":\"B\",\"lsn\":\"zz\"}";
    assert_rejects(bad_lsn, strlen(bad_lsn), "not an LSN");
    const char *bad_xid = "{\"action\":\"B\",\"xid\":-4}";
    assert_rejects(bad_xid, strlen(bad_xid), "transaction id");
    const char *obj_value = "{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\","
                            "\"columns\":[{\"name\":\"a\",\"value\":1},{\"name\":\"b\","
                            "\"value\":{}}]}";
    assert_rejects(obj_value, strlen(obj_value), "unexpected JSON value type");
    const char *no_name = "{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\","
                          "\"columns\":[{\"value\":1}]}";
    assert_rejects(no_name, strlen(no_name), "missing \"name\"");
    const char *trailing = "{\"action\":\"B\"} x";
    assert_rejects(trailing, strlen(trailing), "after the JSON object");
    const char *array = "[1,2]";
    assert_rejects(array, strlen(array), "not a JSON object");
    assert_rejects("", 0, "empty message");
    const char *garbage = "{\"action\":\"B\",\x01}";
    assert_rejects(garbage, strlen(garbage), "invalid JSON at byte");
}

Test(w2j, numbers_inside_strings_are_untouched_and_length_is_respected)
{
    /* The message is not NUL-terminated within len: bytes after len are ignored. */
    const char *json = "{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
                       "[{\"name\":\"a\",\"value\":\"12 -3.5e7 \\\" 4\"},{\"name\":\"b\","
                       "\"value\":-1.25E+3}]}GARBAGE";
    size_t len = strlen(json) - strlen("GARBAGE");
    w2j_change c;
    char err[256];
    cr_assert(w2j_parse(json, len, &c, err, sizeof err), "%s", err);
    assert_value(&c, "a", "12 -3.5e7 \" 4");
    assert_value(&c, "b", "-1.25E+3");
    cr_assert_null(w2j_find_column(&c, "zz"));
    w2j_change_free(&c);
    /* After free the struct is reusable and empty. */
    cr_assert_eq(c.ncolumns, 0);
    cr_assert_null(c.columns);
}
