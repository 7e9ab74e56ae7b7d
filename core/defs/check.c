/*
 * core/defs/check.c: the checks of `koreoctl validate` beyond prepare
 * (issue 3 item 6): unresolved references (Workflow steps and refSwitch
 * cases, ResourceFunction overlayRefs and constant resourceTemplateRef
 * names, FunctionTest functionRefs), Workflow error steps (ordering rule,
 * duplicate labels, forEach/refSwitch mistakes), failed overlay entries,
 * and the Kubernetes admission rules of the kinds' CRDs, each reported
 * once with its file, line, column and field path.
 */
#include <stdlib.h>
#include <string.h>

#include "defs/defs_impl.h"

typedef struct chk {
  const kdef_registry *r;
  kdef_diags *diags;
  size_t errors;
} chk;

static void add(chk *c, const kdef_definition *d, const kdef_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(chk *c, const kdef_definition *d, const kdef_outcome *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *m = kd_vprintf(fmt, ap);
  va_end(ap);
  kv_srcpos pos = o && (o->pos.file || o->pos.line) ? o->pos : d->pos;
  kd_diag_add(c->diags, pos.file, pos.line, pos.col, d->kind, d->name, o ? o->path : NULL, false,
              "%s", m);
  free(m);
  c->errors++;
}

/* Describe a logic reference failure (spec 6.1 Retry 15 / 180, PermFail). */
static void logic_problem(chk *c, const kdef_definition *d, const char *label,
                          const kdef_logic_ref *lr) {
  const kdef_outcome *o = &lr->status;
  if (kdef_outcome_is_ok(o)) return;
  const char *kn = kdef_kind_name(lr->kind);
  const kdef_definition *t = lr->name ? kdef_registry_lookup(c->r, lr->kind, lr->name) : NULL;
  if (o->kind == KDEF_O_RETRY && !t)
    add(c, d, o, "step '%s' references %s '%s', which is not defined", label, kn, lr->name);
  else if (o->kind == KDEF_O_RETRY && t)
    add(c, d, o, "step '%s' references %s '%s', which failed to prepare: %s", label, kn, lr->name,
        t->status.message ? t->status.message : "");
  else
    add(c, d, o, "step '%s': %s", label, o->message ? o->message : "invalid reference");
}

static void check_workflow(chk *c, const kdef_definition *d) {
  const kdef_workflow *wf = &d->u.wf;
  if (wf->n_steps == 0) {
    add(c, d, &wf->steps_ready, "%s", wf->steps_ready.message);
    return;
  }
  for (size_t i = 0; i < wf->n_steps; i++) {
    const kdef_step *s = &wf->steps[i];
    if (kdef_outcome_is_ok(&s->error)) continue;
    bool described = false;
    if (!s->is_switch && s->ref.name && !kdef_outcome_is_ok(&s->ref.status)) {
      logic_problem(c, d, s->label, &s->ref);
      described = true;
    }
    for (size_t k = 0; k < s->n_cases; k++)
      if (!kdef_outcome_is_ok(&s->cases[k].logic.status)) {
        logic_problem(c, d, s->label, &s->cases[k].logic);
        described = true;
      }
    if (!described) add(c, d, &s->error, "%s", s->error.message ? s->error.message : "bad step");
  }
}

static void check_resource_function(chk *c, const kdef_definition *d) {
  const kdef_resource_function *rf = &d->u.rf;
  for (size_t i = 0; i < rf->n_overlays; i++) {
    const kdef_overlay *ov = &rf->overlays[i];
    if (kdef_outcome_is_ok(&ov->status)) continue;
    const kdef_definition *vf =
        ov->vf_name ? kdef_registry_lookup(c->r, KDEF_VALUE_FUNCTION, ov->vf_name) : NULL;
    if (ov->status.kind == KDEF_O_RETRY && !vf)
      add(c, d, &ov->status, "overlayRef references ValueFunction '%s', which is not defined",
          ov->vf_name);
    else if (ov->status.kind == KDEF_O_RETRY)
      add(c, d, &ov->status, "overlayRef references ValueFunction '%s', which failed to prepare",
          ov->vf_name);
    else
      add(c, d, &ov->status, "%s", ov->status.message);
  }
  if (rf->uses_template && rf->template_name) {
    kv *set = kd_set_new();
    kdef_member_paths(rf->template_name, set);
    bool constant = kv_len(set) == 0;
    kv_unref(set);
    if (constant) {
      koreo_error err;
      kv *name = koreo_expr_eval(rf->template_name, NULL, &err);
      if (name && name->kind == KV_STRING) {
        const kdef_definition *t = kdef_registry_lookup(c->r, KDEF_RESOURCE_TEMPLATE, kv_str(name));
        const kv *tn = kv_map_get_str(d->spec, "resourceTemplateRef");
        tn = tn ? kv_map_get_str(tn, "name") : NULL;
        kdef_outcome at;
        memset(&at, 0, sizeof at);
        at.path = "spec.resourceTemplateRef.name";
        if (kv_pos(tn)) at.pos = *kv_pos(tn);
        if (!t)
          add(c, d, &at,
              "resourceTemplateRef references ResourceTemplate '%s', which is "
              "not "
              "defined",
              kv_str(name));
        else if (!kdef_outcome_is_ok(&t->status))
          add(c, d, &at,
              "resourceTemplateRef references ResourceTemplate '%s', which "
              "failed to "
              "prepare",
              kv_str(name));
      }
      kv_unref(name);
    }
  }
}

static void check_function_test(chk *c, const kdef_definition *d) {
  const kdef_function_test *ft = &d->u.ft;
  if (kdef_outcome_is_ok(&ft->function_status)) return;
  const kdef_definition *f = kdef_registry_lookup(c->r, ft->function_kind, ft->function_name);
  if (!f)
    add(c, d, &ft->function_status, "functionRef references %s '%s', which is not defined",
        kdef_kind_name(ft->function_kind), ft->function_name);
  else
    add(c, d, &ft->function_status, "functionRef references %s '%s', which failed to prepare",
        kdef_kind_name(ft->function_kind), ft->function_name);
}

static bool check_one(kdef_definition *d, void *arg) {
  chk *c = arg;
  c->errors += kd_schema_admission(d, c->diags);
  if (!kdef_outcome_is_ok(&d->status)) return true; /* reported by the loader */
  switch (d->kind) {
  case KDEF_WORKFLOW: check_workflow(c, d); break;
  case KDEF_RESOURCE_FUNCTION: check_resource_function(c, d); break;
  case KDEF_FUNCTION_TEST: check_function_test(c, d); break;
  default: break;
  }
  return true;
}

/* kdef_registry_check: see definition.h. */
size_t kdef_registry_check(const kdef_registry *r, kdef_diags *diags) {
  chk c = {.r = r, .diags = diags};
  kdef_registry_each(r, KDEF_KIND_NONE, check_one, &c);
  return c.errors;
}
