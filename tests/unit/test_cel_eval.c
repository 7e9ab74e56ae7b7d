/*
 * tests/unit/test_cel_eval.c: the evaluator's behaviour in the standard
 * environment: results, error categories and the line/column they point
 * at, short-circuit error absorption, macros, compile-time checks,
 * qualified names, and compile-once/evaluate-many.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "koreo/cel.h"
#include "koreo/json.h"

#include <stdlib.h>
#include <string.h>

static cel_env *env;

static int setup(void **state) {
  (void)state;
  env = cel_env_new_standard(CEL_EXT_STRINGS | CEL_EXT_MATH);
  return 0;
}
static int teardown(void **state) {
  (void)state;
  cel_env_free(env);
  return 0;
}

static kv *json(const char *s) {
  kv_parse_error e;
  kv *v = kv_json_parse(s, strlen(s), &e);
  assert_non_null(v);
  return v;
}

/* Evaluate `src` with JSON bindings; returns the result or NULL with *st. */
static kv *run(const char *src, const char *bindings, cel_status *st) {
  cel_program *p = cel_compile(env, src, strlen(src), st);
  if (!p) return NULL;
  kv *b = bindings ? json(bindings) : NULL;
  kv *r = cel_eval(p, b, st);
  kv_unref(b);
  cel_program_free(p);
  return r;
}

static void expect_json(const char *src, const char *bindings, const char *want) {
  cel_status st;
  kv *r = run(src, bindings, &st);
  if (!r) fail_msg("%s: unexpected error at %u:%u: %s", src, st.line, st.col, st.msg);
  char *got = kv_json_write(r, 0, NULL);
  if (strcmp(got, want) != 0) fail_msg("%s: got %s, want %s", src, got, want);
  free(got);
  kv_unref(r);
}

static void expect_error(const char *src, const char *bindings, int stage, cel_error_code code,
                         uint32_t line, uint32_t col, const char *msg_part) {
  cel_status st;
  kv *r = run(src, bindings, &st);
  if (r) {
    char *got = kv_json_write(r, 0, NULL);
    fail_msg("%s: expected an error, got %s", src, got);
  }
  if (st.stage != stage || st.code != code)
    fail_msg("%s: stage %d code %d (%s), want stage %d code %d", src, st.stage, st.code, st.msg,
             stage, code);
  if (line && (st.line != line || st.col != col))
    fail_msg("%s: error at %u:%u (%s), want %u:%u", src, st.line, st.col, st.msg, line, col);
  if (msg_part && !strstr(st.msg, msg_part))
    fail_msg("%s: message '%s' lacks '%s'", src, st.msg, msg_part);
}

static void test_values(void **state) {
  (void)state;
  expect_json("inputs.a + 1", "{\"inputs\":{\"a\":41}}", "42");
  expect_json("'a' + 'b' + string(3)", NULL, "\"ab3\"");
  expect_json("[1, 2] + [3]", NULL, "[1,2,3]");
  expect_json("{'a': 1}.a == 1 ? 'yes' : 'no'", NULL, "\"yes\"");
  expect_json("3 / 2", NULL, "1");
  expect_json("-7 % 3", NULL, "-1");
  expect_json("7.0 / 2.0", NULL, "3.5");
  expect_json("1 == 1.0 && 1u == 1 && 2 > 1.5", NULL, "true");
  expect_json("'b' in ['a', 'b'] && 'k' in {'k': 1}", NULL, "true");
  expect_json("size('héllo')", NULL, "5");
  expect_json("'abc'.matches('^a.c$')", NULL, "true");
  expect_json("int(-1.9)", NULL, "-1");
}

static void test_runtime_errors_point_at_the_operator(void **state) {
  (void)state;
  expect_error("1 + 1 / 0", NULL, 2, CEL_ERR_DIV_ZERO, 1, 7, "division by zero");
  expect_error("5 % 0", NULL, 2, CEL_ERR_DIV_ZERO, 1, 3, "modulus by zero");
  expect_error("9223372036854775807 + 1", NULL, 2, CEL_ERR_OVERFLOW, 1, 21, "overflow");
  expect_error("-9223372036854775808 - 1", NULL, 2, CEL_ERR_OVERFLOW, 0, 0, "overflow");
  expect_error("0u - 1u", NULL, 2, CEL_ERR_OVERFLOW, 0, 0, "overflow");
  expect_error("x.missing", "{\"x\":{}}", 2, CEL_ERR_NO_SUCH_KEY, 1, 2, "missing");
  expect_error("x['k']", "{\"x\":{}}", 2, CEL_ERR_NO_SUCH_KEY, 1, 2, "no such key: 'k'");
  expect_error("[1, 2][5]", NULL, 2, CEL_ERR_RANGE, 0, 0, "index out of range");
  expect_error("nope + 1", NULL, 2, CEL_ERR_UNDECLARED, 1, 1, "'nope'");
  expect_error("'a' + 1", NULL, 2, CEL_ERR_NO_OVERLOAD, 1, 5, "(string, int)");
  expect_error("x\n  .y", "{\"x\":{}}", 2, CEL_ERR_NO_SUCH_KEY, 2, 3, "'y'");
  expect_error("'日本' + x.y", "{\"x\":{}}", 2, CEL_ERR_NO_SUCH_KEY, 1, 9, NULL);
  expect_error("'abc'.matches('(')", NULL, 2, CEL_ERR_INVALID, 0, 0, "regular expression");
  expect_error("int('12x')", NULL, 2, CEL_ERR_INVALID, 0, 0, "12x");
  expect_error("int(1e19)", NULL, 2, CEL_ERR_OVERFLOW, 0, 0, "range");
  expect_error("1 ? 2 : 3", NULL, 2, CEL_ERR_NO_OVERLOAD, 0, 0, NULL);
  expect_error("{'a': 1, 'a': 2}", NULL, 2, CEL_ERR_INVALID, 0, 0, "repeated key");
}

static void test_logic_absorbs_errors(void **state) {
  (void)state;
  expect_json("false && 1 / 0 > 0", NULL, "false");
  expect_json("1 / 0 > 0 && false", NULL, "false");
  expect_json("1 / 0 > 0 || true", NULL, "true");
  expect_json("true || x.y", "{\"x\":{}}", "true");
  expect_error("true && 1 / 0 > 0", NULL, 2, CEL_ERR_DIV_ZERO, 0, 0, NULL);
  expect_error("1 / 0 > 0 || false", NULL, 2, CEL_ERR_DIV_ZERO, 0, 0, NULL);
  expect_json("true ? 1 : 1 / 0", NULL, "1");
}

static void test_macros(void **state) {
  (void)state;
  expect_json("[1, 2, 3].map(x, x * 2)", NULL, "[2,4,6]");
  expect_json("[1, 2, 3].filter(x, x > 1)", NULL, "[2,3]");
  expect_json("[1, 2, 3].map(x, x > 1, x * 10)", NULL, "[20,30]");
  expect_json("{'a': 1, 'b': 2}.map(k, k)", NULL, "[\"a\",\"b\"]");
  expect_json("[0, 1].exists(x, 1 / x == 1)", NULL, "true");
  expect_json("[0, 1].all(x, 1 / x == 5)", NULL, "false");
  expect_json("[1, 2, 1].exists_one(x, x == 2)", NULL, "true");
  expect_json("has({'a': 1}.a) && !has({'a': 1}.b)", NULL, "true");
  expect_error("[0, 1].all(x, 1 / x == 1)", NULL, 2, CEL_ERR_DIV_ZERO, 0, 0, NULL);
  expect_error("[0].map(x, 1 / x)", NULL, 2, CEL_ERR_DIV_ZERO, 0, 0, NULL);
  expect_error("[1].all(x, x)", NULL, 2, CEL_ERR_NO_OVERLOAD, 0, 0, "bool");
  /* macro variables shadow bindings and vanish after the macro */
  expect_json("[1].map(x, x) + [x]", "{\"x\": 7}", "[1,7]");
}

static void test_compile_errors(void **state) {
  (void)state;
  expect_error("1 +", NULL, 1, CEL_ERR_PARSE, 1, 4, NULL);
  expect_error("(1 + 2", NULL, 1, CEL_ERR_PARSE, 0, 0, NULL);
  expect_error("no_such_function(1)", NULL, 1, CEL_ERR_CHECK, 1, 17, "no_such_function");
  expect_error("size('a', 'b')", NULL, 1, CEL_ERR_CHECK, 1, 5, "2 arguments");
  expect_error("'a'.int()", NULL, 1, CEL_ERR_CHECK, 1, 8, "as a method");
  expect_error("'abc'.contains()", NULL, 1, CEL_ERR_CHECK, 0, 0, "0 arguments");
  /* declared variables make unknown names compile errors */
  cel_env *e = cel_env_new_standard(0);
  cel_env_declare(e, "x");
  cel_status st;
  cel_program *p = cel_compile(e, "x + y", 5, &st);
  assert_null(p);
  assert_int_equal(st.code, CEL_ERR_CHECK);
  assert_int_equal(st.col, 5);
  p = cel_compile(e, "[1].map(y, y + x)", 17, &st);
  assert_non_null(p);
  cel_program_free(p);
  cel_env_free(e);
}

static void test_qualified_names(void **state) {
  (void)state;
  expect_json("a.b.c", "{\"a.b\": {\"c\": 1}, \"a\": {\"b\": {\"c\": 2}}}", "1");
  expect_json("type(1) == int && type('s') == string", NULL, "true");
  expect_json("google.protobuf.Timestamp == type(timestamp('2009-02-13T23:31:30Z'))", NULL, "true");
  cel_env *e = cel_env_new_standard(0);
  cel_env_set_container(e, "com.example");
  cel_status st;
  cel_program *p = cel_compile(e, "y", 1, &st);
  kv *b = json("{\"com.example.y\": 5, \"y\": 1}");
  kv *r = cel_eval(p, b, &st);
  assert_non_null(r);
  assert_true(r->u.i == 5);
  kv_unref(r);
  kv_unref(b);
  cel_program_free(p);
  cel_env_free(e);
}

static void test_compile_once_evaluate_many(void **state) {
  (void)state;
  const char *src = "inputs.items.filter(i, i.on).map(i, i.name + '-' + string(i.n))";
  cel_status st;
  cel_program *p = cel_compile(env, src, strlen(src), &st);
  assert_non_null(p);
  kv *b1 = json("{\"inputs\":{\"items\":[{\"on\":true,\"name\":\"a\",\"n\":1},"
                "{\"on\":false,\"name\":\"b\",\"n\":2}]}}");
  kv *b2 = json("{\"inputs\":{\"items\":[]}}");
  for (int i = 0; i < 100; i++) {
    kv *r1 = cel_eval(p, b1, &st), *r2 = cel_eval(p, b2, &st);
    assert_non_null(r1);
    assert_non_null(r2);
    assert_int_equal(kv_len(r1), 1);
    assert_string_equal(kv_str(kv_list_at(r1, 0)), "a-1");
    assert_int_equal(kv_len(r2), 0);
    kv_unref(r1);
    kv_unref(r2);
  }
  assert_string_equal(cel_program_source(p), src);
  kv_unref(b1);
  kv_unref(b2);
  cel_program_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_runtime_errors_point_at_the_operator),
      cmocka_unit_test(test_logic_absorbs_errors),
      cmocka_unit_test(test_macros),
      cmocka_unit_test(test_compile_errors),
      cmocka_unit_test(test_qualified_names),
      cmocka_unit_test(test_compile_once_evaluate_many),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
