// Trainer op: a linear layer applied to every token row (PyTorch's nn.Linear; the q, k, v,
// projection and MLP layers of DESIGN.md "The model"), by the blocked GEMM.
//
//   y[r, j] = Σ_i x[r, i]·W[j, i] + b[j]
// Layout: token rows [rows, features], row = (t·batch + b)·N + n (time-major); weights PyTorch's
// [out, in]. Units follow the input (spikes or small integer counts of the residual stream).
// No checks: sizes are the caller's.
// Engine counterpart: sim::TokenLinear (propagate; propagate_lif fused with the LIF), weights
// stored [in][out].
#pragma once

#include <cstddef>

namespace evformer::models::ops {

/// x `[rows, in]`, weight `[out, in]`, bias `[out]` → y `[rows, out]` (overwritten).
void linear_forward(const float* x, std::size_t rows, std::size_t in, std::size_t out,
                    const float* weight, const float* bias, float* y);

/// Gradients of linear_forward from dy `[rows, out]`: grad_weight `[out, in]` += dyᵀ·x,
/// grad_bias `[out]` += Σ_r dy; dx `[rows, in]` = dy·W (overwritten) when not null.
void linear_backward(const float* x, const float* dy, std::size_t rows, std::size_t in,
                     std::size_t out, const float* weight, float* grad_weight, float* grad_bias,
                     float* dx);

}  // namespace evformer::models::ops
