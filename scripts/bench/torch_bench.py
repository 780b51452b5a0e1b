#!/usr/bin/python3
"""Benchmarks the PyTorch CPU reference of Spikformer-2-64 (4 heads, T=4, 28x28x1, 10 classes,
ssa-bin) and prints one JSON line.

  train: samples/s, batch 64, AdamW + cross-entropy, all cores, random data
  infer: ms/sample in eval mode under torch.no_grad(), batch 1 on one thread and batch 64 on all

Each figure is the median over --repeats repetitions of --steps timed steps (after --warmup
untimed steps); the individual repetitions are in the JSON too.

Run it with the Debian python (/usr/bin/python3: python3-torch is installed for it) and, if the
environment pins OpenBLAS (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE), without those variables:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench/torch_bench.py --mode all
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# OMP_WAIT_POLICY is read once when libgomp starts (at `import torch`), so the option that sets it
# is looked at before the import; argparse documents it below.
for _i, _a in enumerate(sys.argv):
    if _a == "--omp-wait-policy" and _i + 1 < len(sys.argv):
        os.environ["OMP_WAIT_POLICY"] = sys.argv[_i + 1].upper()
    elif _a.startswith("--omp-wait-policy="):
        os.environ["OMP_WAIT_POLICY"] = _a.split("=", 1)[1].upper()

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spikformer_ref import Spikformer, default_spec  # noqa: E402


# --------------------------------------------------------------------------------------------
# BLAS facts

def _loaded_libs(words=("blas", "lapack", "gomp", "dnnl")):
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and any(w in os.path.basename(parts[-1]) for w in words):
                libs.add(parts[-1])
    return sorted(libs)


def _openblas():
    """The OpenBLAS library loaded in this process (via libblas.so.3), or None."""
    for path in _loaded_libs(("openblas", "libblas")):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_num_threads.restype = ctypes.c_int
            return lib
        except (OSError, AttributeError):
            continue
    return None


def set_threads(n: int) -> None:
    """torch intra-op (OpenMP) threads and OpenBLAS's own pthread pool: torch 1.13 does not set
    the latter, so a "one thread" run would otherwise still use every core in sgemm."""
    torch.set_num_threads(n)
    ob = _openblas()
    if ob is not None:
        ob.openblas_set_num_threads(n)


def blas_info() -> dict:
    torch.zeros(8, 8) @ torch.zeros(8, 8)  # make sure the BLAS is loaded
    info = {"loaded_libraries": _loaded_libs()}
    try:
        out = subprocess.run(["update-alternatives", "--display", "libblas.so.3-x86_64-linux-gnu"],
                             capture_output=True, text=True, timeout=10).stdout
        info["libblas_alternative"] = " | ".join(l.strip() for l in out.splitlines()[:3])
    except (OSError, subprocess.SubprocessError) as e:
        info["libblas_alternative"] = f"unavailable: {e}"
    ob = _openblas()
    if ob is not None:
        info["openblas_config"] = ob.openblas_get_config().decode()
        info["openblas_corename"] = ob.openblas_get_corename().decode()
    cfg = torch.__config__.show()
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
        i = cfg.find(key + "=")
        if i >= 0:
            info[key] = cfg[i + len(key) + 1:].split(",")[0]
    info["cpu_capability"] = next((l.split(":", 1)[1].strip() for l in cfg.splitlines()
                                   if "CPU capability usage" in l), "")
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                   "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                   "OMP_WAIT_POLICY")}
    return info


def sgemm_gflops(n=1024, reps=10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


# --------------------------------------------------------------------------------------------
# Benchmarks

def make_model(variant: str) -> Spikformer:
    torch.manual_seed(0)
    return Spikformer(default_spec(variant=variant))


def bench_train(variant, batch, warmup, steps, repeats):
    model = make_model(variant)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.06)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append(batch * steps / (time.perf_counter() - t))
    return runs


def bench_infer(variant, batch, warmup, steps, repeats):
    model = make_model(variant)
    model.train()
    with torch.no_grad():  # one training forward so BN statistics, c_mean and v_bar are non-trivial
        model(torch.rand(8, 1, 28, 28))
    model.eval()
    x = torch.rand(batch, 1, 28, 28)
    runs = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(steps):
                model(x)
            runs.append((time.perf_counter() - t) * 1e3 / (batch * steps))
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="PyTorch CPU reference benchmark of Spikformer-2-64")
    ap.add_argument("--mode", choices=("train", "infer", "all"), default="all")
    ap.add_argument("--steps", type=int, default=10,
                    help="timed training steps per repetition (inference: batch 64 uses the "
                         "same number of batches, batch 1 uses 20x as many samples)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions; the median is reported")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--variant", default="ssa-bin")
    ap.add_argument("--omp-wait-policy", choices=("active", "passive"),
                    help="set OMP_WAIT_POLICY for torch's OpenMP threads (default: libgomp's own, "
                         "which spins; on a loaded 2-core machine 2 spinning threads can be many "
                         "times slower than 1)")
    ap.add_argument("--no-sgemm", action="store_true", help="skip the sgemm GFLOP/s probe")
    args = ap.parse_args(argv)

    ncpu = os.cpu_count() or 1
    res = {"bench": "torch-ref", "model": "spikformer-2-64", "heads": 4, "time_steps": 4,
           "input": [1, 28, 28], "classes": 10, "variant": args.variant,
           "torch_version": torch.__version__, "python": platform.python_version(),
           "cpu_count": ncpu, "steps": args.steps, "warmup": args.warmup,
           "repeats": args.repeats}
    set_threads(ncpu)
    res["blas"] = blas_info()
    if not args.no_sgemm:
        set_threads(1)
        res["sgemm_gflops_1thread"] = round(sgemm_gflops(), 1)
        set_threads(ncpu)
        res["sgemm_gflops_all"] = round(sgemm_gflops(), 1)

    res["loadavg_start"] = [round(v, 2) for v in os.getloadavg()]
    if args.mode in ("train", "all"):
        set_threads(ncpu)
        runs = bench_train(args.variant, args.batch, args.warmup, args.steps, args.repeats)
        res["train"] = {"batch": args.batch, "threads": torch.get_num_threads(),
                        "optimizer": "AdamW", "loss": "cross_entropy",
                        "samples_per_s": round(statistics.median(runs), 2),
                        "runs": [round(r, 2) for r in runs]}
    if args.mode in ("infer", "all"):
        set_threads(1)
        runs = bench_infer(args.variant, 1, args.warmup * 5, args.steps * 20, args.repeats)
        res["infer_batch1"] = {"batch": 1, "threads": torch.get_num_threads(),
                               "ms_per_sample": round(statistics.median(runs), 3),
                               "runs": [round(r, 3) for r in runs]}
        set_threads(ncpu)
        runs = bench_infer(args.variant, args.batch, args.warmup, args.steps, args.repeats)
        res["infer_batch%d" % args.batch] = {"batch": args.batch, "threads": torch.get_num_threads(),
                                             "ms_per_sample": round(statistics.median(runs), 3),
                                             "runs": [round(r, 3) for r in runs]}
    res["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
