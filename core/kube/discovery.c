/*
 * core/kube/discovery.c: the discovery cache (koreo/kube.h, "Discovery"):
 * what each group/version serves, from its APIResourceList
 * (GET /api/v1, GET /apis/<group>/<version>), looked up by kind or by
 * resource plural.  The network side (fetch, refresh on a miss) is in
 * core/kube/client.c; this file only holds and answers from the data.
 *
 * Pointers handed out (kube_resource_info) stay valid for the cache's
 * life: a refresh keeps every entry that is still served unchanged, and
 * entries that disappear or change are retired (kept until the cache is
 * freed), so memory grows only with real API changes.
 *
 * Reference: https://kubernetes.io/docs/reference/using-api/api-concepts/
 * (discovery) and the APIResourceList type of meta/v1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_impl.h"

typedef struct gv_entry {
  char *api_version;
  int64_t fetched_ms;
  bool missing; /* the group/version answered 404 */
  kube_resource_info **res;
  size_t n_res;
} gv_entry;

struct kube_discovery {
  gv_entry *gvs;
  size_t n_gvs, cap_gvs;
  kube_resource_info **retired;
  size_t n_retired, cap_retired;
};

static void info_free(kube_resource_info *ri) {
  if (!ri) return;
  free(ri->group);
  free(ri->version);
  free(ri->api_version);
  free(ri->kind);
  free(ri->resource);
  free(ri->singular);
  for (size_t i = 0; i < ri->n_subresources; i++)
    free(ri->subresources[i]);
  free(ri->subresources);
  for (size_t i = 0; i < ri->n_short_names; i++)
    free(ri->short_names[i]);
  free(ri->short_names);
  free(ri);
}

kube_discovery *kube_discovery_new(void) {
  kube_discovery *d = calloc(1, sizeof *d);
  if (!d) kv_oom();
  return d;
}

static void retire(kube_discovery *d, kube_resource_info *ri) {
  if (d->n_retired == d->cap_retired) {
    d->cap_retired = d->cap_retired ? d->cap_retired * 2 : 16;
    d->retired = realloc(d->retired, d->cap_retired * sizeof *d->retired);
    if (!d->retired) kv_oom();
  }
  d->retired[d->n_retired++] = ri;
}

static void gv_clear(kube_discovery *d, gv_entry *g, bool retire_all) {
  for (size_t i = 0; i < g->n_res; i++)
    if (g->res[i]) {
      if (retire_all)
        retire(d, g->res[i]);
      else
        info_free(g->res[i]);
    }
  free(g->res);
  g->res = NULL;
  g->n_res = 0;
}

void kube_discovery_free(kube_discovery *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n_gvs; i++) {
    gv_clear(d, &d->gvs[i], false);
    free(d->gvs[i].api_version);
  }
  free(d->gvs);
  for (size_t i = 0; i < d->n_retired; i++)
    info_free(d->retired[i]);
  free(d->retired);
  free(d);
}

void kube_discovery_invalidate(kube_discovery *d) {
  for (size_t i = 0; i < d->n_gvs; i++) {
    gv_clear(d, &d->gvs[i], true);
    free(d->gvs[i].api_version);
  }
  d->n_gvs = 0;
}

static gv_entry *gv_find(const kube_discovery *d, const char *api_version) {
  for (size_t i = 0; i < d->n_gvs; i++)
    if (strcmp(d->gvs[i].api_version, api_version) == 0) return &d->gvs[i];
  return NULL;
}

static gv_entry *gv_get(kube_discovery *d, const char *api_version) {
  gv_entry *g = gv_find(d, api_version);
  if (g) return g;
  if (d->n_gvs == d->cap_gvs) {
    d->cap_gvs = d->cap_gvs ? d->cap_gvs * 2 : 16;
    d->gvs = realloc(d->gvs, d->cap_gvs * sizeof *d->gvs);
    if (!d->gvs) kv_oom();
  }
  g = &d->gvs[d->n_gvs++];
  memset(g, 0, sizeof *g);
  g->api_version = kube_xstrdup(api_version);
  return g;
}

static const char *str_of(const kv *m, const char *key) {
  if (!m || kv_kind_of(m) != KV_MAP) return NULL;
  kv *v = kv_map_get_str(m, key);
  return v && kv_kind_of(v) == KV_STRING ? kv_str(v) : NULL;
}

static char **str_list(const kv *l, size_t *n) {
  *n = 0;
  if (!l || kv_kind_of(l) != KV_LIST || kv_len(l) == 0) return NULL;
  char **out = calloc(kv_len(l), sizeof *out);
  if (!out) kv_oom();
  for (size_t i = 0; i < kv_len(l); i++) {
    kv *s = kv_list_at(l, i);
    if (kv_kind_of(s) == KV_STRING) out[(*n)++] = kube_xstrdup(kv_str(s));
  }
  return out;
}

static unsigned verbs_of(const kv *l) {
  static const struct {
    const char *name;
    unsigned bit;
  } verbs[] = {{"get", KUBE_VERB_GET},       {"list", KUBE_VERB_LIST},
               {"watch", KUBE_VERB_WATCH},   {"create", KUBE_VERB_CREATE},
               {"update", KUBE_VERB_UPDATE}, {"patch", KUBE_VERB_PATCH},
               {"delete", KUBE_VERB_DELETE}, {"deletecollection", KUBE_VERB_DELETECOLLECTION}};
  unsigned bits = 0;
  if (!l || kv_kind_of(l) != KV_LIST) return 0;
  for (size_t i = 0; i < kv_len(l); i++) {
    kv *s = kv_list_at(l, i);
    if (kv_kind_of(s) != KV_STRING) continue;
    for (size_t j = 0; j < sizeof verbs / sizeof verbs[0]; j++)
      if (strcmp(kv_str(s), verbs[j].name) == 0) bits |= verbs[j].bit;
  }
  return bits;
}

static bool strs_equal(char **a, size_t na, char **b, size_t nb) {
  if (na != nb) return false;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return false;
  return true;
}

static bool info_equal(const kube_resource_info *a, const kube_resource_info *b) {
  return strcmp(a->kind, b->kind) == 0 && strcmp(a->resource, b->resource) == 0 &&
         strcmp(a->singular, b->singular) == 0 && a->namespaced == b->namespaced &&
         a->verbs == b->verbs &&
         strs_equal(a->subresources, a->n_subresources, b->subresources, b->n_subresources) &&
         strs_equal(a->short_names, a->n_short_names, b->short_names, b->n_short_names);
}

int kube_discovery_add_list(kube_discovery *d, const kv *list, int64_t now_ms, kube_error *err) {
  const char *gv = str_of(list, "groupVersion");
  kv *resources = list && kv_kind_of(list) == KV_MAP ? kv_map_get_str(list, "resources") : NULL;
  if (!gv || !*gv || (resources && kv_kind_of(resources) != KV_LIST)) {
    if (err)
      kube_error_set(err, KUBE_ERR_DECODE,
                     "discovery: the answer is not an APIResourceList (no groupVersion or "
                     "resources)");
    return -1;
  }
  char group[256], version[64];
  kube_split_api_version(gv, group, sizeof group, version, sizeof version);
  size_t n = resources ? kv_len(resources) : 0;
  kube_resource_info **fresh = calloc(n ? n : 1, sizeof *fresh);
  if (!fresh) kv_oom();
  size_t nf = 0;
  /* parents first */
  for (size_t i = 0; i < n; i++) {
    kv *r = kv_list_at(resources, i);
    const char *name = str_of(r, "name");
    const char *kind = str_of(r, "kind");
    if (!name || !kind || strchr(name, '/')) continue;
    kube_resource_info *ri = calloc(1, sizeof *ri);
    if (!ri) kv_oom();
    const char *rg = str_of(r, "group"), *rv = str_of(r, "version");
    ri->group = kube_xstrdup(rg && *rg ? rg : group);
    ri->version = kube_xstrdup(rv && *rv ? rv : version);
    ri->api_version = kube_xstrdup(gv);
    ri->kind = kube_xstrdup(kind);
    ri->resource = kube_xstrdup(name);
    ri->singular = kube_xstrdup(str_of(r, "singularName"));
    kv *nsd = kv_map_get_str(r, "namespaced");
    ri->namespaced = nsd && kv_kind_of(nsd) == KV_BOOL && nsd->u.b;
    ri->verbs = verbs_of(kv_map_get_str(r, "verbs"));
    ri->short_names = str_list(kv_map_get_str(r, "shortNames"), &ri->n_short_names);
    fresh[nf++] = ri;
  }
  /* then "parent/sub" entries */
  for (size_t i = 0; i < n; i++) {
    kv *r = kv_list_at(resources, i);
    const char *name = str_of(r, "name");
    const char *slash = name ? strchr(name, '/') : NULL;
    if (!slash) continue;
    for (size_t j = 0; j < nf; j++) {
      kube_resource_info *p = fresh[j];
      if (strlen(p->resource) != (size_t)(slash - name) ||
          strncmp(p->resource, name, (size_t)(slash - name)) != 0)
        continue;
      p->subresources = realloc(p->subresources, (p->n_subresources + 1) * sizeof *p->subresources);
      if (!p->subresources) kv_oom();
      p->subresources[p->n_subresources++] = kube_xstrdup(slash + 1);
      if (strcmp(slash + 1, "status") == 0) p->has_status = true;
      if (strcmp(slash + 1, "scale") == 0) p->has_scale = true;
    }
  }
  gv_entry *g = gv_get(d, gv);
  /* keep unchanged old entries (stable pointers), retire the rest */
  for (size_t j = 0; j < nf; j++)
    for (size_t i = 0; i < g->n_res; i++)
      if (g->res[i] && info_equal(g->res[i], fresh[j])) {
        info_free(fresh[j]);
        fresh[j] = g->res[i];
        g->res[i] = NULL;
        break;
      }
  gv_clear(d, g, true);
  g->res = fresh;
  g->n_res = nf;
  g->missing = false;
  g->fetched_ms = now_ms;
  return 0;
}

void kube_discovery_add_missing(kube_discovery *d, const char *api_version, int64_t now_ms) {
  gv_entry *g = gv_get(d, api_version);
  gv_clear(d, g, true);
  g->missing = true;
  g->fetched_ms = now_ms;
}

const kube_resource_info *kube_discovery_find(const kube_discovery *d, const char *api_version,
                                              const char *kind, const char *resource) {
  if (!api_version) return NULL;
  gv_entry *g = gv_find(d, api_version);
  if (!g) return NULL;
  for (size_t i = 0; i < g->n_res; i++) {
    const kube_resource_info *ri = g->res[i];
    if (kind && strcmp(ri->kind, kind) == 0) return ri;
    if (!kind && resource && strcmp(ri->resource, resource) == 0) return ri;
  }
  return NULL;
}

bool kube_discovery_knows(const kube_discovery *d, const char *api_version) {
  return api_version && gv_find(d, api_version) != NULL;
}

const kube_resource_info *kube_discovery_synth(kube_discovery *d, const char *api_version,
                                               const char *resource, bool namespaced) {
  for (size_t i = 0; i < d->n_retired; i++) {
    kube_resource_info *ri = d->retired[i];
    if (ri->kind[0] == 0 && strcmp(ri->api_version, api_version) == 0 &&
        strcmp(ri->resource, resource) == 0 && ri->namespaced == namespaced)
      return ri;
  }
  char group[256], version[64];
  kube_split_api_version(api_version, group, sizeof group, version, sizeof version);
  kube_resource_info *ri = calloc(1, sizeof *ri);
  if (!ri) kv_oom();
  ri->group = kube_xstrdup(group);
  ri->version = kube_xstrdup(version);
  ri->api_version = kube_xstrdup(api_version);
  ri->kind = kube_xstrdup("");
  ri->resource = kube_xstrdup(resource);
  ri->singular = kube_xstrdup("");
  ri->namespaced = namespaced;
  ri->verbs = ~0u;
  retire(d, ri);
  return ri;
}
