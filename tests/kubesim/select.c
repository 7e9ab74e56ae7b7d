/*
 * tests/kubesim/select.c: label selectors (k8s.io/apimachinery labels
 * syntax: =, ==, !=, in, notin, exists, !exists, gt, lt) and field
 * selectors (=, ==, != on metadata.name, metadata.namespace and the
 * type's own field labels), parsing and matching.
 */
#include "kubesim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOTEXISTS, OP_GT, OP_LT };

typedef struct req {
  char *key;
  int op;
  char **vals;
  size_t nvals;
} req;

struct ks_sel {
  bool field;
  req *reqs;
  size_t n;
};

void ks_sel_free(ks_sel *sel) {
  if (!sel) return;
  for (size_t i = 0; i < sel->n; i++) {
    free(sel->reqs[i].key);
    for (size_t k = 0; k < sel->reqs[i].nvals; k++)
      free(sel->reqs[i].vals[k]);
    free(sel->reqs[i].vals);
  }
  free(sel->reqs);
  free(sel);
}

static req *add_req(ks_sel *s, const char *key, size_t kn, int op) {
  s->reqs = realloc(s->reqs, (s->n + 1) * sizeof *s->reqs);
  if (!s->reqs) kv_oom();
  req *r = &s->reqs[s->n++];
  memset(r, 0, sizeof *r);
  r->key = strndup(key, kn);
  if (!r->key) kv_oom();
  r->op = op;
  return r;
}

static void add_val(req *r, const char *v, size_t n) {
  r->vals = realloc(r->vals, (r->nvals + 1) * sizeof *r->vals);
  if (!r->vals) kv_oom();
  r->vals[r->nvals] = strndup(v, n);
  if (!r->vals[r->nvals]) kv_oom();
  r->nvals++;
}

static bool key_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '/';
}

static void skip_ws(const char **p) {
  while (**p == ' ' || **p == '\t')
    (*p)++;
}

static bool word_is(const char *p, const char *w) {
  size_t n = strlen(w);
  return strncmp(p, w, n) == 0 && (p[n] == ' ' || p[n] == '(' || p[n] == '\t');
}

ks_sel *ks_label_sel_parse(const char *text, kv **err) {
  ks_sel *s = calloc(1, sizeof *s);
  if (!s) kv_oom();
  const char *p = text ? text : "";
  skip_ws(&p);
  if (!*p) return s;
  for (;;) {
    skip_ws(&p);
    bool neg = false;
    if (*p == '!') {
      neg = true;
      p++;
      skip_ws(&p);
    }
    const char *k = p;
    while (key_char(*p))
      p++;
    size_t kn = (size_t)(p - k);
    if (kn == 0) goto bad;
    skip_ws(&p);
    if (neg) {
      add_req(s, k, kn, OP_NOTEXISTS);
    } else if (*p == ',' || *p == 0) {
      add_req(s, k, kn, OP_EXISTS);
    } else if (*p == '=' || (*p == '!' && p[1] == '=')) {
      int op = *p == '!' ? OP_NE : OP_EQ;
      p += (*p == '!' || p[1] == '=') ? 2 : 1;
      skip_ws(&p);
      const char *v = p;
      while (key_char(*p))
        p++;
      add_val(add_req(s, k, kn, op), v, (size_t)(p - v));
    } else if (*p == '>' || *p == '<') {
      int op = *p == '>' ? OP_GT : OP_LT;
      p++;
      skip_ws(&p);
      const char *v = p;
      while (isdigit((unsigned char)*p) || *p == '-')
        p++;
      if (p == v) goto bad;
      add_val(add_req(s, k, kn, op), v, (size_t)(p - v));
    } else if (word_is(p, "in") || word_is(p, "notin")) {
      int op = p[0] == 'i' ? OP_IN : OP_NOTIN;
      p += op == OP_IN ? 2 : 5;
      skip_ws(&p);
      if (*p != '(') goto bad;
      p++;
      req *r = add_req(s, k, kn, op);
      for (;;) {
        skip_ws(&p);
        const char *v = p;
        while (key_char(*p))
          p++;
        add_val(r, v, (size_t)(p - v));
        skip_ws(&p);
        if (*p == ',') {
          p++;
          continue;
        }
        if (*p == ')') {
          p++;
          break;
        }
        goto bad;
      }
    } else {
      goto bad;
    }
    skip_ws(&p);
    if (*p == 0) break;
    if (*p != ',') goto bad;
    p++;
  }
  return s;
bad:
  ks_sel_free(s);
  *err = ks_status(
      400, "BadRequest", NULL,
      "unable to parse requirement: found '%s', expected: key or operator in label selector \"%s\"",
      *p ? p : "EOF", text);
  return NULL;
}

ks_sel *ks_label_sel_from_value(const kv *sel, kv **err) {
  ks_sel *s = calloc(1, sizeof *s);
  if (!s) kv_oom();
  (void)err;
  kv *ml = ku_get(sel, "matchLabels");
  for (size_t i = 0; ml && ml->kind == KV_MAP && i < kv_len(ml); i++) {
    kv *k = kv_map_key_at(ml, i), *v = kv_map_val_at(ml, i);
    req *r = add_req(s, kv_str(k), kv_len(k), OP_EQ);
    add_val(r, v->kind == KV_STRING ? kv_str(v) : "", v->kind == KV_STRING ? kv_len(v) : 0);
  }
  kv *me = ku_get(sel, "matchExpressions");
  for (size_t i = 0; me && me->kind == KV_LIST && i < kv_len(me); i++) {
    kv *e = kv_list_at(me, i);
    const char *key = ku_str(e, "key"), *op = ku_str(e, "operator");
    if (!key || !op) continue;
    int o = strcmp(op, "In") == 0             ? OP_IN
            : strcmp(op, "NotIn") == 0        ? OP_NOTIN
            : strcmp(op, "Exists") == 0       ? OP_EXISTS
            : strcmp(op, "DoesNotExist") == 0 ? OP_NOTEXISTS
                                              : -1;
    if (o < 0) continue;
    req *r = add_req(s, key, strlen(key), o);
    kv *vals = ku_get(e, "values");
    for (size_t k = 0; vals && vals->kind == KV_LIST && k < kv_len(vals); k++)
      if (kv_list_at(vals, k)->kind == KV_STRING)
        add_val(r, kv_str(kv_list_at(vals, k)), kv_len(kv_list_at(vals, k)));
  }
  return s;
}

char *ks_label_sel_text(const kv *sel) {
  ku_buf b = {0};
  ku_buf_puts(&b, "");
  kv *ml = ku_get(sel, "matchLabels");
  /* labels.SelectorFromSet sorts keys */
  size_t n = ml && ml->kind == KV_MAP ? kv_len(ml) : 0;
  const char **keys = calloc(n + 1, sizeof *keys);
  if (!keys) kv_oom();
  for (size_t i = 0; i < n; i++)
    keys[i] = kv_str(kv_map_key_at(ml, i));
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
      const char *x = keys[j];
      keys[j] = keys[j - 1];
      keys[j - 1] = x;
    }
  for (size_t i = 0; i < n; i++) {
    if (b.n) ku_buf_puts(&b, ",");
    ku_buf_printf(&b, "%s=%s", keys[i], ku_str(ml, keys[i]) ? ku_str(ml, keys[i]) : "");
  }
  free(keys);
  kv *me = ku_get(sel, "matchExpressions");
  for (size_t i = 0; me && me->kind == KV_LIST && i < kv_len(me); i++) {
    kv *e = kv_list_at(me, i);
    const char *key = ku_str(e, "key"), *op = ku_str(e, "operator");
    if (!key || !op) continue;
    if (b.n) ku_buf_puts(&b, ",");
    if (strcmp(op, "Exists") == 0) {
      ku_buf_puts(&b, key);
    } else if (strcmp(op, "DoesNotExist") == 0) {
      ku_buf_printf(&b, "!%s", key);
    } else {
      ku_buf_printf(&b, "%s %s (", key, strcmp(op, "In") == 0 ? "in" : "notin");
      kv *vals = ku_get(e, "values");
      for (size_t k = 0; vals && vals->kind == KV_LIST && k < kv_len(vals); k++)
        ku_buf_printf(&b, "%s%s", k ? "," : "", kv_str(kv_list_at(vals, k)));
      ku_buf_puts(&b, ")");
    }
  }
  return b.p;
}

static bool has_val(const req *r, const char *v) {
  for (size_t i = 0; i < r->nvals; i++)
    if (strcmp(r->vals[i], v) == 0) return true;
  return false;
}

static bool req_match(const req *r, const char *val /* NULL: absent */) {
  switch (r->op) {
  case OP_EQ: return val && strcmp(val, r->vals[0]) == 0;
  case OP_NE: return !val || strcmp(val, r->vals[0]) != 0;
  case OP_IN: return val && has_val(r, val);
  case OP_NOTIN: return !val || !has_val(r, val);
  case OP_EXISTS: return val != NULL;
  case OP_NOTEXISTS: return val == NULL;
  case OP_GT:
  case OP_LT: {
    if (!val) return false;
    char *e1, *e2;
    long long a = strtoll(val, &e1, 10), b = strtoll(r->vals[0], &e2, 10);
    if (*e1 || *e2) return false;
    return r->op == OP_GT ? a > b : a < b;
  }
  }
  return false;
}

bool ks_label_sel_match(const ks_sel *sel, const kv *obj) {
  if (!sel) return true;
  kv *labels = ku_get(ku_get(obj, "metadata"), "labels");
  for (size_t i = 0; i < sel->n; i++)
    if (!req_match(&sel->reqs[i], ku_str(labels, sel->reqs[i].key))) return false;
  return true;
}

static bool field_supported(const ks_type *t, const char *f) {
  if (strcmp(f, "metadata.name") == 0 || strcmp(f, "metadata.namespace") == 0) return true;
  for (char **p = t ? t->field_labels : NULL; p && *p; p++)
    if (strcmp(*p, f) == 0) return true;
  return false;
}

ks_sel *ks_field_sel_parse(const char *text, const ks_type *t, kv **err) {
  ks_sel *s = calloc(1, sizeof *s);
  if (!s) kv_oom();
  s->field = true;
  const char *p = text ? text : "";
  while (*p) {
    const char *e = p;
    /* a term ends at an unescaped ',' */
    ku_buf term = {0};
    while (*e && *e != ',') {
      if (*e == '\\' && e[1]) e++;
      ku_buf_add(&term, e, 1);
      e++;
    }
    if (term.n) {
      char *q = term.p;
      char *op = strstr(q, "!=");
      int o = OP_NE;
      size_t oplen = 2;
      if (!op) {
        op = strstr(q, "==");
        o = OP_EQ;
      }
      if (!op) {
        op = strchr(q, '=');
        oplen = 1;
      }
      if (!op) {
        *err = ks_status(400, "BadRequest", NULL, "invalid selector: '%s'; can't understand '%s'",
                         text, q);
        free(term.p);
        ks_sel_free(s);
        return NULL;
      }
      size_t kn = (size_t)(op - q);
      char *key = strndup(q, kn);
      if (!key) kv_oom();
      if (!field_supported(t, key)) {
        *err = ks_status(400, "BadRequest", NULL,
                         "Unable to find \"%s/%s, Resource=%s\" that match label selector \"\", "
                         "field selector \"%s\": field label not supported: %s",
                         t ? t->group : "", t ? ks_type_storage(t) : "v1", t ? t->plural : "", text,
                         key);
        free(key);
        free(term.p);
        ks_sel_free(s);
        return NULL;
      }
      req *r = add_req(s, key, kn, o);
      free(key);
      add_val(r, op + oplen, strlen(op + oplen));
    }
    free(term.p);
    p = *e ? e + 1 : e;
  }
  return s;
}

static char *field_value(const kv *obj, const char *key) {
  kv *v = ku_path(obj, key);
  if (!v && strcmp(key, "source") == 0) v = ku_path(obj, "source.component");
  if (!v || v->kind == KV_NULL) return strdup("");
  switch (v->kind) {
  case KV_STRING: return strdup(kv_str(v));
  case KV_BOOL: return strdup(v->u.b ? "true" : "false");
  case KV_INT: return ku_fmt("%lld", (long long)v->u.i);
  default: {
    size_t n;
    return ku_json(v, &n);
  }
  }
}

bool ks_field_sel_match(const ks_sel *sel, const kv *obj) {
  if (!sel) return true;
  for (size_t i = 0; i < sel->n; i++) {
    char *v = field_value(obj, sel->reqs[i].key);
    if (!v) kv_oom();
    bool ok = req_match(&sel->reqs[i], v);
    free(v);
    if (!ok) return false;
  }
  return true;
}

const char *ks_field_sel_name(const ks_sel *sel) {
  for (size_t i = 0; sel && i < sel->n; i++)
    if (sel->reqs[i].op == OP_EQ && strcmp(sel->reqs[i].key, "metadata.name") == 0)
      return sel->reqs[i].vals[0];
  return NULL;
}

bool ks_sel_empty(const ks_sel *sel) { return !sel || sel->n == 0; }
