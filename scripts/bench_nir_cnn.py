#!/usr/bin/env python3
"""Dense PyTorch evaluation of a NIR CNN graph (Conv2d, IF, SumPool2d, Flatten, Affine) on the
same 1 ms frames evformer runs event by event: the baseline of scripts/bench-nir-cnn.sh.

The graph is read with h5py by NIR's documented layout; IF follows docs/nir.md (v += r*x, a spike
when v > v_threshold, then v = v_reset); N-MNIST .bs2 recordings are binned into T bins of dt us
from each recording's first event, as evformer's --split-by duration. Prints one JSON object:
accuracy, per-layer spikes per recording, and ms per recording at batch 1 and at batch B, one
thread.
"""
import json
import pathlib
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def read_graph(path):
    with h5py.File(path, "r") as f:
        nodes = {}
        for name, g in f["node/nodes"].items():
            fields = {k: g[k][()] for k in g.keys() if isinstance(g[k], h5py.Dataset)}
            fields["type"] = fields["type"].decode() if isinstance(fields["type"], bytes) else fields["type"]
            nodes[name] = fields
        edges = [(a.decode(), b.decode()) for a, b in f["node/edges"][()]]
    nxt = dict(edges)
    order, at = [], "input"
    while at in nxt:  # a chain from the input to the output
        at = nxt[at]
        if at != "output":
            order.append(at)
    return nodes, order


def load_bs2(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = raw[:, 2] >> 7
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return x, y, p, t


def frames_of(path, steps, dt_us):
    x, y, p, t = load_bs2(path)
    b = (t - t[0]) // dt_us
    keep = b < steps
    out = np.zeros((steps, 2, 34, 34), dtype=np.float32)
    np.add.at(out, (b[keep], p[keep], y[keep], x[keep]), 1.0)
    return out


def run(nodes, order, frames):
    """frames: [T, B, 2, 34, 34] → (spike counts of the output [B, 10], spikes per IF layer)."""
    steps, batch = frames.shape[0], frames.shape[1]
    v = {}
    spikes = {n: 0.0 for n in order if nodes[n]["type"] == "IF"}
    counts = None
    for t in range(steps):
        h = frames[t]
        for n in order:
            f = nodes[n]
            kind = f["type"]
            if kind == "Conv2d":
                h = F.conv2d(h, f["w"], f["b"], stride=tuple(f["stride"]), padding=tuple(f["padding"]),
                             dilation=tuple(f["dilation"]), groups=int(f["groups"]))
            elif kind == "SumPool2d":
                k = tuple(int(a) for a in f["kernel_size"])
                h = F.avg_pool2d(h, k, stride=tuple(int(a) for a in f["stride"])) * (k[0] * k[1])
            elif kind == "Flatten":
                h = h.flatten(1)
            elif kind == "Affine":
                h = F.linear(h, f["w"], f["b"])
            elif kind == "IF":
                u = v.get(n, torch.zeros_like(h)) + f["r"] * h
                s = (u > f["th"]).float()
                v[n] = torch.where(s > 0, f["reset"], u)
                spikes[n] += float(s.sum())
                h = s
            else:
                raise SystemExit(f"bench_nir_cnn.py: node type {kind} is not in this baseline")
        counts = h if counts is None else counts + h
    return counts, spikes


def main():
    graph, data, steps, dt_us, batch = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(1)
    nodes, order = read_graph(graph)
    for n in order:
        f = nodes[n]
        if "weight" in f:
            f["w"] = torch.tensor(np.asarray(f["weight"], dtype=np.float32))
            f["b"] = torch.tensor(np.asarray(f.get("bias", np.zeros(f["weight"].shape[0])), dtype=np.float32))
        if f["type"] == "IF":
            f["r"] = torch.tensor(np.asarray(f["r"], dtype=np.float32))
            f["th"] = torch.tensor(np.asarray(f["v_threshold"], dtype=np.float32))
            f["reset"] = torch.tensor(np.asarray(f.get("v_reset", np.zeros_like(f["v_threshold"])), dtype=np.float32))
    labels = []
    for line in (data / "labels.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            sid, label = line.split()
            labels.append((sid, int(label)))
    frames = np.stack([frames_of(data / f"{sid}.bs2", steps, dt_us) for sid, _ in labels], axis=1)
    frames = torch.tensor(frames)  # [T, N, 2, 34, 34]
    n = frames.shape[1]
    with torch.no_grad():
        run(nodes, order, frames[:, :1])  # warm-up
        start = time.perf_counter()
        preds, spikes = [], {k: 0.0 for k in nodes if nodes[k]["type"] == "IF"}
        for i in range(n):
            c, s = run(nodes, order, frames[:, i:i + 1])
            preds.append(int(c[0].argmax()))
            for k in s:
                spikes[k] += s[k]
        batch1 = (time.perf_counter() - start) / n
        start = time.perf_counter()
        for i in range(0, n, batch):
            run(nodes, order, frames[:, i:i + batch])
        batched = (time.perf_counter() - start) / n
    correct = sum(int(p == l) for p, (_, l) in zip(preds, labels))
    print(json.dumps({"samples": n, "correct": correct, "accuracy": correct / n,
                      "spikes_per_sample": {k: v / n for k, v in spikes.items()},
                      "ms_batch1": 1e3 * batch1, "ms_batched": 1e3 * batched, "batch": batch,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
