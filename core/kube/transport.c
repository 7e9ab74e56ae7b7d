/*
 * core/kube/transport.c: the Kubernetes client's HTTP transfer engine
 * (kube_impl.h), on libevent's HTTP client and OpenSSL:
 *  - a pool of kept-alive HTTP/1.1 connections to the API server, each an
 *    evhttp_connection over its own bufferevent_openssl (TLS 1.2+, the
 *    server verified against the kubeconfig's CA or the system's, by host
 *    name or IP address, or tls-server-name; client certificate and key
 *    from the configuration; OpenSSL's buffers released while idle);
 *  - at most max_connections + one per running watch; transfers beyond it
 *    wait in order; idle connections beyond KEEP_IDLE are closed after a
 *    short while and the rest after IDLE_MS, so a burst leaves nothing
 *    behind;
 *  - a connection is never reconnected: once closed (by either side, or
 *    after a failure) it is freed and a new one made when needed;
 *  - retries: 429/503/504 with Retry-After (or a Status retryAfterSeconds),
 *    transport failures of idempotent requests, requests that never left
 *    (no connection could be made), one 401 after a rotated token file;
 *    a non-idempotent request whose connection failed after it was made
 *    is not sent again (the server may have acted on it);
 *  - time limits: connecting (connect_timeout_ms, TCP and TLS) and the
 *    whole exchange (kxfer.timeout_ms or request_timeout_ms).
 *
 * libevent's HTTP callbacks only record what happened; owners' callbacks
 * (`data`, `done`) run from the client's own deferred event, where they
 * may start, stop and free transfers freely.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "koreo/json.h"
#include "kube_impl.h"

enum {
  KEEP_IDLE = 2,           /* idle connections kept for IDLE_MS */
  IDLE_MS = 90000,         /* then closed (Go's http.Transport: 90 s) */
  EXTRA_IDLE_MS = 2000,    /* idle connections beyond KEEP_IDLE */
  STREAM_SLACK_MS = 60000, /* read inactivity allowed on a stream beyond its limit */
};

struct kconn {
  kube_client *c;
  struct evhttp_connection *evcon;
  struct bufferevent *bev;
  SSL *ssl;                 /* owned by bev, NULL for http:// */
  kxfer *x;                 /* the transfer it carries, or NULL when idle */
  struct event *connect_ev; /* the connect time limit */
  bool connected;           /* TCP (and TLS) established */
  bool dead;                /* closed or failed: never used again */
  bool nodelay;             /* TCP_NODELAY set on its socket */
  int uses;                 /* exchanges started on it */
  int64_t idle_since_ms;
  uint64_t idle_seq; /* order in which connections became idle (unique) */
  kconn *next;
};

static void schedule(kube_client *c) {
  if (!c->closing) event_active(c->process_ev, EV_TIMEOUT, 0);
}

/* ======================================================================
 * Tokens
 * ====================================================================== */

/* Re-read a rotated token file (at most once a second, or when forced). */
static void refresh_token(kube_client *c, bool force) {
  if (!c->cfg.token_file) return;
  int64_t now = kube_now_ms();
  if (!force && c->auth_header && now - c->token_checked_ms < 1000) return;
  c->token_checked_ms = now;
  struct stat st;
  if (stat(c->cfg.token_file, &st) != 0) return; /* keep the last token */
  if (c->auth_header && st.st_mtim.tv_sec == c->token_mtime.tv_sec &&
      st.st_mtim.tv_nsec == c->token_mtime.tv_nsec)
    return;
  kv_parse_error pe;
  size_t len = 0;
  char *tok = kv_read_file(c->cfg.token_file, &len, &pe);
  if (!tok) return;
  while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
    tok[--len] = 0;
  c->token_mtime = st.st_mtim;
  free(c->cfg.token);
  c->cfg.token = tok;
  free(c->auth_header);
  c->auth_header = NULL;
  if (asprintf(&c->auth_header, "Bearer %s", tok) < 0) kv_oom();
}

/* ======================================================================
 * Connections
 * ====================================================================== */

/* libevent calls this when a connection that was established closes
 * (never for one that failed to connect). */
static void conn_close_cb(struct evhttp_connection *evcon, void *arg) {
  (void)evcon;
  kconn *k = arg;
  k->connected = true;
  k->dead = true;
  schedule(k->c);
}

/* No Nagle delay: a request goes out as one or two writes (headers, then
 * the body's TLS record), and waiting for the server's delayed ACK before
 * sending the second would add ~40 ms to every request with a body (curl
 * and Go set TCP_NODELAY too).  Called whenever the socket may have become
 * known; sets it once. */
static void conn_nodelay(kconn *k) {
  if (k->nodelay) return;
  evutil_socket_t fd = bufferevent_getfd(k->bev);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  k->nodelay = true;
}

/* OpenSSL's handshake progress: the socket exists when it starts, the
 * connection is up when it is done. */
static void ssl_info_cb(const SSL *ssl, int where, int ret) {
  (void)ret;
  kconn *k = SSL_get_app_data(ssl);
  if (!k) return;
  if (where & SSL_CB_HANDSHAKE_START) conn_nodelay(k);
  if (where & SSL_CB_HANDSHAKE_DONE) k->connected = true;
}

static void conn_free(kconn *k) {
  kube_client *c = k->c;
  for (kconn **pp = &c->conns; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  c->n_conns--;
  if (k->connect_ev) event_free(k->connect_ev);
  if (k->ssl) SSL_set_app_data(k->ssl, NULL);
  evhttp_connection_set_closecb(k->evcon, NULL, NULL);
  evhttp_connection_free(k->evcon); /* frees bev, its SSL and the socket */
  free(k);
}

static bool is_ip_literal(const char *h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg);

static kconn *conn_new(kube_client *c) {
  kconn *k = calloc(1, sizeof *k);
  if (!k) kv_oom();
  k->c = c;
  if (c->tls) {
    k->ssl = SSL_new(c->ssl_ctx);
    if (!k->ssl) kv_oom();
    SSL_set_app_data(k->ssl, k);
    SSL_set_info_callback(k->ssl, ssl_info_cb);
    if (!c->cfg.insecure) {
      if (is_ip_literal(c->verify_name))
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), c->verify_name);
      else
        SSL_set1_host(k->ssl, c->verify_name);
    }
    if (!is_ip_literal(c->verify_name)) SSL_set_tlsext_host_name(k->ssl, c->verify_name);
    k->bev = bufferevent_openssl_socket_new(c->base, -1, k->ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!k->bev) kv_oom();
    /* API servers and proxies may close without a TLS close_notify */
    bufferevent_openssl_set_allow_dirty_shutdown(k->bev, 1);
  } else {
    k->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!k->bev) kv_oom();
  }
  k->evcon = evhttp_connection_base_bufferevent_new(c->base, c->dns, k->bev, c->host,
                                                    (ev_uint16_t)c->port);
  if (!k->evcon) kv_oom();
  evhttp_connection_set_retries(k->evcon, 0);
  evhttp_connection_set_closecb(k->evcon, conn_close_cb, k);
  k->connect_ev = evtimer_new(c->base, connect_timeout_cb, k);
  if (!k->connect_ev) kv_oom();
  struct timeval tv = kube_tv_ms(c->opts.connect_timeout_ms);
  evtimer_add(k->connect_ev, &tv);
  k->next = c->conns;
  c->conns = k;
  c->n_conns++;
  c->stats.connections++;
  return k;
}

/* The read/write inactivity limit libevent applies on a connection, set
 * for the transfer it carries (our own timers bound the whole exchange). */
static void conn_set_timeout(kconn *k, const kxfer *x) {
  int64_t ms = x->timeout_ms ? x->timeout_ms : x->c->opts.request_timeout_ms;
  if (x->streaming) ms = (x->timeout_ms ? x->timeout_ms : 24 * 3600 * 1000) + STREAM_SLACK_MS;
  if (ms < x->c->opts.connect_timeout_ms) ms = x->c->opts.connect_timeout_ms;
  struct timeval tv = kube_tv_ms(ms);
  evhttp_connection_set_timeout_tv(k->evcon, &tv);
}

/* ======================================================================
 * Transfers
 * ====================================================================== */

static void list_remove(kxfer **head, kxfer *x, size_t off) {
  for (kxfer **pp = head; *pp; pp = (kxfer **)((char *)*pp + off))
    if (*pp == x) {
      *pp = *(kxfer **)((char *)x + off);
      *(kxfer **)((char *)x + off) = NULL;
      return;
    }
}

static void wait_remove(kube_client *c, kxfer *x) {
  if (!x->queued) return;
  kxfer *prev = NULL;
  for (kxfer *q = c->wait_head; q; prev = q, q = q->qnext)
    if (q == x) {
      if (prev)
        prev->qnext = x->qnext;
      else
        c->wait_head = x->qnext;
      if (c->wait_tail == x) c->wait_tail = prev;
      break;
    }
  x->qnext = NULL;
  x->queued = false;
}

/* The transfer's attempt ended (answer, failure or time limit). */
static void finish(kxfer *x, kxfer_rc rc) {
  kube_client *c = x->c;
  if (x->finished) return;
  x->rc = rc;
  x->finished = true;
  x->req = NULL;
  if (x->timeout_ev) evtimer_del(x->timeout_ev);
  if (x->conn) {
    kconn *k = x->conn;
    k->x = NULL;
    k->idle_since_ms = kube_now_ms();
    k->idle_seq = ++c->idle_seq;
    if (rc != KXFER_OK) k->dead = true;
    x->conn = NULL;
  }
  x->fnext = c->finished;
  c->finished = x;
  schedule(c);
}

/* Describe a failed attempt in x->errbuf from the connection's state. */
static void describe_failure(kxfer *x, kconn *k) {
  kube_client *c = x->c;
  if (k && k->ssl && !k->connected) {
    long vr = SSL_get_verify_result(k->ssl);
    unsigned long e = bufferevent_get_openssl_error(k->bev);
    if (vr != X509_V_OK) {
      snprintf(x->errbuf, sizeof x->errbuf, "TLS: the server's certificate was refused: %s",
               X509_verify_cert_error_string(vr));
      return;
    }
    if (e) {
      char msg[200];
      ERR_error_string_n(e, msg, sizeof msg);
      snprintf(x->errbuf, sizeof x->errbuf, "TLS handshake with %s:%d failed: %s", c->host, c->port,
               msg);
      return;
    }
  }
  if (k && !k->connected) {
    snprintf(x->errbuf, sizeof x->errbuf, "could not connect to %s:%d", c->host, c->port);
    return;
  }
  switch (x->ev_error) {
  case EVREQ_HTTP_TIMEOUT:
    snprintf(x->errbuf, sizeof x->errbuf, "no data from the server for too long");
    break;
  case EVREQ_HTTP_INVALID_HEADER:
    snprintf(x->errbuf, sizeof x->errbuf, "the server's answer is not valid HTTP");
    break;
  case EVREQ_HTTP_DATA_TOO_LONG:
    snprintf(x->errbuf, sizeof x->errbuf, "the server's answer is malformed or too large");
    break;
  default:
    snprintf(x->errbuf, sizeof x->errbuf, "the connection closed %s",
             x->got_headers ? "before the answer ended" : "before an answer");
  }
}

static int on_headers(struct evhttp_request *req, void *arg) {
  kxfer *x = arg;
  x->got_headers = true;
  x->status = evhttp_request_get_response_code(req);
  if (x->conn) {
    x->conn->connected = true;
    conn_nodelay(x->conn);
  }
  const char *ra = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
  snprintf(x->retry_after, sizeof x->retry_after, "%s", ra ? ra : "");
  return 0;
}

static void on_chunk(struct evhttp_request *req, void *arg) {
  kxfer *x = arg;
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(in);
  if (!n) return;
  if (x->resp.len + n + 1 > x->resp.cap) {
    size_t cap = x->resp.cap ? x->resp.cap : 256;
    while (cap < x->resp.len + n + 1)
      cap *= 2;
    x->resp.p = realloc(x->resp.p, cap);
    if (!x->resp.p) kv_oom();
    x->resp.cap = cap;
  }
  evbuffer_remove(in, x->resp.p + x->resp.len, n);
  x->resp.len += n;
  x->resp.p[x->resp.len] = 0;
  if (x->streaming && !x->dirty) {
    x->dirty = true;
    x->dnext = x->c->dirty;
    x->c->dirty = x;
    schedule(x->c);
  }
}

static void on_error(enum evhttp_request_error e, void *arg) {
  kxfer *x = arg;
  x->ev_error = (int)e;
  x->failed_cb = true;
}

static void on_done(struct evhttp_request *req, void *arg) {
  kxfer *x = arg;
  kconn *k = x->conn;
  if (req && !x->failed_cb && evhttp_request_get_response_code(req) > 0) {
    on_chunk(req, x); /* whatever was not delivered as a chunk */
    x->status = evhttp_request_get_response_code(req);
    finish(x, KXFER_OK);
    return;
  }
  /* a failure: the connection was reset (and will be freed) */
  bool not_sent = k && !k->connected;
  describe_failure(x, k);
  finish(x, not_sent ? KXFER_NOT_SENT : KXFER_FAILED);
}

static void xfer_timeout_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kxfer *x = arg;
  if (x->finished) return;
  int64_t ms = x->timeout_ms ? x->timeout_ms : x->c->opts.request_timeout_ms;
  if (x->queued) { /* still waiting for a connection: never sent */
    wait_remove(x->c, x);
    snprintf(x->errbuf, sizeof x->errbuf,
             "timed out after %lld ms waiting for a connection (all %d busy)", (long long)ms,
             x->c->n_conns);
    finish(x, KXFER_TIMEOUT);
    return;
  }
  if (!x->req) return;
  kconn *k = x->conn;
  bool not_sent = k && !k->connected;
  struct evhttp_request *req = x->req;
  x->req = NULL;
  evhttp_cancel_request(req); /* resets the connection; no callback but on_error */
  snprintf(x->errbuf, sizeof x->errbuf, "timed out after %lld ms%s", (long long)ms,
           not_sent ? " (connecting)" : "");
  finish(x, KXFER_TIMEOUT);
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kconn *k = arg;
  if (k->connected || k->dead) return;
  if (!k->ssl) {
    /* plain HTTP: connected when the socket has a peer */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    evutil_socket_t s = bufferevent_getfd(k->bev);
    if (s >= 0 && getpeername(s, (struct sockaddr *)&ss, &sl) == 0) {
      k->connected = true;
      return;
    }
  }
  k->dead = true;
  kxfer *x = k->x;
  if (x && x->req) {
    struct evhttp_request *req = x->req;
    x->req = NULL;
    evhttp_cancel_request(req);
    snprintf(x->errbuf, sizeof x->errbuf, "connecting to %s:%d timed out after %d ms", x->c->host,
             x->c->port, x->c->opts.connect_timeout_ms);
    finish(x, KXFER_NOT_SENT);
  }
  schedule(k->c);
}

static enum evhttp_cmd_type cmd_for(const char *m) {
  if (strcmp(m, "POST") == 0) return EVHTTP_REQ_POST;
  if (strcmp(m, "PUT") == 0) return EVHTTP_REQ_PUT;
  if (strcmp(m, "PATCH") == 0) return EVHTTP_REQ_PATCH;
  if (strcmp(m, "DELETE") == 0) return EVHTTP_REQ_DELETE;
  return EVHTTP_REQ_GET;
}

/* Send x's attempt on connection k. */
static void send_on(kxfer *x, kconn *k) {
  kube_client *c = x->c;
  x->conn = k;
  k->x = x;
  k->uses++;
  conn_set_timeout(k, x);
  struct evhttp_request *req = evhttp_request_new(on_done, x);
  if (!req) kv_oom();
  evhttp_request_set_header_cb(req, on_headers);
  evhttp_request_set_chunked_cb(req, on_chunk);
  evhttp_request_set_error_cb(req, on_error);
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Host", c->host_header);
  evhttp_add_header(h, "User-Agent", c->user_agent);
  evhttp_add_header(h, "Accept", "application/json");
  refresh_token(c, false);
  if (c->auth_header) evhttp_add_header(h, "Authorization", c->auth_header);
  if (x->content_type) evhttp_add_header(h, "Content-Type", x->content_type);
  enum evhttp_cmd_type cmd = cmd_for(x->method);
  if (x->body || cmd != EVHTTP_REQ_GET) {
    char cl[24];
    snprintf(cl, sizeof cl, "%zu", x->body ? x->body_len : 0);
    evhttp_add_header(h, "Content-Length", cl);
    if (x->body) evbuffer_add(evhttp_request_get_output_buffer(req), x->body, x->body_len);
  }
  char *uri = NULL;
  if (asprintf(&uri, "%s%s", c->prefix, x->path) < 0) kv_oom();
  x->req = req;
  int rc = evhttp_make_request(k->evcon, req, cmd, uri);
  free(uri);
  if (rc == 0)
    conn_nodelay(k); /* the socket exists once connecting began
                        (for a server named by IP address) */
  if (rc != 0) {
    /* libevent freed the request */
    x->req = NULL;
    snprintf(x->errbuf, sizeof x->errbuf, "could not start a request to %s:%d", c->host, c->port);
    finish(x, KXFER_NOT_SENT);
  }
}

/* Whether an idle connection is still open: the server may have closed
 * it while our loop was not running (libevent would only notice on its
 * next read), and a request sent on it would be lost.  Nothing may be
 * waiting on an idle connection: readable means closed (or a server
 * talking out of turn), either way not reusable.  curl makes the same
 * check before reusing a connection. */
static bool conn_alive(kconn *k) {
  evutil_socket_t fd = bufferevent_getfd(k->bev);
  if (fd < 0) return false;
  char b;
  ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* An idle connection that can carry a request, most recently used first
 * (so the others age out), or NULL. */
static kconn *idle_conn(kube_client *c) {
  for (;;) {
    kconn *best = NULL;
    for (kconn *k = c->conns; k; k = k->next)
      if (!k->x && !k->dead && (!best || k->idle_seq > best->idle_seq)) best = k;
    if (!best || conn_alive(best)) return best;
    best->dead = true;
    schedule(c);
  }
}

static int conn_limit(const kube_client *c) { return c->opts.max_connections + c->n_watches; }

/* Give x a connection now, or queue it. */
static void dispatch(kxfer *x) {
  kube_client *c = x->c;
  kconn *k = idle_conn(c);
  if (!k && c->n_conns >= conn_limit(c)) {
    /* make room: a dead connection not yet freed still counts */
    for (kconn *d = c->conns; d;) {
      kconn *n = d->next;
      if (d->dead && !d->x) conn_free(d);
      d = n;
    }
  }
  if (!k && c->n_conns < conn_limit(c)) k = conn_new(c);
  if (!k) {
    x->queued = true;
    x->qnext = NULL;
    if (c->wait_tail)
      c->wait_tail->qnext = x;
    else
      c->wait_head = x;
    c->wait_tail = x;
    return;
  }
  send_on(x, k);
}

static void launch(kxfer *x) {
  kube_client *c = x->c;
  kbuf_free(&x->resp);
  x->status = 0;
  x->retry_after[0] = 0;
  x->errbuf[0] = 0;
  x->rc = KXFER_OK;
  x->finished = x->got_headers = x->failed_cb = false;
  x->ev_error = -1;
  x->started_ms = kube_now_ms();
  c->stats.requests++;
  int64_t limit = x->timeout_ms ? x->timeout_ms : (x->streaming ? 0 : c->opts.request_timeout_ms);
  if (limit > 0) {
    if (!x->timeout_ev) {
      x->timeout_ev = evtimer_new(c->base, xfer_timeout_cb, x);
      if (!x->timeout_ev) kv_oom();
    }
    struct timeval tv = kube_tv_ms(limit);
    evtimer_add(x->timeout_ev, &tv);
  }
  dispatch(x);
}

kxfer *kxfer_new(kube_client *c, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, kxfer_fn done, void *owner) {
  kxfer *x = calloc(1, sizeof *x);
  if (!x) kv_oom();
  x->c = c;
  x->method = kube_xstrdup(method);
  x->path = kube_xstrdup(path);
  x->content_type = content_type ? kube_xstrdup(content_type) : NULL;
  if (body) {
    x->body = malloc(body_len + 1);
    if (!x->body) kv_oom();
    memcpy(x->body, body, body_len);
    x->body[body_len] = 0;
    x->body_len = body_len;
  }
  x->idempotent = strcmp(method, "GET") == 0;
  x->ev_error = -1;
  x->done = done;
  x->owner = owner;
  x->next = c->active;
  if (c->active) c->active->prev = x;
  c->active = x;
  return x;
}

void kxfer_start(kxfer *x) {
  x->attempt = 0;
  if (!x->counted) {
    x->counted = true;
    x->c->stats.in_flight++;
  }
  launch(x);
}

/* Stop the attempt in flight, if any, without finishing the transfer. */
static void abort_attempt(kxfer *x) {
  kube_client *c = x->c;
  wait_remove(c, x);
  if (x->timeout_ev) evtimer_del(x->timeout_ev);
  if (x->req) {
    struct evhttp_request *req = x->req;
    x->req = NULL;
    x->finished = true; /* on_error may run inside the cancel */
    evhttp_cancel_request(req);
  }
  if (x->conn) {
    x->conn->x = NULL;
    x->conn->dead = true;
    x->conn = NULL;
    schedule(c);
  }
}

void kxfer_free(kxfer *x) {
  if (!x) return;
  kube_client *c = x->c;
  abort_attempt(x);
  list_remove(&c->finished, x, offsetof(kxfer, fnext));
  list_remove(&c->dirty, x, offsetof(kxfer, dnext));
  if (x->counted) c->stats.in_flight--;
  if (x->retry_ev) event_free(x->retry_ev);
  if (x->timeout_ev) event_free(x->timeout_ev);
  if (x->prev)
    x->prev->next = x->next;
  else if (c->active == x)
    c->active = x->next;
  if (x->next) x->next->prev = x->prev;
  free(x->method);
  free(x->path);
  free(x->content_type);
  free(x->body);
  kbuf_free(&x->resp);
  free(x);
}

static void retry_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kxfer *x = arg;
  x->c->stats.retries++;
  launch(x);
}

/* Decide whether a finished non-streaming attempt is tried again; if so,
 * schedule it and return true. */
static bool maybe_retry(kxfer *x) {
  kube_client *c = x->c;
  if (x->streaming || c->closing) return false;
  if (x->rc == KXFER_OK && x->status == 401 && c->cfg.token_file && !x->retried_401) {
    x->retried_401 = true;
    refresh_token(c, true);
    launch(x);
    return true;
  }
  if (c->opts.max_retries <= 0 || x->attempt >= c->opts.max_retries) return false;
  int delay = -1;
  if (x->rc != KXFER_OK) {
    if (x->idempotent || x->rc == KXFER_NOT_SENT) delay = kube_backoff_ms(c, x->attempt);
  } else if (x->status == 429 || ((x->status == 503 || x->status == 504) && x->retry_after[0])) {
    double ra = -1;
    if (x->retry_after[0]) {
      char *end = NULL;
      ra = strtod(x->retry_after, &end);
      if (end == x->retry_after || ra < 0) ra = -1;
    }
    if (ra < 0) {
      /* a Status with details.retryAfterSeconds */
      kv_parse_error pe;
      kv *b = x->resp.len ? kv_json_parse(x->resp.p, x->resp.len, &pe) : NULL;
      kube_error e = {0};
      kube_error_from_status(&e, (int)x->status, b, NULL);
      ra = e.retry_after;
      kube_error_clear(&e);
      kv_unref(b);
    }
    delay = ra >= 0 ? (int)(ra * 1000) : kube_backoff_ms(c, x->attempt);
    if (delay > c->opts.retry_after_cap_ms) delay = c->opts.retry_after_cap_ms;
  }
  if (delay < 0) return false;
  x->attempt++;
  if (!x->retry_ev) {
    x->retry_ev = evtimer_new(c->base, retry_fire, x);
    if (!x->retry_ev) kv_oom();
  }
  struct timeval tv = kube_tv_ms(delay);
  evtimer_add(x->retry_ev, &tv);
  return true;
}

/* Close idle connections the pool no longer needs; re-arm the timer for
 * the next one due. */
static void trim_idle(kube_client *c) {
  int64_t now = kube_now_ms(), next = -1;
  for (kconn *k = c->conns; k;) {
    kconn *n = k->next;
    if (!k->x && !k->dead) {
      /* rank: how many idle connections were used more recently */
      int newer = 0;
      for (kconn *o = c->conns; o; o = o->next)
        if (o != k && !o->x && !o->dead && o->idle_seq > k->idle_seq) newer++;
      int64_t limit = newer < KEEP_IDLE ? IDLE_MS : EXTRA_IDLE_MS;
      int64_t due = k->idle_since_ms + limit;
      if (due <= now) {
        conn_free(k);
      } else if (next < 0 || due < next) {
        next = due;
      }
    }
    k = n;
  }
  if (next >= 0) {
    struct timeval tv = kube_tv_ms(next - now + 1);
    evtimer_add(c->idle_ev, &tv);
  } else {
    evtimer_del(c->idle_ev);
  }
}

static void process_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kube_client *c = arg;
  /* streaming data first: each transfer's own bytes stay ordered */
  while (c->dirty) {
    kxfer *x = c->dirty;
    c->dirty = x->dnext;
    x->dnext = NULL;
    x->dirty = false;
    if (x->data) x->data(x); /* may free x or others */
  }
  while (c->finished) {
    kxfer *x = c->finished;
    c->finished = x->fnext;
    x->fnext = NULL;
    if (maybe_retry(x)) continue;
    if (x->counted) {
      x->counted = false;
      c->stats.in_flight--;
    }
    x->done(x); /* the owner frees x */
  }
  /* free the connections that closed */
  for (kconn *k = c->conns; k;) {
    kconn *n = k->next;
    if (k->dead && !k->x) conn_free(k);
    k = n;
  }
  /* start waiting transfers */
  while (c->wait_head) {
    kconn *k = idle_conn(c);
    if (!k && c->n_conns >= conn_limit(c)) break;
    kxfer *x = c->wait_head;
    wait_remove(c, x);
    if (!k) k = conn_new(c);
    send_on(x, k);
  }
  trim_idle(c);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  trim_idle(arg);
}

void kxfer_error(const kxfer *x, const kv *body, kube_error *err) {
  kube_error_clear(err);
  if (x->rc != KXFER_OK) {
    kube_error_set(err, KUBE_ERR_TRANSPORT, "%s %s%s: %s", x->method, x->c->url_base, x->path,
                   x->errbuf[0] ? x->errbuf : "the request failed");
    return;
  }
  if (x->status >= 200 && x->status < 300) return;
  kube_error_from_status(err, (int)x->status, body, x->retry_after[0] ? x->retry_after : NULL);
}

void kube_client_watch_slots(kube_client *c, int delta) {
  c->n_watches += delta;
  if (delta < 0) schedule(c);
}

/* ======================================================================
 * Set-up
 * ====================================================================== */

static void openssl_errors(kube_error *err, const char *what) {
  unsigned long e = ERR_get_error();
  char msg[200] = "not PEM data";
  if (e) ERR_error_string_n(e, msg, sizeof msg);
  ERR_clear_error();
  if (err) kube_error_set(err, KUBE_ERR_CONFIG, "%s: %s", what, msg);
}

/* The TLS context: peer verification with the configured CA (or the
 * system's), the client certificate chain and key when configured. */
static SSL_CTX *make_ssl_ctx(const kube_config *cfg, kube_error *err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) kv_oom();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (cfg->insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cfg->ca_pem) {
      X509_STORE *store = SSL_CTX_get_cert_store(ctx);
      BIO *b = BIO_new_mem_buf(cfg->ca_pem, (int)cfg->ca_len);
      int n = 0;
      X509 *crt;
      while (b && (crt = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        X509_STORE_add_cert(store, crt);
        X509_free(crt);
        n++;
      }
      BIO_free(b);
      ERR_clear_error(); /* the end of the data */
      if (n == 0) {
        if (err) kube_error_set(err, KUBE_ERR_CONFIG, "certificate-authority: no PEM certificate");
        SSL_CTX_free(ctx);
        return NULL;
      }
    } else {
      SSL_CTX_set_default_verify_paths(ctx);
    }
  }
  if (cfg->cert_pem && cfg->key_pem) {
    BIO *b = BIO_new_mem_buf(cfg->cert_pem, (int)cfg->cert_len);
    X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
      openssl_errors(err, "client-certificate");
      X509_free(leaf);
      BIO_free(b);
      SSL_CTX_free(ctx);
      return NULL;
    }
    X509_free(leaf);
    X509 *extra;
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)))
      if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) X509_free(extra);
    ERR_clear_error();
    BIO_free(b);
    b = BIO_new_mem_buf(cfg->key_pem, (int)cfg->key_len);
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      openssl_errors(err, "client-key");
      EVP_PKEY_free(key);
      SSL_CTX_free(ctx);
      return NULL;
    }
    EVP_PKEY_free(key);
  }
  return ctx;
}

int kube_transport_init(kube_client *c, kube_error *err) {
  const char *server = c->cfg.server;
  struct evhttp_uri *u = evhttp_uri_parse(server);
  const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
  const char *host = u ? evhttp_uri_get_host(u) : NULL;
  if (!u || !scheme || !host || !*host ||
      (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)) {
    if (err) kube_error_set(err, KUBE_ERR_CONFIG, "server \"%s\" is not an http(s) URL", server);
    if (u) evhttp_uri_free(u);
    return -1;
  }
  c->tls = strcasecmp(scheme, "https") == 0;
  int port = evhttp_uri_get_port(u);
  c->port = port > 0 ? port : (c->tls ? 443 : 80);
  /* an IPv6 literal comes bracketed */
  size_t hl = strlen(host);
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
    c->host = strndup(host + 1, hl - 2);
  else
    c->host = strdup(host);
  if (!c->host) kv_oom();
  bool v6 = strchr(c->host, ':') != NULL;
  const char *path = evhttp_uri_get_path(u);
  size_t pl = path ? strlen(path) : 0;
  while (pl && path[pl - 1] == '/')
    pl--;
  c->prefix = strndup(path ? path : "", pl);
  if (!c->prefix) kv_oom();
  const char *name =
      c->cfg.tls_server_name && *c->cfg.tls_server_name ? c->cfg.tls_server_name : c->host;
  c->verify_name = kube_xstrdup(name);
  bool name_v6 = strchr(name, ':') != NULL;
  if (asprintf(&c->host_header, "%s%s%s:%d", name_v6 ? "[" : "", name, name_v6 ? "]" : "",
               c->port) < 0)
    kv_oom();
  if (asprintf(&c->url_base, "%s://%s%s%s:%d%s", c->tls ? "https" : "http", v6 ? "[" : "", c->host,
               v6 ? "]" : "", c->port, c->prefix) < 0)
    kv_oom();
  evhttp_uri_free(u);
  if (c->tls) {
    c->ssl_ctx = make_ssl_ctx(&c->cfg, err);
    if (!c->ssl_ctx) return -1;
  }
  if (!is_ip_literal(c->host)) {
    c->dns = evdns_base_new(c->base,
                            EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!c->dns) {
      if (err)
        kube_error_set(err, KUBE_ERR_CONFIG,
                       "server \"%s\": no DNS resolver could be set up (/etc/resolv.conf)", server);
      return -1;
    }
  }
  if (c->cfg.token_file)
    refresh_token(c, true);
  else if (c->cfg.token && *c->cfg.token) {
    if (asprintf(&c->auth_header, "Bearer %s", c->cfg.token) < 0) kv_oom();
  }
  c->process_ev = event_new(c->base, -1, 0, process_cb, c);
  c->idle_ev = evtimer_new(c->base, idle_cb, c);
  if (!c->process_ev || !c->idle_ev) kv_oom();
  return 0;
}

void kube_transport_free(kube_client *c) {
  while (c->conns)
    conn_free(c->conns);
  if (c->process_ev) event_free(c->process_ev);
  if (c->idle_ev) event_free(c->idle_ev);
  if (c->dns) evdns_base_free(c->dns, 0);
  if (c->ssl_ctx) SSL_CTX_free(c->ssl_ctx);
  free(c->host);
  free(c->host_header);
  free(c->verify_name);
  free(c->prefix);
  free(c->auth_header);
  c->process_ev = c->idle_ev = NULL;
  c->dns = NULL;
  c->ssl_ctx = NULL;
  c->host = c->host_header = c->verify_name = c->prefix = c->auth_header = NULL;
}
