/*
 * cli.h — the subcommand entry points and what they share: exit codes, the
 * option loop, and the config + log setup every command starts with.
 *
 * Each entry point gets argv starting at the subcommand name (argv[0] is
 * "check", "backfill", ...) and parses its own options with getopt_long;
 * every one answers --help.
 */
#ifndef WALBRIDGE_CLI_H
#define WALBRIDGE_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "common/config.h"
#include "common/lsn.h"

struct option; /* <getopt.h> */

enum {
    EXIT_OK = 0,
    EXIT_FINDING = 1, /* verify: differences; check: a problem */
    EXIT_USAGE = 2,   /* usage or config error */
    EXIT_RUNTIME = 3  /* runtime failure */
};

/*
 * Loads the config (path per config_default_path) and opens logging as it
 * says (stderr always for errors).  Returns EXIT_OK, or EXIT_USAGE after
 * printing the error.  On success the caller must config_free + log_close.
 */
int cli_setup(const char *config_path, wb_config *cfg);

/*
 * Warns (log, stderr) when the config file at path is readable by group or
 * others and a DSN in it holds a literal password.  cli_setup calls it;
 * commands that load the config themselves (health) call it after log_open.
 */
void cli_warn_file_secrets(const char *path);

/*
 * The option loop check, backfill and verify share.  getopt_long runs over
 * argv with the table `options` (which holds {"help", no_argument, NULL,
 * 'h'}); -h/--help prints the help to stdout; an unknown option or a missing
 * value (getopt has said which) prints the help to stderr; every other
 * option goes to on_option(opt, optarg, ctx), which returns false after
 * printing why the value is refused; a word left over is reported as
 * "walbridge <name>: unexpected argument".
 */
typedef struct cli_command {
    const char *name;                                       /* "backfill": for messages */
    const struct option *options;                           /* getopt_long's table */
    void (*print_help)(FILE *out);                          /* the --help text */
    bool (*on_option)(int opt, const char *arg, void *ctx); /* one parsed option */
} cli_command;

/* cli_parse_options: go on with the command (not an exit code). */
#define CLI_CONTINUE (-1)

/* Returns CLI_CONTINUE, EXIT_OK after --help, or EXIT_USAGE after the message. */
int cli_parse_options(const cli_command *cmd, int argc, char **argv, void *ctx);

/*
 * Parses arg, the value of --option, as a decimal integer in [min, max] into
 * *out; otherwise prints "walbridge <command>: --<option>: "<arg>" is not
 * <what>" to stderr and returns false.
 */
bool cli_parse_int(const char *command, const char *option, const char *arg, long min, long max,
                   const char *what, int *out);

int check_main(const char *config_path, int argc, char **argv);
int backfill_main(const char *config_path, int argc, char **argv);
int verify_main(const char *config_path, int argc, char **argv);
int stream_main(const char *config_path, int argc, char **argv);
/*
 * backfill's catch-up (cdc/stream_cmd.c): applies the slot's changes from the
 * target's applied LSN up to until exactly, every source transaction that
 * committed at or before it and none after, on its own target session; the
 * caller holds the stream lock on another session of this process.  *applied:
 * the applied LSN recorded in the target afterwards (at most until).  Returns
 * an exit code (0: done).
 */
int stream_catch_up(const wb_config *cfg, wb_lsn until, wb_lsn *applied);
int health_main(const char *config_path, int argc, char **argv);

#endif
