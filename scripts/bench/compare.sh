#!/usr/bin/env bash
# Side by side: the PyTorch CPU reference (scripts/bench/torch_bench.py) and evformer's own
# benchmarks (`evformer bench train --json -`, `evformer bench run --json -`), then the ratios
#   training:  evformer samples/s ÷ torch samples/s
#   inference: torch ms/sample ÷ evformer ms/sample, at batch 1 and at batch 64
# (> 1 means evformer is faster). If the built binary lacks a bench subcommand, says so and
# prints only the PyTorch figures.
#
# Usage: scripts/bench/compare.sh [--evformer PATH] [--steps N] [--repeats R] [--mode train|infer|all]
#   --evformer  the evformer binary (default: build/tools/evformer of this checkout)
#   extra options after `--` go to both evformer bench commands unchanged.
# Installs python3-torch, libopenblas0-pthread and python3-h5py with apt if missing (as root, or
# through sudo). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed for the PyTorch run only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/scripts/bench"
evformer="$root/build/tools/evformer"
steps=10
repeats=3
mode=all
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --evformer) evformer="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "compare.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$mode" in train|infer|all) ;; *) echo "compare.sh: --mode must be train, infer or all" >&2; exit 2 ;; esac

# --- dependencies (idempotent: nothing happens when all are installed)
packages=(python3-torch libopenblas0-pthread python3-h5py)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "compare.sh: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's python3-torch is installed for the system interpreter; a pyenv/venv python3 on PATH
# would not see it.
py=/usr/bin/python3

echo "== machine"
echo "nproc: $(nproc)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket)' || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
update-alternatives --display libblas.so.3-x86_64-linux-gnu 2>/dev/null | head -3 || true

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== PyTorch reference (env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $py $here/torch_bench.py --mode $mode --steps $steps --repeats $repeats)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" "$here/torch_bench.py" \
  --mode "$mode" --steps "$steps" --repeats "$repeats" | tee "$tmp/torch.json"

# --- evformer: which bench subcommands does the binary have?
have_train=0
have_run=0
if [ ! -x "$evformer" ]; then
  echo "== evformer: no binary at $evformer (build with scripts/build.sh); PyTorch figures only"
else
  # `bench X --help` exits 0 even for an unknown X (CLI11 prints bench's help), so read the
  # subcommand list of `bench --help` instead.
  subs="$("$evformer" bench --help 2>&1 | sed -n '/^Subcommands:/,$p' || true)"
  if grep -qE '^[[:space:]]+train([[:space:]]|$)' <<<"$subs"; then have_train=1; else
    echo "== evformer: '$evformer bench train' is not in this build; no training comparison"; fi
  if grep -qE '^[[:space:]]+run([[:space:]]|$)' <<<"$subs"; then have_run=1; else
    echo "== evformer: '$evformer bench run' is not in this build; no inference comparison"; fi
fi
: > "$tmp/ev_train.json"
: > "$tmp/ev_run.json"
if [ "$have_train" = 1 ] && [ "$mode" != infer ]; then
  echo "== evformer bench train --json - ${extra[*]:-}"
  "$evformer" bench train --json - "${extra[@]}" | tee "$tmp/ev_train.json" || echo "(evformer bench train failed: exit $?)"
fi
if [ "$have_run" = 1 ] && [ "$mode" != train ]; then
  echo "== evformer bench run --json - ${extra[*]:-}"
  "$evformer" bench run --json - "${extra[@]}" | tee "$tmp/ev_run.json" || echo "(evformer bench run failed: exit $?)"
fi

echo "== ratios (> 1: evformer faster)"
"$py" - "$tmp/torch.json" "$tmp/ev_train.json" "$tmp/ev_run.json" <<'PY'
import json, sys

def last_json(path):
    """The last line of the file that parses as a JSON object (commands may print more)."""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    try:
        return json.loads("\n".join(lines))
    except ValueError:
        return None

def find_number(obj, keys):
    """First numeric value whose key is one of `keys` (depth-first)."""
    if isinstance(obj, dict):
        for k in keys:
            if isinstance(obj.get(k), (int, float)) and not isinstance(obj.get(k), bool):
                return float(obj[k])
        for v in obj.values():
            r = find_number(v, keys)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_number(v, keys)
            if r is not None:
                return r
    return None

MS = ("ms_per_sample", "ms_per_sample_median", "latency_ms_per_sample")

def infer_at(obj, batch):
    """ms/sample at a batch size: a key like ms_per_sample_batch64 / batch64 / infer_batch64, or
    an object (or list element) with "batch": N and an ms_per_sample field."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        for k in (f"ms_per_sample_batch{batch}", f"ms_per_sample_b{batch}"):
            if isinstance(obj.get(k), (int, float)):
                return float(obj[k])
        for k in (f"batch{batch}", f"infer_batch{batch}", f"b{batch}", str(batch)):
            if isinstance(obj.get(k), dict):
                r = find_number(obj[k], MS)
                if r is not None:
                    return r
        if obj.get("batch") == batch:
            r = find_number(obj, MS)
            if r is not None:
                return r
        for v in obj.values():
            r = infer_at(v, batch) if isinstance(v, (dict, list)) else None
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = infer_at(v, batch)
            if r is not None:
                return r
    return None

torch_res, ev_train, ev_run = (last_json(p) for p in sys.argv[1:4])
t_train = find_number((torch_res or {}).get("train"), ("samples_per_s",))
e_train = find_number(ev_train, ("samples_per_s", "samples_per_second", "train_samples_per_s")) if ev_train else None
rows = [("training samples/s (batch 64)", t_train, e_train, lambda t, e: e / t)]
for b in (1, 64):
    t = find_number((torch_res or {}).get(f"infer_batch{b}"), MS)
    e = infer_at(ev_run, b) if ev_run else None
    rows.append((f"inference ms/sample (batch {b})", t, e, lambda t, e: t / e))
fmt = lambda v: "-" if v is None else f"{v:.3f}"
print(f"{'figure':34s} {'torch':>10s} {'evformer':>10s} {'ratio':>8s}")
for name, t, e, ratio in rows:
    r = ratio(t, e) if (t and e) else None
    print(f"{name:34s} {fmt(t):>10s} {fmt(e):>10s} {fmt(r):>8s}")
if ev_train is None and ev_run is None:
    print("(no evformer figures: only the PyTorch reference was measured)")
PY
