/*
 * core/json.c: JSON in and out of `kv` values (koreo/json.h), and
 * kv_read_file.
 *
 * Reading (RFC 8259) works in two passes over the text:
 *  1. a strict validating scanner (recursive descent, no tree) checks the
 *     whole grammar and reports the first error with its 1-based line and
 *     column (column in code points).  On the way it decodes every string
 *     (keys included) and classifies every number from its exact lexeme,
 *     keeping the results in document order.  cJSON cannot do this part:
 *     it parses every number to a double (losing int vs double and
 *     precision beyond 2^53), accepts non-JSON such as `01`, `1.` and raw
 *     control characters in strings, truncates strings at an escaped
 *     \u0000 and reports error offsets that are sometimes off.
 *  2. cJSON builds the tree (cJSON_ParseWithLengthOpts) and the tree is
 *     converted to `kv` in document order, taking each string and number
 *     from the scanner's list.
 * Policies: a number with '.', 'e' or 'E' is a double, any other an int
 * (uint above INT64_MAX, a parse error beyond UINT64_MAX); `-0` is int 0;
 * exponent overflow (1e400) gives an infinite double as Python's
 * json.loads does.  Invalid UTF-8 anywhere and lone UTF-16 surrogates in
 * \u escapes are errors (cJSON rejects lone surrogates too; Python would
 * keep them).  Duplicate keys: the last value wins at the place of the
 * first key (like Python's json.loads).  Nesting is limited to 1000 levels
 * (cJSON's limit).  Number tokens are limited to 63 characters (cJSON's
 * limit; longer ones are an explicit error).
 *
 * Writing is direct (no cJSON) into a growing buffer; see kv_json_write.
 */
#include "koreo/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JSON_MAX_DEPTH = 1000, JSON_MAX_NUMBER = 63 };

/* ======================================================================
 * Positions and errors
 * ====================================================================== */

/* 1-based line and column (in code points) of byte offset `off`. */
static void json_line_col(const char *s, size_t len, size_t off, uint32_t *line, uint32_t *col) {
  uint32_t l = 1;
  size_t bol = 0;
  if (off > len) off = len;
  for (size_t i = 0; i < off; i++)
    if (s[i] == '\n') {
      l++;
      bol = i + 1;
    }
  *line = l;
  *col = (uint32_t)kv_utf8_count(s + bol, off - bol) + 1;
}

/* ======================================================================
 * Pass 1: the validating scanner
 * ====================================================================== */

typedef struct jscan {
  const char *s;
  size_t n, i;
  kv_parse_error *err;
  bool failed;
  kv **vals; /* strings (keys too) and numbers, document order */
  size_t nvals, cap;
} jscan;

static void js_fail(jscan *js, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void js_fail(jscan *js, size_t at, const char *fmt, ...) {
  if (js->failed) return;
  js->failed = true;
  if (!js->err) return;
  js->err->file = NULL;
  json_line_col(js->s, js->n, at, &js->err->line, &js->err->col);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(js->err->msg, sizeof js->err->msg, fmt, ap);
  va_end(ap);
}

/* Describe the character at `at` for an "unexpected" message. */
static void js_unexpected(jscan *js, size_t at, const char *what) {
  if (at >= js->n) {
    js_fail(js, at, "unexpected end of input%s%s", what ? ", " : "", what ? what : "");
    return;
  }
  unsigned char c = (unsigned char)js->s[at];
  uint32_t cp;
  size_t k = kv_utf8_decode(js->s + at, js->n - at, &cp);
  char shown[16];
  if (c >= 0x20 && c < 0x7F)
    snprintf(shown, sizeof shown, "'%c'", c);
  else if (k > 1)
    snprintf(shown, sizeof shown, "'%.*s'", (int)k, js->s + at);
  else if (k == 1)
    snprintf(shown, sizeof shown, "U+%04X", c);
  else
    snprintf(shown, sizeof shown, "byte 0x%02X", c);
  if (k == 0 && c >= 0x80)
    js_fail(js, at, "invalid UTF-8 (%s)%s%s", shown, what ? ", " : "", what ? what : "");
  else
    js_fail(js, at, "unexpected character %s%s%s", shown, what ? ", " : "", what ? what : "");
}

static void js_push(jscan *js, kv *v) {
  if (js->nvals == js->cap) {
    size_t nc = js->cap ? js->cap * 2 : 32;
    kv **p = realloc(js->vals, nc * sizeof *p);
    if (!p) kv_oom();
    js->vals = p;
    js->cap = nc;
  }
  js->vals[js->nvals++] = v;
}

static void js_ws(jscan *js) {
  while (js->i < js->n) {
    char c = js->s[js->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    js->i++;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits at s[i..]; -1 when malformed. */
static long hex4(const jscan *js, size_t i) {
  if (i + 4 > js->n) return -1;
  long v = 0;
  for (size_t k = 0; k < 4; k++) {
    int h = hexval(js->s[i + k]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* A string token at js->i (on the opening quote): validate, decode and
 * record it. */
static void js_string(jscan *js) {
  size_t start = js->i++;
  /* decoded text is never longer than the source */
  size_t end = js->i;
  while (end < js->n && js->s[end] != '"')
    end += (js->s[end] == '\\') ? 2 : 1;
  char *out = malloc((end > js->n ? js->n : end) - start + 1);
  if (!out) kv_oom();
  size_t o = 0;
  for (;;) {
    if (js->i >= js->n) {
      js_fail(js, start, "unterminated string");
      free(out);
      return;
    }
    unsigned char c = (unsigned char)js->s[js->i];
    if (c == '"') {
      js->i++;
      break;
    }
    if (c < 0x20) {
      js_fail(js, js->i, "control character U+%04X in string must be escaped", c);
      free(out);
      return;
    }
    if (c == '\\') {
      size_t at = js->i;
      if (at + 1 >= js->n) {
        js_fail(js, start, "unterminated string");
        free(out);
        return;
      }
      char e = js->s[at + 1];
      js->i += 2;
      switch (e) {
      case '"': out[o++] = '"'; break;
      case '\\': out[o++] = '\\'; break;
      case '/': out[o++] = '/'; break;
      case 'b': out[o++] = '\b'; break;
      case 'f': out[o++] = '\f'; break;
      case 'n': out[o++] = '\n'; break;
      case 'r': out[o++] = '\r'; break;
      case 't': out[o++] = '\t'; break;
      case 'u': {
        long u = hex4(js, js->i);
        if (u < 0) {
          js_fail(js, at, "invalid \\u escape (expected 4 hex digits)");
          free(out);
          return;
        }
        js->i += 4;
        uint32_t cp = (uint32_t)u;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          js_fail(js, at, "lone low surrogate \\u%04lX in string", u);
          free(out);
          return;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          long lo = -1;
          if (js->i + 1 < js->n && js->s[js->i] == '\\' && js->s[js->i + 1] == 'u')
            lo = hex4(js, js->i + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) {
            js_fail(js, at, "lone high surrogate \\u%04lX in string (no low surrogate follows)", u);
            free(out);
            return;
          }
          js->i += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        }
        o += kv_utf8_encode(cp, out + o);
        break;
      }
      default:
        js_fail(js, at, "invalid escape '\\%c' in string", (e >= 0x20 && e < 0x7F) ? e : '?');
        free(out);
        return;
      }
      continue;
    }
    uint32_t cp;
    size_t k = kv_utf8_decode(js->s + js->i, js->n - js->i, &cp);
    if (k == 0) {
      js_fail(js, js->i, "invalid UTF-8 in string (byte 0x%02X)", c);
      free(out);
      return;
    }
    memcpy(out + o, js->s + js->i, k);
    o += k;
    js->i += k;
  }
  out[o] = 0;
  js_push(js, kv_string_take(out, o));
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A number token at js->i: check the RFC 8259 grammar, classify it from
 * its lexeme and record it. */
static void js_number(jscan *js) {
  size_t start = js->i, i = js->i;
  const char *s = js->s;
  bool neg = false, isdbl = false;
  if (s[i] == '-') {
    neg = true;
    i++;
  }
  if (i >= js->n || !is_digit(s[i])) {
    js_unexpected(js, i, "expected a digit");
    return;
  }
  size_t dstart = i;
  if (s[i] == '0') {
    i++;
    if (i < js->n && is_digit(s[i])) {
      js_fail(js, start, "invalid number: leading zeros are not allowed");
      return;
    }
  } else {
    while (i < js->n && is_digit(s[i]))
      i++;
  }
  size_t dend = i;
  if (i < js->n && s[i] == '.') {
    isdbl = true;
    i++;
    if (i >= js->n || !is_digit(s[i])) {
      js_unexpected(js, i, "expected a digit after '.'");
      return;
    }
    while (i < js->n && is_digit(s[i]))
      i++;
  }
  if (i < js->n && (s[i] == 'e' || s[i] == 'E')) {
    isdbl = true;
    i++;
    if (i < js->n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= js->n || !is_digit(s[i])) {
      js_unexpected(js, i, "expected a digit in the exponent");
      return;
    }
    while (i < js->n && is_digit(s[i]))
      i++;
  }
  if (i - start > JSON_MAX_NUMBER) {
    js_fail(js, start, "number token longer than %d characters is not supported", JSON_MAX_NUMBER);
    return;
  }
  js->i = i;
  if (isdbl) {
    char buf[JSON_MAX_NUMBER + 1];
    memcpy(buf, s + start, i - start);
    buf[i - start] = 0;
    js_push(js, kv_double(strtod(buf, NULL)));
    return;
  }
  uint64_t mag = 0;
  for (size_t k = dstart; k < dend; k++) {
    unsigned d = (unsigned)(s[k] - '0');
    if (mag > (UINT64_MAX - d) / 10) {
      js_fail(js, start, "integer %.*s is out of range (beyond 64 bits)", (int)(i - start),
              s + start);
      return;
    }
    mag = mag * 10 + d;
  }
  if (neg) {
    if (mag > (uint64_t)INT64_MAX + 1) {
      js_fail(js, start, "integer %.*s is out of range (below -2^63)", (int)(i - start), s + start);
      return;
    }
    js_push(js, kv_int(mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag));
  } else if (mag > (uint64_t)INT64_MAX) {
    js_push(js, kv_uint(mag));
  } else {
    js_push(js, kv_int((int64_t)mag));
  }
}

static bool js_literal(jscan *js, const char *word) {
  size_t k = strlen(word);
  if (js->n - js->i >= k && memcmp(js->s + js->i, word, k) == 0) {
    js->i += k;
    return true;
  }
  /* point at the first differing character */
  size_t m = 0;
  while (js->i + m < js->n && m < k && js->s[js->i + m] == word[m])
    m++;
  js_unexpected(js, js->i + m, NULL);
  return false;
}

static void js_value(jscan *js, int depth);

static void js_container(jscan *js, int depth, bool object) {
  if (depth >= JSON_MAX_DEPTH) {
    js_fail(js, js->i, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    return;
  }
  char close = object ? '}' : ']';
  js->i++;
  js_ws(js);
  if (js->i < js->n && js->s[js->i] == close) {
    js->i++;
    return;
  }
  for (;;) {
    if (object) {
      if (js->i >= js->n || js->s[js->i] != '"') {
        js_unexpected(js, js->i, "expected a string key");
        return;
      }
      js_string(js);
      if (js->failed) return;
      js_ws(js);
      if (js->i >= js->n || js->s[js->i] != ':') {
        js_unexpected(js, js->i, "expected ':' after an object key");
        return;
      }
      js->i++;
      js_ws(js);
    }
    js_value(js, depth + 1);
    if (js->failed) return;
    js_ws(js);
    if (js->i < js->n && js->s[js->i] == ',') {
      js->i++;
      js_ws(js);
      continue;
    }
    if (js->i < js->n && js->s[js->i] == close) {
      js->i++;
      return;
    }
    js_unexpected(js, js->i, object ? "expected ',' or '}'" : "expected ',' or ']'");
    return;
  }
}

static void js_value(jscan *js, int depth) {
  if (js->i >= js->n) {
    js_unexpected(js, js->i, "expected a value");
    return;
  }
  char c = js->s[js->i];
  switch (c) {
  case '{': js_container(js, depth, true); return;
  case '[': js_container(js, depth, false); return;
  case '"': js_string(js); return;
  case 't': js_literal(js, "true"); return;
  case 'f': js_literal(js, "false"); return;
  case 'n': js_literal(js, "null"); return;
  default:
    if (c == '-' || is_digit(c)) {
      js_number(js);
      return;
    }
    js_unexpected(js, js->i, "expected a value");
  }
}

/* ======================================================================
 * Pass 2: cJSON tree -> kv
 * ====================================================================== */

typedef struct jbuild {
  jscan *js;
  size_t next;
  bool bad;
} jbuild;

static kv *tree_take(jbuild *b, bool want_string) {
  if (b->next >= b->js->nvals) {
    b->bad = true;
    return kv_null();
  }
  kv *v = b->js->vals[b->next];
  bool is_str = v->kind == KV_STRING;
  if (is_str != want_string) {
    b->bad = true;
    return kv_null();
  }
  b->js->vals[b->next++] = NULL;
  return v;
}

static kv *tree_value(jbuild *b, const cJSON *n) {
  if (cJSON_IsNull(n)) return kv_null();
  if (cJSON_IsTrue(n)) return kv_bool(true);
  if (cJSON_IsFalse(n)) return kv_bool(false);
  if (cJSON_IsNumber(n)) return tree_take(b, false);
  if (cJSON_IsString(n)) return tree_take(b, true);
  if (cJSON_IsArray(n)) {
    kv *l = kv_list_new((size_t)cJSON_GetArraySize(n));
    for (const cJSON *c = n->child; c; c = c->next)
      kv_list_push(l, tree_value(b, c));
    return l;
  }
  if (cJSON_IsObject(n)) {
    kv *m = kv_map_new((size_t)cJSON_GetArraySize(n));
    for (const cJSON *c = n->child; c; c = c->next) {
      kv *k = tree_take(b, true);
      kv *v = tree_value(b, c);
      if (k->kind != KV_STRING) {
        kv_unref(v);
        continue;
      }
      kv_map_set(m, k, v);
    }
    return m;
  }
  b->bad = true;
  return kv_null();
}

kv *kv_json_parse(const char *text, size_t len, kv_parse_error *err) {
  if (!text) { /* no text: an empty document */
    text = "";
    len = 0;
  }
  jscan js = {.s = text, .n = len, .err = err};
  if (err) memset(err, 0, sizeof *err);
  js_ws(&js);
  js_value(&js, 0);
  if (!js.failed) {
    js_ws(&js);
    if (js.i < len) js_unexpected(&js, js.i, "expected end of input after the JSON value");
  }
  kv *result = NULL;
  if (!js.failed) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
      size_t at = end && end >= text ? (size_t)(end - text) : 0;
      js_fail(&js, at, "JSON parser (cJSON) rejected the input");
    } else {
      jbuild b = {.js = &js};
      result = tree_value(&b, root);
      cJSON_Delete(root);
      if (b.bad || b.next != js.nvals) {
        kv_unref(result);
        result = NULL;
        js_fail(&js, 0, "internal error: JSON token order mismatch");
      }
    }
  }
  for (size_t k = 0; k < js.nvals; k++)
    kv_unref(js.vals[k]);
  free(js.vals);
  return result;
}

/* ======================================================================
 * Writing
 * ====================================================================== */

/* A JSON string literal.  Invalid UTF-8 bytes (which a well-formed kv
 * string never holds) are written as U+FFFD so the output stays valid. */
static void jb_string(kv_strbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  kv_strbuf_reserve(b, n + 2);
  kv_strbuf_putc(b, '"');
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      kv_strbuf_put(b, e, 2);
      i++;
    } else if (c < 0x20) {
      switch (c) {
      case '\b': kv_strbuf_puts(b, "\\b"); break;
      case '\f': kv_strbuf_puts(b, "\\f"); break;
      case '\n': kv_strbuf_puts(b, "\\n"); break;
      case '\r': kv_strbuf_puts(b, "\\r"); break;
      case '\t': kv_strbuf_puts(b, "\\t"); break;
      default: {
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        kv_strbuf_put(b, e, 6);
      }
      }
      i++;
    } else if (c < 0x80) {
      size_t j = i;
      while (j < n && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] < 0x80 && s[j] != '"' &&
             s[j] != '\\')
        j++;
      kv_strbuf_put(b, s + i, j - i);
      i = j;
    } else {
      uint32_t cp;
      size_t k = kv_utf8_decode(s + i, n - i, &cp);
      if (k == 0) {
        kv_strbuf_puts(b, "\xEF\xBF\xBD");
        i++;
      } else {
        kv_strbuf_put(b, s + i, k);
        i += k;
      }
    }
  }
  kv_strbuf_putc(b, '"');
}

/* days since 1970-01-01 -> civil date (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = (int64_t)yoe + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

/* RFC 3339 UTC text as CEL prints a timestamp: fraction trimmed to 0, 3, 6
 * or 9 digits ("2009-02-13T23:31:30Z", "1970-01-01T00:00:00.500Z"). */
static int fmt_timestamp(int64_t sec, int32_t nsec, char *buf, size_t n) {
  if (nsec < 0 || nsec > 999999999) { /* outside the contract: normalise */
    int64_t carry = nsec / 1000000000;
    nsec %= 1000000000;
    if (nsec < 0) {
      nsec += 1000000000;
      carry--;
    }
    if (__builtin_add_overflow(sec, carry, &sec)) nsec = 0;
  }
  int64_t days = sec / 86400, rem = sec % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t y;
  unsigned mo, d;
  civil_from_days(days, &y, &mo, &d);
  int len = snprintf(buf, n, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, mo, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
  if (nsec) {
    if (nsec % 1000000 == 0)
      len += snprintf(buf + len, n - (size_t)len, ".%03d", nsec / 1000000);
    else if (nsec % 1000 == 0)
      len += snprintf(buf + len, n - (size_t)len, ".%06d", nsec / 1000);
    else
      len += snprintf(buf + len, n - (size_t)len, ".%09d", nsec);
  }
  len += snprintf(buf + len, n - (size_t)len, "Z");
  return len;
}

/* CEL duration text: seconds with up to 9 fraction digits (trailing zeros
 * dropped) and "s": "1.5s", "-0.25s", "3600s". */
static int fmt_duration(int64_t sec, int32_t nsec, char *buf, size_t n) {
  bool neg = sec < 0 || nsec < 0;
  uint64_t s = sec < 0 ? (uint64_t)0 - (uint64_t)sec : (uint64_t)sec;
  uint32_t ns = (uint32_t)(nsec < 0 ? -(int64_t)nsec : nsec);
  s += ns / 1000000000u;
  ns %= 1000000000u;
  int len = snprintf(buf, n, "%s%llu", neg && (s || ns) ? "-" : "", (unsigned long long)s);
  if (ns) {
    char frac[16];
    snprintf(frac, sizeof frac, "%09u", ns);
    int fl = 9;
    while (fl > 0 && frac[fl - 1] == '0')
      fl--;
    len += snprintf(buf + len, n - (size_t)len, ".%.*s", fl, frac);
  }
  len += snprintf(buf + len, n - (size_t)len, "s");
  return len;
}

/* A JSON string holding the base64 text of n bytes. */
static void jb_base64(kv_strbuf *b, const unsigned char *p, size_t n) {
  kv_strbuf_putc(b, '"');
  kv_strbuf_put_base64(b, p, n);
  kv_strbuf_putc(b, '"');
}

/* Scalar JSON text (not strings, lists, maps) into `b`. */
static void jb_scalar(kv_strbuf *b, const kv *v) {
  char tmp[64];
  switch ((kv_kind)v->kind) {
  case KV_NULL: kv_strbuf_puts(b, "null"); break;
  case KV_BOOL: kv_strbuf_puts(b, v->u.b ? "true" : "false"); break;
  case KV_INT:
    kv_strbuf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i));
    break;
  case KV_UINT:
    kv_strbuf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v->u.u));
    break;
  case KV_DOUBLE:
    if (isnan(v->u.d))
      kv_strbuf_puts(b, "\"NaN\"");
    else if (isinf(v->u.d) && v->u.d > 0)
      kv_strbuf_puts(b, "\"Infinity\"");
    else if (isinf(v->u.d))
      kv_strbuf_puts(b, "\"-Infinity\"");
    else
      kv_strbuf_put(b, tmp, (size_t)kv_double_repr(v->u.d, tmp));
    break;
  case KV_STRING:
  case KV_TYPE: jb_string(b, v->u.s.ptr, v->u.s.len); break;
  case KV_BYTES: jb_base64(b, (const unsigned char *)v->u.s.ptr, v->u.s.len); break;
  case KV_TIMESTAMP: {
    int n = fmt_timestamp(v->u.t.sec, v->u.t.nsec, tmp, sizeof tmp);
    jb_string(b, tmp, (size_t)n);
    break;
  }
  case KV_DURATION: {
    int n = fmt_duration(v->u.t.sec, v->u.t.nsec, tmp, sizeof tmp);
    jb_string(b, tmp, (size_t)n);
    break;
  }
  case KV_ERROR:
    kv_strbuf_puts(b, "{\"error\":");
    jb_string(b, v->u.err.msg, strlen(v->u.err.msg));
    kv_strbuf_putc(b, '}');
    break;
  default: kv_strbuf_puts(b, "null"); break;
  }
}

/* The text a map key is written under (without quotes): a string's bytes,
 * other kinds their JSON text. */
static char *key_text(const kv *k, size_t *n) {
  if (k->kind == KV_STRING) {
    *n = k->u.s.len;
    return NULL; /* use the string itself */
  }
  kv_strbuf t = {0};
  if (k->kind == KV_LIST || k->kind == KV_MAP) {
    char *s = kv_json_write(k, 0, n);
    return s;
  }
  jb_scalar(&t, k);
  /* strings-like scalars (bytes, timestamps, ...) come quoted: drop quotes */
  if (t.len >= 2 && t.p[0] == '"' && k->kind != KV_ERROR) {
    memmove(t.p, t.p + 1, t.len - 2);
    t.len -= 2;
    t.p[t.len] = 0;
  }
  return kv_strbuf_take(&t, n);
}

typedef struct keyent {
  const char *s;
  size_t n;
  size_t idx;
} keyent;

static int keyent_cmp(const void *a, const void *b) {
  const keyent *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, m);
  if (c) return c;
  if (x->n != y->n) return x->n < y->n ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void jb_indent(kv_strbuf *b, unsigned flags, int depth) {
  if (!(flags & KV_JSON_PRETTY)) return;
  kv_strbuf_reserve(b, 1 + 2 * (size_t)depth);
  b->p[b->len++] = '\n';
  for (int i = 0; i < depth; i++) {
    b->p[b->len++] = ' ';
    b->p[b->len++] = ' ';
  }
  b->p[b->len] = 0;
}

static void jb_value(kv_strbuf *b, const kv *v, unsigned flags, int depth) {
  if (v->kind == KV_LIST) {
    size_t n = v->u.list.len;
    if (!n) {
      kv_strbuf_puts(b, "[]");
      return;
    }
    kv_strbuf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
      if (i) kv_strbuf_putc(b, ',');
      jb_indent(b, flags, depth + 1);
      jb_value(b, v->u.list.items[i], flags, depth + 1);
    }
    jb_indent(b, flags, depth);
    kv_strbuf_putc(b, ']');
    return;
  }
  if (v->kind != KV_MAP) {
    jb_scalar(b, v);
    return;
  }
  size_t n = v->u.map.len;
  if (!n) {
    kv_strbuf_puts(b, "{}");
    return;
  }
  keyent *ks = malloc(n * sizeof *ks);
  char **owned = calloc(n, sizeof *owned);
  if (!ks || !owned) kv_oom();
  for (size_t i = 0; i < n; i++) {
    const kv *k = v->u.map.keys[i];
    size_t kn;
    owned[i] = key_text(k, &kn);
    ks[i].s = owned[i] ? owned[i] : k->u.s.ptr;
    ks[i].n = kn;
    ks[i].idx = i;
  }
  if (flags & KV_JSON_SORT_KEYS) qsort(ks, n, sizeof *ks, keyent_cmp);
  kv_strbuf_putc(b, '{');
  for (size_t i = 0; i < n; i++) {
    if (i) kv_strbuf_putc(b, ',');
    jb_indent(b, flags, depth + 1);
    jb_string(b, ks[i].s, ks[i].n);
    kv_strbuf_puts(b, (flags & KV_JSON_PRETTY) ? ": " : ":");
    jb_value(b, v->u.map.vals[ks[i].idx], flags, depth + 1);
  }
  jb_indent(b, flags, depth);
  kv_strbuf_putc(b, '}');
  for (size_t i = 0; i < n; i++)
    free(owned[i]);
  free(owned);
  free(ks);
}

char *kv_json_write(const kv *v, unsigned flags, size_t *len) {
  kv_strbuf b = {0};
  kv_strbuf_reserve(&b, 255); /* most documents fit in 256 bytes */
  if (v)
    jb_value(&b, v, flags, 0);
  else
    kv_strbuf_puts(&b, "null");
  return kv_strbuf_take(&b, len);
}

/* ======================================================================
 * Files
 * ====================================================================== */

char *kv_read_file(const char *path, size_t *len, kv_parse_error *err) {
  if (err) memset(err, 0, sizeof *err);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (err) {
      err->file = kv_intern_file(path);
      snprintf(err->msg, sizeof err->msg, "cannot open %s: %s", path, strerror(errno));
    }
    return NULL;
  }
  kv_strbuf b = {0};
  for (;;) {
    kv_strbuf_reserve(&b, 4096);
    size_t got = fread(b.p + b.len, 1, b.cap - b.len - 1, f);
    b.len += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    int e = errno;
    fclose(f);
    kv_strbuf_free(&b);
    if (err) {
      err->file = kv_intern_file(path);
      snprintf(err->msg, sizeof err->msg, "cannot read %s: %s", path, strerror(e ? e : EIO));
    }
    return NULL;
  }
  fclose(f);
  b.p[b.len] = 0;
  return kv_strbuf_take(&b, len);
}
