#!/usr/bin/env bash
# tests/kubesim/test_kubesim_api.sh: kubesim's protocol details and test
# machinery, driven with curl (HTTP/1.1 over TLS with the kubeconfig's CA
# and token) and jq: authentication, keep-alive, chunked and 100-continue
# request bodies, discovery and OpenAPI documents, list pagination, watch
# (resume from a resourceVersion, selectors, bookmarks, initial events,
# Table events, 410 past the window), write semantics (dryRun,
# generateName, preconditions, conflicts, deletecollection), fault
# injection (errors with Retry-After, latency, dropped watches), the admin
# restarts, and a process restart with --state-file, --cert-dir, --token.
#
# usage: test_kubesim_api.sh PATH/TO/koreo-kubesim   (exit 77: curl or jq missing)
set -u

SIM=${1:?usage: test_kubesim_api.sh PATH/TO/koreo-kubesim}
for tool in curl jq base64; do
  command -v $tool >/dev/null || {
    echo "SKIP: $tool not found"
    exit 77
  }
done
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$HERE/testdata
WORK=$(mktemp -d /tmp/kubesim-api.XXXXXX)
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

. "$(dirname "$0")/assert.sh"

# start_sim ARGS...: start kubesim, wait for its kubeconfig, set URL/TOKEN/CA
start_sim() {
  rm -f "$WORK/kubeconfig"
  "$SIM" --write-kubeconfig "$WORK/kubeconfig" --exit-after 240 "$@" >"$WORK/sim.out" 2>>"$WORK/sim.err" &
  SIM_PID=$!
  for _ in $(seq 1 100); do
    [ -s "$WORK/kubeconfig" ] && break
    sleep 0.1
  done
  URL=$(sed -n 's/^ *server: //p' "$WORK/kubeconfig")
  TOKEN=$(sed -n 's/^ *token: //p' "$WORK/kubeconfig")
  sed -n 's/^ *certificate-authority-data: //p' "$WORK/kubeconfig" | base64 -d >"$WORK/ca.crt"
  PORT=${URL##*:}
}
stop_sim() {
  kill "$SIM_PID"
  wait "$SIM_PID"
  local rc=$?
  SIM_PID=
  [ $rc -eq 0 ] && ok "kubesim exits cleanly on SIGTERM" || bad "kubesim exits cleanly on SIGTERM" "rc=$rc"
}
# api METHOD PATH [curl args...]: the response body
api() {
  local m=$1 p=$2
  shift 2
  curl -sS --max-time 10 --cacert "$WORK/ca.crt" -H "Authorization: Bearer $TOKEN" -X "$m" "$URL$p" "$@"
}
# code METHOD PATH [curl args...]: the HTTP status code
code() {
  local m=$1 p=$2
  shift 2
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$WORK/ca.crt" -H "Authorization: Bearer $TOKEN" -X "$m" "$URL$p" "$@"
}
cm() { # cm NAME [LABELS-JSON]: a ConfigMap body
  printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s","labels":%s},"data":{"k":"v"}}' "$1" "${2:-{\}}"
}
JSON=(-H 'Content-Type: application/json')
CMS=/api/v1/namespaces/default/configmaps

start_sim --listen 127.0.0.1:0 --bookmark-interval 1 --event-window 50 --cert-dir "$WORK/certs" \
  --token test-token-1 --state-file "$WORK/state.json"

# ---------------------------------------------------------------- TLS, auth, HTTP
expect "kubeconfig names a free port" "yes" bash -c "[ $PORT -gt 0 ] && echo yes"
expect "/version is public" "v1.32.0-kubesim" bash -c "curl -sS --cacert '$WORK/ca.crt' '$URL/version' | jq -r .gitVersion"
expect "no token: 401 Status" "401 Unauthorized" bash -c "curl -sS --cacert '$WORK/ca.crt' '$URL/api' | jq -r '\"\(.code) \(.reason)\"'"
expect "wrong token: 401" "401" curl -sS -o /dev/null -w '%{http_code}' --cacert "$WORK/ca.crt" -H "Authorization: Bearer nope" "$URL/api"
expect "the token from --token" "test-token-1" echo "$TOKEN"
expect "keep-alive: two requests, one connection" "2 1" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -w '%{num_connects}\n' -o /dev/null -o /dev/null '$URL/api' '$URL/apis' | awk '{s+=\$1; n++} END {print n, s}'"
expect "unknown path: 404" "404" code GET /nope
expect "healthz" "ok" api GET /healthz

# ---------------------------------------------------------------- discovery, OpenAPI
expect "aggregated discovery content type" "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" \
  bash -c "curl -sS -o /dev/null -w '%{content_type}' --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -H 'Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' '$URL/apis'"
expect "legacy /apis" "apps batch apiextensions.k8s.io rbac.authorization.k8s.io policy" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL/apis' | jq -r '[.groups[].name] | join(\" \")'"
expect "per-version resources with subresources" "deployments deployments/scale deployments/status" \
  bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL/apis/apps/v1' | jq -r '[.resources[].name | select(startswith(\"deployments\"))] | sort | join(\" \")'"
expect "OpenAPI v3 index" "true" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL/openapi/v3' | jq '.paths | has(\"api/v1\") and has(\"apis/apps/v1\")'"
expect "OpenAPI v3 declares fieldValidation on PATCH" "fieldValidation" \
  bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL/openapi/v3/apis/apps/v1' | jq -r '.paths[\"/apis/apps/v1/namespaces/{namespace}/deployments/{name}\"].patch.parameters[] | select(.name==\"fieldValidation\") | .name'"

# ---------------------------------------------------------------- writes
expect "create: 201" "201" code POST $CMS "${JSON[@]}" -d "$(cm a '{"app":"x"}')"
expect "create again: 409 AlreadyExists" "409 AlreadyExists" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -d '$(cm a)' '$URL$CMS' | jq -r '\"\(.code) \(.reason)\"'"
GEN=$(api POST $CMS "${JSON[@]}" -d '{"metadata":{"generateName":"gen-"}}' | jq -r .metadata.name)
expect_re "generateName gets a random suffix" '^gen-[a-z0-9]{5}$' echo "$GEN"
expect "dryRun=All does not store" "201 404" bash -c "echo \$(curl -sS -o /dev/null -w '%{http_code}' --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -d '$(cm dry)' '$URL$CMS?dryRun=All') \$(curl -sS -o /dev/null -w '%{http_code}' --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS/dry')"
RV_A=$(api GET $CMS/a | jq -r .metadata.resourceVersion)
UID_A=$(api GET $CMS/a | jq -r .metadata.uid)
expect "update with a stale resourceVersion: 409 Conflict" "409 Conflict" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -X PUT -d '{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"},\"data\":{}}' '$URL$CMS/a' | jq -r '\"\(.code) \(.reason)\"'"
expect "update with the current resourceVersion" "200" code PUT $CMS/a "${JSON[@]}" -d "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"$RV_A\",\"labels\":{\"app\":\"x\"}},\"data\":{\"k\":\"w\"}}"
expect "the update kept uid and creationTimestamp" "$UID_A true" jq -r '"\(.metadata.uid) \(.metadata.creationTimestamp != null)"' <<<"$(api GET $CMS/a)"
expect "chunked request body" "201" code POST $CMS "${JSON[@]}" -H 'Transfer-Encoding: chunked' --data-binary "$(cm chunky)"
head -c 300000 /dev/zero | tr '\0' 'x' >"$WORK/big.txt"
printf '{"metadata":{"name":"big"},"data":{"x":"%s"}}' "$(cat "$WORK/big.txt")" >"$WORK/big.json"
expect "Expect: 100-continue body" "201" code POST $CMS "${JSON[@]}" -H 'Expect: 100-continue' --data-binary @"$WORK/big.json"
expect "YAML body" "201" code POST $CMS -H 'Content-Type: application/yaml' --data-binary $'metadata:\n  name: yamly\ndata:\n  n: "3"\n'
expect "protobuf of an unknown kind: 415" "415" code POST $CMS -H 'Content-Type: application/vnd.kubernetes.protobuf' --data-binary 'k8s'
expect "delete with a wrong uid precondition: 409" "409" code DELETE $CMS/chunky "${JSON[@]}" -d '{"preconditions":{"uid":"wrong"}}'
expect "delete answers a Success Status" "Success configmaps chunky" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X DELETE '$URL$CMS/chunky' | jq -r '\"\(.status) \(.details.kind) \(.details.name)\"'"
for n in l1 l2 l3; do api POST $CMS "${JSON[@]}" -d "$(cm $n '{"batch":"yes"}')" >/dev/null; done
expect "deletecollection with a label selector" "l1 l2 l3" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X DELETE '$URL$CMS?labelSelector=batch%3Dyes' | jq -r '[.items[].metadata.name] | join(\" \")'"
expect "and they are gone" "0" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?labelSelector=batch%3Dyes' | jq '.items | length'"

# ---------------------------------------------------------------- list
for n in p1 p2 p3 p4; do api POST $CMS "${JSON[@]}" -d "$(cm $n '{"page":"yes"}')" >/dev/null; done
PAGE1=$(api GET "$CMS?labelSelector=page%3Dyes&limit=3")
expect "limit: first page" "p1 p2 p3" jq -r '[.items[].metadata.name] | join(" ")' <<<"$PAGE1"
CONT=$(jq -r .metadata.continue <<<"$PAGE1")
expect "continue: the rest" "p4" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?labelSelector=page%3Dyes&limit=3&continue=$CONT' | jq -r '[.items[].metadata.name] | join(\" \")'"
expect "remainingItemCount without selectors" "true" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?limit=1' | jq '.metadata.remainingItemCount > 0'"
expect "Table list" "Name Data Age" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io' '$URL$CMS' | jq -r '[.columnDefinitions[].name] | join(\" \")'"

# ---------------------------------------------------------------- watch
RV0=$(api GET $CMS | jq -r .metadata.resourceVersion)
api POST $CMS "${JSON[@]}" -d "$(cm w1 '{"w":"yes"}')" >/dev/null
api PATCH $CMS/w1 -H 'Content-Type: application/merge-patch+json' -d '{"data":{"k":"2"}}' >/dev/null
api PATCH $CMS/w1 -H 'Content-Type: application/merge-patch+json' -d '{"metadata":{"labels":{"w":"no"}}}' >/dev/null
api DELETE $CMS/w1 >/dev/null
expect "watch resumes from a resourceVersion" "ADDED w1
MODIFIED w1
MODIFIED w1
DELETED w1" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&resourceVersion=$RV0&timeoutSeconds=1' | jq -r '\"\(.type) \(.object.metadata.name)\"'"
expect "watch with a label selector: leaving the selection is DELETED" "ADDED w1
MODIFIED w1
DELETED w1" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&resourceVersion=$RV0&timeoutSeconds=1&labelSelector=w%3Dyes' | jq -r '\"\(.type) \(.object.metadata.name)\"'"
expect "watch with a field selector" "ADDED p2" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dp2' | jq -r '\"\(.type) \(.object.metadata.name)\"'"
expect "bookmarks" "BOOKMARK" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&resourceVersion=$RV0&timeoutSeconds=2&allowWatchBookmarks=true&labelSelector=none%3Dnone' | jq -r .type | sort -u"
expect "sendInitialEvents ends with an annotated bookmark" "ADDED BOOKMARK:true" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1&labelSelector=page%3Dyes&limit=500' | jq -r 'if .type==\"BOOKMARK\" then \"BOOKMARK:\(.object.metadata.annotations[\"k8s.io/initial-events-end\"])\" else .type end' | uniq | head -2 | paste -sd' '"
expect "Table watch: one-row Tables, headers first" "Table 3 1" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io' '$URL$CMS?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dp1' | jq -r '\"\(.object.kind) \(.object.columnDefinitions | length) \(.object.rows | length)\"'"

# ---------------------------------------------------------------- 410 Gone
for i in $(seq 1 60); do api PATCH $CMS/p1 -H 'Content-Type: application/merge-patch+json' -d "{\"data\":{\"i\":\"$i\"}}" >/dev/null; done
expect "watch from before the event window: ERROR 410 Expired" "ERROR 410 Expired" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&resourceVersion=$RV0' | jq -r '\"\(.type) \(.object.code) \(.object.reason)\"'"
expect "an expired continue token: 410" "410 Expired" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?labelSelector=page%3Dyes&limit=3&continue=$CONT' | jq -r '\"\(.code) \(.reason)\"'"
RVC=$(api GET $CMS | jq -r .metadata.resourceVersion)
expect "compact via the admin endpoint" "$RVC" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X POST '$URL/kubesim/compact' | jq -r .oldestWatchableResourceVersion"

# ---------------------------------------------------------------- faults
expect "faults: 429 with Retry-After" "429 Retry-After: 2 TooManyRequests 2" bash -c "
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"errorRate\":1,\"errorCodes\":[429],\"retryAfterSeconds\":2}' '$URL/kubesim/faults' >/dev/null
  curl -sS -D '$WORK/h.txt' -o '$WORK/b.json' --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS'
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"errorRate\":0}' '$URL/kubesim/faults' >/dev/null
  echo \$(head -1 '$WORK/h.txt' | cut -d' ' -f2) \$(grep -i '^Retry-After' '$WORK/h.txt' | tr -d '\r') \$(jq -r '\"\(.reason) \(.details.retryAfterSeconds)\"' '$WORK/b.json')"
expect "faults: 503" "503 ServiceUnavailable" bash -c "
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"errorRate\":1,\"errorCodes\":[503]}' '$URL/kubesim/faults' >/dev/null
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS' | jq -r '\"\(.code) \(.reason)\"'
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"errorRate\":0}' '$URL/kubesim/faults' >/dev/null"
expect "faults: a rate of errors" "yes" bash -c "
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"errorRate\":0.5,\"errorCodes\":[500]}' '$URL/kubesim/faults' >/dev/null
  n=0; for i in \$(seq 1 40); do c=\$(curl -sS -o /dev/null -w '%{http_code}' --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS/p1'); [ \$c = 500 ] && n=\$((n+1)); done
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"errorRate\":0}' '$URL/kubesim/faults' >/dev/null
  [ \$n -gt 5 ] && [ \$n -lt 35 ] && echo yes || echo \"no: \$n of 40\""
expect "faults: latency" "yes" bash -c "
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"latencyMs\":400}' '$URL/kubesim/faults' >/dev/null
  t=\$(curl -sS -o /dev/null -w '%{time_total}' --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS/p1')
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"latencyMs\":0}' '$URL/kubesim/faults' >/dev/null
  awk -v t=\$t 'BEGIN { print (t >= 0.4 ? \"yes\" : \"no: \" t) }'"
expect "faults: malformed settings are refused" "400" code PUT /kubesim/faults -d '{"errorRate":7}'
curl -sS -N --max-time 20 --cacert "$WORK/ca.crt" -H "Authorization: Bearer $TOKEN" "$URL$CMS?watch=1&resourceVersion=$RVC" >"$WORK/dropped.out" 2>&1 &
WPID=$!
BG_PIDS+=($WPID)
sleep 0.5
expect "drop-watches cuts streams" "1" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X POST '$URL/kubesim/drop-watches' | jq .dropped"
wait $WPID
WRC=$?
expect "the watch ended abruptly" "yes" bash -c "[ $WRC -ne 0 ] && echo yes || echo 'no: rc=$WRC'"
expect "dropWatchAfterMs cuts streams by itself" "yes" bash -c "
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"dropWatchAfterMs\":300}' '$URL/kubesim/faults' >/dev/null
  curl -sS -N --max-time 5 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&resourceVersion=$RVC' >/dev/null 2>&1; rc=\$?
  curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X PUT -d '{\"dropWatchAfterMs\":0}' '$URL/kubesim/faults' >/dev/null
  [ \$rc -ne 0 ] && [ \$rc -ne 28 ] && echo yes || echo \"no: rc=\$rc\""

# ---------------------------------------------------------------- restarts
RVK=$(api GET $CMS | jq -r .metadata.resourceVersion)
expect "restart keeping state" "true keep" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X POST '$URL/kubesim/restart?state=keep' | jq -r '\"\(.restarted) \(.state)\"'"
expect "objects survive" "p1" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS/p1' | jq -r .metadata.name"
expect "older resourceVersions are gone (410)" "ERROR 410" bash -c "curl -sS --max-time 10 --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?watch=1&resourceVersion=$((RVK - 1))' | jq -r '\"\(.type) \(.object.code)\"'"
api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions -H 'Content-Type: application/yaml' --data-binary @"$DATA/widgets-crd.yaml" >/dev/null
sleep 0.5 # the state file is written 200 ms after a change
stop_sim
expect "the state file was written" "KubesimState" jq -r .kind "$WORK/state.json"
OLDURL=$URL
start_sim --listen "127.0.0.1:$PORT" --cert-dir "$WORK/certs" --token test-token-1 --state-file "$WORK/state.json"
expect "a process restart keeps the address" "$OLDURL" echo "$URL"
expect "objects come back from the state file" "p1 p2 p3 p4" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS?labelSelector=page%3Dyes' | jq -r '[.items[].metadata.name] | join(\" \")'"
expect "CRD kinds come back" "200" code GET /apis/example.com/v1/namespaces/default/widgets
RVN=$(api POST $CMS "${JSON[@]}" -d "$(cm after)" | jq -r .metadata.resourceVersion)
expect "resourceVersion keeps counting up" "yes" bash -c "[ $RVN -gt $RVK ] && echo yes || echo 'no: $RVN <= $RVK'"
expect "restart losing state" "true lose" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' -X POST '$URL/kubesim/restart?state=lose' | jq -r '\"\(.restarted) \(.state)\"'"
expect "objects are gone" "0" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL$CMS' | jq '.items | length'"
expect "CRD kinds are gone" "404" code GET /apis/example.com/v1/namespaces/default/widgets
expect "default namespaces are back" "default kube-node-lease kube-public kube-system" bash -c "curl -sS --cacert '$WORK/ca.crt' -H 'Authorization: Bearer $TOKEN' '$URL/api/v1/namespaces' | jq -r '[.items[].metadata.name] | join(\" \")'"
RVL=$(api POST $CMS "${JSON[@]}" -d "$(cm fresh)" | jq -r .metadata.resourceVersion)
expect "resourceVersion still counts up after losing state" "yes" bash -c "[ $RVL -gt $RVN ] && echo yes || echo 'no: $RVL <= $RVN'"
stop_sim

echo "kubesim API tests: $PASS passed, $FAIL failed"
if grep -q "ERROR: \|runtime error" "$WORK/sim.err"; then
  echo "kubesim stderr:"
  cat "$WORK/sim.err"
  FAIL=$((FAIL + 1))
fi
[ $FAIL -eq 0 ]
