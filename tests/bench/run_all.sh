#!/usr/bin/env bash
# Runs every benchmark and prints one report with the machine it ran on.
#   bazel run -c opt //tests/bench:all [-- --benchmark_min_time=1]
# The importer's benchmarks need PostgreSQL: NZBMESH_PG_URL names a server,
# or a throwaway cluster is started on NZBMESH_BENCH_PG_PORT (default 25470:
# below the ephemeral port range, which the benchmarks' clients just used)
# with deploy/local/pg.sh and removed afterwards.
set -uo pipefail
echo "== machine"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
echo "flags:  $(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512_vbmi2|vpclmulqdq)$' | tr '\n' ' ')"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
run() {
  echo
  echo "== $(basename "$1")"
  "$@" --benchmark_counters_tabular=true 2>/dev/null | grep -vE '^(ts=|\*\*\*WARNING)' || status=1
}
for bin in ${NZBMESH_BENCHMARKS}; do run "$bin" "$@"; done

# ---- importer (PostgreSQL) ----
scratch="$(mktemp -d /tmp/nzbmesh-bench.XXXXXX)"
pg_sh="$(cd "$(dirname "$NZBMESH_PG_SH")" && pwd)/$(basename "$NZBMESH_PG_SH")"
pg_started=0
# pg_ctl runs as the postgres user, who cannot enter the runfiles tree: run it from /.
cleanup() {
  if [ "$pg_started" = 1 ]; then (cd / && "$pg_sh" stop "$scratch/pg"); fi
  rm -rf "$scratch"
}
trap cleanup EXIT
if [ -z "${NZBMESH_PG_URL:-}" ]; then
  if url="$(cd / && "$pg_sh" start "$scratch/pg" "${NZBMESH_BENCH_PG_PORT:-25470}")"; then
    export NZBMESH_PG_URL="$url"
    pg_started=1
  fi
fi
if [ -z "${NZBMESH_PG_URL:-}" ]; then
  echo
  echo "== importer benchmarks skipped: no PostgreSQL (install-deps.sh installs it)"
  exit 1
fi
run "$NZBMESH_LAYOUT_BENCHMARK" "$@"
echo
echo "== import of a 70,000-segment NZB (import_benchmark_test)"
# A gtest binary that spawns the importer from its runfiles.
runfiles="$(cd "$(dirname "$NZBMESH_IMPORT_BENCHMARK")" && pwd)/$(basename "$NZBMESH_IMPORT_BENCHMARK").runfiles"
[ -d "$runfiles" ] || runfiles="$(cd .. && pwd)"  # bazel run: the workspace's runfiles tree is the parent of the cwd
TEST_SRCDIR="$runfiles" TEST_WORKSPACE=nzbmesh TEST_TMPDIR="$scratch" "$NZBMESH_IMPORT_BENCHMARK" 2>/dev/null |
  grep -E '^import of|FAILED' || status=1
run "$NZBMESH_CATALOG_10M_BENCHMARK" "$@"  # the catalog filled to 10 million segments first
exit $status
