#!/usr/bin/env bash
# Private PostgreSQL clusters for nzbmesh: start | stop | url.
#   deploy/local/pg.sh start DIR PORT   initdb (first time) and start on 127.0.0.1:PORT
#   deploy/local/pg.sh stop DIR         fast shutdown
# initdb refuses to run as root, so as root the cluster is owned by the
# `postgres` system user (created by Debian's postgresql package).
set -euo pipefail

PGBIN="${NZBMESH_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[ -x "$PGBIN/initdb" ] || { echo "pg.sh: PostgreSQL binaries not found (install-deps.sh installs them)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd="${1:-}"; dir="${2:-}"
case "$cmd" in
  start)
    port="${3:?port}"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; chmod 700 "$dir"; fi
    # postgres must be able to reach the directory through its parents.
    p="$dir"; while [ "$p" != "/" ]; do p="$(dirname "$p")"; [ "$(id -u)" -eq 0 ] && chmod o+x "$p" 2>/dev/null || true; done
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$PGBIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 ||
        { cat "$dir.initdb.log" >&2; exit 1; }
    fi
    as_owner "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null ||
      { echo "pg.sh: PostgreSQL did not start on port $port; the end of $dir/server.log:" >&2
        tail -n 5 "$dir/server.log" >&2 2>/dev/null || true; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -f "$dir/postmaster.pid" ]; then as_owner "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true; fi
    ;;
  *)
    echo "usage: pg.sh start DIR PORT | stop DIR" >&2; exit 2;;
esac
