/*
 * core/kube/kube_impl.h: what the client's files share internally: the HTTP
 * transfer engine (core/kube/transport.c: a pool of kept-alive HTTP/1.1
 * connections, each a libevent evhttp_connection over a bufferevent_openssl,
 * on the client's libevent loop) and the client structure.  Not a public
 * header.
 */
#ifndef KOREO_KUBE_IMPL_H
#define KOREO_KUBE_IMPL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "koreo/kube.h"

/* strdup that never returns NULL (NULL -> ""; out of memory aborts). */
static inline char *kube_xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

/* A duration in milliseconds as a struct timeval (for libevent timers). */
static inline struct timeval kube_tv_ms(int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

typedef struct kbuf {
  char *p;
  size_t len, cap;
} kbuf;

void kbuf_add(kbuf *b, const void *p, size_t n);
void kbuf_addf(kbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kbuf_free(kbuf *b);

typedef struct kxfer kxfer;
typedef struct kconn kconn;
typedef void (*kxfer_fn)(kxfer *x);

/* How a transfer ended (kxfer.rc). */
typedef enum kxfer_rc {
  KXFER_OK = 0,   /* an answer arrived (any HTTP status: see kxfer.status) */
  KXFER_TIMEOUT,  /* the transfer's time limit passed */
  KXFER_NOT_SENT, /* no connection could be made: the request never left */
  KXFER_FAILED,   /* the connection failed during the exchange */
} kxfer_rc;

/* One HTTP exchange.  The owner sets `done` (and `data` when streaming)
 * and frees the transfer with kxfer_free from `done` or later.  A
 * non-streaming transfer is retried by the engine (429/503 with
 * Retry-After, transport failures of idempotent requests, requests that
 * never left, one 401 after a rotated token) before `done` runs.  Owner
 * callbacks run from the engine's own deferred event, never from inside
 * libevent's HTTP code, so they may start, stop and free transfers. */
struct kxfer {
  kube_client *c;
  char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE" */
  char *path;   /* path + query, appended to the server URL */
  char *content_type;
  char *body;
  size_t body_len;
  bool streaming;
  bool idempotent;
  int timeout_ms; /* 0: the client's request timeout (none when streaming) */
  /* answer */
  kbuf resp;
  long status;          /* HTTP status, set when the answer's headers arrive */
  char retry_after[32]; /* the Retry-After header, or "" */
  kxfer_rc rc;
  char errbuf[256]; /* why, when rc != KXFER_OK */
  int attempt;
  bool retried_401;
  /* engine state (transport.c) */
  struct evhttp_request *req; /* the attempt in flight, or NULL */
  kconn *conn;                /* its connection, or NULL */
  bool queued, finished, dirty, got_headers, failed_cb;
  bool counted; /* counted in stats.in_flight */
  int ev_error; /* enum evhttp_request_error from the error callback, or -1 */
  int64_t started_ms;
  struct event *retry_ev, *timeout_ev;
  kxfer_fn done, data;
  void *owner;
  kxfer *next, *prev; /* client's list of live transfers */
  kxfer *qnext;       /* waiting for a connection */
  kxfer *fnext;       /* finished, waiting for `done` */
  kxfer *dnext;       /* streaming data waiting for `data` */
};

/* Create (not started).  Strings copied; body copied (may be NULL). */
kxfer *kxfer_new(kube_client *c, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, kxfer_fn done, void *owner);
/* Start the first attempt. */
void kxfer_start(kxfer *x);
/* Stop (if running) and free; `done` is not called. */
void kxfer_free(kxfer *x);
/* The error for a finished transfer (transport or HTTP); KUBE_OK for 2xx.
 * `body` is the decoded answer or NULL. */
void kxfer_error(const kxfer *x, const kv *body, kube_error *err);

/* The transport's part of kube_client_new / kube_client_free: parse the
 * server URL, build the TLS context (CA, client certificate and key from
 * the configuration), create the engine's events.  0, or -1 with err
 * (KUBE_ERR_CONFIG: not a URL, unreadable PEM data). */
int kube_transport_init(kube_client *c, kube_error *err);
/* Close every connection and free what kube_transport_init made (after
 * every transfer was freed). */
void kube_transport_free(kube_client *c);

typedef struct kop kop;
typedef struct kfetch kfetch;

struct kube_client {
  struct event_base *base;
  kube_config cfg; /* deep copy */
  kube_client_options opts;
  char *user_agent;
  char *url_base; /* scheme://host:port[/prefix], for messages */
  /* transport (transport.c) */
  bool tls;
  char *host; /* where to connect (name or IP address, no brackets) */
  int port;
  char *host_header; /* Host: (tls-server-name when set) */
  char *verify_name; /* the name or IP address the certificate must carry */
  char *prefix;      /* a server path prefix ("" or "/prefix") */
  SSL_CTX *ssl_ctx;
  struct evdns_base *dns; /* for servers named by host name, else NULL */
  kconn *conns;
  int n_conns;
  uint64_t idle_seq;
  kxfer *wait_head, *wait_tail; /* waiting for a connection */
  kxfer *finished;
  kxfer *dirty;
  struct event *process_ev, *idle_ev;
  kube_discovery *disc;
  kxfer *active;
  kop *ops;
  kfetch *fetches;
  kube_watch *watches;
  kube_client_stats stats;
  char *auth_header; /* the bearer token, or NULL */
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
