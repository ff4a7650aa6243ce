/*
 * w2j.c — parses one wal2json format-version 2 message into a w2j_change,
 * keeping the exact text of every value (see w2j.h).
 *
 * A purpose-built single-pass JSON reader, because it sits on the stream's hot
 * path (one message per row) and because a general JSON library stores a
 * number only as a double, which would silently change a bigint above 2^53 or
 * a numeric(30,10).  Here a number is kept as its literal text.  Strings are
 * unescaped (\uXXXX and surrogate pairs to UTF-8) into one arena allocated per
 * message; every string of the change points into it, so a message costs a
 * handful of allocations instead of several per column.  wal2json writes
 * numeric NaN and float Infinity/-Infinity as JSON null: they arrive as SQL
 * NULL and cannot be told apart from it (wal2json 2.5 limitation).
 *
 * Syntax is checked over the whole message first (RFC 8259 grammar; nesting
 * at most W2J_MAX_DEPTH; "\u0000" refused, since no PostgreSQL text value
 * holds a NUL); only then are the fields checked, in a fixed order, so a
 * message gets the same reason whatever order its members come in.  For a
 * duplicated member the first one counts.  Every failure (invalid or
 * truncated JSON, unknown action, missing or mistyped field) returns false
 * with a one-line reason; nothing crashes and *out is left empty.
 */
#include "cdc/w2j.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

#define W2J_MAX_DEPTH 1000
#define W2J_LIST_ERROR_MAX 200

void w2j_change_init(w2j_change *c)
{
    memset(c, 0, sizeof *c);
    c->lsn = LSN_INVALID;
    c->nextlsn = LSN_INVALID;
}

wb_lsn w2j_commit_position(const w2j_change *c)
{
    return c->nextlsn != LSN_INVALID ? c->nextlsn : c->lsn;
}

void w2j_change_free(w2j_change *c)
{
    free(c->arena);
    free(c->columns);
    free(c->identity);
    w2j_change_init(c);
}

static bool w2j_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool w2j_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return false;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

/* ------------------------------------------------------------ the reader */

/* What a member's value was. */
typedef enum w2j_kind {
    W2J_ABSENT = 0,
    W2J_STRING,
    W2J_NUMBER,
    W2J_TRUE,
    W2J_FALSE,
    W2J_NULL,
    W2J_OBJECT,
    W2J_ARRAY
} w2j_kind;

/* A scalar read into the arena (text for strings, numbers, true and false). */
typedef struct w2j_scalar {
    w2j_kind kind;
    char *text;
    size_t len;
} w2j_scalar;

typedef struct w2j_reader {
    const char *start, *p, *end;
    char *arena; /* 2 * len + 16 bytes: no token stores more than it occupies plus its NUL */
    size_t used;
} w2j_reader;

static void rd_skip_ws(w2j_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* Consumes c after optional whitespace. */
static bool rd_expect(w2j_reader *r, char c)
{
    rd_skip_ws(r);
    if (r->p >= r->end || *r->p != c)
        return false;
    r->p++;
    return true;
}

static bool rd_hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = wb_hex_digit_value(s[i]);
        if (d < 0)
            return false;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return true;
}

/* Writes code point cp as UTF-8 at d; returns the bytes written. */
static size_t rd_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A \u escape at s (s[0] == '\\', s[1] == 'u'): its code point and source length. */
static bool rd_unicode(const w2j_reader *r, const char *s, unsigned *cp, size_t *n)
{
    if (r->end - s < 6 || !rd_hex4(s + 2, cp) || *cp == 0 || (*cp >= 0xDC00 && *cp <= 0xDFFF))
        return false;
    *n = 6;
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return true;
    unsigned lo;
    if (r->end - s < 12 || s[6] != '\\' || s[7] != 'u' || !rd_hex4(s + 8, &lo) || lo < 0xDC00 ||
        lo > 0xDFFF)
        return false;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    *n = 12;
    return true;
}

/* A string at r->p ('"'), unescaped into the arena (NUL-terminated). */
static bool rd_string(w2j_reader *r, char **out, size_t *outlen)
{
    char *dst = r->arena + r->used, *d = dst;
    const char *s = ++r->p;
    for (;;) {
        while (s < r->end && *s != '"' && *s != '\\')
            s++;
        memcpy(d, r->p, (size_t)(s - r->p));
        d += s - r->p;
        r->p = s;
        if (s >= r->end)
            return false;
        if (*s == '"')
            break;
        if (r->end - s < 2)
            return false;
        size_t n = 2;
        unsigned cp;
        int ctl = wb_escape_letter_value(s[1], false);
        if (ctl >= 0)
            *d++ = (char)ctl;
        else if (s[1] == '"' || s[1] == '\\' || s[1] == '/')
            *d++ = s[1];
        else if (s[1] == 'u' && rd_unicode(r, s, &cp, &n))
            d += rd_utf8(d, cp);
        else
            return false;
        s += n;
        r->p = s;
    }
    r->p++;
    *d = '\0';
    *out = dst;
    *outlen = (size_t)(d - dst);
    r->used += *outlen + 1;
    return true;
}

static bool rd_digits(w2j_reader *r)
{
    const char *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > s;
}

/* A number at r->p, kept as its literal text (-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?). */
static bool rd_number(w2j_reader *r, w2j_scalar *v)
{
    const char *s = r->p;
    if (*r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0')
        r->p++;
    else if (!rd_digits(r))
        return false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!rd_digits(r))
            return false;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!rd_digits(r))
            return false;
    }
    v->kind = W2J_NUMBER;
    v->len = (size_t)(r->p - s);
    v->text = r->arena + r->used;
    memcpy(v->text, s, v->len);
    v->text[v->len] = '\0';
    r->used += v->len + 1;
    return true;
}

/* true, false or null at r->p; true and false are stored as their text. */
static bool rd_literal(w2j_reader *r, w2j_scalar *v)
{
    static const struct {
        const char *word;
        w2j_kind kind;
    } words[] = {{"true", W2J_TRUE}, {"false", W2J_FALSE}, {"null", W2J_NULL}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i].word, n) == 0) {
            r->p += n;
            v->kind = words[i].kind;
            if (v->kind != W2J_NULL) {
                v->text = r->arena + r->used;
                memcpy(v->text, words[i].word, n + 1);
                v->len = n;
                r->used += n + 1;
            }
            return true;
        }
    }
    return false;
}

static bool rd_skip_container(w2j_reader *r, int depth);

/*
 * Any value at r->p (after whitespace).  Scalars are read into v; objects and
 * arrays are checked and skipped (v->kind says which).
 */
static bool rd_value(w2j_reader *r, w2j_scalar *v, int depth)
{
    memset(v, 0, sizeof *v);
    rd_skip_ws(r);
    if (r->p >= r->end)
        return false;
    char c = *r->p;
    if (c == '"') {
        v->kind = W2J_STRING;
        return rd_string(r, &v->text, &v->len);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return rd_number(r, v);
    if (c == '{' || c == '[') {
        v->kind = c == '{' ? W2J_OBJECT : W2J_ARRAY;
        return rd_skip_container(r, depth + 1);
    }
    return rd_literal(r, v);
}

/* A member name, compared then forgotten (the arena space is reused). */
static bool rd_key(w2j_reader *r, char **key)
{
    size_t mark = r->used, len;
    rd_skip_ws(r);
    if (r->p >= r->end || *r->p != '"' || !rd_string(r, key, &len))
        return false;
    r->used = mark; /* *key stays readable until the next store */
    return rd_expect(r, ':');
}

/* After a member or element: ',' (true, *more) or the closing bracket (true, !*more). */
static bool rd_next(w2j_reader *r, char close, bool *more)
{
    rd_skip_ws(r);
    if (r->p >= r->end)
        return false;
    *more = *r->p == ',';
    if (!*more && *r->p != close)
        return false;
    r->p++;
    return true;
}

/* Opens the object or array at r->p; *empty when it closes at once. */
static void rd_open(w2j_reader *r, char close, bool *empty)
{
    r->p++;
    rd_skip_ws(r);
    *empty = r->p < r->end && *r->p == close;
    if (*empty)
        r->p++;
}

static bool rd_skip_container(w2j_reader *r, int depth)
{
    if (depth > W2J_MAX_DEPTH)
        return false;
    bool object = *r->p == '{', empty, more = true;
    char close = object ? '}' : ']';
    size_t mark = r->used;
    rd_open(r, close, &empty);
    while (!empty && more) {
        char *key;
        w2j_scalar v;
        if ((object && !rd_key(r, &key)) || !rd_value(r, &v, depth) || !rd_next(r, close, &more))
            return false;
        r->used = mark; /* skipped values keep no text */
    }
    return true;
}

/* ------------------------------------------------------------ columns / identity */

/* A "columns" or "identity" member as read: its kind, its elements, the first bad element. */
typedef struct w2j_list {
    w2j_kind kind;
    w2j_value *values;
    size_t n, cap;
    char error[W2J_LIST_ERROR_MAX];
} w2j_list;

static void list_note(w2j_list *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void list_note(w2j_list *l, const char *fmt, ...)
{
    if (l->error[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->error, sizeof l->error, fmt, ap);
    va_end(ap);
}

/* One {"name": ..., "value": ...} element into v. */
static bool rd_element(w2j_reader *r, w2j_list *l, const char *what, size_t idx, int depth,
                       w2j_value *v)
{
    w2j_scalar name = {0}, value = {0};
    bool empty, more = true;
    size_t mark = r->used;
    rd_open(r, '}', &empty);
    while (!empty && more) {
        char *key;
        w2j_scalar s;
        if (!rd_key(r, &key))
            return false;
        bool is_name = name.kind == W2J_ABSENT && strcmp(key, "name") == 0;
        bool is_value = !is_name && value.kind == W2J_ABSENT && strcmp(key, "value") == 0;
        size_t before = r->used;
        if (!rd_value(r, &s, depth) || !rd_next(r, '}', &more))
            return false;
        if (is_name)
            name = s;
        else if (is_value)
            value = s;
        else
            r->used = before; /* other members keep no text */
    }
    if (name.kind != W2J_STRING && name.kind != W2J_NUMBER) {
        r->used = mark;
        list_note(l, "%s[%zu]: missing \"name\"", what, idx);
        return true;
    }
    v->name = name.text;
    if (value.kind == W2J_ABSENT)
        list_note(l, "%s[%zu] (\"%s\"): missing \"value\"", what, idx, v->name);
    else if (value.kind == W2J_OBJECT || value.kind == W2J_ARRAY)
        list_note(l, "%s[%zu] (\"%s\"): unexpected JSON value type", what, idx, v->name);
    v->text = value.text; /* NULL for null */
    v->len = value.len;
    return true;
}

/* The array at r->p into l. */
static bool rd_list(w2j_reader *r, w2j_list *l, const char *what, int depth)
{
    bool empty, more = true;
    l->kind = W2J_ARRAY;
    rd_open(r, ']', &empty);
    while (!empty && more) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            l->values = wb_xrealloc(l->values, l->cap * sizeof *l->values);
        }
        size_t idx = l->n++;
        w2j_value *v = &l->values[idx];
        memset(v, 0, sizeof *v);
        rd_skip_ws(r);
        if (r->p < r->end && *r->p == '{') {
            if (depth + 1 > W2J_MAX_DEPTH || !rd_element(r, l, what, idx, depth + 1, v))
                return false;
        } else {
            w2j_scalar s;
            size_t mark = r->used;
            if (!rd_value(r, &s, depth))
                return false;
            r->used = mark;
            list_note(l, "%s[%zu]: missing \"name\"", what, idx);
        }
        if (!rd_next(r, ']', &more))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------ the message */

enum {
    F_ACTION,
    F_XID,
    F_LSN,
    F_NEXTLSN,
    F_TIMESTAMP,
    F_SCHEMA,
    F_TABLE,
    F_TRANSACTIONAL,
    F_PREFIX,
    F_CONTENT,
    F_COUNT
};

static const char *const w2j_field_names[F_COUNT] = {
    "action", "xid",   "lsn",           "nextlsn", "timestamp",
    "schema", "table", "transactional", "prefix",  "content"};

typedef struct w2j_message {
    bool is_object;
    w2j_scalar fields[F_COUNT];
    w2j_list columns, identity;
} w2j_message;

/* The whole message: syntax only; the members wal2json defines are kept. */
static bool rd_message(w2j_reader *r, w2j_message *m)
{
    rd_skip_ws(r);
    if (r->p >= r->end)
        return false;
    if (*r->p != '{') {
        w2j_scalar v;
        return rd_value(r, &v, 0);
    }
    m->is_object = true;
    bool empty, more = true;
    rd_open(r, '}', &empty);
    while (!empty && more) {
        char *key;
        if (!rd_key(r, &key))
            return false;
        w2j_list *list = NULL;
        if (strcmp(key, "columns") == 0)
            list = &m->columns;
        else if (strcmp(key, "identity") == 0)
            list = &m->identity;
        w2j_scalar *field = NULL;
        for (int f = 0; list == NULL && f < F_COUNT; f++) {
            if (strcmp(key, w2j_field_names[f]) == 0)
                field = &m->fields[f];
        }
        rd_skip_ws(r);
        if (list != NULL && list->kind == W2J_ABSENT && r->p < r->end && *r->p == '[') {
            if (!rd_list(r, list, list == &m->columns ? "columns" : "identity", 1))
                return false;
        } else {
            w2j_scalar v;
            size_t mark = r->used;
            if (!rd_value(r, &v, 1))
                return false;
            if (field != NULL && field->kind == W2J_ABSENT)
                *field = v;
            else if (list != NULL && list->kind == W2J_ABSENT)
                list->kind = v.kind; /* not an array: refused if it is needed */
            else
                r->used = mark;
        }
        if (!rd_next(r, '}', &more))
            return false;
    }
    return true;
}

/* True when json ends inside a string or an unclosed object/array. */
static bool w2j_looks_truncated(const char *json, size_t len)
{
    bool in_string = false;
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return in_string || depth > 0;
}

/* ------------------------------------------------------------ fields to the change */

/* An optional string member (a bare number counts: its text); null/absent -> NULL. */
static bool w2j_opt_string(const w2j_message *m, int f, char **out, char *err, size_t errlen)
{
    const w2j_scalar *v = &m->fields[f];
    *out = NULL;
    if (v->kind == W2J_ABSENT || v->kind == W2J_NULL)
        return true;
    if (v->kind != W2J_STRING && v->kind != W2J_NUMBER)
        return w2j_fail(err, errlen, "field \"%s\" is not a string", w2j_field_names[f]);
    *out = v->text;
    return true;
}

static bool w2j_req_string(const w2j_message *m, int f, char **out, char *err, size_t errlen)
{
    if (!w2j_opt_string(m, f, out, err, errlen))
        return false;
    if (*out == NULL)
        return w2j_fail(err, errlen, "missing field \"%s\"", w2j_field_names[f]);
    return true;
}

static bool w2j_opt_lsn(const w2j_message *m, int f, wb_lsn *out, char *err, size_t errlen)
{
    char *text;
    if (!w2j_opt_string(m, f, &text, err, errlen))
        return false;
    if (text != NULL && !lsn_parse(text, out))
        return w2j_fail(err, errlen, "field \"%s\" is not an LSN: \"%.40s\"", w2j_field_names[f],
                        text);
    return true;
}

static bool w2j_opt_xid(const w2j_message *m, uint32_t *out, char *err, size_t errlen)
{
    char *text, *end;
    if (!w2j_opt_string(m, F_XID, &text, err, errlen))
        return false;
    if (text == NULL)
        return true;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > UINT32_MAX)
        return w2j_fail(err, errlen, "field \"xid\" is not a transaction id: \"%.40s\"", text);
    *out = (uint32_t)v;
    return true;
}

static bool w2j_action_from(const w2j_message *m, w2j_action *out, char *err, size_t errlen)
{
    const w2j_scalar *v = &m->fields[F_ACTION];
    if (v->kind == W2J_ABSENT)
        return w2j_fail(err, errlen, "missing field \"action\"");
    if (v->kind != W2J_STRING && v->kind != W2J_NUMBER)
        return w2j_fail(err, errlen, "field \"action\" is not a string");
    if (v->len == 1 && strchr("BCIUDTM", v->text[0]) != NULL) {
        *out = (w2j_action)v->text[0];
        return true;
    }
    return w2j_fail(err, errlen, "unknown action \"%.20s\"", v->text);
}

/* Moves list into *values / *n when it is a valid array; absent -> required ? error : empty. */
static bool w2j_take_list(w2j_list *l, const char *key, bool required, w2j_value **values,
                          size_t *n, char *err, size_t errlen)
{
    if (l->kind == W2J_ABSENT)
        return required ? w2j_fail(err, errlen, "missing field \"%s\"", key) : true;
    if (l->kind != W2J_ARRAY)
        return w2j_fail(err, errlen, "field \"%s\" is not an array", key);
    if (l->error[0] != '\0')
        return w2j_fail(err, errlen, "%s", l->error);
    *values = l->values;
    *n = l->n;
    l->values = NULL;
    l->n = l->cap = 0;
    return true;
}

/* Maps the message's fields into out (which is empty on entry). */
static bool w2j_map(w2j_message *m, w2j_change *out, char *err, size_t errlen)
{
    if (!m->is_object)
        return w2j_fail(err, errlen, "message is not a JSON object");
    if (!w2j_action_from(m, &out->action, err, errlen) || !w2j_opt_xid(m, &out->xid, err, errlen) ||
        !w2j_opt_lsn(m, F_LSN, &out->lsn, err, errlen) ||
        !w2j_opt_lsn(m, F_NEXTLSN, &out->nextlsn, err, errlen) ||
        !w2j_opt_string(m, F_TIMESTAMP, &out->timestamp, err, errlen))
        return false;

    switch (out->action) {
    case W2J_BEGIN:
    case W2J_COMMIT:
        return true;
    case W2J_MESSAGE: {
        w2j_kind tr = m->fields[F_TRANSACTIONAL].kind;
        if (tr != W2J_TRUE && tr != W2J_FALSE)
            return w2j_fail(err, errlen, "message: missing field \"transactional\"");
        out->transactional = tr == W2J_TRUE;
        return w2j_req_string(m, F_PREFIX, &out->prefix, err, errlen) &&
               w2j_opt_string(m, F_CONTENT, &out->content, err, errlen);
    }
    default:
        break;
    }
    if (!w2j_req_string(m, F_SCHEMA, &out->schema, err, errlen) ||
        !w2j_req_string(m, F_TABLE, &out->table, err, errlen))
        return false;
    if (out->action == W2J_TRUNCATE)
        return true;
    bool need_columns = out->action == W2J_INSERT || out->action == W2J_UPDATE;
    bool need_identity = out->action == W2J_UPDATE || out->action == W2J_DELETE;
    return w2j_take_list(&m->columns, "columns", need_columns, &out->columns, &out->ncolumns, err,
                         errlen) &&
           w2j_take_list(&m->identity, "identity", need_identity, &out->identity, &out->nidentity,
                         err, errlen);
}

bool w2j_parse(const char *json, size_t len, w2j_change *out, char *err, size_t errlen)
{
    w2j_change_init(out);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (json == NULL || len == 0)
        return w2j_fail(err, errlen, "empty message");

    w2j_reader r = {.start = json, .p = json, .end = json + len, .used = 0};
    r.arena = wb_xmalloc(2 * len + 16);
    w2j_message m;
    memset(&m, 0, sizeof m);
    bool ok = rd_message(&r, &m);
    if (!ok) {
        size_t at = (size_t)(r.p - json);
        if (at >= len || w2j_looks_truncated(json, len))
            w2j_fail(err, errlen, "truncated JSON (%zu bytes)", len);
        else
            w2j_fail(err, errlen, "invalid JSON at byte %zu of %zu", at, len);
    } else {
        /* Trailing bytes other than whitespace (or NULs) mean a corrupt message. */
        while (r.p < r.end &&
               (*r.p == ' ' || *r.p == '\n' || *r.p == '\r' || *r.p == '\t' || *r.p == '\0'))
            r.p++;
        if (r.p < r.end)
            ok = w2j_fail(err, errlen, "unexpected data after the JSON object");
    }
    ok = ok && w2j_map(&m, out, err, errlen);
    free(m.columns.values);
    free(m.identity.values);
    if (!ok) {
        free(r.arena);
        w2j_change_free(out);
        return false;
    }
    out->arena = r.arena;
    return true;
}

static const w2j_value *w2j_find(const w2j_value *values, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(values[i].name, name) == 0)
            return &values[i];
    }
    return NULL;
}

const w2j_value *w2j_find_column(const w2j_change *c, const char *name)
{
    return w2j_find(c->columns, c->ncolumns, name);
}

const w2j_value *w2j_find_identity(const w2j_change *c, const char *name)
{
    return w2j_find(c->identity, c->nidentity, name);
}
