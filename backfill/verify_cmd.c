/* PLACEHOLDER until the verify command lands: replaced by its owner. */
#include <stdio.h>
#include "common/cli.h"

int verify_main(const char *config_path, int argc, char **argv)
{
    (void)config_path;
    (void)argc;
    (void)argv;
    fputs("walbridge: verify is not built yet\n", stderr);
    return EXIT_RUNTIME;
}
