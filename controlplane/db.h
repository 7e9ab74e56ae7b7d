/*
 * controlplane/db.h: PostgreSQL access for koreo-controlplane (issue 6).
 *
 * Two faces over libpq:
 *   - cpdb: the daemon's asynchronous connection on its libevent loop.
 *     libpq in non-blocking mode; queries are queued and sent in order
 *     (pipeline mode, PQenterPipelineMode, when several are queued, so a
 *     batch costs one round trip); each query's callback runs on the loop
 *     with its result.  Nothing blocks the loop: the socket is watched with
 *     an event, connection (PQconnectStart/PQconnectPoll) included.  A lost
 *     connection fails every queued query (callback with res NULL and err
 *     set) and is re-established with capped backoff.  LISTEN channels are
 *     re-subscribed after a reconnect.
 *   - cpdb_sync_*: a blocking connection for the command-line subcommands
 *     (`koreo-controlplane migrate`, `tokens create`) and for tests; never
 *     used on the daemon's loop.
 * Migrations (schema/migrations/NNNN_*.sql, embedded at build time) are
 * applied by cpdb_migrate under pg_advisory_lock, each in one transaction,
 * recorded in schema_migrations(version, name, applied_at).
 */
#ifndef KOREO_CP_DB_H
#define KOREO_CP_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

struct event_base;

typedef struct cpdb cpdb;

/* A query's completion: `res` (borrowed, valid during the call) is the
 * PGresult when the query ran, status PGRES_TUPLES_OK/PGRES_COMMAND_OK;
 * on any failure res is NULL and `err` says why (the server's message,
 * "connection lost", ...).  Runs on the loop. */
typedef void (*cpdb_cb)(void *arg, PGresult *res, const char *err);

/* NOTIFY delivery: channel and payload (borrowed). */
typedef void (*cpdb_notify_cb)(void *arg, const char *channel, const char *payload);

/* cpdb_new: start connecting to `url` (a libpq conninfo or URI) on `base`.
 * Returns at once; queries queued before the connection is up wait for it.
 * NULL + err only for an unusable URL. */
cpdb *cpdb_new(struct event_base *base, const char *url, char *err, size_t errlen);
void cpdb_free(cpdb *db); /* queued callbacks run with err "shutting down" */

/* cpdb_query: queue `sql` with text parameters $1..$n (params[i] NULL =
 * SQL NULL; copied).  cb may be NULL (fire and forget; errors are logged).
 * Returns 0, or -1 when the db is shutting down.  `sql` is ONE statement
 * (extended protocol: no "a; b").  Queries run in order, each on its own
 * (an error does not affect the next); an explicit transaction may span
 * several queries ("BEGIN", ..., "COMMIT": a COMMIT that the server turns
 * into ROLLBACK because a statement failed is reported as an error).  The
 * callback may call cpdb_query and cpdb_free.  Queries queued while the
 * connection is down wait for the next connection attempt and fail with
 * "cannot connect: ..." if it fails. */
int cpdb_query(cpdb *db, const char *sql, int nparams, const char *const *params, cpdb_cb cb,
               void *arg);

/* cpdb_listen: LISTEN on `channel` and call cb for every notification
 * (re-subscribed after reconnects). */
int cpdb_listen(cpdb *db, const char *channel, cpdb_notify_cb cb, void *arg);

bool cpdb_connected(const cpdb *db);
/* Queries queued or in flight. */
size_t cpdb_queue_length(const cpdb *db);
/* Latency of completed queries (send to result), for /metrics: count and
 * sum in seconds, and a histogram with buckets cpdb_latency_bounds. */
typedef struct cpdb_stats {
  unsigned long long queries, errors, reconnects;
  double latency_sum_s;
  unsigned long long latency_buckets[8]; /* cumulative counts, le bounds below */
} cpdb_stats;
extern const double cpdb_latency_bounds[8]; /* 0.001 .. 2.5 s */
const cpdb_stats *cpdb_get_stats(const cpdb *db);

/* Reconnect backoff after a lost connection or a failed attempt: the first
 * retry after min_ms, doubling up to max_ms (defaults 250 ms .. 10 s). */
void cpdb_set_backoff(cpdb *db, long min_ms, long max_ms);

/* ---- blocking helpers (CLI subcommands, tests) ---------------------------- */

/* Connect; NULL + err. */
PGconn *cpdb_sync_connect(const char *url, char *err, size_t errlen);
/* Apply pending migrations (advisory lock, one transaction each).  Returns
 * the number applied (>= 0) or -1 + err. */
int cpdb_migrate(PGconn *c, char *err, size_t errlen);
/* The highest applied migration version (0 when none), -1 on error. */
int cpdb_schema_version(PGconn *c);

/* The embedded migrations (schema/migrations/NNNN_name.sql, in version
 * order; generated at build time by controlplane/embed_migrations.cmake). */
typedef struct cpdb_migration {
  int version;      /* NNNN */
  const char *name; /* "NNNN_name" */
  const char *sql;  /* the file's text */
} cpdb_migration;
extern const cpdb_migration cpdb_migrations[];
extern const size_t cpdb_n_migrations;

/* cpdb_sync_exec: run one command (or several ;-separated, no parameters)
 * and check it succeeded.  Returns the result (caller PQclear's) or NULL +
 * err with the server's message. */
PGresult *cpdb_sync_exec(PGconn *c, const char *sql, int nparams, const char *const *params,
                         char *err, size_t errlen);

#endif
