/*
 * core/kube/ops.c: the core's "kube operations" interface (koreo/kube_ops.h)
 * implemented with the kube client (koreo/kube.h, "The core's kube
 * operations"): a Koreo run's kube_request (get / create / merge patch /
 * delete) becomes a client request, and its answer a kube_response with
 * the statuses spec 5.2-5.8 distinguish.  Asynchronous
 * (kube_client_answer, for the agent's loop) and synchronous
 * (kube_client_ops, for koreo_run_sync in tools and tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_impl.h"

typedef struct kans {
  uint64_t id;
  bool had_plural;
  kube_answer_fn cb;
  void *ud;
} kans;

static kube_status status_for(const kube_result *r) {
  switch (r->err.code) {
  case KUBE_OK: return KUBE_STATUS_OK;
  case KUBE_ERR_NOT_FOUND: return r->http_status ? KUBE_STATUS_NOT_FOUND : KUBE_STATUS_FAILURE;
  case KUBE_ERR_ALREADY_EXISTS:
  case KUBE_ERR_CONFLICT: return KUBE_STATUS_CONFLICT;
  case KUBE_ERR_NO_KIND: return KUBE_STATUS_KIND_UNKNOWN;
  case KUBE_ERR_TRANSPORT:
  case KUBE_ERR_CANCELLED:
  case KUBE_ERR_CONFIG:
  case KUBE_ERR_USAGE:
  case KUBE_ERR_DECODE: return r->http_status ? KUBE_STATUS_SERVER_ERROR : KUBE_STATUS_FAILURE;
  default: return r->http_status ? KUBE_STATUS_SERVER_ERROR : KUBE_STATUS_FAILURE;
  }
}

static void kans_done(void *ud, kube_result *r) {
  kans *a = ud;
  kube_response resp;
  memset(&resp, 0, sizeof resp);
  resp.status = status_for(r);
  resp.http_code = r->http_status;
  if (resp.status == KUBE_STATUS_OK) {
    resp.object = r->object; /* taken */
    r->object = NULL;
  } else {
    snprintf(resp.message, sizeof resp.message, "%s", r->err.message);
  }
  if (!a->had_plural && r->resource)
    snprintf(resp.plural, sizeof resp.plural, "%s", r->resource->resource);
  kube_answer_fn cb = a->cb;
  void *cud = a->ud;
  uint64_t id = a->id;
  free(a);
  cb(cud, id, &resp);
}

int kube_client_answer(kube_client *c, const kube_request *req, kube_answer_fn cb, void *ud) {
  kube_req q = {.api_version = req->api_version,
                .namespace_ = req->ns && *req->ns ? req->ns : NULL,
                .name = req->name,
                .body = req->body};
  bool plural = req->plural && *req->plural;
  if (plural)
    q.resource = req->plural;
  else
    q.kind = req->kind;
  switch (req->verb) {
  case KUBE_GET: q.op = KUBE_OP_GET; break;
  case KUBE_CREATE:
    q.op = KUBE_OP_CREATE;
    q.field_manager = "koreo";
    break;
  case KUBE_PATCH:
    q.op = KUBE_OP_PATCH_MERGE;
    q.field_manager = "koreo";
    break;
  case KUBE_DELETE:
    q.op = KUBE_OP_DELETE;
    q.body = NULL;
    break;
  }
  /* a create's apiVersion/kind come from the request, not the body */
  if (q.op == KUBE_OP_CREATE && !plural && !q.kind) q.kind = req->kind;
  kans *a = calloc(1, sizeof *a);
  if (!a) kv_oom();
  a->id = req->id;
  a->had_plural = plural;
  a->cb = cb;
  a->ud = ud;
  if (kube_send(c, &q, kans_done, a) != 0) {
    free(a);
    return -1;
  }
  return 0;
}

/* --- synchronous responder --------------------------------------------------- */

typedef struct ksync {
  bool done;
  kube_response *out;
} ksync;

static void ksync_done(void *ud, uint64_t id, kube_response *resp) {
  (void)id;
  ksync *s = ud;
  *s->out = *resp; /* take what it owns */
  memset(resp, 0, sizeof *resp);
  s->done = true;
}

static void ops_call(void *ctx, const kube_request *req, kube_response *resp) {
  kube_client *c = ctx;
  ksync s = {false, resp};
  if (kube_client_answer(c, req, ksync_done, &s) != 0) {
    resp->status = KUBE_STATUS_FAILURE;
    snprintf(resp->message, sizeof resp->message, "the Kubernetes client is closing");
    return;
  }
  if (kube_client_run_until(c, &s.done, -1) != 0 && !s.done) {
    resp->status = KUBE_STATUS_FAILURE;
    snprintf(resp->message, sizeof resp->message,
             "the Kubernetes client's event loop stopped before the answer came");
  }
}

kube_ops kube_client_ops(kube_client *c) {
  kube_ops ops = {c, ops_call};
  return ops;
}
