#!/usr/bin/env bash
# tests/deploy/test_dry_run.sh: `kubectl apply --dry-run=server` of every
# manifest directory under deploy/kubernetes and of every rendered Helm
# chart scenario (check_deploy.py --render-to), against a kubesim this test
# starts (tests/kubesim/README.md).  kubectl sends each object to the API
# server, which validates and defaults it without storing it.
#
# kubesim serves every kind the manifests use (RBAC, PodDisruptionBudget and
# PersistentVolumeClaim included), so an object of a kind it does not serve
# fails the test; DEPLOY_DRY_RUN_STRICT=0 only reports such objects (for a
# kubesim that lacks a kind).
#
# usage: test_dry_run.sh PATH/TO/koreo-kubesim   (exit 77: kubectl missing)
# env: DEPLOY_YAML, DEPLOY_DIR, KUBECTL, PYTHON3
set -u
SIM=${1:?usage: test_dry_run.sh PATH/TO/koreo-kubesim}
HERE=$(cd "$(dirname "$0")" && pwd)
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
PYTHON3=${PYTHON3:-python3}
DEPLOY_DIR=${DEPLOY_DIR:-$HERE/../../deploy}
if [ -z "$KUBECTL" ] || [ ! -x "$KUBECTL" ]; then
  echo "SKIP: kubectl not found"
  exit 77
fi
: "${DEPLOY_YAML:?DEPLOY_YAML must point at the deploy_yaml program}"
WORK=$(mktemp -d /tmp/deploy-dry-run.XXXXXX)
SIM_PID=
cleanup() {
  if [ -n "$SIM_PID" ]; then
    kill "$SIM_PID" 2>/dev/null
    wait "$SIM_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=tests/kubesim/assert.sh
. "$HERE/../kubesim/assert.sh" # PASS, FAIL, ok NAME, bad NAME LINES...
SKIPPED=0 MISSING_KINDS=()

"$SIM" --listen 127.0.0.1:0 --write-kubeconfig "$WORK/kubeconfig" --exit-after 280 \
  >"$WORK/sim.out" 2>"$WORK/sim.err" &
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
k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --request-timeout=30s "$@"; }

# The rendered chart scenarios.
if ! "$PYTHON3" "$HERE/check_deploy.py" --render-to "$WORK/rendered" >"$WORK/render.log" 2>&1; then
  bad "check_deploy.py --render-to (static checks, chart rendering)" "$(grep -A3 '^FAIL' "$WORK/render.log" | head -30)"
fi

# What the API server serves: "apiVersion kind" per line.
if ! k api-resources --no-headers >"$WORK/api-resources" 2>"$WORK/api-resources.err"; then
  bad "kubectl api-resources" "$(cat "$WORK/api-resources.err")"
  echo "$PASS passed, $FAIL failed"
  exit 1
fi
awk '{print $(NF-2), $NF}' "$WORK/api-resources" | sort -u >"$WORK/served"

# The namespaces the objects live in exist (a dry run creates nothing, so
# namespaced objects next to their Namespace would otherwise be refused).
k create namespace koreo-system >/dev/null 2>&1

# split FILE OUTDIR: one file per YAML document, the original text.
split_docs() {
  "$PYTHON3" - "$1" "$2" <<'PY'
import os, re, sys
src, out = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
n = 0
for chunk in re.split(r"(?m)^---[ \t]*(?:#.*)?$", text):
    body = [l for l in chunk.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if not body:
        continue
    n += 1
    with open(os.path.join(out, "%03d.yaml" % n), "w", encoding="utf-8") as fh:
        fh.write(chunk.strip("\n") + "\n")
PY
}

# dry_run LABEL FILE...: `kubectl apply --dry-run=server` of each document
# of each FILE on its own (kubectl stops a multi-document file at the first
# object it cannot validate, so one unserved kind would hide the rest).
dry_run() {
  local label=$1 f d av kind name out rc
  shift
  local accepted=0 total=0 unserved=0
  for f in "$@"; do
    d=$(mktemp -d "$WORK/docs.XXXXXX")
    split_docs "$f" "$d"
    for doc in "$d"/*.yaml; do
      [ -e "$doc" ] || continue
      if ! read -r av kind name < <("$DEPLOY_YAML" json "$doc" | "$PYTHON3" -c '
import json, sys
for e in json.load(sys.stdin):
    d = e["doc"]; m = d.get("metadata", {})
    print(d["apiVersion"], d["kind"], "%s/%s" % (m.get("namespace", ""), m["name"]))'); then
        bad "$label: $(basename "$f") document parses" "$doc"
        continue
      fi
      total=$((total + 1))
      out=$(k apply --dry-run=server -f "$doc" 2>&1)
      rc=$?
      if grep -qx "$av $kind" "$WORK/served"; then
        if [ $rc -eq 0 ] && grep -qE '^[a-z0-9.-]+/[a-z0-9.-]+ (created|configured|unchanged) \(server dry run\)$' <<<"$out"; then
          accepted=$((accepted + 1))
        else
          bad "$label: $kind $name accepted" "rc=$rc" "$out"
        fi
      else
        # Not served: kubectl must refuse it (first when fetching the kind's
        # OpenAPI schema for validation, else when mapping the kind).
        MISSING_KINDS+=("$kind ($av)")
        unserved=$((unserved + 1))
        if [ $rc -ne 0 ] && grep -qE "the server could not find the requested resource|no matches for kind \"$kind\"" <<<"$out"; then
          SKIPPED=$((SKIPPED + 1))
          echo "skip $label: $kind $name: kubesim does not serve $av $kind"
          [ "${DEPLOY_DRY_RUN_STRICT:-1}" = 1 ] && bad "$label: $kind $name (strict: kind not served)" "$out"
        else
          bad "$label: $kind $name: kubectl fails as for an unserved kind" "rc=$rc" "$out"
        fi
      fi
    done
  done
  if [ $total -eq 0 ]; then
    bad "$label: has objects" "none in $*"
  elif [ $accepted -eq $((total - unserved)) ]; then
    ok "$label: all $accepted objects of served kinds accepted by the API server (dry run); $unserved of kinds kubesim does not serve"
  fi
}

for comp in agent controlplane; do
  dir=$DEPLOY_DIR/kubernetes/$comp
  dry_run "kubernetes/$comp" "$dir"/*.yaml
done
for f in "$WORK"/rendered/*.yaml; do
  [ -e "$f" ] || { bad "rendered charts exist" "none in $WORK/rendered"; break; }
  dry_run "helm/$(basename "$f" .yaml)" "$f"
done

if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$WORK/sim.err"; then
  bad "kubesim ran clean" "$(grep -E 'Sanitizer|runtime error' "$WORK/sim.err" | head -5)"
fi
if [ ${#MISSING_KINDS[@]} -gt 0 ]; then
  echo "note: kinds kubesim does not serve (kubectl: 'error validating data: the server could not find the requested resource', or with --validate=false 'no matches for kind'):"
  printf '%s\n' "${MISSING_KINDS[@]}" | sort | uniq -c | sed 's/^/note: /'
fi
echo "$PASS passed, $FAIL failed, $SKIPPED skipped"
[ "$FAIL" -eq 0 ]
