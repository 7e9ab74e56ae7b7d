/*
 * core/cel/lib_strings.c: the CEL strings extension library
 * (CEL_EXT_STRINGS), as cel-go's ext.Strings() defines it: charAt, indexOf,
 * lastIndexOf, lowerAscii, upperAscii, replace, split, substring, trim,
 * join, reverse, format and the global strings.quote.
 *
 * Indexes count Unicode code points, not bytes.  Bytes that are not valid
 * UTF-8 decode as U+FFFD one byte at a time (Go's rune conversion).
 * format() follows cel-go's second formatter (formatting_v2.go): %s renders
 * any value (lists as "[a, b]", maps as "{k: v}" sorted by key text,
 * doubles in shortest fixed notation, timestamps as RFC 3339 with nanos,
 * durations as seconds + "s"), %d %f %e accept int, uint and double, %b
 * accepts int, uint and bool, %x %X int, uint, string and bytes, %o int
 * and uint.
 */
#include "cel/cel_impl.h"
#include "cel/lib_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------ */

/* Decode one code point at s[0..n) (n > 0).  Invalid or truncated
 * sequences decode as U+FFFD of width 1, as Go does. */
static uint32_t u8_decode(const char *s, size_t n, size_t *width) {
  uint32_t cp;
  size_t k = kv_utf8_decode(s, n, &cp);
  *width = k ? k : 1;
  return k ? cp : 0xFFFD;
}

/* A string decoded to code points: r[i] is the i-th code point, off[i] its
 * byte offset (off[n] == byte length). */
typedef struct runes {
  uint32_t *r;
  size_t *off;
  size_t n;
} runes;

static void runes_decode(runes *out, const char *s, size_t len) {
  out->r = malloc((len + 1) * sizeof *out->r);
  out->off = malloc((len + 1) * sizeof *out->off);
  if (!out->r || !out->off) kv_oom();
  size_t i = 0, n = 0;
  while (i < len) {
    size_t w;
    out->off[n] = i;
    out->r[n++] = u8_decode(s + i, len - i, &w);
    i += w;
  }
  out->off[n] = len;
  out->n = n;
}
static void runes_free(runes *r) {
  free(r->r);
  free(r->off);
}

/* Go's unicode.IsSpace. */
static bool is_unicode_space(uint32_t r) {
  switch (r) {
  case '\t':
  case '\n':
  case '\v':
  case '\f':
  case '\r':
  case ' ':
  case 0x85:
  case 0xA0:
  case 0x1680:
  case 0x2028:
  case 0x2029:
  case 0x202F:
  case 0x205F:
  case 0x3000: return true;
  default: return r >= 0x2000 && r <= 0x200A;
  }
}

static bool is_str(const kv *v) { return v->kind == KV_STRING; }
static bool is_int(const kv *v) { return v->kind == KV_INT; }

static kv *index_error(const cel_call *c, int64_t i) {
  return cel_errorf(c, CEL_ERR_RANGE, "index out of range: %lld", (long long)i);
}

/* ---- charAt, indexOf, lastIndexOf, substring ---------------------------- */

/* <string>.charAt(<int>) -> string; index == length gives "". */
static kv *fn_char_at(const cel_call *c, kv *const *a, size_t n) {
  if (n != 2 || !is_str(a[0]) || !is_int(a[1])) return cel_no_overload(c, a, n);
  runes rs;
  runes_decode(&rs, kv_str(a[0]), kv_len(a[0]));
  int64_t i = a[1]->u.i;
  kv *out;
  if (i < 0 || (uint64_t)i > rs.n)
    out = index_error(c, i);
  else if ((size_t)i == rs.n)
    out = kv_string("", 0);
  else
    out = kv_string(kv_str(a[0]) + rs.off[i], rs.off[i + 1] - rs.off[i]);
  runes_free(&rs);
  return out;
}

static bool match_at(const runes *s, size_t i, const runes *sub) {
  for (size_t j = 0; j < sub->n; j++)
    if (s->r[i + j] != sub->r[j]) return false;
  return true;
}

/* <string>.indexOf(<string>[, <int> start]) -> int (code points; -1 if
 * absent).  An empty search string gives the start position. */
static kv *fn_index_of(const cel_call *c, kv *const *a, size_t n) {
  if (n < 2 || n > 3 || !is_str(a[0]) || !is_str(a[1]) || (n == 3 && !is_int(a[2])))
    return cel_no_overload(c, a, n);
  runes s, sub;
  runes_decode(&s, kv_str(a[0]), kv_len(a[0]));
  runes_decode(&sub, kv_str(a[1]), kv_len(a[1]));
  int64_t off = n == 3 ? a[2]->u.i : 0;
  kv *out = NULL;
  if (sub.n == 0) {
    if (off < 0 || (uint64_t)off > s.n)
      out = index_error(c, off);
    else
      out = kv_int(off);
  } else if (off < 0 || (uint64_t)off >= s.n) {
    /* cel-go: a start at or past the end is out of range, except that the
     * one-argument form on an empty string simply finds nothing */
    out = n == 2 ? kv_int(-1) : index_error(c, off);
  } else {
    int64_t found = -1;
    for (size_t i = (size_t)off; i + sub.n <= s.n; i++)
      if (match_at(&s, i, &sub)) {
        found = (int64_t)i;
        break;
      }
    out = kv_int(found);
  }
  runes_free(&s);
  runes_free(&sub);
  return out;
}

/* <string>.lastIndexOf(<string>[, <int> last]) -> int: the last match
 * starting at or before `last` (default: the end). */
static kv *fn_last_index_of(const cel_call *c, kv *const *a, size_t n) {
  if (n < 2 || n > 3 || !is_str(a[0]) || !is_str(a[1]) || (n == 3 && !is_int(a[2])))
    return cel_no_overload(c, a, n);
  runes s, sub;
  runes_decode(&s, kv_str(a[0]), kv_len(a[0]));
  runes_decode(&sub, kv_str(a[1]), kv_len(a[1]));
  kv *out = NULL;
  int64_t off;
  if (n == 3) {
    off = a[2]->u.i;
  } else {
    off = (int64_t)s.n - 1;
    if (sub.n == 0) off = (int64_t)s.n;
  }
  if (sub.n == 0) {
    if (off < 0 || (uint64_t)off > s.n)
      out = index_error(c, off);
    else
      out = kv_int(off);
  } else if (n == 2 && sub.n > s.n) {
    out = kv_int(-1);
  } else if (off < 0 || (uint64_t)off >= s.n) {
    out = index_error(c, off);
  } else if (sub.n > s.n) {
    out = kv_int(-1);
  } else {
    size_t start = (size_t)off;
    if (start > s.n - sub.n) start = s.n - sub.n;
    int64_t found = -1;
    for (size_t i = start + 1; i-- > 0;)
      if (match_at(&s, i, &sub)) {
        found = (int64_t)i;
        break;
      }
    out = kv_int(found);
  }
  runes_free(&s);
  runes_free(&sub);
  return out;
}

/* <string>.substring(<int> start[, <int> end]) -> string, code points
 * [start, end). */
static kv *fn_substring(const cel_call *c, kv *const *a, size_t n) {
  if (n < 2 || n > 3 || !is_str(a[0]) || !is_int(a[1]) || (n == 3 && !is_int(a[2])))
    return cel_no_overload(c, a, n);
  runes s;
  runes_decode(&s, kv_str(a[0]), kv_len(a[0]));
  int64_t start = a[1]->u.i, end = n == 3 ? a[2]->u.i : (int64_t)s.n;
  kv *out;
  if (n == 3 && start > end)
    out = cel_errorf(c, CEL_ERR_RANGE, "invalid substring range. start: %lld, end: %lld",
                     (long long)start, (long long)end);
  else if (start < 0 || (uint64_t)start > s.n)
    out = index_error(c, start);
  else if (end < 0 || (uint64_t)end > s.n)
    out = index_error(c, end);
  else
    out = kv_string(kv_str(a[0]) + s.off[start], s.off[end] - s.off[start]);
  runes_free(&s);
  return out;
}

/* ---- case, trim, reverse, quote ---------------------------------------- */

static kv *ascii_case(const cel_call *c, kv *const *a, size_t n, bool upper) {
  if (n != 1 || !is_str(a[0])) return cel_no_overload(c, a, n);
  size_t len = kv_len(a[0]);
  char *p = malloc(len + 1);
  if (!p) kv_oom();
  memcpy(p, kv_str(a[0]), len + 1);
  for (size_t i = 0; i < len; i++) {
    if (upper && p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 'a' + 'A');
    if (!upper && p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] - 'A' + 'a');
  }
  return kv_string_take(p, len);
}
/* <string>.lowerAscii() / .upperAscii(): only ASCII letters change. */
static kv *fn_lower_ascii(const cel_call *c, kv *const *a, size_t n) {
  return ascii_case(c, a, n, false);
}
static kv *fn_upper_ascii(const cel_call *c, kv *const *a, size_t n) {
  return ascii_case(c, a, n, true);
}

/* <string>.trim(): strips leading and trailing Unicode white space. */
static kv *fn_trim(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1 || !is_str(a[0])) return cel_no_overload(c, a, n);
  runes s;
  runes_decode(&s, kv_str(a[0]), kv_len(a[0]));
  size_t lo = 0, hi = s.n;
  while (lo < hi && is_unicode_space(s.r[lo]))
    lo++;
  while (hi > lo && is_unicode_space(s.r[hi - 1]))
    hi--;
  kv *out = kv_string(kv_str(a[0]) + s.off[lo], s.off[hi] - s.off[lo]);
  runes_free(&s);
  return out;
}

/* <string>.reverse(): the code points in reverse order. */
static kv *fn_reverse(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1 || !is_str(a[0])) return cel_no_overload(c, a, n);
  runes s;
  runes_decode(&s, kv_str(a[0]), kv_len(a[0]));
  kv_strbuf b = {0};
  kv_strbuf_reserve(&b, kv_len(a[0]));
  for (size_t i = s.n; i-- > 0;)
    kv_strbuf_put_utf8(&b, s.r[i]);
  runes_free(&s);
  return kv_strbuf_take_string(&b);
}

/* strings.quote(<string>): the text in double quotes with \a \b \f \n \r
 * \t \v \\ \" escaped; invalid UTF-8 becomes U+FFFD. */
static kv *fn_quote(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1 || !is_str(a[0])) return cel_no_overload(c, a, n);
  runes s;
  runes_decode(&s, kv_str(a[0]), kv_len(a[0]));
  kv_strbuf b = {0};
  kv_strbuf_putc(&b, '"');
  for (size_t i = 0; i < s.n; i++) {
    switch (s.r[i]) {
    case '\a': kv_strbuf_puts(&b, "\\a"); break;
    case '\b': kv_strbuf_puts(&b, "\\b"); break;
    case '\f': kv_strbuf_puts(&b, "\\f"); break;
    case '\n': kv_strbuf_puts(&b, "\\n"); break;
    case '\r': kv_strbuf_puts(&b, "\\r"); break;
    case '\t': kv_strbuf_puts(&b, "\\t"); break;
    case '\v': kv_strbuf_puts(&b, "\\v"); break;
    case '\\': kv_strbuf_puts(&b, "\\\\"); break;
    case '"': kv_strbuf_puts(&b, "\\\""); break;
    default: kv_strbuf_put_utf8(&b, s.r[i]);
    }
  }
  kv_strbuf_putc(&b, '"');
  runes_free(&s);
  return kv_strbuf_take_string(&b);
}

/* ---- replace, split, join ------------------------------------------------ */

/* Byte offset of `sub` in s[from..len), or -1. */
static ptrdiff_t find_bytes(const char *s, size_t len, size_t from, const char *sub, size_t sn) {
  if (sn == 0) return (ptrdiff_t)from;
  if (from > len || len - from < sn) return -1;
  const char *p = memmem(s + from, len - from, sub, sn);
  return p ? p - s : -1;
}
static size_t count_bytes(const char *s, size_t len, const char *sub, size_t sn) {
  if (sn == 0) return kv_utf8_count(s, len) + 1;
  size_t k = 0;
  ptrdiff_t at;
  size_t from = 0;
  while ((at = find_bytes(s, len, from, sub, sn)) >= 0) {
    k++;
    from = (size_t)at + sn;
  }
  return k;
}

/* <string>.replace(<string> old, <string> new[, <int> limit]) -> string:
 * Go's strings.Replace; a negative limit replaces all, 0 none; an empty
 * `old` matches before every code point and at the end. */
static kv *fn_replace(const cel_call *c, kv *const *a, size_t n) {
  if (n < 3 || n > 4 || !is_str(a[0]) || !is_str(a[1]) || !is_str(a[2]) ||
      (n == 4 && !is_int(a[3])))
    return cel_no_overload(c, a, n);
  const char *s = kv_str(a[0]), *old = kv_str(a[1]), *rep = kv_str(a[2]);
  size_t len = kv_len(a[0]), on = kv_len(a[1]), rn = kv_len(a[2]);
  int64_t limit = n == 4 ? a[3]->u.i : -1;
  size_t m = count_bytes(s, len, old, on);
  if (limit == 0 || m == 0) return kv_ref(a[0]);
  size_t times = (limit < 0 || (uint64_t)limit > m) ? m : (size_t)limit;
  kv_strbuf b = {0};
  size_t start = 0;
  for (size_t i = 0; i < times; i++) {
    size_t j = start;
    if (on == 0) {
      if (i > 0) {
        size_t w;
        u8_decode(s + start, len - start, &w);
        j += w;
      }
    } else {
      j = (size_t)find_bytes(s, len, start, old, on);
    }
    kv_strbuf_put(&b, s + start, j - start);
    kv_strbuf_put(&b, rep, rn);
    start = j + on;
  }
  kv_strbuf_put(&b, s + start, len - start);
  return kv_strbuf_take_string(&b);
}

/* <string>.split(<string> sep[, <int> limit]) -> list(string): Go's
 * strings.SplitN; limit 0 gives [], a negative limit splits all, an empty
 * separator splits into code points. */
static kv *fn_split(const cel_call *c, kv *const *a, size_t n) {
  if (n < 2 || n > 3 || !is_str(a[0]) || !is_str(a[1]) || (n == 3 && !is_int(a[2])))
    return cel_no_overload(c, a, n);
  const char *s = kv_str(a[0]), *sep = kv_str(a[1]);
  size_t len = kv_len(a[0]), sn = kv_len(a[1]);
  int64_t limit = n == 3 ? a[2]->u.i : -1;
  kv *out = kv_list_new(4);
  if (limit == 0) return out;
  if (sn == 0) {
    size_t cps = kv_utf8_count(s, len);
    size_t pieces = (limit < 0 || (uint64_t)limit > cps) ? cps : (size_t)limit;
    size_t i = 0;
    for (size_t k = 0; k < pieces; k++) {
      size_t w;
      if (k == pieces - 1) {
        w = len - i;
      } else {
        u8_decode(s + i, len - i, &w);
      }
      kv_list_push(out, kv_string(s + i, w));
      i += w;
    }
    return out;
  }
  size_t from = 0;
  int64_t made = 0;
  for (;;) {
    if (limit > 0 && made == limit - 1) break;
    ptrdiff_t at = find_bytes(s, len, from, sep, sn);
    if (at < 0) break;
    kv_list_push(out, kv_string(s + from, (size_t)at - from));
    made++;
    from = (size_t)at + sn;
  }
  kv_list_push(out, kv_string(s + from, len - from));
  return out;
}

/* <list(string)>.join([<string> sep]) -> string. */
static kv *fn_join(const cel_call *c, kv *const *a, size_t n) {
  if (n < 1 || n > 2 || a[0]->kind != KV_LIST || (n == 2 && !is_str(a[1])))
    return cel_no_overload(c, a, n);
  size_t k = kv_len(a[0]);
  for (size_t i = 0; i < k; i++)
    if (!is_str(kv_list_at(a[0], i))) return cel_no_overload(c, a, n);
  kv_strbuf b = {0};
  for (size_t i = 0; i < k; i++) {
    if (i > 0 && n == 2) kv_strbuf_put(&b, kv_str(a[1]), kv_len(a[1]));
    const kv *e = kv_list_at(a[0], i);
    kv_strbuf_put(&b, kv_str(e), kv_len(e));
  }
  return kv_strbuf_take_string(&b);
}

/* ---- format -------------------------------------------------------------- */

/* Go's strconv.FormatFloat(d, 'f', -1, 64) for finite d: the shortest
 * round-tripping digits, never an exponent ("100000000000000000000",
 * "0.000001", "-0"). */
static void put_double_fixed(kv_strbuf *b, double d) {
  if (signbit(d)) kv_strbuf_putc(b, '-');
  if (d == 0) {
    kv_strbuf_putc(b, '0');
    return;
  }
  char digits[24];
  int ex;
  int nd = kv_double_digits(d, digits, &ex);
  if (ex >= 0) {
    for (int i = 0; i <= ex; i++)
      kv_strbuf_putc(b, i < nd ? digits[i] : '0');
    if (nd > ex + 1) {
      kv_strbuf_putc(b, '.');
      kv_strbuf_put(b, digits + ex + 1, (size_t)(nd - ex - 1));
    }
  } else {
    kv_strbuf_puts(b, "0.");
    for (int i = 0; i < -ex - 1; i++)
      kv_strbuf_putc(b, '0');
    kv_strbuf_put(b, digits, (size_t)nd);
  }
}

/* NaN / Infinity / -Infinity as format() prints them; false if finite. */
static bool put_nonfinite(kv_strbuf *b, double d) {
  if (isnan(d))
    kv_strbuf_puts(b, "NaN");
  else if (isinf(d))
    kv_strbuf_puts(b, d < 0 ? "-Infinity" : "Infinity");
  else
    return false;
  return true;
}

/* Go's time.RFC3339Nano in UTC: "2023-02-03T23:31:20.5Z". */
static void put_timestamp(kv_strbuf *b, int64_t sec, int32_t nsec) {
  int64_t days = sec / 86400, rem = sec % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t y;
  int mo, d;
  cel_civil_from_days(days, &y, &mo, &d);
  kv_strbuf_printf(b, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, mo, d, (int)(rem / 3600),
                   (int)(rem / 60 % 60), (int)(rem % 60));
  if (nsec > 0) {
    char frac[16];
    snprintf(frac, sizeof frac, "%09d", (int)nsec);
    int k = 9;
    while (k > 0 && frac[k - 1] == '0')
      k--;
    kv_strbuf_putc(b, '.');
    kv_strbuf_put(b, frac, (size_t)k);
  }
  kv_strbuf_putc(b, 'Z');
}

static void put_uint_base(kv_strbuf *b, uint64_t u, unsigned base, bool upper) {
  const char *dig = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char tmp[65];
  int k = 0;
  do {
    tmp[k++] = dig[u % base];
    u /= base;
  } while (u);
  while (k > 0)
    kv_strbuf_putc(b, tmp[--k]);
}
static void put_int_base(kv_strbuf *b, int64_t i, unsigned base, bool upper) {
  if (i < 0) {
    kv_strbuf_putc(b, '-');
    put_uint_base(b, (uint64_t)0 - (uint64_t)i, base, upper);
  } else {
    put_uint_base(b, (uint64_t)i, base, upper);
  }
}

/* Append bytes as text, replacing invalid UTF-8 with U+FFFD. */
static void put_text(kv_strbuf *b, const char *s, size_t len) {
  if (kv_utf8_valid(s, len)) {
    kv_strbuf_put(b, s, len);
    return;
  }
  for (size_t i = 0; i < len;) {
    size_t w;
    kv_strbuf_put_utf8(b, u8_decode(s + i, len - i, &w));
    i += w;
  }
}

typedef struct fmt_entry {
  kv_strbuf key, val;
  size_t order;
} fmt_entry;

static int fmt_entry_cmp(const void *x, const void *y) {
  const fmt_entry *a = x, *b = y;
  size_t n = a->key.len < b->key.len ? a->key.len : b->key.len;
  int r = n ? memcmp(a->key.p, b->key.p, n) : 0;
  if (r) return r;
  if (a->key.len != b->key.len) return a->key.len < b->key.len ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* %s: any value as text.  Returns false only for a kind %s cannot show. */
static bool put_value(kv_strbuf *b, const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: kv_strbuf_puts(b, "null"); return true;
  case KV_BOOL: kv_strbuf_puts(b, v->u.b ? "true" : "false"); return true;
  case KV_INT: kv_strbuf_printf(b, "%lld", (long long)v->u.i); return true;
  case KV_UINT: kv_strbuf_printf(b, "%llu", (unsigned long long)v->u.u); return true;
  case KV_DOUBLE:
    if (!put_nonfinite(b, v->u.d)) put_double_fixed(b, v->u.d);
    return true;
  case KV_STRING:
  case KV_BYTES: put_text(b, kv_str(v), kv_len(v)); return true;
  case KV_TYPE: kv_strbuf_put(b, v->u.s.ptr, v->u.s.len); return true;
  case KV_TIMESTAMP: put_timestamp(b, v->u.t.sec, v->u.t.nsec); return true;
  case KV_DURATION:
    put_double_fixed(b, (double)v->u.t.sec + (double)v->u.t.nsec / 1e9);
    kv_strbuf_putc(b, 's');
    return true;
  case KV_LIST:
    kv_strbuf_putc(b, '[');
    for (size_t i = 0; i < kv_len(v); i++) {
      if (i) kv_strbuf_puts(b, ", ");
      if (!put_value(b, kv_list_at(v, i))) return false;
    }
    kv_strbuf_putc(b, ']');
    return true;
  case KV_MAP: {
    size_t k = kv_len(v);
    fmt_entry *ents = calloc(k ? k : 1, sizeof *ents);
    if (!ents) kv_oom();
    bool ok = true;
    for (size_t i = 0; i < k && ok; i++) {
      ents[i].order = i;
      ok = put_value(&ents[i].key, kv_map_key_at(v, i)) &&
           put_value(&ents[i].val, kv_map_val_at(v, i));
    }
    if (ok) {
      qsort(ents, k, sizeof *ents, fmt_entry_cmp);
      kv_strbuf_putc(b, '{');
      for (size_t i = 0; i < k; i++) {
        if (i) kv_strbuf_puts(b, ", ");
        kv_strbuf_put(b, ents[i].key.p, ents[i].key.len);
        kv_strbuf_puts(b, ": ");
        kv_strbuf_put(b, ents[i].val.p, ents[i].val.len);
      }
      kv_strbuf_putc(b, '}');
    }
    for (size_t i = 0; i < k; i++) {
      kv_strbuf_free(&ents[i].key);
      kv_strbuf_free(&ents[i].val);
    }
    free(ents);
    return ok;
  }
  default: return false;
  }
}

/* The numeric value of an int/uint/double for %f and %e. */
static bool as_double(const kv *v, double *d) {
  switch (v->kind) {
  case KV_INT: *d = (double)v->u.i; return true;
  case KV_UINT: *d = (double)v->u.u; return true;
  case KV_DOUBLE: *d = v->u.d; return true;
  default: return false;
  }
}

/* One clause applied to `v`.  Returns NULL on success, else the error text
 * (without the "was given T" tail). */
static const char *format_clause(kv_strbuf *b, char clause, int prec, const kv *v) {
  double d;
  switch (clause) {
  case 's':
    if (!put_value(b, v))
      return "string clause can only be used on strings, bools, bytes, ints, doubles, maps, "
             "lists, types, durations, and timestamps";
    return NULL;
  case 'd':
    if (v->kind == KV_INT)
      kv_strbuf_printf(b, "%lld", (long long)v->u.i);
    else if (v->kind == KV_UINT)
      kv_strbuf_printf(b, "%llu", (unsigned long long)v->u.u);
    else if (v->kind == KV_DOUBLE) {
      if (!put_nonfinite(b, v->u.d)) put_double_fixed(b, v->u.d);
    } else
      return "decimal clause can only be used on integers";
    return NULL;
  case 'f':
    if (!as_double(v, &d)) return "fixed-point clause can only be used on doubles";
    if (!put_nonfinite(b, d)) kv_strbuf_printf(b, "%.*f", prec, d);
    return NULL;
  case 'e':
    if (!as_double(v, &d)) return "scientific clause can only be used on doubles";
    if (!put_nonfinite(b, d)) kv_strbuf_printf(b, "%.*e", prec, d);
    return NULL;
  case 'b':
    if (v->kind == KV_INT)
      put_int_base(b, v->u.i, 2, false);
    else if (v->kind == KV_UINT)
      put_uint_base(b, v->u.u, 2, false);
    else if (v->kind == KV_BOOL)
      kv_strbuf_putc(b, v->u.b ? '1' : '0');
    else
      return "only integers and bools can be formatted as binary";
    return NULL;
  case 'o':
    if (v->kind == KV_INT)
      put_int_base(b, v->u.i, 8, false);
    else if (v->kind == KV_UINT)
      put_uint_base(b, v->u.u, 8, false);
    else
      return "octal clause can only be used on integers";
    return NULL;
  case 'x':
  case 'X': {
    bool up = clause == 'X';
    if (v->kind == KV_INT)
      put_int_base(b, v->u.i, 16, up);
    else if (v->kind == KV_UINT)
      put_uint_base(b, v->u.u, 16, up);
    else if (v->kind == KV_STRING || v->kind == KV_BYTES) {
      const unsigned char *p = (const unsigned char *)kv_str(v);
      for (size_t i = 0; i < kv_len(v); i++)
        kv_strbuf_printf(b, up ? "%02X" : "%02x", p[i]);
    } else
      return "only integers, byte buffers, and strings can be formatted as hex";
    return NULL;
  }
  default: return "unrecognized formatting clause";
  }
}

#define FORMAT_MAX_PRECISION 1000

/* <string>.format(<list>) -> string: printf-style substitution with the
 * clauses %s %d %f %e %b %o %x %X (optional ".N" precision for %f/%e,
 * default 6) and "%%" for a percent sign.  Errors: a clause past the end
 * of the list ("index N out of range"), an unknown clause, a bad
 * precision, or an argument of the wrong type for its clause. */
static kv *fn_format(const cel_call *c, kv *const *a, size_t n) {
  if (n != 2 || !is_str(a[0]) || a[1]->kind != KV_LIST) return cel_no_overload(c, a, n);
  const char *f = kv_str(a[0]);
  size_t len = kv_len(a[0]), nargs = kv_len(a[1]), argi = 0;
  kv_strbuf b = {0};
  for (size_t i = 0; i < len;) {
    if (f[i] != '%') {
      kv_strbuf_putc(&b, f[i++]);
      continue;
    }
    if (i + 1 < len && f[i + 1] == '%') {
      kv_strbuf_putc(&b, '%');
      i += 2;
      continue;
    }
    if (argi >= nargs) {
      kv_strbuf_free(&b);
      return cel_errorf(c, CEL_ERR_INVALID, "index %zu out of range", argi);
    }
    if (i + 1 >= len) {
      kv_strbuf_free(&b);
      return cel_errorf(c, CEL_ERR_INVALID, "unexpected end of string");
    }
    size_t j = i + 1;
    int prec = 6;
    if (f[j] == '.') {
      j++;
      size_t d0 = j;
      long p = 0;
      while (j < len && f[j] >= '0' && f[j] <= '9') {
        if (p <= FORMAT_MAX_PRECISION) p = p * 10 + (f[j] - '0');
        j++;
      }
      if (j >= len) {
        kv_strbuf_free(&b);
        return cel_errorf(c, CEL_ERR_INVALID,
                          "could not parse formatting clause: error while parsing precision: "
                          "could not find end of precision specifier");
      }
      if (j == d0) {
        kv_strbuf_free(&b);
        return cel_errorf(c, CEL_ERR_INVALID,
                          "could not parse formatting clause: error while parsing precision: "
                          "missing precision digits after '.'");
      }
      if (p > FORMAT_MAX_PRECISION) {
        kv_strbuf_free(&b);
        return cel_errorf(c, CEL_ERR_INVALID,
                          "could not parse formatting clause: error while parsing precision: "
                          "precision exceeds maximum allowed precision %d",
                          FORMAT_MAX_PRECISION);
      }
      prec = (int)p;
    }
    char clause = f[j];
    if (clause == 0 || !strchr("sdfeboxX", clause)) {
      size_t w;
      uint32_t r = u8_decode(f + j, len - j, &w);
      kv_strbuf rb = {0};
      kv_strbuf_put_utf8(&rb, r);
      kv *err = cel_errorf(c, CEL_ERR_INVALID,
                           "could not parse formatting clause: unrecognized formatting clause "
                           "\"%s\"",
                           rb.p);
      kv_strbuf_free(&rb);
      kv_strbuf_free(&b);
      return err;
    }
    const kv *arg = kv_list_at(a[1], argi);
    const char *why = format_clause(&b, clause, prec, arg);
    if (why) {
      kv_strbuf_free(&b);
      return cel_errorf(c, CEL_ERR_INVALID, "error during formatting: %s, was given %s", why,
                        cel_type_name(arg));
    }
    argi++;
    i = j + 1;
  }
  return kv_strbuf_take_string(&b);
}

/* ---- table --------------------------------------------------------------- */

/* The strings extension's functions (cel-go ext.Strings, all versions).
 * Member functions take the receiver as args[0]; strings.quote is a global
 * qualified name. */
const cel_fn_def cel_strings_defs[] = {
    {"charAt", CEL_FN_MEMBER, 2, 2, fn_char_at},
    {"indexOf", CEL_FN_MEMBER, 2, 3, fn_index_of},
    {"lastIndexOf", CEL_FN_MEMBER, 2, 3, fn_last_index_of},
    {"lowerAscii", CEL_FN_MEMBER, 1, 1, fn_lower_ascii},
    {"upperAscii", CEL_FN_MEMBER, 1, 1, fn_upper_ascii},
    {"replace", CEL_FN_MEMBER, 3, 4, fn_replace},
    {"split", CEL_FN_MEMBER, 2, 3, fn_split},
    {"substring", CEL_FN_MEMBER, 2, 3, fn_substring},
    {"trim", CEL_FN_MEMBER, 1, 1, fn_trim},
    {"join", CEL_FN_MEMBER, 1, 2, fn_join},
    {"reverse", CEL_FN_MEMBER, 1, 1, fn_reverse},
    {"format", CEL_FN_MEMBER, 2, 2, fn_format},
    {"strings.quote", CEL_FN_GLOBAL, 1, 1, fn_quote},
};
const size_t cel_strings_ndefs = sizeof cel_strings_defs / sizeof cel_strings_defs[0];
