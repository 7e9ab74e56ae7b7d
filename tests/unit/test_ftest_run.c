/*
 * tests/unit/test_ftest_run.c: the FunctionTest runner (spec 7.2-7.4):
 * the mock API of 7.3 (GET ignores the name, shallow PATCH, DELETE leaves
 * {}), case sequencing (inputs and resource carried, variants carry
 * nothing, skip), a failing non-variant case stopping the test, overlay
 * without a resource stopping it even in a variant, a missing function
 * and a broken FunctionTest reported as errors, ValueFunction bases, and
 * the assertion messages of 7.4.
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

#include "koreo/definition.h"
#include "koreo/ftest.h"
#include "koreo/json.h"

static kv *J(const char *text) {
  kv_parse_error err;
  kv *v = kv_json_parse(text, strlen(text), &err);
  if (!v) fail_msg("json: %s", err.msg);
  return v;
}

/* ---- the mock API -----------------------------------------------------------
 */

static kube_response call(kftest_mock *m, kube_verb verb, const char *name, kv *body) {
  kube_request req = {.id = 1,
                      .verb = verb,
                      .api_version = "storage.example.com/v1",
                      .kind = "Bucket",
                      .plural = NULL,
                      .namespaced = true,
                      .ns = "tests",
                      .name = (char *)name,
                      .body = body};
  kube_response resp;
  memset(&resp, 0, sizeof resp);
  kube_ops ops = kftest_mock_ops(m);
  ops.call(ops.ctx, &req, &resp);
  return resp;
}

static void test_mock_get_ignores_name(void **state) {
  (void)state;
  kv *seed = J("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":1}}");
  kftest_mock m;
  kftest_mock_init(&m, seed);
  kube_response r = call(&m, KUBE_GET, "some-other-name", NULL);
  assert_int_equal(r.status, KUBE_STATUS_OK);
  assert_ptr_equal(r.object, seed);
  /* the plural is the lower-cased discovery query */
  assert_string_equal(r.plural, "bucket.storage.example.com/v1");
  kube_response_clear(&r);
  assert_false(m.api_called);
  assert_null(m.materialized);
  kftest_mock_clear(&m);
  kv_unref(seed);

  /* {} and NULL seeds are "absent" */
  kv *empty = J("{}");
  kftest_mock_init(&m, empty);
  r = call(&m, KUBE_GET, "a", NULL);
  assert_int_equal(r.status, KUBE_STATUS_NOT_FOUND);
  kube_response_clear(&r);
  kftest_mock_clear(&m);
  kv_unref(empty);
  kftest_mock_init(&m, NULL);
  r = call(&m, KUBE_GET, "a", NULL);
  assert_int_equal(r.status, KUBE_STATUS_NOT_FOUND);
  kube_response_clear(&r);
  kftest_mock_clear(&m);
}

static void test_mock_writes(void **state) {
  (void)state;
  kftest_mock m;
  /* create: the body */
  kftest_mock_init(&m, NULL);
  kv *body = J("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":1}}");
  kube_response r = call(&m, KUBE_CREATE, "a", body);
  assert_int_equal(r.status, KUBE_STATUS_OK);
  kube_response_clear(&r);
  assert_true(m.api_called);
  assert_false(m.delete_called);
  assert_true(kv_equal_strict(m.materialized, body, true));
  kftest_mock_clear(&m);
  kv_unref(body);

  /* patch: top-level keys replace (spec is replaced whole, status survives) */
  kv *seed = J("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":1,\"y\":2},"
               "\"status\":{\"ok\":true}}");
  kftest_mock_init(&m, seed);
  body = J("{\"metadata\":{\"name\":\"b\"},\"spec\":{\"x\":3}}");
  r = call(&m, KUBE_PATCH, "b", body);
  kube_response_clear(&r);
  kv *want = J("{\"metadata\":{\"name\":\"b\"},\"spec\":{\"x\":3},\"status\":{"
               "\"ok\":true}}");
  assert_true(kv_equal_strict(m.materialized, want, false));
  kv_unref(want);
  kv_unref(body);
  /* delete: {} */
  r = call(&m, KUBE_DELETE, "b", NULL);
  kube_response_clear(&r);
  assert_true(m.delete_called);
  assert_int_equal(kv_kind_of(m.materialized), KV_MAP);
  assert_int_equal(kv_len(m.materialized), 0);
  assert_int_equal(m.calls, 2);
  kftest_mock_clear(&m);
  kv_unref(seed);
}

/* ---- the runner
 * --------------------------------------------------------------- */

typedef struct fixture {
  kdef_registry *reg;
  kftest_result res;
} fixture;

/* Load `yaml` and run FunctionTest `name`. */
static void run_ft(fixture *fx, const char *yaml, const char *name) {
  fx->reg = kdef_registry_new();
  kdef_diags d = {0};
  kdef_load_text(fx->reg, yaml, strlen(yaml), "inline.koreo", &d);
  kdef_diags_free(&d);
  kdef_definition *t = kdef_registry_lookup(fx->reg, KDEF_FUNCTION_TEST, name);
  if (!t) fail_msg("FunctionTest %s was not loaded", name);
  kftest_run(fx->reg, t, &fx->res);
}

static void fixture_free(fixture *fx) {
  kftest_result_clear(&fx->res);
  kdef_registry_free(fx->reg);
}

static const kftest_case_result *case_at(const fixture *fx, size_t i) {
  assert_true(i < fx->res.n_cases);
  return &fx->res.cases[i];
}

#define VF_HEADER                                                                                  \
  "apiVersion: koreo.dev/v1beta1\n"                                                                \
  "kind: ValueFunction\n"                                                                          \
  "metadata: {name: vf}\n"                                                                         \
  "spec:\n"                                                                                        \
  "  preconditions:\n"                                                                             \
  "  - assert: =inputs.n < 10\n"                                                                   \
  "    permFail: {message: n too large}\n"                                                         \
  "  return:\n"                                                                                    \
  "    n: =inputs.n\n"                                                                             \
  "    tag: =inputs.tag\n"                                                                         \
  "---\n"

static void test_sequencing_and_variants(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         VF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ValueFunction, name: vf}\n"
                   "  inputs: {n: 1, tag: a}\n"
                   "  testCases:\n"
                   "  - expectReturn: {n: 1, tag: a}\n"
                   "  - variant: true\n"
                   "    inputOverrides: {n: 2}\n"
                   "    expectReturn: {n: 2, tag: a}\n"
                   "  - expectReturn: {n: 1, tag: a}\n"
                   "  - inputOverrides: {tag: b}\n"
                   "    expectReturn: {n: 1, tag: b}\n"
                   "  - skip: true\n"
                   "    expectReturn: {n: 99}\n"
                   "  - expectReturn: {n: 1, tag: b}\n"
                   "  - variant: true\n"
                   "    inputOverrides: {n: 50}\n"
                   "    expectOutcome: {permFail: {message: TOO LARGE}}\n",
         "t");
  assert_null(fx.res.error);
  assert_false(fx.res.fatal);
  assert_int_equal(fx.res.n_cases, 7);
  for (size_t i = 0; i < 7; i++) {
    const kftest_case_result *c = case_at(&fx, i);
    if (i == 4) {
      assert_int_equal(c->status, KFTEST_SKIP);
      assert_true(c->passed);
      assert_string_equal(c->message, "user skipped");
    } else {
      if (c->status != KFTEST_PASS) fail_msg("case %zu: %s", i, c->message);
    }
    assert_int_equal(c->index, (int)i);
  }
  assert_string_equal(case_at(&fx, 0)->label, "Test Case 1");
  assert_string_equal(case_at(&fx, 1)->label, "[variant] Test Case 2");
  fixture_free(&fx);
}

static void test_fatal_failure_stops(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         VF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ValueFunction, name: vf}\n"
                   "  inputs: {n: 1, tag: a}\n"
                   "  testCases:\n"
                   "  - label: variant failure is not fatal\n"
                   "    variant: true\n"
                   "    expectReturn: {n: 2, tag: a}\n"
                   "  - label: stops\n"
                   "    expectOutcome: {skip: {message: ''}}\n"
                   "  - label: after\n"
                   "    expectReturn: {n: 1, tag: a}\n",
         "t");
  assert_true(fx.res.fatal);
  assert_int_equal(fx.res.n_cases, 3);
  const kftest_case_result *c0 = case_at(&fx, 0), *c1 = case_at(&fx, 1), *c2 = case_at(&fx, 2);
  assert_int_equal(c0->status, KFTEST_FAIL);
  assert_non_null(c0->diffs);
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(c0->diffs, 0), "path")), "n");
  assert_int_equal(c1->status, KFTEST_FAIL);
  assert_non_null(strstr(c1->message, "Expected(User Skip) Actual(Ok("));
  assert_int_equal(c2->status, KFTEST_NOT_RUN);
  assert_false(c2->passed);
  assert_string_equal(c2->message, "not run: case #2 (stops) failed and stopped the test");
  fixture_free(&fx);
}

static void test_overlay_needs_resource(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         VF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ValueFunction, name: vf}\n"
                   "  inputs: {n: 1, tag: a}\n"
                   "  testCases:\n"
                   "  - variant: true\n"
                   "    overlayResource: {status: {ready: true}}\n"
                   "    expectOutcome: {ok: {}}\n"
                   "  - expectOutcome: {ok: {}}\n",
         "t");
  assert_true(fx.res.fatal);
  assert_int_equal(case_at(&fx, 0)->status, KFTEST_FAIL);
  assert_string_equal(case_at(&fx, 0)->message,
                      "Can not overlay until the full resource exists. Try setting "
                      "`currentResource` or reordering test cases.");
  assert_int_equal(case_at(&fx, 1)->status, KFTEST_NOT_RUN);
  fixture_free(&fx);
}

static void test_overlay_error(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         VF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ValueFunction, name: vf}\n"
                   "  inputs: {n: 1, tag: a}\n"
                   "  currentResource: {kind: K, spec: {size: 1}}\n"
                   "  testCases:\n"
                   "  - label: a variant's overlay error is not fatal\n"
                   "    variant: true\n"
                   "    overlayResource: {spec: {size: =nosuch.field}}\n"
                   "    expectOutcome: {ok: {}}\n"
                   "  - label: currentResource replaces the carried resource\n"
                   "    currentResource: {kind: K2}\n"
                   "    expectReturn: {kind: K2, n: 1, tag: a}\n"
                   "  - label: an overlay error stops the test\n"
                   "    overlayResource: {spec: {size: =nosuch.field}}\n"
                   "    expectOutcome: {ok: {}}\n"
                   "  - expectOutcome: {ok: {}}\n",
         "t");
  const kftest_case_result *c0 = case_at(&fx, 0);
  assert_int_equal(c0->status, KFTEST_FAIL);
  assert_non_null(strstr(c0->message, "Could not run test case due to resource overlay error: ("));
  assert_non_null(strstr(c0->message, "nosuch"));
  assert_non_null(c0->outcome_text);
  assert_non_null(strstr(c0->outcome_text, "Permanent Failure"));
  if (case_at(&fx, 1)->status != KFTEST_PASS) fail_msg("case 1: %s", case_at(&fx, 1)->message);
  assert_int_equal(case_at(&fx, 2)->status, KFTEST_FAIL);
  assert_int_equal(case_at(&fx, 3)->status, KFTEST_NOT_RUN);
  assert_true(fx.res.fatal);
  fixture_free(&fx);
}

static void test_value_function_base(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         "apiVersion: koreo.dev/v1beta1\n"
         "kind: ValueFunction\n"
         "metadata: {name: vf}\n"
         "spec:\n"
         "  return:\n"
         "    spec: {size: =resource.spec.size + inputs.add}\n"
         "---\n"
         "apiVersion: koreo.dev/v1beta1\n"
         "kind: FunctionTest\n"
         "metadata: {name: t}\n"
         "spec:\n"
         "  functionRef: {kind: ValueFunction, name: vf}\n"
         "  inputs: {add: 1}\n"
         "  currentResource: {kind: K, spec: {size: 1, keep: true}}\n"
         "  testCases:\n"
         "  - expectReturn: {kind: K, spec: {size: 2, keep: true}}\n"
         "  - overlayResource: {spec: {size: =add * 10}}\n"
         "    expectReturn: {kind: K, spec: {size: 11, keep: true}}\n"
         "  - expectReturn: {kind: K, spec: {size: 11, keep: true}}\n",
         "t");
  for (size_t i = 0; i < 3; i++)
    if (case_at(&fx, i)->status != KFTEST_PASS)
      fail_msg("case %zu: %s", i, case_at(&fx, i)->message);
  fixture_free(&fx);
}

#define RF_HEADER                                                                                  \
  "apiVersion: koreo.dev/v1beta1\n"                                                                \
  "kind: ResourceFunction\n"                                                                       \
  "metadata: {name: rf}\n"                                                                         \
  "spec:\n"                                                                                        \
  "  apiConfig:\n"                                                                                 \
  "    apiVersion: example.com/v1\n"                                                               \
  "    kind: Widget\n"                                                                             \
  "    name: =inputs.name\n"                                                                       \
  "    namespace: ns\n"                                                                            \
  "  resource:\n"                                                                                  \
  "    spec: {size: =inputs.size}\n"                                                               \
  "  update: {recreate: {delay: 9}}\n"                                                             \
  "---\n"

static void test_resource_lifecycle(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         RF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ResourceFunction, name: rf}\n"
                   "  inputs: {name: w, size: 1}\n"
                   "  testCases:\n"
                   "  - expectResource:\n"
                   "      apiVersion: example.com/v1\n"
                   "      kind: Widget\n"
                   "      metadata: {name: w, namespace: ns}\n"
                   "      spec: {size: 1}\n"
                   "  - expectOutcome: {ok: {}}\n"
                   "  - inputOverrides: {size: 2}\n"
                   "    expectOutcome: {retry: {message: recreate, delay: 9}}\n"
                   "  - expectResource:\n"
                   "      apiVersion: example.com/v1\n"
                   "      kind: Widget\n"
                   "      metadata: {name: w, namespace: ns}\n"
                   "      spec: {size: 2}\n"
                   "  - expectDelete: false\n",
         "t");
  for (size_t i = 0; i < fx.res.n_cases; i++)
    if (case_at(&fx, i)->status != KFTEST_PASS)
      fail_msg("case %zu: %s (%s)", i, case_at(&fx, i)->message, case_at(&fx, i)->outcome_text);
  /* the stripped resource has neither the annotation nor ownerReferences */
  const kv *meta = kv_map_get_str(case_at(&fx, 0)->actual, "metadata");
  assert_null(kv_map_get_str(meta, "annotations"));
  assert_null(kv_map_get_str(meta, "ownerReferences"));
  fixture_free(&fx);
}

static void test_resource_messages(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         RF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ResourceFunction, name: rf}\n"
                   "  inputs: {name: w, size: 1}\n"
                   "  currentResource:\n"
                   "    apiVersion: example.com/v1\n"
                   "    kind: Widget\n"
                   "    metadata: {name: w, namespace: ns}\n"
                   "    spec: {size: 1}\n"
                   "  testCases:\n"
                   "  - variant: true\n"
                   "    expectResource: {kind: Widget}\n"
                   "  - variant: true\n"
                   "    expectDelete: true\n"
                   "  - variant: true\n"
                   "    expectOutcome: {retry: {message: '', delay: 0}}\n"
                   "  - variant: true\n"
                   "    inputOverrides: {size: 3}\n"
                   "    expectOutcome: {retry: {message: recreate, delay: 10}}\n",
         "t");
  assert_false(fx.res.fatal);
  assert_string_equal(case_at(&fx, 0)->message,
                      "No resource changes attempted: unexpected Ok result");
  assert_string_equal(case_at(&fx, 1)->message, "Delete not called.");
  assert_non_null(
      strstr(case_at(&fx, 2)->message, "Expected(Retry(delay=0, message=None)) Actual(Ok("));
  assert_non_null(strstr(case_at(&fx, 3)->message,
                         "Retry: Expected(message=recreate, delay=10) "
                         "Actual(message=Deleting Widget:ns:w to recreate"));
  assert_non_null(strstr(case_at(&fx, 3)->message, "delay=9)"));
  fixture_free(&fx);
}

static void test_missing_function_is_error(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         "apiVersion: koreo.dev/v1beta1\n"
         "kind: FunctionTest\n"
         "metadata: {name: t}\n"
         "spec:\n"
         "  functionRef: {kind: ResourceFunction, name: nowhere}\n"
         "  testCases:\n"
         "  - expectOutcome: {ok: {}}\n",
         "t");
  assert_true(fx.res.fatal);
  assert_non_null(fx.res.error);
  assert_non_null(strstr(fx.res.error, "ResourceFunction nowhere is not ready: "));
  assert_non_null(strstr(fx.res.error, "not found or not ready, FunctionTest 't' must wait."));
  assert_int_equal(fx.res.n_cases, 1);
  assert_int_equal(case_at(&fx, 0)->status, KFTEST_ERROR);
  assert_string_equal(case_at(&fx, 0)->label, "Test Case 1");
  fixture_free(&fx);
}

static void test_broken_test_is_error(void **state) {
  (void)state;
  fixture fx = {0};
  run_ft(&fx,
         VF_HEADER "apiVersion: koreo.dev/v1beta1\n"
                   "kind: FunctionTest\n"
                   "metadata: {name: t}\n"
                   "spec:\n"
                   "  functionRef: {kind: ValueFunction, name: vf}\n"
                   "  testCases:\n"
                   "  - expectOutcome: {ok: {}}\n"
                   "    expectReturn: {a: 1}\n",
         "t");
  assert_true(fx.res.fatal);
  assert_int_equal(fx.res.n_cases, 1);
  assert_int_equal(case_at(&fx, 0)->index, -1);
  assert_int_equal(case_at(&fx, 0)->status, KFTEST_ERROR);
  assert_non_null(strstr(case_at(&fx, 0)->message, "FunctionTest t failed to prepare: "));
  assert_non_null(strstr(case_at(&fx, 0)->message, "exactly one assertion"));
  fixture_free(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mock_get_ignores_name),
      cmocka_unit_test(test_mock_writes),
      cmocka_unit_test(test_sequencing_and_variants),
      cmocka_unit_test(test_fatal_failure_stops),
      cmocka_unit_test(test_overlay_needs_resource),
      cmocka_unit_test(test_overlay_error),
      cmocka_unit_test(test_value_function_base),
      cmocka_unit_test(test_resource_lifecycle),
      cmocka_unit_test(test_resource_messages),
      cmocka_unit_test(test_missing_function_is_error),
      cmocka_unit_test(test_broken_test_is_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
