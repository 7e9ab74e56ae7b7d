/*
 * koreo/expr.h: Koreo Expressions (spec 2.1, 2.2, 2.6, 2.7, 2.8): turning
 * a Koreo value spec (a YAML/JSON value in which strings starting with `=`
 * are CEL source) into one CEL program, and evaluating it.
 *
 * - koreo_encode() translates a spec into CEL source text exactly as
 *   upstream Koreo's encoder does (spec 2.1), quirks included.
 * - koreo_expr_prepare() compiles a spec in one of the shapes the
 *   definitions use (spec 2.2): a single expression, a map, an overlay or
 *   a predicate list.  A falsy spec yields an *empty* expression (no
 *   program) that evaluates to null.
 * - koreo_expr_eval() / koreo_expr_eval_overlay() evaluate against named
 *   variables (spec 2.10: the caller decides which names are visible).
 *
 * Errors are values: a prepare error (stage KOREO_STAGE_PREPARE) or an
 * evaluation error (KOREO_STAGE_EVAL) fills a koreo_error with the
 * location string the caller gave and a message saying what failed,
 * where (line/column and the sub-expression) and why, in CEL's terms.
 *
 * Ownership: prepared expressions are owned by the caller (free with
 * koreo_expr_free, before the cel_env they were compiled in); every
 * `const kv *` argument is borrowed; every returned `kv *` is a new
 * reference.  A koreo_expr is immutable after prepare and may be
 * evaluated any number of times.
 */
#ifndef KOREO_EXPR_H
#define KOREO_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include "koreo/cel.h"
#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The expression shapes of spec 2.2. */
typedef enum koreo_shape {
  /* "single": any Koreo value, compiled as encode(v).  Used by skipIf,
   * forEach.itemIn, refSwitch.switchOn, resourceTemplateRef.name, ... */
  KOREO_SHAPE_EXPRESSION = 0,
  /* a map only (else a prepare error "Malformed <location>, expected a
   * mapping"), compiled as one CEL map literal.  Used by locals, step
   * inputs/state, RF resource/return, ... */
  KOREO_SHAPE_MAP,
  /* a map only, compiled as an index plus one CEL list literal of leaf
   * values (spec 2.7); applied onto a base with koreo_expr_eval_overlay. */
  KOREO_SHAPE_OVERLAY,
  /* a list only (else "Malformed <location>, expected a list"), compiled
   * as encode(list).filter(predicate, !predicate.assert) (spec 2.8):
   * evaluation yields the list of predicates whose assert is false. */
  KOREO_SHAPE_PREDICATES,
} koreo_shape;

enum {
  KOREO_STAGE_NONE = 0,    /* no error */
  KOREO_STAGE_PREPARE = 1, /* encode / shape / CEL parse (compile) error */
  KOREO_STAGE_EVAL = 2,    /* evaluation error */
};

/* What went wrong and where.  `line`/`col` (1-based, col in code points)
 * point into the encoded CEL source, 0 when unknown.  `message` is the
 * complete user-facing text and already names `location`. */
typedef struct koreo_error {
  int stage;           /* KOREO_STAGE_* */
  cel_error_code code; /* CEL's category; CEL_ERR_INVALID for shape errors */
  uint32_t line, col;
  char location[256];
  char message[1024];
} koreo_error;

typedef struct koreo_expr koreo_expr;

/* Python truthiness of a Koreo/CEL value (spec 2.2 "empty", quirk 25):
 * null, false, 0, 0u, 0.0, -0.0, "", b"", [], {} and a zero duration are
 * falsy; everything else (NaN included) is truthy. */
bool koreo_truthy(const kv *v);

/* True when upstream's encoder emits string `s` (len bytes, UTF-8)
 * verbatim as a number (spec 2.1 "numeric-looking"): it is accepted by
 * Python's float() (which accepts everything int() base 10 does):
 * surrounding whitespace (Unicode spaces included), a sign, decimal digits
 * of any script with single '_' between digits, an optional fraction and
 * exponent, or nan / inf / infinity in any case. */
bool koreo_numeric_string(const char *s, size_t len);

/* Encode a Koreo value as CEL source text (spec 2.1).  Returns a malloc'ed
 * NUL-terminated string (length in *len when len != NULL), or NULL with a
 * message in `err` (errlen bytes) when `spec` holds a value that has no
 * CEL source form (bytes, timestamps, durations, types, errors). */
char *koreo_encode(const kv *spec, size_t *len, char *err, size_t errlen);

/* The CEL source koreo_expr_prepare compiles for `spec` in `shape`
 * (spec 2.2): encode(spec) for the expression and map shapes, the encoded
 * leaf list for the overlay shape (spec 2.7), encode(list) +
 * ".filter(predicate, !predicate.assert)" for predicates.  The shape is
 * not checked (a non-map overlay spec is encoded as a single leaf).
 * Returns a malloc'ed string or NULL with `err` filled, like
 * koreo_encode. */
char *koreo_encode_shape(const kv *spec, koreo_shape shape, size_t *len, char *err, size_t errlen);

/* Prepare `spec` in `shape` (spec 2.2) for the environment `env` (made
 * with cel_env_new_koreo).  `location` (copied; NULL means "expression")
 * names the field in messages, e.g. "ValueFunction:f:spec.locals".
 * Returns an expression owned by the caller, possibly empty (falsy spec:
 * no program, evaluates to null), or NULL with `err` filled (stage
 * KOREO_STAGE_PREPARE): shape errors, unencodable values, CEL parse
 * errors (with line/column in the encoded source). */
koreo_expr *koreo_expr_prepare(const cel_env *env, const kv *spec, koreo_shape shape,
                               const char *location, koreo_error *err);
void koreo_expr_free(koreo_expr *e);

/* Accessors (borrowed results). */
koreo_shape koreo_expr_shape(const koreo_expr *e);
bool koreo_expr_is_empty(const koreo_expr *e);
const char *koreo_expr_location(const koreo_expr *e);
/* The encoded CEL source (for the overlay shape: of the leaf list), NULL
 * when empty. */
const char *koreo_expr_source(const koreo_expr *e);
/* The overlay index (spec 2.7): a map key -> int leaf position, or key ->
 * nested index map for nested non-empty literal maps.  NULL unless the
 * shape is KOREO_SHAPE_OVERLAY and the expression is not empty. */
const kv *koreo_expr_overlay_index(const koreo_expr *e);

/* Evaluate with `bindings`, a map variable name -> value (NULL: none).
 * Returns a new reference (null for an empty expression), or NULL with
 * `err` filled (stage KOREO_STAGE_EVAL).  An error anywhere inside the
 * value fails the whole value (spec 2.6).  For the overlay shape this
 * returns the evaluated leaf list; use koreo_expr_eval_overlay to apply. */
kv *koreo_expr_eval(const koreo_expr *e, const kv *bindings, koreo_error *err);

/* Evaluate an overlay-shape expression and apply it onto `base` (spec
 * 2.7).  The leaves are evaluated with `bindings` plus `resource` bound to
 * the base (NULL or null base: {}).  Returns the overlaid map (base keys
 * keep their order, new keys follow in spec order), null for an empty
 * expression, or NULL with `err` filled (stage KOREO_STAGE_EVAL),
 * including when `base` is neither a map nor null. */
kv *koreo_expr_eval_overlay(const koreo_expr *e, const kv *base, const kv *bindings,
                            koreo_error *err);

/* Apply an overlay index with its evaluated leaf values onto `base` (a map;
 * NULL or non-map: {}), spec 2.7.  Returns a new map; `base` is not
 * changed. */
kv *koreo_overlay_apply(const kv *base, const kv *index, const kv *values);

/* Koreo's "native conversion" of a CEL result (spec 2.5, quirk 23): the
 * Koreo value handed to Kubernetes, status.state and FunctionTests.
 * bool, int, double, string and null stay; uint becomes an integer (int
 * when it fits int64); bytes become their standard base64 text;
 * timestamps their RFC 3339 text in the offset they were written with,
 * fraction dropped ("2024-01-01T00:00:00+05:00", "...Z" for UTC);
 * durations whole seconds truncated toward zero ("-1s"); types their name;
 * lists and maps are converted recursively, map keys becoming strings
 * (their JSON text: "1", "true", "null", "1.5").  Returns a new
 * reference; never fails. */
kv *koreo_to_native(const kv *v);

#ifdef __cplusplus
}
#endif
#endif
