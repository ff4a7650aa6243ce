/*
 * keyset.c — merge of two ascending (key, hash) streams into missing /
 * extra / stale / same verdicts (see keyset.h).  Pure: no I/O, no globals.
 *
 * Besides the current entry of each side, the merge keeps a copy of the
 * previous key of each side (prev_key) and refuses input that goes
 * backwards: a collation mismatch between the two SQL sides would otherwise
 * turn into a flood of bogus missing/extra rows, silently.
 */
#include "backfill/keyset.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* A saved copy of one key (the previous key seen on one side). */
typedef struct prev_key {
    bool valid;
    strbuf text;                /* the key columns' bytes, back to back */
    size_t len[KEYSET_MAX_KEY]; /* length of each column inside text */
    int64_t ints[KEYSET_MAX_KEY];
} prev_key;

bool keyset_parse_int(const char *text, size_t len, int64_t *out)
{
    char buf[32];
    if (text == NULL || len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    size_t start = (buf[0] == '-' || buf[0] == '+') ? 1 : 0;
    if (buf[start] == '\0')
        return false;
    for (size_t i = start; i < len; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return false;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static int compare_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    if (alen == blen)
        return 0;
    return alen < blen ? -1 : 1;
}

int keyset_compare(const keyset_spec *spec, const keyset_entry *a, const keyset_entry *b)
{
    for (size_t i = 0; i < spec->nkey; i++) {
        int c;
        if (spec->types[i] == KEYSET_KEY_INT)
            c = a->key_int[i] < b->key_int[i] ? -1 : (a->key_int[i] > b->key_int[i] ? 1 : 0);
        else
            c = compare_bytes(a->key[i], a->key_len[i], b->key[i], b->key_len[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

void keyset_format_key(const keyset_spec *spec, const keyset_entry *e, strbuf *out)
{
    if (spec->nkey > 1)
        strbuf_append_char(out, '(');
    for (size_t i = 0; i < spec->nkey; i++) {
        if (i > 0)
            strbuf_append_char(out, ',');
        if (e->key[i] == NULL)
            strbuf_append(out, "NULL");
        else
            strbuf_append_len(out, e->key[i], e->key_len[i]);
    }
    if (spec->nkey > 1)
        strbuf_append_char(out, ')');
}

/* Compares an entry with the saved previous key of its side. */
static int compare_with_prev(const keyset_spec *spec, const prev_key *prev, const keyset_entry *e)
{
    keyset_entry saved;
    memset(&saved, 0, sizeof saved);
    size_t off = 0;
    for (size_t i = 0; i < spec->nkey; i++) {
        saved.key[i] = prev->text.data + off;
        saved.key_len[i] = prev->len[i];
        saved.key_int[i] = prev->ints[i];
        off += prev->len[i];
    }
    return keyset_compare(spec, &saved, e);
}

static void save_prev(const keyset_spec *spec, prev_key *prev, const keyset_entry *e)
{
    strbuf_reset(&prev->text);
    for (size_t i = 0; i < spec->nkey; i++) {
        strbuf_append_len(&prev->text, e->key[i], e->key_len[i]);
        prev->len[i] = e->key_len[i];
        prev->ints[i] = e->key_int[i];
    }
    prev->valid = true;
}

/* Per-side state of the merge. */
typedef struct side {
    const keyset_reader *reader;
    keyset_entry entry;
    bool have; /* entry holds a row */
    prev_key prev;
} side;

/*
 * Reads the next entry of one side, parses its integer keys and checks the
 * order against the previous key.
 */
static bool side_advance(const keyset_spec *spec, side *s, char *err, size_t errlen)
{
    bool eof = false;
    if (s->have)
        save_prev(spec, &s->prev, &s->entry);
    memset(&s->entry, 0, sizeof s->entry);
    s->have = false;
    if (!s->reader->next(s->reader->ctx, &s->entry, &eof)) {
        snprintf(err, errlen, "reading the %s keys failed", s->reader->what);
        return false;
    }
    if (eof)
        return true;
    for (size_t i = 0; i < spec->nkey; i++) {
        if (s->entry.key[i] == NULL) {
            snprintf(err, errlen, "%s key column %zu is NULL", s->reader->what, i + 1);
            log_error("keyset: %s", err);
            return false;
        }
        if (spec->types[i] == KEYSET_KEY_INT &&
            !keyset_parse_int(s->entry.key[i], s->entry.key_len[i], &s->entry.key_int[i])) {
            snprintf(err, errlen, "%s key \"%.*s\" is not an integer", s->reader->what,
                     (int)(s->entry.key_len[i] > 40 ? 40 : s->entry.key_len[i]), s->entry.key[i]);
            log_error("keyset: %s", err);
            return false;
        }
    }
    if (s->prev.valid) {
        int c = compare_with_prev(spec, &s->prev, &s->entry);
        if (c > 0 || (c == 0 && !spec->allow_duplicates)) {
            strbuf key;
            strbuf_init(&key);
            keyset_format_key(spec, &s->entry, &key);
            if (c == 0)
                snprintf(err, errlen, "%s holds key %s twice (duplicate key)", s->reader->what,
                         key.data);
            else
                snprintf(err, errlen, "%s keys are not in ascending order at key %s",
                         s->reader->what, key.data);
            log_full(LOG_ERROR, NULL,
                     c == 0 ? "Two rows with one key: remove the extra row (the table lacks a "
                              "unique index on its key, or it is deferred by backfill "
                              "--defer-indexes)."
                            : "Both sides must sort integers numerically and text in \"C\" "
                              "collation.",
                     "keyset: %s", err);
            strbuf_free(&key);
            return false;
        }
    }
    s->have = true;
    return true;
}

static bool hashes_equal(const keyset_entry *a, const keyset_entry *b)
{
    if (a->hash == NULL || b->hash == NULL)
        return a->hash == b->hash;
    return a->hash_len == b->hash_len && memcmp(a->hash, b->hash, a->hash_len) == 0;
}

static bool merge_loop(const keyset_spec *spec, side *src, side *tgt, keyset_sink_fn sink,
                       void *sink_ctx, keyset_counts *counts, char *err, size_t errlen)
{
    if (!side_advance(spec, src, err, errlen) || !side_advance(spec, tgt, err, errlen))
        return false;
    while (src->have || tgt->have) {
        int c;
        if (!src->have)
            c = 1;
        else if (!tgt->have)
            c = -1;
        else
            c = keyset_compare(spec, &src->entry, &tgt->entry);

        keyset_verdict verdict;
        if (c < 0)
            verdict = KEYSET_MISSING;
        else if (c > 0)
            verdict = KEYSET_EXTRA;
        else
            verdict = hashes_equal(&src->entry, &tgt->entry) ? KEYSET_SAME : KEYSET_STALE;

        const keyset_entry *s_entry = c <= 0 ? &src->entry : NULL;
        const keyset_entry *t_entry = c >= 0 ? &tgt->entry : NULL;
        if (!sink(sink_ctx, verdict, s_entry, t_entry)) {
            snprintf(err, errlen, "stopped while handling a %s row",
                     verdict == KEYSET_MISSING ? "missing"
                     : verdict == KEYSET_EXTRA ? "extra"
                                               : "matching");
            return false;
        }
        switch (verdict) {
        case KEYSET_MISSING:
            counts->missing++;
            break;
        case KEYSET_EXTRA:
            counts->extra++;
            break;
        case KEYSET_STALE:
            counts->stale++;
            break;
        case KEYSET_SAME:
            counts->same++;
            break;
        }
        if (c <= 0) {
            counts->source_rows++;
            if (!side_advance(spec, src, err, errlen))
                return false;
        }
        if (c >= 0) {
            counts->target_rows++;
            if (!side_advance(spec, tgt, err, errlen))
                return false;
        }
    }
    return true;
}

bool keyset_merge(const keyset_spec *spec, const keyset_reader *src_reader,
                  const keyset_reader *tgt_reader, keyset_sink_fn sink, void *sink_ctx,
                  keyset_counts *counts, char *err, size_t errlen)
{
    memset(counts, 0, sizeof *counts);
    if (errlen > 0)
        err[0] = '\0';
    if (spec->nkey == 0 || spec->nkey > KEYSET_MAX_KEY) {
        snprintf(err, errlen, "key has %zu columns (1..%d supported)", spec->nkey, KEYSET_MAX_KEY);
        log_error("keyset: %s", err);
        return false;
    }
    side src, tgt;
    memset(&src, 0, sizeof src);
    memset(&tgt, 0, sizeof tgt);
    src.reader = src_reader;
    tgt.reader = tgt_reader;
    strbuf_init(&src.prev.text);
    strbuf_init(&tgt.prev.text);

    bool ok = merge_loop(spec, &src, &tgt, sink, sink_ctx, counts, err, errlen);

    strbuf_free(&src.prev.text);
    strbuf_free(&tgt.prev.text);
    return ok;
}
