/*
 * bench/functiontest-bench.c: how fast FunctionTests load, prepare and run
 * (issue 3 goal: the whole `koreoctl test` process on core-examples/ under
 * 20 ms; upstream takes about 1.6 s).
 *
 *   functiontest-bench [DIR] [--iterations N] [--koreoctl PATH] [--processes M]
 *
 * DIR defaults to ../shared/reference/koreo-examples/core-examples found
 * from the current directory upwards.  Prints milliseconds per iteration
 * (mean and best of N) for: load + prepare (a fresh registry), running
 * every FunctionTest on a loaded registry, and both together; then the
 * wall time of M whole `koreoctl test -o json DIR` processes (median and
 * best; koreoctl defaults to ../cli/koreoctl next to this program).
 * A benchmark, never a timed test: it checks nothing but that the runs
 * complete.
 */
#include "koreo/definition.h"
#include "koreo/ftest.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct tests {
  kdef_definition *items[512];
  size_t n;
} tests;

static bool add_test(kdef_definition *d, void *arg) {
  tests *t = arg;
  if (t->n < sizeof t->items / sizeof t->items[0]) t->items[t->n++] = kdef_ref(d);
  return true;
}

/* Run every FunctionTest of `reg`; returns the number of cases that did not
 * pass or skip (so the work cannot be optimised away). */
static size_t run_all(kdef_registry *reg, size_t *ncases) {
  tests t = {.n = 0};
  kdef_registry_each(reg, KDEF_FUNCTION_TEST, add_test, &t);
  size_t bad = 0;
  *ncases = 0;
  for (size_t i = 0; i < t.n; i++) {
    kftest_result r;
    kftest_run(reg, t.items[i], &r);
    for (size_t j = 0; j < r.n_cases; j++) {
      (*ncases)++;
      if (r.cases[j].status != KFTEST_PASS && r.cases[j].status != KFTEST_SKIP) bad++;
    }
    kftest_result_clear(&r);
    kdef_unref(t.items[i]);
  }
  return bad;
}

/* Load DIR into `reg`, diagnostics dropped. */
static void load(kdef_registry *reg, const char *const *paths) {
  kdef_diags d = {0};
  kdef_load_paths(reg, paths, 1, &d);
  kdef_diags_free(&d);
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void report(const char *what, double *ms, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++)
    sum += ms[i];
  qsort(ms, (size_t)n, sizeof *ms, cmp_double);
  printf("%-28s %8.3f ms/iteration (best %.3f, median %.3f, %d iterations)\n", what, sum / n, ms[0],
         ms[n / 2], n);
}

int main(int argc, char **argv) {
  const char *dir = NULL, *koreoctl = NULL;
  int iters = 200, procs = 20;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
      iters = atoi(argv[++i]);
    else if (strcmp(argv[i], "--processes") == 0 && i + 1 < argc)
      procs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--koreoctl") == 0 && i + 1 < argc)
      koreoctl = argv[++i];
    else if (argv[i][0] != '-')
      dir = argv[i];
    else {
      fprintf(stderr,
              "usage: %s [DIR] [--iterations N] [--processes M] [--koreoctl "
              "PATH]\n",
              argv[0]);
      return 2;
    }
  }
  if (iters < 1) iters = 1;
  static char found[PATH_MAX];
  if (!dir) {
    const char *rel = "shared/reference/koreo-examples/core-examples";
    for (int up = 1; up <= 5 && !dir; up++) {
      size_t o = 0;
      for (int k = 0; k < up; k++)
        o += (size_t)snprintf(found + o, sizeof found - o, "../");
      snprintf(found + o, sizeof found - o, "%s", rel);
      if (is_dir(found)) dir = found;
    }
    if (!dir) {
      fprintf(stderr, "functiontest-bench: cannot find %s; give DIR\n", rel);
      return 2;
    }
  }
  static char ctl[PATH_MAX];
  if (!koreoctl) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      self[n] = 0;
      snprintf(ctl, sizeof ctl, "%s/../cli/koreoctl", dirname(self));
      koreoctl = ctl;
    }
  }

  double *ms = calloc((size_t)(iters > procs ? iters : procs), sizeof *ms);
  if (!ms) return 1;
  const char *paths[] = {dir};
  size_t ncases = 0, bad = 0, ndefs = 0;

  /* load + prepare */
  for (int i = 0; i < iters; i++) {
    double t0 = now_ms();
    kdef_registry *reg = kdef_registry_new();
    load(reg, paths);
    ms[i] = now_ms() - t0;
    ndefs = kdef_registry_count(reg, KDEF_KIND_NONE);
    kdef_registry_free(reg);
  }
  printf("functiontest-bench: %s (%zu definitions)\n", dir, ndefs);
  report("load + prepare", ms, iters);

  /* running the tests on a loaded registry */
  kdef_registry *reg = kdef_registry_new();
  load(reg, paths);
  for (int i = 0; i < iters; i++) {
    double t0 = now_ms();
    bad = run_all(reg, &ncases);
    ms[i] = now_ms() - t0;
  }
  kdef_registry_free(reg);
  char label[64];
  snprintf(label, sizeof label, "run %zu cases", ncases);
  report(label, ms, iters);

  /* everything together */
  for (int i = 0; i < iters; i++) {
    double t0 = now_ms();
    kdef_registry *r2 = kdef_registry_new();
    load(r2, paths);
    bad = run_all(r2, &ncases);
    kdef_registry_free(r2);
    ms[i] = now_ms() - t0;
  }
  report("load + prepare + run", ms, iters);
  if (bad) printf("note: %zu case(s) did not pass\n", bad);

  /* whole koreoctl test processes */
  if (koreoctl && access(koreoctl, X_OK) == 0 && procs > 0) {
    int ok = 0;
    for (int i = 0; i < procs; i++) {
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
      char *args[] = {(char *)koreoctl, "test", "-o", "json", (char *)dir, NULL};
      double t0 = now_ms();
      pid_t pid;
      int st = 0;
      if (posix_spawn(&pid, koreoctl, &fa, NULL, args, environ) == 0 &&
          waitpid(pid, &st, 0) == pid) {
        ms[ok++] = now_ms() - t0;
      }
      posix_spawn_file_actions_destroy(&fa);
    }
    if (ok) {
      qsort(ms, (size_t)ok, sizeof *ms, cmp_double);
      printf("%-28s %8.3f ms/process (median; best %.3f, %d processes; goal < "
             "20 ms)\n",
             "koreoctl test process", ms[ok / 2], ms[0], ok);
    }
  } else {
    printf("koreoctl test process: skipped (no koreoctl at %s; use --koreoctl)\n",
           koreoctl ? koreoctl : "?");
  }
  free(ms);
  return 0;
}
