#!/usr/bin/env bash
# Stops everything ./deploy/local/up.sh started (services, test news server,
# Prometheus, PostgreSQL). Safe to run twice.
set -uo pipefail
cd "$(dirname "$0")/../.."
STATE="${NZBMESH_STATE:-$PWD/.state}"
if [ -f "$STATE/pids" ]; then
  # Services first (they drain on SIGTERM), then the rest.
  tac "$STATE/pids" | while read -r pid name; do
    kill -TERM "$pid" 2>/dev/null && echo "down.sh: stopping $name ($pid)"
  done
  for _ in $(seq 1 300); do
    alive=0
    while read -r pid _; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$STATE/pids"
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  while read -r pid name; do kill -KILL "$pid" 2>/dev/null && echo "down.sh: killed $name"; done < "$STATE/pids"
  rm -f "$STATE/pids"
fi
./deploy/local/pg.sh stop "$STATE/pg"
echo "down.sh: stopped"
