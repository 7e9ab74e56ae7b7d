/*
 * agent/standalone.c: koreo-agent's standalone mode (issue 5 item 5) and
 * the agent's logger.  Owns: the definition generations (a registry per
 * load, reference-counted so runs in flight keep theirs across a hot
 * reload), one trigger watch per Workflow crdRef kind (all namespaces),
 * the per-trigger state (change fingerprint, timer, backoff, the run in
 * flight), Workflow selection (crdRef index and the koreo.dev/workflow
 * annotation, spec 6.11), asynchronous runs over kube_client_answer, the
 * status write (status subresource when the CRD serves one, plus a merge
 * patch of the metadata; a single merge patch otherwise) and re-run
 * scheduling (Retry delay, resync period, capped doubling backoff with
 * jitter on timeouts and failed writes; PermFail waits for a change).
 * The status write itself is agent/status_write.c's.
 */
#include "standalone.h"
#include "status_write.h"

#include "koreo/definition.h"
#include "koreo/eval.h"
#include "koreo/json.h"
#include "koreo/kube.h"
#include "koreo/log.h"
#include "koreo/outcome.h"
#include "koreo/value.h"

#include <dirent.h>
#include <event2/event.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ======================================================================
 * logging
 * ====================================================================== */

_Static_assert((int)AGENT_DEBUG == (int)KOREO_LOG_DEBUG && (int)AGENT_ERROR == (int)KOREO_LOG_ERROR,
               "agent_log_level follows koreo_log_level");

void agent_log_setup(bool json, agent_log_level min) {
  koreo_log_setup(json, (koreo_log_level)min);
}

void agent_log(agent_log_level lvl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  koreo_logv((koreo_log_level)lvl, fmt, ap);
  va_end(ap);
}

static void iso_now(char *buf, size_t n, bool micro_offset) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  if (micro_offset)
    snprintf(buf, n, "%s.%06ld+00:00", base, ts.tv_nsec / 1000);
  else
    snprintf(buf, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* ======================================================================
 * data
 * ====================================================================== */

typedef struct defgen { /* one load of the definitions */
  int refs;
  kdef_registry *reg;
} defgen;

typedef struct trig trig;
typedef struct kindwatch kindwatch;
typedef struct runctx runctx;

struct kindwatch { /* one watched trigger kind */
  agent_standalone *a;
  char *api_version, *kind;
  kube_watch *w;
  bool synced;
  bool keep; /* reload bookkeeping */
  trig *trigs;
  kindwatch *next;
};

struct trig { /* one trigger object: one allocation (trig_new) */
  kindwatch *kw;
  const char *ns, *name; /* in the same block; ns "" for cluster-scoped */
  uint64_t fp[2];        /* digest of the change fingerprint (spec 6.11) */
  int64_t due_ms;        /* when scheduled: monotonic time of the next run */
  size_t hidx;           /* 1 + its index in the agent's timer heap; 0: not
                            scheduled */
  runctx *running;
  trig *qnext;
  trig *next;
  int failures; /* consecutive failed runs/writes (backoff exponent) */
  bool dirty;   /* changed while a run was in flight */
  bool queued;  /* waiting in the agent's run queue */
};

struct runctx { /* one Workflow run in flight */
  int refs;
  int64_t started_unix_ms; /* wall clock, for run reports */
  agent_standalone *a;
  trig *t; /* NULL once the trigger is gone */
  defgen *g;
  koreo_eval_ctx ctx; /* borrowed by the run: lives here */
  koreo_owner owner;  /* likewise */
  koreo_run *run;
  kv *obj, *parent, *oref;
  char *wf_name;
  struct event *deadline;
  bool finished, timed_out;
  bool write_failed; /* the status write failed */
  int64_t next_ms;   /* -1: wait for a change */
};

struct agent_standalone {
  struct event_base *base;
  kube_client *client;
  char **paths;
  size_t n_paths;
  kv *documents; /* in-memory definition set (instead of paths), or NULL */
  void (*on_run)(void *arg, const agent_run_report *r);
  void *on_run_arg;
  int64_t resync_ms;
  int reload_ms, timeout_ms, bmin, bmax;
  int max_runs;         /* runs in flight at most */
  int n_runs;           /* runs in flight (until their last answer) */
  trig *qhead, **qtail; /* triggers due while max_runs were in flight */
  defgen *gen;
  uint64_t sig; /* signature of the definition files */
  kindwatch *kinds;
  struct event *reload_timer;
  struct event *trim_timer; /* returns freed heap to the OS once idle */
  /* the triggers' timers: a binary min-heap on due_ms under one libevent
   * timer (a struct event per trigger would cost 128 bytes each) */
  trig **heap;
  size_t nheap, capheap;
  struct event *due_timer;
  unsigned seed;
  bool closing; /* agent_standalone_free is running: drop late answers */
  /* counters */
  uint64_t runs, runs_ok, runs_retry, runs_permfail, runs_skip, runs_timeout;
  uint64_t status_writes, status_write_errors, reloads, def_errors, events;
};

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

static const char *str_at(const kv *m, const char *a, const char *b) {
  const kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, a) : NULL;
  if (v && b) v = v->kind == KV_MAP ? kv_map_get_str(v, b) : NULL;
  return v && v->kind == KV_STRING ? kv_str(v) : NULL;
}

static void defgen_unref(defgen *g) {
  if (g && --g->refs == 0) {
    kdef_registry_free(g->reg);
    free(g);
  }
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void heap_set(agent_standalone *a, size_t i, trig *t) {
  a->heap[i] = t;
  t->hidx = i + 1;
}

static void heap_up(agent_standalone *a, size_t i) {
  trig *t = a->heap[i];
  while (i > 0 && a->heap[(i - 1) / 2]->due_ms > t->due_ms) {
    heap_set(a, i, a->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(a, i, t);
}

static void heap_down(agent_standalone *a, size_t i) {
  trig *t = a->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= a->nheap) break;
    if (c + 1 < a->nheap && a->heap[c + 1]->due_ms < a->heap[c]->due_ms) c++;
    if (a->heap[c]->due_ms >= t->due_ms) break;
    heap_set(a, i, a->heap[c]);
    i = c;
  }
  heap_set(a, i, t);
}

/* Arm the agent's one timer for the earliest trigger (or disarm it). */
static void heap_arm(agent_standalone *a) {
  if (!a->nheap) {
    evtimer_del(a->due_timer);
    return;
  }
  int64_t d = a->heap[0]->due_ms - mono_ms();
  if (d < 0) d = 0;
  struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
  evtimer_add(a->due_timer, &tv);
}

/* Take t off the timer heap (if scheduled). */
static void unschedule(trig *t) {
  if (!t->hidx) return;
  agent_standalone *a = t->kw->a;
  size_t i = t->hidx - 1;
  t->hidx = 0;
  trig *last = a->heap[--a->nheap];
  if (i < a->nheap) {
    a->heap[i] = last;
    last->hidx = i + 1;
    if (i > 0 && a->heap[(i - 1) / 2]->due_ms > last->due_ms)
      heap_up(a, i);
    else
      heap_down(a, i);
  }
  if (i == 0) heap_arm(a);
}

/* Run t in `ms` milliseconds (replacing any earlier schedule). */
static void schedule(trig *t, int64_t ms) {
  agent_standalone *a = t->kw->a;
  unschedule(t);
  if (a->nheap == a->capheap) {
    size_t cap = a->capheap ? a->capheap * 2 : 64;
    trig **h = realloc(a->heap, cap * sizeof *h);
    if (!h) kv_oom();
    a->heap = h;
    a->capheap = cap;
  }
  t->due_ms = mono_ms() + ms;
  a->heap[a->nheap++] = t;
  heap_up(a, a->nheap - 1);
  if (t->hidx == 1) heap_arm(a);
}

/* Doubling backoff from bmin, capped at bmax, plus up to 10% jitter. */
static int64_t backoff_ms(agent_standalone *a, int failures) {
  int64_t d = a->bmin;
  for (int i = 1; i < failures && d < a->bmax; i++)
    d *= 2;
  if (d > a->bmax) d = a->bmax;
  return d + (int64_t)(rand_r(&a->seed) % (unsigned)(d / 10 + 1));
}

/* ======================================================================
 * runs
 * ====================================================================== */

static void rc_unref(runctx *rc) {
  if (--rc->refs > 0) return;
  agent_standalone *a = rc->a;
  a->n_runs--;
  if (a->n_runs == 0 && !a->qhead) {
    /* idle: give memory back in 3 s, once the client has closed the
     * connections of the burst (idle ones beyond 2 close after 2 s) */
    struct timeval tv = {3, 0};
    evtimer_add(a->trim_timer, &tv);
  }
  if (a->qhead) { /* a slot is free: start the next queued trigger */
    trig *t = a->qhead;
    a->qhead = t->qnext;
    if (!a->qhead) a->qtail = &a->qhead;
    t->queued = false;
    t->qnext = NULL;
    schedule(t, 0);
  }
  if (rc->deadline) event_free(rc->deadline);
  if (rc->run) {
    /* a run abandoned at shutdown is finished first (its unanswered
     * requests abandoned, eval.h) so it is freed as a finished run */
    if (!koreo_run_done(rc->run)) koreo_run_cancel(rc->run);
    koreo_run_free(rc->run);
  }
  kv_unref(rc->obj);
  kv_unref(rc->parent);
  kv_unref(rc->oref);
  free(rc->wf_name);
  defgen_unref(rc->g);
  free(rc);
}

/* The run and its writes are over: schedule what comes next. */
static void rc_done(runctx *rc) {
  trig *t = rc->t;
  rc->t = NULL; /* late answers of an abandoned run must not reach t */
  if (t) {
    t->running = NULL;
    agent_standalone *a = rc->a;
    if (t->dirty) {
      t->dirty = false;
      schedule(t, 0);
    } else if (rc->write_failed || rc->timed_out) {
      t->failures++;
      int64_t d = backoff_ms(a, t->failures);
      agent_log(AGENT_WARN, "%s %s/%s: retrying in %lld ms (attempt %d)", t->kw->kind, t->ns,
                t->name, (long long)d, t->failures);
      schedule(t, d);
    } else {
      t->failures = 0;
      if (rc->next_ms >= 0) schedule(t, rc->next_ms);
    }
  }
  rc_unref(rc);
}

static void on_status_written(void *ud, const kube_error *err) {
  runctx *rc = ud;
  if (err && err->code != KUBE_ERR_CANCELLED && !rc->a->closing) {
    rc->write_failed = true;
    rc->a->status_write_errors++;
    agent_log(AGENT_WARN, "writing the status of %s %s/%s: %s", rc->t ? rc->t->kw->kind : "?",
              rc->t ? rc->t->ns : "?", rc->t ? rc->t->name : "?", err->message);
  } else if (!err) {
    rc->a->status_writes++;
  }
  rc_done(rc);
}

/* Write `patch` ({metadata?, status?}, spec 6.11) onto the trigger
 * (agent/status_write.h); the run is done when the writes are. */
static void write_status(runctx *rc, const kv *patch) {
  trig *t = rc->t;
  rc->refs++; /* held by the writes */
  if (agent_status_write(rc->a->client, t->kw->api_version, t->kw->kind, t->ns, t->name, patch,
                         on_status_written, rc) != 0)
    rc_done(rc);
}

static void rc_finish(runctx *rc) {
  if (rc->finished) return;
  rc->finished = true;
  if (rc->deadline) evtimer_del(rc->deadline);
  agent_standalone *a = rc->a;
  const koreo_workflow_result *res = koreo_run_workflow_result(rc->run);
  const koreo_outcome *o = &res->outcome;
  a->runs++;
  rc->next_ms = a->resync_ms;
  switch (o->kind) {
  case KOREO_OK: a->runs_ok++; break;
  case KOREO_RETRY:
    a->runs_retry++;
    rc->next_ms = o->delay > 1 ? o->delay * 1000 : 1000;
    break;
  case KOREO_PERMFAIL:
    a->runs_permfail++;
    rc->next_ms = -1; /* until the trigger or the workflow changes */
    break;
  default: a->runs_skip++; break;
  }
  if (rc->timed_out) a->runs_timeout++;
  char *text = koreo_outcome_text(o);
  agent_log(o->kind == KOREO_PERMFAIL ? AGENT_WARN : AGENT_INFO, "Workflow %s for %s %s/%s: %s%s",
            rc->wf_name, str_at(rc->obj, "kind", NULL),
            kube_obj_meta(rc->obj, "namespace") ? kube_obj_meta(rc->obj, "namespace") : "",
            kube_obj_meta(rc->obj, "name"), text, rc->timed_out ? " (run timed out)" : "");
  free(text);
  if (!rc->t) { /* the trigger is gone: nothing to write */
    rc_unref(rc);
    return;
  }
  char now[64];
  iso_now(now, sizeof now, true);
  kv *patch = koreo_status_patch(rc->obj, res, now);
  if (a->on_run) {
    agent_run_report r = {rc->t->kw->api_version,
                          rc->t->kw->kind,
                          rc->t->ns,
                          rc->t->name,
                          rc->obj,
                          rc->wf_name,
                          res,
                          patch,
                          rc->started_unix_ms};
    a->on_run(a->on_run_arg, &r);
  }
  write_status(rc, patch);
  kv_unref(patch);
  rc_unref(rc); /* the run's own reference; the writes hold theirs */
}

static void pump(runctx *rc);

static void on_answer(void *ud, uint64_t id, kube_response *resp) {
  runctx *rc = ud;
  if (rc->finished) {
    kube_response_clear(resp);
  } else if (rc->a->closing) { /* shutting down: abandon the run */
    kube_response_clear(resp);
    rc->finished = true;
    rc_unref(rc); /* the run's own reference (rc_finish is never reached) */
  } else {
    koreo_run_answer(rc->run, id, resp);
    pump(rc);
  }
  rc_unref(rc);
}

/* Advance the run and send every request it issued. */
static void pump(runctx *rc) {
  if (rc->finished) return;
  if (koreo_run_advance(rc->run)) {
    rc_finish(rc);
    return;
  }
  const kube_request *q;
  while ((q = koreo_run_next_request(rc->run))) {
    rc->refs++;
    if (kube_client_answer(rc->a->client, q, on_answer, rc) != 0) rc->refs--;
  }
}

static void on_deadline(evutil_socket_t fd, short what, void *ud) {
  (void)fd, (void)what;
  runctx *rc = ud;
  if (rc->finished) return;
  rc->timed_out = true;
  koreo_run_cancel(rc->run);
  rc_finish(rc);
}

typedef struct wf_pick {
  const char *group, *version, *kind;
  kdef_definition *found;
  size_t n;
} wf_pick;

static bool pick_cb(kdef_definition *d, void *arg) {
  wf_pick *p = arg;
  const kdef_workflow *w = &d->u.wf;
  if (d->kind == KDEF_WORKFLOW && w->has_crd_ref && strcmp(w->crd_api_group, p->group) == 0 &&
      strcmp(w->crd_version, p->version) == 0 && strcmp(w->crd_kind, p->kind) == 0) {
    if (!p->found) p->found = d;
    p->n++;
  }
  return true;
}

/* The selection failures of spec 6.11: a Ready condition with status
 * "false", status.koreo.errors/locations, and a re-run after 120 s. */
static void selection_error(runctx *rc, const char *reason, const char *msg) {
  agent_log(AGENT_WARN, "%s %s/%s: %s: %s", rc->t->kw->kind, rc->t->ns, rc->t->name, reason, msg);
  char now[64];
  iso_now(now, sizeof now, true);
  kv *patch = koreo_selection_error_patch(rc->obj, reason, msg, rc->t->kw->kind, now);
  rc->finished = true;
  rc->next_ms = 120000;
  write_status(rc, patch);
  kv_unref(patch);
  rc_unref(rc);
}

static void trig_fire(trig *t) {
  kindwatch *kw = t->kw;
  agent_standalone *a = kw->a;
  if (t->running) {
    t->dirty = true;
    return;
  }
  if (a->n_runs >= a->max_runs) { /* wait for a free slot */
    if (!t->queued) {
      t->queued = true;
      t->qnext = NULL;
      *a->qtail = t;
      a->qtail = &t->qnext;
    }
    return;
  }
  /* the watch keeps objects as compact text: this is a fresh parse */
  kv *obj = kube_watch_get_copy(kw->w, t->ns, t->name);
  if (!obj) return;
  runctx *rc = calloc(1, sizeof *rc);
  if (!rc) kv_oom();
  rc->refs = 1;
  {
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    rc->started_unix_ms = (int64_t)now_ts.tv_sec * 1000 + now_ts.tv_nsec / 1000000;
  }
  a->n_runs++;
  rc->a = a;
  rc->t = t;
  rc->g = a->gen;
  a->gen->refs++;
  rc->ctx.registry = a->gen->reg;
  rc->obj = obj; /* the run's own */
  t->running = rc;

  char group[128], version[64];
  kube_split_api_version(kw->api_version, group, sizeof group, version, sizeof version);
  const char *named = NULL;
  const kv *ann = kv_map_get_str(kv_map_get_str(obj, "metadata"), "annotations");
  if (ann && ann->kind == KV_MAP) {
    const kv *w = kv_map_get_str(ann, "koreo.dev/workflow");
    if (w && w->kind == KV_STRING) named = kv_str(w);
  }
  kdef_definition *wf = NULL;
  char msg[512];
  if (named) {
    wf = kdef_registry_lookup(a->gen->reg, KDEF_WORKFLOW, named);
    if (!wf) {
      snprintf(msg, sizeof msg, "Workflow %s (named by annotation koreo.dev/workflow) not found",
               named);
      selection_error(rc, "NoWorkflow", msg);
      return;
    }
  } else {
    wf_pick p = {group, version, kw->kind, NULL, 0};
    kdef_registry_each(a->gen->reg, KDEF_WORKFLOW, pick_cb, &p);
    if (p.n != 1) {
      if (p.n)
        snprintf(msg, sizeof msg,
                 "%zu Workflows have crdRef %s:%s:%s; name one with the annotation "
                 "koreo.dev/workflow",
                 p.n, group, kw->kind, version);
      else
        snprintf(msg, sizeof msg, "no Workflow has crdRef %s:%s:%s", group, kw->kind, version);
      selection_error(rc, p.n ? "MultipleWorkflows" : "NoWorkflow", msg);
      return;
    }
    wf = p.found;
  }
  if (!kdef_outcome_is_ok(&wf->status)) {
    char *st = kdef_outcome_text(&wf->status);
    snprintf(msg, sizeof msg, "Workflow %s is not ready: %s", wf->name, st);
    free(st);
    selection_error(rc, "WorkflowNotReady", msg);
    return;
  }
  rc->wf_name = xstrdup(wf->name);
  rc->parent = koreo_parent_from_trigger(obj);
  rc->oref = koreo_owner_ref_from_trigger(obj);
  rc->owner.ns = str_at(rc->obj, "metadata", "namespace");
  rc->owner.ref = rc->oref;
  rc->run = koreo_run_workflow(&rc->ctx, wf, rc->parent, &rc->owner, NULL);
  rc->deadline = evtimer_new(a->base, on_deadline, rc);
  struct timeval tv = {a->timeout_ms / 1000, (a->timeout_ms % 1000) * 1000};
  evtimer_add(rc->deadline, &tv);
  rc->refs++; /* held across pump */
  pump(rc);
  rc_unref(rc);
}

/* ======================================================================
 * triggers and watches
 * ====================================================================== */

static bool koreo_owned_annotation(const char *k) {
  return strncmp(k, "koreo.dev", 9) == 0 || strncmp(k, "kubectl.kubernetes.io", 21) == 0;
}

/* The change fingerprint of spec 6.11: {metadata: {labels, annotations
 * without koreo.dev* and kubectl.kubernetes.io* keys}, spec} as JSON. */
static char *fingerprint(const kv *obj) {
  const kv *meta = kv_map_get_str(obj, "metadata");
  const kv *labels = meta && meta->kind == KV_MAP ? kv_map_get_str(meta, "labels") : NULL;
  const kv *ann = meta && meta->kind == KV_MAP ? kv_map_get_str(meta, "annotations") : NULL;
  const kv *spec = kv_map_get_str(obj, "spec");
  kv *fa = kv_map_new(ann && ann->kind == KV_MAP ? kv_len(ann) : 0);
  for (size_t i = 0; ann && ann->kind == KV_MAP && i < kv_len(ann); i++) {
    kv *k = kv_map_key_at(ann, i);
    if (k->kind == KV_STRING && koreo_owned_annotation(kv_str(k))) continue;
    kv_map_set(fa, kv_ref(k), kv_ref(kv_map_val_at(ann, i)));
  }
  kv *m = kv_map_new(2), *f = kv_map_new(2);
  kv_map_set_str(m, "labels", labels ? kv_ref((kv *)labels) : kv_null());
  kv_map_set_str(m, "annotations", fa);
  kv_map_set_str(f, "metadata", m);
  kv_map_set_str(f, "spec", spec ? kv_ref((kv *)spec) : kv_null());
  char *s = kv_json_write(f, 0, NULL);
  kv_unref(f);
  return s;
}

static trig *trig_find(kindwatch *kw, const char *ns, const char *name, trig ***link) {
  for (trig **p = &kw->trigs; *p; p = &(*p)->next)
    if (strcmp((*p)->ns, ns) == 0 && strcmp((*p)->name, name) == 0) {
      if (link) *link = p;
      return *p;
    }
  return NULL;
}

static void trig_free(trig *t) {
  if (t->running) t->running->t = NULL;
  if (t->queued) {
    agent_standalone *a = t->kw->a;
    for (trig **p = &a->qhead; *p; p = &(*p)->qnext)
      if (*p == t) {
        *p = t->qnext;
        break;
      }
    a->qtail = &a->qhead;
    while (*a->qtail)
      a->qtail = &(*a->qtail)->qnext;
  }
  unschedule(t);
  free(t);
}

/* A trigger (unscheduled) with its names in one block: the struct, then
 * "ns\0name\0". */
static trig *trig_new(kindwatch *kw, const char *ns, const char *name) {
  size_t nsl = strlen(ns), nml = strlen(name);
  trig *t = calloc(1, sizeof *t + nsl + nml + 2);
  if (!t) kv_oom();
  char *names = (char *)(t + 1);
  memcpy(names, ns, nsl + 1);
  memcpy(names + nsl + 1, name, nml + 1);
  t->kw = kw;
  t->ns = names;
  t->name = names + nsl + 1;
  return t;
}

/* The fingerprint as two independent 64-bit hashes (FNV-1a and a
 * multiply-xorshift): triggers keep 16 bytes instead of the JSON text.  A
 * collision would only delay a run until the resync period. */
static void fingerprint_digest(const kv *obj, uint64_t out[2]) {
  char *s = fingerprint(obj);
  uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull ^ strlen(s);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    h1 = (h1 ^ *p) * 1099511628211ull;
    h2 = (h2 + *p) * 0xbf58476d1ce4e5b9ull;
    h2 ^= h2 >> 31;
  }
  free(s);
  out[0] = h1;
  out[1] = h2;
}

static void on_watch(void *ud, const kube_watch_event *ev) {
  kindwatch *kw = ud;
  agent_standalone *a = kw->a;
  if (ev->type == KUBE_WATCH_SYNCED) {
    if (!kw->synced)
      agent_log(AGENT_INFO, "watching %s %s: initial list done", kw->api_version, kw->kind);
    kw->synced = true;
    return;
  }
  if (ev->type == KUBE_WATCH_ERROR) {
    agent_log(AGENT_WARN, "watch %s %s: %s (retrying)", kw->api_version, kw->kind,
              ev->err ? ev->err->message : "error");
    return;
  }
  if (ev->type == KUBE_WATCH_BOOKMARK || !ev->object) return;
  a->events++;
  const char *ns = kube_obj_meta(ev->object, "namespace");
  const char *name = kube_obj_meta(ev->object, "name");
  if (!name) return;
  if (!ns) ns = "";
  trig **link = NULL;
  trig *t = trig_find(kw, ns, name, &link);
  if (ev->type == KUBE_WATCH_DELETED) {
    if (t) {
      *link = t->next;
      agent_log(AGENT_INFO, "%s %s/%s deleted", kw->kind, ns, name);
      trig_free(t);
    }
    return;
  }
  uint64_t fp[2];
  fingerprint_digest(ev->object, fp);
  if (t && t->fp[0] == fp[0] && t->fp[1] == fp[1]) /* status-only or Koreo's own write */
    return;
  if (!t) {
    t = trig_new(kw, ns, name);
    t->next = kw->trigs;
    kw->trigs = t;
  }
  t->fp[0] = fp[0];
  t->fp[1] = fp[1];
  t->failures = 0;
  if (t->running)
    t->dirty = true;
  else
    schedule(t, 0);
}

static void kindwatch_free(kindwatch *kw) {
  if (kw->w) kube_watch_stop(kw->w);
  while (kw->trigs) {
    trig *t = kw->trigs;
    kw->trigs = t->next;
    trig_free(t);
  }
  free(kw->api_version);
  free(kw->kind);
  free(kw);
}

typedef struct sync_arg {
  agent_standalone *a;
} sync_arg;

static bool want_kind(kdef_definition *d, void *arg) {
  agent_standalone *a = ((sync_arg *)arg)->a;
  const kdef_workflow *w = &d->u.wf;
  if (!w->has_crd_ref) return true;
  char av[256];
  snprintf(av, sizeof av, "%s/%s", w->crd_api_group, w->crd_version);
  for (kindwatch *kw = a->kinds; kw; kw = kw->next)
    if (strcmp(kw->api_version, av) == 0 && strcmp(kw->kind, w->crd_kind) == 0) {
      kw->keep = true;
      return true;
    }
  kindwatch *kw = calloc(1, sizeof *kw);
  if (!kw) kv_oom();
  kw->a = a;
  kw->api_version = xstrdup(av);
  kw->kind = xstrdup(w->crd_kind);
  kw->keep = true;
  kube_watch_opts wo = {.api_version = kw->api_version,
                        .kind = kw->kind,
                        .drop_managed_fields = true,
                        .compact_json = true};
  kube_error err = {0};
  kw->w = kube_watch_start(a->client, &wo, on_watch, kw, &err);
  if (!kw->w)
    agent_log(AGENT_ERROR, "cannot watch %s %s: %s", av, kw->kind, err.message);
  else
    agent_log(AGENT_INFO, "watching %s %s (all namespaces) for Workflow %s", av, kw->kind, d->name);
  kube_error_clear(&err);
  kw->next = a->kinds;
  a->kinds = kw;
  return true;
}

/* Make the set of watches match the current definitions; re-run every
 * remaining trigger (its Workflow may have changed). */
static void sync_watches(agent_standalone *a, bool rerun) {
  for (kindwatch *kw = a->kinds; kw; kw = kw->next)
    kw->keep = false;
  sync_arg s = {a};
  kdef_registry_each(a->gen->reg, KDEF_WORKFLOW, want_kind, &s);
  for (kindwatch **p = &a->kinds; *p;) {
    kindwatch *kw = *p;
    if (kw->keep) {
      if (rerun)
        for (trig *t = kw->trigs; t; t = t->next) {
          t->failures = 0;
          if (t->running)
            t->dirty = true;
          else
            schedule(t, 0);
        }
      p = &kw->next;
    } else {
      agent_log(AGENT_INFO, "no Workflow uses %s %s any more: watch stopped", kw->api_version,
                kw->kind);
      *p = kw->next;
      kindwatch_free(kw);
    }
  }
}

/* ======================================================================
 * definitions and hot reload
 * ====================================================================== */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* Fold path, size and mtime of every non-hidden file under `path` into h
 * (directories in name order). */
static uint64_t sig_path(uint64_t h, const char *path, int depth) {
  struct stat st;
  if (stat(path, &st) != 0) return fnv(h, "?", 1);
  h = fnv(h, path, strlen(path) + 1);
  if (S_ISDIR(st.st_mode)) {
    if (depth > 32) return h;
    struct dirent **ents = NULL;
    int n = scandir(path, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
      if (ents[i]->d_name[0] != '.') {
        char *sub = NULL;
        if (asprintf(&sub, "%s/%s", path, ents[i]->d_name) < 0) kv_oom();
        h = sig_path(h, sub, depth + 1);
        free(sub);
      }
      free(ents[i]);
    }
    free(ents);
  } else {
    int64_t v[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
    h = fnv(h, v, sizeof v);
  }
  return h;
}

static uint64_t defs_signature(const agent_standalone *a) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < a->n_paths; i++)
    h = sig_path(h, a->paths[i], 0);
  return h;
}

static void load_defs(agent_standalone *a) {
  defgen *g = calloc(1, sizeof *g);
  if (!g) kv_oom();
  g->refs = 1;
  g->reg = kdef_registry_new();
  kdef_diags diags = {0};
  if (a->documents) {
    for (size_t i = 0; i < kv_len(a->documents); i++)
      kdef_registry_put(g->reg, kv_list_at(a->documents, i), NULL, &diags);
    kdef_registry_check(g->reg, &diags);
  } else {
    kdef_load_paths(g->reg, (const char *const *)a->paths, a->n_paths, &diags);
  }
  size_t errors = 0;
  for (size_t i = 0; i < diags.n; i++) {
    char *s = kdef_diag_format(&diags.items[i]);
    agent_log(diags.items[i].warning ? AGENT_WARN : AGENT_ERROR, "definitions: %s", s);
    free(s);
    if (!diags.items[i].warning) errors++;
  }
  kdef_diags_free(&diags);
  a->def_errors = errors;
  agent_log(AGENT_INFO,
            "definitions loaded: %zu Workflows, %zu ResourceFunctions, %zu ValueFunctions, "
            "%zu ResourceTemplates (%zu errors)",
            kdef_registry_count(g->reg, KDEF_WORKFLOW),
            kdef_registry_count(g->reg, KDEF_RESOURCE_FUNCTION),
            kdef_registry_count(g->reg, KDEF_VALUE_FUNCTION),
            kdef_registry_count(g->reg, KDEF_RESOURCE_TEMPLATE), errors);
  defgen_unref(a->gen);
  a->gen = g;
}

bool agent_standalone_check_reload(agent_standalone *a) {
  uint64_t sig = defs_signature(a);
  if (sig == a->sig) return false;
  a->sig = sig;
  a->reloads++;
  agent_log(AGENT_INFO, "definition files changed: reloading");
  load_defs(a);
  sync_watches(a, true);
  return true;
}

static void on_trim_timer(evutil_socket_t fd, short what, void *ud) {
  (void)fd, (void)what;
  agent_standalone *a = ud;
  if (a->n_runs != 0) return;
  for (kindwatch *kw = a->kinds; kw; kw = kw->next)
    if (kw->w) kube_watch_trim(kw->w); /* the caches' dead records */
  malloc_trim(0);
}

/* Run every trigger that is due (a run may schedule others: the heap is
 * read afresh each time), then arm the timer for the next. */
static void on_due_timer(evutil_socket_t fd, short what, void *ud) {
  (void)fd, (void)what;
  agent_standalone *a = ud;
  int64_t now = mono_ms();
  while (a->nheap && a->heap[0]->due_ms <= now) {
    trig *t = a->heap[0];
    t->hidx = 0;
    trig *last = a->heap[--a->nheap];
    if (a->nheap) {
      a->heap[0] = last;
      heap_down(a, 0);
    }
    trig_fire(t);
  }
  heap_arm(a);
}

static void on_reload_timer(evutil_socket_t fd, short what, void *ud) {
  (void)fd, (void)what;
  agent_standalone_check_reload(ud);
}

/* ======================================================================
 * life cycle
 * ====================================================================== */

agent_standalone *agent_standalone_new(struct event_base *base, const agent_standalone_opts *o,
                                       char *err, size_t errlen) {
  if (!o->n_def_paths && !o->documents) {
    snprintf(err, errlen, "standalone mode needs --definitions DIR");
    return NULL;
  }
  kube_config *cfg = NULL;
  kube_error ke = {0};
  if (o->kube_config) {
    cfg = (kube_config *)o->kube_config;
  } else if (kube_config_load(o->kubeconfig, o->context, &cfg, &ke) != 0) {
    snprintf(err, errlen, "kube configuration: %s", ke.message);
    kube_error_clear(&ke);
    return NULL;
  }
  kube_client_options co = {.backoff_min_ms = 200, .backoff_max_ms = 5000};
  kube_client *c = kube_client_new(base, cfg, &co, &ke);
  if (!c) {
    snprintf(err, errlen, "kube client for %s: %s", cfg->server, ke.message);
    kube_error_clear(&ke);
    if (cfg != o->kube_config) kube_config_free(cfg);
    return NULL;
  }
  agent_log(AGENT_INFO, "API server %s (context %s, from %s)", cfg->server,
            cfg->context && *cfg->context ? cfg->context : "-", cfg->source ? cfg->source : "-");
  if (cfg != o->kube_config) kube_config_free(cfg);
  agent_standalone *a = calloc(1, sizeof *a);
  if (!a) kv_oom();
  a->base = base;
  a->client = c;
  a->paths = calloc(o->n_def_paths ? o->n_def_paths : 1, sizeof *a->paths);
  if (!a->paths) kv_oom();
  a->documents = o->documents ? kv_ref((kv *)o->documents) : NULL;
  a->on_run = o->on_run;
  a->on_run_arg = o->on_run_arg;
  for (size_t i = 0; i < o->n_def_paths; i++)
    a->paths[i] = xstrdup(o->def_paths[i]);
  a->n_paths = o->n_def_paths;
  a->resync_ms = o->resync_ms > 0 ? o->resync_ms : 20 * 60 * 1000;
  a->reload_ms = o->reload_interval_ms > 0 ? o->reload_interval_ms : 2000;
  a->timeout_ms = o->run_timeout_ms > 0 ? o->run_timeout_ms : 30000;
  a->bmin = o->backoff_min_ms > 0 ? o->backoff_min_ms : 1000;
  a->bmax = o->backoff_max_ms > 0 ? o->backoff_max_ms : 300000;
  a->max_runs = o->max_runs > 0 ? o->max_runs : 16;
  a->qtail = &a->qhead;
  if (a->bmax < a->bmin) a->bmax = a->bmin;
  a->seed = (unsigned)time(NULL);
  a->sig = defs_signature(a);
  a->due_timer = evtimer_new(base, on_due_timer, a);
  if (!a->due_timer) kv_oom();
  load_defs(a);
  sync_watches(a, false);
  a->trim_timer = evtimer_new(base, on_trim_timer, a);
  if (!a->documents) { /* files: hot reload */
    a->reload_timer = event_new(base, -1, EV_PERSIST, on_reload_timer, a);
    struct timeval tv = {a->reload_ms / 1000, (a->reload_ms % 1000) * 1000};
    evtimer_add(a->reload_timer, &tv);
  }
  return a;
}

void agent_standalone_free(agent_standalone *a) {
  if (!a) return;
  a->closing = true;
  if (a->reload_timer) event_free(a->reload_timer);
  while (a->kinds) {
    kindwatch *kw = a->kinds;
    a->kinds = kw->next;
    kindwatch_free(kw);
  }
  /* pending request/write callbacks are called with CANCELLED here and
   * release the runs they hold */
  kube_client_free(a->client);
  event_free(a->trim_timer);
  event_free(a->due_timer);
  free(a->heap);
  defgen_unref(a->gen);
  for (size_t i = 0; i < a->n_paths; i++)
    free(a->paths[i]);
  free(a->paths);
  kv_unref(a->documents);
  free(a);
}

bool agent_standalone_ready(const agent_standalone *a) {
  if (!a->gen) return false;
  for (const kindwatch *kw = a->kinds; kw; kw = kw->next)
    if (!kw->synced) return false;
  return true;
}

char *agent_standalone_metrics(const agent_standalone *a) {
  size_t triggers = 0, kinds = 0, running = 0, queued = 0;
  for (const kindwatch *kw = a->kinds; kw; kw = kw->next) {
    kinds++;
    for (const trig *t = kw->trigs; t; t = t->next) {
      triggers++;
      if (t->running) running++;
      if (t->queued) queued++;
    }
  }
  kube_client_stats cs = kube_client_get_stats(a->client);
  char *s = NULL;
  if (asprintf(&s,
               "# HELP koreo_agent_ready 1 when definitions are loaded and every watch synced.\n"
               "# TYPE koreo_agent_ready gauge\nkoreo_agent_ready %d\n"
               "# TYPE koreo_agent_watched_kinds gauge\nkoreo_agent_watched_kinds %zu\n"
               "# TYPE koreo_agent_triggers gauge\nkoreo_agent_triggers %zu\n"
               "# TYPE koreo_agent_runs_in_flight gauge\nkoreo_agent_runs_in_flight %zu\n"
               "# TYPE koreo_agent_runs_queued gauge\nkoreo_agent_runs_queued %zu\n"
               "# HELP koreo_agent_workflow_runs_total Workflow runs by overall outcome.\n"
               "# TYPE koreo_agent_workflow_runs_total counter\n"
               "koreo_agent_workflow_runs_total{outcome=\"ok\"} %llu\n"
               "koreo_agent_workflow_runs_total{outcome=\"retry\"} %llu\n"
               "koreo_agent_workflow_runs_total{outcome=\"permfail\"} %llu\n"
               "koreo_agent_workflow_runs_total{outcome=\"skip\"} %llu\n"
               "# TYPE koreo_agent_workflow_run_timeouts_total counter\n"
               "koreo_agent_workflow_run_timeouts_total %llu\n"
               "# TYPE koreo_agent_status_writes_total counter\n"
               "koreo_agent_status_writes_total %llu\n"
               "# TYPE koreo_agent_status_write_errors_total counter\n"
               "koreo_agent_status_write_errors_total %llu\n"
               "# TYPE koreo_agent_trigger_events_total counter\n"
               "koreo_agent_trigger_events_total %llu\n"
               "# TYPE koreo_agent_definition_reloads_total counter\n"
               "koreo_agent_definition_reloads_total %llu\n"
               "# TYPE koreo_agent_definition_errors gauge\nkoreo_agent_definition_errors %llu\n"
               "# TYPE koreo_agent_kube_requests_total counter\n"
               "koreo_agent_kube_requests_total %llu\n",
               agent_standalone_ready(a) ? 1 : 0, kinds, triggers, running, queued,
               (unsigned long long)a->runs_ok, (unsigned long long)a->runs_retry,
               (unsigned long long)a->runs_permfail, (unsigned long long)a->runs_skip,
               (unsigned long long)a->runs_timeout, (unsigned long long)a->status_writes,
               (unsigned long long)a->status_write_errors, (unsigned long long)a->events,
               (unsigned long long)a->reloads, (unsigned long long)a->def_errors,
               (unsigned long long)cs.requests) < 0)
    kv_oom();
  return s;
}

char *agent_trigger_fingerprint(const kv *obj) { return fingerprint(obj); }
