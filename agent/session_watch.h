/*
 * agent/session_watch.h: the trigger watches of control-plane mode (issue
 * 5, docs/agent-protocol.md WatchSet / TriggerEvent / TriggerSnapshot).
 * Applies a WatchSet (one kube watch per kind: starts the new kinds, stops
 * the dropped ones), turns object changes into TriggerEvents sent through
 * the session (coalesced per object over a short window; status-only
 * changes and Koreo's own annotations ignored with standalone mode's
 * fingerprint, agent_trigger_fingerprint) and sends a TriggerSnapshot of
 * every known trigger on demand (after each (re)connect).  While the
 * session is down only the latest change per trigger is kept (in memory:
 * the snapshot after the reconnect carries the current objects, and a
 * trigger deleted meanwhile is sent as a DELETED TriggerEvent right after
 * it), so a long outage does not fill the outbox with stale changes.
 */
#ifndef KOREO_AGENT_SESSION_WATCH_H
#define KOREO_AGENT_SESSION_WATCH_H

#include "koreo/kube.h"
#include "session.h"

typedef struct ksw ksw;

/* A watcher sending through `s` with the kube client `kc` (both borrowed,
 * must outlive it).  coalesce_ms: window in which repeated changes of one
 * object become one TriggerEvent (0 = 50). */
ksw *ksw_new(struct event_base *base, kube_client *kc, ksession *s, long coalesce_ms);
/* Apply a WatchSet (ignored when its generation is not newer than the
 * applied one).  Returns the number of kinds watched afterwards. */
size_t ksw_apply(ksw *w, const Koreo__Agent__V1__WatchSet *ws);
/* Queue a TriggerSnapshot (one part) of every trigger currently known
 * (pending ADDED/MODIFIED changes are covered by it), then the DELETED
 * events of triggers deleted while the session was down. */
void ksw_snapshot(ksw *w);
/* TriggerEvents sent so far (statistics). */
uint64_t ksw_events_sent(const ksw *w);
void ksw_free(ksw *w);

#endif
