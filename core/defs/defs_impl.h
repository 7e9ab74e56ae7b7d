/*
 * core/defs/defs_impl.h: internal interfaces of the definitions module
 * (core/defs/): the embedded schema texts, small string helpers, outcome
 * constructors, the preparers of the five kinds and the registry view they
 * use to resolve references.  Not part of the public API.
 */
#ifndef KOREO_DEFS_IMPL_H
#define KOREO_DEFS_IMPL_H

#include <stdarg.h>
#include <stdio.h>

#include "koreo/definition.h"

/* ---- embedded schemas (schema_data.c, generated) ------------------------ */

typedef struct kdef_schema_text {
  const char *kind;
  const char *file; /* the CRD it comes from: "schema/<name>.yaml" */
  const char *text; /* the spec schema as JSON, descriptions left out */
  size_t len;
} kdef_schema_text;

extern const kdef_schema_text kdef_schema_texts[KDEF_KIND_COUNT];

/* Check the Kubernetes admission rules (x-kubernetes-validations) of the
 * kind's schema against the definition's spec; one diagnostic per failed
 * rule.  Returns the number of failures. */
size_t kd_schema_admission(const kdef_definition *def, kdef_diags *diags);

/* ---- strings --------------------------------------------------------------
 */

typedef struct kd_buf {
  char *p;
  size_t len, cap;
} kd_buf;

void kd_buf_put(kd_buf *b, const char *s, size_t n);
void kd_buf_puts(kd_buf *b, const char *s);
void kd_buf_printf(kd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the buffer's string (never NULL; "" when empty) and resets b. */
char *kd_buf_take(kd_buf *b);

char *kd_strdup(const char *s); /* NULL passes through; aborts on OOM */
char *kd_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kd_vprintf(const char *fmt, va_list ap);

/* Compact JSON text of a value (malloc'ed). */
char *kd_json(const kv *v);

/* ---- outcomes ---------------------------------------------------------------
 */

/* Set *o (cleared first) to kind/delay with a formatted message; location,
 * path (copied, may be NULL) and the position of `at` (may be NULL). */
void kd_fail(kdef_outcome *o, kdef_outcome_kind kind, int64_t delay, const char *location,
             const char *path, const kv *at, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static inline void kd_ok(kdef_outcome *o) { kdef_outcome_clear(o); }

/* acc = acc (+) next for the non-Ok kinds (spec 3.2; Ok entries are
 * ignored): the higher kind wins; equal Retry: max delay and joined
 * messages/locations; equal PermFail: joined messages/locations; among
 * skips the later wins.  `acc` must start as KDEF_O_OK meaning "empty". */
void kd_combine_errors(kdef_outcome *acc, const kdef_outcome *next);

/* ---- diagnostics ------------------------------------------------------------
 */

void kd_diag_add(kdef_diags *d, const char *file, uint32_t line, uint32_t col, kdef_kind kind,
                 const char *name, const char *path, bool warning, const char *fmt, ...)
    __attribute__((format(printf, 9, 10)));
/* A diagnostic from a non-Ok outcome of definition `def` (file/line/col
 * from o->pos, else the definition's position). */
void kd_diag_outcome(kdef_diags *d, const kdef_definition *def, const kdef_outcome *o,
                     bool warning);

/* ---- prepare ---------------------------------------------------------------
 */

/* A dependency recorded while preparing (spec 8.2 subscriptions). */
typedef struct kd_dep {
  kdef_kind kind;
  char *name;
} kd_dep;

typedef struct kd_deps {
  kd_dep *items;
  size_t n, cap;
} kd_deps;

void kd_deps_add(kd_deps *d, kdef_kind kind, const char *name);
void kd_deps_free(kd_deps *d);

/* What a preparer sees. */
typedef struct kd_prep {
  kdef_registry *reg;
  const cel_env *env;
  kdef_definition *def; /* being prepared: kind/name/spec filled */
  kd_deps deps;         /* subscriptions collected */
  char loc[300];        /* "prepare:<Kind>:<name>" */
} kd_prep;

/* Each fills def->status and def->u.<kind>; `def->spec` is the defaulted,
 * schema-valid spec.  Never fail hard. */
void kd_prepare_value_function(kd_prep *p);
void kd_prepare_resource_function(kd_prep *p);
void kd_prepare_resource_template(kd_prep *p);
void kd_prepare_workflow(kd_prep *p);
void kd_prepare_function_test(kd_prep *p);

/* Free the kind-specific part (the definition's destructor). */
void kd_free_value_function(kdef_value_function *vf);
void kd_free_resource_function(kdef_resource_function *rf);
void kd_free_resource_template(kdef_resource_template *rt);
void kd_free_workflow(kdef_workflow *wf);
void kd_free_function_test(kdef_function_test *ft);

/* Compile `spec` in `shape`; NULL spec or falsy spec -> *out NULL, true.
 * On error fills `o` (PermFail, location, path, position of `spec`) with
 * the expression error message and returns false. */
bool kd_compile(kd_prep *p, const kv *spec, koreo_shape shape, const char *field, kdef_outcome *o,
                koreo_expr **out);

/* The member-path set helpers (paths.c). */
kv *kd_set_new(void);
void kd_set_add(kv *set, const char *s, size_t n);
/* Sorted list of the set's keys (new reference). */
kv *kd_set_sorted(const kv *set);
/* NAME of paths `prefix` + one char + NAME (spec 2.9), added to `out`. */
void kd_paths_names(const kv *paths, const char *prefix, kv *out);

/* The text of a Koreo value as a message (strings as-is, others JSON). */
char *kd_text(const kv *v);

/* Registry access for preparers: the current entry's definition or NULL;
 * `pending` set when the entry exists but is not prepared yet (counts as
 * "not cached"). */
kdef_definition *kd_registry_resolve(kdef_registry *r, kdef_kind kind, const char *name);

/* Positions */
static inline const char *kd_pos_file(const kv *v) { return kv_pos(v) ? kv_pos(v)->file : NULL; }

#endif
