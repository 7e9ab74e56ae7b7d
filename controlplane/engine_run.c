/*
 * controlplane/engine_run.c: the engine's running half (engine.h), part
 * two: the work-queue scheduler (claims due rows of the clusters whose
 * session this replica holds with FOR UPDATE SKIP LOCKED and a lease,
 * renews the lease while a run lasts), Workflow runs on the core engine
 * with remote ResourceFunction steps (ApplyRequest to the trigger's
 * cluster, resumed by the ApplyResult, deadline -> koreo_run_cancel), the
 * StatusUpdate after each run, rescheduling as upstream's host does (spec
 * 6.11: Retry delay, resync, PermFail waits for a change, capped doubling
 * backoff on failures), and the execution history (a run identical to the
 * trigger's previous one only bumps its repeat count).
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "koreo/json.h"

struct cpe_run {
  cp_engine *e;
  char *work_id, *work_version, *run_id;
  int attempts;
  char *cluster, *api_version, *kind, *ns, *name, *workflow;
  kv *obj, *parent, *oref;
  koreo_owner owner;
  koreo_eval_ctx ctx;
  cpe_defset *defs;
  koreo_run *run;
  char started[40];
  int64_t started_ms;
  char *last_id, *last_started, *last_fp; /* the trigger's previous run, NULL if none */
  struct event *deadline;
  bool timed_out, finished;
  kv *step_ms; /* label -> milliseconds spent in ApplyRequests */
  kv *sent_at; /* apply id (text) -> [monotonic ms sent, label] */
  cpe_run *next;
};

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

static char *dup_or_null(PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static void run_free(cpe_run *r) {
  cp_engine *e = r->e;
  for (cpe_run **pp = &e->runs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      e->n_runs--;
      break;
    }
  if (r->deadline) event_free(r->deadline);
  if (r->run) {
    if (!koreo_run_done(r->run)) koreo_run_cancel(r->run);
    koreo_run_free(r->run);
  }
  kv_unref(r->obj), kv_unref(r->parent), kv_unref(r->oref);
  kv_unref(r->step_ms), kv_unref(r->sent_at);
  cpe_defset_unref(r->defs);
  free(r->work_id), free(r->work_version), free(r->run_id);
  free(r->cluster), free(r->api_version), free(r->kind), free(r->ns), free(r->name);
  free(r->workflow), free(r->last_id), free(r->last_started), free(r->last_fp);
  free(r);
}

/* ---- releasing work ----------------------------------------------------- */

static const char SQL_RELEASE[] =
    "UPDATE work_queue SET claimed_by = NULL, claimed_until = NULL, "
    "due_at = CASE WHEN version = $2::bigint THEN (CASE WHEN $3::bigint < 0 THEN "
    "'infinity'::timestamptz ELSE now() + $3::bigint * interval '1 millisecond' END) ELSE due_at "
    "END, attempts = CASE WHEN version = $2::bigint THEN $4::int ELSE 0 END, "
    "reason = CASE WHEN version = $2::bigint THEN $5 ELSE reason END "
    "WHERE id = $1::bigint AND claimed_by = $6";

/* Give the row back: next run in `next_ms` (-1: only after a change), with
 * `attempts` consecutive failures; a row enqueued again during the run
 * (version changed) keeps its new due time. */
static void release(cp_engine *e, const char *work_id, const char *version, int64_t next_ms,
                    int attempts, const char *reason) {
  char ms[32], at[16];
  snprintf(ms, sizeof ms, "%lld", (long long)next_ms);
  snprintf(at, sizeof at, "%d", attempts);
  const char *p[6] = {work_id, version, ms, at, reason, e->opt->replica_id};
  cpe_query(e, SQL_RELEASE, 6, p, NULL, NULL);
}

static void drop_work(cp_engine *e, const char *work_id) {
  const char *p[1] = {work_id};
  cpe_query(e, "DELETE FROM work_queue WHERE id = $1::bigint", 1, p, NULL, NULL);
}

/* Doubling from backoff_min_ms, capped at backoff_max_ms. */
static int64_t backoff_ms(const cp_options *o, int failures) {
  int64_t lo = o->backoff_min_ms > 0 ? o->backoff_min_ms : 1000;
  int64_t hi = o->backoff_max_ms > lo ? o->backoff_max_ms : lo;
  int64_t d = lo;
  for (int i = 1; i < failures && d < hi; i++)
    d *= 2;
  return d > hi ? hi : d;
}

/* ---- status updates ------------------------------------------------------ */

static char *json_of(const kv *v) { return v ? kv_json_write(v, 0, NULL) : NULL; }

static ProtobufCBinaryData bin(char *s) {
  ProtobufCBinaryData b = {s ? strlen(s) : 0, (uint8_t *)s};
  return b;
}

static void fill_ref(Koreo__Agent__V1__ObjectRef *ref, const cpe_run *r) {
  koreo__agent__v1__object_ref__init(ref);
  ref->api_version = r->api_version;
  ref->kind = r->kind;
  ref->namespace_ = r->ns;
  ref->name = r->name;
  const kv *meta = kv_map_get_str(r->obj, "metadata");
  const kv *uid = meta && meta->kind == KV_MAP ? kv_map_get_str(meta, "uid") : NULL;
  const kv *rv = meta && meta->kind == KV_MAP ? kv_map_get_str(meta, "resourceVersion") : NULL;
  ref->uid = uid && uid->kind == KV_STRING ? (char *)kv_str(uid) : (char *)"";
  ref->resource_version = rv && rv->kind == KV_STRING ? (char *)kv_str(rv) : (char *)"";
}

static const char *cstr(const kv *m, const char *k) {
  const kv *v = m && m->kind == KV_MAP ? kv_map_get_str(m, k) : NULL;
  return v && v->kind == KV_STRING ? kv_str(v) : "";
}

/* Send the StatusUpdate of `patch` ({metadata?, status?}, spec 6.11). */
static void send_status(cp_engine *e, cpe_run *r, const kv *patch) {
  cpe_sess *s = cpe_sess_find(e, r->cluster);
  if (!s) return;
  const kv *status = kv_map_get_str(patch, "status");
  const kv *conds = status && status->kind == KV_MAP ? kv_map_get_str(status, "conditions") : NULL;
  const kv *state = status && status->kind == KV_MAP ? kv_map_get_str(status, "state") : NULL;
  const kv *koreo = status && status->kind == KV_MAP ? kv_map_get_str(status, "koreo") : NULL;
  const kv *md = kv_map_get_str(patch, "metadata"); /* absent for selection errors */
  const kv *ann = md && md->kind == KV_MAP ? kv_map_get_str(md, "annotations") : NULL;
  const kv *mr =
      ann && ann->kind == KV_MAP ? kv_map_get_str(ann, KOREO_MANAGED_RESOURCES_ANNOTATION) : NULL;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__StatusUpdate su = KOREO__AGENT__V1__STATUS_UPDATE__INIT;
  Koreo__Agent__V1__ObjectRef ref;
  fill_ref(&ref, r);
  su.trigger = &ref;
  size_t nc = conds && conds->kind == KV_LIST ? kv_len(conds) : 0;
  Koreo__Agent__V1__Condition *cs = calloc(nc ? nc : 1, sizeof *cs);
  Koreo__Agent__V1__Condition **cp = calloc(nc ? nc : 1, sizeof *cp);
  if (!cs || !cp) kv_oom();
  for (size_t i = 0; i < nc; i++) {
    const kv *c = kv_list_at(conds, i);
    koreo__agent__v1__condition__init(&cs[i]);
    cs[i].type = (char *)cstr(c, "type");
    cs[i].status = (char *)cstr(c, "status");
    cs[i].reason = (char *)cstr(c, "reason");
    cs[i].message = (char *)cstr(c, "message");
    cs[i].location = (char *)cstr(c, "location");
    cs[i].last_transition_time = (char *)cstr(c, "lastTransitionTime");
    cs[i].last_update_time = (char *)cstr(c, "lastUpdateTime");
    cp[i] = &cs[i];
  }
  su.n_conditions = nc;
  su.conditions = cp;
  char *sj = json_of(state), *kj = json_of(koreo);
  su.state_json = bin(sj);
  su.koreo_json = bin(kj);
  su.managed_resources = mr && mr->kind == KV_STRING ? (char *)kv_str(mr) : (char *)"";
  su.merge_conditions = false; /* merged here already, with the stored object */
  su.run_id = r->run_id;
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE;
  env.status_update = &su;
  cpe_sess_send(s, &env);
  e->status_updates++;
  free(sj), free(kj), free(cs), free(cp);
}

/* The selection failures of spec 6.11 (no/several Workflows, Workflow not
 * ready): Ready condition with status "false", status.koreo, re-run after
 * 120 s. */
static void selection_error(cp_engine *e, cpe_run *r, const char *reason, const char *msg) {
  cp_log(CP_WARN, "engine: %s %s/%s on %s: %s: %s", r->kind, r->ns, r->name, r->cluster, reason,
         msg);
  char now[40];
  cpe_iso_now(now);
  kv *patch = koreo_selection_error_patch(r->obj, reason, msg, r->kind, now);
  send_status(e, r, patch);
  kv_unref(patch);
  release(e, r->work_id, r->work_version, 120000, 0, "selection-error");
  run_free(r);
}

/* ---- history ----------------------------------------------------------------- */

/* An autonomous run reported by an agent: one row (no repeat counting: the
 * agent runs on its own only while disconnected) with the steps it sent. */
static const char SQL_AUTO_INSERT[] =
    "WITH r AS (INSERT INTO workflow_runs (id, started_at, finished_at, last_seen_at, workflow, "
    "cluster, api_version, kind, namespace, name, outcome, message, location, state, conditions, "
    "fingerprint, replica, duration_ms) VALUES (nextval('workflow_runs_id_seq'), "
    "to_timestamp($1::float8 / 1000), to_timestamp($2::float8 / 1000), now(), $3, $4, $5, $6, $7, "
    "$8, $9, $10, $11, $12::json, $13::json, $14, $15, greatest($2::float8 - $1::float8, 0)) "
    "RETURNING id, started_at), "
    "s AS (INSERT INTO step_runs (run_id, run_started_at, ordinal, label, outcome, message, "
    "location, value, resource_ids) SELECT r.id, r.started_at, x.ordinal - 1, x.e ->> 'label', "
    "x.e ->> 'outcome', coalesce(x.e ->> 'message', ''), coalesce(x.e ->> 'location', ''), "
    "x.e -> 'value', x.e -> 'resourceIds' FROM r, json_array_elements($16::json) WITH "
    "ORDINALITY AS x(e, ordinal)) "
    "UPDATE triggers t SET last_outcome = $9 FROM r WHERE t.cluster = $4 AND t.api_version = $5 "
    "AND t.kind = $6 AND t.namespace = $7 AND t.name = $8";

static const char *outcome_name_pb(Koreo__Agent__V1__Outcome o) {
  switch (o) {
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_DEP_SKIP: return "DepSkip";
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_SKIP: return "Skip";
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_OK: return "Ok";
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY: return "Retry";
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_PERM_FAIL: return "PermFail";
  default: return NULL;
  }
}

static void on_auto_recorded(cp_engine *e, void *arg, PGresult *res, const char *err) {
  char *what = arg;
  if (!e->closing) {
    if (res)
      e->runs_recorded++;
    else
      cp_log(CP_WARN, "engine: recording the autonomous run %s: %s", what, err);
  }
  free(what);
}

static char *pb_text(const ProtobufCBinaryData *b, const char *dflt) {
  if (!b->len) return dflt ? xstrdup(dflt) : NULL;
  char *t = malloc(b->len + 1);
  if (!t) kv_oom();
  memcpy(t, b->data, b->len);
  t[b->len] = 0;
  return t;
}

void cpe_record_autonomous(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__StatusUpdate *u) {
  const Koreo__Agent__V1__ObjectRef *t = u->trigger;
  const char *outcome = outcome_name_pb(u->outcome);
  if (!t || !u->run_id || !*u->run_id || !u->workflow || !*u->workflow || !outcome) {
    cp_log(CP_WARN, "engine: cluster %s: a StatusUpdate without a run report (ignored)",
           s->cluster);
    return;
  }
  /* the Workflow's key as the history names it: "<namespace>/<name>" */
  kdef_definition *wf =
      e->defs ? kdef_registry_lookup(e->defs->reg, KDEF_WORKFLOW, u->workflow) : NULL;
  char *wkey = wf ? kv_asprintf("%s/%s", wf->ns, wf->name) : kv_asprintf("?/%s", u->workflow);
  /* conditions as the trigger got them */
  kv *conds = kv_list_new(u->n_conditions);
  for (size_t i = 0; i < u->n_conditions; i++) {
    const Koreo__Agent__V1__Condition *c = u->conditions[i];
    kv *m = kv_map_new(7);
    kv_map_set_str(m, "type", kv_cstring(c->type ? c->type : ""));
    kv_map_set_str(m, "status", kv_cstring(c->status ? c->status : ""));
    kv_map_set_str(m, "reason", kv_cstring(c->reason ? c->reason : ""));
    kv_map_set_str(m, "message", kv_cstring(c->message ? c->message : ""));
    kv_map_set_str(m, "location", kv_cstring(c->location ? c->location : ""));
    kv_map_set_str(m, "lastTransitionTime",
                   kv_cstring(c->last_transition_time ? c->last_transition_time : ""));
    kv_map_set_str(m, "lastUpdateTime", kv_cstring(c->last_update_time ? c->last_update_time : ""));
    kv_list_push(conds, m);
  }
  char *conds_json = kv_json_write(conds, 0, NULL);
  kv_unref(conds);
  char started[32], finished[32], fp[80];
  int64_t fin = u->finished_unix_ms ? u->finished_unix_ms : 0;
  int64_t st = u->started_unix_ms ? u->started_unix_ms : fin;
  snprintf(started, sizeof started, "%lld", (long long)st);
  snprintf(finished, sizeof finished, "%lld", (long long)fin);
  snprintf(fp, sizeof fp, "autonomous:%s", u->run_id);
  char *replica = kv_asprintf("agent:%s", s->cluster);
  char *state = pb_text(&u->state_json, NULL), *steps = pb_text(&u->steps_json, "[]");
  const char *p[16] = {started,
                       finished,
                       wkey,
                       s->cluster,
                       t->api_version ? t->api_version : "",
                       t->kind ? t->kind : "",
                       t->namespace_ ? t->namespace_ : "",
                       t->name ? t->name : "",
                       outcome,
                       u->message ? u->message : "",
                       u->location ? u->location : "",
                       state,
                       conds_json,
                       fp,
                       replica,
                       steps};
  cp_log(CP_INFO, "engine: cluster %s: autonomous run %s of Workflow %s for %s %s/%s: %s",
         s->cluster, u->run_id, wkey, p[5], p[6], p[7], outcome);
  e->runs_total[u->outcome > 0 && u->outcome <= 5 ? u->outcome - 1 : 0]++;
  cpe_query(e, SQL_AUTO_INSERT, 16, p, on_auto_recorded, xstrdup(u->run_id));
  free(wkey);
  free(conds_json);
  free(replica);
  free(state);
  free(steps);
}

static const char SQL_RUN_INSERT[] =
    "WITH r AS (INSERT INTO workflow_runs (id, started_at, finished_at, last_seen_at, workflow, "
    "cluster, api_version, kind, namespace, name, outcome, message, location, state, conditions, "
    "fingerprint, replica, duration_ms) VALUES ($1::bigint, $2::timestamptz, now(), now(), $3, $4, "
    "$5, $6, $7, $8, $9, $10, $11, $12::json, $13::json, $14, $15, $16::float8) RETURNING id, "
    "started_at), "
    "s AS (INSERT INTO step_runs (run_id, run_started_at, ordinal, label, outcome, message, "
    "location, value, resource_ids, duration_ms) SELECT r.id, r.started_at, x.ordinal, x.label, "
    "x.outcome, coalesce(x.message, ''), coalesce(x.location, ''), x.value, x.resource_ids, "
    "coalesce(x.duration_ms, 0) FROM r, json_to_recordset($17::json) AS x(ordinal int, label "
    "text, outcome text, message text, location text, value json, resource_ids json, duration_ms "
    "float8)) "
    "UPDATE triggers t SET last_run_id = r.id, last_run_started_at = r.started_at, "
    "last_run_fingerprint = $14, last_outcome = $9 FROM r WHERE t.cluster = $4 AND t.api_version "
    "= $5 AND t.kind = $6 AND t.namespace = $7 AND t.name = $8";

static const char SQL_RUN_REPEAT[] =
    "WITH u AS (UPDATE workflow_runs SET repeat_count = repeat_count + 1, last_seen_at = now(), "
    "finished_at = now() WHERE id = $1::bigint AND started_at = $2::timestamptz RETURNING id) "
    "UPDATE triggers t SET last_outcome = $3 FROM u WHERE t.cluster = $4 AND t.api_version = $5 "
    "AND t.kind = $6 AND t.namespace = $7 AND t.name = $8 RETURNING t.name";

typedef struct record {
  const char *p[17];
  char *own[17];
} record;

static void record_free(record *rc) {
  for (int i = 0; i < 17; i++)
    free(rc->own[i]);
  free(rc);
}

static void on_inserted(cp_engine *e, void *arg, PGresult *res, const char *err) {
  record *rc = arg;
  if (!e->closing) {
    if (res)
      e->runs_recorded++;
    else
      cp_log(CP_WARN, "engine: recording run %s: %s", rc->p[0], err);
  }
  record_free(rc);
}

static void on_repeated(cp_engine *e, void *arg, PGresult *res, const char *err) {
  record *rc = arg;
  if (e->closing) {
    record_free(rc);
    return;
  }
  if (res && PQntuples(res) > 0) {
    e->runs_repeated++;
    record_free(rc);
    return;
  }
  if (!res) cp_log(CP_WARN, "engine: counting a repeated run: %s", err);
  /* the previous run is gone (retention): record this one */
  cpe_query(e, SQL_RUN_INSERT, 17, rc->p, on_inserted, rc);
}

static void record_run(cp_engine *e, cpe_run *r, const koreo_workflow_result *res,
                       const kv *patch) {
  kv *fp = kv_map_new(3), *steps = kv_list_new(res->n_steps), *rows = kv_list_new(res->n_steps);
  kv_map_set_str(fp, "outcome", koreo_outcome_to_kv(&res->outcome));
  kv_map_set_str(fp, "state", kv_ref(res->state ? res->state : kv_null()));
  for (size_t i = 0; i < res->n_steps; i++) {
    const koreo_step_report *st = &res->steps[i];
    kv *x = kv_map_new(3);
    kv_map_set_str(x, "label", kv_cstring(st->label));
    kv_map_set_str(x, "outcome", koreo_outcome_to_kv(&st->outcome));
    kv_map_set_str(x, "resourceIds", kv_ref(st->resource_ids ? (kv *)st->resource_ids : kv_null()));
    kv_list_push(steps, x);
    kv *row = kv_map_new(8);
    kv_map_set_str(row, "ordinal", kv_int((int64_t)i));
    kv_map_set_str(row, "label", kv_cstring(st->label));
    kv_map_set_str(row, "outcome", kv_cstring(koreo_outcome_kind_name(st->outcome.kind)));
    kv_map_set_str(row, "message", kv_cstring(st->outcome.message ? st->outcome.message : ""));
    kv_map_set_str(row, "location", kv_cstring(st->outcome.location ? st->outcome.location : ""));
    kv_map_set_str(
        row, "value",
        kv_ref(st->outcome.kind == KOREO_OK && st->outcome.value ? st->outcome.value : kv_null()));
    kv_map_set_str(row, "resource_ids",
                   kv_ref(st->resource_ids ? (kv *)st->resource_ids : kv_null()));
    const kv *ms = kv_map_get_str(r->step_ms, st->label);
    kv_map_set_str(row, "duration_ms", kv_double(ms ? ms->u.d : 0));
    kv_list_push(rows, row);
  }
  kv_map_set_str(fp, "steps", steps);
  char *fptext = kv_json_write(fp, 0, NULL);
  char hex[65];
  cp_sha256_hex(fptext, strlen(fptext), hex);
  free(fptext);
  kv_unref(fp);
  const kv *status = kv_map_get_str(patch, "status");
  const kv *conds = status && status->kind == KV_MAP ? kv_map_get_str(status, "conditions") : NULL;
  record *rc = calloc(1, sizeof *rc);
  if (!rc) kv_oom();
  char dur[32];
  snprintf(dur, sizeof dur, "%.3f", (double)(cpe_mono_ms() - r->started_ms));
  const koreo_outcome *o = &res->outcome;
  rc->own[0] = xstrdup(r->run_id);
  rc->own[1] = xstrdup(r->started);
  rc->own[2] = xstrdup(r->workflow);
  rc->own[3] = xstrdup(r->cluster);
  rc->own[4] = xstrdup(r->api_version);
  rc->own[5] = xstrdup(r->kind);
  rc->own[6] = xstrdup(r->ns);
  rc->own[7] = xstrdup(r->name);
  rc->own[8] = xstrdup(koreo_outcome_kind_name(o->kind));
  rc->own[9] = xstrdup(o->message);
  rc->own[10] = xstrdup(o->location);
  rc->own[11] = res->state ? kv_json_write(res->state, 0, NULL) : NULL;
  rc->own[12] = conds ? kv_json_write(conds, 0, NULL) : NULL;
  rc->own[13] = xstrdup(hex);
  rc->own[14] = xstrdup(e->opt->replica_id);
  rc->own[15] = xstrdup(dur);
  rc->own[16] = kv_json_write(rows, 0, NULL);
  kv_unref(rows);
  for (int i = 0; i < 17; i++)
    rc->p[i] = rc->own[i];
  if (r->last_fp && r->last_id && r->last_started && strcmp(r->last_fp, hex) == 0) {
    const char *p[8] = {r->last_id,     r->last_started, rc->p[8], r->cluster,
                        r->api_version, r->kind,         r->ns,    r->name};
    cpe_query(e, SQL_RUN_REPEAT, 8, p, on_repeated, rc);
  } else {
    cpe_query(e, SQL_RUN_INSERT, 17, rc->p, on_inserted, rc);
  }
}

/* ---- runs ------------------------------------------------------------------ */

static void run_finish(cpe_run *r) {
  cp_engine *e = r->e;
  r->finished = true;
  if (r->deadline) evtimer_del(r->deadline);
  const koreo_workflow_result *res = koreo_run_workflow_result(r->run);
  const koreo_outcome *o = &res->outcome;
  e->runs_total[o->kind]++;
  char now[40];
  cpe_iso_now(now);
  kv *patch = koreo_status_patch(r->obj, res, now);
  send_status(e, r, patch);
  int64_t next = e->opt->resync_ms > 0 ? e->opt->resync_ms : 20 * 60 * 1000;
  int attempts = 0;
  const char *reason = "resync";
  if (r->timed_out) {
    attempts = r->attempts + 1;
    next = backoff_ms(e->opt, attempts);
    reason = "backoff";
  } else if (o->kind == KOREO_RETRY) {
    next = o->delay > 1 ? o->delay * 1000 : 1000;
    reason = "retry";
  } else if (o->kind == KOREO_PERMFAIL) {
    next = -1; /* until the trigger or its definitions change */
    reason = "permfail";
  }
  char *text = koreo_outcome_text(o);
  cp_log(o->kind == KOREO_PERMFAIL ? CP_WARN : CP_INFO,
         "engine: run %s: Workflow %s for %s %s/%s on %s: %s%s", r->run_id, r->workflow, r->kind,
         r->ns, r->name, r->cluster, text, r->timed_out ? " (run timed out)" : "");
  free(text);
  release(e, r->work_id, r->work_version, next, attempts, reason);
  record_run(e, r, res, patch);
  kv_unref(patch);
  run_free(r);
}

static void pump(cpe_run *r) {
  cp_engine *e = r->e;
  if (r->finished) return;
  for (;;) {
    if (koreo_run_advance(r->run)) {
      run_finish(r);
      return;
    }
    bool answered = false;
    const kube_request *q;
    while ((q = koreo_run_next_request(r->run))) {
      /* remote mode issues no Kubernetes requests; should one appear, the
       * control plane has no cluster to send it to */
      kube_response resp = {0};
      resp.status = KUBE_STATUS_FAILURE;
      snprintf(resp.message, sizeof resp.message,
               "the control plane does not reach clusters directly");
      koreo_run_answer(r->run, q->id, &resp);
      answered = true;
    }
    const koreo_apply *a;
    cpe_sess *s = cpe_sess_find(e, r->cluster);
    while ((a = koreo_run_next_apply(r->run))) {
      char rid[64], aid[24];
      snprintf(rid, sizeof rid, "%s/%llu", r->run_id, (unsigned long long)a->id);
      snprintf(aid, sizeof aid, "%llu", (unsigned long long)a->id);
      Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
      Koreo__Agent__V1__ApplyRequest rq = KOREO__AGENT__V1__APPLY_REQUEST__INIT;
      Koreo__Agent__V1__OwnerReference ow = KOREO__AGENT__V1__OWNER_REFERENCE__INIT;
      Koreo__Agent__V1__ObjectRef ref;
      fill_ref(&ref, r);
      const char *hash = cpe_def_hash(r->defs, "ResourceFunction", a->rf->ns, a->rf->name);
      char *inputs = kv_json_write(a->inputs ? a->inputs : kv_null(), 0, NULL);
      rq.request_id = rid;
      rq.run_id = r->run_id;
      rq.step_label = (char *)(a->step_label ? a->step_label : "");
      rq.function_hash = (char *)(hash ? hash : "");
      rq.function_name = a->rf->name;
      rq.inputs_json = bin(inputs);
      ow.namespace_ = r->ns;
      ow.api_version = (char *)cstr(r->oref, "apiVersion");
      ow.kind = (char *)cstr(r->oref, "kind");
      ow.name = (char *)cstr(r->oref, "name");
      ow.uid = (char *)cstr(r->oref, "uid");
      ow.block_owner_deletion = true;
      ow.controller = false;
      rq.owner = &ow;
      rq.in_for_each = a->in_for_each;
      rq.for_each_index = a->for_each_index;
      rq.trigger = &ref;
      rq.timeout_ms = (uint32_t)e->opt->run_timeout_ms;
      rq.location = (char *)(a->location ? a->location : "");
      env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST;
      env.apply_request = &rq;
      if (s) cpe_sess_send(s, &env);
      e->apply_requests++;
      kv *sent = kv_list_new(2);
      kv_list_push(sent, kv_int(cpe_mono_ms()));
      kv_list_push(sent, kv_cstring(a->step_label ? a->step_label : ""));
      kv_map_set_str(r->sent_at, aid, sent);
      free(inputs);
    }
    if (!answered) return;
  }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cpe_run *r = arg;
  if (r->finished) return;
  r->timed_out = true;
  koreo_run_cancel(r->run);
  run_finish(r);
}

void cpe_apply_result(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__ApplyResult *ar) {
  e->apply_results++;
  const char *rid = ar->request_id ? ar->request_id : "";
  const char *slash = strrchr(rid, '/');
  if (!slash) return;
  size_t idlen = (size_t)(slash - rid);
  cpe_run *r = e->runs;
  while (r && !(strlen(r->run_id) == idlen && strncmp(r->run_id, rid, idlen) == 0))
    r = r->next;
  /* an answer for a run this replica no longer has (restart, timeout,
   * redelivery): the run was or will be repeated */
  if (!r || r->finished || strcmp(r->cluster, s->cluster) != 0) return;
  uint64_t aid = strtoull(slash + 1, NULL, 10);
  const kv *sent = kv_map_get_str(r->sent_at, slash + 1);
  if (sent) {
    double ms = (double)(cpe_mono_ms() - kv_list_at(sent, 0)->u.i);
    cpe_observe_step(e, ms / 1000.0);
    const char *label = kv_str(kv_list_at(sent, 1));
    const kv *prev = kv_map_get_str(r->step_ms, label);
    kv_map_set_str(r->step_ms, label, kv_double((prev ? prev->u.d : 0) + ms));
  }
  koreo_outcome o;
  const char *msg = ar->message && *ar->message ? ar->message : NULL;
  const char *loc = ar->location && *ar->location ? ar->location : NULL;
  switch (ar->outcome) {
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_OK: {
    kv *val = NULL;
    if (ar->return_json.len) {
      kv_parse_error pe = {0};
      val = kv_json_parse((const char *)ar->return_json.data, ar->return_json.len, &pe);
    }
    o = koreo_outcome_ok(val ? val : kv_null(), loc);
    break;
  }
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_SKIP: o = koreo_outcome_skip(msg, loc); break;
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_DEP_SKIP: o = koreo_outcome_depskip(msg, loc); break;
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY:
    o = koreo_outcome_retry(ar->retry_delay_seconds, msg, loc);
    break;
  case KOREO__AGENT__V1__OUTCOME__OUTCOME_PERM_FAIL: o = koreo_outcome_permfail(msg, loc); break;
  default: o = koreo_outcome_permfail("the agent answered without an outcome", loc);
  }
  kv *resid = NULL;
  if (ar->resource_id_json.len) {
    kv_parse_error pe = {0};
    resid = kv_json_parse((const char *)ar->resource_id_json.data, ar->resource_id_json.len, &pe);
  }
  if (koreo_run_answer_apply(r->run, aid, &o, resid) != 0) return; /* a repeated answer */
  pump(r);
}

void cpe_runs_abort_cluster(cp_engine *e, const char *cluster) {
  for (cpe_run *r = e->runs, *next; r; r = next) {
    next = r->next;
    if (strcmp(r->cluster, cluster) != 0) continue;
    cp_log(CP_INFO, "engine: run %s abandoned: the agent of %s went away (work re-queued)",
           r->run_id, cluster);
    release(e, r->work_id, r->work_version, 0, r->attempts, "agent-reconnect");
    run_free(r);
  }
}

typedef struct wf_pick {
  const char *kind_key;
  size_t n;
} wf_pick;

/* Start the run of one claimed row (columns of SQL_CLAIM). */
static void run_start(cp_engine *e, PGresult *res, int i) {
  cpe_run *r = calloc(1, sizeof *r);
  if (!r) kv_oom();
  r->e = e;
  r->work_id = xstrdup(PQgetvalue(res, i, 0));
  r->cluster = xstrdup(PQgetvalue(res, i, 1));
  r->api_version = xstrdup(PQgetvalue(res, i, 2));
  r->kind = xstrdup(PQgetvalue(res, i, 3));
  r->ns = xstrdup(PQgetvalue(res, i, 4));
  r->name = xstrdup(PQgetvalue(res, i, 5));
  r->workflow = xstrdup(PQgetvalue(res, i, 6));
  r->attempts = atoi(PQgetvalue(res, i, 7));
  r->work_version = xstrdup(PQgetvalue(res, i, 8));
  bool deleted = strcmp(PQgetvalue(res, i, 10), "t") == 0;
  r->last_id = dup_or_null(res, i, 11);
  r->last_started = dup_or_null(res, i, 12);
  r->last_fp = dup_or_null(res, i, 13);
  r->run_id = xstrdup(PQgetvalue(res, i, 14));
  r->step_ms = kv_map_new(4);
  r->sent_at = kv_map_new(4);
  r->started_ms = cpe_mono_ms();
  cpe_iso_now(r->started);
  r->defs = e->defs;
  e->defs->refs++;
  r->next = e->runs;
  e->runs = r;
  e->n_runs++;
  if (PQgetisnull(res, i, 9) || deleted) { /* the trigger is gone: nothing to run */
    drop_work(e, r->work_id);
    run_free(r);
    return;
  }
  if (!cpe_sess_find(e, r->cluster)) { /* the agent left meanwhile */
    release(e, r->work_id, r->work_version, 0, r->attempts, "agent-reconnect");
    run_free(r);
    return;
  }
  const char *text = PQgetvalue(res, i, 9);
  kv_parse_error pe = {0};
  r->obj = kv_json_parse(text, strlen(text), &pe);
  const char *slash = strchr(r->workflow, '/');
  kdef_definition *wf = NULL;
  char msg[600];
  if (r->obj && strncmp(r->workflow, "?/", 2) == 0) { /* named by annotation, not found */
    wf = kdef_registry_lookup(r->defs->reg, KDEF_WORKFLOW, r->workflow + 2);
    if (!wf) {
      snprintf(msg, sizeof msg, "Workflow %s (named by annotation koreo.dev/workflow) not found",
               r->workflow + 2);
      selection_error(e, r, "NoWorkflow", msg);
      return;
    }
  } else if (slash) {
    char *wns = strndup(r->workflow, (size_t)(slash - r->workflow));
    wf = kdef_registry_get(r->defs->reg, KDEF_WORKFLOW, wns, slash + 1);
    free(wns);
  }
  if (!r->obj || !wf) {
    cp_log(CP_INFO, "engine: %s %s/%s: Workflow %s no longer exists: work dropped", r->kind, r->ns,
           r->name, r->workflow);
    drop_work(e, r->work_id);
    run_free(r);
    return;
  }
  /* several Workflows for one kind and no koreo.dev/workflow: spec 6.11 */
  const kv *ann = kv_map_get_str(kv_map_get_str(r->obj, "metadata"), "annotations");
  bool named = ann && ann->kind == KV_MAP && kv_map_get_str(ann, "koreo.dev/workflow");
  char *key = kv_asprintf("%s %s", r->api_version, r->kind);
  const kv *list = kv_map_get_str(r->defs->by_kind, key);
  free(key);
  if (!named && list && kv_len(list) > 1) {
    snprintf(msg, sizeof msg,
             "%zu Workflows have crdRef %s %s; name one with the annotation koreo.dev/workflow",
             kv_len(list), r->api_version, r->kind);
    selection_error(e, r, "MultipleWorkflows", msg);
    return;
  }
  if (!kdef_outcome_is_ok(&wf->status)) {
    char *st = kdef_outcome_text(&wf->status);
    snprintf(msg, sizeof msg, "Workflow %s is not ready: %s", wf->name, st);
    free(st);
    selection_error(e, r, "WorkflowNotReady", msg);
    return;
  }
  r->parent = koreo_parent_from_trigger(r->obj);
  r->oref = koreo_owner_ref_from_trigger(r->obj);
  r->owner.ns = r->ns;
  r->owner.ref = r->oref;
  r->ctx.registry = r->defs->reg;
  r->ctx.remote_resource_functions = true;
  r->run = koreo_run_workflow(&r->ctx, wf, r->parent, &r->owner, NULL);
  r->deadline = evtimer_new(e->ctx->base, on_deadline, r);
  int64_t t = e->opt->run_timeout_ms > 0 ? e->opt->run_timeout_ms : 30000;
  struct timeval tv = {t / 1000, (t % 1000) * 1000};
  evtimer_add(r->deadline, &tv);
  pump(r);
}

/* ---- the scheduler ------------------------------------------------------------ */

static const char SQL_CLAIM[] =
    "WITH c AS (UPDATE work_queue w SET claimed_by = $1, claimed_until = now() + $2::bigint * "
    "interval '1 millisecond' WHERE w.id IN (SELECT id FROM work_queue WHERE cluster = "
    "ANY($3::text[]) AND due_at <= now() AND (claimed_until IS NULL OR claimed_until < now()) "
    "ORDER BY due_at LIMIT $4::int FOR UPDATE SKIP LOCKED) RETURNING w.id, w.cluster, "
    "w.api_version, w.kind, w.namespace, w.name, w.workflow, w.attempts, w.version) "
    "SELECT c.id, c.cluster, c.api_version, c.kind, c.namespace, c.name, c.workflow, c.attempts, "
    "c.version, t.object::text, coalesce(t.deleted, true), t.last_run_id, "
    "t.last_run_started_at::text, t.last_run_fingerprint, nextval('workflow_runs_id_seq') "
    "FROM c LEFT JOIN triggers t ON t.cluster = c.cluster AND t.api_version = c.api_version AND "
    "t.kind = c.kind AND t.namespace = c.namespace AND t.name = c.name";

static void claim(cp_engine *e);

static void on_claimed(cp_engine *e, void *arg, PGresult *res, const char *err) {
  (void)arg;
  if (e->closing) return;
  e->claiming = false;
  if (!res) {
    cp_log(CP_WARN, "engine: claiming work: %s", err);
    return;
  }
  int n = PQntuples(res);
  e->claims++;
  e->claimed_rows += (unsigned long long)n;
  for (int i = 0; i < n; i++)
    run_start(e, res, i);
  if (n > 0) claim(e); /* there may be more */
}

static void claim(cp_engine *e) {
  if (e->claiming || !e->defs || !e->n_sessions || e->n_runs >= e->max_runs) return;
  const char **cl = calloc(e->n_sessions, sizeof *cl);
  if (!cl) kv_oom();
  size_t n = 0;
  for (cpe_sess *s = e->sessions; s; s = s->next)
    cl[n++] = s->cluster;
  char *arr = cpe_pg_array(cl, n);
  free(cl);
  char lease[32], lim[16];
  snprintf(lease, sizeof lease, "%lld",
           (long long)(e->opt->lease_ms > 0 ? e->opt->lease_ms : 60000));
  snprintf(lim, sizeof lim, "%zu", e->max_runs - e->n_runs < 128 ? e->max_runs - e->n_runs : 128);
  const char *p[4] = {e->opt->replica_id, lease, arr, lim};
  e->claiming = true;
  cpe_query(e, SQL_CLAIM, 4, p, on_claimed, NULL);
  free(arr);
}

static void on_sched(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  claim(arg);
}

void cpe_sched_kick(cp_engine *e) {
  if (e->sched_now && !e->closing) event_active(e->sched_now, 0, 0);
}

/* Renew the lease of every row this replica is running. */
static void on_lease(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cp_engine *e = arg;
  if (!e->n_runs) return;
  const char **ids = calloc(e->n_runs, sizeof *ids);
  if (!ids) kv_oom();
  size_t n = 0;
  for (cpe_run *r = e->runs; r; r = r->next)
    ids[n++] = r->work_id;
  char *arr = cpe_pg_array(ids, n);
  free(ids);
  char lease[32];
  snprintf(lease, sizeof lease, "%lld",
           (long long)(e->opt->lease_ms > 0 ? e->opt->lease_ms : 60000));
  const char *p[3] = {arr, e->opt->replica_id, lease};
  cpe_query(e,
            "UPDATE work_queue SET claimed_until = now() + $3::bigint * interval '1 millisecond' "
            "WHERE id = ANY($1::bigint[]) AND claimed_by = $2",
            3, p, NULL, NULL);
  free(arr);
}

void cpe_sched_init(cp_engine *e) {
  struct event_base *b = e->ctx->base;
  e->sched_now = event_new(b, -1, 0, on_sched, e);
  e->sched_timer = event_new(b, -1, EV_PERSIST, on_sched, e);
  struct timeval tv = {0, 500000}; /* due retries and resyncs */
  evtimer_add(e->sched_timer, &tv);
  e->lease_timer = event_new(b, -1, EV_PERSIST, on_lease, e);
  int64_t l = (e->opt->lease_ms > 0 ? e->opt->lease_ms : 60000) / 3;
  struct timeval tl = {l / 1000, (l % 1000) * 1000};
  evtimer_add(e->lease_timer, &tl);
}

void cpe_sched_free(cp_engine *e) {
  while (e->runs) {
    release(e, e->runs->work_id, e->runs->work_version, 0, e->runs->attempts, "shutdown");
    run_free(e->runs);
  }
  if (e->sched_now) event_free(e->sched_now);
  if (e->sched_timer) event_free(e->sched_timer);
  if (e->lease_timer) event_free(e->lease_timer);
  e->sched_now = e->sched_timer = e->lease_timer = NULL;
}
