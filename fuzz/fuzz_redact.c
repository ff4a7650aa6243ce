/*
 * fuzz_redact.c — libFuzzer harness for password redaction (log_redact_dsn,
 * log_redact_text in common/log.h): a password written into a connection
 * string must never survive redaction, whatever surrounds it.
 *
 * Input: byte 0 picks the form, then the password up to the first '\n'
 * (kept only if it is 6..40 characters of [A-Za-z0-9] and "-_.~!$*+,;", which
 * need no quoting or percent-encoding anywhere), then arbitrary text (up to a
 * NUL) that follows it.  The password is placed where libpq reads it
 * unambiguously whatever follows:
 *   0  password='PW' REST                      keyword form, first pair
 *   1  postgresql://user:PW@REST               URI user info (libpq stops at the first '@')
 *   2  postgresql://h/db?password=PW&REST      URI query parameter
 *   3  "connect failed (" form 0 ")" through log_redact_text
 *   4  "connect failed: " form 1 through log_redact_text
 * Any occurrence of PW in the output aborts (a leak).  Inputs whose REST
 * contains PW itself, or whose PW is part of the fixed text, are skipped.  Percent-encoded keywords
 * ("pass%77ord") are a known gap and not generated here.
 *
 * Built with clang by fuzz/build.sh (not part of the default gcc build).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/strbuf.h"
#include "fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_redact_password_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-_.~!$*+,;", c) != NULL);
}

/*
 * True when PW could show up in the output without being a leak: it is part
 * of the fixed text around it ("password", "postgresql", the mask) or of REST,
 * before or after REST is redacted.
 */
static bool fuzz_redact_ambiguous(const char *password, const char *rest)
{
    static const char *const fixed = "password postgresql://user: connect failed ******** h/db";
    if (strstr(fixed, password) != NULL || strstr(rest, password) != NULL)
        return true;
    char *a = log_redact_text(rest);
    char *b = log_redact_dsn(rest);
    bool found = strstr(a, password) != NULL || strstr(b, password) != NULL;
    free(a);
    free(b);
    return found;
}

static void fuzz_redact_check(const char *what, const char *input, const char *output,
                              const char *password)
{
    if (strstr(output, password) != NULL) {
        fprintf(stderr, "password leaked by %s\n  input:  %s\n  output: %s\n", what, input, output);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    int form = data[0] % 5;
    const uint8_t *pw_start = data + 1;
    const uint8_t *nl = memchr(pw_start, '\n', size - 1);
    if (nl == NULL)
        return 0;
    size_t pw_len = (size_t)(nl - pw_start);
    if (pw_len < 6 || pw_len > 40)
        return 0;
    for (size_t i = 0; i < pw_len; i++)
        if (!fuzz_redact_password_char(pw_start[i]))
            return 0;
    char password[41];
    memcpy(password, pw_start, pw_len);
    password[pw_len] = '\0';

    const char *rest_start = (const char *)nl + 1;
    size_t rest_len = size - (size_t)(nl + 1 - data);
    const char *nul = memchr(rest_start, '\0', rest_len);
    if (nul != NULL)
        rest_len = (size_t)(nul - rest_start);
    char *rest = fuzz_input_cstring(rest_start, rest_len);
    if (rest == NULL)
        return 0;
    if (fuzz_redact_ambiguous(password, rest)) {
        free(rest);
        return 0;
    }

    strbuf dsn;
    strbuf_init(&dsn);
    if (form == 0 || form == 3)
        strbuf_appendf(&dsn, "password='%s' %s", password, rest);
    else if (form == 1 || form == 4)
        strbuf_appendf(&dsn, "postgresql://user:%s@%s", password, rest);
    else
        strbuf_appendf(&dsn, "postgresql://h/db?password=%s&%s", password, rest);

    if (form <= 2) {
        char *out = log_redact_dsn(dsn.data);
        fuzz_redact_check("log_redact_dsn", dsn.data, out, password);
        free(out);
    }
    strbuf msg;
    strbuf_init(&msg);
    strbuf_appendf(&msg, form == 3 ? "connect failed (%s)" : "connect failed: %s", dsn.data);
    char *out = log_redact_text(msg.data);
    fuzz_redact_check("log_redact_text", msg.data, out, password);
    free(out);
    strbuf_free(&msg);
    strbuf_free(&dsn);
    free(rest);
    return 0;
}
