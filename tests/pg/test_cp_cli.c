/*
 * tests/pg/test_cp_cli.c: koreo-controlplane's subcommands end to end
 * against a real PostgreSQL (tests/pg/pgtest): `migrate` (two concurrent
 * runs), `tokens create` (the row holds the hash, never the secret; audit
 * log), `tokens bootstrap` (pin of the PKI's CA, pending cluster row, the
 * design's consume query), and `serve` (PKI generated with 0600 keys,
 * history partitions, clean exit on SIGTERM).
 * Usage: test_cp_cli PATH/TO/koreo-controlplane
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "cp.h"
#include "db.h"
#include "koreo/json.h"
#include "koreo/value.h"
#include "pgtest.h"

static const char *g_bin;
static pgtest *g_pg;
static pid_t g_serve = -1;
static char g_tmp[256];

static int group_setup(void **state) {
  (void)state;
  char err[2048];
  g_pg = pgtest_start(err, sizeof err);
  if (!g_pg) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  snprintf(g_tmp, sizeof g_tmp, "/tmp/koreo-cp-cli-XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (g_serve > 0) {
    kill(g_serve, SIGKILL);
    waitpid(g_serve, NULL, 0);
  }
  pgtest_stop(g_pg);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_tmp);
  return 0;
}

/* Start the binary with argv (NULL-terminated, without argv[0]); stdout to
 * a pipe (*out_fd), stderr inherited. */
static pid_t spawn(const char *const *args, int *out_fd) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    const char *argv[32];
    size_t n = 0;
    argv[n++] = g_bin;
    for (size_t i = 0; args[i] && n < 31; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(g_bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

/* Read all of fd (until EOF or 30 s), wait for pid; exit status or -1. */
static int finish(pid_t pid, int fd, char *out, size_t n) {
  size_t len = 0;
  time_t end = time(NULL) + 30;
  for (;;) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, 1000) > 0) {
      ssize_t r = read(fd, out + len, n - 1 - len);
      if (r <= 0) break;
      len += (size_t)r;
      if (len >= n - 1) break;
    }
    if (time(NULL) > end) {
      kill(pid, SIGKILL);
      break;
    }
  }
  out[len] = 0;
  close(fd);
  int st;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *const *args, char *out, size_t n) {
  int fd;
  pid_t pid = spawn(args, &fd);
  if (pid < 0) return -1;
  return finish(pid, fd, out, n);
}

static const char *db_url(const char *name) {
  static char url[256];
  char err[1024];
  if (pgtest_createdb(g_pg, name, url, sizeof url, err, sizeof err) != 0) fail_msg("%s", err);
  return url;
}

/* One value of a query with up to 2 parameters (static buffer). */
static const char *val(PGconn *c, const char *sql, const char *p1, const char *p2) {
  static char buf[4096];
  char err[512];
  const char *p[] = {p1, p2};
  int np = p2 ? 2 : p1 ? 1 : 0;
  PGresult *r = cpdb_sync_exec(c, sql, np, np ? p : NULL, err, sizeof err);
  if (!r) fail_msg("%s: %s", sql, err);
  snprintf(buf, sizeof buf, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(no row)");
  PQclear(r);
  return buf;
}

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static void test_help_and_usage(void **state) {
  (void)state;
  char out[8192];
  const char *h[] = {"--help", NULL};
  assert_int_equal(run(h, out, sizeof out), 0);
  assert_non_null(strstr(out, "--database-url"));
  assert_non_null(strstr(out, "tokens bootstrap"));
  const char *bad[] = {"migrate", "--database-url", "x", "--frobnicate", "1", NULL};
  assert_int_equal(run(bad, out, sizeof out), 2);
  const char *nodb[] = {"migrate", NULL};
  unsetenv("KOREO_DATABASE_URL");
  assert_int_equal(run(nodb, out, sizeof out), 2);
  const char *baddur[] = {"serve", "--resync", "20 minutes", NULL};
  assert_int_equal(run(baddur, out, sizeof out), 2);
  const char *unreachable[] = {"migrate", "--database-url",
                               "postgresql://postgres@127.0.0.1:1/postgres", NULL};
  assert_int_equal(run(unreachable, out, sizeof out), 1);
}

static void test_migrate_concurrent_runs(void **state) {
  (void)state;
  const char *url = db_url("climig");
  const char *args[] = {"migrate", "--database-url", url, NULL};
  int fd1, fd2;
  pid_t a = spawn(args, &fd1);
  pid_t b = spawn(args, &fd2);
  char o1[1024], o2[1024];
  assert_int_equal(finish(a, fd1, o1, sizeof o1), 0);
  assert_int_equal(finish(b, fd2, o2, sizeof o2), 0);
  char want[64];
  snprintf(want, sizeof want, "schema version %d\n",
           cpdb_migrations[cpdb_n_migrations - 1].version);
  assert_string_equal(o1, want);
  assert_string_equal(o2, want);
  char err[512];
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  char n[16];
  snprintf(n, sizeof n, "%zu", cpdb_n_migrations);
  assert_string_equal(val(c, "SELECT count(*) FROM schema_migrations", NULL, NULL), n);
  /* KOREO_DATABASE_URL works as well */
  setenv("KOREO_DATABASE_URL", url, 1);
  const char *envargs[] = {"migrate", NULL};
  assert_int_equal(run(envargs, o1, sizeof o1), 0);
  unsetenv("KOREO_DATABASE_URL");
  assert_string_equal(val(c, "SELECT count(*) FROM schema_migrations", NULL, NULL), n);
  PQfinish(c);
}

static void test_tokens_create(void **state) {
  (void)state;
  const char *url = db_url("clitok");
  char out[1024];
  const char *args[] = {"tokens",         "create", "--role", "viewer",        "--clusters",
                        "west,north",     "--ttl",  "720h",   "--description", "sre team",
                        "--database-url", url,      NULL};
  assert_int_equal(run(args, out, sizeof out), 0);
  /* kat.<id16>.<secret32>\n */
  assert_int_equal(strlen(out), 4 + 16 + 1 + 32 + 1);
  assert_memory_equal(out, "kat.", 4);
  assert_true(is_hex(out + 4, 16) && out[20] == '.' && is_hex(out + 21, 32) && out[53] == '\n');
  char id[17], secret[33], hash[65];
  snprintf(id, sizeof id, "%.16s", out + 4);
  snprintf(secret, sizeof secret, "%.32s", out + 21);
  cp_sha256_hex(secret, 32, hash);

  char err[512];
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  /* the design's lookup finds it by id + hash */
  assert_string_equal(val(c,
                          "SELECT role || ' ' || array_to_string(clusters, ',') FROM api_tokens "
                          "WHERE id=$1 AND secret_hash=$2 AND revoked_at IS NULL AND "
                          "(expires_at IS NULL OR expires_at>now())",
                          id, hash),
                      "viewer west,north");
  /* the secret itself is stored nowhere */
  assert_string_equal(
      val(c, "SELECT count(*) FROM api_tokens t WHERE strpos(t::text, $1) > 0", secret, NULL), "0");
  assert_string_equal(
      val(c, "SELECT count(*) FROM audit_log a WHERE strpos(a::text, $1) > 0", secret, NULL), "0");
  assert_string_equal(val(c,
                          "SELECT round(extract(epoch FROM expires_at - created_at) / 3600) "
                          "FROM api_tokens WHERE id=$1",
                          id, NULL),
                      "720");
  assert_string_equal(val(c, "SELECT description FROM api_tokens WHERE id=$1", id, NULL),
                      "sre team");
  assert_string_equal(val(c,
                          "SELECT actor || ' ' || action || ' ' || (detail->>'role') FROM "
                          "audit_log WHERE target=$1",
                          id, NULL),
                      "cli token.create viewer");

  /* no --ttl: no expiry; an unscoped admin */
  const char *admin[] = {"tokens", "create", "--role", "admin", "--database-url", url, NULL};
  assert_int_equal(run(admin, out, sizeof out), 0);
  snprintf(id, sizeof id, "%.16s", out + 4);
  assert_string_equal(
      val(c, "SELECT (expires_at IS NULL AND clusters IS NULL)::text FROM api_tokens WHERE id=$1",
          id, NULL),
      "true");

  /* refused: bad role, bad cluster name; nothing stored */
  const char *badrole[] = {"tokens", "create", "--role", "root", "--database-url", url, NULL};
  assert_int_equal(run(badrole, out, sizeof out), 2);
  assert_string_equal(out, "");
  const char *badcl[] = {"tokens", "create",         "--role", "viewer", "--clusters",
                         "East_1", "--database-url", url,      NULL};
  assert_int_equal(run(badcl, out, sizeof out), 2);
  assert_string_equal(val(c, "SELECT count(*) FROM api_tokens", NULL, NULL), "2");
  PQfinish(c);
}

static void test_tokens_bootstrap(void **state) {
  (void)state;
  const char *url = db_url("cliboot");
  char pki[300];
  snprintf(pki, sizeof pki, "%s/pki-boot", g_tmp);
  char out[1024];
  const char *args[] = {"tokens",    "bootstrap", "--cluster",      "east", "--ttl", "1h",
                        "--pki-dir", pki,         "--database-url", url,    NULL};
  assert_int_equal(run(args, out, sizeof out), 0);
  out[strcspn(out, "\n")] = 0;
  char id[17], secret[33], pin[65];
  ktls_err e;
  assert_int_equal(ktls_token_parse(out, id, secret, pin, &e), 0);
  /* the pin is the PKI's CA */
  char path[400];
  snprintf(path, sizeof path, "%s/ca.crt", pki);
  char *ca_pem = ktls_read_file(path, &e);
  assert_non_null(ca_pem);
  X509 *ca = ktls_cert_from_pem(ca_pem, &e);
  assert_non_null(ca);
  char want[65];
  assert_int_equal(ktls_cert_pin(ca, want, &e), 0);
  assert_string_equal(pin, want);
  X509_free(ca);
  free(ca_pem);
  struct stat st;
  snprintf(path, sizeof path, "%s/ca.key", pki);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  char err[512], hash[65];
  cp_sha256_hex(secret, 32, hash);
  PGconn *c = cpdb_sync_connect(url, err, sizeof err);
  assert_non_null(c);
  assert_string_equal(val(c, "SELECT state FROM clusters WHERE name='east'", NULL, NULL),
                      "pending");
  assert_string_equal(val(c,
                          "SELECT round(extract(epoch FROM expires_at - now()) / 60) FROM "
                          "bootstrap_tokens WHERE id=$1",
                          id, NULL),
                      "60");
  assert_string_equal(
      val(c, "SELECT count(*) FROM bootstrap_tokens t WHERE strpos(t::text, $1) > 0", secret, NULL),
      "0");
  /* the consume query of cp-design.md accepts it exactly once */
  const char *consume = "UPDATE bootstrap_tokens SET used_at=now() WHERE id=$1 AND secret_hash=$2 "
                        "AND cluster='east' AND used_at IS NULL AND expires_at>now() RETURNING id";
  assert_string_equal(val(c, consume, id, hash), id);
  assert_string_equal(val(c, consume, id, hash), "(no row)");

  /* a second token for a cluster that is already online keeps its state */
  PGresult *r = cpdb_sync_exec(c, "UPDATE clusters SET state='online' WHERE name='east'", 0, NULL,
                               err, sizeof err);
  assert_non_null(r);
  PQclear(r);
  assert_int_equal(run(args, out, sizeof out), 0);
  assert_string_equal(val(c, "SELECT state FROM clusters WHERE name='east'", NULL, NULL), "online");
  assert_string_equal(
      val(c, "SELECT count(*) FROM audit_log WHERE action='token.bootstrap'", NULL, NULL), "2");
  const char *bad[] = {"tokens", "bootstrap",      "--cluster", "Not_A_Name", "--pki-dir",
                       pki,      "--database-url", url,         NULL};
  assert_int_equal(run(bad, out, sizeof out), 2);
  PQfinish(c);
}

static void test_serve_starts_and_stops(void **state) {
  (void)state;
  const char *url = db_url("cliserve");
  char pki[300];
  snprintf(pki, sizeof pki, "%s/pki-serve", g_tmp);
  const char *args[] = {"serve",       "--database-url",
                        url,           "--pki-dir",
                        pki,           "--agent-listen",
                        "127.0.0.1:0", "--api-listen",
                        "127.0.0.1:0", "--history-retention",
                        "7d",          "--log-format",
                        "json",        NULL};
  int fd;
  g_serve = spawn(args, &fd);
  assert_true(g_serve > 0);
  char err[512];
  PGconn *c = NULL;
  /* wait for the schema and the partitions */
  bool ready = false;
  for (int i = 0; i < 200 && !ready; i++) {
    usleep(50000);
    if (!c) c = cpdb_sync_connect(url, err, sizeof err);
    if (c && cpdb_schema_version(c) > 0) {
      PGresult *r = cpdb_sync_exec(c,
                                   "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON "
                                   "p.oid = i.inhparent WHERE p.relname = 'workflow_runs'",
                                   0, NULL, err, sizeof err);
      ready = r && atoi(PQgetvalue(r, 0, 0)) == 3;
      if (r) PQclear(r);
    }
  }
  assert_true(ready);
  /* a few more moments on the loop, then still alive */
  usleep(300000);
  assert_int_equal(waitpid(g_serve, NULL, WNOHANG), 0);
  const char *files[] = {"ca.crt", "ca.key", "server.crt", "server.key"};
  const unsigned modes[] = {0644, 0600, 0644, 0600};
  for (int i = 0; i < 4; i++) {
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", pki, files[i]);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, modes[i]);
  }
  char path[400];
  snprintf(path, sizeof path, "%s/ca.crt", pki);
  ktls_err e;
  char *ca1 = ktls_read_file(path, &e);
  assert_non_null(ca1);
  /* the server certificate names localhost and 127.0.0.1 */
  snprintf(path, sizeof path, "%s/server.crt", pki);
  char *srv = ktls_read_file(path, &e);
  X509 *x = ktls_cert_from_pem(srv, &e);
  assert_non_null(x);
  assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
  assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
  X509_free(x);
  free(srv);

  assert_int_equal(kill(g_serve, SIGTERM), 0);
  char out[256];
  int rc = finish(g_serve, fd, out, sizeof out);
  g_serve = -1;
  assert_int_equal(rc, 0);

  /* a restart keeps the CA */
  int fd2;
  g_serve = spawn(args, &fd2);
  usleep(800000);
  assert_int_equal(kill(g_serve, SIGTERM), 0);
  assert_int_equal(finish(g_serve, fd2, out, sizeof out), 0);
  g_serve = -1;
  snprintf(path, sizeof path, "%s/ca.crt", pki);
  char *ca2 = ktls_read_file(path, &e);
  assert_non_null(ca2);
  assert_string_equal(ca1, ca2);
  free(ca1);
  free(ca2);
  PQfinish(c);
}

/* ---- library pieces: definition hash, PKI ----------------------------------- */

static void test_definition_hash(void **state) {
  (void)state;
  kv_parse_error pe;
  const char *src = "{\"kind\": \"Workflow\",\n  \"metadata\": {\"name\": \"a\"}}";
  kv *doc = kv_json_parse(src, strlen(src), &pe);
  assert_non_null(doc);
  char h[72];
  cp_definition_hash(doc, h);
  /* sha256 of the compact text {"kind":"Workflow","metadata":{"name":"a"}} */
  assert_string_equal(h, "sha256:a340585388829442f2501346327fed658089b6e8bc56bdd05a8c76337a929d5a");
  kv_unref(doc);
}

static char *slurp(const char *dir, const char *file) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  ktls_err e;
  return ktls_read_file(path, &e);
}

static void test_pki_reissue(void **state) {
  (void)state;
  char dir[300], err[1024];
  snprintf(dir, sizeof dir, "%s/pki-lib", g_tmp);
  ktls_ca *ca = NULL;
  char *cert = NULL, *key = NULL;
  const char *h1[] = {"cp.example.test"};
  assert_int_equal(cp_pki_load(dir, h1, 1, &ca, &cert, &key, err, sizeof err), 0);
  ktls_err e;
  X509 *x = ktls_cert_from_pem(cert, &e);
  assert_int_equal(X509_check_host(x, "cp.example.test", 0, 0, NULL), 1);
  X509_free(x);
  char *ca1 = slurp(dir, "ca.crt"), *srv1 = slurp(dir, "server.crt");
  assert_string_equal(srv1, cert);
  ktls_ca_free(ca);
  free(cert);
  free(key);
  /* same hosts: nothing reissued */
  assert_int_equal(cp_pki_load(dir, h1, 1, &ca, &cert, &key, err, sizeof err), 0);
  assert_string_equal(cert, srv1);
  ktls_ca_free(ca);
  free(cert);
  free(key);
  /* a new listen host: a new server certificate, the same CA */
  const char *h2[] = {"10.1.2.3"};
  assert_int_equal(cp_pki_load(dir, h2, 1, &ca, &cert, &key, err, sizeof err), 0);
  assert_string_not_equal(cert, srv1);
  x = ktls_cert_from_pem(cert, &e);
  assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
  assert_int_equal(X509_verify(x, X509_get0_pubkey(ktls_ca_cert(ca))), 1);
  X509_free(x);
  char *ca2 = slurp(dir, "ca.crt");
  assert_string_equal(ca1, ca2);
  ktls_ca_free(ca);
  free(cert);
  free(key);
  free(ca1);
  free(ca2);
  free(srv1);
  /* half a CA is refused rather than replaced */
  char path[400];
  snprintf(path, sizeof path, "%s/ca.key", dir);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(cp_pki_load(dir, h1, 1, &ca, &cert, &key, err, sizeof err), -1);
  assert_non_null(strstr(err, "ca.key"));
  assert_null(ca);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH/TO/koreo-controlplane\n", argv[0]);
    return 2;
  }
  g_bin = argv[1];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_definition_hash),        cmocka_unit_test(test_pki_reissue),
      cmocka_unit_test(test_help_and_usage),         cmocka_unit_test(test_migrate_concurrent_runs),
      cmocka_unit_test(test_tokens_create),          cmocka_unit_test(test_tokens_bootstrap),
      cmocka_unit_test(test_serve_starts_and_stops),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
