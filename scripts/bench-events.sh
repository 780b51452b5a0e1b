#!/usr/bin/env bash
# Builds evformer (Release, -march=native) and measures event decoding throughput per format on
# one core against memcpy of the same bytes: ~200 MB in-memory inputs built from the shared
# samples, decoded into one reused 65,536-event chunk. Results go to docs/events.md by hand.
# Usage: scripts/bench-events.sh [extra `evformer bench events` options, e.g. --mb 100 --json -]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh" "$root/build" >/dev/null
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(g++ --version | head -1)"
exec taskset -c 0 "$root/build/tools/evformer" bench events --repeats 5 "$@"
