/*
 * proto/frame.c: agent-protocol framing (4-byte big-endian length + one
 * Envelope), the incremental stream decoder, and the at-least-once delivery
 * bookkeeping (outbox replay, inbox dedup).  API and contracts:
 * include/koreo/frame.h; wire rules: docs/agent-protocol.md.
 */
#include "koreo/frame.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_err(kframe_error *err, kframe_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(kframe_error *err, kframe_status code, const char *fmt, ...) {
  if (!err) return;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
}

const char *kframe_status_name(kframe_status s) {
  switch (s) {
  case KFRAME_OK: return "ok";
  case KFRAME_ERR_OVERSIZE: return "oversize";
  case KFRAME_ERR_MALFORMED: return "malformed";
  case KFRAME_ERR_UNKNOWN_TYPE: return "unknown_type";
  case KFRAME_ERR_STOPPED: return "stopped";
  case KFRAME_ERR_NOMEM: return "nomem";
  case KFRAME_ERR_INVALID: return "invalid";
  case KFRAME_ERR_IO: return "io";
  }
  return "unknown";
}

const char *kframe_body_name(kframe_body b) {
  switch (b) {
  case KOREO__AGENT__V1__ENVELOPE__BODY__NOT_SET: return "none";
  case KOREO__AGENT__V1__ENVELOPE__BODY_HELLO: return "hello";
  case KOREO__AGENT__V1__ENVELOPE__BODY_HELLO_ACK: return "hello_ack";
  case KOREO__AGENT__V1__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
  case KOREO__AGENT__V1__ENVELOPE__BODY_WATCH_SET: return "watch_set";
  case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_EVENT: return "trigger_event";
  case KOREO__AGENT__V1__ENVELOPE__BODY_TRIGGER_SNAPSHOT: return "trigger_snapshot";
  case KOREO__AGENT__V1__ENVELOPE__BODY_DEFINITION_PUSH: return "definition_push";
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_REQUEST: return "apply_request";
  case KOREO__AGENT__V1__ENVELOPE__BODY_APPLY_RESULT: return "apply_result";
  case KOREO__AGENT__V1__ENVELOPE__BODY_STATUS_UPDATE: return "status_update";
  case KOREO__AGENT__V1__ENVELOPE__BODY_ERROR: return "error";
  case KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_REQUEST: return "register_request";
  case KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_RESPONSE: return "register_response";
  case KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_REQUEST: return "renew_request";
  case KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE: return "renew_response";
  default: break;
  }
  return "unknown";
}

/* Is `b` a message type this build knows (not NOT_SET, not out of range)? */
static bool body_known(kframe_body b) {
  return b >= KOREO__AGENT__V1__ENVELOPE__BODY_HELLO &&
         b <= KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static size_t limit_of(size_t max) { return max ? max : KFRAME_MAX_DEFAULT; }

kframe_status kframe_encode(const kframe_envelope *env, size_t max, uint8_t **out, size_t *out_len,
                            kframe_error *err) {
  *out = NULL;
  *out_len = 0;
  if (!env || !body_known(env->body_case)) {
    set_err(err, KFRAME_ERR_INVALID, "frame encode: envelope has no known body (case %d)",
            env ? (int)env->body_case : -1);
    return KFRAME_ERR_INVALID;
  }
  size_t n = protobuf_c_message_get_packed_size(&env->base);
  if (n > limit_of(max)) {
    set_err(err, KFRAME_ERR_OVERSIZE, "frame encode: %s envelope is %zu bytes, limit %zu",
            kframe_body_name(env->body_case), n, limit_of(max));
    return KFRAME_ERR_OVERSIZE;
  }
  uint8_t *buf = malloc(KFRAME_HEADER + n);
  if (!buf) {
    set_err(err, KFRAME_ERR_NOMEM, "frame encode: out of memory for %zu bytes", n);
    return KFRAME_ERR_NOMEM;
  }
  put_be32(buf, (uint32_t)n);
  protobuf_c_message_pack(&env->base, buf + KFRAME_HEADER);
  *out = buf;
  *out_len = KFRAME_HEADER + n;
  return KFRAME_OK;
}

void kframe_envelope_free(kframe_envelope *env) {
  if (env) koreo__agent__v1__envelope__free_unpacked(env, NULL);
}

/* Does `m` or any message inside it carry an unknown field numbered 0?
 * Field number 0 is invalid protobuf, but libprotobuf-c accepts it when the
 * tag is an over-long varint and then re-packs bytes it would itself refuse;
 * such an envelope is malformed. */
static bool has_field_zero(const ProtobufCMessage *m) {
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        if (items[k] && has_field_zero(items[k])) return true;
      continue;
    }
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(base + f->quantifier_offset) != f->id)
      continue;
    const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
    if (sub && has_field_zero(sub)) return true;
  }
  return false;
}

/* Unpack one body of n bytes that started at stream offset `at`. */
static kframe_status unpack_body(const uint8_t *p, size_t n, uint64_t at, kframe_envelope **out,
                                 kframe_error *err) {
  *out = NULL;
  if (n == 0) {
    set_err(err, KFRAME_ERR_MALFORMED, "frame at byte %llu: empty frame (length 0)",
            (unsigned long long)at);
    return KFRAME_ERR_MALFORMED;
  }
  kframe_envelope *env = koreo__agent__v1__envelope__unpack(NULL, n, p);
  if (!env) {
    set_err(err, KFRAME_ERR_MALFORMED,
            "frame at byte %llu: %zu bytes are not a valid koreo.agent.v1.Envelope",
            (unsigned long long)at, n);
    return KFRAME_ERR_MALFORMED;
  }
  if (has_field_zero(&env->base)) {
    set_err(err, KFRAME_ERR_MALFORMED, "frame at byte %llu: field number 0 is not valid protobuf",
            (unsigned long long)at);
    kframe_envelope_free(env);
    return KFRAME_ERR_MALFORMED;
  }
  if (!body_known(env->body_case)) {
    set_err(err, KFRAME_ERR_UNKNOWN_TYPE,
            "frame at byte %llu: envelope (sequence %llu) carries no known message type",
            (unsigned long long)at, (unsigned long long)env->sequence);
    kframe_envelope_free(env);
    return KFRAME_ERR_UNKNOWN_TYPE;
  }
  *out = env;
  return KFRAME_OK;
}

kframe_status kframe_decode_one(const uint8_t *buf, size_t len, size_t max, kframe_envelope **out,
                                kframe_error *err) {
  *out = NULL;
  if (len < KFRAME_HEADER) {
    set_err(err, KFRAME_ERR_MALFORMED, "frame: %zu bytes, shorter than the 4-byte length prefix",
            len);
    return KFRAME_ERR_MALFORMED;
  }
  uint32_t n = get_be32(buf);
  if (n > limit_of(max)) {
    set_err(err, KFRAME_ERR_OVERSIZE, "frame at byte 0: length %u exceeds the limit of %zu bytes",
            n, limit_of(max));
    return KFRAME_ERR_OVERSIZE;
  }
  if ((size_t)n != len - KFRAME_HEADER) {
    set_err(err, KFRAME_ERR_MALFORMED, "frame: length prefix says %u bytes but %zu follow", n,
            len - KFRAME_HEADER);
    return KFRAME_ERR_MALFORMED;
  }
  return unpack_body(buf + KFRAME_HEADER, n, 0, out, err);
}

/* ---------------------------------------------------------------- decoder */

struct kframe_decoder {
  size_t max;
  uint8_t hdr[KFRAME_HEADER];
  size_t hdr_have;
  uint8_t *body; /* grows as body bytes arrive (a bare length prefix does not
                    make the decoder allocate the whole announced size) */
  size_t body_len, body_have, body_cap;
  uint64_t frame_start; /* stream offset of the current frame */
  uint64_t consumed, frames;
  kframe_status failed; /* sticky */
  kframe_error err;
};

kframe_decoder *kframe_decoder_new(size_t max) {
  kframe_decoder *d = calloc(1, sizeof *d);
  if (d) d->max = limit_of(max);
  return d;
}

void kframe_decoder_free(kframe_decoder *d) {
  if (!d) return;
  free(d->body);
  free(d);
}

size_t kframe_decoder_pending(const kframe_decoder *d) { return d->hdr_have + d->body_have; }
uint64_t kframe_decoder_bytes(const kframe_decoder *d) { return d->consumed; }
uint64_t kframe_decoder_frames(const kframe_decoder *d) { return d->frames; }

static kframe_status fail(kframe_decoder *d, kframe_error *err) {
  d->failed = d->err.code;
  free(d->body);
  d->body = NULL;
  d->body_cap = 0;
  if (err) *err = d->err;
  return d->failed;
}

kframe_status kframe_decoder_feed(kframe_decoder *d, const uint8_t *data, size_t len,
                                  kframe_on_envelope cb, void *ud, kframe_error *err) {
  if (d->failed != KFRAME_OK) {
    if (err) *err = d->err;
    return d->failed;
  }
  size_t i = 0;
  while (i < len) {
    if (d->hdr_have < KFRAME_HEADER) {
      size_t take = KFRAME_HEADER - d->hdr_have;
      if (take > len - i) take = len - i;
      memcpy(d->hdr + d->hdr_have, data + i, take);
      d->hdr_have += take;
      i += take;
      d->consumed += take;
      if (d->hdr_have < KFRAME_HEADER) break;
      uint32_t n = get_be32(d->hdr);
      if (n > d->max) {
        set_err(&d->err, KFRAME_ERR_OVERSIZE,
                "frame at byte %llu: length %u exceeds the limit of %zu bytes",
                (unsigned long long)d->frame_start, n, d->max);
        return fail(d, err);
      }
      d->body_len = n;
      d->body_have = 0;
    }
    const uint8_t *whole; /* the complete body, in `data` or in d->body */
    if (d->body_have == 0 && len - i >= d->body_len) {
      whole = data + i; /* fast path: the chunk holds the whole body, no copy */
      i += d->body_len;
      d->consumed += d->body_len;
    } else {
      size_t take = d->body_len - d->body_have;
      if (take > len - i) take = len - i;
      if (take == 0) break; /* header ended the chunk */
      if (d->body_have + take > d->body_cap) {
        size_t cap = d->body_cap ? d->body_cap : 4096;
        while (cap < d->body_have + take)
          cap *= 2;
        if (cap > d->body_len) cap = d->body_len;
        uint8_t *nb = realloc(d->body, cap);
        if (!nb) {
          set_err(&d->err, KFRAME_ERR_NOMEM, "frame at byte %llu: out of memory for %zu bytes",
                  (unsigned long long)d->frame_start, cap);
          return fail(d, err);
        }
        d->body = nb;
        d->body_cap = cap;
      }
      memcpy(d->body + d->body_have, data + i, take);
      d->body_have += take;
      i += take;
      d->consumed += take;
      if (d->body_have < d->body_len) break;
      whole = d->body;
    }
    /* a whole frame */
    kframe_envelope *env = NULL;
    kframe_status st = unpack_body(whole, d->body_len, d->frame_start, &env, &d->err);
    if (d->body_cap > 65536) { /* keep a small buffer for the next frame */
      free(d->body);
      d->body = NULL;
      d->body_cap = 0;
    }
    d->hdr_have = d->body_have = d->body_len = 0;
    d->frame_start = d->consumed;
    if (st != KFRAME_OK) return fail(d, err);
    d->frames++;
    if (!cb(env, ud)) {
      set_err(&d->err, KFRAME_ERR_STOPPED,
              "frame decoder: stopped by the receiver after frame %llu",
              (unsigned long long)d->frames);
      return fail(d, err);
    }
  }
  return KFRAME_OK;
}

/* ---------------------------------------------------------------- inbox */

kframe_verdict kframe_inbox_accept(kframe_inbox *in, uint64_t sequence) {
  if (sequence == 0) return KFRAME_UNSEQUENCED;
  if (sequence <= in->last) {
    in->duplicates++;
    return KFRAME_DUPLICATE;
  }
  kframe_verdict v = sequence == in->last + 1 ? KFRAME_DELIVER : KFRAME_GAP;
  if (v == KFRAME_GAP) in->gaps++;
  in->last = sequence;
  return v;
}

/* ---------------------------------------------------------------- outbox */

/* Room for the sequence and ack fields prepended at transmit time:
 * two (tag byte + 10-byte varint). */
#define SEQ_ACK_ROOM 22u

typedef struct held {
  uint64_t seq;
  uint8_t *packed; /* Envelope packed with sequence = ack = 0 */
  size_t len;
} held;

struct kframe_outbox {
  held *items;
  size_t head, n, cap; /* live items are items[head .. head+n) */
  size_t sent;         /* items[head .. head+sent) were sent on this connection */
  size_t bytes, max_bytes;
  uint64_t last_seq;
};

kframe_outbox *kframe_outbox_new(uint64_t last_seq, size_t max_bytes) {
  kframe_outbox *ob = calloc(1, sizeof *ob);
  if (!ob) return NULL;
  ob->last_seq = last_seq;
  ob->max_bytes = max_bytes;
  return ob;
}

void kframe_outbox_free(kframe_outbox *ob) {
  if (!ob) return;
  for (size_t i = 0; i < ob->n; i++)
    free(ob->items[ob->head + i].packed);
  free(ob->items);
  free(ob);
}

uint64_t kframe_outbox_push(kframe_outbox *ob, const kframe_envelope *env, kframe_error *err) {
  if (!env || !body_known(env->body_case)) {
    set_err(err, KFRAME_ERR_INVALID, "outbox: envelope has no known body");
    return 0;
  }
  kframe_envelope copy = *env;
  copy.sequence = 0;
  copy.ack = 0;
  size_t n = protobuf_c_message_get_packed_size(&copy.base);
  if (n + SEQ_ACK_ROOM > KFRAME_MAX_DEFAULT) {
    set_err(err, KFRAME_ERR_OVERSIZE, "outbox: %s envelope of %zu bytes does not fit one frame",
            kframe_body_name(env->body_case), n);
    return 0;
  }
  if (ob->max_bytes && ob->bytes + n > ob->max_bytes) {
    set_err(err, KFRAME_ERR_OVERSIZE,
            "outbox: full (%zu of %zu bytes held, %zu more needed); the peer is not acknowledging",
            ob->bytes, ob->max_bytes, n);
    return 0;
  }
  if (ob->head + ob->n == ob->cap) {
    if (ob->head > 0) { /* compact */
      memmove(ob->items, ob->items + ob->head, ob->n * sizeof *ob->items);
      ob->head = 0;
    }
    if (ob->n == ob->cap) {
      size_t ncap = ob->cap ? ob->cap * 2 : 16;
      held *ni = realloc(ob->items, ncap * sizeof *ni);
      if (!ni) {
        set_err(err, KFRAME_ERR_NOMEM, "outbox: out of memory");
        return 0;
      }
      ob->items = ni;
      ob->cap = ncap;
    }
  }
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    set_err(err, KFRAME_ERR_NOMEM, "outbox: out of memory for %zu bytes", n);
    return 0;
  }
  protobuf_c_message_pack(&copy.base, buf);
  held *h = &ob->items[ob->head + ob->n++];
  h->seq = ++ob->last_seq;
  h->packed = buf;
  h->len = n;
  ob->bytes += n;
  return h->seq;
}

size_t kframe_outbox_ack(kframe_outbox *ob, uint64_t ack) {
  size_t dropped = 0;
  while (ob->n > 0 && ob->items[ob->head].seq <= ack) {
    held *h = &ob->items[ob->head];
    ob->bytes -= h->len;
    free(h->packed);
    ob->head++;
    ob->n--;
    if (ob->sent > 0) ob->sent--;
    dropped++;
  }
  if (ob->n == 0) ob->head = 0;
  return dropped;
}

void kframe_outbox_rewind(kframe_outbox *ob, uint64_t peer_acked) {
  kframe_outbox_ack(ob, peer_acked);
  ob->sent = 0;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t i = 0;
  while (v >= 0x80) {
    p[i++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[i++] = (uint8_t)v;
  return i;
}

bool kframe_outbox_next(kframe_outbox *ob, uint64_t ack, uint8_t **frame, size_t *len,
                        uint64_t *seq) {
  *frame = NULL;
  *len = 0;
  if (ob->sent >= ob->n) return false;
  held *h = &ob->items[ob->head + ob->sent];
  uint8_t pre[SEQ_ACK_ROOM];
  size_t p = 0;
  pre[p++] = 0x08; /* field 1 (sequence), varint */
  p += put_varint(pre + p, h->seq);
  if (ack) {
    pre[p++] = 0x10; /* field 2 (ack), varint */
    p += put_varint(pre + p, ack);
  }
  size_t n = p + h->len;
  uint8_t *buf = malloc(KFRAME_HEADER + n);
  if (!buf) return false;
  put_be32(buf, (uint32_t)n);
  memcpy(buf + KFRAME_HEADER, pre, p);
  memcpy(buf + KFRAME_HEADER + p, h->packed, h->len);
  *frame = buf;
  *len = KFRAME_HEADER + n;
  if (seq) *seq = h->seq;
  ob->sent++;
  return true;
}

size_t kframe_outbox_count(const kframe_outbox *ob) { return ob->n; }
size_t kframe_outbox_bytes(const kframe_outbox *ob) { return ob->bytes; }
uint64_t kframe_outbox_last_seq(const kframe_outbox *ob) { return ob->last_seq; }
uint64_t kframe_outbox_first_seq(const kframe_outbox *ob) {
  return ob->n ? ob->items[ob->head].seq : 0;
}

/* ---------------------------------------------------------------- saved outbox */

/* File layout (all integers little-endian):
 *   "KFOB" | u32 version = 1 | u64 last_seq | u64 count |
 *   count x (u64 seq | u32 len | len bytes: Envelope packed without seq/ack) |
 *   u64 FNV-1a 64 of every byte before it */
#define OB_MAGIC "KFOB"
#define OB_VERSION 1u

typedef struct obuf {
  uint8_t *p;
  size_t n, cap;
  bool oom;
} obuf;

static void ob_put(obuf *b, const void *data, size_t n) {
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n)
      cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
}

static void ob_put_u64(obuf *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++)
    x[i] = (uint8_t)(v >> (8 * i));
  ob_put(b, x, 8);
}

static void ob_put_u32(obuf *b, uint32_t v) {
  uint8_t x[4];
  for (int i = 0; i < 4; i++)
    x[i] = (uint8_t)(v >> (8 * i));
  ob_put(b, x, 4);
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static bool write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

bool kframe_outbox_save(const kframe_outbox *ob, const char *path, kframe_error *err) {
  obuf b = {0};
  ob_put(&b, OB_MAGIC, 4);
  ob_put_u32(&b, OB_VERSION);
  ob_put_u64(&b, ob->last_seq);
  ob_put_u64(&b, ob->n);
  for (size_t i = 0; i < ob->n; i++) {
    const held *h = &ob->items[ob->head + i];
    ob_put_u64(&b, h->seq);
    ob_put_u32(&b, (uint32_t)h->len);
    ob_put(&b, h->packed, h->len);
  }
  if (!b.oom) ob_put_u64(&b, fnv1a(b.p, b.n));
  if (b.oom) {
    free(b.p);
    set_err(err, KFRAME_ERR_NOMEM, "outbox save %s: out of memory", path);
    return false;
  }
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp", path) < 0) {
    free(b.p);
    set_err(err, KFRAME_ERR_NOMEM, "outbox save %s: out of memory", path);
    return false;
  }
  bool ok = false;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    set_err(err, KFRAME_ERR_IO, "outbox save: cannot create %s: %s", tmp, strerror(errno));
  } else if (!write_all(fd, b.p, b.n) || fsync(fd) != 0) {
    set_err(err, KFRAME_ERR_IO, "outbox save: cannot write %s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
  } else if (close(fd) != 0) {
    set_err(err, KFRAME_ERR_IO, "outbox save: cannot close %s: %s", tmp, strerror(errno));
    unlink(tmp);
  } else if (rename(tmp, path) != 0) {
    set_err(err, KFRAME_ERR_IO, "outbox save: cannot rename %s to %s: %s", tmp, path,
            strerror(errno));
    unlink(tmp);
  } else {
    ok = true;
  }
  free(tmp);
  free(b.p);
  return ok;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Read the whole file at `path` into a malloc'd buffer. */
static uint8_t *read_file(const char *path, size_t *len, kframe_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    set_err(err, KFRAME_ERR_IO, "outbox load: cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  uint8_t *p = malloc(cap);
  for (;;) {
    if (!p) break;
    if (n == cap) {
      uint8_t *np = realloc(p, cap * 2);
      if (!np) {
        free(p);
        p = NULL;
        break;
      }
      p = np;
      cap *= 2;
    }
    ssize_t r = read(fd, p + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      set_err(err, KFRAME_ERR_IO, "outbox load: cannot read %s: %s", path, strerror(errno));
      free(p);
      close(fd);
      return NULL;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (!p) set_err(err, KFRAME_ERR_NOMEM, "outbox load %s: out of memory", path);
  *len = n;
  return p;
}

kframe_outbox *kframe_outbox_load(const char *path, size_t max_bytes, kframe_error *err) {
  size_t len = 0;
  uint8_t *p = read_file(path, &len, err);
  if (!p) return NULL;
  kframe_outbox *ob = NULL;
  const size_t fixed = 4 + 4 + 8 + 8;
  if (len < fixed + 8 || memcmp(p, OB_MAGIC, 4) != 0) {
    set_err(err, KFRAME_ERR_MALFORMED, "outbox load %s: not a saved outbox (%zu bytes)", path, len);
    goto done;
  }
  if (get_u32(p + 4) != OB_VERSION) {
    set_err(err, KFRAME_ERR_MALFORMED, "outbox load %s: format version %u, expected %u", path,
            get_u32(p + 4), OB_VERSION);
    goto done;
  }
  if (get_u64(p + len - 8) != fnv1a(p, len - 8)) {
    set_err(err, KFRAME_ERR_MALFORMED, "outbox load %s: checksum mismatch (truncated or damaged)",
            path);
    goto done;
  }
  uint64_t last = get_u64(p + 8), count = get_u64(p + 16);
  ob = kframe_outbox_new(0, max_bytes);
  if (!ob) {
    set_err(err, KFRAME_ERR_NOMEM, "outbox load %s: out of memory", path);
    goto done;
  }
  size_t at = fixed, end = len - 8;
  uint64_t prev = 0;
  for (uint64_t i = 0; i < count; i++) {
    if (end - at < 12) {
      set_err(err, KFRAME_ERR_MALFORMED, "outbox load %s: entry %llu is cut short", path,
              (unsigned long long)i);
      goto fail;
    }
    uint64_t seq = get_u64(p + at);
    uint32_t n = get_u32(p + at + 8);
    at += 12;
    if (n > end - at || seq <= prev || seq > last) {
      set_err(err, KFRAME_ERR_MALFORMED,
              "outbox load %s: entry %llu (sequence %llu, %u bytes) is out of order or too long",
              path, (unsigned long long)i, (unsigned long long)seq, n);
      goto fail;
    }
    kframe_envelope *env = koreo__agent__v1__envelope__unpack(NULL, n, p + at);
    if (!env || !body_known(env->body_case) || has_field_zero(&env->base)) {
      kframe_envelope_free(env);
      set_err(err, KFRAME_ERR_MALFORMED,
              "outbox load %s: entry %llu (sequence %llu) is not a known Envelope", path,
              (unsigned long long)i, (unsigned long long)seq);
      goto fail;
    }
    ob->last_seq = seq - 1; /* push assigns last_seq + 1 = seq */
    uint64_t got = kframe_outbox_push(ob, env, err);
    kframe_envelope_free(env);
    if (got == 0) goto fail;
    at += n;
    prev = seq;
  }
  if (at != end) {
    set_err(err, KFRAME_ERR_MALFORMED, "outbox load %s: %zu stray bytes after the last entry", path,
            end - at);
    goto fail;
  }
  ob->last_seq = last;
  goto done;
fail:
  kframe_outbox_free(ob);
  ob = NULL;
done:
  free(p);
  return ob;
}
