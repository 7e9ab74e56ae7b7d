/*
 * core/kube/kube_impl.h: what the client's files share internally: the HTTP
 * transfer engine (one curl easy handle per attempt, a curl multi handle
 * driven by the client's libevent loop) and the client structure.  Not a
 * public header.
 */
#ifndef KOREO_KUBE_IMPL_H
#define KOREO_KUBE_IMPL_H

#include <curl/curl.h>
#include <event2/event.h>

#include "koreo/kube.h"

typedef struct kbuf {
  char *p;
  size_t len, cap;
} kbuf;

void kbuf_add(kbuf *b, const void *p, size_t n);
void kbuf_addf(kbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kbuf_free(kbuf *b);

typedef struct kxfer kxfer;
typedef void (*kxfer_fn)(kxfer *x);

/* One HTTP exchange.  The owner sets `done` (and `data` when streaming)
 * and frees the transfer with kxfer_free from `done` or later.  A
 * non-streaming transfer is retried by the engine (429/503 with
 * Retry-After, transport failures of idempotent requests, one 401 after a
 * rotated token) before `done` runs. */
struct kxfer {
  kube_client *c;
  CURL *easy;
  struct curl_slist *headers;
  char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE" */
  char *path;   /* path + query, appended to the server URL */
  char *content_type;
  char *body;
  size_t body_len;
  bool streaming;
  bool idempotent;
  int timeout_ms; /* 0: the client's request timeout */
  /* answer */
  kbuf resp;
  long status;
  char retry_after[32];
  CURLcode rc;
  char errbuf[CURL_ERROR_SIZE];
  int attempt;
  bool in_multi, dirty, retried_401;
  int64_t started_ms;
  struct event *retry_ev;
  kxfer_fn done, data;
  void *owner;
  kxfer *next, *prev; /* client's active list */
  kxfer *dnext;       /* dirty list */
};

/* Create (not started).  Strings copied; body copied (may be NULL). */
kxfer *kxfer_new(kube_client *c, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, kxfer_fn done, void *owner);
/* Start the first attempt. */
void kxfer_start(kxfer *x);
/* Stop (if running) and free; `done` is not called.  Safe outside curl
 * callbacks only (the engine never calls owners from inside them). */
void kxfer_free(kxfer *x);
/* The error for a finished transfer (transport or HTTP); KUBE_OK for 2xx.
 * `body` is the decoded answer or NULL. */
void kxfer_error(const kxfer *x, const kv *body, kube_error *err);

typedef struct kop kop;
typedef struct kfetch kfetch;

struct kube_client {
  struct event_base *base;
  kube_config cfg; /* deep copy */
  kube_client_options opts;
  char *user_agent;
  char *url_base;                /* scheme://host:port used in URLs */
  struct curl_slist *connect_to; /* tls-server-name mapping, or NULL */
  CURLM *multi;
  struct event *timer_ev;
  kube_discovery *disc;
  kxfer *active;
  kxfer *dirty;
  kop *ops;
  kfetch *fetches;
  kube_watch *watches;
  kube_client_stats stats;
  char *auth_header;
  int64_t token_checked_ms;
  struct timespec token_mtime;
  bool closing;
  unsigned rand_state;
  int n_watches; /* running watches: each has a connection of its own */
};

int64_t kube_now_ms(void);
/* A random delay in [d/2, d] for backoff jitter. */
int kube_jitter(kube_client *c, int d);
/* Capped exponential backoff for the attempt-th retry (0-based). */
int kube_backoff_ms(kube_client *c, int attempt);

/* Resolve (api_version, kind | resource) through discovery, fetching on a
 * miss; calls cb(ud, ri or NULL, err) from the loop (never inline).  Used
 * by requests and watches.  The returned handle can be cancelled (the
 * callback is then never called). */
typedef void (*kresolve_fn)(void *ud, const kube_resource_info *ri, const kube_error *err);
typedef struct kresolve kresolve;
kresolve *kube_resolve_async(kube_client *c, const char *api_version, const char *kind,
                             const char *resource, const char *ns_hint, kresolve_fn cb, void *ud);
void kresolve_cancel(kresolve *r);

/* A path with `extra` query text appended ("watch=1&..."), see
 * kube_req_path. */
char *kube_req_path_q(const kube_resource_info *ri, const kube_req *req, const char *def_ns,
                      const char *extra, kube_error *err);

/* A resource addressed by plural without discovery: an entry kept by the
 * cache (deduplicated) for its life, not found by kube_discovery_find. */
const kube_resource_info *kube_discovery_synth(kube_discovery *d, const char *api_version,
                                               const char *resource, bool namespaced);

/* A watch starts (+1) or ends (-1): the connection limit follows. */
void kube_client_watch_slots(kube_client *c, int delta);

/* Watches: stop and free every watch (client teardown). */
void kube_watches_shutdown(kube_client *c);

#endif
