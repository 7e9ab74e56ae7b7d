/*
 * tests/unit/test_eval_compare.c: the ResourceFunction difference check
 * (spec 5.7, upstream test_validate.py) and the write body of spec 5.10
 * (directive stripping, last-applied annotation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "koreo/eval.h"
#include "koreo/json.h"

#include <stdlib.h>
#include <string.h>

static kv *json(const char *s) {
  kv_parse_error e;
  kv *v = kv_json_parse(s, strlen(s), &e);
  if (!v) fail_msg("bad test JSON: %s", s);
  return v;
}

/* Compare JSON texts; returns match, and the differences in *d (or NULL). */
static bool cmpj(const char *t, const char *a, const char *la, char **d) {
  kv *tv = json(t), *av = json(a), *lv = la ? json(la) : NULL;
  char *diff = NULL;
  bool ok = koreo_compare(tv, av, lv, &diff);
  kv_unref(tv);
  kv_unref(av);
  kv_unref(lv);
  if (ok)
    assert_null(diff);
  else
    assert_non_null(diff);
  if (d)
    *d = diff;
  else
    free(diff);
  return ok;
}

static void expect_diff(const char *t, const char *a, const char *la, const char *needle) {
  char *d = NULL;
  assert_false(cmpj(t, a, la, &d));
  if (!strstr(d, needle)) fail_msg("difference '%s' lacks '%s'", d, needle);
  free(d);
}

static void test_lists(void **s) {
  (void)s;
  assert_true(cmpj("[1,2,3]", "[1,2,3]", NULL, NULL));
  expect_diff("[1,2,3]", "[3,2,1]", NULL, "at index '0'"); /* order matters */
  expect_diff("[1,2]", "[1,2,3]", NULL, "length mismatch");
  expect_diff("{\"l\":[1]}", "{\"l\":null}", NULL, "<target:array, resource:null>");
  expect_diff("{\"l\":null}", "{\"l\":[1]}", NULL, "<target:null, resource:array>");
  assert_true(cmpj("{\"l\":null}", "{\"l\":null}", NULL, NULL));
  assert_true(cmpj("[]", "[]", NULL, NULL));
  /* a shorter last-applied list does not break the comparison */
  assert_true(cmpj("[{\"a\":1},{\"a\":2}]", "[{\"a\":1},{\"a\":2}]", "[{\"a\":1}]", NULL));
}

static void test_sets(void **s) {
  (void)s;
  const char *t = "{\"x-koreo-compare-as-set\":[\"l\"],\"l\":[1,2,3]}";
  assert_true(cmpj(t, "{\"l\":[3,1,2]}", NULL, NULL));
  assert_true(cmpj(t, "{\"l\":[3,1,2,2,1]}", NULL, NULL)); /* duplicates collapse */
  expect_diff(t, "{\"l\":[1,2]}", NULL, "<missing '3'>");
  expect_diff(t, "{\"l\":[1,2,3,4]}", NULL, "unexpectedly found '4'");
  expect_diff("{\"x-koreo-compare-as-set\":[\"l\"],\"l\":[{\"a\":1}]}", "{\"l\":[{\"a\":1}]}", NULL,
              "x-koreo-compare-as-map");
  expect_diff("{\"x-koreo-compare-as-set\":[\"l\"],\"l\":[[1]]}", "{\"l\":[[1]]}", NULL,
              "Could not compare array-as-set");
  /* 1, 1.0 and true are one element */
  assert_true(cmpj("{\"x-koreo-compare-as-set\":[\"l\"],\"l\":[1]}", "{\"l\":[1.0]}", NULL, NULL));
  /* directives apply only at their own level */
  expect_diff("{\"x-koreo-compare-as-set\":[\"l\"],\"m\":{\"l\":[1,2]}}", "{\"m\":{\"l\":[2,1]}}",
              NULL, "'m' -> 'l' -> at index '0'");
}

static void test_basics_and_types(void **s) {
  (void)s;
  assert_true(cmpj("1", "1", NULL, NULL));
  assert_true(cmpj("1", "1.0", NULL, NULL)); /* numbers by value */
  assert_true(cmpj("null", "null", NULL, NULL));
  assert_true(cmpj("{}", "{}", NULL, NULL));
  assert_true(cmpj("\"a\"", "\"a\"", NULL, NULL));
  const char *vals[] = {"\"\"", "null", "false", "true", "[]", "{}", "0", "1", "8.2"};
  size_t n = sizeof vals / sizeof vals[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      if (i == j) continue;
      char *d = NULL;
      if (cmpj(vals[i], vals[j], NULL, &d)) fail_msg("%s matched %s", vals[i], vals[j]);
      free(d);
    }
  expect_diff("\"1\"", "1", NULL, "<target:[1], resource:[1]>"); /* "1" != 1 */
}

static void test_maps(void **s) {
  (void)s;
  const char *deep = "{\"a\":{\"b\":[1,2,{\"c\":\"d\"}],\"e\":true}}";
  assert_true(cmpj(deep, deep, NULL, NULL));
  /* partial: extra live keys are ignored */
  assert_true(
      cmpj("{\"spec\":{\"a\":1}}", "{\"spec\":{\"a\":1,\"b\":2},\"status\":{}}", NULL, NULL));
  char *d = NULL;
  assert_false(cmpj("{\"spec\":{\"replicas\":3}}", "{\"spec\":{\"replicas\":2}}", NULL, &d));
  assert_string_equal(d, "'spec' -> 'replicas' -> <target:[3], resource:[2]>");
  free(d);
  expect_diff("{\"a\":[0,1,2,3,4,5,{\"x\":1}]}", "{\"a\":[0,1,2,3,4,5,{\"x\":2}]}", NULL,
              "at index '6'");
  assert_false(cmpj("{\"a\":1,\"b\":2}", "{\"a\":1}", NULL, &d));
  assert_string_equal(d, "'b' -> <missing 'b' in resource>");
  free(d);
  /* a null target key absent from the object is a mismatch (spec 5.7 pitfall)
   */
  expect_diff("{\"a\":null}", "{}", NULL, "missing 'a'");
  /* ownerReferences are skipped at every level */
  assert_true(cmpj("{\"metadata\":{\"ownerReferences\":[{\"uid\":\"1\"}],\"name\":\"n\"}}",
                   "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"2\"}],\"name\":\"n\"}}", NULL,
                   NULL));
}

static void test_compare_as_map(void **s) {
  (void)s;
  const char *t = "{\"x-koreo-compare-as-map\":{\"ports\":[\"name\",\"port\"]},"
                  "\"ports\":[{\"name\":\"a\",\"port\":1},{\"name\":\"b\",\"port\":2}]}";
  assert_true(cmpj(t,
                   "{\"ports\":[{\"name\":\"b\",\"port\":2,\"x\":1},{\"name\":"
                   "\"a\",\"port\":1},"
                   "{\"name\":\"extra\",\"port\":9}]}",
                   NULL, NULL));
  expect_diff(t, "{\"ports\":[{\"name\":\"a\",\"port\":1}]}", NULL, "b$2");
  /* empty target list against a non-empty actual: null vs map */
  expect_diff("{\"x-koreo-compare-as-map\":{\"l\":[\"k\"]},\"l\":[]}", "{\"l\":[{\"k\":1}]}", NULL,
              "<target:null, resource:object>");
  assert_true(
      cmpj("{\"x-koreo-compare-as-map\":{\"l\":[\"k\"]},\"l\":[]}", "{\"l\":[]}", NULL, NULL));
  /* a non-list under an as-map key mismatches instead of failing */
  expect_diff("{\"x-koreo-compare-as-map\":{\"l\":[\"k\"]},\"l\":5}", "{\"l\":[{\"k\":1}]}", NULL,
              "'l'");
}

static void test_compare_last_applied(void **s) {
  (void)s;
  const char *t = "{\"spec\":{\"x-koreo-compare-last-applied\":[\"size\"],"
                  "\"size\":\"1Gi\"}}";
  /* the live value is ignored, the recorded one counts */
  assert_true(
      cmpj(t, "{\"spec\":{\"size\":\"1073741824\"}}", "{\"spec\":{\"size\":\"1Gi\"}}", NULL));
  expect_diff(t, "{\"spec\":{\"size\":\"1Gi\"}}", "{\"spec\":{\"size\":\"2Gi\"}}", "'size'");
  /* no annotation: the recorded value is null and mismatches */
  expect_diff(t, "{\"spec\":{\"size\":\"1Gi\"}}", NULL, "null or missing");
  /* a key missing from the live object is fine via last-applied */
  assert_true(cmpj(t, "{\"spec\":{}}", "{\"spec\":{\"size\":\"1Gi\"}}", NULL));
  /* whole different live map ignored */
  assert_true(cmpj("{\"x-koreo-compare-last-applied\":[\"m\"],\"m\":{\"a\":1}}",
                   "{\"m\":{\"zzz\":true}}", "{\"m\":{\"a\":1}}", NULL));
  /* last-applied + as-set: the recorded value is compared as a set */
  assert_true(cmpj("{\"x-koreo-compare-last-applied\":[\"l\"],\"x-koreo-"
                   "compare-as-set\":[\"l\"],"
                   "\"l\":[1,2]}",
                   "{\"l\":[9]}", "{\"l\":[2,1]}", NULL));
}

static void test_write_body(void **s) {
  (void)s;
  kv *b = json("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
               "\"c\","
               "\"annotations\":{\"keep\":\"me\"}},\"x-koreo-compare-as-set\":[\"l\"],"
               "\"data\":{\"x-koreo-compare-last-applied\":[\"a\"],\"a\":\"1\","
               "\"l\":[{\"x-koreo-compare-as-map\":{}}]}}");
  kv *w = koreo_with_last_applied(b);
  const kv *ann = kv_map_get_str(kv_map_get_str(w, "metadata"), "annotations");
  assert_string_equal(kv_str(kv_map_get_str(ann, "keep")), "me");
  const kv *la = kv_map_get_str(ann, KOREO_LAST_APPLIED_ANNOTATION);
  assert_non_null(la);
  /* the annotation is the stripped body (without itself) */
  kv_parse_error e;
  kv *lav = kv_json_parse(kv_str(la), kv_len(la), &e);
  assert_non_null(lav);
  kv *stripped = koreo_strip_directives(b);
  assert_true(kv_equal_strict(lav, stripped, true));
  char *j = kv_json_write(stripped, 0, NULL);
  assert_null(strstr(j, "x-koreo"));
  free(j);
  j = kv_json_write(w, 0, NULL);
  assert_null(strstr(j, "x-koreo-compare-as-set"));
  free(j);
  kv_unref(lav);
  kv_unref(stripped);
  kv_unref(w);
  kv_unref(b);
  /* a body without metadata gets metadata.annotations */
  b = json("{\"a\":1}");
  w = koreo_with_last_applied(b);
  ann = kv_map_get_str(kv_map_get_str(w, "metadata"), "annotations");
  assert_string_equal(kv_str(kv_map_get_str(ann, KOREO_LAST_APPLIED_ANNOTATION)), "{\"a\":1}");
  kv_unref(w);
  kv_unref(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lists),
      cmocka_unit_test(test_sets),
      cmocka_unit_test(test_basics_and_types),
      cmocka_unit_test(test_maps),
      cmocka_unit_test(test_compare_as_map),
      cmocka_unit_test(test_compare_last_applied),
      cmocka_unit_test(test_write_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
