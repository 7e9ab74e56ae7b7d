/*
 * tests/kubesim/http.c: kubesim's HTTP/1.1 server over TLS.  Each accepted
 * socket becomes a bufferevent_openssl; a small parser reads the request
 * line, headers and a Content-Length or chunked body (Expect: 100-continue
 * honoured), hands the request to api.c, and writes responses with
 * Content-Length, or chunked for watch streams.  Requests on one
 * connection are served in order (keep-alive, pipelining).
 */
#include "kubesim.h"

#include <ctype.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { MAX_HEAD = 64 * 1024, MAX_BODY = 32 * 1024 * 1024 };

/* An idle (or stuck mid-request) connection is closed after this long;
 * watch streams are exempt. */
static const struct timeval idle_timeout = {300, 0};

static void conn_process(ks_conn *c);

const char *ks_param_get(const ks_req *r, const char *key) {
  const char *v = NULL;
  for (size_t i = 0; i < r->nparams; i++)
    if (strcmp(r->params[i].key, key) == 0) v = r->params[i].val;
  return v;
}

const char *ks_header(const ks_req *r, const char *name) {
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->hdr_names[i], name) == 0) return r->hdr_vals[i];
  return NULL;
}

static void req_reset(ks_req *r) {
  free(r->path);
  free(r->query);
  for (size_t i = 0; i < r->nparams; i++) {
    free(r->params[i].key);
    free(r->params[i].val);
  }
  free(r->params);
  for (size_t i = 0; i < r->nhdrs; i++) {
    free(r->hdr_names[i]);
    free(r->hdr_vals[i]);
  }
  free(r->hdr_names);
  free(r->hdr_vals);
  free(r->body);
  memset(r, 0, sizeof *r);
}

static const char *reason_phrase(int code) {
  switch (code) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 413: return "Request Entity Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

static void parse_query(ks_req *r) {
  const char *q = r->query;
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    if (n) {
      const char *eq = memchr(q, '=', n);
      size_t kn = eq ? (size_t)(eq - q) : n;
      r->params = realloc(r->params, (r->nparams + 1) * sizeof *r->params);
      if (!r->params) kv_oom();
      r->params[r->nparams].key = ku_urldecode(q, kn, true);
      r->params[r->nparams].val =
          eq ? ku_urldecode(eq + 1, n - kn - 1, true) : ku_urldecode("", 0, true);
      r->nparams++;
    }
    q += n + (amp ? 1 : 0);
  }
}

/* Parse the request head (NUL-terminated, ends with CRLFCRLF). */
static bool parse_head(ks_conn *c, char *head) {
  ks_req *r = &c->req;
  char *save = NULL;
  char *line = strtok_r(head, "\r\n", &save);
  if (!line) return false;
  char *sp1 = strchr(line, ' ');
  if (!sp1 || (size_t)(sp1 - line) >= sizeof r->method) return false;
  memcpy(r->method, line, (size_t)(sp1 - line));
  r->method[sp1 - line] = 0;
  char *target = sp1 + 1;
  char *sp2 = strchr(target, ' ');
  if (!sp2) return false;
  *sp2 = 0;
  const char *proto = sp2 + 1;
  if (strncmp(proto, "HTTP/1.", 7) != 0) return false;
  c->keep_alive = strcmp(proto, "HTTP/1.0") != 0;
  char *qm = strchr(target, '?');
  r->path = ku_urldecode(target, qm ? (size_t)(qm - target) : strlen(target), false);
  r->query = strdup(qm ? qm + 1 : "");
  if (!r->query) kv_oom();
  parse_query(r);
  while ((line = strtok_r(NULL, "\r\n", &save))) {
    char *colon = strchr(line, ':');
    if (!colon) return false;
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
      v[--vl] = 0;
    r->hdr_names = realloc(r->hdr_names, (r->nhdrs + 1) * sizeof(char *));
    r->hdr_vals = realloc(r->hdr_vals, (r->nhdrs + 1) * sizeof(char *));
    if (!r->hdr_names || !r->hdr_vals) kv_oom();
    r->hdr_names[r->nhdrs] = strdup(line);
    r->hdr_vals[r->nhdrs] = strdup(v);
    if (!r->hdr_names[r->nhdrs] || !r->hdr_vals[r->nhdrs]) kv_oom();
    for (char *p = r->hdr_names[r->nhdrs]; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    r->nhdrs++;
  }
  const char *conn = ks_header(r, "connection");
  if (conn && strcasestr(conn, "close")) c->keep_alive = false;
  if (conn && strcasestr(conn, "keep-alive")) c->keep_alive = true;
  return true;
}

static void http_error_close(ks_conn *c, int code, const char *msg) {
  c->keep_alive = false;
  kv *st = ks_status(code, code == 400 ? "BadRequest" : "RequestEntityTooLarge", NULL, "%s", msg);
  ks_respond_status(c, st);
}

/* Read a chunked body; returns 1 when complete, 0 when more input is
 * needed, -1 on a framing error. */
static int read_chunked(ks_conn *c, struct evbuffer *in) {
  for (;;) {
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) return evbuffer_get_length(in) > 1024 ? -1 : 0;
    char line[1100];
    size_t ln = (size_t)eol.pos < sizeof line - 1 ? (size_t)eol.pos : sizeof line - 1;
    evbuffer_copyout(in, line, ln);
    line[ln] = 0;
    char *end;
    unsigned long sz = strtoul(line, &end, 16);
    if (end == line) return -1;
    if (sz == 0) {
      /* last chunk: skip trailers up to the empty line */
      struct evbuffer_ptr fin = evbuffer_search(in, "\r\n\r\n", 4, NULL);
      if (fin.pos < 0) return 0;
      evbuffer_drain(in, (size_t)fin.pos + 4);
      return 1;
    }
    if (c->req.body_len + sz > MAX_BODY) return -1;
    size_t need = (size_t)eol.pos + 2 + sz + 2;
    if (evbuffer_get_length(in) < need) return 0;
    evbuffer_drain(in, (size_t)eol.pos + 2);
    c->req.body = realloc(c->req.body, c->req.body_len + sz + 1);
    if (!c->req.body) kv_oom();
    evbuffer_remove(in, c->req.body + c->req.body_len, sz);
    c->req.body_len += sz;
    c->req.body[c->req.body_len] = 0;
    evbuffer_drain(in, 2);
  }
}

static void conn_process(ks_conn *c) {
  while (c->state == KS_C_HEAD || c->state == KS_C_BODY) {
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state == KS_C_HEAD) {
      /* tolerate stray CRLFs between requests */
      while (evbuffer_get_length(in) >= 2) {
        char two[2];
        evbuffer_copyout(in, two, 2);
        if (two[0] != '\r' || two[1] != '\n') break;
        evbuffer_drain(in, 2);
      }
      struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
      if (p.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HEAD) http_error_close(c, 431, "request head too large");
        return;
      }
      size_t hl = (size_t)p.pos + 4;
      char *head = malloc(hl + 1);
      if (!head) kv_oom();
      evbuffer_remove(in, head, hl);
      head[hl] = 0;
      bool ok = parse_head(c, head);
      free(head);
      if (!ok) {
        http_error_close(c, 400, "malformed HTTP request");
        return;
      }
      const char *te = ks_header(&c->req, "transfer-encoding");
      const char *cl = ks_header(&c->req, "content-length");
      c->chunked_body = te && strcasestr(te, "chunked");
      c->body_need = 0;
      if (!c->chunked_body && cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end || n > MAX_BODY) {
          http_error_close(c, 413, "request body too large");
          return;
        }
        c->body_need = (size_t)n;
      }
      const char *expect = ks_header(&c->req, "expect");
      if (expect && strcasecmp(expect, "100-continue") == 0)
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
      c->state = KS_C_BODY;
    }
    if (c->chunked_body) {
      int r = read_chunked(c, in);
      if (r < 0) {
        http_error_close(c, 400, "malformed chunked body");
        return;
      }
      if (r == 0) return;
    } else {
      if (evbuffer_get_length(in) < c->body_need) return;
      c->req.body = malloc(c->body_need + 1);
      if (!c->req.body) kv_oom();
      evbuffer_remove(in, c->req.body, c->body_need);
      c->req.body_len = c->body_need;
    }
    if (!c->req.body) {
      c->req.body = calloc(1, 1);
      if (!c->req.body) kv_oom();
    }
    c->req.body[c->req.body_len] = 0;
    c->state = KS_C_BUSY;
    c->srv->requests++;
    ks_api_handle(c);
  }
}

/* Continue reading requests after a delayed response (latency faults). */
void ks_conn_resume(ks_conn *c) { conn_process(c); }

static void resume_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  conn_process(arg);
}

static void on_read(struct bufferevent *bev, void *arg) {
  (void)bev;
  ks_conn *c = arg;
  if (c->state == KS_C_STREAM) {
    /* a watch client never sends more; discard */
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    return;
  }
  conn_process(c);
}

static void on_write(struct bufferevent *bev, void *arg) {
  ks_conn *c = arg;
  if (c->state == KS_C_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    ks_conn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  ks_conn *c = arg;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
    if (c->srv->verbose && (what & BEV_EVENT_ERROR)) {
      unsigned long e;
      while ((e = bufferevent_get_openssl_error(bev)))
        fprintf(stderr, "kubesim: TLS error: %s\n", ERR_error_string(e, NULL));
    }
    ks_conn_free(c);
  }
}

void ks_http_accept(ks_server *s, evutil_socket_t fd) {
  SSL *ssl = SSL_new(s->ssl);
  if (!ssl) {
    evutil_closesocket(fd);
    return;
  }
  struct bufferevent *bev = bufferevent_openssl_socket_new(
      s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    SSL_free(ssl);
    evutil_closesocket(fd);
    return;
  }
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  ks_conn *c = calloc(1, sizeof *c);
  if (!c) kv_oom();
  c->srv = s;
  c->bev = bev;
  c->state = KS_C_HEAD;
  c->keep_alive = true;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  bufferevent_setcb(bev, on_read, on_write, on_event, c);
  bufferevent_set_timeouts(bev, &idle_timeout, NULL);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void ks_conn_free(ks_conn *c) {
  ks_server *s = c->srv;
  if (c->watch) ks_watch_free(s, c->watch);
  c->watch = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->delay_ev) event_free(c->delay_ev);
  if (c->resume_ev) event_free(c->resume_ev);
  req_reset(&c->req);
  bufferevent_free(c->bev);
  free(c);
}

void ks_http_close_all(ks_server *s) {
  while (s->conns)
    ks_conn_free(s->conns);
}

static void write_head(ks_conn *c, int code, const char *ctype, const char *extra) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  char date[64];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nCache-Control: no-cache, private\r\n",
                      code, reason_phrase(code), date);
  if (ctype) evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
  if (extra) evbuffer_add(out, extra, strlen(extra));
  if (!c->keep_alive) evbuffer_add_printf(out, "Connection: close\r\n");
}

void ks_respond(ks_conn *c, int code, const char *ctype, const char *body, size_t len,
                const char *extra_headers) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  write_head(c, code, ctype, extra_headers);
  evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", len);
  if (len && strcmp(c->req.method, "HEAD") != 0) evbuffer_add(out, body, len);
  req_reset(&c->req);
  c->state = c->keep_alive ? KS_C_HEAD : KS_C_CLOSING;
}

void ks_respond_json(ks_conn *c, int code, const kv *v, const char *ctype) {
  size_t n;
  char *s = ku_json(v, &n);
  ks_respond(c, code, ctype ? ctype : "application/json", s, n, NULL);
  free(s);
}

void ks_respond_status(ks_conn *c, kv *status) {
  int code = ks_status_code(status);
  char *extra = NULL;
  kv *d = ku_get(status, "details");
  int64_t ra;
  if (ku_as_int(ku_get(d, "retryAfterSeconds"), &ra))
    extra = ku_fmt("Retry-After: %lld\r\n", (long long)ra);
  size_t n;
  char *s = ku_json(status, &n);
  ks_respond(c, code, "application/json", s, n, extra);
  free(s);
  free(extra);
  kv_unref(status);
}

void ks_stream_begin(ks_conn *c, const char *ctype) {
  write_head(c, 200, ctype, "Transfer-Encoding: chunked\r\n");
  evbuffer_add_printf(bufferevent_get_output(c->bev), "\r\n");
  c->state = KS_C_STREAM;
  bufferevent_set_timeouts(c->bev, NULL, NULL);
}

void ks_stream_write(ks_conn *c, const char *data, size_t len) {
  if (!len) return;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "%zx\r\n", len);
  evbuffer_add(out, data, len);
  evbuffer_add(out, "\r\n", 2);
}

void ks_stream_end(ks_conn *c, bool graceful) {
  if (!graceful) {
    ks_conn_free(c);
    return;
  }
  evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
  req_reset(&c->req);
  bufferevent_set_timeouts(c->bev, &idle_timeout, NULL);
  if (c->keep_alive) {
    /* read the next request from the loop, not from inside whatever ended
     * the stream (an event being delivered to many watches) */
    c->state = KS_C_HEAD;
    if (!c->resume_ev) c->resume_ev = evtimer_new(c->srv->base, resume_cb, c);
    struct timeval now = {0, 0};
    evtimer_add(c->resume_ev, &now);
  } else {
    c->state = KS_C_CLOSING;
  }
}
