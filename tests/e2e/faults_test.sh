#!/bin/sh
cd "$(dirname "$0")"
exec /usr/bin/python3 "$TEST_SRCDIR/$TEST_WORKSPACE/tests/e2e/faults_test.py" "$@"
