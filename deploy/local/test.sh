#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, starts a throwaway
# PostgreSQL (tests create their own databases in it), runs `bazel test //...`,
# and stops PostgreSQL again. Extra arguments go to `bazel test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

./deploy/local/install-deps.sh

state="$(mktemp -d /tmp/nzbmesh-test-XXXXXX)"
# Below Linux's ephemeral range (32768-60999): a loopback client's source
# port there (thousands of them after a benchmark) can hold the port.
port="${NZBMESH_TEST_PG_PORT:-25433}"
cleanup() { ./deploy/local/pg.sh stop "$state/pg" || true; rm -rf "$state"; }
trap cleanup EXIT

NZBMESH_PG_URL="$(./deploy/local/pg.sh start "$state/pg" "$port")"
export NZBMESH_PG_URL
echo "test.sh: PostgreSQL at $NZBMESH_PG_URL"

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(//...)
# Build actions come from the disk cache; test results never do (several
# tests talk to PostgreSQL and Prometheus, which Bazel cannot see).
bazel test --cache_test_results=no "${targets[@]}"
