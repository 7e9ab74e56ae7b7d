#!/usr/bin/env bash
# tests/examples/test_webapp_agent.sh KUBESIM AGENT EXAMPLES: acceptance test
# of examples/webapp (issue 7 item 2) as a user runs it: a kubesim cluster,
# `kubectl apply` of the WebApp CRD, `koreo-agent --standalone --definitions
# examples/webapp`, `kubectl apply` of examples/webapp/webapp.yaml. Checks
# that the ServiceAccount, ConfigMap, Deployment and Service exist with the
# fields the definitions promise, that the WebApp's status shows the
# Deployment step waiting for its Pods (Wait) until the test plays the
# Deployment controller, then the Workflow Ready with its reason, message
# and state; that a config change rolls the Pod template; that an invalid
# WebApp gets a Failure condition naming the problem. The agent must exit 0
# on SIGTERM (no sanitizer report). Every process started here is stopped
# on exit, whatever happens. Skipped (77) without kubectl.
set -u
SIM=${1:?usage: test_webapp_agent.sh KUBESIM AGENT EXAMPLES}
AGENT=${2:?usage: test_webapp_agent.sh KUBESIM AGENT EXAMPLES}
EXAMPLES=${3:?usage: test_webapp_agent.sh KUBESIM AGENT EXAMPLES}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_kubectl
WEBAPP=$(cd "$EXAMPLES/webapp" && pwd)

kc() { k sim "$@"; }
# jp KIND/NAME JSONPATH: one field of an object ("" when absent)
jp() { kc get "$1" -o "jsonpath=$2" 2>/dev/null; }
ready_reason() { jp webapp/"$1" '{.status.conditions[?(@.type=="Ready")].reason}'; }
reason_is() { [ "$(ready_reason "$1")" = "$2" ]; }
show_log() {
  echo "--- agent log (last 30 lines) ---"
  tail -30 "$WORK/agent.log"
  echo "--- WebApp shop ---"
  kc get webapp shop -o yaml 2>&1 | sed -n '/^status:/,$p'
}

# ---- a cluster and the CRD --------------------------------------------------
start_kubesim "$SIM" sim
kc apply -f "$WEBAPP/crd.yaml" >/dev/null || { echo "FAIL: kubectl apply crd.yaml"; exit 1; }
kc wait --for=condition=Established crd/webapps.platform.koreo.example --timeout=20s >/dev/null ||
  bad "the WebApp CRD is not Established"

# ---- the agent on the example's directory, then the user's WebApp ------------
"$AGENT" --standalone --definitions "$WEBAPP" --kubeconfig "$WORK/sim.kubeconfig" \
  --reload-interval 1s --log-format json >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
bg_started $AGENT_PID
kc apply -f "$WEBAPP/webapp.yaml" >/dev/null || bad "kubectl apply webapp.yaml"

# ---- the four objects ---------------------------------------------------------
wait_for 60 "Deployment shop" kc get deployment shop || { show_log; exit 1; }
wait_for 10 "ServiceAccount shop" kc get serviceaccount shop
wait_for 10 "ConfigMap shop-config" kc get configmap shop-config
wait_for 10 "Service shop" kc get service shop

expect "SA automount" "$(jp sa/shop '{.automountServiceAccountToken}')" "false"
expect "SA managed-by label" "$(jp sa/shop '{.metadata.labels.app\.kubernetes\.io/managed-by}')" koreo
expect "SA owner" "$(jp sa/shop '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" "WebApp/shop"

expect "CM APP_NAME" "$(jp cm/shop-config '{.data.APP_NAME}')" shop
expect "CM APP_PORT (a string)" "$(kc get cm shop-config -o json | grep -o '"APP_PORT": *"8080"' | tr -d ' ')" '"APP_PORT":"8080"'
expect "CM LOG_LEVEL" "$(jp cm/shop-config '{.data.LOG_LEVEL}')" info
expect "CM FEATURE_CHECKOUT" "$(jp cm/shop-config '{.data.FEATURE_CHECKOUT}')" enabled
expect "CM owner" "$(jp cm/shop-config '{.metadata.ownerReferences[0].kind}')" WebApp

D='deployment/shop'
expect "Deployment replicas" "$(jp $D '{.spec.replicas}')" 2
expect "Deployment image" "$(jp $D '{.spec.template.spec.containers[0].image}')" ghcr.io/acme/shop:1.4.2
expect "Deployment container name" "$(jp $D '{.spec.template.spec.containers[0].name}')" app
expect "Deployment serviceAccountName" "$(jp $D '{.spec.template.spec.serviceAccountName}')" shop
expect "Deployment envFrom" "$(jp $D '{.spec.template.spec.containers[0].envFrom[0].configMapRef.name}')" shop-config
expect "Deployment containerPort" "$(jp $D '{.spec.template.spec.containers[0].ports[0].containerPort}')" 8080
expect "Deployment medium cpu" "$(jp $D '{.spec.template.spec.containers[0].resources.requests.cpu}')" 250m
expect "Deployment medium memory limit" "$(jp $D '{.spec.template.spec.containers[0].resources.limits.memory}')" 512Mi
expect "Deployment template strategy" "$(jp $D '{.spec.strategy.rollingUpdate.maxUnavailable}')" 0
expect "Deployment readOnlyRootFilesystem" "$(jp $D '{.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem}')" true
expect "Deployment anti-affinity (2 replicas)" \
  "$(jp $D '{.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey}')" \
  kubernetes.io/hostname
expect "Deployment selector" "$(jp $D '{.spec.selector.matchLabels.app\.kubernetes\.io/name}')" shop
expect "Deployment initial-image (create overlay)" \
  "$(jp $D '{.metadata.annotations.platform\.koreo\.example/initial-image}')" ghcr.io/acme/shop:1.4.2
cm_rv=$(jp cm/shop-config '{.metadata.resourceVersion}')
expect "Deployment config-revision = ConfigMap resourceVersion" \
  "$(jp $D '{.spec.template.metadata.annotations.platform\.koreo\.example/config-revision}')" "$cm_rv"

expect "Service port" "$(jp svc/shop '{.spec.ports[0].port}')" 80
expect "Service targetPort" "$(jp svc/shop '{.spec.ports[0].targetPort}')" http
expect "Service type" "$(jp svc/shop '{.spec.type}')" ClusterIP
expect "Service selector" "$(jp svc/shop '{.spec.selector.app\.kubernetes\.io/name}')" shop
expect "Service has no compare directive" "$(jp svc/shop '{.spec.x-koreo-compare-as-map}')" ""

# ---- no Pods yet: the Deployment step waits ---------------------------------
wait_for 30 "WebApp shop Ready=Wait" reason_is shop Wait || show_log
expect "Wait message" "$(jp webapp/shop '{.status.conditions[?(@.type=="Ready")].message}')" \
  "Awaiting Workflow webapp.v1 to be ready (waiting for 2 available replicas of Deployment shop)."
expect "DeploymentReady while waiting" "$(jp webapp/shop '{.status.conditions[?(@.type=="DeploymentReady")].reason}')" Wait

# Play the Deployment controller: the Pods are available.
kc patch deployment shop --subresource=status --type=merge \
  -p '{"status":{"replicas":2,"readyReplicas":2,"availableReplicas":2,"updatedReplicas":2}}' >/dev/null ||
  bad "patching the Deployment's status"
wait_for 40 "WebApp shop Ready=Ready" reason_is shop Ready || show_log

W='webapp/shop'
expect "Ready status" "$(jp $W '{.status.conditions[?(@.type=="Ready")].status}')" True
expect "Ready message" "$(jp $W '{.status.conditions[?(@.type=="Ready")].message}')" "Workflow webapp.v1 ready."
for c in SpecValid ServiceAccountReady ConfigReady DeploymentReady ServiceReady; do
  expect "$c reason" "$(jp $W "{.status.conditions[?(@.type==\"$c\")].reason}")" Ready
done
expect "DeploymentReady message" "$(jp $W '{.status.conditions[?(@.type=="DeploymentReady")].message}')" "Deployment ready."
expect "state.image" "$(jp $W '{.status.state.image}')" ghcr.io/acme/shop:1.4.2
expect "state.replicas" "$(jp $W '{.status.state.replicas}')" 2
expect "state.serviceAccount" "$(jp $W '{.status.state.serviceAccount}')" shop
expect "state.configMap.name" "$(jp $W '{.status.state.configMap.name}')" shop-config
expect "state.configMap.revision" "$(jp $W '{.status.state.configMap.revision}')" "$cm_rv"
expect "state.deployment.availableReplicas" "$(jp $W '{.status.state.deployment.availableReplicas}')" 2
expect "state.service.clusterIP" "$(jp $W '{.status.state.service.clusterIP}')" "$(jp svc/shop '{.spec.clusterIP}')"
expect "state.service.url" "$(jp $W '{.status.state.service.url}')" "http://shop.default.svc:80"
expect "no errors" "$(jp $W '{.status.koreo.errors}')" ""
expect "managed-resources annotation names the Workflow" \
  "$(jp $W '{.metadata.annotations.koreo\.dev/managed-resources}' | grep -o '"workflow":"webapp.v1"')" '"workflow":"webapp.v1"'

# ---- a config change: ConfigMap patched, Pod template rolled ----------------
kc patch webapp shop --type=merge -p '{"spec":{"config":{"LOG_LEVEL":"debug"}}}' >/dev/null ||
  bad "patching the WebApp's config"
cm_changed() { [ "$(jp cm/shop-config '{.data.LOG_LEVEL}')" = debug ]; }
wait_for 40 "ConfigMap LOG_LEVEL=debug" cm_changed
new_rv=$(jp cm/shop-config '{.metadata.resourceVersion}')
rolled() {
  [ "$(jp deployment/shop '{.spec.template.metadata.annotations.platform\.koreo\.example/config-revision}')" = "$new_rv" ]
}
wait_for 40 "the Pod template's config-revision to follow the ConfigMap" rolled
expect "initial-image kept after the patch" \
  "$(jp $D '{.metadata.annotations.platform\.koreo\.example/initial-image}')" ghcr.io/acme/shop:1.4.2

# ---- an invalid WebApp: Failure with the validation message -------------------
cat >"$WORK/bad.yaml" <<'YAML'
apiVersion: platform.koreo.example/v1
kind: WebApp
metadata:
  name: broken
  namespace: default
spec:
  image: Not An Image
YAML
kc apply -f "$WORK/bad.yaml" >/dev/null || bad "kubectl apply of the invalid WebApp"
wait_for 30 "WebApp broken Ready=Failure" reason_is broken Failure || show_log
expect "Failure message" "$(jp webapp/broken '{.status.conditions[?(@.type=="SpecValid")].message}')" \
  "Unrecoverable error reconciling WebApp spec. (spec.image 'Not An Image' is not a valid image reference (lower-case repository, optional :tag or @sha256:digest))."
if kc get deployment broken >/dev/null 2>&1; then bad "an invalid WebApp got a Deployment"; else ok; fi

# ---- deleting the WebApp: the cluster's garbage collector removes the rest ------
kc delete webapp shop --wait=true >/dev/null || bad "kubectl delete webapp shop"
gone() { ! kc get deployment shop >/dev/null 2>&1 && ! kc get configmap shop-config >/dev/null 2>&1; }
wait_for 20 "the owned objects to be garbage-collected" gone

# ---- the agent loaded every definition and wrote every status ------------------
expect "agent log lines at level error" "$(grep -cE '"level": *"error"' "$WORK/agent.log")" 0
if grep -qE '"level": *"info"' "$WORK/agent.log"; then ok; else bad "no info lines in the agent log (format changed?)"; fi

# ---- the agent stops cleanly ---------------------------------------------------
stop_agent "$AGENT_PID" "koreo-agent"
no_sanitizer_reports "$WORK/agent.log" "$WORK/sim.kubesim.err"
[ "$fail" -eq 0 ] || show_log
finish "webapp acceptance"
