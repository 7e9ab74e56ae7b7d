/*
 * core/ftest/mock.c: the mock API FunctionTests run ResourceFunctions
 * against (spec 7.3), as a kube_ops responder.  It never contacts a
 * cluster: GET answers the seeded object whatever name is asked for,
 * writes are recorded as the "materialized" object.
 */
#include "koreo/ftest.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool non_empty_map(const kv *v) { return v && v->kind == KV_MAP && kv_len(v) > 0; }

void kftest_mock_init(kftest_mock *m, const kv *seed) {
  memset(m, 0, sizeof *m);
  m->seed = seed ? kv_ref((kv *)seed) : NULL;
}

void kftest_mock_clear(kftest_mock *m) {
  kv_unref(m->seed);
  kv_unref(m->materialized);
  memset(m, 0, sizeof *m);
}

/* The seed with each top-level key of `body` replacing the seed's value
 * (spec 7.3: shallow, nested maps are not merged). */
static kv *shallow_replace(const kv *seed, const kv *body) {
  kv *out = kv_map_new(kv_len(seed) + kv_len(body));
  for (size_t i = 0; i < kv_len(seed); i++)
    kv_map_set(out, kv_ref(kv_map_key_at(seed, i)), kv_ref(kv_map_val_at(seed, i)));
  for (size_t i = 0; i < kv_len(body); i++)
    kv_map_set(out, kv_ref(kv_map_key_at(body, i)), kv_ref(kv_map_val_at(body, i)));
  return out;
}

static void mock_call(void *ctx, const kube_request *req, kube_response *resp) {
  kftest_mock *m = ctx;
  m->calls++;
  if (!req->plural && req->api_version && req->kind) {
    char *q = kube_plural_query(req->api_version, req->kind);
    for (char *p = q; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    snprintf(resp->plural, sizeof resp->plural, "%s", q);
    free(q);
  }
  switch (req->verb) {
  case KUBE_GET:
    if (non_empty_map(m->seed)) {
      resp->status = KUBE_STATUS_OK;
      resp->http_code = 200;
      resp->object = kv_ref(m->seed);
    } else {
      resp->status = KUBE_STATUS_NOT_FOUND;
      resp->http_code = 404;
      snprintf(resp->message, sizeof resp->message,
               "FunctionTest mock API: no current resource (%s %s)", req->kind ? req->kind : "",
               req->name ? req->name : "");
    }
    return;
  case KUBE_CREATE:
  case KUBE_PATCH: {
    m->api_called = true;
    kv *merged;
    if (req->body && req->body->kind == KV_MAP && non_empty_map(m->seed))
      merged = shallow_replace(m->seed, req->body);
    else
      merged = req->body ? kv_ref(req->body) : kv_map_new(0);
    kv_unref(m->materialized);
    m->materialized = merged;
    resp->status = KUBE_STATUS_OK;
    resp->http_code = req->verb == KUBE_CREATE ? 201 : 200;
    resp->object = kv_ref(merged);
    return;
  }
  case KUBE_DELETE:
    m->api_called = true;
    m->delete_called = true;
    kv_unref(m->materialized);
    m->materialized = kv_map_new(0);
    resp->status = KUBE_STATUS_OK;
    resp->http_code = 200;
    return;
  }
  resp->status = KUBE_STATUS_FAILURE;
  snprintf(resp->message, sizeof resp->message, "FunctionTest mock API: unknown verb %d",
           (int)req->verb);
}

kube_ops kftest_mock_ops(kftest_mock *m) { return (kube_ops){.ctx = m, .call = mock_call}; }
