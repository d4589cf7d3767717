#!/usr/bin/env bash
# Stops the servers that start.sh started (by their pid files). Leaves the installs in place.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
for name in localstack moto; do
  pidfile="$RUN_DIR/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    log "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done
"$here/ceph.sh" stop
"$here/azurite.sh" stop
