/*
 * core/defs/prepare_test.c: FunctionTest prepare (spec 1.5, 7.1): the
 * function under test captured from the registry (or the DepSkip / cached
 * failure stored in its place), static inputs and current resource, every
 * test case checked (exactly one assertion, types, overlayResource
 * compiled), default labels, and the subscriptions to the function and to
 * the ResourceTemplates it may load.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "defs/defs_impl.h"

static void ft_fail(kd_prep *p, const char *path, const kv *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ft_fail(kd_prep *p, const char *path, const kv *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *m = kd_vprintf(fmt, ap);
  va_end(ap);
  char *loc = kd_printf("FunctionTest:%s:%s", p->def->name, path);
  kd_fail(&p->def->status, KDEF_O_PERMFAIL, 0, loc, path, at, "%s", m);
  free(loc);
  free(m);
}

/* Deep merge of maps (spec 2.4 overlay): keys of `over` replace those of
 * `base`, nested maps merge.  New reference. */
static kv *deep_merge(const kv *base, const kv *over) {
  if (!base || base->kind != KV_MAP || !over || over->kind != KV_MAP)
    return kv_ref((kv *)(over ? over : base));
  kv *m = kv_map_new(kv_len(base) + kv_len(over));
  for (size_t i = 0; i < kv_len(base); i++)
    kv_map_set(m, kv_ref(kv_map_key_at(base, i)), kv_ref(kv_map_val_at(base, i)));
  for (size_t i = 0; i < kv_len(over); i++) {
    const kv *k = kv_map_key_at(over, i);
    const kv *b = kv_map_get(m, k);
    kv_map_set(m, kv_ref((kv *)k), deep_merge(b, kv_map_val_at(over, i)));
  }
  return m;
}

static bool contains_ci(const char *s, const char *needle) {
  size_t n = strlen(needle);
  for (; *s; s++)
    if (strncasecmp(s, needle, n) == 0) return true;
  return false;
}

/* Prepare case `i`; false with the definition's status set on error. */
static bool prepare_case(kd_prep *p, const kv *c, size_t i, kdef_test_case *tc) {
  kdef_function_test *ft = &p->def->u.ft;
  char path[64], sub[128];
  snprintf(path, sizeof path, "spec.testCases[%zu]", i);
  tc->index = (int)i;
  const kv_srcpos *pos = kv_pos(c);
  if (pos) tc->pos = *pos;
  if (c->kind != KV_MAP) {
    ft_fail(p, path, c, "`%s` must be an object", path);
    return false;
  }
  const kv *v = kv_map_get_str(c, "variant");
  tc->variant = v && v->kind == KV_BOOL && v->u.b;
  v = kv_map_get_str(c, "skip");
  tc->skip = v && v->kind == KV_BOOL && v->u.b;
  const kv *label = kv_map_get_str(c, "label");
  char *l = label && koreo_truthy(label) ? kd_text(label) : kd_printf("Test Case %zu", i + 1);
  if (tc->variant && !contains_ci(l, "variant")) {
    tc->label = kd_printf("[variant] %s", l);
    free(l);
  } else
    tc->label = l;
  const kv *x;
  if ((x = kv_map_get_str(c, "inputOverrides"))) {
    if (x->kind != KV_MAP) {
      snprintf(sub, sizeof sub, "%s.inputOverrides", path);
      ft_fail(p, sub, x, "`%s` must be an object", sub);
      return false;
    }
    tc->input_overrides = kv_ref((kv *)x);
  }
  if ((x = kv_map_get_str(c, "currentResource"))) {
    if (x->kind != KV_MAP) {
      snprintf(sub, sizeof sub, "%s.currentResource", path);
      ft_fail(p, sub, x, "`%s` must be an object", sub);
      return false;
    }
    tc->current_resource = kv_ref((kv *)x);
  }
  if ((x = kv_map_get_str(c, "overlayResource"))) {
    snprintf(sub, sizeof sub, "%s.overlayResource", path);
    if (x->kind != KV_MAP) {
      ft_fail(p, sub, x, "`%s` must be an object", sub);
      return false;
    }
    kdef_outcome o;
    memset(&o, 0, sizeof o);
    if (!kd_compile(p, x, KOREO_SHAPE_OVERLAY, sub, &o, &tc->overlay_resource)) {
      kdef_outcome_clear(&p->def->status);
      p->def->status = o;
      free(p->def->status.location);
      p->def->status.location = kd_printf("FunctionTest:%s:%s", p->def->name, sub);
      return false;
    }
  }
  /* assertions, checked in upstream's order */
  int count = 0;
  bool rf = ft->function_kind == KDEF_RESOURCE_FUNCTION;
  if ((x = kv_map_get_str(c, "expectResource"))) {
    snprintf(sub, sizeof sub, "%s.expectResource", path);
    if (!rf) {
      ft_fail(p, sub, x, "`expectResource` is only allowed when testing a ResourceFunction");
      return false;
    }
    if (x->kind != KV_MAP || kv_len(x) == 0) {
      ft_fail(p, sub, x, "`%s` must be a non-empty object", sub);
      return false;
    }
    tc->expect = KDEF_EXPECT_RESOURCE;
    tc->expect_resource = kv_ref((kv *)x);
    count++;
  }
  if ((x = kv_map_get_str(c, "expectOutcome"))) {
    snprintf(sub, sizeof sub, "%s.expectOutcome", path);
    if (x->kind != KV_MAP || kv_len(x) == 0) {
      ft_fail(p, sub, x, "`%s` must be a non-empty object", sub);
      return false;
    }
    static const struct {
      const char *key;
      kdef_outcome_kind kind;
    } keys[] = {{"ok", KDEF_O_OK},
                {"skip", KDEF_O_SKIP},
                {"depSkip", KDEF_O_DEPSKIP},
                {"retry", KDEF_O_RETRY},
                {"permFail", KDEF_O_PERMFAIL}};
    int found = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      const kv *e = kv_map_get_str(x, keys[k].key);
      if (!e) continue;
      found++;
      tc->expect_outcome = keys[k].kind;
      if (keys[k].kind == KDEF_O_OK) {
        if (e->kind != KV_MAP) {
          ft_fail(p, sub, e, "`%s.ok` must be an object", sub);
          return false;
        }
        continue;
      }
      const kv *m = e->kind == KV_MAP ? kv_map_get_str(e, "message") : NULL;
      tc->expect_message = m && m->kind != KV_NULL ? kd_text(m) : kd_strdup("");
      const kv *dl = e->kind == KV_MAP ? kv_map_get_str(e, "delay") : NULL;
      tc->expect_delay = dl && dl->kind == KV_INT      ? dl->u.i
                         : dl && dl->kind == KV_DOUBLE ? (int64_t)dl->u.d
                                                       : 0;
    }
    if (found != 1) {
      ft_fail(p, sub, x,
              "`%s` must contain exactly one of `ok`, `skip`, `depSkip`, "
              "`retry` or `permFail`",
              sub);
      return false;
    }
    tc->expect = KDEF_EXPECT_OUTCOME;
    tc->expect_outcome_spec = kv_ref((kv *)x);
    count++;
  }
  if ((x = kv_map_get_str(c, "expectReturn"))) {
    snprintf(sub, sizeof sub, "%s.expectReturn", path);
    if (x->kind != KV_MAP || kv_len(x) == 0) {
      ft_fail(p, sub, x, "`%s` must be a non-empty object", sub);
      return false;
    }
    tc->expect = KDEF_EXPECT_RETURN;
    tc->expect_return = kv_ref((kv *)x);
    count++;
  }
  if ((x = kv_map_get_str(c, "expectDelete"))) {
    snprintf(sub, sizeof sub, "%s.expectDelete", path);
    if (!rf) {
      ft_fail(p, sub, x, "`expectDelete` is only allowed when testing a ResourceFunction");
      return false;
    }
    if (x->kind != KV_BOOL) {
      ft_fail(p, sub, x, "`%s` must be a boolean", sub);
      return false;
    }
    tc->expect = KDEF_EXPECT_DELETE;
    tc->expect_delete = x->u.b;
    count++;
  }
  if (count != 1) {
    ft_fail(p, path, c,
            "`%s` must contain exactly one assertion (`expectResource`, "
            "`expectReturn`, "
            "`expectOutcome`, or `expectDelete`).",
            path);
    return false;
  }
  return true;
}

/* Subscribe to the templates the function under test may load (7.1). */
static void template_deps(kd_prep *p) {
  kdef_function_test *ft = &p->def->u.ft;
  if (!ft->function || ft->function->kind != KDEF_RESOURCE_FUNCTION) return;
  const kdef_resource_function *rf = &ft->function->u.rf;
  if (!rf->uses_template || !rf->template_name) return;
  kv *set = kd_set_new();
  kdef_member_paths(rf->template_name, set);
  bool constant = kv_len(set) == 0;
  kv_unref(set);
  size_t rounds = constant ? 1 : ft->n_cases;
  for (size_t i = 0; i < rounds; i++) {
    kv *inputs;
    const kv *ov = constant ? NULL : ft->cases[i].input_overrides;
    if (ft->inputs && ov)
      inputs = deep_merge(ft->inputs, ov);
    else if (ft->inputs)
      inputs = kv_ref(ft->inputs);
    else if (ov)
      inputs = kv_ref((kv *)ov);
    else
      inputs = kv_map_new(0);
    kv *vars = kv_map_new(2);
    kv_map_set_str(vars, "inputs", inputs);
    koreo_error err;
    kv *locals = rf->locals ? koreo_expr_eval(rf->locals, vars, &err) : kv_map_new(0);
    if (locals) {
      kv_map_set_str(vars, "locals", locals);
      kv *name = koreo_expr_eval(rf->template_name, constant ? NULL : vars, &err);
      if (name && name->kind == KV_STRING)
        kd_deps_add(&p->deps, KDEF_RESOURCE_TEMPLATE, kv_str(name));
      kv_unref(name);
    }
    kv_unref(vars);
  }
}

void kd_prepare_function_test(kd_prep *p) {
  kdef_definition *d = p->def;
  kdef_function_test *ft = &d->u.ft;
  const kv *spec = d->spec;
  const kv *ref = kv_map_get_str(spec, "functionRef");
  const kv *kind = ref && ref->kind == KV_MAP ? kv_map_get_str(ref, "kind") : NULL;
  const kv *name = ref && ref->kind == KV_MAP ? kv_map_get_str(ref, "name") : NULL;
  if (!kind || kind->kind != KV_STRING || !name || name->kind != KV_STRING || !kv_len(name)) {
    ft_fail(p, "spec.functionRef", ref ? ref : spec, "Missing spec.functionRef.kind or name");
    return;
  }
  ft->function_kind = kdef_kind_from_name(kv_str(kind));
  if (ft->function_kind != KDEF_VALUE_FUNCTION && ft->function_kind != KDEF_RESOURCE_FUNCTION) {
    ft_fail(p, "spec.functionRef.kind", kind, "Invalid functionRef.kind (%s)", kv_str(kind));
    return;
  }
  ft->function_name = kd_strdup(kv_str(name));
  kd_deps_add(&p->deps, ft->function_kind, ft->function_name);
  kdef_definition *fn = kd_registry_resolve(p->reg, ft->function_kind, ft->function_name);
  kd_ok(&ft->function_status);
  if (!fn) {
    char *loc = kd_printf("FunctionTest:%s:spec.functionRef", d->name);
    kd_fail(&ft->function_status, KDEF_O_DEPSKIP, 0, loc, "spec.functionRef", name,
            "%s (%s) not found or not ready, FunctionTest '%s' must wait.",
            kdef_kind_name(ft->function_kind), ft->function_name, d->name);
    free(loc);
  } else if (!kdef_outcome_is_ok(&fn->status)) {
    kdef_outcome_copy(&ft->function_status, &fn->status);
  } else {
    ft->function = kdef_ref(fn);
  }
  const kv *inputs = kv_map_get_str(spec, "inputs");
  if (inputs) {
    if (inputs->kind != KV_MAP) {
      ft_fail(p, "spec.inputs", inputs, "`spec.inputs` must be an object");
      return;
    }
    if (kv_len(inputs)) ft->inputs = kv_ref((kv *)inputs);
  }
  const kv *cur = kv_map_get_str(spec, "currentResource");
  if (cur) ft->current_resource = kv_ref((kv *)cur);
  const kv *cases = kv_map_get_str(spec, "testCases");
  size_t n = cases && cases->kind == KV_LIST ? kv_len(cases) : 0;
  if (n) {
    ft->cases = calloc(n, sizeof *ft->cases);
    if (!ft->cases) kv_oom();
  }
  ft->n_cases = n;
  for (size_t i = 0; i < n; i++)
    if (!prepare_case(p, kv_list_at(cases, i), i, &ft->cases[i])) return;
  template_deps(p);
}

void kd_free_function_test(kdef_function_test *ft) {
  free(ft->function_name);
  kdef_outcome_clear(&ft->function_status);
  kdef_unref(ft->function);
  kv_unref(ft->inputs);
  kv_unref(ft->current_resource);
  for (size_t i = 0; i < ft->n_cases; i++) {
    kdef_test_case *tc = &ft->cases[i];
    free(tc->label);
    kv_unref(tc->input_overrides);
    kv_unref(tc->current_resource);
    koreo_expr_free(tc->overlay_resource);
    kv_unref(tc->expect_resource);
    kv_unref(tc->expect_return);
    free(tc->expect_message);
    kv_unref(tc->expect_outcome_spec);
  }
  free(ft->cases);
}
