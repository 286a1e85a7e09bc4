#!/usr/bin/env bash
# Brings the whole system up on loopback: installs what is missing, builds,
# starts a private PostgreSQL (under .state/, port 55432), the test news server
# with a demo release (127.0.0.1:11119), then broker, importer, frontend and
# speedtest with deploy/local/nzbmesh.yaml (override with NZBMESH_CONFIG).
# Ctrl-C (or ./deploy/local/down.sh) stops everything it started.
#   --with-prometheus   also run Prometheus on 127.0.0.1:9090 scraping every service
#   --detach            start and return (stop with down.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
STATE="${NZBMESH_STATE:-$ROOT/.state}"
CONFIG="${NZBMESH_CONFIG:-$ROOT/deploy/local/nzbmesh.yaml}"
PG_PORT="${NZBMESH_PG_PORT:-55432}"
NNTP_PORT="${NZBMESH_DEMO_NNTP_PORT:-11119}"
with_prometheus=0; detach=0
for a in "$@"; do
  case "$a" in
    --with-prometheus) with_prometheus=1;;
    --detach) detach=1;;
    *) echo "usage: up.sh [--with-prometheus] [--detach]" >&2; exit 2;;
  esac
done

./deploy/local/install-deps.sh
echo "up.sh: building (first build takes several minutes on 2 cores)"
bazel build //services/... //tests/fakes/nntp_server:nntp_testserver 2>&1 | tail -1
BIN="$(bazel info bazel-bin 2>/dev/null)"

mkdir -p "$STATE/logs" "$STATE/spool"
: > "$STATE/pids"
export NZBMESH_DATABASE_URL="$(./deploy/local/pg.sh start "$STATE/pg" "$PG_PORT")"
psql "$NZBMESH_DATABASE_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname='nzbmesh'" | grep -q 1 ||
  psql "$NZBMESH_DATABASE_URL" -qc "CREATE DATABASE nzbmesh"
export NZBMESH_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/nzbmesh"
export NZBMESH_DEMO_NNTP_PASSWORD="${NZBMESH_DEMO_NNTP_PASSWORD:-demo}"
export NZBMESH_API_KEY="${NZBMESH_API_KEY:-$(cat "$STATE/api_key" 2>/dev/null || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' | tee "$STATE/api_key")}"
export NZBMESH_WEBDAV_PASSWORD="${NZBMESH_WEBDAV_PASSWORD:-player}"

# A demo release: 48 MiB of pseudo-random bytes posted to the test news server.
[ -f "$STATE/spool/demo-video.bin" ] || head -c $((48 << 20)) /dev/urandom > "$STATE/spool/demo-video.bin"

start() {  # name, command...
  local name="$1"; shift
  "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo "$! $name" >> "$STATE/pids"
}
stop_all() { ./deploy/local/down.sh; }

start nntp-testserver "$BIN"/tests/fakes/nntp_server/nntp_testserver --port="$NNTP_PORT" \
  --spool="$STATE/spool" --user=demo --pass="$NZBMESH_DEMO_NNTP_PASSWORD"
# The test server binds its port before it has posted the spool; wait for it.
for _ in $(seq 1 600); do grep -q "listening on" "$STATE/logs/nntp-testserver.log" 2>/dev/null && break; sleep 0.1; done
start broker "$BIN"/services/broker/broker --config="$CONFIG"
for svc in importer frontend speedtest; do
  bin="$BIN/services/$svc/$svc"
  if [ -x "$bin" ]; then start "$svc" "$bin" --config="$CONFIG"; else echo "up.sh: $svc is not built yet; skipped"; fi
done
if [ "$with_prometheus" = 1 ]; then
  start prometheus prometheus --config.file="$ROOT/deploy/observability/prometheus/prometheus-local.yml" \
    --web.listen-address=127.0.0.1:9090 --storage.tsdb.path="$STATE/prometheus"
fi

# Wait (bounded) until each service serves its metrics endpoint.
ok=1
for port in 9091 9092 9093 9094; do
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; then break; fi
    sleep 0.1
  done
done
while read -r pid name; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "up.sh: $name exited; see $STATE/logs/$name.log" >&2; ok=0; fi
done < "$STATE/pids"

cat <<INFO

nzbmesh is up (logs: $STATE/logs/)
  frontend   http://127.0.0.1:8080/dav/   (WebDAV user: player / \$NZBMESH_WEBDAV_PASSWORD)
  SABnzbd    http://127.0.0.1:8080/sabnzbd/api?apikey=$NZBMESH_API_KEY
  gRPC       broker 127.0.0.1:50051   importer 127.0.0.1:50052   speedtest 127.0.0.1:50053
  metrics    http://127.0.0.1:9091/metrics (broker) 9092 (importer) 9093 (frontend) 9094 (speedtest)
  postgres   $NZBMESH_DATABASE_URL
  news       127.0.0.1:$NNTP_PORT (test server; demo NZB: $STATE/spool/demo-video.bin.nzb)
  try        $BIN/services/ctl/nzbmeshctl pool
             $BIN/services/ctl/nzbmeshctl import $STATE/spool/demo-video.bin.nzb --wait
INFO
[ "$ok" = 1 ] || echo "up.sh: some services failed to start (see above)" >&2
if [ "$detach" = 1 ]; then exit 0; fi
trap 'echo; stop_all; exit 0' INT TERM
echo "Press Ctrl-C to stop."
while true; do sleep 3600; done
