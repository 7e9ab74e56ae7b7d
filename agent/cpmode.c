/*
 * agent/cpmode.c: control-plane mode of koreo-agent (agent/cpmode.h):
 * dispatches the control plane's messages (WatchSet to the trigger
 * watches, DefinitionPush/ApplyRequest/StatusUpdate to agent/cp_work.c),
 * fills each Hello with the cached definition hashes, and runs autonomous
 * mode: when the session has been down for a grace period (--autonomy-
 * after, default three heartbeat intervals) the cached current definition
 * set runs with the standalone engine (agent/standalone.h, its own kube
 * client and watches), writing status itself; every run is reported
 * (agent/cp_work.h kcw_report_autonomous) through the outbox; the engine
 * stops as soon as the session is back.
 */
#include "cpmode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cp_work.h"
#include "koreo/value.h"
#include "session.h"
#include "session_watch.h"
#include "standalone.h"

struct agent_cp {
  struct event_base *base;
  agent_cp_opts o;
  kube_config *cfg;
  kube_client *kc;
  ksession *s;
  ksw *watcher;
  kcw *work;
  char *caps[2];
  struct event *grace;          /* autonomy: armed when the session goes down */
  agent_standalone *autonomous; /* the engine running on its own, or NULL */
};
typedef agent_cp cp;

static void on_message(ksession *s, const kframe_envelope *env, void *arg) {
  (void)s;
  cp *c = arg;
  switch (env->body_case) {
  case KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET: {
    size_t n = ksw_apply(c->watcher, env->watch_set);
    agent_log(AGENT_INFO, "WatchSet generation %llu: watching %zu kinds",
              (unsigned long long)env->watch_set->generation, n);
    return;
  }
  case KOREO__AGENT__V1__ENVELOPE__BODY_DEFINITION_PUSH:
    kcw_definition_push(c->work, env->definition_push);
    return;
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST:
    kcw_apply_request(c->work, env->apply_request, env->sequence);
    return;
  case KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE:
    kcw_status_update(c->work, env->status_update);
    return;
  case KOREO__AGENT__V1__ENVELOPE__BODY_ERROR:
    agent_log(env->error->fatal ? AGENT_ERROR : AGENT_WARN,
              "control plane reports error %d: %s (about sequence %llu)", (int)env->error->code,
              env->error->message, (unsigned long long)env->error->related_sequence);
    return;
  default:
    agent_log(AGENT_WARN, "control plane sent %s: not expected from a control plane (dropped)",
              kframe_body_name(env->body_case));
  }
}

static void fill_hello(Koreo__Agent__V1__Hello *h, void *arg) {
  cp *c = arg;
  if (c->work)
    h->n_cached_definition_hashes = kcw_cached_hashes(c->work, &h->cached_definition_hashes);
  h->n_capabilities = c->caps[1] ? 2 : 1;
  h->capabilities = c->caps;
}

static void on_auto_run(void *arg, const agent_run_report *r) {
  cp *c = arg;
  kcw_report_autonomous(c->work, r);
}

/* The grace period is over and the control plane is still away: run the
 * cached current definition set with the standalone engine. */
static void on_grace(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  cp *c = arg;
  if (c->autonomous || (c->s && ksession_connected(c->s))) return;
  kv *docs = kcw_current_documents(c->work);
  if (!kv_len(docs)) {
    agent_log(AGENT_WARN, "control plane unreachable, but no definitions are cached: "
                          "autonomous mode not started");
    kv_unref(docs);
    return;
  }
  agent_standalone_opts so = {.documents = docs,
                              .kube_config = c->cfg,
                              .run_timeout_ms = (int)c->o.apply_timeout_ms,
                              .on_run = on_auto_run,
                              .on_run_arg = c};
  char err[512];
  c->autonomous = agent_standalone_new(c->base, &so, err, sizeof err);
  if (c->autonomous)
    agent_log(AGENT_WARN,
              "control plane unreachable: autonomous mode started with definition set "
              "generation %llu (%zu documents)",
              (unsigned long long)kcw_generation(c->work), kv_len(docs));
  else
    agent_log(AGENT_ERROR, "autonomous mode: %s", err);
  kv_unref(docs);
}

static void on_state(ksession *s, bool up, const char *msg, void *arg) {
  cp *c = arg;
  if (up) {
    agent_log(AGENT_INFO, "control plane session up (%s)", msg);
    if (c->grace) evtimer_del(c->grace);
    if (c->autonomous) { /* the control plane is in charge again */
      agent_standalone_free(c->autonomous);
      c->autonomous = NULL;
      agent_log(AGENT_INFO, "control plane back: autonomous mode stopped");
    }
    if (c->watcher) ksw_snapshot(c->watcher);
  } else {
    agent_log(AGENT_WARN, "control plane session down: %s (reconnecting)", msg);
    if (c->grace && !c->autonomous && !evtimer_pending(c->grace, NULL)) {
      long ms = c->o.autonomy_after_ms > 0 ? c->o.autonomy_after_ms : 3 * ksession_heartbeat_ms(s);
      struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
      evtimer_add(c->grace, &tv);
    }
  }
}

agent_cp *agent_cp_new(struct event_base *base, const agent_cp_opts *o, int *exit_code) {
  *exit_code = 2;
  /* --server HOST:PORT[,HOST:PORT...]: the first, then the other replicas */
  char first[300];
  const char *comma = o->server ? strchr(o->server, ',') : NULL;
  snprintf(first, sizeof first, "%.*s", comma ? (int)(comma - o->server) : 299,
           o->server ? o->server : "");
  const char *colon = strrchr(first, ':');
  int port = colon ? atoi(colon + 1) : 0;
  if (!colon || colon == first || port <= 0 || port > 65535) {
    fprintf(stderr, "koreo-agent: --server needs HOST:PORT[,HOST:PORT...], not '%s'\n",
            o->server ? o->server : "");
    return NULL;
  }
  if (!o->cluster || !o->state_dir) {
    fprintf(stderr, "koreo-agent: control-plane mode needs --cluster-name and --state-dir\n");
    return NULL;
  }
  *exit_code = 1;
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(colon - first), first);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8443 */
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = 0;
  }
  kube_config *cfg = NULL;
  kube_error ke = {0};
  if (kube_config_load(o->kubeconfig, o->context, &cfg, &ke) != 0) {
    agent_log(AGENT_ERROR, "kube configuration: %s", ke.message);
    kube_error_clear(&ke);
    return NULL;
  }
  kube_client_options co = {.backoff_min_ms = 200, .backoff_max_ms = 5000};
  kube_client *kc = kube_client_new(base, cfg, &co, &ke);
  if (!kc) {
    agent_log(AGENT_ERROR, "kube client: %s", ke.message);
    kube_error_clear(&ke);
    kube_config_free(cfg);
    return NULL;
  }
  agent_cp *c = calloc(1, sizeof *c);
  if (!c) kv_oom();
  c->base = base;
  c->o = *o;
  c->cfg = cfg;
  c->kc = kc;
  c->caps[0] = "status-subresource";
  c->caps[1] = o->no_autonomy ? NULL : "autonomy";
  if (!o->no_autonomy) c->grace = evtimer_new(base, on_grace, c);
  char err[512];
  kcw_opts wo = {.state_dir = o->state_dir, .apply_timeout_ms = o->apply_timeout_ms};
  c->work = kcw_new(base, kc, &wo, err, sizeof err);
  if (!c->work) {
    agent_log(AGENT_ERROR, "%s", err);
    agent_cp_free(c);
    return NULL;
  }
  char *alts_buf = comma ? strdup(comma + 1) : NULL;
  const char *alts[16];
  size_t n_alts = 0;
  for (char *save = NULL, *t = alts_buf ? strtok_r(alts_buf, ",", &save) : NULL; t && n_alts < 16;
       t = strtok_r(NULL, ",", &save))
    alts[n_alts++] = t;
  ksession_opts so = {.tls = {.host = host,
                              .port = port,
                              .cluster = o->cluster,
                              .state_dir = o->state_dir,
                              .bootstrap_token = o->bootstrap_token,
                              .ca_file = o->ca_file,
                              .agent_version = "0.1.0",
                              .fill_hello = fill_hello,
                              .fill_hello_arg = c},
                      .alt_servers = alts,
                      .n_alt_servers = n_alts,
                      .on_message = on_message,
                      .on_state = on_state,
                      .arg = c};
  ktls_err terr = {{0}};
  c->s = ksession_new(base, &so, &terr);
  free(alts_buf);
  alts_buf = NULL;
  if (!c->s) {
    agent_log(AGENT_ERROR, "%s", terr.msg);
    agent_cp_free(c);
    return NULL;
  }
  kcw_attach(c->work, c->s);
  c->watcher = ksw_new(base, kc, c->s, 0);
  agent_log(AGENT_INFO, "control-plane mode: cluster %s, server %s", o->cluster, o->server);
  *exit_code = 0;
  return c;
}

void agent_cp_free(agent_cp *c) {
  if (!c) return;
  ksw_free(c->watcher);
  agent_standalone_free(c->autonomous);
  if (c->grace) event_free(c->grace);
  kcw_free(c->work);
  kube_client_free(c->kc); /* cancels what is in flight */
  ksession_free(c->s);
  kube_config_free(c->cfg);
  free(c);
}

bool agent_cp_ready(const agent_cp *c) {
  return (c->s && ksession_connected(c->s)) || c->autonomous;
}

char *agent_cp_metrics(const agent_cp *c) {
  const ksession_stats *ss = ksession_get_stats(c->s);
  const kcw_stats *ws = kcw_get_stats(c->work);
  char *auto_m = c->autonomous ? agent_standalone_metrics(c->autonomous) : NULL;
  char *m = kv_asprintf(
      "# HELP koreo_agent_connected 1 while the control-plane session is up.\n"
      "# TYPE koreo_agent_connected gauge\nkoreo_agent_connected %d\n"
      "# HELP koreo_agent_autonomous 1 while the agent reconciles on its own.\n"
      "# TYPE koreo_agent_autonomous gauge\nkoreo_agent_autonomous %d\n"
      "# TYPE koreo_agent_session_connects_total counter\nkoreo_agent_session_connects_total %u\n"
      "# TYPE koreo_agent_session_disconnects_total counter\n"
      "koreo_agent_session_disconnects_total %u\n"
      "# TYPE koreo_agent_outbox_pending gauge\nkoreo_agent_outbox_pending %zu\n"
      "# TYPE koreo_agent_messages_received_total counter\n"
      "koreo_agent_messages_received_total %llu\n"
      "# TYPE koreo_agent_duplicates_dropped_total counter\n"
      "koreo_agent_duplicates_dropped_total %llu\n"
      "# TYPE koreo_agent_definition_generation gauge\nkoreo_agent_definition_generation %llu\n"
      "# TYPE koreo_agent_applies_total counter\nkoreo_agent_applies_total %llu\n"
      "# TYPE koreo_agent_applies_from_cache_total counter\n"
      "koreo_agent_applies_from_cache_total %llu\n"
      "# TYPE koreo_agent_applies_unknown_definition_total counter\n"
      "koreo_agent_applies_unknown_definition_total %llu\n"
      "# TYPE koreo_agent_status_updates_total counter\nkoreo_agent_status_updates_total %llu\n"
      "# TYPE koreo_agent_autonomous_runs_total counter\nkoreo_agent_autonomous_runs_total %llu\n"
      "%s",
      ksession_connected(c->s) ? 1 : 0, c->autonomous ? 1 : 0, ss->connects, ss->disconnects,
      ksession_pending(c->s), (unsigned long long)ss->delivered, (unsigned long long)ss->duplicates,
      (unsigned long long)kcw_generation(c->work), (unsigned long long)ws->applies,
      (unsigned long long)ws->applies_from_cache, (unsigned long long)ws->applies_unknown,
      (unsigned long long)ws->status_updates, (unsigned long long)ws->autonomous_runs,
      auto_m ? auto_m : "");
  free(auto_m);
  return m;
}
