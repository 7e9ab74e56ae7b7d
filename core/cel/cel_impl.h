/*
 * core/cel/cel_impl.h: the CEL engine's internal interfaces, shared by the
 * parser (parse.c), the evaluator (eval.c), the dialects (dialect_*.c) and
 * the function libraries (lib_*.c).  Not installed.
 *
 * - The AST (cel_node), allocated from a per-program arena.
 * - The function ABI (cel_fn_def): every function, standard or extension,
 *   is a C function over already-evaluated arguments.
 * - Error helpers that build KV_ERROR values with CEL's wording.
 */
#ifndef KOREO_CEL_IMPL_H
#define KOREO_CEL_IMPL_H

#include "koreo/cel.h"

#include <stdarg.h>

/* ---- arena ------------------------------------------------------------ */

typedef struct cel_arena cel_arena;
struct cel_arena {
  struct cel_arena_block *blocks;
};
void *cel_arena_alloc(cel_arena *a, size_t n); /* zeroed, 16-aligned */
char *cel_arena_strndup(cel_arena *a, const char *s, size_t n);
/* The arena takes over one reference to `v` (dropped by cel_arena_free)
 * and returns `v`; NULL passes through. */
kv *cel_arena_keep(cel_arena *a, kv *v);
void cel_arena_free(cel_arena *a);

/* ---- AST ----------------------------------------------------------------
 * Every node records `offset`, the byte offset in the source of the token
 * that names it (the operator, the '.', the '(' of a call, the literal),
 * used for error positions. */
typedef enum cel_node_kind {
  CN_LIT,    /* u.lit: a constant value (owned; freed with the program) */
  CN_IDENT,  /* u.ident.name */
  CN_SELECT, /* u.select.operand . u.select.field */
  CN_INDEX,  /* u.bin.a [ u.bin.b ] */
  CN_CALL,   /* u.call: global call when target == NULL, else member call */
  CN_UNARY,  /* u.un.op (CEL_OP_NOT / CEL_OP_NEG) applied to u.un.a */
  CN_BINARY, /* u.bin.op applied to u.bin.a, u.bin.b */
  CN_AND,    /* u.bin.a && u.bin.b */
  CN_OR,     /* u.bin.a || u.bin.b */
  CN_COND,   /* u.cond.c ? u.cond.t : u.cond.f */
  CN_LIST,   /* [u.list.elems...] */
  CN_MAP,    /* {u.map.keys[i]: u.map.vals[i], ...} */
  CN_STRUCT, /* Name{field: value, ...}: u.strct (message construction) */
  CN_MACRO,  /* u.macro: all/exists/exists_one/map/filter, cel.bind ... */
  CN_HAS,    /* has(u.has.arg): standard CEL requires arg to be CN_SELECT */
} cel_node_kind;

typedef enum cel_op {
  CEL_OP_NONE = 0,
  CEL_OP_NOT, /* !x */
  CEL_OP_NEG, /* -x */
  CEL_OP_ADD,
  CEL_OP_SUB,
  CEL_OP_MUL,
  CEL_OP_DIV,
  CEL_OP_MOD,
  CEL_OP_EQ,
  CEL_OP_NE,
  CEL_OP_LT,
  CEL_OP_LE,
  CEL_OP_GT,
  CEL_OP_GE,
  CEL_OP_IN,
} cel_op;

typedef enum cel_macro {
  CEL_M_ALL,        /* range.all(var, e1) */
  CEL_M_EXISTS,     /* range.exists(var, e1) */
  CEL_M_EXISTS_ONE, /* range.exists_one(var, e1) (also existsOne) */
  CEL_M_MAP,        /* range.map(var, e1) */
  CEL_M_MAP_FILTER, /* range.map(var, e2 /filter/, e1 /transform/) */
  CEL_M_FILTER,     /* range.filter(var, e1) */
  CEL_M_BIND,       /* cel.bind(var, range /init/, e1) */
  /* two-variable comprehensions (CEL_EXT_COMPREHENSIONS2): var, var2 */
  CEL_M_ALL2,
  CEL_M_EXISTS2,
  CEL_M_EXISTS_ONE2,
  CEL_M_TRANSFORM_LIST,    /* range.transformList(var, var2, e1) */
  CEL_M_TRANSFORM_LIST_IF, /* range.transformList(var, var2, e2 /filter/, e1) */
  CEL_M_TRANSFORM_MAP,     /* range.transformMap(var, var2, e1) */
  CEL_M_TRANSFORM_MAP_IF,  /* range.transformMap(var, var2, e2 /filter/, e1) */
  /* Koreo dialect only: cel-python's range.reduce(var /acc/, var2 /elem/,
   * e2 /init/, e1), a left fold. */
  CEL_M_REDUCE,
} cel_macro;

typedef struct cel_node cel_node;
struct cel_node {
  uint8_t kind; /* cel_node_kind */
  uint32_t offset;
  union {
    kv *lit;
    struct {
      const char *name; /* arena; NUL-terminated */
    } ident;
    struct {
      cel_node *operand;
      const char *field;
    } select;
    struct {
      cel_node *target; /* NULL: global call */
      const char *name; /* function name; may be qualified ("math.greatest") */
      cel_node **args;
      size_t nargs;
      int fn_slot; /* resolved by the checker; -1 unknown */
    } call;
    struct {
      int op;
      cel_node *a;
    } un;
    struct {
      int op;
      cel_node *a, *b;
    } bin;
    struct {
      cel_node *c, *t, *f;
    } cond;
    struct {
      cel_node **elems;
      size_t n;
    } list;
    struct {
      cel_node **keys, **vals;
      size_t n;
    } map;
    struct {
      const char *type_name;
      const char **fields;
      cel_node **vals;
      size_t n;
    } strct;
    struct {
      int macro; /* cel_macro */
      const char *var, *var2;
      cel_node *range;
      cel_node *e1, *e2;
    } macro;
    struct {
      cel_node *arg;
    } has;
  } u;
};

/* Parser options: what the dialect's grammar accepts. */
typedef struct cel_parse_opts {
  cel_dialect dialect;
  bool disable_macros;
  unsigned ext;  /* CEL_EXT_*: enables cel.bind, two-variable macros, ... */
  int max_depth; /* nesting limit (0: default 250) */
} cel_parse_opts;

/* Parse `src` into an AST allocated from `arena`.  On error returns NULL and
 * fills `st` (code CEL_ERR_PARSE, stage 1, offset/line/col, a message that
 * says what was expected).  Implemented in parse.c. */
cel_node *cel_parse(cel_arena *arena, const char *src, size_t len, const cel_parse_opts *opts,
                    cel_status *st);

/* Print the AST in a fixed S-expression form (tests, debugging).  Returns a
 * malloc'ed string. */
char *cel_ast_dump(const cel_node *n);

/* ---- functions ----------------------------------------------------------
 * A function receives its already-evaluated arguments (borrowed; none is a
 * KV_ERROR unless the definition is CEL_FN_NONSTRICT) and returns a new
 * reference: the result, or an error value made with cel_errorf /
 * cel_no_overload.  For a member call `x.f(a)`, args[0] is `x`. */
typedef struct cel_call {
  const cel_env *env;
  uint32_t where;   /* source offset of the call, for errors */
  const char *name; /* the function name as called */
} cel_call;

typedef kv *(*cel_fn)(const cel_call *c, kv *const *args, size_t nargs);

enum {
  CEL_FN_GLOBAL = 1, /* callable as f(x, ...) */
  CEL_FN_MEMBER = 2, /* callable as x.f(...) */
  CEL_FN_BOTH = 3,
  CEL_FN_NONSTRICT = 4, /* receives error arguments too */
};

typedef struct cel_fn_def {
  const char *name; /* may be qualified: "math.greatest", "base64.encode" */
  uint8_t style;    /* CEL_FN_* */
  uint8_t min_args; /* including the receiver of a member call */
  uint8_t max_args; /* 255: variadic */
  cel_fn fn;
} cel_fn_def;

/* Add functions to an environment.  A later definition with the same name
 * and an overlapping style replaces the earlier one for that style. */
void cel_env_add_functions(cel_env *env, const cel_fn_def *defs, size_t n);

/* The environment's dialect (functions may differ by dialect). */
cel_dialect cel_env_dialect(const cel_env *env);

/* ---- errors ----------------------------------------------------------- */

/* An error value at the call's position. */
kv *cel_errorf(const cel_call *c, cel_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "no matching overload for 'NAME' applied to (T1, T2)" */
kv *cel_no_overload(const cel_call *c, kv *const *args, size_t n);

/* CEL's name of a value's type: "int", "uint", "double", "bool", "string",
 * "bytes", "null_type", "list", "map", "type",
 * "google.protobuf.Timestamp", "google.protobuf.Duration". */
const char *cel_type_name(const kv *v);

/* Python truthiness, the Koreo dialect's notion of "empty" (spec 2.2,
 * quirk 25 of conformance/koreo-expressions/README.md): null, false, 0,
 * 0u, 0.0, -0.0, "", b"", [], {} and a zero duration are false; every
 * other value (NaN, timestamps, types, errors) is true.  `v` is borrowed.
 * The one definition behind dialect_koreo.c, lib_koreo.c and koreo_truthy
 * (koreo/expr.h). */
static inline bool cel_py_truthy(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: return false;
  case KV_BOOL: return v->u.b;
  case KV_INT: return v->u.i != 0;
  case KV_UINT: return v->u.u != 0;
  case KV_DOUBLE: return v->u.d != 0.0; /* NaN != 0: true, as in Python */
  case KV_STRING:
  case KV_BYTES: return v->u.s.len != 0;
  case KV_LIST: return v->u.list.len != 0;
  case KV_MAP: return v->u.map.len != 0;
  case KV_DURATION: return v->u.t.sec != 0 || v->u.t.nsec != 0;
  default: return true;
  }
}

/* An operator's source text, as error messages and cel_ast_dump name it:
 * "!", "-" (CEL_OP_NEG and CEL_OP_SUB), "+", "*", "/", "%", "==", "!=",
 * "<", "<=", ">", ">=", "in"; "?" for CEL_OP_NONE or any other value.
 * `op` is a cel_op; the result is a static string.  The table lives in
 * eval.c; the lookup is inline because the evaluator names the operator
 * of every operation it performs. */
extern const char *const cel_op_names[CEL_OP_IN + 1];
static inline const char *cel_op_name(int op) {
  return op >= 0 && op <= CEL_OP_IN ? cel_op_names[op] : "?";
}

/* ---- libraries (each a table of cel_fn_def) ----------------------------- */

/* lib_std.c: size, contains, startsWith, endsWith, matches, conversions */
extern const cel_fn_def cel_std_defs[];
extern const size_t cel_std_ndefs;

/* lib_time.c: timestamp(), duration(), getFullYear() ... getMilliseconds(),
 * with optional time zone argument. */
extern const cel_fn_def cel_time_defs[];
extern const size_t cel_time_ndefs;

/* lib_strings.c (CEL_EXT_STRINGS): charAt ... reverse, format, quote */
extern const cel_fn_def cel_strings_defs[];
extern const size_t cel_strings_ndefs;

/* lib_math.c (CEL_EXT_MATH) and lib_encoders.c (CEL_EXT_ENCODERS) */
extern const cel_fn_def cel_math_defs[];
extern const size_t cel_math_ndefs;
extern const cel_fn_def cel_encoders_defs[];
extern const size_t cel_encoders_ndefs;

/* lib_koreo.c: Koreo's 19 extension functions (spec 2.4) */
extern const cel_fn_def cel_koreo_defs[];
extern const size_t cel_koreo_ndefs;

/* ---- time support (lib_time.c) ------------------------------------------
 * Timestamps are seconds+nanos since the Unix epoch (UTC), limited to
 * 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z; durations are
 * limited to +-315576000000 s (about 10000 years). */
#define CEL_TS_MIN_SEC (-62135596800LL)
#define CEL_TS_MAX_SEC (253402300799LL)
#define CEL_DUR_MAX_SEC (315576000000LL)

/* RFC 3339 text -> timestamp.  Returns false on bad syntax or range.
 * `off` receives the written UTC offset in seconds. */
bool cel_ts_parse(const char *s, size_t n, bool allow_date_only, int64_t *sec, int32_t *nsec,
                  int32_t *off);
/* Timestamp -> RFC 3339 UTC text with the fraction's trailing zeros
 * trimmed, as cel-go prints it ("2009-02-13T23:31:30Z", "...:30.5Z").
 * Returns the length. */
int cel_ts_format(int64_t sec, int32_t nsec, char *buf, size_t n);
/* Duration text ("1h2m3.5s", "-1.5s", "100ms", "2us", "3ns") -> duration. */
bool cel_dur_parse(const char *s, size_t n, int64_t *sec, int32_t *nsec);
/* Duration -> CEL text: seconds with up to 9 fraction digits + "s". */
int cel_dur_format(int64_t sec, int32_t nsec, char *buf, size_t n);
/* timestamp +/- duration etc.: the evaluator's arithmetic on time values;
 * returns an error value on range overflow or unsupported kinds. */
kv *cel_time_add(const cel_call *c, const kv *a, const kv *b);
kv *cel_time_sub(const cel_call *c, const kv *a, const kv *b);
kv *cel_time_neg(const cel_call *c, const kv *a);

/* ---- regular expressions (lib_std.c) ------------------------------------ */
/* Search `pattern` in `s` (unanchored).  Returns a bool value or an error. */
kv *cel_regex_search(const cel_call *c, const kv *s, const kv *pattern);

#endif
