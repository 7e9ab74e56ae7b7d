/*
 * agent/cpmode.h: koreo-agent's control-plane mode runner (issue 5): wires
 * the session (agent/session.h) to the kube client, the trigger watches
 * (agent/session_watch.h) and the control plane's work (agent/cp_work.h:
 * DefinitionPush, ApplyRequest, StatusUpdate) and autonomous mode on one
 * libevent loop (the caller's: main.c runs it, with the health endpoints).
 */
#ifndef KOREO_AGENT_CPMODE_H
#define KOREO_AGENT_CPMODE_H

#include <stdbool.h>

struct event_base;

typedef struct agent_cp_opts {
  const char *server;          /* --server HOST:PORT */
  const char *cluster;         /* --cluster-name */
  const char *bootstrap_token; /* --bootstrap-token (first start only) */
  const char *state_dir;       /* --state-dir */
  const char *ca_file;         /* --ca-file (optional) */
  const char *kubeconfig;      /* --kubeconfig (NULL: kubectl's order) */
  const char *context;         /* --context */
  bool no_autonomy;            /* --no-autonomy */
  long autonomy_after_ms;      /* --autonomy-after; 0 = 3 heartbeat intervals */
  long apply_timeout_ms;       /* --run-timeout: ApplyRequest default deadline; 0 = 30 s */
} agent_cp_opts;

typedef struct agent_cp agent_cp;

/* agent_cp_new: start control-plane mode on `base` (borrowed; the caller
 * runs the loop): kube client, definition cache (agent/cp_work.h), the
 * session (dialing at once) and the trigger watches.  `o` is copied (its
 * strings borrowed: they must outlive the agent, e.g. argv).  NULL on
 * failure with *exit_code 2 for bad flags (message on stderr) or 1 when
 * the kube configuration or the state dir cannot be used (logged). */
agent_cp *agent_cp_new(struct event_base *base, const agent_cp_opts *o, int *exit_code);
/* Stop everything (autonomous runs and applies in flight are abandoned;
 * the outbox stays on disk). */
void agent_cp_free(agent_cp *c);
/* /readyz: the session is up, or the agent runs autonomously. */
bool agent_cp_ready(const agent_cp *c);
/* /metrics text (Prometheus), malloc'd: session, work and, while
 * autonomous, the standalone engine's counters. */
char *agent_cp_metrics(const agent_cp *c);

#endif
