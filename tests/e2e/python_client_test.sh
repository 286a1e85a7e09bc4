#!/bin/sh
# Runs python_client_test.py with Debian's Python (not a pyenv/venv python3 first on PATH).
cd "$(dirname "$0")" || exit 1
exec /usr/bin/python3 "$TEST_SRCDIR/$TEST_WORKSPACE/tests/e2e/python_client_test.py" "$@"
