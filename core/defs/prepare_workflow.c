/*
 * core/defs/prepare_workflow.c: Workflow prepare (spec 1.4, 6.1): steps
 * with their logic resolved against the registry (captured prepared
 * definitions), refSwitch, forEach, inputs, condition and state compiled,
 * duplicate labels, and the dependency graph from the expressions' member
 * paths (spec 2.9) with the "must come after" ordering rule, which also
 * rules out step cycles and references to unknown steps.
 */
#include <stdlib.h>
#include <string.h>

#include "defs/defs_impl.h"

static void step_fail(kd_prep *p, kdef_step *s, const char *path, const kv *at, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static void step_fail(kd_prep *p, kdef_step *s, const char *path, const kv *at, const char *fmt,
                      ...) {
  va_list ap;
  va_start(ap, fmt);
  char *m = kd_vprintf(fmt, ap);
  va_end(ap);
  char *loc = kd_printf("%s:%s", p->loc, path);
  kd_fail(&s->error, KDEF_O_PERMFAIL, 0, loc, path, at, "%s", m);
  free(loc);
  free(m);
}

/* Resolve `ref`-like {kind, name} (spec 6.1 step 2). */
static void load_logic(kd_prep *p, const kv *spec, const char *path, kdef_logic_ref *lr,
                       bool subscribe) {
  kd_ok(&lr->status);
  const kv *kind = spec && spec->kind == KV_MAP ? kv_map_get_str(spec, "kind") : NULL;
  const kv *name = spec && spec->kind == KV_MAP ? kv_map_get_str(spec, "name") : NULL;
  const char *ks = kind && kind->kind == KV_STRING ? kv_str(kind) : NULL;
  const char *ns = name && name->kind == KV_STRING ? kv_str(name) : NULL;
  kdef_kind k = kdef_kind_from_name(ks);
  char *loc = kd_printf("%s:%s", p->loc, path);
  lr->kind = k;
  if (!ks || !*ks || !ns || !*ns) {
    kd_fail(&lr->status, KDEF_O_PERMFAIL, 0, loc, path, spec, "Missing `kind` or `name` in %s",
            path);
    free(loc);
    return;
  }
  lr->name = kd_strdup(ns);
  if (k != KDEF_VALUE_FUNCTION && k != KDEF_RESOURCE_FUNCTION && k != KDEF_WORKFLOW) {
    kd_fail(&lr->status, KDEF_O_PERMFAIL, 0, loc, path, kind, "Invalid %s kind (%s)", path, ks);
    free(loc);
    return;
  }
  if (subscribe) kd_deps_add(&p->deps, k, ns);
  kdef_definition *d = kd_registry_resolve(p->reg, k, ns);
  if (!d) {
    kd_fail(&lr->status, KDEF_O_RETRY, 15, loc, path, name, "'%s:%s' not cached; will retry.", ks,
            ns);
  } else if (!kdef_outcome_is_ok(&d->status)) {
    kd_fail(&lr->status, KDEF_O_RETRY, 180, loc, path, name,
            "'%s:%s' is not healthy (%s); will retry.", ks, ns,
            d->status.message ? d->status.message : "");
  } else {
    lr->def = kdef_ref(d);
  }
  free(loc);
}

static void free_logic(kdef_logic_ref *lr) {
  free(lr->name);
  kdef_outcome_clear(&lr->status);
  kdef_unref(lr->def);
}

/* Labels referenced through `steps.<label>` member paths of `e`. */
static void add_step_refs(const koreo_expr *e, kv *labels) {
  if (!e) return;
  kv *set = kd_set_new();
  kdef_member_paths(e, set);
  kv *sorted = kd_set_sorted(set);
  kd_paths_names(sorted, "steps", labels);
  kv_unref(sorted);
  kv_unref(set);
}

static void add_parent_keys(const koreo_expr *e, kv *keys) {
  if (!e) return;
  kv *set = kd_set_new();
  kdef_member_paths(e, set);
  for (size_t i = 0; i < kv_len(set); i++) {
    const kv *p = kv_map_key_at(set, i);
    /* "parent" + any char + REST */
    if (kv_len(p) > 7 && strncmp(kv_str(p), "parent", 6) == 0)
      kd_set_add(keys, kv_str(p) + 7, kv_len(p) - 7);
  }
  kv_unref(set);
}

/* load_step of spec 6.1; `known` is the map label -> index of earlier
 * steps. */
static void load_step(kd_prep *p, const kv *spec, size_t idx, kdef_step *s, const kv *known,
                      kv *parent_keys) {
  char path[128], sub[192];
  snprintf(path, sizeof path, "spec.steps[%zu]", idx);
  kd_ok(&s->error);
  s->default_case = -1;
  const kv *ref = kv_map_get_str(spec, "ref");
  const kv *sw = kv_map_get_str(spec, "refSwitch");
  if (ref && sw) {
    step_fail(p, s, path, spec, "Can not specify both `ref` and `refSwitch` in step '%s'",
              s->label);
    return;
  }
  if (!ref && !sw) {
    step_fail(p, s, path, spec, "One of `ref` or `refSwitch` is required in step '%s'", s->label);
    return;
  }
  if (ref) {
    snprintf(sub, sizeof sub, "%s.ref", path);
    load_logic(p, ref, sub, &s->ref, true);
    if (!kdef_outcome_is_ok(&s->ref.status)) {
      kdef_outcome_copy(&s->error, &s->ref.status);
      return;
    }
  } else {
    s->is_switch = true;
    snprintf(sub, sizeof sub, "%s.refSwitch.switchOn", path);
    const kv *on = sw->kind == KV_MAP ? kv_map_get_str(sw, "switchOn") : NULL;
    const kv *cases = sw->kind == KV_MAP ? kv_map_get_str(sw, "cases") : NULL;
    if (!on || !koreo_truthy(on)) {
      step_fail(p, s, sub, sw, "Missing `refSwitch.switchOn` in step '%s'", s->label);
      return;
    }
    if (!kd_compile(p, on, KOREO_SHAPE_EXPRESSION, sub, &s->error, &s->switch_on)) return;
    snprintf(sub, sizeof sub, "%s.refSwitch.cases", path);
    if (!cases || cases->kind != KV_LIST || kv_len(cases) == 0) {
      step_fail(p, s, sub, cases ? cases : sw,
                "At least one case is required in `refSwitch.cases` of step '%s'", s->label);
      return;
    }
    /* structural checks first: two defaults drop all subscriptions */
    int ndef = 0;
    for (size_t i = 0; i < kv_len(cases); i++) {
      const kv *c = kv_list_at(cases, i);
      const kv *dflt = c->kind == KV_MAP ? kv_map_get_str(c, "default") : NULL;
      if (dflt && dflt->kind == KV_BOOL && dflt->u.b && ++ndef > 1) {
        snprintf(sub, sizeof sub, "%s.refSwitch.cases[%zu].default", path, i);
        step_fail(p, s, sub, c, "Only one case in `refSwitch` of step '%s' may be default",
                  s->label);
        return;
      }
    }
    s->n_cases = kv_len(cases);
    s->cases = calloc(s->n_cases, sizeof *s->cases);
    if (!s->cases) kv_oom();
    kdef_outcome combined;
    memset(&combined, 0, sizeof combined);
    kd_ok(&combined);
    for (size_t i = 0; i < s->n_cases; i++) {
      const kv *c = kv_list_at(cases, i);
      kdef_switch_case *sc = &s->cases[i];
      snprintf(sub, sizeof sub, "%s.refSwitch.cases[%zu]", path, i);
      const kv *cv = c->kind == KV_MAP ? kv_map_get_str(c, "case") : NULL;
      sc->value = cv ? kd_text(cv) : kd_strdup("");
      const kv *dflt = c->kind == KV_MAP ? kv_map_get_str(c, "default") : NULL;
      sc->is_default = dflt && dflt->kind == KV_BOOL && dflt->u.b;
      if (sc->is_default) s->default_case = (int)i;
      load_logic(p, c, sub, &sc->logic, true);
      kd_combine_errors(&combined, &sc->logic.status);
    }
    if (!kdef_outcome_is_ok(&combined)) {
      kdef_outcome_clear(&s->error);
      s->error = combined;
      return;
    }
  }
  snprintf(sub, sizeof sub, "%s.skipIf", path);
  if (!kd_compile(p, kv_map_get_str(spec, "skipIf"), KOREO_SHAPE_EXPRESSION, sub, &s->error,
                  &s->skip_if))
    return;
  const kv *fe = kv_map_get_str(spec, "forEach");
  if (fe) {
    s->has_for_each = true;
    const kv *in = fe->kind == KV_MAP ? kv_map_get_str(fe, "itemIn") : NULL;
    const kv *key = fe->kind == KV_MAP ? kv_map_get_str(fe, "inputKey") : NULL;
    snprintf(sub, sizeof sub, "%s.forEach.itemIn", path);
    if (!in || !koreo_truthy(in)) {
      step_fail(p, s, sub, in ? in : fe, "Empty `forEach.itemIn` in step '%s'", s->label);
      return;
    }
    if (!kd_compile(p, in, KOREO_SHAPE_EXPRESSION, sub, &s->error, &s->for_each_item_in)) {
      char *m = kd_printf("Error preparing `forEach.itemIn` in step '%s': %s", s->label,
                          s->error.message);
      free(s->error.message);
      s->error.message = m;
      return;
    }
    snprintf(sub, sizeof sub, "%s.forEach.inputKey", path);
    if (!key || key->kind != KV_STRING || kv_len(key) == 0) {
      step_fail(p, s, sub, key ? key : fe, "Missing `forEach.inputKey` in step '%s'", s->label);
      return;
    }
    s->for_each_input_key = kd_strdup(kv_str(key));
  }
  snprintf(sub, sizeof sub, "%s.inputs", path);
  if (!kd_compile(p, kv_map_get_str(spec, "inputs"), KOREO_SHAPE_MAP, sub, &s->error, &s->inputs))
    return;
  const kv *cond = kv_map_get_str(spec, "condition");
  if (cond && cond->kind == KV_MAP) {
    const kv *t = kv_map_get_str(cond, "type"), *n = kv_map_get_str(cond, "name");
    if (t && n) {
      s->has_condition = true;
      s->condition_type = kd_text(t);
      s->condition_name = kd_text(n);
    }
  }
  snprintf(sub, sizeof sub, "%s.state", path);
  if (!kd_compile(p, kv_map_get_str(spec, "state"), KOREO_SHAPE_MAP, sub, &s->error, &s->state))
    return;
  /* dependencies and the ordering rule (step 8) */
  kv *labels = kd_set_new();
  add_step_refs(s->switch_on, labels);
  add_step_refs(s->skip_if, labels);
  add_step_refs(s->for_each_item_in, labels);
  add_step_refs(s->inputs, labels);
  add_step_refs(s->state, labels);
  add_parent_keys(s->switch_on, parent_keys);
  add_parent_keys(s->skip_if, parent_keys);
  add_parent_keys(s->for_each_item_in, parent_keys);
  add_parent_keys(s->inputs, parent_keys);
  kv *sorted = kd_set_sorted(labels);
  kv_unref(labels);
  kd_buf bad = {0};
  size_t nbad = 0;
  for (size_t i = 0; i < kv_len(sorted); i++) {
    const kv *l = kv_list_at(sorted, i);
    if (!kv_map_get(known, l)) kd_buf_printf(&bad, "%s%s", nbad++ ? ", " : "", kv_str(l));
  }
  if (nbad) {
    step_fail(p, s, path, spec, "Step '%s', must come after %s.", s->label, bad.p);
    free(bad.p);
    kv_unref(sorted);
    return;
  }
  s->n_deps = kv_len(sorted);
  if (s->n_deps) {
    s->dep_labels = calloc(s->n_deps, sizeof *s->dep_labels);
    s->dep_index = calloc(s->n_deps, sizeof *s->dep_index);
    if (!s->dep_labels || !s->dep_index) kv_oom();
    /* sort by step index */
    for (size_t i = 0; i < s->n_deps; i++) {
      const kv *l = kv_list_at(sorted, i);
      size_t ix = (size_t)kv_map_get(known, l)->u.i;
      size_t j = i;
      while (j > 0 && s->dep_index[j - 1] > ix) {
        s->dep_index[j] = s->dep_index[j - 1];
        s->dep_labels[j] = s->dep_labels[j - 1];
        j--;
      }
      s->dep_index[j] = ix;
      s->dep_labels[j] = kd_strdup(kv_str(l));
    }
  }
  kv_unref(sorted);
}

void kd_prepare_workflow(kd_prep *p) {
  kdef_definition *d = p->def;
  kdef_workflow *wf = &d->u.wf;
  const kv *spec = d->spec;
  kd_ok(&wf->steps_ready);
  const kv *crd = kv_map_get_str(spec, "crdRef");
  if (crd && crd->kind == KV_MAP) {
    const kv *g = kv_map_get_str(crd, "apiGroup"), *v = kv_map_get_str(crd, "version"),
             *k = kv_map_get_str(crd, "kind");
    if (g && v && k && koreo_truthy(g) && koreo_truthy(v) && koreo_truthy(k)) {
      wf->has_crd_ref = true;
      wf->crd_api_group = kd_text(g);
      wf->crd_version = kd_text(v);
      wf->crd_kind = kd_text(k);
    }
  }
  const kv *steps = kv_map_get_str(spec, "steps");
  kv *known = kv_map_new(8);
  kv *parent_keys = kd_set_new();
  size_t n = steps && steps->kind == KV_LIST ? kv_len(steps) : 0;
  if (n) {
    wf->steps = calloc(n, sizeof *wf->steps);
    if (!wf->steps) kv_oom();
  }
  wf->n_steps = n;
  for (size_t i = 0; i < n; i++) {
    const kv *ss = kv_list_at(steps, i);
    kdef_step *s = &wf->steps[i];
    const kv *lv = ss->kind == KV_MAP ? kv_map_get_str(ss, "label") : NULL;
    s->label = lv ? kd_text(lv) : kd_printf("step%zu", i);
    s->default_case = -1;
    kd_ok(&s->error);
    kd_ok(&s->ref.status);
    if (kv_map_get_str(known, s->label)) {
      char path[64];
      snprintf(path, sizeof path, "spec.steps[%zu].label", i);
      step_fail(p, s, path, lv ? lv : ss, "Duplicate step-label (%s) can not prepare Workflow.",
                s->label);
    } else {
      load_step(p, ss, i, s, known, parent_keys);
      kv_map_set_str(known, s->label, kv_int((int64_t)i));
    }
    kd_combine_errors(&wf->steps_ready, &s->error);
  }
  if (n == 0) {
    char *loc = kd_printf("%s:spec.steps", p->loc);
    kd_fail(&wf->steps_ready, KDEF_O_PERMFAIL, 0, loc, "spec.steps", steps ? steps : spec,
            "No steps specified Workflow at least one step in 'spec.steps' is "
            "required.");
    free(loc);
  }
  wf->parent_keys = kd_set_sorted(parent_keys);
  kv_unref(parent_keys);
  kv_unref(known);
}

void kd_free_workflow(kdef_workflow *wf) {
  kdef_outcome_clear(&wf->steps_ready);
  for (size_t i = 0; i < wf->n_steps; i++) {
    kdef_step *s = &wf->steps[i];
    free(s->label);
    kdef_outcome_clear(&s->error);
    free_logic(&s->ref);
    koreo_expr_free(s->switch_on);
    for (size_t c = 0; c < s->n_cases; c++) {
      free(s->cases[c].value);
      free_logic(&s->cases[c].logic);
    }
    free(s->cases);
    koreo_expr_free(s->skip_if);
    koreo_expr_free(s->for_each_item_in);
    free(s->for_each_input_key);
    koreo_expr_free(s->inputs);
    free(s->condition_type);
    free(s->condition_name);
    koreo_expr_free(s->state);
    for (size_t k = 0; k < s->n_deps; k++)
      free(s->dep_labels[k]);
    free(s->dep_labels);
    free(s->dep_index);
  }
  free(wf->steps);
  free(wf->crd_api_group);
  free(wf->crd_version);
  free(wf->crd_kind);
  kv_unref(wf->parent_keys);
}

/* kdef_step_switch_case: see definition.h (spec 6.5). */
const kdef_switch_case *kdef_step_switch_case(const kdef_step *s, const kv *value) {
  if (value && value->kind == KV_STRING) {
    for (size_t i = s->n_cases; i-- > 0;)
      if (strcmp(s->cases[i].value, kv_str(value)) == 0) return &s->cases[i];
  }
  return s->default_case >= 0 ? &s->cases[s->default_case] : NULL;
}
