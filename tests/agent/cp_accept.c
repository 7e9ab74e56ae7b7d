/*
 * tests/agent/cp_accept.c: the koreo-agent BINARY in control-plane mode,
 * end to end against a protocol harness acting as the control plane
 * (agent/tls_server.c: real mutual TLS 1.3 on 127.0.0.1, in this process)
 * with koreo-kubesim as the cluster and kubectl as the user:
 * registration with a bootstrap token, WatchSet -> TriggerEvents,
 * DefinitionPush of the hello-service example (cached 0600 in the state
 * dir, hashes announced in the next Hello), ApplyRequest -> the Service
 * exists (kubectl get) and ApplyResult Ok with the resource id, a repeated
 * request_id answered from the cache without re-applying, an unknown hash
 * answered Retry + Error UNKNOWN_DEFINITION, StatusUpdate -> the
 * Deployment shows the conditions and the managed-resources annotation.
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "koreo/json.h"
#include "koreo/value.h"
#include "kubesim_harness.h"
#include "tls.h"

#include "agent_test_util.h" /* after tls.h: its frame helpers */

static const char *g_kubesim, *g_agent, *g_shared;

#define MAXR 64

typedef struct hx {
  struct event_base *base;
  ktls_ca *ca;
  ktls_token_store *tokens;
  ktls_server *srv;
  int port;
  char dir[128], state[192], token[128], log[192];
  ksim sim;
  pid_t agent;
  kframe_inbox in;
  kframe_outbox *ob;
  struct bufferevent *bev; /* the agent's session, NULL when none */
  bool spoke;              /* the agent sent something after HelloAck */
  int sessions;
  size_t hello_hashes; /* cached_definition_hashes of the last Hello */
  /* what the agent sent (processed once each) */
  Koreo__Agent__V1__ApplyResult *results[MAXR];
  int n_results;
  int errors[MAXR];
  int n_errors;
  int events, snapshots;
  bool snapshot_has_nginx; /* the last snapshot carried nginx-deployment */
  int auto_status;         /* StatusUpdates agent -> control plane (autonomous runs) */
  char auto_run_id[64];    /* run_id of the first one */
  char auto_reason[64];    /* its Ready condition's reason */
  /* definitions */
  char hash_rf[80], hash_vf[80], hash_wf[80];
} hx;

/* ---------------------------------------------------------------- harness */

static void flush_out(hx *h) {
  if (!h->bev || !h->spoke) return;
  uint8_t *frame;
  size_t len;
  while (kframe_outbox_next(h->ob, h->in.last, &frame, &len, NULL)) {
    bufferevent_write(h->bev, frame, len);
    free(frame);
  }
}

static void on_session(void *arg, const char *cluster, const Koreo__Agent__V1__Hello *hello,
                       Koreo__Agent__V1__HelloAck *ack, struct bufferevent *bev) {
  (void)cluster;
  hx *h = arg;
  ack->last_acked_sequence = h->in.last;
  /* 1 s: the harness blocks while kubectl runs; the agent's dead-peer
   * timeout (three intervals) must outlast that */
  ack->heartbeat_interval_ms = 1000;
  kframe_outbox_rewind(h->ob, hello->last_acked_sequence);
  h->bev = bev;
  h->spoke = false;
  h->sessions++;
  h->hello_hashes = hello->n_cached_definition_hashes;
}

static void on_closed(void *arg, const char *cluster) {
  (void)cluster;
  hx *h = arg;
  h->bev = NULL;
  h->spoke = false;
}

static bool on_envelope(void *arg, const char *cluster, kframe_envelope *env,
                        struct bufferevent *bev) {
  (void)cluster;
  hx *h = arg;
  h->spoke = true;
  if (env->ack) kframe_outbox_ack(h->ob, env->ack);
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_ERROR && h->n_errors < MAXR)
    h->errors[h->n_errors++] = env->error->code;
  if (env->sequence && kframe_inbox_accept(&h->in, env->sequence) != KFRAME_DUPLICATE) {
    switch (env->body_case) {
    case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT:
      if (h->n_results < MAXR) {
        h->results[h->n_results++] = env->apply_result;
        env->apply_result = NULL; /* kept */
        env->body_case = KOREO__AGENT__V1__ENVELOPE__BODY__NOT_SET;
      }
      break;
    case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT: h->events++; break;
    case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT: {
      h->snapshots++;
      h->snapshot_has_nginx = false;
      const Koreo__Agent__V1__TriggerSnapshot *sn = env->trigger_snapshot;
      for (size_t i = 0; i < sn->n_objects; i++)
        h->snapshot_has_nginx |= !strcmp(sn->objects[i]->object_ref->name, "nginx-deployment");
      break;
    }
    case KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE: {
      const Koreo__Agent__V1__StatusUpdate *u = env->status_update;
      if (!h->auto_status++) {
        snprintf(h->auto_run_id, sizeof h->auto_run_id, "%s", u->run_id);
        for (size_t i = 0; i < u->n_conditions; i++)
          if (!strcmp(u->conditions[i]->type, "Ready"))
            snprintf(h->auto_reason, sizeof h->auto_reason, "%s", u->conditions[i]->reason);
      }
      break;
    }
    default: break;
    }
  }
  if (env->sequence || env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT)
    send_test_heartbeat(bev, h->in.last, 1);
  kframe_envelope_free(env);
  flush_out(h);
  return true;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void show_log(hx *h) {
  char *out = NULL;
  run_sh(&out, "tail -30 '%s'", h->log);
  fprintf(stderr, "--- agent log ---\n%s", out ? out : "");
  free(out);
}

typedef bool (*pred_fn)(hx *h, const void *arg);
static void run_until(hx *h, pred_fn p, const void *arg, double limit, const char *what) {
  double end = now_s() + limit;
  while (!p(h, arg)) {
    if (now_s() > end) {
      show_log(h);
      fail_msg("timed out waiting for %s", what);
    }
    struct timeval tv = {0, 20000};
    event_base_loopexit(h->base, &tv);
    event_base_loop(h->base, 0);
    flush_out(h);
  }
}

static void run_for(hx *h, double secs) {
  double end = now_s() + secs;
  while (now_s() < end) {
    struct timeval tv = {0, 20000};
    event_base_loopexit(h->base, &tv);
    event_base_loop(h->base, 0);
    flush_out(h);
  }
}

static void push(hx *h, Koreo__Agent__V1__Envelope *e) {
  assert_true(kframe_outbox_push(h->ob, e, NULL) > 0);
  flush_out(h);
}

static const char *g_extra[3]; /* more agent flags ("--x=y" form), NULL-terminated */

static void start_agent(hx *h) {
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", h->port);
  const char *argv[] = {g_agent,
                        "--server",
                        server,
                        "--cluster-name",
                        "edge-1",
                        "--state-dir",
                        h->state,
                        "--bootstrap-token",
                        h->token,
                        "--kubeconfig",
                        h->sim.kubeconfig,
                        g_extra[0],
                        g_extra[1],
                        NULL};
  h->agent = spawn_logged(h->log, argv);
  assert_true(h->agent > 0);
}

static int stop_agent(hx *h) {
  if (!h->agent) return 0;
  kill(h->agent, SIGTERM);
  int st = 0;
  for (int i = 0; i < 200; i++) {
    /* keep the loop going so the agent's goodbye does not block */
    struct timeval tv = {0, 50000};
    event_base_loopexit(h->base, &tv);
    event_base_loop(h->base, 0);
    if (waitpid(h->agent, &st, WNOHANG) == h->agent) {
      h->agent = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }
  kill(h->agent, SIGKILL);
  waitpid(h->agent, NULL, 0);
  h->agent = 0;
  return -1;
}

static ktls_server *serve(hx *h, int port) {
  return serve_harness(h->base, h->ca, h->tokens, port, on_session, on_envelope, on_closed, h);
}

static int setup(void **state) {
  if (!g_kubesim || !g_agent || !g_shared ||
      run_sh(NULL, "kubectl version --client >/dev/null 2>&1"))
    return -1;
  hx *h = calloc(1, sizeof *h);
  snprintf(h->dir, sizeof h->dir, "/tmp/koreo-cpaccept-XXXXXX");
  if (!mkdtemp(h->dir) || ksim_start(&h->sim, g_kubesim, false, NULL) != 0) {
    free(h);
    return -1;
  }
  setenv("KUBECONFIG", h->sim.kubeconfig, 1);
  snprintf(h->state, sizeof h->state, "%s/state", h->dir);
  snprintf(h->log, sizeof h->log, "%s/agent.log", h->dir);
  ktls_err err = {{0}};
  h->base = event_base_new();
  h->ca = ktls_ca_new("koreo-cp-accept-ca", 30, &err);
  h->tokens = ktls_token_store_new();
  h->ob = kframe_outbox_new(0, 0);
  h->srv = serve(h, 0);
  if (ktls_token_create(h->tokens, "edge-1", time(NULL) + 600, ktls_ca_pin(h->ca), h->token,
                        &err) != 0) {
    fprintf(stderr, "harness: %s\n", err.msg);
    return -1;
  }
  h->port = ktls_server_port(h->srv);
  *state = h;
  return 0;
}

static int teardown(void **state) {
  hx *h = *state;
  stop_agent(h);
  ktls_server_free(h->srv);
  ktls_token_store_free(h->tokens);
  ktls_ca_free(h->ca);
  kframe_outbox_free(h->ob);
  for (int i = 0; i < h->n_results; i++)
    koreo__agent__v1__apply_result__free_unpacked(h->results[i], NULL);
  event_base_free(h->base);
  ksim_stop(&h->sim, false);
  rm_rf(h->dir);
  free(h);
  return 0;
}

/* ---------------------------------------------------------------- messages */

static void sha256_text(const char *text, char out[80]) {
  /* via the CA helper-free route: OpenSSL's one-shot digest */
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
  strcpy(out, "sha256:");
  for (int i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

/* DefinitionPush of every Koreo definition in hello-service/. */
static void push_hello_service(hx *h) {
  const char *files[] = {"get-service-config.k.yaml", "service-factory.k.yaml",
                         "hello-service.k.yaml"};
  Koreo__Agent__V1__Definition defs[8], *dp[8];
  char *src[8], hashes[8][80], *hp[8];
  size_t n = 0;
  kv *all[3];
  for (size_t f = 0; f < 3; f++) {
    char path[512];
    snprintf(path, sizeof path, "%s/reference/koreo-examples/kubernetes/hello-service/%s", g_shared,
             files[f]);
    size_t len = 0;
    kv_parse_error pe = {0};
    char *text = kv_read_file(path, &len, &pe);
    assert_non_null(text);
    kv *docs = kv_yaml_parse(text, len, path, &pe);
    free(text);
    assert_non_null(docs);
    for (size_t i = 0; i < kv_len(docs); i++) {
      kv *d = kv_list_at(docs, i);
      const kv *k = d && d->kind == KV_MAP ? kv_map_get_str(d, "kind") : NULL;
      if (!k || k->kind != KV_STRING || !strcmp(kv_str(k), "FunctionTest")) continue;
      const char *kind = kv_str(k);
      const kv *md = kv_map_get_str(d, "metadata");
      assert_true(n < 8);
      koreo__agent__v1__definition__init(&defs[n]);
      src[n] = kv_json_write(d, 0, NULL);
      sha256_text(src[n], hashes[n]);
      defs[n].content_hash = hashes[n];
      defs[n].api_version = "koreo.dev/v1beta1";
      defs[n].kind = (char *)kind;
      defs[n].name = (char *)kv_str(kv_map_get_str(md, "name"));
      defs[n].source.data = (uint8_t *)src[n];
      defs[n].source.len = strlen(src[n]);
      dp[n] = &defs[n];
      hp[n] = hashes[n];
      if (!strcmp(kind, "ResourceFunction")) strcpy(h->hash_rf, hashes[n]);
      if (!strcmp(kind, "ValueFunction")) strcpy(h->hash_vf, hashes[n]);
      if (!strcmp(kind, "Workflow")) strcpy(h->hash_wf, hashes[n]);
      n++;
    }
    Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
    (void)e;
    if (f == 2) {
      Koreo__Agent__V1__DefinitionPush p = KOREO__AGENT__V1__DEFINITION_PUSH__INIT;
      p.n_definitions = n;
      p.definitions = dp;
      p.n_current_hashes = n;
      p.current_hashes = hp;
      p.generation = 1;
      e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_DEFINITION_PUSH;
      e.definition_push = &p;
      push(h, &e);
    }
    all[f] = docs; /* the Definitions point into it */
  }
  for (size_t f = 0; f < 3; f++)
    kv_unref(all[f]);
  for (size_t i = 0; i < n; i++)
    free(src[i]);
  assert_int_equal(n, 3);
}

static void push_watchset(hx *h) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__WatchSet w = KOREO__AGENT__V1__WATCH_SET__INIT;
  Koreo__Agent__V1__WatchKind k = KOREO__AGENT__V1__WATCH_KIND__INIT, *kp = &k;
  k.api_version = "apps/v1";
  k.kind = "Deployment";
  w.generation = 1;
  w.n_kinds = 1;
  w.kinds = &kp;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET;
  e.watch_set = &w;
  push(h, &e);
}

static void push_apply(hx *h, const char *request_id, const char *hash, const char *uid) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__ApplyRequest r = KOREO__AGENT__V1__APPLY_REQUEST__INIT;
  Koreo__Agent__V1__OwnerReference o = KOREO__AGENT__V1__OWNER_REFERENCE__INIT;
  o.namespace_ = "default";
  o.api_version = "apps/v1";
  o.kind = "Deployment";
  o.name = "nginx-deployment";
  o.uid = (char *)uid;
  o.block_owner_deletion = true;
  const char *inputs = "{\"name\":\"hello-koreo\",\"namespace\":\"default\","
                       "\"selector\":{\"app\":\"nginx\"},\"targetPort\":80}";
  r.request_id = (char *)request_id;
  r.run_id = "run-1";
  r.step_label = "service";
  r.function_hash = (char *)hash;
  r.function_name = "service-factory";
  r.inputs_json.data = (uint8_t *)inputs;
  r.inputs_json.len = strlen(inputs);
  r.owner = &o;
  r.location = "hello-service.spec.steps.service";
  r.timeout_ms = 10000;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST;
  e.apply_request = &r;
  push(h, &e);
}

static bool is_up(hx *h, const void *arg) {
  (void)arg;
  return h->bev && h->spoke;
}
static bool n_results_at_least(hx *h, const void *arg) { return h->n_results >= *(const int *)arg; }
static bool got_snapshot(hx *h, const void *arg) {
  (void)arg;
  return h->snapshots >= 1;
}
static bool got_event(hx *h, const void *arg) { return h->events >= *(const int *)arg; }
static bool sessions_at_least(hx *h, const void *arg) {
  return h->sessions >= *(const int *)arg && h->spoke;
}

static bool shell_ok(hx *h, const void *cmd) {
  (void)h;
  return run_sh(NULL, "%s", (const char *)cmd) == 0;
}

/* The agent's /metrics sample `name` (via curl), -1 when absent. */
static long metric(int port, const char *name) {
  char *out = NULL;
  long v = -1;
  if (run_sh(&out, "curl -sf http://127.0.0.1:%d/metrics | sed -n 's/^%s //p'", port, name) == 0 &&
      *out)
    v = strtol(out, NULL, 10);
  free(out);
  return v;
}

static void test_cp_end_to_end(void **state) {
  hx *h = *state;
  int hport = free_port();
  char health[64];
  snprintf(health, sizeof health, "--health-listen=127.0.0.1:%d", hport);
  g_extra[0] = health;
  start_agent(h);
  g_extra[0] = NULL;
  run_until(h, is_up, NULL, 20, "the agent registered and connected");
  run_until(h, got_snapshot, NULL, 10, "the first TriggerSnapshot");
  assert_int_equal(h->hello_hashes, 0);
  /* triggers */
  char dep[600];
  snprintf(dep, sizeof dep, "%s/reference/koreo-examples/kubernetes/hello-service/deployment.yaml",
           g_shared);
  assert_int_equal(run_sh(NULL, "kubectl apply -f '%s' >/dev/null", dep), 0);
  push_watchset(h);
  int one = 1;
  run_until(h, got_event, &one, 10, "a TriggerEvent for the Deployment");
  push_hello_service(h);
  run_for(h, 0.5);
  /* the definitions are cached 0600 by hash */
  char p[512];
  snprintf(p, sizeof p, "%s/definitions/%s.json", h->state, h->hash_rf + 7);
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  char *uid = NULL;
  assert_int_equal(
      run_sh(&uid, "kubectl get deployment nginx-deployment -o jsonpath='{.metadata.uid}'"), 0);
  /* ApplyRequest -> the Service is created (Koreo answers Retry "Creating
   * ..." after a create, spec 5.1, so the control plane asks again) */
  push_apply(h, "run-1/apply-1", h->hash_rf, uid);
  run_until(h, n_results_at_least, &one, 20, "the first ApplyResult");
  Koreo__Agent__V1__ApplyResult *r = h->results[0];
  assert_string_equal(r->request_id, "run-1/apply-1");
  assert_string_equal(r->step_label, "service");
  assert_int_equal(r->outcome, KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY);
  assert_non_null(strstr(r->message, "Creating Service"));
  assert_true(r->retry_delay_seconds > 0);
  char *out = NULL;
  assert_int_equal(
      run_sh(&out, "kubectl get service hello-koreo -o "
                   "jsonpath='{.spec.ports[0].targetPort} {.metadata.ownerReferences[0].uid}'"),
      0);
  char want[256];
  snprintf(want, sizeof want, "80 %s", uid);
  assert_string_equal(out, want);
  free(out);
  /* the next attempt finds it in place: Ok with the resource id */
  push_apply(h, "run-1/apply-2", h->hash_rf, uid);
  int two = 2;
  run_until(h, n_results_at_least, &two, 20, "the second ApplyResult");
  r = h->results[1];
  assert_string_equal(r->request_id, "run-1/apply-2");
  if (r->outcome != KOREO__AGENT__V1__OUTCOME__OUTCOME_OK) {
    show_log(h);
    fail_msg("outcome %d: %s", r->outcome, r->message);
  }
  assert_false(r->autonomous);
  assert_true(r->finished_unix_ms > 0);
  assert_string_equal(r->location, "hello-service.spec.steps.service");
  assert_non_null(r->resource);
  assert_string_equal(r->resource->kind, "Service");
  assert_string_equal(r->resource->name, "hello-koreo");
  assert_string_equal(r->resource->namespace_, "default");
  kv *rid = kv_json_parse((const char *)r->resource_id_json.data, r->resource_id_json.len, NULL);
  assert_non_null(rid);
  assert_string_equal(kv_str(kv_map_get_str(rid, "name")), "hello-koreo");
  assert_string_equal(kv_str(kv_map_get_str(rid, "kind")), "Service");
  kv_unref(rid);
  /* a repeated request_id is answered from the cache, not re-applied */
  assert_int_equal(run_sh(NULL, "kubectl delete service hello-koreo >/dev/null"), 0);
  push_apply(h, "run-1/apply-2", h->hash_rf, uid);
  int three = 3;
  run_until(h, n_results_at_least, &three, 10, "the repeated ApplyResult");
  assert_string_equal(h->results[2]->request_id, "run-1/apply-2");
  assert_int_equal(h->results[2]->outcome, KOREO__AGENT__V1__OUTCOME__OUTCOME_OK);
  assert_int_equal(h->results[2]->finished_unix_ms, r->finished_unix_ms);
  run_for(h, 0.5);
  assert_int_not_equal(run_sh(NULL, "kubectl get service hello-koreo >/dev/null 2>&1"), 0);
  /* an unknown hash: Retry "not cached" + Error UNKNOWN_DEFINITION */
  push_apply(h, "run-3/apply-1",
             "sha256:0000000000000000000000000000000000000000000000000000000000000000", uid);
  int four = 4;
  run_until(h, n_results_at_least, &four, 10, "the ApplyResult for an unknown hash");
  assert_int_equal(h->results[3]->outcome, KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY);
  assert_non_null(strstr(h->results[3]->message, "not cached"));
  assert_true(h->results[3]->retry_delay_seconds > 0);
  run_for(h, 0.2);
  bool unknown = false;
  for (int i = 0; i < h->n_errors; i++)
    unknown |= h->errors[i] == KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_DEFINITION;
  assert_true(unknown);
  /* the health endpoints of control-plane mode */
  assert_int_equal(run_sh(NULL, "curl -sf http://127.0.0.1:%d/readyz >/dev/null", hport), 0);
  assert_int_equal(metric(hport, "koreo_agent_connected"), 1);
  assert_int_equal(metric(hport, "koreo_agent_applies_total"), 2);
  assert_int_equal(metric(hport, "koreo_agent_applies_from_cache_total"), 1);
  assert_int_equal(metric(hport, "koreo_agent_applies_unknown_definition_total"), 1);
  assert_int_equal(metric(hport, "koreo_agent_definition_generation"), 1);
  /* StatusUpdate -> conditions, state, koreo and the annotation on the trigger */
  {
    Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
    Koreo__Agent__V1__StatusUpdate u = KOREO__AGENT__V1__STATUS_UPDATE__INIT;
    Koreo__Agent__V1__ObjectRef t = KOREO__AGENT__V1__OBJECT_REF__INIT;
    Koreo__Agent__V1__Condition c = KOREO__AGENT__V1__CONDITION__INIT, *cp = &c;
    t.api_version = "apps/v1";
    t.kind = "Deployment";
    t.namespace_ = "default";
    t.name = "nginx-deployment";
    c.type = "Ready";
    c.status = "True";
    c.reason = "Ready";
    c.message = "Workflow hello-service ready";
    c.location = "hello-service";
    c.last_transition_time = "2026-01-01T00:00:00.000000+00:00";
    c.last_update_time = "2026-01-01T00:00:01.000000+00:00";
    const char *st = "{\"service\":\"hello-koreo\"}";
    const char *ko = "{\"errors\":null,\"locations\":null,\"state_errors\":null}";
    u.trigger = &t;
    u.n_conditions = 1;
    u.conditions = &cp;
    u.state_json.data = (uint8_t *)st;
    u.state_json.len = strlen(st);
    u.koreo_json.data = (uint8_t *)ko;
    u.koreo_json.len = strlen(ko);
    u.managed_resources = "{\"workflow\":\"hello-service\",\"resources\":{}}";
    u.run_id = "run-2";
    e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE;
    e.status_update = &u;
    push(h, &e);
  }
  run_until(h, shell_ok,
            "test \"$(kubectl get deployment nginx-deployment -o "
            "jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}/{.status.state.service}/"
            "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}')\" = "
            "Ready/hello-koreo/2026-01-01T00:00:00.000000+00:00",
            10, "the conditions on the Deployment's status");
  assert_int_equal(run_sh(&out, "kubectl get deployment nginx-deployment -o "
                                "jsonpath='{.metadata.annotations.koreo\\.dev/managed-resources}'"),
                   0);
  assert_string_equal(out, "{\"workflow\":\"hello-service\",\"resources\":{}}");
  free(out);
  free(uid);
  /* a restarted agent announces its cached definitions in Hello */
  int sessions = h->sessions;
  assert_int_equal(stop_agent(h), 0);
  start_agent(h);
  int want_sessions = sessions + 1;
  run_until(h, sessions_at_least, &want_sessions, 20, "the restarted agent's session");
  assert_int_equal(h->hello_hashes, 3);
  assert_int_equal(stop_agent(h), 0);
}

static bool is_down(hx *h, const void *arg) {
  (void)arg;
  return !h->bev;
}
/* The autonomous run's reports and a snapshot newer than *arg arrived. */
static bool auto_reported(hx *h, const void *arg) {
  int n = 0;
  for (int i = 0; i < h->n_results; i++)
    n += h->results[i]->autonomous;
  return h->auto_status >= 1 && n >= 1 && h->snapshots > *(const int *)arg;
}

/* Disconnected operation: the harness goes away, kubectl creates a
 * trigger; after --autonomy-after the agent reconciles it on its own with
 * the cached definitions (Service created, status written); when the
 * harness is back the snapshot carries the new trigger, the autonomous run
 * arrives as a StatusUpdate (run_id auto-...) and ApplyResults with
 * autonomous = true, and autonomous mode stops. */
static void test_autonomy(void **state) {
  hx *h = *state;
  g_extra[0] = "--autonomy-after=1s";
  start_agent(h);
  g_extra[0] = NULL;
  run_until(h, is_up, NULL, 20, "the agent registered and connected");
  push_watchset(h);
  push_hello_service(h);
  run_for(h, 0.5);
  char p[512];
  snprintf(p, sizeof p, "%s/definitions/%s.json", h->state, h->hash_wf + 7);
  assert_int_equal(access(p, R_OK), 0);
  /* cut */
  ktls_server_free(h->srv);
  h->srv = NULL;
  h->bev = NULL;
  run_until(h, is_down, NULL, 5, "the cut");
  char dep[600];
  snprintf(dep, sizeof dep, "%s/reference/koreo-examples/kubernetes/hello-service/deployment.yaml",
           g_shared);
  assert_int_equal(run_sh(NULL, "kubectl apply -f '%s' >/dev/null", dep), 0);
  /* reconciled on its own: the Service exists, the status shows the run */
  run_until(h, shell_ok, "kubectl get service nginx-svc >/dev/null 2>&1", 20,
            "the Service created autonomously");
  run_until(h, shell_ok,
            "test \"$(kubectl get deployment nginx-deployment -o "
            "jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}')\" = Wait",
            20, "the status written autonomously");
  assert_int_equal(h->auto_status, 0);
  int snaps = h->snapshots;
  /* restore: the reports arrive, autonomy stops */
  h->srv = serve(h, h->port);
  run_until(h, auto_reported, &snaps, 20, "the autonomous run reported, and a snapshot");
  assert_true(h->snapshots > snaps);
  assert_true(h->snapshot_has_nginx);
  assert_int_equal(strncmp(h->auto_run_id, "auto-", 5), 0);
  assert_string_equal(h->auto_reason, "Wait");
  bool svc = false;
  for (int i = 0; i < h->n_results; i++)
    if (h->results[i]->autonomous) {
      assert_non_null(h->results[i]->resource);
      svc |= !strcmp(h->results[i]->resource->name, "nginx-svc") &&
             !strncmp(h->results[i]->run_id, "auto-", 5);
    }
  assert_true(svc);
  run_for(h, 0.5);
  assert_int_equal(run_sh(NULL, "grep -q 'autonomous mode stopped' '%s'", h->log), 0);
  /* a change now is the control plane's: a TriggerEvent, no autonomous run */
  int events = h->events, auto_before = h->auto_status;
  assert_int_equal(run_sh(NULL, "kubectl label deployment nginx-deployment team=x >/dev/null"), 0);
  int want = events + 1;
  run_until(h, got_event, &want, 10, "the TriggerEvent after the reconnect");
  assert_true(h->bev != NULL);
  run_for(h, 1.0);
  assert_int_equal(h->auto_status, auto_before);
  assert_int_equal(stop_agent(h), 0);
}

int main(int argc, char **argv) {
  g_kubesim = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  g_agent = argc > 2 && argv[2][0] ? argv[2] : getenv("KOREO_AGENT");
  g_shared = getenv("KOREO_SHARED_DIR");
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_cp_end_to_end, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonomy, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
