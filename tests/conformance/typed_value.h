/*
 * tests/conformance/typed_value.h: the conformance corpora's "typed value"
 * JSON form <-> `kv`, shared by the conformance runners (cel-conformance,
 * koreo-expr-conformance).
 *
 * A typed value is a one-key JSON object naming the CEL type
 * (shared/conformance/cel/README.md, "Typed values"):
 *   {"null": null}  {"bool": true}  {"int64": "-5"}  {"uint64": "5"}
 *   {"double": 1.5} or {"double": "NaN" | "Infinity" | "-Infinity"}
 *   {"string": "..."}  {"bytes_b64": "..."}  {"list": [T, ...]}
 *   {"map": [[T_key, T_value], ...]}  {"type": "int"}
 *   {"timestamp": "2024-01-01T00:00:00.5Z"}  {"duration": "1.5s"}
 *
 * The converter is deliberately independent of the code under test: it
 * parses and prints RFC 3339 timestamps, durations and base64 itself.
 */
#ifndef KOREO_TESTS_TYPED_VALUE_H
#define KOREO_TESTS_TYPED_VALUE_H

#include <stddef.h>

#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Convert a typed value (as read by a JSON reader into a `kv`: one-key
 * map) to the CEL value it denotes.  `typed` is borrowed.  Accepts a JSON
 * int for "double" (a reader that types `1` as int), and "int64"/"uint64"
 * given as JSON numbers as well as decimal strings.  Returns a new
 * reference, or NULL with a message in `err` (errlen bytes, may be 0)
 * naming what is malformed (unknown type key, bad number text, bad base64,
 * bad timestamp, ...).  A timestamp's written offset is kept in u.t.off. */
kv *typed_value_to_kv(const kv *typed, char *err, size_t errlen);

/* Convert a CEL value to its typed-value form (a new `kv` tree of maps,
 * lists, strings, doubles, bools and null, ready for kv_json_write).
 * `v` is borrowed.  Timestamps are printed in UTC with the fraction trimmed
 * of trailing zeros; durations as seconds with a trimmed fraction.  An
 * error value (KV_ERROR) becomes {"error": "<message>"}.  Never fails. */
kv *kv_to_typed_value(const kv *v);

#ifdef __cplusplus
}
#endif
#endif
