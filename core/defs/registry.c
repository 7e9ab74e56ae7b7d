/*
 * core/defs/registry.c: the registry of prepared definitions (spec 8):
 * entries keyed by kind + namespace + name with a namespace priority list,
 * the definition objects' life cycle (kdef_ref / kdef_unref), preparing a
 * document (schema validation with defaults, then the kind's preparer),
 * subscriptions (what each definition depends on), Workflow reference
 * cycle detection, and put/remove with the transitive re-prepare of
 * dependents in dependency order (spec 8.3), each result reported.
 *
 * Differences from upstream, on purpose: no background tasks or queues
 * (re-prepare is synchronous and ordered, so no stale events exist); a
 * Workflow that reaches itself through sub-workflow references is stored
 * as a PermFail instead of raising a hard error (spec 10.5 item 50);
 * metadata.resourceVersion is optional (files on disk have none).
 */
#include <stdlib.h>
#include <string.h>

#include "defs/defs_impl.h"

typedef struct kd_entry kd_entry;
struct kd_entry {
  kdef_kind kind;
  char *ns, *name;
  kv *doc;
  kdef_definition *def; /* NULL while pending */
  kd_deps deps;         /* subscriptions of the current def */
  uint64_t put_seq;
  kd_entry *next_hash;
  int mark;  /* dependency-order DFS scratch */
  int cmark; /* cycle-search scratch */
};

struct kdef_registry {
  cel_env *env;
  kd_entry **entries; /* load order */
  size_t n, cap;
  kd_entry **buckets;
  size_t nbuckets;
  char **nsprio;
  size_t n_ns;
  kv *others;
  uint64_t seq;
};

/* ---- definitions
 * -------------------------------------------------------------- */

/* kdef_ref: see definition.h. */
kdef_definition *kdef_ref(kdef_definition *d) {
  if (d) d->refs++;
  return d;
}

/* kdef_unref: see definition.h. */
void kdef_unref(kdef_definition *d) {
  if (!d || --d->refs > 0) return;
  switch (d->kind) {
  case KDEF_VALUE_FUNCTION: kd_free_value_function(&d->u.vf); break;
  case KDEF_RESOURCE_FUNCTION: kd_free_resource_function(&d->u.rf); break;
  case KDEF_RESOURCE_TEMPLATE: kd_free_resource_template(&d->u.rt); break;
  case KDEF_WORKFLOW: kd_free_workflow(&d->u.wf); break;
  case KDEF_FUNCTION_TEST: kd_free_function_test(&d->u.ft); break;
  default: break;
  }
  kdef_outcome_clear(&d->status);
  free(d->name);
  free(d->ns);
  free(d->resource_version);
  kv_unref(d->doc);
  kv_unref(d->spec);
  free(d);
}

/* ---- hashing
 * -------------------------------------------------------------------- */

static size_t hash_key(kdef_kind kind, const char *name) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(kind + 1);
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return (size_t)h;
}

static void hash_insert(kdef_registry *r, kd_entry *e) {
  if (r->n * 2 >= r->nbuckets) {
    size_t nb = r->nbuckets ? r->nbuckets * 2 : 64;
    kd_entry **b = calloc(nb, sizeof *b);
    if (!b) kv_oom();
    for (size_t i = 0; i < r->nbuckets; i++) {
      for (kd_entry *x = r->buckets[i], *next; x; x = next) {
        next = x->next_hash;
        size_t h = hash_key(x->kind, x->name) & (nb - 1);
        x->next_hash = b[h];
        b[h] = x;
      }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = nb;
  }
  size_t h = hash_key(e->kind, e->name) & (r->nbuckets - 1);
  e->next_hash = r->buckets[h];
  r->buckets[h] = e;
}

static void hash_remove(kdef_registry *r, kd_entry *e) {
  size_t h = hash_key(e->kind, e->name) & (r->nbuckets - 1);
  for (kd_entry **pp = &r->buckets[h]; *pp; pp = &(*pp)->next_hash)
    if (*pp == e) {
      *pp = e->next_hash;
      return;
    }
}

static kd_entry *find_exact(const kdef_registry *r, kdef_kind kind, const char *ns,
                            const char *name) {
  if (!r->nbuckets) return NULL;
  size_t h = hash_key(kind, name) & (r->nbuckets - 1);
  for (kd_entry *e = r->buckets[h]; e; e = e->next_hash)
    if (e->kind == kind && strcmp(e->name, name) == 0 && strcmp(e->ns, ns) == 0) return e;
  return NULL;
}

/* Namespace-priority resolution of kind + name (spec 8.5). */
static kd_entry *find_entry(const kdef_registry *r, kdef_kind kind, const char *name) {
  if (!r->nbuckets || !name) return NULL;
  size_t h = hash_key(kind, name) & (r->nbuckets - 1);
  for (size_t i = 0; i < r->n_ns; i++)
    for (kd_entry *e = r->buckets[h]; e; e = e->next_hash)
      if (e->kind == kind && strcmp(e->name, name) == 0 && strcmp(e->ns, r->nsprio[i]) == 0)
        return e;
  kd_entry *best = NULL;
  for (kd_entry *e = r->buckets[h]; e; e = e->next_hash)
    if (e->kind == kind && strcmp(e->name, name) == 0 && (!best || e->put_seq > best->put_seq))
      best = e;
  return best;
}

/* ---- public registry API
 * ------------------------------------------------------- */

/* kdef_registry_new: see definition.h. */
kdef_registry *kdef_registry_new(void) {
  kdef_registry *r = calloc(1, sizeof *r);
  if (!r) kv_oom();
  r->env = cel_env_new_koreo();
  r->others = kv_list_new(4);
  return r;
}

static void entry_free(kd_entry *e) {
  kdef_unref(e->def);
  kv_unref(e->doc);
  kd_deps_free(&e->deps);
  free(e->ns);
  free(e->name);
  free(e);
}

/* kdef_registry_free: see definition.h. */
void kdef_registry_free(kdef_registry *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++)
    entry_free(r->entries[i]);
  free(r->entries);
  free(r->buckets);
  for (size_t i = 0; i < r->n_ns; i++)
    free(r->nsprio[i]);
  free(r->nsprio);
  kv_unref(r->others);
  cel_env_free(r->env);
  free(r);
}

/* kdef_registry_env: see definition.h. */
const cel_env *kdef_registry_env(const kdef_registry *r) { return r->env; }

/* kdef_registry_set_namespaces: see definition.h. */
void kdef_registry_set_namespaces(kdef_registry *r, const char *const *ns, size_t n) {
  for (size_t i = 0; i < r->n_ns; i++)
    free(r->nsprio[i]);
  free(r->nsprio);
  r->nsprio = n ? calloc(n, sizeof *r->nsprio) : NULL;
  if (n && !r->nsprio) kv_oom();
  for (size_t i = 0; i < n; i++)
    r->nsprio[i] = kd_strdup(ns[i] ? ns[i] : "");
  r->n_ns = n;
}

/* kdef_registry_lookup: see definition.h. */
kdef_definition *kdef_registry_lookup(const kdef_registry *r, kdef_kind kind, const char *name) {
  kd_entry *e = find_entry(r, kind, name);
  return e ? e->def : NULL;
}

kdef_definition *kd_registry_resolve(kdef_registry *r, kdef_kind kind, const char *name) {
  return kdef_registry_lookup(r, kind, name);
}

/* kdef_registry_get: see definition.h. */
kdef_definition *kdef_registry_get(const kdef_registry *r, kdef_kind kind, const char *ns,
                                   const char *name) {
  kd_entry *e = find_exact(r, kind, ns ? ns : "", name);
  return e ? e->def : NULL;
}

/* kdef_registry_each: see definition.h. */
void kdef_registry_each(const kdef_registry *r, kdef_kind kind,
                        bool (*fn)(kdef_definition *d, void *arg), void *arg) {
  for (size_t i = 0; i < r->n; i++) {
    kd_entry *e = r->entries[i];
    if (!e->def || (kind != KDEF_KIND_NONE && e->kind != kind)) continue;
    if (!fn(e->def, arg)) return;
  }
}

/* kdef_registry_count: see definition.h. */
size_t kdef_registry_count(const kdef_registry *r, kdef_kind kind) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->entries[i]->def && (kind == KDEF_KIND_NONE || r->entries[i]->kind == kind)) n++;
  return n;
}

/* kdef_registry_others: see definition.h. */
const kv *kdef_registry_others(const kdef_registry *r) { return r->others; }

/* ---- documents
 * ---------------------------------------------------------------- */

static const char *doc_str(const kv *m, const char *key) {
  const kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, key) : NULL;
  return v && v->kind == KV_STRING ? kv_str(v) : NULL;
}

/* Raw references of a document (before prepare), for ordering and cycle
 * detection: Workflow refs/refSwitch cases, RF overlayRefs, FT functionRef. */
static void raw_deps(kdef_kind kind, const kv *doc, kd_deps *out) {
  const kv *spec = kv_map_get_str(doc, "spec");
  if (!spec || spec->kind != KV_MAP) return;
  if (kind == KDEF_WORKFLOW) {
    const kv *steps = kv_map_get_str(spec, "steps");
    for (size_t i = 0; steps && steps->kind == KV_LIST && i < kv_len(steps); i++) {
      const kv *s = kv_list_at(steps, i);
      if (s->kind != KV_MAP) continue;
      const kv *ref = kv_map_get_str(s, "ref");
      kdef_kind k = kdef_kind_from_name(doc_str(ref, "kind"));
      if (k != KDEF_KIND_NONE && doc_str(ref, "name")) kd_deps_add(out, k, doc_str(ref, "name"));
      const kv *sw = kv_map_get_str(s, "refSwitch");
      const kv *cases = sw && sw->kind == KV_MAP ? kv_map_get_str(sw, "cases") : NULL;
      for (size_t c = 0; cases && cases->kind == KV_LIST && c < kv_len(cases); c++) {
        const kv *cs = kv_list_at(cases, c);
        k = kdef_kind_from_name(doc_str(cs, "kind"));
        if (k != KDEF_KIND_NONE && doc_str(cs, "name")) kd_deps_add(out, k, doc_str(cs, "name"));
      }
    }
  } else if (kind == KDEF_RESOURCE_FUNCTION) {
    const kv *ovs = kv_map_get_str(spec, "overlays");
    for (size_t i = 0; ovs && ovs->kind == KV_LIST && i < kv_len(ovs); i++) {
      const kv *o = kv_list_at(ovs, i);
      const kv *ref = o->kind == KV_MAP ? kv_map_get_str(o, "overlayRef") : NULL;
      if (doc_str(ref, "name")) kd_deps_add(out, KDEF_VALUE_FUNCTION, doc_str(ref, "name"));
    }
  } else if (kind == KDEF_FUNCTION_TEST) {
    const kv *ref = kv_map_get_str(spec, "functionRef");
    kdef_kind k = kdef_kind_from_name(doc_str(ref, "kind"));
    if (k != KDEF_KIND_NONE && doc_str(ref, "name")) kd_deps_add(out, k, doc_str(ref, "name"));
  }
}

/* A path of Workflow references from `from` back to `target` (spec 8.2
 * cycle), appended to `b` as " -> name" links; true when found. */
static bool wf_reaches(kdef_registry *r, kd_entry *from, kd_entry *target, kd_buf *b, int depth) {
  if (depth > 64 || from->cmark) return false;
  from->cmark = 1;
  kd_deps d = {0};
  raw_deps(KDEF_WORKFLOW, from->doc, &d);
  bool found = false;
  for (size_t i = 0; i < d.n && !found; i++) {
    if (d.items[i].kind != KDEF_WORKFLOW) continue;
    kd_entry *e = find_entry(r, KDEF_WORKFLOW, d.items[i].name);
    if (!e) continue;
    size_t len = b->len;
    kd_buf_printf(b, " -> %s", e->name);
    if (e == target || wf_reaches(r, e, target, b, depth + 1))
      found = true;
    else {
      b->len = len;
      b->p[len] = 0;
    }
  }
  kd_deps_free(&d);
  return found;
}

static void clear_marks(kdef_registry *r) {
  for (size_t i = 0; i < r->n; i++)
    r->entries[i]->mark = 0;
}

static void clear_cmarks(kdef_registry *r) {
  for (size_t i = 0; i < r->n; i++)
    r->entries[i]->cmark = 0;
}

static void report(kdef_changes *changes, const kd_entry *e, bool removed) {
  if (!changes) return;
  if (changes->n == changes->cap) {
    size_t cap = changes->cap ? changes->cap * 2 : 8;
    kdef_change *p = realloc(changes->items, cap * sizeof *p);
    if (!p) kv_oom();
    changes->items = p;
    changes->cap = cap;
  }
  kdef_change *c = &changes->items[changes->n++];
  memset(c, 0, sizeof *c);
  c->kind = e->kind;
  c->ns = kd_strdup(e->ns);
  c->name = kd_strdup(e->name);
  c->removed = removed;
  kd_ok(&c->status);
  if (removed || !e->def) return;
  if (!kdef_outcome_is_ok(&e->def->status))
    kdef_outcome_copy(&c->status, &e->def->status);
  else if (e->kind == KDEF_WORKFLOW && !kdef_outcome_is_ok(&e->def->u.wf.steps_ready))
    kdef_outcome_copy(&c->status, &e->def->u.wf.steps_ready);
}

/* Prepare entry `e` from its document and make it current. */
static void prepare_entry(kdef_registry *r, kd_entry *e, kdef_changes *changes) {
  kdef_definition *d = calloc(1, sizeof *d);
  if (!d) kv_oom();
  d->refs = 1;
  d->kind = e->kind;
  d->name = kd_strdup(e->name);
  d->ns = kd_strdup(e->ns);
  const kv *md = kv_map_get_str(e->doc, "metadata");
  const char *rv = doc_str(md, "resourceVersion");
  d->resource_version = kd_strdup(rv ? rv : "");
  d->doc = kv_ref(e->doc);
  const kv_srcpos *pos = kv_pos(e->doc);
  if (pos) d->pos = *pos;
  d->generation = ++r->seq;
  kd_ok(&d->status);
  kd_prep p = {.reg = r, .env = r->env, .def = d};
  snprintf(p.loc, sizeof p.loc, "prepare:%s:%s", kdef_kind_name(e->kind), e->name);
  const kv *spec = kv_map_get_str(e->doc, "spec");
  kv *null = kv_null();
  kdef_outcome err;
  memset(&err, 0, sizeof err);
  kd_ok(&err);
  d->spec = kdef_schema_validate(kdef_schema(e->kind), spec ? spec : null, &err);
  kv_unref(null);
  if (!d->spec) {
    d->status = err;
    free(d->status.location);
    d->status.location =
        e->kind == KDEF_FUNCTION_TEST ? kd_printf("%s:spec", e->name) : kd_printf("%s:spec", p.loc);
    if (!d->status.pos.file && !d->status.pos.line) d->status.pos = d->pos;
    raw_deps(e->kind, e->doc, &p.deps);
  } else {
    kd_buf cyc = {0};
    bool cycle = false;
    if (e->kind == KDEF_WORKFLOW) {
      kd_buf_puts(&cyc, e->name);
      cycle = wf_reaches(r, e, e, &cyc, 0);
      clear_cmarks(r);
    }
    if (cycle) {
      char *loc = kd_printf("%s:spec.steps", p.loc);
      kd_fail(&d->status, KDEF_O_PERMFAIL, 0, loc, "spec.steps", kv_map_get_str(d->spec, "steps"),
              "Workflow reference cycle (%s): a Workflow may not use itself as "
              "a step, directly "
              "or through sub-Workflows",
              cyc.p);
      free(loc);
      raw_deps(e->kind, e->doc, &p.deps);
    } else {
      switch (e->kind) {
      case KDEF_VALUE_FUNCTION: kd_prepare_value_function(&p); break;
      case KDEF_RESOURCE_FUNCTION: kd_prepare_resource_function(&p); break;
      case KDEF_RESOURCE_TEMPLATE: kd_prepare_resource_template(&p); break;
      case KDEF_WORKFLOW: kd_prepare_workflow(&p); break;
      case KDEF_FUNCTION_TEST: kd_prepare_function_test(&p); break;
      default: break;
      }
    }
    free(cyc.p);
  }
  kdef_unref(e->def);
  e->def = d;
  kd_deps_free(&e->deps);
  e->deps = p.deps;
  report(changes, e, false);
}

/* Does `e` subscribe to kind/name? */
static bool depends_on(const kd_entry *e, kdef_kind kind, const char *name) {
  for (size_t i = 0; i < e->deps.n; i++)
    if (e->deps.items[i].kind == kind && strcmp(e->deps.items[i].name, name) == 0) return true;
  return false;
}

/* Mark (mark = 2) every entry that depends, transitively, on kind/name. */
static void mark_dependents(kdef_registry *r, kdef_kind kind, const char *name) {
  for (size_t i = 0; i < r->n; i++) {
    kd_entry *e = r->entries[i];
    if (e->mark != 0 || !depends_on(e, kind, name)) continue;
    e->mark = 2;
    mark_dependents(r, e->kind, e->name);
  }
}

/* Prepare the marked (mark == 2) entries so that each comes after the
 * marked entries it depends on (DFS post-order over subscriptions). */
static void prepare_marked(kdef_registry *r, kd_entry *e, kdef_changes *changes) {
  if (e->mark != 2) return;
  e->mark = 3; /* in progress */
  kd_deps d = {0};
  raw_deps(e->kind, e->doc, &d);
  for (size_t i = 0; i < e->deps.n; i++)
    kd_deps_add(&d, e->deps.items[i].kind, e->deps.items[i].name);
  for (size_t i = 0; i < d.n; i++) {
    if (d.items[i].kind == KDEF_RESOURCE_TEMPLATE) continue;
    kd_entry *x = find_entry(r, d.items[i].kind, d.items[i].name);
    if (x) prepare_marked(r, x, changes);
  }
  kd_deps_free(&d);
  prepare_entry(r, e, changes);
  e->mark = 4;
}

static void reprepare_dependents(kdef_registry *r, kd_entry *root, kdef_kind kind, const char *name,
                                 kdef_changes *changes) {
  clear_marks(r);
  if (root) root->mark = 4; /* just prepared: not again */
  mark_dependents(r, kind, name);
  for (size_t i = 0; i < r->n; i++)
    prepare_marked(r, r->entries[i], changes);
  clear_marks(r);
}

/* ---- put / remove
 * ---------------------------------------------------------------- */

/* Check the envelope of `doc`: returns the kind (KDEF_KIND_NONE for a
 * document that is not a Koreo definition: `*other` set) or -2 with a
 * diagnostic for a broken definition envelope. */
#define KD_BROKEN ((kdef_kind)-2)

/* The Koreo kind `s` is probably a misspelling of (edit distance <= 2,
 * case-insensitive), or NULL. */
static const char *near_kind(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  if (n > 40) return NULL;
  for (int k = 0; k < KDEF_KIND_COUNT; k++) {
    const char *t = kdef_kind_name((kdef_kind)k);
    size_t m = strlen(t);
    unsigned prev[48], cur[48];
    for (size_t j = 0; j <= m; j++)
      prev[j] = (unsigned)j;
    for (size_t i = 1; i <= n; i++) {
      cur[0] = (unsigned)i;
      for (size_t j = 1; j <= m; j++) {
        unsigned a = (unsigned char)s[i - 1], b = (unsigned char)t[j - 1];
        if (a >= 'A' && a <= 'Z') a += 32;
        if (b >= 'A' && b <= 'Z') b += 32;
        unsigned best = prev[j - 1] + (a != b);
        if (prev[j] + 1 < best) best = prev[j] + 1;
        if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
        cur[j] = best;
      }
      memcpy(prev, cur, sizeof prev);
    }
    if (prev[m] <= 2) return t;
  }
  return NULL;
}
static kdef_kind classify(const kv *doc, const char **name, const char **ns, bool *other,
                          kdef_diags *diags) {
  const kv_srcpos *pos = kv_pos(doc);
  const char *file = pos ? pos->file : NULL;
  uint32_t line = pos ? pos->line : 0, col = pos ? pos->col : 0;
  *other = false;
  if (!doc || doc->kind != KV_MAP) {
    kd_diag_add(diags, file, line, col, KDEF_KIND_NONE, NULL, NULL, false,
                "document is not a mapping (a Kubernetes object has "
                "apiVersion, kind and "
                "metadata)");
    return KD_BROKEN;
  }
  const char *av = doc_str(doc, "apiVersion");
  const char *ks = doc_str(doc, "kind");
  kdef_kind kind = kdef_kind_from_name(ks);
  bool koreo_group = av && strncmp(av, "koreo.dev/", 10) == 0;
  const char *near = kind == KDEF_KIND_NONE ? near_kind(ks) : NULL;
  if (kind == KDEF_KIND_NONE && !(koreo_group && near)) {
    /* CRDs, Namespaces, trigger objects (koreo.dev/v1alpha8 ...), manifests */
    *other = true;
    return KDEF_KIND_NONE;
  }
  if (kind == KDEF_KIND_NONE) {
    const kv_srcpos *kp = kv_pos(kv_map_get_str(doc, "kind"));
    kd_diag_add(diags, file, kp ? kp->line : line, kp ? kp->col : col, KDEF_KIND_NONE,
                doc_str(kv_map_get_str(doc, "metadata"), "name"), "kind", false,
                "unknown Koreo kind '%s' (did you mean %s?)", ks, near);
    return KD_BROKEN;
  }
  if (!av || strcmp(av, "koreo.dev/v1beta1") != 0) {
    const kv_srcpos *ap = kv_pos(kv_map_get_str(doc, "apiVersion"));
    kd_diag_add(diags, file, ap ? ap->line : line, ap ? ap->col : col, kind,
                doc_str(kv_map_get_str(doc, "metadata"), "name"), "apiVersion", false,
                "a %s must have apiVersion koreo.dev/v1beta1, not '%s'", ks, av ? av : "(missing)");
    return KD_BROKEN;
  }
  const kv *md = kv_map_get_str(doc, "metadata");
  *name = doc_str(md, "name");
  *ns = doc_str(md, "namespace");
  if (!*name || !**name) {
    const kv_srcpos *mp = kv_pos(md);
    kd_diag_add(diags, file, mp ? mp->line : line, mp ? mp->col : col, kind, NULL, "metadata.name",
                false,
                "Bad Resource: resource name and version are required "
                "(metadata.name is "
                "missing or empty)");
    return KD_BROKEN;
  }
  if (!*ns) *ns = "";
  return kind;
}

static kd_entry *entry_add(kdef_registry *r, kdef_kind kind, const char *ns, const char *name,
                           kv *doc) {
  kd_entry *e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->kind = kind;
  e->ns = kd_strdup(ns);
  e->name = kd_strdup(name);
  e->doc = kv_ref(doc);
  e->put_seq = ++r->seq;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 32;
    kd_entry **p = realloc(r->entries, cap * sizeof *p);
    if (!p) kv_oom();
    r->entries = p;
    r->cap = cap;
  }
  hash_insert(r, e); /* before n++: the load factor check uses n */
  r->entries[r->n++] = e;
  return e;
}

/* Stage a document without preparing it (loader); returns the entry or
 * NULL.  `replaced` is set to the previous document when one is replaced
 * (a reference the caller must drop). */
kd_entry *kd_registry_stage(kdef_registry *r, kv *doc, kdef_diags *diags, const kv **replaced);
kd_entry *kd_registry_stage(kdef_registry *r, kv *doc, kdef_diags *diags, const kv **replaced) {
  const char *name = NULL, *ns = NULL;
  bool other = false;
  *replaced = NULL;
  kdef_kind kind = classify(doc, &name, &ns, &other, diags);
  if (other) {
    kv_list_push(r->others, kv_ref(doc));
    return NULL;
  }
  if (kind == KD_BROKEN) return NULL;
  kd_entry *e = find_exact(r, kind, ns, name);
  if (e) {
    *replaced = e->doc; /* the caller's reference now */
    e->doc = kv_ref(doc);
    e->put_seq = ++r->seq;
    kdef_unref(e->def);
    e->def = NULL;
    return e;
  }
  return entry_add(r, kind, ns, name, doc);
}

/* Prepare every pending entry in dependency order (loader). */
void kd_registry_prepare_pending(kdef_registry *r, kdef_changes *changes);
void kd_registry_prepare_pending(kdef_registry *r, kdef_changes *changes) {
  clear_marks(r);
  for (size_t i = 0; i < r->n; i++)
    if (!r->entries[i]->def) r->entries[i]->mark = 2;
  /* templates first: FunctionTests subscribe to them by evaluated name */
  for (size_t i = 0; i < r->n; i++)
    if (r->entries[i]->kind == KDEF_RESOURCE_TEMPLATE) prepare_marked(r, r->entries[i], changes);
  for (size_t i = 0; i < r->n; i++)
    if (r->entries[i]->kind != KDEF_FUNCTION_TEST) prepare_marked(r, r->entries[i], changes);
  for (size_t i = 0; i < r->n; i++)
    prepare_marked(r, r->entries[i], changes);
  clear_marks(r);
}

static void diag_def(kdef_diags *diags, const kdef_definition *d) {
  if (d && !kdef_outcome_is_ok(&d->status)) kd_diag_outcome(diags, d, &d->status, false);
}

/* kdef_registry_put: see definition.h. */
kdef_definition *kdef_registry_put(kdef_registry *r, kv *doc, kdef_changes *changes,
                                   kdef_diags *diags) {
  const char *name = NULL, *ns = NULL;
  bool other = false;
  kdef_kind kind = classify(doc, &name, &ns, &other, diags);
  if (other) {
    kv_list_push(r->others, kv_ref(doc));
    return NULL;
  }
  if (kind == KD_BROKEN) return NULL;
  kd_entry *e = find_exact(r, kind, ns, name);
  if (e && e->def) {
    /* same non-empty resourceVersion: nothing changed (spec 8.1) */
    const char *rv = doc_str(kv_map_get_str(doc, "metadata"), "resourceVersion");
    if (rv && *rv && strcmp(rv, e->def->resource_version) == 0) return e->def;
  }
  if (e) {
    kv_unref(e->doc);
    e->doc = kv_ref(doc);
    e->put_seq = ++r->seq;
  } else
    e = entry_add(r, kind, ns, name, doc);
  size_t first = changes ? changes->n : 0;
  prepare_entry(r, e, changes);
  diag_def(diags, e->def);
  reprepare_dependents(r, e, kind, name, changes);
  if (changes && diags)
    for (size_t i = first + 1; i < changes->n; i++) {
      kdef_change *c = &changes->items[i];
      kdef_definition *d = kdef_registry_get(r, c->kind, c->ns, c->name);
      diag_def(diags, d);
    }
  return e->def;
}

/* kdef_registry_remove: see definition.h. */
bool kdef_registry_remove(kdef_registry *r, kdef_kind kind, const char *ns, const char *name,
                          kdef_changes *changes, kdef_diags *diags) {
  kd_entry *e = find_exact(r, kind, ns ? ns : "", name);
  if (!e) return false;
  hash_remove(r, e);
  for (size_t i = 0; i < r->n; i++)
    if (r->entries[i] == e) {
      memmove(&r->entries[i], &r->entries[i + 1], (r->n - i - 1) * sizeof *r->entries);
      r->n--;
      break;
    }
  report(changes, e, true);
  size_t first = changes ? changes->n : 0;
  char *nm = kd_strdup(name);
  entry_free(e);
  reprepare_dependents(r, NULL, kind, nm, changes);
  free(nm);
  if (changes && diags)
    for (size_t i = first; i < changes->n; i++) {
      kdef_change *c = &changes->items[i];
      diag_def(diags, kdef_registry_get(r, c->kind, c->ns, c->name));
    }
  return true;
}
