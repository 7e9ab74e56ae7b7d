/*
 * core/eval/memcluster.c: an in-memory Kubernetes API (kube_ops.h) for
 * `koreoctl run --dry-run` and tests: objects keyed by apiVersion, kind,
 * namespace and name; create/patch/delete with conflict and not-found
 * answers, JSON merge patch, deterministic uid/resourceVersion/timestamps,
 * plural resolution from built-ins and seeded CRDs, and a journal of
 * writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/kube_ops.h"

typedef struct mc_obj {
  char *api_version, *kind, *ns, *name; /* ns "" for cluster-scoped */
  kv *obj;
} mc_obj;

typedef struct mc_type {
  char *api_version, *kind, *plural;
  bool namespaced;
} mc_type;

struct kube_memcluster {
  mc_obj *objs;
  size_t n, cap;
  mc_type *types;
  size_t ntypes, captypes;
  uint64_t uid_seq, rv_seq, writes;
  bool strict;
  kv *journal;
};

static char *xdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

kube_memcluster *kube_memcluster_new(void) {
  kube_memcluster *mc = calloc(1, sizeof *mc);
  if (!mc) kv_oom();
  mc->journal = kv_list_new(8);
  return mc;
}

void kube_memcluster_free(kube_memcluster *mc) {
  if (!mc) return;
  for (size_t i = 0; i < mc->n; i++) {
    free(mc->objs[i].api_version);
    free(mc->objs[i].kind);
    free(mc->objs[i].ns);
    free(mc->objs[i].name);
    kv_unref(mc->objs[i].obj);
  }
  for (size_t i = 0; i < mc->ntypes; i++) {
    free(mc->types[i].api_version);
    free(mc->types[i].kind);
    free(mc->types[i].plural);
  }
  free(mc->objs);
  free(mc->types);
  kv_unref(mc->journal);
  free(mc);
}

void kube_memcluster_set_strict_kinds(kube_memcluster *mc, bool on) { mc->strict = on; }

static const char *str_at(const kv *m, const char *key) {
  if (!m || m->kind != KV_MAP) return NULL;
  const kv *v = kv_map_get_str(m, key);
  return v && v->kind == KV_STRING ? kv_str(v) : NULL;
}

static mc_obj *find(const kube_memcluster *mc, const char *av, const char *kind, const char *ns,
                    const char *name) {
  if (!ns) ns = "";
  for (size_t i = 0; i < mc->n; i++) {
    mc_obj *o = &mc->objs[i];
    if (strcmp(o->api_version, av) == 0 && strcmp(o->kind, kind) == 0 && strcmp(o->ns, ns) == 0 &&
        strcmp(o->name, name) == 0)
      return o;
  }
  return NULL;
}

static void add_type(kube_memcluster *mc, const char *av, const char *kind, const char *plural,
                     bool namespaced) {
  for (size_t i = 0; i < mc->ntypes; i++)
    if (strcmp(mc->types[i].api_version, av) == 0 && strcmp(mc->types[i].kind, kind) == 0) {
      free(mc->types[i].plural);
      mc->types[i].plural = xdup(plural);
      mc->types[i].namespaced = namespaced;
      return;
    }
  if (mc->ntypes == mc->captypes) {
    mc->captypes = mc->captypes ? 2 * mc->captypes : 8;
    mc->types = realloc(mc->types, mc->captypes * sizeof *mc->types);
    if (!mc->types) kv_oom();
  }
  mc->types[mc->ntypes++] = (mc_type){xdup(av), xdup(kind), xdup(plural), namespaced};
}

/* A CustomResourceDefinition teaches its group/versions/plural/scope. */
static void learn_crd(kube_memcluster *mc, const kv *crd) {
  const kv *spec = kv_map_get_str(crd, "spec");
  const char *group = str_at(spec, "group");
  const kv *names = spec && spec->kind == KV_MAP ? kv_map_get_str(spec, "names") : NULL;
  const char *kind = str_at(names, "kind"), *plural = str_at(names, "plural");
  const char *scope = str_at(spec, "scope");
  const kv *versions = spec && spec->kind == KV_MAP ? kv_map_get_str(spec, "versions") : NULL;
  if (!group || !kind || !plural || !versions || versions->kind != KV_LIST) return;
  bool namespaced = !scope || strcmp(scope, "Cluster") != 0;
  for (size_t i = 0; i < kv_len(versions); i++) {
    const char *v = str_at(kv_list_at(versions, i), "name");
    if (!v) continue;
    char *av;
    if (asprintf(&av, "%s/%s", group, v) < 0) kv_oom();
    add_type(mc, av, kind, plural, namespaced);
    free(av);
  }
}

/* Resolve a plural: built-in, seeded CRD, or lower-case kind + "s". */
static bool resolve_plural(const kube_memcluster *mc, const char *av, const char *kind, char *out,
                           size_t outlen) {
  const char *p;
  if (kube_builtin_type(av, kind, &p, NULL)) {
    snprintf(out, outlen, "%s", p);
    return true;
  }
  for (size_t i = 0; i < mc->ntypes; i++)
    if (strcmp(mc->types[i].api_version, av) == 0 && strcmp(mc->types[i].kind, kind) == 0) {
      snprintf(out, outlen, "%s", mc->types[i].plural);
      return true;
    }
  if (mc->strict) return false;
  size_t j = 0;
  for (; kind[j] && j + 2 < outlen; j++)
    out[j] = (char)(kind[j] >= 'A' && kind[j] <= 'Z' ? kind[j] + 32 : kind[j]);
  out[j++] = 's';
  out[j] = 0;
  return true;
}

static void store(kube_memcluster *mc, const char *av, const char *kind, const char *ns,
                  const char *name, kv *obj) {
  mc_obj *o = find(mc, av, kind, ns, name);
  if (o) {
    kv_unref(o->obj);
    o->obj = obj;
    return;
  }
  if (mc->n == mc->cap) {
    mc->cap = mc->cap ? 2 * mc->cap : 16;
    mc->objs = realloc(mc->objs, mc->cap * sizeof *mc->objs);
    if (!mc->objs) kv_oom();
  }
  mc->objs[mc->n++] = (mc_obj){xdup(av), xdup(kind), xdup(ns), xdup(name), obj};
}

int kube_memcluster_put(kube_memcluster *mc, const kv *object, char *err, size_t errlen) {
  const char *av = str_at(object, "apiVersion"), *kind = str_at(object, "kind");
  const kv *md = object && object->kind == KV_MAP ? kv_map_get_str(object, "metadata") : NULL;
  const char *name = str_at(md, "name"), *ns = str_at(md, "namespace");
  if (!av || !kind || !name || !*name) {
    snprintf(err, errlen, "memcluster: an object needs apiVersion, kind and metadata.name");
    return -1;
  }
  if (strcmp(kind, "CustomResourceDefinition") == 0) learn_crd(mc, object);
  store(mc, av, kind, ns ? ns : "", name, kv_ref((kv *)object));
  return 0;
}

kv *kube_memcluster_get(const kube_memcluster *mc, const char *api_version, const char *kind,
                        const char *ns, const char *name) {
  mc_obj *o = find(mc, api_version, kind, ns, name);
  return o ? kv_ref(o->obj) : NULL;
}

kv *kube_memcluster_objects(const kube_memcluster *mc) {
  kv *l = kv_list_new(mc->n);
  for (size_t i = 0; i < mc->n; i++)
    kv_list_push(l, kv_ref(mc->objs[i].obj));
  return l;
}

/* A copy of map `m` with key `k` set to `v` (taken). */
static kv *with_key(const kv *m, const char *k, kv *v) {
  kv *r = kv_map_new(kv_len(m) + 1);
  if (m && m->kind == KV_MAP)
    for (size_t i = 0; i < kv_len(m); i++)
      kv_map_set(r, kv_ref(kv_map_key_at(m, i)), kv_ref(kv_map_val_at(m, i)));
  kv_map_set_str(r, k, v);
  return r;
}

static kv *text_u64(uint64_t n) {
  char b[32];
  snprintf(b, sizeof b, "%llu", (unsigned long long)n);
  return kv_cstring(b);
}

/* The fixed clock: 2024-01-01T00:00:00Z plus `secs` seconds. */
static kv *clock_text(uint64_t secs) {
  uint64_t h = secs / 3600 % 24, m = secs / 60 % 60, s = secs % 60, d = secs / 86400;
  char b[40];
  snprintf(b, sizeof b, "2024-01-%02lluT%02llu:%02llu:%02lluZ", (unsigned long long)(1 + d % 28),
           (unsigned long long)h, (unsigned long long)m, (unsigned long long)s);
  return kv_cstring(b);
}

static kv *with_metadata(const kv *obj, const char *key, kv *val, bool only_if_absent) {
  const kv *md = kv_map_get_str(obj, "metadata");
  if (only_if_absent && md && md->kind == KV_MAP && kv_map_get_str(md, key)) {
    kv_unref(val);
    return kv_ref((kv *)obj);
  }
  kv *nmd = with_key(md && md->kind == KV_MAP ? md : NULL, key, val);
  return with_key(obj, "metadata", nmd);
}

static void journal(kube_memcluster *mc, const kube_request *req, kube_status st) {
  kv *e = kv_map_new(7);
  kv_map_set_str(e, "verb", kv_cstring(kube_verb_name(req->verb)));
  kv_map_set_str(e, "apiVersion", kv_cstring(req->api_version));
  kv_map_set_str(e, "kind", kv_cstring(req->kind));
  if (req->ns && *req->ns) kv_map_set_str(e, "namespace", kv_cstring(req->ns));
  kv_map_set_str(e, "name", kv_cstring(req->name));
  kv_map_set_str(e, "status", kv_cstring(kube_status_name(st)));
  if (req->body) kv_map_set_str(e, "body", kv_ref(req->body));
  kv_list_push(mc->journal, e);
}

kv *kube_memcluster_take_journal(kube_memcluster *mc) {
  kv *j = mc->journal;
  mc->journal = kv_list_new(8);
  return j;
}

int kube_memcluster_merge_patch(kube_memcluster *mc, const char *api_version, const char *kind,
                                const char *ns, const char *name, const kv *patch, char *err,
                                size_t errlen) {
  mc_obj *o = find(mc, api_version, kind, ns, name);
  if (!o) {
    snprintf(err, errlen, "memcluster: %s %s/%s not found", kind, ns ? ns : "", name);
    return -1;
  }
  kv *n = kube_merge_patch(o->obj, patch);
  kv_unref(o->obj);
  o->obj = n;
  return 0;
}

static void mc_call(void *ctx, const kube_request *req, kube_response *resp) {
  kube_memcluster *mc = ctx;
  const char *ns = req->ns ? req->ns : "";
  if (!req->plural || !*req->plural) {
    if (!resolve_plural(mc, req->api_version, req->kind, resp->plural, sizeof resp->plural)) {
      resp->status = KUBE_STATUS_KIND_UNKNOWN;
      snprintf(resp->message, sizeof resp->message, "no kind %s is known to the cluster",
               req->kind);
      return;
    }
  }
  mc_obj *o = find(mc, req->api_version, req->kind, ns, req->name);
  switch (req->verb) {
  case KUBE_GET:
    if (o) {
      resp->status = KUBE_STATUS_OK;
      resp->object = kv_ref(o->obj);
    } else {
      resp->status = KUBE_STATUS_NOT_FOUND;
      resp->http_code = 404;
      snprintf(resp->message, sizeof resp->message, "%s %s not found", req->kind, req->name);
    }
    return;
  case KUBE_CREATE: {
    if (o) {
      resp->status = KUBE_STATUS_CONFLICT;
      resp->http_code = 409;
      snprintf(resp->message, sizeof resp->message, "%s %s already exists", req->kind, req->name);
      break;
    }
    if (!req->body || req->body->kind != KV_MAP) {
      resp->status = KUBE_STATUS_SERVER_ERROR;
      resp->http_code = 400;
      snprintf(resp->message, sizeof resp->message, "create %s %s: the body is not an object",
               req->kind, req->name);
      break;
    }
    mc->writes++;
    kv *obj = kv_ref(req->body), *t;
    char uid[48];
    snprintf(uid, sizeof uid, "memcluster-%llu", (unsigned long long)++mc->uid_seq);
    t = with_metadata(obj, "uid", kv_cstring(uid), true);
    kv_unref(obj);
    obj = t;
    t = with_metadata(obj, "resourceVersion", text_u64(++mc->rv_seq), false);
    kv_unref(obj);
    obj = t;
    t = with_metadata(obj, "generation", kv_int(1), false);
    kv_unref(obj);
    obj = t;
    t = with_metadata(obj, "creationTimestamp", clock_text(mc->writes), true);
    kv_unref(obj);
    obj = t;
    if (strcmp(req->kind, "CustomResourceDefinition") == 0) learn_crd(mc, obj);
    store(mc, req->api_version, req->kind, ns, req->name, obj);
    resp->status = KUBE_STATUS_OK;
    resp->http_code = 201;
    resp->object = kv_ref(obj);
    break;
  }
  case KUBE_PATCH: {
    if (!o) {
      resp->status = KUBE_STATUS_NOT_FOUND;
      resp->http_code = 404;
      snprintf(resp->message, sizeof resp->message, "%s %s not found", req->kind, req->name);
      break;
    }
    mc->writes++;
    kv *obj = kube_merge_patch(o->obj, req->body);
    const kv *os = kv_map_get_str(o->obj, "spec"), *ns2 = kv_map_get_str(obj, "spec");
    bool spec_changed = !(os && ns2 ? kv_equal_strict(os, ns2, false) : os == ns2);
    const kv *md = kv_map_get_str(o->obj, "metadata");
    const kv *gen = md && md->kind == KV_MAP ? kv_map_get_str(md, "generation") : NULL;
    int64_t g = gen && gen->kind == KV_INT ? gen->u.i : 1;
    kv *t = with_metadata(obj, "resourceVersion", text_u64(++mc->rv_seq), false);
    kv_unref(obj);
    obj = t;
    if (spec_changed) {
      t = with_metadata(obj, "generation", kv_int(g + 1), false);
      kv_unref(obj);
      obj = t;
    }
    kv_unref(o->obj);
    o->obj = obj;
    resp->status = KUBE_STATUS_OK;
    resp->http_code = 200;
    resp->object = kv_ref(obj);
    break;
  }
  case KUBE_DELETE: {
    if (!o) {
      resp->status = KUBE_STATUS_NOT_FOUND;
      resp->http_code = 404;
      snprintf(resp->message, sizeof resp->message, "%s %s not found", req->kind, req->name);
      break;
    }
    mc->writes++;
    size_t at = (size_t)(o - mc->objs);
    free(o->api_version);
    free(o->kind);
    free(o->ns);
    free(o->name);
    kv_unref(o->obj);
    memmove(&mc->objs[at], &mc->objs[at + 1], (mc->n - at - 1) * sizeof *mc->objs);
    mc->n--;
    resp->status = KUBE_STATUS_OK;
    resp->http_code = 200;
    break;
  }
  }
  journal(mc, req, resp->status);
}

kube_ops kube_memcluster_ops(kube_memcluster *mc) { return (kube_ops){mc, mc_call}; }
