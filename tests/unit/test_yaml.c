/*
 * tests/unit/test_yaml.c: kv_yaml_parse (koreo/json.h): PyYAML SafeLoader
 * scalar resolution (YAML 1.1), tags, multi-document streams, anchors,
 * aliases and merge keys, positions, errors with file/line/column, limits,
 * and regression inputs from fuzzing.  Fixtures live in tests/data/yaml/.
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

#include "koreo/json.h"

static char *fixture_path(const char *name) {
  const char *dir = getenv("KOREO_TEST_DATA");
  if (!dir) dir = "tests/data";
  char *p = NULL;
  if (asprintf(&p, "%s/yaml/%s", dir, name) < 0) abort();
  return p;
}

/* Parse a fixture file; returns the document list. */
static kv *load_fixture(const char *name) {
  char *path = fixture_path(name);
  size_t n;
  kv_parse_error err;
  char *text = kv_read_file(path, &n, &err);
  if (!text) fail_msg("%s", err.msg);
  kv *docs = kv_yaml_parse(text, n, path, &err);
  if (!docs) fail_msg("%s:%u:%u: %s", path, err.line, err.col, err.msg);
  free(text);
  free(path);
  return docs;
}

static kv *parse_ok(const char *text) {
  kv_parse_error err;
  kv *v = kv_yaml_parse(text, strlen(text), "inline.yaml", &err);
  if (!v) fail_msg("parse of <<%s>> failed: %u:%u %s", text, err.line, err.col, err.msg);
  return v;
}

/* The first document of `text`. */
static kv *doc1(const char *text, kv **docs) {
  *docs = parse_ok(text);
  assert_true(kv_len(*docs) >= 1);
  return kv_list_at(*docs, 0);
}

static void parse_err(const char *text, uint32_t line, uint32_t col, const char *needle) {
  kv_parse_error err;
  kv *v = kv_yaml_parse(text, strlen(text), "bad.yaml", &err);
  if (v) {
    char *s = kv_json_write(v, 0, NULL);
    kv_unref(v);
    fail_msg("parse of <<%s>> unexpectedly gave %s", text, s);
  }
  if (err.line != line || err.col != col || !strstr(err.msg, needle))
    fail_msg("parse of <<%s>>: got %u:%u '%s', want %u:%u '...%s...'", text, err.line, err.col,
             err.msg, line, col, needle);
  assert_non_null(err.file);
  assert_string_equal(err.file, "bad.yaml");
}

/* The value at a /-separated path of map keys and list indexes. */
static kv *at(kv *v, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  char *save = NULL;
  for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
    if (kv_kind_of(v) == KV_LIST) {
      size_t i = strtoul(tok, NULL, 10);
      if (i >= kv_len(v)) fail_msg("%s: index %zu out of range", path, i);
      v = kv_list_at(v, i);
    } else if (kv_kind_of(v) == KV_MAP) {
      kv *c = kv_map_get_str(v, tok);
      if (!c) fail_msg("%s: no key %s", path, tok);
      v = c;
    } else {
      fail_msg("%s: cannot descend into a %s", path, kv_kind_name(kv_kind_of(v)));
    }
  }
  return v;
}

static void is_int(kv *root, const char *path, int64_t want) {
  kv *v = at(root, path);
  if (kv_kind_of(v) != KV_INT || v->u.i != want)
    fail_msg("%s: got a %s, want int %lld", path, kv_kind_name(kv_kind_of(v)), (long long)want);
}
static void is_double(kv *root, const char *path, double want) {
  kv *v = at(root, path);
  if (kv_kind_of(v) != KV_DOUBLE) fail_msg("%s: got a %s", path, kv_kind_name(kv_kind_of(v)));
  if (isnan(want) ? !isnan(v->u.d) : v->u.d != want) fail_msg("%s: got %g", path, v->u.d);
}
static void is_str(kv *root, const char *path, const char *want) {
  kv *v = at(root, path);
  if (kv_kind_of(v) != KV_STRING || strcmp(kv_str(v), want))
    fail_msg("%s: got a %s, want the string '%s'", path, kv_kind_name(kv_kind_of(v)), want);
}
static void is_bool(kv *root, const char *path, bool want) {
  kv *v = at(root, path);
  if (kv_kind_of(v) != KV_BOOL || v->u.b != want)
    fail_msg("%s: got a %s, want %s", path, kv_kind_name(kv_kind_of(v)), want ? "true" : "false");
}
static void is_null(kv *root, const char *path) {
  kv *v = at(root, path);
  if (kv_kind_of(v) != KV_NULL)
    fail_msg("%s: got a %s, want null", path, kv_kind_name(kv_kind_of(v)));
}

static void test_scalars_fixture(void **state) {
  (void)state;
  kv *docs = load_fixture("scalars.yaml");
  assert_int_equal(kv_len(docs), 1);
  kv *d = kv_list_at(docs, 0);
  kv *bools = at(d, "bools");
  assert_int_equal(kv_len(bools), 18);
  for (size_t i = 0; i < 18; i++) {
    kv *b = kv_list_at(bools, i);
    assert_int_equal(kv_kind_of(b), KV_BOOL);
    /* yes Yes YES no No NO true True TRUE false False FALSE on On ON off Off OFF */
    assert_int_equal(b->u.b, (i / 3) % 2 == 0);
  }
  kv *nb = at(d, "not_bools");
  for (size_t i = 0; i < kv_len(nb); i++)
    assert_int_equal(kv_kind_of(kv_list_at(nb, i)), KV_STRING);
  is_int(d, "ints/decimal", 42);
  is_int(d, "ints/negative", -17);
  is_int(d, "ints/plus", 12);
  is_int(d, "ints/underscores", 1000);
  is_int(d, "ints/hex", 31);
  is_int(d, "ints/hex_underscore", 255);
  is_int(d, "ints/octal", 15);
  is_int(d, "ints/binary", 10);
  is_int(d, "ints/sexagesimal", 190 * 3600 + 20 * 60 + 30);
  is_int(d, "ints/zero", 0);
  is_int(d, "ints/minus_zero", 0);
  is_int(d, "ints/int64_max", INT64_MAX);
  is_int(d, "ints/int64_min", INT64_MIN);
  kv *u = at(d, "ints/uint");
  assert_int_equal(kv_kind_of(u), KV_UINT);
  assert_true(u->u.u == UINT64_MAX);
  is_double(d, "floats/plain", 3.0);
  is_double(d, "floats/exponent", 1500.0);
  is_double(d, "floats/leading_dot", 0.5);
  is_double(d, "floats/trailing_dot", 1.0);
  is_double(d, "floats/underscores", 1000.5);
  is_double(d, "floats/inf", INFINITY);
  is_double(d, "floats/minus_inf", -INFINITY);
  is_double(d, "floats/nan", NAN);
  is_double(d, "floats/sexagesimal", 90.5);
  /* PyYAML's float needs a '.' and a signed exponent: these are strings */
  is_str(d, "strings/exponent_without_dot", "1e3");
  is_str(d, "strings/exponent_without_sign", "1.5e3");
  is_str(d, "strings/o_prefix", "0o17");
  is_str(d, "strings/not_octal", "08");
  is_str(d, "strings/signed_dot", "-.5");
  /* timestamps stay strings (PyYAML would give datetime objects) */
  is_str(d, "strings/date", "2001-12-14");
  is_str(d, "strings/timestamp", "2001-12-14t21:59:43.10-05:00");
  is_str(d, "strings/quoted_int", "42");
  is_str(d, "strings/tagged", "42");
  is_str(d, "strings/version", "1.10.0");
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(kv_kind_of(kv_list_at(at(d, "nulls"), i)), KV_NULL);
  is_null(d, "empty_value");
  is_int(d, "tagged/int", 16);
  is_double(d, "tagged/float", 1.0);
  is_bool(d, "tagged/bool", false);
  kv *bin = at(d, "tagged/binary");
  assert_int_equal(kv_kind_of(bin), KV_BYTES);
  assert_int_equal(kv_len(bin), 11);
  assert_memory_equal(kv_str(bin), "hello world", 11);
  is_str(d, "block", "yes\n");
  is_str(d, "folded", "on off");
  kv_unref(docs);
}

static void test_quoted_and_keys(void **state) {
  (void)state;
  kv *docs;
  kv *d = doc1("a: \"yes\"\nb: 'on'\nc: yes\n1: int key\ntrue: bool key\n~: null key\n"
               "\"2\": string key\n1.5: float key\n",
               &docs);
  is_str(d, "a", "yes");
  is_str(d, "b", "on");
  is_bool(d, "c", true);
  /* non-string keys keep their kind */
  kv *k = kv_int(1);
  kv *v = kv_map_get(d, k);
  kv_unref(k);
  assert_non_null(v);
  assert_string_equal(kv_str(v), "int key");
  v = kv_map_get(d, kv_bool(true));
  assert_non_null(v);
  assert_string_equal(kv_str(v), "bool key");
  v = kv_map_get(d, kv_null());
  assert_non_null(v);
  assert_string_equal(kv_str(v), "null key");
  is_str(d, "2", "string key");
  k = kv_double(1.5);
  assert_non_null(kv_map_get(d, k));
  kv_unref(k);
  kv_unref(docs);
  /* the famous `on:` key is the boolean true, as in PyYAML */
  d = doc1("on: push\n", &docs);
  assert_non_null(kv_map_get(d, kv_bool(true)));
  kv_unref(docs);
}

static void test_ints_beyond_64_bits(void **state) {
  (void)state;
  parse_err("a: 1\nb: 18446744073709551616\n", 2, 4, "out of range");
  parse_err("- -9223372036854775809\n", 1, 3, "out of range");
  parse_err("x: 0x1_0000_0000_0000_0000\n", 1, 4, "out of range");
  parse_err("x: !!int abc\n", 1, 4, "invalid integer 'abc'");
  parse_err("x: !!float abc\n", 1, 4, "invalid float 'abc'");
  parse_err("x: !!bool maybe\n", 1, 4, "invalid boolean");
  parse_err("x: 0b_\n", 1, 4, "invalid integer");
}

static void test_multi_document(void **state) {
  (void)state;
  kv *docs = load_fixture("multi.yaml");
  assert_int_equal(kv_len(docs), 3);
  is_str(kv_list_at(docs, 0), "kind", "ValueFunction");
  assert_int_equal(kv_kind_of(kv_list_at(docs, 1)), KV_NULL);
  is_str(kv_list_at(docs, 2), "0", "one");
  is_int(kv_list_at(docs, 2), "1", 2);
  kv_unref(docs);
  /* an empty stream (or only comments) has no documents */
  docs = parse_ok("");
  assert_int_equal(kv_kind_of(docs), KV_LIST);
  assert_int_equal(kv_len(docs), 0);
  kv_unref(docs);
  docs = parse_ok("# just a comment\n");
  assert_int_equal(kv_len(docs), 0);
  kv_unref(docs);
  docs = parse_ok("---\n");
  assert_int_equal(kv_len(docs), 1);
  assert_int_equal(kv_kind_of(kv_list_at(docs, 0)), KV_NULL);
  kv_unref(docs);
  /* anchors do not cross documents */
  parse_err("a: &x 1\n---\nb: *x\n", 3, 4, "undefined alias '*x'");
}

static void test_anchors_and_merges(void **state) {
  (void)state;
  kv *docs = load_fixture("anchors.yaml");
  kv *d = kv_list_at(docs, 0);
  /* aliases share the anchored value */
  assert_ptr_equal(at(d, "copy"), at(d, "base"));
  assert_ptr_equal(at(d, "labels_again"), at(d, "base/labels"));
  /* merge: explicit keys win; merged keys come first in PyYAML's order */
  kv *m = at(d, "merged");
  assert_int_equal(kv_len(m), 3);
  is_int(m, "replicas", 3);
  is_str(m, "image", "custom");
  assert_string_equal(kv_str(kv_map_key_at(m, 0)), "replicas");
  /* merge list: earlier maps win over later ones */
  kv *ml = at(d, "merged_list");
  is_str(ml, "image", "busybox");
  is_bool(ml, "debug", true);
  is_int(ml, "replicas", 3);
  is_str(ml, "name", "both");
  const char *order[] = {"replicas", "image", "labels", "debug", "name"};
  assert_int_equal(kv_len(ml), 5);
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(kv_str(kv_map_key_at(ml, i)), order[i]);
  kv_unref(docs);

  /* merges nest through anchored maps that merge themselves */
  d = doc1("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n", &docs);
  is_int(d, "c/x", 1);
  is_int(d, "c/y", 2);
  is_int(d, "c/z", 3);
  kv_unref(docs);
  /* a quoted "<<" is an ordinary key */
  d = doc1("\"<<\": {a: 1}\n", &docs);
  is_int(d, "<</a", 1);
  kv_unref(docs);
  /* errors */
  parse_err("a: 1\nb:\n  <<: 5\n", 3, 7, "expected a mapping or list of mappings for merging");
  parse_err("b:\n  <<: [{a: 1}, 2]\n", 2, 16, "expected a mapping for merging");
  parse_err("- <<\n", 1, 3, "tag:yaml.org,2002:merge");
  parse_err("a: =\n", 1, 4, "tag:yaml.org,2002:value");
  parse_err("a: *nope\n", 1, 4, "undefined alias '*nope'");
  parse_err("a: &r\n  b: *r\n", 2, 6, "recursive alias '*r'");
  parse_err("? [1, 2]\n: x\n", 1, 3, "unhashable key");
}

static void test_alias_bomb(void **state) {
  (void)state;
  /* billion laughs: 9 levels of 9 aliases; values are shared, so parsing
   * stays linear */
  char text[4096];
  size_t o = 0;
  o += (size_t)snprintf(text + o, sizeof text - o, "l0: &l0 [lol]\n");
  for (int i = 1; i < 10; i++) {
    o += (size_t)snprintf(text + o, sizeof text - o, "l%d: &l%d [", i, i);
    for (int j = 0; j < 9; j++)
      o += (size_t)snprintf(text + o, sizeof text - o, "%s*l%d", j ? ", " : "", i - 1);
    o += (size_t)snprintf(text + o, sizeof text - o, "]\n");
  }
  kv *docs;
  kv *d = doc1(text, &docs);
  kv *l9 = at(d, "l9");
  assert_int_equal(kv_len(l9), 9);
  assert_ptr_equal(kv_list_at(l9, 0), at(d, "l8"));
  assert_ptr_equal(kv_list_at(l9, 8), at(d, "l8"));
  kv_unref(docs);
}

static void test_depth_limit(void **state) {
  (void)state;
  char *text = malloc(4000);
  memset(text, '[', 1000);
  memset(text + 1000, ']', 1000);
  text[2000] = 0;
  kv *docs = parse_ok(text);
  kv_unref(docs);
  memset(text, '[', 1001);
  memset(text + 1001, ']', 1001);
  text[2002] = 0;
  parse_err(text, 1, 1001, "nesting deeper than 1000");
  free(text);
}

static void test_positions(void **state) {
  (void)state;
  kv *docs = load_fixture("positions.yaml");
  kv *d = kv_list_at(docs, 0);
  const kv_srcpos *p = kv_pos(d);
  assert_non_null(p);
  assert_non_null(strstr(p->file, "positions.yaml"));
  assert_int_equal(p->line, 1);
  assert_int_equal(p->col, 1);
  struct {
    const char *path;
    uint32_t line, col;
  } want[] = {
      {"apiVersion", 1, 13},
      {"spec", 4, 3},
      {"spec/resource/containers", 6, 7},
      {"spec/resource/containers/0", 6, 9},
      {"spec/resource/containers/0/name", 6, 15},
      {"spec/resource/containers/0/ports", 7, 16},
      {"spec/resource/containers/0/ports/1", 7, 21},
      {"spec/resource/containers/0/résumé", 8, 17}, /* columns count code points */
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    const kv_srcpos *q = kv_pos(at(d, want[i].path));
    if (!q) fail_msg("%s has no position", want[i].path);
    if (q->line != want[i].line || q->col != want[i].col)
      fail_msg("%s at %u:%u, want %u:%u", want[i].path, q->line, q->col, want[i].line, want[i].col);
    assert_ptr_equal(q->file, p->file); /* interned once */
  }
  /* keys carry positions too */
  kv *c0 = at(d, "spec/resource/containers/0");
  const kv_srcpos *kp = kv_pos(kv_map_key_at(c0, 1));
  assert_non_null(kp);
  assert_int_equal(kp->line, 7);
  assert_int_equal(kp->col, 9);
  kv_unref(docs);
}

static void test_syntax_errors(void **state) {
  (void)state;
  char *path = fixture_path("bad_indent.yaml");
  size_t n;
  char *text = kv_read_file(path, &n, NULL);
  assert_non_null(text);
  kv_parse_error err;
  assert_null(kv_yaml_parse(text, n, path, &err));
  assert_int_equal(err.line, 3);
  assert_int_equal(err.col, 5);
  assert_non_null(strstr(err.msg, "mapping values are not allowed"));
  assert_string_equal(err.file, path);
  free(text);
  free(path);
  parse_err("a: [1, 2\nb: 3\n", 2, 2, "did not find expected ',' or ']'");
  parse_err("a: 'unterminated\n", 2, 1, "unexpected end of stream");
  parse_err("a: !Ref x\n", 1, 4, "could not determine a constructor for the tag '!Ref'");
  parse_err("a: !!map [1]\n", 1, 4, "expected a mapping node, but found a sequence");
  parse_err("- \"\\ud800\"\n", 1, 6, "invalid Unicode character escape code");
  /* invalid UTF-8: libyaml's reader error located by byte offset */
  parse_err("ab: c\nd: \xc3\xa9\xff\n", 2, 5, "invalid");
  /* error without a file name */
  assert_null(kv_yaml_parse("[", 1, NULL, &err));
  assert_null(err.file);
  assert_int_equal(err.line, 2);
}

/* Inputs that once broke the reader (from fuzzing and review). */
static void test_regressions(void **state) {
  (void)state;
  kv *docs;
  /* NUL bytes inside a double-quoted scalar keep the whole string */
  kv *d = doc1("\"a\\0b\"", &docs);
  assert_int_equal(kv_len(d), 3);
  kv_unref(docs);
  /* input not NUL-terminated: the reader respects `len` */
  docs = kv_yaml_parse("a: 1zzz", 4, NULL, NULL);
  assert_non_null(docs);
  is_int(kv_list_at(docs, 0), "a", 1);
  kv_unref(docs);
  /* NULL text is an empty stream */
  docs = kv_yaml_parse(NULL, 0, NULL, NULL);
  assert_non_null(docs);
  assert_int_equal(kv_len(docs), 0);
  kv_unref(docs);
  /* !!omap / !!pairs give lists of [key, value] */
  d = doc1("!!omap [a: 1, b: 2]\n", &docs);
  assert_int_equal(kv_len(d), 2);
  is_str(d, "1/0", "b");
  is_int(d, "1/1", 2);
  kv_unref(docs);
  /* an anchor redefined later: aliases see the newest */
  d = doc1("a: &x 1\nb: &x 2\nc: *x\n", &docs);
  is_int(d, "c", 2);
  kv_unref(docs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scalars_fixture),     cmocka_unit_test(test_quoted_and_keys),
      cmocka_unit_test(test_ints_beyond_64_bits), cmocka_unit_test(test_multi_document),
      cmocka_unit_test(test_anchors_and_merges),  cmocka_unit_test(test_alias_bomb),
      cmocka_unit_test(test_depth_limit),         cmocka_unit_test(test_positions),
      cmocka_unit_test(test_syntax_errors),       cmocka_unit_test(test_regressions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
