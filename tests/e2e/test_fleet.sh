#!/usr/bin/env bash
# tests/e2e/test_fleet.sh BUILD_DIR SRC_DIR SHARED_DIR: issue 6's end-to-end
# acceptance, as a user runs it.  PostgreSQL (private, loopback), the control
# plane, two kubesim clusters `east` and `west` with an agent each registered
# with bootstrap tokens; the hello-service example applied through the API;
# kubectl creates a labelled Deployment in east; its Service appears in east
# and not in west, the Deployment's status shows the conditions, and
# `koreoctl executions list --cluster east` shows the run with its steps.
# Then: the control plane restarted mid-run (the run completes); an agent
# stopped (the cluster shows offline; a change made meanwhile is applied when
# it returns); two replicas on one database (work continues when one dies).
set -uo pipefail
BIN=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
SHARED=$(cd "$3" && pwd)
command -v kubectl >/dev/null || { echo "SKIP: kubectl not found"; exit 77; }

FLEET_DIR=$(mktemp -d /tmp/koreo-e2e-XXXXXX)
FLEET_BIN=$BIN
FLEET_SRC=$SRC
FLEET_AGENT_ARGS="--log-level debug --autonomy-after 3s"
KEEP_LOGS=${KEEP_LOGS:-}
export FLEET_DIR FLEET_BIN FLEET_SRC FLEET_AGENT_ARGS
# shellcheck source=../../scripts/lib/fleet.sh
. "$SRC/scripts/lib/fleet.sh"

cleanup() {
  local rc=$?
  fleet_stop
  if [ $rc -ne 0 ]; then
    for f in "$FLEET_DIR"/logs/*.log; do
      echo "==== $f (last 40 lines)"
      tail -n 40 "$f"
    done
  fi
  if [ -n "$KEEP_LOGS" ]; then cp -r "$FLEET_DIR/logs" "$KEEP_LOGS"; fi
  rm -rf "$FLEET_DIR"
  exit $rc
}
trap cleanup EXIT
die() {
  echo "FAIL: $*" >&2
  exit 1
}

EX="$SHARED/reference/koreo-examples/kubernetes/hello-service"
east() { kubectl --kubeconfig "$FLEET_DIR/clusters/east/kubeconfig" "$@"; }
west() { kubectl --kubeconfig "$FLEET_DIR/clusters/west/kubeconfig" "$@"; }
has_service() { "$1" get service "$2" -n default -o name; }
ready_reason() { # CLUSTERFN DEPLOYMENT -> the Ready condition's reason
  "$1" get deployment "$2" -n default -o json |
    jq -r '.status.conditions[]? | select(.type == "Ready") | .reason'
}
# a labelled copy of the example Deployment: NAME SERVICE
deployment() {
  sed -e "s/name: nginx-deployment/name: $1/" -e "s/service: nginx-svc/service: $2/" \
    "$EX/deployment.yaml"
}

echo "== fleet up"
fleet_start_db || die "database"
fleet_start_cp cp1 || die "control plane"
fleet_add_cluster east || die "cluster east"
fleet_add_cluster west || die "cluster west"
fleet_koreoctl get clusters | tee "$FLEET_DIR/clusters.txt"
grep -q "east" "$FLEET_DIR/clusters.txt" || die "east not listed"

echo "== apply hello-service through the API"
mkdir -p "$FLEET_DIR/defs"
cp "$EX"/*.k.yaml "$FLEET_DIR/defs/"
fleet_koreoctl apply -f "$FLEET_DIR/defs" || die "koreoctl apply"
fleet_koreoctl get definitions | grep -q "hello-service" || die "definition not listed"

echo "== a labelled Deployment in east gets its Service, only in east"
east apply -f "$EX/deployment.yaml" >/dev/null || die "kubectl apply in east"
fleet_wait 60 has_service east nginx-svc || die "Service nginx-svc never appeared in east"
[ "$(east get service nginx-svc -n default -o jsonpath='{.spec.selector.app}')" = nginx ] ||
  die "Service selector"
[ "$(east get service nginx-svc -n default -o jsonpath='{.metadata.ownerReferences[0].kind}')" = Deployment ] ||
  die "Service is not owned by the Deployment"
has_service west nginx-svc >/dev/null 2>&1 && die "Service appeared in west"
fleet_wait 60 test -n "$(ready_reason east nginx-deployment)" || die "no Ready condition on the Deployment"
east get deployment nginx-deployment -n default -o json |
  jq -e '.status.conditions[] | select(.type == "Ready") | .message | test("hello-service")' >/dev/null ||
  die "Ready condition does not name the Workflow"
east get deployment nginx-deployment -n default -o json |
  jq -e '.metadata.annotations["koreo.dev/managed-resources"] | test("nginx-svc")' >/dev/null ||
  die "managed-resources annotation missing"

echo "== a trigger naming a Workflow that does not exist reports NoWorkflow (as upstream)"
deployment named-missing named-missing-svc |
  sed 's/^metadata:$/metadata:\n  annotations:\n    koreo.dev\/workflow: no-such-workflow/' |
  east apply -f - >/dev/null || die "kubectl apply named-missing"
reason_is() { [ "$(ready_reason "$1" "$2")" = "$3" ]; }
fleet_wait 60 reason_is east named-missing NoWorkflow ||
  die "no NoWorkflow condition (got '$(ready_reason east named-missing)')"
east get deployment named-missing -n default -o json |
  jq -e '.status.conditions[] | select(.type == "Ready") | .status == "false" and (.message | test("no-such-workflow"))' \
    >/dev/null || die "NoWorkflow condition's status/message"
has_service east named-missing-svc >/dev/null 2>&1 && die "a Workflow ran although the named one does not exist"

echo "== executions list --cluster east shows the run with its steps"
runs_for() { fleet_koreoctl executions list --cluster "$1" -o json | jq -r '(.items // .)[] | .id'; }
fleet_wait 30 test -n "$(runs_for east)" || die "no executions for east"
fleet_koreoctl executions list --cluster east
[ -z "$(runs_for west)" ] || die "west has executions but no trigger"
id=$(runs_for east | head -n 1)
fleet_koreoctl executions show "$id" -o json >"$FLEET_DIR/run.json" || die "executions show"
jq -e '.workflow | test("hello-service")' "$FLEET_DIR/run.json" >/dev/null || die "run's workflow"
jq -e '.steps | length > 0' "$FLEET_DIR/run.json" >/dev/null || die "run has no steps"
jq -e '.cluster == "east"' "$FLEET_DIR/run.json" >/dev/null || die "run's cluster"

echo "== restart the control plane mid-run: nothing lost"
deployment web2 web2-svc | east apply -f - >/dev/null || die "kubectl apply web2"
fleet_restart_cp cp1 || die "restarting the control plane"
fleet_wait 30 fleet_cluster_state_is east online || die "east did not reconnect"
fleet_wait 60 has_service east web2-svc || die "web2-svc never appeared after the restart"

echo "== stop west's agent: west goes offline; a change made meanwhile is applied on return"
fleet_kill agent-west
fleet_wait 35 fleet_cluster_state_is west offline || die "west not shown offline within 35 s"
fleet_koreoctl get clusters -o json | jq -e '(.items // .)[] | select(.name == "west") | .stateReason | length > 0' \
  >/dev/null || die "offline west has no reason"
deployment web3 web3-svc | west apply -f - >/dev/null || die "kubectl apply web3 in west"
FLEET_AGENT_ARGS="$FLEET_AGENT_ARGS --no-autonomy" fleet_start_agent west || die "restarting west's agent"
fleet_wait 60 has_service west web3-svc || die "web3-svc never appeared in west after the agent returned"

echo "== autonomy: the control plane is away, east's agent reconciles on its own and reports back"
cp_ports=$(cat "$FLEET_DIR/pids/cp1.ports")
fleet_kill cp1
deployment web5 web5-svc | east apply -f - >/dev/null || die "kubectl apply web5"
fleet_wait 60 has_service east web5-svc || die "web5-svc not created by the agent on its own"
# shellcheck disable=SC2086
fleet_start_cp cp1 $cp_ports || die "control plane back"
auto_runs() {
  fleet_koreoctl executions list --cluster east -o json |
    jq -e '[(.items // .)[] | select(.replica == "agent:east" and .trigger.name == "web5")] | length > 0'
}
fleet_wait 60 auto_runs || die "the autonomous run of web5 is not in the history"
auto_id=$(fleet_koreoctl executions list --cluster east -o json |
  jq -r '[(.items // .)[] | select(.replica == "agent:east" and .trigger.name == "web5")][0].id')
fleet_koreoctl executions show "$auto_id" -o json |
  jq -e '(.steps | length) == 2 and (.workflow | test("hello-service"))' >/dev/null ||
  die "the autonomous run's steps were not recorded"

echo "== two replicas on one database; one dies, work continues"
ap2=$(fleet_free_port)
hp2=$(fleet_free_port)
fleet_start_cp cp2 "$ap2" "$hp2" || die "second replica"
# the agents know both replicas; move them by stopping cp1
fleet_kill agent-east
FLEET_AGENT_SERVERS="$FLEET_AGENT_ADDR,127.0.0.1:$ap2" fleet_start_agent east || die "east's agent with two servers"
fleet_kill cp1
FLEET_API="https://127.0.0.1:$hp2"
deployment web4 web4-svc | east apply -f - >/dev/null || die "kubectl apply web4"
fleet_wait 90 has_service east web4-svc || die "web4-svc never appeared after replica cp1 died"
fleet_koreoctl executions list --cluster east -o json | jq -e '[(.items // .)[] | .replica] | index("cp2") != null' \
  >/dev/null || die "no run recorded by cp2"

echo "PASS"
