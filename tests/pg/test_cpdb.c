/*
 * tests/pg/test_cpdb.c: the control plane's database layer
 * (controlplane/db.c) against a real PostgreSQL started by tests/pg/pgtest:
 * migrations (once, idempotent, concurrent), the asynchronous cpdb
 * (ordering, parameters, errors, a pipelined batch of 1000, LISTEN/NOTIFY,
 * reconnect after a server restart) and the history partition functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cp.h"
#include "db.h"
#include "pgtest.h"

static pgtest *g_pg;
static struct event_base *g_base;
static struct event *g_tick;

static void tick(evutil_socket_t fd, short w, void *a) { (void)fd, (void)w, (void)a; }

static int group_setup(void **state) {
  (void)state;
  char err[2048];
  g_pg = pgtest_start(err, sizeof err);
  if (!g_pg) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  g_base = event_base_new();
  g_tick = event_new(g_base, -1, EV_PERSIST, tick, NULL);
  struct timeval tv = {0, 10000};
  event_add(g_tick, &tv);
  cp_log_setup(false, CP_ERROR + 1); /* quiet: the tests provoke errors */
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (g_tick) event_free(g_tick);
  if (g_base) event_base_free(g_base);
  pgtest_stop(g_pg);
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Run the loop until *counter reaches target or ms pass; true if reached. */
static bool wait_for(const int *counter, int target, int ms) {
  double end = now_s() + ms / 1000.0;
  while (*counter < target && now_s() < end)
    event_base_loop(g_base, EVLOOP_ONCE);
  return *counter >= target;
}

/* A fresh database for one test; returns its URL (static buffer). */
static const char *fresh_db(const char *name) {
  static char url[256];
  char err[1024];
  if (pgtest_createdb(g_pg, name, url, sizeof url, err, sizeof err) != 0) fail_msg("%s", err);
  return url;
}

static long count(PGconn *c, const char *sql) {
  char err[512];
  PGresult *r = cpdb_sync_exec(c, sql, 0, NULL, err, sizeof err);
  if (!r) fail_msg("%s: %s", sql, err);
  long n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* ---- migrations ------------------------------------------------------------ */

static void test_migrate_once_idempotent(void **state) {
  (void)state;
  const char *url = fresh_db("mig1");
  char err[1024];
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  assert_int_equal(cpdb_schema_version(c), 0);
  assert_true(cpdb_n_migrations >= 1);
  assert_int_equal(cpdb_migrate(c, err, sizeof err), (int)cpdb_n_migrations);
  assert_int_equal(cpdb_schema_version(c), cpdb_migrations[cpdb_n_migrations - 1].version);
  /* the tables of 0001 exist */
  assert_int_equal(count(c, "SELECT count(*) FROM pg_tables WHERE schemaname='public' AND "
                            "tablename IN ('clusters','bootstrap_tokens','definitions','triggers',"
                            "'work_queue','workflow_runs','step_runs','api_tokens','audit_log')"),
                   9);
  /* again: nothing to do, nothing recorded twice */
  assert_int_equal(cpdb_migrate(c, err, sizeof err), 0);
  assert_int_equal(count(c, "SELECT count(*) FROM schema_migrations"), (long)cpdb_n_migrations);
  PQfinish(c);
}

static void test_migrate_concurrent(void **state) {
  (void)state;
  const char *url = fresh_db("mig2");
  pid_t kids[4];
  for (int i = 0; i < 4; i++) {
    kids[i] = fork();
    assert_true(kids[i] >= 0);
    if (kids[i] == 0) {
      char err[1024];
      PGconn *c = cpdb_sync_connect(url, err, sizeof err);
      int n = c ? cpdb_migrate(c, err, sizeof err) : -1;
      if (n < 0) fprintf(stderr, "child %d: %s\n", i, err);
      if (c) PQfinish(c);
      _exit(n < 0 ? 1 : 0);
    }
  }
  for (int i = 0; i < 4; i++) {
    int st = 0;
    assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  char err[512];
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  assert_int_equal(count(c, "SELECT count(*) FROM schema_migrations"), (long)cpdb_n_migrations);
  assert_int_equal(cpdb_migrate(c, err, sizeof err), 0);
  PQfinish(c);
}

static void test_migrate_failure_rolls_back(void **state) {
  (void)state;
  const char *url = fresh_db("mig3");
  char err[1024];
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  /* a table in the way: 0001 fails half-way and leaves nothing behind */
  PGresult *r = cpdb_sync_exec(c, "CREATE TABLE api_tokens (x int)", 0, NULL, err, sizeof err);
  assert_non_null(r);
  PQclear(r);
  assert_int_equal(cpdb_migrate(c, err, sizeof err), -1);
  assert_non_null(strstr(err, "0001_init"));
  assert_non_null(strstr(err, "api_tokens"));
  assert_int_equal(count(c, "SELECT count(*) FROM pg_tables WHERE tablename='clusters'"), 0);
  assert_int_equal(cpdb_schema_version(c), 0);
  /* the advisory lock was released: another session can take it at once */
  PGconn *c2 = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c2);
  assert_int_equal(
      count(c2, "SELECT CASE WHEN pg_try_advisory_lock(hashtext('koreo-migrations')) THEN 1 "
                "ELSE 0 END"),
      1);
  PQfinish(c2);
  PQfinish(c);
}

/* ---- async ------------------------------------------------------------------ */

typedef struct rec {
  int done;
  int order[1100];
  char vals[1100][32];
  char errs[1100][256];
} rec;

typedef struct slot {
  rec *r;
  int i;
} slot;

static void on_res(void *arg, PGresult *res, const char *err) {
  slot *s = arg;
  rec *r = s->r;
  r->order[r->done] = s->i;
  if (res) {
    snprintf(r->vals[s->i], sizeof r->vals[s->i], "%s",
             PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    r->errs[s->i][0] = 0;
  } else {
    snprintf(r->errs[s->i], sizeof r->errs[s->i], "%s", err ? err : "(null)");
  }
  r->done++;
}

static void test_async_order_params_errors(void **state) {
  (void)state;
  char err[512];
  cpdb *db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(db);
  rec *r = calloc(1, sizeof *r);
  slot s[4];
  for (int i = 0; i < 4; i++)
    s[i] = (slot){r, i};
  /* queued before the connection is up: they wait for it */
  const char *p0[] = {"20", "22"};
  assert_int_equal(cpdb_query(db, "SELECT $1::int + $2::int", 2, p0, on_res, &s[0]), 0);
  assert_int_equal(cpdb_query(db, "SELECT nosuchcolumn FROM nosuchtable", 0, NULL, on_res, &s[1]),
                   0);
  const char *p2[] = {NULL};
  assert_int_equal(cpdb_query(db, "SELECT coalesce($1::text, 'was null')", 1, p2, on_res, &s[2]),
                   0);
  const char *p3[] = {"it's \"quoted\""};
  assert_int_equal(cpdb_query(db, "SELECT upper($1)", 1, p3, on_res, &s[3]), 0);
  assert_true(wait_for(&r->done, 4, 10000));
  for (int i = 0; i < 4; i++)
    assert_int_equal(r->order[i], i);
  assert_string_equal(r->vals[0], "42");
  assert_string_equal(r->errs[0], "");
  assert_non_null(strstr(r->errs[1], "nosuchtable"));
  assert_string_equal(r->vals[2], "was null");
  assert_string_equal(r->vals[3], "IT'S \"QUOTED\"");
  assert_true(cpdb_connected(db));
  assert_int_equal(cpdb_queue_length(db), 0);
  const cpdb_stats *st = cpdb_get_stats(db);
  assert_int_equal(st->queries, 4);
  assert_int_equal(st->errors, 1);
  assert_true(st->latency_buckets[7] == 4 && st->latency_sum_s > 0);
  cpdb_free(db);
  free(r);
}

static void test_async_batch_1000(void **state) {
  (void)state;
  char err[512];
  cpdb *db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(db);
  rec *r = calloc(1, sizeof *r);
  slot warm = {r, 1099};
  cpdb_query(db, "SELECT 1", 0, NULL, on_res, &warm);
  assert_true(wait_for(&r->done, 1, 10000));
  r->done = 0;
  slot *s = calloc(1000, sizeof *s);
  double t0 = now_s();
  for (int i = 0; i < 1000; i++) {
    s[i] = (slot){r, i};
    char v[16];
    snprintf(v, sizeof v, "%d", i);
    const char *p[] = {v};
    /* one failing query in the middle must not disturb its neighbours */
    assert_int_equal(cpdb_query(db, i == 500 ? "SELECT 1/($1::int - 500)" : "SELECT $1::int * 2", 1,
                                p, on_res, &s[i]),
                     0);
  }
  assert_int_equal(cpdb_queue_length(db), 1000);
  assert_true(wait_for(&r->done, 1000, 20000));
  double dt = now_s() - t0;
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(r->order[i], i);
    if (i == 500) {
      assert_non_null(strstr(r->errs[i], "division by zero"));
    } else {
      assert_int_equal(atoi(r->vals[i]), 2 * i);
    }
  }
  fprintf(stderr, "[ info ] 1000 pipelined queries in %.1f ms\n", dt * 1000);
  /* pipelined: far below 1000 sequential round trips with their wakeups */
  assert_true(dt < 5.0);
  cpdb_free(db);
  free(s);
  free(r);
}

static void test_async_transaction(void **state) {
  (void)state;
  char err[512];
  cpdb *db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(db);
  rec *r = calloc(1, sizeof *r);
  slot s[12];
  for (int i = 0; i < 12; i++)
    s[i] = (slot){r, i};
  const char *q[] = {"CREATE TABLE IF NOT EXISTS tx_t (v int)",
                     "BEGIN",
                     "INSERT INTO tx_t VALUES (1)",
                     "COMMIT",
                     "BEGIN",
                     "INSERT INTO tx_t VALUES (2)",
                     "INSERT INTO tx_t VALUES ('not a number')",
                     "INSERT INTO tx_t VALUES (3)",
                     "COMMIT",
                     "SELECT string_agg(v::text, ',' ORDER BY v) FROM tx_t"};
  for (int i = 0; i < 10; i++)
    cpdb_query(db, q[i], 0, NULL, on_res, &s[i]);
  assert_true(wait_for(&r->done, 10, 10000));
  assert_string_equal(r->errs[3], "");
  assert_non_null(strstr(r->errs[6], "not a number"));
  assert_non_null(strstr(r->errs[7], "aborted"));
  assert_non_null(strstr(r->errs[8], "rolled back"));
  assert_string_equal(r->vals[9], "1"); /* 2 was rolled back with the rest */
  cpdb_free(db);
  free(r);
}

typedef struct notes {
  int n;
  char chan[8][64], payload[8][64];
} notes;

static void on_note(void *arg, const char *ch, const char *payload) {
  notes *n = arg;
  if (n->n < 8) {
    snprintf(n->chan[n->n], 64, "%s", ch);
    snprintf(n->payload[n->n], 64, "%s", payload);
  }
  n->n++;
}

static void test_listen_notify(void **state) {
  (void)state;
  char err[512];
  cpdb *db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(db);
  notes n = {0};
  assert_int_equal(cpdb_listen(db, "koreo_definitions", on_note, &n), 0);
  rec *r = calloc(1, sizeof *r);
  slot s0 = {r, 0};
  cpdb_query(db, "SELECT 1", 0, NULL, on_res, &s0);
  assert_true(wait_for(&r->done, 1, 10000));
  /* from another session, after the LISTEN is active */
  PGconn *c = cpdb_sync_connect(pgtest_url(g_pg), err, sizeof err);
  assert_non_null(c);
  PGresult *pr = cpdb_sync_exec(c, "NOTIFY koreo_definitions, 'Workflow/default/hello'", 0, NULL,
                                err, sizeof err);
  assert_non_null(pr);
  PQclear(pr);
  pr = cpdb_sync_exec(c, "NOTIFY koreo_work, 'east'", 0, NULL, err, sizeof err); /* not ours */
  assert_non_null(pr);
  PQclear(pr);
  assert_true(wait_for(&n.n, 1, 5000));
  /* a second channel added while connected */
  assert_int_equal(cpdb_listen(db, "koreo_work", on_note, &n), 0);
  slot s1 = {r, 1};
  cpdb_query(db, "SELECT 1", 0, NULL, on_res, &s1);
  assert_true(wait_for(&r->done, 2, 10000));
  pr = cpdb_sync_exec(c, "SELECT pg_notify('koreo_work', 'west')", 0, NULL, err, sizeof err);
  assert_non_null(pr);
  PQclear(pr);
  assert_true(wait_for(&n.n, 2, 5000));
  event_base_loop(g_base, EVLOOP_NONBLOCK);
  assert_int_equal(n.n, 2);
  assert_string_equal(n.chan[0], "koreo_definitions");
  assert_string_equal(n.payload[0], "Workflow/default/hello");
  assert_string_equal(n.chan[1], "koreo_work");
  assert_string_equal(n.payload[1], "west");
  PQfinish(c);
  cpdb_free(db);
  free(r);
}

/* cpdb_free from inside a callback, with queries still queued. */
typedef struct selfree {
  cpdb *db;
  int calls, shut;
} selfree;

static void free_in_cb(void *arg, PGresult *res, const char *err) {
  selfree *f = arg;
  f->calls++;
  if (res && f->db) {
    cpdb *db = f->db;
    f->db = NULL;
    cpdb_free(db);
  } else if (err && strstr(err, "shutting down")) {
    f->shut++;
  }
}

static void test_free_inside_callback(void **state) {
  (void)state;
  char err[512];
  selfree f = {0};
  f.db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(f.db);
  for (int i = 0; i < 3; i++)
    cpdb_query(f.db, "SELECT 1", 0, NULL, free_in_cb, &f);
  assert_true(wait_for(&f.calls, 3, 10000));
  assert_null(f.db);
  assert_int_equal(f.shut, 2);
}

static void test_bad_url(void **state) {
  (void)state;
  char err[512] = "";
  assert_null(cpdb_new(g_base, "postgresql://[::1", err, sizeof err));
  assert_non_null(strstr(err, "database URL"));
  assert_null(cpdb_sync_connect("postgresql://postgres@127.0.0.1:1/none", err, sizeof err));
  assert_non_null(strstr(err, "cannot connect"));
}

/* A caller that re-queues on every error (while the server is down). */
typedef struct retrier {
  cpdb *db;
  int errors, ok;
} retrier;

static void retry_cb(void *arg, PGresult *res, const char *err) {
  retrier *t = arg;
  if (res) {
    t->ok++;
    return;
  }
  (void)err;
  t->errors++;
  cpdb_query(t->db, "SELECT 'retried'", 0, NULL, retry_cb, t);
}

static void test_reconnect(void **state) {
  (void)state;
  char err[512];
  cpdb *db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(db);
  cpdb_set_backoff(db, 50, 200);
  notes n = {0};
  cpdb_listen(db, "koreo_work", on_note, &n);
  rec *r = calloc(1, sizeof *r);
  slot s[4];
  for (int i = 0; i < 4; i++)
    s[i] = (slot){r, i};
  cpdb_query(db, "SELECT 'before'", 0, NULL, on_res, &s[0]);
  assert_true(wait_for(&r->done, 1, 10000));
  assert_string_equal(r->vals[0], "before");

  /* a long query in flight while the server goes down */
  cpdb_query(db, "SELECT pg_sleep(30)::text", 0, NULL, on_res, &s[1]);
  event_base_loop(g_base, EVLOOP_NONBLOCK);
  assert_int_equal(pgtest_server_stop(g_pg), 0);
  assert_true(wait_for(&r->done, 2, 10000));
  assert_non_null(strstr(r->errs[1], "connection lost"));
  assert_false(cpdb_connected(db));
  /* while it is down: queries fail with a clear error instead of hanging */
  cpdb_query(db, "SELECT 'down'", 0, NULL, on_res, &s[2]);
  assert_true(wait_for(&r->done, 3, 10000));
  assert_non_null(strstr(r->errs[2], "cannot connect"));
  /* a caller retrying on every error does not spin: one try per attempt */
  retrier t = {db, 0, 0};
  cpdb_query(db, "SELECT 'retried'", 0, NULL, retry_cb, &t);
  for (int i = 0; i < 30; i++)
    event_base_loop(g_base, EVLOOP_ONCE); /* ~300 ms */
  assert_true(t.errors >= 1 && t.errors <= 10);
  assert_int_equal(t.ok, 0);

  assert_int_equal(pgtest_server_start(g_pg), 0);
  int up = 0;
  double end = now_s() + 10;
  while (!cpdb_connected(db) && now_s() < end)
    event_base_loop(g_base, EVLOOP_ONCE);
  up = cpdb_connected(db);
  assert_true(up);
  cpdb_query(db, "SELECT 'after'", 0, NULL, on_res, &s[3]);
  assert_true(wait_for(&r->done, 4, 10000));
  assert_string_equal(r->vals[3], "after");
  assert_string_equal(r->errs[3], "");
  assert_true(cpdb_get_stats(db)->reconnects >= 1);
  assert_true(wait_for(&t.ok, 1, 5000)); /* the retrier got through too */
  /* LISTEN was re-subscribed */
  PGconn *c = cpdb_sync_connect(pgtest_url(g_pg), err, sizeof err);
  assert_non_null(c);
  PGresult *pr = cpdb_sync_exec(c, "NOTIFY koreo_work, 'east'", 0, NULL, err, sizeof err);
  assert_non_null(pr);
  PQclear(pr);
  PQfinish(c);
  assert_true(wait_for(&n.n, 1, 5000));
  assert_string_equal(n.payload[0], "east");
  cpdb_free(db);
  free(r);
}

/* ---- partitions --------------------------------------------------------------- */

static void test_partitions(void **state) {
  (void)state;
  const char *url = fresh_db("parts");
  char err[1024];
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  assert_true(cpdb_migrate(c, err, sizeof err) >= 1);
  const char *parts = "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
                      "WHERE p.relname IN ('workflow_runs', 'step_runs')";
  assert_int_equal(count(c, parts), 0);
  PGresult *r = cpdb_sync_exec(c, "SELECT koreo_ensure_partitions(current_date - 1, 3)", 0, NULL,
                               err, sizeof err);
  assert_non_null(r);
  PQclear(r);
  assert_int_equal(count(c, parts), 6);
  /* idempotent */
  r = cpdb_sync_exec(c, "SELECT koreo_ensure_partitions(current_date, 2)", 0, NULL, err,
                     sizeof err);
  assert_non_null(r);
  PQclear(r);
  assert_int_equal(count(c, parts), 6);
  /* rows route to today's partition */
  r = cpdb_sync_exec(c,
                     "INSERT INTO workflow_runs (id, started_at, last_seen_at, workflow, cluster, "
                     "api_version, kind, namespace, name, outcome, fingerprint) VALUES "
                     "(nextval('workflow_runs_id_seq'), now(), now(), 'default/hello', 'east', "
                     "'apps/v1', 'Deployment', 'default', 'web', 'Ok', 'x')",
                     0, NULL, err, sizeof err);
  assert_non_null(r);
  PQclear(r);
  char today[64];
  /* the server's current_date decides; ask it */
  r = cpdb_sync_exec(c, "SELECT 'workflow_runs_' || to_char(current_date, 'YYYYMMDD')", 0, NULL,
                     err, sizeof err);
  assert_non_null(r);
  snprintf(today, sizeof today, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", today);
  assert_int_equal(count(c, sql), 1);
  /* retention: dropping before today removes yesterday's two partitions only */
  assert_int_equal(count(c, "SELECT koreo_drop_partitions(current_date)"), 2);
  assert_int_equal(count(c, parts), 4);
  assert_int_equal(count(c, "SELECT count(*) FROM workflow_runs"), 1);
  assert_int_equal(count(c, "SELECT koreo_drop_partitions(current_date + 2)"), 4);
  assert_int_equal(count(c, "SELECT count(*) FROM workflow_runs"), 0);
  /* a row without a partition is refused (the daemon creates them ahead) */
  assert_null(cpdb_sync_exec(c,
                             "INSERT INTO workflow_runs (id, started_at, last_seen_at, workflow, "
                             "cluster, api_version, kind, namespace, name, outcome, fingerprint) "
                             "VALUES (1, now(), now(), 'w', 'c', 'v1', 'K', 'n', 'x', 'Ok', 'x')",
                             0, NULL, err, sizeof err));
  assert_non_null(strstr(err, "partition"));
  PQfinish(c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_migrate_once_idempotent),
      cmocka_unit_test(test_migrate_concurrent),
      cmocka_unit_test(test_migrate_failure_rolls_back),
      cmocka_unit_test(test_async_order_params_errors),
      cmocka_unit_test(test_async_batch_1000),
      cmocka_unit_test(test_async_transaction),
      cmocka_unit_test(test_listen_notify),
      cmocka_unit_test(test_free_inside_callback),
      cmocka_unit_test(test_bad_url),
      cmocka_unit_test(test_partitions),
      cmocka_unit_test(test_reconnect),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
