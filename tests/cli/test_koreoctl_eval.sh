#!/usr/bin/env bash
# tests/cli/test_koreoctl_eval.sh KOREOCTL: end-to-end checks of
# `koreoctl eval`: results on stdout, bindings inline and from JSON/YAML
# files, errors that say where and why with exit status 1, usage errors 2.
set -u
KOREOCTL=${1:?usage: test_koreoctl_eval.sh path/to/koreoctl}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # name, expected status, expected stdout, stderr pattern, command...
  local name=$1 want_rc=$2 want_out=$3 want_err=$4
  shift 4
  local out err rc
  out=$("$@" 2>"$tmp/err")
  rc=$?
  err=$(cat "$tmp/err")
  if [ "$rc" != "$want_rc" ] || [ "$out" != "$want_out" ] ||
     { [ -n "$want_err" ] && ! grep -qE -- "$want_err" <<<"$err"; }; then
    echo "FAIL $name: rc=$rc (want $want_rc) out=[$out] (want [$want_out]) err=[$err] (want /$want_err/)"
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

check "issue example" 0 "42" "" \
  "$KOREOCTL" eval '=inputs.a + 1' --bindings '{"inputs":{"a":41}}'
check "string concat" 0 '"web-3"' "" \
  "$KOREOCTL" eval '=inputs.name + "-" + string(inputs.n)' --bindings '{"inputs":{"name":"web","n":3}}'
check "literal numeric string is a number" 0 "8080" "" "$KOREOCTL" eval '8080'
check "koreo function" 0 '{"apiVersion":"v1","kind":"ConfigMap","name":"c","namespace":"ns"}' "" \
  "$KOREOCTL" eval '=resource.self_ref()' \
  --bindings '{"resource":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns"}}}'
check "double stays double" 0 "3.0" "" "$KOREOCTL" eval '=1.5 * 2.0'
check "map result" 0 '{"a":[1,2]}' "" "$KOREOCTL" eval '={"a": [1, 2]}'

printf '{"inputs": {"items": [1, 2, 3]}}' >"$tmp/b.json"
check "bindings from JSON file" 0 "[2,4,6]" "" \
  "$KOREOCTL" eval '=inputs.items.map(x, x * 2)' --bindings "@$tmp/b.json"
printf 'inputs:\n  enabled: yes\n  replicas: 0x10\n' >"$tmp/b.yaml"
check "bindings from YAML file (YAML 1.1 scalars)" 0 "16" "" \
  "$KOREOCTL" eval '=inputs.enabled ? inputs.replicas : 0' --bindings "@$tmp/b.yaml"

check "plain CEL" 0 '"ABC"' "" "$KOREOCTL" eval --cel '"abc".upperAscii()'
check "plain CEL error position" 1 "" "line 1, column 3" "$KOREOCTL" eval --cel '1 / 0'

check "missing key names the key" 1 "" "missing" \
  "$KOREOCTL" eval '=inputs.missing' --bindings '{"inputs":{}}'
check "undefined variable" 1 "" "nope" "$KOREOCTL" eval '=nope + 1'
check "parse error says where" 1 "" "line 1, column" "$KOREOCTL" eval '=1 +'
check "bad bindings JSON" 1 "" "bindings.*line 1, column" "$KOREOCTL" eval '=1' --bindings '{"a":'
check "bindings file missing" 1 "" "no-such-file" "$KOREOCTL" eval '=1' --bindings @"$tmp/no-such-file.json"
check "bindings not an object" 1 "" "object" "$KOREOCTL" eval '=1' --bindings '[1]'
check "usage: no expression" 2 "" "missing" "$KOREOCTL" eval
check "usage: unknown command" 2 "" "unknown command" "$KOREOCTL" frobnicate

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
