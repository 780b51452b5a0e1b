#!/usr/bin/env bash
# Event decoding before/after: builds this tree and a baseline commit (Release, -march=native,
# the baseline in its own git worktree), then runs `evformer bench events --json` RUNS times with
# each binary, alternating (old, new, new, old, …) on core 0, and prints per format the median
# M events/s of both, the ratio new/old, the range of the per-round ratios, and the memcpy
# reference of both binaries' runs. Formats the baseline cannot decode are measured new only.
# Builds run under `nice -n 15`; the benchmark itself does not. Results go to docs/events.md by
# hand; the raw JSON of every run stays in OUT.
# Usage: scripts/bench-events-compare.sh [BASELINE_COMMIT (bee54f3)] [RUNS (5)] [bench options…]
# Environment: BASELINE_DIR (worktree, default ../wt-bench-old), OUT (default a fresh temp dir).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
commit="${1:-bee54f3}"
runs="${2:-5}"
shift $(($# < 2 ? $# : 2))
baseline="${BASELINE_DIR:-$root/../wt-bench-old}"
out="${OUT:-$(mktemp -d /tmp/bench-events.XXXXXX)}"
mkdir -p "$out"
formats=(evt2 evt21 evt3 dat nmnist)

if [ ! -d "$baseline" ]; then
  git -C "$root" worktree add --detach "$baseline" "$commit" >/dev/null
fi
if [ "$(git -C "$baseline" rev-parse HEAD)" != "$(git -C "$root" rev-parse "$commit^{commit}")" ]; then
  echo "bench-events-compare: $baseline is not at $commit" >&2
  exit 1
fi
nice -n 15 "$baseline/scripts/build.sh" "$baseline/build" -DEVFORMER_BUILD_TESTS=OFF >/dev/null
nice -n 15 "$root/scripts/build.sh" "$root/build" >/dev/null
old="$baseline/build/tools/evformer"
new="$root/build/tools/evformer"

old_formats=()
for f in "${formats[@]}"; do
  if "$old" bench events --formats "$f" --mb 0.001 --repeats 1 --json >/dev/null 2>&1; then
    old_formats+=("$f")
  fi
done

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(g++ --version | head -1)"
echo "# old: $commit ($(git -C "$baseline" log -1 --format=%h)), new: $(git -C "$root" log -1 --format=%h)$(git -C "$root" diff --quiet HEAD || echo '+changes')"
echo "# formats old: ${old_formats[*]}; new: ${formats[*]}; $runs rounds; raw JSON in $out"
echo "# before: $(uptime | sed 's/.*load average/load average/')"
run() {  # run BINARY NAME ROUND FORMATS…
  local bin="$1" name="$2" round="$3"
  shift 3
  taskset -c 0 "$bin" bench events --repeats 5 --json --formats "$@" "${extra[@]}" \
    >"$out/$name-$round.json"
}
extra=("$@")
for ((r = 1; r <= runs; ++r)); do
  if ((r % 2)); then
    run "$old" old "$r" "${old_formats[@]}"
    run "$new" new "$r" "${formats[@]}"
  else
    run "$new" new "$r" "${formats[@]}"
    run "$old" old "$r" "${old_formats[@]}"
  fi
  echo "# round $r done: $(uptime | sed 's/.*load average/load average/')"
done

python3 - "$out" "$runs" "${formats[@]}" <<'EOF'
import json, statistics, sys
out, runs, formats = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(name, r):
    return {x["format"]: x for x in json.load(open(f"{out}/{name}-{r}.json"))}
old = [load("old", r) for r in range(1, runs + 1)]
new = [load("new", r) for r in range(1, runs + 1)]
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"{'format':<8} {'old M ev/s':>11} {'new M ev/s':>11} {'new/old':>8} {'round ratios':>14}"
      f" {'old memcpy':>11} {'new memcpy':>11} {'new dec/memcpy':>15}")
for f in formats:
    n = [x[f]["mev_per_s"] for x in new]
    nc = [x[f]["memcpy_gb_per_s"] for x in new]
    nr = [x[f]["decode_over_memcpy_time"] for x in new]
    if f in old[0]:
        o = [x[f]["mev_per_s"] for x in old]
        oc = [x[f]["memcpy_gb_per_s"] for x in old]
        if [x[f]["events"] for x in old] != [x[f]["events"] for x in new]:
            sys.exit(f"{f}: old and new decode different event counts")
        rr = [b / a for a, b in zip(o, n)]
        ratio, span = f"{med(n) / med(o):.2f}x", f"{min(rr):.2f}-{max(rr):.2f}"
        ocs = f"{med(oc):.1f} GB/s"
        os_ = f"{med(o):.0f}"
    else:
        ratio, span, ocs, os_ = "-", "-", "-", "-"
    print(f"{f:<8} {os_:>11} {med(n):>11.0f} {ratio:>8} {span:>14} {ocs:>11}"
          f" {med(nc):>6.1f} GB/s {med(nr):>14.2f}x")
print("medians of", runs, "alternating runs, each the best of 5; new/old = ratio of the medians;"
      " round ratios = range of new/old within a round")
for f in formats:
    print(f"# {f} new M ev/s per round:", " ".join(f"{x[f]['mev_per_s']:.0f}" for x in new),
          "| old:", " ".join(f"{x[f]['mev_per_s']:.0f}" for x in old) if f in old[0] else "-")
EOF
echo "# after: $(uptime | sed 's/.*load average/load average/')"
