/*
 * core/eval/host.c: what a host needs around a Workflow run (eval.h):
 * the `parent` value and the ownerReference built from a trigger object
 * (spec 6.7, 6.11), conditions (spec 6.9), condition merging
 * (update_condition) and the status merge patch written onto the trigger
 * (spec 6.11).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "koreo/json.h"

static const kv *get(const kv *m, const char *k) {
  return m && m->kind == KV_MAP ? kv_map_get_str(m, k) : NULL;
}

kv *koreo_parent_from_trigger(const kv *trigger) {
  kv *p = kv_map_new(3);
  const kv *md = get(trigger, "metadata"), *spec = get(trigger, "spec");
  const kv *state = get(get(trigger, "status"), "state");
  if (md) kv_map_set_str(p, "metadata", kv_ref((kv *)md));
  if (spec) kv_map_set_str(p, "spec", kv_ref((kv *)spec));
  if (state) kv_map_set_str(p, "state", kv_ref((kv *)state));
  return p;
}

kv *koreo_owner_ref_from_trigger(const kv *trigger) {
  kv *r = kv_map_new(6);
  const kv *av = get(trigger, "apiVersion"), *kind = get(trigger, "kind");
  const kv *md = get(trigger, "metadata");
  const kv *name = get(md, "name"), *uid = get(md, "uid");
  kv_map_set_str(r, "apiVersion", kv_ref((kv *)(av ? av : kv_null())));
  kv_map_set_str(r, "kind", kv_ref((kv *)(kind ? kind : kv_null())));
  kv_map_set_str(r, "blockOwnerDeletion", kv_bool(true));
  kv_map_set_str(r, "controller", kv_bool(false));
  kv_map_set_str(r, "name", kv_ref((kv *)(name ? name : kv_null())));
  kv_map_set_str(r, "uid", kv_ref((kv *)(uid ? uid : kv_null())));
  return r;
}

kv *koreo_condition(const char *type, const char *name, const koreo_outcome *o,
                    const char *default_location) {
  const char *m = o->message && o->message[0] ? o->message : NULL;
  const char *reason = "Ready";
  char *msg = NULL;
  switch (o->kind) {
  case KOREO_DEPSKIP:
    reason = "DepSkip";
    msg = m ? eval_fmt("%s awaiting dependencies to be ready (%s)", name, m)
            : eval_fmt("%s awaiting dependencies to be ready.", name);
    break;
  case KOREO_SKIP:
    reason = "Skip";
    msg = m ? eval_fmt("Skipping %s: %s", name, m) : eval_fmt("%s management is disabled.", name);
    break;
  case KOREO_RETRY:
    reason = "Wait";
    msg = m ? eval_fmt("Awaiting %s to be ready (%s).", name, m)
            : eval_fmt("Awaiting %s to be ready.", name);
    break;
  case KOREO_PERMFAIL:
    reason = "Failure";
    msg = eval_fmt("Unrecoverable error reconciling %s. (%s).", name,
                   o->message ? o->message : "None");
    break;
  case KOREO_OK:
    reason = "Ready";
    msg = eval_fmt("%s ready.", name);
    break;
  }
  kv *c = kv_map_new(5);
  kv_map_set_str(c, "type", kv_cstring(type));
  kv_map_set_str(c, "status", kv_cstring("True"));
  kv_map_set_str(c, "reason", kv_cstring(reason));
  kv_map_set_str(c, "message", kv_string_take(msg, strlen(msg)));
  const char *loc = o->kind == KOREO_OK ? default_location : o->location;
  kv_map_set_str(c, "location", loc ? kv_cstring(loc) : kv_null());
  return c;
}

static bool str_eq(const kv *a, const kv *b) {
  if (!a || !b || a->kind != KV_STRING || b->kind != KV_STRING) return a == b;
  return strcmp(kv_str(a), kv_str(b)) == 0;
}

kv *koreo_conditions_update(const kv *conditions, const kv *cond, const char *now) {
  size_t n = conditions && conditions->kind == KV_LIST ? kv_len(conditions) : 0;
  kv *out = kv_list_new(n + 1);
  const kv *type = get(cond, "type");
  bool found = false;
  for (size_t i = 0; i < n; i++) {
    const kv *c = kv_list_at(conditions, i);
    if (found || !str_eq(get(c, "type"), type)) {
      kv_list_push(out, kv_ref((kv *)c));
      continue;
    }
    found = true;
    kv *u = kv_map_new(7);
    for (size_t j = 0; j < kv_len(cond); j++)
      kv_map_set(u, kv_ref(kv_map_key_at(cond, j)), kv_ref(kv_map_val_at(cond, j)));
    const kv *ltt = get(c, "lastTransitionTime");
    bool changed = !str_eq(get(c, "status"), get(cond, "status"));
    kv_map_set_str(u, "lastTransitionTime", !changed && ltt ? kv_ref((kv *)ltt) : kv_cstring(now));
    kv_map_set_str(u, "lastUpdateTime", kv_cstring(now));
    kv_list_push(out, u);
  }
  if (!found) {
    kv *u = kv_map_new(7);
    for (size_t j = 0; j < kv_len(cond); j++)
      kv_map_set(u, kv_ref(kv_map_key_at(cond, j)), kv_ref(kv_map_val_at(cond, j)));
    kv_map_set_str(u, "lastTransitionTime", kv_cstring(now));
    kv_map_set_str(u, "lastUpdateTime", kv_cstring(now));
    kv_list_push(out, u);
  }
  return out;
}

kv *koreo_status_patch(const kv *trigger, const koreo_workflow_result *res, const char *now) {
  const kv *ann = get(get(trigger, "metadata"), "annotations");
  const kv *merge = get(ann, "koreo.dev/merge-conditions");
  kv *conds;
  if (merge && merge->kind == KV_STRING && strcmp(kv_str(merge), "true") == 0 &&
      get(get(trigger, "status"), "conditions"))
    conds = kv_ref((kv *)get(get(trigger, "status"), "conditions"));
  else
    conds = kv_list_new(0);
  for (size_t i = 0; res->conditions && i < kv_len(res->conditions); i++) {
    kv *n = koreo_conditions_update(conds, kv_list_at(res->conditions, i), now);
    kv_unref(conds);
    conds = n;
  }
  char *ids = kv_json_write(res->resource_ids ? res->resource_ids : kv_null(), 0, NULL);
  kv *nann = kv_map_new(1);
  kv_map_set_str(nann, KOREO_MANAGED_RESOURCES_ANNOTATION, kv_string_take(ids, strlen(ids)));
  kv *md = kv_map_new(1);
  kv_map_set_str(md, "annotations", nann);

  const koreo_outcome *o = &res->outcome;
  bool err = koreo_outcome_is_error(o);
  kv *k = kv_map_new(3);
  kv_map_set_str(k, "errors", err && o->message ? kv_cstring(o->message) : kv_null());
  kv_map_set_str(k, "locations", err && o->location ? kv_cstring(o->location) : kv_null());
  kv_map_set_str(k, "state_errors",
                 res->state_errors && kv_len(res->state_errors) ? kv_ref(res->state_errors)
                                                                : kv_null());
  kv *status = kv_map_new(3);
  kv_map_set_str(status, "conditions", conds);
  kv_map_set_str(status, "state", res->state ? koreo_to_native(res->state) : kv_map_new(0));
  kv_map_set_str(status, "koreo", k);
  kv *p = kv_map_new(2);
  kv_map_set_str(p, "metadata", md);
  kv_map_set_str(p, "status", status);
  return p;
}

kv *koreo_selection_error_patch(const kv *trigger, const char *reason, const char *message,
                                const char *location, const char *now) {
  kv *cond = kv_map_new(5);
  kv_map_set_str(cond, "type", kv_cstring("Ready"));
  kv_map_set_str(cond, "status", kv_cstring("false")); /* lower case, as upstream writes it */
  kv_map_set_str(cond, "reason", kv_cstring(reason));
  kv_map_set_str(cond, "message", kv_cstring(message));
  kv_map_set_str(cond, "location", kv_cstring(location));
  const kv *ann = kv_map_get_str(kv_map_get_str(trigger, "metadata"), "annotations");
  const kv *existing = NULL;
  const kv *m =
      ann && ann->kind == KV_MAP ? kv_map_get_str(ann, "koreo.dev/merge-conditions") : NULL;
  if (m && m->kind == KV_STRING && strcmp(kv_str(m), "true") == 0) {
    const kv *st = kv_map_get_str(trigger, "status");
    existing = st && st->kind == KV_MAP ? kv_map_get_str(st, "conditions") : NULL;
  }
  kv *conds = koreo_conditions_update(existing, cond, now);
  kv_unref(cond);
  kv *koreo = kv_map_new(2);
  kv_map_set_str(koreo, "errors", kv_cstring(message));
  kv_map_set_str(koreo, "locations", kv_cstring(location));
  kv *status = kv_map_new(2);
  kv_map_set_str(status, "conditions", conds);
  kv_map_set_str(status, "koreo", koreo);
  kv *patch = kv_map_new(1);
  kv_map_set_str(patch, "status", status);
  return patch;
}
