#!/usr/bin/env bash
# Brings the whole system up on loopback: installs what is missing, builds,
# starts a private PostgreSQL (under .state/, port 55432), then broker,
# importer, frontend and speedtest.
#
# With NZBMESH_CONFIG naming your Usenet provider, the services use it and
# nothing else is started. Without one (the default), up.sh says so and runs
# the demo: deploy/local/nzbmesh.yaml, the project's own test news server on
# 127.0.0.1:11119 with a sample video made by ffmpeg, that video imported, and
# the URL to play it printed.
# Ctrl-C (or ./deploy/local/down.sh) stops everything it started.
#   --with-prometheus   also run Prometheus on 127.0.0.1:9090 scraping every service
#   --detach            start and return (stop with down.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
STATE="${NZBMESH_STATE:-$ROOT/.state}"
DEMO_CONFIG="$ROOT/deploy/local/nzbmesh.yaml"
CONFIG="${NZBMESH_CONFIG:-$DEMO_CONFIG}"
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

# Demo mode unless the config names a provider of the user's own.
providers_in() {
  python3 -c 'import sys, yaml
c = yaml.safe_load(open(sys.argv[1])) or {}
print(len((c.get("broker") or {}).get("providers") or []))' "$1"
}
demo=1
if [ -n "${NZBMESH_CONFIG:-}" ]; then
  [ -r "$NZBMESH_CONFIG" ] || { echo "up.sh: cannot read NZBMESH_CONFIG=$NZBMESH_CONFIG" >&2; exit 2; }
  if [ "$(providers_in "$NZBMESH_CONFIG")" -gt 0 ]; then
    demo=0
  else
    echo "up.sh: $NZBMESH_CONFIG names no Usenet provider (broker.providers is empty)."
    CONFIG="$DEMO_CONFIG"
  fi
else
  echo "up.sh: no Usenet provider is configured (NZBMESH_CONFIG is not set)."
fi
if [ "$demo" = 1 ]; then
  echo "up.sh: running the demo: the project's own test news server with a sample video, imported for you."
  echo "up.sh: to stream your own Usenet content, copy deploy/local/nzbmesh.yaml, put your provider in"
  echo "       broker.providers (docs/CONFIGURATION.md) and run NZBMESH_CONFIG=/path/to/it.yaml ./deploy/local/up.sh"
fi
echo "up.sh: building (first build takes several minutes on 2 cores)"
bazel build //services/... //tests/fakes/nntp_server:nntp_testserver 2>&1 | tail -1
[ "${PIPESTATUS[0]}" = 0 ] || { echo "up.sh: build failed (run the bazel command above to see why)" >&2; exit 1; }
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

if [ "$demo" = 1 ]; then
  # The demo releases the test news server posts: a 30 s sample video (H.264 +
  # AAC in Matroska) to play, and 48 MiB of random bytes for the speed test.
  if [ ! -s "$STATE/spool/nzbmesh-demo.mkv" ]; then
    echo "up.sh: making the sample video with ffmpeg"
    ffmpeg -hide_banner -loglevel error -y \
      -f lavfi -i testsrc2=size=1280x720:rate=25:duration=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000:duration=30 \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k \
      -metadata title="nzbmesh demo" "$STATE/spool/.nzbmesh-demo.mkv"
    mv "$STATE/spool/.nzbmesh-demo.mkv" "$STATE/spool/nzbmesh-demo.mkv"
  fi
  [ -f "$STATE/spool/demo-video.bin" ] || head -c $((48 << 20)) /dev/urandom > "$STATE/spool/demo-video.bin"
fi

start() {  # name, command...
  local name="$1"; shift
  "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo "$! $name" >> "$STATE/pids"
}
stop_all() { ./deploy/local/down.sh; }

if [ "$demo" = 1 ]; then
  start nntp-testserver "$BIN"/tests/fakes/nntp_server/nntp_testserver --port="$NNTP_PORT" \
    --spool="$STATE/spool" --user=demo --pass="$NZBMESH_DEMO_NNTP_PASSWORD"
  # The test server binds its port before it has posted the spool; wait for it.
  for _ in $(seq 1 600); do grep -q "listening on" "$STATE/logs/nntp-testserver.log" 2>/dev/null && break; sleep 0.1; done
fi
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

nzbmesh is up (logs: $STATE/logs/; config: $CONFIG)
  frontend   http://127.0.0.1:8080/dav/   (WebDAV user: player / \$NZBMESH_WEBDAV_PASSWORD)
  SABnzbd    http://127.0.0.1:8080/sabnzbd/api?apikey=$NZBMESH_API_KEY
  gRPC       broker 127.0.0.1:50051   importer 127.0.0.1:50052   speedtest 127.0.0.1:50053
  metrics    http://127.0.0.1:9091/metrics (broker) 9092 (importer) 9093 (frontend) 9094 (speedtest)
  postgres   $NZBMESH_DATABASE_URL
  try        $BIN/services/ctl/nzbmeshctl pool
INFO
if [ "$demo" = 1 ] && [ "$ok" = 1 ]; then
  echo "  news       127.0.0.1:$NNTP_PORT (the project's test news server; demo NZBs in $STATE/spool/)"
  echo
  echo "up.sh: importing the sample video ($STATE/spool/nzbmesh-demo.mkv.nzb)"
  if job="$("$BIN"/services/ctl/nzbmeshctl import "$STATE/spool/nzbmesh-demo.mkv.nzb" --category demo --wait \
             --poll 200ms --output json 2>"$STATE/logs/demo-import.log")"; then
    release="$(printf '%s' "$job" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("catalog_path", ""))')"
    # The release is a directory; play its largest file (the video).
    path="$("$BIN"/services/ctl/nzbmeshctl ls "$release" --output json | python3 -c 'import json, sys
files = [e for e in json.load(sys.stdin).get("entries", []) if not e.get("directory")]
print(max(files, key=lambda e: int(e.get("size", 0)))["path"] if files else "")')"
    url="http://127.0.0.1:8080/dav${path}"
    cat <<PLAY
up.sh: the sample video is in the catalog at $path. Play it:
  ffplay -auth_type basic "http://player:$NZBMESH_WEBDAV_PASSWORD@127.0.0.1:8080/dav${path}"
  mpv "http://player:$NZBMESH_WEBDAV_PASSWORD@127.0.0.1:8080/dav${path}"
  curl -u player:$NZBMESH_WEBDAV_PASSWORD -o /tmp/nzbmesh-demo.mkv "$url"
  (or open http://127.0.0.1:8080/dav/ in a browser, or point a WebDAV player at it)
PLAY
  else
    ok=0
    echo "up.sh: importing the sample video failed: $(tail -n 3 "$STATE/logs/demo-import.log")" >&2
  fi
fi
[ "$ok" = 1 ] || echo "up.sh: some services failed to start (see above)" >&2
if [ "$detach" = 1 ]; then exit 0; fi
trap 'echo; stop_all; exit 0' INT TERM
echo "Press Ctrl-C to stop."
while true; do sleep 3600; done
