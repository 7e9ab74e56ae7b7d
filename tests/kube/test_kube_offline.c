/*
 * tests/kube/test_kube_offline.c: the parts of the Kubernetes client that
 * need no server (koreo/kube.h): kubeconfig loading and merging, in-cluster
 * configuration, typed errors decoded from Status objects, the discovery
 * cache and request paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "koreo/json.h"
#include "koreo/kube.h"

static char tmpdir[256];

static void write_file(const char *name, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static char *path_of(const char *name) {
  static char p[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, name);
  return p[i];
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/koreo-kube-offline-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  unsetenv("KUBECONFIG");
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static kv *json(const char *s) {
  kv_parse_error pe;
  kv *v = kv_json_parse(s, strlen(s), &pe);
  if (!v) fail_msg("bad test JSON: %s", pe.msg);
  return v;
}

/* "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n" */
#define CA_PEM "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClFVSkQKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="

static const char *KC_MAIN = "apiVersion: v1\n"
                             "kind: Config\n"
                             "current-context: dev\n"
                             "clusters:\n"
                             "- name: devc\n"
                             "  cluster:\n"
                             "    server: https://127.0.0.1:6443/\n"
                             "    certificate-authority-data: " CA_B64 "\n"
                             "- name: prodc\n"
                             "  cluster:\n"
                             "    server: https://prod.example.com\n"
                             "    certificate-authority: ca.pem\n"
                             "    tls-server-name: api.internal\n"
                             "- name: insec\n"
                             "  cluster:\n"
                             "    server: https://10.0.0.1:6443\n"
                             "    insecure-skip-tls-verify: true\n"
                             "users:\n"
                             "- name: alice\n"
                             "  user:\n"
                             "    token: tok-alice\n"
                             "- name: bob\n"
                             "  user:\n"
                             "    tokenFile: bob.token\n"
                             "- name: carol\n"
                             "  user:\n"
                             "    client-certificate: carol.crt\n"
                             "    client-key-data: a2V5ZGF0YQ==\n"
                             "contexts:\n"
                             "- name: dev\n"
                             "  context: {cluster: devc, user: alice, namespace: team-a}\n"
                             "- name: prod\n"
                             "  context: {cluster: prodc, user: bob}\n"
                             "- name: certs\n"
                             "  context: {cluster: insec, user: carol}\n";

static void test_kubeconfig_current_context(void **state) {
  (void)state;
  write_file("config", KC_MAIN);
  kube_config *c = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_kubeconfig(path_of("config"), NULL, &c, &e), 0);
  assert_string_equal(c->server, "https://127.0.0.1:6443"); /* trailing slash dropped */
  assert_string_equal(c->namespace_, "team-a");
  assert_string_equal(c->context, "dev");
  assert_string_equal(c->token, "tok-alice");
  assert_int_equal(c->ca_len, strlen(CA_PEM));
  assert_memory_equal(c->ca_pem, CA_PEM, c->ca_len);
  assert_false(c->insecure);
  kube_config_free(c);
}

static void test_kubeconfig_named_context_relative_files(void **state) {
  (void)state;
  write_file("config", KC_MAIN);
  write_file("ca.pem", CA_PEM);
  write_file("bob.token", "tok-bob\n");
  write_file("carol.crt", "CERTDATA");
  kube_config *c = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_kubeconfig(path_of("config"), "prod", &c, &e), 0);
  assert_string_equal(c->server, "https://prod.example.com");
  assert_string_equal(c->namespace_, "default");
  assert_string_equal(c->token, "tok-bob"); /* newline trimmed */
  assert_string_equal(c->token_file, path_of("bob.token"));
  assert_string_equal(c->tls_server_name, "api.internal");
  assert_memory_equal(c->ca_pem, CA_PEM, strlen(CA_PEM));
  kube_config_free(c);
  assert_int_equal(kube_config_load_kubeconfig(path_of("config"), "certs", &c, &e), 0);
  assert_true(c->insecure);
  assert_string_equal(c->cert_pem, "CERTDATA");
  assert_string_equal(c->key_pem, "keydata");
  assert_null(c->token);
  kube_config_free(c);
}

static void expect_config_error(const char *text, const char *context, const char *needle) {
  write_file("bad", text);
  kube_config *c = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_kubeconfig(path_of("bad"), context, &c, &e), -1);
  assert_null(c);
  assert_int_equal(e.code, KUBE_ERR_CONFIG);
  if (!strstr(e.message, needle)) fail_msg("message \"%s\" lacks \"%s\"", e.message, needle);
  kube_error_clear(&e);
}

static void test_kubeconfig_refusals(void **state) {
  (void)state;
  expect_config_error("clusters:\n- name: c\n  cluster: {server: https://h}\n"
                      "users:\n- name: u\n  user:\n    exec:\n      command: aws\n"
                      "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                      "current-context: x\n",
                      NULL, "exec credential plugin");
  expect_config_error("clusters:\n- name: c\n  cluster: {server: https://h}\n"
                      "users:\n- name: u\n  user:\n    auth-provider: {name: gcp}\n"
                      "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                      "current-context: x\n",
                      NULL, "auth-provider");
  expect_config_error(KC_MAIN, "nope", "context \"nope\" does not exist");
  expect_config_error("clusters: []\ncontexts:\n- name: x\n  context: {cluster: gone}\n"
                      "current-context: x\n",
                      NULL, "cluster \"gone\" which does not exist");
  expect_config_error("clusters:\n- name: c\n  cluster: {server: http://10.1.2.3}\n"
                      "contexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n",
                      NULL, "plain http");
  expect_config_error("clusters:\n- name: c\n  cluster: {server: https://h}\n"
                      "users:\n- name: u\n  user: {client-certificate-data: QUJD}\n"
                      "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                      "current-context: x\n",
                      NULL, "without its key");
  expect_config_error("clusters:\n- name: c\n  cluster: {server: https://h}\n"
                      "contexts:\n- name: x\n  context: {cluster: c}\n",
                      NULL, "no current-context");
  expect_config_error("clusters:\n  - name: c\n   bad: [\n", NULL, "bad:");
  expect_config_error("clusters:\n- name: c\n  cluster: {server: https://h, "
                      "certificate-authority: missing.pem}\n"
                      "contexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n",
                      NULL, "missing.pem");
  /* plain http is fine on loopback */
  write_file("lo", "clusters:\n- name: c\n  cluster: {server: http://127.0.0.1:8080}\n"
                   "contexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n");
  kube_config *c = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_kubeconfig(path_of("lo"), NULL, &c, &e), 0);
  assert_string_equal(c->server, "http://127.0.0.1:8080");
  kube_config_free(c);
}

static void test_kubeconfig_env_merge(void **state) {
  (void)state;
  write_file("a", "current-context: second\n"
                  "clusters:\n- name: c\n  cluster: {server: https://first}\n"
                  "users:\n- name: u\n  user: {token: first-token}\n");
  write_file("b", "current-context: ignored\n"
                  "clusters:\n- name: c\n  cluster: {server: https://second}\n"
                  "- name: c2\n  cluster: {server: https://c2}\n"
                  "users:\n- name: u\n  user: {token: second-token}\n"
                  "contexts:\n- name: second\n  context: {cluster: c, user: u}\n"
                  "- name: other\n  context: {cluster: c2, user: u, namespace: ns2}\n");
  char list[1200];
  snprintf(list, sizeof list, "%s:%s:%s", path_of("a"), path_of("missing"), path_of("b"));
  setenv("KUBECONFIG", list, 1);
  kube_config *c = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load(NULL, NULL, &c, &e), 0);
  /* first file's cluster and user win, first current-context wins */
  assert_string_equal(c->server, "https://first");
  assert_string_equal(c->token, "first-token");
  assert_string_equal(c->context, "second");
  kube_config_free(c);
  assert_int_equal(kube_config_load(NULL, "other", &c, &e), 0);
  assert_string_equal(c->server, "https://c2");
  assert_string_equal(c->namespace_, "ns2");
  kube_config_free(c);
  /* an explicit path wins over KUBECONFIG */
  write_file("config", KC_MAIN);
  assert_int_equal(kube_config_load(path_of("config"), NULL, &c, &e), 0);
  assert_string_equal(c->context, "dev");
  kube_config_free(c);
  unsetenv("KUBECONFIG");
  /* an explicit file that does not exist is an error */
  assert_int_equal(kube_config_load(path_of("nonexistent"), NULL, &c, &e), -1);
  assert_int_equal(e.code, KUBE_ERR_CONFIG);
  assert_non_null(strstr(e.message, "nonexistent"));
  kube_error_clear(&e);
  /* HOME/.kube/config is the last resort */
  char home[512];
  snprintf(home, sizeof home, "%s/home", tmpdir);
  mkdir(home, 0700);
  char kd[600];
  snprintf(kd, sizeof kd, "%s/.kube", home);
  mkdir(kd, 0700);
  write_file("home/.kube/config", KC_MAIN);
  char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  setenv("HOME", home, 1);
  assert_int_equal(kube_config_load(NULL, "prod", &c, &e), -1); /* bob.token is not there */
  kube_error_clear(&e);
  assert_int_equal(kube_config_load(NULL, NULL, &c, &e), 0);
  assert_string_equal(c->context, "dev");
  kube_config_free(c);
  if (old_home) setenv("HOME", old_home, 1);
  free(old_home);
}

static void test_in_cluster(void **state) {
  (void)state;
  char sa[512];
  snprintf(sa, sizeof sa, "%s/sa", tmpdir);
  mkdir(sa, 0700);
  write_file("sa/token", "sa-token\n");
  write_file("sa/ca.crt", CA_PEM);
  write_file("sa/namespace", "koreo-system\n");
  kube_config *c = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_in_cluster(sa, &c, &e), -1);
  assert_int_equal(e.code, KUBE_ERR_CONFIG);
  assert_non_null(strstr(e.message, "KUBERNETES_SERVICE_HOST"));
  kube_error_clear(&e);
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  assert_int_equal(kube_config_load_in_cluster(sa, &c, &e), 0);
  assert_string_equal(c->server, "https://[fd00::1]:443");
  assert_string_equal(c->token, "sa-token");
  assert_string_equal(c->namespace_, "koreo-system");
  assert_non_null(strstr(c->token_file, "/sa/token"));
  assert_memory_equal(c->ca_pem, CA_PEM, strlen(CA_PEM));
  kube_config_free(c);
  unlink(path_of("sa/token"));
  assert_int_equal(kube_config_load_in_cluster(sa, &c, &e), -1);
  assert_non_null(strstr(e.message, "token"));
  kube_error_clear(&e);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_status_errors(void **state) {
  (void)state;
  struct {
    int http;
    const char *body;
    const char *retry_after;
    kube_err_code want;
  } cases[] = {
      {404,
       "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"NotFound\",\"code\":404,"
       "\"message\":\"configmaps \\\"x\\\" not found\"}",
       NULL, KUBE_ERR_NOT_FOUND},
      {409, "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409}", NULL,
       KUBE_ERR_ALREADY_EXISTS},
      {409, "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"code\":409}", NULL, KUBE_ERR_CONFLICT},
      {409, NULL, NULL, KUBE_ERR_CONFLICT},
      {410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410}", NULL, KUBE_ERR_GONE},
      {403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\"}", NULL, KUBE_ERR_FORBIDDEN},
      {401, "not json", NULL, KUBE_ERR_UNAUTHORIZED},
      {500, "{\"kind\":\"Status\",\"reason\":\"ServerTimeout\",\"code\":500}", NULL,
       KUBE_ERR_SERVER_TIMEOUT},
      {504, "{\"kind\":\"Status\",\"reason\":\"Timeout\"}", NULL, KUBE_ERR_TIMEOUT},
      {503, NULL, "2", KUBE_ERR_SERVICE_UNAVAILABLE},
      {418, NULL, NULL, KUBE_ERR_HTTP},
      {415, NULL, NULL, KUBE_ERR_UNSUPPORTED_MEDIA},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    kv *b = NULL;
    if (cases[i].body) {
      kv_parse_error pe;
      b = kv_json_parse(cases[i].body, strlen(cases[i].body), &pe);
    }
    kube_error e = {0};
    kube_error_from_status(&e, cases[i].http, b, cases[i].retry_after);
    if (e.code != cases[i].want)
      fail_msg("case %zu: got %s, want %s", i, kube_err_name(e.code), kube_err_name(cases[i].want));
    assert_int_equal(e.http_status, cases[i].http);
    kube_error_clear(&e);
    kv_unref(b);
  }
  /* message and retry-after */
  kv *b = json("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404,"
               "\"message\":\"configmaps \\\"x\\\" not found\"}");
  kube_error e = {0};
  kube_error_from_status(&e, 404, b, NULL);
  assert_string_equal(e.message, "configmaps \"x\" not found");
  assert_string_equal(e.reason, "NotFound");
  assert_true(e.retry_after < 0);
  kv_unref(b);
  b = json("{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"code\":429,"
           "\"details\":{\"retryAfterSeconds\":7}}");
  kube_error_from_status(&e, 429, b, NULL);
  assert_int_equal(e.code, KUBE_ERR_TOO_MANY_REQUESTS);
  assert_true(e.retry_after == 7.0);
  kube_error_from_status(&e, 429, b, " 3 "); /* the header wins */
  assert_true(e.retry_after == 3.0);
  assert_true(kube_err_retryable(e.code));
  kv_unref(b);
  /* Invalid with field causes */
  b = json("{\"kind\":\"Status\",\"reason\":\"Invalid\",\"code\":422,"
           "\"message\":\"Deployment.apps \\\"web\\\" is invalid\","
           "\"details\":{\"name\":\"web\",\"kind\":\"Deployment\",\"causes\":["
           "{\"reason\":\"FieldValueInvalid\",\"message\":\"must be >= 0\","
           "\"field\":\"spec.replicas\"},"
           "{\"reason\":\"FieldValueRequired\",\"message\":\"Required value\","
           "\"field\":\"spec.selector\"}]}}");
  kube_error_from_status(&e, 422, b, NULL);
  assert_int_equal(e.code, KUBE_ERR_INVALID);
  assert_int_equal(e.n_causes, 2);
  assert_string_equal(e.causes[0].field, "spec.replicas");
  assert_string_equal(e.causes[0].reason, "FieldValueInvalid");
  assert_string_equal(e.causes[1].message, "Required value");
  assert_false(kube_err_retryable(e.code));
  kube_error c2;
  kube_error_copy(&c2, &e);
  kube_error_clear(&e);
  assert_string_equal(c2.causes[1].field, "spec.selector");
  kube_error_clear(&c2);
  kv_unref(b);
  /* a Status inside a watch ERROR event: no HTTP status, the code comes
   * from the body */
  b = json("{\"kind\":\"Status\",\"code\":410,\"message\":\"too old resource version\"}");
  kube_error_from_status(&e, 0, b, NULL);
  assert_int_equal(e.code, KUBE_ERR_GONE);
  kube_error_clear(&e);
  kv_unref(b);
}

static const char *APPS_V1 =
    "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":\"apps/v1\","
    "\"resources\":["
    "{\"name\":\"deployments\",\"singularName\":\"deployment\",\"namespaced\":true,"
    "\"kind\":\"Deployment\",\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\","
    "\"update\",\"watch\"],\"shortNames\":[\"deploy\"]},"
    "{\"name\":\"deployments/scale\",\"namespaced\":true,\"group\":\"autoscaling\","
    "\"version\":\"v1\",\"kind\":\"Scale\",\"verbs\":[\"get\",\"patch\",\"update\"]},"
    "{\"name\":\"deployments/status\",\"namespaced\":true,\"kind\":\"Deployment\","
    "\"verbs\":[\"get\",\"patch\",\"update\"]},"
    "{\"name\":\"statefulsets\",\"singularName\":\"statefulset\",\"namespaced\":true,"
    "\"kind\":\"StatefulSet\",\"verbs\":[\"get\",\"list\"]}]}";

static void test_discovery_cache(void **state) {
  (void)state;
  kube_discovery *d = kube_discovery_new();
  kube_error e = {0};
  assert_false(kube_discovery_knows(d, "apps/v1"));
  kv *l = json(APPS_V1);
  assert_int_equal(kube_discovery_add_list(d, l, 1, &e), 0);
  const kube_resource_info *ri = kube_discovery_find(d, "apps/v1", "Deployment", NULL);
  assert_non_null(ri);
  assert_string_equal(ri->resource, "deployments");
  assert_string_equal(ri->group, "apps");
  assert_string_equal(ri->version, "v1");
  assert_string_equal(ri->singular, "deployment");
  assert_true(ri->namespaced);
  assert_true(ri->has_status);
  assert_true(ri->has_scale);
  assert_int_equal(ri->n_subresources, 2);
  assert_int_equal(ri->n_short_names, 1);
  assert_true(ri->verbs & KUBE_VERB_WATCH);
  assert_false(ri->verbs & KUBE_VERB_DELETECOLLECTION);
  const kube_resource_info *sts = kube_discovery_find(d, "apps/v1", NULL, "statefulsets");
  assert_non_null(sts);
  assert_false(sts->has_status);
  assert_null(kube_discovery_find(d, "apps/v1", "DaemonSet", NULL));
  assert_null(kube_discovery_find(d, "apps/v2", "Deployment", NULL));
  /* a refresh keeps unchanged entries at the same address */
  assert_int_equal(kube_discovery_add_list(d, l, 2, &e), 0);
  assert_ptr_equal(kube_discovery_find(d, "apps/v1", "Deployment", NULL), ri);
  kv_unref(l);
  /* a changed entry is replaced; the old pointer stays readable */
  l = json("{\"groupVersion\":\"apps/v1\",\"resources\":[{\"name\":\"deployments\","
           "\"namespaced\":false,\"kind\":\"Deployment\",\"verbs\":[\"get\"]}]}");
  assert_int_equal(kube_discovery_add_list(d, l, 3, &e), 0);
  const kube_resource_info *ri2 = kube_discovery_find(d, "apps/v1", "Deployment", NULL);
  assert_ptr_not_equal(ri2, ri);
  assert_false(ri2->namespaced);
  assert_string_equal(ri->resource, "deployments");
  assert_null(kube_discovery_find(d, "apps/v1", "StatefulSet", NULL));
  kv_unref(l);
  /* core group */
  l = json("{\"groupVersion\":\"v1\",\"resources\":[{\"name\":\"namespaces\","
           "\"namespaced\":false,\"kind\":\"Namespace\",\"verbs\":[\"get\"]}]}");
  assert_int_equal(kube_discovery_add_list(d, l, 4, &e), 0);
  ri = kube_discovery_find(d, "v1", "Namespace", NULL);
  assert_non_null(ri);
  assert_string_equal(ri->group, "");
  kv_unref(l);
  kube_discovery_add_missing(d, "example.com/v1", 5);
  assert_true(kube_discovery_knows(d, "example.com/v1"));
  assert_null(kube_discovery_find(d, "example.com/v1", "Thing", NULL));
  l = json("{\"kind\":\"Status\"}");
  assert_int_equal(kube_discovery_add_list(d, l, 6, &e), -1);
  assert_int_equal(e.code, KUBE_ERR_DECODE);
  kube_error_clear(&e);
  kv_unref(l);
  kube_discovery_invalidate(d);
  assert_false(kube_discovery_knows(d, "v1"));
  assert_string_equal(ri->kind, "Namespace"); /* still valid */
  kube_discovery_free(d);
}

static void test_request_paths(void **state) {
  (void)state;
  kube_discovery *d = kube_discovery_new();
  kube_error e = {0};
  kv *l = json(APPS_V1);
  assert_int_equal(kube_discovery_add_list(d, l, 1, &e), 0);
  kv_unref(l);
  l = json("{\"groupVersion\":\"v1\",\"resources\":[{\"name\":\"namespaces\","
           "\"namespaced\":false,\"kind\":\"Namespace\"},{\"name\":\"configmaps\","
           "\"namespaced\":true,\"kind\":\"ConfigMap\"}]}");
  assert_int_equal(kube_discovery_add_list(d, l, 1, &e), 0);
  kv_unref(l);
  const kube_resource_info *dep = kube_discovery_find(d, "apps/v1", "Deployment", NULL);
  const kube_resource_info *ns = kube_discovery_find(d, "v1", "Namespace", NULL);
  const kube_resource_info *cm = kube_discovery_find(d, "v1", "ConfigMap", NULL);
  struct {
    const kube_resource_info *ri;
    kube_req req;
    const char *want;
  } cases[] = {
      {dep, {.op = KUBE_OP_GET, .name = "web"}, "/apis/apps/v1/namespaces/dflt/deployments/web"},
      {dep,
       {.op = KUBE_OP_PATCH_MERGE, .namespace_ = "prod", .name = "web", .subresource = "status"},
       "/apis/apps/v1/namespaces/prod/deployments/web/status"},
      {dep, {.op = KUBE_OP_LIST}, "/apis/apps/v1/deployments"},
      {dep,
       {.op = KUBE_OP_LIST,
        .namespace_ = "a",
        .label_selector = "app in (x,y),tier!=db",
        .field_selector = "metadata.name=web",
        .limit = 10,
        .continue_token = "abc=="},
       "/apis/apps/v1/namespaces/a/deployments?labelSelector=app%20in%20%28x%2Cy%29%2Ctier%21%"
       "3Ddb&fieldSelector=metadata.name%3Dweb&limit=10&continue=abc%3D%3D"},
      {dep,
       {.op = KUBE_OP_CREATE, .namespace_ = "a", .name = "web", .field_manager = "koreo"},
       "/apis/apps/v1/namespaces/a/deployments?fieldManager=koreo"},
      {dep,
       {.op = KUBE_OP_APPLY,
        .namespace_ = "a",
        .name = "web",
        .field_manager = "koreo",
        .force = true,
        .dry_run = true},
       "/apis/apps/v1/namespaces/a/deployments/web?fieldManager=koreo&force=true&dryRun=All"},
      {ns,
       {.op = KUBE_OP_GET, .namespace_ = "ignored", .name = "kube-system"},
       "/api/v1/namespaces/kube-system"},
      {ns, {.op = KUBE_OP_DELETE, .name = "x"}, "/api/v1/namespaces/x"},
      {cm,
       {.op = KUBE_OP_GET, .name = "c", .resource_version = "0"},
       "/api/v1/namespaces/dflt/configmaps/c?resourceVersion=0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *p = kube_req_path(cases[i].ri, &cases[i].req, "dflt", &e);
    if (!p) fail_msg("case %zu: %s", i, e.message);
    if (strcmp(p, cases[i].want) != 0) fail_msg("case %zu: got %s\nwant %s", i, p, cases[i].want);
    free(p);
  }
  /* names are required and must be path segments */
  kube_req bad = {.op = KUBE_OP_GET};
  assert_null(kube_req_path(cm, &bad, "d", &e));
  assert_int_equal(e.code, KUBE_ERR_USAGE);
  kube_error_clear(&e);
  bad.name = "../secrets";
  assert_null(kube_req_path(cm, &bad, "d", &e));
  assert_int_equal(e.code, KUBE_ERR_USAGE);
  kube_error_clear(&e);
  kube_discovery_free(d);
}

static void test_object_helpers(void **state) {
  (void)state;
  kv *o = json("{\"metadata\":{\"name\":\"n\",\"namespace\":\"s\",\"resourceVersion\":\"12\"}}");
  assert_string_equal(kube_obj_meta(o, "name"), "n");
  assert_string_equal(kube_obj_meta(o, "resourceVersion"), "12");
  assert_null(kube_obj_meta(o, "uid"));
  kv_unref(o);
  char g[64], v[64];
  kube_split_api_version("apps/v1", g, sizeof g, v, sizeof v);
  assert_string_equal(g, "apps");
  assert_string_equal(v, "v1");
  kube_split_api_version("v1", g, sizeof g, v, sizeof v);
  assert_string_equal(g, "");
  assert_string_equal(v, "v1");
  assert_string_equal(kube_err_name(KUBE_ERR_ALREADY_EXISTS), "AlreadyExists");
  assert_int_equal(kube_err_code_for(201, NULL), KUBE_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kubeconfig_current_context),
      cmocka_unit_test(test_kubeconfig_named_context_relative_files),
      cmocka_unit_test(test_kubeconfig_refusals),
      cmocka_unit_test(test_kubeconfig_env_merge),
      cmocka_unit_test(test_in_cluster),
      cmocka_unit_test(test_status_errors),
      cmocka_unit_test(test_discovery_cache),
      cmocka_unit_test(test_request_paths),
      cmocka_unit_test(test_object_helpers),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
