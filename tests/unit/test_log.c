/*
 * test_log.c — unit tests for common/log.c: password redaction of every DSN
 * form, JSON and text records as written to the log file, level filtering,
 * and reopening the file after logrotate moved it away.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"

/* ---- redaction ---------------------------------------------------------- */

static void check_dsn(const char *dsn, const char *expected)
{
    char *got = log_redact_dsn(dsn);
    cr_assert_str_eq(got, expected, "log_redact_dsn(\"%s\")", dsn);
    free(got);
}

static void check_text(const char *text, const char *expected)
{
    char *got = log_redact_text(text);
    cr_assert_str_eq(got, expected, "log_redact_text(\"%s\")", text);
    free(got);
}

Test(log_redact, keyword_value_forms)
{
    check_dsn("host=db port=5432 password=secret user=me",
              "host=db port=5432 password=******** user=me");
    check_dsn("password=secret", "password=********");
    check_dsn("host=db password = secret dbname=x", "host=db password = ******** dbname=x");
    check_dsn("host=db password='se cret' dbname=x", "host=db password=******** dbname=x");
    check_dsn("password='it\\'s a \\\\ secret' user=u", "password=******** user=u");
    check_dsn("password=sec\\ ret user=u", "password=******** user=u");
    check_dsn("PASSWORD=secret", "PASSWORD=********");
    check_dsn("sslpassword=secret sslmode=require", "sslpassword=******** sslmode=require");
    check_dsn("  host=db   user='a b'  ", "  host=db   user='a b'  ");
}

Test(log_redact, keyword_value_unterminated_quote)
{
    char *got = log_redact_dsn("host=db password='secret and more");
    cr_assert_null(strstr(got, "secret"), "%s", got);
    cr_assert_null(strstr(got, "more"), "%s", got);
    free(got);
}

Test(log_redact, uri_forms)
{
    check_dsn("postgresql://user:secret@db.example.com:5432/app",
              "postgresql://user:********@db.example.com:5432/app");
    check_dsn("postgres://user:secret@db/app?sslmode=require",
              "postgres://user:********@db/app?sslmode=require");
    check_dsn("postgresql://user@db/app?password=secret&sslmode=verify-full",
              "postgresql://user@db/app?password=********&sslmode=verify-full");
    check_dsn("postgresql://db/app?sslmode=require&password=secret",
              "postgresql://db/app?sslmode=require&password=********");
    check_dsn("postgresql://u:p%40ss@h1:5432,h2:5433/app",
              "postgresql://u:********@h1:5432,h2:5433/app");
    check_dsn("postgresql://user@db:5432/app", "postgresql://user@db:5432/app");
    check_dsn("postgresql://db:5432", "postgresql://db:5432");
}

/* libpq percent-decodes URI query keys: "pass%77ord" is the password. */
Test(log_redact, uri_percent_encoded_keys)
{
    check_dsn("postgresql://h/db?pass%77ord=SECRET1", "postgresql://h/db?pass%77ord=********");
    check_dsn("postgresql://h/db?%70assword=SECRET2&x=1",
              "postgresql://h/db?%70assword=********&x=1");
    check_dsn("postgresql://h/db?sslpass%77ord=S3", "postgresql://h/db?sslpass%77ord=********");
    check_dsn("postgresql://h/db?pass%7word=notakey", "postgresql://h/db?pass%7word=notakey");
}

Test(log_redact, uri_with_at_sign_in_password)
{
    char *got = log_redact_dsn("postgresql://user:se@cret@db/app");
    cr_assert_str_eq(got, "postgresql://user:********@db/app");
    free(got);
}

Test(log_redact, null_and_empty)
{
    check_dsn("", "");
    char *got = log_redact_dsn(NULL);
    cr_assert_str_eq(got, "");
    free(got);
    check_text("", "");
}

Test(log_redact, text_patterns)
{
    check_text("connection to \"host=db password=secret user=x\" failed",
               "connection to \"host=db password=******** user=x\" failed");
    check_text("could not connect to postgresql://app:secret@db:5432/x: refused",
               "could not connect to postgresql://app:********@db:5432/x: refused");
    check_text("uri ...?password=secret&sslmode=require here",
               "uri ...?password=********&sslmode=require here");
    check_text("a password='x y' b Password=\"p q\" c",
               "a password=******** b Password=******** c");
    check_text("password authentication failed for user \"app\"",
               "password authentication failed for user \"app\"");
    check_text("see https://example.com/docs and user@example.com",
               "see https://example.com/docs and user@example.com");
    check_text("two: password=a password=b", "two: password=******** password=********");
}

/* ---- records in the log file ------------------------------------------- */

typedef struct tmpdir {
    char dir[64];
    char file[128];
} tmpdir;

static void tmpdir_make(tmpdir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/wb_test_log_XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    snprintf(t->file, sizeof t->file, "%s/walbridge.log", t->dir);
}

static void tmpdir_remove(tmpdir *t, const char *extra)
{
    unlink(t->file);
    if (extra != NULL)
        unlink(extra);
    rmdir(t->dir);
}

/* Whole file as a string; caller frees.  NULL if it does not exist. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    strbuf sb;
    strbuf_init(&sb);
    bool read_ok = strbuf_append_file(&sb, f);
    fclose(f);
    cr_assert(read_ok, "cannot read %s", path);
    return strbuf_detach(&sb);
}

static void open_log(const char *file, log_level level, log_format format)
{
    log_options opts = {.file = file, .to_stderr = false, .level = level, .format = format};
    char err[256] = "";
    cr_assert(log_open(&opts, err, sizeof err), "log_open: %s", err);
}

static bool is_iso_utc(const char *s)
{
    /* 2026-11-25T13:26:50.123Z */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

Test(log_file, json_line_escaping)
{
    tmpdir t;
    tmpdir_make(&t);
    open_log(t.file, LOG_INFO, LOG_FORMAT_JSON);
    log_full(LOG_ERROR, "tab\there \"q\" back\\slash", "ctl\x01 bad\xff end",
             "line1\nline2 caf\xc3\xa9 %d", 7);
    log_close();

    char *content = slurp(t.file);
    cr_assert_not_null(content);
    /* Exactly one line. */
    char *nl = strchr(content, '\n');
    cr_assert_not_null(nl);
    cr_assert_eq(nl[1], '\0', "more than one line: %s", content);

    cJSON *rec = cJSON_Parse(content);
    cr_assert_not_null(rec, "not valid JSON: %s", content);
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "level")->valuestring, "error");
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "message")->valuestring,
                     "line1\nline2 caf\xc3\xa9 7");
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "detail")->valuestring,
                     "tab\there \"q\" back\\slash");
    /* Invalid UTF-8 becomes U+FFFD; control characters survive escaped. */
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "hint")->valuestring, "ctl\x01 bad\xef\xbf\xbd end");
    const char *ts = cJSON_GetObjectItem(rec, "ts")->valuestring;
    cr_assert(is_iso_utc(ts), "timestamp %s", ts);
    /* Within a minute of now (UTC). */
    struct tm tm = {0};
    cr_assert_eq(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                        &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long delta = (long)(timegm(&tm) - time(NULL));
    cr_assert(delta > -60 && delta < 60, "timestamp %s is off by %lds", ts, delta);
    cJSON_Delete(rec);
    free(content);
    tmpdir_remove(&t, NULL);
}

Test(log_file, json_omits_absent_detail_and_hint)
{
    tmpdir t;
    tmpdir_make(&t);
    open_log(t.file, LOG_INFO, LOG_FORMAT_JSON);
    log_info("plain");
    log_close();
    char *content = slurp(t.file);
    cJSON *rec = cJSON_Parse(content);
    cr_assert_not_null(rec, "%s", content);
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "level")->valuestring, "info");
    cr_assert_null(cJSON_GetObjectItem(rec, "detail"));
    cr_assert_null(cJSON_GetObjectItem(rec, "hint"));
    cJSON_Delete(rec);
    free(content);
    tmpdir_remove(&t, NULL);
}

Test(log_file, text_record_shape)
{
    tmpdir t;
    tmpdir_make(&t);
    open_log(t.file, LOG_INFO, LOG_FORMAT_TEXT);
    log_full(LOG_WARN, "the detail", "the hint", "table %s skipped", "public.x");
    log_close();
    char *content = slurp(t.file);
    cr_assert_not_null(content);
    cr_assert(is_iso_utc(content), "%s", content);
    cr_assert_str_eq(content + 24,
                     " WARNING: table public.x skipped\n  DETAIL: the detail\n  HINT: the hint\n");
    free(content);
    tmpdir_remove(&t, NULL);
}

Test(log_file, messages_detail_and_hint_are_redacted)
{
    tmpdir t;
    tmpdir_make(&t);
    open_log(t.file, LOG_INFO, LOG_FORMAT_TEXT);
    log_error("could not connect with \"%s\"", "host=db password=hunter2 user=u");
    log_full(LOG_ERROR, "dsn postgresql://u:hunter3@db/x", "try ?password=hunter4", "failed");
    log_close();
    char *content = slurp(t.file);
    cr_assert_not_null(content);
    cr_assert_null(strstr(content, "hunter"), "password leaked: %s", content);
    cr_assert_not_null(strstr(content, "password=********"));
    cr_assert_not_null(strstr(content, "postgresql://u:********@db/x"));
    free(content);
    tmpdir_remove(&t, NULL);
}

Test(log_file, level_filtering)
{
    tmpdir t;
    tmpdir_make(&t);
    open_log(t.file, LOG_WARN, LOG_FORMAT_TEXT);
    log_debug("dbg-line");
    log_info("info-line");
    log_warn("warn-line");
    log_set_level(LOG_DEBUG);
    log_debug("dbg-after");
    log_close();
    char *content = slurp(t.file);
    cr_assert_null(strstr(content, "dbg-line"));
    cr_assert_null(strstr(content, "info-line"));
    cr_assert_not_null(strstr(content, "WARNING: warn-line"));
    cr_assert_not_null(strstr(content, "DEBUG: dbg-after"));
    free(content);
    tmpdir_remove(&t, NULL);
}

Test(log_file, reopen_after_rename_creates_new_file)
{
    tmpdir t;
    tmpdir_make(&t);
    char rotated[160];
    snprintf(rotated, sizeof rotated, "%s.1", t.file);
    open_log(t.file, LOG_INFO, LOG_FORMAT_TEXT);
    log_info("before rotation");
    cr_assert_eq(rename(t.file, rotated), 0);
    log_info("still to the moved file");
    log_request_reopen();
    log_reopen_if_requested();
    log_info("after rotation");
    log_close();

    char *old_content = slurp(rotated);
    char *new_content = slurp(t.file);
    cr_assert_not_null(old_content);
    cr_assert_not_null(new_content, "reopen did not create a new file");
    cr_assert_not_null(strstr(old_content, "before rotation"));
    cr_assert_not_null(strstr(old_content, "still to the moved file"));
    cr_assert_null(strstr(old_content, "after rotation"));
    cr_assert_not_null(strstr(new_content, "after rotation"));
    cr_assert_null(strstr(new_content, "before rotation"));
    free(old_content);
    free(new_content);
    tmpdir_remove(&t, rotated);
}

Test(log_file, open_failure_names_file)
{
    log_options opts = {.file = "/nonexistent-dir/x.log", .level = LOG_INFO};
    char err[256] = "";
    cr_assert_not(log_open(&opts, err, sizeof err));
    cr_assert_not_null(strstr(err, "/nonexistent-dir/x.log"), "%s", err);
}

Test(log_parse, level_and_format_names)
{
    log_level l;
    log_format f;
    cr_assert(log_level_parse("debug", &l) && l == LOG_DEBUG);
    cr_assert(log_level_parse("info", &l) && l == LOG_INFO);
    cr_assert(log_level_parse("warn", &l) && l == LOG_WARN);
    cr_assert(log_level_parse("warning", &l) && l == LOG_WARN);
    cr_assert(log_level_parse("error", &l) && l == LOG_ERROR);
    cr_assert_not(log_level_parse("verbose", &l));
    cr_assert_not(log_level_parse(NULL, &l));
    cr_assert(log_format_parse("text", &f) && f == LOG_FORMAT_TEXT);
    cr_assert(log_format_parse("json", &f) && f == LOG_FORMAT_JSON);
    cr_assert_not(log_format_parse("xml", &f));
}
