/*
 * test_cli.c — unit tests for cli_setup (common/cli.c): exit code 2 and a
 * "walbridge: <file>: <path>: <what>" message for a bad config, the log file
 * opened as configured, and the warning about a world-readable config file
 * holding a literal password (but not for ${NAME} or a private file).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/strbuf.h"

typedef struct scratch {
    char dir[64];
    char config[128];
    char log[128];
} scratch;

static void scratch_make(scratch *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/wb_test_cli_XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->config, sizeof s->config, "%s/walbridge.json", s->dir);
    snprintf(s->log, sizeof s->log, "%s/walbridge.log", s->dir);
}

static void scratch_remove(scratch *s)
{
    unlink(s->config);
    unlink(s->log);
    rmdir(s->dir);
}

/* Writes a config whose source DSN is source_dsn, with the given mode. */
static void write_config(const scratch *s, const char *source_dsn, mode_t mode)
{
    FILE *f = fopen(s->config, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"source\": {\"dsn\": \"%s\"}, \"target\": {\"dsn\": \"host=t\"},\n"
            " \"uuid_namespace\": \"0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42\",\n"
            " \"log\": {\"file\": \"%s\"},\n"
            " \"tables\": [{\"source\": \"offices\", \"key\": \"id\", \"legacy_key\": "
            "\"legacy_id\"}]}\n",
            source_dsn, s->log);
    fclose(f);
    cr_assert_eq(chmod(s->config, mode), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    strbuf sb;
    strbuf_init(&sb);
    if (f != NULL) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            strbuf_append_len(&sb, buf, n);
        fclose(f);
    }
    return strbuf_detach(&sb);
}

/* Runs cli_setup on s->config; returns the log file's content (caller frees). */
static char *setup_and_read_log(const scratch *s, int expected_rc)
{
    wb_config cfg;
    int rc = cli_setup(s->config, &cfg);
    cr_assert_eq(rc, expected_rc);
    if (rc == EXIT_OK) {
        config_free(&cfg);
        log_close();
    }
    return slurp(s->log);
}

Test(cli, world_readable_literal_password_warns, .init = cr_redirect_stderr)
{
    scratch s;
    scratch_make(&s);
    write_config(&s, "postgresql://app:hunter2@db/legacy", 0644);
    char *log = setup_and_read_log(&s, EXIT_OK);
    cr_assert_not_null(strstr(log, "WARNING: config file"), "%s", log);
    cr_assert_not_null(strstr(log, "source.dsn contains a password"), "%s", log);
    cr_assert_not_null(strstr(log, "chmod 600"), "%s", log);
    cr_assert_null(strstr(log, "hunter2"));
    free(log);
    scratch_remove(&s);
}

Test(cli, keyword_password_warns_too, .init = cr_redirect_stderr)
{
    scratch s;
    scratch_make(&s);
    write_config(&s, "host=db password='hunter2'", 0640);
    char *log = setup_and_read_log(&s, EXIT_OK);
    cr_assert_not_null(strstr(log, "source.dsn contains a password"), "%s", log);
    free(log);
    scratch_remove(&s);
}

Test(cli, private_file_or_env_password_does_not_warn, .init = cr_redirect_stderr)
{
    scratch s;
    scratch_make(&s);
    write_config(&s, "postgresql://app:hunter2@db/legacy", 0600);
    char *log = setup_and_read_log(&s, EXIT_OK);
    cr_assert_null(strstr(log, "WARNING"), "%s", log);
    free(log);
    unlink(s.log);

    setenv("WB_TEST_CLI_PW", "hunter2", 1);
    write_config(&s, "host=db password=${WB_TEST_CLI_PW}", 0644);
    log = setup_and_read_log(&s, EXIT_OK);
    cr_assert_null(strstr(log, "WARNING"), "%s", log);
    free(log);
    unlink(s.log);

    write_config(&s, "postgresql://app:${WB_TEST_CLI_PW}@db/legacy", 0644);
    log = setup_and_read_log(&s, EXIT_OK);
    cr_assert_null(strstr(log, "WARNING"), "%s", log);
    free(log);
    scratch_remove(&s);
}

Test(cli, bad_config_exits_2_with_message, .init = cr_redirect_stderr)
{
    scratch s;
    scratch_make(&s);
    unsetenv("WB_TEST_CLI_UNSET");
    write_config(&s, "${WB_TEST_CLI_UNSET}", 0600);
    wb_config cfg;
    cr_assert_eq(cli_setup(s.config, &cfg), EXIT_USAGE);
    fflush(stderr);
    char expected[512];
    snprintf(expected, sizeof expected,
             "walbridge: %s: source.dsn: environment variable WB_TEST_CLI_UNSET is not set\n",
             s.config);
    cr_assert_stderr_eq_str(expected);
    scratch_remove(&s);
}

Test(cli, missing_config_exits_2, .init = cr_redirect_stderr)
{
    wb_config cfg;
    cr_assert_eq(cli_setup("/nonexistent/walbridge.json", &cfg), EXIT_USAGE);
    fflush(stderr);
    cr_assert_stderr_eq_str(
        "walbridge: /nonexistent/walbridge.json: cannot open: No such file or directory\n");
}
