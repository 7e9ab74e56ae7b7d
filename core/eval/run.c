/*
 * core/eval/run.c: resumable runs (eval.h): the ResourceFunction reconcile
 * state machine (spec 5.1-5.11) and the Workflow reconcile (spec 6.2-6.10:
 * dependency scheduling, step execution, refSwitch, forEach, sub-workflows,
 * state, conditions, resource ids), both yielding kube_requests and resumed
 * by answers; plus the synchronous adapter koreo_run_sync.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "koreo/json.h"

typedef struct rf_task rf_task;
typedef struct wf_task wf_task;
typedef struct ra_task ra_task;

/* ---- the run ------------------------------------------------------------ */

struct koreo_run {
  const koreo_eval_ctx *ctx;
  const kdef_definition *def;
  const koreo_owner *owner;
  uint64_t next_id;
  rf_task **pending; /* tasks with an issued, unanswered request, issue order */
  size_t npending, cappending;
  ra_task **applies; /* remote ResourceFunction calls not yet answered, issue order */
  size_t napplies, capapplies;
  bool done;
  rf_task *rf; /* ResourceFunction run */
  wf_task *wf; /* Workflow run */
  koreo_outcome outcome;
  koreo_workflow_result wres;
  koreo_step_report *reports;
};

/* ---- remote ResourceFunction call (ctx->remote_resource_functions) -------- */

struct ra_task {
  koreo_run *run;
  koreo_apply pub; /* what the host sees; strings owned here */
  char *location, *workflow, *step_label;
  kv *inputs;
  bool handed_out, pending, answered;
  koreo_outcome outcome; /* the answer */
  kv *resource_id;
};

static void run_add_apply(koreo_run *r, ra_task *t) {
  if (r->napplies == r->capapplies) {
    r->capapplies = r->capapplies ? 2 * r->capapplies : 8;
    r->applies = realloc(r->applies, r->capapplies * sizeof *r->applies);
    if (!r->applies) kv_oom();
  }
  r->applies[r->napplies++] = t;
  t->pending = true;
}

static void run_remove_apply(koreo_run *r, ra_task *t) {
  if (!t->pending) return;
  for (size_t i = 0; i < r->napplies; i++)
    if (r->applies[i] == t) {
      memmove(&r->applies[i], &r->applies[i + 1], (r->napplies - i - 1) * sizeof *r->applies);
      r->napplies--;
      break;
    }
  t->pending = false;
}

static void ra_free(ra_task *t) {
  if (!t) return;
  run_remove_apply(t->run, t);
  free(t->location);
  free(t->workflow);
  free(t->step_label);
  kv_unref(t->inputs);
  koreo_outcome_clear(&t->outcome);
  kv_unref(t->resource_id);
  free(t);
}

/* ---- ResourceFunction task (spec 5) ------------------------------------- */

typedef enum rf_state {
  RF_START = 0,
  RF_WAIT_GET,
  RF_WAIT_WRITE,
  RF_DONE,
} rf_state;

struct rf_task {
  koreo_run *run;
  const kdef_definition *def;
  const kdef_resource_function *rf;
  char *location;
  kv *inputs;
  kv *vars; /* {inputs, locals} */
  rf_state state;
  char *name, *ns, *plural;
  bool namespaced;
  char *full_name;
  bool should_own;
  /* the outstanding request */
  kube_request req;
  bool has_req, handed_out, has_resp;
  kube_response resp;
  kube_verb write_verb;
  koreo_outcome write_outcome; /* result after a successful write */
  /* results */
  koreo_outcome outcome;
  kv *resource_id;
  kv *resource;
  bool raised;
  char *raise_msg;
  bool cancelled;
};

static void run_add_pending(koreo_run *r, rf_task *t) {
  if (r->npending == r->cappending) {
    r->cappending = r->cappending ? 2 * r->cappending : 8;
    r->pending = realloc(r->pending, r->cappending * sizeof *r->pending);
    if (!r->pending) kv_oom();
  }
  r->pending[r->npending++] = t;
}

static void run_remove_pending(koreo_run *r, rf_task *t) {
  for (size_t i = 0; i < r->npending; i++)
    if (r->pending[i] == t) {
      memmove(&r->pending[i], &r->pending[i + 1], (r->npending - i - 1) * sizeof *r->pending);
      r->npending--;
      return;
    }
}

static char *xdup(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) kv_oom();
  return d;
}

static void rf_issue(rf_task *t, kube_verb verb, kv *body) {
  kube_request_clear(&t->req);
  t->req.id = ++t->run->next_id;
  t->req.verb = verb;
  t->req.api_version = xdup(t->rf->api.api_version);
  t->req.kind = xdup(t->rf->api.kind);
  t->req.plural = xdup(t->plural);
  t->req.namespaced = t->namespaced;
  t->req.ns = xdup(t->ns);
  t->req.name = xdup(t->name);
  t->req.body = body;
  t->has_req = true;
  t->handed_out = false;
  t->has_resp = false;
  run_add_pending(t->run, t);
}

static rf_task *rf_new(koreo_run *run, const kdef_definition *def, const kv *inputs,
                       const char *location) {
  rf_task *t = calloc(1, sizeof *t);
  if (!t) kv_oom();
  t->run = run;
  t->def = def;
  t->rf = &def->u.rf;
  t->location = location ? xdup(location) : eval_fmt("ResourceFunction:%s", def->name);
  t->inputs = inputs && inputs->kind != KV_NULL ? kv_ref((kv *)inputs) : kv_map_new(0);
  return t;
}

static void rf_free(rf_task *t) {
  if (!t) return;
  if (t->has_req) run_remove_pending(t->run, t);
  free(t->location);
  kv_unref(t->inputs);
  kv_unref(t->vars);
  free(t->name);
  free(t->ns);
  free(t->plural);
  free(t->full_name);
  kube_request_clear(&t->req);
  kube_response_clear(&t->resp);
  koreo_outcome_clear(&t->write_outcome);
  koreo_outcome_clear(&t->outcome);
  kv_unref(t->resource_id);
  kv_unref(t->resource);
  free(t->raise_msg);
  free(t);
}

static void rf_finish(rf_task *t, koreo_outcome o) {
  t->outcome = o;
  t->state = RF_DONE;
}

/* A location below the function's: "<loc>:<suffix>". */
static char *sub_loc(const rf_task *t, const char *suffix) {
  return eval_fmt("%s:%s", t->location, suffix);
}

static void rf_fail(rf_task *t, koreo_outcome_kind kind, int64_t delay, const char *suffix,
                    char *msg /* taken */) {
  char *loc = suffix ? sub_loc(t, suffix) : xdup(t->location);
  koreo_outcome o = koreo_outcome_make(kind, delay, loc, "%s", msg);
  free(loc);
  free(msg);
  rf_finish(t, o);
}

static void rf_expr_fail(rf_task *t, const koreo_error *err, const char *suffix) {
  char *loc = sub_loc(t, suffix);
  rf_finish(t, eval_error_outcome(err, loc));
  free(loc);
}

static void rf_raise(rf_task *t, char *msg /* taken */) {
  t->raised = true;
  t->raise_msg = msg;
  t->state = RF_DONE;
  t->outcome = koreo_outcome_make(KOREO_RETRY, 60, t->location,
                                  "Unknown error (%s) running ResourceFunction %s, will retry.",
                                  msg, t->def->name);
}

static void rf_build_resource_id(rf_task *t) {
  kv_unref(t->resource_id);
  kv *id = kv_map_new(7);
  kv_map_set_str(id, "apiVersion", kv_cstring(t->rf->api.api_version));
  kv_map_set_str(id, "kind", kv_cstring(t->rf->api.kind));
  kv_map_set_str(id, "plural", t->plural ? kv_cstring(t->plural) : kv_null());
  kv_map_set_str(id, "name", kv_cstring(t->name));
  if (t->ns) kv_map_set_str(id, "namespace", kv_cstring(t->ns));
  kv_map_set_str(id, "readonly", kv_bool(t->rf->api.readonly));
  kv_map_set_str(id, "resourceFunction", kv_cstring(t->def->name));
  t->resource_id = id;
}

/* Steps 1-2 of spec 5.1 and identity (5.2); then the read (5.3). */
static void rf_start(rf_task *t) {
  const kdef_resource_function *rf = t->rf;
  if (t->def->kind != KDEF_RESOURCE_FUNCTION) {
    rf_fail(
        t, KOREO_PERMFAIL, 0, NULL,
        eval_fmt("%s is a %s, not a ResourceFunction", t->def->name, kdef_kind_name(t->def->kind)));
    return;
  }
  if (!kdef_outcome_is_ok(&t->def->status)) {
    rf_finish(t, koreo_outcome_from_kdef(&t->def->status));
    return;
  }
  kv *vars = eval_vars("inputs", t->inputs, NULL, NULL, NULL, NULL);
  char *loc = sub_loc(t, "spec.preconditions");
  koreo_outcome pre = eval_predicates(rf->preconditions, vars, loc);
  free(loc);
  if (!koreo_outcome_is_ok(&pre)) {
    kv_unref(vars);
    rf_finish(t, pre);
    return;
  }
  koreo_outcome_clear(&pre);
  koreo_error err;
  kv *locals = rf->locals ? koreo_expr_eval(rf->locals, vars, &err) : kv_map_new(0);
  if (!locals) {
    kv_unref(vars);
    rf_expr_fail(t, &err, "spec.locals");
    return;
  }
  if (locals->kind == KV_NULL) {
    kv_unref(locals);
    locals = kv_map_new(0);
  }
  kv_map_set_str(vars, "locals", locals);
  t->vars = vars;

  /* 5.2 identity */
  kv *nn = rf->api.name_ns ? koreo_expr_eval(rf->api.name_ns, vars, &err) : kv_map_new(0);
  if (!nn) {
    rf_expr_fail(t, &err, "spec.apiConfig.name");
    return;
  }
  const kv *name = nn->kind == KV_MAP ? kv_map_get_str(nn, "name") : NULL;
  const kv *ns = nn->kind == KV_MAP ? kv_map_get_str(nn, "namespace") : NULL;
  t->name = eval_text(name ? name : kv_null());
  if (ns && koreo_truthy(ns)) t->ns = eval_text(ns);
  bool no_name = !name || name->kind == KV_NULL || !t->name[0];
  kv_unref(nn);
  if (no_name) {
    rf_fail(t, KOREO_PERMFAIL, 0, "spec.apiConfig.name",
            eval_fmt("`spec.apiConfig.name` evaluated to an empty name for %s", rf->api.kind));
    return;
  }
  const char *bp = NULL;
  bool bns = true;
  if (kube_builtin_type(rf->api.api_version, rf->api.kind, &bp, &bns)) {
    t->plural = xdup(bp);
    t->namespaced = bns;
  } else {
    t->plural = rf->api.plural && rf->api.plural[0] ? xdup(rf->api.plural) : NULL;
    t->namespaced = rf->api.namespaced;
  }
  if (!t->ns && t->namespaced) {
    rf_fail(t, KOREO_PERMFAIL, 0, "spec.apiConfig.namespace",
            eval_fmt("`namespace` is required when `spec.apiConfig.namespaced` "
                     "is `true`"));
    return;
  }
  t->full_name = t->ns ? eval_fmt("%s:%s:%s", rf->api.kind, t->ns, t->name)
                       : eval_fmt("%s:%s", rf->api.kind, t->name);
  const koreo_owner *ow = t->run->owner;
  t->should_own = rf->api.owned && ow && ow->ns && ow->ref && ow->ref->kind == KV_MAP && t->ns &&
                  strcmp(ow->ns, t->ns) == 0;
  if (t->plural) rf_build_resource_id(t);
  rf_issue(t, KUBE_GET, NULL);
  t->state = RF_WAIT_GET;
}

/* Postconditions and return (spec 5.1 steps 4-6) with `object`. */
static void rf_complete(rf_task *t, kv *object /* taken */) {
  t->resource = object;
  kv_map_set_str(t->vars, "resource", kv_ref(object));
  char *loc = sub_loc(t, "spec.postconditions");
  koreo_outcome post = eval_predicates(t->rf->postconditions, t->vars, loc);
  free(loc);
  if (!koreo_outcome_is_ok(&post)) {
    kv_unref(t->resource_id); /* resource id NOT included */
    t->resource_id = NULL;
    rf_finish(t, post);
    return;
  }
  koreo_outcome_clear(&post);
  koreo_error err;
  kv *ret = t->rf->ret ? koreo_expr_eval(t->rf->ret, t->vars, &err) : kv_null();
  if (!ret) {
    rf_expr_fail(t, &err, "spec.return");
    return;
  }
  rf_finish(t, koreo_outcome_ok(ret, t->location));
}

static const char *owner_uid(const kv *ref) {
  const kv *u = ref && ref->kind == KV_MAP ? kv_map_get_str(ref, "uid") : NULL;
  return u && u->kind == KV_STRING ? kv_str(u) : NULL;
}

/* A copy of map `m` (NULL: {}) with `key` = `val` (taken). */
static kv *map_with(const kv *m, const char *key, kv *val) {
  bool ismap = m && m->kind == KV_MAP;
  kv *r = kv_map_new((ismap ? kv_len(m) : 0) + 1);
  if (ismap)
    for (size_t i = 0; i < kv_len(m); i++)
      kv_map_set(r, kv_ref(kv_map_key_at(m, i)), kv_ref(kv_map_val_at(m, i)));
  kv_map_set_str(r, key, val);
  return r;
}

/* ownerReferences of spec 5.9: `existing` (borrowed, may be NULL) plus the
 * owner unless an entry has its uid.  NULL when `existing` is corrupt. */
static kv *owner_refs_plus(const kv *existing, const kv *owner) {
  if (existing && existing->kind != KV_LIST && existing->kind != KV_NULL) return NULL;
  const char *uid = owner_uid(owner);
  size_t n = existing && existing->kind == KV_LIST ? kv_len(existing) : 0;
  kv *l = kv_list_new(n + 1);
  bool have = false;
  for (size_t i = 0; i < n; i++) {
    const kv *e = kv_list_at(existing, i);
    const char *eu = owner_uid(e);
    if (uid && eu && strcmp(uid, eu) == 0) have = true;
    kv_list_push(l, kv_ref((kv *)e));
  }
  if (!have) kv_list_push(l, kv_ref((kv *)owner));
  return l;
}

/* `obj` with metadata.ownerReferences = existing + owner; NULL when the
 * metadata or the list is corrupt. */
static kv *with_owner(const kv *obj, const kv *existing_from, const kv *owner) {
  const kv *md = kv_map_get_str(obj, "metadata");
  if (md && md->kind != KV_MAP) return NULL;
  const kv *emd = existing_from ? kv_map_get_str(existing_from, "metadata") : md;
  if (emd && emd->kind != KV_MAP) return NULL;
  const kv *existing = emd ? kv_map_get_str(emd, "ownerReferences") : NULL;
  kv *refs = owner_refs_plus(existing, owner);
  if (!refs) return NULL;
  return map_with(obj, "metadata", map_with(md, "ownerReferences", refs));
}

/* The forced overlay of spec 5.5. */
static kv *rf_forced(const rf_task *t) {
  kv *md = kv_map_new(2);
  kv_map_set_str(md, "name", kv_cstring(t->name));
  if (t->ns) kv_map_set_str(md, "namespace", kv_cstring(t->ns));
  kv *f = kv_map_new(3);
  kv_map_set_str(f, "apiVersion", kv_cstring(t->rf->api.api_version));
  kv_map_set_str(f, "kind", kv_cstring(t->rf->api.kind));
  kv_map_set_str(f, "metadata", md);
  return f;
}

/* Build the target resource specification (spec 5.5).  Returns the target
 * or NULL after finishing the task with the failure. */
static kv *rf_target(rf_task *t, const kv *forced) {
  const kdef_resource_function *rf = t->rf;
  koreo_error err;
  kv *base;
  if (!rf->uses_template) {
    base = rf->resource ? koreo_expr_eval(rf->resource, t->vars, &err) : kv_map_new(0);
    if (!base) {
      char *loc = eval_fmt("%s:spec.resource", t->full_name);
      rf_finish(t, eval_error_outcome(&err, loc));
      free(loc);
      return NULL;
    }
    if (base->kind == KV_NULL) {
      kv_unref(base);
      base = kv_map_new(0);
    }
    if (base->kind != KV_MAP) {
      rf_fail(t, KOREO_PERMFAIL, 0, "spec.resource",
              eval_fmt("Expected mapping for `spec.resource`, but received %s",
                       kv_kind_name((kv_kind)base->kind)));
      kv_unref(base);
      return NULL;
    }
  } else {
    kv *tn = koreo_expr_eval(rf->template_name, t->vars, &err);
    if (!tn) {
      rf_expr_fail(t, &err, "spec.resourceTemplateRef.name");
      return NULL;
    }
    if (tn->kind != KV_STRING) {
      char *s = eval_text(tn);
      rf_fail(t, KOREO_PERMFAIL, 0, "spec.resourceTemplateRef.name",
              eval_fmt("Expected string, but received %s (%s) for "
                       "`spec.resourceTemplateRef.name`",
                       s, kv_kind_name((kv_kind)tn->kind)));
      free(s);
      kv_unref(tn);
      return NULL;
    }
    const kdef_registry *reg = t->run->ctx ? t->run->ctx->registry : NULL;
    const kdef_definition *rt =
        reg ? kdef_registry_lookup(reg, KDEF_RESOURCE_TEMPLATE, kv_str(tn)) : NULL;
    if (!rt) {
      rf_fail(t, KOREO_RETRY, 30, "spec.resourceTemplateRef",
              eval_fmt("ResourceTemplate:%s not found.", kv_str(tn)));
      kv_unref(tn);
      return NULL;
    }
    if (!kdef_outcome_is_ok(&rt->status)) {
      rf_fail(t, KOREO_RETRY, 30, "spec.resourceTemplateRef",
              eval_fmt("ResourceTemplate:%s is not ready (%s)", kv_str(tn),
                       rt->status.message ? rt->status.message : "None"));
      kv_unref(tn);
      return NULL;
    }
    kv_unref(tn);
    base = kv_ref(rt->u.rt.template_);
  }
  kv *target = eval_deep_merge(base, forced);
  kv_unref(base);

  if (rf->n_overlays > 0) {
    if (!kdef_outcome_is_ok(&rf->overlays_status)) {
      rf_finish(t, koreo_outcome_from_kdef(&rf->overlays_status));
      kv_unref(target);
      return NULL;
    }
    for (size_t i = 0; i < rf->n_overlays; i++) {
      const kdef_overlay *ov = &rf->overlays[i];
      char *suffix = eval_fmt("spec.overlays[%zu]", i);
      if (ov->skip_if && !koreo_expr_is_empty(ov->skip_if)) {
        kv *s = koreo_expr_eval(ov->skip_if, t->vars, &err);
        if (!s || s->kind != KV_BOOL) {
          if (s) {
            char *st = eval_text(s);
            rf_fail(t, KOREO_PERMFAIL, 0, suffix,
                    eval_fmt("Expected boolean from `%s.skipIf`, but received %s", suffix, st));
            free(st);
          } else {
            char *sf = eval_fmt("%s.skipIf", suffix);
            rf_expr_fail(t, &err, sf);
            free(sf);
          }
          kv_unref(s);
          kv_unref(target);
          free(suffix);
          return NULL;
        }
        bool skip = s->u.b;
        kv_unref(s);
        if (skip) {
          free(suffix);
          continue;
        }
      }
      kv *next;
      if (!ov->is_ref) {
        next = koreo_expr_eval_overlay(ov->overlay, target, t->vars, &err);
        if (!next) {
          char *loc = eval_fmt("%s:%s.overlay", t->full_name, suffix);
          rf_finish(t, eval_error_outcome(&err, loc));
          free(loc);
        }
      } else {
        kv *vin = ov->inputs ? koreo_expr_eval(ov->inputs, t->vars, &err) : kv_null();
        if (!vin) {
          char *sf = eval_fmt("%s.inputs", suffix);
          rf_expr_fail(t, &err, sf);
          free(sf);
          next = NULL;
        } else if (!ov->vf) {
          rf_fail(t, KOREO_RETRY, 60, suffix,
                  eval_fmt("ValueFunction:%s not ready (None)", ov->vf_name));
          next = NULL;
        } else {
          char *loc = eval_fmt("%s:%s.overlayRef", t->location, suffix);
          koreo_outcome r = koreo_eval_value_function(ov->vf, vin, target, loc);
          free(loc);
          next = NULL;
          if (!koreo_outcome_is_ok(&r)) {
            rf_finish(t, r);
          } else if (!r.value || r.value->kind != KV_MAP) {
            rf_fail(t, KOREO_PERMFAIL, 0, suffix,
                    eval_fmt("Expected mapping from overlayRef "
                             "ValueFunction:%s, but received "
                             "%s",
                             ov->vf_name,
                             kv_kind_name((kv_kind)(r.value ? r.value->kind : KV_NULL))));
            koreo_outcome_clear(&r);
          } else {
            next = kv_ref(r.value);
            koreo_outcome_clear(&r);
          }
        }
        kv_unref(vin);
      }
      free(suffix);
      kv_unref(target);
      if (!next) return NULL;
      target = next;
    }
    kv *f = eval_deep_merge(target, forced);
    kv_unref(target);
    target = f;
  }
  return target;
}

/* The object was read (or found absent): early exits, target, create or
 * compare/update (spec 5.4-5.8). */
static void rf_after_get(rf_task *t) {
  const kdef_resource_function *rf = t->rf;
  kube_response *resp = &t->resp;
  if (!t->plural && resp->plural[0]) t->plural = xdup(resp->plural);
  switch (resp->status) {
  case KUBE_STATUS_KIND_UNKNOWN:
    rf_fail(t, KOREO_PERMFAIL, 0, "spec.apiConfig.plural",
            eval_fmt("Dynamic kind-plural lookup failed for '%s'. Set plural "
                     "explicitly in "
                     "apiConfig.",
                     rf->api.kind));
    return;
  default: break;
  }
  rf_build_resource_id(t);
  kv *obj = NULL;
  switch (resp->status) {
  case KUBE_STATUS_OK:
    obj = resp->object ? kv_ref(resp->object) : NULL;
    if (!obj || obj->kind != KV_MAP) {
      kv_unref(obj);
      rf_fail(
          t, KOREO_RETRY, 30, "load resource",
          eval_fmt("Failure loading %s %s. (the answer is not an object)", rf->api.kind, t->name));
      return;
    }
    break;
  case KUBE_STATUS_NOT_FOUND: break;
  case KUBE_STATUS_MULTIPLE:
    rf_fail(t, KOREO_RETRY, 30, "load resource",
            eval_fmt("%s/%s resource matched multiple resources.", rf->api.kind, t->name));
    return;
  case KUBE_STATUS_SERVER_ERROR:
    rf_fail(t, KOREO_RETRY, 30, "load resource",
            eval_fmt("ServerError loading %s %s. (%d %s)", rf->api.kind, t->name, resp->http_code,
                     resp->message));
    return;
  default:
    rf_fail(t, KOREO_RETRY, 30, "load resource",
            eval_fmt("Failure loading %s %s. (%s)", rf->api.kind, t->name, resp->message));
    return;
  }

  /* 5.4 early exits */
  if (rf->api.delete_if_exists) {
    if (!obj) {
      rf_complete(t, kv_map_new(0));
      return;
    }
    kv_unref(obj);
    t->write_verb = KUBE_DELETE;
    char *loc = sub_loc(t, "spec.apiConfig.deleteIfExists");
    t->write_outcome = koreo_outcome_make(KOREO_RETRY, 30, loc, "Deleting %s.", t->full_name);
    free(loc);
    rf_issue(t, KUBE_DELETE, NULL);
    t->state = RF_WAIT_WRITE;
    return;
  }
  if (!obj && (rf->api.readonly || !rf->create_enabled)) {
    rf_fail(t, KOREO_RETRY, 30, NULL, eval_fmt("%s not found. Waiting...", t->full_name));
    return;
  }
  if (obj && rf->api.readonly) {
    rf_complete(t, obj);
    return;
  }

  /* 5.5 target */
  kv *forced = rf_forced(t);
  kv *target = rf_target(t, forced);
  if (!target) {
    kv_unref(forced);
    kv_unref(obj);
    return;
  }
  const kv *owner = t->run->owner ? t->run->owner->ref : NULL;
  koreo_error err;

  if (!obj) { /* 5.6 create */
    kv *view = target;
    if (rf->create_overlay && !koreo_expr_is_empty(rf->create_overlay)) {
      view = koreo_expr_eval_overlay(rf->create_overlay, target, t->vars, &err);
      kv_unref(target);
      if (!view) {
        kv_unref(forced);
        rf_expr_fail(t, &err, "spec.create.overlay");
        return;
      }
    }
    kv *v2 = eval_deep_merge(view, forced);
    kv_unref(view);
    kv_unref(forced);
    view = v2;
    kv *native = koreo_to_native(view);
    kv_unref(view);
    if (t->should_own) {
      kv *o = with_owner(native, NULL, owner);
      if (!o) {
        kv_unref(native);
        rf_fail(t, KOREO_PERMFAIL, 0, "spec.create",
                eval_fmt("Corrupt metadata.ownerReferences in the target of %s", t->full_name));
        return;
      }
      kv_unref(native);
      native = o;
    }
    kv *body = koreo_with_last_applied(native);
    kv_unref(native);
    t->write_verb = KUBE_CREATE;
    rf_issue(t, KUBE_CREATE, body);
    t->state = RF_WAIT_WRITE;
    return;
  }

  /* 5.7 compare */
  kv_unref(forced);
  kv *native = koreo_to_native(target);
  kv_unref(target);
  kv *la = NULL;
  const kv *md = kv_map_get_str(obj, "metadata");
  const kv *ann = md && md->kind == KV_MAP ? kv_map_get_str(md, "annotations") : NULL;
  const kv *lat =
      ann && ann->kind == KV_MAP ? kv_map_get_str(ann, KOREO_LAST_APPLIED_ANNOTATION) : NULL;
  if (lat && lat->kind == KV_STRING) {
    kv_parse_error pe;
    la = kv_json_parse(kv_str(lat), kv_len(lat), &pe);
    if (!la) {
      rf_raise(t, eval_fmt("corrupt %s annotation on %s: %s at column %u",
                           KOREO_LAST_APPLIED_ANNOTATION, t->full_name, pe.msg, pe.col));
      kv_unref(native);
      kv_unref(obj);
      return;
    }
  }
  char *differences = NULL;
  bool match = koreo_compare(native, obj, la, &differences);
  kv_unref(la);
  bool owner_reffed = true;
  if (t->should_own) {
    owner_reffed = false;
    const char *uid = owner_uid(owner);
    const kv *refs = md && md->kind == KV_MAP ? kv_map_get_str(md, "ownerReferences") : NULL;
    if ((md && md->kind != KV_MAP) || (refs && refs->kind != KV_LIST && refs->kind != KV_NULL)) {
      free(differences);
      kv_unref(native);
      kv_unref(obj);
      rf_fail(t, KOREO_PERMFAIL, 0, NULL,
              eval_fmt("Corrupt metadata.ownerReferences on %s", t->full_name));
      return;
    }
    for (size_t i = 0; refs && refs->kind == KV_LIST && i < kv_len(refs); i++) {
      const char *eu = owner_uid(kv_list_at(refs, i));
      if (uid && eu && strcmp(uid, eu) == 0) owner_reffed = true;
    }
  }
  const char *diff_text = differences ? differences : "";
  if ((match && owner_reffed) || rf->update == KDEF_UPDATE_NEVER) {
    free(differences);
    kv_unref(native);
    rf_complete(t, obj);
    return;
  }
  if (rf->update == KDEF_UPDATE_RECREATE) {
    char *loc = sub_loc(t, "spec.update.recreate");
    t->write_outcome =
        koreo_outcome_make(KOREO_RETRY, rf->update_delay, loc, "Deleting %s to recreate due to %s.",
                           t->full_name, diff_text);
    free(loc);
    free(differences);
    kv_unref(native);
    kv_unref(obj);
    t->write_verb = KUBE_DELETE;
    rf_issue(t, KUBE_DELETE, NULL);
    t->state = RF_WAIT_WRITE;
    return;
  }
  /* patch */
  if (t->should_own && !owner_reffed) {
    kv *o = with_owner(native, obj, owner);
    kv_unref(native);
    native = o; /* corruption was checked above */
  }
  kv *body = koreo_with_last_applied(native);
  kv_unref(native);
  kv_unref(obj);
  char *loc = sub_loc(t, "spec.update.patch");
  t->write_outcome = koreo_outcome_make(KOREO_RETRY, rf->update_delay, loc,
                                        "Patching `%s` due to %s.", t->full_name, diff_text);
  free(loc);
  free(differences);
  t->write_verb = KUBE_PATCH;
  rf_issue(t, KUBE_PATCH, body);
  t->state = RF_WAIT_WRITE;
}

static void rf_after_write(rf_task *t) {
  kube_response *resp = &t->resp;
  if (t->write_verb == KUBE_CREATE) {
    int64_t delay = t->rf->create_delay;
    if (resp->status == KUBE_STATUS_OK) {
      rf_fail(t, KOREO_RETRY, delay, "spec.create", eval_fmt("Creating %s.", t->full_name));
    } else if (resp->status == KUBE_STATUS_CONFLICT) {
      rf_fail(t, KOREO_RETRY, delay, "spec.create(contention)",
              eval_fmt("Waiting on competing creation of %s.", t->full_name));
    } else if (resp->status == KUBE_STATUS_SERVER_ERROR) {
      rf_fail(t, KOREO_PERMFAIL, 0, "spec.create",
              eval_fmt("Error creating %s: %d %s", t->full_name, resp->http_code, resp->message));
    } else {
      rf_fail(t, KOREO_PERMFAIL, 0, "spec.create",
              eval_fmt("Error creating %s: %s", t->full_name,
                       resp->message[0] ? resp->message : kube_status_name(resp->status)));
    }
    return;
  }
  /* PATCH / DELETE: success (a DELETE of an object already gone counts) */
  if (resp->status == KUBE_STATUS_OK ||
      (t->write_verb == KUBE_DELETE && resp->status == KUBE_STATUS_NOT_FOUND)) {
    rf_finish(t, koreo_outcome_take(&t->write_outcome));
    return;
  }
  rf_raise(t,
           eval_fmt("%s %s failed: %s%s%s", kube_verb_name(t->write_verb), t->full_name,
                    kube_status_name(resp->status), resp->message[0] ? ": " : "", resp->message));
}

/* Make progress; returns true when something changed. */
static bool rf_advance(rf_task *t) {
  switch (t->state) {
  case RF_START: rf_start(t); return true;
  case RF_WAIT_GET:
  case RF_WAIT_WRITE: {
    if (!t->has_resp) return false;
    t->has_resp = false;
    t->has_req = false;
    rf_state was = t->state;
    if (was == RF_WAIT_GET)
      rf_after_get(t);
    else
      rf_after_write(t);
    kube_response_clear(&t->resp);
    return true;
  }
  case RF_DONE: return false;
  }
  return false;
}

static void rf_cancel(rf_task *t) {
  if (t->has_req) run_remove_pending(t->run, t);
  t->has_req = false;
  t->cancelled = true;
  if (t->state != RF_DONE) t->state = RF_DONE;
}

/* ---- Workflow task (spec 6) --------------------------------------------- */

typedef enum lt_type { LT_NONE = 0, LT_RF, LT_WF, LT_REMOTE } lt_type;

/* One invocation of logic (spec 6.4) that may be asynchronous. */
typedef struct logic_task {
  lt_type type;
  rf_task *rf;
  wf_task *wf;
  ra_task *ra;
  const char *step_label; /* the step this call belongs to (borrowed) */
  long item;              /* forEach index, -1 outside forEach */
  bool done;
  koreo_outcome outcome;
  kv *resource_ids;
  bool raised;
  char *raise_msg;
} logic_task;

typedef enum st_state { ST_WAIT = 0, ST_RUNNING, ST_DONE } st_state;

typedef struct step_task {
  const kdef_step *step;
  size_t index;
  st_state state;
  char *location; /* "<key>.spec.steps.<label>" */
  bool for_each;
  logic_task *items;
  size_t nitems;
  logic_task single;
  koreo_outcome outcome;
  kv *resource_ids;
  bool raised;
  char *raise_msg;
} step_task;

struct wf_task {
  koreo_run *run;
  const kdef_definition *def;
  kv *parent;
  char *key;
  step_task *steps;
  size_t n;
  bool started, done;
  koreo_outcome outcome;
  kv *conditions, *resource_ids, *state, *state_errors;
};

static wf_task *wf_new(koreo_run *run, const kdef_definition *def, const kv *parent,
                       const char *key);
static bool wf_advance(wf_task *w);
static void wf_free(wf_task *w);
static void wf_cancel(wf_task *w);

static void lt_free(logic_task *l) {
  ra_free(l->ra);
  rf_free(l->rf);
  wf_free(l->wf);
  koreo_outcome_clear(&l->outcome);
  kv_unref(l->resource_ids);
  free(l->raise_msg);
  memset(l, 0, sizeof *l);
}

static void lt_finish(logic_task *l, koreo_outcome o, kv *ids /* taken */) {
  l->outcome = o;
  l->resource_ids = ids;
  l->done = true;
}

/* Start logic `ref` with `inputs` (spec 6.4); may finish at once. */
static void lt_start(wf_task *w, logic_task *l, const kdef_logic_ref *ref, const kv *inputs,
                     const char *location) {
  if (!kdef_outcome_is_ok(&ref->status) || !ref->def) {
    koreo_outcome o =
        kdef_outcome_is_ok(&ref->status)
            ? koreo_outcome_make(KOREO_RETRY, 15, location, "'%s:%s' not cached; will retry.",
                                 kdef_kind_name(ref->kind), ref->name)
            : koreo_outcome_from_kdef(&ref->status);
    lt_finish(l, o, NULL);
    return;
  }
  const kdef_definition *d = ref->def;
  switch (d->kind) {
  case KDEF_VALUE_FUNCTION:
    lt_finish(l, koreo_eval_value_function(d, inputs, NULL, location), NULL);
    return;
  case KDEF_RESOURCE_FUNCTION:
    if (w->run->ctx && w->run->ctx->remote_resource_functions) {
      ra_task *t = calloc(1, sizeof *t);
      if (!t) kv_oom();
      t->run = w->run;
      t->location = xdup(location);
      t->workflow = xdup(w->key);
      t->step_label = xdup(l->step_label ? l->step_label : "");
      t->inputs = inputs && inputs->kind != KV_NULL ? kv_ref((kv *)inputs) : kv_map_new(0);
      t->pub.id = ++w->run->next_id;
      t->pub.rf = d;
      t->pub.inputs = t->inputs;
      t->pub.location = t->location;
      t->pub.workflow = t->workflow;
      t->pub.step_label = t->step_label;
      t->pub.in_for_each = l->item >= 0;
      t->pub.for_each_index = l->item >= 0 ? (uint32_t)l->item : 0;
      l->type = LT_REMOTE;
      l->ra = t;
      run_add_apply(w->run, t);
      return;
    }
    l->type = LT_RF;
    l->rf = rf_new(w->run, d, inputs, location);
    return;
  case KDEF_WORKFLOW:
    l->type = LT_WF;
    l->wf = wf_new(w->run, d, inputs, w->key);
    return;
  default:
    lt_finish(l,
              koreo_outcome_make(KOREO_PERMFAIL, 0, location, "Invalid logic kind %s for %s",
                                 kdef_kind_name(d->kind), d->name),
              NULL);
  }
}

/* Advance a logic task; true when something changed. */
static bool lt_advance(logic_task *l) {
  if (l->done) return false;
  bool progress = false;
  if (l->type == LT_RF) {
    while (rf_advance(l->rf))
      progress = true;
    if (l->rf->state == RF_DONE) {
      rf_task *t = l->rf;
      if (t->raised) {
        l->raised = true;
        l->raise_msg = xdup(t->raise_msg);
      }
      lt_finish(l, koreo_outcome_take(&t->outcome), kv_ref(t->resource_id));
      progress = true;
    }
  } else if (l->type == LT_REMOTE) {
    if (l->ra->answered) {
      ra_task *t = l->ra;
      kv *id = t->resource_id;
      t->resource_id = NULL;
      lt_finish(l, koreo_outcome_take(&t->outcome), id);
      progress = true;
    }
  } else if (l->type == LT_WF) {
    while (wf_advance(l->wf))
      progress = true;
    if (l->wf->done) {
      wf_task *s = l->wf;
      koreo_outcome o = koreo_outcome_is_ok(&s->outcome)
                            ? koreo_outcome_ok(kv_ref(s->state), s->outcome.location)
                            : koreo_outcome_copy(&s->outcome);
      lt_finish(l, o, kv_ref(s->resource_ids));
      progress = true;
    }
  }
  return progress;
}

static void lt_cancel(logic_task *l, koreo_outcome timeout) {
  if (l->done) {
    koreo_outcome_clear(&timeout);
    return;
  }
  if (l->rf) rf_cancel(l->rf);
  if (l->wf) wf_cancel(l->wf);
  if (l->ra) run_remove_apply(l->ra->run, l->ra);
  lt_finish(l, timeout, NULL);
}

static void step_finish(step_task *s, koreo_outcome o, kv *ids /* taken */) {
  s->outcome = o;
  s->resource_ids = ids;
  s->state = ST_DONE;
}

/* Resolve the step's logic (ref or refSwitch, spec 6.5) for `inputs` and
 * start it in `l`. */
static void step_start_logic(wf_task *w, step_task *s, logic_task *l, const kv *inputs,
                             const kv *vars) {
  const kdef_step *st = s->step;
  l->step_label = st->label;
  l->item = s->for_each ? (long)(l - s->items) : -1;
  if (!st->is_switch) {
    lt_start(w, l, &st->ref, inputs, s->location);
    return;
  }
  kv *sv = kv_map_new(kv_len(vars) + 1);
  for (size_t i = 0; i < kv_len(vars); i++)
    kv_map_set(sv, kv_ref(kv_map_key_at(vars, i)), kv_ref(kv_map_val_at(vars, i)));
  kv_map_set_str(sv, "inputs", kv_ref((kv *)inputs));
  koreo_error err;
  kv *v = koreo_expr_eval(st->switch_on, sv, &err);
  kv_unref(sv);
  char *loc = eval_fmt("%s.refSwitch.switchOn", s->location);
  if (!v) {
    lt_finish(l, eval_error_outcome(&err, loc), NULL);
    free(loc);
    return;
  }
  if (v->kind != KV_STRING && v->kind != KV_INT) {
    char *t = eval_text(v);
    lt_finish(l,
              koreo_outcome_make(KOREO_PERMFAIL, 0, loc,
                                 "`switchOn` must evaluate to a string or int value, received "
                                 "'%s' (%s)",
                                 t, kv_kind_name((kv_kind)v->kind)),
              NULL);
    free(t);
    free(loc);
    kv_unref(v);
    return;
  }
  free(loc);
  const kdef_switch_case *c = kdef_step_switch_case(st, v);
  char *vt = eval_text(v);
  kv_unref(v);
  if (!c) {
    char *cases = NULL;
    for (size_t i = 0; i < st->n_cases; i++) {
      char *n = cases ? eval_fmt("%s, '%s'", cases, st->cases[i].value)
                      : eval_fmt("'%s'", st->cases[i].value);
      free(cases);
      cases = n;
    }
    lt_finish(l,
              koreo_outcome_make(KOREO_PERMFAIL, 0, s->location,
                                 "`refSwitch` must match one case or a default must be provided, "
                                 "failed to match '%s' (cases: %s).",
                                 vt, cases ? cases : ""),
              NULL);
    free(cases);
    free(vt);
    return;
  }
  char *cl = eval_fmt("%s.refSwitch['%s']", s->location, vt);
  free(vt);
  lt_start(w, l, &c->logic, inputs, cl);
  free(cl);
}

/* Step execution (spec 6.3) once dependencies are done. */
static void step_start(wf_task *w, step_task *s) {
  const kdef_step *st = s->step;
  s->state = ST_RUNNING;
  if (!kdef_outcome_is_ok(&st->error)) {
    step_finish(s, koreo_outcome_from_kdef(&st->error), NULL);
    return;
  }
  kv *vars = kv_map_new(2);
  if (st->n_deps > 0) {
    kv *steps = kv_map_new(st->n_deps);
    for (size_t i = 0; i < st->n_deps; i++) {
      const step_task *d = &w->steps[st->dep_index[i]];
      const koreo_outcome *r = &d->outcome;
      const char *dl = st->dep_labels[i];
      const char *m = r->message ? r->message : "None", *lo = r->location ? r->location : "None";
      const char *tmpl = NULL;
      switch (r->kind) {
      case KOREO_DEPSKIP: tmpl = "'%s' is waiting on dependency (%s at %s)."; break;
      case KOREO_SKIP: tmpl = "'%s' was skipped (%s at %s)."; break;
      case KOREO_RETRY: tmpl = "'%s' is waiting (%s at %s)."; break;
      case KOREO_PERMFAIL: tmpl = "'%s' is in failure state (%s at %s)."; break;
      case KOREO_OK: break;
      }
      if (tmpl) {
        char *msg = eval_fmt(tmpl, dl, m, lo);
        step_finish(s, koreo_outcome_depskip(msg, s->location), NULL);
        free(msg);
        kv_unref(steps);
        kv_unref(vars);
        return;
      }
      kv_map_set_str(steps, dl, kv_ref(r->value ? r->value : kv_null()));
    }
    kv_map_set_str(vars, "steps", steps);
  }
  kv_map_set_str(vars, "parent", kv_ref(w->parent));

  koreo_error err;
  kv *inputs = st->inputs ? koreo_expr_eval(st->inputs, vars, &err) : kv_map_new(0);
  if (!inputs) {
    char *loc = eval_fmt("%s.inputs", s->location);
    step_finish(s, eval_error_outcome(&err, loc), NULL);
    free(loc);
    kv_unref(vars);
    return;
  }
  if (inputs->kind == KV_NULL) {
    kv_unref(inputs);
    inputs = kv_map_new(0);
  }
  if (st->skip_if && !koreo_expr_is_empty(st->skip_if)) {
    kv *v = koreo_expr_eval(st->skip_if, vars, &err);
    char *loc = eval_fmt("%s.skipIf", s->location);
    koreo_outcome o = {0};
    bool stop = true;
    if (!v)
      o = eval_error_outcome(&err, loc);
    else if (v->kind != KV_BOOL) {
      char *t = eval_text(v);
      o = koreo_outcome_make(KOREO_PERMFAIL, 0, loc,
                             "`skipIf` must evaluate to a bool, received '%s' (%s)", t,
                             kv_kind_name((kv_kind)v->kind));
      free(t);
    } else if (v->u.b)
      o = koreo_outcome_skip("skipped by workflow", s->location);
    else
      stop = false;
    kv_unref(v);
    free(loc);
    if (stop) {
      step_finish(s, o, NULL);
      kv_unref(inputs);
      kv_unref(vars);
      return;
    }
  }
  if (st->has_for_each) {
    kv *items = koreo_expr_eval(st->for_each_item_in, vars, &err);
    char *loc = eval_fmt("%s.forEach.itemIn", s->location);
    if (!items || items->kind != KV_LIST) {
      koreo_outcome o;
      if (!items)
        o = eval_error_outcome(&err, loc);
      else
        o = koreo_outcome_make(KOREO_PERMFAIL, 0, loc,
                               "Step `%s.forEach.itemIn` must be a list-type, received %s",
                               st->label, kv_kind_name((kv_kind)items->kind));
      step_finish(s, o, NULL);
      free(loc);
      kv_unref(items);
      kv_unref(inputs);
      kv_unref(vars);
      return;
    }
    free(loc);
    s->for_each = true;
    s->nitems = kv_len(items);
    s->items = calloc(s->nitems ? s->nitems : 1, sizeof *s->items);
    if (!s->items) kv_oom();
    for (size_t i = 0; i < s->nitems; i++) {
      kv *ii = kv_map_new(kv_len(inputs) + 1);
      for (size_t j = 0; j < kv_len(inputs); j++)
        kv_map_set(ii, kv_ref(kv_map_key_at(inputs, j)), kv_ref(kv_map_val_at(inputs, j)));
      kv_map_set_str(ii, st->for_each_input_key, kv_ref(kv_list_at(items, i)));
      step_start_logic(w, s, &s->items[i], ii, vars);
      kv_unref(ii);
    }
    kv_unref(items);
  } else {
    step_start_logic(w, s, &s->single, inputs, vars);
  }
  kv_unref(inputs);
  kv_unref(vars);
}

/* Collect a forEach step's results (spec 6.6). */
static void step_collect_for_each(step_task *s) {
  kv *ids = kv_list_new(s->nitems);
  const koreo_outcome **errs = calloc(s->nitems ? s->nitems : 1, sizeof *errs);
  if (!errs) kv_oom();
  size_t nerr = 0;
  for (size_t i = 0; i < s->nitems; i++) {
    logic_task *l = &s->items[i];
    kv_list_push(ids, kv_ref(l->resource_ids ? l->resource_ids : kv_null()));
    if (koreo_outcome_is_error(&l->outcome)) errs[nerr++] = &l->outcome;
  }
  if (nerr) {
    step_finish(s, koreo_outcome_combine_ptrs(errs, nerr), ids);
  } else {
    kv *vals = kv_list_new(s->nitems);
    for (size_t i = 0; i < s->nitems; i++) {
      logic_task *l = &s->items[i];
      if (koreo_outcome_is_ok(&l->outcome)) {
        kv_list_push(vals, kv_ref(l->outcome.value ? l->outcome.value : kv_null()));
      } else {
        char *t = koreo_outcome_text(&l->outcome);
        kv_list_push(vals, kv_string_take(t, strlen(t)));
      }
    }
    step_finish(s, koreo_outcome_ok(vals, s->location), ids);
  }
  free(errs);
}

/* Advance a running step; true when something changed. */
static bool step_advance(step_task *s) {
  if (s->state != ST_RUNNING) return false;
  bool progress = false;
  if (!s->for_each) {
    progress = lt_advance(&s->single);
    if (s->single.done) {
      if (s->single.raised) {
        s->raised = true;
        s->raise_msg = xdup(s->single.raise_msg);
      }
      step_finish(s, koreo_outcome_take(&s->single.outcome), kv_ref(s->single.resource_ids));
      return true;
    }
    return progress;
  }
  bool all = true;
  for (size_t i = 0; i < s->nitems; i++) {
    logic_task *l = &s->items[i];
    if (l->done) continue;
    if (lt_advance(l)) progress = true;
    if (l->done && l->raised) {
      /* the item failed unexpectedly: it is Retry 60, unfinished siblings
       * are cancelled (structured concurrency, spec 6.6 / 10.3 #34) */
      koreo_outcome_clear(&l->outcome);
      l->outcome = koreo_outcome_make(KOREO_RETRY, 60, s->location,
                                      "Error (%s) running Step (%s-%zu), will retry.", l->raise_msg,
                                      s->step->label, i);
      for (size_t j = 0; j < s->nitems; j++)
        if (!s->items[j].done)
          lt_cancel(&s->items[j], koreo_outcome_make(KOREO_RETRY, 30, s->location,
                                                     "Timeout running step (%s-%zu), will retry.",
                                                     s->step->label, j));
    }
    if (!l->done) all = false;
  }
  for (size_t i = 0; i < s->nitems; i++)
    if (!s->items[i].done) all = false;
  if (all) {
    step_collect_for_each(s);
    return true;
  }
  return progress;
}

static wf_task *wf_new(koreo_run *run, const kdef_definition *def, const kv *parent,
                       const char *key) {
  wf_task *w = calloc(1, sizeof *w);
  if (!w) kv_oom();
  w->run = run;
  w->def = def;
  w->parent = kv_ref((kv *)(parent ? parent : kv_null()));
  w->key = xdup(key ? key : def->name);
  return w;
}

static void wf_free(wf_task *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    step_task *s = &w->steps[i];
    free(s->location);
    for (size_t j = 0; j < s->nitems; j++)
      lt_free(&s->items[j]);
    free(s->items);
    lt_free(&s->single);
    koreo_outcome_clear(&s->outcome);
    kv_unref(s->resource_ids);
    free(s->raise_msg);
  }
  free(w->steps);
  kv_unref(w->parent);
  free(w->key);
  koreo_outcome_clear(&w->outcome);
  kv_unref(w->conditions);
  kv_unref(w->resource_ids);
  kv_unref(w->state);
  kv_unref(w->state_errors);
  free(w);
}

/* Spec 6.2 collect: conditions, state, overall outcome, resource ids. */
static void wf_collect(wf_task *w) {
  const kdef_workflow *wf = &w->def->u.wf;
  kv *conds = kv_list_new(w->n + 1);
  kv *state = kv_map_new(4), *errors = kv_map_new(0);
  kv *res = kv_map_new(w->n);
  const koreo_outcome **all = calloc(w->n ? w->n : 1, sizeof *all);
  if (!all) kv_oom();
  for (size_t i = 0; i < w->n; i++) {
    step_task *s = &w->steps[i];
    const kdef_step *st = s->step;
    all[i] = &s->outcome;
    kv_map_set_str(res, st->label, kv_ref(s->resource_ids ? s->resource_ids : kv_null()));
    if (st->has_condition)
      kv_list_push(conds,
                   koreo_condition(st->condition_type, st->condition_name, &s->outcome, w->key));
    if (st->state && !koreo_expr_is_empty(st->state) && koreo_outcome_is_ok(&s->outcome)) {
      kv *vars = eval_vars("value", s->outcome.value ? s->outcome.value : kv_null(), NULL, NULL,
                           NULL, NULL);
      koreo_error err;
      kv *v = koreo_expr_eval(st->state, vars, &err);
      kv_unref(vars);
      if (!v) {
        char *m = eval_fmt("%s at %s.state", err.message, s->location);
        kv_map_set_str(errors, st->label, kv_string_take(m, strlen(m)));
      } else if (v->kind != KV_MAP) {
        char *t = eval_text(v);
        char *m = eval_fmt("Invalid state type (%s: %s)", kv_kind_name((kv_kind)v->kind), t);
        kv_map_set_str(errors, st->label, kv_string_take(m, strlen(m)));
        free(t);
      } else {
        kv *n = koreo_to_native(v);
        for (size_t j = 0; j < kv_len(n); j++)
          kv_map_set(state, kv_ref(kv_map_key_at(n, j)), kv_ref(kv_map_val_at(n, j)));
        kv_unref(n);
      }
      kv_unref(v);
    }
  }
  w->outcome = koreo_outcome_combine_ptrs(all, w->n);
  free(all);
  char *thing = eval_fmt("Workflow %s", w->key);
  kv_list_push(conds, koreo_condition("Ready", thing, &w->outcome, w->key));
  free(thing);
  kv *ids = kv_map_new(2);
  kv_map_set_str(ids, "workflow", kv_cstring(w->def->name));
  kv_map_set_str(ids, "resources", res);
  w->conditions = conds;
  w->state = state;
  w->state_errors = errors;
  w->resource_ids = ids;
  w->done = true;
  (void)wf;
}

static void wf_start(wf_task *w) {
  w->started = true;
  const kdef_definition *d = w->def;
  if (d->kind != KDEF_WORKFLOW || !kdef_outcome_is_ok(&d->status) ||
      !kdef_outcome_is_ok(&d->u.wf.steps_ready)) {
    if (d->kind != KDEF_WORKFLOW)
      w->outcome = koreo_outcome_make(KOREO_PERMFAIL, 0, w->key, "%s is a %s, not a Workflow",
                                      d->name, kdef_kind_name(d->kind));
    else
      w->outcome = koreo_outcome_from_kdef(kdef_outcome_is_ok(&d->status) ? &d->u.wf.steps_ready
                                                                          : &d->status);
    char *loc = eval_fmt("%s:%s", w->key, w->outcome.location ? w->outcome.location : "");
    koreo_outcome_set_location(&w->outcome, loc);
    free(loc);
    char *thing = eval_fmt("Workflow %s", w->key);
    w->conditions = kv_list_new(1);
    kv_list_push(w->conditions, koreo_condition("Ready", thing, &w->outcome, w->key));
    free(thing);
    w->resource_ids = kv_map_new(0);
    w->state = kv_map_new(0);
    w->state_errors = kv_map_new(0);
    w->done = true;
    return;
  }
  const kdef_workflow *wf = &d->u.wf;
  w->n = wf->n_steps;
  w->steps = calloc(w->n ? w->n : 1, sizeof *w->steps);
  if (!w->steps) kv_oom();
  for (size_t i = 0; i < w->n; i++) {
    w->steps[i].step = &wf->steps[i];
    w->steps[i].index = i;
    w->steps[i].location = eval_fmt("%s.spec.steps.%s", w->key, wf->steps[i].label);
  }
}

static void step_cancel(step_task *s, const char *key) {
  (void)key;
  if (s->state == ST_DONE) return;
  koreo_outcome t = koreo_outcome_make(KOREO_RETRY, 30, key,
                                       "Timeout running step (%s), will retry.", s->step->label);
  if (s->for_each)
    for (size_t j = 0; j < s->nitems; j++)
      lt_cancel(&s->items[j], koreo_outcome_retry(30, NULL, NULL));
  else if (s->state == ST_RUNNING)
    lt_cancel(&s->single, koreo_outcome_retry(30, NULL, NULL));
  step_finish(s, t, NULL);
}

static void wf_cancel(wf_task *w) {
  if (w->done) return;
  if (!w->started) wf_start(w);
  if (w->done) return;
  for (size_t i = 0; i < w->n; i++)
    step_cancel(&w->steps[i], w->key);
  wf_collect(w);
}

static bool deps_done(const wf_task *w, const kdef_step *st) {
  for (size_t i = 0; i < st->n_deps; i++)
    if (w->steps[st->dep_index[i]].state != ST_DONE) return false;
  return true;
}

static bool wf_advance(wf_task *w) {
  if (w->done) return false;
  bool progress = false;
  if (!w->started) {
    wf_start(w);
    progress = true;
    if (w->done) return true;
  }
  bool again = true;
  while (again) {
    again = false;
    for (size_t i = 0; i < w->n; i++) {
      step_task *s = &w->steps[i];
      if (s->state == ST_WAIT && deps_done(w, s->step)) {
        step_start(w, s);
        again = progress = true;
      }
      if (s->state == ST_RUNNING && step_advance(s)) again = progress = true;
      if (s->state == ST_DONE && s->raised) {
        /* spec 6.2: a raising step is Retry 60; unfinished siblings are
         * cancelled */
        s->raised = false;
        koreo_outcome_clear(&s->outcome);
        s->outcome = koreo_outcome_make(KOREO_RETRY, 60, w->key,
                                        "Unknown error (%s) running Step (%s), will retry.",
                                        s->raise_msg, s->step->label);
        for (size_t j = 0; j < w->n; j++)
          step_cancel(&w->steps[j], w->key);
        again = progress = true;
      }
    }
  }
  bool all = true;
  for (size_t i = 0; i < w->n; i++)
    if (w->steps[i].state != ST_DONE) all = false;
  if (all) {
    wf_collect(w);
    progress = true;
  }
  return progress;
}

/* ---- run API --------------------------------------------------------------
 */

static koreo_run *run_new(const koreo_eval_ctx *ctx, const kdef_definition *def,
                          const koreo_owner *owner) {
  koreo_run *r = calloc(1, sizeof *r);
  if (!r) kv_oom();
  r->ctx = ctx;
  r->def = def;
  r->owner = owner;
  return r;
}

koreo_run *koreo_run_workflow(const koreo_eval_ctx *ctx, const kdef_definition *wf,
                              const kv *parent, const koreo_owner *owner,
                              const char *workflow_key) {
  koreo_run *r = run_new(ctx, wf, owner);
  r->wf = wf_new(r, wf, parent, workflow_key);
  return r;
}

koreo_run *koreo_run_resource_function(const koreo_eval_ctx *ctx, const kdef_definition *rf,
                                       const kv *inputs, const koreo_owner *owner,
                                       const char *location) {
  koreo_run *r = run_new(ctx, rf, owner);
  r->rf = rf_new(r, rf, inputs, location);
  return r;
}

void koreo_run_free(koreo_run *r) {
  if (!r) return;
  rf_free(r->rf);
  wf_free(r->wf);
  koreo_outcome_clear(&r->outcome);
  for (size_t i = 0; i < r->wres.n_steps; i++)
    koreo_outcome_clear(&r->reports[i].outcome);
  free(r->reports);
  koreo_outcome_clear(&r->wres.outcome);
  kv_unref(r->wres.conditions);
  kv_unref(r->wres.resource_ids);
  kv_unref(r->wres.state);
  kv_unref(r->wres.state_errors);
  free(r->pending);
  free(r->applies);
  free(r);
}

static void run_finish(koreo_run *r) {
  r->done = true;
  if (r->rf) {
    r->outcome = koreo_outcome_copy(&r->rf->outcome);
    return;
  }
  wf_task *w = r->wf;
  r->outcome = koreo_outcome_copy(&w->outcome);
  r->wres.outcome = koreo_outcome_copy(&w->outcome);
  r->wres.conditions = kv_ref(w->conditions);
  r->wres.resource_ids = kv_ref(w->resource_ids);
  r->wres.state = kv_ref(w->state);
  r->wres.state_errors = kv_ref(w->state_errors);
  r->wres.n_steps = w->n;
  r->reports = calloc(w->n ? w->n : 1, sizeof *r->reports);
  if (!r->reports) kv_oom();
  for (size_t i = 0; i < w->n; i++) {
    r->reports[i].label = w->steps[i].step->label;
    r->reports[i].outcome = koreo_outcome_copy(&w->steps[i].outcome);
    r->reports[i].resource_ids = w->steps[i].resource_ids;
  }
  r->wres.steps = r->reports;
}

bool koreo_run_advance(koreo_run *r) {
  if (r->done) return true;
  if (r->rf) {
    while (rf_advance(r->rf)) {
    }
    if (r->rf->state == RF_DONE) run_finish(r);
  } else {
    while (wf_advance(r->wf)) {
    }
    if (r->wf->done) run_finish(r);
  }
  return r->done;
}

bool koreo_run_done(const koreo_run *r) { return r->done; }

const kube_request *koreo_run_next_request(koreo_run *r) {
  for (size_t i = 0; i < r->npending; i++)
    if (!r->pending[i]->handed_out) {
      r->pending[i]->handed_out = true;
      return &r->pending[i]->req;
    }
  return NULL;
}

size_t koreo_run_pending(const koreo_run *r) { return r->npending + r->napplies; }

const koreo_apply *koreo_run_next_apply(koreo_run *r) {
  for (size_t i = 0; i < r->napplies; i++)
    if (!r->applies[i]->handed_out) {
      r->applies[i]->handed_out = true;
      return &r->applies[i]->pub;
    }
  return NULL;
}

int koreo_run_answer_apply(koreo_run *r, uint64_t id, koreo_outcome *o, kv *resource_id) {
  for (size_t i = 0; i < r->napplies; i++) {
    ra_task *t = r->applies[i];
    if (t->pub.id != id) continue;
    run_remove_apply(r, t);
    /* the owning logic task finishes at the next advance (spec 6.4: the
     * step's result is the function's outcome; its resource id is reported) */
    t->handed_out = true;
    t->answered = true;
    t->outcome = koreo_outcome_take(o);
    t->resource_id = resource_id;
    return 0;
  }
  koreo_outcome_clear(o);
  kv_unref(resource_id);
  return -1;
}

int koreo_run_answer(koreo_run *r, uint64_t id, kube_response *resp) {
  for (size_t i = 0; i < r->npending; i++) {
    rf_task *t = r->pending[i];
    if (t->req.id != id) continue;
    run_remove_pending(r, t);
    kube_response_clear(&t->resp);
    t->resp = *resp;
    memset(resp, 0, sizeof *resp);
    t->has_resp = true;
    return 0;
  }
  kube_response_clear(resp);
  return -1;
}

void koreo_run_cancel(koreo_run *r) {
  if (r->done) return;
  if (r->rf) {
    rf_cancel(r->rf);
    koreo_outcome_clear(&r->rf->outcome);
    r->rf->outcome =
        koreo_outcome_make(KOREO_RETRY, 30, r->rf->location,
                           "Timeout running ResourceFunction %s, will retry.", r->def->name);
  } else {
    wf_cancel(r->wf);
  }
  r->npending = 0;
  r->napplies = 0;
  run_finish(r);
}

size_t koreo_run_sync(koreo_run *r, const kube_ops *ops) {
  size_t n = 0;
  while (!koreo_run_advance(r)) {
    const kube_request *q;
    bool any = false;
    while ((q = koreo_run_next_request(r))) {
      kube_response resp;
      memset(&resp, 0, sizeof resp);
      ops->call(ops->ctx, q, &resp);
      uint64_t id = q->id;
      koreo_run_answer(r, id, &resp);
      n++;
      any = true;
    }
    if (!any && koreo_run_pending(r) == 0) {
      /* nothing to wait for and not done: cannot happen; stop safely */
      koreo_run_cancel(r);
      break;
    }
    if (!any) break; /* requests handed out elsewhere: the caller answers */
  }
  return n;
}

const koreo_outcome *koreo_run_outcome(const koreo_run *r) { return r->done ? &r->outcome : NULL; }

const kv *koreo_run_resource_id(const koreo_run *r) {
  return r->done && r->rf ? r->rf->resource_id : NULL;
}

const kv *koreo_run_resource(const koreo_run *r) {
  return r->done && r->rf ? r->rf->resource : NULL;
}

const koreo_workflow_result *koreo_run_workflow_result(const koreo_run *r) {
  return r->done && r->wf ? &r->wres : NULL;
}
