/*
 * tests/kubesim/util.c: small helpers for kubesim: copy-on-write edits of
 * immutable `kv` maps, JSON equality, time, UUIDs, base64, a string
 * buffer, kubectl's human durations, URL decoding and metav1.Status
 * construction.
 */
#include "kubesim.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

kv *ku_map_copy(const kv *m) {
  size_t n = (m && m->kind == KV_MAP) ? kv_len(m) : 0;
  kv *r = kv_map_new(n + 1);
  for (size_t i = 0; i < n; i++)
    kv_map_set(r, kv_ref(kv_map_key_at(m, i)), kv_ref(kv_map_val_at(m, i)));
  return r;
}

kv *ku_with(const kv *m, const char *key, kv *val) {
  kv *r = ku_map_copy(m);
  kv_map_set_str(r, key, val);
  return r;
}

kv *ku_without(const kv *m, const char *key) {
  size_t n = (m && m->kind == KV_MAP) ? kv_len(m) : 0;
  kv *r = kv_map_new(n);
  for (size_t i = 0; i < n; i++) {
    kv *k = kv_map_key_at(m, i);
    if (k->kind == KV_STRING && strcmp(kv_str(k), key) == 0) continue;
    kv_map_set(r, kv_ref(k), kv_ref(kv_map_val_at(m, i)));
  }
  return r;
}

kv *ku_get(const kv *m, const char *key) {
  if (!m || m->kind != KV_MAP) return NULL;
  return kv_map_get_str(m, key);
}

const char *ku_str(const kv *m, const char *key) {
  kv *v = ku_get(m, key);
  return (v && v->kind == KV_STRING) ? kv_str(v) : NULL;
}

kv *ku_path(const kv *m, const char *dotted) {
  const kv *cur = m;
  const char *p = dotted;
  while (cur && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (cur->kind != KV_MAP) return NULL;
    cur = kv_map_get_strn(cur, p, n);
    p = dot ? dot + 1 : p + n;
  }
  return (kv *)cur;
}

kv *ku_set_in(const kv *m, const char *const *keys, size_t n, kv *val) {
  if (n == 0) return val;
  kv *child = ku_get(m, keys[0]);
  kv *nv = ku_set_in(child, keys + 1, n - 1, val);
  return ku_with(m, keys[0], nv);
}

kv *ku_del_in(const kv *m, const char *const *keys, size_t n) {
  if (!m || m->kind != KV_MAP || n == 0) return m ? kv_ref((kv *)m) : kv_map_new(0);
  if (n == 1) return ku_without(m, keys[0]);
  kv *child = ku_get(m, keys[0]);
  if (!child || child->kind != KV_MAP) return kv_ref((kv *)m);
  return ku_with(m, keys[0], ku_del_in(child, keys + 1, n - 1));
}

kv *ku_deep_copy(const kv *v) {
  if (v->kind == KV_LIST) {
    kv *r = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(r, ku_deep_copy(kv_list_at(v, i)));
    return r;
  }
  if (v->kind == KV_MAP) {
    kv *r = kv_map_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_map_set(r, kv_ref(kv_map_key_at(v, i)), ku_deep_copy(kv_map_val_at(v, i)));
    return r;
  }
  return kv_ref((kv *)v);
}

static bool is_num(const kv *v) {
  return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
}
static double num_of(const kv *v) {
  return v->kind == KV_INT ? (double)v->u.i : v->kind == KV_UINT ? (double)v->u.u : v->u.d;
}

bool ku_json_equal(const kv *a, const kv *b) {
  if (a == b) return true;
  if (!a || !b) return false;
  if (is_num(a) && is_num(b)) {
    if (a->kind == KV_INT && b->kind == KV_INT) return a->u.i == b->u.i;
    return num_of(a) == num_of(b);
  }
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case KV_NULL: return true;
  case KV_BOOL: return a->u.b == b->u.b;
  case KV_STRING:
  case KV_BYTES: return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
  case KV_LIST:
    if (kv_len(a) != kv_len(b)) return false;
    for (size_t i = 0; i < kv_len(a); i++)
      if (!ku_json_equal(kv_list_at(a, i), kv_list_at(b, i))) return false;
    return true;
  case KV_MAP:
    if (kv_len(a) != kv_len(b)) return false;
    for (size_t i = 0; i < kv_len(a); i++) {
      kv *bv = kv_map_get(b, kv_map_key_at(a, i));
      if (!bv || !ku_json_equal(kv_map_val_at(a, i), bv)) return false;
    }
    return true;
  default: return kv_equal_strict(a, b, false);
  }
}

bool ku_as_int(const kv *v, int64_t *out) {
  if (!v) return false;
  if (v->kind == KV_INT) {
    *out = v->u.i;
    return true;
  }
  if (v->kind == KV_UINT && v->u.u <= INT64_MAX) {
    *out = (int64_t)v->u.u;
    return true;
  }
  if (v->kind == KV_DOUBLE && v->u.d == (double)(int64_t)v->u.d) {
    *out = (int64_t)v->u.d;
    return true;
  }
  return false;
}

char *ku_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) kv_oom();
  va_end(ap);
  return s;
}

kv *ku_kvfmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) kv_oom();
  return kv_string_take(s, (size_t)n);
}

void ku_now_rfc3339(char out[32]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool ku_parse_rfc3339(const char *s, int64_t *sec) {
  struct tm tm = {0};
  const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!e) return false;
  if (*e == '.')
    for (e++; *e >= '0' && *e <= '9'; e++)
      ;
  int64_t off = 0;
  if (*e == 'Z' || *e == 'z') {
    e++;
  } else if (*e == '+' || *e == '-') {
    int hh = 0, mm = 0;
    if (sscanf(e + 1, "%2d:%2d", &hh, &mm) != 2) return false;
    off = (hh * 3600 + mm * 60) * (*e == '+' ? 1 : -1);
    e += 6;
  } else {
    return false;
  }
  if (*e) return false;
  *sec = (int64_t)timegm(&tm) - off;
  return true;
}

uint64_t ku_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ku_uuid(char out[37]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) abort();
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

void ku_rand_alnum(char *out, size_t n) {
  /* the alphabet of apimachinery's utilrand.String (no vowels, no 0/1/3) */
  static const char al[] = "bcdfghjklmnpqrstvwxz2456789";
  unsigned char b[64];
  while (n) {
    size_t k = n < sizeof b ? n : sizeof b;
    if (RAND_bytes(b, (int)k) != 1) abort();
    for (size_t i = 0; i < k; i++)
      *out++ = al[b[i] % (sizeof al - 1)];
    n -= k;
  }
  *out = 0;
}

static const char b64al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ku_b64(const void *p, size_t n) {
  const unsigned char *s = p;
  char *o = malloc(4 * ((n + 2) / 3) + 1);
  if (!o) kv_oom();
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
    if (i + 2 < n) v |= s[i + 2];
    o[j++] = b64al[(v >> 18) & 63];
    o[j++] = b64al[(v >> 12) & 63];
    o[j++] = i + 1 < n ? b64al[(v >> 6) & 63] : '=';
    o[j++] = i + 2 < n ? b64al[v & 63] : '=';
  }
  o[j] = 0;
  return o;
}

unsigned char *ku_b64dec(const char *s, size_t n, size_t *outlen) {
  unsigned char *o = malloc(n / 4 * 3 + 4);
  if (!o) kv_oom();
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  size_t j = 0, cnt = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int v;
    if (c == '=') {
      pad++;
      cnt++;
      continue;
    }
    if (pad) goto bad;
    const char *q = c ? strchr(b64al, c) : NULL;
    if (!q) goto bad;
    v = (int)(q - b64al);
    cnt++;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[j++] = (unsigned char)(acc >> bits);
    }
  }
  if (cnt % 4 != 0 || pad > 2) goto bad;
  *outlen = j;
  o[j] = 0;
  return o;
bad:
  free(o);
  return NULL;
}

char *ku_json(const kv *v, size_t *len) { return kv_json_write(v, 0, len); }

void ku_buf_add(ku_buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc < b->n + n + 1)
      nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) kv_oom();
    b->p = p;
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void ku_buf_puts(ku_buf *b, const char *s) { ku_buf_add(b, s, strlen(s)); }

void ku_buf_printf(ku_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) kv_oom();
  ku_buf_add(b, s, (size_t)n);
  free(s);
}

void ku_human_duration(int64_t sec, char out[32]) {
  if (sec < -1) {
    snprintf(out, 32, "<invalid>");
    return;
  }
  if (sec < 0) sec = 0;
  if (sec < 120) {
    snprintf(out, 32, "%llds", (long long)sec);
    return;
  }
  int64_t min = sec / 60;
  if (min < 10) {
    if (sec % 60 == 0)
      snprintf(out, 32, "%lldm", (long long)min);
    else
      snprintf(out, 32, "%lldm%llds", (long long)min, (long long)(sec % 60));
    return;
  }
  if (min < 180) {
    snprintf(out, 32, "%lldm", (long long)min);
    return;
  }
  int64_t h = sec / 3600;
  if (h < 8) {
    if (min % 60 == 0)
      snprintf(out, 32, "%lldh", (long long)h);
    else
      snprintf(out, 32, "%lldh%lldm", (long long)h, (long long)(min % 60));
  } else if (h < 48) {
    snprintf(out, 32, "%lldh", (long long)h);
  } else if (h < 24 * 8) {
    if (h % 24 == 0)
      snprintf(out, 32, "%lldd", (long long)(h / 24));
    else
      snprintf(out, 32, "%lldd%lldh", (long long)(h / 24), (long long)(h % 24));
  } else if (h < 24 * 365 * 2) {
    snprintf(out, 32, "%lldd", (long long)(h / 24));
  } else if (h < 24 * 365 * 8) {
    int64_t dy = (h / 24) % 365;
    if (dy == 0)
      snprintf(out, 32, "%lldy", (long long)(h / 24 / 365));
    else
      snprintf(out, 32, "%lldy%lldd", (long long)(h / 24 / 365), (long long)dy);
  } else {
    snprintf(out, 32, "%lldy", (long long)(h / 24 / 365));
  }
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *ku_urldecode(const char *s, size_t n, bool plus) {
  char *o = malloc(n + 1);
  if (!o) kv_oom();
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
      o[j++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
      i += 2;
    } else if (plus && s[i] == '+') {
      o[j++] = ' ';
    } else {
      o[j++] = s[i];
    }
  }
  o[j] = 0;
  return o;
}

/* ---- metav1.Status ------------------------------------------------------ */

kv *ks_status(int code, const char *reason, kv *details, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) kv_oom();
  va_end(ap);
  kv *st = kv_map_new(8);
  kv_map_set_str(st, "kind", kv_cstring("Status"));
  kv_map_set_str(st, "apiVersion", kv_cstring("v1"));
  kv_map_set_str(st, "metadata", kv_map_new(0));
  kv_map_set_str(st, "status", kv_cstring("Failure"));
  kv_map_set_str(st, "message", kv_string_take(msg, strlen(msg)));
  if (reason && *reason) kv_map_set_str(st, "reason", kv_cstring(reason));
  if (details) kv_map_set_str(st, "details", details);
  kv_map_set_str(st, "code", kv_int(code));
  return st;
}

kv *ks_details(const char *name, const char *group, const char *kind) {
  kv *d = kv_map_new(3);
  if (name && *name) kv_map_set_str(d, "name", kv_cstring(name));
  if (group && *group) kv_map_set_str(d, "group", kv_cstring(group));
  if (kind && *kind) kv_map_set_str(d, "kind", kv_cstring(kind));
  return d;
}

int ks_status_code(const kv *status) {
  int64_t c = 500;
  ku_as_int(ku_get(status, "code"), &c);
  return (int)c;
}
