#!/usr/bin/env bash
# Checks that two evformer binaries simulate identically: for both shipped Fashion-MNIST models
# on the first N test images (default 500) and both shipped N-MNIST models on the shipped
# recordings, every spike (rasters of all N samples, every population, compared with h5diff),
# every per-layer and per-step count, firing rate and the accuracy (the JSON report without its
# timing fields) must be equal. Used before/after refactors of the engine or the model code.
#
# Usage: scripts/check-identical.sh OLD_EVFORMER NEW_EVFORMER [N]
# (an old binary that does not know the N-MNIST models or event data skips that part).
set -euo pipefail
old="$1"; new="$2"; n="${3:-500}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v h5dump >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hdf5-tools >/dev/null
}
command -v jq >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
# timing and labels differ between runs by nature; everything else must not. Since issue 14 the
# report adds nonfinite_samples and gives the head's spikes and firing rate as null (it has no
# spiking population; older binaries wrote 0): both are normalised so old and new compare.
strip='del(.wall_seconds, .threads, .per_sample.seconds, .data, .model, .nonfinite_samples)
  | (.layers[] | select(.name == "head") | .spikes, .firing_rate) |= (. // 0)'
status=0
compare() {  # name, model, extra run arguments…
  local name="$1" model="$2"; shift 2
  for bin in old new; do
    local exe; exe="$([ $bin = old ] && echo "$old" || echo "$new")"
    if ! "$exe" run "$model" "$@" --raster "$work/$name.$bin.h5" --raster-samples 100000 \
        --json "$work/$name.$bin.json" --threads 1 >/dev/null 2>"$work/$name.$bin.err"; then
      echo "$name: $bin binary failed: $(head -c 300 "$work/$name.$bin.err")"
      [ $bin = old ] && return 0 || { status=1; return 0; }
    fi
  done
  if diff <(jq -S "$strip" "$work/$name.old.json") <(jq -S "$strip" "$work/$name.new.json") \
      >"$work/$name.diff"; then
    echo "$name: counts, rates and accuracy identical ($(jq .samples "$work/$name.new.json") samples)"
  else
    echo "$name: REPORTS DIFFER"; head -20 "$work/$name.diff"; status=1
  fi
  # the rasters' spikes (idx and time per population and sample), attributes aside: a file's
  # self-description may legitimately change between versions, its spikes may not
  if diff <(h5dump -A 0 "$work/$name.old.h5" | tail -n +2) \
          <(h5dump -A 0 "$work/$name.new.h5" | tail -n +2) >/dev/null; then
    echo "$name: every spike identical ($(h5dump -A 0 "$work/$name.new.h5" | grep -c DATASET) datasets)"
  else
    echo "$name: SPIKES DIFFER"; status=1
  fi
}
for v in ssa-bin ssa; do
  compare "fmnist-$v" "examples/models/fmnist-$v.h5" --data fashion-mnist --limit "$n"
  [ -f "examples/models/nmnist-$v.h5" ] &&
    compare "nmnist-$v" "examples/models/nmnist-$v.h5" --data examples/data/nmnist_test100
done
exit $status
