/*
 * core/cel/dialect_koreo.c: the Koreo dialect of the CEL evaluator.
 *
 * Upstream Koreo evaluates expressions with cel-python 0.3.0, whose
 * operators are Python operators applied to Python subclasses (IntType is
 * an int, DoubleType a float, BoolType an int, StringType a str, ...), so
 * its results follow Python's operator dispatch rather than the CEL
 * language definition.  This file reproduces that behaviour, under the
 * compatibility rule of shared/conformance/koreo-expressions/README.md:
 *
 *   - cel_koreo_ops: every operator, index, field selection, && || ?:,
 *     macro iteration and predicate, map literal and the final result
 *     check (dialect.h);
 *   - cel_koreo_dialect_defs: the standard functions whose Koreo
 *     behaviour differs (size, contains, startsWith, endsWith, matches,
 *     int, uint, double, string, bytes, bool).
 *
 * Model.  Every value is classified as the Python class cel-python would
 * hold for it (enum pyc below).  Values built from JSON bindings and
 * literals are the CEL classes; some operations return *plain* Python
 * numbers, strings, lists or timedeltas (`2.5 + 1` is a float, not a
 * DoubleType), which then dispatch differently (`(1.0 + 2.0) == 3` is
 * true, `1.0 + 2 == 3` would fail with a DoubleType).  Such values carry
 * KV_FLAG_PY_PLAIN; the flag is set only on values allocated here.
 *
 * Errors.  cel-python keeps errors as values; operators handle them with
 * Python's rules (an error compared with a string is simply unequal).
 * Failures that escape cel-python as Python exceptions ("Unknown failure"
 * in Koreo: a macro over null, ...) are errors with code CEL_ERR_UNKNOWN
 * here; no operator absorbs them.  Messages are ours, in CEL terms.
 *
 * Where upstream fails but the CEL language defines a result and the
 * project decided the failure is a defect (cel-wins.jsonl), the CEL result
 * is returned: equality with null, equality between lists or maps whose
 * elements cel-python cannot compare, list-vs-map equality, and the
 * three-argument map() macro.  docs/koreo-dialect.md lists every
 * difference from standard CEL.
 */
#include "dialect.h"
#include "lib_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __int128 i128;

#define I64_MIN_ ((i128)INT64_MIN)
#define I64_MAX_ ((i128)INT64_MAX)
#define U64_MAX_ ((i128)UINT64_MAX)

/* ---- the Python class of a value ----------------------------------------- */

typedef enum pyc {
  PY_ERR,   /* celpy.evaluation.CELEvalError */
  PY_NONE,  /* None */
  PY_BOOL,  /* BoolType (a subclass of int) */
  PY_INT,   /* IntType */
  PY_PINT,  /* plain int */
  PY_UINT,  /* UintType */
  PY_DBL,   /* DoubleType */
  PY_PFLT,  /* plain float */
  PY_STR,   /* StringType or plain str (they differ only in repr) */
  PY_BYTES, /* BytesType or plain bytes */
  PY_LIST,  /* ListType or plain list */
  PY_MAP,   /* MapType */
  PY_TS,    /* TimestampType */
  PY_DUR,   /* DurationType or plain timedelta */
  PY_TYPE,  /* a class (the result of type()) */
} pyc;

static bool is_plain(const kv *v) { return (v->flags & KV_FLAG_PY_PLAIN) != 0; }

static pyc pyclass(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: return PY_NONE;
  case KV_BOOL: return PY_BOOL;
  case KV_INT: return is_plain(v) ? PY_PINT : PY_INT;
  case KV_UINT: return PY_UINT;
  case KV_DOUBLE: return is_plain(v) ? PY_PFLT : PY_DBL;
  case KV_STRING: return PY_STR;
  case KV_BYTES: return PY_BYTES;
  case KV_LIST: return PY_LIST;
  case KV_MAP: return PY_MAP;
  case KV_TIMESTAMP: return PY_TS;
  case KV_DURATION: return PY_DUR;
  case KV_TYPE: return PY_TYPE;
  case KV_ERROR: break;
  }
  return PY_ERR;
}

static bool is_intlike(pyc k) {
  return k == PY_BOOL || k == PY_INT || k == PY_PINT || k == PY_UINT;
}
static bool is_floatlike(pyc k) { return k == PY_DBL || k == PY_PFLT; }
static bool is_numeric(pyc k) { return is_intlike(k) || is_floatlike(k); }
/* Classes whose __eq__ raises TypeError for a foreign operand (IntType,
 * UintType, DoubleType are type-matched; ListType, MapType refuse). */
static bool eq_strict(pyc k) {
  return k == PY_INT || k == PY_UINT || k == PY_DBL || k == PY_LIST || k == PY_MAP;
}

static i128 ival(const kv *v) {
  switch (v->kind) {
  case KV_BOOL: return v->u.b;
  case KV_UINT: return (i128)v->u.u;
  default: return v->u.i;
  }
}

static double fval(const kv *v) {
  switch (v->kind) {
  case KV_DOUBLE: return v->u.d;
  case KV_BOOL: return v->u.b;
  case KV_UINT: return (double)v->u.u;
  default: return (double)v->u.i;
  }
}

/* Raised failures (Python exceptions that escape cel-python) are never
 * absorbed by an operator. */
static bool is_raised(const kv *v) {
  return v->kind == KV_ERROR && (v->u.err.code == CEL_ERR_UNKNOWN || (v->flags & KV_FLAG_RAISED));
}

static kv *mark_plain(kv *v) {
  if (v->refs >= 0) v->flags |= KV_FLAG_PY_PLAIN;
  return v;
}

/* ---- errors -------------------------------------------------------------- */

static const char *tname(const kv *v) { return v->kind == KV_ERROR ? "error" : cel_type_name(v); }

/* "no matching overload for 'OP' applied to (T1, T2)"; when an operand is
 * itself an error, its message is kept as the cause. */
static kv *no_overload(const cel_call *c, const char *op, const kv *a, const kv *b) {
  const kv *e = a->kind == KV_ERROR ? a : (b && b->kind == KV_ERROR) ? b : NULL;
  char types[128];
  if (b)
    snprintf(types, sizeof types, "%s, %s", tname(a), tname(b));
  else
    snprintf(types, sizeof types, "%s", tname(a));
  if (e)
    return cel_errorf(c, CEL_ERR_NO_OVERLOAD,
                      "no matching overload for '%s' applied to (%s): the %soperand failed: %s", op,
                      types,
                      !b       ? ""
                      : e == a ? "left "
                               : "right ",
                      e->u.err.msg);
  return cel_errorf(c, CEL_ERR_NO_OVERLOAD, "no matching overload for '%s' applied to (%s)", op,
                    types);
}

static kv *fn_no_overload(const cel_call *c, kv *const *args, size_t n) {
  return cel_no_overload(c, args, n);
}

static kv *overflow(const cel_call *c, const char *what, const char *op) {
  return cel_errorf(c, CEL_ERR_OVERFLOW, "%s overflow in '%s'", what, op);
}

static kv *div_zero(const cel_call *c, int op) {
  return cel_errorf(c, CEL_ERR_DIV_ZERO, op == CEL_OP_MOD ? "modulus by zero" : "division by zero");
}

/* ---- results --------------------------------------------------------------- */

static kv *int_res(const cel_call *c, i128 r, int op) {
  if (r < I64_MIN_ || r > I64_MAX_) return overflow(c, "int", cel_op_name(op));
  return kv_int((int64_t)r);
}
static kv *uint_res(const cel_call *c, i128 r, int op) {
  if (r < 0 || r > U64_MAX_) return overflow(c, "uint", cel_op_name(op));
  return kv_uint((uint64_t)r);
}
/* Plain Python ints are unbounded; ours stop at int64 (the result must
 * still become a JSON/CEL int). */
static kv *pint_res(const cel_call *c, i128 r, int op) {
  if (r < I64_MIN_ || r > I64_MAX_) return overflow(c, "int", cel_op_name(op));
  return mark_plain(kv_int((int64_t)r));
}
static kv *pflt_res(double d) { return mark_plain(kv_double(d)); }

/* ---- Python number helpers --------------------------------------------------- */

static i128 floordiv_i(i128 a, i128 b) {
  i128 q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}
static i128 floormod_i(i128 a, i128 b) { return a - floordiv_i(a, b) * b; }
static i128 abs_i(i128 a) { return a < 0 ? -a : a; }

/* Python's float % and // (Objects/floatobject.c float_divmod). */
static double py_fmod(double vx, double wx) {
  double mod = fmod(vx, wx);
  if (mod) {
    if ((wx < 0) != (mod < 0)) mod += wx;
  } else {
    mod = copysign(0.0, wx);
  }
  return mod;
}
static double py_floordiv(double vx, double wx) {
  double mod = fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod && ((wx < 0) != (mod < 0))) div -= 1.0;
  double fl;
  if (div) {
    fl = floor(div);
    if (div - fl > 0.5) fl += 1.0;
  } else {
    fl = copysign(0.0, vx / wx);
  }
  return fl;
}

/* Python round() of a float to an int (half to even), then the int64 /
 * uint64 range check of IntType / UintType.  Returns 0 ok, 1 NaN (Python
 * ValueError), 2 infinite (OverflowError), 3 out of range. */
static int round_to_i128(double d, i128 *out) {
  if (isnan(d)) return 1;
  if (isinf(d)) return 2;
  double r = nearbyint(d);
  if (r < -1.8446744073709552e19 || r >= 3.6893488147419103e19) return 3;
  *out = (i128)r;
  return 0;
}

/* Exact comparison of an integer with a double; NaN is unordered. */
static int cmp_i_d(i128 i, double d, bool *un) {
  if (isnan(d)) {
    *un = true;
    return 0;
  }
  if (d >= 3.6893488147419103e19) return -1;
  if (d < -1.8446744073709552e19) return 1;
  double t = trunc(d);
  i128 ti = (i128)t;
  if (i < ti) return -1;
  if (i > ti) return 1;
  return d > t ? -1 : d < t ? 1 : 0;
}

/* Compare two numbers (any numeric classes) by value. */
static int cmp_num(const kv *a, const kv *b, bool *un) {
  *un = false;
  pyc ka = pyclass(a), kb = pyclass(b);
  if (is_intlike(ka) && is_intlike(kb)) {
    i128 x = ival(a), y = ival(b);
    return x < y ? -1 : x > y;
  }
  if (is_intlike(ka)) return cmp_i_d(ival(a), fval(b), un);
  if (is_intlike(kb)) return -cmp_i_d(ival(b), fval(a), un);
  double x = fval(a), y = fval(b);
  if (isnan(x) || isnan(y)) {
    *un = true;
    return 0;
  }
  return x < y ? -1 : x > y;
}

static int bytes_cmp(const kv *a, const kv *b) {
  size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
  int r = n ? memcmp(a->u.s.ptr, b->u.s.ptr, n) : 0;
  if (r) return r < 0 ? -1 : 1;
  return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
}

static int time_cmp(const kv *a, const kv *b) {
  if (a->u.t.sec != b->u.t.sec) return a->u.t.sec < b->u.t.sec ? -1 : 1;
  return a->u.t.nsec < b->u.t.nsec ? -1 : a->u.t.nsec > b->u.t.nsec;
}

/* ---- equality ------------------------------------------------------------------ */

static int py_eq(const kv *a, const kv *b);

/* Python hash-equality of two hashable values: the candidates a dict
 * lookup compares with ==.  (Numbers hash by value across int, float and
 * bool; strings and bytes by content.) */
static bool py_hash_equal(const kv *a, const kv *b) {
  pyc ka = pyclass(a), kb = pyclass(b);
  if (is_numeric(ka) && is_numeric(kb)) {
    bool un;
    return cmp_num(a, b, &un) == 0 && !un;
  }
  if (ka != kb) return false;
  switch (ka) {
  case PY_NONE: return true;
  case PY_STR:
  case PY_BYTES:
  case PY_TYPE: return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
  case PY_TS:
  case PY_DUR: return time_cmp(a, b) == 0;
  default: return false;
  }
}

static bool py_hashable(const kv *k) {
  pyc p = pyclass(k);
  return p != PY_LIST && p != PY_MAP && p != PY_ERR;
}

/* A dict lookup with Python's rules: the stored key is compared with ==
 * against `key` for every hash-equal candidate.  Returns the index, -1
 * when absent, -2 when a comparison raised TypeError. */
static ptrdiff_t py_dict_find(const kv *m, const kv *key) {
  if (key->kind == KV_STRING) {
    /* only strings hash-compare equal to strings */
    for (size_t i = 0; i < m->u.map.len; i++) {
      const kv *k = m->u.map.keys[i];
      if (k->kind == KV_STRING && py_hash_equal(k, key)) return (ptrdiff_t)i;
    }
    return -1;
  }
  for (size_t i = 0; i < m->u.map.len; i++) {
    const kv *k = m->u.map.keys[i];
    if (!py_hash_equal(k, key)) continue;
    int r = py_eq(k, key);
    if (r < 0) return -2;
    if (r) return (ptrdiff_t)i;
  }
  return -1;
}

/* MapType keys that __getitem__ accepts. */
static bool valid_key_type(const kv *k) {
  pyc p = pyclass(k);
  return p == PY_INT || p == PY_UINT || p == PY_BOOL || p == PY_STR;
}

/* Python `a == b` for cel-python values: 1 true, 0 false, -1 TypeError.
 * Follows the reflected-operand rules: IntType/UintType/DoubleType accept
 * only their own class (or a plain superclass), ListType and MapType raise
 * for anything that is not a list or map, other classes answer "unequal"
 * for foreign operands (so an error value equals nothing but itself). */
static int py_eq(const kv *a, const kv *b) {
  pyc ka = pyclass(a), kb = pyclass(b);
  if (ka == PY_ERR || kb == PY_ERR) {
    if (ka == PY_ERR && kb == PY_ERR)
      return a->u.err.code == b->u.err.code && strcmp(a->u.err.msg, b->u.err.msg) == 0;
    return eq_strict(ka == PY_ERR ? kb : ka) ? -1 : 0;
  }
  switch (ka) {
  case PY_INT:
    if (kb == PY_INT || kb == PY_PINT) return ival(a) == ival(b);
    return -1;
  case PY_UINT:
    if (kb == PY_UINT || kb == PY_PINT) return ival(a) == ival(b);
    return -1;
  case PY_DBL:
    if (is_floatlike(kb)) return a->u.d == b->u.d;
    return -1;
  case PY_PFLT:
  case PY_PINT:
  case PY_BOOL:
    if (kb == PY_DBL && ka != PY_PFLT) return -1; /* DoubleType.__eq__ reflected */
    if (is_numeric(kb)) {
      bool un;
      int r = cmp_num(a, b, &un);
      return !un && r == 0;
    }
    return eq_strict(kb) ? -1 : 0;
  case PY_NONE:
    if (kb == PY_NONE) return 1;
    return eq_strict(kb) ? -1 : 0;
  case PY_STR:
  case PY_BYTES:
  case PY_TYPE:
    if (kb == ka)
      return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    return eq_strict(kb) ? -1 : 0;
  case PY_TS:
  case PY_DUR:
    if (kb == ka) return time_cmp(a, b) == 0;
    return eq_strict(kb) ? -1 : 0;
  case PY_LIST: {
    if (kb != PY_LIST) return -1;
    if (a->u.list.len != b->u.list.len) return 0;
    /* reduce(logical_and, ...): any False wins, else any TypeError raises */
    bool raised = false;
    for (size_t i = 0; i < a->u.list.len; i++) {
      int r = py_eq(a->u.list.items[i], b->u.list.items[i]);
      if (r == 0) return 0;
      if (r < 0) raised = true;
    }
    return raised ? -1 : 1;
  }
  case PY_MAP: {
    if (kb != PY_MAP) return -1;
    /* keys_s == keys_o: set equality of the key views */
    if (a->u.map.len != b->u.map.len) return 0;
    for (size_t i = 0; i < a->u.map.len; i++) {
      ptrdiff_t j = py_dict_find(b, a->u.map.keys[i]);
      if (j == -2) return -1;
      if (j < 0) return 0;
    }
    bool raised = false;
    for (size_t i = 0; i < a->u.map.len; i++) {
      const kv *k = a->u.map.keys[i];
      if (!valid_key_type(k)) return -1; /* MapType.__getitem__ refuses the key */
      ptrdiff_t j = py_dict_find(b, k);
      int r = py_eq(a->u.map.vals[i], b->u.map.vals[j]);
      if (r == 0) return 0;
      if (r < 0) raised = true;
    }
    return raised ? -1 : 1;
  }
  default: return -1;
  }
}

/* Koreo equality: cel-python's, except where cel-python fails and the
 * project returns the CEL result (cel-wins.jsonl): anything compared with
 * null, lists or maps whose elements cel-python cannot compare, and a list
 * compared with a map. */
static int koreo_eq(const cel_call *c, const kv *a, const kv *b) {
  pyc ka = pyclass(a), kb = pyclass(b);
  if (ka == PY_NONE || kb == PY_NONE) return ka == kb;
  if ((ka == PY_LIST && kb == PY_MAP) || (ka == PY_MAP && kb == PY_LIST)) return 0;
  int r = py_eq(a, b);
  if (r < 0 && ka == kb && (ka == PY_LIST || ka == PY_MAP)) {
    kv *err = NULL;
    r = cel_std_equal(c, a, b, &err);
    if (r < 0) {
      kv_unref(err);
      r = 0;
    }
  }
  return r;
}

/* Python ordering (<, <=, >, >=) for cel-python values.  Returns false
 * when Python raises TypeError; else *r is <0, 0, >0 and *un is set for
 * NaN. */
static bool py_order(const kv *a, const kv *b, int *r, bool *un) {
  pyc ka = pyclass(a), kb = pyclass(b);
  *un = false;
  if (ka == PY_INT) {
    /* IntType's comparisons are type-matched */
    if (kb != PY_INT && kb != PY_PINT) return false;
    *r = cmp_num(a, b, un);
    return true;
  }
  if (is_numeric(ka) && is_numeric(kb)) {
    *r = cmp_num(a, b, un);
    return true;
  }
  if (ka != kb) return false;
  switch (ka) {
  case PY_STR:
  case PY_BYTES: *r = bytes_cmp(a, b); return true;
  case PY_TS:
  case PY_DUR: *r = time_cmp(a, b); return true;
  default: return false;
  }
}

/* ---- durations (Python timedelta, microsecond resolution) --------------------- */

#define US_PER_SEC 1000000LL
#define TD_MAX_US ((i128)999999999 * 86400 * US_PER_SEC + 86399 * US_PER_SEC + 999999)

/* Round-half-even integer division (Python's _divide_and_round). */
static i128 div_round(i128 a, i128 b) {
  i128 q = floordiv_i(a, b), r = a - q * b;
  i128 r2 = 2 * r;
  bool greater = b > 0 ? r2 > b : r2 < b;
  if (greater || (r2 == b && (q & 1))) q++;
  return q;
}

static i128 dur_us(const kv *d) {
  i128 ns = (i128)d->u.t.sec * 1000000000 + d->u.t.nsec;
  return div_round(ns, 1000);
}

static kv *dur_from_us(const cel_call *c, i128 us, bool plain, int op) {
  if (us < -TD_MAX_US - 1 || us > TD_MAX_US) return overflow(c, "duration", cel_op_name(op));
  if (!plain &&
      (us < -(i128)CEL_DUR_MAX_SEC * US_PER_SEC || us > (i128)CEL_DUR_MAX_SEC * US_PER_SEC))
    return overflow(c, "duration", cel_op_name(op));
  int64_t sec = (int64_t)(us / US_PER_SEC);
  int32_t nsec = (int32_t)(us % US_PER_SEC) * 1000;
  kv *r = kv_duration(sec, nsec);
  return plain ? mark_plain(r) : r;
}

static kv *ts_shift(const cel_call *c, const kv *ts, const kv *d, int sign, int op) {
  i128 ns = (i128)ts->u.t.sec * 1000000000 + ts->u.t.nsec +
            sign * ((i128)d->u.t.sec * 1000000000 + d->u.t.nsec);
  int64_t sec = (int64_t)floordiv_i(ns, 1000000000);
  int32_t nsec = (int32_t)floormod_i(ns, 1000000000);
  /* datetime's range, in the timestamp's own offset */
  int64_t local = sec + ts->u.t.off;
  if (local < CEL_TS_MIN_SEC || local > CEL_TS_MAX_SEC)
    return overflow(c, "timestamp", cel_op_name(op));
  kv *r = kv_timestamp(sec, nsec);
  r->u.t.off = ts->u.t.off;
  return r;
}

/* ---- arithmetic ------------------------------------------------------------------- */

/* `seq * n` for a str, bytes or list (Python repetition; n <= 0 gives an
 * empty sequence). */
static kv *repeat_seq(const cel_call *c, const kv *s, i128 n) {
  size_t len = s->kind == KV_LIST ? s->u.list.len : s->u.s.len;
  if (n <= 0 || len == 0) {
    if (s->kind == KV_LIST) return mark_plain(kv_list_new(0));
    return mark_plain(s->kind == KV_STRING ? kv_string("", 0) : kv_bytes("", 0));
  }
  if (n > (i128)(((size_t)1 << 28) / len))
    return cel_errorf(c, CEL_ERR_UNKNOWN, "repetition of a %s by %lld is too large",
                      cel_type_name(s), (long long)(n > I64_MAX_ ? I64_MAX_ : n));
  size_t times = (size_t)n;
  if (s->kind == KV_LIST) {
    kv *l = kv_list_new(len * times);
    for (size_t t = 0; t < times; t++)
      for (size_t i = 0; i < len; i++)
        kv_list_push(l, kv_ref(s->u.list.items[i]));
    return mark_plain(l);
  }
  size_t total = len * times;
  char *p = malloc(total + 1);
  if (!p) kv_oom();
  for (size_t t = 0; t < times; t++)
    memcpy(p + t * len, s->u.s.ptr, len);
  p[total] = 0;
  kv *r;
  if (s->kind == KV_STRING) {
    r = kv_string_take(p, total);
  } else {
    r = kv_bytes(p, total);
    free(p);
  }
  return mark_plain(r);
}

static kv *concat(const kv *a, const kv *b) {
  if (a->kind == KV_LIST) {
    kv *l = kv_list_new(a->u.list.len + b->u.list.len);
    for (size_t i = 0; i < a->u.list.len; i++)
      kv_list_push(l, kv_ref(a->u.list.items[i]));
    for (size_t i = 0; i < b->u.list.len; i++)
      kv_list_push(l, kv_ref(b->u.list.items[i]));
    return mark_plain(l);
  }
  size_t n = a->u.s.len + b->u.s.len;
  char *p = malloc(n + 1);
  if (!p) kv_oom();
  if (a->u.s.len) memcpy(p, a->u.s.ptr, a->u.s.len);
  if (b->u.s.len) memcpy(p + a->u.s.len, b->u.s.ptr, b->u.s.len);
  p[n] = 0;
  kv *r;
  if (a->kind == KV_STRING) {
    r = kv_string_take(p, n);
  } else {
    r = kv_bytes(p, n);
    free(p);
  }
  return mark_plain(r);
}

/* a + b and a - b (sign = +1 / -1 for the integer and float cases). */
static kv *py_addsub(const cel_call *c, int op, const kv *a, const kv *b) {
  pyc ka = pyclass(a), kb = pyclass(b);
  const char *o = cel_op_name(op);
  int sign = op == CEL_OP_ADD ? 1 : -1;
  if (is_intlike(ka) && is_intlike(kb)) {
    i128 r = ival(a) + sign * ival(b);
    if (ka == PY_INT) return int_res(c, r, op);
    if (ka == PY_UINT) return uint_res(c, r, op);
    if (ka == PY_PINT && kb == PY_INT) return int_res(c, r, op);   /* IntType.__radd__ */
    if (ka == PY_PINT && kb == PY_UINT) return uint_res(c, r, op); /* UintType.__radd__ */
    return pint_res(c, r, op); /* bool or plain int with bool or plain int */
  }
  if (is_numeric(ka) && is_numeric(kb)) {
    /* IntType and UintType refuse floats; float arithmetic gives plain floats */
    if (ka == PY_INT || ka == PY_UINT) return no_overload(c, o, a, b);
    double x = fval(a), y = fval(b);
    return pflt_res(op == CEL_OP_ADD ? x + y : x - y);
  }
  if (op == CEL_OP_ADD && ka == kb && (ka == PY_STR || ka == PY_BYTES || ka == PY_LIST))
    return concat(a, b);
  if (op == CEL_OP_ADD) {
    if (ka == PY_TS && kb == PY_DUR) return ts_shift(c, a, b, 1, op);
    if (ka == PY_DUR && kb == PY_TS) return ts_shift(c, b, a, 1, op);
    if (ka == PY_DUR && kb == PY_DUR) return dur_from_us(c, dur_us(a) + dur_us(b), false, op);
  } else {
    if (ka == PY_TS && kb == PY_DUR) return ts_shift(c, a, b, -1, op);
    if (ka == PY_TS && kb == PY_TS) {
      i128 ns = ((i128)a->u.t.sec - b->u.t.sec) * 1000000000 + (a->u.t.nsec - b->u.t.nsec);
      return dur_from_us(c, div_round(ns, 1000), false, op);
    }
    if (ka == PY_DUR && kb == PY_DUR) return dur_from_us(c, dur_us(a) - dur_us(b), true, op);
  }
  return no_overload(c, o, a, b);
}

static kv *py_mul(const cel_call *c, const kv *a, const kv *b) {
  const int op = CEL_OP_MUL;
  pyc ka = pyclass(a), kb = pyclass(b);
  if (is_intlike(ka) && is_intlike(kb)) {
    i128 x = ival(a), y = ival(b), r;
    if (__builtin_mul_overflow(x, y, &r)) return overflow(c, "int", "*");
    if (ka == PY_INT) return int_res(c, r, op);
    if (ka == PY_UINT) return uint_res(c, r, op);
    if (ka == PY_PINT && kb == PY_INT) return int_res(c, r, op);
    if (ka == PY_PINT && kb == PY_UINT) return uint_res(c, r, op);
    return pint_res(c, r, op);
  }
  if (is_numeric(ka) && is_numeric(kb)) {
    if (ka == PY_INT || ka == PY_UINT) return no_overload(c, "*", a, b);
    return pflt_res(fval(a) * fval(b));
  }
  /* sequence repetition: str.__mul__(int), int.__mul__ -> str.__rmul__ */
  if ((ka == PY_STR || ka == PY_BYTES || ka == PY_LIST) && is_intlike(kb))
    return repeat_seq(c, a, ival(b));
  if ((kb == PY_STR || kb == PY_BYTES || kb == PY_LIST) && (ka == PY_BOOL || ka == PY_PINT))
    return repeat_seq(c, b, ival(a));
  /* timedelta * number */
  const kv *d = ka == PY_DUR ? a : kb == PY_DUR ? b : NULL;
  const kv *n = d == a ? b : a;
  if (d && n != d) {
    pyc kn = pyclass(n);
    bool ok = d == a ? is_numeric(kn) : (kn == PY_BOOL || kn == PY_PINT || is_floatlike(kn));
    if (ok) {
      i128 us = dur_us(d);
      if (is_intlike(kn)) {
        i128 r;
        if (__builtin_mul_overflow(us, ival(n), &r)) return overflow(c, "duration", "*");
        return dur_from_us(c, r, true, op);
      }
      double x = fval(n);
      if (!isfinite(x)) return overflow(c, "duration", "*");
      long double p = (long double)us * x;
      if (fabsl(p) > 1e20L) return overflow(c, "duration", "*");
      return dur_from_us(c, (i128)nearbyintl(p), true, op);
    }
  }
  return no_overload(c, "*", a, b);
}

static kv *py_div(const cel_call *c, const kv *a, const kv *b) {
  const int op = CEL_OP_DIV;
  pyc ka = pyclass(a), kb = pyclass(b);
  switch (ka) {
  case PY_INT: /* IntType.__truediv__: Go-style truncation, also for a float divisor */
    if (is_intlike(kb)) {
      i128 x = ival(a), y = ival(b);
      if (y == 0) return div_zero(c, op);
      i128 q = abs_i(x) / abs_i(y);
      return int_res(c, ((x < 0) != (y < 0)) ? -q : q, op);
    }
    if (is_floatlike(kb)) {
      double y = b->u.d;
      if (y == 0) return div_zero(c, op);
      double q = py_floordiv(fabs((double)a->u.i), fabs(y));
      if ((a->u.i < 0) != (y < 0)) q = -q;
      i128 r;
      int st = round_to_i128(q, &r);
      if (st) return overflow(c, "int", "/");
      return int_res(c, r, op);
    }
    break;
  case PY_UINT: /* UintType.__truediv__: Python floor division */
    if (is_intlike(kb)) {
      if (ival(b) == 0) return div_zero(c, op);
      return uint_res(c, floordiv_i(ival(a), ival(b)), op);
    }
    break;
  case PY_PINT:
  case PY_BOOL:
    if (ka == PY_PINT && kb == PY_INT) { /* IntType.__rtruediv__ */
      i128 x = ival(a), y = ival(b);
      if (y == 0) return div_zero(c, op);
      i128 q = abs_i(x) / abs_i(y);
      return int_res(c, ((x < 0) != (y < 0)) ? -q : q, op);
    }
    if (ka == PY_PINT && kb == PY_UINT) { /* UintType.__rtruediv__ */
      if (ival(b) == 0) return div_zero(c, op);
      return uint_res(c, floordiv_i(ival(a), ival(b)), op);
    }
    if (kb == PY_DBL) { /* DoubleType.__rtruediv__: x / 0.0 is +inf */
      if (b->u.d == 0) return kv_double(INFINITY);
      return kv_double(fval(a) / b->u.d);
    }
    if (is_numeric(kb)) { /* int true division gives a plain float */
      if (fval(b) == 0) return div_zero(c, op);
      if (is_intlike(kb)) return pflt_res((double)((long double)ival(a) / (long double)ival(b)));
      return pflt_res(fval(a) / fval(b));
    }
    break;
  case PY_DBL: /* DoubleType.__truediv__: `other == 0.0` first (type-matched for ints) */
    if (kb == PY_INT || kb == PY_UINT) break;
    if (is_numeric(kb)) {
      double y = fval(b);
      if (y == 0) return kv_double(INFINITY);
      return kv_double(a->u.d / y);
    }
    break;
  case PY_PFLT:
    if (kb == PY_DBL) {
      if (b->u.d == 0) return kv_double(INFINITY);
      return kv_double(a->u.d / b->u.d);
    }
    if (is_numeric(kb)) {
      double y = fval(b);
      if (y == 0) return div_zero(c, op);
      return pflt_res(a->u.d / y);
    }
    break;
  case PY_DUR:
    if (kb == PY_DUR) {
      i128 y = dur_us(b);
      if (y == 0) return div_zero(c, op);
      return pflt_res((double)((long double)dur_us(a) / (long double)y));
    }
    if (is_intlike(kb)) {
      if (ival(b) == 0) return div_zero(c, op);
      return dur_from_us(c, div_round(dur_us(a), ival(b)), true, op);
    }
    if (is_floatlike(kb)) {
      double y = b->u.d;
      if (y == 0) return div_zero(c, op);
      if (isnan(y)) return overflow(c, "duration", "/");
      long double q = (long double)dur_us(a) / y;
      return dur_from_us(c, (i128)nearbyintl(q), true, op);
    }
    break;
  default: break;
  }
  return no_overload(c, "/", a, b);
}

static kv *py_mod(const cel_call *c, const kv *a, const kv *b) {
  const int op = CEL_OP_MOD;
  pyc ka = pyclass(a), kb = pyclass(b);
  switch (ka) {
  case PY_INT: /* IntType.__mod__: sign of the dividend */
    if (is_intlike(kb)) {
      i128 x = ival(a), y = ival(b);
      if (y == 0) return div_zero(c, op);
      i128 m = abs_i(x) % abs_i(y);
      return int_res(c, x < 0 ? -m : m, op);
    }
    if (is_floatlike(kb)) {
      double y = b->u.d;
      if (y == 0) return div_zero(c, op);
      double m = py_fmod(fabs((double)a->u.i), fabs(y));
      if (a->u.i < 0) m = -m;
      i128 r;
      if (round_to_i128(m, &r)) return overflow(c, "int", "%");
      return int_res(c, r, op);
    }
    break;
  case PY_UINT:
    if (is_intlike(kb)) {
      if (ival(b) == 0) return div_zero(c, op);
      return uint_res(c, floormod_i(ival(a), ival(b)), op);
    }
    break;
  case PY_PINT:
  case PY_BOOL:
    if (ka == PY_PINT && kb == PY_INT) { /* IntType.__rmod__ */
      i128 x = ival(a), y = ival(b);
      if (y == 0) return div_zero(c, op);
      i128 m = abs_i(x) % abs_i(y);
      return int_res(c, x < 0 ? -m : m, op);
    }
    if (ka == PY_PINT && kb == PY_UINT) {
      if (ival(b) == 0) return div_zero(c, op);
      return uint_res(c, floormod_i(ival(a), ival(b)), op);
    }
    if (is_intlike(kb)) {
      if (ival(b) == 0) return div_zero(c, op);
      return pint_res(c, floormod_i(ival(a), ival(b)), op);
    }
    if (kb == PY_PFLT) {
      if (b->u.d == 0) return div_zero(c, op);
      return pflt_res(py_fmod(fval(a), b->u.d));
    }
    break; /* DoubleType.__rmod__ refuses */
  case PY_PFLT:
    if (is_intlike(kb) || kb == PY_PFLT) {
      double y = fval(b);
      if (y == 0) return div_zero(c, op);
      return pflt_res(py_fmod(a->u.d, y));
    }
    break;
  case PY_DUR:
    if (kb == PY_DUR) {
      i128 y = dur_us(b);
      if (y == 0) return div_zero(c, op);
      return dur_from_us(c, floormod_i(dur_us(a), y), true, op);
    }
    break;
  default: break; /* DoubleType.__mod__ always refuses */
  }
  return no_overload(c, "%", a, b);
}

/* ---- `in` ------------------------------------------------------------------------ */

static void utf8_next(const char *s, size_t n, size_t *i, uint32_t *cp);

/* cel-python's operator_in: iterate the container and compare each element
 * (on the left) with the item; comparison failures are remembered and
 * reported only when nothing matched. */
static kv *py_in(const cel_call *c, const kv *item, const kv *cont) {
  pyc kc = pyclass(cont), ki = pyclass(item);
  bool raised = false;
  switch (kc) {
  case PY_LIST:
  case PY_MAP: {
    size_t n = kc == PY_LIST ? cont->u.list.len : cont->u.map.len;
    for (size_t i = 0; i < n; i++) {
      const kv *e = kc == PY_LIST ? cont->u.list.items[i] : cont->u.map.keys[i];
      int r = koreo_eq(c, e, item);
      if (r > 0) return kv_bool(true);
      if (r < 0) raised = true;
    }
    break;
  }
  case PY_STR: {
    /* the elements are one-character strings */
    if (cont->u.s.len == 0) break;
    if (ki == PY_STR) {
      size_t i = 0;
      uint32_t cp;
      utf8_next(item->u.s.ptr, item->u.s.len, &i, &cp);
      if (item->u.s.len == 0 || i != item->u.s.len) break; /* not one character */
      for (size_t j = 0; j + item->u.s.len <= cont->u.s.len; j++)
        if (memcmp(cont->u.s.ptr + j, item->u.s.ptr, item->u.s.len) == 0) return kv_bool(true);
      break;
    }
    if (eq_strict(ki)) raised = true;
    break;
  }
  case PY_BYTES: {
    /* the elements are plain ints */
    if (cont->u.s.len == 0) break;
    if (ki == PY_DBL || ki == PY_LIST || ki == PY_MAP) {
      raised = true;
      break;
    }
    if (is_numeric(ki)) {
      for (size_t j = 0; j < cont->u.s.len; j++) {
        kv e = {.refs = -1,
                .kind = KV_INT,
                .flags = KV_FLAG_PY_PLAIN,
                .u.i = (unsigned char)cont->u.s.ptr[j]};
        if (py_eq(&e, item) > 0) return kv_bool(true);
      }
    }
    break;
  }
  default: return no_overload(c, "in", item, cont);
  }
  if (raised) return no_overload(c, "in", item, cont);
  return kv_bool(false);
}

/* ---- the binary operator hook ----------------------------------------------------- */

static kv *koreo_binary(const cel_call *c, int op, kv *a, kv *b) {
  if (is_raised(a)) return kv_ref(a);
  if (is_raised(b)) return kv_ref(b);
  switch (op) {
  case CEL_OP_ADD:
  case CEL_OP_SUB:
  case CEL_OP_MUL:
  case CEL_OP_DIV:
  case CEL_OP_MOD:
    /* CELEvalError's arithmetic returns itself; the other operand's
     * arithmetic with an error fails too */
    if (a->kind == KV_ERROR) return kv_ref(a);
    if (b->kind == KV_ERROR) return kv_ref(b);
    if (op == CEL_OP_MUL) return py_mul(c, a, b);
    if (op == CEL_OP_DIV) return py_div(c, a, b);
    if (op == CEL_OP_MOD) return py_mod(c, a, b);
    return py_addsub(c, op, a, b);
  case CEL_OP_EQ:
  case CEL_OP_NE: {
    int r = koreo_eq(c, a, b);
    if (r < 0) return no_overload(c, cel_op_name(op), a, b);
    return kv_bool(op == CEL_OP_EQ ? r : !r);
  }
  case CEL_OP_LT:
  case CEL_OP_LE:
  case CEL_OP_GT:
  case CEL_OP_GE: {
    int r;
    bool un;
    if (!py_order(a, b, &r, &un)) return no_overload(c, cel_op_name(op), a, b);
    if (un) return kv_bool(false);
    switch (op) {
    case CEL_OP_LT: return kv_bool(r < 0);
    case CEL_OP_LE: return kv_bool(r <= 0);
    case CEL_OP_GT: return kv_bool(r > 0);
    default: return kv_bool(r >= 0);
    }
  }
  case CEL_OP_IN:
    if (b->kind == KV_ERROR) return no_overload(c, "in", a, b);
    return py_in(c, a, b);
  default: return no_overload(c, cel_op_name(op), a, b);
  }
}

/* ---- unary operators ---------------------------------------------------------------- */

static kv *koreo_unary(const cel_call *c, int op, kv *a) {
  if (is_raised(a)) return kv_ref(a);
  pyc k = pyclass(a);
  if (op == CEL_OP_NOT) {
    if (k == PY_BOOL) return kv_bool(!a->u.b);
    return no_overload(c, "!", a, NULL);
  }
  switch (k) {
  case PY_ERR: return kv_ref(a); /* CELEvalError.__neg__ returns itself */
  case PY_INT: return int_res(c, -(i128)a->u.i, op);
  case PY_PINT: return pint_res(c, -(i128)a->u.i, op);
  case PY_DBL: return kv_double(-a->u.d);
  case PY_PFLT: return pflt_res(-a->u.d);
  case PY_DUR: return dur_from_us(c, -dur_us(a), true, op);
  default: return no_overload(c, "-", a, NULL);
  }
}

/* ---- index and field selection --------------------------------------------------------- */

/* Decode one UTF-8 (or WTF-8 surrogate) sequence at *i. */
static void utf8_next(const char *s, size_t n, size_t *i, uint32_t *cp) {
  const unsigned char *p = (const unsigned char *)s;
  size_t k = *i;
  unsigned c0 = p[k];
  size_t len = c0 < 0x80 ? 1 : c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : c0 >= 0xC0 ? 2 : 1;
  if (k + len > n) len = 1;
  uint32_t v = len == 1 ? c0 : len == 2 ? (c0 & 0x1F) : len == 3 ? (c0 & 0x0F) : (c0 & 0x07);
  for (size_t j = 1; j < len; j++)
    v = (v << 6) | (p[k + j] & 0x3F);
  *cp = v;
  *i = k + len;
}

static kv *index_error(const cel_call *c, const kv *operand, i128 idx, size_t len) {
  return cel_errorf(c, CEL_ERR_RANGE, "index %lld out of range for %s of size %zu",
                    (long long)(idx > I64_MAX_   ? I64_MAX_
                                : idx < I64_MIN_ ? I64_MIN_
                                                 : idx),
                    cel_type_name(operand), len);
}

static void key_text(const kv *k, char *buf, size_t n);

static kv *koreo_index(const cel_call *c, kv *operand, kv *key) {
  pyc ko = pyclass(operand), kk = pyclass(key);
  switch (ko) {
  case PY_LIST:
  case PY_STR:
  case PY_BYTES: {
    if (!is_intlike(kk)) break;
    i128 idx = ival(key);
    size_t len = ko == PY_LIST  ? operand->u.list.len
                 : ko == PY_STR ? kv_utf8_count(operand->u.s.ptr, operand->u.s.len)
                                : operand->u.s.len;
    i128 j = idx < 0 ? idx + (i128)len : idx;
    if (j < 0 || j >= (i128)len) return index_error(c, operand, idx, len);
    if (ko == PY_LIST) return kv_ref(operand->u.list.items[(size_t)j]);
    if (ko == PY_BYTES) return mark_plain(kv_int((unsigned char)operand->u.s.ptr[(size_t)j]));
    size_t i = 0, start = 0;
    uint32_t cp;
    for (i128 n = 0; n <= j; n++) {
      start = i;
      utf8_next(operand->u.s.ptr, operand->u.s.len, &i, &cp);
    }
    return mark_plain(kv_string(operand->u.s.ptr + start, i - start));
  }
  case PY_MAP: {
    if (!valid_key_type(key)) break;
    ptrdiff_t i = py_dict_find(operand, key);
    if (i == -2) break;
    if (i >= 0) return kv_ref(operand->u.map.vals[i]);
    char kt[256];
    key_text(key, kt, sizeof kt);
    return cel_errorf(c, CEL_ERR_NO_SUCH_KEY, "no such key: %s", kt);
  }
  default: break;
  }
  return no_overload(c, "[]", operand, key);
}

static kv *koreo_select(const cel_call *c, kv *operand, const char *field) {
  if (operand->kind == KV_MAP) {
    kv *v = kv_map_get_str(operand, field);
    if (v) return kv_ref(v);
    return cel_errorf(c, CEL_ERR_NO_SUCH_FIELD, "no such key: '%s'", field);
  }
  return cel_errorf(c, CEL_ERR_NO_SUCH_FIELD,
                    "a value of type '%s' does not support field selection ('.%s')", tname(operand),
                    field);
}

/* ---- && || ?: -------------------------------------------------------------------------- */

/* cel-python evaluates both operands of && and || before combining them. */
static kv *koreo_logic_short(const cel_call *c, bool is_and, kv *a) {
  (void)c;
  (void)is_and;
  (void)a;
  return NULL;
}

/* celtypes.logical_and / logical_or: commutative, and a non-bool operand
 * (an error or any other value) is the result when the bool one does not
 * decide. */
static kv *koreo_logic(const cel_call *c, bool is_and, kv *a, kv *b) {
  if (is_raised(a)) return kv_ref(a);
  if (is_raised(b)) return kv_ref(b);
  bool ab = a->kind == KV_BOOL, bb = b->kind == KV_BOOL;
  if (!ab && !bb) return no_overload(c, is_and ? "&&" : "||", a, b);
  if (ab && bb) return kv_bool(is_and ? (a->u.b && b->u.b) : (a->u.b || b->u.b));
  const kv *bl = ab ? a : b, *other = ab ? b : a;
  if (is_and) return bl->u.b ? kv_ref((kv *)other) : kv_bool(false);
  return bl->u.b ? kv_bool(true) : kv_ref((kv *)other);
}

static int koreo_cond(const cel_call *c, kv *v, kv **err) {
  if (v->kind == KV_BOOL) return v->u.b;
  if (is_raised(v))
    *err = kv_ref(v);
  else
    *err = no_overload(c, "?:", v, NULL);
  return -1;
}

/* ---- macros ----------------------------------------------------------------------------- */

static const char *macro_name(int m) {
  switch (m) {
  case CEL_M_ALL: return "all";
  case CEL_M_EXISTS: return "exists";
  case CEL_M_EXISTS_ONE: return "exists_one";
  case CEL_M_MAP:
  case CEL_M_MAP_FILTER: return "map";
  case CEL_M_FILTER: return "filter";
  case CEL_M_REDUCE: return "reduce";
  default: return "macro";
  }
}

/* Python iteration: lists give their elements, maps their keys, strings
 * their characters, bytes their byte values; anything else raises
 * (Koreo's "Unknown failure"). */
static kv *koreo_iter_range(const cel_call *c, int macro, kv *range) {
  switch (range->kind) {
  case KV_LIST: return kv_ref(range);
  case KV_MAP: {
    kv *l = kv_list_new(range->u.map.len);
    for (size_t i = 0; i < range->u.map.len; i++)
      kv_list_push(l, kv_ref(range->u.map.keys[i]));
    return l;
  }
  case KV_STRING: {
    kv *l = kv_list_new(range->u.s.len);
    size_t i = 0;
    while (i < range->u.s.len) {
      size_t s = i;
      uint32_t cp;
      utf8_next(range->u.s.ptr, range->u.s.len, &i, &cp);
      kv_list_push(l, mark_plain(kv_string(range->u.s.ptr + s, i - s)));
    }
    return l;
  }
  case KV_BYTES: {
    kv *l = kv_list_new(range->u.s.len);
    for (size_t i = 0; i < range->u.s.len; i++)
      kv_list_push(l, mark_plain(kv_int((unsigned char)range->u.s.ptr[i])));
    return l;
  }
  case KV_ERROR: return kv_ref(range);
  default:
    return cel_errorf(c, CEL_ERR_UNKNOWN, "%s() cannot iterate over a value of type '%s'",
                      macro_name(macro), cel_type_name(range));
  }
}

static int koreo_pred(const cel_call *c, int macro, kv *v, kv **err) {
  switch (macro) {
  case CEL_M_FILTER:
  case CEL_M_EXISTS_ONE: return cel_py_truthy(v); /* filter() and sum(bool(...)) */
  case CEL_M_ALL:
  case CEL_M_EXISTS:
    if (v->kind == KV_BOOL) return v->u.b;
    *err = cel_errorf(c, CEL_ERR_NO_OVERLOAD,
                      "no matching overload for '%s' applied to (bool, %s): the %s() predicate "
                      "must be a bool",
                      macro == CEL_M_ALL ? "&&" : "||", tname(v), macro_name(macro));
    return -1;
  default: return cel_std_pred(c, macro, v, err);
  }
}

/* Render a map key for messages. */
static void key_text(const kv *k, char *buf, size_t n) {
  switch (k->kind) {
  case KV_STRING:
    snprintf(buf, n, "'%.*s%s'", (int)(k->u.s.len > 200 ? 200 : k->u.s.len), k->u.s.ptr,
             k->u.s.len > 200 ? "..." : "");
    break;
  case KV_INT: snprintf(buf, n, "%lld", (long long)k->u.i); break;
  case KV_UINT: snprintf(buf, n, "%lluu", (unsigned long long)k->u.u); break;
  case KV_BOOL: snprintf(buf, n, "%s", k->u.b ? "true" : "false"); break;
  case KV_NULL: snprintf(buf, n, "null"); break;
  case KV_DOUBLE: {
    char d[32];
    kv_double_repr(k->u.d, d);
    snprintf(buf, n, "%s", d);
    break;
  }
  default: snprintf(buf, n, "(a %s)", tname(k)); break;
  }
}

/* mapinits: keys are checked in order (an error or a list/map key is
 * unhashable, an equal key is a duplicate, a key cel-python cannot compare
 * with an earlier one fails); values stay as they are, errors included
 * (finish() rejects them). */
static kv *koreo_map_literal(const cel_call *c, kv **keys, kv **vals, size_t n) {
  kv *err = NULL;
  for (size_t i = 0; i < n && !err; i++) {
    if (is_raised(keys[i]))
      err = kv_ref(keys[i]);
    else if (is_raised(vals[i]))
      err = kv_ref(vals[i]);
  }
  kv *m = kv_map_new(n);
  for (size_t i = 0; i < n; i++) {
    if (!err) {
      kv *k = keys[i];
      if (k->kind == KV_ERROR) {
        err = cel_errorf(c, CEL_ERR_INVALID, "map key failed: %s", k->u.err.msg);
      } else if (!py_hashable(k)) {
        err = cel_errorf(c, CEL_ERR_INVALID, "a %s cannot be a map key", tname(k));
      } else {
        ptrdiff_t j = py_dict_find(m, k);
        char kt[256], kt2[256];
        if (j == -2) {
          /* find the key it could not be compared with, for the message */
          const kv *other = NULL;
          for (size_t x = 0; x < m->u.map.len && !other; x++)
            if (py_hash_equal(m->u.map.keys[x], k) && py_eq(m->u.map.keys[x], k) < 0)
              other = m->u.map.keys[x];
          key_text(k, kt, sizeof kt);
          key_text(other ? other : k, kt2, sizeof kt2);
          err = cel_errorf(c, CEL_ERR_NO_OVERLOAD,
                           "map literal keys %s (%s) and %s (%s) cannot be compared", kt2,
                           other ? tname(other) : "?", kt, tname(k));
        } else if (j >= 0) {
          key_text(k, kt, sizeof kt);
          err = cel_errorf(c, CEL_ERR_INVALID, "duplicate key %s in map literal", kt);
        }
      }
    }
    if (!err) {
      kv_map_set(m, keys[i], vals[i]);
    } else {
      kv_unref(keys[i]);
      kv_unref(vals[i]);
    }
  }
  if (err) {
    kv_unref(m);
    return err;
  }
  return m;
}

/* The first error anywhere inside v (map keys before their values), or
 * NULL. */
static kv *find_error(kv *v) {
  switch (v->kind) {
  case KV_ERROR: return v;
  case KV_LIST:
    for (size_t i = 0; i < v->u.list.len; i++) {
      kv *e = find_error(v->u.list.items[i]);
      if (e) return e;
    }
    return NULL;
  case KV_MAP:
    for (size_t i = 0; i < v->u.map.len; i++) {
      kv *e = find_error(v->u.map.keys[i]);
      if (!e) e = find_error(v->u.map.vals[i]);
      if (e) return e;
    }
    return NULL;
  default: return NULL;
  }
}

static kv *koreo_finish(kv *v) {
  kv *e = find_error(v);
  if (!e || e == v) return v;
  kv_ref(e);
  kv_unref(v);
  return e;
}

/* The Koreo dialect's operator table (dialect.h), used by every
 * environment made with cel_env_new_koreo().  Semantics: cel-python 0.3.0
 * under the compatibility rule (README of the koreo-expressions corpus,
 * quirks 9-22); docs/koreo-dialect.md lists each difference. */
const cel_dialect_ops cel_koreo_ops = {
    .binary = koreo_binary,
    .unary = koreo_unary,
    .index = koreo_index,
    .select = koreo_select,
    .logic_short = koreo_logic_short,
    .logic = koreo_logic,
    .cond = koreo_cond,
    .iter_range = koreo_iter_range,
    .pred = koreo_pred,
    .map_literal = koreo_map_literal,
    .finish = koreo_finish,
    .has_means_no_error = true,
    .late_unknown_functions = true,
    .macro_body_errors_raise = true,
};

/* ---- Python str() and repr() --------------------------------------------------------- */

/* An approximation of Python's str.isprintable() for one code point:
 * false for controls, format characters, separators other than the ASCII
 * space, surrogates, private use and non-characters. */
static bool py_printable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
  if (cp < 0x300) return true;
  if ((cp >= 0x600 && cp <= 0x605) || cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x890 ||
      cp == 0x891 || cp == 0x8E2 || cp == 0x1680 || cp == 0x180E ||
      (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
      (cp >= 0x205F && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F) || cp == 0x3000 ||
      (cp >= 0xD800 && cp <= 0xF8FF) || (cp >= 0xFDD0 && cp <= 0xFDEF) || cp == 0xFEFF ||
      (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp & 0xFFFE) == 0xFFFE || cp == 0x110BD || cp == 0x110CD ||
      (cp >= 0x13430 && cp <= 0x1343F) || (cp >= 0x1BCA0 && cp <= 0x1BCA3) ||
      (cp >= 0x1D173 && cp <= 0x1D17A) || (cp >= 0xE0000 && cp <= 0xE0FFF) || cp >= 0xF0000)
    return false;
  return true;
}

/* Python's repr() of a str (prefix "") or bytes (prefix "b"). */
static void repr_text(kv_strbuf *b, const char *s, size_t n, bool bytes) {
  bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
  char q = sq && !dq ? '"' : '\'';
  if (bytes) kv_strbuf_putc(b, 'b');
  kv_strbuf_putc(b, q);
  size_t i = 0;
  while (i < n) {
    uint32_t cp;
    size_t s0 = i;
    if (bytes) {
      cp = (unsigned char)s[i++];
    } else {
      utf8_next(s, n, &i, &cp);
    }
    if (cp == '\\' || cp == (uint32_t)q) {
      char e[2] = {'\\', (char)cp};
      kv_strbuf_put(b, e, 2);
    } else if (cp == '\t') {
      kv_strbuf_puts(b, "\\t");
    } else if (cp == '\n') {
      kv_strbuf_puts(b, "\\n");
    } else if (cp == '\r') {
      kv_strbuf_puts(b, "\\r");
    } else if (cp < 0x20 || cp == 0x7F || (bytes && cp >= 0x80)) {
      kv_strbuf_printf(b, "\\x%02x", cp);
    } else if (cp < 0x7F) {
      kv_strbuf_putc(b, (char)cp);
    } else if (py_printable(cp)) {
      kv_strbuf_put(b, s + s0, i - s0);
    } else if (cp <= 0xFF) {
      kv_strbuf_printf(b, "\\x%02x", cp);
    } else if (cp <= 0xFFFF) {
      kv_strbuf_printf(b, "\\u%04x", cp);
    } else {
      kv_strbuf_printf(b, "\\U%08x", cp);
    }
  }
  kv_strbuf_putc(b, q);
}

static const char *py_class_name(const char *cel_name) {
  static const struct {
    const char *cel, *py;
  } names[] = {
      {"int", "celpy.celtypes.IntType"},
      {"uint", "celpy.celtypes.UintType"},
      {"double", "celpy.celtypes.DoubleType"},
      {"bool", "celpy.celtypes.BoolType"},
      {"string", "celpy.celtypes.StringType"},
      {"bytes", "celpy.celtypes.BytesType"},
      {"list", "celpy.celtypes.ListType"},
      {"map", "celpy.celtypes.MapType"},
      {"null_type", "NoneType"},
      {"type", "type"},
      {"google.protobuf.Timestamp", "celpy.celtypes.TimestampType"},
      {"google.protobuf.Duration", "celpy.celtypes.DurationType"},
      {"python:int", "int"},
      {"python:float", "float"},
      {"python:str", "str"},
      {"python:bytes", "bytes"},
      {"python:list", "list"},
      {"python:timedelta", "datetime.timedelta"},
  };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strcmp(names[i].cel, cel_name) == 0) return names[i].py;
  return cel_name;
}

/* TimestampType.__str__: local time in the written offset, "Z" for UTC. */
static void ts_text(kv_strbuf *b, const kv *t) {
  int64_t local = t->u.t.sec + t->u.t.off;
  int64_t days = cel_floor_div(local, 86400), sod = cel_floor_mod(local, 86400);
  int64_t y;
  int m, d;
  cel_civil_from_days(days, &y, &m, &d);
  kv_strbuf_printf(b, "%lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d, (int)(sod / 3600),
                   (int)(sod / 60 % 60), (int)(sod % 60));
  int32_t off = t->u.t.off;
  if (off == 0) {
    kv_strbuf_puts(b, "Z");
  } else {
    int32_t a = off < 0 ? -off : off;
    kv_strbuf_printf(b, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600), (int)(a / 60 % 60));
  }
}

/* datetime.timedelta's str(): "[-]D day[s], H:MM:SS[.ffffff]". */
static void td_text(kv_strbuf *b, const kv *d) {
  i128 us = dur_us(d);
  i128 days = floordiv_i(us, (i128)86400 * US_PER_SEC);
  i128 rest = us - days * 86400 * US_PER_SEC;
  int64_t secs = (int64_t)(rest / US_PER_SEC), micro = (int64_t)(rest % US_PER_SEC);
  if (days)
    kv_strbuf_printf(b, "%lld day%s, ", (long long)days, (days == 1 || days == -1) ? "" : "s");
  kv_strbuf_printf(b, "%d:%02d:%02d", (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
  if (micro) kv_strbuf_printf(b, ".%06lld", (long long)micro);
}

/* datetime.timedelta's repr(). */
static void td_repr(kv_strbuf *b, const kv *d) {
  i128 us = dur_us(d);
  i128 days = floordiv_i(us, (i128)86400 * US_PER_SEC);
  i128 rest = us - days * 86400 * US_PER_SEC;
  int64_t secs = (int64_t)(rest / US_PER_SEC), micro = (int64_t)(rest % US_PER_SEC);
  kv_strbuf_puts(b, "datetime.timedelta(");
  const char *sep = "";
  if (days) {
    kv_strbuf_printf(b, "days=%lld", (long long)days);
    sep = ", ";
  }
  if (secs) {
    kv_strbuf_printf(b, "%sseconds=%lld", sep, (long long)secs);
    sep = ", ";
  }
  if (micro) kv_strbuf_printf(b, "%smicroseconds=%lld", sep, (long long)micro);
  if (!days && !secs && !micro) kv_strbuf_puts(b, "0");
  kv_strbuf_puts(b, ")");
}

/* DurationType.__str__: whole seconds, truncated toward zero. */
static void dur_text(kv_strbuf *b, const kv *d) {
  int64_t s = d->u.t.sec;
  kv_strbuf_printf(b, "%llds", (long long)s);
}

static void py_repr(kv_strbuf *b, const kv *v);

/* Python str() of a value (what cel-python's string() returns for values
 * that are not strings or bytes). */
static void py_str(kv_strbuf *b, const kv *v) {
  char tmp[32];
  switch (pyclass(v)) {
  case PY_NONE: kv_strbuf_puts(b, "None"); break;
  case PY_BOOL: kv_strbuf_puts(b, v->u.b ? "True" : "False"); break;
  case PY_INT:
  case PY_PINT: kv_strbuf_printf(b, "%lld", (long long)v->u.i); break;
  case PY_UINT: kv_strbuf_printf(b, "%llu", (unsigned long long)v->u.u); break;
  case PY_DBL:
  case PY_PFLT:
    kv_double_repr(v->u.d, tmp);
    kv_strbuf_puts(b, tmp);
    break;
  case PY_STR: kv_strbuf_put(b, v->u.s.ptr, v->u.s.len); break;
  case PY_TS: ts_text(b, v); break;
  case PY_DUR:
    if (is_plain(v))
      td_text(b, v);
    else
      dur_text(b, v);
    break;
  case PY_TYPE: kv_strbuf_printf(b, "<class '%s'>", py_class_name(v->u.s.ptr)); break;
  case PY_ERR: kv_strbuf_puts(b, v->u.err.msg); break;
  default: py_repr(b, v); break; /* bytes, list, map: their repr */
  }
}

/* Python repr() of a cel-python value ("IntType(1)", "StringType('a')",
 * "ListType([...])", plain values without the class wrapper). */
static void py_repr(kv_strbuf *b, const kv *v) {
  char tmp[32];
  bool plain = is_plain(v);
  switch (pyclass(v)) {
  case PY_NONE: kv_strbuf_puts(b, "None"); break;
  case PY_BOOL: kv_strbuf_puts(b, v->u.b ? "BoolType(True)" : "BoolType(False)"); break;
  case PY_INT: kv_strbuf_printf(b, "IntType(%lld)", (long long)v->u.i); break;
  case PY_PINT: kv_strbuf_printf(b, "%lld", (long long)v->u.i); break;
  case PY_UINT: kv_strbuf_printf(b, "UintType(%llu)", (unsigned long long)v->u.u); break;
  case PY_DBL:
    kv_double_repr(v->u.d, tmp);
    kv_strbuf_printf(b, "DoubleType(%s)", tmp);
    break;
  case PY_PFLT:
    kv_double_repr(v->u.d, tmp);
    kv_strbuf_puts(b, tmp);
    break;
  case PY_STR:
  case PY_BYTES:
    if (!plain) kv_strbuf_puts(b, v->kind == KV_STRING ? "StringType(" : "BytesType(");
    repr_text(b, v->u.s.ptr, v->u.s.len, v->kind == KV_BYTES);
    if (!plain) kv_strbuf_puts(b, ")");
    break;
  case PY_LIST:
    kv_strbuf_puts(b, plain ? "[" : "ListType([");
    for (size_t i = 0; i < v->u.list.len; i++) {
      if (i) kv_strbuf_puts(b, ", ");
      py_repr(b, v->u.list.items[i]);
    }
    kv_strbuf_puts(b, plain ? "]" : "])");
    break;
  case PY_MAP:
    kv_strbuf_puts(b, "MapType({");
    for (size_t i = 0; i < v->u.map.len; i++) {
      if (i) kv_strbuf_puts(b, ", ");
      py_repr(b, v->u.map.keys[i]);
      kv_strbuf_puts(b, ": ");
      py_repr(b, v->u.map.vals[i]);
    }
    kv_strbuf_puts(b, "})");
    break;
  case PY_TS:
    kv_strbuf_puts(b, "TimestampType('");
    ts_text(b, v);
    kv_strbuf_puts(b, "')");
    break;
  case PY_DUR:
    if (plain) {
      td_repr(b, v);
    } else {
      kv_strbuf_puts(b, "DurationType('");
      dur_text(b, v);
      kv_strbuf_puts(b, "')");
    }
    break;
  case PY_TYPE: kv_strbuf_printf(b, "<class '%s'>", py_class_name(v->u.s.ptr)); break;
  case PY_ERR: kv_strbuf_printf(b, "CELEvalError(%s)", v->u.err.msg); break;
  }
}

/* ---- Python int() / float() of text ------------------------------------------------------ */

/* Unicode decimal digit (category Nd) -> its value, or -1.  Python's int()
 * and float() accept every Nd digit; the zero of each block is listed. */
static int nd_digit(uint32_t cp) {
  static const uint32_t zeros[] = {
      0x0030,  0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,  0x0B66,  0x0BE6,
      0x0C66,  0x0CE6,  0x0D66,  0x0DE6,  0x0E50,  0x0ED0,  0x0F20,  0x1040,  0x1090,  0x17E0,
      0x1810,  0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,
      0xA8D0,  0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066,
      0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0,
      0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8,
      0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0,
  };
  for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++)
    if (cp >= zeros[i] && cp < zeros[i] + 10) return (int)(cp - zeros[i]);
  return -1;
}

static bool py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Python's _PyUnicode_TransformDecimalAndSpaceToASCII plus strip(): the
 * ASCII form of `s` (Unicode digits become ASCII digits, Unicode spaces
 * become ' '), trimmed.  For bytes (unicode=false) only ASCII whitespace
 * is stripped.  Returns a malloc'ed string, or NULL when a non-ASCII
 * character remains (never a valid number). */
static char *ascii_number_text(const char *s, size_t n, bool unicode, size_t *outlen) {
  char *o = malloc(n + 1);
  if (!o) kv_oom();
  size_t k = 0, i = 0;
  while (i < n) {
    uint32_t cp;
    if (unicode) {
      utf8_next(s, n, &i, &cp);
    } else {
      cp = (unsigned char)s[i++];
    }
    if (cp < 0x80) {
      o[k++] = (char)cp;
      continue;
    }
    int d = unicode ? nd_digit(cp) : -1;
    if (d >= 0)
      o[k++] = (char)('0' + d);
    else if (unicode && py_space(cp))
      o[k++] = ' ';
    else {
      free(o);
      return NULL;
    }
  }
  size_t a = 0, e = k;
  while (a < e && (o[a] == ' ' || (o[a] >= 0x09 && o[a] <= 0x0D) ||
                   (unicode && o[a] >= 0x1C && o[a] <= 0x1F)))
    a++;
  while (e > a && (o[e - 1] == ' ' || (o[e - 1] >= 0x09 && o[e - 1] <= 0x0D) ||
                   (unicode && o[e - 1] >= 0x1C && o[e - 1] <= 0x1F)))
    e--;
  memmove(o, o + a, e - a);
  o[e - a] = 0;
  *outlen = e - a;
  return o;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Python int(text, base) for base 10 or 16.  Returns 0 ok, 1 invalid
 * literal, 2 out of the i128 range (reported as overflow). */
static int py_int_text(const char *s, size_t n, int base, bool unicode, i128 *out) {
  size_t len;
  char *t = ascii_number_text(s, n, unicode, &len);
  if (!t) return 1;
  size_t i = 0;
  bool neg = false;
  if (i < len && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  if (base == 16 && i + 1 < len && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
    i += 2;
    if (i < len && t[i] == '_') i++; /* 0x_1f */
  }
  i128 v = 0;
  bool any = false, big = false, prev_us = false;
  for (; i < len; i++) {
    if (t[i] == '_') {
      if (!any || prev_us) break;
      prev_us = true;
      continue;
    }
    int d = hexval(t[i]);
    if (d < 0 || d >= base) break;
    if (v > ((i128)1 << 120)) big = true;
    if (!big) v = v * base + d;
    any = true;
    prev_us = false;
  }
  int rc = (!any || prev_us || i != len) ? 1 : big ? 2 : 0;
  free(t);
  if (rc == 0) *out = neg ? -v : v;
  return rc;
}

/* Python float(text).  Returns false when Python raises ValueError. */
static bool py_float_text(const char *s, size_t n, bool unicode, double *out) {
  size_t len;
  char *t = ascii_number_text(s, n, unicode, &len);
  if (!t) return false;
  char *clean = malloc(len + 1);
  if (!clean) kv_oom();
  size_t k = 0, i = 0;
  bool ok = true;
  if (i < len && (t[i] == '+' || t[i] == '-')) clean[k++] = t[i++];
  const char *rest = t + i;
  size_t rl = len - i;
  if ((rl == 3 && !strncasecmp(rest, "inf", 3)) || (rl == 8 && !strncasecmp(rest, "infinity", 8)) ||
      (rl == 3 && !strncasecmp(rest, "nan", 3))) {
    memcpy(clean + k, rest, rl);
    k += rl;
  } else {
    /* digits [_digits]* [. [digits]] [e [+-] digits] with '_' only between digits */
    int ndig = 0;
    bool prev_digit = false, in_exp = false, seen_dot = false, exp_digits = false;
    for (; i < len && ok; i++) {
      char ch = t[i];
      if (ch >= '0' && ch <= '9') {
        clean[k++] = ch;
        prev_digit = true;
        if (in_exp)
          exp_digits = true;
        else
          ndig++;
      } else if (ch == '_') {
        if (!prev_digit || i + 1 >= len || !(t[i + 1] >= '0' && t[i + 1] <= '9')) ok = false;
        prev_digit = false;
      } else if (ch == '.' && !seen_dot && !in_exp) {
        seen_dot = true;
        clean[k++] = ch;
        prev_digit = false;
      } else if ((ch == 'e' || ch == 'E') && !in_exp && ndig > 0) {
        in_exp = true;
        clean[k++] = ch;
        prev_digit = false;
        if (i + 1 < len && (t[i + 1] == '+' || t[i + 1] == '-')) clean[k++] = t[++i];
      } else {
        ok = false;
      }
    }
    if (ndig == 0 || (in_exp && !exp_digits)) ok = false;
  }
  clean[k] = 0;
  free(t);
  if (ok) {
    char *end;
    *out = strtod(clean, &end);
    ok = *end == 0 && end != clean;
  }
  free(clean);
  return ok;
}

/* ---- functions --------------------------------------------------------------------------- */

static kv *bad_number(const cel_call *c, const char *fn, const kv *a) {
  return cel_errorf(c, CEL_ERR_INVALID, "%s(): invalid literal '%.*s%s'", fn,
                    (int)(a->u.s.len > 100 ? 100 : a->u.s.len), a->u.s.ptr,
                    a->u.s.len > 100 ? "..." : "");
}

static kv *conv_range(const cel_call *c, const char *fn) {
  return cel_errorf(c, CEL_ERR_OVERFLOW, "%s(): value out of range", fn);
}

/* The integer a conversion reads from text: "0x"/"-0x" prefixes first
 * (IntType/UintType), then Python int(). */
static kv *int_from_text(const cel_call *c, const kv *a, bool is_uint, i128 *out) {
  const char *fn = is_uint ? "uint" : "int";
  const char *s = a->u.s.ptr;
  size_t n = a->u.s.len;
  int rc;
  if (a->kind == KV_STRING && n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    rc = py_int_text(s + 2, n - 2, 16, true, out);
  } else if (!is_uint && a->kind == KV_STRING && n >= 3 && s[0] == '-' && s[1] == '0' &&
             (s[2] == 'x' || s[2] == 'X')) {
    rc = py_int_text(s + 3, n - 3, 16, true, out);
    *out = -*out;
  } else {
    rc = py_int_text(s, n, 10, a->kind == KV_STRING, out);
  }
  if (rc == 1) return bad_number(c, fn, a);
  if (rc == 2) return conv_range(c, fn);
  return NULL;
}

/* Seconds since the epoch of a timestamp, truncated toward zero (Python
 * int(datetime.timestamp())). */
static i128 ts_trunc_seconds(const kv *t) {
  i128 s = t->u.t.sec;
  if (s < 0 && t->u.t.nsec >= 1000) s += 1; /* microsecond resolution */
  return s;
}

static kv *int_conv(const cel_call *c, kv *const *args, size_t nargs, bool is_uint) {
  const char *fn = is_uint ? "uint" : "int";
  const kv *a = args[0];
  i128 v;
  switch (pyclass(a)) {
  case PY_NONE: v = 0; break;
  case PY_INT:
    if (!is_uint) return kv_ref((kv *)a);
    v = a->u.i;
    break;
  case PY_UINT:
    if (is_uint) return kv_ref((kv *)a);
    v = (i128)a->u.u;
    break;
  case PY_PINT:
  case PY_BOOL: v = ival(a); break;
  case PY_DBL:
  case PY_PFLT: {
    int st = round_to_i128(a->u.d, &v);
    if (st == 1)
      return cel_errorf(c, CEL_ERR_INVALID, "%s(): cannot convert NaN to an integer", fn);
    if (st == 2)
      return cel_errorf(c, CEL_ERR_UNKNOWN, "%s(): cannot convert infinity to an integer", fn);
    if (st == 3) return conv_range(c, fn);
    break;
  }
  case PY_TS: v = ts_trunc_seconds(a); break;
  case PY_STR:
  case PY_BYTES: {
    kv *e = int_from_text(c, a, is_uint, &v);
    if (e) return e;
    break;
  }
  default: return fn_no_overload(c, args, nargs);
  }
  if (is_uint) {
    if (v < 0 || v > U64_MAX_) return conv_range(c, fn);
    return kv_uint((uint64_t)v);
  }
  if (v < I64_MIN_ || v > I64_MAX_) return conv_range(c, fn);
  return kv_int((int64_t)v);
}

static kv *fn_int(const cel_call *c, kv *const *args, size_t nargs) {
  return int_conv(c, args, nargs, false);
}
static kv *fn_uint(const cel_call *c, kv *const *args, size_t nargs) {
  return int_conv(c, args, nargs, true);
}

static kv *fn_double(const cel_call *c, kv *const *args, size_t nargs) {
  const kv *a = args[0];
  switch (pyclass(a)) {
  case PY_NONE: return kv_double(0);
  case PY_DBL: return kv_ref((kv *)a);
  case PY_PFLT: return kv_double(a->u.d);
  case PY_BOOL:
  case PY_INT:
  case PY_PINT:
  case PY_UINT: return kv_double(fval(a));
  case PY_STR:
  case PY_BYTES: {
    double d;
    if (!py_float_text(a->u.s.ptr, a->u.s.len, a->kind == KV_STRING, &d))
      return bad_number(c, "double", a);
    return kv_double(d);
  }
  default: return fn_no_overload(c, args, nargs);
  }
}

static kv *fn_bool(const cel_call *c, kv *const *args, size_t nargs) {
  const kv *a = args[0];
  switch (pyclass(a)) {
  case PY_NONE: return kv_bool(false);
  case PY_BOOL: return kv_ref((kv *)a);
  case PY_INT:
  case PY_PINT:
  case PY_UINT: return kv_bool(ival(a) != 0);
  case PY_DBL:
  case PY_PFLT: /* int(x): truncation */
    if (isnan(a->u.d))
      return cel_errorf(c, CEL_ERR_INVALID, "bool(): cannot convert NaN to an integer");
    if (isinf(a->u.d))
      return cel_errorf(c, CEL_ERR_UNKNOWN, "bool(): cannot convert infinity to an integer");
    return kv_bool(trunc(a->u.d) != 0);
  case PY_STR:
  case PY_BYTES: {
    i128 v;
    int rc = py_int_text(a->u.s.ptr, a->u.s.len, 10, a->kind == KV_STRING, &v);
    if (rc == 1) return bad_number(c, "bool", a);
    return kv_bool(rc == 2 || v != 0);
  }
  default: return fn_no_overload(c, args, nargs);
  }
}

static kv *fn_bytes(const cel_call *c, kv *const *args, size_t nargs) {
  const kv *a = args[0];
  switch (pyclass(a)) {
  case PY_NONE: return kv_bytes("", 0);
  case PY_BYTES: return is_plain(a) ? kv_bytes(a->u.s.ptr, a->u.s.len) : kv_ref((kv *)a);
  case PY_STR:
    if (!kv_utf8_valid(a->u.s.ptr, a->u.s.len))
      return cel_errorf(c, CEL_ERR_INVALID,
                        "bytes(): the string is not valid UTF-8 (a lone surrogate)");
    return kv_bytes(a->u.s.ptr, a->u.s.len);
  case PY_LIST:
  case PY_MAP: {
    size_t n = a->kind == KV_LIST ? a->u.list.len : a->u.map.len;
    char *p = malloc(n + 1);
    if (!p) kv_oom();
    for (size_t i = 0; i < n; i++) {
      const kv *e = a->kind == KV_LIST ? a->u.list.items[i] : a->u.map.keys[i];
      if (!is_intlike(pyclass(e))) {
        free(p);
        return cel_errorf(c, CEL_ERR_NO_OVERLOAD, "bytes(): element %zu is a %s, not an int", i,
                          tname(e));
      }
      i128 v = ival(e);
      if (v < 0 || v > 255) {
        free(p);
        return cel_errorf(c, CEL_ERR_OVERFLOW, "bytes(): element %zu is not in 0..255", i);
      }
      p[i] = (char)v;
    }
    kv *r = kv_bytes(p, n);
    free(p);
    return r;
  }
  default: return fn_no_overload(c, args, nargs);
  }
}

static kv *fn_string(const cel_call *c, kv *const *args, size_t nargs) {
  (void)nargs;
  const kv *a = args[0];
  if (a->kind == KV_STRING)
    return is_plain(a) ? kv_string(a->u.s.ptr, a->u.s.len) : kv_ref((kv *)a);
  if (a->kind == KV_BYTES) {
    if (!kv_utf8_valid(a->u.s.ptr, a->u.s.len))
      return cel_errorf(c, CEL_ERR_INVALID, "string(): the bytes are not valid UTF-8");
    return kv_string(a->u.s.ptr, a->u.s.len);
  }
  kv_strbuf b = {0};
  py_str(&b, a);
  return kv_strbuf_take_string(&b);
}

static kv *fn_size(const cel_call *c, kv *const *args, size_t nargs) {
  const kv *a = args[0];
  switch (a->kind) {
  case KV_NULL: return kv_int(0);
  case KV_STRING: return kv_int((int64_t)kv_utf8_count(a->u.s.ptr, a->u.s.len));
  case KV_BYTES: return kv_int((int64_t)a->u.s.len);
  case KV_LIST: return kv_int((int64_t)a->u.list.len);
  case KV_MAP: return kv_int((int64_t)a->u.map.len);
  default: return fn_no_overload(c, args, nargs);
  }
}

/* `text in s`: substring for strings and bytes, membership for lists (the
 * first failing comparison raises) and map keys. */
static kv *fn_contains(const cel_call *c, kv *const *args, size_t nargs) {
  const kv *s = args[0], *t = args[1];
  switch (pyclass(s)) {
  case PY_STR:
  case PY_BYTES:
    if (t->kind == s->kind) {
      if (t->u.s.len == 0) return kv_bool(true);
      return kv_bool(memmem(s->u.s.ptr, s->u.s.len, t->u.s.ptr, t->u.s.len) != NULL);
    }
    if (s->kind == KV_BYTES && is_intlike(pyclass(t))) {
      i128 v = ival(t);
      if (v < 0 || v > 255)
        return cel_errorf(c, CEL_ERR_OVERFLOW, "contains(): a byte must be in 0..255");
      return kv_bool(memchr(s->u.s.ptr, (int)v, s->u.s.len) != NULL);
    }
    break;
  case PY_LIST:
    for (size_t i = 0; i < s->u.list.len; i++) {
      int r = koreo_eq(c, s->u.list.items[i], t);
      if (r < 0) {
        char types[96];
        snprintf(types, sizeof types, "%s, %s", tname(s->u.list.items[i]), tname(t));
        return cel_errorf(c, CEL_ERR_NO_OVERLOAD,
                          "contains(): list element %zu cannot be compared with the argument "
                          "(no matching overload for '==' applied to (%s))",
                          i, types);
      }
      if (r) return kv_bool(true);
    }
    return kv_bool(false);
  case PY_MAP: {
    if (!py_hashable(t)) break;
    ptrdiff_t i = py_dict_find(s, t);
    if (i == -2) break;
    return kv_bool(i >= 0);
  }
  default: break;
  }
  return fn_no_overload(c, args, nargs);
}

static kv *fn_affix(const cel_call *c, kv *const *args, size_t nargs, bool start) {
  const kv *s = args[0], *t = args[1];
  if ((s->kind != KV_STRING && s->kind != KV_BYTES) || t->kind != s->kind)
    return fn_no_overload(c, args, nargs);
  if (t->u.s.len > s->u.s.len) return kv_bool(false);
  const char *p = start ? s->u.s.ptr : s->u.s.ptr + s->u.s.len - t->u.s.len;
  return kv_bool(t->u.s.len == 0 || memcmp(p, t->u.s.ptr, t->u.s.len) == 0);
}
static kv *fn_starts_with(const cel_call *c, kv *const *args, size_t nargs) {
  return fn_affix(c, args, nargs, true);
}
static kv *fn_ends_with(const cel_call *c, kv *const *args, size_t nargs) {
  return fn_affix(c, args, nargs, false);
}

/* Rewrite the two Python `re` spellings that PCRE2 reads differently:
 * `\Z` (Python: the very end; PCRE2: also before a final newline) becomes
 * `\z`, and `{,n}` (Python: {0,n}; PCRE2 10.42: literal text) becomes
 * `{0,n}`.  Character classes are copied unchanged.  Returns NULL when
 * nothing needs rewriting. */
static kv *python_pattern(const kv *pat) {
  const char *s = pat->u.s.ptr;
  size_t n = pat->u.s.len;
  bool need = false;
  for (size_t i = 0; i + 1 < n && !need; i++)
    need = (s[i] == '\\' && s[i + 1] == 'Z') || (s[i] == '{' && s[i + 1] == ',');
  if (!need) return NULL;
  kv_strbuf b = {0};
  bool in_class = false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == '\\' && i + 1 < n) {
      if (!in_class && s[i + 1] == 'Z')
        kv_strbuf_puts(&b, "\\z");
      else
        kv_strbuf_put(&b, s + i, 2);
      i++;
      continue;
    }
    if (in_class) {
      if (ch == ']') in_class = false;
      kv_strbuf_putc(&b, ch);
      continue;
    }
    if (ch == '[') {
      in_class = true;
      kv_strbuf_putc(&b, ch);
      /* a ']' right after '[' or '[^' is a literal */
      if (i + 1 < n && s[i + 1] == '^') kv_strbuf_put(&b, s + ++i, 1);
      if (i + 1 < n && s[i + 1] == ']') kv_strbuf_put(&b, s + ++i, 1);
      continue;
    }
    if (ch == '{' && i + 1 < n && s[i + 1] == ',') {
      size_t j = i + 2;
      while (j < n && s[j] >= '0' && s[j] <= '9')
        j++;
      if (j > i + 2 && j < n && s[j] == '}') {
        kv_strbuf_puts(&b, "{0");
        continue; /* the ",digits}" follows unchanged */
      }
    }
    kv_strbuf_putc(&b, ch);
  }
  return kv_strbuf_take_string(&b);
}

/* re.search(pattern, text): both strings (Python re; PCRE2 here). */
static kv *fn_matches(const cel_call *c, kv *const *args, size_t nargs) {
  if (args[0]->kind != KV_STRING || args[1]->kind != KV_STRING)
    return fn_no_overload(c, args, nargs);
  kv *pat = python_pattern(args[1]);
  kv *r = cel_regex_search(c, args[0], pat ? pat : args[1]);
  kv_unref(pat);
  return r;
}

/* type(x): Python's type(), so a plain Python number, string, list or
 * timedelta has its own class (type(1.0 + 2.0) == double is false). */
static kv *fn_type(const cel_call *c, kv *const *args, size_t nargs) {
  (void)c;
  (void)nargs;
  const kv *a = args[0];
  if (is_plain(a)) {
    switch ((kv_kind)a->kind) {
    case KV_INT: return kv_type("python:int");
    case KV_DOUBLE: return kv_type("python:float");
    case KV_STRING: return kv_type("python:str");
    case KV_BYTES: return kv_type("python:bytes");
    case KV_LIST: return kv_type("python:list");
    case KV_DURATION: return kv_type("python:timedelta");
    default: break;
    }
  }
  return kv_type(cel_type_name(a));
}

/* x.min(): cel-python's min() macro, Python's min() over the iteration of
 * the receiver (its arguments are never evaluated).  An empty sequence is
 * an error; elements that cannot be ordered, or a receiver that cannot be
 * iterated, raise (Koreo's "Unknown failure"). */
static kv *fn_min(const cel_call *c, kv *const *args, size_t nargs) {
  (void)nargs;
  kv *recv = args[0];
  if (recv->kind == KV_ERROR) return kv_ref(recv);
  kv *items = koreo_iter_range(c, CEL_M_MAP, recv);
  if (items->kind == KV_ERROR) {
    kv_unref(items);
    return cel_errorf(c, CEL_ERR_UNKNOWN, "min() cannot iterate over a value of type '%s'",
                      tname(recv));
  }
  if (items->u.list.len == 0) {
    kv_unref(items);
    return cel_errorf(c, CEL_ERR_INVALID, "min() of an empty %s", tname(recv));
  }
  kv *best = items->u.list.items[0];
  for (size_t i = 1; i < items->u.list.len; i++) {
    kv *e = items->u.list.items[i];
    int r;
    bool un;
    if (!py_order(e, best, &r, &un)) {
      kv *err =
          cel_errorf(c, CEL_ERR_UNKNOWN, "min(): elements of types '%s' and '%s' cannot be ordered",
                     tname(e), tname(best));
      kv_unref(items);
      return err;
    }
    if (!un && r < 0) best = e;
  }
  kv_ref(best);
  kv_unref(items);
  return best;
}

/* Koreo's replacements for standard functions, registered after the
 * standard library so that they win.  Every function can also be called
 * as a method, as in cel-python; arguments are borrowed, results are new
 * references (errors as KV_ERROR values with CEL wording). */
const cel_fn_def cel_koreo_dialect_defs[] = {
    {"type", CEL_FN_BOTH, 1, 1, fn_type},
    {"min", CEL_FN_MEMBER | CEL_FN_NONSTRICT, 1, 255, fn_min},
    {"size", CEL_FN_BOTH, 1, 1, fn_size},
    {"contains", CEL_FN_BOTH, 2, 2, fn_contains},
    {"startsWith", CEL_FN_BOTH, 2, 2, fn_starts_with},
    {"endsWith", CEL_FN_BOTH, 2, 2, fn_ends_with},
    {"matches", CEL_FN_BOTH, 2, 2, fn_matches},
    {"int", CEL_FN_BOTH, 1, 1, fn_int},
    {"uint", CEL_FN_BOTH, 1, 1, fn_uint},
    {"double", CEL_FN_BOTH, 1, 1, fn_double},
    {"string", CEL_FN_BOTH, 1, 1, fn_string},
    {"bytes", CEL_FN_BOTH, 1, 1, fn_bytes},
    {"bool", CEL_FN_BOTH, 1, 1, fn_bool},
};
const size_t cel_koreo_dialect_ndefs =
    sizeof cel_koreo_dialect_defs / sizeof *cel_koreo_dialect_defs;
