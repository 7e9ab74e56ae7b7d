/*
 * core/yaml.c: YAML streams into `kv` values (kv_yaml_parse in
 * koreo/json.h), reproducing PyYAML's SafeLoader, which is what upstream
 * Koreo loads its definitions with.
 *
 * libyaml's event API produces the events; this file composes and
 * constructs values from them:
 *  - plain scalars resolve with PyYAML's YAML 1.1 implicit resolvers
 *    (bool, int, float, null, merge, value; see resolve_plain); quoted and
 *    block scalars are strings; explicit tags !!str !!int !!float !!bool
 *    !!null !!binary !!timestamp !!map !!seq !!set !!omap !!pairs are
 *    honoured and any other tag is an error, as in SafeLoader;
 *  - timestamps stay strings (PyYAML makes datetime objects): divergence,
 *    documented in docs/yaml.md;
 *  - anchors are registered when their node is complete and aliases share
 *    the value by reference (memory stays linear: no billion-laughs
 *    blow-up); an alias to a node still being built (a recursive
 *    structure) is an error;
 *  - merge keys `<<` follow PyYAML's flatten_mapping: explicit keys win
 *    over merged ones, earlier maps of a merge list win over later ones;
 *  - every string, number, list and map carries its file/line/column
 *    (null and booleans are immortal singletons and carry none);
 *  - nesting is limited to 1000 levels and the entries copied by merge
 *    keys to 1,000,000 per stream (PyYAML would grow quadratically).
 */
#include "koreo/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum { YAML_MAX_DEPTH = 1000, YAML_MAX_MERGED = 1000000 };

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---- scalar resolution (PyYAML resolver.py, constructor.py) ----------- */

typedef enum rkind {
  R_STR,
  R_NULL,
  R_BOOL,
  R_INT,
  R_FLOAT,
  R_MERGE, /* plain `<<`: only valid as a mapping key */
  R_VALUE, /* plain `=`: a string key, an error elsewhere (no constructor) */
} rkind;

static bool in_set(char c, const char *set) { return c && strchr(set, c); }

static size_t span(const char *s, size_t i, size_t n, const char *set) {
  size_t j = i;
  while (j < n && in_set(s[j], set))
    j++;
  return j - i;
}

#define DIG "0123456789"
#define DIG_ "0123456789_"

/* (?::[0-5]?[0-9])+ at s[i]: returns the index after it, or 0 if absent. */
static size_t sexagesimal_groups(const char *s, size_t i, size_t n) {
  size_t groups = 0;
  while (i < n && s[i] == ':') {
    size_t j = i + 1;
    if (j + 1 < n && in_set(s[j], "012345") && in_set(s[j + 1], DIG))
      j += 2;
    else if (j < n && in_set(s[j], DIG))
      j += 1;
    else
      break;
    i = j;
    groups++;
  }
  return groups ? i : 0;
}

/* [eE][-+][0-9]+ at s[i] up to the end. */
static bool exponent_to_end(const char *s, size_t i, size_t n) {
  if (i == n) return true;
  if (!in_set(s[i], "eE") || i + 1 >= n || !in_set(s[i + 1], "-+")) return false;
  size_t d = span(s, i + 2, n, DIG);
  return d > 0 && i + 2 + d == n;
}

static bool match_float(const char *s, size_t n) {
  size_t i = 0;
  if (n && in_set(s[0], "-+")) i = 1;
  /* [-+]?\.(inf|Inf|INF) */
  if (n - i == 4 && s[i] == '.' &&
      (!memcmp(s + i + 1, "inf", 3) || !memcmp(s + i + 1, "Inf", 3) ||
       !memcmp(s + i + 1, "INF", 3)))
    return true;
  if (i == 0 && n == 4 && (!memcmp(s, ".nan", 4) || !memcmp(s, ".NaN", 4) || !memcmp(s, ".NAN", 4)))
    return true;
  /* \.[0-9][0-9_]*(?:[eE][-+][0-9]+)? (no sign) */
  if (i == 0 && n >= 2 && s[0] == '.' && in_set(s[1], DIG)) {
    size_t j = 2 + span(s, 2, n, DIG_);
    if (exponent_to_end(s, j, n)) return true;
  }
  if (i >= n || !in_set(s[i], DIG)) return false;
  size_t j = i + 1 + span(s, i + 1, n, DIG_);
  /* [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)? */
  if (j < n && s[j] == '.') {
    size_t k = j + 1 + span(s, j + 1, n, DIG_);
    if (exponent_to_end(s, k, n)) return true;
  }
  /* [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]* */
  size_t g = sexagesimal_groups(s, j, n);
  if (g && g < n && s[g] == '.') {
    size_t k = g + 1 + span(s, g + 1, n, DIG_);
    if (k == n) return true;
  }
  return false;
}

static bool match_int(const char *s, size_t n) {
  size_t i = 0;
  if (n && in_set(s[0], "-+")) i = 1;
  if (i >= n) return false;
  if (n - i >= 3 && s[i] == '0' && s[i + 1] == 'b') return span(s, i + 2, n, "01_") == n - i - 2;
  if (n - i >= 3 && s[i] == '0' && s[i + 1] == 'x')
    return span(s, i + 2, n, "0123456789abcdefABCDEF_") == n - i - 2;
  if (s[i] == '0') {
    if (n - i == 1) return true;
    return span(s, i + 1, n, "01234567_") == n - i - 1;
  }
  if (!in_set(s[i], "123456789")) return false;
  size_t j = i + 1 + span(s, i + 1, n, DIG_);
  if (j == n) return true;
  size_t g = sexagesimal_groups(s, j, n);
  return g == n;
}

static rkind resolve_plain(const char *s, size_t n) {
  static const char *bools[] = {"yes",   "Yes",   "YES",   "no", "No", "NO", "true", "True", "TRUE",
                                "false", "False", "FALSE", "on", "On", "ON", "off",  "Off",  "OFF"};
  if (n == 0) return R_NULL;
  for (size_t k = 0; k < sizeof bools / sizeof *bools; k++)
    if (strlen(bools[k]) == n && !memcmp(bools[k], s, n)) return R_BOOL;
  if (in_set(s[0], "-+0123456789.")) {
    if (match_float(s, n)) return R_FLOAT;
    if (match_int(s, n)) return R_INT;
  }
  if (n == 2 && !memcmp(s, "<<", 2)) return R_MERGE;
  if ((n == 1 && s[0] == '~') ||
      (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4))))
    return R_NULL;
  if (n == 1 && s[0] == '=') return R_VALUE;
  return R_STR;
}

/* `s` without '_' (and lowered when `lower`), NUL-terminated, malloc'ed. */
static char *strip_underscores(const char *s, size_t n, bool lower) {
  char *o = malloc(n + 1);
  if (!o) kv_oom();
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '_') continue;
    if (lower && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    o[k++] = c;
  }
  o[k] = 0;
  return o;
}

static int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

/* construct_yaml_int: returns a new int/uint value, or NULL with a message
 * in `why`. */
static kv *construct_int(const char *text, size_t n, char *why, size_t whyn) {
  char *t = strip_underscores(text, n, false);
  const char *p = t;
  bool neg = false;
  if (*p == '-' || *p == '+') neg = *p++ == '-';
  unsigned base = 10;
  bool sexa = false;
  if (p[0] == '0' && p[1] == 'b') {
    base = 2;
    p += 2;
  } else if (p[0] == '0' && p[1] == 'x') {
    base = 16;
    p += 2;
  } else if (p[0] == '0' && p[1] == 'o') { /* Python's int(s, 8) accepts 0o */
    base = 8;
    p += 2;
  } else if (p[0] == '0' && p[1]) {
    base = 8;
  } else if (strchr(p, ':')) {
    sexa = true;
  }
  uint64_t mag = 0, group = 0;
  bool ok = *p != 0, overflow = false;
  for (const char *q = p; *q && ok; q++) {
    if (sexa && *q == ':') {
      /* base 60 (Horner): value = value*60 + group, per ':' group */
      if (q == p || q[1] == 0 || q[1] == ':') ok = false;
      if (mag > (UINT64_MAX - group) / 60) overflow = true;
      mag = mag * 60 + group;
      group = 0;
      continue;
    }
    unsigned d = (unsigned)digit_value(*q);
    if (d >= base) {
      ok = false;
      break;
    }
    if (sexa) {
      if (group > (UINT64_MAX - d) / 10) overflow = true;
      group = group * 10 + d;
      continue;
    }
    if (mag > (UINT64_MAX - d) / base) overflow = true;
    mag = mag * base + d;
  }
  if (sexa && ok) {
    if (mag > (UINT64_MAX - group) / 60) overflow = true;
    mag = mag * 60 + group;
  }
  free(t);
  if (!ok) {
    snprintf(why, whyn, "invalid integer '%.*s'", (int)(n > 64 ? 64 : n), text);
    return NULL;
  }
  if (overflow || (neg && mag > (uint64_t)INT64_MAX + 1)) {
    snprintf(why, whyn, "integer '%.*s' is out of range (beyond 64 bits)", (int)(n > 64 ? 64 : n),
             text);
    return NULL;
  }
  if (neg) return kv_int(mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag);
  if (mag > (uint64_t)INT64_MAX) return kv_uint(mag);
  return kv_int((int64_t)mag);
}

/* A decimal float text (digits, '.', exponent) as Python's float() reads
 * the resolver's forms; NAN-returning when malformed (caller checks). */
static bool parse_decimal(const char *s, double *out) {
  if (!*s) return false;
  for (const char *q = s; *q; q++)
    if (!in_set(*q, "0123456789.eE+-")) return false;
  char *end;
  *out = strtod(s, &end);
  return *end == 0 && end != s;
}

/* construct_yaml_float. */
static kv *construct_float(const char *text, size_t n, char *why, size_t whyn) {
  char *t = strip_underscores(text, n, true);
  const char *p = t;
  double sign = 1;
  if (*p == '-') sign = -1;
  if (*p == '-' || *p == '+') p++;
  double v = 0;
  bool ok = true;
  if (!strcmp(p, ".inf")) {
    v = sign * INFINITY;
  } else if (!strcmp(p, ".nan")) {
    v = NAN;
  } else if (strchr(p, ':')) {
    /* base 60: each part is a float, value = sum(part * 60^k) */
    char *copy = strdup(p);
    if (!copy) kv_oom();
    char *save = NULL;
    double acc = 0;
    size_t parts = 0;
    for (char *tok = copy;; tok = NULL) {
      char *part = strtok_r(tok, ":", &save);
      if (!part) break;
      double d = 0;
      if (!parse_decimal(part, &d)) ok = false;
      acc = acc * 60 + d;
      parts++;
    }
    /* empty groups ("1::2", trailing ':') are malformed */
    for (const char *q = p; *q; q++)
      if (q[0] == ':' && (q == p || q[1] == ':' || q[1] == 0)) ok = false;
    free(copy);
    if (!parts) ok = false;
    v = sign * acc;
  } else {
    double d = 0;
    ok = parse_decimal(p, &d) || !strcmp(p, "inf") || !strcmp(p, "nan") || !strcmp(p, "infinity");
    if (ok && (!strcmp(p, "inf") || !strcmp(p, "infinity"))) d = INFINITY;
    if (ok && !strcmp(p, "nan")) d = NAN;
    v = sign * d;
  }
  free(t);
  if (!ok) {
    snprintf(why, whyn, "invalid float '%.*s'", (int)(n > 64 ? 64 : n), text);
    return NULL;
  }
  return kv_double(v);
}

/* construct_yaml_bool (explicit !!bool): yes/no/true/false/on/off in any
 * case. */
static int construct_bool(const char *s, size_t n) {
  static const char *t[] = {"yes", "true", "on"}, *f[] = {"no", "false", "off"};
  if (n > 5) return -1;
  char low[8];
  for (size_t i = 0; i < n; i++)
    low[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
  low[n] = 0;
  for (int i = 0; i < 3; i++) {
    if (!strcmp(low, t[i])) return 1;
    if (!strcmp(low, f[i])) return 0;
  }
  return -1;
}

/* !!binary: base64 with whitespace ignored. */
static kv *construct_binary(const char *s, size_t n, char *why, size_t whyn) {
  unsigned char *out = malloc(n / 4 * 3 + 3);
  if (!out) kv_oom();
  size_t o = 0, q = 0, pad = 0;
  uint32_t acc = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int v;
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad) goto bad;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      goto bad;
    acc = acc << 6 | (uint32_t)v;
    if (++q == 4) {
      out[o++] = (unsigned char)(acc >> 16);
      out[o++] = (unsigned char)(acc >> 8);
      out[o++] = (unsigned char)acc;
      q = 0;
      acc = 0;
    }
  }
  if (q == 1 || (q && q + pad != 4) || (!q && pad)) goto bad;
  if (q == 2) out[o++] = (unsigned char)(acc >> 4);
  if (q == 3) {
    out[o++] = (unsigned char)(acc >> 10);
    out[o++] = (unsigned char)(acc >> 2);
  }
  kv *v = kv_bytes(out, o);
  free(out);
  return v;
bad:
  free(out);
  snprintf(why, whyn, "invalid base64 data in !!binary");
  return NULL;
}

/* ---- composing ---------------------------------------------------------- */

typedef enum ckind { C_SEQ, C_MAP, C_SET, C_OMAP, C_PAIRS } ckind;

typedef struct yframe {
  ckind kind;
  char *anchor;
  yaml_mark_t mark;
  kv *list; /* sequences */
  /* mappings: entries collected, built at the end (merges go first) */
  kv **keys, **vals;
  size_t n, cap;
  kv **merges; /* maps to merge, in PyYAML's application order */
  size_t nmerge, capmerge;
  kv *key; /* pending key */
  bool have_key, key_is_merge;
  yaml_mark_t key_mark;
} yframe;

typedef struct anchor_ent {
  char *name;
  kv *val;
} anchor_ent;

typedef struct ybuild {
  const char *text;
  size_t len;
  const char *file;
  kv_parse_error *err;
  yframe *st;
  size_t depth, stcap;
  anchor_ent *anchors;
  size_t nanchors, capanchors;
  kv *root;
  bool have_root;
  size_t merged; /* entries copied by merge keys so far */
} ybuild;

static void y_fail(ybuild *b, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void y_fail(ybuild *b, yaml_mark_t m, const char *fmt, ...) {
  if (!b->err) return;
  b->err->file = b->file;
  b->err->line = (uint32_t)m.line + 1;
  b->err->col = (uint32_t)m.column + 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->err->msg, sizeof b->err->msg, fmt, ap);
  va_end(ap);
}

static void set_pos(ybuild *b, kv *v, yaml_mark_t m) {
  if (v->refs >= 0) kv_set_pos(v, b->file, (uint32_t)m.line + 1, (uint32_t)m.column + 1);
}

static void anchors_clear(ybuild *b) {
  for (size_t i = 0; i < b->nanchors; i++) {
    free(b->anchors[i].name);
    kv_unref(b->anchors[i].val);
  }
  b->nanchors = 0;
}

static void anchor_set(ybuild *b, const char *name, kv *v) {
  if (b->nanchors == b->capanchors) {
    size_t nc = b->capanchors ? b->capanchors * 2 : 8;
    anchor_ent *a = realloc(b->anchors, nc * sizeof *a);
    if (!a) kv_oom();
    b->anchors = a;
    b->capanchors = nc;
  }
  char *nm = strdup(name);
  if (!nm) kv_oom();
  b->anchors[b->nanchors].name = nm;
  b->anchors[b->nanchors].val = kv_ref(v);
  b->nanchors++;
}

static kv *anchor_get(ybuild *b, const char *name) {
  for (size_t i = b->nanchors; i-- > 0;)
    if (!strcmp(b->anchors[i].name, name)) return b->anchors[i].val;
  return NULL;
}

static void frame_free(yframe *f) {
  free(f->anchor);
  kv_unref(f->list);
  for (size_t i = 0; i < f->n; i++) {
    kv_unref(f->keys[i]);
    kv_unref(f->vals[i]);
  }
  free(f->keys);
  free(f->vals);
  for (size_t i = 0; i < f->nmerge; i++)
    kv_unref(f->merges[i]);
  free(f->merges);
  kv_unref(f->key);
  memset(f, 0, sizeof *f);
}

static void frame_add_merge(yframe *f, kv *m) {
  if (f->nmerge == f->capmerge) {
    size_t nc = f->capmerge ? f->capmerge * 2 : 4;
    kv **p = realloc(f->merges, nc * sizeof *p);
    if (!p) kv_oom();
    f->merges = p;
    f->capmerge = nc;
  }
  f->merges[f->nmerge++] = kv_ref(m);
}

static void frame_add_entry(yframe *f, kv *k, kv *v) {
  if (f->n == f->cap) {
    size_t nc = f->cap ? f->cap * 2 : 8;
    kv **a = realloc(f->keys, nc * sizeof *a), **c;
    if (!a) kv_oom();
    f->keys = a;
    c = realloc(f->vals, nc * sizeof *c);
    if (!c) kv_oom();
    f->vals = c;
    f->cap = nc;
  }
  f->keys[f->n] = k;
  f->vals[f->n] = v;
  f->n++;
}

static const char *node_name(const kv *v) {
  switch (v->kind) {
  case KV_LIST: return "a sequence";
  case KV_MAP: return "a mapping";
  default: return "a scalar";
  }
}

/* Hand a finished node (owned, `v`) to its parent.  `r` is R_MERGE or
 * R_VALUE for the plain scalars `<<` and `=` (v is then the string).
 * Returns false (err filled) on error; `v` is consumed either way. */
static bool deliver(ybuild *b, kv *v, rkind r, yaml_mark_t m) {
  yframe *f = b->depth ? &b->st[b->depth - 1] : NULL;
  bool is_key = f && f->kind != C_SEQ && f->kind != C_OMAP && f->kind != C_PAIRS && !f->have_key;
  if ((r == R_MERGE || r == R_VALUE) && !is_key) {
    y_fail(b, m, "could not determine a constructor for the tag '" TAG_PREFIX "%s'",
           r == R_MERGE ? "merge" : "value");
    kv_unref(v);
    return false;
  }
  if (!f) {
    b->root = v;
    b->have_root = true;
    return true;
  }
  if (f->kind == C_SEQ || f->kind == C_OMAP || f->kind == C_PAIRS) {
    kv_list_push(f->list, v);
    return true;
  }
  if (is_key) {
    if (v->kind == KV_LIST || v->kind == KV_MAP) {
      y_fail(b, m, "found unhashable key (%s) while constructing a mapping", node_name(v));
      kv_unref(v);
      return false;
    }
    f->key = v;
    f->have_key = true;
    f->key_is_merge = r == R_MERGE;
    f->key_mark = m;
    return true;
  }
  kv *k = f->key;
  f->key = NULL;
  f->have_key = false;
  if (f->key_is_merge) {
    f->key_is_merge = false;
    kv_unref(k);
    if (v->kind == KV_MAP) {
      frame_add_merge(f, v);
    } else if (v->kind == KV_LIST) {
      for (size_t i = 0; i < v->u.list.len; i++)
        if (v->u.list.items[i]->kind != KV_MAP) {
          const kv_srcpos *p = kv_pos(v->u.list.items[i]);
          yaml_mark_t im = m;
          if (p) {
            im.line = p->line - 1;
            im.column = p->col - 1;
          }
          y_fail(b, im,
                 "expected a mapping for merging, but found %s (while constructing a mapping)",
                 node_name(v->u.list.items[i]));
          kv_unref(v);
          return false;
        }
      /* PyYAML applies the list reversed, so earlier maps win */
      for (size_t i = v->u.list.len; i-- > 0;)
        frame_add_merge(f, v->u.list.items[i]);
    } else {
      y_fail(b, m,
             "expected a mapping or list of mappings for merging, but found %s (while "
             "constructing a mapping)",
             node_name(v));
      kv_unref(v);
      return false;
    }
    kv_unref(v);
    return true;
  }
  if (f->kind == C_SET) {
    /* !!set: keys with null values, whatever value was written */
    kv_unref(v);
    v = kv_null();
  }
  frame_add_entry(f, k, v);
  return true;
}

/* Build the finished value of the top frame (consumes it). */
static kv *frame_finish(ybuild *b, yframe *f) {
  if (f->kind == C_SEQ) {
    kv *l = f->list;
    f->list = NULL;
    return l;
  }
  if (f->kind == C_OMAP || f->kind == C_PAIRS) {
    /* list of single-entry maps -> list of [key, value] pairs */
    kv *src = f->list;
    for (size_t i = 0; i < src->u.list.len; i++) {
      const kv *it = src->u.list.items[i];
      if (it->kind != KV_MAP || it->u.map.len != 1) {
        const kv_srcpos *p = kv_pos(it);
        yaml_mark_t m = f->mark;
        if (p) {
          m.line = p->line - 1;
          m.column = p->col - 1;
        }
        y_fail(b, m,
               "expected a single mapping item for an ordered map or pairs (while "
               "constructing %s)",
               f->kind == C_OMAP ? "an ordered map" : "pairs");
        return NULL;
      }
    }
    kv *out = kv_list_new(src->u.list.len);
    set_pos(b, out, f->mark);
    for (size_t i = 0; i < src->u.list.len; i++) {
      const kv *it = src->u.list.items[i];
      kv *pair = kv_list_new(2);
      if (kv_pos(it)) kv_set_pos(pair, b->file, kv_pos(it)->line, kv_pos(it)->col);
      kv_list_push(pair, kv_ref(it->u.map.keys[0]));
      kv_list_push(pair, kv_ref(it->u.map.vals[0]));
      kv_list_push(out, pair);
    }
    return out;
  }
  size_t total = f->n;
  for (size_t i = 0; i < f->nmerge; i++)
    total += f->merges[i]->u.map.len;
  kv *m = kv_map_new(total);
  set_pos(b, m, f->mark);
  for (size_t i = 0; i < f->nmerge; i++) {
    const kv *src = f->merges[i];
    b->merged += src->u.map.len;
    if (b->merged > YAML_MAX_MERGED) {
      kv_unref(m);
      y_fail(b, f->mark, "merge keys copy more than %d entries in total", YAML_MAX_MERGED);
      return NULL;
    }
    for (size_t k = 0; k < src->u.map.len; k++)
      kv_map_set(m, kv_ref(src->u.map.keys[k]), kv_ref(src->u.map.vals[k]));
  }
  for (size_t i = 0; i < f->n; i++) {
    kv_map_set(m, f->keys[i], f->vals[i]);
    f->keys[i] = f->vals[i] = NULL;
  }
  f->n = 0;
  return m;
}

static bool is_tag(const char *tag, const char *name) {
  size_t pl = sizeof TAG_PREFIX - 1;
  return tag && !strncmp(tag, TAG_PREFIX, pl) && !strcmp(tag + pl, name);
}

/* A scalar event to a value (new reference) or NULL with err filled. */
static kv *construct_scalar(ybuild *b, const yaml_event_t *ev, rkind *rk) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  yaml_mark_t m = ev->start_mark;
  char why[160];
  rkind r = R_STR;
  *rk = R_STR;
  if (!tag || !strcmp(tag, "!")) {
    if (!tag && ev->data.scalar.plain_implicit) r = resolve_plain(s, n);
  } else if (is_tag(tag, "str") || is_tag(tag, "timestamp")) {
    r = R_STR; /* timestamps stay strings: see docs/yaml.md */
  } else if (is_tag(tag, "int")) {
    r = R_INT;
  } else if (is_tag(tag, "float")) {
    r = R_FLOAT;
  } else if (is_tag(tag, "null")) {
    r = R_NULL;
  } else if (is_tag(tag, "bool")) {
    int bv = construct_bool(s, n);
    if (bv < 0) {
      y_fail(b, m, "invalid boolean '%.*s' for !!bool", (int)(n > 64 ? 64 : n), s);
      return NULL;
    }
    return kv_bool(bv);
  } else if (is_tag(tag, "binary")) {
    kv *v = construct_binary(s, n, why, sizeof why);
    if (!v)
      y_fail(b, m, "%s", why);
    else
      set_pos(b, v, m);
    return v;
  } else {
    y_fail(b, m, "could not determine a constructor for the tag '%s'", tag);
    return NULL;
  }
  kv *v = NULL;
  switch (r) {
  case R_NULL: return kv_null();
  case R_BOOL:
    return kv_bool(s[0] == 'y' || s[0] == 'Y' || s[0] == 't' || s[0] == 'T' ||
                   (n == 2 && (s[1] == 'n' || s[1] == 'N')));
  case R_INT: v = construct_int(s, n, why, sizeof why); break;
  case R_FLOAT: v = construct_float(s, n, why, sizeof why); break;
  case R_MERGE:
  case R_VALUE:
  case R_STR: v = kv_string(s, n); break;
  }
  if (!v) {
    y_fail(b, m, "%s", why);
    return NULL;
  }
  *rk = r;
  set_pos(b, v, m);
  return v;
}

static bool push_frame(ybuild *b, ckind k, const yaml_event_t *ev, const char *anchor) {
  if (b->depth >= YAML_MAX_DEPTH) {
    y_fail(b, ev->start_mark, "nesting deeper than %d levels", YAML_MAX_DEPTH);
    return false;
  }
  if (b->depth == b->stcap) {
    size_t nc = b->stcap ? b->stcap * 2 : 16;
    yframe *p = realloc(b->st, nc * sizeof *p);
    if (!p) kv_oom();
    b->st = p;
    b->stcap = nc;
  }
  yframe *f = &b->st[b->depth++];
  memset(f, 0, sizeof *f);
  f->kind = k;
  f->mark = ev->start_mark;
  if (anchor) {
    f->anchor = strdup(anchor);
    if (!f->anchor) kv_oom();
  }
  if (k == C_SEQ || k == C_OMAP || k == C_PAIRS) {
    f->list = kv_list_new(0);
    set_pos(b, f->list, ev->start_mark);
  }
  return true;
}

/* libyaml's error as a parse error. */
static void libyaml_error(ybuild *b, const yaml_parser_t *p) {
  if (!b->err) return;
  yaml_mark_t m = p->problem_mark;
  if (p->error == YAML_READER_ERROR) {
    /* marks are not set for reader errors: locate the byte offset */
    size_t off = p->problem_offset < b->len ? p->problem_offset : b->len;
    uint32_t line = 1;
    size_t bol = 0;
    for (size_t i = 0; i < off; i++)
      if (b->text[i] == '\n') {
        line++;
        bol = i + 1;
      }
    b->err->file = b->file;
    b->err->line = line;
    b->err->col = (uint32_t)kv_utf8_count(b->text + bol, off - bol) + 1;
    if (p->problem_value >= 0)
      snprintf(b->err->msg, sizeof b->err->msg, "%s (byte 0x%02X)", p->problem,
               (unsigned)p->problem_value & 0xFFu);
    else
      snprintf(b->err->msg, sizeof b->err->msg, "%s", p->problem ? p->problem : "invalid input");
    return;
  }
  const char *problem = p->problem ? p->problem : "invalid YAML";
  if (p->context)
    y_fail(b, m, "%s (%s at line %zu, column %zu)", problem, p->context, p->context_mark.line + 1,
           p->context_mark.column + 1);
  else
    y_fail(b, m, "%s", problem);
}

/* Names the anchor of a node still being built, if `name` is one. */
static bool anchor_in_progress(const ybuild *b, const char *name) {
  for (size_t i = 0; i < b->depth; i++)
    if (b->st[i].anchor && !strcmp(b->st[i].anchor, name)) return true;
  return false;
}

kv *kv_yaml_parse(const char *text, size_t len, const char *file, kv_parse_error *err) {
  if (!text) { /* no text: an empty stream */
    text = "";
    len = 0;
  }
  ybuild b = {.text = text, .len = len, .file = kv_intern_file(file), .err = err};
  if (err) {
    memset(err, 0, sizeof *err);
    err->file = b.file;
  }
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) kv_oom();
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  kv *docs = kv_list_new(0);
  bool ok = true, done = false;
  while (ok && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      if (parser.error == YAML_MEMORY_ERROR) kv_oom();
      libyaml_error(&b, &parser);
      ok = false;
      break;
    }
    switch (ev.type) {
    case YAML_STREAM_END_EVENT: done = true; break;
    case YAML_DOCUMENT_START_EVENT:
      b.root = NULL;
      b.have_root = false;
      break;
    case YAML_DOCUMENT_END_EVENT:
      kv_list_push(docs, b.have_root ? b.root : kv_null());
      b.root = NULL;
      b.have_root = false;
      anchors_clear(&b); /* anchors are per document, as in PyYAML */
      break;
    case YAML_ALIAS_EVENT: {
      const char *name = (const char *)ev.data.alias.anchor;
      kv *v = anchor_get(&b, name);
      if (!v) {
        if (anchor_in_progress(&b, name))
          y_fail(&b, ev.start_mark, "recursive alias '*%s' (the anchored node contains itself)",
                 name);
        else
          y_fail(&b, ev.start_mark, "found undefined alias '*%s'", name);
        ok = false;
        break;
      }
      ok = deliver(&b, kv_ref(v), R_STR, ev.start_mark);
      break;
    }
    case YAML_SCALAR_EVENT: {
      rkind r;
      kv *v = construct_scalar(&b, &ev, &r);
      if (!v) {
        ok = false;
        break;
      }
      if (ev.data.scalar.anchor) anchor_set(&b, (const char *)ev.data.scalar.anchor, v);
      ok = deliver(&b, v, r, ev.start_mark);
      break;
    }
    case YAML_SEQUENCE_START_EVENT: {
      const char *tag = (const char *)ev.data.sequence_start.tag;
      ckind k = C_SEQ;
      if (tag && strcmp(tag, "!") && !is_tag(tag, "seq")) {
        if (is_tag(tag, "omap"))
          k = C_OMAP;
        else if (is_tag(tag, "pairs"))
          k = C_PAIRS;
        else if (is_tag(tag, "map") || is_tag(tag, "set")) {
          y_fail(&b, ev.start_mark, "expected a mapping node, but found a sequence (tag '%s')",
                 tag);
          ok = false;
          break;
        } else {
          y_fail(&b, ev.start_mark, "could not determine a constructor for the tag '%s'", tag);
          ok = false;
          break;
        }
      }
      ok = push_frame(&b, k, &ev, (const char *)ev.data.sequence_start.anchor);
      break;
    }
    case YAML_MAPPING_START_EVENT: {
      const char *tag = (const char *)ev.data.mapping_start.tag;
      ckind k = C_MAP;
      if (tag && strcmp(tag, "!") && !is_tag(tag, "map")) {
        if (is_tag(tag, "set"))
          k = C_SET;
        else if (is_tag(tag, "seq") || is_tag(tag, "omap") || is_tag(tag, "pairs")) {
          y_fail(&b, ev.start_mark, "expected a sequence node, but found a mapping (tag '%s')",
                 tag);
          ok = false;
          break;
        } else {
          y_fail(&b, ev.start_mark, "could not determine a constructor for the tag '%s'", tag);
          ok = false;
          break;
        }
      }
      ok = push_frame(&b, k, &ev, (const char *)ev.data.mapping_start.anchor);
      break;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
      yframe f = b.st[--b.depth];
      kv *v = frame_finish(&b, &f);
      if (v) {
        if (f.anchor) anchor_set(&b, f.anchor, v);
        ok = deliver(&b, v, R_STR, f.mark);
      } else {
        ok = false;
      }
      frame_free(&f);
      break;
    }
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  while (b.depth)
    frame_free(&b.st[--b.depth]);
  free(b.st);
  if (b.have_root) kv_unref(b.root);
  anchors_clear(&b);
  free(b.anchors);
  if (!ok) {
    kv_unref(docs);
    return NULL;
  }
  return docs;
}
