#!/usr/bin/env bash
# tests/deploy/test_pod_smoke.sh: the Kubernetes Deployments of
# deploy/kubernetes run as local processes, as the kubelet would run them:
# the containers' own arguments (check_deploy.py --print-args, $(VAR)
# expanded from their ConfigMaps), uid/gid 65532 with the fsGroup's group,
# the PKI from deploy/pki/make-pki.sh mounted read-only with the Secret
# volume's modes, the control plane's pod hostname (unshare -u), a private
# PostgreSQL (tests/pg/pg-start.sh) and a kubesim standing in for the
# agent's cluster. Only addresses, ports and mount paths are moved.
#
# Checks: the control plane starts, answers its probes (/healthz, /readyz
# over HTTPS) and leaves the read-only PKI alone; the bootstrap token it
# issues carries make-pki.sh's pin; the agent registers with it, connects,
# answers its probes (/healthz, /readyz); and after a restart with the same
# state volume and the spent token still in its arguments it reconnects
# with the same certificate.
#
# usage: test_pod_smoke.sh KOREO-CONTROLPLANE KOREO-AGENT KOREO-KUBESIM
# Exit 77 (skipped) when not root, without unshare/setpriv/curl, or without
# PostgreSQL's server binaries.  env: DEPLOY_YAML, DEPLOY_DIR, PYTHON3.
set -u
CP=${1:?usage: test_pod_smoke.sh KOREO-CONTROLPLANE KOREO-AGENT KOREO-KUBESIM}
AGENT=${2:?}
SIM=${3:?}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEPLOY_DIR=${DEPLOY_DIR:-$ROOT/deploy}
PYTHON3=${PYTHON3:-python3}
: "${DEPLOY_YAML:?DEPLOY_YAML must point at the deploy_yaml program}"

skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (unshare, setpriv, bind mounts)"
for t in unshare setpriv curl mount; do command -v $t >/dev/null || skip "$t not found"; done
unshare -mu true 2>/dev/null || skip "unshare -mu is not permitted here"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v pg_config >/dev/null ||
  skip "PostgreSQL server binaries not installed"

WORK=$(mktemp -d /tmp/deploy-pod-smoke.XXXXXX)
chmod 0755 "$WORK"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  "$ROOT/tests/pg/pg-stop.sh" "$WORK/pg" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# shellcheck source=../kubesim/assert.sh disable=SC1091
. "$ROOT/tests/kubesim/assert.sh" # PASS, FAIL, ok NAME, bad NAME LINES...

free_port() { "$PYTHON3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# eventually SECONDS COMMAND...: poll until COMMAND succeeds
eventually() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}
http_ok() { [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ]; }
agents_connected() { curl -sk --max-time 2 "https://127.0.0.1:$API_PORT/metrics" | grep -qx "koreo_agents_connected $1"; }
args_of() { DEPLOY_DIR=$DEPLOY_DIR "$PYTHON3" "$HERE/check_deploy.py" --print-args "$1"; }
logs() { tail -n 15 "$@" 2>/dev/null; }
same() { [ "$1" = "$2" ]; }
# within NAME SECONDS LOG COMMAND...: ok when COMMAND succeeds within
# SECONDS, else bad with the end of LOG
within() {
  local name=$1 secs=$2 log=$3
  shift 3
  if eventually "$secs" "$@"; then ok "$name"; else bad "$name" "$(logs "$log")"; fi
}
# verdict NAME DETAIL COMMAND...: ok when COMMAND succeeds, else bad with DETAIL
verdict() {
  local name=$1 detail=$2
  shift 2
  if "$@"; then ok "$name"; else bad "$name" "$detail"; fi
}

# --- PostgreSQL, PKI ------------------------------------------------------
URL=$("$ROOT/tests/pg/pg-start.sh" "$WORK/pg" 2>"$WORK/pg.err") ||
  skip "PostgreSQL did not start: $(cat "$WORK/pg.err")"
PIN=$("$DEPLOY_DIR/pki/make-pki.sh" --out "$WORK/pki" --host koreo-controlplane 2>"$WORK/pki.err")
if [ ${#PIN} -ne 64 ]; then
  bad "make-pki.sh prints the CA pin" "$(cat "$WORK/pki.err")"
  echo "$PASS passed, $FAIL failed"
  exit 1
fi
# The Secret volume as the kubelet makes it: root-owned files, group =
# fsGroup, mode = defaultMode (0440).
mkdir -p "$WORK/secret" "$WORK/mnt/pki"
cp "$WORK/pki"/* "$WORK/secret/"
chgrp -R 65532 "$WORK/secret" && chmod 0440 "$WORK/secret"/* && chmod 0755 "$WORK/secret" "$WORK/mnt"
CRT_SUM=$(sha256sum <"$WORK/secret/server.crt")

# --- control plane ----------------------------------------------------------
AGENT_PORT=$(free_port)
API_PORT=$(free_port)
mapfile -t CP_ARGS < <(args_of controlplane)
run_args=()
for a in "${CP_ARGS[@]}"; do
  case "$a" in
  --pki-dir=*) a=--pki-dir=$WORK/mnt/pki ;;
  --agent-listen=*) a=--agent-listen=0.0.0.0:$AGENT_PORT ;;
  --api-listen=*) a=--api-listen=0.0.0.0:$API_PORT ;;
  esac
  run_args+=("$a")
done
verdict "control plane arguments read from the manifest" "${run_args[*]}" same "${run_args[0]:-}" serve
# The pod's host name, as the manifest sets it (none: the machine's).
POD_HOSTNAME=$("$DEPLOY_YAML" json "$DEPLOY_DIR"/kubernetes/controlplane/*.yaml | "$PYTHON3" -c '
import json, sys
for e in json.load(sys.stdin):
    if e["doc"].get("kind") == "Deployment":
        print(e["doc"]["spec"]["template"]["spec"].get("hostname") or "")')
POD_HOSTNAME=${POD_HOSTNAME:-$(hostname)}
# unshare keeps the PID through both execs, so $! is the daemon itself.
# shellcheck disable=SC2016 # expanded by the inner shell
KOREO_DATABASE_URL=$URL unshare -mu sh -c '
  hostname "$0" &&
  mount --bind -o ro "$1" "$2" && shift 2 &&
  exec setpriv --reuid 65532 --regid 65532 --groups 65532 "$@"' \
  "$POD_HOSTNAME" "$WORK/secret" "$WORK/mnt/pki" "$CP" "${run_args[@]}" >"$WORK/cp.log" 2>&1 &
CP_PID=$!
PIDS+=("$CP_PID")
within "control plane: /healthz answers 200 (liveness probe, HTTPS on the API port)" 30 \
  "$WORK/cp.log" http_ok "https://127.0.0.1:$API_PORT/healthz"
within "control plane: /readyz answers 200 (readiness probe)" 30 \
  "$WORK/cp.log" http_ok "https://127.0.0.1:$API_PORT/readyz"
verdict "control plane: kept the PKI Secret's server certificate (read-only mount, pod hostname)" \
  "$(logs "$WORK/cp.log")" same "$(sha256sum <"$WORK/secret/server.crt")" "$CRT_SUM"

# A bootstrap token, as an admin makes one (on a copy of the PKI: the
# command runs outside the pod).
cp -r "$WORK/pki" "$WORK/pki-admin"
TOKEN=$("$CP" tokens bootstrap --cluster east --ttl 1h --pki-dir "$WORK/pki-admin" \
  --database-url "$URL" 2>"$WORK/token.err")
verdict "the bootstrap token carries make-pki.sh's CA pin" \
  "token: $TOKEN pin: $PIN $(cat "$WORK/token.err")" same "${TOKEN##*.}" "$PIN"

# --- agent ------------------------------------------------------------------
"$SIM" --listen 127.0.0.1:0 --write-kubeconfig "$WORK/kubeconfig" --exit-after 170 \
  >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=("$!")
eventually 10 test -s "$WORK/kubeconfig" || bad "kubesim wrote its kubeconfig" "$(cat "$WORK/sim.err")"
chmod 0644 "$WORK/kubeconfig" # stands in for the in-cluster service account
# The state volume as the kubelet makes it with fsGroup: group-owned, setgid.
mkdir -p "$WORK/state"
chgrp 65532 "$WORK/state" && chmod 2775 "$WORK/state"
HEALTH_PORT=$(free_port)
mapfile -t AGENT_ARGS < <(args_of agent)
agent_args=()
for a in "${AGENT_ARGS[@]}"; do
  case "$a" in
  --server=*) a=--server=127.0.0.1:$AGENT_PORT ;;
  --bootstrap-token=*) a=--bootstrap-token=$TOKEN ;;
  --state-dir=*) a=--state-dir=$WORK/state ;;
  --health-listen=*) a=--health-listen=127.0.0.1:$HEALTH_PORT ;;
  esac
  agent_args+=("$a")
done
start_agent() {
  KUBECONFIG=$WORK/kubeconfig setpriv --reuid 65532 --regid 65532 --groups 65532 \
    "$AGENT" "${agent_args[@]}" >>"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
}
start_agent
within "agent: registered with the token (cert.pem in the state volume)" 30 \
  "$WORK/agent.log" test -s "$WORK/state/cert.pem"
within "agent: connected (koreo_agents_connected 1)" 30 "$WORK/agent.log" agents_connected 1
within "agent: /healthz answers 200 (liveness probe on --health-listen)" 20 \
  "$WORK/agent.log" http_ok "http://127.0.0.1:$HEALTH_PORT/healthz"
within "agent: /readyz answers 200 (readiness probe)" 20 \
  "$WORK/agent.log" http_ok "http://127.0.0.1:$HEALTH_PORT/readyz"

# A pod restart: same state volume, the spent token still in the arguments.
CERT_SUM=$(sha256sum <"$WORK/state/cert.pem" 2>/dev/null)
kill "$AGENT_PID" 2>/dev/null
wait "$AGENT_PID" 2>/dev/null
eventually 20 agents_connected 0 || bad "control plane: the stopped agent's session ends"
start_agent
within "agent: after a restart with the spent token it reconnects with its stored identity" 30 \
  "$WORK/agent.log" agents_connected 1
verdict "agent: same certificate after the restart" "" \
  same "$(sha256sum <"$WORK/state/cert.pem" 2>/dev/null)" "$CERT_SUM"

for f in "$WORK/cp.log" "$WORK/agent.log" "$WORK/sim.err"; do
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
    bad "$(basename "$f"): no sanitizer report" "$(grep -E 'Sanitizer|runtime error' "$f" | head -5)"
  fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
