# tests/kubesim/assert.sh: assertions shared by kubesim's test scripts
# (sourced).  Counts in PASS/FAIL; each prints one line per check.
PASS=0
FAIL=0
ok() {
  PASS=$((PASS + 1))
  echo "ok   $1"
}
bad() {
  FAIL=$((FAIL + 1))
  echo "FAIL $1"
  shift
  for l in "$@"; do printf '     %s\n' "$l"; done
}
# expect NAME WANT COMMAND...: stdout+stderr must equal WANT exactly
expect() {
  local name=$1 want=$2
  shift 2
  local got
  got=$("$@" 2>&1)
  if [ "$got" == "$want" ]; then ok "$name"; else bad "$name" "want: $(printf %q "$want")" "got:  $(printf %q "$got")"; fi
}
# expect_re NAME REGEX COMMAND...: output must match the (multi-line) ERE
expect_re() {
  local name=$1 re=$2
  shift 2
  local got
  got=$("$@" 2>&1)
  if [[ "$got" =~ $re ]]; then ok "$name"; else bad "$name" "want /$re/" "got:  $(printf %q "$got")"; fi
}
