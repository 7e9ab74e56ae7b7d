/*
 * tests/unit/test_eval_workflow.c: Workflow reconcile (spec 6, upstream
 * workflow/test_reconcile.py) and the "Key subtleties" it involves:
 * state (sees only `value`, shallow merge in step-list order, errors kept
 * apart), sub-workflows (parent = step inputs, result = state), refSwitch,
 * forEach, inputs evaluated before skipIf, `steps` only with dependencies
 * and holding only them, DepSkip messages, outcome precedence and Retry
 * delays, conditions, resource ids, not-ready workflows, and the resumable
 * run: independent ResourceFunction steps in flight together, cancel,
 * and an unexpected API failure cancelling siblings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "eval_fixture.h"

static const char *DEFS =
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ValueFunction\n"
    "metadata: {name: ctl}\n"
    "spec:\n"
    "  preconditions:\n"
    "  - {assert: =inputs.mode != 'skip', skip: {message: skipped on "
    "purpose}}\n"
    "  - {assert: =inputs.mode != 'depSkip', depSkip: {message: not yet}}\n"
    "  - {assert: =inputs.mode != 'retry7', retry: {message: seven, delay: "
    "7}}\n"
    "  - {assert: =inputs.mode != 'retry9', retry: {message: nine, delay: 9}}\n"
    "  - {assert: =inputs.mode != 'fail', permFail: {message: broken}}\n"
    "  return:\n"
    "    value: =inputs.value\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ValueFunction\n"
    "metadata: {name: nothing}\n"
    "spec:\n"
    "  preconditions: []\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ValueFunction\n"
    "metadata: {name: numbers}\n"
    "spec:\n"
    "  return:\n"
    "    quoted: '17171'\n"
    "    name: =inputs.name\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: single}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: only\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: =parent.spec.source}\n"
    "    state: {input_source: =value.value}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: child}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: inner\n"
    "    ref: {kind: ValueFunction, name: numbers}\n"
    "    inputs: {name: =parent.given}\n"
    "    state: {number: =value.quoted, name: =value.name}\n"
    "  - label: inner_two\n"
    "    ref: {kind: ValueFunction, name: nothing}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: parent-wf}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: sub\n"
    "    ref: {kind: Workflow, name: child}\n"
    "    inputs: {given: =parent.metadata.name}\n"
    "    state: {fromChild: =value}\n"
    "  - label: after\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: =steps.sub.number + 1}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: chain}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: first\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: =parent.spec.first, value: 1}\n"
    "    condition: {type: FirstReady, name: The first step}\n"
    "    state: {shared: =value.value, a: =value.value}\n"
    "  - label: second\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: =parent.spec.second, value: =steps.first.value + 1}\n"
    "    condition: {type: SecondReady, name: The second step}\n"
    "    state: {shared: =value.value, b: =value.value}\n"
    "  - label: third\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: =parent.spec.third, value: 3}\n"
    "    state: {c: =value.value, broken: =value.nope}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: visibility}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: s_a\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: {hasSteps: =has(steps), p: "
    "=parent.spec.p}}\n"
    "  - label: s_b\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: {all: =steps, fromA: =steps.s_a.value.p}}\n"
    "  - label: s_c\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: {all: =steps, fromB: "
    "=steps.s_b.value.fromA}}\n"
    "  - label: s_d\n"
    "    ref: {kind: ValueFunction, name: nothing}\n"
    "  - label: s_e\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: '=steps.s_d == null'}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: skips}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: skipped\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    skipIf: =parent.spec.skip\n"
    "    inputs: {mode: go, value: 1}\n"
    "  - label: inputs_first\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    skipIf: =true\n"
    "    inputs: {mode: go, value: =parent.spec.missing.field}\n"
    "  - label: not_bool\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    skipIf: =parent.spec.notBool\n"
    "    inputs: {mode: go, value: 1}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: switch}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: pick\n"
    "    refSwitch:\n"
    "      switchOn: =inputs.size\n"
    "      cases:\n"
    "      - {case: small, kind: ValueFunction, name: ctl}\n"
    "      - {case: large, kind: ValueFunction, name: numbers}\n"
    "    inputs: {size: =parent.spec.size, mode: go, value: small-one, name: "
    "large-one}\n"
    "  - label: pick_default\n"
    "    refSwitch:\n"
    "      switchOn: =parent.spec.size\n"
    "      cases:\n"
    "      - {case: '1', kind: ValueFunction, name: ctl}\n"
    "      - {case: other, default: true, kind: ValueFunction, name: numbers}\n"
    "    inputs: {mode: go, value: one, name: defaulted}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: loop}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: each\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    forEach: {itemIn: =parent.spec.items, inputKey: mode}\n"
    "    inputs: {mode: overwritten, value: =parent.spec.value}\n"
    "    state: {results: =value}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: ResourceFunction\n"
    "metadata: {name: cm}\n"
    "spec:\n"
    "  apiConfig: {apiVersion: v1, kind: ConfigMap, name: =inputs.name, "
    "namespace: ns}\n"
    "  resource: {data: {v: =inputs.v}}\n"
    "  create: {delay: 5}\n"
    "  return: {name: =resource.metadata.name}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: resources}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: one\n"
    "    ref: {kind: ResourceFunction, name: cm}\n"
    "    inputs: {name: one, v: '1'}\n"
    "  - label: two\n"
    "    ref: {kind: ResourceFunction, name: cm}\n"
    "    inputs: {name: two, v: '2'}\n"
    "  - label: three\n"
    "    ref: {kind: ResourceFunction, name: cm}\n"
    "    inputs: {name: =steps.one.name + '-three', v: '3'}\n"
    "  - label: many\n"
    "    ref: {kind: ResourceFunction, name: cm}\n"
    "    forEach: {itemIn: '=[\"x\", \"y\"]', inputKey: name}\n"
    "    inputs: {v: '4'}\n"
    "  - label: nested\n"
    "    ref: {kind: Workflow, name: single}\n"
    "    inputs: {spec: {source: nested}}\n"
    "---\n"
    "apiVersion: koreo.dev/v1beta1\n"
    "kind: Workflow\n"
    "metadata: {name: state-scope}\n"
    "spec:\n"
    "  steps:\n"
    "  - label: reads_parent\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: 1}\n"
    "    state: {p: =parent.spec}\n"
    "  - label: reads_value\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: 2}\n"
    "    state: {v: =value.value, nested: {deep: =value.value}}\n"
    "  - label: overwrites\n"
    "    ref: {kind: ValueFunction, name: ctl}\n"
    "    inputs: {mode: go, value: 3}\n"
    "    state: {nested: {other: =value.value}}\n";

static fx F;

static int setup(void **s) {
  (void)s;
  fx_init(&F);
  fx_load(&F, DEFS);
  return 0;
}
static int teardown(void **s) {
  (void)s;
  fx_free(&F);
  return 0;
}

/* Run workflow `name` synchronously with `parent` (JSON). */
static koreo_run *run_wf(const char *name, const char *parent) {
  kv *p = fx_json(parent);
  koreo_run *r = koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, name), p, NULL, NULL);
  kv_unref(p);
  kube_ops ops = fx_ops(&F);
  koreo_run_sync(r, &ops);
  assert_true(koreo_run_done(r));
  return r;
}

static const koreo_outcome *step(const koreo_workflow_result *res, const char *label) {
  for (size_t i = 0; i < res->n_steps; i++)
    if (strcmp(res->steps[i].label, label) == 0) return &res->steps[i].outcome;
  fail_msg("no step %s", label);
  return NULL;
}

/* upstream test_reconcile: one ValueFunction step, its state */
static void test_reconcile(void **s) {
  (void)s;
  koreo_run *r = run_wf("single", "{\"spec\":{\"source\":\"abc\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK);
  fx_assert_json(res->outcome.value, "[{\"value\":\"abc\"}]");
  fx_assert_json(res->state, "{\"input_source\":\"abc\"}");
  fx_assert_json(res->state_errors, "{}");
  const kv *ready = kv_list_at(res->conditions, kv_len(res->conditions) - 1);
  fx_assert_json(ready, "{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Ready\","
                        "\"message\":\"Workflow single ready.\",\"location\":\"single\"}");
  fx_assert_json(res->resource_ids, "{\"workflow\":\"single\",\"resources\":{\"only\":null}}");
  koreo_run_free(r);
}

/* upstream test_reconcile_nested: the sub-workflow's value is its state;
 * its parent is the step's inputs; '17171' is an integer */
static void test_nested(void **s) {
  (void)s;
  koreo_run *r = run_wf("parent-wf", "{\"metadata\":{\"name\":\"top\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK);
  fx_assert_json(step(res, "sub")->value, "{\"number\":17171,\"name\":\"top\"}");
  fx_assert_json(step(res, "after")->value, "{\"value\":17172}");
  fx_assert_json(res->state, "{\"fromChild\":{\"number\":17171,\"name\":\"top\"}}");
  fx_assert_json(kv_map_get_str(kv_map_get_str(res->resource_ids, "resources"), "sub"),
                 "{\"workflow\":\"child\",\"resources\":{\"inner\":null,\"inner_two\":"
                 "null}}");
  koreo_run_free(r);
}

/* state merge in step-list order, partial state, state errors, conditions */
static void test_state_and_conditions(void **s) {
  (void)s;
  koreo_run *r =
      run_wf("chain", "{\"spec\":{\"first\":\"go\",\"second\":\"go\",\"third\":\"go\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK);
  /* later steps in list order overwrite top-level keys; third's state fails */
  fx_assert_json(res->state, "{\"shared\":2,\"a\":1,\"b\":2}");
  const kv *err = kv_map_get_str(res->state_errors, "third");
  assert_non_null(err);
  fx_assert_contains(kv_str(err), "chain.spec.steps.third");
  assert_int_equal(kv_len(res->conditions), 3); /* two step conditions + Ready */
  fx_assert_json(kv_list_at(res->conditions, 0),
                 "{\"type\":\"FirstReady\",\"status\":\"True\",\"reason\":\"Ready\","
                 "\"message\":\"The first step ready.\",\"location\":\"chain\"}");
  koreo_run_free(r);

  /* a failing step contributes no state; its dependents DepSkip */
  r = run_wf("chain", "{\"spec\":{\"first\":\"fail\",\"second\":\"go\",\"third\":\"go\"}}");
  res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_PERMFAIL);
  assert_string_equal(res->outcome.message, "broken");
  fx_assert_json(res->state, "{}"); /* first failed; third's state map has an error */
  assert_int_equal(step(res, "second")->kind, KOREO_DEPSKIP);
  const kv *c0 = kv_list_at(res->conditions, 0);
  assert_string_equal(kv_str(kv_map_get_str(c0, "reason")), "Failure");
  assert_string_equal(kv_str(kv_map_get_str(c0, "status")), "True"); /* always "True" */
  const kv *c1 = kv_list_at(res->conditions, 1);
  assert_string_equal(kv_str(kv_map_get_str(c1, "reason")), "DepSkip");
  koreo_run_free(r);
}

/* step state sees only `value` (not parent); the merge is shallow */
static void test_state_scope(void **s) {
  (void)s;
  koreo_run *r = run_wf("state-scope", "{\"spec\":{\"x\":1}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK); /* state errors do not fail the workflow */
  fx_assert_json(res->state, "{\"v\":2,\"nested\":{\"other\":3}}");
  const kv *e = kv_map_get_str(res->state_errors, "reads_parent");
  assert_non_null(e);
  fx_assert_contains(kv_str(e), "parent");
  assert_int_equal(kv_len(res->state_errors), 1);
  koreo_run_free(r);
}

/* DepSkip message templates for each non-Ok dependency outcome */
static void test_depskip_messages(void **s) {
  (void)s;
  struct {
    const char *mode, *msg;
  } cases[] = {
      {"skip", "'first' was skipped (skipped on purpose at "},
      {"depSkip", "'first' is waiting on dependency (not yet at "},
      {"retry7", "'first' is waiting (seven at "},
      {"fail", "'first' is in failure state (broken at "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char p[128];
    snprintf(p, sizeof p, "{\"spec\":{\"first\":\"%s\",\"second\":\"go\",\"third\":\"go\"}}",
             cases[i].mode);
    koreo_run *r = run_wf("chain", p);
    const koreo_workflow_result *res = koreo_run_workflow_result(r);
    const koreo_outcome *o = step(res, "second");
    assert_int_equal(o->kind, KOREO_DEPSKIP);
    fx_assert_contains(o->message, cases[i].msg);
    assert_string_equal(o->location, "chain.spec.steps.second");
    koreo_run_free(r);
  }
}

/* precedence PermFail > Retry > Ok > Skip > DepSkip, delays max'ed, and
 * a DepSkip on a Retrying dependency does not hide the Retry */
static void test_precedence(void **s) {
  (void)s;
  struct {
    const char *first, *second, *third;
    koreo_outcome_kind kind;
    int64_t delay;
  } cases[] = {
      {"retry7", "go", "retry9", KOREO_RETRY, 9},     {"retry9", "go", "fail", KOREO_PERMFAIL, 0},
      {"go", "skip", "depSkip", KOREO_OK, 0},         {"skip", "go", "depSkip", KOREO_SKIP, 0},
      {"depSkip", "go", "depSkip", KOREO_DEPSKIP, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char p[160];
    snprintf(p, sizeof p, "{\"spec\":{\"first\":\"%s\",\"second\":\"%s\",\"third\":\"%s\"}}",
             cases[i].first, cases[i].second, cases[i].third);
    koreo_run *r = run_wf("chain", p);
    const koreo_workflow_result *res = koreo_run_workflow_result(r);
    assert_int_equal(res->outcome.kind, cases[i].kind);
    assert_int_equal(res->outcome.delay, cases[i].delay);
    if (cases[i].kind == KOREO_RETRY) assert_string_equal(res->outcome.message, "seven, nine");
    if (cases[i].kind == KOREO_OK) fx_assert_json(res->outcome.value, "[{\"value\":1}]");
    koreo_run_free(r);
  }
}

/* `steps` exists only with dependencies and holds only them; a null
 * dependency value is Ok */
static void test_steps_visibility(void **s) {
  (void)s;
  koreo_run *r = run_wf("visibility", "{\"spec\":{\"p\":\"P\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK);
  fx_assert_json(step(res, "s_a")->value, "{\"value\":{\"hasSteps\":false,\"p\":\"P\"}}");
  fx_assert_json(step(res, "s_b")->value,
                 "{\"value\":{\"all\":{\"s_a\":{\"value\":{\"hasSteps\":false,"
                 "\"p\":\"P\"}}},"
                 "\"fromA\":\"P\"}}");
  const kv *call = kv_map_get_str(kv_map_get_str(step(res, "s_c")->value, "value"), "all");
  assert_int_equal(kv_len(call), 1); /* only b, not a */
  assert_non_null(kv_map_get_str(call, "s_b"));
  assert_int_equal(step(res, "s_d")->value->kind, KV_NULL);
  fx_assert_json(step(res, "s_e")->value, "{\"value\":true}");
  koreo_run_free(r);
}

/* skipIf, and inputs evaluated before skipIf */
static void test_skips(void **s) {
  (void)s;
  koreo_run *r = run_wf("skips", "{\"spec\":{\"skip\":true,\"notBool\":\"yes\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  const koreo_outcome *o = step(res, "skipped");
  assert_int_equal(o->kind, KOREO_SKIP);
  assert_string_equal(o->message, "skipped by workflow");
  o = step(res, "inputs_first");
  assert_int_equal(o->kind, KOREO_PERMFAIL); /* not Skip: inputs failed first */
  o = step(res, "not_bool");
  assert_int_equal(o->kind, KOREO_PERMFAIL);
  fx_assert_contains(o->message, "`skipIf` must evaluate to a bool");
  assert_int_equal(res->outcome.kind, KOREO_PERMFAIL);
  koreo_run_free(r);
  r = run_wf("skips", "{\"spec\":{\"skip\":false,\"notBool\":false}}");
  res = koreo_run_workflow_result(r);
  assert_int_equal(step(res, "skipped")->kind, KOREO_OK);
  assert_int_equal(step(res, "not_bool")->kind, KOREO_OK);
  koreo_run_free(r);
}

/* refSwitch: exact string match, default, int never matches a string case,
 * no match and no default */
static void test_ref_switch(void **s) {
  (void)s;
  koreo_run *r = run_wf("switch", "{\"spec\":{\"size\":\"large\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  fx_assert_json(step(res, "pick")->value, "{\"quoted\":17171,\"name\":\"large-one\"}");
  fx_assert_json(step(res, "pick_default")->value, "{\"quoted\":17171,\"name\":\"defaulted\"}");
  koreo_run_free(r);
  r = run_wf("switch", "{\"spec\":{\"size\":\"small\"}}");
  res = koreo_run_workflow_result(r);
  fx_assert_json(step(res, "pick")->value, "{\"value\":\"small-one\"}");
  koreo_run_free(r);
  r = run_wf("switch", "{\"spec\":{\"size\":1}}"); /* int 1 does not match case '1' */
  res = koreo_run_workflow_result(r);
  const koreo_outcome *o = step(res, "pick");
  assert_int_equal(o->kind, KOREO_PERMFAIL);
  fx_assert_contains(o->message, "`refSwitch` must match one case or a default must be provided");
  fx_assert_json(step(res, "pick_default")->value, "{\"quoted\":17171,\"name\":\"defaulted\"}");
  koreo_run_free(r);
  r = run_wf("switch", "{\"spec\":{\"size\":[1]}}");
  res = koreo_run_workflow_result(r);
  fx_assert_contains(step(res, "pick")->message, "`switchOn` must evaluate to a string or int");
  koreo_run_free(r);
}

/* forEach: item values in order, skipped items as text, errors combined,
 * empty list, not a list, inputKey overwrites */
static void test_for_each(void **s) {
  (void)s;
  koreo_run *r = run_wf("loop", "{\"spec\":{\"items\":[\"go\",\"skip\",\"go\"],\"value\":5}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK);
  fx_assert_json(step(res, "each")->value,
                 "[{\"value\":5},\"Skip (message=skipped on purpose)\",{\"value\":5}]");
  fx_assert_json(res->state, "{\"results\":[{\"value\":5},\"Skip (message=skipped on purpose)\","
                             "{\"value\":5}]}");
  fx_assert_json(kv_map_get_str(kv_map_get_str(res->resource_ids, "resources"), "each"),
                 "[null,null,null]");
  koreo_run_free(r);
  r = run_wf("loop", "{\"spec\":{\"items\":[\"retry7\",\"go\",\"retry9\",\"depSkip\"],"
                     "\"value\":5}}");
  res = koreo_run_workflow_result(r);
  const koreo_outcome *o = step(res, "each");
  assert_int_equal(o->kind, KOREO_RETRY);
  assert_int_equal(o->delay, 9);
  assert_string_equal(o->message, "seven, nine");
  koreo_run_free(r);
  r = run_wf("loop", "{\"spec\":{\"items\":[\"fail\",\"retry9\"],\"value\":5}}");
  assert_int_equal(step(koreo_run_workflow_result(r), "each")->kind, KOREO_PERMFAIL);
  koreo_run_free(r);
  r = run_wf("loop", "{\"spec\":{\"items\":[],\"value\":5}}");
  res = koreo_run_workflow_result(r);
  fx_assert_json(step(res, "each")->value, "[]");
  koreo_run_free(r);
  r = run_wf("loop", "{\"spec\":{\"items\":\"go\",\"value\":5}}");
  o = step(koreo_run_workflow_result(r), "each");
  assert_int_equal(o->kind, KOREO_PERMFAIL);
  fx_assert_contains(o->message, "must be a list-type");
  koreo_run_free(r);
}

/* ResourceFunction steps: independent steps have requests in flight
 * together; a dependent step waits; resource ids; convergence */
static void test_resources_async(void **s) {
  (void)s;
  kv *p = fx_json("{}");
  koreo_run *r =
      koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, "top-key");
  assert_false(koreo_run_advance(r));
  /* one, two and both forEach items read at once; three waits for one */
  assert_int_equal(koreo_run_pending(r), 4);
  const kube_request *q[8];
  size_t n = 0;
  while ((q[n] = koreo_run_next_request(r)))
    n++;
  assert_int_equal(n, 4);
  kube_ops ops = fx_ops(&F);
  /* answer in reverse order */
  for (size_t i = n; i-- > 0;) {
    kube_response resp = {0};
    ops.call(ops.ctx, q[i], &resp);
    assert_int_equal(koreo_run_answer(r, q[i]->id, &resp), 0);
  }
  koreo_run_sync(r, &ops);
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_RETRY);
  assert_int_equal(res->outcome.delay, 5);
  assert_int_equal(step(res, "three")->kind, KOREO_DEPSKIP);
  fx_assert_contains(step(res, "one")->message, "Creating ConfigMap:ns:one.");
  const kv *ids = kv_map_get_str(res->resource_ids, "resources");
  assert_string_equal(kv_str(kv_map_get_str(res->resource_ids, "workflow")), "resources");
  assert_string_equal(kv_str(kv_map_get_str(kv_map_get_str(ids, "one"), "name")), "one");
  assert_int_equal(kv_len(kv_map_get_str(ids, "many")), 2);
  assert_int_equal(kv_map_get_str(ids, "three")->kind, KV_NULL);
  koreo_run_free(r);

  /* second loop: one/two/many exist; three gets created */
  r = koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, NULL);
  koreo_run_sync(r, &ops);
  res = koreo_run_workflow_result(r);
  fx_assert_json(step(res, "one")->value, "{\"name\":\"one\"}");
  fx_assert_json(step(res, "many")->value, "[{\"name\":\"x\"},{\"name\":\"y\"}]");
  fx_assert_contains(step(res, "three")->message, "Creating ConfigMap:ns:one-three.");
  koreo_run_free(r);
  /* third loop: converged */
  r = koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, NULL);
  koreo_run_sync(r, &ops);
  res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_OK);
  assert_int_equal(kv_len(res->outcome.value), 5);
  koreo_run_free(r);
  kv_unref(p);
}

/* The control plane's mode: ResourceFunction steps are yielded as applies
 * (with step label, forEach index, location) and answered with the outcome
 * an agent computed; the Workflow result is the same as a local run's. */
static void answer_applies(koreo_run *r, kube_memcluster *mc, size_t *seen, kv *labels) {
  const koreo_apply *a;
  const koreo_apply *got[16];
  size_t n = 0;
  while ((a = koreo_run_next_apply(r)))
    got[n++] = a;
  koreo_eval_ctx local = {.registry = F.reg};
  kube_ops ops = kube_memcluster_ops(mc);
  for (size_t i = n; i-- > 0;) { /* answer in reverse order */
    a = got[i];
    char lab[64];
    if (a->in_for_each)
      snprintf(lab, sizeof lab, "%s/%s#%u", a->workflow, a->step_label, a->for_each_index);
    else
      snprintf(lab, sizeof lab, "%s/%s", a->workflow, a->step_label);
    kv_list_push(labels, kv_cstring(lab));
    koreo_run *rf = koreo_run_resource_function(&local, a->rf, a->inputs, NULL, a->location);
    koreo_run_sync(rf, &ops);
    koreo_outcome o = koreo_outcome_copy(koreo_run_outcome(rf));
    const kv *id = koreo_run_resource_id(rf);
    uint64_t aid = a->id;
    assert_int_equal(koreo_run_answer_apply(r, aid, &o, id ? kv_ref((kv *)id) : NULL), 0);
    koreo_run_free(rf);
    /* a second answer for the same id is refused */
    koreo_outcome again = koreo_outcome_ok(kv_null(), NULL);
    assert_int_equal(koreo_run_answer_apply(r, aid, &again, NULL), -1);
  }
  *seen += n;
}

static void test_remote_steps(void **s) {
  (void)s;
  kv *p = fx_json("{}");
  kube_memcluster *remote_mc = kube_memcluster_new(), *local_mc = kube_memcluster_new();
  koreo_eval_ctx remote = {.registry = F.reg, .remote_resource_functions = true};
  kube_ops ops = kube_memcluster_ops(local_mc);
  for (int loop = 0; loop < 3; loop++) {
    koreo_run *lr =
        koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, "top-key");
    koreo_run_sync(lr, &ops);
    koreo_run *rr =
        koreo_run_workflow(&remote, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, "top-key");
    size_t seen = 0;
    kv *labels = kv_list_new(8);
    while (!koreo_run_advance(rr)) {
      assert_null(koreo_run_next_request(rr)); /* nothing reconciled here */
      size_t before = seen;
      answer_applies(rr, remote_mc, &seen, labels);
      assert_true(seen > before);
    }
    if (loop == 0) {
      /* one, two and both forEach items at once (answered in reverse order);
       * three waits on one, which is still being created (Retry): DepSkip */
      char *j = kv_json_write(labels, 0, NULL);
      assert_string_equal(j, "[\"top-key/many#1\",\"top-key/many#0\",\"top-key/two\","
                             "\"top-key/one\"]");
      free(j);
    }
    kv_unref(labels);
    const koreo_workflow_result *a = koreo_run_workflow_result(lr),
                                *b = koreo_run_workflow_result(rr);
    assert_int_equal(a->outcome.kind, b->outcome.kind);
    assert_int_equal(a->outcome.delay, b->outcome.delay);
    assert_string_equal(a->outcome.message ? a->outcome.message : "",
                        b->outcome.message ? b->outcome.message : "");
    assert_true(kv_equal_strict(a->conditions, b->conditions, false));
    assert_true(kv_equal_strict(a->state, b->state, false));
    assert_true(kv_equal_strict(a->resource_ids, b->resource_ids, false));
    assert_int_equal(a->n_steps, b->n_steps);
    for (size_t i = 0; i < a->n_steps; i++) {
      assert_int_equal(a->steps[i].outcome.kind, b->steps[i].outcome.kind);
      if (a->steps[i].outcome.value)
        assert_true(kv_equal_strict(a->steps[i].outcome.value, b->steps[i].outcome.value, false));
    }
    assert_int_equal(loop == 2 ? KOREO_OK : KOREO_RETRY, b->outcome.kind);
    koreo_run_free(lr);
    koreo_run_free(rr);
  }
  /* the host's deadline with applies in flight: Timeout Retry, nothing pending */
  koreo_run *rr =
      koreo_run_workflow(&remote, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, NULL);
  assert_false(koreo_run_advance(rr));
  assert_int_equal(koreo_run_pending(rr), 4);
  const koreo_apply *a = koreo_run_next_apply(rr);
  assert_non_null(a);
  koreo_run_cancel(rr);
  assert_int_equal(koreo_run_pending(rr), 0);
  const koreo_workflow_result *res = koreo_run_workflow_result(rr);
  assert_int_equal(res->outcome.kind, KOREO_RETRY);
  fx_assert_contains(step(res, "one")->message, "Timeout running step (one)");
  koreo_outcome late = koreo_outcome_ok(kv_null(), NULL);
  assert_int_equal(koreo_run_answer_apply(rr, 1, &late, NULL), -1);
  koreo_run_free(rr);
  kube_memcluster_free(remote_mc);
  kube_memcluster_free(local_mc);
  kv_unref(p);
}

/* the host's deadline: unfinished steps become Timeout Retry 30 */
static void test_cancel(void **s) {
  (void)s;
  kv *p = fx_json("{}");
  koreo_run *r = koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, NULL);
  assert_false(koreo_run_advance(r));
  const kube_request *q = koreo_run_next_request(r);
  kube_ops ops = fx_ops(&F);
  kube_response resp = {0};
  ops.call(ops.ctx, q, &resp);
  koreo_run_answer(r, q->id, &resp);
  koreo_run_advance(r);
  koreo_run_cancel(r);
  assert_true(koreo_run_done(r));
  assert_int_equal(koreo_run_pending(r), 0);
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  const koreo_outcome *o = step(res, "two");
  assert_int_equal(o->kind, KOREO_RETRY);
  assert_int_equal(o->delay, 30);
  assert_string_equal(o->message, "Timeout running step (two), will retry.");
  /* the sub-workflow of ValueFunctions had already finished */
  assert_int_equal(step(res, "nested")->kind, KOREO_OK);
  assert_int_equal(res->outcome.kind, KOREO_RETRY);
  koreo_run_free(r);
  kv_unref(p);
}

/* a failing PATCH is an unexpected error: that step is Retry 60 and the
 * unfinished siblings are cancelled */
static void test_raise_cancels_siblings(void **s) {
  (void)s;
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"one\","
              "\"namespace\":\"ns\"},\"data\":{\"v\":\"old\"}}");
  kv *p = fx_json("{}");
  koreo_run *r = koreo_run_workflow(&F.ctx, fx_def(&F, KDEF_WORKFLOW, "resources"), p, NULL, NULL);
  assert_false(koreo_run_advance(r));
  kube_ops ops = fx_ops(&F);
  const kube_request *q = koreo_run_next_request(r); /* one's GET */
  assert_string_equal(q->name, "one");
  kube_response resp = {0};
  ops.call(ops.ctx, q, &resp);
  koreo_run_answer(r, q->id, &resp);
  assert_false(koreo_run_advance(r));
  const kube_request *w = NULL, *x;
  while ((x = koreo_run_next_request(r)))
    if (x->verb == KUBE_PATCH) w = x;
  assert_non_null(w);
  memset(&resp, 0, sizeof resp);
  resp.status = KUBE_STATUS_SERVER_ERROR;
  resp.http_code = 500;
  snprintf(resp.message, sizeof resp.message, "boom");
  koreo_run_answer(r, w->id, &resp);
  assert_true(koreo_run_advance(r));
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  const koreo_outcome *o = step(res, "one");
  assert_int_equal(o->kind, KOREO_RETRY);
  assert_int_equal(o->delay, 60);
  fx_assert_contains(o->message, "Unknown error (");
  fx_assert_contains(o->message, "running Step (one), will retry.");
  assert_string_equal(step(res, "two")->message, "Timeout running step (two), will retry.");
  koreo_run_free(r);
  kv_unref(p);
}

/* a Workflow whose steps are not ready fails when run, with a Ready
 * condition; a missing function is Retry(15) at prepare */
static void test_not_ready(void **s) {
  (void)s;
  const char *y = "apiVersion: koreo.dev/v1beta1\n"
                  "kind: Workflow\n"
                  "metadata: {name: broken}\n"
                  "spec:\n"
                  "  steps:\n"
                  "  - label: missing\n"
                  "    ref: {kind: ValueFunction, name: not-there}\n";
  kdef_diags d = {0};
  kdef_load_text(F.reg, y, strlen(y), "broken.yaml", &d);
  kdef_diags_free(&d);
  koreo_run *r = run_wf("broken", "{}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  assert_int_equal(res->outcome.kind, KOREO_RETRY);
  assert_int_equal(res->outcome.delay, 15);
  fx_assert_contains(res->outcome.message, "not-there");
  assert_int_equal(kv_len(res->conditions), 1);
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(res->conditions, 0), "reason")), "Wait");
  assert_int_equal(res->n_steps, 0);
  fx_assert_json(res->state, "{}");
  koreo_run_free(r);
}

/* the host's status patch (spec 6.11) */
static void test_status_patch(void **s) {
  (void)s;
  koreo_run *r = run_wf("chain", "{\"spec\":{\"first\":\"retry7\",\"second\":\"go\","
                                 "\"third\":\"go\"}}");
  const koreo_workflow_result *res = koreo_run_workflow_result(r);
  kv *trigger = fx_json("{\"metadata\":{\"name\":\"t\",\"annotations\":{"
                        "\"koreo.dev/merge-conditions\":\"true\"}},\"status\":{\"conditions\":["
                        "{\"type\":\"Other\",\"status\":\"True\"}]}}");
  kv *patch = koreo_status_patch(trigger, res, "NOW");
  const kv *st = kv_map_get_str(patch, "status");
  assert_int_equal(kv_len(kv_map_get_str(st, "conditions")), 4); /* Other + 2 steps + Ready */
  const kv *k = kv_map_get_str(st, "koreo");
  assert_string_equal(kv_str(kv_map_get_str(k, "errors")), "seven");
  assert_non_null(kv_map_get_str(kv_map_get_str(k, "state_errors"), "third"));
  const kv *ann = kv_map_get_str(kv_map_get_str(patch, "metadata"), "annotations");
  fx_assert_contains(kv_str(kv_map_get_str(ann, KOREO_MANAGED_RESOURCES_ANNOTATION)),
                     "\"workflow\":\"chain\"");
  kv_unref(patch);
  kv_unref(trigger);
  koreo_run_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reconcile),
      cmocka_unit_test(test_nested),
      cmocka_unit_test(test_state_and_conditions),
      cmocka_unit_test(test_state_scope),
      cmocka_unit_test(test_depskip_messages),
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_steps_visibility),
      cmocka_unit_test(test_skips),
      cmocka_unit_test(test_ref_switch),
      cmocka_unit_test(test_for_each),
      cmocka_unit_test(test_resources_async),
      cmocka_unit_test(test_remote_steps),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_raise_cancels_siblings),
      cmocka_unit_test(test_not_ready),
      cmocka_unit_test(test_status_patch),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
