/*
 * tests/kubesim/managed.c: field-manager bookkeeping (metadata.managedFields
 * in FieldsV1 form) and server-side apply.  Field sets are handled as
 * sorted sets of paths ("f:spec" / "f:replicas", "k:{"name":"c"}" for
 * list items keyed by name); an Update takes ownership of the fields it
 * changed, an Apply owns exactly the fields of its configuration, takes
 * fields from others only with force (409 Conflict with the conflicting
 * fields otherwise), and removes the fields it owned before but no longer
 * applies when nobody else owns them.
 */
#include "kubesim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEP "\x1f"

typedef struct pset {
  char **p;
  size_t n, cap;
} pset;

static void ps_add(pset *s, const char *path) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->p = realloc(s->p, s->cap * sizeof *s->p);
    if (!s->p) kv_oom();
  }
  s->p[s->n] = strdup(path);
  if (!s->p[s->n]) kv_oom();
  s->n++;
}

static int cmpstr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void ps_sort(pset *s) {
  if (s->n) qsort(s->p, s->n, sizeof *s->p, cmpstr);
  size_t j = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (j && strcmp(s->p[j - 1], s->p[i]) == 0) {
      free(s->p[i]);
      continue;
    }
    s->p[j++] = s->p[i];
  }
  s->n = j;
}

static bool ps_has(const pset *s, const char *p) {
  return s->n && bsearch(&p, s->p, s->n, sizeof *s->p, cmpstr) != NULL;
}

static void ps_free(pset *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->p[i]);
  free(s->p);
  memset(s, 0, sizeof *s);
}

static bool skip_meta(const char *k) {
  static const char *const sk[] = {"name",
                                   "namespace",
                                   "uid",
                                   "resourceVersion",
                                   "generation",
                                   "creationTimestamp",
                                   "managedFields",
                                   "deletionTimestamp",
                                   "deletionGracePeriodSeconds",
                                   "selfLink"};
  for (size_t i = 0; i < sizeof sk / sizeof sk[0]; i++)
    if (strcmp(k, sk[i]) == 0) return true;
  return false;
}

static bool is_keyed_list(const kv *l) {
  if (!l || l->kind != KV_LIST || kv_len(l) == 0) return false;
  for (size_t i = 0; i < kv_len(l); i++) {
    kv *e = kv_list_at(l, i);
    if (e->kind != KV_MAP || !ku_str(e, "name")) return false;
  }
  return true;
}

static char *item_key(const kv *e) {
  kv *k = kv_map_new(1);
  kv_map_set_str(k, "name", kv_cstring(ku_str(e, "name")));
  size_t n;
  char *js = ku_json(k, &n);
  kv_unref(k);
  char *r = ku_fmt("k:%s", js);
  free(js);
  return r;
}

static bool all_scalars(const kv *m) {
  for (size_t i = 0; i < kv_len(m); i++) {
    kv *x = kv_map_val_at(m, i);
    if (x->kind == KV_MAP || x->kind == KV_LIST) return false;
  }
  return true;
}

/* Paths of every field of `v` below `prefix` (depth 0: the object). */
static void paths_of(const kv *v, const char *prefix, int depth, pset *out) {
  if (v->kind == KV_MAP) {
    for (size_t i = 0; i < kv_len(v); i++) {
      const char *k = kv_str(kv_map_key_at(v, i));
      if (depth == 0 && (strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0)) continue;
      /* the empty status a create resets is nobody's */
      if (depth == 0 && strcmp(k, "status") == 0 && kv_map_val_at(v, i)->kind == KV_MAP &&
          kv_len(kv_map_val_at(v, i)) == 0)
        continue;
      if (depth == 1 && strcmp(prefix, "f:metadata") == 0 && skip_meta(k)) continue;
      char *p = *prefix ? ku_fmt("%s" SEP "f:%s", prefix, k) : ku_fmt("f:%s", k);
      kv *c = kv_map_val_at(v, i);
      /* a field is a member of the set unless it is a struct (a map that
       * holds more than scalars) or a list keyed by name: those are only
       * the path to their members, as in the apiserver's FieldsV1 */
      bool member = !is_keyed_list(c) && (c->kind != KV_MAP || kv_len(c) == 0 || all_scalars(c));
      if (member) ps_add(out, p);
      if (c->kind == KV_MAP || is_keyed_list(c)) paths_of(c, p, depth + 1, out);
      free(p);
    }
  } else if (is_keyed_list(v)) {
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *e = kv_list_at(v, i);
      char *ik = item_key(e);
      char *p = ku_fmt("%s" SEP "%s", prefix, ik);
      free(ik);
      ps_add(out, p);
      paths_of(e, p, depth + 1, out);
      free(p);
    }
  }
}

static void paths_of_obj(const kv *obj, pset *out) {
  paths_of(obj, "", 0, out);
  ps_sort(out);
}

/* The value at a path (borrowed) or NULL. */
static kv *value_at(const kv *obj, const char *path) {
  const kv *cur = obj;
  const char *p = path;
  while (cur && *p) {
    const char *e = strstr(p, SEP);
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (p[0] == 'f' && p[1] == ':') {
      if (cur->kind != KV_MAP) return NULL;
      cur = kv_map_get_strn(cur, p + 2, n - 2);
    } else if (p[0] == 'k' && p[1] == ':') {
      if (cur->kind != KV_LIST) return NULL;
      kv_parse_error pe;
      kv *key = kv_json_parse(p + 2, n - 2, &pe);
      const kv *found = NULL;
      for (size_t i = 0; key && i < kv_len(cur); i++) {
        kv *el = kv_list_at(cur, i);
        bool all = true;
        for (size_t k = 0; k < kv_len(key); k++)
          if (!ku_json_equal(ku_get(el, kv_str(kv_map_key_at(key, k))), kv_map_val_at(key, k)))
            all = false;
        if (all) {
          found = el;
          break;
        }
      }
      kv_unref(key);
      cur = found;
    } else {
      return NULL;
    }
    p = e ? e + strlen(SEP) : p + n;
  }
  return (kv *)cur;
}

/* FieldsV1 tree of a path set. */
static kv *tree_of(const pset *s) {
  kv *root = kv_map_new(4);
  /* build with nested mutable maps: each insert walks from the root */
  for (size_t i = 0; i < s->n; i++) {
    const char *p = s->p[i];
    /* collect elements */
    const char *elems[64];
    size_t lens[64], ne = 0;
    while (*p && ne < 64) {
      const char *e = strstr(p, SEP);
      size_t n = e ? (size_t)(e - p) : strlen(p);
      elems[ne] = p;
      lens[ne++] = n;
      p = e ? e + strlen(SEP) : p + n;
    }
    kv *cur = root;
    for (size_t k = 0; k < ne; k++) {
      kv *child = kv_map_get_strn(cur, elems[k], lens[k]);
      if (!child) {
        child = kv_map_new(2);
        kv_map_set(cur, kv_string(elems[k], lens[k]), child);
      }
      cur = child;
    }
  }
  /* mark members that have children with "." */
  for (size_t i = 0; i < s->n; i++) {
    const char *p = s->p[i];
    kv *cur = root;
    while (cur && *p) {
      const char *e = strstr(p, SEP);
      size_t n = e ? (size_t)(e - p) : strlen(p);
      cur = kv_map_get_strn(cur, p, n);
      p = e ? e + strlen(SEP) : p + n;
    }
    if (cur && kv_len(cur) > 0 && !kv_map_get_str(cur, ".")) {
      /* "." first, as the apiserver writes it */
      kv *copy = kv_map_new(kv_len(cur) + 1);
      kv_map_set_str(copy, ".", kv_map_new(0));
      for (size_t k = 0; k < kv_len(cur); k++)
        kv_map_set(copy, kv_ref(kv_map_key_at(cur, k)), kv_ref(kv_map_val_at(cur, k)));
      /* swap contents in place (cur is still only referenced by its parent) */
      kv tmp = *cur;
      cur->u.map = copy->u.map;
      copy->u.map = tmp.u.map;
      kv_unref(copy);
    }
  }
  return root;
}

static void tree_paths(const kv *t, const char *prefix, pset *out) {
  for (size_t i = 0; t && t->kind == KV_MAP && i < kv_len(t); i++) {
    const char *k = kv_str(kv_map_key_at(t, i));
    if (strcmp(k, ".") == 0) continue;
    kv *c = kv_map_val_at(t, i);
    char *p = *prefix ? ku_fmt("%s" SEP "%s", prefix, k) : ku_fmt("%s", k);
    if (c->kind != KV_MAP || kv_len(c) == 0 || kv_map_get_str(c, ".")) ps_add(out, p);
    tree_paths(c, p, out);
    free(p);
  }
}

static void entry_paths(const kv *entry, pset *out) {
  tree_paths(ku_get(entry, "fieldsV1"), "", out);
  ps_sort(out);
}

static kv *make_entry(const char *manager, const char *op, const char *api_version, const char *sub,
                      const pset *s) {
  char now[32];
  ku_now_rfc3339(now);
  kv *e = kv_map_new(7);
  kv_map_set_str(e, "manager", kv_cstring(manager));
  kv_map_set_str(e, "operation", kv_cstring(op));
  kv_map_set_str(e, "apiVersion", kv_cstring(api_version ? api_version : "v1"));
  kv_map_set_str(e, "time", kv_cstring(now));
  kv_map_set_str(e, "fieldsType", kv_cstring("FieldsV1"));
  kv_map_set_str(e, "fieldsV1", tree_of(s));
  if (sub && *sub && strcmp(sub, "finalize") != 0)
    kv_map_set_str(e, "subresource", kv_cstring(sub));
  return e;
}

static bool same_entry(const kv *e, const char *manager, const char *op, const char *sub) {
  const char *m = ku_str(e, "manager"), *o = ku_str(e, "operation"), *s = ku_str(e, "subresource");
  if (!m || !o || strcmp(m, manager) != 0 || strcmp(o, op) != 0) return false;
  if (sub && strcmp(sub, "finalize") == 0) sub = NULL;
  return (!s && !sub) || (s && sub && strcmp(s, sub) == 0);
}

/* Leaves of `s` whose value differs between a and b (or that are absent in a). */
static void changed_paths(const kv *a, const kv *b, const pset *s, pset *out) {
  for (size_t i = 0; i < s->n; i++) {
    kv *va = a ? value_at(a, s->p[i]) : NULL, *vb = value_at(b, s->p[i]);
    /* a map present before and after is not itself changed: its entries are */
    if (va && vb && va->kind == KV_MAP && vb->kind == KV_MAP && kv_len(vb) > 0) continue;
    if (!va || !ku_json_equal(va, vb)) ps_add(out, s->p[i]);
  }
  ps_sort(out);
}

kv *ks_managed_fields(const kv *old, const kv *obj, const char *manager, const char *operation,
                      const char *api_version, const char *subresource) {
  kv *cur = ku_get(ku_get(obj, "metadata"), "managedFields");
  if (strcmp(operation, "Apply") == 0) return cur ? kv_ref(cur) : kv_list_new(0);
  kv *prev = old ? ku_get(ku_get(old, "metadata"), "managedFields") : NULL;
  /* clients may not rewrite managedFields through an update: keep the
   * stored ones unless the client explicitly set a different list */
  kv *base = prev;
  if (cur && (!prev || !ku_json_equal(cur, prev))) base = cur;
  pset all = {0}, ch = {0};
  paths_of_obj(obj, &all);
  changed_paths(old, obj, &all, &ch);
  kv *out = kv_list_new(4);
  bool mine_done = false;
  for (size_t i = 0; base && base->kind == KV_LIST && i < kv_len(base); i++) {
    kv *e = kv_list_at(base, i);
    pset es = {0}, keep = {0};
    entry_paths(e, &es);
    bool mine = same_entry(e, manager, operation, subresource);
    for (size_t k = 0; k < es.n; k++)
      if (ps_has(&all, es.p[k]) && (mine || !ps_has(&ch, es.p[k]))) ps_add(&keep, es.p[k]);
    if (mine) {
      for (size_t k = 0; k < ch.n; k++)
        ps_add(&keep, ch.p[k]);
      mine_done = true;
    }
    ps_sort(&keep);
    if (keep.n) {
      if (mine || keep.n != es.n) {
        const char *av = ku_str(e, "apiVersion");
        kv_list_push(out, make_entry(ku_str(e, "manager"), ku_str(e, "operation"),
                                     mine ? api_version : av, ku_str(e, "subresource"), &keep));
        if (!mine) {
          /* keep the other manager's timestamp */
          kv *last = kv_list_at(out, kv_len(out) - 1);
          kv *t = ku_get(e, "time");
          if (t) kv_map_set_str(last, "time", kv_ref(t));
        }
      } else {
        kv_list_push(out, kv_ref(e));
      }
    }
    ps_free(&es);
    ps_free(&keep);
  }
  if (!mine_done && ch.n)
    kv_list_push(out, make_entry(manager, operation, api_version, subresource, &ch));
  ps_free(&all);
  ps_free(&ch);
  return out;
}

/* ---- server-side apply -------------------------------------------------------------- */

static kv *ssa_merge(const kv *live, const kv *applied) {
  if (!live || applied->kind != live->kind) return kv_ref((kv *)applied);
  if (applied->kind == KV_MAP) {
    kv *r = ku_map_copy(live);
    for (size_t i = 0; i < kv_len(applied); i++) {
      kv *k = kv_map_key_at(applied, i);
      kv_map_set(r, kv_ref(k), ssa_merge(kv_map_get(live, k), kv_map_val_at(applied, i)));
    }
    return r;
  }
  if (applied->kind == KV_LIST && is_keyed_list(applied) && is_keyed_list(live)) {
    kv *r = kv_list_new(kv_len(live) + kv_len(applied));
    for (size_t i = 0; i < kv_len(live); i++) {
      kv *le = kv_list_at(live, i);
      kv *match = NULL;
      for (size_t j = 0; j < kv_len(applied); j++)
        if (strcmp(ku_str(kv_list_at(applied, j), "name"), ku_str(le, "name")) == 0)
          match = kv_list_at(applied, j);
      kv_list_push(r, match ? ssa_merge(le, match) : kv_ref(le));
    }
    for (size_t j = 0; j < kv_len(applied); j++) {
      kv *ae = kv_list_at(applied, j);
      bool found = false;
      for (size_t i = 0; i < kv_len(live); i++)
        if (strcmp(ku_str(kv_list_at(live, i), "name"), ku_str(ae, "name")) == 0) found = true;
      if (!found) kv_list_push(r, kv_ref(ae));
    }
    return r;
  }
  return kv_ref((kv *)applied);
}

/* Remove the field at `path` from `v` (new value). */
static kv *remove_path(const kv *v, const char *path) {
  const char *e = strstr(path, SEP);
  size_t n = e ? (size_t)(e - path) : strlen(path);
  if (path[0] == 'f' && path[1] == ':' && v->kind == KV_MAP) {
    char *k = strndup(path + 2, n - 2);
    if (!k) kv_oom();
    kv *child = kv_map_get_str(v, k);
    kv *r;
    if (!child)
      r = kv_ref((kv *)v);
    else if (!e)
      r = ku_without(v, k);
    else
      r = ku_with(v, k, remove_path(child, e + strlen(SEP)));
    free(k);
    return r;
  }
  if (path[0] == 'k' && path[1] == ':' && v->kind == KV_LIST) {
    kv_parse_error pe;
    kv *key = kv_json_parse(path + 2, n - 2, &pe);
    const char *name = ku_str(key, "name");
    kv *r = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *el = kv_list_at(v, i);
      const char *en = ku_str(el, "name");
      if (name && en && strcmp(name, en) == 0) {
        if (e) kv_list_push(r, remove_path(el, e + strlen(SEP)));
        continue;
      }
      kv_list_push(r, kv_ref(el));
    }
    kv_unref(key);
    return r;
  }
  return kv_ref((kv *)v);
}

kv *ks_ssa(ks_server *s, ks_type *t, const kv *live, const kv *applied, const char *manager,
           bool force, const char *api_version, kv **err) {
  (void)s;
  *err = NULL;
  if (!applied || applied->kind != KV_MAP) {
    *err = ks_status(400, "BadRequest", NULL, "apply configuration must be an object");
    return NULL;
  }
  const char *av = ku_str(applied, "apiVersion"), *kind = ku_str(applied, "kind");
  if (!av || !kind) {
    *err = ks_status(400, "BadRequest", NULL,
                     "invalid object type: %s, %s: apiVersion and kind must be set", av ? av : "",
                     kind ? kind : "");
    return NULL;
  }
  if (strcmp(kind, t->kind) != 0) {
    *err =
        ks_status(400, "BadRequest", NULL,
                  "the kind in the data (%s) does not match the expected kind (%s)", kind, t->kind);
    return NULL;
  }
  if (!api_version) api_version = av;
  pset A = {0};
  paths_of_obj(applied, &A);
  kv *mfs = live ? ku_get(ku_get(live, "metadata"), "managedFields") : NULL;
  /* conflicts */
  ku_buf msg = {0};
  kv *causes = kv_list_new(2);
  size_t nconf = 0;
  pset taken = {0};
  for (size_t i = 0; mfs && mfs->kind == KV_LIST && i < kv_len(mfs); i++) {
    kv *e = kv_list_at(mfs, i);
    if (same_entry(e, manager, "Apply", NULL)) continue;
    pset es = {0};
    entry_paths(e, &es);
    for (size_t k = 0; k < A.n; k++) {
      if (!ps_has(&es, A.p[k])) continue;
      kv *lv = value_at(live, A.p[k]), *avv = value_at(applied, A.p[k]);
      if (avv && (avv->kind == KV_MAP || is_keyed_list(avv))) continue;
      if (lv && avv && ku_json_equal(lv, avv)) continue;
      ps_add(&taken, A.p[k]);
      if (force) continue;
      /* ".spec.replicas" from "f:spec\x1ff:replicas" */
      ku_buf f = {0};
      const char *p = A.p[k];
      while (*p) {
        const char *e2 = strstr(p, SEP);
        size_t n = e2 ? (size_t)(e2 - p) : strlen(p);
        if (p[0] == 'f') {
          ku_buf_puts(&f, ".");
          ku_buf_add(&f, p + 2, n - 2);
        } else {
          ku_buf_puts(&f, "[");
          ku_buf_add(&f, p + 2, n - 2);
          ku_buf_puts(&f, "]");
        }
        p = e2 ? e2 + strlen(SEP) : p + n;
      }
      kv *cz = kv_map_new(3);
      kv_map_set_str(cz, "reason", kv_cstring("FieldManagerConflict"));
      kv_map_set_str(
          cz, "message",
          ku_kvfmt("conflict with \"%s\"%s%s", ku_str(e, "manager"),
                   strcmp(ku_str(e, "operation"), "Update") == 0 ? " using " : "",
                   strcmp(ku_str(e, "operation"), "Update") == 0 ? ku_str(e, "apiVersion") : ""));
      kv_map_set_str(cz, "field", kv_cstring(f.p));
      if (!msg.p || !strstr(msg.p, kv_str(ku_get(cz, "message")) + 14)) {
        /* group the paths by manager, in order of appearance */
        ku_buf_printf(&msg, "%sconflicts with %s:", msg.n ? "\n" : "",
                      kv_str(ku_get(cz, "message")) + 14);
      }
      ku_buf_printf(&msg, "\n- %s", f.p);
      kv_list_push(causes, cz);
      free(f.p);
      nconf++;
    }
    ps_free(&es);
  }
  ps_sort(&taken);
  if (nconf && !force) {
    kv *d = ks_details(ku_str(ku_get(applied, "metadata"), "name"), t->group, t->plural);
    kv_map_set_str(d, "causes", causes);
    if (nconf == 1)
      *err = ks_status(409, "Conflict", d, "Apply failed with 1 conflict: %s: %s",
                       ku_str(kv_list_at(causes, 0), "message"),
                       ku_str(kv_list_at(causes, 0), "field"));
    else
      *err = ks_status(409, "Conflict", d, "Apply failed with %zu conflicts: %s", nconf, msg.p);
    free(msg.p);
    ps_free(&A);
    ps_free(&taken);
    return NULL;
  }
  kv_unref(causes);
  free(msg.p);
  /* the merged object */
  kv *clean = ku_map_copy(applied);
  kv *amd = ku_get(clean, "metadata");
  kv *nmd = ku_map_copy(amd);
  static const char *const strip[] = {"managedFields", "resourceVersion", "uid",
                                      "creationTimestamp", "generation"};
  for (size_t i = 0; i < sizeof strip / sizeof strip[0]; i++) {
    kv *x = ku_without(nmd, strip[i]);
    kv_unref(nmd);
    nmd = x;
  }
  kv_map_set_str(clean, "metadata", nmd);
  kv *res = live ? ssa_merge(live, clean) : kv_ref(clean);
  kv_unref(clean);
  /* fields this manager applied before and no longer applies */
  pset others = {0}, mine_before = {0};
  for (size_t i = 0; mfs && mfs->kind == KV_LIST && i < kv_len(mfs); i++) {
    kv *e = kv_list_at(mfs, i);
    if (same_entry(e, manager, "Apply", NULL))
      entry_paths(e, &mine_before);
    else {
      pset es = {0};
      entry_paths(e, &es);
      for (size_t k = 0; k < es.n; k++)
        if (!ps_has(&taken, es.p[k])) ps_add(&others, es.p[k]);
      ps_free(&es);
    }
  }
  ps_sort(&others);
  for (size_t k = mine_before.n; k > 0; k--) {
    const char *p = mine_before.p[k - 1];
    if (ps_has(&A, p) || ps_has(&others, p)) continue;
    kv *x = remove_path(res, p);
    kv_unref(res);
    res = x;
  }
  /* the new managedFields */
  kv *out = kv_list_new(4);
  bool placed = false;
  for (size_t i = 0; mfs && mfs->kind == KV_LIST && i < kv_len(mfs); i++) {
    kv *e = kv_list_at(mfs, i);
    if (same_entry(e, manager, "Apply", NULL)) {
      kv_list_push(out, make_entry(manager, "Apply", api_version, NULL, &A));
      placed = true;
      continue;
    }
    pset es = {0}, keep = {0};
    entry_paths(e, &es);
    for (size_t k = 0; k < es.n; k++)
      if (!ps_has(&taken, es.p[k]) && value_at(res, es.p[k])) ps_add(&keep, es.p[k]);
    ps_sort(&keep);
    if (keep.n == es.n)
      kv_list_push(out, kv_ref(e));
    else if (keep.n)
      kv_list_push(out, make_entry(ku_str(e, "manager"), ku_str(e, "operation"),
                                   ku_str(e, "apiVersion"), ku_str(e, "subresource"), &keep));
    ps_free(&es);
    ps_free(&keep);
  }
  if (!placed) kv_list_push(out, make_entry(manager, "Apply", api_version, NULL, &A));
  kv *md2 = ku_with(ku_get(res, "metadata"), "managedFields", out);
  kv *final = ku_with(res, "metadata", md2);
  kv_unref(res);
  ps_free(&A);
  ps_free(&taken);
  ps_free(&others);
  ps_free(&mine_before);
  return final;
}
