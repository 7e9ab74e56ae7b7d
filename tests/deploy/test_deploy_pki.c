/*
 * tests/deploy/test_deploy_pki.c: deploy/pki/make-pki.sh makes a PKI that
 * the real code accepts (issue 7 item 3; docs/deploy.md "PKI"):
 * koreo-controlplane's cp_pki_load takes the four files as they are (no
 * re-issue, so a read-only Secret mount works), the pin the script prints is
 * the one bootstrap tokens carry (ktls_ca_pin), an agent registers over
 * real TLS with a token carrying that pin and verifies the server
 * certificate by name, the server certificate names exactly the hosts
 * asked for, and running the script again keeps the CA (and so every
 * issued token and agent certificate) while renewing the server one.
 *
 * Environment: MAKE_PKI = path of deploy/pki/make-pki.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cp.h"
#include "tls.h"

typedef struct fx {
  char root[64], pki[96], pin[80];
  struct event_base *base;
  bool done;
  int status;
  char msg[512];
} fx;

static char *slurp(const char *path) {
  ktls_err e = {{0}};
  return ktls_read_file(path, &e);
}

/* Run make-pki.sh on f->pki with the given hosts; the printed pin into out. */
static int make_pki(fx *f, const char *hosts, char out[80]) {
  const char *script = getenv("MAKE_PKI");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --out '%s' %s 2>/dev/null", script, f->pki, hosts);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  if (!fgets(out, 80, p)) out[0] = 0;
  out[strcspn(out, "\n")] = 0;
  return pclose(p);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  strcpy(f->root, "/tmp/deploy-pki-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->pki, sizeof f->pki, "%s/pki", f->root);
  assert_int_equal(make_pki(f,
                            "--host koreo-controlplane --host "
                            "koreo-controlplane-agents.koreo-system.svc --host 10.0.0.7",
                            f->pin),
                   0);
  assert_int_equal(strlen(f->pin), 64);
  f->base = event_base_new();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->root);
  event_base_free(f->base);
  free(f);
  return 0;
}

static void files_are_private(void **state) {
  fx *f = *state;
  const char *names[] = {"ca.key", "server.key"};
  for (int i = 0; i < 2; i++) {
    char p[160];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", f->pki, names[i]);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
  }
}

/* The control plane loads the files as they are, with the pod hostname the
 * manifests set (koreo-controlplane) as its listen name. */
static void controlplane_loads_it_unchanged(void **state) {
  fx *f = *state;
  char crt[160];
  snprintf(crt, sizeof crt, "%s/server.crt", f->pki);
  char *before = slurp(crt);
  assert_non_null(before);
  const char *hosts[] = {"koreo-controlplane"};
  ktls_ca *ca = NULL;
  char *cert = NULL, *key = NULL, err[512] = "";
  int rc = cp_pki_load(f->pki, hosts, 1, &ca, &cert, &key, err, sizeof err);
  if (rc != 0) fail_msg("cp_pki_load: %s", err);
  assert_string_equal(ktls_ca_pin(ca), f->pin);
  assert_string_equal(cert, before); /* not re-issued */
  char *after = slurp(crt);
  assert_string_equal(after, before);
  free(before);
  free(after);
  free(cert);
  free(key);
  ktls_ca_free(ca);
}

static void client_cb(ktls_client *c, int status, const char *msg, void *arg) {
  (void)c;
  fx *f = arg;
  f->done = true;
  f->status = status;
  snprintf(f->msg, sizeof f->msg, "%s", msg ? msg : "");
}

/* Register an agent against a ktls server presenting the PKI's server
 * certificate; host is what the agent dials. */
static int do_register(fx *f, ktls_server *srv, ktls_token_store *ts, const char *pin,
                       const char *host, const char *sub) {
  ktls_err err = {{0}};
  char tok[128], dir[160];
  assert_int_equal(ktls_token_create(ts, "east", time(NULL) + 600, pin, tok, &err), 0);
  snprintf(dir, sizeof dir, "%s/%s", f->root, sub);
  ktls_agent_opts o = {.host = host,
                       .port = ktls_server_port(srv),
                       .cluster = "east",
                       .state_dir = dir,
                       .bootstrap_token = tok,
                       .timeout_ms = 5000};
  f->done = false;
  ktls_client *c = ktls_client_register(f->base, &o, client_cb, f, &err);
  if (!c) {
    snprintf(f->msg, sizeof f->msg, "%s", err.msg);
    return -2;
  }
  while (!f->done)
    event_base_loop(f->base, EVLOOP_ONCE);
  for (int i = 0; i < 20; i++)
    event_base_loop(f->base, EVLOOP_NONBLOCK);
  ktls_client_free(c);
  return f->status;
}

static void agent_registers_with_the_pin(void **state) {
  fx *f = *state;
  const char *hosts[] = {"koreo-controlplane"};
  ktls_ca *ca = NULL;
  char *cert = NULL, *key = NULL, err[512] = "";
  assert_int_equal(cp_pki_load(f->pki, hosts, 1, &ca, &cert, &key, err, sizeof err), 0);
  ktls_token_store *ts = ktls_token_store_new();
  ktls_err e = {{0}};
  ktls_server_opts so = {
      .bind_host = "127.0.0.1", .ca = ca, .tokens = ts, .cert_pem = cert, .key_pem = key};
  ktls_server *srv = ktls_server_new(f->base, &so, &e);
  if (!srv) fail_msg("server: %s", e.msg);
  /* by name and by address: make-pki.sh adds localhost and 127.0.0.1 */
  int st = do_register(f, srv, ts, f->pin, "localhost", "s1");
  if (st != 0) fail_msg("register via localhost: %s", f->msg);
  st = do_register(f, srv, ts, f->pin, "127.0.0.1", "s2");
  if (st != 0) fail_msg("register via 127.0.0.1: %s", f->msg);
  char stored[200];
  snprintf(stored, sizeof stored, "%s/s1/cert.pem", f->root);
  assert_int_equal(access(stored, R_OK), 0);
  /* a token carrying another CA's pin is refused before anything is sent */
  ktls_ca *other = ktls_ca_new("other", 1, &e);
  assert_non_null(other);
  st = do_register(f, srv, ts, ktls_ca_pin(other), "localhost", "s3");
  assert_int_not_equal(st, 0);
  ktls_ca_free(other);
  ktls_server_free(srv);
  ktls_token_store_free(ts);
  free(cert);
  free(key);
  ktls_ca_free(ca);
}

static void server_cert_names_exactly_the_hosts(void **state) {
  fx *f = *state;
  char p[160];
  snprintf(p, sizeof p, "%s/server.crt", f->pki);
  FILE *fp = fopen(p, "r");
  assert_non_null(fp);
  X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
  fclose(fp);
  assert_non_null(x);
  const char *yes[] = {"koreo-controlplane", "koreo-controlplane-agents.koreo-system.svc",
                       "localhost"};
  for (int i = 0; i < 3; i++)
    assert_int_equal(X509_check_host(x, yes[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL), 1);
  assert_int_equal(X509_check_ip_asc(x, "10.0.0.7", 0), 1);
  assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
  assert_int_not_equal(X509_check_host(x, "evil.example.com", 0, 0, NULL), 1);
  assert_int_not_equal(X509_check_ip_asc(x, "10.0.0.8", 0), 1);
  /* a server certificate, not a CA */
  assert_int_equal(X509_check_ca(x), 0);
  assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
  X509_free(x);
}

static void rerun_keeps_the_ca(void **state) {
  fx *f = *state;
  char crt[160], cacrt[160];
  snprintf(crt, sizeof crt, "%s/server.crt", f->pki);
  snprintf(cacrt, sizeof cacrt, "%s/ca.crt", f->pki);
  char *ca_before = slurp(cacrt), *srv_before = slurp(crt);
  char pin[80];
  assert_int_equal(make_pki(f, "--host koreo.example.com", pin), 0);
  assert_string_equal(pin, f->pin);
  char *ca_after = slurp(cacrt), *srv_after = slurp(crt);
  assert_string_equal(ca_after, ca_before);
  assert_string_not_equal(srv_after, srv_before);
  free(ca_before);
  free(srv_before);
  free(ca_after);
  free(srv_after);
}

static void bad_usage_is_refused(void **state) {
  fx *f = *state;
  char cmd[512];
  const char *script = getenv("MAKE_PKI");
  snprintf(cmd, sizeof cmd, "'%s' --out '%s/x' >/dev/null 2>&1", script, f->root);
  assert_int_not_equal(system(cmd), 0); /* no --host */
  snprintf(cmd, sizeof cmd, "'%s' --host a >/dev/null 2>&1", script);
  assert_int_not_equal(system(cmd), 0); /* no --out */
}

int main(void) {
  if (!getenv("MAKE_PKI")) {
    fprintf(stderr, "test_deploy_pki: set MAKE_PKI to deploy/pki/make-pki.sh\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(files_are_private, setup, teardown),
      cmocka_unit_test_setup_teardown(controlplane_loads_it_unchanged, setup, teardown),
      cmocka_unit_test_setup_teardown(agent_registers_with_the_pin, setup, teardown),
      cmocka_unit_test_setup_teardown(server_cert_names_exactly_the_hosts, setup, teardown),
      cmocka_unit_test_setup_teardown(rerun_keeps_the_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_usage_is_refused, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
