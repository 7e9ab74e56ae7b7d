/*
 * tests/unit/test_json.c: kv_json_parse / kv_json_write / kv_read_file
 * (koreo/json.h): number kinds, unicode, errors with line and column,
 * deterministic output, round trips, and regression inputs from fuzzing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// cmocka must come after the headers above

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/json.h"

static kv *parse_ok(const char *text) {
  kv_parse_error err;
  kv *v = kv_json_parse(text, strlen(text), &err);
  if (!v) fail_msg("parse of %s failed: %u:%u %s", text, err.line, err.col, err.msg);
  return v;
}

/* Parse must fail at line:col with a message containing `needle`. */
static void parse_err(const char *text, size_t len, uint32_t line, uint32_t col,
                      const char *needle) {
  kv_parse_error err;
  kv *v = kv_json_parse(text, len, &err);
  if (v) {
    char *s = kv_json_write(v, 0, NULL);
    kv_unref(v);
    fail_msg("parse of %s unexpectedly gave %s", text, s);
  }
  if (err.line != line || err.col != col || !strstr(err.msg, needle))
    fail_msg("parse of %s: got %u:%u '%s', want %u:%u '...%s...'", text, err.line, err.col, err.msg,
             line, col, needle);
}

static void write_is(const kv *v, unsigned flags, const char *want) {
  size_t n = 0;
  char *s = kv_json_write(v, flags, &n);
  assert_string_equal(s, want);
  assert_int_equal(n, strlen(want));
  free(s);
}

/* parse -> write (compact) == want */
static void norm_is(const char *text, const char *want) {
  kv *v = parse_ok(text);
  write_is(v, 0, want);
  kv_unref(v);
}

static void test_number_kinds(void **state) {
  (void)state;
  struct {
    const char *text;
    kv_kind kind;
  } cases[] = {
      {"3", KV_INT},   {"3.0", KV_DOUBLE},    {"1e20", KV_DOUBLE},  {"1E5", KV_DOUBLE},
      {"-0", KV_INT},  {"-0.0", KV_DOUBLE},   {"1e+20", KV_DOUBLE}, {"0", KV_INT},
      {"-12", KV_INT}, {"2.5e-3", KV_DOUBLE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    kv *v = parse_ok(cases[i].text);
    if (kv_kind_of(v) != cases[i].kind)
      fail_msg("%s: kind %s, want %s", cases[i].text, kv_kind_name(kv_kind_of(v)),
               kv_kind_name(cases[i].kind));
    kv_unref(v);
  }
  kv *v = parse_ok("3");
  assert_int_equal(v->u.i, 3);
  kv_unref(v);
  v = parse_ok("-0");
  assert_int_equal(v->u.i, 0);
  kv_unref(v);
  /* integers keep their nature through a write */
  norm_is("[3, 3.0, 1e20, -0, 1E5, 0.1, 5e-324, -0.0]", "[3,3.0,1e+20,0,100000.0,0.1,5e-324,-0.0]");
  norm_is("{\"replicas\": 3}", "{\"replicas\":3}");
}

static void test_int_limits(void **state) {
  (void)state;
  kv *v = parse_ok("[9223372036854775807, -9223372036854775808, 9223372036854775808, "
                   "18446744073709551615]");
  assert_int_equal(kv_kind_of(kv_list_at(v, 0)), KV_INT);
  assert_true(kv_list_at(v, 0)->u.i == INT64_MAX);
  assert_int_equal(kv_kind_of(kv_list_at(v, 1)), KV_INT);
  assert_true(kv_list_at(v, 1)->u.i == INT64_MIN);
  assert_int_equal(kv_kind_of(kv_list_at(v, 2)), KV_UINT);
  assert_true(kv_list_at(v, 2)->u.u == (uint64_t)INT64_MAX + 1);
  assert_int_equal(kv_kind_of(kv_list_at(v, 3)), KV_UINT);
  assert_true(kv_list_at(v, 3)->u.u == UINT64_MAX);
  write_is(v, 0,
           "[9223372036854775807,-9223372036854775808,9223372036854775808,18446744073709551615]");
  kv_unref(v);
  parse_err("[1,\n 18446744073709551616]", 26, 2, 2, "out of range");
  parse_err("-9223372036854775809", 20, 1, 1, "out of range");
  parse_err("99999999999999999999999", 23, 1, 1, "out of range");
  /* large doubles are fine: they have an exponent or a fraction */
  v = parse_ok("1e400");
  assert_true(isinf(v->u.d));
  kv_unref(v);
  v = parse_ok("123456789012345678901234567890.0");
  assert_int_equal(kv_kind_of(v), KV_DOUBLE);
  assert_true(v->u.d == 123456789012345678901234567890.0);
  kv_unref(v);
}

static void test_unicode(void **state) {
  (void)state;
  kv *v = parse_ok("\"caf\\u00e9 \xc3\xa9 \\ud83d\\ude00 \xf0\x9f\x98\x80\"");
  assert_string_equal(kv_str(v), "caf\xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
  /* non-ASCII is written raw */
  write_is(v, 0, "\"caf\xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80\"");
  kv_unref(v);
  /* \u0000 keeps the whole string (length 3) */
  v = parse_ok("\"a\\u0000b\"");
  assert_int_equal(kv_len(v), 3);
  assert_memory_equal(kv_str(v), "a\0b", 3);
  write_is(v, 0, "\"a\\u0000b\"");
  kv_unref(v);
  /* escapes */
  v = parse_ok("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"");
  assert_string_equal(kv_str(v), "\"\\/\b\f\n\r\t\x01\x1f\x7f");
  write_is(v, 0, "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
  kv_unref(v);
  /* keys are decoded too */
  v = parse_ok("{\"\\u00e9\": 1}");
  assert_non_null(kv_map_get_str(v, "\xc3\xa9"));
  kv_unref(v);
}

static void test_unicode_errors(void **state) {
  (void)state;
  /* lone surrogates are errors (documented policy), at the escape */
  parse_err("\"ab\\ud800\"", 10, 1, 4, "lone high surrogate");
  parse_err("\"\\ud800\\u0041\"", 14, 1, 2, "lone high surrogate");
  parse_err("\"\\udc00\"", 8, 1, 2, "lone low surrogate");
  parse_err("\"\\u12g4\"", 8, 1, 2, "invalid \\u escape");
  parse_err("\"\\x\"", 4, 1, 2, "invalid escape");
  /* invalid UTF-8: position counts code points (é is one column) */
  parse_err("{\"k\":\n \"\xc3\xa9\xff\"}", 11, 2, 4, "invalid UTF-8");
  parse_err("\"\xc0\xaf\"", 4, 1, 2, "invalid UTF-8");     /* overlong */
  parse_err("\"\xed\xa0\x80\"", 5, 1, 2, "invalid UTF-8"); /* encoded surrogate */
  parse_err("\"\xe2\x82\"", 4, 1, 2, "invalid UTF-8");     /* truncated */
  parse_err("\xff", 1, 1, 1, "invalid UTF-8");
  /* raw control characters must be escaped */
  parse_err("\"a\tb\"", 5, 1, 3, "control character U+0009");
  parse_err("\"a\0b\"", 5, 1, 3, "control character U+0000");
}

static void test_syntax_errors(void **state) {
  (void)state;
  parse_err("", 0, 1, 1, "unexpected end of input");
  parse_err("   \n  ", 6, 2, 3, "unexpected end of input");
  parse_err("[1,]", 4, 1, 4, "unexpected character ']'");
  parse_err("[1 2]", 5, 1, 4, "expected ',' or ']'");
  parse_err("{\"a\" 1}", 7, 1, 6, "expected ':'");
  parse_err("{\"a\": 1,}", 9, 1, 9, "expected a string key");
  parse_err("{a: 1}", 6, 1, 2, "unexpected character 'a'");
  parse_err("[\n  1,\n  x\n]", 12, 3, 3, "unexpected character 'x'");
  parse_err("{\"\xc3\xa9\xc3\xa9\": tru}", 17, 1, 11, "unexpected character '}'");
  parse_err("[1", 2, 1, 3, "unexpected end of input");
  parse_err("\"abc", 4, 1, 1, "unterminated string");
  parse_err("01", 2, 1, 1, "leading zeros");
  parse_err("1.", 2, 1, 3, "digit after '.'");
  parse_err("1e", 2, 1, 3, "exponent");
  parse_err(".5", 2, 1, 1, "unexpected character '.'");
  parse_err("+1", 2, 1, 1, "unexpected character '+'");
  parse_err("-", 1, 1, 2, "unexpected end of input");
  parse_err("NaN", 3, 1, 1, "unexpected character 'N'");
  parse_err("{} x", 4, 1, 4, "expected end of input");
  parse_err("[1] [2]", 7, 1, 5, "expected end of input");
  /* a number token beyond cJSON's 63 characters is refused explicitly */
  char longnum[80];
  memset(longnum, '1', 70);
  memcpy(longnum, "0.", 2);
  longnum[70] = 0;
  parse_err(longnum, 70, 1, 1, "longer than 63");
}

static void test_nesting_limit(void **state) {
  (void)state;
  char buf[2100];
  for (int i = 0; i < 1000; i++)
    buf[i] = '[';
  for (int i = 0; i < 1000; i++)
    buf[1000 + i] = ']';
  kv *v = kv_json_parse(buf, 2000, NULL);
  assert_non_null(v);
  kv_unref(v);
  buf[0] = '[';
  for (int i = 0; i < 1001; i++)
    buf[i] = '[';
  for (int i = 0; i < 1001; i++)
    buf[1001 + i] = ']';
  parse_err(buf, 2002, 1, 1001, "nesting deeper than 1000");
}

static void test_duplicate_keys(void **state) {
  (void)state;
  /* last value wins, at the position of the first key (Python json.loads) */
  norm_is("{\"a\": 1, \"b\": 2, \"a\": 3}", "{\"a\":3,\"b\":2}");
}

static void test_write_scalars(void **state) {
  (void)state;
  kv *v = kv_list_new(0);
  kv_list_push(v, kv_null());
  kv_list_push(v, kv_bool(true));
  kv_list_push(v, kv_bool(false));
  kv_list_push(v, kv_int(-5));
  kv_list_push(v, kv_uint(UINT64_MAX));
  kv_list_push(v, kv_double(2.0));
  kv_list_push(v, kv_double(1e20));
  kv_list_push(v, kv_double(NAN));
  kv_list_push(v, kv_double(INFINITY));
  kv_list_push(v, kv_double(-INFINITY));
  kv_list_push(v, kv_bytes("", 0));
  kv_list_push(v, kv_bytes("f", 1));
  kv_list_push(v, kv_bytes("fo", 2));
  kv_list_push(v, kv_bytes("foo", 3));
  kv_list_push(v, kv_bytes("\xff\xfe\x00", 3));
  kv_list_push(v, kv_timestamp(1234567890, 0));
  kv_list_push(v, kv_timestamp(0, 500000000));
  kv_list_push(v, kv_timestamp(-1, 123456789));
  kv_list_push(v, kv_timestamp(253402300799LL, 1000)); /* 9999-12-31T23:59:59.000001Z */
  kv_list_push(v, kv_timestamp(-62135596800LL, 0));    /* 0001-01-01 */
  kv_list_push(v, kv_duration(1, 500000000));
  kv_list_push(v, kv_duration(0, -250000000));
  kv_list_push(v, kv_duration(3600, 0));
  kv_list_push(v, kv_duration(-2, -1));
  kv_list_push(v, kv_type("google.protobuf.Timestamp"));
  kv_list_push(v, kv_error(0, 3, "no such key: %s", "x"));
  write_is(v, 0,
           "[null,true,false,-5,18446744073709551615,2.0,1e+20,\"NaN\",\"Infinity\",\"-Infinity\","
           "\"\",\"Zg==\",\"Zm8=\",\"Zm9v\",\"//4A\","
           "\"2009-02-13T23:31:30Z\",\"1970-01-01T00:00:00.500Z\","
           "\"1969-12-31T23:59:59.123456789Z\",\"9999-12-31T23:59:59.000001Z\","
           "\"0001-01-01T00:00:00Z\","
           "\"1.5s\",\"-0.25s\",\"3600s\",\"-2.000000001s\",\"google.protobuf.Timestamp\","
           "{\"error\":\"no such key: x\"}]");
  kv_unref(v);
}

static kv *sample_map(void) {
  kv *m = kv_map_new(0);
  kv_map_set_str(m, "zeta", kv_int(1));
  kv *l = kv_list_new(0);
  kv_list_push(l, kv_double(1.5));
  kv_list_push(l, kv_cstring("x"));
  kv_list_push(l, kv_map_new(0));
  kv_list_push(l, kv_list_new(0));
  kv_map_set_str(m, "alpha", l);
  kv *inner = kv_map_new(0);
  kv_map_set_str(inner, "b", kv_null());
  kv_map_set_str(inner, "a", kv_bool(true));
  kv_map_set_str(m, "Beta", inner);
  return m;
}

static void test_write_maps(void **state) {
  (void)state;
  kv *m = sample_map();
  write_is(m, 0, "{\"zeta\":1,\"alpha\":[1.5,\"x\",{},[]],\"Beta\":{\"b\":null,\"a\":true}}");
  write_is(m, KV_JSON_SORT_KEYS,
           "{\"Beta\":{\"a\":true,\"b\":null},\"alpha\":[1.5,\"x\",{},[]],\"zeta\":1}");
  write_is(m, KV_JSON_PRETTY | KV_JSON_SORT_KEYS,
           "{\n"
           "  \"Beta\": {\n"
           "    \"a\": true,\n"
           "    \"b\": null\n"
           "  },\n"
           "  \"alpha\": [\n"
           "    1.5,\n"
           "    \"x\",\n"
           "    {},\n"
           "    []\n"
           "  ],\n"
           "  \"zeta\": 1\n"
           "}");
  /* deterministic: the same text every time */
  char *a = kv_json_write(m, KV_JSON_PRETTY, NULL), *b = kv_json_write(m, KV_JSON_PRETTY, NULL);
  assert_string_equal(a, b);
  free(a);
  free(b);
  kv_unref(m);
  /* non-string keys are written as their JSON text */
  m = kv_map_new(0);
  kv_map_set(m, kv_int(1), kv_cstring("one"));
  kv_map_set(m, kv_bool(true), kv_cstring("t"));
  kv_map_set(m, kv_null(), kv_cstring("n"));
  kv_map_set(m, kv_double(2.5), kv_cstring("d"));
  write_is(m, 0, "{\"1\":\"one\",\"true\":\"t\",\"null\":\"n\",\"2.5\":\"d\"}");
  write_is(m, KV_JSON_SORT_KEYS, "{\"1\":\"one\",\"2.5\":\"d\",\"null\":\"n\",\"true\":\"t\"}");
  kv_unref(m);
  /* sort keys compares bytes: shorter prefix first, UTF-8 after ASCII */
  m = kv_map_new(0);
  kv_map_set_str(m, "\xc3\xa9", kv_int(1));
  kv_map_set_str(m, "ab", kv_int(2));
  kv_map_set_str(m, "a", kv_int(3));
  write_is(m, KV_JSON_SORT_KEYS, "{\"a\":3,\"ab\":2,\"\xc3\xa9\":1}");
  kv_unref(m);
}

static void test_round_trip(void **state) {
  (void)state;
  const char *docs[] = {
      "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"spec\":{\"replicas\":3,"
      "\"ratio\":0.25,\"big\":18446744073709551615,\"neg\":-9223372036854775808,"
      "\"tiny\":5e-324,\"tags\":[\"a\",\"\xc3\xa9\",\"\\u0000\",\"\\n\"],\"on\":true,\"off\":false,"
      "\"none\":null,\"empty\":{},\"list\":[]}}",
      "[1e+300,-1.5e-300,0.30000000000000004,100.0,1e+16,12345678901234567.0]",
      "\"\\ud834\\udd1e\"",
  };
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
    kv *a = parse_ok(docs[i]);
    for (unsigned flags = 0; flags < 4; flags++) {
      size_t n;
      char *s = kv_json_write(a, flags, &n);
      kv_parse_error err;
      kv *b = kv_json_parse(s, n, &err);
      if (!b) fail_msg("re-parse of %s failed: %s", s, err.msg);
      if (!kv_equal_strict(a, b, !(flags & KV_JSON_SORT_KEYS)))
        fail_msg("round trip changed %s into %s", docs[i], s);
      kv_unref(b);
      free(s);
    }
    kv_unref(a);
  }
}

/* Inputs that once broke the parser or writer (from fuzzing and review). */
static void test_regressions(void **state) {
  (void)state;
  /* an escaped quote must not end the string */
  norm_is("[\"a\\\"\", 1]", "[\"a\\\"\",1]");
  /* a backslash as the last byte */
  parse_err("\"\\", 2, 1, 1, "unterminated string");
  /* a surrogate pair cut short at the end of input */
  parse_err("\"\\ud800\\u", 9, 1, 2, "lone high surrogate");
  /* input not NUL-terminated: the parser must respect `len` */
  kv *v = kv_json_parse("123456", 3, NULL);
  assert_non_null(v);
  assert_int_equal(v->u.i, 123);
  kv_unref(v);
  /* NULL text is an empty document, not undefined behaviour */
  parse_err(NULL, 0, 1, 1, "unexpected end of input");
  v = kv_json_parse("[1, 2]xyz", 6, NULL);
  assert_non_null(v);
  assert_int_equal(kv_len(v), 2);
  kv_unref(v);
}

static void test_read_file(void **state) {
  (void)state;
  const char *dir = getenv("KOREO_TEST_DATA");
  if (!dir) dir = "tests/data";
  char path[1024];
  snprintf(path, sizeof path, "%s/yaml/multi.yaml", dir);
  size_t n = 0;
  kv_parse_error err;
  char *s = kv_read_file(path, &n, &err);
  if (!s) fail_msg("%s", err.msg);
  assert_true(n > 0);
  assert_int_equal(strlen(s), n);
  assert_non_null(strstr(s, "kind: ValueFunction"));
  free(s);
  s = kv_read_file("/nonexistent/koreo/file.json", &n, &err);
  assert_null(s);
  assert_non_null(strstr(err.msg, "/nonexistent/koreo/file.json"));
  assert_non_null(strstr(err.msg, "No such file or directory"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_number_kinds),   cmocka_unit_test(test_int_limits),
      cmocka_unit_test(test_unicode),        cmocka_unit_test(test_unicode_errors),
      cmocka_unit_test(test_syntax_errors),  cmocka_unit_test(test_nesting_limit),
      cmocka_unit_test(test_duplicate_keys), cmocka_unit_test(test_write_scalars),
      cmocka_unit_test(test_write_maps),     cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_regressions),    cmocka_unit_test(test_read_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
