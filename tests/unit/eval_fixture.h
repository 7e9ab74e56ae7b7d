/*
 * tests/unit/eval_fixture.h: shared fixture of the test_eval_* programs
 * that evaluate real definitions: a registry loaded from YAML text, an
 * in-memory cluster, and a responder that logs every request and can
 * force the answer to the next request of a given verb.
 */
#ifndef KOREO_TEST_EVAL_FIXTURE_H
#define KOREO_TEST_EVAL_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koreo/definition.h"
#include "koreo/eval.h"
#include "koreo/json.h"

typedef struct fx {
  kdef_registry *reg;
  kube_memcluster *mc;
  kv *log;        /* list of "verb kind ns/name" strings */
  kv *bodies;     /* list of request bodies (null for get/delete) */
  int force_verb; /* -1: none */
  kube_status force_status;
  int force_code;
  koreo_eval_ctx ctx;
} fx;

static inline kv *fx_json(const char *s) {
  kv_parse_error e;
  kv *v = kv_json_parse(s, strlen(s), &e);
  if (!v) fail_msg("bad test JSON (%s): %s", e.msg, s);
  return v;
}

static inline void fx_call(void *ctx, const kube_request *req, kube_response *resp) {
  fx *f = ctx;
  char line[256];
  snprintf(line, sizeof line, "%s %s %s/%s", kube_verb_name(req->verb), req->kind,
           req->ns ? req->ns : "", req->name);
  kv_list_push(f->log, kv_cstring(line));
  kv_list_push(f->bodies, kv_ref(req->body ? req->body : kv_null()));
  if (f->force_verb == (int)req->verb) {
    f->force_verb = -1;
    resp->status = f->force_status;
    resp->http_code = f->force_code;
    snprintf(resp->message, sizeof resp->message, "forced %s", kube_status_name(f->force_status));
    return;
  }
  kube_ops ops = kube_memcluster_ops(f->mc);
  ops.call(ops.ctx, req, resp);
}

static inline void fx_init(fx *f) {
  memset(f, 0, sizeof *f);
  f->reg = kdef_registry_new();
  f->mc = kube_memcluster_new();
  f->log = kv_list_new(8);
  f->bodies = kv_list_new(8);
  f->force_verb = -1;
  f->ctx.registry = f->reg;
}

static inline void fx_free(fx *f) {
  kdef_registry_free(f->reg);
  kube_memcluster_free(f->mc);
  kv_unref(f->log);
  kv_unref(f->bodies);
}

/* Forget the request log. */
static inline void fx_reset_log(fx *f) {
  kv_unref(f->log);
  kv_unref(f->bodies);
  f->log = kv_list_new(8);
  f->bodies = kv_list_new(8);
}

/* Load YAML definitions; every diagnostic fails the test. */
static inline void fx_load(fx *f, const char *yaml) {
  kdef_diags d = {0};
  size_t n = kdef_load_text(f->reg, yaml, strlen(yaml), "test.yaml", &d);
  for (size_t i = 0; i < d.n; i++) {
    char *s = kdef_diag_format(&d.items[i]);
    if (!d.items[i].warning) fprintf(stderr, "diagnostic: %s\n", s);
    free(s);
  }
  kdef_diags_free(&d);
  assert_int_equal(n, 0);
}

/* Seed the cluster with a JSON object. */
static inline void fx_seed(fx *f, const char *json) {
  kv *o = fx_json(json);
  char err[256];
  assert_int_equal(kube_memcluster_put(f->mc, o, err, sizeof err), 0);
  kv_unref(o);
}

static inline kdef_definition *fx_def(fx *f, kdef_kind kind, const char *name) {
  kdef_definition *d = kdef_registry_lookup(f->reg, kind, name);
  if (!d) fail_msg("definition %s %s not loaded", kdef_kind_name(kind), name);
  return d;
}

static inline kube_ops fx_ops(fx *f) { return (kube_ops){f, fx_call}; }

/* Number of requests logged, and the i-th as "verb Kind ns/name". */
static inline size_t fx_nreq(const fx *f) { return kv_len(f->log); }
static inline const char *fx_req(const fx *f, size_t i) {
  assert_true(i < kv_len(f->log));
  return kv_str(kv_list_at(f->log, i));
}

static inline void fx_assert_contains(const char *hay, const char *needle) {
  if (!hay || !strstr(hay, needle))
    fail_msg("'%s' does not contain '%s'", hay ? hay : "(null)", needle);
}

static inline void fx_assert_json(const kv *v, const char *want) {
  kv *w = fx_json(want);
  if (!kv_equal_strict(v, w, false)) {
    char *j = kv_json_write(v, 0, NULL);
    fail_msg("got %s, want %s", j, want);
  }
  kv_unref(w);
}

#endif
