#!/bin/sh
# Generates the Python stubs for the importer and catalog APIs into OUT_DIR
# (default: ./stubs), for use with `nzbmesh_client.py --stubs OUT_DIR`.
# nzbmesh_client.py does this by itself into a temporary folder when --stubs is
# not given; generated code is not committed. Needs python3-grpc-tools.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
proto="$here/../../../proto"
out="${1:-$here/stubs}"
mkdir -p "$out"
/usr/bin/python3 -m grpc_tools.protoc -I "$proto" --python_out="$out" --grpc_python_out="$out" \
  nzbmesh/importer/v1/importer.proto nzbmesh/importer/v1/catalog.proto
echo "stubs in $out (use: nzbmesh_client.py --stubs $out ...)"
