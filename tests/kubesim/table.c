/*
 * tests/kubesim/table.c: the meta.k8s.io/v1 Table representation that
 * `kubectl get` asks for: the column definitions and cells of the
 * apiserver's printers for the built-in kinds (pkg/printers/internalversion),
 * the default Name/Age table and additionalPrinterColumns of custom
 * resources (with the small JSONPath subset those columns use), and the
 * row objects (PartialObjectMetadata by default, includeObject=Object|None).
 */
#include "kubesim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a JSONPath subset: .a.b, ['a'], [N], [*], [?(@.k=="v")] --------------------- */

static void jp_collect(const kv *cur, const char *p, kv *out);

static const char *jp_field_end(const char *p) {
  while (*p && *p != '.' && *p != '[')
    p++;
  return p;
}

static void jp_collect(const kv *cur, const char *p, kv *out) {
  if (!cur) return;
  if (!*p) {
    kv_list_push(out, kv_ref((kv *)cur));
    return;
  }
  if (*p == '.') {
    p++;
    if (*p == '[' || !*p) {
      jp_collect(cur, p, out);
      return;
    }
    const char *e = jp_field_end(p);
    if (cur->kind == KV_MAP) jp_collect(kv_map_get_strn(cur, p, (size_t)(e - p)), e, out);
    return;
  }
  if (*p == '[') {
    const char *close = strchr(p, ']');
    if (!close) return;
    const char *in = p + 1;
    size_t n = (size_t)(close - in);
    if (n >= 2 && (in[0] == '\'' || in[0] == '"')) {
      if (cur->kind == KV_MAP) jp_collect(kv_map_get_strn(cur, in + 1, n - 2), close + 1, out);
      return;
    }
    if (cur->kind != KV_LIST) return;
    if (n == 1 && in[0] == '*') {
      for (size_t i = 0; i < kv_len(cur); i++)
        jp_collect(kv_list_at(cur, i), close + 1, out);
      return;
    }
    if (n > 3 && in[0] == '?' && in[1] == '(') {
      /* ?(@.field=="value") or ?(@.field==value) */
      const char *cl = strstr(in, ")]");
      if (!cl) return;
      close = cl + 1;
      const char *f = in + 2;
      if (strncmp(f, "@.", 2) != 0) return;
      f += 2;
      const char *eq = strstr(f, "==");
      if (!eq || eq > cl) return;
      char field[128], val[256];
      size_t fl = (size_t)(eq - f);
      if (fl >= sizeof field) return;
      memcpy(field, f, fl);
      field[fl] = 0;
      const char *v = eq + 2;
      size_t vl = (size_t)(cl - v);
      if (vl >= 2 && (v[0] == '"' || v[0] == '\'')) {
        v++;
        vl -= 2;
      }
      if (vl >= sizeof val) return;
      memcpy(val, v, vl);
      val[vl] = 0;
      for (size_t i = 0; i < kv_len(cur); i++) {
        kv *e = kv_list_at(cur, i);
        kv *fv = ku_path(e, field);
        if (!fv) continue;
        bool match = false;
        if (fv->kind == KV_STRING)
          match = strcmp(kv_str(fv), val) == 0;
        else if (fv->kind == KV_INT)
          match = atoll(val) == fv->u.i && *val;
        else if (fv->kind == KV_BOOL)
          match = strcmp(val, fv->u.b ? "true" : "false") == 0;
        if (match) jp_collect(e, close + 1, out);
      }
      return;
    }
    char *end;
    long ix = strtol(in, &end, 10);
    if (end != close) return;
    if (ix < 0) ix += (long)kv_len(cur);
    if (ix >= 0 && (size_t)ix < kv_len(cur))
      jp_collect(kv_list_at(cur, (size_t)ix), close + 1, out);
    return;
  }
  /* a path without a leading dot */
  const char *e = jp_field_end(p);
  if (cur->kind == KV_MAP) jp_collect(kv_map_get_strn(cur, p, (size_t)(e - p)), e, out);
}

/* Evaluate a JSONPath (with or without {}) against obj: a new list of
 * results. */
kv *ks_jsonpath(const kv *obj, const char *path) {
  kv *out = kv_list_new(2);
  char *p = strdup(path);
  if (!p) kv_oom();
  char *s = p;
  size_t n = strlen(s);
  if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
    s[n - 1] = 0;
    s++;
  }
  if (*s == '$') s++;
  jp_collect(obj, s, out);
  free(p);
  return out;
}

/* ---- cells ----------------------------------------------------------------------------- */

static kv *age_cell(const kv *obj, const char *field) {
  const char *ts = ku_str(ku_get(obj, "metadata"), field ? field : "creationTimestamp");
  int64_t sec;
  char buf[32];
  if (!ts || !ku_parse_rfc3339(ts, &sec)) return kv_cstring("<unknown>");
  ku_human_duration((int64_t)time(NULL) - sec, buf);
  return kv_cstring(buf);
}

static kv *ts_age(const char *ts) {
  int64_t sec;
  char buf[32];
  if (!ts || !ku_parse_rfc3339(ts, &sec)) return kv_cstring("<unknown>");
  ku_human_duration((int64_t)time(NULL) - sec, buf);
  return kv_cstring(buf);
}

static int64_t int_at(const kv *obj, const char *path) {
  int64_t v = 0;
  ku_as_int(ku_path(obj, path), &v);
  return v;
}

static kv *containers_cell(const kv *podspec, bool images) {
  kv *cs = ku_get(podspec, "containers");
  ku_buf b = {0};
  ku_buf_puts(&b, "");
  for (size_t i = 0; cs && cs->kind == KV_LIST && i < kv_len(cs); i++) {
    const char *v = ku_str(kv_list_at(cs, i), images ? "image" : "name");
    ku_buf_printf(&b, "%s%s", i ? "," : "", v ? v : "");
  }
  return kv_string_take(b.p, b.n);
}

static kv *selector_cell(const kv *sel) {
  if (!sel || sel->kind != KV_MAP || kv_len(sel) == 0) return kv_cstring("<none>");
  char *t = ks_label_sel_text(sel);
  kv *r = kv_cstring(*t ? t : "<none>");
  free(t);
  return r;
}

static kv *map_sel_cell(const kv *m) {
  if (!m || m->kind != KV_MAP || kv_len(m) == 0) return kv_cstring("<none>");
  kv *sel = kv_map_new(1);
  kv_map_set_str(sel, "matchLabels", kv_ref((kv *)m));
  kv *r = selector_cell(sel);
  kv_unref(sel);
  return r;
}

typedef struct coldef {
  const char *name, *type, *format;
  int priority;
  const char *desc;
} coldef;

#define NAMECOL                                                                                    \
  {                                                                                                \
    "Name", "string", "name", 0,                                                                   \
        "Name must be unique within a namespace. Is required when creating resources, although "   \
        "some resources may allow a client to request the generation of an appropriate name "      \
        "automatically. Name is primarily intended for creation idempotence and configuration "    \
        "definition. Cannot be updated. More info: "                                               \
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"            \
  }
#define AGECOL                                                                                     \
  {                                                                                                \
    "Age", "string", "", 0,                                                                        \
        "CreationTimestamp is a timestamp representing the server time when this object was "      \
        "created. It is not guaranteed to be set in happens-before order across separate "         \
        "operations. Clients may not set this value. It is represented in RFC3339 form and is in " \
        "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "                  \
        "https://git.k8s.io/community/contributors/devel/sig-architecture/"                        \
        "api-conventions.md#metadata"                                                              \
  }

static const coldef cols_namespace[] = {
    NAMECOL, {"Status", "string", "", 0, "The status of the namespace"}, AGECOL, {0}};
static const coldef cols_configmap[] = {
    NAMECOL, {"Data", "string", "", 0, "Data contains the configuration data."}, AGECOL, {0}};
static const coldef cols_secret[] = {
    NAMECOL,
    {"Type", "string", "", 0, "Used to facilitate programmatic handling of secret data."},
    {"Data", "string", "", 0, "Data contains the secret data."},
    AGECOL,
    {0}};
static const coldef cols_sa[] = {NAMECOL,
                                 {"Secrets", "string", "", 0,
                                  "Secrets is a list of the secrets in the same namespace that "
                                  "pods running using this ServiceAccount are allowed to use."},
                                 AGECOL,
                                 {0}};
static const coldef cols_service[] = {
    NAMECOL,
    {"Type", "string", "", 0, "type determines how the Service is exposed."},
    {"Cluster-IP", "string", "", 0, "clusterIP is the IP address of the service."},
    {"External-IP", "string", "", 0,
     "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
     "traffic for this service."},
    {"Port(s)", "string", "", 0, "The list of ports that are exposed by this service."},
    AGECOL,
    {"Selector", "string", "", 1,
     "Route service traffic to pods with label keys and values matching this selector."},
    {0}};
static const coldef cols_event[] = {
    {"Last Seen", "string", "", 0,
     "The time at which the most recent occurrence of this event was recorded."},
    {"Type", "string", "", 0,
     "Type of this event (Normal, Warning), new types could be added in the future"},
    {"Reason", "string", "", 0,
     "This should be a short, machine understandable string that gives the reason for the "
     "transition into the object's current status."},
    {"Object", "string", "", 0, "The object that this event is about."},
    {"Subobject", "string", "", 1, "The subobject that this event is about."},
    {"Source", "string", "", 1,
     "The component reporting this event. Should be a short machine understandable string."},
    {"Message", "string", "", 0, "A human-readable description of the status of this operation."},
    {"First Seen", "string", "", 1, "The time at which the event was first recorded."},
    {"Count", "string", "", 1, "The number of times this event has occurred."},
    {"Name", "string", "name", 1, "Name of the event."},
    {0}};
static const coldef cols_pod[] = {
    NAMECOL,
    {"Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."},
    {"Status", "string", "", 0, "The aggregate status of the containers in this pod."},
    {"Restarts", "string", "", 0,
     "The number of times the containers in this pod have been restarted and when the last "
     "container in this pod has restarted."},
    AGECOL,
    {"IP", "string", "", 1, "IP address allocated to the pod."},
    {"Node", "string", "", 1, "Name of the Node this pod is scheduled on."},
    {"Nominated Node", "string", "", 1,
     "Name of the Node this pod is nominated to be scheduled on."},
    {"Readiness Gates", "string", "", 1, "The readiness gates of the pod."},
    {0}};
static const coldef cols_deploy[] = {
    NAMECOL,
    {"Ready", "string", "", 0, "Number of the pod with ready state"},
    {"Up-to-date", "string", "", 0,
     "Total number of non-terminated pods targeted by this deployment that have the desired "
     "template spec."},
    {"Available", "string", "", 0,
     "Total number of available pods (ready for at least minReadySeconds) targeted by this "
     "deployment."},
    AGECOL,
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images referenced by each container in the template."},
    {"Selector", "string", "", 1,
     "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the "
     "ones affected by this deployment."},
    {0}};
static const coldef cols_sts[] = {
    NAMECOL,
    {"Ready", "string", "", 0, "Number of the pod with ready state"},
    AGECOL,
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images referenced by each container in the template."},
    {0}};
static const coldef cols_ds[] = {
    NAMECOL,
    {"Desired", "integer", "", 0,
     "The total number of nodes that should be running the daemon pod (including nodes correctly "
     "running the daemon pod)."},
    {"Current", "integer", "", 0,
     "The number of nodes that are running at least 1 daemon pod and are supposed to run the "
     "daemon pod."},
    {"Ready", "integer", "", 0,
     "numberReady is the number of nodes that should be running the daemon pod and have one or "
     "more of the daemon pod running with a Ready Condition."},
    {"Up-to-date", "integer", "", 0,
     "The total number of nodes that are running updated daemon pod"},
    {"Available", "integer", "", 0,
     "The number of nodes that should be running the daemon pod and have one or more of the daemon "
     "pod running and available (ready for at least spec.minReadySeconds)"},
    {"Node Selector", "string", "", 0,
     "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which "
     "must match a node's labels for the pod to be scheduled on that node."},
    AGECOL,
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images referenced by each container in the template."},
    {"Selector", "string", "", 1, "A label query over pods that are managed by the daemon set."},
    {0}};
static const coldef cols_rs[] = {
    NAMECOL,
    {"Desired", "integer", "", 0, "Replicas is the number of desired replicas."},
    {"Current", "integer", "", 0, "Replicas is the most recently observed number of replicas."},
    {"Ready", "integer", "", 0, "The number of ready replicas for this replica set."},
    AGECOL,
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images referenced by each container in the template."},
    {"Selector", "string", "", 1,
     "Selector is a label query over pods that should match the replica count."},
    {0}};
static const coldef cols_job[] = {
    NAMECOL,
    {"Status", "string", "", 0, "Status of the job."},
    {"Completions", "string", "", 0,
     "The desired number of successfully finished pods the job should be run with."},
    {"Duration", "string", "", 0, "Time required to complete the job."},
    AGECOL,
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images referenced by each container in the template."},
    {"Selector", "string", "", 1, "A label query over pods that should match the pod count."},
    {0}};
static const coldef cols_crd[] = {
    NAMECOL,
    {"Created At", "date", "", 0,
     "CreationTimestamp is a timestamp representing the server time when this object was created."},
    {0}};

static const coldef *builtin_cols(const char *printer) {
  if (!printer) return NULL;
  if (!strcmp(printer, "namespace")) return cols_namespace;
  if (!strcmp(printer, "configmap")) return cols_configmap;
  if (!strcmp(printer, "secret")) return cols_secret;
  if (!strcmp(printer, "serviceaccount")) return cols_sa;
  if (!strcmp(printer, "service")) return cols_service;
  if (!strcmp(printer, "event")) return cols_event;
  if (!strcmp(printer, "pod")) return cols_pod;
  if (!strcmp(printer, "deployment")) return cols_deploy;
  if (!strcmp(printer, "statefulset")) return cols_sts;
  if (!strcmp(printer, "daemonset")) return cols_ds;
  if (!strcmp(printer, "replicaset")) return cols_rs;
  if (!strcmp(printer, "job")) return cols_job;
  if (!strcmp(printer, "crd")) return cols_crd;
  return NULL;
}

static kv *coldef_value(const char *name, const char *type, const char *format, int64_t prio,
                        const char *desc) {
  kv *c = kv_map_new(5);
  kv_map_set_str(c, "name", kv_cstring(name));
  kv_map_set_str(c, "type", kv_cstring(type));
  kv_map_set_str(c, "format", kv_cstring(format ? format : ""));
  kv_map_set_str(c, "description", kv_cstring(desc ? desc : ""));
  kv_map_set_str(c, "priority", kv_int(prio));
  return c;
}

static kv *ports_cell(const kv *spec) {
  kv *ports = ku_get(spec, "ports");
  if (!ports || ports->kind != KV_LIST || kv_len(ports) == 0) return kv_cstring("<none>");
  ku_buf b = {0};
  for (size_t i = 0; i < kv_len(ports); i++) {
    kv *p = kv_list_at(ports, i);
    int64_t port = int_at(p, "port"), np = int_at(p, "nodePort");
    const char *proto = ku_str(p, "protocol");
    if (i) ku_buf_puts(&b, ",");
    if (np)
      ku_buf_printf(&b, "%lld:%lld/%s", (long long)port, (long long)np, proto ? proto : "TCP");
    else
      ku_buf_printf(&b, "%lld/%s", (long long)port, proto ? proto : "TCP");
  }
  return kv_string_take(b.p, b.n);
}

static kv *join_strings(const kv *l, const char *none) {
  if (!l || l->kind != KV_LIST || kv_len(l) == 0) return kv_cstring(none);
  ku_buf b = {0};
  for (size_t i = 0; i < kv_len(l); i++)
    if (kv_list_at(l, i)->kind == KV_STRING)
      ku_buf_printf(&b, "%s%s", b.n ? "," : "", kv_str(kv_list_at(l, i)));
  if (!b.p) return kv_cstring(none);
  return kv_string_take(b.p, b.n);
}

static bool cond_true(const kv *obj, const char *type) {
  kv *cs = ku_path(obj, "status.conditions");
  for (size_t i = 0; cs && cs->kind == KV_LIST && i < kv_len(cs); i++) {
    kv *c = kv_list_at(cs, i);
    const char *t = ku_str(c, "type"), *st = ku_str(c, "status");
    if (t && st && strcmp(t, type) == 0 && strcmp(st, "True") == 0) return true;
  }
  return false;
}

static kv *builtin_cells(const char *printer, const kv *o) {
  kv *r = kv_list_new(8);
  const char *name = ku_str(ku_get(o, "metadata"), "name");
  kv *spec = ku_get(o, "spec");
  if (strcmp(printer, "event") != 0) kv_list_push(r, kv_cstring(name ? name : ""));
  if (!strcmp(printer, "namespace")) {
    const char *ph = ku_str(ku_get(o, "status"), "phase");
    kv_list_push(r, kv_cstring(ph ? ph : ""));
    kv_list_push(r, age_cell(o, NULL));
  } else if (!strcmp(printer, "configmap")) {
    int64_t n =
        (int64_t)(kv_len(ku_get(o, "data") && ku_get(o, "data")->kind == KV_MAP ? ku_get(o, "data")
                                                                                : kv_null()) +
                  (ku_get(o, "binaryData") && ku_get(o, "binaryData")->kind == KV_MAP
                       ? kv_len(ku_get(o, "binaryData"))
                       : 0));
    kv_list_push(r, kv_int(n));
    kv_list_push(r, age_cell(o, NULL));
  } else if (!strcmp(printer, "secret")) {
    const char *ty = ku_str(o, "type");
    kv *d = ku_get(o, "data");
    kv_list_push(r, kv_cstring(ty ? ty : ""));
    kv_list_push(r, kv_int(d && d->kind == KV_MAP ? (int64_t)kv_len(d) : 0));
    kv_list_push(r, age_cell(o, NULL));
  } else if (!strcmp(printer, "serviceaccount")) {
    kv *sec = ku_get(o, "secrets");
    kv_list_push(r, kv_int(sec && sec->kind == KV_LIST ? (int64_t)kv_len(sec) : 0));
    kv_list_push(r, age_cell(o, NULL));
  } else if (!strcmp(printer, "service")) {
    const char *ty = ku_str(spec, "type");
    const char *ip = ku_str(spec, "clusterIP");
    kv_list_push(r, kv_cstring(ty ? ty : "ClusterIP"));
    kv_list_push(r, kv_cstring(ip && *ip ? ip : "<none>"));
    kv *ext = ku_get(spec, "externalIPs");
    kv *lb = ku_path(o, "status.loadBalancer.ingress");
    if (ty && strcmp(ty, "ExternalName") == 0) {
      const char *en = ku_str(spec, "externalName");
      kv_list_push(r, kv_cstring(en ? en : "<none>"));
    } else if (ty && strcmp(ty, "LoadBalancer") == 0 && (!lb || kv_len(lb) == 0) &&
               (!ext || kv_len(ext) == 0)) {
      kv_list_push(r, kv_cstring("<pending>"));
    } else {
      kv_list_push(r, join_strings(ext, "<none>"));
    }
    kv_list_push(r, ports_cell(spec));
    kv_list_push(r, age_cell(o, NULL));
    kv_list_push(r, map_sel_cell(ku_get(spec, "selector")));
  } else if (!strcmp(printer, "event")) {
    const char *last = ku_str(o, "lastTimestamp");
    const char *first = ku_str(o, "firstTimestamp");
    const char *et = ku_str(o, "eventTime");
    if (!last) last = ku_str(ku_path(o, "series"), "lastObservedTime");
    if (!last) last = et;
    if (!first) first = et;
    kv_list_push(r, last ? ts_age(last) : kv_cstring("<unknown>"));
    const char *ty = ku_str(o, "type"), *reason = ku_str(o, "reason");
    kv_list_push(r, kv_cstring(ty ? ty : ""));
    kv_list_push(r, kv_cstring(reason ? reason : ""));
    kv *io = ku_get(o, "involvedObject");
    char *k = strdup(ku_str(io, "kind") ? ku_str(io, "kind") : "");
    if (!k) kv_oom();
    for (char *p = k; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    kv_list_push(r, ku_kvfmt("%s/%s", k, ku_str(io, "name") ? ku_str(io, "name") : ""));
    free(k);
    const char *fp = ku_str(io, "fieldPath");
    kv_list_push(r, kv_cstring(fp ? fp : ""));
    const char *comp = ku_str(ku_get(o, "source"), "component");
    const char *host = ku_str(ku_get(o, "source"), "host");
    if (!comp) comp = ku_str(o, "reportingComponent");
    if (comp && host && *host)
      kv_list_push(r, ku_kvfmt("%s, %s", comp, host));
    else
      kv_list_push(r, kv_cstring(comp ? comp : ""));
    const char *msg = ku_str(o, "message");
    kv_list_push(r, kv_cstring(msg ? msg : ""));
    kv_list_push(r, first ? ts_age(first) : kv_cstring("<unknown>"));
    int64_t cnt = int_at(o, "count");
    kv_list_push(r, kv_int(cnt ? cnt : 1));
    kv_list_push(r, kv_cstring(name ? name : ""));
  } else if (!strcmp(printer, "pod")) {
    kv *cs = ku_get(spec, "containers");
    kv *st = ku_path(o, "status.containerStatuses");
    int64_t ready = 0, restarts = 0;
    for (size_t i = 0; st && st->kind == KV_LIST && i < kv_len(st); i++) {
      kv *x = ku_get(kv_list_at(st, i), "ready");
      if (x && x->kind == KV_BOOL && x->u.b) ready++;
      restarts += int_at(kv_list_at(st, i), "restartCount");
    }
    kv_list_push(
        r, ku_kvfmt("%lld/%zu", (long long)ready, cs && cs->kind == KV_LIST ? kv_len(cs) : 0));
    const char *reason = ku_str(ku_get(o, "status"), "reason");
    const char *phase = ku_str(ku_get(o, "status"), "phase");
    if (ku_get(ku_get(o, "metadata"), "deletionTimestamp")) reason = "Terminating";
    kv_list_push(r, kv_cstring(reason ? reason : phase ? phase : "Pending"));
    kv_list_push(r, kv_int(restarts));
    kv_list_push(r, age_cell(o, NULL));
    const char *ip = ku_str(ku_get(o, "status"), "podIP");
    const char *node = ku_str(spec, "nodeName");
    const char *nn = ku_str(ku_get(o, "status"), "nominatedNodeName");
    kv_list_push(r, kv_cstring(ip ? ip : "<none>"));
    kv_list_push(r, kv_cstring(node ? node : "<none>"));
    kv_list_push(r, kv_cstring(nn ? nn : "<none>"));
    kv_list_push(r, kv_cstring("<none>"));
  } else if (!strcmp(printer, "deployment") || !strcmp(printer, "statefulset")) {
    int64_t want = int_at(o, "spec.replicas"), ready = int_at(o, "status.readyReplicas");
    kv_list_push(r, ku_kvfmt("%lld/%lld", (long long)ready, (long long)want));
    if (!strcmp(printer, "deployment")) {
      kv_list_push(r, kv_int(int_at(o, "status.updatedReplicas")));
      kv_list_push(r, kv_int(int_at(o, "status.availableReplicas")));
    }
    kv_list_push(r, age_cell(o, NULL));
    kv *ps = ku_path(o, "spec.template.spec");
    kv_list_push(r, containers_cell(ps, false));
    kv_list_push(r, containers_cell(ps, true));
    if (!strcmp(printer, "deployment")) kv_list_push(r, selector_cell(ku_get(spec, "selector")));
  } else if (!strcmp(printer, "daemonset")) {
    kv_list_push(r, kv_int(int_at(o, "status.desiredNumberScheduled")));
    kv_list_push(r, kv_int(int_at(o, "status.currentNumberScheduled")));
    kv_list_push(r, kv_int(int_at(o, "status.numberReady")));
    kv_list_push(r, kv_int(int_at(o, "status.updatedNumberScheduled")));
    kv_list_push(r, kv_int(int_at(o, "status.numberAvailable")));
    kv_list_push(r, map_sel_cell(ku_path(o, "spec.template.spec.nodeSelector")));
    kv_list_push(r, age_cell(o, NULL));
    kv *ps = ku_path(o, "spec.template.spec");
    kv_list_push(r, containers_cell(ps, false));
    kv_list_push(r, containers_cell(ps, true));
    kv_list_push(r, selector_cell(ku_get(spec, "selector")));
  } else if (!strcmp(printer, "replicaset")) {
    kv_list_push(r, kv_int(int_at(o, "spec.replicas")));
    kv_list_push(r, kv_int(int_at(o, "status.replicas")));
    kv_list_push(r, kv_int(int_at(o, "status.readyReplicas")));
    kv_list_push(r, age_cell(o, NULL));
    kv *ps = ku_path(o, "spec.template.spec");
    kv_list_push(r, containers_cell(ps, false));
    kv_list_push(r, containers_cell(ps, true));
    kv_list_push(r, selector_cell(ku_get(spec, "selector")));
  } else if (!strcmp(printer, "job")) {
    const char *status = "Running";
    kv *susp = ku_get(spec, "suspend");
    if (cond_true(o, "Complete"))
      status = "Complete";
    else if (cond_true(o, "Failed"))
      status = "Failed";
    else if (ku_get(ku_get(o, "metadata"), "deletionTimestamp"))
      status = "Terminating";
    else if (cond_true(o, "FailureTarget"))
      status = "FailureTarget";
    else if (cond_true(o, "SuccessCriteriaMet"))
      status = "SuccessCriteriaMet";
    else if (susp && susp->kind == KV_BOOL && susp->u.b)
      status = "Suspended";
    kv_list_push(r, kv_cstring(status));
    int64_t comp = 1;
    kv *cv = ku_get(spec, "completions");
    if (cv) ku_as_int(cv, &comp);
    if (cv || !ku_get(spec, "parallelism"))
      kv_list_push(
          r, ku_kvfmt("%lld/%lld", (long long)int_at(o, "status.succeeded"), (long long)comp));
    else
      kv_list_push(r, ku_kvfmt("%lld/1 of %lld", (long long)int_at(o, "status.succeeded"),
                               (long long)int_at(o, "spec.parallelism")));
    const char *st = ku_str(ku_get(o, "status"), "startTime");
    const char *ct = ku_str(ku_get(o, "status"), "completionTime");
    int64_t a, b;
    char buf[32] = "";
    if (st && ku_parse_rfc3339(st, &a)) {
      if (!(ct && ku_parse_rfc3339(ct, &b))) b = (int64_t)time(NULL);
      ku_human_duration(b - a, buf);
    }
    kv_list_push(r, kv_cstring(buf));
    kv_list_push(r, age_cell(o, NULL));
    kv *ps = ku_path(o, "spec.template.spec");
    kv_list_push(r, containers_cell(ps, false));
    kv_list_push(r, containers_cell(ps, true));
    kv_list_push(r, selector_cell(ku_get(spec, "selector")));
  } else if (!strcmp(printer, "crd")) {
    const char *ts = ku_str(ku_get(o, "metadata"), "creationTimestamp");
    kv_list_push(r, kv_cstring(ts ? ts : ""));
  }
  return r;
}

/* A CRD column's cell: the first JSONPath result, typed as the column. */
static kv *crd_cell(const kv *obj, const kv *col) {
  const char *jp = ku_str(col, "jsonPath");
  const char *type = ku_str(col, "type");
  if (!jp) return kv_null();
  kv *res = ks_jsonpath(obj, jp);
  kv *cell = kv_null();
  if (kv_len(res) > 0) {
    kv *v = kv_list_at(res, 0);
    if (type && strcmp(type, "date") == 0 && v->kind == KV_STRING) {
      cell = ts_age(kv_str(v));
    } else if (v->kind == KV_MAP || v->kind == KV_LIST) {
      size_t n;
      char *js = ku_json(v, &n);
      cell = kv_string_take(js, n);
    } else if (type && strcmp(type, "string") == 0 && v->kind != KV_STRING) {
      size_t n;
      char *js = ku_json(v, &n);
      cell = kv_string_take(js, n);
    } else {
      cell = kv_ref(v);
    }
  }
  kv_unref(res);
  return cell;
}

kv *ks_table_of(ks_server *s, const ks_type *t, const char *version, kv *const *objs, size_t n,
                bool headers, const char *include_object) {
  kv *tb = kv_map_new(5);
  kv_map_set_str(tb, "kind", kv_cstring("Table"));
  kv_map_set_str(tb, "apiVersion", kv_cstring("meta.k8s.io/v1"));
  kv *md = kv_map_new(1);
  kv_map_set_str(md, "resourceVersion", ku_kvfmt("%llu", (unsigned long long)s->rv));
  kv_map_set_str(tb, "metadata", md);
  const coldef *bc = builtin_cols(t->printer);
  ks_version *v = NULL;
  for (size_t i = 0; i < t->nversions; i++)
    if (strcmp(t->versions[i].name, version) == 0) v = &t->versions[i];
  kv *cols = v && v->columns && v->columns->kind == KV_LIST ? v->columns : NULL;
  kv *defs = kv_list_new(8);
  if (bc) {
    for (size_t i = 0; bc[i].name; i++)
      kv_list_push(defs,
                   coldef_value(bc[i].name, bc[i].type, bc[i].format, bc[i].priority, bc[i].desc));
  } else {
    kv_list_push(
        defs, coldef_value(
                  "Name", "string", "name", 0,
                  "Name must be unique within a namespace. Is required when creating resources, "
                  "although some resources may allow a client to request the generation of an "
                  "appropriate name automatically. Name is primarily intended for creation "
                  "idempotence and configuration definition. Cannot be updated. More info: "
                  "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"));
    if (cols) {
      for (size_t i = 0; i < kv_len(cols); i++) {
        kv *c = kv_list_at(cols, i);
        int64_t prio = 0;
        ku_as_int(ku_get(c, "priority"), &prio);
        const char *nm = ku_str(c, "name"), *ty = ku_str(c, "type"), *fmt = ku_str(c, "format"),
                   *desc = ku_str(c, "description");
        kv_list_push(defs, coldef_value(nm ? nm : "", ty ? ty : "string", fmt, prio, desc));
      }
    } else {
      kv_list_push(
          defs,
          coldef_value(
              "Age", "date", "", 0,
              "CreationTimestamp is a timestamp representing the server time when this object was "
              "created. It is not guaranteed to be set in happens-before order across separate "
              "operations. Clients may not set this value. It is represented in RFC3339 form and "
              "is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
              "https://git.k8s.io/community/contributors/devel/sig-architecture/"
              "api-conventions.md#metadata"));
    }
  }
  if (headers)
    kv_map_set_str(tb, "columnDefinitions", defs);
  else {
    kv_map_set_str(tb, "columnDefinitions", kv_list_new(0));
    kv_unref(defs);
  }
  kv *rows = kv_list_new(n);
  for (size_t i = 0; i < n; i++) {
    const kv *o = objs[i];
    kv *row = kv_map_new(2);
    kv *cells;
    if (bc) {
      cells = builtin_cells(t->printer, o);
    } else {
      cells = kv_list_new(4);
      const char *name = ku_str(ku_get(o, "metadata"), "name");
      kv_list_push(cells, kv_cstring(name ? name : ""));
      if (cols) {
        for (size_t k = 0; k < kv_len(cols); k++)
          kv_list_push(cells, crd_cell(o, kv_list_at(cols, k)));
      } else {
        kv_list_push(cells, age_cell(o, NULL));
      }
    }
    kv_map_set_str(row, "cells", cells);
    if (!include_object || strcmp(include_object, "Metadata") == 0) {
      kv *p = kv_map_new(3);
      kv_map_set_str(p, "kind", kv_cstring("PartialObjectMetadata"));
      kv_map_set_str(p, "apiVersion", kv_cstring("meta.k8s.io/v1"));
      kv_map_set_str(p, "metadata", kv_ref(ku_get(o, "metadata")));
      kv_map_set_str(row, "object", p);
    } else if (strcmp(include_object, "Object") == 0) {
      kv_map_set_str(row, "object", kv_ref((kv *)o));
    }
    kv_list_push(rows, row);
  }
  kv_map_set_str(tb, "rows", rows);
  return tb;
}
