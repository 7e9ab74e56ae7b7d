/*
 * tests/unit/test_koreo_expr.c: Koreo Expressions (koreo/expr.h, spec
 * 2.1, 2.2, 2.5-2.8, 9.1, 9.2): the value-spec encoder (numeric-looking
 * strings, `=` prefixes, quoting, multi-line strings, keys, doubles), the
 * prepared shapes and their errors, overlay index/application, predicate
 * lists, and the native conversion of results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// cmocka must come after the headers above

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/cel.h"
#include "koreo/expr.h"
#include "koreo/json.h"

static kv *json(const char *text) {
  kv_parse_error err;
  kv *v = kv_json_parse(text, strlen(text), &err);
  if (!v) fail_msg("bad test JSON %s: %s", text, err.msg);
  return v;
}

/* encode(JSON spec) must be exactly `want`. */
static void enc_is(const char *spec_json, const char *want) {
  kv *spec = json(spec_json);
  char err[128];
  size_t len = 0;
  char *src = koreo_encode(spec, &len, err, sizeof err);
  if (!src) fail_msg("encode %s failed: %s", spec_json, err);
  if (strcmp(src, want) != 0) fail_msg("encode %s: got '%s', want '%s'", spec_json, src, want);
  assert_int_equal(len, strlen(want));
  free(src);
  kv_unref(spec);
}

static void enc_str_is(const char *s, const char *want) {
  kv *spec = kv_cstring(s);
  char *src = koreo_encode(spec, NULL, NULL, 0);
  assert_non_null(src);
  if (strcmp(src, want) != 0) fail_msg("encode '%s': got '%s', want '%s'", s, src, want);
  free(src);
  kv_unref(spec);
}

/* ---- encoder (spec 2.1, 9.1) ------------------------------------------ */

static void test_encode_strings(void **state) {
  (void)state;
  enc_str_is("", "\"\"");
  enc_str_is("This is a plain old string.", "\"This is a plain old string.\"");
  enc_str_is("It's koreo", "\"It's koreo\"");
  enc_str_is("This is a \"test.\"", "\"\"\"This is a \\\"test.\\\"\"\"\"");
  enc_str_is("a \"\"\" b", "\"\"\"a \\\"\\\"\\\" b\"\"\"");
  /* every '"' gets one backslash, even after an existing one */
  enc_str_is("say \\\"x\\\" \"y\"", "\"\"\"say \\\\\"x\\\\\" \\\"y\\\"\"\"\"");
  /* backslashes are not escaped */
  enc_str_is("C:\\temp", "\"C:\\temp\"");
  enc_str_is("^\\d+$", "\"^\\d+$\"");
  /* `=` marks CEL; all leading `=` are removed */
  enc_str_is("=1 + 1", "1 + 1");
  enc_str_is("= 1 + 1", " 1 + 1");
  enc_str_is("==1", "1");
  enc_str_is("===true", "true");
  enc_str_is("=", "");
  enc_str_is(" =1 + 1", "\" =1 + 1\"");
  enc_str_is("a=b", "\"a=b\"");
  enc_str_is("=\"quoted\"\nx", "\"quoted\"\nx");
  /* multi-line means a '\n' (a lone CR is not) and is raw triple-quoted */
  enc_str_is("first line\nsecond line", "r\"\"\"first line\nsecond line\"\"\"");
  enc_str_is("a\r\nb", "r\"\"\"a\r\nb\"\"\"");
  enc_str_is("a\rb", "\"a\rb\"");
  enc_str_is("raw \\n here\nline2", "r\"\"\"raw \\n here\nline2\"\"\"");
  enc_str_is("say \"hi\"\nx", "r\"\"\"say \"hi\"\nx\"\"\"");
  enc_str_is("col1\tcol2", "\"col1\tcol2\"");
}

static void test_encode_numeric_strings(void **state) {
  (void)state;
  /* strings Python's int()/float() accept are emitted verbatim */
  enc_str_is("3213", "3213");
  enc_str_is("72.3", "72.3");
  enc_str_is(" 42 ", " 42 ");
  enc_str_is("007", "007");
  enc_str_is("1e3", "1e3");
  enc_str_is("+5", "+5");
  enc_str_is("1_000", "1_000");
  enc_str_is("nan", "nan");
  enc_str_is("-Infinity", "-Infinity");
  enc_str_is("42\n", "42\n");
  enc_str_is("\xef\xbc\x91\xef\xbc\x92", "\xef\xbc\x91\xef\xbc\x92"); /* full-width 12 */
  enc_str_is("\xd9\xa4\xd9\xa2", "\xd9\xa4\xd9\xa2");                 /* Arabic-Indic 42 */
  /* ... and nothing else */
  enc_str_is("0x10", "\"0x10\"");
  enc_str_is("1u", "\"1u\"");
  enc_str_is("true", "\"true\"");
  enc_str_is("null", "\"null\"");
  enc_str_is("0o17", "\"0o17\"");
  enc_str_is("1/2", "\"1/2\"");
  enc_str_is("1,000", "\"1,000\"");
  enc_str_is("500m", "\"500m\"");
  enc_str_is("v1.20", "\"v1.20\"");
}

static void test_numeric_grammar(void **state) {
  (void)state;
  static const struct {
    const char *s;
    bool numeric;
  } cases[] = {
      {"0", true},
      {"-0", true},
      {"+5", true},
      {".5", true},
      {"5.", true},
      {"+.5", true},
      {"-.5e-3", true},
      {"1.5e+2", true},
      {"1.e5", true},
      {"1e5_0", true},
      {"1_0e1_0", true},
      {"1_000", true},
      {"infinity", true},
      {"+inf", true},
      {"-nan", true},
      {"nAn", true},
      {"inF ", true},
      {"\t42\n", true},
      {"\xc2\xa0"
       "5",
       true},
      {"\xc2\x85"
       "5",
       true},
      {"\xd9\xa4\xd9\xa2.\xd9\xa5", true},
      {"", false},
      {" ", false},
      {"1__0", false},
      {"_1", false},
      {"1_", false},
      {"1_.5", false},
      {"1._5", false},
      {".e5", false},
      {"1e", false},
      {"1e_5", false},
      {"in f", false},
      {"infinit", false},
      {"0x10", false},
      {"\xc2\xb2", false},
      {"1 2", false},
      {"\x1c"
       "5",
       false},
      {"5\x1c", false},
      {".", false},
      {"-", false},
      {"e5", false},
      {"1e5.5", false},
      {"--1", false},
      {"nana", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    if (koreo_numeric_string(cases[i].s, strlen(cases[i].s)) != cases[i].numeric)
      fail_msg("koreo_numeric_string('%s') should be %d", cases[i].s, cases[i].numeric);
  /* an embedded NUL is never numeric */
  assert_false(koreo_numeric_string("1\0", 2));
}

static void test_encode_values(void **state) {
  (void)state;
  enc_is("3", "3");
  enc_is("-9223372036854775808", "-9223372036854775808");
  enc_is("99.3", "99.3");
  enc_is("9.0", "9.0");
  enc_is("1e+16", "1e+16");
  enc_is("1e-5", "1e-05");
  enc_is("-0.0", "-0.0");
  enc_is("true", "true");
  enc_is("false", "false");
  enc_is("null", "null");
  enc_is("[1, 2, 3]", "[1,2,3]");
  enc_is("[1.2, 2.1, 9.0]", "[1.2,2.1,9.0]");
  enc_is("[true, false]", "[true,false]");
  enc_is("[]", "[]");
  enc_is("{}", "{}");
  enc_is("{\"a\": \"=8 + 3\", \"b\": [\"x\", 2]}", "{\"a\":8 + 3,\"b\":[\"x\",2]}");
  enc_is("{\"null\": \"=null\", \"n\": null}", "{\"null\":null,\"n\":null}");
  enc_is("[1, \"two\", \"=3\", [\"=4\", 5], {\"six\": \"=6\"}, null, true]",
         "[1,\"two\",3,[4,5],{\"six\":6},null,true]");
  enc_is("{\"zeta\": 1, \"alpha\": 2, \"10\": 4}", "{\"zeta\":1,\"alpha\":2,\"10\":4}");
  enc_is("{\"=1 + 1\": \"=1 + 1\"}", "{\"=1 + 1\":1 + 1}");
  /* keys are pasted unescaped (quirk 5) */
  enc_is("{\"say \\\"hi\\\"\": 1}", "{\"say \"hi\"\":1}");
  enc_is("{\"a\\\\tb\": 1}", "{\"a\\tb\":1}");
  enc_is("{\"script\": \"echo one\\necho two\\n\", \"n\": \"=1\"}",
         "{\"script\":r\"\"\"echo one\necho two\n\"\"\",\"n\":1}");
  enc_is("{\"nested\": {\"a\": {\"b\": \"=inputs.x\"}}}", "{\"nested\":{\"a\":{\"b\":inputs.x}}}");

  /* non-string keys use Python's str() */
  kv *m = kv_map_new(4);
  kv_map_set(m, kv_int(1), kv_int(1));
  kv_map_set(m, kv_bool(true), kv_int(2));
  kv_map_set(m, kv_null(), kv_int(3));
  kv_map_set(m, kv_double(1.5), kv_int(4));
  char *src = koreo_encode(m, NULL, NULL, 0);
  assert_string_equal(src, "{\"1\":1,\"True\":2,\"None\":3,\"1.5\":4}");
  free(src);
  kv_unref(m);

  /* special doubles are emitted as Python prints them */
  kv *l = kv_list_new(2);
  kv_list_push(l, kv_double(INFINITY));
  kv_list_push(l, kv_double(NAN));
  src = koreo_encode(l, NULL, NULL, 0);
  assert_string_equal(src, "[inf,nan]");
  free(src);
  kv_unref(l);

  /* values without a CEL source form are an error, not a guess */
  l = kv_list_new(1);
  kv_list_push(l, kv_bytes("x", 1));
  char err[128] = "";
  assert_null(koreo_encode(l, NULL, err, sizeof err));
  assert_non_null(strstr(err, "bytes"));
  kv_unref(l);
}

static void test_truthy(void **state) {
  (void)state;
  const char *falsy[] = {"null", "false", "0", "0.0", "-0.0", "\"\"", "[]", "{}"};
  const char *truthy[] = {"true", "1", "-1", "0.5", "\"0\"", "\" \"", "[0]", "{\"a\":null}"};
  for (size_t i = 0; i < sizeof falsy / sizeof *falsy; i++) {
    kv *v = json(falsy[i]);
    if (koreo_truthy(v)) fail_msg("%s should be falsy", falsy[i]);
    kv_unref(v);
  }
  for (size_t i = 0; i < sizeof truthy / sizeof *truthy; i++) {
    kv *v = json(truthy[i]);
    if (!koreo_truthy(v)) fail_msg("%s should be truthy", truthy[i]);
    kv_unref(v);
  }
  kv *v = kv_uint(0);
  assert_false(koreo_truthy(v));
  kv_unref(v);
  v = kv_double(NAN);
  assert_true(koreo_truthy(v));
  kv_unref(v);
  v = kv_duration(0, 0);
  assert_false(koreo_truthy(v));
  kv_unref(v);
  v = kv_timestamp(0, 0);
  assert_true(koreo_truthy(v));
  kv_unref(v);
}

/* ---- prepare and evaluate (spec 2.2, 2.6) ------------------------------- */

static cel_env *g_env;

static int setup(void **state) {
  (void)state;
  g_env = cel_env_new_koreo();
  return g_env ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  cel_env_free(g_env);
  return 0;
}

static koreo_expr *prep(const char *spec_json, koreo_shape shape, const char *loc) {
  kv *spec = json(spec_json);
  koreo_error err;
  koreo_expr *e = koreo_expr_prepare(g_env, spec, shape, loc, &err);
  kv_unref(spec);
  if (!e) fail_msg("prepare %s failed: %s", spec_json, err.message);
  assert_int_equal(err.stage, KOREO_STAGE_NONE);
  return e;
}

static void prep_fails(const char *spec_json, koreo_shape shape, const char *loc,
                       const char *needle) {
  kv *spec = json(spec_json);
  koreo_error err;
  koreo_expr *e = koreo_expr_prepare(g_env, spec, shape, loc, &err);
  kv_unref(spec);
  if (e) fail_msg("prepare %s should fail", spec_json);
  assert_int_equal(err.stage, KOREO_STAGE_PREPARE);
  assert_string_equal(err.location, loc);
  if (!strstr(err.message, needle) || !strstr(err.message, loc))
    fail_msg("prepare %s: message '%s' lacks '%s' or the location", spec_json, err.message, needle);
}

/* Evaluate `spec_json` in `shape` with `bind_json` and compare with the
 * JSON `want` (types and key order included). */
static void eval_is(const char *spec_json, koreo_shape shape, const char *bind_json,
                    const char *want) {
  koreo_expr *e = prep(spec_json, shape, "spec.test");
  kv *b = json(bind_json);
  koreo_error err;
  kv *r = koreo_expr_eval(e, b, &err);
  if (!r) fail_msg("eval %s failed: %s", spec_json, err.message);
  kv *w = json(want);
  if (!kv_equal_strict(r, w, true)) {
    char *g = kv_json_write(r, 0, NULL);
    fail_msg("eval %s: got %s, want %s", spec_json, g, want);
  }
  kv_unref(w);
  kv_unref(r);
  kv_unref(b);
  koreo_expr_free(e);
}

static void test_no_program(void **state) {
  (void)state;
  const char *falsy[] = {"0", "0.0", "false", "\"\"", "null", "{}", "[]"};
  for (size_t i = 0; i < sizeof falsy / sizeof *falsy; i++) {
    for (int shape = KOREO_SHAPE_EXPRESSION; shape <= KOREO_SHAPE_PREDICATES; shape++) {
      koreo_expr *e = prep(falsy[i], (koreo_shape)shape, "spec.x");
      assert_true(koreo_expr_is_empty(e));
      assert_null(koreo_expr_source(e));
      koreo_error err;
      kv *r = koreo_expr_eval(e, NULL, &err);
      assert_non_null(r);
      assert_int_equal(r->kind, KV_NULL);
      kv_unref(r);
      koreo_expr_free(e);
    }
  }
  /* the string "0" is a program (the int 0) */
  eval_is("\"0\"", KOREO_SHAPE_EXPRESSION, "{}", "0");
}

static void test_shapes(void **state) {
  (void)state;
  koreo_expr *e = prep("\"=inputs.a + 1\"", KOREO_SHAPE_EXPRESSION, "expression");
  assert_string_equal(koreo_expr_source(e), "inputs.a + 1");
  assert_int_equal(koreo_expr_shape(e), KOREO_SHAPE_EXPRESSION);
  assert_string_equal(koreo_expr_location(e), "expression");
  assert_null(koreo_expr_overlay_index(e));
  koreo_expr_free(e);

  eval_is("\"=inputs.a + 1\"", KOREO_SHAPE_EXPRESSION, "{\"inputs\":{\"a\":2}}", "3");
  eval_is("\"This is a \\\"test.\\\"\"", KOREO_SHAPE_EXPRESSION, "{}",
          "\"This is a \\\"test.\\\"\"");
  eval_is("\"17171\"", KOREO_SHAPE_EXPRESSION, "{}", "17171");
  eval_is("\"C:\\\\temp\"", KOREO_SHAPE_EXPRESSION, "{}", "\"C:\\temp\"");
  eval_is("\"raw \\\\n\\nx\"", KOREO_SHAPE_EXPRESSION, "{}", "\"raw \\\\n\\nx\"");
  eval_is("{\"a\": 1, \"b\": [\"=inputs.x\", \"y\"], \"c\": {\"d\": \"=inputs.x * 2\"}}",
          KOREO_SHAPE_MAP, "{\"inputs\":{\"x\":4}}", "{\"a\":1,\"b\":[4,\"y\"],\"c\":{\"d\":8}}");

  prep_fails("\"=inputs\"", KOREO_SHAPE_MAP, "spec.locals",
             "Malformed spec.locals, expected a mapping");
  prep_fails("[\"=1\"]", KOREO_SHAPE_MAP, "spec.locals", "expected a mapping");
  prep_fails("\"={'a': 1}\"", KOREO_SHAPE_OVERLAY, "spec.return", "expected a mapping");
  prep_fails("{\"a\": 1}", KOREO_SHAPE_PREDICATES, "spec.preconditions", "expected a list");
}

static void test_parse_error(void **state) {
  (void)state;
  kv *spec = json("{\"ok\": \"=inputs.a\", \"bad\": \"=inputs.(\"}");
  koreo_error err;
  assert_null(koreo_expr_prepare(g_env, spec, KOREO_SHAPE_MAP, "spec.locals", &err));
  kv_unref(spec);
  assert_int_equal(err.stage, KOREO_STAGE_PREPARE);
  assert_int_equal(err.line, 1);
  assert_true(err.col > 20);
  assert_non_null(strstr(err.message, "spec.locals"));
  assert_non_null(strstr(err.message, "{\"ok\":inputs.a,\"bad\":inputs.(}"));
  /* unparsable CEL from the encoder's quirks fails at prepare time */
  prep_fails("\"+5\"", KOREO_SHAPE_EXPRESSION, "expression", "line 1");
  prep_fails("\"=\"", KOREO_SHAPE_EXPRESSION, "expression", "line 1");
  prep_fails("{\"say \\\"hi\\\"\": 1}", KOREO_SHAPE_EXPRESSION, "expression", "line 1");
  prep_fails("\"line1\\nsay \\\"hi\\\"\"", KOREO_SHAPE_EXPRESSION, "expression", "line 2");
}

static void test_eval_error(void **state) {
  (void)state;
  koreo_expr *e = prep("{\"used\": \"=inputs.a\", \"unused\": \"=inputs.missing\"}",
                       KOREO_SHAPE_MAP, "Fn:x:spec.locals");
  kv *b = json("{\"inputs\":{\"a\":1}}");
  koreo_error err;
  assert_null(koreo_expr_eval(e, b, &err));
  assert_int_equal(err.stage, KOREO_STAGE_EVAL);
  assert_string_equal(err.location, "Fn:x:spec.locals");
  assert_non_null(strstr(err.message, "Error evaluating `Fn:x:spec.locals`"));
  assert_non_null(strstr(err.message, "missing"));
  assert_int_equal(err.line, 1);
  assert_true(err.col > 0);
  kv_unref(b);
  /* evaluating again works the same way (programs are reusable) */
  b = json("{\"inputs\":{\"a\":1,\"missing\":2}}");
  kv *r = koreo_expr_eval(e, b, &err);
  assert_non_null(r);
  assert_int_equal(err.stage, KOREO_STAGE_NONE);
  kv_unref(r);
  kv_unref(b);
  koreo_expr_free(e);

  /* bare numeric words are identifiers: an evaluation error */
  e = prep("\"nan\"", KOREO_SHAPE_EXPRESSION, "expression");
  assert_null(koreo_expr_eval(e, NULL, &err));
  assert_int_equal(err.stage, KOREO_STAGE_EVAL);
  koreo_expr_free(e);
}

/* ---- overlays (spec 2.7, 9.2) --------------------------------------------- */

static void test_overlay_index(void **state) {
  (void)state;
  koreo_expr *e =
      prep("{\"a\": 1, \"b\": {\"c\": \"=x\", \"d\": [1]}, \"e\": {}}", KOREO_SHAPE_OVERLAY, "o");
  assert_string_equal(koreo_expr_source(e), "[1,x,[1],{}]");
  kv *want = json("{\"a\":0,\"b\":{\"c\":1,\"d\":2},\"e\":3}");
  assert_true(kv_equal_strict(koreo_expr_overlay_index(e), want, true));
  kv_unref(want);
  koreo_expr_free(e);
  /* overlay keys never pass through CEL: no unescaping */
  e = prep("{\"a\\\\tb\": \"17171\"}", KOREO_SHAPE_OVERLAY, "o");
  assert_string_equal(koreo_expr_source(e), "[17171]");
  kv *r = koreo_expr_eval_overlay(e, NULL, NULL, NULL);
  want = json("{\"a\\\\tb\": 17171}");
  assert_true(kv_equal_strict(r, want, true));
  kv_unref(want);
  kv_unref(r);
  koreo_expr_free(e);
  kv *spec = json("{\"x\":{\"y\":\"=1\"}}");
  char *src = koreo_encode_shape(spec, KOREO_SHAPE_OVERLAY, NULL, NULL, 0);
  assert_string_equal(src, "[1]");
  free(src);
  kv_unref(spec);
}

static void apply_is(const char *base, const char *index, const char *values, const char *want) {
  kv *b = json(base), *i = json(index), *v = json(values), *w = json(want);
  kv *r = koreo_overlay_apply(b, i, v);
  if (!kv_equal_strict(r, w, true)) {
    char *g = kv_json_write(r, 0, NULL);
    fail_msg("apply onto %s: got %s, want %s", base, g, want);
  }
  kv_unref(r);
  kv_unref(b);
  kv_unref(i);
  kv_unref(v);
  kv_unref(w);
}

static void test_overlay_apply(void **state) {
  (void)state;
  /* existing top-level scalars and lists are replaced, others kept */
  apply_is("{\"a\":1,\"l\":[1,2],\"k\":\"keep\"}", "{\"a\":0,\"l\":1}", "[5,[3]]",
           "{\"a\":5,\"l\":[3],\"k\":\"keep\"}");
  /* new keys are appended in index order */
  apply_is("{\"k\":1}", "{\"z\":0,\"a\":1}", "[1,2]", "{\"k\":1,\"z\":1,\"a\":2}");
  /* nested literal maps merge at every level */
  apply_is("{\"a\":{\"b\":{\"c\":0,\"keep\":1},\"keep\":2}}",
           "{\"a\":{\"b\":{\"c\":0,\"d\":1},\"e\":2}}", "[5,\"lit\",2]",
           "{\"a\":{\"b\":{\"c\":5,\"keep\":1,\"d\":\"lit\"},\"keep\":2,\"e\":2}}");
  /* missing or non-map intermediates start empty; lists of maps are values */
  apply_is("{\"spec\":[1,2]}", "{\"spec\":{\"a\":0},\"x\":{\"y\":{\"z\":1}}}", "[1,[{\"m\":1}]]",
           "{\"spec\":{\"a\":1},\"x\":{\"y\":{\"z\":[{\"m\":1}]}}}");
  /* a leaf that is a map replaces the whole subtree */
  apply_is("{\"metadata\":{\"labels\":{\"a\":\"b\"},\"name\":\"n\"}}", "{\"metadata\":0}",
           "[{\"name\":\"m\"}]", "{\"metadata\":{\"name\":\"m\"}}");
  apply_is("{\"spec\":{\"replicas\":3}}", "{\"spec\":0}", "[{}]", "{\"spec\":{}}");
}

static void test_eval_overlay(void **state) {
  (void)state;
  koreo_expr *e = prep("{\"spec\": {\"replicas\": \"=resource.spec.replicas + inputs.n\"}, "
                       "\"kind\": \"Thing\"}",
                       KOREO_SHAPE_OVERLAY, "spec.return");
  kv *base = json("{\"spec\":{\"replicas\":2,\"paused\":false},\"status\":{}}");
  kv *b = json("{\"inputs\":{\"n\":1},\"resource\":\"ignored: the base is bound\"}");
  koreo_error err;
  kv *r = koreo_expr_eval_overlay(e, base, b, &err);
  if (!r) fail_msg("%s", err.message);
  kv *want = json("{\"spec\":{\"replicas\":3,\"paused\":false},\"status\":{},\"kind\":\"Thing\"}");
  assert_true(kv_equal_strict(r, want, true));
  kv_unref(want);
  kv_unref(r);
  /* the base is unchanged */
  want = json("{\"spec\":{\"replicas\":2,\"paused\":false},\"status\":{}}");
  assert_true(kv_equal_strict(base, want, true));
  kv_unref(want);
  kv_unref(base);

  /* no base: `resource` is {} and a missing field is an eval error */
  assert_null(koreo_expr_eval_overlay(e, NULL, b, &err));
  assert_int_equal(err.stage, KOREO_STAGE_EVAL);
  assert_non_null(strstr(err.message, "spec.return"));
  /* a base that is not a map is an evaluation error */
  base = json("[1]");
  assert_null(koreo_expr_eval_overlay(e, base, b, &err));
  assert_int_equal(err.stage, KOREO_STAGE_EVAL);
  kv_unref(base);
  kv_unref(b);
  koreo_expr_free(e);

  /* an error in one leaf fails the whole overlay */
  e = prep("{\"good\": 1, \"nested\": {\"bad\": \"=inputs.missing\"}}", KOREO_SHAPE_OVERLAY,
           "spec.return");
  b = json("{\"inputs\":{}}");
  assert_null(koreo_expr_eval_overlay(e, NULL, b, &err));
  assert_int_equal(err.stage, KOREO_STAGE_EVAL);
  kv_unref(b);
  koreo_expr_free(e);
}

static void test_predicates(void **state) {
  (void)state;
  koreo_expr *e =
      prep("[{\"assert\": \"=inputs.a > 0\", \"permFail\": {\"message\": \"neg\"}},"
           " {\"assert\": \"=inputs.b\", \"skip\": {\"message\": \"=\\\"off \\\" + inputs.m\"}}]",
           KOREO_SHAPE_PREDICATES, "spec.preconditions");
  assert_non_null(strstr(koreo_expr_source(e), ".filter(predicate, !predicate.assert)"));
  kv *b = json("{\"inputs\":{\"a\":1,\"b\":false,\"m\":\"x\"}}");
  koreo_error err;
  kv *r = koreo_expr_eval(e, b, &err);
  if (!r) fail_msg("%s", err.message);
  kv *want = json("[{\"assert\":false,\"skip\":{\"message\":\"off x\"}}]");
  assert_true(kv_equal_strict(r, want, true));
  kv_unref(want);
  kv_unref(r);
  kv_unref(b);
  koreo_expr_free(e);
}

/* ---- native conversion (spec 2.5, quirk 23) ------------------------------ */

static void test_native(void **state) {
  (void)state;
  kv *m = kv_map_new(8);
  kv_map_set_str(m, "b", kv_bool(true));
  kv_map_set_str(m, "zero", kv_int(0));
  kv_map_set_str(m, "u", kv_uint(5));
  kv_map_set_str(m, "d", kv_double(2.0));
  kv_map_set_str(m, "bytes", kv_bytes("hello", 5));
  kv *ts = kv_timestamp(1704067200 - 5 * 3600, 500000000); /* 2024-01-01T00:00:00.5+05:00 */
  ts->u.t.off = 5 * 3600;
  kv_map_set_str(m, "ts", ts);
  kv_map_set_str(m, "utc", kv_timestamp(1704067200, 0));
  kv_map_set_str(m, "neg", kv_duration(-1, -500000000));
  kv_map_set_str(m, "ms", kv_duration(0, 100000000));
  kv *inner = kv_map_new(4);
  kv_map_set(inner, kv_bool(true), kv_int(1));
  kv_map_set(inner, kv_int(2), kv_int(2));
  kv_map_set(inner, kv_null(), kv_int(3));
  kv_map_set(inner, kv_double(1.5), kv_int(4));
  kv_map_set_str(m, "keys", inner);
  kv *n = koreo_to_native(m);
  kv *want = json("{\"b\":true,\"zero\":0,\"u\":5,\"d\":2.0,\"bytes\":\"aGVsbG8=\","
                  "\"ts\":\"2024-01-01T00:00:00+05:00\",\"utc\":\"2024-01-01T00:00:00Z\","
                  "\"neg\":\"-1s\",\"ms\":\"0s\","
                  "\"keys\":{\"true\":1,\"2\":2,\"null\":3,\"1.5\":4}}");
  if (!kv_equal_strict(n, want, true)) {
    char *g = kv_json_write(n, 0, NULL);
    fail_msg("native: got %s", g);
  }
  kv_unref(want);
  kv_unref(n);
  kv_unref(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_strings),  cmocka_unit_test(test_encode_numeric_strings),
      cmocka_unit_test(test_numeric_grammar), cmocka_unit_test(test_encode_values),
      cmocka_unit_test(test_truthy),          cmocka_unit_test(test_no_program),
      cmocka_unit_test(test_shapes),          cmocka_unit_test(test_parse_error),
      cmocka_unit_test(test_eval_error),      cmocka_unit_test(test_overlay_index),
      cmocka_unit_test(test_overlay_apply),   cmocka_unit_test(test_eval_overlay),
      cmocka_unit_test(test_predicates),      cmocka_unit_test(test_native),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
