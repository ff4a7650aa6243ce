/*
 * backfill_cmd.c — `walbridge backfill`: the one-shot catch-up (DESIGN.md,
 * "backfill", Guarantee 1).
 *
 *   1. config, connections, catalog: refuse before writing anything when a
 *      selected table cannot be mapped;
 *   2. the handoff: create the slot with an exported snapshot (or note that
 *      it exists) and record its consistent point as the stream's start;
 *   3. per table, parents first: keyset diff + copy (tablediff.h);
 *   4. a summary table on stdout.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backfill/bfsession.h"
#include "backfill/bfstate.h"
#include "backfill/deferidx.h"
#include "backfill/directload.h"
#include "backfill/handoff.h"
#include "backfill/tablediff.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "common/state.h"

typedef struct backfill_args {
    bool dry_run;
    bool include_stale;
    bool delete_extra;
    bool resume;
    bool defer_indexes;
    const char *tables;
    int batch_rows; /* 0: from the config */
    int writers;    /* target write connections used (2 pipelines batches) */
    int jobs;       /* lanes for the direct loads (empty tables, --defer-indexes) */
} backfill_args;

static void print_help(FILE *out)
{
    fputs("Usage: walbridge [-c FILE] backfill [options]\n\n"
          "One-shot catch-up: per table (parents first) diff the source and the target\n"
          "through the key mapping and copy the rows the target is missing.  When the\n"
          "replication slot does not exist yet it is created first, the source is read\n"
          "through its exported snapshot, and its consistent point is recorded so that\n"
          "`walbridge stream` continues exactly there.\n\n"
          "Options:\n"
          "  --dry-run          report the diff per table; write nothing, create no slot\n"
          "  --include-stale    also rewrite target rows whose content differs (source wins)\n"
          "  --delete-extra     delete target rows whose source row is gone\n"
          "  --resume           continue after each table's checkpoint of an interrupted run\n"
          "  --defer-indexes    for a table with no rows in the target: drop its indexes,\n"
          "                     constraints and foreign keys (saved in the state schema),\n"
          "                     COPY the rows straight in, then build them again; the\n"
          "                     stream must not run meanwhile (it refuses to start)\n"
          "  --jobs N           lanes for the tables loaded straight in (empty in the\n"
          "                     target, or under --defer-indexes), each on its own\n"
          "                     connections in the same snapshot (default 2)\n"
          "  --tables a,b       only these source tables (\"schema.name\" or \"name\")\n"
          "  --batch-rows N     rows per batch and checkpoint (default: backfill.batch_rows)\n"
          "  -h, --help         this text\n\n"
          "Exit status: 0 done, 2 usage or config error, 3 runtime failure.\n",
          out);
}

/* One option of backfill_args (cli_command.on_option). */
static bool on_option(int opt, const char *arg, void *ctx)
{
    backfill_args *a = ctx;
    switch (opt) {
    case 'n':
        a->dry_run = true;
        break;
    case 's':
        a->include_stale = true;
        break;
    case 'd':
        a->delete_extra = true;
        break;
    case 'r':
        a->resume = true;
        break;
    case 'D':
        a->defer_indexes = true;
        break;
    case 'j':
        return cli_parse_int("backfill", "jobs", arg, 1, 16, "a number between 1 and 16", &a->jobs);
    case 't':
        a->tables = arg;
        break;
    case 'b':
        return cli_parse_int("backfill", "batch-rows", arg, 1, 10000000,
                             "a number between 1 and 10000000", &a->batch_rows);
    }
    return true;
}

static const struct option backfill_cli_options[] = {
    {"dry-run", no_argument, NULL, 'n'},       {"include-stale", no_argument, NULL, 's'},
    {"delete-extra", no_argument, NULL, 'd'},  {"resume", no_argument, NULL, 'r'},
    {"tables", required_argument, NULL, 't'},  {"batch-rows", required_argument, NULL, 'b'},
    {"defer-indexes", no_argument, NULL, 'D'}, {"jobs", required_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
static const cli_command backfill_command = {"backfill", backfill_cli_options, print_help,
                                             on_option};

/* Records the consistent point (stream start) and the run row; false on failure. */
static bool record_handoff(bf_session *s, const handoff *h, int64_t *run_id)
{
    PGconn *tw = s->target_write[0];
    const wb_config *cfg = &s->cfg;
    if (!pgconn_exec(tw, "target: BEGIN", "BEGIN"))
        return false;
    bool ok = true;
    if (h->slot_created)
        ok = state_set_applied_lsn(tw, cfg->state_schema, cfg->slot, h->consistent_lsn, NULL);
    ok = ok && bfstate_run_start(tw, cfg->state_schema, cfg->slot,
                                 h->slot_created ? h->consistent_lsn : LSN_INVALID, run_id);
    if (!ok) {
        pgconn_exec(tw, "target: ROLLBACK", "ROLLBACK");
        return false;
    }
    if (!pgconn_exec(tw, "target: COMMIT", "COMMIT"))
        return false;
    if (h->slot_created) {
        char lsn[LSN_TEXT_MAX];
        log_info("recorded the slot's consistent point %s in %s.stream_progress: stream starts "
                 "there",
                 lsn_format(h->consistent_lsn, lsn), cfg->state_schema);
    }
    return true;
}

/*
 * Keyless tables on a re-run.  A keyless row has no key to conflict on: a row the
 * stream has not applied yet but the snapshot holds would be copied by backfill and
 * then inserted again by the stream.  So a re-run diffs keyless tables only against a
 * target that holds exactly the snapshot's transactions: backfill holds the stream
 * lock for the whole run (no stream applies meanwhile), reads a temporary slot's
 * exported snapshot, and, once the keyed tables are done and every deferred index is
 * built again (the stream writes through them), applies the slot's changes up to
 * that slot's consistent point, none after (stream_catch_up); the keyless tables are
 * diffed last.  (Replaying changes up to the snapshot over keyed rows copied from it
 * ends at the snapshot's state, as the stream does after any re-run.)  When that
 * cannot be done (a stream runs, the catch-up fails), the keyless tables are left out
 * of the run and it says so; the keyed tables go on as before.
 */
static bool any_keyless(const bf_session *s)
{
    for (size_t i = 0; i < s->cfg.ntables; i++) {
        if (s->selected[i] && s->cfg.tables[i].nkey == 0)
            return true;
    }
    return false;
}

/* Leaves the selected keyless tables out of this run (marked in left_out), saying why. */
static void leave_out_keyless(bf_session *s, bool *left_out, const char *why, const char *hint)
{
    strbuf names;
    strbuf_init(&names);
    for (size_t i = 0; i < s->cfg.ntables; i++) {
        if (!s->selected[i] || s->cfg.tables[i].nkey != 0)
            continue;
        s->selected[i] = false;
        left_out[i] = true;
        strbuf_appendf(&names, "%s%s", names.len > 0 ? ", " : "", s->cfg.tables[i].source);
    }
    log_full(LOG_WARN,
             "Their rows have no key: a row the stream has not applied yet would be copied "
             "now and inserted again by the stream.",
             hint, "backfill: keyless table(s) %s left out of this run: %s", names.data, why);
    strbuf_free(&names);
}

/*
 * Brings the stream to the temporary slot's consistent point (see any_keyless); when
 * it cannot, leaves the keyless tables out and returns false (the run goes on, and
 * ends with exit 3).
 */
static bool catch_up_stream(bf_session *s, const handoff *h, bool *left_out)
{
    char at[LSN_TEXT_MAX], applied_text[LSN_TEXT_MAX];
    log_info("backfill: applying the stream's changes up to the snapshot's consistent point %s "
             "first, so that keyless tables are compared with exactly that state",
             lsn_format(h->consistent_lsn, at));
    wb_lsn applied = LSN_INVALID;
    if (stream_catch_up(&s->cfg, h->consistent_lsn, &applied) != EXIT_OK) {
        leave_out_keyless(s, left_out, "the stream could not be brought to the snapshot",
                          "See the stream errors above; fix them and run backfill again for "
                          "these tables (--tables).  The other tables are backfilled now.");
        return false;
    }
    log_info("backfill: the target holds every source transaction up to %s (applied LSN %s)", at,
             lsn_format(applied, applied_text));
    return true;
}

/* What a stream running beside backfill risks (hold_stream_lock's warning). */
#define STREAM_RISK                                                                                \
    "Its changes committed after backfill's snapshot can reach the target before "                 \
    "backfill's rows: a row deleted meanwhile can be copied back"

/*
 * Takes the stream's lock for the whole run: a `walbridge stream` of the slot started
 * meanwhile waits until backfill ends, so it applies no change committed after the
 * snapshot before backfill's rows from that snapshot are in (it would then apply a
 * delete before the deleted row is copied, and the row would stay; or an update
 * before --include-stale writes the older version back).  Its replay afterwards
 * brings every row to the source's latest state.  When a stream runs already, the
 * run goes on (it only inserts missing rows unless told otherwise) and says what that
 * risks.  False on a query failure.
 */
static bool hold_stream_lock(bf_session *s, const backfill_args *a, bool *locked)
{
    if (!state_try_stream_lock(s->target_write[0], s->cfg.slot, locked))
        return false;
    if (*locked)
        log_info("backfill: holding the stream lock of slot \"%s\" until the run ends: a "
                 "walbridge stream started meanwhile waits, then continues from where "
                 "backfill leaves the target",
                 s->cfg.slot);
    else
        log_full(LOG_WARN,
                 a->include_stale ? STREAM_RISK ", and --include-stale can write a row's older "
                                                "version over a newer one."
                                  : STREAM_RISK ".",
                 "For an exact run stop the stream, run backfill, then start the stream "
                 "again (README, \"Re-runs\").",
                 "backfill: a walbridge stream of slot \"%s\" is running on the target",
                 s->cfg.slot);
    return true;
}

/* SET session_replication_role = replica where the role may (skips FK triggers). */
static bool try_replica_role(PGconn *tw, bool say)
{
    PGresult *res = PQexec(tw, "SET session_replication_role = replica");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (PQresultStatus(res) == PGRES_COMMAND_OK && say)
        log_info("target: session_replication_role = replica (triggers and FK checks skipped "
                 "for backfill writes; integrity rests on parents-first order and "
                 "deterministic ids)");
    else if (PQresultStatus(res) != PGRES_COMMAND_OK && say)
        log_info("target: cannot set session_replication_role (%s); triggers and FK checks "
                 "run for every row",
                 PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL
                     ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
                     : "?");
    PQclear(res);
    return ok;
}

/*
 * --defer-indexes drops what the stream's writes need: refuse while a stream of this
 * slot runs, and keep one from starting until backfill ends, by holding the stream's
 * own advisory lock (cdc/stream_cmd.c) for the session.
 */
static bool take_stream_lock(PGconn *tw, const char *slot)
{
    bool got = false;
    if (!state_try_stream_lock(tw, slot, &got))
        return false;
    if (!got)
        log_full(LOG_ERROR, NULL,
                 "Stop the stream (systemctl stop walbridge), then run backfill "
                 "again; it waits for backfill to finish.",
                 "backfill --defer-indexes: a walbridge stream of slot \"%s\" is running on the "
                 "target, and its writes need the indexes this option drops",
                 slot);
    return got;
}

static void print_summary(const bf_session *s, const tablediff_result *results,
                          const backfill_args *a, const bool *left_out)
{
    const wb_config *cfg = &s->cfg;
    if (a->dry_run)
        printf("backfill --dry-run: nothing was written\n");
    printf("%-28s %12s %12s %10s %10s %10s %8s %10s\n", "table", "source rows", "present",
           a->dry_run ? "missing" : "copied",
           a->dry_run || !a->include_stale ? "stale" : "stale fixed", "extra", "seconds", "rows/s");
    for (size_t i = 0; i < cfg->ntables; i++) {
        if (left_out[i])
            printf("%-28s %12s (left out: keyless, see the warning above)\n", cfg->tables[i].source,
                   "-");
        if (!s->selected[i])
            continue;
        const tablediff_result *r = &results[i];
        if (r->skipped_done) {
            printf("%-28s %12s (finished by an earlier run)\n", cfg->tables[i].source, "-");
            continue;
        }
        uint64_t present = r->counts.same + r->counts.stale;
        uint64_t copied = a->dry_run ? r->counts.missing : r->copied;
        /* Without --include-stale (and not a dry run) rows are not compared: "-". */
        char stale[32] = "-";
        if (a->dry_run || a->include_stale)
            snprintf(stale, sizeof stale, "%" PRIu64,
                     a->dry_run ? r->counts.stale : r->stale_fixed);
        double rate = r->seconds > 0 ? (double)r->counts.source_rows / r->seconds : 0;
        char extra[32];
        const table_config *t = &cfg->tables[i];
        if (a->delete_extra && !a->dry_run && t->deletes == DELETES_IGNORE)
            snprintf(extra, sizeof extra, "%" PRIu64 " kept", r->counts.extra);
        else if (a->delete_extra && !a->dry_run && t->deletes == DELETES_SOFT)
            snprintf(extra, sizeof extra, "%" PRIu64 " soft", r->extra_deleted);
        else if (a->delete_extra && !a->dry_run)
            snprintf(extra, sizeof extra, "%" PRIu64 " del", r->extra_deleted);
        else
            snprintf(extra, sizeof extra, "%" PRIu64, r->counts.extra);
        printf("%-28s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10s %10s %8.2f %10.0f%s\n",
               cfg->tables[i].source, r->counts.source_rows, present, copied, stale, extra,
               r->seconds, rate, r->resumed ? "  (resumed)" : "");
    }
    fflush(stdout);
}

/*
 * A direct load of table i: only when every parent it references (other than itself)
 * is loaded directly by this run, so each parent row gets its UUIDv5 and the direct
 * COPY computes references without looking them up.  say: log why not.
 */
static bool parents_direct(const bf_session *s, size_t i, const dl_load *load, bool say)
{
    const table_layout *lay = &s->layouts[i];
    for (size_t c = 0; c < lay->ncols; c++) {
        int p = lay->cols[c].parent;
        if (p >= 0 && (size_t)p != i && load[p] == DL_NONE) {
            if (say)
                log_info("%s: indexes kept (not deferred): it references %s, which this run "
                         "does not load into an empty table, so references must be looked up",
                         lay->table->source, s->cfg.tables[p].source);
            return false;
        }
    }
    return true;
}

/*
 * *empty: the target table holds no row and the role's COPY into it is not subject to
 * row level security (COPY FROM refuses it).
 */
static bool target_empty(PGconn *tw, const table_config *t, bool *empty)
{
    strbuf sql, name;
    strbuf_init(&sql);
    strbuf_init(&name);
    pgconn_append_qualified(&name, t->target_schema, t->target_name);
    strbuf_appendf(&sql,
                   "SELECT NOT EXISTS (SELECT 1 FROM %s) AND NOT EXISTS (SELECT 1 FROM "
                   "pg_catalog.pg_class c WHERE c.oid = $1::regclass AND c.relrowsecurity AND "
                   "NOT (SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE "
                   "rolname = current_user))",
                   name.data);
    const char *params[1] = {name.data};
    PGresult *res = pgconn_query(tw, t->source, sql.data, 1, params, NULL);
    strbuf_free(&sql);
    strbuf_free(&name);
    if (res == NULL)
        return false;
    *empty = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

/*
 * Whether tables empty in the target may be loaded directly with their indexes in
 * place: the writers skip FK triggers (lanes load parents and children at once), and
 * no stream writes meanwhile (a row it applied would make COPY hit a duplicate key):
 * --defer-indexes holds the stream's lock already, else it is tried here and
 * *took_lock says so.
 */
static bool direct_with_indexes(bf_session *s, const backfill_args *a, bool *took_lock)
{
    *took_lock = false;
    if (a->dry_run || a->writers < 2)
        return false;
    if (a->defer_indexes)
        return true;
    bool got = false;
    if (!state_try_stream_lock(s->target_write[0], s->cfg.slot, &got) || !got) {
        log_info("backfill: a walbridge stream of slot \"%s\" is running: tables that are "
                 "empty in the target are upserted like the others",
                 s->cfg.slot);
        return false;
    }
    *took_lock = true;
    return true;
}

/* Diffs (and with o->write, copies) table i on source into *r, logging what it did;
 * o->estimate is the table's. */
static bool diff_table_on(bf_session *s, const backfill_args *a, const tablediff_options *o,
                          size_t i, PGconn *source, tablediff_result *r)
{
    const table_config *t = &s->cfg.tables[i];
    bool ok = tablediff_run(&s->layouts[i], (int)i, source, s->target_read, s->target_write,
                            a->writers, o, r);
    if (ok)
        tablediff_log_result(t, r, a->delete_extra);
    return ok;
}

static bool diff_table(bf_session *s, const backfill_args *a, tablediff_options *o, size_t i,
                       tablediff_result *r)
{
    o->estimate = bf_session_estimate(s->source, &s->cfg.tables[i]);
    return diff_table_on(s, a, o, i, s->source, r);
}

/*
 * The lookahead of diff_tables (tablediff_send_ahead): the session's two diff
 * connections in the snapshot take turns; once a table's merge ends, the next
 * table's source query goes on the other one.
 */
typedef struct lookahead {
    bf_session *s;
    const tablediff_options *o;
    size_t next;     /* the table after the current one (ntables: none) */
    PGconn *conn;    /* the connection the next table is diffed on */
    bool sent;       /* its source query is in flight there */
    bool estimated;  /* estimate was read (the query may still not have gone) */
    double estimate; /* its row estimate, read before the query went */
} lookahead;

static bool send_next(void *ctx)
{
    lookahead *la = ctx;
    if (la->next >= la->s->cfg.ntables)
        return true;
    tablediff_options next = *la->o;
    next.estimate = la->estimate = bf_session_estimate(la->conn, &la->s->cfg.tables[la->next]);
    la->estimated = true;
    return tablediff_send_ahead(&la->s->layouts[la->next], la->conn, la->s->target_read, &next,
                                &la->sent);
}

/* Whether diff_tables' pass (keyless or not) takes table i. */
static bool in_pass(const bf_session *s, const dl_load *load, bool keyless, size_t i)
{
    return s->selected[i] && load[i] == DL_NONE && (s->cfg.tables[i].nkey == 0) == keyless;
}

/*
 * Diffs (and copies) the selected tables not loaded directly, keyless ones or the others,
 * one after another.  Keyed tables written with rows fetched by key use the lookahead.
 */
static bool diff_tables(bf_session *s, const backfill_args *a, const tablediff_options *o,
                        const dl_load *load, bool keyless, tablediff_result *results)
{
    bool ok = true;
    bool ahead = !keyless && o->write && s->source_ahead != NULL;
    lookahead la = {.s = s, .o = o, .conn = s->source};
    for (size_t i = 0; ok && i < s->cfg.ntables; i++) {
        if (!in_pass(s, load, keyless, i))
            continue;
        const table_config *t = &s->cfg.tables[i];
        log_info("%s: diffing%s", t->source, a->dry_run ? " (dry run)" : "");
        tablediff_options to = *o;
        PGconn *source = la.conn;
        to.source_sent = la.sent;
        to.estimate = la.estimated ? la.estimate : bf_session_estimate(source, t);
        la.estimated = false;
        if (ahead) {
            la.next = i + 1;
            while (la.next < s->cfg.ntables && !in_pass(s, load, keyless, la.next))
                la.next++;
            la.conn = source == s->source ? s->source_ahead : s->source;
            la.sent = false;
            to.merged = send_next;
            to.merged_ctx = &la;
        }
        ok = diff_table_on(s, a, &to, i, source, &results[i]);
    }
    return ok;
}

/*
 * A resumed --defer-indexes load copies missing rows only (no unique index stops a stale
 * row's second copy then), so with --include-stale those tables are diffed again once
 * their indexes are back: the rows an earlier run's snapshot left stale are rewritten.
 */
static bool fix_resumed_stale(bf_session *s, const backfill_args *a, const tablediff_options *o,
                              const dl_load *load, tablediff_result *results)
{
    tablediff_options again = *o;
    again.resume = false; /* the whole table, not after its checkpoint */
    bool ok = true;
    for (size_t i = 0; ok && i < s->cfg.ntables; i++) {
        if (!s->selected[i] || load[i] != DL_RESUMED || !a->include_stale)
            continue;
        const table_config *t = &s->cfg.tables[i];
        log_info("%s: its resumed load copied missing rows only: diffing it again for stale rows",
                 t->source);
        tablediff_result r;
        memset(&r, 0, sizeof r);
        ok = diff_table(s, a, &again, i, &r);
        if (ok) {
            results[i].counts.stale = r.counts.stale;
            results[i].stale_fixed += r.stale_fixed;
            results[i].copied += r.copied;
            results[i].seconds += r.seconds;
        }
        tablediff_result_free(&r);
    }
    return ok;
}

/* Builds again what earlier runs deferred and this one did not load (--tables, a kill). */
static bool rebuild_leftovers(bf_session *s, const backfill_args *a)
{
    return a->dry_run || (deferidx_rebuild(s->target_write[0], s->cfg.state_schema) &&
                          deferidx_rebuild_foreign_keys(s->target_write[0], s->cfg.state_schema));
}

/*
 * Per table, parents first: the tables loaded directly go first, on up to --jobs lanes
 * at once (directload.h): with --defer-indexes (or indexes an earlier run left
 * deferred) without their indexes, constraints and foreign keys, built again after;
 * tables still empty in the target whose parents are loaded the same way with them in
 * place.  The other tables follow one by one in config order.
 */
static bool run_tables(bf_session *s, const backfill_args *a, const handoff *h,
                       tablediff_result *results, bool *catch_up, bool *left_out)
{
    const wb_config *cfg = &s->cfg;
    tablediff_options o = {.write = !a->dry_run,
                           .include_stale = a->include_stale,
                           .delete_extra = a->delete_extra,
                           .resume = a->resume,
                           /* no stale check wanted: compare keys, hash nothing */
                           .keys_only = !a->dry_run && !a->include_stale,
                           .batch_rows =
                               a->batch_rows > 0 ? a->batch_rows : cfg->backfill.batch_rows,
                           .progress = isatty(STDERR_FILENO) == 1,
                           .state_schema = cfg->state_schema,
                           .slot = cfg->slot,
                           .source_fetch = s->source_fetch};
    dl_load *load = wb_xcalloc(cfg->ntables > 0 ? cfg->ntables : 1, sizeof *load);
    bool took_lock = false;
    bool with_indexes = direct_with_indexes(s, a, &took_lock);
    bool ok = true;
    size_t ndirect = 0;
    for (size_t i = 0; ok && !a->dry_run && i < cfg->ntables; i++) {
        if (!s->selected[i])
            continue;
        bool deferred = false, resumed = false;
        /* In catch-up mode keyless tables are diffed after it (any_keyless). */
        bool may_direct = catch_up == NULL || cfg->tables[i].nkey > 0;
        if (a->defer_indexes && !may_direct)
            log_info("%s: indexes kept (not deferred): a keyless table of a re-run is diffed "
                     "after the stream's catch-up",
                     cfg->tables[i].source);
        ok = deferidx_begin(s->target_write[0], cfg->state_schema, &cfg->tables[i],
                            a->defer_indexes && may_direct && parents_direct(s, i, load, true),
                            &deferred, &resumed);
        /* A resumed load may hold rows whose parent rows did not make it (a kill between
         * the two commits): it waits for its parents (DL_RESUMED), or its diff would take
         * those rows for orphans and copy them a second time. */
        load[i] = resumed ? DL_RESUMED : deferred ? DL_DEFERRED : DL_NONE;
        bool empty = false;
        if (ok && load[i] == DL_NONE && may_direct && with_indexes &&
            parents_direct(s, i, load, false) &&
            (ok = target_empty(s->target_write[0], &cfg->tables[i], &empty)) && empty) {
            log_info("%s: no row in the target yet: its rows go straight in with COPY, "
                     "indexes, constraints and foreign keys in place",
                     cfg->tables[i].source);
            load[i] = DL_EMPTY;
        }
        ndirect += load[i] != DL_NONE ? 1 : 0;
    }
    if (ok && ndirect > 0)
        ok = directload_run(s, h, &o, a->jobs, load, results) &&
             fix_resumed_stale(s, a, &o, load, results);
    if (took_lock) /* the upserts below do not need the stream stopped */
        ok = state_stream_unlock(s->target_write[0], cfg->slot) && ok;
    /* Keyed tables first; keyless ones after the catch-up (any_keyless), which needs every
     * index the stream writes through: after the rebuild of what earlier runs deferred. */
    ok = ok && diff_tables(s, a, &o, load, false, results);
    if (ok && catch_up != NULL) {
        ok = rebuild_leftovers(s, a);
        *catch_up = ok && catch_up_stream(s, h, left_out);
    }
    ok = ok && diff_tables(s, a, &o, load, true, results);
    free(load);
    /* Definitions of tables this run did not copy (an earlier run's, --tables). */
    return ok && rebuild_leftovers(s, a);
}

int backfill_main(const char *config_path, int argc, char **argv)
{
    backfill_args a;
    memset(&a, 0, sizeof a);
    a.jobs = 2;
    int rc = cli_parse_options(&backfill_command, argc, argv, &a);
    if (rc != CLI_CONTINUE)
        return rc;
    bf_session s;
    rc = bf_session_open(&s, config_path, a.tables, !a.dry_run);
    if (rc != EXIT_OK) {
        bf_session_close(&s);
        return rc;
    }
    if (!a.dry_run) {
        if (!state_ensure(s.target_write[0], s.cfg.state_schema) ||
            (a.defer_indexes && !take_stream_lock(s.target_write[0], s.cfg.slot))) {
            bf_session_close(&s);
            return EXIT_RUNTIME;
        }
        /* Two writers overlap one batch's insert with the next batch; without replica
         * role, FK checks could see a parent row of the other, uncommitted batch
         * missing, so then batches go one by one. */
        bool replica = true;
        for (int i = 0; i < 2; i++)
            replica = try_replica_role(s.target_write[i], i == 0) && replica;
        a.writers = replica ? 2 : 1;
    }
    handoff h;
    int64_t run_id = 0;
    tablediff_result *results = wb_xcalloc(s.cfg.ntables > 0 ? s.cfg.ntables : 1, sizeof *results);
    bool *left_out = wb_xcalloc(s.cfg.ntables > 0 ? s.cfg.ntables : 1, sizeof *left_out);
    /* The stream's lock, held until the run ends (see hold_stream_lock). */
    bool locked = false, caught_up = true;
    bool ok = a.dry_run || hold_stream_lock(&s, &a, &locked);
    /* A re-run with keyless tables reads a temporary slot's snapshot (any_keyless). */
    ok = ok && handoff_begin(&s.cfg, s.source, !a.dry_run, locked && any_keyless(&s), &h);
    bool need_catch_up = false;
    if (ok && !a.dry_run && h.slot_existed && any_keyless(&s)) {
        if (!locked)
            leave_out_keyless(&s, left_out,
                              "a walbridge stream of this slot is running on the target",
                              "Stop the stream, run backfill for them (--tables), then start "
                              "the stream again.");
        need_catch_up = locked;
    }
    if (ok && !a.dry_run && !handoff_share_snapshot(&h, s.source, s.source_fetch)) {
        PQfinish(s.source_fetch); /* rows then travel with the diff */
        s.source_fetch = NULL;
    }
    if (ok && !a.dry_run &&
        (s.source_fetch == NULL || !handoff_share_snapshot(&h, s.source, s.source_ahead))) {
        PQfinish(s.source_ahead); /* no lookahead: one table after the other */
        s.source_ahead = NULL;
    }
    if (ok && !a.dry_run)
        ok = record_handoff(&s, &h, &run_id);
    if (ok)
        ok = run_tables(&s, &a, &h, results, need_catch_up ? &caught_up : NULL, left_out);
    if (ok)
        print_summary(&s, results, &a, left_out);
    free(left_out);
    if (!a.dry_run && run_id > 0)
        bfstate_run_finish(s.target_write[0], s.cfg.state_schema, run_id, ok ? "done" : "failed");
    if (ok)
        pgconn_exec(s.source, "source: COMMIT", "COMMIT");
    for (size_t i = 0; i < s.cfg.ntables; i++)
        tablediff_result_free(&results[i]);
    free(results);
    handoff_close(&h);
    if (ok && !caught_up)
        log_error("backfill finished without the keyless tables named above (exit 3)");
    else if (ok)
        log_info("backfill finished%s", a.dry_run ? " (dry run: nothing written)" : "");
    else
        log_error("backfill failed; rerun with --resume to continue from the checkpoints");
    bf_session_close(&s);
    return ok && caught_up ? EXIT_OK : EXIT_RUNTIME;
}
