/*
 * tests/unit/test_cel_math.c: the CEL math extension (core/cel/lib_math.c)
 * called directly through its cel_fn_def table: greatest/least over mixed
 * int/uint/double (the winner keeps its type), rounding, abs/sign, the
 * floating point predicates, sqrt, the bit operations and the error cases
 * (wrong types, int overflow, negative shifts, empty lists).
 *
 * Built by CMake against libkoreo.  For a standalone build of just the
 * extension source, compile with -DKOREO_EXT_STANDALONE_TEST, which adds
 * minimal test-only versions of the evaluator's error helpers.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "cel/cel_impl.h"

#ifdef KOREO_EXT_STANDALONE_TEST
/* Test-only stand-ins for eval.c's helpers (the real ones link under CMake). */
const char *cel_type_name(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: return "null_type";
  case KV_TIMESTAMP: return "google.protobuf.Timestamp";
  case KV_DURATION: return "google.protobuf.Duration";
  default: return kv_kind_name((kv_kind)v->kind);
  }
}
kv *cel_errorf(const cel_call *c, cel_error_code code, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return kv_error(code, (int32_t)c->where, "%s", buf);
}
kv *cel_no_overload(const cel_call *c, kv *const *args, size_t n) {
  (void)args;
  (void)n;
  return kv_error(CEL_ERR_NO_OVERLOAD, (int32_t)c->where, "no matching overload for '%s'", c->name);
}
#endif

/* ---- helpers ------------------------------------------------------------ */

static const cel_fn_def *find_def(const char *name) {
  for (size_t i = 0; i < cel_math_ndefs; i++)
    if (strcmp(cel_math_defs[i].name, name) == 0) return &cel_math_defs[i];
  return NULL;
}

/* Call math function `name` with `n` arguments (ownership of each taken). */
static kv *call(const char *name, size_t n, ...) {
  const cel_fn_def *d = find_def(name);
  assert_non_null(d);
  kv *args[8];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, kv *);
  va_end(ap);
  cel_call c = {.env = NULL, .where = 3, .name = name};
  kv *r = d->fn(&c, args, n);
  for (size_t i = 0; i < n; i++)
    kv_unref(args[i]);
  assert_non_null(r);
  return r;
}

static kv *I(int64_t i) { return kv_int(i); }
static kv *U(uint64_t u) { return kv_uint(u); }
static kv *D(double d) { return kv_double(d); }
static kv *L(size_t n, ...) {
  kv *l = kv_list_new(n);
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    kv_list_push(l, va_arg(ap, kv *));
  va_end(ap);
  return l;
}

static const char *desc(const kv *r) {
  static char buf[128];
  switch (r->kind) {
  case KV_INT: snprintf(buf, sizeof buf, "int %lld", (long long)r->u.i); break;
  case KV_UINT: snprintf(buf, sizeof buf, "uint %llu", (unsigned long long)r->u.u); break;
  case KV_DOUBLE: snprintf(buf, sizeof buf, "double %.17g", r->u.d); break;
  case KV_BOOL: snprintf(buf, sizeof buf, "bool %d", r->u.b); break;
  case KV_ERROR: snprintf(buf, sizeof buf, "error %s", r->u.err.msg); break;
  default: snprintf(buf, sizeof buf, "kind %s", kv_kind_name((kv_kind)r->kind));
  }
  return buf;
}

#define expect_int(r, w) expect_int_(r, w, __LINE__)
static void expect_int_(kv *r, int64_t want, int line) {
  bool ok = r->kind == KV_INT && r->u.i == want;
  if (!ok) print_error("line %d: want int %lld, got %s\n", line, (long long)want, desc(r));
  kv_unref(r);
  if (!ok) fail();
}
#define expect_uint(r, w) expect_uint_(r, w, __LINE__)
static void expect_uint_(kv *r, uint64_t want, int line) {
  bool ok = r->kind == KV_UINT && r->u.u == want;
  if (!ok)
    print_error("line %d: want uint %llu, got %s\n", line, (unsigned long long)want, desc(r));
  kv_unref(r);
  if (!ok) fail();
}
/* Doubles compare bitwise-equal (so -0.0 != 0.0), NaN equals NaN. */
#define expect_double(r, w) expect_double_(r, w, __LINE__)
static void expect_double_(kv *r, double want, int line) {
  bool ok = r->kind == KV_DOUBLE && ((isnan(want) && isnan(r->u.d)) ||
                                     (r->u.d == want && signbit(r->u.d) == signbit(want)));
  if (!ok) print_error("line %d: want double %.17g, got %s\n", line, want, desc(r));
  kv_unref(r);
  if (!ok) fail();
}
#define expect_bool(r, w) expect_bool_(r, w, __LINE__)
static void expect_bool_(kv *r, bool want, int line) {
  bool ok = r->kind == KV_BOOL && r->u.b == want;
  if (!ok) print_error("line %d: want bool %d, got %s\n", line, want, desc(r));
  kv_unref(r);
  if (!ok) fail();
}
#define expect_err(r, code, text) expect_err_(r, code, text, __LINE__)
static void expect_err_(kv *r, int code, const char *text, int line) {
  bool ok = r->kind == KV_ERROR && r->u.err.code == code && strstr(r->u.err.msg, text);
  if (!ok) print_error("line %d: want error %d \"%s\", got %s\n", line, code, text, desc(r));
  kv_unref(r);
  if (!ok) fail();
}

/* ---- greatest / least ---------------------------------------------------- */

static void test_greatest(void **state) {
  (void)state;
  expect_int(call("math.greatest", 1, I(5)), 5);
  expect_double(call("math.greatest", 1, D(-5.0)), -5.0);
  expect_uint(call("math.greatest", 1, U(5)), 5);
  expect_int(call("math.greatest", 2, I(-7), I(5)), 5);
  expect_int(call("math.greatest", 2, I(1), I(INT64_MAX)), INT64_MAX);
  expect_int(call("math.greatest", 2, I(INT64_MIN), I(1)), 1);
  expect_double(call("math.greatest", 2, I(1), D(1.797693e308)), 1.797693e308);
  expect_double(call("math.greatest", 2, D(-1.797693e308), D(1.5)), 1.5);
  expect_uint(call("math.greatest", 2, U(5), I(-7)), 5);
  expect_uint(call("math.greatest", 2, U(1), U(UINT64_MAX)), UINT64_MAX);
  /* ties keep the first argument */
  expect_int(call("math.greatest", 2, I(1), D(1.0)), 1);
  expect_double(call("math.greatest", 2, D(1.0), I(1)), 1.0);
  expect_uint(call("math.greatest", 3, U(1), D(1.0), D(1.0)), 1);
  expect_int(call("math.greatest", 3, I(10), I(1), I(3)), 10);
  expect_int(call("math.greatest", 3, I(-1), I(-2), I(-3)), -1);
  expect_uint(call("math.greatest", 5, D(5.4), I(10), U(3), D(-5.0), U(UINT64_MAX)), UINT64_MAX);
  /* a single list */
  expect_int(call("math.greatest", 1, L(5, D(5.4), I(10), U(3), D(-5.0), D(3.5))), 10);
  expect_double(call("math.greatest", 1, L(5, D(5.4), D(10.5), U(3), D(-5.0), D(3.5))), 10.5);
  expect_uint(call("math.greatest", 1, L(5, D(5.4), U(10), U(3), D(-5.0), D(3.5))), 10);
  /* exact comparisons at the edges of the int and uint ranges */
  expect_double(call("math.greatest", 2, I(INT64_MAX), D(9223372036854775808.0)),
                9223372036854775808.0);
  expect_uint(call("math.greatest", 2, U(UINT64_MAX), D(18446744073709549568.0)), UINT64_MAX);
  expect_int(call("math.greatest", 2, I(2), D(1.5)), 2);
  expect_double(call("math.greatest", 2, I(1), D(1.5)), 1.5);
  expect_uint(call("math.greatest", 2, I(-1), U(0)), 0);

  expect_err(call("math.greatest", 1, L(0)), CEL_ERR_INVALID, "must not be empty");
  expect_err(call("math.greatest", 1, kv_cstring("a")), CEL_ERR_NO_OVERLOAD, "math.greatest");
  expect_err(call("math.greatest", 2, I(1), kv_cstring("a")), CEL_ERR_NO_OVERLOAD, "math.greatest");
  expect_err(call("math.greatest", 1, L(2, I(1), kv_bool(true))), CEL_ERR_NO_OVERLOAD,
             "math.greatest");
  expect_err(call("math.greatest", 2, L(1, I(1)), I(2)), CEL_ERR_NO_OVERLOAD, "math.greatest");
}

static void test_least(void **state) {
  (void)state;
  expect_int(call("math.least", 1, I(-5)), -5);
  expect_int(call("math.least", 2, I(1), I(1)), 1);
  expect_int(call("math.least", 2, I(-3), I(3)), -3);
  expect_int(call("math.least", 2, I(5), I(-7)), -7);
  expect_int(call("math.least", 2, I(1), I(INT64_MIN)), INT64_MIN);
  expect_double(call("math.least", 2, D(5.5), D(-7.5)), -7.5);
  expect_double(call("math.least", 2, D(1.797693e308), D(1.5)), 1.5);
  expect_double(call("math.least", 5, D(5.4), I(10), U(3), D(-5.0), I(INT64_MAX)), -5.0);
  expect_uint(call("math.least", 2, U(1), U(UINT64_MAX)), 1);
  expect_uint(call("math.least", 3, U(1), I(1), I(1)), 1);
  expect_uint(call("math.least", 1, L(5, D(5.4), U(10), U(3), U(1), D(3.5))), 1);
  expect_int(call("math.least", 3, I(1), I(3), I(0)), 0);
  expect_int(call("math.least", 2, I(-1), U(0)), -1);
  expect_err(call("math.least", 1, L(0)), CEL_ERR_INVALID, "math.least(list)");
  expect_err(call("math.least", 1, kv_null()), CEL_ERR_NO_OVERLOAD, "math.least");
}

/* ---- rounding, abs, sign, predicates, sqrt --------------------------------- */

static void test_rounding(void **state) {
  (void)state;
  expect_double(call("math.ceil", 1, D(1.2)), 2.0);
  expect_double(call("math.ceil", 1, D(-1.2)), -1.0);
  expect_double(call("math.floor", 1, D(1.2)), 1.0);
  expect_double(call("math.floor", 1, D(-1.2)), -2.0);
  expect_double(call("math.round", 1, D(-1.6)), -2.0);
  expect_double(call("math.round", 1, D(-1.4)), -1.0);
  expect_double(call("math.round", 1, D(-1.5)), -2.0);
  expect_double(call("math.round", 1, D(1.2)), 1.0);
  expect_double(call("math.round", 1, D(1.5)), 2.0);
  expect_double(call("math.round", 1, D(2.5)), 3.0);
  expect_double(call("math.trunc", 1, D(-1.2)), -1.0);
  expect_double(call("math.trunc", 1, D(1.9)), 1.0);
  expect_double(call("math.trunc", 1, D(NAN)), NAN);
  expect_double(call("math.ceil", 1, D(INFINITY)), INFINITY);
  expect_err(call("math.ceil", 1, I(1)), CEL_ERR_NO_OVERLOAD, "math.ceil");
  expect_err(call("math.floor", 1, I(1)), CEL_ERR_NO_OVERLOAD, "math.floor");
  expect_err(call("math.round", 1, U(1)), CEL_ERR_NO_OVERLOAD, "math.round");
  expect_err(call("math.trunc", 1, I(1)), CEL_ERR_NO_OVERLOAD, "math.trunc");
}

static void test_abs_sign(void **state) {
  (void)state;
  expect_uint(call("math.abs", 1, U(1)), 1);
  expect_int(call("math.abs", 1, I(1)), 1);
  expect_int(call("math.abs", 1, I(-11)), 11);
  expect_int(call("math.abs", 1, I(INT64_MAX)), INT64_MAX);
  expect_double(call("math.abs", 1, D(1.5)), 1.5);
  expect_double(call("math.abs", 1, D(-1.5)), 1.5);
  expect_err(call("math.abs", 1, I(INT64_MIN)), CEL_ERR_OVERFLOW, "overflow");
  expect_err(call("math.abs", 1, kv_bool(true)), CEL_ERR_NO_OVERLOAD, "math.abs");

  expect_uint(call("math.sign", 1, U(100)), 1);
  expect_uint(call("math.sign", 1, U(0)), 0);
  expect_int(call("math.sign", 1, I(-11)), -1);
  expect_int(call("math.sign", 1, I(0)), 0);
  expect_int(call("math.sign", 1, I(INT64_MAX)), 1);
  expect_double(call("math.sign", 1, D(0.0)), 0.0);
  expect_double(call("math.sign", 1, D(-0.0)), 0.0);
  expect_double(call("math.sign", 1, D(-3.5)), -1.0);
  expect_double(call("math.sign", 1, D(INFINITY)), 1.0);
  expect_double(call("math.sign", 1, D(NAN)), NAN);
  expect_err(call("math.sign", 1, kv_bool(true)), CEL_ERR_NO_OVERLOAD, "math.sign");
}

static void test_predicates_sqrt(void **state) {
  (void)state;
  expect_bool(call("math.isNaN", 1, D(NAN)), true);
  expect_bool(call("math.isNaN", 1, D(1.0)), false);
  expect_bool(call("math.isInf", 1, D(-INFINITY)), true);
  expect_bool(call("math.isInf", 1, D(NAN)), false);
  expect_bool(call("math.isFinite", 1, D(1.0 / 1.5)), true);
  expect_bool(call("math.isFinite", 1, D(NAN)), false);
  expect_bool(call("math.isFinite", 1, D(-INFINITY)), false);
  expect_err(call("math.isNaN", 1, kv_bool(true)), CEL_ERR_NO_OVERLOAD, "math.isNaN");
  expect_err(call("math.isInf", 1, I(1)), CEL_ERR_NO_OVERLOAD, "math.isInf");
  expect_err(call("math.isFinite", 1, U(1)), CEL_ERR_NO_OVERLOAD, "math.isFinite");

  expect_double(call("math.sqrt", 1, D(49.0)), 7.0);
  expect_double(call("math.sqrt", 1, I(81)), 9.0);
  expect_double(call("math.sqrt", 1, U(4)), 2.0);
  expect_double(call("math.sqrt", 1, I(-1)), NAN);
  expect_err(call("math.sqrt", 1, kv_cstring("4")), CEL_ERR_NO_OVERLOAD, "math.sqrt");
}

/* ---- bits ---------------------------------------------------------------- */

static void test_bits(void **state) {
  (void)state;
  expect_int(call("math.bitAnd", 2, I(1), I(2)), 0);
  expect_int(call("math.bitAnd", 2, I(1), I(3)), 1);
  expect_uint(call("math.bitAnd", 2, U(1), U(3)), 1);
  expect_int(call("math.bitOr", 2, I(4), I(-2)), -2);
  expect_uint(call("math.bitOr", 2, U(1), U(4)), 5);
  expect_int(call("math.bitXor", 2, I(1), I(3)), 2);
  expect_int(call("math.bitXor", 2, I(4), I(-2)), -6);
  expect_uint(call("math.bitXor", 2, U(1), U(3)), 2);
  expect_int(call("math.bitNot", 1, I(-1)), 0);
  expect_int(call("math.bitNot", 1, I(0)), -1);
  expect_uint(call("math.bitNot", 1, U(0)), UINT64_MAX);
  expect_err(call("math.bitAnd", 2, U(2), kv_cstring("")), CEL_ERR_NO_OVERLOAD, "math.bitAnd");
  expect_err(call("math.bitAnd", 2, I(2), U(1)), CEL_ERR_NO_OVERLOAD, "math.bitAnd");
  expect_err(call("math.bitOr", 2, D(1.2), I(1)), CEL_ERR_NO_OVERLOAD, "math.bitOr");
  expect_err(call("math.bitNot", 1, kv_cstring("")), CEL_ERR_NO_OVERLOAD, "math.bitNot");

  expect_int(call("math.bitShiftLeft", 2, I(1), I(2)), 4);
  expect_int(call("math.bitShiftLeft", 2, I(-1), I(200)), 0);
  expect_int(call("math.bitShiftLeft", 2, I(1), I(63)), INT64_MIN);
  expect_int(call("math.bitShiftLeft", 2, I(-1), I(1)), -2);
  expect_uint(call("math.bitShiftLeft", 2, U(1), I(2)), 4);
  expect_uint(call("math.bitShiftLeft", 2, U(1), I(64)), 0);
  expect_err(call("math.bitShiftLeft", 2, U(1), I(-1)), CEL_ERR_INVALID,
             "math.bitShiftLeft() negative offset: -1");
  expect_err(call("math.bitShiftLeft", 2, D(4.3), I(1)), CEL_ERR_NO_OVERLOAD, "math.bitShiftLeft");
  expect_err(call("math.bitShiftLeft", 2, I(1), U(1)), CEL_ERR_NO_OVERLOAD, "math.bitShiftLeft");

  expect_int(call("math.bitShiftRight", 2, I(1024), I(2)), 256);
  expect_int(call("math.bitShiftRight", 2, I(1024), I(64)), 0);
  expect_int(call("math.bitShiftRight", 2, I(-1024), I(3)), 2305843009213693824);
  expect_int(call("math.bitShiftRight", 2, I(-1024), I(64)), 0);
  expect_uint(call("math.bitShiftRight", 2, U(1024), I(200)), 0);
  expect_uint(call("math.bitShiftRight", 2, U(UINT64_MAX), I(63)), 1);
  expect_err(call("math.bitShiftRight", 2, I(8), I(-3)), CEL_ERR_INVALID,
             "math.bitShiftRight() negative offset: -3");
  expect_err(call("math.bitShiftRight", 2, kv_bytes("123", 3), I(1)), CEL_ERR_NO_OVERLOAD,
             "math.bitShiftRight");
}

/* Every function is a global qualified call with the arity cel-go gives it. */
static void test_table(void **state) {
  (void)state;
  for (size_t i = 0; i < cel_math_ndefs; i++) {
    assert_int_equal(cel_math_defs[i].style, CEL_FN_GLOBAL);
    assert_int_equal(strncmp(cel_math_defs[i].name, "math.", 5), 0);
  }
  assert_int_equal(find_def("math.greatest")->max_args, 255);
  assert_int_equal(find_def("math.bitShiftLeft")->min_args, 2);
  assert_int_equal(find_def("math.bitNot")->max_args, 1);
  assert_non_null(find_def("math.sqrt"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greatest),        cmocka_unit_test(test_least),
      cmocka_unit_test(test_rounding),        cmocka_unit_test(test_abs_sign),
      cmocka_unit_test(test_predicates_sqrt), cmocka_unit_test(test_bits),
      cmocka_unit_test(test_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
