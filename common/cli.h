/*
 * cli.h — the subcommand entry points and what they share: exit codes and
 * the config + log setup every command starts with.
 *
 * Each entry point gets argv starting at the subcommand name (argv[0] is
 * "check", "backfill", ...) and parses its own options with getopt_long;
 * every one answers --help.
 */
#ifndef WALBRIDGE_CLI_H
#define WALBRIDGE_CLI_H

#include <stdbool.h>
#include "common/config.h"

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

int check_main(const char *config_path, int argc, char **argv);
int backfill_main(const char *config_path, int argc, char **argv);
int verify_main(const char *config_path, int argc, char **argv);
int stream_main(const char *config_path, int argc, char **argv);
int health_main(const char *config_path, int argc, char **argv);

#endif
