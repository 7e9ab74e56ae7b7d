/*
 * tests/unit/test_koreo_functions.c: Koreo's 19 extension functions
 * (core/cel/lib_koreo.c, spec 2.4 and 9.3, quirks 7, 8, 25, 26), called
 * directly through the cel_koreo_defs table with already-evaluated
 * arguments, as the evaluator calls them.
 *
 * Built by CMake against libkoreo.  It can also be built on its own with
 * -DKOREO_KOREO_STANDALONE_TEST and only core/value.c, core/json.c and
 * core/cel/lib_koreo.c: then this file supplies the three error helpers
 * the functions use (normally in core/cel/eval.c).
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

#include "cel/cel_impl.h"
#include "koreo/json.h"

#ifdef KOREO_KOREO_STANDALONE_TEST
const char *cel_type_name(const kv *v) {
  static const char *names[] = {"null_type",
                                "bool",
                                "int",
                                "uint",
                                "double",
                                "string",
                                "bytes",
                                "list",
                                "map",
                                "google.protobuf.Timestamp",
                                "google.protobuf.Duration",
                                "type",
                                "error"};
  return v->kind < sizeof names / sizeof *names ? names[v->kind] : "error";
}
kv *cel_errorf(const cel_call *c, cel_error_code code, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return kv_error(code, c ? (int32_t)c->where : -1, "%s", buf);
}
kv *cel_no_overload(const cel_call *c, kv *const *args, size_t n) {
  (void)args;
  (void)n;
  return cel_errorf(c, CEL_ERR_NO_OVERLOAD, "no matching overload for '%s'", c->name);
}
#endif

/* ---- helpers ------------------------------------------------------------ */

static kv *json(const char *text) {
  kv_parse_error err;
  kv *v = kv_json_parse(text, strlen(text), &err);
  if (!v) fail_msg("bad test JSON %s: %s", text, err.msg);
  return v;
}

static const cel_fn_def *def(const char *name) {
  for (size_t i = 0; i < cel_koreo_ndefs; i++)
    if (!strcmp(cel_koreo_defs[i].name, name)) return &cel_koreo_defs[i];
  fail_msg("no Koreo function %s", name);
  return NULL;
}

/* Call `name` with the arguments of a JSON list (args[0] is the receiver
 * of a member call). */
static kv *callv(const char *name, kv *args) {
  cel_call c = {.env = NULL, .where = 7, .name = name};
  kv *r = def(name)->fn(&c, args->u.list.items, args->u.list.len);
  return r;
}

static kv *call(const char *name, const char *args_json) {
  kv *args = json(args_json);
  kv *r = callv(name, args);
  kv_unref(args);
  return r;
}

static char *show(const kv *v) {
  if (v->kind == KV_ERROR) {
    char *s = malloc(strlen(v->u.err.msg) + 16);
    sprintf(s, "error: %s", v->u.err.msg);
    return s;
  }
  return kv_json_write(v, 0, NULL);
}

/* The result must equal the JSON value `want`, types and key order
 * included. */
static void check_value(kv *got, const char *want, const char *what) {
  kv *w = json(want);
  if (!kv_equal_strict(got, w, true)) {
    char *g = show(got);
    fail_msg("%s: got %s, want %s", what, g, want);
  }
  kv_unref(w);
  kv_unref(got);
}

static void expect(const char *name, const char *args, const char *want) {
  kv *r = call(name, args);
  char what[512];
  snprintf(what, sizeof what, "%s%s", name, args);
  check_value(r, want, what);
}

/* The call must fail with `code` and a message containing `needle`. */
static void expect_err(const char *name, const char *args, cel_error_code code,
                       const char *needle) {
  kv *r = call(name, args);
  if (r->kind != KV_ERROR) {
    char *g = show(r);
    fail_msg("%s%s: got %s, want an error containing '%s'", name, args, g, needle);
  }
  if ((cel_error_code)r->u.err.code != code || !strstr(r->u.err.msg, needle))
    fail_msg("%s%s: got error %d '%s', want %d '...%s...'", name, args, r->u.err.code, r->u.err.msg,
             code, needle);
  assert_int_equal(r->u.err.where, 7); /* the call's position */
  kv_unref(r);
}

static void expect_str(const char *name, kv *args, const char *want) {
  kv *r = callv(name, args);
  kv_unref(args);
  if (r->kind != KV_STRING || strlen(want) != r->u.s.len || memcmp(kv_str(r), want, r->u.s.len)) {
    char *g = show(r);
    fail_msg("%s: got %s, want \"%s\"", name, g, want);
  }
  kv_unref(r);
}

static kv *list2(kv *a, kv *b) {
  kv *l = kv_list_new(2);
  kv_list_push(l, a);
  if (b) kv_list_push(l, b);
  return l;
}

/* ---- the table -------------------------------------------------------- */

static void test_table(void **state) {
  (void)state;
  static const char *names[] = {
      "self_ref",  "to_ref",      "group_ref",  "kindless_ref", "config_connect_ready",
      "overlay",   "flatten",     "lower",      "strip",        "rstrip",
      "split",     "split_first", "split_last", "split_index",  "to_json",
      "from_json", "b64encode",   "b64decode",  "replace"};
  assert_int_equal(cel_koreo_ndefs, 19);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    const cel_fn_def *d = def(names[i]);
    assert_int_equal(d->style & CEL_FN_BOTH, CEL_FN_BOTH);
    assert_false(d->style & CEL_FN_NONSTRICT);
    assert_non_null(d->fn);
  }
}

/* ---- references ----------------------------------------------------------- */

static void test_self_ref(void **state) {
  (void)state;
  expect("self_ref",
         "[{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
         "\"namespace\":\"prod\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"replicas\":2}}]",
         "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"name\":\"web\",\"namespace\":"
         "\"prod\"}");
  /* result order is fixed whatever the input order */
  expect(
      "self_ref",
      "[{\"metadata\":{\"namespace\":\"ns\",\"name\":\"n\"},\"kind\":\"K\",\"apiVersion\":\"v1\"}]",
      "{\"apiVersion\":\"v1\",\"kind\":\"K\",\"name\":\"n\",\"namespace\":\"ns\"}");
  /* non-string values are copied as they are (quirk 25) */
  expect("self_ref",
         "[{\"apiVersion\":1,\"kind\":[\"K\"],\"metadata\":{\"name\":7,\"namespace\":{\"a\":1}}}]",
         "{\"apiVersion\":1,\"kind\":[\"K\"],\"name\":7,\"namespace\":{\"a\":1}}");
  expect_err("self_ref", "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\",\"namespace\":\"s\"}}]",
             CEL_ERR_INVALID, "Missing `apiVersion`.");
  expect_err("self_ref", "[{\"apiVersion\":\"\",\"kind\":\"K\"}]", CEL_ERR_INVALID,
             "Missing `apiVersion`.");
  expect_err("self_ref", "[{\"apiVersion\":\"v1\",\"metadata\":{}}]", CEL_ERR_INVALID,
             "Missing `kind`.");
  expect_err("self_ref", "[{\"apiVersion\":\"v1\",\"kind\":\"K\"}]", CEL_ERR_INVALID,
             "Missing `metadata`.");
  expect_err("self_ref", "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{}}]",
             CEL_ERR_INVALID, "Missing `metadata`.");
  expect_err("self_ref",
             "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"namespace\":\"ns\"}}]",
             CEL_ERR_INVALID, "Missing `metadata.name`.");
  expect_err(
      "self_ref",
      "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"name\":0,\"namespace\":\"s\"}}]",
      CEL_ERR_INVALID, "Missing `metadata.name`.");
  expect_err(
      "self_ref",
      "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"name\":null,\"namespace\":\"s\"}}]",
      CEL_ERR_INVALID, "Missing `metadata.name`.");
  /* cluster-scoped objects have no namespace: an error */
  expect_err(
      "self_ref",
      "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"name\":\"n\",\"namespace\":\"\"}}]",
      CEL_ERR_INVALID, "Missing `metadata.namespace`.");
  expect_err("self_ref", "[\"apps/v1\"]", CEL_ERR_NO_OVERLOAD, "self_ref");
  expect_err("self_ref", "[null]", CEL_ERR_NO_OVERLOAD, "self_ref");
  expect_err("self_ref", "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":\"m\"}]",
             CEL_ERR_NO_OVERLOAD, "self_ref");
  expect_err("self_ref", "[{}, 1]", CEL_ERR_NO_OVERLOAD, "self_ref");
  expect_err("self_ref", "[]", CEL_ERR_NO_OVERLOAD, "self_ref");
}

static void test_to_ref(void **state) {
  (void)state;
  expect("to_ref", "[{\"name\":\"n\"}]", "{\"name\":\"n\"}");
  expect("to_ref",
         "[{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"name\":\"c\",\"namespace\":\"t\",\"uid\":"
         "\"x\"}]",
         "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"name\":\"c\",\"namespace\":\"t\"}");
  expect("to_ref", "[{\"external\":\"gs://b\"}]", "{\"external\":\"gs://b\"}");
  /* with external, name and namespace are ignored */
  expect("to_ref",
         "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"external\":\"e\",\"name\":\"n\",\"namespace\":"
         "\"s\"}]",
         "{\"apiVersion\":\"v1\",\"kind\":\"K\",\"external\":\"e\"}");
  expect("to_ref", "[{\"name\":\"n\",\"namespace\":\"\"}]", "{\"name\":\"n\"}");
  expect("to_ref", "[{\"apiVersion\":\"\",\"kind\":0,\"name\":\"n\"}]", "{\"name\":\"n\"}");
  expect_err("to_ref", "[{\"external\":\"\",\"name\":\"n\"}]", CEL_ERR_INVALID,
             "`external` must contain a value.");
  expect_err("to_ref", "[{\"external\":false}]", CEL_ERR_INVALID,
             "`external` must contain a value.");
  expect_err("to_ref", "[{\"kind\":\"K\",\"namespace\":\"ns\"}]", CEL_ERR_INVALID,
             "`external` or `name` are required to build a reference.");
  expect_err("to_ref", "[{\"name\":\"\"}]", CEL_ERR_INVALID, "`name` must contain a value.");
  expect_err("to_ref", "[{\"name\":null}]", CEL_ERR_INVALID, "`name` must contain a value.");
  /* a whole resource has its name under metadata: not a reference */
  expect_err("to_ref", "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"name\":\"n\"}}]",
             CEL_ERR_INVALID, "`external` or `name` are required");
  expect_err("to_ref", "[\"my-name\"]", CEL_ERR_NO_OVERLOAD, "to_ref");
  expect_err("to_ref", "[[\"name\"]]", CEL_ERR_NO_OVERLOAD, "to_ref");
  expect_err("to_ref", "[3]", CEL_ERR_NO_OVERLOAD, "to_ref");
}

static void test_group_ref(void **state) {
  (void)state;
  expect("group_ref",
         "[{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"Role\",\"name\":\"r\","
         "\"namespace\":\"ns\"}]",
         "{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"r\","
         "\"namespace\":\"ns\"}");
  expect("group_ref",
         "[{\"apiGroup\":\"explicit.io\",\"apiVersion\":\"other.io/"
         "v1\",\"kind\":\"K\",\"name\":\"n\"}]",
         "{\"apiGroup\":\"explicit.io\",\"kind\":\"K\",\"name\":\"n\"}");
  expect("group_ref", "[{\"apiGroup\":\"\",\"apiVersion\":\"apps/v1\",\"name\":\"n\"}]",
         "{\"apiGroup\":\"apps\",\"name\":\"n\"}");
  /* the core group comes out as "v1" (quirk 25), a leading slash as "" */
  expect("group_ref", "[{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"name\":\"s\"}]",
         "{\"apiGroup\":\"v1\",\"kind\":\"Secret\",\"name\":\"s\"}");
  expect("group_ref", "[{\"apiVersion\":\"/v1\",\"name\":\"n\"}]",
         "{\"apiGroup\":\"\",\"name\":\"n\"}");
  expect("group_ref", "[{\"apiVersion\":1,\"kind\":\"K\",\"name\":\"n\"}]",
         "{\"kind\":\"K\",\"name\":\"n\"}");
  expect("group_ref", "[{\"apiVersion\":\"g.io/v1\",\"kind\":\"K\",\"external\":\"e\"}]",
         "{\"apiGroup\":\"g.io\",\"kind\":\"K\",\"external\":\"e\"}");
  expect_err("group_ref", "[{\"apiVersion\":\"g.io/v1\",\"kind\":\"K\"}]", CEL_ERR_INVALID,
             "`external` or `name` are required to build a reference.");
  expect_err("group_ref", "[{\"external\":\"\"}]", CEL_ERR_INVALID,
             "`external` must contain a value.");
  expect_err("group_ref", "[null]", CEL_ERR_NO_OVERLOAD, "group_ref");
}

static void test_kindless_ref(void **state) {
  (void)state;
  expect("kindless_ref",
         "[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"name\":\"n\",\"namespace\":\"ns\"}]",
         "{\"name\":\"n\",\"namespace\":\"ns\"}");
  expect("kindless_ref", "[{\"external\":\"projects/x\",\"name\":\"n\"}]",
         "{\"external\":\"projects/x\"}");
  expect("kindless_ref", "[{\"name\":\"n\",\"namespace\":\"\"}]", "{\"name\":\"n\"}");
  expect_err("kindless_ref", "[{\"external\":\"\"}]", CEL_ERR_INVALID,
             "`external` must contain a value.");
  /* Python's `in` on a string receiver: no "name" inside → Koreo's error,
   * "name" inside → the .get() fails (no such overload) */
  expect_err("kindless_ref", "[\"abc\"]", CEL_ERR_INVALID, "`external` or `name` are required");
  expect_err("kindless_ref", "[\"my-name\"]", CEL_ERR_NO_OVERLOAD, "kindless_ref");
  expect_err("kindless_ref", "[5]", CEL_ERR_NO_OVERLOAD, "kindless_ref");
}

static void test_config_connect_ready(void **state) {
  (void)state;
  const char *ready = "[{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
                      "\"reason\":\"UpToDate\"}]}}]";
  expect("config_connect_ready", ready, "true");
  expect("config_connect_ready", "[{\"apiVersion\":\"v1\"}]", "false");
  expect("config_connect_ready", "[{\"status\":{\"observedGeneration\":3}}]", "false");
  expect("config_connect_ready", "[{}]", "false");
  expect("config_connect_ready", "[\"\"]", "false");
  expect("config_connect_ready", "[\"abc\"]", "false");
  expect("config_connect_ready",
         "[{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"reason\":"
         "\"UpToDate\"}]}}]",
         "false");
  expect("config_connect_ready",
         "[{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":"
         "\"Updating\"}]}}]",
         "false");
  expect("config_connect_ready",
         "[{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}]", "false");
  expect("config_connect_ready",
         "[{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":"
         "\"UpToDate\"},{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"UpToDate\"}]}}]",
         "false");
  expect("config_connect_ready",
         "[{\"status\":{\"conditions\":[{\"type\":\"Synced\",\"status\":\"False\"},{\"type\":"
         "\"Ready\",\"status\":\"True\",\"reason\":\"UpToDate\"},{\"status\":\"True\"}]}}]",
         "true");
  expect("config_connect_ready",
         "[{\"status\":{\"conditions\":[{\"type\":\"ready\",\"status\":\"True\",\"reason\":"
         "\"UpToDate\"}]}}]",
         "false");
  expect("config_connect_ready", "[{\"status\":{\"conditions\":[]}}]", "false");
  expect_err("config_connect_ready", "[{\"status\":null}]", CEL_ERR_NO_OVERLOAD,
             "config_connect_ready");
  expect_err("config_connect_ready", "[\"status\"]", CEL_ERR_NO_OVERLOAD, "config_connect_ready");
  expect_err("config_connect_ready", "[{\"status\":{\"conditions\":null}}]", CEL_ERR_NO_OVERLOAD,
             "config_connect_ready");
  expect_err("config_connect_ready", "[{\"status\":{\"conditions\":[1]}}]", CEL_ERR_NO_OVERLOAD,
             "config_connect_ready");
  /* an int `type` cannot be compared with a string in cel-python */
  expect_err("config_connect_ready", "[{\"status\":{\"conditions\":[{\"type\":1}]}}]",
             CEL_ERR_NO_OVERLOAD, "config_connect_ready");
  expect_err("config_connect_ready", "[]", CEL_ERR_NO_OVERLOAD, "config_connect_ready");
}

/* ---- maps and lists ---------------------------------------------------------- */

static void test_overlay(void **state) {
  (void)state;
  expect("overlay", "[{}, {}]", "{}");
  expect("overlay", "[{\"a\":1,\"b\":{\"c\":2}}, {}]", "{\"a\":1,\"b\":{\"c\":2}}");
  expect("overlay", "[{}, {\"a\":1}]", "{\"a\":1}");
  expect("overlay",
         "[{\"spec\":{\"replicas\":1,\"image\":\"nginx\"},\"x\":[1]}, "
         "{\"spec\":{\"replicas\":3},\"x\":[2],\"y\":true}]",
         "{\"spec\":{\"replicas\":3,\"image\":\"nginx\"},\"x\":[2],\"y\":true}");
  /* keys are literal, order: receiver's keys then new ones */
  expect("overlay", "[{\"a\":{\"b\":{\"c\":0}}}, {\"a.b.c\":1}]",
         "{\"a\":{\"b\":{\"c\":0}},\"a.b.c\":1}");
  expect("overlay", "[{\"z\":1,\"a\":2,\"m\":3}, {\"new\":0,\"a\":20}]",
         "{\"z\":1,\"a\":20,\"m\":3,\"new\":0}");
  expect("overlay", "[{\"a\":{\"x\":1}}, {\"a\":\"scalar\"}]", "{\"a\":\"scalar\"}");
  expect("overlay", "[{\"a\":\"scalar\"}, {\"a\":{\"x\":1}}]", "{\"a\":{\"x\":1}}");
  expect("overlay", "[{\"a\":1}, {\"a\":null}]", "{\"a\":null}");
  expect(
      "overlay",
      "[{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"a\"}}}, "
      "{\"metadata\":{\"labels\":{\"koreo.dev/managed\":\"y\"}}}]",
      "{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"a\",\"koreo.dev/managed\":\"y\"}}}");
  /* the receiver is not changed */
  kv *args = json("[{\"a\":1,\"n\":{\"x\":1}}, {\"a\":2,\"n\":{\"y\":2}}]");
  kv *r = callv("overlay", args);
  check_value(r, "{\"a\":2,\"n\":{\"x\":1,\"y\":2}}", "overlay");
  check_value(kv_ref(args->u.list.items[0]), "{\"a\":1,\"n\":{\"x\":1}}", "receiver after overlay");
  kv_unref(args);
  expect_err("overlay", "[\"abc\", {\"a\":1}]", CEL_ERR_NO_OVERLOAD, "overlay");
  expect_err("overlay", "[{\"a\":1}, null]", CEL_ERR_NO_OVERLOAD, "overlay");
  expect_err("overlay", "[{\"a\":1}]", CEL_ERR_NO_OVERLOAD, "overlay");
}

static void test_flatten(void **state) {
  (void)state;
  expect("flatten", "[[]]", "[]");
  expect("flatten", "[[[1,2,3]]]", "[1,2,3]");
  expect("flatten", "[[[1,2],[],[\"a\"],[[3]]]]", "[1,2,\"a\",[3]]");
  expect("flatten", "[[[1],[\"a\"],[null,true]]]", "[1,\"a\",null,true]");
  /* Python iteration quirks (26): strings give characters, maps keys,
   * a falsy receiver gives [] */
  expect("flatten", "[[\"ab\",\"c\"]]", "[\"a\",\"b\",\"c\"]");
  expect("flatten", "[[{\"a\":1,\"b\":2},[\"c\"]]]", "[\"a\",\"b\",\"c\"]");
  expect("flatten", "[{\"a\":[1]}]", "[\"a\"]");
  expect("flatten", "[null]", "[]");
  expect("flatten", "[[\"é✓\"]]", "[\"é\",\"✓\"]");
  expect_err("flatten", "[[1,2]]", CEL_ERR_NO_OVERLOAD, "flatten");
  expect_err("flatten", "[[[1],null]]", CEL_ERR_NO_OVERLOAD, "flatten");
  expect_err("flatten", "[5]", CEL_ERR_NO_OVERLOAD, "flatten");
  expect_err("flatten", "[[], 1]", CEL_ERR_NO_OVERLOAD, "flatten");
}

/* ---- strings -------------------------------------------------------------- */

static void test_lower(void **state) {
  (void)state;
  expect("lower", "[\"ServiceAccount\"]", "\"serviceaccount\"");
  expect("lower", "[\"Hello-ÄB\"]", "\"hello-äb\"");
  expect("lower", "[\"\"]", "\"\"");
  /* full Unicode mapping: İ becomes i + combining dot, ß stays */
  expect("lower", "[\"\u0130\"]", "\"i\u0307\"");
  expect("lower", "[\"STRASSE ß\"]", "\"strasse ß\"");
  expect("lower", "[\"ΑΒΓ Ω\"]", "\"αβγ ω\"");
  /* final sigma, as Python's str.lower() */
  expect("lower", "[\"ΟΔΟΣ ΣΑ\"]", "\"οδος σα\"");
  expect("lower", "[\"Σ\"]", "\"σ\"");
  expect_str("lower", list2(kv_bytes("ABC", 3), NULL), "abc");
  expect_err("lower", "[null]", CEL_ERR_NO_OVERLOAD, "lower");
  expect_err("lower", "[1]", CEL_ERR_NO_OVERLOAD, "lower");
  expect_err("lower", "[\"a\", \"b\"]", CEL_ERR_NO_OVERLOAD, "lower");
}

static void test_strip(void **state) {
  (void)state;
  expect("strip", "[\"testinga\", \"testing\"]", "\"a\"");
  expect("strip", "[\"  padded \\t\", \" \\t\"]", "\"padded\"");
  expect("strip", "[\"  a  \", \"\"]", "\"  a  \"");
  expect("strip", "[\"\", \"test\"]", "\"\"");
  expect("strip", "[\"abc\", \"xyz\"]", "\"abc\"");
  expect("strip", "[\"--v1.2--\", \"-\"]", "\"v1.2\"");
  expect("strip", "[\"banana\", \"an\"]", "\"b\"");
  expect("strip", "[\"★★note★\", \"★\"]", "\"note\"");
  expect("strip", "[\"aaaa\", \"a\"]", "\"\"");
  /* null characters: Python's whitespace (quirk 26) */
  expect("strip", "[\" \\u00a0\\n x \\u2003\", null]", "\"x\"");
  expect("rstrip", "[\"https://example.com///\", \"/\"]", "\"https://example.com\"");
  expect("rstrip", "[\"--x--\", \"-\"]", "\"--x\"");
  expect("rstrip", "[\"testingisfun\", \"isfun\"]", "\"testing\"");
  expect("rstrip", "[\"config.yaml\", \".lmay\"]", "\"config\"");
  expect("rstrip", "[\"\", \"x\"]", "\"\"");
  expect("rstrip", "[\"é✓é\", \"é\"]", "\"é✓\"");
  expect_err("strip", "[\"  a  \"]", CEL_ERR_NO_OVERLOAD, "strip");
  expect_err("strip", "[1, \"a\"]", CEL_ERR_NO_OVERLOAD, "strip");
  expect_err("rstrip", "[\"a\", 1]", CEL_ERR_NO_OVERLOAD, "rstrip");
}

static void test_split(void **state) {
  (void)state;
  expect("split", "[\"a.b.c\", \".\"]", "[\"a\",\"b\",\"c\"]");
  expect("split", "[\"abc\", \".\"]", "[\"abc\"]");
  expect("split", "[\"\", \".\"]", "[\"\"]");
  expect("split", "[\"a--b--c\", \"--\"]", "[\"a\",\"b\",\"c\"]");
  expect("split", "[\".a.\", \".\"]", "[\"\",\"a\",\"\"]");
  expect_err("split", "[\"a.b\", \"\"]", CEL_ERR_INVALID, "split separator may not be empty");
  expect_err("split", "[\"\", \"\"]", CEL_ERR_INVALID, "split separator may not be empty");
  expect_err("split", "[\"a1b\", 1]", CEL_ERR_NO_OVERLOAD, "split");
  expect_err("split", "[\"a b\"]", CEL_ERR_NO_OVERLOAD, "split");
  expect_err("split", "[1, \".\"]", CEL_ERR_NO_OVERLOAD, "split");

  expect("split_first", "[\"www.example.com\", \".\"]", "\"www\"");
  expect("split_first", "[\"abc\", \".\"]", "\"abc\"");
  expect("split_first", "[\"\", \".\"]", "\"\"");
  expect("split_first", "[null, \".\"]", "\"\"");
  expect_err("split_first", "[\"a.b\", \"\"]", CEL_ERR_INVALID, "split separator may not be empty");
  expect_err("split_first", "[5, \".\"]", CEL_ERR_NO_OVERLOAD, "split_first");

  expect("split_last", "[\"a.b.c\", \".\"]", "\"c\"");
  expect("split_last", "[\"abc\", \".\"]", "\"abc\"");
  expect("split_last", "[\"abc.\", \".\"]", "\"\"");
  expect("split_last", "[\"x::y::z\", \"::\"]", "\"z\"");
  expect("split_last", "[\"aaa\", \"aa\"]", "\"\"");
  expect("split_last", "[\"\", \"-\"]", "\"\"");
  expect_err("split_last", "[\"a-b\", \"\"]", CEL_ERR_INVALID, "split separator may not be empty");
  expect_err("split_last", "[\"a.b\", null]", CEL_ERR_INVALID, "split separator may not be empty");

  expect("split_index", "[\"a.b.c\", \".\", 0]", "\"a\"");
  expect("split_index", "[\"a.b.c\", \".\", 1]", "\"b\"");
  expect("split_index", "[\"a.b.c\", \".\", -1]", "\"c\"");
  expect("split_index", "[\"a.b.c\", \".\", -3]", "\"a\"");
  expect("split_index", "[\"\", \".\", 99]", "\"\"");
  expect("split_index", "[\"abc\", \".\", 0]", "\"abc\"");
  expect("split_index", "[\"a.b.c\", \".\", true]", "\"b\"");
  kv *args = json("[\"a.b.c\", \".\"]");
  kv_list_push(args, kv_uint(2));
  check_value(callv("split_index", args), "\"c\"", "split_index uint");
  kv_unref(args);
  expect_err("split_index", "[\"a.b.c\", \".\", 3]", CEL_ERR_RANGE, "index out of bounds on split");
  expect_err("split_index", "[\"a.b.c\", \".\", -4]", CEL_ERR_RANGE,
             "index out of bounds on split");
  expect_err("split_index", "[\"a.b\", \"\", 0]", CEL_ERR_INVALID,
             "split separator may not be empty");
  expect_err("split_index", "[\"\", \"\", 0]", CEL_ERR_INVALID, "split separator may not be empty");
  expect_err("split_index", "[\"a.b.c\", \".\", 1.0]", CEL_ERR_NO_OVERLOAD, "split_index");
  expect_err("split_index", "[\"a.b.c\", \".\", \"1\"]", CEL_ERR_NO_OVERLOAD, "split_index");
  expect_err("split_index", "[\"a.b.c\", \".\"]", CEL_ERR_NO_OVERLOAD, "split_index");
}

static void test_replace(void **state) {
  (void)state;
  expect("replace", "[\"hello world\", \"world\", \"there\"]", "\"hello there\"");
  expect("replace", "[\"a-b-c\", \"-\", \"_\"]", "\"a_b_c\"");
  expect("replace", "[\"abc\", \"x\", \"y\"]", "\"abc\"");
  expect("replace", "[\"ab\", \"\", \".\"]", "\".a.b.\"");
  expect("replace", "[\"é\", \"\", \"-\"]", "\"-é-\"");
  expect("replace", "[\"naïve café\", \"é\", \"e\"]", "\"naïve cafe\"");
  expect("replace", "[\"aaa\", \"aa\", \"b\"]", "\"ba\"");
  expect_err("replace", "[\"a1\", 1, \"x\"]", CEL_ERR_NO_OVERLOAD, "Replace error");
  expect_err("replace", "[\"aaa\", \"a\", \"b\", 1]", CEL_ERR_NO_OVERLOAD, "replace");
}

/* ---- encoding ----------------------------------------------------------- */

static void test_to_json(void **state) {
  (void)state;
  expect("to_json", "[\"isfun\"]", "\"\\\"isfun\\\"\"");
  expect("to_json", "[3]", "\"3\"");
  expect("to_json", "[-42]", "\"-42\"");
  expect("to_json", "[1.5]", "\"1.5\"");
  expect("to_json", "[null]", "\"null\"");
  /* booleans print as 1/0 (quirk 7), also nested */
  expect("to_json", "[false]", "\"0\"");
  expect("to_json", "[true]", "\"1\"");
  expect("to_json", "[{\"enabled\":true,\"flags\":[true,false]}]",
         "\"{\\\"enabled\\\": 1, \\\"flags\\\": [1, 0]}\"");
  expect("to_json", "[[1e20, 1e-7, 123456789.123, 2.0]]", "\"[1e+20, 1e-07, 123456789.123, 2.0]\"");
  expect("to_json", "[{\"zeta\":1,\"alpha\":{\"y\":2,\"b\":3},\"Mid\":4}]",
         "\"{\\\"Mid\\\": 4, \\\"alpha\\\": {\\\"b\\\": 3, \\\"y\\\": 2}, \\\"zeta\\\": 1}\"");
  expect("to_json", "[[\"testKey\",\"testValue\"]]", "\"[\\\"testKey\\\", \\\"testValue\\\"]\"");
  expect("to_json", "[{\"m\":{},\"l\":[]}]", "\"{\\\"l\\\": [], \\\"m\\\": {}}\"");
  expect("to_json", "[\"q \\\" b \\\\ n \\n t \\t \\u0001 \\u007f\"]",
         "\"\\\"q \\\\\\\" b \\\\\\\\ n \\\\n t \\\\t \\\\u0001 \\\\u007f\\\"\"");
  /* non-ASCII as \uXXXX, surrogate pairs above U+FFFF */
  expect("to_json", "[{\"name\":\"café ☕ 🚀\"}]",
         "\"{\\\"name\\\": \\\"caf\\\\u00e9 \\\\u2615 \\\\ud83d\\\\ude80\\\"}\"");

  kv *args = list2(kv_uint(UINT64_MAX), NULL);
  check_value(callv("to_json", args), "\"18446744073709551615\"", "to_json uint");
  kv_unref(args);
  args = list2(kv_double(NAN), NULL);
  check_value(callv("to_json", args), "\"NaN\"", "to_json NaN");
  kv_unref(args);
  args = kv_list_new(1);
  kv *l = kv_list_new(2);
  kv_list_push(l, kv_double(INFINITY));
  kv_list_push(l, kv_double(-INFINITY));
  kv_list_push(args, l);
  check_value(callv("to_json", args), "\"[Infinity, -Infinity]\"", "to_json inf");
  kv_unref(args);

  /* int keys: sorted numerically, printed as strings */
  args = kv_list_new(1);
  kv *m = kv_map_new(2);
  kv_map_set(m, kv_int(10), kv_cstring("b"));
  kv_map_set(m, kv_int(2), kv_cstring("a"));
  kv_list_push(args, m);
  check_value(callv("to_json", args), "\"{\\\"2\\\": \\\"a\\\", \\\"10\\\": \\\"b\\\"}\"",
              "to_json int keys");
  kv_unref(args);
  /* a single null key prints as "null"; mixed key types cannot be sorted */
  args = kv_list_new(1);
  m = kv_map_new(1);
  kv_map_set(m, kv_null(), kv_int(1));
  kv_list_push(args, m);
  check_value(callv("to_json", args), "\"{\\\"null\\\": 1}\"", "to_json null key");
  kv_unref(args);
  args = kv_list_new(1);
  m = kv_map_new(2);
  kv_map_set(m, kv_int(1), kv_cstring("a"));
  kv_map_set(m, kv_cstring("b"), kv_int(2));
  kv_list_push(args, m);
  kv *r = callv("to_json", args);
  assert_int_equal(r->kind, KV_ERROR);
  assert_non_null(strstr(r->u.err.msg, "JSON Encoding error"));
  kv_unref(r);
  kv_unref(args);
  args = list2(kv_timestamp(1704067200, 0), NULL);
  r = callv("to_json", args);
  assert_int_equal(r->kind, KV_ERROR);
  assert_non_null(strstr(r->u.err.msg, "JSON Encoding error"));
  kv_unref(r);
  kv_unref(args);
  expect_err("to_json", "[]", CEL_ERR_NO_OVERLOAD, "to_json");
  expect_err("to_json", "[1, 2]", CEL_ERR_NO_OVERLOAD, "to_json");
}

static void test_from_json(void **state) {
  (void)state;
  kv *r =
      call("from_json", "[\"{\\\"testKey\\\": \\\"testValue\\\", \\\"n\\\": 1, \\\"d\\\": 1.0}\"]");
  check_value(r, "{\"testKey\":\"testValue\",\"n\":1,\"d\":1.0}", "from_json object");
  expect("from_json", "[\"\\\"isfun\\\"\"]", "\"isfun\"");
  expect("from_json", "[\"42\"]", "42");
  expect("from_json", "[\"-0\"]", "0");
  expect("from_json", "[\"true\"]", "true");
  expect("from_json", "[\"null\"]", "null");
  expect("from_json", "[\"  [1, 2.5e1, -3E-1]  \"]", "[1, 25.0, -0.3]");
  expect("from_json", "[\"\\\"caf\\\\u00e9 \\\\ud83d\\\\ude80 \\\\/\\\"\"]", "\"café 🚀 /\"");
  /* duplicate keys: the last value wins, at the first key's place */
  expect("from_json", "[\"{\\\"a\\\": 1, \\\"b\\\": 2, \\\"a\\\": 3}\"]", "{\"a\":3,\"b\":2}");
  r = call("from_json", "[\"[NaN, Infinity, -Infinity, 1e400]\"]");
  assert_int_equal(r->kind, KV_LIST);
  assert_true(isnan(r->u.list.items[0]->u.d));
  assert_true(isinf(r->u.list.items[1]->u.d) && r->u.list.items[1]->u.d > 0);
  assert_true(isinf(r->u.list.items[2]->u.d) && r->u.list.items[2]->u.d < 0);
  assert_true(isinf(r->u.list.items[3]->u.d));
  kv_unref(r);
  kv *args = list2(kv_bytes("{\"a\": 1}", 8), NULL);
  check_value(callv("from_json", args), "{\"a\":1}", "from_json bytes");
  kv_unref(args);
  expect_err("from_json", "[\"{} x\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"nope\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"[1,]\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"01\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"1.\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"{'a': 1}\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"\\\"a\\nb\\\"\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[\"9223372036854775808\"]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[true]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[3]", CEL_ERR_INVALID, "JSON Decoding error");
  expect_err("from_json", "[]", CEL_ERR_NO_OVERLOAD, "from_json");
  /* deep nesting is bounded, not a crash */
  char deep[4100];
  memset(deep, '[', 3000);
  deep[3000] = 0;
  args = list2(kv_cstring(deep), NULL);
  r = callv("from_json", args);
  assert_int_equal(r->kind, KV_ERROR);
  kv_unref(r);
  kv_unref(args);
}

static void test_b64(void **state) {
  (void)state;
  expect("b64encode", "[\"isfun\"]", "\"aXNmdW4=\"");
  expect("b64encode", "[\"hello\"]", "\"aGVsbG8=\"");
  expect("b64encode", "[\"\"]", "\"\"");
  expect("b64encode", "[\"a\"]", "\"YQ==\"");
  expect("b64encode", "[\"ab\"]", "\"YWI=\"");
  expect("b64encode", "[\"abc\"]", "\"YWJj\"");
  expect("b64encode", "[\"é✓\"]", "\"w6ninJM=\"");
  expect_err("b64encode", "[{\"k\":\"v\"}]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64encode", "[[\"a\"]]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64encode", "[true]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64encode", "[3]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64encode", "[null]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64encode", "[]", CEL_ERR_NO_OVERLOAD, "b64encode");
  kv *args = list2(kv_bytes("abc", 3), NULL);
  kv *r = callv("b64encode", args);
  assert_int_equal(r->kind, KV_ERROR);
  kv_unref(r);
  kv_unref(args);

  expect("b64decode", "[\"aXNmdW4=\"]", "\"isfun\"");
  expect("b64decode", "[\"\"]", "\"\"");
  expect("b64decode", "[\"dG9rZW4tMTIz\"]", "\"token-123\"");
  /* characters outside the alphabet are dropped (quirk 26) */
  expect("b64decode", "[\"aG\\nk =\"]", "\"hi\"");
  expect("b64decode", "[\"a!G*k=\"]", "\"hi\"");
  /* decoding stops at a complete pad sequence */
  expect("b64decode", "[\"YQ==YQ==\"]", "\"a\"");
  args = list2(kv_bytes("aGk=", 4), NULL);
  check_value(callv("b64decode", args), "\"hi\"", "b64decode bytes");
  kv_unref(args);
  expect_err("b64decode", "[\"aXNmdW\"]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64decode", "[\"aGk\"]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64decode", "[\"-_8=\"]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64decode", "[\"/w==\"]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64decode", "[\"é\"]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64decode", "[3]", CEL_ERR_INVALID, "Base64 Encoding error");
  expect_err("b64decode", "[]", CEL_ERR_NO_OVERLOAD, "b64decode");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),        cmocka_unit_test(test_self_ref),
      cmocka_unit_test(test_to_ref),       cmocka_unit_test(test_group_ref),
      cmocka_unit_test(test_kindless_ref), cmocka_unit_test(test_config_connect_ready),
      cmocka_unit_test(test_overlay),      cmocka_unit_test(test_flatten),
      cmocka_unit_test(test_lower),        cmocka_unit_test(test_strip),
      cmocka_unit_test(test_split),        cmocka_unit_test(test_replace),
      cmocka_unit_test(test_to_json),      cmocka_unit_test(test_from_json),
      cmocka_unit_test(test_b64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
