/*
 * bench/agent-footprint.c: idle memory and CPU of `koreo-agent
 * --standalone` (issue 5 item 6) with one trigger and with 1,000 triggers.
 *
 *   agent-footprint --kubesim BIN --agent BIN [-n N] [--idle SECONDS]
 *                   [--smaps DIR]
 *
 * Starts its own kubesim, installs a CRD (bench.koreo.dev/v1 Widget, with
 * a status subresource) and a Workflow over it (one ValueFunction step and
 * a state field), starts the agent with --health-listen, creates one
 * Widget, waits until every trigger has run and no run is in flight
 * (/metrics), lets it settle 2 s and then measures for --idle seconds
 * (default 10): resident memory (VmRSS, VmHWM from /proc/PID/status) and
 * CPU (/proc/PID/schedstat run time) per second of wall time.  Then
 * the same with N triggers (default 1000).  Goals (issue 5): under 8 MiB
 * RSS and under 1 ms CPU per second.  Build without sanitizers to measure.
 * --smaps DIR also saves the agent's /proc/PID/smaps at each measurement
 * (DIR/smaps-1.txt, DIR/smaps-N.txt) to see where each MiB goes.
 * Exit status 1 when something failed along the way (not on a missed goal).
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../tests/agent/agent_test_util.h"
#include "../tests/kube/kubesim_harness.h"
#include "koreo/json.h"
#include "koreo/kube.h"

static const char *DEFS = "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ValueFunction\n"
                          "metadata: {name: widget-config}\n"
                          "spec:\n"
                          "  return:\n"
                          "    size: =inputs.size * 2\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: Workflow\n"
                          "metadata: {name: widgets}\n"
                          "spec:\n"
                          "  crdRef: {apiGroup: bench.koreo.dev, version: v1, kind: Widget}\n"
                          "  steps:\n"
                          "  - label: config\n"
                          "    ref: {kind: ValueFunction, name: widget-config}\n"
                          "    inputs: {size: =parent.spec.size}\n"
                          "    state: {size: =value.size}\n";

static const char *CRD =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"widgets.bench.koreo.dev\"},\"spec\":{\"group\":\"bench.koreo.dev\","
    "\"scope\":\"Namespaced\",\"names\":{\"kind\":\"Widget\",\"plural\":\"widgets\","
    "\"singular\":\"widget\"},\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{}},\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\","
    "\"x-kubernetes-preserve-unknown-fields\":true}}}]}}";

static long long metric(int port, const char *name) {
  char *body = NULL;
  long long v = -1;
  if (http_get(port, "/metrics", &body) == 200) {
    size_t n = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
      if (strncmp(p, name, n) == 0 && p[n] == ' ') v = strtoll(p + n + 1, NULL, 10);
  }
  free(body);
  return v;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of pid: /proc/PID/schedstat (nanoseconds on a CPU), else
 * utime + stime of /proc/PID/stat (clock ticks, 10 ms resolution). */
static double cpu_s(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
  FILE *sf = fopen(path, "r");
  unsigned long long ns = 0;
  int got = sf ? fscanf(sf, "%llu", &ns) : 0;
  if (sf) fclose(sf);
  if (got == 1) return (double)ns / 1e9;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* fields after the command name */
  unsigned long long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Field: N kB" line of /proc/PID/<file> (status: VmRSS, VmHWM;
 * smaps_rollup: Pss, Private_Dirty) in KiB. */
static long status_kib(pid_t pid, const char *file, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  FILE *f = fopen(path, "r");
  long v = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
  if (f) fclose(f);
  return v;
}

static int create_widgets(kube_client *c, int from, int to) {
  for (int i = from; i < to; i++) {
    char text[256];
    snprintf(text, sizeof text,
             "{\"apiVersion\":\"bench.koreo.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":"
             "\"w-%05d\",\"namespace\":\"default\"},\"spec\":{\"size\":%d}}",
             i, i);
    kv_parse_error pe = {0};
    kv *o = kv_json_parse(text, strlen(text), &pe);
    kube_req q = {.op = KUBE_OP_CREATE, .body = o};
    kube_result r = {0};
    int rc = kube_send_sync(c, &q, &r);
    if (rc != 0) fprintf(stderr, "creating w-%05d: %s\n", i, r.err.message);
    kube_result_clear(&r);
    kv_unref(o);
    if (rc != 0) return -1;
  }
  return 0;
}

/* Wait until `want` runs finished with nothing in flight. */
static int wait_settled(int port, long long want, int secs) {
  for (int i = 0; i < secs * 10; i++) {
    long long ok = metric(port, "koreo_agent_workflow_runs_total{outcome=\"ok\"}");
    long long fl = metric(port, "koreo_agent_runs_in_flight");
    if (ok >= want && fl == 0) return 0;
    ksim_sleep_ms(100);
  }
  return -1;
}

/* Copy /proc/PID/smaps to DIR/smaps-TAG.txt (for the --smaps option). */
static void save_smaps(pid_t pid, const char *dir, int tag) {
  char src[64], dst[512], buf[8192];
  snprintf(src, sizeof src, "/proc/%d/smaps", (int)pid);
  snprintf(dst, sizeof dst, "%s/smaps-%d.txt", dir, tag);
  FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
  size_t n;
  while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) break;
  if (in) fclose(in);
  if (out) fclose(out);
  if (!in || !out) fprintf(stderr, "cannot copy %s to %s\n", src, dst);
}

static void measure(pid_t pid, const char *label, int idle_s) {
  ksim_sleep_ms(2000);
  double c0 = cpu_s(pid), t0 = now_s();
  ksim_sleep_ms(idle_s * 1000);
  double c1 = cpu_s(pid), t1 = now_s();
  long rss = status_kib(pid, "status", "VmRSS"), hwm = status_kib(pid, "status", "VmHWM");
  long pss = status_kib(pid, "smaps_rollup", "Pss");
  long priv = status_kib(pid, "smaps_rollup", "Private_Dirty");
  double ms_per_s = (c1 - c0) * 1000.0 / (t1 - t0);
  printf("%-14s idle RSS %6.2f MiB (peak %6.2f, PSS %6.2f, private dirty %6.2f MiB)  CPU %.3f "
         "ms/s over %d s   [goal < 8 MiB RSS, < 1 ms/s: %s]\n",
         label, (double)rss / 1024.0, (double)hwm / 1024.0, (double)pss / 1024.0,
         (double)priv / 1024.0, ms_per_s, idle_s,
         rss < 8 * 1024 && ms_per_s < 1.0 ? "met" : "missed");
}

int main(int argc, char **argv) {
  const char *sim_bin = NULL, *agent_bin = NULL;
  int n = 1000, idle = 10;
  const char *smaps_dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--kubesim") == 0 && i + 1 < argc)
      sim_bin = argv[++i];
    else if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc)
      agent_bin = argv[++i];
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
      n = atoi(argv[++i]);
    else if (strcmp(argv[i], "--idle") == 0 && i + 1 < argc)
      idle = atoi(argv[++i]);
    else if (strcmp(argv[i], "--smaps") == 0 && i + 1 < argc)
      smaps_dir = argv[++i];
    else {
      fprintf(stderr,
              "usage: agent-footprint --kubesim BIN --agent BIN [-n N] [--idle S] [--smaps DIR]\n");
      return 2;
    }
  }
  if (!sim_bin || !agent_bin || n < 1 || idle < 1) {
    fprintf(stderr,
            "usage: agent-footprint --kubesim BIN --agent BIN [-n N] [--idle S] [--smaps DIR]\n");
    return 2;
  }
  ksim sim;
  if (ksim_start(&sim, sim_bin, false, NULL) != 0) return 1;
  int rc = 1;
  pid_t agent = 0;
  struct event_base *base = event_base_new();
  kube_config *cfg = NULL;
  kube_error err = {0};
  kube_client *c = NULL;
  if (kube_config_load_kubeconfig(sim.kubeconfig, NULL, &cfg, &err) != 0 ||
      !(c = kube_client_new(base, cfg, NULL, &err))) {
    fprintf(stderr, "kube client: %s\n", err.message);
    goto out;
  }
  kv_parse_error pe = {0};
  kv *crd = kv_json_parse(CRD, strlen(CRD), &pe);
  kube_req q = {.op = KUBE_OP_CREATE, .body = crd};
  kube_result r = {0};
  int crc = kube_send_sync(c, &q, &r);
  if (crc != 0) fprintf(stderr, "creating the CRD: %s\n", r.err.message);
  kube_result_clear(&r);
  kv_unref(crd);
  if (crc != 0) goto out;
  char defs[300];
  snprintf(defs, sizeof defs, "%s/defs", sim.dir);
  mkdir(defs, 0700);
  char file[400];
  snprintf(file, sizeof file, "%s/widgets.k.yaml", defs);
  FILE *f = fopen(file, "w");
  if (!f) goto out;
  fputs(DEFS, f);
  fclose(f);
  if (create_widgets(c, 0, 1) != 0) goto out;

  int port = free_port();
  char health[64], log[400];
  snprintf(health, sizeof health, "127.0.0.1:%d", port);
  snprintf(log, sizeof log, "%s/agent.log", sim.dir);
  agent = fork();
  if (agent == 0) {
    FILE *lf = fopen(log, "w");
    if (lf) {
      dup2(fileno(lf), 1);
      dup2(fileno(lf), 2);
    }
    execl(agent_bin, agent_bin, "--standalone", "--definitions", defs, "--kubeconfig",
          sim.kubeconfig, "--health-listen", health, "--log-level", "warn", (char *)NULL);
    _exit(127);
  }
  if (wait_settled(port, 1, 30) != 0) {
    fprintf(stderr, "the agent did not run the first trigger (log: %s)\n", log);
    goto out;
  }
  measure(agent, "1 trigger:", idle);
  if (smaps_dir) save_smaps(agent, smaps_dir, 1);
  if (n > 1) {
    double t0 = now_s();
    if (create_widgets(c, 1, n) != 0) goto out;
    if (wait_settled(port, n, 120) != 0) {
      fprintf(stderr, "the agent did not settle %d triggers (log: %s)\n", n, log);
      goto out;
    }
    printf("%d triggers created and reconciled (run + status write) in %.2f s\n", n, now_s() - t0);
    char label[32];
    snprintf(label, sizeof label, "%d triggers:", n);
    measure(agent, label, idle);
    if (smaps_dir) save_smaps(agent, smaps_dir, n);
  }
  rc = 0;
out:
  if (agent > 0) {
    kill(agent, SIGTERM);
    int st = 0;
    waitpid(agent, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { /* e.g. a sanitizer report */
      fprintf(stderr, "the agent did not exit cleanly (status %d); its log:\n", st);
      char cmd[600];
      snprintf(cmd, sizeof cmd, "tail -40 '%s/agent.log' >&2", sim.dir);
      if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
      rc = 1;
    }
  }
  if (c) kube_client_free(c);
  kube_config_free(cfg);
  kube_error_clear(&err);
  event_base_free(base);
  ksim_stop(&sim, false);
  return rc;
}
