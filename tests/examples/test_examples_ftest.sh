#!/usr/bin/env bash
# tests/examples/test_examples_ftest.sh KOREOCTL EXAMPLES: the examples'
# own checks (issue 7 item 2):
# - `koreoctl test EXAMPLES` passes every case, and the number of tests and
#   of cases per FunctionTest is the one written here, so a file that stops
#   loading (or a test that silently loses cases) fails this test;
# - every ValueFunction and ResourceFunction of the examples has a
#   FunctionTest;
# - `koreoctl validate EXAMPLES` reports no error and no warning;
# - the FunctionTests can fail: a copy of the examples with one expectation
#   changed makes `koreoctl test` exit 1 naming that case;
# - the Workflows, dry-run with `koreoctl run` on an in-memory cluster, go
#   through the loops the READMEs describe (what each loop writes, where
#   they wait, the paused and no-Service variants of the WebApp).
set -u
KOREOCTL=${1:?usage: test_examples_ftest.sh KOREOCTL EXAMPLES}
EXAMPLES=${2:?usage: test_examples_ftest.sh KOREOCTL EXAMPLES}
EXAMPLES=$(cd "$EXAMPLES" && pwd)
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
tmp=$WORK

# ---- koreoctl test examples/ ------------------------------------------------
"$KOREOCTL" test -o json "$EXAMPLES" >"$tmp/test.json" 2>"$tmp/test.err"
rc=$?
expect "koreoctl test exit status" "$rc" 0
[ "$rc" = 0 ] || { grep -v '"status":"pass"' "$tmp/test.json" | head -20; cat "$tmp/test.err"; }
expect "koreoctl test stderr" "$(cat "$tmp/test.err")" ""
summary=$(grep -E '^\{"summary":' "$tmp/test.json" | sed -E 's/,"ms":[0-9.e+-]+//')
expect "summary" "$summary" \
  '{"summary":{"tests":10,"cases":67,"passed":67,"failed":0,"skipped":0,"not_run":0,"errors":0,"ok":true}}'

# cases per FunctionTest (name count), sorted by name
counts=$(sed -nE 's/^\{"test":"([^"]*)".*"status":"pass".*/\1/p' "$tmp/test.json" | sort | uniq -c |
  awk '{print $2 "=" $1}' | tr '\n' ' ')
expect "passing cases per FunctionTest" "$counts" \
  "team-configmap.v1=4 team-service-account.v1=4 team-settings.v1=5 webapp-config.v1=4 webapp-configmap.v1=6 webapp-container-resources.v1=3 webapp-deployment.v1=12 webapp-service-account.v1=7 webapp-service.v1=6 webapp-validate.v1=16 "

# every function has a FunctionTest: the functions defined in the files
# (kind line, then the metadata name) against the functions tested
defined=$(cat "$EXAMPLES"/*/*.k.yaml | awk '
  /^kind: (ValueFunction|ResourceFunction)$/ { want = 1; next }
  /^kind: / { want = 0 }
  want && /^  name: / { print $2; want = 0 }' | sort -u | tr '\n' ' ')
tested=$(sed -nE 's/.*"function":\{"kind":"[A-Za-z]+","name":"([^"]*)"\}.*/\1/p' "$tmp/test.json" |
  sort -u | tr '\n' ' ')
expect "functions with a FunctionTest" "$tested" "$defined"
expect "number of functions" "$(echo "$defined" | wc -w)" 10

# ---- koreoctl validate examples/ ----------------------------------------------
"$KOREOCTL" validate -o json "$EXAMPLES" >"$tmp/validate.json" 2>&1
rc=$?
expect "koreoctl validate exit status" "$rc" 0
expect "koreoctl validate output" "$(cat "$tmp/validate.json")" \
  '{"summary": {"definitions": 23, "documents": 5, "errors": 0, "warnings": 0}}'

# ---- the tests can fail ----------------------------------------------------------
cp -r "$EXAMPLES" "$tmp/copy"
# the Deployment's expected memory request of the size profile "small"
sed -i 's/requests: {cpu: 100m, memory: 128Mi}/requests: {cpu: 100m, memory: 64Mi}/' \
  "$tmp/copy/webapp/deployment.k.yaml"
"$KOREOCTL" test -o json "$tmp/copy" >"$tmp/mut.json" 2>&1
expect "a wrong expectation fails the run" "$?" 1
failed=$(sed -nE 's/^\{"test":"([^"]*)","case":"([^"]*)".*"status":"fail".*/\1: \2/p' "$tmp/mut.json" | head -3)
expect "the failing case" "$failed" \
  "webapp-deployment.v1: creates the Deployment from the template and every overlay"

# ---- the Workflows, dry run ----------------------------------------------------
# run NAME ARGS...: `koreoctl run ARGS` (text) into $tmp/NAME.run; its loop
# lines, writes and step lines are then matched.
run() {
  local name=$1
  shift
  "$KOREOCTL" run "$@" >"$tmp/$name.run" 2>&1
  expect "koreoctl run $name exit status" "$?" 0
}
lines() { grep -E "$2" "$tmp/$1.run" | tr '\n' '|'; }

run webapp --workflow webapp.v1 --trigger "$EXAMPLES/webapp/webapp.yaml" --loops 3 "$EXAMPLES/webapp"
expect "webapp loops" "$(lines webapp '^=== loop')" \
"=== loop 1: Retry(delay=5, message=Creating ServiceAccount:default:shop., Creating ConfigMap:default:shop-config., Creating Service:default:shop.)|\
=== loop 2: Retry(delay=5, message=Creating Deployment:default:shop.)|\
=== loop 3: Retry(delay=5, message=waiting for 2 available replicas of Deployment shop)|"
expect "webapp writes" "$(lines webapp '^  (create|patch|delete) ')" \
"  create v1 ServiceAccount default/shop|  create v1 ConfigMap default/shop-config|\
  create v1 Service default/shop|  create apps/v1 Deployment default/shop|"
expect "webapp loop 1: the Deployment waits for the ServiceAccount" \
  "$(lines webapp '^  step deployment' | cut -d'|' -f1)" \
  "  step deployment       Dependency Skip (message='service_account' is waiting (Creating ServiceAccount:default:shop. at webapp.v1.spec.steps.service_account:spec.create).)"

sed 's/^  size: medium$/  size: medium\n  paused: true/' "$EXAMPLES/webapp/webapp.yaml" >"$tmp/paused.yaml"
run paused --workflow webapp.v1 --trigger "$tmp/paused.yaml" "$EXAMPLES/webapp"
expect "paused WebApp" "$(lines paused '^=== loop')" \
  "=== loop 1: Skip (message=WebApp shop is paused (spec.paused is true))|"
expect "paused WebApp writes nothing" "$(lines paused '^  (create|patch|delete) ')" ""

sed 's/^    port: 80$/    port: 80\n    enabled: false/' "$EXAMPLES/webapp/webapp.yaml" >"$tmp/nosvc.yaml"
run nosvc --workflow webapp.v1 --trigger "$tmp/nosvc.yaml" "$EXAMPLES/webapp"
expect "WebApp without a Service: step" "$(lines nosvc '^  step service ')" \
  "  step service          Skip (message=skipped by workflow)|"
expect "WebApp without a Service: writes" "$(lines nosvc '^  (create|patch|delete) ')" \
  "  create v1 ServiceAccount default/shop|  create v1 ConfigMap default/shop-config|"

run team --workflow team.v1 --trigger "$EXAMPLES/multicluster/team.yaml" --loops 2 "$EXAMPLES/multicluster"
expect "team loops" "$(lines team '^=== loop' | sed -E 's/(loop 2: Ok).*/\1/')" \
"=== loop 1: Retry(delay=3, message=Creating ConfigMap:payments:team-info., Creating ServiceAccount:payments:payments-deployer.)|\
=== loop 2: Ok"

finish "examples ftest"
