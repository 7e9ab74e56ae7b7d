/*
 * controlplane/engine.c: the control plane's engine (engine.h), part one:
 * the definitions (current_definitions loaded into a kdef_registry, hot
 * reload on NOTIFY koreo_definitions, re-queueing the triggers of changed
 * Workflows), the agent listener and sessions (registration with database
 * bootstrap tokens, Hello/HelloAck, sequences and acks, heartbeats, one
 * session per cluster, offline detection, clusters table updates,
 * WatchSet and DefinitionPush on connect and on change), trigger intake
 * (TriggerEvent/TriggerSnapshot into triggers + work_queue) and metrics.
 * The scheduler, runs and history are engine_run.c's.
 */
#include "engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "koreo/json.h"

#define SERVER_VERSION "0.1.0"

/* ======================================================================
 * helpers
 * ====================================================================== */

int64_t cpe_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cpe_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cpe_iso_now(char out[40]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[24];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 40, "%.20s.%06d+00:00", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

char *cpe_pg_array(const char *const *items, size_t n) {
  kv_strbuf b = {0};
  kv_strbuf_putc(&b, '{');
  for (size_t i = 0; i < n; i++) {
    if (i) kv_strbuf_putc(&b, ',');
    kv_strbuf_putc(&b, '"');
    for (const char *p = items[i]; *p; p++) {
      if (*p == '"' || *p == '\\') kv_strbuf_putc(&b, '\\');
      kv_strbuf_putc(&b, *p);
    }
    kv_strbuf_putc(&b, '"');
  }
  kv_strbuf_putc(&b, '}');
  return kv_strbuf_take(&b, NULL);
}

static kv *kstr(char *s) { return kv_string_take(s, strlen(s)); }

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

/* ---- database queries that the engine outlives ---------------------------- */

typedef struct qwrap {
  cp_engine *e;
  cpe_cb cb;
  void *arg;
} qwrap;

static void engine_release(cp_engine *e);

static void qwrap_cb(void *arg, PGresult *res, const char *err) {
  qwrap *w = arg;
  cp_engine *e = w->e;
  e->inflight--;
  if (w->cb) {
    if (e->closing)
      w->cb(e, w->arg, NULL, "shutting down");
    else
      w->cb(e, w->arg, res, err);
  } else if (err && !e->closing) {
    cp_log(CP_WARN, "engine: database: %s", err);
  }
  free(w);
  if (e->closing && e->inflight == 0) engine_release(e);
}

void cpe_query(cp_engine *e, const char *sql, int n, const char *const *params, cpe_cb cb,
               void *arg) {
  qwrap *w = malloc(sizeof *w);
  if (!w) kv_oom();
  *w = (qwrap){e, cb, arg};
  e->inflight++;
  if (cpdb_query(e->ctx->db, sql, n, params, qwrap_cb, w) != 0) {
    e->inflight--;
    free(w);
    if (cb) cb(e, arg, NULL, "database shutting down");
  }
}

/* ======================================================================
 * definitions
 * ====================================================================== */

void cpe_defset_unref(cpe_defset *d) {
  if (!d || --d->refs > 0) return;
  for (size_t i = 0; i < d->n; i++) {
    cpe_def *x = &d->defs[i];
    free(x->kind), free(x->ns), free(x->name), free(x->hash), free(x->source);
    kv_unref(x->doc);
  }
  free(d->defs);
  kv_unref(d->sources);
  kv_unref(d->by_kind);
  free(d->watch_sig);
  kdef_registry_free(d->reg);
  free(d);
}

const char *cpe_def_hash(const cpe_defset *d, const char *kind, const char *ns, const char *name) {
  for (size_t i = 0; d && i < d->n; i++)
    if (strcmp(d->defs[i].kind, kind) == 0 && strcmp(d->defs[i].ns, ns ? ns : "") == 0 &&
        strcmp(d->defs[i].name, name) == 0)
      return d->defs[i].hash;
  return NULL;
}

static bool index_workflow(kdef_definition *d, void *arg) {
  cpe_defset *ds = arg;
  const kdef_workflow *w = &d->u.wf;
  if (!kdef_outcome_is_ok(&d->status) || !w->has_crd_ref) return true;
  char *key = w->crd_api_group[0]
                  ? kv_asprintf("%s/%s %s", w->crd_api_group, w->crd_version, w->crd_kind)
                  : kv_asprintf("%s %s", w->crd_version, w->crd_kind);
  kv *k = kstr(key);
  kv *list = (kv *)kv_map_get(ds->by_kind, k);
  if (!list) {
    list = kv_list_new(1);
    kv_map_set(ds->by_kind, kv_ref(k), list);
  }
  kv_list_push(list, kstr(kv_asprintf("%s/%s", d->ns, d->name)));
  kv_unref(k);
  return true;
}

/* The WatchSet of a definition set. */
static void watchset_fill(const cpe_defset *d, Koreo__Agent__V1__WatchSet *ws,
                          Koreo__Agent__V1__WatchKind ***kinds_out) {
  size_t n = kv_len(d->by_kind);
  Koreo__Agent__V1__WatchKind **kinds = calloc(n ? n : 1, sizeof *kinds);
  if (!kinds) kv_oom();
  for (size_t i = 0; i < n; i++) {
    const char *key = kv_str(kv_map_key_at(d->by_kind, i));
    const kv *wfs = kv_map_val_at(d->by_kind, i);
    Koreo__Agent__V1__WatchKind *k = calloc(1, sizeof *k);
    if (!k) kv_oom();
    koreo__agent__v1__watch_kind__init(k);
    const char *sp = strchr(key, ' ');
    k->api_version = strndup(key, (size_t)(sp - key));
    k->kind = xstrdup(sp + 1);
    k->n_workflows = kv_len(wfs);
    k->workflows = calloc(k->n_workflows ? k->n_workflows : 1, sizeof(char *));
    for (size_t j = 0; j < k->n_workflows; j++)
      k->workflows[j] = xstrdup(kv_str(kv_list_at(wfs, j)));
    kinds[i] = k;
  }
  ws->n_kinds = n;
  ws->kinds = kinds;
  *kinds_out = kinds;
}

static void watchset_clear(Koreo__Agent__V1__WatchSet *ws) {
  for (size_t i = 0; i < ws->n_kinds; i++) {
    Koreo__Agent__V1__WatchKind *k = ws->kinds[i];
    free(k->api_version), free(k->kind);
    for (size_t j = 0; j < k->n_workflows; j++)
      free(k->workflows[j]);
    free(k->workflows);
    free(k);
  }
  free(ws->kinds);
}

static void send_watchset(cp_engine *e, cpe_sess *s) {
  if (!e->defs) return;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__WatchSet ws = KOREO__AGENT__V1__WATCH_SET__INIT;
  Koreo__Agent__V1__WatchKind **kinds;
  ws.generation = e->watch_generation;
  watchset_fill(e->defs, &ws, &kinds);
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET;
  env.watch_set = &ws;
  cpe_sess_send(s, &env);
  s->watch_generation_sent = e->watch_generation;
  watchset_clear(&ws);
}

/* DefinitionPush: the bodies whose hash is not in `have` (NULL: every body;
 * `old`: bodies present in that older set are not resent) and every
 * current hash. */
static void send_defpush(cp_engine *e, cpe_sess *s, char **have, size_t n_have,
                         const cpe_defset *old) {
  const cpe_defset *d = e->defs;
  if (!d) return;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__DefinitionPush dp = KOREO__AGENT__V1__DEFINITION_PUSH__INIT;
  Koreo__Agent__V1__Definition *bodies = calloc(d->n ? d->n : 1, sizeof *bodies);
  Koreo__Agent__V1__Definition **ptrs = calloc(d->n ? d->n : 1, sizeof *ptrs);
  char **hashes = calloc(d->n ? d->n : 1, sizeof *hashes);
  if (!bodies || !ptrs || !hashes) kv_oom();
  for (size_t i = 0; i < d->n; i++) {
    const cpe_def *x = &d->defs[i];
    hashes[i] = x->hash;
    bool known = false;
    for (size_t j = 0; j < n_have && !known; j++)
      known = strcmp(have[j], x->hash) == 0;
    for (size_t j = 0; old && j < old->n && !known; j++)
      known = strcmp(old->defs[j].hash, x->hash) == 0;
    if (known) continue;
    Koreo__Agent__V1__Definition *b = &bodies[dp.n_definitions];
    koreo__agent__v1__definition__init(b);
    b->content_hash = x->hash;
    b->api_version = (char *)"koreo.dev/v1beta1";
    b->kind = x->kind;
    b->namespace_ = x->ns;
    b->name = x->name;
    b->source.data = (uint8_t *)x->source;
    b->source.len = strlen(x->source);
    ptrs[dp.n_definitions++] = b;
  }
  dp.definitions = ptrs;
  dp.n_current_hashes = d->n;
  dp.current_hashes = hashes;
  dp.generation = d->generation;
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_DEFINITION_PUSH;
  env.definition_push = &dp;
  cpe_sess_send(s, &env);
  free(bodies);
  free(ptrs);
  free(hashes);
}

/* The names a Workflow uses, transitively ("Kind:name" strings into set). */
static void wf_closure(const kdef_definition *d, kv *set, int depth) {
  if (!d || depth > 32) return;
  char *key = kv_asprintf("%s:%s", kdef_kind_name(d->kind), d->name);
  kv *k = kstr(key);
  bool seen = kv_map_get(set, k) != NULL;
  if (!seen) kv_map_set(set, kv_ref(k), kv_bool(true));
  kv_unref(k);
  if (seen || !kdef_outcome_is_ok(&d->status)) return;
  if (d->kind == KDEF_WORKFLOW) {
    for (size_t i = 0; i < d->u.wf.n_steps; i++) {
      const kdef_step *st = &d->u.wf.steps[i];
      if (!st->is_switch) {
        wf_closure(st->ref.def, set, depth + 1);
        if (!st->ref.def && st->ref.name) {
          kv *n = kstr(kv_asprintf("%s:%s", kdef_kind_name(st->ref.kind), st->ref.name));
          kv_map_set(set, n, kv_bool(true));
        }
      }
      for (size_t j = 0; st->is_switch && j < st->n_cases; j++)
        wf_closure(st->cases[j].logic.def, set, depth + 1);
    }
  } else if (d->kind == KDEF_RESOURCE_FUNCTION) {
    for (size_t i = 0; i < d->u.rf.n_overlays; i++)
      if (d->u.rf.overlays[i].is_ref && d->u.rf.overlays[i].vf_name) {
        kv *n = kstr(kv_asprintf("ValueFunction:%s", d->u.rf.overlays[i].vf_name));
        kv_map_set(set, n, kv_bool(true));
      }
  }
}

typedef struct requeue_ctx {
  cp_engine *e;
  kv *changed;  /* "Kind:name" -> true */
  bool all;     /* a ResourceTemplate changed: every Workflow */
  bool missing; /* first load: only triggers without a row (keep due times) */
} requeue_ctx;

static const char SQL_REQUEUE[] =
    "INSERT INTO work_queue AS w (cluster, api_version, kind, namespace, name, workflow, due_at, "
    "reason) SELECT t.cluster, t.api_version, t.kind, t.namespace, t.name, $1, now(), "
    "'definition-changed' FROM triggers t WHERE NOT t.deleted AND t.api_version = $2 AND t.kind = "
    "$3 ON CONFLICT (cluster, api_version, kind, namespace, name, workflow) DO UPDATE SET "
    "due_at = now(), reason = EXCLUDED.reason, attempts = 0, version = w.version + 1";

/* At start: triggers stored while no replica had this Workflow loaded (or
 * before the first load) get their row; existing rows keep their times. */
static const char SQL_ENQUEUE_MISSING[] =
    "INSERT INTO work_queue (cluster, api_version, kind, namespace, name, workflow, due_at, "
    "reason) SELECT t.cluster, t.api_version, t.kind, t.namespace, t.name, $1, now(), 'startup' "
    "FROM triggers t WHERE NOT t.deleted AND t.api_version = $2 AND t.kind = $3 ON CONFLICT "
    "(cluster, api_version, kind, namespace, name, workflow) DO NOTHING";

static bool requeue_wf(kdef_definition *d, void *arg) {
  requeue_ctx *rq = arg;
  const kdef_workflow *w = &d->u.wf;
  if (!w->has_crd_ref) return true;
  bool hit = rq->all;
  if (!hit) {
    kv *set = kv_map_new(8);
    wf_closure(d, set, 0);
    for (size_t i = 0; i < kv_len(set) && !hit; i++)
      hit = kv_map_get(rq->changed, kv_map_key_at(set, i)) != NULL;
    kv_unref(set);
  }
  if (!hit) return true;
  char *wf = kv_asprintf("%s/%s", d->ns, d->name);
  char *av = w->crd_api_group[0] ? kv_asprintf("%s/%s", w->crd_api_group, w->crd_version)
                                 : kv_asprintf("%s", w->crd_version);
  const char *p[3] = {wf, av, w->crd_kind};
  cpe_query(rq->e, rq->missing ? SQL_ENQUEUE_MISSING : SQL_REQUEUE, 3, p, NULL, NULL);
  if (!rq->missing)
    cp_log(CP_INFO, "engine: Workflow %s changed: its %s %s triggers are queued again", wf, av,
           w->crd_kind);
  free(wf);
  free(av);
  return true;
}

static void notify_work(cp_engine *e, const char *cluster);

/* Compare the new set with the old one: re-queue, push, new WatchSet. */
static void defs_changed(cp_engine *e, cpe_defset *old) {
  cpe_defset *d = e->defs;
  requeue_ctx rq = {e, kv_map_new(8), !old, !old};
  /* changed or added */
  for (size_t i = 0; i < d->n; i++) {
    const char *h = cpe_def_hash(old, d->defs[i].kind, d->defs[i].ns, d->defs[i].name);
    if (h && strcmp(h, d->defs[i].hash) == 0) continue;
    if (strcmp(d->defs[i].kind, "ResourceTemplate") == 0) rq.all = true;
    kv_map_set(rq.changed, kstr(kv_asprintf("%s:%s", d->defs[i].kind, d->defs[i].name)),
               kv_bool(true));
  }
  /* removed */
  for (size_t i = 0; old && i < old->n; i++)
    if (!cpe_def_hash(d, old->defs[i].kind, old->defs[i].ns, old->defs[i].name)) {
      if (strcmp(old->defs[i].kind, "ResourceTemplate") == 0) rq.all = true;
      kv_map_set(rq.changed, kstr(kv_asprintf("%s:%s", old->defs[i].kind, old->defs[i].name)),
                 kv_bool(true));
    }
  bool any = kv_len(rq.changed) > 0;
  if (any) {
    kdef_registry_each(d->reg, KDEF_WORKFLOW, requeue_wf, &rq);
    notify_work(e, "");
  }
  kv_unref(rq.changed);
  bool kinds_changed = !old || strcmp(old->watch_sig, d->watch_sig) != 0;
  if (kinds_changed) e->watch_generation++;
  if (old && !any) return;
  /* agents connected before the first load get everything now */
  for (cpe_sess *s = e->sessions; s; s = s->next) {
    send_defpush(e, s, NULL, 0, old);
    if (kinds_changed) send_watchset(e, s);
  }
}

static void defs_load(cp_engine *e);

static void on_defs(cp_engine *e, void *arg, PGresult *res, const char *err) {
  (void)arg;
  if (e->closing) return;
  e->loading = false;
  if (!res) {
    cp_log(CP_ERROR, "engine: loading definitions: %s (retrying)", err);
    return; /* the offline timer retries while no set is loaded */
  }
  cpe_defset *d = calloc(1, sizeof *d);
  if (!d) kv_oom();
  d->refs = 1;
  d->reg = kdef_registry_new();
  if (e->opt->n_namespaces)
    kdef_registry_set_namespaces(d->reg, e->opt->namespaces, e->opt->n_namespaces);
  int n = PQntuples(res);
  d->defs = calloc(n ? (size_t)n : 1, sizeof *d->defs);
  d->sources = kv_list_new((size_t)n);
  d->by_kind = kv_map_new(4);
  if (!d->defs) kv_oom();
  kdef_diags diags = {0};
  /* prepare functions and templates before the Workflows that use them */
  static const char *order[] = {"ValueFunction", "ResourceTemplate", "ResourceFunction", "Workflow",
                                NULL};
  for (int pass = 0; order[pass]; pass++)
    for (int i = 0; i < n; i++) {
      if (strcmp(PQgetvalue(res, i, 0), order[pass]) != 0) continue;
      const char *src = PQgetvalue(res, i, 5);
      kv_parse_error pe = {0};
      kv *doc = kv_json_parse(src, strlen(src), &pe);
      if (!doc) {
        cp_log(CP_ERROR, "engine: definition %s %s/%s: stored source is not JSON",
               PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        continue;
      }
      cpe_def *x = &d->defs[d->n++];
      x->kind = xstrdup(PQgetvalue(res, i, 0));
      x->ns = xstrdup(PQgetvalue(res, i, 1));
      x->name = xstrdup(PQgetvalue(res, i, 2));
      x->generation = atoll(PQgetvalue(res, i, 3));
      /* the agent checks Definition.content_hash against the compact JSON
       * of the body it gets; `source` is json (key order kept), so this is
       * the hash the API computed and shows */
      char h[72];
      cp_definition_hash(doc, h);
      x->hash = xstrdup(h);
      x->doc = doc;
      x->source = kv_json_write(doc, 0, NULL);
      kv_list_push(d->sources, kv_ref(doc));
      kdef_registry_put(d->reg, doc, NULL, &diags);
    }
  /* FunctionTests are not run here */
  for (size_t i = 0; i < diags.n; i++) {
    char *s = kdef_diag_format(&diags.items[i]);
    cp_log(diags.items[i].warning ? CP_WARN : CP_ERROR, "engine: definitions: %s", s);
    free(s);
  }
  kdef_diags_free(&diags);
  kdef_registry_each(d->reg, KDEF_WORKFLOW, index_workflow, d);
  kv_strbuf sig = {0};
  for (size_t i = 0; i < kv_len(d->by_kind); i++) {
    kv_strbuf_puts(&sig, kv_str(kv_map_key_at(d->by_kind, i)));
    kv_strbuf_putc(&sig, ';');
  }
  kv_strbuf_putc(&sig, 0);
  d->watch_sig = kv_strbuf_take(&sig, NULL);
  d->generation = ++e->def_generation;
  cpe_defset *old = e->defs;
  e->defs = d;
  cp_log(CP_INFO, "engine: %zu definitions loaded (%zu Workflows, %zu trigger kinds)", d->n,
         kdef_registry_count(d->reg, KDEF_WORKFLOW), kv_len(d->by_kind));
  defs_changed(e, old);
  cpe_defset_unref(old);
  if (e->reload_again) {
    e->reload_again = false;
    defs_load(e);
  }
  cpe_sched_kick(e);
}

static void defs_load(cp_engine *e) {
  if (e->loading) {
    e->reload_again = true;
    return;
  }
  e->loading = true;
  cpe_query(e,
            "SELECT kind, namespace, name, generation, content_hash, source::text FROM "
            "current_definitions WHERE NOT deleted AND source IS NOT NULL AND kind <> "
            "'FunctionTest' ORDER BY kind, namespace, name",
            0, NULL, on_defs, NULL);
}

static void on_notify(void *arg, const char *channel, const char *payload) {
  cp_engine *e = arg;
  if (e->closing) return;
  if (strcmp(channel, "koreo_definitions") == 0) {
    cp_log(CP_INFO, "engine: definitions changed (%s): reloading", payload);
    defs_load(e);
  } else if (strcmp(channel, "koreo_work") == 0) {
    if (!*payload || cpe_sess_find(e, payload)) cpe_sched_kick(e);
  }
}

static void notify_work(cp_engine *e, const char *cluster) {
  const char *p[1] = {cluster};
  cpe_query(e, "SELECT pg_notify('koreo_work', $1)", 1, p, NULL, NULL);
}

struct kv *cp_engine_current_sources(const cp_engine *e) {
  return e->defs ? kv_ref(e->defs->sources) : kv_list_new(0);
}

/* ======================================================================
 * sessions
 * ====================================================================== */

static size_t name_hash(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

cpe_sess *cpe_sess_find(cp_engine *e, const char *cluster) {
  if (!e->n_buckets) return NULL;
  for (cpe_sess *s = e->buckets[name_hash(cluster) % e->n_buckets]; s; s = s->hnext)
    if (strcmp(s->cluster, cluster) == 0) return s;
  return NULL;
}

/* Add `s` to the session list and the index (grown to keep buckets short). */
static void sess_link(cp_engine *e, cpe_sess *s) {
  s->next = e->sessions;
  e->sessions = s;
  e->n_sessions++;
  if (e->n_sessions > e->n_buckets) {
    size_t n = e->n_buckets ? e->n_buckets * 4 : 64;
    cpe_sess **b = calloc(n, sizeof *b);
    if (!b) kv_oom();
    for (cpe_sess *x = e->sessions; x; x = x->next) {
      size_t i = name_hash(x->cluster) % n;
      x->hnext = b[i];
      b[i] = x;
    }
    free(e->buckets);
    e->buckets = b;
    e->n_buckets = n;
  } else {
    size_t i = name_hash(s->cluster) % e->n_buckets;
    s->hnext = e->buckets[i];
    e->buckets[i] = s;
  }
}

static void sess_unlink(cp_engine *e, cpe_sess *s) {
  for (cpe_sess **pp = &e->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  for (cpe_sess **pp = &e->buckets[name_hash(s->cluster) % e->n_buckets]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      break;
    }
  e->n_sessions--;
}

static void sess_flush(cpe_sess *s) {
  if (!s->bev) return;
  uint8_t *frame;
  size_t len;
  while (kframe_outbox_next(s->ob, s->acked, &frame, &len, NULL)) {
    bufferevent_write(s->bev, frame, len);
    free(frame);
  }
}

void cpe_sess_send(cpe_sess *s, const kframe_envelope *env) {
  kframe_error fe = {0};
  if (!kframe_outbox_push(s->ob, env, &fe)) {
    cp_log(CP_ERROR, "engine: cluster %s: cannot queue %s: %s", s->cluster,
           kframe_body_name(env->body_case), fe.msg);
    return;
  }
  if (!s->kick || !event_pending(s->kick, EV_TIMEOUT, NULL)) sess_flush(s);
}

static void send_heartbeat(cpe_sess *s) {
  if (!s->bev) return;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__Heartbeat hb = KOREO__AGENT__V1__HEARTBEAT__INIT;
  hb.sent_unix_ms = cpe_wall_ms();
  env.ack = s->acked;
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT;
  env.heartbeat = &hb;
  uint8_t *buf;
  size_t len;
  if (kframe_encode(&env, 0, &buf, &len, NULL) != KFRAME_OK) return;
  bufferevent_write(s->bev, buf, len);
  free(buf);
}

static void sess_kick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  sess_flush(arg);
}

static void sess_free(cpe_sess *s) {
  if (s->kick) event_free(s->kick);
  kframe_outbox_free(s->ob);
  free(s->cluster);
  free(s->snapshot_id);
  kv_unref(s->snap_keys);
  free(s);
}

/* ---- agent sequence bookkeeping: ack only what the database has --------- */

typedef struct seqw {
  char *cluster;
  uint64_t seq;
} seqw;

static void seq_write(cp_engine *e, cpe_sess *s);

static void on_seq_written(cp_engine *e, void *arg, PGresult *res, const char *err) {
  seqw *w = arg;
  if (!e->closing) {
    cpe_sess *s = cpe_sess_find(e, w->cluster);
    if (s) {
      s->seq_write = false;
      if (res) {
        if (w->seq > s->acked) {
          s->acked = w->seq;
          send_heartbeat(s); /* carries the ack */
        }
      } else {
        /* the writes before it may be lost too (connection lost): close the
         * session so the agent replays everything not acknowledged */
        cp_log(CP_WARN, "engine: cluster %s: recording agent sequence: %s (session closed)",
               w->cluster, err);
        ktls_server_drop(e->srv, s->bev); /* on_closed frees s */
        s = NULL;
      }
      if (s && s->processed > s->acked) seq_write(e, s);
    }
    if (res) kv_map_set_str(e->agent_seq, w->cluster, kv_int((int64_t)w->seq));
  }
  free(w->cluster);
  free(w);
}

/* Queue UPDATE clusters.agent_seq after the writes of every message
 * processed so far: when it completes they all committed (one connection,
 * in order), so the ack may advance. */
static void seq_write(cp_engine *e, cpe_sess *s) {
  if (s->seq_write || s->processed <= s->acked) return;
  seqw *w = malloc(sizeof *w);
  if (!w) kv_oom();
  w->cluster = xstrdup(s->cluster);
  w->seq = s->processed;
  char seq[32];
  snprintf(seq, sizeof seq, "%llu", (unsigned long long)w->seq);
  const char *p[2] = {s->cluster, seq};
  s->seq_write = true;
  cpe_query(e, "UPDATE clusters SET agent_seq = $2 WHERE name = $1", 2, p, on_seq_written, w);
}

/* ---- trigger intake --------------------------------------------------------- */

/* Koreo's own annotations, ignored when deciding whether a trigger changed. */
static const char OWN_ANNOTATIONS[] =
    "{koreo.dev/managed-resources,koreo.dev/last-applied-configuration,"
    "kubectl.kubernetes.io/last-applied-configuration}";

static const char SQL_TRIGGER_UPSERT[] =
    "WITH old AS (SELECT object, deleted, uid FROM triggers WHERE cluster = $1 AND api_version = "
    "$2 AND kind = $3 AND namespace = $4 AND name = $5), "
    "up AS (INSERT INTO triggers AS t (cluster, api_version, kind, namespace, name, uid, "
    "resource_version, object, deleted, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "$8::json, false, now()) ON CONFLICT (cluster, api_version, kind, namespace, name) DO UPDATE "
    "SET uid = EXCLUDED.uid, resource_version = EXCLUDED.resource_version, object = "
    "EXCLUDED.object, deleted = false, updated_at = now() WHERE t.resource_version <> "
    "EXCLUDED.resource_version OR t.deleted OR t.uid <> EXCLUDED.uid RETURNING 1), "
    "chg AS (SELECT 1 FROM up WHERE NOT EXISTS (SELECT 1 FROM old WHERE NOT old.deleted AND "
    "old.uid = $6 AND jsonb_build_array(old.object::jsonb -> 'spec', old.object::jsonb #> "
    "'{metadata,labels}', coalesce(old.object::jsonb #> '{metadata,annotations}', '{}') - "
    "$10::text[]) = "
    "jsonb_build_array($8::jsonb -> 'spec', $8::jsonb #> '{metadata,labels}', "
    "coalesce($8::jsonb #> '{metadata,annotations}', '{}') - $10::text[]))) "
    "INSERT INTO work_queue AS w (cluster, api_version, kind, namespace, name, workflow, due_at, "
    "reason) SELECT $1, $2, $3, $4, $5, wf, now(), $11 FROM chg, unnest($9::text[]) AS wf "
    "ON CONFLICT (cluster, api_version, kind, namespace, name, workflow) DO UPDATE SET due_at = "
    "LEAST(w.due_at, now()), reason = EXCLUDED.reason, attempts = 0, version = w.version + 1 "
    "RETURNING 1";

static const char SQL_TRIGGER_DELETE[] =
    "WITH d AS (UPDATE triggers SET deleted = true, updated_at = now(), resource_version = $6 "
    "WHERE cluster = $1 AND api_version = $2 AND kind = $3 AND namespace = $4 AND name = $5 "
    "RETURNING 1) DELETE FROM work_queue WHERE cluster = $1 AND api_version = $2 AND kind = $3 "
    "AND namespace = $4 AND name = $5";

/* The Workflows ("ns/name") a trigger object runs: the one its
 * koreo.dev/workflow annotation names ("?/<name>" when it does not exist),
 * else every Workflow whose crdRef is its kind (spec 6.11; several, or a
 * missing named one, is a selection error reported by the run). */
static char *workflows_for(cp_engine *e, const char *api_version, const char *kind, const kv *obj) {
  const cpe_defset *d = e->defs;
  if (!d) return xstrdup("{}");
  const kv *ann = obj ? kv_map_get_str(kv_map_get_str(obj, "metadata"), "annotations") : NULL;
  if (ann && ann->kind == KV_MAP) {
    const kv *w = kv_map_get_str(ann, "koreo.dev/workflow");
    if (w && w->kind == KV_STRING) {
      /* a named Workflow that does not exist is queued as "?/<name>": the
       * run reports NoWorkflow (Retry 120, spec 6.11) until it appears */
      kdef_definition *wf = kdef_registry_lookup(d->reg, KDEF_WORKFLOW, kv_str(w));
      char *k = wf ? kv_asprintf("%s/%s", wf->ns, wf->name) : kv_asprintf("?/%s", kv_str(w));
      const char *items[1] = {k};
      char *r = cpe_pg_array(items, 1);
      free(k);
      return r;
    }
  }
  char *key = kv_asprintf("%s %s", api_version, kind);
  const kv *list = kv_map_get_str(d->by_kind, key);
  free(key);
  size_t n = list ? kv_len(list) : 0;
  const char **items = calloc(n ? n : 1, sizeof *items);
  if (!items) kv_oom();
  for (size_t i = 0; i < n; i++)
    items[i] = kv_str(kv_list_at(list, i));
  char *r = cpe_pg_array(items, n);
  free(items);
  return r;
}

typedef struct intake {
  char *cluster;
} intake;

static void on_intake(cp_engine *e, void *arg, PGresult *res, const char *err) {
  intake *in = arg;
  if (!e->closing) {
    if (!res)
      cp_log(CP_WARN, "engine: cluster %s: storing a trigger: %s", in->cluster, err);
    else if (PQntuples(res) > 0)
      cpe_sched_kick(e);
  }
  free(in->cluster);
  free(in);
}

static void trigger_upsert(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__ObjectRef *ref,
                           ProtobufCBinaryData json, const char *reason) {
  if (!ref || !ref->api_version || !ref->kind || !ref->name || !*ref->name) return;
  char *text = strndup((const char *)json.data, json.len);
  kv_parse_error pe = {0};
  kv *obj = json.len ? kv_json_parse(text, json.len, &pe) : NULL;
  if (!obj || obj->kind != KV_MAP) {
    cp_log(CP_WARN, "engine: cluster %s: %s %s/%s: the object is not JSON: ignored", s->cluster,
           ref->kind, ref->namespace_ ? ref->namespace_ : "", ref->name);
    kv_unref(obj);
    free(text);
    return;
  }
  char *wfs = workflows_for(e, ref->api_version, ref->kind, obj);
  const char *p[11] = {s->cluster,
                       ref->api_version,
                       ref->kind,
                       ref->namespace_ ? ref->namespace_ : "",
                       ref->name,
                       ref->uid ? ref->uid : "",
                       ref->resource_version ? ref->resource_version : "",
                       text,
                       wfs,
                       OWN_ANNOTATIONS,
                       reason};
  intake *in = malloc(sizeof *in);
  if (!in) kv_oom();
  in->cluster = xstrdup(s->cluster);
  cpe_query(e, SQL_TRIGGER_UPSERT, 11, p, on_intake, in);
  free(wfs);
  free(text);
  kv_unref(obj);
}

static void on_trigger_event(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__TriggerEvent *ev) {
  e->events++;
  const Koreo__Agent__V1__ObjectRef *ref = ev->object_ref;
  if (!ref || !ref->api_version || !ref->kind || !ref->name) return;
  if (ev->type == KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED) {
    /* upstream never runs a deleted trigger: forget its work */
    const char *p[6] = {s->cluster, ref->api_version,
                        ref->kind,  ref->namespace_ ? ref->namespace_ : "",
                        ref->name,  ref->resource_version ? ref->resource_version : ""};
    cpe_query(e, SQL_TRIGGER_DELETE, 6, p, NULL, NULL);
    return;
  }
  trigger_upsert(e, s, ref, ev->object_json, "event");
}

static void on_snapshot(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__TriggerSnapshot *sn) {
  const char *id = sn->snapshot_id ? sn->snapshot_id : "";
  if (!s->snapshot_id || strcmp(s->snapshot_id, id) != 0) {
    free(s->snapshot_id);
    kv_unref(s->snap_keys);
    s->snapshot_id = xstrdup(id);
    s->snap_keys = kv_list_new(sn->n_objects);
  }
  for (size_t i = 0; i < sn->n_objects; i++) {
    const Koreo__Agent__V1__TriggerObject *o = sn->objects[i];
    const Koreo__Agent__V1__ObjectRef *r = o ? o->object_ref : NULL;
    if (!r || !r->api_version || !r->kind || !r->name) continue;
    kv *k = kv_list_new(4);
    kv_list_push(k, kv_cstring(r->api_version));
    kv_list_push(k, kv_cstring(r->kind));
    kv_list_push(k, kv_cstring(r->namespace_ ? r->namespace_ : ""));
    kv_list_push(k, kv_cstring(r->name));
    kv_list_push(s->snap_keys, k);
    if (o->object_json.len) trigger_upsert(e, s, r, o->object_json, "snapshot");
  }
  if (!sn->last) return;
  e->snapshots++;
  /* every trigger of a watched kind missing from the snapshot was deleted */
  size_t n = kv_len(s->snap_keys);
  const char **cols[4];
  for (int c = 0; c < 4; c++) {
    cols[c] = calloc(n ? n : 1, sizeof(char *));
    if (!cols[c]) kv_oom();
  }
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 4; c++)
      cols[c][i] = kv_str(kv_list_at(kv_list_at(s->snap_keys, i), (size_t)c));
  size_t nk = e->defs ? kv_len(e->defs->by_kind) : 0;
  const char **kinds = calloc(nk ? nk : 1, sizeof *kinds);
  if (!kinds) kv_oom();
  for (size_t i = 0; i < nk; i++)
    kinds[i] = kv_str(kv_map_key_at(e->defs->by_kind, i));
  char *a_kinds = cpe_pg_array(kinds, nk);
  char *a[4];
  for (int c = 0; c < 4; c++)
    a[c] = cpe_pg_array(cols[c], n);
  const char *p[6] = {s->cluster, a_kinds, a[0], a[1], a[2], a[3]};
  cpe_query(e,
            "WITH gone AS (UPDATE triggers t SET deleted = true, updated_at = now() WHERE "
            "t.cluster = $1 AND NOT t.deleted AND (t.api_version || ' ' || t.kind) = "
            "ANY($2::text[]) AND (t.api_version, t.kind, t.namespace, t.name) NOT IN (SELECT * "
            "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])) RETURNING "
            "t.api_version, t.kind, t.namespace, t.name) DELETE FROM work_queue w USING gone g "
            "WHERE w.cluster = $1 AND w.api_version = g.api_version AND w.kind = g.kind AND "
            "w.namespace = g.namespace AND w.name = g.name",
            6, p, NULL, NULL);
  free(a_kinds);
  free(kinds);
  for (int c = 0; c < 4; c++) {
    free(a[c]);
    free(cols[c]);
  }
  free(s->snapshot_id);
  s->snapshot_id = NULL;
  kv_unref(s->snap_keys);
  s->snap_keys = NULL;
}

/* ---- the ktls_server hooks ------------------------------------------------- */

typedef struct tokcheck {
  ktls_token_done done;
  void *done_arg;
  char *cluster;
} tokcheck;

static void on_token_checked(cp_engine *e, void *arg, PGresult *res, const char *err) {
  tokcheck *t = arg;
  bool ok = res && PQntuples(res) == 1;
  if (!e->closing) {
    if (ok)
      e->registrations++;
    else
      e->registrations_refused++;
  }
  t->done(t->done_arg, ok,
          ok    ? ""
          : res ? "unknown, already used or expired bootstrap token for this cluster"
                : err);
  free(t->cluster);
  free(t);
}

static void validate_token(void *arg, const char *token, const char *cluster, ktls_token_done done,
                           void *done_arg) {
  cp_engine *e = arg;
  char id[17], secret[33], pin[65], hash[65];
  ktls_err ke = {{0}};
  if (ktls_token_parse(token, id, secret, pin, &ke) != 0) {
    e->registrations_refused++;
    done(done_arg, false, ke.msg);
    return;
  }
  cp_sha256_hex(secret, strlen(secret), hash);
  tokcheck *t = malloc(sizeof *t);
  if (!t) kv_oom();
  *t = (tokcheck){done, done_arg, xstrdup(cluster)};
  const char *p[3] = {id, hash, cluster};
  cpe_query(e,
            "UPDATE bootstrap_tokens SET used_at = now() WHERE id = $1 AND secret_hash = $2 AND "
            "cluster = $3 AND used_at IS NULL AND expires_at > now() RETURNING id",
            3, p, on_token_checked, t);
}

static void on_registered(void *arg, const char *cluster, const char *fp, time_t not_after) {
  cp_engine *e = arg;
  char na[32];
  snprintf(na, sizeof na, "%lld", (long long)not_after);
  const char *p[3] = {cluster, fp, na};
  cp_log(CP_INFO, "engine: cluster %s registered (certificate sha256 %s)", cluster, fp);
  cpe_query(e,
            "INSERT INTO clusters (name, cert_fingerprint, cert_not_after) VALUES ($1, $2, "
            "to_timestamp($3::bigint)) ON CONFLICT (name) DO UPDATE SET cert_fingerprint = $2, "
            "cert_not_after = to_timestamp($3::bigint)",
            3, p, NULL, NULL);
}

static void on_session(void *arg, const char *cluster, const Koreo__Agent__V1__Hello *hello,
                       Koreo__Agent__V1__HelloAck *ack, struct bufferevent *bev) {
  cp_engine *e = arg;
  cpe_sess *old = cpe_sess_find(e, cluster);
  if (old) { /* a second connection replaces the first */
    cp_log(CP_INFO, "engine: cluster %s: a new session replaces the previous one", cluster);
    ktls_server_drop(e->srv, old->bev); /* on_closed frees it */
  }
  cpe_sess *s = calloc(1, sizeof *s);
  if (!s) kv_oom();
  s->e = e;
  s->cluster = xstrdup(cluster);
  s->bev = bev;
  s->ob = kframe_outbox_new(hello->last_acked_sequence, 256u << 20);
  const kv *seq = kv_map_get_str(e->agent_seq, cluster);
  s->in.last = seq && seq->kind == KV_INT ? (uint64_t)seq->u.i : 0;
  s->processed = s->acked = s->in.last;
  s->last_rx_ms = cpe_mono_ms();
  s->kick = evtimer_new(e->ctx->base, sess_kick_cb, s);
  sess_link(e, s);
  ack->last_acked_sequence = s->in.last;
  ack->heartbeat_interval_ms = (uint32_t)e->opt->heartbeat_ms;
  ack->server_version = (char *)SERVER_VERSION;
  /* everything queued now goes out after the HelloAck (next loop turn) */
  struct timeval zero = {0, 0};
  evtimer_add(s->kick, &zero);
  send_watchset(e, s);
  send_defpush(e, s, hello->cached_definition_hashes, hello->n_cached_definition_hashes, NULL);
  const char *p[3] = {cluster, e->opt->replica_id,
                      hello->agent_version ? hello->agent_version : ""};
  cpe_query(e,
            "INSERT INTO clusters (name, state, state_reason, replica, lease_until, connected_at, "
            "last_heartbeat, agent_version) VALUES ($1, 'online', '', $2, now() + interval '30 "
            "seconds', now(), now(), $3) ON CONFLICT (name) DO UPDATE SET state = 'online', "
            "state_reason = '', replica = $2, lease_until = now() + interval '30 seconds', "
            "connected_at = now(), last_heartbeat = now(), agent_version = $3",
            3, p, NULL, NULL);
  cp_log(CP_INFO, "engine: cluster %s connected (agent %s, acked %llu, sequence %llu)", cluster,
         hello->agent_version ? hello->agent_version : "?",
         (unsigned long long)hello->last_acked_sequence, (unsigned long long)s->in.last);
  cpe_sched_kick(e);
}

static void on_closed(void *arg, const char *cluster) {
  cp_engine *e = arg;
  cpe_sess *s = cpe_sess_find(e, cluster);
  if (!s) return;
  sess_unlink(e, s);
  s->bev = NULL;
  if (!e->closing) {
    cp_log(CP_INFO, "engine: cluster %s disconnected", cluster);
    cpe_runs_abort_cluster(e, cluster);
    const char *p[2] = {cluster, e->opt->replica_id};
    cpe_query(e,
              "UPDATE clusters SET state = 'offline', state_reason = 'agent disconnected; its "
              "work waits until it reconnects', replica = NULL, lease_until = NULL WHERE name = "
              "$1 AND replica = $2",
              2, p, NULL, NULL);
  }
  sess_free(s);
}

static bool on_envelope(void *arg, const char *cluster, kframe_envelope *env,
                        struct bufferevent *bev) {
  cp_engine *e = arg;
  cpe_sess *s = cpe_sess_find(e, cluster);
  if (!s || s->bev != bev) {
    kframe_envelope_free(env);
    return false;
  }
  s->last_rx_ms = cpe_mono_ms();
  if (env->ack) kframe_outbox_ack(s->ob, env->ack);
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT) {
    kframe_envelope_free(env);
    return true;
  }
  kframe_verdict v = kframe_inbox_accept(&s->in, env->sequence);
  if (v == KFRAME_DUPLICATE) {
    kframe_envelope_free(env);
    send_heartbeat(s); /* repeat our ack */
    return true;
  }
  if (v == KFRAME_GAP)
    cp_log(CP_WARN, "engine: cluster %s: agent sequence gap before %llu", cluster,
           (unsigned long long)env->sequence);
  switch (env->body_case) {
  case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT:
    on_trigger_event(e, s, env->trigger_event);
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT:
    on_snapshot(e, s, env->trigger_snapshot);
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT:
    cpe_apply_result(e, s, env->apply_result);
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE:
    cpe_record_autonomous(e, s, env->status_update);
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_ERROR:
    cp_log(CP_WARN, "engine: cluster %s: agent error: %s", cluster,
           env->error->message ? env->error->message : "");
    break;
  default:
    cp_log(CP_WARN, "engine: cluster %s: unexpected %s from the agent (ignored)", cluster,
           kframe_body_name(env->body_case));
  }
  if (v != KFRAME_UNSEQUENCED && env->sequence > s->processed) {
    s->processed = env->sequence;
    seq_write(e, s);
  }
  kframe_envelope_free(env);
  return true;
}

static void on_refused(void *arg, const char *reason) {
  (void)arg;
  cp_log(CP_WARN, "engine: agent connection refused: %s", reason);
}

/* ---- timers ------------------------------------------------------------------ */

/* Every heartbeat interval: heartbeats (with our ack) to every agent, drop
 * the silent ones (three intervals), refresh last_heartbeat and the
 * session lease of the live ones. */
static void on_hb_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cp_engine *e = arg;
  int64_t now = cpe_mono_ms(), hb = e->opt->heartbeat_ms;
  size_t n = 0;
  const char **live = calloc(e->n_sessions ? e->n_sessions : 1, sizeof *live);
  if (!live) kv_oom();
  for (cpe_sess *s = e->sessions, *next; s; s = next) {
    next = s->next;
    if (now - s->last_rx_ms > 3 * hb) {
      char *c = xstrdup(s->cluster);
      cp_log(CP_WARN, "engine: cluster %s: no message for three heartbeat intervals: closing", c);
      ktls_server_drop(e->srv, s->bev); /* on_closed frees s */
      const char *p[2] = {c, e->opt->replica_id};
      cpe_query(e,
                "UPDATE clusters SET state = 'offline', state_reason = 'the agent missed three "
                "heartbeats; its work waits until it reconnects', replica = NULL, lease_until = "
                "NULL WHERE name = $1 AND (replica = $2 OR replica IS NULL)",
                2, p, NULL, NULL);
      free(c);
      continue;
    }
    send_heartbeat(s);
    if (now - s->last_rx_ms <= hb + hb / 2) live[n++] = s->cluster;
  }
  if (n) {
    char *arr = cpe_pg_array(live, n);
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)(3 * hb));
    const char *p[3] = {arr, e->opt->replica_id, ms};
    cpe_query(e,
              "UPDATE clusters SET last_heartbeat = now(), lease_until = now() + $3::bigint * "
              "interval '1 millisecond', state = 'online', state_reason = '', replica = $2 WHERE "
              "name = ANY($1::text[])",
              3, p, NULL, NULL);
    free(arr);
  }
  free(live);
}

static void on_offline_rows(cp_engine *e, void *arg, PGresult *res, const char *err) {
  (void)arg, (void)err;
  if (e->closing || !res) return;
  for (int i = 0; i < PQntuples(res); i++) {
    e->offline_marked++;
    cp_log(CP_WARN, "engine: cluster %s marked offline: %s", PQgetvalue(res, i, 0),
           PQgetvalue(res, i, 1));
  }
}

static void on_seqs(cp_engine *e, void *arg, PGresult *res, const char *err) {
  (void)arg, (void)err;
  if (e->closing || !res) return;
  for (int i = 0; i < PQntuples(res); i++) {
    const char *c = PQgetvalue(res, i, 0);
    if (!cpe_sess_find(e, c)) kv_map_set_str(e->agent_seq, c, kv_int(atoll(PQgetvalue(res, i, 1))));
  }
}

/* Every few seconds, by any replica: clusters whose heartbeats stopped for
 * three intervals are offline (the replica that held them may be gone);
 * the agent sequences are refreshed for sessions that move here. */
static void on_offline_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cp_engine *e = arg;
  if (!e->defs && !e->loading) defs_load(e);
  int64_t hb = e->opt->heartbeat_ms;
  int64_t check = hb < 5000 ? hb : 5000;
  char ms[32];
  snprintf(ms, sizeof ms, "%lld", (long long)(3 * hb - check));
  const char *p[1] = {ms};
  cpe_query(e,
            "UPDATE clusters SET state = 'offline', state_reason = 'the agent missed three "
            "heartbeats (last at ' || to_char(last_heartbeat AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || '); its work waits until it reconnects', "
            "replica = NULL, lease_until = NULL WHERE state = 'online' AND last_heartbeat < now() "
            "- $1::bigint * interval '1 millisecond' RETURNING name, state_reason",
            1, p, on_offline_rows, NULL);
  cpe_query(e, "SELECT name, agent_seq FROM clusters", 0, NULL, on_seqs, NULL);
}

/* ======================================================================
 * life cycle, metrics
 * ====================================================================== */

static void engine_release(cp_engine *e) {
  kv_unref(e->agent_seq);
  free(e->buckets);
  free(e);
}

cp_engine *cp_engine_new(cp_ctx *ctx, char *err, size_t errlen) {
  cp_engine *e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->ctx = ctx;
  e->opt = ctx->opt;
  e->agent_seq = kv_map_new(8);
  e->max_runs = 512;
  const char *listen = e->opt->agent_listen ? e->opt->agent_listen : "0.0.0.0:9443";
  const char *colon = strrchr(listen, ':');
  char host[256];
  if (!colon || colon == listen) {
    snprintf(err, errlen, "--agent-listen '%s': expected HOST:PORT", listen);
    engine_release(e);
    return NULL;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = 0;
  }
  ktls_server_opts so = {.bind_host = host,
                         .port = atoi(colon + 1),
                         .ca = ctx->ca,
                         .cert_pem = ctx->server_cert_pem,
                         .key_pem = ctx->server_key_pem,
                         .validate_token = validate_token,
                         .on_registered = on_registered,
                         .on_session = on_session,
                         .on_envelope = on_envelope,
                         .on_closed = on_closed,
                         .on_refused = on_refused,
                         .arg = e};
  ktls_err ke = {{0}};
  e->srv = ktls_server_new(ctx->base, &so, &ke);
  if (!e->srv) {
    snprintf(err, errlen, "agent listener: %s", ke.msg);
    engine_release(e);
    return NULL;
  }
  ctx->engine = e;
  cpdb_listen(ctx->db, "koreo_definitions", on_notify, e);
  cpdb_listen(ctx->db, "koreo_work", on_notify, e);
  defs_load(e);
  cpe_query(e, "SELECT name, agent_seq FROM clusters", 0, NULL, on_seqs, NULL);
  /* a restarted replica (same --replica-id) gives back what it held */
  const char *rp[1] = {e->opt->replica_id};
  cpe_query(e,
            "UPDATE work_queue SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
            1, rp, NULL, NULL);
  e->hb_timer = event_new(ctx->base, -1, EV_PERSIST, on_hb_timer, e);
  int64_t hb = e->opt->heartbeat_ms > 0 ? e->opt->heartbeat_ms : 10000;
  struct timeval tv = {hb / 1000, (hb % 1000) * 1000};
  evtimer_add(e->hb_timer, &tv);
  e->offline_timer = event_new(ctx->base, -1, EV_PERSIST, on_offline_timer, e);
  int64_t check = hb < 5000 ? hb : 5000;
  struct timeval tc = {check / 1000, (check % 1000) * 1000};
  evtimer_add(e->offline_timer, &tc);
  cpe_sched_init(e);
  cp_log(CP_INFO, "engine: agents listen on %s:%d (replica %s)", host, ktls_server_port(e->srv),
         e->opt->replica_id);
  return e;
}

void cp_engine_free(cp_engine *e) {
  if (!e) return;
  cpe_sched_free(e); /* runs in flight give their work back */
  e->closing = true;
  ktls_server_free(e->srv); /* on_closed frees every session */
  event_free(e->hb_timer);
  event_free(e->offline_timer);
  cpe_defset_unref(e->defs);
  e->defs = NULL;
  if (e->ctx->engine == e) e->ctx->engine = NULL;
  if (e->inflight == 0) engine_release(e);
  /* else the last database callback releases it */
}

int cp_engine_agent_port(const cp_engine *e) { return ktls_server_port(e->srv); }

bool cp_engine_ready(const cp_engine *e) { return e->defs && cpdb_connected(e->ctx->db); }

static const double STEP_BOUNDS[10] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

void cpe_observe_step(cp_engine *e, double seconds) {
  for (int i = 0; i < 10; i++)
    if (seconds <= STEP_BOUNDS[i]) e->step_hist[i]++;
  e->step_count++;
  e->step_sum_s += seconds;
}

char *cp_engine_metrics(const cp_engine *e) {
  kv_strbuf b = {0};
  static const char *names[5] = {"DepSkip", "Skip", "Ok", "Retry", "PermFail"};
  kv_strbuf_printf(&b,
                   "# HELP koreo_agents_connected Agent sessions held by this replica.\n"
                   "# TYPE koreo_agents_connected gauge\nkoreo_agents_connected %zu\n"
                   "# HELP koreo_runs_total Workflow runs finished by this replica, by outcome.\n"
                   "# TYPE koreo_runs_total counter\n",
                   e->n_sessions);
  for (int i = 0; i < 5; i++)
    kv_strbuf_printf(&b, "koreo_runs_total{outcome=\"%s\"} %llu\n", names[i], e->runs_total[i]);
  kv_strbuf_printf(&b,
                   "# TYPE koreo_runs_in_flight gauge\nkoreo_runs_in_flight %zu\n"
                   "# TYPE koreo_runs_recorded_total counter\nkoreo_runs_recorded_total %llu\n"
                   "# TYPE koreo_runs_repeated_total counter\nkoreo_runs_repeated_total %llu\n"
                   "# TYPE koreo_queue_claims_total counter\nkoreo_queue_claims_total %llu\n"
                   "# TYPE koreo_queue_claimed_rows_total counter\n"
                   "koreo_queue_claimed_rows_total %llu\n"
                   "# TYPE koreo_trigger_events_total counter\nkoreo_trigger_events_total %llu\n"
                   "# TYPE koreo_apply_requests_total counter\nkoreo_apply_requests_total %llu\n"
                   "# TYPE koreo_status_updates_total counter\nkoreo_status_updates_total %llu\n"
                   "# TYPE koreo_registrations_total counter\nkoreo_registrations_total %llu\n"
                   "# TYPE koreo_registrations_refused_total counter\n"
                   "koreo_registrations_refused_total %llu\n"
                   "# HELP koreo_step_duration_seconds ResourceFunction steps: ApplyRequest to "
                   "ApplyResult.\n# TYPE koreo_step_duration_seconds histogram\n",
                   e->n_runs, e->runs_recorded, e->runs_repeated, e->claims, e->claimed_rows,
                   e->events, e->apply_requests, e->status_updates, e->registrations,
                   e->registrations_refused);
  for (int i = 0; i < 10; i++)
    kv_strbuf_printf(&b, "koreo_step_duration_seconds_bucket{le=\"%g\"} %llu\n", STEP_BOUNDS[i],
                     e->step_hist[i]);
  kv_strbuf_printf(&b,
                   "koreo_step_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                   "koreo_step_duration_seconds_sum %.6f\nkoreo_step_duration_seconds_count %llu\n",
                   e->step_count, e->step_sum_s, e->step_count);
  return kv_strbuf_take(&b, NULL);
}
