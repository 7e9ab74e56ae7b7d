/*
 * agent/tls_server.c: the control-plane side of agent TLS (ktls_server_*,
 * see agent/tls.h): a TLS 1.3 listener on libevent that registers agents
 * with bootstrap tokens, authenticates them by client certificate (the
 * cluster in the certificate must be the cluster claimed in hello) and
 * renews their certificates (bootstrap tokens from the in-memory store or an
 * asynchronous validator hook: the control plane's database).  The tests use
 * it as the protocol harness; the
 * control plane (issue 6) reuses it and takes over the session bufferevent
 * from on_session.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "tls.h"
#include "tls_internal.h"

typedef struct reg_pending reg_pending;

typedef struct srv_conn {
  struct ktls_server *srv;
  reg_pending *reg; /* an asynchronous token validation in progress */
  struct bufferevent *bev;
  bool established, authed, closing; /* handshake done, hello accepted, refusing */
  char cluster[KTLS_CLUSTER_MAX + 1];
  struct srv_conn *prev, *next;
} srv_conn;

struct ktls_server {
  struct event_base *base;
  struct evconnlistener *lis;
  SSL_CTX *ctx;
  ktls_server_opts o;
  int port;
  unsigned sessions, refusals;
  long auth_timeout_ms;
  char last_refusal[1024];
  srv_conn *conns;
};

static void refuse_log(ktls_server *s, const char *reason) {
  s->refusals++;
  snprintf(s->last_refusal, sizeof s->last_refusal, "%s", reason);
  if (s->o.on_refused) s->o.on_refused(s->o.arg, reason);
}

/* A registration waiting for the asynchronous token validator: the signed
 * certificate, sent when the validator says yes.  Outlives its connection
 * (conn NULL) until the validator answers. */
struct reg_pending {
  srv_conn *conn;
  char *cert;
  char cluster[KTLS_CLUSTER_MAX + 1];
};

static void conn_free(srv_conn *c) {
  if (c->reg) c->reg->conn = NULL;
  if (c->authed && c->srv->o.on_closed) c->srv->o.on_closed(c->srv->o.arg, c->cluster);
  if (c->prev)
    c->prev->next = c->next;
  else
    c->srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  bufferevent_free(c->bev);
  free(c);
}

static void conn_write_done(struct bufferevent *bev, void *arg) {
  (void)bev;
  srv_conn *c = arg;
  if (c->closing) conn_free(c);
}

/* Send Error{code, reason, fatal} (best effort), log the refusal, and
 * close once flushed. */
static void conn_refuse(srv_conn *c, Koreo__Agent__V1__ErrorCode code, const char *reason) {
  refuse_log(c->srv, reason);
  ktls_send_error(c->bev, code, reason, true);
  /* freed by conn_write_done once flushed, or by conn_event if the peer goes */
  c->closing = true;
  bufferevent_disable(c->bev, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
    bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void conn_send(srv_conn *c, const kframe_envelope *env, bool close_after) {
  ktls_err err = {{0}};
  if (ktls_send(c->bev, env, &err) != 0) {
    conn_refuse(c, KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_INTERNAL, err.msg);
    return;
  }
  if (close_after) {
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
  }
}

static X509 *peer_cert(srv_conn *c) {
  SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
  X509 *x = SSL_get0_peer_certificate(ssl);
  if (x && SSL_get_verify_result(ssl) != X509_V_OK) return NULL;
  return x;
}

#define UNAUTHORIZED KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_UNAUTHORIZED
#define PROTOCOL KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_PROTOCOL

static time_t cert_not_after(const char *pem) {
  X509 *x = ktls_cert_from_pem(pem, NULL);
  time_t na = 0;
  if (x) ktls_cert_validity(x, NULL, &na, NULL);
  X509_free(x);
  return na;
}

/* hex SHA-256 of a certificate's DER (the clusters table fingerprint) */
void ktls_cert_sha256(const char *pem, char out[65]) {
  out[0] = 0;
  X509 *x = ktls_cert_from_pem(pem, NULL);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (x && X509_digest(x, EVP_sha256(), md, &n))
    for (unsigned i = 0; i < n && i < 32; i++)
      snprintf(out + 2 * i, 3, "%02x", md[i]);
  X509_free(x);
}

/* Send the RegisterResponse with `cert` and close. */
static void register_accept(srv_conn *c, const char *cluster, const char *cert) {
  ktls_server *s = c->srv;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__RegisterResponse r = KOREO__AGENT__V1__REGISTER_RESPONSE__INIT;
  r.cert_pem = (char *)cert;
  r.ca_pem = (char *)ktls_ca_cert_pem_str(s->o.ca);
  r.not_after_unix = cert_not_after(cert);
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_RESPONSE;
  env.register_response = &r;
  conn_send(c, &env, true);
  if (s->o.on_registered) {
    char fp[65];
    ktls_cert_sha256(cert, fp);
    s->o.on_registered(s->o.arg, cluster, fp, (time_t)r.not_after_unix);
  }
}

static void register_validated(void *arg, bool ok, const char *reason) {
  reg_pending *p = arg;
  srv_conn *c = p->conn;
  if (c) {
    c->reg = NULL;
    if (ok) {
      register_accept(c, p->cluster, p->cert);
    } else {
      char msg[800];
      snprintf(msg, sizeof msg, "registration of cluster '%s' refused: %s", p->cluster,
               reason && *reason ? reason : "invalid bootstrap token");
      conn_refuse(c, UNAUTHORIZED, msg);
    }
  }
  free(p->cert);
  free(p);
}

static void handle_register(srv_conn *c, const Koreo__Agent__V1__RegisterRequest *rq) {
  ktls_server *s = c->srv;
  ktls_err err = {{0}};
  char msg[800];
  if (c->authed || c->reg) {
    conn_refuse(c, PROTOCOL,
                c->authed ? "RegisterRequest on an authenticated session"
                          : "a second RegisterRequest while the first is being checked");
    return;
  }
  const char *cluster = rq->cluster_name ? rq->cluster_name : "";
  if (s->o.validate_token) {
    /* sign first (a bad CSR or cluster name never consumes the token), then
     * let the validator check and consume the token */
    char id[17], secret[33], pin[65];
    time_t now = time(NULL);
    long ttl = s->o.cert_ttl_s > 0 ? s->o.cert_ttl_s : 30 * 86400;
    char *cert = NULL;
    if (ktls_token_parse(rq->token ? rq->token : "", id, secret, pin, &err) == 0)
      cert = ktls_ca_sign_csr(s->o.ca, rq->csr_pem ? rq->csr_pem : "", cluster, now - 60, now + ttl,
                              &err);
    reg_pending *p = cert ? calloc(1, sizeof *p) : NULL;
    if (!p) {
      free(cert);
      snprintf(msg, sizeof msg, "registration of cluster '%.253s' refused: %s", cluster,
               err.msg[0] ? err.msg : "out of memory");
      conn_refuse(c, UNAUTHORIZED, msg);
      return;
    }
    p->conn = c;
    p->cert = cert;
    snprintf(p->cluster, sizeof p->cluster, "%s", cluster);
    c->reg = p;
    s->o.validate_token(s->o.arg, rq->token, cluster, register_validated, p);
    return;
  }
  char *cert = ktls_register(s->o.ca, s->o.tokens, rq->token ? rq->token : "", cluster,
                             rq->csr_pem ? rq->csr_pem : "", s->o.cert_ttl_s, time(NULL), &err);
  if (!cert) {
    snprintf(msg, sizeof msg, "registration of cluster '%.253s' refused: %s", cluster, err.msg);
    conn_refuse(c, UNAUTHORIZED, msg);
    return;
  }
  register_accept(c, cluster, cert);
  free(cert);
}

static void handle_hello(srv_conn *c, const Koreo__Agent__V1__Hello *h) {
  ktls_server *s = c->srv;
  ktls_err err = {{0}};
  char msg[800], got[KTLS_CLUSTER_MAX + 1];
  X509 *x = peer_cert(c);
  if (c->authed) {
    conn_refuse(c, PROTOCOL, "a second Hello on one session");
    return;
  }
  if (!x) {
    conn_refuse(c, UNAUTHORIZED, "Hello without a client certificate: register first");
    return;
  }
  if (ktls_cert_cluster(x, got, sizeof got, &err) != 0) {
    snprintf(msg, sizeof msg, "client certificate refused: %s", err.msg);
    conn_refuse(c, UNAUTHORIZED, msg);
    return;
  }
  const char *claimed = h->cluster_name ? h->cluster_name : "";
  if (strcmp(claimed, got) != 0) {
    snprintf(msg, sizeof msg, "agent claims cluster '%.253s' but its certificate is for '%s'",
             claimed, got);
    conn_refuse(c, UNAUTHORIZED, msg);
    return;
  }
  /* version negotiation: the highest version in both ranges (0 = 1) */
  uint32_t lo = h->min_protocol_version ? h->min_protocol_version : 1;
  uint32_t hi = h->max_protocol_version ? h->max_protocol_version : lo;
  uint32_t v = hi < KFRAME_PROTOCOL_MAX ? hi : KFRAME_PROTOCOL_MAX;
  if (lo > hi || v < lo || v < KFRAME_PROTOCOL_MIN) {
    snprintf(msg, sizeof msg, "no common protocol version: agent speaks %u..%u, server %u..%u", lo,
             hi, KFRAME_PROTOCOL_MIN, KFRAME_PROTOCOL_MAX);
    conn_refuse(c, KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_VERSION, msg);
    return;
  }
  c->authed = true;
  bufferevent_set_timeouts(c->bev, NULL, NULL); /* liveness is the session's heartbeat */
  strcpy(c->cluster, got);
  s->sessions++;
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__HelloAck ack = KOREO__AGENT__V1__HELLO_ACK__INIT;
  ack.protocol_version = v;
  if (s->o.on_session) s->o.on_session(s->o.arg, got, h, &ack, c->bev);
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_HELLO_ACK;
  env.hello_ack = &ack;
  conn_send(c, &env, false);
}

static void handle_renew(srv_conn *c, const Koreo__Agent__V1__RenewRequest *rq) {
  ktls_server *s = c->srv;
  ktls_err err = {{0}};
  char msg[800];
  if (!c->authed) {
    conn_refuse(c, UNAUTHORIZED, "RenewRequest before an accepted Hello");
    return;
  }
  time_t now = time(NULL);
  long ttl = s->o.cert_ttl_s > 0 ? s->o.cert_ttl_s : 30 * 86400;
  /* the new certificate is for the authenticated cluster, whatever the CSR says */
  char *cert = ktls_ca_sign_csr(s->o.ca, rq->csr_pem ? rq->csr_pem : "", c->cluster, now - 60,
                                now + ttl, &err);
  if (!cert) {
    snprintf(msg, sizeof msg, "renewal for cluster '%s' refused: %s", c->cluster, err.msg);
    refuse_log(s, msg);
    ktls_send_error(c->bev, UNAUTHORIZED, msg, false);
    return;
  }
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__RenewResponse r = KOREO__AGENT__V1__RENEW_RESPONSE__INIT;
  r.cert_pem = cert;
  r.ca_pem = (char *)ktls_ca_cert_pem_str(s->o.ca);
  r.not_after_unix = cert_not_after(cert);
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE;
  env.renew_response = &r;
  conn_send(c, &env, false);
  if (s->o.on_registered) { /* the cluster's certificate is now this one */
    char fp[65];
    ktls_cert_sha256(cert, fp);
    s->o.on_registered(s->o.arg, c->cluster, fp, (time_t)r.not_after_unix);
  }
  free(cert);
}

/* One envelope; takes env. */
static void handle(srv_conn *c, kframe_envelope *env) {
  ktls_server *s = c->srv;
  char msg[300];
  switch (env->body_case) {
  case KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_REQUEST:
    handle_register(c, env->register_request);
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_HELLO: handle_hello(c, env->hello); break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_REQUEST: handle_renew(c, env->renew_request); break;
  default:
    if (c->authed && s->o.on_envelope) {
      if (!s->o.on_envelope(s->o.arg, c->cluster, env, c->bev)) {
        c->closing = true;
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_trigger(c->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
      }
      return; /* on_envelope owns env */
    }
    snprintf(msg, sizeof msg, "unexpected %s %s", kframe_body_name(env->body_case),
             c->authed ? "(no session handler)" : "before an accepted Hello");
    conn_refuse(c, c->authed ? PROTOCOL : UNAUTHORIZED, msg);
  }
  kframe_envelope_free(env);
}

static void conn_read(struct bufferevent *bev, void *arg) {
  srv_conn *c = arg;
  while (!c->closing) {
    kframe_envelope *env = NULL;
    ktls_err err = {{0}};
    int r = ktls_frame_take(bufferevent_get_input(bev),
                            c->authed ? KFRAME_MAX_DEFAULT : KTLS_MAX_FRAME, &env, &err);
    if (r < 0) {
      char msg[600];
      snprintf(msg, sizeof msg, "protocol error: %s", err.msg);
      conn_refuse(c, PROTOCOL, msg);
      return;
    }
    if (r == 0) return;
    handle(c, env);
  }
}

static void conn_event(struct bufferevent *bev, short what, void *arg) {
  srv_conn *c = arg;
  if (what & BEV_EVENT_CONNECTED) {
    c->established = true;
    return;
  }
  if ((what & BEV_EVENT_TIMEOUT) && !c->closing) {
    char msg[160];
    snprintf(msg, sizeof msg, "no %s within %ld ms: connection dropped",
             c->established ? "Register/Hello" : "TLS handshake", c->srv->auth_timeout_ms);
    refuse_log(c->srv, msg);
  }
  if (what & BEV_EVENT_ERROR) {
    char buf[300], msg[600];
    ktls_bev_ssl_error(bev, buf, sizeof buf);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = SSL_get_verify_result(ssl);
    /* a failure before the session was established is a refusal; an error
     * on an established session is an ordinary disconnect */
    if (vr != X509_V_OK)
      snprintf(msg, sizeof msg, "TLS handshake refused: client certificate: %s",
               X509_verify_cert_error_string(vr));
    else
      snprintf(msg, sizeof msg, "TLS handshake failed: %s", buf[0] ? buf : "connection reset");
    if (!c->closing && (vr != X509_V_OK || !c->established)) refuse_log(c->srv, msg);
  }
  conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg) {
  (void)l;
  (void)sa;
  (void)len;
  ktls_server *s = arg;
  /* small protocol frames must not wait for Nagle's algorithm */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL *ssl = SSL_new(s->ctx);
  srv_conn *c = ssl ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    SSL_free(ssl);
    evutil_closesocket(fd);
    return;
  }
  c->srv = s;
  c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  if (!c->bev) {
    SSL_free(ssl);
    evutil_closesocket(fd);
    free(c);
    return;
  }
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  bufferevent_setcb(c->bev, conn_read, conn_write_done, conn_event, c);
  /* until the agent is authenticated, idling is not allowed */
  struct timeval tv = {s->auth_timeout_ms / 1000, (s->auth_timeout_ms % 1000) * 1000};
  bufferevent_set_timeouts(c->bev, &tv, NULL);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

ktls_server *ktls_server_new(struct event_base *base, const ktls_server_opts *o, ktls_err *err) {
  if (!o->ca || (!o->tokens && !o->validate_token) || !o->bind_host) {
    ktls_seterr(err, "ktls_server_new needs a CA, a token store or validator and a bind address");
    return NULL;
  }
  ktls_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->base = base;
  s->o = *o;
  s->auth_timeout_ms = o->auth_timeout_ms > 0 ? o->auth_timeout_ms : 10000;
  const char *hosts[] = {o->bind_host, "localhost"};
  char *cert = NULL, *key = NULL;
  if (o->cert_pem && o->key_pem) {
    s->ctx = ktls_server_ctx(ktls_ca_cert(o->ca), o->cert_pem, o->key_pem, err);
  } else {
    if (ktls_ca_issue_server(o->ca, hosts, 2, 365, &cert, &key, err) != 0) goto fail;
    s->ctx = ktls_server_ctx(ktls_ca_cert(o->ca), cert, key, err);
  }
  free(cert);
  free(key);
  if (!s->ctx) goto fail;
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, o->bind_host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)o->port);
    sl = sizeof *in4;
  } else if (inet_pton(AF_INET6, o->bind_host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)o->port);
    sl = sizeof *in6;
  } else {
    ktls_seterr(err, "bind address '%s' is not an IP literal", o->bind_host);
    goto fail;
  }
  s->lis = evconnlistener_new_bind(
      base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 64,
      (struct sockaddr *)&ss, (int)sl);
  if (!s->lis) {
    ktls_seterr(err, "cannot listen on %s:%d: %s", o->bind_host, o->port,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    goto fail;
  }
  struct sockaddr_storage got;
  socklen_t gl = sizeof got;
  getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&got, &gl);
  s->port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                           : ((struct sockaddr_in6 *)&got)->sin6_port);
  return s;
fail:
  ktls_server_free(s);
  return NULL;
}

int ktls_server_port(const ktls_server *s) { return s->port; }

void ktls_server_drop(ktls_server *s, struct bufferevent *bev) {
  for (srv_conn *c = s->conns; c; c = c->next)
    if (c->bev == bev) {
      conn_free(c);
      return;
    }
}
unsigned ktls_server_sessions(const ktls_server *s) { return s->sessions; }
unsigned ktls_server_refusals(const ktls_server *s) { return s->refusals; }
const char *ktls_server_last_refusal(const ktls_server *s) { return s->last_refusal; }

void ktls_server_free(ktls_server *s) {
  if (!s) return;
  while (s->conns)
    conn_free(s->conns);
  if (s->lis) evconnlistener_free(s->lis);
  SSL_CTX_free(s->ctx);
  free(s);
}
