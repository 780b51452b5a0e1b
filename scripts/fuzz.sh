#!/usr/bin/env bash
# Builds the libFuzzer targets of the event decoders with clang (ASan + UBSan) and runs each for
# SECONDS (default 60), seeded with the shared sample recordings.
# Needs the Debian packages clang and libclang-rt-14-dev (the libFuzzer runtime).
# Usage: scripts/fuzz.sh [SECONDS] [format…]
#   formats: aedat2 aedat3 aedat4 nmnist evt2 evt21 evt3 dat text hdf5 (default: all)
# EVFORMER_FUZZ_NATIVE=1 builds with -march=native in build-fuzz-native/ instead, so that the
# AVX-512 EVT 3.0 group decoder is the one fuzzed (on a machine that has AVX-512 BW + VBMI2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
formats=("$@")
[ ${#formats[@]} -eq 0 ] && formats=(aedat2 aedat3 aedat4 nmnist evt2 evt21 evt3 dat text hdf5)
if [ "${EVFORMER_FUZZ_NATIVE:-0}" = 1 ]; then
  build="$root/build-fuzz-native"
  native=ON
else
  build="$root/build-fuzz"
  native=OFF
fi
data="${EVFORMER_EVENTS_DATA:-$root/../shared/data/events}"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEVFORMER_FUZZ=ON -DEVFORMER_BUILD_TESTS=OFF -DEVFORMER_NATIVE=$native >/dev/null
targets=()
for f in "${formats[@]}"; do targets+=("fuzz_$f"); done
cmake --build "$build" --parallel 2 --target "${targets[@]}"
echo "# $(clang --version | head -1); -march=native: $native"
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
    aedat2) seeds=("$data"/../regressions/events/*.aedat) ;;
    evt21)  # no shared EVT 2.1 sample: a hand-made header, TIME_HIGH and vector words
      printf '%% format EVT21;height=480;width=640\n%% end\n\x00\x00\x00\x00\x01\x00\x00\x80\x05\x00\x00\x80\x14\x50\xc0\x10' >"$corpus/seed-evt21"
      seeds=() ;;
    text)
      printf '# t x y p\n0.000001 1 2 1\n0.5 3 4 0\n' >"$corpus/seed-text"
      printf 't,x,y,p\n1,2,3,1\n2,5,6,0\n' >"$corpus/seed-csv"
      seeds=() ;;
    *) seeds=() ;;
  esac
  for s in "${seeds[@]}"; do
    [ -f "$s" ] && head -c 4096 "$s" >"$corpus/seed-$(basename "$s")"
  done
  echo "== fuzz_$f for ${seconds}s"
  # A finding is saved as $build/artifacts/$f-crash-… (or -timeout-, -oom-).
  mkdir -p "$build/artifacts"
  "$build/tests/fuzz/fuzz_$f" "$corpus" -max_total_time="$seconds" -max_len=8192 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$f-" \
    2>&1 | grep -v '^"\|^#\|Recommended dictionary\|End of recommended' | tail -n 12
done
