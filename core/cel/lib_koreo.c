/*
 * core/cel/lib_koreo.c: Koreo's 19 extension functions (spec 2.4, quirks
 * 7, 8, 25 and 26 of conformance/koreo-expressions/README.md): self_ref,
 * to_ref, group_ref, kindless_ref, config_connect_ready, overlay, flatten,
 * lower, strip, rstrip, split, split_first, split_last, split_index,
 * to_json, from_json, b64encode, b64decode, replace.
 *
 * Upstream implements them in Python over cel-python's types, so they
 * follow Python semantics: truthiness (0, false, "", null, [] and {} are
 * "missing"), `in` on the receiver (key test on maps, substring test on
 * strings, element test on lists), str methods (full Unicode lower(),
 * character-set strip(), split/rsplit), json.dumps(sort_keys=True) and
 * json.loads, and the lenient base64 decoder.  Where Python would raise a
 * TypeError/AttributeError the result is a "no matching overload" error;
 * where the Koreo function reports its own error the message keeps
 * Koreo's wording (e.g. "Missing `apiVersion`.").
 *
 * Every function is callable as a member (x.f(a)) and as a global
 * (f(x, a)); arity is checked here, at evaluation time, as upstream does.
 */
#include "cel_impl.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* ---- helpers ----------------------------------------------------------- */

/* Decode one code point of valid UTF-8 at s[*i] (invalid bytes decode as
 * themselves, one byte at a time). */
static uint32_t utf8_next(const char *s, size_t len, size_t *i) {
  const unsigned char *p = (const unsigned char *)s + *i;
  size_t left = len - *i;
  uint32_t c = p[0];
  size_t n;
  if (c < 0x80)
    n = 0;
  else if (c >= 0xC2 && c <= 0xDF)
    n = 1, c &= 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 2, c &= 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 3, c &= 0x07;
  else {
    *i += 1;
    return c;
  }
  if (left <= n) {
    *i += 1;
    return p[0];
  }
  for (size_t k = 1; k <= n; k++) {
    if ((p[k] & 0xC0) != 0x80) {
      *i += 1;
      return p[0];
    }
    c = (c << 6) | (p[k] & 0x3F);
  }
  *i += n + 1;
  return c;
}

static bool is_str(const kv *v) { return v->kind == KV_STRING; }

static kv *arity(const cel_call *c, kv *const *args, size_t nargs, size_t want) {
  return nargs == want ? NULL : cel_no_overload(c, args, nargs);
}

/* Python `a != "lit"` where `a` is any value: strings compare by content;
 * cel-python's int, uint, double, list and map types refuse to compare
 * with a string (TypeError → no such overload); anything else is simply
 * different.  Returns 1 (different), 0 (equal) or -1 (error). */
static int py_ne_str(const kv *a, const char *lit) {
  switch ((kv_kind)a->kind) {
  case KV_STRING: return strcmp(kv_str(a), lit) != 0 || strlen(lit) != a->u.s.len;
  case KV_INT:
  case KV_UINT:
  case KV_DOUBLE:
  case KV_LIST:
  case KV_MAP: return -1;
  default: return 1;
  }
}

/* Python `"needle" in container`: 1, 0, or -1 (TypeError). */
static int py_contains_str(const kv *container, const char *needle) {
  size_t n = strlen(needle);
  switch ((kv_kind)container->kind) {
  case KV_MAP: return kv_map_get_strn(container, needle, n) != NULL;
  case KV_STRING: return memmem(container->u.s.ptr, container->u.s.len, needle, n) != NULL;
  case KV_LIST:
    for (size_t i = 0; i < container->u.list.len; i++) {
      int ne = py_ne_str(container->u.list.items[i], needle);
      if (ne < 0) return -1;
      if (ne == 0) return 1;
    }
    return 0;
  default: return -1;
  }
}

static kv *get_str(const kv *map, const char *key) { return kv_map_get_str(map, key); }

/* ---- references (self_ref, to_ref, group_ref, kindless_ref) ------------ */

static kv *fn_self_ref(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *r = args[0];
  if (r->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  kv *api = get_str(r, "apiVersion");
  if (!api || !cel_py_truthy(api)) return cel_errorf(c, CEL_ERR_INVALID, "Missing `apiVersion`.");
  kv *kind = get_str(r, "kind");
  if (!kind || !cel_py_truthy(kind)) return cel_errorf(c, CEL_ERR_INVALID, "Missing `kind`.");
  kv *md = get_str(r, "metadata");
  if (!md || !cel_py_truthy(md)) return cel_errorf(c, CEL_ERR_INVALID, "Missing `metadata`.");
  if (md->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  kv *name = get_str(md, "name");
  if (!name || !cel_py_truthy(name))
    return cel_errorf(c, CEL_ERR_INVALID, "Missing `metadata.name`.");
  kv *ns = get_str(md, "namespace");
  if (!ns || !cel_py_truthy(ns))
    return cel_errorf(c, CEL_ERR_INVALID, "Missing `metadata.namespace`.");
  kv *out = kv_map_new(4);
  kv_map_set_str(out, "apiVersion", kv_ref(api));
  kv_map_set_str(out, "kind", kv_ref(kind));
  kv_map_set_str(out, "name", kv_ref(name));
  kv_map_set_str(out, "namespace", kv_ref(ns));
  return out;
}

/* The `external` / `name` + `namespace` part shared by the *_ref
 * functions; adds to `out` (consumed on error).  `src` need not be a map
 * (kindless_ref applies Python's `in` to any receiver first). */
static kv *ref_tail(const cel_call *c, kv *const *args, size_t nargs, const kv *src, kv *out) {
  int has = py_contains_str(src, "external");
  if (has < 0) goto no_overload;
  if (has) {
    if (src->kind != KV_MAP) goto no_overload;
    kv *ext = get_str(src, "external");
    if (!cel_py_truthy(ext)) {
      kv_unref(out);
      return cel_errorf(c, CEL_ERR_INVALID, "`external` must contain a value.");
    }
    kv_map_set_str(out, "external", kv_ref(ext));
    return out;
  }
  has = py_contains_str(src, "name");
  if (has < 0) goto no_overload;
  if (!has) {
    kv_unref(out);
    return cel_errorf(c, CEL_ERR_INVALID,
                      "`external` or `name` are required to build a reference.");
  }
  if (src->kind != KV_MAP) goto no_overload;
  kv *name = get_str(src, "name");
  if (!cel_py_truthy(name)) {
    kv_unref(out);
    return cel_errorf(c, CEL_ERR_INVALID, "`name` must contain a value.");
  }
  kv_map_set_str(out, "name", kv_ref(name));
  kv *ns = get_str(src, "namespace");
  if (ns && cel_py_truthy(ns)) kv_map_set_str(out, "namespace", kv_ref(ns));
  return out;
no_overload:
  kv_unref(out);
  return cel_no_overload(c, args, nargs);
}

static kv *fn_to_ref(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *src = args[0];
  if (src->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  kv *out = kv_map_new(4);
  kv *api = get_str(src, "apiVersion");
  if (api && cel_py_truthy(api)) kv_map_set_str(out, "apiVersion", kv_ref(api));
  kv *kind = get_str(src, "kind");
  if (kind && cel_py_truthy(kind)) kv_map_set_str(out, "kind", kv_ref(kind));
  return ref_tail(c, args, nargs, src, out);
}

static kv *fn_group_ref(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *src = args[0];
  if (src->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  kv *out = kv_map_new(4);
  kv *group = get_str(src, "apiGroup");
  if (group && cel_py_truthy(group)) {
    kv_map_set_str(out, "apiGroup", kv_ref(group));
  } else {
    kv *api = get_str(src, "apiVersion");
    if (api && is_str(api) && cel_py_truthy(api)) {
      const char *slash = memchr(api->u.s.ptr, '/', api->u.s.len);
      size_t n = slash ? (size_t)(slash - api->u.s.ptr) : api->u.s.len;
      kv_map_set_str(out, "apiGroup", kv_string(api->u.s.ptr, n));
    }
  }
  kv *kind = get_str(src, "kind");
  if (kind && cel_py_truthy(kind)) kv_map_set_str(out, "kind", kv_ref(kind));
  return ref_tail(c, args, nargs, src, out);
}

static kv *fn_kindless_ref(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  return ref_tail(c, args, nargs, args[0], kv_map_new(2));
}

/* ---- config_connect_ready ---------------------------------------------- */

/* Python iteration of a value: list → items, map → keys, string → one
 * string per code point, bytes → one int per byte.  Returns a new list,
 * or NULL when the value is not iterable. */
static kv *py_iter(const kv *v) {
  switch ((kv_kind)v->kind) {
  case KV_LIST: return kv_ref((kv *)v);
  case KV_MAP: {
    kv *l = kv_list_new(v->u.map.len);
    for (size_t i = 0; i < v->u.map.len; i++)
      kv_list_push(l, kv_ref(v->u.map.keys[i]));
    return l;
  }
  case KV_STRING: {
    kv *l = kv_list_new(v->u.s.len);
    for (size_t i = 0; i < v->u.s.len;) {
      size_t s = i;
      utf8_next(v->u.s.ptr, v->u.s.len, &i);
      kv_list_push(l, kv_string(v->u.s.ptr + s, i - s));
    }
    return l;
  }
  case KV_BYTES: {
    kv *l = kv_list_new(v->u.s.len);
    for (size_t i = 0; i < v->u.s.len; i++)
      kv_list_push(l, kv_int((unsigned char)v->u.s.ptr[i]));
    return l;
  }
  default: return NULL;
  }
}

static kv *fn_config_connect_ready(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *r = args[0];
  int has = py_contains_str(r, "status");
  if (has < 0) return cel_no_overload(c, args, nargs);
  if (!has) return kv_bool(false);
  if (r->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  const kv *status = get_str(r, "status");
  has = py_contains_str(status, "conditions");
  if (has < 0) return cel_no_overload(c, args, nargs);
  if (!has) return kv_bool(false);
  if (status->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  kv *conds = py_iter(get_str(status, "conditions"));
  if (!conds) return cel_no_overload(c, args, nargs);
  const kv *ready = NULL;
  kv *result = NULL;
  for (size_t i = 0; i < conds->u.list.len && !result; i++) {
    const kv *cond = conds->u.list.items[i];
    if (cond->kind != KV_MAP) {
      result = cel_no_overload(c, args, nargs);
      break;
    }
    const kv *type = get_str(cond, "type");
    int ne = type ? py_ne_str(type, "Ready") : 1;
    if (ne < 0) result = cel_no_overload(c, args, nargs);
    if (ne != 0) continue;
    if (ready) result = kv_bool(false); /* more than one Ready condition */
    ready = cond;
  }
  if (!result) {
    if (!ready || !cel_py_truthy(ready)) {
      result = kv_bool(false);
    } else {
      const kv *reason = get_str(ready, "reason");
      int ne = reason ? py_ne_str(reason, "UpToDate") : 1;
      if (ne == 0) {
        const kv *st = get_str(ready, "status");
        ne = st ? py_ne_str(st, "True") : 1;
      }
      result = ne < 0 ? cel_no_overload(c, args, nargs) : kv_bool(ne == 0);
    }
  }
  kv_unref(conds);
  return result;
}

/* ---- overlay, flatten -------------------------------------------------- */

static kv *fn_overlay(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 2);
  if (e) return e;
  const kv *base = args[0], *o = args[1];
  if (o->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  if (o->u.map.len == 0) return kv_ref(args[0]); /* nothing to apply */
  if (base->kind != KV_MAP) return cel_no_overload(c, args, nargs);
  return kv_map_deep_merge(base, o);
}

static kv *fn_flatten(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  if (!cel_py_truthy(args[0])) return kv_list_new(0);
  kv *outer = py_iter(args[0]);
  if (!outer) return cel_no_overload(c, args, nargs);
  kv *out = kv_list_new(outer->u.list.len);
  for (size_t i = 0; i < outer->u.list.len; i++) {
    kv *inner = py_iter(outer->u.list.items[i]);
    if (!inner) {
      kv_unref(out);
      kv_unref(outer);
      return cel_no_overload(c, args, nargs);
    }
    for (size_t j = 0; j < inner->u.list.len; j++)
      kv_list_push(out, kv_ref(inner->u.list.items[j]));
    kv_unref(inner);
  }
  kv_unref(outer);
  return out;
}

/* ---- strings: lower, strip, rstrip, split*, replace --------------------- */

static locale_t utf8_locale(void) {
  static locale_t loc;
  static bool tried;
  if (!tried) {
    tried = true;
    loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!loc) loc = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
  }
  return loc;
}

static uint32_t to_lower(uint32_t c) {
  locale_t loc = utf8_locale();
  if (loc) return (uint32_t)towlower_l((wint_t)c, loc);
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Unicode "cased" (approximation through the case tables). */
static bool is_cased(uint32_t c) {
  locale_t loc = utf8_locale();
  if (!loc) return (c | 32) >= 'a' && (c | 32) <= 'z';
  return iswupper_l((wint_t)c, loc) || iswlower_l((wint_t)c, loc) ||
         towlower_l((wint_t)c, loc) != (wint_t)c || towupper_l((wint_t)c, loc) != (wint_t)c;
}

/* Unicode "case-ignorable" (the common members: apostrophes, periods,
 * colons, modifier symbols, combining marks, format characters). */
static bool is_case_ignorable(uint32_t c) {
  switch (c) {
  case 0x27:
  case 0x2E:
  case 0x3A:
  case 0x5E:
  case 0x60:
  case 0xA8:
  case 0xAD:
  case 0xAF:
  case 0xB4:
  case 0xB7:
  case 0xB8:
  case 0x387:
  case 0x2018:
  case 0x2019:
  case 0x2024:
  case 0x2027:
  case 0xFE13:
  case 0xFE52:
  case 0xFE55:
  case 0xFF07:
  case 0xFF0E:
  case 0xFF1A: return true;
  default: break;
  }
  return (c >= 0x2B0 && c <= 0x36F) || (c >= 0x483 && c <= 0x489) || (c >= 0x591 && c <= 0x5BD) ||
         (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
         (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2060 && c <= 0x2064) || (c >= 0x20D0 && c <= 0x20FF) ||
         (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFE20 && c <= 0xFE2F);
}

/* Python str.lower(): full Unicode lower-casing, U+0130 → "i̇" and the
 * final-sigma rule for U+03A3. */
static kv *py_lower(const char *s, size_t n) {
  size_t cap = n + 1;
  uint32_t *cps = malloc(cap * sizeof *cps);
  if (!cps) kv_oom();
  size_t m = 0;
  for (size_t i = 0; i < n;)
    cps[m++] = utf8_next(s, n, &i);
  kv_strbuf b = {0};
  for (size_t i = 0; i < m; i++) {
    uint32_t c = cps[i];
    if (c == 0x130) {
      kv_strbuf_put_utf8(&b, 'i');
      kv_strbuf_put_utf8(&b, 0x307);
    } else if (c == 0x3A3) {
      size_t j = i;
      while (j > 0 && is_case_ignorable(cps[j - 1]))
        j--;
      bool final = j > 0 && is_cased(cps[j - 1]);
      if (final) {
        size_t k = i + 1;
        while (k < m && is_case_ignorable(cps[k]))
          k++;
        final = k == m || !is_cased(cps[k]);
      }
      kv_strbuf_put_utf8(&b, final ? 0x3C2 : 0x3C3);
    } else if (c < 0x80) {
      kv_strbuf_putc(&b, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else {
      kv_strbuf_put_utf8(&b, to_lower(c));
    }
  }
  free(cps);
  return kv_strbuf_take_string(&b);
}

static kv *fn_lower(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *s = args[0];
  if (s->kind == KV_STRING) return py_lower(s->u.s.ptr, s->u.s.len);
  if (s->kind == KV_BYTES) {
    /* bytes.lower() (ASCII only), then read back as a UTF-8 string */
    if (!kv_utf8_valid(s->u.s.ptr, s->u.s.len))
      return cel_errorf(c, CEL_ERR_INVALID, "lower(): bytes value is not valid UTF-8");
    char *o = malloc(s->u.s.len + 1);
    if (!o) kv_oom();
    for (size_t i = 0; i < s->u.s.len; i++) {
      char ch = s->u.s.ptr[i];
      o[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    o[s->u.s.len] = 0;
    return kv_string_take(o, s->u.s.len);
  }
  return cel_no_overload(c, args, nargs);
}

/* Python's str.isspace() code points (strip() without characters). */
static bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

static bool in_set(uint32_t c, const kv *chars) {
  if (!chars) return py_space(c);
  for (size_t i = 0; i < chars->u.s.len;)
    if (utf8_next(chars->u.s.ptr, chars->u.s.len, &i) == c) return true;
  return false;
}

/* str.strip(chars) / str.rstrip(chars): `chars` a string (a character
 * set) or null (whitespace). */
static kv *do_strip(const cel_call *c, kv *const *args, size_t nargs, bool left) {
  kv *e = arity(c, args, nargs, 2);
  if (e) return e;
  const kv *s = args[0], *chars = args[1];
  if (s->kind != KV_STRING || (chars->kind != KV_STRING && chars->kind != KV_NULL))
    return cel_no_overload(c, args, nargs);
  if (chars->kind == KV_NULL) chars = NULL;
  const char *p = s->u.s.ptr;
  size_t n = s->u.s.len, lo = 0, hi = n;
  if (left) {
    while (lo < hi) {
      size_t i = lo;
      uint32_t cp = utf8_next(p, n, &i);
      if (!in_set(cp, chars)) break;
      lo = i;
    }
  }
  while (hi > lo) {
    size_t st = hi - 1;
    while (st > lo && ((unsigned char)p[st] & 0xC0) == 0x80)
      st--;
    size_t i = st;
    uint32_t cp = utf8_next(p, n, &i);
    if (!in_set(cp, chars)) break;
    hi = st;
  }
  return kv_string(p + lo, hi - lo);
}

static kv *fn_strip(const cel_call *c, kv *const *args, size_t nargs) {
  return do_strip(c, args, nargs, true);
}
static kv *fn_rstrip(const cel_call *c, kv *const *args, size_t nargs) {
  return do_strip(c, args, nargs, false);
}

/* A string result read from a bytes piece (Python StringType(bytes)). */
static kv *piece(const cel_call *c, bool bytes, const char *p, size_t n) {
  if (bytes && !kv_utf8_valid(p, n))
    return cel_errorf(c, CEL_ERR_INVALID, "%s: result is not valid UTF-8", c->name);
  return kv_string(p, n);
}

/* Receiver/separator check shared by the split functions: both strings or
 * both bytes.  Returns NULL when fine, else an error. */
static kv *split_args(const cel_call *c, kv *const *args, size_t nargs, size_t want) {
  kv *e = arity(c, args, nargs, want);
  if (e) return e;
  if (!cel_py_truthy(args[1]))
    return cel_errorf(c, CEL_ERR_INVALID, "split separator may not be empty");
  return NULL;
}

static bool split_types_ok(const kv *s, const kv *sep) {
  return (s->kind == KV_STRING && sep->kind == KV_STRING) ||
         (s->kind == KV_BYTES && sep->kind == KV_BYTES);
}

/* All pieces of s split on sep (non-empty), as a list of strings. */
static kv *split_all(const cel_call *c, const kv *s, const kv *sep) {
  bool bytes = s->kind == KV_BYTES;
  const char *p = s->u.s.ptr, *end = p + s->u.s.len;
  kv *out = kv_list_new(4);
  for (;;) {
    const char *hit = memmem(p, (size_t)(end - p), sep->u.s.ptr, sep->u.s.len);
    const char *stop = hit ? hit : end;
    kv *part = piece(c, bytes, p, (size_t)(stop - p));
    if (part->kind == KV_ERROR) {
      kv_unref(out);
      return part;
    }
    kv_list_push(out, part);
    if (!hit) break;
    p = hit + sep->u.s.len;
  }
  return out;
}

static kv *fn_split(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = split_args(c, args, nargs, 2);
  if (e) return e;
  if (!split_types_ok(args[0], args[1])) return cel_no_overload(c, args, nargs);
  return split_all(c, args[0], args[1]);
}

static kv *fn_split_first(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = split_args(c, args, nargs, 2);
  if (e) return e;
  if (!cel_py_truthy(args[0])) return kv_string("", 0);
  const kv *s = args[0], *sep = args[1];
  if (!split_types_ok(s, sep)) return cel_no_overload(c, args, nargs);
  const char *hit = memmem(s->u.s.ptr, s->u.s.len, sep->u.s.ptr, sep->u.s.len);
  size_t n = hit ? (size_t)(hit - s->u.s.ptr) : s->u.s.len;
  return piece(c, s->kind == KV_BYTES, s->u.s.ptr, n);
}

static kv *fn_split_last(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = split_args(c, args, nargs, 2);
  if (e) return e;
  if (!cel_py_truthy(args[0])) return kv_string("", 0);
  const kv *s = args[0], *sep = args[1];
  if (!split_types_ok(s, sep)) return cel_no_overload(c, args, nargs);
  /* rsplit(sep, 1)[-1]: the part after the last occurrence */
  const char *p = s->u.s.ptr, *last = NULL;
  size_t n = s->u.s.len, m = sep->u.s.len;
  if (m <= n)
    for (size_t i = n - m + 1; i-- > 0;)
      if (memcmp(p + i, sep->u.s.ptr, m) == 0) {
        last = p + i;
        break;
      }
  const char *from = last ? last + m : p;
  return piece(c, s->kind == KV_BYTES, from, (size_t)(p + n - from));
}

static kv *fn_split_index(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = split_args(c, args, nargs, 3);
  if (e) return e;
  if (!cel_py_truthy(args[0])) return kv_string("", 0);
  const kv *s = args[0], *sep = args[1], *idx = args[2];
  if (!split_types_ok(s, sep)) return cel_no_overload(c, args, nargs);
  if (idx->kind != KV_INT && idx->kind != KV_UINT && idx->kind != KV_BOOL)
    return cel_no_overload(c, args, nargs);
  kv *parts = split_all(c, s, sep);
  if (parts->kind == KV_ERROR) return parts;
  size_t n = parts->u.list.len;
  bool ok;
  size_t at = 0;
  if (idx->kind == KV_UINT) {
    ok = idx->u.u < n;
    at = (size_t)idx->u.u;
  } else {
    int64_t i = idx->kind == KV_BOOL ? (int64_t)idx->u.b : idx->u.i;
    if (i < 0) {
      ok = (uint64_t)0 - (uint64_t)i <= n;
      if (ok) at = n - (size_t)((uint64_t)0 - (uint64_t)i);
    } else {
      ok = (uint64_t)i < n;
      at = (size_t)i;
    }
  }
  kv *r = ok ? kv_ref(parts->u.list.items[at])
             : cel_errorf(c, CEL_ERR_RANGE, "index out of bounds on split");
  kv_unref(parts);
  return r;
}

static kv *fn_replace(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 3);
  if (e) return e;
  const kv *s = args[0], *old = args[1], *nw = args[2];
  kv_kind k = (kv_kind)s->kind;
  if ((k != KV_STRING && k != KV_BYTES) || old->kind != k || nw->kind != k)
    return cel_errorf(c, CEL_ERR_NO_OVERLOAD,
                      "Replace error: replace() needs three strings, got (%s, %s, %s)",
                      cel_type_name(s), cel_type_name(old), cel_type_name(nw));
  const char *p = s->u.s.ptr, *end = p + s->u.s.len;
  kv_strbuf b = {0};
  if (old->u.s.len == 0) {
    /* Python: `new` between every character and at both ends */
    kv_strbuf_put(&b, nw->u.s.ptr, nw->u.s.len);
    for (size_t i = 0; i < s->u.s.len;) {
      size_t st = i;
      if (k == KV_STRING)
        utf8_next(p, s->u.s.len, &i);
      else
        i++;
      kv_strbuf_put(&b, p + st, i - st);
      kv_strbuf_put(&b, nw->u.s.ptr, nw->u.s.len);
    }
  } else {
    for (;;) {
      const char *hit = memmem(p, (size_t)(end - p), old->u.s.ptr, old->u.s.len);
      if (!hit) {
        kv_strbuf_put(&b, p, (size_t)(end - p));
        break;
      }
      kv_strbuf_put(&b, p, (size_t)(hit - p));
      kv_strbuf_put(&b, nw->u.s.ptr, nw->u.s.len);
      p = hit + old->u.s.len;
    }
  }
  if (k == KV_BYTES && !kv_utf8_valid(b.p, b.len)) {
    kv_strbuf_free(&b);
    return cel_errorf(c, CEL_ERR_INVALID, "Replace error: result is not valid UTF-8");
  }
  return kv_strbuf_take_string(&b);
}

/* ---- to_json: Python json.dumps(v, sort_keys=True) ---------------------- */

static void json_str(kv_strbuf *b, const char *s, size_t n) {
  kv_strbuf_putc(b, '"');
  for (size_t i = 0; i < n;) {
    uint32_t c = utf8_next(s, n, &i);
    char u[16];
    switch (c) {
    case '"': kv_strbuf_puts(b, "\\\""); continue;
    case '\\': kv_strbuf_puts(b, "\\\\"); continue;
    case '\n': kv_strbuf_puts(b, "\\n"); continue;
    case '\r': kv_strbuf_puts(b, "\\r"); continue;
    case '\t': kv_strbuf_puts(b, "\\t"); continue;
    case '\b': kv_strbuf_puts(b, "\\b"); continue;
    case '\f': kv_strbuf_puts(b, "\\f"); continue;
    default: break;
    }
    if (c >= 0x20 && c < 0x7F) {
      kv_strbuf_putc(b, (char)c);
    } else if (c < 0x10000) {
      snprintf(u, sizeof u, "\\u%04x", (unsigned)c);
      kv_strbuf_puts(b, u);
    } else {
      uint32_t v = c - 0x10000;
      snprintf(u, sizeof u, "\\u%04x\\u%04x", (unsigned)(0xD800 + (v >> 10)),
               (unsigned)(0xDC00 + (v & 0x3FF)));
      kv_strbuf_puts(b, u);
    }
  }
  kv_strbuf_putc(b, '"');
}

static void json_double(kv_strbuf *b, double d) {
  if (isnan(d))
    kv_strbuf_puts(b, "NaN");
  else if (isinf(d))
    kv_strbuf_puts(b, d < 0 ? "-Infinity" : "Infinity");
  else {
    char buf[32];
    kv_double_repr(d, buf);
    kv_strbuf_puts(b, buf);
  }
}

/* Order of two map keys of the same kind (Python's < on them). */
static int key_cmp(const kv *a, const kv *b) {
  switch ((kv_kind)a->kind) {
  case KV_STRING: {
    /* UTF-8 byte order equals code point order */
    size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
    int r = memcmp(a->u.s.ptr, b->u.s.ptr, n);
    if (r) return r;
    return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
  }
  case KV_INT: return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
  case KV_UINT: return a->u.u < b->u.u ? -1 : a->u.u > b->u.u;
  case KV_BOOL: return (int)a->u.b - (int)b->u.b;
  case KV_DOUBLE: return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
  default: return 0;
  }
}

static const kv *g_sort_map;
static int entry_cmp(const void *x, const void *y) {
  size_t i = *(const size_t *)x, j = *(const size_t *)y;
  return key_cmp(g_sort_map->u.map.keys[i], g_sort_map->u.map.keys[j]);
}

/* Returns NULL on success or an error message (static text or `msg`). */
static const char *json_dump(kv_strbuf *b, const kv *v, char *msg, size_t msglen, int depth) {
  char buf[48];
  if (depth > 1000) return "nesting too deep";
  switch ((kv_kind)v->kind) {
  case KV_NULL: kv_strbuf_puts(b, "null"); return NULL;
  case KV_BOOL: kv_strbuf_puts(b, v->u.b ? "1" : "0"); return NULL; /* quirk 7 */
  case KV_INT:
    snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
    kv_strbuf_puts(b, buf);
    return NULL;
  case KV_UINT:
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v->u.u);
    kv_strbuf_puts(b, buf);
    return NULL;
  case KV_DOUBLE: json_double(b, v->u.d); return NULL;
  case KV_STRING: json_str(b, v->u.s.ptr, v->u.s.len); return NULL;
  case KV_LIST:
    kv_strbuf_putc(b, '[');
    for (size_t i = 0; i < v->u.list.len; i++) {
      if (i) kv_strbuf_puts(b, ", ");
      const char *err = json_dump(b, v->u.list.items[i], msg, msglen, depth + 1);
      if (err) return err;
    }
    kv_strbuf_putc(b, ']');
    return NULL;
  case KV_MAP: {
    size_t n = v->u.map.len;
    for (size_t i = 0; i < n; i++) {
      const kv *k = v->u.map.keys[i];
      if (k->kind != KV_STRING && k->kind != KV_INT && k->kind != KV_UINT && k->kind != KV_BOOL &&
          k->kind != KV_DOUBLE && k->kind != KV_NULL) {
        snprintf(msg, msglen, "map keys must be string, int, double, bool or null, not %s",
                 cel_type_name(k));
        return msg;
      }
      if (i && k->kind != v->u.map.keys[0]->kind) {
        snprintf(msg, msglen, "cannot sort map keys of different types (%s and %s)",
                 cel_type_name(v->u.map.keys[0]), cel_type_name(k));
        return msg;
      }
    }
    if (n > 1 && v->u.map.keys[0]->kind == KV_NULL) {
      snprintf(msg, msglen, "cannot sort map keys of type null");
      return msg;
    }
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) kv_oom();
    for (size_t i = 0; i < n; i++)
      order[i] = i;
    const kv *saved = g_sort_map;
    g_sort_map = v;
    qsort(order, n, sizeof *order, entry_cmp);
    g_sort_map = saved;
    kv_strbuf_putc(b, '{');
    const char *err = NULL;
    for (size_t x = 0; x < n && !err; x++) {
      const kv *k = v->u.map.keys[order[x]];
      if (x) kv_strbuf_puts(b, ", ");
      switch ((kv_kind)k->kind) {
      case KV_STRING: json_str(b, k->u.s.ptr, k->u.s.len); break;
      case KV_DOUBLE: {
        kv_strbuf t = {0};
        json_double(&t, k->u.d);
        json_str(b, t.p, t.len);
        kv_strbuf_free(&t);
        break;
      }
      case KV_NULL: kv_strbuf_puts(b, "\"null\""); break;
      default: {
        kv_strbuf t = {0};
        json_dump(&t, k, msg, msglen, depth + 1);
        json_str(b, t.p, t.len);
        kv_strbuf_free(&t);
        break;
      }
      }
      kv_strbuf_puts(b, ": ");
      err = json_dump(b, v->u.map.vals[order[x]], msg, msglen, depth + 1);
    }
    free(order);
    if (err) return err;
    kv_strbuf_putc(b, '}');
    return NULL;
  }
  default:
    snprintf(msg, msglen, "a %s value is not JSON serializable", cel_type_name(v));
    return msg;
  }
}

static kv *fn_to_json(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  kv_strbuf b = {0};
  char msg[256];
  const char *err = json_dump(&b, args[0], msg, sizeof msg, 0);
  if (err) {
    kv_strbuf_free(&b);
    return cel_errorf(c, CEL_ERR_INVALID, "JSON Encoding error: %s", err);
  }
  return kv_strbuf_take_string(&b);
}

/* ---- from_json: Python json.loads -------------------------------------- */

typedef struct jparse {
  const char *s;
  size_t n, i;
  char err[160];
} jparse;

static void jp_ws(jparse *p) {
  while (p->i < p->n &&
         (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static kv *jp_fail(jparse *p, const char *what) {
  /* line/column as a reader counts them (column in code points) */
  size_t line = 1, col = 1;
  for (size_t i = 0; i < p->i && i < p->n;) {
    if (p->s[i] == '\n') {
      line++;
      col = 1;
      i++;
    } else {
      utf8_next(p->s, p->n, &i);
      col++;
    }
  }
  snprintf(p->err, sizeof p->err, "%s at line %zu, column %zu", what, line, col);
  return NULL;
}

static bool jp_lit(jparse *p, const char *w) {
  size_t n = strlen(w);
  if (p->n - p->i >= n && memcmp(p->s + p->i, w, n) == 0) {
    p->i += n;
    return true;
  }
  return false;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool jp_hex4(jparse *p, size_t at, uint32_t *out) {
  if (at + 4 > p->n) return false;
  uint32_t v = 0;
  for (size_t k = 0; k < 4; k++) {
    int h = hexval(p->s[at + k]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  *out = v;
  return true;
}

static kv *jp_string(jparse *p) {
  p->i++; /* opening quote */
  kv_strbuf b = {0};
  for (;;) {
    if (p->i >= p->n) {
      kv_strbuf_free(&b);
      return jp_fail(p, "unterminated string");
    }
    unsigned char ch = (unsigned char)p->s[p->i];
    if (ch == '"') {
      p->i++;
      return kv_strbuf_take_string(&b);
    }
    if (ch < 0x20) {
      kv_strbuf_free(&b);
      return jp_fail(p, "invalid control character in string");
    }
    if (ch != '\\') {
      kv_strbuf_putc(&b, (char)ch);
      p->i++;
      continue;
    }
    if (p->i + 1 >= p->n) {
      kv_strbuf_free(&b);
      return jp_fail(p, "unterminated string");
    }
    char esc = p->s[p->i + 1];
    const char *simple = NULL;
    switch (esc) {
    case '"': simple = "\""; break;
    case '\\': simple = "\\"; break;
    case '/': simple = "/"; break;
    case 'b': simple = "\b"; break;
    case 'f': simple = "\f"; break;
    case 'n': simple = "\n"; break;
    case 'r': simple = "\r"; break;
    case 't': simple = "\t"; break;
    case 'u': break;
    default: kv_strbuf_free(&b); return jp_fail(p, "invalid \\escape");
    }
    if (simple) {
      kv_strbuf_puts(&b, simple);
      p->i += 2;
      continue;
    }
    uint32_t u;
    if (!jp_hex4(p, p->i + 2, &u)) {
      kv_strbuf_free(&b);
      return jp_fail(p, "invalid \\uXXXX escape");
    }
    p->i += 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
      uint32_t lo;
      if (p->i + 1 < p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u' &&
          jp_hex4(p, p->i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        p->i += 6;
      }
    }
    if (u >= 0xD800 && u <= 0xDFFF) {
      /* Python keeps a lone surrogate; a UTF-8 string cannot hold one */
      kv_strbuf_free(&b);
      return jp_fail(p, "lone surrogate in \\u escape");
    }
    kv_strbuf_put_utf8(&b, u); /* U+0000 too: one NUL byte */
  }
}

static kv *jp_number(jparse *p) {
  size_t st = p->i;
  if (p->s[p->i] == '-') p->i++;
  if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
    p->i = st;
    return jp_fail(p, "expecting value");
  }
  if (p->s[p->i] == '0')
    p->i++;
  else
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
      p->i++;
  bool is_float = false;
  if (p->i + 1 < p->n && p->s[p->i] == '.' && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9') {
    is_float = true;
    p->i++;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
      p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    size_t j = p->i + 1;
    if (j < p->n && (p->s[j] == '+' || p->s[j] == '-')) j++;
    if (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') {
      is_float = true;
      while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9')
        j++;
      p->i = j;
    }
  }
  size_t len = p->i - st;
  char small[64];
  char *t = len < sizeof small ? small : malloc(len + 1);
  if (!t) kv_oom();
  memcpy(t, p->s + st, len);
  t[len] = 0;
  kv *r;
  if (is_float) {
    r = kv_double(strtod(t, NULL));
  } else {
    errno = 0;
    long long v = strtoll(t, NULL, 10);
    if (errno == ERANGE) {
      p->i = st;
      r = jp_fail(p, "integer overflow (outside int64)");
    } else {
      r = kv_int(v);
    }
  }
  if (t != small) free(t);
  return r;
}

static kv *jp_value(jparse *p, int depth) {
  if (depth > 1000) return jp_fail(p, "nesting too deep");
  if (p->i >= p->n) return jp_fail(p, "expecting value");
  char ch = p->s[p->i];
  switch (ch) {
  case '"': return jp_string(p);
  case '{': {
    p->i++;
    kv *m = kv_map_new(4);
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
      p->i++;
      return m;
    }
    for (;;) {
      jp_ws(p);
      if (p->i >= p->n || p->s[p->i] != '"') {
        kv_unref(m);
        return jp_fail(p, "expecting property name enclosed in double quotes");
      }
      kv *k = jp_string(p);
      if (!k) {
        kv_unref(m);
        return NULL;
      }
      jp_ws(p);
      if (p->i >= p->n || p->s[p->i] != ':') {
        kv_unref(k);
        kv_unref(m);
        return jp_fail(p, "expecting ':' delimiter");
      }
      p->i++;
      jp_ws(p);
      kv *v = jp_value(p, depth + 1);
      if (!v) {
        kv_unref(k);
        kv_unref(m);
        return NULL;
      }
      kv_map_set(m, k, v); /* a repeated key keeps its place, last value wins */
      jp_ws(p);
      if (p->i < p->n && p->s[p->i] == ',') {
        p->i++;
        continue;
      }
      if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return m;
      }
      kv_unref(m);
      return jp_fail(p, "expecting ',' delimiter");
    }
  }
  case '[': {
    p->i++;
    kv *l = kv_list_new(4);
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
      p->i++;
      return l;
    }
    for (;;) {
      jp_ws(p);
      kv *v = jp_value(p, depth + 1);
      if (!v) {
        kv_unref(l);
        return NULL;
      }
      kv_list_push(l, v);
      jp_ws(p);
      if (p->i < p->n && p->s[p->i] == ',') {
        p->i++;
        continue;
      }
      if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return l;
      }
      kv_unref(l);
      return jp_fail(p, "expecting ',' delimiter");
    }
  }
  default: break;
  }
  if (jp_lit(p, "null")) return kv_null();
  if (jp_lit(p, "true")) return kv_bool(true);
  if (jp_lit(p, "false")) return kv_bool(false);
  if (jp_lit(p, "NaN")) return kv_double(NAN);
  if (jp_lit(p, "Infinity")) return kv_double(INFINITY);
  if (jp_lit(p, "-Infinity")) return kv_double(-INFINITY);
  if (ch == '-' || (ch >= '0' && ch <= '9')) return jp_number(p);
  return jp_fail(p, "expecting value");
}

static kv *fn_from_json(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *s = args[0];
  if (s->kind != KV_STRING && s->kind != KV_BYTES)
    return cel_errorf(c, CEL_ERR_INVALID,
                      "JSON Decoding error: the JSON document must be a string or bytes, not %s",
                      cel_type_name(s));
  jparse p = {.s = s->u.s.ptr, .n = s->u.s.len, .i = 0, .err = ""};
  if (s->kind == KV_BYTES) {
    if (p.n >= 3 && memcmp(p.s, "\xEF\xBB\xBF", 3) == 0) p.i = 3; /* utf-8-sig */
    if (!kv_utf8_valid(p.s + p.i, p.n - p.i))
      return cel_errorf(c, CEL_ERR_INVALID, "JSON Decoding error: bytes are not valid UTF-8");
  } else if (p.n >= 3 && memcmp(p.s, "\xEF\xBB\xBF", 3) == 0) {
    return cel_errorf(c, CEL_ERR_INVALID, "JSON Decoding error: unexpected UTF-8 byte order mark");
  }
  jp_ws(&p);
  kv *v = jp_value(&p, 0);
  if (v) {
    jp_ws(&p);
    if (p.i < p.n) {
      kv_unref(v);
      v = jp_fail(&p, "extra data");
    }
  }
  if (!v) return cel_errorf(c, CEL_ERR_INVALID, "JSON Decoding error: %s", p.err);
  return v;
}

/* ---- base64 ------------------------------------------------------------ */

static kv *fn_b64encode(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *s = args[0];
  if (s->kind != KV_STRING)
    return cel_errorf(c, CEL_ERR_INVALID,
                      "Base64 Encoding error: b64encode() needs a string, not %s",
                      cel_type_name(s));
  kv_strbuf b = {0};
  kv_strbuf_put_base64(&b, s->u.s.ptr, s->u.s.len);
  return kv_strbuf_take_string(&b);
}

/* Python's base64.b64decode(s) (binascii.a2b_base64, non-strict):
 * characters outside the alphabet are skipped, decoding stops at a
 * complete pad sequence, and an incomplete final quantum is an error. */
static kv *fn_b64decode(const cel_call *c, kv *const *args, size_t nargs) {
  kv *e = arity(c, args, nargs, 1);
  if (e) return e;
  const kv *s = args[0];
  if (s->kind != KV_STRING && s->kind != KV_BYTES)
    return cel_errorf(c, CEL_ERR_INVALID,
                      "Base64 Encoding error: b64decode() needs a string or bytes, not %s",
                      cel_type_name(s));
  const unsigned char *p = (const unsigned char *)s->u.s.ptr;
  size_t n = s->u.s.len;
  if (s->kind == KV_STRING)
    for (size_t i = 0; i < n; i++)
      if (p[i] >= 0x80)
        return cel_errorf(c, CEL_ERR_INVALID,
                          "Base64 Encoding error: the text must contain only ASCII characters");
  unsigned char *out = malloc(n / 4 * 3 + 4);
  if (!out) kv_oom();
  size_t o = 0, data = 0;
  int quad = 0, pads = 0;
  unsigned left = 0;
  bool done = false;
  for (size_t i = 0; i < n && !done; i++) {
    if (p[i] == '=') {
      if (quad >= 2 && quad + ++pads >= 4) done = true;
      continue;
    }
    int v = kv_base64_digit(p[i]);
    if (v < 0) continue;
    pads = 0;
    data++;
    switch (quad) {
    case 0:
      quad = 1;
      left = (unsigned)v;
      break;
    case 1:
      quad = 2;
      out[o++] = (unsigned char)((left << 2) | ((unsigned)v >> 4));
      left = (unsigned)v & 0x0F;
      break;
    case 2:
      quad = 3;
      out[o++] = (unsigned char)((left << 4) | ((unsigned)v >> 2));
      left = (unsigned)v & 0x03;
      break;
    default:
      quad = 0;
      out[o++] = (unsigned char)((left << 6) | (unsigned)v);
      left = 0;
      break;
    }
  }
  if (!done && quad != 0) {
    free(out);
    if (quad == 1)
      return cel_errorf(c, CEL_ERR_INVALID,
                        "Base64 Encoding error: invalid base64 text: %zu data characters "
                        "cannot be 1 more than a multiple of 4",
                        data);
    return cel_errorf(c, CEL_ERR_INVALID, "Base64 Encoding error: incorrect padding");
  }
  if (!kv_utf8_valid((const char *)out, o)) {
    free(out);
    return cel_errorf(c, CEL_ERR_INVALID,
                      "Base64 Encoding error: the decoded bytes are not valid UTF-8");
  }
  kv *r = kv_string((const char *)out, o);
  free(out);
  return r;
}

/* ---- the table ----------------------------------------------------------- */

#define KFN(name, fn)                                                                              \
  { name, CEL_FN_BOTH, 0, 255, fn }

const cel_fn_def cel_koreo_defs[] = {
    KFN("self_ref", fn_self_ref),
    KFN("to_ref", fn_to_ref),
    KFN("group_ref", fn_group_ref),
    KFN("kindless_ref", fn_kindless_ref),
    KFN("config_connect_ready", fn_config_connect_ready),
    KFN("overlay", fn_overlay),
    KFN("flatten", fn_flatten),
    KFN("lower", fn_lower),
    KFN("split", fn_split),
    KFN("split_first", fn_split_first),
    KFN("split_last", fn_split_last),
    KFN("split_index", fn_split_index),
    KFN("strip", fn_strip),
    KFN("rstrip", fn_rstrip),
    KFN("to_json", fn_to_json),
    KFN("from_json", fn_from_json),
    KFN("b64encode", fn_b64encode),
    KFN("b64decode", fn_b64decode),
    KFN("replace", fn_replace),
};
const size_t cel_koreo_ndefs = sizeof cel_koreo_defs / sizeof *cel_koreo_defs;
