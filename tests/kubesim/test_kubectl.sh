#!/usr/bin/env bash
# tests/kubesim/test_kubectl.sh: the kubectl acceptance tests of kubesim.
# A real client (kubectl v1.32, $KUBECTL or on PATH) drives koreo-kubesim
# and every check compares what kubectl prints with what it prints against
# a real cluster: apply (built-in kinds, a CRD, its custom resources, twice),
# get (table, -o json/yaml/jsonpath/name/wide, -w, selectors, chunking),
# describe, patch (merge, json, strategic, status subresource), label,
# annotate, scale, delete (finalizers, dependents: background, foreground,
# orphan; namespaces), wait (condition, jsonpath), create (protobuf bodies),
# server-side apply with conflicts, and API errors.
#
# usage: test_kubectl.sh PATH/TO/koreo-kubesim     (exit 77: kubectl missing)
set -u

SIM=${1:?usage: test_kubectl.sh PATH/TO/koreo-kubesim}
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
if [ -z "$KUBECTL" ] || [ ! -x "$KUBECTL" ]; then
  echo "SKIP: kubectl not found"
  exit 77
fi
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$HERE/testdata
WORK=$(mktemp -d /tmp/kubesim-kubectl.XXXXXX)
SIM_PID=
BG_PIDS=()

cleanup() {
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$SIM_PID" ]; then
    kill "$SIM_PID" 2>/dev/null
    wait "$SIM_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$SIM" --listen 127.0.0.1:0 --write-kubeconfig "$WORK/kubeconfig" --exit-after 300 \
  --bookmark-interval 1 >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 1 100); do
  [ -s "$WORK/kubeconfig" ] && break
  sleep 0.1
done
if [ ! -s "$WORK/kubeconfig" ]; then
  echo "FAIL: kubesim did not write its kubeconfig"
  cat "$WORK/sim.err"
  exit 1
fi
export HOME=$WORK/home # kubectl's discovery cache
mkdir -p "$HOME"

k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --request-timeout=20s "$@"; }

. "$(dirname "$0")/assert.sh"
# expect_fail NAME REGEX COMMAND...: must exit non-zero with matching output
expect_fail() {
  local name=$1 re=$2
  shift 2
  local got rc
  got=$("$@" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] && [[ "$got" =~ $re ]]; then ok "$name"; else bad "$name" "want failure /$re/" "rc=$rc got: $(printf %q "$got")"; fi
}
# eventually NAME SECONDS WANT COMMAND...: poll until the output equals WANT
eventually() {
  local name=$1 secs=$2 want=$3
  shift 3
  local got i
  for ((i = 0; i < secs * 10; i++)); do
    got=$("$@" 2>&1)
    if [ "$got" == "$want" ]; then
      ok "$name"
      return
    fi
    sleep 0.1
  done
  bad "$name" "want: $(printf %q "$want")" "got:  $(printf %q "$got")"
}
AGE='[0-9]+s'

# ---------------------------------------------------------------- basics
expect_re "version reports the server" 'Server Version: v1\.32\.0-kubesim' k version
expect_re "api-resources lists built-ins" 'deployments +deploy +apps/v1 +true +Deployment' k api-resources
expect_re "api-resources lists namespaces cluster-scoped" 'namespaces +ns +v1 +false +Namespace' k api-resources
expect_re "default namespaces exist" "^NAME +STATUS +AGE
default +Active +$AGE
kube-node-lease +Active +$AGE
kube-public +Active +$AGE
kube-system +Active +$AGE\$" k get namespaces

# ---------------------------------------------------------------- apply built-ins
expect "apply -f built-in kinds" "namespace/demo created
configmap/app-config created
secret/app-secret created
serviceaccount/web created
deployment.apps/web created
service/web created" k apply -f "$DATA/builtins.yaml"
RV1=$(k -n demo get deploy web -o jsonpath='{.metadata.resourceVersion}')
expect "apply twice is a no-op" "namespace/demo unchanged
configmap/app-config unchanged
secret/app-secret configured
serviceaccount/web unchanged
deployment.apps/web unchanged
service/web unchanged" k apply -f "$DATA/builtins.yaml"
expect "apply twice keeps the resourceVersion" "$RV1" k -n demo get deploy web -o jsonpath='{.metadata.resourceVersion}'
expect "secret stringData is stored as base64 data" "czNjcjN0" k -n demo get secret app-secret -o jsonpath='{.data.password}'

# ---------------------------------------------------------------- get
expect_re "get configmap table" "^NAME +DATA +AGE
app-config +2 +$AGE\$" k -n demo get configmap app-config
expect_re "get deployment table" "^NAME +READY +UP-TO-DATE +AVAILABLE +AGE
web +0/2 +0 +0 +$AGE\$" k -n demo get deploy
expect_re "get deployment -o wide" "^NAME +READY +UP-TO-DATE +AVAILABLE +AGE +CONTAINERS +IMAGES +SELECTOR
web +0/2 +0 +0 +$AGE +web,sidecar +nginx:1\.27,busybox:1\.36 +app=web\$" k -n demo get deploy -o wide
expect_re "get service table" "^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE
web +ClusterIP +10\.96\.[0-9]+\.[0-9]+ +<none> +80/TCP +$AGE\$" k -n demo get svc
expect_re "get secret table" "^NAME +TYPE +DATA +AGE
app-secret +Opaque +1 +$AGE\$" k -n demo get secrets
expect_re "get all namespaces" "NAMESPACE +NAME +DATA +AGE
demo +app-config +2 +$AGE" k get cm -A
expect "get -o jsonpath" "hello fast" k -n demo get cm app-config -o jsonpath='{.data.greeting} {.data.mode}'
expect_re "get -o json" '"kind": "ConfigMap",
    "metadata": \{
        "annotations": \{
            "kubectl.kubernetes.io/last-applied-configuration"' k -n demo get cm app-config -o json
expect_re "get -o yaml" "^apiVersion: v1
data:
  greeting: hello
  mode: fast
kind: ConfigMap
metadata:" k -n demo get cm app-config -o yaml
expect "get -o name" "deployment.apps/web" k -n demo get deploy -o name
expect "deployment defaults" "RollingUpdate 25% 10 600 Always IfNotPresent" k -n demo get deploy web -o jsonpath='{.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].imagePullPolicy}'
expect "generation starts at 1" "1" k -n demo get deploy web -o jsonpath='{.metadata.generation}'
expect_fail "get of a missing object" '^Error from server \(NotFound\): configmaps "nope" not found$' k -n demo get cm nope
expect "get in a missing namespace is empty" 'No resources found in nowhere namespace.' k -n nowhere get cm
expect_fail "unknown resource type" "the server doesn't have a resource type \"gizmos\"" k get gizmos

for i in 1 2 3 4 5; do k -n demo create configmap "page-$i" --from-literal=i="$i" >/dev/null; done
expect "create (protobuf body) and list with a label selector" "app-config" k -n demo get cm -l app=web -o jsonpath='{.items[*].metadata.name}'
expect "field selector" "page-3" k -n demo get cm --field-selector metadata.name=page-3 -o jsonpath='{.items[*].metadata.name}'
expect "set-based label selector" "app-config" k -n demo get cm -l 'app in (web,api),!tier' -o jsonpath='{.items[*].metadata.name}'
expect "pagination with --chunk-size" "app-config page-1 page-2 page-3 page-4 page-5" k -n demo get cm --chunk-size=2 -o jsonpath='{.items[*].metadata.name}'
expect_fail "unsupported field selector" 'field label not supported: spec\.foo' k -n demo get cm --field-selector spec.foo=bar

# ---------------------------------------------------------------- patch, label, annotate
expect "strategic merge patch" "deployment.apps/web patched" k -n demo patch deploy web -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}'
expect "strategic patch merges containers by name" "nginx:1.28 busybox:1.36 80 MODE" k -n demo get deploy web -o jsonpath='{.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.template.spec.containers[0].env[0].name}'
expect "generation bumped by a spec change" "2" k -n demo get deploy web -o jsonpath='{.metadata.generation}'
expect "strategic \$patch: delete of a list item" "deployment.apps/web patched" k -n demo patch deploy web -p '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}'
expect "the item is gone" "web" k -n demo get deploy web -o jsonpath='{.spec.template.spec.containers[*].name}'
expect "merge patch" "configmap/app-config patched" k -n demo patch cm app-config --type merge -p '{"data":{"mode":null,"extra":"x"}}'
expect "merge patch removes with null" '{"extra":"x","greeting":"hello"}' k -n demo get cm app-config -o jsonpath='{.data}'
expect "json patch" "deployment.apps/web patched" k -n demo patch deploy web --type json -p '[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels/tier","value":"front"}]'
expect "json patch applied" "3 front" k -n demo get deploy web -o jsonpath='{.spec.replicas} {.metadata.labels.tier}'
expect_fail "json patch test failure" 'The request is invalid: .*testing value /spec/replicas failed' k -n demo patch deploy web --type json -p '[{"op":"test","path":"/spec/replicas","value":9}]'
expect "the json patch changed the spec: generation 4" "4" k -n demo get deploy web -o jsonpath='{.metadata.generation}'
expect "label a deployment" "deployment.apps/web labeled" k -n demo label deploy web stage=test
expect "metadata-only change keeps the generation" "4" k -n demo get deploy web -o jsonpath='{.metadata.generation}'
expect "label" "configmap/app-config labeled" k -n demo label cm app-config tier=backend
expect_fail "label without --overwrite" "already has a value \(backend\)" k -n demo label cm app-config tier=frontend
expect "label --overwrite" "configmap/app-config labeled" k -n demo label cm app-config tier=frontend --overwrite
expect_re "get --show-labels" "app-config +2 +$AGE +app=web,tier=frontend" k -n demo get cm app-config --show-labels
expect "remove a label" "configmap/app-config unlabeled" k -n demo label cm app-config tier-
expect "annotate" "configmap/app-config annotated" k -n demo annotate cm app-config note='hello world'
expect "annotation stored" "hello world" k -n demo get cm app-config -o jsonpath='{.metadata.annotations.note}'
expect "label several objects" "configmap/page-1 labeled
configmap/page-2 labeled" k -n demo label cm page-1 page-2 paged=yes
expect "list by the new label" "page-1 page-2" k -n demo get cm -l paged=yes -o jsonpath='{.items[*].metadata.name}'

# ---------------------------------------------------------------- status subresource, scale, wait
expect "status patch through the subresource" "deployment.apps/web patched" k -n demo patch deploy web --subresource=status --type merge -p '{"status":{"replicas":3,"readyReplicas":3,"updatedReplicas":3,"availableReplicas":3}}'
expect_re "status shows in the table" "web +3/3 +3 +3 +$AGE" k -n demo get deploy web
expect "status patch leaves spec alone" "3" k -n demo get deploy web -o jsonpath='{.spec.replicas}'
expect "spec patch cannot change status" "deployment.apps/web patched" k -n demo patch deploy web --type merge -p '{"status":{"readyReplicas":0},"metadata":{"annotations":{"x":"y"}}}'
expect "status unchanged by the main resource" "3" k -n demo get deploy web -o jsonpath='{.status.readyReplicas}'
expect "scale" "deployment.apps/web scaled" k -n demo scale deploy web --replicas=5
expect "scaled spec.replicas" "5" k -n demo get deploy web -o jsonpath='{.spec.replicas}'
expect_fail "scale with a stale --resource-version" 'Expected resource version to be 1, was [0-9]+' k -n demo scale deploy web --replicas=6 --resource-version=1
(
  sleep 1
  k -n demo patch deploy web --subresource=status --type merge -p '{"status":{"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable","message":"Deployment has minimum availability."}]}}' >/dev/null
) &
BG_PIDS+=($!)
expect "wait --for=condition" "deployment.apps/web condition met" k -n demo wait --for=condition=Available deploy/web --timeout=15s
expect_fail "wait times out" 'timed out waiting for the condition' k -n demo wait --for=condition=Progressing deploy/web --timeout=1s

# ---------------------------------------------------------------- describe
expect_re "describe deployment" "^Name: +web
Namespace: +demo
CreationTimestamp: .*
Labels: +app=web
 +stage=test
 +tier=front
Annotations: +x: y
Selector: +app=web
Replicas: +5 desired \| 3 updated \| 3 total \| 3 available \| 0 unavailable
StrategyType: +RollingUpdate
MinReadySeconds: +0
RollingUpdateStrategy: +25% max unavailable, 25% max surge
Pod Template:
  Labels: +app=web
  Service Account: +web
  Containers:
   web:
    Image: +nginx:1\.28
    Port: +80/TCP" k -n demo describe deploy web
expect_re "describe configmap" "^Name: +app-config
Namespace: +demo
Labels: +app=web
Annotations: +note: hello world

Data
====
[^@]*extra:
----
x
[^@]*Events: +<none>\$" k -n demo describe cm app-config
expect_re "describe namespace" "^Name: +demo
Labels: +kubernetes.io/metadata.name=demo
Annotations: +<none>
Status: +Active" k describe ns demo

# ---------------------------------------------------------------- diff, replace, rollout, events
sed 's/replicas: 2/replicas: 7/' "$DATA/builtins.yaml" >"$WORK/builtins7.yaml"
expect_re "diff shows a server-side dry run" '^diff -u -N .*
-  generation: 5
\+  generation: 6.*
-  replicas: 5
\+  replicas: 7' k diff -f "$WORK/builtins7.yaml"
expect "the dry run stored nothing" "5 5" k -n demo get deploy web -o jsonpath='{.spec.replicas} {.metadata.generation}'
k -n demo get cm app-config -o yaml | sed 's/greeting: hello/greeting: replaced/' >"$WORK/cm.yaml"
expect "replace" "configmap/app-config replaced" k replace -f "$WORK/cm.yaml"
expect "replaced content" "replaced" k -n demo get cm app-config -o jsonpath='{.data.greeting}'
expect_fail "replace with a stale resourceVersion" 'the object has been modified; please apply your changes to the latest version and try again' k replace -f "$WORK/cm.yaml"
(
  sleep 1
  k -n demo patch deploy web --subresource=status --type merge -p '{"status":{"observedGeneration":5,"replicas":5,"updatedReplicas":5,"readyReplicas":5,"availableReplicas":5,"conditions":[{"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"},{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"}]}}' >/dev/null
) &
BG_PIDS+=($!)
expect_re "rollout status" 'deployment "web" successfully rolled out$' k -n demo rollout status deploy/web --timeout=15s
WEB_UID=$(k -n demo get deploy web -o jsonpath='{.metadata.uid}')
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
expect "apply an event" "event/web.1 created" k apply -f - <<EOF
apiVersion: v1
kind: Event
metadata: {name: web.1, namespace: demo}
involvedObject: {apiVersion: apps/v1, kind: Deployment, name: web, namespace: demo, uid: $WEB_UID}
reason: ScalingReplicaSet
message: Scaled up replica set web-abc to 5
type: Normal
source: {component: deployment-controller}
firstTimestamp: "$NOW"
lastTimestamp: "$NOW"
count: 1
EOF
expect_re "get events" "^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE
$AGE +Normal +ScalingReplicaSet +deployment/web +Scaled up replica set web-abc to 5\$" k -n demo get events
expect_re "describe shows the object's events (field selectors)" "Events:
  Type +Reason +Age +From +Message
  ---- +------ +---- +---- +-------
  Normal +ScalingReplicaSet +$AGE +deployment-controller +Scaled up replica set web-abc to 5\$" k -n demo describe deploy web

# ---------------------------------------------------------------- CRD and custom resources
expect "apply a CRD" "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created" k apply -f "$DATA/widgets-crd.yaml"
expect_re "the CRD is established" "widgets\.example\.com +[0-9T:-]+Z" k get crd
expect "wait for Established" "customresourcedefinition.apiextensions.k8s.io/widgets.example.com condition met" k wait --for=condition=Established crd/widgets.example.com --timeout=5s
expect_re "its kind is discovered at once" 'widgets +wd +example\.com/v1 +true +Widget' k api-resources --api-group=example.com
expect_re "explain a custom resource from its schema" "KIND: +Widget[^@]*FIELD: +spec <Object>[^@]*size	<string> -required-
  enum: small, medium, large" k explain widgets.spec
expect "apply custom resources" "widget.example.com/w1 created
widget.example.com/w2 created" k apply -f "$DATA/widgets.yaml"
expect "apply custom resources twice" "widget.example.com/w1 unchanged
widget.example.com/w2 unchanged" k apply -f "$DATA/widgets.yaml"
expect_re "additionalPrinterColumns" "^NAME +SIZE +REPLICAS +PHASE +AGE
w1 +small +2 + $AGE
w2 +large +1 + $AGE\$" k -n demo get widgets
expect "schema defaults applied" "blue 1" k -n demo get widget w2 -o jsonpath='{.spec.color} {.spec.replicas}'
expect_fail "schema validation: enum" 'The Widget "bad" is invalid: spec\.size: Unsupported value: "huge": supported values: "small", "medium", "large"' k -n demo apply -f - <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: bad}
spec: {size: huge}
EOF
expect_fail "schema validation: required and minimum" 'The Widget "bad" is invalid: 
\* spec\.size: Required value
\* spec\.replicas: Invalid value: -1: spec\.replicas in body should be greater than or equal to 0' k -n demo apply -f - <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: bad}
spec: {replicas: -1}
EOF
expect_fail "unknown fields are refused (fieldValidation=Strict)" 'Error from server \(BadRequest\): error when creating "STDIN": Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec\.colour"' k -n demo apply -f - <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: loose}
spec: {size: small, colour: red}
EOF
expect "--validate=false: unknown fields are pruned" "widget.example.com/loose created" k -n demo apply --validate=false -f - <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: loose}
spec: {size: small, colour: red}
EOF
expect "pruned" '{"color":"blue","replicas":1,"size":"small"}' k -n demo get widget loose -o jsonpath='{.spec}'
expect "delete a custom resource" 'widget.example.com "loose" deleted' k -n demo delete widget loose
expect_fail "strategic merge patch refused for custom resources" 'application/strategic-merge-patch\+json is not supported by example\.com/v1, Kind=Widget' k -n demo patch widget w1 --type strategic -p '{"spec":{"size":"medium"}}'
expect "merge patch of a custom resource" "widget.example.com/w1 patched" k -n demo patch widget w1 --type merge -p '{"spec":{"size":"medium"}}'
expect "custom resource generation" "2" k -n demo get widget w1 -o jsonpath='{.metadata.generation}'
expect "scale a custom resource" "widget.example.com/w1 scaled" k -n demo scale widget w1 --replicas=4
expect "custom resource status subresource" "widget.example.com/w1 patched" k -n demo patch widget w1 --subresource=status --type merge -p '{"status":{"phase":"Ready","replicas":4}}'
expect "status change keeps the generation" "3" k -n demo get widget w1 -o jsonpath='{.metadata.generation}'
expect "wait --for=jsonpath" "widget.example.com/w1 condition met" k -n demo wait --for=jsonpath='{.status.phase}'=Ready widget/w1 --timeout=5s
expect_re "custom resource table after status" "w1 +medium +4 +Ready +$AGE" k -n demo get wd w1
expect_re "describe custom resource" "^Name: +w1
Namespace: +demo
Labels: +<none>
Annotations: +<none>
API Version: +example\.com/v1
Kind: +Widget" k -n demo describe widget w1
expect_re "get all includes the custom resources (category all)" "widget\.example\.com/w1" k -n demo get all

# ---------------------------------------------------------------- watch
k -n demo get cm -w --output-watch-events >"$WORK/watch.out" 2>&1 &
WPID=$!
BG_PIDS+=($WPID)
sleep 1
k -n demo create configmap watched --from-literal=a=b >/dev/null
k -n demo label cm watched seen=yes >/dev/null
k -n demo delete cm watched >/dev/null
for _ in $(seq 1 50); do grep -q '^DELETED *watched' "$WORK/watch.out" && break; sleep 0.1; done
kill $WPID 2>/dev/null
wait $WPID 2>/dev/null
expect_re "get -w receives events" "^EVENT +NAME +DATA +AGE
ADDED +app-config +2 +$AGE
(ADDED +page-[1-5] +1 +$AGE
){5}ADDED +watched +1 +$AGE
MODIFIED +watched +1 +$AGE
DELETED +watched +1 +$AGE" cat "$WORK/watch.out"

# ---------------------------------------------------------------- delete
expect "delete" 'configmap "page-5" deleted' k -n demo delete cm page-5
k -n demo create configmap held --from-literal=a=b >/dev/null
k -n demo patch cm held --type merge -p '{"metadata":{"finalizers":["example.com/hold"]}}' >/dev/null
expect "delete with a finalizer (no wait)" 'configmap "held" deleted' k -n demo delete cm held --wait=false
expect_re "the object stays with a deletionTimestamp" '^[0-9T:-]+Z \["example.com/hold"\]$' k -n demo get cm held -o jsonpath='{.metadata.deletionTimestamp} {.metadata.finalizers}'
expect_fail "no new finalizers while deleting" 'no new finalizers can be added if the object is being deleted' k -n demo patch cm held --type merge -p '{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}'
(
  sleep 1
  k -n demo patch cm held --type json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
) &
BG_PIDS+=($!)
expect "delete waits for the finalizer" 'configmap "held" deleted' k -n demo delete cm held --timeout=15s
expect_fail "the object is gone" 'NotFound' k -n demo get cm held

owned() { # owned OWNER NAME...: configmaps owned by configmap OWNER
  local owner=$1 uid
  shift
  uid=$(k -n demo get cm "$owner" -o jsonpath='{.metadata.uid}')
  for n in "$@"; do
    k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $n
  namespace: demo
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: $owner, uid: $uid, blockOwnerDeletion: true}
data: {k: v}
EOF
  done
}
k -n demo create cm owner-bg >/dev/null
owned owner-bg dep-bg-1 dep-bg-2
expect "delete an owner (background)" 'configmap "owner-bg" deleted' k -n demo delete cm owner-bg
eventually "dependents are collected" 10 "" k -n demo get cm dep-bg-1 dep-bg-2 --ignore-not-found -o name
k -n demo create cm owner-fg >/dev/null
owned owner-fg dep-fg-1
k -n demo patch cm dep-fg-1 --type merge -p '{"metadata":{"finalizers":["example.com/slow"]}}' >/dev/null
expect "delete an owner (foreground, no wait)" 'configmap "owner-fg" deleted' k -n demo delete cm owner-fg --cascade=foreground --wait=false
expect "foreground: the owner waits for its dependents" '["foregroundDeletion"]' k -n demo get cm owner-fg -o jsonpath='{.metadata.finalizers}'
eventually "foreground: the dependent is being deleted" 10 "example.com/slow 0" k -n demo get cm dep-fg-1 -o jsonpath='{.metadata.finalizers[0]}{" "}{.metadata.deletionGracePeriodSeconds}'
k -n demo patch cm dep-fg-1 --type json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
eventually "foreground: owner and dependent are gone" 10 "" k -n demo get cm owner-fg dep-fg-1 --ignore-not-found -o name
k -n demo create cm owner-or >/dev/null
owned owner-or dep-or-1
expect "delete an owner (orphan)" 'configmap "owner-or" deleted' k -n demo delete cm owner-or --cascade=orphan
eventually "orphan: the dependent stays, unowned" 10 "dep-or-1 " k -n demo get cm dep-or-1 -o jsonpath='{.metadata.name} {.metadata.ownerReferences}'

# ---------------------------------------------------------------- server-side apply
cat >"$WORK/ssa.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
  namespace: demo
data:
  a: "1"
  b: "2"
EOF
expect "server-side apply" "configmap/ssa serverside-applied" k apply --server-side -f "$WORK/ssa.yaml"
expect "server-side apply twice" "configmap/ssa serverside-applied" k apply --server-side -f "$WORK/ssa.yaml"
expect "managedFields record the applier" "kubectl Apply" k -n demo get cm ssa --show-managed-fields -o jsonpath='{.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}'
k -n demo patch cm ssa --type merge -p '{"data":{"a":"changed"}}' >/dev/null
expect_fail "server-side apply conflict" 'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: \.data\.a' k apply --server-side -f "$WORK/ssa.yaml"
expect "server-side apply --force-conflicts" "configmap/ssa serverside-applied" k apply --server-side --force-conflicts -f "$WORK/ssa.yaml"
sed -i '/  b: "2"/d' "$WORK/ssa.yaml"
k apply --server-side -f "$WORK/ssa.yaml" >/dev/null
expect "fields no longer applied are removed" '{"a":"1"}' k -n demo get cm ssa -o jsonpath='{.data}'

# ---------------------------------------------------------------- errors
expect_fail "create of an existing object" 'error: failed to create configmap: configmaps "ssa" already exists' k -n demo create cm ssa
expect_fail "create -f of an existing object" 'Error from server \(AlreadyExists\): error when creating ".*": configmaps "ssa" already exists' k create -f "$WORK/ssa.yaml"
expect_fail "namespace must exist" 'error: failed to create configmap: namespaces "ghost" not found' k -n ghost create cm x
expect_fail "invalid name" 'is invalid: metadata\.name: Invalid value: "Bad_Name"' k -n demo create cm Bad_Name
expect_fail "selector must match the template" '`selector` does not match template `labels`' k -n demo apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatch}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: busybox}]}
EOF
expect_fail "optimistic concurrency" 'Operation cannot be fulfilled on configmaps "ssa": the object has been modified' k -n demo patch cm ssa --type merge -p '{"metadata":{"resourceVersion":"1"},"data":{"z":"1"}}'

# ---------------------------------------------------------------- namespaces go with their content
expect "delete a namespace" 'namespace "demo" deleted' k delete ns demo --timeout=30s
expect "its content is gone" 'No resources found' k get cm,deploy,widgets -A
k apply -f - >/dev/null <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: last, namespace: default, finalizers: [example.com/hold]}
spec: {size: small}
EOF
expect "delete the CRD (no wait)" 'customresourcedefinition.apiextensions.k8s.io "widgets.example.com" deleted' k delete crd widgets.example.com --wait=false
expect "the CRD terminates while custom resources remain" '["customresourcecleanup.apiextensions.k8s.io"] Terminating' k get crd widgets.example.com -o jsonpath='{.metadata.finalizers} {.status.conditions[-1].type}'
expect_fail "no new custom resources meanwhile" 'create not allowed while custom resource definition is terminating' k apply -f - <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: more, namespace: default}
spec: {size: small}
EOF
k patch widget last --type json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
eventually "the CRD goes with its last custom resource" 10 "" k get crd --ignore-not-found -o name
expect_fail "the kind is gone" "the server doesn't have a resource type \"widgets\"|Unable to list \"example.com/v1, Resource=widgets\": the server could not find the requested resource" k get widgets
expect_re "and gone from discovery" '^$' k api-resources --api-group=example.com --no-headers

echo "kubectl tests: $PASS passed, $FAIL failed"
if ! kill -0 "$SIM_PID" 2>/dev/null; then
  echo "FAIL: kubesim died"
  cat "$WORK/sim.err"
  exit 1
fi
kill "$SIM_PID"
wait "$SIM_PID"
rc=$?
SIM_PID=
if [ -s "$WORK/sim.err" ]; then
  echo "kubesim stderr:"
  cat "$WORK/sim.err"
  if grep -q "ERROR: \|runtime error" "$WORK/sim.err"; then FAIL=$((FAIL + 1)); fi
fi
[ $rc -eq 0 ] || { echo "FAIL: kubesim exited with $rc"; FAIL=$((FAIL + 1)); }
[ $FAIL -eq 0 ]
