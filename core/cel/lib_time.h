/*
 * core/cel/lib_time.h: additions of the time library (lib_time.c, tz.c)
 * beyond what cel_impl.h declares: the civil-calendar helpers shared by
 * the two files, time-zone resolution for the timestamp accessors, and the
 * Koreo dialect's variants of timestamp() and duration().  Not installed.
 */
#ifndef KOREO_CEL_LIB_TIME_H
#define KOREO_CEL_LIB_TIME_H

#include "cel_impl.h"

/* ---- civil calendar (proleptic Gregorian, any int64 day) ----------------
 * Days since 1970-01-01 for year `y`, month `m` (1-12), day `d` (1-31), and
 * back.  Valid for every year that fits in an int64 day count. */
static inline int64_t cel_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                   /* [0, 399] */
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
  return era * 146097 + doe - 719468;
}

static inline void cel_civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static inline bool cel_is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Floor division / modulo for int64 (b > 0). */
static inline int64_t cel_floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}
static inline int64_t cel_floor_mod(int64_t a, int64_t b) { return a - cel_floor_div(a, b) * b; }

/* ---- time zones (tz.c) ----------------------------------------------------
 * Resolve the time zone `name` (`len` bytes, need not be NUL-terminated) and
 * give its UTC offset, in seconds east of UTC, at the instant `sec` (Unix
 * seconds, UTC).  Accepted names (CEL language definition, "Timezones"):
 *   - "" and "UTC": offset 0 (built in, no file needed);
 *   - fixed offsets "[+|-]h[h]:mm" ("+05:30", "-08:00", "02:00" = +2h),
 *     hours 0-23, minutes 0-59;
 *   - IANA names ("America/Los_Angeles", "US/Central", "Etc/GMT+5"), read
 *     from the TZif files under $TZDIR or /usr/share/zoneinfo (RFC 8536,
 *     v1 to v4; instants after the last transition follow the POSIX TZ rule
 *     in the file's footer).  Parsed zones are cached for the process
 *     (not thread-safe: one thread per process, see value.h).
 * Returns true and sets *off, or false when the name is unknown or
 * malformed (no file, bad TZif data, path tricks such as "../x"). */
bool cel_tz_offset(const char *name, size_t len, int64_t sec, int32_t *off);

/* Free every cached zone (tests, orderly shutdown). */
void cel_tz_cache_clear(void);

/* Parse a POSIX TZ rule string ("PST8PDT,M3.2.0,M11.1.0", "<+0545>-5:45",
 * "AEST-10AEDT,M10.1.0,M4.1.0/3") and give its offset at `sec`.  Exposed
 * for tests; returns false on a malformed string. */
bool cel_tz_posix_offset(const char *rule, int64_t sec, int32_t *off);

/* ---- Koreo dialect variants (lib_time.c) ----------------------------------
 * Upstream Koreo (cel-python 0.3.0) differs from standard CEL here:
 *   - timestamp(string) parses with pendulum: besides RFC 3339 it accepts a
 *     date alone ("2024-01-01", midnight UTC), a date-time without offset
 *     (UTC) and a space instead of 'T';
 *   - timestamp(int) does not exist (no matching overload);
 *   - duration(string) also accepts the unit "d" (86400 s), every number
 *     needs a unit (a bare "0" is an error) and "µs" is not accepted;
 *   - duration(int) gives that many seconds.
 * The Koreo environment registers this table after cel_time_defs so that
 * these two entries replace the standard ones. */
extern const cel_fn_def cel_time_koreo_defs[];
extern const size_t cel_time_koreo_ndefs;

#endif
