/*
 * column_fixture.h — builds hand-made column plans for the SQL-builder unit
 * tests (test_apply_sql.c, test_apply_bulk.c), without a catalog query.
 */
#ifndef WALBRIDGE_TEST_COLUMN_FIXTURE_H
#define WALBRIDGE_TEST_COLUMN_FIXTURE_H

#include <stdbool.h>
#include "common/catalog.h"

/* One column: same type on both sides; target NULL means skipped. */
static inline void column(column_plan *c, const char *name, const char *target, const char *type,
                          column_role role, int parent)
{
    c->source = (char *)name;
    c->target = (char *)target;
    c->source_type = (char *)type;
    c->target_type = (char *)type;
    c->role = role;
    c->ref_parent = parent;
    c->skipped = target == NULL;
    c->generated = false;
}

#endif
