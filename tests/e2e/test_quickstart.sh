#!/usr/bin/env bash
# tests/e2e/test_quickstart.sh SRC_DIR SHARED_DIR: issue 7's acceptance, as a
# new user runs it.  From a clean copy of the repository (the files git
# knows), `./scripts/quickstart` builds and starts the fleet, the expected
# resources exist in both kubesim clusters, the triggers' status shows the
# Workflows Ready, `koreoctl executions list` lists the runs; a second run is
# safe; `./scripts/quickstart stop` leaves nothing running.  Packages are
# already installed by CI (KOREO_SKIP_DEPS=1 skips apt-get).
set -uo pipefail
SRC=$(cd "$1" && pwd)
SHARED=$(cd "$2" && pwd)
command -v kubectl >/dev/null || { echo "SKIP: kubectl not found"; exit 77; }

WORK=$(mktemp -d /tmp/koreo-quickstart-XXXXXX)
COPY="$WORK/koreo"
cleanup() {
  local rc=$?
  [ -x "$COPY/scripts/quickstart" ] && "$COPY/scripts/quickstart" stop >/dev/null 2>&1
  pkill -f "$COPY/" 2>/dev/null
  if [ $rc -ne 0 ] && [ -d "$COPY/.koreo-dev/logs" ]; then
    for f in "$COPY"/.koreo-dev/logs/*.log; do
      echo "==== $f (last 30 lines)"
      tail -n 30 "$f"
    done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
die() {
  echo "FAIL: $*" >&2
  exit 1
}

echo "== a clean copy of the repository"
mkdir -p "$COPY"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard | grep -zv '^\.koreo-dev/' |
  xargs -0 tar cf -) | (cd "$COPY" && tar xf -) || die "copying the repository"
[ ! -e "$COPY/.koreo-dev" ] || die "the copy is not clean"

export KOREO_SKIP_DEPS=1 KOREO_SHARED_DIR="$SHARED"
echo "== ./scripts/quickstart"
(cd "$COPY" && ./scripts/quickstart) >"$WORK/quickstart.log" 2>&1 || {
  cat "$WORK/quickstart.log"
  die "quickstart failed"
}
cat "$WORK/quickstart.log"
grep -q "The fleet is running" "$WORK/quickstart.log" || die "no closing summary"

kc() { kubectl --kubeconfig "$COPY/.koreo-dev/clusters/$1/kubeconfig" "${@:2}"; }
for c in east west; do
  for r in deployment/shop service/shop serviceaccount/shop configmap/shop-config; do
    kc "$c" get "$r" -n default -o name >/dev/null 2>&1 || die "$r missing in $c"
  done
  kc "$c" get webapps.platform.koreo.example shop -n default -o json |
    jq -e '.status.conditions[] | select(.type == "Ready" and .status == "True" and .reason == "Ready")' \
      >/dev/null || die "WebApp shop in $c is not Ready"
done
kc east get service nginx-svc -n default -o name >/dev/null 2>&1 || die "hello-service's Service missing in east"
kc west get service nginx-svc -n default -o name >/dev/null 2>&1 && die "hello-service's Service in west"
kc east get deployment nginx-deployment -n default -o json |
  jq -e '.status.conditions[] | select(.type == "Ready" and .reason == "Ready")' >/dev/null ||
  die "hello-service's trigger is not Ready"

# shellcheck disable=SC1091
. "$COPY/.koreo-dev/fleet.env"
KCTL() { "$COPY/build-quickstart/cli/koreoctl" "$@" --server "$FLEET_API" --token "$FLEET_TOKEN" --ca-file "$FLEET_CA"; }
KCTL executions list -o json >"$WORK/runs.json" || die "koreoctl executions list"
for c in east west; do
  jq -e --arg c "$c" '[(.items // .)[] | select(.cluster == $c and .outcome == "Ok")] | length > 0' \
    "$WORK/runs.json" >/dev/null || die "no Ok run listed for $c"
done

echo "== running it again is safe"
(cd "$COPY" && ./scripts/quickstart) >"$WORK/quickstart2.log" 2>&1 || {
  cat "$WORK/quickstart2.log"
  die "second quickstart failed"
}
grep -q "already running" "$WORK/quickstart2.log" || die "second run did not notice the running fleet"

echo "== ./scripts/quickstart stop leaves nothing running"
# the database's files: in .koreo-dev/pg, or (when a parent folder is closed
# to the postgres user) in the folder .koreo-dev/pg/pgroot names
pgroot=$(cat "$COPY/.koreo-dev/pg/pgroot" 2>/dev/null || echo "$COPY/.koreo-dev/pg")
pgrep -f "$pgroot/data" >/dev/null || die "no PostgreSQL found running from $pgroot before stop"
(cd "$COPY" && ./scripts/quickstart stop) || die "quickstart stop"
sleep 1
left=$( (pgrep -af "$COPY/"; pgrep -af "$pgroot/") | grep -v "pgrep" || true)
[ -z "$left" ] || die "still running after stop: $left"
[ ! -e "$pgroot/data/postmaster.pid" ] || die "PostgreSQL still has a pid file"
echo "PASS"
