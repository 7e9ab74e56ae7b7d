# scripts/lib/fleet.sh: start and stop a local Koreo fleet: a private
# PostgreSQL, koreo-controlplane replicas, kubesim clusters and one
# koreo-agent per cluster registered with a bootstrap token.  Sourced by the
# end-to-end test (tests/e2e/test_fleet.sh) and the quickstart.
#
# Everything lives under $FLEET_DIR (logs in $FLEET_DIR/logs, pids in
# $FLEET_DIR/pids); nothing outside it is touched.  Binaries come from
# $FLEET_BIN (a build directory).  Functions return non-zero with a message
# on stderr naming the step and its log file.
#
# Shell state after fleet_start_db / fleet_start_cp / fleet_add_cluster:
#   FLEET_DB_URL, FLEET_API (https://127.0.0.1:PORT), FLEET_AGENT_ADDR,
#   FLEET_TOKEN (admin API token), FLEET_CA (CA file for koreoctl),
#   FLEET_KUBECONFIG_<name> (kubeconfig of each cluster).

fleet_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

fleet_fail() { # STEP LOG
  echo "fleet: $1 failed${2:+ (log: $2)}" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then tail -n 20 "$2" | sed 's/^/  | /' >&2; fi
  return 1
}

# fleet_wait SECONDS CMD...: retry CMD every 0.2 s until it succeeds.
fleet_wait() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# fleet_spawn NAME LOG CMD...: start CMD in the background, record its pid.
fleet_spawn() {
  local name=$1 log=$2
  shift 2
  mkdir -p "$FLEET_DIR/pids" "$FLEET_DIR/logs"
  "$@" >>"$log" 2>&1 &
  echo $! >"$FLEET_DIR/pids/$name"
}

fleet_pid() { cat "$FLEET_DIR/pids/$1" 2>/dev/null; }
fleet_alive() { local p; p=$(fleet_pid "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# fleet_kill NAME [SIGNAL]: stop one process and wait for it (at most 10 s).
fleet_kill() {
  local p
  p=$(fleet_pid "$1") || return 0
  [ -n "$p" ] || return 0
  kill -"${2:-TERM}" "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$p" 2>/dev/null || true
  rm -f "$FLEET_DIR/pids/$1"
}

fleet_start_db() {
  mkdir -p "$FLEET_DIR/logs"
  # PostgreSQL runs as the unprivileged `postgres` user when we are root: it
  # must be able to reach its folder
  [ "$(id -u)" != 0 ] || chmod a+x "$FLEET_DIR"
  FLEET_DB_URL=$("$FLEET_SRC/tests/pg/pg-start.sh" "$FLEET_DIR/pg" 2>>"$FLEET_DIR/logs/postgres.log") ||
    fleet_fail "starting PostgreSQL" "$FLEET_DIR/logs/postgres.log" || return 1
  "$FLEET_BIN/controlplane/koreo-controlplane" migrate --database-url "$FLEET_DB_URL" \
    >>"$FLEET_DIR/logs/migrate.log" 2>&1 || fleet_fail "migrating the database" "$FLEET_DIR/logs/migrate.log" || return 1
  FLEET_TOKEN=$("$FLEET_BIN/controlplane/koreo-controlplane" tokens create --role admin \
    --description fleet-admin --database-url "$FLEET_DB_URL" 2>>"$FLEET_DIR/logs/migrate.log") ||
    fleet_fail "creating the admin token" "$FLEET_DIR/logs/migrate.log" || return 1
  export FLEET_DB_URL FLEET_TOKEN
}

# fleet_start_cp NAME [AGENT_PORT API_PORT]: one control-plane replica.  The
# first one fixes FLEET_API / FLEET_AGENT_ADDR; every replica shares the PKI.
fleet_start_cp() {
  local name=$1 ap=${2:-} hp=${3:-}
  [ -n "$ap" ] || ap=$(fleet_free_port)
  [ -n "$hp" ] || hp=$(fleet_free_port)
  mkdir -p "$FLEET_DIR/pki"
  fleet_spawn "$name" "$FLEET_DIR/logs/$name.log" \
    "$FLEET_BIN/controlplane/koreo-controlplane" serve --database-url "$FLEET_DB_URL" \
    --pki-dir "$FLEET_DIR/pki" --agent-listen "127.0.0.1:$ap" --api-listen "127.0.0.1:$hp" \
    --replica-id "$name" ${FLEET_CP_ARGS:-}
  echo "$ap $hp" >"$FLEET_DIR/pids/$name.ports"
  fleet_wait 30 curl -sf --cacert "$FLEET_DIR/pki/ca.crt" "https://127.0.0.1:$hp/readyz" ||
    fleet_fail "starting control plane $name" "$FLEET_DIR/logs/$name.log" || return 1
  if [ -z "${FLEET_API:-}" ]; then
    FLEET_API="https://127.0.0.1:$hp"
    FLEET_AGENT_ADDR="127.0.0.1:$ap"
  fi
  FLEET_CA="$FLEET_DIR/pki/ca.crt"
  export FLEET_API FLEET_AGENT_ADDR FLEET_CA
}

# fleet_restart_cp NAME: stop and start a replica on the same ports.
fleet_restart_cp() {
  local ports
  ports=$(cat "$FLEET_DIR/pids/$1.ports")
  fleet_kill "$1"
  # shellcheck disable=SC2086
  fleet_start_cp "$1" $ports
}

fleet_koreoctl() {
  "$FLEET_BIN/cli/koreoctl" "$@" --server "$FLEET_API" --token "$FLEET_TOKEN" --ca-file "$FLEET_CA"
}

# fleet_start_kubesim NAME: a kubesim cluster (state kept in its folder).
fleet_start_kubesim() {
  local name=$1 d="$FLEET_DIR/clusters/$1"
  mkdir -p "$d"
  local port
  port=$(cat "$d/port" 2>/dev/null || fleet_free_port)
  echo "$port" >"$d/port"
  rm -f "$d/kubeconfig.new"
  fleet_spawn "kubesim-$name" "$FLEET_DIR/logs/kubesim-$name.log" \
    "$FLEET_BIN/tests/kubesim/koreo-kubesim" --listen "127.0.0.1:$port" \
    --write-kubeconfig "$d/kubeconfig" --state-file "$d/state.json" --cert-dir "$d/certs" \
    --token "kubesim-$name-token"
  fleet_wait 20 test -s "$d/kubeconfig" ||
    fleet_fail "starting kubesim $name" "$FLEET_DIR/logs/kubesim-$name.log" || return 1
  fleet_wait 20 kubectl --kubeconfig "$d/kubeconfig" get ns default ||
    fleet_fail "reaching kubesim $name" "$FLEET_DIR/logs/kubesim-$name.log" || return 1
}

# fleet_start_agent NAME: the cluster's agent; registers with a fresh
# bootstrap token the first time (its state dir has no certificate yet).
fleet_start_agent() {
  local name=$1 d="$FLEET_DIR/clusters/$1"
  local tokarg=()
  if [ ! -s "$d/agent/cert.pem" ]; then
    local tok
    tok=$(fleet_koreoctl tokens bootstrap --cluster "$name" --ttl 1h -o json 2>>"$FLEET_DIR/logs/koreoctl.log" |
      jq -r .token) && [ -n "$tok" ] && [ "$tok" != null ] ||
      fleet_fail "creating the bootstrap token for $name" "$FLEET_DIR/logs/koreoctl.log" || return 1
    tokarg=(--bootstrap-token "$tok")
  fi
  local hp
  hp=$(cat "$d/health-port" 2>/dev/null || fleet_free_port)
  echo "$hp" >"$d/health-port"
  fleet_spawn "agent-$name" "$FLEET_DIR/logs/agent-$name.log" \
    "$FLEET_BIN/agent/koreo-agent" --server "${FLEET_AGENT_SERVERS:-$FLEET_AGENT_ADDR}" \
    --cluster-name "$name" "${tokarg[@]}" --state-dir "$d/agent" --ca-file "$FLEET_CA" \
    --kubeconfig "$d/kubeconfig" --health-listen "127.0.0.1:$hp" ${FLEET_AGENT_ARGS:-}
  fleet_wait 30 fleet_cluster_state_is "$name" online ||
    fleet_fail "connecting the agent of $name" "$FLEET_DIR/logs/agent-$name.log" || return 1
}

# fleet_cluster_state_is NAME STATE: the control plane reports the cluster so.
fleet_cluster_state_is() {
  [ "$(fleet_koreoctl get clusters -o json 2>/dev/null |
    jq -r --arg n "$1" '(.items // .)[] | select(.name == $n) | .state')" = "$2" ]
}

fleet_add_cluster() {
  fleet_start_kubesim "$1" || return 1
  fleet_start_agent "$1" || return 1
}

# fleet_stop: stop every process of the fleet (agents first, database last).
fleet_stop() {
  [ -d "$FLEET_DIR/pids" ] || return 0
  local f n
  for f in "$FLEET_DIR"/pids/agent-*; do [ -e "$f" ] && fleet_kill "$(basename "$f")"; done
  for f in "$FLEET_DIR"/pids/*; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    case $n in *.ports) continue ;; esac
    fleet_kill "$n"
  done
  if [ -d "$FLEET_DIR/pg" ]; then "$FLEET_SRC/tests/pg/pg-stop.sh" "$FLEET_DIR/pg" >/dev/null 2>&1 || true; fi
}
