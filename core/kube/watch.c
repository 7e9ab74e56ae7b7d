/*
 * core/kube/watch.c: watches (koreo/kube.h, "Watches"): list-then-watch,
 * the streamed event decoder, resume from the last resourceVersion after a
 * dropped stream, bookmarks, re-list on 410 Gone with the difference
 * delivered as events, capped exponential backoff with jitter, and the
 * per-watch cache of the last object of every key (optionally slimmed:
 * kube_watch_opts.drop_managed_fields, share_strings; or kept as coded
 * compact JSON text in pages of its own: compact_json).
 *
 * A watch is a small state machine driven from the client's loop:
 *   [resolve] -> LIST (paginated) -> deliver diff + SYNCED -> WATCH stream
 *   stream ends normally          -> WATCH again from the last version
 *   stream fails / ERROR event    -> backoff, then WATCH again
 *   410 Gone (answer or event)    -> LIST again (diff against the cache)
 *   404 on the resource           -> backoff, resolve again, LIST
 * Stopping is allowed at any time, also from the watch's own callback: the
 * watch is then freed as soon as nothing of it is on the stack (or, while
 * a list request is in flight, when its answer comes).
 *
 * Reference: https://kubernetes.io/docs/reference/using-api/api-concepts/
 * ("Efficient detection of changes", "Watch bookmarks", "410 Gone").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "koreo/json.h"
#include "kube_impl.h"

/* ---- the object cache: "namespace/name" -> last object ------------------- */

typedef struct wentry {
  char *key;
  kv *obj;
  struct wentry *next;
} wentry;

typedef struct wcache {
  wentry **b;
  size_t nb, n;
} wcache;

/* FNV-1a of n bytes. */
static uint64_t fnvn(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static uint64_t fnv(const char *s) { return fnvn(s, strlen(s)); }

static wentry *cache_find(const wcache *c, const char *key) {
  if (!c->nb) return NULL;
  for (wentry *e = c->b[fnv(key) % c->nb]; e; e = e->next)
    if (strcmp(e->key, key) == 0) return e;
  return NULL;
}

static void cache_put(wcache *c, const char *key, kv *obj) {
  wentry *e = cache_find(c, key);
  if (e) {
    kv_unref(e->obj);
    e->obj = kv_ref(obj);
    return;
  }
  if (c->n + 1 > c->nb) {
    size_t nb = c->nb ? c->nb * 2 : 64;
    wentry **b = calloc(nb, sizeof *b);
    if (!b) kv_oom();
    for (size_t i = 0; i < c->nb; i++)
      for (wentry *x = c->b[i], *n; x; x = n) {
        n = x->next;
        size_t h = fnv(x->key) % nb;
        x->next = b[h];
        b[h] = x;
      }
    free(c->b);
    c->b = b;
    c->nb = nb;
  }
  e = calloc(1, sizeof *e);
  if (!e) kv_oom();
  e->key = strdup(key);
  if (!e->key) kv_oom();
  e->obj = kv_ref(obj);
  size_t h = fnv(key) % c->nb;
  e->next = c->b[h];
  c->b[h] = e;
  c->n++;
}

static void cache_del(wcache *c, const char *key) {
  if (!c->nb) return;
  for (wentry **pp = &c->b[fnv(key) % c->nb]; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->key, key) == 0) {
      wentry *e = *pp;
      *pp = e->next;
      free(e->key);
      kv_unref(e->obj);
      free(e);
      c->n--;
      return;
    }
}

static void cache_clear(wcache *c) {
  for (size_t i = 0; i < c->nb; i++)
    for (wentry *x = c->b[i], *n; x; x = n) {
      n = x->next;
      free(x->key);
      kv_unref(x->obj);
      free(x);
    }
  free(c->b);
  memset(c, 0, sizeof *c);
}

static char *obj_key(const kv *obj) {
  const char *ns = kube_obj_meta(obj, "namespace");
  const char *name = kube_obj_meta(obj, "name");
  char *k = NULL;
  if (asprintf(&k, "%s/%s", ns ? ns : "", name ? name : "") < 0) kv_oom();
  return k;
}

/* ---- dictionary coding of the cached JSON text -----------------------------
 *
 * Compact JSON never contains the bytes 0x01-0x1F (the writer escapes
 * control characters inside strings and writes no whitespace), so they
 * stand for the fragments below, the member names and punctuation that
 * every Kubernetes object repeats: a typical object's text shrinks by
 * about 40%.  The text is stored raw (REC_RAW) if it ever holds such a
 * byte. */

static const char *const DICT[32] = {
    NULL,
    "{\"apiVersion\":\"",
    "\"kind\":\"",
    "\"metadata\":{\"name\":\"",
    "\"metadata\":{",
    "\"name\":\"",
    "\"namespace\":\"",
    "\"uid\":\"",
    "\"resourceVersion\":\"",
    "\"generation\":",
    "\"creationTimestamp\":\"",
    "\"annotations\":{\"",
    "\"labels\":{\"",
    "\"ownerReferences\":[{",
    "\"finalizers\":[\"",
    "\"spec\":{",
    "\"status\":{",
    "\"conditions\":[{\"type\":\"",
    "\"type\":\"",
    "\"status\":\"",
    "\"reason\":\"",
    "\"message\":\"",
    "\"lastTransitionTime\":\"",
    "\"lastUpdateTime\":\"",
    "\"observedGeneration\":",
    "\"location\":\"",
    "koreo.dev/",
    "kubernetes.io/",
    "\\\"",
    "\"state\":{",
    "\"koreo\":{",
    NULL, /* REF_MATCH */
};

/* 0x1F, then 2 bytes of offset (little-endian) and 1 of length: that many
 * bytes of the store's reference text (wref). */
enum { REF_MATCH = 31, REF_MIN = 6, REF_MAX = 255, REF_HASH = 4096 };

/* The reference text of a store: the first object it kept (up to 64 KiB),
 * with an index of its 4-byte sequences.  The objects of one watch are
 * mostly alike (same kind, namespace, labels, annotations, status
 * shape), so most of each text becomes a few back-references to it. */
typedef struct wref {
  char *text;
  size_t len;
  uint16_t *head; /* REF_HASH entries: 1 + last position with that hash */
  uint16_t *prev; /* len entries: 1 + the previous position, same hash */
} wref;

static unsigned hash4(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return (v * 2654435761u) >> 20; /* 12 bits */
}

static void ref_set(wref *r, const char *text, size_t len) {
  if (len > 65535) len = 65535;
  r->text = malloc(len + 1);
  r->head = calloc(REF_HASH, sizeof *r->head);
  r->prev = calloc(len ? len : 1, sizeof *r->prev);
  if (!r->text || !r->head || !r->prev) kv_oom();
  memcpy(r->text, text, len);
  r->text[len] = 0;
  r->len = len;
  for (size_t i = 0; i + 4 <= len; i++) {
    unsigned h = hash4(text + i);
    r->prev[i] = r->head[h];
    r->head[h] = (uint16_t)(i + 1);
  }
}

static void ref_free(wref *r) {
  free(r->text);
  free(r->head);
  free(r->prev);
  memset(r, 0, sizeof *r);
}

/* Encode `text` (len bytes) into out (at least len bytes) against `ref`
 * (may be empty); the encoded length, or 0 when the text holds a byte of
 * the code range. */
static size_t dict_encode(const wref *ref, const char *text, size_t len, char *out) {
  static size_t dlen[32];
  if (!dlen[1])
    for (int k = 1; k < REF_MATCH; k++)
      dlen[k] = strlen(DICT[k]);
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)text[i];
    if (c >= 1 && c < 32) return 0;
    size_t mlen = 0, mpos = 0;
    if (ref->len && i + 4 <= len) { /* the longest match in the reference */
      int chain = 32;
      for (uint16_t p = ref->head[hash4(text + i)]; p && chain-- > 0; p = ref->prev[p - 1]) {
        size_t pos = p - 1u, l = 0;
        while (l < REF_MAX && pos + l < ref->len && i + l < len &&
               ref->text[pos + l] == text[i + l])
          l++;
        if (l > mlen) {
          mlen = l;
          mpos = pos;
        }
      }
    }
    if (mlen >= REF_MIN) {
      out[o++] = (char)REF_MATCH;
      out[o++] = (char)(mpos & 0xff);
      out[o++] = (char)(mpos >> 8);
      out[o++] = (char)mlen;
      i += mlen;
      continue;
    }
    int best = 0;
    size_t blen = 1;
    if (c == '"' || c == '{' || c == 'k' || c == '\\')
      for (int k = 1; k < REF_MATCH; k++)
        if (dlen[k] > blen && DICT[k][0] == (char)c && dlen[k] <= len - i &&
            memcmp(text + i, DICT[k], dlen[k]) == 0) {
          best = k;
          blen = dlen[k];
        }
    out[o++] = best ? (char)best : (char)c;
    i += blen;
  }
  return o;
}

/* The decoded text of `enc` (n bytes, coded against `ref`) as a new
 * NUL-terminated string, its length in *len. */
static char *dict_decode(const wref *ref, const char *enc, size_t n, size_t *len) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)enc[i];
    if (c == REF_MATCH && i + 3 < n) {
      total += (unsigned char)enc[i + 3];
      i += 3;
    } else
      total += c >= 1 && c < 32 ? strlen(DICT[c]) : 1;
  }
  char *s = malloc(total + 1);
  if (!s) kv_oom();
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)enc[i];
    if (c == REF_MATCH && i + 3 < n) {
      size_t pos = (unsigned char)enc[i + 1] | (size_t)(unsigned char)enc[i + 2] << 8;
      size_t l = (unsigned char)enc[i + 3];
      if (pos + l > ref->len) l = pos < ref->len ? ref->len - pos : 0; /* cannot happen */
      memcpy(s + o, ref->text + pos, l);
      o += l;
      i += 3;
    } else if (c >= 1 && c < 32) {
      size_t l = strlen(DICT[c]);
      memcpy(s + o, DICT[c], l);
      o += l;
    } else
      s[o++] = (char)c;
  }
  s[o] = 0;
  *len = o;
  return s;
}

/* ---- the compact store (kube_watch_opts.compact_json) ---------------------
 *
 * Every object as one record {u32 klen, u32 rvlen, u32 tlen, key NUL,
 * resourceVersion NUL, dictionary-coded compact JSON text NUL} appended to a single buffer
 * of its own pages (mmap/mremap, so the records are packed end to end and
 * never interleave with the heap's short-lived blocks), indexed by an open
 * addressing table of record offsets (linear probing, backward-shift
 * deletion).  A replaced or deleted record becomes garbage; the buffer is
 * rewritten without it once garbage is a quarter of it (each live byte is
 * thus copied a bounded number of times per byte of garbage). */

typedef struct wstore {
  char *buf;       /* mmap'ed; NULL while empty */
  size_t len, cap; /* bytes used, bytes mapped */
  size_t garbage;  /* bytes of dead records inside len */
  uint32_t *slot;  /* record offset + 1; 0 = free */
  size_t nslot, n; /* slots (a power of two), records */
  wref ref;        /* what the texts are coded against */
  uint32_t last;   /* 1 + offset of the latest record kept; 0: none */
} wstore;

enum { REC_HDR = 12 };
#define REC_RAW 0x80000000u /* in tlen: the text is stored as it is */

typedef struct wrec {
  const char *key, *rv, *text;
  uint32_t klen, rvlen, tlen; /* tlen: stored bytes */
  bool raw;                   /* not dictionary-coded */
} wrec;

static size_t rec_size(uint32_t klen, uint32_t rvlen, uint32_t tlen) {
  return REC_HDR + (size_t)klen + rvlen + tlen + 3;
}

static wrec rec_at(const char *buf, uint32_t off) {
  wrec r;
  const char *p = buf + off;
  memcpy(&r.klen, p, 4);
  memcpy(&r.rvlen, p + 4, 4);
  memcpy(&r.tlen, p + 8, 4);
  r.raw = (r.tlen & REC_RAW) != 0;
  r.tlen &= ~REC_RAW;
  r.key = p + REC_HDR;
  r.rv = r.key + r.klen + 1;
  r.text = r.rv + r.rvlen + 1;
  return r;
}

static size_t page_round(size_t n) {
  size_t pg = 4096;
  return (n + pg - 1) / pg * pg;
}

/* Make room for `more` bytes after len. */
static void store_reserve(wstore *s, size_t more) {
  if (s->len + more <= s->cap) return;
  size_t want = s->len + more;
  if (want > UINT32_MAX) kv_oom(); /* offsets are 32-bit: a 4 GiB cache */
  size_t cap = page_round(want + want / 4);
  void *p = s->buf ? mremap(s->buf, s->cap, cap, MREMAP_MAYMOVE)
                   : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) kv_oom();
  s->buf = p;
  s->cap = cap;
}

static size_t store_find_slot(const wstore *s, const char *key, size_t klen, bool *found) {
  size_t i = fnvn(key, klen) & (s->nslot - 1);
  for (; s->slot[i]; i = (i + 1) & (s->nslot - 1)) {
    wrec r = rec_at(s->buf, s->slot[i] - 1);
    if (r.klen == klen && memcmp(r.key, key, klen) == 0) {
      *found = true;
      return i;
    }
  }
  *found = false;
  return i;
}

static bool store_get(const wstore *s, const char *key, wrec *out) {
  if (!s->n) return false;
  bool found;
  size_t i = store_find_slot(s, key, strlen(key), &found);
  if (found) *out = rec_at(s->buf, s->slot[i] - 1);
  return found;
}

static void store_index(wstore *s, size_t nslot) {
  uint32_t *old = s->slot;
  size_t on = s->nslot;
  s->slot = calloc(nslot, sizeof *s->slot);
  if (!s->slot) kv_oom();
  s->nslot = nslot;
  for (size_t i = 0; i < on; i++)
    if (old[i]) {
      wrec r = rec_at(s->buf, old[i] - 1);
      size_t j = fnvn(r.key, r.klen) & (nslot - 1);
      while (s->slot[j])
        j = (j + 1) & (nslot - 1);
      s->slot[j] = old[i];
    }
  free(old);
}

static void store_put(wstore *s, const char *key, const char *rv, const char *text, size_t tlen);

/* The JSON text of a record (new string), its length in *len. */
static char *rec_text(const wstore *s, const wrec *r, size_t *len) {
  if (!r->raw) return dict_decode(&s->ref, r->text, r->tlen, len);
  char *t = malloc(r->tlen + 1);
  if (!t) kv_oom();
  memcpy(t, r->text, r->tlen + 1);
  *len = r->tlen;
  return t;
}

/* Rewrite the store with the live records only, coded against a new
 * reference: the latest object kept (objects change shape over their
 * life, e.g. their status appears, so the newest one is the best model of
 * the others). */
static void store_compact(wstore *s) {
  wstore ns = {0};
  size_t len;
  if (s->last) {
    wrec r = rec_at(s->buf, s->last - 1);
    char *t = rec_text(s, &r, &len);
    ref_set(&ns.ref, t, len);
    free(t);
  }
  store_index(&ns, s->nslot);
  for (size_t i = 0; i < s->nslot; i++)
    if (s->slot[i]) {
      wrec r = rec_at(s->buf, s->slot[i] - 1);
      char *t = rec_text(s, &r, &len);
      store_put(&ns, r.key, r.rv, t, len);
      free(t);
    }
  if (s->last) { /* the same record, in its new place */
    wrec r = rec_at(s->buf, s->last - 1);
    bool found;
    size_t i = store_find_slot(&ns, r.key, r.klen, &found);
    ns.last = found ? ns.slot[i] : 0;
  }
  if (s->buf) munmap(s->buf, s->cap);
  free(s->slot);
  ref_free(&s->ref);
  *s = ns;
}

static void store_put(wstore *s, const char *key, const char *rv, const char *text, size_t tlen) {
  size_t klen = strlen(key), rvlen = rv ? strlen(rv) : 0;
  if (!rv) rv = "";
  if (klen > UINT32_MAX || rvlen > UINT32_MAX || tlen >= REC_RAW) kv_oom();
  if (2 * (s->n + 1) > s->nslot) store_index(s, s->nslot ? 2 * s->nslot : 16);
  bool found;
  size_t i = store_find_slot(s, key, klen, &found);
  if (found) {
    wrec r = rec_at(s->buf, s->slot[i] - 1);
    s->garbage += rec_size(r.klen, r.rvlen, r.tlen);
  }
  char *enc = malloc(tlen + 1);
  if (!enc) kv_oom();
  if (!s->ref.text) ref_set(&s->ref, text, tlen);
  size_t elen = dict_encode(&s->ref, text, tlen, enc);
  bool raw = elen == 0 && tlen > 0;
  if (!raw) {
    text = enc;
    tlen = elen;
  }
  size_t sz = rec_size((uint32_t)klen, (uint32_t)rvlen, (uint32_t)tlen);
  store_reserve(s, sz);
  char *p = s->buf + s->len;
  uint32_t h[3] = {(uint32_t)klen, (uint32_t)rvlen, (uint32_t)tlen | (raw ? REC_RAW : 0)};
  memcpy(p, h, REC_HDR);
  p += REC_HDR;
  memcpy(p, key, klen + 1);
  p += klen + 1;
  memcpy(p, rv, rvlen + 1);
  p += rvlen + 1;
  memcpy(p, text, tlen);
  p[tlen] = 0;
  free(enc);
  s->slot[i] = (uint32_t)s->len + 1;
  s->last = s->slot[i];
  s->len += sz;
  if (!found) s->n++;
  if (s->garbage > 4096 && 4 * s->garbage > s->len) store_compact(s);
}

static void store_del(wstore *s, const char *key) {
  if (!s->n) return;
  bool found;
  size_t i = store_find_slot(s, key, strlen(key), &found);
  if (!found) return;
  wrec r = rec_at(s->buf, s->slot[i] - 1);
  s->garbage += rec_size(r.klen, r.rvlen, r.tlen);
  if (s->last == s->slot[i]) s->last = 0;
  s->slot[i] = 0;
  s->n--;
  /* backward-shift: move later entries of the run into the hole */
  for (size_t j = (i + 1) & (s->nslot - 1); s->slot[j]; j = (j + 1) & (s->nslot - 1)) {
    wrec q = rec_at(s->buf, s->slot[j] - 1);
    size_t home = fnvn(q.key, q.klen) & (s->nslot - 1);
    /* j's entry may move to i when i lies cyclically within [home, j) */
    if (((j - home) & (s->nslot - 1)) >= ((j - i) & (s->nslot - 1))) {
      s->slot[i] = s->slot[j];
      s->slot[j] = 0;
      i = j;
    }
  }
  if (!s->n) { /* empty: give everything back */
    munmap(s->buf, s->cap);
    s->buf = NULL;
    s->cap = s->len = s->garbage = 0;
  } else if (s->garbage > 4096 && 4 * s->garbage > s->len)
    store_compact(s);
}

static void store_clear(wstore *s) {
  if (s->buf) munmap(s->buf, s->cap);
  free(s->slot);
  ref_free(&s->ref);
  memset(s, 0, sizeof *s);
}

/* The object of a record (new reference); NULL if the text does not parse
 * (it cannot: it was written by kv_json_write). */
static kv *rec_obj(const wstore *s, const wrec *r) {
  kv_parse_error pe;
  if (r->raw) return kv_json_parse(r->text, r->tlen, &pe);
  size_t len;
  char *t = dict_decode(&s->ref, r->text, r->tlen, &len);
  kv *o = kv_json_parse(t, len, &pe);
  free(t);
  return o;
}

/* ---- slimming: drop managedFields, share keys and short strings ---------- */

/* The strings shared by the objects of one watch (share_strings): an open
 * hash set of string values, each holding a reference.  Entries nobody
 * else references any more are swept when the set has doubled since the
 * last sweep, so churn (objects with unique short names coming and going)
 * does not grow it without bound. */
typedef struct wintern {
  kv **slot;
  size_t cap, n, swept_n;
} wintern;

enum { INTERN_MAX = 24 };

static void intern_insert(wintern *t, kv *v) {
  size_t i = fnvn(kv_str(v), kv_len(v)) & (t->cap - 1);
  while (t->slot[i])
    i = (i + 1) & (t->cap - 1);
  t->slot[i] = v;
  t->n++;
}

/* Rebuild the table with `cap` slots, dropping unreferenced entries when
 * `sweep`. */
static void intern_rehash(wintern *t, size_t cap, bool sweep) {
  kv **old = t->slot;
  size_t ocap = t->cap;
  t->slot = calloc(cap, sizeof *t->slot);
  if (!t->slot) kv_oom();
  t->cap = cap;
  t->n = 0;
  for (size_t i = 0; i < ocap; i++) {
    if (!old[i]) continue;
    if (sweep && old[i]->refs == 1)
      kv_unref(old[i]);
    else
      intern_insert(t, old[i]);
  }
  free(old);
}

/* A new reference to the shared string equal to `v` (a string value). */
static kv *intern(wintern *t, kv *v) {
  if (kv_len(v) > INTERN_MAX || v->refs < 0) return kv_ref(v);
  if (t->cap) {
    for (size_t i = fnvn(kv_str(v), kv_len(v)) & (t->cap - 1); t->slot[i];
         i = (i + 1) & (t->cap - 1))
      if (kv_len(t->slot[i]) == kv_len(v) && memcmp(kv_str(t->slot[i]), kv_str(v), kv_len(v)) == 0)
        return kv_ref(t->slot[i]);
  }
  if (t->n >= 2 * t->swept_n + 256) { /* sweep, then size for what is left */
    intern_rehash(t, t->cap, true);
    t->swept_n = t->n;
  }
  if (2 * (t->n + 1) > t->cap) intern_rehash(t, t->cap ? t->cap * 2 : 256, false);
  intern_insert(t, kv_ref(v));
  return kv_ref(v);
}

static void intern_free(wintern *t) {
  for (size_t i = 0; i < t->cap; i++)
    kv_unref(t->slot[i]);
  free(t->slot);
  memset(t, 0, sizeof *t);
}

/* A compact copy of `v` (new reference): maps and lists sized exactly,
 * keys and short strings shared through `t`; with `drop_mf`,
 * metadata.managedFields left out (depth 0 is the object itself). */
static kv *slim_copy(wintern *t, kv *v, bool drop_mf, int depth) {
  switch (kv_kind_of(v)) {
  case KV_STRING: return t ? intern(t, v) : kv_ref(v);
  case KV_LIST: {
    if (!t) return kv_ref(v);
    kv *l = kv_list_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++)
      kv_list_push(l, slim_copy(t, kv_list_at(v, i), false, depth + 1));
    return l;
  }
  case KV_MAP: {
    kv *m = kv_map_new(kv_len(v));
    for (size_t i = 0; i < kv_len(v); i++) {
      kv *k = kv_map_key_at(v, i), *x = kv_map_val_at(v, i);
      bool str = kv_kind_of(k) == KV_STRING;
      if (drop_mf && depth == 1 && str && strcmp(kv_str(k), "managedFields") == 0) continue;
      bool md = depth == 0 && str && strcmp(kv_str(k), "metadata") == 0;
      kv_map_set(m, t && str ? intern(t, k) : kv_ref(k),
                 (!t && !md) ? kv_ref(x) : slim_copy(t, x, drop_mf && md, depth + 1));
    }
    return m;
  }
  default: return kv_ref(v);
  }
}

/* ---- the watch ------------------------------------------------------------ */

typedef enum { ACT_LIST, ACT_WATCH } wact;

struct kube_watch {
  kube_client *c;
  char *api_version, *kind, *resource, *ns, *lsel, *fsel;
  bool bookmarks;
  bool drop_mf; /* kube_watch_opts.drop_managed_fields */
  bool share;   /* kube_watch_opts.share_strings */
  bool compact; /* kube_watch_opts.compact_json: `store` instead of `cache` */
  wstore store;
  kv *got;        /* compact: the last kube_watch_get answer */
  char *got_json; /* compact: the last kube_watch_get_json answer */
  wintern strings;
  int timeout_s;
  kube_watch_fn cb;
  void *ud;
  const kube_resource_info *ri;
  kresolve *resolving;
  kxfer *x;
  bool listing;
  struct event *timer;
  wact act;
  char *rv;
  wcache cache;
  int attempt;
  bool stopped;
  int depth;
  /* stream scanner */
  size_t scan;
  int sdepth;
  bool in_str, esc;
  bool got_event;
  int64_t stream_started_ms;
  kube_watch_stats st;
  kube_watch *next, *prev;
};

static char *dup0(const char *s) {
  if (!s || !*s) return NULL;
  char *d = strdup(s);
  if (!d) kv_oom();
  return d;
}

static void set_rv(kube_watch *w, const char *rv) {
  if (!rv || !*rv) return;
  char *d = strdup(rv);
  if (!d) kv_oom();
  free(w->rv);
  w->rv = d;
}

/* The object as the watch keeps and delivers it (a new reference): `obj`
 * itself, or its slimmed copy (drop_managed_fields, share_strings). */
static kv *w_slim(kube_watch *w, kv *obj) {
  if (!w->share) {
    kv *md = w->drop_mf ? kv_map_get_str(obj, "metadata") : NULL;
    if (!md || kv_kind_of(md) != KV_MAP || !kv_map_get_str(md, "managedFields")) return kv_ref(obj);
  }
  return kv_kind_of(obj) == KV_MAP ? slim_copy(w->share ? &w->strings : NULL, obj, w->drop_mf, 0)
                                   : kv_ref(obj);
}

/* Keep `obj` (as w_slim made it) as the compact record of key `k`. */
static void store_put_obj(wstore *s, const char *k, const kv *obj) {
  size_t len = 0;
  char *text = kv_json_write(obj, 0, &len);
  store_put(s, k, kube_obj_meta(obj, "resourceVersion"), text, len);
  free(text);
}

static bool deliver(kube_watch *w, kube_watch_event_type t, kv *obj, const kube_error *err,
                    bool from_list) {
  if (w->stopped) return false;
  kube_watch_event ev = {t, obj, w->rv ? w->rv : "", err, from_list};
  w->depth++;
  w->cb(w->ud, &ev);
  w->depth--;
  return !w->stopped;
}

static void w_free(kube_watch *w) {
  kube_client *c = w->c;
  if (w->resolving) kresolve_cancel(w->resolving);
  if (w->x) kxfer_free(w->x);
  if (w->timer) event_free(w->timer);
  cache_clear(&w->cache);
  store_clear(&w->store);
  kv_unref(w->got);
  free(w->got_json);
  intern_free(&w->strings);
  if (w->prev)
    w->prev->next = w->next;
  else if (c->watches == w)
    c->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  kube_client_watch_slots(c, -1);
  free(w->api_version);
  free(w->kind);
  free(w->resource);
  free(w->ns);
  free(w->lsel);
  free(w->fsel);
  free(w->rv);
  free(w);
}

/* Free a stopped watch when nothing of it runs (a list in flight frees it
 * when its answer comes). */
static void w_release(kube_watch *w) {
  if (w->stopped && w->depth == 0 && !w->listing) w_free(w);
}

static void w_run(kube_watch *w);

static void w_timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  kube_watch *w = arg;
  w_run(w);
  w_release(w);
}

static void w_schedule(kube_watch *w, wact act, int delay_ms) {
  w->act = act;
  struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
  evtimer_add(w->timer, &tv);
}

/* Report an error and try `act` again after a backoff (at least
 * `min_ms`). */
static void w_fail(kube_watch *w, const kube_error *err, wact act, int min_ms) {
  w->st.failures++;
  int d = kube_backoff_ms(w->c, w->attempt++);
  if (d < min_ms) d = min_ms;
  if (!deliver(w, KUBE_WATCH_ERROR, NULL, err, false)) return;
  w_schedule(w, act, d);
}

static void w_resolved(void *ud, const kube_resource_info *ri, const kube_error *err) {
  kube_watch *w = ud;
  w->resolving = NULL;
  if (!ri)
    w_fail(w, err, w->act, 0);
  else {
    w->ri = ri;
    w_run(w);
  }
  w_release(w);
}

/* ---- listing --------------------------------------------------------------- */

typedef struct wdelta {
  kube_watch_event_type t;
  kv *obj;
} wdelta;

static void w_start_stream(kube_watch *w);

static void w_list_done(void *ud, kube_result *r) {
  kube_watch *w = ud;
  w->listing = false;
  if (w->stopped) {
    w_release(w);
    return;
  }
  if (r->err.code != KUBE_OK) {
    if (r->err.code == KUBE_ERR_NOT_FOUND || r->err.code == KUBE_ERR_NO_KIND) w->ri = NULL;
    w_fail(w, &r->err, ACT_LIST, r->err.retry_after > 0 ? (int)(r->err.retry_after * 1000) : 0);
    w_release(w);
    return;
  }
  kv *items = kv_map_get_str(r->object, "items");
  size_t n = items && kv_kind_of(items) == KV_LIST ? kv_len(items) : 0;
  wcache fresh = {0};
  wstore fresh_store = {0};
  wdelta *d = calloc(n + w->cache.n + w->store.n + 1, sizeof *d);
  if (!d) kv_oom();
  size_t nd = 0;
  for (size_t i = 0; i < n; i++) {
    kv *o = w_slim(w, kv_list_at(items, i));
    char *k = obj_key(o);
    const char *a = NULL; /* the cached resourceVersion, if cached */
    bool had;
    if (w->compact) {
      wrec old;
      had = store_get(&w->store, k, &old);
      if (had && old.rvlen) a = old.rv;
    } else {
      wentry *old = cache_find(&w->cache, k);
      had = old != NULL;
      if (had) a = kube_obj_meta(old->obj, "resourceVersion");
    }
    if (!had)
      d[nd++] = (wdelta){KUBE_WATCH_ADDED, kv_ref(o)};
    else {
      const char *b = kube_obj_meta(o, "resourceVersion");
      if (!a || !b || strcmp(a, b) != 0) d[nd++] = (wdelta){KUBE_WATCH_MODIFIED, kv_ref(o)};
    }
    if (w->compact)
      store_put_obj(&fresh_store, k, o);
    else
      cache_put(&fresh, k, o);
    kv_unref(o);
    free(k);
  }
  for (size_t i = 0; i < w->cache.nb; i++)
    for (wentry *e = w->cache.b[i]; e; e = e->next)
      if (!cache_find(&fresh, e->key)) d[nd++] = (wdelta){KUBE_WATCH_DELETED, kv_ref(e->obj)};
  for (size_t i = 0; i < w->store.nslot; i++) {
    if (!w->store.slot[i]) continue;
    wrec r = rec_at(w->store.buf, w->store.slot[i] - 1), f;
    if (store_get(&fresh_store, r.key, &f)) continue;
    kv *o = rec_obj(&w->store, &r);
    if (o) d[nd++] = (wdelta){KUBE_WATCH_DELETED, o};
  }
  cache_clear(&w->cache);
  w->cache = fresh;
  store_clear(&w->store);
  w->store = fresh_store;
  set_rv(w, kube_obj_meta(r->object, "resourceVersion"));
  w->st.relists++;
  w->attempt = 0;
  bool alive = true;
  for (size_t i = 0; i < nd; i++) {
    if (alive) alive = deliver(w, d[i].t, d[i].obj, NULL, true);
    kv_unref(d[i].obj);
  }
  free(d);
  if (alive && deliver(w, KUBE_WATCH_SYNCED, NULL, NULL, true)) w_start_stream(w);
  w_release(w);
}

static void w_list(kube_watch *w) {
  kube_req q = {.op = KUBE_OP_LIST,
                .api_version = w->ri->api_version,
                .resource = w->ri->resource,
                .namespace_ = w->ns,
                .label_selector = w->lsel,
                .field_selector = w->fsel};
  if (kube_list_all(w->c, &q, w_list_done, w) == 0) w->listing = true;
}

/* ---- the stream ------------------------------------------------------------ */

static void w_on_data(kxfer *x);
static void w_on_done(kxfer *x);

static void w_start_stream(kube_watch *w) {
  char extra[160];
  snprintf(extra, sizeof extra, "watch=1%s&timeoutSeconds=%d",
           w->bookmarks ? "&allowWatchBookmarks=true" : "", w->timeout_s);
  kube_req q = {.op = KUBE_OP_LIST,
                .namespace_ = w->ns,
                .label_selector = w->lsel,
                .field_selector = w->fsel,
                .resource_version = w->rv};
  kube_error err = {0};
  char *path = kube_req_path_q(w->ri, &q, w->c->cfg.namespace_, extra, &err);
  if (!path) { /* cannot happen for a list path; report and stop trying */
    deliver(w, KUBE_WATCH_ERROR, NULL, &err, false);
    kube_error_clear(&err);
    return;
  }
  w->x = kxfer_new(w->c, "GET", path, NULL, NULL, 0, w_on_done, w);
  free(path);
  w->x->streaming = true;
  w->x->data = w_on_data;
  w->x->timeout_ms = (w->timeout_s + 30) * 1000;
  w->scan = 0;
  w->sdepth = 0;
  w->in_str = w->esc = false;
  w->got_event = false;
  w->stream_started_ms = kube_now_ms();
  w->st.connects++;
  kxfer_start(w->x);
}

typedef enum { NEXT_NONE, NEXT_RELIST, NEXT_REWATCH } wnext;

/* The server's history does not reach our resume point: 410 Gone/Expired,
 * or "Too large resource version" (the server is behind us, e.g. restored
 * from a backup or restarted without its data): both need a re-list, as
 * client-go's reflector does. */
static bool needs_relist(const kube_error *e) {
  if (e->code == KUBE_ERR_GONE) return true;
  for (size_t i = 0; i < e->n_causes; i++)
    if (e->causes[i].reason && strcmp(e->causes[i].reason, "ResourceVersionTooLarge") == 0)
      return true;
  return strstr(e->message, "Too large resource version") != NULL;
}

/* Handle one decoded event; may set *next. */
static bool w_event(kube_watch *w, kv *ev, wnext *next) {
  kv *t = kv_map_get_str(ev, "type");
  kv *obj = kv_map_get_str(ev, "object");
  const char *type = t && kv_kind_of(t) == KV_STRING ? kv_str(t) : "";
  if (!obj || kv_kind_of(obj) != KV_MAP) {
    kube_error e = {0};
    kube_error_set(&e, KUBE_ERR_DECODE, "watch %s: an event of type \"%s\" without an object",
                   w->ri->resource, type);
    *next = NEXT_REWATCH;
    bool ok = deliver(w, KUBE_WATCH_ERROR, NULL, &e, false);
    kube_error_clear(&e);
    return ok;
  }
  if (strcmp(type, "ERROR") == 0) {
    kube_error e = {0};
    kube_error_from_status(&e, 0, obj, NULL);
    if (needs_relist(&e)) {
      w->st.gone++;
      *next = NEXT_RELIST;
    } else {
      w->st.failures++;
      *next = NEXT_REWATCH;
    }
    bool ok = deliver(w, KUBE_WATCH_ERROR, NULL, &e, false);
    kube_error_clear(&e);
    return ok;
  }
  w->got_event = true;
  w->attempt = 0;
  set_rv(w, kube_obj_meta(obj, "resourceVersion"));
  if (strcmp(type, "BOOKMARK") == 0) {
    w->st.bookmarks++;
    return deliver(w, KUBE_WATCH_BOOKMARK, obj, NULL, false);
  }
  kube_watch_event_type et;
  if (strcmp(type, "ADDED") == 0)
    et = KUBE_WATCH_ADDED;
  else if (strcmp(type, "MODIFIED") == 0)
    et = KUBE_WATCH_MODIFIED;
  else if (strcmp(type, "DELETED") == 0)
    et = KUBE_WATCH_DELETED;
  else
    return true; /* unknown event types are ignored, as client-go does */
  w->st.events++;
  obj = w_slim(w, obj);
  char *k = obj_key(obj);
  if (w->compact) {
    if (et == KUBE_WATCH_DELETED)
      store_del(&w->store, k);
    else
      store_put_obj(&w->store, k, obj);
  } else if (et == KUBE_WATCH_DELETED)
    cache_del(&w->cache, k);
  else
    cache_put(&w->cache, k, obj);
  free(k);
  bool alive = deliver(w, et, obj, NULL, false);
  kv_unref(obj);
  return alive;
}

/* Decode every complete JSON object in the stream buffer (objects are
 * found by brace depth outside strings, so both newline-delimited and
 * concatenated framings work), then keep the incomplete tail. */
static wnext w_parse(kube_watch *w, kxfer *x) {
  wnext next = NEXT_NONE;
  size_t start = 0, i = w->scan;
  char *p = x->resp.p;
  size_t len = x->resp.len;
  /* `start` is where the current object began; objects begin at '{' */
  if (w->sdepth == 0) {
    while (i < len && p[i] != '{')
      i++;
    start = i;
  } else {
    start = 0; /* an object in progress always starts at 0 after compaction */
  }
  for (; i < len; i++) {
    char ch = p[i];
    if (w->in_str) {
      if (w->esc)
        w->esc = false;
      else if (ch == '\\')
        w->esc = true;
      else if (ch == '"')
        w->in_str = false;
      continue;
    }
    if (ch == '"')
      w->in_str = true;
    else if (ch == '{' || ch == '[') {
      if (w->sdepth == 0) start = i;
      w->sdepth++;
    } else if (ch == '}' || ch == ']') {
      if (--w->sdepth == 0) {
        kv_parse_error pe;
        kv *ev = kv_json_parse(p + start, i + 1 - start, &pe);
        bool alive = true;
        if (!ev || kv_kind_of(ev) != KV_MAP) {
          kube_error e = {0};
          kube_error_set(&e, KUBE_ERR_DECODE, "watch %s: an event is not a JSON object: %s",
                         w->ri->resource, ev ? "wrong type" : pe.msg);
          next = NEXT_REWATCH;
          alive = deliver(w, KUBE_WATCH_ERROR, NULL, &e, false);
          kube_error_clear(&e);
        } else {
          alive = w_event(w, ev, &next);
        }
        kv_unref(ev);
        if (!alive || next != NEXT_NONE) return next;
        start = i + 1;
      }
    }
  }
  /* keep the tail from the current object (or drop the whitespace) */
  size_t keep_from = w->sdepth > 0 ? start : len;
  memmove(p, p + keep_from, len - keep_from);
  x->resp.len = len - keep_from;
  if (x->resp.p) x->resp.p[x->resp.len] = 0;
  w->scan = x->resp.len;
  return next;
}

static void w_after(kube_watch *w, wnext next) {
  if (w->stopped) return;
  if (next == NEXT_RELIST) {
    if (w->x) kxfer_free(w->x);
    w->x = NULL;
    w_schedule(w, ACT_LIST, 0);
  } else if (next == NEXT_REWATCH) {
    if (w->x) kxfer_free(w->x);
    w->x = NULL;
    w_schedule(w, ACT_WATCH, kube_backoff_ms(w->c, w->attempt++));
  }
}

static void w_on_data(kxfer *x) {
  kube_watch *w = x->owner;
  if (x->status != 200) return; /* an error answer: decoded when it ends */
  wnext next = w_parse(w, x);
  w_after(w, next);
  w_release(w);
}

static void w_on_done(kxfer *x) {
  kube_watch *w = x->owner;
  wnext next = NEXT_NONE;
  if (x->rc == KXFER_OK && x->status == 200) next = w_parse(w, x);
  if (w->stopped || next != NEXT_NONE) {
    w_after(w, next);
    w_release(w);
    return;
  }
  w->x = NULL;
  kube_error err = {0};
  if (x->rc != KXFER_OK) {
    kxfer_error(x, NULL, &err);
    bool client_timeout = x->rc == KXFER_TIMEOUT && w->got_event;
    kxfer_free(x);
    if (client_timeout)
      w_schedule(w, ACT_WATCH, 0);
    else
      w_fail(w, &err, ACT_WATCH, 0);
  } else if (x->status == 200) {
    /* the server ended the stream (timeoutSeconds): resume at once, unless
     * it keeps ending streams without saying anything */
    bool suspicious = !w->got_event && kube_now_ms() - w->stream_started_ms < 1000;
    kxfer_free(x);
    if (suspicious) {
      kube_error_set(&err, KUBE_ERR_TRANSPORT, "watch %s: the server closed the stream at once",
                     w->ri->resource);
      w_fail(w, &err, ACT_WATCH, 0);
    } else {
      w->attempt = 0;
      w_schedule(w, ACT_WATCH, 0);
    }
  } else {
    kv_parse_error pe;
    kv *body = x->resp.len ? kv_json_parse(x->resp.p, x->resp.len, &pe) : NULL;
    kxfer_error(x, body, &err);
    kv_unref(body);
    kxfer_free(x);
    if (needs_relist(&err)) {
      w->st.gone++;
      if (deliver(w, KUBE_WATCH_ERROR, NULL, &err, false)) w_schedule(w, ACT_LIST, 0);
    } else if (err.code == KUBE_ERR_NOT_FOUND) {
      w->ri = NULL; /* the resource went away: resolve again and re-list */
      w_fail(w, &err, ACT_LIST, 0);
    } else {
      w_fail(w, &err, ACT_WATCH, err.retry_after > 0 ? (int)(err.retry_after * 1000) : 0);
    }
  }
  kube_error_clear(&err);
  w_release(w);
}

static void w_run(kube_watch *w) {
  if (w->stopped) return;
  if (!w->ri) {
    if (!w->resolving)
      w->resolving =
          kube_resolve_async(w->c, w->api_version, w->kind, w->resource, w->ns, w_resolved, w);
    return;
  }
  if (w->act == ACT_LIST)
    w_list(w);
  else
    w_start_stream(w);
}

/* ---- public ---------------------------------------------------------------- */

kube_watch *kube_watch_start(kube_client *c, const kube_watch_opts *opts, kube_watch_fn cb,
                             void *ud, kube_error *err) {
  if (err) kube_error_clear(err);
  if (c->closing) {
    if (err) kube_error_set(err, KUBE_ERR_CANCELLED, "the client is closing");
    return NULL;
  }
  if (!opts || !opts->api_version || !*opts->api_version ||
      ((!opts->kind || !*opts->kind) && (!opts->resource || !*opts->resource))) {
    if (err)
      kube_error_set(err, KUBE_ERR_USAGE, "a watch must name apiVersion and kind (or resource)");
    return NULL;
  }
  kube_watch *w = calloc(1, sizeof *w);
  if (!w) kv_oom();
  w->c = c;
  w->api_version = dup0(opts->api_version);
  w->kind = dup0(opts->kind);
  w->resource = w->kind ? NULL : dup0(opts->resource);
  w->ns = dup0(opts->namespace_);
  w->lsel = dup0(opts->label_selector);
  w->fsel = dup0(opts->field_selector);
  w->bookmarks = !opts->no_bookmarks;
  w->drop_mf = opts->drop_managed_fields;
  w->compact = opts->compact_json;
  w->share = opts->share_strings && !w->compact; /* text shares nothing */
  w->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : c->opts.watch_timeout_s;
  if (w->timeout_s <= 0) w->timeout_s = 300 + kube_jitter(c, 600) % 300;
  w->cb = cb;
  w->ud = ud;
  w->timer = evtimer_new(c->base, w_timer_cb, w);
  if (!w->timer) kv_oom();
  if (opts->resource_version && *opts->resource_version) {
    set_rv(w, opts->resource_version);
    w->act = ACT_WATCH;
  } else
    w->act = ACT_LIST;
  w->next = c->watches;
  if (c->watches) c->watches->prev = w;
  c->watches = w;
  kube_client_watch_slots(c, 1);
  w_schedule(w, w->act, 0);
  return w;
}

void kube_watch_stop(kube_watch *w) {
  if (!w || w->stopped) return;
  w->stopped = true;
  evtimer_del(w->timer);
  if (w->resolving) {
    kresolve_cancel(w->resolving);
    w->resolving = NULL;
  }
  if (w->depth == 0 && w->x) { /* not inside this stream's own dispatch */
    kxfer_free(w->x);
    w->x = NULL;
  }
  w_release(w);
}

void kube_watches_shutdown(kube_client *c) {
  kube_watch *w = c->watches;
  while (w) {
    kube_watch *n = w->next;
    kube_watch_stop(w);
    w = n;
  }
}

const char *kube_watch_resource_version(const kube_watch *w) { return w->rv ? w->rv : ""; }

static char *ns_name_key(const char *namespace_, const char *name) {
  char *k = NULL;
  if (asprintf(&k, "%s/%s", namespace_ ? namespace_ : "", name ? name : "") < 0) kv_oom();
  return k;
}

kv *kube_watch_get_copy(const kube_watch *w, const char *namespace_, const char *name) {
  char *k = ns_name_key(namespace_, name);
  kv *o = NULL;
  if (w->compact) {
    wrec r;
    if (store_get(&w->store, k, &r)) o = rec_obj(&w->store, &r);
  } else {
    wentry *e = cache_find(&w->cache, k);
    if (e) o = kv_ref(e->obj);
  }
  free(k);
  return o;
}

kv *kube_watch_get(const kube_watch *w, const char *namespace_, const char *name) {
  if (!w->compact) {
    kv *o = kube_watch_get_copy(w, namespace_, name);
    kv_unref(o); /* the cache keeps its own reference */
    return o;
  }
  kube_watch *mw = (kube_watch *)w; /* the parsed answer is kept until the next call */
  kv_unref(mw->got);
  mw->got = kube_watch_get_copy(w, namespace_, name);
  return mw->got;
}

const char *kube_watch_get_json(const kube_watch *w, const char *namespace_, const char *name,
                                size_t *len) {
  if (!w->compact) return NULL;
  char *k = ns_name_key(namespace_, name);
  wrec r;
  bool found = store_get(&w->store, k, &r);
  free(k);
  if (!found) return NULL;
  kube_watch *mw = (kube_watch *)w; /* kept until the next call */
  free(mw->got_json);
  size_t n = r.tlen;
  if (r.raw) {
    mw->got_json = malloc(n + 1);
    if (!mw->got_json) kv_oom();
    memcpy(mw->got_json, r.text, n + 1);
  } else
    mw->got_json = dict_decode(&w->store.ref, r.text, r.tlen, &n);
  if (len) *len = n;
  return mw->got_json;
}

void kube_watch_trim(kube_watch *w) {
  if (w && w->compact && w->store.garbage) store_compact(&w->store);
  if (w) {
    kv_unref(w->got);
    w->got = NULL;
    free(w->got_json);
    w->got_json = NULL;
  }
}

size_t kube_watch_count(const kube_watch *w) { return w->compact ? w->store.n : w->cache.n; }

kube_watch_stats kube_watch_get_stats(const kube_watch *w) { return w->st; }
