/*
 * koreo/definition.h: Koreo definitions (spec 1, 6.1, 7.1, 8): the
 * prepared forms of the five koreo.dev/v1beta1 kinds, the loader that reads
 * definition files, JSON-Schema validation with default insertion, and the
 * registry that keys prepared definitions by kind + namespace + name and
 * re-prepares dependents when a definition is replaced or removed.
 *
 * Everything here is prepared once and then read-only: evaluators (eval.h,
 * ftest.h) read the structures below directly and never change them.
 *
 * Ownership model
 * - A kdef_registry owns one Koreo CEL environment and every definition put
 *   into it.  Definitions are reference counted (kdef_ref / kdef_unref) so
 *   a run may keep a definition alive while the registry replaces it (hot
 *   reload); every definition must nevertheless be released before the
 *   registry is freed (its koreo_expr's belong to the registry's env).
 * - A definition that references another one (Workflow step, RF overlayRef,
 *   FunctionTest functionRef) "captures" the referenced prepared definition
 *   holding a reference (spec 8.3: the version current at the referrer's
 *   last prepare).  ResourceTemplates are never captured: they are looked up
 *   live with kdef_registry_lookup at reconcile time (spec 5.5).
 * - All `char *` fields are owned by the structure (NUL-terminated); all
 *   `kv *` fields hold a reference owned by the structure; all koreo_expr*
 *   are owned by the structure.  Callers only borrow.
 *
 * Conventions for compiled expressions: a koreo_expr* field is NULL when the
 * field is absent from the spec OR its value is falsy (null, {}, [], "" ...,
 * i.e. koreo_expr_prepare would have produced an empty expression).  So
 * `return: {}` gives ret == NULL ("no return"), `preconditions: []` gives
 * preconditions == NULL, `resource: {}` gives resource == NULL (target
 * starts as {}).
 *
 * Non-Ok stored outcomes (prepare failures, per-overlay failures, error
 * steps, a FunctionTest's missing function) use kdef_outcome, a plain
 * description that the evaluators translate into their own outcome type
 * (outcome.h).  kdef_outcome.kind == KDEF_O_OK means "no error".
 */
#ifndef KOREO_DEFINITION_H
#define KOREO_DEFINITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/cel.h"
#include "koreo/expr.h"
#include "koreo/json.h"
#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kinds ------------------------------------------------------------- */

typedef enum kdef_kind {
  KDEF_VALUE_FUNCTION = 0,
  KDEF_RESOURCE_FUNCTION,
  KDEF_RESOURCE_TEMPLATE,
  KDEF_WORKFLOW,
  KDEF_FUNCTION_TEST,
  KDEF_KIND_COUNT,
  KDEF_KIND_NONE = -1,
} kdef_kind;

/* "ValueFunction", "ResourceFunction", ... (static strings). */
const char *kdef_kind_name(kdef_kind k);
/* The kind for an exact kind name, KDEF_KIND_NONE when it is not one of the
 * five. */
kdef_kind kdef_kind_from_name(const char *name);

/* ---- stored outcomes and diagnostics ------------------------------------ */

/* Outcome kinds in combine() order (spec 3.1/3.2): DepSkip < Skip < Ok <
 * Retry < PermFail.  Only the non-Ok kinds are ever stored as errors.  The
 * numbering equals koreo_outcome_kind (outcome.h), so a cast converts. */
typedef enum kdef_outcome_kind {
  KDEF_O_DEPSKIP = 0,
  KDEF_O_SKIP = 1,
  KDEF_O_OK = 2,
  KDEF_O_RETRY = 3,
  KDEF_O_PERMFAIL = 4,
} kdef_outcome_kind;

/* A stored (non-)outcome.  Zero-initialised memory is NOT Ok; use
 * kdef_outcome_ok() / check `kind`.  `message` and `location` are exactly
 * the upstream texts (spec 1-7) so FunctionTest expectations and status
 * conditions match; `path`/`pos` are extra diagnostics for `koreoctl
 * validate` (the field path like "spec.steps[2].forEach.inputKey" and the
 * file/line/column of the offending YAML node; pos.file NULL when
 * unknown). */
typedef struct kdef_outcome {
  kdef_outcome_kind kind;
  int64_t delay;  /* seconds; Retry only */
  char *message;  /* may be NULL */
  char *location; /* may be NULL, e.g. "prepare:ValueFunction:f:spec" */
  char *path;     /* may be NULL */
  kv_srcpos pos;  /* pos.file interned (kv_intern_file) or NULL */
} kdef_outcome;

static inline bool kdef_outcome_is_ok(const kdef_outcome *o) { return o->kind == KDEF_O_OK; }

/* One problem found while loading/preparing, for `koreoctl validate` and
 * the registry's change reports.  `file` is interned; line/col are 1-based
 * (0 when unknown); `kind`/`name` identify the definition (KDEF_KIND_NONE
 * and NULL for YAML errors or documents that are not definitions). */
typedef struct kdef_diag {
  const char *file;
  uint32_t line, col;
  kdef_kind kind;
  char *name;    /* definition name, may be NULL */
  char *path;    /* field path, e.g. "spec.steps[1].ref.name"; may be NULL */
  char *message; /* what is wrong (complete sentence, no position prefix) */
  bool warning;  /* true: reported but not an error (validate exits 0) */
} kdef_diag;

typedef struct kdef_diags {
  kdef_diag *items;
  size_t n, cap;
} kdef_diags;

void kdef_diags_free(kdef_diags *d); /* frees the items; d itself is the caller's */
/* Number of non-warning diagnostics. */
size_t kdef_diags_errors(const kdef_diags *d);
/* "file:line:col: Kind/name: path: message" (parts that are unknown are
 * left out).  Returns a malloc'ed string. */
char *kdef_diag_format(const kdef_diag *d);

/* ---- ValueFunction (spec 1.1, 4) --------------------------------------- */

typedef struct kdef_value_function {
  koreo_expr *preconditions; /* KOREO_SHAPE_PREDICATES, or NULL */
  koreo_expr *locals;        /* KOREO_SHAPE_MAP, or NULL (locals = {}) */
  koreo_expr *ret;           /* KOREO_SHAPE_OVERLAY, or NULL: no return (result null) */
  /* dynamic_input_keys (spec 1.1/2.9): list of member-path strings of all
   * three expressions, sorted, unique.  Never NULL (maybe empty). */
  kv *member_paths;
  /* the distinct NAMEs of member paths "inputs" + one char + NAME
   * (spec 1.2 required-inputs rule): list of strings, sorted, unique. */
  kv *input_names;
} kdef_value_function;

/* ---- ResourceFunction (spec 1.2, 5) ------------------------------------ */

typedef enum kdef_update_kind {
  KDEF_UPDATE_PATCH = 0,
  KDEF_UPDATE_RECREATE,
  KDEF_UPDATE_NEVER,
} kdef_update_kind;

typedef struct kdef_api_config {
  char *api_version;     /* static, e.g. "apps/v1" */
  char *kind;            /* static, e.g. "Deployment" */
  char *plural;          /* NULL: look it up (spec 5.2) */
  bool namespaced;       /* default true */
  bool owned;            /* default true */
  bool readonly;         /* default false */
  bool delete_if_exists; /* default false */
  bool has_namespace;    /* `namespace` configured */
  /* {"name": <name>, "namespace": <namespace>} as ONE map expression
   * (KOREO_SHAPE_MAP; the namespace key is absent unless has_namespace);
   * evaluated with {inputs, locals}.  Never NULL after a successful
   * prepare. */
  koreo_expr *name_ns;
} kdef_api_config;

struct kdef_definition;

/* One entry of spec.overlays (spec 1.2 "overlays are prepared leniently"). */
typedef struct kdef_overlay {
  kdef_outcome status; /* this entry's prepare outcome (Ok, PermFail, Retry) */
  koreo_expr *skip_if; /* KOREO_SHAPE_EXPRESSION or NULL */
  bool is_ref;         /* overlayRef (true) or inline overlay (false) */
  koreo_expr *overlay; /* inline: KOREO_SHAPE_OVERLAY (never NULL when Ok) */
  char *vf_name;       /* overlayRef.name */
  /* overlayRef: the captured prepared ValueFunction (a reference is held),
   * NULL unless status is Ok. */
  struct kdef_definition *vf;
  koreo_expr *inputs; /* overlayRef.inputs, KOREO_SHAPE_MAP; NULL: VF inputs = null */
} kdef_overlay;

typedef struct kdef_resource_function {
  koreo_expr *preconditions; /* PREDICATES or NULL */
  koreo_expr *locals;        /* MAP or NULL */
  kdef_api_config api;
  /* target specification source: exactly one of */
  bool uses_template;        /* resourceTemplateRef (true) or resource (false) */
  koreo_expr *resource;      /* MAP or NULL (starts as {}) */
  koreo_expr *template_name; /* EXPRESSION; never NULL when uses_template */
  /* overlays: entries in spec order, and their combined stored outcome
   * (spec 3.2 combine of the entries' failures: PermFail beats Retry,
   * delays max'ed, messages joined with ", ").  When overlays_status is
   * not Ok, reconcile returns it on reaching the overlay stage (5.5). */
  kdef_overlay *overlays;
  size_t n_overlays;
  kdef_outcome overlays_status;
  /* create (defaults: enabled, delay 30) */
  bool create_enabled;
  int64_t create_delay;
  koreo_expr *create_overlay; /* OVERLAY or NULL */
  /* update (default patch, delay 30); delay unused for NEVER */
  kdef_update_kind update;
  int64_t update_delay;
  koreo_expr *postconditions; /* PREDICATES or NULL */
  koreo_expr *ret;            /* MAP or NULL: return value null */
  kv *member_paths;           /* dynamic_input_keys, sorted unique strings */
} kdef_resource_function;

/* ---- ResourceTemplate (spec 1.3) ---------------------------------------- */

typedef struct kdef_resource_template {
  kv *template_; /* static map with non-empty apiVersion and kind */
  kv *context;   /* map or NULL; stored, unused */
} kdef_resource_template;

/* ---- Workflow (spec 1.4, 6.1) ------------------------------------------- */

/* A reference to logic (ref, or one refSwitch case), resolved at prepare. */
typedef struct kdef_logic_ref {
  kdef_kind kind; /* VALUE_FUNCTION, RESOURCE_FUNCTION or WORKFLOW */
  char *name;
  /* Ok: `def` is the captured prepared definition (reference held).
   * Otherwise (def NULL) Retry(15, "'<Kind>:<name>' not cached; will
   * retry.") or Retry(180, "'<Kind>:<name>' is not healthy (<msg>); will
   * retry.") or a PermFail for a bad kind/name (spec 6.1). */
  kdef_outcome status;
  struct kdef_definition *def;
} kdef_logic_ref;

typedef struct kdef_switch_case {
  char *value;     /* the `case` string */
  bool is_default; /* `default: true` */
  kdef_logic_ref logic;
} kdef_switch_case;

typedef struct kdef_step {
  char *label;
  /* Ok, or the error that makes this an "error step" (spec 6.1): the step
   * then always yields this outcome when run; other fields may be partly
   * filled and must not be used. */
  kdef_outcome error;
  bool is_switch;
  kdef_logic_ref ref; /* !is_switch */
  /* is_switch: switchOn (EXPRESSION), cases in spec order, default case
   * index (-1: none).  Use kdef_step_switch_case() to match a value. */
  koreo_expr *switch_on;
  kdef_switch_case *cases;
  size_t n_cases;
  int default_case;
  koreo_expr *skip_if; /* EXPRESSION or NULL */
  bool has_for_each;
  koreo_expr *for_each_item_in; /* EXPRESSION, non-NULL when has_for_each */
  char *for_each_input_key;     /* non-NULL when has_for_each */
  koreo_expr *inputs;           /* MAP or NULL (inputs = {}) */
  bool has_condition;
  char *condition_type, *condition_name;
  koreo_expr *state; /* MAP or NULL; sees only `value` */
  /* direct dependencies (spec 6.1 step 8): labels referenced by switchOn,
   * skipIf, forEach.itemIn, inputs and state, each the label of an EARLIER
   * step; dep_index[i] is that step's index in kdef_workflow.steps (the
   * first step carrying the label).  Sorted by index, unique. */
  char **dep_labels;
  size_t *dep_index;
  size_t n_deps;
} kdef_step;

typedef struct kdef_workflow {
  /* Ok, or the combined error of all error steps (unwrapped_combine,
   * spec 6.1), or PermFail "No steps specified Workflow at least one step
   * in 'spec.steps' is required." */
  kdef_outcome steps_ready;
  kdef_step *steps;
  size_t n_steps;
  bool has_crd_ref; /* all three of apiGroup/version/kind non-empty */
  char *crd_api_group, *crd_version, *crd_kind;
  /* `parent.<rest>` suffixes referenced anywhere (sorted unique strings). */
  kv *parent_keys;
} kdef_workflow;

/* The switch case for a switchOn value (spec 6.5): an exact, type-sensitive
 * match of a string value against the case strings (a later duplicate
 * case value wins), else the default case, else NULL.  Non-string values
 * match only the default. */
const kdef_switch_case *kdef_step_switch_case(const kdef_step *s, const kv *value);

/* ---- FunctionTest (spec 1.5, 7.1) --------------------------------------- */

typedef enum kdef_assert_kind {
  KDEF_EXPECT_RESOURCE = 0,
  KDEF_EXPECT_OUTCOME,
  KDEF_EXPECT_RETURN,
  KDEF_EXPECT_DELETE,
} kdef_assert_kind;

typedef struct kdef_test_case {
  int index;   /* 0-based position in spec.testCases */
  char *label; /* final label: "Test Case <n>" default, "[variant] " prefix
                  rule applied (spec 1.5) */
  bool variant, skip;
  kv *input_overrides;          /* static map or NULL */
  kv *current_resource;         /* static map or NULL */
  koreo_expr *overlay_resource; /* OVERLAY or NULL (overlayResource wins
                                   over currentResource when both) */
  kdef_assert_kind expect;
  kv *expect_resource; /* EXPECT_RESOURCE: non-empty static map */
  kv *expect_return;   /* EXPECT_RETURN: non-empty static map */
  bool expect_delete;  /* EXPECT_DELETE */
  /* EXPECT_OUTCOME: kind (OK for `ok: {}`), message (static text, "" when
   * absent) and delay (Retry only). */
  kdef_outcome_kind expect_outcome;
  char *expect_message;
  int64_t expect_delay;
  kv *expect_outcome_spec; /* EXPECT_OUTCOME: the raw map as written */
  kv_srcpos pos;           /* position of the case in its file */
} kdef_test_case;

typedef struct kdef_function_test {
  kdef_kind function_kind; /* VALUE_FUNCTION or RESOURCE_FUNCTION */
  char *function_name;
  /* Ok: `function` is the captured prepared function (reference held).
   * Otherwise DepSkip("<Kind> (<name>) not found or not ready,
   * FunctionTest '<test>' must wait.") or the function's own cached
   * failure (spec 7.1); `function` is NULL. */
  kdef_outcome function_status;
  struct kdef_definition *function;
  kv *inputs;           /* static map, NULL for absent or {} */
  kv *current_resource; /* static map or NULL */
  kdef_test_case *cases;
  size_t n_cases;
} kdef_function_test;

/* ---- a definition ------------------------------------------------------- */

typedef struct kdef_definition {
  int32_t refs; /* kdef_ref / kdef_unref */
  kdef_kind kind;
  char *name;             /* metadata.name */
  char *ns;               /* metadata.namespace, "" when absent */
  char *resource_version; /* metadata.resourceVersion, "" when absent */
  kv *doc;                /* the whole document as read (positions kept) */
  kv *spec;               /* spec after schema default insertion */
  kv_srcpos pos;          /* where the document starts (file interned) */
  uint64_t generation;    /* registry sequence number of this prepare */
  /* Prepare result (spec 1): Ok, or the failure (PermFail, location
   * "prepare:<Kind>:<name>:<field>", FunctionTest "<name>:spec").  When
   * not Ok the kind-specific part below must not be used. */
  kdef_outcome status;
  union {
    kdef_value_function vf;
    kdef_resource_function rf;
    kdef_resource_template rt;
    kdef_workflow wf;
    kdef_function_test ft;
  } u;
} kdef_definition;

kdef_definition *kdef_ref(kdef_definition *d); /* NULL passes through */
void kdef_unref(kdef_definition *d);

/* ---- registry (spec 8) -------------------------------------------------- */

typedef struct kdef_registry kdef_registry;

/* A new, empty registry with its own Koreo CEL environment.  Free with
 * kdef_registry_free after every reference taken with kdef_ref is
 * dropped. */
kdef_registry *kdef_registry_new(void);
void kdef_registry_free(kdef_registry *r);
/* The registry's CEL environment (borrowed). */
const cel_env *kdef_registry_env(const kdef_registry *r);

/* Namespace priority (spec 8.5): names are resolved in these namespaces in
 * this order (copied).  With no list (the default) or when the name is in
 * none of them, any namespace matches and the most recently put definition
 * wins, which is upstream's behaviour (kind + name identity). */
void kdef_registry_set_namespaces(kdef_registry *r, const char *const *ns, size_t n);

/* Resolve kind + name (spec 8.1 get) using the namespace priority.  Returns
 * the current prepared definition (borrowed: valid until the registry
 * changes; take kdef_ref to keep it), which may carry a non-Ok `status`
 * (a cached failure), or NULL when absent. */
kdef_definition *kdef_registry_lookup(const kdef_registry *r, kdef_kind kind, const char *name);
/* Exact lookup by kind + namespace + name ("" for no namespace). */
kdef_definition *kdef_registry_get(const kdef_registry *r, kdef_kind kind, const char *ns,
                                   const char *name);

/* Visit every current definition (of `kind`, or all when KDEF_KIND_NONE)
 * in load order; stop when fn returns false. */
void kdef_registry_each(const kdef_registry *r, kdef_kind kind,
                        bool (*fn)(kdef_definition *d, void *arg), void *arg);
size_t kdef_registry_count(const kdef_registry *r, kdef_kind kind);

/* Documents of other kinds found by the loader (CRDs, Namespaces, trigger
 * objects, plain manifests), in load order: a list of maps (borrowed; each
 * keeps its source positions). */
const kv *kdef_registry_others(const kdef_registry *r);

/* The result of one (re-)prepare, reported by put/remove. */
typedef struct kdef_change {
  kdef_kind kind;
  char *ns, *name;
  bool removed;        /* the definition was removed */
  kdef_outcome status; /* its new prepare status (Ok or failure); for a
                          Workflow, not Ok also when steps_ready is not */
} kdef_change;

typedef struct kdef_changes {
  kdef_change *items;
  size_t n, cap;
} kdef_changes;
void kdef_changes_free(kdef_changes *c);

/* Put one document (a map with apiVersion koreo.dev/v1beta1 and one of the
 * five kinds; borrowed, a reference is kept) into the registry: validate +
 * prepare it (replacing the entry with the same kind/namespace/name), then
 * re-prepare every definition that depends on it, transitively (spec 8.3).
 * Each (re-)prepare is appended to `changes` (may be NULL) in order (the
 * definition first, then its dependents, each after what it depends on),
 * and every failed prepare among them to `diags` (may be NULL).  A
 * Workflow that reaches itself through sub-Workflow references is stored
 * as a PermFail ("Workflow reference cycle (a -> b -> a) ...").  A document that is not a Koreo
 * definition is added to kdef_registry_others().  Returns the new
 * definition (borrowed) or NULL when the document has no usable
 * kind/name (diagnosed). */
kdef_definition *kdef_registry_put(kdef_registry *r, kv *doc, kdef_changes *changes,
                                   kdef_diags *diags);

/* Remove kind/namespace/name; re-prepare its dependents (which then find
 * it missing) and report them in `changes`.  Returns false when absent. */
bool kdef_registry_remove(kdef_registry *r, kdef_kind kind, const char *ns, const char *name,
                          kdef_changes *changes, kdef_diags *diags);

/* ---- loader -------------------------------------------------------------- */

/* Load files and directories (recursive, in name order; files ending .koreo,
 * .k, .k.yaml, .k.yml, .yaml, .yml; hidden files and other files are
 * ignored; a file named explicitly is always read), every document of every
 * file.  Koreo definitions (apiVersion koreo.dev/v1beta1 and one of the five
 * kinds) are collected first and prepared at the end in dependency order,
 * so the order of files and documents does not matter; other documents are
 * kept (kdef_registry_others).  A YAML syntax error loses only its own
 * document.  Diagnostics added to `diags`: unreadable paths, YAML syntax
 * errors, broken envelopes (missing metadata.name, a Koreo kind with
 * another apiVersion, a misspelt Koreo kind), duplicate definitions (the
 * later one wins), and every definition whose prepare failed (status not
 * Ok: schema violations, expression parse errors, ...).  Problems inside
 * definitions that prepared (unresolved references, error steps, failed
 * overlays, admission rules) are kdef_registry_check's.  One bad definition
 * never stops the others.  Returns the number of error diagnostics added. */
size_t kdef_load_paths(kdef_registry *r, const char *const *paths, size_t n, kdef_diags *diags);
/* The same for one in-memory YAML stream named `file` (for tests). */
size_t kdef_load_text(kdef_registry *r, const char *text, size_t len, const char *file,
                      kdef_diags *diags);

/* `koreoctl validate` checks beyond what kdef_load_paths reports (issue 3
 * item 6): for every definition whose prepare succeeded, Workflow error
 * steps (ordering rule, duplicate labels, refSwitch/forEach mistakes,
 * references to definitions that are not defined or failed to prepare),
 * failed RF overlay entries, constant resourceTemplateRef names that do not
 * resolve, FunctionTest functionRefs that do not resolve; for every
 * definition, the Kubernetes admission rules of its CRD
 * (x-kubernetes-validations, errors) and fields the schema does not declare
 * (warnings).  Each with file, line, column and field path.  Returns the
 * number of errors added (warnings not counted). */
size_t kdef_registry_check(const kdef_registry *r, kdef_diags *diags);

/* ---- schema -------------------------------------------------------------- */

/* The bundled JSON schema (openAPIV3Schema.properties.spec of the kind's
 * CRD in schema/, `description` texts left out) of a kind (borrowed,
 * process lifetime, parsed on first use), NULL for KDEF_KIND_NONE. */
const kv *kdef_schema(kdef_kind kind);

/* Validate `spec` against `schema` (draft-07 subset of spec 1.0) and
 * insert defaults.  Returns a new reference to the defaulted spec, or NULL
 * with `err` filled: kind PermFail, message "<data path> <problem>" with
 * the root named "spec" (e.g. "spec.apiConfig must contain ['apiVersion',
 * 'kind', 'name'] properties"), path and pos of the offending value. */
kv *kdef_schema_validate(const kv *schema, const kv *spec, kdef_outcome *err);

/* ---- member paths (spec 2.9) ---------------------------------------------- */

/* Add the member paths of a prepared expression to `set` (a map used as a
 * set: path string -> null; the caller owns it).  NULL or empty
 * expressions add nothing.  Roots the reference cannot handle (selection
 * on a literal, call result, parenthesised expression) add no path. */
void kdef_member_paths(const koreo_expr *e, kv *set);

/* ---- outcome helpers ------------------------------------------------------ */

void kdef_outcome_clear(kdef_outcome *o); /* frees the strings, sets kind Ok */
/* Deep copy (strings duplicated) into *dst (which is overwritten). */
void kdef_outcome_copy(kdef_outcome *dst, const kdef_outcome *src);
/* The upstream text form (spec 3.1): "Retry(delay=30, message=...)",
 * "Permanent Failure (message=...)", ... malloc'ed. */
char *kdef_outcome_text(const kdef_outcome *o);

#ifdef __cplusplus
}
#endif
#endif
