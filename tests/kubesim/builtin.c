/*
 * tests/kubesim/builtin.c: what kube-apiserver's registry strategies do
 * for the built-in kinds on create and update: defaults (namespaces,
 * secrets, services, workloads and their pod templates, jobs), the
 * validation a test meets first (selectors that must match the template,
 * containers with a name and an image, base64 secret data, immutable
 * fields), CRD status (accepted names, Established), and the
 * autoscaling/v1 Scale view of scalable kinds.
 */
#include "kubesim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void replace(kv **slot, kv *nv) {
  kv_unref(*slot);
  *slot = nv;
}

/* Set `key` in the map at `*m` when it is absent. */
static void dflt(kv **m, const char *key, kv *val) {
  if (ku_get(*m, key)) {
    kv_unref(val);
    return;
  }
  replace(m, ku_with(*m, key, val));
}

static kv *invalid1(const ks_type *t, const char *name, const char *field, const char *reason,
                    const char *fmt, const char *arg) {
  char *msg = ku_fmt(fmt, arg);
  kv *d = ks_details(name, t->group, t->kind);
  kv *causes = kv_list_new(1);
  kv *cz = kv_map_new(3);
  kv_map_set_str(cz, "reason", kv_cstring(reason));
  kv_map_set_str(cz, "message", kv_cstring(msg));
  kv_map_set_str(cz, "field", kv_cstring(field));
  kv_list_push(causes, cz);
  kv_map_set_str(d, "causes", causes);
  kv *st;
  if (*t->group)
    st = ks_status(422, "Invalid", d, "%s.%s \"%s\" is invalid: %s: %s", t->kind, t->group, name,
                   field, msg);
  else
    st = ks_status(422, "Invalid", d, "%s \"%s\" is invalid: %s: %s", t->kind, name, field, msg);
  free(msg);
  return st;
}

static kv *container_defaults(const kv *c) {
  kv *r = kv_ref((kv *)c);
  const char *image = ku_str(c, "image");
  if (image) {
    const char *slash = strrchr(image, '/');
    const char *tag = strchr(slash ? slash : image, ':');
    bool latest = !strchr(image, '@') && (!tag || strcmp(tag, ":latest") == 0);
    dflt(&r, "imagePullPolicy", kv_cstring(latest ? "Always" : "IfNotPresent"));
  }
  dflt(&r, "resources", kv_map_new(0));
  dflt(&r, "terminationMessagePath", kv_cstring("/dev/termination-log"));
  dflt(&r, "terminationMessagePolicy", kv_cstring("File"));
  kv *ports = ku_get(r, "ports");
  if (ports && ports->kind == KV_LIST) {
    kv *np = kv_list_new(kv_len(ports));
    for (size_t i = 0; i < kv_len(ports); i++) {
      kv *p = kv_ref(kv_list_at(ports, i));
      if (p->kind == KV_MAP) dflt(&p, "protocol", kv_cstring("TCP"));
      kv_list_push(np, p);
    }
    replace(&r, ku_with(r, "ports", np));
  }
  return r;
}

static kv *podspec_defaults(const kv *ps, const char *restart) {
  kv *r = kv_ref((kv *)ps);
  static const char *const lists[] = {"containers", "initContainers"};
  for (size_t k = 0; k < 2; k++) {
    kv *cs = ku_get(r, lists[k]);
    if (!cs || cs->kind != KV_LIST) continue;
    kv *nc = kv_list_new(kv_len(cs));
    for (size_t i = 0; i < kv_len(cs); i++) {
      kv *c = kv_list_at(cs, i);
      kv_list_push(nc, c->kind == KV_MAP ? container_defaults(c) : kv_ref(c));
    }
    replace(&r, ku_with(r, lists[k], nc));
  }
  dflt(&r, "restartPolicy", kv_cstring(restart));
  dflt(&r, "terminationGracePeriodSeconds", kv_int(30));
  dflt(&r, "dnsPolicy", kv_cstring("ClusterFirst"));
  dflt(&r, "securityContext", kv_map_new(0));
  dflt(&r, "schedulerName", kv_cstring("default-scheduler"));
  return r;
}

static kv *check_podspec(const ks_type *t, const char *name, const kv *ps, const char *prefix) {
  kv *cs = ku_get(ps, "containers");
  char field[256];
  if (!cs || cs->kind != KV_LIST || kv_len(cs) == 0) {
    snprintf(field, sizeof field, "%s.containers", prefix);
    return invalid1(t, name, field, "FieldValueRequired", "Required value%s", "");
  }
  for (size_t i = 0; i < kv_len(cs); i++) {
    kv *c = kv_list_at(cs, i);
    if (!ku_str(c, "name") || !*ku_str(c, "name")) {
      snprintf(field, sizeof field, "%s.containers[%zu].name", prefix, i);
      return invalid1(t, name, field, "FieldValueRequired", "Required value%s", "");
    }
    if (!ku_str(c, "image") || !*ku_str(c, "image")) {
      snprintf(field, sizeof field, "%s.containers[%zu].image", prefix, i);
      return invalid1(t, name, field, "FieldValueRequired", "Required value%s", "");
    }
  }
  return NULL;
}

/* Workloads: selector required and matching the template's labels. */
static kv *check_selector(const ks_type *t, const char *name, const kv *obj) {
  kv *sel = ku_path(obj, "spec.selector");
  if (!sel || sel->kind != KV_MAP)
    return invalid1(t, name, "spec.selector", "FieldValueRequired", "Required value%s", "");
  kv *ml = ku_get(sel, "matchLabels"), *me = ku_get(sel, "matchExpressions");
  if ((!ml || kv_len(ml) == 0) && (!me || kv_len(me) == 0))
    return invalid1(
        t, name, "spec.selector", "FieldValueInvalid",
        "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for %s",
        "deployment");
  kv *err = NULL;
  ks_sel *s = ks_label_sel_from_value(sel, &err);
  kv *tmpl = ku_path(obj, "spec.template");
  bool ok = s && ks_label_sel_match(s, tmpl);
  ks_sel_free(s);
  kv_unref(err);
  if (!ok) {
    kv *labels = ku_path(obj, "spec.template.metadata.labels");
    size_t n;
    char *js = labels ? ku_json(labels, &n) : strdup("null");
    kv *e = invalid1(
        t, name, "spec.template.metadata.labels", "FieldValueInvalid",
        "Invalid value: map[string]string%s: `selector` does not match template `labels`", js);
    free(js);
    return e;
  }
  return NULL;
}

static uint32_t next_ip = 10;

/* A rolling-update strategy map: type defaults to RollingUpdate, and a
 * RollingUpdate strategy gets `ru` (taken) when it has none. */
static kv *strategy_default(const kv *cur, kv *ru) {
  kv *s = cur && cur->kind == KV_MAP ? kv_ref((kv *)cur) : kv_map_new(2);
  dflt(&s, "type", kv_cstring("RollingUpdate"));
  if (strcmp(ku_str(s, "type"), "RollingUpdate") == 0) {
    kv *cr = ku_get(s, "rollingUpdate");
    if (cr && cr->kind == KV_MAP) {
      for (size_t i = 0; i < kv_len(ru); i++)
        if (!ku_get(cr, kv_str(kv_map_key_at(ru, i)))) {
          kv *x = ku_with(cr, kv_str(kv_map_key_at(ru, i)), kv_ref(kv_map_val_at(ru, i)));
          replace(&s, ku_with(s, "rollingUpdate", x));
          cr = ku_get(s, "rollingUpdate");
        }
      kv_unref(ru);
    } else {
      replace(&s, ku_with(s, "rollingUpdate", ru));
    }
  } else {
    kv_unref(ru);
  }
  return s;
}

kv *ks_builtin_prepare(ks_server *s, ks_type *t, kv **obj, const kv *old, bool create) {
  (void)s;
  const char *p = t->plural;
  const char *name = ku_str(ku_get(*obj, "metadata"), "name");
  if (!name) name = "";
  if (t->is_crd) return NULL;
  if (!strcmp(p, "namespaces")) {
    kv *labels = ku_get(ku_get(*obj, "metadata"), "labels");
    kv *nl = ku_with(labels, "kubernetes.io/metadata.name", kv_cstring(name));
    kv *md = ku_with(ku_get(*obj, "metadata"), "labels", nl);
    replace(obj, ku_with(*obj, "metadata", md));
    kv *spec = ku_get(*obj, "spec");
    if (create) {
      kv *f = kv_list_new(1);
      kv_list_push(f, kv_cstring("kubernetes"));
      replace(obj, ku_with(*obj, "spec", ku_with(spec, "finalizers", f)));
      kv *st = kv_map_new(1);
      kv_map_set_str(st, "phase", kv_cstring("Active"));
      replace(obj, ku_with(*obj, "status", st));
    } else if (old && !ku_get(spec, "finalizers") && ku_path(old, "spec.finalizers")) {
      replace(obj, ku_with(*obj, "spec",
                           ku_with(spec, "finalizers", kv_ref(ku_path(old, "spec.finalizers")))));
    }
    return NULL;
  }
  if (!strcmp(p, "secrets")) {
    dflt(obj, "type", kv_cstring("Opaque"));
    kv *data = ku_get(*obj, "data");
    for (size_t i = 0; data && data->kind == KV_MAP && i < kv_len(data); i++) {
      kv *v = kv_map_val_at(data, i);
      size_t n;
      unsigned char *dec = v->kind == KV_STRING ? ku_b64dec(kv_str(v), kv_len(v), &n) : NULL;
      if (!dec)
        return ks_status(400, "BadRequest", NULL,
                         "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 "
                         "data at input byte 0");
      free(dec);
    }
    kv *sd = ku_get(*obj, "stringData");
    if (sd && sd->kind == KV_MAP) {
      kv *nd = ku_map_copy(data);
      for (size_t i = 0; i < kv_len(sd); i++) {
        kv *v = kv_map_val_at(sd, i);
        if (v->kind != KV_STRING) continue;
        char *b = ku_b64(kv_str(v), kv_len(v));
        kv_map_set(nd, kv_ref(kv_map_key_at(sd, i)), kv_string_take(b, strlen(b)));
      }
      replace(obj, ku_with(*obj, "data", nd));
    }
    if (sd) replace(obj, ku_without(*obj, "stringData"));
    if (old) {
      const char *ot = ku_str(old, "type"), *nt = ku_str(*obj, "type");
      if (ot && nt && strcmp(ot, nt) != 0)
        return invalid1(t, name, "type", "FieldValueInvalid",
                        "Invalid value: \"%s\": field is immutable", nt);
    }
    return NULL;
  }
  if (!strcmp(p, "services")) {
    kv *spec = kv_ref(ku_get(*obj, "spec") ? ku_get(*obj, "spec") : kv_map_new(0));
    if (!ku_get(*obj, "spec")) kv_unref(spec), spec = kv_map_new(0);
    dflt(&spec, "type", kv_cstring("ClusterIP"));
    const char *ty = ku_str(spec, "type");
    if (strcmp(ty, "ExternalName") != 0) {
      const char *oip =
          old ? ku_path(old, "spec.clusterIP") && ku_path(old, "spec.clusterIP")->kind == KV_STRING
                    ? kv_str(ku_path(old, "spec.clusterIP"))
                    : NULL
              : NULL;
      const char *ip = ku_str(spec, "clusterIP");
      if (oip && (!ip || !*ip)) {
        replace(&spec, ku_with(spec, "clusterIP", kv_cstring(oip)));
      } else if (oip && ip && strcmp(ip, oip) != 0) {
        kv_unref(spec);
        return invalid1(t, name, "spec.clusterIPs[0]", "FieldValueInvalid",
                        "Invalid value: []string{\"%s\"}: may not change once set", ip);
      } else if (!ip || !*ip) {
        uint32_t n = next_ip++;
        replace(&spec,
                ku_with(spec, "clusterIP", ku_kvfmt("10.96.%u.%u", (n >> 8) & 255, n & 255)));
      }
      ip = ku_str(spec, "clusterIP");
      kv *ips = kv_list_new(1);
      kv_list_push(ips, kv_cstring(ip));
      dflt(&spec, "clusterIPs", ips);
      kv *fam = kv_list_new(1);
      kv_list_push(fam, kv_cstring("IPv4"));
      dflt(&spec, "ipFamilies", fam);
      dflt(&spec, "ipFamilyPolicy", kv_cstring("SingleStack"));
      dflt(&spec, "internalTrafficPolicy", kv_cstring("Cluster"));
      dflt(&spec, "sessionAffinity", kv_cstring("None"));
    }
    kv *ports = ku_get(spec, "ports");
    if (ports && ports->kind == KV_LIST) {
      kv *np = kv_list_new(kv_len(ports));
      for (size_t i = 0; i < kv_len(ports); i++) {
        kv *pp = kv_ref(kv_list_at(ports, i));
        if (pp->kind == KV_MAP) {
          dflt(&pp, "protocol", kv_cstring("TCP"));
          kv *port = ku_get(pp, "port");
          if (port) dflt(&pp, "targetPort", kv_ref(port));
        }
        kv_list_push(np, pp);
      }
      replace(&spec, ku_with(spec, "ports", np));
    }
    replace(obj, ku_with(*obj, "spec", spec));
    if (create && !ku_get(*obj, "status")) {
      kv *st = kv_map_new(1);
      kv_map_set_str(st, "loadBalancer", kv_map_new(0));
      replace(obj, ku_with(*obj, "status", st));
    }
    return NULL;
  }
  bool workload = !strcmp(p, "deployments") || !strcmp(p, "statefulsets") ||
                  !strcmp(p, "daemonsets") || !strcmp(p, "replicasets") || !strcmp(p, "jobs");
  if (workload) {
    kv *spec = ku_get(*obj, "spec");
    if (!spec || spec->kind != KV_MAP)
      return invalid1(t, name, "spec", "FieldValueRequired", "Required value%s", "");
    kv *ns = kv_ref(spec);
    if (!strcmp(p, "jobs")) {
      /* the job controller's selector and labels */
      const char *uid = ku_str(ku_get(*obj, "metadata"), "uid");
      if (old) uid = ku_path(old, "metadata.uid") ? kv_str(ku_path(old, "metadata.uid")) : uid;
      kv *man = ku_get(ns, "manualSelector");
      bool manual = man && man->kind == KV_BOOL && man->u.b;
      if (!manual && uid && !ku_get(ns, "selector")) {
        kv *ml = kv_map_new(1);
        kv_map_set_str(ml, "batch.kubernetes.io/controller-uid", kv_cstring(uid));
        kv *sel = kv_map_new(1);
        kv_map_set_str(sel, "matchLabels", ml);
        replace(&ns, ku_with(ns, "selector", sel));
        kv *tl = ku_path(ns, "template.metadata.labels");
        kv *nl = ku_map_copy(tl);
        kv_map_set_str(nl, "batch.kubernetes.io/controller-uid", kv_cstring(uid));
        kv_map_set_str(nl, "batch.kubernetes.io/job-name", kv_cstring(name));
        kv_map_set_str(nl, "controller-uid", kv_cstring(uid));
        kv_map_set_str(nl, "job-name", kv_cstring(name));
        const char *keys[] = {"template", "metadata", "labels"};
        replace(&ns, ku_set_in(ns, keys, 3, nl));
      }
      dflt(&ns, "parallelism", kv_int(1));
      dflt(&ns, "completions", kv_int(1));
      dflt(&ns, "backoffLimit", kv_int(6));
      dflt(&ns, "completionMode", kv_cstring("NonIndexed"));
      dflt(&ns, "suspend", kv_bool(false));
      dflt(&ns, "podReplacementPolicy", kv_cstring("TerminatingOrFailed"));
      dflt(&ns, "manualSelector", kv_bool(false));
      if (old) {
        /* the pod template of a job is immutable */
        kv *ot = ku_path(old, "spec.template"), *nt = ku_get(ns, "template");
        if (ot && nt && !ku_json_equal(ot, nt)) {
          kv *pt = podspec_defaults(ku_get(nt, "spec"), "Never");
          kv *nt2 = ku_with(nt, "spec", pt);
          bool same = ku_json_equal(ot, nt2);
          kv_unref(nt2);
          if (!same) {
            kv_unref(ns);
            return invalid1(t, name, "spec.template", "FieldValueInvalid",
                            "Invalid value: %s: field is immutable", "core.PodTemplateSpec{...}");
          }
        }
      }
    } else if (!strcmp(p, "deployments")) {
      dflt(&ns, "replicas", kv_int(1));
      kv *ru = kv_map_new(2);
      kv_map_set_str(ru, "maxUnavailable", kv_cstring("25%"));
      kv_map_set_str(ru, "maxSurge", kv_cstring("25%"));
      replace(&ns, ku_with(ns, "strategy", strategy_default(ku_get(ns, "strategy"), ru)));
      dflt(&ns, "revisionHistoryLimit", kv_int(10));
      dflt(&ns, "progressDeadlineSeconds", kv_int(600));
    } else if (!strcmp(p, "statefulsets")) {
      dflt(&ns, "replicas", kv_int(1));
      dflt(&ns, "podManagementPolicy", kv_cstring("OrderedReady"));
      kv *ru = kv_map_new(1);
      kv_map_set_str(ru, "partition", kv_int(0));
      replace(&ns,
              ku_with(ns, "updateStrategy", strategy_default(ku_get(ns, "updateStrategy"), ru)));
      dflt(&ns, "revisionHistoryLimit", kv_int(10));
      kv *pr = kv_map_new(2);
      kv_map_set_str(pr, "whenDeleted", kv_cstring("Retain"));
      kv_map_set_str(pr, "whenScaled", kv_cstring("Retain"));
      dflt(&ns, "persistentVolumeClaimRetentionPolicy", pr);
    } else if (!strcmp(p, "daemonsets")) {
      kv *ru = kv_map_new(2);
      kv_map_set_str(ru, "maxUnavailable", kv_int(1));
      kv_map_set_str(ru, "maxSurge", kv_int(0));
      replace(&ns,
              ku_with(ns, "updateStrategy", strategy_default(ku_get(ns, "updateStrategy"), ru)));
      dflt(&ns, "revisionHistoryLimit", kv_int(10));
    } else if (!strcmp(p, "replicasets")) {
      dflt(&ns, "replicas", kv_int(1));
    }
    kv *tmpl = ku_get(ns, "template");
    if (tmpl && tmpl->kind == KV_MAP) {
      kv *ps = ku_get(tmpl, "spec");
      if (ps && ps->kind == KV_MAP) {
        kv *nps = podspec_defaults(ps, !strcmp(p, "jobs") ? "Never" : "Always");
        kv *nt = ku_with(tmpl, "spec", nps);
        if (!ku_get(nt, "metadata")) replace(&nt, ku_with(nt, "metadata", kv_map_new(0)));
        replace(&ns, ku_with(ns, "template", nt));
      }
    }
    replace(obj, ku_with(*obj, "spec", ns));
    if (create) dflt(obj, "status", kv_map_new(0));
    kv *err = check_selector(t, name, *obj);
    if (!err)
      err = check_podspec(t, name, ku_path(*obj, "spec.template.spec"), "spec.template.spec");
    if (!err && !strcmp(p, "jobs")) {
      const char *rp = ku_str(ku_path(*obj, "spec.template.spec"), "restartPolicy");
      if (rp && strcmp(rp, "Never") != 0 && strcmp(rp, "OnFailure") != 0)
        err = invalid1(t, name, "spec.template.spec.restartPolicy", "FieldValueNotSupported",
                       "Unsupported value: \"%s\": supported values: \"OnFailure\", \"Never\"", rp);
    }
    if (!err && old && strcmp(p, "jobs") != 0) {
      kv *os = ku_path(old, "spec.selector"), *nsel = ku_path(*obj, "spec.selector");
      if (os && nsel && !ku_json_equal(os, nsel))
        err = invalid1(t, name, "spec.selector", "FieldValueInvalid",
                       "Invalid value: %s: field is immutable", "v1.LabelSelector{...}");
    }
    return err;
  }
  if (!strcmp(p, "pods")) {
    kv *spec = ku_get(*obj, "spec");
    if (spec && spec->kind == KV_MAP) {
      replace(obj, ku_with(*obj, "spec", podspec_defaults(spec, "Always")));
      dflt(obj, "status", kv_map_new(0));
      if (create) {
        kv *st = ku_with(ku_get(*obj, "status"), "phase", kv_cstring("Pending"));
        replace(&st, ku_with(st, "qosClass", kv_cstring("BestEffort")));
        replace(obj, ku_with(*obj, "status", st));
      }
    }
    return check_podspec(t, name, ku_get(*obj, "spec"), "spec");
  }
  if (!strcmp(p, "serviceaccounts") || !strcmp(p, "configmaps") || !strcmp(p, "events")) {
    if (!strcmp(p, "configmaps") && old) {
      kv *im = ku_get(old, "immutable");
      if (im && im->kind == KV_BOOL && im->u.b &&
          (!ku_json_equal(ku_get(old, "data"), ku_get(*obj, "data")) ||
           !ku_json_equal(ku_get(old, "binaryData"), ku_get(*obj, "binaryData"))))
        return invalid1(t, name, "data", "FieldValueForbidden",
                        "Forbidden: field is immutable when `immutable` is set%s", "");
    }
    return NULL;
  }
  if (!strcmp(p, "customresourcedefinitions")) {
    kv *err = ks_crd_validate(s, *obj, old);
    if (err) return err;
    kv *spec = ku_get(*obj, "spec");
    kv *names = ku_get(spec, "names");
    kv *nn = kv_ref(names);
    const char *kind = ku_str(names, "kind");
    char *lower = strdup(kind);
    if (!lower) kv_oom();
    for (char *q = lower; *q; q++)
      if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    dflt(&nn, "singular", kv_cstring(lower));
    free(lower);
    dflt(&nn, "listKind", ku_kvfmt("%sList", kind));
    kv *nspec = ku_with(spec, "names", kv_ref(nn));
    kv *conv = kv_map_new(1);
    kv_map_set_str(conv, "strategy", kv_cstring("None"));
    dflt(&nspec, "conversion", conv);
    replace(obj, ku_with(*obj, "spec", nspec));
    char now[32];
    ku_now_rfc3339(now);
    kv *conds = kv_list_new(2);
    kv *c1 = kv_map_new(5);
    kv_map_set_str(c1, "type", kv_cstring("NamesAccepted"));
    kv_map_set_str(c1, "status", kv_cstring("True"));
    kv_map_set_str(c1, "lastTransitionTime", kv_cstring(now));
    kv_map_set_str(c1, "reason", kv_cstring("NoConflicts"));
    kv_map_set_str(c1, "message", kv_cstring("no conflicts found"));
    kv_list_push(conds, c1);
    kv *c2 = kv_map_new(5);
    kv_map_set_str(c2, "type", kv_cstring("Established"));
    kv_map_set_str(c2, "status", kv_cstring("True"));
    kv_map_set_str(c2, "lastTransitionTime", kv_cstring(now));
    kv_map_set_str(c2, "reason", kv_cstring("InitialNamesAccepted"));
    kv_map_set_str(c2, "message", kv_cstring("the initial names have been accepted"));
    kv_list_push(conds, c2);
    kv *ost = old ? ku_get(old, "status") : NULL;
    kv *st = kv_map_new(3);
    kv_map_set_str(st, "conditions",
                   ost && ku_get(ost, "conditions") ? kv_ref(ku_get(ost, "conditions"))
                                                    : kv_ref(conds));
    kv_unref(conds);
    kv_map_set_str(st, "acceptedNames", nn);
    kv *stored = kv_list_new(2);
    kv *osv = ku_get(ost, "storedVersions");
    for (size_t i = 0; osv && osv->kind == KV_LIST && i < kv_len(osv); i++)
      kv_list_push(stored, kv_ref(kv_list_at(osv, i)));
    kv *vers = ku_get(nspec, "versions");
    for (size_t i = 0; vers && i < kv_len(vers); i++) {
      kv *v = kv_list_at(vers, i);
      kv *sb = ku_get(v, "storage");
      if (sb && sb->kind == KV_BOOL && sb->u.b) {
        bool have = false;
        for (size_t k = 0; k < kv_len(stored); k++)
          if (strcmp(kv_str(kv_list_at(stored, k)), ku_str(v, "name")) == 0) have = true;
        if (!have) kv_list_push(stored, kv_cstring(ku_str(v, "name")));
      }
    }
    kv_map_set_str(st, "storedVersions", stored);
    replace(obj, ku_with(*obj, "status", st));
    return NULL;
  }
  return NULL;
}

/* ---- scale -------------------------------------------------------------------------- */

static const char *strip_dot(const char *p) { return p && p[0] == '.' ? p + 1 : p; }

kv *ks_scale_get(const ks_type *t, const ks_version *v, const kv *obj) {
  kv *md = ku_get(obj, "metadata");
  kv *smd = kv_map_new(5);
  static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
                                     "creationTimestamp"};
  for (size_t i = 0; i < 5; i++)
    if (ku_get(md, keep[i])) kv_map_set_str(smd, keep[i], kv_ref(ku_get(md, keep[i])));
  int64_t want = 0, have = 0;
  ku_as_int(ku_path(obj, strip_dot(v->scale_spec)), &want);
  if (v->scale_status) ku_as_int(ku_path(obj, strip_dot(v->scale_status)), &have);
  kv *sc = kv_map_new(5);
  kv_map_set_str(sc, "kind", kv_cstring("Scale"));
  kv_map_set_str(sc, "apiVersion", kv_cstring("autoscaling/v1"));
  kv_map_set_str(sc, "metadata", smd);
  kv *spec = kv_map_new(1);
  kv_map_set_str(spec, "replicas", kv_int(want));
  kv_map_set_str(sc, "spec", spec);
  kv *st = kv_map_new(2);
  kv_map_set_str(st, "replicas", kv_int(have));
  if (v->scale_selector) {
    kv *sel = ku_path(obj, strip_dot(v->scale_selector));
    if (sel && sel->kind == KV_STRING) {
      kv_map_set_str(st, "selector", kv_ref(sel));
    } else if (sel && sel->kind == KV_MAP && !t->is_crd) {
      char *txt = ks_label_sel_text(sel);
      kv_map_set_str(st, "selector", kv_string_take(txt, strlen(txt)));
    }
  }
  kv_map_set_str(sc, "status", st);
  return sc;
}

kv *ks_scale_set(const ks_type *t, const ks_version *v, const kv *obj, const kv *scale, kv **err) {
  int64_t n;
  const char *name = ku_str(ku_get(obj, "metadata"), "name");
  if (!ku_as_int(ku_path(scale, "spec.replicas"), &n)) {
    *err = invalid1(t, name, "spec.replicas", "FieldValueRequired", "Required value%s", "");
    return NULL;
  }
  if (n < 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    *err = invalid1(t, name, "spec.replicas", "FieldValueInvalid",
                    "Invalid value: %s: must be greater than or equal to 0", buf);
    return NULL;
  }
  /* split ".spec.replicas" into keys */
  char *path = strdup(strip_dot(v->scale_spec));
  if (!path) kv_oom();
  const char *keys[16];
  size_t nk = 0;
  for (char *tok = strtok(path, "."); tok && nk < 16; tok = strtok(NULL, "."))
    keys[nk++] = tok;
  kv *r = ku_set_in(obj, keys, nk, kv_int(n));
  free(path);
  const char *rv = ku_str(ku_get(scale, "metadata"), "resourceVersion");
  if (rv && *rv) {
    kv *md = ku_with(ku_get(r, "metadata"), "resourceVersion", kv_cstring(rv));
    kv *r2 = ku_with(r, "metadata", md);
    kv_unref(r);
    r = r2;
  }
  return r;
}
