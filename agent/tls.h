/*
 * agent/tls.h: mutual TLS 1.3 between koreo-agent and the control plane.
 *
 * Owns the agent's identity: a small certificate authority (the control
 * plane's), bootstrap tokens, agent registration (EC P-256 key + CSR,
 * signed certificate stored in --state-dir), authenticated connections over
 * libevent bufferevent_openssl, and certificate renewal.  Both halves live
 * here so the control plane (issue 6) reuses them unchanged:
 *
 *   agent/tls.c         CA, CSR, signing, pins, tokens, state dir, SSL_CTX
 *                       builders and the agent-side client (ktls_client_*)
 *   agent/tls_server.c  the server side (ktls_server_*): TLS listener that
 *                       registers agents, authenticates them by certificate
 *                       and renews certificates; used by the tests as the
 *                       protocol harness and by the control plane later.
 *
 * Identity: an agent certificate has subject CN=<cluster> and a SAN URI
 * koreo://cluster/<cluster>; both must agree.  An agent that claims a
 * cluster other than the one in its certificate is refused.
 *
 * Bootstrap token (docs/agent-tls.md): "kbt.<id>.<secret>.<pin>" where id is
 * 16 lowercase hex digits, secret 32 lowercase hex digits (128 random bits),
 * pin 64 lowercase hex digits = SHA-256 of the DER SubjectPublicKeyInfo of
 * the CA certificate (the kubeadm discovery-token-ca-cert-hash scheme).  The
 * server keeps only SHA-256(secret); a token is single-use, expires, and is
 * bound to one cluster name.
 *
 * Wire format: frames of the agent protocol (include/koreo/frame.h: 4-byte
 * big-endian length + one koreo.agent.v1.Envelope; docs/agent-protocol.md).
 * This module speaks the unsequenced identity messages and nothing else:
 *   registration connection (no client certificate yet):
 *     RegisterRequest{token, csr_pem, cluster_name} -> RegisterResponse | Error, close
 *   authenticated connection (client certificate):
 *     Hello{cluster_name, versions, ...} -> HelloAck | Error(UNAUTHORIZED|VERSION), close
 *     RenewRequest{csr_pem}              -> RenewResponse | Error
 * After HelloAck every other envelope belongs to the session layer: the
 * server hands them to on_envelope, the client to its handler.  Frames are
 * limited to KTLS_MAX_FRAME before authentication and to the protocol's
 * KFRAME_MAX_DEFAULT (16 MiB) on an authenticated session.
 *
 * Errors: functions returning int give 0 on success and -1 on failure with
 * a message in the ktls_err; functions returning pointers give NULL.
 * Threading: everything async belongs to the thread running the event_base.
 */
#ifndef KOREO_AGENT_TLS_H
#define KOREO_AGENT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "koreo/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct bufferevent;

#define KTLS_MAX_FRAME (1u << 20) /* identity frames carry PEMs only (bytes) */
#define KTLS_CLUSTER_MAX 253      /* a DNS-1123 subdomain at most */

typedef struct ktls_err {
  char msg[512];
} ktls_err;

/* ---------------------------------------------------------------- keys, pins */

/* ktls_key_new: a fresh EC P-256 private key.  Caller frees with
 * EVP_PKEY_free.  NULL + err on failure. */
EVP_PKEY *ktls_key_new(ktls_err *err);

/* ktls_key_pem / ktls_cert_pem: PEM text (PKCS#8 unencrypted for keys),
 * malloc'd, NUL-terminated; caller frees.  NULL + err on failure. */
char *ktls_key_pem(EVP_PKEY *key, ktls_err *err);
char *ktls_cert_pem(X509 *cert, ktls_err *err);

/* ktls_key_from_pem / ktls_cert_from_pem: parse one PEM object.  Caller
 * frees the result.  NULL + err on malformed input. */
EVP_PKEY *ktls_key_from_pem(const char *pem, ktls_err *err);
X509 *ktls_cert_from_pem(const char *pem, ktls_err *err);
/* The hex SHA-256 of a PEM certificate's DER into out (64 hex digits and a
 * NUL; "" when `pem` is not a certificate): the fingerprint the control
 * plane records per cluster (clusters.cert_fingerprint). */
void ktls_cert_sha256(const char *pem, char out[65]);

/* ktls_cert_pin: SHA-256 of the certificate's DER SubjectPublicKeyInfo as 64
 * lowercase hex digits + NUL into out[65]. */
int ktls_cert_pin(X509 *cert, char out[65], ktls_err *err);

/* ktls_cert_cluster: the cluster identity of an agent certificate into
 * out[KTLS_CLUSTER_MAX+1]: the subject CN, which must equal the SAN URI
 * koreo://cluster/<name>.  -1 + err when either is missing or they differ. */
int ktls_cert_cluster(X509 *cert, char *out, size_t out_size, ktls_err *err);

/* ktls_cert_validity: notBefore/notAfter of a certificate as Unix seconds. */
int ktls_cert_validity(X509 *cert, time_t *not_before, time_t *not_after, ktls_err *err);

/* ktls_cluster_name_valid: a cluster name is a DNS-1123 subdomain (lowercase
 * alphanumerics, '-' and '.', alphanumeric at both ends, 1..253 chars). */
bool ktls_cluster_name_valid(const char *name);

/* ---------------------------------------------------------------- CA */

typedef struct ktls_ca ktls_ca;

/* ktls_ca_new: a self-signed CA (EC P-256, CN=<name>, basicConstraints
 * CA:TRUE, keyUsage keyCertSign+cRLSign) valid from now-60s for `days`
 * days.  Free with ktls_ca_free. */
ktls_ca *ktls_ca_new(const char *name, int days, ktls_err *err);

/* ktls_ca_from_pem: load a CA from its certificate and key PEM (as stored
 * by a control plane).  The key must match the certificate. */
ktls_ca *ktls_ca_from_pem(const char *cert_pem, const char *key_pem, ktls_err *err);
void ktls_ca_free(ktls_ca *ca);

/* ktls_ca_key_pem: the CA's private key as PEM (malloc'd; caller frees and
 * should cleanse it) so a control plane can persist its CA. */
char *ktls_ca_key_pem(const ktls_ca *ca, ktls_err *err);

/* Borrowed accessors; valid while the CA lives. */
X509 *ktls_ca_cert(const ktls_ca *ca);
const char *ktls_ca_cert_pem_str(const ktls_ca *ca); /* PEM of the CA certificate */
const char *ktls_ca_pin(const ktls_ca *ca);          /* 64 hex digits */

/* ktls_csr_new: a PEM certificate signing request for `cluster` (subject
 * CN=<cluster>, SAN URI koreo://cluster/<cluster>) signed with `key`.
 * malloc'd; caller frees.  -1/NULL + err on an invalid name. */
char *ktls_csr_new(EVP_PKEY *key, const char *cluster, ktls_err *err);

/* ktls_ca_sign_csr: issue an agent client certificate from a PEM CSR.  The
 * CSR's self-signature must verify and its CN must equal `cluster`; the
 * issued certificate carries CN=<cluster>, SAN URI koreo://cluster/<cluster>,
 * extendedKeyUsage clientAuth, a random 128-bit serial and the validity
 * [not_before, not_after] (Unix seconds; tests pass a past window to make an
 * expired certificate).  Returns malloc'd PEM; NULL + err otherwise. */
char *ktls_ca_sign_csr(ktls_ca *ca, const char *csr_pem, const char *cluster, time_t not_before,
                       time_t not_after, ktls_err *err);

/* ktls_ca_issue_server: a server certificate for the control plane's
 * listener, key generated here (PEMs returned in *cert_pem / *key_pem,
 * malloc'd).  `hosts` are SAN entries: IPv4/IPv6 literals become IP SANs,
 * anything else a DNS SAN.  Validity: now-60s .. now+days. */
int ktls_ca_issue_server(ktls_ca *ca, const char *const *hosts, size_t n_hosts, int days,
                         char **cert_pem, char **key_pem, ktls_err *err);

/* ---------------------------------------------------------------- tokens */

typedef struct ktls_token_store ktls_token_store;

/* In-memory token store (the control plane keeps them in PostgreSQL in
 * issue 6 with the same rules). */
ktls_token_store *ktls_token_store_new(void);
void ktls_token_store_free(ktls_token_store *ts);

/* ktls_token_create: a new token for `cluster`, expiring at `expires_at`
 * (Unix seconds), embedding the CA pin.  Writes "kbt.<id>.<secret>.<pin>"
 * (118 chars + NUL) to out[128]. */
int ktls_token_create(ktls_token_store *ts, const char *cluster, time_t expires_at,
                      const char *ca_pin, char out[128], ktls_err *err);

/* ktls_token_parse: split a token; id[17], secret[33], pin[65].  -1 + err
 * when the format is wrong. */
int ktls_token_parse(const char *token, char id[17], char secret[33], char pin[65], ktls_err *err);

/* ktls_token_check: is `token` unused, unexpired at `now`, with the right
 * secret, and bound to `cluster`?  Does not consume it. */
int ktls_token_check(ktls_token_store *ts, const char *token, const char *cluster, time_t now,
                     ktls_err *err);

/* ktls_token_consume: mark a token used (after a successful check and
 * signing).  -1 if unknown or already used. */
int ktls_token_consume(ktls_token_store *ts, const char *token, ktls_err *err);

/* ktls_register: the whole server-side registration decision: check the
 * token for `cluster`, sign the CSR with validity now-60s .. now+ttl_s, then
 * consume the token.  Returns the certificate PEM (malloc'd) or NULL + err;
 * a refused registration leaves the token unused. */
char *ktls_register(ktls_ca *ca, ktls_token_store *ts, const char *token, const char *cluster,
                    const char *csr_pem, long ttl_s, time_t now, ktls_err *err);

/* ---------------------------------------------------------------- state dir */

/* ktls_state_save: write key.pem, cert.pem and ca.pem to `dir` (created
 * 0700 if missing), each file mode 0600, written to a temporary file and
 * renamed so a crash never leaves a half-written identity.  Any of the three
 * may be NULL to leave that file unchanged. */
int ktls_state_save(const char *dir, const char *key_pem, const char *cert_pem, const char *ca_pem,
                    ktls_err *err);

/* ktls_state_load: read the three files (malloc'd strings).  -1 + err when
 * any is missing (the agent must register). */
int ktls_state_load(const char *dir, char **key_pem, char **cert_pem, char **ca_pem, ktls_err *err);

/* ktls_read_file: read a whole file (malloc'd, NUL-terminated). */
char *ktls_read_file(const char *path, ktls_err *err);

/* ---------------------------------------------------------------- SSL_CTX */

/* ktls_server_ctx: TLS 1.3 only; presents cert+key (and the CA cert as the
 * chain, so pinning agents can find it); requests a client certificate and
 * verifies it against `ca` (a missing certificate is allowed at the TLS
 * level so unregistered agents can register; ktls_server refuses anything
 * but "register" from them).  Caller frees with SSL_CTX_free. */
SSL_CTX *ktls_server_ctx(X509 *ca, const char *cert_pem, const char *key_pem, ktls_err *err);

/* ktls_client_ctx: TLS 1.3 only; trusts exactly one CA given either as a PEM
 * (ca_pem) or as a SPKI pin (pin: the server's chain must contain a CA
 * certificate with that pin, and the server certificate must verify against
 * it; never trust on first use).  cert_pem/key_pem: the client certificate,
 * or NULL for registration.  Caller frees. */
SSL_CTX *ktls_client_ctx(const char *ca_pem, const char *pin, const char *cert_pem,
                         const char *key_pem, ktls_err *err);

/* ---------------------------------------------------------------- agent client */

typedef struct ktls_client ktls_client;

typedef struct ktls_agent_opts {
  const char *host;             /* --server host (name or IP literal) */
  int port;                     /* --server port */
  const char *cluster;          /* --cluster-name */
  const char *state_dir;        /* --state-dir */
  const char *bootstrap_token;  /* --bootstrap-token, registration only */
  const char *ca_file;          /* --ca-file (optional; else the token pin / stored ca.pem) */
  long timeout_ms;              /* handshake + reply timeout; 0 = 10000 */
  const char *agent_version;    /* Hello/RegisterRequest.agent_version; NULL = "" */
  uint64_t last_acked_sequence; /* Hello.last_acked_sequence (the session's inbox) */
  /* Called right before each Hello is encoded (may be NULL) to add what
   * the caller knows (cached_definition_hashes, capabilities); whatever it
   * points the Hello at must stay valid until the caller's next change of
   * it (the Hello is encoded right after the call returns). */
  void (*fill_hello)(Koreo__Agent__V1__Hello *hello, void *arg);
  void *fill_hello_arg;
} ktls_agent_opts;

/* status: 0 = done, -1 = refused/failed (reason in msg). */
typedef void (*ktls_client_cb)(ktls_client *c, int status, const char *msg, void *arg);

/* ktls_client_register: dial, verify the server (ca_file, else the token's
 * CA pin), make an EC P-256 key and CSR, send the token, and on success
 * store key/cert/CA in state_dir (0600).  cb runs once from the loop; the
 * connection is closed afterwards.  Free the client with ktls_client_free
 * (after or inside cb).  NULL + err when the request cannot start. */
ktls_client *ktls_client_register(struct event_base *base, const ktls_agent_opts *o,
                                  ktls_client_cb cb, void *arg, ktls_err *err);

/* ktls_client_connect: dial with the stored certificate, verify the server
 * against the stored CA (or ca_file), and send hello claiming o->cluster.
 * cb(0) when the server acknowledged the identity; the connection then
 * stays open for the session (ktls_client_bev) and for ktls_client_renew. */
ktls_client *ktls_client_connect(struct event_base *base, const ktls_agent_opts *o,
                                 ktls_client_cb cb, void *arg, ktls_err *err);

/* ktls_client_renew: on a connected client, make a new key + CSR, ask for a
 * new certificate over the authenticated connection and store both in the
 * state dir.  cb runs once.  On failure the connection is closed (the
 * session reconnects with the still-valid certificate and tries again). */
int ktls_client_renew(ktls_client *c, ktls_client_cb cb, void *arg, ktls_err *err);

/* Session handler: every envelope received on the authenticated connection
 * that is not the answer to a pending renewal.  The handler owns env (free
 * with kframe_envelope_free).  Return false to close the connection; it
 * must not free the client. */
typedef bool (*ktls_client_handler)(ktls_client *c, kframe_envelope *env, void *arg);
void ktls_client_set_handler(ktls_client *c, ktls_client_handler h, void *arg);

/* The HelloAck the server answered with (borrowed; NULL before). */
const Koreo__Agent__V1__HelloAck *ktls_client_hello_ack(ktls_client *c);

/* ktls_renew_at: when a certificate is due for renewal (Unix seconds):
 * notBefore + 2/3 of its lifetime.  0 for an unreadable certificate. */
time_t ktls_renew_at(const char *cert_pem);

/* ktls_client_auto_renew: on a connected client, renew the certificate at
 * ktls_renew_at (at once when already due) over this connection, again
 * after every success, and retry after retry_s seconds (0 = 60) after a
 * failure.  cb (may be NULL) reports each attempt; it must not free the
 * client.  Stops when the client is freed. */
int ktls_client_auto_renew(ktls_client *c, long retry_s, ktls_client_cb cb, void *arg,
                           ktls_err *err);

/* ktls_renew_due: true when less than a third of the certificate's validity
 * remains at `now` (or it is already expired): time to renew. */
bool ktls_renew_due(const char *cert_pem, time_t now);

/* The open authenticated connection (borrowed), NULL if not connected. */
struct bufferevent *ktls_client_bev(ktls_client *c);
/* Negotiated protocol version string ("TLSv1.3"), NULL if not connected. */
const char *ktls_client_tls_version(ktls_client *c);
void ktls_client_free(ktls_client *c);

/* ---------------------------------------------------------------- server */

typedef struct ktls_server ktls_server;

/* The answer of an asynchronous bootstrap-token validator: ok = the token
 * was valid for the cluster and is now consumed; otherwise `reason` says
 * why (e.g. "unknown, used or expired token").  Call exactly once, from the
 * loop's thread (possibly inside the validator call itself). */
typedef void (*ktls_token_done)(void *done_arg, bool ok, const char *reason);

typedef struct ktls_server_opts {
  const char *bind_host;    /* IP literal, e.g. "127.0.0.1" */
  int port;                 /* 0 = any free port (see ktls_server_port) */
  ktls_ca *ca;              /* borrowed; signs agent certificates */
  ktls_token_store *tokens; /* borrowed; may be NULL when validate_token is set */
  /* Optional server certificate + key PEM (issued by `ca`) for the
   * listener; NULL: one is issued for bind_host and "localhost". */
  const char *cert_pem, *key_pem;
  /* Optional asynchronous bootstrap-token validation (the control plane's
   * database, issue 6).  When set it replaces the in-memory token store:
   * on a RegisterRequest the server first signs the CSR (a bad CSR is
   * refused without touching the token), then calls validate_token(arg,
   * token, cluster, done, done_arg); `done` must check AND consume the
   * token atomically.  The certificate is sent only after done(ok=true);
   * if the connection died meanwhile the answer is dropped. */
  void (*validate_token)(void *arg, const char *token, const char *cluster, ktls_token_done done,
                         void *done_arg);
  /* Optional: an agent registered or renewed its certificate (the new
   * certificate was sent): the cluster, the hex SHA-256 of the
   * certificate's DER and its notAfter (Unix s). */
  void (*on_registered)(void *arg, const char *cluster, const char *cert_sha256_hex,
                        time_t not_after);
  long cert_ttl_s;      /* validity of issued agent certificates; 0 = 30 days */
  long auth_timeout_ms; /* a connection must finish the handshake and its
                           Register/Hello within this; 0 = 10000 */
  /* Called when an agent's identity is established (Hello accepted), before
   * HelloAck is sent: fill `ack` (last_acked_sequence, heartbeat interval,
   * capabilities; protocol_version is already chosen).  The bufferevent
   * stays owned by the server; write frames to it freely. */
  void (*on_session)(void *arg, const char *cluster, const Koreo__Agent__V1__Hello *hello,
                     Koreo__Agent__V1__HelloAck *ack, struct bufferevent *bev);
  /* Every later envelope of an authenticated session except RenewRequest
   * (which the server answers itself).  Owns env.  Return false to close
   * the connection.  NULL: such envelopes are a protocol error. */
  bool (*on_envelope)(void *arg, const char *cluster, kframe_envelope *env,
                      struct bufferevent *bev);
  /* An authenticated session ended (either side closed or an error). */
  void (*on_closed)(void *arg, const char *cluster);
  /* Called for every refused connection or request with the reason. */
  void (*on_refused)(void *arg, const char *reason);
  void *arg;
} ktls_server_opts;

/* ktls_server_new: listen on bind_host:port with cert_pem/key_pem, or a
 * server certificate issued by the CA for bind_host and "localhost".  Needs
 * tokens or validate_token.  NULL + err on failure. */
ktls_server *ktls_server_new(struct event_base *base, const ktls_server_opts *o, ktls_err *err);
int ktls_server_port(const ktls_server *s);
/* Close the authenticated connection whose bufferevent is `bev` (as given
 * to on_session) at once; on_closed runs before this returns.  Used when a
 * second session for the same cluster replaces the first, and when the
 * peer stopped sending heartbeats.  Unknown bev: nothing happens. */
void ktls_server_drop(ktls_server *s, struct bufferevent *bev);
/* Counters for tests and metrics. */
unsigned ktls_server_sessions(const ktls_server *s); /* hellos accepted */
unsigned ktls_server_refusals(const ktls_server *s);
const char *ktls_server_last_refusal(const ktls_server *s); /* "" if none */
void ktls_server_free(ktls_server *s);

#ifdef __cplusplus
}
#endif

#endif
