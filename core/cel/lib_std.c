/*
 * core/cel/lib_std.c: CEL's standard functions (language definition,
 * "Functions"): size, contains, startsWith, endsWith, matches (PCRE2 with
 * a small compiled-pattern cache), and the type conversions int, uint,
 * double, string, bytes, bool, dyn and type.
 */
#include "cel_impl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- size / string predicates ----------------------------------------- */

static kv *fn_size(const cel_call *c, kv *const *a, size_t n) {
  (void)n;
  switch (a[0]->kind) {
  case KV_STRING: return kv_int((int64_t)kv_utf8_count(a[0]->u.s.ptr, a[0]->u.s.len));
  case KV_BYTES: return kv_int((int64_t)a[0]->u.s.len);
  case KV_LIST: return kv_int((int64_t)a[0]->u.list.len);
  case KV_MAP: return kv_int((int64_t)a[0]->u.map.len);
  default: return cel_no_overload(c, a, n);
  }
}

static bool str2(kv *const *a) { return a[0]->kind == KV_STRING && a[1]->kind == KV_STRING; }

static kv *fn_contains(const cel_call *c, kv *const *a, size_t n) {
  if (!str2(a)) return cel_no_overload(c, a, n);
  if (a[1]->u.s.len == 0) return kv_bool(true);
  return kv_bool(memmem(a[0]->u.s.ptr, a[0]->u.s.len, a[1]->u.s.ptr, a[1]->u.s.len) != NULL);
}

static kv *fn_starts(const cel_call *c, kv *const *a, size_t n) {
  if (!str2(a)) return cel_no_overload(c, a, n);
  return kv_bool(a[1]->u.s.len <= a[0]->u.s.len &&
                 memcmp(a[0]->u.s.ptr, a[1]->u.s.ptr, a[1]->u.s.len) == 0);
}

static kv *fn_ends(const cel_call *c, kv *const *a, size_t n) {
  if (!str2(a)) return cel_no_overload(c, a, n);
  size_t l0 = a[0]->u.s.len, l1 = a[1]->u.s.len;
  return kv_bool(l1 <= l0 && memcmp(a[0]->u.s.ptr + l0 - l1, a[1]->u.s.ptr, l1) == 0);
}

/* ---- regular expressions ------------------------------------------------ */

enum { REGEX_CACHE = 32 };
static struct {
  char *pattern;
  size_t len;
  pcre2_code *code;
} g_rx[REGEX_CACHE];
static unsigned g_rx_next;

static void regex_cache_free(void) {
  for (int i = 0; i < REGEX_CACHE; i++) {
    free(g_rx[i].pattern);
    pcre2_code_free(g_rx[i].code);
    g_rx[i].pattern = NULL;
    g_rx[i].code = NULL;
  }
}

kv *cel_regex_search(const cel_call *c, const kv *s, const kv *pattern) {
  pcre2_code *code = NULL;
  for (int i = 0; i < REGEX_CACHE; i++)
    if (g_rx[i].pattern && g_rx[i].len == pattern->u.s.len &&
        memcmp(g_rx[i].pattern, pattern->u.s.ptr, pattern->u.s.len) == 0) {
      code = g_rx[i].code;
      break;
    }
  if (!code) {
    int errcode;
    PCRE2_SIZE erroff;
    code = pcre2_compile((PCRE2_SPTR)pattern->u.s.ptr, pattern->u.s.len, PCRE2_UTF | PCRE2_UCP,
                         &errcode, &erroff, NULL);
    if (!code) {
      PCRE2_UCHAR msg[200];
      pcre2_get_error_message(errcode, msg, sizeof msg);
      return cel_errorf(c, CEL_ERR_INVALID, "invalid regular expression at offset %zu: %s",
                        (size_t)erroff, (char *)msg);
    }
    static bool registered;
    if (!registered) {
      atexit(regex_cache_free);
      registered = true;
    }
    unsigned slot = g_rx_next++ % REGEX_CACHE;
    free(g_rx[slot].pattern);
    pcre2_code_free(g_rx[slot].code);
    g_rx[slot].pattern = malloc(pattern->u.s.len + 1);
    if (!g_rx[slot].pattern) kv_oom();
    memcpy(g_rx[slot].pattern, pattern->u.s.ptr, pattern->u.s.len + 1);
    g_rx[slot].len = pattern->u.s.len;
    g_rx[slot].code = code;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
  if (!md) kv_oom();
  int rc = pcre2_match(code, (PCRE2_SPTR)s->u.s.ptr, s->u.s.len, 0, 0, md, NULL);
  pcre2_match_data_free(md);
  if (rc >= 0) return kv_bool(true);
  if (rc == PCRE2_ERROR_NOMATCH) return kv_bool(false);
  return cel_errorf(c, CEL_ERR_INVALID, "regular expression match failed (%d)", rc);
}

static kv *fn_matches(const cel_call *c, kv *const *a, size_t n) {
  if (!str2(a)) return cel_no_overload(c, a, n);
  return cel_regex_search(c, a[0], a[1]);
}

/* ---- conversions --------------------------------------------------------- */

static kv *range_err(const cel_call *c, const char *what) {
  return cel_errorf(c, CEL_ERR_OVERFLOW, "%s out of range", what);
}

/* Parse a whole string as a decimal (or 0x hex) integer. */
static bool parse_i64(const char *s, size_t len, int64_t *out) {
  if (len == 0 || len > 64) return false;
  char buf[72];
  memcpy(buf, s, len);
  buf[len] = 0;
  if (buf[0] == ' ' || buf[0] == '+' || (buf[0] == '-' && buf[1] == '+')) return false;
  errno = 0;
  char *end;
  long long v = strtoll(buf, &end, 10);
  if (errno || *end || end == buf) return false;
  *out = v;
  return true;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out) {
  if (len == 0 || len > 64 || s[0] == '-' || s[0] == '+' || s[0] == ' ') return false;
  char buf[72];
  memcpy(buf, s, len);
  buf[len] = 0;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(buf, &end, 10);
  if (errno || *end || end == buf) return false;
  *out = v;
  return true;
}

static kv *fn_int(const cel_call *c, kv *const *a, size_t n) {
  const kv *v = a[0];
  switch (v->kind) {
  case KV_INT: return kv_ref((kv *)v);
  case KV_UINT:
    if (v->u.u > (uint64_t)INT64_MAX) return range_err(c, "int");
    return kv_int((int64_t)v->u.u);
  case KV_DOUBLE: {
    double d = v->u.d;
    /* CEL: truncate toward zero; the open range (-2^63-1, 2^63) */
    if (!(d > -9223372036854775809.0 && d < 9223372036854775808.0) || isnan(d) ||
        d <= -9223372036854775808.0)
      return range_err(c, "int");
    return kv_int((int64_t)d);
  }
  case KV_STRING: {
    int64_t i;
    if (!parse_i64(v->u.s.ptr, v->u.s.len, &i))
      return cel_errorf(c, CEL_ERR_INVALID, "cannot convert string '%s' to int", v->u.s.ptr);
    return kv_int(i);
  }
  case KV_TIMESTAMP: return kv_int(v->u.t.sec);
  default: return cel_no_overload(c, a, n);
  }
}

static kv *fn_uint(const cel_call *c, kv *const *a, size_t n) {
  const kv *v = a[0];
  switch (v->kind) {
  case KV_UINT: return kv_ref((kv *)v);
  case KV_INT:
    if (v->u.i < 0) return range_err(c, "uint");
    return kv_uint((uint64_t)v->u.i);
  case KV_DOUBLE: {
    double d = v->u.d;
    if (!(d > -1.0 && d < 18446744073709551616.0)) return range_err(c, "uint");
    return kv_uint((uint64_t)d);
  }
  case KV_STRING: {
    uint64_t u;
    if (!parse_u64(v->u.s.ptr, v->u.s.len, &u))
      return cel_errorf(c, CEL_ERR_INVALID, "cannot convert string '%s' to uint", v->u.s.ptr);
    return kv_uint(u);
  }
  default: return cel_no_overload(c, a, n);
  }
}

static kv *fn_double(const cel_call *c, kv *const *a, size_t n) {
  const kv *v = a[0];
  switch (v->kind) {
  case KV_DOUBLE: return kv_ref((kv *)v);
  case KV_INT: return kv_double((double)v->u.i);
  case KV_UINT: return kv_double((double)v->u.u);
  case KV_STRING: {
    const char *s = v->u.s.ptr;
    char *end;
    if (v->u.s.len == 0 || s[0] == ' ' || strlen(s) != v->u.s.len)
      return cel_errorf(c, CEL_ERR_INVALID, "cannot convert string '%s' to double", s);
    /* Go's ParseFloat: decimal, exponent, inf/infinity/nan (any case) */
    bool hex = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ||
               ((s[0] == '-' || s[0] == '+') && s[1] == '0' && (s[2] == 'x' || s[2] == 'X'));
    errno = 0;
    double d = strtod(s, &end);
    if (hex || *end || end == s)
      return cel_errorf(c, CEL_ERR_INVALID, "cannot convert string '%s' to double", s);
    return kv_double(d);
  }
  default: return cel_no_overload(c, a, n);
  }
}

/* CEL's string(double): Go's strconv.FormatFloat(d, 'g', -1, 64) with the
 * exponent threshold of %v (exponent < -4 || exponent >= 21). */
static kv *double_to_string(double d) {
  if (isnan(d)) return kv_cstring("NaN");
  if (isinf(d)) return kv_cstring(d < 0 ? "-Infinity" : "Infinity");
  char digits[24];
  int x;
  int nd = kv_double_digits(d, digits, &x);
  char out[64], *o = out;
  if (signbit(d)) *o++ = '-'; /* -0.0 too: "-0" */
  if (d == 0) {
    *o++ = '0';
  } else if (x < -4 || x >= 21) {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      for (int i = 1; i < nd; i++)
        *o++ = digits[i];
    }
    o += snprintf(o, 8, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  } else if (x >= 0) {
    for (int i = 0; i <= x; i++)
      *o++ = i < nd ? digits[i] : '0';
    if (nd > x + 1) {
      *o++ = '.';
      for (int i = x + 1; i < nd; i++)
        *o++ = digits[i];
    }
  } else {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -x - 1; i++)
      *o++ = '0';
    for (int i = 0; i < nd; i++)
      *o++ = digits[i];
  }
  *o = 0;
  return kv_cstring(out);
}

static kv *fn_string(const cel_call *c, kv *const *a, size_t n) {
  const kv *v = a[0];
  char buf[64];
  switch (v->kind) {
  case KV_STRING: return kv_ref((kv *)v);
  case KV_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); return kv_cstring(buf);
  case KV_UINT:
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v->u.u);
    return kv_cstring(buf);
  case KV_DOUBLE: return double_to_string(v->u.d);
  case KV_BOOL: return kv_cstring(v->u.b ? "true" : "false");
  case KV_BYTES:
    if (!kv_utf8_valid(v->u.s.ptr, v->u.s.len))
      return cel_errorf(c, CEL_ERR_INVALID, "invalid UTF-8 in bytes, cannot convert to string");
    return kv_string(v->u.s.ptr, v->u.s.len);
  case KV_TIMESTAMP: {
    int l = cel_ts_format(v->u.t.sec, v->u.t.nsec, buf, sizeof buf);
    return kv_string(buf, (size_t)l);
  }
  case KV_DURATION: {
    int l = cel_dur_format(v->u.t.sec, v->u.t.nsec, buf, sizeof buf);
    return kv_string(buf, (size_t)l);
  }
  case KV_TYPE: return kv_string(v->u.s.ptr, v->u.s.len);
  default: return cel_no_overload(c, a, n);
  }
}

static kv *fn_bytes(const cel_call *c, kv *const *a, size_t n) {
  if (a[0]->kind == KV_BYTES) return kv_ref(a[0]);
  if (a[0]->kind == KV_STRING) return kv_bytes(a[0]->u.s.ptr, a[0]->u.s.len);
  return cel_no_overload(c, a, n);
}

static kv *fn_bool(const cel_call *c, kv *const *a, size_t n) {
  if (a[0]->kind == KV_BOOL) return kv_ref(a[0]);
  if (a[0]->kind == KV_STRING) {
    /* Go's strconv.ParseBool */
    static const char *t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
      if (strcmp(a[0]->u.s.ptr, t[i]) == 0) return kv_bool(true);
      if (strcmp(a[0]->u.s.ptr, f[i]) == 0) return kv_bool(false);
    }
    return cel_errorf(c, CEL_ERR_INVALID, "cannot convert string '%s' to bool", a[0]->u.s.ptr);
  }
  return cel_no_overload(c, a, n);
}

static kv *fn_dyn(const cel_call *c, kv *const *a, size_t n) {
  (void)c;
  (void)n;
  return kv_ref(a[0]);
}

static kv *fn_type(const cel_call *c, kv *const *a, size_t n) {
  (void)c;
  (void)n;
  return kv_type(cel_type_name(a[0]));
}

const cel_fn_def cel_std_defs[] = {
    {"size", CEL_FN_BOTH, 1, 1, fn_size},           {"contains", CEL_FN_MEMBER, 2, 2, fn_contains},
    {"startsWith", CEL_FN_MEMBER, 2, 2, fn_starts}, {"endsWith", CEL_FN_MEMBER, 2, 2, fn_ends},
    {"matches", CEL_FN_BOTH, 2, 2, fn_matches},     {"int", CEL_FN_GLOBAL, 1, 1, fn_int},
    {"uint", CEL_FN_GLOBAL, 1, 1, fn_uint},         {"double", CEL_FN_GLOBAL, 1, 1, fn_double},
    {"string", CEL_FN_GLOBAL, 1, 1, fn_string},     {"bytes", CEL_FN_GLOBAL, 1, 1, fn_bytes},
    {"bool", CEL_FN_GLOBAL, 1, 1, fn_bool},         {"dyn", CEL_FN_GLOBAL, 1, 1, fn_dyn},
    {"type", CEL_FN_GLOBAL, 1, 1, fn_type},
};
const size_t cel_std_ndefs = sizeof cel_std_defs / sizeof *cel_std_defs;
