/*
 * tests/kubesim/store.c: kubesim's object store and change feed: per-type
 * hash tables of objects keyed "namespace/name", the global monotonic
 * resourceVersion, the event window (a ring of the last N changes) that
 * watches replay from, the watch streams themselves (selectors, Table
 * format, bookmarks, timeouts, 410 Gone past the window, dropped-stream
 * faults), and the state file that keeps objects across restarts.
 */
#include "kubesim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hash table ------------------------------------------------------------ */

static uint64_t hstr(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

void ks_table_init(ks_table *tb) {
  tb->nb = 64;
  tb->n = 0;
  tb->b = calloc(tb->nb, sizeof *tb->b);
  if (!tb->b) kv_oom();
}

void ks_table_free(ks_table *tb) {
  for (size_t i = 0; i < tb->nb; i++) {
    for (ks_entry *e = tb->b[i], *nx; e; e = nx) {
      nx = e->next;
      free(e->key);
      kv_unref(e->obj);
      free(e);
    }
  }
  free(tb->b);
  tb->b = NULL;
  tb->n = tb->nb = 0;
}

kv *ks_table_get(const ks_table *tb, const char *key) {
  for (ks_entry *e = tb->b[hstr(key) & (tb->nb - 1)]; e; e = e->next)
    if (strcmp(e->key, key) == 0) return e->obj;
  return NULL;
}

static void table_grow(ks_table *tb) {
  size_t nb = tb->nb * 2;
  ks_entry **b = calloc(nb, sizeof *b);
  if (!b) kv_oom();
  for (size_t i = 0; i < tb->nb; i++) {
    for (ks_entry *e = tb->b[i], *nx; e; e = nx) {
      nx = e->next;
      size_t h = hstr(e->key) & (nb - 1);
      e->next = b[h];
      b[h] = e;
    }
  }
  free(tb->b);
  tb->b = b;
  tb->nb = nb;
}

void ks_table_put(ks_table *tb, const char *key, kv *obj) {
  size_t h = hstr(key) & (tb->nb - 1);
  for (ks_entry *e = tb->b[h]; e; e = e->next) {
    if (strcmp(e->key, key) == 0) {
      kv_unref(e->obj);
      e->obj = obj;
      return;
    }
  }
  ks_entry *e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->key = strdup(key);
  if (!e->key) kv_oom();
  e->obj = obj;
  e->next = tb->b[h];
  tb->b[h] = e;
  if (++tb->n > tb->nb) table_grow(tb);
}

kv *ks_table_del(ks_table *tb, const char *key) {
  ks_entry **pp = &tb->b[hstr(key) & (tb->nb - 1)];
  for (; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->key, key) == 0) {
      ks_entry *e = *pp;
      *pp = e->next;
      kv *o = e->obj;
      free(e->key);
      free(e);
      tb->n--;
      return o;
    }
  }
  return NULL;
}

static int entry_cmp(const void *a, const void *b) {
  const ks_entry *x = *(ks_entry *const *)a, *y = *(ks_entry *const *)b;
  return strcmp(x->key, y->key);
}

ks_entry **ks_table_sorted(const ks_table *tb, size_t *n) {
  ks_entry **r = malloc((tb->n + 1) * sizeof *r);
  if (!r) kv_oom();
  size_t k = 0;
  for (size_t i = 0; i < tb->nb; i++)
    for (ks_entry *e = tb->b[i]; e; e = e->next)
      r[k++] = e;
  qsort(r, k, sizeof *r, entry_cmp);
  *n = k;
  return r;
}

void ks_key(char *buf, size_t n, const char *ns, const char *name) {
  snprintf(buf, n, "%s/%s", ns ? ns : "", name);
}

/* ---- events and watches ------------------------------------------------------ */

uint64_t ks_next_rv(ks_server *s) { return ++s->rv; }

uint64_t ks_events_floor(ks_server *s) { return s->floor; }

void ks_events_reset(ks_server *s) {
  for (size_t k = 0; k < s->ring_len; k++) {
    ks_event *e = &s->ring[(s->ring_head + k) % s->ring_cap];
    kv_unref(e->obj);
    kv_unref(e->old);
  }
  s->ring_len = s->ring_head = 0;
  s->floor = s->rv;
}

static bool obj_in_ns(const ks_watch *w, const kv *obj) {
  if (!w->ns) return true;
  const char *ns = ku_str(ku_get(obj, "metadata"), "namespace");
  return ns && strcmp(ns, w->ns) == 0;
}

static bool obj_matches(const ks_watch *w, const kv *obj) {
  if (!obj || !obj_in_ns(w, obj)) return false;
  if (w->lsel && !ks_label_sel_match(w->lsel, obj)) return false;
  if (w->fsel && !ks_field_sel_match(w->fsel, obj)) return false;
  return true;
}

static void watch_end(ks_server *s, ks_watch *w, bool graceful) {
  ks_conn *c = w->conn;
  ks_watch_free(s, w);
  ks_stream_end(c, graceful);
}

/* Write one event frame. */
static void watch_write(ks_server *s, ks_watch *w, const char *type, const kv *obj) {
  kv *out;
  if (w->table && strcmp(type, "BOOKMARK") != 0 && strcmp(type, "ERROR") != 0) {
    kv *served = ks_obj_for_version(w->t, obj, w->version);
    out = ks_table_of(s, w->t, w->version, &served, 1, !w->table_headers_sent, NULL);
    w->table_headers_sent = true;
    kv_unref(served);
  } else if (strcmp(type, "BOOKMARK") == 0 || strcmp(type, "ERROR") == 0) {
    out = kv_ref((kv *)obj);
  } else {
    out = ks_obj_for_version(w->t, obj, w->version);
  }
  kv *ev = kv_map_new(2);
  kv_map_set_str(ev, "type", kv_cstring(type));
  kv_map_set_str(ev, "object", out);
  size_t n;
  char *js = ku_json(ev, &n);
  kv_unref(ev);
  js = realloc(js, n + 2);
  if (!js) kv_oom();
  js[n++] = '\n';
  js[n] = 0;
  ks_stream_write(w->conn, js, n);
  free(js);
}

static kv *with_rv(const kv *obj, uint64_t rv) {
  kv *md =
      ku_with(ku_get(obj, "metadata"), "resourceVersion", ku_kvfmt("%llu", (unsigned long long)rv));
  return ku_with(obj, "metadata", md);
}

/* Deliver event `e` to `w`; returns false when the watch was dropped. */
static bool watch_deliver(ks_server *s, ks_watch *w, const ks_event *e) {
  if (e->t != w->t) return true;
  bool nm = obj_matches(w, e->obj);
  bool om = e->type == KS_EV_MODIFIED && obj_matches(w, e->old);
  if (e->type == KS_EV_ADDED && nm)
    watch_write(s, w, "ADDED", e->obj);
  else if (e->type == KS_EV_DELETED && nm)
    watch_write(s, w, "DELETED", e->obj);
  else if (e->type == KS_EV_MODIFIED && nm && om)
    watch_write(s, w, "MODIFIED", e->obj);
  else if (e->type == KS_EV_MODIFIED && nm)
    watch_write(s, w, "ADDED", e->obj);
  else if (e->type == KS_EV_MODIFIED && om) {
    kv *o = with_rv(e->old, e->rv);
    watch_write(s, w, "DELETED", o);
    kv_unref(o);
  } else
    return true;
  w->last_rv = e->rv;
  if (evbuffer_get_length(bufferevent_get_output(w->conn->bev)) > 64u * 1024 * 1024) {
    /* a consumer this slow is dropped, as the apiserver does */
    watch_end(s, w, false);
    return false;
  }
  return true;
}

void ks_emit(ks_server *s, ks_type *t, int type, kv *obj, kv *old, uint64_t rv) {
  if (s->ring_cap == 0) {
    s->floor = rv;
  } else {
    if (s->ring_len == s->ring_cap) {
      ks_event *ev = &s->ring[s->ring_head];
      s->floor = ev->rv;
      kv_unref(ev->obj);
      kv_unref(ev->old);
      s->ring_head = (s->ring_head + 1) % s->ring_cap;
      s->ring_len--;
    }
    ks_event *e = &s->ring[(s->ring_head + s->ring_len) % s->ring_cap];
    e->rv = rv;
    e->t = t;
    e->type = type;
    e->obj = kv_ref(obj);
    e->old = kv_ref(old);
    s->ring_len++;
  }
  ks_event tmp = {rv, t, type, obj, old};
  for (ks_watch *w = s->watches, *nx; w; w = nx) {
    nx = w->next;
    watch_deliver(s, w, &tmp);
  }
  ks_state_dirty(s);
}

static void watch_timeout_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ks_watch *w = arg;
  ks_server *s = w->conn->srv;
  watch_end(s, w, true);
}

static void watch_drop_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ks_watch *w = arg;
  watch_end(w->conn->srv, w, false);
}

void ks_watch_free(ks_server *s, ks_watch *w) {
  if (w->prev)
    w->prev->next = w->next;
  else if (s->watches == w)
    s->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  if (w->timeout_ev) event_free(w->timeout_ev);
  if (w->conn && w->conn->watch == w) w->conn->watch = NULL;
  ks_sel_free(w->lsel);
  ks_sel_free(w->fsel);
  free(w->ns);
  free(w->version);
  free(w);
}

static void send_bookmark(ks_server *s, ks_watch *w, bool initial_end) {
  kv *md = kv_map_new(2);
  kv_map_set_str(md, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)s->rv));
  if (initial_end) {
    kv *ann = kv_map_new(1);
    kv_map_set_str(ann, "k8s.io/initial-events-end", kv_cstring("true"));
    kv_map_set_str(md, "annotations", ann);
  }
  kv *o = kv_map_new(3);
  kv_map_set_str(o, "kind", kv_cstring(w->table ? "Table" : w->t->kind));
  kv_map_set_str(o, "apiVersion",
                 w->table       ? kv_cstring("meta.k8s.io/v1")
                 : *w->t->group ? ku_kvfmt("%s/%s", w->t->group, w->version)
                                : kv_cstring(w->version));
  kv_map_set_str(o, "metadata", md);
  watch_write(s, w, "BOOKMARK", o);
  kv_unref(o);
}

void ks_watch_start(ks_server *s, ks_conn *c, ks_watch *w, uint64_t from_rv, bool from_set,
                    bool initial_events, bool send_initial_bookmark) {
  w->conn = c;
  c->watch = w;
  w->next = s->watches;
  if (s->watches) s->watches->prev = w;
  s->watches = w;
  const char *ctype =
      w->table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json";
  ks_stream_begin(c, ctype);
  w->last_rv = s->rv;
  if (from_set && from_rv != 0 && !initial_events) {
    if (from_rv < s->floor) {
      kv *st = ks_status(410, "Expired", NULL, "too old resource version: %llu (%llu)",
                         (unsigned long long)from_rv, (unsigned long long)s->floor);
      watch_write(s, w, "ERROR", st);
      kv_unref(st);
      watch_end(s, w, true);
      return;
    }
    for (size_t k = 0; k < s->ring_len; k++) {
      ks_event *e = &s->ring[(s->ring_head + k) % s->ring_cap];
      if (e->rv <= from_rv || !e->t) continue;
      if (!watch_deliver(s, w, e)) return;
    }
  } else {
    size_t n;
    ks_entry **all = ks_table_sorted(&w->t->objs, &n);
    for (size_t i = 0; i < n; i++)
      if (obj_matches(w, all[i]->obj)) watch_write(s, w, "ADDED", all[i]->obj);
    free(all);
    if (send_initial_bookmark) send_bookmark(s, w, true);
  }
  int timeout_ms = s->watch_timeout_s * 1000;
  const char *ts = ks_param_get(&c->req, "timeoutSeconds");
  if (ts && *ts) timeout_ms = atoi(ts) * 1000;
  bool drop = s->faults.drop_watch_after_ms > 0 && s->faults.drop_watch_after_ms < timeout_ms;
  w->timeout_ev = evtimer_new(s->base, drop ? watch_drop_cb : watch_timeout_cb, w);
  struct timeval tv;
  int ms = drop ? s->faults.drop_watch_after_ms : timeout_ms;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  evtimer_add(w->timeout_ev, &tv);
}

void ks_watch_drop_all(ks_server *s, bool graceful) {
  while (s->watches)
    watch_end(s, s->watches, graceful);
}

void ks_bookmarks_tick(ks_server *s) {
  for (ks_watch *w = s->watches; w; w = w->next)
    if (w->bookmarks) send_bookmark(s, w, false);
}

/* ---- state file ------------------------------------------------------------------ */

static void save_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ks_server *s = arg;
  if (s->dirty && s->state_file) ks_state_save(s, s->state_file);
}

void ks_state_dirty(ks_server *s) {
  if (!s->state_file) return;
  if (!s->dirty) {
    s->dirty = true;
    if (!s->save_ev) s->save_ev = evtimer_new(s->base, save_cb, s);
    struct timeval tv = {0, 200 * 1000};
    evtimer_add(s->save_ev, &tv);
  }
}

bool ks_state_save(ks_server *s, const char *path) {
  kv *root = kv_map_new(3);
  kv_map_set_str(root, "kind", kv_cstring("KubesimState"));
  kv_map_set_str(root, "resourceVersion", kv_uint(s->rv));
  kv *objs = kv_list_new(64);
  /* CRDs first so that their kinds exist when the rest is loaded */
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < s->ntypes; i++) {
      ks_type *t = s->types[i];
      bool is_crd_type = strcmp(t->plural, "customresourcedefinitions") == 0;
      if ((pass == 0) != is_crd_type) continue;
      size_t n;
      ks_entry **all = ks_table_sorted(&t->objs, &n);
      for (size_t k = 0; k < n; k++) {
        kv *e = kv_map_new(3);
        kv_map_set_str(e, "group", kv_cstring(t->group));
        kv_map_set_str(e, "resource", kv_cstring(t->plural));
        kv_map_set_str(e, "object", kv_ref(all[k]->obj));
        kv_list_push(objs, e);
      }
      free(all);
    }
  }
  kv_map_set_str(root, "objects", objs);
  size_t n;
  char *js = ku_json(root, &n);
  kv_unref(root);
  char *tmp = ku_fmt("%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  bool ok = f && fwrite(js, 1, n, f) == n;
  if (f && fclose(f) != 0) ok = false;
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) fprintf(stderr, "kubesim: cannot write state file %s: %s\n", path, strerror(errno));
  free(tmp);
  free(js);
  s->dirty = false;
  return ok;
}

bool ks_state_load(ks_server *s, const char *path) {
  kv_parse_error pe;
  size_t len;
  char *text = kv_read_file(path, &len, &pe);
  if (!text) return errno == ENOENT; /* a missing file is an empty state */
  kv *root = kv_json_parse(text, len, &pe);
  free(text);
  if (!root) {
    fprintf(stderr, "kubesim: state file %s:%u:%u: %s\n", path, pe.line, pe.col, pe.msg);
    return false;
  }
  int64_t rv = 0;
  ku_as_int(ku_get(root, "resourceVersion"), &rv);
  kv *objs = ku_get(root, "objects");
  for (size_t i = 0; objs && objs->kind == KV_LIST && i < kv_len(objs); i++) {
    kv *e = kv_list_at(objs, i);
    const char *g = ku_str(e, "group"), *r = ku_str(e, "resource");
    kv *o = ku_get(e, "object");
    ks_type *t = (g && r) ? ks_type_find(s, g, r) : NULL;
    if (!t || !o) {
      fprintf(stderr, "kubesim: state file %s: skipping an object of unknown resource %s/%s\n",
              path, g ? g : "?", r ? r : "?");
      continue;
    }
    if (strcmp(t->plural, "customresourcedefinitions") == 0) {
      kv *err = ks_types_apply_crd(s, o);
      if (err) {
        fprintf(stderr, "kubesim: state file %s: CRD %s: %s\n", path,
                ku_str(ku_get(o, "metadata"), "name"), ku_str(err, "message"));
        kv_unref(err);
        continue;
      }
      /* the array may have moved: look the CRD type up again */
      t = ks_type_find(s, "apiextensions.k8s.io", "customresourcedefinitions");
    }
    kv *md = ku_get(o, "metadata");
    char key[512];
    ks_key(key, sizeof key, ku_str(md, "namespace"), ku_str(md, "name"));
    ks_table_put(&t->objs, key, kv_ref(o));
  }
  kv_unref(root);
  s->rv = (uint64_t)rv;
  s->floor = s->rv;
  return true;
}
