/*
 * core/cel/lib_math.c: the CEL math extension library (CEL_EXT_MATH), as
 * cel-go's ext.Math() defines it: math.greatest / math.least (variadic or
 * one list; int, uint and double compare by numeric value and the winner
 * keeps its type), math.ceil / floor / round / trunc (double), math.abs,
 * math.sign (int, uint, double), math.isNaN / isInf / isFinite (double),
 * math.sqrt (int, uint, double -> double) and the bit operations
 * math.bitAnd / bitOr / bitXor / bitNot / bitShiftLeft / bitShiftRight
 * (int and uint; the shift count is an int).  All are global calls with a
 * qualified name.
 */
#include "cel/cel_impl.h"

#include <math.h>

static bool is_num(const kv *v) {
  return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
}

/* Exact comparison of int `i` with double `d`: -1, 0 or 1 (NaN: 0). */
static int cmp_int_double(int64_t i, double d) {
  if (isnan(d)) return 0;
  if (d < -9223372036854775808.0) return 1;
  if (d >= 9223372036854775808.0) return -1;
  double t = trunc(d);
  int64_t ti = (int64_t)t;
  if (i != ti) return i < ti ? -1 : 1;
  double frac = d - t;
  return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}
static int cmp_uint_double(uint64_t u, double d) {
  if (isnan(d)) return 0;
  if (d < 0) return 1;
  if (d >= 18446744073709551616.0) return -1;
  double t = trunc(d);
  uint64_t tu = (uint64_t)t;
  if (u != tu) return u < tu ? -1 : 1;
  return d > t ? -1 : 0;
}

/* Numeric order across int, uint and double (CEL's heterogeneous
 * comparison): -1, 0 or 1.  NaN compares equal to everything here, so it
 * never displaces the current winner (cel-go's behaviour). */
static int num_cmp(const kv *a, const kv *b) {
  switch (a->kind) {
  case KV_INT:
    if (b->kind == KV_INT) return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    if (b->kind == KV_UINT) {
      if (a->u.i < 0) return -1;
      uint64_t x = (uint64_t)a->u.i;
      return x < b->u.u ? -1 : x > b->u.u;
    }
    return cmp_int_double(a->u.i, b->u.d);
  case KV_UINT:
    if (b->kind == KV_UINT) return a->u.u < b->u.u ? -1 : a->u.u > b->u.u;
    if (b->kind == KV_INT) return -num_cmp(b, a);
    return cmp_uint_double(a->u.u, b->u.d);
  default:
    if (b->kind != KV_DOUBLE) return -num_cmp(b, a);
    if (isnan(a->u.d) || isnan(b->u.d)) return 0;
    return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
  }
}

/* The winner of `items` (all numeric): want = 1 for the greatest, -1 for
 * the least.  Ties keep the earlier item. */
static kv *extreme(kv *const *items, size_t n, int want) {
  kv *best = items[0];
  for (size_t i = 1; i < n; i++)
    if (num_cmp(items[i], best) == want) best = items[i];
  return kv_ref(best);
}

static kv *greatest_least(const cel_call *c, kv *const *a, size_t n, int want) {
  if (n == 0) return cel_no_overload(c, a, n);
  if (n == 1 && a[0]->kind == KV_LIST) {
    size_t k = kv_len(a[0]);
    if (k == 0)
      return cel_errorf(c, CEL_ERR_INVALID, "%s(list) argument must not be empty",
                        want > 0 ? "math.greatest" : "math.least");
    for (size_t i = 0; i < k; i++)
      if (!is_num(kv_list_at(a[0], i))) return cel_no_overload(c, a, n);
    return extreme(a[0]->u.list.items, k, want);
  }
  for (size_t i = 0; i < n; i++)
    if (!is_num(a[i])) return cel_no_overload(c, a, n);
  return extreme(a, n, want);
}

/* math.greatest(x, ...) / math.greatest(list): the largest number. */
static kv *fn_greatest(const cel_call *c, kv *const *a, size_t n) {
  return greatest_least(c, a, n, 1);
}
/* math.least(x, ...) / math.least(list): the smallest number. */
static kv *fn_least(const cel_call *c, kv *const *a, size_t n) {
  return greatest_least(c, a, n, -1);
}

/* ---- rounding and floating point helpers (double only) ------------------ */

#define DOUBLE_FN(cname, expr)                                                                     \
  static kv *cname(const cel_call *c, kv *const *a, size_t n) {                                    \
    if (n != 1 || a[0]->kind != KV_DOUBLE) return cel_no_overload(c, a, n);                        \
    double x = a[0]->u.d;                                                                          \
    return (expr);                                                                                 \
  }

DOUBLE_FN(fn_ceil, kv_double(ceil(x)))
DOUBLE_FN(fn_floor, kv_double(floor(x)))
DOUBLE_FN(fn_round, kv_double(round(x))) /* half away from zero, as Go's math.Round */
DOUBLE_FN(fn_trunc, kv_double(trunc(x)))
DOUBLE_FN(fn_is_nan, kv_bool(isnan(x)))
DOUBLE_FN(fn_is_inf, kv_bool(isinf(x)))
DOUBLE_FN(fn_is_finite, kv_bool(isfinite(x)))

/* math.abs(int|uint|double); abs of the smallest int overflows. */
static kv *fn_abs(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1) return cel_no_overload(c, a, n);
  switch (a[0]->kind) {
  case KV_INT:
    if (a[0]->u.i == INT64_MIN) return cel_errorf(c, CEL_ERR_OVERFLOW, "integer overflow");
    return a[0]->u.i < 0 ? kv_int(-a[0]->u.i) : kv_ref(a[0]);
  case KV_UINT: return kv_ref(a[0]);
  case KV_DOUBLE: return kv_double(fabs(a[0]->u.d));
  default: return cel_no_overload(c, a, n);
  }
}

/* math.sign(int|uint|double): -1, 0 or 1 in the argument's type; NaN
 * stays NaN. */
static kv *fn_sign(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1) return cel_no_overload(c, a, n);
  switch (a[0]->kind) {
  case KV_INT: return kv_int(a[0]->u.i > 0 ? 1 : a[0]->u.i < 0 ? -1 : 0);
  case KV_UINT: return kv_uint(a[0]->u.u ? 1 : 0);
  case KV_DOUBLE: {
    double x = a[0]->u.d;
    if (isnan(x)) return kv_ref(a[0]);
    return kv_double(x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0);
  }
  default: return cel_no_overload(c, a, n);
  }
}

/* math.sqrt(int|uint|double) -> double (NaN for negative input). */
static kv *fn_sqrt(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1) return cel_no_overload(c, a, n);
  switch (a[0]->kind) {
  case KV_INT: return kv_double(sqrt((double)a[0]->u.i));
  case KV_UINT: return kv_double(sqrt((double)a[0]->u.u));
  case KV_DOUBLE: return kv_double(sqrt(a[0]->u.d));
  default: return cel_no_overload(c, a, n);
  }
}

/* ---- bit operations -------------------------------------------------------- */

enum { BIT_AND, BIT_OR, BIT_XOR };

static kv *bit_pair(const cel_call *c, kv *const *a, size_t n, int op) {
  if (n != 2 || a[0]->kind != a[1]->kind || (a[0]->kind != KV_INT && a[0]->kind != KV_UINT))
    return cel_no_overload(c, a, n);
  uint64_t x = a[0]->u.u, y = a[1]->u.u, r;
  if (a[0]->kind == KV_INT) {
    x = (uint64_t)a[0]->u.i;
    y = (uint64_t)a[1]->u.i;
  }
  r = op == BIT_AND ? (x & y) : op == BIT_OR ? (x | y) : (x ^ y);
  return a[0]->kind == KV_INT ? kv_int((int64_t)r) : kv_uint(r);
}
/* math.bitAnd / bitOr / bitXor (int, int) -> int, (uint, uint) -> uint. */
static kv *fn_bit_and(const cel_call *c, kv *const *a, size_t n) {
  return bit_pair(c, a, n, BIT_AND);
}
static kv *fn_bit_or(const cel_call *c, kv *const *a, size_t n) {
  return bit_pair(c, a, n, BIT_OR);
}
static kv *fn_bit_xor(const cel_call *c, kv *const *a, size_t n) {
  return bit_pair(c, a, n, BIT_XOR);
}

/* math.bitNot(int|uint): the bitwise complement. */
static kv *fn_bit_not(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1) return cel_no_overload(c, a, n);
  if (a[0]->kind == KV_INT) return kv_int((int64_t) ~(uint64_t)a[0]->u.i);
  if (a[0]->kind == KV_UINT) return kv_uint(~a[0]->u.u);
  return cel_no_overload(c, a, n);
}

/* math.bitShiftLeft / bitShiftRight(int|uint value, int count).  A count of
 * 64 or more gives 0; a negative count is an error.  Right shifts are
 * logical (zero fill) for ints too, as in cel-go. */
static kv *bit_shift(const cel_call *c, kv *const *a, size_t n, bool left) {
  if (n != 2 || (a[0]->kind != KV_INT && a[0]->kind != KV_UINT) || a[1]->kind != KV_INT)
    return cel_no_overload(c, a, n);
  int64_t k = a[1]->u.i;
  if (k < 0)
    return cel_errorf(c, CEL_ERR_INVALID, "math.%s() negative offset: %lld",
                      left ? "bitShiftLeft" : "bitShiftRight", (long long)k);
  uint64_t x = a[0]->kind == KV_INT ? (uint64_t)a[0]->u.i : a[0]->u.u;
  uint64_t r = k >= 64 ? 0 : left ? x << k : x >> k;
  return a[0]->kind == KV_INT ? kv_int((int64_t)r) : kv_uint(r);
}
static kv *fn_shift_left(const cel_call *c, kv *const *a, size_t n) {
  return bit_shift(c, a, n, true);
}
static kv *fn_shift_right(const cel_call *c, kv *const *a, size_t n) {
  return bit_shift(c, a, n, false);
}

/* The math extension's functions (cel-go ext.Math, versions 0-2); all are
 * global calls with a qualified name. */
const cel_fn_def cel_math_defs[] = {
    {"math.greatest", CEL_FN_GLOBAL, 1, 255, fn_greatest},
    {"math.least", CEL_FN_GLOBAL, 1, 255, fn_least},
    {"math.ceil", CEL_FN_GLOBAL, 1, 1, fn_ceil},
    {"math.floor", CEL_FN_GLOBAL, 1, 1, fn_floor},
    {"math.round", CEL_FN_GLOBAL, 1, 1, fn_round},
    {"math.trunc", CEL_FN_GLOBAL, 1, 1, fn_trunc},
    {"math.abs", CEL_FN_GLOBAL, 1, 1, fn_abs},
    {"math.sign", CEL_FN_GLOBAL, 1, 1, fn_sign},
    {"math.isNaN", CEL_FN_GLOBAL, 1, 1, fn_is_nan},
    {"math.isInf", CEL_FN_GLOBAL, 1, 1, fn_is_inf},
    {"math.isFinite", CEL_FN_GLOBAL, 1, 1, fn_is_finite},
    {"math.sqrt", CEL_FN_GLOBAL, 1, 1, fn_sqrt},
    {"math.bitAnd", CEL_FN_GLOBAL, 2, 2, fn_bit_and},
    {"math.bitOr", CEL_FN_GLOBAL, 2, 2, fn_bit_or},
    {"math.bitXor", CEL_FN_GLOBAL, 2, 2, fn_bit_xor},
    {"math.bitNot", CEL_FN_GLOBAL, 1, 1, fn_bit_not},
    {"math.bitShiftLeft", CEL_FN_GLOBAL, 2, 2, fn_shift_left},
    {"math.bitShiftRight", CEL_FN_GLOBAL, 2, 2, fn_shift_right},
};
const size_t cel_math_ndefs = sizeof cel_math_defs / sizeof cel_math_defs[0];
