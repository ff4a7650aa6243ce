/*
 * exposition_check.h — a unit-test helper shared by test_health.c and
 * test_metrics.c: asserts that a text is valid Prometheus exposition format,
 * line by line (samples with optional escaped labels, # HELP / # TYPE lines,
 * every line ending in a newline).  Header-only: each tests/unit/test_*.c is
 * its own Criterion executable.
 */
#ifndef WALBRIDGE_TEST_EXPOSITION_CHECK_H
#define WALBRIDGE_TEST_EXPOSITION_CHECK_H

#include <criterion/criterion.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

/* Asserts every line of text (left unchanged); returns how many lines it has. */
static size_t exposition_check_lines(const char *text)
{
    regex_t sample, comment;
    cr_assert_eq(regcomp(&sample,
                         "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|"
                         "\\\\.)*\",?)*\\})? -?[0-9.eE+-]+$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    cr_assert_eq(
        regcomp(&comment, "^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", REG_EXTENDED | REG_NOSUB),
        0);
    char *copy = strdup(text);
    cr_assert_not_null(copy);
    size_t lines = 0;
    for (char *line = copy, *next; *line; line = next) {
        next = strchr(line, '\n');
        cr_assert_not_null(next, "last line lacks a newline");
        *next++ = '\0';
        lines++;
        cr_assert(regexec(&sample, line, 0, NULL, 0) == 0 ||
                      regexec(&comment, line, 0, NULL, 0) == 0,
                  "bad line: %s", line);
    }
    free(copy);
    regfree(&sample);
    regfree(&comment);
    return lines;
}

#endif
