/*
 * core/cel/tz.c: time zones for CEL's timestamp accessors
 * (getHours('America/Los_Angeles') ...): fixed offsets, IANA zones read from
 * TZif files (RFC 8536) and POSIX TZ rules (the TZif footer, IEEE 1003.1
 * section 8.3 "TZ", with the RFC 8536 section 3.3.1 extensions).
 *
 * Deliberately no setenv("TZ")/localtime(): those use process-global state.
 * Loaded zones are kept in a process-global cache (single-threaded, as every
 * Koreo process is).
 */
#include "lib_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- POSIX TZ rules -------------------------------------------------------- */

typedef struct tz_rule_date {
  char kind;    /* 'J': Julian day 1-365 without Feb 29; 'N': day 0-365; 'M' */
  int n;        /* J / N day */
  int m, w, d;  /* M: month 1-12, week 1-5 (5 = last), weekday 0-6 (0 = Sunday) */
  int32_t time; /* local time of day of the change, seconds (may be < 0 or > 24h) */
} tz_rule_date;

typedef struct tz_posix {
  int32_t std_off; /* seconds east of UTC */
  int32_t dst_off;
  bool has_dst;
  tz_rule_date start, end; /* DST starts (in standard time), ends (in DST) */
} tz_posix;

/* A zone abbreviation: <...> or a run of letters. */
static bool posix_name(const char **sp) {
  const char *s = *sp;
  if (*s == '<') {
    s++;
    while (*s && *s != '>')
      s++;
    if (*s != '>' || s - *sp < 2) return false;
    *sp = s + 1;
    return true;
  }
  while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
    s++;
  if (s - *sp < 3) return false;
  *sp = s;
  return true;
}

static bool posix_num(const char **sp, int max, int *out) {
  const char *s = *sp;
  if (*s < '0' || *s > '9') return false;
  int v = 0;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + (*s - '0');
    if (v > max) return false;
    s++;
  }
  *sp = s;
  *out = v;
  return true;
}

/* [+|-]hh[:mm[:ss]] -> seconds (sign as written). */
static bool posix_time(const char **sp, int max_hours, int32_t *out) {
  const char *s = *sp;
  int sign = 1;
  if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
  int h, m = 0, sec = 0;
  if (!posix_num(&s, max_hours, &h)) return false;
  if (*s == ':') {
    s++;
    if (!posix_num(&s, 59, &m)) return false;
    if (*s == ':') {
      s++;
      if (!posix_num(&s, 59, &sec)) return false;
    }
  }
  *sp = s;
  *out = sign * (h * 3600 + m * 60 + sec);
  return true;
}

static bool posix_rule_date(const char **sp, tz_rule_date *r) {
  const char *s = *sp;
  memset(r, 0, sizeof *r);
  if (*s == 'J') {
    s++;
    r->kind = 'J';
    if (!posix_num(&s, 365, &r->n) || r->n < 1) return false;
  } else if (*s == 'M') {
    s++;
    r->kind = 'M';
    if (!posix_num(&s, 12, &r->m) || r->m < 1 || *s++ != '.') return false;
    if (!posix_num(&s, 5, &r->w) || r->w < 1 || *s++ != '.') return false;
    if (!posix_num(&s, 6, &r->d)) return false;
  } else {
    r->kind = 'N';
    if (!posix_num(&s, 365, &r->n)) return false;
  }
  r->time = 7200;
  if (*s == '/') {
    s++;
    /* RFC 8536 3.3.1: the time may be negative and up to 167 hours. */
    if (!posix_time(&s, 167, &r->time)) return false;
  }
  *sp = s;
  return true;
}

static bool posix_parse(const char *s, tz_posix *p) {
  memset(p, 0, sizeof *p);
  int32_t v;
  if (!posix_name(&s) || !posix_time(&s, 24, &v)) return false;
  p->std_off = -v; /* POSIX offsets are positive west of Greenwich */
  if (*s == '\0') return true;
  if (!posix_name(&s)) return false;
  p->has_dst = true;
  p->dst_off = p->std_off + 3600;
  if (*s && *s != ',') {
    if (!posix_time(&s, 24, &v)) return false;
    p->dst_off = -v;
  }
  if (*s == '\0') {
    /* No rule: the customary default, US rules since 2007. */
    p->start = (tz_rule_date){.kind = 'M', .m = 3, .w = 2, .d = 0, .time = 7200};
    p->end = (tz_rule_date){.kind = 'M', .m = 11, .w = 1, .d = 0, .time = 7200};
    return true;
  }
  if (*s++ != ',' || !posix_rule_date(&s, &p->start)) return false;
  if (*s++ != ',' || !posix_rule_date(&s, &p->end)) return false;
  return *s == '\0';
}

/* Local seconds (since the epoch, in the zone's local time) of the rule's
 * change in year `y`. */
static int64_t rule_local_secs(const tz_rule_date *r, int64_t y) {
  int64_t jan1 = cel_days_from_civil(y, 1, 1);
  int64_t day;
  switch (r->kind) {
  case 'J': day = jan1 + r->n - 1 + (cel_is_leap(y) && r->n >= 60); break;
  case 'N': day = jan1 + r->n; break;
  default: {
    int64_t first = cel_days_from_civil(y, r->m, 1);
    int64_t wd = cel_floor_mod(first + 4, 7); /* 1970-01-01 was a Thursday */
    day = first + (r->d - wd + 7) % 7 + (int64_t)(r->w - 1) * 7;
    int64_t next =
        r->m == 12 ? cel_days_from_civil(y + 1, 1, 1) : cel_days_from_civil(y, r->m + 1, 1);
    while (day >= next)
      day -= 7;
  }
  }
  return day * 86400 + r->time;
}

static int32_t posix_offset(const tz_posix *p, int64_t t) {
  if (!p->has_dst) return p->std_off;
  int64_t y;
  int m, d;
  cel_civil_from_days(cel_floor_div(t + p->std_off, 86400), &y, &m, &d);
  int64_t start = rule_local_secs(&p->start, y) - p->std_off;
  int64_t end = rule_local_secs(&p->end, y) - p->dst_off;
  bool dst;
  if (start < end)
    dst = t >= start && t < end; /* northern hemisphere */
  else
    dst = !(t >= end && t < start); /* southern: DST spans the new year */
  return dst ? p->dst_off : p->std_off;
}

/* See lib_time.h. */
bool cel_tz_posix_offset(const char *rule, int64_t sec, int32_t *off) {
  tz_posix p;
  if (!rule || !posix_parse(rule, &p)) return false;
  *off = posix_offset(&p, sec);
  return true;
}

/* ---- TZif files ---------------------------------------------------------- */

typedef struct tz_zone {
  struct tz_zone *next;
  char *name;
  size_t ntrans;
  int64_t *trans; /* transition instants, ascending */
  uint8_t *tidx;  /* type in force from trans[i] on */
  size_t ntypes;
  int32_t *utoff;  /* per type, seconds east of UTC */
  bool has_footer; /* footer holds a usable POSIX rule */
  tz_posix footer;
} tz_zone;

static tz_zone *g_zones;

static void zone_free(tz_zone *z) {
  if (!z) return;
  free(z->name);
  free(z->trans);
  free(z->tidx);
  free(z->utoff);
  free(z);
}

/* See lib_time.h. */
void cel_tz_cache_clear(void) {
  while (g_zones) {
    tz_zone *n = g_zones->next;
    zone_free(g_zones);
    g_zones = n;
  }
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* Parse a TZif file (RFC 8536 section 3) into `z`.  Uses the 64-bit data
 * block of version 2+ files and the 32-bit block of version 1 files. */
static bool tzif_parse(const uint8_t *buf, size_t len, tz_zone *z) {
  if (len < 44 || memcmp(buf, "TZif", 4) != 0) return false;
  const uint8_t version = buf[4];
  const uint8_t *h = buf;
  size_t tsize = 4;
  uint64_t cnt[6];
  for (int i = 0; i < 6; i++)
    cnt[i] = be32(h + 20 + 4 * i);
  /* isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
  uint64_t block = cnt[3] * 5 + cnt[4] * 6 + cnt[5] + cnt[2] * 8 + cnt[1] + cnt[0];
  if (version >= '2') {
    if (44 + block + 44 > len) return false;
    h = buf + 44 + block;
    if (memcmp(h, "TZif", 4) != 0) return false;
    for (int i = 0; i < 6; i++)
      cnt[i] = be32(h + 20 + 4 * i);
    tsize = 8;
    block = cnt[3] * 9 + cnt[4] * 6 + cnt[5] + cnt[2] * 12 + cnt[1] + cnt[0];
  }
  const uint64_t timecnt = cnt[3], typecnt = cnt[4];
  if (typecnt == 0 || typecnt > 256) return false;
  const size_t hoff = (size_t)(h - buf);
  if (hoff + 44 + block > len) return false;
  const uint8_t *p = h + 44;

  z->ntrans = (size_t)timecnt;
  z->ntypes = (size_t)typecnt;
  z->trans = malloc((timecnt ? timecnt : 1) * sizeof *z->trans);
  z->tidx = malloc(timecnt ? timecnt : 1);
  z->utoff = malloc(typecnt * sizeof *z->utoff);
  if (!z->trans || !z->tidx || !z->utoff) kv_oom();
  for (size_t i = 0; i < timecnt; i++, p += tsize) {
    z->trans[i] = tsize == 8 ? (int64_t)be64(p) : (int64_t)(int32_t)be32(p);
    if (i && z->trans[i] <= z->trans[i - 1]) return false;
  }
  for (size_t i = 0; i < timecnt; i++, p++) {
    if (*p >= typecnt) return false;
    z->tidx[i] = *p;
  }
  for (size_t i = 0; i < typecnt; i++, p += 6)
    z->utoff[i] = (int32_t)be32(p);

  /* Footer (version 2+): "\n" POSIX-TZ-string "\n"; may be empty. */
  if (version >= '2') {
    const uint8_t *f = h + 44 + block, *end = buf + len;
    if (f < end && *f == '\n') {
      const uint8_t *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
      if (nl && nl > f + 1 && nl - f < 256) {
        char tzs[256];
        memcpy(tzs, f + 1, (size_t)(nl - f - 1));
        tzs[nl - f - 1] = '\0';
        z->has_footer = posix_parse(tzs, &z->footer);
      }
    }
  }
  return true;
}

static int32_t zone_offset(const tz_zone *z, int64_t t) {
  if (z->ntrans == 0) return z->has_footer ? posix_offset(&z->footer, t) : z->utoff[0];
  /* RFC 8536 3.2: before the first transition, local time type 0. */
  if (t < z->trans[0]) return z->utoff[0];
  if (t >= z->trans[z->ntrans - 1] && z->has_footer) return posix_offset(&z->footer, t);
  size_t lo = 0, hi = z->ntrans; /* find the last i with trans[i] <= t */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return z->utoff[z->tidx[lo]];
}

/* A name that is safe to append to the zoneinfo directory: letters, digits,
 * '_', '-', '+', '.', '/' components, no empty, "." or ".." component. */
static bool zone_name_ok(const char *s, size_t n) {
  if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/') return false;
  size_t comp = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '/') {
      if (comp == 0) return false;
      if (s[i - comp] == '.' && (comp == 1 || (comp == 2 && s[i - 1] == '.'))) return false;
      comp = 0;
      continue;
    }
    char ch = s[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-' || ch == '+' || ch == '.'))
      return false;
    comp++;
  }
  return true;
}

static const tz_zone *zone_load(const char *name, size_t n) {
  for (tz_zone *z = g_zones; z; z = z->next)
    if (strlen(z->name) == n && memcmp(z->name, name, n) == 0) return z;
  if (!zone_name_ok(name, n)) return NULL;

  const char *dir = getenv("TZDIR");
  if (!dir || !*dir) dir = "/usr/share/zoneinfo";
  char path[4096];
  int pl = snprintf(path, sizeof path, "%s/%.*s", dir, (int)n, name);
  if (pl < 0 || (size_t)pl >= sizeof path) return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  enum { MAX_TZIF = 1 << 20 };
  uint8_t *buf = malloc(MAX_TZIF);
  if (!buf) kv_oom();
  size_t len = fread(buf, 1, MAX_TZIF, f);
  bool too_big = len == MAX_TZIF;
  fclose(f);

  tz_zone *z = calloc(1, sizeof *z);
  if (!z) kv_oom();
  bool ok = !too_big && tzif_parse(buf, len, z);
  free(buf);
  if (!ok) {
    zone_free(z);
    return NULL;
  }
  z->name = strndup(name, n);
  if (!z->name) kv_oom();
  z->next = g_zones;
  g_zones = z;
  return z;
}

/* "[+|-]h[h]:mm" -> seconds east of UTC. */
static bool fixed_offset(const char *s, size_t n, int32_t *off) {
  size_t i = 0;
  int sign = 1;
  if (i < n && (s[i] == '+' || s[i] == '-')) sign = s[i++] == '-' ? -1 : 1;
  size_t hstart = i;
  int h = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9' && i - hstart < 2)
    h = h * 10 + (s[i++] - '0');
  if (i == hstart || i >= n || s[i] != ':' || n - i != 3) return false;
  if (s[i + 1] < '0' || s[i + 1] > '9' || s[i + 2] < '0' || s[i + 2] > '9') return false;
  int m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
  if (h > 23 || m > 59) return false;
  *off = sign * (h * 3600 + m * 60);
  return true;
}

/* See lib_time.h: "", "UTC", fixed "[+|-]h[h]:mm", else an IANA name. */
bool cel_tz_offset(const char *name, size_t len, int64_t sec, int32_t *off) {
  if (len == 0 || (len == 3 && memcmp(name, "UTC", 3) == 0)) {
    *off = 0;
    return true;
  }
  if (memchr(name, ':', len)) return fixed_offset(name, len, off);
  const tz_zone *z = zone_load(name, len);
  if (!z) return false;
  *off = zone_offset(z, sec);
  return true;
}
