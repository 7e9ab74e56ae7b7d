/*
 * tests/unit/test_cel_koreo_dialect.c: the Koreo dialect of the CEL engine
 * (core/cel/dialect_koreo.c): cel-python 0.3.0's operator semantics
 * (README quirks 9-22 of shared/conformance/koreo-expressions) and the
 * compatibility rule's CEL results (cel-wins).
 *
 * Two levels: the hooks of cel_koreo_ops called directly with values, as
 * the evaluator calls them (cel_call with env NULL), and whole expressions
 * compiled and evaluated in the Koreo environment, as a Koreo definition
 * would run them.
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

#include "cel/dialect.h"
#include "koreo/json.h"

/* ---- helpers ------------------------------------------------------------- */

static const cel_call CALL = {.env = NULL, .where = 7, .name = "op"};

/* Apply a binary hook; consumes a and b. */
static kv *bin(int op, kv *a, kv *b) {
  kv *r = cel_koreo_ops.binary(&CALL, op, a, b);
  kv_unref(a);
  kv_unref(b);
  return r;
}

static void expect_int(kv *r, int64_t want, bool plain) {
  assert_int_equal(r->kind, KV_INT);
  assert_int_equal(r->u.i, want);
  assert_int_equal((r->flags & KV_FLAG_PY_PLAIN) != 0, plain);
  kv_unref(r);
}

static void expect_double(kv *r, double want, bool plain) {
  assert_int_equal(r->kind, KV_DOUBLE);
  if (isnan(want))
    assert_true(isnan(r->u.d));
  else
    assert_true(r->u.d == want);
  assert_int_equal((r->flags & KV_FLAG_PY_PLAIN) != 0, plain);
  kv_unref(r);
}

static void expect_bool(kv *r, bool want) {
  if (r->kind == KV_ERROR) fail_msg("unexpected error: %s", r->u.err.msg);
  assert_int_equal(r->kind, KV_BOOL);
  assert_int_equal(r->u.b, want);
  kv_unref(r);
}

static void expect_error(kv *r, int code) {
  assert_int_equal(r->kind, KV_ERROR);
  if (code >= 0) assert_int_equal(r->u.err.code, code);
  kv_unref(r);
}

static kv *S(const char *s) { return kv_cstring(s); }
static kv *I(int64_t i) { return kv_int(i); }
static kv *D(double d) { return kv_double(d); }
static kv *plain_double(double d) {
  kv *v = kv_double(d);
  v->flags |= KV_FLAG_PY_PLAIN;
  return v;
}
static kv *plain_int(int64_t i) {
  kv *v = kv_int(i);
  v->flags |= KV_FLAG_PY_PLAIN;
  return v;
}
static kv *missing(void) { return kv_error(CEL_ERR_NO_SUCH_FIELD, 3, "no such key: 'x'"); }
static kv *list2(kv *a, kv *b) {
  kv *l = kv_list_new(2);
  kv_list_push(l, a);
  kv_list_push(l, b);
  return l;
}
static kv *list1(kv *a) {
  kv *l = kv_list_new(1);
  kv_list_push(l, a);
  return l;
}

/* Evaluate `src` in the Koreo environment with JSON bindings (or NULL). */
static kv *run(const char *src, const char *bindings_json) {
  cel_env *env = cel_env_new_koreo();
  kv *b = NULL;
  if (bindings_json) {
    kv_parse_error pe;
    b = kv_json_parse(bindings_json, strlen(bindings_json), &pe);
    assert_non_null(b);
  }
  cel_status st;
  cel_program *p = cel_compile(env, src, strlen(src), &st);
  if (!p) fail_msg("compile failed for %s: %s", src, st.msg);
  kv *r = cel_eval_value(p, b);
  cel_program_free(p);
  kv_unref(b);
  cel_env_free(env);
  return r;
}

static void run_string(const char *src, const char *want) {
  kv *r = run(src, NULL);
  if (r->kind == KV_ERROR) fail_msg("%s failed: %s", src, r->u.err.msg);
  assert_int_equal(r->kind, KV_STRING);
  if (strcmp(kv_str(r), want) != 0) fail_msg("%s gave \"%s\", want \"%s\"", src, kv_str(r), want);
  kv_unref(r);
}

static void run_int_b(const char *src, const char *bindings, int64_t want) {
  kv *r = run(src, bindings);
  if (r->kind == KV_ERROR) fail_msg("%s failed: %s", src, r->u.err.msg);
  assert_int_equal(r->kind, KV_INT);
  if (r->u.i != want) fail_msg("%s gave %lld, want %lld", src, (long long)r->u.i, (long long)want);
  kv_unref(r);
}

static void run_int(const char *src, int64_t want) { run_int_b(src, NULL, want); }

static void run_bool(const char *src, const char *bindings, bool want) {
  kv *r = run(src, bindings);
  if (r->kind == KV_ERROR) fail_msg("%s failed: %s", src, r->u.err.msg);
  if (r->kind != KV_BOOL || r->u.b != want)
    fail_msg("%s did not give %s", src, want ? "true" : "false");
  kv_unref(r);
}

static void run_fails(const char *src, const char *bindings, int code) {
  kv *r = run(src, bindings);
  if (r->kind != KV_ERROR) fail_msg("%s should fail", src);
  if (code >= 0 && r->u.err.code != code)
    fail_msg("%s failed with code %d (%s), want %d", src, r->u.err.code, r->u.err.msg, code);
  kv_unref(r);
}

/* ---- arithmetic: quirks 9, 11, 13 ------------------------------------------ */

static void test_int_double_mixing(void **state) {
  (void)state;
  /* IntType refuses floats, float arithmetic accepts ints and gives plain floats */
  expect_error(bin(CEL_OP_ADD, I(1), D(1.0)), CEL_ERR_NO_OVERLOAD);
  expect_error(bin(CEL_OP_MUL, I(4), D(1.5)), CEL_ERR_NO_OVERLOAD);
  expect_double(bin(CEL_OP_ADD, D(2.5), I(1)), 3.5, true);
  expect_double(bin(CEL_OP_ADD, D(1.0), D(2.0)), 3.0, true);
  /* a plain float then compares equal to an int; a DoubleType does not */
  expect_bool(bin(CEL_OP_EQ, plain_double(3.0), I(3)), true);
  expect_error(bin(CEL_OP_EQ, D(3.0), I(3)), CEL_ERR_NO_OVERLOAD);
  expect_error(bin(CEL_OP_EQ, I(3), plain_double(3.0)), CEL_ERR_NO_OVERLOAD);
  expect_double(bin(CEL_OP_ADD, plain_double(1.0), I(1)), 2.0, true);
  expect_error(bin(CEL_OP_ADD, I(1), plain_double(1.0)), CEL_ERR_NO_OVERLOAD);
  /* double / int fails (DoubleType checks `other == 0.0`), int / double truncates */
  expect_error(bin(CEL_OP_DIV, D(5.0), I(2)), CEL_ERR_NO_OVERLOAD);
  expect_int(bin(CEL_OP_DIV, I(7), D(2.0)), 3, false);
  expect_int(bin(CEL_OP_DIV, I(-7), D(2.0)), -3, false);
  expect_error(bin(CEL_OP_DIV, I(1), D(0.0)), CEL_ERR_DIV_ZERO);
  /* uint and int mix one way */
  kv *r = bin(CEL_OP_ADD, kv_uint(1), I(1));
  assert_int_equal(r->kind, KV_UINT);
  assert_int_equal(r->u.u, 2);
  kv_unref(r);
  expect_int(bin(CEL_OP_ADD, I(1), kv_uint(1)), 2, false);
  expect_error(bin(CEL_OP_SUB, kv_uint(1), I(2)), CEL_ERR_OVERFLOW);
  expect_bool(bin(CEL_OP_LT, kv_uint(1), I(2)), true);
  expect_error(bin(CEL_OP_EQ, I(1), kv_uint(1)), CEL_ERR_NO_OVERLOAD);
  /* ordering: a double may be compared with an int, not the reverse */
  expect_bool(bin(CEL_OP_LT, D(1.5), I(2)), true);
  expect_error(bin(CEL_OP_GT, I(2), D(1.5)), CEL_ERR_NO_OVERLOAD);
}

static void test_bool_is_int(void **state) {
  (void)state;
  expect_int(bin(CEL_OP_ADD, kv_bool(true), I(1)), 2, true);
  expect_bool(bin(CEL_OP_EQ, kv_bool(true), I(1)), true);
  expect_error(bin(CEL_OP_EQ, I(1), kv_bool(true)), CEL_ERR_NO_OVERLOAD);
  expect_bool(bin(CEL_OP_LT, kv_bool(false), kv_bool(true)), true);
  expect_double(bin(CEL_OP_DIV, kv_bool(true), I(2)), 0.5, true);
  expect_error(cel_koreo_ops.unary(&CALL, CEL_OP_NEG, kv_bool(true)), CEL_ERR_NO_OVERLOAD);
  /* a plain int (true + 1) adds a double, unlike an IntType */
  expect_double(bin(CEL_OP_ADD, plain_int(2), D(0.5)), 2.5, true);
  /* and gives an IntType back with an IntType */
  expect_int(bin(CEL_OP_ADD, plain_int(2), I(1)), 3, false);
}

static void test_division_quirks(void **state) {
  (void)state;
  /* DoubleType / 0 is +Infinity, even 0.0 / 0.0 and -1.0 / 0.0 */
  expect_double(bin(CEL_OP_DIV, D(1.0), D(0.0)), INFINITY, false);
  expect_double(bin(CEL_OP_DIV, D(0.0), D(0.0)), INFINITY, false);
  expect_double(bin(CEL_OP_DIV, D(-1.0), D(0.0)), INFINITY, false);
  /* a plain float divided by an int zero fails like Python; by a DoubleType
   * zero, DoubleType.__rtruediv__ gives +Infinity again */
  expect_error(bin(CEL_OP_DIV, plain_double(1.0), I(0)), CEL_ERR_DIV_ZERO);
  expect_double(bin(CEL_OP_DIV, plain_double(1.0), D(0.0)), INFINITY, false);
  expect_error(bin(CEL_OP_DIV, I(1), I(0)), CEL_ERR_DIV_ZERO);
  expect_error(bin(CEL_OP_MOD, I(1), I(0)), CEL_ERR_DIV_ZERO);
  expect_error(bin(CEL_OP_MOD, D(5.0), D(2.0)), CEL_ERR_NO_OVERLOAD);
  /* Go-style truncation, min-int edge cases */
  expect_int(bin(CEL_OP_DIV, I(-7), I(2)), -3, false);
  expect_int(bin(CEL_OP_MOD, I(-7), I(3)), -1, false);
  expect_int(bin(CEL_OP_MOD, I(INT64_MIN), I(-1)), 0, false);
  expect_error(bin(CEL_OP_DIV, I(INT64_MIN), I(-1)), CEL_ERR_OVERFLOW);
  expect_error(bin(CEL_OP_ADD, I(INT64_MAX), I(1)), CEL_ERR_OVERFLOW);
}

static void test_python_sequences(void **state) {
  (void)state;
  kv *r = bin(CEL_OP_MUL, S("ab"), I(2));
  assert_string_equal(kv_str(r), "abab");
  kv_unref(r);
  expect_error(bin(CEL_OP_MUL, I(2), S("ab")), CEL_ERR_NO_OVERLOAD);
  r = bin(CEL_OP_ADD, S("a"), S("b"));
  assert_string_equal(kv_str(r), "ab");
  assert_true(r->flags & KV_FLAG_PY_PLAIN);
  kv_unref(r);
}

/* ---- equality: quirks 14, 15, 22 and the cel-wins results ------------------- */

static void test_error_operands(void **state) {
  (void)state;
  /* an error equals no string (so `x.stage == "a" || x.stage == "b"` is false) */
  expect_bool(bin(CEL_OP_EQ, missing(), S("alpha")), false);
  expect_bool(bin(CEL_OP_NE, missing(), S("alpha")), true);
  expect_bool(bin(CEL_OP_EQ, S("alpha"), missing()), false);
  expect_bool(bin(CEL_OP_IN, missing(), list1(S("a"))), false);
  /* but comparing it with an int or ordering it fails, keeping the cause */
  kv *r = bin(CEL_OP_EQ, missing(), I(5));
  assert_int_equal(r->kind, KV_ERROR);
  assert_int_equal(r->u.err.code, CEL_ERR_NO_OVERLOAD);
  assert_non_null(strstr(r->u.err.msg, "no such key: 'x'"));
  assert_int_equal(r->u.err.where, 7);
  kv_unref(r);
  expect_error(bin(CEL_OP_LT, missing(), I(5)), CEL_ERR_NO_OVERLOAD);
  expect_error(bin(CEL_OP_IN, missing(), list1(I(1))), CEL_ERR_NO_OVERLOAD);
  /* arithmetic keeps the error itself */
  expect_error(bin(CEL_OP_ADD, missing(), I(1)), CEL_ERR_NO_SUCH_FIELD);
}

static void test_null_and_aggregates(void **state) {
  (void)state;
  /* cel-wins: anything compared with null is unequal */
  expect_bool(bin(CEL_OP_EQ, I(1), kv_null()), false);
  expect_bool(bin(CEL_OP_NE, list1(I(1)), kv_null()), true);
  expect_bool(bin(CEL_OP_EQ, kv_null(), kv_map_new(0)), false);
  expect_bool(bin(CEL_OP_EQ, kv_null(), kv_null()), true);
  /* cel-wins: lists whose elements cel-python cannot compare use CEL equality */
  expect_bool(bin(CEL_OP_EQ, list1(I(1)), list1(D(1.0))), true);
  expect_bool(bin(CEL_OP_EQ, list1(I(1)), list1(S("1"))), false);
  expect_bool(bin(CEL_OP_EQ, kv_list_new(0), kv_map_new(0)), false);
  /* cel-python's own answer wins when it has one: true == 1 inside a list */
  expect_bool(bin(CEL_OP_EQ, list1(kv_bool(true)), list1(I(1))), true);
  expect_bool(bin(CEL_OP_EQ, list2(I(1), I(2)), list2(I(1), I(3))), false);
  /* scalars of different classes still fail */
  expect_error(bin(CEL_OP_EQ, I(1), S("1")), CEL_ERR_NO_OVERLOAD);
  expect_error(bin(CEL_OP_EQ, S("a"), list1(S("a"))), CEL_ERR_NO_OVERLOAD);
  expect_bool(bin(CEL_OP_EQ, kv_bool(false), kv_null()), false);
}

static void test_in_operator(void **state) {
  (void)state;
  /* strings are sequences of characters */
  expect_bool(bin(CEL_OP_IN, S("h"), S("hello")), true);
  expect_bool(bin(CEL_OP_IN, S("ell"), S("hello")), false);
  expect_bool(bin(CEL_OP_IN, S(""), S("hello")), false);
  /* a failed comparison is forgiven when another element matches */
  expect_bool(bin(CEL_OP_IN, S("a"), list2(I(1), S("a"))), true);
  expect_error(bin(CEL_OP_IN, S("b"), list2(I(1), S("a"))), CEL_ERR_NO_OVERLOAD);
  expect_error(bin(CEL_OP_IN, S("a"), kv_null()), CEL_ERR_NO_OVERLOAD);
}

/* ---- index, select, logic, conditions ----------------------------------------- */

static void test_index_and_select(void **state) {
  (void)state;
  kv *s = S("h\xc3\xa9llo");
  kv *k = I(1);
  kv *r = cel_koreo_ops.index(&CALL, s, k);
  assert_string_equal(kv_str(r), "\xc3\xa9");
  kv_unref(r);
  kv_unref(k);
  k = I(-1);
  r = cel_koreo_ops.index(&CALL, s, k);
  assert_string_equal(kv_str(r), "o");
  kv_unref(r);
  kv_unref(k);
  kv_unref(s);
  kv *l = list2(S("a"), S("b"));
  kv *t = kv_bool(true);
  r = cel_koreo_ops.index(&CALL, l, t);
  assert_string_equal(kv_str(r), "b");
  kv_unref(r);
  kv *d = D(1.0);
  expect_error(cel_koreo_ops.index(&CALL, l, d), CEL_ERR_NO_OVERLOAD);
  kv *big = I(5);
  expect_error(cel_koreo_ops.index(&CALL, l, big), CEL_ERR_RANGE);
  kv_unref(big);
  kv_unref(d);
  kv_unref(l);
  kv *m = kv_map_new(1);
  kv_map_set(m, I(1), S("one"));
  kv *u = kv_uint(1);
  expect_error(cel_koreo_ops.index(&CALL, m, u), CEL_ERR_NO_OVERLOAD); /* 1 == 1u raises */
  kv_unref(u);
  kv *name = S("x");
  expect_error(cel_koreo_ops.index(&CALL, m, name), CEL_ERR_NO_SUCH_KEY);
  kv_unref(name);
  expect_error(cel_koreo_ops.select(&CALL, m, "name"), CEL_ERR_NO_SUCH_FIELD);
  kv_unref(m);
  kv *n = kv_null();
  expect_error(cel_koreo_ops.select(&CALL, n, "x"), CEL_ERR_NO_SUCH_FIELD);
}

static void test_logic_and_conditions(void **state) {
  (void)state;
  /* both sides are always evaluated */
  kv *f = kv_bool(false);
  assert_null(cel_koreo_ops.logic_short(&CALL, true, f));
  kv *a = S("a"), *t = kv_bool(true), *one = I(1);
  kv *r = cel_koreo_ops.logic(&CALL, true, a, t);
  assert_string_equal(kv_str(r), "a");
  kv_unref(r);
  expect_int(cel_koreo_ops.logic(&CALL, false, one, f), 1, false);
  kv *e = missing();
  expect_bool(cel_koreo_ops.logic(&CALL, true, e, f), false);
  expect_bool(cel_koreo_ops.logic(&CALL, false, e, t), true);
  expect_error(cel_koreo_ops.logic(&CALL, true, e, t), CEL_ERR_NO_SUCH_FIELD);
  expect_error(cel_koreo_ops.logic(&CALL, true, a, one), CEL_ERR_NO_OVERLOAD);
  /* a raised failure is never absorbed */
  kv *raised = kv_error(CEL_ERR_UNKNOWN, 0, "raised");
  expect_error(cel_koreo_ops.logic(&CALL, true, f, raised), CEL_ERR_UNKNOWN);
  kv_unref(raised);
  kv *err = NULL;
  assert_int_equal(cel_koreo_ops.cond(&CALL, t, &err), 1);
  kv *n = kv_null();
  assert_int_equal(cel_koreo_ops.cond(&CALL, n, &err), -1);
  expect_error(err, CEL_ERR_NO_OVERLOAD);
  kv_unref(a);
  kv_unref(one);
  kv_unref(e);
}

/* ---- macros, map literals, the final check ----------------------------------------- */

static void test_macro_ranges(void **state) {
  (void)state;
  kv *s = S("ab");
  kv *r = cel_koreo_ops.iter_range(&CALL, CEL_M_MAP, s);
  assert_int_equal(r->kind, KV_LIST);
  assert_int_equal(kv_len(r), 2);
  assert_string_equal(kv_str(kv_list_at(r, 1)), "b");
  kv_unref(r);
  kv_unref(s);
  kv *n = kv_null();
  expect_error(cel_koreo_ops.iter_range(&CALL, CEL_M_EXISTS, n), CEL_ERR_UNKNOWN);
  kv *i = I(3);
  expect_error(cel_koreo_ops.iter_range(&CALL, CEL_M_MAP, i), CEL_ERR_UNKNOWN);
  /* filter() keeps truthy values; all() wants bools */
  kv *err = NULL;
  assert_int_equal(cel_koreo_ops.pred(&CALL, CEL_M_FILTER, i, &err), 1);
  kv *z = I(0), *e = S("");
  assert_int_equal(cel_koreo_ops.pred(&CALL, CEL_M_FILTER, z, &err), 0);
  assert_int_equal(cel_koreo_ops.pred(&CALL, CEL_M_FILTER, e, &err), 0);
  assert_int_equal(cel_koreo_ops.pred(&CALL, CEL_M_ALL, i, &err), -1);
  expect_error(err, CEL_ERR_NO_OVERLOAD);
  kv_unref(i);
  kv_unref(z);
  kv_unref(e);
}

static void test_map_literals(void **state) {
  (void)state;
  kv *keys[2], *vals[2];
  /* duplicate key */
  keys[0] = S("a"), vals[0] = I(1), keys[1] = S("a"), vals[1] = I(2);
  expect_error(cel_koreo_ops.map_literal(&CALL, keys, vals, 2), CEL_ERR_INVALID);
  /* true then 1 is a duplicate (BoolType == IntType), 1 then 1u cannot be compared */
  keys[0] = kv_bool(true), vals[0] = I(1), keys[1] = I(1), vals[1] = I(2);
  expect_error(cel_koreo_ops.map_literal(&CALL, keys, vals, 2), CEL_ERR_INVALID);
  keys[0] = I(1), vals[0] = S("x"), keys[1] = kv_uint(1), vals[1] = S("y");
  expect_error(cel_koreo_ops.map_literal(&CALL, keys, vals, 2), CEL_ERR_NO_OVERLOAD);
  /* an error key is refused; an error value is kept ... */
  keys[0] = missing(), vals[0] = I(1);
  expect_error(cel_koreo_ops.map_literal(&CALL, keys, vals, 1), -1);
  keys[0] = S("a"), vals[0] = I(1), keys[1] = S("b"), vals[1] = missing();
  kv *m = cel_koreo_ops.map_literal(&CALL, keys, vals, 2);
  assert_int_equal(m->kind, KV_MAP);
  assert_int_equal(kv_len(m), 2);
  /* ... and the final check fails the whole value, even nested in a list */
  kv *l = list1(m);
  expect_error(cel_koreo_ops.finish(l), CEL_ERR_NO_SUCH_FIELD);
  kv *ok = list1(I(1));
  kv *r = cel_koreo_ops.finish(ok);
  assert_int_equal(r->kind, KV_LIST);
  kv_unref(r);
  assert_true(cel_koreo_ops.has_means_no_error);
  assert_true(cel_koreo_ops.late_unknown_functions);
}

/* ---- functions: quirks 10, 12, 17, 18 ---------------------------------------------- */

static void test_string_reprs(void **state) {
  (void)state;
  run_string("string(null)", "None");
  run_string("string(true)", "True");
  run_string("string([1, \"a\"])", "ListType([IntType(1), StringType('a')])");
  run_string("string({\"a\": 1})", "MapType({StringType('a'): IntType(1)})");
  run_string("string([1.5, null, 2u, b'x', [], {}])",
             "ListType([DoubleType(1.5), None, UintType(2), BytesType(b'x'), ListType([]), "
             "MapType({})])");
  run_string("string([\"it's\"])", "ListType([StringType(\"it's\")])");
  run_string("string([1.0 + 2.0, 'a' + 'b'])", "ListType([3.0, 'ab'])");
  run_string("string(1e20)", "1e+20");
  run_string("string(1e-7)", "1e-07");
  run_string("string(2.0)", "2.0");
  run_string("string(-0.0)", "-0.0");
  run_string("string(b'caf\\xc3\\xa9')", "caf\xc3\xa9");
  run_string("string(type(1))", "<class 'celpy.celtypes.IntType'>");
  run_string("string(timestamp('2024-01-01T10:20:30.123Z'))", "2024-01-01T10:20:30Z");
  run_string("string(timestamp('2024-01-01T00:00:00+05:00'))", "2024-01-01T00:00:00+05:00");
  run_string("string(duration('-1.5s'))", "-1s");
  run_fails("string(b'\\xff')", NULL, -1);
}

static void test_number_conversions(void **state) {
  (void)state;
  /* round half to even, odd input accepted */
  run_int("int(1.9)", 2);
  run_int("int(2.5)", 2);
  run_int("int(3.5)", 4);
  run_int("int(-0.5)", 0);
  run_int("int(null)", 0);
  run_int("int(true)", 1);
  run_int("int('0x10')", 16);
  run_int("int('-0x10')", -16);
  run_int("int(' 42 ')", 42);
  run_int("int('1_000')", 1000);
  run_int("int('\xd9\xa4\xd9\xa2')", 42); /* Arabic-Indic digits */
  run_int("int(timestamp('2024-01-01T00:00:00Z'))", 1704067200);
  run_fails("int('1.5')", NULL, -1);
  run_fails("int('9223372036854775808')", NULL, CEL_ERR_OVERFLOW);
  run_fails("int(1e19)", NULL, CEL_ERR_OVERFLOW);
  run_fails("int([1])", NULL, CEL_ERR_NO_OVERLOAD);
  kv *r = run("uint(1.5)", NULL);
  assert_int_equal(r->kind, KV_UINT);
  assert_int_equal(r->u.u, 2);
  kv_unref(r);
  run_fails("uint(-1)", NULL, CEL_ERR_OVERFLOW);
  r = run("[double('1e3'), double(' 2.5 '), double(true), double('inf')]", NULL);
  assert_true(kv_list_at(r, 0)->u.d == 1000.0);
  assert_true(kv_list_at(r, 1)->u.d == 2.5);
  assert_true(kv_list_at(r, 2)->u.d == 1.0);
  assert_true(isinf(kv_list_at(r, 3)->u.d));
  kv_unref(r);
  run_fails("bool('true')", NULL, -1);
  run_bool("bool('1')", NULL, true);
  run_bool("bool(0.5)", NULL, false);
}

static void test_size_contains_matches(void **state) {
  (void)state;
  run_int("size(null)", 0);
  run_int("size('caf\xc3\xa9')", 4);
  run_fails("size(true)", NULL, CEL_ERR_NO_OVERLOAD);
  run_bool("inputs.selector.size() > 0", "{\"inputs\": {\"selector\": null}}", false);
  run_bool("['a', 'b'].contains('a')", NULL, true);
  run_bool("{'a': 1}.contains('a')", NULL, true);
  run_bool("'abc'.contains('')", NULL, true);
  run_fails("[1, 'a'].contains('a')", NULL, CEL_ERR_NO_OVERLOAD);
  run_bool("b'abc'.startsWith(b'ab')", NULL, true);
  run_fails("'abc'.startsWith(1)", NULL, CEL_ERR_NO_OVERLOAD);
  /* Python re: search, lookahead, \Z is the very end */
  run_bool("'web-1'.matches('^(?!-)[a-z0-9-]+$')", NULL, true);
  run_bool("matches('abc', 'b')", NULL, true);
  run_bool("'ab\\n'.matches('b\\\\Z')", NULL, false);
  run_bool("'a'.matches('^a{,2}$')", NULL, true);
  run_fails("'a'.matches('[')", NULL, CEL_ERR_INVALID);
  run_fails("inputs.n.matches('a')", "{\"inputs\": {\"n\": null}}", CEL_ERR_NO_OVERLOAD);
}

/* ---- whole expressions ---------------------------------------------------------------- */

static void test_expressions(void **state) {
  (void)state;
  const char *b = "{\"inputs\": {\"s\": \"banana\", \"n\": null, \"l\": [1, 2, 3], "
                  "\"m\": {\"a\": 1}, \"opt\": null}}";
  run_bool("(1.0 + 2.0) == 3", NULL, true);
  run_fails("1 + (0.5 + 0.5)", NULL, CEL_ERR_NO_OVERLOAD);
  run_bool("inputs.stage == 'alpha' || inputs.stage == 'beta'", b, false);
  run_fails("inputs.missing < 5", b, CEL_ERR_NO_OVERLOAD);
  run_bool("has(inputs.opt)", b, true);
  run_bool("has(inputs.opt.deeper)", b, false);
  run_bool("has(1 / 0)", NULL, false);
  run_bool("has(undefinedVar)", NULL, false);
  run_bool("has(inputs.s.lower())", b, true);
  run_int_b("size(inputs.s.filter(c, c == 'a'))", b, 3);
  run_fails("inputs.n.map(x, x)", b, CEL_ERR_UNKNOWN);
  run_fails("inputs.n.exists(x, true)", b, CEL_ERR_UNKNOWN);
  run_fails("frobnicate(1)", NULL, CEL_ERR_UNDECLARED);
  run_fails("{'a': 1, 'a': 2}", NULL, -1);
  run_fails("{'a': 1, 'b': inputs.missing}", b, -1);  /* error in an unused entry */
  run_int_b("{'a': 1, 'b': inputs.missing}.a", b, 1); /* ... unless it is left out */
  run_fails("size([1, 0].map(x, 1 / x))", NULL, CEL_ERR_DIV_ZERO);
  run_bool("inputs.l.all(x, 2 / (x - 1) > 100)", b, false);
  run_int("[3, 1, 2].min()", 1);
  run_bool("type(1.0 + 2.0) == double", NULL, false);
  run_bool("type(inputs.l) == list", b, true);
  kv *r = run("['a' && true, true && 'a', 1 || false]", NULL);
  assert_string_equal(kv_str(kv_list_at(r, 0)), "a");
  assert_string_equal(kv_str(kv_list_at(r, 1)), "a");
  assert_int_equal(kv_list_at(r, 2)->u.i, 1);
  kv_unref(r);
  r = run("1.0 / 0.0", NULL);
  assert_true(isinf(r->u.d) && r->u.d > 0);
  kv_unref(r);
  run_fails("inputs.flag ? 'a' : 'b'", "{\"inputs\": {\"flag\": null}}", CEL_ERR_NO_OVERLOAD);
}

/* cel-python raises failures inside map/filter/exists_one/reduce bodies:
 * they escape ||, has() and comparisons, unlike a missing field. */
static void test_macro_body_errors_escape(void **state) {
  (void)state;
  const char *items = "{\"items\": [{\"a\": 1}, {}]}";
  run_fails("items.filter(i, i.a == 1).size() > 0 || true", items, -1);
  run_fails("has(items.map(i, i.a))", items, -1);
  run_fails("items.exists_one(i, i.a == 1) == 'x'", items, -1);
  run_fails("items.reduce(acc, i, 0, acc + i.a) == 'x'", items, -1);
  /* all/exists decide on other elements and absorb; plain errors are absent */
  run_bool("items.exists(i, i.a == 1)", items, true);
  run_bool("has(items[1].a) || true", items, true);
  run_bool("!has(items[1].a)", items, true);
  run_int_b("items.reduce(acc, i, 10, acc + size(i))", items, 11);
}

/* Upstream times are Python datetime/timedelta: microsecond resolution. */
static void test_time_resolution(void **state) {
  (void)state;
  run_bool("duration('1500us') > duration('1ms')", NULL, true);
  run_bool("duration('1ns') == duration('0s')", NULL, true);
  run_bool("timestamp('2024-01-01T00:00:00.123456789Z') == "
           "timestamp('2024-01-01T00:00:00.123456Z')",
           NULL, true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_macro_body_errors_escape),
      cmocka_unit_test(test_time_resolution),
      cmocka_unit_test(test_int_double_mixing),
      cmocka_unit_test(test_bool_is_int),
      cmocka_unit_test(test_division_quirks),
      cmocka_unit_test(test_python_sequences),
      cmocka_unit_test(test_error_operands),
      cmocka_unit_test(test_null_and_aggregates),
      cmocka_unit_test(test_in_operator),
      cmocka_unit_test(test_index_and_select),
      cmocka_unit_test(test_logic_and_conditions),
      cmocka_unit_test(test_macro_ranges),
      cmocka_unit_test(test_map_literals),
      cmocka_unit_test(test_string_reprs),
      cmocka_unit_test(test_number_conversions),
      cmocka_unit_test(test_size_contains_matches),
      cmocka_unit_test(test_expressions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
