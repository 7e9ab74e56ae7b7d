/*
 * tests/unit/test_value.c: the `kv` value model: construction, reference
 * counting, insertion-ordered maps (small and hash-indexed), key equality
 * across numeric kinds, strict equality, UTF-8 helpers and the double
 * formatter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "koreo/value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_scalars(void **state) {
  (void)state;
  kv *i = kv_int(-42), *u = kv_uint(18446744073709551615ull), *d = kv_double(1.5);
  assert_int_equal(kv_kind_of(i), KV_INT);
  assert_true(i->u.i == -42);
  assert_true(u->u.u == 18446744073709551615ull);
  assert_true(d->u.d == 1.5);
  assert_ptr_equal(kv_null(), kv_null());
  assert_ptr_equal(kv_bool(true), kv_bool(true));
  assert_true(kv_bool(false)->u.b == false);
  /* immortal singletons survive any number of unrefs */
  kv_unref(kv_null());
  kv_unref(kv_bool(true));
  assert_int_equal(kv_kind_of(kv_null()), KV_NULL);
  kv_unref(i);
  kv_unref(u);
  kv_unref(d);
}

static void test_strings_are_copied_and_sized(void **state) {
  (void)state;
  char buf[] = "héllo";
  kv *s = kv_string(buf, strlen(buf));
  buf[0] = 'X';
  assert_string_equal(kv_str(s), "héllo");
  assert_int_equal(kv_len(s), 6);
  assert_int_equal(kv_utf8_count(kv_str(s), kv_len(s)), 5);
  kv *b = kv_bytes("\0a\0", 3);
  assert_int_equal(kv_len(b), 3);
  assert_int_equal(kv_str(b)[1], 'a');
  kv_unref(s);
  kv_unref(b);
}

static void test_refcount_shares_children(void **state) {
  (void)state;
  kv *child = kv_cstring("shared");
  kv *l1 = kv_list_new(0), *l2 = kv_list_new(1);
  kv_list_push(l1, kv_ref(child));
  kv_list_push(l2, kv_ref(child));
  assert_int_equal(child->refs, 3);
  kv_unref(l1);
  assert_int_equal(child->refs, 2);
  assert_string_equal(kv_str(kv_list_at(l2, 0)), "shared");
  kv_unref(l2);
  kv_unref(child);
}

static void test_map_keeps_insertion_order(void **state) {
  (void)state;
  kv *m = kv_map_new(0);
  kv_map_set_str(m, "zeta", kv_int(1));
  kv_map_set_str(m, "alpha", kv_int(2));
  kv_map_set_str(m, "mid", kv_int(3));
  kv_map_set_str(m, "zeta", kv_int(4)); /* replaced in place */
  assert_int_equal(kv_len(m), 3);
  assert_string_equal(kv_str(kv_map_key_at(m, 0)), "zeta");
  assert_true(kv_map_val_at(m, 0)->u.i == 4);
  assert_string_equal(kv_str(kv_map_key_at(m, 1)), "alpha");
  assert_string_equal(kv_str(kv_map_key_at(m, 2)), "mid");
  assert_null(kv_map_get_str(m, "nope"));
  kv_unref(m);
}

static void test_large_map_uses_index(void **state) {
  (void)state;
  kv *m = kv_map_new(0);
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    kv_map_set_str(m, key, kv_int(i));
  }
  assert_int_equal(kv_len(m), 1000);
  for (int i = 0; i < 1000; i += 37) {
    snprintf(key, sizeof key, "k%d", i);
    kv *v = kv_map_get_str(m, key);
    assert_non_null(v);
    assert_true(v->u.i == i);
  }
  /* order is still insertion order */
  assert_string_equal(kv_str(kv_map_key_at(m, 999)), "k999");
  kv_map_set_str(m, "k500", kv_int(-1));
  assert_int_equal(kv_len(m), 1000);
  assert_true(kv_map_get_str(m, "k500")->u.i == -1);
  kv_unref(m);
}

static void test_numeric_keys_compare_by_value(void **state) {
  (void)state;
  kv *m = kv_map_new(0);
  kv_map_set(m, kv_int(1), kv_cstring("one"));
  kv_map_set(m, kv_bool(true), kv_cstring("true"));
  kv *u1 = kv_uint(1), *d1 = kv_double(1.0), *d15 = kv_double(1.5), *t = kv_bool(true);
  assert_string_equal(kv_str(kv_map_get(m, u1)), "one");
  assert_string_equal(kv_str(kv_map_get(m, d1)), "one");
  assert_null(kv_map_get(m, d15));
  /* bool keys are not numbers */
  assert_string_equal(kv_str(kv_map_get(m, t)), "true");
  assert_int_equal(kv_len(m), 2);
  kv_unref(u1);
  kv_unref(d1);
  kv_unref(d15);
  kv_unref(m);
}

static void test_strict_equality_distinguishes_kinds(void **state) {
  (void)state;
  kv *i = kv_int(1), *u = kv_uint(1), *d = kv_double(1.0), *n1 = kv_double(NAN),
     *n2 = kv_double(NAN), *z = kv_double(0.0), *nz = kv_double(-0.0);
  assert_false(kv_equal_strict(i, u, false));
  assert_false(kv_equal_strict(i, d, false));
  assert_true(kv_equal_strict(n1, n2, false));
  assert_false(kv_equal_strict(z, nz, false));
  kv *a = kv_map_new(0), *b = kv_map_new(0);
  kv_map_set_str(a, "x", kv_int(1));
  kv_map_set_str(a, "y", kv_int(2));
  kv_map_set_str(b, "y", kv_int(2));
  kv_map_set_str(b, "x", kv_int(1));
  assert_true(kv_equal_strict(a, b, false));
  assert_false(kv_equal_strict(a, b, true));
  kv *objs[] = {i, u, d, n1, n2, z, nz, a, b};
  for (size_t k = 0; k < sizeof objs / sizeof *objs; k++)
    kv_unref(objs[k]);
}

static void test_utf8_validation(void **state) {
  (void)state;
  assert_true(kv_utf8_valid("plain", 5));
  assert_true(kv_utf8_valid(NULL, 0)); /* fuzz_cel regression: the empty string literal '' */
  assert_true(kv_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
  assert_false(kv_utf8_valid("\xc3", 1));             /* truncated */
  assert_false(kv_utf8_valid("\xc0\xaf", 2));         /* overlong */
  assert_false(kv_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  assert_false(kv_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_double_repr_round_trips(void **state) {
  (void)state;
  struct {
    double d;
    const char *want;
  } cases[] = {{3.0, "3.0"},         {1e20, "1e+20"},
               {1e16, "1e+16"},      {1e15, "1000000000000000.0"},
               {0.1, "0.1"},         {1e-05, "1e-05"},
               {0.0001, "0.0001"},   {-0.0, "-0.0"},
               {5e-324, "5e-324"},   {1.7976931348623157e308, "1.7976931348623157e+308"},
               {123.456, "123.456"}, {-2.5, "-2.5"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[32];
    kv_double_repr(cases[i].d, buf);
    assert_string_equal(buf, cases[i].want);
    assert_true(strtod(buf, NULL) == cases[i].d);
  }
}

static void test_errors_and_positions(void **state) {
  (void)state;
  kv *e = kv_error(3, 7, "no such key: '%s'", "x");
  assert_int_equal(kv_kind_of(e), KV_ERROR);
  assert_string_equal(e->u.err.msg, "no such key: 'x'");
  assert_int_equal(e->u.err.where, 7);
  kv_unref(e);
  kv *s = kv_cstring("v");
  const char *f = kv_intern_file("defs/a.yaml");
  assert_ptr_equal(f, kv_intern_file("defs/a.yaml"));
  kv_set_pos(s, f, 12, 4);
  assert_string_equal(kv_pos(s)->file, "defs/a.yaml");
  assert_int_equal(kv_pos(s)->line, 12);
  assert_int_equal(kv_pos(s)->col, 4);
  kv_unref(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scalars),
      cmocka_unit_test(test_strings_are_copied_and_sized),
      cmocka_unit_test(test_refcount_shares_children),
      cmocka_unit_test(test_map_keeps_insertion_order),
      cmocka_unit_test(test_large_map_uses_index),
      cmocka_unit_test(test_numeric_keys_compare_by_value),
      cmocka_unit_test(test_strict_equality_distinguishes_kinds),
      cmocka_unit_test(test_utf8_validation),
      cmocka_unit_test(test_double_repr_round_trips),
      cmocka_unit_test(test_errors_and_positions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
