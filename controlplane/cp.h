/*
 * controlplane/cp.h: what the parts of koreo-controlplane share (issue 6):
 * the options of the daemon and the process context that main.c builds and
 * hands to the engine (agents, scheduler, history: engine.h) and the HTTP
 * API (api.h).  Everything runs on ctx->base, one thread.
 */
#ifndef KOREO_CP_H
#define KOREO_CP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "tls.h" /* agent/tls.h: ktls_ca */

struct event_base;
typedef struct cp_engine cp_engine;
typedef struct cp_api cp_api;

typedef struct cp_options {
  const char *database_url;      /* --database-url or KOREO_DATABASE_URL */
  const char *agent_listen;      /* --agent-listen HOST:PORT, default 0.0.0.0:9443 */
  const char *api_listen;        /* --api-listen HOST:PORT, default 127.0.0.1:8443 */
  const char *pki_dir;           /* --pki-dir: ca.crt ca.key server.crt server.key */
  const char *const *namespaces; /* --namespaces a,b (definition priority order) */
  size_t n_namespaces;
  int64_t resync_ms;                      /* --resync, default 20m (spec 6.11) */
  int64_t history_retention_s;            /* --history-retention, default 30d */
  int64_t heartbeat_ms;                   /* agents' heartbeat interval, default 10 s */
  int64_t run_timeout_ms;                 /* deadline per Workflow run, default 30 s */
  int64_t backoff_min_ms, backoff_max_ms; /* failed runs: 1 s doubling to 5 min */
  int64_t lease_ms;                       /* work-queue claim lease, default 60 s */
  bool log_json;                          /* --log-format json */
  const char *replica_id;                 /* --replica-id, default "<hostname>-<pid>" */
} cp_options;

typedef struct cp_ctx {
  struct event_base *base;
  const cp_options *opt;
  cpdb *db;
  ktls_ca *ca;                                  /* the agents' and API clients' CA (pki_dir) */
  const char *server_cert_pem, *server_key_pem; /* issued by ca for the listen hosts */
  cp_engine *engine;
  cp_api *api;
} cp_ctx;

/* Logging (text "TS LEVEL msg" or JSON lines on stderr, per --log-format). */
typedef enum cp_log_level { CP_DEBUG, CP_INFO, CP_WARN, CP_ERROR } cp_log_level;
void cp_log_setup(bool json, cp_log_level min);
void cp_log(cp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hex SHA-256 of `len` bytes (65 bytes out incl. NUL). */
void cp_sha256_hex(const void *data, size_t len, char out[65]);

/* cp_random_hex: `nbytes` (<= 32) random bytes from the OpenSSL CSPRNG as
 * 2*nbytes lowercase hex digits + NUL into out.  Token ids (8 bytes) and
 * secrets (16 bytes), cp-design.md "Tokens".  Aborts when the CSPRNG
 * fails (nothing safe to do). */
void cp_random_hex(char *out, size_t nbytes);

/* cp_token_new: the random parts of a new token (cp-design.md "Tokens"):
 * id = 16 hex digits, secret = 32 hex digits, hash = hex SHA-256 of the
 * secret text (what the tables store).  Callers cleanse `secret` after
 * printing it. */
void cp_token_new(char id[17], char secret[33], char hash[65]);

/* cp_definition_hash: a definition's content hash, "sha256:" + the hex
 * SHA-256 of its compact JSON (kv_json_write(doc, 0), insertion order) into
 * out[72] (71 chars + NUL).  `doc` is borrowed.  Definition.content_hash
 * and definitions.content_hash (cp-design.md "Agent protocol additions"). */
struct kv;
void cp_definition_hash(const struct kv *doc, char out[72]);

/* ---- PKI (controlplane/pki.c) --------------------------------------------- */

/* cp_pki_load: load the CA and the server certificate from `dir` (ca.crt,
 * ca.key, server.crt, server.key), generating what is missing: the CA
 * (EC P-256, 10 years) when ca.crt/ca.key are absent, and the server
 * certificate (1 year, SANs = `hosts` + localhost + 127.0.0.1) when
 * server.crt/server.key are absent, due for renewal (ktls_renew_due), not
 * issued by the CA or not naming every host.  The directory is created
 * 0700, keys are written 0600 (via a temporary file and rename).  On
 * success *ca (ktls_ca_free) and the malloc'd PEMs are the caller's.  -1 +
 * err (file and reason) otherwise. */
int cp_pki_load(const char *dir, const char *const *hosts, size_t n_hosts, ktls_ca **ca,
                char **server_cert_pem, char **server_key_pem, char *err, size_t errlen);

#endif
