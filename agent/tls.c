/*
 * agent/tls.c: the agent's TLS identity (see agent/tls.h): keys, pins, the
 * small CA, CSRs and signing, bootstrap tokens, the --state-dir files, the
 * TLS 1.3 SSL_CTX builders, and the agent-side client (register, connect
 * with the certificate, renew) over libevent bufferevent_openssl.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "tls_internal.h"

/* ================================================================ errors */

void ktls_seterr(ktls_err *err, const char *fmt, ...) {
  if (!err) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  unsigned long e = ERR_peek_last_error();
  if (e) {
    size_t n = strlen(err->msg);
    if (n + 3 < sizeof err->msg) {
      err->msg[n] = ':';
      err->msg[n + 1] = ' ';
      ERR_error_string_n(e, err->msg + n + 2, sizeof err->msg - n - 2);
    }
  }
  ERR_clear_error();
}

static void hex(const unsigned char *in, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[in[i] >> 4];
    out[2 * i + 1] = d[in[i] & 15];
  }
  out[2 * n] = 0;
}

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

/* ================================================================ keys, pins */

EVP_PKEY *ktls_key_new(ktls_err *err) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  if (!k) ktls_seterr(err, "generating an EC P-256 key failed");
  return k;
}

static char *bio_to_str(BIO *b) {
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *s = malloc((size_t)n + 1);
  if (s) {
    memcpy(s, data, (size_t)n);
    s[n] = 0;
  }
  return s;
}

char *ktls_key_pem(EVP_PKEY *key, ktls_err *err) {
  BIO *b = BIO_new(BIO_s_mem());
  char *s = NULL;
  if (b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) s = bio_to_str(b);
  if (!s) ktls_seterr(err, "encoding a private key as PEM failed");
  BIO_free(b);
  return s;
}

char *ktls_cert_pem(X509 *cert, ktls_err *err) {
  BIO *b = BIO_new(BIO_s_mem());
  char *s = NULL;
  if (b && PEM_write_bio_X509(b, cert)) s = bio_to_str(b);
  if (!s) ktls_seterr(err, "encoding a certificate as PEM failed");
  BIO_free(b);
  return s;
}

EVP_PKEY *ktls_key_from_pem(const char *pem, ktls_err *err) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!k) ktls_seterr(err, "not a PEM private key");
  return k;
}

X509 *ktls_cert_from_pem(const char *pem, ktls_err *err) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!c) ktls_seterr(err, "not a PEM certificate");
  return c;
}

int ktls_cert_pin(X509 *cert, char out[65], ktls_err *err) {
  unsigned char *der = NULL;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (n <= 0) {
    ktls_seterr(err, "encoding the certificate's public key failed");
    return -1;
  }
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(der, (size_t)n, md);
  OPENSSL_free(der);
  hex(md, sizeof md, out);
  return 0;
}

bool ktls_cluster_name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > KTLS_CLUSTER_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-' && c != '.') return false;
    if ((i == 0 || i == n - 1) && !alnum) return false;
  }
  return true;
}

static int name_cn(X509_NAME *nm, char *out, size_t size) {
  int len = X509_NAME_get_text_by_NID(nm, NID_commonName, out, (int)size);
  return len > 0 && (size_t)len < size ? 0 : -1;
}

int ktls_cert_cluster(X509 *cert, char *out, size_t out_size, ktls_err *err) {
  char cn[KTLS_CLUSTER_MAX + 1];
  if (name_cn(X509_get_subject_name(cert), cn, sizeof cn) != 0 || !ktls_cluster_name_valid(cn)) {
    ktls_seterr(err, "certificate subject has no valid cluster name in its CN");
    return -1;
  }
  GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  bool found = false;
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
    if (g->type != GEN_URI) continue;
    const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
    int ul = ASN1_STRING_length(g->d.uniformResourceIdentifier);
    static const char pre[] = "koreo://cluster/";
    size_t pl = sizeof pre - 1;
    if ((size_t)ul == pl + strlen(cn) && memcmp(u, pre, pl) == 0 &&
        memcmp(u + pl, cn, strlen(cn)) == 0)
      found = true;
  }
  GENERAL_NAMES_free(sans);
  if (!found) {
    ktls_seterr(err, "certificate for cluster '%s' lacks the SAN URI koreo://cluster/%s", cn, cn);
    return -1;
  }
  if (strlen(cn) + 1 > out_size) {
    ktls_seterr(err, "cluster name too long");
    return -1;
  }
  strcpy(out, cn);
  return 0;
}

int ktls_cert_validity(X509 *cert, time_t *nb, time_t *na, ktls_err *err) {
  struct tm t1, t2;
  if (!ASN1_TIME_to_tm(X509_get0_notBefore(cert), &t1) ||
      !ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t2)) {
    ktls_seterr(err, "certificate validity is unreadable");
    return -1;
  }
  if (nb) *nb = timegm(&t1);
  if (na) *na = timegm(&t2);
  return 0;
}

/* ================================================================ CA */

struct ktls_ca {
  X509 *cert;
  EVP_PKEY *key;
  char *cert_pem;
  char pin[65];
};

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ex) return -1;
  int ok = X509_add_ext(cert, ex, -1);
  X509_EXTENSION_free(ex);
  return ok ? 0 : -1;
}

static int set_serial(X509 *cert) {
  unsigned char r[16];
  if (RAND_bytes(r, sizeof r) != 1) return -1;
  r[0] &= 0x7f; /* positive */
  r[0] |= 0x01; /* non-zero */
  BIGNUM *bn = BN_bin2bn(r, sizeof r, NULL);
  int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
  BN_free(bn);
  return ok ? 0 : -1;
}

static int set_validity(X509 *cert, time_t nb, time_t na) {
  return ASN1_TIME_set(X509_getm_notBefore(cert), nb) && ASN1_TIME_set(X509_getm_notAfter(cert), na)
             ? 0
             : -1;
}

static int set_cn(X509_NAME *nm, const char *cn) {
  return X509_NAME_add_entry_by_NID(nm, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0)
             ? 0
             : -1;
}

static ktls_ca *ca_wrap(X509 *cert, EVP_PKEY *key, ktls_err *err) {
  ktls_ca *ca = calloc(1, sizeof *ca);
  if (!ca) {
    ktls_seterr(err, "out of memory");
    goto fail;
  }
  ca->cert = cert;
  ca->key = key;
  if (!(ca->cert_pem = ktls_cert_pem(cert, err)) || ktls_cert_pin(cert, ca->pin, err) != 0) {
    ktls_ca_free(ca);
    return NULL;
  }
  return ca;
fail:
  X509_free(cert);
  EVP_PKEY_free(key);
  return NULL;
}

ktls_ca *ktls_ca_new(const char *name, int days, ktls_err *err) {
  EVP_PKEY *key = ktls_key_new(err);
  if (!key) return NULL;
  X509 *c = X509_new();
  time_t now = time(NULL);
  if (!c || !X509_set_version(c, 2) || set_serial(c) ||
      set_validity(c, now - 60, now + (time_t)days * 86400) ||
      set_cn(X509_get_subject_name(c), name) ||
      !X509_set_issuer_name(c, X509_get_subject_name(c)) || !X509_set_pubkey(c, key) ||
      add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE") ||
      add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      add_ext(c, c, NID_subject_key_identifier, "hash") || !X509_sign(c, key, EVP_sha256())) {
    ktls_seterr(err, "creating the CA certificate '%s' failed", name);
    X509_free(c);
    EVP_PKEY_free(key);
    return NULL;
  }
  return ca_wrap(c, key, err);
}

ktls_ca *ktls_ca_from_pem(const char *cert_pem, const char *key_pem, ktls_err *err) {
  X509 *c = ktls_cert_from_pem(cert_pem, err);
  if (!c) return NULL;
  EVP_PKEY *k = ktls_key_from_pem(key_pem, err);
  if (!k) {
    X509_free(c);
    return NULL;
  }
  if (X509_check_private_key(c, k) != 1) {
    ktls_seterr(err, "the CA key does not match the CA certificate");
    X509_free(c);
    EVP_PKEY_free(k);
    return NULL;
  }
  return ca_wrap(c, k, err);
}

void ktls_ca_free(ktls_ca *ca) {
  if (!ca) return;
  X509_free(ca->cert);
  EVP_PKEY_free(ca->key);
  free(ca->cert_pem);
  free(ca);
}

char *ktls_ca_key_pem(const ktls_ca *ca, ktls_err *err) { return ktls_key_pem(ca->key, err); }

X509 *ktls_ca_cert(const ktls_ca *ca) { return ca->cert; }
const char *ktls_ca_cert_pem_str(const ktls_ca *ca) { return ca->cert_pem; }
const char *ktls_ca_pin(const ktls_ca *ca) { return ca->pin; }

static char *cluster_uri(const char *cluster) {
  char *u = NULL;
  if (asprintf(&u, "URI:koreo://cluster/%s", cluster) < 0) return NULL;
  return u;
}

char *ktls_csr_new(EVP_PKEY *key, const char *cluster, ktls_err *err) {
  if (!ktls_cluster_name_valid(cluster)) {
    ktls_seterr(err, "cluster name '%s' is not a DNS-1123 subdomain", cluster ? cluster : "");
    return NULL;
  }
  X509_REQ *r = X509_REQ_new();
  char *uri = cluster_uri(cluster), *pem = NULL;
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION *san = uri ? X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, uri) : NULL;
  BIO *b = BIO_new(BIO_s_mem());
  if (r && exts && san && b && X509_REQ_set_version(r, 0) &&
      set_cn(X509_REQ_get_subject_name(r), cluster) == 0 && X509_REQ_set_pubkey(r, key) &&
      sk_X509_EXTENSION_push(exts, san) && (san = NULL, X509_REQ_add_extensions(r, exts)) &&
      X509_REQ_sign(r, key, EVP_sha256()) && PEM_write_bio_X509_REQ(b, r))
    pem = bio_to_str(b);
  if (!pem) ktls_seterr(err, "creating a CSR for cluster '%s' failed", cluster);
  X509_EXTENSION_free(san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  BIO_free(b);
  free(uri);
  X509_REQ_free(r);
  return pem;
}

char *ktls_ca_sign_csr(ktls_ca *ca, const char *csr_pem, const char *cluster, time_t nb, time_t na,
                       ktls_err *err) {
  if (!ktls_cluster_name_valid(cluster)) {
    ktls_seterr(err, "cluster name '%s' is not a DNS-1123 subdomain", cluster ? cluster : "");
    return NULL;
  }
  BIO *b = BIO_new_mem_buf(csr_pem ? csr_pem : "", -1);
  X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!r) {
    ktls_seterr(err, "the CSR is not a PEM certificate request");
    return NULL;
  }
  char *out = NULL, *uri = NULL;
  X509 *c = NULL;
  EVP_PKEY *pub = X509_REQ_get0_pubkey(r);
  char cn[KTLS_CLUSTER_MAX + 1];
  if (!pub || X509_REQ_verify(r, pub) != 1) {
    ktls_seterr(err, "the CSR's signature does not verify");
    goto done;
  }
  if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC) {
    ktls_seterr(err, "the CSR's key is not an EC key");
    goto done;
  }
  if (name_cn(X509_REQ_get_subject_name(r), cn, sizeof cn) != 0 || strcmp(cn, cluster) != 0) {
    ktls_seterr(err, "the CSR is for a different cluster than '%s'", cluster);
    goto done;
  }
  c = X509_new();
  uri = cluster_uri(cluster);
  if (!c || !uri || !X509_set_version(c, 2) || set_serial(c) || set_validity(c, nb, na) ||
      set_cn(X509_get_subject_name(c), cluster) ||
      !X509_set_issuer_name(c, X509_get_subject_name(ca->cert)) || !X509_set_pubkey(c, pub) ||
      add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
      add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature") ||
      add_ext(c, ca->cert, NID_ext_key_usage, "clientAuth") ||
      add_ext(c, ca->cert, NID_subject_alt_name, uri) ||
      add_ext(c, ca->cert, NID_authority_key_identifier, "keyid:always") ||
      !X509_sign(c, ca->key, EVP_sha256())) {
    ktls_seterr(err, "signing the certificate for cluster '%s' failed", cluster);
    goto done;
  }
  out = ktls_cert_pem(c, err);
done:
  free(uri);
  X509_free(c);
  X509_REQ_free(r);
  return out;
}

int ktls_ca_issue_server(ktls_ca *ca, const char *const *hosts, size_t n, int days, char **cert_pem,
                         char **key_pem, ktls_err *err) {
  *cert_pem = *key_pem = NULL;
  EVP_PKEY *key = ktls_key_new(err);
  if (!key) return -1;
  /* SAN list: "IP:a,DNS:b,..." */
  size_t cap = 16;
  for (size_t i = 0; i < n; i++)
    cap += strlen(hosts[i]) + 8;
  char *san = calloc(1, cap);
  unsigned char buf[16];
  for (size_t i = 0; san && i < n; i++) {
    bool ip = inet_pton(AF_INET, hosts[i], buf) == 1 || inet_pton(AF_INET6, hosts[i], buf) == 1;
    if (i) strcat(san, ",");
    strcat(san, ip ? "IP:" : "DNS:");
    strcat(san, hosts[i]);
  }
  X509 *c = X509_new();
  time_t now = time(NULL);
  int rc = -1;
  if (!san || !c || !X509_set_version(c, 2) || set_serial(c) ||
      set_validity(c, now - 60, now + (time_t)days * 86400) ||
      set_cn(X509_get_subject_name(c), n ? hosts[0] : "koreo-controlplane") ||
      !X509_set_issuer_name(c, X509_get_subject_name(ca->cert)) || !X509_set_pubkey(c, key) ||
      add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
      add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature") ||
      add_ext(c, ca->cert, NID_ext_key_usage, "serverAuth") ||
      (n && add_ext(c, ca->cert, NID_subject_alt_name, san)) ||
      !X509_sign(c, ca->key, EVP_sha256())) {
    ktls_seterr(err, "issuing the server certificate failed");
  } else if ((*cert_pem = ktls_cert_pem(c, err)) && (*key_pem = ktls_key_pem(key, err))) {
    rc = 0;
  } else {
    free(*cert_pem);
    *cert_pem = NULL;
  }
  free(san);
  X509_free(c);
  EVP_PKEY_free(key);
  return rc;
}

/* ================================================================ tokens */

typedef struct token_rec {
  char id[17];
  unsigned char secret_hash[SHA256_DIGEST_LENGTH];
  char cluster[KTLS_CLUSTER_MAX + 1];
  time_t expires_at;
  bool used;
  struct token_rec *next;
} token_rec;

struct ktls_token_store {
  token_rec *head;
};

ktls_token_store *ktls_token_store_new(void) { return calloc(1, sizeof(ktls_token_store)); }

void ktls_token_store_free(ktls_token_store *ts) {
  if (!ts) return;
  for (token_rec *t = ts->head, *nx; t; t = nx) {
    nx = t->next;
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
  }
  free(ts);
}

int ktls_token_parse(const char *tok, char id[17], char secret[33], char pin[65], ktls_err *err) {
  /* kbt.<16 hex>.<32 hex>.<64 hex> */
  if (!tok || strlen(tok) != 4 + 16 + 1 + 32 + 1 + 64 || strncmp(tok, "kbt.", 4) != 0 ||
      tok[20] != '.' || tok[53] != '.' || !is_hex(tok + 4, 16) || !is_hex(tok + 21, 32) ||
      !is_hex(tok + 54, 64)) {
    ktls_seterr(err, "bootstrap token is malformed (expected kbt.<16 hex>.<32 hex>.<64 hex>)");
    return -1;
  }
  memcpy(id, tok + 4, 16);
  id[16] = 0;
  memcpy(secret, tok + 21, 32);
  secret[32] = 0;
  memcpy(pin, tok + 54, 64);
  pin[64] = 0;
  return 0;
}

int ktls_token_create(ktls_token_store *ts, const char *cluster, time_t expires_at,
                      const char *ca_pin, char out[128], ktls_err *err) {
  if (!ktls_cluster_name_valid(cluster)) {
    ktls_seterr(err, "cluster name '%s' is not a DNS-1123 subdomain", cluster ? cluster : "");
    return -1;
  }
  if (!ca_pin || strlen(ca_pin) != 64 || !is_hex(ca_pin, 64)) {
    ktls_seterr(err, "CA pin must be 64 lowercase hex digits");
    return -1;
  }
  unsigned char rnd[8 + 16];
  token_rec *t = calloc(1, sizeof *t);
  if (!t || RAND_bytes(rnd, sizeof rnd) != 1) {
    free(t);
    ktls_seterr(err, "cannot make a random token");
    return -1;
  }
  char secret[33];
  hex(rnd, 8, t->id);
  hex(rnd + 8, 16, secret);
  SHA256((const unsigned char *)secret, 32, t->secret_hash);
  strcpy(t->cluster, cluster);
  t->expires_at = expires_at;
  t->next = ts->head;
  ts->head = t;
  snprintf(out, 128, "kbt.%s.%s.%s", t->id, secret, ca_pin);
  OPENSSL_cleanse(secret, sizeof secret);
  OPENSSL_cleanse(rnd, sizeof rnd);
  return 0;
}

static token_rec *token_find(ktls_token_store *ts, const char *token, ktls_err *err) {
  char id[17], secret[33], pin[65];
  if (ktls_token_parse(token, id, secret, pin, err) != 0) return NULL;
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)secret, 32, h);
  OPENSSL_cleanse(secret, sizeof secret);
  for (token_rec *t = ts->head; t; t = t->next)
    if (strcmp(t->id, id) == 0) {
      if (CRYPTO_memcmp(t->secret_hash, h, sizeof h) != 0) break;
      return t;
    }
  ktls_seterr(err, "bootstrap token is unknown");
  return NULL;
}

int ktls_token_check(ktls_token_store *ts, const char *token, const char *cluster, time_t now,
                     ktls_err *err) {
  token_rec *t = token_find(ts, token, err);
  if (!t) return -1;
  if (t->used) {
    ktls_seterr(err, "bootstrap token %s was already used", t->id);
    return -1;
  }
  if (now >= t->expires_at) {
    ktls_seterr(err, "bootstrap token %s expired", t->id);
    return -1;
  }
  if (!cluster || strcmp(cluster, t->cluster) != 0) {
    ktls_seterr(err, "bootstrap token %s is bound to cluster '%s', not '%s'", t->id, t->cluster,
                cluster ? cluster : "");
    return -1;
  }
  return 0;
}

int ktls_token_consume(ktls_token_store *ts, const char *token, ktls_err *err) {
  token_rec *t = token_find(ts, token, err);
  if (!t) return -1;
  if (t->used) {
    ktls_seterr(err, "bootstrap token %s was already used", t->id);
    return -1;
  }
  t->used = true;
  return 0;
}

char *ktls_register(ktls_ca *ca, ktls_token_store *ts, const char *token, const char *cluster,
                    const char *csr_pem, long ttl_s, time_t now, ktls_err *err) {
  if (ktls_token_check(ts, token, cluster, now, err) != 0) return NULL;
  char *cert =
      ktls_ca_sign_csr(ca, csr_pem, cluster, now - 60, now + (ttl_s > 0 ? ttl_s : 30 * 86400), err);
  if (!cert) return NULL;
  if (ktls_token_consume(ts, token, err) != 0) {
    free(cert);
    return NULL;
  }
  return cert;
}

/* ================================================================ state dir */

char *ktls_read_file(const char *path, ktls_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    ktls_seterr(err, "%s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (n + 1 == cap) {
      char *nb = cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (!buf) {
    ktls_seterr(err, "%s: too large or out of memory", path);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

static int write_0600(const char *dir, const char *name, const char *data, ktls_err *err) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    ktls_seterr(err, "%s: %s", tmp, strerror(errno));
    return -1;
  }
  size_t len = strlen(data), off = 0;
  int rc = fchmod(fd, 0600);
  while (rc == 0 && off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      rc = -1;
    else
      off += (size_t)w;
  }
  if (rc == 0) rc = fsync(fd);
  int saved = errno;
  close(fd);
  if (rc == 0 && rename(tmp, path) != 0) {
    saved = errno;
    rc = -1;
  }
  if (rc != 0) {
    unlink(tmp);
    ktls_seterr(err, "%s: %s", path, strerror(saved));
  }
  return rc;
}

int ktls_state_save(const char *dir, const char *key_pem, const char *cert_pem, const char *ca_pem,
                    ktls_err *err) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    ktls_seterr(err, "--state-dir %s: %s", dir, strerror(errno));
    return -1;
  }
  /* ca, then key, then cert: cert.pem is the marker that registration finished. */
  if (ca_pem && write_0600(dir, "ca.pem", ca_pem, err)) return -1;
  if (key_pem && write_0600(dir, "key.pem", key_pem, err)) return -1;
  if (cert_pem && write_0600(dir, "cert.pem", cert_pem, err)) return -1;
  return 0;
}

int ktls_state_load(const char *dir, char **key_pem, char **cert_pem, char **ca_pem,
                    ktls_err *err) {
  char p[4096];
  *key_pem = *cert_pem = *ca_pem = NULL;
  snprintf(p, sizeof p, "%s/key.pem", dir);
  if (!(*key_pem = ktls_read_file(p, err))) goto fail;
  snprintf(p, sizeof p, "%s/cert.pem", dir);
  if (!(*cert_pem = ktls_read_file(p, err))) goto fail;
  snprintf(p, sizeof p, "%s/ca.pem", dir);
  if (!(*ca_pem = ktls_read_file(p, err))) goto fail;
  return 0;
fail:
  free(*key_pem);
  free(*cert_pem);
  *key_pem = *cert_pem = NULL;
  return -1;
}

/* ================================================================ SSL_CTX */

static SSL_CTX *ctx_base(const SSL_METHOD *m, ktls_err *err) {
  SSL_CTX *ctx = SSL_CTX_new(m);
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
    ktls_seterr(err, "creating a TLS 1.3 context failed");
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  return ctx;
}

static int ctx_use_pair(SSL_CTX *ctx, const char *cert_pem, const char *key_pem, ktls_err *err) {
  X509 *c = ktls_cert_from_pem(cert_pem, err);
  EVP_PKEY *k = c ? ktls_key_from_pem(key_pem, err) : NULL;
  int ok = c && k && SSL_CTX_use_certificate(ctx, c) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1 &&
           SSL_CTX_check_private_key(ctx) == 1;
  if (c && k && !ok) ktls_seterr(err, "the key does not match the certificate");
  X509_free(c);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

static int store_add_pem(X509_STORE *st, const char *pem, ktls_err *err) {
  X509 *c = ktls_cert_from_pem(pem, err);
  int ok = c && X509_STORE_add_cert(st, c) == 1;
  if (c && !ok) ktls_seterr(err, "adding the CA certificate to the trust store failed");
  X509_free(c);
  return ok ? 0 : -1;
}

SSL_CTX *ktls_server_ctx(X509 *ca, const char *cert_pem, const char *key_pem, ktls_err *err) {
  SSL_CTX *ctx = ctx_base(TLS_server_method(), err);
  if (!ctx) return NULL;
  if (ctx_use_pair(ctx, cert_pem, key_pem, err) != 0 || SSL_CTX_add1_chain_cert(ctx, ca) != 1 ||
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) != 1) {
    if (!err || !err->msg[0]) ktls_seterr(err, "configuring the server certificate failed");
    SSL_CTX_free(ctx);
    return NULL;
  }
  X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_CLIENT);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, NULL);
  return ctx;
}

/* Pin mode: the server's chain must contain a certificate whose SPKI hash is
 * the pin; that certificate becomes the only trust anchor and the normal
 * verification (incl. host name) runs against it. */
static int pin_verify_cb(X509_STORE_CTX *sctx, void *arg) {
  const char *pin = arg;
  STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(sctx);
  X509 *leaf = X509_STORE_CTX_get0_cert(sctx), *anchor = NULL;
  for (int i = 0; chain && i < sk_X509_num(chain); i++) {
    char p[65];
    X509 *c = sk_X509_value(chain, i);
    if (ktls_cert_pin(c, p, NULL) == 0 && strcmp(p, pin) == 0) anchor = c;
  }
  if (!anchor) {
    X509_STORE_CTX_set_error(sctx, X509_V_ERR_CERT_UNTRUSTED);
    return 0;
  }
  X509_STORE *st = X509_STORE_new();
  X509_STORE_CTX *v = X509_STORE_CTX_new();
  int ok = 0;
  if (st && v && X509_STORE_add_cert(st, anchor) == 1 &&
      X509_STORE_CTX_init(v, st, leaf, chain) == 1) {
    X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(v), X509_STORE_CTX_get0_param(sctx));
    ok = X509_verify_cert(v) == 1;
    if (!ok) X509_STORE_CTX_set_error(sctx, X509_STORE_CTX_get_error(v));
  }
  X509_STORE_CTX_free(v);
  X509_STORE_free(st);
  return ok;
}

SSL_CTX *ktls_client_ctx(const char *ca_pem, const char *pin, const char *cert_pem,
                         const char *key_pem, ktls_err *err) {
  if (!ca_pem && !pin) {
    ktls_seterr(err, "no way to verify the server: give a CA file or a token with a CA pin");
    return NULL;
  }
  SSL_CTX *ctx = ctx_base(TLS_client_method(), err);
  if (!ctx) return NULL;
  if (ca_pem && store_add_pem(SSL_CTX_get_cert_store(ctx), ca_pem, err) != 0) goto fail;
  if (!ca_pem) {
    char *copy = strdup(pin);
    if (!copy) goto fail;
    SSL_CTX_set_app_data(ctx, copy); /* freed by ktls_client via ctx_pin_free */
    SSL_CTX_set_cert_verify_callback(ctx, pin_verify_cb, copy);
  }
  if (cert_pem && ctx_use_pair(ctx, cert_pem, key_pem, err) != 0) goto fail;
  X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  return ctx;
fail:
  free(SSL_CTX_get_app_data(ctx));
  SSL_CTX_free(ctx);
  return NULL;
}

void ktls_client_ctx_free(SSL_CTX *ctx) {
  if (!ctx) return;
  free(SSL_CTX_get_app_data(ctx));
  SSL_CTX_free(ctx);
}

/* ================================================================ frames */

int ktls_send(struct bufferevent *bev, const kframe_envelope *env, ktls_err *err) {
  uint8_t *buf = NULL;
  size_t len = 0;
  kframe_error fe = {0};
  if (kframe_encode(env, KTLS_MAX_FRAME, &buf, &len, &fe) != KFRAME_OK) {
    ktls_seterr(err, "encoding a %s frame: %s", kframe_body_name(env->body_case), fe.msg);
    return -1;
  }
  int rc = bufferevent_write(bev, buf, len);
  free(buf);
  if (rc != 0) ktls_seterr(err, "queueing a frame failed");
  return rc;
}

int ktls_send_error(struct bufferevent *bev, Koreo__Agent__V1__ErrorCode code, const char *message,
                    bool fatal) {
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__Error e = KOREO__AGENT__V1__ERROR__INIT;
  e.code = code;
  e.message = (char *)message;
  e.fatal = fatal;
  env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_ERROR;
  env.error = &e;
  return ktls_send(bev, &env, NULL);
}

int ktls_frame_take(struct evbuffer *in, size_t max, kframe_envelope **out, ktls_err *err) {
  *out = NULL;
  unsigned char hdr[4];
  if (evbuffer_get_length(in) < 4) return 0;
  evbuffer_copyout(in, hdr, 4);
  uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
  if (n > max) {
    ktls_seterr(err, "frame of %u bytes exceeds the %zu byte limit", n, max);
    return -1;
  }
  if (evbuffer_get_length(in) < 4 + (size_t)n) return 0;
  uint8_t *buf = malloc((size_t)n + 4);
  if (!buf) {
    ktls_seterr(err, "out of memory");
    return -1;
  }
  evbuffer_remove(in, buf, (size_t)n + 4);
  kframe_error fe = {0};
  kframe_status st = kframe_decode_one(buf, (size_t)n + 4, max, out, &fe);
  free(buf);
  if (st != KFRAME_OK) {
    ktls_seterr(err, "%s frame: %s", kframe_status_name(st), fe.msg);
    return -1;
  }
  return 1;
}

void ktls_bev_ssl_error(struct bufferevent *bev, char *buf, size_t size) {
  unsigned long e;
  buf[0] = 0;
  while ((e = bufferevent_get_openssl_error(bev)) != 0)
    if (ERR_lib_error_string(e) && ERR_reason_error_string(e)) ERR_error_string_n(e, buf, size);
}

/* ================================================================ agent client */

typedef enum { OP_REGISTER, OP_HELLO, OP_RENEW } client_op;

struct ktls_client {
  struct event_base *base;
  struct bufferevent *bev;
  SSL_CTX *ctx;
  struct event *timer;
  char *host, *cluster, *state_dir, *token;
  long timeout_ms;
  client_op op;
  bool busy, connected;
  EVP_PKEY *new_key; /* register / renew: the key whose CSR is pending */
  char *ca_pem;      /* CA the server was verified with */
  char *agent_version;
  uint64_t last_acked;
  void (*fill_hello)(Koreo__Agent__V1__Hello *hello, void *arg);
  void *fill_hello_arg;
  kframe_envelope *hello_ack;
  ktls_client_cb cb;
  void *arg;
  ktls_client_handler handler;
  void *handler_arg;
  char *cert_pem; /* the certificate in use (connect / after renew) */
  struct event *renew_timer;
  long renew_retry_s;
  ktls_client_cb renew_cb;
  void *renew_arg;
};

static void client_finish(ktls_client *c, int status, const char *msg) {
  if (!c->busy) return;
  c->busy = false;
  if (c->timer) evtimer_del(c->timer);
  EVP_PKEY_free(c->new_key);
  c->new_key = NULL;
  if (status != 0 || c->op == OP_REGISTER) {
    if (c->bev) bufferevent_free(c->bev);
    c->bev = NULL;
    c->connected = false;
  }
  ktls_client_cb cb = c->cb;
  cb(c, status, msg, c->arg);
}

static void client_fail_ssl(ktls_client *c, const char *what) {
  char buf[400] = "";
  if (c->bev) ktls_bev_ssl_error(c->bev, buf, sizeof buf);
  long vr = c->bev ? SSL_get_verify_result(bufferevent_openssl_get_ssl(c->bev)) : X509_V_OK;
  char msg[900];
  if (vr != X509_V_OK)
    snprintf(msg, sizeof msg, "%s: server certificate refused: %s", what,
             X509_verify_cert_error_string(vr));
  else if (buf[0])
    snprintf(msg, sizeof msg, "%s: %s", what, buf);
  else if (c->bev && SSL_is_init_finished(bufferevent_openssl_get_ssl(c->bev)))
    snprintf(msg, sizeof msg,
             "%s: the server ended the TLS session (it refused our certificate "
             "or went away)",
             what);
  else
    snprintf(msg, sizeof msg, "%s: %s", what,
             EVUTIL_SOCKET_ERROR() ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())
                                   : "TLS handshake failed");
  client_finish(c, -1, msg);
}

/* Check, store and apply a certificate answered to register/renew. */
static void client_take_cert(ktls_client *c, const char *cert, const char *ca) {
  ktls_err err = {{0}};
  char *key_pem = NULL;
  X509 *x = cert && *cert ? ktls_cert_from_pem(cert, &err) : NULL;
  char got[KTLS_CLUSTER_MAX + 1];
  if (!x || ktls_cert_cluster(x, got, sizeof got, &err) != 0) {
    if (!err.msg[0]) snprintf(err.msg, sizeof err.msg, "reply carries no certificate");
  } else if (strcmp(got, c->cluster) != 0) {
    snprintf(err.msg, sizeof err.msg, "server issued a certificate for '%s', not '%s'", got,
             c->cluster);
  } else if (X509_check_private_key(x, c->new_key) != 1) {
    snprintf(err.msg, sizeof err.msg, "issued certificate does not match our key");
  } else if (c->op == OP_REGISTER) {
    /* the CA the server sends must be the one it proved in the handshake */
    X509 *cx = ca && *ca ? ktls_cert_from_pem(ca, NULL) : NULL;
    X509 *vx = ktls_cert_from_pem(c->ca_pem, NULL);
    bool same = cx && vx && X509_cmp(cx, vx) == 0;
    X509_free(cx);
    X509_free(vx);
    if (!same) snprintf(err.msg, sizeof err.msg, "server sent a CA other than the one it proved");
  }
  if (!err.msg[0] && (key_pem = ktls_key_pem(c->new_key, &err)) &&
      ktls_state_save(c->state_dir, key_pem, cert, c->op == OP_REGISTER ? c->ca_pem : NULL, &err) ==
          0) {
    if (c->op == OP_RENEW && c->ctx) {
      /* keep the context in step with the stored identity */
      SSL_CTX_use_certificate(c->ctx, x);
      SSL_CTX_use_PrivateKey(c->ctx, c->new_key);
    }
    char *keep = strdup(cert);
    if (keep) {
      free(c->cert_pem);
      c->cert_pem = keep;
    }
    X509_free(x);
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    client_finish(c, 0, c->op == OP_REGISTER ? "registered" : "renewed");
    return;
  }
  X509_free(x);
  if (key_pem) OPENSSL_cleanse(key_pem, strlen(key_pem));
  free(key_pem);
  client_finish(c, -1, err.msg[0] ? err.msg : "storing the certificate failed");
}

/* The answer to the pending operation; ends in client_finish (whose
 * callback may free c).  Takes env. */
static void client_reply(ktls_client *c, kframe_envelope *env) {
  char msg[700];
  switch (env->body_case) {
  case KOREO__AGENT__V1__ENVELOPE__BODY_ERROR:
    snprintf(msg, sizeof msg, "refused by the server: %s",
             env->error->message && *env->error->message ? env->error->message : "(no reason)");
    kframe_envelope_free(env);
    client_finish(c, -1, msg);
    return;
  case KOREO__AGENT__V1__ENVELOPE__BODY_HELLO_ACK:
    if (c->op != OP_HELLO) break;
    c->hello_ack = env;
    c->connected = true;
    client_finish(c, 0, "connected");
    return;
  case KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_RESPONSE:
    if (c->op != OP_REGISTER) break;
    client_take_cert(c, env->register_response->cert_pem, env->register_response->ca_pem);
    kframe_envelope_free(env);
    return;
  case KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE:
    if (c->op != OP_RENEW) break;
    client_take_cert(c, env->renew_response->cert_pem, NULL);
    kframe_envelope_free(env);
    return;
  default: break;
  }
  snprintf(msg, sizeof msg, "unexpected %s while waiting for the %s answer",
           kframe_body_name(env->body_case),
           c->op == OP_HELLO      ? "hello"
           : c->op == OP_REGISTER ? "register"
                                  : "renew");
  kframe_envelope_free(env);
  client_finish(c, -1, msg);
}

static void client_read(struct bufferevent *bev, void *arg) {
  ktls_client *c = arg;
  for (;;) {
    kframe_envelope *env = NULL;
    ktls_err err = {{0}};
    int r = ktls_frame_take(bufferevent_get_input(bev),
                            c->connected ? KFRAME_MAX_DEFAULT : KTLS_MAX_FRAME, &env, &err);
    if (r < 0) {
      char msg[600];
      snprintf(msg, sizeof msg, "protocol error from the server: %s", err.msg);
      if (c->busy) {
        client_finish(c, -1, msg);
      } else {
        bufferevent_free(c->bev);
        c->bev = NULL;
        c->connected = false;
      }
      return;
    }
    if (r == 0) return;
    bool answer = c->busy && (c->op != OP_RENEW ||
                              env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_RESPONSE ||
                              env->body_case == KOREO__AGENT__V1__ENVELOPE__BODY_ERROR);
    if (answer) {
      client_reply(c, env); /* may free c */
      return;
    }
    if (!c->handler || !c->handler(c, env, c->handler_arg)) {
      if (!c->handler) kframe_envelope_free(env);
      bufferevent_free(c->bev);
      c->bev = NULL;
      c->connected = false;
      return;
    }
  }
}

static int client_send_op(ktls_client *c) {
  Koreo__Agent__V1__Envelope env = KOREO__AGENT__V1__ENVELOPE__INIT;
  Koreo__Agent__V1__Hello hello = KOREO__AGENT__V1__HELLO__INIT;
  Koreo__Agent__V1__RegisterRequest reg = KOREO__AGENT__V1__REGISTER_REQUEST__INIT;
  Koreo__Agent__V1__RenewRequest ren = KOREO__AGENT__V1__RENEW_REQUEST__INIT;
  ktls_err err = {{0}};
  char *csr = NULL;
  int rc = -1;
  if (c->op == OP_HELLO) {
    hello.cluster_name = c->cluster;
    hello.agent_version = c->agent_version;
    hello.last_acked_sequence = c->last_acked;
    hello.min_protocol_version = KFRAME_PROTOCOL_MIN;
    hello.max_protocol_version = KFRAME_PROTOCOL_MAX;
    if (c->fill_hello) c->fill_hello(&hello, c->fill_hello_arg);
    env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
  } else {
    if (!(c->new_key = ktls_key_new(&err)) || !(csr = ktls_csr_new(c->new_key, c->cluster, &err)))
      goto done;
    if (c->op == OP_REGISTER) {
      reg.token = c->token;
      reg.csr_pem = csr;
      reg.cluster_name = c->cluster;
      reg.agent_version = c->agent_version;
      env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_REGISTER_REQUEST;
      env.register_request = &reg;
    } else {
      ren.csr_pem = csr;
      env.body_case = KOREO__AGENT__V1__ENVELOPE__BODY_RENEW_REQUEST;
      env.renew_request = &ren;
    }
  }
  rc = ktls_send(c->bev, &env, &err);
done:
  free(csr);
  return rc;
}

static void client_event(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  ktls_client *c = arg;
  if (what & BEV_EVENT_CONNECTED) {
    if (client_send_op(c) != 0) client_finish(c, -1, "building the request failed");
    return;
  }
  if (what & BEV_EVENT_EOF) {
    client_fail_ssl(c, "connection closed by the server");
    return;
  }
  if (what & BEV_EVENT_ERROR) client_fail_ssl(c, "connection failed");
}

static void client_timeout(evutil_socket_t fd, short w, void *arg) {
  (void)fd;
  (void)w;
  client_finish(arg, -1, "timed out waiting for the server");
}

static void client_arm_timer(ktls_client *c) {
  struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
  evtimer_add(c->timer, &tv);
}

static ktls_client *client_new(struct event_base *base, const ktls_agent_opts *o, ktls_err *err) {
  if (!o->host || o->port <= 0 || o->port > 65535 || !o->state_dir ||
      !ktls_cluster_name_valid(o->cluster)) {
    ktls_seterr(err, "need --server HOST:PORT, --state-dir and a valid --cluster-name");
    return NULL;
  }
  ktls_client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->base = base;
  c->host = strdup(o->host);
  c->cluster = strdup(o->cluster);
  c->state_dir = strdup(o->state_dir);
  c->agent_version = strdup(o->agent_version ? o->agent_version : "");
  c->last_acked = o->last_acked_sequence;
  c->fill_hello = o->fill_hello;
  c->fill_hello_arg = o->fill_hello_arg;
  c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
  c->timer = evtimer_new(base, client_timeout, c);
  if (!c->host || !c->cluster || !c->state_dir || !c->agent_version || !c->timer) {
    ktls_client_free(c);
    ktls_seterr(err, "out of memory");
    return NULL;
  }
  return c;
}

static void reg_event(struct bufferevent *bev, short what, void *arg);

static int client_dial(ktls_client *c, int port, ktls_err *err) {
  SSL *ssl = SSL_new(c->ctx);
  if (!ssl) {
    ktls_seterr(err, "SSL_new failed");
    return -1;
  }
  unsigned char buf[16];
  bool ip = inet_pton(AF_INET, c->host, buf) == 1 || inet_pton(AF_INET6, c->host, buf) == 1;
  X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
  if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->host) != 1
         : (SSL_set_tlsext_host_name(ssl, c->host) != 1 || SSL_set1_host(ssl, c->host) != 1)) {
    SSL_free(ssl);
    ktls_seterr(err, "cannot set the expected server name '%s'", c->host);
    return -1;
  }
  c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  if (!c->bev) {
    SSL_free(ssl);
    ktls_seterr(err, "bufferevent_openssl_socket_new failed");
    return -1;
  }
  bufferevent_setcb(c->bev, client_read, NULL, c->op == OP_REGISTER ? reg_event : client_event, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  c->busy = true;
  client_arm_timer(c);
  if (bufferevent_socket_connect_hostname(c->bev, NULL, AF_UNSPEC, c->host, port) != 0) {
    c->busy = false;
    bufferevent_free(c->bev);
    c->bev = NULL;
    ktls_seterr(err, "cannot dial %s:%d", c->host, port);
    return -1;
  }
  return 0;
}

ktls_client *ktls_client_register(struct event_base *base, const ktls_agent_opts *o,
                                  ktls_client_cb cb, void *arg, ktls_err *err) {
  char id[17], secret[33], pin[65];
  if (ktls_token_parse(o->bootstrap_token, id, secret, pin, err) != 0) return NULL;
  ktls_client *c = client_new(base, o, err);
  if (!c) return NULL;
  c->token = strdup(o->bootstrap_token);
  c->op = OP_REGISTER;
  c->cb = cb;
  c->arg = arg;
  if (o->ca_file) {
    /* --ca-file must also match the pin when both are given */
    char p[65];
    X509 *x = NULL;
    if (!(c->ca_pem = ktls_read_file(o->ca_file, err)) ||
        !(x = ktls_cert_from_pem(c->ca_pem, err)) || ktls_cert_pin(x, p, err) != 0) {
      X509_free(x);
      goto fail;
    }
    X509_free(x);
    if (strcmp(p, pin) != 0) {
      ktls_seterr(err, "--ca-file %s does not match the CA pin in the bootstrap token", o->ca_file);
      goto fail;
    }
  }
  c->ctx = ktls_client_ctx(c->ca_pem, c->ca_pem ? NULL : pin, NULL, NULL, err);
  if (!c->token || !c->ctx) goto fail;
  if (client_dial(c, o->port, err) != 0) goto fail;
  return c;
fail:
  ktls_client_free(c);
  return NULL;
}

/* Once the pinned handshake completes, remember the verified CA (the chain
 * certificate with the pin) as the CA to store. */
static int pin_capture(ktls_client *c) {
  if (c->ca_pem) return 0;
  SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
  const char *pin = SSL_CTX_get_app_data(c->ctx);
  for (int i = 0; chain && i < sk_X509_num(chain); i++) {
    char p[65];
    if (ktls_cert_pin(sk_X509_value(chain, i), p, NULL) == 0 && strcmp(p, pin) == 0) {
      c->ca_pem = ktls_cert_pem(sk_X509_value(chain, i), NULL);
      return c->ca_pem ? 0 : -1;
    }
  }
  return -1;
}

static void reg_event(struct bufferevent *bev, short what, void *arg) {
  ktls_client *c = arg;
  if ((what & BEV_EVENT_CONNECTED) && pin_capture(c) != 0) {
    client_finish(c, -1, "server chain lacks the pinned CA");
    return;
  }
  client_event(bev, what, arg);
}

ktls_client *ktls_client_connect(struct event_base *base, const ktls_agent_opts *o,
                                 ktls_client_cb cb, void *arg, ktls_err *err) {
  ktls_client *c = client_new(base, o, err);
  if (!c) return NULL;
  char *key = NULL, *cert = NULL, *ca = NULL;
  if (ktls_state_load(o->state_dir, &key, &cert, &ca, err) != 0) {
    ktls_seterr(err, "no identity in --state-dir %s (register with --bootstrap-token first): %s",
                o->state_dir, err->msg);
    ktls_client_free(c);
    return NULL;
  }
  if (o->ca_file) {
    free(ca);
    ca = ktls_read_file(o->ca_file, err);
  }
  c->op = OP_HELLO;
  c->cb = cb;
  c->arg = arg;
  c->ca_pem = ca;
  c->ctx = ca ? ktls_client_ctx(ca, NULL, cert, key, err) : NULL;
  OPENSSL_cleanse(key, strlen(key));
  free(key);
  c->cert_pem = cert;
  if (!c->ctx || client_dial(c, o->port, err) != 0) {
    ktls_client_free(c);
    return NULL;
  }
  return c;
}

int ktls_client_renew(ktls_client *c, ktls_client_cb cb, void *arg, ktls_err *err) {
  if (!c->connected || !c->bev || c->busy) {
    ktls_seterr(err, "renewal needs an idle authenticated connection");
    return -1;
  }
  c->op = OP_RENEW;
  c->cb = cb;
  c->arg = arg;
  c->busy = true;
  if (client_send_op(c) != 0) {
    c->busy = false;
    EVP_PKEY_free(c->new_key);
    c->new_key = NULL;
    ktls_seterr(err, "building the renewal request failed");
    return -1;
  }
  client_arm_timer(c);
  return 0;
}

time_t ktls_renew_at(const char *cert_pem) {
  X509 *x = ktls_cert_from_pem(cert_pem, NULL);
  time_t nb, na, at = 0;
  if (x && ktls_cert_validity(x, &nb, &na, NULL) == 0) at = nb + (na - nb) / 3 * 2;
  X509_free(x);
  return at;
}

static void auto_renew_schedule(ktls_client *c, long delay_s) {
  struct timeval tv = {delay_s > 0 ? delay_s : 0, 0};
  evtimer_add(c->renew_timer, &tv);
}

static void auto_renew_done(ktls_client *c, int status, const char *msg, void *arg) {
  (void)arg;
  if (c->renew_cb) c->renew_cb(c, status, msg, c->renew_arg);
  if (status == 0)
    auto_renew_schedule(c, (long)(ktls_renew_at(c->cert_pem) - time(NULL)));
  else if (c->connected)
    auto_renew_schedule(c, c->renew_retry_s);
}

static void auto_renew_fire(evutil_socket_t fd, short w, void *arg) {
  (void)fd;
  (void)w;
  ktls_client *c = arg;
  if (!c->connected) return; /* the connection is gone: the session reconnects */
  if (c->busy) {
    auto_renew_schedule(c, 1);
    return;
  }
  ktls_err err = {{0}};
  if (ktls_client_renew(c, auto_renew_done, NULL, &err) != 0) {
    if (c->renew_cb) c->renew_cb(c, -1, err.msg, c->renew_arg);
    auto_renew_schedule(c, c->renew_retry_s);
  }
}

int ktls_client_auto_renew(ktls_client *c, long retry_s, ktls_client_cb cb, void *arg,
                           ktls_err *err) {
  if (!c->connected || !c->cert_pem) {
    ktls_seterr(err, "automatic renewal needs an authenticated connection");
    return -1;
  }
  if (!c->renew_timer && !(c->renew_timer = evtimer_new(c->base, auto_renew_fire, c))) {
    ktls_seterr(err, "out of memory");
    return -1;
  }
  c->renew_retry_s = retry_s > 0 ? retry_s : 60;
  c->renew_cb = cb;
  c->renew_arg = arg;
  auto_renew_schedule(c, (long)(ktls_renew_at(c->cert_pem) - time(NULL)));
  return 0;
}

bool ktls_renew_due(const char *cert_pem, time_t now) {
  X509 *x = ktls_cert_from_pem(cert_pem, NULL);
  time_t nb, na;
  bool due = true;
  if (x && ktls_cert_validity(x, &nb, &na, NULL) == 0) due = (na - now) * 3 < (na - nb);
  X509_free(x);
  return due;
}

void ktls_client_set_handler(ktls_client *c, ktls_client_handler h, void *arg) {
  c->handler = h;
  c->handler_arg = arg;
}

const Koreo__Agent__V1__HelloAck *ktls_client_hello_ack(ktls_client *c) {
  return c->hello_ack ? c->hello_ack->hello_ack : NULL;
}

struct bufferevent *ktls_client_bev(ktls_client *c) {
  return c->connected ? c->bev : NULL;
}

const char *ktls_client_tls_version(ktls_client *c) {
  return c->bev ? SSL_get_version(bufferevent_openssl_get_ssl(c->bev)) : NULL;
}

void ktls_client_free(ktls_client *c) {
  if (!c) return;
  if (c->bev) bufferevent_free(c->bev);
  if (c->timer) event_free(c->timer);
  if (c->renew_timer) event_free(c->renew_timer);
  free(c->cert_pem);
  ktls_client_ctx_free(c->ctx);
  EVP_PKEY_free(c->new_key);
  free(c->host);
  free(c->cluster);
  free(c->state_dir);
  free(c->agent_version);
  kframe_envelope_free(c->hello_ack);
  if (c->token) OPENSSL_cleanse(c->token, strlen(c->token));
  free(c->token);
  free(c->ca_pem);
  free(c);
}
