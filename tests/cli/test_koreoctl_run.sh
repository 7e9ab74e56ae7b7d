#!/usr/bin/env bash
# tests/cli/test_koreoctl_run.sh KOREOCTL EXAMPLES FTEST: end-to-end checks
# of `koreoctl run` (issue 3 item 7), the dry run of a Workflow against an
# in-memory cluster: each loop's step outcomes, the writes it made, the
# trigger's status written back, resources created in one loop existing in
# the next (convergence), usage errors.
set -u
KOREOCTL=${1:?usage: test_koreoctl_run.sh KOREOCTL EXAMPLES FTEST}
EXAMPLES=${2:?usage: test_koreoctl_run.sh KOREOCTL EXAMPLES FTEST}
FTEST=${3:?usage: test_koreoctl_run.sh KOREOCTL EXAMPLES FTEST}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
expect_grep() { # NAME FILE PATTERN (extended regex)
  if grep -qE -- "$3" "$2"; then ok; else bad "$1: no /$3/ in:"; head -c 3000 "$2"; echo; fi
}
line() { sed -n "${2}p" "$1"; }

# ---- the project's workflow: create, then converge -----------------------------
"$KOREOCTL" run --workflow ft-app.v1 --trigger "$FTEST/run/trigger.yaml" --loops 3 -o json \
  "$FTEST/run/app.koreo" >"$tmp/app.json" 2>"$tmp/app.err"
rc=$?
[ "$rc" = 0 ] && ok || bad "app: exit $rc; $(cat "$tmp/app.err")"
n=$(wc -l <"$tmp/app.json")
[ "$n" = 3 ] && ok || bad "app: $n loops printed, want 3"
line "$tmp/app.json" 1 >"$tmp/l1"
line "$tmp/app.json" 2 >"$tmp/l2"
line "$tmp/app.json" 3 >"$tmp/l3"
expect_grep "loop 1 retries" "$tmp/l1" '^\{"loop":1,"outcome":\{"kind":"Retry","delay":5'
expect_grep "loop 1 config ok" "$tmp/l1" '"label":"config","outcome":\{"kind":"Ok"'
expect_grep "loop 1 creates" "$tmp/l1" '"writes":\[\{"verb":"create","apiVersion":"v1","kind":"ConfigMap","namespace":"apps","name":"demo-store"'
expect_grep "loop 1 body" "$tmp/l1" '"data":\{"size":"3"\}'
expect_grep "loop 1 owner reference" "$tmp/l1" '"ownerReferences":\[\{"apiVersion":"example.com/v1","kind":"App",[^]]*"name":"demo","uid":"dry-run-trigger-uid"\}\]'
expect_grep "loop 1 condition" "$tmp/l1" '"type":"Store"'
expect_grep "loop 2 converged" "$tmp/l2" '^\{"loop":2,"outcome":\{"kind":"Ok"'
expect_grep "loop 2 no writes" "$tmp/l2" '"writes":\[\]'
expect_grep "loop 2 state" "$tmp/l2" '"state":\{"storeName":"demo-store"\}'
expect_grep "loop 3 stable" "$tmp/l3" '^\{"loop":3,"outcome":\{"kind":"Ok".*"writes":\[\]'

# text output
"$KOREOCTL" run --workflow ft-app.v1 --trigger "$FTEST/run/trigger.yaml" --loops 2 \
  "$FTEST/run/app.koreo" >"$tmp/app.txt" 2>&1
rc=$?
[ "$rc" = 0 ] && ok || bad "app text: exit $rc"
expect_grep "text header" "$tmp/app.txt" '^Workflow ft-app.v1, trigger example.com/v1 App apps/demo, 2 loops$'
expect_grep "text loop 1" "$tmp/app.txt" '^=== loop 1: Retry\(delay=5, message=Creating ConfigMap:apps:demo-store.'
expect_grep "text step" "$tmp/app.txt" '^  step store   Retry\(delay=5'
expect_grep "text write" "$tmp/app.txt" '^  create v1 ConfigMap apps/demo-store$'
expect_grep "text loop 2" "$tmp/app.txt" '^=== loop 2: Ok\('
expect_grep "text status" "$tmp/app.txt" '"storeName": "demo-store"'

# ---- an upstream example: hello-koreo labels its own trigger ----------------------
"$KOREOCTL" run --workflow hello-koreo --trigger "$EXAMPLES/kubernetes/hello-koreo/deployment.yaml" \
  --loops 2 -o json "$EXAMPLES/kubernetes/hello-koreo" >"$tmp/hk.json" 2>"$tmp/hk.err"
rc=$?
[ "$rc" = 0 ] && ok || bad "hello-koreo: exit $rc; $(cat "$tmp/hk.err")"
line "$tmp/hk.json" 1 >"$tmp/h1"
line "$tmp/hk.json" 2 >"$tmp/h2"
expect_grep "hello-koreo loop 1 patches the deployment" "$tmp/h1" '"verb":"patch","apiVersion":"apps/v1","kind":"Deployment"'
expect_grep "hello-koreo labels" "$tmp/h1" '"labels":\{"hello":"nginx-deployment"\}'
expect_grep "hello-koreo: the trigger gets namespace default" "$tmp/h1" '"namespace":"default","name":"nginx-deployment"'
expect_grep "hello-koreo loop 2 converged" "$tmp/h2" '^\{"loop":2,"outcome":\{"kind":"Ok".*"writes":\[\]'

# ---- errors ------------------------------------------------------------------------
"$KOREOCTL" run --trigger "$FTEST/run/trigger.yaml" "$FTEST/run/app.koreo" >/dev/null 2>"$tmp/e1"
rc=$?
[ "$rc" = 2 ] && ok || bad "missing --workflow: exit $rc, want 2"
"$KOREOCTL" run --workflow ft-app.v1 --trigger "$FTEST/run/trigger.yaml" --loops 0 \
  "$FTEST/run/app.koreo" >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] && ok || bad "--loops 0: exit $rc, want 2"
"$KOREOCTL" run --workflow nope --trigger "$FTEST/run/trigger.yaml" "$FTEST/run/app.koreo" \
  >/dev/null 2>"$tmp/e2"
rc=$?
[ "$rc" = 1 ] && ok || bad "unknown workflow: exit $rc, want 1"
expect_grep "unknown workflow message" "$tmp/e2" "Workflow 'nope' not found"
"$KOREOCTL" run --workflow ft-app.v1 --trigger "$tmp/none.yaml" "$FTEST/run/app.koreo" \
  >/dev/null 2>"$tmp/e3"
rc=$?
[ "$rc" = 1 ] && ok || bad "missing trigger: exit $rc, want 1"

echo "koreoctl run: $pass passed, $fail failed"
[ "$fail" = 0 ]
