/*
 * koreo/value.h: the one value type (`kv`) for everything the language
 * touches: null, bool, int (int64), uint (uint64), double, string (UTF-8),
 * bytes, list, map (insertion ordered), timestamp, duration and type, plus
 * the error value that exists only inside CEL evaluation.
 *
 * Values are immutable once built and reference-counted.  A value is built
 * with a constructor (refcount 1, owned by the caller), filled if it is a
 * list or map while the builder still holds the only reference, and then
 * shared with kv_ref()/kv_unref().  Reference counts are not atomic: a value
 * belongs to one thread (every Koreo process runs one event loop).
 *
 * null, true and false are immortal singletons; kv_ref/kv_unref on them are
 * no-ops.  Constructors return NULL only on allocation failure, which every
 * caller treats as fatal (kv_oom() aborts with a message).
 *
 * Every value may carry a source position (file, line, column) recorded by
 * the YAML reader for error messages; see kv_pos().
 *
 * Also here, because every layer that prints values needs them: UTF-8
 * decoding/encoding and `kv_strbuf`, the one growable string builder.
 */
#ifndef KOREO_VALUE_H
#define KOREO_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kv_kind {
  KV_NULL = 0,
  KV_BOOL,
  KV_INT,
  KV_UINT,
  KV_DOUBLE,
  KV_STRING,
  KV_BYTES,
  KV_LIST,
  KV_MAP,
  KV_TIMESTAMP, /* seconds + nanoseconds since the Unix epoch, UTC */
  KV_DURATION,  /* seconds + nanoseconds, same sign */
  KV_TYPE,      /* a CEL type value: its name ("int", "list", ...) */
  KV_ERROR,     /* a CEL evaluation error: message + source offset */
} kv_kind;

/* A source position: 1-based line and column, file name shared. */
typedef struct kv_srcpos {
  const char *file; /* interned for the process lifetime; may be NULL */
  uint32_t line;
  uint32_t col;
} kv_srcpos;

typedef struct kv kv;
typedef struct kv_map_index kv_map_index;

struct kv {
  int32_t refs; /* < 0: immortal */
  uint8_t kind; /* kv_kind */
  uint8_t flags;
  uint16_t pad_;
  const kv_srcpos *pos; /* optional, owned by the value */
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    struct {
      size_t len;
      char *ptr; /* NUL-terminated (bytes too, for convenience) */
    } s;
    struct {
      size_t len, cap;
      kv **items;
    } list;
    struct {
      size_t len, cap;
      kv **keys;
      kv **vals;
      kv_map_index *index; /* hash index, built for larger maps */
    } map;
    struct {
      int64_t sec;
      int32_t nsec; /* 0..999999999 for timestamps; same sign as sec for
                       durations */
      int32_t off;  /* timestamps: the UTC offset (seconds) the value was
                       written with; only Koreo's native text form uses it */
    } t;
    struct {
      char *msg;     /* message, owned */
      int32_t where; /* byte offset into the expression source, -1 unknown */
      int32_t code;  /* cel_error_code (see cel.h) */
    } err;
  } u;
};

/* Abort the process: out of memory.  Never returns. */
void kv_oom(void) __attribute__((noreturn));

/* --- reference counting ------------------------------------------------ */

/* Take a reference: returns `v` (NULL passes through). */
static inline kv *kv_ref(kv *v) {
  if (v && v->refs >= 0) v->refs++;
  return v;
}
/* Drop a reference; frees the value (and its children) at zero. */
void kv_unref(kv *v);

/* --- constructors: each returns a new reference ------------------------- */

kv *kv_null(void);
kv *kv_bool(bool b);
kv *kv_int(int64_t i);
kv *kv_uint(uint64_t u);
kv *kv_double(double d);
/* A string from `len` bytes of UTF-8 (copied).  The caller guarantees
 * UTF-8 validity where it matters (see kv_utf8_valid). */
kv *kv_string(const char *s, size_t len);
kv *kv_cstring(const char *s);
/* A string that takes ownership of a malloc'ed NUL-terminated buffer. */
kv *kv_string_take(char *s, size_t len);
kv *kv_bytes(const void *p, size_t len);
kv *kv_timestamp(int64_t sec, int32_t nsec);
kv *kv_duration(int64_t sec, int32_t nsec);
/* A type value named `name` (CEL's spelling: "int", "list", "map",
 * "null_type", "google.protobuf.Timestamp", ...). */
kv *kv_type(const char *name);
/* An error value; `where` is a byte offset into the expression or -1. */
kv *kv_error(int code, int32_t where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An empty list/map with room for `cap` entries (grows as needed). */
kv *kv_list_new(size_t cap);
kv *kv_map_new(size_t cap);

/* Builders: valid only while the caller holds the only reference.
 * kv_list_push takes ownership of `item`.  kv_map_set takes ownership of
 * `key` and `val`; an existing equal key (kv_key_equal) keeps its place and
 * gets the new value.  kv_map_set_str copies the key text. */
void kv_list_push(kv *list, kv *item);
void kv_map_set(kv *map, kv *key, kv *val);
void kv_map_set_str(kv *map, const char *key, kv *val);

/* Attach a source position (copied) to a value the caller owns alone. */
void kv_set_pos(kv *v, const char *file, uint32_t line, uint32_t col);
static inline const kv_srcpos *kv_pos(const kv *v) { return v ? v->pos : NULL; }

/* Intern a file name for use in kv_srcpos (lives until exit). */
const char *kv_intern_file(const char *name);

/* --- accessors (borrowed results) --------------------------------------- */

static inline kv_kind kv_kind_of(const kv *v) { return (kv_kind)v->kind; }
static inline size_t kv_len(const kv *v) {
  switch (v->kind) {
  case KV_STRING:
  case KV_BYTES: return v->u.s.len;
  case KV_LIST: return v->u.list.len;
  case KV_MAP: return v->u.map.len;
  default: return 0;
  }
}
static inline const char *kv_str(const kv *v) { return v->u.s.ptr; }
static inline kv *kv_list_at(const kv *v, size_t i) { return v->u.list.items[i]; }
static inline kv *kv_map_key_at(const kv *v, size_t i) { return v->u.map.keys[i]; }
static inline kv *kv_map_val_at(const kv *v, size_t i) { return v->u.map.vals[i]; }

/* Deep merge (spec 2.4, overlay()): a new map with `overlay`'s entries
 * merged onto `base`: where both hold a map under the same key the maps
 * merge recursively, otherwise the overlay's value replaces (lists whole,
 * null included).  Base keys keep their order, new keys follow in overlay
 * order.  Both arguments are borrowed maps and are not changed; returns a
 * new reference. */
kv *kv_map_deep_merge(const kv *base, const kv *overlay);

/* printf into a new malloc'ed string (the caller frees it); allocation
 * failure aborts through kv_oom(). */
char *kv_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Map lookup.  kv_map_get compares keys with kv_key_equal; kv_map_get_str
 * looks up a string key.  Both return a borrowed value or NULL; a NULL or
 * non-map `map` has no keys (so lookups chain: get(get(o, "metadata"), ...)). */
kv *kv_map_get(const kv *map, const kv *key);
kv *kv_map_get_strn(const kv *map, const char *key, size_t len);
static inline kv *kv_map_get_str(const kv *map, const char *key) {
  size_t n = 0;
  while (key[n])
    n++;
  return kv_map_get_strn(map, key, n);
}

/* Key equality: same kind and value (strings and bytes by content; int,
 * uint and double by numeric value, so the keys 1, 1u and 1.0 are equal;
 * bools by value).  Other kinds compare by identity. */
bool kv_key_equal(const kv *a, const kv *b);

/* Deep structural equality for tests and diffing: kinds must match exactly
 * (int 1 != uint 1 != double 1.0), doubles compare bitwise-equal except
 * that NaN equals NaN; maps compare as sets of entries (order-insensitive)
 * when `ordered` is false. */
bool kv_equal_strict(const kv *a, const kv *b, bool ordered);

/* The kind's name for messages: "null", "bool", "int", ... */
const char *kv_kind_name(kv_kind k);

/* UTF-8: validity (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), number of code points (lead bytes counted; the text is
 * not checked). */
bool kv_utf8_valid(const char *s, size_t len);
size_t kv_utf8_count(const char *s, size_t len);
/* Decode the one UTF-8 sequence at s[0..n) under the same rules as
 * kv_utf8_valid.  Returns its length in bytes (1-4) and sets *cp, or 0
 * (*cp untouched) when the bytes there are not valid UTF-8 or n is 0. */
size_t kv_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encode code point `cp` as UTF-8 into out[0..4) (not NUL-terminated);
 * returns the length, 1-4.  Nothing is checked: a surrogate gets the
 * 3-byte form (WTF-8) and callers keep cp <= 0x10FFFF. */
size_t kv_utf8_encode(uint32_t cp, char out[4]);

/* Shortest text that reads back as the same double, always containing a
 * '.', 'e', "inf" or "nan" (Python repr style: 3.0, 1e+20, 5e-324, -0.0,
 * 1e-05).  Writes at most 32 bytes including the NUL; returns the length. */
int kv_double_repr(double d, char buf[32]);
/* The shortest decimal digits that read back as |d| (d finite; the sign is
 * ignored): writes 1 to 17 digit characters to `digits` (no NUL, trailing
 * zeros dropped, "0" for zero), sets *exp10 to the decimal exponent of the
 * first digit (|d| = D.DDD x 10^exp10) and returns the number of digits.
 * The building block of every double-to-text conversion (kv_double_repr,
 * CEL's string(double) and format()). */
int kv_double_digits(double d, char digits[24], int *exp10);

/* --- string builder ------------------------------------------------------
 * A growable byte buffer for building text.  Zero-initialise it
 * (`kv_strbuf b = {0};`); `p` is NULL until the first append and, from any
 * append on (even of 0 bytes), points at `len` bytes followed by a NUL.
 * The buffer owns `p` (malloc'ed) until kv_strbuf_take / _take_string hand
 * it over or kv_strbuf_free releases it; all three leave `b` zeroed and
 * reusable.  Bytes need not be text: NULs and invalid UTF-8 are kept as
 * given.  Allocation failure aborts through kv_oom(); nothing else fails. */
typedef struct kv_strbuf {
  char *p;
  size_t len, cap; /* bytes used (without the NUL), bytes allocated */
} kv_strbuf;

/* Grow `b` so that `more` bytes plus the NUL fit after `len` (capacity
 * doubles from 64 bytes).  Use kv_strbuf_reserve. */
void kv_strbuf_grow(kv_strbuf *b, size_t more);
/* Make room for `more` further bytes (plus the NUL); allocates `p` (and
 * NUL-terminates it) when `b` is still empty. */
static inline void kv_strbuf_reserve(kv_strbuf *b, size_t more) {
  if (more >= b->cap - b->len) kv_strbuf_grow(b, more); /* cap is 0 or > len */
}
/* Append `n` bytes of `s` (s may be NULL when n is 0). */
static inline void kv_strbuf_put(kv_strbuf *b, const char *s, size_t n) {
  kv_strbuf_reserve(b, n);
  if (n) __builtin_memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
/* Append one byte. */
static inline void kv_strbuf_putc(kv_strbuf *b, char c) {
  kv_strbuf_reserve(b, 1);
  b->p[b->len++] = c;
  b->p[b->len] = 0;
}
/* Append the NUL-terminated string `s`. */
static inline void kv_strbuf_puts(kv_strbuf *b, const char *s) {
  kv_strbuf_put(b, s, __builtin_strlen(s));
}
/* Append printf-formatted text (any length).  A format that vsnprintf
 * rejects (returns < 0) appends nothing. */
void kv_strbuf_printf(kv_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append code point `cp` as UTF-8 (kv_utf8_encode's rules). */
void kv_strbuf_put_utf8(kv_strbuf *b, uint32_t cp);
/* Append `n` bytes at `data` as base64 (RFC 4648 section 4: the standard
 * alphabet, '=' padding, no line breaks). */
void kv_strbuf_put_base64(kv_strbuf *b, const void *data, size_t n);
/* The value (0-63) of a character of that alphabet, -1 for any other
 * character ('=' included), for the decoders, whose rules differ. */
int kv_base64_digit(unsigned char ch);
/* Forget the contents but keep the allocation (for reuse as scratch). */
static inline void kv_strbuf_clear(kv_strbuf *b) {
  b->len = 0;
  if (b->p) b->p[0] = 0;
}
/* Hand over the text: returns the malloc'ed NUL-terminated buffer, the
 * caller frees it ("" freshly allocated when nothing was appended); its
 * length goes to *len when len != NULL.  `b` is reset to empty. */
char *kv_strbuf_take(kv_strbuf *b, size_t *len);
/* The text as a new string value (kv_string_take of kv_strbuf_take; a new
 * reference).  The caller guarantees UTF-8 where it matters, as for
 * kv_string.  `b` is reset to empty. */
kv *kv_strbuf_take_string(kv_strbuf *b);
/* Free the buffer and reset `b` to empty. */
static inline void kv_strbuf_free(kv_strbuf *b) {
  free(b->p);
  *b = (kv_strbuf){0};
}

#ifdef __cplusplus
}
#endif
#endif
