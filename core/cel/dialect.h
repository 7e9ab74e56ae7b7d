/*
 * core/cel/dialect.h: the operator table through which the evaluator
 * applies every operator whose meaning differs between dialects.
 *
 * The standard dialect (CEL language definition) is implemented in
 * eval.c as the cel_std_* functions and the table cel_std_ops.  The Koreo
 * dialect (upstream Koreo's cel-python 0.3.0 behaviour, under the
 * compatibility rule of conformance/koreo-expressions/README.md) lives in
 * dialect_koreo.c as cel_koreo_ops plus cel_koreo_dialect_defs, the
 * functions whose Koreo behaviour differs (int(), string(), size(), ...);
 * they are registered after the standard ones and replace them.
 *
 * Conventions: every hook returns a new reference (a value or a KV_ERROR
 * value); arguments are borrowed.  `c->where` is the operator's offset.
 */
#ifndef KOREO_CEL_DIALECT_H
#define KOREO_CEL_DIALECT_H

#include "cel_impl.h"

/* Flags in kv.flags used by the Koreo dialect to track cel-python's
 * "plain Python" numbers: results of some operations are native Python
 * int/float rather than CEL IntType/DoubleType and then behave
 * differently (quirks 9 and 11).  Ignored everywhere outside the dialect;
 * set only on values the dialect itself allocated. */
enum {
  KV_FLAG_PY_PLAIN = 1u << 0,
  /* An error raised as an exception rather than returned as a value
   * (cel-python: a failure inside a map/filter/exists_one/reduce body):
   * no operator, has() or comparison absorbs it. */
  KV_FLAG_RAISED = 1u << 1,
};

typedef struct cel_dialect_ops {
  /* Binary operators CEL_OP_ADD..CEL_OP_IN.  Either operand may be an
   * error value (the standard dialect propagates the first error). */
  kv *(*binary)(const cel_call *c, int op, kv *a, kv *b);
  /* CEL_OP_NOT / CEL_OP_NEG; `a` may be an error. */
  kv *(*unary)(const cel_call *c, int op, kv *a);
  /* operand[key]; neither is an error. */
  kv *(*index)(const cel_call *c, kv *operand, kv *key);
  /* operand.field; operand is not an error. */
  kv *(*select)(const cel_call *c, kv *operand, const char *field);
  /* && / ||: after evaluating the left side, return the final result if
   * it is decided by `a` alone, else NULL (then the right side is
   * evaluated and logic() combines them).  `a` may be an error. */
  kv *(*logic_short)(const cel_call *c, bool is_and, kv *a);
  kv *(*logic)(const cel_call *c, bool is_and, kv *a, kv *b);
  /* The condition of `?:`: returns 1 or 0, or -1 with *err set (new ref).
   * `v` may be an error. */
  int (*cond)(const cel_call *c, kv *v, kv **err);
  /* The elements a macro iterates over (a list value), or an error value:
   * lists iterate their elements, maps their keys. */
  kv *(*iter_range)(const cel_call *c, int macro, kv *range);
  /* The truth of a macro predicate result for all/exists/exists_one/
   * filter/map-filter: 1, 0, or -1 with *err set (new ref).  `v` is not
   * an error (errors are handled by the evaluator's standard rules). */
  int (*pred)(const cel_call *c, int macro, kv *v, kv **err);
  /* Build a map literal from n evaluated keys and values (ownership of
   * every key and value passes to the hook; any may be an error). */
  kv *(*map_literal)(const cel_call *c, kv **keys, kv **vals, size_t n);
  /* Check a final result (Koreo: an error anywhere inside fails the whole
   * value, spec 2.6).  Takes ownership of `v`, returns the result. */
  kv *(*finish)(kv *v);
  /* has(e): true = "e evaluates without error" (Koreo) instead of the
   * standard field-presence test. */
  bool has_means_no_error;
  /* Unknown functions fail at evaluation, not at compile time. */
  bool late_unknown_functions;
  /* Errors in the bodies of map/filter/exists_one/reduce are raised
   * (KV_FLAG_RAISED) instead of returned. */
  bool macro_body_errors_raise;
} cel_dialect_ops;

extern const cel_dialect_ops cel_std_ops;
extern const cel_dialect_ops cel_koreo_ops;

/* Koreo's replacements for standard functions (int, string, size, ...). */
extern const cel_fn_def cel_koreo_dialect_defs[];
extern const size_t cel_koreo_dialect_ndefs;

/* The standard implementations, for dialects that fall back to them. */
kv *cel_std_binary(const cel_call *c, int op, kv *a, kv *b);
kv *cel_std_unary(const cel_call *c, int op, kv *a);
kv *cel_std_index(const cel_call *c, kv *operand, kv *key);
kv *cel_std_select(const cel_call *c, kv *operand, const char *field);
kv *cel_std_logic_short(const cel_call *c, bool is_and, kv *a);
kv *cel_std_logic(const cel_call *c, bool is_and, kv *a, kv *b);
int cel_std_cond(const cel_call *c, kv *v, kv **err);
kv *cel_std_iter_range(const cel_call *c, int macro, kv *range);
int cel_std_pred(const cel_call *c, int macro, kv *v, kv **err);
kv *cel_std_map_literal(const cel_call *c, kv **keys, kv **vals, size_t n);

/* Standard CEL equality (heterogeneous numbers compare by value, other
 * kinds differing → false, lists/maps element-wise): 1 equal, 0 not,
 * -1 with *err when an element comparison errs. */
int cel_std_equal(const cel_call *c, const kv *a, const kv *b, kv **err);
/* Standard ordering for <,<=,>,>=: returns <0, 0, >0, or sets *err (no
 * overload) and returns 0.  NaN compares unordered: *unordered = true. */
int cel_std_compare(const cel_call *c, const kv *a, const kv *b, bool *unordered, kv **err);

/* Standard functions by name, for dialect functions that fall back:
 * returns the standard implementation of `name` or NULL. */
cel_fn cel_std_function(const char *name);

#endif
