/*
 * replication.h — the replication side of `walbridge stream`: one logical
 * replication session (START_REPLICATION with wal2json format-version 2 on a
 * replication=database connection) feeding the applier, with standby status
 * feedback that never confirms more than the applier made durable.
 *
 * Model (after PostgreSQL's pg_recvlogical.c): the caller owns a stream_ctl
 * (control struct, no globals), sets its public fields, then calls
 * stream_session once per connection.  A session runs until something stops
 * it and returns why (stream_stop_reason); the caller reconnects with
 * backoff on STREAM_STOP_SOURCE_LOST / STREAM_STOP_TARGET_LOST, and exits on
 * the others.  Every session restarts from max(applier_durable_lsn,
 * start_lsn): the server resumes at max(requested, confirmed_flush) and skips
 * what committed before, and the applier skips what it already applied.
 *
 * Feedback ('r' messages): write = highest LSN received; flush = apply =
 * applier_durable_lsn, or a keepalive's walEnd seen while nothing was pending
 * (no open source transaction, batch committed) — there is nothing walbridge
 * needs between the two (DESIGN.md, Guarantee 6) — but only once that walEnd
 * is stored as the applied LSN in the target (state_set_applied_lsn in a
 * short transaction of its own on the applier's idle connection, at most once
 * per feedback interval): the confirmed position never exceeds what the
 * target records, so `walbridge health` never sees the slot ahead of it.
 * The applier's cached durable LSN may then lag the stored one; that is
 * harmless (no transaction committing at or before an idle walEnd is sent
 * after it, and a new applier reads the stored LSN).
 *
 * Ownership: stream_ctl borrows cfg, the applier and metrics; it owns the
 * replication and heartbeat connections it opens (stream_ctl_close).
 */
#ifndef WALBRIDGE_REPLICATION_H
#define WALBRIDGE_REPLICATION_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "cdc/apply.h"
#include "cdc/metrics.h"
#include "common/config.h"
#include "common/lsn.h"
#include "common/strbuf.h"

typedef enum stream_stop_reason {
    STREAM_STOP_NONE = 0,
    STREAM_STOP_SIGNAL,      /* SIGTERM/SIGINT: batch finished or rolled back, feedback sent */
    STREAM_STOP_UNTIL,       /* --until-lsn / --until-caught-up reached */
    STREAM_STOP_SOURCE_LOST, /* replication connection failed or ended: reconnect */
    STREAM_STOP_TARGET_LOST, /* target connection failed (retryable): new applier, reconnect */
    STREAM_STOP_FATAL        /* a message that cannot be parsed or applied: exit 3 */
} stream_stop_reason;

const char *stream_stop_reason_name(stream_stop_reason r);

/* Private per-table, per-action row counters not yet reported to metrics. */
#define STREAM_NACTIONS 4

typedef struct stream_ctl {
    /* Set by the caller (stream_ctl_init gives defaults). */
    const wb_config *cfg;
    applier *app;                           /* borrowed; replaced by the caller on reconnect */
    PGconn *target;                         /* borrowed: the applier's target connection */
    stream_metrics *metrics;                /* optional (NULL) */
    const volatile sig_atomic_t *stop_flag; /* nonzero: SIGTERM/SIGINT arrived */
    const volatile sig_atomic_t *hup_flag;  /* unused by the loop; log_reopen handles SIGHUP */
    wb_lsn start_lsn;                       /* start when nothing is applied yet (slot position) */
    wb_lsn until_lsn;                       /* LSN_INVALID: run until stopped */
    /*
     * until_lsn is a snapshot's consistent point (backfill's catch-up): apply every
     * source transaction that committed at or before it and none after, and never
     * record an applied LSN past it, so the target holds exactly the snapshot's
     * state of what the stream carries.
     */
    bool until_exact;

    /* Private loop state. */
    PGconn *repl;               /* replication connection (owned) */
    PGconn *heartbeat;          /* plain source connection for heartbeat messages (owned) */
    wb_lsn received_lsn;        /* highest LSN received: the write position */
    wb_lsn server_wal_end;      /* server WAL end from the last w/k header (for lag) */
    wb_lsn idle_lsn;            /* keepalive walEnd seen while nothing was pending */
    wb_lsn stored_idle_lsn;     /* highest idle_lsn committed to the target's stream_progress;
                                   the caller resets it when it replaces the applier */
    int64_t last_idle_store_ms; /* monotonic ms of the last idle_lsn store */
    wb_lsn flush_sent;          /* flush position of the last status update */
    bool unflushed;             /* messages fed since the last applier_flush */
    bool streaming;             /* repl is in COPY BOTH mode (status updates may be sent) */
    int64_t last_status_ms;     /* monotonic ms of the last status update */
    int64_t last_data_ms;       /* monotonic ms of the last w message */
    int64_t last_keepalive_ms;
    int64_t last_reply_request_ms;
    int64_t last_heartbeat_ms;
    int64_t last_log_ms;
    uint64_t last_log_rows;
    apply_stats reported;   /* stats already reported to metrics */
    uint64_t *pending_rows; /* cfg->ntables * STREAM_NACTIONS, since the last flush */
} stream_ctl;

void stream_ctl_init(stream_ctl *ctl, const wb_config *cfg);
/* Closes the connections the ctl owns and frees its buffers. */
void stream_ctl_close(stream_ctl *ctl);

/* Runs one replication session; see the stop reasons above. */
stream_stop_reason stream_session(stream_ctl *ctl);

/* Monotonic milliseconds. */
int64_t stream_now_ms(void);

/*
 * Appends wal2json's add-tables value for the configured source tables:
 * "schema.table" pairs separated by commas, with space, single quote, comma,
 * period, asterisk and backslash escaped by a backslash.  Pure.
 */
void stream_append_add_tables(strbuf *out, const wb_config *cfg);
/* Builds the START_REPLICATION command for slot at start (pure). */
void stream_build_start_command(strbuf *out, const wb_config *cfg, wb_lsn start);

#endif
