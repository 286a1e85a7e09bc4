#!/bin/sh
# Runs a fuzz target's deterministic driver for a bounded number of inputs.
exec "$1" "$2"
