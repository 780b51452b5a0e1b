#!/usr/bin/env bash
# Quick start: installs what is needed, builds in Release and runs the main job on the
# embedded defaults: the shipped ssa-bin and ssa models simulated event by event on 300
# Fashion-MNIST test images, side by side per layer, with a spike raster written to out/raster.h5.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
mkdir -p "$root/out"
cd "$root"
"$root/build/tools/evformer" data info fashion-mnist --split test
"$root/build/tools/evformer" profile --raster out/raster.h5
