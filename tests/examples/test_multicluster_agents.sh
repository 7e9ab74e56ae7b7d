#!/usr/bin/env bash
# tests/examples/test_multicluster_agents.sh KUBESIM AGENT EXAMPLES: the
# multicluster example on a fleet of two clusters, `east` and `west`
# (two koreo-kubesim processes), each with its own `koreo-agent --standalone
# --definitions examples/multicluster`. The same CRD, namespace and Team are
# applied to both with kubectl; each cluster must get the team-info
# ConfigMap and the deployer ServiceAccount and show the Workflow Ready in
# its own Team's status. A change in one cluster stays in that cluster.
# Every process started here is stopped on exit. Skipped (77) without kubectl.
set -u
SIM=${1:?usage: test_multicluster_agents.sh KUBESIM AGENT EXAMPLES}
AGENT=${2:?usage: test_multicluster_agents.sh KUBESIM AGENT EXAMPLES}
EXAMPLES=${3:?usage: test_multicluster_agents.sh KUBESIM AGENT EXAMPLES}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_kubectl
MC=$(cd "$EXAMPLES/multicluster" && pwd)

# jp CLUSTER KIND/NAME JSONPATH: one field of an object in namespace payments
jp() { k "$1" get "$2" -n payments -o "jsonpath=$3" 2>/dev/null; }
team_ready() { [ "$(jp "$1" team/payments '{.status.conditions[?(@.type=="Ready")].reason}')" = Ready ]; }

declare -A AGENT_PID
for c in east west; do
  start_kubesim "$SIM" $c
  k $c apply -f "$MC/crd.yaml" -f "$MC/namespace.yaml" >/dev/null || bad "$c: kubectl apply"
  k $c wait --for=condition=Established crd/teams.platform.koreo.example --timeout=20s >/dev/null ||
    bad "$c: the Team CRD is not Established"
  "$AGENT" --standalone --definitions "$MC" --kubeconfig "$WORK/$c.kubeconfig" \
    --reload-interval 1s >"$WORK/$c.agent.log" 2>&1 &
  AGENT_PID[$c]=$!
  bg_started $!
  k $c apply -f "$MC/team.yaml" >/dev/null || bad "$c: kubectl apply team.yaml"
done

for c in east west; do
  if ! wait_for 40 "$c: Team payments Ready" team_ready $c; then
    tail -20 "$WORK/$c.agent.log"
    k $c get team payments -n payments -o yaml | sed -n '/^status:/,$p'
    continue
  fi
  expect "$c: team-info OWNER" "$(jp $c cm/team-info '{.data.OWNER}')" payments-team@example.com
  expect "$c: team-info ENVIRONMENT" "$(jp $c cm/team-info '{.data.ENVIRONMENT}')" prod
  expect "$c: team-info CHAT_CHANNEL" "$(jp $c cm/team-info '{.data.CHAT_CHANNEL}')" "#payments"
  expect "$c: deployer owner annotation" \
    "$(jp $c sa/payments-deployer '{.metadata.annotations.platform\.koreo\.example/owner}')" \
    payments-team@example.com
  expect "$c: deployer owned by the Team" \
    "$(jp $c sa/payments-deployer '{.metadata.ownerReferences[0].kind}')" Team
  expect "$c: Ready message" "$(jp $c team/payments '{.status.conditions[?(@.type=="Ready")].message}')" \
    "Workflow team.v1 ready."
  expect "$c: state" "$(jp $c team/payments '{.status.state.environment} {.status.state.configMap} {.status.state.deployer}')" \
    "prod team-info payments-deployer"
done

# A change in east only: east's ConfigMap follows, west's does not.
k east patch team payments -n payments --type=merge -p '{"spec":{"environment":"staging"}}' >/dev/null ||
  bad "east: patching the Team"
east_staging() { [ "$(jp east cm/team-info '{.data.ENVIRONMENT}')" = staging ]; }
wait_for 30 "east: team-info ENVIRONMENT=staging" east_staging
expect "west unchanged" "$(jp west cm/team-info '{.data.ENVIRONMENT}')" prod

for c in east west; do
  stop_agent "${AGENT_PID[$c]}" "$c: koreo-agent"
done
no_sanitizer_reports "$WORK"/*.log "$WORK"/*.err
finish "multicluster acceptance"
