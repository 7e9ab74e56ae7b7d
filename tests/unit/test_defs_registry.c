/*
 * tests/unit/test_defs_registry.c: the loader and the registry (issue 3
 * items 1, 2 and 6; spec 8): loading the reference examples cleanly,
 * multi-document files with a broken document, directories filtered by
 * extension, other documents kept, namespace priority, put/remove with the
 * re-prepare of dependents in dependency order and its report, captured
 * definitions surviving a replacement, unchanged resourceVersions, and
 * Workflow reference cycles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "defs_test_util.h"
#include "koreo/definition.h"

#include <cmocka.h>

#define HDR(kind, name)                                                                            \
  "apiVersion: koreo.dev/v1beta1\nkind: " kind "\nmetadata:\n  name: " name "\n"
#define HDRNS(kind, name, ns)                                                                      \
  "apiVersion: koreo.dev/v1beta1\nkind: " kind "\nmetadata:\n  name: " name "\n  namespace: " ns   \
  "\n"

/* The reference examples (shared/reference/koreo-examples), or NULL when
 * the shared folder is not next to the repository (test skipped). */
static const char *examples_dir(char *buf, size_t cap) {
  const char *shared = getenv("KOREO_SHARED");
  const char *data = getenv("KOREO_TEST_DATA");
  if (shared && *shared)
    snprintf(buf, cap, "%s/reference/koreo-examples", shared);
  else
    snprintf(buf, cap, "%s/../../../shared/reference/koreo-examples", data ? data : ".");
  struct stat st;
  if (stat(buf, &st) != 0) {
    if (shared && *shared) fail_msg("KOREO_SHARED has no reference/koreo-examples");
    return NULL;
  }
  return buf;
}

typedef struct counts {
  size_t tests, cases;
} counts;

static bool count_tests(kdef_definition *d, void *arg) {
  counts *c = arg;
  c->tests++;
  c->cases += d->u.ft.n_cases;
  /* every FunctionTest's function resolved */
  assert_int_equal(d->status.kind, KDEF_O_OK);
  assert_int_equal(d->u.ft.function_status.kind, KDEF_O_OK);
  return true;
}

static void load_examples(const char *const *sub, size_t n, size_t tests, size_t cases) {
  char dir[1024];
  if (!examples_dir(dir, sizeof dir)) skip();
  char paths[3][1200];
  const char *p[3];
  for (size_t i = 0; i < n; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/%s", dir, sub[i]);
    p[i] = paths[i];
  }
  kdef_registry *r = kdef_registry_new();
  kdef_diags d = {0};
  size_t errors = kdef_load_paths(r, p, n, &d);
  errors += kdef_registry_check(r, &d);
  for (size_t i = 0; i < d.n; i++) {
    char *s = kdef_diag_format(&d.items[i]);
    print_error("%s\n", s);
    free(s);
  }
  assert_int_equal(errors, 0);
  assert_int_equal(d.n, 0);
  counts c = {0};
  kdef_registry_each(r, KDEF_FUNCTION_TEST, count_tests, &c);
  assert_int_equal(c.tests, tests);
  assert_int_equal(c.cases, cases);
  assert_true(kv_len(kdef_registry_others(r)) > 0); /* CRDs and trigger objects kept */
  kdef_diags_free(&d);
  kdef_registry_free(r);
}

static void test_examples_core(void **state) {
  (void)state;
  const char *sub[] = {"core-examples"};
  load_examples(sub, 1, 14, 32);
}

static void test_examples_kubernetes_gcp(void **state) {
  (void)state;
  const char *sub[] = {"kubernetes", "gcp-vpc"};
  load_examples(sub, 2, 8, 15);
}

/* Definitions reference each other regardless of their order in the
 * files; other documents are kept with their positions. */
static void test_order_and_others(void **state) {
  (void)state;
  kdef_diags d = {0};
  kdef_registry *r = load_yaml(
      HDR("FunctionTest", "t") "spec:\n  functionRef: {kind: "
                               "ValueFunction, name: f}\n"
                               "  testCases:\n  - expectReturn: {a: 1}\n"
                               "---\n"
                               "apiVersion: v1\nkind: Namespace\n"
                               "metadata: {name: demo}\n"
                               "---\n" HDR("ValueFunction", "f") "spec:\n  return: {a: 1}\n",
      &d);
  assert_int_equal(d.n, 0);
  kdef_definition *t = kdef_registry_lookup(r, KDEF_FUNCTION_TEST, "t");
  assert_non_null(t);
  assert_ptr_equal(t->u.ft.function, kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "f"));
  const kv *others = kdef_registry_others(r);
  assert_int_equal(kv_len(others), 1);
  const kv *ns = kv_list_at(others, 0);
  assert_string_equal(kv_str(kv_map_get_str(ns, "kind")), "Namespace");
  assert_int_equal(kv_pos(ns)->line, 10);
  assert_int_equal(kdef_registry_count(r, KDEF_KIND_NONE), 2);
  kdef_diags_free(&d);
  kdef_registry_free(r);
}

/* One broken document does not stop the others in the same file. */
static void test_broken_document_isolated(void **state) {
  (void)state;
  kdef_diags d = {0};
  kdef_registry *r =
      load_yaml(HDR("ValueFunction",
                    "one") "spec:\n  return: {a: 1}\n"
                           "---\n" HDR("ValueFunction",
                                       "two") "spec:\n  return:\n    a: 1\n"
                                              "   b: [\n"
                                              "---\n" HDR("ValueFunction",
                                                          "three") "spec:\n  return: {a: 3}\n",
                &d);
  assert_non_null(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "one"));
  assert_null(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "two"));
  kdef_definition *three = kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "three");
  assert_non_null(three);
  /* positions in later documents are still right */
  assert_int_equal(three->pos.line, 17);
  assert_int_equal(kdef_diags_errors(&d), 1);
  assert_true(diags_have(&d, "YAML syntax error"));
  assert_string_equal(d.items[0].file, "test.yaml");
  assert_int_equal(d.items[0].line, 15);
  char *s = kdef_diag_format(&d.items[0]);
  assert_true(strncmp(s, "test.yaml:15:", 13) == 0);
  free(s);
  kdef_diags_free(&d);
  kdef_registry_free(r);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_directory_loading(void **state) {
  (void)state;
  char dir[] = "/tmp/koreo-defs-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char p[512];
  snprintf(p, sizeof p, "%s/sub", dir);
  assert_int_equal(mkdir(p, 0700), 0);
  const char *exts[] = {"a.koreo", "b.k", "c.k.yaml", "d.k.yml", "e.yaml", "sub/f.yml"};
  for (size_t i = 0; i < 6; i++) {
    char name[64], text[256];
    snprintf(name, sizeof name, "vf%zu", i);
    snprintf(text, sizeof text,
             "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata:\n  name: %s\n"
             "spec:\n  return: {a: 1}\n",
             name);
    snprintf(p, sizeof p, "%s/%s", dir, exts[i]);
    write_file(p, text);
  }
  snprintf(p, sizeof p, "%s/notes.txt", dir);
  write_file(p, "not: [yaml\n");
  snprintf(p, sizeof p, "%s/.hidden.yaml", dir);
  write_file(p, "not: [yaml\n");
  kdef_registry *r = kdef_registry_new();
  kdef_diags d = {0};
  const char *paths[] = {dir};
  assert_int_equal(kdef_load_paths(r, paths, 1, &d), 0);
  assert_int_equal(kdef_registry_count(r, KDEF_VALUE_FUNCTION), 6);
  kdef_definition *vf = kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "vf5");
  assert_non_null(vf);
  assert_true(contains(vf->pos.file, "/sub/f.yml"));
  /* a missing path is an error */
  const char *missing[] = {"/nonexistent/koreo"};
  assert_int_equal(kdef_load_paths(r, missing, 1, &d), 1);
  assert_true(diags_have(&d, "cannot read"));
  kdef_diags_free(&d);
  kdef_registry_free(r);
  for (size_t i = 0; i < 6; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, exts[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/notes.txt", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/.hidden.yaml", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/sub", dir);
  rmdir(p);
  rmdir(dir);
}

/* Namespace priority (spec 8.5): without a list the most recently put
 * wins (upstream's kind+name identity); with a list, its order. */
static void test_namespace_priority(void **state) {
  (void)state;
  kdef_registry *r = kdef_registry_new();
  kv *a = yaml_doc(HDRNS("ValueFunction", "f", "team-a") "spec:\n  return: {who: a}\n");
  kv *b = yaml_doc(HDRNS("ValueFunction", "f", "team-b") "spec:\n  return: {who: b}\n");
  kdef_definition *da = kdef_registry_put(r, a, NULL, NULL);
  kdef_definition *db = kdef_registry_put(r, b, NULL, NULL);
  assert_non_null(da);
  assert_non_null(db);
  assert_ptr_not_equal(da, db);
  assert_ptr_equal(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "f"), db);
  assert_ptr_equal(kdef_registry_get(r, KDEF_VALUE_FUNCTION, "team-a", "f"), da);
  assert_null(kdef_registry_get(r, KDEF_VALUE_FUNCTION, "", "f"));
  const char *prio[] = {"team-a", "team-b"};
  kdef_registry_set_namespaces(r, prio, 2);
  assert_ptr_equal(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "f"), da);
  const char *prio2[] = {"other", "team-b"};
  kdef_registry_set_namespaces(r, prio2, 2);
  assert_ptr_equal(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "f"), db);
  assert_null(kdef_registry_lookup(r, KDEF_RESOURCE_FUNCTION, "f"));
  kv_unref(a);
  kv_unref(b);
  kdef_registry_free(r);
}

static const char *const VF1 = HDR("ValueFunction", "labels") "spec:\n  return:\n"
                                                              "    metadata: {labels: =inputs.l}\n";
static const char *const VF2 = HDR("ValueFunction", "labels") "spec:\n  return:\n"
                                                              "    metadata: {labels: =inputs.l}\n"
                                                              "    team: =inputs.team\n";
static const char *const RF = HDR("ResourceFunction", "res") "spec:\n"
                                                             "  apiConfig: {apiVersion: v1, kind: "
                                                             "ConfigMap, name: n, namespaced: "
                                                             "false}\n"
                                                             "  resource: {}\n"
                                                             "  overlays:\n"
                                                             "  - overlayRef: {kind: "
                                                             "ValueFunction, name: labels}\n"
                                                             "    inputs: {l: =inputs.l}\n";
static const char *const WF =
    HDR("Workflow", "wf") "spec:\n  steps:\n  - label: res\n"
                          "    ref: {kind: ResourceFunction, name: res}\n";
static const char *const FT = HDR("FunctionTest", "ft") "spec:\n  functionRef: {kind: "
                                                        "ResourceFunction, name: res}\n";

static kdef_definition *put(kdef_registry *r, const char *yaml, kdef_changes *ch) {
  kv *doc = yaml_doc(yaml);
  kdef_definition *d = kdef_registry_put(r, doc, ch, NULL);
  kv_unref(doc);
  return d;
}

static int change_index(const kdef_changes *ch, kdef_kind kind, const char *name) {
  for (size_t i = 0; i < ch->n; i++)
    if (ch->items[i].kind == kind && strcmp(ch->items[i].name, name) == 0) return (int)i;
  return -1;
}

/* Replacing a definition re-prepares everything that depends on it, in
 * dependency order, and reports each result (spec 8.3). */
static void test_replace_reprepares_dependents(void **state) {
  (void)state;
  kdef_registry *r = kdef_registry_new();
  kdef_changes ch = {0};
  put(r, VF1, NULL);
  kdef_definition *rf_old = kdef_ref(put(r, RF, NULL));
  put(r, WF, NULL);
  put(r, FT, NULL);
  assert_int_equal(rf_old->u.rf.overlays_status.kind, KDEF_O_OK);
  kdef_definition *wf_old = kdef_registry_lookup(r, KDEF_WORKFLOW, "wf");
  assert_ptr_equal(wf_old->u.wf.steps[0].ref.def, rf_old);

  /* the new ValueFunction reads inputs.team, which the overlayRef lacks */
  kdef_definition *vf = put(r, VF2, &ch);
  assert_non_null(vf);
  assert_int_equal(ch.n, 4);
  int iv = change_index(&ch, KDEF_VALUE_FUNCTION, "labels");
  int ir = change_index(&ch, KDEF_RESOURCE_FUNCTION, "res");
  int iw = change_index(&ch, KDEF_WORKFLOW, "wf");
  int it = change_index(&ch, KDEF_FUNCTION_TEST, "ft");
  assert_int_equal(iv, 0);
  assert_true(ir > iv && iw > ir && it > ir);
  assert_int_equal(ch.items[iv].status.kind, KDEF_O_OK);
  kdef_definition *rf = kdef_registry_lookup(r, KDEF_RESOURCE_FUNCTION, "res");
  assert_ptr_not_equal(rf, rf_old);
  assert_int_equal(rf->u.rf.overlays_status.kind, KDEF_O_PERMFAIL);
  assert_string_equal(rf->u.rf.overlays_status.message,
                      "labels expected the following inputs \"team\".");
  assert_null(rf->u.rf.overlays[0].vf); /* only Ok entries capture their ValueFunction */
  assert_ptr_equal(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "labels"), vf);
  /* the Workflow and the test captured the new function */
  kdef_definition *wf = kdef_registry_lookup(r, KDEF_WORKFLOW, "wf");
  assert_ptr_equal(wf->u.wf.steps[0].ref.def, rf);
  assert_ptr_equal(kdef_registry_lookup(r, KDEF_FUNCTION_TEST, "ft")->u.ft.function, rf);
  /* a run holding the old version keeps a complete, usable definition */
  assert_int_equal(rf_old->u.rf.overlays_status.kind, KDEF_O_OK);
  assert_string_equal(rf_old->u.rf.overlays[0].vf_name, "labels");
  assert_non_null(rf_old->u.rf.overlays[0].vf->u.vf.ret);
  kdef_unref(rf_old);
  kdef_changes_free(&ch);
  kdef_registry_free(r);
}

/* A definition put before what it needs is fixed when that arrives;
 * removing it again is reported and re-prepares the dependents. */
static void test_late_dependency_and_remove(void **state) {
  (void)state;
  kdef_registry *r = kdef_registry_new();
  kdef_changes ch = {0};
  kdef_definition *wf = put(r, WF, &ch);
  assert_int_equal(wf->u.wf.steps_ready.kind, KDEF_O_RETRY);
  assert_int_equal(wf->u.wf.steps_ready.delay, 15);
  assert_int_equal(ch.n, 1);
  assert_int_equal(ch.items[0].status.kind, KDEF_O_RETRY); /* steps not ready is reported */
  kdef_changes_free(&ch);

  put(r, VF1, NULL);
  put(r, RF, &ch);
  assert_int_equal(ch.n, 2);
  assert_int_equal(change_index(&ch, KDEF_WORKFLOW, "wf"), 1);
  assert_int_equal(ch.items[1].status.kind, KDEF_O_OK);
  wf = kdef_registry_lookup(r, KDEF_WORKFLOW, "wf");
  assert_int_equal(wf->u.wf.steps_ready.kind, KDEF_O_OK);
  kdef_changes_free(&ch);

  /* remove the ValueFunction: RF (overlay Retry) and, through it, the
   * Workflow are re-prepared */
  assert_true(kdef_registry_remove(r, KDEF_VALUE_FUNCTION, "", "labels", &ch, NULL));
  assert_true(ch.items[0].removed);
  assert_int_equal(ch.n, 3);
  kdef_definition *rf = kdef_registry_lookup(r, KDEF_RESOURCE_FUNCTION, "res");
  assert_int_equal(rf->u.rf.overlays_status.kind, KDEF_O_RETRY);
  assert_string_equal(rf->u.rf.overlays_status.message, "ValueFunction:labels not ready (None)");
  assert_null(kdef_registry_lookup(r, KDEF_VALUE_FUNCTION, "labels"));
  assert_false(kdef_registry_remove(r, KDEF_VALUE_FUNCTION, "", "labels", NULL, NULL));
  kdef_changes_free(&ch);
  kdef_registry_free(r);
}

/* The same non-empty resourceVersion is not prepared again (spec 8.1). */
static void test_same_resource_version(void **state) {
  (void)state;
  kdef_registry *r = kdef_registry_new();
  kdef_changes ch = {0};
  const char *v1 = "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata:\n  name: f\n"
                   "  resourceVersion: \"7\"\nspec:\n  return: {a: 1}\n";
  const char *v2 = "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata:\n  name: f\n"
                   "  resourceVersion: \"8\"\nspec:\n  return: {a: 2}\n";
  kdef_definition *a = put(r, v1, NULL);
  assert_string_equal(a->resource_version, "7");
  assert_ptr_equal(put(r, v1, &ch), a);
  assert_int_equal(ch.n, 0);
  kdef_definition *b = put(r, v2, &ch);
  assert_ptr_not_equal(b, a);
  assert_int_equal(ch.n, 1);
  assert_true(b->generation > 0);
  kdef_changes_free(&ch);
  kdef_registry_free(r);
}

/* A Workflow reaching itself through sub-Workflows is a PermFail, and
 * breaking the cycle fixes every member (spec 8.2, 10.5 item 50). */
static void test_workflow_cycle(void **state) {
  (void)state;
  kdef_registry *r = kdef_registry_new();
  kdef_changes ch = {0};
  const char *a = HDR("Workflow", "a") "spec:\n  steps:\n  - label: sub\n"
                                       "    ref: {kind: Workflow, name: b}\n";
  const char *b_cyc = HDR("Workflow", "b") "spec:\n  steps:\n  - label: sub\n"
                                           "    ref: {kind: Workflow, name: a}\n";
  const char *b_ok = HDR("Workflow", "b") "spec:\n  steps:\n  - label: sub\n"
                                          "    ref: {kind: Workflow, name: c}\n";
  const char *c = HDR("Workflow", "c") "spec:\n  steps:\n  - label: vfstep\n"
                                       "    ref: {kind: ValueFunction, name: v}\n";
  put(r, HDR("ValueFunction", "v") "spec:\n  return: {a: 1}\n", NULL);
  put(r, c, NULL);
  put(r, a, NULL);
  kdef_definition *b = put(r, b_cyc, &ch);
  assert_int_equal(b->status.kind, KDEF_O_PERMFAIL);
  assert_true(contains(b->status.message, "Workflow reference cycle (b -> a -> b)"));
  kdef_definition *wa = kdef_registry_lookup(r, KDEF_WORKFLOW, "a");
  assert_int_equal(wa->status.kind, KDEF_O_PERMFAIL);
  kdef_changes_free(&ch);
  b = put(r, b_ok, &ch);
  assert_int_equal(b->status.kind, KDEF_O_OK);
  assert_int_equal(b->u.wf.steps_ready.kind, KDEF_O_OK);
  wa = kdef_registry_lookup(r, KDEF_WORKFLOW, "a");
  assert_int_equal(wa->status.kind, KDEF_O_OK);
  assert_int_equal(wa->u.wf.steps_ready.kind, KDEF_O_OK);
  assert_ptr_equal(wa->u.wf.steps[0].ref.def, b);
  kdef_changes_free(&ch);
  kdef_registry_free(r);
}

static void test_put_diagnostics(void **state) {
  (void)state;
  kdef_registry *r = kdef_registry_new();
  kdef_diags d = {0};
  kv *doc = yaml_doc("apiVersion: koreo.dev/v1beta1\nkind: Workflow\nmetadata: {}\nspec: {}\n");
  assert_null(kdef_registry_put(r, doc, NULL, &d));
  kv_unref(doc);
  assert_true(diags_have(&d, "resource name and version are required"));
  doc = yaml_doc(HDR("ValueFunction", "x") "spec: {}\n");
  kdef_definition *x = kdef_registry_put(r, doc, NULL, &d);
  kv_unref(doc);
  assert_non_null(x); /* failures are cached too */
  assert_int_equal(x->status.kind, KDEF_O_PERMFAIL);
  assert_string_equal(x->status.location, "prepare:ValueFunction:x:spec");
  assert_int_equal(kdef_diags_errors(&d), 2);
  assert_int_equal(d.items[1].kind, KDEF_VALUE_FUNCTION);
  assert_string_equal(d.items[1].name, "x");
  kdef_diags_free(&d);
  kdef_registry_free(r);
}

/* `koreoctl validate` checks: admission rules are errors, undeclared
 * fields are warnings (the API server would drop them). */
static void test_check_admission_and_unknown_fields(void **state) {
  (void)state;
  kdef_diags d = {0};
  kdef_registry *r = load_yaml(HDR("ValueFunction", "typo") "spec:\n  preconditions:\n"
                                                            "  - assert: =true\n    ok: {}\n"
                                                            "  retrun: {a: 1}\n",
                               &d);
  assert_int_equal(d.n, 0); /* loading alone reports nothing */
  assert_int_equal(kdef_registry_check(r, &d), 0);
  assert_int_equal(d.n, 1);
  assert_true(d.items[0].warning);
  assert_int_equal(d.items[0].line, 9);
  assert_int_equal(d.items[0].col, 3);
  assert_true(contains(d.items[0].message, "unknown field 'retrun'"));
  kdef_diags_free(&d);
  kdef_registry_free(r);

  r = load_yaml(
      HDR("Workflow",
          "w") "spec:\n  steps:\n  - label: my-step\n"
               "    ref: {kind: Workflow, name: w2}\n---\n" HDR(
                   "Workflow",
                   "w2") "spec:\n  steps:\n  - label: ok_step\n"
                         "    ref: {kind: ValueFunction, name: v}\n    skipIf: \"true\"\n---\n" HDR(
                             "ValueFunction", "v") "spec:\n  return: {a: 1}\n",
      &d);
  assert_int_equal(d.n, 0);
  assert_int_equal(kdef_registry_check(r, &d), 2);
  assert_true(diags_have(&d, "must be alphanumeric + underscores (admission rule"));
  assert_true(diags_have(&d, "must be an expression (admission rule `self.startsWith('=')`"));
  kdef_diags_free(&d);
  kdef_registry_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_examples_core),
      cmocka_unit_test(test_examples_kubernetes_gcp),
      cmocka_unit_test(test_order_and_others),
      cmocka_unit_test(test_broken_document_isolated),
      cmocka_unit_test(test_directory_loading),
      cmocka_unit_test(test_namespace_priority),
      cmocka_unit_test(test_replace_reprepares_dependents),
      cmocka_unit_test(test_late_dependency_and_remove),
      cmocka_unit_test(test_same_resource_version),
      cmocka_unit_test(test_workflow_cycle),
      cmocka_unit_test(test_put_diagnostics),
      cmocka_unit_test(test_check_admission_and_unknown_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
