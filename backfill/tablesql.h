/*
 * tablesql.h — the per-table layout backfill and verify work with, and the
 * SQL text they send (pure: builds strings, runs nothing).
 *
 * A table_layout is the catalog's column plan reduced to what travels: the
 * mapped columns (not skipped, not generated) in source attnum order, which
 * of them form the key, and which reference a UUID-mapped parent.
 *
 * "Source form" is how a row looks on the source: integer keys and FK
 * values, data columns in their text form.  Both diff queries render every row in
 * source form and hash it in SQL:
 *
 *     hash_record_extended(ROW(col1::bigint, col2::text COLLATE "C", ...), 0)
 *
 * (a column as its own type where that hash is exact, else as text; text
 * byte for byte, whatever the column's collation, see tablesql.c)
 *
 * (64 bits: enough to tell a stale row from a current one with the same
 * key; a keyless table's key is the row's md5 instead, see below.  With a
 * server older than PostgreSQL 14 on either side: hashtextextended of the
 * ROW's text (11+), else md5 of it; see tablesql_hash_for_servers.)
 *
 * ROW's text output quotes values and leaves NULL empty, so NULL and '' hash
 * differently.  On the target, a UUID-mapped key renders as its legacy_key
 * column and a reference as the parent's legacy_key (LEFT JOIN on the
 * parent's target_key), so the texts are byte-identical when the rows agree.
 *
 * Every diff query has this shape, sorted the way keyset.h compares:
 *
 *     COPY (SELECT * FROM (SELECT <key exprs> AS k0.., <hash> AS h [, cols])
 *           x [WHERE (x.k0, ..) > (<resume values>)] ORDER BY 1, ..) TO STDOUT
 *
 * Integer keys sort numerically; any other key column sorts as text
 * COLLATE "C".  The filter argument of the diff queries is a set of
 * TABLESQL_RESUME (keys after the resume point) and TABLESQL_RANGE_LO/HI (a
 * single integer key in [walbridge.range_lo, walbridge.range_hi): one piece of
 * a table copied on several lanes at once).  A keyless table's key is the row's md5(ROW(...)::text)
 * (and there is no separate h column).  COPY takes no parameters, so the resume point travels
 * as text through set_config('walbridge.resume_<i>', $1, false) and the
 * query reads current_setting('walbridge.resume_<i>').
 *
 * Copying goes through a TEMP staging table in source form (plus UUIDv5
 * columns filled in C) and one set-based INSERT ... SELECT that joins the
 * parents by legacy_key: COALESCE(parent.target_key, staged v5), so a child
 * references the row that holds the parent's legacy key now (after a key
 * change and a reuse of the old key: the new row, not the moved one).
 *
 * Ownership: table_layout_free releases the layout; the column names borrow
 * from the catalog and config, which must outlive it.
 */
#ifndef WALBRIDGE_TABLESQL_H
#define WALBRIDGE_TABLESQL_H

#include <stdbool.h>
#include <stddef.h>

#include "backfill/keyset.h"
#include "common/catalog.h"
#include "common/config.h"
#include "common/strbuf.h"

typedef struct layout_column {
    const char *source;      /* source column name */
    const char *target;      /* target column name (legacy_key for a UUID-mapped key) */
    const char *source_type; /* format_type on the source */
    const char *target_type; /* format_type on the target */
    bool target_builtin;     /* target_type is built in: the source can cast to it */
    bool is_key;
    int parent; /* reference: index into wb_config.tables; else -1 */
} layout_column;

/* How a keyed row is hashed; both sides must use the same. */
typedef enum tablesql_hash_kind {
    TABLESQL_HASH_RECORD = 0, /* hash_record_extended(ROW(texts), 0): PostgreSQL 14+ */
    TABLESQL_HASH_TEXT,       /* hashtextextended(ROW(texts)::text, 0): 11+ */
    TABLESQL_HASH_MD5         /* md5(ROW(texts)::text): any version */
} tablesql_hash_kind;

typedef struct table_layout {
    const wb_config *cfg;
    const table_config *table;
    layout_column *cols; /* mapped columns, source attnum order */
    size_t ncols;
    size_t nkey;                 /* keyless: 1 (the row hash) */
    int key_col[KEYSET_MAX_KEY]; /* index into cols; -1 for a keyless hash key */
    keyset_key_type key_type[KEYSET_MAX_KEY];
    keyset_spec spec;        /* points at key_type */
    tablesql_hash_kind hash; /* TABLESQL_HASH_RECORD unless set otherwise after init */
} table_layout;

/*
 * Builds the layout.  Returns false with a one-line reason in err when the
 * table cannot be diffed (a key column not mapped, too many key columns).
 */
bool table_layout_init(table_layout *lay, const wb_config *cfg, const table_plan *plan, char *err,
                       size_t errlen);
void table_layout_free(table_layout *lay);

/* The cheapest row hash both servers have (PQserverVersion numbers). */
tablesql_hash_kind tablesql_hash_for_servers(int source_version, int target_version);

/* Fields of one source diff line: nkey keys, [hash], then (with_rows) ncols values. */
size_t tablesql_hash_field(const table_layout *lay); /* index of h; == nkey-1 when keyless */
size_t tablesql_row_field(const table_layout *lay);  /* index of the first row value */

/* The source diff query; with_rows adds every mapped column after the hash. */
void tablesql_source_diff(const table_layout *lay, bool with_rows, unsigned filter, strbuf *out);
/*
 * The source query of a copy into a table with no target rows yet: every
 * row is missing, so the rows are streamed with an empty hash (keyed tables;
 * a keyless table's key is its hash, which stays).
 */
void tablesql_source_all_rows(const table_layout *lay, unsigned filter, strbuf *out);
/*
 * Fetch by key (rowfetch.h): the rows whose keys are in the text[] parameters
 * $1..$nkey (one array per key column, element i of each forming key i),
 * as "k0.., c0.." -- the same fields a source diff line with rows has, minus
 * the hash.  Each key text is cast back to the key column's source type, so
 * the table's key index is used.  Keyed tables only.
 */
void tablesql_source_fetch(const table_layout *lay, strbuf *out);
/* Appends one element (len bytes of text) to the inside of a text[] literal. */
void tablesql_array_append(strbuf *arr, const char *value, size_t len);
/*
 * Keys only (backfill without --include-stale: no stale check, so nothing is
 * hashed): the diff queries' shape with an empty h.  A keyless table's key
 * is its hash, which stays.
 */
void tablesql_source_keys(const table_layout *lay, unsigned filter, strbuf *out);
void tablesql_target_keys(const table_layout *lay, unsigned filter, strbuf *out);
/* SELECT EXISTS: does the target hold any row of the table with a source-form key? */
void tablesql_target_any(const table_layout *lay, strbuf *out);
/*
 * The target diff query (rows translated back to source form).  When
 * tablesql_target_diff_has_orphans says so, it also yields the orphans
 * (below) with a NULL key field, for the reader to count and skip.
 */
void tablesql_target_diff(const table_layout *lay, unsigned filter, strbuf *out);
/*
 * For an identity-mapped table whose key includes a reference (order_tags):
 * counts the target rows whose parent row is gone (orphans), which have no
 * source-form key and so cannot take part in the merge.  False (nothing
 * appended) for other tables.  Needed only when the diff query does not yield
 * them (resume).  A row whose parent exists but has no legacy key (created in
 * the target only) is neither compared nor an orphan, like that parent.
 */
bool tablesql_target_orphans(const table_layout *lay, strbuf *out);
/*
 * Deletes the orphans (as above) under the table's "deletes" policy, like
 * tablesql_extra_delete: they are counted as extra.  False (nothing appended)
 * for tables that cannot have orphans.
 */
bool tablesql_orphans_delete(const table_layout *lay, strbuf *out);
/*
 * True when tablesql_target_diff with this filter yields orphans with a NULL key field
 * (a whole-table diff: no resume point, no key range).
 */
bool tablesql_target_diff_has_orphans(const table_layout *lay, unsigned filter);
/* SELECT set_config('walbridge.resume_<i>', $1, false) for key column i. */
void tablesql_resume_setting(size_t i, strbuf *out);
/* SELECT set_config('walbridge.range_lo' or '_hi', $1, false): a piece's bound. */
void tablesql_range_setting(bool high, strbuf *out);

/* The diff queries' filter (bits; true as a filter means TABLESQL_RESUME). */
#define TABLESQL_RESUME 1u
#define TABLESQL_RANGE_LO 2u /* x.k0 >= current_setting('walbridge.range_lo')::bigint */
#define TABLESQL_RANGE_HI 4u /* x.k0 < current_setting('walbridge.range_hi')::bigint */

/* CREATE TEMP TABLE for the staged rows (name: wb_stage_<index>). */
void tablesql_stage_create(const table_layout *lay, int index, strbuf *out);
/* COPY wb_stage_<index> FROM STDIN. */
void tablesql_stage_copy(int index, strbuf *out);
/* Number of COPY fields of a staged row: ncols + v5 id (UUID-mapped) + one per reference. */
size_t tablesql_stage_width(const table_layout *lay);
/*
 * References to a parent table with a recorded key change (<state_schema>.moved_keys):
 * a moved row may hold the UUIDv5 of a legacy key the source now uses for a new row.
 * A reference whose parent row is not in the target yet (staged in a later batch, or
 * its table not in the run) then falls back to the UUID that parent row will get
 * (apply_sql_key_uuid), not to UUIDv5.  Versions of walbridge before that wrote such
 * a reference of a UUID-mapped child NULL and recorded the row in
 * <state_schema>.pending_refs (slot, table_name, row_key, ref_column, parent_key, all
 * text); tablesql_pending_fix re-points what they left.
 */
typedef struct tablesql_pending {
    const bool *moved; /* per wb_config table: moved_keys records a key change of it */
    const char *state_schema;
    const char *slot;
} tablesql_pending;

/* True when layout column i may have such a record (pending may be NULL: none is). */
bool tablesql_pends(const table_layout *lay, const tablesql_pending *pending, size_t i);

/*
 * INSERT INTO target SELECT ... FROM the stage; ON CONFLICT DO NOTHING or (update) DO UPDATE.
 * moved (per wb_config table, or NULL: none): tables with a recorded key change.  A new
 * row of such a table whose UUIDv5 a moved row holds (or held) gets the next UUID of its
 * chain, as the stream does; a reference to such a parent not in the target falls back
 * to the same chain (apply_sql_key_uuid).
 */
void tablesql_stage_insert(const table_layout *lay, int index, bool update, const bool *moved,
                           strbuf *out);

/*
 * For column i (tablesql_pends), with $1 the slot, $2 the table's source name and $3
 * the column's target name:
 *   WITH fixed AS (UPDATE T c SET ref = p.tk FROM pending_refs f JOIN Parent p ON
 *   p.lk = f.parent_key::type WHERE f.slot = $1 AND f.table_name = $2 AND
 *   f.ref_column = $3 AND c.lk = f.row_key::type AND c.ref IS NULL RETURNING
 *   f.row_key) DELETE FROM pending_refs f ... (the re-pointed rows, and those whose row
 *   is gone or holds a reference again)
 */
void tablesql_pending_fix(const table_layout *lay, const tablesql_pending *pending, size_t i,
                          strbuf *out);

/*
 * Direct load (backfill --defer-indexes, a table that was empty): COPY T (target_key,
 * targets of the mapped columns) FROM STDIN.  A row line holds its UUIDv5, then the
 * mapped values with each reference replaced by the parent's UUIDv5 (parents loaded
 * the same way, so every parent row has its UUIDv5).
 */
void tablesql_direct_copy(const table_layout *lay, strbuf *out);

/* CREATE TEMP TABLE for extra keys in source form (name: wb_extra_<index>). */
void tablesql_extra_create(const table_layout *lay, int index, strbuf *out);
void tablesql_extra_copy(int index, strbuf *out);
/*
 * Deletes the target rows named in wb_extra_<index> (keyless: that many copies
 * of a hash).  With the table's "deletes": {"soft": col} policy it is an UPDATE
 * setting col = now() on those rows where col is still NULL instead.  (The
 * "ignore" policy writes nothing: the caller does not collect extra keys.)
 */
void tablesql_extra_delete(const table_layout *lay, int index, strbuf *out);

#endif
