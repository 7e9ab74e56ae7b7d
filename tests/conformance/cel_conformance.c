/*
 * tests/conformance/cel_conformance.c: `cel-conformance`, the runner for
 * the CEL conformance cases in shared/conformance/cel/ (JSON lines, format
 * in that folder's README.md).
 *
 *   cel-conformance [--skip FILE] [--min-pass PCT] FILE.jsonl...
 *
 * Each case runs in a standard environment with the extension libraries
 * its tags name; bindings, container, declarations and disabled macros
 * are honoured.  Prints one line per failing case (id, expected, got) and
 * ends with "N passed, N failed, N skipped".  A case is skipped only when
 * it needs protobuf message types or its id is listed in the skip file
 * (one "id<TAB>reason" per line; default: skip.txt beside this source,
 * passed by CMake).  Exit status: 0 when every run case passed, or when
 * --min-pass is given and the pass rate of run cases reaches PCT.
 */
#include "koreo/cel.h"
#include "koreo/json.h"
#include "typed_value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct skiplist {
  char **ids;
  size_t n;
} skiplist;

static void load_skips(const char *path, skiplist *s) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cel-conformance: cannot open skip file %s\n", path);
    exit(2);
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char *tab = strchr(line, '\t');
    if (!tab) {
      fprintf(stderr, "cel-conformance: %s: skip line without a reason: %s", path, line);
      exit(2);
    }
    *tab = 0;
    s->ids = realloc(s->ids, (s->n + 1) * sizeof *s->ids);
    s->ids[s->n++] = strdup(line);
  }
  fclose(f);
}

static bool skipped(const skiplist *s, const char *id) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->ids[i], id) == 0) return true;
  return false;
}

static bool has_tag(const kv *tc, const char *tag) {
  const kv *tags = kv_map_get_str(tc, "tags");
  if (!tags || tags->kind != KV_LIST) return false;
  for (size_t i = 0; i < tags->u.list.len; i++) {
    const kv *t = tags->u.list.items[i];
    if (t->kind == KV_STRING && strcmp(t->u.s.ptr, tag) == 0) return true;
  }
  return false;
}

static bool flag(const kv *tc, const char *key) {
  const kv *v = kv_map_get_str(tc, key);
  return v && v->kind == KV_BOOL && v->u.b;
}

static const char *str(const kv *tc, const char *key) {
  const kv *v = kv_map_get_str(tc, key);
  return v && v->kind == KV_STRING ? v->u.s.ptr : "";
}

static char *typed_json(const kv *v) {
  kv *t = kv_to_typed_value(v);
  char *s = kv_json_write(t, 0, NULL);
  kv_unref(t);
  return s;
}

/* Compare a result with an expected typed value: exact types, maps
 * order-insensitive, NaN == NaN. */
static bool matches_value(const kv *got, const kv *expected_typed, char *why, size_t n) {
  kv *exp = typed_value_to_kv(expected_typed, why, n);
  if (!exp) return false;
  bool ok = kv_equal_strict(got, exp, false);
  kv_unref(exp);
  return ok;
}

typedef enum { R_PASS, R_FAIL, R_SKIP } result;

static result run_case(const kv *tc, const skiplist *skips, char *detail, size_t dn) {
  const char *id = str(tc, "id");
  if (flag(tc, "needs_proto_messages") || skipped(skips, id)) return R_SKIP;
  const kv *expected = kv_map_get_str(tc, "expected");
  const char *matcher = expected ? str(expected, "matcher") : "";

  unsigned ext = 0;
  if (has_tag(tc, "ext:strings")) ext |= CEL_EXT_STRINGS;
  if (has_tag(tc, "ext:math")) ext |= CEL_EXT_MATH;
  if (has_tag(tc, "ext:encoders")) ext |= CEL_EXT_ENCODERS;
  if (has_tag(tc, "ext:bindings")) ext |= CEL_EXT_BINDINGS;
  if (has_tag(tc, "ext:optionals")) ext |= CEL_EXT_OPTIONALS;
  if (has_tag(tc, "ext:comprehensions_v2")) ext |= CEL_EXT_COMPREHENSIONS2;
  cel_env *env = cel_env_new_standard(ext);
  cel_env_set_container(env, str(tc, "container"));
  cel_env_disable_macros(env, flag(tc, "disable_macros"));
  if (!flag(tc, "disable_check")) {
    const kv *te = kv_map_get_str(tc, "type_env");
    for (size_t i = 0; te && te->kind == KV_LIST && i < te->u.list.len; i++) {
      const kv *d = te->u.list.items[i];
      if (kv_map_get_str(d, "ident")) cel_env_declare(env, str(d, "name"));
    }
  }
  /* bindings */
  kv *bindings = kv_map_new(4);
  const kv *b = kv_map_get_str(tc, "bindings");
  for (size_t i = 0; b && b->kind == KV_MAP && i < b->u.map.len; i++) {
    char err[256] = "";
    kv *v = typed_value_to_kv(b->u.map.vals[i], err, sizeof err);
    if (!v) {
      snprintf(detail, dn, "bad binding %s: %s", b->u.map.keys[i]->u.s.ptr, err);
      kv_unref(bindings);
      cel_env_free(env);
      return R_FAIL;
    }
    kv_map_set(bindings, kv_ref(b->u.map.keys[i]), v);
  }
  const kv *exprv = kv_map_get_str(tc, "expr");
  const char *expr = exprv && exprv->kind == KV_STRING ? exprv->u.s.ptr : "";
  size_t exprlen = exprv && exprv->kind == KV_STRING ? exprv->u.s.len : 0;
  cel_status st;
  cel_env_set_checking(env, !flag(tc, "disable_check"));
  cel_program *p = cel_compile(env, expr, exprlen, &st);
  result r = R_FAIL;
  if (!p) {
    snprintf(detail, dn, "compile error at %u:%u: %s", st.line, st.col, st.msg);
    goto done;
  }
  if (flag(tc, "check_only")) {
    r = R_PASS;
    goto done;
  }
  kv *got = cel_eval_value(p, bindings);
  if (strcmp(matcher, "eval_error") == 0) {
    if (got->kind == KV_ERROR) {
      r = R_PASS;
    } else {
      char *g = typed_json(got);
      snprintf(detail, dn, "expected an error (%s), got %s", str(expected, "message"), g);
      free(g);
    }
  } else {
    const kv *want = kv_map_get_str(expected, "value");
    if (got->kind == KV_ERROR) {
      char *w = want ? kv_json_write(want, 0, NULL) : strdup("?");
      snprintf(detail, dn, "expected %s, got error: %s", w, got->u.err.msg);
      free(w);
    } else if (want) {
      char why[256] = "";
      if (matches_value(got, want, why, sizeof why)) {
        r = R_PASS;
      } else {
        char *w = kv_json_write(want, 0, NULL), *g = typed_json(got);
        snprintf(detail, dn, "expected %s, got %s%s%s", w, g, *why ? " ; " : "", why);
        free(w);
        free(g);
      }
    } else {
      snprintf(detail, dn, "case has no expected value (matcher '%s')", matcher);
    }
  }
  kv_unref(got);
done:
  cel_program_free(p);
  kv_unref(bindings);
  cel_env_free(env);
  return r;
}

int main(int argc, char **argv) {
  skiplist skips = {0};
  double min_pass = -1;
  int first = 1;
  for (; first < argc && argv[first][0] == '-' && argv[first][1] == '-'; first++) {
    if (strcmp(argv[first], "--skip") == 0 && first + 1 < argc)
      load_skips(argv[++first], &skips);
    else if (strcmp(argv[first], "--min-pass") == 0 && first + 1 < argc)
      min_pass = atof(argv[++first]);
    else {
      fprintf(stderr, "usage: cel-conformance [--skip FILE] [--min-pass PCT] FILE.jsonl...\n");
      return 2;
    }
  }
  if (first >= argc) {
    fprintf(stderr, "usage: cel-conformance [--skip FILE] [--min-pass PCT] FILE.jsonl...\n");
    return 2;
  }
  size_t passed = 0, failed = 0, nskipped = 0;
  for (int a = first; a < argc; a++) {
    kv_parse_error perr;
    size_t len;
    char *text = kv_read_file(argv[a], &len, &perr);
    if (!text) {
      fprintf(stderr, "cel-conformance: %s: %s\n", argv[a], perr.msg);
      return 2;
    }
    size_t lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
      lineno++;
      next = strchr(line, '\n');
      size_t l = next ? (size_t)(next - line) : strlen(line);
      if (next) next++;
      if (l == 0) continue;
      kv *tc = kv_json_parse(line, l, &perr);
      if (!tc) {
        fprintf(stderr, "%s:%zu:%u: %s\n", argv[a], lineno, perr.col, perr.msg);
        failed++;
        continue;
      }
      char detail[2048] = "";
      switch (run_case(tc, &skips, detail, sizeof detail)) {
      case R_PASS: passed++; break;
      case R_SKIP: nskipped++; break;
      case R_FAIL:
        failed++;
        printf("FAIL %s: %s\n", str(tc, "id"), detail);
        break;
      }
      kv_unref(tc);
    }
    free(text);
  }
  for (size_t i = 0; i < skips.n; i++)
    free(skips.ids[i]);
  free(skips.ids);
  int rc = failed ? 1 : 0;
  if (min_pass >= 0) {
    double rate = passed + failed ? 100.0 * (double)passed / (double)(passed + failed) : 100.0;
    printf("pass rate %.2f%% (required %.2f%%)\n", rate, min_pass);
    rc = rate + 1e-9 >= min_pass ? 0 : 1;
  }
  printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, nskipped);
  return rc;
}
