/*
 * core/eval/eval_impl.h: helpers shared by the evaluators in core/eval/
 * (not installed): bindings, predicate handling (spec 2.8), expression
 * error to outcome, deep merge (the `overlay()` rule), value text.
 */
#ifndef KOREO_EVAL_IMPL_H
#define KOREO_EVAL_IMPL_H

#include "koreo/eval.h"
#include "koreo/expr.h"

/* A new bindings map with up to three name/value pairs (values borrowed,
 * referenced; NULL names end the list, NULL values are skipped). */
kv *eval_vars(const char *n1, const kv *v1, const char *n2, const kv *v2, const char *n3,
              const kv *v3);

/* The outcome of an expression evaluation error: PermFail with the
 * error's message at `location`. */
koreo_outcome eval_error_outcome(const koreo_error *err, const char *location);

/* Evaluate a predicate list (spec 2.8) with `vars`.  Returns Ok(null) when
 * the predicates pass (none false, or the first false one is `ok`), else
 * the outcome of the first false predicate or PermFail on any error.
 * `location` is the outcome location ("<fn>:spec.preconditions"). */
koreo_outcome eval_predicates(const koreo_expr *preds, const kv *vars, const char *location);

/* Deep merge of `o` onto `base` (spec 2.4 overlay()): maps merge
 * recursively, any other value of `o` replaces.  New reference. */
kv *eval_deep_merge(const kv *base, const kv *o);

/* Python str() of a value: strings raw, null "None", booleans
 * "True"/"False", numbers as Python prints them, other values as JSON.
 * Malloc'ed. */
char *eval_text(const kv *v);

/* printf into a malloc'ed string (aborts on OOM). */
char *eval_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
