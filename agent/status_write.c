/*
 * agent/status_write.c: the trigger status writer of agent/status_write.h
 * (spec 6.11), used by standalone and control-plane mode.
 */
#include "status_write.h"

#include <stdlib.h>
#include <string.h>

typedef struct sw {
  int writes; /* in flight (+1 while submitting) */
  kube_error first;
  bool failed;
  agent_status_done done;
  void *arg;
} sw;

static void sw_release(sw *w) {
  if (--w->writes > 0) return;
  w->done(w->arg, w->failed ? &w->first : NULL);
  kube_error_clear(&w->first);
  free(w);
}

static void on_written(void *ud, kube_result *r) {
  sw *w = ud;
  if (r->err.code != KUBE_OK && !w->failed) {
    w->failed = true;
    kube_error_copy(&w->first, &r->err);
  }
  sw_release(w);
}

static void submit(kube_client *kc, sw *w, kube_req *q) {
  w->writes++;
  if (kube_send(kc, q, on_written, w) != 0) {
    w->writes--;
    if (!w->failed) {
      w->failed = true;
      kube_error_set(&w->first, KUBE_ERR_CANCELLED, "status write of %s %s: client shutting down",
                     q->kind, q->name);
    }
  }
}

/* Send the writes (discovery known or not servable). */
static void send_writes(kube_client *kc, sw *w, const char *api_version, const char *kind,
                        const char *ns, const char *name, const kv *patch) {
  const kube_resource_info *ri =
      kube_discovery_find(kube_client_discovery(kc), api_version, kind, NULL);
  kube_req q = {.op = KUBE_OP_PATCH_MERGE,
                .api_version = api_version,
                .kind = kind,
                .namespace_ = ns && *ns ? ns : NULL,
                .name = name,
                .field_manager = "koreo"};
  const kv *status = kv_map_get_str(patch, "status");
  if (ri && ri->has_status && status) {
    kv *sp = kv_map_new(1);
    kv_map_set_str(sp, "status", kv_ref((kv *)status));
    q.subresource = "status";
    q.body = sp;
    submit(kc, w, &q);
    kv_unref(sp);
    kv *rest = kv_map_new(kv_len(patch));
    for (size_t i = 0; i < kv_len(patch); i++) {
      kv *k = kv_map_key_at(patch, i);
      if (k->kind == KV_STRING && strcmp(kv_str(k), "status") == 0) continue;
      kv_map_set(rest, kv_ref(k), kv_ref(kv_map_val_at(patch, i)));
    }
    if (kv_len(rest)) {
      q.subresource = NULL;
      q.body = rest;
      submit(kc, w, &q);
    }
    kv_unref(rest);
  } else {
    q.body = patch;
    submit(kc, w, &q);
  }
}

/* The write waiting for discovery of its api_version. */
typedef struct pending {
  kube_client *kc;
  sw *w;
  char *api_version, *kind, *ns, *name;
  kv *patch;
} pending;

static void pending_free(pending *p) {
  free(p->api_version);
  free(p->kind);
  free(p->ns);
  free(p->name);
  kv_unref(p->patch);
  free(p);
}

static void on_resolved(void *ud, kube_result *r) {
  pending *p = ud;
  if (r->err.code == KUBE_ERR_CANCELLED) {
    p->w->failed = true;
    kube_error_copy(&p->w->first, &r->err);
  } else {
    /* NO_KIND and friends: the write itself reports the problem */
    send_writes(p->kc, p->w, p->api_version, p->kind, p->ns, p->name, p->patch);
  }
  sw_release(p->w);
  pending_free(p);
}

static char *xdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) kv_oom();
  return d;
}

int agent_status_write(kube_client *kc, const char *api_version, const char *kind, const char *ns,
                       const char *name, const kv *patch, agent_status_done done, void *arg) {
  sw *w = calloc(1, sizeof *w);
  if (!w) kv_oom();
  w->done = done;
  w->arg = arg;
  w->writes = 1; /* guard while submitting */
  if (!kube_discovery_knows(kube_client_discovery(kc), api_version)) {
    pending *p = calloc(1, sizeof *p);
    if (!p) kv_oom();
    *p = (pending){kc, w, xdup(api_version), xdup(kind), xdup(ns), xdup(name), kv_ref((kv *)patch)};
    w->writes++;
    if (kube_resolve(kc, api_version, kind, on_resolved, p) == 0) {
      sw_release(w);
      return 0;
    }
    w->writes--;
    pending_free(p);
    free(w);
    return -1;
  }
  send_writes(kc, w, api_version, kind, ns, name, patch);
  if (w->writes == 1 && w->failed && w->first.code == KUBE_ERR_CANCELLED) {
    /* nothing went out: the client is being freed */
    kube_error_clear(&w->first);
    free(w);
    return -1;
  }
  sw_release(w);
  return 0;
}
