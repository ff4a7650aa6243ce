/*
 * test_config.c — unit tests for config loading (common/config.c,
 * common/config_tables.c): one test per class of mistake, each checking the
 * exact "<file>: <json path>: <what>" message a user would see, plus
 * defaults, environment substitution and the parents-first table order.
 *
 * JSON is written with single quotes for readability; parse() turns them
 * into double quotes before handing the text to config_parse.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/strbuf.h"

#define HEAD                                                                                       \
    "{'source': {'dsn': 'host=src dbname=legacy'},"                                                \
    " 'target': {'dsn': 'host=tgt dbname=postgres'},"                                              \
    " 'uuid_namespace': '0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42',"

#define OFFICES "{'source': 'public.offices', 'key': 'id', 'legacy_key': 'legacy_id'}"

static char err[1024];

static bool parse(const char *single_quoted, wb_config *cfg)
{
    char *json = wb_xstrdup(single_quoted);
    for (char *p = json; *p; p++)
        if (*p == '\'')
            *p = '"';
    err[0] = '\0';
    bool ok = config_parse("walbridge.json", json, cfg, err, sizeof err);
    free(json);
    return ok;
}

/* Parses text that must fail, and checks the whole message. */
static void expect_error(const char *single_quoted, const char *message)
{
    wb_config cfg;
    bool ok = parse(single_quoted, &cfg);
    if (ok)
        config_free(&cfg);
    cr_assert_not(ok, "accepted: %s", single_quoted);
    cr_assert_str_eq(err, message);
}

static int index_of(const wb_config *cfg, const char *source)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (strcmp(cfg->tables[i].source, source) == 0)
            return (int)i;
    return -1;
}

/* ---- what a good file gives -------------------------------------------- */

Test(config, good_config_defaults)
{
    wb_config cfg;
    cr_assert(parse(HEAD " 'tables': [{'source': 'offices', 'key': 'id', 'legacy_key': "
                         "'legacy_id'}]}",
                    &cfg),
              "%s", err);
    cr_assert_str_eq(cfg.path, "walbridge.json");
    cr_assert_str_eq(cfg.source_dsn, "host=src dbname=legacy");
    cr_assert_str_eq(cfg.target_dsn, "host=tgt dbname=postgres");
    cr_assert_str_eq(cfg.slot, "walbridge");
    cr_assert_str_eq(cfg.state_schema, "walbridge");
    cr_assert_str_eq(cfg.uuid_namespace_text, "0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42");
    cr_assert_eq(cfg.uuid_namespace[0], 0x0b);
    cr_assert_eq(cfg.uuid_namespace[15], 0x42);
    cr_assert_null(cfg.log_file);
    cr_assert_eq(cfg.log_level, LOG_INFO);
    cr_assert_eq(cfg.log_format, LOG_FORMAT_TEXT);
    cr_assert_eq(cfg.stream.batch_max_rows, 10000);
    cr_assert_eq(cfg.stream.batch_max_ms, 200);
    cr_assert_eq(cfg.stream.feedback_interval_s, 10);
    cr_assert_eq(cfg.stream.heartbeat_interval_s, 0);
    cr_assert_eq(cfg.stream.reconnect_max_s, 60);
    cr_assert_eq(cfg.stream.reconnect_max_attempts, 0);
    cr_assert_eq(cfg.backfill.batch_rows, 100000);
    cr_assert_eq(cfg.backfill.slot_create_timeout_s, 300);

    cr_assert_eq(cfg.ntables, 1);
    const table_config *t = &cfg.tables[0];
    cr_assert_str_eq(t->source, "public.offices");
    cr_assert_str_eq(t->source_schema, "public");
    cr_assert_str_eq(t->source_name, "offices");
    cr_assert_str_eq(t->target, "public.offices");
    cr_assert_str_eq(t->target_schema, "public");
    cr_assert_str_eq(t->target_name, "offices");
    cr_assert_eq(t->kind, TABLE_UUID_MAPPED);
    cr_assert_eq(t->nkey, 1);
    cr_assert_str_eq(t->key[0], "id");
    cr_assert_str_eq(t->target_key, "id");
    cr_assert_str_eq(t->legacy_key, "legacy_id");
    cr_assert_eq(t->deletes, DELETES_APPLY);
    cr_assert(t->truncate_apply);
    cr_assert_not(t->in_cycle);
    cr_assert_eq(t->nrefs, 0);
    config_free(&cfg);
}

Test(config, every_option_is_read)
{
    wb_config cfg;
    cr_assert(parse(HEAD " 'slot': 'wb_slot_2', 'state_schema': 'wb_state',"
                         " 'log': {'file': '/var/log/wb.log', 'level': 'debug', 'format': 'json'},"
                         " 'stream': {'batch_max_rows': 500, 'batch_max_ms': 50,"
                         "   'feedback_interval_s': 3, 'heartbeat_interval_s': 30,"
                         "   'reconnect_max_s': 5, 'reconnect_max_attempts': 7},"
                         " 'backfill': {'batch_rows': 1000, 'slot_create_timeout_s': 9},"
                         " 'tables': [" OFFICES ","
                         "  {'source': 'crm.order_tags', 'target': 'public.tags',"
                         "   'key': ['order_id', 'tag'], 'columns': {'exclude': ['secret'],"
                         "   'rename': {'tag': 'label'}}, 'deletes': {'soft': 'deleted_at'},"
                         "   'truncate': 'ignore', 'references': {'order_id': 'offices'}},"
                         "  {'source': 'audit_log', 'deletes': 'ignore'}]}",
                    &cfg),
              "%s", err);
    cr_assert_str_eq(cfg.slot, "wb_slot_2");
    cr_assert_str_eq(cfg.state_schema, "wb_state");
    cr_assert_str_eq(cfg.log_file, "/var/log/wb.log");
    cr_assert_eq(cfg.log_level, LOG_DEBUG);
    cr_assert_eq(cfg.log_format, LOG_FORMAT_JSON);
    cr_assert_eq(cfg.stream.batch_max_rows, 500);
    cr_assert_eq(cfg.stream.batch_max_ms, 50);
    cr_assert_eq(cfg.stream.feedback_interval_s, 3);
    cr_assert_eq(cfg.stream.heartbeat_interval_s, 30);
    cr_assert_eq(cfg.stream.reconnect_max_s, 5);
    cr_assert_eq(cfg.stream.reconnect_max_attempts, 7);
    cr_assert_eq(cfg.backfill.batch_rows, 1000);
    cr_assert_eq(cfg.backfill.slot_create_timeout_s, 9);

    const table_config *tags = &cfg.tables[index_of(&cfg, "crm.order_tags")];
    cr_assert_str_eq(tags->target, "public.tags");
    cr_assert_eq(tags->kind, TABLE_IDENTITY);
    cr_assert_eq(tags->nkey, 2);
    cr_assert_str_eq(tags->key[1], "tag");
    cr_assert_null(tags->target_key);
    cr_assert_eq(tags->deletes, DELETES_SOFT);
    cr_assert_str_eq(tags->soft_delete_column, "deleted_at");
    cr_assert_not(tags->truncate_apply);
    cr_assert_str_eq(config_target_column(tags, "tag"), "label");
    cr_assert_null(config_target_column(tags, "secret"));
    cr_assert_str_eq(config_target_column(tags, "order_id"), "order_id");
    cr_assert_eq(tags->nrefs, 1);
    cr_assert_str_eq(tags->refs[0].parent, "public.offices");
    cr_assert_eq(tags->refs[0].parent_index, index_of(&cfg, "public.offices"));

    const table_config *audit = &cfg.tables[index_of(&cfg, "public.audit_log")];
    cr_assert_eq(audit->kind, TABLE_KEYLESS);
    cr_assert_eq(audit->nkey, 0);
    cr_assert_eq(audit->deletes, DELETES_IGNORE);

    cr_assert_eq(config_find_source(&cfg, "crm", "order_tags"), index_of(&cfg, "crm.order_tags"));
    cr_assert_eq(config_find_source(&cfg, NULL, "offices"), index_of(&cfg, "public.offices"));
    cr_assert_eq(config_find_source(&cfg, "public", "order_tags"), -1);
    config_free(&cfg);
}

Test(config, env_substitution_in_every_string)
{
    setenv("WB_TEST_SRC", "host=db password=s3cr3t", 1);
    setenv("WB_TEST_SCHEMA", "legacy", 1);
    setenv("WB_TEST_EMPTY", "", 1);
    wb_config cfg;
    cr_assert(parse("{'source': {'dsn': '${WB_TEST_SRC}'},"
                    " 'target': {'dsn': 'host=t${WB_TEST_EMPTY} dbname=${WB_TEST_SCHEMA}_x'},"
                    " 'uuid_namespace': '0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42',"
                    " 'tables': [{'source': '${WB_TEST_SCHEMA}.offices', 'key': 'id'}],"
                    " 'slot': 'cost_$5 ${not a var} $'}",
                    &cfg) == false);
    /* The slot above is invalid on purpose: literal "$" text stays as written. */
    cr_assert_str_eq(err,
                     "walbridge.json: slot: \"cost_$5 ${not a var} $\" is not a valid slot name "
                     "(lower-case letters, digits and underscores, at most 63)");
    cr_assert(parse("{'source': {'dsn': '${WB_TEST_SRC}'},"
                    " 'target': {'dsn': 'host=t${WB_TEST_EMPTY} dbname=${WB_TEST_SCHEMA}_x'},"
                    " 'uuid_namespace': '0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42',"
                    " 'tables': [{'source': '${WB_TEST_SCHEMA}.offices', 'key': 'id'}]}",
                    &cfg),
              "%s", err);
    cr_assert_str_eq(cfg.source_dsn, "host=db password=s3cr3t");
    cr_assert_str_eq(cfg.target_dsn, "host=t dbname=legacy_x");
    cr_assert_str_eq(cfg.tables[0].source, "legacy.offices");
    config_free(&cfg);
}

Test(config, tables_ordered_parents_first_and_stable)
{
    wb_config cfg;
    /* File order: orders, doctors, audit, offices, profiles (children first). */
    cr_assert(parse(HEAD " 'tables': ["
                         "{'source': 'orders', 'key': 'id', 'legacy_key': 'legacy_id',"
                         " 'references': {'doctor_id': 'doctors', 'office_id': 'offices'}},"
                         "{'source': 'doctors', 'key': 'id', 'legacy_key': 'legacy_id',"
                         " 'references': {'office_id': 'public.offices', 'profile_id': "
                         "'profiles'}},"
                         "{'source': 'audit'},"
                         "{'source': 'offices', 'key': 'id', 'legacy_key': 'legacy_id'},"
                         "{'source': 'profiles', 'key': 'id', 'legacy_key': 'legacy_id'}]}",
                    &cfg),
              "%s", err);
    /* Unrelated tables keep their file order (audit before offices). */
    static const char *expected[] = {"public.audit", "public.offices", "public.profiles",
                                     "public.doctors", "public.orders"};
    cr_assert_eq(cfg.ntables, 5);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_str_eq(cfg.tables[i].source, expected[i], "position %zu", i);
        cr_assert_not(cfg.tables[i].in_cycle);
    }
    /* parent_index refers to the final order. */
    const table_config *orders = &cfg.tables[4];
    cr_assert_eq(orders->nrefs, 2);
    cr_assert_str_eq(orders->refs[0].column, "doctor_id");
    cr_assert_eq(orders->refs[0].parent_index, 3);
    cr_assert_eq(orders->refs[1].parent_index, 1);
    cr_assert_eq(cfg.tables[3].refs[0].parent_index, 1);
    cr_assert_eq(cfg.tables[3].refs[1].parent_index, 2);
    config_free(&cfg);
}

Test(config, cycle_is_accepted_and_ordered)
{
    wb_config cfg;
    /* c -> a, a -> b, b -> a: {a, b} is a cycle, kept in file order, before c. */
    cr_assert(parse(HEAD " 'tables': ["
                         "{'source': 'c', 'key': 'id', 'references': {'a_id': 'a'}},"
                         "{'source': 'a', 'key': 'id', 'legacy_key': 'lid',"
                         " 'references': {'b_id': 'b'}},"
                         "{'source': 'b', 'key': 'id', 'legacy_key': 'lid',"
                         " 'references': {'a_id': 'a'}}]}",
                    &cfg),
              "%s", err);
    cr_assert_str_eq(cfg.tables[0].source, "public.a");
    cr_assert_str_eq(cfg.tables[1].source, "public.b");
    cr_assert_str_eq(cfg.tables[2].source, "public.c");
    cr_assert(cfg.tables[0].in_cycle);
    cr_assert(cfg.tables[1].in_cycle);
    cr_assert_not(cfg.tables[2].in_cycle);
    cr_assert_eq(cfg.tables[0].refs[0].parent_index, 1);
    cr_assert_eq(cfg.tables[1].refs[0].parent_index, 0);
    cr_assert_eq(cfg.tables[2].refs[0].parent_index, 0);
    config_free(&cfg);
}

Test(config, self_reference_is_accepted)
{
    wb_config cfg;
    cr_assert(parse(HEAD " 'tables': ["
                         "{'source': 'staff', 'key': 'id', 'legacy_key': 'legacy_id',"
                         " 'references': {'manager_id': 'staff', 'office_id': 'offices'}}," OFFICES
                         "]}",
                    &cfg),
              "%s", err);
    cr_assert_str_eq(cfg.tables[0].source, "public.offices");
    cr_assert_str_eq(cfg.tables[1].source, "public.staff");
    cr_assert(cfg.tables[1].in_cycle);
    cr_assert_not(cfg.tables[0].in_cycle);
    cr_assert_eq(cfg.tables[1].refs[0].parent_index, 1);
    cr_assert_eq(cfg.tables[1].refs[1].parent_index, 0);
    config_free(&cfg);
}

/* ---- one test per class of mistake -------------------------------------- */

Test(config_error, malformed_json_line_and_column)
{
    /* Line 3, column 11 is the ',' where the value of "slot" should be. */
    expect_error("{\n  'source': {'dsn': 'x'},\n  'slot': ,\n  'tables': []\n}",
                 "walbridge.json: line 3, column 11: malformed JSON");
    expect_error("", "walbridge.json: line 1, column 1: malformed JSON");
    expect_error("{'a': 1} trailing", "walbridge.json: line 1, column 10: malformed JSON");
}

Test(config_error, malformed_json_from_file)
{
    char path[] = "/tmp/wb_test_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    static const char text[] = "{\n  \"slot\": \"a\",\n  \"tables\": [\n    {\"source\": \"x\",}\n";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    wb_config cfg;
    cr_assert_not(config_load(path, &cfg, err, sizeof err));
    /* The stray '}' is at line 4, column 20; cJSON reports the position just
     * after a bad token where a string was expected, so allow 20 or 21. */
    char col20[256], col21[256];
    snprintf(col20, sizeof col20, "%s: line 4, column 20: malformed JSON", path);
    snprintf(col21, sizeof col21, "%s: line 4, column 21: malformed JSON", path);
    cr_assert(strcmp(err, col20) == 0 || strcmp(err, col21) == 0, "%s", err);
    unlink(path);
}

Test(config_error, missing_file)
{
    wb_config cfg;
    cr_assert_not(config_load("/nonexistent/walbridge.json", &cfg, err, sizeof err));
    cr_assert_str_eq(err, "/nonexistent/walbridge.json: cannot open: No such file or directory");
}

Test(config_error, unknown_key)
{
    expect_error(HEAD " 'slots': 'x', 'tables': [" OFFICES "]}",
                 "walbridge.json: slots: unknown key (did you mean \"slot\"?)");
    expect_error(HEAD " 'tables': [{'source': 'offices', 'colums': {}}]}",
                 "walbridge.json: tables[0].colums: unknown key (did you mean \"columns\"?)");
    expect_error(HEAD " 'stream': {'batch_rows': 5}, 'tables': [" OFFICES "]}",
                 "walbridge.json: stream.batch_rows: unknown key");
    expect_error(HEAD " 'tables': [{'source': 'x', 'columns': {'exclude': [], 'renames': {}}}]}",
                 "walbridge.json: tables[0].columns.renames: unknown key (did you mean "
                 "\"rename\"?)");
}

Test(config_error, duplicate_key)
{
    expect_error(HEAD " 'slot': 'a', 'slot': 'b', 'tables': [" OFFICES "]}",
                 "walbridge.json: slot: duplicate key");
}

Test(config_error, missing_env_var)
{
    unsetenv("WB_TEST_UNSET_VAR");
    expect_error("{'source': {'dsn': 'host=x password=${WB_TEST_UNSET_VAR}'}}",
                 "walbridge.json: source.dsn: environment variable WB_TEST_UNSET_VAR is not set");
    expect_error(HEAD
                 " 'tables': [{'source': 'x', 'references': {'o_id': '${WB_TEST_UNSET_VAR}'}}]}",
                 "walbridge.json: tables[0].references.o_id: environment variable "
                 "WB_TEST_UNSET_VAR is not set");
}

Test(config_error, wrong_type)
{
    expect_error(HEAD " 'slot': 5, 'tables': [" OFFICES "]}",
                 "walbridge.json: slot: expected a string");
    expect_error(HEAD " 'stream': {'batch_max_rows': '100'}, 'tables': [" OFFICES "]}",
                 "walbridge.json: stream.batch_max_rows: expected an integer");
    expect_error(HEAD " 'stream': {'batch_max_ms': 1.5}, 'tables': [" OFFICES "]}",
                 "walbridge.json: stream.batch_max_ms: expected an integer");
    expect_error(HEAD " 'backfill': {'batch_rows': 0}, 'tables': [" OFFICES "]}",
                 "walbridge.json: backfill.batch_rows: must be at least 1");
    expect_error(HEAD " 'tables': {'source': 'x'}}",
                 "walbridge.json: tables: expected an array of tables");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': 5}]}",
                 "walbridge.json: tables[0].key: expected a column name or an array of column "
                 "names");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': ['a', 7]}]}",
                 "walbridge.json: tables[0].key[1]: expected a string");
    expect_error(HEAD " 'log': 'file.log', 'tables': [" OFFICES "]}",
                 "walbridge.json: log: expected an object");
    expect_error("[1, 2]", "walbridge.json: top level: expected an object");
}

Test(config_error, missing_required)
{
    expect_error("{'target': {'dsn': 'x'}}",
                 "walbridge.json: source: required (an object with \"dsn\")");
    expect_error("{'source': {}, 'target': {'dsn': 'x'}}", "walbridge.json: source.dsn: required");
    expect_error("{'source': {'dsn': ''}, 'target': {'dsn': 'x'}}",
                 "walbridge.json: source.dsn: must not be empty");
    expect_error(HEAD " 'slot': 'a'}", "walbridge.json: tables: required (an array of tables)");
    expect_error(HEAD " 'tables': []}", "walbridge.json: tables: must list at least one table");
    expect_error(HEAD " 'tables': [{'key': 'id'}]}",
                 "walbridge.json: tables[0].source: required (\"schema.table\")");
}

Test(config_error, duplicate_tables)
{
    expect_error(HEAD " 'tables': [" OFFICES ", {'source': 'public.offices', 'target': 'b'}]}",
                 "walbridge.json: tables[1].source: table \"public.offices\" is already "
                 "configured in tables[0]");
    expect_error(HEAD " 'tables': [{'source': 'a', 'target': 'public.t'},"
                      " {'source': 'b', 'target': 't'}]}",
                 "walbridge.json: tables[1].target: target \"public.t\" is also the target of "
                 "tables[0]");
}

Test(config_error, reference_to_unknown_table)
{
    expect_error(HEAD " 'tables': [" OFFICES ", {'source': 'x'}, {'source': 'y'},"
                      " {'source': 'doctors', 'references': {'office_id': 'ofices'}}]}",
                 "walbridge.json: tables[3].references.office_id: unknown table "
                 "\"public.ofices\"");
}

Test(config_error, reference_to_non_uuid_mapped_table)
{
    expect_error(HEAD " 'tables': [{'source': 'offices', 'key': 'id'},"
                      " {'source': 'doctors', 'references': {'office_id': 'offices'}}]}",
                 "walbridge.json: tables[1].references.office_id: table \"public.offices\" is "
                 "not UUID-mapped (no legacy_key)");
}

Test(config_error, reference_on_uuid_mapped_key)
{
    expect_error(HEAD " 'tables': [" OFFICES ", {'source': 'p', 'key': 'id', 'legacy_key': 'l',"
                      " 'references': {'id': 'offices'}}]}",
                 "walbridge.json: tables[1].references.id: column is the key of this "
                 "UUID-mapped table (it becomes legacy_key \"l\"); it cannot also be a reference");
}

Test(config_error, bad_uuid_namespace)
{
    expect_error("{'source': {'dsn': 'a'}, 'target': {'dsn': 'b'},"
                 " 'uuid_namespace': '0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d4', 'tables': []}",
                 "walbridge.json: uuid_namespace: \"0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d4\" is not "
                 "a valid UUID");
    expect_error("{'source': {'dsn': 'a'}, 'target': {'dsn': 'b'}, 'tables': []}",
                 "walbridge.json: uuid_namespace: required (a UUID, e.g. from uuidgen)");
}

Test(config_error, bad_deletes_policy)
{
    expect_error(HEAD " 'tables': [{'source': 'x', 'deletes': 'soft'}]}",
                 "walbridge.json: tables[0].deletes: expected \"apply\", \"ignore\" or "
                 "{\"soft\": \"<column>\"}");
    expect_error(HEAD " 'tables': [{'source': 'x', 'deletes': {'hard': 'x'}}]}",
                 "walbridge.json: tables[0].deletes.hard: unknown key");
    expect_error(HEAD " 'tables': [{'source': 'x', 'deletes': {'soft': 1}}]}",
                 "walbridge.json: tables[0].deletes.soft: expected a string");
    expect_error(HEAD " 'tables': [{'source': 'x', 'truncate': 'cascade'}]}",
                 "walbridge.json: tables[0].truncate: expected \"apply\" or \"ignore\"");
}

Test(config_error, bad_names)
{
    expect_error(HEAD " 'slot': 'Wal-Bridge', 'tables': [" OFFICES "]}",
                 "walbridge.json: slot: \"Wal-Bridge\" is not a valid slot name (lower-case "
                 "letters, digits and underscores, at most 63)");
    expect_error(HEAD " 'state_schema': '1abc', 'tables': [" OFFICES "]}",
                 "walbridge.json: state_schema: \"1abc\" is not a valid schema name (lower-case "
                 "letters, digits and underscores, not starting with a digit, at most 63)");
    expect_error(HEAD " 'tables': [{'source': 'a.b.c'}]}",
                 "walbridge.json: tables[0].source: \"a.b.c\" is not \"schema.table\" or "
                 "\"table\"");
    expect_error(HEAD " 'log': {'level': 'verbose'}, 'tables': [" OFFICES "]}",
                 "walbridge.json: log.level: expected \"debug\", \"info\", \"warn\" or \"error\"");
}

Test(config_error, bad_key_shapes)
{
    expect_error(HEAD " 'tables': [{'source': 'x', 'legacy_key': 'legacy_id'}]}",
                 "walbridge.json: tables[0].legacy_key: a UUID-mapped table (legacy_key) needs "
                 "\"key\" to name exactly one integer source column");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': ['a', 'b'], 'legacy_key': 'l'}]}",
                 "walbridge.json: tables[0].key: a UUID-mapped table (legacy_key) needs \"key\" "
                 "to name exactly one integer source column");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': 'id', 'target_key': 'uuid'}]}",
                 "walbridge.json: tables[0].target_key: only allowed together with legacy_key");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': ['a', 'a']}]}",
                 "walbridge.json: tables[0].key[1]: column \"a\" is listed twice");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': 'id', 'columns': {'exclude': ['id']}}]}",
                 "walbridge.json: tables[0].columns.exclude: \"id\" is a key column and cannot be "
                 "excluded");
}

Test(config_error, rename_clashes_with_uuid_mapping)
{
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': 'id', 'legacy_key': 'legacy_id',"
                      " 'columns': {'rename': {'id': 'old_id'}}}]}",
                 "walbridge.json: tables[0].columns.rename.id: the key of a UUID-mapped table is "
                 "written to legacy_key \"legacy_id\"; it cannot be renamed");
    expect_error(HEAD " 'tables': [{'source': 'x', 'key': 'id', 'legacy_key': 'legacy_id',"
                      " 'columns': {'rename': {'code': 'id'}}}]}",
                 "walbridge.json: tables[0].columns.rename.code: \"id\" is the table's "
                 "target_key column");
    expect_error(HEAD " 'tables': [{'source': 'x', 'columns': {'rename': {'a': 'z', 'b': 'z'}}}]}",
                 "walbridge.json: tables[0].columns.rename.b: \"z\" is also the new name of "
                 "\"a\"");
}

Test(config, default_path)
{
    unsetenv("WALBRIDGE_CONFIG");
    cr_assert_str_eq(config_default_path(NULL), "walbridge.json");
    setenv("WALBRIDGE_CONFIG", "/etc/walbridge/prod.json", 1);
    cr_assert_str_eq(config_default_path(NULL), "/etc/walbridge/prod.json");
    cr_assert_str_eq(config_default_path("cli.json"), "cli.json");
    unsetenv("WALBRIDGE_CONFIG");
}
