/*
 * tests/unit/test_value.c: the `kv` value model: construction, reference
 * counting, insertion-ordered maps (small and hash-indexed), key equality
 * across numeric kinds, strict equality, UTF-8 helpers, the double
 * formatter and the string builder (kv_strbuf, with UTF-8 and base64).
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

static void test_utf8_decode_and_encode(void **state) {
  (void)state;
  uint32_t cp = 7;
  assert_int_equal(kv_utf8_decode("A", 1, &cp), 1);
  assert_int_equal(cp, 'A');
  assert_int_equal(kv_utf8_decode("\xe2\x82\xac!", 4, &cp), 3); /* stops after one sequence */
  assert_int_equal(cp, 0x20AC);
  assert_int_equal(kv_utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
  assert_int_equal(cp, 0x1F600);
  cp = 7;
  assert_int_equal(kv_utf8_decode("", 0, &cp), 0);
  assert_int_equal(kv_utf8_decode("\xe2\x82", 2, &cp), 0);         /* truncated */
  assert_int_equal(kv_utf8_decode("\xe0\x80\xaf", 3, &cp), 0);     /* overlong */
  assert_int_equal(kv_utf8_decode("\xed\xb0\x80", 3, &cp), 0);     /* surrogate */
  assert_int_equal(kv_utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
  assert_int_equal(kv_utf8_decode("\x80", 1, &cp), 0);             /* stray continuation */
  assert_int_equal(cp, 7);                                         /* untouched on failure */

  static const struct {
    uint32_t cp;
    const char *utf8;
  } enc[] = {{0, ""}, /* U+0000: one NUL byte */
             {0x7F, "\x7f"},
             {0x80, "\xc2\x80"},
             {0x7FF, "\xdf\xbf"},
             {0x800, "\xe0\xa0\x80"},
             {0xD800, "\xed\xa0\x80"}, /* WTF-8: not checked */
             {0xFFFF, "\xef\xbf\xbf"},
             {0x10000, "\xf0\x90\x80\x80"},
             {0x10FFFF, "\xf4\x8f\xbf\xbf"}};
  for (size_t i = 0; i < sizeof enc / sizeof *enc; i++) {
    char out[4];
    size_t want = enc[i].cp ? strlen(enc[i].utf8) : 1;
    assert_int_equal(kv_utf8_encode(enc[i].cp, out), want);
    assert_memory_equal(out, enc[i].cp ? enc[i].utf8 : "\0", want);
    if (enc[i].cp && (enc[i].cp < 0xD800 || enc[i].cp > 0xDFFF)) {
      assert_int_equal(kv_utf8_decode(out, want, &cp), want);
      assert_int_equal(cp, enc[i].cp);
    }
  }
}

static void test_strbuf_builds_text(void **state) {
  (void)state;
  kv_strbuf b = {0};
  /* nothing appended: take still gives a fresh "" */
  size_t n = 99;
  char *s = kv_strbuf_take(&b, &n);
  assert_string_equal(s, "");
  assert_int_equal(n, 0);
  free(s);
  /* an empty append allocates and terminates */
  kv_strbuf_put(&b, NULL, 0);
  assert_non_null(b.p);
  assert_string_equal(b.p, "");

  kv_strbuf_puts(&b, "abc");
  kv_strbuf_putc(&b, '-');
  kv_strbuf_put(&b, "x\0y", 3); /* NUL bytes are kept */
  kv_strbuf_printf(&b, "[%d|%s]", 42, "ok");
  assert_int_equal(b.len, 4 + 3 + 7);
  assert_memory_equal(b.p, "abc-x\0y[42|ok]", b.len + 1);
  /* printf output longer than any internal scratch and than the buffer */
  char big[300];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = 0;
  kv_strbuf_clear(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.p, "");
  kv_strbuf_printf(&b, "<%s>", big);
  assert_int_equal(b.len, 301);
  assert_int_equal(b.p[0], '<');
  assert_int_equal(b.p[300], '>');
  assert_int_equal(b.p[301], 0);
  kv_strbuf_printf(&b, "%s", ""); /* appends nothing */
  assert_int_equal(b.len, 301);
  /* room for a short text, but not for this one: formatted again */
  kv_strbuf_printf(&b, "%s|", big);
  assert_int_equal(b.len, 301 + 300);
  assert_int_equal(b.p[300], '>');
  assert_int_equal(b.p[301], 'z');
  assert_int_equal(b.p[600], '|');
  assert_int_equal(b.p[601], 0);
  /* growth keeps earlier text through many reallocations */
  kv_strbuf_free(&b);
  assert_null(b.p);
  for (int i = 0; i < 10000; i++)
    kv_strbuf_putc(&b, (char)('a' + i % 26));
  assert_int_equal(b.len, 10000);
  assert_int_equal(b.p[9999], 'a' + 9999 % 26);
  assert_int_equal(b.p[10000], 0);
  assert_true(b.cap > b.len);
  kv_strbuf_put_utf8(&b, 0x20AC);
  assert_memory_equal(b.p + 10000, "\xe2\x82\xac", 4);
  kv *v = kv_strbuf_take_string(&b);
  assert_null(b.p);
  assert_int_equal(b.len, 0);
  assert_int_equal(kv_kind_of(v), KV_STRING);
  assert_int_equal(kv_len(v), 10003);
  kv_unref(v);
  v = kv_strbuf_take_string(&b); /* empty builder: "" */
  assert_int_equal(kv_len(v), 0);
  assert_string_equal(kv_str(v), "");
  kv_unref(v);
}

static void test_strbuf_base64(void **state) {
  (void)state;
  /* RFC 4648 section 10 test vectors */
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    kv_strbuf b = {0};
    kv_strbuf_putc(&b, '"');
    kv_strbuf_put_base64(&b, plain[i], strlen(plain[i]));
    kv_strbuf_putc(&b, '"');
    char want[16];
    snprintf(want, sizeof want, "\"%s\"", coded[i]);
    assert_string_equal(b.p, want);
    kv_strbuf_free(&b);
  }
  const unsigned char bin[] = {0xFB, 0xFF, 0x00};
  kv_strbuf b = {0};
  kv_strbuf_put_base64(&b, bin, 3);
  assert_string_equal(b.p, "+/8A"); /* the two non-alphanumeric digits */
  static const int digits[] = {62, 63, 60, 0};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(kv_base64_digit((unsigned char)b.p[i]), digits[i]);
  kv_strbuf_free(&b);
  assert_int_equal(kv_base64_digit('A'), 0);
  assert_int_equal(kv_base64_digit('z'), 51);
  assert_int_equal(kv_base64_digit('9'), 61);
  assert_int_equal(kv_base64_digit('='), -1);
  assert_int_equal(kv_base64_digit('-'), -1);
  assert_int_equal(kv_base64_digit(0xC3), -1);
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
      cmocka_unit_test(test_utf8_decode_and_encode),
      cmocka_unit_test(test_strbuf_builds_text),
      cmocka_unit_test(test_strbuf_base64),
      cmocka_unit_test(test_double_repr_round_trips),
      cmocka_unit_test(test_errors_and_positions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
