/*
 * core/cel/lib_encoders.c: the CEL encoders extension library
 * (CEL_EXT_ENCODERS), as cel-go's ext.Encoders() defines it:
 *   base64.encode(bytes) -> string   standard alphabet, with padding
 *   base64.decode(string) -> bytes   standard alphabet; padded input is
 *                                    decoded strictly, and input without
 *                                    padding is accepted as well
 * Line breaks (\r, \n) in the input of decode are ignored, as Go does.
 */
#include "cel/cel_impl.h"

#include <stdlib.h>
#include <string.h>

/* base64.encode(<bytes>) -> string. */
static kv *fn_encode(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1 || a[0]->kind != KV_BYTES) return cel_no_overload(c, a, n);
  kv_strbuf b = {0};
  kv_strbuf_put_base64(&b, kv_str(a[0]), kv_len(a[0]));
  return kv_strbuf_take_string(&b);
}

/* Decode `s` (len bytes) into `out` (room for len bytes).  `padded`: the
 * input must be a whole number of 4-character quanta, the last one padded
 * with '=' (Go's StdEncoding); otherwise '=' is not allowed and a final
 * partial quantum of 2 or 3 characters is accepted (RawStdEncoding).
 * Returns the decoded length, or -1 with *bad set to the offending input
 * offset. */
static ptrdiff_t b64_decode(const char *s, size_t len, bool padded, unsigned char *out,
                            size_t *bad) {
  size_t o = 0, i = 0;
  for (;;) {
    int q[4];
    size_t got = 0, last = i;
    /* gather up to four symbols, skipping line breaks */
    while (got < 4 && i < len) {
      unsigned char ch = (unsigned char)s[i];
      if (ch == '\r' || ch == '\n') {
        i++;
        continue;
      }
      if (ch == '=') break;
      int v = kv_base64_digit(ch);
      if (v < 0) {
        *bad = i;
        return -1;
      }
      q[got++] = v;
      last = i++;
    }
    if (got == 4) {
      uint32_t v =
          (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | (uint32_t)q[3];
      out[o++] = (unsigned char)(v >> 16);
      out[o++] = (unsigned char)(v >> 8);
      out[o++] = (unsigned char)v;
      continue;
    }
    /* end of input or '=' with 0..3 symbols gathered */
    bool at_pad = i < len && s[i] == '=';
    if (got == 0 && !at_pad) return (ptrdiff_t)o;
    if (got < 2) {
      *bad = got == 0 ? i : last;
      return -1;
    }
    if (padded) {
      if (!at_pad) {
        *bad = len;
        return -1;
      }
      /* expect 4 - got '=' characters (line breaks allowed between) */
      size_t need = 4 - got;
      while (need > 0 && i < len) {
        if (s[i] == '\r' || s[i] == '\n') {
          i++;
          continue;
        }
        if (s[i] != '=') break;
        need--;
        i++;
      }
      if (need > 0) {
        *bad = i;
        return -1;
      }
      while (i < len && (s[i] == '\r' || s[i] == '\n'))
        i++;
      if (i < len) {
        *bad = i;
        return -1;
      }
    } else if (at_pad) {
      *bad = i;
      return -1;
    }
    uint32_t v = (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (got > 2 ? (uint32_t)q[2] << 6 : 0);
    out[o++] = (unsigned char)(v >> 16);
    if (got > 2) out[o++] = (unsigned char)(v >> 8);
    return (ptrdiff_t)o;
  }
}

/* base64.decode(<string>) -> bytes.  Error: "illegal base64 data at input
 * byte N" when the text is neither padded nor unpadded base64. */
static kv *fn_decode(const cel_call *c, kv *const *a, size_t n) {
  if (n != 1 || a[0]->kind != KV_STRING) return cel_no_overload(c, a, n);
  const char *s = kv_str(a[0]);
  size_t len = kv_len(a[0]), bad = 0;
  unsigned char *out = malloc(len + 1);
  if (!out) kv_oom();
  ptrdiff_t got = b64_decode(s, len, true, out, &bad);
  if (got < 0) {
    size_t bad2 = 0;
    got = b64_decode(s, len, false, out, &bad2);
  }
  kv *res = got < 0 ? cel_errorf(c, CEL_ERR_INVALID, "illegal base64 data at input byte %zu", bad)
                    : kv_bytes(out, (size_t)got);
  free(out);
  return res;
}

/* The encoders extension's functions; global calls with qualified names. */
const cel_fn_def cel_encoders_defs[] = {
    {"base64.encode", CEL_FN_GLOBAL, 1, 1, fn_encode},
    {"base64.decode", CEL_FN_GLOBAL, 1, 1, fn_decode},
};
const size_t cel_encoders_ndefs = sizeof cel_encoders_defs / sizeof cel_encoders_defs[0];
