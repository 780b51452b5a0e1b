#!/usr/bin/env bash
# Builds the libFuzzer targets of the event decoders with clang (ASan + UBSan) and runs each for
# SECONDS (default 60), seeded with the shared sample recordings.
# Needs the Debian packages clang and libclang-rt-14-dev (the libFuzzer runtime).
# Usage: scripts/fuzz.sh [SECONDS] [format…]   (formats: aedat2 aedat3 aedat4 nmnist evt2 evt3 dat)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
formats=("$@")
[ ${#formats[@]} -eq 0 ] && formats=(aedat2 aedat3 aedat4 nmnist evt2 evt3 dat)
build="$root/build-fuzz"
data="${EVFORMER_EVENTS_DATA:-$root/../shared/data/events}"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEVFORMER_FUZZ=ON -DEVFORMER_BUILD_TESTS=OFF -DEVFORMER_NATIVE=OFF >/dev/null
targets=()
for f in "${formats[@]}"; do targets+=("fuzz_$f"); done
cmake --build "$build" --parallel 2 --target "${targets[@]}"
for f in "${formats[@]}"; do
  corpus="$build/corpus/$f"
  mkdir -p "$corpus"
  # Seeds: the first 4 KiB of each shared sample of this format.
  case "$f" in
    aedat4) seeds=("$data"/*.aedat4) ;;
    evt2) seeds=("$data"/evt2_*.raw) ;;
    evt3) seeds=("$data"/evt3_*.raw) ;;
    dat) seeds=("$data"/*.dat) ;;
    nmnist) seeds=("$data"/*.bin) ;;
    *) seeds=() ;;
  esac
  for s in "${seeds[@]}"; do
    [ -f "$s" ] && head -c 4096 "$s" >"$corpus/seed-$(basename "$s")"
  done
  echo "== fuzz_$f for ${seconds}s"
  "$build/tests/fuzz/fuzz_$f" "$corpus" -max_total_time="$seconds" -max_len=8192 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12
done
