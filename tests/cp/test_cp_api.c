/*
 * tests/cp/test_cp_api.c: the control plane's HTTP API (controlplane/api*.c,
 * docs/http-api.md) end to end: a private PostgreSQL (tests/pg/pgtest.h),
 * migrated, tokens created in SQL, the API server in-process on port 0 with
 * a generated CA (agent/tls.h) on its own thread's event loop, and every
 * endpoint exercised with libcurl over real TLS: authentication and roles,
 * cluster scope, definition apply/list/get/delete (generations, 422 with
 * diagnostics storing nothing, NOTIFY, audit log), executions with filters
 * and cursor pagination, clusters, triggers, tokens, health and metrics,
 * and the 413 body limit.
 */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "api.h"
#include "cp.h"
#include "db.h"
#include "koreo/json.h"
#include "pgtest.h"

static pgtest *g_pg;
static PGconn *g_sql;
static struct event_base *g_base;
static struct event *g_tick;
static cp_options g_opt;
static cp_ctx g_ctx;
static pthread_t g_thread;
static volatile int g_stop;
static char g_ca_file[256];
static char *g_cert, *g_key;
static int g_port;

/* tokens created in SQL: kat.<id>.<secret> */
#define SECRET "0123456789abcdef0123456789abcdef"
#define T_ADMIN "kat.aaaaaaaaaaaaaaa1." SECRET
#define T_OPER "kat.aaaaaaaaaaaaaaa2." SECRET
#define T_VIEW "kat.aaaaaaaaaaaaaaa3." SECRET
#define T_WEST "kat.aaaaaaaaaaaaaaa4." SECRET   /* viewer scoped to west */
#define T_WESTOP "kat.aaaaaaaaaaaaaaa5." SECRET /* operator scoped to west */
#define T_EXPIRED "kat.aaaaaaaaaaaaaaa6." SECRET
#define T_WESTADM "kat.aaaaaaaaaaaaaaa7." SECRET /* admin scoped to west */

static void sql(const char *q) {
  PGresult *r = PQexec(g_sql, q);
  int st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fail_msg("SQL failed: %s\n%s", PQresultErrorMessage(r), q);
  PQclear(r);
}

static long sql_long(const char *q) {
  PGresult *r = PQexec(g_sql, q);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    fail_msg("SQL failed: %s\n%s", PQresultErrorMessage(r), q);
  long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

static void tick(evutil_socket_t fd, short w, void *a) {
  (void)fd, (void)w;
  if (g_stop) event_base_loopbreak(a);
}

static void *loop_main(void *arg) {
  (void)arg;
  event_base_loop(g_base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

/* ------------------------------------------------------------------ HTTP */

typedef struct resp {
  long status;
  kv_strbuf body;
  kv *json;
} resp;

static size_t on_write(char *p, size_t s, size_t n, void *arg) {
  kv_strbuf_put(arg, p, s * n);
  return s * n;
}

static void resp_free(resp *r) {
  kv_strbuf_free(&r->body);
  kv_unref(r->json);
  *r = (resp){0};
}

static resp http(const char *method, const char *path, const char *token, const char *body,
                 size_t len) {
  resp r = {0};
  kv_strbuf_put(&r.body, "", 0);
  CURL *e = curl_easy_init();
  char url[1024];
  snprintf(url, sizeof url, "https://127.0.0.1:%d%s", g_port, path);
  struct curl_slist *h = NULL;
  char auth[256];
  if (token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  if (body) {
    h = curl_slist_append(h, "Content-Type: application/yaml");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_CAINFO, g_ca_file);
  curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  kv_parse_error pe;
  r.json = kv_json_parse(r.body.p, r.body.len, &pe);
  return r;
}

static resp get(const char *path, const char *token) { return http("GET", path, token, NULL, 0); }
static resp post(const char *path, const char *token, const char *body) {
  return http("POST", path, token, body, strlen(body));
}

/* JSON path helper: "items.0.name" (numbers index lists). */
static kv *jget(const kv *v, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save)) {
    if (v->kind == KV_LIST) {
      size_t i = strtoul(t, NULL, 10);
      v = i < kv_len(v) ? kv_list_at(v, i) : NULL;
    } else if (v->kind == KV_MAP)
      v = kv_map_get_str(v, t);
    else
      v = NULL;
  }
  return (kv *)v;
}

static const char *jstr(const kv *v, const char *path) {
  kv *x = jget(v, path);
  return x && x->kind == KV_STRING ? kv_str(x) : NULL;
}

static long long jint(const kv *v, const char *path) {
  kv *x = jget(v, path);
  return x && x->kind == KV_INT ? x->u.i : -999;
}

static void expect_error(resp *r, long status, const char *code, const char *needle) {
  if (r->status != status || !r->json || !jstr(r->json, "error.code") ||
      strcmp(jstr(r->json, "error.code"), code) ||
      (needle && !strstr(jstr(r->json, "error.message"), needle)))
    fail_msg("expected %ld %s (%s), got %ld: %s", status, code, needle ? needle : "", r->status,
             r->body.p);
}

/* GET path must answer 200 with `want` items. */
static void expect_items(const char *path, const char *token, size_t want) {
  resp r = get(path, token);
  if (r.status != 200 || !jget(r.json, "items") || kv_len(jget(r.json, "items")) != want)
    fail_msg("GET %s: want 200 with %zu items, got %ld: %.2000s", path, want, r.status, r.body.p);
  resp_free(&r);
}

/* ----------------------------------------------------------------- setup */

static void add_token(const char *id, const char *role, const char *clusters, const char *expires) {
  char hash[65], q[1024];
  cp_sha256_hex(SECRET, 32, hash);
  snprintf(q, sizeof q,
           "INSERT INTO api_tokens (id, secret_hash, role, clusters, expires_at) VALUES ('%s', "
           "'%s', '%s', %s, %s)",
           id, hash, role, clusters, expires);
  sql(q);
}

static int group_setup(void **state) {
  (void)state;
  char err[2048];
  g_pg = pgtest_start(err, sizeof err);
  if (!g_pg) {
    fprintf(stderr, "pgtest: %s\n", err);
    return -1;
  }
  g_sql = cpdb_sync_connect(pgtest_url(g_pg), err, sizeof err);
  if (!g_sql || cpdb_migrate(g_sql, err, sizeof err) < 0) {
    fprintf(stderr, "migrate: %s\n", err);
    return -1;
  }
  add_token("aaaaaaaaaaaaaaa1", "admin", "NULL", "NULL");
  add_token("aaaaaaaaaaaaaaa2", "operator", "NULL", "NULL");
  add_token("aaaaaaaaaaaaaaa3", "viewer", "NULL", "NULL");
  add_token("aaaaaaaaaaaaaaa4", "viewer", "'{west}'", "NULL");
  add_token("aaaaaaaaaaaaaaa5", "operator", "'{west}'", "NULL");
  add_token("aaaaaaaaaaaaaaa6", "admin", "NULL", "now() - interval '1 hour'");
  add_token("aaaaaaaaaaaaaaa7", "admin", "'{west}'", "NULL");

  ktls_err kerr;
  g_ctx.ca = ktls_ca_new("koreo-test-ca", 2, &kerr);
  const char *hosts[] = {"127.0.0.1", "localhost"};
  if (!g_ctx.ca || ktls_ca_issue_server(g_ctx.ca, hosts, 2, 2, &g_cert, &g_key, &kerr) != 0) {
    fprintf(stderr, "ca: %s\n", kerr.msg);
    return -1;
  }
  snprintf(g_ca_file, sizeof g_ca_file, "%s/api-test-ca.crt", pgtest_dir(g_pg));
  FILE *f = fopen(g_ca_file, "w");
  if (!f) return -1;
  fputs(ktls_ca_cert_pem_str(g_ctx.ca), f);
  fclose(f);

  cp_log_setup(false, CP_ERROR + 1);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  g_base = event_base_new();
  g_tick = event_new(g_base, -1, EV_PERSIST, tick, g_base);
  struct timeval tv = {0, 20000};
  event_add(g_tick, &tv);
  g_opt.api_listen = "127.0.0.1:0";
  g_ctx.base = g_base;
  g_ctx.opt = &g_opt;
  g_ctx.server_cert_pem = g_cert;
  g_ctx.server_key_pem = g_key;
  g_ctx.db = cpdb_new(g_base, pgtest_url(g_pg), err, sizeof err);
  if (!g_ctx.db) {
    fprintf(stderr, "cpdb: %s\n", err);
    return -1;
  }
  g_ctx.api = cp_api_new(&g_ctx, err, sizeof err);
  if (!g_ctx.api) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  g_port = cp_api_port(g_ctx.api);
  if (g_port <= 0) return -1;
  pthread_create(&g_thread, NULL, loop_main, NULL);
  for (int i = 0; i < 500; i++) { /* wait for the database connection */
    resp r = get("/readyz", NULL);
    long st = r.status;
    resp_free(&r);
    if (st == 200) return 0;
    usleep(20000);
  }
  fprintf(stderr, "the API never became ready\n");
  return -1;
}

static int group_teardown(void **state) {
  (void)state;
  g_stop = 1;
  if (g_thread) pthread_join(g_thread, NULL);
  cp_api_free(g_ctx.api);
  cpdb_free(g_ctx.db);
  if (g_tick) event_free(g_tick);
  if (g_base) event_base_free(g_base);
  ktls_ca_free(g_ctx.ca);
  free(g_cert);
  free(g_key);
  if (g_sql) PQfinish(g_sql);
  pgtest_stop(g_pg);
  curl_global_cleanup();
  return 0;
}

/* ----------------------------------------------------------------- tests */

static void test_health_and_tls(void **state) {
  (void)state;
  resp r = get("/healthz", NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  r = get("/readyz", NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  r = get("/nowhere", NULL);
  expect_error(&r, 404, "not_found", "/api/v1/");
  resp_free(&r);
  /* TLS 1.1 is refused */
  CURL *e = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", g_port);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CAINFO, g_ca_file);
  curl_easy_setopt(e, CURLOPT_SSLVERSION,
                   (long)(CURL_SSLVERSION_TLSv1_1 | CURL_SSLVERSION_MAX_TLSv1_1));
  curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  assert_int_not_equal(curl_easy_perform(e), CURLE_OK);
  curl_easy_cleanup(e);
}

static void test_auth(void **state) {
  (void)state;
  resp r = get("/api/v1/clusters", NULL);
  expect_error(&r, 401, "unauthorized", "missing token");
  resp_free(&r);
  r = get("/api/v1/clusters", "kat.zz.not-a-token");
  expect_error(&r, 401, "unauthorized", "malformed");
  resp_free(&r);
  r = get("/api/v1/clusters", "kat.bbbbbbbbbbbbbbb1." SECRET);
  expect_error(&r, 401, "unauthorized", "unknown");
  resp_free(&r);
  r = get("/api/v1/clusters", "kat.aaaaaaaaaaaaaaa1.ffffffffffffffffffffffffffffffff");
  expect_error(&r, 401, "unauthorized", NULL); /* right id, wrong secret */
  resp_free(&r);
  r = get("/api/v1/clusters", T_EXPIRED);
  expect_error(&r, 401, "unauthorized", "expired");
  resp_free(&r);
  r = get("/api/v1/clusters", T_VIEW);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  /* a viewer cannot apply; a scoped operator cannot either */
  const char *doc = "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata:\n  name: "
                    "x\nspec:\n  return:\n    a: 1\n";
  r = post("/api/v1/definitions", T_VIEW, doc);
  expect_error(&r, 403, "forbidden", "viewer");
  resp_free(&r);
  r = post("/api/v1/definitions", T_WESTOP, doc);
  expect_error(&r, 403, "forbidden", "scoped");
  resp_free(&r);
  r = post("/api/v1/tokens", T_OPER, "{\"role\": \"viewer\"}");
  expect_error(&r, 403, "forbidden", "admin");
  resp_free(&r);
  r = http("PUT", "/api/v1/clusters", T_VIEW, NULL, 0);
  assert_int_equal(r.status, 405);
  resp_free(&r);
  r = get("/api/v1/nothing", T_VIEW);
  expect_error(&r, 404, "not_found", NULL);
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM definitions"), 0);
}

static const char BATCH[] = "apiVersion: koreo.dev/v1beta1\n"
                            "kind: ValueFunction\n"
                            "metadata:\n"
                            "  name: get-config\n"
                            "spec:\n"
                            "  return:\n"
                            "    name: =inputs.name\n"
                            "---\n"
                            "apiVersion: apps/v1\n"
                            "kind: Deployment\n"
                            "metadata:\n"
                            "  name: not-a-definition\n"
                            "---\n"
                            "apiVersion: koreo.dev/v1beta1\n"
                            "kind: Workflow\n"
                            "metadata:\n"
                            "  name: wf\n"
                            "  namespace: team\n"
                            "spec:\n"
                            "  crdRef:\n"
                            "    apiGroup: apps\n"
                            "    version: v1\n"
                            "    kind: Deployment\n"
                            "  steps:\n"
                            "    - label: config\n"
                            "      ref:\n"
                            "        kind: ValueFunction\n"
                            "        name: get-config\n"
                            "      inputs:\n"
                            "        name: =parent.metadata.name\n";

static void test_definitions(void **state) {
  (void)state;
  PGresult *lr = PQexec(g_sql, "LISTEN koreo_definitions");
  PQclear(lr);
  resp r = post("/api/v1/definitions", T_OPER, BATCH);
  assert_int_equal(r.status, 200);
  assert_int_equal(kv_len(jget(r.json, "applied")), 2);
  assert_string_equal(jstr(r.json, "applied.0.kind"), "ValueFunction");
  assert_string_equal(jstr(r.json, "applied.0.namespace"), "default");
  assert_int_equal(jint(r.json, "applied.0.generation"), 1);
  assert_true(jget(r.json, "applied.0.changed")->u.b);
  assert_string_equal(jstr(r.json, "applied.1.namespace"), "team");
  assert_non_null(strstr(jstr(r.json, "applied.1.contentHash"), "sha256:"));
  assert_int_equal(jint(r.json, "skipped.0.document"), 1);
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM definitions"), 2);
  assert_int_equal(sql_long("SELECT count(*) FROM audit_log WHERE action = 'definition.apply' "
                            "AND actor = 'aaaaaaaaaaaaaaa2'"),
                   2);
  /* the notifications were committed with the rows */
  PQconsumeInput(g_sql);
  int notes = 0;
  for (PGnotify *n; (n = PQnotifies(g_sql)); PQfreemem(n)) {
    assert_string_equal(n->relname, "koreo_definitions");
    assert_true(!strcmp(n->extra, "ValueFunction/default/get-config") ||
                !strcmp(n->extra, "Workflow/team/wf"));
    notes++;
  }
  assert_int_equal(notes, 2);

  /* the same batch again: nothing changes */
  r = post("/api/v1/definitions", T_ADMIN, BATCH);
  assert_int_equal(r.status, 200);
  assert_false(jget(r.json, "applied.0.changed")->u.b);
  assert_int_equal(jint(r.json, "applied.1.generation"), 1);
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM definitions"), 2);

  /* a changed ValueFunction alone: generation 2, validated against the stored Workflow */
  r = post("/api/v1/definitions", T_OPER,
           "{\"apiVersion\": \"koreo.dev/v1beta1\", \"kind\": \"ValueFunction\", \"metadata\": "
           "{\"name\": \"get-config\"}, \"spec\": {\"return\": {\"name\": \"=inputs.name + "
           "'-x'\"}}}");
  assert_int_equal(r.status, 200);
  assert_int_equal(jint(r.json, "applied.0.generation"), 2);
  assert_true(jget(r.json, "applied.0.changed")->u.b);
  resp_free(&r);

  /* one bad document (document 1: a CEL syntax error) stores nothing */
  const char bad[] = "apiVersion: koreo.dev/v1beta1\n"
                     "kind: ValueFunction\n"
                     "metadata:\n"
                     "  name: fine\n"
                     "spec:\n"
                     "  return:\n"
                     "    a: 1\n"
                     "---\n"
                     "apiVersion: koreo.dev/v1beta1\n"
                     "kind: ValueFunction\n"
                     "metadata:\n"
                     "  name: broken\n"
                     "spec:\n"
                     "  return:\n"
                     "    a: =inputs.x +\n";
  long before = sql_long("SELECT count(*) FROM definitions");
  r = post("/api/v1/definitions", T_OPER, bad);
  expect_error(&r, 422, "invalid_definition", "nothing was stored");
  assert_int_equal(jint(r.json, "diagnostics.0.document"), 1);
  assert_string_equal(jstr(r.json, "diagnostics.0.name"), "broken");
  assert_true(jint(r.json, "diagnostics.0.line") >= 9);
  resp_free(&r);
  /* a Workflow whose step names a function that exists nowhere */
  r = post("/api/v1/definitions", T_OPER,
           "apiVersion: koreo.dev/v1beta1\nkind: Workflow\nmetadata:\n  name: wf2\nspec:\n  "
           "steps:\n    - label: step_a\n      ref:\n        kind: ValueFunction\n        name: "
           "missing-fn\n");
  expect_error(&r, 422, "invalid_definition", "missing-fn");
  assert_int_equal(jint(r.json, "diagnostics.0.document"), 0);
  resp_free(&r);
  /* YAML syntax error, wrong kind, missing name, duplicates */
  r = post("/api/v1/definitions", T_OPER, "a: [1, 2\nb: 3\n");
  expect_error(&r, 422, "invalid_definition", NULL);
  assert_true(jint(r.json, "diagnostics.0.line") >= 1);
  resp_free(&r);
  r = post("/api/v1/definitions", T_OPER,
           "apiVersion: koreo.dev/v1beta1\nkind: ValueFunktion\nmetadata:\n  name: a\n");
  expect_error(&r, 422, "invalid_definition", "ValueFunktion");
  resp_free(&r);
  r = post("/api/v1/definitions", T_OPER,
           "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata: {}\nspec: {}\n");
  expect_error(&r, 422, "invalid_definition", "metadata.name");
  resp_free(&r);
  r = post("/api/v1/definitions", T_OPER,
           "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata:\n  name: d\nspec: "
           "{}\n---\napiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata:\n  name: "
           "d\nspec: {}\n");
  expect_error(&r, 422, "invalid_definition", "twice");
  resp_free(&r);
  r = post("/api/v1/definitions", T_OPER, "  \n");
  expect_error(&r, 400, "bad_request", "empty");
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM definitions"), before);

  /* list and one */
  r = get("/api/v1/definitions", T_WEST); /* scoped tokens may read definitions */
  assert_int_equal(r.status, 200);
  assert_int_equal(kv_len(jget(r.json, "items")), 2);
  assert_string_equal(jstr(r.json, "items.0.kind"), "ValueFunction");
  assert_int_equal(jint(r.json, "items.0.generation"), 2);
  assert_string_equal(jstr(r.json, "items.0.appliedBy"), "aaaaaaaaaaaaaaa2");
  assert_non_null(jstr(r.json, "items.0.appliedAt"));
  resp_free(&r);
  r = get("/api/v1/definitions?kind=Workflow", T_VIEW);
  assert_int_equal(kv_len(jget(r.json, "items")), 1);
  assert_string_equal(jstr(r.json, "items.0.name"), "wf");
  resp_free(&r);
  r = get("/api/v1/definitions?kind=Nope", T_VIEW);
  expect_error(&r, 400, "bad_request", "Nope");
  resp_free(&r);
  r = get("/api/v1/definitions/ValueFunction/default/get-config", T_VIEW);
  assert_int_equal(r.status, 200);
  assert_int_equal(kv_len(jget(r.json, "generations")), 2);
  assert_int_equal(jint(r.json, "generations.0.generation"), 2);
  assert_string_equal(jstr(r.json, "source.metadata.name"), "get-config");
  assert_string_equal(jstr(r.json, "source.metadata.namespace"), "default");
  resp_free(&r);
  r = get("/api/v1/definitions/ValueFunction/default/nope", T_VIEW);
  expect_error(&r, 404, "not_found", "nope");
  resp_free(&r);

  /* delete: viewer refused, operator deletes, then 404 */
  r = http("DELETE", "/api/v1/definitions/Workflow/team/wf", T_VIEW, NULL, 0);
  expect_error(&r, 403, "forbidden", NULL);
  resp_free(&r);
  r = http("DELETE", "/api/v1/definitions/Workflow/team/wf", T_OPER, NULL, 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(jint(r.json, "deleted.generation"), 2);
  resp_free(&r);
  r = http("DELETE", "/api/v1/definitions/Workflow/team/wf", T_OPER, NULL, 0);
  expect_error(&r, 404, "not_found", NULL);
  resp_free(&r);
  r = get("/api/v1/definitions/Workflow/team/wf", T_VIEW);
  expect_error(&r, 404, "not_found", "deleted");
  resp_free(&r);
  expect_items("/api/v1/definitions", T_VIEW, 1);
  assert_int_equal(sql_long("SELECT count(*) FROM audit_log WHERE action = 'definition.delete'"),
                   1);
  /* re-applying a deleted definition brings it back as a new generation */
  r = post("/api/v1/definitions", T_OPER, BATCH);
  assert_int_equal(r.status, 200);
  assert_int_equal(jint(r.json, "applied.1.generation"), 3);
  resp_free(&r);
  for (PGnotify *n; (PQconsumeInput(g_sql), n = PQnotifies(g_sql)); PQfreemem(n))
    ;
}

static void test_clusters_triggers(void **state) {
  (void)state;
  sql("INSERT INTO clusters (name, state, labels, agent_version, last_heartbeat) VALUES "
      "('east', 'online', '{\"region\": \"eu\"}', '1.0', now()), ('west', 'offline', '{}', "
      "'1.0', now() - interval '1 minute')");
  sql("UPDATE clusters SET state_reason = 'missed 3 heartbeats' WHERE name = 'west'");
  sql("INSERT INTO triggers (cluster, api_version, kind, namespace, name, resource_version, "
      "last_outcome) VALUES ('east', 'apps/v1', 'Deployment', 'default', 'a', '5', 'Ok'), "
      "('east', 'v1', 'ConfigMap', 'default', 'b', '6', NULL), ('west', 'apps/v1', "
      "'Deployment', 'default', 'c', '7', 'Retry')");
  resp r = get("/api/v1/clusters", T_VIEW);
  assert_int_equal(r.status, 200);
  assert_int_equal(kv_len(jget(r.json, "items")), 2);
  assert_string_equal(jstr(r.json, "items.0.name"), "east");
  assert_string_equal(jstr(r.json, "items.0.labels.region"), "eu");
  assert_string_equal(jstr(r.json, "items.1.stateReason"), "missed 3 heartbeats");
  resp_free(&r);
  r = get("/api/v1/clusters", T_WEST);
  assert_int_equal(kv_len(jget(r.json, "items")), 1);
  assert_string_equal(jstr(r.json, "items.0.name"), "west");
  resp_free(&r);
  expect_items("/api/v1/triggers", T_VIEW, 3);
  r = get("/api/v1/triggers?cluster=east&kind=Deployment", T_VIEW);
  assert_int_equal(kv_len(jget(r.json, "items")), 1);
  assert_string_equal(jstr(r.json, "items.0.lastOutcome"), "Ok");
  assert_string_equal(jstr(r.json, "items.0.resourceVersion"), "5");
  resp_free(&r);
  r = get("/api/v1/triggers", T_WEST);
  assert_int_equal(kv_len(jget(r.json, "items")), 1);
  assert_string_equal(jstr(r.json, "items.0.cluster"), "west");
  resp_free(&r);
  expect_items("/api/v1/triggers?cluster=east", T_WEST, 0);
}

static void test_executions(void **state) {
  (void)state;
  sql("SELECT koreo_ensure_partitions(current_date - 2, 4)");
  /* 7 runs in east (ids 1..7), 3 in west (8..10), one second apart, newest last */
  sql("INSERT INTO workflow_runs (id, started_at, finished_at, last_seen_at, workflow, cluster, "
      "api_version, kind, namespace, name, outcome, message, fingerprint, duration_ms) "
      "SELECT i, now() - (20 - i) * interval '1 second', now() - (20 - i) * interval '1 "
      "second' + interval '5 ms', now() - (20 - i) * interval '1 second', "
      "CASE WHEN i % 2 = 0 THEN 'default/hello-service' ELSE 'default/other' END, "
      "CASE WHEN i <= 7 THEN 'east' ELSE 'west' END, 'apps/v1', 'Deployment', 'default', "
      "'d' || (i % 3), CASE WHEN i = 5 THEN 'PermFail' ELSE 'Ok' END, 'm' || i, 'fp', 5 "
      "FROM generate_series(1, 10) i");
  sql("INSERT INTO step_runs (run_id, run_started_at, ordinal, label, outcome, value, "
      "resource_ids, duration_ms) SELECT id, started_at, 0, 'config', 'Ok', '{\"a\": 1}', NULL, "
      "1 FROM workflow_runs WHERE id = 4");
  sql("INSERT INTO step_runs (run_id, run_started_at, ordinal, label, outcome, resource_ids, "
      "duration_ms) SELECT id, started_at, 1, 'service', 'Ok', '[{\"kind\": \"Service\"}]', 3 "
      "FROM workflow_runs WHERE id = 4");

  /* all, newest first, 3 a page */
  long seen[16];
  int n = 0;
  char path[512] = "/api/v1/executions?limit=3";
  for (int page = 0; page < 10; page++) {
    resp r = get(path, T_VIEW);
    assert_int_equal(r.status, 200);
    kv *items = jget(r.json, "items");
    assert_true(kv_len(items) <= 3);
    for (size_t i = 0; i < kv_len(items); i++)
      seen[n++] = (long)jint(kv_list_at(items, i), "id");
    const char *cur = jstr(r.json, "nextCursor");
    if (!cur) {
      assert_int_equal(jget(r.json, "nextCursor")->kind, KV_NULL);
      resp_free(&r);
      break;
    }
    snprintf(path, sizeof path, "/api/v1/executions?limit=3&cursor=%s", cur);
    resp_free(&r);
  }
  assert_int_equal(n, 10);
  for (int i = 0; i < 10; i++)
    assert_int_equal(seen[i], 10 - i);

  resp r = get("/api/v1/executions?cluster=east&limit=500", T_VIEW);
  assert_int_equal(kv_len(jget(r.json, "items")), 7);
  assert_string_equal(jstr(r.json, "items.0.trigger.kind"), "Deployment");
  assert_int_equal(jint(r.json, "items.0.repeatCount"), 1);
  assert_non_null(jstr(r.json, "items.0.startedAt"));
  resp_free(&r);
  r = get("/api/v1/executions?outcome=PermFail", T_VIEW);
  assert_int_equal(kv_len(jget(r.json, "items")), 1);
  assert_int_equal(jint(r.json, "items.0.id"), 5);
  resp_free(&r);
  expect_items("/api/v1/executions?workflow=hello-service", T_VIEW, 5);
  expect_items("/api/v1/executions?workflow=default/hello-service&cluster=west", T_VIEW, 2);
  r = get("/api/v1/executions?trigger=default/d1", T_VIEW); /* 1 4 7 10 */
  assert_int_equal(kv_len(jget(r.json, "items")), 4);
  resp_free(&r);
  expect_items("/api/v1/executions?trigger=Deployment/default/d1&cluster=east", T_VIEW, 3);
  expect_items("/api/v1/executions?trigger=ConfigMap/default/d1", T_VIEW, 0);
  /* since/until: a window in the future is empty; from the distant past is all */
  expect_items("/api/v1/executions?since=2999-01-01T00:00:00Z", T_VIEW, 0);
  r = get("/api/v1/executions?since=2000-01-01T00:00:00%2B02:00&until=2999-01-01T00:00:00Z",
          T_VIEW);
  assert_int_equal(kv_len(jget(r.json, "items")), 10);
  resp_free(&r);
  /* the west-scoped token sees only west, even when asking for east */
  expect_items("/api/v1/executions", T_WEST, 3);
  expect_items("/api/v1/executions?cluster=east", T_WEST, 0);
  /* bad parameters */
  r = get("/api/v1/executions?limit=501", T_VIEW);
  expect_error(&r, 400, "bad_request", "limit");
  resp_free(&r);
  r = get("/api/v1/executions?since=yesterday", T_VIEW);
  expect_error(&r, 400, "bad_request", "RFC 3339");
  resp_free(&r);
  r = get("/api/v1/executions?cursor=bm9wZQ", T_VIEW);
  expect_error(&r, 400, "bad_request", "cursor");
  resp_free(&r);
  r = get("/api/v1/executions?trigger=justone", T_VIEW);
  expect_error(&r, 400, "bad_request", "trigger");
  resp_free(&r);

  /* one, with its steps */
  r = get("/api/v1/executions/4", T_VIEW);
  assert_int_equal(r.status, 200);
  assert_string_equal(jstr(r.json, "workflow"), "default/hello-service");
  assert_int_equal(kv_len(jget(r.json, "steps")), 2);
  assert_string_equal(jstr(r.json, "steps.0.label"), "config");
  assert_int_equal(jint(r.json, "steps.0.value.a"), 1);
  assert_string_equal(jstr(r.json, "steps.1.resourceIds.0.kind"), "Service");
  resp_free(&r);
  r = get("/api/v1/executions/4", T_WEST); /* east's run: invisible to west */
  expect_error(&r, 404, "not_found", NULL);
  resp_free(&r);
  r = get("/api/v1/executions/9", T_WEST);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  r = get("/api/v1/executions/abc", T_VIEW);
  expect_error(&r, 400, "bad_request", NULL);
  resp_free(&r);
}

static void test_tokens(void **state) {
  (void)state;
  resp r =
      post("/api/v1/tokens/bootstrap", T_ADMIN, "{\"cluster\": \"north\", \"ttlSeconds\": 600}");
  assert_int_equal(r.status, 200);
  const char *tok = jstr(r.json, "token");
  assert_non_null(tok);
  char id[17], secret[33], pin[65];
  ktls_err kerr;
  assert_int_equal(ktls_token_parse(tok, id, secret, pin, &kerr), 0);
  assert_string_equal(pin, ktls_ca_pin(g_ctx.ca));
  assert_string_equal(jstr(r.json, "cluster"), "north");
  assert_non_null(jstr(r.json, "expiresAt"));
  char hash[65], q[512];
  cp_sha256_hex(secret, strlen(secret), hash);
  snprintf(q, sizeof q,
           "SELECT count(*) FROM bootstrap_tokens WHERE id = '%s' AND secret_hash = '%s' AND "
           "cluster = 'north' AND expires_at > now() + interval '500 seconds' AND expires_at < "
           "now() + interval '700 seconds'",
           id, hash);
  assert_int_equal(sql_long(q), 1);
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM clusters WHERE name = 'north' AND state = "
                            "'pending'"),
                   1);
  r = post("/api/v1/tokens/bootstrap", T_ADMIN, "{\"cluster\": \"Bad_Name\"}");
  expect_error(&r, 400, "bad_request", "cluster");
  resp_free(&r);
  r = post("/api/v1/tokens/bootstrap", T_ADMIN, "{\"cluster\": \"x\", \"ttlSeconds\": -1}");
  expect_error(&r, 400, "bad_request", "ttlSeconds");
  resp_free(&r);
  r = post("/api/v1/tokens/bootstrap", T_ADMIN, "not json");
  expect_error(&r, 400, "bad_request", "line 1");
  resp_free(&r);
  r = post("/api/v1/tokens/bootstrap", T_WESTADM, "{\"cluster\": \"east\"}");
  expect_error(&r, 403, "forbidden", "east");
  resp_free(&r);
  r = post("/api/v1/tokens/bootstrap", T_WESTADM, "{\"cluster\": \"west\"}");
  assert_int_equal(r.status, 200);
  resp_free(&r);

  /* an API token scoped to west, used at once */
  r = post("/api/v1/tokens", T_ADMIN,
           "{\"role\": \"viewer\", \"clusters\": [\"west\"], \"ttlSeconds\": 3600, "
           "\"description\": \"test\"}");
  assert_int_equal(r.status, 200);
  assert_string_equal(jstr(r.json, "role"), "viewer");
  assert_string_equal(jstr(r.json, "clusters.0"), "west");
  assert_non_null(jstr(r.json, "expiresAt"));
  char *newtok = strdup(jstr(r.json, "token"));
  assert_int_equal(strlen(newtok), 53);
  resp_free(&r);
  r = get("/api/v1/clusters", newtok);
  assert_int_equal(r.status, 200);
  assert_int_equal(kv_len(jget(r.json, "items")), 1);
  resp_free(&r);
  free(newtok);
  r = post("/api/v1/tokens", T_ADMIN, "{\"role\": \"root\"}");
  expect_error(&r, 400, "bad_request", "role");
  resp_free(&r);
  r = post("/api/v1/tokens", T_ADMIN, "{\"role\": \"viewer\", \"clusters\": []}");
  expect_error(&r, 400, "bad_request", "clusters");
  resp_free(&r);
  /* a west admin cannot mint an unscoped or an east token */
  r = post("/api/v1/tokens", T_WESTADM, "{\"role\": \"admin\"}");
  expect_error(&r, 403, "forbidden", NULL);
  resp_free(&r);
  r = post("/api/v1/tokens", T_WESTADM, "{\"role\": \"viewer\", \"clusters\": [\"east\"]}");
  expect_error(&r, 403, "forbidden", NULL);
  resp_free(&r);
  r = post("/api/v1/tokens", T_WESTADM, "{\"role\": \"operator\", \"clusters\": [\"west\"]}");
  assert_int_equal(r.status, 200);
  assert_int_equal(jget(r.json, "expiresAt")->kind, KV_NULL);
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM audit_log WHERE action = 'token.create'"), 2);
  assert_int_equal(sql_long("SELECT count(*) FROM audit_log WHERE action = 'token.bootstrap'"), 2);

  /* revoking: the token stops working at once; only admins; scope applies */
  r = post("/api/v1/tokens", T_ADMIN, "{\"role\": \"viewer\"}");
  assert_int_equal(r.status, 200);
  char *victim = strdup(jstr(r.json, "token"));
  char *vid = strdup(jstr(r.json, "id"));
  resp_free(&r);
  r = get("/api/v1/clusters", victim);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  char path[128];
  snprintf(path, sizeof path, "/api/v1/tokens/%s", vid);
  r = http("DELETE", path, T_VIEW, NULL, 0);
  expect_error(&r, 403, "forbidden", "revoke");
  resp_free(&r);
  r = http("DELETE", path, T_WESTADM, NULL, 0); /* an unscoped token is outside west's scope */
  expect_error(&r, 404, "not_found", vid);
  resp_free(&r);
  r = http("DELETE", path, T_ADMIN, NULL, 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(jstr(r.json, "revoked.id"), vid);
  resp_free(&r);
  r = get("/api/v1/clusters", victim);
  expect_error(&r, 401, "unauthorized", NULL);
  resp_free(&r);
  r = http("DELETE", path, T_ADMIN, NULL, 0);
  expect_error(&r, 404, "not_found", "already revoked");
  resp_free(&r);
  r = http("DELETE", "/api/v1/tokens/not-an-id", T_ADMIN, NULL, 0);
  expect_error(&r, 400, "bad_request", "16 hex digits");
  resp_free(&r);
  assert_int_equal(sql_long("SELECT count(*) FROM audit_log WHERE action = 'token.revoke'"), 1);
  free(victim);
  free(vid);
}

static void test_metrics_and_limits(void **state) {
  (void)state;
  sql("INSERT INTO work_queue (cluster, api_version, kind, namespace, name, workflow, due_at) "
      "VALUES ('east', 'apps/v1', 'Deployment', 'default', 'a', 'default/wf', now() - interval "
      "'30 seconds'), ('east', 'apps/v1', 'Deployment', 'default', 'b', 'default/wf', now()), "
      "('east', 'apps/v1', 'Deployment', 'default', 'c', 'default/wf', now() + interval '1 "
      "hour')");
  resp r = get("/metrics", NULL);
  assert_int_equal(r.status, 200);
  const char *m = r.body.p;
  assert_non_null(strstr(m, "koreo_queue_depth 2\n"));
  const char *age = strstr(m, "\nkoreo_queue_oldest_due_seconds ");
  assert_non_null(age);
  double a = strtod(age + strlen("\nkoreo_queue_oldest_due_seconds "), NULL);
  assert_true(a >= 29 && a < 120);
  assert_non_null(strstr(m, "koreo_agents_connected 1\n")); /* east is online */
  assert_non_null(strstr(m, "koreo_db_query_duration_seconds_bucket{le=\"+Inf\"}"));
  assert_non_null(strstr(m, "koreo_db_query_duration_seconds_count "));
  assert_non_null(strstr(m, "koreo_db_connected 1\n"));
  resp_free(&r);

  /* a body over 8 MiB is refused with 413 */
  size_t big = (8u << 20) + 100;
  char *body = malloc(big);
  memset(body, '#', big);
  r = http("POST", "/api/v1/definitions", T_OPER, body, big);
  assert_int_equal(r.status, 413);
  resp_free(&r);
  free(body);
  /* the server still answers */
  r = get("/healthz", NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
}

/* The database goes away: readiness and requests answer 503; when it is
 * back the API recovers by itself. */
static void test_database_down(void **state) {
  (void)state;
  assert_int_equal(pgtest_server_stop(g_pg), 0);
  long st = 0;
  for (int i = 0; i < 500 && st != 503; i++) {
    resp r = get("/api/v1/clusters", T_VIEW);
    st = r.status;
    if (st == 503) expect_error(&r, 503, "unavailable", "database");
    resp_free(&r);
    if (st != 503) usleep(20000);
  }
  assert_int_equal(st, 503);
  resp r = get("/readyz", NULL);
  expect_error(&r, 503, "unavailable", "database");
  resp_free(&r);
  r = get("/metrics", NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body.p, "koreo_db_connected 0\n"));
  resp_free(&r);
  assert_int_equal(pgtest_server_start(g_pg), 0);
  for (int i = 0; i < 1000 && st != 200; i++) {
    r = get("/api/v1/clusters", T_VIEW);
    st = r.status;
    resp_free(&r);
    if (st != 200) usleep(20000);
  }
  assert_int_equal(st, 200);
  PQreset(g_sql);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_and_tls),     cmocka_unit_test(test_auth),
      cmocka_unit_test(test_definitions),        cmocka_unit_test(test_clusters_triggers),
      cmocka_unit_test(test_executions),         cmocka_unit_test(test_tokens),
      cmocka_unit_test(test_metrics_and_limits), cmocka_unit_test(test_database_down),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
