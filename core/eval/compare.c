/*
 * core/eval/compare.c: the ResourceFunction difference check (spec 5.7)
 * with the x-koreo-compare-as-set / -as-map / -last-applied directives,
 * directive stripping and the last-applied annotation (spec 5.10).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "koreo/json.h"

#define D_AS_SET "x-koreo-compare-as-set"
#define D_AS_MAP "x-koreo-compare-as-map"
#define D_LAST_APPLIED "x-koreo-compare-last-applied"

static bool is_directive(const kv *k) {
  if (k->kind != KV_STRING) return false;
  const char *s = kv_str(k);
  return strcmp(s, D_AS_SET) == 0 || strcmp(s, D_AS_MAP) == 0 || strcmp(s, D_LAST_APPLIED) == 0;
}

/* The difference path being built: a list of segments. */
typedef struct diffs {
  char **seg;
  size_t n, cap;
} diffs;

static void push(diffs *d, char *s) {
  if (d->n == d->cap) {
    d->cap = d->cap ? 2 * d->cap : 8;
    d->seg = realloc(d->seg, d->cap * sizeof *d->seg);
    if (!d->seg) kv_oom();
  }
  d->seg[d->n++] = s;
}
static void diffs_free(diffs *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->seg[i]);
  free(d->seg);
}

static const char *type_name(const kv *v) {
  switch (v->kind) {
  case KV_MAP: return "object";
  case KV_LIST: return "array";
  case KV_BOOL: return "bool";
  case KV_NULL: return "null";
  case KV_STRING: return "str";
  case KV_INT:
  case KV_UINT: return "int";
  case KV_DOUBLE: return "float";
  default: return kv_kind_name((kv_kind)v->kind);
  }
}

static bool is_number(const kv *v) {
  return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
}
static double num(const kv *v) {
  return v->kind == KV_INT ? (double)v->u.i : v->kind == KV_UINT ? (double)v->u.u : v->u.d;
}
static bool num_equal(const kv *a, const kv *b) {
  if (a->kind == KV_INT && b->kind == KV_INT) return a->u.i == b->u.i;
  if (a->kind == KV_UINT && b->kind == KV_UINT) return a->u.u == b->u.u;
  return num(a) == num(b);
}

/* Scalar equality of the "otherwise" row: numbers by value, strings by
 * content, null only with null. */
static bool scalar_equal(const kv *t, const kv *a) {
  if (is_number(t) && is_number(a)) return num_equal(t, a);
  if (t->kind != a->kind) return false;
  switch (t->kind) {
  case KV_NULL: return true;
  case KV_STRING:
  case KV_BYTES: return kv_len(t) == kv_len(a) && memcmp(kv_str(t), kv_str(a), kv_len(t)) == 0;
  default: return kv_equal_strict(t, a, true);
  }
}

static bool cmp(const kv *t, const kv *a, const kv *la, bool as_set, diffs *d);

/* The map `to_keyed(list, fields)` of spec 5.7; null for an empty/null
 * list; a non-list value is returned as is (so it mismatches). */
static kv *to_keyed(const kv *list, const kv *fields) {
  if (!list || list->kind == KV_NULL) return kv_null();
  if (list->kind != KV_LIST) return kv_ref((kv *)list);
  if (kv_len(list) == 0) return kv_null();
  kv *m = kv_map_new(kv_len(list));
  for (size_t i = 0; i < kv_len(list); i++) {
    const kv *item = kv_list_at(list, i);
    char *key = NULL;
    size_t klen = 0;
    FILE *f = open_memstream(&key, &klen);
    if (!f) kv_oom();
    size_t nf = fields && fields->kind == KV_LIST ? kv_len(fields) : 0;
    for (size_t j = 0; j < nf; j++) {
      const kv *fname = kv_list_at(fields, j);
      const kv *fv = item->kind == KV_MAP && fname->kind == KV_STRING
                         ? kv_map_get_str(item, kv_str(fname))
                         : NULL;
      char *t = eval_text(fv ? fv : kv_null());
      /* .strip(): surrounding whitespace */
      char *s = t, *e = t + strlen(t);
      while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
      while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
      if (j) fputc('$', f);
      fwrite(s, 1, (size_t)(e - s), f);
      free(t);
    }
    fclose(f);
    kv_map_set(m, kv_string_take(key, klen), kv_ref((kv *)item));
  }
  return m;
}

/* Is `k` listed (as a string) in the list `l`? */
static bool listed(const kv *l, const kv *k) {
  if (!l || l->kind != KV_LIST || k->kind != KV_STRING) return false;
  for (size_t i = 0; i < kv_len(l); i++) {
    const kv *e = kv_list_at(l, i);
    if (e->kind == KV_STRING && kv_len(e) > 0 && strcmp(kv_str(e), kv_str(k)) == 0) return true;
  }
  return false;
}

static bool cmp_map(const kv *t, const kv *a, const kv *la, diffs *d) {
  if (!la || la->kind != KV_MAP) la = NULL;
  const kv *set_keys = kv_map_get_str(t, D_AS_SET);
  const kv *la_keys = kv_map_get_str(t, D_LAST_APPLIED);
  const kv *map_keys = kv_map_get_str(t, D_AS_MAP);
  if (map_keys && map_keys->kind != KV_MAP) map_keys = NULL;
  for (size_t i = 0; i < kv_len(t); i++) {
    const kv *k = kv_map_key_at(t, i), *tv = kv_map_val_at(t, i);
    if (is_directive(k)) continue;
    if (k->kind == KV_STRING && strcmp(kv_str(k), "ownerReferences") == 0) continue;
    char *ktext = eval_text(k);
    const kv *lav = la ? kv_map_get(la, k) : NULL;
    if (!lav) lav = kv_null();
    const kv *av;
    if (listed(la_keys, k)) {
      av = lav;
    } else {
      av = kv_map_get(a, k);
      if (!av) {
        push(d, eval_fmt("'%s'", ktext));
        push(d, eval_fmt("<missing '%s' in resource>", ktext));
        free(ktext);
        return false;
      }
    }
    bool ok;
    const kv *fields = map_keys ? kv_map_get(map_keys, k) : NULL;
    diffs sub = {0};
    if (fields) {
      kv *tk = to_keyed(tv, fields), *ak = to_keyed(av, fields), *lk = to_keyed(lav, fields);
      ok = cmp(tk, ak, lk, false, &sub);
      kv_unref(tk);
      kv_unref(ak);
      kv_unref(lk);
    } else {
      ok = cmp(tv, av, lav, listed(set_keys, k), &sub);
    }
    if (!ok) {
      push(d, eval_fmt("'%s'", ktext));
      for (size_t j = 0; j < sub.n; j++)
        push(d, sub.seg[j]);
      free(sub.seg);
      free(ktext);
      return false;
    }
    diffs_free(&sub);
    free(ktext);
  }
  return true;
}

static bool cmp_list(const kv *t, const kv *a, const kv *la, diffs *d) {
  if (kv_len(t) == 0 && kv_len(a) == 0) return true;
  if (kv_len(t) != kv_len(a)) {
    push(d, eval_fmt("<length mismatch target:%zu, actual:%zu", kv_len(t), kv_len(a)));
    return false;
  }
  for (size_t i = 0; i < kv_len(t); i++) {
    const kv *lav = la && la->kind == KV_LIST && i < kv_len(la) ? kv_list_at(la, i) : kv_null();
    diffs sub = {0};
    if (!cmp(kv_list_at(t, i), kv_list_at(a, i), lav, false, &sub)) {
      push(d, eval_fmt("at index '%zu'", i));
      for (size_t j = 0; j < sub.n; j++)
        push(d, sub.seg[j]);
      free(sub.seg);
      return false;
    }
    diffs_free(&sub);
  }
  return true;
}

/* Python set-element equality: 1, 1.0 and True are one element. */
static bool set_equal(const kv *x, const kv *y) {
  bool xn = is_number(x) || x->kind == KV_BOOL, yn = is_number(y) || y->kind == KV_BOOL;
  if (xn && yn) {
    double a = x->kind == KV_BOOL ? (double)x->u.b : num(x);
    double b = y->kind == KV_BOOL ? (double)y->u.b : num(y);
    return a == b;
  }
  return scalar_equal(x, y);
}
static bool set_has(const kv *l, const kv *x) {
  for (size_t i = 0; i < kv_len(l); i++)
    if (set_equal(kv_list_at(l, i), x)) return true;
  return false;
}

static bool cmp_set(const kv *t, const kv *a, diffs *d) {
  if (kv_len(t) == 0 && kv_len(a) == 0) return true;
  for (int side = 0; side < 2; side++) {
    const kv *l = side ? a : t;
    for (size_t i = 0; i < kv_len(l); i++) {
      const kv *e = kv_list_at(l, i);
      if (e->kind == KV_MAP) {
        push(d, eval_fmt("Could not compare array-as-set, try: "
                         "`x-koreo-compare-as-map`"));
        return false;
      }
      if (e->kind == KV_LIST) {
        push(d, eval_fmt("Could not compare array-as-set (unhashable type: 'list')"));
        return false;
      }
    }
  }
  for (size_t i = 0; i < kv_len(t); i++)
    if (!set_has(a, kv_list_at(t, i))) {
      char *s = eval_text(kv_list_at(t, i));
      push(d, eval_fmt("<missing '%s'>", s));
      free(s);
      return false;
    }
  for (size_t i = 0; i < kv_len(a); i++)
    if (!set_has(t, kv_list_at(a, i))) {
      char *s = eval_text(kv_list_at(a, i));
      push(d, eval_fmt("<unexpectedly found '%s'>", s));
      free(s);
      return false;
    }
  return true;
}

static bool mismatch2(diffs *d, const char *tt, const char *at) {
  push(d, eval_fmt("<target:%s, resource:%s>", tt, at));
  return false;
}

static bool cmp(const kv *t, const kv *a, const kv *la, bool as_set, diffs *d) {
  if (!a) a = kv_null();
  if (t->kind == KV_MAP && a->kind == KV_MAP) return cmp_map(t, a, la, d);
  if (t->kind == KV_MAP) return mismatch2(d, "object", type_name(a));
  if (a->kind == KV_MAP) return mismatch2(d, type_name(t), "object");
  if (t->kind == KV_LIST && a->kind == KV_LIST)
    return as_set ? cmp_set(t, a, d) : cmp_list(t, a, la, d);
  if (t->kind == KV_LIST) return mismatch2(d, "array", type_name(a));
  if (a->kind == KV_LIST) return mismatch2(d, type_name(t), "array");
  if (t->kind == KV_BOOL && a->kind == KV_BOOL) {
    if (t->u.b == a->u.b) return true;
    push(d, eval_fmt("<target:[%s], resource:[%s]>", t->u.b ? "True" : "False",
                     a->u.b ? "True" : "False"));
    return false;
  }
  if (t->kind == KV_BOOL) return mismatch2(d, "bool", type_name(a));
  if (a->kind == KV_BOOL) return mismatch2(d, type_name(t), "bool");
  if (a->kind == KV_NULL && koreo_truthy(t)) return mismatch2(d, type_name(t), "null or missing");
  if (t->kind == KV_NULL && koreo_truthy(a)) {
    push(d, eval_fmt("<target:null, resource:%s", type_name(a)));
    return false;
  }
  if (scalar_equal(t, a)) return true;
  char *ts = eval_text(t), *as = eval_text(a);
  push(d, eval_fmt("<target:[%s], resource:[%s]>", ts, as));
  free(ts);
  free(as);
  return false;
}

bool koreo_compare(const kv *target, const kv *actual, const kv *last_applied, char **differences) {
  diffs d = {0};
  bool ok = cmp(target ? target : kv_null(), actual, last_applied, false, &d);
  if (differences) {
    *differences = NULL;
    if (!ok) {
      size_t len = 1;
      for (size_t i = 0; i < d.n; i++)
        len += strlen(d.seg[i]) + 4;
      char *s = malloc(len);
      if (!s) kv_oom();
      s[0] = 0;
      for (size_t i = 0; i < d.n; i++) {
        if (i) strcat(s, " -> ");
        strcat(s, d.seg[i]);
      }
      *differences = s;
    }
  }
  diffs_free(&d);
  return ok;
}

kv *koreo_strip_directives(const kv *v) {
  if (v->kind == KV_MAP) {
    kv *m = kv_map_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++) {
      if (is_directive(kv_map_key_at(v, i))) continue;
      kv_map_set(m, kv_ref(kv_map_key_at(v, i)), koreo_strip_directives(kv_map_val_at(v, i)));
    }
    return m;
  }
  if (v->kind == KV_LIST) {
    kv *l = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(l, koreo_strip_directives(kv_list_at(v, i)));
    return l;
  }
  return kv_ref((kv *)v);
}

/* A copy of map `m` (NULL/non-map: empty) with `key` set to `val` (taken). */
static kv *map_with(const kv *m, const char *key, kv *val) {
  bool ismap = m && m->kind == KV_MAP;
  kv *r = kv_map_new((ismap ? kv_len(m) : 0) + 1);
  if (ismap)
    for (size_t i = 0; i < kv_len(m); i++)
      kv_map_set(r, kv_ref(kv_map_key_at(m, i)), kv_ref(kv_map_val_at(m, i)));
  kv_map_set_str(r, key, val);
  return r;
}

kv *koreo_with_last_applied(const kv *body) {
  kv *stripped = koreo_strip_directives(body);
  if (stripped->kind != KV_MAP) return stripped;
  char *text = kv_json_write(stripped, 0, NULL);
  const kv *md = kv_map_get_str(stripped, "metadata");
  const kv *ann = md && md->kind == KV_MAP ? kv_map_get_str(md, "annotations") : NULL;
  kv *nann = map_with(ann, KOREO_LAST_APPLIED_ANNOTATION, kv_string_take(text, strlen(text)));
  kv *nmd = map_with(md, "annotations", nann);
  kv *r = map_with(stripped, "metadata", nmd);
  kv_unref(stripped);
  return r;
}
