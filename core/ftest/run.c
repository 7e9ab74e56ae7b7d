/*
 * core/ftest/run.c: the FunctionTest runner (spec 7.2, 7.4, 7.6): case
 * sequencing (inputs and the current resource carried from case to case,
 * variants that carry nothing, skip, inputOverrides, currentResource,
 * overlayResource), running the function under test (a ValueFunction
 * directly, a ResourceFunction against the mock API of spec 7.3), the
 * assertions, and upstream's rule that a failing non-variant case stops
 * the test.
 */
#include "koreo/definition.h"
#include "koreo/eval.h"
#include "koreo/expr.h"
#include "koreo/ftest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The owner namespace given to ResourceFunction runs: not a valid
 * namespace name, so no resource is ever owned (spec 7.3). */
#define TEST_OWNER_NS "(FunctionTest: never an owner)"

static char *xstrdup(const char *s) {
  if (!s) return NULL;
  char *p = strdup(s);
  if (!p) kv_oom();
  return p;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool non_empty_map(const kv *v) { return v && v->kind == KV_MAP && kv_len(v) > 0; }

static char *kdef_text(const kdef_outcome *o) { return kdef_outcome_text(o); }

/* ---- results ------------------------------------------------------------- */

/* ---- assertions (spec 7.4) ----------------------------------------------- */

/* Summarise a flat difference list as a message: the first difference and
 * how many more there are. */
static char *diff_message(const char *what, const kv *flat) {
  size_t n = flat ? kv_len(flat) : 0;
  if (n == 0) return kv_asprintf("%s does not match", what);
  const kv *d = kv_list_at(flat, 0);
  const kv *p = kv_map_get_str(d, "path"), *m = kv_map_get_str(d, "message");
  if (n == 1) return kv_asprintf("%s does not match: %s: %s", what, kv_str(p), kv_str(m));
  return kv_asprintf("%s does not match: %s: %s (and %zu more difference%s)", what, kv_str(p),
                     kv_str(m), n - 1, n - 1 == 1 ? "" : "s");
}

static char *ok_text_of(const kv *v) {
  koreo_outcome o = koreo_outcome_ok(kv_ref((kv *)v), NULL);
  char *t = koreo_outcome_text(&o);
  koreo_outcome_clear(&o);
  return t;
}

static bool message_matches(const char *expected, const char *actual) {
  if (!expected || !*expected) return true;
  if (!actual) return false;
  /* case-insensitive substring */
  size_t n = strlen(expected);
  for (const char *p = actual; *p; p++)
    if (strncasecmp(p, expected, n) == 0) return true;
  return false;
}

static const char *kind_prefix(koreo_outcome_kind k) {
  switch (k) {
  case KOREO_SKIP: return "Skip";
  case KOREO_DEPSKIP: return "DepSkip";
  case KOREO_PERMFAIL: return "PermFail";
  case KOREO_RETRY: return "Retry";
  default: return "Ok";
  }
}

static void assert_outcome(const kdef_test_case *tc, const koreo_outcome *actual,
                           kftest_case_result *cr) {
  koreo_outcome_kind ek = (koreo_outcome_kind)tc->expect_outcome;
  const char *em = tc->expect_message ? tc->expect_message : "";
  if (ek == KOREO_OK) {
    cr->expected_text = xstrdup("Ok");
    cr->passed = actual->kind == KOREO_OK;
    if (!cr->passed) cr->message = kv_asprintf("Expected(Ok) Actual(%s)", cr->outcome_text);
    return;
  }
  koreo_outcome exp =
      koreo_outcome_make(ek, ek == KOREO_RETRY ? tc->expect_delay : 0, NULL, "%s", em);
  if (!*em) {
    free(exp.message);
    exp.message = NULL;
  }
  cr->expected_text = koreo_outcome_text(&exp);
  koreo_outcome_clear(&exp);
  if (actual->kind != ek) {
    cr->passed = false;
    cr->message = kv_asprintf("Expected(%s) Actual(%s)", cr->expected_text, cr->outcome_text);
    return;
  }
  bool pass = message_matches(em, actual->message);
  const char *am = actual->message ? actual->message : "None";
  if (ek == KOREO_RETRY) {
    if (tc->expect_delay && tc->expect_delay != actual->delay) pass = false;
    if (!pass)
      cr->message = kv_asprintf("Retry: Expected(message=%s, delay=%lld) Actual(message=%s, "
                                "delay=%lld)",
                                em, (long long)tc->expect_delay, am, (long long)actual->delay);
  } else if (!pass) {
    cr->message =
        kv_asprintf("%s: Expected(message=%s) Actual(message=%s)", kind_prefix(ek), em, am);
  }
  cr->passed = pass;
}

static void assert_return(const kdef_test_case *tc, const koreo_outcome *actual,
                          kftest_case_result *cr) {
  cr->expected = kv_ref(tc->expect_return);
  cr->expected_text = ok_text_of(tc->expect_return);
  if (actual->kind != KOREO_OK) {
    cr->passed = false;
    cr->message = kv_asprintf("Non-Ok return value (%s)", cr->outcome_text);
    return;
  }
  cr->actual = koreo_to_native(actual->value ? actual->value : kv_null());
  cr->passed = kftest_compare(tc->expect_return, cr->actual, &cr->differences, &cr->diffs);
  if (!cr->passed) cr->message = diff_message("return value", cr->diffs);
}

static void assert_resource(const kdef_test_case *tc, const koreo_outcome *actual,
                            const kftest_mock *mock, kftest_case_result *cr) {
  cr->expected = kv_ref(tc->expect_resource);
  cr->expected_text = ok_text_of(tc->expect_resource);
  if (!mock->materialized) {
    const char *why = "unexpected Ok result";
    if (actual->kind != KOREO_OK) why = actual->message ? actual->message : "None";
    cr->passed = false;
    cr->message = kv_asprintf("No resource changes attempted: %s", why);
    return;
  }
  if (actual->kind != KOREO_RETRY) {
    cr->passed = false;
    cr->message = kv_asprintf("Unexpected result-type (%s), but expected Retry", cr->outcome_text);
    return;
  }
  cr->actual = kftest_strip_last_applied(mock->materialized);
  cr->passed = kftest_compare(tc->expect_resource, cr->actual, &cr->differences, &cr->diffs);
  if (!cr->passed) cr->message = diff_message("resource", cr->diffs);
}

static void assert_delete(const kdef_test_case *tc, const kftest_mock *mock,
                          kftest_case_result *cr) {
  koreo_outcome exp = koreo_outcome_retry(0, "", NULL);
  cr->expected_text = koreo_outcome_text(&exp);
  koreo_outcome_clear(&exp);
  cr->passed = mock->delete_called == tc->expect_delete;
  if (!cr->passed)
    cr->message = xstrdup(mock->delete_called ? "Delete called, but expectDelete is false"
                                              : "Delete not called.");
}

/* ---- running ----------------------------------------------------------- */

typedef struct run_state {
  const kdef_registry *registry;
  const kdef_definition *test;
  const kdef_definition *fn;
  kv *inputs;   /* current inputs (ref) or NULL */
  kv *resource; /* current resource (ref) or NULL */
} run_state;

/* Run case `tc` with the current state; fills `cr` and, unless the case
 * is a variant, updates the state.  Returns true when the test must stop
 * (fatal). */
static bool run_case(run_state *st, const kdef_test_case *tc, kftest_case_result *cr) {
  cr->index = tc->index;
  cr->label = xstrdup(tc->label);
  cr->variant = tc->variant;
  cr->file = tc->pos.file;
  cr->line = tc->pos.line;
  cr->col = tc->pos.col;
  if (tc->skip) {
    cr->status = KFTEST_SKIP;
    cr->passed = true;
    cr->message = xstrdup("user skipped");
    return false;
  }
  /* effective inputs */
  kv *inputs;
  bool have_inputs = non_empty_map(st->inputs);
  bool have_over = non_empty_map(tc->input_overrides);
  if (have_inputs && have_over)
    inputs = kv_map_deep_merge(st->inputs, tc->input_overrides);
  else if (have_inputs)
    inputs = kv_ref(st->inputs);
  else if (have_over)
    inputs = kv_ref(tc->input_overrides);
  else
    inputs = kv_map_new(0);

  /* effective current object */
  kv *resource = NULL;
  bool fatal = false;
  if (tc->overlay_resource) {
    if (!non_empty_map(st->resource)) {
      cr->status = KFTEST_FAIL;
      cr->message = xstrdup("Can not overlay until the full resource exists. Try setting "
                            "`currentResource` or reordering test cases.");
      kv_unref(inputs);
      return true; /* fatal even for variants */
    }
    /* variables: the inputs' top-level keys, plus `inputs` itself (spec
     * 10.4 item 41); `resource` is the current object */
    kv *bind = kv_map_new(kv_len(inputs) + 1);
    for (size_t i = 0; i < kv_len(inputs); i++)
      kv_map_set(bind, kv_ref(kv_map_key_at(inputs, i)), kv_ref(kv_map_val_at(inputs, i)));
    kv_map_set_str(bind, "inputs", kv_ref(inputs));
    koreo_error err;
    kv *r = koreo_expr_eval_overlay(tc->overlay_resource, st->resource, bind, &err);
    kv_unref(bind);
    if (!r) {
      koreo_outcome pf = koreo_outcome_permfail(err.message, err.location);
      cr->outcome_text = koreo_outcome_text(&pf);
      koreo_outcome_clear(&pf);
      cr->status = KFTEST_FAIL;
      cr->message =
          kv_asprintf("Could not run test case due to resource overlay error: (%s)", err.message);
      kv_unref(inputs);
      return !tc->variant;
    }
    resource = koreo_to_native(r);
    kv_unref(r);
  } else if (non_empty_map(tc->current_resource)) {
    resource = kv_ref(tc->current_resource);
  } else {
    resource = st->resource ? kv_ref(st->resource) : NULL;
  }

  char *location = kv_asprintf("FunctionTest:%s.testCases[%d]", st->test->name, tc->index);
  kftest_mock mock;
  kftest_mock_init(&mock, resource);
  koreo_outcome outcome;
  if (st->fn->kind == KDEF_RESOURCE_FUNCTION) {
    koreo_eval_ctx ctx = {.registry = st->registry};
    kv *owner_ref = kv_map_new(1);
    kv_map_set_str(owner_ref, "uid", kv_cstring("unit-test-123"));
    koreo_owner owner = {.ns = TEST_OWNER_NS, .ref = owner_ref};
    koreo_run *run = koreo_run_resource_function(&ctx, st->fn, inputs, &owner, location);
    kube_ops ops = kftest_mock_ops(&mock);
    koreo_run_sync(run, &ops);
    outcome = koreo_outcome_copy(koreo_run_outcome(run));
    koreo_run_free(run);
    kv_unref(owner_ref);
  } else {
    outcome = koreo_eval_value_function(st->fn, inputs, non_empty_map(resource) ? resource : NULL,
                                        location);
  }
  free(location);
  cr->outcome_text = koreo_outcome_text(&outcome);

  switch (tc->expect) {
  case KDEF_EXPECT_OUTCOME: assert_outcome(tc, &outcome, cr); break;
  case KDEF_EXPECT_RETURN: assert_return(tc, &outcome, cr); break;
  case KDEF_EXPECT_RESOURCE: assert_resource(tc, &outcome, &mock, cr); break;
  case KDEF_EXPECT_DELETE: assert_delete(tc, &mock, cr); break;
  }
  koreo_outcome_clear(&outcome);
  cr->status = cr->passed ? KFTEST_PASS : KFTEST_FAIL;

  if (!tc->variant) {
    kv_unref(st->inputs);
    st->inputs = kv_ref(inputs);
    kv *next = mock.api_called ? kv_ref(mock.materialized) : (resource ? kv_ref(resource) : NULL);
    kv_unref(st->resource);
    st->resource = next;
    fatal = !cr->passed;
  }
  kftest_mock_clear(&mock);
  kv_unref(resource);
  kv_unref(inputs);
  return fatal;
}

static kftest_case_result *add_case(kftest_result *out) {
  kftest_case_result *c = &out->cases[out->n_cases++];
  memset(c, 0, sizeof *c);
  return c;
}

/* Every case (or one test-level entry) as ERROR with `why`. */
static void all_error(kftest_result *out, const kdef_function_test *ft, const char *why) {
  size_t n = ft ? ft->n_cases : 0;
  out->cases = calloc(n ? n : 1, sizeof *out->cases);
  if (!out->cases) kv_oom();
  if (n == 0) {
    kftest_case_result *c = add_case(out);
    c->index = -1;
    c->status = KFTEST_ERROR;
    c->message = xstrdup(why);
    c->file = out->file;
    c->line = out->line;
    c->col = out->col;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const kdef_test_case *tc = &ft->cases[i];
    kftest_case_result *c = add_case(out);
    c->index = tc->index;
    c->label = xstrdup(tc->label);
    c->variant = tc->variant;
    c->status = KFTEST_ERROR;
    c->message = xstrdup(why);
    c->file = tc->pos.file;
    c->line = tc->pos.line;
    c->col = tc->pos.col;
  }
}

void kftest_run(const kdef_registry *registry, const kdef_definition *test, kftest_result *out) {
  double t0 = now_ms();
  memset(out, 0, sizeof *out);
  out->test = xstrdup(test->name ? test->name : "");
  out->ns = xstrdup(test->ns ? test->ns : "");
  out->file = test->pos.file;
  out->line = test->pos.line;
  out->col = test->pos.col;
  if (test->kind != KDEF_FUNCTION_TEST) {
    out->fatal = true;
    out->error = kv_asprintf("%s %s is not a FunctionTest", kdef_kind_name(test->kind), out->test);
    all_error(out, NULL, out->error);
    out->ms = now_ms() - t0;
    return;
  }
  if (!kdef_outcome_is_ok(&test->status)) {
    char *t = kdef_text(&test->status);
    out->fatal = true;
    out->error = kv_asprintf("FunctionTest %s failed to prepare: %s", out->test, t);
    free(t);
    all_error(out, NULL, out->error);
    out->ms = now_ms() - t0;
    return;
  }
  const kdef_function_test *ft = &test->u.ft;
  out->function_kind = xstrdup(kdef_kind_name(ft->function_kind));
  out->function_name = xstrdup(ft->function_name);
  const kdef_definition *fn = ft->function;
  if (!kdef_outcome_is_ok(&ft->function_status) || !fn || !kdef_outcome_is_ok(&fn->status)) {
    const kdef_outcome *o = !kdef_outcome_is_ok(&ft->function_status) ? &ft->function_status
                            : fn                                      ? &fn->status
                                                                      : &ft->function_status;
    char *t = kdef_text(o);
    out->fatal = true;
    out->error = kv_asprintf("%s %s is not ready: %s", out->function_kind, out->function_name, t);
    free(t);
    all_error(out, ft, out->error);
    out->ms = now_ms() - t0;
    return;
  }
  out->cases = calloc(ft->n_cases ? ft->n_cases : 1, sizeof *out->cases);
  if (!out->cases) kv_oom();
  run_state st = {.registry = registry,
                  .test = test,
                  .fn = fn,
                  .inputs = ft->inputs ? kv_ref(ft->inputs) : NULL,
                  .resource = ft->current_resource ? kv_ref(ft->current_resource) : NULL};
  const kdef_test_case *stopper = NULL;
  for (size_t i = 0; i < ft->n_cases; i++) {
    const kdef_test_case *tc = &ft->cases[i];
    kftest_case_result *cr = add_case(out);
    if (stopper) {
      cr->index = tc->index;
      cr->label = xstrdup(tc->label);
      cr->variant = tc->variant;
      cr->status = KFTEST_NOT_RUN;
      cr->message = kv_asprintf("not run: case #%d (%s) failed and stopped the test",
                                stopper->index + 1, stopper->label);
      cr->file = tc->pos.file;
      cr->line = tc->pos.line;
      cr->col = tc->pos.col;
      continue;
    }
    double c0 = now_ms();
    if (run_case(&st, tc, cr)) {
      stopper = tc;
      out->fatal = true;
    }
    cr->ms = now_ms() - c0;
  }
  kv_unref(st.inputs);
  kv_unref(st.resource);
  out->ms = now_ms() - t0;
}
