/*
 * core/eval/eval_util.c: helpers shared by the evaluators (eval_impl.h):
 * bindings, predicate lists (spec 2.8), expression errors as outcomes,
 * the deep merge of spec 2.4 overlay(), Python-style value text.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "koreo/json.h"

char *eval_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s;
  if (vasprintf(&s, fmt, ap) < 0) kv_oom();
  va_end(ap);
  return s;
}

kv *eval_vars(const char *n1, const kv *v1, const char *n2, const kv *v2, const char *n3,
              const kv *v3) {
  kv *m = kv_map_new(4);
  if (n1 && v1) kv_map_set_str(m, n1, kv_ref((kv *)v1));
  if (n2 && v2) kv_map_set_str(m, n2, kv_ref((kv *)v2));
  if (n3 && v3) kv_map_set_str(m, n3, kv_ref((kv *)v3));
  return m;
}

koreo_outcome eval_error_outcome(const koreo_error *err, const char *location) {
  return koreo_outcome_permfail(err->message[0] ? err->message : "Unknown failure evaluating",
                                location);
}

char *eval_text(const kv *v) {
  switch (v->kind) {
  case KV_STRING: return eval_fmt("%s", kv_str(v));
  case KV_NULL: return eval_fmt("None");
  case KV_BOOL: return eval_fmt("%s", v->u.b ? "True" : "False");
  case KV_INT: return eval_fmt("%" PRId64, v->u.i);
  case KV_UINT: return eval_fmt("%" PRIu64, v->u.u);
  case KV_DOUBLE: {
    char b[32];
    kv_double_repr(v->u.d, b);
    return eval_fmt("%s", b);
  }
  default: {
    kv *n = koreo_to_native(v);
    char *s = kv_json_write(n, 0, NULL);
    kv_unref(n);
    return s;
  }
  }
}

kv *eval_deep_merge(const kv *base, const kv *o) {
  if (!o || o->kind != KV_MAP || !base || base->kind != KV_MAP)
    return kv_ref((kv *)(o ? o : kv_null()));
  kv *r = kv_map_new(kv_len(base) + kv_len(o));
  for (size_t i = 0; i < kv_len(base); i++) {
    kv *k = kv_map_key_at(base, i), *bv = kv_map_val_at(base, i);
    const kv *ov = kv_map_get(o, k);
    if (!ov)
      kv_map_set(r, kv_ref(k), kv_ref(bv));
    else if (ov->kind == KV_MAP && bv->kind == KV_MAP)
      kv_map_set(r, kv_ref(k), eval_deep_merge(bv, ov));
    else
      kv_map_set(r, kv_ref(k), kv_ref((kv *)ov));
  }
  for (size_t i = 0; i < kv_len(o); i++) {
    kv *k = kv_map_key_at(o, i);
    if (kv_map_get(base, k)) continue;
    kv_map_set(r, kv_ref(k), kv_ref(kv_map_val_at(o, i)));
  }
  return r;
}

/* The message of a predicate outcome as text ("None" when absent). */
static char *pred_message(const kv *body) {
  const kv *m = body && body->kind == KV_MAP ? kv_map_get_str(body, "message") : NULL;
  return m ? eval_text(m) : NULL;
}

koreo_outcome eval_predicates(const koreo_expr *preds, const kv *vars, const char *location) {
  if (!preds || koreo_expr_is_empty(preds)) return koreo_outcome_ok(NULL, location);
  koreo_error err;
  kv *kept = koreo_expr_eval(preds, vars, &err);
  if (!kept) return eval_error_outcome(&err, location);
  if (kept->kind != KV_LIST) {
    kv_unref(kept);
    return koreo_outcome_make(KOREO_PERMFAIL, 0, location,
                              "Error evaluating `%s`: the predicates did not evaluate to a list",
                              location);
  }
  if (kv_len(kept) == 0) {
    kv_unref(kept);
    return koreo_outcome_ok(NULL, location);
  }
  const kv *p = kv_list_at(kept, 0);
  koreo_outcome o;
  const kv *body;
  if (p->kind == KV_MAP && (body = kv_map_get_str(p, "ok")) && body->kind == KV_MAP) {
    o = koreo_outcome_ok(NULL, location);
  } else if (p->kind == KV_MAP && (body = kv_map_get_str(p, "depSkip"))) {
    char *m = pred_message(body);
    o = koreo_outcome_depskip(m, location);
    free(m);
  } else if (p->kind == KV_MAP && (body = kv_map_get_str(p, "skip"))) {
    char *m = pred_message(body);
    o = koreo_outcome_skip(m, location);
    free(m);
  } else if (p->kind == KV_MAP && (body = kv_map_get_str(p, "retry"))) {
    const kv *d = body->kind == KV_MAP ? kv_map_get_str(body, "delay") : NULL;
    int64_t delay = KOREO_RETRY_DEFAULT_DELAY;
    bool bad = false;
    if (d && d->kind == KV_INT)
      delay = d->u.i;
    else if (d && d->kind == KV_STRING) {
      char *end;
      long long x = strtoll(kv_str(d), &end, 10);
      while (*end == ' ')
        end++;
      if (end == kv_str(d) || *end) bad = true;
      delay = x;
    } else if (d && d->kind == KV_DOUBLE && d->u.d == (double)(int64_t)d->u.d)
      delay = (int64_t)d->u.d;
    else if (d)
      bad = true;
    if (bad) {
      char *t = eval_text(d);
      o = koreo_outcome_make(KOREO_PERMFAIL, 0, location,
                             "Error evaluating `%s`: retry delay '%s' is not an integer", location,
                             t);
      free(t);
    } else {
      char *m = pred_message(body);
      o = koreo_outcome_retry(delay, m, location);
      free(m);
    }
  } else if (p->kind == KV_MAP && (body = kv_map_get_str(p, "permFail"))) {
    char *m = pred_message(body);
    o = koreo_outcome_permfail(m, location);
    free(m);
  } else {
    kv *n = koreo_to_native(p);
    char *j = kv_json_write(n, KV_JSON_SORT_KEYS, NULL);
    o = koreo_outcome_make(KOREO_PERMFAIL, 0, location, "Unknown predicate type: %s", j);
    free(j);
    kv_unref(n);
  }
  kv_unref(kept);
  return o;
}
