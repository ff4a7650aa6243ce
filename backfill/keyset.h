/*
 * keyset.h — the merge at the heart of backfill and verify: two streams of
 * (key, row hash) entries, each in ascending key order, merged into
 * "missing" (key only in the source), "extra" (only in the target), "stale"
 * (key on both sides, hash differs) and "same".
 *
 * Pure logic, no I/O: the caller supplies one reader per side (a function
 * that yields the next entry) and a sink that receives every verdict.  The
 * merge holds exactly one entry per side plus a copy of the previous key of
 * each side (to prove the input really is ascending), so memory does not
 * depend on the table size.
 *
 * Keys are composite tuples of up to KEYSET_MAX_KEY columns.  Each column is
 * compared either as a signed 64-bit integer (KEYSET_KEY_INT) or bytewise as
 * in PostgreSQL's "C" collation (KEYSET_KEY_TEXT, a shorter prefix sorts
 * first).  Both SQL sides must ORDER BY the same way: integers numerically,
 * everything else as text COLLATE "C".
 *
 * Multisets (keyless tables): the key is the row hash itself and duplicates
 * are allowed (allow_duplicates).  Equal keys pair up one to one, so the
 * surplus of a hash on the source side comes out as that many "missing"
 * verdicts and a surplus on the target side as that many "extra".
 */
#ifndef WALBRIDGE_KEYSET_H
#define WALBRIDGE_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/strbuf.h"

#define KEYSET_MAX_KEY 8

typedef enum keyset_key_type { KEYSET_KEY_INT = 0, KEYSET_KEY_TEXT } keyset_key_type;

typedef enum keyset_verdict {
    KEYSET_SAME = 0, /* both sides, equal hash */
    KEYSET_MISSING,  /* source only: src set, tgt NULL */
    KEYSET_EXTRA,    /* target only: tgt set, src NULL */
    KEYSET_STALE     /* both sides, hash differs */
} keyset_verdict;

/*
 * One entry.  The reader fills key/key_len (nkey columns) and hash/hash_len;
 * the strings are borrowed from the reader and must stay valid until its next
 * call.  key_int is filled by the merge for KEYSET_KEY_INT columns.  row and
 * nrow are free for the reader's use (e.g. the whole COPY line's fields) and
 * are passed through to the sink untouched.
 */
typedef struct keyset_entry {
    const char *key[KEYSET_MAX_KEY];
    size_t key_len[KEYSET_MAX_KEY];
    int64_t key_int[KEYSET_MAX_KEY];
    const char *hash;
    size_t hash_len;
    char **row;
    size_t *row_len;
    int nrow;
} keyset_entry;

/*
 * Yields the next entry into *out; sets *eof (and returns true) at the end.
 * Returns false on a read failure (the reader logs it once).
 */
typedef bool (*keyset_next_fn)(void *ctx, keyset_entry *out, bool *eof);

typedef struct keyset_reader {
    keyset_next_fn next;
    void *ctx;
    const char *what; /* "source" or "target", used in messages */
} keyset_reader;

/*
 * Receives one verdict.  src is NULL for KEYSET_EXTRA, tgt NULL for
 * KEYSET_MISSING.  Returning false stops the merge (the sink logs why).
 */
typedef bool (*keyset_sink_fn)(void *ctx, keyset_verdict verdict, const keyset_entry *src,
                               const keyset_entry *tgt);

typedef struct keyset_spec {
    const keyset_key_type *types; /* nkey entries */
    size_t nkey;                  /* 1..KEYSET_MAX_KEY */
    bool allow_duplicates;        /* multiset (keyless tables) */
} keyset_spec;

typedef struct keyset_counts {
    uint64_t source_rows, target_rows;
    uint64_t same, missing, extra, stale;
} keyset_counts;

/*
 * Runs the merge to the end of both streams.  Returns false when a reader or
 * the sink fails, or when an input is not in ascending order or an integer
 * key does not parse (both logged with the offending key and side; *err
 * receives the same one-line reason).  *counts is zeroed first and always
 * reflects what was merged.
 */
bool keyset_merge(const keyset_spec *spec, const keyset_reader *src, const keyset_reader *tgt,
                  keyset_sink_fn sink, void *sink_ctx, keyset_counts *counts, char *err,
                  size_t errlen);

/*
 * Compares the keys of two entries (key_int must be filled for INT columns):
 * <0, 0, >0.  Pure.
 */
int keyset_compare(const keyset_spec *spec, const keyset_entry *a, const keyset_entry *b);

/* Strict signed decimal parse of an integer key; false on anything else. */
bool keyset_parse_int(const char *text, size_t len, int64_t *out);

/* Appends the key as text for messages: "42" or "(7,foo)". */
void keyset_format_key(const keyset_spec *spec, const keyset_entry *e, strbuf *out);

#endif
