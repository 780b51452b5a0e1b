// Trainer op: the attention core of a Spikformer block for the five variants (DESIGN.md "The
// model" and "Attention variants"; Spikformer's SSA, binary attention after Shen et al. 2024),
// from the q, k, v spikes to the input current of attn_lif.
//
// Per group g (in the network, g = t·batch + b) and head h, over that head's channels:
//   C = Q·Kᵀ (coincident q/k spikes, [N, N]);  M = C (ssa) or κ·[C > Δ_h] (binary variants);
//   out = s·M·V, then minus a shift per channel: none, the batch mean of s·M·V over all rows
//   (training, shifted variants) or a given V̄ (evaluation, or training with the running mean).
// Backward: dV = s·Mᵀ·dout, dM = s·dout·Vᵀ, dQ = dC·K, dK = dCᵀ·Q, with dC = dM for ssa and, for
// the binary variants, the surrogate ∂B/∂C_ij ≈ p_ij(1 − p_ij), p = softmax of row i of C (our
// reading of the paper, DESIGN.md). The batch-mean shift centres dout over the rows first.
//
// Smooth mode (test only): binary variants use M = κ·softmax(row of C) with its exact Jacobian,
// so finite differences match the backward; Δ is then unused.
//
// Layout: token rows [groups·N, D], row = g·N + n; head h owns channels [h·D/H, (h+1)·D/H).
// Units: q, k, v are spikes (the op also accepts real values: C and the output are then real);
// the output is in membrane units of attn_lif. No checks: sizes are the caller's.
// Engine counterpart: sim::attend (sim/attention.hpp), one group per call, events in.
#pragma once

#include <cstddef>
#include <vector>

namespace evformer::models::ops {

/// Sizes and constants of one attention core.
struct AttentionOpParams {
    std::size_t tokens = 0;  ///< N
    std::size_t dim = 0;     ///< D (all heads)
    std::size_t heads = 0;   ///< H, dividing D
    float scale = 0.125f;    ///< s
    float kappa = 1.f;       ///< κ, value of a binary entry
    bool binary = false;     ///< M = κ·[C > Δ] instead of C
    bool smooth = false;     ///< binary M becomes κ·softmax (test only)
};

/// What the forward pass subtracts from s·M·V.
enum class AttentionShift {
    none,        ///< nothing (ssa, bin, bin-mean)
    batch_mean,  ///< the mean over all rows of this pass (differentiated in backward)
    given,       ///< a fixed vector [D] (V̄), a constant for backward
};

/// What a forward pass measured, for the running Δ and V̄ and the firing counts.
struct AttentionStats {
    std::vector<double> c_mean;   ///< [H]: mean of C over groups and N² entries
    double nonzero = 0;           ///< non-zero entries of M over groups and heads
    std::vector<float> out_mean;  ///< [D]: mean of s·M·V over the rows, before the shift
};

/// q, k, v `[groups·N, D]` → out `[groups·N, D]` (overwritten). `delta` `[H]` is the binary
/// threshold per head (unused for ssa); `given_shift` `[D]` is read when shift is `given`.
void attention_forward(const AttentionOpParams& a, const float* q, const float* k, const float* v,
                       std::size_t groups, const float* delta, AttentionShift shift,
                       const float* given_shift, float* out, AttentionStats& stats);

/// Backward of attention_forward (same q, k, v, delta): dout `[groups·N, D]` → dq, dk, dv
/// `[groups·N, D]` (overwritten). `batch_shift` says whether the forward pass subtracted the
/// batch mean.
void attention_backward(const AttentionOpParams& a, const float* q, const float* k, const float* v,
                        std::size_t groups, const float* delta, bool batch_shift, const float* dout,
                        float* dq, float* dk, float* dv);

}  // namespace evformer::models::ops
