/*
 * bench/controlplane-bench.c: throughput, latency and footprint of the
 * control plane (issue 6) on a local fleet.
 *
 *   controlplane-bench --bin BUILD_DIR [--clusters C] [--triggers N]
 *                      [--idle S] [--resync DUR] [--shared DIR]
 *
 * In a temporary folder (removed at the end) it starts a private
 * PostgreSQL (tests/pg/pg-start.sh), `koreo-controlplane migrate`, an admin
 * token (`tokens create`), `koreo-controlplane serve`, C kubesim clusters
 * (default 2), each with a koreo-agent registered with a bootstrap token
 * (`koreoctl tokens bootstrap -o json`), and applies the hello-service
 * example (SHARED/reference/koreo-examples/kubernetes/hello-service/[*].k.yaml;
 * SHARED from --shared, $KOREO_SHARED_DIR or the source tree's ../shared)
 * with `koreoctl apply`.  Then it creates N labelled Deployments (default
 * 200) spread round-robin over the clusters through each kubesim's REST API
 * (koreo/kube.h: libcurl with the kubeconfig's bearer token and CA; 16
 * creates in flight) while watching Deployments and Services, and prints:
 *   - triggers/s: N over the time from the first create until every
 *     Deployment has its Service and a Ready condition whose reason is
 *     Wait or Ready;
 *   - trigger-to-status latency p50/p95/p99 (ms): create sent to the first
 *     status write seen on the watch; and the same to the Service seen;
 *   - the control plane's RSS (VmRSS/VmHWM) and CPU time (utime+stime) at
 *     the end, the database size and row counts of workflow_runs/step_runs;
 *   - the time until every Deployment's reason is Ready (hello-service's
 *     first run ends in Retry(delay=30) after creating the Service, so
 *     this is the second run);
 *   - steady state: after that, S seconds (default 10) idle, runs
 *     recorded vs the sum of repeat_count, before and after.  The control
 *     plane runs with --resync DUR (default 3s, its own default is 20m) so
 *     that every trigger re-runs during the idle phase: an unchanged result
 *     bumps repeat_count instead of adding a row.
 * Every child gets SIGTERM when the bench dies (PR_SET_PDEATHSIG); on any
 * exit (failure or SIGINT/SIGTERM) the agents, kubesims and control plane
 * are stopped, PostgreSQL is stopped with pg-stop.sh and the folder removed.
 * Exit status 1 when a step failed or convergence timed out.  Build in
 * Release without sanitizers to measure.
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/agent/agent_test_util.h"
#include "../tests/kube/kubesim_harness.h"
#include "koreo/json.h"
#include "koreo/kube.h"

#define MAX_CLUSTERS 16
#define WINDOW 16

/* Small accessors over koreo/value.h (NULL-safe). */
static const kv *get(const kv *m, const char *key) { return m ? kv_map_get_str(m, key) : NULL; }
static const char *get_s(const kv *m, const char *key) {
  const kv *v = get(m, key);
  return v && kv_kind_of(v) == KV_STRING ? kv_str(v) : NULL;
}
static size_t list_len(const kv *v) { return v && kv_kind_of(v) == KV_LIST ? kv_len(v) : 0; }
static kv *parse_json(const char *text) {
  kv_parse_error pe;
  return kv_json_parse(text, strlen(text), &pe);
}

/* ------------------------------------------------------------ processes */

static char g_dir[256];   /* the temporary folder ("" when none) */
static char g_src[512];   /* the source tree (for tests/pg) */
static bool g_pg_started; /* pg-start.sh succeeded: pg-stop.sh at the end */
static pid_t g_pids[2 + 2 * MAX_CLUSTERS];
static int g_npids;
static ksim g_sims[MAX_CLUSTERS];
static int g_nsims;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fork and exec argv (NULL-terminated, argv[0] a path): stderr appended to
 * `log`, stdout to `out_fd` (or the log when out_fd < 0).  The child gets
 * SIGTERM when the bench dies.  Returns the pid or -1. */
static pid_t fork_exec(const char *const *argv, const char *log, int out_fd) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(1);
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) dup2(fd, 2); /* dup2 clears close-on-exec on the copy */
  dup2(out_fd >= 0 ? out_fd : 2, 1);
  execv(argv[0], (char *const *)argv);
  fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* Run argv to the end with stdout captured (malloc'ed in *out when out is
 * non-NULL) and stderr appended to `log`.  Returns the exit status (0 on
 * success), -1 when it could not be run. */
static int run_capture(const char *const *argv, const char *log, char **out) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork_exec(argv, log, p[1]);
  close(p[1]);
  kv_strbuf b = {0};
  char buf[4096];
  ssize_t r;
  while (pid > 0 && (r = read(p[0], buf, sizeof buf)) > 0)
    kv_strbuf_put(&b, buf, (size_t)r);
  close(p[0]);
  int st = 0;
  if (pid > 0) waitpid(pid, &st, 0);
  char *s = kv_strbuf_take(&b, NULL);
  if (out)
    *out = s;
  else
    free(s);
  return pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Start argv in the background with stdout/stderr to `log`; remembered for
 * the cleanup.  Returns the pid or -1. */
static pid_t spawn(const char *const *argv, const char *log) {
  pid_t pid = fork_exec(argv, log, -1);
  if (pid > 0) g_pids[g_npids++] = pid;
  return pid;
}

static void stop_pid(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid) return;
    ksim_sleep_ms(50);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Stop everything (agents first: started last), PostgreSQL, remove the
 * folder.  Idempotent. */
static void cleanup(void) {
  for (int i = g_npids - 1; i >= 0; i--)
    stop_pid(g_pids[i]);
  g_npids = 0;
  for (int i = 0; i < g_nsims; i++)
    ksim_stop(&g_sims[i], false);
  g_nsims = 0;
  if (g_pg_started) {
    char script[700], pgdir[300], log[300];
    snprintf(script, sizeof script, "%s/tests/pg/pg-stop.sh", g_src);
    snprintf(pgdir, sizeof pgdir, "%s/pg", g_dir);
    snprintf(log, sizeof log, "%s/pg-stop.log", g_dir);
    const char *argv[] = {"/bin/sh", script, pgdir, NULL};
    if (run_capture(argv, log, NULL) != 0) fprintf(stderr, "pg-stop.sh failed (%s)\n", log);
    g_pg_started = false;
  }
  if (g_dir[0]) {
    const char *argv[] = {"/bin/rm", "-rf", g_dir, NULL};
    if (run_capture(argv, "/dev/null", NULL) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    g_dir[0] = 0;
  }
}

/* What a signal handler runs (async-signal-safe: kill, fork, execv,
 * waitpid, _exit): the same cleanup as a shell command built beforehand. */
static char g_cleanup_cmd[4096];

static void add_cleanup(const char *fmt, const char *a, const char *b) {
  size_t n = strlen(g_cleanup_cmd);
  snprintf(g_cleanup_cmd + n, sizeof g_cleanup_cmd - n, fmt, a, b);
}

static void on_signal(int sig) {
  for (int i = g_npids - 1; i >= 0; i--)
    kill(g_pids[i], SIGTERM);
  for (int i = 0; i < g_nsims; i++)
    if (g_sims[i].pid) kill(g_sims[i].pid, SIGTERM);
  pid_t pid = fork();
  if (pid == 0) {
    char *const argv[] = {"/bin/sh", "-c", "eval \"$1\"; rm -rf \"$2\"", "sh", g_cleanup_cmd,
                          g_dir,     NULL};
    execv("/bin/sh", argv);
    _exit(127);
  }
  if (pid > 0) waitpid(pid, NULL, 0);
  _exit(128 + sig);
}

static void chomp(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
    s[--n] = 0;
}

static void show_log(const char *log) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", log);
  if (system(cmd) != 0) fprintf(stderr, "(no log %s)\n", log);
}

/* run_capture for a setup step: on success the first line of its output
 * (trailing blanks cut) goes to line[n] when line is non-NULL and must not
 * be empty; on failure says `what` failed and shows the log.  0 or -1. */
static int step(const char *what, const char *const *argv, const char *log, char *line, size_t n) {
  char *out = NULL;
  int rc = run_capture(argv, log, line ? &out : NULL);
  if (rc == 0 && line && !out) rc = -1;
  if (rc == 0 && line) {
    chomp(out);
    snprintf(line, n, "%s", out);
    if (!line[0]) rc = -1;
  }
  free(out);
  if (rc == 0) return 0;
  fprintf(stderr, "%s failed (%s):\n", what, log);
  show_log(log);
  return -1;
}

/* ----------------------------------------------------- the control plane */

typedef struct fleet {
  char bin[256];
  char db_url[256];
  char token[256];
  char api[64];
  char agent_addr[64];
  char ca[320];
  char koreoctl[600];
  char ctl_log[300];
  const char *resync;
  pid_t cp_pid;
} fleet;

static size_t discard(void *p, size_t sz, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return sz * n;
}

static bool api_ready(const fleet *f) {
  CURL *c = curl_easy_init();
  if (!c) return false;
  char url[128];
  snprintf(url, sizeof url, "%s/readyz", f->api);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CAINFO, f->ca);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  long code = 0;
  bool ok = curl_easy_perform(c) == CURLE_OK &&
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
  curl_easy_cleanup(c);
  return ok;
}

/* koreoctl ARGS... --server --token --ca-file; stdout in *out. */
static int koreoctl(const fleet *f, const char *const *args, char **out) {
  const char *argv[64];
  int n = 0;
  argv[n++] = f->koreoctl;
  for (int i = 0; args[i] && n < 56; i++)
    argv[n++] = args[i];
  argv[n++] = "--server";
  argv[n++] = f->api;
  argv[n++] = "--token";
  argv[n++] = f->token;
  argv[n++] = "--ca-file";
  argv[n++] = f->ca;
  argv[n] = NULL;
  return run_capture(argv, f->ctl_log, out);
}

static int start_db_and_cp(fleet *f) {
  char script[700], pgdir[300], log[300], cp[600];
  snprintf(script, sizeof script, "%s/tests/pg/pg-start.sh", g_src);
  snprintf(pgdir, sizeof pgdir, "%s/pg", g_dir);
  snprintf(log, sizeof log, "%s/postgres.log", g_dir);
  const char *pga[] = {"/bin/sh", script, pgdir, NULL};
  g_pg_started = true; /* pg-stop.sh copes with a half-started server */
  char stop[700];
  snprintf(stop, sizeof stop, "%s/tests/pg/pg-stop.sh", g_src);
  add_cleanup("sleep 1; /bin/sh '%s' '%s' >/dev/null 2>&1; ", stop, pgdir);
  if (step("starting PostgreSQL", pga, log, f->db_url, sizeof f->db_url) != 0) return -1;
  snprintf(cp, sizeof cp, "%s/controlplane/koreo-controlplane", f->bin);
  snprintf(log, sizeof log, "%s/migrate.log", g_dir);
  const char *mig[] = {cp, "migrate", "--database-url", f->db_url, NULL};
  if (step("koreo-controlplane migrate", mig, log, NULL, 0) != 0) return -1;
  const char *tc[] = {cp,        "tokens",         "create",  "--role", "admin", "--description",
                      "cpbench", "--database-url", f->db_url, NULL};
  if (step("koreo-controlplane tokens create", tc, log, f->token, sizeof f->token) != 0) return -1;

  char pki[300], al[64], hl[64];
  snprintf(pki, sizeof pki, "%s/pki", g_dir);
  snprintf(f->ca, sizeof f->ca, "%s/ca.crt", pki);
  int ap = free_port(), hp = free_port();
  snprintf(al, sizeof al, "127.0.0.1:%d", ap);
  snprintf(hl, sizeof hl, "127.0.0.1:%d", hp);
  snprintf(f->agent_addr, sizeof f->agent_addr, "%s", al);
  snprintf(f->api, sizeof f->api, "https://127.0.0.1:%d", hp);
  snprintf(log, sizeof log, "%s/controlplane.log", g_dir);
  const char *serve[] = {cp,
                         "serve",
                         "--database-url",
                         f->db_url,
                         "--pki-dir",
                         pki,
                         "--agent-listen",
                         al,
                         "--api-listen",
                         hl,
                         "--replica-id",
                         "cp1",
                         "--resync",
                         f->resync,
                         NULL};
  f->cp_pid = spawn(serve, log);
  if (f->cp_pid < 0) return -1;
  for (int i = 0; i < 300; i++) {
    if (waitpid(f->cp_pid, NULL, WNOHANG) == f->cp_pid) break;
    if (access(f->ca, R_OK) == 0 && api_ready(f)) return 0;
    ksim_sleep_ms(100);
  }
  fprintf(stderr, "koreo-controlplane serve did not become ready in 30 s (%s):\n", log);
  show_log(log);
  return -1;
}

/* The cluster's state as the control plane reports it ("" if unknown). */
static void cluster_state(const fleet *f, const char *name, char *state, size_t n) {
  state[0] = 0;
  char *out = NULL;
  const char *args[] = {"get", "clusters", "-o", "json", NULL};
  if (koreoctl(f, args, &out) == 0 && out) {
    kv *v = parse_json(out);
    if (v) {
      const kv *items = kv_kind_of(v) == KV_MAP ? get(v, "items") : v;
      for (size_t i = 0; i < list_len(items); i++) {
        const kv *c = kv_list_at(items, i);
        const char *nm = get_s(c, "name"), *st = get_s(c, "state");
        if (nm && st && !strcmp(nm, name)) snprintf(state, n, "%s", st);
      }
      kv_unref(v);
    }
  }
  free(out);
}

static int add_cluster(fleet *f, int idx, const char *ksim_bin) {
  char name[32];
  snprintf(name, sizeof name, "c%d", idx + 1);
  ksim *k = &g_sims[idx];
  if (ksim_start(k, ksim_bin, false, NULL) != 0) {
    fprintf(stderr, "starting kubesim %s failed\n", name);
    return -1;
  }
  g_nsims = idx + 1;
  add_cleanup("rm -rf '%s'%s; ", k->dir, "");
  char *out = NULL;
  const char *bt[] = {"tokens", "bootstrap", "--cluster", name, "--ttl", "1h", "-o", "json", NULL};
  if (koreoctl(f, bt, &out) != 0 || !out) {
    fprintf(stderr, "koreoctl tokens bootstrap failed (%s):\n", f->ctl_log);
    show_log(f->ctl_log);
    free(out);
    return -1;
  }
  kv *v = parse_json(out);
  char tok[256] = "";
  const char *t = get_s(v, "token");
  if (t) snprintf(tok, sizeof tok, "%s", t);
  if (v) kv_unref(v);
  free(out);
  if (!tok[0]) {
    fprintf(stderr, "koreoctl tokens bootstrap gave no token\n");
    return -1;
  }
  char state[300], health[64], log[300];
  snprintf(state, sizeof state, "%s/agent-%s", g_dir, name);
  snprintf(health, sizeof health, "127.0.0.1:%d", free_port());
  snprintf(log, sizeof log, "%s/agent-%s.log", g_dir, name);
  char agent[600];
  snprintf(agent, sizeof agent, "%s/agent/koreo-agent", f->bin);
  const char *argv[] = {agent,         "--server",          f->agent_addr, "--cluster-name",
                        name,          "--bootstrap-token", tok,           "--state-dir",
                        state,         "--ca-file",         f->ca,         "--kubeconfig",
                        k->kubeconfig, "--health-listen",   health,        NULL};
  if (spawn(argv, log) < 0) return -1;
  for (int i = 0; i < 150; i++) {
    char st[32];
    cluster_state(f, name, st, sizeof st);
    if (!strcmp(st, "online")) return 0;
    ksim_sleep_ms(200);
  }
  fprintf(stderr, "the agent of %s did not come online in 30 s (%s):\n", name, log);
  show_log(log);
  return -1;
}

/* ------------------------------------------------------------ measuring */

typedef struct trig {
  double t_sent;    /* create sent (0: not yet) */
  double t_status;  /* first status write seen on the watch */
  double t_service; /* its Service seen */
  bool converged;   /* Service and Ready reason Wait/Ready */
  bool status_ok;   /* Ready reason Wait or Ready */
  bool ready;       /* Ready reason Ready (counted in bench.ready) */
} trig;

typedef struct bench {
  int n, nclusters;
  trig *t;
  kube_client *c[MAX_CLUSTERS];
  int next, in_flight, created, failed, converged, ready;
  bool done, all_ready;
  char first_error[512];
} bench;

static int index_of(const kv *obj) {
  const char *name = kube_obj_meta(obj, "name");
  if (!name || strncmp(name, "cpb-", 4) != 0) return -1;
  return atoi(name + 4);
}

static void check_converged(bench *b, int i) {
  trig *t = &b->t[i];
  if (!t->converged && t->status_ok && t->t_service > 0) {
    t->converged = true;
    if (++b->converged == b->n) b->done = true;
  }
}

static void on_deploy(void *ud, const kube_watch_event *ev) {
  bench *b = ud;
  if (ev->type != KUBE_WATCH_ADDED && ev->type != KUBE_WATCH_MODIFIED) return;
  int i = index_of(ev->object);
  if (i < 0 || i >= b->n) return;
  const kv *conds = get(get(ev->object, "status"), "conditions");
  for (size_t k = 0; k < list_len(conds); k++) {
    const kv *c = kv_list_at(conds, k);
    const char *type = get_s(c, "type");
    if (!type || strcmp(type, "Ready") != 0) continue;
    if (b->t[i].t_status == 0) b->t[i].t_status = now_s();
    const char *r = get_s(c, "reason");
    b->t[i].status_ok = r && (!strcmp(r, "Wait") || !strcmp(r, "Ready"));
    if (r && !strcmp(r, "Ready") && !b->t[i].ready) {
      b->t[i].ready = true;
      if (++b->ready == b->n) b->all_ready = true;
    }
  }
  check_converged(b, i);
}

static void on_service(void *ud, const kube_watch_event *ev) {
  bench *b = ud;
  if (ev->type != KUBE_WATCH_ADDED && ev->type != KUBE_WATCH_MODIFIED) return;
  int i = index_of(ev->object);
  if (i < 0 || i >= b->n) return;
  if (b->t[i].t_service == 0) b->t[i].t_service = now_s();
  check_converged(b, i);
}

typedef struct slot {
  bench *b;
  int i;
} slot;

static void issue(bench *b);

static void on_created(void *ud, kube_result *r) {
  slot *s = ud;
  bench *b = s->b;
  b->in_flight--;
  if (r->err.code != KUBE_OK) {
    if (!b->failed++)
      snprintf(b->first_error, sizeof b->first_error, "creating cpb-%05d: %s: %.400s", s->i,
               kube_err_name(r->err.code), r->err.message);
  } else {
    b->created++;
  }
  free(s);
  issue(b);
}

static void issue(bench *b) {
  while (b->in_flight < WINDOW && b->next < b->n) {
    int i = b->next++;
    char text[1024];
    snprintf(text, sizeof text,
             "{\"apiVersion\":\"apps/"
             "v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
             "\"cpb-%05d\",\"namespace\":\"default\",\"labels\":{\"service\":\"cpb-%"
             "05d\","
             "\"koreo-bench\":\"cp\"}},\"spec\":{\"replicas\":1,\"selector\":{"
             "\"matchLabels\":"
             "{\"app\":\"cpb-%05d\"}},\"template\":{\"metadata\":{\"labels\":{"
             "\"app\":"
             "\"cpb-%05d\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":"
             "\"nginx:latest\",\"ports\":[{\"containerPort\":8080}]}]}}}}",
             i, i, i, i);
    kv *body = parse_json(text);
    if (!body) {
      b->failed++;
      continue;
    }
    slot *s = malloc(sizeof *s);
    s->b = b;
    s->i = i;
    kube_req req = {.op = KUBE_OP_CREATE,
                    .api_version = "apps/v1",
                    .resource = "deployments",
                    .namespace_ = "default",
                    .body = body};
    b->t[i].t_sent = now_s();
    b->in_flight++;
    if (kube_send(b->c[i % b->nclusters], &req, on_created, s) != 0) {
      b->in_flight--;
      b->failed++;
      free(s);
    }
    kv_unref(body);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p) {
  if (n == 0) return 0;
  int k = (int)(p * (n - 1) + 0.5);
  return v[k];
}

static void print_latency(const char *what, bench *b, bool service) {
  double *v = calloc((size_t)b->n, sizeof *v);
  int m = 0;
  for (int i = 0; i < b->n; i++) {
    double t = service ? b->t[i].t_service : b->t[i].t_status;
    if (t > 0 && b->t[i].t_sent > 0) v[m++] = (t - b->t[i].t_sent) * 1e3;
  }
  qsort(v, (size_t)m, sizeof *v, cmp_double);
  printf("%-34s p50 %8.1f ms  p95 %8.1f ms  p99 %8.1f ms  max %8.1f ms  (%d of "
         "%d)\n",
         what, pct(v, m, 0.50), pct(v, m, 0.95), pct(v, m, 0.99), m ? v[m - 1] : 0.0, m, b->n);
  free(v);
}

static int proc_status_kib(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  int kib = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') kib = atoi(line + n + 1);
  if (f) fclose(f);
  return kib;
}

static double proc_cpu_s(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* after ')': state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* One row of numbers from psql (-At, '|' separated) into v[0..n). */
static int sql_numbers(const fleet *f, const char *sql, double *v, int n) {
  char log[300];
  snprintf(log, sizeof log, "%s/psql.log", g_dir);
  char *out = NULL;
  const char *argv[] = {"/usr/bin/env", "psql", "-X", "-At", "-d", f->db_url, "-c", sql, NULL};
  int rc = run_capture(argv, log, &out);
  int got = 0;
  if (rc == 0 && out) {
    char *save = NULL;
    for (char *tok = strtok_r(out, "|\n", &save); tok && got < n;
         tok = strtok_r(NULL, "|\n", &save))
      v[got++] = atof(tok);
  }
  free(out);
  if (got != n) {
    fprintf(stderr, "psql '%s' failed (%s)\n", sql, log);
    return -1;
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: controlplane-bench --bin BUILD_DIR [--clusters C] [--triggers N] "
                  "[--idle S] [--resync DUR] [--shared DIR]\n");
}

static int run(fleet *f, int nclusters, int n, int idle, const char *shared) {
  /* the fleet */
  if (start_db_and_cp(f) != 0) return -1;
  char ksim_bin[512];
  snprintf(ksim_bin, sizeof ksim_bin, "%s/tests/kubesim/koreo-kubesim", f->bin);
  for (int i = 0; i < nclusters; i++)
    if (add_cluster(f, i, ksim_bin) != 0) return -1;
  char pattern[700];
  snprintf(pattern, sizeof pattern, "%s/reference/koreo-examples/kubernetes/hello-service/*.k.yaml",
           shared);
  glob_t g;
  if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
    fprintf(stderr, "no definitions at %s\n", pattern);
    return -1;
  }
  const char *apply[40];
  int na = 0;
  apply[na++] = "apply";
  for (size_t i = 0; i < g.gl_pathc && na < 37; i++) {
    apply[na++] = "-f";
    apply[na++] = g.gl_pathv[i];
  }
  apply[na] = NULL;
  int arc = koreoctl(f, apply, NULL);
  globfree(&g);
  if (arc != 0) {
    fprintf(stderr, "koreoctl apply failed (%s):\n", f->ctl_log);
    show_log(f->ctl_log);
    return -1;
  }
  printf("fleet: PostgreSQL, 1 control plane (--resync %s), %d kubesim "
         "clusters with agents; "
         "hello-service applied\n",
         f->resync, nclusters);
  fflush(stdout);

  /* the clients and watches */
  struct event_base *base = event_base_new();
  bench b = {.n = n, .nclusters = nclusters};
  b.t = calloc((size_t)n, sizeof *b.t);
  kube_watch *w[2 * MAX_CLUSTERS] = {0};
  int rc = -1;
  for (int i = 0; i < nclusters; i++) {
    kube_config *cfg = NULL;
    kube_error err = {0};
    if (kube_config_load_kubeconfig(g_sims[i].kubeconfig, NULL, &cfg, &err) != 0) {
      fprintf(stderr, "kubeconfig %s: %s\n", g_sims[i].kubeconfig, err.message);
      kube_error_clear(&err);
      goto out;
    }
    kube_client_options o = {.max_connections = 8};
    b.c[i] = kube_client_new(base, cfg, &o, &err);
    kube_config_free(cfg);
    if (!b.c[i]) {
      fprintf(stderr, "kube client: %s\n", err.message);
      kube_error_clear(&err);
      goto out;
    }
    kube_watch_opts d = {.api_version = "apps/v1",
                         .resource = "deployments",
                         .namespace_ = "default",
                         .label_selector = "koreo-bench=cp",
                         .drop_managed_fields = true};
    kube_watch_opts s = {.api_version = "v1",
                         .resource = "services",
                         .namespace_ = "default",
                         .drop_managed_fields = true};
    w[2 * i] = kube_watch_start(b.c[i], &d, on_deploy, &b, NULL);
    w[2 * i + 1] = kube_watch_start(b.c[i], &s, on_service, &b, NULL);
  }
  /* let the watches list (empty) before the first create */
  {
    bool never = false;
    kube_client_run_until(b.c[0], &never, 500);
  }

  double t0 = now_s();
  issue(&b);
  int timeout_ms = 120000 + n * 300;
  int wrc = kube_client_run_until(b.c[0], &b.done, timeout_ms);
  double t1 = now_s();
  if (b.failed) {
    fprintf(stderr, "%d creates failed; first: %s\n", b.failed, b.first_error);
    goto out;
  }
  double last_sent = 0;
  for (int i = 0; i < n; i++)
    if (b.t[i].t_sent > last_sent) last_sent = b.t[i].t_sent;
  printf("created %d Deployments over %d clusters in %.2f s (%.0f creates/s, "
         "%d in flight)\n",
         n, nclusters, last_sent - t0, n / (last_sent - t0 > 0 ? last_sent - t0 : 1e-9), WINDOW);
  if (wrc != 0) {
    int st = 0, sv = 0;
    for (int i = 0; i < n; i++) {
      st += b.t[i].status_ok;
      sv += b.t[i].t_service > 0;
    }
    fprintf(stderr,
            "not converged after %d s: %d of %d done (%d with status "
            "Wait/Ready, %d Services)\n",
            timeout_ms / 1000, b.converged, n, st, sv);
    goto out;
  }
  printf("converged (Service + Ready Wait/Ready) %d triggers in %.2f s: %.1f "
         "triggers/s\n",
         n, t1 - t0, n / (t1 - t0));
  print_latency("trigger -> first status write", &b, false);
  print_latency("trigger -> Service seen", &b, true);
  fflush(stdout);

  /* footprint at the end of the burst */
  double cpu = proc_cpu_s(f->cp_pid);
  printf("control plane: RSS %.1f MiB (peak %.1f MiB), CPU %.2f s total (%.2f "
         "ms per trigger)\n",
         proc_status_kib(f->cp_pid, "VmRSS") / 1024.0, proc_status_kib(f->cp_pid, "VmHWM") / 1024.0,
         cpu, cpu * 1e3 / n);
  double db[5];
  const char *q = "SELECT pg_database_size(current_database()), (SELECT count(*) FROM "
                  "workflow_runs), (SELECT coalesce(sum(repeat_count),0) FROM "
                  "workflow_runs), "
                  "(SELECT count(*) FROM step_runs), (SELECT count(*) FROM triggers)";
  if (sql_numbers(f, q, db, 5) != 0) goto out;
  printf("database: %.1f MiB; workflow_runs %.0f rows (repeat_count sum %.0f), "
         "step_runs %.0f "
         "rows, triggers %.0f\n",
         db[0] / 1048576.0, db[1], db[2], db[3], db[4]);
  fflush(stdout);

  /* Steady state.  The first run of hello-service ends in Retry(delay=30)
   * after creating the Service; the second, 30 s later, finds it and ends
   * Ready.  Wait for that so the idle phase sees only resyncs. */
  if (kube_client_run_until(b.c[0], &b.all_ready, 120000) != 0) {
    fprintf(stderr, "only %d of %d Deployments reached reason Ready in 120 s\n", b.ready, n);
    goto out;
  }
  printf("all %d Ready (second run, after the Workflow's own Retry delay of 30 "
         "s) %.2f s after the "
         "first create\n",
         n, now_s() - t0);
  if (sql_numbers(f, q, db, 5) != 0) goto out;
  double cpu0 = proc_cpu_s(f->cp_pid);
  {
    bool never = false;
    kube_client_run_until(b.c[0], &never, idle * 1000);
  }
  double cpu1 = proc_cpu_s(f->cp_pid);
  double db2[5];
  if (sql_numbers(f, q, db2, 5) != 0) goto out;
  printf("steady state %d s idle (resync %s): workflow_runs %.0f -> %.0f rows, repeat_count sum "
         "%.0f -> %.0f (%.0f runs recorded as repeats, %.0f as new rows); control plane CPU "
         "%.2f ms/s, RSS %.1f MiB\n",
         idle, f->resync, db[1], db2[1], db[2], db2[2], db2[2] - db[2], db2[1] - db[1],
         idle > 0 ? (cpu1 - cpu0) * 1e3 / idle : 0.0, proc_status_kib(f->cp_pid, "VmRSS") / 1024.0);
  printf("database after idle: %.1f MiB, step_runs %.0f rows\n", db2[0] / 1048576.0, db2[3]);
  rc = 0;
out:
  for (int i = 0; i < 2 * MAX_CLUSTERS; i++)
    if (w[i]) kube_watch_stop(w[i]);
  for (int i = 0; i < nclusters; i++)
    if (b.c[i]) kube_client_free(b.c[i]);
  event_base_free(base);
  free(b.t);
  return rc;
}

int main(int argc, char **argv) {
  fleet f = {.resync = "3s"};
  int nclusters = 2, n = 200, idle = 10;
  const char *shared = getenv("KOREO_SHARED_DIR");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--bin") && v)
      snprintf(f.bin, sizeof f.bin, "%s", argv[++i]);
    else if (!strcmp(a, "--clusters") && v)
      nclusters = atoi(argv[++i]);
    else if (!strcmp(a, "--triggers") && v)
      n = atoi(argv[++i]);
    else if (!strcmp(a, "--idle") && v)
      idle = atoi(argv[++i]);
    else if (!strcmp(a, "--resync") && v)
      f.resync = argv[++i];
    else if (!strcmp(a, "--shared") && v)
      shared = argv[++i];
    else {
      usage();
      return 2;
    }
  }
  if (!f.bin[0] || nclusters < 1 || nclusters > MAX_CLUSTERS || n < 1 || n > 99999 || idle < 0) {
    usage();
    return 2;
  }
  snprintf(g_src, sizeof g_src, "%s", KOREO_SOURCE_DIR);
  char shared_buf[600];
  if (!shared || !*shared) {
    snprintf(shared_buf, sizeof shared_buf, "%s/../shared", g_src);
    shared = shared_buf;
  }
  snprintf(f.koreoctl, sizeof f.koreoctl, "%s/cli/koreoctl", f.bin);
  snprintf(g_dir, sizeof g_dir, "/tmp/koreo-cpbench-XXXXXX");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  chmod(g_dir, 0755); /* PostgreSQL runs as `postgres` when we are root */
  snprintf(f.ctl_log, sizeof f.ctl_log, "%s/koreoctl.log", g_dir);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = run(&f, nclusters, n, idle, shared);
  cleanup();
  curl_global_cleanup();
  return rc == 0 ? 0 : 1;
}
