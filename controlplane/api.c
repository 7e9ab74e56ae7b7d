/*
 * controlplane/api.c: the control plane's HTTP API (issue 6 items 3 and 6,
 * docs/http-api.md): HTTPS with libevent's evhttp over bufferevent_openssl
 * (TLS 1.2+, the pki server certificate), bearer-token authentication
 * against api_tokens (roles viewer < operator < admin, cluster scope applied
 * in every query's WHERE clause), routing, and the endpoints other than the
 * definition ones (api_definitions.c): executions with cursor pagination,
 * clusters, triggers, bootstrap and API tokens, /healthz, /readyz and
 * /metrics.  Every response body that lists rows is built by PostgreSQL
 * (json_build_object) in the one query that reads them.
 */
#include "api_impl.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#ifdef KOREO_CP_ENGINE
#include "engine.h"
#endif
#include "koreo/json.h"

/* ------------------------------------------------------------------ replies */

static void req_unlink(api_req *r) {
  if (!r->api) return;
  if (r->prev)
    r->prev->next = r->next;
  else if (r->api->pending == r)
    r->api->pending = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void req_free(api_req *r) {
  req_unlink(r);
  for (size_t i = 0; i < r->nseg; i++)
    free(r->seg[i]);
  free(r->seg);
  evhttp_clear_headers(&r->query);
  free(r->scope);
  kv_unref(r->work);
  free(r);
}

static const char *status_reason(int code) {
  switch (code) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 422: return "Unprocessable Entity";
  case 503: return "Service Unavailable";
  default: return "Internal Server Error";
  }
}

static const char *status_code_name(int code) {
  switch (code) {
  case 400: return "bad_request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not_found";
  case 405: return "bad_request";
  case 409: return "conflict";
  case 413: return "bad_request";
  case 422: return "invalid_definition";
  case 503: return "unavailable";
  default: return "internal";
  }
}

static void send_body(struct evhttp_request *req, int code, const char *ctype, const char *body,
                      size_t len) {
  cp_log(CP_DEBUG, "api: %s -> %d (%zu bytes)", evhttp_request_get_uri(req), code, len);
  struct evbuffer *out = evbuffer_new();
  if (!out) kv_oom();
  evbuffer_add(out, body, len);
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", ctype);
  evhttp_add_header(h, "Cache-Control", "no-store");
  if (code == 401) evhttp_add_header(h, "WWW-Authenticate", "Bearer");
  evhttp_send_reply(req, code, status_reason(code), out);
  evbuffer_free(out);
}

/* api_reply: see api_impl.h. */
void api_reply(api_req *r, int code, const char *json) {
  if (r->req) {
    kv_strbuf b = {0};
    kv_strbuf_puts(&b, json);
    kv_strbuf_putc(&b, '\n');
    send_body(r->req, code, "application/json", b.p, b.len);
    kv_strbuf_free(&b);
  }
  req_free(r);
}

/* api_json_str: see api_impl.h. */
void api_json_str(kv_strbuf *b, const char *s) {
  kv *v = kv_cstring(s);
  size_t n;
  char *t = kv_json_write(v, 0, &n);
  kv_strbuf_put(b, t, n);
  free(t);
  kv_unref(v);
}

static void error_body(kv_strbuf *b, int status, const char *msg) {
  kv_strbuf_puts(b, "{\"error\": {\"code\": \"");
  kv_strbuf_puts(b, status_code_name(status));
  kv_strbuf_puts(b, "\", \"message\": ");
  api_json_str(b, msg);
  kv_strbuf_puts(b, "}}");
}

/* api_error: see api_impl.h. */
void api_error(api_req *r, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) kv_oom();
  va_end(ap);
  kv_strbuf b = {0};
  error_body(&b, status, msg);
  if (status >= 500) cp_log(CP_WARN, "api: %s", msg);
  free(msg);
  api_reply(r, status, b.p);
  kv_strbuf_free(&b);
}

/* api_db_error: see api_impl.h. */
void api_db_error(api_req *r, const char *what, const char *err) {
  if (!err) err = "unexpected result";
  if (strstr(err, "duplicate key"))
    api_error(r, 409, "%s: a concurrent change conflicted (%s); try again", what, err);
  else if (!cpdb_connected(r->api->ctx->db) || strstr(err, "connection") ||
           strstr(err, "shutting down"))
    api_error(r, 503, "%s: the database is unavailable (%s)", what, err);
  else
    api_error(r, 500, "%s: database error: %s", what, err);
}

/* api_req_alive: see api_impl.h. */
bool api_req_alive(api_req *r, PGresult *res, const char *err, const char *what) {
  if (!r->req || !r->api) {
    req_free(r);
    return false;
  }
  if (!res) {
    api_db_error(r, what, err);
    return false;
  }
  return true;
}

/* api_query: see api_impl.h. */
int api_query(api_req *r, const char *sql, int n, const char *const *params, cpdb_cb cb) {
  if (cpdb_query(r->api->ctx->db, sql, n, params, cb, r) != 0) {
    api_error(r, 503, "the database connection is shutting down");
    return -1;
  }
  return 0;
}

/* api_param: see api_impl.h. */
const char *api_param(api_req *r, const char *name) {
  const char *v = evhttp_find_header(&r->query, name);
  return v && *v ? v : NULL;
}

/* api_body: see api_impl.h. */
const char *api_body(api_req *r, size_t *len) {
  struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
  size_t n = evbuffer_get_length(in);
  evbuffer_add(in, "", 1); /* NUL terminator, not counted */
  const char *p = (const char *)evbuffer_pullup(in, -1);
  *len = n;
  return p;
}

/* ------------------------------------------------------------------ helpers */

static const char *role_name(api_role r) {
  return r == API_ADMIN ? "admin" : r == API_OPERATOR ? "operator" : "viewer";
}

static bool is_lower_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool rfc3339(const char *s) {
  const char *pat = "dddd-dd-ddTdd:dd:dd";
  size_t i = 0;
  for (; pat[i]; i++) {
    if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9')
                      : (pat[i] == 'T' ? (s[i] != 'T' && s[i] != 't') : s[i] != pat[i]))
      return false;
  }
  s += i;
  if (*s == '.') {
    s++;
    if (!(*s >= '0' && *s <= '9')) return false;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  if ((*s == 'Z' || *s == 'z') && !s[1]) return true;
  if (*s != '+' && *s != '-') return false;
  return s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' && s[3] == ':' && s[4] >= '0' &&
         s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && !s[6];
}

static bool all_digits(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

/* base64url without padding, both ways. */
static char *b64url_encode(const char *s) {
  kv_strbuf b = {0};
  kv_strbuf_put_base64(&b, s, strlen(s));
  size_t o = 0;
  for (size_t i = 0; i < b.len; i++) {
    char c = b.p[i];
    if (c == '=') continue;
    b.p[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  b.p[o] = 0;
  return kv_strbuf_take(&b, NULL);
}

static char *b64url_decode(const char *s) {
  kv_strbuf b = {0};
  unsigned acc = 0;
  int bits = 0;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int d = c == '-' ? 62 : c == '_' ? 63 : (c == '+' || c == '/') ? -1 : kv_base64_digit(c);
    if (d < 0) {
      kv_strbuf_free(&b);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      kv_strbuf_putc(&b, (char)((acc >> bits) & 0xff));
    }
  }
  return kv_strbuf_take(&b, NULL);
}

/* ------------------------------------------------------------ executions */

#define EXEC_FIELDS                                                                                \
  "'id', r.id, 'workflow', r.workflow, 'cluster', r.cluster, 'trigger', "                          \
  "json_build_object('apiVersion', r.api_version, 'kind', r.kind, 'namespace', r.namespace, "      \
  "'name', r.name), 'outcome', r.outcome, 'message', r.message, 'location', r.location, "          \
  "'startedAt', " API_TS("r.started_at") ", 'finishedAt', " API_TS(                                \
      "r.finished_at") ", 'lastSeenAt', " API_TS("r.last_seen_at") ", 'repeatCount', "             \
                                                                   "r.repeat_count, "              \
                                                                   "'durationMs', r.duration_ms, " \
                                                                   "'replica', r.replica"

static const char SQL_EXEC_LIST[] = "SELECT json_build_object(" EXEC_FIELDS "), " API_TS_US(
    "r.started_at") ", r.id "
                    "FROM workflow_runs r "
                    "WHERE ($1::text IS NULL OR r.workflow = $1 OR split_part(r.workflow, '/', 2) "
                    "= $1) "
                    "AND ($2::text IS NULL OR r.cluster = $2) "
                    "AND ($3::text IS NULL OR r.kind = $3) AND ($4::text IS NULL OR r.namespace = "
                    "$4) "
                    "AND ($5::text IS NULL OR r.name = $5) "
                    "AND ($6::text IS NULL OR lower(r.outcome) = lower($6)) "
                    "AND ($7::timestamptz IS NULL OR r.last_seen_at >= $7::timestamptz) "
                    "AND ($8::timestamptz IS NULL OR r.started_at < $8::timestamptz) "
                    "AND ($9::timestamptz IS NULL OR (r.started_at, r.id) < ($9::timestamptz, "
                    "$10::bigint)) "
                    "AND ($11::text[] IS NULL OR r.cluster = ANY($11::text[])) "
                    "ORDER BY r.started_at DESC, r.id DESC LIMIT $12::int";

static void on_exec_list(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "listing executions")) return;
  int limit = (int)r->work->u.i;
  int n = PQntuples(res);
  int shown = n > limit ? limit : n;
  kv_strbuf b = {0};
  kv_strbuf_puts(&b, "{\"items\": [");
  for (int i = 0; i < shown; i++) {
    if (i) kv_strbuf_puts(&b, ", ");
    kv_strbuf_puts(&b, PQgetvalue(res, i, 0));
  }
  kv_strbuf_puts(&b, "], \"nextCursor\": ");
  if (n > limit && shown > 0) {
    char *raw = kv_asprintf("%s|%s", PQgetvalue(res, shown - 1, 1), PQgetvalue(res, shown - 1, 2));
    char *cur = b64url_encode(raw);
    api_json_str(&b, cur);
    free(cur);
    free(raw);
  } else {
    kv_strbuf_puts(&b, "null");
  }
  kv_strbuf_puts(&b, "}");
  api_reply(r, 200, b.p);
  kv_strbuf_free(&b);
}

static void executions_list(api_req *r) {
  const char *wf = api_param(r, "workflow"), *cluster = api_param(r, "cluster");
  const char *trig = api_param(r, "trigger"), *outcome = api_param(r, "outcome");
  const char *since = api_param(r, "since"), *until = api_param(r, "until");
  const char *lim = api_param(r, "limit"), *cursor = api_param(r, "cursor");
  long limit = 50;
  if (lim) {
    if (!all_digits(lim) || (limit = strtol(lim, NULL, 10)) < 1 || limit > 500) {
      api_error(r, 400, "limit=%s: expected a whole number from 1 to 500", lim);
      return;
    }
  }
  if (since && !rfc3339(since)) {
    api_error(r, 400, "since=%s: expected an RFC 3339 time such as 2026-01-02T15:04:05Z", since);
    return;
  }
  if (until && !rfc3339(until)) {
    api_error(r, 400, "until=%s: expected an RFC 3339 time such as 2026-01-02T15:04:05Z", until);
    return;
  }
  char *tk = NULL, *tns = NULL, *tname = NULL;
  char *dec = NULL, *c_ts = NULL, *c_id = NULL;
  if (trig) {
    const char *a = strchr(trig, '/'), *b2 = a ? strchr(a + 1, '/') : NULL;
    if (!a || a == trig || !a[1] || (b2 && (b2 == a + 1 || !b2[1] || strchr(b2 + 1, '/')))) {
      api_error(r, 400, "trigger=%s: expected NAMESPACE/NAME or KIND/NAMESPACE/NAME", trig);
      return;
    }
    if (b2) {
      tk = strndup(trig, (size_t)(a - trig));
      tns = strndup(a + 1, (size_t)(b2 - a - 1));
      tname = strdup(b2 + 1);
    } else {
      tns = strndup(trig, (size_t)(a - trig));
      tname = strdup(a + 1);
    }
  }
  if (cursor) {
    dec = b64url_decode(cursor);
    char *bar = dec ? strchr(dec, '|') : NULL;
    if (!bar || !rfc3339((*bar = 0, dec)) || !all_digits(bar + 1)) {
      free(dec);
      free(tk);
      free(tns);
      free(tname);
      api_error(r, 400, "cursor: not a cursor this API returned (pass nextCursor unchanged)");
      return;
    }
    c_ts = dec;
    c_id = bar + 1;
  }
  char limbuf[16];
  snprintf(limbuf, sizeof limbuf, "%ld", limit + 1);
  r->work = kv_int(limit);
  const char *p[12] = {wf,    cluster, tk,   tns,  tname,    outcome,
                       since, until,   c_ts, c_id, r->scope, limbuf};
  api_query(r, SQL_EXEC_LIST, 12, p, on_exec_list);
  free(dec);
  free(tk);
  free(tns);
  free(tname);
}

static const char SQL_EXEC_ONE[] =
    "SELECT json_build_object(" EXEC_FIELDS ", 'state', r.state, 'conditions', r.conditions, "
    "'steps', (SELECT COALESCE(json_agg(json_build_object('label', s.label, 'outcome', "
    "s.outcome, 'message', s.message, 'location', s.location, 'value', s.value, 'resourceIds', "
    "s.resource_ids, 'durationMs', s.duration_ms) ORDER BY s.ordinal), '[]'::json) "
    "FROM step_runs s WHERE s.run_id = r.id AND s.run_started_at = r.started_at))::text "
    "FROM workflow_runs r WHERE r.id = $1::bigint "
    "AND ($2::text[] IS NULL OR r.cluster = ANY($2::text[])) "
    "ORDER BY r.started_at DESC LIMIT 1";

static void on_exec_one(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "reading the execution")) return;
  if (PQntuples(res) == 0) {
    api_error(r, 404, "execution %s not found", r->seg[3]);
    return;
  }
  api_reply(r, 200, PQgetvalue(res, 0, 0));
}

static void execution_get(api_req *r, const char *id) {
  if (!all_digits(id) || strlen(id) > 18) {
    api_error(r, 400, "execution id '%s': expected a number", id);
    return;
  }
  const char *p[2] = {id, r->scope};
  api_query(r, SQL_EXEC_ONE, 2, p, on_exec_one);
}

/* ------------------------------------------------------------- clusters */

static const char SQL_CLUSTERS[] =
    "SELECT json_build_object('items', COALESCE(json_agg(json_build_object('name', name, "
    "'labels', labels, 'state', state, 'stateReason', state_reason, 'lastHeartbeat', " API_TS(
        "last_heartbeat") ", 'agentVersion', agent_version, 'replica', replica, "
                          "'connectedAt', " API_TS("connected_at") ") ORDER BY name), "
                                                                   "'[]'::json))::text "
                                                                   "FROM clusters WHERE "
                                                                   "($1::text[] IS NULL OR name = "
                                                                   "ANY($1::text[]))";

static void on_list(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "listing")) return;
  api_reply(r, 200, PQntuples(res) ? PQgetvalue(res, 0, 0) : "{\"items\": []}");
}

static void clusters_list(api_req *r) {
  const char *p[1] = {r->scope};
  api_query(r, SQL_CLUSTERS, 1, p, on_list);
}

static const char SQL_TRIGGERS[] =
    "SELECT json_build_object('items', COALESCE(json_agg(json_build_object('cluster', cluster, "
    "'apiVersion', api_version, 'kind', kind, 'namespace', namespace, 'name', name, "
    "'resourceVersion', resource_version, 'updatedAt', " API_TS(
        "updated_at") ", 'deleted', deleted, 'lastOutcome', last_outcome) "
                      "ORDER BY cluster, kind, namespace, name), '[]'::json))::text FROM triggers "
                      "WHERE ($1::text IS NULL OR cluster = $1) AND ($2::text IS NULL OR kind = "
                      "$2) AND ($3::text[] IS NULL OR cluster = ANY($3::text[]))";

static void triggers_list(api_req *r) {
  const char *p[3] = {api_param(r, "cluster"), api_param(r, "kind"), r->scope};
  api_query(r, SQL_TRIGGERS, 3, p, on_list);
}

/* --------------------------------------------------------------- tokens */

/* The body as a JSON object, or NULL after replying 400. */
static kv *json_object_body(api_req *r) {
  size_t len;
  const char *body = api_body(r, &len);
  kv_parse_error pe = {0};
  kv *v = kv_json_parse(body, len, &pe);
  if (!v) {
    api_error(r, 400, "request body: line %u, column %u: %s", pe.line, pe.col, pe.msg);
    return NULL;
  }
  if (v->kind != KV_MAP) {
    api_error(r, 400, "request body: expected a JSON object, got %s", kv_kind_name(v->kind));
    kv_unref(v);
    return NULL;
  }
  return v;
}

/* A non-negative whole number of seconds from field `f` (default `def`);
 * -1 after replying 400. */
static long long ttl_field(api_req *r, const kv *body, const char *f, long long def) {
  kv *t = kv_map_get_str(body, f);
  if (!t || t->kind == KV_NULL) return def;
  if (t->kind != KV_INT || t->u.i < 0 || t->u.i > 10LL * 365 * 86400) {
    api_error(r, 400, "%s: expected a whole number of seconds from 0 to 315360000", f);
    return -1;
  }
  return t->u.i;
}

static const char SQL_BOOTSTRAP[] =
    "WITH ok AS (SELECT 1 WHERE $6::text[] IS NULL OR $3::text = ANY($6::text[])), "
    "cl AS (INSERT INTO clusters (name) SELECT $3::text FROM ok ON CONFLICT (name) DO NOTHING "
    "RETURNING 1), "
    "bt AS (INSERT INTO bootstrap_tokens (id, secret_hash, cluster, expires_at, created_by) "
    "SELECT $1::text, $2::text, $3::text, now() + make_interval(secs => $4::double precision), "
    "$5::text FROM ok RETURNING expires_at), "
    "aud AS (INSERT INTO audit_log (actor, action, target, detail) SELECT $5::text, "
    "'token.bootstrap', $3::text, jsonb_build_object('id', $1::text, 'expiresAt', expires_at) "
    "FROM bt RETURNING 1) "
    "SELECT " API_TS(
        "expires_at") ", (SELECT count(*) FROM cl), (SELECT count(*) FROM aud) FROM bt";

static void on_bootstrap(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "creating the bootstrap token")) return;
  kv *w = r->work; /* [token, cluster] */
  if (PQntuples(res) == 0) {
    api_error(r, 403, "this token is scoped to other clusters and cannot enrol cluster '%s'",
              kv_str(kv_list_at(w, 1)));
    return;
  }
  kv_strbuf b = {0};
  kv_strbuf_puts(&b, "{\"token\": ");
  api_json_str(&b, kv_str(kv_list_at(w, 0)));
  kv_strbuf_puts(&b, ", \"cluster\": ");
  api_json_str(&b, kv_str(kv_list_at(w, 1)));
  kv_strbuf_puts(&b, ", \"expiresAt\": ");
  api_json_str(&b, PQgetvalue(res, 0, 0));
  kv_strbuf_puts(&b, "}");
  cp_log(CP_INFO, "api: token %s created a bootstrap token for cluster %s", r->token_id,
         kv_str(kv_list_at(w, 1)));
  api_reply(r, 200, b.p);
  kv_strbuf_free(&b);
}

static void tokens_bootstrap(api_req *r) {
  kv *body = json_object_body(r);
  if (!body) return;
  kv *cl = kv_map_get_str(body, "cluster");
  if (!cl || cl->kind != KV_STRING || !ktls_cluster_name_valid(kv_str(cl))) {
    kv_unref(body);
    api_error(r, 400,
              "cluster: expected a cluster name (lowercase letters, digits, '-' and '.', "
              "starting and ending with a letter or digit, at most 253 characters)");
    return;
  }
  long long ttl = ttl_field(r, body, "ttlSeconds", 3600);
  if (ttl < 0) {
    kv_unref(body);
    return;
  }
  if (ttl == 0) {
    kv_unref(body);
    api_error(r, 400, "ttlSeconds: a bootstrap token needs a lifetime above 0");
    return;
  }
  if (!r->api->ctx->ca) {
    kv_unref(body);
    api_error(r, 503, "this control plane has no CA loaded; cannot issue bootstrap tokens");
    return;
  }
  char id[17], secret[33], hash[65], ttlbuf[24];
  cp_token_new(id, secret, hash);
  char *token = kv_asprintf("kbt.%s.%s.%s", id, secret, ktls_ca_pin(r->api->ctx->ca));
  OPENSSL_cleanse(secret, sizeof secret);
  snprintf(ttlbuf, sizeof ttlbuf, "%lld", ttl);
  r->work = kv_list_new(2);
  kv_list_push(r->work, kv_cstring(token));
  kv_list_push(r->work, kv_ref(cl));
  const char *p[6] = {id, hash, kv_str(cl), ttlbuf, r->token_id, r->scope};
  api_query(r, SQL_BOOTSTRAP, 6, p, on_bootstrap);
  OPENSSL_cleanse(token, strlen(token));
  free(token);
  kv_unref(body);
}

static const char SQL_TOKEN_CREATE[] =
    "WITH ok AS (SELECT 1 WHERE $8::text[] IS NULL OR ($4::text[] IS NOT NULL AND $4::text[] <@ "
    "$8::text[])), "
    "t AS (INSERT INTO api_tokens (id, secret_hash, role, clusters, description, created_by, "
    "expires_at) SELECT $1::text, $2::text, $3::text, $4::text[], $6::text, $7::text, "
    "CASE WHEN $5::bigint > 0 THEN now() + make_interval(secs => $5::double precision) END "
    "FROM ok RETURNING expires_at), "
    "aud AS (INSERT INTO audit_log (actor, action, target, detail) SELECT $7::text, "
    "'token.create', $1::text, jsonb_build_object('role', $3::text, 'clusters', $4::text[], "
    "'expiresAt', expires_at) FROM t RETURNING 1) "
    "SELECT " API_TS("expires_at") ", (SELECT count(*) FROM aud) FROM t";

static void on_token_create(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "creating the API token")) return;
  kv *w = r->work; /* {"token", "id", "role", "clusters"} */
  if (PQntuples(res) == 0) {
    api_error(r, 403,
              "this token is scoped to clusters %s: it can only create tokens scoped to "
              "some of them",
              r->scope);
    return;
  }
  kv_strbuf b = {0};
  char *j = kv_json_write(w, 0, NULL);
  kv_strbuf_put(&b, j, strlen(j) - 1); /* without the closing brace */
  free(j);
  kv_strbuf_puts(&b, ", \"expiresAt\": ");
  if (PQgetisnull(res, 0, 0))
    kv_strbuf_puts(&b, "null");
  else
    api_json_str(&b, PQgetvalue(res, 0, 0));
  kv_strbuf_puts(&b, "}");
  cp_log(CP_INFO, "api: token %s created API token %s (%s)", r->token_id,
         kv_str(kv_map_get_str(w, "id")), kv_str(kv_map_get_str(w, "role")));
  api_reply(r, 200, b.p);
  kv_strbuf_free(&b);
}

/* Revoke API token `id` (its text is never needed): the row keeps its
 * history; a scoped admin revokes only tokens scoped within its clusters. */
static const char SQL_TOKEN_REVOKE[] =
    "WITH t AS (UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
    "AND ($3::text[] IS NULL OR (clusters IS NOT NULL AND clusters <@ $3::text[])) RETURNING id), "
    "aud AS (INSERT INTO audit_log (actor, action, target) SELECT $2::text, 'token.revoke', id "
    "FROM t RETURNING 1) "
    "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM aud)";

static void on_token_revoke(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "revoking the API token")) return;
  const char *id = kv_str(r->work);
  if (atol(PQgetvalue(res, 0, 0)) == 0) {
    api_error(r, 404,
              "no active API token %s (unknown, already revoked, or outside this token's "
              "clusters)",
              id);
    return;
  }
  kv_strbuf b = {0};
  kv_strbuf_puts(&b, "{\"revoked\": {\"id\": ");
  api_json_str(&b, id);
  kv_strbuf_puts(&b, "}}");
  cp_log(CP_INFO, "api: token %s revoked API token %s", r->token_id, id);
  api_reply(r, 200, b.p);
  kv_strbuf_free(&b);
}

static void tokens_revoke(api_req *r, const char *id) {
  bool ok = strlen(id) == 16;
  for (const char *c = id; ok && *c; c++)
    ok = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f');
  if (!ok) {
    api_error(r, 400, "token id '%s': expected the 16 hex digits after \"kat.\"", id);
    return;
  }
  r->work = kv_cstring(id);
  const char *p[3] = {id, r->token_id, r->scope};
  api_query(r, SQL_TOKEN_REVOKE, 3, p, on_token_revoke);
}

static void tokens_create(api_req *r) {
  kv *body = json_object_body(r);
  if (!body) return;
  kv *role = kv_map_get_str(body, "role"), *cls = kv_map_get_str(body, "clusters");
  kv *desc = kv_map_get_str(body, "description");
  if (!role || role->kind != KV_STRING ||
      (strcmp(kv_str(role), "viewer") && strcmp(kv_str(role), "operator") &&
       strcmp(kv_str(role), "admin"))) {
    kv_unref(body);
    api_error(r, 400, "role: expected \"viewer\", \"operator\" or \"admin\"");
    return;
  }
  if (desc && desc->kind != KV_NULL && desc->kind != KV_STRING) {
    kv_unref(body);
    api_error(r, 400, "description: expected a string");
    return;
  }
  kv_strbuf lit = {0};
  if (cls && cls->kind != KV_NULL) {
    if (cls->kind != KV_LIST || kv_len(cls) == 0) {
      kv_unref(body);
      api_error(r, 400,
                "clusters: expected a non-empty list of cluster names (leave it out for "
                "every cluster)");
      return;
    }
    kv_strbuf_putc(&lit, '{');
    for (size_t i = 0; i < kv_len(cls); i++) {
      kv *c = kv_list_at(cls, i);
      if (c->kind != KV_STRING || !ktls_cluster_name_valid(kv_str(c))) {
        kv_strbuf_free(&lit);
        kv_unref(body);
        api_error(r, 400, "clusters[%zu]: not a cluster name", i);
        return;
      }
      if (i) kv_strbuf_putc(&lit, ',');
      kv_strbuf_puts(&lit, kv_str(c));
    }
    kv_strbuf_putc(&lit, '}');
  }
  long long ttl = ttl_field(r, body, "ttlSeconds", 0);
  if (ttl < 0) {
    kv_strbuf_free(&lit);
    kv_unref(body);
    return;
  }
  char id[17], secret[33], hash[65], ttlbuf[24];
  cp_token_new(id, secret, hash);
  snprintf(ttlbuf, sizeof ttlbuf, "%lld", ttl);
  char *token = kv_asprintf("kat.%s.%s", id, secret);
  OPENSSL_cleanse(secret, sizeof secret);
  kv *w = kv_map_new(4);
  kv_map_set_str(w, "token", kv_cstring(token));
  kv_map_set_str(w, "id", kv_cstring(id));
  kv_map_set_str(w, "role", kv_ref(role));
  kv_map_set_str(w, "clusters", lit.p ? kv_ref(cls) : kv_null());
  r->work = w;
  const char *p[8] = {id,          hash,    kv_str(role),
                      lit.p,       ttlbuf,  desc && desc->kind == KV_STRING ? kv_str(desc) : "",
                      r->token_id, r->scope};
  api_query(r, SQL_TOKEN_CREATE, 8, p, on_token_create);
  OPENSSL_cleanse(token, strlen(token));
  free(token);
  kv_strbuf_free(&lit);
  kv_unref(body);
}

/* ------------------------------------------------------- health, metrics */

static const char SQL_METRICS[] =
    "SELECT count(*) FILTER (WHERE due_at <= now()), "
    "COALESCE(EXTRACT(EPOCH FROM now() - min(due_at) FILTER (WHERE due_at <= now())), 0), "
    "(SELECT count(*) FROM clusters WHERE state = 'online') FROM work_queue";

static void metrics_db(kv_strbuf *b, const cpdb *db) {
  const cpdb_stats *s = cpdb_get_stats(db);
  kv_strbuf_printf(b,
                   "# HELP koreo_db_connected 1 when the database connection is up.\n"
                   "# TYPE koreo_db_connected gauge\nkoreo_db_connected %d\n",
                   cpdb_connected(db) ? 1 : 0);
  if (!s) return;
  kv_strbuf_printf(b,
                   "# HELP koreo_db_queries_total Database queries completed.\n"
                   "# TYPE koreo_db_queries_total counter\nkoreo_db_queries_total %llu\n"
                   "# HELP koreo_db_errors_total Database queries that failed.\n"
                   "# TYPE koreo_db_errors_total counter\nkoreo_db_errors_total %llu\n"
                   "# HELP koreo_db_reconnects_total Database reconnections.\n"
                   "# TYPE koreo_db_reconnects_total counter\nkoreo_db_reconnects_total %llu\n"
                   "# HELP koreo_db_query_duration_seconds Database query latency (send to "
                   "result).\n# TYPE koreo_db_query_duration_seconds histogram\n",
                   s->queries, s->errors, s->reconnects);
  for (int i = 0; i < 8; i++)
    kv_strbuf_printf(b, "koreo_db_query_duration_seconds_bucket{le=\"%g\"} %llu\n",
                     cpdb_latency_bounds[i], s->latency_buckets[i]);
  kv_strbuf_printf(b,
                   "koreo_db_query_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                   "koreo_db_query_duration_seconds_sum %.6f\n"
                   "koreo_db_query_duration_seconds_count %llu\n",
                   s->queries, s->latency_sum_s, s->queries);
}

static void metrics_finish(api_req *r, PGresult *res) {
  cp_ctx *ctx = r->api->ctx;
  kv_strbuf b = {0};
  if (res && PQntuples(res) == 1) {
    kv_strbuf_printf(&b,
                     "# HELP koreo_queue_depth Work-queue rows that are due (waiting or "
                     "running).\n# TYPE koreo_queue_depth gauge\nkoreo_queue_depth %s\n"
                     "# HELP koreo_queue_oldest_due_seconds How long the oldest due row has "
                     "waited.\n# TYPE koreo_queue_oldest_due_seconds gauge\n"
                     "koreo_queue_oldest_due_seconds %s\n",
                     PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    if (!ctx->engine)
      kv_strbuf_printf(&b,
                       "# HELP koreo_agents_connected Clusters whose agent is online.\n"
                       "# TYPE koreo_agents_connected gauge\nkoreo_agents_connected %s\n",
                       PQgetvalue(res, 0, 2));
  }
  metrics_db(&b, ctx->db);
#ifdef KOREO_CP_ENGINE
  if (ctx->engine) {
    char *m = cp_engine_metrics(ctx->engine);
    if (m) kv_strbuf_puts(&b, m);
    free(m);
  }
#endif
  if (r->req) send_body(r->req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
  kv_strbuf_free(&b);
  req_free(r);
}

static void on_metrics(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!r->req || !r->api) {
    req_free(r);
    return;
  }
  if (!res) cp_log(CP_WARN, "api: /metrics: queue query failed: %s", err ? err : "?");
  metrics_finish(r, res);
}

static void health(api_req *r, const char *what) {
  cp_ctx *ctx = r->api->ctx;
  if (strcmp(what, "healthz") == 0) {
    send_body(r->req, 200, "text/plain; charset=utf-8", "ok\n", 3);
    req_free(r);
  } else if (strcmp(what, "readyz") == 0) {
    if (!cpdb_connected(ctx->db)) api_error(r, 503, "not ready: the database is not connected");
#ifdef KOREO_CP_ENGINE
    else if (ctx->engine && !cp_engine_ready(ctx->engine))
      api_error(r, 503, "not ready: the engine has not loaded the definitions yet");
#endif
    else {
      send_body(r->req, 200, "text/plain; charset=utf-8", "ok\n", 3);
      req_free(r);
    }
  } else if (!cpdb_connected(ctx->db)) {
    metrics_finish(r, NULL);
  } else if (cpdb_query(ctx->db, SQL_METRICS, 0, NULL, on_metrics, r) != 0) {
    metrics_finish(r, NULL);
  }
}

/* --------------------------------------------------------------- routing */

static bool method_is(api_req *r, enum evhttp_cmd_type m, const char *allow) {
  if (r->method == m || (m == EVHTTP_REQ_GET && r->method == EVHTTP_REQ_HEAD)) return true;
  evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", allow);
  return false;
}

static bool need(api_req *r, api_role role, bool unscoped, const char *what) {
  if (r->role < role) {
    api_error(r, 403, "this token's role %s cannot %s: %s needed", role_name(r->role), what,
              role == API_ADMIN ? "admin" : "operator or admin");
    return false;
  }
  if (unscoped && r->scope) {
    api_error(r, 403,
              "this token is scoped to clusters %s and cannot %s: an unscoped token is "
              "needed",
              r->scope, what);
    return false;
  }
  return true;
}

static void not_allowed(api_req *r) {
  static const char *names[] = {"GET",     "POST",  "HEAD",    "PUT",  "DELETE",
                                "OPTIONS", "TRACE", "CONNECT", "PATCH"};
  const char *m = "?";
  for (unsigned i = 0; i < 9; i++)
    if (r->method == (1u << i)) m = names[i];
  api_error(r, 405, "method %s is not allowed here (allowed: %s)", m,
            evhttp_find_header(evhttp_request_get_output_headers(r->req), "Allow"));
}

/* Authenticated: dispatch /api/v1/... */
static void route(api_req *r) {
  char **s = r->seg;
  size_t n = r->nseg;
  if (n < 3 || strcmp(s[0], "api") || strcmp(s[1], "v1")) {
    api_error(r, 404, "no such endpoint; the API lives under /api/v1/ (docs/http-api.md)");
    return;
  }
  const char *res = s[2];
  if (strcmp(res, "definitions") == 0 && n == 3) {
    if (r->method == EVHTTP_REQ_POST) {
      if (need(r, API_OPERATOR, true, "apply definitions")) api_definitions_apply(r);
    } else if (method_is(r, EVHTTP_REQ_GET, "GET, POST"))
      api_definitions_list(r);
    else
      not_allowed(r);
  } else if (strcmp(res, "definitions") == 0 && n == 6) {
    if (r->method == EVHTTP_REQ_DELETE) {
      if (need(r, API_OPERATOR, true, "delete definitions"))
        api_definition_delete(r, s[3], s[4], s[5]);
    } else if (method_is(r, EVHTTP_REQ_GET, "GET, DELETE"))
      api_definition_get(r, s[3], s[4], s[5]);
    else
      not_allowed(r);
  } else if (strcmp(res, "executions") == 0 && (n == 3 || n == 4)) {
    if (!method_is(r, EVHTTP_REQ_GET, "GET"))
      not_allowed(r);
    else if (n == 3)
      executions_list(r);
    else
      execution_get(r, s[3]);
  } else if (strcmp(res, "clusters") == 0 && n == 3) {
    if (method_is(r, EVHTTP_REQ_GET, "GET"))
      clusters_list(r);
    else
      not_allowed(r);
  } else if (strcmp(res, "triggers") == 0 && n == 3) {
    if (method_is(r, EVHTTP_REQ_GET, "GET"))
      triggers_list(r);
    else
      not_allowed(r);
  } else if (strcmp(res, "tokens") == 0 && (n == 3 || (n == 4 && !strcmp(s[3], "bootstrap")))) {
    if (!method_is(r, EVHTTP_REQ_POST, "POST"))
      not_allowed(r);
    else if (need(r, API_ADMIN, false, "create tokens"))
      n == 3 ? tokens_create(r) : tokens_bootstrap(r);
  } else if (strcmp(res, "tokens") == 0 && n == 4) {
    if (!method_is(r, EVHTTP_REQ_DELETE, "DELETE"))
      not_allowed(r);
    else if (need(r, API_ADMIN, false, "revoke tokens"))
      tokens_revoke(r, s[3]);
  } else {
    api_error(r, 404, "no such endpoint: /%s%s%s (docs/http-api.md lists them)", s[2],
              n > 3 ? "/" : "", n > 3 ? s[3] : "");
  }
}

static const char SQL_AUTH[] = "SELECT role, clusters::text FROM api_tokens WHERE id = $1 AND "
                               "secret_hash = $2 AND revoked_at IS NULL AND (expires_at IS NULL "
                               "OR expires_at > now())";

static void on_auth(void *arg, PGresult *res, const char *err) {
  api_req *r = arg;
  if (!api_req_alive(r, res, err, "checking the token")) return;
  if (PQntuples(res) != 1) {
    api_error(r, 401, "unknown, expired or revoked token");
    return;
  }
  const char *role = PQgetvalue(res, 0, 0);
  r->role = !strcmp(role, "admin")      ? API_ADMIN
            : !strcmp(role, "operator") ? API_OPERATOR
                                        : API_VIEWER;
  if (!PQgetisnull(res, 0, 1)) r->scope = strdup(PQgetvalue(res, 0, 1));
  route(r);
}

static void authenticate(api_req *r) {
  const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
  if (!h) {
    api_error(r, 401, "missing token: send 'Authorization: Bearer kat.<id>.<secret>'");
    return;
  }
  if (strncasecmp(h, "Bearer ", 7) != 0) {
    api_error(r, 401, "unsupported Authorization scheme: use 'Bearer kat.<id>.<secret>'");
    return;
  }
  const char *t = h + 7;
  while (*t == ' ')
    t++;
  if (strlen(t) != 53 || strncmp(t, "kat.", 4) || t[20] != '.' || !is_lower_hex(t + 4, 16) ||
      !is_lower_hex(t + 21, 32)) {
    api_error(r, 401, "malformed token: expected kat.<16 hex digits>.<32 hex digits>");
    return;
  }
  memcpy(r->token_id, t + 4, 16);
  r->token_id[16] = 0;
  char hash[65];
  cp_sha256_hex(t + 21, 32, hash);
  if (!cpdb_connected(r->api->ctx->db)) {
    api_error(r, 503, "the database is not connected; try again shortly");
    return;
  }
  const char *p[2] = {r->token_id, hash};
  api_query(r, SQL_AUTH, 2, p, on_auth);
}

/* Split the raw path into decoded segments; false for an undecodable one. */
static bool split_path(api_req *r, const char *path) {
  size_t cap = 8;
  r->seg = calloc(cap, sizeof *r->seg);
  if (!r->seg) kv_oom();
  const char *p = path;
  while (*p) {
    while (*p == '/')
      p++;
    if (!*p) break;
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char *raw = strndup(p, len);
    size_t outlen = 0;
    char *dec = evhttp_uridecode(raw, 0, &outlen);
    free(raw);
    if (!dec || strlen(dec) != outlen) {
      free(dec);
      return false;
    }
    if (r->nseg == cap) {
      cap *= 2;
      char **n = realloc(r->seg, cap * sizeof *n);
      if (!n) kv_oom();
      r->seg = n;
    }
    r->seg[r->nseg++] = dec;
    p += len;
  }
  return true;
}

static void on_request(struct evhttp_request *req, void *arg) {
  cp_api *a = arg;
  api_req *r = calloc(1, sizeof *r);
  if (!r) kv_oom();
  r->api = a;
  r->req = req;
  r->method = evhttp_request_get_command(req);
  TAILQ_INIT(&r->query);
  r->next = a->pending;
  if (a->pending) a->pending->prev = r;
  a->pending = r;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
  if (!path || !split_path(r, path) || (q && evhttp_parse_query_str(q, &r->query) != 0)) {
    api_error(r, 400, "malformed request path or query string");
    return;
  }
  if (r->nseg == 1 && (!strcmp(r->seg[0], "healthz") || !strcmp(r->seg[0], "readyz") ||
                       !strcmp(r->seg[0], "metrics"))) {
    if (method_is(r, EVHTTP_REQ_GET, "GET"))
      health(r, r->seg[0]);
    else
      not_allowed(r);
    return;
  }
  if (r->nseg == 0 || strcmp(r->seg[0], "api") != 0) {
    api_error(r, 404,
              "no such endpoint: %s (the API lives under /api/v1/; also /healthz, "
              "/readyz, /metrics)",
              path);
    return;
  }
  size_t blen = evbuffer_get_length(evhttp_request_get_input_buffer(req));
  if (blen > API_MAX_BODY) {
    api_error(r, 413, "request body of %zu bytes is over the limit of %zu bytes", blen,
              API_MAX_BODY);
    return;
  }
  authenticate(r);
}

/* ------------------------------------------------------------------- TLS */

static struct bufferevent *on_bev(struct event_base *base, void *arg) {
  cp_api *a = arg;
  SSL *ssl = SSL_new(a->ssl);
  if (!ssl) return NULL;
  return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
}

static void ssl_errstr(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  snprintf(err, errlen, "api: %s%s%s", what, *buf ? ": " : "", buf);
  ERR_clear_error();
}

static SSL_CTX *make_ssl(const cp_ctx *ctx, char *err, size_t errlen) {
  if (!ctx->server_cert_pem || !ctx->server_key_pem) {
    snprintf(err, errlen, "api: no server certificate/key to serve TLS with");
    return NULL;
  }
  SSL_CTX *s = SSL_CTX_new(TLS_server_method());
  if (!s) {
    ssl_errstr(err, errlen, "SSL_CTX_new");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
  SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  BIO *bio = BIO_new_mem_buf(ctx->server_cert_pem, -1);
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  bool ok = cert && SSL_CTX_use_certificate(s, cert) == 1;
  X509_free(cert);
  X509 *extra;
  while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
    if (SSL_CTX_add_extra_chain_cert(s, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  ERR_clear_error(); /* the end of the PEM chain */
  BIO_free(bio);
  if (ok && ctx->ca) {
    X509 *ca = X509_dup(ktls_ca_cert(ctx->ca));
    if (!ca || SSL_CTX_add_extra_chain_cert(s, ca) != 1) {
      X509_free(ca);
      ok = false;
    }
  }
  if (!ok) {
    ssl_errstr(err, errlen, "the server certificate PEM is unusable");
    SSL_CTX_free(s);
    return NULL;
  }
  bio = BIO_new_mem_buf(ctx->server_key_pem, -1);
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  ok = key && SSL_CTX_use_PrivateKey(s, key) == 1 && SSL_CTX_check_private_key(s) == 1;
  EVP_PKEY_free(key);
  if (!ok) {
    ssl_errstr(err, errlen, "the server key PEM is unusable or does not match the certificate");
    SSL_CTX_free(s);
    return NULL;
  }
  return s;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into host (default 127.0.0.1) and port. */
static bool parse_listen(const char *l, char *host, size_t hn, int *port) {
  const char *colon;
  if (l[0] == '[') {
    const char *e = strchr(l, ']');
    if (!e || e[1] != ':') return false;
    snprintf(host, hn, "%.*s", (int)(e - l - 1), l + 1);
    colon = e + 1;
  } else {
    colon = strrchr(l, ':');
    if (!colon) return false;
    snprintf(host, hn, "%.*s", (int)(colon - l), l);
  }
  if (!*host) snprintf(host, hn, "127.0.0.1");
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || p < 0 || p > 65535) return false;
  *port = (int)p;
  return true;
}

/* cp_api_new: see api.h. */
cp_api *cp_api_new(cp_ctx *ctx, char *err, size_t errlen) {
  const char *listen = ctx->opt && ctx->opt->api_listen ? ctx->opt->api_listen : "127.0.0.1:8443";
  char host[256];
  int port;
  if (!parse_listen(listen, host, sizeof host, &port)) {
    snprintf(err, errlen, "api: --api-listen '%s': expected HOST:PORT", listen);
    return NULL;
  }
  cp_api *a = calloc(1, sizeof *a);
  if (!a) kv_oom();
  a->ctx = ctx;
  a->ssl = make_ssl(ctx, err, errlen);
  if (!a->ssl) {
    free(a);
    return NULL;
  }
  a->http = evhttp_new(ctx->base);
  if (!a->http) kv_oom();
  evhttp_set_bevcb(a->http, on_bev, a);
  evhttp_set_max_body_size(a->http, (ev_ssize_t)API_MAX_BODY);
  evhttp_set_timeout(a->http, 60);
  evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(a->http, on_request, a);
  struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(a->http, host, (uint16_t)port);
  if (!bs) {
    snprintf(err, errlen, "api: cannot listen on %s: %s", listen, strerror(errno));
    cp_api_free(a);
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
    a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  cp_log(CP_INFO, "api: listening on https://%s:%d", host, a->port);
  return a;
}

/* cp_api_port: see api.h. */
int cp_api_port(const cp_api *a) { return a ? a->port : 0; }

/* cp_api_free: see api.h.  Requests still waiting for the database are
 * detached: their callbacks only free them. */
void cp_api_free(cp_api *a) {
  if (!a) return;
  for (api_req *r = a->pending, *n; r; r = n) {
    n = r->next;
    r->req = NULL;
    r->api = NULL;
    r->prev = r->next = NULL;
  }
  a->pending = NULL;
  if (a->http) evhttp_free(a->http);
  SSL_CTX_free(a->ssl);
  free(a);
}
