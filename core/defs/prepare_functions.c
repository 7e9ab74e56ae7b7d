/*
 * core/defs/prepare_functions.c: prepare of ValueFunction (spec 1.1),
 * ResourceFunction (spec 1.2, overlays prepared leniently) and
 * ResourceTemplate (spec 1.3), and the shared expression-compile helper
 * that turns a koreo_expr prepare error into a positioned PermFail.
 */
#include <stdlib.h>
#include <string.h>

#include "defs/defs_impl.h"

/* ---- compile helper
 * ----------------------------------------------------------- */

/* Find the first `=` string leaf of `v` that does not compile on its own,
 * to point the diagnostic at it: fills `path` (suffix) and returns it. */
static const kv *bad_leaf(const cel_env *env, const kv *v, kd_buf *path) {
  if (v->kind == KV_STRING) {
    if (kv_len(v) == 0 || kv_str(v)[0] != '=') return NULL;
    koreo_error err;
    koreo_expr *e = koreo_expr_prepare(env, v, KOREO_SHAPE_EXPRESSION, NULL, &err);
    if (e) {
      koreo_expr_free(e);
      return NULL;
    }
    return v;
  }
  size_t plen = path->len;
  if (v->kind == KV_MAP) {
    for (size_t i = 0; i < kv_len(v); i++) {
      const kv *k = kv_map_key_at(v, i);
      if (k->kind == KV_STRING)
        kd_buf_printf(path, ".%s", kv_str(k));
      else
        kd_buf_puts(path, ".?");
      const kv *r = bad_leaf(env, kv_map_val_at(v, i), path);
      if (r) return r;
      path->len = plen;
      path->p[plen] = 0;
    }
  } else if (v->kind == KV_LIST) {
    for (size_t i = 0; i < kv_len(v); i++) {
      kd_buf_printf(path, "[%zu]", i);
      const kv *r = bad_leaf(env, kv_list_at(v, i), path);
      if (r) return r;
      path->len = plen;
      path->p[plen] = 0;
    }
  }
  return NULL;
}

bool kd_compile(kd_prep *p, const kv *spec, koreo_shape shape, const char *field, kdef_outcome *o,
                koreo_expr **out) {
  *out = NULL;
  if (!spec) return true;
  /* falsy specs: no expression (a non-map/non-list falsy value still gets
   * the shape check) */
  bool falsy = !koreo_truthy(spec);
  if (falsy && (spec->kind == KV_NULL || spec->kind == KV_MAP || spec->kind == KV_LIST ||
                shape == KOREO_SHAPE_EXPRESSION))
    return true;
  char *loc = kd_printf("%s:%s", p->loc + strlen("prepare:"), field);
  koreo_error err;
  koreo_expr *e = koreo_expr_prepare(p->env, spec, shape, loc, &err);
  free(loc);
  if (!e) {
    kd_buf path = {0};
    kd_buf_puts(&path, field);
    const kv *leaf = bad_leaf(p->env, spec, &path);
    char *oloc = kd_printf("%s:%s", p->loc, field);
    kd_fail(o, KDEF_O_PERMFAIL, 0, oloc, path.p, leaf ? leaf : spec, "%s", err.message);
    free(oloc);
    free(path.p);
    return false;
  }
  if (koreo_expr_is_empty(e)) {
    koreo_expr_free(e);
    return true;
  }
  *out = e;
  return true;
}

static void fail_at(kd_prep *p, kdef_outcome *o, const char *field, const kv *at, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
static void fail_at(kd_prep *p, kdef_outcome *o, const char *field, const kv *at, const char *fmt,
                    ...) {
  va_list ap;
  va_start(ap, fmt);
  char *m = kd_vprintf(fmt, ap);
  va_end(ap);
  char *loc = kd_printf("%s:%s", p->loc, field);
  kd_fail(o, KDEF_O_PERMFAIL, 0, loc, field, at, "%s", m);
  free(loc);
  free(m);
}

static int64_t int_of(const kv *v, int64_t dflt) {
  if (!v) return dflt;
  if (v->kind == KV_INT) return v->u.i;
  if (v->kind == KV_UINT) return (int64_t)v->u.u;
  if (v->kind == KV_DOUBLE) return (int64_t)v->u.d;
  return dflt;
}

static bool bool_of(const kv *v, bool dflt) {
  if (!v || v->kind != KV_BOOL) return dflt;
  return v->u.b;
}

static const char *str_of(const kv *v) { return v && v->kind == KV_STRING ? kv_str(v) : NULL; }

static void add_paths(kv *set, const koreo_expr *e) { kdef_member_paths(e, set); }

/* ---- ValueFunction (spec 1.1)
 * --------------------------------------------------- */

void kd_prepare_value_function(kd_prep *p) {
  kdef_definition *d = p->def;
  kdef_value_function *vf = &d->u.vf;
  const kv *spec = d->spec;
  kdef_outcome *o = &d->status;
  if (!kd_compile(p, kv_map_get_str(spec, "preconditions"), KOREO_SHAPE_PREDICATES,
                  "spec.preconditions", o, &vf->preconditions))
    return;
  if (!kd_compile(p, kv_map_get_str(spec, "locals"), KOREO_SHAPE_MAP, "spec.locals", o,
                  &vf->locals))
    return;
  if (!kd_compile(p, kv_map_get_str(spec, "return"), KOREO_SHAPE_OVERLAY, "spec.return", o,
                  &vf->ret))
    return;
  kv *set = kd_set_new();
  add_paths(set, vf->preconditions);
  add_paths(set, vf->locals);
  add_paths(set, vf->ret);
  vf->member_paths = kd_set_sorted(set);
  kv_unref(set);
  kv *names = kd_set_new();
  kd_paths_names(vf->member_paths, "inputs", names);
  vf->input_names = kd_set_sorted(names);
  kv_unref(names);
}

void kd_free_value_function(kdef_value_function *vf) {
  koreo_expr_free(vf->preconditions);
  koreo_expr_free(vf->locals);
  koreo_expr_free(vf->ret);
  kv_unref(vf->member_paths);
  kv_unref(vf->input_names);
}

/* ---- ResourceTemplate (spec 1.3)
 * ------------------------------------------------- */

void kd_prepare_resource_template(kd_prep *p) {
  kdef_definition *d = p->def;
  const kv *tpl = kv_map_get_str(d->spec, "template");
  const kv *ctx = kv_map_get_str(d->spec, "context");
  if (!tpl || tpl->kind != KV_MAP || kv_len(tpl) == 0) {
    fail_at(p, &d->status, "spec.template", tpl ? tpl : d->spec,
            "`spec.template` must be a non-empty object");
    return;
  }
  const char *av = str_of(kv_map_get_str(tpl, "apiVersion"));
  const char *k = str_of(kv_map_get_str(tpl, "kind"));
  if (!av || !*av || !k || !*k) {
    fail_at(p, &d->status, "spec.template", tpl,
            "`apiVersion` and `kind` must be set within `spec.template`");
    return;
  }
  if (ctx && ctx->kind != KV_MAP) {
    fail_at(p, &d->status, "spec.context", ctx, "`spec.context` must be an object");
    return;
  }
  d->u.rt.template_ = kv_ref((kv *)tpl);
  d->u.rt.context = ctx ? kv_ref((kv *)ctx) : NULL;
}

void kd_free_resource_template(kdef_resource_template *rt) {
  kv_unref(rt->template_);
  kv_unref(rt->context);
}

/* ---- ResourceFunction (spec 1.2)
 * ----------------------------------------------- */

/* "a", "b" of the keys of `m` other than those in `allowed` (NULL-ended),
 * or NULL when none. */
static char *extra_keys(const kv *m, const char *const *allowed) {
  kd_buf b = {0};
  for (size_t i = 0; i < kv_len(m); i++) {
    const kv *k = kv_map_key_at(m, i);
    const char *ks = k->kind == KV_STRING ? kv_str(k) : "?";
    bool ok = false;
    for (const char *const *a = allowed; *a && !ok; a++)
      ok = strcmp(*a, ks) == 0;
    if (!ok) kd_buf_printf(&b, "%s`%s`", b.len ? ", " : "", ks);
  }
  return b.p;
}

static void prepare_overlay(kd_prep *p, const kv *entry, size_t i, kdef_overlay *ov) {
  char field[64];
  snprintf(field, sizeof field, "spec.overlays[%zu]", i);
  char sub[96];
  kdef_outcome *o = &ov->status;
  kd_ok(o);
  if (entry->kind != KV_MAP) {
    fail_at(p, o, field, entry, "Invalid overlays spec: %s", "expected a mapping");
    return;
  }
  const kv *inline_ov = kv_map_get_str(entry, "overlay");
  const kv *ref = kv_map_get_str(entry, "overlayRef");
  const kv *skip = kv_map_get_str(entry, "skipIf");
  snprintf(sub, sizeof sub, "%s.skipIf", field);
  if (!kd_compile(p, skip, KOREO_SHAPE_EXPRESSION, sub, o, &ov->skip_if)) return;
  if (inline_ov) {
    static const char *const allowed[] = {"overlay", "skipIf", NULL};
    char *extra = extra_keys(entry, allowed);
    if (extra) {
      fail_at(p, o, field, entry, "may not specify %s with overlay", extra);
      free(extra);
      return;
    }
    snprintf(sub, sizeof sub, "%s.overlay", field);
    if (inline_ov->kind == KV_MAP && kv_len(inline_ov) == 0) {
      fail_at(p, o, sub, inline_ov, "Empty inline overlay (%s)", sub);
      return;
    }
    if (!kd_compile(p, inline_ov, KOREO_SHAPE_OVERLAY, sub, o, &ov->overlay)) return;
    if (!ov->overlay) {
      fail_at(p, o, sub, inline_ov, "Empty inline overlay (%s)", sub);
      return;
    }
    return;
  }
  if (ref) {
    ov->is_ref = true;
    const char *name = ref->kind == KV_MAP ? str_of(kv_map_get_str(ref, "name")) : NULL;
    if (name) {
      ov->vf_name = kd_strdup(name);
      kd_deps_add(&p->deps, KDEF_VALUE_FUNCTION, name);
    }
    static const char *const allowed[] = {"overlayRef", "inputs", "skipIf", NULL};
    char *extra = extra_keys(entry, allowed);
    if (extra) {
      fail_at(p, o, field, entry, "may not specify %s with overlayRef", extra);
      free(extra);
      return;
    }
    snprintf(sub, sizeof sub, "%s.overlayRef.name", field);
    if (!name || !*name) {
      fail_at(p, o, sub, ref, "Invalid overlays spec: `overlayRef.name` is required");
      return;
    }
    const kv *inputs = kv_map_get_str(entry, "inputs");
    snprintf(sub, sizeof sub, "%s.inputs", field);
    if (inputs && inputs->kind != KV_MAP) {
      fail_at(p, o, sub, inputs, "Malformed %s, expected a mapping", sub);
      return;
    }
    if (!kd_compile(p, inputs, KOREO_SHAPE_MAP, sub, o, &ov->inputs)) return;
    kdef_definition *vf = kd_registry_resolve(p->reg, KDEF_VALUE_FUNCTION, name);
    if (!vf || !kdef_outcome_is_ok(&vf->status)) {
      char *cached = vf ? kdef_outcome_text(&vf->status) : kd_strdup("None");
      char *loc = kd_printf("%s:%s.overlayRef", p->loc, field);
      snprintf(sub, sizeof sub, "%s.overlayRef", field);
      kd_fail(o, KDEF_O_RETRY, 60, loc, sub, ref, "ValueFunction:%s not ready (%s)", name, cached);
      free(loc);
      free(cached);
      return;
    }
    /* required inputs: every inputs.<k> the ValueFunction reads */
    kd_buf missing = {0};
    const kv *need = vf->u.vf.input_names;
    for (size_t k = 0; k < kv_len(need); k++) {
      const kv *nk = kv_list_at(need, k);
      if (inputs && kv_map_get(inputs, nk)) continue;
      kd_buf_printf(&missing, "%s\"%s\"", missing.len ? ", " : "", kv_str(nk));
    }
    if (missing.len) {
      fail_at(p, o, sub, inputs ? inputs : entry, "%s expected the following inputs %s.", name,
              missing.p);
      free(missing.p);
      return;
    }
    ov->vf = kdef_ref(vf);
    return;
  }
  char *j = kd_json(entry);
  fail_at(p, o, field, entry, "Invalid overlays spec: %s", j);
  free(j);
}

void kd_prepare_resource_function(kd_prep *p) {
  kdef_definition *d = p->def;
  kdef_resource_function *rf = &d->u.rf;
  const kv *spec = d->spec;
  kdef_outcome *o = &d->status;
  if (!kd_compile(p, kv_map_get_str(spec, "preconditions"), KOREO_SHAPE_PREDICATES,
                  "spec.preconditions", o, &rf->preconditions))
    return;
  if (!kd_compile(p, kv_map_get_str(spec, "locals"), KOREO_SHAPE_MAP, "spec.locals", o,
                  &rf->locals))
    return;
  /* apiConfig */
  const kv *api = kv_map_get_str(spec, "apiConfig");
  if (!api || api->kind != KV_MAP) {
    fail_at(p, o, "spec.apiConfig", api ? api : spec, "`spec.apiConfig` is required");
    return;
  }
  const char *av = str_of(kv_map_get_str(api, "apiVersion"));
  const char *kind = str_of(kv_map_get_str(api, "kind"));
  const kv *name = kv_map_get_str(api, "name");
  if (!av || !*av || !kind || !*kind || !name || !koreo_truthy(name)) {
    fail_at(p, o, "spec.apiConfig", api,
            "`apiVersion`, `kind` and `name` are required in `spec.apiConfig`");
    return;
  }
  rf->api.api_version = kd_strdup(av);
  rf->api.kind = kd_strdup(kind);
  const char *plural = str_of(kv_map_get_str(api, "plural"));
  rf->api.plural = plural && *plural ? kd_strdup(plural) : NULL;
  rf->api.namespaced = bool_of(kv_map_get_str(api, "namespaced"), true);
  rf->api.owned = bool_of(kv_map_get_str(api, "owned"), true);
  rf->api.readonly = bool_of(kv_map_get_str(api, "readonly"), false);
  rf->api.delete_if_exists = bool_of(kv_map_get_str(api, "deleteIfExists"), false);
  const kv *ns = kv_map_get_str(api, "namespace");
  rf->api.has_namespace = ns && koreo_truthy(ns);
  if (rf->api.namespaced && !rf->api.has_namespace) {
    fail_at(p, o, "spec.apiConfig.namespace", api,
            "`namespace` is required when `spec.apiConfig.namespaced` is `true`");
    return;
  }
  kv *nn = kv_map_new(2);
  kv_map_set_str(nn, "name", kv_ref((kv *)name));
  if (rf->api.has_namespace) kv_map_set_str(nn, "namespace", kv_ref((kv *)ns));
  const kv_srcpos *npos = kv_pos(name);
  if (npos) kv_set_pos(nn, npos->file, npos->line, npos->col);
  bool ok = kd_compile(p, nn, KOREO_SHAPE_MAP, "spec.apiConfig.name", o, &rf->api.name_ns);
  kv_unref(nn);
  if (!ok && o->path && strncmp(o->path, "spec.apiConfig.name.", 20) == 0)
    memmove(o->path + 15, o->path + 20, strlen(o->path + 20) + 1); /* ...name.namespace */
  if (!ok) return;
  /* resource / resourceTemplateRef */
  const kv *res = kv_map_get_str(spec, "resource");
  const kv *tref = kv_map_get_str(spec, "resourceTemplateRef");
  if (tref) {
    rf->uses_template = true;
    const kv *tn = tref->kind == KV_MAP ? kv_map_get_str(tref, "name") : NULL;
    if (!tn || !koreo_truthy(tn)) {
      fail_at(p, o, "spec.resourceTemplateRef.name", tn ? tn : tref,
              "`name` is required in `spec.resourceTemplateRef`");
      return;
    }
    if (!kd_compile(p, tn, KOREO_SHAPE_EXPRESSION, "spec.resourceTemplateRef.name", o,
                    &rf->template_name))
      return;
  } else if (res) {
    if (!kd_compile(p, res, KOREO_SHAPE_MAP, "spec.resource", o, &rf->resource)) return;
  }
  /* overlays: each entry prepared on its own, failures combined */
  const kv *ovs = kv_map_get_str(spec, "overlays");
  kd_ok(&rf->overlays_status);
  if (ovs && ovs->kind == KV_LIST && kv_len(ovs)) {
    rf->n_overlays = kv_len(ovs);
    rf->overlays = calloc(rf->n_overlays, sizeof *rf->overlays);
    if (!rf->overlays) kv_oom();
    for (size_t i = 0; i < rf->n_overlays; i++) {
      prepare_overlay(p, kv_list_at(ovs, i), i, &rf->overlays[i]);
      kd_combine_errors(&rf->overlays_status, &rf->overlays[i].status);
    }
  }
  /* create */
  const kv *create = kv_map_get_str(spec, "create");
  rf->create_enabled = bool_of(create ? kv_map_get_str(create, "enabled") : NULL, true);
  rf->create_delay = int_of(create ? kv_map_get_str(create, "delay") : NULL, 30);
  if (create && !kd_compile(p, kv_map_get_str(create, "overlay"), KOREO_SHAPE_OVERLAY,
                            "spec.create.overlay", o, &rf->create_overlay))
    return;
  /* update */
  const kv *update = kv_map_get_str(spec, "update");
  rf->update = KDEF_UPDATE_PATCH;
  rf->update_delay = 30;
  if (update) {
    const kv *x;
    if (update->kind == KV_MAP && (x = kv_map_get_str(update, "patch"))) {
      rf->update = KDEF_UPDATE_PATCH;
      rf->update_delay = int_of(x->kind == KV_MAP ? kv_map_get_str(x, "delay") : NULL, 30);
    } else if (update->kind == KV_MAP && (x = kv_map_get_str(update, "recreate"))) {
      rf->update = KDEF_UPDATE_RECREATE;
      rf->update_delay = int_of(x->kind == KV_MAP ? kv_map_get_str(x, "delay") : NULL, 30);
    } else if (update->kind == KV_MAP && kv_map_get_str(update, "never")) {
      rf->update = KDEF_UPDATE_NEVER;
      rf->update_delay = 0;
    } else {
      char *j = kd_json(update);
      fail_at(p, o, "spec.update", update,
              "Malformed spec.update, expected one of `patch`, `recreate` or "
              "`never` (%s)",
              j);
      free(j);
      return;
    }
  }
  if (!kd_compile(p, kv_map_get_str(spec, "postconditions"), KOREO_SHAPE_PREDICATES,
                  "spec.postconditions", o, &rf->postconditions))
    return;
  if (!kd_compile(p, kv_map_get_str(spec, "return"), KOREO_SHAPE_MAP, "spec.return", o, &rf->ret))
    return;
  /* member paths of every expression */
  kv *set = kd_set_new();
  add_paths(set, rf->preconditions);
  add_paths(set, rf->locals);
  add_paths(set, rf->api.name_ns);
  add_paths(set, rf->resource);
  add_paths(set, rf->template_name);
  for (size_t i = 0; i < rf->n_overlays; i++) {
    add_paths(set, rf->overlays[i].skip_if);
    add_paths(set, rf->overlays[i].overlay);
    add_paths(set, rf->overlays[i].inputs);
  }
  add_paths(set, rf->create_overlay);
  add_paths(set, rf->postconditions);
  add_paths(set, rf->ret);
  rf->member_paths = kd_set_sorted(set);
  kv_unref(set);
}

void kd_free_resource_function(kdef_resource_function *rf) {
  koreo_expr_free(rf->preconditions);
  koreo_expr_free(rf->locals);
  free(rf->api.api_version);
  free(rf->api.kind);
  free(rf->api.plural);
  koreo_expr_free(rf->api.name_ns);
  koreo_expr_free(rf->resource);
  koreo_expr_free(rf->template_name);
  for (size_t i = 0; i < rf->n_overlays; i++) {
    kdef_overlay *ov = &rf->overlays[i];
    kdef_outcome_clear(&ov->status);
    koreo_expr_free(ov->skip_if);
    koreo_expr_free(ov->overlay);
    free(ov->vf_name);
    kdef_unref(ov->vf);
    koreo_expr_free(ov->inputs);
  }
  free(rf->overlays);
  kdef_outcome_clear(&rf->overlays_status);
  koreo_expr_free(rf->create_overlay);
  koreo_expr_free(rf->postconditions);
  koreo_expr_free(rf->ret);
  kv_unref(rf->member_paths);
}
