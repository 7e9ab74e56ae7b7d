#!/usr/bin/env bash
# tests/cli/test_koreoctl_remote.sh KOREOCTL KOREO_CONTROLPLANE EXAMPLES: koreoctl's
# remote commands (issue 6 item 7, docs/koreoctl-remote.md) against a real
# koreo-controlplane on a private PostgreSQL (tests/pg/pg-start.sh): settings
# from flags, environment and config file; apply (a directory as one batch,
# unchanged on re-apply, 422 with file:line:col, viewer refused); get
# definitions/clusters/triggers in table, json and yaml; delete; executions
# list (filters, cursor following past one page) and show; tokens bootstrap
# and create (a west-scoped token sees only west); exit codes 0/1/2.
set -u
KOREOCTL=${1:?usage: test_koreoctl_remote.sh KOREOCTL KOREO_CONTROLPLANE EXAMPLES}
CP=${2:?usage: test_koreoctl_remote.sh KOREOCTL KOREO_CONTROLPLANE EXAMPLES}
EXAMPLES=${3:?usage: test_koreoctl_remote.sh KOREOCTL KOREO_CONTROLPLANE EXAMPLES}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../kubesim/assert.sh"
tmp=$(mktemp -d)
chmod 0755 "$tmp" # PostgreSQL runs as postgres and must reach $tmp/pg
pgdir=$tmp/pg
cp_pid=
cleanup() {
  [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
  "$here/../pg/pg-stop.sh" "$pgdir" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
unset KOREO_SERVER KOREO_TOKEN KOREO_CA_FILE
: >"$tmp/none.yaml"
export KOREO_CONFIG=$tmp/none.yaml # an empty config file: no user settings
export XDG_CONFIG_HOME=$tmp/xdg

# expect_rc NAME RC COMMAND...: the exit status must be RC (output kept in $tmp/out)
expect_rc() {
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" = "$want" ]; then ok "$name"; else bad "$name" "exit $rc, want $want" "$(head -c 2000 "$tmp/out")"; fi
}
# has NAME REGEX: $tmp/out must match
has() {
  if grep -qE -- "$2" "$tmp/out"; then ok "$1"; else bad "$1" "want /$2/" "$(head -c 2000 "$tmp/out")"; fi
}
hasnt() {
  if grep -qE -- "$2" "$tmp/out"; then bad "$1" "unexpected /$2/" "$(head -c 2000 "$tmp/out")"; else ok "$1"; fi
}

url=$("$here/../pg/pg-start.sh" "$pgdir") || { echo "FAIL cannot start PostgreSQL"; exit 1; }
"$CP" migrate --database-url "$url" >/dev/null 2>&1 || { echo "FAIL migrate"; exit 1; }
ADMIN=$("$CP" tokens create --role admin --database-url "$url" 2>/dev/null)
[[ "$ADMIN" =~ ^kat\. ]] || { echo "FAIL tokens create: '$ADMIN'"; exit 1; }

"$CP" serve --database-url "$url" --pki-dir "$tmp/pki" --api-listen 127.0.0.1:0 \
  --agent-listen 127.0.0.1:0 --log-format text >"$tmp/cp.log" 2>&1 &
cp_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*api: listening on https:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/cp.log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$cp_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL the control plane did not start:"; cat "$tmp/cp.log"; exit 1; }
S="https://127.0.0.1:$port"
CA=$tmp/pki/ca.crt
for _ in $(seq 1 100); do # the database connection is up
  "$KOREOCTL" get clusters --server "$S" --ca-file "$CA" --token "$ADMIN" >/dev/null 2>&1 && break
  sleep 0.1
done

# ---- settings: flags, environment, config file --------------------------------
expect_rc "no server: usage of settings" 1 "$KOREOCTL" get clusters
has "no server: says how" "--server"
expect_rc "no token: refused" 1 "$KOREOCTL" get clusters --server "$S" --ca-file "$CA"
has "no token: server message" "missing token.*HTTP 401"
expect_rc "untrusted server certificate" 1 "$KOREOCTL" get clusters --server "$S" --token "$ADMIN"
has "untrusted: hint" "ca-file"
export KOREO_SERVER=$S KOREO_CA_FILE=$CA KOREO_TOKEN=kat.0000000000000000.00000000000000000000000000000000
expect_rc "env: wrong token refused" 1 "$KOREOCTL" get clusters
expect_rc "flag beats env" 0 "$KOREOCTL" get clusters --token "$ADMIN"
unset KOREO_SERVER KOREO_CA_FILE KOREO_TOKEN
mkdir -p "$tmp/xdg/koreo"
printf 'server: %s\ntoken: %s\ncaFile: %s\n' "$S" "$ADMIN" "$CA" >"$tmp/xdg/koreo/config.yaml"
unset KOREO_CONFIG
expect_rc "config file (XDG_CONFIG_HOME/koreo/config.yaml)" 0 "$KOREOCTL" get definitions
has "empty list: headers" "^KIND +NAMESPACE +NAME +GENERATION"
export KOREO_CONFIG=$tmp/xdg/koreo/config.yaml

# ---- tokens ----------------------------------------------------------------------
VIEWER=$("$KOREOCTL" tokens create --role viewer --ttl 1h 2>"$tmp/err")
[ $? = 0 ] && ok "tokens create viewer" || bad "tokens create viewer" "$(cat "$tmp/err")"
[[ "$VIEWER" =~ ^kat\.[0-9a-f]{16}\.[0-9a-f]{32}$ ]] && ok "viewer token format" || bad "viewer token format" "$VIEWER"
"$KOREOCTL" tokens create --role viewer --clusters west >"$tmp/west" 2>/dev/null
WEST=$(head -n 1 "$tmp/west")
expect_rc "tokens bootstrap" 0 "$KOREOCTL" tokens bootstrap --cluster east --ttl 1h
has "bootstrap token format" "^kbt\.[0-9a-f]{16}\.[0-9a-f]{32}\.[0-9a-f]{64}$"
expect_rc "tokens bootstrap west" 0 "$KOREOCTL" tokens bootstrap --cluster west -o json
has "bootstrap -o json" '"cluster": "west"'
expect_rc "tokens: viewer may not" 1 "$KOREOCTL" tokens bootstrap --cluster x --token "$VIEWER"
has "tokens: viewer message" "admin needed"
expect_rc "tokens: missing --cluster" 2 "$KOREOCTL" tokens bootstrap
REVOKEME=$("$KOREOCTL" tokens create --role viewer 2>/dev/null)
expect_rc "revoked-to-be token works" 0 "$KOREOCTL" get clusters --token "$REVOKEME"
expect_rc "tokens revoke" 0 "$KOREOCTL" tokens revoke "$REVOKEME"
has "tokens revoke message" "revoked"
expect_rc "a revoked token is refused" 1 "$KOREOCTL" get clusters --token "$REVOKEME"
expect_rc "revoking twice" 1 "$KOREOCTL" tokens revoke "$REVOKEME"
expect_rc "tokens: bad --ttl" 2 "$KOREOCTL" tokens create --role viewer --ttl soon

# ---- apply -------------------------------------------------------------------------
expect_rc "apply hello-service dir" 0 "$KOREOCTL" apply -f "$EXAMPLES/kubernetes/hello-service"
has "apply: workflow created" "^Workflow +default +hello-service +1 +created"
has "apply: function created" "^ResourceFunction +default +service-factory +1 +created"
has "apply: deployment skipped" "skipped: apps/v1 Deployment nginx-deployment"
expect_rc "re-apply: unchanged" 0 "$KOREOCTL" apply -f "$EXAMPLES/kubernetes/hello-service"
has "re-apply: unchanged" "^Workflow +default +hello-service +1 +unchanged"
expect_rc "apply: viewer refused" 1 "$KOREOCTL" apply -f "$EXAMPLES/kubernetes/hello-service" --token "$VIEWER"
has "apply: viewer message" "role viewer cannot apply"
cat >"$tmp/good.yaml" <<'EOF'
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata:
  name: remote-ok
spec:
  return:
    a: 1
EOF
cat >"$tmp/bad.yaml" <<'EOF'
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata:
  name: remote-bad
spec:
  return:
    a: =1 +
EOF
expect_rc "apply batch with an error" 1 "$KOREOCTL" apply -f "$tmp/good.yaml" -f "$tmp/bad.yaml"
has "apply error: nothing stored" "nothing was stored"
has "apply error: file:line" "bad.yaml:[67]:[0-9]+: ValueFunction/remote-bad"
expect_rc "apply error: good one not stored" 0 "$KOREOCTL" get definitions
hasnt "apply error: good one not stored" "remote-ok"
printf '{"apiVersion": "koreo.dev/v1beta1", "kind": "ValueFunction", "metadata": {"name": "from-json", "namespace": "team"}, "spec": {"return": {"b": 2}}}\n' >"$tmp/one.json"
expect_rc "apply json" 0 "$KOREOCTL" apply -f "$tmp/one.json" -o yaml
has "apply json -o yaml" "^- kind: ValueFunction"
has "apply json -o yaml namespace" "^  namespace: team"
expect_rc "apply: no files" 2 "$KOREOCTL" apply
expect_rc "apply: missing path" 1 "$KOREOCTL" apply -f "$tmp/nope"

# ---- get / delete -----------------------------------------------------------------
expect_rc "get definitions" 0 "$KOREOCTL" get definitions
has "get definitions: row" "^Workflow +default +hello-service +1 "
expect_rc "get definitions --kind" 0 "$KOREOCTL" get definitions --kind ValueFunction
hasnt "get definitions --kind: filtered" "^Workflow"
expect_rc "get definitions -o json" 0 "$KOREOCTL" get definitions -o json
has "get -o json" '"contentHash": "sha256:'
expect_rc "get one" 0 "$KOREOCTL" get definition ValueFunction/from-json -n team -o yaml
has "get one: source" "^  kind: ValueFunction"
expect_rc "delete" 0 "$KOREOCTL" delete definition ValueFunction/from-json -n team
has "delete: message" "ValueFunction team/from-json deleted \(generation 2\)"
expect_rc "delete again: 404" 1 "$KOREOCTL" delete definition ValueFunction/from-json -n team
has "delete again: message" "not found"
expect_rc "delete: usage" 2 "$KOREOCTL" delete definition justaname

# ---- clusters, triggers ---------------------------------------------------------------
expect_rc "get clusters" 0 "$KOREOCTL" get clusters
has "get clusters: east pending" "^east +pending"
expect_rc "get clusters (west-scoped)" 0 "$KOREOCTL" get clusters --token "$WEST"
hasnt "west-scoped sees no east" "^east"
has "west-scoped sees west" "^west"
psql -q "$url" -c "INSERT INTO triggers (cluster, api_version, kind, namespace, name, resource_version, last_outcome) VALUES ('east', 'apps/v1', 'Deployment', 'default', 'web', '42', 'Ok')" >/dev/null
expect_rc "get triggers" 0 "$KOREOCTL" get triggers --cluster east
has "get triggers: row" "^east +Deployment +default +web +42 +Ok"
expect_rc "get triggers (west-scoped)" 0 "$KOREOCTL" get triggers --token "$WEST"
hasnt "west-scoped: no east triggers" "^east"

# ---- executions ------------------------------------------------------------------------
psql -q "$url" >/dev/null <<'EOF'
SELECT koreo_ensure_partitions(current_date - 2, 4);
INSERT INTO workflow_runs (id, started_at, finished_at, last_seen_at, workflow, cluster, api_version,
  kind, namespace, name, outcome, message, fingerprint, duration_ms)
SELECT i, now() - (700 - i) * interval '1 second', now() - (700 - i) * interval '1 second',
  now() - (700 - i) * interval '1 second', 'default/hello-service',
  CASE WHEN i % 10 = 0 THEN 'west' ELSE 'east' END, 'apps/v1', 'Deployment', 'default', 'web',
  CASE WHEN i = 600 THEN 'PermFail' ELSE 'Ok' END, '', 'fp', 12.5
FROM generate_series(1, 600) i;
INSERT INTO step_runs (run_id, run_started_at, ordinal, label, outcome, resource_ids, duration_ms)
SELECT id, started_at, 0, 'create_service', 'Ok', '[{"kind": "Service", "name": "nginx-svc"}]', 7
FROM workflow_runs WHERE id = 599;
EOF
expect_rc "executions list" 0 "$KOREOCTL" executions list --cluster east --limit 3
has "executions list: newest east first" "^599 +default/hello-service +east +Deployment/default/web +Ok"
n=$(grep -c "hello-service" "$tmp/out")
[ "$n" = 3 ] && ok "executions list --limit 3" || bad "executions list --limit 3" "$n rows"
expect_rc "executions list follows cursors" 0 "$KOREOCTL" executions list --cluster east --limit 530 -o json
n=$(grep -c '"workflow"' "$tmp/out")
[ "$n" = 530 ] && ok "530 rows over two pages" || bad "530 rows over two pages" "$n rows"
expect_rc "executions list --outcome" 0 "$KOREOCTL" executions list --outcome PermFail
has "PermFail row" "^600 .*PermFail"
n=$(grep -c "hello-service" "$tmp/out")
[ "$n" = 1 ] && ok "one PermFail" || bad "one PermFail" "$n rows"
expect_rc "executions list --since 1h (all)" 0 "$KOREOCTL" executions list --since 1h --limit 600 -o json
n=$(grep -c '"workflow"' "$tmp/out")
[ "$n" = 600 ] && ok "--since 1h: 600" || bad "--since 1h: 600" "$n rows"
expect_rc "executions list --trigger" 0 "$KOREOCTL" executions list --trigger Deployment/default/web --cluster west
has "trigger filter" "^600 .*west"
expect_rc "executions (west-scoped) sees west only" 0 "$KOREOCTL" executions list --token "$WEST" --limit 100 -o json
hasnt "west-scoped: no east runs" '"cluster": "east"'
expect_rc "executions show" 0 "$KOREOCTL" executions show 599
has "show: workflow" "^workflow +default/hello-service"
has "show: step" "^create_service +Ok +7ms"
expect_rc "executions show (west-scoped, east run)" 1 "$KOREOCTL" executions show 599 --token "$WEST"
has "show: not found" "not found"
expect_rc "executions: usage" 2 "$KOREOCTL" executions list --bogus 1
expect_rc "executions: bad since" 1 "$KOREOCTL" executions list --since yesterday
has "bad since: server says" "RFC 3339"
expect_rc "get: usage" 2 "$KOREOCTL" get
expect_rc "-o bad" 2 "$KOREOCTL" get clusters -o xml

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
