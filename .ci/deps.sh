#!/bin/sh
# Installs what a fresh Debian machine lacks to build slim-node: the SLIM crates compile C
# (aws-lc-sys with cmake, jemalloc with make, bundled SQLite) and run bindgen (libclang).
set -eu
PACKAGES="build-essential cmake libclang-dev protobuf-compiler pkg-config"
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
