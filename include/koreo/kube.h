/*
 * koreo/kube.h: the Kubernetes API client (libevent's HTTP client over
 * OpenSSL, on the caller's libevent loop).
 *
 * Four parts, one header:
 *  - configuration: a kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config;
 *    current or named context) or the in-cluster service account;
 *  - typed errors decoded from the API's `Status` objects;
 *  - discovery: apiVersion + kind -> resource plural, scope, verbs and
 *    subresources, cached per group/version and refreshed on a miss;
 *  - requests (get, list, create, update, merge/JSON/strategic patch,
 *    server-side apply, delete, subresources) and watches (resume from the
 *    last resourceVersion, bookmarks, re-list on 410 Gone, reconnect with
 *    capped exponential backoff and jitter), all asynchronous on ONE
 *    libevent loop that the caller owns: any number of requests and
 *    watches share the loop and a small pool of kept-alive HTTP/1.1
 *    connections over TLS (core/kube/transport.c; each running watch holds
 *    one connection of its own).  HTTP/2 is not spoken: a libevent client
 *    is what keeps the agent small (docs/agent-footprint.md).
 *
 * Threading: a client belongs to the thread that runs its event loop.
 * Callbacks are always called from the loop, never from inside the call
 * that submitted the work.  Values (`kv`) handed to callbacks are borrowed
 * for the duration of the callback: kv_ref() what you keep.
 *
 * API reference: https://kubernetes.io/docs/reference/using-api/api-concepts/
 * (verbs, resourceVersion semantics, watch, bookmarks, 410 Gone, pagination,
 * patch content types, server-side apply, Status objects).
 */
#ifndef KOREO_KUBE_H
#define KOREO_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/kube_ops.h"
#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* ======================================================================
 * Errors
 * ====================================================================== */

typedef enum kube_err_code {
  KUBE_OK = 0,
  /* answers of the API server (HTTP status, refined by Status.reason) */
  KUBE_ERR_BAD_REQUEST,         /* 400 BadRequest */
  KUBE_ERR_UNAUTHORIZED,        /* 401 Unauthorized */
  KUBE_ERR_FORBIDDEN,           /* 403 Forbidden */
  KUBE_ERR_NOT_FOUND,           /* 404 NotFound */
  KUBE_ERR_METHOD_NOT_ALLOWED,  /* 405 MethodNotAllowed */
  KUBE_ERR_NOT_ACCEPTABLE,      /* 406 NotAcceptable */
  KUBE_ERR_ALREADY_EXISTS,      /* 409 AlreadyExists */
  KUBE_ERR_CONFLICT,            /* 409 Conflict (stale resourceVersion, apply conflicts) */
  KUBE_ERR_GONE,                /* 410 Expired/Gone (resourceVersion too old) */
  KUBE_ERR_TOO_LARGE,           /* 413 RequestEntityTooLarge */
  KUBE_ERR_UNSUPPORTED_MEDIA,   /* 415 UnsupportedMediaType */
  KUBE_ERR_INVALID,             /* 422 Invalid: see causes for the fields */
  KUBE_ERR_TOO_MANY_REQUESTS,   /* 429 TooManyRequests: see retry_after */
  KUBE_ERR_INTERNAL,            /* 500 InternalError */
  KUBE_ERR_SERVER_TIMEOUT,      /* reason ServerTimeout (500 family) */
  KUBE_ERR_SERVICE_UNAVAILABLE, /* 503 ServiceUnavailable */
  KUBE_ERR_TIMEOUT,             /* 504 / reason Timeout: the server gave up */
  KUBE_ERR_HTTP,                /* any other non-2xx answer */
  /* client side */
  KUBE_ERR_TRANSPORT, /* connection refused/reset, TLS, client timeout, ... */
  KUBE_ERR_CONFIG,    /* unusable kubeconfig or in-cluster environment */
  KUBE_ERR_NO_KIND,   /* discovery: the API does not serve this apiVersion/kind */
  KUBE_ERR_USAGE,     /* a malformed request (missing name, wrong verb...) */
  KUBE_ERR_DECODE,    /* the server's answer is not the JSON it should be */
  KUBE_ERR_CANCELLED, /* the client was freed before the answer came */
} kube_err_code;

/* One entry of Status.details.causes (Invalid answers): all owned, may be
 * NULL. `field` is the path the server names ("spec.replicas"). */
typedef struct kube_cause {
  char *reason; /* "FieldValueInvalid", "FieldValueRequired", ... */
  char *field;
  char *message;
} kube_cause;

/* A typed error.  Zero-initialise; release with kube_error_clear(). */
typedef struct kube_error {
  kube_err_code code;
  int http_status;    /* 0 when no HTTP answer was received */
  char reason[64];    /* Status.reason ("NotFound", ...) or "" */
  char message[512];  /* what went wrong, where and why, for a person */
  double retry_after; /* seconds the server asked to wait (Retry-After or
                         details.retryAfterSeconds); < 0 when none */
  kube_cause *causes; /* owned array */
  size_t n_causes;
} kube_error;

/* Release the causes and reset `e` to KUBE_OK (retry_after -1). */
void kube_error_clear(kube_error *e);
/* Deep copy (dst is overwritten without being cleared first). */
void kube_error_copy(kube_error *dst, const kube_error *src);
/* Set code and a printf-formatted message (previous causes released). */
void kube_error_set(kube_error *e, kube_err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The constant name of a code: "NotFound", "Conflict", "Transport", ... */
const char *kube_err_name(kube_err_code code);
/* The code for an HTTP status and an optional Status.reason (the reason
 * wins where it is known, as client-go's ReasonForError does). 2xx -> OK. */
kube_err_code kube_err_code_for(int http_status, const char *reason);
/* Fill `e` from an answer: the HTTP status, the decoded body (a `Status`
 * object, or NULL/anything else when the server sent none) and the
 * Retry-After header text (NULL when absent; delta-seconds only).  The
 * message is Status.message when present, otherwise "<status> <reason>". */
void kube_error_from_status(kube_error *e, int http_status, const kv *body,
                            const char *retry_after_header);
/* True for the errors a caller may retry as they are (429, 500
 * ServerTimeout, 503, 504, transport). */
bool kube_err_retryable(kube_err_code code);

/* ======================================================================
 * Configuration
 * ====================================================================== */

/* What a client needs to reach one API server.  All strings owned. */
typedef struct kube_config {
  char *server;     /* "https://127.0.0.1:6443" (no trailing slash) */
  char *namespace_; /* the context's namespace, "default" when unset */
  char *context;    /* context name ("" for in-cluster) */
  char *cluster;    /* cluster name */
  char *user;       /* user name */
  char *source;     /* the file (or "in-cluster") it came from */
  /* TLS: CA bundle as PEM data (from certificate-authority-data or the
   * file certificate-authority, read at load time), client certificate
   * and key as PEM data; insecure skips server verification. */
  char *ca_pem;
  size_t ca_len;
  char *cert_pem;
  size_t cert_len;
  char *key_pem;
  size_t key_len;
  bool insecure;
  char *tls_server_name; /* name to verify instead of the server's host */
  /* Bearer token: `token` as read; when `token_file` is set the client
   * re-reads it whenever the file changes (service-account rotation). */
  char *token;
  char *token_file;
} kube_config;

/* Load a kubeconfig.  `path`: a file, or a colon-separated list merged as
 * kubectl merges KUBECONFIG (the first definition of a name wins, the first
 * current-context wins); NULL means $KUBECONFIG, then ~/.kube/config.
 * `context`: a context name, NULL for current-context.  Relative file paths
 * inside a kubeconfig are resolved against its directory.  Refused with
 * KUBE_ERR_CONFIG and a message that says why: an `exec` credential plugin
 * or an `auth-provider`, a missing context/cluster/user, a server that is
 * not https (http is accepted only for 127.0.0.1/localhost), unreadable
 * files, YAML errors (with line and column).  Returns 0 and a new config in
 * *out, or -1 with `err` filled. */
int kube_config_load_kubeconfig(const char *path, const char *context, kube_config **out,
                                kube_error *err);
/* In-cluster configuration: KUBERNETES_SERVICE_HOST and _PORT (IPv6 hosts
 * bracketed), and `sa_dir`/token, ca.crt and namespace (sa_dir NULL means
 * /var/run/secrets/kubernetes.io/serviceaccount).  The token file is kept
 * in token_file so the client re-reads it when rotated. 0 or -1 + err. */
int kube_config_load_in_cluster(const char *sa_dir, kube_config **out, kube_error *err);
/* kubectl's order: an explicit `path` (--kubeconfig), else $KUBECONFIG,
 * else in-cluster when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
 * 0 or -1 + err. */
int kube_config_load(const char *path, const char *context, kube_config **out, kube_error *err);
void kube_config_free(kube_config *cfg);

/* ======================================================================
 * Discovery
 * ====================================================================== */

enum {
  KUBE_VERB_GET = 1u << 0,
  KUBE_VERB_LIST = 1u << 1,
  KUBE_VERB_WATCH = 1u << 2,
  KUBE_VERB_CREATE = 1u << 3,
  KUBE_VERB_UPDATE = 1u << 4,
  KUBE_VERB_PATCH = 1u << 5,
  KUBE_VERB_DELETE = 1u << 6,
  KUBE_VERB_DELETECOLLECTION = 1u << 7,
};

/* One served resource (from an APIResourceList).  All strings owned by the
 * discovery cache; valid until the client (or cache) is freed, even across
 * refreshes (entries are retired, not freed, while the cache lives). */
typedef struct kube_resource_info {
  char *group;       /* "" for the core group */
  char *version;     /* "v1" */
  char *api_version; /* "v1" or "apps/v1" */
  char *kind;        /* "Deployment" */
  char *resource;    /* "deployments" */
  char *singular;    /* "deployment" (may be "") */
  bool namespaced;
  unsigned verbs;      /* KUBE_VERB_* */
  bool has_status;     /* the "status" subresource is served */
  bool has_scale;      /* the "scale" subresource is served */
  char **subresources; /* every served subresource name */
  size_t n_subresources;
  char **short_names;
  size_t n_short_names;
} kube_resource_info;

typedef struct kube_discovery kube_discovery;

/* An empty cache (the client owns one; tests and tools may use their own). */
kube_discovery *kube_discovery_new(void);
void kube_discovery_free(kube_discovery *d);
/* Replace what the cache knows about one group/version with an
 * APIResourceList body (`list`: {"groupVersion", "resources": [...]}).
 * Sub-resource entries ("deployments/status") are folded into their parent.
 * `now_ms` stamps the entry (monotonic ms).  0, or -1 + err (DECODE) when
 * the body is not an APIResourceList. */
int kube_discovery_add_list(kube_discovery *d, const kv *list, int64_t now_ms, kube_error *err);
/* Record that a group/version is not served (404). */
void kube_discovery_add_missing(kube_discovery *d, const char *api_version, int64_t now_ms);
/* Look up a kind in a group/version ("apps/v1", "Deployment"), or with
 * kind NULL and `resource` set, a resource plural.  Borrowed or NULL. */
const kube_resource_info *kube_discovery_find(const kube_discovery *d, const char *api_version,
                                              const char *kind, const char *resource);
/* Whether the cache holds an answer for this group/version at all. */
bool kube_discovery_knows(const kube_discovery *d, const char *api_version);
/* Forget everything (the next lookups fetch again). */
void kube_discovery_invalidate(kube_discovery *d);

/* ======================================================================
 * The client
 * ====================================================================== */

typedef struct kube_client kube_client;

typedef struct kube_client_options {
  int request_timeout_ms; /* whole-request timeout; 0 -> 30000 */
  int connect_timeout_ms; /* 0 -> 10000 */
  int max_retries;        /* automatic retries of 429/503 answers that
                             carry Retry-After, and of idempotent requests
                             that failed in transport; 0 -> 3, < 0 -> none */
  int retry_after_cap_ms; /* longest Retry-After honoured; 0 -> 10000 */
  int backoff_min_ms;     /* watch reconnect and retry backoff; 0 -> 200 */
  int backoff_max_ms;     /* its cap; 0 -> 30000 */
  int watch_timeout_s;    /* timeoutSeconds asked for each watch call;
                             0 -> random in [300, 600) as client-go does */
  int max_connections;    /* connections to the server for requests (a
                             burst queues beyond this); each running watch
                             gets one more; 0 -> 32.  Idle ones beyond 2
                             close after 2 s, the rest after 90 s */
  const char *user_agent; /* NULL -> "koreo/0.1" (copied) */
} kube_client_options;

/* A client for `cfg` (copied) on the caller's loop `base` (borrowed: it
 * must outlive the client).  NULL + err (CONFIG) when the transport cannot be
 * set up with that configuration. */
kube_client *kube_client_new(struct event_base *base, const kube_config *cfg,
                             const kube_client_options *opts, kube_error *err);
/* Stop every watch and request.  Pending request callbacks are called with
 * KUBE_ERR_CANCELLED (they must not use the client); watch callbacks are not
 * called again.  Never call from inside one of the client's callbacks. */
void kube_client_free(kube_client *c);
struct event_base *kube_client_base(const kube_client *c);
const kube_config *kube_client_config(const kube_client *c);
kube_discovery *kube_client_discovery(kube_client *c);

/* Counters, for tests and metrics. */
typedef struct kube_client_stats {
  uint64_t requests;    /* HTTP requests sent (retries and discovery included) */
  uint64_t retries;     /* automatic retries */
  uint64_t discoveries; /* discovery fetches */
  uint64_t connections; /* connections opened (TCP, and TLS for https) */
  uint64_t open;        /* connections open now (idle ones included) */
  uint64_t in_flight;   /* HTTP transfers running now (watches included) */
} kube_client_stats;
kube_client_stats kube_client_get_stats(const kube_client *c);

/* Run the client's loop until *done becomes true or `timeout_ms` passed
 * (< 0: no limit).  Returns 0 when done, -1 on timeout.  For programs and
 * tests that drive the loop themselves; never call from a loop callback. */
int kube_client_run_until(kube_client *c, const bool *done, int timeout_ms);

/* ======================================================================
 * Requests
 * ====================================================================== */

typedef enum kube_op {
  KUBE_OP_GET,
  KUBE_OP_LIST,
  KUBE_OP_CREATE,
  KUBE_OP_UPDATE,          /* PUT the whole object (resourceVersion => precondition) */
  KUBE_OP_PATCH_MERGE,     /* application/merge-patch+json (RFC 7386) */
  KUBE_OP_PATCH_JSON,      /* application/json-patch+json (RFC 6902) */
  KUBE_OP_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
  KUBE_OP_APPLY,           /* server-side apply: application/apply-patch+yaml */
  KUBE_OP_DELETE,
} kube_op;

/* One request.  Strings and the body are borrowed by kube_send (copied
 * before it returns).  Address the resource by `api_version` + `kind`
 * (resolved through discovery) or by `api_version` + `resource` (a plural:
 * no discovery; namespaced when `namespace_` is set).  For create, update
 * and apply, api_version/kind/namespace/name default from the body's
 * apiVersion/kind/metadata.  A namespaced resource with no namespace uses
 * the configuration's for single objects, and all namespaces for list. */
typedef struct kube_req {
  kube_op op;
  const char *api_version;
  const char *kind;
  const char *resource;
  const char *namespace_;
  const char *name;
  const char *subresource; /* "status", "scale", ... or NULL */
  const kv *body;          /* object (create/update/apply), patch document
                              (map for merge/strategic, list for JSON patch) */
  /* list (and get: resource_version) */
  const char *label_selector;
  const char *field_selector;
  int64_t limit; /* page size; 0 = server default */
  const char *continue_token;
  const char *resource_version;
  /* writes */
  const char *field_manager; /* required by apply; NULL otherwise */
  bool force;                /* apply: take ownership of conflicting fields */
  bool dry_run;              /* dryRun=All */
  /* delete */
  const char *propagation_policy; /* "Foreground", "Background", "Orphan" */
  const char *precondition_uid;
  const char *precondition_resource_version;
  int64_t grace_period_s; /* seconds, sent only when has_grace_period */
  bool has_grace_period;
} kube_req;

/* The answer.  In a callback it is borrowed: the callback may take
 * `object` (set r->object = NULL after keeping the reference).  From
 * kube_send_sync the caller owns it: release with kube_result_clear(). */
typedef struct kube_result {
  kube_error err;                     /* err.code == KUBE_OK on success */
  int http_status;                    /* 0 when no HTTP answer */
  kv *object;                         /* decoded body: the object, the List, or the
                                         Status of a delete or failure; NULL if none */
  const kube_resource_info *resource; /* what was addressed (borrowed,
                         lives as long as the client); NULL when not known */
} kube_result;

void kube_result_clear(kube_result *r);

typedef void (*kube_result_fn)(void *ud, kube_result *r);

/* Send a request.  The callback is called exactly once, from the loop,
 * with the answer (also for errors found before anything is sent, such as
 * an unknown kind).  429 and 503 answers with Retry-After, and transport
 * failures of GET/LIST, are retried automatically (kube_client_options.
 * max_retries) before the callback sees them.  Returns 0, or -1 when the
 * client is being freed (the callback is then never called). */
int kube_send(kube_client *c, const kube_req *req, kube_result_fn cb, void *ud);

/* kube_send and wait for the answer on the client's loop (run only from
 * outside the loop).  Fills *out (owned by the caller).  Returns 0 on
 * success, -1 with out->err set otherwise. */
int kube_send_sync(kube_client *c, const kube_req *req, kube_result *out);

/* A request to any path of the server ("/version", "/healthz", kubesim's
 * "/kubesim/faults"...): `method` is "GET", "POST", "PUT", "PATCH" or
 * "DELETE"; `path` starts with '/' and carries its query; `body` (may be
 * NULL) is sent as application/json.  Answered as kube_send answers
 * (same retries); r->object is the decoded body when it is JSON, NULL
 * otherwise.  Returns 0, or -1 when the client is being freed. */
int kube_send_raw(kube_client *c, const char *method, const char *path, const kv *body,
                  kube_result_fn cb, void *ud);
int kube_send_raw_sync(kube_client *c, const char *method, const char *path, const kv *body,
                       kube_result *out);

/* LIST every page (following metadata.continue with `limit` per page, 500
 * when req->limit is 0) and answer one List whose items are all pages'
 * items and whose metadata.resourceVersion is the first page's.  A 410 on
 * a continue token restarts the listing from the beginning (once). */
int kube_list_all(kube_client *c, const kube_req *req, kube_result_fn cb, void *ud);
int kube_list_all_sync(kube_client *c, const kube_req *req, kube_result *out);

/* Resolve apiVersion + kind through the discovery cache (fetching and
 * refreshing on a miss).  The callback gets r->resource (or the error
 * NO_KIND); r->object is NULL. */
int kube_resolve(kube_client *c, const char *api_version, const char *kind, kube_result_fn cb,
                 void *ud);

/* The URL path (and query) a request would use, for an already resolved
 * resource: "/apis/apps/v1/namespaces/ns/deployments/web/status?..."
 * malloc'ed; NULL + err (USAGE) when the request cannot be addressed. */
char *kube_req_path(const kube_resource_info *ri, const kube_req *req, const char *def_ns,
                    kube_error *err);

/* ======================================================================
 * Watches
 * ====================================================================== */

typedef enum kube_watch_event_type {
  KUBE_WATCH_ADDED,
  KUBE_WATCH_MODIFIED,
  KUBE_WATCH_DELETED,
  KUBE_WATCH_BOOKMARK, /* only the resourceVersion moved on */
  KUBE_WATCH_SYNCED,   /* the initial list (or a re-list) is fully delivered */
  KUBE_WATCH_ERROR,    /* something failed; the watch recovers by itself
                          (reconnect, re-list) unless stopped */
} kube_watch_event_type;

typedef struct kube_watch_event {
  kube_watch_event_type type;
  kv *object;                   /* borrowed: the object (ADDED/MODIFIED/
                                   DELETED/BOOKMARK), NULL otherwise */
  const char *resource_version; /* the watch's position after this event */
  const kube_error *err;        /* KUBE_WATCH_ERROR: what went wrong */
  bool from_list;               /* the event was made from a (re-)list, not
                                   received on a watch stream */
} kube_watch_event;

typedef void (*kube_watch_fn)(void *ud, const kube_watch_event *ev);

typedef struct kube_watch_opts {
  const char *api_version; /* + kind (discovery) or + resource (plural) */
  const char *kind;
  const char *resource;
  const char *namespace_; /* NULL or "": all namespaces */
  const char *label_selector;
  const char *field_selector;
  /* Resume point.  NULL: list first (ADDED for every object, then SYNCED)
   * and watch from the list's resourceVersion.  Set: watch from there
   * without listing (events after that version only). */
  const char *resource_version;
  bool no_bookmarks; /* do not ask for allowWatchBookmarks */
  int timeout_s;     /* timeoutSeconds per watch call; 0 -> client option */
  /* Drop metadata.managedFields from every object before it is cached and
   * delivered (field-manager bookkeeping is most of a typical object's
   * size and a watcher that does not do server-side apply conflict
   * analysis never reads it). */
  bool drop_managed_fields;
  /* Keep objects compactly: the cached copy is rebuilt with its map keys
   * and short strings (up to 24 bytes) shared between all the objects of
   * the watch, and its lists and maps sized exactly.  Values are equal;
   * only memory differs (a few KiB less per typical object). */
  bool share_strings;
  /* Keep every cached object as its compact JSON text (kv_json_write,
   * flags 0, after drop_managed_fields if set) packed in one buffer of the
   * watch's own pages, coded against a reference object of the watch
   * (runs it shares with it become 4-byte back-references) and a fixed
   * dictionary of Kubernetes member names, instead of a value tree: for
   * objects alike (one trigger kind) about 1/15 of the memory of a
   * shared-string tree, and no heap fragmentation; the object
   * is parsed again when asked for (kube_watch_get_copy, kube_watch_get)
   * or when a re-list delivers it as DELETED.  share_strings is then
   * ignored.  Events deliver the same objects as without it. */
  bool compact_json;
} kube_watch_opts;

typedef struct kube_watch kube_watch;

/* Start a watch.  Events come in order; after a dropped stream the watch
 * reconnects from the last resourceVersion it saw (after a capped
 * exponential backoff with jitter when the stream failed rather than
 * ended); a `410 Gone` (as an HTTP answer or an ERROR event), or a
 * "Too large resource version" answer (a server restored behind us), makes
 * it re-list, and it then delivers the difference between what it had
 * delivered and the new list as ADDED / MODIFIED / DELETED events
 * (from_list = true) followed by SYNCED.  The watch keeps the last object
 * of every key it delivered (kube_watch_get).  Returns NULL only when the
 * client is being freed or opts do not name a resource (USAGE, in err if
 * non-NULL). */
kube_watch *kube_watch_start(kube_client *c, const kube_watch_opts *opts, kube_watch_fn cb,
                             void *ud, kube_error *err);
/* Stop: no callback is called after it returns.  Safe from inside the
 * watch's own callback. */
void kube_watch_stop(kube_watch *w);
/* The resourceVersion the watch would resume from ("" before the first). */
const char *kube_watch_resource_version(const kube_watch *w);
/* The last delivered object for namespace/name (namespace NULL or "" for
 * cluster-scoped), borrowed, or NULL.  With compact_json the object is
 * parsed from the cached text and stays valid until the next
 * kube_watch_get or kube_watch_trim on this watch or its stop (use
 * kube_watch_get_copy to keep it longer). */
kv *kube_watch_get(const kube_watch *w, const char *namespace_, const char *name);
/* The same as a new reference (the caller unrefs it), or NULL; with
 * compact_json a fresh parse of the cached text each time. */
kv *kube_watch_get_copy(const kube_watch *w, const char *namespace_, const char *name);
/* compact_json watches: the cached object's compact JSON text (exactly
 * kv_json_write(object, 0)), NUL-terminated, its length in *len if len is
 * non-NULL; borrowed until the next kube_watch_get_json or kube_watch_trim
 * on this watch, or its stop.  NULL when absent, or when the watch is not
 * compact_json. */
const char *kube_watch_get_json(const kube_watch *w, const char *namespace_, const char *name,
                                size_t *len);
size_t kube_watch_count(const kube_watch *w);
/* For idle moments (e.g. before malloc_trim): a compact_json watch
 * rewrites its cache without the records of replaced and deleted objects
 * (otherwise done once they are a quarter of it), and every watch drops
 * the object its last kube_watch_get returned. */
void kube_watch_trim(kube_watch *w);

typedef struct kube_watch_stats {
  uint64_t events; /* ADDED/MODIFIED/DELETED received on streams */
  uint64_t bookmarks;
  uint64_t connects; /* watch calls made */
  uint64_t relists;  /* lists made, the initial one included */
  uint64_t gone;     /* resume points refused: 410 Gone, or "Too large
                        resource version" (both make it re-list) */
  uint64_t failures; /* streams that failed (transport or HTTP error) */
} kube_watch_stats;
kube_watch_stats kube_watch_get_stats(const kube_watch *w);

/* ======================================================================
 * The core's "kube operations" (koreo/kube_ops.h) on a live API server
 * ====================================================================== */

/* Answer one kube_request of a Koreo run (eval.h) through the client:
 * GET -> get, CREATE -> create, PATCH -> JSON merge patch, DELETE ->
 * delete (server-default propagation), with fieldManager "koreo" on
 * writes.  The type is addressed by req->plural when the run knows it,
 * otherwise through discovery (the plural used is reported in
 * resp->plural; a kind discovery does not know answers
 * KUBE_STATUS_KIND_UNKNOWN).  Statuses: OK; NOT_FOUND (404); CONFLICT
 * (409, AlreadyExists included); SERVER_ERROR (any other HTTP error,
 * http_code set); FAILURE (no answer: transport, timeout).  `req` is
 * copied before the call returns.  The callback gets a response it owns
 * (hand it to koreo_run_answer, or kube_response_clear it).  Returns 0, or
 * -1 when the client is being freed (the callback is then never called). */
typedef void (*kube_answer_fn)(void *ud, uint64_t id, kube_response *resp);
int kube_client_answer(kube_client *c, const kube_request *req, kube_answer_fn cb, void *ud);

/* A synchronous kube_ops responder on the client (ctx = c) for
 * koreo_run_sync(): each call runs the client's loop until the answer
 * comes, so use it only from outside the loop (CLI, tests). */
kube_ops kube_client_ops(kube_client *c);

/* ======================================================================
 * Small helpers on objects
 * ====================================================================== */

/* metadata.<field> of an object as a C string (borrowed) or NULL. */
const char *kube_obj_meta(const kv *obj, const char *field);
/* "apps/v1" -> group "apps", version "v1"; "v1" -> "", "v1".  Writes into
 * the caller's buffers (truncated to their size). */
void kube_split_api_version(const char *api_version, char *group, size_t gsz, char *version,
                            size_t vsz);

#ifdef __cplusplus
}
#endif
#endif
