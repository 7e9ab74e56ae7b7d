/*
 * core/eval/kube_ops.c: the kube operations interface helpers (kube_ops.h):
 * request/response lifetime, verb and status names, the table of built-in
 * Kubernetes REST types (spec 5.2), the plural discovery query and the
 * RFC 7386 JSON merge patch.
 */
#include "koreo/kube_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kube_verb_name(kube_verb v) {
  switch (v) {
  case KUBE_GET: return "get";
  case KUBE_CREATE: return "create";
  case KUBE_PATCH: return "patch";
  case KUBE_DELETE: return "delete";
  }
  return "?";
}

const char *kube_status_name(kube_status s) {
  switch (s) {
  case KUBE_STATUS_OK: return "ok";
  case KUBE_STATUS_NOT_FOUND: return "not-found";
  case KUBE_STATUS_CONFLICT: return "conflict";
  case KUBE_STATUS_MULTIPLE: return "multiple";
  case KUBE_STATUS_KIND_UNKNOWN: return "kind-unknown";
  case KUBE_STATUS_SERVER_ERROR: return "server-error";
  case KUBE_STATUS_FAILURE: return "failure";
  }
  return "?";
}

void kube_request_clear(kube_request *r) {
  if (!r) return;
  free(r->api_version);
  free(r->kind);
  free(r->plural);
  free(r->ns);
  free(r->name);
  kv_unref(r->body);
  memset(r, 0, sizeof *r);
}

static char *dupn(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) kv_oom();
  return d;
}

kube_request kube_request_copy(const kube_request *r) {
  kube_request c = *r;
  c.api_version = dupn(r->api_version);
  c.kind = dupn(r->kind);
  c.plural = dupn(r->plural);
  c.ns = dupn(r->ns);
  c.name = dupn(r->name);
  c.body = kv_ref(r->body);
  return c;
}

void kube_response_clear(kube_response *r) {
  if (!r) return;
  kv_unref(r->object);
  memset(r, 0, sizeof *r);
}

/* Built-in types: what the Kubernetes client library knows (spec 5.2). */
static const struct builtin {
  const char *api_version, *kind, *plural;
  bool namespaced;
} BUILTINS[] = {
    {"v1", "Binding", "bindings", true},
    {"v1", "ConfigMap", "configmaps", true},
    {"v1", "Endpoints", "endpoints", true},
    {"v1", "Event", "events", true},
    {"v1", "LimitRange", "limitranges", true},
    {"v1", "Namespace", "namespaces", false},
    {"v1", "Node", "nodes", false},
    {"v1", "PersistentVolume", "persistentvolumes", false},
    {"v1", "PersistentVolumeClaim", "persistentvolumeclaims", true},
    {"v1", "Pod", "pods", true},
    {"v1", "PodTemplate", "podtemplates", true},
    {"v1", "ReplicationController", "replicationcontrollers", true},
    {"v1", "ResourceQuota", "resourcequotas", true},
    {"v1", "Secret", "secrets", true},
    {"v1", "Service", "services", true},
    {"v1", "ServiceAccount", "serviceaccounts", true},
    {"admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
     "mutatingwebhookconfigurations", false},
    {"admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
     "validatingwebhookconfigurations", false},
    {"apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", false},
    {"apps/v1", "ControllerRevision", "controllerrevisions", true},
    {"apps/v1", "DaemonSet", "daemonsets", true},
    {"apps/v1", "Deployment", "deployments", true},
    {"apps/v1", "ReplicaSet", "replicasets", true},
    {"apps/v1", "StatefulSet", "statefulsets", true},
    {"autoscaling/v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true},
    {"autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true},
    {"batch/v1", "CronJob", "cronjobs", true},
    {"batch/v1", "Job", "jobs", true},
    {"coordination.k8s.io/v1", "Lease", "leases", true},
    {"discovery.k8s.io/v1", "EndpointSlice", "endpointslices", true},
    {"networking.k8s.io/v1", "Ingress", "ingresses", true},
    {"networking.k8s.io/v1", "IngressClass", "ingressclasses", false},
    {"networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", true},
    {"policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", true},
    {"rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", false},
    {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", false},
    {"rbac.authorization.k8s.io/v1", "Role", "roles", true},
    {"rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", true},
    {"scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", false},
    {"storage.k8s.io/v1", "CSIDriver", "csidrivers", false},
    {"storage.k8s.io/v1", "StorageClass", "storageclasses", false},
    {"storage.k8s.io/v1", "VolumeAttachment", "volumeattachments", false},
};

bool kube_builtin_type(const char *api_version, const char *kind, const char **plural,
                       bool *namespaced) {
  if (!api_version || !kind) return false;
  for (size_t i = 0; i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
    if (strcmp(BUILTINS[i].api_version, api_version) == 0 && strcmp(BUILTINS[i].kind, kind) == 0) {
      if (plural) *plural = BUILTINS[i].plural;
      if (namespaced) *namespaced = BUILTINS[i].namespaced;
      return true;
    }
  return false;
}

char *kube_plural_query(const char *api_version, const char *kind) {
  char *s;
  int r = strcmp(api_version, "v1") == 0 ? asprintf(&s, "%s", kind)
                                         : asprintf(&s, "%s.%s", kind, api_version);
  if (r < 0) kv_oom();
  return s;
}

kv *kube_merge_patch(const kv *target, const kv *patch) {
  if (!patch || patch->kind != KV_MAP) return kv_ref((kv *)(patch ? patch : kv_null()));
  bool tmap = target && target->kind == KV_MAP;
  kv *r = kv_map_new((tmap ? kv_len(target) : 0) + kv_len(patch));
  if (tmap)
    for (size_t i = 0; i < kv_len(target); i++) {
      kv *k = kv_map_key_at(target, i);
      const kv *pv = kv_map_get(patch, k);
      if (pv && pv->kind == KV_NULL) continue; /* deleted */
      if (pv)
        kv_map_set(r, kv_ref(k), kube_merge_patch(kv_map_val_at(target, i), pv));
      else
        kv_map_set(r, kv_ref(k), kv_ref(kv_map_val_at(target, i)));
    }
  for (size_t i = 0; i < kv_len(patch); i++) {
    kv *k = kv_map_key_at(patch, i), *pv = kv_map_val_at(patch, i);
    if (tmap && kv_map_get(target, k)) continue; /* handled above */
    if (pv->kind == KV_NULL) continue;
    kv_map_set(r, kv_ref(k), kube_merge_patch(NULL, pv));
  }
  return r;
}
