/*
 * batchwriter.c — staged, pipelined, checkpointed batch writes of backfill
 * (see batchwriter.h).
 *
 * Life of a batch on connection c:  BEGIN; COPY wb_stage_N FROM STDIN (rows
 * streamed as the diff finds them); close: end COPY, PQsendQuery(INSERT ...
 * SELECT) and move on; finish (when the other connection's newer batch is
 * closed, or at the end): read the INSERT's result, upsert the checkpoint,
 * COMMIT.  The extra keys are COPYed and DELETEd at close, before the INSERT.
 * A direct batch (batch_writer.direct) COPYs into the table itself and sends no
 * INSERT.
 */
#include "backfill/batchwriter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill/bfstate.h"
#include "backfill/progress.h"
#include "common/copytext.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"
#include "common/uuidmap.h"

void bw_init(batch_writer *bw, const table_layout *lay, int index, PGconn *const *conns, int nconns,
             const char *state_schema, const char *slot, bool update_stale, int64_t rows_copied)
{
    memset(bw, 0, sizeof *bw);
    bw->lay = lay;
    bw->index = index;
    bw->state_schema = state_schema;
    bw->slot = slot;
    bw->nconns = nconns < 1 ? 1 : (nconns > BW_MAX_CONNS ? BW_MAX_CONNS : nconns);
    for (int i = 0; i < bw->nconns; i++) {
        bw->w[i].conn = conns[i];
        strbuf_init(&bw->w[i].extras);
        strbuf_init(&bw->w[i].ckpt_key);
    }
    strbuf_init(&bw->line);
    strbuf_init(&bw->insert_sql);
    strbuf_init(&bw->delete_sql);
    strbuf_init(&bw->orphan_sql);
    bw->update_stale = update_stale;
    tablesql_stage_insert(lay, index, update_stale, NULL, &bw->insert_sql);
    tablesql_extra_delete(lay, index, &bw->delete_sql);
    bw->rows_copied = rows_copied;
}

void bw_free(batch_writer *bw)
{
    for (int i = 0; i < bw->nconns; i++) {
        strbuf_free(&bw->w[i].extras);
        strbuf_free(&bw->w[i].ckpt_key);
    }
    strbuf_free(&bw->line);
    strbuf_free(&bw->insert_sql);
    free(bw->moved);
    strbuf_free(&bw->delete_sql);
    strbuf_free(&bw->orphan_sql);
}

/* The query's one boolean; false (logged) on failure. */
static bool query_bool(PGconn *conn, const char *what, const char *sql, const char *param,
                       bool *value)
{
    const char *params[1] = {param};
    PGresult *res = pgconn_query(conn, what, sql, 1, params, NULL);
    if (res == NULL)
        return false;
    *value = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

/*
 * *moved: <state_schema>.moved_keys (created by the stream, which the caller found
 * there) records a key change of UUID-mapped table t, so a moved row may hold the
 * UUIDv5 of a key now reused.
 */
static bool read_moved_keys(batch_writer *bw, PGconn *conn, const table_config *t, bool *moved)
{
    *moved = false;
    if (t->kind != TABLE_UUID_MAPPED)
        return true;
    strbuf name, sql;
    strbuf_init(&name);
    strbuf_init(&sql);
    pgconn_append_qualified(&name, t->target_schema, t->target_name);
    strbuf_append(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    pgconn_append_qualified(&sql, bw->state_schema, "moved_keys");
    strbuf_append(&sql, " WHERE table_oid = to_regclass($1))");
    bool ok = query_bool(conn, t->source, sql.data, name.data, moved);
    strbuf_free(&name);
    strbuf_free(&sql);
    return ok;
}

/*
 * bw->moved for the table and its parents, and whether earlier versions may have left
 * references of it waiting in pending_refs (tablesql_pends).
 */
static bool read_moved_parents(batch_writer *bw, PGconn *conn)
{
    const table_layout *lay = bw->lay;
    const wb_config *cfg = lay->cfg;
    bw->moved = wb_xcalloc(cfg->ntables > 0 ? cfg->ntables : 1, sizeof *bw->moved);
    bool exists = false;
    if (!state_table_exists(conn, bw->state_schema, "moved_keys", &exists))
        return false;
    int self = (int)(lay->table - cfg->tables);
    bool ok = !exists || read_moved_keys(bw, conn, lay->table, &bw->moved[self]);
    for (size_t i = 0; ok && exists && i < lay->ncols; i++) {
        int p = lay->cols[i].parent;
        if (p >= 0 && p != self)
            ok = read_moved_keys(bw, conn, &cfg->tables[p], &bw->moved[p]);
    }
    bw->pending =
        (tablesql_pending){.moved = bw->moved, .state_schema = bw->state_schema, .slot = bw->slot};
    for (size_t i = 0; i < lay->ncols; i++)
        bw->fix_pending = bw->fix_pending || tablesql_pends(lay, &bw->pending, i);
    return ok;
}

/*
 * bw->parent_rows: the planner's row counts (pg_class.reltuples) of the parent tables
 * the insert joins, one per reference column, summed; 0 when one is unknown (never
 * analyzed) or empty.
 */
static bool read_parent_rows(batch_writer *bw, PGconn *conn)
{
    const table_layout *lay = bw->lay;
    bw->njoins = 0;
    bw->parent_rows = 0;
    bool known = true;
    for (size_t i = 0; i < lay->ncols; i++) {
        int p = lay->cols[i].parent;
        if (p < 0)
            continue;
        strbuf name;
        strbuf_init(&name);
        pgconn_append_qualified(&name, lay->cfg->tables[p].target_schema,
                                lay->cfg->tables[p].target_name);
        const char *params[1] = {name.data};
        PGresult *res = pgconn_query(conn, lay->table->source,
                                     "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)",
                                     1, params, NULL);
        strbuf_free(&name);
        if (res == NULL)
            return false;
        double rows = PQntuples(res) == 1 ? strtod(PQgetvalue(res, 0, 0), NULL) : 0;
        PQclear(res);
        known = known && rows > 0;
        bw->parent_rows += rows;
        bw->njoins++;
    }
    if (!known)
        bw->parent_rows = 0;
    return true;
}

bool bw_prepare(batch_writer *bw, bool extras)
{
    strbuf sql;
    strbuf_init(&sql);
    bool ok = true;
    for (int i = 0; ok && i < bw->nconns; i++) {
        strbuf_reset(&sql);
        tablesql_stage_create(bw->lay, bw->index, &sql);
        ok = pgconn_exec(bw->w[i].conn, bw->lay->table->source, sql.data);
        if (ok && extras) {
            strbuf_reset(&sql);
            tablesql_extra_create(bw->lay, bw->index, &sql);
            ok = pgconn_exec(bw->w[i].conn, bw->lay->table->source, sql.data);
        }
    }
    strbuf_free(&sql);
    if (!ok || (bw->moved == NULL &&
                (!read_moved_parents(bw, bw->w[0].conn) || !read_parent_rows(bw, bw->w[0].conn))))
        return false;
    const wb_config *cfg = bw->lay->cfg;
    bool any = false;
    for (size_t i = 0; i < cfg->ntables; i++)
        any = any || bw->moved[i];
    if (bw->moved[bw->lay->table - cfg->tables])
        log_info("%s: key changes were applied (moved_keys): a new row whose UUIDv5 a moved "
                 "row holds gets the next UUID of its chain",
                 bw->lay->table->source);
    else if (any)
        log_info("%s: references a table with key changes (moved_keys): a reference to a "
                 "parent row not in the target yet takes the UUID that row will get",
                 bw->lay->table->source);
    if (any) {
        strbuf_reset(&bw->insert_sql);
        tablesql_stage_insert(bw->lay, bw->index, bw->update_stale, bw->moved, &bw->insert_sql);
    }
    strbuf_reset(&bw->orphan_sql);
    if (extras)
        tablesql_orphans_delete(bw->lay, &bw->orphan_sql);
    return ok;
}

void bw_orphans_found(batch_writer *bw, uint64_t n)
{
    bw->orphans = n;
}

static bool ensure_txn(bw_conn *c)
{
    if (c->in_txn)
        return true;
    if (!pgconn_exec(c->conn, "backfill: BEGIN", "BEGIN"))
        return false;
    c->in_txn = true;
    return true;
}

/* Collects results until NULL; false (logged) when one is an error. */
static bool drain(PGconn *conn, const char *table, const char *what, uint64_t *affected)
{
    bool ok = true;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK) { /* SET gives "": counts 0 */
            if (affected != NULL)
                *affected += strtoull(PQcmdTuples(res), NULL, 10);
        } else {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            log_error("%s: %s failed: %s (SQLSTATE %s)", table, what, PQresultErrorMessage(res),
                      state != NULL ? state : "none");
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

static bool start_copy(PGconn *conn, const char *sql, const char *table)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COPY_IN;
    if (!ok)
        log_error("%s: starting COPY failed: %s", table, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

/* NUL-terminated copy of a short field (integer key text) for uuidmap_v5. */
static void field_text(const char *value, size_t len, char *buf, size_t cap)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(buf, value, n);
    buf[n] = '\0';
}

/* The UUIDv5 text of key (len bytes) in source table source_table. */
static void v5_of(const batch_writer *bw, const char *source_table, const char *value, size_t len,
                  char uuid[UUID_TEXT_LEN + 1])
{
    char key[64];
    field_text(value, len, key, sizeof key);
    uuidmap_v5(bw->lay->cfg->uuid_namespace, source_table, key, uuid);
}

/*
 * One row line.  Staged: the mapped values, the row's UUIDv5, one UUIDv5 per
 * reference.  Direct: the row's UUIDv5, then the mapped values with each reference
 * replaced by its UUIDv5 (tablesql_direct_copy's columns).
 */
static void build_line(batch_writer *bw, const keyset_entry *src)
{
    const table_layout *lay = bw->lay;
    strbuf *line = &bw->line;
    char uuid[UUID_TEXT_LEN + 1];
    strbuf_reset(line);
    bool mapped = lay->table->kind == TABLE_UUID_MAPPED;
    if (mapped)
        v5_of(bw, lay->table->source, src->key[0], src->key_len[0], uuid);
    if (mapped && bw->direct) {
        strbuf_append(line, uuid);
        strbuf_append_char(line, '\t');
    }
    for (size_t i = 0; i < lay->ncols; i++) {
        if (i > 0)
            strbuf_append_char(line, '\t');
        int parent = lay->cols[i].parent;
        if (bw->direct && parent >= 0 && src->row[i] != NULL) {
            v5_of(bw, lay->cfg->tables[parent].source, src->row[i], src->row_len[i], uuid);
            strbuf_append(line, uuid);
        } else {
            copytext_escape(line, src->row[i], src->row_len[i]);
        }
    }
    if (mapped && !bw->direct) {
        strbuf_append_char(line, '\t');
        strbuf_append(line, uuid);
    }
    for (size_t i = 0; !bw->direct && i < lay->ncols; i++) {
        const layout_column *c = &lay->cols[i];
        if (c->parent < 0)
            continue;
        strbuf_append_char(line, '\t');
        if (src->row[i] == NULL) {
            strbuf_append(line, "\\N");
            continue;
        }
        v5_of(bw, lay->cfg->tables[c->parent].source, src->row[i], src->row_len[i], uuid);
        strbuf_append(line, uuid);
    }
    strbuf_append_char(line, '\n');
}

bool bw_stage(batch_writer *bw, const keyset_entry *src, bool stale)
{
    bw_conn *c = &bw->w[bw->cur];
    const char *table = bw->lay->table->source;
    if (!ensure_txn(c))
        return false;
    if (!c->copying) {
        strbuf sql;
        strbuf_init(&sql);
        if (bw->direct)
            tablesql_direct_copy(bw->lay, &sql);
        else
            tablesql_stage_copy(bw->index, &sql);
        bool ok = start_copy(c->conn, sql.data, table);
        strbuf_free(&sql);
        if (!ok)
            return false;
        c->copying = true;
    }
    build_line(bw, src);
    if (PQputCopyData(c->conn, bw->line.data, (int)bw->line.len) != 1) {
        log_error("%s: writing to the staging table failed: %s", table, PQerrorMessage(c->conn));
        return false;
    }
    if (stale)
        c->stale++;
    else
        c->missing++;
    return true;
}

void bw_extra(batch_writer *bw, const char *key, size_t len)
{
    bw_conn *c = &bw->w[bw->cur];
    strbuf_append_len(&c->extras, key, len);
    strbuf_append_char(&c->extras, '\n');
    c->nextras++;
}

size_t bw_batch_size(const batch_writer *bw)
{
    const bw_conn *c = &bw->w[bw->cur];
    return (size_t)(c->missing + c->stale + c->nextras);
}

static bool finish_batch(batch_writer *bw, bw_conn *c, bool done);

/* COPYs the batch's extra keys (there are some) and DELETEs their rows. */
static bool delete_extras(batch_writer *bw, bw_conn *c, uint64_t *deleted)
{
    const char *table = bw->lay->table->source;
    strbuf sql;
    strbuf_init(&sql);
    tablesql_extra_copy(bw->index, &sql);
    bool ok = start_copy(c->conn, sql.data, table);
    strbuf_free(&sql);
    if (!ok)
        return false;
    if (PQputCopyData(c->conn, c->extras.data, (int)c->extras.len) != 1 ||
        PQputCopyEnd(c->conn, NULL) != 1) {
        log_error("%s: writing extra keys failed: %s", table, PQerrorMessage(c->conn));
        return false;
    }
    if (!drain(c->conn, table, "COPY of extra keys", NULL))
        return false;
    PGresult *res = pgconn_query(c->conn, table, bw->delete_sql.data, 0, NULL, NULL);
    if (res == NULL)
        return false;
    *deleted = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return true;
}

/*
 * Closes the batch on c: ends its COPY, deletes the extra keys, and sends the INSERT
 * without waiting.  Extras go first: a missing row may collide with an extra one on a
 * unique constraint (a legacy record deleted and created again under a new key with
 * the same email; a text key under a case-insensitive collation), and inserted first
 * it would fail, or conflict and then be deleted with the extra.
 */
static bool close_batch(batch_writer *bw, bw_conn *c, const char *ckpt_key)
{
    const char *table = bw->lay->table->source;
    strbuf_reset(&c->ckpt_key);
    if (ckpt_key != NULL)
        strbuf_append(&c->ckpt_key, ckpt_key);
    c->queued = true;
    bool staged_rows = c->copying;
    if (c->copying) {
        c->copying = false;
        if (PQputCopyEnd(c->conn, NULL) != 1) {
            log_error("%s: ending COPY into the staging table failed: %s", table,
                      PQerrorMessage(c->conn));
            return false;
        }
        if (bw->direct ? !drain(c->conn, table, "COPY into the table", &c->copied_direct)
                       : !drain(c->conn, table, "COPY into the staging table", NULL))
            return false;
    }
    if (c->nextras > 0) {
        /* The older batch on the other connection is finished (committed) first: its
         * INSERT, maybe still running, could meet a row this DELETE removes and wait
         * for this transaction, which commits only after that batch: a hang. */
        int self = (int)(c - bw->w);
        for (int step = 1; step < bw->nconns; step++) {
            bw_conn *older = &bw->w[(self + step) % bw->nconns];
            if (older->queued && !finish_batch(bw, older, false))
                return false;
        }
        if (!ensure_txn(c) || !delete_extras(bw, c, &c->extra_deleted))
            return false;
    }
    if (!staged_rows || bw->direct)
        return true;
    /* A batch small next to its parents (BW_PROBE_COST): an index probe per staged row
     * and reference costs less than hashing the whole parent tables, which the planner
     * prefers because it prices random page reads as disk reads (measured: 6.7k staged
     * order_tags probe orders in 70 ms, hashing its 437k rows took 310 ms). */
    double staged = (double)(c->missing + c->stale);
    bool probe = bw->njoins > 0 && bw->parent_rows > 0 &&
                 BW_PROBE_COST * staged * bw->njoins < bw->parent_rows;
    strbuf sql;
    strbuf_init(&sql);
    if (probe) {
        log_debug("%s: %.0f staged rows probe their parents' legacy-key indexes (%.0f parent "
                  "rows)",
                  table, staged, bw->parent_rows);
        strbuf_append(&sql, PGCONN_JOINS_BY_INDEX "; ");
    }
    strbuf_append(&sql, bw->insert_sql.data);
    int sent = PQsendQuery(c->conn, sql.data);
    strbuf_free(&sql);
    if (!sent) {
        log_error("%s: sending the insert failed: %s", table, PQerrorMessage(c->conn));
        return false;
    }
    c->sent = true;
    return true;
}

/* Finishes the closed batch on c: insert result, orphans, checkpoint, COMMIT. */
static bool finish_batch(batch_writer *bw, bw_conn *c, bool done)
{
    const char *table = bw->lay->table->source;
    uint64_t affected = c->copied_direct, deleted = c->extra_deleted;
    c->copied_direct = 0;
    c->extra_deleted = 0;
    if (c->sent) {
        c->sent = false;
        if (!drain(c->conn, table, "insert of staged rows", &affected))
            return false;
    }
    if (!ensure_txn(c))
        return false;
    if (done && bw->orphans > 0 && bw->orphan_sql.len > 0) {
        PGresult *res = pgconn_query(c->conn, table, bw->orphan_sql.data, 0, NULL, NULL);
        if (res == NULL)
            return false;
        deleted += strtoull(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    uint64_t staged = c->missing + c->stale;
    if (affected < staged)
        log_info("%s: %" PRIu64 " of %" PRIu64 " staged rows were already present (written "
                 "concurrently, e.g. by the stream) and left as they are",
                 table, staged - affected, staged);
    int64_t rows_copied = bw->rows_copied + (int64_t)c->missing;
    if (!bw->no_checkpoint &&
        !bfstate_checkpoint_set(c->conn, bw->state_schema, bw->slot, table,
                                c->ckpt_key.len > 0 ? c->ckpt_key.data : NULL, rows_copied, done))
        return false;
    if (!pgconn_exec(c->conn, "backfill: COMMIT", "COMMIT"))
        return false;
    c->in_txn = false;
    bw->rows_copied = rows_copied;
    bw->copied += c->missing;
    bw->stale_fixed += c->stale;
    bw->extra_deleted += deleted;
    if (staged > 0 || deleted > 0)
        log_debug("%s: batch committed: %" PRIu64 " copied, %" PRIu64 " stale fixed, %" PRIu64
                  " extra deleted",
                  table, c->missing, c->stale, deleted);
    c->queued = false;
    c->missing = c->stale = c->nextras = 0;
    strbuf_reset(&c->extras);
    return true;
}

static void add_wait(batch_writer *bw, const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bw->wait_seconds += progress_seconds(t0, &t1);
}

bool bw_flush(batch_writer *bw, const char *ckpt_key)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = close_batch(bw, &bw->w[bw->cur], ckpt_key);
    bw->cur = (bw->cur + 1) % bw->nconns;
    /* The next batch goes where the oldest one is: finish that first (commit order). */
    if (ok && bw->w[bw->cur].queued)
        ok = finish_batch(bw, &bw->w[bw->cur], false);
    add_wait(bw, &t0);
    return ok;
}

bool bw_finish(batch_writer *bw, const char *ckpt_key)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int last = bw->cur;
    bool ok = close_batch(bw, &bw->w[last], ckpt_key);
    for (int step = 1; ok && step <= bw->nconns; step++) {
        int i = (last + step) % bw->nconns; /* oldest first, the last batch at the end */
        if (bw->w[i].queued)
            ok = finish_batch(bw, &bw->w[i], i == last);
    }
    /* Every batch is committed: the parents staged in any of them are visible now. */
    ok = ok && (!bw->fix_pending || bw_fix_pending(bw->w[0].conn, bw->lay, &bw->pending));
    add_wait(bw, &t0);
    return ok;
}

bool bw_fix_pending(PGconn *conn, const table_layout *lay, const tablesql_pending *pending)
{
    const char *table = lay->table->source;
    const char *params[3] = {pending->slot, table, NULL};
    strbuf sql;
    strbuf_init(&sql);
    bool ok = true;
    for (size_t i = 0; ok && i < lay->ncols; i++) {
        if (!tablesql_pends(lay, pending, i))
            continue;
        strbuf_reset(&sql);
        tablesql_pending_fix(lay, pending, i, &sql);
        params[2] = lay->cols[i].target;
        PGresult *res = pgconn_query(conn, table, sql.data, 3, params, NULL);
        ok = res != NULL;
        if (ok && strtoull(PQcmdTuples(res), NULL, 10) > 0)
            log_info("%s: %s pending reference(s) re-pointed or cleared (%s)", table,
                     PQcmdTuples(res), lay->cols[i].target);
        PQclear(res);
    }
    strbuf_reset(&sql);
    strbuf_append(&sql, "SELECT count(*), string_agg(row_key || ' -> ' || parent_key, ', ' ORDER "
                        "BY recorded_at, row_key) FILTER (WHERE n <= 5) FROM (SELECT *, "
                        "row_number() OVER (ORDER BY recorded_at, row_key) AS n FROM ");
    pgconn_append_qualified(&sql, pending->state_schema, "pending_refs");
    strbuf_append(&sql, " WHERE slot = $1 AND table_name = $2) x");
    PGresult *res = ok ? pgconn_query(conn, table, sql.data, 2, params, NULL) : NULL;
    ok = res != NULL;
    if (ok && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
        log_full(LOG_WARN,
                 "Recorded by an earlier walbridge: a moved row holds the UUIDv5 of each "
                 "parent key, so the reference stays NULL rather than name the moved row.",
                 "Backfill the parent table; any backfill run that includes this table then "
                 "re-points them.",
                 "%s: %s row(s) reference a parent row that is not in the target yet (a key "
                 "reused after a key change), written NULL and kept in %s.pending_refs: %s",
                 table, PQgetvalue(res, 0, 0), pending->state_schema, PQgetvalue(res, 0, 1));
    PQclear(res);
    strbuf_free(&sql);
    return ok;
}

void bw_abort(batch_writer *bw)
{
    for (int i = 0; i < bw->nconns; i++) {
        bw_conn *c = &bw->w[i];
        if (c->copying)
            PQputCopyEnd(c->conn, "walbridge: batch abandoned");
        if (c->copying || c->sent) {
            PGresult *res;
            while ((res = PQgetResult(c->conn)) != NULL)
                PQclear(res);
        }
        c->copying = c->sent = c->queued = false;
        c->copied_direct = c->extra_deleted = 0;
        if (c->in_txn)
            pgconn_exec(c->conn, "backfill: ROLLBACK", "ROLLBACK");
        c->in_txn = false;
    }
}
