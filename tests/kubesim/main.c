/*
 * tests/kubesim/main.c: koreo-kubesim's entry point: command-line flags,
 * the listening socket (port 0 picks a free port), TLS set-up, the
 * kubeconfig it writes for kubectl and for the tests, the seeded
 * namespaces, the state file, timers (bookmarks, --exit-after) and clean
 * shutdown on SIGINT/SIGTERM.  See tests/kubesim/README.md.
 */
#include "kubesim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs(
      "usage: koreo-kubesim [options]\n"
      "  --listen HOST:PORT          address to listen on (default 127.0.0.1:0: a free port)\n"
      "  --write-kubeconfig PATH     write a kubeconfig for this server (atomically)\n"
      "  --state-file PATH           load objects at start, save them after changes and at exit\n"
      "  --cert-dir DIR              load ca.crt/tls.crt/tls.key from DIR, or generate them there\n"
      "  --tls-cert F --tls-key F    serve this certificate (and --ca-cert F for the kubeconfig)\n"
      "  --token T                   the bearer token clients must send (default: random)\n"
      "  --event-window N            changes kept for watches to resume from (default 10000)\n"
      "  --bookmark-interval S       seconds between BOOKMARK events (default 30)\n"
      "  --watch-timeout S           default watch duration in seconds (default 1800)\n"
      "  --latency-ms N              fault: delay every API response by N ms\n"
      "  --error-rate R              fault: answer a fraction R (0..1) of API requests with an "
      "error\n"
      "  --error-codes C1,C2         fault: the error codes to choose from (default 500,503,429)\n"
      "  --retry-after S             fault: Retry-After seconds of 429/503 answers (default 1)\n"
      "  --drop-watch-after-ms N     fault: cut every watch stream after N ms\n"
      "  --exit-after S              exit by itself after S seconds (tests)\n"
      "  --verbose                   log requests to stderr\n",
      f);
}

static ks_server *g_srv;

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  ks_server *s = arg;
  event_base_loopexit(s->base, NULL);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg) {
  (void)l;
  (void)sa;
  (void)len;
  ks_http_accept(arg, fd);
}

static void bookmark_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ks_bookmarks_tick(arg);
}

static void exit_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ks_server *s = arg;
  fprintf(stderr, "kubesim: --exit-after reached, exiting\n");
  event_base_loopexit(s->base, NULL);
}

static bool write_kubeconfig(ks_server *s, const char *path, const char *ca_pem) {
  char *ca = ku_b64(ca_pem, strlen(ca_pem));
  char *tmp = ku_fmt("%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "kubesim: cannot write %s: %s\n", tmp, strerror(errno));
    free(ca);
    free(tmp);
    return false;
  }
  fprintf(f,
          "apiVersion: v1\n"
          "kind: Config\n"
          "clusters:\n"
          "- name: kubesim\n"
          "  cluster:\n"
          "    server: https://%s:%u\n"
          "    certificate-authority-data: %s\n"
          "contexts:\n"
          "- name: kubesim\n"
          "  context:\n"
          "    cluster: kubesim\n"
          "    user: kubesim\n"
          "    namespace: default\n"
          "current-context: kubesim\n"
          "users:\n"
          "- name: kubesim\n"
          "  user:\n"
          "    token: %s\n"
          "preferences: {}\n",
          s->host, s->port, ca, s->token);
  bool ok = fclose(f) == 0 && rename(tmp, path) == 0;
  if (!ok) fprintf(stderr, "kubesim: cannot write %s: %s\n", path, strerror(errno));
  free(ca);
  free(tmp);
  return ok;
}

static bool parse_codes(const char *s, ks_faults *f) {
  memset(f->error_codes, 0, sizeof f->error_codes);
  int n = 0;
  const char *p = s;
  while (*p && n < 4) {
    char *end;
    long c = strtol(p, &end, 10);
    if (end == p || c < 400 || c > 599) return false;
    f->error_codes[n++] = (int)c;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') return false;
  }
  return n > 0;
}

int main(int argc, char **argv) {
  const char *listen_addr = "127.0.0.1:0", *kubeconfig = NULL, *token = NULL;
  ks_tls_opts tls = {0};
  ks_server srv = {0};
  ks_server *s = &srv;
  g_srv = s;
  size_t window = 10000;
  int exit_after = 0;
  s->bookmark_interval_s = 30;
  s->watch_timeout_s = 1800;
  s->faults.retry_after = 1;
  s->faults.error_codes[0] = 500;
  s->faults.error_codes[1] = 503;
  s->faults.error_codes[2] = 429;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--verbose")) {
      s->verbose = true;
    } else if (ARG("--listen")) {
      listen_addr = v;
    } else if (ARG("--write-kubeconfig")) {
      kubeconfig = v;
    } else if (ARG("--state-file")) {
      s->state_file = strdup(v);
    } else if (ARG("--cert-dir")) {
      tls.cert_dir = v;
    } else if (ARG("--tls-cert")) {
      tls.tls_cert = v;
    } else if (ARG("--tls-key")) {
      tls.tls_key = v;
    } else if (ARG("--ca-cert")) {
      tls.ca_cert = v;
    } else if (ARG("--token")) {
      token = v;
    } else if (ARG("--event-window")) {
      window = (size_t)strtoul(v, NULL, 10);
    } else if (ARG("--bookmark-interval")) {
      s->bookmark_interval_s = atoi(v);
    } else if (ARG("--watch-timeout")) {
      s->watch_timeout_s = atoi(v);
    } else if (ARG("--latency-ms")) {
      s->faults.latency_ms = atoi(v);
    } else if (ARG("--error-rate")) {
      s->faults.error_rate = atof(v);
    } else if (ARG("--error-codes")) {
      if (!parse_codes(v, &s->faults)) {
        fprintf(stderr, "kubesim: --error-codes: expected HTTP error codes like 500,503,429\n");
        return 2;
      }
    } else if (ARG("--retry-after")) {
      s->faults.retry_after = atoi(v);
    } else if (ARG("--drop-watch-after-ms")) {
      s->faults.drop_watch_after_ms = atoi(v);
    } else if (ARG("--exit-after")) {
      exit_after = atoi(v);
    } else {
      fprintf(stderr, "kubesim: unknown or incomplete option %s\n", a);
      usage(stderr);
      return 2;
    }
#undef ARG
  }
  if (s->faults.error_rate < 0 || s->faults.error_rate > 1) {
    fprintf(stderr, "kubesim: --error-rate must be between 0 and 1\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  srandom((unsigned)time(NULL) ^ (unsigned)getpid());
  /* address */
  const char *colon = strrchr(listen_addr, ':');
  if (!colon || (size_t)(colon - listen_addr) >= sizeof s->host) {
    fprintf(stderr, "kubesim: --listen wants HOST:PORT, got %s\n", listen_addr);
    return 2;
  }
  memcpy(s->host, listen_addr, (size_t)(colon - listen_addr));
  s->host[colon - listen_addr] = 0;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, s->host, &sin.sin_addr) != 1) {
    fprintf(stderr, "kubesim: --listen: %s is not an IPv4 address\n", s->host);
    return 2;
  }
  char *ca_pem = NULL;
  s->ssl = ks_tls_setup(&tls, &ca_pem);
  if (!s->ssl) return 1;
  if (token) {
    s->token = strdup(token);
  } else {
    s->token = malloc(33);
    if (!s->token) kv_oom();
    ku_rand_alnum(s->token, 32);
  }
  s->base = event_base_new();
  s->listener =
      evconnlistener_new_bind(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
                              (struct sockaddr *)&sin, sizeof sin);
  if (!s->listener) {
    fprintf(stderr, "kubesim: cannot listen on %s: %s\n", listen_addr, strerror(errno));
    return 1;
  }
  struct sockaddr_in bound;
  socklen_t bl = sizeof bound;
  getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &bl);
  s->port = ntohs(bound.sin_port);
  s->ring_cap = window;
  s->ring = calloc(window ? window : 1, sizeof *s->ring);
  if (!s->ring) kv_oom();
  ks_types_init(s);
  if (s->state_file && !ks_state_load(s, s->state_file)) return 1;
  ks_seed(s);
  /* the seeded namespaces are history from before the first client */
  ks_events_reset(s);
  if (kubeconfig && !write_kubeconfig(s, kubeconfig, ca_pem)) return 1;
  free(ca_pem);
  printf("kubesim: serving https://%s:%u\n", s->host, s->port);
  fflush(stdout);
  struct event *sigint = evsignal_new(s->base, SIGINT, on_signal, s);
  struct event *sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
  evsignal_add(sigint, NULL);
  evsignal_add(sigterm, NULL);
  if (s->bookmark_interval_s > 0) {
    s->bookmark_ev = event_new(s->base, -1, EV_PERSIST, bookmark_cb, s);
    struct timeval tv = {s->bookmark_interval_s, 0};
    event_add(s->bookmark_ev, &tv);
  }
  struct event *exit_ev = NULL;
  if (exit_after > 0) {
    exit_ev = evtimer_new(s->base, exit_cb, s);
    struct timeval tv = {exit_after, 0};
    evtimer_add(exit_ev, &tv);
  }
  event_base_dispatch(s->base);
  /* shutdown */
  if (s->state_file) ks_state_save(s, s->state_file);
  ks_http_close_all(s);
  ks_events_reset(s);
  ks_types_free(s);
  free(s->ring);
  if (exit_ev) event_free(exit_ev);
  if (s->bookmark_ev) event_free(s->bookmark_ev);
  if (s->save_ev) event_free(s->save_ev);
  if (s->gc_ev) event_free(s->gc_ev);
  event_free(sigint);
  event_free(sigterm);
  evconnlistener_free(s->listener);
  event_base_free(s->base);
  SSL_CTX_free(s->ssl);
  free(s->token);
  free(s->state_file);
  return 0;
}
