/*
 * agent/cpmode.c: control-plane mode of koreo-agent (agent/cpmode.h).
 */
#include "cpmode.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "session.h"
#include "session_watch.h"
#include "standalone.h"

typedef struct cp {
  ksw *watcher;
} cp;

static void on_message(ksession *s, const kframe_envelope *env, void *arg) {
  (void)s;
  cp *c = arg;
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET) {
    size_t n = ksw_apply(c->watcher, env->watch_set);
    agent_log(AGENT_INFO, "WatchSet generation %llu: watching %zu kinds",
              (unsigned long long)env->watch_set->generation, n);
    return;
  }
  agent_log(AGENT_WARN, "control plane sent %s: not handled by this agent build (dropped)",
            kframe_body_name(env->body_case));
}

static void on_state(ksession *s, bool up, const char *msg, void *arg) {
  (void)s;
  cp *c = arg;
  if (up) {
    agent_log(AGENT_INFO, "control plane session up (%s)", msg);
    if (c->watcher) ksw_snapshot(c->watcher);
  } else {
    agent_log(AGENT_WARN, "control plane session down: %s (reconnecting)", msg);
  }
}

static void on_signal(evutil_socket_t sig, short what, void *ud) {
  (void)what;
  agent_log(AGENT_INFO, "signal %d: shutting down", (int)sig);
  event_base_loopexit(ud, NULL);
}

int agent_cp_run(struct event_base *base, const agent_cp_opts *o) {
  const char *colon = o->server ? strrchr(o->server, ':') : NULL;
  int port = colon ? atoi(colon + 1) : 0;
  if (!colon || colon == o->server || port <= 0 || port > 65535) {
    fprintf(stderr, "koreo-agent: --server needs HOST:PORT, not '%s'\n",
            o->server ? o->server : "");
    return 2;
  }
  if (!o->cluster || !o->state_dir) {
    fprintf(stderr, "koreo-agent: control-plane mode needs --cluster-name and --state-dir\n");
    return 2;
  }
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(colon - o->server), o->server);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8443 */
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = 0;
  }
  kube_config *cfg = NULL;
  kube_error ke = {0};
  if (kube_config_load(o->kubeconfig, o->context, &cfg, &ke) != 0) {
    agent_log(AGENT_ERROR, "kube configuration: %s", ke.message);
    kube_error_clear(&ke);
    return 1;
  }
  kube_client *kc = kube_client_new(base, cfg, NULL, &ke);
  if (!kc) {
    agent_log(AGENT_ERROR, "kube client: %s", ke.message);
    kube_error_clear(&ke);
    kube_config_free(cfg);
    return 1;
  }
  cp c = {0};
  ksession_opts so = {.tls = {.host = host,
                              .port = port,
                              .cluster = o->cluster,
                              .state_dir = o->state_dir,
                              .bootstrap_token = o->bootstrap_token,
                              .ca_file = o->ca_file,
                              .agent_version = "0.1.0"},
                      .on_message = on_message,
                      .on_state = on_state,
                      .arg = &c};
  ktls_err err = {{0}};
  int rc = 0;
  ksession *s = ksession_new(base, &so, &err);
  if (!s) {
    agent_log(AGENT_ERROR, "%s", err.msg);
    rc = 1;
  } else {
    c.watcher = ksw_new(base, kc, s, 0);
    agent_log(AGENT_INFO, "control-plane mode: cluster %s, server %s", o->cluster, o->server);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    ksw_free(c.watcher);
    ksession_free(s);
  }
  kube_client_free(kc);
  kube_config_free(cfg);
  return rc;
}
