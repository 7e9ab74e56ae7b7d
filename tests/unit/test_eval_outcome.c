/*
 * tests/unit/test_eval_outcome.c: outcomes (spec 3, upstream
 * tests/koreo/test_result.py): combination precedence and merging, the
 * text forms, classification, and conditions built from outcomes (6.9).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "koreo/eval.h"
#include "koreo/json.h"
#include "koreo/outcome.h"

#include <stdlib.h>
#include <string.h>

static void check_text(const koreo_outcome *o, const char *want) {
  char *t = koreo_outcome_text(o);
  assert_string_equal(t, want);
  free(t);
}

static void combine_and_free(koreo_outcome *items, size_t n, koreo_outcome *out) {
  *out = koreo_outcome_combine(items, n);
  for (size_t i = 0; i < n; i++)
    koreo_outcome_clear(&items[i]);
}

static void test_no_outcomes(void **s) {
  (void)s;
  koreo_outcome o = koreo_outcome_combine(NULL, 0);
  assert_int_equal(o.kind, KOREO_SKIP);
  assert_null(o.message);
  koreo_outcome_clear(&o);
}

static void test_depskips_and_skips(void **s) {
  (void)s;
  koreo_outcome a[3] = {koreo_outcome_depskip("a", NULL), koreo_outcome_depskip("b", NULL),
                        koreo_outcome_depskip(NULL, NULL)};
  koreo_outcome o;
  combine_and_free(a, 3, &o);
  assert_int_equal(o.kind, KOREO_DEPSKIP);
  koreo_outcome_clear(&o);
  /* Skip beats DepSkip in any order; the later Skip wins */
  koreo_outcome b[4] = {koreo_outcome_skip("first", NULL), koreo_outcome_depskip("x", NULL),
                        koreo_outcome_skip("second", NULL), koreo_outcome_depskip("y", NULL)};
  combine_and_free(b, 4, &o);
  assert_int_equal(o.kind, KOREO_SKIP);
  assert_string_equal(o.message, "second");
  koreo_outcome_clear(&o);
}

static void test_oks(void **s) {
  (void)s;
  koreo_outcome a[4] = {koreo_outcome_ok(kv_int(1), NULL), koreo_outcome_skip("s", NULL),
                        koreo_outcome_ok(NULL, NULL), koreo_outcome_ok(kv_bool(true), NULL)};
  koreo_outcome o;
  combine_and_free(a, 4, &o);
  assert_int_equal(o.kind, KOREO_OK);
  char *j = kv_json_write(o.value, 0, NULL);
  assert_string_equal(j, "[1,null,true]"); /* skips contribute nothing */
  free(j);
  koreo_outcome_clear(&o);
}

static void test_combine_one_value(void **s) {
  (void)s;
  koreo_outcome a[1] = {koreo_outcome_ok(kv_cstring("x"), NULL)};
  koreo_outcome o;
  combine_and_free(a, 1, &o);
  assert_int_equal(o.kind, KOREO_OK);
  assert_int_equal(o.value->kind, KV_LIST);
  assert_int_equal(kv_len(o.value), 1);
  assert_string_equal(kv_str(kv_list_at(o.value, 0)), "x");
  koreo_outcome_clear(&o);
}

static void test_retries(void **s) {
  (void)s;
  koreo_outcome a[4] = {koreo_outcome_retry(5, "one", "l1"), koreo_outcome_retry(60, NULL, NULL),
                        koreo_outcome_retry(17, "", NULL), koreo_outcome_retry(3, "two", "l2")};
  koreo_outcome o;
  combine_and_free(a, 4, &o);
  assert_int_equal(o.kind, KOREO_RETRY);
  assert_int_equal(o.delay, 60); /* the default delay participates in max */
  assert_string_equal(o.message, "one, two");
  assert_string_equal(o.location, "l1, l2");
  koreo_outcome_clear(&o);
}

static void test_skips_oks_and_retries(void **s) {
  (void)s;
  koreo_outcome a[5] = {koreo_outcome_ok(kv_int(1), NULL), koreo_outcome_retry(7, NULL, NULL),
                        koreo_outcome_skip("s", NULL), koreo_outcome_retry(9, "waiting", NULL),
                        koreo_outcome_depskip("d", NULL)};
  koreo_outcome o;
  combine_and_free(a, 5, &o);
  assert_int_equal(o.kind, KOREO_RETRY);
  assert_int_equal(o.delay, 9);
  assert_string_equal(o.message, "waiting");
  assert_null(o.value);
  koreo_outcome_clear(&o);
}

static void test_permfail(void **s) {
  (void)s;
  koreo_outcome a[5] = {koreo_outcome_permfail("a", NULL), koreo_outcome_retry(7, "r", NULL),
                        koreo_outcome_permfail(NULL, NULL), koreo_outcome_ok(kv_int(1), NULL),
                        koreo_outcome_permfail("b", NULL)};
  koreo_outcome o;
  combine_and_free(a, 5, &o);
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  assert_string_equal(o.message, "a, b"); /* only PermFail messages */
  koreo_outcome_clear(&o);
}

static void test_combine_ptrs_ignores_null(void **s) {
  (void)s;
  koreo_outcome a = koreo_outcome_ok(kv_int(2), NULL), b = koreo_outcome_skip(NULL, NULL);
  const koreo_outcome *p[3] = {&a, NULL, &b};
  koreo_outcome o = koreo_outcome_combine_ptrs(p, 3);
  assert_int_equal(o.kind, KOREO_OK);
  assert_int_equal(kv_len(o.value), 1);
  koreo_outcome_clear(&o);
  koreo_outcome_clear(&a);
  koreo_outcome_clear(&b);
}

static void test_classification(void **s) {
  (void)s;
  koreo_outcome o[5] = {koreo_outcome_depskip(NULL, NULL), koreo_outcome_skip(NULL, NULL),
                        koreo_outcome_ok(NULL, NULL), koreo_outcome_retry(1, NULL, NULL),
                        koreo_outcome_permfail(NULL, NULL)};
  bool ok[5] = {false, false, true, false, false};
  bool err[5] = {false, false, false, true, true};
  bool skip[5] = {true, true, false, false, false};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(koreo_outcome_is_ok(&o[i]), ok[i]);
    assert_int_equal(koreo_outcome_is_error(&o[i]), err[i]);
    assert_int_equal(koreo_outcome_is_skip(&o[i]), skip[i]);
    koreo_outcome_clear(&o[i]);
  }
  koreo_outcome z = {0}; /* zero outcome: DepSkip without message */
  assert_int_equal(z.kind, KOREO_DEPSKIP);
  koreo_outcome_clear(&z);
  koreo_outcome_clear(&z);
}

static void test_text_forms(void **s) {
  (void)s;
  koreo_outcome o = koreo_outcome_skip(NULL, NULL);
  check_text(&o, "User Skip");
  koreo_outcome_clear(&o);
  o = koreo_outcome_skip("off", NULL);
  check_text(&o, "Skip (message=off)");
  koreo_outcome_clear(&o);
  o = koreo_outcome_depskip(NULL, NULL);
  check_text(&o, "Dependency Violation Skip");
  koreo_outcome_clear(&o);
  o = koreo_outcome_depskip("dep", NULL);
  check_text(&o, "Dependency Skip (message=dep)");
  koreo_outcome_clear(&o);
  o = koreo_outcome_retry(30, "later", NULL);
  check_text(&o, "Retry(delay=30, message=later)");
  koreo_outcome_clear(&o);
  o = koreo_outcome_permfail(NULL, NULL);
  check_text(&o, "Permanent Failure (message=None)");
  koreo_outcome_clear(&o);
  o = koreo_outcome_make(KOREO_PERMFAIL, 0, "loc", "bad %d", 7);
  check_text(&o, "Permanent Failure (message=bad 7)");
  assert_string_equal(o.location, "loc");
  koreo_outcome_clear(&o);
  o = koreo_outcome_ok(kv_int(3), NULL);
  check_text(&o, "Ok(data=3)");
  kv *k = koreo_outcome_to_kv(&o);
  char *j = kv_json_write(k, 0, NULL);
  assert_string_equal(j, "{\"kind\":\"Ok\",\"value\":3}");
  free(j);
  kv_unref(k);
  koreo_outcome c = koreo_outcome_copy(&o);
  koreo_outcome_clear(&o);
  assert_int_equal(c.value->u.i, 3);
  koreo_outcome t = koreo_outcome_take(&c);
  assert_null(c.value);
  koreo_outcome_clear(&t);
}

static void check_cond(const kv *c, const char *reason, const char *message) {
  assert_string_equal(kv_str(kv_map_get_str(c, "status")), "True");
  assert_string_equal(kv_str(kv_map_get_str(c, "reason")), reason);
  assert_string_equal(kv_str(kv_map_get_str(c, "message")), message);
}

static void test_conditions(void **s) {
  (void)s;
  struct {
    koreo_outcome o;
    const char *reason, *message;
  } cases[] = {
      {koreo_outcome_ok(NULL, NULL), "Ready", "N ready."},
      {koreo_outcome_ok(kv_list_new(0), NULL), "Ready", "N ready."}, /* falsy values are Ok */
      {koreo_outcome_ok(kv_bool(false), NULL), "Ready", "N ready."},
      {koreo_outcome_depskip(NULL, NULL), "DepSkip", "N awaiting dependencies to be ready."},
      {koreo_outcome_depskip("m", NULL), "DepSkip", "N awaiting dependencies to be ready (m)"},
      {koreo_outcome_skip(NULL, NULL), "Skip", "N management is disabled."},
      {koreo_outcome_skip("m", NULL), "Skip", "Skipping N: m"},
      {koreo_outcome_retry(1, NULL, NULL), "Wait", "Awaiting N to be ready."},
      {koreo_outcome_retry(1, "m", NULL), "Wait", "Awaiting N to be ready (m)."},
      {koreo_outcome_permfail(NULL, NULL), "Failure", "Unrecoverable error reconciling N. (None)."},
      {koreo_outcome_permfail("m", "here"), "Failure", "Unrecoverable error reconciling N. (m)."},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    kv *c = koreo_condition("T", "N", &cases[i].o, "wf");
    check_cond(c, cases[i].reason, cases[i].message);
    assert_string_equal(kv_str(kv_map_get_str(c, "type")), "T");
    const kv *loc = kv_map_get_str(c, "location");
    if (cases[i].o.kind == KOREO_OK) assert_string_equal(kv_str(loc), "wf");
    kv_unref(c);
    koreo_outcome_clear(&cases[i].o);
  }
}

static kv *json(const char *s) {
  kv_parse_error e;
  kv *v = kv_json_parse(s, strlen(s), &e);
  assert_non_null(v);
  return v;
}

static void test_conditions_update(void **s) {
  (void)s;
  kv *c1 = json("{\"type\":\"A\",\"status\":\"True\",\"reason\":\"Ready\"}");
  kv *l0 = kv_list_new(0);
  kv *l1 = koreo_conditions_update(l0, c1, "t1");
  assert_int_equal(kv_len(l0), 0); /* input not mutated */
  assert_int_equal(kv_len(l1), 1);
  const kv *e = kv_list_at(l1, 0);
  assert_string_equal(kv_str(kv_map_get_str(e, "lastTransitionTime")), "t1");
  assert_string_equal(kv_str(kv_map_get_str(e, "lastUpdateTime")), "t1");
  /* same status again: transition time kept, update time refreshed */
  kv *l2 = koreo_conditions_update(l1, c1, "t2");
  e = kv_list_at(l2, 0);
  assert_string_equal(kv_str(kv_map_get_str(e, "lastTransitionTime")), "t1");
  assert_string_equal(kv_str(kv_map_get_str(e, "lastUpdateTime")), "t2");
  /* another type appended; a status change moves the transition time */
  kv *c2 = json("{\"type\":\"B\",\"status\":\"True\"}");
  kv *l3 = koreo_conditions_update(l2, c2, "t3");
  kv *c1b = json("{\"type\":\"A\",\"status\":\"False\",\"reason\":\"Wait\"}");
  kv *l4 = koreo_conditions_update(l3, c1b, "t4");
  assert_int_equal(kv_len(l4), 2);
  e = kv_list_at(l4, 0);
  assert_string_equal(kv_str(kv_map_get_str(e, "reason")), "Wait");
  assert_string_equal(kv_str(kv_map_get_str(e, "lastTransitionTime")), "t4");
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(l4, 1), "type")), "B");
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(l4, 1), "lastUpdateTime")), "t3");
  kv *arr[] = {c1, l0, l1, l2, c2, l3, c1b, l4};
  for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
    kv_unref(arr[i]);
}

static void test_parent_and_owner(void **s) {
  (void)s;
  kv *t = json("{\"apiVersion\":\"ex.com/"
               "v1\",\"kind\":\"App\",\"metadata\":{\"name\":\"a\","
               "\"namespace\":\"ns\",\"uid\":\"u-1\"},\"spec\":{\"x\":1},"
               "\"status\":{\"state\":"
               "{\"k\":2},\"conditions\":[]}}");
  kv *p = koreo_parent_from_trigger(t);
  char *j = kv_json_write(p, 0, NULL);
  assert_string_equal(j, "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"uid\":\"u-1\"},"
                         "\"spec\":{\"x\":1},\"state\":{\"k\":2}}");
  free(j);
  kv *o = koreo_owner_ref_from_trigger(t);
  j = kv_json_write(o, KV_JSON_SORT_KEYS, NULL);
  assert_string_equal(j, "{\"apiVersion\":\"ex.com/v1\",\"blockOwnerDeletion\":true,"
                         "\"controller\":false,\"kind\":\"App\",\"name\":\"a\",\"uid\":\"u-1\"}");
  free(j);
  kv_unref(p);
  kv_unref(o);
  kv_unref(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_outcomes),
      cmocka_unit_test(test_depskips_and_skips),
      cmocka_unit_test(test_oks),
      cmocka_unit_test(test_combine_one_value),
      cmocka_unit_test(test_retries),
      cmocka_unit_test(test_skips_oks_and_retries),
      cmocka_unit_test(test_permfail),
      cmocka_unit_test(test_combine_ptrs_ignores_null),
      cmocka_unit_test(test_classification),
      cmocka_unit_test(test_text_forms),
      cmocka_unit_test(test_conditions),
      cmocka_unit_test(test_conditions_update),
      cmocka_unit_test(test_parent_and_owner),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
