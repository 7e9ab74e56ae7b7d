/*
 * core/defs/schema.c: the bundled schemas of the five Koreo kinds and the
 * JSON-Schema validator of spec 1.0: the draft-07 subset upstream enforces
 * (type, required, properties, items, enum, oneOf, anyOf, min/maxItems,
 * min/maxLength, min/maxProperties, additionalProperties) with default
 * insertion, Kubernetes extensions (nullable, x-kubernetes-*) ignored.
 * Messages follow upstream's validator ("spec.template must be object").
 */
#include <stdlib.h>
#include <string.h>

#include "defs/defs_impl.h"

/* ---- bundled schemas ------------------------------------------------------
 */

static kv *spec_schema[KDEF_KIND_COUNT]; /* parsed on first use, process lifetime */

/* kdef_schema: see definition.h.  The embedded text is the CRD's spec
 * schema as JSON without descriptions (schema/embed_schemas.py). */
const kv *kdef_schema(kdef_kind kind) {
  if (kind < 0 || kind >= KDEF_KIND_COUNT) return NULL;
  if (!spec_schema[kind]) {
    const kdef_schema_text *t = &kdef_schema_texts[kind];
    kv_parse_error err;
    spec_schema[kind] = kv_json_parse(t->text, t->len, &err); /* tested by test_defs_schema */
  }
  return spec_schema[kind];
}

/* ---- validator
 * --------------------------------------------------------------- */

typedef struct vctx {
  kdef_outcome *err;
  kd_buf path;
  const kv *parent; /* the enclosing value, for values without a position */
} vctx;

static void vfail(vctx *c, const kv *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void vfail(vctx *c, const kv *at, const char *fmt, ...) {
  if (!c->err) return;
  va_list ap;
  va_start(ap, fmt);
  char *m = kd_vprintf(fmt, ap);
  va_end(ap);
  kd_fail(c->err, KDEF_O_PERMFAIL, 0, NULL, c->path.p, kv_pos(at) ? at : c->parent, "%s %s",
          c->path.p, m);
  free(m);
}

static bool type_ok(const char *t, const kv *v) {
  switch (v->kind) {
  case KV_MAP: return strcmp(t, "object") == 0;
  case KV_LIST: return strcmp(t, "array") == 0;
  case KV_STRING: return strcmp(t, "string") == 0;
  case KV_BOOL: return strcmp(t, "boolean") == 0;
  case KV_NULL: return strcmp(t, "null") == 0;
  case KV_INT:
  case KV_UINT: return strcmp(t, "integer") == 0 || strcmp(t, "number") == 0;
  case KV_DOUBLE:
    if (strcmp(t, "number") == 0) return true;
    return strcmp(t, "integer") == 0 && v->u.d == (double)(int64_t)v->u.d;
  default: return false;
  }
}

/* Python repr of a list of scalars: ['a', 'b'] */
static char *py_list(const kv *l) {
  kd_buf b = {0};
  kd_buf_puts(&b, "[");
  for (size_t i = 0; l && l->kind == KV_LIST && i < kv_len(l); i++) {
    const kv *e = kv_list_at(l, i);
    if (i) kd_buf_puts(&b, ", ");
    if (e->kind == KV_STRING)
      kd_buf_printf(&b, "'%s'", kv_str(e));
    else {
      char *j = kd_json(e);
      kd_buf_puts(&b, j);
      free(j);
    }
  }
  kd_buf_puts(&b, "]");
  return kd_buf_take(&b);
}

static int64_t num(const kv *v) {
  if (!v) return -1;
  if (v->kind == KV_INT) return v->u.i;
  if (v->kind == KV_UINT) return (int64_t)v->u.u;
  if (v->kind == KV_DOUBLE) return (int64_t)v->u.d;
  return -1;
}

static kv *validate(vctx *c, const kv *s, const kv *v);

/* Validate without reporting (oneOf/anyOf branches). */
static bool matches(const kv *s, const kv *v) {
  vctx sub = {.err = NULL};
  kd_buf_puts(&sub.path, "x");
  kv *r = validate(&sub, s, v);
  free(sub.path.p);
  kv_unref(r);
  return r != NULL;
}

/* A copy of map `m` the caller may change (position kept). */
static kv *map_copy(const kv *m) {
  kv *n = kv_map_new(kv_len(m) + 2);
  for (size_t i = 0; i < kv_len(m); i++)
    kv_map_set(n, kv_ref(kv_map_key_at(m, i)), kv_ref(kv_map_val_at(m, i)));
  const kv_srcpos *p = kv_pos(m);
  if (p) kv_set_pos(n, p->file, p->line, p->col);
  return n;
}

static kv *list_copy(const kv *l) {
  kv *n = kv_list_new(kv_len(l));
  for (size_t i = 0; i < kv_len(l); i++)
    kv_list_push(n, kv_ref(kv_list_at(l, i)));
  const kv_srcpos *p = kv_pos(l);
  if (p) kv_set_pos(n, p->file, p->line, p->col);
  return n;
}

/* Validate `v` against schema `s` (keyword order of upstream's validator).
 * Returns a new reference to v or to a copy with defaults inserted; NULL on
 * the first failure (reported to c->err). */
static kv *validate(vctx *c, const kv *s, const kv *v) {
  if (!s || s->kind != KV_MAP) return kv_ref((kv *)v);
  /* type */
  const kv *t = kv_map_get_str(s, "type");
  if (t) {
    bool ok = false;
    if (t->kind == KV_STRING)
      ok = type_ok(kv_str(t), v);
    else if (t->kind == KV_LIST)
      for (size_t i = 0; i < kv_len(t) && !ok; i++)
        ok = kv_list_at(t, i)->kind == KV_STRING && type_ok(kv_str(kv_list_at(t, i)), v);
    if (!ok) {
      if (t->kind == KV_STRING)
        vfail(c, v, "must be %s", kv_str(t));
      else {
        kd_buf b = {0};
        for (size_t i = 0; i < kv_len(t); i++)
          kd_buf_printf(&b, "%s%s", i ? " or " : "", kv_str(kv_list_at(t, i)));
        char *ts = kd_buf_take(&b);
        vfail(c, v, "must be %s", ts);
        free(ts);
      }
      return NULL;
    }
  }
  /* enum */
  const kv *en = kv_map_get_str(s, "enum");
  if (en && en->kind == KV_LIST) {
    bool ok = false;
    for (size_t i = 0; i < kv_len(en) && !ok; i++)
      ok = kv_equal_strict(kv_list_at(en, i), v, false);
    if (!ok) {
      char *l = py_list(en);
      vfail(c, v, "must be one of %s", l);
      free(l);
      return NULL;
    }
  }
  /* anyOf / oneOf */
  const kv *any = kv_map_get_str(s, "anyOf");
  if (any && any->kind == KV_LIST) {
    bool ok = false;
    for (size_t i = 0; i < kv_len(any) && !ok; i++)
      ok = matches(kv_list_at(any, i), v);
    if (!ok) {
      vfail(c, v, "cannot be validated by any definition");
      return NULL;
    }
  }
  const kv *one = kv_map_get_str(s, "oneOf");
  if (one && one->kind == KV_LIST) {
    size_t n = 0;
    for (size_t i = 0; i < kv_len(one); i++)
      n += matches(kv_list_at(one, i), v);
    if (n != 1) {
      vfail(c, v, "must be valid exactly by one definition (%zu matches found)", n);
      return NULL;
    }
  }
  /* strings */
  if (v->kind == KV_STRING) {
    size_t cps = kv_utf8_count(kv_str(v), kv_len(v));
    int64_t mn = num(kv_map_get_str(s, "minLength")), mx = num(kv_map_get_str(s, "maxLength"));
    if (mn >= 0 && (int64_t)cps < mn) {
      vfail(c, v, "must be longer than or equal to %lld characters", (long long)mn);
      return NULL;
    }
    if (mx >= 0 && (int64_t)cps > mx) {
      vfail(c, v, "must be shorter than or equal to %lld characters", (long long)mx);
      return NULL;
    }
  }
  /* arrays */
  if (v->kind == KV_LIST) {
    int64_t mn = num(kv_map_get_str(s, "minItems")), mx = num(kv_map_get_str(s, "maxItems"));
    if (mn >= 0 && (int64_t)kv_len(v) < mn) {
      vfail(c, v, "must contain at least %lld items", (long long)mn);
      return NULL;
    }
    if (mx >= 0 && (int64_t)kv_len(v) > mx) {
      vfail(c, v, "must contain less than or equal to %lld items", (long long)mx);
      return NULL;
    }
    const kv *items = kv_map_get_str(s, "items");
    if (items && items->kind == KV_MAP) {
      kv *out = NULL;
      size_t plen = c->path.len;
      for (size_t i = 0; i < kv_len(v); i++) {
        kd_buf_printf(&c->path, "[%zu]", i);
        const kv *saved = c->parent;
        c->parent = v;
        kv *r = validate(c, items, kv_list_at(v, i));
        c->parent = saved;
        c->path.len = plen;
        c->path.p[plen] = 0;
        if (!r) {
          kv_unref(out);
          return NULL;
        }
        if (r != kv_list_at(v, i)) {
          if (!out) out = list_copy(v);
          kv_unref(out->u.list.items[i]);
          out->u.list.items[i] = r;
        } else
          kv_unref(r);
      }
      if (out) return out;
    }
    return kv_ref((kv *)v);
  }
  if (v->kind != KV_MAP) return kv_ref((kv *)v);
  /* objects */
  int64_t mn = num(kv_map_get_str(s, "minProperties")),
          mx = num(kv_map_get_str(s, "maxProperties"));
  if (mn >= 0 && (int64_t)kv_len(v) < mn) {
    vfail(c, v, "must contain at least %lld properties", (long long)mn);
    return NULL;
  }
  if (mx >= 0 && (int64_t)kv_len(v) > mx) {
    vfail(c, v, "must contain less than or equal to %lld properties", (long long)mx);
    return NULL;
  }
  const kv *req = kv_map_get_str(s, "required");
  if (req && req->kind == KV_LIST) {
    for (size_t i = 0; i < kv_len(req); i++) {
      const kv *k = kv_list_at(req, i);
      if (k->kind == KV_STRING && !kv_map_get_str(v, kv_str(k))) {
        char *l = py_list(req);
        vfail(c, v, "must contain %s properties", l);
        free(l);
        return NULL;
      }
    }
  }
  kv *out = NULL;
  const kv *props = kv_map_get_str(s, "properties");
  if (props && props->kind == KV_MAP) {
    size_t plen = c->path.len;
    for (size_t i = 0; i < kv_len(props); i++) {
      const kv *key = kv_map_key_at(props, i);
      const kv *ps = kv_map_val_at(props, i);
      const kv *cur = out ? out : v;
      const kv *val = kv_map_get(cur, key);
      if (val) {
        kd_buf_printf(&c->path, ".%s", kv_str(key));
        const kv *saved = c->parent;
        c->parent = v;
        kv *r = validate(c, ps, val);
        c->parent = saved;
        c->path.len = plen;
        c->path.p[plen] = 0;
        if (!r) {
          kv_unref(out);
          return NULL;
        }
        if (r != val) {
          if (!out) out = map_copy(v);
          kv_map_set(out, kv_ref((kv *)key), r);
        } else
          kv_unref(r);
      } else if (ps->kind == KV_MAP && kv_map_get_str(ps, "default")) {
        if (!out) out = map_copy(v);
        kv_map_set(out, kv_ref((kv *)key), kv_ref(kv_map_get_str(ps, "default")));
      }
    }
  }
  const kv *ap = kv_map_get_str(s, "additionalProperties");
  if (ap && ap->kind == KV_BOOL && !ap->u.b) {
    kd_buf extra = {0};
    size_t n = 0;
    for (size_t i = 0; i < kv_len(v); i++) {
      const kv *k = kv_map_key_at(v, i);
      if (props && props->kind == KV_MAP && kv_map_get(props, k)) continue;
      kd_buf_printf(&extra, "%s'%s'", n++ ? ", " : "", k->kind == KV_STRING ? kv_str(k) : "?");
    }
    if (n) {
      char *e = kd_buf_take(&extra);
      vfail(c, v, "must not contain {%s} properties", e);
      free(e);
      kv_unref(out);
      return NULL;
    }
    free(extra.p);
  }
  return out ? out : kv_ref((kv *)v);
}

/* kdef_schema_validate: see definition.h. */
kv *kdef_schema_validate(const kv *schema, const kv *spec, kdef_outcome *err) {
  vctx c = {.err = err};
  kd_buf_puts(&c.path, "spec");
  kv *r = validate(&c, schema, spec);
  free(c.path.p);
  return r;
}

/* ---- admission rules
 * ------------------------------------------------------------ */

typedef struct adm_ctx {
  cel_env *env;
  const kdef_definition *def;
  kdef_diags *diags;
  size_t errors;
  kd_buf path;
} adm_ctx;

static bool named_required(const kv *s, const kv *key);

static void admission(adm_ctx *c, const kv *s, const kv *v) {
  if (!s || s->kind != KV_MAP || !v) return;
  const kv *rules = kv_map_get_str(s, "x-kubernetes-validations");
  for (size_t i = 0; rules && rules->kind == KV_LIST && i < kv_len(rules); i++) {
    const kv *rule = kv_list_at(rules, i);
    const kv *src = rule->kind == KV_MAP ? kv_map_get_str(rule, "rule") : NULL;
    const kv *msg = rule->kind == KV_MAP ? kv_map_get_str(rule, "message") : NULL;
    if (!src || src->kind != KV_STRING) continue;
    cel_status st;
    cel_program *prog = cel_compile(c->env, kv_str(src), kv_len(src), &st);
    if (!prog) continue;
    kv *b = kv_map_new(1);
    kv_map_set_str(b, "self", kv_ref((kv *)v));
    kv *r = cel_eval(prog, b, &st);
    bool ok = r && r->kind == KV_BOOL && r->u.b;
    kv_unref(r);
    kv_unref(b);
    cel_program_free(prog);
    if (!ok) {
      char *text =
          msg && msg->kind == KV_STRING ? kd_strdup(kv_str(msg)) : kd_strdup("rule failed");
      size_t tl = strlen(text);
      while (tl && (text[tl - 1] == '\n' || text[tl - 1] == ' ' || text[tl - 1] == '.'))
        text[--tl] = 0;
      const kv_srcpos *pos = kv_pos(v);
      if (!pos) pos = &c->def->pos;
      kd_diag_add(c->diags, pos->file, pos->line, pos->col, c->def->kind, c->def->name, c->path.p,
                  false,
                  "%s (admission rule `%s` of the %s CRD; the Kubernetes API server "
                  "rejects this definition)",
                  text, kv_str(src), kdef_kind_name(c->def->kind));
      free(text);
      c->errors++;
    }
  }
  size_t plen = c->path.len;
  if (v->kind == KV_MAP) {
    const kv *props = kv_map_get_str(s, "properties");
    const kv *keep = kv_map_get_str(s, "x-kubernetes-preserve-unknown-fields");
    bool preserve = keep && keep->kind == KV_BOOL && keep->u.b;
    /* fields the schema does not declare: the API server prunes them */
    for (size_t i = 0; props && props->kind == KV_MAP && !preserve && i < kv_len(v); i++) {
      const kv *key = kv_map_key_at(v, i);
      if (kv_map_get(props, key) || named_required(s, key)) continue;
      const kv_srcpos *pos = kv_pos(key);
      if (!pos) pos = kv_pos(v) ? kv_pos(v) : &c->def->pos;
      kd_diag_add(c->diags, pos->file, pos->line, pos->col, c->def->kind, c->def->name, c->path.p,
                  true, "unknown field '%s' (not in the %s schema: it is ignored)",
                  key->kind == KV_STRING ? kv_str(key) : "?", kdef_kind_name(c->def->kind));
    }
    for (size_t i = 0; props && props->kind == KV_MAP && i < kv_len(props); i++) {
      const kv *key = kv_map_key_at(props, i);
      const kv *val = kv_map_get(v, key);
      if (!val) continue;
      kd_buf_printf(&c->path, ".%s", kv_str(key));
      admission(c, kv_map_val_at(props, i), val);
      c->path.len = plen;
      c->path.p[plen] = 0;
    }
  } else if (v->kind == KV_LIST) {
    const kv *items = kv_map_get_str(s, "items");
    for (size_t i = 0; items && i < kv_len(v); i++) {
      kd_buf_printf(&c->path, "[%zu]", i);
      admission(c, items, kv_list_at(v, i));
      c->path.len = plen;
      c->path.p[plen] = 0;
    }
  }
}

/* Is `key` listed in `required` of the schema or of one of its
 * oneOf/anyOf branches (a declared name without a property schema)? */
static bool in_list(const kv *l, const kv *key) {
  for (size_t i = 0; l && l->kind == KV_LIST && i < kv_len(l); i++)
    if (kv_equal_strict(kv_list_at(l, i), key, false)) return true;
  return false;
}

static bool named_required(const kv *s, const kv *key) {
  if (in_list(kv_map_get_str(s, "required"), key)) return true;
  static const char *const alts[] = {"oneOf", "anyOf", NULL};
  for (const char *const *a = alts; *a; a++) {
    const kv *l = kv_map_get_str(s, *a);
    for (size_t i = 0; l && l->kind == KV_LIST && i < kv_len(l); i++) {
      const kv *b = kv_list_at(l, i);
      if (b->kind == KV_MAP && in_list(kv_map_get_str(b, "required"), key)) return true;
    }
  }
  return false;
}

size_t kd_schema_admission(const kdef_definition *def, kdef_diags *diags) {
  const kv *spec = def->spec ? def->spec : kv_map_get_str(def->doc, "spec");
  if (!spec) return 0;
  adm_ctx c = {.env = cel_env_new_standard(CEL_EXT_STRINGS), .def = def, .diags = diags};
  kd_buf_puts(&c.path, "spec");
  admission(&c, kdef_schema(def->kind), spec);
  free(c.path.p);
  cel_env_free(c.env);
  return c.errors;
}
