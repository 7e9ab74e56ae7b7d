#!/usr/bin/env bash
# tests/cli/test_koreoctl_test.sh KOREOCTL EXAMPLES FTEST: end-to-end checks
# of `koreoctl test` (issue 3):
# - the reference FunctionTests in EXAMPLES (../shared/reference/koreo-examples)
#   give upstream's result per case (core-examples: 14 tests, 32 cases, all
#   passing, 2 skipped; kubernetes/ + gcp-vpc/: 8 tests, 15 cases), checked
#   case by case against tests/ftest/expected/*.txt;
# - the project's own FunctionTests in FTEST/passing all pass, and those in
#   FTEST/failing fail exactly as tests/ftest/expected/failing.txt says, with
#   the messages and field-path diffs a user needs;
# - -o text / json / junit, --run, exit statuses 0 / 1 / 2.
set -u
KOREOCTL=${1:?usage: test_koreoctl_test.sh KOREOCTL EXAMPLES FTEST}
EXAMPLES=${2:?usage: test_koreoctl_test.sh KOREOCTL EXAMPLES FTEST}
FTEST=${3:?usage: test_koreoctl_test.sh KOREOCTL EXAMPLES FTEST}
KOREOCTL=$(cd "$(dirname "$KOREOCTL")" && pwd)/$(basename "$KOREOCTL")
FTEST=$(cd "$FTEST" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }

# The per-case fields of `-o json` lines: test<TAB>index<TAB>case<TAB>status.
cases_of() {
  sed -nE 's/^\{"test":"((\\.|[^"\\])*)","case":(null|"((\\.|[^"\\])*)"),"index":(-?[0-9]+),"passed":(true|false),"status":"([a-z-]+)".*/\1\t\6\t\4\t\8/p' "$1"
}
summary_of() { grep -E '^\{"summary":' "$1" | sed -E 's/,"ms":[0-9.e+-]+//'; }

# run_json NAME WANT_RC DIR PATH... : `koreoctl test -o json PATH...` in DIR
run_json() {
  local name=$1 want_rc=$2 dir=$3
  shift 3
  (cd "$dir" && "$KOREOCTL" test -o json "$@") >"$tmp/$name.json" 2>"$tmp/$name.err"
  local rc=$?
  if [ "$rc" != "$want_rc" ]; then
    bad "$name: exit $rc, want $want_rc; stderr: $(head -c 2000 "$tmp/$name.err")"
  else
    ok
  fi
}

check_cases() { # NAME EXPECTED-FILE
  cases_of "$tmp/$1.json" >"$tmp/$1.cases"
  if diff -u "$2" "$tmp/$1.cases" >"$tmp/$1.diff"; then
    ok
  else
    bad "$1: per-case results differ from $2:"
    cat "$tmp/$1.diff"
    grep -v '"status":"pass"' "$tmp/$1.json" | grep -v '"status":"skip"' | head -20
  fi
}

check_summary() { # NAME EXPECTED-SUMMARY
  local got
  got=$(summary_of "$tmp/$1.json")
  if [ "$got" = "$2" ]; then ok; else bad "$1: summary [$got], want [$2]"; fi
}

expect_grep() { # NAME FILE PATTERN (fixed string)
  if grep -qF -- "$3" "$2"; then ok; else bad "$1: no [$3] in $(basename "$2")"; fi
}

# ---- the reference examples -------------------------------------------------
run_json core 0 "$EXAMPLES" core-examples
check_cases core "$FTEST/expected/core-examples.txt"
check_summary core '{"summary":{"tests":14,"cases":32,"passed":30,"failed":0,"skipped":2,"not_run":0,"errors":0,"ok":true}}'

run_json k8s 0 "$EXAMPLES" kubernetes gcp-vpc
check_cases k8s "$FTEST/expected/kubernetes-gcp-vpc.txt"
check_summary k8s '{"summary":{"tests":8,"cases":15,"passed":15,"failed":0,"skipped":0,"not_run":0,"errors":0,"ok":true}}'

# ---- the project's own FunctionTests ---------------------------------------
run_json passing 0 "$FTEST" passing
check_cases passing "$FTEST/expected/passing.txt"

run_json failing 1 "$FTEST" failing
check_cases failing "$FTEST/expected/failing.txt"
check_summary failing '{"summary":{"tests":5,"cases":16,"passed":3,"failed":8,"skipped":0,"not_run":3,"errors":2,"ok":false}}'
f="$tmp/failing.json"
expect_grep "failing: diff paths" "$f" '"path":"nested.list[2]","message":"expected '"'"'`4`'"'"' but found '"'"'`3`'"'"'","expected":4,"actual":3'
expect_grep "failing: missing key" "$f" '"path":"c","message":"missing","expected":3'
expect_grep "failing: summary message" "$f" '"message":"return value does not match: a: expected '"'"'`2`'"'"' but found '"'"'`1`'"'"' (and 2 more differences)"'
expect_grep "failing: not-run names the stopper" "$f" '"message":"not run: case #2 (wrong return) failed and stopped the test"'
expect_grep "failing: skip message mismatch" "$f" '"message":"Skip: Expected(message=some other reason) Actual(message=skipped on request)"'
expect_grep "failing: non-Ok return" "$f" '"message":"Non-Ok return value (Skip (message=skipped on request))"'
expect_grep "failing: overlay without resource" "$f" 'Can not overlay until the full resource exists. Try setting `currentResource` or reordering test cases.'
expect_grep "failing: missing function" "$f" '"status":"error","message":"ValueFunction no-such-function.v1 is not ready: '
expect_grep "failing: quoted number" "$f" '"path":"spec.ports[0].port","message":"expected '"'"'`8080`'"'"' (string) but found '"'"'`8080`'"'"' (integer)"'
expect_grep "failing: delete" "$f" '"message":"Delete not called."'
expect_grep "failing: no write" "$f" '"message":"No resource changes attempted: unexpected Ok result"'

# ---- text output ----------------------------------------------------------------
(cd "$FTEST" && "$KOREOCTL" test failing) >"$tmp/text.out" 2>&1
rc=$?
[ "$rc" = 1 ] && ok || bad "text: exit $rc, want 1"
t="$tmp/text.out"
expect_grep "text: header" "$t" 'FunctionTest fail-stops-the-test (ValueFunction fail-values.v1)  failing/failing.koreo:'
expect_grep "text: pass line" "$t" '  PASS     #1 passes'
expect_grep "text: fail line" "$t" '  FAIL     #2 wrong return  (failing/failing.koreo:'
expect_grep "text: diff line" "$t" "- nested.list[2]: expected '\`4\`' but found '\`3\`'"
expect_grep "text: expected value" "$t" '    expected: 4'
expect_grep "text: actual value" "$t" '    actual:   3'
expect_grep "text: unexpected" "$t" '- c: missing'
expect_grep "text: not run" "$t" '  NOT RUN  #3 never runs: not run: case #2 (wrong return) failed and stopped the test'
expect_grep "text: error" "$t" '  ERROR    #1 Test Case 1'
expect_grep "text: summary" "$t" '5 tests, 16 cases: 3 passed, 8 failed, 0 skipped, 3 not run, 2 errors'
expect_grep "text: verdict" "$t" 'FAILED'

(cd "$EXAMPLES" && "$KOREOCTL" test core-examples) >"$tmp/text-ok.out" 2>&1
rc=$?
[ "$rc" = 0 ] && ok || bad "text core-examples: exit $rc, want 0"
expect_grep "text ok: skip line" "$tmp/text-ok.out" '  SKIP     #2 Check return value: user skipped'
expect_grep "text ok: summary" "$tmp/text-ok.out" '14 tests, 32 cases: 30 passed, 0 failed, 2 skipped, 0 not run, 0 errors'

# ---- JUnit ------------------------------------------------------------------------
(cd "$FTEST" && "$KOREOCTL" test -o junit failing) >"$tmp/junit.xml" 2>/dev/null
rc=$?
[ "$rc" = 1 ] && ok || bad "junit: exit $rc, want 1"
j="$tmp/junit.xml"
expect_grep "junit: root" "$j" '<testsuites name="koreoctl test" tests="16" failures="8" errors="2" skipped="3"'
expect_grep "junit: suite" "$j" '<testsuite name="fail-stops-the-test" tests="3" failures="1" errors="0" skipped="1"'
expect_grep "junit: failure" "$j" '<failure message="return value does not match: a: expected &apos;`2`&apos; but found'
expect_grep "junit: error" "$j" '<error message="ValueFunction no-such-function.v1 is not ready: '
if command -v xmllint >/dev/null 2>&1; then
  xmllint --noout "$j" && ok || bad "junit: not well-formed XML"
fi
n_open=$(grep -c '<testcase ' "$j")
[ "$n_open" = 16 ] && ok || bad "junit: $n_open testcases, want 16"

# ---- --run, usage errors, unreadable paths ----------------------------------------
(cd "$FTEST" && "$KOREOCTL" test -o json --run '^ft-(gate|reader)' passing) >"$tmp/run.json" 2>&1
rc=$?
[ "$rc" = 0 ] && ok || bad "--run: exit $rc"
got=$(cases_of "$tmp/run.json" | cut -f1 | sort -u | tr '\n' ' ')
[ "$got" = "ft-gate.v1 ft-reader.v1 " ] && ok || bad "--run selected [$got]"

"$KOREOCTL" test --run '(' "$FTEST/passing" >/dev/null 2>"$tmp/re.err"
rc=$?
[ "$rc" = 2 ] && ok || bad "bad --run regex: exit $rc, want 2"
expect_grep "bad regex message" "$tmp/re.err" 'bad regular expression'

"$KOREOCTL" test -o yaml "$FTEST/passing" >/dev/null 2>"$tmp/fmt.err"
rc=$?
[ "$rc" = 2 ] && ok || bad "-o yaml: exit $rc, want 2"

"$KOREOCTL" test --bogus >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] && ok || bad "unknown option: exit $rc, want 2"

"$KOREOCTL" test "$tmp/does-not-exist" >/dev/null 2>"$tmp/missing.err"
rc=$?
[ "$rc" = 1 ] && ok || bad "missing path: exit $rc, want 1"

printf 'apiVersion: koreo.dev/v1beta1\nkind: FunctionTest\nmetadata: {name: x\n' >"$tmp/broken.koreo"
"$KOREOCTL" test "$tmp/broken.koreo" >/dev/null 2>"$tmp/broken.err"
rc=$?
[ "$rc" = 1 ] && ok || bad "YAML error: exit $rc, want 1"
expect_grep "YAML error names the file" "$tmp/broken.err" "broken.koreo:"

echo "koreoctl test: $pass passed, $fail failed"
[ "$fail" = 0 ]
