/*
 * fuzz_config.c — libFuzzer harness for the configuration loader
 * (config_parse in common/config.h): JSON text, "${NAME}" substitution,
 * defaults, validation, parents-first ordering with reference cycles.
 *
 * The input is the text of a walbridge.json.  config_parse must either load
 * it (then config_free releases everything, checked by LeakSanitizer) or
 * fail with a one-line message; never crash.  A few environment variables
 * are set once so that "${...}" substitution has something to find.
 *
 * Built with clang by fuzz/build.sh (not part of the default gcc build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "fuzz/fuzz_input.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("SOURCE_DATABASE_URL", "host=127.0.0.1 port=5432 dbname=src", 1);
    setenv("TARGET_DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/dst", 1);
    setenv("WB_FUZZ_EMPTY", "", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* config_parse takes a C string: embedded NULs simply end it early. */
    char *text = fuzz_input_cstring(data, size);
    if (text == NULL)
        return 0;

    wb_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    if (config_parse("fuzz.json", text, &cfg, err, sizeof err)) {
        for (size_t i = 0; i < cfg.ntables; i++) {
            const table_config *t = &cfg.tables[i];
            (void)config_find_source(&cfg, t->source_schema, t->source_name);
            for (size_t k = 0; k < t->nkey; k++)
                (void)config_target_column(t, t->key[k]);
            for (size_t r = 0; r < t->nrefs; r++)
                if (t->refs[r].parent_index < 0 || (size_t)t->refs[r].parent_index >= cfg.ntables)
                    abort(); /* a loaded reference points at a configured table */
        }
        config_free(&cfg);
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        abort();
    }
    free(text);
    return 0;
}
