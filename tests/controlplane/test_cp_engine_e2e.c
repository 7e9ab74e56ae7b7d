/*
 * tests/controlplane/test_cp_engine_e2e.c: the control plane's engine end
 * to end with the real pieces: a private PostgreSQL (tests/pg), the engine
 * in this process (controlplane/engine*.c, real mutual TLS), the real
 * koreo-agent binary registered with a database bootstrap token, koreo-kubesim
 * as the cluster and kubectl as the user.  The hello-service example:
 * kubectl creates a labelled Deployment, its Service appears, the
 * Deployment's status shows Koreo's conditions, the run is recorded with its
 * steps; the agent stops (the cluster goes offline, saying why), the
 * Deployment changes meanwhile, and the change is applied when the agent is
 * back (autonomy off, so the control plane did it).
 *
 * argv: koreo-kubesim koreo-agent; KOREO_SHARED_DIR points at shared/.
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
#include "engine.h"
#include "koreo/json.h"
#include "koreo/value.h"
#include "pgtest.h"
#include "tls.h"

#include "agent_test_util.h"
#include "cp_test_util.h"
#include "kubesim_harness.h"

static const char *g_kubesim, *g_agent;
static char g_shared[1024];

typedef struct fx {
  pgtest *pg;
  PGconn *sql;
  struct event_base *base;
  struct event *tick;
  ktls_ca *ca;
  cp_options o;
  cp_ctx ctx;
  cp_engine *e;
  ksim sim;
  char dir[128], state[192], log[192], token[128];
  pid_t agent;
} fx;

static void tick(evutil_socket_t fd, short w, void *a) { (void)fd, (void)w, (void)a; }

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void spin(fx *f, int ms) {
  int64_t until = mono_ms() + ms;
  while (mono_ms() < until)
    event_base_loop(f->base, EVLOOP_ONCE);
}

static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  kv_strbuf b = {0};
  char buf[1024];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    kv_strbuf_put(&b, buf, n);
  int st = pclose(p);
  char *text = kv_strbuf_take(&b, NULL);
  if (out)
    *out = text ? text : strdup("");
  else
    free(text);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *sql1(fx *f, const char *q) {
  PGresult *r = PQexec(f->sql, q);
  ExecStatusType st = PQresultStatus(r);
  char *v = NULL;
  if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
    v = strdup(PQgetvalue(r, 0, 0));
  else if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    fprintf(stderr, "sql: %s: %s\n", q, PQerrorMessage(f->sql));
  PQclear(r);
  return v ? v : strdup("");
}

/* Spin the loop (the engine lives in it) until `cmd` (shell) succeeds or
 * `sql` returns `want`; fail after `secs`. */
static void wait_shell(fx *f, const char *cmd, int secs, const char *what) {
  int64_t end = mono_ms() + secs * 1000;
  while (sh(NULL, "%s", cmd) != 0) {
    if (mono_ms() > end) {
      char *out = NULL;
      sh(&out, "tail -25 '%s'", f->log);
      fprintf(stderr, "--- agent log ---\n%s", out ? out : "");
      free(out);
      fail_msg("timed out waiting for %s", what);
    }
    spin(f, 100);
  }
}

static void wait_sql(fx *f, const char *q, const char *want, int secs, const char *what) {
  int64_t end = mono_ms() + secs * 1000;
  for (;;) {
    char *v = sql1(f, q);
    bool ok = strcmp(v, want) == 0;
    if (!ok && mono_ms() > end) fprintf(stderr, "%s: got '%s', want '%s'\n", q, v, want);
    free(v);
    if (ok) return;
    if (mono_ms() > end) fail_msg("timed out waiting for %s", what);
    spin(f, 100);
  }
}

static void start_agent(fx *f) {
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", cp_engine_agent_port(f->e));
  const char *argv[] = {g_agent,
                        "--server",
                        server,
                        "--cluster-name",
                        "east",
                        "--state-dir",
                        f->state,
                        "--bootstrap-token",
                        f->token,
                        "--kubeconfig",
                        f->sim.kubeconfig,
                        "--no-autonomy",
                        NULL};
  f->agent = spawn_logged(f->log, argv);
  assert_true(f->agent > 0);
}

static void stop_agent(fx *f) {
  if (!f->agent) return;
  kill(f->agent, SIGTERM);
  for (int i = 0; i < 100; i++) {
    spin(f, 50);
    if (waitpid(f->agent, NULL, WNOHANG) == f->agent) {
      f->agent = 0;
      return;
    }
  }
  kill(f->agent, SIGKILL);
  waitpid(f->agent, NULL, 0);
  f->agent = 0;
}

static int setup(void **state) {
  if (!g_kubesim || !*g_kubesim || !g_agent || access(g_agent, X_OK) != 0 ||
      sh(NULL, "kubectl version --client >/dev/null 2>&1") != 0) {
    fprintf(stderr, "needs koreo-kubesim, koreo-agent and kubectl\n");
    return -1;
  }
  fx *f = calloc(1, sizeof *f);
  char err[2048];
  f->pg = pgtest_start(err, sizeof err);
  if (!f->pg) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  f->sql = cpdb_sync_connect(pgtest_url(f->pg), err, sizeof err);
  if (!f->sql || cpdb_migrate(f->sql, err, sizeof err) < 0) {
    fprintf(stderr, "migrate: %s\n", err);
    return -1;
  }
  free(sql1(f, "SELECT koreo_ensure_partitions(current_date - 1, 3)"));
  snprintf(f->dir, sizeof f->dir, "/tmp/koreo-cpe2e-XXXXXX");
  if (!mkdtemp(f->dir) || ksim_start(&f->sim, g_kubesim, false, NULL) != 0) return -1;
  setenv("KUBECONFIG", f->sim.kubeconfig, 1);
  snprintf(f->state, sizeof f->state, "%s/state", f->dir);
  snprintf(f->log, sizeof f->log, "%s/agent.log", f->dir);
  ktls_err ke = {{0}};
  f->ca = ktls_ca_new("koreo e2e CA", 30, &ke);
  f->base = event_base_new();
  f->tick = event_new(f->base, -1, EV_PERSIST, tick, NULL);
  struct timeval tv = {0, 10000};
  event_add(f->tick, &tv);
  cp_log_setup(false, getenv("CP_TEST_VERBOSE") ? CP_DEBUG : (cp_log_level)(CP_ERROR + 1));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  if (!f) return 0;
  stop_agent(f);
  if (f->e) cp_engine_free(f->e);
  if (f->ctx.db) cpdb_free(f->ctx.db);
  ksim_stop(&f->sim, false);
  if (f->tick) event_free(f->tick);
  if (f->base) event_base_free(f->base);
  ktls_ca_free(f->ca);
  if (f->sql) PQfinish(f->sql);
  pgtest_stop(f->pg);
  rm_rf(f->dir);
  free(f);
  return 0;
}

static void test_hello_service(void **state) {
  fx *f = *state;
  char err[600];
  if (cpt_load_hello_service(f->sql, g_shared, NULL, err, sizeof err) != 0 ||
      cpt_bootstrap_token(f->sql, f->ca, "east", 3600, f->token, err, sizeof err) != 0)
    fail_msg("%s", err);

  f->o.database_url = pgtest_url(f->pg);
  f->o.agent_listen = "127.0.0.1:0";
  f->o.resync_ms = 20 * 60 * 1000;
  f->o.heartbeat_ms = 2000;
  f->o.run_timeout_ms = 15000;
  f->o.backoff_min_ms = 500;
  f->o.backoff_max_ms = 5000;
  f->o.lease_ms = 60000;
  f->o.replica_id = "e2e";
  f->ctx.base = f->base;
  f->ctx.opt = &f->o;
  f->ctx.db = cpdb_new(f->base, pgtest_url(f->pg), err, sizeof err);
  f->ctx.ca = f->ca;
  f->e = cp_engine_new(&f->ctx, err, sizeof err);
  assert_non_null(f->e);

  start_agent(f);
  wait_sql(f, "SELECT state FROM clusters WHERE name = 'east'", "online", 30, "east online");
  wait_sql(f, "SELECT count(*) > 0 FROM bootstrap_tokens WHERE used_at IS NOT NULL", "t", 5,
           "token used");

  char dep[1400];
  snprintf(dep, sizeof dep, "%s/reference/koreo-examples/kubernetes/hello-service/deployment.yaml",
           g_shared);
  int64_t t0 = mono_ms();
  assert_int_equal(sh(NULL, "kubectl apply -f '%s' >/dev/null", dep), 0);
  wait_shell(f, "kubectl get service nginx-svc >/dev/null 2>&1", 30, "the Service");
  fprintf(stderr, "  kubectl apply -> Service in the cluster: %lld ms\n",
          (long long)(mono_ms() - t0));
  char *out = NULL;
  assert_int_equal(
      sh(&out, "kubectl get service nginx-svc -o jsonpath='{.spec.ports[0].targetPort}'"), 0);
  assert_string_equal(out, "80");
  free(out);
  wait_shell(f,
             "test \"$(kubectl get deployment nginx-deployment -o "
             "jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True",
             30, "the Ready condition");
  assert_int_equal(sh(&out, "kubectl get deployment nginx-deployment -o "
                            "jsonpath='{.metadata.annotations.koreo\\.dev/managed-resources}'"),
                   0);
  assert_non_null(strstr(out, "nginx-svc"));
  free(out);
  /* creating the Service is Retry(30) (spec 5.8: create delay), so the run
   * is recorded as such and comes back in 30 s */
  wait_sql(f,
           "SELECT outcome || ' ' || message FROM workflow_runs WHERE cluster = 'east' AND name = "
           "'nginx-deployment'",
           "Retry Creating Service:default:nginx-svc.", 10, "the recorded run");
  wait_sql(f,
           "SELECT due_at BETWEEN now() + interval '25 seconds' AND now() + interval '31 seconds' "
           "FROM work_queue WHERE cluster = 'east' AND name = 'nginx-deployment'",
           "t", 5, "the retry in 30 s");
  /* let the 30 s pass */
  free(sql1(f, "UPDATE work_queue SET due_at = now() WHERE cluster = 'east'"));
  wait_sql(f,
           "SELECT count(*) FROM workflow_runs WHERE cluster = 'east' AND name = "
           "'nginx-deployment' AND outcome = 'Ok'",
           "1", 10, "the Ok run");
  wait_sql(f,
           "SELECT string_agg(label || ':' || s.outcome, ',' ORDER BY ordinal) FROM step_runs s "
           "JOIN workflow_runs r ON r.id = s.run_id AND r.started_at = s.run_started_at WHERE "
           "r.cluster = 'east' AND r.outcome = 'Ok'",
           "get_service_config:Ok,create_service:Ok", 10, "the recorded steps");
  wait_sql(f,
           "SELECT due_at > now() + interval '19 minutes' FROM work_queue WHERE cluster = 'east' "
           "AND name = 'nginx-deployment'",
           "t", 5, "the resync");

  /* the agent goes away: offline, with the reason */
  stop_agent(f);
  wait_sql(f, "SELECT state FROM clusters WHERE name = 'east'", "offline", 30, "east offline");
  char *reason = sql1(f, "SELECT state_reason FROM clusters WHERE name = 'east'");
  assert_non_null(strstr(reason, "waits until it reconnects"));
  free(reason);
  /* a change while it is away, applied when it is back */
  assert_int_equal(sh(NULL,
                      "kubectl label deployment nginx-deployment service=nginx-svc2 --overwrite "
                      ">/dev/null"),
                   0);
  spin(f, 500);
  assert_int_not_equal(sh(NULL, "kubectl get service nginx-svc2 >/dev/null 2>&1"), 0);
  start_agent(f);
  wait_sql(f, "SELECT state FROM clusters WHERE name = 'east'", "online", 30, "east back");
  wait_shell(f, "kubectl get service nginx-svc2 >/dev/null 2>&1", 30, "the changed Service");
  wait_sql(f,
           "SELECT count(*) FROM workflow_runs WHERE cluster = 'east' AND name = "
           "'nginx-deployment'",
           "3", 10, "the run after the change");
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error, not a death */
  g_kubesim = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  g_agent = argc > 2 ? argv[2] : NULL;
  const char *sh_dir = getenv("KOREO_SHARED_DIR");
  snprintf(g_shared, sizeof g_shared, "%s", sh_dir && *sh_dir ? sh_dir : "/work/shared");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hello_service, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
