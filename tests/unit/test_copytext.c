/*
 * test_copytext.c — unit tests for the COPY text codec (common/copytext.c):
 * the exact escaping COPY FROM expects, splitting COPY TO lines (NULL, empty,
 * every escape form PostgreSQL accepts), errors, and a byte-level round trip.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/copytext.h"

static void check_escape(const char *value, size_t len, const char *expected)
{
    strbuf sb;
    strbuf_init(&sb);
    copytext_escape(&sb, value, len);
    cr_assert_str_eq(sb.data, expected);
    strbuf_free(&sb);
}

Test(copytext, escape_specials)
{
    check_escape("plain text", 10, "plain text");
    check_escape("", 0, "");
    check_escape(NULL, 0, "\\N");
    check_escape("\\N", 2, "\\\\N"); /* the text \N is not NULL */
    check_escape("a\tb\nc\rd\\e", 9, "a\\tb\\nc\\rd\\\\e");
    check_escape("\b\f\v", 3, "\\b\\f\\v");
    check_escape("caf\xc3\xa9 \x01", 7, "caf\xc3\xa9 \x01");
}

Test(copytext, escape_appends)
{
    strbuf sb;
    strbuf_init(&sb);
    copytext_escape(&sb, "1", 1);
    strbuf_append_char(&sb, '\t');
    copytext_escape(&sb, NULL, 0);
    strbuf_append_char(&sb, '\t');
    copytext_escape(&sb, "x\ty", 3);
    cr_assert_str_eq(sb.data, "1\t\\N\tx\\ty");
    strbuf_free(&sb);
}

Test(copytext, split_fields_null_and_empty)
{
    char line[] = "42\t\\N\t\thello world\t";
    char *f[8];
    size_t l[8];
    int n = copytext_split(line, strlen(line), f, l, 8);
    cr_assert_eq(n, 5);
    cr_assert_eq(l[0], 2);
    cr_assert_eq(memcmp(f[0], "42", 2), 0);
    cr_assert_null(f[1]);
    cr_assert_not_null(f[2]);
    cr_assert_eq(l[2], 0);
    cr_assert_eq(l[3], 11);
    cr_assert_eq(memcmp(f[3], "hello world", 11), 0);
    cr_assert_not_null(f[4]);
    cr_assert_eq(l[4], 0);
}

Test(copytext, split_empty_line_is_one_empty_field)
{
    char line[] = "";
    char *f[2];
    size_t l[2];
    cr_assert_eq(copytext_split(line, 0, f, l, 2), 1);
    cr_assert_not_null(f[0]);
    cr_assert_eq(l[0], 0);
}

Test(copytext, split_unescapes_every_form)
{
    /* \b \f \n \r \t \v \\, octal, hex, "\q" -> q, escaped \N is text. */
    char line[] = "a\\bb\\f\\n\\r\\t\\v\\\\z\t\\101\\1\\0101\t\\x41\\x4g\\xz\t\\q\\\\N\t\\\\N";
    char *f[8];
    size_t l[8];
    int n = copytext_split(line, strlen(line), f, l, 8);
    cr_assert_eq(n, 5);
    cr_assert_eq(l[0], 10);
    cr_assert_eq(memcmp(f[0], "a\bb\f\n\r\t\v\\z", 10), 0);
    cr_assert_eq(l[1], 4);
    cr_assert_eq(memcmp(f[1], "A\001\0101", 4), 0);
    cr_assert_eq(l[2], 5);
    cr_assert_eq(memcmp(f[2], "A\004gxz", 5), 0, "got %.*s", (int)l[2], f[2]);
    cr_assert_eq(l[3], 3);
    cr_assert_eq(memcmp(f[3], "q\\N", 3), 0);
    cr_assert_not_null(f[4]);
    cr_assert_eq(l[4], 2);
    cr_assert_eq(memcmp(f[4], "\\N", 2), 0);
}

Test(copytext, split_backslash_protects_a_raw_tab)
{
    char line[] = "a\\\tb\tc";
    char *f[4];
    size_t l[4];
    cr_assert_eq(copytext_split(line, strlen(line), f, l, 4), 2);
    cr_assert_eq(l[0], 3);
    cr_assert_eq(memcmp(f[0], "a\tb", 3), 0);
    cr_assert_eq(l[1], 1);
}

Test(copytext, split_errors)
{
    char *f[2];
    size_t l[2];
    char three[] = "a\tb\tc";
    cr_assert_eq(copytext_split(three, strlen(three), f, l, 2), -1);
    char trailing[] = "a\tb\\";
    cr_assert_eq(copytext_split(trailing, strlen(trailing), f, l, 2), -1);
}

Test(copytext, split_respects_len_not_nul)
{
    char line[] = "ab\tcd\tEXTRA";
    char *f[4];
    size_t l[4];
    cr_assert_eq(copytext_split(line, 5, f, l, 4), 2);
    cr_assert_eq(l[1], 2);
    cr_assert_eq(memcmp(f[1], "cd", 2), 0);
}

Test(copytext, round_trip_every_byte)
{
    char value[255];
    for (int i = 0; i < 255; i++)
        value[i] = (char)(i + 1); /* 0x01..0xFF; COPY text cannot carry NUL */
    strbuf sb;
    strbuf_init(&sb);
    copytext_escape(&sb, value, sizeof value);
    strbuf_append_char(&sb, '\t');
    copytext_escape(&sb, NULL, 0);
    strbuf_append_char(&sb, '\t');
    copytext_escape(&sb, "\\N", 2);
    cr_assert_null(memchr(sb.data, '\n', sb.len), "escaped text must be one line");
    char *f[4];
    size_t l[4];
    int n = copytext_split(sb.data, sb.len, f, l, 4);
    cr_assert_eq(n, 3);
    cr_assert_eq(l[0], sizeof value);
    cr_assert_eq(memcmp(f[0], value, sizeof value), 0);
    cr_assert_null(f[1]);
    cr_assert_eq(l[2], 2);
    cr_assert_eq(memcmp(f[2], "\\N", 2), 0);
    strbuf_free(&sb);
}
