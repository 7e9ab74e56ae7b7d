/*
 * controlplane/pki.c: the control plane's PKI directory (--pki-dir,
 * cp-design.md "Process shape"): ca.crt/ca.key (the CA that signs agent
 * certificates; its pin goes into bootstrap tokens) and server.crt/
 * server.key (the listeners' certificate).  Loaded when present, generated
 * when absent, with agent/tls.h's ktls_* functions.
 */
#include "cp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include "koreo/value.h"

enum { CA_DAYS = 3650, SERVER_DAYS = 365 };

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Write `text` to path via path.tmp + rename, with `mode`. */
static int write_file(const char *path, const char *text, mode_t mode, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    snprintf(err, errlen, "pki: cannot write %s: %s", tmp, strerror(errno));
    return -1;
  }
  size_t len = strlen(text), off = 0;
  while (off < len) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      snprintf(err, errlen, "pki: writing %s: %s", tmp, strerror(errno));
      close(fd);
      unlink(tmp);
      return -1;
    }
    off += (size_t)w;
  }
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "pki: writing %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static char *read_pem(const char *path, char *err, size_t errlen) {
  ktls_err e = {{0}};
  char *s = ktls_read_file(path, &e);
  if (!s) snprintf(err, errlen, "pki: %s", e.msg);
  return s;
}

static void free_secret(char *s) {
  if (!s) return;
  OPENSSL_cleanse(s, strlen(s));
  free(s);
}

/* Does the server certificate still serve: issued by the CA, not due for
 * renewal, and naming every host? */
static bool server_cert_fits(ktls_ca *ca, const char *cert_pem, const char *key_pem,
                             const char *const *hosts, size_t n) {
  ktls_err e;
  X509 *cert = ktls_cert_from_pem(cert_pem, &e);
  EVP_PKEY *key = ktls_key_from_pem(key_pem, &e);
  bool ok = cert && key;
  if (ok) {
    EVP_PKEY *capub = X509_get0_pubkey(ktls_ca_cert(ca));
    ok = X509_verify(cert, capub) == 1 && X509_check_private_key(cert, key) == 1 &&
         !ktls_renew_due(cert_pem, time(NULL));
  }
  for (size_t i = 0; ok && i < n; i++) {
    unsigned char buf[16];
    bool ip = inet_pton(AF_INET, hosts[i], buf) == 1 || inet_pton(AF_INET6, hosts[i], buf) == 1;
    ok = ip ? X509_check_ip_asc(cert, hosts[i], 0) == 1
            : X509_check_host(cert, hosts[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

int cp_pki_load(const char *dir, const char *const *hosts_in, size_t n_in, ktls_ca **ca_out,
                char **server_cert_pem, char **server_key_pem, char *err, size_t errlen) {
  *ca_out = NULL;
  *server_cert_pem = *server_key_pem = NULL;
  if (!dir || !*dir) {
    snprintf(err, errlen, "pki: --pki-dir is required");
    return -1;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "pki: cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  char ca_crt[4096], ca_key[4096], srv_crt[4096], srv_key[4096];
  snprintf(ca_crt, sizeof ca_crt, "%s/ca.crt", dir);
  snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
  snprintf(srv_crt, sizeof srv_crt, "%s/server.crt", dir);
  snprintf(srv_key, sizeof srv_key, "%s/server.key", dir);

  /* hosts: the given ones + localhost + 127.0.0.1, without duplicates */
  const char **hosts = calloc(n_in + 2, sizeof *hosts);
  if (!hosts) kv_oom();
  size_t n = 0;
  const char *fixed[] = {"localhost", "127.0.0.1"};
  for (size_t i = 0; i < n_in + 2; i++) {
    const char *h = i < n_in ? hosts_in[i] : fixed[i - n_in];
    bool dup = !h || !*h;
    for (size_t j = 0; j < n && !dup; j++)
      dup = strcmp(hosts[j], h) == 0;
    if (!dup) hosts[n++] = h;
  }

  ktls_err e = {{0}};
  ktls_ca *ca = NULL;
  int rc = -1;
  char *cert = NULL, *key = NULL;
  bool have_crt = exists(ca_crt), have_key = exists(ca_key);
  if (have_crt != have_key) {
    snprintf(err, errlen,
             "pki: %s exists but %s does not; refusing to make a new CA over half of one",
             have_crt ? ca_crt : ca_key, have_crt ? ca_key : ca_crt);
    goto out;
  }
  if (have_crt) {
    cert = read_pem(ca_crt, err, errlen);
    key = cert ? read_pem(ca_key, err, errlen) : NULL;
    if (!key) goto out;
    ca = ktls_ca_from_pem(cert, key, &e);
    if (!ca) {
      snprintf(err, errlen, "pki: loading the CA from %s: %s", dir, e.msg);
      goto out;
    }
  } else {
    ca = ktls_ca_new("koreo-controlplane CA", CA_DAYS, &e);
    key = ca ? ktls_ca_key_pem(ca, &e) : NULL;
    if (!key) {
      snprintf(err, errlen, "pki: creating a CA: %s", e.msg);
      goto out;
    }
    if (write_file(ca_key, key, 0600, err, errlen) != 0 ||
        write_file(ca_crt, ktls_ca_cert_pem_str(ca), 0644, err, errlen) != 0)
      goto out;
    cp_log(CP_INFO, "pki: created a new CA in %s (pin %s)", dir, ktls_ca_pin(ca));
  }
  free(cert);
  free_secret(key);
  cert = key = NULL;

  if (exists(srv_crt) && exists(srv_key)) {
    cert = read_pem(srv_crt, err, errlen);
    key = cert ? read_pem(srv_key, err, errlen) : NULL;
    if (!key) goto out;
    if (!server_cert_fits(ca, cert, key, hosts, n)) {
      free(cert);
      free_secret(key);
      cert = key = NULL;
    }
  }
  if (!cert) {
    if (ktls_ca_issue_server(ca, hosts, n, SERVER_DAYS, &cert, &key, &e) != 0) {
      snprintf(err, errlen, "pki: issuing the server certificate: %s", e.msg);
      goto out;
    }
    if (write_file(srv_key, key, 0600, err, errlen) != 0 ||
        write_file(srv_crt, cert, 0644, err, errlen) != 0)
      goto out;
    cp_log(CP_INFO, "pki: issued a server certificate for %zu host(s) in %s", n, dir);
  }
  *ca_out = ca;
  *server_cert_pem = cert;
  *server_key_pem = key;
  ca = NULL;
  cert = key = NULL;
  rc = 0;
out:
  ktls_ca_free(ca);
  free(cert);
  free_secret(key);
  free(hosts);
  return rc;
}
