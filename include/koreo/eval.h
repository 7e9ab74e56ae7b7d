/*
 * koreo/eval.h: evaluating prepared definitions (spec 4, 5, 6) without
 * I/O: ValueFunctions (synchronous), ResourceFunctions and Workflows as
 * resumable runs that yield kube_requests (kube_ops.h) and resume when the
 * answers arrive, plus the host helpers of spec 6.7/6.9/6.11 (parent and
 * owner reference from a trigger, conditions, status patch) and the
 * reconcile comparator of spec 5.7/5.10.
 *
 * A run (koreo_run) is a state machine:
 *
 *     koreo_run *r = koreo_run_workflow(&ctx, wf, parent, &owner, NULL);
 *     while (!koreo_run_advance(r)) {              // false: waiting on answers
 *       const kube_request *q;
 *       while ((q = koreo_run_next_request(r)))    // newly issued requests
 *         send q (remember q->id) ...
 *       ... later, for each answer: koreo_run_answer(r, id, &resp);
 *     }
 *     const koreo_workflow_result *res = koreo_run_workflow_result(r);
 *
 * koreo_run_advance() runs every step that can make progress: steps whose
 * dependencies are done start, ResourceFunction steps issue their read,
 * answered requests resume their step.  Independent steps (and forEach
 * items) may have requests in flight together.  koreo_run_sync() is the
 * synchronous adapter: it answers every request with a kube_ops responder
 * until the run is done.  Deadlines (spec 6.2: 10 s per workflow) are the
 * host's: on expiry it calls koreo_run_cancel().
 *
 * Ownership: a run borrows the context, the definitions and `owner` (they
 * must outlive it) and copies `parent`/`inputs` references.  Definitions
 * are kdef_definition of the matching kind; a definition whose prepare
 * status is not Ok yields that status as its outcome.  Results are
 * owned by the run (valid until koreo_run_free) unless stated otherwise.
 */
#ifndef KOREO_EVAL_H
#define KOREO_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/definition.h"
#include "koreo/kube_ops.h"
#include "koreo/outcome.h"
#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What evaluation needs from its surroundings. */
typedef struct koreo_eval_ctx {
  /* ResourceTemplates are looked up here at reconcile time (spec 5.5);
   * NULL: every resourceTemplateRef answers "not found" (Retry 30). */
  const kdef_registry *registry;
  /* The control plane's mode (ARCHITECTURE "The control plane"): a Workflow
   * step whose logic is a ResourceFunction is not reconciled here but
   * yielded as a koreo_apply (koreo_run_next_apply) for an agent to run;
   * the run resumes with koreo_run_answer_apply.  Off: reconcile locally
   * through kube_requests. */
  bool remote_resource_functions;
} koreo_eval_ctx;

/* The owner a ResourceFunction adds as an ownerReference (spec 5.8, 5.9):
 * `ns` is the trigger's namespace (NULL: never owned), `ref` the
 * ownerReference map {apiVersion, kind, name, uid, blockOwnerDeletion,
 * controller} (NULL: never owned).  Both borrowed. */
typedef struct koreo_owner {
  const char *ns;
  const kv *ref;
} koreo_owner;

/* A stored definition outcome (definition.h) as a koreo_outcome (copied;
 * kdef Ok becomes Ok(null)). */
koreo_outcome koreo_outcome_from_kdef(const kdef_outcome *o);

/* --- ValueFunction (spec 4) ------------------------------------------------
 * Evaluate `vf` (a kdef_definition of kind KDEF_VALUE_FUNCTION; a non-Ok
 * definition status is returned as the outcome) with `inputs` (borrowed; NULL means null) and an
 * optional `base` map (borrowed; NULL or {} means none: `resource` is then not bound in
 * preconditions/locals, and bound to {} in return).  `location` (e.g.
 * "<workflow>.spec.steps.<label>") names the call in messages; NULL uses
 * the function's own.  Returns Ok(return value: a map, or null when the
 * function has no return), the outcome of a failing precondition, or
 * PermFail on any evaluation error (message "Error evaluating `<loc>`..."
 * with ":spec.preconditions" / ":spec.locals" / ":spec.return"). */
koreo_outcome koreo_eval_value_function(const kdef_definition *vf, const kv *inputs, const kv *base,
                                        const char *location);

/* --- runs ------------------------------------------------------------------ */
typedef struct koreo_run koreo_run;

/* A Workflow run (spec 6.2) over `parent` (the value exposed as `parent`,
 * see koreo_parent_from_trigger; borrowed, referenced).  `workflow_key`
 * NULL uses the workflow's name.  Never NULL (allocation failure aborts). */
koreo_run *koreo_run_workflow(const koreo_eval_ctx *ctx, const kdef_definition *wf,
                              const kv *parent, const koreo_owner *owner, const char *workflow_key);

/* A single ResourceFunction reconcile (spec 5.1) with `inputs` (a map,
 * borrowed, referenced; NULL means {}).  `location` NULL uses the
 * function's own.  Used by FunctionTests and by Workflow steps. */
koreo_run *koreo_run_resource_function(const koreo_eval_ctx *ctx, const kdef_definition *rf,
                                       const kv *inputs, const koreo_owner *owner,
                                       const char *location);

void koreo_run_free(koreo_run *r);

/* Make all progress possible without new answers.  Returns true when the
 * run is done (then every request has been answered or abandoned). */
bool koreo_run_advance(koreo_run *r);
bool koreo_run_done(const koreo_run *r);

/* The next request issued by the run and not yet handed out, or NULL.
 * Borrowed: valid until it is answered or the run is freed. */
const kube_request *koreo_run_next_request(koreo_run *r);
/* Number of requests (and applies) issued and not yet answered. */
size_t koreo_run_pending(const koreo_run *r);

/* Answer request `id`.  Takes what `resp` owns (resp is cleared).  The
 * step resumes at the next koreo_run_advance().  Returns 0, or -1 when the
 * run has no unanswered request `id` (resp is cleared anyway). */
int koreo_run_answer(koreo_run *r, uint64_t id, kube_response *resp);

/* --- remote ResourceFunction steps (ctx->remote_resource_functions) -------
 * One ResourceFunction call of a Workflow step (or of one forEach item, or
 * inside a sub-Workflow) to be run elsewhere.  Borrowed from the run: valid
 * until answered or the run is freed. */
typedef struct koreo_apply {
  uint64_t id;               /* unique within the run (shares the request id space) */
  const kdef_definition *rf; /* the ResourceFunction (KDEF_RESOURCE_FUNCTION, status Ok) */
  const kv *inputs;          /* the call's inputs map */
  const char *location;      /* "<workflow>.spec.steps.<label>[...]" (messages) */
  const char *workflow;      /* key of the (sub-)Workflow the step belongs to */
  const char *step_label;    /* the step's label in that Workflow */
  bool in_for_each;          /* for_each_index is meaningful */
  uint32_t for_each_index;
} koreo_apply;

/* The next apply issued by the run and not yet handed out, or NULL. */
const koreo_apply *koreo_run_next_apply(koreo_run *r);

/* Answer apply `id` with the function's outcome (taken: *o is cleared; its
 * Ok value is the return value) and its resource id (spec 5.1 map, taken,
 * may be NULL).  Returns 0, or -1 when the run has no unanswered apply `id`
 * (the arguments are released anyway). */
int koreo_run_answer_apply(koreo_run *r, uint64_t id, koreo_outcome *o, kv *resource_id);

/* The host's deadline expired: every unfinished step becomes
 * Retry(30, "Timeout running step (<label>), will retry.") (spec 6.2) and
 * the run finishes (unanswered requests are abandoned). */
void koreo_run_cancel(koreo_run *r);

/* Synchronous adapter: advance, answer every issued request with `ops`,
 * repeat until done.  Returns the number of requests answered. */
size_t koreo_run_sync(koreo_run *r, const kube_ops *ops);

/* --- results (valid once the run is done) ---------------------------------- */

/* The run's outcome: for a ResourceFunction run its outcome (Ok value =
 * the function's return value, null without return); for a Workflow run
 * the overall outcome (Ok value = list of the Ok step values). */
const koreo_outcome *koreo_run_outcome(const koreo_run *r);

/* ResourceFunction runs: the resource id of spec 5.1 ({apiVersion, kind,
 * plural, name, namespace?, readonly, resourceFunction}) or NULL (when the
 * run stopped before the name was known, or a postcondition failed).
 * Borrowed. */
const kv *koreo_run_resource_id(const koreo_run *r);

/* ResourceFunction runs: the object the function ended with (the object
 * read, or {} for deleteIfExists-absent), NULL when none.  Borrowed. */
const kv *koreo_run_resource(const koreo_run *r);

/* Per-step report of a Workflow run, in step-list order. */
typedef struct koreo_step_report {
  const char *label;
  koreo_outcome outcome;  /* the step's result (Ok value = step value) */
  const kv *resource_ids; /* RF: resource id; forEach: list; sub-workflow: map; or NULL */
} koreo_step_report;

/* The result of spec 6.10. */
typedef struct koreo_workflow_result {
  koreo_outcome outcome; /* overall: unwrapped_combine of all step results */
  kv *conditions;        /* list of {type, status: "True", reason, message, location} (6.9) */
  kv *resource_ids;      /* {"workflow": <name>, "resources": {<label>: ids}} */
  kv *state;             /* merged step state (native-converted map) */
  kv *state_errors;      /* {<label>: "<message> at <location>"} */
  size_t n_steps;
  const koreo_step_report *steps;
} koreo_workflow_result;

/* Workflow runs: the result; NULL for other runs or before done. */
const koreo_workflow_result *koreo_run_workflow_result(const koreo_run *r);

/* --- host helpers (spec 6.7, 6.9, 6.11) ------------------------------------ */

/* `parent` of a top-level run: {metadata, spec, state: status.state} of the
 * trigger object (absent parts omitted).  New reference. */
kv *koreo_parent_from_trigger(const kv *trigger);

/* The ownerReference of spec 6.11 for a trigger: {apiVersion, kind, name,
 * uid, blockOwnerDeletion: true, controller: false}.  New reference. */
kv *koreo_owner_ref_from_trigger(const kv *trigger);

/* One condition of spec 6.9 for outcome `o` of thing `name` ("Workflow
 * <key>" or the step's condition.name): {type, status: "True", reason,
 * message, location}; `default_location` is used for Ok outcomes without a
 * location.  New reference. */
kv *koreo_condition(const char *type, const char *name, const koreo_outcome *o,
                    const char *default_location);

/* update_condition of spec 6.11: a new list with `cond` merged into
 * `conditions` (borrowed; NULL means []) by type, timestamps set from
 * `now` (ISO-8601 text, e.g. "2025-08-09T13:30:49.123456+00:00"). */
kv *koreo_conditions_update(const kv *conditions, const kv *cond, const char *now);

/* The JSON merge patch a host writes onto the trigger after a run (spec
 * 6.11): metadata.annotations["koreo.dev/managed-resources"], and status
 * {conditions (merged per koreo.dev/merge-conditions), state, koreo:
 * {errors, locations, state_errors}}.  New reference. */
kv *koreo_status_patch(const kv *trigger, const koreo_workflow_result *res, const char *now);

/* The status patch of a Workflow selection error (spec 6.11: NoWorkflow,
 * MultipleWorkflows, WorkflowNotInCache, WorkflowNotReady): status
 * {conditions: the trigger's conditions (kept only with
 * koreo.dev/merge-conditions) updated with {type: Ready, status: "false",
 * reason, message, location}, koreo: {errors: message, locations:
 * location}}.  `location` is the trigger's kind; `now` as for
 * koreo_conditions_update.  The host retries after 120 s.  New reference. */
kv *koreo_selection_error_patch(const kv *trigger, const char *reason, const char *message,
                                const char *location, const char *now);

/* --- reconcile comparison (spec 5.7, 5.10) ----------------------------------
 * Compare a target (native) against the live object with the optional
 * parsed last-applied configuration.  Returns true on match; on mismatch
 * returns false and, when `differences` is not NULL, a malloc'ed text of
 * the path joined with " -> " (e.g. "'spec' -> 'replicas' ->
 * <target:[3], resource:[2]>"). */
bool koreo_compare(const kv *target, const kv *actual, const kv *last_applied, char **differences);

/* A copy of `v` without the x-koreo-compare-* directive keys at any depth
 * (spec 5.10).  New reference. */
kv *koreo_strip_directives(const kv *v);

/* The write body of spec 5.10: directives stripped, then
 * metadata.annotations["koreo.dev/last-applied-configuration"] set to the
 * JSON text of the stripped body.  New reference. */
kv *koreo_with_last_applied(const kv *body);

#define KOREO_LAST_APPLIED_ANNOTATION "koreo.dev/last-applied-configuration"
#define KOREO_MANAGED_RESOURCES_ANNOTATION "koreo.dev/managed-resources"

#ifdef __cplusplus
}
#endif
#endif
