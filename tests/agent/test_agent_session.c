/*
 * tests/agent/test_agent_session.c: the agent's control-plane session
 * (agent/session.h) against a protocol harness built on agent/tls_server.c
 * (real mutual TLS 1.3 on 127.0.0.1, one libevent loop): registration then
 * session, heartbeats both ways, reliable delivery in both directions with
 * acks, a connection cut by the harness while the agent keeps producing
 * (every message arrives, none processed twice), a control plane that
 * replays what the agent already processed (dropped as duplicates), and a
 * restarted agent replaying its persisted outbox.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "kubesim_harness.h"
#include "session.h"
#include "session_watch.h"

#include "agent_test_util.h" /* after tls.h: its frame helpers */

#define MAXMSG 64

/* The harness: a control plane that records what it processes. */
typedef struct hx {
  struct event_base *base;
  ktls_ca *ca;
  ktls_token_store *tokens;
  ktls_server *srv;
  char root[64], dir[128], token[128];
  kframe_inbox in;        /* control plane's dedup of agent messages */
  kframe_outbox *ob;      /* control plane's reliable messages to the agent */
  int processed[MAXMSG];  /* times each agent sequence was processed */
  char names[MAXMSG][32]; /* TriggerEvent object names in processing order */
  int n_names;
  int heartbeats; /* heartbeats the harness got */
  int drop_on; /* drop the connection instead of processing the Nth reliable message (1-based, 0 =
                  never) */
  int reliable_seen;
  bool ignore_hello_ack; /* replay everything regardless of the agent's Hello */
  /* agent side */
  int delivered;        /* on_message calls */
  char got[MAXMSG][32]; /* WatchSet kinds delivered to the agent */
  int ups, downs;
  int types[MAXMSG];            /* TriggerEvent types, parallel to names */
  int snapshots;                /* TriggerSnapshots processed */
  size_t snapshot_objects;      /* objects in the last one */
  char snap[MAXMSG][32];        /* names in the last snapshot */
  char snap_json[MAXMSG][1024]; /* their objects (truncated) */
  ksw *watcher;                 /* kube tests: WatchSet -> watches */
  unsigned hb_ms;               /* HelloAck heartbeat interval; 0 = 100 */
} hx;

static void on_session(void *arg, const char *cluster, const Koreo__Agent__V1__Hello *hello,
                       Koreo__Agent__V1__HelloAck *ack, struct bufferevent *bev) {
  (void)cluster;
  (void)bev;
  hx *h = arg;
  ack->last_acked_sequence = h->in.last;
  ack->heartbeat_interval_ms = h->hb_ms ? h->hb_ms : 100;
  kframe_outbox_rewind(h->ob, h->ignore_hello_ack ? 0 : hello->last_acked_sequence);
}

static bool on_envelope(void *arg, const char *cluster, kframe_envelope *env,
                        struct bufferevent *bev) {
  (void)cluster;
  hx *h = arg;
  if (env->ack && !h->ignore_hello_ack) kframe_outbox_ack(h->ob, env->ack);
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT) {
    h->heartbeats++;
    assert_true(
        send_test_heartbeat(bev, h->in.last, 1)); /* the control plane's side of the heartbeat */
  } else if (env->sequence) {
    if (h->drop_on && ++h->reliable_seen == h->drop_on) {
      kframe_envelope_free(env);
      return false; /* cut before processing: the agent must replay it */
    }
    if (kframe_inbox_accept(&h->in, env->sequence) != KFRAME_DUPLICATE) {
      assert_true(env->sequence < MAXMSG);
      h->processed[env->sequence]++;
      if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT && h->n_names < MAXMSG) {
        h->types[h->n_names] = env->trigger_event->type;
        snprintf(h->names[h->n_names++], 32, "%s", env->trigger_event->object_ref->name);
      }
      if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT) {
        h->snapshots++;
        h->snapshot_objects = env->trigger_snapshot->n_objects;
        for (size_t i = 0; i < env->trigger_snapshot->n_objects && i < MAXMSG; i++) {
          const Koreo__Agent__V1__TriggerObject *o = env->trigger_snapshot->objects[i];
          snprintf(h->snap[i], 32, "%s", o->object_ref->name);
          snprintf(h->snap_json[i], 1024, "%.*s", (int)o->object_json.len,
                   (const char *)o->object_json.data);
        }
      }
    }
    assert_true(send_test_heartbeat(bev, h->in.last, 1));
  }
  kframe_envelope_free(env);
  /* our own reliable messages go out after the agent spoke (after HelloAck) */
  uint8_t *frame;
  size_t len;
  while (kframe_outbox_next(h->ob, h->in.last, &frame, &len, NULL)) {
    bufferevent_write(bev, frame, len);
    free(frame);
  }
  return true;
}

static void on_message(ksession *s, const kframe_envelope *env, void *arg) {
  (void)s;
  hx *h = arg;
  if (env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET && h->delivered < MAXMSG)
    snprintf(h->got[h->delivered], 32, "%s",
             env->watch_set->n_kinds ? env->watch_set->kinds[0]->kind : "");
  h->delivered++;
  if (h->watcher && env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET)
    ksw_apply(h->watcher, env->watch_set);
}

static void on_state(ksession *s, bool up, const char *msg, void *arg) {
  (void)s;
  hx *h = arg;
  if (getenv("KSESSION_TEST_VERBOSE")) fprintf(stderr, "session %s: %s\n", up ? "up" : "down", msg);
  if (up && h->watcher) ksw_snapshot(h->watcher); /* after every (re)connect */
  if (up)
    h->ups++;
  else
    h->downs++;
}

/* The harness's TLS listener on `port` (0: any free one). */
static ktls_server *serve(hx *h, int port) {
  return serve_harness(h->base, h->ca, h->tokens, port, on_session, on_envelope, NULL, h);
}

static int setup(void **state) {
  hx *h = calloc(1, sizeof *h);
  ktls_err err = {{0}};
  h->base = event_base_new();
  h->ca = ktls_ca_new("koreo-session-ca", 30, &err);
  assert_non_null(h->ca);
  h->tokens = ktls_token_store_new();
  h->ob = kframe_outbox_new(0, 0);
  h->srv = serve(h, 0);
  strcpy(h->root, "/tmp/ksession-test-XXXXXX");
  assert_non_null(mkdtemp(h->root));
  snprintf(h->dir, sizeof h->dir, "%s/state", h->root);
  assert_int_equal(
      ktls_token_create(h->tokens, "edge-1", time(NULL) + 600, ktls_ca_pin(h->ca), h->token, &err),
      0);
  *state = h;
  return 0;
}

static int teardown(void **state) {
  hx *h = *state;
  ktls_server_free(h->srv);
  ktls_token_store_free(h->tokens);
  ktls_ca_free(h->ca);
  kframe_outbox_free(h->ob);
  event_base_free(h->base);
  rm_rf(h->root);
  free(h);
  return 0;
}

static ksession *agent(hx *h) {
  ktls_err err = {{0}};
  ksession_opts o = {.tls = {.host = "127.0.0.1",
                             .port = ktls_server_port(h->srv),
                             .cluster = "edge-1",
                             .state_dir = h->dir,
                             .bootstrap_token = h->token,
                             .agent_version = "test"},
                     .heartbeat_ms = 100,
                     .backoff_min_ms = 20,
                     .backoff_max_ms = 200,
                     .on_message = on_message,
                     .on_state = on_state,
                     .arg = h};
  ksession *s = ksession_new(h->base, &o, &err);
  if (!s) fail_msg("session: %s", err.msg);
  return s;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the loop until pred holds (or fail after `limit` seconds). */
typedef bool (*pred_fn)(hx *h, ksession *s);
static void run_until(hx *h, ksession *s, pred_fn p, double limit, const char *what) {
  double end = now_s() + limit;
  while (!p(h, s)) {
    if (now_s() > end) fail_msg("timed out waiting for %s", what);
    struct timeval tv = {0, 10000};
    event_base_loopexit(h->base, &tv);
    event_base_loop(h->base, 0);
  }
}

static void run_for(hx *h, double secs) {
  struct timeval tv = {(long)secs, (long)((secs - (long)secs) * 1e6)};
  event_base_loopexit(h->base, &tv);
  event_base_loop(h->base, 0);
}

static bool is_up(hx *h, ksession *s) {
  (void)h;
  return ksession_connected(s);
}
static bool is_down(hx *h, ksession *s) {
  (void)h;
  return !ksession_connected(s);
}
static bool all_acked(hx *h, ksession *s) {
  (void)h;
  return ksession_connected(s) && ksession_pending(s) == 0;
}

static void send_event(ksession *s, const char *name) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__TriggerEvent t = KOREO__AGENT__V1__TRIGGER_EVENT__INIT;
  Koreo__Agent__V1__ObjectRef r = KOREO__AGENT__V1__OBJECT_REF__INIT;
  r.api_version = "v1";
  r.kind = "ConfigMap";
  r.namespace_ = "default";
  r.name = (char *)name;
  t.type = KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED;
  t.object_ref = &r;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT;
  e.trigger_event = &t;
  ktls_err err = {{0}};
  if (!ksession_send(s, &e, &err)) fail_msg("send: %s", err.msg);
}

static void push_watchset(hx *h, const char *kind, uint64_t gen) {
  Koreo__Agent__V1__Envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__WatchSet w = KOREO__AGENT__V1__WATCH_SET__INIT;
  Koreo__Agent__V1__WatchKind k = KOREO__AGENT__V1__WATCH_KIND__INIT;
  Koreo__Agent__V1__WatchKind *kp = &k;
  k.api_version = "v1";
  k.kind = (char *)kind;
  w.generation = gen;
  w.n_kinds = 1;
  w.kinds = &kp;
  e.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET;
  e.watch_set = &w;
  assert_true(kframe_outbox_push(h->ob, &e, NULL) > 0);
}

/* Registration with the bootstrap token, then a session on the stored
 * certificate; heartbeats flow both ways. */
static void test_register_then_session(void **state) {
  hx *h = *state;
  ksession *s = agent(h);
  run_until(h, s, is_up, 10, "connected");
  const ksession_stats *st = ksession_get_stats(s);
  assert_int_equal(st->registrations, 1);
  assert_int_equal(st->connects, 1);
  char p[256];
  snprintf(p, sizeof p, "%s/cert.pem", h->dir);
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  run_for(h, 0.5); /* five intervals of 100 ms */
  assert_true(st->heartbeats_sent >= 3);
  assert_true(h->heartbeats >= 3);
  assert_true(ksession_connected(s));
  assert_int_equal(h->downs, 0);
  ksession_free(s);
  /* a second agent process reuses the identity: the token is not needed again */
  ksession *s2 = agent(h);
  run_until(h, s2, is_up, 10, "reconnected with the stored certificate");
  assert_int_equal(ksession_get_stats(s2)->registrations, 0);
  ksession_free(s2);
}

/* Reliable messages both ways, acknowledged. */
static void test_delivery_both_ways(void **state) {
  hx *h = *state;
  ksession *s = agent(h);
  run_until(h, s, is_up, 10, "connected");
  for (int i = 0; i < 5; i++) {
    char n[16];
    snprintf(n, sizeof n, "cm-%d", i);
    send_event(s, n);
  }
  push_watchset(h, "Deployment", 1);
  push_watchset(h, "Service", 2);
  run_until(h, s, all_acked, 10, "agent messages acknowledged");
  run_until(h, s, is_up, 1, "");
  run_for(h, 0.3);
  assert_int_equal(h->n_names, 5);
  for (int i = 0; i < 5; i++) {
    char n[16];
    snprintf(n, sizeof n, "cm-%d", i);
    assert_string_equal(h->names[i], n);
  }
  assert_int_equal(h->delivered, 2);
  assert_string_equal(h->got[0], "Deployment");
  assert_string_equal(h->got[1], "Service");
  assert_int_equal(ksession_inbox_last(s), 2);
  assert_int_equal(kframe_outbox_count(h->ob), 0); /* the agent acked both */
  ksession_free(s);
}

static bool six_processed(hx *h, ksession *s) {
  return h->n_names >= 6 && ksession_pending(s) == 0;
}

/* The harness cuts the connection while the agent keeps producing; after
 * the reconnect every message arrives and none is processed twice. */
static void test_cut_and_restore(void **state) {
  hx *h = *state;
  ksession *s = agent(h);
  run_until(h, s, is_up, 10, "connected");
  h->drop_on = 2; /* the second reliable message is never processed */
  send_event(s, "a");
  send_event(s, "b");
  send_event(s, "c");
  run_until(h, s, is_down, 10, "the cut noticed");
  send_event(s, "d"); /* produced while disconnected */
  send_event(s, "e");
  send_event(s, "f");
  run_until(h, s, six_processed, 20, "all six processed after the reconnect");
  const ksession_stats *st = ksession_get_stats(s);
  assert_true(st->connects >= 2);
  assert_true(st->disconnects >= 1);
  const char *want[] = {"a", "b", "c", "d", "e", "f"};
  assert_int_equal(h->n_names, 6);
  for (int i = 0; i < 6; i++)
    assert_string_equal(h->names[i], want[i]);
  for (int q = 1; q <= 6; q++)
    assert_int_equal(h->processed[q], 1);
  ksession_free(s);
}

static bool delivered_two(hx *h, ksession *s) { return h->delivered >= 2 && ksession_connected(s); }

/* A control plane that lost our acks replays everything: the agent drops
 * what it processed already (its inbox survives the reconnect and a
 * restart). */
static void test_duplicates_dropped(void **state) {
  hx *h = *state;
  ksession *s = agent(h);
  push_watchset(h, "Deployment", 1);
  push_watchset(h, "Service", 2);
  run_until(h, s, delivered_two, 10, "two WatchSets delivered");
  h->ignore_hello_ack = true;
  h->ob = (kframe_outbox_free(h->ob), kframe_outbox_new(0, 0));
  push_watchset(h, "Deployment", 1); /* same sequences 1 and 2 again */
  push_watchset(h, "Service", 2);
  ksession_free(s); /* agent restart: inbox.seq is persisted */
  s = agent(h);
  run_until(h, s, is_up, 10, "reconnected");
  run_for(h, 0.4);
  assert_int_equal(h->delivered, 2);
  assert_int_equal(ksession_get_stats(s)->duplicates, 2);
  assert_int_equal(ksession_inbox_last(s), 2);
  ksession_free(s);
}

/* Messages queued while no control plane is reachable survive an agent
 * restart (outbox.bin) and are delivered once when it comes back. */
static void test_restart_replays_outbox(void **state) {
  hx *h = *state;
  ksession *s = agent(h);
  run_until(h, s, is_up, 10, "connected");
  ksession_free(s);
  /* the control plane goes away */
  int port = ktls_server_port(h->srv);
  ktls_server_free(h->srv);
  h->srv = NULL;
  ksession_opts o = {
      .tls = {.host = "127.0.0.1", .port = port, .cluster = "edge-1", .state_dir = h->dir},
      .heartbeat_ms = 100,
      .backoff_min_ms = 20,
      .backoff_max_ms = 100,
      .on_message = on_message,
      .on_state = on_state,
      .arg = h};
  ktls_err err = {{0}};
  s = ksession_new(h->base, &o, &err);
  assert_non_null(s);
  send_event(s, "x");
  send_event(s, "y");
  run_for(h, 0.3);
  assert_false(ksession_connected(s));
  assert_true(ksession_get_stats(s)->failures >= 1);
  assert_int_equal(ksession_pending(s), 2);
  ksession_free(s); /* agent restart */
  h->srv = serve(h, port);
  s = ksession_new(h->base, &o, &err);
  assert_non_null(s);
  run_until(h, s, all_acked, 10, "replayed outbox acknowledged");
  assert_int_equal(h->n_names, 2);
  assert_string_equal(h->names[0], "x");
  assert_string_equal(h->names[1], "y");
  ksession_free(s);
}

/* A wrong token is refused and retried with backoff, never connecting. */
static void test_bad_token(void **state) {
  hx *h = *state;
  h->token[10] = h->token[10] == 'a' ? 'b' : 'a';
  ksession *s = agent(h);
  run_for(h, 0.5);
  assert_false(ksession_connected(s));
  assert_true(ksession_get_stats(s)->failures >= 2);
  assert_int_equal(ksession_get_stats(s)->connects, 0);
  ksession_free(s);
}

/* ---------------------------------------------------------------- against kubesim */

static const char *g_kubesim;

static int n_events_for(hx *h, const char *name, int type) {
  int n = 0;
  for (int i = 0; i < h->n_names; i++)
    if (!strcmp(h->names[i], name) && (!type || h->types[i] == type)) n++;
  return n;
}

static bool got_added(hx *h, ksession *s) {
  (void)s;
  return n_events_for(h, "cm1", KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_ADDED) == 1;
}
static bool got_modified(hx *h, ksession *s) {
  (void)s;
  return n_events_for(h, "cm1", KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED) >= 1;
}
static bool got_deleted(hx *h, ksession *s) {
  (void)s;
  return n_events_for(h, "cm1", KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED) == 1;
}
static bool got_snapshot(hx *h, ksession *s) {
  (void)s;
  return h->snapshots >= 1;
}

/* WatchSet from the control plane -> a watch on ConfigMaps -> TriggerEvents
 * for kubectl's changes: created, relabelled (one event), annotated with a
 * koreo.dev key (no event), deleted; and a TriggerSnapshot on connect. */
static void test_watchset_trigger_events(void **state) {
  hx *h = *state;
  if (!g_kubesim || run_sh(NULL, "kubectl version --client >/dev/null 2>&1") != 0) skip();
  ksim sim;
  if (ksim_start(&sim, g_kubesim, false, NULL) != 0) fail_msg("koreo-kubesim did not start");
  setenv("KUBECONFIG", sim.kubeconfig, 1);
  kube_config *cfg = NULL;
  kube_error ke = {0};
  if (kube_config_load(sim.kubeconfig, NULL, &cfg, &ke) != 0)
    fail_msg("kubeconfig: %s", ke.message);
  kube_client *kc = kube_client_new(h->base, cfg, NULL, &ke);
  if (!kc) fail_msg("kube client: %s", ke.message);
  /* the harness blocks while kubectl runs: the dead-peer timeout (three
   * intervals) must outlast that, or changes land in the next snapshot */
  h->hb_ms = 1000;
  ksession *s = agent(h);
  h->watcher = ksw_new(h->base, kc, s, 30);
  run_until(h, s, is_up, 10, "connected");
  run_until(h, s, got_snapshot, 10, "the snapshot after connect");
  push_watchset(h, "ConfigMap", 1);
  run_for(h, 0.5); /* the watch lists (kube-root-ca.crt, if any) */
  int base_events = h->n_names;
  assert_int_equal(run_sh(NULL, "kubectl create configmap cm1 --from-literal=a=1 >/dev/null"), 0);
  run_until(h, s, got_added, 10, "ADDED cm1");
  assert_int_equal(run_sh(NULL, "kubectl label configmap cm1 team=x >/dev/null"), 0);
  run_until(h, s, got_modified, 10, "MODIFIED cm1");
  int before = n_events_for(h, "cm1", 0);
  assert_int_equal(run_sh(NULL, "kubectl annotate configmap cm1 koreo.dev/last-run=1 >/dev/null"),
                   0);
  run_for(h, 0.5);
  assert_int_equal(n_events_for(h, "cm1", 0), before); /* Koreo's own annotation: ignored */
  assert_int_equal(run_sh(NULL, "kubectl delete configmap cm1 >/dev/null"), 0);
  run_until(h, s, got_deleted, 10, "DELETED cm1");
  assert_int_equal(n_events_for(h, "cm1", 0), 3);
  assert_true(h->n_names - base_events == 3);
  /* a reconnect sends a snapshot of the known triggers */
  int snaps = h->snapshots;
  ksession_drop(s, "test");
  run_until(h, s, is_up, 10, "reconnected");
  run_for(h, 0.3);
  assert_true(h->snapshots > snaps);
  /* the control plane goes away while triggers change: only the latest
   * state per trigger is kept (nothing queued); when it is back the
   * snapshot carries the current objects and the deletion arrives as a
   * DELETED event, and nothing is processed twice */
  assert_int_equal(run_sh(NULL, "kubectl create configmap cm4 --from-literal=a=1 >/dev/null"), 0);
  run_until(h, s, all_acked, 10, "cm4 delivered");
  int port = ktls_server_port(h->srv);
  ktls_server_free(h->srv);
  h->srv = NULL;
  run_until(h, s, is_down, 10, "the control plane gone");
  size_t pending = ksession_pending(s);
  assert_int_equal(run_sh(NULL, "kubectl create configmap cm2 --from-literal=a=1 >/dev/null"), 0);
  run_for(h, 0.3);
  assert_int_equal(run_sh(NULL, "kubectl label configmap cm2 team=y >/dev/null"), 0);
  assert_int_equal(run_sh(NULL, "kubectl create configmap cm3 --from-literal=a=1 >/dev/null"), 0);
  assert_int_equal(run_sh(NULL, "kubectl delete configmap cm4 >/dev/null"), 0);
  run_for(h, 0.5);
  assert_false(ksession_connected(s));
  assert_int_equal(ksession_pending(s), pending); /* nothing queued per change */
  snaps = h->snapshots;
  h->srv = serve(h, port);
  run_until(h, s, all_acked, 10, "the snapshot and the deletion delivered");
  assert_int_equal(h->snapshots, snaps + 1);
  bool cm2 = false, cm3 = false;
  for (size_t i = 0; i < h->snapshot_objects; i++) {
    assert_string_not_equal(h->snap[i], "cm4");
    if (!strcmp(h->snap[i], "cm2")) {
      cm2 = true;
      assert_non_null(strstr(h->snap_json[i], "\"team\":\"y\"")); /* its latest state */
    }
    cm3 |= !strcmp(h->snap[i], "cm3");
  }
  assert_true(cm2 && cm3);
  assert_int_equal(n_events_for(h, "cm4", KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_DELETED), 1);
  assert_int_equal(n_events_for(h, "cm2", 0), 0); /* covered by the snapshot */
  assert_int_equal(n_events_for(h, "cm3", 0), 0);
  for (uint64_t q = 1; q <= h->in.last && q < MAXMSG; q++)
    assert_int_equal(h->processed[q], 1);
  ksw_free(h->watcher);
  h->watcher = NULL;
  ksession_free(s);
  kube_client_free(kc);
  kube_config_free(cfg);
  ksim_stop(&sim, false);
}

int main(int argc, char **argv) {
  g_kubesim = argc > 1 && argv[1][0] ? argv[1] : ksim_binary();
  signal(SIGPIPE, SIG_IGN); /* a peer that went away must not kill the harness */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_then_session, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delivery_both_ways, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cut_and_restore, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicates_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_replays_outbox, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watchset_trigger_events, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
