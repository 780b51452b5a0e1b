#!/usr/bin/env bash
# Configures and builds evformer. Usage: scripts/build.sh [BUILD_DIR] [extra cmake options…]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/build}"
shift || true
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEVFORMER_WERROR=ON "$@" >/dev/null
cmake --build "$dir" --parallel "$(nproc)"
