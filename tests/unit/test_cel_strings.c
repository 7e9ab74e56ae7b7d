/*
 * tests/unit/test_cel_strings.c: the CEL strings extension
 * (core/cel/lib_strings.c) and the encoders extension
 * (core/cel/lib_encoders.c), called directly through their cel_fn_def
 * tables: normal cases, code-point indexes on non-ASCII text, format()
 * rendering and the error cases (wrong types, out-of-range indexes, bad
 * format clauses, bad base64).
 *
 * Built by CMake against libkoreo.  For a standalone build of just the
 * extension sources, compile with -DKOREO_EXT_STANDALONE_TEST, which adds
 * minimal test-only versions of the evaluator's error helpers.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "cel/cel_impl.h"

#ifdef KOREO_EXT_STANDALONE_TEST
/* Test-only stand-ins for eval.c's helpers (the real ones link under CMake). */
const char *cel_type_name(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: return "null_type";
  case KV_TIMESTAMP: return "google.protobuf.Timestamp";
  case KV_DURATION: return "google.protobuf.Duration";
  default: return kv_kind_name((kv_kind)v->kind);
  }
}
kv *cel_errorf(const cel_call *c, cel_error_code code, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return kv_error(code, (int32_t)c->where, "%s", buf);
}
kv *cel_no_overload(const cel_call *c, kv *const *args, size_t n) {
  (void)args;
  (void)n;
  return kv_error(CEL_ERR_NO_OVERLOAD, (int32_t)c->where, "no matching overload for '%s'", c->name);
}
#endif

/* ---- helpers ------------------------------------------------------------ */

static const cel_fn_def *find_def(const char *name) {
  for (size_t i = 0; i < cel_strings_ndefs; i++)
    if (strcmp(cel_strings_defs[i].name, name) == 0) return &cel_strings_defs[i];
  for (size_t i = 0; i < cel_encoders_ndefs; i++)
    if (strcmp(cel_encoders_defs[i].name, name) == 0) return &cel_encoders_defs[i];
  return NULL;
}

/* Call function `name` with `n` arguments (ownership of each is taken). */
static kv *call(const char *name, size_t n, ...) {
  const cel_fn_def *d = find_def(name);
  assert_non_null(d);
  kv *args[8];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, kv *);
  va_end(ap);
  cel_call c = {.env = NULL, .where = 7, .name = name};
  kv *r = d->fn(&c, args, n);
  for (size_t i = 0; i < n; i++)
    kv_unref(args[i]);
  assert_non_null(r);
  return r;
}

static kv *S(const char *s) { return kv_cstring(s); }
static kv *I(int64_t i) { return kv_int(i); }
static kv *U(uint64_t u) { return kv_uint(u); }
static kv *D(double d) { return kv_double(d); }
static kv *B(const char *s) { return kv_bytes(s, strlen(s)); }
/* A list of the given values (ownership taken). */
static kv *L(size_t n, ...) {
  kv *l = kv_list_new(n);
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    kv_list_push(l, va_arg(ap, kv *));
  va_end(ap);
  return l;
}

#define expect_str(r, want) expect_str_(r, want, __LINE__)
static void expect_str_(kv *r, const char *want, int line) {
  if (r->kind != KV_STRING || strcmp(kv_str(r), want) != 0) {
    print_error("line %d: want string \"%s\", got kind %s \"%s\"\n", line, want,
                kv_kind_name((kv_kind)r->kind),
                r->kind == KV_ERROR    ? r->u.err.msg
                : r->kind == KV_STRING ? kv_str(r)
                                       : "");
    kv_unref(r);
    fail();
  }
  kv_unref(r);
}

#define expect_int(r, want) expect_int_(r, want, __LINE__)
static void expect_int_(kv *r, int64_t want, int line) {
  if (r->kind != KV_INT || r->u.i != want) {
    print_error("line %d: want int %lld, got kind %s (%lld) %s\n", line, (long long)want,
                kv_kind_name((kv_kind)r->kind), r->kind == KV_INT ? (long long)r->u.i : 0LL,
                r->kind == KV_ERROR ? r->u.err.msg : "");
    kv_unref(r);
    fail();
  }
  kv_unref(r);
}

#define expect_err(r, code, text) expect_err_(r, code, text, __LINE__)
static void expect_err_(kv *r, int code, const char *text, int line) {
  if (r->kind != KV_ERROR || r->u.err.code != code || !strstr(r->u.err.msg, text)) {
    print_error("line %d: want error %d containing \"%s\", got kind %s %s (code %d)\n", line, code,
                text, kv_kind_name((kv_kind)r->kind), r->kind == KV_ERROR ? r->u.err.msg : "",
                r->kind == KV_ERROR ? r->u.err.code : -1);
    kv_unref(r);
    fail();
  }
  kv_unref(r);
}

/* A list of strings, compared element by element. */
#define expect_strs(r, ...) expect_strs_(r, (const char *[]){__VA_ARGS__, NULL}, __LINE__)
static void expect_strs_(kv *r, const char **want, int line) {
  size_t n = 0;
  while (want[n])
    n++;
  bool ok = r->kind == KV_LIST && kv_len(r) == n;
  for (size_t i = 0; ok && i < n; i++) {
    kv *e = kv_list_at(r, i);
    ok = e->kind == KV_STRING && strcmp(kv_str(e), want[i]) == 0;
  }
  if (!ok) {
    print_error("line %d: list mismatch (kind %s, len %zu, want len %zu)\n", line,
                kv_kind_name((kv_kind)r->kind), r->kind == KV_LIST ? kv_len(r) : 0, n);
    kv_unref(r);
    fail();
  }
  kv_unref(r);
}

/* ---- charAt, indexOf, lastIndexOf, substring ------------------------- */

static void test_char_at(void **state) {
  (void)state;
  expect_str(call("charAt", 2, S("tacocat"), I(0)), "t");
  expect_str(call("charAt", 2, S("tacocat"), I(7)), "");
  expect_str(call("charAt", 2, S("©αT"), I(0)), "©");
  expect_str(call("charAt", 2, S("©αT"), I(1)), "α");
  expect_str(call("charAt", 2, S("©αT"), I(2)), "T");
  expect_err(call("charAt", 2, S("tacocat"), I(30)), CEL_ERR_RANGE, "index out of range: 30");
  expect_err(call("charAt", 2, S("tacocat"), I(-1)), CEL_ERR_RANGE, "index out of range: -1");
  expect_err(call("charAt", 2, I(42), I(2)), CEL_ERR_NO_OVERLOAD, "charAt");
  expect_err(call("charAt", 2, S("x"), S("0")), CEL_ERR_NO_OVERLOAD, "charAt");
}

static void test_index_of(void **state) {
  (void)state;
  expect_int(call("indexOf", 2, S("tacocat"), S("")), 0);
  expect_int(call("indexOf", 2, S("tacocat"), S("ac")), 1);
  expect_int(call("indexOf", 2, S("tacocat"), S("none")), -1);
  expect_int(call("indexOf", 3, S("tacocat"), S(""), I(3)), 3);
  expect_int(call("indexOf", 3, S("tacocat"), S("a"), I(3)), 5);
  expect_int(call("indexOf", 3, S("tacocat"), S("at"), I(3)), 5);
  expect_int(call("indexOf", 2, S("ta©o©αT"), S("©")), 2);
  expect_int(call("indexOf", 3, S("ta©o©αT"), S("©"), I(3)), 4);
  expect_int(call("indexOf", 2, S("ijk"), S("k")), 2);
  expect_int(call("indexOf", 2, S("hello wello"), S("hello wello")), 0);
  expect_int(call("indexOf", 2, S("ab"), S("abc")), -1);
  expect_int(call("indexOf", 2, S(""), S("a")), -1);
  expect_err(call("indexOf", 3, S("tacocat"), S("a"), I(30)), CEL_ERR_RANGE,
             "index out of range: 30");
  expect_err(call("indexOf", 3, S("tacocat"), S("a"), I(-1)), CEL_ERR_RANGE,
             "index out of range: -1");
  expect_err(call("indexOf", 2, I(24), S("2")), CEL_ERR_NO_OVERLOAD, "indexOf");
  expect_err(call("indexOf", 2, S("hello"), kv_bool(true)), CEL_ERR_NO_OVERLOAD, "indexOf");
  expect_err(call("indexOf", 3, S("42"), I(4), I(0)), CEL_ERR_NO_OVERLOAD, "indexOf");
  expect_err(call("indexOf", 4, S("42"), S("4"), I(0), I(1)), CEL_ERR_NO_OVERLOAD, "indexOf");
}

static void test_last_index_of(void **state) {
  (void)state;
  expect_int(call("lastIndexOf", 2, S(""), S("@@")), -1);
  expect_int(call("lastIndexOf", 2, S("tacocat"), S("")), 7);
  expect_int(call("lastIndexOf", 2, S("tacocat"), S("at")), 5);
  expect_int(call("lastIndexOf", 2, S("tacocat"), S("none")), -1);
  expect_int(call("lastIndexOf", 3, S("tacocat"), S(""), I(3)), 3);
  expect_int(call("lastIndexOf", 3, S("tacocat"), S("a"), I(3)), 1);
  expect_int(call("lastIndexOf", 2, S("ta©o©αT"), S("©")), 4);
  expect_int(call("lastIndexOf", 3, S("ta©o©αT"), S("©α"), I(4)), 4);
  expect_int(call("lastIndexOf", 3, S("hello wello"), S("ello"), I(6)), 1);
  expect_int(call("lastIndexOf", 2, S("hello wello"), S("low")), -1);
  expect_int(call("lastIndexOf", 3, S("tacocat"), S("cat"), I(6)), 4);
  expect_int(call("lastIndexOf", 3, S("abcaa"), S("ab"), I(4)), 0);
  expect_int(call("lastIndexOf", 3, S("aa©a"), S("a©"), I(3)), 1);
  expect_err(call("lastIndexOf", 3, S("tacocat"), S("a"), I(-1)), CEL_ERR_RANGE,
             "index out of range: -1");
  expect_err(call("lastIndexOf", 3, S("tacocat"), S("a"), I(30)), CEL_ERR_RANGE,
             "index out of range: 30");
  expect_err(call("lastIndexOf", 2, S("x"), I(1)), CEL_ERR_NO_OVERLOAD, "lastIndexOf");
}

static void test_substring(void **state) {
  (void)state;
  expect_str(call("substring", 2, S("tacocat"), I(4)), "cat");
  expect_str(call("substring", 2, S("tacocat"), I(7)), "");
  expect_str(call("substring", 3, S("tacocat"), I(0), I(4)), "taco");
  expect_str(call("substring", 3, S("ta©o©αT"), I(2), I(6)), "©o©α");
  expect_str(call("substring", 3, S("ta©o©αT"), I(7), I(7)), "");
  expect_err(call("substring", 2, S("tacocat"), I(-1)), CEL_ERR_RANGE, "index out of range: -1");
  expect_err(call("substring", 2, S("tacocat"), I(8)), CEL_ERR_RANGE, "index out of range: 8");
  expect_err(call("substring", 3, S("tacocat"), I(1), I(50)), CEL_ERR_RANGE,
             "index out of range: 50");
  expect_err(call("substring", 3, S("tacocat"), I(2), I(1)), CEL_ERR_RANGE,
             "invalid substring range. start: 2, end: 1");
  expect_err(call("substring", 3, S("tacocat"), kv_bool(true), I(3)), CEL_ERR_NO_OVERLOAD,
             "substring");
  expect_err(call("substring", 3, S("tacocat"), I(0), kv_bool(false)), CEL_ERR_NO_OVERLOAD,
             "substring");
  expect_err(call("substring", 4, S("hello"), I(1), I(2), I(3)), CEL_ERR_NO_OVERLOAD, "substring");
}

/* ---- case, trim, reverse, quote ----------------------------------------- */

static void test_ascii_case(void **state) {
  (void)state;
  expect_str(call("lowerAscii", 1, S("TacoCat")), "tacocat");
  expect_str(call("lowerAscii", 1, S("TacoCÆt Xii")), "tacocÆt xii");
  expect_str(call("upperAscii", 1, S("tacoCat")), "TACOCAT");
  expect_str(call("upperAscii", 1, S("tacoCαt")), "TACOCαT");
  expect_str(call("upperAscii", 1, S("TacoCÆt Xii")), "TACOCÆT XII");
  expect_err(call("upperAscii", 1, I(1)), CEL_ERR_NO_OVERLOAD, "upperAscii");
}

static void test_trim(void **state) {
  (void)state;
  expect_str(call("trim", 1, S("  \ttrim\n    ")), "trim");
  expect_str(call("trim", 1, S("\xc2\x85\u00a0\u1680text")), "text");
  expect_str(call("trim", 1, S("text\u2000\u2001\u2002\u2003\u2004\u2004\u2006\u2007\u2008\u2009")),
             "text");
  expect_str(call("trim", 1, S("\u200atext\u2028\u2029\u202F\u205F\u3000")), "text");
  /* zero-width space is not white space */
  expect_str(call("trim", 1, S("\u200btext\u200b")), "\u200btext\u200b");
  expect_str(call("trim", 1, S("   ")), "");
  expect_str(call("trim", 1, S("a b")), "a b");
}

static void test_reverse(void **state) {
  (void)state;
  expect_str(call("reverse", 1, S("gums")), "smug");
  expect_str(call("reverse", 1, S("☺")), "☺");
  expect_str(call("reverse", 1, S("Ta©oCαt")), "tαCo©aT");
  expect_str(call("reverse", 1, S("")), "");
  expect_err(call("reverse", 1, L(0)), CEL_ERR_NO_OVERLOAD, "reverse");
}

static void test_quote(void **state) {
  (void)state;
  expect_str(call("strings.quote", 1, S("first\nsecond")), "\"first\\nsecond\"");
  expect_str(call("strings.quote", 1, S("bell\a")), "\"bell\\a\"");
  expect_str(call("strings.quote", 1, S("\bbackspace")), "\"\\bbackspace\"");
  expect_str(call("strings.quote", 1, S("\fform feed")), "\"\\fform feed\"");
  expect_str(call("strings.quote", 1, S("tab\t\r\v")), "\"tab\\t\\r\\v\"");
  expect_str(call("strings.quote", 1, S("double \\\\ slash")), "\"double \\\\\\\\ slash\"");
  expect_str(call("strings.quote", 1, S("mid \" quote")), "\"mid \\\" quote\"");
  expect_str(call("strings.quote", 1, S("завтра😀")), "\"завтра😀\"");
  expect_str(call("strings.quote", 1, S("")), "\"\"");
  /* invalid UTF-8 becomes U+FFFD */
  expect_str(call("strings.quote", 1, kv_string("a\xff", 2)), "\"a\xef\xbf\xbd\"");
  expect_err(call("strings.quote", 1, B("x")), CEL_ERR_NO_OVERLOAD, "strings.quote");
}

/* ---- replace, split, join ------------------------------------------------ */

static void test_replace(void **state) {
  (void)state;
  expect_str(call("replace", 3, S("12 days 12 hours"), S("{0}"), S("2")), "12 days 12 hours");
  expect_str(call("replace", 4, S("{0} days {0} hours"), S("{0}"), S("2"), I(1)),
             "2 days {0} hours");
  expect_str(call("replace", 3, S("2 days {0} hours"), S("{0}"), S("23")), "2 days 23 hours");
  expect_str(call("replace", 3, S("1 ©αT taco"), S("αT"), S("o©α")), "1 ©o©α taco");
  expect_str(call("replace", 4, S("hello hello"), S("he"), S("we"), I(-1)), "wello wello");
  expect_str(call("replace", 4, S("hello hello"), S("he"), S("we"), I(0)), "hello hello");
  expect_str(call("replace", 3, S("ab"), S(""), S(".")), ".a.b.");
  expect_str(call("replace", 4, S("ab"), S(""), S("."), I(2)), ".a.b");
  expect_str(call("replace", 3, S("©α"), S(""), S("-")), "-©-α-");
  expect_str(call("replace", 3, S("aaa"), S("a"), S("")), "");
  expect_err(call("replace", 3, I(42), I(2), I(1)), CEL_ERR_NO_OVERLOAD, "replace");
  expect_err(call("replace", 3, S("42"), S("2"), I(1)), CEL_ERR_NO_OVERLOAD, "replace");
  expect_err(call("replace", 4, S("42"), S("2"), S("1"), S("1")), CEL_ERR_NO_OVERLOAD, "replace");
  expect_err(call("replace", 5, S("42"), S("2"), S("1"), I(1), kv_bool(false)), CEL_ERR_NO_OVERLOAD,
             "replace");
}

static void test_split(void **state) {
  (void)state;
  expect_strs(call("split", 2, S("hello world"), S(" ")), "hello", "world");
  kv *r = call("split", 3, S("hello world events!"), S(" "), I(0));
  assert_int_equal(r->kind, KV_LIST);
  assert_int_equal(kv_len(r), 0);
  kv_unref(r);
  expect_strs(call("split", 3, S("hello world events!"), S(" "), I(1)), "hello world events!");
  expect_strs(call("split", 3, S("hello hello hello"), S(" "), I(2)), "hello", "hello hello");
  expect_strs(call("split", 3, S("hello hello hello"), S(" "), I(-1)), "hello", "hello", "hello");
  expect_strs(call("split", 2, S("a,b,"), S(",")), "a", "b", "");
  expect_strs(call("split", 2, S(""), S(",")), "");
  expect_strs(call("split", 2, S("a©b"), S("")), "a", "©", "b");
  expect_strs(call("split", 3, S("a©bc"), S(""), I(2)), "a", "©bc");
  expect_err(call("split", 2, I(42), S("2")), CEL_ERR_NO_OVERLOAD, "split");
  expect_err(call("split", 3, S("42"), I(2), I(1)), CEL_ERR_NO_OVERLOAD, "split");
  expect_err(call("split", 4, S("42"), S("2"), I(1), I(1)), CEL_ERR_NO_OVERLOAD, "split");
}

static void test_join(void **state) {
  (void)state;
  expect_str(call("join", 1, L(2, S("x"), S("y"))), "xy");
  expect_str(call("join", 2, L(2, S("x"), S("y")), S("-")), "x-y");
  expect_str(call("join", 1, L(0)), "");
  expect_str(call("join", 2, L(0), S("/")), "");
  expect_str(call("join", 2, L(1, S("only")), S(", ")), "only");
  expect_err(call("join", 1, L(2, S("x"), I(1))), CEL_ERR_NO_OVERLOAD, "join");
  expect_err(call("join", 1, S("xy")), CEL_ERR_NO_OVERLOAD, "join");
  expect_err(call("join", 2, L(1, S("x")), I(1)), CEL_ERR_NO_OVERLOAD, "join");
}

/* ---- format -------------------------------------------------------------- */

static void test_format_basic(void **state) {
  (void)state;
  expect_str(call("format", 2, S("no substitution"), L(0)), "no substitution");
  expect_str(call("format", 2, S("str is %s and some more"), L(1, S("filler"))),
             "str is filler and some more");
  expect_str(call("format", 2, S("%% and also %%"), L(0)), "% and also %");
  expect_str(call("format", 2, S("%%%s%%"), L(1, S("text"))), "%text%");
  expect_str(
      call("format", 2, S("%d %d %d, %s %s %s"), L(6, I(1), I(2), I(3), S("A"), S("B"), S("C"))),
      "1 2 3, A B C");
  expect_str(call("format", 2, S("%.3f"), L(1, D(1.2345))), "1.234");
  expect_str(call("format", 2, S("%f"), L(1, D(2.71828))), "2.718280");
  expect_str(call("format", 2, S("%f"), L(1, U(3))), "3.000000");
  expect_str(call("format", 2, S("%.0f"), L(1, D(123.0))), "123");
  expect_str(call("format", 2, S("%.0f"), L(1, D(1.5))), "2");
  expect_str(call("format", 2, S("%.0f"), L(1, D(2.5))), "2");
  expect_str(call("format", 2, S("%.3f"), L(1, D(123.4999))), "123.500");
  expect_str(call("format", 2, S("%.3f"), L(1, D(-123.4999))), "-123.500");
  expect_str(call("format", 2, S("%.5f"), L(1, D(-1.2))), "-1.20000");
  expect_str(call("format", 2, S("%.6e"), L(1, D(1052.032911275))), "1.052033e+03");
  expect_str(call("format", 2, S("%e"), L(1, I(2))), "2.000000e+00");
  expect_str(call("format", 2, S("%e"), L(1, D(NAN))), "NaN");
  expect_str(call("format", 2, S("%f"), L(1, D(-INFINITY))), "-Infinity");
  expect_str(call("format", 2, S("%d"), L(1, D(NAN))), "NaN");
  expect_str(call("format", 2, S("%d"), L(1, D(INFINITY))), "Infinity");
  expect_str(call("format", 2, S("%d"), L(1, U(64))), "64");
  expect_str(call("format", 2, S("%d"), L(1, I(-7))), "-7");
}

static void test_format_integers(void **state) {
  (void)state;
  expect_str(call("format", 2, S("5 in binary: %b"), L(1, I(5))), "5 in binary: 101");
  expect_str(call("format", 2, S("%b"), L(1, U(64))), "1000000");
  expect_str(call("format", 2, S("%b"), L(1, kv_bool(true))), "1");
  expect_str(call("format", 2, S("%b"), L(1, I(-5))), "-101");
  expect_str(call("format", 2, S("%o"), L(1, U(65535))), "177777");
  expect_str(call("format", 2, S("%o"), L(1, I(30))), "36");
  expect_str(call("format", 2, S("%x is 20 in hex"), L(1, I(30))), "1e is 20 in hex");
  expect_str(call("format", 2, S("%X"), L(1, I(30))), "1E");
  expect_str(call("format", 2, S("%x"), L(1, I(-255))), "-ff");
  expect_str(call("format", 2, S("%x"), L(1, U(UINT64_MAX))), "ffffffffffffffff");
  expect_str(call("format", 2, S("%x"), L(1, S("Hello world!"))), "48656c6c6f20776f726c6421");
  expect_str(call("format", 2, S("%X"), L(1, B("byte string"))), "6279746520737472696E67");
  expect_str(call("format", 2, S("%d"), L(1, I(INT64_MIN))), "-9223372036854775808");
  expect_str(call("format", 2, S("%b"), L(1, I(INT64_MIN))),
             "-1000000000000000000000000000000000000000000000000000000000000000");
}

static void test_format_strings(void **state) {
  (void)state;
  expect_str(call("format", 2, S("%s"), L(1, kv_null())), "null");
  expect_str(call("format", 2, S("%s"), L(1, I(999999999999))), "999999999999");
  expect_str(call("format", 2, S("%s"), L(1, B("xyz"))), "xyz");
  expect_str(call("format", 2, S("%s %s"), L(2, kv_bool(true), kv_bool(false))), "true false");
  expect_str(call("format", 2, S("%s"), L(1, kv_type("int"))), "int");
  expect_str(call("format", 2, S("%s, %s"), L(2, I(32), D(56.8))), "32, 56.8");
  expect_str(call("format", 2, S("%s"), L(1, D(1e20))), "100000000000000000000");
  expect_str(call("format", 2, S("%s"), L(1, D(0.000001))), "0.000001");
  expect_str(call("format", 2, S("%s"), L(1, D(-0.0))), "-0");
  expect_str(call("format", 2, S("%s"), L(1, D(3.0))), "3");
  /* 2023-02-03T23:31:20Z */
  expect_str(call("format", 2, S("%s"), L(1, kv_timestamp(1675467080, 0))), "2023-02-03T23:31:20Z");
  expect_str(call("format", 2, S("%s"), L(1, kv_timestamp(1675467080, 120000000))),
             "2023-02-03T23:31:20.12Z");
  expect_str(call("format", 2, S("%s"), L(1, kv_timestamp(-62135596800, 1))),
             "0001-01-01T00:00:00.000000001Z");
  expect_str(call("format", 2, S("%s"), L(1, kv_duration(6347, 0))), "6347s");
  expect_str(call("format", 2, S("%s"), L(1, kv_duration(-1, -500000000))), "-1.5s");
  expect_str(call("format", 2, S("%s"),
                  L(1, L(5, S("abc"), D(3.14), kv_null(), L(4, I(9), I(8), I(7), I(6)),
                         kv_timestamp(1675467080, 0)))),
             "[abc, 3.14, null, [9, 8, 7, 6], 2023-02-03T23:31:20Z]");
  expect_str(call("format", 2, S("%s"), L(1, L(3, D(NAN), D(INFINITY), D(-INFINITY)))),
             "[NaN, Infinity, -Infinity]");

  kv *m = kv_map_new(5);
  kv_map_set_str(m, "key1", B("xyz"));
  kv_map_set_str(m, "key5", kv_null());
  kv_map_set_str(m, "key2", kv_duration(7200, 0));
  kv_map_set_str(m, "key4", kv_bool(true));
  kv_map_set_str(m, "key3", D(2.71828));
  expect_str(call("format", 2, S("%s"), L(1, m)),
             "{key1: xyz, key2: 7200s, key3: 2.71828, key4: true, key5: null}");

  kv *m2 = kv_map_new(3);
  kv_map_set(m2, I(1), S("value1"));
  kv_map_set(m2, kv_bool(true), D(NAN));
  kv_map_set(m2, U(2), S("value2"));
  expect_str(call("format", 2, S("%s"), L(1, m2)), "{1: value1, 2: value2, true: NaN}");
}

static void test_format_errors(void **state) {
  (void)state;
  expect_err(call("format", 2, S("%a"), L(1, I(1))), CEL_ERR_INVALID,
             "could not parse formatting clause: unrecognized formatting clause \"a\"");
  expect_err(call("format", 2, S("double is %E"), L(1, D(0.5))), CEL_ERR_INVALID,
             "unrecognized formatting clause \"E\"");
  expect_err(call("format", 2, S("%d %d %d"), L(2, I(0), I(1))), CEL_ERR_INVALID,
             "index 2 out of range");
  expect_err(call("format", 2, S("%d"), L(1, kv_duration(1802, 0))), CEL_ERR_INVALID,
             "error during formatting: decimal clause can only be used on integers, was given "
             "google.protobuf.Duration");
  expect_err(call("format", 2, S("null: %d"), L(1, kv_null())), CEL_ERR_INVALID,
             "was given null_type");
  expect_err(call("format", 2, S("%e"), L(1, kv_null())), CEL_ERR_INVALID,
             "scientific clause can only be used on doubles");
  expect_err(call("format", 2, S("%f"), L(1, S("x"))), CEL_ERR_INVALID,
             "fixed-point clause can only be used on doubles, was given string");
  expect_err(call("format", 2, S("%X"), L(1, kv_null())), CEL_ERR_INVALID,
             "only integers, byte buffers, and strings can be formatted as hex");
  expect_err(call("format", 2, S("%b"), L(1, D(1.0))), CEL_ERR_INVALID,
             "only integers and bools can be formatted as binary, was given double");
  expect_err(call("format", 2, S("%o"), L(1, kv_null())), CEL_ERR_INVALID,
             "octal clause can only be used on integers");
  expect_err(call("format", 2, S("%"), L(1, I(1))), CEL_ERR_INVALID, "unexpected end of string");
  expect_err(call("format", 2, S("%.3"), L(1, D(1))), CEL_ERR_INVALID,
             "could not find end of precision specifier");
  expect_err(call("format", 2, S("%s"), S("x")), CEL_ERR_NO_OVERLOAD, "format");
  expect_err(call("format", 2, I(1), L(0)), CEL_ERR_NO_OVERLOAD, "format");
}

/* ---- encoders ------------------------------------------------------------ */

static void test_base64(void **state) {
  (void)state;
  expect_str(call("base64.encode", 1, B("hello")), "aGVsbG8=");
  expect_str(call("base64.encode", 1, B("")), "");
  expect_str(call("base64.encode", 1, B("Hello World!")), "SGVsbG8gV29ybGQh");
  expect_str(call("base64.encode", 1, B("hi")), "aGk=");
  expect_str(call("base64.encode", 1, kv_bytes("\xff\xfe\x00", 3)), "//4A");

  const struct {
    const char *in, *out;
  } ok[] = {{"aGVsbG8=", "hello"},
            {"aGVsbG8", "hello"},
            {"aGk=", "hi"},
            {"aGk", "hi"},
            {"aA==", "h"},
            {"aA", "h"},
            {"", ""},
            {"SGVs\nbG8=", "Hello"},
            {"SGVsbG8gV29ybGQh", "Hello World!"}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    kv *r = call("base64.decode", 1, S(ok[i].in));
    if (r->kind != KV_BYTES || kv_len(r) != strlen(ok[i].out) ||
        memcmp(kv_str(r), ok[i].out, kv_len(r)) != 0) {
      print_error("base64.decode(%s): got kind %s %s\n", ok[i].in, kv_kind_name((kv_kind)r->kind),
                  r->kind == KV_ERROR ? r->u.err.msg : "");
      kv_unref(r);
      fail();
    }
    kv_unref(r);
  }
  kv *r = call("base64.decode", 1, S("//4A"));
  assert_int_equal(r->kind, KV_BYTES);
  assert_int_equal(kv_len(r), 3);
  assert_memory_equal(kv_str(r), "\xff\xfe\x00", 3);
  kv_unref(r);

  expect_err(call("base64.decode", 1, S("a")), CEL_ERR_INVALID, "illegal base64 data");
  expect_err(call("base64.decode", 1, S("aGk*")), CEL_ERR_INVALID,
             "illegal base64 data at input byte 3");
  expect_err(call("base64.decode", 1, S("aG=k")), CEL_ERR_INVALID, "illegal base64 data");
  expect_err(call("base64.decode", 1, S("aGk=aGk=")), CEL_ERR_INVALID, "illegal base64 data");
  expect_err(call("base64.decode", 1, B("aGk=")), CEL_ERR_NO_OVERLOAD, "base64.decode");
  expect_err(call("base64.encode", 1, S("hi")), CEL_ERR_NO_OVERLOAD, "base64.encode");
}

/* The tables declare the right call styles and arities. */
static void test_tables(void **state) {
  (void)state;
  const cel_fn_def *d = find_def("strings.quote");
  assert_int_equal(d->style, CEL_FN_GLOBAL);
  d = find_def("format");
  assert_int_equal(d->style, CEL_FN_MEMBER);
  assert_int_equal(d->min_args, 2);
  assert_int_equal(d->max_args, 2);
  d = find_def("indexOf");
  assert_int_equal(d->min_args, 2);
  assert_int_equal(d->max_args, 3);
  d = find_def("base64.decode");
  assert_int_equal(d->style, CEL_FN_GLOBAL);
  assert_int_equal(cel_strings_ndefs, 13);
  assert_int_equal(cel_encoders_ndefs, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_char_at),
      cmocka_unit_test(test_index_of),
      cmocka_unit_test(test_last_index_of),
      cmocka_unit_test(test_substring),
      cmocka_unit_test(test_ascii_case),
      cmocka_unit_test(test_trim),
      cmocka_unit_test(test_reverse),
      cmocka_unit_test(test_quote),
      cmocka_unit_test(test_replace),
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_join),
      cmocka_unit_test(test_format_basic),
      cmocka_unit_test(test_format_integers),
      cmocka_unit_test(test_format_strings),
      cmocka_unit_test(test_format_errors),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_tables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
