#!/bin/sh
# Runs the end-to-end suite with the system's Python (stdlib only).
cd "$(dirname "$0")"
exec /usr/bin/python3 "$TEST_SRCDIR/$TEST_WORKSPACE/tests/e2e/e2e_test.py" "$@"
