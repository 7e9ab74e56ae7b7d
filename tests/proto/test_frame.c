/*
 * tests/proto/test_frame.c: the agent protocol's framing and delivery
 * bookkeeping (include/koreo/frame.h, proto/frame.c): a round trip of every
 * message type, decoding from 1-byte and uneven chunks, rejection of
 * garbage / truncated / oversized / unknown-type frames with a reason, and
 * at-least-once delivery (outbox replay after a cut, inbox dedup).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "koreo/frame.h"

#define S(x) ((char *)(x))
#define BIN(x) ((ProtobufCBinaryData){strlen(x), (uint8_t *)(x)})

/* Every message of the protocol, filled with non-default values. */
typedef struct msgs {
  Koreo__Agent__V1__Hello hello;
  Koreo__Agent__V1__HelloAck hello_ack;
  Koreo__Agent__V1__Heartbeat heartbeat;
  Koreo__Agent__V1__WatchKind wk[2];
  Koreo__Agent__V1__WatchKind *wkp[2];
  Koreo__Agent__V1__WatchSet watch_set;
  Koreo__Agent__V1__ObjectRef ref;
  Koreo__Agent__V1__TriggerEvent trigger_event;
  Koreo__Agent__V1__TriggerObject tobj[2];
  Koreo__Agent__V1__TriggerObject *tobjp[2];
  Koreo__Agent__V1__TriggerSnapshot trigger_snapshot;
  Koreo__Agent__V1__Definition def;
  Koreo__Agent__V1__Definition *defp[1];
  Koreo__Agent__V1__DefinitionPush definition_push;
  Koreo__Agent__V1__OwnerReference owner;
  Koreo__Agent__V1__ApplyRequest apply_request;
  Koreo__Agent__V1__ManagedResource managed;
  Koreo__Agent__V1__ApplyResult apply_result;
  Koreo__Agent__V1__Condition cond[2];
  Koreo__Agent__V1__Condition *condp[2];
  Koreo__Agent__V1__StatusUpdate status_update;
  Koreo__Agent__V1__Error error;
  Koreo__Agent__V1__RegisterRequest register_request;
  Koreo__Agent__V1__RegisterResponse register_response;
  Koreo__Agent__V1__RenewRequest renew_request;
  Koreo__Agent__V1__RenewResponse renew_response;
} msgs;

static char *caps[] = {S("autonomy"), S("status-subresource")};
static char *hashes[] = {S("sha256:aa"), S("sha256:bb")};
static char *nss[] = {S("default"), S("team-a")};
static char *wfs[] = {S("hello-service")};

static void fill(msgs *m) {
  memset(m, 0, sizeof *m);
  m->hello = (Koreo__Agent__V1__Hello)KOREO__AGENT__V1__HELLO__INIT;
  m->hello.cluster_name = S("prod-eu");
  m->hello.agent_version = S("0.1.0");
  m->hello.n_capabilities = 2;
  m->hello.capabilities = caps;
  m->hello.last_acked_sequence = 1234567890123ull;
  m->hello.min_protocol_version = 1;
  m->hello.max_protocol_version = 3;
  m->hello.session_id = S("c0ffee");
  m->hello.n_cached_definition_hashes = 2;
  m->hello.cached_definition_hashes = hashes;

  m->hello_ack = (Koreo__Agent__V1__HelloAck)KOREO__AGENT__V1__HELLO_ACK__INIT;
  m->hello_ack.protocol_version = 1;
  m->hello_ack.last_acked_sequence = 77;
  m->hello_ack.server_version = S("cp-0.1");
  m->hello_ack.n_capabilities = 1;
  m->hello_ack.capabilities = caps;
  m->hello_ack.heartbeat_interval_ms = 15000;
  m->hello_ack.session_id = S("cp-session");

  m->heartbeat = (Koreo__Agent__V1__Heartbeat)KOREO__AGENT__V1__HEARTBEAT__INIT;
  m->heartbeat.sent_unix_ms = 1763800000123;

  for (int i = 0; i < 2; i++) {
    m->wk[i] = (Koreo__Agent__V1__WatchKind)KOREO__AGENT__V1__WATCH_KIND__INIT;
    m->wkp[i] = &m->wk[i];
  }
  m->wk[0].api_version = S("apps/v1");
  m->wk[0].kind = S("Deployment");
  m->wk[0].n_namespaces = 2;
  m->wk[0].namespaces = nss;
  m->wk[0].n_workflows = 1;
  m->wk[0].workflows = wfs;
  m->wk[1].api_version = S("acme.example.com/v1beta1");
  m->wk[1].kind = S("TriggerDummy");
  m->watch_set = (Koreo__Agent__V1__WatchSet)KOREO__AGENT__V1__WATCH_SET__INIT;
  m->watch_set.generation = 9;
  m->watch_set.n_kinds = 2;
  m->watch_set.kinds = m->wkp;

  m->ref = (Koreo__Agent__V1__ObjectRef)KOREO__AGENT__V1__OBJECT_REF__INIT;
  m->ref.api_version = S("apps/v1");
  m->ref.kind = S("Deployment");
  m->ref.namespace_ = S("default");
  m->ref.name = S("web");
  m->ref.uid = S("9f1c-uid");
  m->ref.resource_version = S("4711");

  m->trigger_event = (Koreo__Agent__V1__TriggerEvent)KOREO__AGENT__V1__TRIGGER_EVENT__INIT;
  m->trigger_event.type = KOREO__AGENT__V1__EVENT_TYPE__EVENT_TYPE_MODIFIED;
  m->trigger_event.object_ref = &m->ref;
  m->trigger_event.object_json = BIN("{\"kind\":\"Deployment\",\"spec\":{\"replicas\":3}}");
  m->trigger_event.watch_generation = 9;

  for (int i = 0; i < 2; i++) {
    m->tobj[i] = (Koreo__Agent__V1__TriggerObject)KOREO__AGENT__V1__TRIGGER_OBJECT__INIT;
    m->tobj[i].object_ref = &m->ref;
    m->tobjp[i] = &m->tobj[i];
  }
  m->tobj[0].object_json = BIN("{\"metadata\":{\"name\":\"web\"}}");
  m->trigger_snapshot = (Koreo__Agent__V1__TriggerSnapshot)KOREO__AGENT__V1__TRIGGER_SNAPSHOT__INIT;
  m->trigger_snapshot.snapshot_id = S("snap-1");
  m->trigger_snapshot.part = 2;
  m->trigger_snapshot.last = 1;
  m->trigger_snapshot.watch_generation = 9;
  m->trigger_snapshot.n_objects = 2;
  m->trigger_snapshot.objects = m->tobjp;

  m->def = (Koreo__Agent__V1__Definition)KOREO__AGENT__V1__DEFINITION__INIT;
  m->def.content_hash = S("sha256:0123abcd");
  m->def.api_version = S("koreo.dev/v1beta1");
  m->def.kind = S("ResourceFunction");
  m->def.namespace_ = S("koreo");
  m->def.name = S("service-factory");
  m->def.source = BIN("{\"spec\":{\"apiConfig\":{\"kind\":\"Service\"}}}");
  m->defp[0] = &m->def;
  m->definition_push = (Koreo__Agent__V1__DefinitionPush)KOREO__AGENT__V1__DEFINITION_PUSH__INIT;
  m->definition_push.n_definitions = 1;
  m->definition_push.definitions = m->defp;
  m->definition_push.n_retire_hashes = 1;
  m->definition_push.retire_hashes = hashes;

  m->owner = (Koreo__Agent__V1__OwnerReference)KOREO__AGENT__V1__OWNER_REFERENCE__INIT;
  m->owner.namespace_ = S("default");
  m->owner.api_version = S("apps/v1");
  m->owner.kind = S("Deployment");
  m->owner.name = S("web");
  m->owner.uid = S("9f1c-uid");
  m->owner.block_owner_deletion = 1;
  m->apply_request = (Koreo__Agent__V1__ApplyRequest)KOREO__AGENT__V1__APPLY_REQUEST__INIT;
  m->apply_request.request_id = S("run-42/service/3/1");
  m->apply_request.run_id = S("run-42");
  m->apply_request.step_label = S("service");
  m->apply_request.function_hash = S("sha256:0123abcd");
  m->apply_request.function_name = S("service-factory");
  m->apply_request.inputs_json = BIN("{\"port\":8080}");
  m->apply_request.owner = &m->owner;
  m->apply_request.in_for_each = 1;
  m->apply_request.for_each_index = 3;
  m->apply_request.trigger = &m->ref;
  m->apply_request.timeout_ms = 30000;

  m->managed = (Koreo__Agent__V1__ManagedResource)KOREO__AGENT__V1__MANAGED_RESOURCE__INIT;
  m->managed.api_version = S("v1");
  m->managed.kind = S("Service");
  m->managed.namespace_ = S("default");
  m->managed.name = S("web");
  m->managed.readonly = 1;
  m->apply_result = (Koreo__Agent__V1__ApplyResult)KOREO__AGENT__V1__APPLY_RESULT__INIT;
  m->apply_result.request_id = S("run-42/service/3/1");
  m->apply_result.run_id = S("run-42");
  m->apply_result.step_label = S("service");
  m->apply_result.in_for_each = 1;
  m->apply_result.for_each_index = 3;
  m->apply_result.outcome = KOREO__AGENT__V1__OUTCOME__OUTCOME_RETRY;
  m->apply_result.message = S("waiting for the Service's clusterIP");
  m->apply_result.location = S("service-factory:return");
  m->apply_result.retry_delay_seconds = 15;
  m->apply_result.return_json = BIN("{\"ip\":null}");
  m->apply_result.resource = &m->managed;
  m->apply_result.finished_unix_ms = -1;
  m->apply_result.autonomous = 1;

  for (int i = 0; i < 2; i++) {
    m->cond[i] = (Koreo__Agent__V1__Condition)KOREO__AGENT__V1__CONDITION__INIT;
    m->cond[i].status = S("True");
    m->cond[i].last_transition_time = S("2025-08-09T13:30:49.123456+00:00");
    m->cond[i].last_update_time = S("2025-08-09T13:30:49.123456+00:00");
    m->condp[i] = &m->cond[i];
  }
  m->cond[0].type = S("Service");
  m->cond[0].reason = S("Wait");
  m->cond[0].message = S("Awaiting Service to be ready.");
  m->cond[1].type = S("Ready");
  m->cond[1].reason = S("Ready");
  m->cond[1].message = S("Workflow hello-service ready.");
  m->cond[1].location = S("hello-service");
  m->status_update = (Koreo__Agent__V1__StatusUpdate)KOREO__AGENT__V1__STATUS_UPDATE__INIT;
  m->status_update.trigger = &m->ref;
  m->status_update.n_conditions = 2;
  m->status_update.conditions = m->condp;
  m->status_update.state_json = BIN("{\"port\":8080}");
  m->status_update.koreo_json = BIN("{\"errors\":null,\"locations\":null,\"state_errors\":null}");
  m->status_update.managed_resources = S("{\"workflow\":\"hello-service\",\"resources\":{}}");
  m->status_update.merge_conditions = 1;
  m->status_update.run_id = S("run-42");

  m->error = (Koreo__Agent__V1__Error)KOREO__AGENT__V1__ERROR__INIT;
  m->error.code = KOREO__AGENT__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_DEFINITION;
  m->error.message = S("no ResourceFunction with hash sha256:0123abcd");
  m->error.related_sequence = 17;
  m->error.fatal = 1;

  m->register_request = (Koreo__Agent__V1__RegisterRequest)KOREO__AGENT__V1__REGISTER_REQUEST__INIT;
  m->register_request.token = S("kbt.abc.secret.pin");
  m->register_request.csr_pem = S("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n");
  m->register_request.cluster_name = S("prod-eu");
  m->register_request.agent_version = S("0.1.0");
  m->register_response =
      (Koreo__Agent__V1__RegisterResponse)KOREO__AGENT__V1__REGISTER_RESPONSE__INIT;
  m->register_response.cert_pem = S("-----BEGIN CERTIFICATE-----\nAAA\n");
  m->register_response.ca_pem = S("-----BEGIN CERTIFICATE-----\nCCC\n");
  m->register_response.not_after_unix = 1795000000;
  m->renew_request = (Koreo__Agent__V1__RenewRequest)KOREO__AGENT__V1__RENEW_REQUEST__INIT;
  m->renew_request.csr_pem = S("-----BEGIN CERTIFICATE REQUEST-----\nNEW\n");
  m->renew_response = (Koreo__Agent__V1__RenewResponse)KOREO__AGENT__V1__RENEW_RESPONSE__INIT;
  m->renew_response.cert_pem = S("-----BEGIN CERTIFICATE-----\nNEW\n");
  m->renew_response.ca_pem = S("-----BEGIN CERTIFICATE-----\nCCC\n");
  m->renew_response.not_after_unix = 1796000000;
}

/* An envelope carrying message `b` of `m`. */
static kframe_envelope envelope_of(msgs *m, kframe_body b, uint64_t seq, uint64_t ack) {
  kframe_envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  e.sequence = seq;
  e.ack = ack;
  e.body_case = b;
  switch (b) {
  case KOREO__AGENT__V1__ENVELOPE__BODY_HELLO: e.hello = &m->hello; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_HELLO_ACK: e.hello_ack = &m->hello_ack; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT: e.heartbeat = &m->heartbeat; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET: e.watch_set = &m->watch_set; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT: e.trigger_event = &m->trigger_event; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT:
    e.trigger_snapshot = &m->trigger_snapshot;
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_DEFINITION_PUSH:
    e.definition_push = &m->definition_push;
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST: e.apply_request = &m->apply_request; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT: e.apply_result = &m->apply_result; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE: e.status_update = &m->status_update; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_ERROR: e.error = &m->error; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_REQUEST:
    e.register_request = &m->register_request;
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_RESPONSE:
    e.register_response = &m->register_response;
    break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_REQUEST: e.renew_request = &m->renew_request; break;
  case KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE:
    e.renew_response = &m->renew_response;
    break;
  default: break;
  }
  return e;
}

#define FIRST_BODY KOREO__AGENT__V1__ENVELOPE__BODY_HELLO
#define LAST_BODY KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE

/* Collects decoded envelopes. */
typedef struct sink {
  kframe_envelope *got[64];
  size_t n;
  size_t stop_after; /* 0: never stop */
} sink;

static bool collect(kframe_envelope *env, void *ud) {
  sink *s = ud;
  assert_true(s->n < 64);
  s->got[s->n++] = env;
  return !(s->stop_after && s->n >= s->stop_after);
}

static void sink_free(sink *s) {
  for (size_t i = 0; i < s->n; i++)
    kframe_envelope_free(s->got[i]);
  s->n = 0;
}

/* Two envelopes are equal when they pack to the same bytes. */
static void assert_same(const kframe_envelope *a, const kframe_envelope *b) {
  size_t na = protobuf_c_message_get_packed_size(&a->base);
  size_t nb = protobuf_c_message_get_packed_size(&b->base);
  assert_int_equal(na, nb);
  uint8_t *pa = malloc(na + 1), *pb = malloc(nb + 1);
  protobuf_c_message_pack(&a->base, pa);
  protobuf_c_message_pack(&b->base, pb);
  assert_memory_equal(pa, pb, na);
  free(pa);
  free(pb);
}

/* Feed `len` bytes to `d` in chunks of `chunk` bytes. */
static kframe_status feed_chunks(kframe_decoder *d, const uint8_t *p, size_t len, size_t chunk,
                                 sink *s, kframe_error *err) {
  kframe_status st = KFRAME_OK;
  for (size_t i = 0; i < len && st == KFRAME_OK; i += chunk) {
    size_t n = len - i < chunk ? len - i : chunk;
    st = kframe_decoder_feed(d, p + i, n, collect, s, err);
  }
  return st;
}

/* Every message type survives encode -> 1-byte-chunk decode unchanged. */
static void test_round_trip_every_message(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  for (int b = FIRST_BODY; b <= LAST_BODY; b++) {
    kframe_envelope e = envelope_of(&m, (kframe_body)b, (uint64_t)b * 1000003u, 42);
    uint8_t *frame;
    size_t len;
    kframe_error err = {0};
    assert_int_equal(kframe_encode(&e, 0, &frame, &len, &err), KFRAME_OK);
    assert_true(len > KFRAME_HEADER);
    /* the length prefix is big-endian and counts the body only */
    uint32_t n = ((uint32_t)frame[0] << 24) | ((uint32_t)frame[1] << 16) |
                 ((uint32_t)frame[2] << 8) | frame[3];
    assert_int_equal(n, len - KFRAME_HEADER);

    kframe_decoder *d = kframe_decoder_new(0);
    sink s = {0};
    assert_int_equal(feed_chunks(d, frame, len, 1, &s, &err), KFRAME_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.got[0]->body_case, b);
    assert_int_equal(s.got[0]->sequence, (uint64_t)b * 1000003u);
    assert_int_equal(s.got[0]->ack, 42);
    assert_string_not_equal(kframe_body_name((kframe_body)b), "unknown");
    assert_same(&e, s.got[0]);
    assert_int_equal(kframe_decoder_pending(d), 0);
    assert_int_equal(kframe_decoder_bytes(d), len);

    /* the one-shot decoder agrees */
    kframe_envelope *one;
    assert_int_equal(kframe_decode_one(frame, len, 0, &one, &err), KFRAME_OK);
    assert_same(&e, one);
    kframe_envelope_free(one);
    sink_free(&s);
    kframe_decoder_free(d);
    free(frame);
  }
}

/* Spot-check that field values (not just bytes) come back. */
static void test_round_trip_fields(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST, 5, 0);
  uint8_t *frame;
  size_t len;
  assert_int_equal(kframe_encode(&e, 0, &frame, &len, NULL), KFRAME_OK);
  kframe_envelope *got;
  assert_int_equal(kframe_decode_one(frame, len, 0, &got, NULL), KFRAME_OK);
  Koreo__Agent__V1__ApplyRequest *r = got->apply_request;
  assert_string_equal(r->request_id, "run-42/service/3/1");
  assert_string_equal(r->owner->uid, "9f1c-uid");
  assert_true(r->owner->block_owner_deletion);
  assert_int_equal(r->for_each_index, 3);
  assert_int_equal(r->inputs_json.len, strlen("{\"port\":8080}"));
  assert_memory_equal(r->inputs_json.data, "{\"port\":8080}", r->inputs_json.len);
  assert_string_equal(r->trigger->resource_version, "4711");
  kframe_envelope_free(got);
  free(frame);

  e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_HELLO, 0, 9);
  assert_int_equal(kframe_encode(&e, 0, &frame, &len, NULL), KFRAME_OK);
  assert_int_equal(kframe_decode_one(frame, len, 0, &got, NULL), KFRAME_OK);
  assert_string_equal(got->hello->cluster_name, "prod-eu");
  assert_int_equal(got->hello->n_capabilities, 2);
  assert_string_equal(got->hello->capabilities[1], "status-subresource");
  assert_int_equal(got->hello->last_acked_sequence, 1234567890123ull);
  assert_int_equal(got->hello->max_protocol_version, 3);
  kframe_envelope_free(got);
  free(frame);
}

/* A stream of every message, back to back, fed in many chunkings. */
static void test_stream_chunkings(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  uint8_t *stream = NULL;
  size_t total = 0;
  int count = 0;
  for (int b = FIRST_BODY; b <= LAST_BODY; b++, count++) {
    kframe_envelope e = envelope_of(&m, (kframe_body)b, (uint64_t)count + 1, 0);
    uint8_t *f;
    size_t n;
    assert_int_equal(kframe_encode(&e, 0, &f, &n, NULL), KFRAME_OK);
    stream = realloc(stream, total + n);
    memcpy(stream + total, f, n);
    total += n;
    free(f);
  }
  size_t chunks[] = {1, 2, 3, 5, 7, 64, 1000, total};
  for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
    kframe_decoder *d = kframe_decoder_new(0);
    sink s = {0};
    kframe_error err = {0};
    assert_int_equal(feed_chunks(d, stream, total, chunks[c], &s, &err), KFRAME_OK);
    assert_int_equal(s.n, count);
    for (size_t i = 0; i < s.n; i++) {
      assert_int_equal(s.got[i]->sequence, i + 1);
      assert_int_equal(s.got[i]->body_case, FIRST_BODY + (int)i);
    }
    assert_int_equal(kframe_decoder_frames(d), count);
    assert_int_equal(kframe_decoder_pending(d), 0);
    sink_free(&s);
    kframe_decoder_free(d);
  }
  free(stream);
}

/* An HTTP request sent to the agent port: its first 4 bytes read as a huge
 * length, so the peer is refused before anything is buffered. */
static void test_garbage_rejected(void **state) {
  (void)state;
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  kframe_decoder *d = kframe_decoder_new(0);
  sink s = {0};
  kframe_error err = {0};
  assert_int_equal(kframe_decoder_feed(d, (const uint8_t *)http, strlen(http), collect, &s, &err),
                   KFRAME_ERR_OVERSIZE);
  assert_non_null(strstr(err.msg, "exceeds the limit"));
  assert_int_equal(s.n, 0);
  kframe_decoder_free(d);

  /* a plausible length followed by bytes that are not protobuf */
  const uint8_t bad[] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
  d = kframe_decoder_new(0);
  assert_int_equal(kframe_decoder_feed(d, bad, sizeof bad, collect, &s, &err),
                   KFRAME_ERR_MALFORMED);
  assert_string_equal(kframe_status_name(err.code), "malformed");
  assert_non_null(strstr(err.msg, "not a valid koreo.agent.v1.Envelope"));
  assert_int_equal(s.n, 0);
  kframe_decoder_free(d);

  /* an empty frame */
  const uint8_t empty[] = {0, 0, 0, 0};
  d = kframe_decoder_new(0);
  assert_int_equal(kframe_decoder_feed(d, empty, sizeof empty, collect, &s, &err),
                   KFRAME_ERR_MALFORMED);
  assert_non_null(strstr(err.msg, "empty frame"));
  kframe_decoder_free(d);

  /* field number 0 (an over-long tag varint that libprotobuf-c would accept) */
  const uint8_t field0[] = {0, 0, 0, 8, 0x72, 0x00, 0x82, 0x00, 0x03, 0x72, 0x00, 0x00};
  d = kframe_decoder_new(0);
  assert_int_equal(kframe_decoder_feed(d, field0, sizeof field0, collect, &s, &err),
                   KFRAME_ERR_MALFORMED);
  assert_non_null(strstr(err.msg, "field number 0"));
  assert_int_equal(s.n, 0);
  kframe_decoder_free(d);

  /* a string field whose length runs past the frame end */
  const uint8_t trunc_field[] = {0, 0, 0, 4, 0x52, 0x0a, 'a', 'b'}; /* field 10, len 10 */
  d = kframe_decoder_new(0);
  assert_int_equal(kframe_decoder_feed(d, trunc_field, sizeof trunc_field, collect, &s, &err),
                   KFRAME_ERR_MALFORMED);
  kframe_decoder_free(d);
}

/* A frame cut short: nothing is emitted and the partial bytes stay pending
 * (at end of stream the caller reports a truncated frame). */
static void test_truncated_frame(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE, 3, 0);
  uint8_t *f;
  size_t n;
  assert_int_equal(kframe_encode(&e, 0, &f, &n, NULL), KFRAME_OK);
  for (size_t cut = 1; cut < n; cut += 7) {
    kframe_decoder *d = kframe_decoder_new(0);
    sink s = {0};
    assert_int_equal(kframe_decoder_feed(d, f, cut, collect, &s, NULL), KFRAME_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(kframe_decoder_pending(d), cut);
    kframe_decoder_free(d);
    kframe_envelope *one = NULL;
    kframe_error err = {0};
    assert_int_equal(kframe_decode_one(f, cut, 0, &one, &err), KFRAME_ERR_MALFORMED);
    assert_null(one);
  }
  /* one extra trailing byte is not "exactly one frame" either */
  uint8_t *g = malloc(n + 1);
  memcpy(g, f, n);
  g[n] = 0;
  kframe_envelope *one = NULL;
  assert_int_equal(kframe_decode_one(g, n + 1, 0, &one, NULL), KFRAME_ERR_MALFORMED);
  free(g);
  free(f);
}

/* Oversized frames are refused from the length prefix, on both sides. */
static void test_oversized_frame(void **state) {
  (void)state;
  /* 16 MiB + 1 announced: refused after the 4 header bytes */
  uint32_t big = KFRAME_MAX_DEFAULT + 1;
  uint8_t hdr[4] = {(uint8_t)(big >> 24), (uint8_t)(big >> 16), (uint8_t)(big >> 8), (uint8_t)big};
  kframe_decoder *d = kframe_decoder_new(0);
  sink s = {0};
  kframe_error err = {0};
  assert_int_equal(kframe_decoder_feed(d, hdr, 3, collect, &s, &err), KFRAME_OK);
  assert_int_equal(kframe_decoder_feed(d, hdr + 3, 1, collect, &s, &err), KFRAME_ERR_OVERSIZE);
  assert_non_null(strstr(err.msg, "16777217"));
  kframe_decoder_free(d);

  /* exactly the limit is allowed by the length check (and then needs a body) */
  uint32_t lim = KFRAME_MAX_DEFAULT;
  uint8_t hdr2[4] = {(uint8_t)(lim >> 24), (uint8_t)(lim >> 16), (uint8_t)(lim >> 8), (uint8_t)lim};
  d = kframe_decoder_new(0);
  assert_int_equal(kframe_decoder_feed(d, hdr2, 4, collect, &s, &err), KFRAME_OK);
  assert_int_equal(kframe_decoder_pending(d), 4);
  kframe_decoder_free(d);

  /* a small limit applies to encoder and decoder alike */
  msgs m;
  fill(&m);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT, 1, 0);
  uint8_t *f;
  size_t n;
  assert_int_equal(kframe_encode(&e, 64, &f, &n, &err), KFRAME_ERR_OVERSIZE);
  assert_null(f);
  assert_int_equal(kframe_encode(&e, 0, &f, &n, &err), KFRAME_OK);
  d = kframe_decoder_new(64);
  assert_int_equal(kframe_decoder_feed(d, f, n, collect, &s, &err), KFRAME_ERR_OVERSIZE);
  assert_int_equal(s.n, 0);
  kframe_decoder_free(d);
  free(f);
}

/* An envelope with no body, or with a body number this build does not know
 * (a newer peer's message), is an unknown message type. */
static void test_unknown_type(void **state) {
  (void)state;
  /* sequence 1 + field 99 (length-delimited, empty) */
  const uint8_t unknown[] = {0, 0, 0, 5, 0x08, 0x01, 0x9a, 0x06, 0x00};
  kframe_decoder *d = kframe_decoder_new(0);
  sink s = {0};
  kframe_error err = {0};
  assert_int_equal(kframe_decoder_feed(d, unknown, sizeof unknown, collect, &s, &err),
                   KFRAME_ERR_UNKNOWN_TYPE);
  assert_non_null(strstr(err.msg, "no known message type"));
  assert_int_equal(s.n, 0);
  kframe_decoder_free(d);

  /* only sequence and ack, no body */
  const uint8_t nobody[] = {0, 0, 0, 4, 0x08, 0x07, 0x10, 0x03};
  kframe_envelope *one = NULL;
  assert_int_equal(kframe_decode_one(nobody, sizeof nobody, 0, &one, &err),
                   KFRAME_ERR_UNKNOWN_TYPE);
  assert_null(one);

  /* and the encoder refuses to produce one */
  kframe_envelope e = KOREO__AGENT__V1__ENVELOPE__INIT;
  uint8_t *f;
  size_t n;
  assert_int_equal(kframe_encode(&e, 0, &f, &n, &err), KFRAME_ERR_INVALID);
}

/* After an error the decoder stays failed: valid frames that follow on the
 * same connection are not delivered; another connection's decoder is not
 * affected. */
static void test_error_is_sticky_and_local(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT, 0, 0);
  uint8_t *f;
  size_t n;
  assert_int_equal(kframe_encode(&e, 0, &f, &n, NULL), KFRAME_OK);
  const uint8_t bad[] = {0, 0, 0, 2, 0xff, 0xff};
  kframe_decoder *a = kframe_decoder_new(0), *b = kframe_decoder_new(0);
  sink sa = {0}, sb = {0};
  kframe_error err = {0};
  assert_int_equal(kframe_decoder_feed(a, f, n, collect, &sa, &err), KFRAME_OK);
  assert_int_equal(kframe_decoder_feed(a, bad, sizeof bad, collect, &sa, &err),
                   KFRAME_ERR_MALFORMED);
  memset(&err, 0, sizeof err);
  assert_int_equal(kframe_decoder_feed(a, f, n, collect, &sa, &err), KFRAME_ERR_MALFORMED);
  assert_int_equal(err.code, KFRAME_ERR_MALFORMED); /* the reason is repeated */
  assert_int_equal(sa.n, 1);
  assert_int_equal(kframe_decoder_feed(b, f, n, collect, &sb, &err), KFRAME_OK);
  assert_int_equal(kframe_decoder_feed(b, f, n, collect, &sb, &err), KFRAME_OK);
  assert_int_equal(sb.n, 2);
  sink_free(&sa);
  sink_free(&sb);
  kframe_decoder_free(a);
  kframe_decoder_free(b);
  free(f);
}

/* The receiver's callback can stop decoding mid-chunk. */
static void test_callback_stops(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT, 0, 0);
  uint8_t *f;
  size_t n;
  assert_int_equal(kframe_encode(&e, 0, &f, &n, NULL), KFRAME_OK);
  uint8_t *two = malloc(2 * n);
  memcpy(two, f, n);
  memcpy(two + n, f, n);
  kframe_decoder *d = kframe_decoder_new(0);
  sink s = {.stop_after = 1};
  assert_int_equal(kframe_decoder_feed(d, two, 2 * n, collect, &s, NULL), KFRAME_ERR_STOPPED);
  assert_int_equal(s.n, 1);
  sink_free(&s);
  kframe_decoder_free(d);
  free(two);
  free(f);
}

/* Receiver dedup by sequence. */
static void test_inbox(void **state) {
  (void)state;
  kframe_inbox in = {0};
  assert_int_equal(kframe_inbox_accept(&in, 0), KFRAME_UNSEQUENCED);
  assert_int_equal(kframe_inbox_accept(&in, 1), KFRAME_DELIVER);
  assert_int_equal(kframe_inbox_accept(&in, 2), KFRAME_DELIVER);
  assert_int_equal(kframe_inbox_accept(&in, 2), KFRAME_DUPLICATE);
  assert_int_equal(kframe_inbox_accept(&in, 1), KFRAME_DUPLICATE);
  assert_int_equal(kframe_inbox_accept(&in, 5), KFRAME_GAP);
  assert_int_equal(kframe_inbox_accept(&in, 6), KFRAME_DELIVER);
  assert_int_equal(in.last, 6);
  assert_int_equal(in.duplicates, 2);
  assert_int_equal(in.gaps, 1);
  /* restored from persisted state */
  kframe_inbox r = {.last = 6};
  assert_int_equal(kframe_inbox_accept(&r, 6), KFRAME_DUPLICATE);
  assert_int_equal(kframe_inbox_accept(&r, 7), KFRAME_DELIVER);
}

/* One side of a connection in the test: an outbox to send, an inbox to
 * receive, and what it processed (sequence numbers, in order). */
typedef struct peer {
  kframe_outbox *out;
  kframe_inbox in;
  uint64_t processed[64];
  size_t n_processed;
} peer;

typedef struct wire_ctx {
  peer *to;
} wire_ctx;

static bool receive(kframe_envelope *env, void *ud) {
  wire_ctx *w = ud;
  kframe_verdict v = kframe_inbox_accept(&w->to->in, env->sequence);
  if (v == KFRAME_DELIVER || v == KFRAME_GAP)
    w->to->processed[w->to->n_processed++] = env->sequence;
  kframe_envelope_free(env);
  return true;
}

/* Send from `from` to `to` every unsent message, but only the first `deliver`
 * frames reach the receiver (the rest are lost on a cut connection). */
static size_t transmit(peer *from, peer *to, kframe_decoder *d, size_t deliver) {
  uint8_t *f;
  size_t n;
  uint64_t seq;
  size_t sent = 0;
  wire_ctx w = {to};
  while (kframe_outbox_next(from->out, from->in.last, &f, &n, &seq)) {
    if (sent < deliver)
      assert_int_equal(kframe_decoder_feed(d, f, n, receive, &w, NULL), KFRAME_OK);
    sent++;
    free(f);
  }
  return sent;
}

/* At-least-once across a cut: every message arrives, none is processed
 * twice, acks free the outbox. */
static void test_outbox_replay_after_cut(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  peer agent = {.out = kframe_outbox_new(0, 0)};
  peer cp = {.out = kframe_outbox_new(0, 0)};
  for (int i = 0; i < 5; i++) {
    kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT, 99, 99);
    assert_int_equal(kframe_outbox_push(agent.out, &e, NULL), (uint64_t)i + 1);
  }
  assert_int_equal(kframe_outbox_count(agent.out), 5);
  assert_true(kframe_outbox_bytes(agent.out) > 0);

  /* connection 1: only 3 of 5 frames arrive before the cut */
  kframe_decoder *d1 = kframe_decoder_new(0);
  assert_int_equal(transmit(&agent, &cp, d1, 3), 5);
  kframe_decoder_free(d1);
  assert_int_equal(cp.in.last, 3);
  /* nothing more to send on this connection */
  uint8_t *f;
  size_t n;
  assert_false(kframe_outbox_next(agent.out, 0, &f, &n, NULL));

  /* the agent queues two more while disconnected */
  for (int i = 0; i < 2; i++) {
    kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT, 0, 0);
    assert_int_equal(kframe_outbox_push(agent.out, &e, NULL), (uint64_t)6 + i);
  }

  /* connection 2: HelloAck says the control plane processed up to 3 */
  kframe_outbox_rewind(agent.out, cp.in.last);
  assert_int_equal(kframe_outbox_count(agent.out), 4);
  assert_int_equal(kframe_outbox_first_seq(agent.out), 4);
  kframe_decoder *d2 = kframe_decoder_new(0);
  assert_int_equal(transmit(&agent, &cp, d2, SIZE_MAX), 4);
  kframe_decoder_free(d2);

  /* connection 3: a stale ack (the ack was lost) replays everything held;
   * the receiver drops the duplicates */
  kframe_outbox_rewind(agent.out, 3);
  kframe_decoder *d3 = kframe_decoder_new(0);
  assert_int_equal(transmit(&agent, &cp, d3, SIZE_MAX), 4);
  kframe_decoder_free(d3);
  assert_int_equal(cp.in.duplicates, 4);

  assert_int_equal(cp.n_processed, 7);
  for (size_t i = 0; i < 7; i++)
    assert_int_equal(cp.processed[i], i + 1);

  /* the control plane's ack (piggybacked on any frame) empties the outbox */
  assert_int_equal(kframe_outbox_ack(agent.out, cp.in.last), 4);
  assert_int_equal(kframe_outbox_count(agent.out), 0);
  assert_int_equal(kframe_outbox_bytes(agent.out), 0);
  assert_int_equal(kframe_outbox_first_seq(agent.out), 0);
  assert_int_equal(kframe_outbox_last_seq(agent.out), 7);
  kframe_outbox_free(agent.out);
  kframe_outbox_free(cp.out);
}

/* Frames from the outbox carry the sequence, the current ack, and the
 * original body; the ack is refreshed on replay. */
static void test_outbox_frames(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  kframe_outbox *ob = kframe_outbox_new(41, 0);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE, 0, 0);
  assert_int_equal(kframe_outbox_push(ob, &e, NULL), 42);
  uint8_t *f;
  size_t n;
  uint64_t seq;
  assert_true(kframe_outbox_next(ob, 0, &f, &n, &seq));
  assert_int_equal(seq, 42);
  kframe_envelope *got;
  assert_int_equal(kframe_decode_one(f, n, 0, &got, NULL), KFRAME_OK);
  assert_int_equal(got->sequence, 42);
  assert_int_equal(got->ack, 0);
  e.sequence = 42;
  assert_same(&e, got);
  kframe_envelope_free(got);
  free(f);

  kframe_outbox_rewind(ob, 0);
  assert_true(kframe_outbox_next(ob, 300000000000ull, &f, &n, &seq));
  assert_int_equal(kframe_decode_one(f, n, 0, &got, NULL), KFRAME_OK);
  assert_int_equal(got->sequence, 42);
  assert_int_equal(got->ack, 300000000000ull);
  e.ack = 300000000000ull;
  assert_same(&e, got);
  kframe_envelope_free(got);
  free(f);

  /* many pushes and partial acks keep order (exercises growth/compaction) */
  for (int i = 0; i < 100; i++) {
    assert_int_equal(kframe_outbox_push(ob, &e, NULL), (uint64_t)43 + i);
    if (i % 3 == 0) kframe_outbox_ack(ob, (uint64_t)(43 + i / 2));
  }
  kframe_outbox_rewind(ob, 100);
  uint64_t expect = kframe_outbox_first_seq(ob);
  assert_int_equal(expect, 101);
  while (kframe_outbox_next(ob, 0, &f, &n, &seq)) {
    assert_int_equal(seq, expect++);
    free(f);
  }
  assert_int_equal(expect, 143);
  /* an ack beyond the last sequence clears everything and is harmless */
  assert_int_equal(kframe_outbox_ack(ob, 1000), 42);
  assert_int_equal(kframe_outbox_count(ob), 0);
  kframe_outbox_free(ob);
}

/* A 1 MiB trigger object survives any chunking (the decoder's buffer grows
 * with the bytes that arrive; a chunk holding a whole frame is decoded in
 * place). */
static void test_large_frame(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  size_t big = 1u << 20;
  uint8_t *obj = malloc(big);
  for (size_t i = 0; i < big; i++)
    obj[i] = (uint8_t)('a' + i % 26);
  m.trigger_event.object_json = (ProtobufCBinaryData){big, obj};
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT, 8, 0);
  uint8_t *f;
  size_t n;
  assert_int_equal(kframe_encode(&e, 0, &f, &n, NULL), KFRAME_OK);
  size_t chunks[] = {3, 1000, 65537, n};
  for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
    kframe_decoder *d = kframe_decoder_new(0);
    sink s = {0};
    assert_int_equal(feed_chunks(d, f, n, chunks[c], &s, NULL), KFRAME_OK);
    /* and a second frame right behind it in the same feed */
    assert_int_equal(kframe_decoder_feed(d, f, n, collect, &s, NULL), KFRAME_OK);
    assert_int_equal(s.n, 2);
    for (size_t k = 0; k < 2; k++) {
      assert_int_equal(s.got[k]->trigger_event->object_json.len, big);
      assert_memory_equal(s.got[k]->trigger_event->object_json.data, obj, big);
    }
    sink_free(&s);
    kframe_decoder_free(d);
  }
  free(f);
  free(obj);
}

/* A bounded outbox refuses more than it may hold, and an envelope without a
 * body. */
static void test_outbox_limits(void **state) {
  (void)state;
  msgs m;
  fill(&m);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT, 0, 0);
  size_t one = protobuf_c_message_get_packed_size(&e.base);
  kframe_outbox *ob = kframe_outbox_new(0, one * 2);
  kframe_error err = {0};
  assert_int_equal(kframe_outbox_push(ob, &e, &err), 1);
  assert_int_equal(kframe_outbox_push(ob, &e, &err), 2);
  assert_int_equal(kframe_outbox_push(ob, &e, &err), 0);
  assert_int_equal(err.code, KFRAME_ERR_OVERSIZE);
  assert_non_null(strstr(err.msg, "full"));
  assert_int_equal(kframe_outbox_ack(ob, 1), 1);
  assert_int_equal(kframe_outbox_push(ob, &e, &err), 3);
  kframe_envelope none = KOREO__AGENT__V1__ENVELOPE__INIT;
  assert_int_equal(kframe_outbox_push(ob, &none, &err), 0);
  assert_int_equal(err.code, KFRAME_ERR_INVALID);
  kframe_outbox_free(ob);
}

/* A scratch path for a saved outbox (removed by the caller). */
static void scratch_path(char *buf, size_t n) {
  const char *dir = getenv("TMPDIR");
  snprintf(buf, n, "%s/koreo-test-outbox-%ld", dir && *dir ? dir : "/tmp", (long)getpid());
}

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  uint8_t *p = malloc(1 << 16);
  *n = fread(p, 1, 1 << 16, f);
  fclose(f);
  return p;
}

/* A restarted agent replays exactly what the peer never acknowledged, with
 * the same sequences, and continues numbering after the last one. */
static void test_outbox_save_load(void **state) {
  (void)state;
  char path[256];
  scratch_path(path, sizeof path);
  msgs m;
  fill(&m);
  kframe_outbox *ob = kframe_outbox_new(10, 0);
  kframe_body kinds[] = {KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT,
                         KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT,
                         KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE,
                         KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT};
  for (int i = 0; i < 4; i++) {
    kframe_envelope e = envelope_of(&m, kinds[i], 0, 0);
    assert_int_equal(kframe_outbox_push(ob, &e, NULL), (uint64_t)11 + i);
  }
  kframe_outbox_ack(ob, 11); /* the peer had the first one */
  kframe_error err = {0};
  assert_true(kframe_outbox_save(ob, path, &err));
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  kframe_outbox *back = kframe_outbox_load(path, 0, &err);
  assert_non_null(back);
  assert_int_equal(kframe_outbox_count(back), 3);
  assert_int_equal(kframe_outbox_first_seq(back), 12);
  assert_int_equal(kframe_outbox_last_seq(back), 14);
  assert_int_equal(kframe_outbox_bytes(back), kframe_outbox_bytes(ob));
  for (int i = 1; i < 4; i++) {
    uint8_t *fa, *fb;
    size_t na, nb;
    uint64_t sa, sb;
    assert_true(kframe_outbox_next(ob, 5, &fa, &na, &sa));
    assert_true(kframe_outbox_next(back, 5, &fb, &nb, &sb));
    assert_int_equal(sa, sb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    kframe_envelope *got;
    assert_int_equal(kframe_decode_one(fb, nb, 0, &got, NULL), KFRAME_OK);
    assert_int_equal(got->body_case, kinds[i]);
    kframe_envelope_free(got);
    free(fa);
    free(fb);
  }
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT, 0, 0);
  assert_int_equal(kframe_outbox_push(back, &e, NULL), 15);
  kframe_outbox_free(back);

  /* an empty outbox keeps its numbering */
  kframe_outbox_ack(ob, 100);
  assert_true(kframe_outbox_save(ob, path, &err));
  back = kframe_outbox_load(path, 0, &err);
  assert_non_null(back);
  assert_int_equal(kframe_outbox_count(back), 0);
  assert_int_equal(kframe_outbox_last_seq(back), 14);
  kframe_outbox_free(back);
  kframe_outbox_free(ob);
  unlink(path);
}

/* Damaged, truncated, foreign or missing files are refused with a reason. */
static void test_outbox_load_refuses_damage(void **state) {
  (void)state;
  char path[256];
  scratch_path(path, sizeof path);
  msgs m;
  fill(&m);
  kframe_outbox *ob = kframe_outbox_new(0, 0);
  kframe_envelope e = envelope_of(&m, KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT, 0, 0);
  kframe_outbox_push(ob, &e, NULL);
  kframe_outbox_push(ob, &e, NULL);
  kframe_error err = {0};
  assert_true(kframe_outbox_save(ob, path, &err));
  size_t n;
  uint8_t *good = read_bytes(path, &n);
  assert_true(n > 40);

  /* every flipped byte and every truncation is detected */
  for (size_t i = 0; i < n; i++) {
    good[i] ^= 0x20;
    write_bytes(path, good, n);
    good[i] ^= 0x20;
    memset(&err, 0, sizeof err);
    assert_null(kframe_outbox_load(path, 0, &err));
    assert_int_equal(err.code, KFRAME_ERR_MALFORMED);
  }
  for (size_t cut = 0; cut < n; cut += 5) {
    write_bytes(path, good, cut);
    assert_null(kframe_outbox_load(path, 0, &err));
    assert_int_equal(err.code, KFRAME_ERR_MALFORMED);
  }
  write_bytes(path, good, n);
  kframe_outbox *back = kframe_outbox_load(path, 0, &err);
  assert_non_null(back);
  kframe_outbox_free(back);
  /* bounded load */
  assert_null(kframe_outbox_load(path, 10, &err));
  assert_int_equal(err.code, KFRAME_ERR_OVERSIZE);

  unlink(path);
  assert_null(kframe_outbox_load(path, 0, &err));
  assert_int_equal(err.code, KFRAME_ERR_IO);
  assert_non_null(strstr(err.msg, "No such file"));
  /* a directory that does not exist cannot be written */
  assert_false(kframe_outbox_save(ob, "/nonexistent-dir/outbox", &err));
  assert_int_equal(err.code, KFRAME_ERR_IO);
  assert_non_null(strstr(err.msg, "/nonexistent-dir/outbox.tmp"));
  free(good);
  kframe_outbox_free(ob);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_every_message),
      cmocka_unit_test(test_round_trip_fields),
      cmocka_unit_test(test_stream_chunkings),
      cmocka_unit_test(test_large_frame),
      cmocka_unit_test(test_garbage_rejected),
      cmocka_unit_test(test_truncated_frame),
      cmocka_unit_test(test_oversized_frame),
      cmocka_unit_test(test_unknown_type),
      cmocka_unit_test(test_error_is_sticky_and_local),
      cmocka_unit_test(test_callback_stops),
      cmocka_unit_test(test_inbox),
      cmocka_unit_test(test_outbox_replay_after_cut),
      cmocka_unit_test(test_outbox_frames),
      cmocka_unit_test(test_outbox_limits),
      cmocka_unit_test(test_outbox_save_load),
      cmocka_unit_test(test_outbox_load_refuses_damage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
