/*
 * w2j.c — parses one wal2json format-version 2 message into a w2j_change,
 * keeping the exact text of every value (see w2j.h).
 *
 * cJSON stores a JSON number only as a double, so a bigint above 2^53 or a
 * numeric(30,10) would silently change.  Before cJSON sees the message,
 * w2j_quote_numbers copies it and wraps every bare number that lies OUTSIDE
 * a string in double quotes: 9007199254740993 becomes "9007199254740993".
 * Numbers inside strings (jsonb text, arrays) are left alone because the
 * scanner tracks string state and backslash escapes.  wal2json writes
 * numeric NaN and float Infinity/-Infinity as JSON null: they arrive as
 * SQL NULL and cannot be told apart from it (wal2json 2.5 limitation).
 *
 * Every failure (invalid or truncated JSON, unknown action, missing or
 * mistyped field) returns false with a one-line reason; nothing crashes and
 * *out is left empty.
 */
#include "cdc/w2j.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

void w2j_change_init(w2j_change *c)
{
    memset(c, 0, sizeof *c);
    c->lsn = LSN_INVALID;
    c->nextlsn = LSN_INVALID;
}

static void w2j_values_free(w2j_value *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(values[i].name);
        free(values[i].text);
    }
    free(values);
}

void w2j_change_free(w2j_change *c)
{
    free(c->timestamp);
    free(c->schema);
    free(c->table);
    w2j_values_free(c->columns, c->ncolumns);
    w2j_values_free(c->identity, c->nidentity);
    free(c->prefix);
    free(c->content);
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

static bool w2j_is_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/*
 * Copies json[0..len) into out, wrapping each bare number outside strings in
 * quotes.  Returns the original offset of output position out_pos (used to
 * report a parse error at the byte the user sees) when out_pos != SIZE_MAX.
 */
static size_t w2j_quote_numbers(const char *json, size_t len, strbuf *out, size_t out_pos)
{
    bool in_string = false;
    size_t written = 0;
    size_t span = 0; /* start of the input not yet copied to out: copied in runs */
    for (size_t i = 0; i < len;) {
        char c = json[i];
        if (in_string) {
            size_t n = (c == '\\' && i + 1 < len) ? 2 : 1;
            if (c == '"')
                in_string = false;
            if (out_pos != SIZE_MAX && written + n > out_pos)
                return i;
            written += n;
            i += n;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t end = i + 1;
            while (end < len && w2j_is_number_char(json[end]))
                end++;
            if (out != NULL) {
                strbuf_append_len(out, json + span, i - span);
                strbuf_append_char(out, '"');
                strbuf_append_len(out, json + i, end - i);
                strbuf_append_char(out, '"');
                span = end;
            }
            if (out_pos != SIZE_MAX && written + (end - i) + 2 > out_pos)
                return out_pos <= written ? i : i + (out_pos - written - 1);
            written += (end - i) + 2;
            i = end;
        } else {
            if (c == '"')
                in_string = true;
            if (out_pos != SIZE_MAX && written + 1 > out_pos)
                return i;
            written++;
            i++;
        }
    }
    if (out != NULL)
        strbuf_append_len(out, json + span, len - span);
    return len;
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

/* Copies an optional string member; null/absent -> NULL.  False when mistyped. */
static bool w2j_opt_string(const cJSON *obj, const char *key, char **out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (item == NULL || cJSON_IsNull(item))
        return true;
    if (!cJSON_IsString(item))
        return w2j_fail(err, errlen, "field \"%s\" is not a string", key);
    *out = wb_xstrdup(item->valuestring);
    return true;
}

static bool w2j_req_string(const cJSON *obj, const char *key, char **out, char *err, size_t errlen)
{
    if (!w2j_opt_string(obj, key, out, err, errlen))
        return false;
    if (*out == NULL)
        return w2j_fail(err, errlen, "missing field \"%s\"", key);
    return true;
}

static bool w2j_opt_lsn(const cJSON *obj, const char *key, wb_lsn *out, char *err, size_t errlen)
{
    char *text;
    bool ok = true;
    if (!w2j_opt_string(obj, key, &text, err, errlen))
        return false;
    if (text != NULL && !lsn_parse(text, out))
        ok = w2j_fail(err, errlen, "field \"%s\" is not an LSN: \"%s\"", key, text);
    free(text);
    return ok;
}

static bool w2j_opt_xid(const cJSON *obj, uint32_t *out, char *err, size_t errlen)
{
    char *text, *end;
    bool ok = true;
    if (!w2j_opt_string(obj, "xid", &text, err, errlen))
        return false;
    if (text != NULL) {
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > UINT32_MAX)
            ok = w2j_fail(err, errlen, "field \"xid\" is not a transaction id: \"%s\"", text);
        else
            *out = (uint32_t)v;
    }
    free(text);
    return ok;
}

/* One {"name": ..., "value": ...} element into v (value text exact, NULL for null). */
static bool w2j_value_from(const cJSON *elem, const char *what, size_t idx, w2j_value *v, char *err,
                           size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(elem, "name");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(elem, "value");
    if (!cJSON_IsString(name))
        return w2j_fail(err, errlen, "%s[%zu]: missing \"name\"", what, idx);
    if (value == NULL)
        return w2j_fail(err, errlen, "%s[%zu] (\"%s\"): missing \"value\"", what, idx,
                        name->valuestring);
    v->name = wb_xstrdup(name->valuestring);
    if (cJSON_IsString(value)) {
        v->len = strlen(value->valuestring);
        v->text = wb_xstrndup(value->valuestring, v->len);
    } else if (cJSON_IsBool(value)) {
        v->text = wb_xstrdup(cJSON_IsTrue(value) ? "true" : "false");
        v->len = strlen(v->text);
    } else if (cJSON_IsNull(value)) {
        v->text = NULL;
        v->len = 0;
    } else {
        return w2j_fail(err, errlen, "%s[%zu] (\"%s\"): unexpected JSON value type", what, idx,
                        v->name);
    }
    return true;
}

/* Reads the array member key into *values; absent -> required ? error : empty. */
static bool w2j_values(const cJSON *obj, const char *key, bool required, w2j_value **values,
                       size_t *n, char *err, size_t errlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    *values = NULL;
    *n = 0;
    if (arr == NULL)
        return required ? w2j_fail(err, errlen, "missing field \"%s\"", key) : true;
    if (!cJSON_IsArray(arr))
        return w2j_fail(err, errlen, "field \"%s\" is not an array", key);
    size_t count = (size_t)cJSON_GetArraySize(arr);
    *values = wb_xcalloc(count ? count : 1, sizeof **values);
    const cJSON *elem;
    cJSON_ArrayForEach(elem, arr)
    {
        /* *n counts fully or partly filled entries so that free releases them. */
        size_t idx = (*n)++;
        if (!w2j_value_from(elem, key, idx, &(*values)[idx], err, errlen))
            return false;
    }
    return true;
}

static bool w2j_action_from(const cJSON *root, w2j_action *out, char *err, size_t errlen)
{
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(root, "action");
    if (action == NULL)
        return w2j_fail(err, errlen, "missing field \"action\"");
    if (!cJSON_IsString(action))
        return w2j_fail(err, errlen, "field \"action\" is not a string");
    const char *a = action->valuestring;
    if (strlen(a) == 1 && strchr("BCIUDTM", a[0]) != NULL) {
        *out = (w2j_action)a[0];
        return true;
    }
    return w2j_fail(err, errlen, "unknown action \"%.20s\"", a);
}

/* Maps the parsed tree into out (which is empty on entry). */
static bool w2j_map(const cJSON *root, w2j_change *out, char *err, size_t errlen)
{
    if (!cJSON_IsObject(root))
        return w2j_fail(err, errlen, "message is not a JSON object");
    if (!w2j_action_from(root, &out->action, err, errlen) ||
        !w2j_opt_xid(root, &out->xid, err, errlen) ||
        !w2j_opt_lsn(root, "lsn", &out->lsn, err, errlen) ||
        !w2j_opt_lsn(root, "nextlsn", &out->nextlsn, err, errlen) ||
        !w2j_opt_string(root, "timestamp", &out->timestamp, err, errlen))
        return false;

    switch (out->action) {
    case W2J_BEGIN:
    case W2J_COMMIT:
        return true;
    case W2J_MESSAGE: {
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "transactional");
        if (!cJSON_IsBool(tr))
            return w2j_fail(err, errlen, "message: missing field \"transactional\"");
        out->transactional = cJSON_IsTrue(tr);
        return w2j_req_string(root, "prefix", &out->prefix, err, errlen) &&
               w2j_opt_string(root, "content", &out->content, err, errlen);
    }
    default:
        break;
    }
    if (!w2j_req_string(root, "schema", &out->schema, err, errlen) ||
        !w2j_req_string(root, "table", &out->table, err, errlen))
        return false;
    bool need_columns = out->action == W2J_INSERT || out->action == W2J_UPDATE;
    bool need_identity = out->action == W2J_UPDATE || out->action == W2J_DELETE;
    if (out->action == W2J_TRUNCATE)
        return true;
    if (!w2j_values(root, "columns", need_columns, &out->columns, &out->ncolumns, err, errlen) ||
        !w2j_values(root, "identity", need_identity, &out->identity, &out->nidentity, err,
                    errlen)) {
        return false;
    }
    return true;
}

bool w2j_parse(const char *json, size_t len, w2j_change *out, char *err, size_t errlen)
{
    strbuf quoted;
    const char *parse_end = NULL;
    bool ok;

    w2j_change_init(out);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (json == NULL || len == 0)
        return w2j_fail(err, errlen, "empty message");

    strbuf_init(&quoted);
    w2j_quote_numbers(json, len, &quoted, SIZE_MAX);
    cJSON *root = cJSON_ParseWithLengthOpts(quoted.data, quoted.len, &parse_end, false);
    if (root == NULL) {
        size_t out_pos = parse_end != NULL ? (size_t)(parse_end - quoted.data) : quoted.len;
        size_t at = w2j_quote_numbers(json, len, NULL, out_pos);
        strbuf_free(&quoted);
        if (at >= len || w2j_looks_truncated(json, len))
            return w2j_fail(err, errlen, "truncated JSON (%zu bytes)", len);
        return w2j_fail(err, errlen, "invalid JSON at byte %zu of %zu", at, len);
    }
    /* Trailing non-space bytes after the object mean a corrupt message. */
    if (parse_end != NULL) {
        const char *p = parse_end, *end = quoted.data + quoted.len;
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == '\0'))
            p++;
        if (p < end) {
            cJSON_Delete(root);
            strbuf_free(&quoted);
            return w2j_fail(err, errlen, "unexpected data after the JSON object");
        }
    }
    ok = w2j_map(root, out, err, errlen);
    cJSON_Delete(root);
    strbuf_free(&quoted);
    if (!ok)
        w2j_change_free(out);
    return ok;
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
