/*
 * tests/agent/test_agent_tls.c: mutual TLS 1.3 between koreo-agent and the
 * control plane (agent/tls.h), with a real TLS listener (ktls_server) and
 * the agent client on one libevent loop over 127.0.0.1: registration with
 * bootstrap tokens, the state dir, authentication by certificate, renewal,
 * and every refusal the issue lists (wrong CA, expired certificate, cluster
 * B claiming A, reused / expired token, CA pin mismatch).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "tls.h"

#include "agent_test_util.h" /* after tls.h: its frame helpers */

typedef struct fx {
  struct event_base *base;
  ktls_ca *ca;
  ktls_token_store *tokens;
  ktls_server *srv;
  char dir[128]; /* state dir (not created: registration creates it) */
  char root[64];
  /* client outcome */
  bool done;
  int status;
  char msg[600];
  char session_cluster[KTLS_CLUSTER_MAX + 1];
  char envelope_cluster[KTLS_CLUSTER_MAX + 1];
  uint64_t hello_last_acked;
  int server_envelopes, closed_sessions;
  int64_t client_heartbeat; /* last heartbeat the client's handler got */
  /* certificates the server issued (on_registered) */
  int issued;
  char issued_cluster[KTLS_CLUSTER_MAX + 1];
  char issued_fp[65];
  time_t issued_not_after;
} fx;

static void on_session(void *arg, const char *cluster, const Koreo__Agent__V1__Hello *hello,
                       Koreo__Agent__V1__HelloAck *ack, struct bufferevent *bev) {
  (void)bev;
  fx *f = arg;
  snprintf(f->session_cluster, sizeof f->session_cluster, "%s", cluster);
  f->hello_last_acked = hello->last_acked_sequence;
  ack->last_acked_sequence = 41; /* the session layer fills the ack */
}

/* Session envelopes reach the server with the authenticated cluster; it
 * answers a Heartbeat with a Heartbeat. */
static bool on_envelope(void *arg, const char *cluster, kframe_envelope *env,
                        struct bufferevent *bev) {
  fx *f = arg;
  snprintf(f->envelope_cluster, sizeof f->envelope_cluster, "%s", cluster);
  f->server_envelopes++;
  bool hb = env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT;
  if (hb) {
    Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
    Koreo__Agent__V1__Heartbeat h = KOREO__AGENT__V1__HEARTBEAT__INIT;
    h.sent_unix_ms = env->heartbeat->sent_unix_ms + 1;
    e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT;
    e.heartbeat = &h;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kframe_encode(&e, 0, &buf, &len, NULL), KFRAME_OK);
    bufferevent_write(bev, buf, len);
    free(buf);
  }
  kframe_envelope_free(env);
  return hb;
}

/* Certificates the server issued (registration or renewal). */
static void on_registered(void *arg, const char *cluster, const char *fp, time_t not_after) {
  fx *f = arg;
  snprintf(f->issued_cluster, sizeof f->issued_cluster, "%s", cluster);
  snprintf(f->issued_fp, sizeof f->issued_fp, "%s", fp);
  f->issued_not_after = not_after;
  f->issued++;
}

static void on_closed(void *arg, const char *cluster) {
  fx *f = arg;
  (void)cluster;
  f->closed_sessions++;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ktls_err err = {{0}};
  f->base = event_base_new();
  f->ca = ktls_ca_new("koreo-test-ca", 30, &err);
  f->tokens = ktls_token_store_new();
  assert_non_null(f->ca);
  ktls_server_opts o = {.bind_host = "127.0.0.1",
                        .ca = f->ca,
                        .tokens = f->tokens,
                        .on_session = on_session,
                        .on_envelope = on_envelope,
                        .on_closed = on_closed,
                        .on_registered = on_registered,
                        .arg = f};
  f->srv = ktls_server_new(f->base, &o, &err);
  if (!f->srv) fail_msg("server: %s", err.msg);
  strcpy(f->root, "/tmp/ktls-test-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->dir, sizeof f->dir, "%s/state", f->root);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  ktls_server_free(f->srv);
  ktls_token_store_free(f->tokens);
  ktls_ca_free(f->ca);
  event_base_free(f->base);
  rm_rf(f->root);
  free(f);
  return 0;
}

static void client_cb(ktls_client *c, int status, const char *msg, void *arg) {
  (void)c;
  fx *f = arg;
  f->done = true;
  f->status = status;
  snprintf(f->msg, sizeof f->msg, "%s", msg);
}

/* Run the loop until the client's callback fired, then give the server a
 * few more turns to log its side. */
static void run(fx *f) {
  while (!f->done)
    event_base_loop(f->base, EVLOOP_ONCE);
  for (int i = 0; i < 20; i++)
    event_base_loop(f->base, EVLOOP_NONBLOCK);
  struct timeval tv = {0, 20000};
  event_base_loopexit(f->base, &tv);
  event_base_dispatch(f->base);
  if (getenv("KTLS_TEST_VERBOSE"))
    fprintf(stderr, "  client: %d %s | server: %s\n", f->status, f->msg,
            ktls_server_last_refusal(f->srv));
}

static ktls_agent_opts opts(fx *f, const char *cluster, const char *token) {
  ktls_agent_opts o = {.host = "127.0.0.1",
                       .port = ktls_server_port(f->srv),
                       .cluster = cluster,
                       .state_dir = f->dir,
                       .bootstrap_token = token,
                       .timeout_ms = 5000};
  return o;
}

/* Turn the loop in 1 ms slices until `cond` holds (at most ~2 s). */
static void spin(fx *f) {
  struct timeval tv = {0, 1000};
  event_base_loopexit(f->base, &tv);
  event_base_dispatch(f->base);
}
#define SPIN_UNTIL(f, cond)                                                                        \
  for (int spin_i = 0; spin_i < 2000 && !(cond); spin_i++)                                         \
  spin(f)

/* Register `cluster` with `token`; returns the client status. */
static int do_register(fx *f, const char *cluster, const char *token) {
  ktls_err err = {{0}};
  ktls_agent_opts o = opts(f, cluster, token);
  f->done = false;
  ktls_client *c = ktls_client_register(f->base, &o, client_cb, f, &err);
  if (!c) {
    snprintf(f->msg, sizeof f->msg, "%s", err.msg);
    return -2;
  }
  run(f);
  ktls_client_free(c);
  return f->status;
}

/* Connect claiming `cluster`; the connected client is returned in *out when
 * non-NULL, else freed. */
static int do_connect(fx *f, const char *cluster, ktls_client **out) {
  ktls_err err = {{0}};
  ktls_agent_opts o = opts(f, cluster, NULL);
  f->done = false;
  ktls_client *c = ktls_client_connect(f->base, &o, client_cb, f, &err);
  if (!c) {
    snprintf(f->msg, sizeof f->msg, "%s", err.msg);
    return -2;
  }
  run(f);
  int st = f->status;
  if (out)
    *out = c;
  else
    ktls_client_free(c);
  return st;
}

static void new_token(fx *f, const char *cluster, time_t expires, const char *pin, char tok[128]) {
  ktls_err err = {{0}};
  assert_int_equal(
      ktls_token_create(f->tokens, cluster, expires, pin ? pin : ktls_ca_pin(f->ca), tok, &err), 0);
}

static mode_t file_mode(const char *dir, const char *name) {
  char p[256];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (stat(p, &st) != 0) return (mode_t)-1;
  return st.st_mode & 0777;
}

/* Store an identity for `cluster` signed by `ca` with the given validity,
 * trusting the server's CA. */
static void forge_identity(fx *f, ktls_ca *ca, const char *cluster, time_t nb, time_t na) {
  ktls_err err = {{0}};
  EVP_PKEY *k = ktls_key_new(&err);
  char *csr = ktls_csr_new(k, cluster, &err);
  char *cert = ktls_ca_sign_csr(ca, csr, cluster, nb, na, &err);
  char *key = ktls_key_pem(k, &err);
  assert_non_null(cert);
  assert_int_equal(ktls_state_save(f->dir, key, cert, ktls_ca_cert_pem_str(f->ca), &err), 0);
  free(csr);
  free(cert);
  free(key);
  EVP_PKEY_free(k);
}

/* ------------------------------------------------------------ happy path */

static void test_register_then_connect(void **state) {
  fx *f = *state;
  char tok[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  assert_int_equal(do_register(f, "alpha", tok), 0);
  /* the identity is stored, owner-only */
  assert_int_equal(file_mode(f->dir, "key.pem"), 0600);
  assert_int_equal(file_mode(f->dir, "cert.pem"), 0600);
  assert_int_equal(file_mode(f->dir, "ca.pem"), 0600);
  char *key, *cert, *ca;
  ktls_err err = {{0}};
  assert_int_equal(ktls_state_load(f->dir, &key, &cert, &ca, &err), 0);
  assert_string_equal(ca, ktls_ca_cert_pem_str(f->ca));
  X509 *x = ktls_cert_from_pem(cert, &err);
  char cl[KTLS_CLUSTER_MAX + 1];
  assert_int_equal(ktls_cert_cluster(x, cl, sizeof cl, &err), 0);
  assert_string_equal(cl, "alpha");
  X509_free(x);
  free(key);
  free(cert);
  free(ca);

  ktls_client *c = NULL;
  assert_int_equal(do_connect(f, "alpha", &c), 0);
  assert_string_equal(ktls_client_tls_version(c), "TLSv1.3");
  assert_non_null(ktls_client_bev(c));
  assert_string_equal(f->session_cluster, "alpha");
  assert_int_equal(ktls_server_sessions(f->srv), 1);
  ktls_client_free(c);
  for (int i = 0; i < 20; i++)
    event_base_loop(f->base, EVLOOP_NONBLOCK);
  assert_int_equal(ktls_server_refusals(f->srv), 0);
}

static void test_register_with_ca_file(void **state) {
  fx *f = *state;
  char tok[128], path[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  snprintf(path, sizeof path, "%s/ca.crt", f->root);
  FILE *fp = fopen(path, "w");
  fputs(ktls_ca_cert_pem_str(f->ca), fp);
  fclose(fp);
  ktls_err err = {{0}};
  ktls_agent_opts o = opts(f, "alpha", tok);
  o.ca_file = path;
  f->done = false;
  ktls_client *c = ktls_client_register(f->base, &o, client_cb, f, &err);
  assert_non_null(c);
  run(f);
  ktls_client_free(c);
  assert_int_equal(f->status, 0);
  assert_int_equal(do_connect(f, "alpha", NULL), 0);
}

static void test_server_name_checked_even_with_pin(void **state) {
  fx *f = *state;
  /* a second server of the same CA whose certificate names 0.0.0.0 and
   * localhost, not 127.0.0.1: the pinned CA is right, the name is not */
  ktls_err err = {{0}};
  ktls_server_opts so = {.bind_host = "0.0.0.0", .ca = f->ca, .tokens = f->tokens};
  ktls_server *other = ktls_server_new(f->base, &so, &err);
  assert_non_null(other);
  char tok[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  ktls_agent_opts o = opts(f, "alpha", tok);
  o.port = ktls_server_port(other);
  f->done = false;
  ktls_client *c = ktls_client_register(f->base, &o, client_cb, f, &err);
  assert_non_null(c);
  run(f);
  ktls_client_free(c);
  assert_int_equal(f->status, -1);
  assert_non_null(strstr(f->msg, "mismatch"));
  assert_int_equal(ktls_token_check(f->tokens, tok, "alpha", time(NULL), &err), 0);
  ktls_server_free(other);
}

/* ------------------------------------------------------------ tokens */

static void test_reused_token_refused(void **state) {
  fx *f = *state;
  char tok[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  assert_int_equal(do_register(f, "alpha", tok), 0);
  snprintf(f->dir, sizeof f->dir, "%s/state2", f->root);
  assert_int_equal(do_register(f, "alpha", tok), -1);
  assert_non_null(strstr(f->msg, "already used"));
  assert_non_null(strstr(ktls_server_last_refusal(f->srv), "already used"));
  assert_int_equal(file_mode(f->dir, "cert.pem"), (mode_t)-1);
}

static void test_expired_token_refused(void **state) {
  fx *f = *state;
  char tok[128];
  new_token(f, "alpha", time(NULL) - 1, NULL, tok);
  assert_int_equal(do_register(f, "alpha", tok), -1);
  assert_non_null(strstr(f->msg, "expired"));
  assert_int_equal(file_mode(f->dir, "cert.pem"), (mode_t)-1);
}

static void test_token_bound_to_cluster(void **state) {
  fx *f = *state;
  char tok[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  assert_int_equal(do_register(f, "beta", tok), -1);
  assert_non_null(strstr(f->msg, "bound to cluster 'alpha'"));
  /* a refused attempt does not burn the token for its rightful cluster */
  assert_int_equal(do_register(f, "alpha", tok), 0);
}

static void test_forged_token_secret_refused(void **state) {
  fx *f = *state;
  char tok[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  tok[25] = tok[25] == 'a' ? 'b' : 'a'; /* flip a secret digit */
  assert_int_equal(do_register(f, "alpha", tok), -1);
  assert_non_null(strstr(f->msg, "unknown"));
}

static void test_pin_mismatch_refused(void **state) {
  fx *f = *state;
  ktls_err err = {{0}};
  ktls_ca *other = ktls_ca_new("impostor-ca", 1, &err);
  char tok[128];
  /* a token whose pin names a CA the server does not have: the agent must
   * refuse the server during the handshake and send nothing */
  new_token(f, "alpha", time(NULL) + 600, ktls_ca_pin(other), tok);
  assert_int_equal(do_register(f, "alpha", tok), -1);
  assert_non_null(strstr(f->msg, "server certificate refused"));
  assert_int_equal(file_mode(f->dir, "cert.pem"), (mode_t)-1);
  /* and the server never saw a registration: the token is still unused */
  assert_int_equal(ktls_token_check(f->tokens, tok, "alpha", time(NULL), &err), 0);
  ktls_ca_free(other);
}

static void test_ca_file_not_matching_pin(void **state) {
  fx *f = *state;
  ktls_err err = {{0}};
  ktls_ca *other = ktls_ca_new("other-ca", 1, &err);
  char tok[128], path[128];
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  snprintf(path, sizeof path, "%s/other.crt", f->root);
  FILE *fp = fopen(path, "w");
  fputs(ktls_ca_cert_pem_str(other), fp);
  fclose(fp);
  ktls_agent_opts o = opts(f, "alpha", tok);
  o.ca_file = path;
  assert_null(ktls_client_register(f->base, &o, client_cb, f, &err));
  assert_non_null(strstr(err.msg, "does not match the CA pin"));
  ktls_ca_free(other);
}

/* ------------------------------------------------------------ certificates */

static void test_certificate_from_other_ca_refused(void **state) {
  fx *f = *state;
  ktls_err err = {{0}};
  ktls_ca *other = ktls_ca_new("other-ca", 1, &err);
  time_t now = time(NULL);
  forge_identity(f, other, "alpha", now - 60, now + 3600);
  assert_int_equal(do_connect(f, "alpha", NULL), -1);
  assert_int_equal(ktls_server_sessions(f->srv), 0);
  assert_non_null(strstr(ktls_server_last_refusal(f->srv), "client certificate"));
  ktls_ca_free(other);
}

static void test_expired_certificate_refused(void **state) {
  fx *f = *state;
  time_t now = time(NULL);
  forge_identity(f, f->ca, "alpha", now - 7200, now - 3600);
  assert_int_equal(do_connect(f, "alpha", NULL), -1);
  assert_int_equal(ktls_server_sessions(f->srv), 0);
  assert_non_null(strstr(ktls_server_last_refusal(f->srv), "expired"));
}

static void test_cluster_b_claiming_a_refused(void **state) {
  fx *f = *state;
  time_t now = time(NULL);
  forge_identity(f, f->ca, "beta", now - 60, now + 3600);
  assert_int_equal(do_connect(f, "alpha", NULL), -1);
  assert_non_null(strstr(f->msg, "claims cluster 'alpha' but its certificate is for 'beta'"));
  assert_int_equal(ktls_server_sessions(f->srv), 0);
  /* the same certificate claiming its own cluster is fine */
  assert_int_equal(do_connect(f, "beta", NULL), 0);
  assert_string_equal(f->session_cluster, "beta");
}

static void test_hello_without_certificate_refused(void **state) {
  fx *f = *state;
  /* a CA but no client certificate: cert.pem missing -> cannot connect */
  ktls_err err = {{0}};
  assert_int_equal(ktls_state_save(f->dir, NULL, NULL, ktls_ca_cert_pem_str(f->ca), &err), 0);
  ktls_agent_opts o = opts(f, "alpha", NULL);
  assert_null(ktls_client_connect(f->base, &o, client_cb, f, &err));
  assert_non_null(strstr(err.msg, "register with --bootstrap-token first"));
}

/* ------------------------------------------------------------ renewal */

static void test_renewal(void **state) {
  fx *f = *state;
  time_t now = time(NULL);
  /* a certificate near the end of its life */
  forge_identity(f, f->ca, "alpha", now - 3000, now + 100);
  char *key0, *cert0, *ca0;
  ktls_err err = {{0}};
  assert_int_equal(ktls_state_load(f->dir, &key0, &cert0, &ca0, &err), 0);
  assert_true(ktls_renew_due(cert0, now));

  ktls_client *c = NULL;
  assert_int_equal(do_connect(f, "alpha", &c), 0);
  f->done = false;
  assert_int_equal(ktls_client_renew(c, client_cb, f, &err), 0);
  run(f);
  assert_int_equal(f->status, 0);
  assert_string_equal(f->msg, "renewed");
  ktls_client_free(c);

  char *key1, *cert1, *ca1;
  assert_int_equal(ktls_state_load(f->dir, &key1, &cert1, &ca1, &err), 0);
  assert_string_not_equal(cert0, cert1);
  assert_string_not_equal(key0, key1); /* a fresh key, not just a new certificate */
  assert_false(ktls_renew_due(cert1, now));
  assert_int_equal(file_mode(f->dir, "key.pem"), 0600);
  /* the server reported the new certificate (the control plane records
   * its fingerprint and expiry for the cluster) */
  assert_int_equal(f->issued, 1);
  assert_string_equal(f->issued_cluster, "alpha");
  char fp1[65];
  ktls_cert_sha256(cert1, fp1);
  assert_int_equal(strlen(fp1), 64);
  assert_string_equal(f->issued_fp, fp1);
  assert_true(f->issued_not_after > now + 86400);
  /* the renewed identity authenticates */
  assert_int_equal(do_connect(f, "alpha", NULL), 0);
  assert_int_equal(ktls_server_sessions(f->srv), 2);
  assert_int_equal(ktls_server_refusals(f->srv), 0); /* closing a session is no refusal */
  free(key0);
  free(cert0);
  free(ca0);
  free(key1);
  free(cert1);
  free(ca1);
}

static void test_auto_renewal(void **state) {
  fx *f = *state;
  time_t now = time(NULL);
  /* 1/3 of the life left at most: renewal is due at once */
  forge_identity(f, f->ca, "alpha", now - 200, now + 50);
  char *k0, *c0, *a0;
  ktls_err err = {{0}};
  assert_int_equal(ktls_state_load(f->dir, &k0, &c0, &a0, &err), 0);
  assert_true(ktls_renew_at(c0) <= now);
  ktls_client *c = NULL;
  assert_int_equal(do_connect(f, "alpha", &c), 0);
  f->done = false;
  f->status = 99;
  assert_int_equal(ktls_client_auto_renew(c, 1, client_cb, f, &err), 0);
  SPIN_UNTIL(f, f->done);
  assert_int_equal(f->status, 0);
  char *k1, *c1, *a1;
  assert_int_equal(ktls_state_load(f->dir, &k1, &c1, &a1, &err), 0);
  assert_string_not_equal(c0, c1);
  /* the next renewal is scheduled two thirds into the new certificate's life */
  assert_true(ktls_renew_at(c1) > now + 86400);
  ktls_client_free(c);
  free(k0);
  free(c0);
  free(a0);
  free(k1);
  free(c1);
  free(a1);
}

/* ------------------------------------------------------------ session handover */

static bool client_handler(ktls_client *c, kframe_envelope *env, void *arg) {
  (void)c;
  fx *f = arg;
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT)
    f->client_heartbeat = env->heartbeat->sent_unix_ms;
  kframe_envelope_free(env);
  return true;
}

static void send_heartbeat(struct bufferevent *bev, int64_t ms) {
  assert_true(send_test_heartbeat(bev, 0, ms));
}

static void test_session_handover(void **state) {
  fx *f = *state;
  time_t now = time(NULL);
  forge_identity(f, f->ca, "alpha", now - 60, now + 3600);
  ktls_err err = {{0}};
  ktls_agent_opts o = opts(f, "alpha", NULL);
  o.last_acked_sequence = 17;
  o.agent_version = "0.1.0";
  f->done = false;
  ktls_client *c = ktls_client_connect(f->base, &o, client_cb, f, &err);
  assert_non_null(c);
  run(f);
  assert_int_equal(f->status, 0);
  /* Hello carried the session's ack; HelloAck carries the server's */
  assert_int_equal(f->hello_last_acked, 17);
  assert_non_null(ktls_client_hello_ack(c));
  assert_int_equal(ktls_client_hello_ack(c)->last_acked_sequence, 41);
  assert_int_equal(ktls_client_hello_ack(c)->protocol_version, KFRAME_PROTOCOL_MAX);
  ktls_client_set_handler(c, client_handler, f);
  send_heartbeat(ktls_client_bev(c), 1000);
  SPIN_UNTIL(f, f->client_heartbeat == 1001);
  assert_int_equal(f->server_envelopes, 1);
  assert_string_equal(f->envelope_cluster, "alpha");
  assert_int_equal(f->client_heartbeat, 1001);
  ktls_client_free(c);
  SPIN_UNTIL(f, f->closed_sessions >= 1);
  assert_int_equal(f->closed_sessions, 1);
  assert_int_equal(ktls_server_refusals(f->srv), 0);
}

static void test_garbage_closes_only_that_session(void **state) {
  fx *f = *state;
  time_t now = time(NULL);
  forge_identity(f, f->ca, "alpha", now - 60, now + 3600);
  ktls_client *a = NULL, *b = NULL;
  assert_int_equal(do_connect(f, "alpha", &a), 0);
  assert_int_equal(do_connect(f, "alpha", &b), 0);
  ktls_client_set_handler(b, client_handler, f);
  /* a length prefix of 2 GiB: oversized */
  static const uint8_t bad[] = {0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
  bufferevent_write(ktls_client_bev(a), bad, sizeof bad);
  SPIN_UNTIL(f, f->closed_sessions >= 1);
  assert_int_equal(f->closed_sessions, 1);
  assert_non_null(strstr(ktls_server_last_refusal(f->srv), "protocol error"));
  /* the other session still works */
  send_heartbeat(ktls_client_bev(b), 5);
  SPIN_UNTIL(f, f->client_heartbeat == 6);
  assert_int_equal(f->client_heartbeat, 6);
  ktls_client_free(a);
  ktls_client_free(b);
}

static void test_idle_unauthenticated_connection_dropped(void **state) {
  fx *f = *state;
  ktls_err err = {{0}};
  ktls_server_opts so = {
      .bind_host = "127.0.0.1", .ca = f->ca, .tokens = f->tokens, .auth_timeout_ms = 100};
  ktls_server *s = ktls_server_new(f->base, &so, &err);
  assert_non_null(s);
  /* a plain TCP client that never starts TLS */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ktls_server_port(s))};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  SPIN_UNTIL(f, ktls_server_refusals(s) >= 1);
  assert_int_equal(ktls_server_refusals(s), 1);
  assert_non_null(strstr(ktls_server_last_refusal(s), "no TLS handshake within 100 ms"));
  char b;
  assert_int_equal(read(fd, &b, 1), 0); /* the server closed it */
  close(fd);
  ktls_server_free(s);
}

/* ------------------------------------------------------------ pure parts */

static void test_token_format(void **state) {
  fx *f = *state;
  char tok[128], id[17], sec[33], pin[65];
  ktls_err err = {{0}};
  new_token(f, "alpha", time(NULL) + 600, NULL, tok);
  assert_int_equal(strlen(tok), 118);
  assert_int_equal(ktls_token_parse(tok, id, sec, pin, &err), 0);
  assert_string_equal(pin, ktls_ca_pin(f->ca));
  assert_int_equal(ktls_token_parse("kbt.abc.def.012", id, sec, pin, &err), -1);
  tok[4] = 'G';
  assert_int_equal(ktls_token_parse(tok, id, sec, pin, &err), -1);
  assert_int_equal(
      ktls_token_create(f->tokens, "Not_A_Name", time(NULL), ktls_ca_pin(f->ca), tok, &err), -1);
}

static void test_csr_for_other_cluster_not_signed(void **state) {
  fx *f = *state;
  ktls_err err = {{0}};
  EVP_PKEY *k = ktls_key_new(&err);
  char *csr = ktls_csr_new(k, "beta", &err);
  time_t now = time(NULL);
  assert_null(ktls_ca_sign_csr(f->ca, csr, "alpha", now, now + 60, &err));
  assert_non_null(strstr(err.msg, "different cluster"));
  assert_null(ktls_ca_sign_csr(f->ca, "garbage", "alpha", now, now + 60, &err));
  char tok[128];
  new_token(f, "alpha", now + 600, NULL, tok);
  /* a refused CSR leaves the token usable */
  assert_null(ktls_register(f->ca, f->tokens, tok, "alpha", csr, 60, now, &err));
  assert_int_equal(ktls_token_check(f->tokens, tok, "alpha", now, &err), 0);
  free(csr);
  EVP_PKEY_free(k);
}

static void test_ca_roundtrip_from_pem(void **state) {
  fx *f = *state;
  ktls_err err = {{0}};
  ktls_ca *other = ktls_ca_new("x", 1, &err);
  /* a CA loaded with a key that is not its own is refused */
  EVP_PKEY *k = ktls_key_new(&err);
  char *kp = ktls_key_pem(k, &err);
  assert_null(ktls_ca_from_pem(ktls_ca_cert_pem_str(f->ca), kp, &err));
  assert_non_null(strstr(err.msg, "does not match"));
  free(kp);
  EVP_PKEY_free(k);
  ktls_ca_free(other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_then_connect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_register_with_ca_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_name_checked_even_with_pin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reused_token_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_token_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_bound_to_cluster, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forged_token_secret_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pin_mismatch_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ca_file_not_matching_pin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_certificate_from_other_ca_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_certificate_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cluster_b_claiming_a_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hello_without_certificate_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_renewal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_auto_renewal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_handover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage_closes_only_that_session, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_unauthenticated_connection_dropped, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_token_format, setup, teardown),
      cmocka_unit_test_setup_teardown(test_csr_for_other_cluster_not_signed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ca_roundtrip_from_pem, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
