/*
 * controlplane/api_impl.h: what the files of the HTTP API share (api.c:
 * server, TLS, auth, routing, executions, clusters, triggers, tokens,
 * health and metrics; api_definitions.c: the definition endpoints).
 * Internal to controlplane/api*.c; docs/http-api.md describes the API.
 */
#ifndef KOREO_CP_API_IMPL_H
#define KOREO_CP_API_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "api.h"
#include "koreo/value.h"

/* Request bodies larger than this are refused with 413 (8 MiB). */
#define API_MAX_BODY ((size_t)8 << 20)

/* Timestamps in responses: RFC 3339 UTC with milliseconds (NULL stays
 * NULL); the cursor form keeps microseconds. */
#define API_TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define API_TS_US(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

typedef enum api_role { API_VIEWER = 1, API_OPERATOR = 2, API_ADMIN = 3 } api_role;

typedef struct api_req api_req;

struct cp_api {
  cp_ctx *ctx;
  struct evhttp *http;
  SSL_CTX *ssl;
  int port;
  api_req *pending; /* requests waiting for the database */
};

/* One request from arrival to reply.  Freed by api_reply/api_error; when
 * the API is freed first, `req` is NULL and the database callback only
 * frees it (api_req_done). */
struct api_req {
  cp_api *api;
  struct evhttp_request *req;
  api_req *prev, *next;
  enum evhttp_cmd_type method;
  char **seg; /* decoded path segments ("api","v1","definitions",...) */
  size_t nseg;
  struct evkeyvalq query; /* decoded query parameters */
  char token_id[17];      /* the caller's API token id (actor in audit_log) */
  api_role role;
  char *scope; /* the token's clusters as a PostgreSQL text[] literal, NULL: all */
  kv *work;    /* endpoint data (api_definitions.c: the batch), released at the end */
};

/* Reply with a JSON body (copied) and free r. */
void api_reply(api_req *r, int code, const char *json);
/* Reply {"error": {"code", "message"}} and free r.  `code` is the HTTP
 * status; the error code name follows it (401 unauthorized, ...). */
void api_error(api_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reply with a database failure (503 when the connection is down, 409 for
 * a unique violation, else 500) and free r. */
void api_db_error(api_req *r, const char *what, const char *err);
/* Start of every database callback: false when r must not be used any
 * more (API freed: r is freed here; database error: replied and freed). */
bool api_req_alive(api_req *r, PGresult *res, const char *err, const char *what);
/* Queue a query whose callback gets r.  On failure replies 503, returns -1. */
int api_query(api_req *r, const char *sql, int n, const char *const *params, cpdb_cb cb);
/* A query parameter (decoded) or NULL when absent or empty. */
const char *api_param(api_req *r, const char *name);
/* The request body (NUL-terminated view into libevent's buffer), length in *len. */
const char *api_body(api_req *r, size_t *len);
/* JSON string literal of s (quoted, escaped) appended to b. */
void api_json_str(kv_strbuf *b, const char *s);

/* api_definitions.c */
void api_definitions_apply(api_req *r);
void api_definitions_list(api_req *r);
void api_definition_get(api_req *r, const char *kind, const char *ns, const char *name);
void api_definition_delete(api_req *r, const char *kind, const char *ns, const char *name);

#endif
