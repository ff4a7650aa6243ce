/*
 * fuzz_w2j.c — libFuzzer harness for the wal2json format-version 2 message
 * parser (cdc/w2j.h).
 *
 * The input is one message exactly as it would arrive in an XLogData payload:
 * not NUL-terminated, any bytes.  w2j_parse must either fill the change or
 * fail with a reason; it must never read past len, crash or leak.  On success
 * the lookups are exercised on every parsed name, and the value lengths are
 * checked against the text they describe, and every value is compared with
 * what plain cJSON reads from the same text (differential check).
 *
 * Built with clang by fuzz/build.sh (not part of the default gcc build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "cdc/w2j.h"
#include "fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_w2j_touch(const w2j_change *c, const w2j_value *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (values[i].name == NULL)
            abort(); /* every parsed column has a name */
        if (values[i].text != NULL && memchr(values[i].text, '\0', values[i].len + 1) == NULL)
            abort(); /* text is NUL-terminated at len at the latest */
        (void)w2j_find_column(c, values[i].name);
        (void)w2j_find_identity(c, values[i].name);
    }
}

/* Number of members called key directly in obj (duplicates make "which one" ambiguous). */
static int fuzz_w2j_members(const cJSON *obj, const char *key)
{
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        if (m->string != NULL && strcmp(m->string, key) == 0)
            n++;
    }
    return n;
}

/*
 * Differential check against plain cJSON on the same text: every value w2j
 * returns is the string cJSON sees, or for a bare number a text that reads
 * back as the same double; true/false/null map to "true"/"false"/NULL.
 */
static void fuzz_w2j_compare(const char *text, const char *key, const w2j_value *values, size_t n)
{
    cJSON *root = cJSON_Parse(text);
    if (root == NULL)
        return;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsObject(root) || fuzz_w2j_members(root, key) != 1 || !cJSON_IsArray(arr) ||
        (size_t)cJSON_GetArraySize(arr) != n) {
        cJSON_Delete(root);
        return;
    }
    size_t i = 0;
    const cJSON *elem;
    cJSON_ArrayForEach(elem, arr)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(elem, "name");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(elem, "value");
        const w2j_value *v = &values[i++];
        if (cJSON_IsString(name) && strcmp(name->valuestring, v->name) != 0)
            abort(); /* the column name changed */
        if (cJSON_IsString(value)) {
            if (v->text == NULL || strcmp(v->text, value->valuestring) != 0)
                abort(); /* the string value changed */
        } else if (cJSON_IsNumber(value)) {
            if (v->text == NULL || v->len == 0)
                abort();
            char *end = NULL;
            double d = strtod(v->text, &end);
            if (end == v->text || (d != value->valuedouble && d == d))
                abort(); /* the number's text is not the number */
        } else if (cJSON_IsNull(value)) {
            if (v->text != NULL)
                abort(); /* null must stay SQL NULL */
        } else if (cJSON_IsBool(value)) {
            if (v->text == NULL || strcmp(v->text, cJSON_IsTrue(value) ? "true" : "false") != 0)
                abort();
        }
    }
    cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy of exactly size bytes: ASan then catches any read past len. */
    char *copy = fuzz_input_copy(data, size);
    if (copy == NULL)
        return 0;

    w2j_change change;
    char err[256];
    w2j_change_init(&change);
    if (w2j_parse(copy, size, &change, err, sizeof err)) {
        fuzz_w2j_touch(&change, change.columns, change.ncolumns);
        fuzz_w2j_touch(&change, change.identity, change.nidentity);
        if (memchr(copy, '\0', size) == NULL) {
            char *text = fuzz_input_cstring(copy, size);
            if (text != NULL) {
                fuzz_w2j_compare(text, "columns", change.columns, change.ncolumns);
                fuzz_w2j_compare(text, "identity", change.identity, change.nidentity);
                free(text);
            }
        }
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        abort(); /* the reason must be a terminated string */
    }
    w2j_change_free(&change);
    /* Reusable after free (w2j_change_init state): free again must be harmless. */
    w2j_change_free(&change);
    free(copy);
    return 0;
}
