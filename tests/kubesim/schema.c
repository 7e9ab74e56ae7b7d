/*
 * tests/kubesim/schema.c: custom resources against their CRD's structural
 * openAPIV3Schema, in the apiserver's order: pruning of undeclared fields
 * (unless x-kubernetes-preserve-unknown-fields), defaults, then
 * validation (type, nullable, required, enum, minimum/maximum, lengths,
 * pattern via PCRE2, minItems/maxItems, x-kubernetes-int-or-string,
 * additionalProperties), reported as 422 Invalid with field paths.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "kubesim.h"

#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool flag(const kv *s, const char *k) {
  kv *v = ku_get(s, k);
  return v && v->kind == KV_BOOL && v->u.b;
}

static kv *prune(const kv *schema, const kv *v, int depth) {
  if (!schema || schema->kind != KV_MAP) return kv_ref((kv *)v);
  if (v->kind == KV_MAP) {
    kv *props = ku_get(schema, "properties");
    kv *addl = ku_get(schema, "additionalProperties");
    bool keep_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields") ||
                        (addl && addl->kind == KV_BOOL && addl->u.b);
    kv *r = kv_map_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *k = kv_map_key_at(v, i), *c = kv_map_val_at(v, i);
      const char *ks = kv_str(k);
      if (depth == 0 &&
          (!strcmp(ks, "apiVersion") || !strcmp(ks, "kind") || !strcmp(ks, "metadata"))) {
        kv_map_set(r, kv_ref(k), kv_ref(c));
        continue;
      }
      kv *ps = props ? kv_map_get(props, k) : NULL;
      if (ps) {
        kv_map_set(r, kv_ref(k), prune(ps, c, depth + 1));
      } else if (addl && addl->kind == KV_MAP) {
        kv_map_set(r, kv_ref(k), prune(addl, c, depth + 1));
      } else if (keep_unknown) {
        kv_map_set(r, kv_ref(k), kv_ref(c));
      }
    }
    return r;
  }
  if (v->kind == KV_LIST) {
    kv *items = ku_get(schema, "items");
    kv *r = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(r, prune(items, kv_list_at(v, i), depth + 1));
    return r;
  }
  return kv_ref((kv *)v);
}

kv *ks_schema_prune(const kv *schema, const kv *obj) { return prune(schema, obj, 0); }

static kv *apply_defaults(const kv *schema, const kv *v) {
  if (!schema || schema->kind != KV_MAP) return kv_ref((kv *)v);
  if (v->kind == KV_MAP) {
    kv *props = ku_get(schema, "properties");
    kv *addl = ku_get(schema, "additionalProperties");
    kv *r = kv_map_new(kv_len(v) + 2);
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *k = kv_map_key_at(v, i);
      kv *ps = props ? kv_map_get(props, k) : (addl && addl->kind == KV_MAP ? addl : NULL);
      kv_map_set(r, kv_ref(k), apply_defaults(ps, kv_map_val_at(v, i)));
    }
    for (size_t i = 0; props && props->kind == KV_MAP && i < kv_len(props); i++) {
      kv *k = kv_map_key_at(props, i), *ps = kv_map_val_at(props, i);
      kv *d = ku_get(ps, "default");
      if (d && !kv_map_get(r, k)) kv_map_set(r, kv_ref(k), apply_defaults(ps, d));
    }
    return r;
  }
  if (v->kind == KV_LIST) {
    kv *items = ku_get(schema, "items");
    kv *r = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(r, apply_defaults(items, kv_list_at(v, i)));
    return r;
  }
  return kv_ref((kv *)v);
}

typedef struct vctx {
  kv *causes;
} vctx;

static void cause(vctx *c, const char *reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void cause(vctx *c, const char *reason, const char *field, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) kv_oom();
  va_end(ap);
  kv *cz = kv_map_new(3);
  kv_map_set_str(cz, "reason", kv_cstring(reason));
  kv_map_set_str(cz, "message", kv_string_take(msg, strlen(msg)));
  kv_map_set_str(cz, "field", kv_cstring(field));
  kv_list_push(c->causes, cz);
}

static const char *json_type(const kv *v) {
  switch (v->kind) {
  case KV_NULL: return "null";
  case KV_BOOL: return "boolean";
  case KV_INT:
  case KV_UINT: return "integer";
  case KV_DOUBLE: return "number";
  case KV_STRING: return "string";
  case KV_LIST: return "array";
  case KV_MAP: return "object";
  default: return "unknown";
  }
}

static char *shown(const kv *v) {
  size_t n;
  if (v->kind == KV_MAP || v->kind == KV_LIST) return strdup(json_type(v));
  return ku_json(v, &n);
}

static bool type_ok(const char *type, const kv *v) {
  if (!strcmp(type, "object")) return v->kind == KV_MAP;
  if (!strcmp(type, "array")) return v->kind == KV_LIST;
  if (!strcmp(type, "string")) return v->kind == KV_STRING;
  if (!strcmp(type, "boolean")) return v->kind == KV_BOOL;
  if (!strcmp(type, "integer"))
    return v->kind == KV_INT || v->kind == KV_UINT ||
           (v->kind == KV_DOUBLE && v->u.d == floor(v->u.d));
  if (!strcmp(type, "number"))
    return v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE;
  return true;
}

static double numval(const kv *v) {
  return v->kind == KV_INT ? (double)v->u.i : v->kind == KV_UINT ? (double)v->u.u : v->u.d;
}

static bool pattern_match(const char *pat, const char *s, size_t n) {
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
  if (!re) return true; /* an invalid pattern was refused with the CRD */
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return rc >= 0;
}

static void validate(vctx *c, const kv *schema, const kv *v, const char *path);

/* allOf / anyOf / oneOf / not: the number of subschemas `v` satisfies. */
static size_t count_valid(const kv *list, const kv *v, const char *path, vctx *all) {
  size_t ok = 0;
  for (size_t i = 0; list && list->kind == KV_LIST && i < kv_len(list); i++) {
    vctx sub = {kv_list_new(1)};
    validate(&sub, kv_list_at(list, i), v, path);
    if (kv_len(sub.causes) == 0)
      ok++;
    else if (all)
      for (size_t k = 0; k < kv_len(sub.causes); k++)
        kv_list_push(all->causes, kv_ref(kv_list_at(sub.causes, k)));
    kv_unref(sub.causes);
  }
  return ok;
}

static void junctors(vctx *c, const kv *schema, const kv *v, const char *path) {
  const char *shown_path = *path ? path : "<root>";
  kv *all = ku_get(schema, "allOf"), *any = ku_get(schema, "anyOf"), *one = ku_get(schema, "oneOf"),
     *not = ku_get(schema, "not");
  if (all && all->kind == KV_LIST) {
    size_t before = kv_len(c->causes);
    count_valid(all, v, path, c);
    if (kv_len(c->causes) > before)
      cause(c, "FieldValueInvalid", shown_path,
            "Invalid value: \"%s\": %s in body must validate all the schemas (allOf)", json_type(v),
            shown_path);
  }
  if (any && any->kind == KV_LIST && count_valid(any, v, path, NULL) == 0)
    cause(c, "FieldValueInvalid", shown_path,
          "Invalid value: \"%s\": %s in body must validate at least one schema (anyOf)",
          json_type(v), shown_path);
  if (one && one->kind == KV_LIST) {
    size_t n = count_valid(one, v, path, NULL);
    if (n == 0)
      cause(c, "FieldValueInvalid", shown_path,
            "Invalid value: \"%s\": %s in body must validate one and only one schema (oneOf). "
            "Found none valid",
            json_type(v), shown_path);
    else if (n > 1)
      cause(c, "FieldValueInvalid", shown_path,
            "Invalid value: \"%s\": %s in body must validate one and only one schema (oneOf). "
            "Found %zu valid alternatives",
            json_type(v), shown_path, n);
  }
  if (not &&not ->kind == KV_MAP) {
    kv *l = kv_list_new(1);
    kv_list_push(l, kv_ref(not ));
    if (count_valid(l, v, path, NULL) == 1)
      cause(c, "FieldValueInvalid", shown_path,
            "Invalid value: \"%s\": %s in body must not validate the schema (not)", json_type(v),
            shown_path);
    kv_unref(l);
  }
}

static void validate(vctx *c, const kv *schema, const kv *v, const char *path) {
  if (!schema || schema->kind != KV_MAP) return;
  if (v->kind != KV_NULL) junctors(c, schema, v, path);
  if (v->kind == KV_NULL) {
    if (!flag(schema, "nullable") && ku_str(schema, "type")) {
      char *s = shown(v);
      cause(c, "FieldValueTypeInvalid", path,
            "Invalid value: \"null\": %s in body must be of type %s: \"null\"", path,
            ku_str(schema, "type"));
      free(s);
    }
    return;
  }
  const char *type = ku_str(schema, "type");
  if (flag(schema, "x-kubernetes-int-or-string")) {
    if (v->kind != KV_STRING && v->kind != KV_INT && v->kind != KV_UINT) {
      char *s = shown(v);
      cause(c, "FieldValueTypeInvalid", path,
            "Invalid value: \"%s\": %s in body must be of type integer,string: %s", json_type(v),
            path, s);
      free(s);
    }
    return;
  }
  if (type && !type_ok(type, v)) {
    char *s = shown(v);
    cause(c, "FieldValueTypeInvalid", path,
          "Invalid value: \"%s\": %s in body must be of type %s: %s", json_type(v), path, type, s);
    free(s);
    return;
  }
  kv *en = ku_get(schema, "enum");
  if (en && en->kind == KV_LIST) {
    bool found = false;
    for (size_t i = 0; i < kv_len(en) && !found; i++)
      found = ku_json_equal(kv_list_at(en, i), v);
    if (!found) {
      ku_buf b = {0};
      for (size_t i = 0; i < kv_len(en); i++) {
        size_t n;
        char *js = ku_json(kv_list_at(en, i), &n);
        ku_buf_printf(&b, "%s%s", i ? ", " : "", js);
        free(js);
      }
      char *s = shown(v);
      cause(c, "FieldValueNotSupported", path, "Unsupported value: %s: supported values: %s", s,
            b.p ? b.p : "");
      free(s);
      free(b.p);
    }
  }
  if (v->kind == KV_INT || v->kind == KV_UINT || v->kind == KV_DOUBLE) {
    kv *mn = ku_get(schema, "minimum"), *mx = ku_get(schema, "maximum");
    double x = numval(v);
    char *s = shown(v);
    if (mn && (mn->kind == KV_INT || mn->kind == KV_DOUBLE)) {
      bool ex = flag(schema, "exclusiveMinimum");
      if (ex ? x <= numval(mn) : x < numval(mn)) {
        char *ms = shown(mn);
        cause(c, "FieldValueInvalid", path,
              "Invalid value: %s: %s in body should be greater than %s%s", s, path,
              ex ? "" : "or equal to ", ms);
        free(ms);
      }
    }
    if (mx && (mx->kind == KV_INT || mx->kind == KV_DOUBLE)) {
      bool ex = flag(schema, "exclusiveMaximum");
      if (ex ? x >= numval(mx) : x > numval(mx)) {
        char *ms = shown(mx);
        cause(c, "FieldValueInvalid", path,
              "Invalid value: %s: %s in body should be less than %s%s", s, path,
              ex ? "" : "or equal to ", ms);
        free(ms);
      }
    }
    free(s);
  }
  if (v->kind == KV_STRING) {
    int64_t lim;
    size_t len = kv_utf8_count(kv_str(v), kv_len(v));
    if (ku_as_int(ku_get(schema, "minLength"), &lim) && (int64_t)len < lim)
      cause(c, "FieldValueInvalid", path,
            "Invalid value: \"%s\": %s in body should be at least %lld chars long", kv_str(v), path,
            (long long)lim);
    if (ku_as_int(ku_get(schema, "maxLength"), &lim) && (int64_t)len > lim)
      cause(c, "FieldValueTooLong", path, "Too long: may not be more than %lld bytes",
            (long long)lim);
    const char *pat = ku_str(schema, "pattern");
    if (pat && !pattern_match(pat, kv_str(v), kv_len(v)))
      cause(c, "FieldValueInvalid", path, "Invalid value: \"%s\": %s in body should match '%s'",
            kv_str(v), path, pat);
  }
  if (v->kind == KV_LIST) {
    int64_t lim;
    if (ku_as_int(ku_get(schema, "minItems"), &lim) && (int64_t)kv_len(v) < lim)
      cause(c, "FieldValueInvalid", path,
            "Invalid value: %zu: %s in body should have at least %lld items", kv_len(v), path,
            (long long)lim);
    if (ku_as_int(ku_get(schema, "maxItems"), &lim) && (int64_t)kv_len(v) > lim)
      cause(c, "FieldValueTooMany", path, "Too many: %zu: must have at most %lld items", kv_len(v),
            (long long)lim);
    kv *items = ku_get(schema, "items");
    for (size_t i = 0; i < kv_len(v); i++) {
      char *p = ku_fmt("%s[%zu]", path, i);
      validate(c, items, kv_list_at(v, i), p);
      free(p);
    }
  }
  if (v->kind == KV_MAP) {
    kv *props = ku_get(schema, "properties");
    kv *addl = ku_get(schema, "additionalProperties");
    kv *req = ku_get(schema, "required");
    for (size_t i = 0; req && req->kind == KV_LIST && i < kv_len(req); i++) {
      kv *r = kv_list_at(req, i);
      if (r->kind == KV_STRING && !kv_map_get(v, r)) {
        char *p = *path ? ku_fmt("%s.%s", path, kv_str(r)) : ku_fmt("%s", kv_str(r));
        cause(c, "FieldValueRequired", p, "Required value");
        free(p);
      }
    }
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *k = kv_map_key_at(v, i);
      if (!*path && (!strcmp(kv_str(k), "metadata") || !strcmp(kv_str(k), "apiVersion") ||
                     !strcmp(kv_str(k), "kind")))
        continue;
      kv *ps = props ? kv_map_get(props, k) : NULL;
      if (!ps && addl && addl->kind == KV_MAP) ps = addl;
      if (!ps) continue;
      char *p = *path ? ku_fmt("%s.%s", path, kv_str(k)) : ku_fmt("%s", kv_str(k));
      validate(c, ps, kv_map_val_at(v, i), p);
      free(p);
    }
  }
}

kv *ks_schema_apply(const kv *schema, const kv *obj, const char *group, const char *kind,
                    kv **err) {
  *err = NULL;
  kv *pruned = prune(schema, obj, 0);
  kv *def = apply_defaults(schema, pruned);
  kv_unref(pruned);
  vctx c = {kv_list_new(2)};
  validate(&c, schema, def, "");
  if (kv_len(c.causes) == 0) {
    kv_unref(c.causes);
    return def;
  }
  const char *name = ku_str(ku_get(def, "metadata"), "name");
  ku_buf b = {0};
  size_t n = kv_len(c.causes);
  if (n > 1) ku_buf_puts(&b, "[");
  for (size_t i = 0; i < n; i++) {
    kv *cz = kv_list_at(c.causes, i);
    ku_buf_printf(&b, "%s%s: %s", i ? ", " : "", ku_str(cz, "field"), ku_str(cz, "message"));
  }
  if (n > 1) ku_buf_puts(&b, "]");
  kv *d = ks_details(name, group, kind);
  kv_map_set_str(d, "causes", c.causes);
  *err = ks_status(422, "Invalid", d, "%s.%s \"%s\" is invalid: %s", kind, group, name ? name : "",
                   b.p);
  free(b.p);
  kv_unref(def);
  return NULL;
}

static void unknown_walk(const kv *schema, const kv *v, const char *path, int depth, kv *out) {
  if (!schema || schema->kind != KV_MAP) return;
  if (v->kind == KV_MAP) {
    kv *props = ku_get(schema, "properties");
    kv *addl = ku_get(schema, "additionalProperties");
    bool keep_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields") ||
                        (addl && addl->kind == KV_BOOL && addl->u.b);
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *k = kv_map_key_at(v, i), *c = kv_map_val_at(v, i);
      const char *ks = kv_str(k);
      if (depth == 0 &&
          (!strcmp(ks, "apiVersion") || !strcmp(ks, "kind") || !strcmp(ks, "metadata")))
        continue;
      char *p = *path ? ku_fmt("%s.%s", path, ks) : ku_fmt("%s", ks);
      kv *ps = props ? kv_map_get(props, k) : NULL;
      if (ps)
        unknown_walk(ps, c, p, depth + 1, out);
      else if (addl && addl->kind == KV_MAP)
        unknown_walk(addl, c, p, depth + 1, out);
      else if (!keep_unknown)
        kv_list_push(out, kv_cstring(p));
      free(p);
    }
  } else if (v->kind == KV_LIST) {
    kv *items = ku_get(schema, "items");
    for (size_t i = 0; i < kv_len(v); i++) {
      char *p = ku_fmt("%s[%zu]", path, i);
      unknown_walk(items, kv_list_at(v, i), p, depth + 1, out);
      free(p);
    }
  }
}

kv *ks_schema_unknown_fields(const kv *schema, const kv *obj) {
  kv *out = kv_list_new(2);
  unknown_walk(schema, obj, "", 0, out);
  return out;
}
