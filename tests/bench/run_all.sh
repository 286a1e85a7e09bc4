#!/usr/bin/env bash
# Runs every benchmark and prints one report with the machine it ran on.
#   bazel run -c opt //tests/bench:all [-- --benchmark_min_time=1]
set -uo pipefail
echo "== machine"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
echo "flags:  $(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512_vbmi2|vpclmulqdq)$' | tr '\n' ' ')"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
for bin in ${NZBMESH_BENCHMARKS}; do
  echo
  echo "== $(basename "$bin")"
  "$bin" --benchmark_counters_tabular=true "$@" 2>/dev/null | grep -vE '^(ts=|\*\*\*WARNING)' || status=1
done
exit $status
