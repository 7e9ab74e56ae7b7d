/*
 * tests/agent/test_outbox_log.c: the agent's outbox journal
 * (agent/outbox_log.h): a send appends one record (not the whole outbox),
 * acks let the file shrink by compaction, a reopened journal restores the
 * unacknowledged messages with their sequences and continues the
 * numbering, a torn tail is dropped, an old outbox.bin is migrated, and
 * the file is 0600.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox_log.h"

#include "agent_test_util.h"

static char g_dir[64];

static int setup(void **state) {
  (void)state;
  strcpy(g_dir, "/tmp/koreo-obl-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  rm_rf(g_dir);
  return 0;
}

/* A TriggerEvent naming `name` (strings borrowed). */
static void event(kframe_envelope *e, Koreo__Agent__V1__TriggerEvent *t,
                  Koreo__Agent__V1__ObjectRef *r, const char *name) {
  koreo__agent__v1__envelope__init(e);
  koreo__agent__v1__trigger_event__init(t);
  koreo__agent__v1__object_ref__init(r);
  r->api_version = "v1";
  r->kind = "ConfigMap";
  r->name = (char *)name;
  t->type = KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED;
  t->object_ref = r;
  e->body_case = KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT;
  e->trigger_event = t;
}

static uint64_t push_named(kobl *l, const char *name) {
  kframe_envelope e;
  Koreo__Agent__V1__TriggerEvent t;
  Koreo__Agent__V1__ObjectRef r;
  event(&e, &t, &r, name);
  kframe_error fe = {0};
  uint64_t seq = kobl_push(l, &e, &fe);
  assert_int_equal(fe.code, 0);
  return seq;
}

/* The names of the held messages in replay order (comma-separated). */
static void held_names(kobl *l, char *out, size_t n) {
  kframe_outbox *ob = kobl_outbox(l);
  out[0] = 0;
  uint8_t *frame;
  size_t len;
  uint64_t seq;
  while (kframe_outbox_next(ob, 0, &frame, &len, &seq)) {
    kframe_envelope *env = NULL;
    assert_int_equal(kframe_decode_one(frame, len, 0, &env, NULL), KFRAME_OK);
    size_t k = strlen(out);
    snprintf(out + k, n - k, "%s%llu:%s", k ? "," : "", (unsigned long long)seq,
             env->trigger_event->object_ref->name);
    kframe_envelope_free(env);
    free(frame);
  }
  kframe_outbox_rewind(ob, 0);
}

static void test_append_ack_compact_reopen(void **state) {
  (void)state;
  char err[256];
  kobl *l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  char path[128];
  snprintf(path, sizeof path, "%s/outbox.log", g_dir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* with many messages held, one more send appends one record */
  for (int i = 0; i < 500; i++)
    assert_int_equal(push_named(l, "held"), (uint64_t)i + 1);
  size_t before = kobl_file_bytes(l);
  push_named(l, "one-more");
  size_t grew = kobl_file_bytes(l) - before;
  assert_true(grew < 100); /* one small record, not the 500 held ones */
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal((size_t)st.st_size, kobl_file_bytes(l));
  /* acks: the file is compacted once the acknowledged part dominates */
  assert_int_equal(kobl_ack(l, 501), 501);
  for (int i = 0; i < 3000; i++) {
    uint64_t seq = push_named(l, "x");
    kobl_ack(l, seq);
  }
  assert_true(kobl_compactions(l) >= 1);
  assert_true(kobl_file_bytes(l) < 200 * 1024);
  /* three held at close: a., b., c.; reopen restores them and the numbering */
  uint64_t a = push_named(l, "a");
  push_named(l, "b");
  push_named(l, "c");
  kobl_ack(l, a); /* a acknowledged */
  kobl_close(l);
  l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  char names[256];
  held_names(l, names, sizeof names);
  char want[256];
  snprintf(want, sizeof want, "%llu:b,%llu:c", (unsigned long long)a + 1,
           (unsigned long long)a + 2);
  assert_string_equal(names, want);
  assert_int_equal(push_named(l, "d"), a + 3);
  /* all acknowledged, reopened: nothing held, numbering kept */
  kobl_ack(l, a + 3);
  kobl_close(l);
  l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  assert_int_equal(kframe_outbox_count(kobl_outbox(l)), 0);
  assert_int_equal(push_named(l, "e"), a + 4);
  kobl_close(l);
}

static void test_torn_tail_dropped(void **state) {
  (void)state;
  char err[256];
  kobl *l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  push_named(l, "p");
  push_named(l, "q");
  kobl_close(l);
  char path[128];
  snprintf(path, sizeof path, "%s/outbox.log", g_dir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  /* a crash in the middle of appending "q": its last 5 bytes missing */
  assert_int_equal(truncate(path, st.st_size - 5), 0);
  l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  char names[256];
  held_names(l, names, sizeof names);
  assert_string_equal(names, "1:p");
  kobl_close(l);
  /* a flipped byte inside the only record: it is dropped too */
  l = kobl_open(g_dir, 0, err, sizeof err);
  kobl_close(l);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  char c;
  assert_int_equal(pread(fd, &c, 1, 20), 1);
  c ^= 0x40;
  assert_int_equal(pwrite(fd, &c, 1, 20), 1);
  close(fd);
  l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  assert_int_equal(kframe_outbox_count(kobl_outbox(l)), 0);
  kobl_close(l);
  /* not a journal at all: refused, the file is left alone */
  fd = open(path, O_WRONLY | O_TRUNC);
  assert_int_equal(write(fd, "garbage!!", 9), 9);
  close(fd);
  assert_null(kobl_open(g_dir, 0, err, sizeof err));
  assert_non_null(strstr(err, "not an outbox journal"));
}

static void test_migrates_outbox_bin(void **state) {
  (void)state;
  kframe_outbox *ob = kframe_outbox_new(0, 0);
  kframe_envelope e;
  Koreo__Agent__V1__TriggerEvent t;
  Koreo__Agent__V1__ObjectRef r;
  const char *ns[] = {"m1", "m2", "m3"};
  for (int i = 0; i < 3; i++) {
    event(&e, &t, &r, ns[i]);
    assert_true(kframe_outbox_push(ob, &e, NULL) > 0);
  }
  kframe_outbox_ack(ob, 1);
  char bin[128];
  snprintf(bin, sizeof bin, "%s/outbox.bin", g_dir);
  assert_true(kframe_outbox_save(ob, bin, NULL));
  kframe_outbox_free(ob);
  char err[256];
  kobl *l = kobl_open(g_dir, 0, err, sizeof err);
  if (!l) fail_msg("%s", err);
  char names[256];
  held_names(l, names, sizeof names);
  assert_string_equal(names, "2:m2,3:m3");
  assert_int_not_equal(access(bin, F_OK), 0); /* migrated */
  kobl_close(l);
  l = kobl_open(g_dir, 0, err, sizeof err);
  held_names(l, names, sizeof names);
  assert_string_equal(names, "2:m2,3:m3");
  kobl_close(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_append_ack_compact_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_torn_tail_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrates_outbox_bin, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
