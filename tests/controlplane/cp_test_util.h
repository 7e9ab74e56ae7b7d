/*
 * tests/controlplane/cp_test_util.h: helpers shared by the engine tests
 * (test_cp_engine.c, test_cp_engine_e2e.c): storing the hello-service
 * example as current definitions, and bootstrap tokens stored the way the
 * control plane stores them (cp-design.md "Tokens").
 */
#ifndef KOREO_TESTS_CP_TEST_UTIL_H
#define KOREO_TESTS_CP_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "cp.h"
#include "koreo/json.h"
#include "koreo/value.h"
#include "tls.h"

/* Insert the hello-service example's Workflow, ValueFunction and
 * ResourceFunction (FunctionTests left out) from
 * <shared>/reference/koreo-examples/kubernetes/hello-service as generation
 * 1 of each.  rf_hash (72 bytes, may be NULL) gets the hash the engine
 * pushes for the ResourceFunction (that of the stored jsonb form).  0, or
 * -1 with a message in err. */
static inline int cpt_load_hello_service(PGconn *c, const char *shared, char *rf_hash, char *err,
                                         size_t n) {
  static const char *files[] = {"hello-service.k.yaml", "get-service-config.k.yaml",
                                "service-factory.k.yaml"};
  for (size_t f = 0; f < 3; f++) {
    char path[1400];
    snprintf(path, sizeof path, "%s/reference/koreo-examples/kubernetes/hello-service/%s", shared,
             files[f]);
    kv_parse_error pe = {0};
    size_t len = 0;
    char *text = kv_read_file(path, &len, &pe);
    kv *docs = text ? kv_yaml_parse(text, len, path, &pe) : NULL;
    free(text);
    if (!docs) {
      snprintf(err, n, "%.300s: %.250s", path, pe.msg);
      return -1;
    }
    for (size_t i = 0; i < kv_len(docs); i++) {
      const kv *d = kv_list_at(docs, i);
      const kv *k = kv_map_get_str(d, "kind");
      const kv *meta = kv_map_get_str(d, "metadata");
      const kv *name = meta ? kv_map_get_str(meta, "name") : NULL;
      const kv *ns = meta ? kv_map_get_str(meta, "namespace") : NULL;
      if (!k || !name || strcmp(kv_str(k), "FunctionTest") == 0) continue;
      char hash[72];
      cp_definition_hash(d, hash);
      char *src = kv_json_write(d, 0, NULL);
      const char *p[5] = {kv_str(k), ns ? kv_str(ns) : "", kv_str(name), hash, src};
      PGresult *r = PQexecParams(c,
                                 "INSERT INTO definitions (kind, namespace, name, generation, "
                                 "content_hash, source, applied_by) VALUES ($1, $2, $3, 1, $4, "
                                 "$5::jsonb, 'test') RETURNING source::text",
                                 5, NULL, p, NULL, NULL, 0);
      free(src);
      if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, n, "storing %s: %s", kv_str(name), PQerrorMessage(c));
        PQclear(r);
        kv_unref(docs);
        return -1;
      }
      if (rf_hash && strcmp(kv_str(k), "ResourceFunction") == 0) {
        const char *stored = PQgetvalue(r, 0, 0);
        kv *sd = kv_json_parse(stored, strlen(stored), &pe);
        cp_definition_hash(sd, rf_hash);
        kv_unref(sd);
      }
      PQclear(r);
    }
    kv_unref(docs);
  }
  return 0;
}

/* A bootstrap token for `cluster` with the CA's pin, expiring in ttl_s
 * seconds (negative: already expired), stored in bootstrap_tokens (hashed
 * secret) with the cluster row, into out[128].  0 or -1 + err. */
static inline int cpt_bootstrap_token(PGconn *c, ktls_ca *ca, const char *cluster, int ttl_s,
                                      char out[128], char *err, size_t n) {
  ktls_err ke = {{0}};
  ktls_token_store *ts = ktls_token_store_new();
  int rc = ktls_token_create(ts, cluster, time(NULL) + 3600, ktls_ca_pin(ca), out, &ke);
  ktls_token_store_free(ts);
  char id[17], secret[33], pin[65], hash[65], ttl[16];
  if (rc != 0 || ktls_token_parse(out, id, secret, pin, &ke) != 0) {
    snprintf(err, n, "token: %s", ke.msg);
    return -1;
  }
  cp_sha256_hex(secret, strlen(secret), hash);
  snprintf(ttl, sizeof ttl, "%d", ttl_s);
  const char *p[4] = {id, hash, cluster, ttl};
  PGresult *r = PQexecParams(c,
                             "WITH cl AS (INSERT INTO clusters (name) VALUES ($3) ON CONFLICT DO "
                             "NOTHING) INSERT INTO bootstrap_tokens (id, secret_hash, cluster, "
                             "expires_at) VALUES ($1, $2, $3, now() + $4::int * interval '1 "
                             "second')",
                             4, NULL, p, NULL, NULL, 0);
  rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
  if (rc) snprintf(err, n, "storing the token: %s", PQerrorMessage(c));
  PQclear(r);
  return rc;
}

#endif
