/*
 * core/eval/value_function.c: ValueFunction evaluation (spec 4):
 * preconditions, locals (only when there is a return), the return overlay
 * onto an optional base.
 */
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"

koreo_outcome koreo_eval_value_function(const kdef_definition *def, const kv *inputs,
                                        const kv *base, const char *location) {
  char *own = NULL;
  if (!location) location = own = eval_fmt("ValueFunction:%s", def->name);
  koreo_outcome out;
  if (def->kind != KDEF_VALUE_FUNCTION) {
    out = koreo_outcome_make(KOREO_PERMFAIL, 0, location, "%s is a %s, not a ValueFunction",
                             def->name, kdef_kind_name(def->kind));
    free(own);
    return out;
  }
  if (!kdef_outcome_is_ok(&def->status)) {
    out = koreo_outcome_from_kdef(&def->status);
    free(own);
    return out;
  }
  const kdef_value_function *vf = &def->u.vf;
  if (!inputs) inputs = kv_null();
  bool has_base = base && base->kind == KV_MAP && kv_len(base) > 0;
  kv *vars = eval_vars("inputs", inputs, has_base ? "resource" : NULL, base, NULL, NULL);
  char *loc = eval_fmt("%s:spec.preconditions", location);
  out = eval_predicates(vf->preconditions, vars, loc);
  free(loc);
  if (!koreo_outcome_is_ok(&out) || !vf->ret || koreo_expr_is_empty(vf->ret)) {
    if (koreo_outcome_is_ok(&out)) { /* no return: null, locals not evaluated */
      koreo_outcome_clear(&out);
      out = koreo_outcome_ok(NULL, location);
    }
    kv_unref(vars);
    free(own);
    return out;
  }
  koreo_outcome_clear(&out);
  koreo_error err;
  kv *locals = vf->locals ? koreo_expr_eval(vf->locals, vars, &err) : kv_map_new(0);
  if (!locals) {
    loc = eval_fmt("%s:spec.locals", location);
    out = eval_error_outcome(&err, loc);
    free(loc);
    kv_unref(vars);
    free(own);
    return out;
  }
  if (locals->kind == KV_NULL) {
    kv_unref(locals);
    locals = kv_map_new(0);
  }
  kv_map_set_str(vars, "locals", locals);
  kv *empty = kv_map_new(0);
  kv *r = koreo_expr_eval_overlay(vf->ret, has_base ? base : empty, vars, &err);
  kv_unref(empty);
  if (!r) {
    loc = eval_fmt("%s:spec.return", location);
    out = eval_error_outcome(&err, loc);
    free(loc);
  } else {
    out = koreo_outcome_ok(r, location);
  }
  kv_unref(vars);
  free(own);
  return out;
}
