/*
 * tests/kube/test_kube_engine.c: the client's engine (koreo/kube.h) against
 * a scripted HTTP responder written here (plain HTTP on 127.0.0.1, one
 * thread per connection), for behaviour that needs exact control of the
 * server: discovery caching and refresh on a miss, automatic retries
 * (429 + Retry-After, dropped connections), token rotation after a 401,
 * request shapes per verb, many requests in flight on one loop, and the
 * watch machine (split chunks, bookmarks, resume after a dropped stream,
 * ERROR 410 -> re-list with the difference delivered, backoff on failures).
 * The same behaviour against kubesim over HTTPS is in test_kube_client.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "koreo/json.h"
#include "koreo/kube.h"

/* ======================================================================
 * The scripted responder
 * ====================================================================== */

typedef struct treq {
  char method[16];
  char path[2048];
  char ctype[128];
  char auth[256];
  char body[8192];
  size_t body_len;
} treq;

typedef void (*thandler)(const treq *r, int fd);

static struct {
  int lfd;
  int port;
  atomic_bool stop;
  pthread_t acceptor;
  pthread_t conns[512];
  atomic_int n_conns;
  thandler handler;
  pthread_mutex_t mu;
  /* what the server saw (guarded by mu) */
  treq log[256];
  int n_log;
} srv;

static void send_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void respond(int fd, int status, const char *extra_headers, const char *body) {
  char head[1024];
  size_t bl = body ? strlen(body) : 0;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n%s\r\n",
                   status, bl, extra_headers ? extra_headers : "");
  send_all(fd, head, (size_t)n);
  if (bl) send_all(fd, body, bl);
}

/* Chunked streaming helpers for watches. */
static void stream_begin(int fd) {
  const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  send_all(fd, h, strlen(h));
}
static void stream_chunk(int fd, const char *data) {
  char h[32];
  int n = snprintf(h, sizeof h, "%zx\r\n", strlen(data));
  send_all(fd, h, (size_t)n);
  send_all(fd, data, strlen(data));
  send_all(fd, "\r\n", 2);
}
static void stream_end(int fd) { send_all(fd, "0\r\n\r\n", 5); }

static void msleep(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int read_request(int fd, treq *r) {
  char buf[16384];
  size_t len = 0;
  char *end = NULL;
  while (!end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return -1;
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = 0;
    end = strstr(buf, "\r\n\r\n");
    if (!end && len >= sizeof buf - 1) return -1;
  }
  memset(r, 0, sizeof *r);
  sscanf(buf, "%15s %2047s", r->method, r->path);
  size_t clen = 0;
  for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
    if (strncasecmp(line, "Content-Length:", 15) == 0) clen = (size_t)atol(line + 15);
    if (strncasecmp(line, "Content-Type:", 13) == 0) sscanf(line + 13, " %127[^\r]", r->ctype);
    if (strncasecmp(line, "Authorization:", 14) == 0) sscanf(line + 14, " %255[^\r]", r->auth);
  }
  size_t have = len - (size_t)(end + 4 - buf);
  if (clen >= sizeof r->body) return -1;
  memcpy(r->body, end + 4, have);
  while (have < clen) {
    ssize_t n = recv(fd, r->body + have, clen - have, 0);
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  r->body_len = clen;
  return 0;
}

static void *conn_main(void *arg) {
  int fd = (int)(intptr_t)arg;
  treq r;
  if (read_request(fd, &r) == 0) {
    pthread_mutex_lock(&srv.mu);
    if (srv.n_log < 256) srv.log[srv.n_log++] = r;
    pthread_mutex_unlock(&srv.mu);
    srv.handler(&r, fd);
  }
  shutdown(fd, SHUT_RDWR);
  close(fd);
  return NULL;
}

static void *acceptor_main(void *arg) {
  (void)arg;
  while (!atomic_load(&srv.stop)) {
    struct pollfd p = {srv.lfd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(srv.lfd, NULL, NULL);
    if (fd < 0) continue;
    int i = atomic_fetch_add(&srv.n_conns, 1);
    if (i >= 512) {
      close(fd);
      continue;
    }
    pthread_create(&srv.conns[i], NULL, conn_main, (void *)(intptr_t)fd);
  }
  return NULL;
}

static void server_start(thandler h) {
  memset(&srv, 0, sizeof srv);
  pthread_mutex_init(&srv.mu, NULL);
  srv.handler = h;
  srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(srv.lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(srv.lfd, 128), 0);
  socklen_t al = sizeof a;
  getsockname(srv.lfd, (struct sockaddr *)&a, &al);
  srv.port = ntohs(a.sin_port);
  pthread_create(&srv.acceptor, NULL, acceptor_main, NULL);
}

static void server_stop(void) {
  atomic_store(&srv.stop, true);
  pthread_join(srv.acceptor, NULL);
  int n = atomic_load(&srv.n_conns);
  for (int i = 0; i < n && i < 512; i++)
    pthread_join(srv.conns[i], NULL);
  close(srv.lfd);
  pthread_mutex_destroy(&srv.mu);
}

static int log_count(const char *method, const char *path_prefix) {
  int n = 0;
  pthread_mutex_lock(&srv.mu);
  for (int i = 0; i < srv.n_log; i++)
    if ((!method || strcmp(srv.log[i].method, method) == 0) &&
        strncmp(srv.log[i].path, path_prefix, strlen(path_prefix)) == 0)
      n++;
  pthread_mutex_unlock(&srv.mu);
  return n;
}

static treq log_last(void) {
  pthread_mutex_lock(&srv.mu);
  treq r = srv.log[srv.n_log - 1];
  pthread_mutex_unlock(&srv.mu);
  return r;
}

/* ======================================================================
 * Client helpers
 * ====================================================================== */

static struct event_base *base;
static kube_client *cli;

static void client_open(const char *token, const char *token_file, const kube_client_options *o) {
  base = event_base_new();
  kube_config cfg = {0};
  char server[64];
  snprintf(server, sizeof server, "http://127.0.0.1:%d", srv.port);
  cfg.server = server;
  cfg.namespace_ = "default";
  cfg.token = (char *)token;
  cfg.token_file = (char *)token_file;
  kube_client_options def = {.backoff_min_ms = 20, .backoff_max_ms = 200};
  kube_error e = {0};
  cli = kube_client_new(base, &cfg, o ? o : &def, &e);
  if (!cli) fail_msg("client: %s", e.message);
}

static void client_close(void) {
  kube_client_free(cli);
  event_base_free(base);
  cli = NULL;
  base = NULL;
}

static const char *CORE_V1 =
    "{\"kind\":\"APIResourceList\",\"groupVersion\":\"v1\",\"resources\":["
    "{\"name\":\"configmaps\",\"namespaced\":true,\"kind\":\"ConfigMap\","
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\",\"update\",\"watch\"]},"
    "{\"name\":\"namespaces\",\"namespaced\":false,\"kind\":\"Namespace\","
    "\"verbs\":[\"get\",\"list\"]}]}";

static void h_basic(const treq *r, int fd) {
  if (strcmp(r->path, "/api/v1") == 0) return respond(fd, 200, NULL, CORE_V1);
  if (strcmp(r->path, "/apis/example.com/v1") == 0)
    return respond(fd, 404, NULL, "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\"}");
  if (strcmp(r->path, "/api/v1/namespaces/default/configmaps/gone") == 0)
    return respond(fd, 404, NULL, "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\"}");
  if (strncmp(r->path, "/api/v1/namespaces/default/configmaps/", 38) == 0 &&
      strcmp(r->method, "GET") == 0) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"default\",\"resourceVersion\":\"5\"},\"data\":{\"n\":3}}",
             r->path + 38);
    return respond(fd, 200, NULL, body);
  }
  /* echo the request for shape checks */
  char body[9000];
  snprintf(body, sizeof body, "{\"kind\":\"Echo\",\"metadata\":{\"name\":\"e\"}}");
  respond(fd, strcmp(r->method, "POST") == 0 ? 201 : 200, NULL, body);
}

/* ======================================================================
 * Tests
 * ====================================================================== */

static void test_get_discovery_cached(void **state) {
  (void)state;
  server_start(h_basic);
  client_open("t0k", NULL, NULL);
  kube_result r;
  kube_req q = {.op = KUBE_OP_GET, .api_version = "v1", .kind = "ConfigMap", .name = "cfg1"};
  assert_int_equal(kube_send_sync(cli, &q, &r), 0);
  assert_int_equal(r.http_status, 200);
  assert_non_null(r.object);
  assert_string_equal(kube_obj_meta(r.object, "name"), "cfg1");
  kv *n = kv_map_get_str(kv_map_get_str(r.object, "data"), "n");
  assert_int_equal(kv_kind_of(n), KV_INT); /* integers stay integers */
  assert_non_null(r.resource);
  assert_string_equal(r.resource->resource, "configmaps");
  kube_result_clear(&r);
  treq last = log_last();
  assert_string_equal(last.auth, "Bearer t0k");
  q.name = "cfg2";
  assert_int_equal(kube_send_sync(cli, &q, &r), 0);
  kube_result_clear(&r);
  assert_int_equal(kube_client_get_stats(cli).discoveries, 1);
  assert_int_equal(log_count("GET", "/api/v1"), 3);
  /* typed NotFound */
  q.name = "gone";
  assert_int_equal(kube_send_sync(cli, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_NOT_FOUND);
  assert_int_equal(r.http_status, 404);
  kube_result_clear(&r);
  /* a kind missing from a known group/version refreshes discovery once */
  q.kind = "Widget";
  assert_int_equal(kube_send_sync(cli, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_NO_KIND);
  assert_non_null(strstr(r.err.message, "Widget"));
  kube_result_clear(&r);
  assert_int_equal(kube_client_get_stats(cli).discoveries, 2);
  /* an unknown group/version (404) */
  q.api_version = "example.com/v1";
  assert_int_equal(kube_send_sync(cli, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_NO_KIND);
  kube_result_clear(&r);
  /* resolve */
  assert_int_equal(kube_send_sync(cli,
                                  &(kube_req){.op = KUBE_OP_GET,
                                              .api_version = "v1",
                                              .resource = "configmaps",
                                              .namespace_ = "default",
                                              .name = "byplural"},
                                  &r),
                   0);
  assert_string_equal(kube_obj_meta(r.object, "name"), "byplural");
  kube_result_clear(&r);
  client_close();
  server_stop();
}

static void test_request_shapes(void **state) {
  (void)state;
  server_start(h_basic);
  client_open(NULL, NULL, NULL);
  kube_result r;
  kv_parse_error pe;
  const char *objtext = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                        "\"c\",\"namespace\":\"team\"},\"data\":{\"replicas\":3}}";
  kv *obj = kv_json_parse(objtext, strlen(objtext), &pe);
  struct {
    kube_req q;
    const char *method, *path, *ctype, *body_has;
  } cases[] = {
      {{.op = KUBE_OP_CREATE, .body = obj, .field_manager = "koreo"},
       "POST",
       "/api/v1/namespaces/team/configmaps?fieldManager=koreo",
       "application/json",
       "\"replicas\":3"},
      {{.op = KUBE_OP_UPDATE, .body = obj},
       "PUT",
       "/api/v1/namespaces/team/configmaps/c",
       "application/json",
       "\"name\":\"c\""},
      {{.op = KUBE_OP_APPLY, .body = obj, .field_manager = "koreo", .force = true},
       "PATCH",
       "/api/v1/namespaces/team/configmaps/c?fieldManager=koreo&force=true",
       "application/apply-patch+yaml",
       "\"kind\":\"ConfigMap\""},
      {{.op = KUBE_OP_PATCH_MERGE,
        .api_version = "v1",
        .kind = "ConfigMap",
        .name = "c",
        .body = obj},
       "PATCH",
       "/api/v1/namespaces/default/configmaps/c",
       "application/merge-patch+json",
       "data"},
      {{.op = KUBE_OP_PATCH_STRATEGIC,
        .api_version = "v1",
        .kind = "ConfigMap",
        .name = "c",
        .body = obj},
       "PATCH",
       "/api/v1/namespaces/default/configmaps/c",
       "application/strategic-merge-patch+json",
       "data"},
      {{.op = KUBE_OP_DELETE,
        .api_version = "v1",
        .kind = "ConfigMap",
        .namespace_ = "team",
        .name = "c",
        .propagation_policy = "Foreground",
        .precondition_uid = "u-1",
        .has_grace_period = true,
        .grace_period_s = 0},
       "DELETE",
       "/api/v1/namespaces/team/configmaps/c",
       "application/json",
       "\"propagationPolicy\":\"Foreground\",\"gracePeriodSeconds\":0,\"preconditions\":{\"uid\":"
       "\"u-1\"}"},
      {{.op = KUBE_OP_DELETE, .api_version = "v1", .kind = "Namespace", .name = "old"},
       "DELETE",
       "/api/v1/namespaces/old",
       "",
       ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (kube_send_sync(cli, &cases[i].q, &r) != 0) fail_msg("case %zu: %s", i, r.err.message);
    kube_result_clear(&r);
    treq t = log_last();
    assert_string_equal(t.method, cases[i].method);
    if (strcmp(t.path, cases[i].path) != 0) fail_msg("case %zu: path %s", i, t.path);
    assert_string_equal(t.ctype, cases[i].ctype);
    if (!strstr(t.body, cases[i].body_has)) fail_msg("case %zu: body %s", i, t.body);
  }
  /* JSON patch body is a list */
  kv *ops =
      kv_json_parse("[{\"op\":\"replace\",\"path\":\"/data/a\",\"value\":\"b\"}]",
                    strlen("[{\"op\":\"replace\",\"path\":\"/data/a\",\"value\":\"b\"}]"), &pe);
  assert_non_null(ops);
  assert_int_equal(kube_send_sync(cli,
                                  &(kube_req){.op = KUBE_OP_PATCH_JSON,
                                              .api_version = "v1",
                                              .kind = "ConfigMap",
                                              .name = "c",
                                              .body = ops},
                                  &r),
                   0);
  kube_result_clear(&r);
  treq t = log_last();
  assert_string_equal(t.ctype, "application/json-patch+json");
  assert_non_null(strstr(t.body, "[{\"op\":\"replace\""));
  kv_unref(ops);
  /* usage errors are reported through the callback, nothing is sent */
  int before = log_count(NULL, "/");
  assert_int_equal(kube_send_sync(cli, &(kube_req){.op = KUBE_OP_APPLY, .body = obj}, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_USAGE);
  assert_non_null(strstr(r.err.message, "field manager"));
  kube_result_clear(&r);
  assert_int_equal(
      kube_send_sync(cli, &(kube_req){.op = KUBE_OP_GET, .api_version = "v1", .kind = "ConfigMap"},
                     &r),
      -1);
  assert_int_equal(r.err.code, KUBE_ERR_USAGE);
  kube_result_clear(&r);
  assert_int_equal(log_count(NULL, "/"), before);
  kv_unref(obj);
  client_close();
  server_stop();
}

static atomic_int n429, ndrop;

static void h_retry(const treq *r, int fd) {
  if (strcmp(r->path, "/api/v1") == 0) return respond(fd, 200, NULL, CORE_V1);
  if (strstr(r->path, "/configmaps/busy")) {
    if (atomic_fetch_add(&n429, 1) == 0)
      return respond(fd, 429, "Retry-After: 1\r\n",
                     "{\"kind\":\"Status\",\"code\":429,\"reason\":\"TooManyRequests\","
                     "\"message\":\"slow down\"}");
    return respond(fd, 200, NULL, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"busy\"}}");
  }
  if (strstr(r->path, "/configmaps/always")) {
    return respond(fd, 429, "Retry-After: 2\r\n",
                   "{\"kind\":\"Status\",\"code\":429,\"reason\":\"TooManyRequests\"}");
  }
  if (strstr(r->path, "/configmaps/flaky")) {
    if (atomic_fetch_add(&ndrop, 1) < 2) return; /* close without answering */
    return respond(fd, 200, NULL, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"flaky\"}}");
  }
  if (strstr(r->path, "/configmaps")) { /* POST: a dropped connection is not retried */
    atomic_fetch_add(&ndrop, 1);
    return;
  }
  respond(fd, 404, NULL, NULL);
}

static void test_retries(void **state) {
  (void)state;
  server_start(h_retry);
  client_open(NULL, NULL, NULL);
  kube_result r;
  kube_req q = {.op = KUBE_OP_GET, .api_version = "v1", .kind = "ConfigMap", .name = "busy"};
  int64_t t0 = (int64_t)time(NULL);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  assert_int_equal(kube_send_sync(cli, &q, &r), 0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  (void)t0;
  double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  assert_true(el >= 0.95); /* Retry-After: 1 was honoured */
  assert_int_equal(kube_client_get_stats(cli).retries, 1);
  kube_result_clear(&r);
  /* a GET whose connection drops twice succeeds on the third attempt */
  q.name = "flaky";
  assert_int_equal(kube_send_sync(cli, &q, &r), 0);
  assert_string_equal(kube_obj_meta(r.object, "name"), "flaky");
  kube_result_clear(&r);
  assert_int_equal(atomic_load(&ndrop), 3);
  /* a POST whose connection drops is not retried: the caller decides */
  kv_parse_error pe;
  kv *obj = kv_json_parse("{\"metadata\":{\"name\":\"x\"}}", 25, &pe);
  assert_non_null(obj);
  assert_int_equal(
      kube_send_sync(
          cli,
          &(kube_req){.op = KUBE_OP_CREATE, .api_version = "v1", .kind = "ConfigMap", .body = obj},
          &r),
      -1);
  assert_int_equal(r.err.code, KUBE_ERR_TRANSPORT);
  kube_result_clear(&r);
  assert_int_equal(atomic_load(&ndrop), 4);
  kv_unref(obj);
  client_close();
  /* without retries the caller sees TooManyRequests and the delay */
  kube_client_options o = {.max_retries = -1};
  client_open(NULL, NULL, &o);
  q.name = "always";
  assert_int_equal(kube_send_sync(cli, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_TOO_MANY_REQUESTS);
  assert_true(r.err.retry_after == 2.0);
  assert_int_equal(r.http_status, 429);
  kube_result_clear(&r);
  client_close();
  server_stop();
}

static char tokfile[256];

static void h_token(const treq *r, int fd) {
  if (strcmp(r->auth, "Bearer new-token") != 0)
    return respond(fd, 401, NULL, "{\"kind\":\"Status\",\"code\":401,\"reason\":\"Unauthorized\"}");
  if (strcmp(r->path, "/api/v1") == 0) return respond(fd, 200, NULL, CORE_V1);
  respond(fd, 200, NULL, "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"x\"}}");
}

static void test_token_rotation(void **state) {
  (void)state;
  snprintf(tokfile, sizeof tokfile, "/tmp/koreo-kube-tok-%d", (int)getpid());
  FILE *f = fopen(tokfile, "w");
  fputs("old-token\n", f);
  fclose(f);
  server_start(h_token);
  client_open("old-token", tokfile, NULL);
  kube_result r;
  kube_req q = {.op = KUBE_OP_GET, .api_version = "v1", .kind = "Namespace", .name = "x"};
  assert_int_equal(kube_send_sync(cli, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_UNAUTHORIZED);
  kube_result_clear(&r);
  msleep(20); /* a new mtime */
  f = fopen(tokfile, "w");
  fputs("new-token\n", f);
  fclose(f);
  assert_int_equal(kube_send_sync(cli, &q, &r), 0);
  kube_result_clear(&r);
  unlink(tokfile);
  client_close();
  server_stop();
}

typedef struct many {
  int done, ok;
} many;

static void many_cb(void *ud, kube_result *r) {
  many *m = ud;
  m->done++;
  if (r->err.code == KUBE_OK) m->ok++;
}

static void h_slow(const treq *r, int fd) {
  if (strcmp(r->path, "/api/v1") == 0) return respond(fd, 200, NULL, CORE_V1);
  msleep(100);
  respond(fd, 200, NULL, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"}}");
}

static void test_many_in_flight(void **state) {
  (void)state;
  server_start(h_slow);
  client_open(NULL, NULL, NULL);
  many m = {0};
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < 40; i++) {
    char name[32];
    snprintf(name, sizeof name, "c%d", i);
    assert_int_equal(
        kube_send(
            cli,
            &(kube_req){.op = KUBE_OP_GET, .api_version = "v1", .kind = "ConfigMap", .name = name},
            many_cb, &m),
        0);
  }
  bool done = false;
  while (m.done < 40 && !done)
    if (kube_client_run_until(cli, &done, 50) != 0 && m.done >= 40) break;
  clock_gettime(CLOCK_MONOTONIC, &b);
  double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  assert_int_equal(m.ok, 40);
  /* 40 requests of 100 ms each, concurrently: far less than 4 s */
  if (el > 2.0) fail_msg("40 concurrent requests took %.2f s", el);
  assert_int_equal(kube_client_get_stats(cli).discoveries, 1); /* coalesced */
  client_close();
  server_stop();
}

/* --- watch ---------------------------------------------------------------- */

static atomic_int watch_calls, list_calls;
static char watch_paths[8][2048];

#define CM(name, rv)                                                                               \
  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" name                   \
  "\",\"namespace\":\"ns\",\"resourceVersion\":\"" rv "\"}}"

static void h_watch(const treq *r, int fd) {
  if (strcmp(r->path, "/api/v1") == 0) return respond(fd, 200, NULL, CORE_V1);
  if (strstr(r->path, "watch=1")) {
    int n = atomic_fetch_add(&watch_calls, 1);
    if (n < 8) snprintf(watch_paths[n], sizeof watch_paths[n], "%s", r->path);
    if (n == 0) {
      stream_begin(fd);
      /* an event split across chunks, two events in one chunk */
      const char *ev = "{\"type\":\"ADDED\",\"object\":" CM("c", "11") "}\n";
      char part[256];
      snprintf(part, sizeof part, "%.20s", ev);
      stream_chunk(fd, part);
      msleep(30);
      stream_chunk(fd, ev + 20);
      stream_chunk(fd, "{\"type\":\"MODIFIED\",\"object\":" CM(
                           "a", "12") "}\n"
                                      "{\"type\":\"ADDED\",\"object\":" CM(
                                          "e", "13") "}"
                                                     "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":"
                                                     "\"ConfigMap\",\"metadata\":"
                                                     "{\"resourceVersion\":\"15\"}}}\n");
      msleep(30);
      return; /* dropped without the final chunk */
    }
    if (n == 1) {
      stream_begin(fd);
      stream_chunk(fd, "{\"type\":\"DELETED\",\"object\":" CM("b", "16") "}\n");
      stream_chunk(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                       "\"reason\":\"Expired\",\"message\":\"too old resource version\"}}\n");
      msleep(100);
      stream_end(fd);
      return;
    }
    if (n == 2 || n == 3) /* failures: backoff */
      return respond(fd, 500, NULL,
                     "{\"kind\":\"Status\",\"code\":500,\"reason\":\"InternalError\"}");
    /* a quiet stream that ends normally after a while */
    stream_begin(fd);
    msleep(300);
    stream_end(fd);
    return;
  }
  if (strncmp(r->path, "/api/v1/namespaces/ns/configmaps", 32) == 0) {
    int n = atomic_fetch_add(&list_calls, 1);
    if (n == 0)
      return respond(fd, 200, NULL,
                     "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"10\"},"
                     "\"items\":[" CM("a", "3") "," CM("b", "4") "]}");
    /* the re-list after 410: a changed, b gone (already), c unchanged, d new,
     * e gone while the watch was not looking */
    return respond(fd, 200, NULL,
                   "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"30\"},"
                   "\"items\":[" CM("a", "20") "," CM("c", "11") "," CM("d", "25") "]}");
  }
  respond(fd, 404, NULL, NULL);
}

typedef struct wlog {
  char lines[64][128];
  int n;
  int synced, errors;
  kube_watch *w;
  int stop_after;
} wlog;

static void wcb(void *ud, const kube_watch_event *ev) {
  wlog *l = ud;
  static const char *names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "SYNCED", "ERROR"};
  const char *nm = ev->object ? kube_obj_meta(ev->object, "name") : NULL;
  if (l->n < 64)
    snprintf(l->lines[l->n++], sizeof l->lines[0], "%s %s %s%s", names[ev->type], nm ? nm : "-",
             ev->resource_version, ev->from_list ? " L" : "");
  if (ev->type == KUBE_WATCH_SYNCED) l->synced++;
  if (ev->type == KUBE_WATCH_ERROR) l->errors++;
  if (l->stop_after && l->n >= l->stop_after) kube_watch_stop(l->w); /* from the callback */
}

static void test_watch_machine(void **state) {
  (void)state;
  server_start(h_watch);
  client_open(NULL, NULL, NULL);
  wlog l = {0};
  kube_error e = {0};
  l.w = kube_watch_start(
      cli,
      &(kube_watch_opts){
          .api_version = "v1", .kind = "ConfigMap", .namespace_ = "ns", .timeout_s = 5},
      wcb, &l, &e);
  assert_non_null(l.w);
  bool never = false;
  for (int i = 0; i < 100 && atomic_load(&watch_calls) < 5; i++)
    kube_client_run_until(cli, &never, 50);
  assert_true(atomic_load(&watch_calls) >= 5);
  const char *want[] = {
      "ADDED a 10 L",    "ADDED b 10 L", "SYNCED - 10 L",  "ADDED c 11",
      "MODIFIED a 12",   "ADDED e 13",   "BOOKMARK - 15", /* dropped stream: resume from 15 */
      "ERROR - 15",                                       /* transport error reported */
      "DELETED b 16",    "ERROR - 16",                    /* 410 -> re-list */
      "MODIFIED a 30 L", "ADDED d 30 L", "DELETED e 30 L", "SYNCED - 30 L",
      "ERROR - 30",      "ERROR - 30",
  };
  size_t nw = sizeof want / sizeof want[0];
  for (size_t i = 0; i < nw; i++) {
    if (i >= (size_t)l.n) fail_msg("only %d events; missing \"%s\"", l.n, want[i]);
    if (strcmp(l.lines[i], want[i]) != 0) {
      for (int j = 0; j < l.n; j++)
        fprintf(stderr, "  event %d: %s\n", j, l.lines[j]);
      fail_msg("event %zu: got \"%s\", want \"%s\"", i, l.lines[i], want[i]);
    }
  }
  /* resume points and parameters */
  assert_non_null(strstr(watch_paths[0], "resourceVersion=10"));
  assert_non_null(strstr(watch_paths[0], "allowWatchBookmarks=true"));
  assert_non_null(strstr(watch_paths[0], "timeoutSeconds=5"));
  assert_non_null(strstr(watch_paths[1], "resourceVersion=15"));
  assert_non_null(strstr(watch_paths[2], "resourceVersion=30"));
  /* the cache */
  assert_int_equal(kube_watch_count(l.w), 3);
  assert_non_null(kube_watch_get(l.w, "ns", "d"));
  assert_null(kube_watch_get(l.w, "ns", "b"));
  assert_string_equal(kube_obj_meta(kube_watch_get(l.w, "ns", "a"), "resourceVersion"), "20");
  kube_watch_stats st = kube_watch_get_stats(l.w);
  assert_int_equal(st.relists, 2);
  assert_int_equal(st.gone, 1);
  assert_int_equal(st.bookmarks, 1);
  assert_true(st.connects >= 5);
  assert_int_equal(list_calls, 2);
  kube_watch_stop(l.w);
  client_close();
  server_stop();
}

static void test_watch_stop_inside_callback(void **state) {
  (void)state;
  atomic_store(&watch_calls, 0);
  atomic_store(&list_calls, 0);
  server_start(h_watch);
  client_open(NULL, NULL, NULL);
  wlog l = {.stop_after = 4};
  kube_error e = {0};
  l.w = kube_watch_start(
      cli,
      &(kube_watch_opts){
          .api_version = "v1", .kind = "ConfigMap", .namespace_ = "ns", .timeout_s = 5},
      wcb, &l, &e);
  assert_non_null(l.w);
  bool never = false;
  kube_client_run_until(cli, &never, 500);
  assert_int_equal(l.n, 4); /* nothing after the stop */
  assert_string_equal(l.lines[3], "ADDED c 11");
  /* a watch resumed from a given version does not list */
  atomic_store(&watch_calls, 0);
  int lists = atomic_load(&list_calls);
  wlog l2 = {.stop_after = 2};
  l2.w = kube_watch_start(cli,
                          &(kube_watch_opts){.api_version = "v1",
                                             .kind = "ConfigMap",
                                             .namespace_ = "ns",
                                             .resource_version = "7",
                                             .timeout_s = 5},
                          wcb, &l2, &e);
  kube_client_run_until(cli, &never, 500);
  assert_int_equal(atomic_load(&list_calls), lists);
  assert_string_equal(l2.lines[0], "ADDED c 11");
  assert_non_null(strstr(watch_paths[0], "resourceVersion=7"));
  /* freeing the client with a live watch is clean */
  wlog l3 = {0};
  l3.w = kube_watch_start(
      cli,
      &(kube_watch_opts){
          .api_version = "v1", .kind = "ConfigMap", .namespace_ = "ns", .timeout_s = 5},
      wcb, &l3, &e);
  kube_client_run_until(cli, &never, 20);
  client_close();
  server_stop();
}

/* A server that takes connections into its backlog but never answers (a
 * hung API server, a black-holing load balancer): the TLS handshake never
 * completes, and the connect time limit ends the request: a transport
 * error that says so, well before the request time limit, and the request
 * (never sent) is tried again even though it is a POST. */
static void test_connect_timeout(void **state) {
  (void)state;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s, 16), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
  base = event_base_new();
  char server[64];
  snprintf(server, sizeof server, "https://127.0.0.1:%d", ntohs(a.sin_port));
  kube_config cfg = {.server = server, .namespace_ = "default", .insecure = true};
  kube_client_options o = {.connect_timeout_ms = 300,
                           .request_timeout_ms = 20000,
                           .max_retries = 1,
                           .backoff_min_ms = 10,
                           .backoff_max_ms = 10};
  kube_error e = {0};
  cli = kube_client_new(base, &cfg, &o, &e);
  assert_non_null(cli);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  kube_result r;
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/api/v1/namespaces", NULL, &r), -1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_int_equal(r.err.code, KUBE_ERR_TRANSPORT);
  if (!strstr(r.err.message, "timed out")) fail_msg("message: %s", r.err.message);
  assert_true(el >= 0.55 && el < 5.0); /* two attempts of 300 ms, not 20 s */
  kube_client_stats st = kube_client_get_stats(cli);
  assert_int_equal(st.retries, 1);
  assert_int_equal(st.connections, 2);
  kube_result_clear(&r);
  client_close();
  close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_timeout), cmocka_unit_test(test_get_discovery_cached),
      cmocka_unit_test(test_request_shapes),  cmocka_unit_test(test_retries),
      cmocka_unit_test(test_token_rotation),  cmocka_unit_test(test_many_in_flight),
      cmocka_unit_test(test_watch_machine),   cmocka_unit_test(test_watch_stop_inside_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
