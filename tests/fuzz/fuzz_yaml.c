/*
 * tests/fuzz/fuzz_yaml.c: libFuzzer target for the YAML reader
 * (kv_yaml_parse in koreo/json.h).  Any input: no crash, no leak, no
 * undefined behaviour; errors carry a 1-based position; values carry sane
 * positions; documents whose expanded size is small (aliases share values,
 * so a small input can stand for a huge tree) are also written as JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/json.h"

static void die(const char *what, const char *msg) {
  fprintf(stderr, "fuzz_yaml: %s: %s\n", what, msg ? msg : "");
  abort();
}

/* Nodes of the tree as written out (aliases counted each time), capped. */
static size_t expanded(const kv *v, size_t budget) {
  size_t n = 1;
  const kv_srcpos *p = kv_pos(v);
  if (p && (p->line == 0 || p->col == 0)) die("position not 1-based", "");
  if (kv_kind_of(v) == KV_LIST) {
    for (size_t i = 0; i < kv_len(v) && n < budget; i++)
      n += expanded(kv_list_at(v, i), budget - n);
  } else if (kv_kind_of(v) == KV_MAP) {
    for (size_t i = 0; i < kv_len(v) && n < budget; i++) {
      n += expanded(kv_map_key_at(v, i), budget - n);
      if (n < budget) n += expanded(kv_map_val_at(v, i), budget - n);
    }
  }
  return n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  kv_parse_error err;
  kv *docs = kv_yaml_parse((const char *)data, size, "fuzz.yaml", &err);
  if (!docs) {
    if (err.line == 0 || err.col == 0 || !err.msg[0]) die("error without a position", err.msg);
    if (!err.file || strcmp(err.file, "fuzz.yaml")) die("error without the file name", err.msg);
    return 0;
  }
  if (kv_kind_of(docs) != KV_LIST) die("result is not a list", "");
  for (size_t i = 0; i < kv_len(docs); i++) {
    const kv *d = kv_list_at(docs, i);
    if (expanded(d, 20000) < 20000) {
      size_t n;
      char *s = kv_json_write(d, KV_JSON_PRETTY, &n);
      kv *back = kv_json_parse(s, n, &err);
      if (!back) {
        fprintf(stderr, "%s\n", s);
        die("JSON written from YAML does not parse", err.msg);
      }
      kv_unref(back);
      free(s);
    }
  }
  kv_unref(docs);
  return 0;
}
