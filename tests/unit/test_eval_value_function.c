/*
 * tests/unit/test_eval_value_function.c: ValueFunction evaluation (spec 4,
 * upstream value_function/test_reconcile.py): preconditions and their
 * outcomes, the `ok` short-circuit, locals (only evaluated with a return,
 * cannot see locals, any error fails), the return overlay and its base,
 * and where errors are reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "eval_fixture.h"

static fx F;

static int setup(void **s) {
  (void)s;
  fx_init(&F);
  fx_load(&F, "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: full}\n"
              "spec:\n"
              "  locals:\n"
              "    sum: =inputs.a + inputs.b\n"
              "    list: [=inputs.a + inputs.b, 17, constant]\n"
              "    map: {k: =inputs.a + inputs.b}\n"
              "  return:\n"
              "    value: =locals.sum * locals.sum\n"
              "    list: =locals.list.map(v, string(v) + ' value')\n"
              "    keys: =locals.map.map(k, locals.map[k] * 3)\n"
              "    literal: 1 + 1\n"
              "    numeric: '17171'\n"
              "    nested: {a: =inputs.a, l: [1, =inputs.b, x]}\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: gates}\n"
              "spec:\n"
              "  preconditions:\n"
              "  - assert: =inputs.mode != 'ok'\n"
              "    ok: {}\n"
              "  - assert: =inputs.mode != 'skip'\n"
              "    skip: {message: skipping}\n"
              "  - assert: =inputs.mode != 'depSkip'\n"
              "    depSkip: {message: waiting for it}\n"
              "  - assert: =inputs.mode != 'retry'\n"
              "    retry: {message: ='retry ' + inputs.mode, delay: 13}\n"
              "  - assert: =inputs.mode != 'permFail'\n"
              "    permFail: {message: broken}\n"
              "  - assert: =inputs.mode == 'go' || inputs.mode == 'ok'\n"
              "    permFail: {message: unknown mode}\n"
              "  return:\n"
              "    mode: =inputs.mode\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: corrupt-pre}\n"
              "spec:\n"
              "  preconditions:\n"
              "  - assert: =inputs.x > 0\n"
              "    skip: {message: never}\n"
              "  - assert: =inputs.x + 'a' == 1\n"
              "    permFail: {message: bad}\n"
              "  return: {v: 1}\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: corrupt-locals}\n"
              "spec:\n"
              "  locals:\n"
              "    fine: =inputs.x\n"
              "    unused: =inputs.x + 'a'\n"
              "  return: {v: =locals.fine}\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: corrupt-return}\n"
              "spec:\n"
              "  return: {v: =inputs.x + 'a'}\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: no-return}\n"
              "spec:\n"
              "  preconditions:\n"
              "  - assert: =inputs.x > 0\n"
              "    skip: {message: not positive}\n"
              "  locals:\n"
              "    broken: =inputs.x + 'a'\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: locals-see-locals}\n"
              "spec:\n"
              "  locals:\n"
              "    a: 1\n"
              "    b: =locals.a + 1\n"
              "  return: {b: =locals.b}\n"
              "---\n"
              "apiVersion: koreo.dev/v1beta1\n"
              "kind: ValueFunction\n"
              "metadata: {name: with-base}\n"
              "spec:\n"
              "  preconditions:\n"
              "  - assert: =!has(resource) || resource.kind == 'Thing'\n"
              "    permFail: {message: wrong kind}\n"
              "  return:\n"
              "    metadata:\n"
              "      labels: {team: =inputs.team}\n"
              "    spec: '=has(resource.spec) ? resource.spec : {}'\n");
  return 0;
}

static int teardown(void **s) {
  (void)s;
  fx_free(&F);
  return 0;
}

static koreo_outcome run(const char *name, const char *inputs, const char *base) {
  kv *in = inputs ? fx_json(inputs) : NULL, *b = base ? fx_json(base) : NULL;
  koreo_outcome o = koreo_eval_value_function(fx_def(&F, KDEF_VALUE_FUNCTION, name), in, b, NULL);
  kv_unref(in);
  kv_unref(b);
  return o;
}

static void test_full_scenario(void **s) {
  (void)s;
  koreo_outcome o = run("full", "{\"a\":1,\"b\":8}", NULL);
  assert_int_equal(o.kind, KOREO_OK);
  /* "1 + 1" stays a string; '17171' becomes the integer 17171 (spec 2.1) */
  fx_assert_json(o.value, "{\"value\":81,\"list\":[\"9 value\",\"17 value\",\"constant value\"],"
                          "\"keys\":[27],\"literal\":\"1 + 1\",\"numeric\":17171,"
                          "\"nested\":{\"a\":1,\"l\":[1,8,\"x\"]}}");
  koreo_outcome_clear(&o);
}

static void test_precondition_exits(void **s) {
  (void)s;
  struct {
    const char *mode;
    koreo_outcome_kind kind;
    const char *message;
    int64_t delay;
  } cases[] = {
      {"skip", KOREO_SKIP, "skipping", 0},          {"depSkip", KOREO_DEPSKIP, "waiting for it", 0},
      {"retry", KOREO_RETRY, "retry retry", 13},    {"permFail", KOREO_PERMFAIL, "broken", 0},
      {"other", KOREO_PERMFAIL, "unknown mode", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char in[64];
    snprintf(in, sizeof in, "{\"mode\":\"%s\"}", cases[i].mode);
    koreo_outcome o = run("gates", in, NULL);
    assert_int_equal(o.kind, cases[i].kind);
    assert_string_equal(o.message, cases[i].message);
    assert_int_equal(o.delay, cases[i].delay);
    fx_assert_contains(o.location, "spec.preconditions");
    koreo_outcome_clear(&o);
  }
  /* a triggered `ok` stops checking: the later "unknown mode" never fires */
  koreo_outcome o = run("gates", "{\"mode\":\"ok\"}", NULL);
  assert_int_equal(o.kind, KOREO_OK);
  fx_assert_json(o.value, "{\"mode\":\"ok\"}");
  koreo_outcome_clear(&o);
  o = run("gates", "{\"mode\":\"go\"}", NULL);
  assert_int_equal(o.kind, KOREO_OK);
  koreo_outcome_clear(&o);
}

static void test_corrupt_precondition(void **s) {
  (void)s;
  /* an error in any assert is a PermFail even when an earlier one skips */
  koreo_outcome o = run("corrupt-pre", "{\"x\":-1}", NULL);
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  fx_assert_contains(o.message, "spec.preconditions");
  koreo_outcome_clear(&o);
}

static void test_corrupt_locals(void **s) {
  (void)s;
  koreo_outcome o = run("corrupt-locals", "{\"x\":1}", NULL);
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  fx_assert_contains(o.message, "spec.locals");
  koreo_outcome_clear(&o);
  o = run("locals-see-locals", "{}", NULL);
  assert_int_equal(o.kind, KOREO_PERMFAIL); /* locals cannot reference locals */
  fx_assert_contains(o.message, "spec.locals");
  koreo_outcome_clear(&o);
}

static void test_corrupt_return(void **s) {
  (void)s;
  koreo_outcome o = run("corrupt-return", "{\"x\":1}", NULL);
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  fx_assert_contains(o.message, "spec.return");
  koreo_outcome_clear(&o);
}

static void test_no_return(void **s) {
  (void)s;
  /* no return: null, and the broken locals are never evaluated */
  koreo_outcome o = run("no-return", "{\"x\":1}", NULL);
  assert_int_equal(o.kind, KOREO_OK);
  assert_int_equal(o.value->kind, KV_NULL);
  koreo_outcome_clear(&o);
  o = run("no-return", "{\"x\":0}", NULL);
  assert_int_equal(o.kind, KOREO_SKIP);
  koreo_outcome_clear(&o);
}

static void test_base(void **s) {
  (void)s;
  /* without a base, `resource` is not bound in preconditions and is {} in
   * return */
  koreo_outcome o = run("with-base", "{\"team\":\"a\"}", NULL);
  assert_int_equal(o.kind, KOREO_OK);
  fx_assert_json(o.value, "{\"metadata\":{\"labels\":{\"team\":\"a\"}},\"spec\":{}}");
  koreo_outcome_clear(&o);
  /* with a base, the return is overlaid onto it: literal maps merge */
  o = run("with-base", "{\"team\":\"a\"}",
          "{\"kind\":\"Thing\",\"metadata\":{\"name\":\"n\",\"labels\":{\"x\":"
          "\"y\"}},"
          "\"spec\":{\"s\":1}}");
  assert_int_equal(o.kind, KOREO_OK);
  fx_assert_json(o.value, "{\"kind\":\"Thing\",\"metadata\":{\"name\":\"n\",\"labels\":{\"x\":"
                          "\"y\",\"team\":\"a\"}},\"spec\":{\"s\":1}}");
  koreo_outcome_clear(&o);
  o = run("with-base", "{\"team\":\"a\"}", "{\"kind\":\"Other\"}");
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  assert_string_equal(o.message, "wrong kind");
  koreo_outcome_clear(&o);
  /* null inputs (overlayRef without inputs) */
  o = run("full", NULL, NULL);
  assert_int_equal(o.kind, KOREO_PERMFAIL);
  koreo_outcome_clear(&o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_scenario),
      cmocka_unit_test(test_precondition_exits),
      cmocka_unit_test(test_corrupt_precondition),
      cmocka_unit_test(test_corrupt_locals),
      cmocka_unit_test(test_corrupt_return),
      cmocka_unit_test(test_no_return),
      cmocka_unit_test(test_base),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
