#!/bin/sh
# tests/pg/pg-stop.sh DIR: stop the PostgreSQL started by pg-start.sh DIR
# (immediate shutdown) and remove DIR.
set -u
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
[ -d "$dir" ] || exit 0
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
root=$dir
[ -s "$dir/pgroot" ] && root=$(cat "$dir/pgroot") # see pg-start.sh
if [ -f "$root/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bindir/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1
  else
    "$bindir/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1
  fi
fi
case $root in /tmp/koreo-pg-*) rm -rf "$root" ;; esac
rm -rf "$dir"
