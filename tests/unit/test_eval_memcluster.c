/*
 * tests/unit/test_eval_memcluster.c: the in-memory cluster behind
 * `koreoctl run --dry-run` (kube_ops.h): create / get / merge patch /
 * delete answers, metadata it fills, plural resolution (built-ins, CRDs,
 * strict mode), the write journal, plus kube_merge_patch (RFC 7386) and
 * the discovery query text of spec 5.2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include "koreo/json.h"
#include "koreo/kube_ops.h"

#include <stdlib.h>
#include <string.h>

static kv *json(const char *s) {
  kv_parse_error e;
  kv *v = kv_json_parse(s, strlen(s), &e);
  if (!v) fail_msg("bad test JSON: %s", s);
  return v;
}

static void check_json(const kv *v, const char *want) {
  char *j = kv_json_write(v, 0, NULL);
  assert_string_equal(j, want);
  free(j);
}

static kube_status call(kube_ops *ops, kube_verb verb, const char *av, const char *kind,
                        const char *plural, const char *ns, const char *name, const char *body,
                        kube_response *resp) {
  kube_request q = {0};
  q.id = 1;
  q.verb = verb;
  q.api_version = strdup(av);
  q.kind = strdup(kind);
  q.plural = plural ? strdup(plural) : NULL;
  q.ns = ns ? strdup(ns) : NULL;
  q.name = strdup(name);
  q.body = body ? json(body) : NULL;
  memset(resp, 0, sizeof *resp);
  ops->call(ops->ctx, &q, resp);
  kube_request_clear(&q);
  return resp->status;
}

static void test_crud(void **s) {
  (void)s;
  kube_memcluster *mc = kube_memcluster_new();
  kube_ops ops = kube_memcluster_ops(mc);
  kube_response r;
  assert_int_equal(call(&ops, KUBE_GET, "v1", "ConfigMap", NULL, "ns", "c", NULL, &r),
                   KUBE_STATUS_NOT_FOUND);
  assert_string_equal(r.plural, "configmaps");
  kube_response_clear(&r);
  const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
                   "{\"name\":\"c\","
                   "\"namespace\":\"ns\"},\"data\":{\"a\":\"1\",\"b\":\"2\"}}";
  assert_int_equal(call(&ops, KUBE_CREATE, "v1", "ConfigMap", "configmaps", "ns", "c", cm, &r),
                   KUBE_STATUS_OK);
  const kv *md = kv_map_get_str(r.object, "metadata");
  assert_string_equal(kv_str(kv_map_get_str(md, "uid")), "memcluster-1");
  assert_string_equal(kv_str(kv_map_get_str(md, "resourceVersion")), "1");
  assert_non_null(kv_map_get_str(md, "creationTimestamp"));
  kube_response_clear(&r);
  assert_int_equal(call(&ops, KUBE_CREATE, "v1", "ConfigMap", "configmaps", "ns", "c", cm, &r),
                   KUBE_STATUS_CONFLICT);
  assert_int_equal(r.http_code, 409);
  kube_response_clear(&r);
  /* merge patch: null deletes, maps merge */
  assert_int_equal(call(&ops, KUBE_PATCH, "v1", "ConfigMap", "configmaps", "ns", "c",
                        "{\"data\":{\"a\":null,\"c\":\"3\"}}", &r),
                   KUBE_STATUS_OK);
  kube_response_clear(&r);
  kv *o = kube_memcluster_get(mc, "v1", "ConfigMap", "ns", "c");
  check_json(kv_map_get_str(o, "data"), "{\"b\":\"2\",\"c\":\"3\"}");
  assert_string_equal(kv_str(kv_map_get_str(kv_map_get_str(o, "metadata"), "resourceVersion")),
                      "2");
  kv_unref(o);
  /* the same name in another namespace is another object */
  assert_int_equal(call(&ops, KUBE_GET, "v1", "ConfigMap", NULL, "other", "c", NULL, &r),
                   KUBE_STATUS_NOT_FOUND);
  kube_response_clear(&r);
  assert_int_equal(call(&ops, KUBE_DELETE, "v1", "ConfigMap", NULL, "ns", "c", NULL, &r),
                   KUBE_STATUS_OK);
  kube_response_clear(&r);
  assert_int_equal(call(&ops, KUBE_DELETE, "v1", "ConfigMap", NULL, "ns", "c", NULL, &r),
                   KUBE_STATUS_NOT_FOUND);
  kube_response_clear(&r);
  assert_int_equal(call(&ops, KUBE_PATCH, "v1", "ConfigMap", NULL, "ns", "c", "{}", &r),
                   KUBE_STATUS_NOT_FOUND);
  kube_response_clear(&r);
  kv *j = kube_memcluster_take_journal(mc);
  assert_int_equal(kv_len(j), 6); /* every write, answered ok or not */
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(j, 0), "verb")), "create");
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(j, 1), "status")), "conflict");
  assert_string_equal(kv_str(kv_map_get_str(kv_list_at(j, 3), "verb")), "delete");
  kv_unref(j);
  j = kube_memcluster_take_journal(mc);
  assert_int_equal(kv_len(j), 0);
  kv_unref(j);
  kube_memcluster_free(mc);
}

static void test_generation_and_seed(void **s) {
  (void)s;
  kube_memcluster *mc = kube_memcluster_new();
  kube_ops ops = kube_memcluster_ops(mc);
  char err[128];
  kv *bad = json("{\"kind\":\"X\"}");
  assert_int_equal(kube_memcluster_put(mc, bad, err, sizeof err), -1);
  kv_unref(bad);
  kv *seed = json("{\"apiVersion\":\"apps/"
                  "v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
                  "\"d\",\"namespace\":\"n\",\"generation\":4},\"spec\":{\"replicas\":1}}");
  assert_int_equal(kube_memcluster_put(mc, seed, err, sizeof err), 0);
  kv_unref(seed);
  kube_response r;
  assert_int_equal(call(&ops, KUBE_PATCH, "apps/v1", "Deployment", NULL, "n", "d",
                        "{\"metadata\":{\"labels\":{\"a\":\"b\"}}}", &r),
                   KUBE_STATUS_OK);
  assert_int_equal(kv_map_get_str(kv_map_get_str(r.object, "metadata"), "generation")->u.i, 4);
  kube_response_clear(&r);
  assert_int_equal(call(&ops, KUBE_PATCH, "apps/v1", "Deployment", NULL, "n", "d",
                        "{\"spec\":{\"replicas\":3}}", &r),
                   KUBE_STATUS_OK);
  assert_int_equal(kv_map_get_str(kv_map_get_str(r.object, "metadata"), "generation")->u.i, 5);
  kube_response_clear(&r);
  kv *all = kube_memcluster_objects(mc);
  assert_int_equal(kv_len(all), 1);
  kv_unref(all);
  kv *patch = json("{\"status\":{\"ok\":true}}");
  assert_int_equal(
      kube_memcluster_merge_patch(mc, "apps/v1", "Deployment", "n", "d", patch, err, sizeof err),
      0);
  assert_int_equal(
      kube_memcluster_merge_patch(mc, "apps/v1", "Deployment", "n", "zz", patch, err, sizeof err),
      -1);
  kv_unref(patch);
  kv *o = kube_memcluster_get(mc, "apps/v1", "Deployment", "n", "d");
  assert_true(kv_map_get_str(kv_map_get_str(o, "status"), "ok")->u.b);
  kv_unref(o);
  kube_memcluster_free(mc);
}

static void test_plurals(void **s) {
  (void)s;
  kube_memcluster *mc = kube_memcluster_new();
  kube_ops ops = kube_memcluster_ops(mc);
  kube_response r;
  call(&ops, KUBE_GET, "ex.com/v1", "Bucket", NULL, "n", "b", NULL, &r);
  assert_string_equal(r.plural, "buckets"); /* lenient default */
  kube_response_clear(&r);
  kube_memcluster_set_strict_kinds(mc, true);
  assert_int_equal(call(&ops, KUBE_GET, "ex.com/v1", "Bucket", NULL, "n", "b", NULL, &r),
                   KUBE_STATUS_KIND_UNKNOWN);
  kube_response_clear(&r);
  /* a plural in the request needs no discovery */
  assert_int_equal(call(&ops, KUBE_GET, "ex.com/v1", "Bucket", "buckets", "n", "b", NULL, &r),
                   KUBE_STATUS_NOT_FOUND);
  kube_response_clear(&r);
  char err[128];
  kv *crd = json("{\"apiVersion\":\"apiextensions.k8s.io/"
                 "v1\",\"kind\":\"CustomResourceDefinition\","
                 "\"metadata\":{\"name\":\"geese.ex.com\"},\"spec\":{\"group\":\"ex.com\","
                 "\"scope\":\"Namespaced\",\"names\":{\"kind\":\"Goose\",\"plural\":"
                 "\"geese\"},"
                 "\"versions\":[{\"name\":\"v1\"},{\"name\":\"v2\"}]}}");
  assert_int_equal(kube_memcluster_put(mc, crd, err, sizeof err), 0);
  kv_unref(crd);
  assert_int_equal(call(&ops, KUBE_GET, "ex.com/v2", "Goose", NULL, "n", "g", NULL, &r),
                   KUBE_STATUS_NOT_FOUND);
  assert_string_equal(r.plural, "geese");
  kube_response_clear(&r);
  kube_memcluster_free(mc);

  const char *p;
  bool ns;
  assert_true(kube_builtin_type("rbac.authorization.k8s.io/v1", "ClusterRole", &p, &ns));
  assert_string_equal(p, "clusterroles");
  assert_false(ns);
  assert_true(kube_builtin_type("v1", "ServiceAccount", &p, &ns));
  assert_true(ns);
  assert_false(kube_builtin_type("ex.com/v1", "ServiceAccount", &p, &ns));
  char *q = kube_plural_query("v1", "Pod");
  assert_string_equal(q, "Pod");
  free(q);
  q = kube_plural_query("storage.example.com/v1", "Bucket");
  assert_string_equal(q, "Bucket.storage.example.com/v1");
  free(q);
}

static void test_merge_patch(void **s) {
  (void)s;
  struct {
    const char *t, *p, *want;
  } cases[] = {
      /* RFC 7386 appendix A */
      {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
      {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
      {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
      {"{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
      {"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
      {"{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
      {"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}"},
      {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
      {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
      {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},
      {"{\"a\":\"foo\"}", "null", "null"},
      {"{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
      {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
      {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    kv *t = json(cases[i].t), *p = json(cases[i].p);
    kv *r = kube_merge_patch(t, p);
    check_json(r, cases[i].want);
    kv_unref(r);
    kv_unref(t);
    kv_unref(p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crud),
      cmocka_unit_test(test_generation_and_seed),
      cmocka_unit_test(test_plurals),
      cmocka_unit_test(test_merge_patch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
