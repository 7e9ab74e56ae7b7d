/*
 * tests/conformance/koreo_expr_conformance.c: `koreo-expr-conformance`,
 * the runner for the Koreo-expression differential corpus
 * (shared/conformance/koreo-expressions/, format and the compatibility
 * rule in its README.md).
 *
 *   koreo-expr-conformance [--cel-wins FILE] [--skip FILE] [--only TEXT] [-v]
 *                          FILE.jsonl...
 *
 * For every case: prepare `spec` in the case's mode (expression, map,
 * overlay, value_function) with the koreo/expr.h API in the Koreo CEL
 * environment, check the encoder's output against `encoded` (and the
 * overlay index against `overlay_index`), evaluate with `bindings`, and
 * judge under the compatibility rule:
 *  - expected success: the result equals `typed` exactly (types included,
 *    maps order-insensitive, NaN == NaN) and its native conversion
 *    (koreo_to_native) equals `value`;
 *  - expected failure: we fail at the same stage (compile / eval);
 *  - ids listed in the cel-wins file (default: cel-wins.jsonl beside the
 *    first cases file): the result must equal that file's `typed`.
 * Prints one line per failing case (id, expected, got) and ends with
 * "N passed, N failed, N skipped".  --only runs the cases whose id
 * contains TEXT; -v also prints our error message for passing error
 * cases.  --skip names a file of ids to skip, one "id<TAB>reason" a line
 * (# comments allowed); nothing else is ever skipped.  Exit status 1 when any case failed, 2 on
 * usage/IO errors.
 */
#include "koreo/cel.h"
#include "koreo/expr.h"
#include "koreo/json.h"
#include "typed_value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wins {
  kv *map; /* id -> typed value kv */
} wins;

static const char *str_field(const kv *m, const char *k) {
  const kv *v = kv_map_get_str(m, k);
  return v && v->kind == KV_STRING ? kv_str(v) : NULL;
}

/* Read a JSON-lines file; returns a list of parsed lines or NULL. */
static kv *read_jsonl(const char *path) {
  kv_parse_error pe;
  size_t len;
  char *text = kv_read_file(path, &len, &pe);
  if (!text) {
    fprintf(stderr, "koreo-expr-conformance: %s: %s\n", path, pe.msg);
    return NULL;
  }
  kv *out = kv_list_new(64);
  size_t lineno = 0;
  for (char *p = text; *p;) {
    char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    lineno++;
    if (n > 0) {
      kv *v = kv_json_parse(p, n, &pe);
      if (!v) {
        fprintf(stderr, "koreo-expr-conformance: %s:%zu: %s\n", path, lineno, pe.msg);
        kv_unref(out);
        free(text);
        return NULL;
      }
      kv_list_push(out, v);
    }
    p = nl ? nl + 1 : p + n;
  }
  free(text);
  return out;
}

/* Native value vs the corpus `value`: like kv_equal_strict (maps
 * unordered) except that non-finite doubles match the strings "NaN",
 * "Infinity", "-Infinity" the corpus writes for them. */
static bool native_equal(const kv *got, const kv *exp) {
  if (got->kind == KV_DOUBLE && !isfinite(got->u.d) && exp->kind == KV_STRING) {
    const char *want = isnan(got->u.d) ? "NaN" : got->u.d < 0 ? "-Infinity" : "Infinity";
    return strcmp(kv_str(exp), want) == 0;
  }
  if (got->kind != exp->kind) return false;
  if (got->kind == KV_LIST) {
    if (got->u.list.len != exp->u.list.len) return false;
    for (size_t i = 0; i < got->u.list.len; i++)
      if (!native_equal(got->u.list.items[i], exp->u.list.items[i])) return false;
    return true;
  }
  if (got->kind == KV_MAP) {
    if (got->u.map.len != exp->u.map.len) return false;
    for (size_t i = 0; i < got->u.map.len; i++) {
      const kv *ev = kv_map_get(exp, got->u.map.keys[i]);
      if (!ev || !native_equal(got->u.map.vals[i], ev)) return false;
    }
    return true;
  }
  return kv_equal_strict(got, exp, false);
}

static char *json_of(const kv *v) { return kv_json_write(v, 0, NULL); }

static char *typed_json(const kv *v) {
  kv *t = kv_to_typed_value(v);
  char *s = json_of(t);
  kv_unref(t);
  return s;
}

/* The outcome of running one case. */
typedef struct outcome {
  int stage; /* KOREO_STAGE_* */
  kv *value; /* on success */
  char message[1200];
  char mismatch[2048]; /* encoder / index mismatch, "" when none */
} outcome;

static void fail_with(outcome *o, const koreo_error *err) {
  o->stage = err->stage;
  snprintf(o->message, sizeof o->message, "%s", err->message);
}

/* Compare the prepared expression's encoding with the case's record. */
static void check_encoding(const kv *tc, const koreo_expr *e, outcome *o) {
  const kv *enc = kv_map_get_str(tc, "encoded");
  const char *src = e ? koreo_expr_source(e) : NULL;
  if (enc && enc->kind == KV_STRING) {
    if (!src || strcmp(src, kv_str(enc)) != 0)
      snprintf(o->mismatch, sizeof o->mismatch, "encoded: expected '%s', got '%s'", kv_str(enc),
               src ? src : "(no program)");
  } else if (src) {
    const kv *np = kv_map_get_str(tc, "no_program");
    if (np && np->kind == KV_BOOL && np->u.b)
      snprintf(o->mismatch, sizeof o->mismatch, "encoded: expected no program, got '%s'", src);
  }
  const kv *idx = kv_map_get_str(tc, "overlay_index");
  if (idx && !o->mismatch[0]) {
    const kv *got = e ? koreo_expr_overlay_index(e) : NULL;
    if (!got || !kv_equal_strict(got, idx, true)) {
      char *a = json_of(idx), *b = got ? json_of(got) : strdup("(none)");
      snprintf(o->mismatch, sizeof o->mismatch, "overlay_index: expected %s, got %s", a, b);
      free(a);
      free(b);
    }
  }
}

static kv *binding(const kv *bindings, const char *name) {
  return bindings && bindings->kind == KV_MAP ? kv_map_get_str(bindings, name) : NULL;
}

/* The value_function mode: a ValueFunction with optional `locals` (map)
 * and `return` (overlay), evaluated as spec section 4 says. */
static void run_value_function(const cel_env *env, const kv *spec, const kv *bindings,
                               const char *location, outcome *o) {
  koreo_error err;
  char loc[300];
  if (spec->kind != KV_MAP) {
    o->stage = KOREO_STAGE_PREPARE;
    snprintf(o->message, sizeof o->message, "%s: spec must be a map", location);
    return;
  }
  const kv *locals_spec = kv_map_get_str(spec, "locals");
  const kv *return_spec = kv_map_get_str(spec, "return");
  const kv *pre = kv_map_get_str(spec, "preconditions");
  const char *bad = NULL;
  if (locals_spec && locals_spec->kind != KV_MAP)
    bad = "spec.locals must be a map";
  else if (return_spec && return_spec->kind != KV_MAP)
    bad = "spec.return must be a map";
  else if (pre && pre->kind != KV_LIST)
    bad = "spec.preconditions must be a list";
  else if (!pre && !return_spec)
    bad = "spec must have `preconditions` or `return`";
  if (bad) {
    o->stage = KOREO_STAGE_PREPARE;
    snprintf(o->message, sizeof o->message, "%s: %s", location, bad);
    return;
  }
  snprintf(loc, sizeof loc, "%s:spec.preconditions", location);
  koreo_expr *pred = koreo_expr_prepare(env, pre, KOREO_SHAPE_PREDICATES, loc, &err);
  if (!pred) {
    fail_with(o, &err);
    return;
  }
  snprintf(loc, sizeof loc, "%s:spec.locals", location);
  koreo_expr *locals = koreo_expr_prepare(env, locals_spec, KOREO_SHAPE_MAP, loc, &err);
  if (!locals) {
    koreo_expr_free(pred);
    fail_with(o, &err);
    return;
  }
  snprintf(loc, sizeof loc, "%s:spec.return", location);
  koreo_expr *ret = koreo_expr_prepare(env, return_spec, KOREO_SHAPE_OVERLAY, loc, &err);
  if (!ret) {
    koreo_expr_free(pred);
    koreo_expr_free(locals);
    fail_with(o, &err);
    return;
  }
  const kv *inputs = binding(bindings, "inputs");
  const kv *base = binding(bindings, "resource");
  kv *vars = kv_map_new(3);
  kv_map_set_str(vars, "inputs", inputs ? kv_ref((kv *)inputs) : kv_null());
  if (base && koreo_truthy(base)) kv_map_set_str(vars, "resource", kv_ref((kv *)base));
  /* preconditions (spec 2.8): the first predicate whose assert is false
   * decides; `ok` continues, any other outcome is not a value */
  kv *failed = koreo_expr_eval(pred, vars, &err);
  if (!failed) {
    kv_unref(vars);
    fail_with(o, &err);
    goto out;
  }
  if (failed->kind == KV_LIST && failed->u.list.len > 0) {
    const kv *first = failed->u.list.items[0];
    const kv *ok = first->kind == KV_MAP ? kv_map_get_str(first, "ok") : NULL;
    if (!ok || ok->kind != KV_MAP) {
      char *j = json_of(first);
      o->stage = KOREO_STAGE_EVAL;
      snprintf(o->message, sizeof o->message, "%s:spec.preconditions: not Ok: %s", location, j);
      free(j);
      kv_unref(failed);
      kv_unref(vars);
      goto out;
    }
  }
  kv_unref(failed);
  if (koreo_expr_is_empty(ret)) { /* no return: locals are not evaluated */
    kv_unref(vars);
    o->stage = KOREO_STAGE_NONE;
    o->value = kv_null();
    goto out;
  }
  kv *lv = koreo_expr_eval(locals, vars, &err);
  kv_unref(vars);
  if (!lv) {
    fail_with(o, &err);
    goto out;
  }
  if (lv->kind == KV_NULL) {
    kv_unref(lv);
    lv = kv_map_new(0);
  }
  vars = kv_map_new(3);
  kv_map_set_str(vars, "inputs", inputs ? kv_ref((kv *)inputs) : kv_null());
  kv_map_set_str(vars, "locals", lv);
  o->value = koreo_expr_eval_overlay(ret, base, vars, &err);
  kv_unref(vars);
  if (!o->value)
    fail_with(o, &err);
  else
    o->stage = KOREO_STAGE_NONE;
out:
  koreo_expr_free(pred);
  koreo_expr_free(locals);
  koreo_expr_free(ret);
}

static bool run_case(const cel_env *env, const kv *tc, outcome *o) {
  memset(o, 0, sizeof *o);
  const char *mode = str_field(tc, "mode");
  const char *location = str_field(tc, "location");
  const kv *spec = kv_map_get_str(tc, "spec");
  const kv *bindings = kv_map_get_str(tc, "bindings");
  if (!mode || !spec) return false;
  koreo_error err;
  koreo_shape shape;
  if (!strcmp(mode, "expression"))
    shape = KOREO_SHAPE_EXPRESSION;
  else if (!strcmp(mode, "map"))
    shape = KOREO_SHAPE_MAP;
  else if (!strcmp(mode, "overlay"))
    shape = KOREO_SHAPE_OVERLAY;
  else if (!strcmp(mode, "value_function")) {
    run_value_function(env, spec, bindings, location ? location : "ValueFunction", o);
    return true;
  } else {
    return false;
  }
  koreo_expr *e = koreo_expr_prepare(env, spec, shape, location, &err);
  if (!e) {
    /* a prepare failure after encoding still has an encoding to check */
    const kv *enc = kv_map_get_str(tc, "encoded");
    if (enc && enc->kind == KV_STRING) {
      char eb[256];
      char *src = koreo_encode_shape(spec, shape, NULL, eb, sizeof eb);
      if (!src || strcmp(src, kv_str(enc)) != 0)
        snprintf(o->mismatch, sizeof o->mismatch, "encoded: expected '%s', got '%s'", kv_str(enc),
                 src ? src : eb);
      free(src);
    }
    fail_with(o, &err);
    return true;
  }
  check_encoding(tc, koreo_expr_is_empty(e) ? NULL : e, o);
  if (shape == KOREO_SHAPE_OVERLAY)
    o->value = koreo_expr_eval_overlay(e, binding(bindings, "resource"), bindings, &err);
  else
    o->value = koreo_expr_eval(e, bindings, &err);
  if (!o->value)
    fail_with(o, &err);
  else
    o->stage = KOREO_STAGE_NONE;
  koreo_expr_free(e);
  return true;
}

/* Keep a report on one line: control characters become spaces. */
static void one_line(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
}

static const char *stage_name(int stage) {
  return stage == KOREO_STAGE_PREPARE ? "compile" : stage == KOREO_STAGE_EVAL ? "eval" : "ok";
}

int main(int argc, char **argv) {
  const char *wins_path = NULL, *only = NULL, *skip_path = NULL;
  bool verbose = false;
  int nfiles = 0;
  const char **files = calloc((size_t)argc, sizeof *files);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--cel-wins") && i + 1 < argc)
      wins_path = argv[++i];
    else if (!strcmp(argv[i], "--skip") && i + 1 < argc)
      skip_path = argv[++i];
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "-v"))
      verbose = true;
    else if (argv[i][0] == '-') {
      fprintf(stderr,
              "usage: koreo-expr-conformance [--cel-wins FILE] [--skip FILE] [--only TEXT] [-v] "
              "FILE.jsonl...\n");
      free(files);
      return 2;
    } else
      files[nfiles++] = argv[i];
  }
  if (nfiles == 0) {
    fprintf(stderr,
            "usage: koreo-expr-conformance [--cel-wins FILE] [--skip FILE] [--only TEXT] [-v] "
            "FILE.jsonl...\n");
    free(files);
    return 2;
  }
  char default_wins[4096];
  if (!wins_path) {
    const char *slash = strrchr(files[0], '/');
    int dirlen = slash ? (int)(slash - files[0] + 1) : 0;
    snprintf(default_wins, sizeof default_wins, "%.*scel-wins.jsonl", dirlen, files[0]);
    wins_path = default_wins;
  }
  kv *wins = kv_map_new(16);
  {
    FILE *f = fopen(wins_path, "r");
    if (f) {
      fclose(f);
      kv *lines = read_jsonl(wins_path);
      if (!lines) {
        kv_unref(wins);
        free(files);
        return 2;
      }
      for (size_t i = 0; i < lines->u.list.len; i++) {
        const kv *l = lines->u.list.items[i];
        const char *id = str_field(l, "id");
        const kv *typed = kv_map_get_str(l, "typed");
        if (id && typed) kv_map_set_str(wins, id, kv_ref((kv *)typed));
      }
      kv_unref(lines);
    } else if (wins_path != default_wins) {
      fprintf(stderr, "koreo-expr-conformance: cannot open %s\n", wins_path);
      kv_unref(wins);
      free(files);
      return 2;
    }
  }

  kv *skips = kv_map_new(4);
  if (skip_path) {
    FILE *f = fopen(skip_path, "r");
    if (!f) {
      fprintf(stderr, "koreo-expr-conformance: cannot open %s\n", skip_path);
      kv_unref(skips);
      kv_unref(wins);
      free(files);
      return 2;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
      if (line[0] == '#' || line[0] == '\n') continue;
      char *tab = strchr(line, '\t');
      if (!tab || tab[1] == '\n' || !tab[1]) {
        fprintf(stderr, "koreo-expr-conformance: %s: a skip needs a reason: %s", skip_path, line);
        fclose(f);
        kv_unref(skips);
        kv_unref(wins);
        free(files);
        return 2;
      }
      *tab = 0;
      kv_map_set_str(skips, line, kv_bool(true));
    }
    fclose(f);
  }

  cel_env *env = cel_env_new_koreo();
  size_t npass = 0, nfail = 0, nskip = 0;
  for (int fi = 0; fi < nfiles; fi++) {
    kv *cases = read_jsonl(files[fi]);
    if (!cases) {
      cel_env_free(env);
      kv_unref(wins);
      kv_unref(skips);
      free(files);
      return 2;
    }
    for (size_t ci = 0; ci < cases->u.list.len; ci++) {
      const kv *tc = cases->u.list.items[ci];
      const char *id = str_field(tc, "id");
      if (!id) id = "(no id)";
      if (only && !strstr(id, only)) continue;
      if (kv_map_get_str(skips, id)) {
        nskip++;
        continue;
      }
      const kv *expected = kv_map_get_str(tc, "expected");
      outcome o;
      if (!expected || expected->kind != KV_MAP || !run_case(env, tc, &o)) {
        printf("FAIL %s: unknown mode or malformed case\n", id);
        nfail++;
        continue;
      }
      bool pass = false;
      char *want = NULL, *got = NULL;
      const kv *win = kv_map_get_str(wins, id);
      const kv *exp_err = kv_map_get_str(expected, "error");
      const kv *exp_typed = win ? win : kv_map_get_str(expected, "typed");
      if (exp_typed && (win || !exp_err)) {
        char terr[256];
        kv *want_v = typed_value_to_kv(exp_typed, terr, sizeof terr);
        if (!want_v) {
          printf("FAIL %s: bad expected value: %s\n", id, terr);
          nfail++;
          kv_unref(o.value);
          continue;
        }
        want = typed_json(want_v);
        if (o.stage == KOREO_STAGE_NONE) {
          got = typed_json(o.value);
          pass = kv_equal_strict(o.value, want_v, false);
          if (pass && !win) {
            const kv *exp_native = kv_map_get_str(expected, "value");
            kv *native = koreo_to_native(o.value);
            if (!exp_native || !native_equal(native, exp_native)) {
              pass = false;
              char *a = exp_native ? json_of(exp_native) : strdup("(none)");
              char *b = json_of(native);
              free(want);
              free(got);
              size_t la = strlen(a) + 16, lb = strlen(b) + 16;
              want = malloc(la);
              got = malloc(lb);
              snprintf(want, la, "native %s", a);
              snprintf(got, lb, "native %s", b);
              free(a);
              free(b);
            }
            kv_unref(native);
          }
        } else {
          size_t n = strlen(o.message) + 32;
          got = malloc(n);
          snprintf(got, n, "%s error: %s", stage_name(o.stage), o.message);
        }
        kv_unref(want_v);
      } else if (exp_err && exp_err->kind == KV_MAP) {
        const char *st = str_field(exp_err, "stage");
        int want_stage = st && !strcmp(st, "compile") ? KOREO_STAGE_PREPARE : KOREO_STAGE_EVAL;
        const char *msg = str_field(exp_err, "message");
        const char *cel_error = str_field(exp_err, "cel_error");
        size_t n = 64 + (cel_error ? strlen(cel_error) : msg ? strlen(msg) : 0);
        if (n > 400) n = 400;
        want = malloc(n);
        snprintf(want, n, "%s error (%s)", stage_name(want_stage),
                 cel_error ? cel_error
                 : msg     ? msg
                           : "uncaught exception");
        pass = o.stage == want_stage;
        if (o.stage == KOREO_STAGE_NONE) {
          got = typed_json(o.value);
        } else {
          size_t m = strlen(o.message) + 32;
          got = malloc(m);
          snprintf(got, m, "%s error: %s", stage_name(o.stage), o.message);
        }
        if (pass && verbose) printf("ok   %s: %s\n", id, got);
      } else {
        printf("SKIP %s: no expected outcome\n", id);
        nskip++;
        kv_unref(o.value);
        continue;
      }
      if (pass && o.mismatch[0]) {
        pass = false;
        free(want);
        free(got);
        want = strdup("matching encoding");
        got = strdup(o.mismatch);
      }
      if (pass) {
        npass++;
      } else {
        nfail++;
        one_line(want);
        one_line(got);
        printf("FAIL %s: expected %s; got %s\n", id, want, got);
      }
      free(want);
      free(got);
      kv_unref(o.value);
    }
    kv_unref(cases);
  }
  cel_env_free(env);
  kv_unref(wins);
  kv_unref(skips);
  free(files);
  printf("%zu passed, %zu failed, %zu skipped\n", npass, nfail, nskip);
  return nfail ? 1 : 0;
}
