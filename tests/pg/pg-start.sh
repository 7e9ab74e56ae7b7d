#!/bin/sh
# tests/pg/pg-start.sh DIR: start a private PostgreSQL for shell tests (the
# shell twin of tests/pg/pgtest.c): initdb into DIR/data, pg_ctl on 127.0.0.1
# and a free port (socket in DIR), trust auth, as `postgres` via runuser when
# root.  Prints the URL (postgresql://postgres@127.0.0.1:PORT/postgres) on
# stdout.  Stop and remove it with tests/pg/pg-stop.sh DIR.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$bindir/initdb" ] || { echo "pg-start: no PostgreSQL server binaries (install postgresql)" >&2; exit 1; }
as() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as() { runuser -u postgres -- "$@"; }
fi
chmod 0755 "$dir"
# As root, the server runs as `postgres`, which must reach DIR; when a parent
# folder is closed to it (a 0700 home or mktemp folder), the server's files
# go to a folder of its own under /tmp, named in DIR/pgroot (pg-stop.sh
# removes both).
root=$dir
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$dir"; then
  if [ -s "$dir/pgroot" ]; then
    root=$(cat "$dir/pgroot")
  else
    root=$(mktemp -d /tmp/koreo-pg-XXXXXX)
    echo "$root" >"$dir/pgroot"
  fi
  mkdir -p "$root"
  chown postgres: "$root"
  chmod 0700 "$root"
fi
if [ ! -f "$root/data/PG_VERSION" ]; then
  LC_ALL=C as "$bindir/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
fi
for attempt in 1 2 3; do
  # a loopback port nobody listens on (pg_ctl start fails on a clash: retried)
  ns=$(date +%N | sed "s/^0*//"); ns=${ns:-0}
  port=$(( ($$ * 7 + attempt * 7919 + ns % 10000) % 30000 + 20000 ))
  if command -v ss >/dev/null 2>&1 && ss -ltn "sport = :$port" | grep -q LISTEN; then continue; fi
  if LC_ALL=C as "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
      -o "-p $port -k $root -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>&1; then
    echo "$port" >"$dir/port"
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    exit 0
  fi
done
echo "pg-start: pg_ctl start failed:" >&2
tail -n 20 "$root/server.log" >&2 || true
exit 1
