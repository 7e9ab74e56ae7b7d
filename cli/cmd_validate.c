/*
 * cli/cmd_validate.c: `koreoctl validate [PATH...] [-o text|json] [-q]`
 * (issue 3 item 6): loads and prepares every definition under PATH (files
 * or directories, default "."), checks that every reference resolves, that
 * Workflows have no cycles and that the kinds' admission rules hold, and
 * prints every problem with its file, line and column.  Exit status: 0 when
 * there is no error (warnings allowed), 1 on any error, 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "koreo/definition.h"

static void validate_usage(FILE *f) {
  fputs("usage: koreoctl validate [PATH...] [-o text|json] [-q]\n"
        "  Load, prepare and check the Koreo definitions in PATH (files or\n"
        "  directories, recursively; default: the current directory).\n"
        "  -o text   one line per problem: FILE:LINE:COL: Kind/name: field: "
        "message\n"
        "  -o json   one JSON object per problem, then a summary object\n"
        "  -q        print only the problems, no summary line\n",
        f);
}

static int cmp_diag(const void *a, const void *b) {
  const kdef_diag *x = a, *y = b;
  int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");
  if (c) return c;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  if (x->col != y->col) return x->col < y->col ? -1 : 1;
  return 0;
}

static bool count_def(kdef_definition *d, void *arg) {
  (void)d;
  (*(size_t *)arg)++;
  return true;
}

static void print_json(const kdef_diag *d) {
  kv *m = kv_map_new(8);
  kv_map_set_str(m, "file", d->file ? kv_cstring(d->file) : kv_null());
  kv_map_set_str(m, "line", kv_int(d->line));
  kv_map_set_str(m, "column", kv_int(d->col));
  kv_map_set_str(m, "severity", kv_cstring(d->warning ? "warning" : "error"));
  kv_map_set_str(m, "kind",
                 d->kind == KDEF_KIND_NONE ? kv_null() : kv_cstring(kdef_kind_name(d->kind)));
  kv_map_set_str(m, "name", d->name ? kv_cstring(d->name) : kv_null());
  kv_map_set_str(m, "path", d->path ? kv_cstring(d->path) : kv_null());
  kv_map_set_str(m, "message", kv_cstring(d->message ? d->message : ""));
  char *s = kv_json_write(m, 0, NULL);
  puts(s);
  free(s);
  kv_unref(m);
}

/* cmd_validate: see commands.h. */
int cmd_validate(int argc, char **argv) {
  const char **paths = calloc((size_t)argc + 1, sizeof *paths);
  if (!paths) return 2;
  size_t np = 0;
  bool json = false, quiet = false;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      if (i + 1 >= argc) {
        validate_usage(stderr);
        free(paths);
        return 2;
      }
      const char *f = argv[++i];
      if (strcmp(f, "json") == 0)
        json = true;
      else if (strcmp(f, "text") != 0) {
        fprintf(stderr, "koreoctl validate: unknown output format '%s' (text or json)\n", f);
        free(paths);
        return 2;
      }
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      quiet = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      validate_usage(stdout);
      free(paths);
      return 0;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "koreoctl validate: unknown option '%s'\n", a);
      validate_usage(stderr);
      free(paths);
      return 2;
    } else
      paths[np++] = a;
  }
  if (np == 0) paths[np++] = ".";
  kdef_registry *reg = kdef_registry_new();
  kdef_diags diags = {0};
  kdef_load_paths(reg, paths, np, &diags);
  kdef_registry_check(reg, &diags);
  if (diags.n) qsort(diags.items, diags.n, sizeof *diags.items, cmp_diag);
  size_t ndefs = 0;
  kdef_registry_each(reg, KDEF_KIND_NONE, count_def, &ndefs);
  size_t errors = kdef_diags_errors(&diags);
  for (size_t i = 0; i < diags.n; i++) {
    if (json)
      print_json(&diags.items[i]);
    else {
      char *s = kdef_diag_format(&diags.items[i]);
      puts(s);
      free(s);
    }
  }
  if (json) {
    printf("{\"summary\": {\"definitions\": %zu, \"documents\": %zu, "
           "\"errors\": %zu, "
           "\"warnings\": %zu}}\n",
           ndefs, kv_len(kdef_registry_others(reg)), errors, diags.n - errors);
  } else if (!quiet) {
    printf("%zu definition%s checked, %zu error%s, %zu warning%s\n", ndefs, ndefs == 1 ? "" : "s",
           errors, errors == 1 ? "" : "s", diags.n - errors, diags.n - errors == 1 ? "" : "s");
  }
  kdef_diags_free(&diags);
  kdef_registry_free(reg);
  free(paths);
  return errors ? 1 : 0;
}
