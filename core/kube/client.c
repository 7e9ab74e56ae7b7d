/*
 * core/kube/client.c: the Kubernetes client's engine and requests
 * (koreo/kube.h, "The client" and "Requests"):
 *  - the client's lifecycle (the HTTP transfer engine, with its
 *    connections and automatic retries, is core/kube/transport.c);
 *  - discovery fetches (coalesced per group/version, refreshed on a miss);
 *  - requests: URL and query building, bodies and content types per verb,
 *    answers decoded into kube_result with typed errors;
 *  - the synchronous wrappers and the paginated list.
 *
 * Owner callbacks are never called from inside libevent's HTTP code (see
 * transport.c), so they may start, stop and free transfers freely.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "koreo/json.h"
#include "kube_impl.h"

/* ======================================================================
 * Small utilities
 * ====================================================================== */

static char *xstrdup_or_null(const char *s) { return s ? kube_xstrdup(s) : NULL; }

void kbuf_add(kbuf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) kv_oom();
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = 0;
}

void kbuf_addf(kbuf *b, const char *fmt, ...) {
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) kv_oom();
  kbuf_add(b, s, (size_t)n);
  free(s);
}

void kbuf_free(kbuf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

int64_t kube_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kube_jitter(kube_client *c, int d) {
  if (d <= 1) return d;
  unsigned r = (unsigned)rand_r(&c->rand_state);
  return d / 2 + (int)(r % (unsigned)(d - d / 2 + 1));
}

int kube_backoff_ms(kube_client *c, int attempt) {
  int64_t d = c->opts.backoff_min_ms;
  for (int i = 0; i < attempt && d < c->opts.backoff_max_ms; i++)
    d *= 2;
  if (d > c->opts.backoff_max_ms) d = c->opts.backoff_max_ms;
  return kube_jitter(c, (int)d);
}

/* Percent-encode a query value (RFC 3986 unreserved kept). */
static void add_qv(kbuf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~')
      kbuf_add(b, p, 1);
    else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      kbuf_add(b, e, 3);
    }
  }
}

/* A path segment must be a non-empty name without '/' (RFC 1123 subdomain
 * or path-segment name rules are the server's to enforce). */
static bool seg_ok(const char *s) {
  return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
         !strpbrk(s, "?#% ");
}

/* ======================================================================
 * Client lifecycle
 * ====================================================================== */

static void cfg_copy(kube_config *d, const kube_config *s) {
  memset(d, 0, sizeof *d);
  d->server = kube_xstrdup(s->server);
  d->namespace_ = kube_xstrdup(s->namespace_ && *s->namespace_ ? s->namespace_ : "default");
  d->context = kube_xstrdup(s->context);
  d->cluster = kube_xstrdup(s->cluster);
  d->user = kube_xstrdup(s->user);
  d->source = kube_xstrdup(s->source);
#define DUPMEM(f, n)                                                                               \
  if (s->f) {                                                                                      \
    d->f = malloc(s->n + 1);                                                                       \
    if (!d->f) kv_oom();                                                                           \
    memcpy(d->f, s->f, s->n);                                                                      \
    d->f[s->n] = 0;                                                                                \
    d->n = s->n;                                                                                   \
  }
  DUPMEM(ca_pem, ca_len)
  DUPMEM(cert_pem, cert_len)
  DUPMEM(key_pem, key_len)
#undef DUPMEM
  d->insecure = s->insecure;
  d->tls_server_name = xstrdup_or_null(s->tls_server_name);
  d->token = xstrdup_or_null(s->token);
  d->token_file = xstrdup_or_null(s->token_file);
}

static void cfg_clear(kube_config *c) {
  free(c->server);
  free(c->namespace_);
  free(c->context);
  free(c->cluster);
  free(c->user);
  free(c->source);
  free(c->ca_pem);
  free(c->cert_pem);
  free(c->key_pem);
  free(c->tls_server_name);
  free(c->token);
  free(c->token_file);
  memset(c, 0, sizeof *c);
}

kube_client *kube_client_new(struct event_base *base, const kube_config *cfg,
                             const kube_client_options *opts, kube_error *err) {
  if (err) kube_error_clear(err);
  if (!base || !cfg || !cfg->server) {
    if (err) kube_error_set(err, KUBE_ERR_USAGE, "kube_client_new: no event base or server");
    return NULL;
  }
  kube_client *c = calloc(1, sizeof *c);
  if (!c) kv_oom();
  c->base = base;
  cfg_copy(&c->cfg, cfg);
  if (opts) c->opts = *opts;
  if (c->opts.request_timeout_ms <= 0) c->opts.request_timeout_ms = 30000;
  if (c->opts.connect_timeout_ms <= 0) c->opts.connect_timeout_ms = 10000;
  if (c->opts.max_retries == 0) c->opts.max_retries = 3;
  if (c->opts.max_retries < 0) c->opts.max_retries = 0;
  if (c->opts.retry_after_cap_ms <= 0) c->opts.retry_after_cap_ms = 10000;
  if (c->opts.max_connections <= 0) c->opts.max_connections = 32;
  if (c->opts.backoff_min_ms <= 0) c->opts.backoff_min_ms = 200;
  if (c->opts.backoff_max_ms <= 0) c->opts.backoff_max_ms = 30000;
  if (c->opts.backoff_max_ms < c->opts.backoff_min_ms)
    c->opts.backoff_max_ms = c->opts.backoff_min_ms;
  c->user_agent = kube_xstrdup(opts && opts->user_agent ? opts->user_agent : "koreo/0.1");
  c->opts.user_agent = c->user_agent;
  c->rand_state = (unsigned)(kube_now_ms() ^ (intptr_t)c);
  if (kube_transport_init(c, err) != 0) {
    kube_transport_free(c);
    free(c->url_base);
    free(c->user_agent);
    cfg_clear(&c->cfg);
    free(c);
    return NULL;
  }
  c->disc = kube_discovery_new();
  return c;
}

struct event_base *kube_client_base(const kube_client *c) {
  return c->base;
}
const kube_config *kube_client_config(const kube_client *c) { return &c->cfg; }
kube_discovery *kube_client_discovery(kube_client *c) { return c->disc; }
kube_client_stats kube_client_get_stats(const kube_client *c) {
  kube_client_stats s = c->stats;
  s.open = (uint64_t)c->n_conns;
  return s;
}

static void ev_flag_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  *(bool *)arg = true;
}

int kube_client_run_until(kube_client *c, const bool *done, int timeout_ms) {
  bool timed_out = false;
  struct event *t = NULL;
  if (timeout_ms >= 0) {
    t = evtimer_new(c->base, ev_flag_cb, &timed_out);
    if (!t) kv_oom();
    struct timeval tv = kube_tv_ms(timeout_ms);
    evtimer_add(t, &tv);
  }
  while (!*done && !timed_out) {
    int rc = event_base_loop(c->base, EVLOOP_ONCE);
    if (rc != 0) break; /* error, or nothing left that could finish */
  }
  if (t) event_free(t);
  return *done ? 0 : -1;
}

/* ======================================================================
 * Discovery fetches and resolution
 * ====================================================================== */

struct kresolve {
  kube_client *c;
  char *api_version, *kind, *resource;
  bool namespaced_hint;
  kresolve_fn cb;
  void *ud;
  kfetch *waiting; /* the fetch it waits for, or NULL (deferred answer) */
  struct event *defer;
  const kube_resource_info *ri;
  kube_error err;
  kresolve *wnext;
};

struct kfetch {
  kube_client *c;
  char *api_version;
  kxfer *x;
  kresolve *waiters;
  kfetch *next;
};

static void kresolve_answer(kresolve *r);

static void kresolve_free(kresolve *r) {
  if (r->defer) event_free(r->defer);
  kube_error_clear(&r->err);
  free(r->api_version);
  free(r->kind);
  free(r->resource);
  free(r);
}

static void kresolve_defer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kresolve *r = arg;
  kresolve_fn cb = r->cb;
  void *ud = r->ud;
  const kube_resource_info *ri = r->ri;
  kube_error err;
  kube_error_copy(&err, &r->err);
  kresolve_free(r);
  cb(ud, ri, ri ? NULL : &err);
  kube_error_clear(&err);
}

/* Answer from the cache (after a fetch or without one), from the loop. */
static void kresolve_answer(kresolve *r) {
  kube_client *c = r->c;
  r->waiting = NULL;
  if (r->err.code == KUBE_OK) {
    if (r->kind)
      r->ri = kube_discovery_find(c->disc, r->api_version, r->kind, NULL);
    else {
      r->ri = kube_discovery_find(c->disc, r->api_version, NULL, r->resource);
      if (!r->ri) /* not discovered: address the plural as given */
        r->ri = kube_discovery_synth(c->disc, r->api_version, r->resource, r->namespaced_hint);
    }
    if (!r->ri)
      kube_error_set(&r->err, KUBE_ERR_NO_KIND,
                     "no matches for kind \"%s\" in version \"%s\" (the API server does not "
                     "serve it; is its CustomResourceDefinition installed?)",
                     r->kind, r->api_version);
  }
  if (!r->defer) {
    r->defer = event_new(c->base, -1, 0, kresolve_defer_cb, r);
    if (!r->defer) kv_oom();
  }
  event_active(r->defer, 0, 0);
}

/* "<a><b>: <message>" (truncated to the message buffer). */
static void prefix_msg(kube_error *e, const char *a, const char *b) {
  kbuf t = {0};
  kbuf_addf(&t, "%s%s: %s", a, b, e->message);
  size_t n = t.len < sizeof e->message - 1 ? t.len : sizeof e->message - 1;
  memcpy(e->message, t.p, n);
  e->message[n] = 0;
  kbuf_free(&t);
}

static void kfetch_done(kxfer *x) {
  kfetch *f = x->owner;
  kube_client *c = f->c;
  kube_error err = {0};
  kv *body = NULL;
  if (x->rc == KXFER_OK && x->status == 200) {
    kv_parse_error pe;
    body = kv_json_parse(x->resp.p ? x->resp.p : "", x->resp.len, &pe);
    if (!body)
      kube_error_set(&err, KUBE_ERR_DECODE, "discovery of %s: the answer is not JSON: %s",
                     f->api_version, pe.msg);
    else if (kube_discovery_add_list(c->disc, body, kube_now_ms(), &err) != 0)
      prefix_msg(&err, "discovery of ", f->api_version);
  } else if (x->rc == KXFER_OK && x->status == 404) {
    kube_discovery_add_missing(c->disc, f->api_version, kube_now_ms());
  } else {
    kv_parse_error pe;
    body = x->resp.len ? kv_json_parse(x->resp.p, x->resp.len, &pe) : NULL;
    kxfer_error(x, body, &err);
    prefix_msg(&err, "discovery of ", f->api_version);
  }
  kv_unref(body);
  kxfer_free(x);
  f->x = NULL;
  for (kfetch **pp = &c->fetches; *pp; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  kresolve *w = f->waiters;
  while (w) {
    kresolve *n = w->wnext;
    w->wnext = NULL;
    if (err.code != KUBE_OK) kube_error_copy(&w->err, &err);
    kresolve_answer(w);
    w = n;
  }
  kube_error_clear(&err);
  free(f->api_version);
  free(f);
}

static void kfetch_join(kube_client *c, kresolve *r) {
  kfetch *f = c->fetches;
  while (f && strcmp(f->api_version, r->api_version) != 0)
    f = f->next;
  if (!f) {
    f = calloc(1, sizeof *f);
    if (!f) kv_oom();
    f->c = c;
    f->api_version = kube_xstrdup(r->api_version);
    char *path = NULL;
    if (strchr(r->api_version, '/')) {
      if (asprintf(&path, "/apis/%s", r->api_version) < 0) kv_oom();
    } else if (asprintf(&path, "/api/%s", r->api_version) < 0)
      kv_oom();
    f->x = kxfer_new(c, "GET", path, NULL, NULL, 0, kfetch_done, f);
    free(path);
    f->next = c->fetches;
    c->fetches = f;
    c->stats.discoveries++;
    kxfer_start(f->x);
  }
  r->waiting = f;
  r->wnext = f->waiters;
  f->waiters = r;
}

kresolve *kube_resolve_async(kube_client *c, const char *api_version, const char *kind,
                             const char *resource, const char *ns_hint, kresolve_fn cb, void *ud) {
  kresolve *r = calloc(1, sizeof *r);
  if (!r) kv_oom();
  r->c = c;
  r->api_version = kube_xstrdup(api_version);
  r->kind = kind && *kind ? kube_xstrdup(kind) : NULL;
  r->resource = !r->kind && resource ? kube_xstrdup(resource) : NULL;
  r->namespaced_hint = ns_hint && *ns_hint;
  r->cb = cb;
  r->ud = ud;
  r->err.retry_after = -1;
  if (!api_version || !*api_version || (!r->kind && (!r->resource || !*r->resource))) {
    kube_error_set(&r->err, KUBE_ERR_USAGE,
                   "a request must name apiVersion and kind (or resource); got apiVersion "
                   "\"%s\", kind \"%s\"",
                   api_version ? api_version : "", kind ? kind : "");
    kresolve_answer(r);
    return r;
  }
  const kube_resource_info *ri =
      kube_discovery_find(c->disc, r->api_version, r->kind, r->kind ? NULL : r->resource);
  if (ri || (!r->kind && kube_discovery_knows(c->disc, r->api_version))) {
    kresolve_answer(r); /* cached (or a plural we can address as given) */
    return r;
  }
  kfetch_join(c, r); /* unknown group/version, or a miss: refresh */
  return r;
}

void kresolve_cancel(kresolve *r) {
  if (!r) return;
  if (r->waiting) {
    for (kresolve **pp = &r->waiting->waiters; *pp; pp = &(*pp)->wnext)
      if (*pp == r) {
        *pp = r->wnext;
        break;
      }
  }
  kresolve_free(r);
}

/* ======================================================================
 * Requests
 * ====================================================================== */

/* An owned copy of a kube_req. */
typedef struct kreq_copy {
  kube_req r;
  char *strs[20];
  size_t n;
  kv *body;
} kreq_copy;

static const char *keep(kreq_copy *k, const char *s) {
  if (!s) return NULL;
  char *d = kube_xstrdup(s);
  k->strs[k->n++] = d;
  return d;
}

static void kreq_copy_init(kreq_copy *k, const kube_req *r) {
  memset(k, 0, sizeof *k);
  k->r = *r;
  k->r.api_version = keep(k, r->api_version);
  k->r.kind = keep(k, r->kind);
  k->r.resource = keep(k, r->resource);
  k->r.namespace_ = keep(k, r->namespace_);
  k->r.name = keep(k, r->name);
  k->r.subresource = keep(k, r->subresource);
  k->r.label_selector = keep(k, r->label_selector);
  k->r.field_selector = keep(k, r->field_selector);
  k->r.continue_token = keep(k, r->continue_token);
  k->r.resource_version = keep(k, r->resource_version);
  k->r.field_manager = keep(k, r->field_manager);
  k->r.propagation_policy = keep(k, r->propagation_policy);
  k->r.precondition_uid = keep(k, r->precondition_uid);
  k->r.precondition_resource_version = keep(k, r->precondition_resource_version);
  k->body = kv_ref((kv *)r->body);
  k->r.body = k->body;
  /* defaults from the body for object writes */
  if (k->body && kv_kind_of(k->body) == KV_MAP &&
      (r->op == KUBE_OP_CREATE || r->op == KUBE_OP_UPDATE || r->op == KUBE_OP_APPLY)) {
    kv *av = kv_map_get_str(k->body, "apiVersion");
    kv *kd = kv_map_get_str(k->body, "kind");
    if (!k->r.api_version && av && kv_kind_of(av) == KV_STRING)
      k->r.api_version = keep(k, kv_str(av));
    if (!k->r.kind && !k->r.resource && kd && kv_kind_of(kd) == KV_STRING)
      k->r.kind = keep(k, kv_str(kd));
    const char *ns = kube_obj_meta(k->body, "namespace");
    if (!k->r.namespace_ && ns && *ns) k->r.namespace_ = keep(k, ns);
    const char *nm = kube_obj_meta(k->body, "name");
    if (!k->r.name && nm && *nm && (r->op != KUBE_OP_CREATE || r->subresource))
      k->r.name = keep(k, nm);
  }
}

static void kreq_copy_clear(kreq_copy *k) {
  for (size_t i = 0; i < k->n; i++)
    free(k->strs[i]);
  kv_unref(k->body);
  memset(k, 0, sizeof *k);
}

char *kube_req_path_q(const kube_resource_info *ri, const kube_req *req, const char *def_ns,
                      const char *extra, kube_error *err) {
  bool list = req->op == KUBE_OP_LIST;
  bool create = req->op == KUBE_OP_CREATE;
  if (!list && !(create && !req->subresource) && !seg_ok(req->name)) {
    kube_error_set(err, KUBE_ERR_USAGE, "%s %s: a valid object name is required (got \"%s\")",
                   list ? "list" : "request", ri->resource, req->name ? req->name : "");
    return NULL;
  }
  if (req->subresource && !seg_ok(req->subresource)) {
    kube_error_set(err, KUBE_ERR_USAGE, "invalid subresource \"%s\"", req->subresource);
    return NULL;
  }
  kbuf b = {0};
  if (ri->group[0])
    kbuf_addf(&b, "/apis/%s/%s", ri->group, ri->version);
  else
    kbuf_addf(&b, "/api/%s", ri->version);
  if (ri->namespaced) {
    const char *ns = req->namespace_ && *req->namespace_ ? req->namespace_ : (list ? NULL : def_ns);
    if (ns) {
      if (!seg_ok(ns)) {
        kbuf_free(&b);
        kube_error_set(err, KUBE_ERR_USAGE, "invalid namespace \"%s\"", ns);
        return NULL;
      }
      kbuf_addf(&b, "/namespaces/%s", ns);
    }
  }
  kbuf_addf(&b, "/%s", ri->resource);
  if (!list && req->name && (!create || req->subresource)) kbuf_addf(&b, "/%s", req->name);
  if (req->subresource) kbuf_addf(&b, "/%s", req->subresource);
  char sep = '?';
#define Q(key, val)                                                                                \
  do {                                                                                             \
    kbuf_addf(&b, "%c%s=", sep, key);                                                              \
    add_qv(&b, val);                                                                               \
    sep = '&';                                                                                     \
  } while (0)
  if (list) {
    if (req->label_selector && *req->label_selector) Q("labelSelector", req->label_selector);
    if (req->field_selector && *req->field_selector) Q("fieldSelector", req->field_selector);
    if (req->limit > 0) {
      char n[32];
      snprintf(n, sizeof n, "%lld", (long long)req->limit);
      Q("limit", n);
    }
    if (req->continue_token && *req->continue_token) Q("continue", req->continue_token);
  }
  if ((list || req->op == KUBE_OP_GET) && req->resource_version && *req->resource_version)
    Q("resourceVersion", req->resource_version);
  bool write = !list && req->op != KUBE_OP_GET;
  if (write && req->field_manager && *req->field_manager && req->op != KUBE_OP_DELETE)
    Q("fieldManager", req->field_manager);
  if (req->op == KUBE_OP_APPLY && req->force) Q("force", "true");
  if (write && req->dry_run && req->op != KUBE_OP_DELETE) Q("dryRun", "All");
#undef Q
  if (extra && *extra) kbuf_addf(&b, "%c%s", sep, extra);
  return b.p;
}

char *kube_req_path(const kube_resource_info *ri, const kube_req *req, const char *def_ns,
                    kube_error *err) {
  return kube_req_path_q(ri, req, def_ns, NULL, err);
}

struct kop {
  kube_client *c;
  bool resolve_only; /* kube_resolve: answer the resource, send nothing */
  bool raw;          /* kube_send_raw: a non-JSON body is not an error */
  kreq_copy req;
  kube_result_fn cb;
  void *ud;
  kresolve *resolving;
  kxfer *x;
  struct event *defer;
  kube_result res;
  kop *next, *prev;
};

static void kop_unlink(kop *o) {
  kube_client *c = o->c;
  if (o->prev)
    o->prev->next = o->next;
  else if (c->ops == o)
    c->ops = o->next;
  if (o->next) o->next->prev = o->prev;
  o->next = o->prev = NULL;
}

static void kop_free(kop *o) {
  if (o->resolving) kresolve_cancel(o->resolving);
  if (o->x) kxfer_free(o->x);
  if (o->defer) event_free(o->defer);
  kreq_copy_clear(&o->req);
  kube_result_clear(&o->res);
  free(o);
}

/* Call the callback and free the operation. */
static void kop_finish(kop *o) {
  kop_unlink(o);
  o->cb(o->ud, &o->res);
  kop_free(o);
}

void kube_result_clear(kube_result *r) {
  if (!r) return;
  kube_error_clear(&r->err);
  kv_unref(r->object);
  r->object = NULL;
  r->http_status = 0;
  r->resource = NULL;
}

static void kop_http_done(kxfer *x) {
  kop *o = x->owner;
  o->x = NULL;
  o->res.http_status = (int)x->status;
  kv *body = NULL;
  if (x->rc == KXFER_OK && x->resp.len) {
    kv_parse_error pe;
    body = kv_json_parse(x->resp.p, x->resp.len, &pe);
    if (!body && x->status >= 200 && x->status < 300 && !o->raw) {
      kube_error_set(&o->res.err, KUBE_ERR_DECODE, "%s %s: the answer is not JSON: %s (line %u)",
                     x->method, x->path, pe.msg, pe.line);
    }
  }
  if (o->res.err.code == KUBE_OK) kxfer_error(x, body, &o->res.err);
  o->res.object = body;
  kxfer_free(x);
  kop_finish(o);
}

static const char *content_type_for(kube_op op) {
  switch (op) {
  case KUBE_OP_CREATE:
  case KUBE_OP_UPDATE:
  case KUBE_OP_DELETE: return "application/json";
  case KUBE_OP_PATCH_MERGE: return "application/merge-patch+json";
  case KUBE_OP_PATCH_JSON: return "application/json-patch+json";
  case KUBE_OP_PATCH_STRATEGIC: return "application/strategic-merge-patch+json";
  case KUBE_OP_APPLY: return "application/apply-patch+yaml";
  default: return NULL;
  }
}

static const char *method_for(kube_op op) {
  switch (op) {
  case KUBE_OP_GET:
  case KUBE_OP_LIST: return "GET";
  case KUBE_OP_CREATE: return "POST";
  case KUBE_OP_UPDATE: return "PUT";
  case KUBE_OP_DELETE: return "DELETE";
  default: return "PATCH";
  }
}

/* The DeleteOptions body, or NULL when no option is set. */
static char *delete_body(const kube_req *r, size_t *len) {
  if (!r->propagation_policy && !r->precondition_uid && !r->precondition_resource_version &&
      !r->has_grace_period && !r->dry_run)
    return NULL;
  kv *m = kv_map_new(6);
  kv_map_set_str(m, "kind", kv_cstring("DeleteOptions"));
  kv_map_set_str(m, "apiVersion", kv_cstring("v1"));
  if (r->propagation_policy)
    kv_map_set_str(m, "propagationPolicy", kv_cstring(r->propagation_policy));
  if (r->has_grace_period) kv_map_set_str(m, "gracePeriodSeconds", kv_int(r->grace_period_s));
  if (r->precondition_uid || r->precondition_resource_version) {
    kv *p = kv_map_new(2);
    if (r->precondition_uid) kv_map_set_str(p, "uid", kv_cstring(r->precondition_uid));
    if (r->precondition_resource_version)
      kv_map_set_str(p, "resourceVersion", kv_cstring(r->precondition_resource_version));
    kv_map_set_str(m, "preconditions", p);
  }
  if (r->dry_run) {
    kv *l = kv_list_new(1);
    kv_list_push(l, kv_cstring("All"));
    kv_map_set_str(m, "dryRun", l);
  }
  char *s = kv_json_write(m, 0, len);
  kv_unref(m);
  return s;
}

static void kop_resolved(void *ud, const kube_resource_info *ri, const kube_error *err) {
  kop *o = ud;
  o->resolving = NULL;
  kube_client *c = o->c;
  if (!ri) {
    kube_error_copy(&o->res.err, err);
    o->res.http_status = err->http_status;
    kop_finish(o);
    return;
  }
  o->res.resource = ri->kind[0] ? ri : NULL;
  if (o->resolve_only) {
    kop_finish(o);
    return;
  }
  const kube_req *r = &o->req.r;
  char *path = kube_req_path(ri, r, c->cfg.namespace_, &o->res.err);
  if (!path) {
    kop_finish(o);
    return;
  }
  char *body = NULL;
  size_t len = 0;
  switch (r->op) {
  case KUBE_OP_GET:
  case KUBE_OP_LIST: break;
  case KUBE_OP_DELETE: body = delete_body(r, &len); break;
  default:
    if (!r->body) {
      kube_error_set(&o->res.err, KUBE_ERR_USAGE, "%s %s/%s: a body is required", method_for(r->op),
                     ri->resource, r->name ? r->name : "");
      free(path);
      kop_finish(o);
      return;
    }
    if (r->op == KUBE_OP_APPLY && (!r->field_manager || !*r->field_manager)) {
      kube_error_set(&o->res.err, KUBE_ERR_USAGE,
                     "server-side apply of %s/%s: a field manager is required", ri->resource,
                     r->name ? r->name : "");
      free(path);
      kop_finish(o);
      return;
    }
    body = kv_json_write(r->body, 0, &len);
  }
  o->x = kxfer_new(c, method_for(r->op), path, body ? content_type_for(r->op) : NULL, body, len,
                   kop_http_done, o);
  free(path);
  free(body);
  kxfer_start(o->x);
}

int kube_send(kube_client *c, const kube_req *req, kube_result_fn cb, void *ud) {
  if (c->closing) return -1;
  kop *o = calloc(1, sizeof *o);
  if (!o) kv_oom();
  o->c = c;
  o->cb = cb;
  o->ud = ud;
  o->res.err.retry_after = -1;
  kreq_copy_init(&o->req, req);
  o->next = c->ops;
  if (c->ops) c->ops->prev = o;
  c->ops = o;
  const kube_req *r = &o->req.r;
  o->resolving =
      kube_resolve_async(c, r->api_version, r->kind, r->resource, r->namespace_, kop_resolved, o);
  return 0;
}

int kube_send_raw(kube_client *c, const char *method, const char *path, const kv *body,
                  kube_result_fn cb, void *ud) {
  if (c->closing) return -1;
  kop *o = calloc(1, sizeof *o);
  if (!o) kv_oom();
  o->c = c;
  o->cb = cb;
  o->ud = ud;
  o->raw = true;
  o->res.err.retry_after = -1;
  o->next = c->ops;
  if (c->ops) c->ops->prev = o;
  c->ops = o;
  size_t len = 0;
  char *text = body ? kv_json_write(body, 0, &len) : NULL;
  o->x = kxfer_new(c, method, path && *path ? path : "/", text ? "application/json" : NULL, text,
                   len, kop_http_done, o);
  free(text);
  kxfer_start(o->x);
  return 0;
}

/* --- synchronous ---------------------------------------------------------- */

typedef struct sync_wait {
  bool done;
  kube_result *out;
} sync_wait;

static void sync_cb(void *ud, kube_result *r) {
  sync_wait *w = ud;
  kube_error_copy(&w->out->err, &r->err);
  w->out->http_status = r->http_status;
  w->out->object = r->object;
  r->object = NULL;
  w->out->resource = r->resource;
  w->done = true;
}

static int run_sync(kube_client *c, sync_wait *w) {
  if (kube_client_run_until(c, &w->done, -1) != 0 && !w->done) {
    kube_error_set(&w->out->err, KUBE_ERR_USAGE, "the event loop stopped before the answer came");
    return -1;
  }
  return w->out->err.code == KUBE_OK ? 0 : -1;
}

int kube_send_sync(kube_client *c, const kube_req *req, kube_result *out) {
  memset(out, 0, sizeof *out);
  out->err.retry_after = -1;
  sync_wait w = {false, out};
  if (kube_send(c, req, sync_cb, &w) != 0) {
    kube_error_set(&out->err, KUBE_ERR_CANCELLED, "the client is closing");
    return -1;
  }
  return run_sync(c, &w);
}

int kube_send_raw_sync(kube_client *c, const char *method, const char *path, const kv *body,
                       kube_result *out) {
  memset(out, 0, sizeof *out);
  out->err.retry_after = -1;
  sync_wait w = {false, out};
  if (kube_send_raw(c, method, path, body, sync_cb, &w) != 0) {
    kube_error_set(&out->err, KUBE_ERR_CANCELLED, "the client is closing");
    return -1;
  }
  return run_sync(c, &w);
}

/* --- resolve -------------------------------------------------------------- */

int kube_resolve(kube_client *c, const char *api_version, const char *kind, kube_result_fn cb,
                 void *ud) {
  if (c->closing) return -1;
  kube_req q = {.op = KUBE_OP_GET, .api_version = api_version, .kind = kind};
  if (kube_send(c, &q, cb, ud) != 0) return -1;
  c->ops->resolve_only = true; /* kube_send links the new operation first */
  return 0;
}

/* --- paginated list ------------------------------------------------------- */

typedef struct klistall {
  kube_client *c;
  kreq_copy req;
  char *cont;
  kv *items;
  kv *first; /* first page (metadata, apiVersion, kind) */
  bool restarted;
  kube_result_fn cb;
  void *ud;
} klistall;

static void listall_page(void *ud, kube_result *r);

static void listall_next(klistall *l) {
  kube_req q = l->req.r;
  q.op = KUBE_OP_LIST;
  q.continue_token = l->cont;
  if (q.limit <= 0) q.limit = 500;
  if (l->cont) q.resource_version = NULL; /* the token carries it */
  if (kube_send(l->c, &q, listall_page, l) != 0) {
    kube_result r = {0};
    kube_error_set(&r.err, KUBE_ERR_CANCELLED, "the client is closing");
    l->cb(l->ud, &r);
    kube_result_clear(&r);
    kreq_copy_clear(&l->req);
    kv_unref(l->items);
    kv_unref(l->first);
    free(l->cont);
    free(l);
  }
}

static void listall_finish(klistall *l, kube_result *r) {
  if (r->err.code == KUBE_OK) {
    kv *out = kv_map_new(4);
    for (size_t i = 0; i < kv_len(l->first); i++) {
      const char *k = kv_str(kv_map_key_at(l->first, i));
      if (strcmp(k, "items") == 0) continue;
      if (strcmp(k, "metadata") == 0) {
        kv *md = kv_map_val_at(l->first, i);
        kv *m2 = kv_map_new(2);
        if (kv_kind_of(md) == KV_MAP)
          for (size_t j = 0; j < kv_len(md); j++) {
            const char *mk = kv_str(kv_map_key_at(md, j));
            if (strcmp(mk, "continue") == 0 || strcmp(mk, "remainingItemCount") == 0) continue;
            kv_map_set(m2, kv_ref(kv_map_key_at(md, j)), kv_ref(kv_map_val_at(md, j)));
          }
        kv_map_set_str(out, "metadata", m2);
        continue;
      }
      kv_map_set(out, kv_ref(kv_map_key_at(l->first, i)), kv_ref(kv_map_val_at(l->first, i)));
    }
    kv_map_set_str(out, "items", kv_ref(l->items));
    kv_unref(r->object);
    r->object = out;
  }
  l->cb(l->ud, r);
  kreq_copy_clear(&l->req);
  kv_unref(l->items);
  kv_unref(l->first);
  free(l->cont);
  free(l);
}

static void listall_page(void *ud, kube_result *r) {
  klistall *l = ud;
  if (r->err.code == KUBE_ERR_GONE && l->cont && !l->restarted && !l->c->closing) {
    /* the continue token expired: start over once */
    l->restarted = true;
    free(l->cont);
    l->cont = NULL;
    kv_unref(l->items);
    l->items = kv_list_new(16);
    kv_unref(l->first);
    l->first = NULL;
    listall_next(l);
    return;
  }
  if (r->err.code != KUBE_OK || !r->object || kv_kind_of(r->object) != KV_MAP) {
    if (r->err.code == KUBE_OK)
      kube_error_set(&r->err, KUBE_ERR_DECODE, "list: the answer is not a List object");
    listall_finish(l, r);
    return;
  }
  if (!l->first) l->first = kv_ref(r->object);
  kv *items = kv_map_get_str(r->object, "items");
  if (items && kv_kind_of(items) == KV_LIST)
    for (size_t i = 0; i < kv_len(items); i++)
      kv_list_push(l->items, kv_ref(kv_list_at(items, i)));
  const char *cont = kube_obj_meta(r->object, "continue");
  free(l->cont);
  l->cont = cont && *cont ? kube_xstrdup(cont) : NULL;
  if (l->cont && !l->c->closing) {
    listall_next(l);
    return;
  }
  listall_finish(l, r);
}

int kube_list_all(kube_client *c, const kube_req *req, kube_result_fn cb, void *ud) {
  if (c->closing) return -1;
  klistall *l = calloc(1, sizeof *l);
  if (!l) kv_oom();
  l->c = c;
  kreq_copy_init(&l->req, req);
  l->req.r.op = KUBE_OP_LIST;
  l->items = kv_list_new(16);
  l->cb = cb;
  l->ud = ud;
  listall_next(l);
  return 0;
}

int kube_list_all_sync(kube_client *c, const kube_req *req, kube_result *out) {
  memset(out, 0, sizeof *out);
  out->err.retry_after = -1;
  sync_wait w = {false, out};
  if (kube_list_all(c, req, sync_cb, &w) != 0) {
    kube_error_set(&out->err, KUBE_ERR_CANCELLED, "the client is closing");
    return -1;
  }
  return run_sync(c, &w);
}

/* ======================================================================
 * Teardown
 * ====================================================================== */

void kube_client_free(kube_client *c) {
  if (!c) return;
  c->closing = true;
  kube_watches_shutdown(c);
  /* cancel requests: each callback sees CANCELLED once */
  while (c->ops) {
    kop *o = c->ops;
    if (o->resolving) {
      kresolve_cancel(o->resolving);
      o->resolving = NULL;
    }
    if (o->x) {
      kxfer_free(o->x);
      o->x = NULL;
    }
    kube_result_clear(&o->res);
    kube_error_set(&o->res.err, KUBE_ERR_CANCELLED, "the client was closed before the answer");
    kop_finish(o);
  }
  while (c->fetches) {
    kfetch *f = c->fetches;
    c->fetches = f->next;
    kresolve *w = f->waiters;
    while (w) {
      kresolve *n = w->wnext;
      kube_error_set(&w->err, KUBE_ERR_CANCELLED, "the client was closed");
      w->waiting = NULL;
      kresolve_fn cb = w->cb;
      void *ud = w->ud;
      kube_error err;
      kube_error_copy(&err, &w->err);
      kresolve_free(w);
      cb(ud, NULL, &err);
      kube_error_clear(&err);
      w = n;
    }
    if (f->x) kxfer_free(f->x);
    free(f->api_version);
    free(f);
  }
  while (c->active)
    kxfer_free(c->active);
  kube_transport_free(c);
  kube_discovery_free(c->disc);
  free(c->url_base);
  free(c->user_agent);
  cfg_clear(&c->cfg);
  free(c);
}
