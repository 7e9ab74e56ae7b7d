#!/usr/bin/env python3
"""tests/deploy/check_deploy.py: the static checks of deploy/ (issue 7 item 3).

  * every YAML file under deploy/kubernetes parses with the project's YAML
    loader (tests/deploy/deploy_yaml) and every document is a Kubernetes
    object (apiVersion, kind, metadata.name; namespaced kinds name their
    namespace);
  * both Helm charts render (helm_render.py, a test aid, not Helm) in several
    value scenarios, their output parses, and wrong values fail with the
    chart's message;
  * every object set (the manifests of one component, one rendered chart)
    keeps the posture docs/deploy.md promises: non-root, read-only root fs,
    no privilege escalation, all capabilities dropped, resources, probes on
    /healthz and /readyz, one agent replica and several control-plane ones
    with anti-affinity and a PodDisruptionBudget, least-privilege RBAC with
    the aggregation label and no wildcard, every referenced ConfigMap /
    Secret / PVC / ServiceAccount / port / $(VAR) defined, every flag known
    to the binary's source;
  * the built binaries accept every container's arguments;
  * the Dockerfiles (FROM, stages, USER, runtime packages = the packages of
    the libraries the built binaries link) and systemd units
    (hardening keys; systemd-analyze verify when present) statically.

Environment: DEPLOY_YAML (the deploy_yaml program), DEPLOY_DIR (deploy/).
With --render-to DIR it also writes the rendered charts there (the dry-run
test applies them).  Prints one line per check and "N passed, N failed".
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import helm_render  # noqa: E402

DEPLOY = os.environ.get("DEPLOY_DIR") or os.path.join(HERE, "..", "..", "deploy")
DEPLOY = os.path.abspath(DEPLOY)
ROOT = os.path.dirname(DEPLOY)
TOOL = os.environ.get("DEPLOY_YAML")

PASS = 0
FAIL = 0


def ok(name):
    global PASS
    PASS += 1
    print("ok   " + name)


def bad(name, why):
    global FAIL
    FAIL += 1
    print("FAIL %s\n     %s" % (name, why))


def check(name, cond, why=""):
    (ok if cond else lambda n: bad(n, why))(name)
    return cond


def load_yaml(paths):
    """[(file, index, doc)] of every document, or raise with the loader's message."""
    r = subprocess.run([TOOL, "json"] + list(paths), capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError(r.stderr.strip())
    return json.loads(r.stdout)


def yaml_value(path):
    r = subprocess.run([TOOL, "value", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError(r.stderr.strip())
    return json.loads(r.stdout)


NAMESPACED = {"ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment",
              "PersistentVolumeClaim", "PodDisruptionBudget", "Role", "RoleBinding"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def source_flags(path):
    """The "--flag" string literals of a C source file (what the binary accepts)."""
    with open(path, encoding="utf-8") as fh:
        return set(re.findall(r'"(--[a-z][a-z0-9-]*)', fh.read()))


AGENT_MAIN = os.path.join(ROOT, "agent", "main.c")
CP_MAIN = os.path.join(ROOT, "controlplane", "main.c")


def check_objects(label, docs, external=(), component=None):
    """Posture and consistency checks of one object set (list of entries)."""
    objs = [e["doc"] for e in docs]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o.get("kind"), {})[o.get("metadata", {}).get("name")] = o
    # shape
    shape_errors = []
    for e in docs:
        o = e["doc"]
        where = "%s doc %d" % (e["file"], e["index"])
        if not isinstance(o, dict):
            shape_errors.append("%s: not a mapping" % where)
            continue
        for k in ("apiVersion", "kind"):
            if not isinstance(o.get(k), str):
                shape_errors.append("%s: no %s" % (where, k))
        md = o.get("metadata") or {}
        if not isinstance(md.get("name"), str) or not md.get("name"):
            shape_errors.append("%s: no metadata.name" % where)
        kind = o.get("kind")
        if kind in NAMESPACED and not md.get("namespace"):
            shape_errors.append("%s: %s %s has no metadata.namespace" % (where, kind, md.get("name")))
        if kind not in NAMESPACED and kind not in CLUSTER_SCOPED:
            shape_errors.append("%s: unexpected kind %s" % (where, kind))
        labels = md.get("labels") or {}
        if any(not isinstance(v, str) for v in labels.values()):
            shape_errors.append("%s: label values must be strings" % where)
    check("%s: every document is a namespaced-correct Kubernetes object" % label, not shape_errors,
          "; ".join(shape_errors))

    deployments = list(by_kind.get("Deployment", {}).values())
    check("%s: has exactly one Deployment" % label, len(deployments) == 1,
          "found %d" % len(deployments))
    if len(deployments) != 1:
        return
    dep = deployments[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    tlabels = spec["template"]["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    check("%s: the selector matches the pod labels" % label,
          all(tlabels.get(k) == v for k, v in sel.items()), "%s vs %s" % (sel, tlabels))
    psc = pod.get("securityContext", {})
    check("%s: pod runs as non-root with RuntimeDefault seccomp" % label,
          psc.get("runAsNonRoot") is True and isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0
          and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", str(psc))
    names = set()
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        check("%s: container %s: no privilege escalation, read-only root, ALL capabilities dropped"
              % (label, c["name"]),
              sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
              and "ALL" in (sc.get("capabilities", {}).get("drop") or []) and not sc.get("privileged"),
              str(sc))
        res = c.get("resources", {})
        check("%s: container %s: cpu and memory requests and a memory limit" % (label, c["name"]),
              {"cpu", "memory"} <= set(res.get("requests", {})) and "memory" in res.get("limits", {}),
              str(res))
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check("%s: container %s: every port is a named TCP port number" % (label, c["name"]),
              c.get("ports") and all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536
                                     for p in ports.values()), str(c.get("ports")))
        names |= set(ports)
        probes = {k: c.get(k) for k in ("livenessProbe", "readinessProbe")}
        paths = {k: (v or {}).get("httpGet", {}).get("path") for k, v in probes.items()}
        check("%s: container %s: liveness on /healthz, readiness on /readyz" % (label, c["name"]),
              paths == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}, str(paths))
        pports = [(p or {}).get("httpGet", {}).get("port") for p in probes.values()]
        check("%s: container %s: probe ports are declared ports" % (label, c["name"]),
              all(p in ports or p in ports.values() for p in pports), "%s not in %s" % (pports, ports))
        # $(VAR) references resolve
        env_names = {e["name"] for e in c.get("env", [])}
        for ef in c.get("envFrom", []):
            cm = ef.get("configMapRef", {}).get("name")
            if cm:
                env_names |= set((by_kind.get("ConfigMap", {}).get(cm) or {}).get("data", {}))
        refs = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(c.get("args", []))))
        check("%s: container %s: every $(VAR) in args is defined" % (label, c["name"]),
              refs <= env_names, "undefined: %s" % sorted(refs - env_names))
        # flags are known to the binary
        flags = {a.split("=", 1)[0] for a in c.get("args", []) if a.startswith("--")}
        src = AGENT_MAIN if component == "agent" else CP_MAIN
        if os.path.exists(src):
            known = source_flags(src)
            check("%s: container %s: every flag is one %s accepts" % (label, c["name"],
                                                                     os.path.relpath(src, ROOT)),
                  flags <= known, "unknown: %s" % sorted(flags - known))
        else:
            print("note %s: %s does not exist yet; flags not cross-checked" % (label, src))
        # references to other objects
        missing = []
        for ef in c.get("envFrom", []):
            cm = ef.get("configMapRef", {}).get("name")
            if cm and cm not in by_kind.get("ConfigMap", {}) and cm not in external:
                missing.append("ConfigMap " + cm)
        for ev in c.get("env", []):
            sk = ev.get("valueFrom", {}).get("secretKeyRef")
            if sk:
                s = by_kind.get("Secret", {}).get(sk["name"])
                if s is None and sk["name"] not in external:
                    missing.append("Secret " + sk["name"])
                elif s is not None and sk["key"] not in (s.get("stringData") or s.get("data") or {}):
                    missing.append("key %s of Secret %s" % (sk["key"], sk["name"]))
        for v in pod.get("volumes", []):
            if "persistentVolumeClaim" in v:
                n = v["persistentVolumeClaim"]["claimName"]
                if n not in by_kind.get("PersistentVolumeClaim", {}) and n not in external:
                    missing.append("PersistentVolumeClaim " + n)
            if "secret" in v:
                n = v["secret"]["secretName"]
                if n not in by_kind.get("Secret", {}) and n not in external:
                    missing.append("Secret " + n)
            if "configMap" in v:
                n = v["configMap"]["name"]
                if n not in by_kind.get("ConfigMap", {}) and n not in external:
                    missing.append("ConfigMap " + n)
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"] for v in pod.get("volumes", [])}
        if not mounts <= vols:
            missing.append("volumes %s" % sorted(mounts - vols))
        sa = pod.get("serviceAccountName")
        if sa and sa not in by_kind.get("ServiceAccount", {}) and sa not in external:
            missing.append("ServiceAccount " + sa)
        check("%s: container %s: every object it refers to is defined" % (label, c["name"]),
              not missing, "missing: %s" % missing)
    # services
    for s in by_kind.get("Service", {}).values():
        sel = s["spec"].get("selector", {})
        tps = [p.get("targetPort") for p in s["spec"]["ports"]]
        check("%s: Service %s selects the pods and targets declared ports" % (label, s["metadata"]["name"]),
              sel and all(tlabels.get(k) == v for k, v in sel.items()) and all(t in names for t in tps),
              "selector %s ports %s (pod labels %s, ports %s)" % (sel, tps, tlabels, names))
    # RBAC
    wild = []
    for kind in ("ClusterRole", "Role"):
        for r in by_kind.get(kind, {}).values():
            for rule in r.get("rules") or []:
                for f in ("apiGroups", "resources", "verbs"):
                    if "*" in (rule.get(f) or []):
                        wild.append("%s %s %s" % (kind, r["metadata"]["name"], f))
    check("%s: no RBAC wildcard" % label, not wild, str(wild))

    run_container_args(label, component, pod["containers"][0], by_kind)

    if component == "agent":
        check("%s: one agent replica, Recreate strategy" % label,
              spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate",
              "replicas %s strategy %s" % (spec.get("replicas"), spec.get("strategy")))
        crbs = list(by_kind.get("ClusterRoleBinding", {}).values())
        roles = by_kind.get("ClusterRole", {})
        agg = [r for r in roles.values() if r.get("aggregationRule")]
        if not crbs:
            check("%s: RBAC left to the operator (rbac.create=false)" % label, not roles)
            return
        check("%s: the binding grants the aggregated ClusterRole to the agent's ServiceAccount" % label,
              len(crbs) == 1 and len(agg) == 1 and crbs[0]["roleRef"]["name"] == agg[0]["metadata"]["name"]
              and crbs[0]["subjects"][0]["name"] == pod.get("serviceAccountName")
              and crbs[0]["subjects"][0]["namespace"] == dep["metadata"]["namespace"], str(crbs))
        sel = agg[0]["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"] if agg else {}
        check("%s: the agent's role aggregates koreo.dev/aggregate-to-agent=\"true\"" % label,
              sel == {"koreo.dev/aggregate-to-agent": "true"}, str(sel))
        parts = [r for r in roles.values() if not r.get("aggregationRule")]
        check("%s: every other ClusterRole carries the aggregation label" % label,
              parts and all(r["metadata"]["labels"].get("koreo.dev/aggregate-to-agent") == "true"
                            for r in parts), str([r["metadata"]["name"] for r in parts]))
        base = [rule for r in parts for rule in r["rules"]
                if "customresourcedefinitions" in rule.get("resources", [])]
        check("%s: the agent may read CRDs but not change them" % label,
              base and all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in base), str(base))
    else:
        check("%s: several control-plane replicas" % label, spec.get("replicas", 1) >= 2,
              "replicas %s" % spec.get("replicas"))
        aff = pod.get("affinity", {}).get("podAntiAffinity")
        check("%s: replicas spread with podAntiAffinity" % label, bool(aff), str(pod.get("affinity")))
        pdbs = list(by_kind.get("PodDisruptionBudget", {}).values())
        check("%s: a PodDisruptionBudget selects the replicas" % label,
              len(pdbs) == 1 and all(tlabels.get(k) == v
                                     for k, v in pdbs[0]["spec"]["selector"]["matchLabels"].items()),
              str(pdbs))
        check("%s: no Kubernetes API token in control-plane pods, no RBAC" % label,
              pod.get("automountServiceAccountToken") is False
              and not by_kind.get("ClusterRole") and not by_kind.get("Role"))
        c = pod["containers"][0]
        schemes = {(c.get(k) or {}).get("httpGet", {}).get("scheme") for k in ("livenessProbe", "readinessProbe")}
        check("%s: probes use HTTPS (the API listener)" % label, schemes == {"HTTPS"}, str(schemes))
        envs = {e["name"]: e for e in c.get("env", [])}
        check("%s: the database URL comes from a Secret, not the command line" % label,
              "secretKeyRef" in envs.get("KOREO_DATABASE_URL", {}).get("valueFrom", {})
              and not any("database-url" in a for a in c.get("args", [])), str(envs.get("KOREO_DATABASE_URL")))
        check("%s: one pod hostname for every replica (named in the server certificate)" % label,
              pod.get("hostname") == dep["metadata"]["name"], str(pod.get("hostname")))
        pki = [v for v in pod.get("volumes", []) if v["name"] == "pki"]
        check("%s: the PKI is one Secret mounted read-only" % label,
              pki and "secret" in pki[0]
              and any(m["name"] == "pki" and m.get("readOnly") for m in c.get("volumeMounts", [])), str(pki))


def free_port():
    import socket

    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def container_args(c, by_kind):
    """The container's arguments with $(VAR) expanded as the kubelet does,
    from its env and envFrom ConfigMaps (Secret values from the same object
    set, else a placeholder; downward-API values as "pod-0")."""
    env = {}
    for ef in c.get("envFrom", []):
        cm = by_kind.get("ConfigMap", {}).get(ef.get("configMapRef", {}).get("name"))
        env.update((cm or {}).get("data", {}))
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            sk = e["valueFrom"]["secretKeyRef"]
            sec = by_kind.get("Secret", {}).get(sk["name"]) or {}
            env[e["name"]] = (sec.get("stringData") or {}).get(sk["key"], "kbt.secret-from-elsewhere")
        else:
            env[e["name"]] = "pod-0"
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a)
            for a in c.get("args", [])]


def print_manifest_args(component):
    """Print the expanded arguments of deploy/kubernetes/COMPONENT's
    Deployment, one a line (test_pod_smoke.sh runs the binary with them)."""
    d = os.path.join(DEPLOY, "kubernetes", component)
    files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".yaml", ".yml")))
    by_kind = {}
    for e in load_yaml(files):
        o = e["doc"]
        by_kind.setdefault(o.get("kind"), {})[o.get("metadata", {}).get("name")] = o
    dep = list(by_kind.get("Deployment", {}).values())[0]
    for a in container_args(dep["spec"]["template"]["spec"]["containers"][0], by_kind):
        print(a)
    return 0


def run_container_args(label, component, c, by_kind):
    """Start the built binary with the container's arguments (variables
    expanded as the kubelet does, paths and ports moved to scratch ones, no
    reachable database or cluster) and check it does not refuse them as a
    usage error (exit status 2)."""
    binary = os.environ.get("KOREO_BIN_KOREO_" + ("AGENT" if component == "agent" else "CONTROLPLANE"))
    if not binary or not os.path.exists(binary):
        print("note %s: the built binary is not at hand; arguments not tried" % label)
        return
    tmp = tempfile.mkdtemp(prefix="deploy-args.")
    try:
        args = container_args(c, by_kind)
        moved = []
        for a in args:
            flag, eq, val = a.partition("=")
            if flag in ("--state-dir", "--pki-dir"):
                a = "%s=%s/%s" % (flag, tmp, flag[2:])
            elif flag in ("--health-listen", "--agent-listen", "--api-listen"):
                a = "%s=127.0.0.1:%d" % (flag, free_port())
            moved.append(a)
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
                   "KUBECONFIG": os.path.join(tmp, "no-kubeconfig"),
                   "KOREO_DATABASE_URL": "postgresql://koreo@nonexistent.invalid:1/koreo",
                   "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "")}
        try:
            r = subprocess.run([binary] + moved, capture_output=True, text=True, timeout=5,
                               env=run_env, cwd=tmp)
            rc, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = None, (e.stderr or b"").decode(errors="replace")
        usage = rc == 2 or "unknown option" in err or re.search(r"(?m)^usage:", err)
        check("%s: %s accepts the container's arguments" % (label, os.path.basename(binary)),
              not usage, "rc=%s args=%s\n     %s" % (rc, moved, err.strip()[-600:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------- manifests


def manifests(render_to):
    for comp in ("agent", "controlplane"):
        d = os.path.join(DEPLOY, "kubernetes", comp)
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".yaml", ".yml")))
        try:
            docs = load_yaml(files)
        except ValueError as e:
            bad("kubernetes/%s: every file parses" % comp, str(e))
            continue
        ok("kubernetes/%s: %d files, %d documents parse" % (comp, len(files), len(docs)))
        external = ("koreo-controlplane-pki",) if comp == "controlplane" else ()
        check_objects("kubernetes/%s" % comp, docs, external=external, component=comp)


AGENT_SCENARIOS = [
    ("defaults", {"server": "cp.example.com:9443", "clusterName": "east",
                  "bootstrapToken": {"value": "kbt.0.1.2"}}, None),
    ("registered, no token, emptyDir, own kinds, CA file", {
        "server": "10.0.0.1:9443", "clusterName": "west", "autonomy": False,
        "state": {"type": "emptyDir"}, "caConfigMap": {"name": "koreo-ca"},
        "rbac": {"exampleKinds": False, "extraRules": [
            {"apiGroups": ["acme.example.com"], "resources": ["databases", "databases/status"],
             "verbs": ["get", "list", "watch", "patch"]}]},
        "extraArgs": ["--log-level=debug"], "commonLabels": {"team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"}}, None),
    ("existing token Secret and claim", {
        "server": "cp:9443", "clusterName": "c1", "fullnameOverride": "agent",
        "bootstrapToken": {"existingSecret": "my-token"},
        "state": {"existingClaim": "my-claim"}}, None),
    ("missing server", {"clusterName": "east"}, "server \\(HOST:PORT of the control plane's agent port\\) is required"),
    ("bad state type", {"server": "a:1", "clusterName": "e", "state": {"type": "hostPath"}},
     'state.type must be pvc or emptyDir, not "hostPath"'),
]
CP_SCENARIOS = [
    ("defaults", {"database": {"url": "postgresql://koreo@db/koreo"}, "pki": {"existingSecret": "koreo-pki"}},
     None),
    ("three replicas, inline PKI, existing database Secret", {
        "replicaCount": 3, "database": {"existingSecret": "db", "key": "dsn"},
        "pki": {"caCert": "C", "caKey": "K", "serverCert": "SC", "serverKey": "SK"},
        "config": {"namespaces": "platform,default", "logFormat": "text"},
        "service": {"agents": {"type": "ClusterIP"}},
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "koreo-controlplane"}}}]}},
        "extraArgs": ["--log-format=text"]}, None),
    ("no database", {"pki": {"existingSecret": "p"}},
     "database.url or database.existingSecret is required"),
    ("no PKI", {"database": {"url": "postgresql://x"}},
     "pki.existingSecret or pki.caCert is required"),
]


def charts(render_to):
    tmp = tempfile.mkdtemp(prefix="deploy-charts.")
    try:
        for chart, scenarios, comp in (("koreo-agent", AGENT_SCENARIOS, "agent"),
                                       ("koreo-controlplane", CP_SCENARIOS, "controlplane")):
            cdir = os.path.join(DEPLOY, "helm", chart)
            try:
                values = yaml_value(os.path.join(cdir, "values.yaml"))
                meta = yaml_value(os.path.join(cdir, "Chart.yaml"))
            except ValueError as e:
                bad("helm/%s: values.yaml and Chart.yaml parse" % chart, str(e))
                continue
            ok("helm/%s: values.yaml and Chart.yaml parse" % chart)
            check("helm/%s: Chart.yaml is apiVersion v2 with name, version, appVersion" % chart,
                  meta.get("apiVersion") == "v2" and meta.get("name") == chart
                  and re.match(r"^\d+\.\d+\.\d+$", str(meta.get("version")))
                  and isinstance(meta.get("appVersion"), str), str(meta))
            for i, (title, over, want_err) in enumerate(scenarios):
                name = "helm/%s [%s]" % (chart, title)
                vals = helm_render.deep_merge(values, over)
                release = chart if i % 2 == 0 else "koreo"
                try:
                    out = helm_render.render_chart(cdir, vals, meta, release, "koreo-system")
                except helm_render.TemplateError as e:
                    if want_err:
                        check(name + ": refused with the chart's message", re.search(want_err, str(e)),
                              "got: %s" % e)
                    else:
                        bad(name + ": renders", str(e))
                    continue
                if want_err:
                    bad(name + ": refused", "rendered without error")
                    continue
                text = "".join("---\n# Source: %s\n%s\n" % (f, t.strip("\n")) for f, t in out)
                path = os.path.join(tmp, "%s-%d.yaml" % (chart, i))
                with open(path, "w") as fh:
                    fh.write(text)
                try:
                    docs = load_yaml([path])
                except ValueError as e:
                    bad(name + ": output parses", str(e))
                    continue
                ok("%s: renders %d templates, %d documents parse" % (name, len(out), len(docs)))
                ext = {"koreo-pki", "db", "my-token", "my-claim", "koreo-ca"}
                check_objects(name, docs, external=ext, component=comp)
                if render_to:
                    os.makedirs(render_to, exist_ok=True)
                    shutil.copy(path, os.path.join(render_to, os.path.basename(path)))
                # scenario-specific expectations
                objs = [d["doc"] for d in docs]
                dep = [o for o in objs if o["kind"] == "Deployment"][0]
                args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
                if comp == "agent" and title.startswith("registered"):
                    check(name + ": no token flag, --no-autonomy, --ca-file, extra args",
                          not any(a.startswith("--bootstrap-token") for a in args)
                          and "--no-autonomy" in args and "--ca-file=/etc/koreo/ca/ca.crt" in args
                          and "--log-level=debug" in args, str(args))
                    roles = {o["metadata"]["name"] for o in objs if o["kind"] == "ClusterRole"}
                    fn = dep["metadata"]["name"]
                    check(name + ": own kinds in an aggregated -extra role, no example role",
                          roles == {fn, fn + "-base", fn + "-extra"}, str(roles))
                    check(name + ": common labels reach every object",
                          all(o["metadata"]["labels"].get("team") == "platform" for o in objs))
                if comp == "agent" and title.startswith("existing"):
                    vols = dep["spec"]["template"]["spec"]["volumes"]
                    check(name + ": the existing claim and token Secret are used, none created",
                          vols[0]["persistentVolumeClaim"]["claimName"] == "my-claim"
                          and not any(o["kind"] in ("Secret", "PersistentVolumeClaim") for o in objs), str(vols))
                if comp == "controlplane" and title.startswith("three"):
                    check(name + ": 3 replicas, --namespaces, required anti-affinity, inline PKI Secret",
                          dep["spec"]["replicas"] == 3 and "--namespaces=$(KOREO_NAMESPACES)" in args
                          and "requiredDuringSchedulingIgnoredDuringExecution"
                          in dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
                          and any(o["kind"] == "Secret" and o["stringData"].get("server.key") == "SK"
                                  for o in objs), str(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------- Dockerfiles, systemd

RUNTIME_FORBIDDEN = re.compile(r"\b[a-z0-9.+-]+-dev\b|\bbuild-essential\b|\bcmake\b|\bgcc\b")


def dockerfiles():
    d = os.path.join(DEPLOY, "docker")
    for binary in ("koreo-agent", "koreo-controlplane"):
        path = os.path.join(d, binary + ".Dockerfile")
        name = "docker/%s.Dockerfile" % binary
        if not check(name + ": exists", os.path.exists(path)):
            continue
        with open(path) as fh:
            text = fh.read()
        # join continuation lines, drop comments
        logical = re.sub(r"\\\n", " ", text)
        lines = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
        stages = []
        for l in lines:
            m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?$", l, re.I)
            if m:
                stages.append({"image": m.group(1), "name": m.group(2), "lines": []})
            elif stages:
                stages[-1]["lines"].append(l)
        check(name + ": two stages, build then runtime", [s["name"] for s in stages] == ["build", "runtime"],
              str([s["name"] for s in stages]))
        check(name + ": every FROM is debian:bookworm-slim",
              stages and all(s["image"] == "debian:bookworm-slim" for s in stages),
              str([s["image"] for s in stages]))
        if len(stages) != 2:
            continue
        build, run = stages
        btext, rtext = " ".join(build["lines"]), " ".join(run["lines"])
        check(name + ": the build stage installs the -dev packages and builds a CMake Release",
              "libcjson-dev" in btext and "libevent-dev" in btext and "-DCMAKE_BUILD_TYPE=Release" in btext
              and re.search(r"--target\s+[^&]*\b%s\b" % binary, btext), btext[:200])
        installs = " ".join(l for l in run["lines"] if "apt-get install" in l)
        check(name + ": the runtime stage installs no -dev package or compiler",
              installs and not RUNTIME_FORBIDDEN.search(installs), installs)
        need = ["libcjson1", "libyaml-0-2", "libpcre2-8-0", "libevent-2.1-7",
                "libevent-openssl-2.1-7", "libssl3", "libprotobuf-c1", "ca-certificates"]
        if binary == "koreo-controlplane":
            need += ["libpq5", "libcurl4"]  # libcurl: the koreoctl it carries
        check(name + ": the runtime stage has the shared libraries the binary links",
              all(re.search(r"\b%s\b" % re.escape(p), installs) for p in need),
              "missing: %s" % [p for p in need if p not in installs])
        linked = linked_packages(os.environ.get("KOREO_BIN_" + binary.replace("-", "_").upper()))
        if linked is None:
            print("note %s: the built %s (or readelf, ldd, dpkg) is not at hand; "
                  "linked libraries not checked" % (name, binary))
        else:
            check(name + ": the runtime stage installs the package of every library %s links (%s)"
                  % (binary, " ".join(sorted(linked))),
                  linked and all(re.search(r"(^|\s)%s(\s|$)" % re.escape(p), installs) for p in linked),
                  "missing: %s" % sorted(p for p in linked if p not in installs.split()))
        users = [l for l in run["lines"] if l.upper().startswith("USER ")]
        uid = users[-1].split()[1].split(":")[0] if users else ""
        check(name + ": the runtime stage ends as a non-root numeric user",
              users and uid.isdigit() and int(uid) != 0 and run["lines"].index(users[-1]) > 0, str(users))
        check(name + ": the runtime stage copies the binary from the build stage",
              any(l.startswith("COPY --from=build") for l in run["lines"])
              and not any(re.match(r"COPY\s+\.\s", l) for l in run["lines"]))
        ep = [l for l in run["lines"] if l.startswith("ENTRYPOINT")]
        check(name + ": ENTRYPOINT is the binary (exec form)",
              ep and json.loads(ep[-1][len("ENTRYPOINT"):].strip()) == ["/usr/local/bin/" + binary], str(ep))


# Packages every Debian system has, and the sanitizer runtimes of a test build.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "gcc-12-base", "libasan8", "libubsan1"}


def linked_packages(binary):
    """Debian packages of the libraries `binary` links directly (DT_NEEDED),
    or None when the binary or the tools are missing."""
    if not binary or not os.path.exists(binary):
        return None
    if not all(shutil.which(t) for t in ("readelf", "ldd", "dpkg")):
        return None
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
        ["ldd", binary], capture_output=True, text=True).stdout, re.M))
    pkgs = set()
    for so in needed:
        path = paths.get(so)
        if not path:
            return None
        cands = {path, os.path.realpath(path)}
        cands |= {c[4:] if c.startswith("/usr/") else "/usr" + c for c in list(cands)}
        owner = None
        for c in sorted(cands):
            r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":", 1)[0].strip()
                break
        if owner is None:
            return None
        pkgs.add(owner)
    return pkgs - BASE_PACKAGES


HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
    "SystemCallArchitectures": "native", "UMask": "0077",
}


def systemd_units():
    d = os.path.join(DEPLOY, "systemd")
    tmp = tempfile.mkdtemp(prefix="deploy-units.")
    try:
        for unit, env, binary in (("koreo-controlplane.service", "controlplane.env", "koreo-controlplane"),
                                  ("koreo-agent.service", "agent.env", "koreo-agent")):
            name = "systemd/" + unit
            path = os.path.join(d, unit)
            if not check(name + ": exists", os.path.exists(path)):
                continue
            sections, cur = {}, None
            for raw in open(path):
                l = raw.strip()
                if not l or l.startswith("#"):
                    continue
                if l.startswith("["):
                    cur = sections.setdefault(l.strip("[]"), {})
                    continue
                k, _, v = l.partition("=")
                cur.setdefault(k, []).append(v)
            svc = sections.get("Service", {})
            wrong = {k: svc.get(k) for k, v in HARDENING.items() if svc.get(k, [None])[-1] != v}
            check(name + ": hardening directives", not wrong, "wrong or missing: %s" % wrong)
            check(name + ": a non-root identity and a StateDirectory",
                  (svc.get("DynamicUser") == ["yes"] or svc.get("User")) and svc.get("StateDirectory"), str(svc))
            es = svc.get("ExecStart", [""])[-1]
            check(name + ": ExecStart runs /usr/local/bin/" + binary,
                  es.split()[0] == "/usr/local/bin/" + binary, es)
            state = "/var/lib/" + svc.get("StateDirectory", ["?"])[0]
            check(name + ": the state lives in the StateDirectory", state in es, es)
            envf = svc.get("EnvironmentFile", [""])[-1].lstrip("-")
            check(name + ": EnvironmentFile /etc/koreo/" + env, envf == "/etc/koreo/" + env, envf)
            # every ${VAR}/$VAR in ExecStart is set by the shipped environment file
            with open(os.path.join(d, env)) as fh:
                defined = {l.split("=", 1)[0].strip() for l in fh if re.match(r"^[A-Z_]+=", l)}
            used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", es))
            check(name + ": every variable of ExecStart is in " + env, used <= defined,
                  "missing: %s" % sorted(used - defined))
            if binary == "koreo-agent" and os.path.exists(AGENT_MAIN):
                flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", es))
                with open(os.path.join(d, env)) as fh:
                    settings = "".join(l for l in fh if not l.lstrip().startswith("#"))
                flags |= set(re.findall(r"(--[a-z][a-z0-9-]*)", settings))
                known = source_flags(AGENT_MAIN)
                check(name + ": every flag is one agent/main.c accepts", flags <= known,
                      "unknown: %s" % sorted(flags - known))
            # systemd-analyze verify on a copy whose binary is /bin/true (the
            # real one is not installed here) and without the man: links
            with open(path) as fh:
                text = fh.read()
            text = text.replace("/usr/local/bin/" + binary, "/bin/true")
            text = "\n".join(l for l in text.splitlines() if not l.startswith("Documentation="))
            copy = os.path.join(tmp, unit)
            with open(copy, "w") as fh:
                fh.write(text + "\n")
            sa = shutil.which("systemd-analyze")
            if sa:
                r = subprocess.run([sa, "verify", copy], capture_output=True, text=True, timeout=60)
                msgs = [l for l in (r.stdout + r.stderr).splitlines() if unit in l or "Unknown" in l]
                check(name + ": systemd-analyze verify is clean", r.returncode == 0 and not msgs,
                      "rc=%d %s" % (r.returncode, msgs))
            else:
                print("note %s: systemd-analyze not installed; verify skipped" % name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    render_to = None
    if len(argv) == 2 and argv[0] == "--print-args" and TOOL:
        return print_manifest_args(argv[1])
    if len(argv) == 2 and argv[0] == "--render-to":
        render_to = argv[1]
    elif argv:
        print("usage: check_deploy.py [--render-to DIR | --print-args agent|controlplane]", file=sys.stderr)
        return 2
    if not TOOL or not os.path.exists(TOOL):
        print("check_deploy.py: set DEPLOY_YAML to the deploy_yaml program", file=sys.stderr)
        return 2
    manifests(render_to)
    charts(render_to)
    if not render_to:
        dockerfiles()
        systemd_units()
    print("%d passed, %d failed" % (PASS, FAIL))
    return 1 if FAIL else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
