/*
 * tests/kubesim/gc.c: the parts of kube-controller-manager that the API
 * semantics need: the garbage collector (dependents of a deleted owner
 * through ownerReferences, background and foreground; orphaning) and the
 * namespace lifecycle (a deleted namespace empties itself, then goes), run
 * as passes on the event loop after changes.  Also the admin endpoint
 * (/kubesim/...): fault injection settings, dropped watches, event-window
 * compaction and restarts that keep or lose state.
 */
#include "kubesim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rec {
  const char *uid;
  ks_type *t;
  kv *obj;
} rec;

static int rec_cmp(const void *a, const void *b) {
  return strcmp(((const rec *)a)->uid, ((const rec *)b)->uid);
}

static const char *meta_str(const kv *o, const char *k) { return ku_str(ku_get(o, "metadata"), k); }

static bool list_has(const kv *l, const char *s) {
  for (size_t i = 0; l && l->kind == KV_LIST && i < kv_len(l); i++)
    if (kv_list_at(l, i)->kind == KV_STRING && strcmp(kv_str(kv_list_at(l, i)), s) == 0)
      return true;
  return false;
}

static kv *list_without(const kv *l, const char *s) {
  kv *r = kv_list_new(kv_len(l));
  for (size_t i = 0; l && l->kind == KV_LIST && i < kv_len(l); i++) {
    kv *e = kv_list_at(l, i);
    if (e->kind == KV_STRING && strcmp(kv_str(e), s) == 0) continue;
    kv_list_push(r, kv_ref(e));
  }
  return r;
}

typedef struct action {
  int kind; /* 0 delete, 1 replace */
  ks_type *t;
  char *ns, *name;
  const char *prop;
  kv *old, *obj;
} action;

typedef struct actions {
  action *a;
  size_t n, cap;
} actions;

static void act_add(actions *as, int kind, ks_type *t, const kv *old, kv *obj, const char *prop) {
  /* one action per object per pass */
  const char *uid = meta_str(old, "uid");
  for (size_t i = 0; i < as->n; i++)
    if (as->a[i].t == t && strcmp(meta_str(as->a[i].old, "uid"), uid) == 0) {
      kv_unref(obj);
      return;
    }
  if (as->n == as->cap) {
    as->cap = as->cap ? as->cap * 2 : 16;
    as->a = realloc(as->a, as->cap * sizeof *as->a);
    if (!as->a) kv_oom();
  }
  action *x = &as->a[as->n++];
  x->kind = kind;
  x->t = t;
  const char *ns = meta_str(old, "namespace");
  x->ns = ns ? strdup(ns) : NULL;
  x->name = strdup(meta_str(old, "name"));
  x->prop = prop;
  x->old = kv_ref((kv *)old);
  x->obj = obj;
}

static bool deleting(const kv *o) {
  return ku_get(ku_get(o, "metadata"), "deletionTimestamp") != NULL;
}

static void gc_pass(ks_server *s) {
  /* index every object by uid */
  size_t total = 0;
  for (size_t i = 0; i < s->ntypes; i++)
    total += s->types[i]->objs.n;
  rec *recs = malloc((total + 1) * sizeof *recs);
  if (!recs) kv_oom();
  size_t nr = 0;
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_table *tb = &s->types[i]->objs;
    for (size_t b = 0; b < tb->nb; b++)
      for (ks_entry *e = tb->b[b]; e; e = e->next) {
        const char *uid = meta_str(e->obj, "uid");
        if (!uid) continue;
        recs[nr].uid = uid;
        recs[nr].t = s->types[i];
        recs[nr].obj = e->obj;
        nr++;
      }
  }
  qsort(recs, nr, sizeof *recs, rec_cmp);
  /* owner uid -> has dependents */
  actions as = {0};
  for (size_t i = 0; i < nr; i++) {
    kv *o = recs[i].obj;
    ks_type *t = recs[i].t;
    kv *refs = ku_get(ku_get(o, "metadata"), "ownerReferences");
    if (refs && refs->kind == KV_LIST && kv_len(refs) > 0) {
      size_t solid = 0, dangling = 0, fg = 0, orphaning = 0;
      kv *keep = kv_list_new(kv_len(refs));
      for (size_t k = 0; k < kv_len(refs); k++) {
        kv *r = kv_list_at(refs, k);
        const char *ouid = ku_str(r, "uid");
        rec key = {ouid ? ouid : "", NULL, NULL};
        rec *owner = bsearch(&key, recs, nr, sizeof *recs, rec_cmp);
        /* an owner in another namespace does not own a namespaced object */
        if (owner && owner->t->namespaced && t->namespaced &&
            strcmp(meta_str(owner->obj, "namespace"), meta_str(o, "namespace")) != 0)
          owner = NULL;
        if (!owner) {
          dangling++;
          continue;
        }
        kv *of = ku_get(ku_get(owner->obj, "metadata"), "finalizers");
        if (deleting(owner->obj) && list_has(of, "orphan")) {
          orphaning++;
          continue;
        }
        kv_list_push(keep, kv_ref(r));
        if (deleting(owner->obj) && list_has(of, "foregroundDeletion"))
          fg++;
        else
          solid++;
      }
      if (solid > 0) {
        /* owned: only the references to absent or orphaning owners go */
        if (kv_len(keep) != kv_len(refs)) {
          kv *md = ku_with(ku_get(o, "metadata"), "ownerReferences", kv_ref(keep));
          act_add(&as, 1, t, o, ku_with(o, "metadata", md), NULL);
        }
      } else if (fg > 0) {
        if (!deleting(o)) act_add(&as, 0, t, o, NULL, "Foreground");
      } else if (orphaning > 0 && dangling == 0) {
        /* released by an orphaning owner: the object stays, unowned */
        kv *md = ku_without(ku_get(o, "metadata"), "ownerReferences");
        act_add(&as, 1, t, o, ku_with(o, "metadata", md), NULL);
      } else if (!deleting(o)) {
        /* every owner is gone */
        act_add(&as, 0, t, o, NULL, "Background");
      }
      kv_unref(keep);
    }
    if (deleting(o)) {
      kv *fins = ku_get(ku_get(o, "metadata"), "finalizers");
      bool fgd = list_has(fins, "foregroundDeletion"), orph = list_has(fins, "orphan");
      if (fgd || orph) {
        /* any dependents left? */
        const char *uid = meta_str(o, "uid");
        bool deps = false;
        for (size_t j = 0; j < nr && !deps; j++) {
          kv *rr = ku_get(ku_get(recs[j].obj, "metadata"), "ownerReferences");
          for (size_t k = 0; rr && rr->kind == KV_LIST && k < kv_len(rr); k++) {
            const char *u = ku_str(kv_list_at(rr, k), "uid");
            if (u && strcmp(u, uid) == 0) {
              kv *b = ku_get(kv_list_at(rr, k), "blockOwnerDeletion");
              if (orph || fgd || (b && b->kind == KV_BOOL && b->u.b)) deps = true;
            }
          }
        }
        if (!deps) {
          kv *nf = list_without(fins, fgd ? "foregroundDeletion" : "orphan");
          kv *md = ku_with(ku_get(o, "metadata"), "finalizers", nf);
          act_add(&as, 1, t, o, ku_with(o, "metadata", md), NULL);
        }
      }
      if (strcmp(t->plural, "customresourcedefinitions") == 0 &&
          list_has(fins, "customresourcecleanup.apiextensions.k8s.io")) {
        /* the CRD finalizer: delete the custom resources, then let go */
        ks_type *ct = NULL;
        for (size_t k = 0; k < s->ntypes; k++)
          if (s->types[k]->is_crd && strcmp(kv_str(s->types[k]->crd), meta_str(o, "name")) == 0)
            ct = s->types[k];
        bool empty = true;
        for (size_t j = 0; ct && j < nr; j++) {
          if (recs[j].t != ct) continue;
          empty = false;
          if (!deleting(recs[j].obj)) act_add(&as, 0, ct, recs[j].obj, NULL, "Background");
        }
        if (empty) {
          kv *nf = list_without(fins, "customresourcecleanup.apiextensions.k8s.io");
          kv *md = ku_with(ku_get(o, "metadata"), "finalizers", nf);
          act_add(&as, 1, t, o, ku_with(o, "metadata", md), NULL);
        }
      }
      if (strcmp(t->plural, "namespaces") == 0) {
        const char *ns = meta_str(o, "name");
        bool empty = true;
        for (size_t j = 0; j < nr; j++) {
          if (!recs[j].t->namespaced) continue;
          const char *ons = meta_str(recs[j].obj, "namespace");
          if (!ons || strcmp(ons, ns) != 0) continue;
          empty = false;
          if (!deleting(recs[j].obj)) act_add(&as, 0, recs[j].t, recs[j].obj, NULL, "Background");
        }
        kv *sf = ku_path(o, "spec.finalizers");
        if (empty && list_has(sf, "kubernetes")) {
          kv *spec = ku_with(ku_get(o, "spec"), "finalizers", list_without(sf, "kubernetes"));
          act_add(&as, 1, t, o, ku_with(o, "spec", spec), NULL);
        }
      }
    }
  }
  free(recs);
  /* apply: objects stay alive through the actions' references */
  for (size_t i = 0; i < as.n; i++) {
    action *x = &as.a[i];
    ks_type *t = x->t;
    bool still = false;
    for (size_t k = 0; k < s->ntypes; k++)
      if (s->types[k] == t) still = true;
    char key[512];
    ks_key(key, sizeof key, x->ns, x->name);
    kv *cur = still ? ks_table_get(&t->objs, key) : NULL;
    if (cur == x->old) {
      if (x->kind == 0) {
        kv *res = NULL;
        kv *err = ks_obj_delete(s, t, x->ns, x->name, x->prop, NULL, false, &res);
        kv_unref(err);
        kv_unref(res);
      } else {
        ks_obj_commit(s, t, x->old, kv_ref(x->obj));
      }
    }
    kv_unref(x->old);
    kv_unref(x->obj);
    free(x->ns);
    free(x->name);
  }
  free(as.a);
}

static void gc_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  gc_pass(arg);
}

void ks_gc_schedule(ks_server *s) {
  if (!s->gc_ev) s->gc_ev = evtimer_new(s->base, gc_cb, s);
  if (evtimer_pending(s->gc_ev, NULL)) return;
  struct timeval tv = {0, 1000};
  evtimer_add(s->gc_ev, &tv);
}

/* ---- admin endpoint ------------------------------------------------------------------------ */

static kv *faults_value(ks_server *s) {
  kv *m = kv_map_new(6);
  kv_map_set_str(m, "latencyMs", kv_int(s->faults.latency_ms));
  kv_map_set_str(m, "errorRate", kv_double(s->faults.error_rate));
  kv *codes = kv_list_new(4);
  for (int i = 0; i < 4; i++)
    if (s->faults.error_codes[i]) kv_list_push(codes, kv_int(s->faults.error_codes[i]));
  kv_map_set_str(m, "errorCodes", codes);
  kv_map_set_str(m, "retryAfterSeconds", kv_int(s->faults.retry_after));
  kv_map_set_str(m, "dropWatchAfterMs", kv_int(s->faults.drop_watch_after_ms));
  return m;
}

static bool num_of(const kv *v, double *out) {
  if (!v) return false;
  if (v->kind == KV_INT)
    *out = (double)v->u.i;
  else if (v->kind == KV_DOUBLE)
    *out = v->u.d;
  else if (v->kind == KV_UINT)
    *out = (double)v->u.u;
  else
    return false;
  return true;
}

/* Apply a faults document; false with a message when malformed. */
bool ks_faults_set(ks_faults *f, const kv *doc, char *why, size_t whylen) {
  if (!doc || doc->kind != KV_MAP) {
    snprintf(why, whylen, "faults must be a JSON object");
    return false;
  }
  double d;
  ks_faults nf = *f;
  if (num_of(ku_get(doc, "latencyMs"), &d)) nf.latency_ms = (int)d;
  if (num_of(ku_get(doc, "errorRate"), &d)) nf.error_rate = d;
  if (num_of(ku_get(doc, "retryAfterSeconds"), &d)) nf.retry_after = (int)d;
  if (num_of(ku_get(doc, "dropWatchAfterMs"), &d)) nf.drop_watch_after_ms = (int)d;
  kv *codes = ku_get(doc, "errorCodes");
  if (codes) {
    if (codes->kind != KV_LIST || kv_len(codes) > 4) {
      snprintf(why, whylen, "errorCodes must be a list of up to 4 HTTP codes");
      return false;
    }
    memset(nf.error_codes, 0, sizeof nf.error_codes);
    for (size_t i = 0; i < kv_len(codes); i++) {
      int64_t c;
      if (!ku_as_int(kv_list_at(codes, i), &c) || c < 400 || c > 599) {
        snprintf(why, whylen, "errorCodes[%zu] is not an HTTP error code", i);
        return false;
      }
      nf.error_codes[i] = (int)c;
    }
  }
  if (nf.error_rate < 0 || nf.error_rate > 1 || nf.latency_ms < 0 || nf.retry_after < 0 ||
      nf.drop_watch_after_ms < 0) {
    snprintf(why, whylen,
             "errorRate must be in [0,1]; latencyMs, retryAfterSeconds and dropWatchAfterMs must "
             "not be negative");
    return false;
  }
  *f = nf;
  return true;
}

static void lose_state(ks_server *s) {
  /* drop CRD kinds, then every object */
  ks_type *crdt = ks_type_find(s, "apiextensions.k8s.io", "customresourcedefinitions");
  if (crdt) {
    size_t n;
    ks_entry **all = ks_table_sorted(&crdt->objs, &n);
    char **names = calloc(n + 1, sizeof *names);
    if (!names) kv_oom();
    for (size_t i = 0; i < n; i++)
      names[i] = strdup(meta_str(all[i]->obj, "name"));
    free(all);
    for (size_t i = 0; i < n; i++) {
      ks_types_remove_crd(s, names[i]);
      free(names[i]);
    }
    free(names);
  }
  for (size_t i = 0; i < s->ntypes; i++) {
    ks_table_free(&s->types[i]->objs);
    ks_table_init(&s->types[i]->objs);
  }
  ks_events_reset(s);
  ks_seed(s);
}

void ks_admin_handle(ks_conn *c, char **seg, size_t n) {
  ks_server *s = c->srv;
  const char *m = c->req.method;
  const char *what = n >= 2 ? seg[1] : "";
  if (!strcmp(what, "faults")) {
    if (!strcmp(m, "PUT") || !strcmp(m, "POST") || !strcmp(m, "PATCH")) {
      kv_parse_error pe;
      kv *doc = kv_json_parse(c->req.body, c->req.body_len, &pe);
      char why[200];
      if (!ks_faults_set(&s->faults, doc, why, sizeof why)) {
        kv_unref(doc);
        ks_respond_status(c, ks_status(400, "BadRequest", NULL, "kubesim faults: %s", why));
        return;
      }
      kv_unref(doc);
    }
    kv *f = faults_value(s);
    ks_respond_json(c, 200, f, NULL);
    kv_unref(f);
    return;
  }
  if (!strcmp(what, "state") && !strcmp(m, "GET")) {
    size_t objs = 0, watches = 0, conns = 0;
    for (size_t i = 0; i < s->ntypes; i++)
      objs += s->types[i]->objs.n;
    for (ks_watch *w = s->watches; w; w = w->next)
      watches++;
    for (ks_conn *k = s->conns; k; k = k->next)
      conns++;
    kv *st = kv_map_new(6);
    kv_map_set_str(st, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)s->rv));
    kv_map_set_str(st, "oldestWatchableResourceVersion",
                   ku_kvfmt("%llu", (unsigned long long)s->floor));
    kv_map_set_str(st, "objects", kv_int((int64_t)objs));
    kv_map_set_str(st, "watches", kv_int((int64_t)watches));
    kv_map_set_str(st, "connections", kv_int((int64_t)conns));
    kv_map_set_str(st, "requests", kv_int(s->requests));
    ks_respond_json(c, 200, st, NULL);
    kv_unref(st);
    return;
  }
  if (strcmp(m, "POST") != 0) {
    ks_respond_status(
        c,
        ks_status(405, "MethodNotAllowed", NULL,
                  "kubesim admin: use GET /kubesim/state, GET|PUT /kubesim/faults, POST "
                  "/kubesim/drop-watches, /kubesim/compact or /kubesim/restart?state=keep|lose"));
    return;
  }
  if (!strcmp(what, "drop-watches")) {
    size_t k = 0;
    for (ks_watch *w = s->watches; w; w = w->next)
      k++;
    ks_watch_drop_all(s, false);
    kv *r = kv_map_new(1);
    kv_map_set_str(r, "dropped", kv_int((int64_t)k));
    ks_respond_json(c, 200, r, NULL);
    kv_unref(r);
    return;
  }
  if (!strcmp(what, "compact")) {
    ks_events_reset(s);
    kv *r = kv_map_new(1);
    kv_map_set_str(r, "oldestWatchableResourceVersion",
                   ku_kvfmt("%llu", (unsigned long long)s->floor));
    ks_respond_json(c, 200, r, NULL);
    kv_unref(r);
    return;
  }
  if (!strcmp(what, "restart")) {
    const char *st = ks_param_get(&c->req, "state");
    bool lose = st && strcmp(st, "lose") == 0;
    if (st && !lose && strcmp(st, "keep") != 0) {
      ks_respond_status(
          c, ks_status(400, "BadRequest", NULL, "kubesim restart: state must be keep or lose"));
      return;
    }
    /* every other connection goes, as with a process restart */
    for (ks_conn *k = s->conns, *nx; k; k = nx) {
      nx = k->next;
      if (k != c) ks_conn_free(k);
    }
    if (lose)
      lose_state(s);
    else
      ks_events_reset(s);
    c->keep_alive = false;
    kv *r = kv_map_new(2);
    kv_map_set_str(r, "restarted", kv_bool(true));
    kv_map_set_str(r, "state", kv_cstring(lose ? "lose" : "keep"));
    ks_respond_json(c, 200, r, NULL);
    kv_unref(r);
    return;
  }
  ks_respond(c, 404, "text/plain; charset=utf-8", "404 page not found\n", 19, NULL);
}
