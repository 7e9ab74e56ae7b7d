/*
 * controlplane/common.c: what every part of koreo-controlplane uses
 * (controlplane/cp.h): the logger (text or JSON lines on stderr, the same
 * shape as koreo-agent's), SHA-256 hex digests and the definition content
 * hash (cp-design.md "Agent protocol additions").
 */
#include "cp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "koreo/json.h"
#include "koreo/log.h"
#include "koreo/value.h"

_Static_assert((int)CP_DEBUG == (int)KOREO_LOG_DEBUG && (int)CP_ERROR == (int)KOREO_LOG_ERROR,
               "cp_log_level follows koreo_log_level");

void cp_log_setup(bool json, cp_log_level min) { koreo_log_setup(json, (koreo_log_level)min); }

void cp_log(cp_log_level lvl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  koreo_logv((koreo_log_level)lvl, fmt, ap);
  va_end(ap);
}

void cp_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(data, len, d);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = 0;
}

void cp_random_hex(char *out, size_t nbytes) {
  unsigned char buf[32];
  if (nbytes > sizeof buf || RAND_bytes(buf, (int)nbytes) != 1) {
    cp_log(CP_ERROR, "cp_random_hex: no randomness (%zu bytes)", nbytes);
    abort();
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < nbytes; i++) {
    out[2 * i] = hex[buf[i] >> 4];
    out[2 * i + 1] = hex[buf[i] & 15];
  }
  out[2 * nbytes] = 0;
  OPENSSL_cleanse(buf, sizeof buf);
}

void cp_token_new(char id[17], char secret[33], char hash[65]) {
  cp_random_hex(id, 8);
  cp_random_hex(secret, 16);
  cp_sha256_hex(secret, 32, hash);
}

void cp_definition_hash(const kv *doc, char out[72]) {
  size_t len = 0;
  char *json = kv_json_write(doc, 0, &len);
  memcpy(out, "sha256:", 7);
  cp_sha256_hex(json, len, out + 7);
  free(json);
}
