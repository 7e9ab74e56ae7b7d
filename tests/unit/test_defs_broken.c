/*
 * tests/unit/test_defs_broken.c: the broken-definitions corpus
 * (tests/defs/broken/, issue 3 acceptance): every file holds one mistake
 * and lists what `koreoctl validate` must report for it in header lines
 *
 *     # expect: LINE:COL: message substring
 *
 * Each file is loaded and checked on its own (kdef_load_paths +
 * kdef_registry_check, what `koreoctl validate FILE` does).  Every expected
 * diagnostic must be reported at that file, line and column with that text,
 * and every error reported must be one of the expected ones.  The corpus
 * must hold at least 40 files.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "defs_test_util.h"
#include "koreo/definition.h"

#include <cmocka.h>

typedef struct expect {
  unsigned line, col;
  char text[512];
  bool seen;
} expect;

static size_t read_expects(const char *path, expect *out, size_t cap) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char buf[1024];
  size_t n = 0;
  while (fgets(buf, sizeof buf, f)) {
    unsigned l, c;
    int off = 0;
    if (sscanf(buf, "# expect: %u:%u: %n", &l, &c, &off) == 2 && off > 0 && n < cap) {
      out[n].line = l;
      out[n].col = c;
      snprintf(out[n].text, sizeof out[n].text, "%s", buf + off);
      out[n].text[strcspn(out[n].text, "\n")] = 0;
      out[n].seen = false;
      n++;
    }
  }
  fclose(f);
  return n;
}

static bool check_file(const char *path, const char *name) {
  expect ex[16];
  size_t nex = read_expects(path, ex, 16);
  if (nex == 0) {
    print_error("%s: no '# expect: LINE:COL: text' line\n", name);
    return false;
  }
  kdef_registry *r = kdef_registry_new();
  kdef_diags d = {0};
  const char *paths[] = {path};
  size_t errors = kdef_load_paths(r, paths, 1, &d);
  errors += kdef_registry_check(r, &d);
  bool ok = errors > 0;
  for (size_t i = 0; i < d.n; i++) {
    const kdef_diag *g = &d.items[i];
    if (g->warning) continue;
    bool matched = false;
    for (size_t k = 0; k < nex; k++) {
      if (g->line == ex[k].line && g->col == ex[k].col && contains(g->message, ex[k].text) &&
          g->file && strcmp(g->file, path) == 0) {
        ex[k].seen = true;
        matched = true;
      }
    }
    if (!matched) {
      char *s = kdef_diag_format(g);
      print_error("%s: unexpected diagnostic: %s\n", name, s);
      free(s);
      ok = false;
    }
  }
  for (size_t k = 0; k < nex; k++)
    if (!ex[k].seen) {
      print_error("%s: expected %u:%u: %s -- not reported\n", name, ex[k].line, ex[k].col,
                  ex[k].text);
      ok = false;
    }
  kdef_diags_free(&d);
  kdef_registry_free(r);
  return ok;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_broken_corpus(void **state) {
  (void)state;
  const char *data = getenv("KOREO_TEST_DATA");
  assert_non_null(data);
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/../defs/broken", data);
  DIR *dp = opendir(dir);
  assert_non_null(dp);
  char *names[256];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(dp)) && n < 256) {
    size_t len = strlen(de->d_name);
    if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0) names[n++] = strdup(de->d_name);
  }
  closedir(dp);
  qsort(names, n, sizeof *names, cmp_names);
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    if (!check_file(path, names[i])) failed++;
    free(names[i]);
  }
  if (failed) print_error("%zu of %zu broken definitions not diagnosed as expected\n", failed, n);
  assert_int_equal(failed, 0);
  assert_true(n >= 40);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_broken_corpus),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
