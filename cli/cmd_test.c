/*
 * cli/cmd_test.c: `koreoctl test`, the FunctionTest runner (spec 7):
 *
 *   koreoctl test [PATH...] [-o text|json|junit] [--run REGEX] [-v]
 *
 * Loads every definition under PATH (files or directories, default "."),
 * runs every FunctionTest (or those whose name matches REGEX, a PCRE2
 * pattern searched in the name) and prints a report: text (a line per
 * case, a readable diff with field paths for failures), JSON lines (one
 * object per case, then a summary line) or JUnit XML.  Loader problems go
 * to stderr.  Exit status: 0 when every case passed or was skipped, 1
 * otherwise (a failure, an error, a case not run, or a file that could
 * not be read or parsed), 2 for usage errors.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "commands.h"
#include "koreo/definition.h"
#include "koreo/ftest.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_usage(FILE *f) {
  fputs("usage: koreoctl test [PATH...] [-o text|json|junit] [--run REGEX] [-v]\n"
        "\n"
        "Run the FunctionTests found in PATH (files or directories, default "
        "\".\").\n"
        "  -o, --output FORMAT  text (default), json (one object per case and a\n"
        "                       summary line) or junit (JUnit XML)\n"
        "  --run REGEX          only FunctionTests whose name matches REGEX\n"
        "  -v, --verbose        text: also show the outcome of passing cases\n"
        "Exit status: 0 when every case passed or was skipped, 1 otherwise,\n"
        "2 for usage errors.\n",
        f);
}

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct collect {
  kdef_definition **items;
  size_t n, cap;
  pcre2_code *re;
  pcre2_match_data *md;
} collect;

static bool collect_test(kdef_definition *d, void *arg) {
  collect *c = arg;
  if (c->re) {
    const char *name = d->name ? d->name : "";
    int rc = pcre2_match(c->re, (PCRE2_SPTR)name, strlen(name), 0, 0, c->md, NULL);
    if (rc < 0) return true;
  }
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    kdef_definition **p = realloc(c->items, c->cap * sizeof *p);
    if (!p) kv_oom();
    c->items = p;
  }
  c->items[c->n++] = kdef_ref(d);
  return true;
}

int cmd_test(int argc, char **argv) {
  double t0 = mono_ms();
  const char *format = "text", *run_re = NULL;
  unsigned text_flags = 0;
  const char **paths = calloc((size_t)argc + 1, sizeof *paths);
  if (!paths) kv_oom();
  size_t npaths = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "koreoctl test: %s needs a value (text, json or junit)\n", a);
        free(paths);
        return 2;
      }
      format = argv[++i];
    } else if (strncmp(a, "-o=", 3) == 0) {
      format = a + 3;
    } else if (strncmp(a, "--output=", 9) == 0) {
      format = a + 9;
    } else if (strcmp(a, "--run") == 0) {
      if (i + 1 >= argc) {
        fputs("koreoctl test: --run needs a regular expression\n", stderr);
        free(paths);
        return 2;
      }
      run_re = argv[++i];
    } else if (strncmp(a, "--run=", 6) == 0) {
      run_re = a + 6;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
      text_flags |= KFTEST_TEXT_VERBOSE;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      test_usage(stdout);
      free(paths);
      return 0;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "koreoctl test: unknown option '%s'\n", a);
      test_usage(stderr);
      free(paths);
      return 2;
    } else {
      paths[npaths++] = a;
    }
  }
  if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0 && strcmp(format, "junit") != 0) {
    fprintf(stderr, "koreoctl test: unknown output format '%s' (use text, json or junit)\n",
            format);
    free(paths);
    return 2;
  }
  collect col = {0};
  if (run_re) {
    int ec;
    PCRE2_SIZE off;
    col.re = pcre2_compile((PCRE2_SPTR)run_re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
    if (!col.re) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(ec, msg, sizeof msg);
      fprintf(stderr, "koreoctl test: --run: bad regular expression at offset %zu: %s\n",
              (size_t)off, (const char *)msg);
      free(paths);
      return 2;
    }
    col.md = pcre2_match_data_create_from_pattern(col.re, NULL);
  }
  if (npaths == 0) paths[npaths++] = ".";

  kdef_registry *reg = kdef_registry_new();
  kdef_diags diags = {0};
  kdef_load_paths(reg, paths, npaths, &diags);
  /* Problems that are not tied to a definition (unreadable files, YAML
   * syntax errors, documents without kind/name) may hide tests: they fail
   * the run.  Definition problems show up in the tests that use them. */
  bool load_failed = false;
  for (size_t i = 0; i < diags.n; i++) {
    const kdef_diag *d = &diags.items[i];
    char *s = kdef_diag_format(d);
    bool fatal = !d->warning && d->kind == KDEF_KIND_NONE;
    fprintf(stderr, "koreoctl test: %s%s\n", d->warning || !fatal ? "warning: " : "", s);
    free(s);
    if (fatal) load_failed = true;
  }
  kdef_diags_free(&diags);

  kdef_registry_each(reg, KDEF_FUNCTION_TEST, collect_test, &col);
  kftest_result *results = calloc(col.n ? col.n : 1, sizeof *results);
  if (!results) kv_oom();
  for (size_t i = 0; i < col.n; i++)
    kftest_run(reg, col.items[i], &results[i]);
  if (col.n == 0)
    fprintf(stderr, "koreoctl test: no FunctionTests found%s\n", run_re ? " matching --run" : "");

  double elapsed = mono_ms() - t0;
  char *out;
  if (strcmp(format, "json") == 0)
    out = kftest_report_json(results, col.n, elapsed);
  else if (strcmp(format, "junit") == 0)
    out = kftest_report_junit(results, col.n, elapsed);
  else
    out = kftest_report_text(results, col.n, elapsed, text_flags);
  fputs(out, stdout);
  free(out);

  kftest_summary s;
  kftest_summarize(results, col.n, &s);
  int rc = kftest_summary_ok(&s) && !load_failed ? 0 : 1;
  for (size_t i = 0; i < col.n; i++) {
    kftest_result_clear(&results[i]);
    kdef_unref(col.items[i]);
  }
  free(results);
  free(col.items);
  if (col.md) pcre2_match_data_free(col.md);
  if (col.re) pcre2_code_free(col.re);
  kdef_registry_free(reg);
  free(paths);
  return rc;
}
