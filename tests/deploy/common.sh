# shellcheck shell=bash disable=SC2034  # SRC, WORK, PY are for the sourcing script
# Shared by the deploy tests: locate the sources and a Python with PyYAML.
# Sourced, not executed.

# Runfiles root under `bazel test`, the repository when run by hand.
if [ -n "${TEST_SRCDIR:-}" ]; then
  SRC="${TEST_SRCDIR}/${TEST_WORKSPACE:-nzbmesh}"
else
  SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fi
WORK="${TEST_TMPDIR:-$(mktemp -d)}"

fail() { echo "FAIL: $*" >&2; exit 1; }

# Debian's python3 has python3-yaml; a pyenv/venv python3 first on PATH may not.
find_python() {
  local p
  for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  fail "no python3 with PyYAML: install the Debian package python3-yaml (deploy/local/install-deps.sh)"
}
PY="$(find_python)"
