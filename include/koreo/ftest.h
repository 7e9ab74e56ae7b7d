/*
 * koreo/ftest.h: running FunctionTests (spec 7) and reporting them.
 *
 * - The strict test comparator of spec 7.5 (kftest_compare) and the
 *   last-applied stripping of spec 7.4.
 * - The mock API of spec 7.3 as a kube_ops responder (kftest_mock).
 * - The runner (kftest_run): case sequencing with variant / skip /
 *   inputOverrides / currentResource / overlayResource (spec 7.2), the
 *   assertions of spec 7.4 and upstream's rule that a failing non-variant
 *   case stops the test (later cases are reported as "not run").
 * - Report writers (text, JSON lines, JUnit XML) that render into memory;
 *   the caller prints (core/ does no I/O).
 *
 * Prepare-time checks of FunctionTests belong to the loader
 * (definition.h); this module only runs prepared tests.
 *
 * Ownership: every `kv *` and `char *` in a result is owned by the result
 * (free with kftest_result_clear); arguments are borrowed.
 */
#ifndef KOREO_FTEST_H
#define KOREO_FTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koreo/kube_ops.h"
#include "koreo/outcome.h"
#include "koreo/value.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kdef_registry;
struct kdef_definition;

/* ---- comparator (spec 7.4, 7.5) ------------------------------------------ */

/* Strict comparison of an expectation with an actual (native) value, spec
 * 7.5: maps must have exactly the same keys (x-koreo-compare-as-set / -as-map
 * keys excluded), `x-koreo-compare-as-set: [k...]` in an expected map
 * compares those keys' lists as sets of scalars, `x-koreo-compare-as-map:
 * {k: [field...]}` compares those keys' lists of objects keyed by the
 * fields; lists are compared element-wise; numbers by value (3 == 3.0);
 * bools only with bools.  Returns true when they match.
 *
 * When `differences` is not NULL it receives a new reference to upstream's
 * differences structure (null on match): a map key -> "missing" |
 * "unexpected" | nested difference, a list with null for matching
 * positions, or a message string.  When `flat` is not NULL it receives a
 * new list with one map per difference: {"path": "spec.list[2].name" (or
 * "(root)"), "message": text, "expected": value (absent for "unexpected"),
 * "actual": value (absent for "missing")}, in document order.  Never
 * fails. */
bool kftest_compare(const kv *expected, const kv *actual, kv **differences, kv **flat);

/* A resource without Koreo's last-applied annotation, as spec 7.4 compares
 * it: when metadata.annotations has exactly one entry the whole
 * `annotations` map is dropped (whatever the entry), otherwise only the
 * "koreo.dev/last-applied-configuration" key.  Returns a new reference
 * (NULL for NULL). */
kv *kftest_strip_last_applied(const kv *resource);

/* The text of a value in messages: a string as itself, anything else as
 * compact JSON.  malloc'ed. */
char *kftest_value_text(const kv *v);

/* ---- mock API (spec 7.3) --------------------------------------------------
 */

/* The mock API a ResourceFunction test case runs against.  GET returns the
 * seeded object whatever name is asked for (absent when the seed is NULL or
 * {}); CREATE records the body as `materialized`; PATCH records the seed
 * with each top-level key of the body replaced (shallow); DELETE records
 * {} and `delete_called`.  Plurals the request does not carry are answered
 * with the lower-cased discovery query (kube_plural_query). */
typedef struct kftest_mock {
  kv *seed;         /* borrowed-by-reference seeded object (owned ref) or NULL */
  kv *materialized; /* owned; NULL until a write */
  bool api_called;  /* any write (create/patch/delete) */
  bool delete_called;
  size_t calls; /* every request answered */
} kftest_mock;

/* Initialise `m` with `seed` (borrowed; a reference is taken; NULL: none). */
void kftest_mock_init(kftest_mock *m, const kv *seed);
void kftest_mock_clear(kftest_mock *m);
/* The responder table (ctx = m). */
kube_ops kftest_mock_ops(kftest_mock *m);

/* ---- results ----------------------------------------------------------------
 */

typedef enum kftest_status {
  KFTEST_PASS = 0,
  KFTEST_FAIL,
  KFTEST_SKIP,    /* `skip: true` (upstream reports it passing: "user skipped") */
  KFTEST_NOT_RUN, /* after a fatal failure of an earlier case */
  KFTEST_ERROR,   /* the test could not run: prepare failure, function not ready
                   */
} kftest_status;

/* "pass", "fail", "skip", "not-run", "error". */
const char *kftest_status_name(kftest_status s);

/* One test case's result (spec 7.6, plus what reports need). */
typedef struct kftest_case_result {
  int index;   /* 0-based position in spec.testCases; -1 for a test-level error */
  char *label; /* as upstream names it ("Test Case <n>", "[variant] ..."); NULL
                  for -1 */
  kftest_status status;
  bool passed; /* upstream's test_pass: true for PASS and SKIP */
  bool variant;
  char *message; /* why it failed / was skipped / did not run; NULL when passing
                  */
  /* The expected outcome (spec 7.6 expected_outcome) and the actual
   * outcome, both as text forms of spec 3.1 (NULL when none). */
  char *expected_text;
  char *outcome_text;
  kv *expected;     /* expectReturn/expectResource expectation (ref) or NULL */
  kv *actual;       /* the value compared against it (native), or NULL */
  kv *differences;  /* upstream's differences structure, or NULL */
  kv *diffs;        /* flat list of differences (see kftest_compare), or NULL */
  const char *file; /* position of the case (interned) or NULL */
  uint32_t line, col;
  double ms; /* time spent running the case */
} kftest_case_result;

/* One FunctionTest's result. */
typedef struct kftest_result {
  char *test;          /* metadata.name */
  char *ns;            /* metadata.namespace ("" when none) */
  char *function_kind; /* "ValueFunction" / "ResourceFunction", NULL when
                          unknown */
  char *function_name; /* NULL when unknown */
  const char *file;    /* where the FunctionTest document starts (interned) */
  uint32_t line, col;
  bool fatal; /* spec 7.6 fatal_error */
  /* NULL when the function under test was healthy; else the text of why
   * the test could not run (its prepare failure or the function's stored
   * outcome), also reported as status ERROR on every case. */
  char *error;
  kftest_case_result *cases;
  size_t n_cases;
  double ms;
} kftest_result;

void kftest_result_clear(kftest_result *r);

/* Counts over a set of results. */
typedef struct kftest_summary {
  size_t tests, cases, passed, failed, skipped, not_run, errors;
} kftest_summary;

void kftest_summarize(const kftest_result *results, size_t n, kftest_summary *s);
/* True when every case passed or was skipped (the `koreoctl test` exit rule).
 */
bool kftest_summary_ok(const kftest_summary *s);

/* ---- running (spec 7.2)
 * ------------------------------------------------------ */

/* Run one prepared FunctionTest definition `test` (kind FunctionTest)
 * with ResourceTemplates looked up in `registry` (may be NULL), filling
 * `out` (overwritten; release with kftest_result_clear).  A FunctionTest
 * whose prepare failed, or whose function under test is not Ok, gives
 * status ERROR on every case (one entry with index -1 when it has no
 * usable cases).  Cases run in order; a skipped case passes with "user
 * skipped"; a failing non-variant case (or an overlayResource without a
 * current resource, variant or not) stops the test: the remaining cases
 * are reported NOT_RUN.  Never fails. */
void kftest_run(const struct kdef_registry *registry, const struct kdef_definition *test,
                kftest_result *out);

/* ---- reports
 * ----------------------------------------------------------------- */

enum {
  KFTEST_TEXT_VERBOSE = 1u << 0, /* text: also list passing cases' details */
};

/* A human-readable report: a header per test, a line per case (PASS / FAIL
 * / SKIP / NOT RUN / ERROR with its label), for a failure the message and
 * each difference with its field path and expected / actual values, then a
 * summary line.  `elapsed_ms` < 0 leaves timing out.  malloc'ed. */
char *kftest_report_text(const kftest_result *results, size_t n, double elapsed_ms, unsigned flags);

/* JSON lines: one object per case {"test", "case", "index", "passed",
 * "status", "message", ...} (plus "namespace", "function", "file", "line",
 * "expected", "outcome", "differences" when known), then
 * {"summary": {"tests", "cases", "passed", "failed", "skipped", "not_run",
 * "errors", "ok", "ms"}}.  `index` is the 0-based position in testCases.
 * malloc'ed, each line ending in '\n'. */
char *kftest_report_json(const kftest_result *results, size_t n, double elapsed_ms);

/* JUnit XML: <testsuites> with one <testsuite> per FunctionTest and one
 * <testcase> per case; failures as <failure>, errors as <error>, skipped
 * and not-run cases as <skipped>.  malloc'ed. */
char *kftest_report_junit(const kftest_result *results, size_t n, double elapsed_ms);

#ifdef __cplusplus
}
#endif
#endif
