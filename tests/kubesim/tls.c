/*
 * tests/kubesim/tls.c: kubesim's TLS identity.  Generates a self-signed CA
 * (ECDSA P-256) and a server certificate for 127.0.0.1/localhost signed by
 * it, or loads them from --cert-dir / --tls-cert, --tls-key, --ca-cert,
 * and builds the server SSL_CTX (TLS 1.2+, no ALPN so clients speak
 * HTTP/1.1).
 */
#include "kubesim.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void ssl_fail(const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  fprintf(stderr, "kubesim: TLS: %s: %s\n", what, e ? buf : "unknown error");
}

static bool add_ext(X509 *issuer, X509 *cert, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ex) return false;
  int ok = X509_add_ext(cert, ex, -1);
  X509_EXTENSION_free(ex);
  return ok == 1;
}

/* A certificate for `pkey` named `cn`, signed by (issuer, ikey), or
 * self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *pkey, const char *cn, X509 *issuer, EVP_PKEY *ikey, bool ca) {
  X509 *x = X509_new();
  if (!x) return NULL;
  X509_set_version(x, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509 *iss = issuer ? issuer : x;
  bool ok;
  if (ca) {
    ok = add_ext(iss, x, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(iss, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") &&
         add_ext(iss, x, NID_subject_key_identifier, "hash");
  } else {
    ok = add_ext(iss, x, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(iss, x, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         add_ext(iss, x, NID_ext_key_usage, "serverAuth") &&
         add_ext(iss, x, NID_subject_alt_name,
                 "IP:127.0.0.1,IP:0:0:0:0:0:0:0:1,DNS:localhost,DNS:kubernetes,"
                 "DNS:kubernetes.default,DNS:kubernetes.default.svc") &&
         add_ext(iss, x, NID_authority_key_identifier, "keyid:always");
  }
  if (!ok || !X509_sign(x, ikey ? ikey : pkey, EVP_sha256())) {
    X509_free(x);
    return NULL;
  }
  return x;
}

static char *cert_pem(X509 *x) {
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *r = malloc((size_t)n + 1);
  if (!r) kv_oom();
  memcpy(r, data, (size_t)n);
  r[n] = 0;
  BIO_free(b);
  return r;
}

static X509 *load_cert(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  return x;
}

static EVP_PKEY *load_key(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  return k;
}

static bool save_pem(const char *dir, const char *file, X509 *x, EVP_PKEY *k) {
  char *path = ku_fmt("%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "kubesim: cannot write %s: %s\n", path, strerror(errno));
    free(path);
    return false;
  }
  if (k) chmod(path, 0600);
  bool ok =
      x ? PEM_write_X509(f, x) == 1 : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
  fclose(f);
  free(path);
  return ok;
}

SSL_CTX *ks_tls_setup(const ks_tls_opts *o, char **ca_pem_out) {
  X509 *ca = NULL, *crt = NULL;
  EVP_PKEY *cakey = NULL, *key = NULL;
  SSL_CTX *ctx = NULL;
  if (o->tls_cert || o->tls_key) {
    if (!o->tls_cert || !o->tls_key) {
      fprintf(stderr, "kubesim: --tls-cert and --tls-key go together\n");
      return NULL;
    }
    crt = load_cert(o->tls_cert);
    key = load_key(o->tls_key);
    if (!crt || !key) {
      fprintf(stderr, "kubesim: cannot load %s / %s\n", o->tls_cert, o->tls_key);
      goto out;
    }
    ca = o->ca_cert ? load_cert(o->ca_cert) : X509_dup(crt);
    if (!ca) {
      fprintf(stderr, "kubesim: cannot load CA %s\n", o->ca_cert);
      goto out;
    }
  } else if (o->cert_dir) {
    char *p1 = ku_fmt("%s/ca.crt", o->cert_dir), *p2 = ku_fmt("%s/tls.crt", o->cert_dir),
         *p3 = ku_fmt("%s/tls.key", o->cert_dir);
    ca = load_cert(p1);
    crt = load_cert(p2);
    key = load_key(p3);
    free(p1);
    free(p2);
    free(p3);
    if (!ca || !crt || !key) {
      X509_free(ca);
      X509_free(crt);
      EVP_PKEY_free(key);
      ca = crt = NULL;
      key = NULL;
    }
  }
  if (!crt) {
    cakey = EVP_EC_gen("P-256");
    key = EVP_EC_gen("P-256");
    if (!cakey || !key) {
      ssl_fail("key generation");
      goto out;
    }
    ca = make_cert(cakey, "kubesim-ca", NULL, NULL, true);
    crt = ca ? make_cert(key, "kubesim", ca, cakey, false) : NULL;
    if (!crt) {
      ssl_fail("certificate generation");
      goto out;
    }
    if (o->cert_dir) {
      mkdir(o->cert_dir, 0700);
      if (!save_pem(o->cert_dir, "ca.crt", ca, NULL) ||
          !save_pem(o->cert_dir, "tls.crt", crt, NULL) ||
          !save_pem(o->cert_dir, "tls.key", NULL, key))
        goto out;
    }
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    ssl_fail("SSL_CTX_new");
    goto out;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate(ctx, crt) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ssl_fail("server certificate");
    SSL_CTX_free(ctx);
    ctx = NULL;
    goto out;
  }
  if (ca != crt && o->tls_cert == NULL) SSL_CTX_add_extra_chain_cert(ctx, X509_dup(ca));
  *ca_pem_out = cert_pem(ca);
out:
  X509_free(ca);
  X509_free(crt);
  EVP_PKEY_free(cakey);
  EVP_PKEY_free(key);
  return ctx;
}
