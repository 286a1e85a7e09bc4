#!/usr/bin/env bash
# Lints deploy/docker without a Docker engine (docker_lint_check.py): pinned
# Debian 12 bases, the CI build (install-deps.sh + bazel build -c opt), every
# runtime package exists in Debian and covers the linked libraries, non-root
# USER, a hardened compose.yaml without literal secrets.
set -euo pipefail
# shellcheck source=tests/deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

for t in apt-cache dpkg pkg-config gcc; do
  command -v "$t" >/dev/null 2>&1 || fail "$t not found (Debian build machine expected: deploy/local/install-deps.sh)"
done
# The Dockerfile's build context is the whole repository (COPY . .), so resolve
# the real checkout behind the runfiles: the check reads the paths it names,
# deploy/local/install-deps.sh and common/bazel/system_libs.bzl there.
REPO="$(cd "$(dirname "$(readlink -f "$SRC/deploy/docker/Dockerfile")")/../.." && pwd)"
"$PY" "$SRC/tests/deploy/docker_lint_check.py" "$REPO" || fail "deploy/docker lint"
echo "PASS: deploy/docker"
