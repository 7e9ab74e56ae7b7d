/*
 * koreo/kube_ops.h: the "kube operations" interface, the only way Koreo
 * evaluation talks to Kubernetes (spec 5.2, 5.3, 5.6, 5.8).
 *
 * Evaluation never calls out.  A ResourceFunction reconcile *yields* a
 * kube_request (get / create / patch / delete) and is resumed later with a
 * kube_response (see eval.h: koreo_run).  Whoever answers decides how:
 *   - the FunctionTest mock API of spec 7.3 (core/ftest),
 *   - the in-memory cluster below (koreoctl run --dry-run, tests),
 *   - the agent's kube client, the control plane's dispatcher.
 * A synchronous responder is a kube_ops table; koreo_run_sync() (eval.h)
 * drives a run with one.
 *
 * Plural (REST resource name) resolution: a request carries the plural
 * when it is known (apiConfig.plural, or a built-in kind, see
 * kube_builtin_type); otherwise `plural` is NULL and the responder resolves
 * it by API discovery with the query of kube_plural_query(), answering
 * KUBE_STATUS_KIND_UNKNOWN when discovery does not know the kind (the core
 * turns that into spec 5.2's PermFail) and reporting the plural it used in
 * kube_response.plural.  Caching discovery results is the responder's job.
 */
#ifndef KOREO_KUBE_OPS_H
#define KOREO_KUBE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kube_verb {
  KUBE_GET = 0,    /* read one object by name (spec 5.3) */
  KUBE_CREATE = 1, /* POST `body` (spec 5.6) */
  KUBE_PATCH = 2,  /* JSON merge patch with `body` (application/merge-patch+json, spec 5.8) */
  KUBE_DELETE = 3, /* DELETE with server-default propagation, no body (spec 5.4, 5.8) */
} kube_verb;

/* "get", "create", "patch", "delete". */
const char *kube_verb_name(kube_verb v);

/* One request.  All pointers are owned by the request (strings malloc'ed,
 * `body` a kv reference) and freed by kube_request_clear; a request handed
 * out by a run stays valid until the run is answered for it or freed. */
typedef struct kube_request {
  uint64_t id; /* unique within the run that issued it (1, 2, ...) */
  kube_verb verb;
  char *api_version; /* "v1", "apps/v1", "storage.example.com/v1" */
  char *kind;        /* "Deployment" */
  char *plural;      /* REST resource name, NULL when unknown (see above) */
  bool namespaced;   /* the type's scope as far as Koreo knows it */
  char *ns;          /* namespace, NULL for a cluster-scoped request */
  char *name;        /* object name (non-empty) */
  kv *body;          /* CREATE: the full object; PATCH: the merge-patch body
                        (directives stripped, last-applied annotation set,
                        spec 5.10); NULL for GET and DELETE */
} kube_request;

void kube_request_clear(kube_request *r);
/* A deep copy (new strings, shared body reference). */
kube_request kube_request_copy(const kube_request *r);

typedef enum kube_status {
  KUBE_STATUS_OK = 0,       /* success */
  KUBE_STATUS_NOT_FOUND,    /* 404 / no such object */
  KUBE_STATUS_CONFLICT,     /* 409 (CREATE: already exists) */
  KUBE_STATUS_MULTIPLE,     /* GET matched more than one object */
  KUBE_STATUS_KIND_UNKNOWN, /* plural lookup: discovery does not know the kind */
  KUBE_STATUS_SERVER_ERROR, /* any other HTTP error status (`http_code` set) */
  KUBE_STATUS_FAILURE,      /* no answer: network error, timeout, ... */
} kube_status;

/* "ok", "not-found", "conflict", "multiple", "kind-unknown",
 * "server-error", "failure". */
const char *kube_status_name(kube_status s);

/* One answer.  The responder fills it; the run takes what it owns. */
typedef struct kube_response {
  kube_status status;
  int http_code;     /* HTTP status when there was one, else 0 */
  kv *object;        /* owned reference or NULL: GET → the object;
                        CREATE/PATCH → the object as stored (optional);
                        DELETE → NULL or the object (ignored) */
  char plural[128];  /* the plural used when the request had none ("" else) */
  char message[512]; /* error text for the non-OK statuses (what/why) */
} kube_response;

void kube_response_clear(kube_response *r);

/* A synchronous responder: `call` answers `req` into `resp` (zeroed by the
 * caller) before returning.  It must not keep `req` pointers. */
typedef struct kube_ops {
  void *ctx;
  void (*call)(void *ctx, const kube_request *req, kube_response *resp);
} kube_ops;

/* --- REST types ------------------------------------------------------------
 * Built-in Kubernetes kinds (spec 5.2: "known to the client library"):
 * for those, the built-in plural and scope are used and apiConfig.plural /
 * apiConfig.namespaced are ignored.  Returns true and sets *plural (static
 * text) and *namespaced when (api_version, kind) is built-in. */
bool kube_builtin_type(const char *api_version, const char *kind, const char **plural,
                       bool *namespaced);

/* The discovery query of spec 5.2: "<Kind>" when api_version is "v1",
 * else "<Kind>.<apiVersion>" (e.g. "Bucket.storage.example.com/v1").
 * Returns a malloc'ed string. */
char *kube_plural_query(const char *api_version, const char *kind);

/* --- in-memory cluster (core/eval/memcluster.c) ----------------------------
 * A tiny API server kept in memory, for `koreoctl run --dry-run` and tests.
 * Objects are keyed by (apiVersion, kind, namespace, name).  CREATE
 * conflicts when the key exists, otherwise stores the body with
 * metadata.uid ("memcluster-<n>"), metadata.resourceVersion (a counter as
 * text), metadata.generation 1 and metadata.creationTimestamp (a fixed
 * clock: 2024-01-01T00:00:00Z + the number of writes, in seconds) filled in
 * when absent; PATCH applies the body as a JSON merge patch (RFC 7386:
 * maps merge recursively, null deletes, everything else replaces) and
 * bumps resourceVersion (and generation when `spec` changed); DELETE
 * removes.  Plurals: the built-in table, then the CRDs seeded with
 * kube_memcluster_put (a CustomResourceDefinition teaches its group,
 * versions, plural and scope), then lower-case kind + "s" when
 * `strict_kinds` is off (the default); with strict_kinds on an unknown
 * kind answers KUBE_STATUS_KIND_UNKNOWN.  Every write is journaled. */
typedef struct kube_memcluster kube_memcluster;

kube_memcluster *kube_memcluster_new(void);
void kube_memcluster_free(kube_memcluster *mc);
void kube_memcluster_set_strict_kinds(kube_memcluster *mc, bool on);

/* Seed or replace an object (borrowed; must have apiVersion, kind and
 * metadata.name).  Returns 0, or -1 with a message in err (errlen bytes). */
int kube_memcluster_put(kube_memcluster *mc, const kv *object, char *err, size_t errlen);

/* The object at a key (new reference) or NULL.  `ns` NULL or "" for
 * cluster-scoped objects. */
kv *kube_memcluster_get(const kube_memcluster *mc, const char *api_version, const char *kind,
                        const char *ns, const char *name);

/* Every stored object, in creation order (new list reference). */
kv *kube_memcluster_objects(const kube_memcluster *mc);

/* Apply a JSON merge patch (RFC 7386) onto `target` directly (the same
 * rule PATCH uses; also what a host uses to write a trigger's status).
 * Returns 0 or -1 (with err) when no object has that key. */
int kube_memcluster_merge_patch(kube_memcluster *mc, const char *api_version, const char *kind,
                                const char *ns, const char *name, const kv *patch, char *err,
                                size_t errlen);

/* The journal of writes answered since the last call, then cleared: a list
 * of maps {"verb": "create"|"patch"|"delete", "apiVersion", "kind",
 * "namespace" (when set), "name", "status": kube_status_name(...),
 * "body": <request body, create/patch only>}.  New reference. */
kv *kube_memcluster_take_journal(kube_memcluster *mc);

/* The responder table for this cluster (ctx = mc). */
kube_ops kube_memcluster_ops(kube_memcluster *mc);

/* RFC 7386 JSON merge patch of `patch` onto `target` (both borrowed; a
 * non-map patch replaces).  Returns a new reference. */
kv *kube_merge_patch(const kv *target, const kv *patch);

#ifdef __cplusplus
}
#endif
#endif
