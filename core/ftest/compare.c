/*
 * core/ftest/compare.c: the FunctionTest comparator (spec 7.5, strict:
 * extra keys fail, every difference is collected, directives
 * x-koreo-compare-as-set / -as-map in the expectation apply at their own
 * level) and the last-applied annotation stripping of spec 7.4.
 *
 * Besides upstream's nested "differences" structure the comparator
 * produces a flat list of differences, one per mismatching field, each
 * with its field path and the expected and actual values there, for
 * readable reports.
 */
#include "koreo/ftest.h"

#include "koreo/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIRECTIVE_SET "x-koreo-compare-as-set"
#define DIRECTIVE_MAP "x-koreo-compare-as-map"
#define LAST_APPLIED "koreo.dev/last-applied-configuration"

/* ---- text helpers ------------------------------------------------------ */

static char *xstrdup(const char *s) {
  char *p = strdup(s ? s : "");
  if (!p) kv_oom();
  return p;
}

/* The JSON type name used in mismatch messages. */
static const char *type_word(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: return "null";
  case KV_BOOL: return "bool";
  case KV_INT:
  case KV_UINT: return "integer";
  case KV_DOUBLE: return "number";
  case KV_STRING: return "string";
  case KV_LIST: return "array";
  case KV_MAP: return "object";
  default: return kv_kind_name((kv_kind)v->kind);
  }
}

char *kftest_value_text(const kv *v) {
  if (v->kind == KV_STRING) return xstrdup(kv_str(v));
  return kv_json_write(v, 0, NULL);
}

/* Text of a map key for matching and paths: the string itself, else its
 * JSON text (YAML may give `true:` or `1:` keys; native values have string
 * keys).  Returns `buf` or the key's own text. */
static const char *key_text(const kv *k, char *buf, size_t n) {
  if (k->kind == KV_STRING) return kv_str(k);
  char *s = kv_json_write(k, 0, NULL);
  snprintf(buf, n, "%s", s);
  free(s);
  return buf;
}

static bool is_directive(const char *k) {
  return strcmp(k, DIRECTIVE_SET) == 0 || strcmp(k, DIRECTIVE_MAP) == 0;
}

/* Look a key up by its text (see key_text). */
static kv *map_lookup(const kv *m, const char *key) {
  kv *v = kv_map_get_str(m, key);
  if (v) return v;
  char buf[128];
  for (size_t i = 0; i < kv_len(m); i++) {
    const kv *k = kv_map_key_at(m, i);
    if (k->kind == KV_STRING) continue;
    if (strcmp(key_text(k, buf, sizeof buf), key) == 0) return kv_map_val_at(m, i);
  }
  return NULL;
}

/* ---- paths ------------------------------------------------------------- */

static bool bare_key(const char *k) {
  if (!*k) return false;
  for (const char *p = k; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return false;
  }
  return true;
}

/* A field path, built on the stack while comparing and rendered only
 * for differences: a map key (key != NULL) or a list index below `up`
 * (NULL: the root). */
typedef struct cpath {
  const struct cpath *up;
  const char *key;
  size_t index;
} cpath;

static void render(FILE *f, const cpath *p) {
  if (!p) return;
  render(f, p->up);
  if (!p->key) {
    fprintf(f, "[%zu]", p->index);
  } else if (bare_key(p->key)) {
    if (p->up) fputc('.', f);
    fputs(p->key, f);
  } else {
    kv *ks = kv_cstring(p->key);
    char *q = kv_json_write(ks, 0, NULL);
    kv_unref(ks);
    fprintf(f, "[%s]", q);
    free(q);
  }
}

/* The path's text ("spec.list[2].name", `["a.b"]` for keys that are not
 * plain words, "(root)" for the root).  malloc'ed. */
static char *path_text(const cpath *p) {
  if (!p) return xstrdup("(root)");
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) kv_oom();
  render(f, p);
  fclose(f);
  if (!buf) kv_oom();
  return buf;
}

/* ---- the comparison ---------------------------------------------------- */

typedef struct cmp_ctx {
  kv *flat; /* list of {path, message, expected?, actual?} or NULL */
} cmp_ctx;

static void add_flat(cmp_ctx *c, const cpath *path, const char *msg, const kv *t, const kv *a) {
  if (!c->flat) return;
  kv *m = kv_map_new(4);
  char *ps = path_text(path);
  kv_map_set_str(m, "path", kv_string_take(ps, strlen(ps)));
  kv_map_set_str(m, "message", kv_cstring(msg));
  if (t) kv_map_set_str(m, "expected", kv_ref((kv *)t));
  if (a) kv_map_set_str(m, "actual", kv_ref((kv *)a));
  kv_list_push(c->flat, m);
}

/* A leaf difference: returns the message as a new string value and
 * records it in the flat list. */
static kv *leaf_diff(cmp_ctx *c, const cpath *path, const kv *t, const kv *a, char *msg) {
  add_flat(c, path, msg, t, a);
  return kv_string_take(msg, strlen(msg));
}

static bool is_number(const kv *v) {
  return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
}

/* Numbers by value (3 == 3.0 == 3u), everything else by kind and value. */
static bool scalar_equal(const kv *t, const kv *a) {
  if (is_number(t) && is_number(a)) {
    if (t->kind == KV_DOUBLE || a->kind == KV_DOUBLE) {
      double x = t->kind == KV_DOUBLE ? t->u.d
                 : t->kind == KV_INT  ? (double)t->u.i
                                      : (double)t->u.u;
      double y = a->kind == KV_DOUBLE ? a->u.d
                 : a->kind == KV_INT  ? (double)a->u.i
                                      : (double)a->u.u;
      return x == y;
    }
    if (t->kind == KV_INT && a->kind == KV_INT) return t->u.i == a->u.i;
    if (t->kind == KV_UINT && a->kind == KV_UINT) return t->u.u == a->u.u;
    const kv *s = t->kind == KV_INT ? t : a, *u = t->kind == KV_INT ? a : t;
    return s->u.i >= 0 && (uint64_t)s->u.i == u->u.u;
  }
  if (t->kind != a->kind) return false;
  switch ((kv_kind)t->kind) {
  case KV_NULL: return true;
  case KV_BOOL: return t->u.b == a->u.b;
  case KV_STRING:
  case KV_BYTES: return t->u.s.len == a->u.s.len && memcmp(t->u.s.ptr, a->u.s.ptr, t->u.s.len) == 0;
  default: return kv_equal_strict(t, a, true);
  }
}

static kv *compare(cmp_ctx *c, const kv *t, const kv *a, bool as_set, const cpath *path);

/* Keys listed by a directive value: strings, falsy entries skipped. */
static bool listed(const kv *list, const char *key) {
  if (!list || list->kind != KV_LIST) return false;
  for (size_t i = 0; i < kv_len(list); i++) {
    const kv *e = kv_list_at(list, i);
    if (e->kind == KV_STRING && e->u.s.len && strcmp(kv_str(e), key) == 0) return true;
  }
  return false;
}

/* Python-like str() of a value for as-map keys and set messages. */
static char *py_str(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_NULL: return xstrdup("None");
  case KV_BOOL: return xstrdup(v->u.b ? "True" : "False");
  default: return kftest_value_text(v);
  }
}

/* The as-map key of an object: str(obj[field]).strip() joined by '$'. */
static char *obj_key(const kv *obj, const kv *fields) {
  size_t len = 0, cap = 64;
  char *out = malloc(cap);
  if (!out) kv_oom();
  bool first = true;
  for (size_t i = 0; i < kv_len(fields); i++) {
    const kv *f = kv_list_at(fields, i);
    if (f->kind != KV_STRING || !f->u.s.len) continue;
    const kv *v = obj->kind == KV_MAP ? kv_map_get_str(obj, kv_str(f)) : NULL;
    char *owned = v && v->kind == KV_STRING ? NULL : v ? py_str(v) : xstrdup("None");
    const char *b = owned ? owned : kv_str(v);
    /* strip surrounding whitespace */
    while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
      b++;
    size_t n = strlen(b);
    while (n && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\n' || b[n - 1] == '\r'))
      n--;
    if (len + n + 2 > cap) {
      while (len + n + 2 > cap)
        cap *= 2;
      char *o = realloc(out, cap);
      if (!o) kv_oom();
      out = o;
    }
    if (!first) out[len++] = '$';
    memcpy(out + len, b, n);
    len += n;
    free(owned);
    first = false;
  }
  out[len] = 0;
  return out;
}

/* A list of objects keyed by obj_key (later duplicates win). */
static kv *to_keyed(const kv *list, const kv *fields) {
  kv *m = kv_map_new(kv_len(list));
  for (size_t i = 0; i < kv_len(list); i++) {
    const kv *o = kv_list_at(list, i);
    char *k = obj_key(o, fields);
    kv_map_set(m, kv_string_take(k, strlen(k)), kv_ref((kv *)o));
  }
  return m;
}

static kv *compare_map(cmp_ctx *c, const kv *t, const kv *a, const cpath *path) {
  const kv *set_keys = kv_map_get_str(t, DIRECTIVE_SET);
  const kv *map_keys = kv_map_get_str(t, DIRECTIVE_MAP);
  if (map_keys && map_keys->kind != KV_MAP) map_keys = NULL;
  kv *diffs = kv_map_new(0);
  char kb[128];
  /* expected keys in document order: missing or compared */
  for (size_t i = 0; i < kv_len(t); i++) {
    const char *k = key_text(kv_map_key_at(t, i), kb, sizeof kb);
    if (is_directive(k)) continue;
    const kv *tv = kv_map_val_at(t, i);
    const kv *av = map_lookup(a, k);
    cpath pk = {.up = path, .key = k}, *p = &pk;
    kv *r = NULL;
    if (!av) {
      add_flat(c, p, "missing", tv, NULL);
      r = kv_cstring("missing");
    } else {
      const kv *fields = map_keys ? kv_map_get_str(map_keys, k) : NULL;
      if (*k && fields && fields->kind == KV_LIST && tv->kind == KV_LIST && av->kind == KV_LIST) {
        kv *tk = to_keyed(tv, fields), *ak = to_keyed(av, fields);
        r = compare(c, tk, ak, false, p);
        kv_unref(tk);
        kv_unref(ak);
      } else {
        r = compare(c, tv, av, listed(set_keys, k), p);
      }
    }
    if (r) kv_map_set_str(diffs, k, r);
  }
  /* unexpected keys, in the actual's order */
  for (size_t i = 0; i < kv_len(a); i++) {
    const char *k = key_text(kv_map_key_at(a, i), kb, sizeof kb);
    if (is_directive(k) || map_lookup(t, k)) continue;
    cpath pk = {.up = path, .key = k};
    add_flat(c, &pk, "unexpected", NULL, kv_map_val_at(a, i));
    kv_map_set_str(diffs, k, kv_cstring("unexpected"));
  }
  if (kv_len(diffs) == 0) {
    kv_unref(diffs);
    return NULL;
  }
  return diffs;
}

static kv *compare_list(cmp_ctx *c, const kv *t, const kv *a, const cpath *path) {
  if (kv_len(t) != kv_len(a))
    return leaf_diff(c, path, t, a,
                     kv_asprintf("<length mismatch target:%zu, actual:%zu", kv_len(t), kv_len(a)));
  kv *diffs = kv_list_new(kv_len(t));
  bool any = false;
  for (size_t i = 0; i < kv_len(t); i++) {
    cpath pi = {.up = path, .index = i};
    kv *r = compare(c, kv_list_at(t, i), kv_list_at(a, i), false, &pi);
    if (r) any = true;
    kv_list_push(diffs, r ? r : kv_null());
  }
  if (!any) {
    kv_unref(diffs);
    return NULL;
  }
  return diffs;
}

static bool set_has(const kv *list, const kv *v) {
  for (size_t i = 0; i < kv_len(list); i++)
    if (scalar_equal(kv_list_at(list, i), v)) return true;
  return false;
}

static kv *compare_set(cmp_ctx *c, const kv *t, const kv *a, const cpath *path) {
  for (int side = 0; side < 2; side++) {
    const kv *l = side ? a : t;
    for (size_t i = 0; i < kv_len(l); i++) {
      const kv *e = kv_list_at(l, i);
      if (e->kind == KV_MAP)
        return leaf_diff(c, path, t, a,
                         xstrdup("Could not compare array-as-set, try: "
                                 "`x-koreo-compare-as-map`"));
      if (e->kind == KV_LIST)
        return leaf_diff(c, path, t, a,
                         xstrdup("Could not compare array-as-set (unhashable type: 'list')"));
    }
  }
  kv *diffs = kv_list_new(0);
  char *msg = NULL;
  for (int side = 0; side < 2; side++) {
    const kv *l = side ? a : t, *other = side ? t : a;
    for (size_t i = 0; i < kv_len(l); i++) {
      const kv *e = kv_list_at(l, i);
      bool dup = false;
      for (size_t j = 0; j < i && !dup; j++)
        dup = scalar_equal(kv_list_at(l, j), e);
      if (dup || set_has(other, e)) continue;
      char *s = py_str(e);
      char *d = kv_asprintf(side ? "<unexpectedly found '%s'>" : "<missing '%s'>", s);
      free(s);
      char *m2 = kv_asprintf("%s%s%s", msg ? msg : "", msg ? ", " : "", d);
      free(msg);
      msg = m2;
      kv_list_push(diffs, kv_string_take(d, strlen(d)));
    }
  }
  if (kv_len(diffs) == 0) {
    kv_unref(diffs);
    return NULL;
  }
  char *full = kv_asprintf("set differs: %s", msg);
  add_flat(c, path, full, t, a);
  free(full);
  free(msg);
  return diffs;
}

static kv *compare(cmp_ctx *c, const kv *t, const kv *a, bool as_set, const cpath *path) {
  if (t->kind == KV_MAP && a->kind == KV_MAP) return compare_map(c, t, a, path);
  if (t->kind == KV_MAP)
    return leaf_diff(c, path, t, a, kv_asprintf("expected `object` but found `%s`", type_word(a)));
  if (a->kind == KV_MAP)
    return leaf_diff(c, path, t, a, kv_asprintf("expected `%s` but found `object`", type_word(t)));
  if (t->kind == KV_LIST && a->kind == KV_LIST)
    return as_set ? compare_set(c, t, a, path) : compare_list(c, t, a, path);
  if (t->kind == KV_LIST)
    return leaf_diff(c, path, t, a, kv_asprintf("expected `array` but found `%s`", type_word(a)));
  if (a->kind == KV_LIST)
    return leaf_diff(c, path, t, a, kv_asprintf("expected `%s` but found `array`", type_word(t)));
  if (t->kind == KV_BOOL && a->kind == KV_BOOL) {
    if (t->u.b == a->u.b) return NULL;
    return leaf_diff(c, path, t, a,
                     kv_asprintf("expected `%s` but found `%s`", t->u.b ? "true" : "false",
                                 a->u.b ? "true" : "false"));
  }
  if (t->kind == KV_BOOL)
    return leaf_diff(c, path, t, a, kv_asprintf("expected `bool` but found `%s`", type_word(a)));
  if (a->kind == KV_BOOL)
    return leaf_diff(c, path, t, a, kv_asprintf("expected `%s` but found `bool`", type_word(t)));
  if (scalar_equal(t, a)) return NULL;
  char *ts = kftest_value_text(t), *as = kftest_value_text(a);
  char *msg;
  bool same_family = (is_number(t) && is_number(a)) || t->kind == a->kind;
  if (same_family)
    msg = kv_asprintf("expected '`%s`' but found '`%s`'", ts, as);
  else /* e.g. a quoted number in the expectation (spec 7.4) */
    msg = kv_asprintf("expected '`%s`' (%s) but found '`%s`' (%s)", ts, type_word(t), as,
                      type_word(a));
  free(ts);
  free(as);
  return leaf_diff(c, path, t, a, msg);
}

bool kftest_compare(const kv *expected, const kv *actual, kv **differences, kv **flat) {
  cmp_ctx c = {.flat = flat ? kv_list_new(0) : NULL};
  kv *d = compare(&c, expected, actual, false, NULL);
  bool ok = d == NULL;
  if (differences)
    *differences = d ? d : kv_null();
  else
    kv_unref(d);
  if (flat) *flat = c.flat;
  return ok;
}

/* ---- last-applied stripping (spec 7.4) --------------------------------- */

/* A shallow copy of map `m` with key `skip` left out (NULL: keep all) and,
 * when `repl_key` is set, that key's value replaced by `repl` (taken). */
static kv *map_copy_edit(const kv *m, const char *skip, const char *repl_key, kv *repl) {
  kv *out = kv_map_new(kv_len(m));
  for (size_t i = 0; i < kv_len(m); i++) {
    kv *k = kv_map_key_at(m, i);
    bool is_str = k->kind == KV_STRING;
    if (skip && is_str && strcmp(kv_str(k), skip) == 0) continue;
    if (repl_key && is_str && strcmp(kv_str(k), repl_key) == 0)
      kv_map_set(out, kv_ref(k), kv_ref(repl));
    else
      kv_map_set(out, kv_ref(k), kv_ref(kv_map_val_at(m, i)));
  }
  kv_unref(repl);
  return out;
}

kv *kftest_strip_last_applied(const kv *resource) {
  if (!resource || resource->kind != KV_MAP) return resource ? kv_ref((kv *)resource) : NULL;
  const kv *meta = kv_map_get_str(resource, "metadata");
  if (!meta || meta->kind != KV_MAP) return kv_ref((kv *)resource);
  const kv *ann = kv_map_get_str(meta, "annotations");
  if (!ann || ann->kind != KV_MAP || kv_len(ann) == 0) return kv_ref((kv *)resource);
  kv *new_meta;
  if (kv_len(ann) == 1) {
    new_meta = map_copy_edit(meta, "annotations", NULL, NULL);
  } else {
    if (!kv_map_get_str(ann, LAST_APPLIED)) return kv_ref((kv *)resource);
    kv *new_ann = map_copy_edit(ann, LAST_APPLIED, NULL, NULL);
    new_meta = map_copy_edit(meta, NULL, "annotations", new_ann);
  }
  return map_copy_edit(resource, NULL, "metadata", new_meta);
}
