/*
 * tests/kubesim/patch.c: the three patch formats of the Kubernetes API:
 * JSON merge patch (RFC 7386), JSON patch (RFC 6902, with JSON pointers)
 * and strategic merge patch (merge keys of the built-in kinds; the
 * $patch, $retainKeys, $setElementOrder and $deleteFromPrimitiveList
 * directives that kubectl apply and kubectl patch send).
 */
#include "kubesim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON merge patch ------------------------------------------------------- */

kv *ks_merge_patch(const kv *target, const kv *patch) {
  if (!patch || patch->kind != KV_MAP) return kv_ref((kv *)patch);
  kv *r = (target && target->kind == KV_MAP) ? ku_map_copy(target) : kv_map_new(kv_len(patch));
  for (size_t i = 0; i < kv_len(patch); i++) {
    kv *k = kv_map_key_at(patch, i), *pv = kv_map_val_at(patch, i);
    if (pv->kind == KV_NULL) {
      if (kv_map_get(r, k)) {
        kv *nr = ku_without(r, kv_str(k));
        kv_unref(r);
        r = nr;
      }
      continue;
    }
    kv *cur = kv_map_get(r, k);
    kv_map_set(r, kv_ref(k), ks_merge_patch(cur, pv));
  }
  return r;
}

/* ---- JSON patch -------------------------------------------------------------- */

typedef struct ptr {
  char **tok;
  size_t n;
} ptr;

static void ptr_free(ptr *p) {
  for (size_t i = 0; i < p->n; i++)
    free(p->tok[i]);
  free(p->tok);
}

static bool ptr_parse(const char *s, ptr *p) {
  p->tok = NULL;
  p->n = 0;
  if (!*s) return true;
  if (*s != '/') return false;
  s++;
  for (;;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    char *t = malloc(n + 1);
    if (!t) kv_oom();
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
      if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
        t[j++] = s[i + 1] == '0' ? '~' : '/';
        i++;
      } else {
        t[j++] = s[i];
      }
    }
    t[j] = 0;
    p->tok = realloc(p->tok, (p->n + 1) * sizeof(char *));
    if (!p->tok) kv_oom();
    p->tok[p->n++] = t;
    if (!e) break;
    s = e + 1;
  }
  return true;
}

static bool parse_index(const char *t, size_t len, size_t *out, bool allow_end) {
  if (allow_end && strcmp(t, "-") == 0) {
    *out = len;
    return true;
  }
  if (!*t || (t[0] == '0' && t[1])) return false;
  size_t v = 0;
  for (const char *c = t; *c; c++) {
    if (*c < '0' || *c > '9') return false;
    v = v * 10 + (size_t)(*c - '0');
  }
  *out = v;
  return true;
}

static kv *ptr_get(const kv *doc, const ptr *p, size_t upto) {
  const kv *cur = doc;
  for (size_t i = 0; i < upto && cur; i++) {
    if (cur->kind == KV_MAP) {
      cur = kv_map_get_str(cur, p->tok[i]);
    } else if (cur->kind == KV_LIST) {
      size_t ix;
      if (!parse_index(p->tok[i], kv_len(cur), &ix, false) || ix >= kv_len(cur)) return NULL;
      cur = kv_list_at(cur, ix);
    } else {
      return NULL;
    }
  }
  return (kv *)cur;
}

/* op: 0 add, 1 remove, 2 replace.  Returns the new document or NULL. */
static kv *ptr_apply(const kv *doc, const ptr *p, size_t depth, int op, kv *val, const char **why) {
  if (depth == p->n) {
    if (op == 1) return NULL;
    return kv_ref(val);
  }
  const char *t = p->tok[depth];
  bool last = depth + 1 == p->n;
  if (doc && doc->kind == KV_MAP) {
    kv *child = kv_map_get_str(doc, t);
    if (last) {
      if (op == 1) {
        if (!child) {
          *why = "missing path";
          return NULL;
        }
        return ku_without(doc, t);
      }
      if (op == 2 && !child) {
        *why = "missing path";
        return NULL;
      }
      return ku_with(doc, t, kv_ref(val));
    }
    if (!child) {
      *why = "missing path";
      return NULL;
    }
    kv *nc = ptr_apply(child, p, depth + 1, op, val, why);
    if (!nc) return NULL;
    return ku_with(doc, t, nc);
  }
  if (doc && doc->kind == KV_LIST) {
    size_t len = kv_len(doc), ix;
    if (!parse_index(t, len, &ix, last && op == 0)) {
      *why = "invalid index";
      return NULL;
    }
    if (ix > len || (ix == len && !(last && op == 0))) {
      *why = "index out of range";
      return NULL;
    }
    kv *r = kv_list_new(len + 1);
    for (size_t i = 0; i <= len; i++) {
      if (i == ix) {
        if (last) {
          if (op == 0) {
            kv_list_push(r, kv_ref(val));
            if (i < len) kv_list_push(r, kv_ref(kv_list_at(doc, i)));
          } else if (op == 2) {
            kv_list_push(r, kv_ref(val));
          } /* remove: skip */
        } else {
          kv *nc = ptr_apply(kv_list_at(doc, i), p, depth + 1, op, val, why);
          if (!nc) {
            kv_unref(r);
            return NULL;
          }
          kv_list_push(r, nc);
        }
      } else if (i < len) {
        kv_list_push(r, kv_ref(kv_list_at(doc, i)));
      }
    }
    return r;
  }
  *why = "missing path";
  return NULL;
}

static kv *jp_error(const char *fmt, const char *a, const char *b) {
  return ks_status(422, "Invalid", NULL, fmt, a, b);
}

kv *ks_json_patch(const kv *target, const kv *ops, kv **err) {
  if (!ops || ops->kind != KV_LIST) {
    *err = ks_status(400, "BadRequest", NULL,
                     "the server rejected our request due to an error in our request: json patch "
                     "must be an array of operations");
    return NULL;
  }
  kv *doc = kv_ref((kv *)target);
  for (size_t i = 0; i < kv_len(ops); i++) {
    kv *o = kv_list_at(ops, i);
    const char *op = ku_str(o, "op"), *path = ku_str(o, "path");
    if (!op || !path) {
      kv_unref(doc);
      *err = ks_status(400, "BadRequest", NULL,
                       "the server rejected our request due to an error in our request: operation "
                       "%zu is missing \"op\" or \"path\"",
                       i);
      return NULL;
    }
    ptr p;
    if (!ptr_parse(path, &p)) {
      kv_unref(doc);
      *err = jp_error("the server rejected our request due to an error in our request: invalid "
                      "JSON pointer %s%s",
                      path, "");
      return NULL;
    }
    kv *nd = NULL;
    const char *why = "";
    if (strcmp(op, "add") == 0 || strcmp(op, "replace") == 0) {
      kv *val = ku_get(o, "value");
      if (!val) {
        ptr_free(&p);
        kv_unref(doc);
        *err = ks_status(400, "BadRequest", NULL,
                         "the server rejected our request due to an error in our request: %s "
                         "operation does not apply: doc is missing value",
                         op);
        return NULL;
      }
      nd = ptr_apply(doc, &p, 0, op[0] == 'a' ? 0 : 2, val, &why);
    } else if (strcmp(op, "remove") == 0) {
      nd = p.n ? ptr_apply(doc, &p, 0, 1, NULL, &why) : NULL;
    } else if (strcmp(op, "test") == 0) {
      kv *cur = ptr_get(doc, &p, p.n);
      if (cur && ku_json_equal(cur, ku_get(o, "value"))) {
        nd = kv_ref(doc);
      } else {
        ptr_free(&p);
        kv_unref(doc);
        *err = ks_status(422, "Invalid", NULL,
                         "the server rejected our request due to an error in our request: testing "
                         "value %s failed: test failed",
                         path);
        return NULL;
      }
    } else if (strcmp(op, "move") == 0 || strcmp(op, "copy") == 0) {
      const char *from = ku_str(o, "from");
      ptr fp;
      if (!from || !ptr_parse(from, &fp)) {
        ptr_free(&p);
        kv_unref(doc);
        *err = ks_status(400, "BadRequest", NULL,
                         "the server rejected our request due to an error in our request: %s "
                         "operation has an invalid \"from\"",
                         op);
        return NULL;
      }
      kv *v = ptr_get(doc, &fp, fp.n);
      if (v) {
        kv_ref(v);
        kv *mid = op[0] == 'm' ? ptr_apply(doc, &fp, 0, 1, NULL, &why) : kv_ref(doc);
        if (mid) {
          nd = ptr_apply(mid, &p, 0, 0, v, &why);
          kv_unref(mid);
        }
        kv_unref(v);
      } else {
        why = "missing path";
      }
      ptr_free(&fp);
    } else {
      ptr_free(&p);
      kv_unref(doc);
      *err = ks_status(
          400, "BadRequest", NULL,
          "the server rejected our request due to an error in our request: Unexpected kind: %s",
          op);
      return NULL;
    }
    ptr_free(&p);
    if (!nd) {
      kv_unref(doc);
      *err = ks_status(422, "Invalid", NULL,
                       "the server rejected our request due to an error in our request: %s "
                       "operation does not apply: doc is missing path: \"%s\": %s",
                       op, path, why);
      return NULL;
    }
    kv_unref(doc);
    doc = nd;
  }
  return doc;
}

/* ---- strategic merge patch ------------------------------------------------------- */

/* Merge keys of the built-in kinds (k8s.io/api patchMergeKey tags) by the
 * path below the pod template (or the object root for pods). */
static const char *const pod_keys[][2] = {
    {"containers", "name"},
    {"initContainers", "name"},
    {"ephemeralContainers", "name"},
    {"volumes", "name"},
    {"imagePullSecrets", "name"},
    {"hostAliases", "ip"},
    {"topologySpreadConstraints", "topologyKey"},
    {"containers.ports", "containerPort"},
    {"containers.env", "name"},
    {"containers.volumeMounts", "mountPath"},
    {"containers.volumeDevices", "devicePath"},
    {"initContainers.ports", "containerPort"},
    {"initContainers.env", "name"},
    {"initContainers.volumeMounts", "mountPath"},
    {"initContainers.volumeDevices", "devicePath"},
    {"ephemeralContainers.env", "name"},
    {"ephemeralContainers.volumeMounts", "mountPath"},
    {NULL, NULL},
};

const char *ks_smp_merge_key(const ks_type *t, const char *path) {
  if (strcmp(path, "metadata.ownerReferences") == 0) return "uid";
  if (strcmp(path, "status.conditions") == 0) return "type";
  if (strcmp(t->plural, "services") == 0 && strcmp(path, "spec.ports") == 0) return "port";
  if (strcmp(t->plural, "serviceaccounts") == 0 && strcmp(path, "secrets") == 0) return "name";
  if (strcmp(t->plural, "events") == 0) return NULL;
  const char *rest = NULL;
  if (strcmp(t->plural, "pods") == 0 && strncmp(path, "spec.", 5) == 0)
    rest = path + 5;
  else if (strncmp(path, "spec.template.spec.", 19) == 0 && *t->group && !t->is_crd)
    rest = path + 19;
  else if (strcmp(t->plural, "jobs") == 0 && strncmp(path, "spec.template.spec.", 19) == 0)
    rest = path + 19;
  if (!rest) return NULL;
  for (size_t i = 0; pod_keys[i][0]; i++)
    if (strcmp(pod_keys[i][0], rest) == 0) return pod_keys[i][1];
  return NULL;
}

/* Lists of scalars with patchStrategy "merge" (set union). */
static bool smp_primitive_merge(const char *path) {
  return strcmp(path, "metadata.finalizers") == 0;
}

static char *sub_path(const char *path, const char *key) {
  return *path ? ku_fmt("%s.%s", path, key) : ku_fmt("%s", key);
}

static kv *smp_value(const ks_type *t, const kv *target, const kv *patch, const char *path,
                     kv **err);

static ptrdiff_t find_by_key(const kv *list, const char *mkey, const kv *kval) {
  for (size_t i = 0; list && list->kind == KV_LIST && i < kv_len(list); i++) {
    kv *e = kv_list_at(list, i);
    kv *v = ku_get(e, mkey);
    if (v && ku_json_equal(v, kval)) return (ptrdiff_t)i;
  }
  return -1;
}

static ptrdiff_t find_scalar(const kv *list, const kv *val) {
  for (size_t i = 0; list && list->kind == KV_LIST && i < kv_len(list); i++)
    if (ku_json_equal(kv_list_at(list, i), val)) return (ptrdiff_t)i;
  return -1;
}

/* Order `list` as `order` says ($setElementOrder): elements named in the
 * order come first in that order, the rest keep their relative place. */
static kv *apply_order(const kv *list, const kv *order, const char *mkey) {
  if (!order || order->kind != KV_LIST) return kv_ref((kv *)list);
  size_t n = kv_len(list);
  bool *used = calloc(n + 1, 1);
  if (!used) kv_oom();
  kv *r = kv_list_new(n);
  for (size_t i = 0; i < kv_len(order); i++) {
    kv *o = kv_list_at(order, i);
    ptrdiff_t ix = mkey ? find_by_key(list, mkey, ku_get(o, mkey)) : find_scalar(list, o);
    if (ix >= 0 && !used[ix]) {
      used[ix] = true;
      kv_list_push(r, kv_ref(kv_list_at(list, (size_t)ix)));
    }
  }
  for (size_t i = 0; i < n; i++)
    if (!used[i]) kv_list_push(r, kv_ref(kv_list_at(list, i)));
  free(used);
  return r;
}

static kv *smp_list(const ks_type *t, const kv *target, const kv *patch, const char *path,
                    const kv *order, const kv *delete_prims, kv **err) {
  const char *mkey = ks_smp_merge_key(t, path);
  bool prim = smp_primitive_merge(path);
  if (!mkey && !prim) {
    /* atomic list: replaced (directives inside elements are not interpreted) */
    return kv_ref((kv *)patch);
  }
  kv *base = (target && target->kind == KV_LIST) ? kv_ref((kv *)target) : kv_list_new(0);
  if (prim) {
    kv *r = kv_list_new(kv_len(base) + kv_len(patch));
    for (size_t i = 0; i < kv_len(base); i++)
      if (!delete_prims || find_scalar(delete_prims, kv_list_at(base, i)) < 0)
        kv_list_push(r, kv_ref(kv_list_at(base, i)));
    for (size_t i = 0; patch && i < kv_len(patch); i++)
      if (find_scalar(r, kv_list_at(patch, i)) < 0) kv_list_push(r, kv_ref(kv_list_at(patch, i)));
    kv_unref(base);
    kv *o = apply_order(r, order, NULL);
    kv_unref(r);
    return o;
  }
  /* a whole-list replace directive */
  for (size_t i = 0; patch && i < kv_len(patch); i++) {
    kv *e = kv_list_at(patch, i);
    const char *d = ku_str(e, "$patch");
    if (d && strcmp(d, "replace") == 0) {
      kv *r = kv_list_new(kv_len(patch));
      for (size_t k = 0; k < kv_len(patch); k++) {
        kv *x = kv_list_at(patch, k);
        if (ku_str(x, "$patch")) continue;
        kv_list_push(r, kv_ref(x));
      }
      kv_unref(base);
      return r;
    }
  }
  kv *r = kv_ref(base);
  kv_unref(base);
  for (size_t i = 0; patch && i < kv_len(patch); i++) {
    kv *e = kv_list_at(patch, i);
    kv *kval = ku_get(e, mkey);
    if (!kval) {
      kv_unref(r);
      *err = ks_status(422, "Invalid", NULL, "map: %s does not contain declared merge key: %s",
                       path, mkey);
      return NULL;
    }
    ptrdiff_t ix = find_by_key(r, mkey, kval);
    const char *d = ku_str(e, "$patch");
    kv *nr = kv_list_new(kv_len(r) + 1);
    if (d && strcmp(d, "delete") == 0) {
      for (size_t k = 0; k < kv_len(r); k++)
        if ((ptrdiff_t)k != ix) kv_list_push(nr, kv_ref(kv_list_at(r, k)));
    } else if (ix >= 0) {
      for (size_t k = 0; k < kv_len(r); k++) {
        if ((ptrdiff_t)k == ix) {
          kv *m = smp_value(t, kv_list_at(r, k), e, path, err);
          if (!m) {
            kv_unref(nr);
            kv_unref(r);
            return NULL;
          }
          kv_list_push(nr, m);
        } else {
          kv_list_push(nr, kv_ref(kv_list_at(r, k)));
        }
      }
    } else {
      for (size_t k = 0; k < kv_len(r); k++)
        kv_list_push(nr, kv_ref(kv_list_at(r, k)));
      kv *m = smp_value(t, NULL, e, path, err);
      if (!m) {
        kv_unref(nr);
        kv_unref(r);
        return NULL;
      }
      kv_list_push(nr, m);
    }
    kv_unref(r);
    r = nr;
  }
  kv *o = apply_order(r, order, mkey);
  kv_unref(r);
  return o;
}

static kv *smp_value(const ks_type *t, const kv *target, const kv *patch, const char *path,
                     kv **err) {
  if (!patch || patch->kind != KV_MAP) return kv_ref((kv *)patch);
  const char *d = ku_str(patch, "$patch");
  if (d && strcmp(d, "replace") == 0) return ku_without(patch, "$patch");
  if (d && strcmp(d, "delete") == 0) return NULL; /* caller drops the key */
  kv *r = (target && target->kind == KV_MAP) ? ku_map_copy(target) : kv_map_new(kv_len(patch));
  kv *retain = ku_get(patch, "$retainKeys");
  for (size_t i = 0; i < kv_len(patch); i++) {
    kv *k = kv_map_key_at(patch, i), *pv = kv_map_val_at(patch, i);
    const char *ks = kv_str(k);
    if (ks[0] == '$') {
      if (strncmp(ks, "$deleteFromPrimitiveList/", 25) == 0) {
        const char *field = ks + 25;
        if (ku_get(patch, field)) continue; /* handled with the field */
        kv *cur = ku_get(r, field);
        if (cur && cur->kind == KV_LIST) {
          kv *nl = kv_list_new(kv_len(cur));
          for (size_t j = 0; j < kv_len(cur); j++)
            if (find_scalar(pv, kv_list_at(cur, j)) < 0)
              kv_list_push(nl, kv_ref(kv_list_at(cur, j)));
          kv_map_set_str(r, field, nl);
        }
      } else if (strncmp(ks, "$setElementOrder/", 17) == 0) {
        const char *field = ks + 17;
        if (ku_get(patch, field)) continue;
        kv *cur = ku_get(r, field);
        if (cur && cur->kind == KV_LIST) {
          char *sp = sub_path(path, field);
          kv *o = apply_order(cur, pv, ks_smp_merge_key(t, sp));
          free(sp);
          kv_map_set_str(r, field, o);
        }
      }
      continue;
    }
    char *sp = sub_path(path, ks);
    if (pv->kind == KV_NULL) {
      kv *nr = ku_without(r, ks);
      kv_unref(r);
      r = nr;
    } else if (pv->kind == KV_LIST) {
      char *ok = ku_fmt("$setElementOrder/%s", ks), *dk = ku_fmt("$deleteFromPrimitiveList/%s", ks);
      kv *m = smp_list(t, ku_get(r, ks), pv, sp, ku_get(patch, ok), ku_get(patch, dk), err);
      free(ok);
      free(dk);
      if (!m) {
        free(sp);
        kv_unref(r);
        return NULL;
      }
      kv_map_set(r, kv_ref(k), m);
    } else if (pv->kind == KV_MAP) {
      const char *pd = ku_str(pv, "$patch");
      if (pd && strcmp(pd, "delete") == 0) {
        kv *nr = ku_without(r, ks);
        kv_unref(r);
        r = nr;
      } else {
        kv *m = smp_value(t, ku_get(r, ks), pv, sp, err);
        if (!m && *err) {
          free(sp);
          kv_unref(r);
          return NULL;
        }
        if (m) kv_map_set(r, kv_ref(k), m);
      }
    } else {
      kv_map_set(r, kv_ref(k), kv_ref(pv));
    }
    free(sp);
  }
  if (retain && retain->kind == KV_LIST) {
    kv *nr = kv_map_new(kv_len(r));
    for (size_t i = 0; i < kv_len(r); i++)
      if (find_scalar(retain, kv_map_key_at(r, i)) >= 0)
        kv_map_set(nr, kv_ref(kv_map_key_at(r, i)), kv_ref(kv_map_val_at(r, i)));
    kv_unref(r);
    r = nr;
  }
  return r;
}

kv *ks_strategic_patch(const ks_type *t, const kv *target, const kv *patch, kv **err) {
  *err = NULL;
  if (!patch || patch->kind != KV_MAP) {
    *err = ks_status(400, "BadRequest", NULL,
                     "the server rejected our request due to an error in our request: a strategic "
                     "merge patch must be a JSON object");
    return NULL;
  }
  kv *r = smp_value(t, target, patch, "", err);
  if (!r && !*err) r = kv_map_new(0);
  return r;
}
