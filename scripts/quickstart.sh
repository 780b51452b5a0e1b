#!/usr/bin/env bash
# Quick start: installs what is needed, builds in Release and runs the main job on the
# embedded defaults: the shipped N-MNIST models (nmnist-ssa-bin and nmnist-ssa) simulate the 100
# real N-MNIST test recordings shipped in examples/data/ event by event, side by side per layer,
# with spike rasters written to out/raster.h5.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
mkdir -p "$root/out"
cd "$root"
"$root/build/tools/evformer" events info examples/data/nmnist_test100/60001.bs2
"$root/build/tools/evformer" profile --raster out/raster.h5 --json out/profile.json
