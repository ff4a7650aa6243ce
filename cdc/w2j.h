/*
 * w2j.h — one wal2json format-version 2 message, parsed.
 *
 * The replication stream carries one JSON object per message ("action":
 * B, C, I, U, D, T, M).  w2j_parse keeps the exact text of every value:
 * bare JSON numbers (bigint past 2^53, numeric(30,10)) are captured as their
 * literal text before cJSON could turn them into doubles; strings are
 * unescaped (UTF-8); true/false become "true"/"false"; JSON null is NULL.
 *
 * Ownership: a w2j_change owns all its strings: they live in its arena (one
 * allocation per message) and must not be freed one by one; w2j_change_free
 * releases them and leaves the struct reusable (w2j_change_init state).
 */
#ifndef WALBRIDGE_W2J_H
#define WALBRIDGE_W2J_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/lsn.h"

typedef enum w2j_action {
    W2J_BEGIN = 'B',
    W2J_COMMIT = 'C',
    W2J_INSERT = 'I',
    W2J_UPDATE = 'U',
    W2J_DELETE = 'D',
    W2J_TRUNCATE = 'T',
    W2J_MESSAGE = 'M'
} w2j_action;

typedef struct w2j_value {
    char *name;
    char *text; /* exact value text; NULL for SQL NULL */
    size_t len;
} w2j_value;

typedef struct w2j_change {
    w2j_action action;
    uint32_t xid;    /* include-xids; 0 when absent */
    wb_lsn lsn;      /* "lsn" (include-lsn), LSN_INVALID when absent */
    wb_lsn nextlsn;  /* "nextlsn" on B/C, LSN_INVALID when absent */
    char *timestamp; /* "timestamp" when present (include-timestamp) */
    char *schema;    /* I/U/D/T/M(transactional prefix n/a): relation */
    char *table;
    w2j_value *columns; /* I, U: new values present in the message (unchanged TOAST absent) */
    size_t ncolumns;
    w2j_value *identity; /* U, D: old key (DEFAULT) or old row (FULL) */
    size_t nidentity;
    bool transactional; /* M */
    char *prefix;       /* M */
    char *content;      /* M */
    char *arena;        /* private: holds every string above and in columns/identity */
} w2j_change;

void w2j_change_init(w2j_change *c);
void w2j_change_free(w2j_change *c);
/*
 * The commit position of a B or C message: its end ("nextlsn"), else its "lsn".
 * A transaction is applied once the stream's applied LSN reaches this.
 */
wb_lsn w2j_commit_position(const w2j_change *c);
/*
 * Parses one message (len bytes, not necessarily NUL-terminated).  On failure
 * returns false with a reason in err (e.g. "truncated JSON at byte 812",
 * "unknown action \"X\"") and leaves *out empty.
 */
bool w2j_parse(const char *json, size_t len, w2j_change *out, char *err, size_t errlen);

/* Value lookup by column name in columns / identity; NULL if absent. */
const w2j_value *w2j_find_column(const w2j_change *c, const char *name);
const w2j_value *w2j_find_identity(const w2j_change *c, const char *name);

#endif
