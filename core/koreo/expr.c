/*
 * core/koreo/expr.c: Koreo Expressions (spec 2.1, 2.2, 2.6, 2.7, 2.8):
 * the value-spec -> CEL source encoder, the prepared shapes (expression,
 * map, overlay, predicate list), their evaluation and overlay application.
 * See include/koreo/expr.h for the contract.
 */
#include "koreo/expr.h"

#include "cel/cel_impl.h"
#include "cel/lib_time.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct koreo_expr {
  koreo_shape shape;
  char *location;
  char *source;      /* encoded CEL source; NULL when empty */
  cel_program *prog; /* NULL when empty */
  kv *index;         /* overlay shape: the index (spec 2.7) */
  size_t nleaves;    /* overlay shape: number of leaf values */
};

/* ---- truthiness and numeric-looking strings --------------------------- */

/* See koreo/expr.h: the CEL engine's Koreo dialect defines it. */
bool koreo_truthy(const kv *v) { return cel_py_truthy(v); }

/* Decode one UTF-8 code point at s[*i] (valid input assumed by callers
 * that checked; invalid bytes decode as U+FFFD and advance one byte). */
static uint32_t utf8_next(const char *s, size_t len, size_t *i) {
  const unsigned char *p = (const unsigned char *)s + *i;
  size_t left = len - *i;
  uint32_t c = p[0];
  size_t n = 0;
  if (c < 0x80) {
    *i += 1;
    return c;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    n = 1;
    c &= 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 2;
    c &= 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 3;
    c &= 0x07;
  } else {
    *i += 1;
    return 0xFFFD;
  }
  if (left <= n) {
    *i += 1;
    return 0xFFFD;
  }
  for (size_t k = 1; k <= n; k++) {
    if ((p[k] & 0xC0) != 0x80) {
      *i += 1;
      return 0xFFFD;
    }
    c = (c << 6) | (p[k] & 0x3F);
  }
  *i += n + 1;
  return c;
}

/* Python's Py_UNICODE_ISSPACE for code points >= 128. */
static bool py_unicode_space(uint32_t c) {
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The first code point ("zero") of every run of ten Unicode decimal digits
 * (general category Nd, Unicode 15.1 as in CPython 3.13), ASCII excluded. */
static const uint32_t k_digit_zeros[] = {
    0x660,   0x6f0,   0x7c0,   0x966,   0x9e6,   0xa66,   0xae6,   0xb66,   0xbe6,   0xc66,
    0xce6,   0xd66,   0xde6,   0xe50,   0xed0,   0xf20,   0x1040,  0x1090,  0x17e0,  0x1810,
    0x1946,  0x19d0,  0x1a80,  0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,  0xa8d0,
    0xa900,  0xa9d0,  0xa9f0,  0xaa50,  0xabf0,  0xff10,  0x104a0, 0x10d30, 0x11066, 0x110f0,
    0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950,
    0x11c50, 0x11d50, 0x11da0, 0x11f50, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2,
    0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e4f0, 0x1e950, 0x1fbf0,
};

/* Decimal value of a non-ASCII digit, or -1. */
static int py_unicode_decimal(uint32_t c) {
  for (size_t i = 0; i < sizeof k_digit_zeros / sizeof *k_digit_zeros; i++)
    if (c >= k_digit_zeros[i] && c < k_digit_zeros[i] + 10) return (int)(c - k_digit_zeros[i]);
  return -1;
}

static bool is_d(char c) { return c >= '0' && c <= '9'; }

/* digit (['_'] digit)* starting at t[*p]; false when no digit. */
static bool digitpart(const char *t, size_t hi, size_t *p) {
  if (*p >= hi || !is_d(t[*p])) return false;
  (*p)++;
  while (*p < hi) {
    if (is_d(t[*p]))
      (*p)++;
    else if (t[*p] == '_' && *p + 1 < hi && is_d(t[*p + 1]))
      *p += 2;
    else
      break;
  }
  return true;
}

static bool word_ieq(const char *t, size_t n, const char *w) {
  if (strlen(w) != n) return false;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != w[i]) return false;
  }
  return true;
}

bool koreo_numeric_string(const char *s, size_t len) {
  /* Python first maps Unicode spaces to ' ' and decimal digits of any
   * script to ASCII digits; anything else non-ASCII makes it invalid. */
  char small[128];
  char *t = len < sizeof small ? small : malloc(len + 1);
  if (!t) kv_oom();
  size_t n = 0;
  bool ok = true;
  for (size_t i = 0; i < len && ok;) {
    uint32_t c = utf8_next(s, len, &i);
    if (c == 0) {
      ok = false;
    } else if (c < 0x80) {
      t[n++] = (char)c;
    } else if (py_unicode_space(c)) {
      t[n++] = ' ';
    } else {
      int d = py_unicode_decimal(c);
      if (d < 0)
        ok = false;
      else
        t[n++] = (char)('0' + d);
    }
  }
  if (ok) {
    size_t lo = 0, hi = n;
    while (lo < hi && strchr(" \t\n\v\f\r", t[lo]))
      lo++;
    while (hi > lo && strchr(" \t\n\v\f\r", t[hi - 1]))
      hi--;
    size_t p = lo;
    if (p < hi && (t[p] == '+' || t[p] == '-')) p++;
    if (word_ieq(t + p, hi - p, "inf") || word_ieq(t + p, hi - p, "infinity") ||
        word_ieq(t + p, hi - p, "nan")) {
      ok = true;
    } else {
      bool has_int = digitpart(t, hi, &p), has_frac = false;
      if (p < hi && t[p] == '.') {
        p++;
        has_frac = digitpart(t, hi, &p);
      }
      ok = has_int || has_frac;
      if (ok && p < hi && (t[p] == 'e' || t[p] == 'E')) {
        p++;
        if (p < hi && (t[p] == '+' || t[p] == '-')) p++;
        ok = digitpart(t, hi, &p);
      }
      ok = ok && p == hi;
    }
  }
  if (t != small) free(t);
  return ok;
}

/* ---- the encoder (spec 2.1) ------------------------------------------- */

/* Python's str() of a map key. */
static bool encode_key(kv_strbuf *b, const kv *k, char *err, size_t errlen) {
  char buf[40];
  switch ((kv_kind)k->kind) {
  case KV_STRING: kv_strbuf_put(b, k->u.s.ptr, k->u.s.len); return true;
  case KV_NULL: kv_strbuf_puts(b, "None"); return true;
  case KV_BOOL: kv_strbuf_puts(b, k->u.b ? "True" : "False"); return true;
  case KV_INT: snprintf(buf, sizeof buf, "%" PRId64, k->u.i); break;
  case KV_UINT: snprintf(buf, sizeof buf, "%" PRIu64, k->u.u); break;
  case KV_DOUBLE: kv_double_repr(k->u.d, buf); break;
  default:
    snprintf(err, errlen, "a %s map key has no CEL source form", kv_kind_name(k->kind));
    return false;
  }
  kv_strbuf_puts(b, buf);
  return true;
}

static bool encode_string(kv_strbuf *b, const char *s, size_t n) {
  if (koreo_numeric_string(s, n)) {
    kv_strbuf_put(b, s, n);
  } else if (n == 0) {
    kv_strbuf_puts(b, "\"\"");
  } else if (s[0] == '=') {
    size_t i = 0;
    while (i < n && s[i] == '=')
      i++;
    kv_strbuf_put(b, s + i, n - i);
  } else if (memchr(s, '\n', n)) {
    kv_strbuf_puts(b, "r\"\"\"");
    kv_strbuf_put(b, s, n);
    kv_strbuf_puts(b, "\"\"\"");
  } else if (memchr(s, '"', n)) {
    kv_strbuf_puts(b, "\"\"\"");
    for (size_t i = 0; i < n; i++) {
      if (s[i] == '"') kv_strbuf_putc(b, '\\');
      kv_strbuf_putc(b, s[i]);
    }
    kv_strbuf_puts(b, "\"\"\"");
  } else {
    kv_strbuf_putc(b, '"');
    kv_strbuf_put(b, s, n);
    kv_strbuf_putc(b, '"');
  }
  return true;
}

static bool encode_value(kv_strbuf *b, const kv *v, char *err, size_t errlen) {
  char buf[40];
  switch ((kv_kind)v->kind) {
  case KV_MAP:
    kv_strbuf_putc(b, '{');
    for (size_t i = 0; i < v->u.map.len; i++) {
      if (i) kv_strbuf_putc(b, ',');
      kv_strbuf_putc(b, '"');
      if (!encode_key(b, v->u.map.keys[i], err, errlen)) return false;
      kv_strbuf_puts(b, "\":");
      if (!encode_value(b, v->u.map.vals[i], err, errlen)) return false;
    }
    kv_strbuf_putc(b, '}');
    return true;
  case KV_LIST:
    kv_strbuf_putc(b, '[');
    for (size_t i = 0; i < v->u.list.len; i++) {
      if (i) kv_strbuf_putc(b, ',');
      if (!encode_value(b, v->u.list.items[i], err, errlen)) return false;
    }
    kv_strbuf_putc(b, ']');
    return true;
  case KV_BOOL: kv_strbuf_puts(b, v->u.b ? "true" : "false"); return true;
  case KV_NULL: kv_strbuf_puts(b, "null"); return true;
  case KV_INT:
    snprintf(buf, sizeof buf, "%" PRId64, v->u.i);
    kv_strbuf_puts(b, buf);
    return true;
  case KV_UINT:
    snprintf(buf, sizeof buf, "%" PRIu64, v->u.u);
    kv_strbuf_puts(b, buf);
    return true;
  case KV_DOUBLE:
    kv_double_repr(v->u.d, buf);
    kv_strbuf_puts(b, buf);
    return true;
  case KV_STRING: return encode_string(b, v->u.s.ptr, v->u.s.len);
  default:
    snprintf(err, errlen, "a %s value has no CEL source form", kv_kind_name(v->kind));
    return false;
  }
}

char *koreo_encode(const kv *spec, size_t *len, char *err, size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = 0;
  kv_strbuf b = {0};
  if (!encode_value(&b, spec, err, errlen)) {
    kv_strbuf_free(&b);
    return NULL;
  }
  return kv_strbuf_take(&b, len);
}

/* ---- errors ------------------------------------------------------------ */

static void err_set(koreo_error *err, int stage, cel_error_code code, const char *location,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void err_set(koreo_error *err, int stage, cel_error_code code, const char *location,
                    const char *fmt, ...) {
  if (!err) return;
  err->stage = stage;
  err->code = code;
  err->line = err->col = 0;
  snprintf(err->location, sizeof err->location, "%s", location ? location : "expression");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}

static void err_clear(koreo_error *err) {
  if (!err) return;
  err->stage = KOREO_STAGE_NONE;
  err->code = CEL_OK;
  err->line = err->col = 0;
  err->location[0] = 0;
  err->message[0] = 0;
}

static bool ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Scan one operand term backwards from just before `e` (exclusive):
 * identifiers, numbers, dots, quoted strings and balanced (), [], {}. */
static size_t term_back(const char *src, size_t e) {
  size_t s = e;
  while (s > 0 && (src[s - 1] == ' ' || src[s - 1] == '\t'))
    s--;
  size_t stop = s;
  while (s > 0) {
    char c = src[s - 1];
    if (ident_char(c) || c == '.') {
      s--;
    } else if (c == ')' || c == ']' || c == '}') {
      int depth = 0;
      size_t i = s;
      while (i > 0) {
        char d = src[i - 1];
        if (d == ')' || d == ']' || d == '}') depth++;
        if (d == '(' || d == '[' || d == '{') depth--;
        i--;
        if (depth == 0) break;
      }
      if (depth != 0) break;
      s = i;
    } else if (c == '"' || c == '\'') {
      size_t i = s - 1;
      while (i > 0 && src[i - 1] != c)
        i--;
      if (i == 0) break;
      s = i - 1;
    } else {
      break;
    }
  }
  if (s < stop && s > 0 && (src[s - 1] == '-' || src[s - 1] == '!')) {
    /* a unary prefix: at the start or after an operator, '(' or ',' */
    size_t p = s - 1;
    while (p > 0 && (src[p - 1] == ' ' || src[p - 1] == '\t'))
      p--;
    if (p == 0 || strchr("+-*/%<>=!&|?:([{,", src[p - 1])) s--;
  }
  return s < stop ? s : stop;
}

/* Scan one operand term forwards from `s`. */
static size_t term_fwd(const char *src, size_t len, size_t s) {
  while (s < len && (src[s] == ' ' || src[s] == '\t'))
    s++;
  size_t e = s;
  if (e < len && (src[e] == '-' || src[e] == '!')) e++; /* unary prefix */
  while (e < len) {
    char c = src[e];
    if (ident_char(c) || c == '.') {
      e++;
    } else if (c == '(' || c == '[' || c == '{') {
      int depth = 0;
      size_t i = e;
      while (i < len) {
        char d = src[i];
        if (d == '(' || d == '[' || d == '{') depth++;
        if (d == ')' || d == ']' || d == '}') depth--;
        i++;
        if (depth == 0) break;
      }
      if (depth != 0) break;
      e = i;
    } else if (c == '"' || c == '\'') {
      const char *q = memchr(src + e + 1, c, len - e - 1);
      if (!q) break;
      e = (size_t)(q - src) + 1;
    } else {
      break;
    }
  }
  return e;
}

/* The sub-expression text at byte `off` of `src`, for messages: the member
 * path or call it belongs to (`inputs.a.b`), or for an operator its two
 * operands (`inputs.n + 1.5`).  Written into buf (n bytes), shortened
 * with "..." when long, UTF-8 boundaries respected. */
static void snippet(const char *src, size_t off, char *buf, size_t n) {
  size_t len = strlen(src);
  buf[0] = 0;
  if (off >= len) return;
  size_t s, e;
  if (ident_char(src[off]) || src[off] == '.' || src[off] == '(') {
    s = off;
    while (s > 0 && (ident_char(src[s - 1]) || src[s - 1] == '.'))
      s--;
    e = off;
    if (src[e] == '.') e++;
    while (e < len && ident_char(src[e]))
      e++;
    while (s < e && src[s] == '.')
      s++;
  } else if (strchr("+-*/%<>=!&|?", src[off])) {
    e = off;
    while (e < len && strchr("+-*/%<>=!&|?", src[e]))
      e++;
    s = term_back(src, off);
    e = term_fwd(src, len, e);
  } else if (src[off] == '[' || src[off] == '{') {
    s = term_back(src, off);
    e = term_fwd(src, len, off);
  } else {
    s = off;
    e = term_fwd(src, len, off);
  }
  while (s < e && (src[s] == ' ' || src[s] == '\t' || src[s] == '\n'))
    s++;
  while (e > s && (src[e - 1] == ' ' || src[e - 1] == '\t' || src[e - 1] == '\n'))
    e--;
  size_t m = e - s;
  bool cut = false;
  if (m + 1 > n) {
    m = n > 4 ? n - 4 : 0;
    cut = true;
  }
  while (m > 0 && s + m < len && ((unsigned char)src[s + m] & 0xC0) == 0x80)
    m--;
  memcpy(buf, src + s, m);
  buf[m] = 0;
  for (size_t i = 0; i < m; i++)
    if (buf[i] == '\n' || buf[i] == '\r') buf[i] = ' ';
  if (cut) strcat(buf, "...");
}

static void eval_error(koreo_error *err, const koreo_expr *e, const cel_status *st) {
  if (!err) return;
  char snip[96] = "";
  if (st->offset || st->col) snippet(e->source, st->offset, snip, sizeof snip);
  bool multiline = strchr(e->source, '\n') != NULL;
  char where[160];
  if (st->col == 0)
    snprintf(where, sizeof where, "%s%s%s", snip[0] ? " (" : "", snip, snip[0] ? ")" : "");
  else if (multiline)
    snprintf(where, sizeof where, " at line %u, column %u%s%s%s", st->line, st->col,
             snip[0] ? " (" : "", snip, snip[0] ? ")" : "");
  else
    snprintf(where, sizeof where, " at column %u%s%s%s", st->col, snip[0] ? " (" : "", snip,
             snip[0] ? ")" : "");
  err_set(err, KOREO_STAGE_EVAL, st->code, e->location, "Error evaluating `%s`%s: %s", e->location,
          where, st->msg);
  err->line = st->line;
  err->col = st->col;
}

/* ---- prepare ----------------------------------------------------------- */

/* Build the overlay index of `spec` (a map) and collect its leaves. */
static kv *overlay_index(const kv *spec, kv *leaves) {
  kv *idx = kv_map_new(spec->u.map.len);
  for (size_t i = 0; i < spec->u.map.len; i++) {
    kv *k = spec->u.map.keys[i], *v = spec->u.map.vals[i];
    if (v->kind == KV_MAP && v->u.map.len > 0) {
      kv_map_set(idx, kv_ref(k), overlay_index(v, leaves));
    } else {
      kv_map_set(idx, kv_ref(k), kv_int((int64_t)leaves->u.list.len));
      kv_list_push(leaves, kv_ref(v));
    }
  }
  return idx;
}

char *koreo_encode_shape(const kv *spec, koreo_shape shape, size_t *len, char *err, size_t errlen) {
  size_t n = 0;
  char *src;
  if (shape == KOREO_SHAPE_OVERLAY && spec->kind == KV_MAP) {
    kv *leaves = kv_list_new(spec->u.map.len);
    kv *idx = overlay_index(spec, leaves);
    kv_unref(idx);
    src = koreo_encode(leaves, &n, err, errlen);
    kv_unref(leaves);
  } else {
    src = koreo_encode(spec, &n, err, errlen);
  }
  if (src && shape == KOREO_SHAPE_PREDICATES) {
    static const char tail[] = ".filter(predicate, !predicate.assert)";
    char *s = realloc(src, n + sizeof tail);
    if (!s) kv_oom();
    memcpy(s + n, tail, sizeof tail);
    src = s;
    n += sizeof tail - 1;
  }
  if (src && len) *len = n;
  return src;
}

static const char *shape_need(koreo_shape shape) {
  return shape == KOREO_SHAPE_PREDICATES ? "a list" : "a mapping";
}

koreo_expr *koreo_expr_prepare(const cel_env *env, const kv *spec, koreo_shape shape,
                               const char *location, koreo_error *err) {
  err_clear(err);
  if (!location) location = "expression";
  koreo_expr *e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->shape = shape;
  e->location = strdup(location);
  if (!e->location) kv_oom();
  if (!spec || !koreo_truthy(spec)) return e; /* no program */

  bool shape_ok = true;
  switch (shape) {
  case KOREO_SHAPE_MAP:
  case KOREO_SHAPE_OVERLAY: shape_ok = spec->kind == KV_MAP; break;
  case KOREO_SHAPE_PREDICATES: shape_ok = spec->kind == KV_LIST; break;
  case KOREO_SHAPE_EXPRESSION: break;
  }
  if (!shape_ok) {
    err_set(err, KOREO_STAGE_PREPARE, CEL_ERR_INVALID, location,
            "Malformed %s, expected %s (got %s)", location, shape_need(shape),
            kv_kind_name(spec->kind));
    koreo_expr_free(e);
    return NULL;
  }

  char eb[256] = "";
  size_t len = 0;
  if (shape == KOREO_SHAPE_OVERLAY) {
    kv *leaves = kv_list_new(spec->u.map.len);
    e->index = overlay_index(spec, leaves);
    e->nleaves = leaves->u.list.len;
    kv_unref(leaves);
  }
  e->source = koreo_encode_shape(spec, shape, &len, eb, sizeof eb);
  if (!e->source) {
    err_set(err, KOREO_STAGE_PREPARE, CEL_ERR_INVALID, location,
            "Structural error in %s while building the expression: %s", location, eb);
    koreo_expr_free(e);
    return NULL;
  }
  cel_status st;
  memset(&st, 0, sizeof st);
  e->prog = cel_compile(env, e->source, len, &st);
  if (!e->prog) {
    err_set(err, KOREO_STAGE_PREPARE, st.code ? st.code : CEL_ERR_PARSE, location,
            "Parsing error in %s at line %u, column %u: %s (source: '%s')", location, st.line,
            st.col, st.msg, e->source);
    if (err) {
      err->line = st.line;
      err->col = st.col;
    }
    koreo_expr_free(e);
    return NULL;
  }
  return e;
}

void koreo_expr_free(koreo_expr *e) {
  if (!e) return;
  if (e->prog) cel_program_free(e->prog);
  free(e->source);
  free(e->location);
  kv_unref(e->index);
  free(e);
}

koreo_shape koreo_expr_shape(const koreo_expr *e) { return e->shape; }
bool koreo_expr_is_empty(const koreo_expr *e) { return e->prog == NULL; }
const char *koreo_expr_location(const koreo_expr *e) { return e->location; }
const char *koreo_expr_source(const koreo_expr *e) { return e->source; }
const kv *koreo_expr_overlay_index(const koreo_expr *e) { return e->index; }

/* ---- evaluation -------------------------------------------------------- */

kv *koreo_expr_eval(const koreo_expr *e, const kv *bindings, koreo_error *err) {
  err_clear(err);
  if (!e->prog) return kv_null();
  cel_status st;
  memset(&st, 0, sizeof st);
  kv *r = cel_eval(e->prog, bindings, &st);
  if (!r) eval_error(err, e, &st);
  return r;
}

kv *koreo_overlay_apply(const kv *base, const kv *index, const kv *values) {
  bool has_base = base && base->kind == KV_MAP;
  kv *r = kv_map_new((has_base ? base->u.map.len : 0) + index->u.map.len);
  if (has_base)
    for (size_t i = 0; i < base->u.map.len; i++)
      kv_map_set(r, kv_ref(base->u.map.keys[i]), kv_ref(base->u.map.vals[i]));
  for (size_t i = 0; i < index->u.map.len; i++) {
    kv *k = index->u.map.keys[i], *idx = index->u.map.vals[i];
    if (idx->kind == KV_INT) {
      size_t at = (size_t)idx->u.i;
      kv *v = at < values->u.list.len ? values->u.list.items[at] : kv_null();
      kv_map_set(r, kv_ref(k), kv_ref(v));
    } else {
      const kv *sub = has_base ? kv_map_get(base, k) : NULL;
      kv_map_set(r, kv_ref(k), koreo_overlay_apply(sub, idx, values));
    }
  }
  return r;
}

kv *koreo_expr_eval_overlay(const koreo_expr *e, const kv *base, const kv *bindings,
                            koreo_error *err) {
  err_clear(err);
  if (!e->prog) return kv_null();
  if (e->shape != KOREO_SHAPE_OVERLAY) {
    err_set(err, KOREO_STAGE_EVAL, CEL_ERR_INVALID, e->location,
            "Error evaluating `%s`: not an overlay expression", e->location);
    return NULL;
  }
  if (base && base->kind == KV_NULL) base = NULL;
  if (base && base->kind != KV_MAP) {
    err_set(err, KOREO_STAGE_EVAL, CEL_ERR_INVALID, e->location,
            "Error evaluating `%s`: the overlay base (`resource`) is a %s, expected a map",
            e->location, kv_kind_name(base->kind));
    return NULL;
  }
  kv *vars = kv_map_new((bindings && bindings->kind == KV_MAP ? bindings->u.map.len : 0) + 1);
  if (bindings && bindings->kind == KV_MAP)
    for (size_t i = 0; i < bindings->u.map.len; i++)
      kv_map_set(vars, kv_ref(bindings->u.map.keys[i]), kv_ref(bindings->u.map.vals[i]));
  kv_map_set_str(vars, "resource", base ? kv_ref((kv *)base) : kv_map_new(0));
  kv *values = koreo_expr_eval(e, vars, err);
  kv_unref(vars);
  if (!values) return NULL;
  if (values->kind != KV_LIST || values->u.list.len != e->nleaves) {
    err_set(err, KOREO_STAGE_EVAL, CEL_ERR_INVALID, e->location,
            "Error evaluating `%s`: the overlay leaves evaluated to a %s, expected a list of %zu",
            e->location, kv_kind_name(values->kind), e->nleaves);
    kv_unref(values);
    return NULL;
  }
  kv *r = koreo_overlay_apply(base, e->index, values);
  kv_unref(values);
  return r;
}

/* ---- native conversion (spec 2.5) -------------------------------------- */

static kv *base64_text(const unsigned char *p, size_t n) {
  kv_strbuf b = {0};
  kv_strbuf_put_base64(&b, p, n);
  return kv_strbuf_take_string(&b);
}

static kv *timestamp_text(const kv *t) {
  int32_t off = t->u.t.off;
  int64_t local = t->u.t.sec + off;
  int64_t days = local / 86400, rem = local % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t y;
  int mo, d;
  cel_civil_from_days(days, &y, &mo, &d);
  char zone[16];
  if (off == 0) {
    snprintf(zone, sizeof zone, "Z");
  } else {
    int32_t a = off < 0 ? -off : off;
    snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600),
             (int)(a / 60 % 60));
  }
  char buf[64];
  snprintf(buf, sizeof buf, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d%s", y, mo, d, (int)(rem / 3600),
           (int)(rem / 60 % 60), (int)(rem % 60), zone);
  return kv_cstring(buf);
}

/* The JSON text of a scalar map key. */
static kv *native_key(const kv *k) {
  char buf[40];
  switch ((kv_kind)k->kind) {
  case KV_STRING: return kv_ref((kv *)k);
  case KV_NULL: return kv_cstring("null");
  case KV_BOOL: return kv_cstring(k->u.b ? "true" : "false");
  case KV_INT: snprintf(buf, sizeof buf, "%" PRId64, k->u.i); return kv_cstring(buf);
  case KV_UINT: snprintf(buf, sizeof buf, "%" PRIu64, k->u.u); return kv_cstring(buf);
  case KV_DOUBLE:
    if (isnan(k->u.d)) return kv_cstring("NaN");
    if (isinf(k->u.d)) return kv_cstring(k->u.d < 0 ? "-Infinity" : "Infinity");
    kv_double_repr(k->u.d, buf);
    return kv_cstring(buf);
  default: {
    kv *n = koreo_to_native(k);
    if (n->kind == KV_STRING) return n;
    kv_unref(n);
    return kv_cstring(kv_kind_name(k->kind));
  }
  }
}

kv *koreo_to_native(const kv *v) {
  char buf[48];
  switch ((kv_kind)v->kind) {
  case KV_NULL:
  case KV_BOOL:
  case KV_INT:
  case KV_DOUBLE:
  case KV_STRING: return kv_ref((kv *)v);
  case KV_UINT: return v->u.u <= INT64_MAX ? kv_int((int64_t)v->u.u) : kv_ref((kv *)v);
  case KV_BYTES: return base64_text((const unsigned char *)v->u.s.ptr, v->u.s.len);
  case KV_TIMESTAMP: return timestamp_text(v);
  case KV_DURATION: snprintf(buf, sizeof buf, "%" PRId64 "s", v->u.t.sec); return kv_cstring(buf);
  case KV_TYPE: return kv_string(v->u.s.ptr, v->u.s.len);
  case KV_LIST: {
    kv *l = kv_list_new(v->u.list.len);
    for (size_t i = 0; i < v->u.list.len; i++)
      kv_list_push(l, koreo_to_native(v->u.list.items[i]));
    return l;
  }
  case KV_MAP: {
    kv *m = kv_map_new(v->u.map.len);
    for (size_t i = 0; i < v->u.map.len; i++)
      kv_map_set(m, native_key(v->u.map.keys[i]), koreo_to_native(v->u.map.vals[i]));
    return m;
  }
  case KV_ERROR: return kv_cstring(v->u.err.msg ? v->u.err.msg : "error");
  }
  return kv_null();
}
