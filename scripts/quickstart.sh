#!/usr/bin/env bash
# Quick start: installs what is needed, builds in Release and runs the main job on the
# embedded defaults.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
mkdir -p "$root/out"
"$root/build/tools/evformer" data info fashion-mnist --export "$root/out/fashion-mnist-stats.h5"
