/*
 * koreo/outcome.h: the result type of every Koreo evaluation (spec 3):
 * Ok(value), Skip, DepSkip, Retry(delay) and PermFail, their text forms,
 * the classification helpers and the two combination entry points
 * (combine / unwrapped_combine, spec 3.2).
 *
 * A koreo_outcome is a small struct passed by value that OWNS what it
 * points to: `value` (a kv reference, Ok only), `message` and `location`
 * (malloc'ed text or NULL).  Release with koreo_outcome_clear(); copy with
 * koreo_outcome_copy().  A zero-initialised koreo_outcome is a DepSkip with
 * no message (the lowest element of the combination order), so
 * `koreo_outcome o = {0};` is a valid empty outcome to clear or overwrite.
 *
 * "Unwrapped" outcomes of upstream (a plain value means Ok) are simply
 * KOREO_OK outcomes here; an Ok value may be null (kv_null()).
 */
#ifndef KOREO_OUTCOME_H
#define KOREO_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The outcome kinds, numbered in combination precedence order (spec 3.2:
 * PermFail > Retry > Ok > Skip > DepSkip), so `a > b` means "a wins". */
typedef enum koreo_outcome_kind {
  KOREO_DEPSKIP = 0,
  KOREO_SKIP = 1,
  KOREO_OK = 2,
  KOREO_RETRY = 3,
  KOREO_PERMFAIL = 4,
} koreo_outcome_kind;

/* Default Retry delay in seconds (spec 3.1). */
#define KOREO_RETRY_DEFAULT_DELAY 60

typedef struct koreo_outcome {
  koreo_outcome_kind kind;
  kv *value;      /* KOREO_OK: the data (never NULL for Ok; may be kv_null());
                     NULL for every other kind. Owned reference. */
  int64_t delay;  /* KOREO_RETRY: seconds; 0 otherwise */
  char *message;  /* owned, NULL when none (Ok never has one) */
  char *location; /* owned, NULL when none */
} koreo_outcome;

/* --- constructors ---------------------------------------------------------
 * Each returns an outcome that owns copies of `message`/`location` (NULL
 * allowed for both).  koreo_outcome_ok TAKES the reference `value` (NULL
 * means null).  The *f variants format the message printf-style. */
koreo_outcome koreo_outcome_ok(kv *value, const char *location);
koreo_outcome koreo_outcome_skip(const char *message, const char *location);
koreo_outcome koreo_outcome_depskip(const char *message, const char *location);
koreo_outcome koreo_outcome_retry(int64_t delay, const char *message, const char *location);
koreo_outcome koreo_outcome_permfail(const char *message, const char *location);
koreo_outcome koreo_outcome_make(koreo_outcome_kind kind, int64_t delay, const char *location,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Release what `o` owns and reset it to the zero outcome (DepSkip, no
 * message).  Safe on a zero outcome and idempotent. */
void koreo_outcome_clear(koreo_outcome *o);
/* A deep copy (new references and strings). */
koreo_outcome koreo_outcome_copy(const koreo_outcome *o);
/* Replace the location of `o` (copied; NULL clears it). */
void koreo_outcome_set_location(koreo_outcome *o, const char *location);
/* Move: returns *o and leaves `o` as the zero outcome. */
koreo_outcome koreo_outcome_take(koreo_outcome *o);

/* --- classification (spec 3.1) ------------------------------------------ */
static inline bool koreo_outcome_is_ok(const koreo_outcome *o) { return o->kind == KOREO_OK; }
/* error = Retry or PermFail */
static inline bool koreo_outcome_is_error(const koreo_outcome *o) {
  return o->kind == KOREO_RETRY || o->kind == KOREO_PERMFAIL;
}
/* skip = Skip or DepSkip */
static inline bool koreo_outcome_is_skip(const koreo_outcome *o) {
  return o->kind == KOREO_SKIP || o->kind == KOREO_DEPSKIP;
}

/* "Ok", "Skip", "DepSkip", "Retry", "PermFail" (the FunctionTest
 * expectOutcome keys are the lower-camel forms "ok", "skip", "depSkip",
 * "retry", "permFail": koreo_outcome_key()). */
const char *koreo_outcome_kind_name(koreo_outcome_kind k);
const char *koreo_outcome_key(koreo_outcome_kind k);

/* The text form of spec 3.1, malloc'ed (caller frees):
 *   Ok(data=<data as compact JSON>)
 *   Skip (message=<m>)              or  User Skip
 *   Dependency Skip (message=<m>)   or  Dependency Violation Skip
 *   Retry(delay=<d>, message=<m>)   (m printed as None when absent)
 *   Permanent Failure (message=<m>) (m printed as None when absent)
 * These exact texts appear in forEach results and FunctionTest messages. */
char *koreo_outcome_text(const koreo_outcome *o);

/* A Koreo value describing the outcome, for reports and status:
 * {"kind": "Retry", "delay": 30, "message": "...", "location": "..."},
 * "value" for Ok, keys with absent text omitted.  New reference. */
kv *koreo_outcome_to_kv(const koreo_outcome *o);

/* --- combination (spec 3.2) -----------------------------------------------
 * Left fold of the pairwise operator of spec 3.2 starting from DepSkip.
 * Empty input → Skip() with no message.  An Ok result's value is ALWAYS a
 * list of the Ok data in fold order (one Ok → one-element list; Skips add
 * nothing); merged Retry: delay = max, messages and locations joined with
 * ", " skipping empty ones; merged PermFail: messages/locations joined.
 * Among Skips (and among DepSkips) the later one wins.  Inputs are
 * borrowed; the result is new.  This serves both upstream's `combine` and
 * `unwrapped_combine` (an unwrapped plain value is a KOREO_OK outcome). */
koreo_outcome koreo_outcome_combine(const koreo_outcome *items, size_t n);
/* The same over an array of pointers (NULL entries are ignored). */
koreo_outcome koreo_outcome_combine_ptrs(const koreo_outcome *const *items, size_t n);

#ifdef __cplusplus
}
#endif
#endif
