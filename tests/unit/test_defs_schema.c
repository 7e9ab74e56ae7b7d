/*
 * tests/unit/test_defs_schema.c: the bundled kind schemas and the
 * JSON-Schema validator of spec 1.0: the embedded copies equal the schema/ YAML files
 * in the repository, defaults are inserted (create, update.patch.delay),
 * the draft-07 keywords upstream enforces give upstream's messages with the
 * data path rooted at "spec", Kubernetes extensions (nullable) are ignored,
 * and errors carry the offending value's position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "defs_test_util.h"
#include "koreo/definition.h"

#include <cmocka.h>

static const char *const kind_files[KDEF_KIND_COUNT] = {
    "value-function.yaml", "resource-function.yaml", "resource-template.yaml",
    "workflow.yaml",       "function-test.yaml",
};

/* `v` without the "description" keys (not embedded: the validator ignores
 * them). */
static kv *without_descriptions(const kv *v) {
  if (v->kind == KV_MAP) {
    kv *m = kv_map_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++) {
      const kv *k = kv_map_key_at(v, i);
      if (k->kind == KV_STRING && strcmp(kv_str(k), "description") == 0) continue;
      kv_map_set(m, kv_ref((kv *)k), without_descriptions(kv_map_val_at(v, i)));
    }
    return m;
  }
  if (v->kind == KV_LIST) {
    kv *l = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(l, without_descriptions(kv_list_at(v, i)));
    return l;
  }
  return kv_ref((kv *)v);
}

/* The schema of `kind` validated against `spec_yaml`: returns the
 * defaulted spec or NULL with *err filled. */
static kv *check(kdef_kind kind, const char *spec_yaml, kdef_outcome *err) {
  kv *spec = yaml_doc(spec_yaml);
  memset(err, 0, sizeof *err);
  kv *r = kdef_schema_validate(kdef_schema(kind), spec, err);
  kv_unref(spec);
  return r;
}

static void expect_error(kdef_kind kind, const char *spec_yaml, const char *message) {
  kdef_outcome err;
  kv *r = check(kind, spec_yaml, &err);
  if (r || !err.message || strcmp(err.message, message) != 0) {
    print_error("schema error for:\n%s\nexpected: %s\nactual:   %s\n", spec_yaml, message,
                r ? "(valid)" : err.message);
    kv_unref(r);
    kdef_outcome_clear(&err);
    fail();
  }
  assert_int_equal(err.kind, KDEF_O_PERMFAIL);
  kdef_outcome_clear(&err);
}

static void test_embedded_schemas_match_repository_files(void **state) {
  (void)state;
  const char *data = getenv("KOREO_TEST_DATA");
  assert_non_null(data);
  for (int k = 0; k < KDEF_KIND_COUNT; k++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/../../schema/%s", data, kind_files[k]);
    kv_parse_error err;
    size_t len;
    char *text = kv_read_file(path, &len, &err);
    if (!text) {
      print_error("cannot read %s: %s\n", path, err.msg);
      fail();
    }
    /* the CRD the library uses is the one in the repository: compare the
     * spec schema parsed from the file with the embedded one */
    kv *docs = kv_yaml_parse(text, len, path, &err);
    free(text);
    assert_non_null(docs);
    const kv *crd = kv_list_at(docs, 0);
    const kv *v = kv_list_at(kv_map_get_str(kv_map_get_str(crd, "spec"), "versions"), 0);
    const kv *spec = kv_map_get_str(
        kv_map_get_str(kv_map_get_str(kv_map_get_str(v, "schema"), "openAPIV3Schema"),
                       "properties"),
        "spec");
    assert_non_null(spec);
    const kv *embedded = kdef_schema((kdef_kind)k);
    assert_non_null(embedded);
    kv *stripped = without_descriptions(spec);
    bool same = kv_equal_strict(stripped, embedded, true);
    kv_unref(stripped);
    if (!same) {
      print_error("schema/%s differs from the embedded copy: run schema/embed_schemas.py\n",
                  kind_files[k]);
      fail();
    }
    kv_unref(docs);
  }
  assert_null(kdef_schema(KDEF_KIND_NONE));
}

static void test_defaults_inserted(void **state) {
  (void)state;
  kdef_outcome err;
  kv *r = check(KDEF_RESOURCE_FUNCTION,
                "apiConfig: {apiVersion: v1, kind: ConfigMap, name: x, namespace: y}\n"
                "resource: {}\n",
                &err);
  assert_non_null(r);
  /* a missing create becomes {enabled: true, delay: 30}; update {patch: {delay: 30}} */
  const kv *create = kv_map_get_str(r, "create");
  assert_non_null(create);
  assert_true(kv_map_get_str(create, "enabled")->u.b);
  assert_int_equal(kv_map_get_str(create, "delay")->u.i, 30);
  const kv *patch = kv_map_get_str(kv_map_get_str(r, "update"), "patch");
  assert_non_null(patch);
  assert_int_equal(kv_map_get_str(patch, "delay")->u.i, 30);
  /* apiConfig defaults */
  const kv *api = kv_map_get_str(r, "apiConfig");
  assert_true(kv_map_get_str(api, "namespaced")->u.b);
  assert_true(kv_map_get_str(api, "owned")->u.b);
  assert_false(kv_map_get_str(api, "readonly")->u.b);
  assert_false(kv_map_get_str(api, "deleteIfExists")->u.b);
  kv_unref(r);

  /* update: {patch: {}} becomes {patch: {delay: 30}}; given values stay */
  r = check(KDEF_RESOURCE_FUNCTION,
            "apiConfig: {apiVersion: v1, kind: ConfigMap, name: x, namespace: y}\n"
            "resource: {}\n"
            "create: {delay: 5}\n"
            "update: {patch: {}}\n",
            &err);
  assert_non_null(r);
  assert_int_equal(kv_map_get_str(kv_map_get_str(r, "create"), "delay")->u.i, 5);
  assert_true(kv_map_get_str(kv_map_get_str(r, "create"), "enabled")->u.b);
  patch = kv_map_get_str(kv_map_get_str(r, "update"), "patch");
  assert_int_equal(kv_map_get_str(patch, "delay")->u.i, 30);
  /* recreate keeps its own delay, and no patch is added */
  kv_unref(r);
  r = check(KDEF_RESOURCE_FUNCTION,
            "apiConfig: {apiVersion: v1, kind: ConfigMap, name: x, namespace: y}\n"
            "resource: {}\n"
            "update: {recreate: {delay: 7}}\n",
            &err);
  assert_non_null(r);
  assert_null(kv_map_get_str(kv_map_get_str(r, "update"), "patch"));
  assert_int_equal(
      kv_map_get_str(kv_map_get_str(kv_map_get_str(r, "update"), "recreate"), "delay")->u.i, 7);
  kv_unref(r);
}

static void test_input_not_modified(void **state) {
  (void)state;
  kv *spec = yaml_doc("testCases:\n- expectReturn: {a: 1}\nfunctionRef: {kind: ValueFunction, "
                      "name: f}\n");
  kdef_outcome err;
  memset(&err, 0, sizeof err);
  kv *r = kdef_schema_validate(kdef_schema(KDEF_FUNCTION_TEST), spec, &err);
  assert_non_null(r);
  /* defaults (variant/skip false) are in the result, not in the input */
  const kv *c0 = kv_list_at(kv_map_get_str(r, "testCases"), 0);
  assert_false(kv_map_get_str(c0, "variant")->u.b);
  assert_false(kv_map_get_str(c0, "skip")->u.b);
  assert_null(kv_map_get_str(kv_list_at(kv_map_get_str(spec, "testCases"), 0), "variant"));
  kv_unref(r);
  kv_unref(spec);
}

static void test_messages(void **state) {
  (void)state;
  expect_error(KDEF_RESOURCE_TEMPLATE, "context: {a: 1}\n",
               "spec must contain ['template'] properties");
  expect_error(KDEF_RESOURCE_TEMPLATE, "template: [1]\n", "spec.template must be object");
  expect_error(KDEF_RESOURCE_FUNCTION, "apiConfig: {apiVersion: v1, kind: X}\nresource: {}\n",
               "spec.apiConfig must contain ['apiVersion', 'kind', 'name'] properties");
  expect_error(KDEF_RESOURCE_FUNCTION, "apiConfig: {apiVersion: v1, kind: X, name: n}\n",
               "spec must be valid exactly by one definition (0 matches found)");
  expect_error(KDEF_VALUE_FUNCTION, "locals: {a: 1}\n",
               "spec cannot be validated by any definition");
  expect_error(KDEF_WORKFLOW, "steps:\n- label: ab\n  ref: {kind: ValueFunction, name: f}\n",
               "spec.steps[0].label must be longer than or equal to 3 characters");
  expect_error(KDEF_WORKFLOW, "steps:\n- label: abc\n  ref: {kind: Other, name: f}\n",
               "spec.steps[0].ref.kind must be one of ['ResourceFunction', 'ValueFunction', "
               "'Workflow']");
  expect_error(KDEF_RESOURCE_FUNCTION,
               "apiConfig: {apiVersion: v1, kind: X, name: n}\nresource: {}\n"
               "update: {never: {a: 1}}\n",
               "spec.update.never must contain less than or equal to 0 properties");
  expect_error(KDEF_RESOURCE_FUNCTION,
               "apiConfig: {apiVersion: v1, kind: X, name: n}\nresource: {}\n"
               "create: {delay: soon}\n",
               "spec.create.delay must be integer");
  expect_error(KDEF_WORKFLOW, "steps:\n- label: abc\n  refSwitch: {switchOn: =x, cases: []}\n",
               "spec.steps[0].refSwitch.cases must contain at least 1 items");
  /* maxItems: 21 steps */
  char big[4096] = "steps:\n";
  for (int i = 0; i < 21; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big),
             "- {label: s%02d, ref: {kind: ValueFunction, name: f}}\n", i);
  expect_error(KDEF_WORKFLOW, big, "spec.steps must contain less than or equal to 20 items");
  expect_error(KDEF_WORKFLOW,
               "steps:\n- label: abc\n  ref: {kind: ValueFunction, name: f}\n"
               "  condition: {type: "
               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, name: n}\n",
               "spec.steps[0].condition.type must be shorter than or equal to 40 characters");
}

/* `nullable: true` is ignored (spec 1.0): null where an object is declared
 * fails, and so does a null spec. */
static void test_nullable_ignored(void **state) {
  (void)state;
  expect_error(KDEF_RESOURCE_FUNCTION,
               "apiConfig: {apiVersion: v1, kind: X, name: n}\nresource: {}\n"
               "create: {overlay: null}\n",
               "spec.create.overlay must be object");
  expect_error(KDEF_RESOURCE_TEMPLATE, "template: {apiVersion: v1, kind: X}\ncontext: null\n",
               "spec.context must be object");
  kv *null = kv_null();
  kdef_outcome err;
  memset(&err, 0, sizeof err);
  assert_null(kdef_schema_validate(kdef_schema(KDEF_VALUE_FUNCTION), null, &err));
  assert_string_equal(err.message, "spec must be object");
  kdef_outcome_clear(&err);
}

/* Admission-only rules (x-kubernetes-validations) are not schema errors:
 * an assert without '=' passes the schema (spec 1.0, 10.5 item 52). */
static void test_admission_rules_not_enforced_by_schema(void **state) {
  (void)state;
  kdef_outcome err;
  kv *r = check(KDEF_VALUE_FUNCTION,
                "preconditions:\n- assert: inputs.x\n  skip: {message: m}\nreturn: {a: 1}\n", &err);
  assert_non_null(r);
  kv_unref(r);
}

static void test_error_position(void **state) {
  (void)state;
  kdef_outcome err;
  kv *r = check(KDEF_RESOURCE_FUNCTION,
                "apiConfig: {apiVersion: v1, kind: X, name: n}\n"
                "resource: {}\n"
                "create:\n"
                "  delay: soon\n",
                &err);
  assert_null(r);
  assert_string_equal(err.path, "spec.create.delay");
  assert_int_equal(err.pos.line, 4);
  assert_int_equal(err.pos.col, 10);
  assert_string_equal(err.pos.file, "test.yaml");
  kdef_outcome_clear(&err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_embedded_schemas_match_repository_files),
      cmocka_unit_test(test_defaults_inserted),
      cmocka_unit_test(test_input_not_modified),
      cmocka_unit_test(test_messages),
      cmocka_unit_test(test_nullable_ignored),
      cmocka_unit_test(test_admission_rules_not_enforced_by_schema),
      cmocka_unit_test(test_error_position),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
