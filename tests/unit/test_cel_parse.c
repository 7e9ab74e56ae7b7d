/*
 * tests/unit/test_cel_parse.c: the CEL lexer and parser (core/cel/parse.c)
 * and the AST arena (core/cel/arena.c), checked through cel_parse and the
 * S-expression form of cel_ast_dump: precedence and associativity, every
 * literal form and escape in both dialects, error messages with their line
 * and column, reserved words, macros and their arity rules, the nesting
 * limit, node offsets, and two corpus checks that load the shared
 * conformance data at run time (KOREO_SHARED, default /work/shared):
 *  - every CEL conformance expression parses in the standard dialect
 *    (optionals and the test-only block_ext excluded);
 *  - every Koreo corpus case whose upstream result is a compile (parse)
 *    error fails to parse in the Koreo dialect, except those listed in
 *    cel-wins.jsonl, and every other case with an `encoded` text parses.
 */
#include <dirent.h>
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

kv *cel_arena_keep(cel_arena *a, kv *v); /* core/cel/arena.c */

static const cel_parse_opts STD = {.dialect = CEL_DIALECT_STANDARD};
static const cel_parse_opts KOREO = {.dialect = CEL_DIALECT_KOREO};

/* ---- helpers ------------------------------------------------------------- */

/* Parse src[0..len) and return the dump (malloc'ed) or NULL with *st. */
static char *pdump_n(const char *src, size_t len, const cel_parse_opts *o, cel_status *st) {
  cel_arena a = {0};
  cel_node *n = cel_parse(&a, src, len, o, st);
  char *d = n ? cel_ast_dump(n) : NULL;
  cel_arena_free(&a);
  return d;
}

static void check_dump_n(const char *src, size_t len, const cel_parse_opts *o, const char *want,
                         int line) {
  cel_status st;
  char *d = pdump_n(src, len, o, &st);
  if (!d) {
    print_error("line %d: %s: unexpected parse error %u:%u %s\n", line, src, st.line, st.col,
                st.msg);
    fail();
  }
  if (strcmp(d, want) != 0) {
    print_error("line %d: %s\n  got:  %s\n  want: %s\n", line, src, d, want);
    free(d);
    fail();
  }
  free(d);
}
#define DUMP(src, want) check_dump_n(src, strlen(src), &STD, want, __LINE__)
#define KDUMP(src, want) check_dump_n(src, strlen(src), &KOREO, want, __LINE__)
#define ODUMP(opts, src, want) check_dump_n(src, strlen(src), opts, want, __LINE__)

/* Expect a parse error whose message contains `frag`, at line:col (0: any). */
static void check_err_n(const char *src, size_t len, const cel_parse_opts *o, const char *frag,
                        unsigned eline, unsigned ecol, int line) {
  cel_status st;
  memset(&st, 0x55, sizeof st);
  char *d = pdump_n(src, len, o, &st);
  if (d) {
    print_error("line %d: %s: expected an error, parsed as %s\n", line, src, d);
    free(d);
    fail();
  }
  if (st.code != CEL_ERR_PARSE || st.stage != 1) {
    print_error("line %d: %s: code %d stage %d\n", line, src, st.code, st.stage);
    fail();
  }
  if (!strstr(st.msg, frag)) {
    print_error("line %d: %s: message '%s' lacks '%s'\n", line, src, st.msg, frag);
    fail();
  }
  if (eline && (st.line != eline || st.col != ecol)) {
    print_error("line %d: %s: error at %u:%u, want %u:%u (%s)\n", line, src, st.line, st.col, eline,
                ecol, st.msg);
    fail();
  }
}
#define ERR(src, frag, l, c) check_err_n(src, strlen(src), &STD, frag, l, c, __LINE__)
#define KERR(src, frag, l, c) check_err_n(src, strlen(src), &KOREO, frag, l, c, __LINE__)
#define OERR(opts, src, frag, l, c) check_err_n(src, strlen(src), opts, frag, l, c, __LINE__)

/* ---- precedence, associativity ----------------------------------------- */

static void test_precedence(void **state) {
  (void)state;
  DUMP("1 + 2 * 3", "(+ (lit 1) (* (lit 2) (lit 3)))");
  DUMP("(1 + 2) * 3", "(* (+ (lit 1) (lit 2)) (lit 3))");
  DUMP("a || b && c", "(|| (ident a) (&& (ident b) (ident c)))");
  DUMP("a && b || c", "(|| (&& (ident a) (ident b)) (ident c))");
  DUMP("a == b && c != d", "(&& (== (ident a) (ident b)) (!= (ident c) (ident d)))");
  DUMP("a + b < c * d", "(< (+ (ident a) (ident b)) (* (ident c) (ident d)))");
  DUMP("x in [1, 2] || y", "(|| (in (ident x) (list (lit 1) (lit 2))) (ident y))");
  DUMP("a - b % c / d", "(- (ident a) (/ (% (ident b) (ident c)) (ident d)))");
  DUMP("!a && b", "(&& (! (ident a)) (ident b))");
  DUMP("-a.b * c", "(* (- (select (ident a) b)) (ident c))");
  DUMP("a ? b || c : d && e", "(?: (ident a) (|| (ident b) (ident c)) (&& (ident d) (ident e)))");
  DUMP("a || b ? c : d", "(?: (|| (ident a) (ident b)) (ident c) (ident d))");
  DUMP("a.b[c].d(e)[f]",
       "(index (mcall (index (select (ident a) b) (ident c)) d (ident e)) (ident f))");
}

static void test_associativity(void **state) {
  (void)state;
  DUMP("1 - 2 - 3", "(- (- (lit 1) (lit 2)) (lit 3))");
  DUMP("8 / 4 / 2", "(/ (/ (lit 8) (lit 4)) (lit 2))");
  DUMP("a < b < c", "(< (< (ident a) (ident b)) (ident c))");
  DUMP("a == b == c", "(== (== (ident a) (ident b)) (ident c))");
  DUMP("a || b || c", "(|| (|| (ident a) (ident b)) (ident c))");
  DUMP("a && b && c", "(&& (&& (ident a) (ident b)) (ident c))");
  /* the conditional is right-associative; its middle is a ConditionalOr */
  DUMP("a ? b : c ? d : e", "(?: (ident a) (ident b) (?: (ident c) (ident d) (ident e)))");
  ERR("a ? b ? c : d : e", "expected ':' but found '?'", 1, 7);
  DUMP("a ? (b ? c : d) : e", "(?: (ident a) (?: (ident b) (ident c) (ident d)) (ident e))");
}

static void test_unary(void **state) {
  (void)state;
  DUMP("!!x", "(! (! (ident x)))");
  DUMP("--x", "(- (- (ident x)))");
  DUMP("- - x", "(- (- (ident x)))");
  DUMP("-x", "(- (ident x))");
  DUMP("-(1)", "(- (lit 1))");
  DUMP("-1", "(lit -1)");
  DUMP("- 1", "(lit -1)");
  DUMP("--1", "(- (lit -1))");
  DUMP("-1.5", "(lit -1.5)");
  DUMP("-0.0", "(lit -0.0)");
  DUMP("-1u", "(- (lit 1u))");
  DUMP("1 - -1", "(- (lit 1) (lit -1))");
  DUMP("1-1", "(- (lit 1) (lit 1))");
  DUMP("-9223372036854775808", "(lit -9223372036854775808)");
  DUMP("-0x8000000000000000", "(lit -9223372036854775808)");
  DUMP("--9223372036854775808", "(- (lit -9223372036854775808))");
  DUMP("-(-9223372036854775808)", "(- (lit -9223372036854775808))");
  DUMP("(-9223372036854775808) * -1", "(* (lit -9223372036854775808) (lit -1))");
  ERR("-(9223372036854775808)", "integer literal out of range: 9223372036854775808", 1, 3);
  ERR("-9223372036854775809", "integer literal out of range: -9223372036854775809", 1, 1);
  /* the grammar has runs of one operator only */
  ERR("!-x", "expected an expression but found '-'", 1, 2);
  ERR("-!x", "expected an expression but found '!'", 1, 2);
  ERR("!", "unexpected end of input", 1, 2);
  DUMP("!(-x)", "(! (- (ident x)))");
}

/* ---- literals ------------------------------------------------------------ */

static void test_numbers(void **state) {
  (void)state;
  DUMP("0", "(lit 0)");
  DUMP("007", "(lit 7)");
  DUMP("9223372036854775807", "(lit 9223372036854775807)");
  DUMP("0x1F", "(lit 31)");
  DUMP("0xff", "(lit 255)");
  DUMP("0x7FFFFFFFFFFFFFFF", "(lit 9223372036854775807)");
  DUMP("0U", "(lit 0u)");
  DUMP("123456789u", "(lit 123456789u)");
  DUMP("18446744073709551615u", "(lit 18446744073709551615u)");
  DUMP("0xFFFFFFFFFFFFFFFFu", "(lit 18446744073709551615u)");
  DUMP("0x55555555U", "(lit 1431655765u)");
  DUMP("1.5", "(lit 1.5)");
  DUMP(".5", "(lit 0.5)");
  DUMP("1e3", "(lit 1000.0)");
  DUMP("1E+3", "(lit 1000.0)");
  DUMP("2.5e-3", "(lit 0.0025)");
  DUMP("0e+0", "(lit 0.0)");
  DUMP("-2.3e+1", "(lit -23.0)");
  DUMP("1e999", "(lit inf)");
  DUMP("-1e999", "(lit -inf)");
  DUMP("5e-324", "(lit 5e-324)");
  DUMP("0.1000000000000000055511151231257827", "(lit 0.1)");
  ERR("9223372036854775808", "integer literal out of range: 9223372036854775808", 1, 1);
  ERR("0x8000000000000000", "integer literal out of range: 0x8000000000000000", 1, 1);
  ERR("18446744073709551616u", "unsigned integer literal out of range", 1, 1);
  ERR("99999999999999999999999", "integer literal out of range", 1, 1);
  ERR("1_000", "expected end of input but found '_000'", 1, 2);
  ERR("1.5u", "expected end of input but found 'u'", 1, 4);
  ERR("0x", "expected end of input but found 'x'", 1, 2);
  ERR("1e", "expected end of input but found 'e'", 1, 2);
  /* standard: "1." is not a number; the '.' selects */
  DUMP("1.flatten()", "(mcall (lit 1) flatten)");
  DUMP("1.e5", "(select (lit 1) e5)");
  ERR("5.", "expected a field name after '.' but found end of input", 1, 3);
  /* Koreo (cel-python): DIGIT+ "." DIGIT* is a double */
  KDUMP("5.", "(lit 5.0)");
  KDUMP("[.5, 5., 1e-3, 1E+3]", "(list (lit 0.5) (lit 5.0) (lit 0.001) (lit 1000.0))");
  KDUMP("1.e5", "(lit 100000.0)");
  KERR("1.flatten()", "expected end of input but found 'flatten'", 1, 3);
  KDUMP("[0x1F, 0xff, -0x10]", "(list (lit 31) (lit 255) (lit -16))");
  /* Koreo: out-of-range literals fail when evaluated, not when parsed */
  KDUMP("9223372036854775808",
        "(lit (error \"integer literal out of range: 9223372036854775808\"))");
  KDUMP("18446744073709551615", "(lit (error \"integer literal out of range: "
                                "18446744073709551615\"))");
  KDUMP("18446744073709551616u", "(lit (error \"unsigned integer literal out of range: "
                                 "18446744073709551616u\"))");
  KDUMP("-9223372036854775808", "(lit -9223372036854775808)");
  KDUMP("18446744073709551615u", "(lit 18446744073709551615u)");
  KDUMP("1e400", "(lit inf)");
  KERR("+5", "expected an expression but found '+'", 1, 1);
  KERR("1_000", "expected end of input but found '_000'", 1, 2);
}

static void test_error_literal_value(void **state) {
  (void)state;
  cel_arena a = {0};
  cel_status st;
  const char *src = "1 + 9223372036854775808";
  cel_node *n = cel_parse(&a, src, strlen(src), &KOREO, &st);
  assert_non_null(n);
  assert_int_equal(n->kind, CN_BINARY);
  const cel_node *lit = n->u.bin.b;
  assert_int_equal(lit->kind, CN_LIT);
  assert_int_equal(lit->offset, 4);
  assert_int_equal(lit->u.lit->kind, KV_ERROR);
  assert_int_equal(lit->u.lit->u.err.code, CEL_ERR_OVERFLOW);
  assert_int_equal(lit->u.lit->u.err.where, 4);
  cel_arena_free(&a);
}

static void test_strings(void **state) {
  (void)state;
  DUMP("'hello'", "(lit \"hello\")");
  DUMP("\"hello\"", "(lit \"hello\")");
  DUMP("'''hello'''", "(lit \"hello\")");
  DUMP("\"\"\"hello\"\"\"", "(lit \"hello\")");
  DUMP("''", "(lit \"\")");
  DUMP("r\"\"", "(lit \"\")");
  DUMP("r''''''", "(lit \"\")");
  DUMP("\"'\"", "(lit \"'\")");
  DUMP("'\"'", "(lit \"\\\"\")");
  DUMP("'''a''b'''", "(lit \"a''b\")");
  DUMP("\"\"\"x\"y\"\"\"", "(lit \"x\\\"y\")");
  DUMP("'''line1\nline2'''", "(lit \"line1\\nline2\")");
  DUMP("'\\a\\b\\f\\n\\r\\t\\v\\\\\\'\\\"\\`\\?'",
       "(lit \"\\x07\\x08\\x0C\\n\\r\\t\\x0B\\\\'\\\"`?\")");
  DUMP("'\\x41\\X42\\x4a\\x4B'", "(lit \"ABJK\")");
  DUMP("'\\xff'", "(lit \"\xC3\xBF\")"); /* \x is a code point in strings */
  DUMP("'\\000\\012\\177\\377'", "(lit \"\\x00\\n\\x7F\xC3\xBF\")");
  DUMP("'\\u00e9\\u01aB\\U0001F431'", "(lit \"\xC3\xA9\xC6\xAB\xF0\x9F\x90\xB1\")");
  DUMP("'\\U0010FFFF'", "(lit \"\xF4\x8F\xBF\xBF\")");
  DUMP("'日本語'", "(lit \"日本語\")");
  /* raw strings: no escape processing; a raw literal ends at the first quote */
  DUMP("r'\\n\\q\\u0000'", "(lit \"\\\\n\\\\q\\\\u0000\")");
  DUMP("R\"\\\\ \\?\"", "(lit \"\\\\\\\\ \\\\?\")");
  DUMP("r\"\\\"", "(lit \"\\\\\")");
  DUMP("r'''a\\'b'''", "(lit \"a\\\\'b\")");
  /* errors */
  ERR("'\\q'", "invalid escape sequence \\q", 1, 2);
  ERR("'ab\\x4'", "invalid escape sequence \\x: expected 2 hexadecimal digits", 1, 4);
  ERR("'\\u12'", "expected 4 hexadecimal digits", 1, 2);
  ERR("'\\U0001F4'", "expected 8 hexadecimal digits", 1, 2);
  ERR("'\\ud800'", "\\ud800: not a Unicode scalar value", 1, 2);
  ERR("'\\U00110000'", "not a Unicode scalar value", 1, 2);
  ERR("'\\400'", "invalid escape sequence \\4", 1, 2);
  ERR("'\\08'", "octal escapes need 3 digits", 1, 2);
  ERR("'\\é'", "invalid escape sequence \\é", 1, 2);
  ERR("'abc", "unterminated string literal", 1, 1);
  ERR("x + 'ab\ncd'", "unterminated string literal", 1, 5);
  ERR("'ab\rcd'", "unterminated string literal", 1, 1);
  ERR("'''abc''", "unterminated string literal", 1, 1);
  ERR("\"abc\\\"", "unterminated string literal", 1, 1);
  /* a lazy triple-quoted literal: the 4th quote opens a new literal */
  ERR("r\"\"\"line1\nsay \"hi\"\"\"\"", "unterminated string literal", 2, 11);
  ERR("r\"\"\"a\n\"\"\" b\"\"\"", "unterminated bytes literal", 2, 5);
  /* NUL bytes are allowed inside literals (len is explicit) */
  check_dump_n("'a\0b'", 5, &STD, "(lit \"a\\x00b\")", __LINE__);
  check_err_n("a\0", 2, &STD, "unexpected character '\\x00'", 1, 2, __LINE__);
}

static void test_bytes(void **state) {
  (void)state;
  DUMP("b'abc'", "(lit b\"abc\")");
  DUMP("B\"abc\"", "(lit b\"abc\")");
  DUMP("b'''a\nb'''", "(lit b\"a\\nb\")");
  DUMP("b'\\xff\\x00\\XFF'", "(lit b\"\\xFF\\x00\\xFF\")"); /* raw bytes, not UTF-8 */
  DUMP("b'\\377\\000'", "(lit b\"\\xFF\\x00\")");
  DUMP("b'ÿ'", "(lit b\"\\xC3\\xBF\")"); /* source text is UTF-8 */
  DUMP("b' \\\\ \\? \\\" \\' \\` '", "(lit b\" \\\\ ? \\\" ' ` \")");
  DUMP("br'\\n'", "(lit b\"\\\\n\")");
  DUMP("bR'''\\x00'''", "(lit b\"\\\\x00\")");
  DUMP("BR\"a\"", "(lit b\"a\")");
  ERR("b'\\u00ff'", "unicode escapes are not allowed in bytes literals", 1, 3);
  ERR("b'\\U000000ff'", "unicode escapes are not allowed in bytes literals", 1, 3);
  ERR("rb'x'", "expected end of input but found ''x''", 1, 3);
  ERR("b'abc", "unterminated bytes literal", 1, 1);
}

/* Koreo: cel-python's escape expansion (celstr/celbytes). */
static void test_koreo_strings(void **state) {
  (void)state;
  KDUMP("'\\q'", "(lit \"\\\\q\")"); /* unknown escapes keep the backslash */
  KDUMP("\"^\\d+$\"", "(lit \"^\\\\d+$\")");
  KDUMP("'a\\?b\\`'", "(lit \"a\\\\?b\\\\`\")");
  KDUMP("'\\X41'", "(lit \"\\\\X41\")");
  KDUMP("'\\x4'", "(lit \"\\\\x4\")");
  KDUMP("\"C:\\temp\"", "(lit \"C:\\temp\")"); /* \t is a TAB */
  KDUMP("'\\u00e9\\U0001F680\\x41\\101'", "(lit \"é🚀AA\")");
  KDUMP("'\\777'", "(lit \"ǿ\")"); /* octal code point U+01FF */
  KDUMP("\"\\x41BC\"", "(lit \"ABC\")");
  /* a lone surrogate is accepted (kept in its 3-byte form) */
  KDUMP("size('\\ud83d')", "(call size (lit \"\\xED\\xA0\\xBD\"))");
  /* the token regex backtracks: a trailing backslash survives */
  KDUMP("\"abc\\\"", "(lit \"abc\\\\\")");
  KDUMP("'\\'", "(lit \"\\\\\")");
  KDUMP("\"\"\"say \\\\\"x\\\\\" \\\"y\\\"\"\"\"", "(lit \"say \\\\\\\"x\\\\\\\" \\\"y\\\"\")");
  KDUMP("[r'a\\tb', '''x'y''', \"\"\"x\"y\"\"\"]",
        "(list (lit \"a\\\\tb\") (lit \"x'y\") (lit \"x\\\"y\"))");
  /* raw literals use the same token pattern: \" does not end them */
  KDUMP("r\"a\\\"b\"", "(lit \"a\\\\\\\"b\")");
  /* raw triple-quoted keeps newlines; a cooked one drops them (finditer) */
  KDUMP("r\"\"\"raw \\n here\nline2\"\"\"", "(lit \"raw \\\\n here\\nline2\")");
  KDUMP("\"\"\"a\nb\"\"\"", "(lit \"ab\")");
  KDUMP("'\\r'", "(lit \"\\r\")");
  KDUMP("\"a\rb\"", "(lit \"a\\rb\")");
  KDUMP("'\\'a'", "(lit \"'a\")");
  /* values cel-python rejects when evaluating */
  KDUMP("'\\899'", "(lit (error \"invalid string literal '\\\\899': invalid literal for int() "
                   "with base 8\"))");
  KDUMP("'\\U00110000'", "(lit (error \"invalid string literal '\\\\U00110000': chr() arg not "
                         "in range(0x110000)\"))");
  /* bytes */
  KDUMP("b\"\\xff\\x00\"", "(lit b\"\\xFF\\x00\")");
  KDUMP("b'\\u00ff'", "(lit b\"\\xFF\")");
  KDUMP("br'é'", "(lit b\"\\xE9\")");
  KDUMP("b'é'", "(lit b\"\\xC3\\xA9\")");
  KDUMP("b'\\u0100'",
        "(lit (error \"invalid bytes literal b'\\\\u0100': bytes must be in range(0, 256)\"))");
  KDUMP("br'日'", "(lit (error \"invalid bytes literal br'日': bytes must be in range(0, 256)\"))");
  /* errors */
  KERR("'abc", "unterminated string literal", 1, 1);
  KERR("'ab\ncd'", "unterminated string literal", 1, 1);
  KERR("{\"say \"hi\"\":1}", "expected ':' but found 'hi'", 1, 8);
  KERR("{\"a\nb\":1}", "unterminated string literal", 1, 2);
  KERR("r\"\"\"line1\nsay \"hi\"\"\"\"", "unterminated string literal", 2, 11);
  KERR("r\"\"\"a\n\"\"\" b\"\"\"", "unterminated bytes literal", 2, 5);
}

static void test_comments_whitespace(void **state) {
  (void)state;
  DUMP("1 // one\n + 2 // two", "(+ (lit 1) (lit 2))");
  DUMP("\t1\r\n+\f2 ", "(+ (lit 1) (lit 2))");
  DUMP("'// not a comment'", "(lit \"// not a comment\")");
  ERR("// only a comment", "unexpected end of input", 1, 18);
  ERR("   ", "unexpected end of input", 1, 4);
  ERR("", "unexpected end of input", 1, 1);
  KERR("", "unexpected end of input", 1, 1);
  KERR("inputs.a # comment", "unexpected character '#'", 1, 10);
  ERR("1 \v+ 2", "unexpected character '\\x0B'", 1, 3);
}

static void test_identifiers(void **state) {
  (void)state;
  DUMP("_a1", "(ident _a1)");
  DUMP("a.b.c", "(select (select (ident a) b) c)");
  DUMP(".a", "(ident .a)");
  DUMP(".a.b", "(select (ident .a) b)");
  DUMP(".f(x)", "(call .f (ident x))");
  DUMP("inputs.my-field", "(- (select (ident inputs) my) (ident field))");
  ERR("inputs.naïve", "unexpected character 'ï'", 1, 10);
  KERR("inputs.naïve", "unexpected character 'ï'", 1, 10);
  KERR("１２", "unexpected character '１'", 1, 1);
  DUMP(". a", "(ident .a)"); /* tokens may be separated by whitespace */
  ERR(".1a", "expected end of input but found 'a'", 1, 3);
  ERR("a.", "expected a field name after '.' but found end of input", 1, 3);
  ERR("a.1", "expected end of input but found '.1'", 1, 2); /* ".1" is a number */
  ERR("inputs.(", "expected a field name after '.' but found '('", 1, 8);
  ERR("a..b", "expected a field name after '.' but found '.'", 1, 3);
}

static void test_reserved_words(void **state) {
  (void)state;
  static const char *const words[] = {
      "as",  "break", "const",   "continue",  "else",   "for", "function", "if",    "import",
      "let", "loop",  "package", "namespace", "return", "var", "void",     "while", NULL};
  for (const char *const *w = words; *w; w++) {
    char src[128], want[256], msg[64];
    snprintf(src, sizeof src, "%s", *w);
    snprintf(msg, sizeof msg, "reserved identifier '%s'", *w);
    ERR(src, msg, 1, 1);
    snprintf(src, sizeof src, "1 + %s", *w);
    ERR(src, msg, 1, 5);
    snprintf(src, sizeof src, "%s(1)", *w);
    ERR(src, msg, 1, 1);
    snprintf(src, sizeof src, ".%s", *w);
    ERR(src, msg, 1, 2);
    /* allowed after '.', as receiver function names and struct fields */
    snprintf(src, sizeof src, "a.%s", *w);
    snprintf(want, sizeof want, "(select (ident a) %s)", *w);
    DUMP(src, want);
    snprintf(src, sizeof src, "a.%s()", *w);
    snprintf(want, sizeof want, "(mcall (ident a) %s)", *w);
    DUMP(src, want);
    snprintf(src, sizeof src, "T{%s: 1}", *w);
    snprintf(want, sizeof want, "(struct T (%s (lit 1)))", *w);
    DUMP(src, want);
    /* Koreo: ordinary identifiers */
    snprintf(src, sizeof src, "%s", *w);
    snprintf(want, sizeof want, "(ident %s)", *w);
    KDUMP(src, want);
    snprintf(src, sizeof src, "inputs.%s", *w);
    snprintf(want, sizeof want, "(select (ident inputs) %s)", *w);
    KDUMP(src, want);
  }
  DUMP("{ 'package': 1 }.package", "(select (map ((lit \"package\") (lit 1))) package)");
  DUMP("a.as() || true", "(|| (mcall (ident a) as) (lit true))");
  /* language keywords are never names */
  ERR("a.in", "expected a field name after '.' but found 'in'", 1, 3);
  ERR("a.true", "expected a field name after '.' but found 'true'", 1, 3);
  KERR("a.null", "expected a field name after '.' but found 'null'", 1, 3);
  ERR("in", "expected an expression but found 'in'", 1, 1);
  DUMP("true", "(lit true)");
  DUMP("false", "(lit false)");
  DUMP("null", "(lit null)");
  DUMP("trueish", "(ident trueish)");
  DUMP("index", "(ident index)");
  DUMP("x in y", "(in (ident x) (ident y))");
}

static void test_quoted_identifiers(void **state) {
  (void)state;
  DUMP("{'content-type': 1}.`content-type`",
       "(select (map ((lit \"content-type\") (lit 1))) content-type)");
  DUMP("a.`/api/v1`.b", "(select (select (ident a) /api/v1) b)");
  DUMP("a.`b c.d_1`", "(select (ident a) b c.d_1)");
  DUMP("has(a.`x-y`)", "(has (select (ident a) x-y))");
  DUMP("T{`a-b`: 1}", "(struct T (a-b (lit 1)))");
  ERR("`a`", "expected an expression but found '`a`'", 1, 1);
  ERR("a.``", "empty quoted identifier", 1, 3);
  ERR("a.`x#`", "character '#' is not allowed in a quoted identifier", 1, 5);
  ERR("a.`xy", "unterminated quoted identifier", 1, 3);
  ERR("a.`f`()", "expected end of input but found '('", 1, 6);
  KERR("a.`b`", "unexpected character '`'", 1, 3);
}

static void test_lists_maps_structs(void **state) {
  (void)state;
  DUMP("[]", "(list)");
  DUMP("[1]", "(list (lit 1))");
  DUMP("[1, 2,]", "(list (lit 1) (lit 2))");
  KDUMP("[1, 2,]", "(list (lit 1) (lit 2))"); /* cel-wins: cel/list/trailing-comma */
  DUMP("[[1], []]", "(list (list (lit 1)) (list))");
  ERR("[,]", "expected an expression but found ','", 1, 2);
  ERR("[1,,]", "expected an expression but found ','", 1, 4);
  ERR("[1 2]", "expected ',' or ']' but found '2'", 1, 4);
  ERR("[)]", "expected an expression but found ')'", 1, 2);
  ERR("[1", "expected ',' or ']' but found end of input", 1, 3);
  DUMP("{}", "(map)");
  DUMP("{'a': 1, 2: b,}", "(map ((lit \"a\") (lit 1)) ((lit 2) (ident b)))");
  DUMP("{a: {b: c}}", "(map ((ident a) (map ((ident b) (ident c)))))");
  ERR("{,}", "expected an expression but found ','", 1, 2);
  ERR("{a}", "expected ':' but found '}'", 1, 3);
  ERR("{a: 1 b: 2}", "expected ',' or '}' but found 'b'", 1, 7);
  DUMP("A{}", "(struct A)");
  DUMP("a.b.C{f: 1, g: x,}", "(struct a.b.C (f (lit 1)) (g (ident x)))");
  DUMP(".A.B{f: 1}", "(struct .A.B (f (lit 1)))");
  DUMP("A{f: B{}}.f", "(select (struct A (f (struct B))) f)");
  ERR("A{1: 2}", "expected a field name or '}' but found '1'", 1, 3);
  ERR("A{f 2}", "expected ':' but found '2'", 1, 5);
  ERR("(a){}", "expected end of input but found '{'", 1, 4);
  ERR("f(){}", "expected end of input but found '{'", 1, 4);
  ERR("a[0]{}", "expected end of input but found '{'", 1, 5);
  ERR("a.`b`{}", "expected end of input but found '{'", 1, 6);
}

static void test_calls(void **state) {
  (void)state;
  DUMP("f()", "(call f)");
  DUMP("f(1, 'a')", "(call f (lit 1) (lit \"a\"))");
  DUMP("a.f()", "(mcall (ident a) f)");
  DUMP("math.greatest(1, 2)", "(mcall (ident math) greatest (lit 1) (lit 2))");
  DUMP("a.b.f(x).g()", "(mcall (mcall (select (ident a) b) f (ident x)) g)");
  DUMP("int(uint(int(uint(7))))", "(call int (call uint (call int (call uint (lit 7)))))");
  DUMP("'a'.size()", "(mcall (lit \"a\") size)");
  ERR("f(1,)", "expected an expression but found ')'", 1, 5);
  ERR("f(1", "expected ',' or ')' but found end of input", 1, 4);
  ERR("f(1;", "unexpected character ';'", 1, 4);
  ERR("()", "expected an expression but found ')'", 1, 2);
  KERR("()", "expected an expression but found ')'", 1, 2);
}

static void test_macros(void **state) {
  (void)state;
  cel_parse_opts c2 = {.ext = CEL_EXT_COMPREHENSIONS2};
  cel_parse_opts bind = {.ext = CEL_EXT_BINDINGS};
  cel_parse_opts nomac = {.disable_macros = true, .ext = ~0u};
  DUMP("has(a.b)", "(has (select (ident a) b))");
  DUMP("has(a.b.c)", "(has (select (select (ident a) b) c))");
  DUMP("has({'a': 1}.a)", "(has (select (map ((lit \"a\") (lit 1))) a))");
  ERR("has(a)", "invalid argument to has() macro", 1, 5);
  ERR("has(a[0])", "invalid argument to has() macro", 1, 6);
  ERR("has(a.b())", "invalid argument to has() macro", 1, 8);
  KDUMP("has(a)", "(has (ident a))"); /* Koreo: has() of any expression */
  KDUMP("has(1 / 0)", "(has (/ (lit 1) (lit 0)))");
  KDUMP("has(inputs.s.lower())", "(has (mcall (select (ident inputs) s) lower))");
  DUMP("has(a, b)", "(call has (ident a) (ident b))"); /* wrong arity: a call */
  DUMP("has()", "(call has)");
  DUMP("x.has(a.b)", "(mcall (ident x) has (select (ident a) b))");
  ODUMP(&nomac, "has(a.b)", "(call has (select (ident a) b))");
  ODUMP(&nomac, "has(a)", "(call has (ident a))");

  DUMP("l.all(x, x > 0)", "(macro all x (ident l) (> (ident x) (lit 0)))");
  DUMP("l.exists(x, p)", "(macro exists x (ident l) (ident p))");
  DUMP("l.exists_one(x, p)", "(macro exists_one x (ident l) (ident p))");
  DUMP("l.map(x, x * 2)", "(macro map x (ident l) (* (ident x) (lit 2)))");
  DUMP("l.map(x, x > 1, x * 2)",
       "(macro map_filter x (ident l) (* (ident x) (lit 2)) (> (ident x) (lit 1)))");
  DUMP("l.filter(x, x > 1)", "(macro filter x (ident l) (> (ident x) (lit 1)))");
  DUMP("[1].all(x, [2].exists(y, x < y))",
       "(macro all x (list (lit 1)) (macro exists y (list (lit 2)) (< (ident x) (ident y))))");
  /* arity that matches no macro: an ordinary call */
  DUMP("l.all(x)", "(mcall (ident l) all (ident x))");
  DUMP("l.all(x, y, z)", "(mcall (ident l) all (ident x) (ident y) (ident z))");
  DUMP("l.filter(x, y, z)", "(mcall (ident l) filter (ident x) (ident y) (ident z))");
  DUMP("l.map(x, y, z, w)", "(mcall (ident l) map (ident x) (ident y) (ident z) (ident w))");
  DUMP("all(l, x, p)", "(call all (ident l) (ident x) (ident p))"); /* not a receiver */
  /* the iteration variable must be a simple name */
  ERR("l.all(x.y, true)", "iteration variable of all() must be a simple name", 1, 8);
  ERR("l.map(1, 2)", "iteration variable of map() must be a simple name", 1, 7);
  ERR("l.exists(.x, true)", "iteration variable of exists() must be a simple name", 1, 10);
  ODUMP(&nomac, "l.all(x.y, true)", "(mcall (ident l) all (select (ident x) y) (lit true))");
  ODUMP(&nomac, "l.map(x, x)", "(mcall (ident l) map (ident x) (ident x))");
  /* existsOne and the two-variable forms need CEL_EXT_COMPREHENSIONS2 */
  DUMP("l.existsOne(x, p)", "(mcall (ident l) existsOne (ident x) (ident p))");
  DUMP("l.all(k, v, p)", "(mcall (ident l) all (ident k) (ident v) (ident p))");
  DUMP("l.transformList(i, v, t)", "(mcall (ident l) transformList (ident i) (ident v) (ident t))");
  ODUMP(&c2, "l.existsOne(x, p)", "(macro exists_one x (ident l) (ident p))");
  ODUMP(&c2, "l.all(k, v, p)", "(macro all2 k v (ident l) (ident p))");
  ODUMP(&c2, "l.exists(k, v, p)", "(macro exists2 k v (ident l) (ident p))");
  ODUMP(&c2, "l.existsOne(k, v, p)", "(macro exists_one2 k v (ident l) (ident p))");
  ODUMP(&c2, "l.exists_one(k, v, p)", "(macro exists_one2 k v (ident l) (ident p))");
  ODUMP(&c2, "l.transformList(i, v, t)", "(macro transform_list i v (ident l) (ident t))");
  ODUMP(&c2, "l.transformList(i, v, f, t)",
        "(macro transform_list_if i v (ident l) (ident t) (ident f))");
  ODUMP(&c2, "m.transformMap(k, v, t)", "(macro transform_map k v (ident m) (ident t))");
  ODUMP(&c2, "m.transformMap(k, v, f, t)",
        "(macro transform_map_if k v (ident m) (ident t) (ident f))");
  ODUMP(&c2, "l.transformList(i, v)", "(mcall (ident l) transformList (ident i) (ident v))");
  ODUMP(&c2, "l.all(x, p)", "(macro all x (ident l) (ident p))");
  OERR(&c2, "l.all(k, k, p)", "duplicate variable name 'k' in all()", 1, 10);
  OERR(&c2, "l.transformMap(k, v.w, t)", "iteration variable of transformMap() must be a simple", 1,
       20);
  /* cel.bind needs CEL_EXT_BINDINGS and the receiver `cel` */
  DUMP("cel.bind(x, 1, x)", "(mcall (ident cel) bind (ident x) (lit 1) (ident x))");
  ODUMP(&bind, "cel.bind(x, 1, x + 1)", "(macro bind x (lit 1) (+ (ident x) (lit 1)))");
  ODUMP(&bind, "cel.bind(x, 1)", "(mcall (ident cel) bind (ident x) (lit 1))");
  ODUMP(&bind, "foo.bind(x, 1, x)", "(mcall (ident foo) bind (ident x) (lit 1) (ident x))");
  ODUMP(&bind, ".cel.bind(x, 1, x)", "(mcall (ident .cel) bind (ident x) (lit 1) (ident x))");
  OERR(&bind, "cel.bind(x.y, 1, 2)", "bound variable of cel.bind() must be a simple name", 1, 11);
  ODUMP(&nomac, "cel.bind(x, 1, x)", "(mcall (ident cel) bind (ident x) (lit 1) (ident x))");
  /* Koreo: the standard macros */
  KDUMP("inputs.items.filter(i, has(i.enabled) && i.enabled).map(i, i.name)",
        "(macro map i (macro filter i (select (ident inputs) items) (&& (has (select (ident i) "
        "enabled)) (select (ident i) enabled))) (select (ident i) name))");
  KDUMP("[10, 20, 30].map(x, x > 10, x)",
        "(macro map_filter x (list (lit 10) (lit 20) (lit 30)) (ident x) (> (ident x) (lit 10)))");
}

static void test_macro_fields(void **state) {
  (void)state;
  cel_parse_opts c2 = {.ext = CEL_EXT_COMPREHENSIONS2 | CEL_EXT_BINDINGS};
  cel_arena a = {0};
  cel_status st;
  const char *src = "l.map(x, x > 1, x * 2)";
  cel_node *n = cel_parse(&a, src, strlen(src), &c2, &st);
  assert_non_null(n);
  assert_int_equal(n->kind, CN_MACRO);
  assert_int_equal(n->u.macro.macro, CEL_M_MAP_FILTER);
  assert_string_equal(n->u.macro.var, "x");
  assert_null(n->u.macro.var2);
  assert_int_equal(n->u.macro.range->kind, CN_IDENT);
  assert_int_equal(n->u.macro.e2->u.bin.op, CEL_OP_GT);  /* filter */
  assert_int_equal(n->u.macro.e1->u.bin.op, CEL_OP_MUL); /* transform */
  assert_int_equal(n->offset, 5);
  src = "cel.bind(v, [1], v.size())";
  n = cel_parse(&a, src, strlen(src), &c2, &st);
  assert_non_null(n);
  assert_int_equal(n->u.macro.macro, CEL_M_BIND);
  assert_string_equal(n->u.macro.var, "v");
  assert_int_equal(n->u.macro.range->kind, CN_LIST);
  assert_int_equal(n->u.macro.e1->kind, CN_CALL);
  assert_null(n->u.macro.e2);
  src = "m.transformMap(k, v, k != 'a', v)";
  n = cel_parse(&a, src, strlen(src), &c2, &st);
  assert_non_null(n);
  assert_int_equal(n->u.macro.macro, CEL_M_TRANSFORM_MAP_IF);
  assert_string_equal(n->u.macro.var, "k");
  assert_string_equal(n->u.macro.var2, "v");
  assert_int_equal(n->u.macro.e2->kind, CN_BINARY);
  assert_int_equal(n->u.macro.e1->kind, CN_IDENT);
  cel_arena_free(&a);
}

static void test_optional_syntax_rejected(void **state) {
  (void)state;
  cel_parse_opts opt = {.ext = CEL_EXT_OPTIONALS};
  ERR("a.?b", "optional field selection '.?' is not supported", 1, 3);
  KERR("inputs.?missing", "optional field selection '.?' is not supported", 1, 8);
  OERR(&opt, "a[?0]", "optional index '[?' is not supported", 1, 3);
  ERR("[?a]", "optional list elements", 1, 2);
  ERR("{?a: b}", "optional map entries", 1, 2);
  ERR("A{?f: 1}", "optional field initializers", 1, 3);
  DUMP("optional.of(1)", "(mcall (ident optional) of (lit 1))");
}

/* ---- errors and positions ------------------------------------------------ */

static void test_error_positions(void **state) {
  (void)state;
  ERR("(1 + 2", "Syntax error: expected ')' but found end of input", 1, 7);
  ERR("f(1, 2", "expected ',' or ')' but found end of input", 1, 7);
  ERR("(1, 2)", "Syntax error: expected ')' but found ','", 1, 3);
  ERR("inputs.a +\n  inputs.b +\n  )", "expected an expression but found ')'", 3, 3);
  ERR("{\"ok\":1,\"nested\":{\"list\":[2,3 +]}}", "expected an expression but found ']'", 1, 32);
  ERR("true ? 1", "expected ':' but found end of input", 1, 9);
  ERR("true & false", "unexpected '&' (use '&&' for logical and)", 1, 6);
  ERR("a | b", "unexpected '|'", 1, 3);
  ERR("x = 1", "unexpected '=' (use '==' to compare)", 1, 3);
  ERR("1 2", "expected end of input but found '2'", 1, 3);
  ERR("a b c", "expected end of input but found 'b'", 1, 3);
  ERR("'日本' + #", "unexpected character '#'", 1, 8); /* columns count code points */
  ERR("'日本'\n  + '\\z'", "invalid escape sequence \\z", 2, 6);
  ERR("\xff", "invalid UTF-8 in expression (byte 0xFF)", 1, 1);
  ERR("'a\xc3'", "invalid UTF-8 in expression (byte 0xC3)", 1, 3);
  ERR("1 // \xed\xa0\x80", "invalid UTF-8", 1, 6);
  ERR("'\xc0\x80'", "invalid UTF-8", 1, 2);
  ERR("a.b(", "Syntax error: unexpected end of input", 1, 5);
  ERR("a[1", "expected ']' but found end of input", 1, 4);
  ERR("a[]", "expected an expression but found ']'", 1, 3);
  ERR("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18 19]",
      "expected ',' or ']' but found '19'", 1, 64);
  /* a long token is cut in the message */
  ERR("1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "found 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'", 1, 3);
  /* NULL status and NULL options are accepted */
  cel_arena a = {0};
  assert_null(cel_parse(&a, "(", 1, NULL, NULL));
  assert_non_null(cel_parse(&a, "1", 1, NULL, NULL));
  cel_arena_free(&a);
}

static void test_depth_limit(void **state) {
  (void)state;
  size_t n = 100000;
  char *s = malloc(2 * n + 2);
  /* deep parentheses, lists, calls, unary operators, member chains */
  const char *opens[] = {"(", "[", "f(", "!", "-", "{1:"};
  for (size_t k = 0; k < sizeof opens / sizeof *opens; k++) {
    size_t o = 0, l = strlen(opens[k]);
    for (size_t i = 0; i < n / l; i++)
      memcpy(s + o, opens[k], l), o += l;
    s[o++] = 'x';
    check_err_n(s, o, &STD, "expression nested too deeply (more than 250 levels)", 0, 0, __LINE__);
    check_err_n(s, o, &KOREO, "expression nested too deeply", 0, 0, __LINE__);
  }
  /* long operator chains and member chains build deep trees too */
  const char *ops[] = {"+x", "||x", "&&x", "<x", "*x", ".y", "[0]", ".f()", "-x"};
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    size_t o = 0, l = strlen(ops[k]);
    s[o++] = 'x';
    for (size_t i = 0; i < n / l; i++)
      memcpy(s + o, ops[k], l), o += l;
    check_err_n(s, o, &STD, "expression nested too deeply", 0, 0, __LINE__);
  }
  /* the conformance nesting (32 parens, 24 ternaries, 32 ors) is fine */
  size_t o = 0;
  for (int i = 0; i < 32; i++)
    s[o++] = '(';
  s[o++] = '7';
  for (int i = 0; i < 32; i++)
    s[o++] = ')';
  check_dump_n(s, o, &STD, "(lit 7)", __LINE__);
  /* and a nesting of 200 too */
  o = 0;
  for (int i = 0; i < 200; i++)
    s[o++] = '[';
  for (int i = 0; i < 200; i++)
    s[o++] = ']';
  cel_status st;
  char *d = pdump_n(s, o, &STD, &st);
  assert_non_null(d);
  free(d);
  /* a custom limit */
  cel_parse_opts lim = {.max_depth = 5};
  OERR(&lim, "((((((1))))))", "more than 5 levels", 0, 0);
  ODUMP(&lim, "((1))", "(lit 1)");
  ODUMP(&lim, "1 + 2 + 3", "(+ (+ (lit 1) (lit 2)) (lit 3))");
  OERR(&lim, "1+2+3+4+5+6+7+8", "nested too deeply", 0, 0);
  free(s);
}

static void test_offsets(void **state) {
  (void)state;
  cel_arena a = {0};
  cel_status st;
  const char *src = "a.b + f(x)[0] * -y ? 'é' : {1: c.m(d)}";
  cel_node *n = cel_parse(&a, src, strlen(src), &STD, &st);
  assert_non_null(n);
  assert_int_equal(n->kind, CN_COND);
  assert_int_equal(n->offset, 19); /* '?' */
  const cel_node *plus = n->u.cond.c;
  assert_int_equal(plus->kind, CN_BINARY);
  assert_int_equal(plus->offset, 4);
  assert_int_equal(plus->u.bin.a->kind, CN_SELECT);
  assert_int_equal(plus->u.bin.a->offset, 1);                   /* '.' */
  assert_int_equal(plus->u.bin.a->u.select.operand->offset, 0); /* a */
  const cel_node *mul = plus->u.bin.b;
  assert_int_equal(mul->offset, 14);
  assert_int_equal(mul->u.bin.a->kind, CN_INDEX);
  assert_int_equal(mul->u.bin.a->offset, 10);         /* '[' */
  assert_int_equal(mul->u.bin.a->u.bin.a->offset, 7); /* '(' of f( */
  assert_int_equal(mul->u.bin.a->u.bin.a->u.call.fn_slot, -1);
  assert_int_equal(mul->u.bin.b->kind, CN_UNARY);
  assert_int_equal(mul->u.bin.b->offset, 16);
  assert_int_equal(n->u.cond.t->offset, 21);
  const cel_node *map = n->u.cond.f;
  assert_int_equal(map->kind, CN_MAP);
  assert_int_equal(map->offset, 28);                /* bytes: 'é' is 2 */
  assert_int_equal(map->u.map.vals[0]->offset, 35); /* '(' of c.m( */
  cel_arena_free(&a);
}

static void test_dump_forms(void **state) {
  (void)state;
  DUMP("'a\"b\\\\c\\td'", "(lit \"a\\\"b\\\\c\\td\")");
  DUMP("[1u, 1.0, 1e20, null, true, b'\\x01']",
       "(list (lit 1u) (lit 1.0) (lit 1e+20) (lit null) (lit true) (lit b\"\\x01\"))");
  char *d = cel_ast_dump(NULL);
  assert_string_equal(d, "nil");
  free(d);
}

/* ---- arena --------------------------------------------------------------- */

static void test_arena(void **state) {
  (void)state;
  cel_arena a = {0};
  cel_arena_free(&a); /* a zeroed arena frees fine */
  for (int i = 0; i < 5000; i++) {
    size_t n = (size_t)(i % 97) + (i % 500 == 0 ? 100000 : 0);
    unsigned char *p = cel_arena_alloc(&a, n);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    for (size_t k = 0; k < n; k++)
      assert_int_equal(p[k], 0);
    memset(p, 0xAB, n);
  }
  char *s = cel_arena_strndup(&a, "hello world", 5);
  assert_string_equal(s, "hello");
  s = cel_arena_strndup(&a, "", 0);
  assert_string_equal(s, "");
  /* kept values are released by cel_arena_free (ASan reports a leak if not) */
  kv *v = cel_arena_keep(&a, kv_cstring("kept"));
  assert_string_equal(kv_str(v), "kept");
  for (int i = 0; i < 100; i++)
    cel_arena_keep(&a, kv_int(i));
  assert_null(cel_arena_keep(&a, NULL));
  cel_arena_free(&a);
  assert_null(a.blocks);
  /* reusable after free */
  assert_non_null(cel_arena_alloc(&a, 8));
  cel_arena_free(&a);
}

/* ---- regression inputs (fuzzing) ----------------------------------------- */

static void test_fuzz_regressions(void **state) {
  (void)state;
  /* every input must parse or fail cleanly in both dialects */
  static const struct {
    const char *s;
    size_t n;
  } inputs[] = {
#define IN(x) {x, sizeof(x) - 1}
      IN("\"\"\""),     IN("'''"),      IN("'''''"),
      IN("r'''\\"),     IN("\"\\"),     IN("'\\"),
      IN("\"\"\"\\\""), IN("b"),        IN("br"),
      IN("bR'"),        IN("'\\x"),     IN("'\\u"),
      IN("'\\U0010"),   IN("'\\0"),     IN("'\\01"),
      IN("."),          IN(".."),       IN("a.`"),
      IN("`"),          IN("0x"),       IN("0xu"),
      IN("1e+"),        IN("1."),       IN("\0"),
      IN("'\0"),        IN("'\\\0'"),   IN("\"\"\"\\\"\"\"\\\"\"\"\\"),
      IN("a[?"),        IN("{?"),       IN("has("),
      IN("x.all("),     IN("x.all(y,"), IN("cel.bind(a,b,"),
      IN("-"),          IN("--"),       IN("A{a:"),
      IN("A{a:1,"),
#undef IN
  };
  for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
    const cel_parse_opts *os[] = {&STD, &KOREO};
    for (int k = 0; k < 2; k++) {
      cel_parse_opts o = *os[k];
      o.ext = ~0u;
      cel_arena a = {0};
      cel_status st;
      cel_node *n = cel_parse(&a, inputs[i].s, inputs[i].n, &o, &st);
      if (n) {
        char *d = cel_ast_dump(n);
        free(d);
      } else {
        assert_int_equal(st.code, CEL_ERR_PARSE);
        assert_true(st.line >= 1 && st.col >= 1);
        assert_true(st.offset <= inputs[i].n);
        assert_true(st.msg[0] != 0);
      }
      cel_arena_free(&a);
    }
  }
}

/* ---- corpus checks ------------------------------------------------------- */

/* A minimal JSON reader for the JSON-lines corpora (strings keep their
 * length: expressions may contain NUL bytes). */
typedef struct jv {
  char t; /* 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null */
  char *s;
  size_t slen;
  bool b;
  size_t n;
  char **keys;
  struct jv **items;
} jv;

static void jv_free(jv *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    if (v->keys) free(v->keys[i]);
    jv_free(v->items[i]);
  }
  free(v->keys);
  free(v->items);
  free(v->s);
  free(v);
}

static void j_ws(const char **p) {
  while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
    (*p)++;
}

static void j_utf8(char **o, uint32_t cp) {
  unsigned char *u = (unsigned char *)*o;
  if (cp < 0x80) {
    *u++ = (unsigned char)cp;
  } else if (cp < 0x800) {
    *u++ = (unsigned char)(0xC0 | (cp >> 6));
    *u++ = (unsigned char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *u++ = (unsigned char)(0xE0 | (cp >> 12));
    *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    *u++ = (unsigned char)(0x80 | (cp & 0x3F));
  } else {
    *u++ = (unsigned char)(0xF0 | (cp >> 18));
    *u++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    *u++ = (unsigned char)(0x80 | (cp & 0x3F));
  }
  *o = (char *)u;
}

static uint32_t j_hex4(const char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (uint32_t)(c >= '0' && c <= '9'   ? c - '0'
                            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                   : 0);
  }
  return v;
}

static jv *j_value(const char **p);

static char *j_string(const char **p, size_t *len) {
  const char *s = *p + 1;
  char *out = malloc(strlen(s) + 1), *o = out;
  while (*s && *s != '"') {
    if (*s != '\\') {
      *o++ = *s++;
      continue;
    }
    s++;
    switch (*s) {
    case 'n': *o++ = '\n'; break;
    case 't': *o++ = '\t'; break;
    case 'r': *o++ = '\r'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'u': {
      uint32_t cp = j_hex4(s + 1);
      s += 4;
      if (cp >= 0xD800 && cp < 0xDC00 && s[1] == '\\' && s[2] == 'u') {
        uint32_t lo = j_hex4(s + 3);
        if (lo >= 0xDC00 && lo < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          s += 6;
        }
      }
      j_utf8(&o, cp);
      break;
    }
    default: *o++ = *s; break;
    }
    s++;
  }
  *len = (size_t)(o - out);
  *o = 0;
  *p = *s ? s + 1 : s;
  return out;
}

static jv *j_value(const char **p) {
  j_ws(p);
  jv *v = calloc(1, sizeof *v);
  char c = **p;
  if (c == '{' || c == '[') {
    v->t = c == '{' ? 'o' : 'a';
    (*p)++;
    size_t cap = 0;
    for (;;) {
      j_ws(p);
      if (**p == '}' || **p == ']') {
        (*p)++;
        break;
      }
      if (!**p) break;
      if (v->n == cap) {
        cap = cap ? cap * 2 : 8;
        v->items = realloc(v->items, cap * sizeof *v->items);
        if (v->t == 'o') v->keys = realloc(v->keys, cap * sizeof *v->keys);
      }
      if (v->t == 'o') {
        size_t kl;
        v->keys[v->n] = j_string(p, &kl);
        j_ws(p);
        if (**p == ':') (*p)++;
      }
      v->items[v->n++] = j_value(p);
      j_ws(p);
      if (**p == ',') (*p)++;
    }
  } else if (c == '"') {
    v->t = 's';
    v->s = j_string(p, &v->slen);
  } else if (c == 't' || c == 'f') {
    v->t = 'b';
    v->b = c == 't';
    *p += c == 't' ? 4 : 5;
  } else if (c == 'n') {
    v->t = 'z';
    *p += 4;
  } else {
    v->t = 'n';
    const char *s = *p;
    while (**p && strchr("+-0123456789.eE", **p))
      (*p)++;
    v->s = strndup(s, (size_t)(*p - s));
  }
  return v;
}

static jv *j_get(const jv *o, const char *key) {
  if (!o || o->t != 'o') return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (!strcmp(o->keys[i], key)) return o->items[i];
  return NULL;
}

/* KOREO_SHARED (default /work/shared) + rel, or NULL (then the test is
 * skipped when the default location is absent, fails when KOREO_SHARED
 * names a directory without the file). */
static FILE *open_shared(const char *rel, char *path, size_t cap) {
  const char *root = getenv("KOREO_SHARED");
  snprintf(path, cap, "%s/%s", root && *root ? root : "/work/shared", rel);
  FILE *f = fopen(path, "r");
  if (!f && root && *root) {
    print_error("cannot open %s\n", path);
    fail();
  }
  return f;
}

/* Read a JSON-lines file: calls fn(line object) for each line. */
static size_t each_line(FILE *f, void (*fn)(const jv *, void *), void *ctx) {
  size_t cap = 1 << 16, n = 0;
  char *line = malloc(cap);
  size_t len = 0;
  int c;
  for (;;) {
    c = fgetc(f);
    if (c == EOF || c == '\n') {
      if (len) {
        line[len] = 0;
        const char *p = line;
        jv *v = j_value(&p);
        fn(v, ctx);
        jv_free(v);
        n++;
      }
      len = 0;
      if (c == EOF) break;
      continue;
    }
    if (len + 2 > cap) line = realloc(line, cap *= 2);
    line[len++] = (char)c;
  }
  free(line);
  return n;
}

typedef struct corpus_ctx {
  size_t checked, failures;
  char **wins;
  size_t nwins;
} corpus_ctx;

static void cel_case(const jv *c, void *vctx) {
  corpus_ctx *ctx = vctx;
  const jv *id = j_get(c, "id"), *expr = j_get(c, "expr"), *dm = j_get(c, "disable_macros"),
           *tags = j_get(c, "tags");
  if (!id || !expr || expr->t != 's') return;
  cel_parse_opts o = {.dialect = CEL_DIALECT_STANDARD, .disable_macros = dm && dm->b};
  for (size_t i = 0; tags && i < tags->n; i++) {
    const char *t = tags->items[i]->s;
    if (!t) continue;
    if (!strcmp(t, "ext:bindings")) o.ext |= CEL_EXT_BINDINGS;
    if (!strcmp(t, "ext:comprehensions_v2")) o.ext |= CEL_EXT_COMPREHENSIONS2;
    if (!strcmp(t, "ext:strings")) o.ext |= CEL_EXT_STRINGS;
    if (!strcmp(t, "ext:math")) o.ext |= CEL_EXT_MATH;
    if (!strcmp(t, "ext:encoders")) o.ext |= CEL_EXT_ENCODERS;
  }
  cel_status st;
  char *d = pdump_n(expr->s, expr->slen, &o, &st);
  ctx->checked++;
  if (!d) {
    ctx->failures++;
    print_error("CEL corpus %s: %s\n  does not parse: %u:%u %s\n", id->s, expr->s, st.line, st.col,
                st.msg);
  }
  free(d);
}

static void test_corpus_cel(void **state) {
  (void)state;
  char path[1024];
  FILE *probe = open_shared("conformance/cel/basic.jsonl", path, sizeof path);
  if (!probe) {
    print_message("skipped: %s not found (set KOREO_SHARED)\n", path);
    skip();
  }
  fclose(probe);
  const char *root = getenv("KOREO_SHARED");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/conformance/cel", root && *root ? root : "/work/shared");
  DIR *dh = opendir(dir);
  assert_non_null(dh);
  corpus_ctx ctx = {0};
  size_t files = 0;
  struct dirent *de;
  while ((de = readdir(dh))) {
    const char *nm = de->d_name;
    size_t l = strlen(nm);
    if (l < 6 || strcmp(nm + l - 6, ".jsonl")) continue;
    /* optionals needs the optional syntax; block_ext is test-only */
    if (!strcmp(nm, "optionals.jsonl") || !strcmp(nm, "block_ext.jsonl")) continue;
    char rel[512];
    snprintf(rel, sizeof rel, "conformance/cel/%s", nm);
    FILE *f = open_shared(rel, path, sizeof path);
    assert_non_null(f);
    each_line(f, cel_case, &ctx);
    fclose(f);
    files++;
  }
  closedir(dh);
  print_message("CEL corpus: %zu files, %zu expressions, %zu failed to parse\n", files, ctx.checked,
                ctx.failures);
  assert_true(files >= 20);
  assert_true(ctx.checked >= 1000);
  assert_int_equal(ctx.failures, 0);
}

static void wins_line(const jv *c, void *vctx) {
  corpus_ctx *ctx = vctx;
  const jv *id = j_get(c, "id");
  if (!id || id->t != 's') return;
  ctx->wins = realloc(ctx->wins, (ctx->nwins + 1) * sizeof *ctx->wins);
  ctx->wins[ctx->nwins++] = strdup(id->s);
}

static size_t koreo_must_fail, koreo_must_parse;

static void koreo_case(const jv *c, void *vctx) {
  corpus_ctx *ctx = vctx;
  const jv *id = j_get(c, "id"), *enc = j_get(c, "encoded"), *exp = j_get(c, "expected");
  if (!id || !enc || enc->t != 's') return;
  const jv *err = j_get(exp, "error"), *stage = j_get(err, "stage");
  bool compile = stage && stage->s && !strcmp(stage->s, "compile");
  for (size_t i = 0; compile && i < ctx->nwins; i++)
    if (!strcmp(ctx->wins[i], id->s)) compile = false; /* CEL's result wins */
  cel_status st;
  char *d = pdump_n(enc->s, enc->slen, &KOREO, &st);
  ctx->checked++;
  if (compile) {
    koreo_must_fail++;
    if (d) {
      ctx->failures++;
      print_error("Koreo corpus %s: %s\n  parses as %s but upstream fails to compile\n", id->s,
                  enc->s, d);
    }
  } else {
    koreo_must_parse++;
    if (!d) {
      ctx->failures++;
      print_error("Koreo corpus %s: %s\n  does not parse: %u:%u %s\n", id->s, enc->s, st.line,
                  st.col, st.msg);
    }
  }
  free(d);
}

static void test_corpus_koreo(void **state) {
  (void)state;
  char path[1024];
  FILE *f = open_shared("conformance/koreo-expressions/cases.jsonl", path, sizeof path);
  if (!f) {
    print_message("skipped: %s not found (set KOREO_SHARED)\n", path);
    skip();
  }
  corpus_ctx ctx = {0};
  FILE *w = open_shared("conformance/koreo-expressions/cel-wins.jsonl", path, sizeof path);
  assert_non_null(w);
  each_line(w, wins_line, &ctx);
  fclose(w);
  assert_true(ctx.nwins >= 1);
  koreo_must_fail = koreo_must_parse = 0;
  each_line(f, koreo_case, &ctx);
  fclose(f);
  print_message("Koreo corpus: %zu encoded expressions (%zu must parse, %zu must fail), %zu "
                "mismatches\n",
                ctx.checked, koreo_must_parse, koreo_must_fail, ctx.failures);
  for (size_t i = 0; i < ctx.nwins; i++)
    free(ctx.wins[i]);
  free(ctx.wins);
  assert_true(ctx.checked >= 600);
  assert_true(koreo_must_fail >= 15);
  assert_int_equal(ctx.failures, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_associativity),
      cmocka_unit_test(test_unary),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_error_literal_value),
      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_bytes),
      cmocka_unit_test(test_koreo_strings),
      cmocka_unit_test(test_comments_whitespace),
      cmocka_unit_test(test_identifiers),
      cmocka_unit_test(test_reserved_words),
      cmocka_unit_test(test_quoted_identifiers),
      cmocka_unit_test(test_lists_maps_structs),
      cmocka_unit_test(test_calls),
      cmocka_unit_test(test_macros),
      cmocka_unit_test(test_macro_fields),
      cmocka_unit_test(test_optional_syntax_rejected),
      cmocka_unit_test(test_error_positions),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_offsets),
      cmocka_unit_test(test_dump_forms),
      cmocka_unit_test(test_arena),
      cmocka_unit_test(test_fuzz_regressions),
      cmocka_unit_test(test_corpus_cel),
      cmocka_unit_test(test_corpus_koreo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
