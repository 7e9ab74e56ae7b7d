/*
 * tests/fuzz/fuzz_frame.c: libFuzzer target for the agent-protocol frame
 * decoder (koreo/frame.h).  The first input byte picks the mode:
 *   even: the rest is a raw byte stream, fed to a decoder in chunks whose
 *         sizes come from the first byte, and again in one piece and one
 *         byte at a time: all three must agree (same status, same envelopes,
 *         same number of bytes pending);
 *   odd:  the rest is one Envelope body; the target adds the length prefix
 *         so that the protobuf parser is reached directly.
 * Every decoded envelope must have a known body, re-encode, decode again to
 * the same packed bytes, and survive a trip through an outbox (sequence and
 * ack added at transmit time).  Errors must carry a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/frame.h"

#define FUZZ_MAX (1u << 20) /* small frame limit so oversize paths are reached */

typedef struct run {
  uint8_t *packed[256];
  size_t len[256];
  size_t n;
  kframe_status st;
  size_t pending;
} run;

static uint8_t *pack(const kframe_envelope *e, size_t *n) {
  *n = protobuf_c_message_get_packed_size(&e->base);
  uint8_t *p = malloc(*n + 1);
  if (!p) abort();
  protobuf_c_message_pack(&e->base, p);
  return p;
}

static void check_envelope(const kframe_envelope *e) {
  if (e->body_case < KOREO__AGENT__V1__ENVELOPE__BODY_HELLO ||
      e->body_case > KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE)
    abort(); /* the decoder must not emit an unknown type */
  size_t n1;
  uint8_t *p1 = pack(e, &n1);
  uint8_t *f;
  size_t fl;
  kframe_error err = {0};
  if (kframe_encode(e, 0, &f, &fl, &err) != KFRAME_OK) abort();
  kframe_envelope *again;
  if (kframe_decode_one(f, fl, 0, &again, &err) != KFRAME_OK) abort();
  size_t n2;
  uint8_t *p2 = pack(again, &n2);
  if (n1 != n2 || memcmp(p1, p2, n1) != 0) abort();
  kframe_envelope_free(again);
  free(f);

  /* through an outbox: same body, the given sequence and ack */
  kframe_outbox *ob = kframe_outbox_new(e->sequence % 1000, 0);
  uint64_t seq = kframe_outbox_push(ob, e, &err);
  if (seq == 0) abort();
  uint64_t got_seq;
  if (!kframe_outbox_next(ob, e->ack, &f, &fl, &got_seq) || got_seq != seq) abort();
  if (kframe_decode_one(f, fl, 0, &again, &err) != KFRAME_OK) abort();
  if (again->sequence != seq || again->ack != e->ack || again->body_case != e->body_case) abort();
  kframe_envelope_free(again);
  free(f);
  kframe_outbox_free(ob);
  free(p1);
  free(p2);
}

static bool on_env(kframe_envelope *e, void *ud) {
  run *r = ud;
  check_envelope(e);
  if (r->n < 256) {
    r->packed[r->n] = pack(e, &r->len[r->n]);
    r->n++;
  }
  kframe_envelope_free(e);
  return true;
}

static void decode(const uint8_t *p, size_t len, const uint8_t *sizes, size_t nsizes, run *r) {
  kframe_decoder *d = kframe_decoder_new(FUZZ_MAX);
  if (!d) abort();
  kframe_error err = {0};
  r->st = KFRAME_OK;
  size_t i = 0, k = 0;
  while (i < len && r->st == KFRAME_OK) {
    size_t c = nsizes ? (size_t)sizes[k++ % nsizes] + 1 : len;
    if (c > len - i) c = len - i;
    r->st = kframe_decoder_feed(d, p + i, c, on_env, r, &err);
    i += c;
  }
  if (r->st != KFRAME_OK && (err.code != r->st || err.msg[0] == '\0')) abort();
  r->pending = r->st == KFRAME_OK ? kframe_decoder_pending(d) : 0;
  kframe_decoder_free(d);
}

static void run_free(run *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->packed[i]);
}

static void same(const run *a, const run *b) {
  if (a->st != b->st || a->n != b->n || a->pending != b->pending) abort();
  for (size_t i = 0; i < a->n; i++)
    if (a->len[i] != b->len[i] || memcmp(a->packed[i], b->packed[i], a->len[i]) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  data++;
  size--;
  if (mode & 1) {
    uint8_t *f = malloc(size + KFRAME_HEADER);
    if (!f) abort();
    f[0] = (uint8_t)(size >> 24);
    f[1] = (uint8_t)(size >> 16);
    f[2] = (uint8_t)(size >> 8);
    f[3] = (uint8_t)size;
    if (size) memcpy(f + KFRAME_HEADER, data, size);
    kframe_envelope *e = NULL;
    kframe_error err = {0};
    kframe_status st = kframe_decode_one(f, size + KFRAME_HEADER, FUZZ_MAX, &e, &err);
    if (st == KFRAME_OK) {
      check_envelope(e);
      kframe_envelope_free(e);
    } else if (e || err.msg[0] == '\0') {
      abort();
    }
    free(f);
    return 0;
  }
  size_t nsizes = (mode >> 1) % 8; /* 0..7 chunk-size bytes follow */
  if (nsizes > size) nsizes = size;
  const uint8_t *sizes = data;
  data += nsizes;
  size -= nsizes;
  run whole = {0}, chunked = {0}, bytewise = {0};
  static const uint8_t one = 0;
  decode(data, size, NULL, 0, &whole);
  decode(data, size, sizes, nsizes, &chunked);
  decode(data, size, &one, 1, &bytewise);
  same(&whole, &chunked);
  same(&whole, &bytewise);
  run_free(&whole);
  run_free(&chunked);
  run_free(&bytewise);
  return 0;
}
