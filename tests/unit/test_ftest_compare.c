/*
 * tests/unit/test_ftest_compare.c: the FunctionTest comparator (spec 7.5:
 * strict keys, lists, sets, keyed lists, numbers by value, bool vs int),
 * its differences structure and flat field-path list, last-applied
 * stripping (spec 7.4), and the report writers (text, JSON lines, JUnit
 * XML) over hand-built results.
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

#include "koreo/ftest.h"
#include "koreo/json.h"

static kv *Y(const char *text) {
  kv_parse_error err;
  kv *docs = kv_yaml_parse(text, strlen(text), "t.yaml", &err);
  if (!docs) fail_msg("yaml: %u:%u %s", err.line, err.col, err.msg);
  kv *v = kv_ref(kv_list_at(docs, 0));
  kv_unref(docs);
  return v;
}

static kv *J(const char *text) {
  kv_parse_error err;
  kv *v = kv_json_parse(text, strlen(text), &err);
  if (!v) fail_msg("json: %s", err.msg);
  return v;
}

/* Compare YAML texts; returns the match and leaves the flat list. */
static bool cmp(const char *exp, const char *act, kv **diffs, kv **flat) {
  kv *e = Y(exp), *a = Y(act);
  bool ok = kftest_compare(e, a, diffs, flat);
  kv_unref(e);
  kv_unref(a);
  return ok;
}

static const char *flat_path(const kv *flat, size_t i) {
  return kv_str(kv_map_get_str(kv_list_at(flat, i), "path"));
}
static const char *flat_msg(const kv *flat, size_t i) {
  return kv_str(kv_map_get_str(kv_list_at(flat, i), "message"));
}

static void test_equal_maps(void **state) {
  (void)state;
  kv *d, *f;
  assert_true(cmp("{a: 1, b: [1, 2], c: {d: x}}", "{c: {d: x}, b: [1, 2], a: 1}", &d, &f));
  assert_int_equal(kv_kind_of(d), KV_NULL);
  assert_int_equal(kv_len(f), 0);
  kv_unref(d);
  kv_unref(f);
}

static void test_strict_extra_and_missing(void **state) {
  (void)state;
  kv *d, *f;
  assert_false(cmp("{a: 1, b: 2}", "{a: 1, c: 3}", &d, &f));
  assert_string_equal(kv_str(kv_map_get_str(d, "b")), "missing");
  assert_string_equal(kv_str(kv_map_get_str(d, "c")), "unexpected");
  assert_int_equal(kv_len(f), 2);
  assert_string_equal(flat_path(f, 0), "b");
  assert_string_equal(flat_msg(f, 0), "missing");
  assert_non_null(kv_map_get_str(kv_list_at(f, 0), "expected"));
  assert_null(kv_map_get_str(kv_list_at(f, 0), "actual"));
  assert_string_equal(flat_path(f, 1), "c");
  assert_string_equal(flat_msg(f, 1), "unexpected");
  kv_unref(d);
  kv_unref(f);
}

static void test_nested_paths(void **state) {
  (void)state;
  kv *d, *f;
  assert_false(cmp("{spec: {list: [{name: a}, {name: b}], labels: "
                   "{app.kubernetes.io/name: x}}}",
                   "{spec: {list: [{name: a}, {name: c}], labels: "
                   "{app.kubernetes.io/name: y}}}",
                   &d, &f));
  assert_int_equal(kv_len(f), 2);
  assert_string_equal(flat_path(f, 0), "spec.list[1].name");
  assert_string_equal(flat_msg(f, 0), "expected '`b`' but found '`c`'");
  assert_string_equal(flat_path(f, 1), "spec.labels[\"app.kubernetes.io/name\"]");
  /* upstream structure: list with null for matching positions */
  const kv *l = kv_map_get_str(kv_map_get_str(d, "spec"), "list");
  assert_int_equal(kv_kind_of(l), KV_LIST);
  assert_int_equal(kv_kind_of(kv_list_at(l, 0)), KV_NULL);
  assert_int_equal(kv_kind_of(kv_list_at(l, 1)), KV_MAP);
  kv_unref(d);
  kv_unref(f);
}

static void test_list_length(void **state) {
  (void)state;
  kv *d, *f;
  assert_false(cmp("[1, 2, 3]", "[1, 2]", &d, &f));
  assert_string_equal(kv_str(d), "<length mismatch target:3, actual:2");
  assert_string_equal(flat_path(f, 0), "(root)");
  kv_unref(d);
  kv_unref(f);
}

static void test_numbers_and_types(void **state) {
  (void)state;
  kv *d, *f;
  /* numbers compare by value */
  assert_true(cmp("{a: 3}", "{a: 3.0}", NULL, NULL));
  /* bool is never a number */
  assert_false(cmp("{a: true}", "{a: 1}", &d, &f));
  assert_string_equal(flat_msg(f, 0), "expected `bool` but found `integer`");
  kv_unref(d);
  kv_unref(f);
  assert_false(cmp("{a: 1}", "{a: false}", &d, &f));
  assert_string_equal(flat_msg(f, 0), "expected `integer` but found `bool`");
  kv_unref(d);
  kv_unref(f);
  assert_false(cmp("{a: true}", "{a: false}", &d, &f));
  assert_string_equal(flat_msg(f, 0), "expected `true` but found `false`");
  kv_unref(d);
  kv_unref(f);
  /* a quoted number in an expectation never equals a number (spec 7.4) */
  assert_false(cmp("{port: '80'}", "{port: 80}", &d, &f));
  assert_string_equal(flat_msg(f, 0), "expected '`80`' (string) but found '`80`' (integer)");
  kv_unref(d);
  kv_unref(f);
  assert_false(cmp("{a: {b: 1}}", "{a: [1]}", &d, &f));
  assert_string_equal(flat_msg(f, 0), "expected `object` but found `array`");
  kv_unref(d);
  kv_unref(f);
  assert_false(cmp("{a: [1]}", "{a: x}", &d, &f));
  assert_string_equal(flat_msg(f, 0), "expected `array` but found `string`");
  kv_unref(d);
  kv_unref(f);
  assert_true(cmp("{a: null}", "{a: null}", NULL, NULL));
  assert_false(cmp("{a: null}", "{a: 0}", NULL, NULL));
}

static void test_ownerreferences_compared(void **state) {
  (void)state;
  /* unlike the reconcile comparator, ownerReferences is an ordinary key */
  assert_false(cmp("{metadata: {name: x}}", "{metadata: {name: x, ownerReferences: [{uid: u}]}}",
                   NULL, NULL));
}

static void test_as_set(void **state) {
  (void)state;
  kv *d, *f;
  assert_true(cmp("{x-koreo-compare-as-set: [s], s: [1, 2, 3], l: [1, 2]}",
                  "{s: [3, 1, 2], l: [1, 2]}", &d, &f));
  kv_unref(d);
  kv_unref(f);
  /* only the listed keys are sets */
  assert_false(cmp("{x-koreo-compare-as-set: [s], s: [1, 2], l: [1, 2]}", "{s: [2, 1], l: [2, 1]}",
                   NULL, NULL));
  assert_false(cmp("{x-koreo-compare-as-set: [s], s: [a, b]}", "{s: [a, c]}", &d, &f));
  assert_int_equal(kv_len(d), 1);
  const kv *sd = kv_map_get_str(d, "s");
  assert_int_equal(kv_len(sd), 2);
  assert_string_equal(kv_str(kv_list_at(sd, 0)), "<missing 'b'>");
  assert_string_equal(kv_str(kv_list_at(sd, 1)), "<unexpectedly found 'c'>");
  assert_string_equal(flat_path(f, 0), "s");
  kv_unref(d);
  kv_unref(f);
  /* objects cannot be compared as a set */
  assert_false(cmp("{x-koreo-compare-as-set: [s], s: [{a: 1}]}", "{s: [{a: 1}]}", &d, &f));
  assert_string_equal(kv_str(kv_map_get_str(d, "s")),
                      "Could not compare array-as-set, try: `x-koreo-compare-as-map`");
  kv_unref(d);
  kv_unref(f);
  /* a directive in the actual is ignored */
  assert_true(cmp("{a: 1}", "{a: 1, x-koreo-compare-as-set: [a]}", NULL, NULL));
}

static void test_as_map(void **state) {
  (void)state;
  kv *d, *f;
  assert_true(cmp("{x-koreo-compare-as-map: {c: [name]}, c: [{name: a, v: 1}, "
                  "{name: b, v: 2}]}",
                  "{c: [{name: b, v: 2}, {name: a, v: 1}]}", NULL, NULL));
  assert_true(cmp("{x-koreo-compare-as-map: {c: [k1, k2]}, c: [{k1: a, k2: 1}, "
                  "{k1: a, k2: 2}]}",
                  "{c: [{k1: a, k2: 2}, {k1: a, k2: 1}]}", NULL, NULL));
  assert_false(cmp("{x-koreo-compare-as-map: {c: [name]}, c: [{name: a, v: 1}, "
                   "{name: b, v: 2}]}",
                   "{c: [{name: b, v: 3}, {name: a, v: 1}]}", &d, &f));
  assert_int_equal(kv_len(f), 1);
  assert_string_equal(flat_path(f, 0), "c.b.v");
  kv_unref(d);
  kv_unref(f);
  /* a missing entry */
  assert_false(cmp("{x-koreo-compare-as-map: {c: [name]}, c: [{name: a}, {name: b}]}",
                   "{c: [{name: a}]}", &d, &f));
  assert_string_equal(kv_str(kv_map_get_str(kv_map_get_str(d, "c"), "b")), "missing");
  kv_unref(d);
  kv_unref(f);
}

static void test_strip_last_applied(void **state) {
  (void)state;
  kv *one = J("{\"metadata\":{\"name\":\"x\",\"annotations\":{\"koreo.dev/"
              "last-applied-configuration\":\"{}\"}},\"spec\":1}");
  kv *s = kftest_strip_last_applied(one);
  kv *want = J("{\"metadata\":{\"name\":\"x\"},\"spec\":1}");
  assert_true(kv_equal_strict(s, want, true));
  kv_unref(s);
  kv_unref(want);
  kv_unref(one);
  /* one annotation, whatever it is, removes the whole map (spec 10.4 #44) */
  kv *other = J("{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}");
  s = kftest_strip_last_applied(other);
  assert_int_equal(kv_len(kv_map_get_str(s, "metadata")), 0);
  kv_unref(s);
  kv_unref(other);
  kv *two = J("{\"metadata\":{\"annotations\":{\"a\":\"b\",\"koreo.dev/"
              "last-applied-configuration\":\"{}\"}}}");
  s = kftest_strip_last_applied(two);
  want = J("{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}");
  assert_true(kv_equal_strict(s, want, true));
  kv_unref(s);
  kv_unref(want);
  kv_unref(two);
  /* the input is not changed */
  assert_null(kftest_strip_last_applied(NULL));
}

/* ---- reports ----------------------------------------------------------------
 */

static char *xs(const char *s) { return strdup(s); }

/* Two tests: one with pass / skip / fail(diff) / not-run, one error. */
static void make_results(kftest_result r[2]) {
  memset(r, 0, 2 * sizeof *r);
  r[0].test = xs("bucket.v1");
  r[0].ns = xs("tests");
  r[0].function_kind = xs("ResourceFunction");
  r[0].function_name = xs("bucket.v1");
  r[0].file = "defs/bucket.koreo";
  r[0].line = 10;
  r[0].n_cases = 4;
  r[0].cases = calloc(4, sizeof *r[0].cases);
  kftest_case_result *c = r[0].cases;
  c[0].index = 0;
  c[0].label = xs("creates the bucket");
  c[0].status = KFTEST_PASS;
  c[0].passed = true;
  c[1].index = 1;
  c[1].label = xs("Test Case 2");
  c[1].status = KFTEST_SKIP;
  c[1].passed = true;
  c[1].message = xs("user skipped");
  c[2].index = 2;
  c[2].label = xs("waits <&> \"ready\"");
  c[2].status = KFTEST_FAIL;
  kv *e = Y("{spec: {size: 10}}"), *a = Y("{spec: {size: 12}}");
  kftest_compare(e, a, &c[2].differences, &c[2].diffs);
  c[2].expected = e;
  c[2].actual = a;
  c[2].message = xs("resource does not match: spec.size: expected '`10`' but found '`12`'");
  c[2].file = "defs/bucket.koreo";
  c[2].line = 30;
  c[3].index = 3;
  c[3].label = xs("later");
  c[3].status = KFTEST_NOT_RUN;
  c[3].message = xs("not run: case 2 failed");
  r[1].test = xs("broken");
  r[1].error = xs("FunctionTest broken failed to prepare: bad");
  r[1].fatal = true;
  r[1].n_cases = 1;
  r[1].cases = calloc(1, sizeof *r[1].cases);
  r[1].cases[0].index = -1;
  r[1].cases[0].status = KFTEST_ERROR;
  r[1].cases[0].message = xs("FunctionTest broken failed to prepare: bad");
}

static void free_results(kftest_result r[2]) {
  kftest_result_clear(&r[0]);
  kftest_result_clear(&r[1]);
}

static void test_summary(void **state) {
  (void)state;
  kftest_result r[2];
  make_results(r);
  kftest_summary s;
  kftest_summarize(r, 2, &s);
  assert_int_equal(s.tests, 2);
  assert_int_equal(s.cases, 4);
  assert_int_equal(s.passed, 1);
  assert_int_equal(s.failed, 1);
  assert_int_equal(s.skipped, 1);
  assert_int_equal(s.not_run, 1);
  assert_int_equal(s.errors, 1);
  assert_false(kftest_summary_ok(&s));
  kftest_summarize(r, 0, &s);
  assert_true(kftest_summary_ok(&s));
  free_results(r);
}

static void test_report_json(void **state) {
  (void)state;
  kftest_result r[2];
  make_results(r);
  char *out = kftest_report_json(r, 2, 1.5);
  /* every line is one JSON object */
  size_t lines = 0;
  char *save = NULL;
  kv *last = NULL;
  kv *first = NULL;
  for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    kv *o = J(line);
    assert_int_equal(kv_kind_of(o), KV_MAP);
    if (!first) first = kv_ref(o);
    kv_unref(last);
    last = o;
    lines++;
  }
  assert_int_equal(lines, 6);
  assert_string_equal(kv_str(kv_map_get_str(first, "test")), "bucket.v1");
  assert_string_equal(kv_str(kv_map_get_str(first, "case")), "creates the bucket");
  assert_int_equal(kv_map_get_str(first, "index")->u.i, 0);
  assert_true(kv_map_get_str(first, "passed")->u.b);
  assert_string_equal(kv_str(kv_map_get_str(first, "status")), "pass");
  assert_int_equal(kv_kind_of(kv_map_get_str(first, "message")), KV_NULL);
  const kv *sm = kv_map_get_str(last, "summary");
  assert_non_null(sm);
  assert_int_equal(kv_map_get_str(sm, "tests")->u.i, 2);
  assert_int_equal(kv_map_get_str(sm, "cases")->u.i, 4);
  assert_int_equal(kv_map_get_str(sm, "failed")->u.i, 1);
  assert_int_equal(kv_map_get_str(sm, "not_run")->u.i, 1);
  assert_int_equal(kv_map_get_str(sm, "errors")->u.i, 1);
  assert_false(kv_map_get_str(sm, "ok")->u.b);
  kv_unref(first);
  kv_unref(last);
  free(out);
  free_results(r);
}

static void test_report_json_fields(void **state) {
  (void)state;
  kftest_result r[2];
  make_results(r);
  char *out = kftest_report_json(r, 2, -1);
  /* third line: the failure, with its differences */
  char *l = out;
  for (int i = 0; i < 2; i++)
    l = strchr(l, '\n') + 1;
  char *end = strchr(l, '\n');
  *end = 0;
  kv *o = J(l);
  assert_string_equal(kv_str(kv_map_get_str(o, "status")), "fail");
  assert_false(kv_map_get_str(o, "passed")->u.b);
  const kv *d = kv_map_get_str(o, "differences");
  assert_non_null(d);
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(d, 0), "path")), "spec.size");
  assert_int_equal(kv_map_get_str(kv_list_at(d, 0), "expected")->u.i, 10);
  assert_int_equal(kv_map_get_str(kv_list_at(d, 0), "actual")->u.i, 12);
  kv_unref(o);
  /* the error entry has no case label */
  l = end + 1;
  l = strchr(l, '\n') + 1;
  end = strchr(l, '\n');
  *end = 0;
  o = J(l);
  assert_string_equal(kv_str(kv_map_get_str(o, "status")), "error");
  assert_int_equal(kv_kind_of(kv_map_get_str(o, "case")), KV_NULL);
  assert_int_equal(kv_map_get_str(o, "index")->u.i, -1);
  kv_unref(o);
  free(out);
  free_results(r);
}

static void test_report_text(void **state) {
  (void)state;
  kftest_result r[2];
  make_results(r);
  char *out = kftest_report_text(r, 2, -1, 0);
  assert_non_null(strstr(out, "FunctionTest bucket.v1 (ResourceFunction bucket.v1)  "
                              "defs/bucket.koreo:10\n"));
  assert_non_null(strstr(out, "  PASS     #1 creates the bucket\n"));
  assert_non_null(strstr(out, "  SKIP     #2 Test Case 2: user skipped\n"));
  assert_non_null(strstr(out, "  FAIL     #3 waits <&> \"ready\"  (defs/bucket.koreo:30)\n"));
  assert_non_null(strstr(out, "- spec.size: expected '`10`' but found '`12`'\n"));
  assert_non_null(strstr(out, "    expected: 10\n"));
  assert_non_null(strstr(out, "    actual:   12\n"));
  assert_non_null(strstr(out, "  NOT RUN  #4 later: not run: case 2 failed\n"));
  assert_non_null(strstr(out, "  ERROR    (test)"));
  assert_non_null(
      strstr(out, "2 tests, 4 cases: 1 passed, 1 failed, 1 skipped, 1 not run, 1 error"));
  assert_non_null(strstr(out, "\nFAILED\n"));
  free(out);
  free_results(r);
}

static void test_report_junit(void **state) {
  (void)state;
  kftest_result r[2];
  make_results(r);
  char *out = kftest_report_junit(r, 2, 2.0);
  assert_non_null(strstr(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
  assert_non_null(strstr(out, "<testsuites name=\"koreoctl test\" tests=\"5\" failures=\"1\" "
                              "errors=\"1\" skipped=\"2\""));
  assert_non_null(strstr(out, "<testsuite name=\"bucket.v1\" tests=\"4\" failures=\"1\" "
                              "errors=\"0\" skipped=\"2\""));
  assert_non_null(strstr(out, "name=\"waits &lt;&amp;&gt; &quot;ready&quot;\""));
  assert_non_null(strstr(out, "<failure message=\"resource does not match"));
  assert_non_null(strstr(out, "<skipped message=\"user skipped\"/>"));
  assert_non_null(strstr(out, "<error message=\"FunctionTest broken failed to prepare: bad\""));
  /* balanced elements */
  size_t open = 0, close = 0;
  for (char *p = out; (p = strstr(p, "<testcase ")); p++)
    open++;
  for (char *p = out; (p = strstr(p, "</testcase>")); p++)
    close++;
  assert_int_equal(open, 5);
  assert_int_equal(close, 4); /* the passing case is self-closed */
  free(out);
  free_results(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_equal_maps),
      cmocka_unit_test(test_strict_extra_and_missing),
      cmocka_unit_test(test_nested_paths),
      cmocka_unit_test(test_list_length),
      cmocka_unit_test(test_numbers_and_types),
      cmocka_unit_test(test_ownerreferences_compared),
      cmocka_unit_test(test_as_set),
      cmocka_unit_test(test_as_map),
      cmocka_unit_test(test_strip_last_applied),
      cmocka_unit_test(test_summary),
      cmocka_unit_test(test_report_json),
      cmocka_unit_test(test_report_json_fields),
      cmocka_unit_test(test_report_text),
      cmocka_unit_test(test_report_junit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
