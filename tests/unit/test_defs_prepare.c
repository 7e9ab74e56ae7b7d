/*
 * tests/unit/test_defs_prepare.c: prepare of the five kinds (spec 1.1-1.5,
 * 6.1, 7.1) and member-path extraction (spec 2.9): what a user sees when a
 * definition is right (the prepared fields the evaluators use) and when it
 * is wrong (the PermFail / Retry / DepSkip stored, with upstream's texts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "defs_test_util.h"
#include "koreo/definition.h"

#include <cmocka.h>

#define HDR(kind, name)                                                                            \
  "apiVersion: koreo.dev/v1beta1\nkind: " kind "\nmetadata:\n  name: " name "\n"

/* Load `yaml` and return the definition kind/name (a reference the caller
 * drops with release()). */
static kdef_registry *R;
static kdef_definition *get(const char *yaml, kdef_kind kind, const char *name) {
  R = load_yaml(yaml, NULL);
  kdef_definition *d = kdef_registry_lookup(R, kind, name);
  if (!d) {
    print_error("%s %s not loaded\n", kdef_kind_name(kind), name);
    fail();
  }
  return kdef_ref(d);
}
static void release(kdef_definition *d) {
  kdef_unref(d);
  kdef_registry_free(R);
  R = NULL;
}

static void expect_permfail(const char *yaml, kdef_kind kind, const char *name,
                            const char *needle) {
  kdef_definition *d = get(yaml, kind, name);
  if (d->status.kind != KDEF_O_PERMFAIL || !contains(d->status.message, needle)) {
    char *t = kdef_outcome_text(&d->status);
    print_error("expected PermFail with '%s', got %s\n", needle, t);
    free(t);
    release(d);
    fail();
  }
  release(d);
}

static kv *eval(const koreo_expr *e, const char *bindings_json) {
  kv_parse_error perr;
  kv *b = bindings_json ? kv_json_parse(bindings_json, strlen(bindings_json), &perr) : NULL;
  koreo_error err;
  kv *r = koreo_expr_eval(e, b, &err);
  if (!r) print_error("eval: %s\n", err.message);
  kv_unref(b);
  return r;
}

static void assert_json(const kv *v, const char *json) {
  char *s = kv_json_write(v, 0, NULL);
  if (strcmp(s, json) != 0) {
    print_error("expected %s\nactual   %s\n", json, s);
    free(s);
    fail();
  }
  free(s);
}

/* ---- ValueFunction ----------------------------------------------------- */

static void test_vf_full_spec(void **state) {
  (void)state;
  kdef_definition *d = get(HDR("ValueFunction", "f.v1") "spec:\n"
                                                        "  preconditions:\n"
                                                        "  - assert: =inputs.port > 0\n"
                                                        "    permFail: {message: bad port}\n"
                                                        "  locals:\n"
                                                        "    base: =inputs.port * 10\n"
                                                        "    list: [a, null, =inputs.port]\n"
                                                        "  return:\n"
                                                        "    upper: =locals.base + 1\n"
                                                        "    nested: {k: =inputs.name}\n",
                           KDEF_VALUE_FUNCTION, "f.v1");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  const kdef_value_function *vf = &d->u.vf;
  assert_non_null(vf->preconditions);
  assert_int_equal(koreo_expr_shape(vf->preconditions), KOREO_SHAPE_PREDICATES);
  assert_int_equal(koreo_expr_shape(vf->locals), KOREO_SHAPE_MAP);
  assert_int_equal(koreo_expr_shape(vf->ret), KOREO_SHAPE_OVERLAY);
  kv *locals = eval(vf->locals, "{\"inputs\": {\"port\": 8}}");
  assert_json(locals, "{\"base\":80,\"list\":[\"a\",null,8]}");
  kv *b = kv_map_new(2);
  kv_parse_error perr;
  kv_map_set_str(b, "inputs", kv_json_parse("{\"name\":\"n\"}", 12, &perr));
  kv_map_set_str(b, "locals", locals);
  koreo_error err;
  kv *ret = koreo_expr_eval_overlay(vf->ret, NULL, b, &err);
  assert_non_null(ret);
  assert_json(ret, "{\"upper\":81,\"nested\":{\"k\":\"n\"}}");
  kv_unref(ret);
  kv_unref(b);
  assert_json(vf->input_names, "[\"name\",\"port\"]");
  assert_json(vf->member_paths, "[\"inputs.name\",\"inputs.port\",\"locals.base\","
                                "\"predicate.assert\"]");
  release(d);
}

static void test_vf_bad_specs(void **state) {
  (void)state;
  expect_permfail(HDR("ValueFunction", "f") "spec: {}\n", KDEF_VALUE_FUNCTION, "f",
                  "spec cannot be validated by any definition");
  expect_permfail(HDR("ValueFunction", "f"), KDEF_VALUE_FUNCTION, "f", "spec must be object");
  expect_permfail(HDR("ValueFunction", "f") "spec: text\n", KDEF_VALUE_FUNCTION, "f",
                  "spec must be object");
  expect_permfail(HDR("ValueFunction", "f") "spec: [1]\n", KDEF_VALUE_FUNCTION, "f",
                  "spec must be object");
  expect_permfail(HDR("ValueFunction", "f") "spec: 3\n", KDEF_VALUE_FUNCTION, "f",
                  "spec must be object");
  expect_permfail(HDR("ValueFunction", "f") "spec: true\n", KDEF_VALUE_FUNCTION, "f",
                  "spec must be object");
  /* locals-only specs and non-map locals */
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  locals: {a: 1}\n", KDEF_VALUE_FUNCTION, "f",
                  "cannot be validated");
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  locals: [1]\n  return: {a: 1}\n",
                  KDEF_VALUE_FUNCTION, "f", "spec.locals must be object");
  /* preconditions: null and non-list rejected, a predicate needs assert */
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  preconditions: null\n  return: {a: 1}\n",
                  KDEF_VALUE_FUNCTION, "f", "spec.preconditions must be array");
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  preconditions: {a: 1}\n  return: {a: 1}\n",
                  KDEF_VALUE_FUNCTION, "f", "spec.preconditions must be array");
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  preconditions:\n  - skip: {message: m}\n",
                  KDEF_VALUE_FUNCTION, "f", "must contain ['assert'] properties");
  /* return: null rejected, non-map rejected, parse errors */
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  return: null\n", KDEF_VALUE_FUNCTION, "f",
                  "spec.return must be object");
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  return: [1]\n", KDEF_VALUE_FUNCTION, "f",
                  "spec.return must be object");
  expect_permfail(HDR("ValueFunction", "f") "spec:\n  return: {a: =1 +}\n", KDEF_VALUE_FUNCTION,
                  "f", "Parsing error");
}

static void test_vf_parse_error_location(void **state) {
  (void)state;
  kdef_definition *d =
      get(HDR("ValueFunction", "f") "spec:\n  preconditions:\n  - assert: =inputs.a >\n"
                                    "    skip: {message: m}\n",
          KDEF_VALUE_FUNCTION, "f");
  assert_int_equal(d->status.kind, KDEF_O_PERMFAIL);
  assert_string_equal(d->status.location, "prepare:ValueFunction:f:spec.preconditions");
  assert_string_equal(d->status.path, "spec.preconditions[0].assert");
  assert_int_equal(d->status.pos.line, 7);
  assert_int_equal(d->status.pos.col, 13);
  release(d);
}

static void test_vf_empty_forms(void **state) {
  (void)state;
  /* preconditions: [] means none; return: {} means no return */
  kdef_definition *d = get(HDR("ValueFunction", "f") "spec:\n  preconditions: []\n  return: {}\n",
                           KDEF_VALUE_FUNCTION, "f");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  assert_null(d->u.vf.preconditions);
  assert_null(d->u.vf.ret);
  assert_null(d->u.vf.locals);
  assert_int_equal(kv_len(d->u.vf.member_paths), 0);
  release(d);
}

/* ---- ResourceTemplate ---------------------------------------------------- */

static void test_rt(void **state) {
  (void)state;
  expect_permfail(HDR("ResourceTemplate", "t") "spec: {}\n", KDEF_RESOURCE_TEMPLATE, "t",
                  "spec must contain");
  expect_permfail(HDR("ResourceTemplate", "t") "spec:\n  context: {a: 1}\n", KDEF_RESOURCE_TEMPLATE,
                  "t", "must contain");
  expect_permfail(HDR("ResourceTemplate", "t") "spec:\n  template: abc\n", KDEF_RESOURCE_TEMPLATE,
                  "t", "spec.template must be object");
  expect_permfail(HDR("ResourceTemplate", "t") "spec:\n  template: {kind: X}\n",
                  KDEF_RESOURCE_TEMPLATE, "t", "`apiVersion` and `kind` must be set");
  expect_permfail(HDR("ResourceTemplate", "t") "spec:\n  template: {}\n", KDEF_RESOURCE_TEMPLATE,
                  "t", "non-empty");
  expect_permfail(HDR("ResourceTemplate", "t") "spec:\n  template: {apiVersion: v1, kind: X}\n"
                                               "  context: [1]\n",
                  KDEF_RESOURCE_TEMPLATE, "t", "must be object");
  kdef_definition *d =
      get(HDR("ResourceTemplate", "t") "spec:\n  template:\n    apiVersion: v1\n    kind: X\n"
                                       "    spec: {flag: true, expr: =1+1, port: \"8080\"}\n",
          KDEF_RESOURCE_TEMPLATE, "t");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  /* static: no expression processing, no numeric-string conversion */
  assert_json(d->u.rt.template_, "{\"apiVersion\":\"v1\",\"kind\":\"X\",\"spec\":{\"flag\":true,"
                                 "\"expr\":\"=1+1\",\"port\":\"8080\"}}");
  assert_null(d->u.rt.context);
  release(d);
}

/* ---- ResourceFunction ------------------------------------------------------ */

#define RF_API                                                                                     \
  "  apiConfig:\n    apiVersion: example.com/v1\n    kind: Bucket\n    name: =inputs.name\n"       \
  "    namespace: =inputs.ns\n"

static void test_rf_fields(void **state) {
  (void)state;
  kdef_definition *d = get(HDR("ResourceFunction", "b") "spec:\n" RF_API "    plural: buckets\n"
                                                        "    owned: false\n"
                                                        "  resource:\n"
                                                        "    spec: {size: =inputs.size}\n"
                                                        "  create: {delay: 10, overlay: "
                                                        "{spec: {createdBy: koreo}}}\n"
                                                        "  update: {recreate: {delay: 15}}\n"
                                                        "  postconditions:\n"
                                                        "  - assert: =resource.status.ready\n"
                                                        "    retry: {message: wait, delay: 5}\n"
                                                        "  return:\n"
                                                        "    ref: =resource.self_ref()\n",
                           KDEF_RESOURCE_FUNCTION, "b");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  const kdef_resource_function *rf = &d->u.rf;
  assert_string_equal(rf->api.api_version, "example.com/v1");
  assert_string_equal(rf->api.kind, "Bucket");
  assert_string_equal(rf->api.plural, "buckets");
  assert_true(rf->api.namespaced);
  assert_false(rf->api.owned);
  assert_false(rf->api.readonly);
  assert_false(rf->api.delete_if_exists);
  assert_true(rf->api.has_namespace);
  kv *nn = eval(rf->api.name_ns, "{\"inputs\": {\"name\": \"a\", \"ns\": \"n\"}, \"locals\": {}}");
  assert_json(nn, "{\"name\":\"a\",\"namespace\":\"n\"}");
  kv_unref(nn);
  assert_false(rf->uses_template);
  assert_non_null(rf->resource);
  assert_true(rf->create_enabled);
  assert_int_equal(rf->create_delay, 10);
  assert_non_null(rf->create_overlay);
  assert_int_equal(rf->update, KDEF_UPDATE_RECREATE);
  assert_int_equal(rf->update_delay, 15);
  assert_non_null(rf->postconditions);
  assert_non_null(rf->ret);
  assert_int_equal(rf->n_overlays, 0);
  assert_int_equal(rf->overlays_status.kind, KDEF_O_OK);
  assert_json(rf->member_paths, "[\"inputs.name\",\"inputs.ns\",\"inputs.size\","
                                "\"predicate.assert\",\"resource.self_ref\",\"resource.status\","
                                "\"resource.status.ready\"]");
  release(d);

  /* defaults: create enabled/30, update patch/30; never */
  d = get(HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n  update: {never: {}}\n",
          KDEF_RESOURCE_FUNCTION, "b");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  assert_true(d->u.rf.create_enabled);
  assert_int_equal(d->u.rf.create_delay, 30);
  assert_int_equal(d->u.rf.update, KDEF_UPDATE_NEVER);
  assert_null(d->u.rf.resource); /* resource: {} -> target starts empty */
  release(d);
  d = get(HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n", KDEF_RESOURCE_FUNCTION,
          "b");
  assert_int_equal(d->u.rf.update, KDEF_UPDATE_PATCH);
  assert_int_equal(d->u.rf.update_delay, 30);
  assert_null(d->u.rf.ret);
  release(d);
}

static void test_rf_api_rules(void **state) {
  (void)state;
  expect_permfail(HDR("ResourceFunction", "b") "spec:\n  apiConfig: {apiVersion: v1, kind: X, "
                                               "name: n}\n  resource: {}\n",
                  KDEF_RESOURCE_FUNCTION, "b",
                  "`namespace` is required when `spec.apiConfig.namespaced` is `true`");
  /* cluster-scoped: no namespace needed; the name map has no namespace key */
  kdef_definition *d = get(HDR("ResourceFunction", "b") "spec:\n  apiConfig: {apiVersion: v1, "
                                                        "kind: X, name: n, namespaced: false}\n"
                                                        "  resource: {}\n",
                           KDEF_RESOURCE_FUNCTION, "b");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  assert_false(d->u.rf.api.has_namespace);
  kv *nn = eval(d->u.rf.api.name_ns, NULL);
  assert_json(nn, "{\"name\":\"n\"}");
  kv_unref(nn);
  release(d);
  expect_permfail(HDR("ResourceFunction", "b") "spec:\n" RF_API "  resourceTemplateRef: {name: "
                                               "\"\"}\n",
                  KDEF_RESOURCE_FUNCTION, "b", "`name` is required in `spec.resourceTemplateRef`");
  expect_permfail(HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n  return: [1]\n",
                  KDEF_RESOURCE_FUNCTION, "b", "spec.return must be object");
  d = get(HDR("ResourceFunction", "b") "spec:\n" RF_API
                                       "  resourceTemplateRef: {name: =inputs.tpl}\n",
          KDEF_RESOURCE_FUNCTION, "b");
  assert_true(d->u.rf.uses_template);
  kv *tn = eval(d->u.rf.template_name, "{\"inputs\": {\"tpl\": \"t.v1\"}}");
  assert_json(tn, "\"t.v1\"");
  kv_unref(tn);
  release(d);
}

/* Overlays are prepared leniently: a bad entry does not fail the function,
 * its outcome is stored (spec 1.2). */
static void test_rf_overlays(void **state) {
  (void)state;
  const char *vf = HDR("ValueFunction", "labels.v1") "spec:\n  return:\n"
                                                     "    metadata: {labels: =inputs.labels}\n"
                                                     "    team: =inputs.team\n---\n";
  char yaml[4096];
  snprintf(yaml, sizeof yaml,
           "%s" HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n"
                                             "  overlays:\n"
                                             "  - skipIf: =!has(inputs.labels)\n"
                                             "    overlay: {metadata: {labels: =inputs.labels}}\n"
                                             "  - overlayRef: {kind: ValueFunction, name: "
                                             "labels.v1}\n"
                                             "    inputs: {labels: =inputs.l, team: x}\n",
           vf);
  kdef_definition *d = get(yaml, KDEF_RESOURCE_FUNCTION, "b");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  const kdef_resource_function *rf = &d->u.rf;
  assert_int_equal(rf->n_overlays, 2);
  assert_int_equal(rf->overlays_status.kind, KDEF_O_OK);
  assert_non_null(rf->overlays[0].skip_if);
  assert_false(rf->overlays[0].is_ref);
  assert_int_equal(koreo_expr_shape(rf->overlays[0].overlay), KOREO_SHAPE_OVERLAY);
  assert_true(rf->overlays[1].is_ref);
  assert_string_equal(rf->overlays[1].vf_name, "labels.v1");
  assert_non_null(rf->overlays[1].vf);
  assert_ptr_equal(rf->overlays[1].vf, kdef_registry_lookup(R, KDEF_VALUE_FUNCTION, "labels.v1"));
  release(d);

  /* missing inputs the ValueFunction reads; an empty inline overlay; a
   * missing ValueFunction (Retry 60) -- combined: PermFail wins */
  snprintf(yaml, sizeof yaml,
           "%s" HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n"
                                             "  overlays:\n"
                                             "  - overlayRef: {kind: ValueFunction, name: "
                                             "labels.v1}\n"
                                             "    inputs: {labels: =inputs.l}\n"
                                             "  - overlayRef: {kind: ValueFunction, name: "
                                             "gone.v1}\n"
                                             "  - overlay: {}\n",
           vf);
  d = get(yaml, KDEF_RESOURCE_FUNCTION, "b");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  rf = &d->u.rf;
  assert_int_equal(rf->overlays[0].status.kind, KDEF_O_PERMFAIL);
  assert_string_equal(rf->overlays[0].status.message,
                      "labels.v1 expected the following inputs \"team\".");
  assert_int_equal(rf->overlays[1].status.kind, KDEF_O_RETRY);
  assert_int_equal(rf->overlays[1].status.delay, 60);
  assert_string_equal(rf->overlays[1].status.message, "ValueFunction:gone.v1 not ready (None)");
  assert_int_equal(rf->overlays[2].status.kind, KDEF_O_PERMFAIL);
  assert_true(contains(rf->overlays[2].status.message, "Empty inline overlay"));
  assert_int_equal(rf->overlays_status.kind, KDEF_O_PERMFAIL);
  assert_true(contains(rf->overlays_status.message, "expected the following inputs"));
  assert_true(contains(rf->overlays_status.message, "Empty inline overlay"));
  release(d);

  /* only a missing ValueFunction: the stored outcome is a Retry */
  d = get(HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n  overlays:\n"
                                       "  - overlayRef: {kind: ValueFunction, name: gone.v1}\n",
          KDEF_RESOURCE_FUNCTION, "b");
  assert_int_equal(d->u.rf.overlays_status.kind, KDEF_O_RETRY);
  assert_int_equal(d->u.rf.overlays_status.delay, 60);
  release(d);

  /* overlay together with inputs */
  d = get(HDR("ResourceFunction", "b") "spec:\n" RF_API "  resource: {}\n  overlays:\n"
                                       "  - overlay: {a: 1}\n    inputs: {b: 2}\n",
          KDEF_RESOURCE_FUNCTION, "b");
  assert_string_equal(d->u.rf.overlays[0].status.message, "may not specify `inputs` with overlay");
  release(d);
}

/* ---- Workflow --------------------------------------------------------------- */

#define VF_A                                                                                       \
  HDR("ValueFunction", "a.v1")                                                                     \
  "spec:\n  return: {x: =inputs.x}\n---\n" HDR("ResourceFunction", "r.v1") "spec:\n" RF_API        \
                                                                           "  resource: {}\n---\n"

static void test_wf_steps(void **state) {
  (void)state;
  kdef_definition *d =
      get(VF_A HDR("Workflow", "w") "spec:\n"
                                    "  crdRef: {apiGroup: example.com, version: v1, kind: App}\n"
                                    "  steps:\n"
                                    "  - label: config\n"
                                    "    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "    inputs: {x: =parent.spec.x}\n"
                                    "  - label: bucket\n"
                                    "    ref: {kind: ResourceFunction, name: r.v1}\n"
                                    "    skipIf: =!steps.config.x\n"
                                    "    inputs:\n"
                                    "      name: =steps['config'].name\n"
                                    "    condition: {type: BucketReady, name: Storage bucket}\n"
                                    "    state: {bucket: =value.ref}\n"
                                    "  - label: each\n"
                                    "    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "    forEach: {itemIn: =steps.bucket.list, inputKey: x}\n"
                                    "    inputs: {c: =steps.config.x + parent.metadata.name}\n",
          KDEF_WORKFLOW, "w");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  const kdef_workflow *wf = &d->u.wf;
  assert_int_equal(wf->steps_ready.kind, KDEF_O_OK);
  assert_true(wf->has_crd_ref);
  assert_string_equal(wf->crd_kind, "App");
  assert_int_equal(wf->n_steps, 3);
  const kdef_step *s0 = &wf->steps[0], *s1 = &wf->steps[1], *s2 = &wf->steps[2];
  assert_string_equal(s0->label, "config");
  assert_int_equal(s0->n_deps, 0);
  assert_int_equal(s0->ref.kind, KDEF_VALUE_FUNCTION);
  assert_ptr_equal(s0->ref.def, kdef_registry_lookup(R, KDEF_VALUE_FUNCTION, "a.v1"));
  assert_int_equal(s1->n_deps, 1);
  assert_string_equal(s1->dep_labels[0], "config");
  assert_int_equal(s1->dep_index[0], 0);
  assert_non_null(s1->skip_if);
  assert_true(s1->has_condition);
  assert_string_equal(s1->condition_type, "BucketReady");
  assert_string_equal(s1->condition_name, "Storage bucket");
  assert_non_null(s1->state);
  assert_ptr_equal(s1->ref.def, kdef_registry_lookup(R, KDEF_RESOURCE_FUNCTION, "r.v1"));
  assert_true(s2->has_for_each);
  assert_string_equal(s2->for_each_input_key, "x");
  assert_int_equal(s2->n_deps, 2); /* sorted by step index */
  assert_string_equal(s2->dep_labels[0], "config");
  assert_string_equal(s2->dep_labels[1], "bucket");
  assert_int_equal(s2->dep_index[1], 1);
  assert_json(wf->parent_keys, "[\"metadata\",\"metadata.name\",\"spec\",\"spec.x\"]");
  release(d);
}

static void test_wf_prepare_errors(void **state) {
  (void)state;
  kdef_definition *d =
      get(VF_A HDR("Workflow", "w") "spec:\n  steps:\n"
                                    "  - label: one\n    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "  - label: one\n    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "  - label: two\n    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "    inputs: {x: =steps.three.x + steps.four.y}\n"
                                    "  - label: three\n    ref: {kind: ValueFunction, name: "
                                    "missing.v1}\n"
                                    "  - label: four\n    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "    inputs: {x: =steps.three.x}\n",
          KDEF_WORKFLOW, "w");
  /* the Workflow itself is cached (status Ok) but its steps are not ready */
  assert_int_equal(d->status.kind, KDEF_O_OK);
  const kdef_workflow *wf = &d->u.wf;
  assert_int_equal(wf->n_steps, 5);
  assert_int_equal(wf->steps[0].error.kind, KDEF_O_OK);
  assert_int_equal(wf->steps[1].error.kind, KDEF_O_PERMFAIL);
  assert_string_equal(wf->steps[1].error.message,
                      "Duplicate step-label (one) can not prepare Workflow.");
  assert_int_equal(wf->steps[2].error.kind, KDEF_O_PERMFAIL);
  assert_string_equal(wf->steps[2].error.message, "Step 'two', must come after four, three.");
  assert_int_equal(wf->steps[3].error.kind, KDEF_O_RETRY);
  assert_int_equal(wf->steps[3].error.delay, 15);
  assert_string_equal(wf->steps[3].error.message,
                      "'ValueFunction:missing.v1' not cached; will retry.");
  /* a label counts as known once an earlier step carried it, even an
   * erroneous one */
  assert_int_equal(wf->steps[4].error.kind, KDEF_O_OK);
  assert_int_equal(wf->steps[4].dep_index[0], 3);
  /* combined: PermFail beats Retry, messages joined */
  assert_int_equal(wf->steps_ready.kind, KDEF_O_PERMFAIL);
  assert_true(contains(wf->steps_ready.message, "Duplicate step-label"));
  assert_true(contains(wf->steps_ready.message, "must come after"));
  release(d);

  /* a failed dependency: Retry 180 */
  d = get(
      HDR("ValueFunction", "bad.v1") "spec: {}\n---\n" HDR(
          "Workflow",
          "w") "spec:\n  steps:\n  - label: one\n    ref: {kind: ValueFunction, name: bad.v1}\n",
      KDEF_WORKFLOW, "w");
  assert_int_equal(d->u.wf.steps_ready.kind, KDEF_O_RETRY);
  assert_int_equal(d->u.wf.steps_ready.delay, 180);
  assert_true(contains(d->u.wf.steps_ready.message, "'ValueFunction:bad.v1' is not healthy ("));
  release(d);

  d = get(HDR("Workflow", "w") "spec:\n  steps: []\n", KDEF_WORKFLOW, "w");
  assert_int_equal(d->u.wf.steps_ready.kind, KDEF_O_PERMFAIL);
  assert_string_equal(d->u.wf.steps_ready.message,
                      "No steps specified Workflow at least one step in 'spec.steps' is "
                      "required.");
  assert_false(d->u.wf.has_crd_ref);
  release(d);
}

static void test_wf_ref_switch(void **state) {
  (void)state;
  kdef_definition *d =
      get(VF_A HDR("Workflow", "w") "spec:\n  steps:\n"
                                    "  - label: pick\n"
                                    "    refSwitch:\n"
                                    "      switchOn: =inputs.kind\n"
                                    "      cases:\n"
                                    "      - {case: small, kind: ValueFunction, name: a.v1}\n"
                                    "      - {case: large, default: true, kind: ResourceFunction, "
                                    "name: r.v1}\n"
                                    "      - {case: small, kind: ResourceFunction, name: r.v1}\n"
                                    "    inputs: {kind: =parent.spec.size}\n",
          KDEF_WORKFLOW, "w");
  const kdef_step *s = &d->u.wf.steps[0];
  assert_int_equal(s->error.kind, KDEF_O_OK);
  assert_true(s->is_switch);
  assert_non_null(s->switch_on);
  assert_int_equal(s->n_cases, 3);
  assert_int_equal(s->default_case, 1);
  kv *small = kv_cstring("small"), *other = kv_cstring("medium"), *one = kv_int(1);
  /* a later duplicate case wins; unknown values and ints go to the default */
  assert_ptr_equal(kdef_step_switch_case(s, small), &s->cases[2]);
  assert_ptr_equal(kdef_step_switch_case(s, other), &s->cases[1]);
  assert_ptr_equal(kdef_step_switch_case(s, one), &s->cases[1]);
  assert_int_equal(s->cases[1].logic.kind, KDEF_RESOURCE_FUNCTION);
  assert_non_null(s->cases[1].logic.def);
  kv_unref(small);
  kv_unref(other);
  kv_unref(one);
  release(d);

  d = get(VF_A HDR("Workflow", "w") "spec:\n  steps:\n"
                                    "  - label: pick\n"
                                    "    refSwitch:\n"
                                    "      switchOn: =inputs.kind\n"
                                    "      cases:\n"
                                    "      - {case: a, default: true, kind: ValueFunction, name: "
                                    "a.v1}\n"
                                    "      - {case: b, default: true, kind: ValueFunction, name: "
                                    "a.v1}\n",
          KDEF_WORKFLOW, "w");
  assert_int_equal(d->u.wf.steps[0].error.kind, KDEF_O_PERMFAIL);
  assert_true(contains(d->u.wf.steps[0].error.message, "Only one case"));
  release(d);
}

static void test_wf_for_each_errors(void **state) {
  (void)state;
  kdef_definition *d =
      get(VF_A HDR("Workflow", "w") "spec:\n  steps:\n"
                                    "  - label: each\n"
                                    "    ref: {kind: ValueFunction, name: a.v1}\n"
                                    "    forEach: {itemIn: \"=[1, \", inputKey: x}\n",
          KDEF_WORKFLOW, "w");
  assert_int_equal(d->u.wf.steps[0].error.kind, KDEF_O_PERMFAIL);
  assert_true(contains(d->u.wf.steps[0].error.message, "Error preparing `forEach.itemIn`"));
  release(d);
  /* forEach without inputKey is a schema error */
  expect_permfail(VF_A HDR("Workflow", "w") "spec:\n  steps:\n"
                                            "  - label: each\n"
                                            "    ref: {kind: ValueFunction, name: a.v1}\n"
                                            "    forEach: {itemIn: \"=[1]\"}\n",
                  KDEF_WORKFLOW, "w", "forEach must contain ['itemIn', 'inputKey'] properties");
}

/* ---- FunctionTest ------------------------------------------------------------ */

static void test_ft_prepare(void **state) {
  (void)state;
  kdef_definition *d = get(VF_A HDR("FunctionTest", "t") "spec:\n"
                                                         "  functionRef: {kind: ValueFunction, "
                                                         "name: a.v1}\n"
                                                         "  inputs: {x: 1}\n"
                                                         "  testCases:\n"
                                                         "  - expectReturn: {x: 1}\n"
                                                         "  - variant: true\n"
                                                         "    inputOverrides: {x: 2}\n"
                                                         "    expectReturn: {x: 2}\n"
                                                         "  - label: A Variant case\n"
                                                         "    variant: true\n"
                                                         "    skip: true\n"
                                                         "    expectOutcome:\n"
                                                         "      retry: {message: Wait, delay: 5}\n"
                                                         "  - label: named\n"
                                                         "    expectOutcome: {ok: {}}\n",
                           KDEF_FUNCTION_TEST, "t");
  assert_int_equal(d->status.kind, KDEF_O_OK);
  const kdef_function_test *ft = &d->u.ft;
  assert_int_equal(ft->function_status.kind, KDEF_O_OK);
  assert_ptr_equal(ft->function, kdef_registry_lookup(R, KDEF_VALUE_FUNCTION, "a.v1"));
  assert_json(ft->inputs, "{\"x\":1}");
  assert_int_equal(ft->n_cases, 4);
  assert_string_equal(ft->cases[0].label, "Test Case 1");
  assert_int_equal(ft->cases[0].expect, KDEF_EXPECT_RETURN);
  assert_string_equal(ft->cases[1].label, "[variant] Test Case 2");
  assert_json(ft->cases[1].input_overrides, "{\"x\":2}");
  assert_string_equal(ft->cases[2].label, "A Variant case");
  assert_true(ft->cases[2].skip);
  assert_int_equal(ft->cases[2].expect, KDEF_EXPECT_OUTCOME);
  assert_int_equal(ft->cases[2].expect_outcome, KDEF_O_RETRY);
  assert_string_equal(ft->cases[2].expect_message, "Wait");
  assert_int_equal(ft->cases[2].expect_delay, 5);
  assert_int_equal(ft->cases[3].expect_outcome, KDEF_O_OK);
  assert_string_equal(ft->cases[3].label, "named");
  release(d);
}

static void test_ft_missing_function(void **state) {
  (void)state;
  kdef_definition *d =
      get(HDR("FunctionTest", "t") "spec:\n  functionRef: {kind: ResourceFunction, "
                                   "name: nope.v1}\n  inputs: {}\n",
          KDEF_FUNCTION_TEST, "t");
  /* prepare succeeds; the function is a DepSkip */
  assert_int_equal(d->status.kind, KDEF_O_OK);
  assert_int_equal(d->u.ft.function_status.kind, KDEF_O_DEPSKIP);
  assert_string_equal(d->u.ft.function_status.message,
                      "ResourceFunction (nope.v1) not found or not ready, FunctionTest 't' must "
                      "wait.");
  assert_null(d->u.ft.function);
  assert_null(d->u.ft.inputs); /* {} means no inputs */
  assert_int_equal(d->u.ft.n_cases, 0);
  release(d);
  /* a cached failure is stored as the function's outcome */
  d = get(HDR("ValueFunction", "bad.v1") "spec: {}\n---\n" HDR(
              "FunctionTest", "t") "spec:\n  functionRef: {kind: ValueFunction, name: bad.v1}\n",
          KDEF_FUNCTION_TEST, "t");
  assert_int_equal(d->u.ft.function_status.kind, KDEF_O_PERMFAIL);
  assert_true(contains(d->u.ft.function_status.message, "cannot be validated"));
  release(d);
}

static void test_ft_case_errors(void **state) {
  (void)state;
  expect_permfail(VF_A HDR("FunctionTest", "t") "spec:\n  functionRef: {kind: ValueFunction, "
                                                "name: a.v1}\n  testCases:\n  - label: x\n",
                  KDEF_FUNCTION_TEST, "t",
                  "`spec.testCases[0]` must contain exactly one assertion (`expectResource`, "
                  "`expectReturn`, `expectOutcome`, or `expectDelete`).");
  expect_permfail(VF_A HDR("FunctionTest", "t") "spec:\n  functionRef: {kind: ValueFunction, "
                                                "name: a.v1}\n  testCases:\n  - expectReturn: {a: "
                                                "1}\n    expectDelete: true\n",
                  KDEF_FUNCTION_TEST, "t", "only allowed when testing a ResourceFunction");
  expect_permfail(VF_A HDR("FunctionTest", "t") "spec:\n  functionRef: {kind: ResourceFunction, "
                                                "name: r.v1}\n  testCases:\n  - expectReturn: {a: "
                                                "1}\n    expectDelete: true\n",
                  KDEF_FUNCTION_TEST, "t", "must contain exactly one assertion");
  expect_permfail(VF_A HDR("FunctionTest", "t") "spec:\n  functionRef: {kind: ResourceFunction, "
                                                "name: r.v1}\n  testCases:\n  - expectReturn: "
                                                "{}\n",
                  KDEF_FUNCTION_TEST, "t", "must be a non-empty object");
  kdef_definition *d = get(HDR("FunctionTest", "t") "spec: {}\n", KDEF_FUNCTION_TEST, "t");
  assert_int_equal(d->status.kind, KDEF_O_PERMFAIL);
  assert_string_equal(d->status.location, "t:spec");
  release(d);
}

/* ---- member paths (spec 2.9) ---------------------------------------------------- */

static kv *paths_of(const char *expr) {
  cel_env *env = cel_env_new_koreo();
  kv *spec = kv_cstring(expr);
  koreo_error err;
  koreo_expr *e = koreo_expr_prepare(env, spec, KOREO_SHAPE_EXPRESSION, NULL, &err);
  assert_non_null(e);
  kv *set = kv_map_new(4);
  kdef_member_paths(e, set);
  kv *keys = kv_list_new(kv_len(set));
  for (size_t i = 0; i < kv_len(set); i++)
    kv_list_push(keys, kv_ref(kv_map_key_at(set, i)));
  kv_unref(set);
  koreo_expr_free(e);
  kv_unref(spec);
  cel_env_free(env);
  return keys;
}

static void expect_paths(const char *expr, const char *json) {
  kv *p = paths_of(expr);
  /* compare as sets */
  kv_parse_error perr;
  kv *want = kv_json_parse(json, strlen(json), &perr);
  bool ok = kv_len(p) == kv_len(want);
  for (size_t i = 0; ok && i < kv_len(want); i++) {
    bool found = false;
    for (size_t j = 0; j < kv_len(p) && !found; j++)
      found = strcmp(kv_str(kv_list_at(want, i)), kv_str(kv_list_at(p, j))) == 0;
    ok = found;
  }
  if (!ok) {
    char *s = kv_json_write(p, 0, NULL);
    print_error("paths of %s: expected %s, got %s\n", expr, json, s);
    free(s);
  }
  kv_unref(p);
  kv_unref(want);
  assert_true(ok);
}

static void test_member_paths(void **state) {
  (void)state;
  expect_paths("=steps.nested2.two", "[\"steps.nested2\", \"steps.nested2.two\"]");
  expect_paths("=steps['nested2']['two']", "[\"steps.nested2\", \"steps.nested2.two\"]");
  expect_paths("=steps.nested2['two'].three",
               "[\"steps.nested2\", \"steps.nested2.two\", \"steps.nested2.two.three\"]");
  expect_paths("=steps[0]", "[\"steps.0\"]");
  expect_paths("=steps[3][1]", "[\"steps.3\", \"steps.3.1\"]");
  expect_paths("=steps.nested4[4]", "[\"steps.nested4\", \"steps.nested4.4\"]");
  expect_paths("=steps.a.b + 2 * steps.c", "[\"steps.a\", \"steps.a.b\", \"steps.c\"]");
  expect_paths("=steps[x]", "[\"steps.x\"]");
  expect_paths("=has(steps.a.b)", "[\"steps.a\", \"steps.a.b\"]");
  expect_paths("=inputs.list.map(x, x.a)", "[\"inputs.list\", \"inputs.list.map\", \"x.a\"]");
  /* roots upstream cannot handle contribute no path */
  expect_paths("=[1, 2][0] + {'a': 1}.a + split(inputs, '.')[0]", "[]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vf_full_spec),
      cmocka_unit_test(test_vf_bad_specs),
      cmocka_unit_test(test_vf_parse_error_location),
      cmocka_unit_test(test_vf_empty_forms),
      cmocka_unit_test(test_rt),
      cmocka_unit_test(test_rf_fields),
      cmocka_unit_test(test_rf_api_rules),
      cmocka_unit_test(test_rf_overlays),
      cmocka_unit_test(test_wf_steps),
      cmocka_unit_test(test_wf_prepare_errors),
      cmocka_unit_test(test_wf_ref_switch),
      cmocka_unit_test(test_wf_for_each_errors),
      cmocka_unit_test(test_ft_prepare),
      cmocka_unit_test(test_ft_missing_function),
      cmocka_unit_test(test_ft_case_errors),
      cmocka_unit_test(test_member_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
