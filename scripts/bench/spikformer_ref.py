#!/usr/bin/python3
"""PyTorch CPU reference of evformer's Spikformer-L-D (DESIGN.md, "The model").

Used for side-by-side benchmarks and, later, cross-checks: the same HDF5 weights file
(docs/weights-format.md) loads into this module and into evformer.

Semantics (all from DESIGN.md; the choices DESIGN.md leaves open are marked "reading"):
  * LIF, multi-step over the leading T axis: v <- v + (x - (v - v_reset))/tau; s = [v >= v_th];
    v <- v*(1 - s) + v_reset*s with s detached (hard reset, detached reset). Surrogate
    d s / d v = alpha*sig(alpha*(v - v_th))*(1 - sig(...)), alpha = 4 (SpikeFn).
  * SPS: 4 x (conv3x3 no bias + BN2d + LIF), channels D/8, D/4, D/2, D, max-pool 3/2/1 over spikes
    after stages listed in pool_after; RPE x = x + LIF(BN(conv3x3(x))); tokens row-major (y*W + x).
  * Block: x = x + Attn(x); x = x + MLP(x). q/k/v/proj = LIF(BN1d(Linear)); attn_lif v_th 0.5.
  * Attention variants: ssa, bin, bin-shift, bin-mean, ssa-bin; B(C, delta) = kappa*[C > delta]
    with surrogate dB/dC = p(1 - p), p = softmax over the row of C (BinaryAttn).
    delta = lambda * c_mean (per head), c_mean = running mean of C; v_bar (per channel) = running
    mean of s*B*V; momentum 0.99; both updated after each training forward, frozen in eval.
    reading: in training with train_shift="batch" the batch mean of s*B*V is subtracted with the
    gradient flowing through it (as BatchNorm's centring); "running" subtracts the stored v_bar.
    reading: c_mean and v_bar are tracked for every variant (the file stores them for all);
    for bin and bin-shift the tracked s*B*V uses delta = 0, for ssa it is s*C*V.
  * Head: mean over tokens, mean over T, Linear.
  * Input: a static image in [0, 1] (pixel/255, no mean/std normalisation), repeated over T
    (direct encoding); or event frames [T, B, C, H, W].

Run `/usr/bin/python3 scripts/bench/spikformer_ref.py --selftest` for the correctness self-check.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
from datetime import datetime, timezone

import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = ("ssa", "bin", "bin-shift", "bin-mean", "ssa-bin")
WEIGHTS_FORMAT = "evformer-weights"
WEIGHTS_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# Spec (the same JSON as the root attribute `spec` of a weights file)

def default_spec(**overrides) -> dict:
    """The project's default model: Spikformer-2-64, 4 heads, T=4, 28x28x1, 10 classes, ssa-bin."""
    spec = {
        "blocks": 2, "dim": 64, "heads": 4, "mlp_ratio": 4, "time_steps": 4,
        "in_channels": 1, "in_height": 28, "in_width": 28,
        "pool_after": [False, False, True, True],
        "classes": 10, "bn_eps": 1e-05,
        "lif": {"tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "attn_v_threshold": 0.5,
                "surrogate_alpha": 4.0},
        "attention": {"variant": "ssa-bin", "scale": 0.125, "kappa": 1.0, "lambda": 1.0,
                      "momentum": 0.99, "train_shift": "batch"},
    }
    for key, value in overrides.items():
        if key in ("lif", "attention"):
            spec[key] = {**spec[key], **value}
        elif key == "variant":
            spec["attention"]["variant"] = value
        else:
            spec[key] = value
    return spec


def validate_spec(spec: dict) -> None:
    def fail(rule):
        raise ValueError(f"invalid model spec: {rule}")
    d, h = spec["dim"], spec["heads"]
    if spec["blocks"] < 1:
        fail("blocks must be at least 1")
    if d < 8 or d % 8:
        fail(f"dim = {d} must be a positive multiple of 8")
    if h < 1 or d % h:
        fail(f"heads = {h} must divide dim = {d}")
    if len(spec["pool_after"]) != 4:
        fail("pool_after must have 4 entries")
    if spec["attention"]["variant"] not in VARIANTS:
        fail(f"attention.variant = {spec['attention']['variant']!r}, expected one of {VARIANTS}")
    if spec["attention"]["train_shift"] not in ("batch", "running"):
        fail("attention.train_shift must be 'batch' or 'running'")
    if spec["classes"] < 2:
        fail("classes must be at least 2")


def pooled(n: int) -> int:
    return 0 if n == 0 else (n - 1) // 2 + 1


def tokens_of(spec: dict) -> int:
    h, w = spec["in_height"], spec["in_width"]
    for p in spec["pool_after"]:
        if p:
            h, w = pooled(h), pooled(w)
    return h * w


# --------------------------------------------------------------------------------------------
# Neurons and surrogate gradients

class SpikeFn(torch.autograd.Function):
    """Heaviside of x = v - v_th; backward alpha*sig(alpha x)(1 - sig(alpha x))."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad * (ctx.alpha * sg * (1.0 - sg)), None


class BinaryAttn(torch.autograd.Function):
    """B = kappa*[c > delta] (delta broadcast per head); backward p(1 - p), p = softmax(c) by row."""

    @staticmethod
    def forward(ctx, c, delta, kappa):
        ctx.save_for_backward(c)
        return (c > delta).to(c.dtype) * kappa

    @staticmethod
    def backward(ctx, grad):
        (c,) = ctx.saved_tensors
        p = torch.softmax(c, dim=-1)
        return grad * (p * (1.0 - p)), None, None


class MultiStepLIF(nn.Module):
    """LIF over the leading time axis of x [T, ...]; returns spikes of the same shape."""

    def __init__(self, tau=2.0, v_threshold=1.0, v_reset=0.0, alpha=4.0):
        super().__init__()
        self.tau, self.v_threshold, self.v_reset, self.alpha = tau, v_threshold, v_reset, alpha

    def forward(self, x):
        v = torch.full_like(x[0], self.v_reset)
        out = []
        for t in range(x.shape[0]):
            v = v + (x[t] - (v - self.v_reset)) / self.tau
            s = SpikeFn.apply(v - self.v_threshold, self.alpha)
            sd = s.detach()
            v = v * (1.0 - sd) + self.v_reset * sd
            out.append(s)
        return torch.stack(out)

    def extra_repr(self):
        return f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}"


def _lif(spec, attn=False):
    l = spec["lif"]
    return MultiStepLIF(l["tau"], l["attn_v_threshold"] if attn else l["v_threshold"],
                        l["v_reset"], l["surrogate_alpha"])


# --------------------------------------------------------------------------------------------
# Modules. Attribute names mirror the module paths of the weights file: `sps.conv0.weight`
# <-> `sps/conv0/weight`, `blocks.1.attn.c_mean` <-> `blocks/1/attn/c_mean`.

class SPS(nn.Module):
    def __init__(self, spec):
        super().__init__()
        d, eps = spec["dim"], spec["bn_eps"]
        chans = [spec["in_channels"], d // 8, d // 4, d // 2, d]
        self.pool_after = list(spec["pool_after"])
        for i in range(4):
            setattr(self, f"conv{i}", nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(chans[i + 1], eps=eps))
            setattr(self, f"lif{i}", _lif(spec))
        self.rpe_conv = nn.Conv2d(d, d, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(d, eps=eps)
        self.rpe_lif = _lif(spec)

    @staticmethod
    def _conv_bn(conv, bn, x):  # x [T, B, C, H, W]
        t, b = x.shape[:2]
        y = bn(conv(x.flatten(0, 1)))
        return y.reshape(t, b, *y.shape[1:])

    def forward(self, x):
        for i in range(4):
            x = getattr(self, f"lif{i}")(self._conv_bn(getattr(self, f"conv{i}"),
                                                       getattr(self, f"bn{i}"), x))
            if self.pool_after[i]:
                t, b = x.shape[:2]
                y = F.max_pool2d(x.flatten(0, 1), 3, 2, 1)
                x = y.reshape(t, b, *y.shape[1:])
        x = x + self.rpe_lif(self._conv_bn(self.rpe_conv, self.rpe_bn, x))
        return x.flatten(3).transpose(2, 3).contiguous()  # [T, B, N, D], N row-major


class Attention(nn.Module):
    def __init__(self, spec):
        super().__init__()
        d, h = spec["dim"], spec["heads"]
        a = spec["attention"]
        self.heads, self.variant = h, a["variant"]
        self.scale, self.kappa, self.lam = a["scale"], a["kappa"], a["lambda"]
        self.momentum, self.train_shift = a["momentum"], a["train_shift"]
        for n in ("q", "k", "v", "proj"):
            lin, bn = nn.Linear(d, d), nn.BatchNorm1d(d, eps=spec["bn_eps"])
            setattr(self, f"{n}_linear", lin)
            setattr(self, f"{n}_bn", bn)
            setattr(self, f"{n}_lif", _lif(spec))
        self.attn_lif = _lif(spec, attn=True)
        self.register_buffer("c_mean", torch.zeros(h))
        self.register_buffer("v_bar", torch.zeros(d))

    def _lbl(self, n, x):
        y = getattr(self, f"{n}_linear")(x)
        y = getattr(self, f"{n}_bn")(y.flatten(0, 2)).reshape(y.shape)
        return getattr(self, f"{n}_lif")(y)

    def forward(self, x):  # x [T, B, N, D]
        t, b, n, d = x.shape
        h = self.heads

        def split(z):  # [T, B, N, D] -> [T, B, H, N, D/H]
            return z.reshape(t, b, n, h, d // h).transpose(2, 3)

        q, k, v = (split(self._lbl(name, x)) for name in ("q", "k", "v"))
        c = q @ k.transpose(-2, -1)  # [T, B, H, N, N], integer counts
        var = self.variant
        if var == "ssa":
            a = c
        else:
            if var in ("bin-mean", "ssa-bin"):
                delta = (self.lam * self.c_mean).to(c.dtype).view(1, 1, h, 1, 1)
            else:
                delta = torch.zeros((), dtype=c.dtype)
            a = BinaryAttn.apply(c, delta, self.kappa)
        y = (self.scale * (a @ v)).transpose(2, 3).reshape(t, b, n, d)  # s*B*V, heads merged
        shift = var in ("bin-shift", "ssa-bin")
        if self.training:
            batch_mean = y.mean(dim=(0, 1, 2))
            with torch.no_grad():
                mu = self.momentum
                self.c_mean.mul_(mu).add_((1 - mu) * c.detach().mean(dim=(0, 1, 3, 4)))
                old_v_bar = self.v_bar.clone()
                self.v_bar.mul_(mu).add_((1 - mu) * batch_mean.detach())
            if shift:
                y = y - (batch_mean if self.train_shift == "batch" else old_v_bar)
        elif shift:
            y = y - self.v_bar
        y = self.attn_lif(y)
        return self._lbl("proj", y)


class MLP(nn.Module):
    def __init__(self, spec):
        super().__init__()
        d, m = spec["dim"], spec["dim"] * spec["mlp_ratio"]
        self.fc1_linear, self.fc1_bn, self.fc1_lif = nn.Linear(d, m), nn.BatchNorm1d(m, eps=spec["bn_eps"]), _lif(spec)
        self.fc2_linear, self.fc2_bn, self.fc2_lif = nn.Linear(m, d), nn.BatchNorm1d(d, eps=spec["bn_eps"]), _lif(spec)

    def forward(self, x):
        for i in (1, 2):
            y = getattr(self, f"fc{i}_linear")(x)
            y = getattr(self, f"fc{i}_bn")(y.flatten(0, 2)).reshape(y.shape)
            x = getattr(self, f"fc{i}_lif")(y)
        return x


class Block(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.attn, self.mlp = Attention(spec), MLP(spec)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module):
    def __init__(self, spec: dict | None = None):
        super().__init__()
        spec = copy.deepcopy(spec or default_spec())
        validate_spec(spec)
        self.spec = spec
        self.time_steps = spec["time_steps"]
        self.sps = SPS(spec)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec["blocks"]))
        self.head = nn.Linear(spec["dim"], spec["classes"])
        for m in self.modules():  # Spikformer init: trunc_normal(0.02) Linear, bias 0
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def encode(self, x):
        """[B, C, H, W] image in [0, 1] -> repeated over T; [T, B, C, H, W] frames pass through."""
        if x.dim() == 4:
            return x.unsqueeze(0).expand(self.time_steps, *x.shape)
        if x.dim() == 5:
            return x
        raise ValueError(f"input must be [B,C,H,W] or [T,B,C,H,W], got {tuple(x.shape)}")

    def features(self, x):
        x = self.sps(self.encode(x))
        for blk in self.blocks:
            x = blk(x)
        return x  # [T, B, N, D]

    def forward(self, x):
        return self.head(self.features(x).mean(dim=2).mean(dim=0))


def image_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels [B, C, H, W] (or [B, H, W]) -> float input pixel/255 (no normalisation)."""
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(1)
    return pixels.float() / 255.0


# --------------------------------------------------------------------------------------------
# HDF5 weights (docs/weights-format.md)

def _file_name(key: str) -> str:
    return key.replace(".", "/")


def tensor_names(model: Spikformer) -> dict:
    """File dataset name -> state_dict key, for every tensor the weights file holds."""
    return {_file_name(k): k for k in model.state_dict() if not k.endswith("num_batches_tracked")}


def save_weights(model: Spikformer, path: str, provenance: dict | None = None) -> None:
    """Writes the model in the evformer weights format, atomically (temporary file, rename)."""
    import h5py
    spec = model.spec
    prov = {"dataset": "", "epochs": 0, "seed": 0, "accuracy": -1.0,
            "command": " ".join(sys.argv), "tool_version": "spikformer_ref.py",
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    prov.update(provenance or {})
    sd = model.state_dict()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".h5", dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = WEIGHTS_FORMAT
            f.attrs["format_version"] = WEIGHTS_FORMAT_VERSION
            f.attrs["spec"] = json.dumps(spec)
            f.attrs["variant"] = spec["attention"]["variant"]
            for name, key in tensor_names(model).items():
                f.create_dataset(name, data=sd[key].detach().cpu().float().numpy())
            g = f.create_group("provenance")
            for k in ("dataset", "command", "created", "tool_version"):
                g.attrs[k] = str(prov[k])
            for k in ("epochs", "seed"):
                g.attrs[k] = int(prov[k])
            g.attrs["accuracy"] = float(prov["accuracy"])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def load_weights(path: str, variant: str | None = None) -> tuple[Spikformer, dict]:
    """Builds a Spikformer from an evformer weights file; returns (model in eval mode, provenance).

    Errors name the file and the tensor or attribute at fault. `variant` overrides the stored one.
    """
    import h5py
    with h5py.File(path, "r") as f:
        fmt = _attr_str(f.attrs.get("format", ""))
        if fmt != WEIGHTS_FORMAT:
            raise ValueError(f"{path}: not an evformer weights file (format {fmt!r})")
        ver = int(f.attrs.get("format_version", -1))
        if ver != WEIGHTS_FORMAT_VERSION:
            raise ValueError(f"{path}: weights format version {ver}, expected {WEIGHTS_FORMAT_VERSION}")
        try:
            spec = json.loads(_attr_str(f.attrs["spec"]))
            spec = default_spec(**spec)  # fills keys a writer may leave out
            if variant:
                spec["attention"]["variant"] = variant
            model = Spikformer(spec)
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: root attribute 'spec': {e}") from e
        sd = model.state_dict()
        names = tensor_names(model)
        new_sd = {}
        for name, key in names.items():
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise ValueError(f"{path}: tensor '{name}' is missing (expected shape {list(sd[key].shape)})")
            arr = torch.from_numpy(f[name][...]).float()
            if tuple(arr.shape) != tuple(sd[key].shape):
                raise ValueError(f"{path}: tensor '{name}' has shape {list(arr.shape)}, expected {list(sd[key].shape)}")
            if not torch.isfinite(arr).all():
                raise ValueError(f"{path}: tensor '{name}' has a non-finite value")
            new_sd[key] = arr
        extra = []
        f.visititems(lambda n, o: extra.append(n) if isinstance(o, h5py.Dataset) and n not in names else None)
        if extra:
            raise ValueError(f"{path}: unexpected tensor '{extra[0]}' (not part of a model of this spec)")
        prov = {}
        if "provenance" in f:
            prov = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                    for k, v in f["provenance"].attrs.items()}
    for k, v in sd.items():  # keep num_batches_tracked
        new_sd.setdefault(k, v)
    model.load_state_dict(new_sd, strict=True)
    model.eval()
    return model, prov


# --------------------------------------------------------------------------------------------
# Self-check

def _check_lif():
    lif = MultiStepLIF()
    x = torch.tensor([[1.5], [1.5], [0.0], [2.0]], requires_grad=True)
    s = lif(x)
    # v: 0.75 (no), 1.125 (spike, reset 0), 0 (no), 1.0 (spike: v >= v_th)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0], s.flatten().tolist()
    s.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    xx = torch.zeros(1, requires_grad=True)
    SpikeFn.apply(xx, 4.0).sum().backward()
    assert abs(xx.grad.item() - 1.0) < 1e-6, xx.grad  # alpha*0.5*0.5 = 1


def _check_binary_attn():
    c = torch.tensor([[[0.0, 1.0, 2.0]]], requires_grad=True)
    b = BinaryAttn.apply(c, torch.tensor(0.5), 1.0)
    assert b.tolist() == [[[0.0, 1.0, 1.0]]]
    b.sum().backward()
    p = torch.softmax(c.detach(), -1)
    assert torch.allclose(c.grad, p * (1 - p))


def selftest() -> int:
    torch.manual_seed(0)
    _check_lif()
    _check_binary_attn()
    print("selftest: LIF and binary-attention surrogates ok")
    spec = default_spec()
    assert tokens_of(spec) == 49
    bsz = 3
    x = torch.rand(bsz, 1, 28, 28)
    for var in VARIANTS:
        m = Spikformer(default_spec(variant=var))
        feats = m.sps(m.encode(x))
        assert feats.shape == (4, bsz, 49, 64), feats.shape
        vals = set(feats.unique().tolist())
        assert vals <= {0.0, 1.0, 2.0}, vals
        m.train()
        out = m(x)
        assert out.shape == (bsz, 10), out.shape
        loss = F.cross_entropy(out, torch.tensor([0, 1, 2]))
        loss.backward()
        missing = [n for n, p in m.named_parameters() if p.grad is None]
        assert not missing, f"{var}: no gradient for {missing}"
        assert all(torch.isfinite(p.grad).all() for p in m.parameters()), var
        a = m.blocks[0].attn
        assert (a.c_mean > 0).all(), f"{var}: c_mean not tracked"
        m.eval()
        with torch.no_grad():
            y1, y2 = m(x), m(x)
        assert torch.equal(y1, y2), f"{var}: eval not deterministic"
        print(f"selftest: {var:9s} forward {tuple(out.shape)} backward ok, "
              f"loss {loss.item():.4f}, c_mean[0] {a.c_mean.tolist()}")
    # weights file round trip
    m = Spikformer(default_spec())
    m.train()
    for _ in range(3):  # move BN statistics, c_mean and v_bar away from their initial values
        m(torch.rand(4, 1, 28, 28))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    m.eval()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.h5")
        save_weights(m, path, {"dataset": "random", "seed": 0})
        import h5py
        with h5py.File(path, "r") as f:
            assert f["blocks/0/attn/q_linear/weight"].shape == (64, 64)
            assert f["blocks/1/attn/c_mean"].shape == (4,)
            assert f["sps/conv0/weight"].shape == (8, 1, 3, 3)
            assert f["head/weight"].shape == (10, 64)
            assert f["sps/rpe_bn/running_var"].shape == (64,)
            n_sets = []
            f.visititems(lambda n, o: n_sets.append(n) if isinstance(o, h5py.Dataset) else None)
        m2, prov = load_weights(path)
        sd1, sd2 = m.state_dict(), m2.state_dict()
        for k in sd1:
            if not k.endswith("num_batches_tracked"):
                assert torch.equal(sd1[k], sd2[k]), k
        assert json.dumps(m2.spec, sort_keys=True) == json.dumps(m.spec, sort_keys=True)
        with torch.no_grad():
            assert torch.equal(m(x), m2(x))
        assert prov["dataset"] == "random"
        # a broken file gives an error naming the tensor
        with h5py.File(path, "a") as f:
            del f["blocks/1/mlp/fc2_bn/running_mean"]
        try:
            load_weights(path)
        except ValueError as e:
            assert "blocks/1/mlp/fc2_bn/running_mean" in str(e), e
        else:
            raise AssertionError("missing tensor not detected")
    print(f"selftest: weights round trip ok ({len(n_sets)} datasets)")
    print("selftest: all ok")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selftest", action="store_true", help="run the correctness self-check")
    ap.add_argument("--weights", help="load an evformer weights file and print its spec and a forward on zeros")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if args.weights:
        m, prov = load_weights(args.weights)
        print(json.dumps({"spec": m.spec, "provenance": prov}, indent=1))
        s = m.spec
        with torch.no_grad():
            print("logits on a zero image:", m(torch.zeros(1, s["in_channels"], s["in_height"], s["in_width"])).tolist())
        return 0
    print(Spikformer())
    return 0


if __name__ == "__main__":
    sys.exit(main())
