/*
 * tests/unit/test_eval_resource_function.c: ResourceFunction reconcile
 * (spec 5) through the kube operations interface, one test per row of the
 * outcome decision table 5.11 plus the target specification rules (5.5:
 * template, forced fields, overlays, overlayRef), the create body (5.6,
 * 5.10), ownership (5.8, 5.9), the API call sequence and the resumable
 * request/answer interface.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "eval_fixture.h"

static const char *DEFS = "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: cm}\n"
                          "spec:\n"
                          "  preconditions:\n"
                          "  - assert: =inputs.mode != 'skip'\n"
                          "    skip: {message: told to skip}\n"
                          "  - assert: =inputs.mode != 'retry'\n"
                          "    retry: {message: told to wait, delay: 7}\n"
                          "  locals:\n"
                          "    name: =inputs.name + '-cm'\n"
                          "    bad: '=inputs.mode == \"badlocal\" ? 1 + \"x\" : 1'\n"
                          "  apiConfig:\n"
                          "    apiVersion: v1\n"
                          "    kind: ConfigMap\n"
                          "    name: '=inputs.mode == \"badname\" ? inputs.nope : locals.name'\n"
                          "    namespace: =inputs.ns\n"
                          "  resource:\n"
                          "    metadata:\n"
                          "      name: ignored-because-forced\n"
                          "      labels: {app: =inputs.name}\n"
                          "    data:\n"
                          "      size: =string(inputs.size)\n"
                          "  create:\n"
                          "    delay: 11\n"
                          "    overlay:\n"
                          "      data: {createdBy: koreo}\n"
                          "  update:\n"
                          "    patch: {delay: 12}\n"
                          "  postconditions:\n"
                          "  - assert: '=!has(resource.data.ready) || resource.data.ready == "
                          "\"yes\"'\n"
                          "    retry: {message: not ready yet, delay: 5}\n"
                          "  return:\n"
                          "    size: =resource.data.size\n"
                          "    bad: '=inputs.mode == \"badreturn\" ? resource.nope : 1'\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: reader}\n"
                          "spec:\n"
                          "  apiConfig:\n"
                          "    apiVersion: v1\n"
                          "    kind: ConfigMap\n"
                          "    name: =inputs.name\n"
                          "    namespace: ns\n"
                          "    readonly: true\n"
                          "  resource:\n"
                          "    data: =1 + 'bad template is never evaluated'\n"
                          "  return:\n"
                          "    data: =resource.data\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: no-create}\n"
                          "spec:\n"
                          "  apiConfig: {apiVersion: v1, kind: ConfigMap, name: x, namespace: ns}\n"
                          "  resource: {}\n"
                          "  create: {enabled: false}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: deleter}\n"
                          "spec:\n"
                          "  apiConfig:\n"
                          "    apiVersion: v1\n"
                          "    kind: ConfigMap\n"
                          "    name: doomed\n"
                          "    namespace: ns\n"
                          "    deleteIfExists: true\n"
                          "    readonly: true\n"
                          "  resource: {}\n"
                          "  return:\n"
                          "    empty: =resource\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: never}\n"
                          "spec:\n"
                          "  apiConfig: {apiVersion: v1, kind: ConfigMap, name: n, namespace: ns}\n"
                          "  resource: {data: {a: '=\"new\"'}}\n"
                          "  update: {never: {}}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: recreate}\n"
                          "spec:\n"
                          "  apiConfig: {apiVersion: v1, kind: ConfigMap, name: r, namespace: ns}\n"
                          "  resource: {data: {a: '=\"new\"'}}\n"
                          "  update: {recreate: {delay: 9}}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceTemplate\n"
                          "metadata: {name: bucket-template}\n"
                          "spec:\n"
                          "  template:\n"
                          "    apiVersion: wrong/v9\n"
                          "    kind: Wrong\n"
                          "    metadata: {name: wrong, labels: {tier: gold}}\n"
                          "    spec: {class: STANDARD, literal: '=1+1'}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ValueFunction\n"
                          "metadata: {name: add-team}\n"
                          "spec:\n"
                          "  preconditions:\n"
                          "  - assert: =inputs.team != 'nobody'\n"
                          "    depSkip: {message: no team yet}\n"
                          "  return:\n"
                          "    metadata:\n"
                          "      labels: {team: =inputs.team, seen: =resource.spec.class}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: bucket}\n"
                          "spec:\n"
                          "  apiConfig:\n"
                          "    apiVersion: storage.example.com/v1\n"
                          "    kind: Bucket\n"
                          "    plural: buckets\n"
                          "    name: =inputs.name\n"
                          "    namespace: =inputs.ns\n"
                          "  resourceTemplateRef: {name: =inputs.template}\n"
                          "  overlays:\n"
                          "  - overlay:\n"
                          "      spec: {size: =inputs.size, was: =resource.spec.class}\n"
                          "  - skipIf: =!has(inputs.team)\n"
                          "    overlayRef: {kind: ValueFunction, name: add-team}\n"
                          "    inputs: {team: =inputs.team}\n"
                          "  - overlay:\n"
                          "      metadata: {name: not-this-one}\n"
                          "      kind: NotThis\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: missing-vf}\n"
                          "spec:\n"
                          "  apiConfig: {apiVersion: v1, kind: ConfigMap, name: m, namespace: ns}\n"
                          "  resource: {}\n"
                          "  overlays:\n"
                          "  - overlayRef: {kind: ValueFunction, name: does-not-exist}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: directives}\n"
                          "spec:\n"
                          "  apiConfig: {apiVersion: v1, kind: ConfigMap, name: d, namespace: ns}\n"
                          "  resource:\n"
                          "    x-koreo-compare-last-applied: [data]\n"
                          "    data: {a: '=\"1\"'}\n"
                          "---\n"
                          "apiVersion: koreo.dev/v1beta1\n"
                          "kind: ResourceFunction\n"
                          "metadata: {name: crd-thing}\n"
                          "spec:\n"
                          "  apiConfig: {apiVersion: ex.com/v1, kind: Unknown, name: u, namespace: "
                          "ns}\n"
                          "  resource: {}\n";

static fx F;

static int setup(void **s) {
  (void)s;
  fx_init(&F);
  fx_load(&F, DEFS);
  return 0;
}
static int teardown(void **s) {
  (void)s;
  fx_free(&F);
  return 0;
}
static int reset(void **s) {
  (void)s;
  fx_free(&F);
  return setup(s);
}

typedef struct result {
  koreo_outcome o;
  kv *id;       /* resource id or NULL */
  size_t calls; /* requests answered */
} result;

static result run_owned(const char *name, const char *inputs, const char *owner_ns,
                        const char *owner_uid) {
  kv *in = fx_json(inputs);
  kv *ref = NULL;
  koreo_owner ow = {0};
  if (owner_ns) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"ex.com/"
             "v1\",\"kind\":\"App\",\"name\":\"app\",\"uid\":\"%s\","
             "\"blockOwnerDeletion\":true,\"controller\":false}",
             owner_uid);
    ref = fx_json(buf);
    ow.ns = owner_ns;
    ow.ref = ref;
  }
  koreo_run *r =
      koreo_run_resource_function(&F.ctx, fx_def(&F, KDEF_RESOURCE_FUNCTION, name), in, &ow, NULL);
  kube_ops ops = fx_ops(&F);
  result res;
  res.calls = koreo_run_sync(r, &ops);
  assert_true(koreo_run_done(r));
  res.o = koreo_outcome_copy(koreo_run_outcome(r));
  const kv *id = koreo_run_resource_id(r);
  res.id = id ? kv_ref((kv *)id) : NULL;
  koreo_run_free(r);
  kv_unref(in);
  kv_unref(ref);
  return res;
}

static result run(const char *name, const char *inputs) {
  return run_owned(name, inputs, NULL, NULL);
}

static void result_clear(result *r) {
  koreo_outcome_clear(&r->o);
  kv_unref(r->id);
}

static const char *CM_IN = "{\"name\":\"web\",\"ns\":\"ns\",\"size\":3,\"mode\":\"go\"}";

/* 5.11: precondition fails / locals / name errors: that outcome, no API call */
static void test_no_call_exits(void **s) {
  (void)s;
  result r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"mode\":\"skip\"}");
  assert_int_equal(r.o.kind, KOREO_SKIP);
  assert_string_equal(r.o.message, "told to skip");
  assert_int_equal(r.calls, 0);
  assert_null(r.id);
  result_clear(&r);
  r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"mode\":\"retry\"}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 7);
  result_clear(&r);
  r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"mode\":\"badlocal\"}");
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  fx_assert_contains(r.o.location, "spec.locals");
  assert_int_equal(r.calls, 0);
  result_clear(&r);
  r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"mode\":\"badname\"}");
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  fx_assert_contains(r.o.location, "spec.apiConfig.name");
  assert_int_equal(r.calls, 0);
  result_clear(&r);
  /* namespaced type without a namespace */
  r = run("cm", "{\"name\":\"web\",\"ns\":\"\",\"mode\":\"go\"}");
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  fx_assert_contains(r.o.message, "`namespace` is required");
  assert_int_equal(r.calls, 0);
  result_clear(&r);
}

/* 5.11: absent -> created: Retry(create.delay), body = target + create
 * overlay + forced fields + last-applied, directives stripped */
static void test_create(void **s) {
  (void)s;
  fx_reset_log(&F);
  result r = run("cm", CM_IN);
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 11);
  assert_string_equal(r.o.message, "Creating ConfigMap:ns:web-cm.");
  assert_int_equal(fx_nreq(&F), 2);
  assert_string_equal(fx_req(&F, 0), "get ConfigMap ns/web-cm");
  assert_string_equal(fx_req(&F, 1), "create ConfigMap ns/web-cm");
  const kv *body = kv_list_at(F.bodies, 1);
  const kv *md = kv_map_get_str(body, "metadata");
  assert_string_equal(kv_str(kv_map_get_str(md, "name")), "web-cm"); /* forced */
  assert_non_null(kv_map_get_str(kv_map_get_str(md, "annotations"), KOREO_LAST_APPLIED_ANNOTATION));
  fx_assert_json(kv_map_get_str(body, "data"), "{\"size\":\"3\",\"createdBy\":\"koreo\"}");
  assert_null(kv_map_get_str(md, "ownerReferences")); /* no owner given */
  fx_assert_json(r.id, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"plural\":\"configmaps\","
                       "\"name\":\"web-cm\",\"namespace\":\"ns\",\"readonly\":false,"
                       "\"resourceFunction\":\"cm\"}");
  result_clear(&r);

  /* the next reconcile sees it: the create-overlay key and the server's
   * metadata are extra keys (ignored): Ok, postconditions and return run */
  fx_reset_log(&F);
  r = run("cm", CM_IN);
  assert_int_equal(r.o.kind, KOREO_OK);
  fx_assert_json(r.o.value, "{\"size\":\"3\",\"bad\":1}");
  assert_int_equal(fx_nreq(&F), 1); /* exactly one read, no write */
  assert_non_null(r.id);
  result_clear(&r);

  /* a changed input: merge patch with the full target, Retry(patch.delay) */
  fx_reset_log(&F);
  r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"size\":4,\"mode\":\"go\"}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 12);
  assert_string_equal(r.o.message, "Patching `ConfigMap:ns:web-cm` due to 'data' -> 'size' -> "
                                   "<target:[4], resource:[3]>.");
  assert_int_equal(fx_nreq(&F), 2);
  assert_string_equal(fx_req(&F, 1), "patch ConfigMap ns/web-cm");
  body = kv_list_at(F.bodies, 1);
  fx_assert_json(kv_map_get_str(body, "data"), "{\"size\":\"4\"}"); /* no create overlay */
  result_clear(&r);
  r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"size\":4,\"mode\":\"go\"}");
  assert_int_equal(r.o.kind, KOREO_OK);
  result_clear(&r);
}

/* 5.11: postcondition fails (no resource id) / return error */
static void test_postconditions_and_return(void **s) {
  (void)s;
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"web-cm\","
              "\"namespace\":\"ns\",\"labels\":{\"app\":\"web\"}},\"data\":{"
              "\"size\":\"3\","
              "\"ready\":\"no\"}}");
  result r = run("cm", CM_IN);
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 5);
  assert_string_equal(r.o.message, "not ready yet");
  assert_null(r.id);
  result_clear(&r);
  kv *patch = fx_json("{\"data\":{\"ready\":\"yes\"}}");
  char err[128];
  assert_int_equal(
      kube_memcluster_merge_patch(F.mc, "v1", "ConfigMap", "ns", "web-cm", patch, err, sizeof err),
      0);
  kv_unref(patch);
  r = run("cm", "{\"name\":\"web\",\"ns\":\"ns\",\"size\":3,\"mode\":\"badreturn\"}");
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  fx_assert_contains(r.o.location, "spec.return");
  result_clear(&r);
}

/* 5.11: read error / multiple matches -> Retry 30 */
static void test_read_errors(void **s) {
  (void)s;
  kube_status st[] = {KUBE_STATUS_MULTIPLE, KUBE_STATUS_SERVER_ERROR, KUBE_STATUS_FAILURE};
  const char *msg[] = {"ConfigMap/web-cm resource matched multiple resources.",
                       "ServerError loading ConfigMap web-cm.",
                       "Failure loading ConfigMap web-cm."};
  for (int i = 0; i < 3; i++) {
    F.force_verb = KUBE_GET;
    F.force_status = st[i];
    F.force_code = 500;
    result r = run("cm", CM_IN);
    assert_int_equal(r.o.kind, KOREO_RETRY);
    assert_int_equal(r.o.delay, 30);
    fx_assert_contains(r.o.message, msg[i]);
    assert_int_equal(r.calls, 1);
    result_clear(&r);
  }
}

/* 5.11: plural lookup, kind unknown -> PermFail */
static void test_plural_unknown(void **s) {
  (void)s;
  kube_memcluster_set_strict_kinds(F.mc, true);
  result r = run("crd-thing", "{}");
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  assert_string_equal(r.o.message, "Dynamic kind-plural lookup failed for "
                                   "'Unknown'. Set plural explicitly in "
                                   "apiConfig.");
  result_clear(&r);
  kube_memcluster_set_strict_kinds(F.mc, false);
  r = run("crd-thing", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY); /* created; plural learnt from the answer */
  assert_string_equal(kv_str(kv_map_get_str(r.id, "plural")), "unknowns");
  result_clear(&r);
}

/* 5.11: readonly / create disabled */
static void test_readonly_and_no_create(void **s) {
  (void)s;
  result r = run("reader", "{\"name\":\"ro\"}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 30);
  assert_string_equal(r.o.message, "ConfigMap:ns:ro not found. Waiting...");
  result_clear(&r);
  r = run("no-create", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_string_equal(r.o.message, "ConfigMap:ns:x not found. Waiting...");
  result_clear(&r);
  /* present + readonly: Ok with the object; the bad template is never built */
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"ro\","
              "\"namespace\":\"ns\"},\"data\":{\"k\":\"v\"}}");
  fx_reset_log(&F);
  r = run("reader", "{\"name\":\"ro\"}");
  assert_int_equal(r.o.kind, KOREO_OK);
  fx_assert_json(r.o.value, "{\"data\":{\"k\":\"v\"}}");
  assert_int_equal(fx_nreq(&F), 1);
  assert_true(kv_map_get_str(r.id, "readonly")->u.b);
  result_clear(&r);
}

/* 5.11: deleteIfExists (even with readonly) */
static void test_delete_if_exists(void **s) {
  (void)s;
  result r = run("deleter", "{}");
  assert_int_equal(r.o.kind, KOREO_OK);
  fx_assert_json(r.o.value, "{\"empty\":{}}"); /* resource = {} */
  result_clear(&r);
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"doomed\","
              "\"namespace\":\"ns\"}}");
  fx_reset_log(&F);
  r = run("deleter", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 30);
  assert_string_equal(r.o.message, "Deleting ConfigMap:ns:doomed.");
  assert_string_equal(fx_req(&F, 1), "delete ConfigMap ns/doomed");
  result_clear(&r);
  kv *gone = kube_memcluster_get(F.mc, "v1", "ConfigMap", "ns", "doomed");
  assert_null(gone);
}

/* 5.11: create conflict (409) and other create errors */
static void test_create_errors(void **s) {
  (void)s;
  F.force_verb = KUBE_CREATE;
  F.force_status = KUBE_STATUS_CONFLICT;
  F.force_code = 409;
  result r = run("cm", CM_IN);
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 11);
  assert_string_equal(r.o.message, "Waiting on competing creation of ConfigMap:ns:web-cm.");
  result_clear(&r);
  F.force_verb = KUBE_CREATE;
  F.force_status = KUBE_STATUS_SERVER_ERROR;
  F.force_code = 422;
  r = run("cm", CM_IN);
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  fx_assert_contains(r.o.message, "Error creating ConfigMap:ns:web-cm: 422");
  result_clear(&r);
}

/* 5.11: differs + update never / recreate */
static void test_update_modes(void **s) {
  (void)s;
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"n\","
              "\"namespace\":\"ns\"},\"data\":{\"a\":\"old\"}}");
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"r\","
              "\"namespace\":\"ns\"},\"data\":{\"a\":\"old\"}}");
  fx_reset_log(&F);
  result r = run("never", "{}");
  assert_int_equal(r.o.kind, KOREO_OK);
  assert_int_equal(fx_nreq(&F), 1);
  result_clear(&r);
  r = run("recreate", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 9);
  assert_string_equal(r.o.message, "Deleting ConfigMap:ns:r to recreate due to 'data' -> 'a' -> "
                                   "<target:[new], resource:[old]>.");
  result_clear(&r);
  r = run("recreate", "{}"); /* deleted: created again */
  assert_int_equal(r.o.kind, KOREO_RETRY);
  fx_assert_contains(r.o.message, "Creating ConfigMap:ns:r.");
  result_clear(&r);
  r = run("recreate", "{}");
  assert_int_equal(r.o.kind, KOREO_OK);
  result_clear(&r);
  /* a failing PATCH/DELETE is an unexpected error: Retry 60 */
  fx_seed(&F, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
              "\"name\":\"r\","
              "\"namespace\":\"ns\"},\"data\":{\"a\":\"old\"}}");
  F.force_verb = KUBE_DELETE;
  F.force_status = KUBE_STATUS_FAILURE;
  r = run("recreate", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 60);
  fx_assert_contains(r.o.message, "Unknown error");
  result_clear(&r);
}

/* 5.8/5.9: ownership: owner ref added at create when namespaces match,
 * a missing owner ref alone triggers a patch, other namespaces never */
static void test_ownership(void **s) {
  (void)s;
  fx_reset_log(&F);
  result r = run_owned("cm", CM_IN, "ns", "uid-1");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  const kv *body = kv_list_at(F.bodies, 1);
  fx_assert_json(kv_map_get_str(kv_map_get_str(body, "metadata"), "ownerReferences"),
                 "[{\"apiVersion\":\"ex.com/"
                 "v1\",\"kind\":\"App\",\"name\":\"app\",\"uid\":"
                 "\"uid-1\",\"blockOwnerDeletion\":true,\"controller\":false}]");
  result_clear(&r);
  /* make it match in content but owned by someone else */
  kv *patch = fx_json("{\"data\":{\"size\":\"3\"},\"metadata\":{\"ownerReferences\":[{\"uid\":"
                      "\"other\"}]}}");
  char err[128];
  assert_int_equal(
      kube_memcluster_merge_patch(F.mc, "v1", "ConfigMap", "ns", "web-cm", patch, err, sizeof err),
      0);
  kv_unref(patch);
  fx_reset_log(&F);
  r = run_owned("cm", CM_IN, "ns", "uid-1");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_string_equal(r.o.message, "Patching `ConfigMap:ns:web-cm` due to .");
  body = kv_list_at(F.bodies, 1);
  const kv *refs = kv_map_get_str(kv_map_get_str(body, "metadata"), "ownerReferences");
  assert_int_equal(kv_len(refs), 2); /* existing + owner */
  result_clear(&r);
  r = run_owned("cm", CM_IN, "ns", "uid-1");
  assert_int_equal(r.o.kind, KOREO_OK);
  result_clear(&r);
  /* an owner in another namespace never owns: no patch for a foreign uid */
  r = run_owned("cm", CM_IN, "elsewhere", "uid-2");
  assert_int_equal(r.o.kind, KOREO_OK);
  result_clear(&r);
}

/* 5.5: template, forced fields, inline overlays see `resource`, overlayRef
 * ValueFunction gets the target as base, skipIf */
static void test_target_spec(void **s) {
  (void)s;
  fx_reset_log(&F);
  result r = run("bucket", "{\"name\":\"b1\",\"ns\":\"ns\",\"template\":\"bucket-template\","
                           "\"size\":5,\"team\":\"blue\"}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  kv *body = koreo_strip_directives(kv_list_at(F.bodies, 1));
  kv *noann = kv_map_new(4);
  for (size_t i = 0; i < kv_len(body); i++) {
    const char *k = kv_str(kv_map_key_at(body, i));
    if (strcmp(k, "metadata") == 0) {
      const kv *md = kv_map_val_at(body, i);
      kv *m2 = kv_map_new(3);
      for (size_t j = 0; j < kv_len(md); j++)
        if (strcmp(kv_str(kv_map_key_at(md, j)), "annotations"))
          kv_map_set(m2, kv_ref(kv_map_key_at(md, j)), kv_ref(kv_map_val_at(md, j)));
      kv_map_set_str(noann, k, m2);
    } else {
      kv_map_set_str(noann, k, kv_ref(kv_map_val_at(body, i)));
    }
  }
  fx_assert_json(noann, "{\"apiVersion\":\"storage.example.com/v1\",\"kind\":\"Bucket\","
                        "\"metadata\":{\"name\":\"b1\",\"labels\":{\"tier\":\"gold\",\"team\":"
                        "\"blue\",\"seen\":\"STANDARD\"},\"namespace\":\"ns\"},\"spec\":{"
                        "\"class\":"
                        "\"STANDARD\",\"literal\":\"=1+1\",\"size\":5,\"was\":\"STANDARD\"}}");
  kv_unref(noann);
  kv_unref(body);
  result_clear(&r);
  /* skipIf true: the overlayRef entry is skipped */
  fx_reset_log(&F);
  r = run("bucket", "{\"name\":\"b2\",\"ns\":\"ns\",\"template\":\"bucket-"
                    "template\",\"size\":5}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  const kv *labels = kv_map_get_str(kv_map_get_str(kv_list_at(F.bodies, 1), "metadata"), "labels");
  fx_assert_json(labels, "{\"tier\":\"gold\"}");
  result_clear(&r);
  /* the VF's precondition outcome becomes the function's */
  r = run("bucket", "{\"name\":\"b3\",\"ns\":\"ns\",\"template\":\"bucket-"
                    "template\",\"size\":5,"
                    "\"team\":\"nobody\"}");
  assert_int_equal(r.o.kind, KOREO_DEPSKIP);
  assert_string_equal(r.o.message, "no team yet");
  result_clear(&r);
  /* missing template: Retry 30 */
  r = run("bucket", "{\"name\":\"b4\",\"ns\":\"ns\",\"template\":\"nope\",\"size\":5}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 30);
  assert_string_equal(r.o.message, "ResourceTemplate:nope not found.");
  result_clear(&r);
  /* template name not a string: PermFail */
  r = run("bucket", "{\"name\":\"b5\",\"ns\":\"ns\",\"template\":5,\"size\":5}");
  assert_int_equal(r.o.kind, KOREO_PERMFAIL);
  fx_assert_contains(r.o.message, "Expected string");
  result_clear(&r);
  /* overlayRef ValueFunction that was not cached: Retry 60 */
  r = run("missing-vf", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 60);
  fx_assert_contains(r.o.message, "does-not-exist");
  result_clear(&r);
}

/* 5.7 + 5.10: x-koreo-compare-last-applied against the annotation */
static void test_last_applied(void **s) {
  (void)s;
  result r = run("directives", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY); /* created */
  result_clear(&r);
  /* the server "normalises" data.a; comparison uses what Koreo applied */
  kv *patch = fx_json("{\"data\":{\"a\":\"one\"}}");
  char err[128];
  assert_int_equal(
      kube_memcluster_merge_patch(F.mc, "v1", "ConfigMap", "ns", "d", patch, err, sizeof err), 0);
  kv_unref(patch);
  r = run("directives", "{}");
  assert_int_equal(r.o.kind, KOREO_OK);
  result_clear(&r);
  /* no directive key ever reaches the cluster */
  kv *o = kube_memcluster_get(F.mc, "v1", "ConfigMap", "ns", "d");
  char *j = kv_json_write(o, 0, NULL);
  assert_null(strstr(j, "\"x-koreo-compare-last-applied\":"));
  free(j);
  kv_unref(o);
  /* a corrupt annotation is an unexpected error (Retry 60) */
  patch = fx_json("{\"metadata\":{\"annotations\":{\"koreo.dev/"
                  "last-applied-configuration\":"
                  "\"{broken\"}}}");
  assert_int_equal(
      kube_memcluster_merge_patch(F.mc, "v1", "ConfigMap", "ns", "d", patch, err, sizeof err), 0);
  kv_unref(patch);
  r = run("directives", "{}");
  assert_int_equal(r.o.kind, KOREO_RETRY);
  assert_int_equal(r.o.delay, 60);
  result_clear(&r);
}

/* The resumable interface: the run yields one request at a time, answers
 * resume it; a stale id is refused; cancel gives a Timeout Retry. */
static void test_resumable(void **s) {
  (void)s;
  kv *in = fx_json(CM_IN);
  const kdef_definition *d = fx_def(&F, KDEF_RESOURCE_FUNCTION, "cm");
  koreo_run *r = koreo_run_resource_function(&F.ctx, d, in, NULL, NULL);
  assert_false(koreo_run_advance(r));
  assert_int_equal(koreo_run_pending(r), 1);
  const kube_request *q = koreo_run_next_request(r);
  assert_non_null(q);
  assert_int_equal(q->verb, KUBE_GET);
  assert_string_equal(q->plural, "configmaps");
  assert_true(q->namespaced);
  assert_null(koreo_run_next_request(r)); /* handed out once */
  uint64_t id = q->id;
  kube_response resp = {0};
  resp.status = KUBE_STATUS_NOT_FOUND;
  assert_int_equal(koreo_run_answer(r, id + 100, &resp), -1);
  resp.status = KUBE_STATUS_NOT_FOUND;
  assert_int_equal(koreo_run_answer(r, id, &resp), 0);
  assert_int_equal(koreo_run_pending(r), 0);
  assert_false(koreo_run_advance(r)); /* now waiting on the create */
  q = koreo_run_next_request(r);
  assert_int_equal(q->verb, KUBE_CREATE);
  resp.status = KUBE_STATUS_OK;
  assert_int_equal(koreo_run_answer(r, q->id, &resp), 0);
  assert_true(koreo_run_advance(r));
  assert_int_equal(koreo_run_outcome(r)->kind, KOREO_RETRY);
  koreo_run_free(r);

  r = koreo_run_resource_function(&F.ctx, d, in, NULL, NULL);
  assert_false(koreo_run_advance(r));
  koreo_run_cancel(r);
  assert_true(koreo_run_done(r));
  assert_int_equal(koreo_run_outcome(r)->kind, KOREO_RETRY);
  assert_int_equal(koreo_run_outcome(r)->delay, 30);
  fx_assert_contains(koreo_run_outcome(r)->message, "Timeout");
  koreo_run_free(r);
  /* freeing a run with a request in flight is fine */
  r = koreo_run_resource_function(&F.ctx, d, in, NULL, NULL);
  koreo_run_advance(r);
  koreo_run_free(r);
  kv_unref(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_no_call_exits, reset),
      cmocka_unit_test_setup(test_create, reset),
      cmocka_unit_test_setup(test_postconditions_and_return, reset),
      cmocka_unit_test_setup(test_read_errors, reset),
      cmocka_unit_test_setup(test_plural_unknown, reset),
      cmocka_unit_test_setup(test_readonly_and_no_create, reset),
      cmocka_unit_test_setup(test_delete_if_exists, reset),
      cmocka_unit_test_setup(test_create_errors, reset),
      cmocka_unit_test_setup(test_update_modes, reset),
      cmocka_unit_test_setup(test_ownership, reset),
      cmocka_unit_test_setup(test_target_spec, reset),
      cmocka_unit_test_setup(test_last_applied, reset),
      cmocka_unit_test_setup(test_resumable, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
