/*
 * agent/cpmode.h: koreo-agent's control-plane mode runner (issue 5): wires
 * the session (agent/session.h) to the kube client and the trigger watches
 * (agent/session_watch.h) on one libevent loop.  Handles WatchSet
 * (watches, TriggerEvent, TriggerSnapshot after each connect); the other
 * control-plane messages (DefinitionPush, ApplyRequest, StatusUpdate) are
 * logged as not handled by this build.
 */
#ifndef KOREO_AGENT_CPMODE_H
#define KOREO_AGENT_CPMODE_H

struct event_base;

typedef struct agent_cp_opts {
  const char *server;          /* --server HOST:PORT */
  const char *cluster;         /* --cluster-name */
  const char *bootstrap_token; /* --bootstrap-token (first start only) */
  const char *state_dir;       /* --state-dir */
  const char *ca_file;         /* --ca-file (optional) */
  const char *kubeconfig;      /* --kubeconfig (NULL: kubectl's order) */
  const char *context;         /* --context */
} agent_cp_opts;

/* agent_cp_run: run control-plane mode on `base` until SIGINT/SIGTERM.
 * Returns the process exit code: 0 after a signal, 2 on bad flags (message
 * on stderr), 1 when the kube configuration or the state dir cannot be
 * used. */
int agent_cp_run(struct event_base *base, const agent_cp_opts *o);

#endif
