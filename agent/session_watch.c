/*
 * agent/session_watch.c: WatchSet -> kube watches -> TriggerEvent /
 * TriggerSnapshot for the control-plane session (agent/session_watch.h).
 */
#include "session_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "koreo/json.h"
#include "koreo/value.h"
#include "standalone.h"

typedef struct kindw {
  ksw *w;
  char *api_version, *kind;
  kube_watch *watch;
  bool keep; /* mark during ksw_apply */
} kindw;

typedef struct trig {
  struct trig *next;
  kindw *k;
  char *ns, *name, *fp;
  kv *obj;   /* a deleted trigger's last object until sent (owned ref);
                NULL otherwise: the watch's compact cache has the object */
  int dirty; /* 0 clean, else the pending EventType */
} trig;

struct ksw {
  struct event_base *base;
  kube_client *kc;
  ksession *s;
  long coalesce_ms;
  uint64_t generation;
  kindw **kinds;
  size_t n_kinds;
  trig *trigs;
  struct event *flush;
  uint64_t sent;
};

static void trig_free(trig *t) {
  free(t->ns);
  free(t->name);
  free(t->fp);
  if (t->obj) kv_unref(t->obj);
  free(t);
}

/* The trigger's current object (a new reference) or NULL: the tombstone
 * of a deleted one, else a parse of the watch's cached text. */
static kv *trig_obj(const trig *t) {
  if (t->obj) return kv_ref(t->obj);
  return t->k->watch ? kube_watch_get_copy(t->k->watch, t->ns, t->name) : NULL;
}

/* The ObjectRef of t whose current object is `obj` (may be NULL; r
 * borrows its strings). */
static void fill_ref(Koreo__Agent__V1__ObjectRef *r, const trig *t, const kv *obj) {
  r->api_version = t->k->api_version;
  r->kind = t->k->kind;
  r->namespace_ = t->ns;
  r->name = t->name;
  const char *uid = obj ? kube_obj_meta(obj, "uid") : NULL;
  const char *rv = obj ? kube_obj_meta(obj, "resourceVersion") : NULL;
  r->uid = (char *)(uid ? uid : "");
  r->resource_version = (char *)(rv ? rv : "");
}

/* Send the pending change of every trigger.  While the session is down
 * nothing is sent: each trigger keeps only its latest change (the
 * TriggerSnapshot after the reconnect carries the current objects; a
 * deletion stays as a tombstone and is sent as DELETED then). */
static void flush_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ksw *w = arg;
  if (!ksession_connected(w->s)) return;
  for (trig **p = &w->trigs; *p;) {
    trig *t = *p;
    if (t->dirty) {
      Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
      Koreo__Agent__V1__TriggerEvent te = KOREO__AGENT__V1__TRIGGER_EVENT__INIT;
      Koreo__Agent__V1__ObjectRef r = KOREO__AGENT__V1__OBJECT_REF__INIT;
      kv *obj = trig_obj(t);
      fill_ref(&r, t, obj);
      char *json = obj ? kv_json_write(obj, 0, NULL) : NULL;
      te.type = (Koreo__Agent__V1__EventType)t->dirty;
      te.object_ref = &r;
      te.object_json.data = (uint8_t *)json;
      te.object_json.len = json ? strlen(json) : 0;
      te.watch_generation = w->generation;
      e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT;
      e.trigger_event = &te;
      ktls_err err = {{0}};
      if (ksession_send(w->s, &e, &err))
        w->sent++;
      else
        fprintf(stderr, "koreo-agent: trigger %s %s/%s: %s\n", t->k->kind, t->ns, t->name, err.msg);
      free(json);
      kv_unref(obj);
      bool deleted = t->dirty == KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED;
      t->dirty = 0;
      if (deleted) {
        *p = t->next;
        trig_free(t);
        continue;
      }
    }
    p = &t->next;
  }
}

static void mark(ksw *w, trig *t, int type) {
  /* ADDED stays ADDED until sent; DELETED wins */
  if (!(t->dirty == KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED &&
        type == KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED))
    t->dirty = type;
  if (!evtimer_pending(w->flush, NULL)) {
    struct timeval tv = {w->coalesce_ms / 1000, (w->coalesce_ms % 1000) * 1000};
    evtimer_add(w->flush, &tv);
  }
}

static void on_watch(void *ud, const kube_watch_event *ev) {
  kindw *k = ud;
  ksw *w = k->w;
  if (ev->type == KUBE_WATCH_ERROR) {
    fprintf(stderr, "koreo-agent: watch %s %s: %s (retrying)\n", k->api_version, k->kind,
            ev->err ? ev->err->message : "error");
    return;
  }
  if (!ev->object || (ev->type != KUBE_WATCH_ADDED && ev->type != KUBE_WATCH_MODIFIED &&
                      ev->type != KUBE_WATCH_DELETED))
    return;
  const char *ns = kube_obj_meta(ev->object, "namespace");
  const char *name = kube_obj_meta(ev->object, "name");
  if (!name) return;
  if (!ns) ns = "";
  trig *t = w->trigs;
  while (t && !(t->k == k && strcmp(t->ns, ns) == 0 && strcmp(t->name, name) == 0))
    t = t->next;
  if (ev->type == KUBE_WATCH_DELETED) {
    if (!t) return;
    if (t->obj) kv_unref(t->obj);
    t->obj = kv_ref(ev->object);
    mark(w, t, KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED);
    return;
  }
  char *fp = agent_trigger_fingerprint(ev->object);
  if (!fp) return;
  if (t && t->fp && strcmp(t->fp, fp) == 0 &&
      t->dirty != KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED) {
    free(fp); /* status-only change or Koreo's own annotation: the */
    return;   /* watch's cache has the new object */
  }
  int type = KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED;
  if (!t) {
    t = calloc(1, sizeof *t);
    t->k = k;
    t->ns = strdup(ns);
    t->name = strdup(name);
    t->next = w->trigs;
    w->trigs = t;
    type = KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED;
  } else if (t->dirty == KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED) {
    type = KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED; /* re-created within the window */
    t->dirty = 0;
  }
  free(t->fp);
  t->fp = fp;
  kv_unref(t->obj); /* a tombstone no more: the watch's cache has it */
  t->obj = NULL;
  mark(w, t, type);
}

ksw *ksw_new(struct event_base *base, kube_client *kc, ksession *s, long coalesce_ms) {
  ksw *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->base = base;
  w->kc = kc;
  w->s = s;
  w->coalesce_ms = coalesce_ms > 0 ? coalesce_ms : 50;
  w->flush = evtimer_new(base, flush_cb, w);
  return w;
}

static void kind_free(ksw *w, kindw *k) {
  if (k->watch) kube_watch_stop(k->watch);
  for (trig **p = &w->trigs; *p;) {
    if ((*p)->k == k) {
      trig *t = *p;
      *p = t->next;
      trig_free(t);
    } else
      p = &(*p)->next;
  }
  free(k->api_version);
  free(k->kind);
  free(k);
}

size_t ksw_apply(ksw *w, const Koreo__Agent__V1__WatchSet *ws) {
  if (ws->generation && ws->generation <= w->generation) return w->n_kinds;
  w->generation = ws->generation;
  for (size_t i = 0; i < w->n_kinds; i++)
    w->kinds[i]->keep = false;
  for (size_t j = 0; j < ws->n_kinds; j++) {
    const Koreo__Agent__V1__WatchKind *wk = ws->kinds[j];
    kindw *found = NULL;
    for (size_t i = 0; i < w->n_kinds && !found; i++)
      if (!strcmp(w->kinds[i]->api_version, wk->api_version) &&
          !strcmp(w->kinds[i]->kind, wk->kind))
        found = w->kinds[i];
    if (found) {
      found->keep = true;
      continue;
    }
    kindw *k = calloc(1, sizeof *k);
    kindw **nk = realloc(w->kinds, (w->n_kinds + 1) * sizeof *nk);
    if (!k || !nk) {
      free(k);
      if (nk) w->kinds = nk;
      continue;
    }
    w->kinds = nk;
    k->w = w;
    k->api_version = strdup(wk->api_version);
    k->kind = strdup(wk->kind);
    k->keep = true;
    kube_watch_opts o = {.api_version = k->api_version,
                         .kind = k->kind,
                         .drop_managed_fields = true,
                         .compact_json = true};
    kube_error err = {0};
    k->watch = kube_watch_start(w->kc, &o, on_watch, k, &err);
    if (!k->watch)
      fprintf(stderr, "koreo-agent: watch %s %s: %s\n", k->api_version, k->kind, err.message);
    kube_error_clear(&err);
    w->kinds[w->n_kinds++] = k;
  }
  size_t out = 0;
  for (size_t i = 0; i < w->n_kinds; i++) {
    if (w->kinds[i]->keep)
      w->kinds[out++] = w->kinds[i];
    else
      kind_free(w, w->kinds[i]);
  }
  w->n_kinds = out;
  return out;
}

void ksw_snapshot(ksw *w) {
  size_t n = 0;
  for (trig *t = w->trigs; t; t = t->next)
    if (t->dirty != KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED) n++;
  Koreo__Agent__V1__TriggerObject *objs = calloc(n ? n : 1, sizeof *objs);
  Koreo__Agent__V1__TriggerObject **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  Koreo__Agent__V1__ObjectRef *refs = calloc(n ? n : 1, sizeof *refs);
  char **jsons = calloc(n ? n : 1, sizeof *jsons);
  char **uids = calloc(n ? n : 1, sizeof *uids), **rvs = calloc(n ? n : 1, sizeof *rvs);
  if (!objs || !ptrs || !refs || !jsons || !uids || !rvs) goto out;
  size_t i = 0;
  for (trig *t = w->trigs; t; t = t->next) {
    if (t->dirty == KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED) continue; /* sent below */
    t->dirty = 0; /* the snapshot carries its current object */
    koreo__agent__v1__trigger_object__init(&objs[i]);
    koreo__agent__v1__object_ref__init(&refs[i]);
    kv *obj = trig_obj(t);
    fill_ref(&refs[i], t, obj);
    jsons[i] = obj ? kv_json_write(obj, 0, NULL) : NULL;
    uids[i] = kv_asprintf("%s", refs[i].uid); /* refs borrow from obj */
    rvs[i] = kv_asprintf("%s", refs[i].resource_version);
    refs[i].uid = uids[i];
    refs[i].resource_version = rvs[i];
    kv_unref(obj);
    objs[i].object_ref = &refs[i];
    objs[i].object_json.data = (uint8_t *)jsons[i];
    objs[i].object_json.len = jsons[i] ? strlen(jsons[i]) : 0;
    ptrs[i] = &objs[i];
    i++;
  }
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__TriggerSnapshot sn = KOREO__AGENT__V1__TRIGGER_SNAPSHOT__INIT;
  char id[64];
  static unsigned counter;
  snprintf(id, sizeof id, "snap-%u", ++counter);
  sn.snapshot_id = id;
  sn.last = true;
  sn.watch_generation = w->generation;
  sn.n_objects = n;
  sn.objects = ptrs;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT;
  e.trigger_snapshot = &sn;
  ktls_err err = {{0}};
  if (!ksession_send(w->s, &e, &err)) fprintf(stderr, "koreo-agent: snapshot: %s\n", err.msg);
  flush_cb(-1, 0, w); /* deletions seen while disconnected */
out:
  for (size_t k = 0; jsons && k < n; k++)
    free(jsons[k]);
  for (size_t k = 0; uids && rvs && k < n; k++) {
    free(uids[k]);
    free(rvs[k]);
  }
  free(uids);
  free(rvs);
  free(jsons);
  free(refs);
  free(ptrs);
  free(objs);
}

uint64_t ksw_events_sent(const ksw *w) { return w->sent; }

void ksw_free(ksw *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_kinds; i++)
    kind_free(w, w->kinds[i]);
  free(w->kinds);
  while (w->trigs) {
    trig *t = w->trigs;
    w->trigs = t->next;
    trig_free(t);
  }
  event_free(w->flush);
  free(w);
}
