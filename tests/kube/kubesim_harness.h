/*
 * tests/kube/kubesim_harness.h: start and stop a koreo-kubesim process for
 * client tests and bench/kube-bench (header-only, static functions).
 *
 * ksim_start runs `koreo-kubesim --listen 127.0.0.1:PORT --write-kubeconfig
 * DIR/kubeconfig [--state-file DIR/state.json] [extra args]` in a fresh
 * temporary directory, waits (at most 15 s) until the kubeconfig loads,
 * and reads the port from it.  Certificates live in DIR/certs, so a
 * restart (ksim_restart, same port) serves the same CA, and the token is
 * chosen here and passed with --token each time.  The child gets SIGTERM if the test process
 * dies (PR_SET_PDEATHSIG), so no server outlives its test.
 */
#ifndef KOREO_KUBESIM_HARNESS_H
#define KOREO_KUBESIM_HARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "koreo/kube.h"

typedef struct ksim {
  pid_t pid;
  char bin[512];
  char dir[256];
  char kubeconfig[512];
  char state[512];
  char log[512];
  char token[40];
  int port;
  bool with_state;
} ksim;

static inline void ksim_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The kubesim binary: $KOREO_KUBESIM, or NULL. */
static inline const char *ksim_binary(void) {
  const char *b = getenv("KOREO_KUBESIM");
  return b && *b ? b : NULL;
}

/* Spawn on k->port (0: any free port); `extra` is NULL or a NULL-terminated
 * argument list.  Returns 0 when the kubeconfig is there, -1 otherwise
 * (message on stderr). */
static inline int ksim_spawn(ksim *k, const char *const *extra) {
  unlink(k->kubeconfig);
  char listen[64], certs[300];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", k->port);
  snprintf(certs, sizeof certs, "%s/certs", k->dir);
  mkdir(certs, 0700);
  const char *argv[48];
  int n = 0;
  argv[n++] = k->bin;
  argv[n++] = "--listen";
  argv[n++] = listen;
  argv[n++] = "--cert-dir"; /* the same CA and certificate across restarts */
  argv[n++] = certs;
  argv[n++] = "--token"; /* and the same token */
  argv[n++] = k->token;
  argv[n++] = "--write-kubeconfig";
  argv[n++] = k->kubeconfig;
  if (k->with_state) {
    argv[n++] = "--state-file";
    argv[n++] = k->state;
  }
  for (int i = 0; extra && extra[i] && n < 46; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    FILE *lf = fopen(k->log, "a");
    if (lf) {
      dup2(fileno(lf), 1);
      dup2(fileno(lf), 2);
    }
    execv(k->bin, (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", k->bin, strerror(errno));
    _exit(127);
  }
  k->pid = pid;
  for (int i = 0; i < 300; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      fprintf(stderr, "koreo-kubesim exited early (see %s)\n", k->log);
      k->pid = 0;
      return -1;
    }
    kube_config *cfg = NULL;
    kube_error e = {0};
    if (access(k->kubeconfig, R_OK) == 0 &&
        kube_config_load_kubeconfig(k->kubeconfig, NULL, &cfg, &e) == 0) {
      const char *colon = strrchr(cfg->server, ':');
      k->port = colon ? atoi(colon + 1) : 0;
      kube_config_free(cfg);
      return 0;
    }
    kube_error_clear(&e);
    ksim_sleep_ms(50);
  }
  fprintf(stderr, "koreo-kubesim wrote no kubeconfig in 15 s (see %s)\n", k->log);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  k->pid = 0;
  return -1;
}

static inline int ksim_start(ksim *k, const char *bin, bool with_state, const char *const *extra) {
  memset(k, 0, sizeof *k);
  snprintf(k->bin, sizeof k->bin, "%s", bin);
  snprintf(k->dir, sizeof k->dir, "/tmp/koreo-ksim-XXXXXX");
  if (!mkdtemp(k->dir)) return -1;
  snprintf(k->kubeconfig, sizeof k->kubeconfig, "%s/kubeconfig", k->dir);
  snprintf(k->state, sizeof k->state, "%s/state.json", k->dir);
  snprintf(k->log, sizeof k->log, "%s/kubesim.log", k->dir);
  k->with_state = with_state;
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  for (size_t i = 0; i < 32; i++)
    k->token[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rand_r(&seed) % 36];
  k->token[32] = 0;
  if (ksim_spawn(k, extra) == 0) return 0;
  char cmd[1400]; /* keep nothing behind when it did not start */
  snprintf(cmd, sizeof cmd, "cat '%s' >&2; rm -rf '%s'", k->log, k->dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", k->dir);
  return -1;
}

/* Stop the process: SIGTERM (lets it save its state), SIGKILL after 5 s. */
static inline void ksim_stop_process(ksim *k, int sig) {
  if (!k->pid) return;
  kill(k->pid, sig);
  for (int i = 0; i < 100; i++) {
    if (waitpid(k->pid, NULL, WNOHANG) == k->pid) {
      k->pid = 0;
      return;
    }
    ksim_sleep_ms(50);
  }
  kill(k->pid, SIGKILL);
  waitpid(k->pid, NULL, 0);
  k->pid = 0;
}

/* Restart on the same port (state kept when started with a state file). */
static inline int ksim_restart(ksim *k, const char *const *extra) {
  ksim_stop_process(k, SIGTERM);
  for (int i = 0; i < 40; i++) { /* the port may linger briefly */
    if (ksim_spawn(k, extra) == 0) return 0;
    ksim_sleep_ms(100);
  }
  return -1;
}

/* Stop and remove the directory (the log is printed when `show_log`). */
static inline void ksim_stop(ksim *k, bool show_log) {
  ksim_stop_process(k, SIGTERM);
  if (show_log) {
    FILE *f = fopen(k->log, "r");
    if (f) {
      char line[512];
      while (fgets(line, sizeof line, f))
        fprintf(stderr, "kubesim: %s", line);
      fclose(f);
    }
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", k->dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", k->dir);
}

#endif
