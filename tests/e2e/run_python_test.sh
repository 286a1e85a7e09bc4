#!/bin/sh
# Runs one end-to-end suite (tests/e2e/<name>.py, given as $1) with Debian's
# Python, not a pyenv/venv python3 that may come first on PATH.
cd "$(dirname "$0")" || exit 1
script="$1"
shift
exec /usr/bin/python3 "$TEST_SRCDIR/$TEST_WORKSPACE/tests/e2e/$script" "$@"
