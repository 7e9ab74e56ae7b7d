/*
 * core/value.c: the `kv` value model: construction, reference counting,
 * list and map builders (insertion-ordered maps with a hash index for
 * larger maps), key equality, strict equality, UTF-8 helpers, the
 * shortest round-trip double formatter and the string builder (kv_strbuf,
 * with its UTF-8 and base64 appenders).
 */
#include "koreo/value.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kv_oom(void) {
  fputs("koreo: out of memory\n", stderr);
  abort();
}

static kv g_null = {.refs = -1, .kind = KV_NULL};
static kv g_true = {.refs = -1, .kind = KV_BOOL, .u.b = true};
static kv g_false = {.refs = -1, .kind = KV_BOOL, .u.b = false};

static kv *kv_alloc(kv_kind k) {
  kv *v = calloc(1, sizeof *v);
  if (!v) kv_oom();
  v->refs = 1;
  v->kind = (uint8_t)k;
  return v;
}

kv *kv_null(void) { return &g_null; }
kv *kv_bool(bool b) { return b ? &g_true : &g_false; }

kv *kv_int(int64_t i) {
  kv *v = kv_alloc(KV_INT);
  v->u.i = i;
  return v;
}
kv *kv_uint(uint64_t u) {
  kv *v = kv_alloc(KV_UINT);
  v->u.u = u;
  return v;
}
kv *kv_double(double d) {
  kv *v = kv_alloc(KV_DOUBLE);
  v->u.d = d;
  return v;
}

static kv *kv_strlike(kv_kind k, const char *s, size_t len) {
  kv *v = kv_alloc(k);
  char *p = malloc(len + 1);
  if (!p) kv_oom();
  if (len) memcpy(p, s, len);
  p[len] = 0;
  v->u.s.ptr = p;
  v->u.s.len = len;
  return v;
}
kv *kv_string(const char *s, size_t len) { return kv_strlike(KV_STRING, s, len); }
kv *kv_cstring(const char *s) { return kv_strlike(KV_STRING, s, strlen(s)); }
kv *kv_string_take(char *s, size_t len) {
  kv *v = kv_alloc(KV_STRING);
  v->u.s.ptr = s;
  v->u.s.len = len;
  return v;
}
kv *kv_bytes(const void *p, size_t len) { return kv_strlike(KV_BYTES, p, len); }

kv *kv_timestamp(int64_t sec, int32_t nsec) {
  kv *v = kv_alloc(KV_TIMESTAMP);
  v->u.t.sec = sec;
  v->u.t.nsec = nsec;
  return v;
}
kv *kv_duration(int64_t sec, int32_t nsec) {
  kv *v = kv_alloc(KV_DURATION);
  v->u.t.sec = sec;
  v->u.t.nsec = nsec;
  return v;
}
kv *kv_type(const char *name) {
  kv *v = kv_strlike(KV_STRING, name, strlen(name));
  v->kind = KV_TYPE;
  return v;
}

kv *kv_error(int code, int32_t where, const char *fmt, ...) {
  kv *v = kv_alloc(KV_ERROR);
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) kv_oom();
  va_end(ap);
  v->u.err.msg = msg;
  v->u.err.where = where;
  v->u.err.code = code;
  return v;
}

kv *kv_list_new(size_t cap) {
  kv *v = kv_alloc(KV_LIST);
  if (cap) {
    v->u.list.items = malloc(cap * sizeof(kv *));
    if (!v->u.list.items) kv_oom();
  }
  v->u.list.cap = cap;
  return v;
}

void kv_list_push(kv *list, kv *item) {
  if (list->u.list.len == list->u.list.cap) {
    size_t nc = list->u.list.cap ? list->u.list.cap * 2 : 4;
    kv **n = realloc(list->u.list.items, nc * sizeof(kv *));
    if (!n) kv_oom();
    list->u.list.items = n;
    list->u.list.cap = nc;
  }
  list->u.list.items[list->u.list.len++] = item;
}

/* ---- maps ---------------------------------------------------------------
 * Entries live in two parallel arrays in insertion order.  Maps with more
 * than KV_MAP_LINEAR entries get an open-addressing hash index of entry
 * positions, rebuilt when it grows. */
enum { KV_MAP_LINEAR = 8 };

struct kv_map_index {
  size_t mask;
  uint32_t *slots; /* entry position + 1; 0 = empty */
};

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* Hash consistent with kv_key_equal. */
static uint64_t key_hash(const kv *k) {
  switch (k->kind) {
  case KV_STRING: return hash_bytes(k->u.s.ptr, k->u.s.len);
  case KV_BYTES: return hash_bytes(k->u.s.ptr, k->u.s.len) ^ 0x55;
  case KV_BOOL: return k->u.b ? 0x1234 : 0x4321;
  case KV_INT: return hash_u64((uint64_t)k->u.i);
  case KV_UINT: return hash_u64(k->u.u);
  case KV_DOUBLE: {
    double d = k->u.d;
    if (d >= -9.2e18 && d <= 9.2e18 && d == (double)(int64_t)d)
      return hash_u64((uint64_t)(int64_t)d);
    if (d >= 0 && d < 1.8e19 && d == (double)(uint64_t)d) return hash_u64((uint64_t)d);
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return hash_u64(bits);
  }
  case KV_NULL: return 0x9999;
  default: return hash_u64((uint64_t)(uintptr_t)k);
  }
}

static void map_index_build(kv *m) {
  size_t n = m->u.map.len, cap = 16;
  while (cap < n * 2)
    cap <<= 1;
  kv_map_index *ix = m->u.map.index;
  if (!ix) {
    ix = calloc(1, sizeof *ix);
    if (!ix) kv_oom();
    m->u.map.index = ix;
  } else {
    free(ix->slots);
  }
  ix->slots = calloc(cap, sizeof(uint32_t));
  if (!ix->slots) kv_oom();
  ix->mask = cap - 1;
  for (size_t i = 0; i < n; i++) {
    size_t h = key_hash(m->u.map.keys[i]) & ix->mask;
    while (ix->slots[h])
      h = (h + 1) & ix->mask;
    ix->slots[h] = (uint32_t)(i + 1);
  }
}

kv *kv_map_new(size_t cap) {
  kv *v = kv_alloc(KV_MAP);
  if (cap) {
    v->u.map.keys = malloc(cap * sizeof(kv *));
    v->u.map.vals = malloc(cap * sizeof(kv *));
    if (!v->u.map.keys || !v->u.map.vals) kv_oom();
  }
  v->u.map.cap = cap;
  return v;
}

static bool num_equal(const kv *a, const kv *b) {
  /* int/uint/double compared by mathematical value */
  if (a->kind == b->kind) {
    switch (a->kind) {
    case KV_INT: return a->u.i == b->u.i;
    case KV_UINT: return a->u.u == b->u.u;
    default: return a->u.d == b->u.d;
    }
  }
  if (a->kind == KV_INT && b->kind == KV_UINT) return a->u.i >= 0 && (uint64_t)a->u.i == b->u.u;
  if (a->kind == KV_UINT && b->kind == KV_INT) return b->u.i >= 0 && (uint64_t)b->u.i == a->u.u;
  const kv *d = a->kind == KV_DOUBLE ? a : b, *o = a->kind == KV_DOUBLE ? b : a;
  if (o->kind == KV_INT) {
    if (!(d->u.d >= -9223372036854775808.0 && d->u.d < 9223372036854775808.0)) return false;
    return (double)(int64_t)d->u.d == d->u.d && (int64_t)d->u.d == o->u.i;
  }
  if (!(d->u.d >= 0 && d->u.d < 18446744073709551616.0)) return false;
  return (double)(uint64_t)d->u.d == d->u.d && (uint64_t)d->u.d == o->u.u;
}

static bool is_num(const kv *v) {
  return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
}

bool kv_key_equal(const kv *a, const kv *b) {
  if (a == b) return true;
  if (is_num(a) && is_num(b)) return num_equal(a, b);
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case KV_STRING:
  case KV_BYTES: return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
  case KV_BOOL: return a->u.b == b->u.b;
  case KV_NULL: return true;
  default: return false;
  }
}

static ptrdiff_t map_find(const kv *m, const kv *key) {
  size_t n = m->u.map.len;
  if (m->u.map.index) {
    const kv_map_index *ix = m->u.map.index;
    size_t h = key_hash(key) & ix->mask;
    while (ix->slots[h]) {
      size_t i = ix->slots[h] - 1;
      if (kv_key_equal(m->u.map.keys[i], key)) return (ptrdiff_t)i;
      h = (h + 1) & ix->mask;
    }
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (kv_key_equal(m->u.map.keys[i], key)) return (ptrdiff_t)i;
  return -1;
}

kv *kv_map_get(const kv *map, const kv *key) {
  if (!map || map->kind != KV_MAP) return NULL;
  ptrdiff_t i = map_find(map, key);
  return i < 0 ? NULL : map->u.map.vals[i];
}

kv *kv_map_get_strn(const kv *map, const char *key, size_t len) {
  if (!map || map->kind != KV_MAP) return NULL;
  if (map->u.map.index) {
    kv tmp = {.refs = -1, .kind = KV_STRING};
    tmp.u.s.ptr = (char *)key;
    tmp.u.s.len = len;
    return kv_map_get(map, &tmp);
  }
  for (size_t i = 0; i < map->u.map.len; i++) {
    const kv *k = map->u.map.keys[i];
    if (k->kind == KV_STRING && k->u.s.len == len && memcmp(k->u.s.ptr, key, len) == 0)
      return map->u.map.vals[i];
  }
  return NULL;
}

void kv_map_set(kv *m, kv *key, kv *val) {
  ptrdiff_t i = map_find(m, key);
  if (i >= 0) {
    kv_unref(m->u.map.vals[i]);
    m->u.map.vals[i] = val;
    kv_unref(key);
    return;
  }
  if (m->u.map.len == m->u.map.cap) {
    size_t nc = m->u.map.cap ? m->u.map.cap * 2 : 4;
    kv **k = realloc(m->u.map.keys, nc * sizeof(kv *));
    if (!k) kv_oom();
    m->u.map.keys = k;
    kv **v = realloc(m->u.map.vals, nc * sizeof(kv *));
    if (!v) kv_oom();
    m->u.map.vals = v;
    m->u.map.cap = nc;
  }
  size_t n = m->u.map.len++;
  m->u.map.keys[n] = key;
  m->u.map.vals[n] = val;
  if (m->u.map.index) {
    kv_map_index *ix = m->u.map.index;
    if ((n + 1) * 2 > ix->mask + 1) {
      map_index_build(m);
    } else {
      size_t h = key_hash(key) & ix->mask;
      while (ix->slots[h])
        h = (h + 1) & ix->mask;
      ix->slots[h] = (uint32_t)(n + 1);
    }
  } else if (m->u.map.len > KV_MAP_LINEAR) {
    map_index_build(m);
  }
}

void kv_map_set_str(kv *map, const char *key, kv *val) { kv_map_set(map, kv_cstring(key), val); }

void kv_set_pos(kv *v, const char *file, uint32_t line, uint32_t col) {
  if (v->refs < 0) return;
  kv_srcpos *p = (kv_srcpos *)v->pos;
  if (!p) {
    p = malloc(sizeof *p);
    if (!p) kv_oom();
    v->pos = p;
  }
  p->file = file;
  p->line = line;
  p->col = col;
}

/* Interned file names: a small linked list, kept until exit. */
struct interned {
  struct interned *next;
  char name[];
};
static struct interned *g_files;

const char *kv_intern_file(const char *name) {
  if (!name) return NULL;
  for (struct interned *i = g_files; i; i = i->next)
    if (strcmp(i->name, name) == 0) return i->name;
  size_t n = strlen(name);
  struct interned *i = malloc(sizeof *i + n + 1);
  if (!i) kv_oom();
  memcpy(i->name, name, n + 1);
  i->next = g_files;
  g_files = i;
  return i->name;
}

void kv_unref(kv *v) {
  if (!v || v->refs < 0) return;
  if (--v->refs > 0) return;
  switch (v->kind) {
  case KV_STRING:
  case KV_BYTES:
  case KV_TYPE: free(v->u.s.ptr); break;
  case KV_LIST:
    for (size_t i = 0; i < v->u.list.len; i++)
      kv_unref(v->u.list.items[i]);
    free(v->u.list.items);
    break;
  case KV_MAP:
    for (size_t i = 0; i < v->u.map.len; i++) {
      kv_unref(v->u.map.keys[i]);
      kv_unref(v->u.map.vals[i]);
    }
    free(v->u.map.keys);
    free(v->u.map.vals);
    if (v->u.map.index) {
      free(v->u.map.index->slots);
      free(v->u.map.index);
    }
    break;
  case KV_ERROR: free(v->u.err.msg); break;
  default: break;
  }
  free((void *)v->pos);
  free(v);
}

bool kv_equal_strict(const kv *a, const kv *b, bool ordered) {
  if (a == b) return true;
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case KV_NULL: return true;
  case KV_BOOL: return a->u.b == b->u.b;
  case KV_INT: return a->u.i == b->u.i;
  case KV_UINT: return a->u.u == b->u.u;
  case KV_DOUBLE:
    if (isnan(a->u.d) && isnan(b->u.d)) return true;
    return a->u.d == b->u.d && signbit(a->u.d) == signbit(b->u.d);
  case KV_STRING:
  case KV_BYTES:
  case KV_TYPE: return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
  case KV_TIMESTAMP:
  case KV_DURATION: return a->u.t.sec == b->u.t.sec && a->u.t.nsec == b->u.t.nsec;
  case KV_LIST:
    if (a->u.list.len != b->u.list.len) return false;
    for (size_t i = 0; i < a->u.list.len; i++)
      if (!kv_equal_strict(a->u.list.items[i], b->u.list.items[i], ordered)) return false;
    return true;
  case KV_MAP:
    if (a->u.map.len != b->u.map.len) return false;
    for (size_t i = 0; i < a->u.map.len; i++) {
      const kv *ka = a->u.map.keys[i];
      const kv *vb;
      if (ordered) {
        if (!kv_equal_strict(ka, b->u.map.keys[i], true)) return false;
        vb = b->u.map.vals[i];
      } else {
        /* strict key match: same kind and value */
        vb = NULL;
        for (size_t j = 0; j < b->u.map.len; j++)
          if (kv_equal_strict(ka, b->u.map.keys[j], false)) {
            vb = b->u.map.vals[j];
            break;
          }
        if (!vb) return false;
      }
      if (!kv_equal_strict(a->u.map.vals[i], vb, ordered)) return false;
    }
    return true;
  case KV_ERROR: return strcmp(a->u.err.msg, b->u.err.msg) == 0;
  }
  return false;
}

const char *kv_kind_name(kv_kind k) {
  static const char *names[] = {"null",     "bool",  "int",  "uint", "double",
                                "string",   "bytes", "list", "map",  "timestamp",
                                "duration", "type",  "error"};
  return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

size_t kv_utf8_decode(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *p = (const unsigned char *)s;
  if (n == 0) return 0;
  unsigned c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t k; /* continuation bytes */
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) {
    k = 1;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    k = 2;
    v = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 3;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (n <= k) return 0;
  for (size_t i = 1; i <= k; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if ((k == 2 && v < 0x800) || (k == 3 && (v < 0x10000 || v > 0x10FFFF)) ||
      (v >= 0xD800 && v <= 0xDFFF))
    return 0;
  *cp = v;
  return k + 1;
}

bool kv_utf8_valid(const char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    size_t k = kv_utf8_decode(s + i, len - i, &cp);
    if (!k) return false;
    i += k;
  }
  return true;
}

size_t kv_utf8_encode(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

size_t kv_utf8_count(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
  return n;
}

int kv_double_digits(double d, char digits[24], int *exp10) {
  /* the shortest %.*e that round-trips: e = D[.DDDD]e[+-]XX */
  d = fabs(d);
  char e[40];
  for (int prec = 0; prec < 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec, d);
    if (strtod(e, NULL) == d) break;
  }
  int nd = 0;
  const char *p = e;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  *exp10 = atoi(p + 1);
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  return nd;
}

int kv_double_repr(double d, char buf[32]) {
  if (isnan(d)) return snprintf(buf, 32, "nan");
  if (isinf(d)) return snprintf(buf, 32, d < 0 ? "-inf" : "inf");
  if (d == 0) return snprintf(buf, 32, signbit(d) ? "-0.0" : "0.0");
  char digits[24];
  int exp10;
  int nd = kv_double_digits(d, digits, &exp10);
  char *o = buf;
  if (d < 0) *o++ = '-';
  if (exp10 >= -5 + 1 && exp10 < 16) {
    if (exp10 >= 0) {
      for (int i = 0; i <= exp10; i++)
        *o++ = i < nd ? digits[i] : '0';
      *o++ = '.';
      if (nd > exp10 + 1)
        for (int i = exp10 + 1; i < nd; i++)
          *o++ = digits[i];
      else
        *o++ = '0';
    } else {
      *o++ = '0';
      *o++ = '.';
      for (int i = 0; i < -exp10 - 1; i++)
        *o++ = '0';
      for (int i = 0; i < nd; i++)
        *o++ = digits[i];
    }
  } else {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      for (int i = 1; i < nd; i++)
        *o++ = digits[i];
    }
    o += snprintf(o, 8, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
  }
  *o = 0;
  return (int)(o - buf);
}

/* ---- string builder ------------------------------------------------------ */

void kv_strbuf_grow(kv_strbuf *b, size_t more) {
  size_t need = b->len + more + 1;
  if (need < more) kv_oom(); /* size_t overflow: no such allocation exists */
  if (need <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap * 2 > cap ? cap * 2 : need;
  char *p = realloc(b->p, cap);
  if (!p) kv_oom();
  if (!b->p) p[0] = 0;
  b->p = p;
  b->cap = cap;
}

void kv_strbuf_printf(kv_strbuf *b, const char *fmt, ...) {
  /* Format once, straight into the buffer when it has room, else into a
   * stack buffer (most calls print a number or a short word); only output
   * longer than both is formatted a second time. */
  char tmp[128];
  size_t room = b->cap > b->len ? b->cap - b->len : 0;
  bool direct = room >= sizeof tmp;
  char *dst = direct ? b->p + b->len : tmp;
  size_t fit = direct ? room : sizeof tmp;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, fit, fmt, ap);
  va_end(ap);
  if (n < 0) {
    if (direct) b->p[b->len] = 0; /* drop whatever the failed call wrote */
    return;
  }
  if ((size_t)n < fit) {
    if (direct)
      b->len += (size_t)n;
    else
      kv_strbuf_put(b, tmp, (size_t)n);
    return;
  }
  kv_strbuf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void kv_strbuf_put_utf8(kv_strbuf *b, uint32_t cp) {
  char o[4];
  kv_strbuf_put(b, o, kv_utf8_encode(cp, o));
}

void kv_strbuf_put_base64(kv_strbuf *b, const void *data, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = data;
  kv_strbuf_reserve(b, (n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char *o = b->p + b->len;
    o[0] = tab[(v >> 18) & 63];
    o[1] = tab[(v >> 12) & 63];
    o[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    o[3] = i + 2 < n ? tab[v & 63] : '=';
    b->len += 4;
  }
  b->p[b->len] = 0;
}

int kv_base64_digit(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

char *kv_strbuf_take(kv_strbuf *b, size_t *len) {
  kv_strbuf_reserve(b, 0); /* "" for an empty builder */
  char *p = b->p;
  if (len) *len = b->len;
  *b = (kv_strbuf){0};
  return p;
}

kv *kv_strbuf_take_string(kv_strbuf *b) {
  if (!b->p) return kv_string("", 0);
  kv *v = kv_string_take(b->p, b->len);
  *b = (kv_strbuf){0};
  return v;
}

kv *kv_map_deep_merge(const kv *base, const kv *overlay) {
  kv *r = kv_map_new(kv_len(base) + kv_len(overlay));
  for (size_t i = 0; i < kv_len(base); i++)
    kv_map_set(r, kv_ref(base->u.map.keys[i]), kv_ref(base->u.map.vals[i]));
  for (size_t i = 0; i < kv_len(overlay); i++) {
    kv *k = overlay->u.map.keys[i], *v = overlay->u.map.vals[i];
    const kv *cur = kv_map_get(base, k);
    if (cur && cur->kind == KV_MAP && v->kind == KV_MAP)
      kv_map_set(r, kv_ref(k), kv_map_deep_merge(cur, v));
    else
      kv_map_set(r, kv_ref(k), kv_ref(v));
  }
  return r;
}

char *kv_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) kv_oom();
  va_end(ap);
  return s;
}
