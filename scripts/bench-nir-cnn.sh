#!/usr/bin/env bash
# The NIR paper's N-MNIST CNN (examples/nir/cnn_sinabs.nir) on real N-MNIST test recordings:
# evformer event by event (one thread) against a dense PyTorch evaluation of the same graph on the
# same 1 ms frames (scripts/bench_nir_cnn.py), measured in this one script, side by side.
# Prints accuracy, per-layer spikes of both (a cross-check of the two implementations), ms per
# recording, G SOP/s per core and the ratio. A benchmark, not a test: installs its own Python
# packages (python3-torch, python3-h5py, python3-numpy from Debian 12).
# Usage: scripts/bench-nir-cnn.sh [DATA (examples/data/nmnist_test100)] [T (320)] [DT_US (1000)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-$root/examples/data/nmnist_test100}"; steps="${2:-320}"; dt="${3:-1000}"
graph="$root/examples/nir/cnn_sinabs.nir"
need=()
for p in python3-torch python3-h5py python3-numpy jq; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
exe="$root/build/tools/evformer"
[ -x "$exe" ] || "$root/scripts/build.sh" "$root/build" >/dev/null
ours="$("$exe" run "$graph" --data "$data" --T "$steps" --dt "$dt" --threads 1 --json -)"
# the system Python (Debian's packages), whatever python3 is first on PATH
torch_json="$(/usr/bin/python3 "$root/scripts/bench_nir_cnn.py" "$graph" "$data" "$steps" "$dt" 25)"
echo "N-MNIST CNN (NIR, Sinabs): $(echo "$ours" | jq -r .samples) recordings, T = $steps x $dt us, one thread; $(uptime | sed 's/.*load/load/')"
ms_ours="$(echo "$ours" | jq '.per_sample.seconds * 1000')"
sops="$(echo "$ours" | jq .per_sample.sops)"
printf '%-34s %8s %10s %10s\n' "" accuracy "ms/rec" "G SOP/s"
printf '%-34s %8.3f %10.3f %10.3f\n' "evformer, event-driven" "$(echo "$ours" | jq .accuracy)" \
  "$ms_ours" "$(echo "$sops / ($ms_ours / 1000) / 1000000000" | bc -l)"
printf '%-34s %8.3f %10.3f\n' "PyTorch dense, batch 1" "$(echo "$torch_json" | jq .accuracy)" \
  "$(echo "$torch_json" | jq .ms_batch1)"
printf '%-34s %8s %10.3f\n' "PyTorch dense, batch $(echo "$torch_json" | jq .batch)" "" \
  "$(echo "$torch_json" | jq .ms_batched)"
printf 'ratio PyTorch/evformer time: batch 1 %.2f, batched %.2f\n' \
  "$(echo "$(echo "$torch_json" | jq .ms_batch1) / $ms_ours" | bc -l)" \
  "$(echo "$(echo "$torch_json" | jq .ms_batched) / $ms_ours" | bc -l)"
printf "SOPs per recording %.0f, energy %.4e mJ per recording (77 fJ/SOP)\n" "$sops" "$(echo "$ours" | jq .per_sample.energy_mj)"
echo "spikes per recording per layer (evformer | PyTorch):"
for layer in $(echo "$ours" | jq -r '.layers[] | select(.spikes != null) | .name'); do
  printf '  %-6s %12.2f %12.2f\n' "$layer" \
    "$(echo "$ours" | jq --arg l "$layer" '.layers[] | select(.name == $l) | .spikes')" \
    "$(echo "$torch_json" | jq --arg l "$layer" '.spikes_per_sample[$l]')"
done
