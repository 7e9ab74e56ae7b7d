/*
 * tests/kube/test_kube_watch_slim.c: the watch options that keep cached
 * objects small (koreo/kube.h kube_watch_opts.drop_managed_fields,
 * share_strings and compact_json) against koreo-kubesim: the delivered and
 * cached objects lack metadata.managedFields and are otherwise equal to
 * what the server returns; without the options managedFields is kept.  A
 * compact_json watch answers kube_watch_get/_copy/_json with the same
 * objects through changes, deletions (DELETED delivering the last object),
 * its cache's compactions and kube_watch_trim, and a re-list after 410
 * Gone (the difference delivered from the cached text).
 *
 * The kubesim binary comes as argv[1] (CTest passes it) or $KOREO_KUBESIM.
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

static const char *const SIM_ARGS[] = {"--exit-after", "120", NULL};

static int group_setup(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  if (ksim_start(&sim, kubesim_bin, false, SIM_ARGS) != 0) return -1;
  base = event_base_new();
  kube_config *cfg = NULL;
  kube_error e = {0};
  if (kube_config_load_kubeconfig(sim.kubeconfig, NULL, &cfg, &e) != 0) return -1;
  cli = kube_client_new(base, cfg, NULL, &e);
  kube_config_free(cfg);
  kube_error_clear(&e);
  return cli ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  if (!kubesim_bin) return 0;
  if (cli) kube_client_free(cli);
  if (base) event_base_free(base);
  ksim_stop(&sim, getenv("KOREO_KUBESIM_LOG") != NULL);
  return 0;
}

typedef struct rec {
  int synced, added, modified;
  bool saw_managed_fields; /* some delivered object had managedFields */
} rec;

static void rec_cb(void *ud, const kube_watch_event *ev) {
  rec *r = ud;
  if (ev->type == KUBE_WATCH_SYNCED) r->synced++;
  if (ev->type == KUBE_WATCH_ADDED) r->added++;
  if (ev->type == KUBE_WATCH_MODIFIED) r->modified++;
  if (ev->object && kv_map_get_str(kv_map_get_str(ev->object, "metadata"), "managedFields"))
    r->saw_managed_fields = true;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_for(const int *counter, int want) {
  double end = now_s() + 5;
  bool never = false;
  while (*counter < want && now_s() < end)
    kube_client_run_until(cli, &never, 20);
  if (*counter < want) fail_msg("timed out waiting for %d events (have %d)", want, *counter);
}

static kv *cm_req(kube_op op, const char *name, const char *json) {
  kv_parse_error pe = {0};
  kv *body = json ? kv_json_parse(json, strlen(json), &pe) : NULL;
  kube_req q = {.op = op,
                .api_version = "v1",
                .kind = "ConfigMap",
                .namespace_ = "default",
                .name = name,
                .body = body};
  kube_result r = {0};
  if (kube_send_sync(cli, &q, &r) != 0) fail_msg("%s: %s", name, r.err.message);
  kv *o = kv_ref(r.object);
  kube_result_clear(&r);
  kv_unref(body);
  return o;
}

/* `got` equals `want` without want's metadata.managedFields. */
static void assert_equal_but_managed_fields(const kv *got, const kv *want) {
  assert_non_null(kv_map_get_str(kv_map_get_str(want, "metadata"), "managedFields"));
  assert_null(kv_map_get_str(kv_map_get_str(got, "metadata"), "managedFields"));
  char *g = kv_json_write(got, 0, NULL);
  kv *md = kv_map_new(8);
  const kv *wmd = kv_map_get_str(want, "metadata");
  for (size_t i = 0; i < kv_len(wmd); i++)
    if (strcmp(kv_str(kv_map_key_at(wmd, i)), "managedFields") != 0)
      kv_map_set(md, kv_ref(kv_map_key_at(wmd, i)), kv_ref(kv_map_val_at(wmd, i)));
  kv *w = kv_map_new(8);
  for (size_t i = 0; i < kv_len(want); i++)
    kv_map_set(w, kv_ref(kv_map_key_at(want, i)),
               kv_map_val_at(want, i) == wmd ? kv_ref(md) : kv_ref(kv_map_val_at(want, i)));
  char *x = kv_json_write(w, 0, NULL);
  assert_string_equal(g, x);
  free(g);
  free(x);
  kv_unref(w);
  kv_unref(md);
}

static void test_slim_watch(void **state) {
  (void)state;
  if (!kubesim_bin) skip();
  kv_unref(cm_req(KUBE_OP_CREATE, "listed",
                  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"listed\","
                  "\"namespace\":\"default\",\"labels\":{\"app\":\"x\"}},\"data\":{\"a\":\"1\"}}"));
  rec slim = {0}, full = {0};
  kube_watch *ws = kube_watch_start(cli,
                                    &(kube_watch_opts){.api_version = "v1",
                                                       .kind = "ConfigMap",
                                                       .namespace_ = "default",
                                                       .drop_managed_fields = true,
                                                       .share_strings = true},
                                    rec_cb, &slim, NULL);
  kube_watch *wf = kube_watch_start(
      cli, &(kube_watch_opts){.api_version = "v1", .kind = "ConfigMap", .namespace_ = "default"},
      rec_cb, &full, NULL);
  assert_non_null(ws);
  assert_non_null(wf);
  wait_for(&slim.synced, 1);
  wait_for(&full.synced, 1);
  /* from the list */
  kv *cur = cm_req(KUBE_OP_GET, "listed", NULL);
  assert_equal_but_managed_fields(kube_watch_get(ws, "default", "listed"), cur);
  kv_unref(cur);
  /* from the stream: a new object and a change, many alike (shared strings) */
  char json[256];
  for (int i = 0; i < 20; i++) {
    snprintf(json, sizeof json,
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"s-%d\","
             "\"namespace\":\"default\"},\"data\":{\"a\":\"%d\",\"same\":\"text\"}}",
             i, i);
    snprintf(json + 200, 56, "s-%d", i);
    kv_unref(cm_req(KUBE_OP_CREATE, json + 200, json));
  }
  kv_unref(cm_req(KUBE_OP_PATCH_MERGE, "listed", "{\"data\":{\"a\":\"2\"}}"));
  wait_for(&slim.added, 21);
  wait_for(&slim.modified, 1);
  wait_for(&full.modified, 1);
  assert_int_equal(kube_watch_count(ws), 21);
  for (int i = 0; i < 20; i++) {
    snprintf(json, sizeof json, "s-%d", i);
    kv *o = cm_req(KUBE_OP_GET, json, NULL);
    assert_equal_but_managed_fields(kube_watch_get(ws, "default", json), o);
    kv_unref(o);
  }
  cur = cm_req(KUBE_OP_GET, "listed", NULL);
  assert_equal_but_managed_fields(kube_watch_get(ws, "default", "listed"), cur);
  /* without the options the object is kept whole */
  assert_non_null(kv_map_get_str(
      kv_map_get_str(kube_watch_get(wf, "default", "listed"), "metadata"), "managedFields"));
  kv_unref(cur);
  assert_false(slim.saw_managed_fields);
  assert_true(full.saw_managed_fields);
  /* many distinct short strings, replaced twice: the shared set is swept
   * while objects still use some of its strings; the cache stays right */
  int mods = slim.modified;
  for (char round = 'a'; round <= 'c'; round++) {
    kv_strbuf b = {0};
    kv_strbuf_puts(&b, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
                       "\"name\":\"big\",\"namespace\":\"default\"},\"data\":{");
    for (int i = 0; i < 600; i++) {
      snprintf(json, sizeof json, "%s\"k%d\":\"v-%d-%c\"", i ? "," : "", i, i, round);
      kv_strbuf_puts(&b, json);
    }
    kv_strbuf_puts(&b, "}}");
    char *text = kv_strbuf_take(&b, NULL);
    kv_unref(cm_req(round == 'a' ? KUBE_OP_CREATE : KUBE_OP_UPDATE, "big", text));
    free(text);
    if (round == 'a')
      wait_for(&slim.added, 22);
    else
      wait_for(&slim.modified, ++mods);
    kv *o = cm_req(KUBE_OP_GET, "big", NULL);
    assert_equal_but_managed_fields(kube_watch_get(ws, "default", "big"), o);
    kv_unref(o);
  }
  kube_watch_stop(ws);
  kube_watch_stop(wf);
}

/* ---- compact_json -------------------------------------------------------- */

typedef struct crec {
  int synced, added, modified, deleted, errors, from_list;
  char last_deleted[64];
  char last_listed_deleted[64];
  bool deleted_without_object;
} crec;

static void crec_cb(void *ud, const kube_watch_event *ev) {
  crec *r = ud;
  switch (ev->type) {
  case KUBE_WATCH_SYNCED: r->synced++; break;
  case KUBE_WATCH_ADDED: r->added++; break;
  case KUBE_WATCH_MODIFIED: r->modified++; break;
  case KUBE_WATCH_DELETED: {
    r->deleted++;
    const char *n = ev->object ? kube_obj_meta(ev->object, "name") : NULL;
    if (!n || kube_obj_meta(ev->object, "uid") == NULL) r->deleted_without_object = true;
    snprintf(ev->from_list ? r->last_listed_deleted : r->last_deleted, 64, "%s", n ? n : "");
    break;
  }
  case KUBE_WATCH_ERROR: r->errors++; break;
  default: break;
  }
  if (ev->from_list && ev->type != KUBE_WATCH_SYNCED) r->from_list++;
}

/* Every object of the compact watch `wc` equals the server's (without
 * managedFields), in all three accessors, and `names` not cached are
 * absent. */
static void assert_compact_cache(kube_watch *wc, int n, const char *const *gone, int ngone) {
  char name[32];
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "c-%d", i);
    kv *o = cm_req(KUBE_OP_GET, name, NULL);
    kv *c = kube_watch_get_copy(wc, "default", name);
    assert_non_null(c);
    assert_equal_but_managed_fields(c, o);
    size_t len = 0;
    const char *text = kube_watch_get_json(wc, "default", name, &len);
    char *want = kv_json_write(c, 0, NULL);
    assert_non_null(text);
    assert_int_equal(len, strlen(want));
    assert_string_equal(text, want);
    assert_equal_but_managed_fields(kube_watch_get(wc, "default", name), o);
    free(want);
    kv_unref(c);
    kv_unref(o);
  }
  for (int i = 0; i < ngone; i++) {
    assert_null(kube_watch_get_copy(wc, "default", gone[i]));
    assert_null(kube_watch_get_json(wc, "default", gone[i], NULL));
    assert_null(kube_watch_get(wc, "default", gone[i]));
  }
}

static void put_faults(const char *json) {
  kv_parse_error pe = {0};
  kv *f = kv_json_parse(json, strlen(json), &pe);
  kube_result r = {0};
  if (kube_send_raw_sync(cli, "PUT", "/kubesim/faults", f, &r) != 0)
    fail_msg("faults %s: %s", json, r.err.message);
  kube_result_clear(&r);
  kv_unref(f);
}

static void sim_post(const char *path) {
  kube_result r = {0};
  if (kube_send_raw_sync(cli, "POST", path, NULL, &r) != 0) fail_msg("%s: %s", path, r.err.message);
  kube_result_clear(&r);
}

static void test_compact_watch(void **state) {
  (void)state;
  if (!kubesim_bin) skip();
  char name[32], json[512];
  enum { N = 30 };
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "c-%d", i);
    snprintf(json, sizeof json,
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"default\",\"labels\":{\"set\":\"compact\"}},"
             "\"data\":{\"i\":\"%d\",\"text\":\"caf\u00e9 \\\"quoted\\\" \\u0001\"}}",
             name, i);
    kv_unref(cm_req(KUBE_OP_CREATE, name, json));
  }
  /* its own client, with a long backoff, so that a re-list can be staged */
  kube_config *cfg = NULL;
  kube_error e = {0};
  assert_int_equal(kube_config_load_kubeconfig(sim.kubeconfig, NULL, &cfg, &e), 0);
  kube_client *slow = kube_client_new(
      base, cfg, &(kube_client_options){.backoff_min_ms = 1500, .backoff_max_ms = 1500}, &e);
  kube_config_free(cfg);
  assert_non_null(slow);
  crec rc = {0}, rt = {0};
  kube_watch *wc = kube_watch_start(slow,
                                    &(kube_watch_opts){.api_version = "v1",
                                                       .kind = "ConfigMap",
                                                       .namespace_ = "default",
                                                       .label_selector = "set=compact",
                                                       .drop_managed_fields = true,
                                                       .share_strings = true,
                                                       .compact_json = true},
                                    crec_cb, &rc, NULL);
  kube_watch *wt = kube_watch_start(cli,
                                    &(kube_watch_opts){.api_version = "v1",
                                                       .kind = "ConfigMap",
                                                       .namespace_ = "default",
                                                       .label_selector = "set=compact",
                                                       .drop_managed_fields = true},
                                    crec_cb, &rt, NULL);
  assert_non_null(wc);
  assert_non_null(wt);
  wait_for(&rc.synced, 1);
  wait_for(&rt.synced, 1);
  assert_int_equal(rc.added, N);
  assert_int_equal(kube_watch_count(wc), N);
  assert_compact_cache(wc, N, NULL, 0);
  /* every object changed twice (the replaced records become garbage and
   * the cache is rewritten without them), the last ten deleted */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < N; i++) {
      snprintf(name, sizeof name, "c-%d", i);
      snprintf(json, sizeof json, "{\"data\":{\"round\":\"%d-%0200d\"}}", round, i);
      kv_unref(cm_req(KUBE_OP_PATCH_MERGE, name, json));
    }
  for (int i = N - 10; i < N; i++) {
    snprintf(name, sizeof name, "c-%d", i);
    kv_unref(cm_req(KUBE_OP_DELETE, name, NULL));
  }
  wait_for(&rc.modified, 2 * N);
  wait_for(&rc.deleted, 10);
  wait_for(&rt.deleted, 10);
  assert_false(rc.deleted_without_object);
  assert_string_equal(rc.last_deleted, "c-29");
  assert_int_equal(kube_watch_count(wc), N - 10);
  const char *const gone[] = {"c-20", "c-25", "c-29"};
  assert_compact_cache(wc, N - 10, gone, 3);
  kube_watch_trim(wc);
  assert_compact_cache(wc, N - 10, gone, 3);
  /* both watches saw the same events */
  assert_int_equal(rc.added, rt.added);
  assert_int_equal(rc.modified, rt.modified);
  /* a re-list: the stream is cut and cannot come back at once; meanwhile
   * c-0 goes, c-1 changes, c-born comes and the history is compacted */
  put_faults("{\"errorRate\":1,\"errorCodes\":[503],\"retryAfterSeconds\":0}");
  sim_post("/kubesim/drop-watches");
  wait_for(&rc.errors, 1);
  put_faults("{\"errorRate\":0}");
  kv_unref(cm_req(KUBE_OP_DELETE, "c-0", NULL));
  kv_unref(cm_req(KUBE_OP_PATCH_MERGE, "c-1", "{\"data\":{\"relisted\":\"yes\"}}"));
  kv_unref(cm_req(KUBE_OP_CREATE, "c-20",
                  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                  "\"c-20\",\"namespace\":\"default\",\"labels\":{\"set\":\"compact\"}}}"));
  sim_post("/kubesim/compact");
  int from_list = rc.from_list, added = rc.added, modified = rc.modified, deleted = rc.deleted;
  wait_for(&rc.synced, 2);
  assert_true(kube_watch_get_stats(wc).gone >= 1);
  assert_int_equal(rc.from_list - from_list, 3);
  assert_int_equal(rc.added - added, 1);
  assert_int_equal(rc.modified - modified, 1);
  assert_int_equal(rc.deleted - deleted, 1);
  assert_string_equal(rc.last_listed_deleted, "c-0"); /* parsed from the cache */
  assert_false(rc.deleted_without_object);
  assert_int_equal(kube_watch_count(wc), N - 10);
  const char *const gone2[] = {"c-0", "c-21"};
  assert_null(kube_watch_get_copy(wc, "default", "c-0"));
  kv *o = cm_req(KUBE_OP_GET, "c-1", NULL);
  kv *c = kube_watch_get_copy(wc, "default", "c-1");
  assert_equal_but_managed_fields(c, o);
  kv_unref(c);
  kv_unref(o);
  for (int i = 1; i <= 20; i++) {
    snprintf(name, sizeof name, "c-%d", i);
    o = cm_req(KUBE_OP_GET, name, NULL);
    assert_equal_but_managed_fields(kube_watch_get(wc, "default", name), o);
    kv_unref(o);
  }
  for (int i = 0; i < 2; i++)
    assert_null(kube_watch_get_json(wc, "default", gone2[i], NULL));
  kube_watch_stop(wc);
  kube_watch_stop(wt);
  kube_client_free(slow);
}

int main(int argc, char **argv) {
  kubesim_bin = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_slim_watch),
                                     cmocka_unit_test(test_compact_watch)};
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
