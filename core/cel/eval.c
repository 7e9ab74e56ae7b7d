/*
 * core/cel/eval.c: CEL environments, compilation (parse + function
 * resolution + checks), and the tree-walking evaluator with the standard
 * dialect's operator semantics (cel_std_ops).  Dialect-specific operator
 * behaviour is reached only through env->ops (see dialect.h).
 */
#include "dialect.h"
#include "lib_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- environments ------------------------------------------------------ */

typedef struct fn_entry {
  const char *name;
  uint8_t style, min, max;
  cel_fn fn;
} fn_entry;

struct cel_env {
  cel_dialect dialect;
  unsigned ext;
  bool disable_macros;
  bool no_check;
  char *container;
  char **decl;
  size_t ndecl;
  fn_entry *fns;
  size_t nfns, capfns;
  const cel_dialect_ops *ops;
};

struct cel_program {
  const cel_env *env;
  cel_arena arena;
  cel_node *root;
  char *src;
  size_t len;
};

void cel_env_add_functions(cel_env *env, const cel_fn_def *defs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const cel_fn_def *d = &defs[i];
    uint8_t style = d->style & CEL_FN_BOTH;
    /* a later definition replaces the styles it covers */
    for (size_t j = 0; j < env->nfns; j++) {
      fn_entry *e = &env->fns[j];
      if (strcmp(e->name, d->name) == 0 && (e->style & style)) e->style &= (uint8_t)~style;
    }
    if (env->nfns == env->capfns) {
      env->capfns = env->capfns ? env->capfns * 2 : 64;
      env->fns = realloc(env->fns, env->capfns * sizeof *env->fns);
      if (!env->fns) kv_oom();
    }
    env->fns[env->nfns++] =
        (fn_entry){d->name, (uint8_t)(d->style), d->min_args, d->max_args, d->fn};
  }
}

static cel_env *env_new(cel_dialect d, unsigned ext) {
  cel_env *e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->dialect = d;
  e->ext = ext;
  e->ops = d == CEL_DIALECT_KOREO ? &cel_koreo_ops : &cel_std_ops;
  cel_env_add_functions(e, cel_std_defs, cel_std_ndefs);
  cel_env_add_functions(e, cel_time_defs, cel_time_ndefs);
  return e;
}

cel_env *cel_env_new_standard(unsigned ext) {
  cel_env *e = env_new(CEL_DIALECT_STANDARD, ext);
  if (ext & CEL_EXT_STRINGS) cel_env_add_functions(e, cel_strings_defs, cel_strings_ndefs);
  if (ext & CEL_EXT_MATH) cel_env_add_functions(e, cel_math_defs, cel_math_ndefs);
  if (ext & CEL_EXT_ENCODERS) cel_env_add_functions(e, cel_encoders_defs, cel_encoders_ndefs);
  return e;
}

cel_env *cel_env_new_koreo(void) {
  cel_env *e = env_new(CEL_DIALECT_KOREO, 0);
  cel_env_add_functions(e, cel_time_koreo_defs, cel_time_koreo_ndefs);
  cel_env_add_functions(e, cel_koreo_dialect_defs, cel_koreo_dialect_ndefs);
  cel_env_add_functions(e, cel_koreo_defs, cel_koreo_ndefs);
  return e;
}

void cel_env_free(cel_env *env) {
  if (!env) return;
  for (size_t i = 0; i < env->ndecl; i++)
    free(env->decl[i]);
  free(env->decl);
  free(env->fns);
  free(env->container);
  free(env);
}

void cel_env_declare(cel_env *env, const char *name) {
  env->decl = realloc(env->decl, (env->ndecl + 1) * sizeof *env->decl);
  if (!env->decl) kv_oom();
  env->decl[env->ndecl++] = strdup(name);
}

void cel_env_set_container(cel_env *env, const char *container) {
  free(env->container);
  env->container = container && *container ? strdup(container) : NULL;
}

void cel_env_disable_macros(cel_env *env, bool off) { env->disable_macros = off; }
void cel_env_set_checking(cel_env *env, bool on) { env->no_check = !on; }
cel_dialect cel_env_dialect(const cel_env *env) {
  return env ? env->dialect : CEL_DIALECT_STANDARD;
}

/* ---- errors ----------------------------------------------------------- */

const char *cel_type_name(const kv *v) {
  switch (v->kind) {
  case KV_NULL: return "null_type";
  case KV_BOOL: return "bool";
  case KV_INT: return "int";
  case KV_UINT: return "uint";
  case KV_DOUBLE: return "double";
  case KV_STRING: return "string";
  case KV_BYTES: return "bytes";
  case KV_LIST: return "list";
  case KV_MAP: return "map";
  case KV_TIMESTAMP: return "google.protobuf.Timestamp";
  case KV_DURATION: return "google.protobuf.Duration";
  case KV_TYPE: return "type";
  default: return "error";
  }
}

kv *cel_errorf(const cel_call *c, cel_error_code code, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return kv_error(code, c ? (int32_t)c->where : -1, "%s", buf);
}

kv *cel_no_overload(const cel_call *c, kv *const *args, size_t n) {
  char buf[400];
  size_t o = 0;
  for (size_t i = 0; i < n && o < sizeof buf - 40; i++)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? ", " : "", cel_type_name(args[i]));
  buf[o] = 0;
  return cel_errorf(c, CEL_ERR_NO_OVERLOAD, "no matching overload for '%s' applied to (%s)",
                    c && c->name ? c->name : "?", buf);
}

/* See cel_impl.h (cel_op_name). */
const char *const cel_op_names[CEL_OP_IN + 1] = {
    [CEL_OP_NONE] = "?", [CEL_OP_NOT] = "!", [CEL_OP_NEG] = "-", [CEL_OP_ADD] = "+",
    [CEL_OP_SUB] = "-",  [CEL_OP_MUL] = "*", [CEL_OP_DIV] = "/", [CEL_OP_MOD] = "%",
    [CEL_OP_EQ] = "==",  [CEL_OP_NE] = "!=", [CEL_OP_LT] = "<",  [CEL_OP_LE] = "<=",
    [CEL_OP_GT] = ">",   [CEL_OP_GE] = ">=", [CEL_OP_IN] = "in",
};

static kv *op_no_overload(const cel_call *c, int op, kv *a, kv *b) {
  cel_call cc = *c;
  cc.name = cel_op_name(op);
  kv *args[2] = {a, b};
  return cel_no_overload(&cc, args, b ? 2 : 1);
}

/* ---- standard operators -------------------------------------------------- */

static bool is_num(const kv *v) {
  return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
}

/* Compare two numbers of any numeric kinds as the CEL runtime does:
 * int/uint exactly, and against a double by converting the integer to
 * double after range checks (cel-go's compareIntDouble/compareUintDouble),
 * so 9223372036854775807 == 9223372036854775808.0. */
static int dcmp(double x, double y, bool *unordered) {
  if (isnan(x) || isnan(y)) {
    *unordered = true;
    return 0;
  }
  return x < y ? -1 : x > y;
}

static int num_cmp(const kv *a, const kv *b, bool *unordered) {
  *unordered = false;
  if (a->kind == KV_DOUBLE && b->kind == KV_DOUBLE) return dcmp(a->u.d, b->u.d, unordered);
  if (a->kind == KV_DOUBLE || b->kind == KV_DOUBLE) {
    const kv *d = a->kind == KV_DOUBLE ? a : b, *o = a->kind == KV_DOUBLE ? b : a;
    int sign = a->kind == KV_DOUBLE ? -1 : 1; /* r below is "o vs d" */
    double x = d->u.d;
    int r;
    if (isnan(x)) {
      *unordered = true;
      return 0;
    }
    if (o->kind == KV_INT) {
      if (x < -9223372036854775808.0)
        r = 1;
      else if (x > 9223372036854775808.0)
        r = -1;
      else
        r = dcmp((double)o->u.i, x, unordered);
    } else {
      if (x < 0)
        r = 1;
      else if (x > 18446744073709551616.0)
        r = -1;
      else
        r = dcmp((double)o->u.u, x, unordered);
    }
    return r * sign;
  }
  if (a->kind == KV_INT && b->kind == KV_INT) return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
  if (a->kind == KV_UINT && b->kind == KV_UINT) return a->u.u < b->u.u ? -1 : a->u.u > b->u.u;
  if (a->kind == KV_INT)
    return a->u.i < 0 ? -1 : (uint64_t)a->u.i < b->u.u ? -1 : (uint64_t)a->u.i > b->u.u;
  return b->u.i < 0 ? 1 : a->u.u < (uint64_t)b->u.i ? -1 : a->u.u > (uint64_t)b->u.i;
}

static int bytes_cmp(const kv *a, const kv *b) {
  size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
  int r = memcmp(a->u.s.ptr, b->u.s.ptr, n);
  if (r) return r < 0 ? -1 : 1;
  return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
}

int cel_std_equal(const cel_call *c, const kv *a, const kv *b, kv **err) {
  (void)c;
  (void)err;
  if (is_num(a) && is_num(b)) {
    bool un;
    int r = num_cmp(a, b, &un);
    return !un && r == 0;
  }
  if (a->kind != b->kind) return 0;
  switch (a->kind) {
  case KV_NULL: return 1;
  case KV_BOOL: return a->u.b == b->u.b;
  case KV_STRING:
  case KV_BYTES:
  case KV_TYPE: return a->u.s.len == b->u.s.len && !memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len);
  case KV_TIMESTAMP:
  case KV_DURATION: return a->u.t.sec == b->u.t.sec && a->u.t.nsec == b->u.t.nsec;
  case KV_LIST:
    if (a->u.list.len != b->u.list.len) return 0;
    for (size_t i = 0; i < a->u.list.len; i++) {
      int r = cel_std_equal(c, a->u.list.items[i], b->u.list.items[i], err);
      if (r <= 0) return r;
    }
    return 1;
  case KV_MAP:
    if (a->u.map.len != b->u.map.len) return 0;
    for (size_t i = 0; i < a->u.map.len; i++) {
      kv *bv = kv_map_get(b, a->u.map.keys[i]);
      if (!bv) return 0;
      int r = cel_std_equal(c, a->u.map.vals[i], bv, err);
      if (r <= 0) return r;
    }
    return 1;
  default: return 0;
  }
}

int cel_std_compare(const cel_call *c, const kv *a, const kv *b, bool *unordered, kv **err) {
  *unordered = false;
  if (is_num(a) && is_num(b)) return num_cmp(a, b, unordered);
  if (a->kind == b->kind) {
    switch (a->kind) {
    case KV_STRING:
    case KV_BYTES: return bytes_cmp(a, b);
    case KV_BOOL: return (int)a->u.b - (int)b->u.b;
    case KV_TIMESTAMP:
    case KV_DURATION:
      if (a->u.t.sec != b->u.t.sec) return a->u.t.sec < b->u.t.sec ? -1 : 1;
      return a->u.t.nsec < b->u.t.nsec ? -1 : a->u.t.nsec > b->u.t.nsec;
    default: break;
    }
  }
  *err = NULL;
  (void)c;
  return 2; /* caller reports no overload */
}

static kv *std_arith(const cel_call *c, int op, kv *a, kv *b) {
  if (a->kind == KV_INT && b->kind == KV_INT) {
    int64_t x = a->u.i, y = b->u.i, r;
    switch (op) {
    case CEL_OP_ADD:
      if (__builtin_add_overflow(x, y, &r)) goto ovf;
      return kv_int(r);
    case CEL_OP_SUB:
      if (__builtin_sub_overflow(x, y, &r)) goto ovf;
      return kv_int(r);
    case CEL_OP_MUL:
      if (__builtin_mul_overflow(x, y, &r)) goto ovf;
      return kv_int(r);
    case CEL_OP_DIV:
      if (y == 0) return cel_errorf(c, CEL_ERR_DIV_ZERO, "division by zero");
      if (x == INT64_MIN && y == -1) goto ovf;
      return kv_int(x / y);
    case CEL_OP_MOD:
      if (y == 0) return cel_errorf(c, CEL_ERR_DIV_ZERO, "modulus by zero");
      if (y == -1) return kv_int(0);
      return kv_int(x % y);
    }
  }
  if (a->kind == KV_UINT && b->kind == KV_UINT) {
    uint64_t x = a->u.u, y = b->u.u, r;
    switch (op) {
    case CEL_OP_ADD:
      if (__builtin_add_overflow(x, y, &r)) goto ovf;
      return kv_uint(r);
    case CEL_OP_SUB:
      if (__builtin_sub_overflow(x, y, &r)) goto ovf;
      return kv_uint(r);
    case CEL_OP_MUL:
      if (__builtin_mul_overflow(x, y, &r)) goto ovf;
      return kv_uint(r);
    case CEL_OP_DIV:
      if (y == 0) return cel_errorf(c, CEL_ERR_DIV_ZERO, "division by zero");
      return kv_uint(x / y);
    case CEL_OP_MOD:
      if (y == 0) return cel_errorf(c, CEL_ERR_DIV_ZERO, "modulus by zero");
      return kv_uint(x % y);
    }
  }
  if (a->kind == KV_DOUBLE && b->kind == KV_DOUBLE) {
    double x = a->u.d, y = b->u.d;
    switch (op) {
    case CEL_OP_ADD: return kv_double(x + y);
    case CEL_OP_SUB: return kv_double(x - y);
    case CEL_OP_MUL: return kv_double(x * y);
    case CEL_OP_DIV: return kv_double(x / y);
    default: break;
    }
  }
  if (op == CEL_OP_ADD && a->kind == b->kind) {
    if (a->kind == KV_STRING || a->kind == KV_BYTES) {
      size_t n = a->u.s.len + b->u.s.len;
      char *p = malloc(n + 1);
      if (!p) kv_oom();
      memcpy(p, a->u.s.ptr, a->u.s.len);
      memcpy(p + a->u.s.len, b->u.s.ptr, b->u.s.len);
      p[n] = 0;
      if (a->kind == KV_STRING) return kv_string_take(p, n);
      kv *r = kv_bytes(p, n);
      free(p);
      return r;
    }
    if (a->kind == KV_LIST) {
      if (b->u.list.len == 0) return kv_ref(a);
      if (a->u.list.len == 0) return kv_ref(b);
      kv *r = kv_list_new(a->u.list.len + b->u.list.len);
      for (size_t i = 0; i < a->u.list.len; i++)
        kv_list_push(r, kv_ref(a->u.list.items[i]));
      for (size_t i = 0; i < b->u.list.len; i++)
        kv_list_push(r, kv_ref(b->u.list.items[i]));
      return r;
    }
  }
  if ((a->kind == KV_TIMESTAMP || a->kind == KV_DURATION) &&
      (b->kind == KV_TIMESTAMP || b->kind == KV_DURATION)) {
    if (op == CEL_OP_ADD) return cel_time_add(c, a, b);
    if (op == CEL_OP_SUB) return cel_time_sub(c, a, b);
  }
  return op_no_overload(c, op, a, b);
ovf:
  return cel_errorf(c, CEL_ERR_OVERFLOW, "%s overflow", a->kind == KV_INT ? "int" : "uint");
}

static kv *std_in(const cel_call *c, kv *a, kv *b) {
  if (b->kind == KV_LIST) {
    for (size_t i = 0; i < b->u.list.len; i++) {
      kv *err = NULL;
      int r = cel_std_equal(c, a, b->u.list.items[i], &err);
      if (r < 0) return err;
      if (r) return kv_bool(true);
    }
    return kv_bool(false);
  }
  if (b->kind == KV_MAP) {
    if (a->kind == KV_DOUBLE && a->u.d != trunc(a->u.d)) return kv_bool(false);
    return kv_bool(kv_map_get(b, a) != NULL);
  }
  return op_no_overload(c, CEL_OP_IN, a, b);
}

kv *cel_std_binary(const cel_call *c, int op, kv *a, kv *b) {
  if (a->kind == KV_ERROR) return kv_ref(a);
  if (b->kind == KV_ERROR) return kv_ref(b);
  switch (op) {
  case CEL_OP_ADD:
  case CEL_OP_SUB:
  case CEL_OP_MUL:
  case CEL_OP_DIV:
  case CEL_OP_MOD: return std_arith(c, op, a, b);
  case CEL_OP_EQ:
  case CEL_OP_NE: {
    kv *err = NULL;
    int r = cel_std_equal(c, a, b, &err);
    if (r < 0) return err;
    return kv_bool(op == CEL_OP_EQ ? r : !r);
  }
  case CEL_OP_LT:
  case CEL_OP_LE:
  case CEL_OP_GT:
  case CEL_OP_GE: {
    bool un = false;
    kv *err = NULL;
    int r = cel_std_compare(c, a, b, &un, &err);
    if (r == 2) return op_no_overload(c, op, a, b);
    if (un) return kv_bool(false);
    switch (op) {
    case CEL_OP_LT: return kv_bool(r < 0);
    case CEL_OP_LE: return kv_bool(r <= 0);
    case CEL_OP_GT: return kv_bool(r > 0);
    default: return kv_bool(r >= 0);
    }
  }
  case CEL_OP_IN: return std_in(c, a, b);
  }
  return op_no_overload(c, op, a, b);
}

kv *cel_std_unary(const cel_call *c, int op, kv *a) {
  if (a->kind == KV_ERROR) return kv_ref(a);
  if (op == CEL_OP_NOT) {
    if (a->kind == KV_BOOL) return kv_bool(!a->u.b);
    return op_no_overload(c, op, a, NULL);
  }
  switch (a->kind) {
  case KV_INT:
    if (a->u.i == INT64_MIN) return cel_errorf(c, CEL_ERR_OVERFLOW, "int overflow");
    return kv_int(-a->u.i);
  case KV_DOUBLE: return kv_double(-a->u.d);
  case KV_DURATION: return cel_time_neg(c, a);
  default: return op_no_overload(c, op, a, NULL);
  }
}

/* Append a short rendering of a key for messages. */
static void key_text(const kv *k, char *buf, size_t n) {
  switch (k->kind) {
  case KV_STRING:
    snprintf(buf, n, "'%.*s'", (int)(k->u.s.len > 200 ? 200 : k->u.s.len), k->u.s.ptr);
    break;
  case KV_INT: snprintf(buf, n, "%lld", (long long)k->u.i); break;
  case KV_UINT: snprintf(buf, n, "%lluu", (unsigned long long)k->u.u); break;
  case KV_BOOL: snprintf(buf, n, "%s", k->u.b ? "true" : "false"); break;
  case KV_DOUBLE: kv_double_repr(k->u.d, buf); break;
  default: snprintf(buf, n, "(%s)", cel_type_name(k)); break;
  }
}

kv *cel_std_index(const cel_call *c, kv *operand, kv *key) {
  if (operand->kind == KV_LIST) {
    int64_t i;
    if (key->kind == KV_INT)
      i = key->u.i;
    else if (key->kind == KV_UINT)
      i = key->u.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)key->u.u;
    else if (key->kind == KV_DOUBLE && key->u.d == trunc(key->u.d) && fabs(key->u.d) < 9e18)
      i = (int64_t)key->u.d;
    else {
      cel_call cc = *c;
      cc.name = "[]";
      kv *args[2] = {operand, key};
      return cel_no_overload(&cc, args, 2);
    }
    if (i < 0 || (uint64_t)i >= operand->u.list.len)
      return cel_errorf(c, CEL_ERR_RANGE, "index out of range: %lld (list size %zu)", (long long)i,
                        operand->u.list.len);
    return kv_ref(operand->u.list.items[i]);
  }
  if (operand->kind == KV_MAP) {
    if (key->kind == KV_LIST || key->kind == KV_MAP || key->kind == KV_NULL) {
      cel_call cc = *c;
      cc.name = "[]";
      kv *args[2] = {operand, key};
      return cel_no_overload(&cc, args, 2);
    }
    kv *v = kv_map_get(operand, key);
    if (v) return kv_ref(v);
    char kt[256];
    key_text(key, kt, sizeof kt);
    return cel_errorf(c, CEL_ERR_NO_SUCH_KEY, "no such key: %s", kt);
  }
  cel_call cc = *c;
  cc.name = "[]";
  kv *args[2] = {operand, key};
  return cel_no_overload(&cc, args, 2);
}

kv *cel_std_select(const cel_call *c, kv *operand, const char *field) {
  if (operand->kind == KV_MAP) {
    kv *v = kv_map_get_str(operand, field);
    if (v) return kv_ref(v);
    return cel_errorf(c, CEL_ERR_NO_SUCH_KEY, "no such key: '%s'", field);
  }
  return cel_errorf(c, CEL_ERR_NO_SUCH_FIELD, "type '%s' does not support field selection ('.%s')",
                    cel_type_name(operand), field);
}

kv *cel_std_logic_short(const cel_call *c, bool is_and, kv *a) {
  (void)c;
  if (a->kind == KV_BOOL && a->u.b != is_and) return kv_bool(!is_and);
  return NULL;
}

kv *cel_std_logic(const cel_call *c, bool is_and, kv *a, kv *b) {
  if (b->kind == KV_BOOL && b->u.b != is_and) return kv_bool(!is_and);
  if (a->kind == KV_ERROR) return kv_ref(a);
  if (b->kind == KV_ERROR) return kv_ref(b);
  if (a->kind != KV_BOOL || b->kind != KV_BOOL) {
    cel_call cc = *c;
    cc.name = is_and ? "&&" : "||";
    kv *args[2] = {a, b};
    return cel_no_overload(&cc, args, 2);
  }
  return kv_bool(is_and);
}

int cel_std_cond(const cel_call *c, kv *v, kv **err) {
  if (v->kind == KV_BOOL) return v->u.b;
  if (v->kind == KV_ERROR) {
    *err = kv_ref(v);
    return -1;
  }
  cel_call cc = *c;
  cc.name = "?:";
  *err = cel_no_overload(&cc, &v, 1);
  return -1;
}

kv *cel_std_iter_range(const cel_call *c, int macro, kv *range) {
  (void)macro;
  if (range->kind == KV_LIST) return kv_ref(range);
  if (range->kind == KV_MAP) {
    kv *l = kv_list_new(range->u.map.len);
    for (size_t i = 0; i < range->u.map.len; i++)
      kv_list_push(l, kv_ref(range->u.map.keys[i]));
    return l;
  }
  return cel_errorf(c, CEL_ERR_NO_OVERLOAD, "cannot iterate over a value of type '%s'",
                    cel_type_name(range));
}

int cel_std_pred(const cel_call *c, int macro, kv *v, kv **err) {
  (void)macro;
  if (v->kind == KV_BOOL) return v->u.b;
  *err = cel_errorf(c, CEL_ERR_NO_OVERLOAD, "macro predicate must be a bool, got '%s'",
                    cel_type_name(v));
  return -1;
}

kv *cel_std_map_literal(const cel_call *c, kv **keys, kv **vals, size_t n) {
  kv *err = NULL;
  for (size_t i = 0; i < n && !err; i++) {
    if (keys[i]->kind == KV_ERROR)
      err = kv_ref(keys[i]);
    else if (vals[i]->kind == KV_ERROR)
      err = kv_ref(vals[i]);
    else if (keys[i]->kind != KV_STRING && keys[i]->kind != KV_INT && keys[i]->kind != KV_UINT &&
             keys[i]->kind != KV_BOOL)
      err = cel_errorf(c, CEL_ERR_INVALID, "unsupported map key type '%s'", cel_type_name(keys[i]));
  }
  kv *m = err ? NULL : kv_map_new(n);
  for (size_t i = 0; i < n; i++) {
    if (!err && kv_map_get(m, keys[i])) {
      char kt[256];
      key_text(keys[i], kt, sizeof kt);
      err = cel_errorf(c, CEL_ERR_INVALID, "repeated key %s in map literal", kt);
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

const cel_dialect_ops cel_std_ops = {
    .binary = cel_std_binary,
    .unary = cel_std_unary,
    .index = cel_std_index,
    .select = cel_std_select,
    .logic_short = cel_std_logic_short,
    .logic = cel_std_logic,
    .cond = cel_std_cond,
    .iter_range = cel_std_iter_range,
    .pred = cel_std_pred,
    .map_literal = cel_std_map_literal,
    .finish = NULL,
    .has_means_no_error = false,
    .late_unknown_functions = false,
};

cel_fn cel_std_function(const char *name) {
  for (size_t i = 0; i < cel_std_ndefs; i++)
    if (strcmp(cel_std_defs[i].name, name) == 0) return cel_std_defs[i].fn;
  for (size_t i = 0; i < cel_time_ndefs; i++)
    if (strcmp(cel_time_defs[i].name, name) == 0) return cel_time_defs[i].fn;
  return NULL;
}

/* ---- compilation ------------------------------------------------------ */

static int find_fn(const cel_env *env, const char *name, uint8_t style) {
  for (size_t i = env->nfns; i-- > 0;)
    if ((env->fns[i].style & style) && strcmp(env->fns[i].name, name) == 0) return (int)i;
  return -1;
}

/* The dotted name of an identifier chain (a.b.c), or false. */
static bool ident_chain(const cel_node *n, char *buf, size_t cap) {
  if (n->kind == CN_IDENT) {
    size_t l = strlen(n->u.ident.name);
    if (l + 1 > cap) return false;
    memcpy(buf, n->u.ident.name, l + 1);
    return true;
  }
  if (n->kind == CN_SELECT) {
    if (!ident_chain(n->u.select.operand, buf, cap)) return false;
    size_t l = strlen(buf), f = strlen(n->u.select.field);
    if (l + f + 2 > cap) return false;
    buf[l] = '.';
    memcpy(buf + l + 1, n->u.select.field, f + 1);
    return true;
  }
  return false;
}

typedef struct compile_ctx {
  const cel_env *env;
  cel_program *p;
  cel_status *st;
  const char **scope; /* macro variables in scope */
  size_t nscope, capscope;
} compile_ctx;

static void set_status(const char *src, size_t len, uint32_t off, cel_status *st) {
  uint32_t line = 1, col = 1;
  for (size_t i = 0; i < off && i < len; i++) {
    if (src[i] == '\n') {
      line++;
      col = 1;
    } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
      col++;
    }
  }
  st->offset = off;
  st->line = line;
  st->col = col;
}

static bool compile_fail(compile_ctx *cc, uint32_t off, cel_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool compile_fail(compile_ctx *cc, uint32_t off, cel_error_code code, const char *fmt, ...) {
  cel_status *st = cc->st;
  st->code = code;
  st->stage = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->msg, sizeof st->msg, fmt, ap);
  va_end(ap);
  set_status(cc->p->src, cc->p->len, off, st);
  return false;
}

static bool in_scope(compile_ctx *cc, const char *name) {
  for (size_t i = 0; i < cc->nscope; i++)
    if (strcmp(cc->scope[i], name) == 0) return true;
  return false;
}

static void push_scope(compile_ctx *cc, const char *name) {
  if (cc->nscope == cc->capscope) {
    cc->capscope = cc->capscope ? cc->capscope * 2 : 8;
    cc->scope = realloc(cc->scope, cc->capscope * sizeof *cc->scope);
    if (!cc->scope) kv_oom();
  }
  cc->scope[cc->nscope++] = name;
}

static bool is_type_ident(const char *n) {
  static const char *types[] = {"int",
                                "uint",
                                "double",
                                "bool",
                                "string",
                                "bytes",
                                "list",
                                "map",
                                "null_type",
                                "type",
                                "google.protobuf.Timestamp",
                                "google.protobuf.Duration"};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (strcmp(n, types[i]) == 0) return true;
  return false;
}

static bool declared(const cel_env *env, const char *name) {
  if (*name == '.') name++;
  for (size_t i = 0; i < env->ndecl; i++) {
    const char *d = env->decl[i];
    size_t l = strlen(d);
    if (strcmp(d, name) == 0) return true;
    /* a declared qualified name "a.b" makes "a" a valid root */
    if (strncmp(d, name, strlen(name)) == 0 && d[strlen(name)] == '.') return true;
    (void)l;
  }
  if (is_type_ident(name)) return true;
  return false;
}

static bool resolve(compile_ctx *cc, cel_node *n) {
  if (!n) return true;
  switch ((cel_node_kind)n->kind) {
  case CN_LIT: return true;
  case CN_IDENT:
    if (cc->env->ndecl && !in_scope(cc, n->u.ident.name) && !declared(cc->env, n->u.ident.name)) {
      /* qualified names with the container */
      bool ok = false;
      if (cc->env->container) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s.%s", cc->env->container, n->u.ident.name);
        ok = declared(cc->env, buf);
      }
      if (!ok)
        return compile_fail(cc, n->offset, CEL_ERR_CHECK, "undeclared reference to '%s'",
                            n->u.ident.name);
    }
    return true;
  case CN_SELECT: {
    if (cc->env->ndecl) {
      char buf[512];
      if (ident_chain(n, buf, sizeof buf) && declared(cc->env, buf)) return true;
    }
    return resolve(cc, n->u.select.operand);
  }
  case CN_INDEX:
  case CN_BINARY:
  case CN_AND:
  case CN_OR: return resolve(cc, n->u.bin.a) && resolve(cc, n->u.bin.b);
  case CN_UNARY: return resolve(cc, n->u.un.a);
  case CN_COND:
    return resolve(cc, n->u.cond.c) && resolve(cc, n->u.cond.t) && resolve(cc, n->u.cond.f);
  case CN_LIST:
    for (size_t i = 0; i < n->u.list.n; i++)
      if (!resolve(cc, n->u.list.elems[i])) return false;
    return true;
  case CN_MAP:
    for (size_t i = 0; i < n->u.map.n; i++)
      if (!resolve(cc, n->u.map.keys[i]) || !resolve(cc, n->u.map.vals[i])) return false;
    return true;
  case CN_STRUCT:
    for (size_t i = 0; i < n->u.strct.n; i++)
      if (!resolve(cc, n->u.strct.vals[i])) return false;
    return true;
  case CN_HAS: return resolve(cc, n->u.has.arg);
  case CN_MACRO: {
    if (!resolve(cc, n->u.macro.range)) return false;
    size_t save = cc->nscope;
    push_scope(cc, n->u.macro.var);
    if (n->u.macro.var2) push_scope(cc, n->u.macro.var2);
    bool ok = resolve(cc, n->u.macro.e1) && resolve(cc, n->u.macro.e2);
    cc->nscope = save;
    return ok;
  }
  case CN_CALL: {
    const cel_env *env = cc->env;
    n->u.call.fn_slot = -1;
    if (n->u.call.target) {
      char qual[512];
      /* a qualified global function: math.greatest(...), strings.quote(...) */
      if (ident_chain(n->u.call.target, qual, sizeof qual - 64)) {
        size_t l = strlen(qual);
        const char *root = qual;
        char rootbuf[256];
        const char *dot = strchr(qual, '.');
        if (dot) {
          size_t rl = (size_t)(dot - qual);
          if (rl >= sizeof rootbuf) rl = sizeof rootbuf - 1;
          memcpy(rootbuf, qual, rl);
          rootbuf[rl] = 0;
          root = rootbuf;
        }
        snprintf(qual + l, sizeof qual - l, ".%s", n->u.call.name);
        int slot = in_scope(cc, root) ? -1 : find_fn(env, qual, CEL_FN_GLOBAL);
        if (slot >= 0) {
          n->u.call.name = cel_arena_strndup(&cc->p->arena, qual, strlen(qual));
          n->u.call.target = NULL;
          n->u.call.fn_slot = slot;
        }
      }
    }
    if (n->u.call.target && !resolve(cc, n->u.call.target)) return false;
    for (size_t i = 0; i < n->u.call.nargs; i++)
      if (!resolve(cc, n->u.call.args[i])) return false;
    if (n->u.call.fn_slot >= 0) return true;
    uint8_t style = n->u.call.target ? CEL_FN_MEMBER : CEL_FN_GLOBAL;
    n->u.call.fn_slot = find_fn(env, n->u.call.name, style);
    if (env->ops->late_unknown_functions || env->no_check) return true;
    if (n->u.call.fn_slot < 0) {
      int other = find_fn(env, n->u.call.name, CEL_FN_BOTH);
      if (other >= 0)
        return compile_fail(cc, n->offset, CEL_ERR_CHECK, "function '%s' cannot be called %s",
                            n->u.call.name,
                            n->u.call.target ? "as a method (x.f())" : "as a global (f(x))");
      return compile_fail(cc, n->offset, CEL_ERR_CHECK, "undeclared reference to function '%s'",
                          n->u.call.name);
    }
    {
      const fn_entry *f = &env->fns[n->u.call.fn_slot];
      size_t argc = n->u.call.nargs + (n->u.call.target ? 1 : 0);
      if (argc < f->min || (f->max != 255 && argc > f->max))
        return compile_fail(cc, n->offset, CEL_ERR_CHECK,
                            "no matching overload for '%s' with %zu argument%s", n->u.call.name,
                            n->u.call.nargs, n->u.call.nargs == 1 ? "" : "s");
    }
    return true;
  }
  }
  return true;
}

cel_program *cel_compile(const cel_env *env, const char *src, size_t len, cel_status *st) {
  memset(st, 0, sizeof *st);
  cel_program *p = calloc(1, sizeof *p);
  if (!p) kv_oom();
  p->env = env;
  p->src = malloc(len + 1);
  if (!p->src) kv_oom();
  memcpy(p->src, src, len);
  p->src[len] = 0;
  p->len = len;
  cel_parse_opts opts = {
      .dialect = env->dialect, .disable_macros = env->disable_macros, .ext = env->ext};
  p->root = cel_parse(&p->arena, p->src, len, &opts, st);
  if (!p->root) {
    st->stage = 1;
    if (!st->code) st->code = CEL_ERR_PARSE;
    cel_program_free(p);
    return NULL;
  }
  compile_ctx cc = {.env = env, .p = p, .st = st};
  bool ok = resolve(&cc, p->root);
  free(cc.scope);
  if (!ok) {
    cel_program_free(p);
    return NULL;
  }
  return p;
}

void cel_program_free(cel_program *p) {
  if (!p) return;
  cel_arena_free(&p->arena);
  free(p->src);
  free(p);
}

const char *cel_program_source(const cel_program *p) { return p->src; }

/* ---- evaluation -------------------------------------------------------- */

typedef struct local_var {
  const char *name;
  kv *val; /* borrowed from the iteration range or owned (owned flag) */
  bool owned;
} local_var;

typedef struct eval_ctx {
  const cel_program *p;
  const cel_env *env;
  const cel_dialect_ops *ops;
  const kv *bindings;
  local_var *locals;
  size_t nlocals, caplocals;
  int dotted; /* -1 unknown, 0 no dotted binding names, 1 some */
  int depth;
} eval_ctx;

static kv *eval(eval_ctx *c, const cel_node *n);

static inline cel_call mkcall(const eval_ctx *c, const cel_node *n, const char *name) {
  return (cel_call){.env = c->env, .where = n->offset, .name = name};
}

static void push_local(eval_ctx *c, const char *name, kv *val, bool owned) {
  if (c->nlocals == c->caplocals) {
    c->caplocals = c->caplocals ? c->caplocals * 2 : 8;
    c->locals = realloc(c->locals, c->caplocals * sizeof *c->locals);
    if (!c->locals) kv_oom();
  }
  c->locals[c->nlocals++] = (local_var){name, val, owned};
}

static void pop_local(eval_ctx *c) {
  local_var *l = &c->locals[--c->nlocals];
  if (l->owned) kv_unref(l->val);
}

static kv *lookup_local(eval_ctx *c, const char *name) {
  for (size_t i = c->nlocals; i-- > 0;)
    if (strcmp(c->locals[i].name, name) == 0) return c->locals[i].val;
  return NULL;
}

static kv *lookup_binding(eval_ctx *c, const char *name) {
  if (!c->bindings || c->bindings->kind != KV_MAP) return NULL;
  return kv_map_get_str(c->bindings, name);
}

/* Resolve a (possibly qualified) name: absolute names (".x") skip the
 * container; otherwise container prefixes are tried from the longest. */
static kv *resolve_name(eval_ctx *c, const char *name) {
  if (*name == '.') return lookup_binding(c, name + 1);
  const char *cont = c->env->container;
  if (cont) {
    char buf[1024];
    size_t cl = strlen(cont);
    if (cl < sizeof buf - 1) {
      memcpy(buf, cont, cl + 1);
      for (;;) {
        snprintf(buf + cl, sizeof buf - cl, ".%s", name);
        kv *v = lookup_binding(c, buf);
        if (v) return v;
        char *dot = NULL;
        for (size_t i = cl; i-- > 0;)
          if (buf[i] == '.') {
            dot = buf + i;
            break;
          }
        if (!dot) break;
        cl = (size_t)(dot - buf);
        buf[cl] = 0;
      }
    }
  }
  return lookup_binding(c, name);
}

static bool has_dotted_bindings(eval_ctx *c) {
  if (c->dotted < 0) {
    c->dotted = 0;
    if (c->bindings && c->bindings->kind == KV_MAP)
      for (size_t i = 0; i < c->bindings->u.map.len; i++) {
        const kv *k = c->bindings->u.map.keys[i];
        if (k->kind == KV_STRING && memchr(k->u.s.ptr, '.', k->u.s.len)) {
          c->dotted = 1;
          break;
        }
      }
  }
  return c->dotted == 1;
}

static kv *undeclared(eval_ctx *c, const cel_node *n, const char *name) {
  cel_call cc = mkcall(c, n, NULL);
  return cel_errorf(&cc, CEL_ERR_UNDECLARED, "undeclared reference to '%s'", name);
}

static kv *eval_ident(eval_ctx *c, const cel_node *n) {
  const char *name = n->u.ident.name;
  kv *v = *name != '.' ? lookup_local(c, name) : NULL;
  if (v) return kv_ref(v);
  v = resolve_name(c, name);
  if (v) return kv_ref(v);
  if (is_type_ident(*name == '.' ? name + 1 : name)) return kv_type(*name == '.' ? name + 1 : name);
  return undeclared(c, n, name);
}

/* For a select chain rooted at an identifier, try the longest qualified
 * binding name first (CEL name resolution: `a.b.c` may name a variable
 * "a.b" with field c).  Returns a new ref, or NULL when not applicable. */
static kv *eval_qualified(eval_ctx *c, const cel_node *n) {
  const cel_node *chain[64];
  size_t depth = 0;
  const cel_node *r = n;
  while (r->kind == CN_SELECT && depth < 64) {
    chain[depth++] = r;
    r = r->u.select.operand;
  }
  if (r->kind != CN_IDENT || depth == 64) return NULL;
  if (r->u.ident.name[0] != '.' && lookup_local(c, r->u.ident.name)) return NULL;
  char buf[1024];
  for (size_t take = depth; take > 0; take--) {
    /* name = root + fields of chain[depth-1] .. chain[depth-take] */
    size_t o = (size_t)snprintf(buf, sizeof buf, "%s", r->u.ident.name);
    for (size_t i = depth; i-- > depth - take && o < sizeof buf;)
      o += (size_t)snprintf(buf + o, sizeof buf - o, ".%s", chain[i]->u.select.field);
    if (o >= sizeof buf) continue;
    kv *v = resolve_name(c, buf);
    if (!v) continue;
    kv *cur = kv_ref(v);
    for (size_t i = depth - take; i-- > 0;) {
      cel_call cc = mkcall(c, chain[i], NULL);
      kv *next = c->ops->select(&cc, cur, chain[i]->u.select.field);
      kv_unref(cur);
      cur = next;
      if (cur->kind == KV_ERROR) break;
    }
    return cur;
  }
  /* a qualified type name: google.protobuf.Timestamp */
  {
    size_t o = (size_t)snprintf(buf, sizeof buf, "%s", r->u.ident.name);
    for (size_t i = depth; i-- > 0 && o < sizeof buf;)
      o += (size_t)snprintf(buf + o, sizeof buf - o, ".%s", chain[i]->u.select.field);
    const char *tn = buf[0] == '.' ? buf + 1 : buf;
    if (o < sizeof buf && is_type_ident(tn)) return kv_type(tn);
  }
  return NULL;
}

static kv *call_fn(eval_ctx *c, const cel_node *n, kv **args, size_t nargs) {
  const cel_env *env = c->env;
  int slot = n->u.call.fn_slot;
  cel_call cc = mkcall(c, n, n->u.call.name);
  if (slot < 0) {
    /* late-bound: look up by name (the other call style may exist) */
    uint8_t style = n->u.call.target ? CEL_FN_MEMBER : CEL_FN_GLOBAL;
    slot = find_fn(env, n->u.call.name, style);
    if (slot < 0) {
      if (find_fn(env, n->u.call.name, CEL_FN_BOTH) >= 0) return cel_no_overload(&cc, args, nargs);
      return cel_errorf(&cc, CEL_ERR_UNDECLARED, "undeclared reference to function '%s'",
                        n->u.call.name);
    }
  }
  const fn_entry *f = &env->fns[slot];
  if (!(f->style & CEL_FN_NONSTRICT))
    for (size_t i = 0; i < nargs; i++)
      if (args[i]->kind == KV_ERROR) return kv_ref(args[i]);
  if (nargs < f->min || (f->max != 255 && nargs > f->max)) return cel_no_overload(&cc, args, nargs);
  return f->fn(&cc, args, nargs);
}

static kv *eval_call(eval_ctx *c, const cel_node *n) {
  size_t total = n->u.call.nargs + (n->u.call.target ? 1 : 0);
  kv *stackargs[8];
  kv **args = total <= 8 ? stackargs : malloc(total * sizeof(kv *));
  if (!args) kv_oom();
  size_t k = 0;
  if (n->u.call.target) args[k++] = eval(c, n->u.call.target);
  for (size_t i = 0; i < n->u.call.nargs; i++)
    args[k++] = eval(c, n->u.call.args[i]);
  kv *r = call_fn(c, n, args, total);
  for (size_t i = 0; i < total; i++)
    kv_unref(args[i]);
  if (args != stackargs) free(args);
  return r;
}

/* An error from a macro body: in dialects where such errors are raised
 * (cel-python), a copy marked KV_FLAG_RAISED.  Takes ownership of `e`. */
static kv *body_error(eval_ctx *c, kv *e) {
  if (!c->ops->macro_body_errors_raise || (e->flags & KV_FLAG_RAISED)) return e;
  kv *r = kv_error(e->u.err.code, e->u.err.where, "%s", e->u.err.msg);
  r->flags |= KV_FLAG_RAISED;
  kv_unref(e);
  return r;
}

/* range.reduce(acc, x, init, e): a left fold (Koreo dialect). Takes
 * ownership of `range`. */
static kv *eval_reduce(eval_ctx *c, const cel_node *n, kv *range) {
  cel_call cc = mkcall(c, n, "reduce");
  kv *items = c->ops->iter_range(&cc, n->u.macro.macro, range);
  kv_unref(range);
  if (items->kind == KV_ERROR) return items;
  kv *acc = eval(c, n->u.macro.e2);
  for (size_t i = 0; i < kv_len(items) && acc->kind != KV_ERROR; i++) {
    push_local(c, n->u.macro.var, acc, true);
    push_local(c, n->u.macro.var2, kv_list_at(items, i), false);
    acc = eval(c, n->u.macro.e1);
    pop_local(c);
    pop_local(c);
  }
  kv_unref(items);
  return acc->kind == KV_ERROR ? body_error(c, acc) : acc;
}

static kv *eval_macro(eval_ctx *c, const cel_node *n) {
  int m = n->u.macro.macro;
  cel_call cc = mkcall(c, n, NULL);
  if (m == CEL_M_BIND) {
    kv *init = eval(c, n->u.macro.range);
    push_local(c, n->u.macro.var, init, true);
    kv *r = eval(c, n->u.macro.e1);
    pop_local(c);
    return r;
  }
  kv *range = eval(c, n->u.macro.range);
  if (range->kind == KV_ERROR) return range;
  if (m == CEL_M_REDUCE) return eval_reduce(c, n, range);
  bool two = m >= CEL_M_ALL2;
  kv *items;
  if (two) {
    if (range->kind != KV_LIST && range->kind != KV_MAP) {
      kv *e = cel_errorf(&cc, CEL_ERR_NO_OVERLOAD, "cannot iterate over a value of type '%s'",
                         cel_type_name(range));
      kv_unref(range);
      return e;
    }
    items = kv_ref(range);
  } else {
    items = c->ops->iter_range(&cc, m, range);
    if (items->kind == KV_ERROR) {
      kv_unref(range);
      return items;
    }
  }
  size_t count = kv_len(items);
  kv *result = NULL, *err = NULL;
  size_t nfound = 0;
  kv *acc = NULL;
  if (m == CEL_M_MAP || m == CEL_M_MAP_FILTER || m == CEL_M_FILTER || m == CEL_M_TRANSFORM_LIST ||
      m == CEL_M_TRANSFORM_LIST_IF)
    acc = kv_list_new(count);
  else if (m == CEL_M_TRANSFORM_MAP || m == CEL_M_TRANSFORM_MAP_IF)
    acc = kv_map_new(count);
  for (size_t i = 0; i < count && !result; i++) {
    kv *elem, *elem2 = NULL;
    bool owned1 = false;
    if (two) {
      if (items->kind == KV_LIST) {
        elem = kv_int((int64_t)i);
        owned1 = true;
        elem2 = items->u.list.items[i];
      } else {
        elem = items->u.map.keys[i];
        elem2 = items->u.map.vals[i];
      }
      push_local(c, n->u.macro.var, elem, owned1);
      push_local(c, n->u.macro.var2, elem2, false);
    } else {
      elem = kv_list_at(items, i);
      push_local(c, n->u.macro.var, elem, false);
    }
    kv *v = NULL;
    int t;
    kv *perr = NULL;
    switch (m) {
    case CEL_M_ALL:
    case CEL_M_ALL2:
    case CEL_M_EXISTS:
    case CEL_M_EXISTS2: {
      bool is_all = m == CEL_M_ALL || m == CEL_M_ALL2;
      v = eval(c, n->u.macro.e1);
      if (v->kind == KV_ERROR) {
        if (!err) err = kv_ref(v);
        break;
      }
      t = c->ops->pred(&cc, m, v, &perr);
      if (t < 0) {
        if (!err)
          err = perr;
        else
          kv_unref(perr);
      } else if (t != is_all) {
        result = kv_bool(!is_all);
      }
      break;
    }
    case CEL_M_EXISTS_ONE:
    case CEL_M_EXISTS_ONE2:
      v = eval(c, n->u.macro.e1);
      if (v->kind == KV_ERROR) {
        result = kv_ref(v);
        break;
      }
      t = c->ops->pred(&cc, m, v, &perr);
      if (t < 0)
        result = perr;
      else if (t)
        nfound++;
      break;
    case CEL_M_MAP:
    case CEL_M_TRANSFORM_LIST:
      v = eval(c, n->u.macro.e1);
      if (v->kind == KV_ERROR)
        result = kv_ref(v);
      else
        kv_list_push(acc, kv_ref(v));
      break;
    case CEL_M_FILTER:
    case CEL_M_MAP_FILTER:
    case CEL_M_TRANSFORM_LIST_IF:
    case CEL_M_TRANSFORM_MAP_IF: {
      const cel_node *pn = m == CEL_M_FILTER ? n->u.macro.e1 : n->u.macro.e2;
      v = eval(c, pn);
      if (v->kind == KV_ERROR) {
        result = kv_ref(v);
        break;
      }
      t = c->ops->pred(&cc, m, v, &perr);
      if (t < 0) {
        result = perr;
        break;
      }
      if (!t) break;
      if (m == CEL_M_FILTER) {
        kv_list_push(acc, kv_ref(elem));
        break;
      }
      kv_unref(v);
      v = eval(c, n->u.macro.e1);
      if (v->kind == KV_ERROR)
        result = kv_ref(v);
      else if (m == CEL_M_TRANSFORM_MAP_IF)
        kv_map_set(acc, kv_ref(elem), kv_ref(v));
      else
        kv_list_push(acc, kv_ref(v));
      break;
    }
    case CEL_M_TRANSFORM_MAP:
      v = eval(c, n->u.macro.e1);
      if (v->kind == KV_ERROR)
        result = kv_ref(v);
      else
        kv_map_set(acc, kv_ref(elem), kv_ref(v));
      break;
    }
    kv_unref(v);
    pop_local(c);
    if (two) pop_local(c);
  }
  kv_unref(items);
  kv_unref(range);
  if (result) {
    kv_unref(err);
    kv_unref(acc);
    if (result->kind == KV_ERROR && m != CEL_M_ALL && m != CEL_M_EXISTS && m != CEL_M_ALL2 &&
        m != CEL_M_EXISTS2)
      result = body_error(c, result);
    return result;
  }
  switch (m) {
  case CEL_M_ALL:
  case CEL_M_ALL2:
    if (err) return err;
    return kv_bool(true);
  case CEL_M_EXISTS:
  case CEL_M_EXISTS2:
    if (err) return err;
    return kv_bool(false);
  case CEL_M_EXISTS_ONE:
  case CEL_M_EXISTS_ONE2: return kv_bool(nfound == 1);
  default: return acc;
  }
}

static kv *eval_has(eval_ctx *c, const cel_node *n) {
  const cel_node *arg = n->u.has.arg;
  if (c->ops->has_means_no_error) {
    kv *v = eval(c, arg);
    if (v->kind == KV_ERROR && (v->u.err.code == CEL_ERR_UNKNOWN || (v->flags & KV_FLAG_RAISED)))
      return v; /* a raised failure is not "absent" */
    bool ok = v->kind != KV_ERROR;
    kv_unref(v);
    return kv_bool(ok);
  }
  cel_call cc = mkcall(c, n, "has");
  if (arg->kind != CN_SELECT)
    return cel_errorf(&cc, CEL_ERR_INVALID, "invalid argument to has() macro");
  kv *operand = eval(c, arg->u.select.operand);
  if (operand->kind == KV_ERROR) return operand;
  kv *r;
  if (operand->kind == KV_MAP)
    r = kv_bool(kv_map_get_str(operand, arg->u.select.field) != NULL);
  else
    r = cel_errorf(&cc, CEL_ERR_NO_OVERLOAD, "has() does not support a value of type '%s'",
                   cel_type_name(operand));
  kv_unref(operand);
  return r;
}

/* Field selection.  A chain of selections rooted at an identifier
 * (a.b.c) is resolved in one pass: the root variable is looked up once and
 * the fields applied in order; qualified names (container, dotted binding
 * names, google.protobuf.Timestamp) are tried when they can apply. */
static kv *eval_select(eval_ctx *c, const cel_node *n) {
  const cel_node *chain[32];
  size_t depth = 0;
  const cel_node *r = n;
  while (r->kind == CN_SELECT && depth < 32) {
    chain[depth++] = r;
    r = r->u.select.operand;
  }
  kv *cur = NULL;
  if (r->kind == CN_IDENT) {
    const char *name = r->u.ident.name;
    kv *root = *name != '.' ? lookup_local(c, name) : NULL;
    if (!root && !c->env->container && !has_dotted_bindings(c)) root = lookup_binding(c, name);
    if (root) {
      cur = kv_ref(root);
    } else {
      kv *q = eval_qualified(c, n);
      if (q) return q;
      cur = eval(c, r);
    }
  } else {
    cur = eval(c, r);
  }
  for (size_t i = depth; i-- > 0;) {
    if (cur->kind == KV_ERROR) return cur;
    cel_call cc = mkcall(c, chain[i], NULL);
    kv *next = c->ops->select(&cc, cur, chain[i]->u.select.field);
    kv_unref(cur);
    cur = next;
  }
  return cur;
}

static kv *eval(eval_ctx *c, const cel_node *n) {
  switch ((cel_node_kind)n->kind) {
  case CN_LIT: return kv_ref(n->u.lit);
  case CN_IDENT: return eval_ident(c, n);
  case CN_SELECT: return eval_select(c, n);
  case CN_INDEX: {
    kv *a = eval(c, n->u.bin.a);
    if (a->kind == KV_ERROR) return a;
    kv *b = eval(c, n->u.bin.b);
    if (b->kind == KV_ERROR) {
      kv_unref(a);
      return b;
    }
    cel_call cc = mkcall(c, n, "[]");
    kv *r = c->ops->index(&cc, a, b);
    kv_unref(a);
    kv_unref(b);
    return r;
  }
  case CN_CALL: return eval_call(c, n);
  case CN_UNARY: {
    kv *a = eval(c, n->u.un.a);
    cel_call cc = mkcall(c, n, cel_op_name(n->u.un.op));
    kv *r = c->ops->unary(&cc, n->u.un.op, a);
    kv_unref(a);
    return r;
  }
  case CN_BINARY: {
    kv *a = eval(c, n->u.bin.a);
    kv *b = eval(c, n->u.bin.b);
    cel_call cc = mkcall(c, n, cel_op_name(n->u.bin.op));
    kv *r = c->ops->binary(&cc, n->u.bin.op, a, b);
    kv_unref(a);
    kv_unref(b);
    return r;
  }
  case CN_AND:
  case CN_OR: {
    bool is_and = n->kind == CN_AND;
    cel_call cc = mkcall(c, n, is_and ? "&&" : "||");
    kv *a = eval(c, n->u.bin.a);
    kv *r = c->ops->logic_short(&cc, is_and, a);
    if (r) {
      kv_unref(a);
      return r;
    }
    kv *b = eval(c, n->u.bin.b);
    r = c->ops->logic(&cc, is_and, a, b);
    kv_unref(a);
    kv_unref(b);
    return r;
  }
  case CN_COND: {
    kv *v = eval(c, n->u.cond.c);
    cel_call cc = mkcall(c, n, "?:");
    kv *err = NULL;
    int t = c->ops->cond(&cc, v, &err);
    kv_unref(v);
    if (t < 0) return err;
    return eval(c, t ? n->u.cond.t : n->u.cond.f);
  }
  case CN_LIST: {
    kv *l = kv_list_new(n->u.list.n);
    for (size_t i = 0; i < n->u.list.n; i++) {
      kv *v = eval(c, n->u.list.elems[i]);
      if (v->kind == KV_ERROR) {
        kv_unref(l);
        return v;
      }
      kv_list_push(l, v);
    }
    return l;
  }
  case CN_MAP: {
    size_t cnt = n->u.map.n;
    kv *stackk[16], *stackv[16];
    kv **keys = cnt <= 16 ? stackk : malloc(cnt * sizeof(kv *));
    kv **vals = cnt <= 16 ? stackv : malloc(cnt * sizeof(kv *));
    if (!keys || !vals) kv_oom();
    for (size_t i = 0; i < cnt; i++) {
      keys[i] = eval(c, n->u.map.keys[i]);
      vals[i] = eval(c, n->u.map.vals[i]);
    }
    cel_call cc = mkcall(c, n, "{}");
    kv *r = c->ops->map_literal(&cc, keys, vals, cnt);
    if (keys != stackk) free(keys);
    if (vals != stackv) free(vals);
    return r;
  }
  case CN_STRUCT: {
    cel_call cc = mkcall(c, n, NULL);
    return cel_errorf(&cc, CEL_ERR_UNDECLARED, "unknown message type '%s'", n->u.strct.type_name);
  }
  case CN_MACRO: {
    if (++c->depth > 200) {
      c->depth--;
      cel_call cc = mkcall(c, n, NULL);
      return cel_errorf(&cc, CEL_ERR_INVALID, "comprehensions nested too deeply");
    }
    kv *r = eval_macro(c, n);
    c->depth--;
    return r;
  }
  case CN_HAS: return eval_has(c, n);
  }
  cel_call cc = mkcall(c, n, NULL);
  return cel_errorf(&cc, CEL_ERR_UNKNOWN, "unknown expression node");
}

kv *cel_eval_value(const cel_program *p, const kv *bindings) {
  eval_ctx c = {.p = p, .env = p->env, .ops = p->env->ops, .bindings = bindings, .dotted = -1};
  kv *r = eval(&c, p->root);
  while (c.nlocals)
    pop_local(&c);
  free(c.locals);
  if (c.ops->finish) r = c.ops->finish(r);
  return r;
}

void cel_status_from_error(const cel_program *p, const kv *err, cel_status *st) {
  memset(st, 0, sizeof *st);
  st->code = (cel_error_code)err->u.err.code;
  st->stage = 2;
  snprintf(st->msg, sizeof st->msg, "%s", err->u.err.msg);
  if (err->u.err.where >= 0) set_status(p->src, p->len, (uint32_t)err->u.err.where, st);
}

kv *cel_eval(const cel_program *p, const kv *bindings, cel_status *st) {
  kv *r = cel_eval_value(p, bindings);
  if (r->kind == KV_ERROR) {
    cel_status_from_error(p, r, st);
    kv_unref(r);
    return NULL;
  }
  memset(st, 0, sizeof *st);
  return r;
}
