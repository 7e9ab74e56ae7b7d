/*
 * tests/kube/test_kube_watch_slim.c: the watch options that keep cached
 * objects small (koreo/kube.h kube_watch_opts.drop_managed_fields and
 * share_strings) against koreo-kubesim: the delivered and cached objects
 * lack metadata.managedFields and are otherwise equal to what the server
 * returns; without the options managedFields is kept.
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

int main(int argc, char **argv) {
  kubesim_bin = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_slim_watch)};
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
