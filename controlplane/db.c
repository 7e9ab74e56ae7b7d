/*
 * controlplane/db.c: PostgreSQL access of koreo-controlplane (issue 6,
 * controlplane/db.h): the asynchronous cpdb on the libevent loop (libpq
 * non-blocking, always in pipeline mode with one Sync per query so a batch
 * of queued queries costs one round trip while an error stays confined to
 * its own query; LISTEN/NOTIFY; reconnect with capped backoff; latency
 * statistics) and the blocking helpers (connect, exec, migrations).
 */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "cp.h"
#include "koreo/value.h"

const double cpdb_latency_bounds[8] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5};

enum { MAX_INFLIGHT = 4096, CONNECT_TIMEOUT_MS = 10000 };

typedef struct cpdb_q {
  struct cpdb_q *next;
  char *sql;
  int nparams;
  char **params;
  cpdb_cb cb;
  void *arg;
  PGresult *res; /* the query's (last) result */
  char *err;     /* its first error */
  struct timespec sent;
  bool internal; /* a LISTEN issued by cpdb itself */
} cpdb_q;

typedef struct qlist {
  cpdb_q *head, *tail;
  size_t n;
} qlist;

typedef struct listener {
  char *channel;
  cpdb_notify_cb cb;
  void *arg;
} listener;

enum { ST_IDLE, ST_CONNECTING, ST_READY };

struct cpdb {
  struct event_base *base;
  char *url;
  PGconn *conn;
  int st;
  bool was_ready;         /* a connection was up before: count reconnects */
  struct event *ev_io;    /* connecting: one-shot; ready: persistent EV_READ */
  struct event *ev_write; /* ready: one-shot, while libpq has unsent data */
  struct event *ev_timer; /* connect timeout or reconnect delay */
  struct event *ev_kick;  /* send what cpdb_query queued, from the loop */
  qlist pending, inflight;
  listener *ls;
  size_t nls;
  long backoff_min, backoff_max, backoff_cur;
  cpdb_stats stats;
  int depth;    /* > 0 while callbacks run */
  bool closing; /* cpdb_free called */
};

static void q_free(cpdb_q *q) {
  if (!q) return;
  for (int i = 0; i < q->nparams; i++)
    free(q->params[i]);
  free(q->params);
  free(q->sql);
  free(q->err);
  if (q->res) PQclear(q->res);
  free(q);
}

static void ql_push(qlist *l, cpdb_q *q) {
  q->next = NULL;
  if (l->tail)
    l->tail->next = q;
  else
    l->head = q;
  l->tail = q;
  l->n++;
}

static void ql_push_front(qlist *l, cpdb_q *q) {
  q->next = l->head;
  l->head = q;
  if (!l->tail) l->tail = q;
  l->n++;
}

static cpdb_q *ql_pop(qlist *l) {
  cpdb_q *q = l->head;
  if (!q) return NULL;
  l->head = q->next;
  if (!l->head) l->tail = NULL;
  l->n--;
  q->next = NULL;
  return q;
}

/* libpq messages end with a newline; callers get them without. */
static char *trimmed(const char *msg) {
  char *s = strdup(msg && *msg ? msg : "unknown error");
  if (!s) kv_oom();
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
    s[--n] = 0;
  return s;
}

static double elapsed_s(const struct timespec *from) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - from->tv_sec) + (double)(now.tv_nsec - from->tv_nsec) / 1e9;
}

/* Run a finished query's callback and free it.  `err` overrides. */
static void complete(cpdb *db, cpdb_q *q, const char *err, bool sent) {
  if (sent) {
    double s = elapsed_s(&q->sent);
    db->stats.queries++;
    db->stats.latency_sum_s += s;
    for (int i = 0; i < 8; i++)
      if (s <= cpdb_latency_bounds[i]) db->stats.latency_buckets[i]++;
  }
  const char *e = err ? err : q->err;
  if (e) db->stats.errors++;
  db->depth++;
  if (q->cb)
    q->cb(q->arg, e ? NULL : q->res, e);
  else if (e && !(q->internal && err)) /* a lost LISTEN is re-sent on reconnect */
    cp_log(CP_WARN, "database: %s: %s", q->sql, e);
  db->depth--;
  q_free(q);
}

/* Fail what is queued now; queries the callbacks add meanwhile wait for the
 * next connection (a retry-on-error caller cannot spin here). */
static void fail_all(cpdb *db, const char *why) {
  qlist inflight = db->inflight, pending = db->pending;
  db->inflight = db->pending = (qlist){0};
  cpdb_q *q;
  while ((q = ql_pop(&inflight)))
    complete(db, q, why, false);
  while ((q = ql_pop(&pending)))
    complete(db, q, why, false);
}

static void drop_conn(cpdb *db) {
  if (db->ev_io) event_free(db->ev_io);
  if (db->ev_write) event_free(db->ev_write);
  db->ev_io = db->ev_write = NULL;
  if (db->conn) PQfinish(db->conn);
  db->conn = NULL;
  db->st = ST_IDLE;
  evtimer_del(db->ev_timer);
}

static void start_connect(cpdb *db);

/* The connection failed or was lost: fail what waits, retry later. */
static void conn_failed(cpdb *db, const char *what, const char *detail) {
  char *d = trimmed(detail);
  char why[1024];
  snprintf(why, sizeof why, "%s: %s", what, d);
  free(d);
  bool was_up = db->st == ST_READY;
  drop_conn(db);
  if (!db->closing) {
    long ms = db->backoff_cur ? db->backoff_cur * 2 : db->backoff_min;
    if (was_up) ms = db->backoff_min;
    if (ms > db->backoff_max) ms = db->backoff_max;
    db->backoff_cur = ms;
    cp_log(was_up ? CP_ERROR : CP_WARN, "database %s; reconnecting in %ld ms", why, ms);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(db->ev_timer, &tv);
  }
  fail_all(db, why);
}

static void pump(cpdb *db);

static void flush_out(cpdb *db) {
  int r = PQflush(db->conn);
  if (r < 0)
    conn_failed(db, "connection lost", PQerrorMessage(db->conn));
  else if (r == 1)
    event_add(db->ev_write, NULL);
}

/* Read every complete result; a query completes at its Sync. */
static void drain(cpdb *db) {
  int nulls = 0;
  while (db->st == ST_READY && db->inflight.head && !db->closing) {
    if (PQisBusy(db->conn)) break;
    PGresult *r = PQgetResult(db->conn);
    cpdb_q *q = db->inflight.head;
    if (!r) {
      if (++nulls > 1) break;
      continue;
    }
    nulls = 0;
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      ql_pop(&db->inflight);
      /* COMMIT of a failed transaction "succeeds" as ROLLBACK: an error */
      if (!q->err && q->res && strcmp(PQcmdStatus(q->res), "ROLLBACK") == 0 &&
          (strncasecmp(q->sql, "COMMIT", 6) == 0 || strncasecmp(q->sql, "END", 3) == 0))
        q->err = trimmed("COMMIT rolled back: an earlier statement of the transaction failed");
      complete(db, q, NULL, true);
    } else if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
      if (q->res) PQclear(q->res);
      q->res = r;
    } else {
      if (!q->err) {
        q->err = trimmed(s == PGRES_PIPELINE_ABORTED ? "aborted by an earlier error"
                                                     : PQresultErrorMessage(r));
      }
      PQclear(r);
    }
  }
}

static void notifications(cpdb *db) {
  PGnotify *n;
  while (db->conn && (n = PQnotifies(db->conn))) {
    db->depth++;
    for (size_t i = 0; i < db->nls && !db->closing; i++)
      if (strcmp(db->ls[i].channel, n->relname) == 0)
        db->ls[i].cb(db->ls[i].arg, n->relname, n->extra ? n->extra : "");
    db->depth--;
    PQfreemem(n);
  }
}

static void destroy(cpdb *db);

/* After a handler: free when cpdb_free was called from a callback. */
static bool reap(cpdb *db) {
  if (db->closing && db->depth == 0) {
    destroy(db);
    return true;
  }
  return false;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cpdb *db = arg;
  if (db->st != ST_READY) return;
  if (!PQconsumeInput(db->conn) || PQstatus(db->conn) == CONNECTION_BAD) {
    /* results that arrived before the close still count */
    drain(db);
    if (db->st == ST_READY) conn_failed(db, "connection lost", PQerrorMessage(db->conn));
    reap(db);
    return;
  }
  drain(db);
  if (db->st == ST_READY) notifications(db);
  if (reap(db)) return;
  if (db->st == ST_READY) {
    flush_out(db);
    pump(db);
  }
  reap(db);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cpdb *db = arg;
  if (db->st != ST_READY) return;
  flush_out(db);
  reap(db);
}

static void on_kick(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cpdb *db = arg;
  pump(db);
  reap(db);
}

static char *listen_sql(const char *channel) {
  kv_strbuf b = {0};
  kv_strbuf_puts(&b, "LISTEN \"");
  for (const char *p = channel; *p; p++) {
    if (*p == '"') kv_strbuf_putc(&b, '"');
    kv_strbuf_putc(&b, *p);
  }
  kv_strbuf_putc(&b, '"');
  return kv_strbuf_take(&b, NULL);
}

static cpdb_q *q_new(const char *sql, int nparams, const char *const *params, cpdb_cb cb,
                     void *arg) {
  cpdb_q *q = calloc(1, sizeof *q);
  if (!q) kv_oom();
  q->sql = strdup(sql);
  if (!q->sql) kv_oom();
  q->nparams = nparams > 0 ? nparams : 0;
  if (q->nparams) {
    q->params = calloc((size_t)q->nparams, sizeof *q->params);
    if (!q->params) kv_oom();
    for (int i = 0; i < q->nparams; i++)
      if (params && params[i] && !(q->params[i] = strdup(params[i]))) kv_oom();
  }
  q->cb = cb;
  q->arg = arg;
  return q;
}

static void notice_to_log(void *arg, const char *msg) {
  (void)arg;
  char *m = trimmed(msg);
  cp_log(CP_DEBUG, "database: %s", m);
  free(m);
}

static void became_ready(cpdb *db) {
  evtimer_del(db->ev_timer);
  PQsetNoticeProcessor(db->conn, notice_to_log, NULL);
  if (PQsetnonblocking(db->conn, 1) != 0 || PQenterPipelineMode(db->conn) != 1) {
    conn_failed(db, "cannot enter pipeline mode", PQerrorMessage(db->conn));
    return;
  }
  if (db->ev_io) event_free(db->ev_io);
  int fd = PQsocket(db->conn);
  db->ev_io = event_new(db->base, fd, EV_READ | EV_PERSIST, on_read, db);
  db->ev_write = event_new(db->base, fd, EV_WRITE, on_write, db);
  event_add(db->ev_io, NULL);
  db->st = ST_READY;
  if (db->was_ready) db->stats.reconnects++;
  db->was_ready = true;
  db->backoff_cur = 0;
  cp_log(CP_INFO, "database connected (server %d)", PQserverVersion(db->conn));
  /* re-subscribe before anything else is sent */
  for (size_t i = db->nls; i-- > 0;) {
    char *sql = listen_sql(db->ls[i].channel);
    cpdb_q *q = q_new(sql, 0, NULL, NULL, NULL);
    free(sql);
    q->internal = true;
    ql_push_front(&db->pending, q);
  }
  pump(db);
}

static void arm_connect(cpdb *db, short ev);

static void on_connect_io(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cpdb *db = arg;
  if (db->st != ST_CONNECTING) return;
  switch (PQconnectPoll(db->conn)) {
  case PGRES_POLLING_READING: arm_connect(db, EV_READ); break;
  case PGRES_POLLING_WRITING: arm_connect(db, EV_WRITE); break;
  case PGRES_POLLING_OK: became_ready(db); break;
  default: conn_failed(db, "cannot connect", PQerrorMessage(db->conn)); break;
  }
  reap(db);
}

static void arm_connect(cpdb *db, short ev) {
  if (db->ev_io) event_free(db->ev_io);
  db->ev_io = event_new(db->base, PQsocket(db->conn), ev, on_connect_io, db);
  event_add(db->ev_io, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cpdb *db = arg;
  if (db->st == ST_CONNECTING)
    conn_failed(db, "cannot connect", "timed out");
  else if (db->st == ST_IDLE)
    start_connect(db);
  reap(db);
}

static void start_connect(cpdb *db) {
  db->conn = PQconnectStart(db->url);
  if (!db->conn) {
    conn_failed(db, "cannot connect", "out of memory");
    return;
  }
  if (PQstatus(db->conn) == CONNECTION_BAD) {
    conn_failed(db, "cannot connect", PQerrorMessage(db->conn));
    return;
  }
  db->st = ST_CONNECTING;
  struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, 0};
  evtimer_add(db->ev_timer, &tv);
  arm_connect(db, EV_WRITE);
}

/* Send what is pending (bounded by MAX_INFLIGHT), one Sync per query. */
static void pump(cpdb *db) {
  if (db->st != ST_READY || db->closing) return;
  bool sent = false;
  while (db->pending.head && db->inflight.n < MAX_INFLIGHT) {
    cpdb_q *q = ql_pop(&db->pending);
    if (!PQsendQueryParams(db->conn, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL,
                           NULL, 0)) {
      if (PQstatus(db->conn) == CONNECTION_BAD) {
        ql_push_front(&db->pending, q);
        conn_failed(db, "connection lost", PQerrorMessage(db->conn));
        return;
      }
      char *m = trimmed(PQerrorMessage(db->conn));
      complete(db, q, m, false);
      free(m);
      continue;
    }
    if (!PQpipelineSync(db->conn)) {
      ql_push_front(&db->inflight, q);
      conn_failed(db, "connection lost", PQerrorMessage(db->conn));
      return;
    }
    clock_gettime(CLOCK_MONOTONIC, &q->sent);
    ql_push(&db->inflight, q);
    sent = true;
  }
  if (sent) flush_out(db);
}

cpdb *cpdb_new(struct event_base *base, const char *url, char *err, size_t errlen) {
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(url ? url : "", &perr);
  if (!opts) {
    char *m = trimmed(perr ? perr : "out of memory");
    snprintf(err, errlen, "database URL: %s", m);
    free(m);
    if (perr) PQfreemem(perr);
    return NULL;
  }
  PQconninfoFree(opts);
  cpdb *db = calloc(1, sizeof *db);
  if (!db) kv_oom();
  db->base = base;
  db->url = strdup(url);
  if (!db->url) kv_oom();
  db->backoff_min = 250;
  db->backoff_max = 10000;
  db->ev_timer = evtimer_new(base, on_timer, db);
  db->ev_kick = event_new(base, -1, 0, on_kick, db);
  start_connect(db);
  return db;
}

static void destroy(cpdb *db) {
  drop_conn(db);
  fail_all(db, "shutting down");
  event_free(db->ev_timer);
  event_free(db->ev_kick);
  for (size_t i = 0; i < db->nls; i++)
    free(db->ls[i].channel);
  free(db->ls);
  free(db->url);
  free(db);
}

void cpdb_free(cpdb *db) {
  if (!db || db->closing) return;
  db->closing = true;
  if (db->depth == 0) destroy(db);
}

void cpdb_set_backoff(cpdb *db, long min_ms, long max_ms) {
  db->backoff_min = min_ms > 0 ? min_ms : 1;
  db->backoff_max = max_ms >= db->backoff_min ? max_ms : db->backoff_min;
}

int cpdb_query(cpdb *db, const char *sql, int nparams, const char *const *params, cpdb_cb cb,
               void *arg) {
  if (!db || db->closing) return -1;
  ql_push(&db->pending, q_new(sql, nparams, params, cb, arg));
  if (db->st == ST_READY) event_active(db->ev_kick, 0, 0);
  return 0;
}

int cpdb_listen(cpdb *db, const char *channel, cpdb_notify_cb cb, void *arg) {
  if (!db || db->closing || !channel || !cb) return -1;
  listener *ls = realloc(db->ls, (db->nls + 1) * sizeof *ls);
  if (!ls) kv_oom();
  db->ls = ls;
  ls[db->nls].channel = strdup(channel);
  if (!ls[db->nls].channel) kv_oom();
  ls[db->nls].cb = cb;
  ls[db->nls].arg = arg;
  db->nls++;
  if (db->st == ST_READY) { /* else the connection subscribes when it is up */
    char *sql = listen_sql(channel);
    cpdb_q *q = q_new(sql, 0, NULL, NULL, NULL);
    free(sql);
    q->internal = true;
    ql_push(&db->pending, q);
    event_active(db->ev_kick, 0, 0);
  }
  return 0;
}

bool cpdb_connected(const cpdb *db) { return db && db->st == ST_READY; }
size_t cpdb_queue_length(const cpdb *db) { return db ? db->pending.n + db->inflight.n : 0; }
const cpdb_stats *cpdb_get_stats(const cpdb *db) { return &db->stats; }

/* ---- blocking helpers ----------------------------------------------------- */

static void quiet_notices(void *arg, const char *msg) { (void)arg, (void)msg; }

PGconn *cpdb_sync_connect(const char *url, char *err, size_t errlen) {
  PGconn *c = PQconnectdb(url ? url : "");
  if (!c) {
    snprintf(err, errlen, "database: out of memory");
    return NULL;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    char *m = trimmed(PQerrorMessage(c));
    snprintf(err, errlen, "cannot connect to the database: %s", m);
    free(m);
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeProcessor(c, quiet_notices, NULL);
  return c;
}

PGresult *cpdb_sync_exec(PGconn *c, const char *sql, int nparams, const char *const *params,
                         char *err, size_t errlen) {
  PGresult *r = nparams == 0 && !params
                    ? PQexec(c, sql)
                    : PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) return r;
  char *m = trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(c));
  snprintf(err, errlen, "%s", m);
  free(m);
  if (r) PQclear(r);
  return NULL;
}

static bool exec_ok(PGconn *c, const char *sql, int n, const char *const *p, char *err,
                    size_t errlen) {
  PGresult *r = cpdb_sync_exec(c, sql, n, p, err, errlen);
  if (r) PQclear(r);
  return r != NULL;
}

int cpdb_migrate(PGconn *c, char *err, size_t errlen) {
  char e[1024];
  if (!exec_ok(c, "SELECT pg_advisory_lock(hashtext('koreo-migrations'))", 0, NULL, e, sizeof e)) {
    snprintf(err, errlen, "migrations: taking the advisory lock: %s", e);
    return -1;
  }
  int applied = 0;
  if (!exec_ok(c,
               "CREATE TABLE IF NOT EXISTS schema_migrations ("
               "version integer PRIMARY KEY, name text NOT NULL, "
               "applied_at timestamptz NOT NULL DEFAULT now())",
               0, NULL, e, sizeof e)) {
    snprintf(err, errlen, "migrations: creating schema_migrations: %s", e);
    applied = -1;
  }
  for (size_t i = 0; applied >= 0 && i < cpdb_n_migrations; i++) {
    const cpdb_migration *m = &cpdb_migrations[i];
    char ver[16];
    snprintf(ver, sizeof ver, "%d", m->version);
    const char *p1[] = {ver};
    PGresult *r =
        cpdb_sync_exec(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p1, e, sizeof e);
    if (!r) {
      snprintf(err, errlen, "migrations: reading schema_migrations: %s", e);
      applied = -1;
      break;
    }
    bool done = PQntuples(r) > 0;
    PQclear(r);
    if (done) continue;
    const char *p2[] = {ver, m->name};
    if (!exec_ok(c, "BEGIN", 0, NULL, e, sizeof e) || !exec_ok(c, m->sql, 0, NULL, e, sizeof e) ||
        !exec_ok(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, p2, e,
                 sizeof e) ||
        !exec_ok(c, "COMMIT", 0, NULL, e, sizeof e)) {
      char e2[256];
      exec_ok(c, "ROLLBACK", 0, NULL, e2, sizeof e2);
      snprintf(err, errlen, "migration %s failed (nothing of it applied): %s", m->name, e);
      applied = -1;
      break;
    }
    applied++;
  }
  exec_ok(c, "SELECT pg_advisory_unlock(hashtext('koreo-migrations'))", 0, NULL, e, sizeof e);
  return applied;
}

int cpdb_schema_version(PGconn *c) {
  char e[512];
  PGresult *r =
      cpdb_sync_exec(c, "SELECT to_regclass('schema_migrations') IS NULL", 0, NULL, e, sizeof e);
  if (!r) return -1;
  bool none = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  if (none) return 0;
  r = cpdb_sync_exec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, e,
                     sizeof e);
  if (!r) return -1;
  int v = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  return v;
}
