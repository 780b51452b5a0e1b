#!/usr/bin/env bash
# Engine and trainer speed of two evformer binaries, side by side in one script: for each shipped
# model `bench run` (event-driven ms per sample, one thread), then `bench train` (samples/s), with
# the two binaries alternating round by round (old, new, then new, old) so the figures of a pair
# are taken seconds apart. Prints per benchmark the median of each binary and the ratio of the
# medians (new/old time: below 1 is faster). Used for "no slower" checks of engine refactors.
# Usage: scripts/bench-engine-compare.sh OLD_EVFORMER NEW_EVFORMER [ROUNDS (5)]
# Environment: SAMPLES (bench run samples, default 200), TRAIN_STEPS (default 6), THREADS (2).
set -euo pipefail
old="$1"; new="$2"; rounds="${3:-5}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
samples="${SAMPLES:-200}"; steps="${TRAIN_STEPS:-6}"; threads="${THREADS:-2}"
command -v jq >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null
}
cd "$root"
out="$(mktemp -d /tmp/bench-engine.XXXXXX)"
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
measure() {  # label, jq field, command args…
  local label="$1" field="$2"; shift 2
  for r in $(seq "$rounds"); do
    local order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"
    for bin in $order; do
      local exe; exe="$([ $bin = old ] && echo "$old" || echo "$new")"
      "$exe" "$@" --json - 2>/dev/null | jq -r "$field" >>"$out/$label.$bin"
    done
  done
  local mo mn; mo="$(median <"$out/$label.old")"; mn="$(median <"$out/$label.new")"
  printf '%-28s old %10.4f  new %10.4f  new/old %.3f\n' "$label" "$mo" "$mn" \
    "$(echo "$mn / $mo" | bc -l)"
}
echo "bench run: ms per sample (median of $rounds), event-driven, one thread"
for m in fmnist-ssa-bin fmnist-ssa nmnist-ssa-bin nmnist-ssa; do
  measure "run $m" .cpu_ms_per_sample bench run "examples/models/$m.h5" --samples "$samples"
done
echo "bench train: ms per step (median of $rounds), batch 64, $threads threads"
measure "train ssa-bin" .ms_per_step bench train --steps "$steps" --warmup 1 --threads "$threads"
echo "raw figures: $out"
