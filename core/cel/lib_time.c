/*
 * core/cel/lib_time.c: CEL timestamps and durations: RFC 3339 and duration
 * text (parse/format), the arithmetic the evaluator applies to time values,
 * and the functions timestamp(), duration(), getFullYear() ...
 * getMilliseconds() (CEL language definition, "List of Standard
 * Definitions"; conformance files timestamps.jsonl / conversions.jsonl).
 * Time zones for the accessors live in tz.c.
 *
 * Ranges: timestamps 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z;
 * durations written as text or built from values: +-CEL_DUR_MAX_SEC s (the
 * protobuf Duration range).  A duration that arithmetic produces (duration
 * +/- duration, timestamp - timestamp, -duration) must also fit in int64
 * nanoseconds (about +-292 years), the limit cel-go and cel-cpp enforce
 * (conformance timestamps/timestamp_range/sub_time_duration_over).
 */
#include "lib_time.h"

#include <stdio.h>
#include <string.h>

#define NS_PER_SEC 1000000000LL

typedef __int128 i128;

/* ---- RFC 3339 ------------------------------------------------------------ */

enum { TP_OK = 0, TP_SYNTAX, TP_RANGE };

enum {
  TS_DATE_ONLY = 1u << 0, /* "YYYY-MM-DD" alone: midnight UTC */
  TS_NO_OFFSET = 1u << 1, /* date-time without offset: UTC */
  TS_SPACE_SEP = 1u << 2, /* ' ' between date and time */
};

static bool digits(const char *s, size_t n, size_t at, size_t count, int *out) {
  if (at + count > n) return false;
  int v = 0;
  for (size_t i = 0; i < count; i++) {
    char ch = s[at + i];
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  *out = v;
  return true;
}

static int days_in_month(int64_t y, int m) {
  static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && cel_is_leap(y) ? 29 : dm[m - 1];
}

/* RFC 3339 section 5.6 date-time, with the leniencies in `flags`.  Years
 * of 5 to 9 digits parse and report TP_RANGE (not TP_SYNTAX) so that
 * timestamp('10000-01-01T00:00:00Z') reports a range error as CEL wants. */
static int ts_parse_ex(const char *s, size_t n, unsigned flags, int64_t *sec, int32_t *nsec,
                       int32_t *off) {
  size_t i = 0;
  while (i < n && i < 10 && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i < 4 || i > 9) return TP_SYNTAX;
  int64_t year = 0;
  for (size_t k = 0; k < i; k++)
    year = year * 10 + (s[k] - '0');
  int mon, day, hh = 0, mm = 0, ss = 0;
  int32_t frac = 0, zoff = 0;
  if (i >= n || s[i] != '-' || !digits(s, n, i + 1, 2, &mon) || i + 3 >= n || s[i + 3] != '-' ||
      !digits(s, n, i + 4, 2, &day))
    return TP_SYNTAX;
  i += 6;
  if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon)) return TP_SYNTAX;
  if (i == n) {
    if (!(flags & TS_DATE_ONLY)) return TP_SYNTAX;
  } else {
    char sep = s[i];
    if (!(sep == 'T' || sep == 't' || (sep == ' ' && (flags & TS_SPACE_SEP)))) return TP_SYNTAX;
    if (!digits(s, n, i + 1, 2, &hh) || i + 3 >= n || s[i + 3] != ':' ||
        !digits(s, n, i + 4, 2, &mm) || i + 6 >= n || s[i + 6] != ':' ||
        !digits(s, n, i + 7, 2, &ss))
      return TP_SYNTAX;
    i += 9;
    if (hh > 23 || mm > 59 || ss > 59) return TP_SYNTAX;
    if (i < n && s[i] == '.') {
      /* Fraction: at least one digit; digits past the ninth are dropped
       * (truncated), as Go and Abseil do. */
      size_t start = ++i;
      int32_t scale = 100000000;
      while (i < n && s[i] >= '0' && s[i] <= '9') {
        frac += (s[i] - '0') * scale;
        scale /= 10;
        i++;
      }
      if (i == start) return TP_SYNTAX;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
      i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
      int oh, om;
      if (!digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
          !digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
        return TP_SYNTAX;
      zoff = (s[i] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
      i += 6;
    } else if (!(flags & TS_NO_OFFSET)) {
      return TP_SYNTAX;
    }
    if (i != n) return TP_SYNTAX;
  }
  if (year < 1 || year > 9999) return TP_RANGE;
  int64_t t = cel_days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss - zoff;
  if (t < CEL_TS_MIN_SEC || t > CEL_TS_MAX_SEC) return TP_RANGE;
  *sec = t;
  *nsec = frac;
  *off = zoff;
  return TP_OK;
}

/* RFC 3339 text (s, n bytes) -> Unix seconds + nanos (0..999999999) and
 * the written offset (seconds east).  `allow_date_only` also accepts
 * "YYYY-MM-DD" (midnight UTC).  False on bad syntax or outside
 * CEL_TS_MIN_SEC..CEL_TS_MAX_SEC.  Declared in cel_impl.h. */
bool cel_ts_parse(const char *s, size_t n, bool allow_date_only, int64_t *sec, int32_t *nsec,
                  int32_t *off) {
  int64_t t;
  int32_t ns, o;
  if (ts_parse_ex(s, n, allow_date_only ? TS_DATE_ONLY : 0, &t, &ns, &o) != TP_OK) return false;
  *sec = t;
  *nsec = ns;
  *off = o;
  return true;
}

/* Copy `len` bytes of `tmp` into buf[n] snprintf-style; returns len. */
static int emit(const char *tmp, int len, char *buf, size_t n) {
  if (n) {
    size_t k = (size_t)len < n ? (size_t)len : n - 1;
    memcpy(buf, tmp, k);
    buf[k] = '\0';
  }
  return len;
}

/* ".123" etc. for 0 < ns < 1e9, trailing zeros trimmed; returns length. */
static int frac_text(int32_t ns, char *out) {
  if (ns == 0) return 0;
  char d[10];
  snprintf(d, sizeof d, "%09d", (int)ns);
  int k = 9;
  while (k > 0 && d[k - 1] == '0')
    k--;
  out[0] = '.';
  memcpy(out + 1, d, (size_t)k);
  return k + 1;
}

/* Timestamp -> "YYYY-MM-DDThh:mm:ss[.f]Z" in UTC, the fraction with its
 * trailing zeros trimmed (Go's time.RFC3339Nano, what cel-go prints:
 * ".5", ".123", ".000000001").  Writes at most n bytes including the NUL
 * and returns the full length (31 bytes always suffice). */
int cel_ts_format(int64_t sec, int32_t nsec, char *buf, size_t n) {
  /* normalise (defensive: values built elsewhere may carry nsec < 0) */
  i128 total = (i128)sec * NS_PER_SEC + nsec;
  int64_t s = (int64_t)(total / NS_PER_SEC);
  int64_t ns = (int64_t)(total % NS_PER_SEC);
  if (ns < 0) ns += NS_PER_SEC, s--;
  int64_t days = cel_floor_div(s, 86400), sod = cel_floor_mod(s, 86400);
  int64_t y;
  int m, d;
  cel_civil_from_days(days, &y, &m, &d);
  char tmp[64];
  int len = snprintf(tmp, sizeof tmp, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
  len += frac_text((int32_t)ns, tmp + len);
  tmp[len++] = 'Z';
  tmp[len] = '\0';
  return emit(tmp, len, buf, n);
}

/* ---- durations ------------------------------------------------------------ */

enum { DUR_KOREO = 1u << 0 };

static const i128 DUR_MAX_NS = (i128)CEL_DUR_MAX_SEC * NS_PER_SEC + (NS_PER_SEC - 1);

/* Go's time.ParseDuration syntax: [-+]? ( digits [. digits] unit )+ or "0";
 * units ns, us, µs (U+00B5 or U+03BC), ms, s, m, h.  Exact arithmetic:
 * fractions are truncated toward zero at the nanosecond. */
static int dur_parse_ex(const char *s, size_t n, unsigned flags, i128 *out) {
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  if (i == n) return TP_SYNTAX;
  if (n - i == 1 && s[i] == '0' && !(flags & DUR_KOREO)) {
    *out = 0;
    return TP_OK;
  }
  i128 total = 0;
  bool over = false;
  while (i < n) {
    if (!(s[i] == '.' || (s[i] >= '0' && s[i] <= '9'))) return TP_SYNTAX;
    i128 ip = 0, fp = 0, fscale = 1;
    size_t ni = 0, nf = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      if (ip < (i128)1000000000000LL * 1000000000000LL) /* beyond: out of range anyway */
        ip = ip * 10 + (s[i] - '0');
      else
        over = true;
      ni++;
      i++;
    }
    if (i < n && s[i] == '.') {
      i++;
      while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (nf < 18) fp = fp * 10 + (s[i] - '0'), fscale *= 10;
        nf++;
        i++;
      }
    }
    if (ni == 0 && nf == 0) return TP_SYNTAX;
    size_t us = i;
    while (i < n && s[i] != '.' && !(s[i] >= '0' && s[i] <= '9'))
      i++;
    size_t ul = i - us;
    const char *u = s + us;
    int64_t unit;
    if (ul == 0) return TP_SYNTAX;
#define UNIT_IS(lit) (ul == sizeof(lit) - 1 && memcmp(u, lit, ul) == 0)
    if (UNIT_IS("ns"))
      unit = 1;
    else if (UNIT_IS("us"))
      unit = 1000;
    else if ((UNIT_IS("\xc2\xb5s") || UNIT_IS("\xce\xbcs")) && !(flags & DUR_KOREO))
      unit = 1000;
    else if (UNIT_IS("ms"))
      unit = 1000000;
    else if (UNIT_IS("s"))
      unit = NS_PER_SEC;
    else if (UNIT_IS("m"))
      unit = 60 * NS_PER_SEC;
    else if (UNIT_IS("h"))
      unit = 3600 * NS_PER_SEC;
    else if (UNIT_IS("d") && (flags & DUR_KOREO))
      unit = 86400 * NS_PER_SEC;
    else
      return TP_SYNTAX;
#undef UNIT_IS
    if (!over) {
      total += ip * unit + fp * unit / fscale;
      if (total > DUR_MAX_NS) over = true;
    }
  }
  if (over) return TP_RANGE;
  *out = neg ? -total : total;
  return TP_OK;
}

static void ns_split(i128 ns, int64_t *sec, int32_t *nsec) {
  *sec = (int64_t)(ns / NS_PER_SEC); /* truncation: nsec has the sign of sec */
  *nsec = (int32_t)(ns % NS_PER_SEC);
}

/* Duration text in Go's time.ParseDuration syntax ("1h2m3.5s", "-1.5s",
 * "100ms", "0") -> seconds + nanos with the same sign.  False on bad syntax
 * or beyond +-CEL_DUR_MAX_SEC s (+ 999999999 ns). */
bool cel_dur_parse(const char *s, size_t n, int64_t *sec, int32_t *nsec) {
  i128 ns;
  if (dur_parse_ex(s, n, 0, &ns) != TP_OK) return false;
  ns_split(ns, sec, nsec);
  return true;
}

static i128 dur_ns(const kv *d) { return (i128)d->u.t.sec * NS_PER_SEC + d->u.t.nsec; }
static i128 ts_ns(const kv *t) { return (i128)t->u.t.sec * NS_PER_SEC + t->u.t.nsec; }

/* Duration -> seconds with the fraction trimmed + "s" ("1.5s",
 * "-0.000000001s", "3600s", "0s"), the form CEL prints and the conformance
 * data uses.  snprintf-style like cel_ts_format (64 bytes always suffice). */
int cel_dur_format(int64_t sec, int32_t nsec, char *buf, size_t n) {
  i128 total = (i128)sec * NS_PER_SEC + nsec;
  bool neg = total < 0;
  if (neg) total = -total;
  char tmp[64];
  /* |total| / 1e9 < 2^127 / 1e9 fits in an unsigned 64-bit value for every
   * int64 sec; print the integer part with two halves to be safe. */
  unsigned __int128 whole = (unsigned __int128)total / NS_PER_SEC;
  int len = 0;
  if (neg) tmp[len++] = '-';
  if (whole > UINT64_MAX) {
    len += snprintf(tmp + len, sizeof tmp - (size_t)len, "%llu%019llu",
                    (unsigned long long)(whole / 10000000000000000000ULL),
                    (unsigned long long)(whole % 10000000000000000000ULL));
  } else {
    len += snprintf(tmp + len, sizeof tmp - (size_t)len, "%llu", (unsigned long long)whole);
  }
  len += frac_text((int32_t)(total % NS_PER_SEC), tmp + len);
  tmp[len++] = 's';
  tmp[len] = '\0';
  return emit(tmp, len, buf, n);
}

/* ---- arithmetic ------------------------------------------------------------ */

#define TS_RANGE "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"

static kv *no_overload2(const cel_call *c, const kv *a, const kv *b) {
  kv *args[2] = {(kv *)a, (kv *)b};
  return cel_no_overload(c, args, b ? 2 : 1);
}

/* A timestamp from total nanoseconds, range-checked; keeps `off`. */
static kv *ts_result(const cel_call *c, i128 ns, int32_t off, const char *what) {
  int64_t sec = (int64_t)(ns / NS_PER_SEC);
  int64_t nsec = (int64_t)(ns % NS_PER_SEC);
  if (nsec < 0) nsec += NS_PER_SEC, sec--;
  if (sec < CEL_TS_MIN_SEC || sec > CEL_TS_MAX_SEC)
    return cel_errorf(c, CEL_ERR_RANGE,
                      "timestamp out of range: the result of %s is outside " TS_RANGE, what);
  kv *v = kv_timestamp(sec, (int32_t)nsec);
  v->u.t.off = off;
  return v;
}

/* A duration produced by arithmetic: must fit in int64 nanoseconds. */
static kv *dur_result(const cel_call *c, i128 ns, const char *what) {
  if (ns > INT64_MAX || ns < INT64_MIN)
    return cel_errorf(c, CEL_ERR_RANGE,
                      "duration out of range: the result of %s exceeds the duration range of "
                      "+-9223372036.854775807s (int64 nanoseconds)",
                      what);
  int64_t sec;
  int32_t nsec;
  ns_split(ns, &sec, &nsec);
  return kv_duration(sec, nsec);
}

/* a + b for timestamp + duration, duration + timestamp, duration +
 * duration (CEL "_+_" overloads).  Returns a new value, a CEL_ERR_RANGE
 * error when the result leaves the timestamp range or (durations) int64
 * nanoseconds, or no matching overload for other kinds.  A timestamp
 * result keeps the timestamp operand's written offset (u.t.off). */
kv *cel_time_add(const cel_call *c, const kv *a, const kv *b) {
  if (a->kind == KV_TIMESTAMP && b->kind == KV_DURATION)
    return ts_result(c, ts_ns(a) + dur_ns(b), a->u.t.off, "timestamp + duration");
  if (a->kind == KV_DURATION && b->kind == KV_TIMESTAMP)
    return ts_result(c, dur_ns(a) + ts_ns(b), b->u.t.off, "duration + timestamp");
  if (a->kind == KV_DURATION && b->kind == KV_DURATION)
    return dur_result(c, dur_ns(a) + dur_ns(b), "duration + duration");
  return no_overload2(c, a, b);
}

/* a - b for timestamp - duration, timestamp - timestamp (a duration),
 * duration - duration; errors as cel_time_add. */
kv *cel_time_sub(const cel_call *c, const kv *a, const kv *b) {
  if (a->kind == KV_TIMESTAMP && b->kind == KV_DURATION)
    return ts_result(c, ts_ns(a) - dur_ns(b), a->u.t.off, "timestamp - duration");
  if (a->kind == KV_TIMESTAMP && b->kind == KV_TIMESTAMP)
    return dur_result(c, ts_ns(a) - ts_ns(b), "timestamp - timestamp");
  if (a->kind == KV_DURATION && b->kind == KV_DURATION)
    return dur_result(c, dur_ns(a) - dur_ns(b), "duration - duration");
  return no_overload2(c, a, b);
}

/* -a for a duration; CEL_ERR_RANGE when it does not fit in int64 ns. */
kv *cel_time_neg(const cel_call *c, const kv *a) {
  if (a->kind == KV_DURATION) return dur_result(c, -dur_ns(a), "-duration");
  return no_overload2(c, a, NULL);
}

/* ---- timestamp() and duration() ------------------------------------------------ */

/* Quote at most 64 bytes of user text in messages. */
#define QLEN(v) ((int)(kv_len(v) > 64 ? 64 : kv_len(v)))
#define QELL(v) (kv_len(v) > 64 ? "..." : "")

static kv *ts_from_string(const cel_call *c, const kv *str, unsigned flags) {
  int64_t sec;
  int32_t nsec, off;
  int st = ts_parse_ex(kv_str(str), kv_len(str), flags, &sec, &nsec, &off);
  if (st == TP_RANGE)
    return cel_errorf(c, CEL_ERR_RANGE,
                      "timestamp('%.*s%s') out of range: timestamps lie in " TS_RANGE, QLEN(str),
                      kv_str(str), QELL(str));
  if (st != TP_OK)
    return cel_errorf(c, CEL_ERR_INVALID,
                      "timestamp('%.*s%s'): not an RFC 3339 timestamp (expected "
                      "YYYY-MM-DDThh:mm:ss[.fraction] followed by Z or +hh:mm/-hh:mm)",
                      QLEN(str), kv_str(str), QELL(str));
  kv *v = kv_timestamp(sec, nsec);
  v->u.t.off = off;
  return v;
}

static kv *fn_timestamp(const cel_call *c, kv *const *args, size_t nargs) {
  if (nargs != 1) return cel_no_overload(c, args, nargs);
  const kv *a = args[0];
  switch (a->kind) {
  case KV_TIMESTAMP: return kv_ref((kv *)a);
  case KV_STRING: return ts_from_string(c, a, 0);
  case KV_INT:
    if (a->u.i < CEL_TS_MIN_SEC || a->u.i > CEL_TS_MAX_SEC)
      return cel_errorf(c, CEL_ERR_RANGE,
                        "timestamp(%lld) out of range: timestamps lie in " TS_RANGE,
                        (long long)a->u.i);
    return kv_timestamp(a->u.i, 0);
  default: return cel_no_overload(c, args, nargs);
  }
}

/* Upstream Koreo's times are Python datetime/timedelta values: microsecond
 * resolution.  Truncate a parsed value's nanoseconds (toward zero). */
static kv *to_micros(kv *v) {
  if ((v->kind == KV_TIMESTAMP || v->kind == KV_DURATION) && v->refs == 1)
    v->u.t.nsec -= v->u.t.nsec % 1000;
  return v;
}

static kv *fn_timestamp_koreo(const cel_call *c, kv *const *args, size_t nargs) {
  if (nargs != 1) return cel_no_overload(c, args, nargs);
  if (args[0]->kind == KV_TIMESTAMP) return kv_ref(args[0]);
  if (args[0]->kind == KV_STRING)
    return to_micros(ts_from_string(c, args[0], TS_DATE_ONLY | TS_NO_OFFSET | TS_SPACE_SEP));
  return cel_no_overload(c, args, nargs);
}

static kv *dur_from_string(const cel_call *c, const kv *str, unsigned flags) {
  i128 ns;
  int st = dur_parse_ex(kv_str(str), kv_len(str), flags, &ns);
  if (st == TP_RANGE)
    return cel_errorf(c, CEL_ERR_RANGE,
                      "duration('%.*s%s') out of range: durations are limited to +-%llds",
                      QLEN(str), kv_str(str), QELL(str), (long long)CEL_DUR_MAX_SEC);
  if (st != TP_OK)
    return cel_errorf(c, CEL_ERR_INVALID,
                      "duration('%.*s%s'): not a duration (expected an optional sign and "
                      "numbers with units %s, e.g. '1h30m' or '-1.5s')",
                      QLEN(str), kv_str(str), QELL(str),
                      (flags & DUR_KOREO) ? "d, h, m, s, ms, us, ns" : "h, m, s, ms, us, ns");
  int64_t sec;
  int32_t nsec;
  ns_split(ns, &sec, &nsec);
  return kv_duration(sec, nsec);
}

static kv *fn_duration(const cel_call *c, kv *const *args, size_t nargs) {
  if (nargs != 1) return cel_no_overload(c, args, nargs);
  if (args[0]->kind == KV_DURATION) return kv_ref(args[0]);
  if (args[0]->kind == KV_STRING) return dur_from_string(c, args[0], 0);
  return cel_no_overload(c, args, nargs);
}

static kv *fn_duration_koreo(const cel_call *c, kv *const *args, size_t nargs) {
  if (nargs != 1) return cel_no_overload(c, args, nargs);
  const kv *a = args[0];
  if (a->kind == KV_DURATION) return kv_ref((kv *)a);
  if (a->kind == KV_STRING) return to_micros(dur_from_string(c, a, DUR_KOREO));
  if (a->kind == KV_INT) {
    if (a->u.i < -CEL_DUR_MAX_SEC || a->u.i > CEL_DUR_MAX_SEC)
      return cel_errorf(c, CEL_ERR_RANGE,
                        "duration(%lld) out of range: durations are limited "
                        "to +-%llds",
                        (long long)a->u.i, (long long)CEL_DUR_MAX_SEC);
    return kv_duration(a->u.i, 0);
  }
  return cel_no_overload(c, args, nargs);
}

/* ---- accessors ------------------------------------------------------------------ */

typedef enum tfield {
  F_FULL_YEAR,
  F_MONTH,
  F_DATE,
  F_DAY_OF_MONTH,
  F_DAY_OF_WEEK,
  F_DAY_OF_YEAR,
  F_HOURS,
  F_MINUTES,
  F_SECONDS,
  F_MILLISECONDS,
} tfield;

static kv *dur_field(tfield f, const kv *d) {
  i128 ns = dur_ns(d); /* every division truncates toward zero */
  switch (f) {
  case F_HOURS: return kv_int((int64_t)(ns / (3600 * (i128)NS_PER_SEC)));
  case F_MINUTES: return kv_int((int64_t)(ns / (60 * (i128)NS_PER_SEC)));
  case F_SECONDS: return kv_int((int64_t)(ns / NS_PER_SEC));
  default: return kv_int((int64_t)(ns / 1000000)); /* F_MILLISECONDS: total */
  }
}

static kv *time_field(const cel_call *c, kv *const *args, size_t nargs, tfield f) {
  const kv *t = args[0];
  if (t->kind == KV_DURATION && nargs == 1 &&
      (f == F_HOURS || f == F_MINUTES || f == F_SECONDS || f == F_MILLISECONDS))
    return dur_field(f, t);
  if (t->kind != KV_TIMESTAMP || nargs > 2 || (nargs == 2 && args[1]->kind != KV_STRING))
    return cel_no_overload(c, args, nargs);
  /* normalise defensively (nsec outside 0..999999999 from foreign builders) */
  i128 total = ts_ns(t);
  int64_t sec = (int64_t)(total / NS_PER_SEC), nsec = (int64_t)(total % NS_PER_SEC);
  if (nsec < 0) nsec += NS_PER_SEC, sec--;
  int32_t off = 0;
  if (nargs == 2 && !cel_tz_offset(kv_str(args[1]), kv_len(args[1]), sec, &off))
    return cel_errorf(c, CEL_ERR_INVALID,
                      "unknown time zone '%.*s%s' (expected an IANA name such as "
                      "'America/Los_Angeles', 'UTC', or an offset such as '+05:30')",
                      QLEN(args[1]), kv_str(args[1]), QELL(args[1]));
  int64_t local = sec + off;
  int64_t days = cel_floor_div(local, 86400), sod = cel_floor_mod(local, 86400);
  int64_t y;
  int m, d;
  cel_civil_from_days(days, &y, &m, &d);
  switch (f) {
  case F_FULL_YEAR: return kv_int(y);
  case F_MONTH: return kv_int(m - 1);
  case F_DATE: return kv_int(d);
  case F_DAY_OF_MONTH: return kv_int(d - 1);
  case F_DAY_OF_WEEK: return kv_int(cel_floor_mod(days + 4, 7)); /* 1970-01-01: Thursday */
  case F_DAY_OF_YEAR: return kv_int(days - cel_days_from_civil(y, 1, 1));
  case F_HOURS: return kv_int(sod / 3600);
  case F_MINUTES: return kv_int(sod / 60 % 60);
  case F_SECONDS: return kv_int(sod % 60);
  case F_MILLISECONDS: return kv_int(nsec / 1000000);
  }
  return cel_no_overload(c, args, nargs);
}

#define ACCESSOR(fname, field)                                                                     \
  static kv *fn_##fname(const cel_call *c, kv *const *args, size_t nargs) {                        \
    return time_field(c, args, nargs, field);                                                      \
  }
ACCESSOR(getFullYear, F_FULL_YEAR)
ACCESSOR(getMonth, F_MONTH)
ACCESSOR(getDate, F_DATE)
ACCESSOR(getDayOfMonth, F_DAY_OF_MONTH)
ACCESSOR(getDayOfWeek, F_DAY_OF_WEEK)
ACCESSOR(getDayOfYear, F_DAY_OF_YEAR)
ACCESSOR(getHours, F_HOURS)
ACCESSOR(getMinutes, F_MINUTES)
ACCESSOR(getSeconds, F_SECONDS)
ACCESSOR(getMilliseconds, F_MILLISECONDS)
#undef ACCESSOR

const cel_fn_def cel_time_defs[] = {
    {"timestamp", CEL_FN_GLOBAL, 1, 1, fn_timestamp},
    {"duration", CEL_FN_GLOBAL, 1, 1, fn_duration},
    {"getFullYear", CEL_FN_MEMBER, 1, 2, fn_getFullYear},
    {"getMonth", CEL_FN_MEMBER, 1, 2, fn_getMonth},
    {"getDate", CEL_FN_MEMBER, 1, 2, fn_getDate},
    {"getDayOfMonth", CEL_FN_MEMBER, 1, 2, fn_getDayOfMonth},
    {"getDayOfWeek", CEL_FN_MEMBER, 1, 2, fn_getDayOfWeek},
    {"getDayOfYear", CEL_FN_MEMBER, 1, 2, fn_getDayOfYear},
    {"getHours", CEL_FN_MEMBER, 1, 2, fn_getHours},
    {"getMinutes", CEL_FN_MEMBER, 1, 2, fn_getMinutes},
    {"getSeconds", CEL_FN_MEMBER, 1, 2, fn_getSeconds},
    {"getMilliseconds", CEL_FN_MEMBER, 1, 2, fn_getMilliseconds},
};
const size_t cel_time_ndefs = sizeof cel_time_defs / sizeof cel_time_defs[0];

const cel_fn_def cel_time_koreo_defs[] = {
    {"timestamp", CEL_FN_GLOBAL, 1, 1, fn_timestamp_koreo},
    {"duration", CEL_FN_GLOBAL, 1, 1, fn_duration_koreo},
};
const size_t cel_time_koreo_ndefs = sizeof cel_time_koreo_defs / sizeof cel_time_koreo_defs[0];
