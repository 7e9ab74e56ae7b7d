/*
 * bench/cel-bench.c: compile and evaluation cost of typical Koreo
 * expressions in the Koreo environment.
 *
 *   cel-bench [--runs N] [--min-ms MS]
 *
 * For each expression: compile time (ns per compile) and evaluation time
 * (ns per evaluation), each the median of N runs (default 9); a run
 * repeats the operation until at least MS milliseconds (default 50) have
 * passed.  Prints a table.  A benchmark, never a timed test: it prints
 * figures and exits 0 unless an expression fails.
 */
#include "koreo/cel.h"
#include "koreo/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *BINDINGS =
    "{\"inputs\": {\"a\": 41, \"name\": \"web\", \"replicas\": 3,"
    " \"metadata\": {\"name\": \"web\", \"namespace\": \"prod\","
    "  \"labels\": {\"app\": \"web\", \"tier\": \"frontend\"}},"
    " \"spec\": {\"template\": {\"metadata\": {\"labels\": {\"app\": \"web\"}}}},"
    " \"items\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],"
    " \"base\": {\"metadata\": {\"name\": \"web\", \"labels\": {\"a\": \"1\"}},"
    "  \"spec\": {\"replicas\": 1, \"image\": \"nginx\"}},"
    " \"patch\": {\"metadata\": {\"labels\": {\"b\": \"2\"}}, \"spec\": {\"replicas\": 3}}},"
    " \"resource\": {\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\","
    "  \"metadata\": {\"name\": \"web\", \"namespace\": \"prod\", \"uid\": \"1234\"},"
    "  \"spec\": {\"replicas\": 2}}}";

static const struct {
  const char *what, *expr;
} CASES[] = {
    {"int addition", "inputs.a + 1"},
    {"field path", "inputs.metadata.labels.app"},
    {"concat + string(int)", "inputs.name + '-' + string(inputs.replicas)"},
    {"has() chain", "has(inputs.spec.template.metadata.labels.app)"},
    {"ternary", "inputs.replicas > 2 ? 'large' : 'small'"},
    {"map over 10", "inputs.items.map(x, x * 2)"},
    {"filter over 10", "inputs.items.filter(x, x % 2 == 0)"},
    {"map then filter, 10", "inputs.items.map(x, x * 3).filter(x, x > 10)"},
    {"self_ref()", "resource.self_ref()"},
    {"overlay() of two maps", "inputs.base.overlay(inputs.patch)"},
};

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  int runs = 9;
  double min_ms = 50;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--min-ms") == 0 && i + 1 < argc)
      min_ms = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: cel-bench [--runs N] [--min-ms MS]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 1000) runs = 9;
  kv_parse_error perr;
  kv *bindings = kv_json_parse(BINDINGS, strlen(BINDINGS), &perr);
  if (!bindings) {
    fprintf(stderr, "cel-bench: bindings: %s\n", perr.msg);
    return 1;
  }
  cel_env *env = cel_env_new_koreo();
  double *samples = calloc((size_t)runs, sizeof *samples);
  printf("cel-bench: Koreo environment, median of %d runs, each >= %.0f ms\n", runs, min_ms);
  printf("%-24s %-48s %14s %14s\n", "case", "expression", "compile ns/op", "eval ns/op");
  int rc = 0;
  for (size_t k = 0; k < sizeof CASES / sizeof *CASES; k++) {
    const char *src = CASES[k].expr;
    cel_status st;
    /* compile */
    for (int r = 0; r < runs; r++) {
      long iters = 0;
      double t0 = now_ns(), t;
      do {
        for (int j = 0; j < 64; j++) {
          cel_program *p = cel_compile(env, src, strlen(src), &st);
          if (!p) {
            fprintf(stderr, "cel-bench: %s: %s\n", src, st.msg);
            return 1;
          }
          cel_program_free(p);
        }
        iters += 64;
        t = now_ns();
      } while (t - t0 < min_ms * 1e6);
      samples[r] = (t - t0) / (double)iters;
    }
    double compile_ns = median(samples, runs);
    /* evaluate */
    cel_program *p = cel_compile(env, src, strlen(src), &st);
    kv *first = cel_eval(p, bindings, &st);
    if (!first) {
      fprintf(stderr, "cel-bench: %s: evaluation failed: %s\n", src, st.msg);
      rc = 1;
      cel_program_free(p);
      continue;
    }
    kv_unref(first);
    for (int r = 0; r < runs; r++) {
      long iters = 0;
      double t0 = now_ns(), t;
      do {
        for (int j = 0; j < 256; j++)
          kv_unref(cel_eval(p, bindings, &st));
        iters += 256;
        t = now_ns();
      } while (t - t0 < min_ms * 1e6);
      samples[r] = (t - t0) / (double)iters;
    }
    double eval_ns = median(samples, runs);
    cel_program_free(p);
    printf("%-24s %-48s %14.0f %14.0f\n", CASES[k].what, src, compile_ns, eval_ns);
  }
  free(samples);
  cel_env_free(env);
  kv_unref(bindings);
  return rc;
}
