/*
 * agent/status_write.h: writing Koreo's status onto a trigger object (spec
 * 6.11), shared by standalone mode (agent/standalone.c) and control-plane
 * mode (agent/cp_work.c, StatusUpdate): the `status` part through the
 * status subresource when the trigger's kind serves one (and the rest,
 * e.g. metadata.annotations, as a merge patch of the object), else the
 * whole patch as one merge patch, with field manager "koreo".
 */
#ifndef KOREO_AGENT_STATUS_WRITE_H
#define KOREO_AGENT_STATUS_WRITE_H

#include "koreo/kube.h"
#include "koreo/value.h"

/* Called once when every write of one agent_status_write finished:
 * `first_err` is NULL when all succeeded, else the first failure (borrowed,
 * valid during the call; code KUBE_ERR_CANCELLED when the client was freed
 * first). */
typedef void (*agent_status_done)(void *arg, const kube_error *first_err);

/* agent_status_write: write `patch` ({metadata?, status?}, borrowed) onto
 * the trigger api_version/kind ns/name (ns NULL or "" for cluster-scoped)
 * with `kc` (borrowed).  The status subresource is used when the client's
 * discovery cache says the kind serves one.  `done` runs exactly once from
 * the loop (also when nothing could be sent: then with the error).
 * Returns 0, or -1 when the client is being freed (done is never called). */
int agent_status_write(kube_client *kc, const char *api_version, const char *kind, const char *ns,
                       const char *name, const kv *patch, agent_status_done done, void *arg);

#endif
