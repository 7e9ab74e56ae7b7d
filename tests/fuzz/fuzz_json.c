/*
 * tests/fuzz/fuzz_json.c: libFuzzer target for the JSON reader and writer
 * (koreo/json.h).  Any input: kv_json_parse must not crash; when it
 * succeeds, kv_json_write (compact, and pretty with sorted keys) must
 * produce text that parses again to a strictly equal value, and writing
 * is deterministic (writing the re-parsed value gives the same text).
 * Documented exception: non-finite doubles (from e.g. 1e400) are written
 * as the strings "Infinity"/"-Infinity"/"NaN" and so re-read as strings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/json.h"

/* kv_equal_strict, except that a non-finite double in `a` matches its
 * string spelling in `b`. */
static int same(const kv *a, const kv *b, int ordered) {
  if (kv_kind_of(a) == KV_DOUBLE && !isfinite(a->u.d) && kv_kind_of(b) == KV_STRING) {
    const char *want = isnan(a->u.d) ? "NaN" : a->u.d > 0 ? "Infinity" : "-Infinity";
    return strcmp(kv_str(b), want) == 0;
  }
  if (kv_kind_of(a) != kv_kind_of(b)) return 0;
  if (kv_kind_of(a) == KV_LIST) {
    if (kv_len(a) != kv_len(b)) return 0;
    for (size_t i = 0; i < kv_len(a); i++)
      if (!same(kv_list_at(a, i), kv_list_at(b, i), ordered)) return 0;
    return 1;
  }
  if (kv_kind_of(a) == KV_MAP) {
    if (kv_len(a) != kv_len(b)) return 0;
    for (size_t i = 0; i < kv_len(a); i++) {
      const kv *k = kv_map_key_at(a, i);
      if (ordered && !kv_equal_strict(k, kv_map_key_at(b, i), 1)) return 0;
      const kv *vb = kv_map_get(b, k);
      if (!vb || !same(kv_map_val_at(a, i), vb, ordered)) return 0;
    }
    return 1;
  }
  return kv_equal_strict(a, b, ordered);
}

static void die(const char *what, const char *text) {
  fprintf(stderr, "fuzz_json: %s\n%s\n", what, text ? text : "");
  abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  kv_parse_error err;
  kv *a = kv_json_parse((const char *)data, size, &err);
  if (!a) {
    if (err.line == 0 || err.col == 0 || !err.msg[0]) die("error without a position", err.msg);
    return 0;
  }
  static const unsigned flag_sets[] = {0, KV_JSON_PRETTY | KV_JSON_SORT_KEYS};
  for (size_t f = 0; f < 2; f++) {
    unsigned flags = flag_sets[f];
    size_t n;
    char *s = kv_json_write(a, flags, &n);
    if (strlen(s) != n) die("written length mismatch", s);
    kv *b = kv_json_parse(s, n, &err);
    if (!b) {
      fprintf(stderr, "re-parse error %u:%u %s\n", err.line, err.col, err.msg);
      die("written JSON does not parse", s);
    }
    if (!same(a, b, !(flags & KV_JSON_SORT_KEYS))) die("round trip changed the value", s);
    char *s2 = kv_json_write(b, flags, NULL);
    if (strcmp(s, s2) != 0) die("writing is not deterministic", s2);
    free(s2);
    kv_unref(b);
    free(s);
  }
  kv_unref(a);
  return 0;
}
