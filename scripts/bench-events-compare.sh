#!/usr/bin/env bash
# Event decoding before/after: builds this tree and a baseline commit (Release, -march=native,
# the baseline in its own git worktree), then measures each format RUNS times with each binary,
# alternating (old, new, then new, old in the next round) format by format on core 0, so the two
# figures of a pair are taken seconds apart. Prints per format the median M events/s of both,
# the ratio of the medians new/old, the median and range of the per-round ratios, and the memcpy
# reference of both binaries' runs. Formats the baseline cannot decode are measured new only.
# Builds run under `nice -n 15`; the benchmark itself does not. Results go to docs/events.md by
# hand; the raw JSON of every run stays in OUT.
# Usage: scripts/bench-events-compare.sh [BASELINE_COMMIT (bee54f3)] [RUNS (7)] [bench options…]
# Environment: BASELINE_DIR (worktree, default ../wt-bench-old), OUT (default a fresh temp dir),
# FORMATS (default "evt2 evt21 evt3 dat nmnist").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
commit="${1:-bee54f3}"
runs="${2:-7}"
shift $(($# < 2 ? $# : 2))
baseline="${BASELINE_DIR:-$root/../wt-bench-old}"
out="${OUT:-$(mktemp -d /tmp/bench-events.XXXXXX)}"
mkdir -p "$out"
read -r -a formats <<<"${FORMATS:-evt2 evt21 evt3 dat nmnist}"

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

# JSON on stdout is `--json -` since the CLI's one output convention, a plain `--json` flag before.
json_option() {
  if "$1" bench events --formats nmnist --mb 0.001 --repeats 1 --json - >/dev/null 2>&1; then
    echo "--json -"
  else
    echo "--json"
  fi
}
read -r -a old_json <<<"$(json_option "$old")"
read -r -a new_json <<<"$(json_option "$new")"
old_formats=()
for f in "${formats[@]}"; do
  if "$old" bench events --formats "$f" --mb 0.001 --repeats 1 "${old_json[@]}" >/dev/null 2>&1; then
    old_formats+=("$f")
  fi
done

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(g++ --version | head -1)"
echo "# old: $commit ($(git -C "$baseline" log -1 --format=%h)), new: $(git -C "$root" log -1 --format=%h)$(git -C "$root" diff --quiet HEAD || echo '+changes')"
echo "# formats old: ${old_formats[*]}; new: ${formats[*]}; $runs rounds; raw JSON in $out"
echo "# before: $(uptime | sed 's/.*load average/load average/')"
run() {  # run BINARY NAME ROUND FORMAT
  local -n json="$2_json"
  taskset -c 0 "$1" bench events --repeats 5 "${json[@]}" --formats "$4" "${extra[@]}" \
    >"$out/$2-$3-$4.json"
}
extra=("$@")
for ((r = 1; r <= runs; ++r)); do
  for f in "${formats[@]}"; do
    has_old=0
    for g in "${old_formats[@]}"; do [ "$g" = "$f" ] && has_old=1; done
    if ((r % 2)); then
      ((has_old)) && run "$old" old "$r" "$f"
      run "$new" new "$r" "$f"
    else
      run "$new" new "$r" "$f"
      ((has_old)) && run "$old" old "$r" "$f"
    fi
  done
  echo "# round $r done: $(uptime | sed 's/.*load average/load average/')"
done

python3 - "$out" "$runs" "${formats[@]}" <<'EOF'
import json, os, statistics, sys
out, runs, formats = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(name, f):
    paths = [f"{out}/{name}-{r}-{f}.json" for r in range(1, runs + 1)]
    return [json.load(open(p))[0] for p in paths] if os.path.exists(paths[0]) else None
med = statistics.median
print(f"{'format':<7} {'old M ev/s':>10} {'new M ev/s':>10} {'new/old':>8} {'per round':>17}"
      f" {'memcpy old':>10} {'memcpy new':>10} {'new dec/memcpy':>14}")
for f in formats:
    new, old = load("new", f), load("old", f)
    n = [x["mev_per_s"] for x in new]
    nc = med([x["memcpy_gb_per_s"] for x in new])
    nr = med([x["decode_over_memcpy_time"] for x in new])
    if old:
        if {x["events"] for x in old} != {x["events"] for x in new}:
            sys.exit(f"{f}: old and new decode different event counts")
        o = [x["mev_per_s"] for x in old]
        rr = [b / a for a, b in zip(o, n)]
        cols = (f"{med(o):10.0f} {med(n):10.0f} {med(n) / med(o):7.2f}x"
                f" {med(rr):5.2f}x {min(rr):.2f}-{max(rr):.2f}"
                f" {med([x['memcpy_gb_per_s'] for x in old]):5.1f} GB/s")
    else:
        cols = f"{'-':>10} {med(n):10.0f} {'-':>8} {'-':>17} {'-':>10}"
    print(f"{f:<7} {cols} {nc:5.1f} GB/s {nr:13.2f}x")
print(f"medians of {runs} rounds, each run the best of 5 decodes of one ~200 MB input; "
      "per round = median and range of the new/old ratios of the pairs")
for f in formats:
    new, old = load("new", f), load("old", f)
    print(f"# {f} M ev/s new:", " ".join(f"{x['mev_per_s']:.0f}" for x in new),
          "| old:", " ".join(f"{x['mev_per_s']:.0f}" for x in old) if old else "-")
EOF
echo "# after: $(uptime | sed 's/.*load average/load average/')"
