/*
 * tests/conformance/typed_value.c: the conformance corpora's typed-value
 * JSON form <-> `kv` (see typed_value.h).  Owns its own RFC 3339,
 * duration and base64 text handling so that the oracle side of the
 * conformance runners does not depend on the engine under test.
 */
#include "typed_value.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- base64 (standard alphabet, padded) ------------------------------ */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t n, size_t *outlen) {
  size_t m = (n + 2) / 3 * 4;
  char *o = malloc(m + 1);
  if (!o) kv_oom();
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    o[j++] = B64[(v >> 18) & 63];
    o[j++] = B64[(v >> 12) & 63];
    o[j++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
    o[j++] = i + 2 < n ? B64[v & 63] : '=';
  }
  o[j] = 0;
  *outlen = j;
  return o;
}

static int b64_val(char c) {
  const char *p = c ? strchr(B64, c) : NULL;
  return p ? (int)(p - B64) : -1;
}

/* Strict decode: length multiple of 4 (or unpadded), only alphabet chars. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *outlen) {
  while (n > 0 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1) return NULL;
  unsigned char *o = malloc(n / 4 * 3 + 3);
  if (!o) kv_oom();
  size_t j = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_val(s[i]);
    if (v < 0) {
      free(o);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[j++] = (unsigned char)((acc >> bits) & 0xFF);
    }
  }
  *outlen = j;
  return o;
}

/* ---- civil time ------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *out = v;
  return true;
}

/* Parse a fraction ".ddd" (1..9 digits) into nanoseconds. */
static bool fraction(const char **p, int32_t *nsec) {
  *nsec = 0;
  if (**p != '.') return true;
  (*p)++;
  int n = 0;
  int32_t v = 0;
  while (**p >= '0' && **p <= '9') {
    if (n == 9) return false;
    v = v * 10 + (**p - '0');
    n++;
    (*p)++;
  }
  if (n == 0) return false;
  for (; n < 9; n++)
    v *= 10;
  *nsec = v;
  return true;
}

static bool parse_rfc3339(const char *s, int64_t *sec, int32_t *nsec, int32_t *off) {
  const char *p = s;
  int Y, M, D, h, mi, se;
  if (!digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' || !digits(&p, 2, &D))
    return false;
  if (*p != 'T' && *p != 't') return false;
  p++;
  if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
      !digits(&p, 2, &se))
    return false;
  if (!fraction(&p, nsec)) return false;
  int32_t o = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om)) return false;
    o = sign * (oh * 3600 + om * 60);
  } else {
    return false;
  }
  if (*p) return false;
  if (Y < 1 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || se > 60) return false;
  *sec = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + se - o;
  *off = o;
  return true;
}

/* "[-]S[.fffffffff]s" */
static bool parse_duration(const char *s, int64_t *sec, int32_t *nsec) {
  const char *p = s;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  if (*p < '0' || *p > '9') return false;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(p, &end, 10);
  if (errno || v > (unsigned long long)INT64_MAX) return false;
  p = end;
  int32_t ns;
  if (!fraction(&p, &ns)) return false;
  if (*p != 's' || p[1]) return false;
  *sec = neg ? -(int64_t)v : (int64_t)v;
  *nsec = neg ? -ns : ns;
  return true;
}

/* Append ".fffffffff" with trailing zeros trimmed (nothing when 0). */
static void put_fraction(char *buf, size_t n, int32_t ns) {
  if (ns == 0) {
    buf[0] = 0;
    return;
  }
  char f[16];
  snprintf(f, sizeof f, ".%09d", (int)ns);
  size_t l = strlen(f);
  while (l > 1 && f[l - 1] == '0')
    l--;
  f[l] = 0;
  snprintf(buf, n, "%s", f);
}

/* ---- typed value -> kv ------------------------------------------------ */

static bool parse_i64(const kv *v, int64_t *out) {
  if (v->kind == KV_INT) {
    *out = v->u.i;
    return true;
  }
  if (v->kind != KV_STRING || v->u.s.len == 0) return false;
  errno = 0;
  char *end;
  long long x = strtoll(v->u.s.ptr, &end, 10);
  if (errno || *end || end == v->u.s.ptr) return false;
  *out = x;
  return true;
}

static bool parse_u64(const kv *v, uint64_t *out) {
  if (v->kind == KV_UINT) {
    *out = v->u.u;
    return true;
  }
  if (v->kind == KV_INT && v->u.i >= 0) {
    *out = (uint64_t)v->u.i;
    return true;
  }
  if (v->kind != KV_STRING || v->u.s.len == 0 || v->u.s.ptr[0] == '-') return false;
  errno = 0;
  char *end;
  unsigned long long x = strtoull(v->u.s.ptr, &end, 10);
  if (errno || *end || end == v->u.s.ptr) return false;
  *out = x;
  return true;
}

kv *typed_value_to_kv(const kv *typed, char *err, size_t errlen) {
  if (!typed || typed->kind != KV_MAP || typed->u.map.len != 1 ||
      typed->u.map.keys[0]->kind != KV_STRING) {
    set_err(err, errlen, "typed value: expected a one-key object");
    return NULL;
  }
  const char *t = kv_str(typed->u.map.keys[0]);
  const kv *v = typed->u.map.vals[0];
  if (!strcmp(t, "null")) return kv_null();
  if (!strcmp(t, "bool")) {
    if (v->kind != KV_BOOL) goto bad;
    return kv_bool(v->u.b);
  }
  if (!strcmp(t, "int64")) {
    int64_t i;
    if (!parse_i64(v, &i)) goto bad;
    return kv_int(i);
  }
  if (!strcmp(t, "uint64")) {
    uint64_t u;
    if (!parse_u64(v, &u)) goto bad;
    return kv_uint(u);
  }
  if (!strcmp(t, "double")) {
    switch (v->kind) {
    case KV_DOUBLE: return kv_double(v->u.d);
    case KV_INT: return kv_double((double)v->u.i);
    case KV_UINT: return kv_double((double)v->u.u);
    case KV_STRING:
      if (!strcmp(kv_str(v), "NaN")) return kv_double(NAN);
      if (!strcmp(kv_str(v), "Infinity")) return kv_double(INFINITY);
      if (!strcmp(kv_str(v), "-Infinity")) return kv_double(-INFINITY);
      goto bad;
    default: goto bad;
    }
  }
  if (!strcmp(t, "string")) {
    if (v->kind != KV_STRING) goto bad;
    return kv_string(v->u.s.ptr, v->u.s.len);
  }
  if (!strcmp(t, "bytes_b64")) {
    if (v->kind != KV_STRING) goto bad;
    size_t n;
    unsigned char *b = b64_decode(v->u.s.ptr, v->u.s.len, &n);
    if (!b) goto bad;
    kv *r = kv_bytes(b, n);
    free(b);
    return r;
  }
  if (!strcmp(t, "type")) {
    if (v->kind != KV_STRING) goto bad;
    return kv_type(kv_str(v));
  }
  if (!strcmp(t, "timestamp")) {
    int64_t sec;
    int32_t ns, off;
    if (v->kind != KV_STRING || !parse_rfc3339(kv_str(v), &sec, &ns, &off)) goto bad;
    kv *r = kv_timestamp(sec, ns);
    r->u.t.off = off;
    return r;
  }
  if (!strcmp(t, "duration")) {
    int64_t sec;
    int32_t ns;
    if (v->kind != KV_STRING || !parse_duration(kv_str(v), &sec, &ns)) goto bad;
    return kv_duration(sec, ns);
  }
  if (!strcmp(t, "list")) {
    if (v->kind != KV_LIST) goto bad;
    kv *r = kv_list_new(v->u.list.len);
    for (size_t i = 0; i < v->u.list.len; i++) {
      kv *e = typed_value_to_kv(v->u.list.items[i], err, errlen);
      if (!e) {
        kv_unref(r);
        return NULL;
      }
      kv_list_push(r, e);
    }
    return r;
  }
  if (!strcmp(t, "map")) {
    if (v->kind != KV_LIST) goto bad;
    kv *r = kv_map_new(v->u.list.len);
    for (size_t i = 0; i < v->u.list.len; i++) {
      const kv *pair = v->u.list.items[i];
      if (pair->kind != KV_LIST || pair->u.list.len != 2) {
        kv_unref(r);
        set_err(err, errlen, "typed value: map entry %zu is not a [key, value] pair", i);
        return NULL;
      }
      kv *k = typed_value_to_kv(pair->u.list.items[0], err, errlen);
      kv *e = k ? typed_value_to_kv(pair->u.list.items[1], err, errlen) : NULL;
      if (!e) {
        kv_unref(k);
        kv_unref(r);
        return NULL;
      }
      kv_map_set(r, k, e);
    }
    return r;
  }
  set_err(err, errlen, "typed value: unknown type key \"%s\"", t);
  return NULL;
bad:
  set_err(err, errlen, "typed value: malformed \"%s\" value (%s)", t, kv_kind_name(v->kind));
  return NULL;
}

/* ---- kv -> typed value ------------------------------------------------ */

static kv *one(const char *key, kv *val) {
  kv *m = kv_map_new(1);
  kv_map_set_str(m, key, val);
  return m;
}

kv *kv_to_typed_value(const kv *v) {
  char buf[96];
  switch ((kv_kind)v->kind) {
  case KV_NULL: return one("null", kv_null());
  case KV_BOOL: return one("bool", kv_bool(v->u.b));
  case KV_INT: snprintf(buf, sizeof buf, "%" PRId64, v->u.i); return one("int64", kv_cstring(buf));
  case KV_UINT:
    snprintf(buf, sizeof buf, "%" PRIu64, v->u.u);
    return one("uint64", kv_cstring(buf));
  case KV_DOUBLE:
    if (isnan(v->u.d)) return one("double", kv_cstring("NaN"));
    if (isinf(v->u.d)) return one("double", kv_cstring(v->u.d < 0 ? "-Infinity" : "Infinity"));
    return one("double", kv_double(v->u.d));
  case KV_STRING: return one("string", kv_string(v->u.s.ptr, v->u.s.len));
  case KV_BYTES: {
    size_t n;
    char *b = b64_encode((const unsigned char *)v->u.s.ptr, v->u.s.len, &n);
    return one("bytes_b64", kv_string_take(b, n));
  }
  case KV_TYPE: return one("type", kv_string(v->u.s.ptr, v->u.s.len));
  case KV_TIMESTAMP: {
    int64_t days = v->u.t.sec / 86400, rem = v->u.t.sec % 86400;
    if (rem < 0) {
      rem += 86400;
      days--;
    }
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    char frac[16];
    put_fraction(frac, sizeof frac, v->u.t.nsec);
    snprintf(buf, sizeof buf, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d%sZ", y, mo, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
    return one("timestamp", kv_cstring(buf));
  }
  case KV_DURATION: {
    int64_t s = v->u.t.sec;
    int32_t ns = v->u.t.nsec;
    bool neg = s < 0 || ns < 0;
    char frac[16];
    put_fraction(frac, sizeof frac, ns < 0 ? -ns : ns);
    uint64_t as = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    snprintf(buf, sizeof buf, "%s%" PRIu64 "%ss", neg ? "-" : "", as, frac);
    return one("duration", kv_cstring(buf));
  }
  case KV_LIST: {
    kv *l = kv_list_new(v->u.list.len);
    for (size_t i = 0; i < v->u.list.len; i++)
      kv_list_push(l, kv_to_typed_value(v->u.list.items[i]));
    return one("list", l);
  }
  case KV_MAP: {
    kv *l = kv_list_new(v->u.map.len);
    for (size_t i = 0; i < v->u.map.len; i++) {
      kv *pair = kv_list_new(2);
      kv_list_push(pair, kv_to_typed_value(v->u.map.keys[i]));
      kv_list_push(pair, kv_to_typed_value(v->u.map.vals[i]));
      kv_list_push(l, pair);
    }
    return one("map", l);
  }
  case KV_ERROR: return one("error", kv_cstring(v->u.err.msg ? v->u.err.msg : ""));
  }
  return one("error", kv_cstring("unknown kind"));
}
