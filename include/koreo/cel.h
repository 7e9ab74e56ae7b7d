/*
 * koreo/cel.h: the CEL engine: environments, compiling an expression once
 * and evaluating it many times against bindings.
 *
 * Two dialects share one lexer, parser, checker and evaluator:
 *  - CEL_DIALECT_STANDARD follows the CEL language definition;
 *  - CEL_DIALECT_KOREO reproduces upstream Koreo's engine (cel-python 0.3.0
 *    with Koreo's functions) under the compatibility rule of
 *    shared/conformance/koreo-expressions/README.md.  Every place where the
 *    two differ is in core/cel/dialect_koreo.c.
 * Function sets are chosen per environment (cel_env_new_*).
 */
#ifndef KOREO_CEL_H
#define KOREO_CEL_H

#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cel_dialect { CEL_DIALECT_STANDARD = 0, CEL_DIALECT_KOREO = 1 } cel_dialect;

/* Error categories (kv.u.err.code and cel_status.code). */
typedef enum cel_error_code {
  CEL_OK = 0,
  CEL_ERR_PARSE,         /* syntax error */
  CEL_ERR_CHECK,         /* unknown function, wrong arity, unknown variable */
  CEL_ERR_NO_OVERLOAD,   /* no matching overload for the argument types */
  CEL_ERR_NO_SUCH_KEY,   /* map index with an absent key */
  CEL_ERR_NO_SUCH_FIELD, /* field selection of an absent key / on a non-map */
  CEL_ERR_UNDECLARED,    /* unbound variable */
  CEL_ERR_OVERFLOW,      /* int/uint overflow, out-of-range conversion */
  CEL_ERR_DIV_ZERO,      /* division or modulus by zero */
  CEL_ERR_RANGE,         /* index out of range, timestamp out of range */
  CEL_ERR_INVALID,       /* invalid argument (bad regex, bad format, ...) */
  CEL_ERR_UNKNOWN,       /* failure with no CEL detail (Koreo: "Unknown failure") */
} cel_error_code;

/* Extension libraries for the standard environment. */
enum {
  CEL_EXT_STRINGS = 1u << 0,  /* charAt, indexOf, ..., format, quote, reverse */
  CEL_EXT_MATH = 1u << 1,     /* math.greatest, math.least, ... */
  CEL_EXT_ENCODERS = 1u << 2, /* base64.encode/decode */
  CEL_EXT_BINDINGS = 1u << 3, /* cel.bind */
  CEL_EXT_OPTIONALS = 1u << 4,
  CEL_EXT_COMPREHENSIONS2 = 1u << 5, /* two-variable all/exists/..., transformList/Map */
};

/* What went wrong and where.  `offset` is a byte offset into the source,
 * `line`/`col` are 1-based (col counts code points), 0 when unknown. */
typedef struct cel_status {
  cel_error_code code;
  int stage; /* 0 ok, 1 compile, 2 eval */
  uint32_t offset, line, col;
  char msg[512];
} cel_status;

typedef struct cel_env cel_env;
typedef struct cel_program cel_program;

/* A standard CEL environment with the given CEL_EXT_* libraries.  Owned by
 * the caller; free with cel_env_free after every program from it. */
cel_env *cel_env_new_standard(unsigned ext);
/* The Koreo environment: upstream Koreo's function set and dialect. */
cel_env *cel_env_new_koreo(void);
void cel_env_free(cel_env *env);

/* Declare a top-level variable for the checker.  Once any variable is
 * declared, references to undeclared top-level names are compile errors
 * (CEL_ERR_CHECK); with none declared, names resolve at evaluation time. */
void cel_env_declare(cel_env *env, const char *name);
/* Set the container (namespace) used to resolve qualified names. */
void cel_env_set_container(cel_env *env, const char *container);
/* Turn the compile-time checks (unknown functions) on or off; on by
 * default in the standard environment.  Off: unknown functions fail at
 * evaluation.  The Koreo environment never checks (upstream fails late). */
void cel_env_set_checking(cel_env *env, bool on);
/* Disable macro expansion (has/all/exists/...) for the parser. */
void cel_env_disable_macros(cel_env *env, bool off);

/* Compile `src` (len bytes, UTF-8).  Returns a program owned by the caller
 * (free with cel_program_free) or NULL with `st` filled (stage 1): parse
 * errors and checker errors carry the line and column. */
cel_program *cel_compile(const cel_env *env, const char *src, size_t len, cel_status *st);
void cel_program_free(cel_program *p);
/* The source text the program was compiled from (borrowed). */
const char *cel_program_source(const cel_program *p);

/* Evaluate with `bindings`, a map from variable name (string) to value
 * (borrowed; NULL means no variables).  Returns a new reference, or NULL
 * with `st` filled (stage 2, the sub-expression's offset/line/col).  In
 * the Koreo dialect a result containing an error anywhere inside it is
 * an error (spec 2.6). */
kv *cel_eval(const cel_program *p, const kv *bindings, cel_status *st);

/* Like cel_eval, but returns the raw result: an error value (KV_ERROR) is
 * returned as such instead of NULL.  Never returns NULL. */
kv *cel_eval_value(const cel_program *p, const kv *bindings);

/* Fill `st` from an error value produced by evaluating `p`. */
void cel_status_from_error(const cel_program *p, const kv *err, cel_status *st);

#ifdef __cplusplus
}
#endif
#endif
