#!/usr/bin/env bash
# Installs the Debian 12 packages evformer needs to build, test and run its main job
# (python3-h5py: the test io.nir_h5py opens the NIR files evformer writes with h5py).
# Idempotent: does nothing (not even apt-get update) when everything is already installed.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  libboost-dev libtbb-dev libhdf5-dev libfmt-dev doctest-dev libcli11-dev nlohmann-json3-dev
  zlib1g-dev liblz4-dev libzstd-dev libflatbuffers-dev flatbuffers-compiler
  dataset-fashion-mnist
  python3-h5py
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
