/*
 * main.c — the walbridge executable: global options, then one subcommand.
 *
 *   walbridge [-c FILE] check|backfill|stream|health|verify [options]
 *   walbridge version | help
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/cli.h"

static void print_usage(FILE *out)
{
    fputs("walbridge keeps a target PostgreSQL (Supabase) database in step with a legacy\n"
          "PostgreSQL database, remapping integer keys to UUIDs.\n\n"
          "Usage: walbridge [-c FILE] COMMAND [options]\n\n"
          "Commands:\n"
          "  check      validate config against live source and target; print the plan\n"
          "  backfill   one-shot catch-up: keyset diff + copy, records the stream start LSN\n"
          "  stream     always-on consumer of the replication slot (wal2json)\n"
          "  health     slot and consumer health (monitoring-plugin exit codes)\n"
          "  verify     compare source and target through the mapping\n"
          "  version    print the version\n"
          "  help       this text\n\n"
          "Global options:\n"
          "  -c, --config FILE   config file (default: $WALBRIDGE_CONFIG, else ./walbridge.json)\n\n"
          "Run 'walbridge COMMAND --help' for a command's options.\n",
          out);
}

typedef struct command {
    const char *name;
    int (*entry)(const char *config_path, int argc, char **argv);
} command;

static const command commands[] = {
    {"check", check_main},   {"backfill", backfill_main}, {"stream", stream_main},
    {"health", health_main}, {"verify", verify_main},
};

int main(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, 'V'},
                                            {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    int opt;

    /* "+" stops at the first non-option: the subcommand owns the rest. */
    while ((opt = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("walbridge %s\n", WALBRIDGE_VERSION);
            return EXIT_OK;
        default:
            print_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "version") == 0) {
        printf("walbridge %s\n", WALBRIDGE_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            optind = 0; /* reset getopt for the subcommand (glibc: 0 reinitialises) */
            return commands[i].entry(config_path, sub_argc, sub_argv);
        }
    }
    fprintf(stderr, "walbridge: unknown command \"%s\"\n", name);
    print_usage(stderr);
    return EXIT_USAGE;
}
