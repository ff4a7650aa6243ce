/*
 * test_keyset.c — the keyset merge (backfill/keyset.c): verdicts over two
 * ascending streams, composite and text keys in "C" order, multisets,
 * order violations, reader and sink failures.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "backfill/keyset.h"

/* An in-memory side: rows of "k1|k2|...#hash" strings. */
typedef struct array_side {
    const char *const *rows;
    size_t nrows;
    size_t pos;
    size_t nkey;
    char buf[256];
    bool fail_at_end; /* simulate a read failure after the last row */
} array_side;

static bool array_next(void *ctx, keyset_entry *out, bool *eof)
{
    array_side *a = ctx;
    if (a->pos >= a->nrows) {
        if (a->fail_at_end)
            return false;
        *eof = true;
        return true;
    }
    snprintf(a->buf, sizeof a->buf, "%s", a->rows[a->pos++]);
    char *hash = strchr(a->buf, '#');
    cr_assert_not_null(hash, "fixture row needs a #hash");
    *hash++ = '\0';
    out->hash = hash;
    out->hash_len = strlen(hash);
    char *p = a->buf;
    for (size_t i = 0; i < a->nkey; i++) {
        char *bar = strchr(p, '|');
        if (bar != NULL)
            *bar = '\0';
        out->key[i] = p;
        out->key_len[i] = strlen(p);
        p = bar != NULL ? bar + 1 : p + strlen(p);
    }
    return true;
}

/* Records verdicts as "M:key", "X:key", "S:key" (stale), "=:key". */
typedef struct recorder {
    const keyset_spec *spec;
    char log[4096];
    int fail_after; /* >0: the sink fails on that call */
    int calls;
} recorder;

static bool record_sink(void *ctx, keyset_verdict v, const keyset_entry *src,
                        const keyset_entry *tgt)
{
    recorder *r = ctx;
    r->calls++;
    if (r->fail_after > 0 && r->calls == r->fail_after)
        return false;
    static const char letters[] = {'=', 'M', 'X', 'S'};
    strbuf key;
    strbuf_init(&key);
    keyset_format_key(r->spec, src != NULL ? src : tgt, &key);
    size_t used = strlen(r->log);
    snprintf(r->log + used, sizeof r->log - used, "%s%c:%s", used ? " " : "", letters[v], key.data);
    strbuf_free(&key);
    return true;
}

typedef struct run_result {
    bool ok;
    keyset_counts counts;
    char err[256];
    recorder rec;
} run_result;

static void run(const keyset_spec *spec, const char *const *src_rows, size_t nsrc,
                const char *const *tgt_rows, size_t ntgt, run_result *res)
{
    array_side s = {.rows = src_rows, .nrows = nsrc, .nkey = spec->nkey};
    array_side t = {.rows = tgt_rows, .nrows = ntgt, .nkey = spec->nkey};
    keyset_reader rs = {array_next, &s, "source"};
    keyset_reader rt = {array_next, &t, "target"};
    if (res->rec.spec == NULL)
        res->rec.spec = spec;
    res->ok = keyset_merge(spec, &rs, &rt, record_sink, &res->rec, &res->counts, res->err,
                           sizeof res->err);
}

static const keyset_key_type INT1[] = {KEYSET_KEY_INT};
static const keyset_key_type TEXT1[] = {KEYSET_KEY_TEXT};
static const keyset_key_type INT_TEXT[] = {KEYSET_KEY_INT, KEYSET_KEY_TEXT};

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(keyset, both_empty)
{
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, NULL, 0, NULL, 0, &r);
    cr_assert(r.ok);
    cr_assert_eq(r.counts.source_rows, 0);
    cr_assert_eq(r.counts.target_rows, 0);
    cr_assert_str_eq(r.rec.log, "");
}

Test(keyset, empty_target_everything_missing)
{
    static const char *const src[] = {"1#a", "2#b", "3#c"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), NULL, 0, &r);
    cr_assert(r.ok);
    cr_assert_str_eq(r.rec.log, "M:1 M:2 M:3");
    cr_assert_eq(r.counts.missing, 3);
    cr_assert_eq(r.counts.source_rows, 3);
    cr_assert_eq(r.counts.target_rows, 0);
}

Test(keyset, empty_source_everything_extra)
{
    static const char *const tgt[] = {"5#a", "6#b"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, NULL, 0, tgt, N(tgt), &r);
    cr_assert(r.ok);
    cr_assert_str_eq(r.rec.log, "X:5 X:6");
    cr_assert_eq(r.counts.extra, 2);
}

Test(keyset, identical_sides)
{
    static const char *const rows[] = {"1#a", "2#b", "10#c"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, rows, N(rows), rows, N(rows), &r);
    cr_assert(r.ok);
    cr_assert_eq(r.counts.same, 3);
    cr_assert_eq(r.counts.missing + r.counts.extra + r.counts.stale, 0);
}

Test(keyset, scattered_missing_extra_stale)
{
    static const char *const src[] = {"1#a", "2#b", "4#d", "5#e", "7#g", "9#i"};
    static const char *const tgt[] = {"2#b", "3#c", "4#D", "5#e", "8#h", "9#i", "11#k"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), tgt, N(tgt), &r);
    cr_assert(r.ok, "%s", r.err);
    cr_assert_str_eq(r.rec.log, "M:1 =:2 X:3 S:4 =:5 M:7 X:8 =:9 X:11");
    cr_assert_eq(r.counts.missing, 2);
    cr_assert_eq(r.counts.extra, 3);
    cr_assert_eq(r.counts.stale, 1);
    cr_assert_eq(r.counts.same, 3);
    cr_assert_eq(r.counts.source_rows, 6);
    cr_assert_eq(r.counts.target_rows, 7);
}

Test(keyset, integers_compare_numerically_not_as_text)
{
    /* As text "10" < "9"; numerically 9 < 10 — the merge must use numbers. */
    static const char *const src[] = {"-5#a", "9#b", "10#c", "100#d"};
    static const char *const tgt[] = {"-5#a", "10#c"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), tgt, N(tgt), &r);
    cr_assert(r.ok, "%s", r.err);
    cr_assert_str_eq(r.rec.log, "=:-5 M:9 =:10 M:100");
}

Test(keyset, int64_extremes)
{
    static const char *const src[] = {"-9223372036854775808#a", "9007199254740993#b",
                                      "9223372036854775807#c"};
    static const char *const tgt[] = {"9007199254740992#x", "9223372036854775807#c"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), tgt, N(tgt), &r);
    cr_assert(r.ok, "%s", r.err);
    cr_assert_str_eq(r.rec.log, "M:-9223372036854775808 X:9007199254740992 M:9007199254740993 "
                                "=:9223372036854775807");
}

Test(keyset, text_keys_bytewise_c_collation)
{
    /* "C" order: uppercase before lowercase, prefix first, UTF-8 bytes after ASCII. */
    static const char *const src[] = {"B#1", "a#2", "ab#3", "b#4", "\xc3\xa9t\xc3\xa9#5"};
    static const char *const tgt[] = {"a#2", "abc#9", "b#4", "\xc3\xa9t\xc3\xa9#6"};
    keyset_spec spec = {TEXT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), tgt, N(tgt), &r);
    cr_assert(r.ok, "%s", r.err);
    cr_assert_str_eq(r.rec.log, "M:B =:a M:ab X:abc =:b S:\xc3\xa9t\xc3\xa9");
}

Test(keyset, composite_int_text_keys)
{
    static const char *const src[] = {"1|red#a", "1|zz#b", "2|blue#c", "10|a#d"};
    static const char *const tgt[] = {"1|red#a", "2|blue#C", "2|green#e", "10|a#d"};
    keyset_spec spec = {INT_TEXT, 2, false};
    run_result r = {0};
    run(&spec, src, N(src), tgt, N(tgt), &r);
    cr_assert(r.ok, "%s", r.err);
    cr_assert_str_eq(r.rec.log, "=:(1,red) M:(1,zz) S:(2,blue) X:(2,green) =:(10,a)");
}

Test(keyset, multiset_surplus_counts)
{
    /* Keyless table: key = row hash; three copies in the source, one in the target. */
    static const char *const src[] = {"aa#", "bb#", "bb#", "bb#", "cc#"};
    static const char *const tgt[] = {"bb#", "cc#", "cc#", "dd#"};
    keyset_spec spec = {TEXT1, 1, true};
    run_result r = {0};
    run(&spec, src, N(src), tgt, N(tgt), &r);
    cr_assert(r.ok, "%s", r.err);
    cr_assert_str_eq(r.rec.log, "M:aa =:bb M:bb M:bb =:cc X:cc X:dd");
    cr_assert_eq(r.counts.missing, 3);
    cr_assert_eq(r.counts.extra, 2);
    cr_assert_eq(r.counts.same, 2);
}

Test(keyset, duplicate_key_refused_for_keyed_table)
{
    static const char *const src[] = {"1#a", "2#b", "2#b"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), NULL, 0, &r);
    cr_assert_not(r.ok);
    cr_assert(strstr(r.err, "source holds key 2 twice (duplicate key)") != NULL, "%s", r.err);
}

Test(keyset, descending_input_refused_with_key)
{
    static const char *const tgt[] = {"1#a", "3#b", "2#c"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, NULL, 0, tgt, N(tgt), &r);
    cr_assert_not(r.ok);
    cr_assert(strstr(r.err, "target keys are not in ascending order at key 2") != NULL, "%s",
              r.err);
}

Test(keyset, non_integer_key_refused)
{
    static const char *const src[] = {"1#a", "1.5#b"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    run(&spec, src, N(src), NULL, 0, &r);
    cr_assert_not(r.ok);
    cr_assert(strstr(r.err, "not an integer") != NULL, "%s", r.err);
}

Test(keyset, reader_failure_propagates)
{
    static const char *const src[] = {"1#a"};
    keyset_spec spec = {INT1, 1, false};
    array_side s = {.rows = src, .nrows = 1, .nkey = 1, .fail_at_end = true};
    array_side t = {.rows = NULL, .nrows = 0, .nkey = 1};
    keyset_reader rs = {array_next, &s, "source"};
    keyset_reader rt = {array_next, &t, "target"};
    recorder rec = {.spec = &spec};
    keyset_counts counts;
    char err[128];
    cr_assert_not(keyset_merge(&spec, &rs, &rt, record_sink, &rec, &counts, err, sizeof err));
    cr_assert(strstr(err, "source") != NULL, "%s", err);
}

Test(keyset, sink_failure_stops_merge)
{
    static const char *const src[] = {"1#a", "2#b", "3#c"};
    keyset_spec spec = {INT1, 1, false};
    run_result r = {0};
    r.rec.fail_after = 2;
    run(&spec, src, N(src), NULL, 0, &r);
    cr_assert_not(r.ok);
    cr_assert_str_eq(r.rec.log, "M:1");
    cr_assert_eq(r.counts.missing, 1);
}

Test(keyset, parse_int_strict)
{
    int64_t v = 0;
    cr_assert(keyset_parse_int("42", 2, &v));
    cr_assert_eq(v, 42);
    cr_assert(keyset_parse_int("-7", 2, &v));
    cr_assert_eq(v, -7);
    cr_assert_not(keyset_parse_int("", 0, &v));
    cr_assert_not(keyset_parse_int("-", 1, &v));
    cr_assert_not(keyset_parse_int("12a", 3, &v));
    cr_assert_not(keyset_parse_int(" 1", 2, &v));
    cr_assert_not(keyset_parse_int("9223372036854775808", 19, &v));
}
