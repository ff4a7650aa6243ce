/* PLACEHOLDER until the check command lands: replaced by its owner. */
#include <stdio.h>
#include "common/cli.h"

int check_main(const char *config_path, int argc, char **argv)
{
    (void)config_path;
    (void)argc;
    (void)argv;
    fputs("walbridge: check is not built yet\n", stderr);
    return EXIT_RUNTIME;
}
