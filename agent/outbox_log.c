/*
 * agent/outbox_log.c: the append-only outbox journal of agent/outbox_log.h.
 */
#include "outbox_log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "KOBXLOG1"
#define HDR 8
#define REC_FIXED (1 + 8 + 4 + 4) /* type, seq, len, checksum */
#define COMPACT_MIN (64u * 1024u) /* dead bytes before a compaction is considered */

typedef struct live { /* one unacknowledged message record in the file */
  uint64_t seq;
  off_t off;
  size_t len; /* whole record */
} live;

struct kobl {
  char *path, *tmp;
  int fd;
  kframe_outbox *ob;
  live *lv; /* ring-less array: [head, n) are live */
  size_t head, n, cap;
  size_t file_bytes, live_bytes;
  unsigned compactions;
};

static uint32_t fnv32(uint32_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

/* Little-endian fields (the file is portable between hosts). */
static void put_u64(uint8_t *p, uint64_t v) {
  v = htole64(v);
  memcpy(p, &v, 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
  v = htole32(v);
  memcpy(p, &v, 4);
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return le64toh(v);
}
static uint32_t get_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return le32toh(v);
}

/* One record as bytes (malloc'd, *len). */
static uint8_t *record(char type, uint64_t seq, const uint8_t *payload, size_t plen, size_t *len) {
  *len = REC_FIXED + plen;
  uint8_t *r = malloc(*len);
  if (!r) return NULL;
  r[0] = (uint8_t)type;
  put_u64(r + 1, seq);
  put_u32(r + 9, (uint32_t)plen);
  if (plen) memcpy(r + 13, payload, plen);
  put_u32(r + 13 + plen, fnv32(2166136261u, r, 13 + plen));
  return r;
}

static bool write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

static bool live_add(kobl *l, uint64_t seq, off_t off, size_t len) {
  if (l->head > 0 && l->head == l->n) l->head = l->n = 0;
  if (l->n == l->cap) {
    if (l->head > l->cap / 2) { /* slide down instead of growing */
      memmove(l->lv, l->lv + l->head, (l->n - l->head) * sizeof *l->lv);
      l->n -= l->head;
      l->head = 0;
    } else {
      size_t nc = l->cap ? l->cap * 2 : 64;
      live *nl = realloc(l->lv, nc * sizeof *nl);
      if (!nl) return false;
      l->lv = nl;
      l->cap = nc;
    }
  }
  l->lv[l->n++] = (live){seq, off, len};
  l->live_bytes += len;
  return true;
}

/* Pack env without sequence/ack (malloc'd). */
static uint8_t *pack_env(const kframe_envelope *env, size_t *len) {
  kframe_envelope e = *env;
  e.sequence = 0;
  e.ack = 0;
  *len = koreo__agent__v1__envelope__get_packed_size(&e);
  uint8_t *b = malloc(*len ? *len : 1);
  if (b) koreo__agent__v1__envelope__pack(&e, b);
  return b;
}

/* Rewrite the file with only the live records (read from the old file by
 * offset), fsync, rename over it. */
static bool compact(kobl *l) {
  int nfd = open(l->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (nfd < 0) return false;
  bool ok = write_all(nfd, (const uint8_t *)MAGIC, HDR);
  off_t pos = HDR;
  uint8_t *buf = NULL;
  size_t bcap = 0;
  for (size_t i = l->head; ok && i < l->n; i++) {
    live *v = &l->lv[i];
    if (v->len > bcap) {
      uint8_t *nb = realloc(buf, v->len);
      if (!nb) {
        ok = false;
        break;
      }
      buf = nb;
      bcap = v->len;
    }
    ok = pread(l->fd, buf, v->len, v->off) == (ssize_t)v->len && write_all(nfd, buf, v->len);
    v->off = pos;
    pos += (off_t)v->len;
  }
  free(buf);
  ok = ok && fsync(nfd) == 0;
  close(nfd);
  if (!ok || rename(l->tmp, l->path) != 0) {
    unlink(l->tmp);
    return false;
  }
  close(l->fd);
  l->fd = open(l->path, O_WRONLY | O_APPEND);
  l->file_bytes = (size_t)pos;
  l->compactions++;
  return l->fd >= 0;
}

static void maybe_compact(kobl *l) {
  size_t dead = l->file_bytes - HDR - l->live_bytes;
  if (dead >= COMPACT_MIN && dead > l->live_bytes && !compact(l))
    fprintf(stderr, "koreo-agent: compacting %s: %s\n", l->path, strerror(errno));
}

/* Forget live records <= floor; journal the ack. */
static void journal_floor(kobl *l) {
  uint64_t first = kframe_outbox_first_seq(l->ob);
  uint64_t floor = first ? first - 1 : kframe_outbox_last_seq(l->ob);
  bool moved = false;
  while (l->head < l->n && l->lv[l->head].seq <= floor) {
    l->live_bytes -= l->lv[l->head].len;
    l->head++;
    moved = true;
  }
  if (!moved) return;
  size_t rlen;
  uint8_t *r = record('A', floor, NULL, 0, &rlen);
  /* no fsync: a lost ack record only means a harmless replay */
  if (r && write_all(l->fd, r, rlen)) l->file_bytes += rlen;
  free(r);
  maybe_compact(l);
}

uint64_t kobl_push(kobl *l, const kframe_envelope *env, kframe_error *err) {
  uint64_t seq = kframe_outbox_push(l->ob, env, err);
  if (!seq) return 0;
  size_t plen, rlen;
  uint8_t *p = pack_env(env, &plen);
  uint8_t *r = p ? record('M', seq, p, plen, &rlen) : NULL;
  free(p);
  off_t off = (off_t)l->file_bytes;
  bool ok = r && write_all(l->fd, r, rlen) && fdatasync(l->fd) == 0;
  free(r);
  if (ok) {
    l->file_bytes += rlen;
    ok = live_add(l, seq, off, rlen);
  }
  if (!ok && err) {
    err->code = KFRAME_ERR_IO;
    snprintf(err->msg, sizeof err->msg, "appending to %s: %s", l->path, strerror(errno));
  }
  /* the message stays queued in memory even when the journal failed: it
   * is still delivered unless the agent also restarts */
  return seq;
}

size_t kobl_ack(kobl *l, uint64_t ack) {
  size_t n = kframe_outbox_ack(l->ob, ack);
  if (n) journal_floor(l);
  return n;
}

void kobl_rewind(kobl *l, uint64_t peer_acked) {
  kframe_outbox_rewind(l->ob, peer_acked);
  journal_floor(l);
}

/* ---------------------------------------------------------------- open */

typedef struct rec {
  uint64_t seq;
  const uint8_t *payload;
  size_t plen;
} rec;

/* Parse the journal text; *good = bytes of whole, valid records. */
static size_t parse(const uint8_t *b, size_t n, rec **out, uint64_t *floor, uint64_t *max_seq,
                    size_t *good) {
  size_t cap = 0, cnt = 0;
  *good = HDR;
  size_t p = HDR;
  while (p + REC_FIXED <= n) {
    uint32_t plen = get_u32(b + p + 9);
    if (plen > n - p - REC_FIXED) break; /* torn */
    if (get_u32(b + p + 13 + plen) != fnv32(2166136261u, b + p, 13 + plen)) break;
    uint64_t seq = get_u64(b + p + 1);
    if (b[p] == 'A') {
      if (seq > *floor) *floor = seq;
    } else if (b[p] == 'M') {
      if (cnt == cap) {
        cap = cap ? cap * 2 : 64;
        rec *nr = realloc(*out, cap * sizeof *nr);
        if (!nr) break;
        *out = nr;
      }
      (*out)[cnt++] = (rec){seq, b + p + 13, plen};
      if (seq > *max_seq) *max_seq = seq;
    } else {
      break;
    }
    p += REC_FIXED + plen;
    *good = p;
  }
  return cnt;
}

static char *read_all(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  struct stat st;
  char *b = NULL;
  if (fstat(fd, &st) == 0 && (b = malloc((size_t)st.st_size + 1)))
    if (read(fd, b, (size_t)st.st_size) != st.st_size) {
      free(b);
      b = NULL;
    }
  if (b) *len = (size_t)st.st_size;
  close(fd);
  return b;
}

kobl *kobl_open(const char *dir, size_t max_bytes, char *err, size_t errlen) {
  kobl *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->fd = -1;
  if (asprintf(&l->path, "%s/outbox.log", dir) < 0 ||
      asprintf(&l->tmp, "%s/outbox.log.tmp", dir) < 0)
    l->path = l->tmp = NULL;
  char *old = NULL;
  if (!l->path || !l->tmp || asprintf(&old, "%s/outbox.bin", dir) < 0) {
    snprintf(err, errlen, "outbox: out of memory");
    kobl_close(l);
    return NULL;
  }
  size_t n = 0;
  uint8_t *b = (uint8_t *)read_all(l->path, &n);
  rec *rs = NULL;
  uint64_t floor = 0, max_seq = 0;
  size_t cnt = 0, good = 0;
  kframe_error fe = {0};
  if (b && (n < HDR || memcmp(b, MAGIC, HDR) != 0)) {
    snprintf(err, errlen, "outbox: %s is not an outbox journal (bad header)", l->path);
    goto fail;
  }
  if (b) {
    cnt = parse(b, n, &rs, &floor, &max_seq, &good);
    if (good < n)
      fprintf(stderr, "koreo-agent: outbox: %s: %zu bytes of a torn or corrupt tail dropped\n",
              l->path, n - good);
    uint64_t first = 0;
    for (size_t i = 0; i < cnt; i++)
      if (rs[i].seq > floor && (!first || rs[i].seq < first)) first = rs[i].seq;
    l->ob = kframe_outbox_new(first ? first - 1 : (max_seq > floor ? max_seq : floor), max_bytes);
    for (size_t i = 0; l->ob && i < cnt; i++) {
      if (rs[i].seq <= floor) continue;
      kframe_envelope *env = koreo__agent__v1__envelope__unpack(NULL, rs[i].plen, rs[i].payload);
      uint64_t got = env ? kframe_outbox_push(l->ob, env, &fe) : 0;
      if (env) koreo__agent__v1__envelope__free_unpacked(env, NULL);
      if (got != rs[i].seq) {
        snprintf(err, errlen, "outbox: %s: message %llu cannot be restored (%s)", l->path,
                 (unsigned long long)rs[i].seq, env ? fe.msg : "not an Envelope");
        goto fail;
      }
    }
  } else {
    /* migrate a snapshot outbox of an older agent, or start fresh */
    l->ob = kframe_outbox_load(old, max_bytes, &fe);
    if (!l->ob && !(fe.code == KFRAME_ERR_IO && strstr(fe.msg, strerror(ENOENT)))) {
      snprintf(err, errlen, "outbox: %s", fe.msg);
      goto fail;
    }
    if (!l->ob) l->ob = kframe_outbox_new(0, max_bytes);
  }
  if (!l->ob) {
    snprintf(err, errlen, "outbox: out of memory");
    goto fail;
  }
  /* write the live messages into a fresh journal (compaction at open) */
  int fd = open(l->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  bool ok = fd >= 0 && write_all(fd, (const uint8_t *)MAGIC, HDR);
  off_t pos = HDR;
  uint8_t *frame;
  size_t flen;
  uint64_t seq;
  kframe_outbox_rewind(l->ob, 0);
  while (ok && kframe_outbox_next(l->ob, 0, &frame, &flen, &seq)) {
    kframe_envelope *env = NULL;
    size_t plen, rlen;
    uint8_t *p = NULL, *r = NULL;
    ok = kframe_decode_one(frame, flen, 0, &env, NULL) == KFRAME_OK && (p = pack_env(env, &plen)) &&
         (r = record('M', seq, p, plen, &rlen)) && write_all(fd, r, rlen) &&
         live_add(l, seq, pos, rlen);
    pos += ok ? (off_t)rlen : 0;
    kframe_envelope_free(env);
    free(p);
    free(r);
    free(frame);
  }
  kframe_outbox_rewind(l->ob, 0); /* nothing was sent */
  /* an empty journal still has to remember the numbering */
  if (ok && kframe_outbox_count(l->ob) == 0 && kframe_outbox_last_seq(l->ob)) {
    size_t rlen;
    uint8_t *r = record('A', kframe_outbox_last_seq(l->ob), NULL, 0, &rlen);
    ok = r && write_all(fd, r, rlen);
    pos += ok ? (off_t)rlen : 0;
    free(r);
  }
  ok = ok && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  if (!ok || rename(l->tmp, l->path) != 0 || (l->fd = open(l->path, O_WRONLY | O_APPEND)) < 0) {
    snprintf(err, errlen, "outbox: writing %s: %s", l->path, strerror(errno));
    goto fail;
  }
  l->file_bytes = (size_t)pos;
  unlink(old);
  free(old);
  free(rs);
  free(b);
  return l;
fail:
  free(old);
  free(rs);
  free(b);
  kobl_close(l);
  return NULL;
}

kframe_outbox *kobl_outbox(kobl *l) { return l->ob; }
size_t kobl_file_bytes(const kobl *l) { return l->file_bytes; }
unsigned kobl_compactions(const kobl *l) { return l->compactions; }

void kobl_close(kobl *l) {
  if (!l) return;
  if (l->fd >= 0) close(l->fd);
  kframe_outbox_free(l->ob);
  free(l->lv);
  free(l->path);
  free(l->tmp);
  free(l);
}
