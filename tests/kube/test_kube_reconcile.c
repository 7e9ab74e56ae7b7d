/*
 * tests/kube/test_kube_reconcile.c: ResourceFunctions reconciled against a
 * live API (issue 4 item 3): the core's "kube operations" (kube_ops.h)
 * answered by the libcurl client (kube_client_ops) on koreo-kubesim, with
 * ../shared/reference/koreo-examples/core-examples/ loaded and its
 * dummy-crds.yaml applied.  Covers create, no change when equal, patch on
 * drift made by another client, recreate, never, readonly waiting for an
 * object to exist, ownerReferences to the trigger, compare directives,
 * and postconditions that read a status another actor set (spec 5.11).
 *
 * argv[1] is the kubesim binary (or $KOREO_KUBESIM); KOREO_SHARED_DIR
 * points at shared/ (CTest sets both).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/definition.h"
#include "koreo/eval.h"
#include "koreo/json.h"
#include "koreo/kube.h"
#include "kubesim_harness.h"

static const char *kubesim_bin;
static char examples[1024];
static ksim sim;
static struct event_base *base;
static kube_client *cli;
static kdef_registry *reg;
static kv *trigger;
static kv *owner_ref;

static const char *const SIM_ARGS[] = {"--exit-after", "240", NULL};
#define NS "koreo-testing"

static kv *J(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static kv *J(const char *fmt, ...) {
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  assert_true(n >= 0);
  kv_parse_error pe;
  kv *v = kv_json_parse(s, (size_t)n, &pe);
  if (!v) fail_msg("bad test JSON (%s): %s", pe.msg, s);
  free(s);
  return v;
}

static kv *send_ok(const kube_req *q, const char *what) {
  kube_result r;
  if (kube_send_sync(cli, q, &r) != 0) fail_msg("%s: %s", what, r.err.message);
  kv *o = r.object;
  r.object = NULL;
  kube_result_clear(&r);
  return o;
}

static kv *get_dummy(const char *name, kube_err_code *code) {
  kube_result r;
  kube_send_sync(cli,
                 &(kube_req){.op = KUBE_OP_GET,
                             .api_version = "koreo.dev/v1beta1",
                             .kind = "TestDummy",
                             .namespace_ = NS,
                             .name = name},
                 &r);
  if (code) *code = r.err.code;
  kv *o = r.object;
  r.object = NULL;
  kube_result_clear(&r);
  return r.err.code == KUBE_OK ? o : (kv_unref(o), NULL);
}

static void patch_dummy(const char *name, const char *patch_json) {
  kv *p = J("%s", patch_json);
  kv_unref(send_ok(&(kube_req){.op = KUBE_OP_PATCH_MERGE,
                               .api_version = "koreo.dev/v1beta1",
                               .kind = "TestDummy",
                               .namespace_ = NS,
                               .name = name,
                               .body = p},
                   "drift patch"));
  kv_unref(p);
}

static int64_t spec_int(const kv *o, const char *field) {
  kv *v = kv_map_get_str(kv_map_get_str(o, "spec"), field);
  if (!v || kv_kind_of(v) != KV_INT) fail_msg("spec.%s is not an int", field);
  return v->u.i;
}

/* One reconcile of ResourceFunction `name` with `inputs` (JSON). */
static koreo_outcome reconcile(const char *name, const char *inputs_json, size_t *calls) {
  kdef_definition *rf = kdef_registry_lookup(reg, KDEF_RESOURCE_FUNCTION, name);
  if (!rf) fail_msg("no ResourceFunction %s", name);
  kv *inputs = J("%s", inputs_json);
  koreo_eval_ctx ctx = {.registry = reg};
  koreo_owner owner = {.ns = NS, .ref = owner_ref};
  koreo_run *run = koreo_run_resource_function(&ctx, rf, inputs, &owner, NULL);
  kube_ops ops = kube_client_ops(cli);
  size_t n = koreo_run_sync(run, &ops);
  if (calls) *calls = n;
  koreo_outcome o = koreo_outcome_copy(koreo_run_outcome(run));
  koreo_run_free(run);
  kv_unref(inputs);
  return o;
}

static void expect_kind(koreo_outcome *o, koreo_outcome_kind k, const char *msg_part) {
  if (o->kind != k || (msg_part && (!o->message || !strstr(o->message, msg_part))))
    fail_msg("outcome %d \"%s\", want %d with \"%s\"", o->kind, o->message ? o->message : "", k,
             msg_part ? msg_part : "");
}

static const char *INLINE_RFS =
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ResourceFunction\n"
    "metadata: {name: recreate-on-drift.v1, namespace: " NS "}\n"
    "spec:\n"
    "  apiConfig: {apiVersion: koreo.dev/v1beta1, kind: TestDummy, plural: testdummies,\n"
    "              name: =inputs.name, namespace: " NS "}\n"
    "  resource: {spec: {size: =inputs.size}}\n"
    "  update: {recreate: {delay: 1}}\n"
    "  return: {uid: =resource.metadata.uid}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ResourceFunction\n"
    "metadata: {name: never-update.v1, namespace: " NS "}\n"
    "spec:\n"
    "  apiConfig: {apiVersion: koreo.dev/v1beta1, kind: TestDummy, plural: testdummies,\n"
    "              name: =inputs.name, namespace: " NS "}\n"
    "  resource: {spec: {size: =inputs.size}}\n"
    "  update: {never: {}}\n"
    "  return: {size: =resource.spec.size}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ResourceFunction\n"
    "metadata: {name: wait-ready.v1, namespace: " NS "}\n"
    "spec:\n"
    "  apiConfig: {apiVersion: koreo.dev/v1beta1, kind: TestDummy,\n"
    "              name: =inputs.name, namespace: " NS "}\n"
    "  resource: {spec: {size: 1}}\n"
    "  postconditions:\n"
    "  - assert: =has(resource.status.ready) && resource.status.ready\n"
    "    retry: {message: not ready yet, delay: 5}\n"
    "  return: {ready: =resource.status.ready}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ResourceFunction\n"
    "metadata: {name: set-compare.v1, namespace: " NS "}\n"
    "spec:\n"
    "  apiConfig: {apiVersion: koreo.dev/v1beta1, kind: TestDummy, plural: testdummies,\n"
    "              name: sets, namespace: " NS "}\n"
    "  resource:\n"
    "    spec:\n"
    "      x-koreo-compare-as-set: [tags]\n"
    "      tags: [a, b, c]\n"
    "      order: [a, b, c]\n";

static int group_setup(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  if (ksim_start(&sim, kubesim_bin, false, SIM_ARGS) != 0) return -1;
  base = event_base_new();
  kube_config *cfg = NULL;
  kube_error e = {0};
  if (kube_config_load_kubeconfig(sim.kubeconfig, NULL, &cfg, &e) != 0) return -1;
  cli = kube_client_new(base, cfg, NULL, &e);
  kube_config_free(cfg);
  if (!cli) return -1;
  /* the CRDs of the examples, and their namespace */
  char path[1200];
  snprintf(path, sizeof path, "%s/dummy-crds.yaml", examples);
  kv_parse_error pe;
  size_t len = 0;
  char *text = kv_read_file(path, &len, &pe);
  if (!text) {
    fprintf(stderr, "%s: %s\n", path, pe.msg);
    return -1;
  }
  kv *docs = kv_yaml_parse(text, len, path, &pe);
  free(text);
  if (!docs) return -1;
  kv *ns = J("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"" NS "\"}}");
  kv_list_push(docs, ns);
  for (size_t i = 0; i < kv_len(docs); i++) {
    kube_result r;
    if (kube_send_sync(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = kv_list_at(docs, i)}, &r) !=
        0) {
      fprintf(stderr, "apply %s: %s\n", kube_obj_meta(kv_list_at(docs, i), "name"), r.err.message);
      kube_result_clear(&r);
      kv_unref(docs);
      return -1;
    }
    kube_result_clear(&r);
  }
  kv_unref(docs);
  /* the definitions */
  reg = kdef_registry_new();
  kdef_diags d = {0};
  const char *paths[] = {examples};
  kdef_load_paths(reg, paths, 1, &d);
  kdef_load_text(reg, INLINE_RFS, strlen(INLINE_RFS), "inline.koreo", &d);
  /* problems are shown; the functions used below must exist (lookups fail
   * the tests otherwise) */
  for (size_t i = 0; i < d.n; i++) {
    char *m = kdef_diag_format(&d.items[i]);
    fprintf(stderr, "definitions: %s\n", m);
    free(m);
  }
  kdef_diags_free(&d);
  /* the trigger that owns what the functions make */
  kv *t = J("{\"apiVersion\":\"koreo.dev/v1beta1\",\"kind\":\"TriggerDummy\",\"metadata\":{"
            "\"name\":\"trigger-1\",\"namespace\":\"" NS "\"},\"spec\":{}}");
  kube_result r;
  if (kube_send_sync(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = t}, &r) != 0) return -1;
  trigger = r.object;
  r.object = NULL;
  kube_result_clear(&r);
  kv_unref(t);
  owner_ref = koreo_owner_ref_from_trigger(trigger);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  kv_unref(owner_ref);
  kv_unref(trigger);
  if (reg) kdef_registry_free(reg);
  kube_client_free(cli);
  if (base) event_base_free(base);
  ksim_stop(&sim, getenv("KOREO_KUBESIM_LOG") != NULL);
  return 0;
}

#define NEED_KUBESIM()                                                                             \
  do {                                                                                             \
    if (!kubesim_bin) {                                                                            \
      fprintf(stderr, "koreo-kubesim not built: pass it as argv[1] or KOREO_KUBESIM\n");           \
      skip();                                                                                      \
    }                                                                                              \
  } while (0)

#define FACTORY_INPUTS                                                                             \
  "{\"name\":\"t1\",\"suffix\":\"made\",\"validators\":{\"skip\":true,\"depSkip\":true,"           \
  "\"permFail\":true,\"retry\":true,\"ok\":true},\"values\":{\"string\":\"hello\",\"int\":7}}"

static void test_create_equal_drift(void **state) {
  (void)state;
  NEED_KUBESIM();
  /* absent -> created, Retry "Creating" */
  size_t calls = 0;
  koreo_outcome o = reconcile("resource-factory.v1", FACTORY_INPUTS, &calls);
  expect_kind(&o, KOREO_RETRY, "Creating");
  koreo_outcome_clear(&o);
  assert_int_equal(calls, 2); /* one read, one write */
  kube_err_code code;
  kv *obj = get_dummy("t1-made", &code);
  assert_non_null(obj);
  assert_string_equal(kv_str(kv_map_get_str(kv_map_get_str(obj, "spec"), "string")),
                      "hello local computed");
  assert_int_equal(spec_int(obj, "int"), 7);
  /* owned by the trigger */
  kv *refs = kv_map_get_str(kv_map_get_str(obj, "metadata"), "ownerReferences");
  assert_non_null(refs);
  assert_int_equal(kv_len(refs), 1);
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(refs, 0), "uid")),
                      kube_obj_meta(trigger, "uid"));
  char *rv1 = strdup(kube_obj_meta(obj, "resourceVersion"));
  kv_unref(obj);
  /* present, equal and owned: Ok with the return value, and no write */
  o = reconcile("resource-factory.v1", FACTORY_INPUTS, &calls);
  expect_kind(&o, KOREO_OK, NULL);
  assert_int_equal(kv_map_get_str(o.value, "computedInt")->u.i, 7);
  koreo_outcome_clear(&o);
  assert_int_equal(calls, 1);
  obj = get_dummy("t1-made", NULL);
  assert_string_equal(kube_obj_meta(obj, "resourceVersion"), rv1);
  kv_unref(obj);
  free(rv1);
  /* another client changes the object: the next reconcile patches it back */
  patch_dummy("t1-made", "{\"spec\":{\"int\":99}}");
  o = reconcile("resource-factory.v1", FACTORY_INPUTS, &calls);
  assert_int_equal(o.kind, KOREO_RETRY);
  koreo_outcome_clear(&o);
  assert_int_equal(calls, 2);
  obj = get_dummy("t1-made", NULL);
  assert_int_equal(spec_int(obj, "int"), 7);
  kv_unref(obj);
  o = reconcile("resource-factory.v1", FACTORY_INPUTS, NULL);
  expect_kind(&o, KOREO_OK, NULL);
  koreo_outcome_clear(&o);
  /* a field the function does not manage is left alone */
  patch_dummy("t1-made", "{\"spec\":{\"extra\":\"kept\"}}");
  o = reconcile("resource-factory.v1", FACTORY_INPUTS, &calls);
  expect_kind(&o, KOREO_OK, NULL);
  assert_int_equal(calls, 1);
  koreo_outcome_clear(&o);
}

static void test_readonly_waits(void **state) {
  (void)state;
  NEED_KUBESIM();
  const char *in = "{\"name\":\"r1\",\"validators\":{\"skip\":true,\"depSkip\":true,"
                   "\"permFail\":true,\"retry\":true,\"ok\":true},\"values\":{\"string\":\"x\"}}";
  size_t calls = 0;
  koreo_outcome o = reconcile("resource-reader.v1", in, &calls);
  expect_kind(&o, KOREO_RETRY, "not found");
  assert_int_equal(calls, 1); /* readonly never writes */
  koreo_outcome_clear(&o);
  kube_err_code code;
  kv_unref(get_dummy("r1-test-name", &code));
  assert_int_equal(code, KUBE_ERR_NOT_FOUND);
  /* another actor creates it */
  kv *d = J("{\"apiVersion\":\"koreo.dev/v1beta1\",\"kind\":\"TestDummy\",\"metadata\":{"
            "\"name\":\"r1-test-name\",\"namespace\":\"" NS "\"},\"spec\":{\"int\":5}}");
  kv_unref(send_ok(&(kube_req){.op = KUBE_OP_CREATE, .body = d}, "create r1"));
  kv_unref(d);
  o = reconcile("resource-reader.v1", in, &calls);
  expect_kind(&o, KOREO_OK, NULL);
  assert_int_equal(kv_map_get_str(o.value, "computedInt")->u.i, 5);
  kv *ref = kv_map_get_str(o.value, "ref");
  assert_string_equal(kv_str(kv_map_get_str(ref, "name")), "r1-test-name");
  koreo_outcome_clear(&o);
}

static void test_recreate_and_never(void **state) {
  (void)state;
  NEED_KUBESIM();
  koreo_outcome o = reconcile("recreate-on-drift.v1", "{\"name\":\"rc\",\"size\":3}", NULL);
  expect_kind(&o, KOREO_RETRY, "Creating");
  koreo_outcome_clear(&o);
  o = reconcile("recreate-on-drift.v1", "{\"name\":\"rc\",\"size\":3}", NULL);
  expect_kind(&o, KOREO_OK, NULL);
  char *uid1 = strdup(kv_str(kv_map_get_str(o.value, "uid")));
  koreo_outcome_clear(&o);
  /* drift: recreate = DELETE now, create on the next reconcile */
  patch_dummy("rc", "{\"spec\":{\"size\":4}}");
  size_t calls = 0;
  o = reconcile("recreate-on-drift.v1", "{\"name\":\"rc\",\"size\":3}", &calls);
  assert_int_equal(o.kind, KOREO_RETRY);
  assert_int_equal(o.delay, 1);
  koreo_outcome_clear(&o);
  assert_int_equal(calls, 2);
  kube_err_code code;
  kv_unref(get_dummy("rc", &code));
  assert_int_equal(code, KUBE_ERR_NOT_FOUND);
  o = reconcile("recreate-on-drift.v1", "{\"name\":\"rc\",\"size\":3}", NULL);
  expect_kind(&o, KOREO_RETRY, "Creating");
  koreo_outcome_clear(&o);
  o = reconcile("recreate-on-drift.v1", "{\"name\":\"rc\",\"size\":3}", NULL);
  expect_kind(&o, KOREO_OK, NULL);
  assert_string_not_equal(kv_str(kv_map_get_str(o.value, "uid")), uid1); /* a new object */
  koreo_outcome_clear(&o);
  free(uid1);
  /* never: the drift stays */
  o = reconcile("never-update.v1", "{\"name\":\"nv\",\"size\":3}", NULL);
  expect_kind(&o, KOREO_RETRY, "Creating");
  koreo_outcome_clear(&o);
  patch_dummy("nv", "{\"spec\":{\"size\":8}}");
  o = reconcile("never-update.v1", "{\"name\":\"nv\",\"size\":3}", &calls);
  expect_kind(&o, KOREO_OK, NULL);
  assert_int_equal(kv_map_get_str(o.value, "size")->u.i, 8);
  assert_int_equal(calls, 1);
  koreo_outcome_clear(&o);
  kv *obj = get_dummy("nv", NULL);
  assert_int_equal(spec_int(obj, "size"), 8);
  kv_unref(obj);
}

static void test_postcondition_reads_status(void **state) {
  (void)state;
  NEED_KUBESIM();
  /* no plural in apiConfig: discovery resolves TestDummy */
  koreo_outcome o = reconcile("wait-ready.v1", "{\"name\":\"wr\"}", NULL);
  expect_kind(&o, KOREO_RETRY, "Creating");
  koreo_outcome_clear(&o);
  o = reconcile("wait-ready.v1", "{\"name\":\"wr\"}", NULL);
  expect_kind(&o, KOREO_RETRY, "not ready yet");
  assert_int_equal(o.delay, 5);
  koreo_outcome_clear(&o);
  /* another controller reports readiness */
  patch_dummy("wr", "{\"status\":{\"ready\":true}}");
  o = reconcile("wait-ready.v1", "{\"name\":\"wr\"}", NULL);
  expect_kind(&o, KOREO_OK, NULL);
  assert_true(kv_map_get_str(o.value, "ready")->u.b);
  koreo_outcome_clear(&o);
}

static void test_compare_directives(void **state) {
  (void)state;
  NEED_KUBESIM();
  koreo_outcome o = reconcile("set-compare.v1", "{}", NULL);
  expect_kind(&o, KOREO_RETRY, "Creating");
  koreo_outcome_clear(&o);
  kv *obj = get_dummy("sets", NULL);
  assert_null(kv_map_get_str(kv_map_get_str(obj, "spec"), "x-koreo-compare-as-set"));
  kv_unref(obj);
  /* a set compared as a set: another order is no difference */
  patch_dummy("sets", "{\"spec\":{\"tags\":[\"c\",\"a\",\"b\"]}}");
  size_t calls = 0;
  o = reconcile("set-compare.v1", "{}", &calls);
  expect_kind(&o, KOREO_OK, NULL);
  assert_int_equal(calls, 1);
  koreo_outcome_clear(&o);
  /* a plain list: order matters, so it is patched */
  patch_dummy("sets", "{\"spec\":{\"order\":[\"c\",\"a\",\"b\"]}}");
  o = reconcile("set-compare.v1", "{}", &calls);
  assert_int_equal(o.kind, KOREO_RETRY);
  assert_int_equal(calls, 2);
  koreo_outcome_clear(&o);
  obj = get_dummy("sets", NULL);
  kv *order = kv_map_get_str(kv_map_get_str(obj, "spec"), "order");
  assert_string_equal(kv_str(kv_list_at(order, 0)), "a");
  kv_unref(obj);
}

static void test_unknown_kind_is_permfail(void **state) {
  (void)state;
  NEED_KUBESIM();
  const char *rf = "apiVersion: koreo.dev/v1beta1\n"
                   "kind: ResourceFunction\n"
                   "metadata: {name: no-such-kind.v1, namespace: " NS "}\n"
                   "spec:\n"
                   "  apiConfig: {apiVersion: nowhere.example.com/v1, kind: Ghost,\n"
                   "              name: ghost, namespace: " NS "}\n"
                   "  resource: {spec: {}}\n";
  kdef_diags d = {0};
  kdef_load_text(reg, rf, strlen(rf), "ghost.koreo", &d);
  assert_int_equal(kdef_diags_errors(&d), 0);
  kdef_diags_free(&d);
  koreo_outcome o = reconcile("no-such-kind.v1", "{}", NULL);
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  koreo_outcome_clear(&o);
}

int main(int argc, char **argv) {
  kubesim_bin = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  const char *shared = getenv("KOREO_SHARED_DIR");
  snprintf(examples, sizeof examples, "%s/reference/koreo-examples/core-examples",
           shared && *shared ? shared : "../shared");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_equal_drift), cmocka_unit_test(test_readonly_waits),
      cmocka_unit_test(test_recreate_and_never), cmocka_unit_test(test_postcondition_reads_status),
      cmocka_unit_test(test_compare_directives), cmocka_unit_test(test_unknown_kind_is_permfail),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
