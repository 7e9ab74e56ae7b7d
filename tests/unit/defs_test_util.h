/*
 * tests/unit/defs_test_util.h: helpers shared by the test_defs_*.c unit
 * tests: load YAML text into a registry and look definitions up, with
 * cmocka assertions on the way.  Header-only (static functions).
 */
#ifndef KOREO_DEFS_TEST_UTIL_H
#define KOREO_DEFS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/definition.h"
#include "koreo/json.h"

/* A registry loaded from `yaml`; diagnostics in *diags (may be NULL). */
static inline kdef_registry *load_yaml(const char *yaml, kdef_diags *diags) {
  kdef_registry *r = kdef_registry_new();
  kdef_load_text(r, yaml, strlen(yaml), "test.yaml", diags);
  return r;
}

/* Parse one YAML document (caller unrefs). */
static inline kv *yaml_doc(const char *yaml) {
  kv_parse_error err;
  kv *docs = kv_yaml_parse(yaml, strlen(yaml), "test.yaml", &err);
  if (!docs) {
    fprintf(stderr, "YAML error %u:%u %s\n", err.line, err.col, err.msg);
    abort();
  }
  kv *d = kv_ref(kv_list_at(docs, 0));
  kv_unref(docs);
  return d;
}

/* Does any diagnostic's message contain `needle`? */
static inline bool diags_have(const kdef_diags *d, const char *needle) {
  for (size_t i = 0; i < d->n; i++)
    if (d->items[i].message && strstr(d->items[i].message, needle)) return true;
  return false;
}

static inline bool contains(const char *s, const char *needle) {
  return s && strstr(s, needle) != NULL;
}

#endif
