/*
 * controlplane/engine_internal.h: what engine.c (definitions, agent
 * sessions, trigger intake, metrics) and engine_run.c (scheduler, Workflow
 * runs, status updates, execution history) share.  Private to the engine.
 */
#ifndef KOREO_CP_ENGINE_INTERNAL_H
#define KOREO_CP_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "koreo/definition.h"
#include "koreo/eval.h"
#include "koreo/frame.h"
#include "koreo/value.h"

struct event;
struct bufferevent;

/* One current definition as stored (current_definitions, not deleted). */
typedef struct cpe_def {
  char *kind, *ns, *name, *hash;
  kv *doc;      /* the source document */
  char *source; /* compact JSON of doc (DefinitionPush body) */
  long long generation;
} cpe_def;

/* One load of the definitions; runs keep theirs across a reload. */
typedef struct cpe_defset {
  int refs;
  kdef_registry *reg;
  cpe_def *defs;
  size_t n;
  uint64_t generation; /* DefinitionPush.generation */
  kv *sources;         /* list of the documents */
  /* "<apiVersion> <kind>" -> list of "<ns>/<name>" of the Workflows whose
   * crdRef names that kind */
  kv *by_kind;
  char *watch_sig; /* the WatchSet kinds as text, to notice changes */
} cpe_defset;

typedef struct cpe_sess cpe_sess;
typedef struct cpe_run cpe_run;

/* One connected agent (a cluster's session held by this replica). */
struct cpe_sess {
  cp_engine *e;
  char *cluster;
  struct bufferevent *bev; /* owned by the ktls_server */
  kframe_outbox *ob;       /* CP -> agent reliable messages not yet acked */
  kframe_inbox in;         /* agent -> CP: highest sequence received */
  uint64_t processed;      /* highest received sequence whose writes are queued */
  uint64_t acked;          /* highest sequence whose writes committed (our ack) */
  bool seq_write;          /* an agent_seq update is in flight */
  int64_t last_rx_ms;      /* monotonic */
  struct event *kick;      /* deferred flush after HelloAck */
  char *snapshot_id;       /* TriggerSnapshot in progress: keys seen so far */
  kv *snap_keys;           /* list of [apiVersion, kind, ns, name] */
  uint64_t watch_generation_sent;
  cpe_sess *next;  /* every session of the engine */
  cpe_sess *hnext; /* the same hash bucket */
};

struct cp_engine {
  cp_ctx *ctx;
  const cp_options *opt;
  struct ktls_server *srv;
  cpe_defset *defs; /* NULL until the first load */
  bool loading, reload_again;
  uint64_t def_generation, watch_generation;
  cpe_sess *sessions;
  size_t n_sessions;
  cpe_sess **buckets; /* sessions by cluster name (hash of the name) */
  size_t n_buckets;
  kv *agent_seq; /* cluster -> last agent sequence processed (clusters.agent_seq) */
  struct event *hb_timer, *offline_timer, *sched_timer, *lease_timer, *sched_now;
  bool claiming;
  cpe_run *runs;
  size_t n_runs, max_runs;
  int inflight; /* database queries in flight (the engine outlives them) */
  bool closing;
  /* metrics */
  unsigned long long runs_total[5], runs_recorded, runs_repeated, claims, claimed_rows;
  unsigned long long events, snapshots, apply_requests, apply_results, status_updates;
  unsigned long long registrations, registrations_refused, offline_marked;
  unsigned long long step_hist[10], step_count;
  double step_sum_s;
};

/* The engine's database query: like cpdb_query, but the callback gets the
 * engine and runs with e->closing set (res NULL, err "shutting down") when
 * the engine is being freed: callbacks then only release their arg. */
typedef void (*cpe_cb)(cp_engine *e, void *arg, PGresult *res, const char *err);
void cpe_query(cp_engine *e, const char *sql, int n, const char *const *params, cpe_cb cb,
               void *arg);

/* Monotonic and wall-clock milliseconds; ISO-8601 UTC now with
 * microseconds and "+00:00" (spec 6.11 condition timestamps). */
int64_t cpe_mono_ms(void);
int64_t cpe_wall_ms(void);
void cpe_iso_now(char out[40]);

/* PostgreSQL text[] literal of n strings (malloc'ed). */
char *cpe_pg_array(const char *const *items, size_t n);

cpe_sess *cpe_sess_find(cp_engine *e, const char *cluster);
/* Queue a reliable message to the agent and transmit it (copied). */
void cpe_sess_send(cpe_sess *s, const kframe_envelope *env);
/* The content hash of a current definition, NULL when unknown. */
const char *cpe_def_hash(const cpe_defset *d, const char *kind, const char *ns, const char *name);
void cpe_defset_unref(cpe_defset *d);

/* Count one ResourceFunction step latency (ApplyRequest to ApplyResult). */
void cpe_observe_step(cp_engine *e, double seconds);

/* engine_run.c */
void cpe_sched_init(cp_engine *e);
void cpe_sched_kick(cp_engine *e);
void cpe_sched_free(cp_engine *e);
/* An ApplyResult from `s` (borrowed). */
void cpe_apply_result(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__ApplyResult *r);
/* A StatusUpdate from `s`: the report of a run the agent did on its own
 * while disconnected (autonomous mode, issue 5 item 4): recorded in the
 * history as a run of replica "agent:<cluster>". */
void cpe_record_autonomous(cp_engine *e, cpe_sess *s, const Koreo__Agent__V1__StatusUpdate *u);
/* The session of `cluster` ended: abandon its runs (their work is released
 * and re-claimed when the agent is back). */
void cpe_runs_abort_cluster(cp_engine *e, const char *cluster);

#endif
