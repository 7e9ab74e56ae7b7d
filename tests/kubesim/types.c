/*
 * tests/kubesim/types.c: the resource types kubesim serves (the built-in
 * kinds and the kinds CustomResourceDefinitions declare), and the
 * documents that describe them: legacy discovery (/api, /apis, per group
 * and version), aggregated discovery (apidiscovery.k8s.io v2 and v2beta1)
 * and OpenAPI v3 (root index and one document per group-version, an honest
 * subset: paths with their verbs and query parameters, CRD schemas, and
 * open object schemas for the built-in kinds).
 */
#include "kubesim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct builtin {
  const char *group, *version, *kind, *plural, *singular;
  bool namespaced;
  const char *shorts, *cats; /* comma separated */
  bool status, scale, generation;
  const char *printer;
  const char *fields; /* extra field selector labels, comma separated */
} builtin;

static const builtin builtins[] = {
    {"", "v1", "Namespace", "namespaces", "namespace", false, "ns", NULL, true, false, false,
     "namespace", "status.phase"},
    {"", "v1", "ConfigMap", "configmaps", "configmap", true, "cm", NULL, false, false, false,
     "configmap", NULL},
    {"", "v1", "Secret", "secrets", "secret", true, NULL, NULL, false, false, false, "secret",
     "type"},
    {"", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, "sa", NULL, false,
     false, false, "serviceaccount", NULL},
    {"", "v1", "Service", "services", "service", true, "svc", "all", true, false, false, "service",
     NULL},
    {"", "v1", "Event", "events", "event", true, "ev", NULL, false, false, false, "event",
     "involvedObject.kind,involvedObject.namespace,involvedObject.name,involvedObject.uid,"
     "involvedObject.apiVersion,involvedObject.resourceVersion,involvedObject.fieldPath,reason,"
     "reportingComponent,source,type"},
    {"", "v1", "Pod", "pods", "pod", true, "po", "all", true, false, true, "pod",
     "spec.nodeName,spec.restartPolicy,spec.schedulerName,spec.serviceAccountName,"
     "spec.hostNetwork,status.phase,status.podIP,status.nominatedNodeName"},
    {"apps", "v1", "Deployment", "deployments", "deployment", true, "deploy", "all", true, true,
     true, "deployment", NULL},
    {"apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, "sts", "all", true, true,
     true, "statefulset", NULL},
    {"apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, "ds", "all", true, false, true,
     "daemonset", NULL},
    {"apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, "rs", "all", true, true, true,
     "replicaset", NULL},
    {"batch", "v1", "Job", "jobs", "job", true, NULL, "all", true, false, true, "job",
     "status.successful"},
    {"apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
     "customresourcedefinition", false, "crd,crds", NULL, true, false, true, "crd", NULL},
    /* stored and served (no controller acts on them): what deploy/ manifests
     * use, so `kubectl apply --dry-run=server` can check them */
    {"", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true,
     "pvc", NULL, true, false, false, NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, NULL, NULL, false, false,
     false, NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, NULL,
     NULL, false, false, false, NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, NULL,
     NULL, false, false, false, NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
     "clusterrolebinding", false, NULL, NULL, false, false, false, NULL, NULL},
    {"policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true,
     "pdb", NULL, true, false, true, NULL, NULL},
};

static char **split_list(const char *s) {
  size_t n = 0;
  char **r = calloc(1, sizeof(char *));
  if (!r) kv_oom();
  if (!s) return r;
  const char *p = s;
  while (*p) {
    const char *c = strchr(p, ',');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    r = realloc(r, (n + 2) * sizeof(char *));
    if (!r) kv_oom();
    r[n] = strndup(p, l);
    if (!r[n]) kv_oom();
    r[++n] = NULL;
    p += l + (c ? 1 : 0);
  }
  return r;
}

static char **list_strings(const kv *l) {
  size_t n = 0;
  char **r = calloc(1, sizeof(char *));
  if (!r) kv_oom();
  if (!l || l->kind != KV_LIST) return r;
  for (size_t i = 0; i < kv_len(l); i++) {
    kv *e = kv_list_at(l, i);
    if (e->kind != KV_STRING) continue;
    r = realloc(r, (n + 2) * sizeof(char *));
    if (!r) kv_oom();
    r[n] = strdup(kv_str(e));
    if (!r[n]) kv_oom();
    r[++n] = NULL;
  }
  return r;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

static char *xstrdup(const char *s) {
  char *r = strdup(s ? s : "");
  if (!r) kv_oom();
  return r;
}

static void version_free(ks_version *v) {
  free(v->name);
  kv_unref(v->schema);
  kv_unref(v->columns);
  kv_unref(v->selectable);
  free(v->scale_spec);
  free(v->scale_status);
  free(v->scale_selector);
}

static void type_free(ks_type *t) {
  free(t->group);
  free(t->kind);
  free(t->plural);
  free(t->singular);
  free(t->list_kind);
  for (size_t i = 0; i < t->nversions; i++)
    version_free(&t->versions[i]);
  free(t->versions);
  free_strv(t->short_names);
  free_strv(t->categories);
  free_strv(t->field_labels);
  kv_unref(t->crd);
  ks_table_free(&t->objs);
  free(t);
}

static void add_type(ks_server *s, ks_type *t) {
  s->types = realloc(s->types, (s->ntypes + 1) * sizeof *s->types);
  if (!s->types) kv_oom();
  s->types[s->ntypes++] = t;
}

void ks_types_init(ks_server *s) {
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
    const builtin *b = &builtins[i];
    ks_type *t = calloc(1, sizeof *t);
    if (!t) kv_oom();
    t->group = xstrdup(b->group);
    t->kind = xstrdup(b->kind);
    t->plural = xstrdup(b->plural);
    t->singular = xstrdup(b->singular);
    t->list_kind = ku_fmt("%sList", b->kind);
    t->nversions = 1;
    t->versions = calloc(1, sizeof *t->versions);
    if (!t->versions) kv_oom();
    t->versions[0].name = xstrdup(b->version);
    t->versions[0].served = t->versions[0].storage = true;
    t->versions[0].status = b->status;
    t->versions[0].scale = b->scale;
    if (b->scale) {
      t->versions[0].scale_spec = xstrdup(".spec.replicas");
      t->versions[0].scale_status = xstrdup(".status.replicas");
      t->versions[0].scale_selector = xstrdup(".spec.selector");
    }
    t->namespaced = b->namespaced;
    t->has_generation = b->generation;
    t->established = true;
    t->short_names = split_list(b->shorts);
    t->categories = split_list(b->cats);
    t->field_labels = split_list(b->fields);
    t->printer = b->printer;
    ks_table_init(&t->objs);
    add_type(s, t);
  }
}

void ks_types_free(ks_server *s) {
  for (size_t i = 0; i < s->ntypes; i++)
    type_free(s->types[i]);
  free(s->types);
  s->types = NULL;
  s->ntypes = 0;
}

ks_type *ks_type_find(ks_server *s, const char *group, const char *plural) {
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_type *t = s->types[i];
    if (t->established && strcmp(t->group, group) == 0 && strcmp(t->plural, plural) == 0) return t;
  }
  return NULL;
}

ks_type *ks_type_by_kind(ks_server *s, const char *group, const char *kind) {
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_type *t = s->types[i];
    if (t->established && strcmp(t->group, group) == 0 && strcmp(t->kind, kind) == 0) return t;
  }
  return NULL;
}

ks_version *ks_type_version(ks_type *t, const char *version) {
  for (size_t i = 0; i < t->nversions; i++)
    if (t->versions[i].served && strcmp(t->versions[i].name, version) == 0) return &t->versions[i];
  return NULL;
}

const char *ks_type_storage(const ks_type *t) {
  for (size_t i = 0; i < t->nversions; i++)
    if (t->versions[i].storage) return t->versions[i].name;
  return t->versions[0].name;
}

const char *ks_type_qualified(const ks_type *t, char buf[256]) {
  if (!*t->group) return t->plural;
  snprintf(buf, 256, "%s.%s", t->plural, t->group);
  return buf;
}

/* ---- version ordering (Kubernetes "kube-aware" priority) ---------------- */

/* Parse v<major>[(alpha|beta)<minor>]; rank: GA 3, beta 2, alpha 1, other 0. */
static int version_rank(const char *v, long *major, long *minor) {
  *major = *minor = 0;
  if (v[0] != 'v' || !isdigit((unsigned char)v[1])) return 0;
  char *end;
  *major = strtol(v + 1, &end, 10);
  if (!*end) return 3;
  int rank = 0;
  if (strncmp(end, "beta", 4) == 0) {
    rank = 2;
    end += 4;
  } else if (strncmp(end, "alpha", 5) == 0) {
    rank = 1;
    end += 5;
  } else {
    return 0;
  }
  if (!isdigit((unsigned char)*end)) return 0;
  *minor = strtol(end, &end, 10);
  return *end ? 0 : rank;
}

static int version_cmp(const char *a, const char *b) {
  long ma, na, mb, nb;
  int ra = version_rank(a, &ma, &na), rb = version_rank(b, &mb, &nb);
  if (ra != rb) return rb - ra;
  if (ra == 0) return strcmp(a, b);
  if (ma != mb) return ma > mb ? -1 : 1;
  if (na != nb) return na > nb ? -1 : 1;
  return 0;
}

/* Sorted served versions of a group (malloc'ed array of borrowed names). */
static const char **group_versions(ks_server *s, const char *group, size_t *n) {
  const char **r = NULL;
  *n = 0;
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_type *t = s->types[i];
    if (!t->established || strcmp(t->group, group) != 0) continue;
    for (size_t j = 0; j < t->nversions; j++) {
      if (!t->versions[j].served) continue;
      bool dup = false;
      for (size_t k = 0; k < *n; k++)
        if (strcmp(r[k], t->versions[j].name) == 0) dup = true;
      if (dup) continue;
      r = realloc(r, (*n + 1) * sizeof *r);
      if (!r) kv_oom();
      r[(*n)++] = t->versions[j].name;
    }
  }
  for (size_t i = 1; i < *n; i++)
    for (size_t j = i; j > 0 && version_cmp(r[j - 1], r[j]) > 0; j--) {
      const char *x = r[j];
      r[j] = r[j - 1];
      r[j - 1] = x;
    }
  return r;
}

static int type_plural_cmp(const void *a, const void *b) {
  const ks_type *x = *(ks_type *const *)a, *y = *(ks_type *const *)b;
  return strcmp(x->plural, y->plural);
}

/* The types in discovery order: by resource name, as the apiserver lists
 * them (malloc'ed array, *n entries). */
static ks_type **sorted_types(ks_server *s, size_t *n) {
  ks_type **r = malloc((s->ntypes + 1) * sizeof *r);
  if (!r) kv_oom();
  memcpy(r, s->types, s->ntypes * sizeof *r);
  qsort(r, s->ntypes, sizeof *r, type_plural_cmp);
  *n = s->ntypes;
  return r;
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Group names in order: built-in groups first (registration order), then
 * CRD groups by name. */
static const char **group_names(ks_server *s, size_t *n) {
  const char **r = NULL;
  size_t nbuiltin = 0;
  *n = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < s->ntypes; i++) {
      ks_type *t = s->types[i];
      if (!t->established || !*t->group || t->is_crd != (pass == 1)) continue;
      bool dup = false;
      for (size_t k = 0; k < *n; k++)
        if (strcmp(r[k], t->group) == 0) dup = true;
      if (dup) continue;
      r = realloc(r, (*n + 1) * sizeof *r);
      if (!r) kv_oom();
      r[(*n)++] = t->group;
    }
    if (pass == 0) nbuiltin = *n;
  }
  if (*n > nbuiltin) qsort(r + nbuiltin, *n - nbuiltin, sizeof *r, str_cmp);
  return r;
}

static kv *strv_value(char **v) {
  kv *l = kv_list_new(4);
  for (char **p = v; p && *p; p++)
    kv_list_push(l, kv_cstring(*p));
  return l;
}

static kv *verbs_value(const ks_type *t) {
  static const char *all[] = {"create", "delete", "deletecollection", "get",
                              "list",   "patch",  "update",           "watch"};
  kv *l = kv_list_new(8);
  for (size_t i = 0; i < 8; i++) {
    if (strcmp(t->plural, "namespaces") == 0 && strcmp(all[i], "deletecollection") == 0) continue;
    kv_list_push(l, kv_cstring(all[i]));
  }
  return l;
}

static kv *sub_verbs(void) {
  kv *l = kv_list_new(3);
  kv_list_push(l, kv_cstring("get"));
  kv_list_push(l, kv_cstring("patch"));
  kv_list_push(l, kv_cstring("update"));
  return l;
}

static kv *gvk_value(const char *g, const char *v, const char *k) {
  kv *m = kv_map_new(3);
  kv_map_set_str(m, "group", kv_cstring(g));
  kv_map_set_str(m, "version", kv_cstring(v));
  kv_map_set_str(m, "kind", kv_cstring(k));
  return m;
}

static kv *storage_hash(const ks_type *t) {
  /* an opaque, stable 8-byte hash of group/version/kind, base64 */
  uint64_t h = 1469598103934665603ull;
  const char *parts[] = {t->group, ks_type_storage(t), t->kind};
  for (size_t i = 0; i < 3; i++)
    for (const char *p = parts[i]; *p; p++)
      h = (h ^ (unsigned char)*p) * 1099511628211ull;
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(h >> (8 * i));
  char *s = ku_b64(b, 8);
  kv *r = kv_cstring(s);
  free(s);
  return r;
}

kv *ks_discovery_api(ks_server *s) {
  kv *m = kv_map_new(4);
  kv_map_set_str(m, "kind", kv_cstring("APIVersions"));
  kv *vs = kv_list_new(1);
  kv_list_push(vs, kv_cstring("v1"));
  kv_map_set_str(m, "versions", vs);
  kv *cidrs = kv_list_new(1);
  kv *c = kv_map_new(2);
  kv_map_set_str(c, "clientCIDR", kv_cstring("0.0.0.0/0"));
  char addr[96];
  snprintf(addr, sizeof addr, "%s:%u", s->host, s->port);
  kv_map_set_str(c, "serverAddress", kv_cstring(addr));
  kv_list_push(cidrs, c);
  kv_map_set_str(m, "serverAddressByClientCIDRs", cidrs);
  return m;
}

static kv *group_value(ks_server *s, const char *group) {
  size_t nv;
  const char **vs = group_versions(s, group, &nv);
  if (!nv) {
    free(vs);
    return NULL;
  }
  kv *g = kv_map_new(4);
  kv_map_set_str(g, "name", kv_cstring(group));
  kv *l = kv_list_new(nv);
  for (size_t i = 0; i < nv; i++) {
    kv *e = kv_map_new(2);
    kv_map_set_str(e, "groupVersion", ku_kvfmt("%s/%s", group, vs[i]));
    kv_map_set_str(e, "version", kv_cstring(vs[i]));
    kv_list_push(l, e);
  }
  kv_map_set_str(g, "versions", l);
  kv *pref = kv_map_new(2);
  kv_map_set_str(pref, "groupVersion", ku_kvfmt("%s/%s", group, vs[0]));
  kv_map_set_str(pref, "version", kv_cstring(vs[0]));
  kv_map_set_str(g, "preferredVersion", pref);
  free(vs);
  return g;
}

kv *ks_discovery_apis(ks_server *s) {
  kv *m = kv_map_new(3);
  kv_map_set_str(m, "kind", kv_cstring("APIGroupList"));
  kv_map_set_str(m, "apiVersion", kv_cstring("v1"));
  size_t ng;
  const char **gs = group_names(s, &ng);
  kv *l = kv_list_new(ng);
  for (size_t i = 0; i < ng; i++) {
    kv *g = group_value(s, gs[i]);
    if (g) kv_list_push(l, g);
  }
  free(gs);
  kv_map_set_str(m, "groups", l);
  return m;
}

kv *ks_discovery_group(ks_server *s, const char *group) {
  kv *g = group_value(s, group);
  if (!g) return NULL;
  kv *m = kv_map_new(6);
  kv_map_set_str(m, "kind", kv_cstring("APIGroup"));
  kv_map_set_str(m, "apiVersion", kv_cstring("v1"));
  for (size_t i = 0; i < kv_len(g); i++)
    kv_map_set(m, kv_ref(kv_map_key_at(g, i)), kv_ref(kv_map_val_at(g, i)));
  kv_unref(g);
  return m;
}

kv *ks_discovery_resources(ks_server *s, const char *group, const char *version) {
  kv *l = kv_list_new(8);
  bool any = false;
  size_t nt;
  ks_type **types = sorted_types(s, &nt);
  for (size_t i = 0; i < nt; i++) {
    ks_type *t = types[i];
    if (!t->established || strcmp(t->group, group) != 0) continue;
    ks_version *v = ks_type_version(t, version);
    if (!v) continue;
    any = true;
    kv *r = kv_map_new(10);
    kv_map_set_str(r, "name", kv_cstring(t->plural));
    kv_map_set_str(r, "singularName", kv_cstring(t->singular));
    kv_map_set_str(r, "namespaced", kv_bool(t->namespaced));
    kv_map_set_str(r, "kind", kv_cstring(t->kind));
    kv_map_set_str(r, "verbs", verbs_value(t));
    if (t->short_names && t->short_names[0])
      kv_map_set_str(r, "shortNames", strv_value(t->short_names));
    if (t->categories && t->categories[0])
      kv_map_set_str(r, "categories", strv_value(t->categories));
    kv_map_set_str(r, "storageVersionHash", storage_hash(t));
    kv_list_push(l, r);
    const char *subs[3] = {v->status ? "status" : NULL, v->scale ? "scale" : NULL,
                           strcmp(t->plural, "namespaces") == 0 ? "finalize" : NULL};
    for (size_t k = 0; k < 3; k++) {
      if (!subs[k]) continue;
      kv *sr = kv_map_new(6);
      kv_map_set_str(sr, "name", ku_kvfmt("%s/%s", t->plural, subs[k]));
      kv_map_set_str(sr, "singularName", kv_cstring(""));
      kv_map_set_str(sr, "namespaced", kv_bool(t->namespaced));
      if (k == 1) {
        kv_map_set_str(sr, "group", kv_cstring("autoscaling"));
        kv_map_set_str(sr, "version", kv_cstring("v1"));
        kv_map_set_str(sr, "kind", kv_cstring("Scale"));
      } else {
        kv_map_set_str(sr, "kind", kv_cstring(t->kind));
      }
      kv *verbs = kv_list_new(3);
      if (k == 2) {
        kv_list_push(verbs, kv_cstring("update"));
      } else {
        kv_unref(verbs);
        verbs = sub_verbs();
      }
      kv_map_set_str(sr, "verbs", verbs);
      kv_list_push(l, sr);
    }
  }
  free(types);
  if (!any) {
    kv_unref(l);
    return NULL;
  }
  kv *m = kv_map_new(4);
  kv_map_set_str(m, "kind", kv_cstring("APIResourceList"));
  kv_map_set_str(m, "apiVersion", kv_cstring("v1"));
  kv_map_set_str(m, "groupVersion",
                 *group ? ku_kvfmt("%s/%s", group, version) : kv_cstring(version));
  kv_map_set_str(m, "resources", l);
  return m;
}

static kv *aggregated_group(ks_server *s, const char *group) {
  size_t nv;
  const char **vs = group_versions(s, group, &nv);
  kv *g = kv_map_new(2);
  kv *md = kv_map_new(2);
  if (*group) kv_map_set_str(md, "name", kv_cstring(group));
  kv_map_set_str(md, "creationTimestamp", kv_null());
  kv_map_set_str(g, "metadata", md);
  kv *vl = kv_list_new(nv);
  for (size_t i = 0; i < nv; i++) {
    kv *ver = kv_map_new(3);
    kv_map_set_str(ver, "version", kv_cstring(vs[i]));
    kv *rl = kv_list_new(8);
    size_t nt;
    ks_type **types = sorted_types(s, &nt);
    for (size_t j = 0; j < nt; j++) {
      ks_type *t = types[j];
      if (!t->established || strcmp(t->group, group) != 0) continue;
      ks_version *v = ks_type_version(t, vs[i]);
      if (!v) continue;
      kv *r = kv_map_new(9);
      kv_map_set_str(r, "resource", kv_cstring(t->plural));
      kv_map_set_str(r, "responseKind", gvk_value(group, vs[i], t->kind));
      kv_map_set_str(r, "scope", kv_cstring(t->namespaced ? "Namespaced" : "Cluster"));
      kv_map_set_str(r, "singularResource", kv_cstring(t->singular));
      kv_map_set_str(r, "verbs", verbs_value(t));
      if (t->short_names && t->short_names[0])
        kv_map_set_str(r, "shortNames", strv_value(t->short_names));
      if (t->categories && t->categories[0])
        kv_map_set_str(r, "categories", strv_value(t->categories));
      kv *subs = kv_list_new(3);
      if (v->status) {
        kv *sr = kv_map_new(3);
        kv_map_set_str(sr, "subresource", kv_cstring("status"));
        kv_map_set_str(sr, "responseKind", gvk_value(group, vs[i], t->kind));
        kv_map_set_str(sr, "verbs", sub_verbs());
        kv_list_push(subs, sr);
      }
      if (v->scale) {
        kv *sr = kv_map_new(3);
        kv_map_set_str(sr, "subresource", kv_cstring("scale"));
        kv_map_set_str(sr, "responseKind", gvk_value("autoscaling", "v1", "Scale"));
        kv_map_set_str(sr, "verbs", sub_verbs());
        kv_list_push(subs, sr);
      }
      if (strcmp(t->plural, "namespaces") == 0) {
        kv *sr = kv_map_new(3);
        kv_map_set_str(sr, "subresource", kv_cstring("finalize"));
        kv_map_set_str(sr, "responseKind", gvk_value(group, vs[i], t->kind));
        kv *vb = kv_list_new(1);
        kv_list_push(vb, kv_cstring("update"));
        kv_map_set_str(sr, "verbs", vb);
        kv_list_push(subs, sr);
      }
      if (kv_len(subs))
        kv_map_set_str(r, "subresources", subs);
      else
        kv_unref(subs);
      kv_list_push(rl, r);
    }
    free(types);
    kv_map_set_str(ver, "resources", rl);
    kv_map_set_str(ver, "freshness", kv_cstring("Current"));
    kv_list_push(vl, ver);
  }
  free(vs);
  kv_map_set_str(g, "versions", vl);
  return g;
}

kv *ks_discovery_aggregated(ks_server *s, bool core, bool v2beta1) {
  kv *m = kv_map_new(4);
  kv_map_set_str(m, "kind", kv_cstring("APIGroupDiscoveryList"));
  kv_map_set_str(m, "apiVersion",
                 kv_cstring(v2beta1 ? "apidiscovery.k8s.io/v2beta1" : "apidiscovery.k8s.io/v2"));
  kv_map_set_str(m, "metadata", kv_map_new(0));
  kv *items = kv_list_new(4);
  if (core) {
    kv_list_push(items, aggregated_group(s, ""));
  } else {
    size_t ng;
    const char **gs = group_names(s, &ng);
    for (size_t i = 0; i < ng; i++)
      kv_list_push(items, aggregated_group(s, gs[i]));
    free(gs);
  }
  kv_map_set_str(m, "items", items);
  return m;
}

/* ---- CRDs ---------------------------------------------------------------- */

static bool dns_label(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) return false;
  }
  return s[0] != '-' && s[n - 1] != '-';
}

static void add_cause(kv *causes, const char *field, const char *fmt, const char *arg) {
  kv *c = kv_map_new(3);
  kv_map_set_str(c, "reason", kv_cstring("FieldValueInvalid"));
  char *msg = ku_fmt(fmt, arg);
  kv_map_set_str(c, "message", kv_string_take(msg, strlen(msg)));
  kv_map_set_str(c, "field", kv_cstring(field));
  kv_list_push(causes, c);
}

kv *ks_crd_validate(ks_server *s, const kv *crd, const kv *old) {
  (void)s;
  kv *causes = kv_list_new(2);
  const char *name = ku_str(ku_get(crd, "metadata"), "name");
  kv *spec = ku_get(crd, "spec");
  const char *group = ku_str(spec, "group");
  kv *names = ku_get(spec, "names");
  const char *plural = ku_str(names, "plural");
  const char *kind = ku_str(names, "kind");
  const char *scope = ku_str(spec, "scope");
  kv *versions = ku_get(spec, "versions");
  if (!group || !*group || !strchr(group, '.'))
    add_cause(causes, "spec.group",
              "Invalid value: \"%s\": should be a domain with at least one dot",
              group ? group : "");
  if (!plural || !dns_label(plural, 63))
    add_cause(causes, "spec.names.plural",
              "Invalid value: \"%s\": a lowercase RFC 1123 label must consist of lower case "
              "alphanumeric characters or '-'",
              plural ? plural : "");
  if (!kind || !*kind) add_cause(causes, "spec.names.kind", "Required value%s", "");
  if (!scope || (strcmp(scope, "Namespaced") != 0 && strcmp(scope, "Cluster") != 0))
    add_cause(causes, "spec.scope",
              "Unsupported value: \"%s\": supported values: \"Cluster\", \"Namespaced\"",
              scope ? scope : "");
  if (plural && group && name) {
    char *want = ku_fmt("%s.%s", plural, group);
    if (strcmp(want, name) != 0)
      add_cause(causes, "metadata.name",
                "Invalid value: \"%s\": must be spec.names.plural+\".\"+spec.group", name);
    free(want);
  }
  size_t nstorage = 0, nserved = 0;
  if (!versions || versions->kind != KV_LIST || kv_len(versions) == 0) {
    add_cause(causes, "spec.versions",
              "Required value: must have exactly one version marked as storage version%s", "");
  } else {
    for (size_t i = 0; i < kv_len(versions); i++) {
      kv *v = kv_list_at(versions, i);
      kv *st = ku_get(v, "storage"), *sv = ku_get(v, "served");
      if (st && st->kind == KV_BOOL && st->u.b) nstorage++;
      if (sv && sv->kind == KV_BOOL && sv->u.b) nserved++;
      if (!ku_str(v, "name")) add_cause(causes, "spec.versions[].name", "Required value%s", "");
      kv *sch = ku_path(v, "schema.openAPIV3Schema");
      if (!sch) {
        char f[64];
        snprintf(f, sizeof f, "spec.versions[%zu].schema.openAPIV3Schema", i);
        add_cause(causes, f, "Required value: schemas are required%s", "");
      }
    }
    if (nstorage != 1)
      add_cause(causes, "spec.versions",
                "Invalid value: must have exactly one version marked as storage version%s", "");
    if (nserved == 0)
      add_cause(causes, "spec.versions", "Invalid value: must serve at least one version%s", "");
  }
  if (old) {
    kv *og = ku_path(old, "spec.group");
    if (og && group && strcmp(kv_str(og), group) != 0)
      add_cause(causes, "spec.group", "Invalid value: \"%s\": field is immutable", group);
  }
  if (kv_len(causes) == 0) {
    kv_unref(causes);
    return NULL;
  }
  ku_buf b = {0};
  ku_buf_printf(
      &b, "CustomResourceDefinition.apiextensions.k8s.io \"%s\" is invalid: ", name ? name : "");
  for (size_t i = 0; i < kv_len(causes); i++) {
    kv *c = kv_list_at(causes, i);
    if (i) ku_buf_puts(&b, ", ");
    ku_buf_printf(&b, "%s: %s", ku_str(c, "field"), ku_str(c, "message"));
  }
  kv *d = ks_details(name, "apiextensions.k8s.io", "CustomResourceDefinition");
  kv_map_set_str(d, "causes", causes);
  kv *st = ks_status(422, "Invalid", d, "%s", b.p);
  free(b.p);
  return st;
}

static char *jsonpath_dup(const char *p) { return p ? xstrdup(p) : NULL; }

kv *ks_types_apply_crd(ks_server *s, const kv *crd) {
  kv *spec = ku_get(crd, "spec");
  const char *name = ku_str(ku_get(crd, "metadata"), "name");
  const char *group = ku_str(spec, "group");
  kv *names = ku_get(spec, "names");
  ks_type *t = NULL;
  for (size_t i = 0; i < s->ntypes; i++)
    if (s->types[i]->is_crd && s->types[i]->crd && strcmp(kv_str(s->types[i]->crd), name) == 0)
      t = s->types[i];
  /* a kind served by another CRD or a built-in: refuse (NamesAccepted) */
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_type *o = s->types[i];
    if (o == t || strcmp(o->group, group) != 0) continue;
    if (strcmp(o->plural, ku_str(names, "plural")) == 0 ||
        strcmp(o->kind, ku_str(names, "kind")) == 0)
      return ks_status(
          409, "Conflict", NULL,
          "the names of CustomResourceDefinition %s conflict with another kind in group %s", name,
          group);
  }
  if (!t) {
    t = calloc(1, sizeof *t);
    if (!t) kv_oom();
    t->is_crd = true;
    t->crd = kv_cstring(name);
    ks_table_init(&t->objs);
    add_type(s, t);
  } else {
    free(t->group);
    free(t->kind);
    free(t->plural);
    free(t->singular);
    free(t->list_kind);
    free_strv(t->short_names);
    free_strv(t->categories);
    free_strv(t->field_labels);
    for (size_t i = 0; i < t->nversions; i++)
      version_free(&t->versions[i]);
    free(t->versions);
  }
  t->group = xstrdup(group);
  t->kind = xstrdup(ku_str(names, "kind"));
  t->plural = xstrdup(ku_str(names, "plural"));
  const char *singular = ku_str(names, "singular");
  if (singular && *singular) {
    t->singular = xstrdup(singular);
  } else {
    t->singular = xstrdup(t->kind);
    for (char *p = t->singular; *p; p++)
      *p = (char)tolower((unsigned char)*p);
  }
  const char *lk = ku_str(names, "listKind");
  t->list_kind = lk ? xstrdup(lk) : ku_fmt("%sList", t->kind);
  t->short_names = list_strings(ku_get(names, "shortNames"));
  t->categories = list_strings(ku_get(names, "categories"));
  t->field_labels = split_list(NULL);
  t->namespaced = strcmp(ku_str(spec, "scope"), "Namespaced") == 0;
  t->has_generation = true;
  t->established = true;
  kv *versions = ku_get(spec, "versions");
  t->nversions = kv_len(versions);
  t->versions = calloc(t->nversions, sizeof *t->versions);
  if (!t->versions) kv_oom();
  for (size_t i = 0; i < t->nversions; i++) {
    kv *v = kv_list_at(versions, i);
    ks_version *tv = &t->versions[i];
    tv->name = xstrdup(ku_str(v, "name"));
    kv *b = ku_get(v, "served");
    tv->served = b && b->kind == KV_BOOL && b->u.b;
    b = ku_get(v, "storage");
    tv->storage = b && b->kind == KV_BOOL && b->u.b;
    tv->schema = kv_ref(ku_path(v, "schema.openAPIV3Schema"));
    tv->columns = kv_ref(ku_get(v, "additionalPrinterColumns"));
    tv->selectable = kv_ref(ku_get(v, "selectableFields"));
    kv *subs = ku_get(v, "subresources");
    tv->status = ku_get(subs, "status") != NULL;
    kv *sc = ku_get(subs, "scale");
    tv->scale = sc != NULL;
    if (sc) {
      tv->scale_spec = jsonpath_dup(ku_str(sc, "specReplicasPath"));
      tv->scale_status = jsonpath_dup(ku_str(sc, "statusReplicasPath"));
      tv->scale_selector = jsonpath_dup(ku_str(sc, "labelSelectorPath"));
    }
    kv *sf = tv->selectable;
    for (size_t k = 0; sf && sf->kind == KV_LIST && k < kv_len(sf); k++) {
      const char *jp = ku_str(kv_list_at(sf, k), "jsonPath");
      if (!jp) continue;
      size_t n = 0;
      while (t->field_labels[n])
        n++;
      t->field_labels = realloc(t->field_labels, (n + 2) * sizeof(char *));
      if (!t->field_labels) kv_oom();
      t->field_labels[n] = xstrdup(jp[0] == '.' ? jp + 1 : jp);
      t->field_labels[n + 1] = NULL;
    }
  }
  return NULL;
}

void ks_types_remove_crd(ks_server *s, const char *crd_name) {
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_type *t = s->types[i];
    if (!t->is_crd || !t->crd || strcmp(kv_str(t->crd), crd_name) != 0) continue;
    /* close the watches of the kind */
    for (ks_watch *w = s->watches, *nx; w; w = nx) {
      nx = w->next;
      if (w->t == t) {
        ks_conn *c = w->conn;
        ks_watch_free(s, w);
        ks_stream_end(c, true);
      }
    }
    /* the event window may still point at the type: drop those events */
    for (size_t k = 0; k < s->ring_len; k++) {
      ks_event *e = &s->ring[(s->ring_head + k) % s->ring_cap];
      if (e->t == t) e->t = NULL;
    }
    type_free(t);
    memmove(&s->types[i], &s->types[i + 1], (s->ntypes - i - 1) * sizeof *s->types);
    s->ntypes--;
    return;
  }
}

/* ---- OpenAPI v3 ------------------------------------------------------------ */

kv *ks_openapi_root(ks_server *s) {
  kv *paths = kv_map_new(8);
  kv *e = kv_map_new(1);
  kv_map_set_str(e, "serverRelativeURL",
                 ku_kvfmt("/openapi/v3/api/v1?hash=%016llX", (unsigned long long)s->rv));
  kv_map_set_str(paths, "api/v1", e);
  size_t ng;
  const char **gs = group_names(s, &ng);
  for (size_t i = 0; i < ng; i++) {
    size_t nv;
    const char **vs = group_versions(s, gs[i], &nv);
    for (size_t j = 0; j < nv; j++) {
      char *key = ku_fmt("apis/%s/%s", gs[i], vs[j]);
      char *url = ku_fmt("/openapi/v3/%s?hash=%016llX", key, (unsigned long long)s->rv);
      kv *x = kv_map_new(1);
      kv_map_set_str(x, "serverRelativeURL", kv_string_take(url, strlen(url)));
      kv_map_set_str(paths, key, x);
      free(key);
    }
    free(vs);
  }
  free(gs);
  kv *root = kv_map_new(1);
  kv_map_set_str(root, "paths", paths);
  return root;
}

static kv *param(const char *name, const char *in, const char *type, bool required) {
  kv *p = kv_map_new(4);
  kv_map_set_str(p, "name", kv_cstring(name));
  kv_map_set_str(p, "in", kv_cstring(in));
  if (required) kv_map_set_str(p, "required", kv_bool(true));
  kv *sch = kv_map_new(2);
  kv_map_set_str(sch, "type", kv_cstring(type));
  if (strcmp(in, "query") == 0) kv_map_set_str(sch, "uniqueItems", kv_bool(true));
  kv_map_set_str(p, "schema", sch);
  return p;
}

static kv *ref_schema(const char *comp) {
  kv *m = kv_map_new(1);
  char *r = ku_fmt("#/components/schemas/%s", comp);
  kv_map_set_str(m, "$ref", kv_string_take(r, strlen(r)));
  return m;
}

static kv *content(const char *const *types, const char *comp) {
  kv *c = kv_map_new(4);
  for (size_t i = 0; types[i]; i++) {
    kv *e = kv_map_new(1);
    kv_map_set_str(e, "schema", ref_schema(comp));
    kv_map_set_str(c, types[i], e);
  }
  return c;
}

static kv *operation(const char *id, const char *action, const ks_type *t, const char *version,
                     const char *comp, bool body, const char *const *body_types,
                     const char *const *qparams) {
  kv *op = kv_map_new(8);
  kv_map_set_str(op, "operationId", kv_cstring(id));
  kv *ps = kv_list_new(8);
  for (size_t i = 0; qparams && qparams[i]; i++)
    kv_list_push(
        ps, param(qparams[i], "query",
                  strcmp(qparams[i], "force") == 0 || strcmp(qparams[i], "watch") == 0 ||
                          strcmp(qparams[i], "allowWatchBookmarks") == 0
                      ? "boolean"
                  : strcmp(qparams[i], "limit") == 0 || strcmp(qparams[i], "timeoutSeconds") == 0
                      ? "integer"
                      : "string",
                  false));
  kv_map_set_str(op, "parameters", ps);
  if (body) {
    kv *rb = kv_map_new(2);
    kv_map_set_str(rb, "content", content(body_types, comp));
    kv_map_set_str(rb, "required", kv_bool(true));
    kv_map_set_str(op, "requestBody", rb);
  }
  static const char *const json_only[] = {"application/json", "application/yaml", NULL};
  kv *resp = kv_map_new(1);
  kv *ok = kv_map_new(2);
  kv_map_set_str(ok, "description", kv_cstring("OK"));
  kv_map_set_str(ok, "content", content(json_only, comp));
  kv_map_set_str(resp, "200", ok);
  kv_map_set_str(op, "responses", resp);
  kv_map_set_str(op, "x-kubernetes-action", kv_cstring(action));
  kv_map_set_str(op, "x-kubernetes-group-version-kind", gvk_value(t->group, version, t->kind));
  return op;
}

static char *comp_name(const ks_type *t, const char *version) {
  if (t->is_crd) {
    /* reversed group, as the apiserver names CRD schemas */
    ku_buf b = {0};
    const char *g = t->group;
    const char *end = g + strlen(g);
    while (end > g) {
      const char *dot = end;
      while (dot > g && dot[-1] != '.')
        dot--;
      ku_buf_add(&b, dot, (size_t)(end - dot));
      ku_buf_puts(&b, ".");
      end = dot > g ? dot - 1 : g;
    }
    ku_buf_printf(&b, "%s.%s", version, t->kind);
    return b.p;
  }
  return ku_fmt("io.k8s.api.%s.%s.%s", *t->group ? t->group : "core", version, t->kind);
}

kv *ks_openapi_gv(ks_server *s, const char *group, const char *version) {
  kv *paths = kv_map_new(16);
  kv *schemas = kv_map_new(8);
  bool any = false;
  static const char *const write_q[] = {"dryRun", "fieldManager", "fieldValidation", "pretty",
                                        NULL};
  static const char *const patch_q[] = {"dryRun", "fieldManager", "fieldValidation",
                                        "force",  "pretty",       NULL};
  static const char *const list_q[] = {"allowWatchBookmarks",
                                       "continue",
                                       "fieldSelector",
                                       "labelSelector",
                                       "limit",
                                       "resourceVersion",
                                       "resourceVersionMatch",
                                       "sendInitialEvents",
                                       "timeoutSeconds",
                                       "watch",
                                       "pretty",
                                       NULL};
  static const char *const get_q[] = {"pretty", NULL};
  static const char *const del_q[] = {"dryRun", "gracePeriodSeconds", "propagationPolicy", "pretty",
                                      NULL};
  static const char *const json_body[] = {"application/json", "application/yaml", NULL};
  static const char *const patch_body_crd[] = {"application/json-patch+json",
                                               "application/merge-patch+json",
                                               "application/apply-patch+yaml", NULL};
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_type *t = s->types[i];
    if (!t->established || strcmp(t->group, group) != 0) continue;
    ks_version *v = ks_type_version(t, version);
    if (!v) continue;
    any = true;
    char *comp = comp_name(t, version);
    const char *prefix = *group ? "/apis" : "/api";
    char *gv = *group ? ku_fmt("%s/%s", group, version) : ku_fmt("%s", version);
    char *coll = t->namespaced ? ku_fmt("%s/%s/namespaces/{namespace}/%s", prefix, gv, t->plural)
                               : ku_fmt("%s/%s/%s", prefix, gv, t->plural);
    char *item = ku_fmt("%s/{name}", coll);
    kv *pc = kv_map_new(4);
    kv_map_set_str(pc, "get", operation("list", "list", t, version, comp, false, NULL, list_q));
    kv_map_set_str(pc, "post",
                   operation("create", "post", t, version, comp, true, json_body, write_q));
    kv_map_set_str(
        pc, "delete",
        operation("deletecollection", "deletecollection", t, version, comp, false, NULL, del_q));
    kv_map_set_str(paths, coll, pc);
    kv *pi = kv_map_new(4);
    kv_map_set_str(pi, "get", operation("read", "get", t, version, comp, false, NULL, get_q));
    kv_map_set_str(pi, "put",
                   operation("replace", "put", t, version, comp, true, json_body, write_q));
    /* strategic-merge-patch is accepted for the built-in kinds but not
     * listed: kubectl then computes apply patches from its compiled-in
     * types (see README: OpenAPI subset). */
    kv_map_set_str(pi, "patch",
                   operation("patch", "patch", t, version, comp, true, patch_body_crd, patch_q));
    kv_map_set_str(pi, "delete",
                   operation("delete", "delete", t, version, comp, false, NULL, del_q));
    kv_map_set_str(paths, item, pi);
    if (v->status) {
      char *st = ku_fmt("%s/status", item);
      kv *ps = kv_map_new(3);
      kv_map_set_str(ps, "get",
                     operation("readStatus", "get", t, version, comp, false, NULL, get_q));
      kv_map_set_str(ps, "put",
                     operation("replaceStatus", "put", t, version, comp, true, json_body, write_q));
      kv_map_set_str(
          ps, "patch",
          operation("patchStatus", "patch", t, version, comp, true, patch_body_crd, patch_q));
      kv_map_set_str(paths, st, ps);
      free(st);
    }
    /* the kind's schema: the CRD's structural schema, or an open object */
    kv *sch;
    if (v->schema && v->schema->kind == KV_MAP) {
      sch = ku_map_copy(v->schema);
    } else {
      sch = kv_map_new(4);
      kv_map_set_str(sch, "type", kv_cstring("object"));
      kv_map_set_str(sch, "x-kubernetes-preserve-unknown-fields", kv_bool(true));
    }
    char *desc = ku_fmt("%s (kubesim: schema subset)", t->kind);
    if (!ku_get(sch, "description"))
      kv_map_set_str(sch, "description", kv_string_take(desc, strlen(desc)));
    else
      free(desc);
    kv *gvks = kv_list_new(1);
    kv_list_push(gvks, gvk_value(t->group, version, t->kind));
    kv_map_set_str(sch, "x-kubernetes-group-version-kind", gvks);
    kv_map_set_str(schemas, comp, sch);
    free(comp);
    free(gv);
    free(coll);
    free(item);
  }
  if (!any) {
    kv_unref(paths);
    kv_unref(schemas);
    return NULL;
  }
  kv *doc = kv_map_new(4);
  kv_map_set_str(doc, "openapi", kv_cstring("3.0.0"));
  kv *info = kv_map_new(2);
  kv_map_set_str(info, "title", kv_cstring("Kubernetes"));
  kv_map_set_str(info, "version", kv_cstring("v1.32.0"));
  kv_map_set_str(doc, "info", info);
  kv_map_set_str(doc, "paths", paths);
  kv *comps = kv_map_new(1);
  kv_map_set_str(comps, "schemas", schemas);
  kv_map_set_str(doc, "components", comps);
  return doc;
}
