// Trainer op: the classifier head (DESIGN.md "The model", Head): the mean of the residual stream
// over tokens and time steps, then Linear(D → classes).
//
//   feat[b, c]   = (1/(T·N))·Σ_{t, n} x[(t·B + b)·N + n, c]
//   logits[b, j] = bias[j] + Σ_c W[j, c]·feat[b, c]
// Backward: dW += dlogitsᵀ·feat, dbias += Σ_b dlogits, and every row (t·B + b)·N + n of dx is
// (dlogits·W)[b]/(T·N).
// Layout: x token rows [T·B·N, D], time-major; feat [B, D] and logits [B, K] sample-major;
// W [K, D]. Units: x counts spikes of the residual stream (small integers). No checks.
// Engine counterpart: the head inside sim::Simulator (no separate API); the whole-network
// equivalence tests (tests/models/test_equivalence.cpp) compare its logits.
#pragma once

#include <cstddef>

namespace evformer::models::ops {

/// Sizes of the head: T steps, B samples, N tokens, D channels, K classes.
struct HeadSizes {
    std::size_t steps = 0;
    std::size_t batch = 0;
    std::size_t tokens = 0;
    std::size_t dim = 0;
    std::size_t classes = 0;
};

/// x `[T·B·N, D]` → feat `[B, D]` and logits `[B, K]` (both overwritten).
void head_forward(const HeadSizes& n, const float* x, const float* weight, const float* bias,
                  float* feat, float* logits);

/// From feat and dlogits `[B, K]`: grad_weight `[K, D]` and grad_bias `[K]` accumulate, dx
/// `[T·B·N, D]` is overwritten.
void head_backward(const HeadSizes& n, const float* feat, const float* dlogits, const float* weight,
                   float* grad_weight, float* grad_bias, float* dx);

}  // namespace evformer::models::ops
