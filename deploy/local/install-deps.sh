#!/usr/bin/env bash
# Installs the Debian 12 packages nzbmesh needs to build, test and run.
# Idempotent: packages already present are skipped; apt-get update runs at most
# once per invocation and only when something is missing. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap pkg-config g++ clang-14 libclang-rt-14-dev lld-14
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev
  libabsl-dev libssl-dev libisal-dev libpugixml-dev libyaml-cpp-dev libboost-dev
  libpqxx-dev libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # run and test
  postgresql postgresql-client prometheus curl openssl ca-certificates procps python3-yaml
  # clients the frontend's interop tests drive (tests/services/frontend/client_interop_test.cc)
  rclone ffmpeg
  # the real `rclone mount` test (FUSE): fusermount3
  fuse3
  # the Python gRPC client example and its test (docs/examples/python, //tests/e2e:python_client_test)
  python3-grpcio python3-grpc-tools python3-protobuf
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packaged prometheus starts a system service on :9090; nzbmesh's tests run
# their own instance on a free port, so keep the system one from holding ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
fi
echo "install-deps: done"
