/*
 * core/defs/paths.c: member-path ("structure") extraction of spec 2.9: the
 * dotted paths every field selection and index node of an expression's
 * syntax tree refers to, used for Workflow step dependencies, a Workflow's
 * `parent.*` keys and the inputs a ValueFunction reads.  Works on the
 * encoded CEL source of a prepared koreo_expr, re-parsed with the Koreo
 * dialect's grammar.
 *
 * Divergence (spec 10.1 item 7): where upstream aborts prepare (selection
 * or index applied to a parenthesised expression, a literal, a call result
 * or a unary expression), the node's root contributes no path.
 */
#include <stdlib.h>
#include <string.h>

#include "cel/cel_impl.h"
#include "defs/defs_impl.h"

kv *kd_set_new(void) { return kv_map_new(8); }

void kd_set_add(kv *set, const char *s, size_t n) {
  if (kv_map_get_strn(set, s, n)) return;
  kv_map_set(set, kv_string(s, n), kv_null());
}

static int cmp_kv_str(const void *a, const void *b) {
  const kv *x = *(kv *const *)a, *y = *(kv *const *)b;
  return strcmp(kv_str(x), kv_str(y));
}

kv *kd_set_sorted(const kv *set) {
  size_t n = kv_len(set);
  kv **keys = malloc((n ? n : 1) * sizeof *keys);
  if (!keys) kv_oom();
  for (size_t i = 0; i < n; i++)
    keys[i] = kv_map_key_at(set, i);
  qsort(keys, n, sizeof *keys, cmp_kv_str);
  kv *l = kv_list_new(n);
  for (size_t i = 0; i < n; i++)
    kv_list_push(l, kv_ref(keys[i]));
  free(keys);
  return l;
}

void kd_paths_names(const kv *paths, const char *prefix, kv *out) {
  size_t pl = strlen(prefix);
  for (size_t i = 0; i < kv_len(paths); i++) {
    const kv *p = kv_list_at(paths, i);
    const char *s = kv_str(p);
    /* prefix + any one character + NAME */
    if (kv_len(p) < pl + 2 || strncmp(s, prefix, pl) != 0) continue;
    const char *name = s + pl + 1;
    size_t n = strcspn(name, ".[");
    if (n) kd_set_add(out, name, n);
  }
}

/* path(X) of spec 2.9 into `b`; false when the root is not one the
 * reference handles. */
static bool node_path(const cel_node *n, kd_buf *b);

/* The key text of an index expression: literal content, identifier name,
 * or the leftmost primary of a compound expression. */
static bool index_key(const cel_node *n, kd_buf *b) {
  for (;;) {
    switch (n->kind) {
    case CN_LIT: {
      const kv *v = n->u.lit;
      if (v->kind == KV_STRING) {
        kd_buf_put(b, kv_str(v), kv_len(v));
        return true;
      }
      if (v->kind == KV_INT) {
        kd_buf_printf(b, "%lld", (long long)v->u.i);
        return true;
      }
      if (v->kind == KV_UINT) {
        kd_buf_printf(b, "%llu", (unsigned long long)v->u.u);
        return true;
      }
      char *j = kd_json(v);
      kd_buf_puts(b, j);
      free(j);
      return true;
    }
    case CN_IDENT: kd_buf_puts(b, n->u.ident.name); return true;
    case CN_SELECT:
    case CN_INDEX: return node_path(n, b);
    case CN_CALL:
      if (!n->u.call.target) return false;
      return node_path(n, b);
    case CN_MACRO:
      if (!n->u.macro.range) return false;
      n = n->u.macro.range;
      continue;
    case CN_BINARY:
    case CN_AND:
    case CN_OR: n = n->u.bin.a; continue;
    case CN_COND: n = n->u.cond.c; continue;
    default: return false;
    }
  }
}

static const char *macro_name(int m) {
  switch (m) {
  case CEL_M_ALL:
  case CEL_M_ALL2: return "all";
  case CEL_M_EXISTS:
  case CEL_M_EXISTS2: return "exists";
  case CEL_M_EXISTS_ONE:
  case CEL_M_EXISTS_ONE2: return "exists_one";
  case CEL_M_MAP:
  case CEL_M_MAP_FILTER: return "map";
  case CEL_M_FILTER: return "filter";
  case CEL_M_BIND: return "bind";
  case CEL_M_TRANSFORM_LIST:
  case CEL_M_TRANSFORM_LIST_IF: return "transformList";
  case CEL_M_TRANSFORM_MAP:
  case CEL_M_TRANSFORM_MAP_IF: return "transformMap";
  case CEL_M_REDUCE: return "reduce";
  }
  return "macro";
}

static bool node_path(const cel_node *n, kd_buf *b) {
  switch (n->kind) {
  case CN_IDENT: kd_buf_puts(b, n->u.ident.name); return true;
  case CN_SELECT:
    if (!node_path(n->u.select.operand, b)) return false;
    kd_buf_printf(b, ".%s", n->u.select.field);
    return true;
  case CN_INDEX:
    if (!node_path(n->u.bin.a, b)) return false;
    kd_buf_puts(b, ".");
    return index_key(n->u.bin.b, b);
  case CN_CALL:
    if (!n->u.call.target) return false;
    if (!node_path(n->u.call.target, b)) return false;
    kd_buf_printf(b, ".%s", n->u.call.name);
    return true;
  case CN_MACRO:
    if (!n->u.macro.range || n->u.macro.macro == CEL_M_BIND) return false;
    if (!node_path(n->u.macro.range, b)) return false;
    kd_buf_printf(b, ".%s", macro_name(n->u.macro.macro));
    return true;
  case CN_LIT: {
    /* "path of a literal is its text": only reached through a selection
     * chain rooted at a literal, which upstream cannot handle */
    return false;
  }
  default: return false;
  }
}

static void add_path(const cel_node *n, kv *set) {
  kd_buf b = {0};
  if (node_path(n, &b)) kd_set_add(set, b.p, b.len);
  free(b.p);
}

static void walk(const cel_node *n, kv *set) {
  if (!n) return;
  switch (n->kind) {
  case CN_LIT:
  case CN_IDENT: return;
  case CN_SELECT:
  case CN_INDEX: {
    add_path(n, set);
    if (n->kind == CN_SELECT)
      walk(n->u.select.operand, set);
    else {
      walk(n->u.bin.a, set);
      walk(n->u.bin.b, set);
    }
    return;
  }
  case CN_CALL:
    if (n->u.call.target) add_path(n, set); /* Y.m(args): path(Y) + ".m" */
    walk(n->u.call.target, set);
    for (size_t i = 0; i < n->u.call.nargs; i++)
      walk(n->u.call.args[i], set);
    return;
  case CN_UNARY: walk(n->u.un.a, set); return;
  case CN_BINARY:
  case CN_AND:
  case CN_OR:
    walk(n->u.bin.a, set);
    walk(n->u.bin.b, set);
    return;
  case CN_COND:
    walk(n->u.cond.c, set);
    walk(n->u.cond.t, set);
    walk(n->u.cond.f, set);
    return;
  case CN_LIST:
    for (size_t i = 0; i < n->u.list.n; i++)
      walk(n->u.list.elems[i], set);
    return;
  case CN_MAP:
    for (size_t i = 0; i < n->u.map.n; i++) {
      walk(n->u.map.keys[i], set);
      walk(n->u.map.vals[i], set);
    }
    return;
  case CN_STRUCT:
    for (size_t i = 0; i < n->u.strct.n; i++)
      walk(n->u.strct.vals[i], set);
    return;
  case CN_MACRO:
    if (n->u.macro.range) add_path(n, set);
    walk(n->u.macro.range, set);
    walk(n->u.macro.e1, set);
    walk(n->u.macro.e2, set);
    return;
  case CN_HAS: walk(n->u.has.arg, set); return;
  }
}

/* kdef_member_paths: see definition.h (spec 2.9). */
void kdef_member_paths(const koreo_expr *e, kv *set) {
  if (!e || koreo_expr_is_empty(e)) return;
  const char *src = koreo_expr_source(e);
  if (!src) return;
  cel_arena arena = {0};
  cel_status st;
  cel_parse_opts opts = {.dialect = CEL_DIALECT_KOREO};
  cel_node *root = cel_parse(&arena, src, strlen(src), &opts, &st);
  if (root) walk(root, set);
  cel_arena_free(&arena);
}
