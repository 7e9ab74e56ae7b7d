/*
 * tests/agent/standalone_accept.c: acceptance tests of `koreo-agent
 * --standalone` (issue 5 item 5) against koreo-kubesim, with kubectl
 * playing the user.  Each test starts its own kubesim (tests/kube/
 * kubesim_harness.h) and its own agent process, and stops the agent with
 * SIGTERM at the end: a non-zero exit (e.g. a leak found by the sanitizer)
 * fails the test.
 *
 *  - hello-service (shared/reference/koreo-examples/kubernetes/): a
 *    labelled Deployment gets its Service, the Deployment's status shows
 *    Koreo's conditions and managed-resources annotation; an unlabelled one
 *    gets a Skip condition and no Service; editing service-factory's port
 *    in the definitions directory changes the Service without a restart;
 *    /healthz, /readyz and /metrics answer.
 *  - fully-built.v1 of core-examples: the agent starts before the CRDs
 *    exist, dummy-crds.yaml is applied, and the trigger converges to Ready
 *    with the Workflow's state; a trigger without koreo.dev/workflow gets
 *    MultipleWorkflows (three Workflows share the crdRef).  The examples'
 *    crdRefs say version v1alpha8 while dummy-crds.yaml serves only
 *    v1beta1, so the copied definitions are edited to v1beta1.
 *
 * Arguments: the koreo-kubesim and koreo-agent binaries.  Environment:
 * KOREO_SHARED_DIR (the shared/ folder).  kubectl must be on PATH; a
 * missing binary or kubectl skips the tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_test_util.h"
#include "koreo/json.h"
#include "koreo/value.h"
#include "kubesim_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char *g_kubesim, *g_agent, *g_shared;

typedef struct env {
  ksim sim;
  char dir[128]; /* scratch: definitions, logs */
  pid_t agent;
  int health_port;
  char agent_log[256];
} env;

/* Run a shell command; its stdout is returned (malloc'ed) in *out when
 * out is not NULL.  Returns the exit status. */

/* `kubectl get ARGS -o json` parsed, or NULL when it fails. */
static kv *kget(const char *args) {
  char *out = NULL;
  int rc = run_sh(&out, "kubectl get %s -o json 2>/dev/null", args);
  kv *v = NULL;
  if (rc == 0 && out) {
    kv_parse_error e = {0};
    v = kv_json_parse(out, strlen(out), &e);
  }
  free(out);
  return v;
}

/* Walk a dotted path of map keys ("status.conditions"); list indexes as
 * numbers ("spec.ports.0.port"). */
static const kv *at(const kv *v, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  char *save = NULL;
  for (char *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) {
    if (v->kind == KV_MAP)
      v = kv_map_get_str(v, p);
    else if (v->kind == KV_LIST && (size_t)atoi(p) < kv_len(v))
      v = kv_list_at(v, (size_t)atoi(p));
    else
      v = NULL;
  }
  return v;
}

static const char *at_str(const kv *v, const char *path) {
  const kv *s = at(v, path);
  return s && s->kind == KV_STRING ? kv_str(s) : NULL;
}

static int64_t at_int(const kv *v, const char *path) {
  const kv *s = at(v, path);
  return s && s->kind == KV_INT ? s->u.i : -1;
}

/* The condition of `type` in obj.status.conditions, borrowed, or NULL. */
static const kv *condition(const kv *obj, const char *type) {
  const kv *cs = at(obj, "status.conditions");
  for (size_t i = 0; cs && cs->kind == KV_LIST && i < kv_len(cs); i++) {
    const char *t = at_str(kv_list_at(cs, i), "type");
    if (t && strcmp(t, type) == 0) return kv_list_at(cs, i);
  }
  return NULL;
}

/* Poll `kubectl get ARGS` until pred(obj, arg) holds (at most `secs`).
 * Returns the object (owned) or NULL on timeout. */
static kv *wait_for(const char *args, bool (*pred)(const kv *, const void *), const void *arg,
                    int secs) {
  for (int i = 0; i < secs * 5; i++) {
    kv *o = kget(args);
    if (o && pred(o, arg)) return o;
    kv_unref(o);
    ksim_sleep_ms(200);
  }
  return NULL;
}

static bool exists(const kv *o, const void *arg) {
  (void)arg;
  return o != NULL;
}

/* Ready condition with this reason. */
static bool ready_reason(const kv *o, const void *reason) {
  const char *r = at_str(condition(o, "Ready"), "reason");
  return r && strcmp(r, reason) == 0;
}

static bool port_is(const kv *o, const void *port) {
  return at_int(o, "spec.ports.0.port") == *(const int *)port;
}

/* Start the agent on `defs_dir`; `extra` is NULL or a NULL-terminated
 * list of further arguments. */
/* The value of one sample line of /metrics, -1 when absent. */
static int64_t metric(const env *e, const char *name);

static void start_agent(env *e, const char *defs_dir, const char *const *extra) {
  e->health_port = free_port();
  snprintf(e->agent_log, sizeof e->agent_log, "%s/agent.log", e->dir);
  char health[64];
  snprintf(health, sizeof health, "127.0.0.1:%d", e->health_port);
  const char *argv[32] = {g_agent,
                          "--standalone",
                          "--definitions",
                          defs_dir,
                          "--kubeconfig",
                          e->sim.kubeconfig,
                          "--reload-interval",
                          "300ms",
                          "--health-listen",
                          health,
                          "--log-format",
                          "json"};
  int n = 12;
  for (int i = 0; extra && extra[i] && n < 31; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  pid_t pid = spawn_logged(e->agent_log, argv);
  assert_true(pid > 0);
  e->agent = pid;
}

/* SIGTERM the agent; returns its exit status (0 = clean, no leaks). */
static int stop_agent(env *e) {
  if (!e->agent) return 0;
  kill(e->agent, SIGTERM);
  int st = 0;
  for (int i = 0; i < 200; i++) {
    if (waitpid(e->agent, &st, WNOHANG) == e->agent) {
      e->agent = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    ksim_sleep_ms(50);
  }
  kill(e->agent, SIGKILL);
  waitpid(e->agent, NULL, 0);
  e->agent = 0;
  return -1;
}

static int64_t metric(const env *e, const char *name) {
  char *body = NULL;
  int64_t v = -1;
  if (http_get(e->health_port, "/metrics", &body) == 200) {
    size_t n = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
      if (strncmp(p, name, n) == 0 && p[n] == ' ') v = strtoll(p + n + 1, NULL, 10);
  }
  free(body);
  return v;
}

static bool agent_alive(const env *e) { return e->agent && waitpid(e->agent, NULL, WNOHANG) == 0; }

static void show_log(const env *e) {
  char *out = NULL;
  run_sh(&out, "tail -40 '%s'", e->agent_log);
  fprintf(stderr, "--- agent log ---\n%s", out ? out : "");
  free(out);
}

static int setup(void **state) {
  if (!g_kubesim || !g_agent || !g_shared ||
      run_sh(NULL, "kubectl version --client >/dev/null 2>&1"))
    return -1;
  env *e = calloc(1, sizeof *e);
  snprintf(e->dir, sizeof e->dir, "/tmp/koreo-agent-test-XXXXXX");
  if (!mkdtemp(e->dir) || ksim_start(&e->sim, g_kubesim, false, NULL) != 0) {
    free(e);
    return -1;
  }
  setenv("KUBECONFIG", e->sim.kubeconfig, 1);
  *state = e;
  return 0;
}

static int teardown(void **state) {
  env *e = *state;
  if (e->agent) stop_agent(e);
  ksim_stop(&e->sim, false);
  rm_rf(e->dir);
  free(e);
  return 0;
}

/* Copy the hello-service example's definitions into <dir>/defs (its path
 * in defs). */
static void copy_hello_service(const env *e, char *defs, size_t n) {
  snprintf(defs, n, "%s/defs", e->dir);
  assert_int_equal(
      run_sh(NULL,
             "mkdir -p '%s' && cp '%s'/reference/koreo-examples/kubernetes/hello-service/"
             "*.k.yaml '%s'/",
             defs, g_shared, defs),
      0);
}

static void test_hello_service(void **state) {
  env *e = *state;
  char defs[200];
  copy_hello_service(e, defs, sizeof defs);
  start_agent(e, defs, NULL);

  /* health endpoints: live at once, ready once the Deployment watch synced */
  char *body = NULL;
  int code = -1;
  for (int i = 0; i < 50 && code != 200; i++) {
    free(body);
    body = NULL;
    code = http_get(e->health_port, "/readyz", &body);
    if (code != 200) ksim_sleep_ms(100);
  }
  assert_int_equal(code, 200);
  free(body);
  assert_int_equal(http_get(e->health_port, "/healthz", &body), 200);
  free(body);
  assert_int_equal(http_get(e->health_port, "/nope", &body), 404);
  free(body);

  /* the user applies the labelled Deployment: its Service appears */
  assert_int_equal(run_sh(NULL,
                          "kubectl apply -f '%s'/reference/koreo-examples/kubernetes/"
                          "hello-service/deployment.yaml >/dev/null",
                          g_shared),
                   0);
  kv *svc = wait_for("service nginx-svc -n default", exists, NULL, 20);
  if (!svc) show_log(e);
  assert_non_null(svc);
  assert_string_equal(at_str(svc, "spec.selector.app"), "nginx");
  assert_int_equal(at_int(svc, "spec.ports.0.port"), 80);
  assert_int_equal(at_int(svc, "spec.ports.0.targetPort"), 80);
  const char *owner_kind = at_str(svc, "metadata.ownerReferences.0.kind");
  assert_non_null(owner_kind);
  assert_string_equal(owner_kind, "Deployment");
  kv_unref(svc);

  /* the Deployment shows Koreo's Ready condition (Wait after the create,
   * spec 6.9) and the managed-resources annotation */
  kv *dep = wait_for("deployment nginx-deployment -n default", ready_reason, "Wait", 20);
  assert_non_null(dep);
  const kv *c = condition(dep, "Ready");
  assert_string_equal(at_str(c, "status"), "True");
  assert_non_null(strstr(at_str(c, "message"), "Workflow hello-service"));
  assert_non_null(at_str(c, "lastTransitionTime"));
  const kv *ann = at(dep, "metadata.annotations");
  const kv *mr = ann ? kv_map_get_str(ann, "koreo.dev/managed-resources") : NULL;
  assert_non_null(mr);
  assert_non_null(strstr(kv_str(mr), "nginx-svc"));
  kv_unref(dep);

  /* an unlabelled Deployment: skipped (condition says so), no Service */
  assert_int_equal(run_sh(NULL, "kubectl create deployment plain --image=nginx >/dev/null"), 0);
  kv *plain = wait_for("deployment plain -n default", ready_reason, "Skip", 20);
  assert_non_null(plain);
  kv_unref(plain);
  char *svcs = NULL;
  run_sh(&svcs, "kubectl get services -n default -o name");
  assert_null(strstr(svcs, "service/plain"));
  free(svcs);

  /* edit a definition file: picked up without a restart */
  pid_t before = e->agent;
  assert_int_equal(
      run_sh(NULL, "sed -i 's/port: 80$/port: 8080/' '%s/service-factory.k.yaml'", defs), 0);
  int want = 8080;
  svc = wait_for("service nginx-svc -n default", port_is, &want, 20);
  if (!svc) show_log(e);
  assert_non_null(svc);
  kv_unref(svc);
  assert_true(agent_alive(e));
  assert_int_equal(e->agent, before);

  /* /metrics counts what happened */
  assert_int_equal(http_get(e->health_port, "/metrics", &body), 200);
  assert_non_null(strstr(body, "koreo_agent_ready 1"));
  assert_non_null(strstr(body, "koreo_agent_definition_reloads_total 1"));
  assert_non_null(strstr(body, "koreo_agent_triggers 2"));
  assert_null(strstr(body, "koreo_agent_status_writes_total 0"));
  free(body);

  int rc = stop_agent(e);
  if (rc != 0) show_log(e);
  assert_int_equal(rc, 0);
}

static void test_fully_built(void **state) {
  env *e = *state;
  char defs[200];
  snprintf(defs, sizeof defs, "%s/core", e->dir);
  const char *ex = "reference/koreo-examples/core-examples";
  assert_int_equal(run_sh(NULL,
                          "mkdir -p '%s' && cp '%s'/%s/*.koreo '%s'/ && "
                          "sed -i 's/^    version: v1alpha8$/    version: v1beta1/' '%s'/*.koreo",
                          defs, g_shared, ex, defs, defs),
                   0);
  /* the agent starts first: the trigger kind is not served yet */
  const char *resync[] = {"--resync", "1s", NULL};
  start_agent(e, defs, resync);
  ksim_sleep_ms(1500);
  char *body = NULL;
  assert_int_equal(http_get(e->health_port, "/readyz", &body), 503);
  free(body);
  assert_true(agent_alive(e));

  assert_int_equal(
      run_sh(NULL, "kubectl apply -f '%s'/%s/dummy-crds.yaml >/dev/null", g_shared, ex), 0);
  assert_int_equal(run_sh(NULL, "kubectl create namespace koreo-testing >/dev/null"), 0);
  char trig[300];
  snprintf(trig, sizeof trig, "%s/trigger.yaml", e->dir);
  FILE *f = fopen(trig, "w");
  assert_non_null(f);
  fputs("apiVersion: koreo.dev/v1beta1\n"
        "kind: TriggerDummy\n"
        "metadata:\n"
        "  name: fully-built-trigger\n"
        "  namespace: koreo-testing\n"
        "  annotations:\n"
        "    koreo.dev/workflow: fully-built.v1\n"
        "spec:\n"
        "  validators: {skip: true, depSkip: true, permFail: true, retry: true, ok: true}\n"
        "  values: {string: A test string, int: 89}\n"
        "  use_default: true\n"
        "  optionalSkips: {one: false, two: true, three: false}\n"
        "---\n"
        "apiVersion: koreo.dev/v1beta1\n"
        "kind: TriggerDummy\n"
        "metadata:\n"
        "  name: unnamed-workflow\n"
        "  namespace: koreo-testing\n"
        "spec: {}\n",
        f);
  fclose(f);
  assert_int_equal(run_sh(NULL, "kubectl apply -f '%s' >/dev/null", trig), 0);

  kv *t = wait_for("triggerdummy fully-built-trigger -n koreo-testing", ready_reason, "Ready", 30);
  if (!t) show_log(e);
  assert_non_null(t);
  assert_string_equal(at_str(condition(t, "Ready"), "message"), "Workflow fully-built.v1 ready.");
  assert_string_equal(at_str(t, "status.state.config.nested_string"),
                      "A test string nested string");
  const kv *ann = at(t, "metadata.annotations");
  const kv *mr = ann ? kv_map_get_str(ann, "koreo.dev/managed-resources") : NULL;
  assert_non_null(mr);
  assert_non_null(strstr(kv_str(mr), "\"workflow\":\"fully-built.v1\""));
  kv_unref(t);

  /* three Workflows have this crdRef: without the annotation none is chosen */
  kv *u = wait_for("triggerdummy unnamed-workflow -n koreo-testing", ready_reason,
                   "MultipleWorkflows", 20);
  assert_non_null(u);
  assert_string_equal(at_str(condition(u, "Ready"), "status"), "false");
  assert_non_null(at_str(u, "status.koreo.errors"));
  kv_unref(u);

  assert_int_equal(http_get(e->health_port, "/readyz", &body), 200);
  free(body);

  /* --resync 1s: the settled trigger is re-run although nothing changed */
  int64_t ok1 = metric(e, "koreo_agent_workflow_runs_total{outcome=\"ok\"}");
  ksim_sleep_ms(3500);
  int64_t ok2 = metric(e, "koreo_agent_workflow_runs_total{outcome=\"ok\"}");
  assert_true(ok1 >= 1);
  assert_true(ok2 >= ok1 + 2);

  int rc = stop_agent(e);
  if (rc != 0) show_log(e);
  assert_int_equal(rc, 0);
}

/* Runs slower than --run-timeout are cancelled, reported as Retry on the
 * trigger, and retried with a growing backoff; answers that arrive after
 * the deadline are dropped safely. */
static void test_timeout_backoff(void **state) {
  env *e = *state;
  /* a slow API server: every answer 250 ms late */
  ksim_stop(&e->sim, false);
  const char *slow[] = {"--latency-ms", "250", NULL};
  assert_int_equal(ksim_start(&e->sim, g_kubesim, false, slow), 0);
  setenv("KUBECONFIG", e->sim.kubeconfig, 1);
  char defs[200];
  copy_hello_service(e, defs, sizeof defs);
  const char *extra[] = {"--run-timeout", "400ms", "--backoff-max", "2s", NULL};
  start_agent(e, defs, extra);
  assert_int_equal(run_sh(NULL,
                          "kubectl apply -f '%s'/reference/koreo-examples/kubernetes/"
                          "hello-service/deployment.yaml >/dev/null",
                          g_shared),
                   0);
  /* GET (404) + create take at least 500 ms: the run times out */
  kv *dep = wait_for("deployment nginx-deployment -n default", ready_reason, "Wait", 20);
  if (!dep) show_log(e);
  assert_non_null(dep);
  assert_non_null(strstr(at_str(condition(dep, "Ready"), "message"), "Timeout"));
  kv_unref(dep);
  assert_true(metric(e, "koreo_agent_workflow_run_timeouts_total") >= 1);
  /* the create abandoned at the deadline still happened; the retry comes
   * after the error backoff (about 1 s), not the 30 s of the Retry, and a
   * single GET fits in the deadline: the Workflow becomes Ready */
  dep = wait_for("deployment nginx-deployment -n default", ready_reason, "Ready", 12);
  if (!dep) show_log(e);
  assert_non_null(dep);
  kv_unref(dep);

  /* a change, then SIGTERM while its run waits on the slow server: the
   * agent abandons the run and still exits cleanly (no leak) */
  assert_int_equal(run_sh(NULL, "kubectl label deployment nginx-deployment extra=1 >/dev/null"), 0);
  ksim_sleep_ms(150);
  int rc = stop_agent(e);
  if (rc != 0) show_log(e);
  assert_int_equal(rc, 0);
}

int main(int argc, char **argv) {
  g_kubesim = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  g_agent = argc > 2 && argv[2][0] ? argv[2] : getenv("KOREO_AGENT");
  g_shared = getenv("KOREO_SHARED_DIR");
  if (!g_kubesim || !g_agent || !g_shared) {
    fprintf(stderr, "skipped: needs the kubesim and koreo-agent binaries and KOREO_SHARED_DIR\n");
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hello_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fully_built, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_backoff, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
