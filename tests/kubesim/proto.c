/*
 * tests/kubesim/proto.c: decoding of the Kubernetes protobuf request bodies
 * that kubectl's typed clients send (`kubectl create namespace|configmap|
 * secret|serviceaccount|deployment|service|job`): the "k8s\0" envelope
 * (runtime.Unknown), then the object message, table-driven from the
 * field numbers of k8s.io/api's generated.proto, into the same JSON-shaped
 * value a JSON body would give.  Only the messages below are known; any
 * other field or kind is refused so that nothing is silently lost.
 */
#include "kubesim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum ftype {
  T_STR,
  T_BYTES,
  T_INT,
  T_BOOL,
  T_MSG,
  T_MAPSS,
  T_MAPSB,
  T_MAPSQ,
  T_TIME,
  T_QTY,
  T_INTSTR
};
enum { F_REP = 1, F_KEEP = 2 /* keep zero values (pointer fields) */ };

typedef struct msgdef msgdef;
typedef struct fielddef {
  int num;
  const char *json;
  int type;
  const msgdef *sub;
  int flags;
} fielddef;
struct msgdef {
  const char *name;
  const fielddef *f;
};

#define END                                                                                        \
  { 0, NULL, 0, NULL, 0 }

static const fielddef f_empty[] = {END};
static const msgdef m_empty = {"an empty message", f_empty};

static const fielddef f_ownerref[] = {{1, "kind", T_STR, NULL, 0},
                                      {3, "name", T_STR, NULL, 0},
                                      {4, "uid", T_STR, NULL, 0},
                                      {5, "apiVersion", T_STR, NULL, 0},
                                      {6, "controller", T_BOOL, NULL, F_KEEP},
                                      {7, "blockOwnerDeletion", T_BOOL, NULL, F_KEEP},
                                      END};
static const msgdef m_ownerref = {"OwnerReference", f_ownerref};
static const fielddef f_meta[] = {{1, "name", T_STR, NULL, 0},
                                  {2, "generateName", T_STR, NULL, 0},
                                  {3, "namespace", T_STR, NULL, 0},
                                  {4, "selfLink", T_STR, NULL, 0},
                                  {5, "uid", T_STR, NULL, 0},
                                  {6, "resourceVersion", T_STR, NULL, 0},
                                  {7, "generation", T_INT, NULL, 0},
                                  {8, "creationTimestamp", T_TIME, NULL, 0},
                                  {9, "deletionTimestamp", T_TIME, NULL, 0},
                                  {10, "deletionGracePeriodSeconds", T_INT, NULL, F_KEEP},
                                  {11, "labels", T_MAPSS, NULL, 0},
                                  {12, "annotations", T_MAPSS, NULL, 0},
                                  {13, "ownerReferences", T_MSG, &m_ownerref, F_REP},
                                  {14, "finalizers", T_STR, NULL, F_REP},
                                  END};
static const msgdef m_meta = {"ObjectMeta", f_meta};

static const fielddef f_lsreq[] = {{1, "key", T_STR, NULL, 0},
                                   {2, "operator", T_STR, NULL, 0},
                                   {3, "values", T_STR, NULL, F_REP},
                                   END};
static const msgdef m_lsreq = {"LabelSelectorRequirement", f_lsreq};
static const fielddef f_lsel[] = {
    {1, "matchLabels", T_MAPSS, NULL, 0}, {2, "matchExpressions", T_MSG, &m_lsreq, F_REP}, END};
static const msgdef m_lsel = {"LabelSelector", f_lsel};

static const fielddef f_cport[] = {
    {1, "name", T_STR, NULL, 0},          {2, "hostPort", T_INT, NULL, 0},
    {3, "containerPort", T_INT, NULL, 0}, {4, "protocol", T_STR, NULL, 0},
    {5, "hostIP", T_STR, NULL, 0},        END};
static const msgdef m_cport = {"ContainerPort", f_cport};
static const fielddef f_env[] = {{1, "name", T_STR, NULL, 0}, {2, "value", T_STR, NULL, 0}, END};
static const msgdef m_env = {"EnvVar", f_env};
static const fielddef f_res[] = {
    {1, "limits", T_MAPSQ, NULL, 0}, {2, "requests", T_MAPSQ, NULL, 0}, END};
static const msgdef m_res = {"ResourceRequirements", f_res};
static const fielddef f_container[] = {{1, "name", T_STR, NULL, 0},
                                       {2, "image", T_STR, NULL, 0},
                                       {3, "command", T_STR, NULL, F_REP},
                                       {4, "args", T_STR, NULL, F_REP},
                                       {5, "workingDir", T_STR, NULL, 0},
                                       {6, "ports", T_MSG, &m_cport, F_REP},
                                       {7, "env", T_MSG, &m_env, F_REP},
                                       {8, "resources", T_MSG, &m_res, 0},
                                       {13, "terminationMessagePath", T_STR, NULL, 0},
                                       {14, "imagePullPolicy", T_STR, NULL, 0},
                                       {16, "stdin", T_BOOL, NULL, 0},
                                       {17, "stdinOnce", T_BOOL, NULL, 0},
                                       {18, "tty", T_BOOL, NULL, 0},
                                       {20, "terminationMessagePolicy", T_STR, NULL, 0},
                                       END};
static const msgdef m_container = {"Container", f_container};
static const fielddef f_podspec[] = {{2, "containers", T_MSG, &m_container, F_REP},
                                     {3, "restartPolicy", T_STR, NULL, 0},
                                     {4, "terminationGracePeriodSeconds", T_INT, NULL, F_KEEP},
                                     {5, "activeDeadlineSeconds", T_INT, NULL, F_KEEP},
                                     {6, "dnsPolicy", T_STR, NULL, 0},
                                     {7, "nodeSelector", T_MAPSS, NULL, 0},
                                     {8, "serviceAccountName", T_STR, NULL, 0},
                                     {9, "serviceAccount", T_STR, NULL, 0},
                                     {10, "nodeName", T_STR, NULL, 0},
                                     {11, "hostNetwork", T_BOOL, NULL, 0},
                                     {14, "securityContext", T_MSG, &m_empty, 0},
                                     {19, "schedulerName", T_STR, NULL, 0},
                                     {20, "initContainers", T_MSG, &m_container, F_REP},
                                     END};
static const msgdef m_podspec = {"PodSpec", f_podspec};
static const fielddef f_template[] = {
    {1, "metadata", T_MSG, &m_meta, 0}, {2, "spec", T_MSG, &m_podspec, 0}, END};
static const msgdef m_template = {"PodTemplateSpec", f_template};

static const fielddef f_nsspec[] = {{1, "finalizers", T_STR, NULL, F_REP}, END};
static const msgdef m_nsspec = {"NamespaceSpec", f_nsspec};
static const fielddef f_nsstatus[] = {{1, "phase", T_STR, NULL, 0}, END};
static const msgdef m_nsstatus = {"NamespaceStatus", f_nsstatus};
static const fielddef f_namespace[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                       {2, "spec", T_MSG, &m_nsspec, 0},
                                       {3, "status", T_MSG, &m_nsstatus, 0},
                                       END};

static const fielddef f_configmap[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                       {2, "data", T_MAPSS, NULL, 0},
                                       {3, "binaryData", T_MAPSB, NULL, 0},
                                       {4, "immutable", T_BOOL, NULL, F_KEEP},
                                       END};
static const fielddef f_secret[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                    {2, "data", T_MAPSB, NULL, 0},
                                    {3, "type", T_STR, NULL, 0},
                                    {4, "stringData", T_MAPSS, NULL, 0},
                                    {5, "immutable", T_BOOL, NULL, F_KEEP},
                                    END};
static const fielddef f_objref[] = {
    {1, "kind", T_STR, NULL, 0},       {2, "namespace", T_STR, NULL, 0},
    {3, "name", T_STR, NULL, 0},       {4, "uid", T_STR, NULL, 0},
    {5, "apiVersion", T_STR, NULL, 0}, {6, "resourceVersion", T_STR, NULL, 0},
    {7, "fieldPath", T_STR, NULL, 0},  END};
static const msgdef m_objref = {"ObjectReference", f_objref};
static const fielddef f_localref[] = {{1, "name", T_STR, NULL, 0}, END};
static const msgdef m_localref = {"LocalObjectReference", f_localref};
static const fielddef f_sa[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                {2, "secrets", T_MSG, &m_objref, F_REP},
                                {3, "imagePullSecrets", T_MSG, &m_localref, F_REP},
                                {4, "automountServiceAccountToken", T_BOOL, NULL, F_KEEP},
                                END};

static const fielddef f_rollupd[] = {
    {1, "maxUnavailable", T_INTSTR, NULL, 0}, {2, "maxSurge", T_INTSTR, NULL, 0}, END};
static const msgdef m_rollupd = {"RollingUpdateDeployment", f_rollupd};
static const fielddef f_dstrategy[] = {
    {1, "type", T_STR, NULL, 0}, {2, "rollingUpdate", T_MSG, &m_rollupd, 0}, END};
static const msgdef m_dstrategy = {"DeploymentStrategy", f_dstrategy};
static const fielddef f_dspec[] = {{1, "replicas", T_INT, NULL, F_KEEP},
                                   {2, "selector", T_MSG, &m_lsel, 0},
                                   {3, "template", T_MSG, &m_template, 0},
                                   {4, "strategy", T_MSG, &m_dstrategy, 0},
                                   {5, "minReadySeconds", T_INT, NULL, 0},
                                   {6, "revisionHistoryLimit", T_INT, NULL, F_KEEP},
                                   {7, "paused", T_BOOL, NULL, 0},
                                   {9, "progressDeadlineSeconds", T_INT, NULL, F_KEEP},
                                   END};
static const msgdef m_dspec = {"DeploymentSpec", f_dspec};
static const fielddef f_deployment[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                        {2, "spec", T_MSG, &m_dspec, 0},
                                        {3, "status", T_MSG, &m_empty, 0},
                                        END};

static const fielddef f_sport[] = {{1, "name", T_STR, NULL, 0},
                                   {2, "protocol", T_STR, NULL, 0},
                                   {3, "port", T_INT, NULL, 0},
                                   {4, "targetPort", T_INTSTR, NULL, 0},
                                   {5, "nodePort", T_INT, NULL, 0},
                                   {6, "appProtocol", T_STR, NULL, 0},
                                   END};
static const msgdef m_sport = {"ServicePort", f_sport};
static const fielddef f_sspec[] = {{1, "ports", T_MSG, &m_sport, F_REP},
                                   {2, "selector", T_MAPSS, NULL, 0},
                                   {3, "clusterIP", T_STR, NULL, 0},
                                   {4, "type", T_STR, NULL, 0},
                                   {5, "externalIPs", T_STR, NULL, F_REP},
                                   {7, "sessionAffinity", T_STR, NULL, 0},
                                   {8, "loadBalancerIP", T_STR, NULL, 0},
                                   {10, "externalName", T_STR, NULL, 0},
                                   {11, "externalTrafficPolicy", T_STR, NULL, 0},
                                   {18, "clusterIPs", T_STR, NULL, F_REP},
                                   END};
static const msgdef m_sspec = {"ServiceSpec", f_sspec};
static const fielddef f_lbstatus[] = {END};
static const msgdef m_lbstatus = {"LoadBalancerStatus", f_lbstatus};
static const fielddef f_sstatus[] = {{1, "loadBalancer", T_MSG, &m_lbstatus, 0}, END};
static const msgdef m_sstatus = {"ServiceStatus", f_sstatus};
static const fielddef f_service[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                     {2, "spec", T_MSG, &m_sspec, 0},
                                     {3, "status", T_MSG, &m_sstatus, 0},
                                     END};

static const fielddef f_jspec[] = {{1, "parallelism", T_INT, NULL, F_KEEP},
                                   {2, "completions", T_INT, NULL, F_KEEP},
                                   {3, "activeDeadlineSeconds", T_INT, NULL, F_KEEP},
                                   {4, "selector", T_MSG, &m_lsel, 0},
                                   {5, "manualSelector", T_BOOL, NULL, F_KEEP},
                                   {6, "template", T_MSG, &m_template, 0},
                                   {7, "backoffLimit", T_INT, NULL, F_KEEP},
                                   {8, "ttlSecondsAfterFinished", T_INT, NULL, F_KEEP},
                                   {9, "completionMode", T_STR, NULL, 0},
                                   {10, "suspend", T_BOOL, NULL, F_KEEP},
                                   END};
static const msgdef m_jspec = {"JobSpec", f_jspec};
static const fielddef f_job[] = {{1, "metadata", T_MSG, &m_meta, 0},
                                 {2, "spec", T_MSG, &m_jspec, 0},
                                 {3, "status", T_MSG, &m_empty, 0},
                                 END};

static const struct top {
  const char *api_version, *kind;
  msgdef m;
} tops[] = {
    {"v1", "Namespace", {"Namespace", f_namespace}},
    {"v1", "ConfigMap", {"ConfigMap", f_configmap}},
    {"v1", "Secret", {"Secret", f_secret}},
    {"v1", "ServiceAccount", {"ServiceAccount", f_sa}},
    {"v1", "Service", {"Service", f_service}},
    {"apps/v1", "Deployment", {"Deployment", f_deployment}},
    {"batch/v1", "Job", {"Job", f_job}},
};

typedef struct rd {
  const unsigned char *p, *end;
  bool bad;
} rd;

static uint64_t varint(rd *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) {
      r->bad = true;
      return 0;
    }
    unsigned char b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}

/* The next field: number, wire type, and for length-delimited fields the
 * payload. */
static bool next_field(rd *r, int *num, int *wt, const unsigned char **pl, size_t *plen,
                       uint64_t *v) {
  if (r->p >= r->end) return false;
  uint64_t key = varint(r);
  *num = (int)(key >> 3);
  *wt = (int)(key & 7);
  if (*wt == 0) {
    *v = varint(r);
  } else if (*wt == 2) {
    uint64_t n = varint(r);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
      r->bad = true;
      return false;
    }
    *pl = r->p;
    *plen = (size_t)n;
    r->p += n;
  } else if (*wt == 1) {
    if (r->end - r->p < 8)
      r->bad = true;
    else
      r->p += 8;
  } else if (*wt == 5) {
    if (r->end - r->p < 4)
      r->bad = true;
    else
      r->p += 4;
  } else {
    r->bad = true;
  }
  return !r->bad;
}

static kv *decode_msg(const msgdef *m, const unsigned char *p, size_t n, char *why, size_t wl);

/* map entry: key = 1 (string), value = 2 */
static bool map_entry(const unsigned char *p, size_t n, int vtype, kv *map, char *why, size_t wl) {
  rd r = {p, p + n, false};
  int num, wt;
  const unsigned char *pl = NULL;
  size_t plen = 0;
  uint64_t v;
  kv *key = NULL, *val = NULL;
  while (next_field(&r, &num, &wt, &pl, &plen, &v)) {
    if (wt != 2) continue;
    if (num == 1) {
      kv_unref(key);
      key = kv_string((const char *)pl, plen);
    } else if (num == 2) {
      kv_unref(val);
      if (vtype == T_MAPSS) {
        val = kv_string((const char *)pl, plen);
      } else if (vtype == T_MAPSB) {
        char *b = ku_b64(pl, plen);
        val = kv_string_take(b, strlen(b));
      } else {
        /* Quantity { string string = 1 } */
        rd q = {pl, pl + plen, false};
        int qn, qw;
        const unsigned char *qp = NULL;
        size_t ql = 0;
        uint64_t qv;
        val = kv_cstring("0");
        while (next_field(&q, &qn, &qw, &qp, &ql, &qv))
          if (qn == 1 && qw == 2) {
            kv_unref(val);
            val = kv_string((const char *)qp, ql);
          }
      }
    }
  }
  if (r.bad || !key) {
    kv_unref(key);
    kv_unref(val);
    snprintf(why, wl, "malformed map entry");
    return false;
  }
  kv_map_set(map, key, val ? val : kv_cstring(""));
  return true;
}

static kv *rfc3339(int64_t sec) {
  time_t t = (time_t)sec;
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return kv_cstring(buf);
}

static kv *decode_msg(const msgdef *m, const unsigned char *p, size_t n, char *why, size_t wl) {
  rd r = {p, p + n, false};
  kv *obj = kv_map_new(8);
  int num, wt;
  const unsigned char *pl = NULL;
  size_t plen = 0;
  uint64_t v = 0;
  while (next_field(&r, &num, &wt, &pl, &plen, &v)) {
    const fielddef *f = NULL;
    for (size_t i = 0; m->f[i].json; i++)
      if (m->f[i].num == num) f = &m->f[i];
    if (!f && ((wt == 2 && plen == 0) || (wt == 0 && v == 0)))
      continue; /* a zero value says nothing */
    if (!f) {
      snprintf(why, wl, "field %d of %s is not known to kubesim's protobuf decoder", num, m->name);
      kv_unref(obj);
      return NULL;
    }
    kv *val = NULL;
    switch (f->type) {
    case T_STR:
      if (wt != 2) goto bad;
      if (plen == 0 && !(f->flags & (F_KEEP | F_REP))) continue;
      val = kv_string((const char *)pl, plen);
      break;
    case T_BYTES: {
      if (wt != 2) goto bad;
      char *b = ku_b64(pl, plen);
      val = kv_string_take(b, strlen(b));
      break;
    }
    case T_INT:
      if (wt != 0) goto bad;
      if (v == 0 && !(f->flags & F_KEEP)) continue;
      val = kv_int((int64_t)v);
      break;
    case T_BOOL:
      if (wt != 0) goto bad;
      if (v == 0 && !(f->flags & F_KEEP)) continue;
      val = kv_bool(v != 0);
      break;
    case T_TIME: {
      if (wt != 2) goto bad;
      rd t = {pl, pl + plen, false};
      int tn, tw;
      const unsigned char *tp = NULL;
      size_t tl = 0;
      uint64_t tv = 0;
      int64_t sec = 0;
      while (next_field(&t, &tn, &tw, &tp, &tl, &tv))
        if (tn == 1 && tw == 0) sec = (int64_t)tv;
      if (sec == 0) continue;
      val = rfc3339(sec);
      break;
    }
    case T_INTSTR: {
      if (wt != 2) goto bad;
      rd t = {pl, pl + plen, false};
      int tn, tw;
      const unsigned char *tp = NULL;
      size_t tl = 0;
      uint64_t tv = 0;
      int64_t type = 0, iv = 0;
      kv *sv = NULL;
      while (next_field(&t, &tn, &tw, &tp, &tl, &tv)) {
        if (tn == 1 && tw == 0) type = (int64_t)tv;
        if (tn == 2 && tw == 0) iv = (int32_t)tv;
        if (tn == 3 && tw == 2) {
          kv_unref(sv);
          sv = kv_string((const char *)tp, tl);
        }
      }
      if (type == 1) {
        val = sv ? sv : kv_cstring("");
      } else {
        kv_unref(sv);
        val = kv_int(iv);
      }
      break;
    }
    case T_MSG:
      if (wt != 2) goto bad;
      val = decode_msg(f->sub, pl, plen, why, wl);
      if (!val) {
        kv_unref(obj);
        return NULL;
      }
      break;
    case T_MAPSS:
    case T_MAPSB:
    case T_MAPSQ: {
      if (wt != 2) goto bad;
      kv *mp = kv_map_get_str(obj, f->json);
      if (!mp) {
        mp = kv_map_new(4);
        kv_map_set_str(obj, f->json, mp);
      }
      if (!map_entry(pl, plen, f->type, mp, why, wl)) {
        kv_unref(obj);
        return NULL;
      }
      continue;
    }
    }
    if (f->flags & F_REP) {
      kv *l = kv_map_get_str(obj, f->json);
      if (!l) {
        l = kv_list_new(2);
        kv_map_set_str(obj, f->json, l);
      }
      kv_list_push(l, val);
    } else {
      kv_map_set_str(obj, f->json, val);
    }
    continue;
  bad:
    snprintf(why, wl, "field %d of %s has wire type %d", num, m->name, wt);
    kv_unref(obj);
    return NULL;
  }
  if (r.bad) {
    snprintf(why, wl, "truncated %s message", m->name);
    kv_unref(obj);
    return NULL;
  }
  return obj;
}

/* Decode a protobuf request body: the object (new reference) or NULL with
 * `why` set. */
kv *ks_proto_decode(const char *body, size_t len, char *why, size_t wl) {
  const unsigned char *p = (const unsigned char *)body;
  if (len < 4 || memcmp(p, "k8s\0", 4) != 0) {
    snprintf(why, wl, "missing the k8s protobuf envelope");
    return NULL;
  }
  rd r = {p + 4, p + len, false};
  int num, wt;
  const unsigned char *pl = NULL;
  size_t plen = 0;
  uint64_t v;
  kv *av = NULL, *kind = NULL;
  const unsigned char *raw = NULL;
  size_t rawlen = 0;
  while (next_field(&r, &num, &wt, &pl, &plen, &v)) {
    if (num == 1 && wt == 2) {
      rd t = {pl, pl + plen, false};
      int tn, tw;
      const unsigned char *tp = NULL;
      size_t tl = 0;
      uint64_t tv;
      while (next_field(&t, &tn, &tw, &tp, &tl, &tv)) {
        if (tn == 1 && tw == 2) {
          kv_unref(av);
          av = kv_string((const char *)tp, tl);
        }
        if (tn == 2 && tw == 2) {
          kv_unref(kind);
          kind = kv_string((const char *)tp, tl);
        }
      }
    } else if (num == 2 && wt == 2) {
      raw = pl;
      rawlen = plen;
    } else if (num == 3 && wt == 2 && plen) {
      snprintf(why, wl, "content encodings are not supported");
      kv_unref(av);
      kv_unref(kind);
      return NULL;
    }
  }
  if (r.bad || !av || !kind) {
    snprintf(why, wl, "malformed protobuf envelope");
    kv_unref(av);
    kv_unref(kind);
    return NULL;
  }
  const struct top *tp = NULL;
  for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++)
    if (!strcmp(tops[i].api_version, kv_str(av)) && !strcmp(tops[i].kind, kv_str(kind)))
      tp = &tops[i];
  if (!tp) {
    snprintf(why, wl, "kubesim cannot decode protobuf %s %s; send JSON", kv_str(av), kv_str(kind));
    kv_unref(av);
    kv_unref(kind);
    return NULL;
  }
  kv *obj = decode_msg(&tp->m, raw ? raw : (const unsigned char *)"", rawlen, why, wl);
  if (!obj) {
    kv_unref(av);
    kv_unref(kind);
    return NULL;
  }
  kv *r2 = kv_map_new(kv_len(obj) + 2);
  kv_map_set_str(r2, "apiVersion", av);
  kv_map_set_str(r2, "kind", kind);
  for (size_t i = 0; i < kv_len(obj); i++)
    kv_map_set(r2, kv_ref(kv_map_key_at(obj, i)), kv_ref(kv_map_val_at(obj, i)));
  kv_unref(obj);
  return r2;
}
