/*
 * tests/kube/test_kube_client.c: every client operation (koreo/kube.h)
 * against koreo-kubesim over HTTPS, with the kubeconfig kubesim writes:
 * discovery (built-in kinds and a CRD served at once), get/list (label and
 * field selectors, pagination), create, update with optimistic concurrency
 * (409 Conflict), merge/JSON/strategic patch, server-side apply, delete
 * (preconditions, finalizers, propagation), the status subresource, typed
 * errors (NotFound, AlreadyExists, Invalid with field causes, Unauthorized),
 * watches (events, resume across a dropped stream and across a kubesim
 * restart, 410 re-list after compaction), 429 + Retry-After and injected
 * faults (latency, 5xx), and many requests and watches on one loop.
 *
 * The kubesim binary comes as argv[1] (CTest passes it) or $KOREO_KUBESIM.
 * Each test group starts its own kubesim on a free loopback port and stops
 * it; every kubesim also gets --exit-after so none outlives a crashed test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above */
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "koreo/json.h"
#include "koreo/kube.h"
#include "kubesim_harness.h"

static const char *kubesim_bin;
static ksim sim;
static struct event_base *base;
static kube_client *cli;

static const char *const SIM_ARGS[] = {"--exit-after", "240", "--bookmark-interval", "1", NULL};

/* ---- helpers --------------------------------------------------------------- */

static kv *J(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static kv *J(const char *fmt, ...) {
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  assert_true(n >= 0);
  kv_parse_error pe;
  kv *v = kv_json_parse(s, (size_t)n, &pe);
  if (!v) fail_msg("bad test JSON (%s): %s", pe.msg, s);
  free(s);
  return v;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kube_client *open_client(const kube_client_options *o) {
  kube_config *cfg = NULL;
  kube_error e = {0};
  if (kube_config_load_kubeconfig(sim.kubeconfig, NULL, &cfg, &e) != 0)
    fail_msg("kubeconfig: %s", e.message);
  kube_client_options def = {.backoff_min_ms = 50, .backoff_max_ms = 400};
  kube_client *c = kube_client_new(base, cfg, o ? o : &def, &e);
  kube_config_free(cfg);
  if (!c) fail_msg("client: %s", e.message);
  return c;
}

static int group_setup(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  if (ksim_start(&sim, kubesim_bin, true, SIM_ARGS) != 0) return -1;
  base = event_base_new();
  cli = open_client(NULL);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  kube_client_free(cli);
  if (base) event_base_free(base);
  ksim_stop(&sim, getenv("KOREO_KUBESIM_LOG") != NULL);
  return 0;
}

#define NEED_KUBESIM()                                                                             \
  do {                                                                                             \
    if (!kubesim_bin) {                                                                            \
      fprintf(stderr, "koreo-kubesim not built: pass it as argv[1] or KOREO_KUBESIM\n");           \
      skip();                                                                                      \
    }                                                                                              \
  } while (0)

/* Send and expect `want` (KUBE_OK or an error code); returns the object
 * (new reference, may be NULL). */
static kv *expect(kube_client *c, const kube_req *q, kube_err_code want, const char *what) {
  kube_result r;
  kube_send_sync(c, q, &r);
  if (r.err.code != want)
    fail_msg("%s: got %s (%d: %s), want %s", what, kube_err_name(r.err.code), r.http_status,
             r.err.message, kube_err_name(want));
  kv *o = r.object;
  r.object = NULL;
  kube_result_clear(&r);
  return o;
}

static void create_ns(const char *name) {
  kv *ns = J("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", name);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = ns}, KUBE_OK, "create ns"));
  kv_unref(ns);
}

static kv *cm(const char *ns, const char *name, const char *labels_json, const char *data_json) {
  return J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
           "\"namespace\":\"%s\",\"labels\":%s},\"data\":%s}",
           name, ns, labels_json ? labels_json : "{}", data_json ? data_json : "{}");
}

static const char *str_at(const kv *obj, const char *a, const char *b) {
  kv *x = obj ? kv_map_get_str(obj, a) : NULL;
  if (x && b) x = kv_kind_of(x) == KV_MAP ? kv_map_get_str(x, b) : NULL;
  return x && kv_kind_of(x) == KV_STRING ? kv_str(x) : NULL;
}

static void set_faults(const char *json) {
  kv *f = J("%s", json);
  kube_result r;
  if (kube_send_raw_sync(cli, "PUT", "/kubesim/faults", f, &r) != 0)
    fail_msg("set faults %s: %s", json, r.err.message);
  kube_result_clear(&r);
  kv_unref(f);
}

/* After each test: no fault stays set for the next one. */
static void stop_live_watches(void);
static int reset_faults(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  stop_live_watches();
  kv *f = J("{\"errorRate\":0,\"latencyMs\":0,\"dropWatchAfterMs\":0}");
  kube_result r;
  int rc = kube_send_raw_sync(cli, "PUT", "/kubesim/faults", f, &r);
  kube_result_clear(&r);
  kv_unref(f);
  return rc;
}

static void run_for(int ms) {
  bool never = false;
  kube_client_run_until(cli, &never, ms);
}

/* ---- discovery ----------------------------------------------------------- */

typedef struct resolved {
  bool done;
  char plural[64];
} resolved;

static void resolve_cb(void *ud, kube_result *r) {
  resolved *rs = ud;
  rs->done = true;
  snprintf(rs->plural, sizeof rs->plural, "%s", r->resource ? r->resource->resource : "");
}

static void test_discovery(void **state) {
  (void)state;
  NEED_KUBESIM();
  kube_result r;
  assert_int_equal(kube_send_raw_sync(cli, "GET", "/version", NULL, &r), 0);
  assert_string_equal(str_at(r.object, "major", NULL), "1");
  kube_result_clear(&r);
  struct {
    const char *av, *kind, *plural;
    bool namespaced, status, scale;
  } want[] = {
      {"v1", "Namespace", "namespaces", false, true, false},
      {"v1", "ConfigMap", "configmaps", true, false, false},
      {"v1", "Secret", "secrets", true, false, false},
      {"apps/v1", "Deployment", "deployments", true, true, true},
      {"apps/v1", "StatefulSet", "statefulsets", true, true, true},
      {"batch/v1", "Job", "jobs", true, true, false},
      {"apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", false,
       true, false},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    kube_result res = {0};
    assert_int_equal(kube_send_sync(cli,
                                    &(kube_req){.op = KUBE_OP_LIST,
                                                .api_version = want[i].av,
                                                .kind = want[i].kind,
                                                .limit = 1},
                                    &res),
                     0);
    const kube_resource_info *ri = res.resource;
    assert_non_null(ri);
    if (strcmp(ri->resource, want[i].plural) != 0 || ri->namespaced != want[i].namespaced ||
        ri->has_status != want[i].status || ri->has_scale != want[i].scale)
      fail_msg("%s/%s: got %s namespaced=%d status=%d scale=%d", want[i].av, want[i].kind,
               ri->resource, ri->namespaced, ri->has_status, ri->has_scale);
    assert_true(ri->verbs & KUBE_VERB_WATCH);
    kube_result_clear(&res);
  }
  uint64_t d0 = kube_client_get_stats(cli).discoveries;
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_GET,
                              .api_version = "apps/v1",
                              .kind = "Deployment",
                              .namespace_ = "default",
                              .name = "none"},
                  KUBE_ERR_NOT_FOUND, "get missing deployment"));
  assert_int_equal(kube_client_get_stats(cli).discoveries, d0); /* cached */
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_GET, .api_version = "v1", .kind = "Gizmo", .name = "x"},
                  KUBE_ERR_NO_KIND, "unknown kind"));
  /* kube_resolve answers from the cache */
  resolved rs = {0};
  assert_int_equal(kube_resolve(cli, "batch/v1", "Job", resolve_cb, &rs), 0);
  kube_client_run_until(cli, &rs.done, 5000);
  assert_true(rs.done);
  assert_string_equal(rs.plural, "jobs");
}

static const char *CRD =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"widgets.test.koreo.dev\"},"
    "\"spec\":{\"group\":\"test.koreo.dev\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\","
    "\"listKind\":\"WidgetList\"},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{}},"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
    "\"size\":{\"type\":\"integer\",\"minimum\":1},"
    "\"color\":{\"type\":\"string\",\"default\":\"blue\"}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{\"ready\":{\"type\":\"boolean\"}}}}}}}]}}";

static void test_crd_and_invalid(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("crd-test");
  /* the kind is unknown first ... */
  kv *w = J("{\"apiVersion\":\"test.koreo.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":"
            "\"w1\",\"namespace\":\"crd-test\"},\"spec\":{\"size\":3}}");
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = w}, KUBE_ERR_NO_KIND,
                  "widget before its CRD"));
  /* ... and served at once after the CRD is created (discovery refreshed on
   * the miss) */
  kv *crd = J("%s", CRD);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = crd}, KUBE_OK, "create CRD"));
  kv_unref(crd);
  kv *got = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = w}, KUBE_OK, "create widget");
  assert_string_equal(str_at(kv_map_get_str(got, "spec"), "color", NULL), "blue"); /* default */
  kv_unref(got);
  kv_unref(w);
  /* Invalid with field causes */
  w = J("{\"apiVersion\":\"test.koreo.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":"
        "\"bad\",\"namespace\":\"crd-test\"},\"spec\":{\"size\":\"big\"}}");
  kube_result r;
  assert_int_equal(kube_send_sync(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = w}, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_INVALID);
  assert_int_equal(r.http_status, 422);
  assert_true(r.err.n_causes >= 1);
  bool found = false;
  for (size_t i = 0; i < r.err.n_causes; i++)
    if (r.err.causes[i].field && strstr(r.err.causes[i].field, "spec.size")) found = true;
  if (!found) fail_msg("no cause names spec.size: %s", r.err.message);
  kube_result_clear(&r);
  kv_unref(w);
  /* status subresource of the custom resource */
  kv *st = J("{\"status\":{\"ready\":true},\"spec\":{\"size\":99}}");
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_PATCH_MERGE,
                           .api_version = "test.koreo.dev/v1",
                           .kind = "Widget",
                           .namespace_ = "crd-test",
                           .name = "w1",
                           .subresource = "status",
                           .body = st},
               KUBE_OK, "patch widget status");
  kv_unref(st);
  kv *spec = kv_map_get_str(got, "spec");
  assert_int_equal(kv_map_get_str(spec, "size")->u.i, 3); /* spec unchanged via status */
  assert_true(kv_map_get_str(kv_map_get_str(got, "status"), "ready")->u.b);
  kv_unref(got);
}

/* ---- CRUD ------------------------------------------------------------------ */

static void test_create_get_list(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("crud");
  kv *o = cm("crud", "a", "{\"app\":\"web\",\"tier\":\"front\"}", "{\"k\":\"v\"}");
  kv *got = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o, .field_manager = "koreo"},
                   KUBE_OK, "create a");
  assert_non_null(kube_obj_meta(got, "uid"));
  assert_non_null(kube_obj_meta(got, "resourceVersion"));
  assert_non_null(kube_obj_meta(got, "creationTimestamp"));
  kv_unref(got);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_ERR_ALREADY_EXISTS,
                  "create a again"));
  kv_unref(o);
  o = cm("crud", "b", "{\"app\":\"web\",\"tier\":\"back\"}", NULL);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create b"));
  kv_unref(o);
  o = cm("crud", "c", "{\"app\":\"db\"}", NULL);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create c"));
  kv_unref(o);
  /* a namespace that does not exist */
  o = cm("nowhere", "x", NULL, NULL);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_ERR_NOT_FOUND,
                  "create in a missing namespace"));
  kv_unref(o);
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_GET,
                           .api_version = "v1",
                           .kind = "ConfigMap",
                           .namespace_ = "crud",
                           .name = "a"},
               KUBE_OK, "get a");
  assert_string_equal(str_at(got, "data", "k"), "v");
  kv_unref(got);
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_GET,
                              .api_version = "v1",
                              .kind = "ConfigMap",
                              .namespace_ = "crud",
                              .name = "zzz"},
                  KUBE_ERR_NOT_FOUND, "get missing"));
  /* label selectors */
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_LIST,
                           .api_version = "v1",
                           .kind = "ConfigMap",
                           .namespace_ = "crud",
                           .label_selector = "app=web,tier!=back"},
               KUBE_OK, "list app=web,tier!=back");
  kv *items = kv_map_get_str(got, "items");
  assert_int_equal(kv_len(items), 1);
  assert_string_equal(kube_obj_meta(kv_list_at(items, 0), "name"), "a");
  kv_unref(got);
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_LIST,
                           .api_version = "v1",
                           .kind = "ConfigMap",
                           .namespace_ = "crud",
                           .label_selector = "app in (web,db)"},
               KUBE_OK, "list app in (web,db)");
  assert_int_equal(kv_len(kv_map_get_str(got, "items")), 3);
  kv_unref(got);
  /* field selector */
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_LIST,
                           .api_version = "v1",
                           .kind = "ConfigMap",
                           .field_selector = "metadata.name=b,metadata.namespace=crud"},
               KUBE_OK, "list by field");
  items = kv_map_get_str(got, "items");
  assert_int_equal(kv_len(items), 1);
  assert_string_equal(kube_obj_meta(kv_list_at(items, 0), "name"), "b");
  kv_unref(got);
  /* pagination: one page of one item carries a continue token */
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_LIST,
                           .api_version = "v1",
                           .kind = "ConfigMap",
                           .namespace_ = "crud",
                           .limit = 1},
               KUBE_OK, "list limit=1");
  assert_int_equal(kv_len(kv_map_get_str(got, "items")), 1);
  const char *cont = kube_obj_meta(got, "continue");
  assert_non_null(cont);
  kv *page2 = expect(cli,
                     &(kube_req){.op = KUBE_OP_LIST,
                                 .api_version = "v1",
                                 .kind = "ConfigMap",
                                 .namespace_ = "crud",
                                 .limit = 1,
                                 .continue_token = cont},
                     KUBE_OK, "list page 2");
  assert_int_equal(kv_len(kv_map_get_str(page2, "items")), 1);
  assert_string_not_equal(kube_obj_meta(kv_list_at(kv_map_get_str(page2, "items"), 0), "name"),
                          kube_obj_meta(kv_list_at(kv_map_get_str(got, "items"), 0), "name"));
  kv_unref(page2);
  kv_unref(got);
  /* every page, followed by the client */
  kube_result r;
  assert_int_equal(
      kube_list_all_sync(
          cli,
          &(kube_req){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "crud", .limit = 1},
          &r),
      0);
  items = kv_map_get_str(r.object, "items");
  assert_int_equal(kv_len(items), 3);
  assert_null(kube_obj_meta(r.object, "continue"));
  assert_non_null(kube_obj_meta(r.object, "resourceVersion"));
  kube_result_clear(&r);
}

static void test_update_conflict_and_patches(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("upd");
  kv *o = cm("upd", "u", "{\"a\":\"1\"}", "{\"x\":\"1\",\"y\":\"2\"}");
  kv *v1 = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create");
  kv_unref(o);
  const char *rv1 = kube_obj_meta(v1, "resourceVersion");
  /* update with the current resourceVersion */
  o = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"u\","
        "\"namespace\":\"upd\",\"resourceVersion\":\"%s\"},\"data\":{\"x\":\"10\"}}",
        rv1);
  kv *v2 = expect(cli, &(kube_req){.op = KUBE_OP_UPDATE, .body = o}, KUBE_OK, "update");
  assert_string_equal(str_at(v2, "data", "x"), "10");
  assert_string_not_equal(kube_obj_meta(v2, "resourceVersion"), rv1);
  /* the same update again is stale: 409 Conflict */
  kube_result r;
  assert_int_equal(kube_send_sync(cli, &(kube_req){.op = KUBE_OP_UPDATE, .body = o}, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_CONFLICT);
  assert_int_equal(r.http_status, 409);
  assert_non_null(strstr(r.err.message, "modified"));
  kube_result_clear(&r);
  kv_unref(o);
  kv_unref(v1);
  kv_unref(v2);
  kube_req base_q = {.api_version = "v1", .kind = "ConfigMap", .namespace_ = "upd", .name = "u"};
  /* merge patch: null removes */
  kube_req q = base_q;
  q.op = KUBE_OP_PATCH_MERGE;
  q.body = J("{\"data\":{\"x\":null,\"m\":\"merge\"}}");
  kv *got = expect(cli, &q, KUBE_OK, "merge patch");
  assert_null(str_at(got, "data", "x"));
  assert_string_equal(str_at(got, "data", "m"), "merge");
  kv_unref((kv *)q.body);
  kv_unref(got);
  /* JSON patch, with a failing test op */
  q.op = KUBE_OP_PATCH_JSON;
  q.body = J("[{\"op\":\"add\",\"path\":\"/data/j\",\"value\":\"json\"},"
             "{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"a\":\"2\"}}]");
  got = expect(cli, &q, KUBE_OK, "json patch");
  assert_string_equal(str_at(got, "data", "j"), "json");
  assert_string_equal(str_at(kv_map_get_str(got, "metadata"), "labels", "a"), "2");
  kv_unref((kv *)q.body);
  kv_unref(got);
  q.body = J("[{\"op\":\"test\",\"path\":\"/data/j\",\"value\":\"other\"}]");
  kube_send_sync(cli, &q, &r);
  assert_true(r.err.code == KUBE_ERR_INVALID || r.err.code == KUBE_ERR_CONFLICT ||
              r.err.code == KUBE_ERR_BAD_REQUEST);
  kube_result_clear(&r);
  kv_unref((kv *)q.body);
  /* strategic merge patch */
  q.op = KUBE_OP_PATCH_STRATEGIC;
  q.body = J("{\"data\":{\"s\":\"strategic\"}}");
  got = expect(cli, &q, KUBE_OK, "strategic patch");
  assert_string_equal(str_at(got, "data", "s"), "strategic");
  assert_string_equal(str_at(got, "data", "j"), "json");
  kv_unref((kv *)q.body);
  kv_unref(got);
  /* patch of a missing object */
  q.op = KUBE_OP_PATCH_MERGE;
  q.name = "missing";
  q.body = J("{\"data\":{}}");
  kv_unref(expect(cli, &q, KUBE_ERR_NOT_FOUND, "patch missing"));
  kv_unref((kv *)q.body);
  /* server-side apply: creates, then changes, with the field manager */
  kv *ap = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"applied\","
             "\"namespace\":\"upd\"},\"data\":{\"a\":\"1\"}}");
  got = expect(cli, &(kube_req){.op = KUBE_OP_APPLY, .body = ap, .field_manager = "koreo-test"},
               KUBE_OK, "apply create");
  assert_string_equal(str_at(got, "data", "a"), "1");
  kv *mf = kv_map_get_str(kv_map_get_str(got, "metadata"), "managedFields");
  assert_non_null(mf);
  bool mine = false;
  for (size_t i = 0; i < kv_len(mf); i++)
    if (str_at(kv_list_at(mf, i), "manager", NULL) &&
        strcmp(str_at(kv_list_at(mf, i), "manager", NULL), "koreo-test") == 0)
      mine = true;
  assert_true(mine);
  kv_unref(got);
  kv_unref(ap);
  ap = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"applied\","
         "\"namespace\":\"upd\"},\"data\":{\"a\":\"2\",\"b\":\"3\"}}");
  got = expect(
      cli,
      &(kube_req){.op = KUBE_OP_APPLY, .body = ap, .field_manager = "koreo-test", .force = true},
      KUBE_OK, "apply change");
  assert_string_equal(str_at(got, "data", "a"), "2");
  assert_string_equal(str_at(got, "data", "b"), "3");
  kv_unref(got);
  kv_unref(ap);
  /* dry run changes nothing */
  ap = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"dry\","
         "\"namespace\":\"upd\"}}");
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = ap, .dry_run = true}, KUBE_OK,
                  "dry-run create"));
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_GET,
                              .api_version = "v1",
                              .kind = "ConfigMap",
                              .namespace_ = "upd",
                              .name = "dry"},
                  KUBE_ERR_NOT_FOUND, "dry-run object absent"));
  kv_unref(ap);
}

static void test_status_subresource_and_generation(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("st");
  kv *d = J("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
            "\"namespace\":\"st\"},\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{"
            "\"app\":\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},"
            "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]}}}}");
  kv *got = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = d}, KUBE_OK, "create deploy");
  kv_unref(d);
  kv *gen = kv_map_get_str(kv_map_get_str(got, "metadata"), "generation");
  assert_int_equal(gen->u.i, 1);
  kv_unref(got);
  kube_req q = {.op = KUBE_OP_PATCH_MERGE,
                .api_version = "apps/v1",
                .kind = "Deployment",
                .namespace_ = "st",
                .name = "web",
                .subresource = "status"};
  q.body = J("{\"status\":{\"readyReplicas\":2},\"spec\":{\"replicas\":9}}");
  got = expect(cli, &q, KUBE_OK, "status patch");
  kv_unref((kv *)q.body);
  assert_int_equal(kv_map_get_str(kv_map_get_str(got, "spec"), "replicas")->u.i, 2);
  assert_int_equal(kv_map_get_str(kv_map_get_str(got, "status"), "readyReplicas")->u.i, 2);
  assert_int_equal(kv_map_get_str(kv_map_get_str(got, "metadata"), "generation")->u.i, 1);
  kv_unref(got);
  /* a spec change through the main resource bumps generation and keeps status */
  q.subresource = NULL;
  q.body = J("{\"spec\":{\"replicas\":3},\"status\":{\"readyReplicas\":0}}");
  got = expect(cli, &q, KUBE_OK, "spec patch");
  kv_unref((kv *)q.body);
  assert_int_equal(kv_map_get_str(kv_map_get_str(got, "metadata"), "generation")->u.i, 2);
  assert_int_equal(kv_map_get_str(kv_map_get_str(got, "status"), "readyReplicas")->u.i, 2);
  kv_unref(got);
  /* scale subresource */
  got = expect(cli,
               &(kube_req){.op = KUBE_OP_GET,
                           .api_version = "apps/v1",
                           .kind = "Deployment",
                           .namespace_ = "st",
                           .name = "web",
                           .subresource = "scale"},
               KUBE_OK, "get scale");
  assert_string_equal(str_at(got, "kind", NULL), "Scale");
  assert_int_equal(kv_map_get_str(kv_map_get_str(got, "spec"), "replicas")->u.i, 3);
  kv_unref(got);
}

static void test_delete(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("del");
  kv *o = cm("del", "p", NULL, NULL);
  kv *got = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create");
  kv_unref(o);
  kube_req q = {.op = KUBE_OP_DELETE,
                .api_version = "v1",
                .kind = "ConfigMap",
                .namespace_ = "del",
                .name = "p",
                .precondition_uid = "not-the-uid"};
  kv_unref(expect(cli, &q, KUBE_ERR_CONFLICT, "delete with a wrong uid precondition"));
  q.precondition_uid = kube_obj_meta(got, "uid");
  q.propagation_policy = "Background";
  kv_unref(expect(cli, &q, KUBE_OK, "delete with the right uid"));
  kv_unref(expect(cli, &q, KUBE_ERR_NOT_FOUND, "delete again"));
  kv_unref(got);
  /* a finalizer holds the object with a deletionTimestamp */
  o = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"f\","
        "\"namespace\":\"del\",\"finalizers\":[\"koreo.dev/test\"]}}");
  got = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create f");
  kv_unref(o);
  kube_req dq = {.op = KUBE_OP_DELETE,
                 .api_version = "v1",
                 .kind = "ConfigMap",
                 .namespace_ = "del",
                 .name = "f"};
  kv_unref(expect(cli, &dq, KUBE_OK, "delete f"));
  kv *held = expect(cli,
                    &(kube_req){.op = KUBE_OP_GET,
                                .api_version = "v1",
                                .kind = "ConfigMap",
                                .namespace_ = "del",
                                .name = "f"},
                    KUBE_OK, "get f while finalizing");
  assert_non_null(kube_obj_meta(held, "deletionTimestamp"));
  kv_unref(held);
  kv_unref(got);
  kube_req pq = {.op = KUBE_OP_PATCH_MERGE,
                 .api_version = "v1",
                 .kind = "ConfigMap",
                 .namespace_ = "del",
                 .name = "f"};
  pq.body = J("{\"metadata\":{\"finalizers\":null}}");
  kv_unref(expect(cli, &pq, KUBE_OK, "remove the finalizer"));
  kv_unref((kv *)pq.body);
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_GET,
                              .api_version = "v1",
                              .kind = "ConfigMap",
                              .namespace_ = "del",
                              .name = "f"},
                  KUBE_ERR_NOT_FOUND, "f gone after its finalizer"));
  /* dependents through ownerReferences, foreground */
  o = cm("del", "owner", NULL, NULL);
  got = expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create owner");
  kv_unref(o);
  o = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"dep\","
        "\"namespace\":\"del\",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":"
        "\"ConfigMap\",\"name\":\"owner\",\"uid\":\"%s\"}]}}",
        kube_obj_meta(got, "uid"));
  kv_unref(got);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create dependent"));
  kv_unref(o);
  dq.name = "owner";
  dq.propagation_policy = "Foreground";
  kv_unref(expect(cli, &dq, KUBE_OK, "delete owner (foreground)"));
  bool gone = false;
  for (int i = 0; i < 40 && !gone; i++) {
    kube_result r;
    kube_send_sync(cli,
                   &(kube_req){.op = KUBE_OP_GET,
                               .api_version = "v1",
                               .kind = "ConfigMap",
                               .namespace_ = "del",
                               .name = "dep"},
                   &r);
    gone = r.err.code == KUBE_ERR_NOT_FOUND;
    kube_result_clear(&r);
    if (!gone) run_for(50);
  }
  assert_true(gone);
}

static void test_auth_and_tls(void **state) {
  (void)state;
  NEED_KUBESIM();
  kube_config *cfg = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_kubeconfig(sim.kubeconfig, NULL, &cfg, &e), 0);
  /* a wrong token */
  free(cfg->token);
  cfg->token = strdup("wrong");
  kube_client *c = kube_client_new(base, cfg, NULL, &e);
  assert_non_null(c);
  kv_unref(expect(
      c,
      &(kube_req){.op = KUBE_OP_GET, .api_version = "v1", .kind = "Namespace", .name = "default"},
      KUBE_ERR_UNAUTHORIZED, "wrong token"));
  kube_client_free(c);
  /* no CA: the server's self-signed certificate is refused */
  free(cfg->token);
  cfg->token = NULL;
  kube_config *good = NULL;
  assert_int_equal(kube_config_load_kubeconfig(sim.kubeconfig, NULL, &good, &e), 0);
  cfg->token = strdup(good->token);
  free(cfg->ca_pem);
  cfg->ca_pem = NULL;
  cfg->ca_len = 0;
  c = kube_client_new(base, cfg, &(kube_client_options){.max_retries = -1}, &e);
  kube_result r;
  assert_int_equal(kube_send_raw_sync(c, "GET", "/version", NULL, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_TRANSPORT);
  kube_result_clear(&r);
  kube_client_free(c);
  /* insecure-skip-tls-verify accepts it */
  cfg->insecure = true;
  c = kube_client_new(base, cfg, NULL, &e);
  assert_int_equal(kube_send_raw_sync(c, "GET", "/version", NULL, &r), 0);
  kube_result_clear(&r);
  kube_client_free(c);
  /* tls-server-name: connect to 127.0.0.1, verify the name the certificate
   * carries (kubesim's certificate names localhost) */
  cfg->insecure = false;
  cfg->ca_pem = good->ca_pem;
  cfg->ca_len = good->ca_len;
  good->ca_pem = NULL;
  cfg->tls_server_name = strdup("localhost");
  c = kube_client_new(base, cfg, NULL, &e);
  assert_int_equal(kube_send_raw_sync(c, "GET", "/version", NULL, &r), 0);
  kube_result_clear(&r);
  kube_client_free(c);
  kube_config_free(good);
  kube_config_free(cfg);
}

/* ---- watches ------------------------------------------------------------- */

typedef struct wrec {
  int added, modified, deleted, bookmarks, synced, errors;
  int from_list;
  char names[256][32];
  int types[256];
  int n;
  kube_err_code last_err;
} wrec;

static void wrec_cb(void *ud, const kube_watch_event *ev) {
  wrec *w = ud;
  switch (ev->type) {
  case KUBE_WATCH_ADDED: w->added++; break;
  case KUBE_WATCH_MODIFIED: w->modified++; break;
  case KUBE_WATCH_DELETED: w->deleted++; break;
  case KUBE_WATCH_BOOKMARK: w->bookmarks++; break;
  case KUBE_WATCH_SYNCED: w->synced++; break;
  case KUBE_WATCH_ERROR:
    w->errors++;
    w->last_err = ev->err->code;
    break;
  }
  if (ev->from_list && ev->type != KUBE_WATCH_SYNCED) w->from_list++;
  if (ev->object && ev->type != KUBE_WATCH_BOOKMARK && w->n < 256) {
    const char *nm = kube_obj_meta(ev->object, "name");
    snprintf(w->names[w->n], sizeof w->names[0], "%s", nm ? nm : "");
    w->types[w->n++] = ev->type;
  }
}

/* Watches a test started, stopped by the per-test teardown when a failed
 * assertion left them running (their records live on the test's stack). */
static kube_watch *live[16];

static kube_watch *start_watch(const kube_watch_opts *o, wrec *rec) {
  kube_error e = {0};
  kube_watch *w = kube_watch_start(cli, o, wrec_cb, rec, &e);
  if (!w) fail_msg("watch: %s", e.message);
  for (int i = 0; i < 16; i++)
    if (!live[i]) {
      live[i] = w;
      break;
    }
  return w;
}

static void stop_watch(kube_watch *w) {
  for (int i = 0; i < 16; i++)
    if (live[i] == w) live[i] = NULL;
  kube_watch_stop(w);
}

/* Run the loop until cond holds (at most ms). */
#define WAIT_FOR(cond, ms)                                                                         \
  do {                                                                                             \
    double t_end_ = now_s() + (ms) / 1000.0;                                                       \
    while (!(cond) && now_s() < t_end_)                                                            \
      run_for(20);                                                                                 \
    if (!(cond)) fail_msg("timed out waiting for " #cond);                                         \
  } while (0)

static void put_cm(const char *ns, const char *name) {
  kv *o = cm(ns, name, NULL, NULL);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create cm"));
  kv_unref(o);
}

static void test_watch_events(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("w1");
  put_cm("w1", "pre");
  wrec rec = {0};
  kube_watch *w = start_watch(
      &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "w1"}, &rec);
  assert_non_null(w);
  WAIT_FOR(rec.synced == 1, 5000);
  assert_int_equal(rec.added, 1); /* the pre-existing object, from the list */
  assert_int_equal(rec.from_list, 1);
  put_cm("w1", "new");
  WAIT_FOR(rec.added == 2, 5000);
  kube_req q = {.op = KUBE_OP_PATCH_MERGE,
                .api_version = "v1",
                .kind = "ConfigMap",
                .namespace_ = "w1",
                .name = "new"};
  q.body = J("{\"data\":{\"k\":\"v\"}}");
  kv_unref(expect(cli, &q, KUBE_OK, "patch"));
  kv_unref((kv *)q.body);
  WAIT_FOR(rec.modified == 1, 5000);
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_DELETE,
                              .api_version = "v1",
                              .kind = "ConfigMap",
                              .namespace_ = "w1",
                              .name = "pre"},
                  KUBE_OK, "delete"));
  WAIT_FOR(rec.deleted == 1, 5000);
  assert_string_equal(rec.names[rec.n - 1], "pre");
  assert_int_equal(kube_watch_count(w), 1);
  assert_string_equal(str_at(kube_watch_get(w, "w1", "new"), "data", "k"), "v");
  /* bookmarks arrive (kubesim sends one a second here) */
  WAIT_FOR(rec.bookmarks >= 1, 5000);
  /* other namespaces are not seen */
  create_ns("w1-other");
  put_cm("w1-other", "elsewhere");
  run_for(200);
  for (int i = 0; i < rec.n; i++)
    assert_string_not_equal(rec.names[i], "elsewhere");
  assert_int_equal(rec.errors, 0);
  stop_watch(w);
  /* a label-selected watch across all namespaces */
  wrec lr = {0};
  w = start_watch(
      &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .label_selector = "pick=yes"},
      &lr);
  WAIT_FOR(lr.synced == 1, 5000);
  assert_int_equal(lr.added, 0);
  kv *o = cm("w1-other", "picked", "{\"pick\":\"yes\"}", NULL);
  kv_unref(expect(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, KUBE_OK, "create picked"));
  kv_unref(o);
  put_cm("w1", "not-picked");
  WAIT_FOR(lr.added == 1, 5000);
  run_for(200);
  assert_int_equal(lr.added, 1);
  assert_string_equal(lr.names[0], "picked");
  stop_watch(w);
}

static void test_watch_resume_after_drop(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("w2");
  wrec rec = {0};
  kube_watch *w = start_watch(
      &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "w2"}, &rec);
  WAIT_FOR(rec.synced == 1, 5000);
  int connects = (int)kube_watch_get_stats(w).connects;
  /* kubesim drops every watch stream; objects created meanwhile are
   * delivered after the resume, exactly once, without a re-list */
  kube_result r;
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/kubesim/drop-watches", NULL, &r), 0);
  kube_result_clear(&r);
  for (int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "d%d", i);
    put_cm("w2", name);
  }
  WAIT_FOR(rec.added == 5, 5000);
  run_for(300);
  assert_int_equal(rec.added, 5);
  assert_int_equal(rec.from_list, 0);
  kube_watch_stats st = kube_watch_get_stats(w);
  assert_true((int)st.connects > connects);
  assert_int_equal(st.relists, 1);
  /* the same with streams cut by a fault every 300 ms while objects keep
   * coming */
  set_faults("{\"dropWatchAfterMs\":300}");
  /* the fault applies to streams started from now on */
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/kubesim/drop-watches", NULL, &r), 0);
  kube_result_clear(&r);
  for (int i = 0; i < 10; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%d", i);
    put_cm("w2", name);
    run_for(100);
  }
  WAIT_FOR(rec.added == 15, 5000);
  set_faults("{\"dropWatchAfterMs\":0}");
  run_for(200);
  assert_int_equal(rec.added, 15);
  assert_int_equal(kube_watch_count(w), 15);
  assert_true(kube_watch_get_stats(w).connects >= st.connects + 2);
  stop_watch(w);
}

static void test_watch_410_relist(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("w3");
  put_cm("w3", "keep");
  put_cm("w3", "doomed");
  /* a client whose watch waits at least a second before reconnecting after
   * a failure, so the changes below happen while it is away */
  kube_client *slow =
      open_client(&(kube_client_options){.backoff_min_ms = 2000, .backoff_max_ms = 3000});
  wrec rec = {0};
  kube_error e = {0};
  kube_watch *w = kube_watch_start(
      slow, &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "w3"},
      wrec_cb, &rec, &e);
  assert_non_null(w);
  bool never = false;
  for (int i = 0; i < 250 && rec.synced < 1; i++)
    kube_client_run_until(slow, &never, 20);
  assert_int_equal(rec.synced, 1);
  assert_int_equal(rec.added, 2);
  /* every request fails, the stream is dropped: the watch's reconnection
   * gets a 503 and backs off */
  set_faults("{\"errorRate\":1,\"errorCodes\":[503],\"retryAfterSeconds\":0}");
  kube_result r;
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/kubesim/drop-watches", NULL, &r), 0);
  kube_result_clear(&r);
  for (int i = 0; i < 250 && rec.last_err != KUBE_ERR_SERVICE_UNAVAILABLE; i++)
    kube_client_run_until(slow, &never, 20);
  assert_int_equal(rec.last_err, KUBE_ERR_SERVICE_UNAVAILABLE);
  set_faults("{\"errorRate\":0}");
  /* meanwhile: one object goes, one comes, and the history is compacted */
  kv_unref(expect(cli,
                  &(kube_req){.op = KUBE_OP_DELETE,
                              .api_version = "v1",
                              .kind = "ConfigMap",
                              .namespace_ = "w3",
                              .name = "doomed"},
                  KUBE_OK, "delete doomed"));
  put_cm("w3", "born");
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/kubesim/compact", NULL, &r), 0);
  kube_result_clear(&r);
  /* the resume point is too old now: 410, re-list, the difference */
  for (int i = 0; i < 400 && rec.synced < 2; i++)
    kube_client_run_until(slow, &never, 20);
  assert_int_equal(rec.synced, 2);
  kube_watch_stats st = kube_watch_get_stats(w);
  assert_true(st.gone >= 1);
  assert_int_equal(st.relists, 2);
  assert_int_equal(kube_watch_count(w), 2);
  assert_non_null(kube_watch_get(w, "w3", "born"));
  assert_null(kube_watch_get(w, "w3", "doomed"));
  assert_int_equal(rec.deleted, 1);
  assert_int_equal(rec.added, 3);
  assert_int_equal(rec.from_list, 4); /* 2 + born + doomed's deletion */
  kube_watch_stop(w);
  kube_client_free(slow);
  /* watching from an explicit, compacted resourceVersion is a 410 too */
  wrec old = {0};
  kube_watch *w2 = start_watch(
      &(kube_watch_opts){
          .api_version = "v1", .kind = "ConfigMap", .namespace_ = "w3", .resource_version = "1"},
      &old);
  WAIT_FOR(old.synced == 1, 5000);
  assert_int_equal(old.last_err, KUBE_ERR_GONE);
  assert_int_equal(old.added, 2);
  assert_int_equal(old.from_list, 2);
  stop_watch(w2);
}

static void test_watch_across_restart(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("w4");
  put_cm("w4", "before");
  /* reconnections wait at least a second: long enough for the changes
   * made below while the watch is away */
  kube_client *slow =
      open_client(&(kube_client_options){.backoff_min_ms = 2000, .backoff_max_ms = 3000});
  wrec rec = {0};
  kube_error e = {0};
  kube_watch *w = kube_watch_start(
      slow, &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "w4"},
      wrec_cb, &rec, &e);
  assert_non_null(w);
  bool never = false;
#define SLOW_WAIT(cond)                                                                            \
  for (int i_ = 0; i_ < 500 && !(cond); i_++)                                                      \
    kube_client_run_until(slow, &never, 20);                                                       \
  if (!(cond)) fail_msg("timed out waiting for " #cond)
  SLOW_WAIT(rec.synced == 1);
  /* a real process restart that keeps its state (the state file): the
   * watch resumes from where it was, without a re-list */
  assert_int_equal(ksim_restart(&sim, SIM_ARGS), 0);
  put_cm("w4", "after-restart");
  SLOW_WAIT(kube_watch_get(w, "w4", "after-restart") != NULL);
  assert_non_null(kube_watch_get(w, "w4", "before"));
  assert_true(kube_watch_get_stats(w).connects >= 2); /* a new stream */
  assert_int_equal(kube_watch_get_stats(w).relists, 1);
  assert_int_equal(rec.from_list, 1);
  /* kubesim's restart losing its state, with new objects and a compacted
   * history before the watch is back: the resume point is gone, the watch
   * re-lists and deletes what disappeared */
  kube_result r;
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/kubesim/restart?state=lose", NULL, &r), 0);
  kube_result_clear(&r);
  create_ns("w4");
  put_cm("w4", "fresh");
  assert_int_equal(kube_send_raw_sync(cli, "POST", "/kubesim/compact", NULL, &r), 0);
  kube_result_clear(&r);
  SLOW_WAIT(kube_watch_get(w, "w4", "fresh") != NULL && rec.synced == 2);
  assert_int_equal(kube_watch_count(w), 1);
  assert_null(kube_watch_get(w, "w4", "before"));
  assert_int_equal(rec.deleted, 2);
  assert_int_equal(kube_watch_get_stats(w).relists, 2);
#undef SLOW_WAIT
  kube_watch_stop(w);
  kube_client_free(slow);
}

static void stop_live_watches(void) {
  for (int i = 0; i < 16; i++)
    if (live[i]) {
      kube_watch_stop(live[i]);
      live[i] = NULL;
    }
}

/* ---- faults --------------------------------------------------------------- */

static void test_429_retry_after(void **state) {
  (void)state;
  NEED_KUBESIM();
  set_faults("{\"errorRate\":1,\"errorCodes\":[429],\"retryAfterSeconds\":1}");
  kube_client *c = open_client(&(kube_client_options){.max_retries = -1});
  kube_result r;
  kube_req q = {.op = KUBE_OP_GET, .api_version = "v1", .kind = "Namespace", .name = "default"};
  assert_int_equal(kube_send_sync(c, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_TOO_MANY_REQUESTS);
  assert_int_equal(r.http_status, 429);
  assert_true(r.err.retry_after == 1.0);
  kube_result_clear(&r);
  kube_client_free(c);
  /* with retries, 30% of the answers failing: every request succeeds, later
   * (a request fails only after 21 failures in a row: p = 0.3^21 ~ 1e-11) */
  set_faults("{\"errorRate\":0.3,\"errorCodes\":[429],\"retryAfterSeconds\":0}");
  c = open_client(
      &(kube_client_options){.max_retries = 20, .backoff_min_ms = 10, .backoff_max_ms = 50});
  for (int i = 0; i < 40; i++) {
    if (kube_send_sync(c, &q, &r) != 0) fail_msg("request %d: %s", i, r.err.message);
    kube_result_clear(&r);
  }
  assert_true(kube_client_get_stats(c).retries >= 3);
  kube_client_free(c);
  /* Retry-After is honoured in time */
  set_faults("{\"errorRate\":1,\"errorCodes\":[429],\"retryAfterSeconds\":1}");
  c = open_client(&(kube_client_options){.max_retries = 1});
  double t0 = now_s();
  assert_int_equal(kube_send_sync(c, &q, &r), -1);
  double el = now_s() - t0;
  assert_int_equal(r.err.code, KUBE_ERR_TOO_MANY_REQUESTS);
  if (el < 0.95) fail_msg("the retry came after %.2f s, before Retry-After: 1", el);
  kube_result_clear(&r);
  kube_client_free(c);
  set_faults("{\"errorRate\":0}");
}

static void test_faults_5xx_and_latency(void **state) {
  (void)state;
  NEED_KUBESIM();
  kube_client *c = open_client(&(kube_client_options){.max_retries = -1});
  kube_req q = {.op = KUBE_OP_GET, .api_version = "v1", .kind = "Namespace", .name = "default"};
  kube_result r;
  /* warm discovery first so the faults hit the GET itself */
  assert_int_equal(kube_send_sync(c, &q, &r), 0);
  kube_result_clear(&r);
  set_faults("{\"errorRate\":1,\"errorCodes\":[500]}");
  assert_int_equal(kube_send_sync(c, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_INTERNAL);
  kube_result_clear(&r);
  set_faults("{\"errorRate\":1,\"errorCodes\":[503],\"retryAfterSeconds\":2}");
  assert_int_equal(kube_send_sync(c, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_SERVICE_UNAVAILABLE);
  assert_true(r.err.retry_after == 2.0);
  assert_true(kube_err_retryable(r.err.code));
  kube_result_clear(&r);
  set_faults("{\"errorRate\":0,\"latencyMs\":300}");
  double t0 = now_s();
  assert_int_equal(kube_send_sync(c, &q, &r), 0);
  assert_true(now_s() - t0 >= 0.29);
  kube_result_clear(&r);
  /* a client timeout shorter than the latency is a transport error */
  kube_client *fast =
      open_client(&(kube_client_options){.max_retries = -1, .request_timeout_ms = 100});
  assert_int_equal(kube_send_sync(fast, &q, &r), -1);
  assert_int_equal(r.err.code, KUBE_ERR_TRANSPORT);
  kube_result_clear(&r);
  kube_client_free(fast);
  set_faults("{\"latencyMs\":0}");
  kube_client_free(c);
}

/* ---- one loop, many requests and watches --------------------------------- */

typedef struct counter {
  int done, ok;
} counter;

static void count_cb(void *ud, kube_result *r) {
  counter *c = ud;
  c->done++;
  if (r->err.code == KUBE_OK) c->ok++;
}

static void test_concurrency(void **state) {
  (void)state;
  NEED_KUBESIM();
  create_ns("many");
  wrec recs[3] = {{0}};
  kube_watch *ws[3];
  for (int i = 0; i < 3; i++) {
    ws[i] = start_watch(
        &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "many"},
        &recs[i]);
  }
  WAIT_FOR(recs[0].synced && recs[1].synced && recs[2].synced, 5000);
  counter cnt = {0};
  uint64_t conns0 = kube_client_get_stats(cli).connections;
  set_faults("{\"latencyMs\":200}");
  double t0 = now_s();
  for (int i = 0; i < 60; i++) {
    char name[16];
    snprintf(name, sizeof name, "m%03d", i);
    kv *o = cm("many", name, NULL, NULL);
    assert_int_equal(kube_send(cli, &(kube_req){.op = KUBE_OP_CREATE, .body = o}, count_cb, &cnt),
                     0);
    kv_unref(o);
  }
  WAIT_FOR(cnt.done == 60, 30000);
  double el = now_s() - t0;
  set_faults("{\"latencyMs\":0}");
  assert_int_equal(cnt.ok, 60);
  /* 60 requests with 200 ms latency each: one after another would take
   * 12 s; in flight together (32 connections) about 0.4 s plus TLS set-up,
   * so even a loaded machine stays far below the bound */
  if (el > 8.0) fail_msg("60 concurrent creates took %.2f s", el);
  WAIT_FOR(recs[0].added == 60 && recs[1].added == 60 && recs[2].added == 60, 10000);
  for (int i = 0; i < 3; i++)
    stop_watch(ws[i]);
  kube_client_stats st = kube_client_get_stats(cli);
  /* at most max_connections (32) for the burst: connections are bounded
   * and reused */
  if (st.connections - conns0 > 32)
    fail_msg("%llu connections", (unsigned long long)(st.connections - conns0));
  /* once the burst is over the pool shrinks by itself: idle connections
   * beyond two close after 2 s (no request, no watch is running) */
  if (st.open <= 2)
    fail_msg("only %llu connections open after the burst", (unsigned long long)st.open);
  WAIT_FOR(kube_client_get_stats(cli).open <= 2, 6000);
  /* and what is left is reused, not reopened */
  uint64_t before = kube_client_get_stats(cli).connections;
  kube_result r;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(kube_send_sync(cli,
                                    &(kube_req){.op = KUBE_OP_GET,
                                                .api_version = "v1",
                                                .kind = "ConfigMap",
                                                .namespace_ = "many",
                                                .name = "m000"},
                                    &r),
                     0);
    kube_result_clear(&r);
  }
  assert_int_equal(kube_client_get_stats(cli).connections, before);
}

int main(int argc, char **argv) {
  kubesim_bin = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_discovery, reset_faults),
      cmocka_unit_test_teardown(test_crd_and_invalid, reset_faults),
      cmocka_unit_test_teardown(test_create_get_list, reset_faults),
      cmocka_unit_test_teardown(test_update_conflict_and_patches, reset_faults),
      cmocka_unit_test_teardown(test_status_subresource_and_generation, reset_faults),
      cmocka_unit_test_teardown(test_auth_and_tls, reset_faults),
      cmocka_unit_test_teardown(test_watch_events, reset_faults),
      cmocka_unit_test_teardown(test_watch_resume_after_drop, reset_faults),
      cmocka_unit_test_teardown(test_watch_410_relist, reset_faults),
      cmocka_unit_test_teardown(test_429_retry_after, reset_faults),
      cmocka_unit_test_teardown(test_faults_5xx_and_latency, reset_faults),
      cmocka_unit_test_teardown(test_concurrency, reset_faults),
      cmocka_unit_test_teardown(test_watch_across_restart, reset_faults),
      cmocka_unit_test_teardown(test_delete, reset_faults),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
