/*
 * test_strbuf.c — unit tests for the growable string buffer, file reading and
 * hex digit helpers (common/strbuf.c).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

Test(strbuf, init_is_empty_string)
{
    strbuf sb;
    strbuf_init(&sb);
    cr_assert_not_null(sb.data);
    cr_assert_str_eq(sb.data, "");
    cr_assert_eq(sb.len, 0);
    strbuf_free(&sb);
}

Test(strbuf, append_and_char)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_append(&sb, "hello");
    strbuf_append_char(&sb, ' ');
    strbuf_append_len(&sb, "worldXXX", 5);
    cr_assert_str_eq(sb.data, "hello world");
    cr_assert_eq(sb.len, 11);
    strbuf_free(&sb);
}

Test(strbuf, append_len_keeps_embedded_nul)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_append_len(&sb, "a\0b", 3);
    cr_assert_eq(sb.len, 3);
    cr_assert_eq(memcmp(sb.data, "a\0b", 4), 0);
    strbuf_free(&sb);
}

Test(strbuf, grows_past_many_reallocations)
{
    strbuf sb;
    strbuf_init(&sb);
    for (int i = 0; i < 100000; i++)
        strbuf_append_char(&sb, (char)('a' + i % 26));
    cr_assert_eq(sb.len, 100000);
    cr_assert_eq(strlen(sb.data), 100000);
    cr_assert_eq(sb.data[26], 'a');
    cr_assert_eq(sb.data[99999], (char)('a' + 99999 % 26));
    strbuf_free(&sb);
}

Test(strbuf, appendf_short_and_long)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_appendf(&sb, "%d/%s", 42, "x");
    cr_assert_str_eq(sb.data, "42/x");
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    strbuf_appendf(&sb, "[%s]", big);
    cr_assert_eq(sb.len, 4 + 2 + 999);
    cr_assert_eq(sb.data[5], 'z');
    cr_assert_eq(sb.data[sb.len - 1], ']');
    cr_assert_eq(strlen(sb.data), sb.len);
    strbuf_free(&sb);
}

Test(strbuf, reset_keeps_usable)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_reset(&sb); /* reset of a never-used buffer is fine */
    strbuf_append(&sb, "abc");
    strbuf_reset(&sb);
    cr_assert_str_eq(sb.data, "");
    cr_assert_eq(sb.len, 0);
    strbuf_append(&sb, "de");
    cr_assert_str_eq(sb.data, "de");
    strbuf_free(&sb);
}

Test(strbuf, detach_transfers_ownership)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_append(&sb, "owned");
    char *s = strbuf_detach(&sb);
    cr_assert_str_eq(s, "owned");
    cr_assert_str_eq(sb.data, "");
    cr_assert_eq(sb.len, 0);
    strbuf_append(&sb, "again");
    cr_assert_str_eq(sb.data, "again");
    cr_assert_str_eq(s, "owned");
    free(s);
    strbuf_free(&sb);
}

Test(strbuf, detach_of_empty_is_freeable)
{
    strbuf sb;
    strbuf_init(&sb);
    char *s = strbuf_detach(&sb);
    cr_assert_str_eq(s, "");
    free(s);
    /* No strbuf_free: a detached, untouched buffer holds no memory. */
}

Test(strbuf, xstrndup_stops_at_n_or_nul)
{
    char *a = wb_xstrndup("abcdef", 3);
    char *b = wb_xstrndup("ab", 10);
    char *c = wb_xstrdup("xyz");
    cr_assert_str_eq(a, "abc");
    cr_assert_str_eq(b, "ab");
    cr_assert_str_eq(c, "xyz");
    free(a);
    free(b);
    free(c);
}

Test(strbuf, append_file_reads_all_after_existing_text)
{
    /* Larger than the 8 KiB read chunk, with a NUL inside, to see every chunk kept. */
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    for (int i = 0; i < 3000; i++)
        fputs("0123456789", f);
    fputc('\0', f);
    fputs("end", f);
    rewind(f);
    strbuf sb;
    strbuf_init(&sb);
    strbuf_append(&sb, "head:");
    cr_assert(strbuf_append_file(&sb, f));
    fclose(f);
    cr_assert_eq(sb.len, 5 + 30000 + 1 + 3);
    cr_assert_eq(memcmp(sb.data, "head:0123456789", 15), 0);
    cr_assert_eq(memcmp(sb.data + sb.len - 4, "\0end", 5), 0);
    strbuf_free(&sb);
}

Test(strbuf, append_file_reports_read_error)
{
    /* A directory opens for reading on Linux but every read fails (EISDIR). */
    FILE *f = fopen("/", "rb");
    cr_assert_not_null(f);
    strbuf sb;
    strbuf_init(&sb);
    cr_assert_not(strbuf_append_file(&sb, f));
    fclose(f);
    cr_assert_eq(sb.len, 0);
    strbuf_free(&sb);
}

Test(strbuf, hex_digit_value)
{
    cr_assert_eq(wb_hex_digit_value('0'), 0);
    cr_assert_eq(wb_hex_digit_value('9'), 9);
    cr_assert_eq(wb_hex_digit_value('a'), 10);
    cr_assert_eq(wb_hex_digit_value('f'), 15);
    cr_assert_eq(wb_hex_digit_value('A'), 10);
    cr_assert_eq(wb_hex_digit_value('F'), 15);
    cr_assert_eq(wb_hex_digit_value('g'), -1);
    cr_assert_eq(wb_hex_digit_value('G'), -1);
    cr_assert_eq(wb_hex_digit_value('/'), -1);
    cr_assert_eq(wb_hex_digit_value(':'), -1);
    cr_assert_eq(wb_hex_digit_value('\0'), -1);
}
