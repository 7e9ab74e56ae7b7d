/*
 * tests/agent/agent_test_util.h: helpers shared by the agent tests and the
 * benchmarks that drive real processes (bench/agent-footprint.c,
 * bench/controlplane-bench.c).
 */
#ifndef KOREO_AGENT_TEST_UTIL_H
#define KOREO_AGENT_TEST_UTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "koreo/value.h"

/* Remove the directory tree `d` (a test's mkdtemp folder); best effort. */
static inline void rm_rf(const char *d) {
  DIR *dp = opendir(d);
  if (!dp) return;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = NULL;
    if (asprintf(&p, "%s/%s", d, e->d_name) < 0) continue;
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      rm_rf(p);
    else
      unlink(p);
    free(p);
  }
  closedir(dp);
  rmdir(d);
}

/* Run a shell command (printf format) and wait for it.  With `out`, its
 * standard output is returned in *out (malloc'd, never NULL).  Returns the
 * exit status, -1 when it could not run or died of a signal. */
static inline int run_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int run_sh(char **out, const char *fmt, ...) {
  char *cmd = NULL;
  va_list ap;
  va_start(ap, fmt);
  int rc = vasprintf(&cmd, fmt, ap);
  va_end(ap);
  FILE *p = rc < 0 ? NULL : popen(cmd, "r");
  free(cmd);
  if (!p) return -1;
  char *text = NULL;
  size_t len = 0, cap = 0, n;
  char buf[4096];
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *t = realloc(text, cap);
      if (!t) abort();
      text = t;
    }
    memcpy(text + len, buf, n);
    len += n;
  }
  int st = pclose(p);
  if (out) {
    *out = text ? text : strdup("");
    if (text) text[len] = 0;
  } else {
    free(text);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A free TCP port on 127.0.0.1 (-1 when none can be had). */
static inline int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(s, (struct sockaddr *)&a, &l) != 0) {
    close(s);
    return -1;
  }
  close(s);
  return ntohs(a.sin_port);
}

/* GET http://127.0.0.1:port/path (health endpoints): the HTTP status or -1,
 * the body in *body (malloc'ed). */
static inline int http_get(int port, const char *path, char **body) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    close(s);
    return -1;
  }
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
  if (write(s, req, (size_t)n) != n) {
    close(s);
    return -1;
  }
  kv_strbuf b = {0};
  char buf[4096];
  ssize_t r;
  while ((r = read(s, buf, sizeof buf)) > 0)
    kv_strbuf_put(&b, buf, (size_t)r);
  close(s);
  char *text = kv_strbuf_take(&b, NULL);
  int code = -1;
  if (text && sscanf(text, "HTTP/1.%*d %d", &code) != 1) code = -1;
  const char *sep = text ? strstr(text, "\r\n\r\n") : NULL;
  *body = strdup(sep ? sep + 4 : "");
  free(text);
  return code;
}

/* Start argv[0] (argv NULL-terminated) as a child with stdout and stderr
 * appended to `log`; the child gets SIGTERM when the test process dies
 * (PR_SET_PDEATHSIG), so no agent outlives its test.  Returns the pid, or
 * -1 when fork failed. */
static inline pid_t spawn_logged(const char *log, const char *const *argv) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(1);
  FILE *lf = fopen(log, "a");
  if (lf) {
    dup2(fileno(lf), 1);
    dup2(fileno(lf), 2);
  }
  execv(argv[0], (char *const *)argv);
  _exit(127);
}

#ifdef KOREO_FRAME_H
#include <event2/bufferevent.h>
/* Write a Heartbeat {sent_unix_ms: ms} carrying `ack` to bev (harness side
 * of the protocol).  Returns false when it cannot be encoded. */
static inline bool send_test_heartbeat(struct bufferevent *bev, uint64_t ack, int64_t ms) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__Heartbeat h = KOREO__AGENT__V1__HEARTBEAT__INIT;
  h.sent_unix_ms = ms;
  e.ack = ack;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT;
  e.heartbeat = &h;
  uint8_t *buf;
  size_t len;
  if (kframe_encode(&e, 0, &buf, &len, NULL) != KFRAME_OK) return false;
  bufferevent_write(bev, buf, len);
  free(buf);
  return true;
}
#endif

#ifdef KOREO_AGENT_TLS_H
/* A protocol harness listener (agent/tls.h server) on 127.0.0.1:port (0:
 * any free port) with the given callbacks (on_closed may be NULL); fails
 * the test when it cannot listen. */
static inline ktls_server *
serve_harness(struct event_base *base, ktls_ca *ca, ktls_token_store *tokens, int port,
              void (*on_session)(void *, const char *, const Koreo__Agent__V1__Hello *,
                                 Koreo__Agent__V1__HelloAck *, struct bufferevent *),
              bool (*on_envelope)(void *, const char *, kframe_envelope *, struct bufferevent *),
              void (*on_closed)(void *, const char *), void *arg) {
  ktls_err err = {{0}};
  ktls_server_opts o = {.bind_host = "127.0.0.1",
                        .port = port,
                        .ca = ca,
                        .tokens = tokens,
                        .on_session = on_session,
                        .on_envelope = on_envelope,
                        .on_closed = on_closed,
                        .arg = arg};
  ktls_server *srv = ktls_server_new(base, &o, &err);
  if (!srv) fail_msg("harness listener: %s", err.msg);
  return srv;
}
#endif

#endif
