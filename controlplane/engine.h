/*
 * controlplane/engine.h: the control plane's running half (issue 6 item 4,
 * 5): agent sessions, trigger intake, the work queue scheduler, Workflow
 * runs with ResourceFunction steps dispatched to agents, status updates and
 * the execution history.
 *
 * - Definitions: every current definition (view current_definitions) is
 *   loaded into a kdef_registry (cp_options.namespaces priority); NOTIFY
 *   koreo_definitions (sent by the API after a change) reloads them, pushes
 *   the new set to connected agents (DefinitionPush by content hash, only
 *   the bodies an agent lacks), sends a new WatchSet when the trigger kinds
 *   changed, and re-queues the triggers of Workflows whose definitions (or
 *   the functions they use) changed.
 * - Agents: the ktls_server (agent/tls.h) on --agent-listen with the pki
 *   CA; bootstrap tokens are checked against bootstrap_tokens (single use,
 *   expiry, cluster) and consumed atomically in the database; sessions
 *   update clusters (online, heartbeat, replica, agent_version); a cluster
 *   whose heartbeats stop for three intervals is marked offline with a
 *   reason (checked every 5 s, by any replica).  CP -> agent sequences
 *   continue from Hello.last_acked_sequence; the agent's highest processed
 *   sequence is kept in clusters.agent_seq for HelloAck.
 * - Triggers: TriggerEvent/TriggerSnapshot upsert triggers (skipping an
 *   unchanged resourceVersion) and enqueue (cluster, trigger, Workflow)
 *   rows (coalesced: one row per trigger and Workflow, version bumped).
 * - Scheduler: claims due rows for clusters whose session this replica
 *   holds (FOR UPDATE SKIP LOCKED, lease), runs the Workflow (core
 *   koreo_run with remote_resource_functions), sends each ResourceFunction
 *   step as an ApplyRequest and resumes on the ApplyResult, then sends the
 *   StatusUpdate and reschedules (Retry delay, resync, capped backoff on
 *   failures; spec 6.11), and records the run (repeat-counting identical
 *   runs) and its steps in batches.
 */
#ifndef KOREO_CP_ENGINE_H
#define KOREO_CP_ENGINE_H

#include <stdbool.h>

#include "cp.h"

/* Start the engine on ctx (borrowed; must outlive it): agent listener,
 * definition load, scheduler timers.  NULL + err when the listener cannot
 * bind. */
cp_engine *cp_engine_new(cp_ctx *ctx, char *err, size_t errlen);
void cp_engine_free(cp_engine *e);

/* The agent listener's port (tests bind port 0). */
int cp_engine_agent_port(const cp_engine *e);

/* Ready: definitions loaded and the database reachable. */
bool cp_engine_ready(const cp_engine *e);

/* The engine's metrics in Prometheus text format (malloc'ed): agents
 * connected, runs by outcome, step latency histogram, queue claims. */
char *cp_engine_metrics(const cp_engine *e);

/* The current definition documents (a kv list of maps, new reference), for
 * the API's validation of a new batch against what is stored. */
struct kv;
struct kv *cp_engine_current_sources(const cp_engine *e);

#endif
