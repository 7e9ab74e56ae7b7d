# shellcheck shell=bash
# tests/examples/lib.sh: shell helpers shared by the examples' tests
# (sourced, not run): pass/fail counting, polling, and kubesim clusters and
# background processes that are stopped when the test exits, however it exits.
#
# After sourcing: WORK is a fresh scratch directory; PIDS lists the
# background processes to stop (add with `bg_started`); both are cleaned
# up by an EXIT trap.

pass=0 fail=0
PIDS=()
WORK=$(mktemp -d /tmp/koreo-examples-XXXXXX)

examples_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap examples_cleanup EXIT
trap 'exit 1' INT TERM

ok() { pass=$((pass + 1)); }
bad() {
  echo "FAIL: $*"
  fail=$((fail + 1))
}
# expect WHAT GOT WANT
expect() { if [ "$2" = "$3" ]; then ok; else bad "$1: got [$2], want [$3]"; fi; }

# wait_for SECONDS WHAT COMMAND...: poll (4 times a second) until COMMAND
# succeeds; a timeout is a failure. Returns COMMAND's last status.
wait_for() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  bad "timed out after ${secs}s waiting for $what"
  return 1
}

# need_kubectl: set KUBECTL, or exit 77 (skipped) when there is none.
need_kubectl() {
  KUBECTL=${KUBECTL:-$(command -v kubectl)}
  if [ -z "$KUBECTL" ] || ! "$KUBECTL" version --client >/dev/null 2>&1; then
    echo "SKIP: kubectl not found"
    exit 77
  fi
}

# bg_started PID: stop PID when the test exits.
bg_started() { PIDS+=("$1"); }

# start_kubesim KUBESIM NAME: a cluster whose kubeconfig is
# $WORK/NAME.kubeconfig (logs $WORK/NAME.kubesim.*); exits the test when it
# does not come up within 10 s. kubesim also exits by itself after 300 s.
start_kubesim() {
  local sim=$1 name=$2
  "$sim" --listen 127.0.0.1:0 --write-kubeconfig "$WORK/$name.kubeconfig" --exit-after 300 \
    >"$WORK/$name.kubesim.out" 2>"$WORK/$name.kubesim.err" &
  bg_started $!
  for _ in $(seq 100); do
    [ -s "$WORK/$name.kubeconfig" ] && return 0
    sleep 0.1
  done
  echo "FAIL: kubesim $name did not write its kubeconfig"
  cat "$WORK/$name.kubesim.err"
  exit 1
}

# k CLUSTER ARGS...: kubectl against the cluster started as CLUSTER
k() {
  local c=$1
  shift
  "$KUBECTL" --kubeconfig "$WORK/$c.kubeconfig" --request-timeout=20s "$@"
}

# stop_agent PID WHAT: SIGTERM an agent and expect exit status 0 (a
# sanitizer report at exit makes it non-zero).
stop_agent() {
  local rc p rest=()
  kill "$1"
  wait "$1"
  rc=$?
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  PIDS=("${rest[@]}")
  expect "$2: exit status after SIGTERM" "$rc" 0
}

# no_sanitizer_reports FILE...: no AddressSanitizer/UBSan report in the logs.
no_sanitizer_reports() {
  if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$@"; then
    bad "sanitizer report"
    grep -E -A5 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$@" | head -30
  else
    ok
  fi
}

# finish NAME: print the counts; the exit status is 0 only without failures.
finish() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
