/*
 * apply_sql.h — the SQL text the stream applier prepares, built from a table
 * plan and the set of columns a message carries.  Pure: no I/O, unit-tested
 * in tests/unit/test_apply_sql.c.
 *
 * Every statement takes its values as text parameters.  Parameters are left
 * untyped wherever the server infers the type from the target column
 * (VALUES, SET, WHERE col = $n, INSERT ... SELECT), so assignment rules apply
 * (an over-long value is an error, never silently cut by a cast).  The only
 * casts are $n::uuid on computed UUIDv5 values and ::text on comparisons of
 * types that have no equality operator (json, xml, geometric types).
 *
 * The statement also says, parameter by parameter, where each value comes
 * from (apply_param): which catalog column, from the new row or the old row
 * (identity), and how the text is transformed (bytea gets "\x", UUIDv5 of the
 * row's own key or of a referenced parent's key).  A parameter used twice in
 * the SQL text appears once in the list.
 *
 * Shapes (T target table, lk legacy_key, tk target_key, P present columns):
 *   UPSERT      INSERT INTO T (tk, lk, P) VALUES (...) ON CONFLICT (lk | key cols)
 *               DO UPDATE SET P = EXCLUDED.P RETURNING (xmax = 0)
 *   INSERT      INSERT INTO T (P) VALUES (...)                 (keyless)
 *   UPDATE      UPDATE T SET P = ... WHERE key = old key
 *   DELETE      DELETE FROM T WHERE key = old key
 *   SOFT_DELETE UPDATE T SET soft_col = now() WHERE key = old key
 *   KL_*        the same for keyless tables on exactly one row equal to the old
 *               row: WHERE ctid = (SELECT ctid FROM T WHERE c IS NOT DISTINCT
 *               FROM $n AND ... LIMIT 1)
 *   KL_UPSERT   WITH u AS (KL update RETURNING 1) INSERT INTO T (P) SELECT ...
 *               WHERE NOT EXISTS (SELECT 1 FROM u)   (update, else insert)
 *   KEY_UPDATE  UPDATE that changes the key: like UPDATE; for a UUID-mapped table
 *               WITH u AS (UPDATE ... RETURNING tableoid, tk)
 *               [, g AS (INSERT INTO <gone> ... old key, u.tk)]   (referenced parent)
 *               INSERT INTO <state_schema>.moved_keys SELECT u.tableoid, old key, u.tk, now()
 * A DELETE from a UUID-mapped table that some configured table references is
 *   WITH d AS (DELETE ... RETURNING lk, tk) INSERT INTO <gone> SELECT <index>,
 *   d.lk::text, d.tk FROM d ON CONFLICT (tbl, lk) DO UPDATE SET tk = EXCLUDED.tk
 * (its affected-row count is still the rows deleted).  <gone> is the session's
 * TEMP table APPLY_GONE_TABLE (ON COMMIT DELETE ROWS: it holds only what the
 * open target transaction deleted or moved, and spills to disk, not memory).
 * A reference column's value is
 *   COALESCE((SELECT p.tk FROM parent p WHERE p.lk = $a), $b::uuid)
 * with $a the source value and $b its UUIDv5 under the parent's source name;
 * when it matches an old row (WHERE of UPDATE / DELETE, keyless matching) it is
 *   COALESCE((SELECT p.tk FROM parent p WHERE p.lk = $a),
 *            (SELECT g.tk FROM <gone> g WHERE g.tbl = <parent index> AND g.lk = $a::text),
 *            $b::uuid)
 * the live parent, else the parent deleted or moved earlier in this transaction
 * (a cascade: children arrive after their parent), else UUIDv5.  New values
 * (inserts, SET) name a live parent, and skip the second subquery: each costs
 * executor set-up per row even when not evaluated (halved multi-row inserts).
 * When the parent table had a key change (moved_keys; `moved` of
 * apply_sql_build_rows), UUIDv5 may name a moved row, so the last term is
 * apply_sql_key_uuid's chain instead of $b::uuid: the UUID the parent row gets
 * when it arrives (a child before its parent: deferred or no FK on the source).
 * A UUID-mapped UPSERT's target key is $v (UUIDv5).  UPSERT_GUARDED, used for
 * tables with a recorded key change (moved_keys), writes instead the chain
 * apply_sql_key_uuid($v::uuid), so a key reused after a key change (the moved
 * row keeps UUIDv5 of its old key) gets the chain's next UUID, and returns tk
 * as a second column, so the applier can tell (inserted and tk != UUIDv5) and
 * record a uuid_taken conflict.  The chain costs subqueries per row, which is
 * why only guarded tables pay it.
 */
#ifndef WALBRIDGE_APPLY_SQL_H
#define WALBRIDGE_APPLY_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include "common/catalog.h"
#include "common/config.h"
#include "common/strbuf.h"

typedef enum apply_stmt_kind {
    APPLY_STMT_UPSERT = 0,
    APPLY_STMT_INSERT,
    APPLY_STMT_UPDATE,
    APPLY_STMT_DELETE,
    APPLY_STMT_SOFT_DELETE,
    APPLY_STMT_KL_UPDATE,
    APPLY_STMT_KL_UPSERT,
    APPLY_STMT_KL_DELETE,
    APPLY_STMT_KL_SOFT_DELETE,
    APPLY_STMT_KEY_UPDATE,     /* UPDATE that changes the key (records the move) */
    APPLY_STMT_UPSERT_GUARDED, /* UPSERT whose UUIDv5 may be held by a moved row */
    APPLY_STMT_KIND_COUNT
} apply_stmt_kind;

typedef enum apply_param_how {
    APARAM_RAW = 0,  /* the value text as wal2json sent it */
    APARAM_BYTEA,    /* "\x" + the hex text (wal2json drops the prefix) */
    APARAM_V5_ROW,   /* UUIDv5(ns, "<this table's source>:<value>") */
    APARAM_V5_PARENT /* UUIDv5(ns, "<referenced parent's source>:<value>"); NULL stays NULL */
} apply_param_how;

typedef struct apply_param {
    int column; /* index into table_plan.columns */
    bool old;   /* from the old row (identity); for key columns falls back to new */
    apply_param_how how;
} apply_param;

typedef struct apply_stmt {
    char *sql;           /* owned */
    apply_param *params; /* owned, nparams entries: one row's parameters, $1 first */
    int nparams;         /* per row; row r's parameters are $(r * nparams + 1) ... */
    int nrows;           /* rows in the VALUES list (UPSERT / INSERT), else 1 */
} apply_stmt;

/* True when the column is written to the target (not skipped, not generated). */
bool apply_sql_column_travels(const table_plan *t, size_t column);
/* True when the column is a source key column of t. */
bool apply_sql_is_key_column(const table_plan *t, size_t column);

/*
 * Builds one statement for table t.  new_present / old_present (ncolumns
 * entries each, may be NULL for "none") say which catalog columns the
 * message carries in columns / identity.  Returns false with a reason in err
 * when no sensible statement exists (no key value, nothing to match on).
 * On success the caller owns *out (apply_stmt_free).
 */
bool apply_sql_build(const wb_config *cfg, const table_plan *t, apply_stmt_kind kind,
                     const bool *new_present, const bool *old_present, apply_stmt *out, char *err,
                     size_t errlen);
/*
 * The same for nrows rows in one statement (UPSERT[_GUARDED] and INSERT only): VALUES
 * (row 1), (row 2), ...; RETURNING gives one row per input row, in order.
 * The rows must not share a key (ON CONFLICT cannot touch a row twice).
 * moved (per wb_config table, or NULL for none): the tables with a recorded key
 * change, whose references from t fall back to apply_sql_key_uuid.
 */
bool apply_sql_build_rows(const wb_config *cfg, const table_plan *t, apply_stmt_kind kind,
                          const bool *new_present, const bool *old_present, int nrows,
                          const bool *moved, apply_stmt *out, char *err, size_t errlen);
void apply_stmt_free(apply_stmt *s);

/* Appends "TRUNCATE a, b, c" for the given wb_config table indexes. */
void apply_sql_truncate(const wb_config *cfg, const int *tables, size_t ntables, strbuf *out);
/* Session TEMP table of the keys deleted or moved in the open transaction. */
#define APPLY_GONE_TABLE "pg_temp.wb_gone_keys"
/* Appends the CREATE TEMP TABLE IF NOT EXISTS for APPLY_GONE_TABLE (once per session). */
void apply_sql_gone_table_create(strbuf *out);
/* Appends the CREATE TABLE IF NOT EXISTS <state_schema>.moved_keys (key changes applied). */
void apply_sql_moved_keys_create(const char *state_schema, strbuf *out);
/* Appends the CREATE INDEX IF NOT EXISTS on moved_keys (target_key) that apply_sql_key_uuid probes.
 */
void apply_sql_moved_keys_index(const char *state_schema, strbuf *out);
/* How far apply_sql_key_uuid follows its chain: a key reused after as many key changes. */
#define APPLY_KEY_UUID_MAX 100
/*
 * Appends the UUID that legacy key K of UUID-mapped table t has when no row holds
 * K, for a table with recorded key changes (v5: an SQL expression of type uuid,
 * UUIDv5 of K, e.g. "$3::uuid" or "s.wb_id"): the first of the chain
 *   c0 = v5,  c(n+1) = md5('walbridge:' || cn) with version and variant nibbles '8'
 * (a UUIDv8) that no row of T holds and no recorded key change took
 * (<state_schema>.moved_keys.target_key):
 *   (WITH RECURSIVE wb_c(u, n) AS (SELECT v5, 0 UNION ALL SELECT c(n+1), n + 1
 *    FROM wb_c WHERE n < APPLY_KEY_UUID_MAX AND (EXISTS (T x: x.tk = u) OR
 *    EXISTS (moved_keys m: m.target_key = u))) SELECT u ... ORDER BY n DESC LIMIT 1)
 * A moved row keeps its UUID (maybe c0 of its old key), so a key reused after a
 * key change gets the next UUID of the chain; and because a reference to K whose
 * parent row is not in the target yet takes the same expression, it names the
 * row that K's insert will create, not the moved one, whichever comes first.
 * The moved_keys test keeps the chain stable after a moved row is deleted.  T is
 * not aliased outside, so v5 may name columns of an outer query.  Shared by the
 * stream (UPSERT_GUARDED, references to such parents) and backfill.
 */
void apply_sql_key_uuid(const table_config *t, const char *state_schema, const char *v5,
                        strbuf *out);
/*
 * Appends the last term of a reference's COALESCE, for a parent row not in the target:
 * v5 (the parent key's UUIDv5, an SQL expression), or apply_sql_key_uuid(v5) when
 * moved says the parent table had a key change (moved: per wb_config table, or NULL).
 */
void apply_sql_ref_fallback(const wb_config *cfg, int parent, const bool *moved, const char *v5,
                            strbuf *out);
/* Appends the INSERT into <schema>.conflicts taking $1 slot, $2 lsn, $3 table, $4 kind, $5 key. */
void apply_sql_conflict_insert(const char *state_schema, strbuf *out);

#endif
