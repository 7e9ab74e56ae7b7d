#!/usr/bin/env bash
# tests/cli/test_koreoctl_validate.sh KOREOCTL EXAMPLES BROKEN: end-to-end
# checks of `koreoctl validate` (issue 3 item 6): the reference examples
# validate cleanly (exit 0), every file of the broken corpus fails (exit 1)
# with a FILE:LINE:COL diagnostic, -o json prints one object per problem and
# a summary, usage errors exit 2.
set -u
KOREOCTL=${1:?usage: test_koreoctl_validate.sh koreoctl examples-dir broken-dir}
EXAMPLES=${2:?examples dir}
BROKEN=${3:?broken corpus dir}
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }

if [ -d "$EXAMPLES" ]; then
  out=$("$KOREOCTL" validate "$EXAMPLES" 2>&1); rc=$?
  if [ $rc = 0 ] && grep -qE '^[0-9]+ definitions checked, 0 errors, 0 warnings$' <<<"$out"; then ok
  else bad "examples: rc=$rc out=$out"; fi
  out=$("$KOREOCTL" validate -o json "$EXAMPLES/core-examples" 2>&1); rc=$?
  if [ $rc = 0 ] && [ "$out" = '{"summary": {"definitions": 50, "documents": 9, "errors": 0, "warnings": 0}}' ]; then ok
  else bad "examples json: rc=$rc out=$out"; fi
else
  echo "SKIP examples: $EXAMPLES not found"
fi

n=0
for f in "$BROKEN"/*.yaml; do
  n=$((n + 1))
  out=$("$KOREOCTL" validate -q "$f" 2>&1); rc=$?
  base=$(basename "$f")
  # every line is FILE:LINE:COL: ... and names this file
  if [ $rc = 1 ] && [ -n "$out" ] && ! grep -qvE "^[^:]*${base}:[0-9]+:[0-9]+: " <<<"$out"; then ok
  else bad "$base: rc=$rc out=$out"; fi
done
[ $n -ge 40 ] && ok || bad "only $n broken definitions"

out=$("$KOREOCTL" validate -o json "$BROKEN/wf-step-cycle.yaml"); rc=$?
if [ $rc = 1 ] && grep -qF '"path":"spec.steps[0]"' <<<"$out" && grep -qF '"line":18,"column":7' <<<"$out" &&
   grep -q '"errors": 1' <<<"$out"; then ok
else bad "json problem: rc=$rc out=$out"; fi

"$KOREOCTL" validate -o yaml "$BROKEN" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok || bad "bad -o: rc=$rc"
"$KOREOCTL" validate --nope >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok || bad "unknown option: rc=$rc"
"$KOREOCTL" validate /nonexistent/path >/dev/null 2>&1; rc=$?
[ $rc = 1 ] && ok || bad "missing path: rc=$rc"

echo "koreoctl validate: $pass passed, $fail failed"
[ $fail = 0 ]
