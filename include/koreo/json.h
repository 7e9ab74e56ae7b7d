/*
 * koreo/json.h: JSON and YAML in and out of `kv` values, at the edge.
 *
 * JSON goes through cJSON; YAML through libyaml.  Numbers keep their
 * nature: a JSON number token with '.', 'e' or 'E' is a double, any other
 * is an int (uint when it exceeds int64 but fits uint64); `3` never
 * becomes `3.0`.  Output is deterministic (map insertion order unless
 * KV_JSON_SORT_KEYS) and doubles round-trip exactly (kv_double_repr).
 */
#ifndef KOREO_JSON_H
#define KOREO_JSON_H

#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where and why reading failed: file (may be NULL), 1-based line and
 * column, and a message. */
typedef struct kv_parse_error {
  const char *file;
  uint32_t line, col;
  char msg[256];
} kv_parse_error;

/* Parse one JSON document of `len` bytes.  Returns a new reference, or NULL
 * with `err` filled (line/column of the offending byte). */
kv *kv_json_parse(const char *text, size_t len, kv_parse_error *err);

enum {
  KV_JSON_PRETTY = 1u << 0,    /* two-space indentation, one entry a line */
  KV_JSON_SORT_KEYS = 1u << 1, /* keys in byte order instead of insertion */
};

/* Serialise `v` as JSON.  Returns a malloc'ed NUL-terminated string (length
 * in *len when len != NULL).  Non-JSON kinds: uint as an integer, bytes as
 * base64 text, timestamps and durations as their CEL text, types as their
 * name, non-finite doubles as the strings "NaN", "Infinity", "-Infinity",
 * non-string map keys as their JSON text ("1", "true", "null").  Never
 * fails (errors are written as {"error": "<message>"}). */
char *kv_json_write(const kv *v, unsigned flags, size_t *len);

/* Parse a YAML stream (all documents) of `len` bytes.  Returns a new list
 * with one value per document, or NULL with `err` filled.  Scalars resolve
 * as PyYAML's SafeLoader does (YAML 1.1: yes/no/on/off booleans, 0x1F and
 * 1_000 ints, .inf/.nan, ~ null, ...); anchors and aliases are resolved;
 * strings, numbers, lists and maps carry their file/line/column (kv_pos);
 * booleans and nulls are shared singletons and carry none (docs/yaml.md).  `file` names the
 * source in positions and errors (may be NULL). */
kv *kv_yaml_parse(const char *text, size_t len, const char *file, kv_parse_error *err);

/* Read a whole file into memory: returns a malloc'ed NUL-terminated buffer
 * or NULL with `err` filled (errno text). */
char *kv_read_file(const char *path, size_t *len, kv_parse_error *err);

#ifdef __cplusplus
}
#endif
#endif
