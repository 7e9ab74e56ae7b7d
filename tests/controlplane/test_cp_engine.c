/*
 * tests/controlplane/test_cp_engine.c: the control plane's engine
 * (controlplane/engine*.c) against a real PostgreSQL (tests/pg/pgtest) over
 * real mutual TLS, with the agent's own session layer (agent/session.c)
 * playing the agent: registration with database bootstrap tokens (single
 * use, expiry), session + WatchSet + DefinitionPush on connect, a trigger
 * event leading to an ApplyRequest and after the ApplyResult a
 * StatusUpdate and a recorded run with its steps, a repeated identical run
 * bumping repeat_count, status-only changes not re-running, deletes,
 * offline detection (silent agent; a replica that died), and two engines
 * on one database never running one trigger at the same time.
 *
 * Definitions: the hello-service example (KOREO_SHARED_DIR or argv[1] =
 * the shared/ folder).  CP_TEST_VERBOSE=1 shows the engine's log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cp.h"
#include "db.h"
#include "engine.h"
#include "koreo/json.h"
#include "koreo/value.h"
#include "pgtest.h"
#include "session.h"

#include "cp_test_util.h"

static pgtest *g_pg;
static PGconn *g_sql;
static struct event_base *g_base;
static struct event *g_tick;
static ktls_ca *g_ca;
static char g_shared[1024];
static char g_tmp[256];
static char g_rf_hash[72];
static int64_t g_run_timeout_ms = 10000;

static void tick(evutil_socket_t fd, short w, void *a) { (void)fd, (void)w, (void)a; }

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Turn the loop until cond holds or `ms` passed. */
#define RUN_UNTIL(cond, ms)                                                                        \
  do {                                                                                             \
    int64_t until_ = mono_ms() + (ms);                                                             \
    while (!(cond) && mono_ms() < until_)                                                          \
      event_base_loop(g_base, EVLOOP_ONCE);                                                        \
  } while (0)

static void spin(int ms) {
  int64_t until = mono_ms() + ms;
  while (mono_ms() < until)
    event_base_loop(g_base, EVLOOP_ONCE);
}

/* One value of a blocking query (malloc'ed, "" for no row, NULL for SQL NULL). */
static char *sql1(const char *q, ...) __attribute__((format(printf, 1, 2)));
static char *sql1(const char *q, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, q);
  vsnprintf(buf, sizeof buf, q, ap);
  va_end(ap);
  PGresult *r = PQexec(g_sql, buf);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    fprintf(stderr, "sql: %s: %s\n", buf, PQerrorMessage(g_sql));
    PQclear(r);
    fail();
  }
  char *v = st == PGRES_TUPLES_OK && PQntuples(r) > 0
                ? (PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0)))
                : strdup("");
  PQclear(r);
  return v;
}

static long sqln(const char *q, ...) __attribute__((format(printf, 1, 2)));
static long sqln(const char *q, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, q);
  vsnprintf(buf, sizeof buf, q, ap);
  va_end(ap);
  char *v = sql1("%s", buf);
  long n = v ? atol(v) : -1;
  free(v);
  return n;
}

/* A bootstrap token for `cluster` stored as the control plane stores it. */
static void make_token(const char *cluster, int ttl_s, char out[128]) {
  char err[600];
  if (cpt_bootstrap_token(g_sql, g_ca, cluster, ttl_s, out, err, sizeof err) != 0)
    fail_msg("%s", err);
}

/* ---- engines ------------------------------------------------------------- */

typedef struct eng {
  cp_options o;
  cp_ctx ctx;
  cp_engine *e;
} eng;

static eng *eng_start_at(const char *replica, int64_t hb_ms, const char *listen) {
  eng *x = calloc(1, sizeof *x);
  x->o.database_url = pgtest_url(g_pg);
  x->o.agent_listen = listen;
  x->o.resync_ms = 20 * 60 * 1000;
  x->o.heartbeat_ms = hb_ms;
  x->o.run_timeout_ms = g_run_timeout_ms;
  x->o.backoff_min_ms = 1000;
  x->o.backoff_max_ms = 60000;
  x->o.lease_ms = 60000;
  x->o.replica_id = replica;
  x->ctx.base = g_base;
  x->ctx.opt = &x->o;
  char err[512];
  x->ctx.db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  assert_non_null(x->ctx.db);
  x->ctx.ca = g_ca;
  x->e = cp_engine_new(&x->ctx, err, sizeof err);
  if (!x->e) fprintf(stderr, "engine: %s\n", err);
  assert_non_null(x->e);
  RUN_UNTIL(cp_engine_ready(x->e), 10000);
  assert_true(cp_engine_ready(x->e));
  return x;
}

static eng *eng_start(const char *replica, int64_t hb_ms) {
  return eng_start_at(replica, hb_ms, "127.0.0.1:0");
}

static void eng_stop(eng *x) {
  if (!x) return;
  cp_engine_free(x->e);
  cpdb_free(x->ctx.db);
  free(x);
}

/* ---- the harness agent: agent/session.c -------------------------------------- */

typedef struct agent {
  ksession *s;
  char dir[300];
  const char *name;
  bool up;
  int watchsets, defpushes, status_updates, applies;
  size_t defs_received, current_hashes;
  char watch_kind[128];
  char last_request_id[128], last_run_id[64], last_hash[80], last_owner_uid[64];
  char last_status_ready[16], last_managed[512];
  size_t last_conditions;
  int answer_delay_ms; /* 0: answer at once; < 0: hold the request in `held` */
  struct pending_answer *held;
  int *active; /* two-engine test: per trigger index, requests unanswered */
  int *violations;
  int answered;
  /* the outcome answered (0: Ok) and, for Retry, its delay */
  Koreo__Agent__V1__Outcome outcome;
  uint32_t retry_s;
} agent;

static void send_trigger(agent *a, Koreo__Agent__V1__EventType type, const char *name,
                         const char *rv, const char *service_label, const char *status);

typedef struct pending_answer {
  struct agent *a;
  char request_id[128], run_id[64], label[64], name[64], ns[64];
  int trig;
} pending_answer;

static int trig_index(const char *name) {
  const char *d = strrchr(name, '-');
  return d ? atoi(d + 1) : 0;
}

static void answer(pending_answer *p) {
  agent *a = p->a;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__ApplyResult r = KOREO__AGENT__V1__APPLY_RESULT__INIT;
  r.request_id = p->request_id;
  r.run_id = p->run_id;
  r.step_label = p->label;
  r.outcome = a->outcome ? a->outcome : KOREO__AGENT__V1__OUTCOME__OUTCOME_OK;
  r.retry_delay_seconds = a->retry_s;
  r.message = (char *)(a->outcome ? "told so by the test" : "");
  char rid[300];
  snprintf(rid, sizeof rid,
           "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"plural\":\"services\",\"name\":\"%s\","
           "\"namespace\":\"%s\",\"readonly\":false,\"resourceFunction\":\"service-factory\"}",
           p->name, p->ns);
  r.resource_id_json.data = (uint8_t *)rid;
  r.resource_id_json.len = strlen(rid);
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT;
  env.apply_result = &r;
  if (a->active) a->active[p->trig]--;
  a->answered++;
  ktls_err err = {{0}};
  ksession_send(a->s, &env, &err);
  free(p);
}

static void answer_cb(evutil_socket_t fd, short w, void *arg) {
  (void)fd, (void)w;
  answer(arg);
}

static const char *jstr(const kv *m, const char *k) {
  const kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, k) : NULL;
  return v && v->kind == KV_STRING ? kv_str(v) : "";
}

static void on_message(ksession *s, const kframe_envelope *env, void *arg) {
  (void)s;
  agent *a = arg;
  switch (env->body_case) {
  case KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET:
    a->watchsets++;
    if (env->watch_set->n_kinds)
      snprintf(a->watch_kind, sizeof a->watch_kind, "%s %s", env->watch_set->kinds[0]->api_version,
               env->watch_set->kinds[0]->kind);
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_DEFINITION_PUSH:
    a->defpushes++;
    a->defs_received += env->definition_push->n_definitions;
    a->current_hashes = env->definition_push->n_current_hashes;
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST: {
    const Koreo__Agent__V1__ApplyRequest *rq = env->apply_request;
    a->applies++;
    snprintf(a->last_request_id, sizeof a->last_request_id, "%s", rq->request_id);
    snprintf(a->last_run_id, sizeof a->last_run_id, "%s", rq->run_id);
    snprintf(a->last_hash, sizeof a->last_hash, "%s", rq->function_hash);
    snprintf(a->last_owner_uid, sizeof a->last_owner_uid, "%s", rq->owner ? rq->owner->uid : "");
    kv_parse_error pe = {0};
    kv *in = kv_json_parse((const char *)rq->inputs_json.data, rq->inputs_json.len, &pe);
    pending_answer *p = calloc(1, sizeof *p);
    p->a = a;
    snprintf(p->request_id, sizeof p->request_id, "%s", rq->request_id);
    snprintf(p->run_id, sizeof p->run_id, "%s", rq->run_id);
    snprintf(p->label, sizeof p->label, "%s", rq->step_label);
    snprintf(p->name, sizeof p->name, "%s", jstr(in, "name"));
    snprintf(p->ns, sizeof p->ns, "%s", jstr(in, "namespace"));
    kv_unref(in);
    p->trig = trig_index(rq->trigger ? rq->trigger->name : "");
    if (a->active) {
      if (++a->active[p->trig] > 1) (*a->violations)++;
    }
    if (a->answer_delay_ms < 0) {
      free(a->held);
      a->held = p;
    } else if (a->answer_delay_ms) {
      struct timeval tv = {0, a->answer_delay_ms * 1000};
      event_base_once(g_base, -1, EV_TIMEOUT, answer_cb, p, &tv);
    } else {
      answer(p);
    }
    break;
  }
  case KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE: {
    const Koreo__Agent__V1__StatusUpdate *su = env->status_update;
    a->status_updates++;
    a->last_conditions = su->n_conditions;
    a->last_status_ready[0] = 0;
    for (size_t i = 0; i < su->n_conditions; i++)
      if (strcmp(su->conditions[i]->type, "Ready") == 0)
        snprintf(a->last_status_ready, sizeof a->last_status_ready, "%s",
                 su->conditions[i]->status);
    snprintf(a->last_managed, sizeof a->last_managed, "%s", su->managed_resources);
    break;
  }
  default: break;
  }
}

static void on_state(ksession *s, bool up, const char *msg, void *arg) {
  (void)s;
  agent *a = arg;
  a->up = up;
  if (getenv("CP_TEST_VERBOSE"))
    fprintf(stderr, "agent %s: %s %s\n", a->name, up ? "up" : "down", msg);
}

static agent *agent_start(eng *x, const char *cluster, const char *dirname, const char *token) {
  agent *a = calloc(1, sizeof *a);
  a->name = cluster;
  snprintf(a->dir, sizeof a->dir, "%s/%s", g_tmp, dirname);
  ksession_opts so = {.tls = {.host = "127.0.0.1",
                              .port = cp_engine_agent_port(x->e),
                              .cluster = cluster,
                              .state_dir = a->dir,
                              .bootstrap_token = token,
                              .timeout_ms = 5000,
                              .agent_version = "test"},
                      .backoff_min_ms = 100,
                      .backoff_max_ms = 500,
                      .on_message = on_message,
                      .on_state = on_state,
                      .arg = a};
  ktls_err err = {{0}};
  a->s = ksession_new(g_base, &so, &err);
  if (!a->s) fprintf(stderr, "session: %s\n", err.msg);
  assert_non_null(a->s);
  return a;
}

static void agent_stop(agent *a) {
  if (!a) return;
  ksession_free(a->s);
  free(a->held);
  free(a);
}

static const char *DEPLOYMENT_FMT =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\","
    "\"namespace\":\"default\",\"uid\":\"uid-%s\",\"resourceVersion\":\"%s\",\"labels\":"
    "{\"service\":\"%s\"}},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":"
    "\"nginx\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"nginx\"}},\"spec\":"
    "{\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx:latest\",\"ports\":[{"
    "\"containerPort\":80}]}]}}},\"status\":{\"observedGeneration\":%s}}";

static void send_trigger(agent *a, Koreo__Agent__V1__EventType type, const char *name,
                         const char *rv, const char *service_label, const char *status) {
  char obj[2048], uid[80];
  snprintf(obj, sizeof obj, DEPLOYMENT_FMT, name, name, rv, service_label, status);
  snprintf(uid, sizeof uid, "uid-%s", name);
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__TriggerEvent ev = KOREO__AGENT__V1__TRIGGER_EVENT__INIT;
  Koreo__Agent__V1__ObjectRef ref = KOREO__AGENT__V1__OBJECT_REF__INIT;
  ref.api_version = (char *)"apps/v1";
  ref.kind = (char *)"Deployment";
  ref.namespace_ = (char *)"default";
  ref.name = (char *)name;
  ref.uid = uid;
  ref.resource_version = (char *)rv;
  ev.type = type;
  ev.object_ref = &ref;
  ev.object_json.data = (uint8_t *)obj;
  ev.object_json.len = strlen(obj);
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT;
  env.trigger_event = &ev;
  ktls_err err = {{0}};
  assert_true(ksession_send(a->s, &env, &err) > 0);
}

/* ---- setup --------------------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  char err[2048];
  const char *sh = getenv("KOREO_SHARED_DIR");
  snprintf(g_shared, sizeof g_shared, "%s", sh && *sh ? sh : "/work/shared");
  g_pg = pgtest_start(err, sizeof err);
  if (!g_pg) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  g_sql = cpdb_sync_connect(pgtest_url(g_pg), err, sizeof err);
  if (!g_sql || cpdb_migrate(g_sql, err, sizeof err) < 0) {
    fprintf(stderr, "migrate: %s\n", err);
    return -1;
  }
  free(sql1("SELECT koreo_ensure_partitions(current_date - 1, 3)"));
  snprintf(g_tmp, sizeof g_tmp, "/tmp/cp-engine-test-XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  ktls_err ke = {{0}};
  g_ca = ktls_ca_new("koreo test CA", 30, &ke);
  g_base = event_base_new();
  g_tick = event_new(g_base, -1, EV_PERSIST, tick, NULL);
  struct timeval tv = {0, 5000};
  event_add(g_tick, &tv);
  cp_log_setup(false, getenv("CP_TEST_VERBOSE") ? CP_DEBUG : (cp_log_level)(CP_ERROR + 1));
  if (cpt_load_hello_service(g_sql, g_shared, g_rf_hash, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  return 0;
}

static void rm_rf(const char *d) {
  DIR *dir = opendir(d);
  if (!dir) return;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[1200];
    snprintf(p, sizeof p, "%s/%.900s", d, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      rm_rf(p);
    else
      unlink(p);
  }
  closedir(dir);
  rmdir(d);
}

static int group_teardown(void **state) {
  (void)state;
  if (g_tick) event_free(g_tick);
  if (g_base) event_base_free(g_base);
  ktls_ca_free(g_ca);
  if (g_sql) PQfinish(g_sql);
  pgtest_stop(g_pg);
  rm_rf(g_tmp);
  return 0;
}

/* ---- tests ------------------------------------------------------------------------- */

typedef struct regres {
  bool done;
  int status;
  char msg[600];
} regres;

static void reg_cb(ktls_client *c, int status, const char *msg, void *arg) {
  (void)c;
  regres *r = arg;
  r->done = true;
  r->status = status;
  snprintf(r->msg, sizeof r->msg, "%s", msg);
}

static int do_register(eng *x, const char *cluster, const char *dirname, const char *token,
                       char *msg, size_t n) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/%s", g_tmp, dirname);
  ktls_agent_opts o = {.host = "127.0.0.1",
                       .port = cp_engine_agent_port(x->e),
                       .cluster = cluster,
                       .state_dir = dir,
                       .bootstrap_token = token,
                       .timeout_ms = 5000};
  regres r = {0};
  ktls_err err = {{0}};
  ktls_client *c = ktls_client_register(g_base, &o, reg_cb, &r, &err);
  assert_non_null(c);
  RUN_UNTIL(r.done, 10000);
  ktls_client_free(c);
  snprintf(msg, n, "%s", r.msg);
  return r.done ? r.status : -2;
}

/* A database token registers its cluster once; reuse and expiry are refused. */
static void test_registration(void **state) {
  (void)state;
  eng *x = eng_start("r-reg", 10000);
  char tok[128], expired[128], other[128], msg[600];
  make_token("reg-east", 600, tok);
  make_token("reg-east", -10, expired);
  make_token("reg-west", 600, other);
  assert_int_equal(do_register(x, "reg-east", "reg1", tok, msg, sizeof msg), 0);
  char *fp = sql1("SELECT cert_fingerprint FROM clusters WHERE name = 'reg-east'");
  assert_non_null(fp);
  assert_int_equal(strlen(fp), 64);
  free(fp);
  assert_int_equal(sqln("SELECT count(*) FROM bootstrap_tokens WHERE used_at IS NOT NULL"), 1);
  /* single use */
  assert_int_equal(do_register(x, "reg-east", "reg2", tok, msg, sizeof msg), -1);
  /* expired */
  assert_int_equal(do_register(x, "reg-east", "reg3", expired, msg, sizeof msg), -1);
  /* bound to its cluster: west's token does not register east */
  assert_int_equal(do_register(x, "reg-east", "reg4", other, msg, sizeof msg), -1);
  assert_int_equal(sqln("SELECT count(*) FROM bootstrap_tokens WHERE used_at IS NOT NULL"), 1);
  /* west's token still works for west */
  assert_int_equal(do_register(x, "reg-west", "reg5", other, msg, sizeof msg), 0);
  eng_stop(x);
}

/* Connect: the cluster is online, the agent gets WatchSet (Deployment from
 * hello-service's crdRef) and DefinitionPush (3 bodies, 3 hashes); then a
 * trigger event runs the Workflow: ApplyRequest for service-factory,
 * StatusUpdate with Koreo's conditions and the managed-resources
 * annotation, a recorded run with both steps; an identical re-run bumps
 * repeat_count; a real change adds a run; a status-only change does not
 * run; a delete removes the work. */
static void test_session_and_run(void **state) {
  (void)state;
  eng *x = eng_start("r-run", 10000);
  char tok[128];
  make_token("east", 600, tok);
  agent *a = agent_start(x, "east", "east", tok);
  RUN_UNTIL(a->up && a->watchsets && a->defpushes, 10000);
  assert_true(a->up);
  assert_int_equal(a->watchsets, 1);
  assert_string_equal(a->watch_kind, "apps/v1 Deployment");
  assert_int_equal(a->defpushes, 1);
  assert_int_equal(a->defs_received, 3);
  assert_int_equal(a->current_hashes, 3);
  char *st = sql1("SELECT state || '/' || replica FROM clusters WHERE name = 'east'");
  assert_string_equal(st, "online/r-run");
  free(st);

  int64_t t0 = mono_ms();
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "web-0", "1", "web-svc", "1");
  RUN_UNTIL(a->status_updates >= 1, 10000);
  int64_t latency = mono_ms() - t0;
  assert_int_equal(a->applies, 1);
  assert_int_equal(a->status_updates, 1);
  fprintf(stderr, "  trigger event -> StatusUpdate: %lld ms\n", (long long)latency);
  assert_string_equal(a->last_hash, g_rf_hash);
  char prefix[80];
  snprintf(prefix, sizeof prefix, "%s/", a->last_run_id);
  assert_memory_equal(a->last_request_id, prefix, strlen(prefix));
  assert_string_equal(a->last_owner_uid, "uid-web-0");
  assert_string_equal(a->last_status_ready, "True");
  assert_non_null(strstr(a->last_managed, "web-svc"));
  RUN_UNTIL(sqln("SELECT count(*) FROM workflow_runs") == 1, 5000);
  assert_int_equal(sqln("SELECT count(*) FROM workflow_runs WHERE outcome = 'Ok' AND name = "
                        "'web-0' AND cluster = 'east' AND repeat_count = 1 AND id = %s",
                        a->last_run_id),
                   1);
  assert_int_equal(sqln("SELECT count(*) FROM step_runs WHERE run_id = %s AND outcome = 'Ok' AND "
                        "label IN ('get_service_config', 'create_service')",
                        a->last_run_id),
                   2);
  assert_int_equal(
      sqln("SELECT count(*) FROM step_runs WHERE label = 'create_service' AND resource_ids ->> "
           "'name' = 'web-svc'"),
      1);
  /* rescheduled for the resync period */
  assert_int_equal(sqln("SELECT count(*) FROM work_queue WHERE name = 'web-0' AND claimed_by IS "
                        "NULL AND due_at > now() + interval '19 minutes'"),
                   1);

  /* resync: the identical run bumps repeat_count, no new row */
  free(sql1("UPDATE work_queue SET due_at = now() WHERE name = 'web-0'"));
  RUN_UNTIL(a->status_updates >= 2, 10000);
  assert_int_equal(a->status_updates, 2);
  RUN_UNTIL(sqln("SELECT repeat_count FROM workflow_runs WHERE name = 'web-0'") == 2, 5000);
  assert_int_equal(sqln("SELECT count(*) FROM workflow_runs"), 1);
  assert_int_equal(sqln("SELECT repeat_count FROM workflow_runs WHERE name = 'web-0'"), 2);

  /* a real change (the service label): a new run, a new row */
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED, "web-0", "2", "web-svc2", "1");
  RUN_UNTIL(a->status_updates >= 3, 10000);
  assert_non_null(strstr(a->last_managed, "web-svc2"));
  RUN_UNTIL(sqln("SELECT count(*) FROM workflow_runs") == 2, 5000);
  assert_int_equal(sqln("SELECT count(*) FROM workflow_runs"), 2);

  /* a status-only change (new resourceVersion): stored, not run */
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED, "web-0", "3", "web-svc2", "2");
  RUN_UNTIL(sqln("SELECT count(*) FROM triggers WHERE name = 'web-0' AND resource_version = '3'") ==
                1,
            5000);
  spin(700);
  assert_int_equal(a->status_updates, 3);
  assert_int_equal(a->applies, 3);

  /* a second trigger: the ResourceFunction's own preconditions are the
   * agent's to evaluate, so its request goes out */
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "web-1", "1", "UPPER", "1");
  RUN_UNTIL(a->status_updates >= 4, 10000);
  assert_int_equal(a->applies, 4); /* the RF step ran and its precondition is the agent's */

  /* delete: the trigger is marked, its work is gone, nothing runs */
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED, "web-0", "4", "web-svc2", "2");
  RUN_UNTIL(sqln("SELECT count(*) FROM triggers WHERE name = 'web-0' AND deleted") == 1, 5000);
  assert_int_equal(sqln("SELECT count(*) FROM work_queue WHERE name = 'web-0'"), 0);

  /* the agent's sequence is acknowledged and kept for the next session */
  RUN_UNTIL(sqln("SELECT agent_seq FROM clusters WHERE name = 'east'") == 9, 5000);
  assert_int_equal(sqln("SELECT agent_seq FROM clusters WHERE name = 'east'"),
                   9); /* 5 events + 4 results */
  RUN_UNTIL(ksession_pending(a->s) == 0, 5000);
  assert_int_equal(ksession_pending(a->s), 0);

  char *m = cp_engine_metrics(x->e);
  assert_non_null(strstr(m, "koreo_agents_connected 1"));
  assert_non_null(strstr(m, "koreo_runs_total{outcome=\"Ok\"}"));
  free(m);
  agent_stop(a);
  RUN_UNTIL(sqln("SELECT count(*) FROM clusters WHERE name = 'east' AND state = 'offline'") == 1,
            5000);
  char *reason = sql1("SELECT state_reason FROM clusters WHERE name = 'east'");
  assert_non_null(strstr(reason, "waits"));
  free(reason);
  eng_stop(x);
}

static bool silent_handler(ktls_client *c, kframe_envelope *env, void *arg) {
  (void)c;
  (*(int *)arg)++;
  kframe_envelope_free(env);
  return true;
}

/* An agent that stops sending heartbeats is dropped and marked offline
 * after three intervals; a cluster left online by a replica that died is
 * marked offline by any replica; work for an offline cluster waits. */
static void test_offline(void **state) {
  (void)state;
  eng *x = eng_start("r-off", 300);
  char tok[128], msg[600];
  make_token("quiet", 600, tok);
  assert_int_equal(do_register(x, "quiet", "quiet", tok, msg, sizeof msg), 0);
  char dir[400];
  snprintf(dir, sizeof dir, "%s/quiet", g_tmp);
  ktls_agent_opts o = {.host = "127.0.0.1",
                       .port = cp_engine_agent_port(x->e),
                       .cluster = "quiet",
                       .state_dir = dir,
                       .timeout_ms = 5000};
  regres r = {0};
  ktls_err err = {{0}};
  ktls_client *c = ktls_client_connect(g_base, &o, reg_cb, &r, &err);
  assert_non_null(c);
  int received = 0;
  ktls_client_set_handler(c, silent_handler, &received);
  RUN_UNTIL(r.done, 5000);
  assert_int_equal(r.status, 0);
  RUN_UNTIL(sqln("SELECT count(*) FROM clusters WHERE name = 'quiet' AND state = 'online'") == 1,
            3000);
  int64_t t0 = mono_ms();
  RUN_UNTIL(sqln("SELECT count(*) FROM clusters WHERE name = 'quiet' AND state = 'offline'") == 1,
            5000);
  int64_t took = mono_ms() - t0;
  fprintf(stderr, "  silent agent marked offline after %lld ms (heartbeat 300 ms)\n",
          (long long)took);
  assert_true(took < 3000);
  assert_true(received >= 2); /* the engine sent heartbeats (and its WatchSet/DefinitionPush) */
  char *reason = sql1("SELECT state_reason FROM clusters WHERE name = 'quiet'");
  assert_non_null(strstr(reason, "three heartbeats"));
  free(reason);
  ktls_client_free(c);

  /* a cluster whose replica died: online, stale heartbeat */
  free(sql1("INSERT INTO clusters (name, state, replica, last_heartbeat) VALUES ('ghost', "
            "'online', 'dead-replica', now() - interval '1 hour')"));
  free(sql1("INSERT INTO work_queue (cluster, api_version, kind, namespace, name, workflow) "
            "VALUES ('ghost', 'apps/v1', 'Deployment', 'default', 'g', '/hello-service')"));
  RUN_UNTIL(sqln("SELECT count(*) FROM clusters WHERE name = 'ghost' AND state = 'offline'") == 1,
            3000);
  reason = sql1("SELECT state_reason FROM clusters WHERE name = 'ghost'");
  assert_non_null(strstr(reason, "three heartbeats"));
  assert_non_null(strstr(reason, "waits"));
  free(reason);
  spin(600);
  assert_int_equal(sqln("SELECT count(*) FROM work_queue WHERE cluster = 'ghost' AND claimed_by IS "
                        "NULL"),
                   1);
  eng_stop(x);
}

/* Two engines on one database, an agent of the same cluster on each: every
 * trigger runs, never on both at once, and when one engine goes away the
 * other one does all the work. */
static void test_two_engines(void **state) {
  (void)state;
  eng *x1 = eng_start("r-one", 10000), *x2 = eng_start("r-two", 10000);
  char t1[128], t2[128];
  make_token("multi", 600, t1);
  make_token("multi", 600, t2);
  int active[64] = {0}, violations = 0;
  agent *a1 = agent_start(x1, "multi", "multi1", t1);
  agent *a2 = agent_start(x2, "multi", "multi2", t2);
  a1->active = a2->active = active;
  a1->violations = a2->violations = &violations;
  a1->answer_delay_ms = a2->answer_delay_ms = 30;
  RUN_UNTIL(a1->up && a2->up && a1->defpushes && a2->defpushes, 10000);
  assert_true(a1->up && a2->up);
  enum { N = 40 };
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "multi-%d", i);
    send_trigger(a1, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, name, "1", "svc", "1");
  }
  RUN_UNTIL(sqln("SELECT count(DISTINCT name) FROM workflow_runs WHERE cluster = 'multi'") == N,
            20000);
  assert_int_equal(sqln("SELECT count(DISTINCT name) FROM workflow_runs WHERE cluster = 'multi'"),
                   N);
  /* three rounds of everything due again (as an enqueue does: version
   * bumped), spread over a second, on both replicas */
  for (int round = 0; round < 3; round++) {
    RUN_UNTIL(sqln("SELECT count(*) FROM work_queue WHERE cluster = 'multi' AND claimed_by IS "
                   "NOT NULL") == 0,
              5000);
    int before = a1->answered + a2->answered;
    free(sql1("UPDATE work_queue SET due_at = now() + random() * interval '1 second', version = "
              "version + 1 WHERE cluster = 'multi'"));
    RUN_UNTIL(a1->answered + a2->answered >= before + N, 20000);
    assert_int_equal(a1->answered + a2->answered, before + N);
  }
  spin(200);
  fprintf(stderr, "  two engines: %d runs by r-one, %d by r-two, %d overlaps\n", a1->answered,
          a2->answered, violations);
  assert_int_equal(violations, 0);
  assert_int_equal(a1->answered + a2->answered, 4 * N);
  RUN_UNTIL(sqln("SELECT sum(repeat_count) FROM workflow_runs WHERE cluster = 'multi'") == 4 * N,
            5000);
  assert_int_equal(sqln("SELECT sum(repeat_count) FROM workflow_runs WHERE cluster = 'multi'"),
                   4 * N);
  assert_int_equal(sqln("SELECT count(*) FROM workflow_runs WHERE cluster = 'multi'"), N);
  /* one replica goes away: the other one does all the work */
  RUN_UNTIL(sqln("SELECT count(*) FROM work_queue WHERE cluster = 'multi' AND claimed_by IS NOT "
                 "NULL") == 0,
            5000);
  agent_stop(a1);
  eng_stop(x1);
  int before = a2->answered;
  free(sql1("UPDATE work_queue SET due_at = now(), version = version + 1 WHERE cluster = 'multi'"));
  RUN_UNTIL(a2->answered >= before + N, 20000);
  assert_int_equal(a2->answered, before + N);
  assert_int_equal(violations, 0);
  agent_stop(a2);
  eng_stop(x2);
}

static void send_snapshot(agent *a, const char *const *names, size_t n) {
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__TriggerSnapshot sn = KOREO__AGENT__V1__TRIGGER_SNAPSHOT__INIT;
  Koreo__Agent__V1__TriggerObject objs[8], *ptrs[8];
  Koreo__Agent__V1__ObjectRef refs[8];
  char json[8][2048], uids[8][80];
  for (size_t i = 0; i < n; i++) {
    koreo__agent__v1__trigger_object__init(&objs[i]);
    koreo__agent__v1__object_ref__init(&refs[i]);
    snprintf(json[i], sizeof json[i], DEPLOYMENT_FMT, names[i], names[i], "7", "snap-svc", "1");
    snprintf(uids[i], sizeof uids[i], "uid-%s", names[i]);
    refs[i].api_version = (char *)"apps/v1";
    refs[i].kind = (char *)"Deployment";
    refs[i].namespace_ = (char *)"default";
    refs[i].name = (char *)names[i];
    refs[i].uid = uids[i];
    refs[i].resource_version = (char *)"7";
    objs[i].object_ref = &refs[i];
    objs[i].object_json.data = (uint8_t *)json[i];
    objs[i].object_json.len = strlen(json[i]);
    ptrs[i] = &objs[i];
  }
  sn.snapshot_id = (char *)"snap-1";
  sn.last = true;
  sn.n_objects = n;
  sn.objects = ptrs;
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT;
  env.trigger_snapshot = &sn;
  ktls_err err = {{0}};
  assert_true(ksession_send(a->s, &env, &err) > 0);
}

/* A snapshot marks the triggers missing from it deleted (and runs the
 * changed ones); a definition change (NOTIFY koreo_definitions) is
 * hot-loaded: the agent gets only the new body, the triggers of the
 * Workflow using it run again; a Workflow for a new kind brings a new
 * WatchSet. */
static void test_snapshot_and_definitions(void **state) {
  (void)state;
  eng *x = eng_start("r-defs", 10000);
  char tok[128];
  make_token("defs", 600, tok);
  agent *a = agent_start(x, "defs", "defs", tok);
  RUN_UNTIL(a->up && a->defpushes, 10000);
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "snap-0", "1", "snap-svc", "1");
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "snap-1", "1", "snap-svc", "1");
  RUN_UNTIL(a->status_updates >= 2, 10000);
  assert_int_equal(a->status_updates, 2);
  /* the agent saw only snap-1 after a reconnect (same spec, new version) */
  const char *names[1] = {"snap-1"};
  send_snapshot(a, names, 1);
  RUN_UNTIL(sqln("SELECT count(*) FROM triggers WHERE cluster = 'defs' AND name = 'snap-0' AND "
                 "deleted") == 1,
            5000);
  assert_int_equal(sqln("SELECT count(*) FROM triggers WHERE cluster = 'defs' AND deleted"), 1);
  assert_int_equal(sqln("SELECT count(*) FROM work_queue WHERE cluster = 'defs'"), 1);
  assert_int_equal(
      sqln("SELECT count(*) FROM triggers WHERE cluster = 'defs' AND resource_version = '7'"), 1);
  spin(600);
  assert_int_equal(a->status_updates, 2); /* unchanged spec: no run */

  /* a new generation of the ValueFunction */
  int pushes = a->defpushes, watchsets = a->watchsets, updates = a->status_updates;
  size_t bodies = a->defs_received;
  free(sql1("INSERT INTO definitions (kind, namespace, name, generation, content_hash, source) "
            "SELECT kind, namespace, name, 2, 'sha256:changed', jsonb_set(source::jsonb, "
            "'{spec,return,port}', '8080')::json FROM definitions WHERE kind = 'ValueFunction' AND "
            "name = 'get-service-config' AND generation = 1"));
  free(sql1("NOTIFY koreo_definitions, 'ValueFunction//get-service-config'"));
  RUN_UNTIL(a->defpushes > pushes && a->status_updates > updates, 10000);
  assert_int_equal(a->defpushes, pushes + 1);
  assert_int_equal(a->defs_received, bodies + 1); /* only the changed body */
  assert_int_equal(a->current_hashes, 3);
  assert_int_equal(a->watchsets, watchsets);        /* same kinds */
  assert_int_equal(a->status_updates, updates + 1); /* snap-1 ran again */
  assert_int_equal(sqln("SELECT count(*) FROM work_queue WHERE cluster = 'defs' AND reason IN "
                        "('definition-changed', 'resync')"),
                   1);

  /* a Workflow for another kind: a new WatchSet with both kinds */
  free(sql1("INSERT INTO definitions (kind, namespace, name, generation, content_hash, source) "
            "VALUES ('Workflow', '', 'other', 1, 'sha256:other', '{\"apiVersion\": "
            "\"koreo.dev/v1beta1\", \"kind\": \"Workflow\", \"metadata\": {\"name\": "
            "\"other\"}, \"spec\": {\"crdRef\": {\"apiGroup\": \"test.koreo.dev\", "
            "\"version\": \"v1\", \"kind\": \"Thing\"}, \"steps\": [{\"label\": \"cfg\", "
            "\"ref\": {\"kind\": \"ValueFunction\", \"name\": "
            "\"get-service-config\"}}]}}')"));
  free(sql1("NOTIFY koreo_definitions, 'Workflow//other'"));
  RUN_UNTIL(a->watchsets > watchsets, 10000);
  assert_int_equal(a->watchsets, watchsets + 1);
  assert_int_equal(a->current_hashes, 4);
  /* and its removal (a deleted generation) */
  free(sql1("INSERT INTO definitions (kind, namespace, name, generation, content_hash, deleted) "
            "VALUES ('Workflow', '', 'other', 2, 'sha256:other', true)"));
  free(sql1("NOTIFY koreo_definitions, 'Workflow//other'"));
  RUN_UNTIL(a->watchsets > watchsets + 1, 10000);
  assert_int_equal(a->current_hashes, 3);
  assert_string_equal(a->watch_kind, "apps/v1 Deployment");
  agent_stop(a);
  eng_stop(x);
}

/* The control plane restarts while a run waits for its ApplyResult:
 * nothing is lost; the restarted replica gives back what it held, the agent
 * reconnects, the run is done again (a new run id; the late answer to the
 * old one is ignored) and recorded once. */
static void test_restart_mid_run(void **state) {
  (void)state;
  eng *x = eng_start("r-restart", 10000);
  char tok[128], listen[64];
  make_token("phoenix", 600, tok);
  agent *a = agent_start(x, "phoenix", "phoenix", tok);
  a->answer_delay_ms = -1;
  RUN_UNTIL(a->up && a->defpushes, 10000);
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "px-0", "1", "px-svc", "1");
  RUN_UNTIL(a->applies == 1, 10000);
  assert_int_equal(a->applies, 1);
  pending_answer *old = a->held; /* the agent's answer, late */
  a->held = NULL;
  assert_non_null(old);
  snprintf(listen, sizeof listen, "127.0.0.1:%d", cp_engine_agent_port(x->e));
  eng_stop(x); /* mid-run */
  RUN_UNTIL(!a->up, 5000);
  x = eng_start_at("r-restart", 10000, listen);
  RUN_UNTIL(a->up && a->applies >= 2, 15000);
  assert_int_equal(a->applies, 2);
  assert_string_not_equal(a->held->run_id, old->run_id);
  char run2[64];
  snprintf(run2, sizeof run2, "%s", a->held->run_id);
  answer(old); /* for a run the new replica does not know: ignored */
  spin(300);
  assert_int_equal(a->status_updates, 0);
  pending_answer *now = a->held;
  a->held = NULL;
  answer(now);
  RUN_UNTIL(a->status_updates == 1, 10000);
  assert_int_equal(a->status_updates, 1);
  assert_string_equal(a->last_status_ready, "True");
  RUN_UNTIL(sqln("SELECT count(*) FROM workflow_runs WHERE name = 'px-0'") == 1, 5000);
  assert_int_equal(
      sqln("SELECT count(*) FROM workflow_runs WHERE name = 'px-0' AND outcome = 'Ok' AND id = %s",
           run2),
      1);
  agent_stop(a);
  eng_stop(x);
}

/* The database goes away while the agent sends a change: the change is
 * not acknowledged, the session is closed, the agent replays it, and once
 * the database is back it runs: nothing lost. */
static void test_database_outage(void **state) {
  (void)state;
  eng *x = eng_start("r-outage", 10000);
  char tok[128];
  make_token("outage", 600, tok);
  agent *a = agent_start(x, "outage", "outage", tok);
  RUN_UNTIL(a->up && a->defpushes, 10000);
  assert_int_equal(pgtest_server_stop(g_pg), 0);
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "out-0", "1", "out-svc", "1");
  spin(1500);
  assert_int_equal(a->applies, 0);
  assert_true(ksession_pending(a->s) >= 1); /* not acknowledged */
  assert_int_equal(pgtest_server_start(g_pg), 0);
  PQreset(g_sql);
  RUN_UNTIL(a->status_updates >= 1, 30000);
  assert_int_equal(a->applies, 1);
  assert_string_equal(a->last_status_ready, "True");
  RUN_UNTIL(sqln("SELECT count(*) FROM workflow_runs WHERE name = 'out-0'") == 1, 10000);
  assert_int_equal(sqln("SELECT count(*) FROM workflow_runs WHERE name = 'out-0'"), 1);
  RUN_UNTIL(ksession_pending(a->s) == 0, 5000);
  assert_int_equal(ksession_pending(a->s), 0);
  agent_stop(a);
  eng_stop(x);
}

static long due_in_ms(const char *name) {
  return sqln("SELECT CASE WHEN due_at = 'infinity' THEN -1 ELSE (extract(epoch FROM due_at - "
              "now()) * 1000)::bigint END FROM work_queue WHERE name = '%s'",
              name);
}

/* Spec 6.11 rescheduling: Retry waits its delay, PermFail waits for a
 * change (and a change runs it again), a run that times out backs off
 * (doubling from backoff_min), Ok resyncs. */
static void test_rescheduling(void **state) {
  (void)state;
  g_run_timeout_ms = 800;
  eng *x = eng_start("r-resched", 10000);
  g_run_timeout_ms = 10000;
  char tok[128];
  make_token("resched", 600, tok);
  agent *a = agent_start(x, "resched", "resched", tok);
  RUN_UNTIL(a->up && a->defpushes, 10000);
  /* Retry(7) */
  a->outcome = KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY;
  a->retry_s = 7;
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED, "rs-0", "1", "rs-svc", "1");
  RUN_UNTIL(a->status_updates == 1, 10000);
  RUN_UNTIL(sqln("SELECT count(*) FROM work_queue WHERE name = 'rs-0' AND claimed_by IS NULL") == 1,
            5000);
  long d = due_in_ms("rs-0");
  assert_true(d > 5000 && d <= 7000);
  assert_int_equal(sqln("SELECT count(*) FROM work_queue WHERE name = 'rs-0' AND reason = "
                        "'retry' AND attempts = 0"),
                   1);
  /* PermFail: no re-run until a change */
  a->outcome = KOREO__AGENT__V1__OUTCOME__OUTCOME_PERM_FAIL;
  free(sql1("UPDATE work_queue SET due_at = now() WHERE name = 'rs-0'"));
  RUN_UNTIL(a->status_updates == 2, 10000);
  RUN_UNTIL(due_in_ms("rs-0") == -1, 5000);
  assert_int_equal(due_in_ms("rs-0"), -1);
  assert_string_equal(a->last_status_ready, "True");
  /* a change runs it again (now Ok: resync) */
  a->outcome = 0;
  send_trigger(a, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED, "rs-0", "2", "rs-svc2", "1");
  RUN_UNTIL(a->status_updates == 3, 10000);
  RUN_UNTIL(due_in_ms("rs-0") > 19 * 60 * 1000, 5000);
  assert_true(due_in_ms("rs-0") > 19 * 60 * 1000);
  /* no answer: the run times out (0.8 s) and backs off 1 s, then 2 s */
  a->answer_delay_ms = -1;
  free(sql1("UPDATE work_queue SET due_at = now() WHERE name = 'rs-0'"));
  RUN_UNTIL(a->status_updates == 4, 10000);
  RUN_UNTIL(sqln("SELECT attempts FROM work_queue WHERE name = 'rs-0'") == 1, 5000);
  assert_int_equal(sqln("SELECT attempts FROM work_queue WHERE name = 'rs-0' AND reason = "
                        "'backoff'"),
                   1);
  RUN_UNTIL(sqln("SELECT attempts FROM work_queue WHERE name = 'rs-0'") == 2, 5000);
  d = due_in_ms("rs-0");
  assert_true(d > 1000 && d <= 2000);
  assert_int_equal(sqln("SELECT count(*) FROM workflow_runs WHERE name = 'rs-0' AND outcome = "
                        "'Retry' AND message LIKE 'Timeout running step%%'"),
                   1);
  agent_stop(a);
  eng_stop(x);
}

/* A second connection for a cluster replaces the first. */
static void test_session_replaced(void **state) {
  (void)state;
  eng *x = eng_start("r-dup", 10000);
  char t1[128], t2[128];
  make_token("dup", 600, t1);
  make_token("dup", 600, t2);
  agent *a1 = agent_start(x, "dup", "dup1", t1);
  RUN_UNTIL(a1->up, 10000);
  assert_true(a1->up);
  const ksession_stats *st1 = ksession_get_stats(a1->s);
  unsigned before = st1->disconnects;
  agent *a2 = agent_start(x, "dup", "dup2", t2);
  RUN_UNTIL(a2->up && st1->disconnects > before, 10000);
  assert_true(st1->disconnects > before); /* the first one was closed */
  char *m = cp_engine_metrics(x->e);
  assert_non_null(strstr(m, "koreo_agents_connected 1\n"));
  free(m);
  agent_stop(a1); /* it keeps reconnecting otherwise */
  RUN_UNTIL(a2->up, 5000);
  spin(300);
  m = cp_engine_metrics(x->e);
  assert_non_null(strstr(m, "koreo_agents_connected 1\n"));
  free(m);
  assert_true(a2->up);
  agent_stop(a2);
  eng_stop(x);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error, not a death */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registration),
      cmocka_unit_test(test_session_and_run),
      cmocka_unit_test(test_offline),
      cmocka_unit_test(test_two_engines),
      cmocka_unit_test(test_snapshot_and_definitions),
      cmocka_unit_test(test_restart_mid_run),
      cmocka_unit_test(test_database_outage),
      cmocka_unit_test(test_rescheduling),
      cmocka_unit_test(test_session_replaced),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
