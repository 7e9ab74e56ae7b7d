/*
 * agent/cp_work.h: the work a control plane gives koreo-agent (issue 5,
 * docs/agent-protocol.md "DefinitionPush", "ApplyRequest", "StatusUpdate"):
 *
 *  - DefinitionPush: definition documents cached by content hash in
 *    <state-dir>/definitions/<hex>.json (0600, written to a temporary file
 *    and renamed), the current set (DefinitionPush.current_hashes and
 *    .generation) persisted in <state-dir>/definitions/current.json, and a
 *    kdef_registry rebuilt from the current set (diagnostics logged).
 *    The cached hashes go into every Hello (cached_definition_hashes).
 *  - ApplyRequest: koreo_run_resource_function with that registry on the
 *    kube client, asynchronously, with the request's owner, inputs,
 *    location and deadline; answered with an ApplyResult through the
 *    session.  A repeated request_id is answered from a bounded result
 *    cache without re-applying; an unknown function hash gets an
 *    ApplyResult Retry ("not cached") plus an Error UNKNOWN_DEFINITION.
 *  - StatusUpdate: conditions (final, as given), status.state,
 *    status.koreo and the koreo.dev/managed-resources annotation written to
 *    the trigger (agent/status_write.h), retried with backoff on failure.
 *
 * Everything runs on the caller's event_base thread.
 */
#ifndef KOREO_AGENT_CP_WORK_H
#define KOREO_AGENT_CP_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/definition.h"
#include "koreo/kube.h"
#include "session.h"

typedef struct kcw kcw;

typedef struct kcw_opts {
  const char *state_dir; /* required; definitions/ is created inside (0700) */
  long apply_timeout_ms; /* deadline of an ApplyRequest without timeout_ms; 0 = 30000 */
  size_t result_cache;   /* ApplyResults remembered by request_id; 0 = 1024 */
  long status_retry_ms;  /* first delay after a failed status write; 0 = 1000 */
} kcw_opts;

/* kcw_new: load the definition cache and the persisted current set from
 * state_dir (building the registry), sending nothing yet.  `kc` is
 * borrowed and must outlive it.  NULL + message in err (errlen bytes) when
 * the definitions directory cannot be created. */
kcw *kcw_new(struct event_base *base, kube_client *kc, const kcw_opts *o, char *err, size_t errlen);
/* Where results go (borrowed; set once the session exists, before the
 * first message is handled). */
void kcw_attach(kcw *w, ksession *s);
void kcw_free(kcw *w);

/* Handlers of the three control-plane messages (borrowed; `sequence` is
 * the envelope's, for Error.related_sequence). */
void kcw_definition_push(kcw *w, const Koreo__Agent__V1__DefinitionPush *p);
void kcw_apply_request(kcw *w, const Koreo__Agent__V1__ApplyRequest *r, uint64_t sequence);
void kcw_status_update(kcw *w, const Koreo__Agent__V1__StatusUpdate *u);

/* The cached definition hashes ("sha256:<hex>") for Hello: *out points to
 * an array of n borrowed strings valid until the next push or kcw_free. */
size_t kcw_cached_hashes(const kcw *w, char ***out);
/* The registry of the current set (borrowed; changes on a push; NULL until
 * a set is known) and its generation. */
const kdef_registry *kcw_registry(const kcw *w);
uint64_t kcw_generation(const kcw *w);

/* The documents of the current set (a new list reference; empty when no
 * set is known): what autonomous mode runs. */
struct kv *kcw_current_documents(const kcw *w);

/* Report one run the agent made on its own while disconnected (agent/
 * cpmode.c's autonomous mode): a StatusUpdate agent -> control plane with
 * run_id "auto-<ms>-<n>" and an ApplyResult (autonomous = true) for every
 * ResourceFunction step (each forEach item), queued in the persisted
 * outbox until the control plane is back. */
struct agent_run_report;
void kcw_report_autonomous(kcw *w, const struct agent_run_report *r);

/* Counters (tests, /metrics). */
typedef struct kcw_stats {
  uint64_t definitions_cached, pushes, applies, applies_from_cache, applies_unknown;
  uint64_t status_updates, status_writes, status_write_errors;
  uint64_t autonomous_runs;
} kcw_stats;
const kcw_stats *kcw_get_stats(const kcw *w);

#endif
