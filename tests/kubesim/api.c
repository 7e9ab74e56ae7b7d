/*
 * tests/kubesim/api.c: kubesim's REST front: authentication (bearer
 * token), fault injection, the admin endpoint (/kubesim/...), routing of
 * the discovery, version and OpenAPI paths, and the resource verbs: get,
 * list (selectors, pagination), watch, create, update, patch (merge, JSON,
 * strategic, server-side apply), delete (preconditions, finalizers,
 * propagation) and deletecollection, the status and scale subresources,
 * with the semantics of kube-apiserver (resourceVersion, uid, generation,
 * optimistic concurrency, namespaces that must exist).
 */
#include "kubesim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct target {
  ks_type *t;
  ks_version *v;
  const char *version;
  char *ns;
  char *name;
  char *sub;
} target;

typedef struct wopts {
  bool dry_run;
  const char *manager;
  const char *validation;  /* Strict, Warn, Ignore */
  const char *operation;   /* managedFields operation of a create: Update or Apply */
  const char *subresource; /* managedFields subresource when not the request's (scale) */
} wopts;

static const char *accept_of(ks_conn *c) {
  const char *a = ks_header(&c->req, "accept");
  return a ? a : "";
}

static bool wants_table(ks_conn *c) { return strstr(accept_of(c), "as=Table") != NULL; }

static bool wants_partial(ks_conn *c) {
  return strstr(accept_of(c), "as=PartialObjectMetadata") != NULL;
}

static kv *not_found(const ks_type *t, const char *name) {
  char b[256];
  const char *q = ks_type_qualified(t, b);
  return ks_status(404, "NotFound", ks_details(name, t->group, t->plural), "%s \"%s\" not found", q,
                   name);
}

static kv *conflict(const ks_type *t, const char *name, const char *why) {
  char b[256];
  const char *q = ks_type_qualified(t, b);
  return ks_status(409, "Conflict", ks_details(name, t->group, t->plural),
                   "Operation cannot be fulfilled on %s \"%s\": %s", q, name, why);
}

static kv *invalid(const ks_type *t, const char *name, const char *field, const char *reason,
                   const char *msg) {
  kv *d = ks_details(name, t->group, t->kind);
  kv *causes = kv_list_new(1);
  kv *cz = kv_map_new(3);
  kv_map_set_str(cz, "reason", kv_cstring(reason));
  kv_map_set_str(cz, "message", kv_cstring(msg));
  kv_map_set_str(cz, "field", kv_cstring(field));
  kv_list_push(causes, cz);
  kv_map_set_str(d, "causes", causes);
  if (*t->group)
    return ks_status(422, "Invalid", d, "%s.%s \"%s\" is invalid: %s: %s", t->kind, t->group, name,
                     field, msg);
  return ks_status(422, "Invalid", d, "%s \"%s\" is invalid: %s: %s", t->kind, name, field, msg);
}

static kv *bad_request(const char *msg) { return ks_status(400, "BadRequest", NULL, "%s", msg); }

static kv *served_api_version(const ks_type *t, const char *version) {
  return *t->group ? ku_kvfmt("%s/%s", t->group, version) : kv_cstring(version);
}

kv *ks_obj_for_version(const ks_type *t, const kv *obj, const char *version) {
  kv *want = served_api_version(t, version);
  const char *have = ku_str(obj, "apiVersion");
  if (have && strcmp(have, kv_str(want)) == 0) {
    kv_unref(want);
    return kv_ref((kv *)obj);
  }
  /* keep apiVersion and kind first */
  kv *r = kv_map_new(kv_len(obj) + 1);
  kv_map_set_str(r, "apiVersion", want);
  kv_map_set_str(r, "kind", kv_cstring(t->kind));
  for (size_t i = 0; i < kv_len(obj); i++)
    kv_map_set(r, kv_ref(kv_map_key_at(obj, i)), kv_ref(kv_map_val_at(obj, i)));
  return r;
}

static const char *obj_name(const kv *o) { return ku_str(ku_get(o, "metadata"), "name"); }
static const char *obj_ns(const kv *o) { return ku_str(ku_get(o, "metadata"), "namespace"); }

static kv *set_meta(const kv *obj, const char *key, kv *val) {
  kv *md = ku_with(ku_get(obj, "metadata"), key, val);
  return ku_with(obj, "metadata", md);
}

static kv *del_meta(const kv *obj, const char *key) {
  kv *md = ku_without(ku_get(obj, "metadata"), key);
  return ku_with(obj, "metadata", md);
}

static void replace(kv **slot, kv *nv) {
  kv_unref(*slot);
  *slot = nv;
}

/* ---- validation helpers ---------------------------------------------------------- */

static bool is_dns1123_label(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63) return false;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
      return false;
  return s[0] != '-' && s[n - 1] != '-';
}

static bool is_dns1123_subdomain(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 253) return false;
  const char *p = s;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t l = dot ? (size_t)(dot - p) : strlen(p);
    char part[254];
    if (l == 0 || l > 63) return false;
    memcpy(part, p, l);
    part[l] = 0;
    if (!is_dns1123_label(part)) return false;
    p += l + (dot ? 1 : 0);
    if (dot && !*p) return false;
  }
  return true;
}

static kv *validate_name(const ks_type *t, const char *name) {
  bool label = strcmp(t->plural, "namespaces") == 0 || strcmp(t->plural, "services") == 0;
  if (label ? is_dns1123_label(name) : is_dns1123_subdomain(name)) return NULL;
  char *msg;
  if (label)
    msg = ku_fmt("Invalid value: \"%s\": a lowercase RFC 1123 label must consist of lower case "
                 "alphanumeric characters or '-', and must start and end with an alphanumeric "
                 "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                 name);
  else
    msg = ku_fmt("Invalid value: \"%s\": a lowercase RFC 1123 subdomain must consist of lower case "
                 "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                 "character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                 name);
  kv *e = invalid(t, name, "metadata.name", "FieldValueInvalid", msg);
  free(msg);
  return e;
}

static const char *go_json_type(const kv *v) {
  switch (v->kind) {
  case KV_BOOL: return "bool";
  case KV_INT:
  case KV_UINT:
  case KV_DOUBLE: return "number";
  case KV_LIST: return "array";
  case KV_MAP: return "object";
  default: return "string";
  }
}

/* A body that does not decode into the kind's Go type: 400, worded as the
 * apiserver's JSON decoder words it. */
static kv *decode_error(const ks_type *t, const kv *v, const char *gofield, const char *gotype) {
  const char *ver = ks_type_storage(t);
  return ks_status(400, "BadRequest", NULL,
                   "%s in version \"%s\" cannot be handled as a %s: json: cannot unmarshal %s into "
                   "Go struct field %s of type %s",
                   t->kind, ver, t->kind, go_json_type(v), gofield, gotype);
}

/* Maps of strings: labels, annotations (and ConfigMap data). */
static kv *check_string_map(const ks_type *t, const kv *m, const char *gofield) {
  if (!m || m->kind == KV_NULL) return NULL;
  if (m->kind != KV_MAP) return decode_error(t, m, gofield, "map[string]string");
  for (size_t i = 0; i < kv_len(m); i++)
    if (kv_map_val_at(m, i)->kind != KV_STRING && kv_map_val_at(m, i)->kind != KV_NULL)
      return decode_error(t, kv_map_val_at(m, i), gofield, "string");
  return NULL;
}

/* Labels and annotations must be maps of strings; finalizers qualified
 * names; ownerReferences complete. */
static kv *validate_meta(const ks_type *t, const kv *obj) {
  kv *md = ku_get(obj, "metadata");
  const char *name = obj_name(obj);
  kv *err;
  if ((err = check_string_map(t, ku_get(md, "labels"), "ObjectMeta.metadata.labels")) ||
      (err = check_string_map(t, ku_get(md, "annotations"), "ObjectMeta.metadata.annotations")))
    return err;
  if (strcmp(t->plural, "configmaps") == 0 &&
      (err = check_string_map(t, ku_get(obj, "data"), "ConfigMap.data")))
    return err;
  kv *fins = ku_get(md, "finalizers");
  for (size_t i = 0; fins && fins->kind == KV_LIST && i < kv_len(fins); i++) {
    kv *f = kv_list_at(fins, i);
    const char *fs = f->kind == KV_STRING ? kv_str(f) : "";
    const char *slash = strchr(fs, '/');
    if (!*fs || (slash && (slash == fs || !slash[1]))) {
      char *field = ku_fmt("metadata.finalizers[%zu]", i);
      char *msg = ku_fmt("Invalid value: \"%s\": name part must be non-empty", fs);
      kv *e = invalid(t, name ? name : "", field, "FieldValueInvalid", msg);
      free(field);
      free(msg);
      return e;
    }
  }
  kv *refs = ku_get(md, "ownerReferences");
  for (size_t i = 0; refs && refs->kind == KV_LIST && i < kv_len(refs); i++) {
    kv *r = kv_list_at(refs, i);
    static const char *const req[] = {"apiVersion", "kind", "name", "uid"};
    for (size_t k = 0; k < 4; k++) {
      const char *v = ku_str(r, req[k]);
      if (!v || !*v) {
        char *field = ku_fmt("metadata.ownerReferences.%s", req[k]);
        char *msg = ku_fmt("Invalid value: \"\": %s must not be empty", req[k]);
        kv *e = invalid(t, name ? name : "", field, "FieldValueInvalid", msg);
        free(field);
        free(msg);
        return e;
      }
    }
  }
  return NULL;
}

/* ---- write core ---------------------------------------------------------------------- */

static bool list_has(const kv *l, const char *s) {
  for (size_t i = 0; l && l->kind == KV_LIST && i < kv_len(l); i++)
    if (kv_list_at(l, i)->kind == KV_STRING && strcmp(kv_str(kv_list_at(l, i)), s) == 0)
      return true;
  return false;
}

static bool has_finalizers(const kv *obj) {
  kv *f = ku_get(ku_get(obj, "metadata"), "finalizers");
  return f && f->kind == KV_LIST && kv_len(f) > 0;
}

/* Everything but metadata and (when the type has a status subresource)
 * status: the part whose change bumps metadata.generation. */
static bool spec_changed(const ks_type *t, const ks_version *v, const kv *a, const kv *b) {
  kv *x = ku_without(a, "metadata"), *y = ku_without(b, "metadata");
  if (v && v->status) {
    replace(&x, ku_without(x, "status"));
    replace(&y, ku_without(y, "status"));
  }
  (void)t;
  bool ch = !ku_json_equal(x, y);
  kv_unref(x);
  kv_unref(y);
  return ch;
}

/* Equal apart from resourceVersion and managedFields timestamps. */
static bool same_object(const kv *a, const kv *b) {
  kv *x = del_meta(a, "resourceVersion"), *y = del_meta(b, "resourceVersion");
  replace(&x, del_meta(x, "managedFields"));
  replace(&y, del_meta(y, "managedFields"));
  bool eq = ku_json_equal(x, y);
  kv_unref(x);
  kv_unref(y);
  return eq;
}

static kv *type_obj(ks_server *s, const char *plural, const char *ns, const char *name) {
  const char *group =
      strcmp(plural, "customresourcedefinitions") == 0 ? "apiextensions.k8s.io" : "";
  ks_type *t = ks_type_find(s, group, plural);
  if (!t) return NULL;
  char key[512];
  ks_key(key, sizeof key, ns, name);
  return ks_table_get(&t->objs, key);
}

static void after_delete(ks_server *s, ks_type *t, const kv *obj) {
  if (strcmp(t->plural, "customresourcedefinitions") == 0) {
    ks_types_remove_crd(s, obj_name(obj));
  }
  ks_gc_schedule(s);
}

/* Store `obj` (taken) as the new state of (t, key); `old` is the previous
 * state or NULL.  Stamps the resourceVersion; an object that is being
 * deleted and has no finalizers left is removed instead.  Returns the
 * stored object (borrowed from the store unless dry run: then owned by
 * the result slot). */
static kv *commit(ks_server *s, ks_type *t, const kv *old, kv *obj, bool dry, kv **result) {
  if (old && same_object(old, obj)) {
    kv_unref(obj);
    *result = kv_ref((kv *)old);
    return *result;
  }
  /* a dry run stores nothing: the object keeps the stored resourceVersion
   * (none for a create) */
  uint64_t rv = dry ? 0 : ks_next_rv(s);
  const char *orv = old ? ku_str(ku_get(old, "metadata"), "resourceVersion") : NULL;
  kv *stamped = !dry  ? set_meta(obj, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)rv))
                : orv ? set_meta(obj, "resourceVersion", kv_cstring(orv))
                      : del_meta(obj, "resourceVersion");
  kv_unref(obj);
  obj = stamped;
  char key[512];
  ks_key(key, sizeof key, obj_ns(obj), obj_name(obj));
  bool gone = ku_get(ku_get(obj, "metadata"), "deletionTimestamp") && !has_finalizers(obj);
  if (gone && strcmp(t->plural, "namespaces") == 0) {
    kv *sf = ku_path(obj, "spec.finalizers");
    if (sf && sf->kind == KV_LIST && kv_len(sf) > 0) gone = false;
  }
  if (dry) {
    *result = obj;
    return obj;
  }
  if (gone) {
    kv *prev = ks_table_del(&t->objs, key);
    ks_emit(s, t, KS_EV_DELETED, obj, NULL, rv);
    kv_unref(prev);
    *result = obj;
    after_delete(s, t, obj);
    return obj;
  }
  ks_table_put(&t->objs, key, kv_ref(obj));
  ks_emit(s, t, old ? KS_EV_MODIFIED : KS_EV_ADDED, obj, (kv *)old, rv);
  *result = obj;
  /* the garbage collector and the namespace lifecycle care about owners,
   * deletions and finalizers only */
  kv *nmd = ku_get(obj, "metadata"), *omd = old ? ku_get(old, "metadata") : NULL;
  if (ku_get(nmd, "ownerReferences") || ku_get(nmd, "deletionTimestamp") ||
      (omd && (ku_get(omd, "ownerReferences") ||
               !ku_json_equal(ku_get(omd, "finalizers"), ku_get(nmd, "finalizers")))))
    ks_gc_schedule(s);
  return obj;
}

static kv *check_namespace(ks_server *s, const ks_type *t, const char *ns, bool creating) {
  if (!t->namespaced) return NULL;
  kv *nso = type_obj(s, "namespaces", NULL, ns);
  if (!nso)
    return ks_status(404, "NotFound", ks_details(ns, NULL, "namespaces"),
                     "namespaces \"%s\" not found", ns);
  if (creating && ku_get(ku_get(nso, "metadata"), "deletionTimestamp"))
    return ks_status(403, "Forbidden", ks_details(ns, NULL, "namespaces"),
                     "unable to create new content in namespace %s because it is being terminated",
                     ns);
  return NULL;
}

/* fieldValidation=Strict: unknown fields of a custom resource are an
 * error, as the apiserver's strict decoding makes them. */
static kv *strict_check(const ks_type *t, const ks_version *v, const kv *obj, const wopts *o) {
  if (!v || !v->schema || !o->validation || strcmp(o->validation, "Strict") != 0) return NULL;
  kv *unk = ks_schema_unknown_fields(v->schema, obj);
  if (kv_len(unk) == 0) {
    kv_unref(unk);
    return NULL;
  }
  ku_buf b = {0};
  for (size_t i = 0; i < kv_len(unk); i++)
    ku_buf_printf(&b, "%sunknown field \"%s\"", i ? ", " : "", kv_str(kv_list_at(unk, i)));
  kv *e = ks_status(400, "BadRequest", NULL,
                    "%s in version \"%s\" cannot be handled as a %s: strict decoding error: %s",
                    t->kind, v->name, t->kind, b.p);
  free(b.p);
  kv_unref(unk);
  return e;
}

/* Create `obj` (taken) in (t, ns).  On success *out is the stored object
 * (new reference). */
static kv *do_create(ks_server *s, ks_type *t, const char *version, const char *ns, kv *obj,
                     const wopts *o, kv **out) {
  *out = NULL;
  kv *err = NULL;
  if (!obj || obj->kind != KV_MAP) {
    kv_unref(obj);
    return bad_request("the body of the request was not a JSON object");
  }
  kv *md = ku_get(obj, "metadata");
  if (md && md->kind != KV_MAP) {
    kv_unref(obj);
    return bad_request("metadata must be an object");
  }
  const char *bns = ku_str(md, "namespace");
  if (t->namespaced) {
    if (bns && *bns && strcmp(bns, ns) != 0) {
      kv_unref(obj);
      return bad_request(
          "the namespace of the provided object does not match the namespace sent on the request");
    }
    replace(&obj, set_meta(obj, "namespace", kv_cstring(ns)));
  } else if (bns) {
    replace(&obj, del_meta(obj, "namespace"));
  }
  const char *name = obj_name(obj);
  if (!name || !*name) {
    const char *gen = ku_str(ku_get(obj, "metadata"), "generateName");
    if (!gen || !*gen) {
      kv *e = invalid(t, "", "metadata.name", "FieldValueRequired",
                      "Required value: name or generateName is required");
      kv_unref(obj);
      return e;
    }
    char suffix[8];
    ku_rand_alnum(suffix, 5);
    replace(&obj, set_meta(obj, "name", ku_kvfmt("%s%s", gen, suffix)));
    name = obj_name(obj);
  }
  if ((err = validate_name(t, name)) || (err = validate_meta(t, obj))) {
    kv_unref(obj);
    return err;
  }
  if ((err = check_namespace(s, t, ns, true))) {
    kv_unref(obj);
    return err;
  }
  if (t->is_crd) {
    kv *crd = type_obj(s, "customresourcedefinitions", NULL, kv_str(t->crd));
    if (crd && ku_get(ku_get(crd, "metadata"), "deletionTimestamp")) {
      kv_unref(obj);
      return ks_status(405, "MethodNotAllowed", NULL,
                       "create not allowed while custom resource definition is terminating");
    }
  }
  if (ku_str(ku_get(obj, "metadata"), "resourceVersion") &&
      *ku_str(ku_get(obj, "metadata"), "resourceVersion")) {
    kv_unref(obj);
    return ks_status(
        500, "InternalError", ks_details(name, t->group, t->plural),
        "Internal error occurred: resourceVersion should not be set on objects to be created");
  }
  char key[512];
  ks_key(key, sizeof key, t->namespaced ? ns : NULL, name);
  if (ks_table_get(&t->objs, key)) {
    char b[256];
    const char *q = ks_type_qualified(t, b);
    kv *e = ks_status(409, "AlreadyExists", ks_details(name, t->group, t->plural),
                      "%s \"%s\" already exists", q, name);
    kv_unref(obj);
    return e;
  }
  /* apiVersion/kind of the endpoint, first */
  kv *fixed = kv_map_new(kv_len(obj) + 2);
  kv_map_set_str(fixed, "apiVersion", served_api_version(t, ks_type_storage(t)));
  kv_map_set_str(fixed, "kind", kv_cstring(t->kind));
  for (size_t i = 0; i < kv_len(obj); i++)
    kv_map_set(fixed, kv_ref(kv_map_key_at(obj, i)), kv_ref(kv_map_val_at(obj, i)));
  replace(&obj, fixed);
  /* server-set metadata */
  char uid[37], now[32];
  ku_uuid(uid);
  ku_now_rfc3339(now);
  kv *nmd = ku_without(ku_get(obj, "metadata"), "deletionTimestamp");
  replace(&nmd, ku_without(nmd, "deletionGracePeriodSeconds"));
  replace(&nmd, ku_with(nmd, "uid", kv_cstring(uid)));
  replace(&nmd, ku_without(nmd, "resourceVersion"));
  if (t->has_generation)
    replace(&nmd, ku_with(nmd, "generation", kv_int(1)));
  else
    replace(&nmd, ku_without(nmd, "generation"));
  replace(&nmd, ku_with(nmd, "creationTimestamp", kv_cstring(now)));
  replace(&obj, ku_with(obj, "metadata", nmd));
  ks_version *v = ks_type_version(t, version);
  if (v && v->status && ku_get(obj, "status") &&
      strcmp(t->plural, "customresourcedefinitions") != 0)
    replace(&obj, ku_without(obj, "status"));
  if ((err = ks_builtin_prepare(s, t, &obj, NULL, true))) {
    kv_unref(obj);
    return err;
  }
  if ((err = strict_check(t, v, obj, o))) {
    kv_unref(obj);
    return err;
  }
  if (v && v->schema) {
    kv *d = ks_schema_apply(v->schema, obj, t->group, t->kind, &err);
    if (!d) {
      kv_unref(obj);
      return err;
    }
    replace(&obj, d);
  }
  kv *mf = ks_managed_fields(NULL, obj, o->manager, o->operation ? o->operation : "Update",
                             kv_str(ku_get(obj, "apiVersion")), NULL);
  replace(&obj, set_meta(obj, "managedFields", mf));
  if (strcmp(t->plural, "customresourcedefinitions") == 0 && !o->dry_run) {
    if ((err = ks_types_apply_crd(s, obj))) {
      kv_unref(obj);
      return err;
    }
    t = ks_type_find(s, "apiextensions.k8s.io", "customresourcedefinitions");
  }
  kv *res;
  commit(s, t, NULL, obj, o->dry_run, &res);
  *out = kv_ref(res);
  if (o->dry_run)
    kv_unref(res);
  else
    kv_unref(res);
  return NULL;
}

/* Replace the object at (t, ns, name) with `obj` (taken); `sub` is NULL,
 * "status" or "scale" (already converted to a whole object).  `existing`
 * is the current object (borrowed) or NULL. */
static kv *do_update(ks_server *s, ks_type *t, const char *version, const char *ns,
                     const char *name, kv *obj, const char *sub, const wopts *o, kv **out,
                     const char *operation) {
  *out = NULL;
  kv *err = NULL;
  if (!obj || obj->kind != KV_MAP) {
    kv_unref(obj);
    return bad_request("the body of the request was not a JSON object");
  }
  const char *bname = obj_name(obj);
  if (bname && strcmp(bname, name) != 0) {
    char *m =
        ku_fmt("the name of the object (%s) does not match the name on the URL (%s)", bname, name);
    kv *e = bad_request(m);
    free(m);
    kv_unref(obj);
    return e;
  }
  const char *bns = obj_ns(obj);
  if (t->namespaced && bns && *bns && strcmp(bns, ns) != 0) {
    kv_unref(obj);
    return bad_request(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  char key[512];
  ks_key(key, sizeof key, t->namespaced ? ns : NULL, name);
  kv *old = ks_table_get(&t->objs, key);
  if (!old) {
    kv_unref(obj);
    if ((err = check_namespace(s, t, ns, false))) return err;
    return not_found(t, name);
  }
  kv_ref(old);
  ks_version *v = ks_type_version(t, version);
  const char *want_rv = ku_str(ku_get(obj, "metadata"), "resourceVersion");
  const char *have_rv = ku_str(ku_get(old, "metadata"), "resourceVersion");
  if (want_rv && *want_rv && strcmp(want_rv, have_rv) != 0) {
    kv_unref(obj);
    kv_unref(old);
    return conflict(t, name,
                    "the object has been modified; please apply your changes to the latest version "
                    "and try again");
  }
  if ((!want_rv || !*want_rv) && t->is_crd && strcmp(operation, "Update") == 0) {
    kv_unref(obj);
    kv_unref(old);
    return invalid(t, name, "metadata.resourceVersion", "FieldValueInvalid",
                   "Invalid value: 0x0: must be specified for an update");
  }
  /* ownership of the parts: the status subresource changes only status,
   * the main resource everything else */
  if (sub && strcmp(sub, "status") == 0) {
    kv *st = ku_get(obj, "status");
    kv *n = st ? ku_with(old, "status", kv_ref(st)) : ku_without(old, "status");
    replace(&obj, n);
  } else {
    kv *md = ku_map_copy(ku_get(obj, "metadata"));
    kv *omd = ku_get(old, "metadata");
    static const char *const keep[] = {"uid",
                                       "creationTimestamp",
                                       "deletionTimestamp",
                                       "deletionGracePeriodSeconds",
                                       "generation",
                                       "namespace",
                                       "name"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
      kv *ov = ku_get(omd, keep[i]);
      if (ov)
        kv_map_set_str(md, keep[i], kv_ref(ov));
      else if (ku_get(md, keep[i]))
        replace(&md, ku_without(md, keep[i]));
    }
    /* a deleting object accepts no new finalizers */
    if (ku_get(omd, "deletionTimestamp")) {
      kv *nf = ku_get(md, "finalizers");
      for (size_t i = 0; nf && nf->kind == KV_LIST && i < kv_len(nf); i++) {
        kv *f = kv_list_at(nf, i);
        if (f->kind == KV_STRING && !list_has(ku_get(omd, "finalizers"), kv_str(f))) {
          kv_unref(md);
          kv_unref(obj);
          kv_unref(old);
          return invalid(
              t, name, "metadata.finalizers", "FieldValueForbidden",
              "Forbidden: no new finalizers can be added if the object is being deleted");
        }
      }
    }
    kv *fixed = kv_map_new(kv_len(obj) + 2);
    kv_map_set_str(fixed, "apiVersion", served_api_version(t, ks_type_storage(t)));
    kv_map_set_str(fixed, "kind", kv_cstring(t->kind));
    for (size_t i = 0; i < kv_len(obj); i++) {
      kv *k = kv_map_key_at(obj, i);
      if (strcmp(kv_str(k), "metadata") == 0) {
        kv_map_set_str(fixed, "metadata", kv_ref(md));
        continue;
      }
      if (strcmp(kv_str(k), "apiVersion") == 0 || strcmp(kv_str(k), "kind") == 0) continue;
      kv_map_set(fixed, kv_ref(k), kv_ref(kv_map_val_at(obj, i)));
    }
    if (!ku_get(fixed, "metadata")) kv_map_set_str(fixed, "metadata", kv_ref(md));
    kv_unref(md);
    replace(&obj, fixed);
    if (v && v->status) {
      kv *st = ku_get(old, "status");
      replace(&obj, st ? ku_with(obj, "status", kv_ref(st)) : ku_without(obj, "status"));
    }
    if ((err = validate_meta(t, obj))) {
      kv_unref(obj);
      kv_unref(old);
      return err;
    }
  }
  if ((err = ks_builtin_prepare(s, t, &obj, old, false))) {
    kv_unref(obj);
    kv_unref(old);
    return err;
  }
  if ((err = strict_check(t, v, obj, o))) {
    kv_unref(obj);
    kv_unref(old);
    return err;
  }
  if (v && v->schema) {
    kv *d = ks_schema_apply(v->schema, obj, t->group, t->kind, &err);
    if (!d) {
      kv_unref(obj);
      kv_unref(old);
      return err;
    }
    replace(&obj, d);
  }
  if (t->has_generation && spec_changed(t, v, old, obj)) {
    int64_t g = 0;
    ku_as_int(ku_get(ku_get(old, "metadata"), "generation"), &g);
    replace(&obj, set_meta(obj, "generation", kv_int(g + 1)));
  }
  kv *mf = ks_managed_fields(old, obj, o->manager, operation, kv_str(ku_get(obj, "apiVersion")),
                             o->subresource ? o->subresource : sub);
  replace(&obj, set_meta(obj, "managedFields", mf));
  if (strcmp(t->plural, "customresourcedefinitions") == 0) {
    if ((err = ks_crd_validate(s, obj, old))) {
      kv_unref(obj);
      kv_unref(old);
      return err;
    }
    if (!o->dry_run && !ku_get(ku_get(obj, "metadata"), "deletionTimestamp")) {
      if ((err = ks_types_apply_crd(s, obj))) {
        kv_unref(obj);
        kv_unref(old);
        return err;
      }
      t = ks_type_find(s, "apiextensions.k8s.io", "customresourcedefinitions");
    }
  }
  kv *res;
  commit(s, t, old, obj, o->dry_run, &res);
  *out = kv_ref(res);
  kv_unref(res);
  kv_unref(old);
  return NULL;
}

kv *ks_obj_delete(ks_server *s, ks_type *t, const char *ns, const char *name,
                  const char *propagation, const kv *preconditions, bool dry_run, kv **result) {
  *result = NULL;
  char key[512];
  ks_key(key, sizeof key, t->namespaced ? ns : NULL, name);
  kv *obj = ks_table_get(&t->objs, key);
  if (!obj) return not_found(t, name);
  kv *md = ku_get(obj, "metadata");
  const char *puid = ku_str(preconditions, "uid");
  if (puid && strcmp(puid, ku_str(md, "uid")) != 0) {
    char *why = ku_fmt("Precondition failed: UID in precondition: %s, UID in object meta: %s", puid,
                       ku_str(md, "uid"));
    kv *e = conflict(t, name, why);
    free(why);
    return e;
  }
  const char *prv = ku_str(preconditions, "resourceVersion");
  if (prv && strcmp(prv, ku_str(md, "resourceVersion")) != 0) {
    char *why = ku_fmt("Precondition failed: ResourceVersion in precondition: %s, ResourceVersion "
                       "in object meta: %s",
                       prv, ku_str(md, "resourceVersion"));
    kv *e = conflict(t, name, why);
    free(why);
    return e;
  }
  bool foreground = propagation && strcmp(propagation, "Foreground") == 0;
  bool orphan = propagation && strcmp(propagation, "Orphan") == 0;
  bool is_ns = strcmp(t->plural, "namespaces") == 0;
  bool is_crd = strcmp(t->plural, "customresourcedefinitions") == 0;
  if (has_finalizers(obj) || foreground || orphan || is_ns || is_crd) {
    kv *nobj = kv_ref(obj);
    if (!ku_get(md, "deletionTimestamp")) {
      char now[32];
      ku_now_rfc3339(now);
      replace(&nobj, set_meta(nobj, "deletionTimestamp", kv_cstring(now)));
      replace(&nobj, set_meta(nobj, "deletionGracePeriodSeconds", kv_int(0)));
    }
    /* a CRD first deletes its custom resources (the apiextensions
     * finalizer), then goes */
    const char *adds[2] = {foreground ? "foregroundDeletion"
                           : orphan   ? "orphan"
                                      : NULL,
                           is_crd && !ku_get(md, "deletionTimestamp")
                               ? "customresourcecleanup.apiextensions.k8s.io"
                               : NULL};
    for (size_t k = 0; k < 2; k++) {
      kv *cf = ku_get(ku_get(nobj, "metadata"), "finalizers");
      if (!adds[k] || list_has(cf, adds[k])) continue;
      kv *nf = kv_list_new((cf && cf->kind == KV_LIST ? kv_len(cf) : 0) + 1);
      for (size_t i = 0; cf && cf->kind == KV_LIST && i < kv_len(cf); i++)
        kv_list_push(nf, kv_ref(kv_list_at(cf, i)));
      kv_list_push(nf, kv_cstring(adds[k]));
      replace(&nobj, set_meta(nobj, "finalizers", nf));
    }
    if (is_crd && adds[1]) {
      char now[32];
      ku_now_rfc3339(now);
      kv *cond = kv_map_new(5);
      kv_map_set_str(cond, "type", kv_cstring("Terminating"));
      kv_map_set_str(cond, "status", kv_cstring("True"));
      kv_map_set_str(cond, "lastTransitionTime", kv_cstring(now));
      kv_map_set_str(cond, "reason", kv_cstring("InstanceDeletionPending"));
      kv_map_set_str(cond, "message",
                     kv_cstring("CustomResourceDefinition marked for deletion; CustomResource "
                                "deletion will begin soon"));
      kv *conds = ku_path(nobj, "status.conditions");
      kv *nc = kv_list_new(4);
      for (size_t i = 0; conds && conds->kind == KV_LIST && i < kv_len(conds); i++)
        kv_list_push(nc, kv_ref(kv_list_at(conds, i)));
      kv_list_push(nc, cond);
      replace(&nobj, ku_with(nobj, "status", ku_with(ku_get(nobj, "status"), "conditions", nc)));
    }
    if (is_ns) {
      kv *st = ku_with(ku_get(nobj, "status"), "phase", kv_cstring("Terminating"));
      replace(&nobj, ku_with(nobj, "status", st));
    }
    kv *res;
    kv_ref(obj);
    commit(s, t, obj, nobj, dry_run, &res);
    kv_unref(obj);
    *result = res;
    ks_gc_schedule(s);
    return NULL;
  }
  /* immediate deletion */
  kv *d = ks_details(name, t->group, t->plural);
  kv_map_set_str(d, "uid", kv_cstring(ku_str(md, "uid")));
  kv *st = kv_map_new(6);
  kv_map_set_str(st, "kind", kv_cstring("Status"));
  kv_map_set_str(st, "apiVersion", kv_cstring("v1"));
  kv_map_set_str(st, "metadata", kv_map_new(0));
  kv_map_set_str(st, "status", kv_cstring("Success"));
  kv_map_set_str(st, "details", d);
  if (!dry_run) {
    uint64_t rv = ks_next_rv(s);
    kv *prev = ks_table_del(&t->objs, key);
    kv *last = set_meta(prev, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)rv));
    ks_emit(s, t, KS_EV_DELETED, last, NULL, rv);
    after_delete(s, t, last);
    kv_unref(last);
    kv_unref(prev);
  }
  *result = st;
  return NULL;
}

/* ---- request helpers ------------------------------------------------------------------------ */

static kv *parse_body(ks_conn *c, kv **err) {
  const char *ct = ks_header(&c->req, "content-type");
  kv_parse_error pe;
  *err = NULL;
  if (ct && strstr(ct, "application/vnd.kubernetes.protobuf")) {
    char why[256];
    kv *v = ks_proto_decode(c->req.body, c->req.body_len, why, sizeof why);
    if (!v)
      *err = ks_status(415, "UnsupportedMediaType", NULL,
                       "the body of the request was in an unknown format - accepted media types "
                       "include: application/json, application/yaml (%s)",
                       why);
    return v;
  }
  if (ct && !strstr(ct, "json") && !strstr(ct, "yaml") && c->req.body_len) {
    *err = ks_status(
        415, "UnsupportedMediaType", NULL,
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf");
    return NULL;
  }
  if (c->req.body_len == 0) {
    *err = bad_request("the body of the request was empty");
    return NULL;
  }
  kv *v;
  if (ct && strstr(ct, "yaml")) {
    kv *docs = kv_yaml_parse(c->req.body, c->req.body_len, NULL, &pe);
    v = (docs && kv_len(docs) > 0) ? kv_ref(kv_list_at(docs, 0)) : NULL;
    kv_unref(docs);
  } else {
    v = kv_json_parse(c->req.body, c->req.body_len, &pe);
  }
  if (!v) {
    *err = ks_status(400, "BadRequest", NULL,
                     "the body of the request could not be decoded: line %u, column %u: %s",
                     pe.line, pe.col, pe.msg);
    return NULL;
  }
  return v;
}

static void wopts_of(ks_conn *c, wopts *o) {
  const char *dry = ks_param_get(&c->req, "dryRun");
  o->dry_run = dry && strcmp(dry, "All") == 0;
  o->operation = NULL;
  o->subresource = NULL;
  o->manager = ks_param_get(&c->req, "fieldManager");
  o->validation = ks_param_get(&c->req, "fieldValidation");
  if (!o->manager || !*o->manager) {
    static __thread char ua[64];
    const char *u = ks_header(&c->req, "user-agent");
    size_t n = 0;
    while (u && u[n] && u[n] != '/' && n < sizeof ua - 1) {
      ua[n] = u[n];
      n++;
    }
    ua[n] = 0;
    o->manager = n ? ua : "unknown";
  }
}

static void respond_obj(ks_conn *c, int code, const ks_type *t, const char *version,
                        const kv *obj) {
  kv *out = ks_obj_for_version(t, obj, version);
  if (wants_table(c) && ku_get(out, "metadata") &&
      strcmp(ku_str(out, "kind") ? ku_str(out, "kind") : "", "Status") != 0) {
    kv *tb = ks_table_of(c->srv, t, version, &out, 1, true, ks_param_get(&c->req, "includeObject"));
    ks_respond_json(c, code, tb, "application/json;as=Table;v=v1;g=meta.k8s.io");
    kv_unref(tb);
  } else if (wants_partial(c) && ku_get(out, "metadata")) {
    kv *p = kv_map_new(3);
    kv_map_set_str(p, "kind", kv_cstring("PartialObjectMetadata"));
    kv_map_set_str(p, "apiVersion", kv_cstring("meta.k8s.io/v1"));
    kv_map_set_str(p, "metadata", kv_ref(ku_get(out, "metadata")));
    ks_respond_json(c, code, p, "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io");
    kv_unref(p);
  } else {
    ks_respond_json(c, code, out, NULL);
  }
  kv_unref(out);
}

/* ---- list
 * ----------------------------------------------------------------------------------------- */

static void handle_list(ks_conn *c, target *tg) {
  ks_server *s = c->srv;
  kv *err = NULL;
  ks_sel *ls = ks_label_sel_parse(ks_param_get(&c->req, "labelSelector"), &err);
  if (!ls) {
    ks_respond_status(c, err);
    return;
  }
  ks_sel *fs = ks_field_sel_parse(ks_param_get(&c->req, "fieldSelector"), tg->t, &err);
  if (!fs) {
    ks_sel_free(ls);
    ks_respond_status(c, err);
    return;
  }
  const char *lim = ks_param_get(&c->req, "limit");
  long limit = lim ? atol(lim) : 0;
  const char *cont = ks_param_get(&c->req, "continue");
  char *start = NULL;
  uint64_t list_rv = s->rv;
  if (cont && *cont) {
    size_t n;
    unsigned char *raw = ku_b64dec(cont, strlen(cont), &n);
    kv_parse_error pe;
    kv *tok = raw ? kv_json_parse((char *)raw, n, &pe) : NULL;
    free(raw);
    int64_t trv = 0;
    const char *st = ku_str(tok, "start");
    if (!tok || !st || !ku_as_int(ku_get(tok, "rv"), &trv)) {
      kv_unref(tok);
      ks_sel_free(ls);
      ks_sel_free(fs);
      ks_respond_status(c, bad_request("continue key is not valid: incorrect encoded start "
                                       "resourceVersion (version meta.k8s.io/v1)"));
      return;
    }
    if ((uint64_t)trv < s->floor) {
      kv_unref(tok);
      ks_sel_free(ls);
      ks_sel_free(fs);
      ks_respond_status(
          c, ks_status(410, "Expired", NULL,
                       "The provided continue parameter is too old to display a consistent list "
                       "result. You can start a new list without the continue parameter, or use "
                       "the continue token in this response to retrieve the remainder of the "
                       "results. Continuing with the provided token results in an inconsistent "
                       "list - objects that were created, modified, or deleted between the time "
                       "the first chunk was returned and now may show up in the list."));
      return;
    }
    start = strdup(st);
    list_rv = (uint64_t)trv;
    kv_unref(tok);
  }
  size_t n;
  ks_entry **all = ks_table_sorted(&tg->t->objs, &n);
  kv *items = kv_list_new(n < 64 ? n : 64);
  char *next_key = NULL;
  size_t remaining = 0;
  for (size_t i = 0; i < n; i++) {
    kv *o = all[i]->obj;
    if (start && strcmp(all[i]->key, start) <= 0) continue;
    if (tg->ns && (!obj_ns(o) || strcmp(obj_ns(o), tg->ns) != 0)) continue;
    if (!ks_label_sel_match(ls, o) || !ks_field_sel_match(fs, o)) continue;
    if (limit > 0 && (long)kv_len(items) >= limit) {
      if (!next_key) next_key = strdup(all[i - 1]->key);
      remaining++;
      continue;
    }
    kv_list_push(items, ks_obj_for_version(tg->t, o, tg->version));
  }
  /* the last key of this page */
  if (next_key) {
    free(next_key);
    kv *last = kv_list_at(items, kv_len(items) - 1);
    char key[512];
    ks_key(key, sizeof key, obj_ns(last), obj_name(last));
    next_key = strdup(key);
  }
  free(all);
  free(start);
  kv *md = kv_map_new(3);
  kv_map_set_str(md, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)list_rv));
  if (next_key) {
    kv *tok = kv_map_new(3);
    kv_map_set_str(tok, "v", kv_cstring("meta.k8s.io/v1"));
    kv_map_set_str(tok, "rv", kv_uint(list_rv));
    kv_map_set_str(tok, "start", kv_cstring(next_key));
    size_t tl;
    char *tj = ku_json(tok, &tl);
    char *b64 = ku_b64(tj, tl);
    kv_map_set_str(md, "continue", kv_string_take(b64, strlen(b64)));
    free(tj);
    kv_unref(tok);
    if (ks_sel_empty(ls) && ks_sel_empty(fs))
      kv_map_set_str(md, "remainingItemCount", kv_int((int64_t)remaining));
    free(next_key);
  }
  ks_sel_free(ls);
  ks_sel_free(fs);
  if (wants_table(c)) {
    kv *tb = ks_table_of(s, tg->t, tg->version, (kv *const *)items->u.list.items, kv_len(items),
                         true, ks_param_get(&c->req, "includeObject"));
    kv *tmd =
        ku_with(ku_get(tb, "metadata"), "resourceVersion", kv_ref(ku_get(md, "resourceVersion")));
    if (ku_get(md, "continue"))
      replace(&tmd, ku_with(tmd, "continue", kv_ref(ku_get(md, "continue"))));
    if (ku_get(md, "remainingItemCount"))
      replace(&tmd, ku_with(tmd, "remainingItemCount", kv_ref(ku_get(md, "remainingItemCount"))));
    replace(&tb, ku_with(tb, "metadata", tmd));
    ks_respond_json(c, 200, tb, "application/json;as=Table;v=v1;g=meta.k8s.io");
    kv_unref(tb);
    kv_unref(items);
    kv_unref(md);
    return;
  }
  kv *list = kv_map_new(4);
  if (wants_partial(c)) {
    kv_map_set_str(list, "kind", kv_cstring("PartialObjectMetadataList"));
    kv_map_set_str(list, "apiVersion", kv_cstring("meta.k8s.io/v1"));
    kv *pl = kv_list_new(kv_len(items));
    for (size_t i = 0; i < kv_len(items); i++) {
      kv *p = kv_map_new(3);
      kv_map_set_str(p, "kind", kv_cstring("PartialObjectMetadata"));
      kv_map_set_str(p, "apiVersion", kv_cstring("meta.k8s.io/v1"));
      kv_map_set_str(p, "metadata", kv_ref(ku_get(kv_list_at(items, i), "metadata")));
      kv_list_push(pl, p);
    }
    kv_unref(items);
    items = pl;
  } else {
    kv_map_set_str(list, "kind", kv_cstring(tg->t->list_kind));
    kv_map_set_str(list, "apiVersion", served_api_version(tg->t, tg->version));
  }
  kv_map_set_str(list, "metadata", md);
  kv_map_set_str(list, "items", items);
  ks_respond_json(
      c, 200, list,
      wants_partial(c) ? "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io" : NULL);
  kv_unref(list);
}

static void handle_watch(ks_conn *c, target *tg) {
  ks_server *s = c->srv;
  kv *err = NULL;
  ks_sel *ls = ks_label_sel_parse(ks_param_get(&c->req, "labelSelector"), &err);
  if (!ls) {
    ks_respond_status(c, err);
    return;
  }
  ks_sel *fs = ks_field_sel_parse(ks_param_get(&c->req, "fieldSelector"), tg->t, &err);
  if (!fs) {
    ks_sel_free(ls);
    ks_respond_status(c, err);
    return;
  }
  ks_watch *w = calloc(1, sizeof *w);
  if (!w) kv_oom();
  w->t = tg->t;
  w->version = strdup(tg->version);
  w->ns = tg->ns ? strdup(tg->ns) : NULL;
  if (!w->version) kv_oom();
  w->lsel = ls;
  w->fsel = fs;
  w->table = wants_table(c);
  const char *bm = ks_param_get(&c->req, "allowWatchBookmarks");
  w->bookmarks = bm && (strcmp(bm, "true") == 0 || strcmp(bm, "1") == 0);
  const char *rvs = ks_param_get(&c->req, "resourceVersion");
  const char *sie = ks_param_get(&c->req, "sendInitialEvents");
  bool initial = sie && strcmp(sie, "true") == 0;
  uint64_t from = 0;
  bool from_set = rvs && *rvs;
  if (from_set) {
    char *end;
    from = strtoull(rvs, &end, 10);
    if (*end) {
      ks_watch_free(s, w);
      ks_respond_status(c, ks_status(400, "BadRequest", NULL, "invalid resource version: %s", rvs));
      return;
    }
  }
  ks_watch_start(s, c, w, from, from_set, initial, initial && w->bookmarks);
}

/* ---- the resource verbs
 * ------------------------------------------------------------------------------ */

static kv *get_existing(ks_server *s, target *tg, kv **err) {
  char key[512];
  ks_key(key, sizeof key, tg->t->namespaced ? tg->ns : NULL, tg->name);
  kv *o = ks_table_get(&tg->t->objs, key);
  if (!o) *err = not_found(tg->t, tg->name);
  (void)s;
  return o;
}

static void handle_patch(ks_conn *c, target *tg) {
  ks_server *s = c->srv;
  kv *err = NULL;
  const char *ct = ks_header(&c->req, "content-type");
  if (!ct) ct = "";
  wopts o;
  wopts_of(c, &o);
  bool smp = strstr(ct, "application/strategic-merge-patch+json") != NULL;
  bool merge = strstr(ct, "application/merge-patch+json") != NULL;
  bool jsonp = strstr(ct, "application/json-patch+json") != NULL;
  bool apply = strstr(ct, "application/apply-patch+yaml") != NULL ||
               strstr(ct, "application/apply-patch+json") != NULL ||
               strstr(ct, "application/apply-patch+cbor") != NULL;
  if ((!smp && !merge && !jsonp && !apply) || (smp && tg->t->is_crd)) {
    ks_respond_status(c,
                      ks_status(415, "UnsupportedMediaType", NULL,
                                "the body of the request was in an unknown format - accepted media "
                                "types include: application/json-patch+json, "
                                "application/merge-patch+json, application/apply-patch+yaml%s",
                                tg->t->is_crd ? "" : ", application/strategic-merge-patch+json"));
    return;
  }
  kv *patch;
  if (apply) {
    kv_parse_error pe;
    kv *docs = kv_yaml_parse(c->req.body, c->req.body_len, NULL, &pe);
    patch = (docs && kv_len(docs) == 1) ? kv_ref(kv_list_at(docs, 0)) : NULL;
    kv_unref(docs);
    if (!patch) {
      ks_respond_status(c, ks_status(400, "BadRequest", NULL, "error decoding YAML: %s",
                                     docs ? "expected one document" : pe.msg));
      return;
    }
  } else {
    kv_parse_error pe;
    patch = kv_json_parse(c->req.body, c->req.body_len, &pe);
    if (!patch) {
      ks_respond_status(c, ks_status(400, "BadRequest", NULL,
                                     "error decoding patch: line %u, column %u: %s", pe.line,
                                     pe.col, pe.msg));
      return;
    }
  }
  char key[512];
  ks_key(key, sizeof key, tg->t->namespaced ? tg->ns : NULL, tg->name);
  kv *cur = ks_table_get(&tg->t->objs, key);
  if (apply) {
    if (tg->sub && strcmp(tg->sub, "status") != 0) {
      kv_unref(patch);
      ks_respond_status(c, ks_status(415, "UnsupportedMediaType", NULL,
                                     "apply is not supported on the %s subresource", tg->sub));
      return;
    }
    const char *fm = ks_param_get(&c->req, "fieldManager");
    if (!fm || !*fm) {
      kv_unref(patch);
      ks_respond_status(c, invalid(tg->t, tg->name, "fieldManager", "FieldValueRequired",
                                   "Required value: is required for apply patch"));
      return;
    }
    const char *force = ks_param_get(&c->req, "force");
    bool forced = force && strcmp(force, "true") == 0;
    if (!cur) {
      if ((err = check_namespace(s, tg->t, tg->ns, true))) {
        kv_unref(patch);
        ks_respond_status(c, err);
        return;
      }
      kv *obj = ks_ssa(s, tg->t, NULL, patch, fm, forced, NULL, &err);
      kv_unref(patch);
      if (!obj) {
        ks_respond_status(c, err);
        return;
      }
      replace(&obj, set_meta(obj, "name", kv_cstring(tg->name)));
      wopts co = o;
      co.manager = fm;
      co.operation = "Apply";
      kv *out;
      err = do_create(s, tg->t, tg->version, tg->ns, obj, &co, &out);
      if (err) {
        ks_respond_status(c, err);
        return;
      }
      respond_obj(c, 201, tg->t, tg->version, out);
      kv_unref(out);
      return;
    }
    kv *view = ks_obj_for_version(tg->t, cur, tg->version);
    kv *obj = ks_ssa(s, tg->t, view, patch, fm, forced, kv_str(ku_get(view, "apiVersion")), &err);
    kv_unref(view);
    kv_unref(patch);
    if (!obj) {
      ks_respond_status(c, err);
      return;
    }
    wopts ao = o;
    ao.manager = fm;
    kv *out;
    err = do_update(s, tg->t, tg->version, tg->ns, tg->name, obj, tg->sub, &ao, &out, "Apply");
    if (err) {
      ks_respond_status(c, err);
      return;
    }
    respond_obj(c, 200, tg->t, tg->version, out);
    kv_unref(out);
    return;
  }
  if (!cur) {
    kv_unref(patch);
    if ((err = check_namespace(s, tg->t, tg->ns, false))) {
      ks_respond_status(c, err);
      return;
    }
    ks_respond_status(c, not_found(tg->t, tg->name));
    return;
  }
  ks_version *v = tg->v;
  kv *view;
  if (tg->sub && strcmp(tg->sub, "scale") == 0)
    view = ks_scale_get(tg->t, v, cur);
  else
    view = ks_obj_for_version(tg->t, cur, tg->version);
  kv *patched;
  if (merge) {
    if (patch->kind != KV_MAP) {
      kv_unref(view);
      kv_unref(patch);
      ks_respond_status(c, bad_request("the server rejected our request due to an error in our "
                                       "request: merge patch must be a JSON object"));
      return;
    }
    patched = ks_merge_patch(view, patch);
  } else if (jsonp) {
    patched = ks_json_patch(view, patch, &err);
  } else {
    patched = ks_strategic_patch(tg->t, view, patch, &err);
  }
  kv_unref(patch);
  if (!patched) {
    kv_unref(view);
    ks_respond_status(c, err);
    return;
  }
  if (tg->sub && strcmp(tg->sub, "scale") == 0) {
    kv *nobj = ks_scale_set(tg->t, v, cur, patched, &err);
    kv_unref(patched);
    kv_unref(view);
    if (!nobj) {
      ks_respond_status(c, err);
      return;
    }
    kv *out;
    o.subresource = "scale";
    err = do_update(s, tg->t, tg->version, tg->ns, tg->name, nobj, NULL, &o, &out, "Update");
    if (err) {
      ks_respond_status(c, err);
      return;
    }
    kv *sc = ks_scale_get(tg->t, v, out);
    ks_respond_json(c, 200, sc, NULL);
    kv_unref(sc);
    kv_unref(out);
    return;
  }
  kv_unref(view);
  /* a patch that does not name a resourceVersion applies to the latest */
  kv *out;
  err = do_update(s, tg->t, tg->version, tg->ns, tg->name, patched, tg->sub, &o, &out, "Update");
  if (err) {
    ks_respond_status(c, err);
    return;
  }
  respond_obj(c, 200, tg->t, tg->version, out);
  kv_unref(out);
}

static void handle_delete(ks_conn *c, target *tg) {
  ks_server *s = c->srv;
  kv *opts = NULL, *err = NULL;
  if (c->req.body_len) {
    kv_parse_error pe;
    opts = kv_json_parse(c->req.body, c->req.body_len, &pe);
    if (!opts) {
      ks_respond_status(
          c, bad_request("the body of the request could not be decoded as DeleteOptions"));
      return;
    }
  }
  const char *prop = ku_str(opts, "propagationPolicy");
  if (!prop) prop = ks_param_get(&c->req, "propagationPolicy");
  kv *orph = ku_get(opts, "orphanDependents");
  if (!prop && orph && orph->kind == KV_BOOL) prop = orph->u.b ? "Orphan" : "Background";
  const char *dry = ks_param_get(&c->req, "dryRun");
  kv *dl = ku_get(opts, "dryRun");
  bool dry_run = (dry && strcmp(dry, "All") == 0) || list_has(dl, "All");
  if (prop && strcmp(prop, "Foreground") != 0 && strcmp(prop, "Background") != 0 &&
      strcmp(prop, "Orphan") != 0) {
    kv_unref(opts);
    ks_respond_status(c, invalid(tg->t, tg->name, "propagationPolicy", "FieldValueNotSupported",
                                 "Unsupported value: propagationPolicy: supported values: "
                                 "\"Foreground\", \"Background\", \"Orphan\""));
    return;
  }
  if (!tg->name) {
    /* deletecollection */
    ks_sel *ls = ks_label_sel_parse(ks_param_get(&c->req, "labelSelector"), &err);
    ks_sel *fs =
        ls ? ks_field_sel_parse(ks_param_get(&c->req, "fieldSelector"), tg->t, &err) : NULL;
    if (!ls || !fs) {
      ks_sel_free(ls);
      kv_unref(opts);
      ks_respond_status(c, err);
      return;
    }
    size_t n;
    ks_entry **all = ks_table_sorted(&tg->t->objs, &n);
    kv *items = kv_list_new(n);
    for (size_t i = 0; i < n; i++) {
      kv *o = all[i]->obj;
      if (tg->ns && (!obj_ns(o) || strcmp(obj_ns(o), tg->ns) != 0)) continue;
      if (!ks_label_sel_match(ls, o) || !ks_field_sel_match(fs, o)) continue;
      kv_list_push(items, kv_ref(o));
    }
    free(all);
    for (size_t i = 0; i < kv_len(items); i++) {
      kv *o = kv_list_at(items, i), *res = NULL;
      kv *e = ks_obj_delete(s, tg->t, obj_ns(o), obj_name(o), prop, NULL, dry_run, &res);
      kv_unref(e);
      kv_unref(res);
    }
    ks_sel_free(ls);
    ks_sel_free(fs);
    kv *list = kv_map_new(4);
    kv_map_set_str(list, "kind", kv_cstring(tg->t->list_kind));
    kv_map_set_str(list, "apiVersion", served_api_version(tg->t, tg->version));
    kv *md = kv_map_new(1);
    kv_map_set_str(md, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)s->rv));
    kv_map_set_str(list, "metadata", md);
    kv_map_set_str(list, "items", items);
    ks_respond_json(c, 200, list, NULL);
    kv_unref(list);
    kv_unref(opts);
    return;
  }
  kv *res = NULL;
  err =
      ks_obj_delete(s, tg->t, tg->ns, tg->name, prop, ku_get(opts, "preconditions"), dry_run, &res);
  if (err) {
    kv_unref(opts);
    ks_respond_status(c, err);
    return;
  }
  if (strcmp(ku_str(res, "kind") ? ku_str(res, "kind") : "", "Status") == 0) {
    kv *code = ku_with(res, "code", kv_int(200));
    ks_respond_json(c, 200, code, NULL);
    kv_unref(code);
  } else {
    respond_obj(c, prop && strcmp(prop, "Foreground") == 0 ? 202 : 200, tg->t, tg->version, res);
  }
  kv_unref(res);
  kv_unref(opts);
}

static void handle_resource(ks_conn *c, target *tg, bool watch_prefix) {
  ks_server *s = c->srv;
  const char *m = c->req.method;
  kv *err = NULL;
  if (tg->sub) {
    bool ok = (strcmp(tg->sub, "status") == 0 && tg->v->status) ||
              (strcmp(tg->sub, "scale") == 0 && tg->v->scale) ||
              (strcmp(tg->sub, "finalize") == 0 && strcmp(tg->t->plural, "namespaces") == 0);
    if (!ok || !tg->name) {
      ks_respond_status(
          c, ks_status(404, "NotFound", NULL, "the server could not find the requested resource"));
      return;
    }
  }
  if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
    const char *w = ks_param_get(&c->req, "watch");
    bool watch = watch_prefix || (w && (strcmp(w, "true") == 0 || strcmp(w, "1") == 0));
    if (!tg->name) {
      if (watch)
        handle_watch(c, tg);
      else
        handle_list(c, tg);
      return;
    }
    if (watch) {
      /* a watch of one object: a field selector on its name */
      ks_respond_status(
          c, bad_request("watch of a single object: use a fieldSelector on metadata.name"));
      return;
    }
    kv *o = get_existing(s, tg, &err);
    if (!o) {
      ks_respond_status(c, err);
      return;
    }
    if (tg->sub && strcmp(tg->sub, "scale") == 0) {
      kv *sc = ks_scale_get(tg->t, tg->v, o);
      ks_respond_json(c, 200, sc, NULL);
      kv_unref(sc);
      return;
    }
    respond_obj(c, 200, tg->t, tg->version, o);
    return;
  }
  wopts o;
  wopts_of(c, &o);
  if (strcmp(m, "POST") == 0) {
    if (tg->name) {
      ks_respond_status(
          c, ks_status(405, "MethodNotAllowed", NULL,
                       "the server does not allow this method on the requested resource"));
      return;
    }
    if (tg->t->namespaced && !tg->ns) {
      ks_respond_status(
          c, ks_status(404, "NotFound", NULL, "the server could not find the requested resource"));
      return;
    }
    kv *body = parse_body(c, &err);
    if (!body) {
      ks_respond_status(c, err);
      return;
    }
    const char *av = ku_str(body, "apiVersion");
    kv *want = served_api_version(tg->t, tg->version);
    if (av && strcmp(av, kv_str(want)) != 0) {
      char *msg =
          ku_fmt("the API version in the data (%s) does not match the expected API version (%s)",
                 av, kv_str(want));
      kv_unref(want);
      kv_unref(body);
      ks_respond_status(c, bad_request(msg));
      free(msg);
      return;
    }
    kv_unref(want);
    const char *kind = ku_str(body, "kind");
    if (kind && strcmp(kind, tg->t->kind) != 0) {
      char *msg = ku_fmt("the kind in the data (%s) does not match the expected kind (%s)", kind,
                         tg->t->kind);
      kv_unref(body);
      ks_respond_status(c, bad_request(msg));
      free(msg);
      return;
    }
    kv *out;
    err = do_create(s, tg->t, tg->version, tg->ns, body, &o, &out);
    if (err) {
      ks_respond_status(c, err);
      return;
    }
    respond_obj(c, 201, tg->t, tg->version, out);
    kv_unref(out);
    return;
  }
  if (!tg->name) {
    if (strcmp(m, "DELETE") == 0) {
      handle_delete(c, tg);
      return;
    }
    ks_respond_status(c,
                      ks_status(405, "MethodNotAllowed", NULL,
                                "the server does not allow this method on the requested resource"));
    return;
  }
  if (strcmp(m, "PUT") == 0) {
    kv *body = parse_body(c, &err);
    if (!body) {
      ks_respond_status(c, err);
      return;
    }
    if (tg->sub && strcmp(tg->sub, "scale") == 0) {
      kv *cur = get_existing(s, tg, &err);
      if (!cur) {
        kv_unref(body);
        ks_respond_status(c, err);
        return;
      }
      const char *want_rv = ku_str(ku_get(body, "metadata"), "resourceVersion");
      kv *nobj = ks_scale_set(tg->t, tg->v, cur, body, &err);
      if (nobj && want_rv && *want_rv)
        replace(&nobj, set_meta(nobj, "resourceVersion", kv_cstring(want_rv)));
      kv_unref(body);
      if (!nobj) {
        ks_respond_status(c, err);
        return;
      }
      kv *out;
      o.subresource = "scale";
      err = do_update(s, tg->t, tg->version, tg->ns, tg->name, nobj, NULL, &o, &out, "Update");
      if (err) {
        ks_respond_status(c, err);
        return;
      }
      kv *sc = ks_scale_get(tg->t, tg->v, out);
      ks_respond_json(c, 200, sc, NULL);
      kv_unref(sc);
      kv_unref(out);
      return;
    }
    if (tg->sub && strcmp(tg->sub, "finalize") == 0) {
      /* namespaces/finalize: only spec.finalizers changes */
      kv *cur = get_existing(s, tg, &err);
      if (!cur) {
        kv_unref(body);
        ks_respond_status(c, err);
        return;
      }
      kv *sf = ku_path(body, "spec.finalizers");
      kv *spec = sf ? ku_with(ku_get(cur, "spec"), "finalizers", kv_ref(sf))
                    : ku_without(ku_get(cur, "spec"), "finalizers");
      kv *nobj = ku_with(cur, "spec", spec);
      kv_unref(body);
      kv *out;
      err =
          do_update(s, tg->t, tg->version, tg->ns, tg->name, nobj, "finalize", &o, &out, "Update");
      if (err) {
        ks_respond_status(c, err);
        return;
      }
      respond_obj(c, 200, tg->t, tg->version, out);
      kv_unref(out);
      return;
    }
    kv *out;
    err = do_update(s, tg->t, tg->version, tg->ns, tg->name, body, tg->sub, &o, &out, "Update");
    if (err) {
      ks_respond_status(c, err);
      return;
    }
    respond_obj(c, 200, tg->t, tg->version, out);
    kv_unref(out);
    return;
  }
  if (strcmp(m, "PATCH") == 0) {
    handle_patch(c, tg);
    return;
  }
  if (strcmp(m, "DELETE") == 0) {
    if (tg->sub) {
      ks_respond_status(
          c, ks_status(405, "MethodNotAllowed", NULL,
                       "the server does not allow this method on the requested resource"));
      return;
    }
    handle_delete(c, tg);
    return;
  }
  ks_respond_status(c,
                    ks_status(405, "MethodNotAllowed", NULL,
                              "the server does not allow this method on the requested resource"));
}

/* ---- routing
 * --------------------------------------------------------------------------------------------- */

static size_t split_path(const char *path, char **seg, size_t max) {
  size_t n = 0;
  const char *p = path;
  while (*p && n < max) {
    while (*p == '/')
      p++;
    if (!*p) break;
    const char *e = strchr(p, '/');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    seg[n] = strndup(p, l);
    if (!seg[n]) kv_oom();
    n++;
    p += l;
  }
  return n;
}

static void not_found_path(ks_conn *c) {
  ks_respond(c, 404, "text/plain; charset=utf-8", "404 page not found\n", 19, NULL);
}

static void respond_discovery_json(ks_conn *c, kv *doc) {
  if (!doc) {
    not_found_path(c);
    return;
  }
  ks_respond_json(c, 200, doc, NULL);
  kv_unref(doc);
}

/* Serve /api or /apis, aggregated when the client asks for it. */
static void serve_root(ks_conn *c, bool core) {
  const char *a = accept_of(c);
  bool v2 = strstr(a, "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") != NULL;
  bool v2b = strstr(a, "g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") != NULL;
  if (v2 || v2b) {
    kv *d = ks_discovery_aggregated(c->srv, core, !v2);
    ks_respond_json(
        c, 200, d,
        v2 ? "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
           : "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList");
    kv_unref(d);
    return;
  }
  respond_discovery_json(c, core ? ks_discovery_api(c->srv) : ks_discovery_apis(c->srv));
}

static void route(ks_conn *c) {
  ks_server *s = c->srv;
  char *seg[12] = {0};
  size_t n = split_path(c->req.path, seg, 12);
  const char *m = c->req.method;
  bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
  if (s->verbose) fprintf(stderr, "kubesim: %s %s?%s\n", m, c->req.path, c->req.query);
  if (n == 1 && get && strcmp(seg[0], "version") == 0) {
    kv *v = kv_map_new(10);
    kv_map_set_str(v, "major", kv_cstring("1"));
    kv_map_set_str(v, "minor", kv_cstring("32"));
    kv_map_set_str(v, "gitVersion", kv_cstring("v1.32.0-kubesim"));
    kv_map_set_str(v, "gitCommit", kv_cstring("0000000000000000000000000000000000000000"));
    kv_map_set_str(v, "gitTreeState", kv_cstring("clean"));
    kv_map_set_str(v, "buildDate", kv_cstring("2024-12-11T00:00:00Z"));
    kv_map_set_str(v, "goVersion", kv_cstring("go1.23.3"));
    kv_map_set_str(v, "compiler", kv_cstring("gc"));
    kv_map_set_str(v, "platform", kv_cstring("linux/amd64"));
    ks_respond_json(c, 200, v, NULL);
    kv_unref(v);
  } else if (n == 1 && get &&
             (strcmp(seg[0], "healthz") == 0 || strcmp(seg[0], "livez") == 0 ||
              strcmp(seg[0], "readyz") == 0)) {
    ks_respond(c, 200, "text/plain; charset=utf-8", "ok", 2, NULL);
  } else if (n >= 1 && strcmp(seg[0], "kubesim") == 0) {
    ks_admin_handle(c, seg, n);
  } else if (n >= 2 && get && strcmp(seg[0], "openapi") == 0 && strcmp(seg[1], "v3") == 0) {
    if (n == 2) {
      respond_discovery_json(c, ks_openapi_root(s));
    } else if (n == 4 && strcmp(seg[2], "api") == 0) {
      respond_discovery_json(c, ks_openapi_gv(s, "", seg[3]));
    } else if (n == 5 && strcmp(seg[2], "apis") == 0) {
      respond_discovery_json(c, ks_openapi_gv(s, seg[3], seg[4]));
    } else {
      not_found_path(c);
    }
  } else if (n == 1 && get && strcmp(seg[0], "api") == 0) {
    serve_root(c, true);
  } else if (n == 1 && get && strcmp(seg[0], "apis") == 0) {
    serve_root(c, false);
  } else if (n == 2 && get && strcmp(seg[0], "api") == 0) {
    respond_discovery_json(c, ks_discovery_resources(s, "", seg[1]));
  } else if (n == 2 && get && strcmp(seg[0], "apis") == 0) {
    respond_discovery_json(c, ks_discovery_group(s, seg[1]));
  } else if (n == 3 && get && strcmp(seg[0], "apis") == 0) {
    respond_discovery_json(c, ks_discovery_resources(s, seg[1], seg[2]));
  } else if (n >= 3 && (strcmp(seg[0], "api") == 0 || strcmp(seg[0], "apis") == 0)) {
    bool core = strcmp(seg[0], "api") == 0;
    const char *group = core ? "" : seg[1];
    const char *version = core ? seg[1] : seg[2];
    size_t i = core ? 2 : 3;
    bool watch_prefix = false;
    if (i < n && strcmp(seg[i], "watch") == 0) {
      watch_prefix = true;
      i++;
    }
    target tg = {0};
    const char *plural = NULL;
    size_t rest = n - i;
    if (rest >= 3 && strcmp(seg[i], "namespaces") == 0 && strcmp(seg[i + 2], "status") != 0 &&
        strcmp(seg[i + 2], "finalize") != 0) {
      tg.ns = seg[i + 1];
      plural = seg[i + 2];
      if (rest >= 4) tg.name = seg[i + 3];
      if (rest >= 5) tg.sub = seg[i + 4];
      if (rest > 5) plural = NULL;
    } else if (rest >= 1) {
      plural = seg[i];
      if (rest >= 2) tg.name = seg[i + 1];
      if (rest >= 3) tg.sub = seg[i + 2];
      if (rest > 3) plural = NULL;
    }
    tg.t = plural ? ks_type_find(s, group, plural) : NULL;
    tg.v = tg.t ? ks_type_version(tg.t, version) : NULL;
    tg.version = version;
    if (!tg.t || !tg.v || (tg.ns && !tg.t->namespaced)) {
      not_found_path(c);
    } else {
      if (!tg.t->namespaced && strcmp(tg.t->plural, "namespaces") != 0) tg.ns = NULL;
      if (tg.t->namespaced && tg.name && !tg.ns) {
        not_found_path(c);
      } else {
        handle_resource(c, &tg, watch_prefix);
      }
    }
  } else {
    not_found_path(c);
  }
  for (size_t i = 0; i < n; i++)
    free(seg[i]);
}

static bool public_path(const char *p) {
  return strcmp(p, "/version") == 0 || strcmp(p, "/healthz") == 0 || strcmp(p, "/livez") == 0 ||
         strcmp(p, "/readyz") == 0;
}

static void delayed_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ks_conn *c = arg;
  event_free(c->delay_ev);
  c->delay_ev = NULL;
  route(c);
  ks_conn_resume(c);
}

void ks_api_handle(ks_conn *c) {
  ks_server *s = c->srv;
  if (!public_path(c->req.path)) {
    const char *auth = ks_header(&c->req, "authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, s->token) != 0) {
      ks_respond_status(c, ks_status(401, "Unauthorized", NULL, "Unauthorized"));
      return;
    }
  }
  bool admin = strncmp(c->req.path, "/kubesim", 8) == 0;
  if (!admin && s->faults.error_rate > 0 && (double)random() / RAND_MAX < s->faults.error_rate) {
    int codes[4], nc = 0;
    for (int i = 0; i < 4; i++)
      if (s->faults.error_codes[i]) codes[nc++] = s->faults.error_codes[i];
    int code = nc ? codes[random() % nc] : 500;
    kv *st;
    if (code == 429) {
      kv *d = kv_map_new(1);
      kv_map_set_str(d, "retryAfterSeconds", kv_int(s->faults.retry_after));
      st = ks_status(429, "TooManyRequests", d, "Too many requests, please try again later.");
    } else if (code == 503) {
      kv *d = kv_map_new(1);
      kv_map_set_str(d, "retryAfterSeconds", kv_int(s->faults.retry_after));
      st = ks_status(
          503, "ServiceUnavailable", d,
          "the server is currently unable to handle the request (kubesim fault injection)");
    } else if (code == 504) {
      st = ks_status(504, "Timeout", NULL,
                     "the server was unable to return a response in the time allotted (kubesim "
                     "fault injection)");
    } else {
      st = ks_status(code, "InternalError", NULL,
                     "Internal error occurred: kubesim fault injection");
    }
    ks_respond_status(c, st);
    return;
  }
  if (!admin && s->faults.latency_ms > 0) {
    c->delay_ev = evtimer_new(s->base, delayed_cb, c);
    struct timeval tv = {s->faults.latency_ms / 1000, (s->faults.latency_ms % 1000) * 1000};
    evtimer_add(c->delay_ev, &tv);
    return;
  }
  route(c);
}

/* ---- internal writes
 * ------------------------------------------------------------------------------- */

/* Store a new state of an existing object (GC, namespace lifecycle):
 * takes `obj`. */
void ks_obj_commit(ks_server *s, ks_type *t, const kv *old, kv *obj) {
  kv *res;
  kv_ref((kv *)old);
  commit(s, t, old, obj, false, &res);
  kv_unref(res);
  kv_unref((kv *)old);
}

/* The namespaces every cluster starts with. */
void ks_seed(ks_server *s) {
  static const char *const names[] = {"default", "kube-system", "kube-public", "kube-node-lease"};
  ks_type *t = ks_type_find(s, "", "namespaces");
  for (size_t i = 0; i < 4; i++) {
    char key[128];
    ks_key(key, sizeof key, NULL, names[i]);
    if (ks_table_get(&t->objs, key)) continue;
    kv *o = kv_map_new(3);
    kv_map_set_str(o, "apiVersion", kv_cstring("v1"));
    kv_map_set_str(o, "kind", kv_cstring("Namespace"));
    kv *md = kv_map_new(1);
    kv_map_set_str(md, "name", kv_cstring(names[i]));
    kv_map_set_str(o, "metadata", md);
    wopts wo = {false, "kube-apiserver", NULL, NULL, NULL};
    kv *out = NULL;
    kv *err = do_create(s, t, "v1", NULL, o, &wo, &out);
    if (err) {
      fprintf(stderr, "kubesim: seeding namespace %s: %s\n", names[i], ku_str(err, "message"));
      kv_unref(err);
    }
    kv_unref(out);
  }
}
