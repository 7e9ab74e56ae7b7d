/*
 * core/cel/parse.c: the CEL lexer and recursive-descent parser (source text
 * to the cel_node AST of cel_impl.h), the macro expansion done at parse
 * time (has, all, exists, exists_one, map, filter, cel.bind and the
 * two-variable comprehensions), and cel_ast_dump.
 *
 * Grammar (CEL language definition, "Syntax"), lowest precedence first:
 *   Expr     = ConditionalOr ["?" ConditionalOr ":" Expr]
 *   ConditionalOr / ConditionalAnd: left-associative "||" / "&&"
 *   Relation = Addition {("<"|"<="|">="|">"|"=="|"!="|"in") Addition}
 *   Addition = Multiplication {("+"|"-") Multiplication}
 *   Multiplication = Unary {("*"|"/"|"%") Unary}
 *   Unary    = Member | "!" {"!"} Member | "-" {"-"} Member
 *   Member   = Primary {"." SELECTOR ["(" [ExprList] ")"] | "[" Expr "]"}
 *   Primary  = ["."] IDENT ["(" [ExprList] ")"]
 *            | ["."] SELECTOR {"." SELECTOR} "{" [FieldInits] [","] "}"
 *            | "(" Expr ")" | "[" [ExprList] [","] "]"
 *            | "{" [MapInits] [","] "}" | LITERAL
 *
 * Two dialects (cel_parse_opts.dialect):
 *  - CEL_DIALECT_STANDARD follows the language definition as cel-go reads
 *    it: reserved words are errors as identifiers (allowed after '.' and as
 *    struct field names), backquoted field names (a.`b-c`), escapes as in
 *    "String and Bytes Literals", out-of-range integer literals are parse
 *    errors.
 *  - CEL_DIALECT_KOREO reproduces upstream Koreo's parser (cel-python 0.3.0,
 *    a lark grammar): reserved words are ordinary identifiers, "1." is a
 *    double, no backquoted names, string escapes as cel-python expands
 *    them (unknown escapes are kept literally, lone surrogates accepted,
 *    newlines inside cooked triple-quoted literals dropped), and literal
 *    values that cel-python only rejects when evaluating (integer out of
 *    range, bad octal digit, code point out of range) become CN_LIT nodes
 *    holding an error value, so evaluation fails as it does upstream.
 * Optional syntax (".?", "[?", "{?") is not supported in either dialect.
 *
 * Every node records the byte offset of its key token (operator, '.',
 * '[', '(' of a call, '{' of a literal, the literal, the identifier).
 */
#include "cel_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_DEPTH 250

/* ---- tokens ------------------------------------------------------------ */

typedef enum tkind {
  T_EOF,
  T_ERROR, /* a lexical error was recorded */
  T_IDENT,
  T_QIDENT, /* `quoted identifier` (standard dialect, field names only) */
  T_INT,
  T_UINT,
  T_DOUBLE,
  T_STRING,
  T_BYTES,
  T_TRUE,
  T_FALSE,
  T_NULL,
  T_IN,
  T_LPAREN,
  T_RPAREN,
  T_LBRACK,
  T_RBRACK,
  T_LBRACE,
  T_RBRACE,
  T_COMMA,
  T_DOT,
  T_COLON,
  T_QUEST,
  T_PLUS,
  T_MINUS,
  T_STAR,
  T_SLASH,
  T_PERCENT,
  T_BANG,
  T_LT,
  T_LE,
  T_GT,
  T_GE,
  T_EQ,
  T_NE,
  T_AND,
  T_OR,
} tkind;

typedef struct tok {
  tkind k;
  uint32_t off, len;   /* source span of the whole token */
  uint64_t mag;        /* T_INT / T_UINT: magnitude */
  bool big;            /* T_INT / T_UINT: magnitude does not fit 64 bits */
  bool reserved;       /* T_IDENT: a reserved word (standard dialect) */
  double d;            /* T_DOUBLE */
  kv *v;               /* T_STRING / T_BYTES: value (kept by the arena) */
  uint32_t noff, nlen; /* T_IDENT / T_QIDENT: the name's span */
} tok;

typedef struct parser {
  cel_arena *a;
  const char *src;
  size_t len;
  size_t pos; /* lexer position */
  bool koreo;
  bool no_macros;
  unsigned ext;
  int max_depth, depth;
  tok la; /* one token of lookahead */
  bool have_la;
  cel_status *st;
  bool failed;
  kv_strbuf lit; /* scratch for literal decoding */
} parser;

/* ---- errors ------------------------------------------------------------ */

/* Record the first error: offset, 1-based line and column (code points). */
static void fail(parser *p, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(parser *p, size_t off, const char *fmt, ...) {
  if (p->failed) return;
  p->failed = true;
  if (off > p->len) off = p->len;
  cel_status *st = p->st;
  st->code = CEL_ERR_PARSE;
  st->stage = 1;
  st->offset = (uint32_t)off;
  uint32_t line = 1;
  size_t ls = 0;
  for (size_t i = 0; i < off; i++)
    if (p->src[i] == '\n') {
      line++;
      ls = i + 1;
    }
  st->line = line;
  st->col = (uint32_t)kv_utf8_count(p->src + ls, off - ls) + 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->msg, sizeof st->msg, fmt, ap);
  va_end(ap);
}

/* Quote up to ~40 bytes of source text for a message: printable ASCII and
 * valid UTF-8 as is, other bytes as \xHH; "..." when cut. */
static const char *excerpt(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0, i = 0;
  while (i < n && o + 8 < cap) {
    if (i >= 40) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    unsigned char c = (unsigned char)s[i];
    uint32_t cp;
    size_t k;
    if (c >= 0x20 && c < 0x7F) {
      out[o++] = (char)c;
      i++;
    } else if (c >= 0x80 && (k = kv_utf8_decode(s + i, n - i, &cp)) > 0 && o + k + 8 < cap) {
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    } else {
      o += (size_t)snprintf(out + o, cap - o, "\\x%02X", c);
      i++;
    }
  }
  out[o] = 0;
  return out;
}

/* How a token is named in messages: "end of input" or its text quoted. */
static const char *tok_desc(parser *p, const tok *t, char *out, size_t cap) {
  if (t->k == T_EOF || t->k == T_ERROR) return "end of input";
  char ex[200];
  excerpt(p->src + t->off, t->len, ex, sizeof ex);
  snprintf(out, cap, "'%s'", ex);
  return out;
}

/* ---- scratch buffer ----------------------------------------------------- */

static void buf_byte(parser *p, unsigned c) { kv_strbuf_putc(&p->lit, (char)c); }
/* UTF-8 encode `cp` (<= 0x10FFFF); surrogates get the 3-byte form (only
 * the Koreo dialect lets them through; see the file comment). */
static void buf_cp(parser *p, uint32_t cp) { kv_strbuf_put_utf8(&p->lit, cp); }

/* ---- lexer ------------------------------------------------------------- */

static const char *const reserved_words[] = {
    "as",  "break", "const",   "continue",  "else",   "for", "function", "if",    "import",
    "let", "loop",  "package", "namespace", "return", "var", "void",     "while", NULL};

static bool is_ident_start(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_ident_char(int c) { return is_ident_start(c) || is_digit(c); }
static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int at(parser *p, size_t i) { return i < p->len ? (unsigned char)p->src[i] : -1; }

/* Read `n` hex digits at src[i..]; false if any is missing. */
static bool read_hex(parser *p, size_t i, size_t end, int n, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < n; k++) {
    if (i + (size_t)k >= end) return false;
    int h = hexval((unsigned char)p->src[i + (size_t)k]);
    if (h < 0) return false;
    v = v * 16 + (uint32_t)h;
  }
  *out = v;
  return true;
}

/* Standard dialect: decode the body [b, e) of a string/bytes literal into
 * p->lit (CEL "String and Bytes Literals").  Returns false after fail(). */
static bool decode_std(parser *p, size_t b, size_t e, bool raw, bool bytes) {
  kv_strbuf_clear(&p->lit);
  if (raw) {
    kv_strbuf_put(&p->lit, p->src + b, e - b);
    return true;
  }
  size_t i = b;
  while (i < e) {
    size_t run = i;
    while (run < e && p->src[run] != '\\')
      run++;
    kv_strbuf_put(&p->lit, p->src + i, run - i);
    i = run;
    if (i >= e) break;
    /* escape at i */
    int c = i + 1 < e ? (unsigned char)p->src[i + 1] : -1;
    uint32_t v;
    switch (c) {
    case 'a':
      buf_byte(p, 7);
      i += 2;
      continue;
    case 'b':
      buf_byte(p, 8);
      i += 2;
      continue;
    case 'f':
      buf_byte(p, 12);
      i += 2;
      continue;
    case 'n':
      buf_byte(p, 10);
      i += 2;
      continue;
    case 'r':
      buf_byte(p, 13);
      i += 2;
      continue;
    case 't':
      buf_byte(p, 9);
      i += 2;
      continue;
    case 'v':
      buf_byte(p, 11);
      i += 2;
      continue;
    case '\\':
    case '\'':
    case '"':
    case '`':
    case '?':
      buf_byte(p, (unsigned)c);
      i += 2;
      continue;
    case 'x':
    case 'X':
      if (!read_hex(p, i + 2, e, 2, &v)) {
        fail(p, i, "invalid escape sequence \\%c: expected 2 hexadecimal digits", c);
        return false;
      }
      if (bytes)
        buf_byte(p, v);
      else
        buf_cp(p, v);
      i += 4;
      continue;
    case 'u':
    case 'U': {
      int n = c == 'u' ? 4 : 8;
      if (bytes) {
        fail(p, i,
             "invalid escape sequence \\%c: unicode escapes are not allowed in bytes literals", c);
        return false;
      }
      if (!read_hex(p, i + 2, e, n, &v)) {
        fail(p, i, "invalid escape sequence \\%c: expected %d hexadecimal digits", c, n);
        return false;
      }
      if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        char ex[64];
        fail(p, i, "invalid escape sequence %s: not a Unicode scalar value",
             excerpt(p->src + i, (size_t)n + 2, ex, sizeof ex));
        return false;
      }
      buf_cp(p, v);
      i += 2 + (size_t)n;
      continue;
    }
    case '0':
    case '1':
    case '2':
    case '3': {
      int d1 = at(p, i + 2), d2 = at(p, i + 3);
      if (i + 3 >= e || d1 < '0' || d1 > '7' || d2 < '0' || d2 > '7') {
        fail(p, i, "invalid escape sequence \\%c: octal escapes need 3 digits, \\000 to \\377", c);
        return false;
      }
      v = (uint32_t)((c - '0') * 64 + (d1 - '0') * 8 + (d2 - '0'));
      if (bytes)
        buf_byte(p, v);
      else
        buf_cp(p, v);
      i += 4;
      continue;
    }
    default: {
      char ex[64];
      uint32_t cp;
      size_t k = c < 0 ? 0 : kv_utf8_decode(p->src + i + 1, e - i - 1, &cp);
      if (c < 0)
        fail(p, i, "invalid escape sequence: '\\' at the end of the literal");
      else
        fail(p, i, "invalid escape sequence \\%s",
             excerpt(p->src + i + 1, k ? k : 1, ex, sizeof ex));
      return false;
    }
    }
  }
  return true;
}

/* Koreo dialect: decode [b, e) the way cel-python 0.3.0's celstr/celbytes
 * do: the pattern \\[abfnrtv"'\\] | \\\d{3} | \\x.. | \\u.... | \\U........
 * | . applied with finditer, so an unknown escape keeps its backslash, a
 * newline (not matched by '.') is dropped, octal digits 8/9 or a code point
 * beyond U+10FFFF raise ValueError when the literal is evaluated.  Returns
 * NULL on success, else the message of that deferred evaluation error. */
static const char *decode_koreo(parser *p, size_t b, size_t e, bool raw, bool bytes) {
  kv_strbuf_clear(&p->lit);
  const unsigned char *s = (const unsigned char *)p->src;
  if (raw) {
    if (!bytes) {
      kv_strbuf_put(&p->lit, p->src + b, e - b);
      return NULL;
    }
    /* celbytes: bytes(ord(c) for c in text) */
    for (size_t i = b; i < e;) {
      uint32_t cp = 0;
      size_t k = kv_utf8_decode(p->src + i, e - i, &cp);
      if (!k) k = 1, cp = s[i];
      if (cp > 255) return "bytes must be in range(0, 256)";
      buf_byte(p, cp);
      i += k;
    }
    return NULL;
  }
  static const char simple_from[] = "abfnrtv\"'\\";
  static const char simple_to[] = "\a\b\f\n\r\t\v\"'\\";
  size_t i = b;
  while (i < e) {
    unsigned c = s[i];
    if (c == '\n') { /* '.' does not match a newline: finditer skips it */
      i++;
      continue;
    }
    if (c != '\\') { /* a run of plain characters, copied as is */
      size_t run = i + 1;
      while (run < e && s[run] != '\\' && s[run] != '\n')
        run++;
      kv_strbuf_put(&p->lit, p->src + i, run - i);
      i = run;
      continue;
    }
    if (i + 1 >= e) { /* a lone backslash at the end stays */
      buf_byte(p, c);
      i++;
      continue;
    }
    unsigned n = s[i + 1];
    const char *sp = n ? strchr(simple_from, (int)n) : NULL;
    if (sp) {
      buf_byte(p, (unsigned char)simple_to[sp - simple_from]);
      i += 2;
      continue;
    }
    uint32_t v;
    if (i + 3 < e && is_digit(s[i + 1]) && is_digit(s[i + 2]) && is_digit(s[i + 3])) {
      if (s[i + 1] > '7' || s[i + 2] > '7' || s[i + 3] > '7')
        return "invalid literal for int() with base 8";
      v = (uint32_t)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      if (bytes) {
        if (v > 255) return "bytes must be in range(0, 256)";
        buf_byte(p, v);
      } else {
        buf_cp(p, v);
      }
      i += 4;
      continue;
    }
    if (n == 'x' && read_hex(p, i + 2, e, 2, &v)) {
      if (bytes)
        buf_byte(p, v);
      else
        buf_cp(p, v);
      i += 4;
      continue;
    }
    if (n == 'u' && read_hex(p, i + 2, e, 4, &v)) {
      if (bytes) {
        if (v > 255) return "bytes must be in range(0, 256)";
        buf_byte(p, v);
      } else {
        buf_cp(p, v);
      }
      i += 6;
      continue;
    }
    if (n == 'U' && read_hex(p, i + 2, e, 8, &v)) {
      if (bytes) return "\\U escapes are not supported in bytes literals";
      if (v > 0x10FFFF) return "chr() arg not in range(0x110000)";
      buf_cp(p, v);
      i += 10;
      continue;
    }
    buf_byte(p, '\\'); /* unknown escape: the backslash stays */
    i++;
  }
  return NULL;
}

/* Koreo dialect: where does a string literal whose body starts at `b`
 * end?  cel-python's token is the regex  Q (?:\\[bfnrt"'\\]|...|.)*? Q
 * (Q the quote, '.' no newline unless triple-quoted): the lazy loop prefers
 * ending, then an escape, then '.', and backtracks.  Only the two-character
 * escapes \\ \" \' can swallow a quote or backslash, so the first match is
 * found by a forward scan, falling back, when that scan hits a newline or
 * the end, to the first path of the search tree that succeeds (computed
 * backwards over the scanned segment).  Sets *end to the closing quote. */
static bool koreo_extent(parser *p, size_t b, int q, bool triple, size_t *end) {
  const char *s = p->src;
  size_t n = p->len;
#define K_TERM(i)                                                                                  \
  (triple ? ((i) + 2 < n && s[i] == q && s[(i) + 1] == q && s[(i) + 2] == q)                       \
          : ((i) < n && s[i] == q))
#define K_ESC2(i)                                                                                  \
  ((i) + 1 < n && s[i] == '\\' && (s[(i) + 1] == '\\' || s[(i) + 1] == '"' || s[(i) + 1] == '\''))
#define K_DOT(i) ((i) < n && (triple || s[i] != '\n'))
  size_t i = b;
  for (;;) {
    if (K_TERM(i)) {
      *end = i;
      return true;
    }
    if (!K_DOT(i)) break;
    i += K_ESC2(i) ? 2 : 1;
  }
  /* backtracking: ok[j] = a match exists from position b + j */
  size_t f = i, m = f - b + 1;
  unsigned char *ok = malloc(m + 2);
  if (!ok) kv_oom();
  memset(ok, 0, m + 2);
  for (size_t j = m; j-- > 0;) {
    size_t x = b + j;
    ok[j] =
        K_TERM(x) || (K_ESC2(x) && j + 2 < m && ok[j + 2]) || (K_DOT(x) && j + 1 < m && ok[j + 1]);
  }
  bool found = false;
  if (ok[0]) {
    size_t j = 0;
    for (;;) {
      size_t x = b + j;
      if (K_TERM(x)) {
        *end = x;
        found = true;
        break;
      }
      if (K_ESC2(x) && j + 2 < m && ok[j + 2])
        j += 2;
      else if (K_DOT(x) && j + 1 < m && ok[j + 1])
        j += 1;
      else
        break;
    }
  }
  free(ok);
  return found;
#undef K_TERM
#undef K_ESC2
#undef K_DOT
}

/* Lex a string or bytes literal: prefix at `start`, opening quote at `q`. */
static void lex_string(parser *p, tok *t, size_t start, size_t q, bool raw, bool bytes) {
  const char *s = p->src;
  int qc = (unsigned char)s[q];
  bool triple = q + 2 < p->len && s[q + 1] == qc && s[q + 2] == qc;
  size_t b = q + (triple ? 3 : 1), end = 0;
  const char *what = bytes ? "bytes" : "string";
  if (p->koreo) {
    if (!koreo_extent(p, b, qc, triple, &end)) {
      fail(p, start, "Syntax error: unterminated %s literal", what);
      t->k = T_ERROR;
      return;
    }
  } else {
    size_t i = b;
    for (;;) {
      if (i >= p->len) {
        fail(p, start, "Syntax error: unterminated %s literal", what);
        t->k = T_ERROR;
        return;
      }
      int c = (unsigned char)s[i];
      if (triple) {
        if (c == qc && i + 2 < p->len && s[i + 1] == qc && s[i + 2] == qc) break;
      } else {
        if (c == qc) break;
        if (c == '\n' || c == '\r') {
          fail(p, start,
               "Syntax error: unterminated %s literal (a line break inside a quoted literal must "
               "be written \\n, or use triple quotes)",
               what);
          t->k = T_ERROR;
          return;
        }
      }
      i += (c == '\\' && !raw && i + 1 < p->len) ? 2 : 1;
    }
    end = i;
  }
  size_t stop = end + (triple ? 3 : 1);
  t->k = bytes ? T_BYTES : T_STRING;
  t->off = (uint32_t)start;
  t->len = (uint32_t)(stop - start);
  p->pos = stop;
  if (p->koreo) {
    const char *err = decode_koreo(p, b, end, raw, bytes);
    if (err) {
      char ex[200];
      t->v = cel_arena_keep(p->a,
                            kv_error(CEL_ERR_INVALID, (int32_t)start, "invalid %s literal %s: %s",
                                     what, excerpt(s + start, stop - start, ex, sizeof ex), err));
      return;
    }
  } else if (!decode_std(p, b, end, raw, bytes)) {
    t->k = T_ERROR;
    return;
  } else if (!bytes && !kv_utf8_valid(p->lit.p, p->lit.len)) {
    /* unreachable: the source is valid UTF-8 and escapes are scalar values */
    fail(p, start, "Syntax error: string literal is not valid UTF-8");
    t->k = T_ERROR;
    return;
  }
  t->v = cel_arena_keep(p->a,
                        bytes ? kv_bytes(p->lit.p, p->lit.len) : kv_string(p->lit.p, p->lit.len));
}

/* Lex a number at p->pos (a digit, or '.' followed by a digit). */
static void lex_number(parser *p, tok *t) {
  const char *s = p->src;
  size_t i = p->pos, start = i;
  t->off = (uint32_t)start;
  if (s[i] == '0' && at(p, i + 1) == 'x' && hexval(at(p, i + 2)) >= 0) {
    i += 2;
    uint64_t m = 0;
    bool big = false;
    while (hexval(at(p, i)) >= 0) {
      if (m >> 60) big = true;
      m = m * 16 + (uint64_t)hexval(at(p, i));
      i++;
    }
    t->k = T_INT;
    if (at(p, i) == 'u' || at(p, i) == 'U') {
      t->k = T_UINT;
      i++;
    }
    t->mag = m;
    t->big = big;
    t->len = (uint32_t)(i - start);
    p->pos = i;
    return;
  }
  size_t ds = i;
  while (is_digit(at(p, i)))
    i++;
  size_t de = i;
  bool isfloat = false;
  if (at(p, i) == '.' && is_digit(at(p, i + 1))) {
    isfloat = true;
    i++;
    while (is_digit(at(p, i)))
      i++;
  } else if (p->koreo && de > ds && at(p, i) == '.') {
    /* cel-python: DIGIT+ "." DIGIT* is a float, so "1." is 1.0 */
    isfloat = true;
    i++;
  }
  if ((at(p, i) == 'e' || at(p, i) == 'E') && (isfloat || de > ds)) {
    size_t j = i + 1;
    if (at(p, j) == '+' || at(p, j) == '-') j++;
    if (is_digit(at(p, j))) {
      isfloat = true;
      while (is_digit(at(p, j)))
        j++;
      i = j;
    }
  }
  if (isfloat) {
    kv_strbuf_clear(&p->lit);
    kv_strbuf_put(&p->lit, s + start, i - start); /* NUL-terminated */
    t->k = T_DOUBLE;
    t->d = strtod(p->lit.p, NULL); /* out of range: +-inf or 0, as CEL and Python */
  } else {
    uint64_t m = 0;
    bool big = false;
    for (size_t k = ds; k < de; k++) {
      unsigned d = (unsigned)(s[k] - '0');
      if (m > (UINT64_MAX - d) / 10) big = true;
      m = m * 10 + d;
    }
    t->k = T_INT;
    if (at(p, i) == 'u' || at(p, i) == 'U') {
      t->k = T_UINT;
      i++;
    }
    t->mag = m;
    t->big = big;
  }
  t->len = (uint32_t)(i - start);
  p->pos = i;
}

/* Produce the next token into *t. */
static void lex(parser *p, tok *t) {
  memset(t, 0, sizeof *t);
  const char *s = p->src;
  size_t n = p->len;
  for (;;) {
    while (p->pos < n && (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' ||
                          s[p->pos] == '\r' || s[p->pos] == '\f'))
      p->pos++;
    if (p->pos + 1 < n && s[p->pos] == '/' && s[p->pos + 1] == '/') {
      while (p->pos < n && s[p->pos] != '\n')
        p->pos++;
      continue;
    }
    break;
  }
  size_t i = p->pos;
  t->off = (uint32_t)i;
  if (i >= n) {
    t->k = T_EOF;
    t->len = 0;
    return;
  }
  int c = (unsigned char)s[i];
  int c1 = at(p, i + 1);
  /* string prefixes: r R b B br bR Br BR */
  if (c == 'r' || c == 'R') {
    if (c1 == '"' || c1 == '\'') {
      lex_string(p, t, i, i + 1, true, false);
      return;
    }
  } else if (c == 'b' || c == 'B') {
    if (c1 == '"' || c1 == '\'') {
      lex_string(p, t, i, i + 1, false, true);
      return;
    }
    int c2 = at(p, i + 2);
    if ((c1 == 'r' || c1 == 'R') && (c2 == '"' || c2 == '\'')) {
      lex_string(p, t, i, i + 2, true, true);
      return;
    }
  }
  if (is_ident_start(c)) {
    size_t j = i + 1;
    while (j < n && is_ident_char((unsigned char)s[j]))
      j++;
    size_t l = j - i;
    t->k = T_IDENT;
    t->off = t->noff = (uint32_t)i;
    t->len = t->nlen = (uint32_t)l;
    p->pos = j;
    if (l == 4 && !memcmp(s + i, "true", 4))
      t->k = T_TRUE;
    else if (l == 5 && !memcmp(s + i, "false", 5))
      t->k = T_FALSE;
    else if (l == 4 && !memcmp(s + i, "null", 4))
      t->k = T_NULL;
    else if (l == 2 && !memcmp(s + i, "in", 2))
      t->k = T_IN;
    else if (!p->koreo)
      for (const char *const *r = reserved_words; *r; r++)
        if (strlen(*r) == l && !memcmp(*r, s + i, l)) t->reserved = true;
    return;
  }
  if (is_digit(c) || (c == '.' && is_digit(c1))) {
    lex_number(p, t);
    return;
  }
  if (c == '"' || c == '\'') {
    lex_string(p, t, i, i, false, false);
    return;
  }
  if (c == '`' && !p->koreo) {
    /* QUOTED_IDENT: '`' (LETTER | DIGIT | '_' | '.' | '-' | '/' | ' ')+ '`' */
    size_t j = i + 1;
    while (j < n && (is_ident_char((unsigned char)s[j]) || s[j] == '.' || s[j] == '-' ||
                     s[j] == '/' || s[j] == ' '))
      j++;
    if (j >= n || s[j] != '`' || j == i + 1) {
      if (j >= n) {
        fail(p, i, "Syntax error: unterminated quoted identifier");
      } else if (s[j] == '`') {
        fail(p, i, "Syntax error: empty quoted identifier");
      } else {
        char ex[64];
        uint32_t cp;
        size_t k = kv_utf8_decode(s + j, n - j, &cp);
        fail(p, j, "Syntax error: character '%s' is not allowed in a quoted identifier",
             excerpt(s + j, k ? k : 1, ex, sizeof ex));
      }
      t->k = T_ERROR;
      return;
    }
    t->k = T_QIDENT;
    t->noff = (uint32_t)(i + 1);
    t->nlen = (uint32_t)(j - i - 1);
    t->len = (uint32_t)(j + 1 - i);
    p->pos = j + 1;
    return;
  }
  tkind k;
  size_t l = 1;
  switch (c) {
  case '(': k = T_LPAREN; break;
  case ')': k = T_RPAREN; break;
  case '[': k = T_LBRACK; break;
  case ']': k = T_RBRACK; break;
  case '{': k = T_LBRACE; break;
  case '}': k = T_RBRACE; break;
  case ',': k = T_COMMA; break;
  case '.': k = T_DOT; break;
  case ':': k = T_COLON; break;
  case '?': k = T_QUEST; break;
  case '+': k = T_PLUS; break;
  case '-': k = T_MINUS; break;
  case '*': k = T_STAR; break;
  case '/': k = T_SLASH; break;
  case '%': k = T_PERCENT; break;
  case '!':
    k = c1 == '=' ? T_NE : T_BANG;
    l = c1 == '=' ? 2 : 1;
    break;
  case '<':
    k = c1 == '=' ? T_LE : T_LT;
    l = c1 == '=' ? 2 : 1;
    break;
  case '>':
    k = c1 == '=' ? T_GE : T_GT;
    l = c1 == '=' ? 2 : 1;
    break;
  case '=':
    if (c1 == '=') {
      k = T_EQ;
      l = 2;
      break;
    }
    fail(p, i, "Syntax error: unexpected '=' (use '==' to compare)");
    t->k = T_ERROR;
    return;
  case '&':
    if (c1 == '&') {
      k = T_AND;
      l = 2;
      break;
    }
    fail(p, i, "Syntax error: unexpected '&' (use '&&' for logical and)");
    t->k = T_ERROR;
    return;
  case '|':
    if (c1 == '|') {
      k = T_OR;
      l = 2;
      break;
    }
    fail(p, i, "Syntax error: unexpected '|' (use '||' for logical or)");
    t->k = T_ERROR;
    return;
  default: {
    char ex[64];
    uint32_t cp;
    size_t cl = kv_utf8_decode(s + i, n - i, &cp);
    fail(p, i, "Syntax error: unexpected character '%s'",
         excerpt(s + i, cl ? cl : 1, ex, sizeof ex));
    t->k = T_ERROR;
    return;
  }
  }
  t->k = k;
  t->len = (uint32_t)l;
  p->pos = i + l;
}

static tok *peek(parser *p) {
  if (!p->have_la) {
    if (p->failed) {
      memset(&p->la, 0, sizeof p->la);
      p->la.k = T_ERROR;
      p->la.off = (uint32_t)p->pos;
    } else {
      lex(p, &p->la);
    }
    p->have_la = true;
  }
  return &p->la;
}
static void next(parser *p) { p->have_la = false; }

/* Fail with "expected WHAT but found <token>". */
static void expected(parser *p, const char *what) {
  tok *t = peek(p);
  if (t->k == T_ERROR) return; /* the lexer already reported */
  char d[256];
  if (t->k == T_EOF)
    fail(p, t->off, "Syntax error: expected %s but found end of input", what);
  else
    fail(p, t->off, "Syntax error: expected %s but found %s", what, tok_desc(p, t, d, sizeof d));
}

static bool expect(parser *p, tkind k, const char *what) {
  if (peek(p)->k == k) {
    next(p);
    return true;
  }
  expected(p, what);
  return false;
}

static bool enter(parser *p, size_t off) {
  if (++p->depth > p->max_depth) {
    fail(p, off, "expression nested too deeply (more than %d levels)", p->max_depth);
    return false;
  }
  return true;
}

/* ---- node construction ------------------------------------------------- */

static cel_node *mk(parser *p, cel_node_kind k, uint32_t off) {
  cel_node *n = cel_arena_alloc(p->a, sizeof *n);
  n->kind = (uint8_t)k;
  n->offset = off;
  return n;
}
static cel_node *mk_lit(parser *p, kv *v, uint32_t off) {
  cel_node *n = mk(p, CN_LIT, off);
  n->u.lit = v;
  return n;
}
static cel_node *mk_bin(parser *p, cel_node_kind k, int op, cel_node *a, cel_node *b,
                        uint32_t off) {
  cel_node *n = mk(p, k, off);
  n->u.bin.op = op;
  n->u.bin.a = a;
  n->u.bin.b = b;
  return n;
}
static const char *tok_name(parser *p, const tok *t) {
  return cel_arena_strndup(p->a, p->src + t->noff, t->nlen);
}

/* A growable array of node pointers, copied into the arena at the end. */
typedef struct nvec {
  cel_node **v;
  size_t n, cap;
} nvec;
static void nvec_push(nvec *a, cel_node *n) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 4;
    cel_node **nv = realloc(a->v, cap * sizeof *nv);
    if (!nv) kv_oom();
    a->v = nv;
    a->cap = cap;
  }
  a->v[a->n++] = n;
}
static cel_node **nvec_finish(parser *p, nvec *a) {
  cel_node **out = cel_arena_alloc(p->a, (a->n ? a->n : 1) * sizeof *out);
  if (a->n) memcpy(out, a->v, a->n * sizeof *out);
  free(a->v);
  a->v = NULL;
  return out;
}

/* ---- literals ---------------------------------------------------------- */

/* The value of a numeric token, negated when `neg` (a '-' folded into the
 * literal, so -9223372036854775808 is representable). */
static cel_node *number_literal(parser *p, const tok *t, bool neg, uint32_t off) {
  kv *v = NULL;
  const char *range = NULL;
  if (t->k == T_DOUBLE) {
    v = kv_double(neg ? -t->d : t->d);
  } else if (t->k == T_INT) {
    if (!t->big && !neg && t->mag <= (uint64_t)INT64_MAX)
      v = kv_int((int64_t)t->mag);
    else if (!t->big && neg && t->mag <= (uint64_t)INT64_MAX + 1)
      v = kv_int(t->mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)t->mag);
    else
      range = "integer";
  } else { /* T_UINT */
    if (!t->big)
      v = kv_uint(t->mag);
    else
      range = "unsigned integer";
  }
  if (range) {
    char ex[200];
    excerpt(p->src + t->off, t->len, ex, sizeof ex);
    if (!p->koreo) {
      fail(p, off, "%s literal out of range: %s%s", range, neg ? "-" : "", ex);
      return NULL;
    }
    /* cel-python accepts the token and fails when evaluating it */
    v = kv_error(CEL_ERR_OVERFLOW, (int32_t)off, "%s literal out of range: %s%s", range,
                 neg ? "-" : "", ex);
  }
  return mk_lit(p, cel_arena_keep(p->a, v), off);
}

/* ---- grammar ----------------------------------------------------------- */

static cel_node *parse_expr(parser *p);
static cel_node *parse_unary(parser *p);

/* Parse "(" [Expr {"," Expr}] ")" after the '(' was consumed. */
static bool parse_args(parser *p, nvec *args) {
  if (peek(p)->k == T_RPAREN) {
    next(p);
    return true;
  }
  for (;;) {
    cel_node *e = parse_expr(p);
    if (!e) return false;
    nvec_push(args, e);
    tkind k = peek(p)->k;
    if (k == T_COMMA) {
      next(p);
      continue;
    }
    if (k == T_RPAREN) {
      next(p);
      return true;
    }
    expected(p, "',' or ')'");
    return false;
  }
}

static bool is_simple_ident(const cel_node *n) {
  return n->kind == CN_IDENT && n->u.ident.name[0] != '.';
}

typedef struct macro_def {
  const char *name;
  int nargs;
  cel_macro m;
  int nvars;    /* 1, 2; 0 for cel.bind */
  unsigned ext; /* required extension, 0: none */
  bool koreo;   /* Koreo dialect only */
} macro_def;

static const macro_def member_macros[] = {
    {"all", 2, CEL_M_ALL, 1, 0, false},
    {"exists", 2, CEL_M_EXISTS, 1, 0, false},
    {"exists_one", 2, CEL_M_EXISTS_ONE, 1, 0, false},
    {"existsOne", 2, CEL_M_EXISTS_ONE, 1, CEL_EXT_COMPREHENSIONS2, false},
    {"map", 2, CEL_M_MAP, 1, 0, false},
    {"map", 3, CEL_M_MAP_FILTER, 1, 0, false},
    {"filter", 2, CEL_M_FILTER, 1, 0, false},
    {"all", 3, CEL_M_ALL2, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"exists", 3, CEL_M_EXISTS2, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"exists_one", 3, CEL_M_EXISTS_ONE2, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"existsOne", 3, CEL_M_EXISTS_ONE2, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"transformList", 3, CEL_M_TRANSFORM_LIST, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"transformList", 4, CEL_M_TRANSFORM_LIST_IF, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"transformMap", 3, CEL_M_TRANSFORM_MAP, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"transformMap", 4, CEL_M_TRANSFORM_MAP_IF, 2, CEL_EXT_COMPREHENSIONS2, false},
    {"bind", 3, CEL_M_BIND, 0, CEL_EXT_BINDINGS, false},
    {"reduce", 4, CEL_M_REDUCE, 2, 0, true},
    {NULL, 0, 0, 0, 0, false},
};

/* Build a call node, or the macro it stands for (CEL "Macros"). */
static cel_node *make_call(parser *p, cel_node *target, const char *name, nvec *args,
                           uint32_t off) {
  size_t nargs = args->n;
  if (!p->no_macros) {
    if (!target && !strcmp(name, "has") && nargs == 1) {
      cel_node *arg = args->v[0];
      free(args->v);
      args->v = NULL;
      if (!p->koreo && arg->kind != CN_SELECT) {
        fail(p, arg->offset,
             "invalid argument to has() macro: expected a field selection such as has(a.b)");
        return NULL;
      }
      cel_node *n = mk(p, CN_HAS, off);
      n->u.has.arg = arg;
      return n;
    }
    if (target) {
      const macro_def *d = member_macros;
      for (; d->name; d++)
        if (d->nargs == (int)nargs && !strcmp(d->name, name) && (!d->ext || (p->ext & d->ext)) &&
            (!d->koreo || p->koreo))
          break;
      if (d->name && d->m == CEL_M_BIND &&
          !(target->kind == CN_IDENT && !strcmp(target->u.ident.name, "cel")))
        d = NULL;
      if (d && d->name) {
        cel_node **a = args->v;
        int nv = d->m == CEL_M_BIND ? 1 : d->nvars;
        for (int i = 0; i < nv; i++)
          if (!is_simple_ident(a[i])) {
            fail(p, a[i]->offset, "the %s variable of %s%s() must be a simple name",
                 d->m == CEL_M_BIND ? "bound" : "iteration", d->m == CEL_M_BIND ? "cel." : "",
                 name);
            free(args->v);
            args->v = NULL;
            return NULL;
          }
        if (nv == 2 && !strcmp(a[0]->u.ident.name, a[1]->u.ident.name)) {
          fail(p, a[1]->offset, "duplicate variable name '%s' in %s()", a[1]->u.ident.name, name);
          free(args->v);
          args->v = NULL;
          return NULL;
        }
        cel_node *n = mk(p, CN_MACRO, off);
        n->u.macro.macro = d->m;
        n->u.macro.var = a[0]->u.ident.name;
        switch (d->m) {
        case CEL_M_BIND:
          n->u.macro.range = a[1];
          n->u.macro.e1 = a[2];
          break;
        case CEL_M_MAP_FILTER:
          n->u.macro.range = target;
          n->u.macro.e2 = a[1];
          n->u.macro.e1 = a[2];
          break;
        case CEL_M_ALL2:
        case CEL_M_EXISTS2:
        case CEL_M_EXISTS_ONE2:
        case CEL_M_TRANSFORM_LIST:
        case CEL_M_TRANSFORM_MAP:
          n->u.macro.var2 = a[1]->u.ident.name;
          n->u.macro.range = target;
          n->u.macro.e1 = a[2];
          break;
        case CEL_M_TRANSFORM_LIST_IF:
        case CEL_M_TRANSFORM_MAP_IF:
        case CEL_M_REDUCE:
          n->u.macro.var2 = a[1]->u.ident.name;
          n->u.macro.range = target;
          n->u.macro.e2 = a[2];
          n->u.macro.e1 = a[3];
          break;
        default:
          n->u.macro.range = target;
          n->u.macro.e1 = a[1];
          break;
        }
        free(args->v);
        args->v = NULL;
        return n;
      }
    }
  }
  cel_node *n = mk(p, CN_CALL, off);
  n->u.call.target = target;
  n->u.call.name = name;
  n->u.call.nargs = nargs;
  n->u.call.args = nvec_finish(p, args);
  n->u.call.fn_slot = -1;
  return n;
}

/* The dotted name of an identifier/selection chain (struct type names). */
static const char *qualified_name(parser *p, const cel_node *n) {
  size_t len = 0;
  for (const cel_node *m = n; m; m = m->kind == CN_SELECT ? m->u.select.operand : NULL)
    len += strlen(m->kind == CN_SELECT ? m->u.select.field : m->u.ident.name) + 1;
  char *out = cel_arena_alloc(p->a, len + 1);
  size_t pos = len - 1;
  out[pos] = 0;
  for (const cel_node *m = n; m; m = m->kind == CN_SELECT ? m->u.select.operand : NULL) {
    const char *part = m->kind == CN_SELECT ? m->u.select.field : m->u.ident.name;
    size_t l = strlen(part);
    pos -= l;
    memcpy(out + pos, part, l);
    if (m->kind == CN_SELECT) out[--pos] = '.';
  }
  return out;
}

/* A field name: SELECTOR (reserved words allowed) or, in the standard
 * dialect, a `quoted identifier`.  Returns NULL after fail(). */
static const char *field_name(parser *p, const char *context, bool *quoted) {
  tok *t = peek(p);
  if (t->k == T_IDENT || (t->k == T_QIDENT && !p->koreo)) {
    if (quoted) *quoted = t->k == T_QIDENT;
    const char *name = tok_name(p, t);
    next(p);
    return name;
  }
  expected(p, context);
  return NULL;
}

/* Message construction after the '{': FieldInits [","] "}". */
static cel_node *parse_struct(parser *p, cel_node *type, uint32_t off) {
  const char *tname = qualified_name(p, type);
  nvec vals = {0};
  const char **fields = NULL;
  size_t nf = 0, capf = 0;
  cel_node *res = NULL;
  while (peek(p)->k != T_RBRACE) {
    if (peek(p)->k == T_QUEST) {
      fail(p, peek(p)->off, "Syntax error: optional field initializers ('?') are not supported");
      goto out;
    }
    const char *f = field_name(p, "a field name or '}'", NULL);
    if (!f || !expect(p, T_COLON, "':'")) goto out;
    cel_node *v = parse_expr(p);
    if (!v) goto out;
    if (nf == capf) {
      capf = capf ? capf * 2 : 4;
      const char **nfv = realloc(fields, capf * sizeof *nfv);
      if (!nfv) kv_oom();
      fields = nfv;
    }
    fields[nf++] = f;
    nvec_push(&vals, v);
    if (peek(p)->k == T_COMMA) {
      next(p);
      continue;
    }
    if (peek(p)->k != T_RBRACE) {
      expected(p, "',' or '}'");
      goto out;
    }
  }
  next(p);
  res = mk(p, CN_STRUCT, off);
  res->u.strct.type_name = tname;
  res->u.strct.n = nf;
  res->u.strct.vals = nvec_finish(p, &vals);
  res->u.strct.fields = cel_arena_alloc(p->a, (nf ? nf : 1) * sizeof(char *));
  if (nf) memcpy(res->u.strct.fields, fields, nf * sizeof(char *));
out:
  free(vals.v);
  free(fields);
  return res;
}

/* "[" [Expr {"," Expr}] [","] "]" after the '['. */
static cel_node *parse_list(parser *p, uint32_t off) {
  nvec el = {0};
  while (peek(p)->k != T_RBRACK) {
    if (peek(p)->k == T_QUEST) {
      fail(p, peek(p)->off, "Syntax error: optional list elements ('?') are not supported");
      free(el.v);
      return NULL;
    }
    cel_node *e = parse_expr(p);
    if (!e) {
      free(el.v);
      return NULL;
    }
    nvec_push(&el, e);
    if (peek(p)->k == T_COMMA) {
      next(p);
      continue;
    }
    if (peek(p)->k != T_RBRACK) {
      expected(p, "',' or ']'");
      free(el.v);
      return NULL;
    }
  }
  next(p);
  cel_node *n = mk(p, CN_LIST, off);
  n->u.list.n = el.n;
  n->u.list.elems = nvec_finish(p, &el);
  return n;
}

/* "{" [Expr ":" Expr {"," Expr ":" Expr}] [","] "}" after the '{'. */
static cel_node *parse_map(parser *p, uint32_t off) {
  nvec ks = {0}, vs = {0};
  while (peek(p)->k != T_RBRACE) {
    if (peek(p)->k == T_QUEST) {
      fail(p, peek(p)->off, "Syntax error: optional map entries ('?') are not supported");
      goto bad;
    }
    cel_node *k = parse_expr(p);
    if (!k) goto bad;
    if (!expect(p, T_COLON, "':'")) goto bad;
    cel_node *v = parse_expr(p);
    if (!v) goto bad;
    nvec_push(&ks, k);
    nvec_push(&vs, v);
    if (peek(p)->k == T_COMMA) {
      next(p);
      continue;
    }
    if (peek(p)->k != T_RBRACE) {
      expected(p, "',' or '}'");
      goto bad;
    }
  }
  next(p);
  cel_node *n = mk(p, CN_MAP, off);
  n->u.map.n = ks.n;
  n->u.map.keys = nvec_finish(p, &ks);
  n->u.map.vals = nvec_finish(p, &vs);
  return n;
bad:
  free(ks.v);
  free(vs.v);
  return NULL;
}

/* Primary.  *qname: the result is a plain (possibly dotted) name that a
 * '{' may turn into a message construction. */
static cel_node *parse_primary(parser *p, bool *qname) {
  tok *t = peek(p);
  uint32_t off = t->off;
  *qname = false;
  switch (t->k) {
  case T_INT:
  case T_UINT:
  case T_DOUBLE: {
    tok copy = *t;
    next(p);
    return number_literal(p, &copy, false, off);
  }
  case T_STRING:
  case T_BYTES: {
    kv *v = t->v;
    next(p);
    return mk_lit(p, v, off);
  }
  case T_TRUE: next(p); return mk_lit(p, kv_bool(true), off);
  case T_FALSE: next(p); return mk_lit(p, kv_bool(false), off);
  case T_NULL: next(p); return mk_lit(p, kv_null(), off);
  case T_DOT:
  case T_IDENT: {
    bool dot = t->k == T_DOT;
    if (dot) {
      next(p);
      t = peek(p);
      if (t->k != T_IDENT) {
        expected(p, "an identifier after the leading '.'");
        return NULL;
      }
    }
    if (t->reserved) {
      char ex[64];
      fail(p, t->off, "reserved identifier '%s'",
           excerpt(p->src + t->noff, t->nlen, ex, sizeof ex));
      return NULL;
    }
    char *name = cel_arena_alloc(p->a, t->nlen + 2);
    if (dot) name[0] = '.';
    memcpy(name + dot, p->src + t->noff, t->nlen);
    next(p);
    if (peek(p)->k == T_LPAREN) {
      uint32_t poff = peek(p)->off;
      next(p);
      nvec args = {0};
      if (!parse_args(p, &args)) {
        free(args.v);
        return NULL;
      }
      return make_call(p, NULL, name, &args, poff);
    }
    cel_node *n = mk(p, CN_IDENT, off);
    n->u.ident.name = name;
    *qname = true;
    return n;
  }
  case T_LPAREN: {
    next(p);
    cel_node *e = parse_expr(p);
    if (!e || !expect(p, T_RPAREN, "')'")) return NULL;
    return e;
  }
  case T_LBRACK: next(p); return parse_list(p, off);
  case T_LBRACE: next(p); return parse_map(p, off);
  case T_ERROR: return NULL;
  case T_EOF: fail(p, off, "Syntax error: unexpected end of input"); return NULL;
  default: expected(p, "an expression"); return NULL;
  }
}

/* Member suffixes applied to `n` (already parsed). */
static cel_node *parse_suffixes(parser *p, cel_node *n, bool qname) {
  int entered = 0;
  while (n) {
    tok *t = peek(p);
    uint32_t off = t->off;
    if (t->k == T_DOT) {
      next(p);
      if (!enter(p, off)) {
        n = NULL;
        break;
      }
      entered++;
      if (peek(p)->k == T_QUEST) {
        fail(p, peek(p)->off, "Syntax error: optional field selection '.?' is not supported");
        n = NULL;
        break;
      }
      bool quoted = false;
      const char *name = field_name(p, "a field name after '.'", &quoted);
      if (!name) {
        n = NULL;
        break;
      }
      if (!quoted && peek(p)->k == T_LPAREN) {
        uint32_t poff = peek(p)->off;
        next(p);
        nvec args = {0};
        if (!parse_args(p, &args)) {
          free(args.v);
          n = NULL;
          break;
        }
        n = make_call(p, n, name, &args, poff);
        qname = false;
        continue;
      }
      cel_node *s = mk(p, CN_SELECT, off);
      s->u.select.operand = n;
      s->u.select.field = name;
      n = s;
      if (quoted) qname = false;
    } else if (t->k == T_LBRACK) {
      next(p);
      if (!enter(p, off)) {
        n = NULL;
        break;
      }
      entered++;
      if (peek(p)->k == T_QUEST) {
        fail(p, peek(p)->off, "Syntax error: optional index '[?' is not supported");
        n = NULL;
        break;
      }
      cel_node *idx = parse_expr(p);
      if (!idx || !expect(p, T_RBRACK, "']'")) {
        n = NULL;
        break;
      }
      n = mk_bin(p, CN_INDEX, CEL_OP_NONE, n, idx, off);
      qname = false;
    } else if (t->k == T_LBRACE && qname) {
      next(p);
      n = parse_struct(p, n, off);
      qname = false;
    } else {
      break;
    }
  }
  p->depth -= entered;
  return n;
}

static cel_node *parse_member(parser *p) {
  bool qname = false;
  cel_node *n = parse_primary(p, &qname);
  return n ? parse_suffixes(p, n, qname) : NULL;
}

/* "!" {"!"} Member  |  "-" {"-"} Member  |  Member.  A '-' directly before
 * a numeric literal is folded into it (so the int64 minimum parses). */
static cel_node *parse_unary(parser *p) {
  tok *t = peek(p);
  if (t->k != T_BANG && t->k != T_MINUS) return parse_member(p);
  tkind op = t->k;
  uint32_t off = t->off;
  next(p);
  if (!enter(p, off)) return NULL;
  cel_node *a;
  tok *u = peek(p);
  if (u->k == op) {
    a = parse_unary(p);
  } else if (op == T_MINUS && (u->k == T_INT || u->k == T_DOUBLE)) {
    tok copy = *u;
    next(p);
    a = number_literal(p, &copy, true, off);
    a = a ? parse_suffixes(p, a, false) : NULL;
    p->depth--;
    return a;
  } else {
    a = parse_member(p);
  }
  p->depth--;
  if (!a) return NULL;
  cel_node *n = mk(p, CN_UNARY, off);
  n->u.un.op = op == T_BANG ? CEL_OP_NOT : CEL_OP_NEG;
  n->u.un.a = a;
  return n;
}

/* The binary operators by precedence level (0 lowest): || && relations
 * additive multiplicative.  Returns the level (-1: not a binary operator)
 * and the node kind / operator. */
static int bin_level(tkind k, cel_node_kind *kind, int *op) {
  *kind = CN_BINARY;
  switch (k) {
  case T_OR:
    *kind = CN_OR;
    *op = CEL_OP_NONE;
    return 0;
  case T_AND:
    *kind = CN_AND;
    *op = CEL_OP_NONE;
    return 1;
  case T_LT: *op = CEL_OP_LT; return 2;
  case T_LE: *op = CEL_OP_LE; return 2;
  case T_GT: *op = CEL_OP_GT; return 2;
  case T_GE: *op = CEL_OP_GE; return 2;
  case T_EQ: *op = CEL_OP_EQ; return 2;
  case T_NE: *op = CEL_OP_NE; return 2;
  case T_IN: *op = CEL_OP_IN; return 2;
  case T_PLUS: *op = CEL_OP_ADD; return 3;
  case T_MINUS: *op = CEL_OP_SUB; return 3;
  case T_STAR: *op = CEL_OP_MUL; return 4;
  case T_SLASH: *op = CEL_OP_DIV; return 4;
  case T_PERCENT: *op = CEL_OP_MOD; return 4;
  default: return -1;
  }
}

/* ConditionalOr down to Multiplication by precedence climbing: every
 * level is left-associative, so the right operand of an operator at level
 * L is parsed at level L + 1.  One frame per parenthesised nesting keeps
 * the stack small. */
static cel_node *parse_binary(parser *p, int min_level) {
  cel_node *a = parse_unary(p);
  int entered = 0;
  while (a) {
    tok *t = peek(p);
    cel_node_kind kind;
    int op = CEL_OP_NONE;
    int level = bin_level(t->k, &kind, &op);
    if (level < min_level) break;
    uint32_t off = t->off;
    next(p);
    if (!enter(p, off)) {
      a = NULL;
      break;
    }
    entered++;
    cel_node *b = parse_binary(p, level + 1);
    a = b ? mk_bin(p, kind, op, a, b, off) : NULL;
  }
  p->depth -= entered;
  return a;
}

/* Expr = ConditionalOr ["?" ConditionalOr ":" Expr] */
static cel_node *parse_expr(parser *p) {
  if (!enter(p, peek(p)->off)) return NULL;
  cel_node *c = parse_binary(p, 0), *res = NULL;
  if (c && peek(p)->k == T_QUEST) {
    uint32_t off = peek(p)->off;
    next(p);
    cel_node *t = parse_binary(p, 0);
    if (t && expect(p, T_COLON, "':'")) {
      cel_node *f = parse_expr(p);
      if (f) {
        res = mk(p, CN_COND, off);
        res->u.cond.c = c;
        res->u.cond.t = t;
        res->u.cond.f = f;
      }
    }
  } else {
    res = c;
  }
  p->depth--;
  return res;
}

/* cel_parse: see cel_impl.h.  Implements the CEL language definition's
 * "Syntax", "Lexical structure" (literals and their escapes) and "Macros"
 * sections, with the Koreo dialect's differences described at the top of
 * this file.  `src` is `len` bytes of UTF-8 (may contain NUL bytes inside
 * literals); `opts` may be NULL (standard dialect, macros on, no
 * extensions, depth 250); `st` may be NULL.  Returns the root node, owned
 * with every node, name and literal value by `arena`; or NULL with `st`
 * set (code CEL_ERR_PARSE, stage 1, byte offset, 1-based line and column
 * in code points, a message saying what was expected).  Never crashes on
 * any input: invalid UTF-8, stray bytes, unterminated literals and nesting
 * beyond opts->max_depth are reported as errors. */
cel_node *cel_parse(cel_arena *arena, const char *src, size_t len, const cel_parse_opts *opts,
                    cel_status *st) {
  cel_status dummy;
  if (!st) st = &dummy;
  memset(st, 0, sizeof *st);
  parser P = {0};
  parser *p = &P;
  p->a = arena;
  p->src = src ? src : "";
  p->len = src ? len : 0;
  p->st = st;
  p->koreo = opts && opts->dialect == CEL_DIALECT_KOREO;
  p->no_macros = opts && opts->disable_macros;
  p->ext = opts ? opts->ext : 0;
  p->max_depth = opts && opts->max_depth > 0 ? opts->max_depth : DEFAULT_MAX_DEPTH;
  if (p->len >= UINT32_MAX) {
    p->len = 0;
    fail(p, 0, "expression too long (%zu bytes)", len);
    return NULL;
  }
  /* the source must be UTF-8 (locals: the ASCII scan stays in registers) */
  const char *s = p->src;
  const size_t n = p->len;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    size_t k = kv_utf8_decode(s + i, n - i, &cp);
    if (!k) {
      fail(p, i, "Syntax error: invalid UTF-8 in expression (byte 0x%02X)", c);
      return NULL;
    }
    i += k;
  }
  cel_node *root = parse_expr(p);
  if (root && !p->failed && peek(p)->k != T_EOF) expected(p, "end of input");
  kv_strbuf_free(&p->lit);
  return p->failed ? NULL : root;
}

/* ---- cel_ast_dump ---------------------------------------------------------- */

/* A quoted string/bytes value: printable ASCII as is, \" \\ \n \r \t,
 * valid UTF-8 as is (strings only), everything else \xHH. */
static void dump_quoted(kv_strbuf *b, const char *s, size_t n, bool bytes) {
  kv_strbuf_puts(b, bytes ? "b\"" : "\"");
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    uint32_t cp;
    size_t k;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      kv_strbuf_put(b, e, 2);
      i++;
    } else if (c == '\n') {
      kv_strbuf_puts(b, "\\n"), i++;
    } else if (c == '\r') {
      kv_strbuf_puts(b, "\\r"), i++;
    } else if (c == '\t') {
      kv_strbuf_puts(b, "\\t"), i++;
    } else if (c >= 0x20 && c < 0x7F) {
      kv_strbuf_put(b, s + i, 1), i++;
    } else if (!bytes && c >= 0x80 && (k = kv_utf8_decode(s + i, n - i, &cp))) {
      kv_strbuf_put(b, s + i, k);
      i += k;
    } else {
      kv_strbuf_printf(b, "\\x%02X", c);
      i++;
    }
  }
  kv_strbuf_puts(b, "\"");
}

static void dump_value(kv_strbuf *b, const kv *v) {
  char tmp[40];
  switch (v->kind) {
  case KV_NULL: kv_strbuf_puts(b, "null"); break;
  case KV_BOOL: kv_strbuf_puts(b, v->u.b ? "true" : "false"); break;
  case KV_INT: kv_strbuf_printf(b, "%lld", (long long)v->u.i); break;
  case KV_UINT: kv_strbuf_printf(b, "%lluu", (unsigned long long)v->u.u); break;
  case KV_DOUBLE:
    kv_double_repr(v->u.d, tmp);
    kv_strbuf_puts(b, tmp);
    break;
  case KV_STRING: dump_quoted(b, v->u.s.ptr, v->u.s.len, false); break;
  case KV_BYTES: dump_quoted(b, v->u.s.ptr, v->u.s.len, true); break;
  case KV_ERROR:
    kv_strbuf_puts(b, "(error ");
    dump_quoted(b, v->u.err.msg ? v->u.err.msg : "", v->u.err.msg ? strlen(v->u.err.msg) : 0,
                false);
    kv_strbuf_puts(b, ")");
    break;
  default: kv_strbuf_printf(b, "<%s>", kv_kind_name((kv_kind)v->kind)); break;
  }
}

static const char *macro_name(int m) {
  static const char *const names[] = {
      "all",           "exists",           "exists_one",     "map",
      "map_filter",    "filter",           "bind",           "all2",
      "exists2",       "exists_one2",      "transform_list", "transform_list_if",
      "transform_map", "transform_map_if", "reduce"};
  return m >= 0 && m <= CEL_M_REDUCE ? names[m] : "?";
}

static void dump(kv_strbuf *b, const cel_node *n) {
  if (!n) {
    kv_strbuf_puts(b, "nil");
    return;
  }
  switch ((cel_node_kind)n->kind) {
  case CN_LIT:
    kv_strbuf_puts(b, "(lit ");
    dump_value(b, n->u.lit);
    kv_strbuf_puts(b, ")");
    return;
  case CN_IDENT:
    kv_strbuf_puts(b, "(ident ");
    kv_strbuf_puts(b, n->u.ident.name);
    kv_strbuf_puts(b, ")");
    return;
  case CN_SELECT:
    kv_strbuf_puts(b, "(select ");
    dump(b, n->u.select.operand);
    kv_strbuf_puts(b, " ");
    kv_strbuf_puts(b, n->u.select.field);
    kv_strbuf_puts(b, ")");
    return;
  case CN_INDEX:
    kv_strbuf_puts(b, "(index ");
    dump(b, n->u.bin.a);
    kv_strbuf_puts(b, " ");
    dump(b, n->u.bin.b);
    kv_strbuf_puts(b, ")");
    return;
  case CN_CALL:
    if (n->u.call.target) {
      kv_strbuf_puts(b, "(mcall ");
      dump(b, n->u.call.target);
      kv_strbuf_puts(b, " ");
    } else {
      kv_strbuf_puts(b, "(call ");
    }
    kv_strbuf_puts(b, n->u.call.name);
    for (size_t i = 0; i < n->u.call.nargs; i++) {
      kv_strbuf_puts(b, " ");
      dump(b, n->u.call.args[i]);
    }
    kv_strbuf_puts(b, ")");
    return;
  case CN_UNARY:
    kv_strbuf_puts(b, "(");
    kv_strbuf_puts(b, cel_op_name(n->u.un.op));
    kv_strbuf_puts(b, " ");
    dump(b, n->u.un.a);
    kv_strbuf_puts(b, ")");
    return;
  case CN_BINARY:
  case CN_AND:
  case CN_OR:
    kv_strbuf_puts(b, "(");
    kv_strbuf_puts(b, n->kind == CN_AND  ? "&&"
                      : n->kind == CN_OR ? "||"
                                         : cel_op_name(n->u.bin.op));
    kv_strbuf_puts(b, " ");
    dump(b, n->u.bin.a);
    kv_strbuf_puts(b, " ");
    dump(b, n->u.bin.b);
    kv_strbuf_puts(b, ")");
    return;
  case CN_COND:
    kv_strbuf_puts(b, "(?: ");
    dump(b, n->u.cond.c);
    kv_strbuf_puts(b, " ");
    dump(b, n->u.cond.t);
    kv_strbuf_puts(b, " ");
    dump(b, n->u.cond.f);
    kv_strbuf_puts(b, ")");
    return;
  case CN_LIST:
    kv_strbuf_puts(b, "(list");
    for (size_t i = 0; i < n->u.list.n; i++) {
      kv_strbuf_puts(b, " ");
      dump(b, n->u.list.elems[i]);
    }
    kv_strbuf_puts(b, ")");
    return;
  case CN_MAP:
    kv_strbuf_puts(b, "(map");
    for (size_t i = 0; i < n->u.map.n; i++) {
      kv_strbuf_puts(b, " (");
      dump(b, n->u.map.keys[i]);
      kv_strbuf_puts(b, " ");
      dump(b, n->u.map.vals[i]);
      kv_strbuf_puts(b, ")");
    }
    kv_strbuf_puts(b, ")");
    return;
  case CN_STRUCT:
    kv_strbuf_puts(b, "(struct ");
    kv_strbuf_puts(b, n->u.strct.type_name);
    for (size_t i = 0; i < n->u.strct.n; i++) {
      kv_strbuf_puts(b, " (");
      kv_strbuf_puts(b, n->u.strct.fields[i]);
      kv_strbuf_puts(b, " ");
      dump(b, n->u.strct.vals[i]);
      kv_strbuf_puts(b, ")");
    }
    kv_strbuf_puts(b, ")");
    return;
  case CN_MACRO:
    kv_strbuf_puts(b, "(macro ");
    kv_strbuf_puts(b, macro_name(n->u.macro.macro));
    kv_strbuf_puts(b, " ");
    kv_strbuf_puts(b, n->u.macro.var ? n->u.macro.var : "?");
    if (n->u.macro.var2) {
      kv_strbuf_puts(b, " ");
      kv_strbuf_puts(b, n->u.macro.var2);
    }
    kv_strbuf_puts(b, " ");
    dump(b, n->u.macro.range);
    kv_strbuf_puts(b, " ");
    dump(b, n->u.macro.e1);
    if (n->u.macro.e2) {
      kv_strbuf_puts(b, " ");
      dump(b, n->u.macro.e2);
    }
    kv_strbuf_puts(b, ")");
    return;
  case CN_HAS:
    kv_strbuf_puts(b, "(has ");
    dump(b, n->u.has.arg);
    kv_strbuf_puts(b, ")");
    return;
  }
  kv_strbuf_printf(b, "(?kind %d)", n->kind);
}

/* cel_ast_dump: the AST as one line of S-expressions, malloc'ed (caller
 * frees).  Forms: (lit V) with V an int 1, uint 1u, double 1.5, string
 * "..", bytes b"..", true/false/null or (error ".."); (ident a);
 * (select X f); (index X I); (call f A...); (mcall X f A...); (! X);
 * (- X); (OP A B) for + - * / % == != < <= > >= in && ||; (?: C T F);
 * (list E...); (map (K V)...); (struct Name (f V)...); (has X);
 * (macro NAME VAR [VAR2] RANGE E1 [E2]) where NAME is all, exists,
 * exists_one, map, map_filter, filter, bind, all2, exists2, exists_one2,
 * transform_list[_if], transform_map[_if] (E1 the predicate/transform,
 * E2 the filter of the _if / map_filter forms).  NULL dumps as "nil". */
char *cel_ast_dump(const cel_node *n) {
  kv_strbuf b = {0};
  dump(&b, n);
  return kv_strbuf_take(&b, NULL);
}
