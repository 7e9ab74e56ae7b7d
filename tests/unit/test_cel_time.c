/*
 * tests/unit/test_cel_time.c: CEL timestamps and durations (core/cel/lib_time.c,
 * core/cel/tz.c): RFC 3339 and duration text, range limits, arithmetic,
 * the accessor functions in UTC, fixed offsets and IANA zones (TZif files,
 * POSIX footer rules), and the Koreo dialect variants.
 *
 * The functions are called straight from the cel_time_defs table with a
 * minimal cel_call (env NULL).  Build standalone with
 * -DKOREO_TIME_STANDALONE_TEST to get test-only definitions of the error
 * helpers that core/cel/eval.c provides in the full library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cel/lib_time.h"

#ifdef KOREO_TIME_STANDALONE_TEST
/* Test-only stand-ins for the helpers eval.c implements. */
const char *cel_type_name(const kv *v) {
  switch (v->kind) {
  case KV_NULL: return "null_type";
  case KV_BOOL: return "bool";
  case KV_INT: return "int";
  case KV_UINT: return "uint";
  case KV_DOUBLE: return "double";
  case KV_STRING: return "string";
  case KV_BYTES: return "bytes";
  case KV_LIST: return "list";
  case KV_MAP: return "map";
  case KV_TIMESTAMP: return "google.protobuf.Timestamp";
  case KV_DURATION: return "google.protobuf.Duration";
  case KV_TYPE: return "type";
  default: return "error";
  }
}

kv *cel_errorf(const cel_call *c, cel_error_code code, const char *fmt, ...) {
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0) kv_oom();
  va_end(ap);
  kv *e = kv_error(code, (int32_t)c->where, "%s", msg);
  free(msg);
  return e;
}

kv *cel_no_overload(const cel_call *c, kv *const *args, size_t n) {
  char types[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < n && used < sizeof types; i++)
    used += (size_t)snprintf(types + used, sizeof types - used, "%s%s", i ? ", " : "",
                             cel_type_name(args[i]));
  return kv_error(CEL_ERR_NO_OVERLOAD, (int32_t)c->where,
                  "no matching overload for '%s' applied to (%s)", c->name, types);
}
#endif

/* ---- helpers -------------------------------------------------------------- */

static const cel_fn_def *find_def(const cel_fn_def *defs, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(defs[i].name, name) == 0) return &defs[i];
  return NULL;
}

/* Call `name` from `defs` with `n` arguments (owned: released here). */
static kv *vcall(const cel_fn_def *defs, size_t ndefs, const char *name, size_t n, va_list ap) {
  kv *args[4];
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, kv *);
  const cel_fn_def *d = find_def(defs, ndefs, name);
  assert_non_null(d);
  assert_true(n >= d->min_args && n <= d->max_args);
  cel_call c = {.env = NULL, .where = 7, .name = name};
  kv *r = d->fn(&c, args, n);
  for (size_t i = 0; i < n; i++)
    kv_unref(args[i]);
  assert_non_null(r);
  return r;
}

static kv *call(const char *name, size_t n, ...) {
  va_list ap;
  va_start(ap, n);
  kv *r = vcall(cel_time_defs, cel_time_ndefs, name, n, ap);
  va_end(ap);
  return r;
}

static kv *kcall(const char *name, size_t n, ...) {
  va_list ap;
  va_start(ap, n);
  kv *r = vcall(cel_time_koreo_defs, cel_time_koreo_ndefs, name, n, ap);
  va_end(ap);
  return r;
}

static kv *S(const char *s) { return kv_cstring(s); }

/* timestamp('text') in the standard dialect; must succeed. */
static kv *TS(const char *s) {
  kv *v = call("timestamp", 1, S(s));
  if (v->kind != KV_TIMESTAMP) fail_msg("timestamp('%s') failed: %s", s, v->u.err.msg);
  return v;
}
static kv *DUR(const char *s) {
  kv *v = call("duration", 1, S(s));
  if (v->kind != KV_DURATION) fail_msg("duration('%s') failed: %s", s, v->u.err.msg);
  return v;
}

/* Consume `v` and check it is the int `want`. */
static void expect_int(kv *v, int64_t want) {
  if (v->kind == KV_ERROR) fail_msg("unexpected error: %s", v->u.err.msg);
  assert_int_equal(v->kind, KV_INT);
  assert_int_equal(v->u.i, want);
  kv_unref(v);
}

/* Consume `v` and check it is an error of `code` whose message contains `part`. */
static void expect_error(kv *v, int code, const char *part) {
  assert_int_equal(v->kind, KV_ERROR);
  assert_int_equal(v->u.err.code, code);
  if (part && !strstr(v->u.err.msg, part)) fail_msg("message '%s' lacks '%s'", v->u.err.msg, part);
  assert_int_equal(v->u.err.where, 7);
  kv_unref(v);
}

static void expect_ts_text(kv *v, const char *want) {
  if (v->kind == KV_ERROR) fail_msg("unexpected error: %s", v->u.err.msg);
  assert_int_equal(v->kind, KV_TIMESTAMP);
  char buf[64];
  cel_ts_format(v->u.t.sec, v->u.t.nsec, buf, sizeof buf);
  assert_string_equal(buf, want);
  kv_unref(v);
}

static void expect_dur_text(kv *v, const char *want) {
  if (v->kind == KV_ERROR) fail_msg("unexpected error: %s", v->u.err.msg);
  assert_int_equal(v->kind, KV_DURATION);
  char buf[64];
  cel_dur_format(v->u.t.sec, v->u.t.nsec, buf, sizeof buf);
  assert_string_equal(buf, want);
  kv_unref(v);
}

static bool have_tzdata(void) {
  const char *dir = getenv("TZDIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/America/Los_Angeles", dir && *dir ? dir : "/usr/share/zoneinfo");
  return access(path, R_OK) == 0;
}

/* ---- RFC 3339 ---------------------------------------------------------------- */

static void test_ts_parse_format(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
    int64_t sec;
    int32_t nsec, off;
  } cases[] = {
      {"2009-02-13T23:31:30Z", "2009-02-13T23:31:30Z", 1234567890, 0, 0},
      {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 0, 0, 0},
      {"2009-02-13T23:31:30.5Z", "2009-02-13T23:31:30.5Z", 1234567890, 500000000, 0},
      {"2009-02-13T23:31:30.120Z", "2009-02-13T23:31:30.12Z", 1234567890, 120000000, 0},
      {"2009-02-13T23:31:30.123456Z", "2009-02-13T23:31:30.123456Z", 1234567890, 123456000, 0},
      {"2009-02-13T23:31:30.000000001Z", "2009-02-13T23:31:30.000000001Z", 1234567890, 1, 0},
      {"2009-02-13T23:31:30.100000000Z", "2009-02-13T23:31:30.1Z", 1234567890, 100000000, 0},
      /* digits past the ninth are truncated */
      {"2009-02-13T23:31:30.1234567899Z", "2009-02-13T23:31:30.123456789Z", 1234567890, 123456789,
       0},
      /* RFC 3339 5.6: 'T' and 'Z' may be lower case */
      {"2009-02-13t23:31:30z", "2009-02-13T23:31:30Z", 1234567890, 0, 0},
      /* offsets: the instant is UTC, the written offset is kept */
      {"2009-02-14T01:01:30+01:30", "2009-02-13T23:31:30Z", 1234567890, 0, 5400},
      {"2009-02-13T18:31:30-05:00", "2009-02-13T23:31:30Z", 1234567890, 0, -18000},
      {"2009-02-13T23:31:30+00:00", "2009-02-13T23:31:30Z", 1234567890, 0, 0},
      {"1969-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.999999999Z", -1, 999999999, 0},
      {"2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z", 1709208000, 0, 0},
      {"2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z", 951782400, 0, 0},
      {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", CEL_TS_MIN_SEC, 0, 0},
      {"9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999999999Z", CEL_TS_MAX_SEC,
       999999999, 0},
      {"0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00Z", CEL_TS_MIN_SEC, 0, 3600},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t sec = 42;
    int32_t nsec = 42, off = 42;
    if (!cel_ts_parse(cases[i].in, strlen(cases[i].in), false, &sec, &nsec, &off))
      fail_msg("cel_ts_parse('%s') failed", cases[i].in);
    assert_int_equal(sec, cases[i].sec);
    assert_int_equal(nsec, cases[i].nsec);
    assert_int_equal(off, cases[i].off);
    char buf[64];
    int len = cel_ts_format(sec, nsec, buf, sizeof buf);
    assert_string_equal(buf, cases[i].out);
    assert_int_equal(len, (int)strlen(cases[i].out));
  }
}

static void test_ts_parse_rejects(void **state) {
  (void)state;
  static const char *bad[] = {
      "",
      "2009-02-13",               /* date only needs the flag */
      "2009-02-13T23:31:30",      /* no offset */
      "2009-02-13T23:31Z",        /* no seconds */
      "2009-02-13 23:31:30Z",     /* space separator */
      "2009-02-13T23:31:30.Z",    /* empty fraction */
      "2009-02-13T23:31:30+0100", /* offset without colon */
      "2009-02-13T23:31:30+01",   /* short offset */
      "2009-02-13T23:31:30+24:00",
      "2009-02-13T23:31:30Z ", /* trailing text */
      " 2009-02-13T23:31:30Z",
      "2009-2-13T23:31:30Z",
      "09-02-13T23:31:30Z",
      "2009-02-30T00:00:00Z", /* no such day */
      "2023-02-29T00:00:00Z",
      "1900-02-29T00:00:00Z", /* 1900 is not a leap year */
      "2009-13-01T00:00:00Z",
      "2009-00-01T00:00:00Z",
      "2009-01-00T00:00:00Z",
      "2009-02-13T24:00:00Z",
      "2009-02-13T23:60:00Z",
      "2009-02-13T23:59:60Z", /* leap seconds are not representable */
      "2009-02-13X23:31:30Z",
      "2009-02-13T23:31:30.5",
      "2009-02-13T23:31:30ZZ",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t sec;
    int32_t nsec, off;
    if (cel_ts_parse(bad[i], strlen(bad[i]), false, &sec, &nsec, &off))
      fail_msg("cel_ts_parse accepted '%s'", bad[i]);
    expect_error(call("timestamp", 1, S(bad[i])), CEL_ERR_INVALID, "not an RFC 3339 timestamp");
  }
}

static void test_ts_range(void **state) {
  (void)state;
  static const char *out[] = {
      "0000-01-01T00:00:00Z",
      "0000-12-31T23:59:59.999999999Z",
      "10000-01-01T00:00:00Z",
      "0001-01-01T00:00:00+00:01",
      "9999-12-31T23:59:59.999999999-00:01",
      "123456789-01-01T00:00:00Z",
  };
  for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
    int64_t sec;
    int32_t nsec, off;
    assert_false(cel_ts_parse(out[i], strlen(out[i]), false, &sec, &nsec, &off));
    expect_error(call("timestamp", 1, S(out[i])), CEL_ERR_RANGE, "out of range");
  }
  /* 10-digit years are not a timestamp at all */
  expect_error(call("timestamp", 1, S("1234567890-01-01T00:00:00Z")), CEL_ERR_INVALID, NULL);

  /* timestamp(int): Unix seconds, both ends and one past them */
  expect_ts_text(call("timestamp", 1, kv_int(CEL_TS_MIN_SEC)), "0001-01-01T00:00:00Z");
  expect_ts_text(call("timestamp", 1, kv_int(CEL_TS_MAX_SEC)), "9999-12-31T23:59:59Z");
  expect_ts_text(call("timestamp", 1, kv_int(1000000000)), "2001-09-09T01:46:40Z");
  expect_error(call("timestamp", 1, kv_int(CEL_TS_MAX_SEC + 1)), CEL_ERR_RANGE, "out of range");
  expect_error(call("timestamp", 1, kv_int(CEL_TS_MIN_SEC - 1)), CEL_ERR_RANGE, "out of range");
  expect_error(call("timestamp", 1, kv_int(INT64_MIN)), CEL_ERR_RANGE, "out of range");
}

static void test_ts_date_only(void **state) {
  (void)state;
  int64_t sec;
  int32_t nsec, off;
  assert_true(cel_ts_parse("2024-01-01", 10, true, &sec, &nsec, &off));
  assert_int_equal(sec, 1704067200);
  assert_int_equal(nsec, 0);
  assert_int_equal(off, 0);
  assert_false(cel_ts_parse("2024-01-01", 10, false, &sec, &nsec, &off));
  /* the flag adds the date-only form and nothing else */
  assert_false(cel_ts_parse("2024-01-01T10:00:00", 19, true, &sec, &nsec, &off));
  assert_false(cel_ts_parse("2024-02-30", 10, true, &sec, &nsec, &off));
  assert_false(cel_ts_parse("0000-01-01", 10, true, &sec, &nsec, &off));
  assert_true(cel_ts_parse("2024-01-01T00:00:00Z", 20, true, &sec, &nsec, &off));

  /* the Koreo variant of timestamp() (pendulum's ISO 8601 forms) */
  expect_ts_text(kcall("timestamp", 1, S("2024-01-01")), "2024-01-01T00:00:00Z");
  expect_ts_text(kcall("timestamp", 1, S("2024-01-01T10:20:30")), "2024-01-01T10:20:30Z");
  expect_ts_text(kcall("timestamp", 1, S("2024-01-01 10:20:30.25Z")), "2024-01-01T10:20:30.25Z");
  kv *t = kcall("timestamp", 1, S("2024-01-01T00:00:00+05:00"));
  assert_int_equal(t->u.t.off, 18000);
  expect_ts_text(t, "2023-12-31T19:00:00Z");
  expect_error(kcall("timestamp", 1, S("2024-13-01")), CEL_ERR_INVALID, NULL);
  expect_error(kcall("timestamp", 1, kv_int(0)), CEL_ERR_NO_OVERLOAD, NULL);
  /* the standard function rejects the date-only form */
  expect_error(call("timestamp", 1, S("2024-01-01")), CEL_ERR_INVALID, "2024-01-01");
}

static void test_ts_format_buffer(void **state) {
  (void)state;
  char buf[8];
  int len = cel_ts_format(1234567890, 0, buf, sizeof buf);
  assert_int_equal(len, 20); /* the full length, like snprintf */
  assert_string_equal(buf, "2009-02");
  char big[64];
  /* nanos outside 0..999999999 are normalised */
  cel_ts_format(1, -1, big, sizeof big);
  assert_string_equal(big, "1970-01-01T00:00:00.999999999Z");
  len = cel_dur_format(1, 500000000, buf, 3);
  assert_int_equal(len, 4);
  assert_string_equal(buf, "1.");
}

/* ---- durations ------------------------------------------------------------------ */

static void test_dur_parse(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
    int64_t sec;
    int32_t nsec;
  } cases[] = {
      {"1h2m3.5s", "3723.5s", 3723, 500000000},
      {"-1.5s", "-1.5s", -1, -500000000},
      {"+1.5s", "1.5s", 1, 500000000},
      {"100ms", "0.1s", 0, 100000000},
      {"2us", "0.000002s", 0, 2000},
      {"2\xc2\xb5s", "0.000002s", 0, 2000}, /* U+00B5 micro sign */
      {"2\xce\xbcs", "0.000002s", 0, 2000}, /* U+03BC Greek mu */
      {"3ns", "0.000000003s", 0, 3},
      {"-1ns", "-0.000000001s", 0, -1},
      {"0", "0s", 0, 0},
      {"-0", "0s", 0, 0},
      {"0s", "0s", 0, 0},
      {"1000000s", "1000000s", 1000000, 0},
      {"1.5h", "5400s", 5400, 0},
      {".5s", "0.5s", 0, 500000000},
      {"1.s", "1s", 1, 0},
      {"1h1h", "7200s", 7200, 0},
      {"1.000000001s", "1.000000001s", 1, 1},
      {"0.0000000019s", "0.000000001s", 0, 1}, /* truncated at the nanosecond */
      {"1.0000000001h", "3600.00000036s", 3600, 360},
      {"-2m3s", "-123s", -123, 0},
      {"123.321456789s", "123.321456789s", 123, 321456789},
      {"315576000000s", "315576000000s", CEL_DUR_MAX_SEC, 0},
      {"315576000000.999999999s", "315576000000.999999999s", CEL_DUR_MAX_SEC, 999999999},
      {"-315576000000.999999999s", "-315576000000.999999999s", -CEL_DUR_MAX_SEC, -999999999},
      {"0000000000000000000000000000001s", "1s", 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t sec = 42;
    int32_t nsec = 42;
    if (!cel_dur_parse(cases[i].in, strlen(cases[i].in), &sec, &nsec))
      fail_msg("cel_dur_parse('%s') failed", cases[i].in);
    assert_int_equal(sec, cases[i].sec);
    assert_int_equal(nsec, cases[i].nsec);
    char buf[64];
    cel_dur_format(sec, nsec, buf, sizeof buf);
    assert_string_equal(buf, cases[i].out);
    expect_dur_text(call("duration", 1, S(cases[i].in)), cases[i].out);
  }
}

static void test_dur_parse_rejects(void **state) {
  (void)state;
  static const char *bad[] = {"",    "-",   "+",     "s",     "1",    "1x",     "1 s",
                              "1s ", " 1s", ".s",    "1d",    "--1s", "1.2.3s", "1S",
                              "1sm", "00",  "1h-1m", "0x10s", "1e3s", "1µ",     "\xb5s"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t sec;
    int32_t nsec;
    if (cel_dur_parse(bad[i], strlen(bad[i]), &sec, &nsec))
      fail_msg("cel_dur_parse accepted '%s'", bad[i]);
    expect_error(call("duration", 1, S(bad[i])), CEL_ERR_INVALID, "not a duration");
  }
  static const char *range[] = {"315576000001s",
                                "-315576000001s",
                                "320000000000s",
                                "-320000000000s",
                                "315576000000.999999999001s1ns", /* sum past the top */
                                "99999999999999999999999999999999999999999h",
                                "87660001h",
                                "5259600000m1s"};
  for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
    int64_t sec;
    int32_t nsec;
    if (cel_dur_parse(range[i], strlen(range[i]), &sec, &nsec))
      fail_msg("cel_dur_parse accepted '%s'", range[i]);
    expect_error(call("duration", 1, S(range[i])), CEL_ERR_RANGE, "out of range");
  }
  /* 87659999h is just inside: 315575996400 s */
  expect_dur_text(call("duration", 1, S("87659999h")), "315575996400s");
}

static void test_dur_format(void **state) {
  (void)state;
  static const struct {
    int64_t sec;
    int32_t nsec;
    const char *out;
  } cases[] = {
      {1, 500000000, "1.5s"},
      {0, -1, "-0.000000001s"},
      {3600, 0, "3600s"},
      {0, 0, "0s"},
      {-1, -500000000, "-1.5s"},
      {123, 321456789, "123.321456789s"},
      {0, 10, "0.00000001s"},
      {-CEL_DUR_MAX_SEC, -999999999, "-315576000000.999999999s"},
      {INT64_MIN, 0, "-9223372036854775808s"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[64];
    int len = cel_dur_format(cases[i].sec, cases[i].nsec, buf, sizeof buf);
    assert_string_equal(buf, cases[i].out);
    assert_int_equal(len, (int)strlen(cases[i].out));
  }
}

static void test_dur_koreo(void **state) {
  (void)state;
  expect_dur_text(kcall("duration", 1, S("1d")), "86400s");
  expect_dur_text(kcall("duration", 1, S("1h30m")), "5400s");
  expect_dur_text(kcall("duration", 1, S("1.5h")), "5400s");
  expect_dur_text(kcall("duration", 1, S("100ms")), "0.1s");
  expect_dur_text(kcall("duration", 1, S("-1.5s")), "-1.5s");
  expect_dur_text(kcall("duration", 1, kv_int(60)), "60s");
  expect_dur_text(kcall("duration", 1, kv_int(-CEL_DUR_MAX_SEC)), "-315576000000s");
  expect_error(kcall("duration", 1, kv_int(CEL_DUR_MAX_SEC + 1)), CEL_ERR_RANGE, "out of range");
  expect_error(kcall("duration", 1, S("0")), CEL_ERR_INVALID, NULL);
  expect_error(kcall("duration", 1, S("2\xc2\xb5s")), CEL_ERR_INVALID, NULL);
  expect_dur_text(kcall("duration", 1, S("3652500d")), "315576000000s");
  expect_error(kcall("duration", 1, S("3652501d")), CEL_ERR_RANGE, NULL);
  expect_error(kcall("duration", 1, kv_double(1.5)), CEL_ERR_NO_OVERLOAD, NULL);
  /* the standard function has no int overload and no "d" unit */
  expect_error(call("duration", 1, kv_int(60)), CEL_ERR_NO_OVERLOAD, "duration");
  expect_error(call("duration", 1, S("1d")), CEL_ERR_INVALID, NULL);
}

/* ---- conversions ---------------------------------------------------------------- */

static void test_identity_and_overloads(void **state) {
  (void)state;
  kv *t = TS("2009-02-13T23:31:30Z");
  kv *r = call("timestamp", 1, kv_ref(t));
  assert_ptr_equal(r, t); /* identity: the same value, one more reference */
  kv_unref(r);
  kv_unref(t);
  kv *d = DUR("1s");
  r = call("duration", 1, kv_ref(d));
  assert_ptr_equal(r, d);
  kv_unref(r);
  kv_unref(d);
  expect_error(call("timestamp", 1, kv_double(1.5)), CEL_ERR_NO_OVERLOAD,
               "no matching overload for 'timestamp' applied to (double)");
  expect_error(call("timestamp", 1, kv_null()), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(call("timestamp", 1, DUR("1s")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(call("duration", 1, TS("2009-02-13T23:31:30Z")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(call("duration", 1, kv_bytes("1s", 2)), CEL_ERR_NO_OVERLOAD, NULL);
  /* long inputs are quoted shortened */
  char longs[300];
  memset(longs, '9', sizeof longs - 1);
  longs[sizeof longs - 1] = '\0';
  kv *e = call("duration", 1, S(longs));
  assert_int_equal(e->kind, KV_ERROR);
  assert_true(strlen(e->u.err.msg) < 250);
  assert_non_null(strstr(e->u.err.msg, "..."));
  kv_unref(e);
}

/* ---- arithmetic ------------------------------------------------------------------- */

static kv *add(kv *a, kv *b) {
  cel_call c = {.env = NULL, .where = 7, .name = "_+_"};
  kv *r = cel_time_add(&c, a, b);
  kv_unref(a);
  kv_unref(b);
  return r;
}
static kv *sub(kv *a, kv *b) {
  cel_call c = {.env = NULL, .where = 7, .name = "_-_"};
  kv *r = cel_time_sub(&c, a, b);
  kv_unref(a);
  kv_unref(b);
  return r;
}
static kv *neg(kv *a) {
  cel_call c = {.env = NULL, .where = 7, .name = "-_"};
  kv *r = cel_time_neg(&c, a);
  kv_unref(a);
  return r;
}

static void test_arith(void **state) {
  (void)state;
  /* conformance timestamps/timestamp_arithmetic */
  expect_ts_text(add(TS("0001-01-01T00:00:01.000000001Z"), DUR("-999999999ns")),
                 "0001-01-01T00:00:00.000000002Z");
  expect_ts_text(add(TS("0001-01-01T00:00:01.999999999Z"), DUR("999999999ns")),
                 "0001-01-01T00:00:02.999999998Z");
  expect_ts_text(sub(TS("2009-02-13T23:10:00Z"), DUR("600s")), "2009-02-13T23:00:00Z");
  expect_dur_text(sub(TS("2009-02-13T23:31:00Z"), TS("2009-02-13T23:29:00Z")), "120s");
  expect_dur_text(sub(TS("2009-02-13T23:29:00Z"), TS("2009-02-13T23:31:00.5Z")), "-120.5s");
  expect_dur_text(add(DUR("600s"), DUR("50s")), "650s");
  expect_dur_text(sub(DUR("900s"), DUR("42s")), "858s");
  expect_dur_text(add(DUR("1.5s"), DUR("-2.25s")), "-0.75s");
  expect_dur_text(sub(DUR("-0.5s"), DUR("-0.75s")), "0.25s");
  expect_dur_text(neg(DUR("1.5s")), "-1.5s");
  expect_dur_text(neg(DUR("-1ns")), "0.000000001s");
  expect_dur_text(neg(DUR("0s")), "0s");
  expect_ts_text(add(DUR("1h"), TS("1969-12-31T23:30:00Z")), "1970-01-01T00:30:00Z");
  expect_ts_text(sub(TS("1970-01-01T00:00:00Z"), DUR("0.25s")), "1969-12-31T23:59:59.75Z");

  /* the written offset stays with the timestamp */
  kv *t = add(TS("2024-01-01T00:00:00+05:00"), DUR("1h"));
  assert_int_equal(t->kind, KV_TIMESTAMP);
  assert_int_equal(t->u.t.off, 18000);
  expect_ts_text(t, "2023-12-31T20:00:00Z");
  t = add(DUR("1h"), TS("2024-01-01T00:00:00-02:00"));
  assert_int_equal(t->u.t.off, -7200);
  kv_unref(t);
}

static void test_arith_range(void **state) {
  (void)state;
  /* timestamp results: both ends exactly, and one nanosecond past them */
  expect_ts_text(add(TS("9999-12-31T23:59:59.999999998Z"), DUR("1ns")),
                 "9999-12-31T23:59:59.999999999Z");
  expect_error(add(TS("9999-12-31T23:59:59.999999999Z"), DUR("1ns")), CEL_ERR_RANGE, "range");
  expect_error(add(TS("9999-12-31T23:59:59Z"), DUR("1s")), CEL_ERR_RANGE, "range");
  expect_ts_text(sub(TS("0001-01-01T00:00:00.000000001Z"), DUR("1ns")), "0001-01-01T00:00:00Z");
  expect_error(sub(TS("0001-01-01T00:00:00Z"), DUR("1ns")), CEL_ERR_RANGE, "range");
  expect_error(add(TS("0001-01-01T00:00:00Z"), DUR("-1s")), CEL_ERR_RANGE, "range");
  expect_error(add(DUR("-1ns"), TS("0001-01-01T00:00:00Z")), CEL_ERR_RANGE, "range");
  expect_error(add(TS("2000-01-01T00:00:00Z"), DUR("315576000000s")), CEL_ERR_RANGE, "range");

  /* duration results must fit in int64 nanoseconds */
  expect_error(sub(TS("9999-12-31T23:59:59Z"), TS("0001-01-01T00:00:00Z")), CEL_ERR_RANGE, "range");
  /* 2262-04-11T23:47:16.854775807Z is INT64_MAX ns after the epoch */
  expect_dur_text(sub(TS("2262-04-11T23:47:16.854775807Z"), TS("1970-01-01T00:00:00Z")),
                  "9223372036.854775807s");
  expect_error(sub(TS("2262-04-11T23:47:16.854775808Z"), TS("1970-01-01T00:00:00Z")), CEL_ERR_RANGE,
               "range");
  expect_dur_text(sub(TS("1677-09-21T00:12:43.145224192Z"), TS("1970-01-01T00:00:00Z")),
                  "-9223372036.854775808s");
  expect_error(sub(TS("1677-09-21T00:12:43.145224191Z"), TS("1970-01-01T00:00:00Z")), CEL_ERR_RANGE,
               "range");
  expect_dur_text(add(DUR("9223372036.854775806s"), DUR("1ns")), "9223372036.854775807s");
  expect_error(add(DUR("9223372036.854775807s"), DUR("1ns")), CEL_ERR_RANGE, "range");
  expect_error(add(DUR("200000000000s"), DUR("200000000000s")), CEL_ERR_RANGE, "range");
  expect_error(sub(DUR("200000000000s"), DUR("-200000000000s")), CEL_ERR_RANGE, "range");
  expect_error(sub(DUR("-9223372036.854775808s"), DUR("1ns")), CEL_ERR_RANGE, "range");
  expect_error(neg(DUR("-9223372036.854775808s")), CEL_ERR_RANGE, "range");
  expect_dur_text(neg(DUR("-9223372036.854775807s")), "9223372036.854775807s");

  /* wrong kinds */
  expect_error(add(TS("2009-02-13T23:31:30Z"), TS("2009-02-13T23:31:30Z")), CEL_ERR_NO_OVERLOAD,
               "google.protobuf.Timestamp, google.protobuf.Timestamp");
  expect_error(sub(DUR("1s"), TS("2009-02-13T23:31:30Z")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(add(kv_int(1), DUR("1s")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(neg(TS("2009-02-13T23:31:30Z")), CEL_ERR_NO_OVERLOAD, NULL);
}

/* ---- accessors --------------------------------------------------------------------- */

/* `fn` on timestamp `ts` (with zone `tz` unless NULL) must give `want`. */
static void acc(const char *fn, const char *ts, const char *tz, int64_t want) {
  kv *v = tz ? call(fn, 2, TS(ts), S(tz)) : call(fn, 1, TS(ts));
  if (v->kind != KV_INT || v->u.i != want)
    fail_msg("%s('%s', %s) = %s%lld, want %lld", fn, ts, tz ? tz : "-",
             v->kind == KV_ERROR ? v->u.err.msg : "", v->kind == KV_INT ? (long long)v->u.i : 0,
             (long long)want);
  kv_unref(v);
}

static void test_accessors_utc(void **state) {
  (void)state;
  const char *t = "2009-02-13T23:31:30.123456789Z";
  acc("getFullYear", t, NULL, 2009);
  acc("getMonth", t, NULL, 1);
  acc("getDate", t, NULL, 13);
  acc("getDayOfMonth", t, NULL, 12);
  acc("getDayOfWeek", t, NULL, 5);
  acc("getDayOfYear", t, NULL, 43);
  acc("getHours", t, NULL, 23);
  acc("getMinutes", t, NULL, 31);
  acc("getSeconds", t, NULL, 30);
  acc("getMilliseconds", t, NULL, 123);
  for (const char *const *z = (const char *const[]){"UTC", "", "+00:00", "-00:00", NULL}; *z; z++)
    acc("getHours", t, *z, 23);
  /* before the epoch */
  const char *p = "1969-12-31T23:59:59.5Z";
  acc("getFullYear", p, NULL, 1969);
  acc("getMonth", p, NULL, 11);
  acc("getDayOfYear", p, NULL, 364);
  acc("getDayOfWeek", p, NULL, 3); /* Wednesday */
  acc("getHours", p, NULL, 23);
  acc("getSeconds", p, NULL, 59);
  acc("getMilliseconds", p, NULL, 500);
  /* the ends of the range */
  acc("getDayOfWeek", "0001-01-01T00:00:00Z", NULL, 1); /* Monday */
  acc("getFullYear", "0001-01-01T00:00:00Z", NULL, 1);
  acc("getDayOfYear", "9999-12-31T23:59:59Z", NULL, 364);
  acc("getDayOfYear", "2024-12-31T12:00:00Z", NULL, 365); /* leap year */
  acc("getDayOfWeek", "2024-03-10T12:00:00Z", NULL, 0);   /* Sunday */
  acc("getDayOfWeek", "2024-03-16T12:00:00Z", NULL, 6);   /* Saturday */
  /* the accessors use UTC whatever offset the text was written with */
  acc("getHours", "2024-01-01T00:00:00+05:00", NULL, 19);
}

static void test_accessors_fixed_offset(void **state) {
  (void)state;
  /* conformance timestamps/timestamp_selectors_tz */
  acc("getDayOfMonth", "2009-02-13T23:31:30Z", "+11:00", 13);
  acc("getDayOfMonth", "2009-02-13T02:00:00Z", "-02:30", 11);
  acc("getFullYear", "2009-02-13T23:31:30Z", "-09:30", 2009);
  acc("getHours", "2009-02-13T23:31:30Z", "02:00", 1);
  /* a year boundary crossed by the offset */
  const char *t = "2023-12-31T20:00:00Z";
  acc("getFullYear", t, "+05:30", 2024);
  acc("getMonth", t, "+05:30", 0);
  acc("getDate", t, "+05:30", 1);
  acc("getDayOfYear", t, "+05:30", 0);
  acc("getDayOfWeek", t, "+05:30", 1);
  acc("getHours", t, "+05:30", 1);
  acc("getMinutes", t, "+05:30", 30);
  acc("getSeconds", t, "+05:30", 0);
  acc("getFullYear", "2024-01-01T03:00:00Z", "-08:00", 2023);
  acc("getDayOfYear", "2024-01-01T03:00:00Z", "-08:00", 364);
  acc("getMinutes", "2024-01-01T03:00:00Z", "-8:45", 15);
  acc("getMilliseconds", "2024-01-01T03:00:00.999Z", "+23:59", 999);
}

static void test_accessors_iana(void **state) {
  (void)state;
  if (!have_tzdata()) skip();
  const char *la = "America/Los_Angeles";
  /* 2024-03-10: 02:00 PST becomes 03:00 PDT (10:00 UTC) */
  acc("getHours", "2024-03-10T09:59:59Z", la, 1);
  acc("getMinutes", "2024-03-10T09:59:59Z", la, 59);
  acc("getHours", "2024-03-10T10:00:00Z", la, 3);
  acc("getDate", "2024-03-10T10:00:00Z", la, 10);
  /* 2024-11-03: 02:00 PDT becomes 01:00 PST (09:00 UTC): 01:xx happens twice */
  acc("getHours", "2024-11-03T08:30:00Z", la, 1);
  acc("getHours", "2024-11-03T09:30:00Z", la, 1);
  acc("getHours", "2024-11-03T08:59:59Z", la, 1);
  acc("getHours", "2024-11-03T10:00:00Z", la, 2);
  acc("getDayOfMonth", "2024-11-03T07:59:59Z", la, 2); /* 00:59:59 PDT on the 3rd */
  acc("getDate", "2024-11-03T06:59:59Z", la, 2);       /* 23:59:59 PDT on the 2nd */
  /* Europe/London, the same year: 2024-03-31 01:00 UTC, 2024-10-27 01:00 UTC */
  acc("getHours", "2024-03-31T00:59:59Z", "Europe/London", 0);
  acc("getHours", "2024-03-31T01:00:00Z", "Europe/London", 2);
  acc("getHours", "2024-10-27T00:59:59Z", "Europe/London", 1);
  acc("getHours", "2024-10-27T01:00:00Z", "Europe/London", 1);
  /* southern hemisphere: Sydney leaves DST on 2024-04-07 03:00 AEDT (16:00 UTC) */
  acc("getHours", "2024-04-06T15:59:59Z", "Australia/Sydney", 2);
  acc("getHours", "2024-04-06T16:00:00Z", "Australia/Sydney", 2);
  acc("getHours", "2024-01-15T00:00:00Z", "Australia/Sydney", 11);
  acc("getHours", "2024-07-15T00:00:00Z", "Australia/Sydney", 10);
  /* a 45-minute offset; a half-hour one; the conformance names */
  acc("getMinutes", "2024-01-01T00:00:00Z", "Asia/Kathmandu", 45);
  acc("getHours", "2024-01-01T00:00:00Z", "Asia/Kathmandu", 5);
  acc("getDayOfMonth", "2009-02-13T02:00:00Z", "America/St_Johns", 11);
  acc("getDayOfYear", "2009-02-13T23:31:30Z", "US/Central", 43);
  acc("getHours", "2009-02-13T23:31:30Z", "US/Central", 17);
  acc("getHours", "2009-07-13T23:31:30Z", "US/Central", 18);
  acc("getHours", "2009-07-13T23:31:30Z", "Etc/GMT+5", 18); /* POSIX sign: UTC-5 */
  /* history from the table: Los Angeles had no DST in 1949, had it in 1950 */
  acc("getHours", "1949-07-01T12:00:00Z", la, 4);
  acc("getHours", "1950-07-01T12:00:00Z", la, 5);
  /* before the first transition: local mean time (type 0, -7:52:58) */
  acc("getHours", "1800-01-01T12:00:00Z", la, 4);
  acc("getMinutes", "1800-01-01T12:00:00Z", la, 7);
}

static void test_posix_footer_beyond_table(void **state) {
  (void)state;
  if (!have_tzdata()) skip();
  const char *la = "America/Los_Angeles";
  /* 2100 lies past every transition in the TZif table: the footer's rule
   * "PST8PDT,M3.2.0,M11.1.0" decides.  2100-03-14 and 2100-11-07 are the
   * second Sunday of March and the first Sunday of November. */
  acc("getHours", "2100-01-01T12:00:00Z", la, 4);
  acc("getHours", "2100-07-01T12:00:00Z", la, 5);
  acc("getHours", "2100-03-14T09:59:59Z", la, 1);
  acc("getHours", "2100-03-14T10:00:00Z", la, 3);
  acc("getHours", "2100-11-07T08:59:59Z", la, 1);
  acc("getHours", "2100-11-07T09:00:00Z", la, 1);
  acc("getHours", "2100-11-07T10:00:00Z", la, 2);
  acc("getHours", "9999-07-01T12:00:00Z", la, 5);
  acc("getHours", "2100-01-15T00:00:00Z", "Australia/Sydney", 11);
  acc("getHours", "2100-07-15T00:00:00Z", "Australia/Sydney", 10);
}

static void test_posix_rules(void **state) {
  (void)state;
  int32_t off;
  const int64_t mar10 = 1710064800; /* 2024-03-10T10:00:00Z */
  assert_true(cel_tz_posix_offset("PST8PDT,M3.2.0,M11.1.0", mar10, &off));
  assert_int_equal(off, -7 * 3600);
  assert_true(cel_tz_posix_offset("PST8PDT,M3.2.0,M11.1.0", mar10 - 1, &off));
  assert_int_equal(off, -8 * 3600);
  /* no rule given: the US default */
  assert_true(cel_tz_posix_offset("EST5EDT", mar10, &off));
  assert_int_equal(off, -4 * 3600);
  assert_true(cel_tz_posix_offset("<+0545>-5:45", mar10, &off));
  assert_int_equal(off, 5 * 3600 + 45 * 60);
  assert_true(cel_tz_posix_offset("UTC0", mar10, &off));
  assert_int_equal(off, 0);
  /* explicit DST offset and /time */
  assert_true(cel_tz_posix_offset("IST-1GMT0,M10.5.0,M3.5.0/1", 1719835200 /* 2024-07-01 */, &off));
  assert_int_equal(off, 3600); /* Europe/Dublin's negative-DST form: summer is "standard" */
  assert_true(cel_tz_posix_offset("IST-1GMT0,M10.5.0,M3.5.0/1", 1704110400 /* 2024-01-01 */, &off));
  assert_int_equal(off, 0);
  /* Jn counts 1..365 without Feb 29, n counts 0..365 with it: in the leap
   * year 2024, J60 is March 1 and 59 is Feb 29. */
  const int64_t feb29 = 1709164800, mar1 = 1709251200; /* 00:00 UTC */
  assert_true(cel_tz_posix_offset("AAA0BBB,J60/0,J300/0", mar1 - 1, &off));
  assert_int_equal(off, 0);
  assert_true(cel_tz_posix_offset("AAA0BBB,J60/0,J300/0", mar1, &off));
  assert_int_equal(off, 3600);
  assert_true(cel_tz_posix_offset("AAA0BBB,59/0,300/0", feb29 - 1, &off));
  assert_int_equal(off, 0);
  assert_true(cel_tz_posix_offset("AAA0BBB,59/0,300/0", feb29, &off));
  assert_int_equal(off, 3600);
  /* RFC 8536 3.3.1: DST all year round */
  assert_true(cel_tz_posix_offset("EST5EDT,0/0,J365/25", 1704110400, &off));
  assert_int_equal(off, -4 * 3600);
  assert_true(cel_tz_posix_offset("EST5EDT,0/0,J365/25", 1719835200, &off));
  assert_int_equal(off, -4 * 3600);
  /* M.5 = last week: 2024-03-31 is the last Sunday of March */
  assert_true(cel_tz_posix_offset("GMT0BST,M3.5.0/1,M10.5.0", 1711846800, &off));
  assert_int_equal(off, 3600);
  assert_true(cel_tz_posix_offset("GMT0BST,M3.5.0/1,M10.5.0", 1711846799, &off));
  assert_int_equal(off, 0);
  /* malformed */
  static const char *bad[] = {"",
                              "PS8",
                              "PST",
                              "8PDT",
                              "PST8PDT,",
                              "PST8PDT,M3.2.0",
                              "PST8PDT,M13.1.0,M11.1.0",
                              "PST8PDT,M3.0.0,M11.1.0",
                              "PST8PDT,M3.2.7,M11.1.0",
                              "PST8PDT,J0,J365",
                              "PST8PDT,366,1",
                              "PST8x",
                              "<+05-5",
                              "PST25"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (cel_tz_posix_offset(bad[i], mar10, &off)) fail_msg("accepted '%s'", bad[i]);
}

/* Write a TZif v2 file with one transition (at `at`, from +1h "AAA" to
 * +2h "BBB") and the footer `footer`. */
static void write_tzif(const char *path, int64_t at, const char *footer) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  unsigned char hdr[44] = {'T', 'Z', 'i', 'f', '2'};
  /* v1 block: empty except one type (typecnt=1, charcnt=4) */
  hdr[20 + 4 * 4 + 3] = 1; /* typecnt */
  hdr[20 + 5 * 4 + 3] = 4; /* charcnt */
  fwrite(hdr, 1, 44, f);
  const unsigned char t1[6] = {0, 0, 0x0e, 0x10, 0, 0};
  fwrite(t1, 1, 6, f);
  fwrite("AAA", 1, 4, f);
  unsigned char h2[44] = {'T', 'Z', 'i', 'f', '2'};
  h2[20 + 3 * 4 + 3] = 1; /* timecnt */
  h2[20 + 4 * 4 + 3] = 2; /* typecnt */
  h2[20 + 5 * 4 + 3] = 8; /* charcnt */
  fwrite(h2, 1, 44, f);
  unsigned char tt[8];
  for (int i = 0; i < 8; i++)
    tt[i] = (unsigned char)((uint64_t)at >> (56 - 8 * i));
  fwrite(tt, 1, 8, f);
  fputc(1, f); /* transition -> type 1 */
  const unsigned char types[12] = {0, 0, 0x0e, 0x10, 0, 0, 0, 0, 0x1c, 0x20, 0, 4};
  fwrite(types, 1, 12, f);
  fwrite("AAA\0BBB", 1, 8, f);
  fprintf(f, "\n%s\n", footer);
  fclose(f);
}

static void test_tzdir_and_tzif(void **state) {
  (void)state;
  char dir[] = "/tmp/koreo-tz-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[600], path[700];
  snprintf(sub, sizeof sub, "%s/Test", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  snprintf(path, sizeof path, "%s/Test/Zone", dir);
  write_tzif(path, 1000000000, "BBB-2CCC-3,M3.5.0,M10.5.0/3"); /* +2h, DST +3h */
  char bad[700];
  snprintf(bad, sizeof bad, "%s/Test/NotTZif", dir);
  FILE *f = fopen(bad, "wb");
  assert_non_null(f);
  fputs("this is not a TZif file at all, not even close to one.....", f);
  fclose(f);

  char *old = getenv("TZDIR") ? strdup(getenv("TZDIR")) : NULL;
  setenv("TZDIR", dir, 1);
  cel_tz_cache_clear();
  /* before the transition: type 0 (+1h) */
  acc("getHours", "2001-01-01T00:00:00Z", "Test/Zone", 1);
  acc("getHours", "2001-09-09T01:46:39Z", "Test/Zone", 2); /* 1 s before 1000000000 */
  /* from the transition on, the footer: +2 in winter, +3 in summer */
  acc("getHours", "2001-09-09T01:46:40Z", "Test/Zone", 4);
  acc("getHours", "2030-01-15T00:00:00Z", "Test/Zone", 2);
  acc("getHours", "2030-07-15T00:00:00Z", "Test/Zone", 3);
  /* cached: still answers after the file is gone */
  assert_int_equal(unlink(path), 0);
  acc("getHours", "2030-07-15T00:00:00Z", "Test/Zone", 3);
  expect_error(call("getHours", 2, TS("2030-07-15T00:00:00Z"), S("Test/NotTZif")), CEL_ERR_INVALID,
               "unknown time zone 'Test/NotTZif'");
  /* "UTC" needs no file */
  acc("getHours", "2030-07-15T00:00:00Z", "UTC", 0);
  cel_tz_cache_clear();
  expect_error(call("getHours", 2, TS("2030-07-15T00:00:00Z"), S("Test/Zone")), CEL_ERR_INVALID,
               "unknown time zone");
  if (old) {
    setenv("TZDIR", old, 1);
    free(old);
  } else {
    unsetenv("TZDIR");
  }
  unlink(bad);
  rmdir(sub);
  rmdir(dir);
}

static void test_unknown_zone(void **state) {
  (void)state;
  static const char *bad[] = {"Mars/Olympus_Mons",
                              "../../etc/passwd",
                              "/etc/passwd",
                              "America/../America/Los_Angeles",
                              "America//Los_Angeles",
                              "America/Los Angeles",
                              "+24:00",
                              "+05:60",
                              "5:3",
                              "+05:30:00",
                              ":30",
                              "+123:00",
                              "UTC+1",
                              "America/",
                              "."};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    kv *v = call("getHours", 2, TS("2024-01-01T00:00:00Z"), S(bad[i]));
    if (v->kind != KV_ERROR) fail_msg("zone '%s' was accepted", bad[i]);
    char want[128];
    snprintf(want, sizeof want, "unknown time zone '%s'", bad[i]);
    expect_error(v, CEL_ERR_INVALID, want);
  }
}

static void test_accessor_type_errors(void **state) {
  (void)state;
  expect_error(call("getFullYear", 1, DUR("1s")), CEL_ERR_NO_OVERLOAD,
               "no matching overload for 'getFullYear' applied to (google.protobuf.Duration)");
  expect_error(call("getDayOfWeek", 1, DUR("1s")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(call("getHours", 2, DUR("1s"), S("UTC")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(call("getHours", 2, TS("2024-01-01T00:00:00Z"), kv_int(5)), CEL_ERR_NO_OVERLOAD,
               "(google.protobuf.Timestamp, int)");
  expect_error(call("getHours", 1, S("2024-01-01T00:00:00Z")), CEL_ERR_NO_OVERLOAD, NULL);
  expect_error(call("getMonth", 1, kv_int(0)), CEL_ERR_NO_OVERLOAD, NULL);
}

static void test_duration_accessors(void **state) {
  (void)state;
  /* conformance timestamps/duration_converters: totals, truncated toward zero */
  expect_int(call("getHours", 1, DUR("10000s")), 2);
  expect_int(call("getMinutes", 1, DUR("3730s")), 62);
  expect_int(call("getSeconds", 1, DUR("3730s")), 3730);
  expect_int(call("getHours", 1, DUR("3730s")), 1);
  expect_int(call("getMilliseconds", 1, DUR("123.321456789s")), 123321);
  expect_int(call("getMilliseconds", 1, DUR("1.5s")), 1500);
  expect_int(call("getHours", 1, DUR("-3730s")), -1);
  expect_int(call("getMinutes", 1, DUR("-3730s")), -62);
  expect_int(call("getSeconds", 1, DUR("-1.9s")), -1);
  expect_int(call("getMilliseconds", 1, DUR("-1.5009s")), -1500);
  expect_int(call("getMilliseconds", 1, DUR("999us")), 0);
  expect_int(call("getHours", 1, DUR("315576000000s")), 87660000);
  expect_int(call("getMilliseconds", 1, DUR("-315576000000.999999999s")), -315576000000999LL);
}

static void test_defs_table(void **state) {
  (void)state;
  static const char *names[] = {"timestamp", "duration",      "getFullYear",  "getMonth",
                                "getDate",   "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
                                "getHours",  "getMinutes",    "getSeconds",   "getMilliseconds"};
  assert_int_equal(cel_time_ndefs, sizeof names / sizeof names[0]);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const cel_fn_def *d = find_def(cel_time_defs, cel_time_ndefs, names[i]);
    assert_non_null(d);
    if (i < 2) {
      assert_int_equal(d->style, CEL_FN_GLOBAL);
      assert_int_equal(d->max_args, 1);
    } else {
      assert_int_equal(d->style, CEL_FN_MEMBER);
      assert_int_equal(d->min_args, 1);
      assert_int_equal(d->max_args, 2);
    }
  }
}

static int teardown_cache(void **state) {
  (void)state;
  cel_tz_cache_clear();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ts_parse_format),
      cmocka_unit_test(test_ts_parse_rejects),
      cmocka_unit_test(test_ts_range),
      cmocka_unit_test(test_ts_date_only),
      cmocka_unit_test(test_ts_format_buffer),
      cmocka_unit_test(test_dur_parse),
      cmocka_unit_test(test_dur_parse_rejects),
      cmocka_unit_test(test_dur_format),
      cmocka_unit_test(test_dur_koreo),
      cmocka_unit_test(test_identity_and_overloads),
      cmocka_unit_test(test_arith),
      cmocka_unit_test(test_arith_range),
      cmocka_unit_test(test_accessors_utc),
      cmocka_unit_test(test_accessors_fixed_offset),
      cmocka_unit_test(test_accessors_iana),
      cmocka_unit_test(test_posix_footer_beyond_table),
      cmocka_unit_test(test_posix_rules),
      cmocka_unit_test(test_tzdir_and_tzif),
      cmocka_unit_test(test_unknown_zone),
      cmocka_unit_test(test_accessor_type_errors),
      cmocka_unit_test(test_duration_accessors),
      cmocka_unit_test(test_defs_table),
  };
  return cmocka_run_group_tests(tests, NULL, teardown_cache);
}
