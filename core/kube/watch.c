/*
 * core/kube/watch.c: watches (koreo/kube.h, "Watches"): list-then-watch,
 * the streamed event decoder, resume from the last resourceVersion after a
 * dropped stream, bookmarks, re-list on 410 Gone with the difference
 * delivered as events, capped exponential backoff with jitter, and the
 * per-watch cache of the last object of every key (optionally slimmed:
 * kube_watch_opts.drop_managed_fields).
 *
 * A watch is a small state machine driven from the client's loop:
 *   [resolve] -> LIST (paginated) -> deliver diff + SYNCED -> WATCH stream
 *   stream ends normally          -> WATCH again from the last version
 *   stream fails / ERROR event    -> backoff, then WATCH again
 *   410 Gone (answer or event)    -> LIST again (diff against the cache)
 *   404 on the resource           -> backoff, resolve again, LIST
 * Stopping is allowed at any time, also from the watch's own callback: the
 * watch is then freed as soon as nothing of it is on the stack (or, while
 * a list request is in flight, when its answer comes).
 *
 * Reference: https://kubernetes.io/docs/reference/using-api/api-concepts/
 * ("Efficient detection of changes", "Watch bookmarks", "410 Gone").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/json.h"
#include "kube_impl.h"

/* ---- the object cache: "namespace/name" -> last object ------------------- */

typedef struct wentry {
  char *key;
  kv *obj;
  struct wentry *next;
} wentry;

typedef struct wcache {
  wentry **b;
  size_t nb, n;
} wcache;

static uint64_t fnv(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static wentry *cache_find(const wcache *c, const char *key) {
  if (!c->nb) return NULL;
  for (wentry *e = c->b[fnv(key) % c->nb]; e; e = e->next)
    if (strcmp(e->key, key) == 0) return e;
  return NULL;
}

static void cache_put(wcache *c, const char *key, kv *obj) {
  wentry *e = cache_find(c, key);
  if (e) {
    kv_unref(e->obj);
    e->obj = kv_ref(obj);
    return;
  }
  if (c->n + 1 > c->nb) {
    size_t nb = c->nb ? c->nb * 2 : 64;
    wentry **b = calloc(nb, sizeof *b);
    if (!b) kv_oom();
    for (size_t i = 0; i < c->nb; i++)
      for (wentry *x = c->b[i], *n; x; x = n) {
        n = x->next;
        size_t h = fnv(x->key) % nb;
        x->next = b[h];
        b[h] = x;
      }
    free(c->b);
    c->b = b;
    c->nb = nb;
  }
  e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->key = strdup(key);
  if (!e->key) kv_oom();
  e->obj = kv_ref(obj);
  size_t h = fnv(key) % c->nb;
  e->next = c->b[h];
  c->b[h] = e;
  c->n++;
}

static void cache_del(wcache *c, const char *key) {
  if (!c->nb) return;
  for (wentry **pp = &c->b[fnv(key) % c->nb]; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->key, key) == 0) {
      wentry *e = *pp;
      *pp = e->next;
      free(e->key);
      kv_unref(e->obj);
      free(e);
      c->n--;
      return;
    }
}

static void cache_clear(wcache *c) {
  for (size_t i = 0; i < c->nb; i++)
    for (wentry *x = c->b[i], *n; x; x = n) {
      n = x->next;
      free(x->key);
      kv_unref(x->obj);
      free(x);
    }
  free(c->b);
  memset(c, 0, sizeof *c);
}

static char *obj_key(const kv *obj) {
  const char *ns = kube_obj_meta(obj, "namespace");
  const char *name = kube_obj_meta(obj, "name");
  char *k = NULL;
  if (asprintf(&k, "%s/%s", ns ? ns : "", name ? name : "") < 0) kv_oom();
  return k;
}

/* ---- slimming: drop managedFields, share keys and short strings ---------- */

/* The strings shared by the objects of one watch (share_strings): an open
 * hash set of string values, each holding a reference.  Entries nobody
 * else references any more are swept when the set has doubled since the
 * last sweep, so churn (objects with unique short names coming and going)
 * does not grow it without bound. */
typedef struct wintern {
  kv **slot;
  size_t cap, n, swept_n;
} wintern;

enum { INTERN_MAX = 24 };

static uint64_t fnvn(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static void intern_insert(wintern *t, kv *v) {
  size_t i = fnvn(kv_str(v), kv_len(v)) & (t->cap - 1);
  while (t->slot[i])
    i = (i + 1) & (t->cap - 1);
  t->slot[i] = v;
  t->n++;
}

/* Rebuild the table with `cap` slots, dropping unreferenced entries when
 * `sweep`. */
static void intern_rehash(wintern *t, size_t cap, bool sweep) {
  kv **old = t->slot;
  size_t ocap = t->cap;
  t->slot = calloc(cap, sizeof *t->slot);
  if (!t->slot) kv_oom();
  t->cap = cap;
  t->n = 0;
  for (size_t i = 0; i < ocap; i++) {
    if (!old[i]) continue;
    if (sweep && old[i]->refs == 1)
      kv_unref(old[i]);
    else
      intern_insert(t, old[i]);
  }
  free(old);
}

/* A new reference to the shared string equal to `v` (a string value). */
static kv *intern(wintern *t, kv *v) {
  if (kv_len(v) > INTERN_MAX || v->refs < 0) return kv_ref(v);
  if (t->cap) {
    for (size_t i = fnvn(kv_str(v), kv_len(v)) & (t->cap - 1); t->slot[i];
         i = (i + 1) & (t->cap - 1))
      if (kv_len(t->slot[i]) == kv_len(v) && memcmp(kv_str(t->slot[i]), kv_str(v), kv_len(v)) == 0)
        return kv_ref(t->slot[i]);
  }
  if (t->n >= 2 * t->swept_n + 256) { /* sweep, then size for what is left */
    intern_rehash(t, t->cap, true);
    t->swept_n = t->n;
  }
  if (2 * (t->n + 1) > t->cap) intern_rehash(t, t->cap ? t->cap * 2 : 256, false);
  intern_insert(t, kv_ref(v));
  return kv_ref(v);
}

static void intern_free(wintern *t) {
  for (size_t i = 0; i < t->cap; i++)
    kv_unref(t->slot[i]);
  free(t->slot);
  memset(t, 0, sizeof *t);
}

/* A compact copy of `v` (new reference): maps and lists sized exactly,
 * keys and short strings shared through `t`; with `drop_mf`,
 * metadata.managedFields left out (depth 0 is the object itself). */
static kv *slim_copy(wintern *t, kv *v, bool drop_mf, int depth) {
  switch (kv_kind_of(v)) {
  case KV_STRING: return t ? intern(t, v) : kv_ref(v);
  case KV_LIST: {
    if (!t) return kv_ref(v);
    kv *l = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(l, slim_copy(t, kv_list_at(v, i), false, depth + 1));
    return l;
  }
  case KV_MAP: {
    kv *m = kv_map_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *k = kv_map_key_at(v, i), *x = kv_map_val_at(v, i);
      bool str = kv_kind_of(k) == KV_STRING;
      if (drop_mf && depth == 1 && str && strcmp(kv_str(k), "managedFields") == 0) continue;
      bool md = depth == 0 && str && strcmp(kv_str(k), "metadata") == 0;
      kv_map_set(m, t && str ? intern(t, k) : kv_ref(k),
                 (!t && !md) ? kv_ref(x) : slim_copy(t, x, drop_mf && md, depth + 1));
    }
    return m;
  }
  default: return kv_ref(v);
  }
}

/* ---- the watch ------------------------------------------------------------ */

typedef enum { ACT_LIST, ACT_WATCH } wact;

struct kube_watch {
  kube_client *c;
  char *api_version, *kind, *resource, *ns, *lsel, *fsel;
  bool bookmarks;
  bool drop_mf; /* kube_watch_opts.drop_managed_fields */
  bool share;   /* kube_watch_opts.share_strings */
  wintern strings;
  int timeout_s;
  kube_watch_fn cb;
  void *ud;
  const kube_resource_info *ri;
  kresolve *resolving;
  kxfer *x;
  bool listing;
  struct event *timer;
  wact act;
  char *rv;
  wcache cache;
  int attempt;
  bool stopped;
  int depth;
  /* stream scanner */
  size_t scan;
  int sdepth;
  bool in_str, esc;
  bool got_event;
  int64_t stream_started_ms;
  kube_watch_stats st;
  kube_watch *next, *prev;
};

static char *dup0(const char *s) {
  if (!s || !*s) return NULL;
  char *d = strdup(s);
  if (!d) kv_oom();
  return d;
}

static void set_rv(kube_watch *w, const char *rv) {
  if (!rv || !*rv) return;
  char *d = strdup(rv);
  if (!d) kv_oom();
  free(w->rv);
  w->rv = d;
}

/* The object as the watch keeps and delivers it (a new reference): `obj`
 * itself, or its slimmed copy (drop_managed_fields, share_strings). */
static kv *w_slim(kube_watch *w, kv *obj) {
  if (!w->share) {
    kv *md = w->drop_mf ? kv_map_get_str(obj, "metadata") : NULL;
    if (!md || kv_kind_of(md) != KV_MAP || !kv_map_get_str(md, "managedFields")) return kv_ref(obj);
  }
  return kv_kind_of(obj) == KV_MAP ? slim_copy(w->share ? &w->strings : NULL, obj, w->drop_mf, 0)
                                   : kv_ref(obj);
}

static bool deliver(kube_watch *w, kube_watch_event_type t, kv *obj, const kube_error *err,
                    bool from_list) {
  if (w->stopped) return false;
  kube_watch_event ev = {t, obj, w->rv ? w->rv : "", err, from_list};
  w->depth++;
  w->cb(w->ud, &ev);
  w->depth--;
  return !w->stopped;
}

static void w_free(kube_watch *w) {
  kube_client *c = w->c;
  if (w->resolving) kresolve_cancel(w->resolving);
  if (w->x) kxfer_free(w->x);
  if (w->timer) event_free(w->timer);
  cache_clear(&w->cache);
  intern_free(&w->strings);
  if (w->prev)
    w->prev->next = w->next;
  else if (c->watches == w)
    c->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  kube_client_watch_slots(c, -1);
  free(w->api_version);
  free(w->kind);
  free(w->resource);
  free(w->ns);
  free(w->lsel);
  free(w->fsel);
  free(w->rv);
  free(w);
}

/* Free a stopped watch when nothing of it runs (a list in flight frees it
 * when its answer comes). */
static void w_release(kube_watch *w) {
  if (w->stopped && w->depth == 0 && !w->listing) w_free(w);
}

static void w_run(kube_watch *w);

static void w_timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kube_watch *w = arg;
  w_run(w);
  w_release(w);
}

static void w_schedule(kube_watch *w, wact act, int delay_ms) {
  w->act = act;
  struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
  evtimer_add(w->timer, &tv);
}

/* Report an error and try `act` again after a backoff (at least
 * `min_ms`). */
static void w_fail(kube_watch *w, const kube_error *err, wact act, int min_ms) {
  w->st.failures++;
  int d = kube_backoff_ms(w->c, w->attempt++);
  if (d < min_ms) d = min_ms;
  if (!deliver(w, KUBE_WATCH_ERROR, NULL, err, false)) return;
  w_schedule(w, act, d);
}

static void w_resolved(void *ud, const kube_resource_info *ri, const kube_error *err) {
  kube_watch *w = ud;
  w->resolving = NULL;
  if (!ri)
    w_fail(w, err, w->act, 0);
  else {
    w->ri = ri;
    w_run(w);
  }
  w_release(w);
}

/* ---- listing --------------------------------------------------------------- */

typedef struct wdelta {
  kube_watch_event_type t;
  kv *obj;
} wdelta;

static void w_start_stream(kube_watch *w);

static void w_list_done(void *ud, kube_result *r) {
  kube_watch *w = ud;
  w->listing = false;
  if (w->stopped) {
    w_release(w);
    return;
  }
  if (r->err.code != KUBE_OK) {
    if (r->err.code == KUBE_ERR_NOT_FOUND || r->err.code == KUBE_ERR_NO_KIND) w->ri = NULL;
    w_fail(w, &r->err, ACT_LIST, r->err.retry_after > 0 ? (int)(r->err.retry_after * 1000) : 0);
    w_release(w);
    return;
  }
  kv *items = kv_map_get_str(r->object, "items");
  size_t n = items && kv_kind_of(items) == KV_LIST ? kv_len(items) : 0;
  wcache fresh = {0};
  wdelta *d = calloc(n + w->cache.n + 1, sizeof *d);
  if (!d) kv_oom();
  size_t nd = 0;
  for (size_t i = 0; i < n; i++) {
    kv *o = w_slim(w, kv_list_at(items, i));
    char *k = obj_key(o);
    wentry *old = cache_find(&w->cache, k);
    if (!old)
      d[nd++] = (wdelta){KUBE_WATCH_ADDED, kv_ref(o)};
    else {
      const char *a = kube_obj_meta(old->obj, "resourceVersion");
      const char *b = kube_obj_meta(o, "resourceVersion");
      if (!a || !b || strcmp(a, b) != 0) d[nd++] = (wdelta){KUBE_WATCH_MODIFIED, kv_ref(o)};
    }
    cache_put(&fresh, k, o);
    kv_unref(o);
    free(k);
  }
  for (size_t i = 0; i < w->cache.nb; i++)
    for (wentry *e = w->cache.b[i]; e; e = e->next)
      if (!cache_find(&fresh, e->key)) d[nd++] = (wdelta){KUBE_WATCH_DELETED, kv_ref(e->obj)};
  cache_clear(&w->cache);
  w->cache = fresh;
  set_rv(w, kube_obj_meta(r->object, "resourceVersion"));
  w->st.relists++;
  w->attempt = 0;
  bool alive = true;
  for (size_t i = 0; i < nd; i++) {
    if (alive) alive = deliver(w, d[i].t, d[i].obj, NULL, true);
    kv_unref(d[i].obj);
  }
  free(d);
  if (alive && deliver(w, KUBE_WATCH_SYNCED, NULL, NULL, true)) w_start_stream(w);
  w_release(w);
}

static void w_list(kube_watch *w) {
  kube_req q = {.op = KUBE_OP_LIST,
                .api_version = w->ri->api_version,
                .resource = w->ri->resource,
                .namespace_ = w->ns,
                .label_selector = w->lsel,
                .field_selector = w->fsel};
  if (kube_list_all(w->c, &q, w_list_done, w) == 0) w->listing = true;
}

/* ---- the stream ------------------------------------------------------------ */

static void w_on_data(kxfer *x);
static void w_on_done(kxfer *x);

static void w_start_stream(kube_watch *w) {
  char extra[160];
  snprintf(extra, sizeof extra, "watch=1%s&timeoutSeconds=%d",
           w->bookmarks ? "&allowWatchBookmarks=true" : "", w->timeout_s);
  kube_req q = {.op = KUBE_OP_LIST,
                .namespace_ = w->ns,
                .label_selector = w->lsel,
                .field_selector = w->fsel,
                .resource_version = w->rv};
  kube_error err = {0};
  char *path = kube_req_path_q(w->ri, &q, w->c->cfg.namespace_, extra, &err);
  if (!path) { /* cannot happen for a list path; report and stop trying */
    deliver(w, KUBE_WATCH_ERROR, NULL, &err, false);
    kube_error_clear(&err);
    return;
  }
  w->x = kxfer_new(w->c, "GET", path, NULL, NULL, 0, w_on_done, w);
  free(path);
  w->x->streaming = true;
  w->x->data = w_on_data;
  w->x->timeout_ms = (w->timeout_s + 30) * 1000;
  w->scan = 0;
  w->sdepth = 0;
  w->in_str = w->esc = false;
  w->got_event = false;
  w->stream_started_ms = kube_now_ms();
  w->st.connects++;
  kxfer_start(w->x);
}

typedef enum { NEXT_NONE, NEXT_RELIST, NEXT_REWATCH } wnext;

/* The server's history does not reach our resume point: 410 Gone/Expired,
 * or "Too large resource version" (the server is behind us, e.g. restored
 * from a backup or restarted without its data): both need a re-list, as
 * client-go's reflector does. */
static bool needs_relist(const kube_error *e) {
  if (e->code == KUBE_ERR_GONE) return true;
  for (size_t i = 0; i < e->n_causes; i++)
    if (e->causes[i].reason && strcmp(e->causes[i].reason, "ResourceVersionTooLarge") == 0)
      return true;
  return strstr(e->message, "Too large resource version") != NULL;
}

/* Handle one decoded event; may set *next. */
static bool w_event(kube_watch *w, kv *ev, wnext *next) {
  kv *t = kv_map_get_str(ev, "type");
  kv *obj = kv_map_get_str(ev, "object");
  const char *type = t && kv_kind_of(t) == KV_STRING ? kv_str(t) : "";
  if (!obj || kv_kind_of(obj) != KV_MAP) {
    kube_error e = {0};
    kube_error_set(&e, KUBE_ERR_DECODE, "watch %s: an event of type \"%s\" without an object",
                   w->ri->resource, type);
    *next = NEXT_REWATCH;
    bool ok = deliver(w, KUBE_WATCH_ERROR, NULL, &e, false);
    kube_error_clear(&e);
    return ok;
  }
  if (strcmp(type, "ERROR") == 0) {
    kube_error e = {0};
    kube_error_from_status(&e, 0, obj, NULL);
    if (needs_relist(&e)) {
      w->st.gone++;
      *next = NEXT_RELIST;
    } else {
      w->st.failures++;
      *next = NEXT_REWATCH;
    }
    bool ok = deliver(w, KUBE_WATCH_ERROR, NULL, &e, false);
    kube_error_clear(&e);
    return ok;
  }
  w->got_event = true;
  w->attempt = 0;
  set_rv(w, kube_obj_meta(obj, "resourceVersion"));
  if (strcmp(type, "BOOKMARK") == 0) {
    w->st.bookmarks++;
    return deliver(w, KUBE_WATCH_BOOKMARK, obj, NULL, false);
  }
  kube_watch_event_type et;
  if (strcmp(type, "ADDED") == 0)
    et = KUBE_WATCH_ADDED;
  else if (strcmp(type, "MODIFIED") == 0)
    et = KUBE_WATCH_MODIFIED;
  else if (strcmp(type, "DELETED") == 0)
    et = KUBE_WATCH_DELETED;
  else
    return true; /* unknown event types are ignored, as client-go does */
  w->st.events++;
  obj = w_slim(w, obj);
  char *k = obj_key(obj);
  if (et == KUBE_WATCH_DELETED)
    cache_del(&w->cache, k);
  else
    cache_put(&w->cache, k, obj);
  free(k);
  bool alive = deliver(w, et, obj, NULL, false);
  kv_unref(obj);
  return alive;
}

/* Decode every complete JSON object in the stream buffer (objects are
 * found by brace depth outside strings, so both newline-delimited and
 * concatenated framings work), then keep the incomplete tail. */
static wnext w_parse(kube_watch *w, kxfer *x) {
  wnext next = NEXT_NONE;
  size_t start = 0, i = w->scan;
  char *p = x->resp.p;
  size_t len = x->resp.len;
  /* `start` is where the current object began; objects begin at '{' */
  if (w->sdepth == 0) {
    while (i < len && p[i] != '{')
      i++;
    start = i;
  } else {
    start = 0; /* an object in progress always starts at 0 after compaction */
  }
  for (; i < len; i++) {
    char ch = p[i];
    if (w->in_str) {
      if (w->esc)
        w->esc = false;
      else if (ch == '\\')
        w->esc = true;
      else if (ch == '"')
        w->in_str = false;
      continue;
    }
    if (ch == '"')
      w->in_str = true;
    else if (ch == '{' || ch == '[') {
      if (w->sdepth == 0) start = i;
      w->sdepth++;
    } else if (ch == '}' || ch == ']') {
      if (--w->sdepth == 0) {
        kv_parse_error pe;
        kv *ev = kv_json_parse(p + start, i + 1 - start, &pe);
        bool alive = true;
        if (!ev || kv_kind_of(ev) != KV_MAP) {
          kube_error e = {0};
          kube_error_set(&e, KUBE_ERR_DECODE, "watch %s: an event is not a JSON object: %s",
                         w->ri->resource, ev ? "wrong type" : pe.msg);
          next = NEXT_REWATCH;
          alive = deliver(w, KUBE_WATCH_ERROR, NULL, &e, false);
          kube_error_clear(&e);
        } else {
          alive = w_event(w, ev, &next);
        }
        kv_unref(ev);
        if (!alive || next != NEXT_NONE) return next;
        start = i + 1;
      }
    }
  }
  /* keep the tail from the current object (or drop the whitespace) */
  size_t keep_from = w->sdepth > 0 ? start : len;
  memmove(p, p + keep_from, len - keep_from);
  x->resp.len = len - keep_from;
  if (x->resp.p) x->resp.p[x->resp.len] = 0;
  w->scan = x->resp.len;
  return next;
}

static void w_after(kube_watch *w, wnext next) {
  if (w->stopped) return;
  if (next == NEXT_RELIST) {
    if (w->x) kxfer_free(w->x);
    w->x = NULL;
    w_schedule(w, ACT_LIST, 0);
  } else if (next == NEXT_REWATCH) {
    if (w->x) kxfer_free(w->x);
    w->x = NULL;
    w_schedule(w, ACT_WATCH, kube_backoff_ms(w->c, w->attempt++));
  }
}

static void w_on_data(kxfer *x) {
  kube_watch *w = x->owner;
  if (x->status != 200) return; /* an error answer: decoded when it ends */
  wnext next = w_parse(w, x);
  w_after(w, next);
  w_release(w);
}

static void w_on_done(kxfer *x) {
  kube_watch *w = x->owner;
  wnext next = NEXT_NONE;
  if (x->rc == KXFER_OK && x->status == 200) next = w_parse(w, x);
  if (w->stopped || next != NEXT_NONE) {
    w_after(w, next);
    w_release(w);
    return;
  }
  w->x = NULL;
  kube_error err = {0};
  if (x->rc != KXFER_OK) {
    kxfer_error(x, NULL, &err);
    bool client_timeout = x->rc == KXFER_TIMEOUT && w->got_event;
    kxfer_free(x);
    if (client_timeout)
      w_schedule(w, ACT_WATCH, 0);
    else
      w_fail(w, &err, ACT_WATCH, 0);
  } else if (x->status == 200) {
    /* the server ended the stream (timeoutSeconds): resume at once, unless
     * it keeps ending streams without saying anything */
    bool suspicious = !w->got_event && kube_now_ms() - w->stream_started_ms < 1000;
    kxfer_free(x);
    if (suspicious) {
      kube_error_set(&err, KUBE_ERR_TRANSPORT, "watch %s: the server closed the stream at once",
                     w->ri->resource);
      w_fail(w, &err, ACT_WATCH, 0);
    } else {
      w->attempt = 0;
      w_schedule(w, ACT_WATCH, 0);
    }
  } else {
    kv_parse_error pe;
    kv *body = x->resp.len ? kv_json_parse(x->resp.p, x->resp.len, &pe) : NULL;
    kxfer_error(x, body, &err);
    kv_unref(body);
    kxfer_free(x);
    if (needs_relist(&err)) {
      w->st.gone++;
      if (deliver(w, KUBE_WATCH_ERROR, NULL, &err, false)) w_schedule(w, ACT_LIST, 0);
    } else if (err.code == KUBE_ERR_NOT_FOUND) {
      w->ri = NULL; /* the resource went away: resolve again and re-list */
      w_fail(w, &err, ACT_LIST, 0);
    } else {
      w_fail(w, &err, ACT_WATCH, err.retry_after > 0 ? (int)(err.retry_after * 1000) : 0);
    }
  }
  kube_error_clear(&err);
  w_release(w);
}

static void w_run(kube_watch *w) {
  if (w->stopped) return;
  if (!w->ri) {
    if (!w->resolving)
      w->resolving =
          kube_resolve_async(w->c, w->api_version, w->kind, w->resource, w->ns, w_resolved, w);
    return;
  }
  if (w->act == ACT_LIST)
    w_list(w);
  else
    w_start_stream(w);
}

/* ---- public ---------------------------------------------------------------- */

kube_watch *kube_watch_start(kube_client *c, const kube_watch_opts *opts, kube_watch_fn cb,
                             void *ud, kube_error *err) {
  if (err) kube_error_clear(err);
  if (c->closing) {
    if (err) kube_error_set(err, KUBE_ERR_CANCELLED, "the client is closing");
    return NULL;
  }
  if (!opts || !opts->api_version || !*opts->api_version ||
      ((!opts->kind || !*opts->kind) && (!opts->resource || !*opts->resource))) {
    if (err)
      kube_error_set(err, KUBE_ERR_USAGE, "a watch must name apiVersion and kind (or resource)");
    return NULL;
  }
  kube_watch *w = calloc(1, sizeof *w);
  if (!w) kv_oom();
  w->c = c;
  w->api_version = dup0(opts->api_version);
  w->kind = dup0(opts->kind);
  w->resource = w->kind ? NULL : dup0(opts->resource);
  w->ns = dup0(opts->namespace_);
  w->lsel = dup0(opts->label_selector);
  w->fsel = dup0(opts->field_selector);
  w->bookmarks = !opts->no_bookmarks;
  w->drop_mf = opts->drop_managed_fields;
  w->share = opts->share_strings;
  w->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : c->opts.watch_timeout_s;
  if (w->timeout_s <= 0) w->timeout_s = 300 + kube_jitter(c, 600) % 300;
  w->cb = cb;
  w->ud = ud;
  w->timer = evtimer_new(c->base, w_timer_cb, w);
  if (!w->timer) kv_oom();
  if (opts->resource_version && *opts->resource_version) {
    set_rv(w, opts->resource_version);
    w->act = ACT_WATCH;
  } else
    w->act = ACT_LIST;
  w->next = c->watches;
  if (c->watches) c->watches->prev = w;
  c->watches = w;
  kube_client_watch_slots(c, 1);
  w_schedule(w, w->act, 0);
  return w;
}

void kube_watch_stop(kube_watch *w) {
  if (!w || w->stopped) return;
  w->stopped = true;
  evtimer_del(w->timer);
  if (w->resolving) {
    kresolve_cancel(w->resolving);
    w->resolving = NULL;
  }
  if (w->depth == 0 && w->x) { /* not inside this stream's own dispatch */
    kxfer_free(w->x);
    w->x = NULL;
  }
  w_release(w);
}

void kube_watches_shutdown(kube_client *c) {
  kube_watch *w = c->watches;
  while (w) {
    kube_watch *n = w->next;
    kube_watch_stop(w);
    w = n;
  }
}

const char *kube_watch_resource_version(const kube_watch *w) { return w->rv ? w->rv : ""; }

kv *kube_watch_get(const kube_watch *w, const char *namespace_, const char *name) {
  char *k = NULL;
  if (asprintf(&k, "%s/%s", namespace_ ? namespace_ : "", name ? name : "") < 0) kv_oom();
  wentry *e = cache_find(&w->cache, k);
  free(k);
  return e ? e->obj : NULL;
}

size_t kube_watch_count(const kube_watch *w) { return w->cache.n; }

kube_watch_stats kube_watch_get_stats(const kube_watch *w) { return w->st; }
