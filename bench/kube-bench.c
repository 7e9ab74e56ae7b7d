/*
 * bench/kube-bench.c: throughput and latency of the Kubernetes client
 * (koreo/kube.h) against an API server, normally koreo-kubesim.
 *
 *   kube-bench [--kubeconfig PATH | --kubesim BIN] [-n N] [-k K]
 *
 * Creates a namespace, then runs three phases of N operations each with K
 * requests in flight on one event loop: create N ConfigMaps, merge-patch
 * each, get each; then deletes them and the namespace.  For each phase it
 * prints operations per second and the p50/p99/max latency (ms, from send
 * to answer).  With --kubesim it starts its own kubesim on a free loopback
 * port and stops it at the end.  Exit status 1 if any operation failed.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/kube/kubesim_harness.h"
#include "koreo/json.h"
#include "koreo/kube.h"

typedef struct bench {
  kube_client *c;
  kube_op op;
  int n, k;
  int next, done, failed;
  char ns[64];
  double *lat; /* ms per operation */
  bool finished;
  char first_error[600];
} bench;

typedef struct slot {
  bench *b;
  int i;
  struct timespec t0;
} slot;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void issue(bench *b, slot *s);

static void on_done(void *ud, kube_result *r) {
  slot *s = ud;
  bench *b = s->b;
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  b->lat[s->i] =
      (double)(t1.tv_sec - s->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - s->t0.tv_nsec) / 1e6;
  if (r->err.code != KUBE_OK) {
    if (!b->failed)
      snprintf(b->first_error, sizeof b->first_error, "%s: %s", kube_err_name(r->err.code),
               r->err.message);
    b->failed++;
  }
  b->done++;
  if (b->next < b->n)
    issue(b, s);
  else
    free(s);
  if (b->done == b->n) b->finished = true;
}

static void issue(bench *b, slot *s) {
  s->i = b->next++;
  char name[64];
  snprintf(name, sizeof name, "cm-%06d", s->i);
  kv *body = NULL;
  kube_req q = {
      .op = b->op, .api_version = "v1", .kind = "ConfigMap", .namespace_ = b->ns, .name = name};
  if (b->op == KUBE_OP_CREATE) {
    body = kv_map_new(4);
    kv_map_set_str(body, "apiVersion", kv_cstring("v1"));
    kv_map_set_str(body, "kind", kv_cstring("ConfigMap"));
    kv *md = kv_map_new(2);
    kv_map_set_str(md, "name", kv_cstring(name));
    kv_map_set_str(md, "namespace", kv_cstring(b->ns));
    kv_map_set_str(body, "metadata", md);
    kv *data = kv_map_new(1);
    kv_map_set_str(data, "value", kv_cstring("created"));
    kv_map_set_str(body, "data", data);
  } else if (b->op == KUBE_OP_PATCH_MERGE) {
    body = kv_map_new(1);
    kv *data = kv_map_new(1);
    kv_map_set_str(data, "value", kv_cstring("patched"));
    kv_map_set_str(body, "data", data);
  }
  q.body = body;
  clock_gettime(CLOCK_MONOTONIC, &s->t0);
  if (kube_send(b->c, &q, on_done, s) != 0) {
    fprintf(stderr, "kube-bench: the client refused a request\n");
    exit(1);
  }
  kv_unref(body);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int phase(kube_client *c, const char *label, kube_op op, const char *ns, int n, int k) {
  bench b = {.c = c, .op = op, .n = n, .k = k};
  snprintf(b.ns, sizeof b.ns, "%s", ns);
  b.lat = calloc((size_t)n, sizeof *b.lat);
  double t0 = now_s();
  for (int i = 0; i < k && b.next < n; i++) {
    slot *s = calloc(1, sizeof *s);
    s->b = &b;
    issue(&b, s);
  }
  kube_client_run_until(c, &b.finished, 600000);
  double el = now_s() - t0;
  qsort(b.lat, (size_t)n, sizeof *b.lat, cmp_d);
  printf("%-8s n=%d k=%d  %8.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms%s\n", label, n, k,
         n / el, b.lat[n / 2], b.lat[(int)(n * 0.99)], b.lat[n - 1], b.failed ? "  FAILURES" : "");
  if (b.failed) fprintf(stderr, "%s: %d failed; first: %s\n", label, b.failed, b.first_error);
  free(b.lat);
  return b.failed ? -1 : 0;
}

int main(int argc, char **argv) {
  const char *kubeconfig = NULL, *kubesim = NULL;
  int n = 2000, k = 32;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--kubeconfig") == 0 && i + 1 < argc)
      kubeconfig = argv[++i];
    else if (strcmp(argv[i], "--kubesim") == 0 && i + 1 < argc)
      kubesim = argv[++i];
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
      n = atoi(argv[++i]);
    else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
      k = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--kubeconfig PATH | --kubesim BIN] [-n N] [-k K]\n", argv[0]);
      return 2;
    }
  }
  if (n < 1 || k < 1) {
    fprintf(stderr, "kube-bench: -n and -k must be positive\n");
    return 2;
  }
  ksim sim = {0};
  if (kubesim) {
    if (ksim_start(&sim, kubesim, false, NULL) != 0) return 1;
    kubeconfig = sim.kubeconfig;
  }
  kube_config *cfg = NULL;
  kube_error e = {0};
  if (kube_config_load(kubeconfig, NULL, &cfg, &e) != 0) {
    fprintf(stderr, "kube-bench: %s\n", e.message);
    if (kubesim) ksim_stop(&sim, true);
    return 1;
  }
  struct event_base *base = event_base_new();
  kube_client *c = kube_client_new(base, cfg, NULL, &e);
  kube_config_free(cfg);
  if (!c) {
    fprintf(stderr, "kube-bench: %s\n", e.message);
    return 1;
  }
  char ns[64];
  snprintf(ns, sizeof ns, "kube-bench-%d", (int)getpid());
  kv *nso = kv_map_new(3);
  kv_map_set_str(nso, "apiVersion", kv_cstring("v1"));
  kv_map_set_str(nso, "kind", kv_cstring("Namespace"));
  kv *md = kv_map_new(1);
  kv_map_set_str(md, "name", kv_cstring(ns));
  kv_map_set_str(nso, "metadata", md);
  kube_result r;
  int rc = 0;
  if (kube_send_sync(c, &(kube_req){.op = KUBE_OP_CREATE, .body = nso}, &r) != 0) {
    fprintf(stderr, "kube-bench: create namespace %s: %s\n", ns, r.err.message);
    rc = 1;
  }
  kube_result_clear(&r);
  kv_unref(nso);
  kube_client_stats s0 = kube_client_get_stats(c);
  if (rc == 0) {
    printf("kube-bench against %s\n", kube_client_config(c)->server);
    if (phase(c, "create", KUBE_OP_CREATE, ns, n, k) != 0) rc = 1;
    if (phase(c, "patch", KUBE_OP_PATCH_MERGE, ns, n, k) != 0) rc = 1;
    if (phase(c, "get", KUBE_OP_GET, ns, n, k) != 0) rc = 1;
    if (phase(c, "delete", KUBE_OP_DELETE, ns, n, k) != 0) rc = 1;
    kube_client_stats s1 = kube_client_get_stats(c);
    printf("requests %llu, connections opened %llu, retries %llu\n",
           (unsigned long long)(s1.requests - s0.requests),
           (unsigned long long)(s1.connections - s0.connections),
           (unsigned long long)(s1.retries - s0.retries));
    kube_send_sync(
        c, &(kube_req){.op = KUBE_OP_DELETE, .api_version = "v1", .kind = "Namespace", .name = ns},
        &r);
    kube_result_clear(&r);
  }
  kube_client_free(c);
  event_base_free(base);
  if (kubesim) ksim_stop(&sim, rc != 0);
  return rc;
}
