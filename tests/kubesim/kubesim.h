/*
 * tests/kubesim/kubesim.h: the internal interfaces of koreo-kubesim, the
 * Kubernetes API emulator the tests run clusters on.  One process, one
 * libevent loop: TLS connections (tls.c), a small HTTP/1.1 server
 * (http.c), the resource-type registry with discovery and OpenAPI
 * (types.c), the object store with resourceVersions, events and watches
 * (store.c), the REST handlers (api.c), selectors (select.c), patches
 * (patch.c), Table output (table.c), CRD schema validation (schema.c) and
 * small value helpers (util.c).  See tests/kubesim/README.md.
 */
#ifndef KOREO_KUBESIM_H
#define KOREO_KUBESIM_H

#include "koreo/json.h"
#include "koreo/value.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fault injection settings (see README: Fault injection). */
typedef struct ks_faults {
  int latency_ms;
  double error_rate;       /* 0..1 */
  int error_codes[4];      /* chosen uniformly among the non-zero ones */
  int retry_after;         /* seconds, for 429/503 */
  int drop_watch_after_ms; /* 0: never */
} ks_faults;

typedef struct ks_server ks_server;
typedef struct ks_conn ks_conn;
typedef struct ks_type ks_type;
typedef struct ks_watch ks_watch;

/* ===================================================================== util.c */

/* A new map holding the entries of `m` (references taken); `m` may be NULL
 * or a non-map (then the result is empty). */
kv *ku_map_copy(const kv *m);
/* A new map: `m` with `key` set to `val` (takes `val`).  `m` is unchanged. */
kv *ku_with(const kv *m, const char *key, kv *val);
/* A new map: `m` without `key`. */
kv *ku_without(const kv *m, const char *key);
/* Borrowed lookups that tolerate NULL and non-maps. */
kv *ku_get(const kv *m, const char *key);
const char *ku_str(const kv *m, const char *key);
/* Dotted path lookup ("metadata.name"); borrowed or NULL. */
kv *ku_path(const kv *m, const char *dotted);
/* A new value: `m` with the value at keys[0..n) set to `val` (takes
 * `val`); missing or non-map intermediate levels become maps. */
kv *ku_set_in(const kv *m, const char *const *keys, size_t n, kv *val);
/* A new value: `m` without the entry at keys[0..n) (unchanged copy if
 * absent). */
kv *ku_del_in(const kv *m, const char *const *keys, size_t n);
/* Deep copy of lists and maps (scalars shared). */
kv *ku_deep_copy(const kv *v);
/* Structural JSON equality (int 1 == double 1.0; maps order-insensitive). */
bool ku_json_equal(const kv *a, const kv *b);
/* Integer value of an int/uint/integral double; false otherwise. */
bool ku_as_int(const kv *v, int64_t *out);
/* A string value from a printf format. */
kv *ku_kvfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* asprintf that aborts on allocation failure. */
char *ku_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Current time: RFC 3339 UTC with seconds ("2024-01-02T03:04:05Z"). */
void ku_now_rfc3339(char out[32]);
/* Parse an RFC 3339 timestamp to Unix seconds; false when malformed. */
bool ku_parse_rfc3339(const char *s, int64_t *sec);
/* Milliseconds of a monotonic clock. */
uint64_t ku_mono_ms(void);
/* A random RFC 4122 version-4 UUID. */
void ku_uuid(char out[37]);
/* Random lowercase alphanumerics (generateName suffixes, tokens). */
void ku_rand_alnum(char *out, size_t n);
/* Standard base64 (with padding); malloc'ed.  ku_b64dec returns a
 * malloc'ed buffer or NULL when `s` is not valid base64. */
char *ku_b64(const void *p, size_t n);
unsigned char *ku_b64dec(const char *s, size_t n, size_t *outlen);
/* Serialise compactly; malloc'ed. */
char *ku_json(const kv *v, size_t *len);
/* A growing string buffer. */
typedef struct ku_buf {
  char *p;
  size_t n, cap;
} ku_buf;
void ku_buf_add(ku_buf *b, const char *s, size_t n);
void ku_buf_puts(ku_buf *b, const char *s);
void ku_buf_printf(ku_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Human age as kubectl prints it (apimachinery duration.HumanDuration). */
void ku_human_duration(int64_t seconds, char out[32]);
/* Percent-decode `n` bytes ('+' is a space when `plus`); malloc'ed. */
char *ku_urldecode(const char *s, size_t n, bool plus);

/* ===================================================================== status */

/* A metav1.Status failure: new reference.  `details` (taken, may be NULL)
 * is the Status.details map. */
kv *ks_status(int code, const char *reason, kv *details, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Status.details {name, group, kind} (group omitted when empty). */
kv *ks_details(const char *name, const char *group, const char *kind);
/* The HTTP code of a Status value. */
int ks_status_code(const kv *status);

/* ===================================================================== tls.c */

typedef struct ks_tls_opts {
  const char *cert_dir;                     /* load ca.crt/tls.crt/tls.key from here, or generate
                                               and save them here; NULL: generate in memory */
  const char *tls_cert, *tls_key, *ca_cert; /* given files (override) */
} ks_tls_opts;

/* Build the server SSL_CTX; `ca_pem_out` receives the CA certificate PEM
 * (malloc'ed) for the kubeconfig.  Returns NULL with a message on stderr. */
SSL_CTX *ks_tls_setup(const ks_tls_opts *o, char **ca_pem_out);

/* ===================================================================== http.c */

typedef struct ks_param {
  char *key, *val;
} ks_param;

typedef struct ks_req {
  char method[16];
  char *path;  /* percent-decoded path */
  char *query; /* raw query (may be "") */
  ks_param *params;
  size_t nparams;
  char **hdr_names, **hdr_vals; /* lower-cased names */
  size_t nhdrs;
  char *body; /* NUL-terminated */
  size_t body_len;
} ks_req;

/* A query parameter (last one wins) or NULL. */
const char *ks_param_get(const ks_req *r, const char *key);
/* A header value (case-insensitive name) or NULL. */
const char *ks_header(const ks_req *r, const char *name);

struct ks_conn {
  ks_server *srv;
  struct bufferevent *bev;
  int state; /* KS_C_* */
  ks_req req;
  size_t body_need;
  bool chunked_body;
  bool keep_alive;
  bool close_when_flushed;
  struct event *delay_ev;  /* fault latency */
  struct event *resume_ev; /* read on after a watch stream ended */
  ks_watch *watch;         /* when streaming a watch */
  ks_conn *next, *prev;
};
enum { KS_C_HEAD, KS_C_BODY, KS_C_BUSY, KS_C_STREAM, KS_C_CLOSING };

/* Start accepting on the server's listener (already bound). */
void ks_http_accept(ks_server *s, evutil_socket_t fd);
/* Write a complete response.  `ctype` may be NULL for no body type;
 * `extra_headers` are full "Name: value\r\n" lines or NULL. */
void ks_respond(ks_conn *c, int code, const char *ctype, const char *body, size_t len,
                const char *extra_headers);
/* A JSON response (value borrowed). */
void ks_respond_json(ks_conn *c, int code, const kv *v, const char *ctype);
/* A Status failure response (takes `status`). */
void ks_respond_status(ks_conn *c, kv *status);
/* Begin a chunked streaming response; then ks_stream_write per chunk. */
void ks_stream_begin(ks_conn *c, const char *ctype);
void ks_stream_write(ks_conn *c, const char *data, size_t len);
/* End the stream gracefully (terminating chunk) or abruptly (close). */
void ks_stream_end(ks_conn *c, bool graceful);
/* Close every connection (restart fault). */
void ks_http_close_all(ks_server *s);
/* Free a connection now. */
void ks_conn_free(ks_conn *c);
/* Continue reading pipelined requests after a delayed (latency fault)
 * response. */
void ks_conn_resume(ks_conn *c);

/* ===================================================================== types.c */

typedef struct ks_version {
  char *name;
  bool served, storage;
  kv *schema;  /* openAPIV3Schema (CRDs) or NULL */
  kv *columns; /* additionalPrinterColumns (CRDs) or NULL */
  bool status, scale;
  char *scale_spec, *scale_status, *scale_selector; /* JSON paths */
  kv *selectable;                                   /* selectableFields (CRDs) */
} ks_version;

typedef struct ks_entry {
  char *key; /* "ns/name" or "/name" */
  kv *obj;
  struct ks_entry *next;
} ks_entry;

typedef struct ks_table {
  ks_entry **b;
  size_t nb, n;
} ks_table;

struct ks_type {
  char *group, *kind, *plural, *singular, *list_kind;
  ks_version *versions;
  size_t nversions;
  bool namespaced;
  bool has_generation;
  bool is_crd;
  bool established;
  char **short_names;
  char **categories;
  char **field_labels;         /* extra supported field selector labels */
  const char *printer;         /* built-in printer id, or NULL (CRD columns) */
  const char *const *smp_keys; /* strategic merge keys: "path=key" pairs */
  kv *crd;                     /* owning CRD name for CRD types (string) */
  ks_table objs;
};

/* Register the built-in kinds. */
void ks_types_init(ks_server *s);
void ks_types_free(ks_server *s);
/* Lookups: by group + plural (version checked separately), by group +
 * kind.  NULL when unknown. */
ks_type *ks_type_find(ks_server *s, const char *group, const char *plural);
ks_type *ks_type_by_kind(ks_server *s, const char *group, const char *kind);
ks_version *ks_type_version(ks_type *t, const char *version);
/* The storage version name. */
const char *ks_type_storage(const ks_type *t);
/* "configmaps" or "deployments.apps" (messages). */
const char *ks_type_qualified(const ks_type *t, char buf[256]);
/* (Re)register or remove the kinds a CRD object declares; errors as a
 * Status (new reference) or NULL. */
kv *ks_types_apply_crd(ks_server *s, const kv *crd);
void ks_types_remove_crd(ks_server *s, const char *crd_name);
/* Validate a CRD's spec: a Status (422) or NULL. */
kv *ks_crd_validate(ks_server *s, const kv *crd, const kv *old);
/* Discovery documents (new references). */
kv *ks_discovery_api(ks_server *s);                         /* /api */
kv *ks_discovery_apis(ks_server *s);                        /* /apis */
kv *ks_discovery_group(ks_server *s, const char *group);    /* /apis/G or NULL */
kv *ks_discovery_resources(ks_server *s, const char *group, /* /api/v1, /apis/G/V */
                           const char *version);
kv *ks_discovery_aggregated(ks_server *s, bool core, bool v2beta1);
/* OpenAPI v3: the root index and one group-version document. */
kv *ks_openapi_root(ks_server *s);
kv *ks_openapi_gv(ks_server *s, const char *group, const char *version);

/* ===================================================================== builtin.c */

/* What the apiserver's registry strategy does to a built-in kind on create
 * (old NULL) or update: defaults into *obj (replaced, owned by the caller)
 * and validation.  Returns a Status (new reference, 4xx) or NULL. */
kv *ks_builtin_prepare(ks_server *s, ks_type *t, kv **obj, const kv *old, bool create);
/* The autoscaling/v1 Scale of `obj` (new reference) for version `v`. */
kv *ks_scale_get(const ks_type *t, const ks_version *v, const kv *obj);
/* `obj` with the replicas of `scale` set (and scale's resourceVersion as
 * the precondition): new reference, or NULL with *err (422) set. */
kv *ks_scale_set(const ks_type *t, const ks_version *v, const kv *obj, const kv *scale, kv **err);

/* ===================================================================== managed.c */

/* metadata.managedFields after a write of `obj` (old: the previous state or
 * NULL) by `manager` with `operation` ("Update": it takes the fields it
 * changed; "Apply": the entries ks_ssa computed are kept).  `subresource`
 * "status" or NULL.  New reference (a list). */
kv *ks_managed_fields(const kv *old, const kv *obj, const char *manager, const char *operation,
                      const char *api_version, const char *subresource);
/* Server-side apply of the configuration `applied` to `live` (NULL: the
 * object does not exist): the merged object with its managedFields (new
 * reference), or NULL with *err (409 Conflict listing the fields another
 * manager owns, unless `force`; 400 for a malformed configuration). */
kv *ks_ssa(ks_server *s, ks_type *t, const kv *live, const kv *applied, const char *manager,
           bool force, const char *api_version, kv **err);

/* ===================================================================== proto.c */

/* Decode a Kubernetes protobuf request body ("k8s\0" + runtime.Unknown) of
 * the kinds kubectl's typed clients create: the object as JSON-shaped
 * value (new reference), or NULL with `why` (wl bytes) saying what is not
 * supported. */
kv *ks_proto_decode(const char *body, size_t len, char *why, size_t wl);

/* ===================================================================== select.c */

typedef struct ks_sel ks_sel;
/* Parse a label selector; NULL result with *err set (Status 400) on error;
 * an empty string gives an empty selector (matches everything). */
ks_sel *ks_label_sel_parse(const char *text, kv **err);
/* Parse a field selector; `t` restricts the supported fields. */
ks_sel *ks_field_sel_parse(const char *text, const ks_type *t, kv **err);
/* Build a label selector from a metav1.LabelSelector value. */
ks_sel *ks_label_sel_from_value(const kv *sel, kv **err);
bool ks_label_sel_match(const ks_sel *sel, const kv *obj);
bool ks_field_sel_match(const ks_sel *sel, const kv *obj);
/* The exact metadata.name a field selector pins, or NULL. */
const char *ks_field_sel_name(const ks_sel *sel);
void ks_sel_free(ks_sel *sel);
/* True when the selector has no requirement. */
bool ks_sel_empty(const ks_sel *sel);
/* A selector value as the text form (for scale status.selector). */
char *ks_label_sel_text(const kv *labelselector);

/* ===================================================================== store.c */

enum { KS_EV_ADDED, KS_EV_MODIFIED, KS_EV_DELETED };

typedef struct ks_event {
  uint64_t rv;
  ks_type *t;
  int type;
  kv *obj; /* the object after the change (DELETED: its last state) */
  kv *old; /* before (MODIFIED), else NULL */
} ks_event;

struct ks_watch {
  ks_conn *conn;
  ks_type *t;
  char *version; /* served version of the stream */
  char *ns;      /* NULL: all namespaces */
  ks_sel *lsel, *fsel;
  bool table;
  bool bookmarks;
  bool table_headers_sent;
  uint64_t last_rv;
  struct event *timeout_ev;
  ks_watch *next, *prev;
};

void ks_table_init(ks_table *tb);
void ks_table_free(ks_table *tb);
kv *ks_table_get(const ks_table *tb, const char *key);
/* Insert or replace (takes `obj`). */
void ks_table_put(ks_table *tb, const char *key, kv *obj);
/* Remove; returns the removed object (caller owns) or NULL. */
kv *ks_table_del(ks_table *tb, const char *key);
/* All entries sorted by key; the array is malloc'ed, objects borrowed. */
ks_entry **ks_table_sorted(const ks_table *tb, size_t *n);
/* "ns/name" keys. */
void ks_key(char *buf, size_t n, const char *ns, const char *name);

/* Record a change: bumps nothing (the caller stamped resourceVersion with
 * ks_next_rv); appends to the event window and notifies watchers.  Takes
 * references on obj/old. */
void ks_emit(ks_server *s, ks_type *t, int type, kv *obj, kv *old, uint64_t rv);
uint64_t ks_next_rv(ks_server *s);
/* Start a watch on connection `c`; on failure responds itself. */
void ks_watch_start(ks_server *s, ks_conn *c, ks_watch *w, uint64_t from_rv, bool from_set,
                    bool initial_events, bool send_initial_bookmark);
void ks_watch_free(ks_server *s, ks_watch *w);
/* End every watch (optionally abruptly). */
void ks_watch_drop_all(ks_server *s, bool graceful);
/* Clear the event window (events before now become 410 Gone). */
void ks_events_reset(ks_server *s);
/* Oldest resourceVersion still watchable from (watch from rv >= floor). */
uint64_t ks_events_floor(ks_server *s);
/* Periodic bookmarks. */
void ks_bookmarks_tick(ks_server *s);
/* State file: load at start, save (debounced) after changes and at exit. */
bool ks_state_load(ks_server *s, const char *path);
bool ks_state_save(ks_server *s, const char *path);
void ks_state_dirty(ks_server *s);

/* ===================================================================== api.c */

/* Handle one parsed request (routing, auth, faults): responds on `c`, now
 * or after the latency fault's delay. */
void ks_api_handle(ks_conn *c);
/* Delete (t, ns, name) as a DELETE request would: preconditions (uid,
 * resourceVersion), propagation "Background" | "Foreground" | "Orphan" |
 * NULL, finalizers.  Returns a Status error (new reference) or NULL with
 * *result the Success Status (deleted now) or the object (pending). */
kv *ks_obj_delete(ks_server *s, ks_type *t, const char *ns, const char *name,
                  const char *propagation, const kv *preconditions, bool dry_run, kv **result);
/* Convert a stored object to a served version (new reference). */
kv *ks_obj_for_version(const ks_type *t, const kv *obj, const char *version);
/* Store a new state `obj` (taken) of the stored object `old` (GC and the
 * namespace lifecycle): new resourceVersion, watch event; removes the
 * object when it is being deleted and has no finalizers left. */
void ks_obj_commit(ks_server *s, ks_type *t, const kv *old, kv *obj);
/* Create the namespaces every cluster starts with (those missing). */
void ks_seed(ks_server *s);

/* ===================================================================== gc.c */

/* Run a garbage-collection pass (ownerReferences, foreground/orphan
 * finalizers, terminating namespaces) soon on the loop; coalesced. */
void ks_gc_schedule(ks_server *s);
/* The admin endpoint /kubesim/...: seg[0..n) are the path segments. */
void ks_admin_handle(ks_conn *c, char **seg, size_t n);
/* Apply a faults document ({"latencyMs", "errorRate", "errorCodes",
 * "retryAfterSeconds", "dropWatchAfterMs"}, fields optional) to *f;
 * false with `why` set (and *f unchanged) when malformed. */
bool ks_faults_set(ks_faults *f, const kv *doc, char *why, size_t whylen);

/* ===================================================================== patch.c */

/* RFC 7386 JSON merge patch: new value. */
kv *ks_merge_patch(const kv *target, const kv *patch);
/* RFC 6902 JSON patch: new value, or NULL with *err (Status) set. */
kv *ks_json_patch(const kv *target, const kv *ops, kv **err);
/* Strategic merge patch with the type's merge keys: new value or NULL with
 * *err set. */
kv *ks_strategic_patch(const ks_type *t, const kv *target, const kv *patch, kv **err);
/* Merge key of the list at the dotted schema path ("spec.template.spec
 * .containers") for a built-in type, or NULL (atomic list). */
const char *ks_smp_merge_key(const ks_type *t, const char *path);

/* ===================================================================== table.c */

/* A meta.k8s.io/v1 Table of `objs` (borrowed) for the type/version. */
kv *ks_table_of(ks_server *s, const ks_type *t, const char *version, kv *const *objs, size_t n,
                bool headers, const char *include_object);

/* Evaluate the JSONPath subset of printer columns (`.a.b`, `['a']`,
 * `[n]`, `[*]`, `[?(@.k=="v")]`, optional `{}`/`$`) against obj: a new list
 * of the (borrowed-then-referenced) results. */
kv *ks_jsonpath(const kv *obj, const char *path);

/* ===================================================================== schema.c */

/* Validate `obj` against a CRD structural schema and apply defaults:
 * returns the defaulted object (new reference) or NULL with `*err` (422
 * Invalid, causes with field paths) set.  `kind`/`name` for messages. */
kv *ks_schema_apply(const kv *schema, const kv *obj, const char *group, const char *kind, kv **err);
/* The dotted paths of the fields pruning would drop (a new list). */
kv *ks_schema_unknown_fields(const kv *schema, const kv *obj);
/* Drop fields the schema does not declare (pruning), new reference. */
kv *ks_schema_prune(const kv *schema, const kv *obj);

/* ===================================================================== server */

struct ks_server {
  struct event_base *base;
  SSL_CTX *ssl;
  evutil_socket_t listen_fd;
  struct evconnlistener *listener;
  char *token;
  char host[64];
  uint16_t port;
  char *state_file;
  uint64_t rv;
  ks_type **types;
  size_t ntypes;
  /* event window */
  ks_event *ring;
  size_t ring_cap, ring_len, ring_head;
  uint64_t floor;
  ks_watch *watches;
  ks_conn *conns;
  ks_faults faults;
  int bookmark_interval_s;
  int watch_timeout_s;
  struct event *bookmark_ev;
  struct event *save_ev;
  struct event *gc_ev;
  struct event *drop_ev;
  bool dirty;
  bool verbose;
  int64_t requests;
};

#endif
