// Trainer op: the SPS stem's 3×3 convolution, stride 1, padding 1, no bias (DESIGN.md "The
// model", SPS stem and relative position embedding), by im2col and the blocked GEMM.
//
//   out[n, o, y, x] = Σ_{i, ky, kx} W[o, i, ky, kx] · in[n, i, y + ky − 1, x + kx − 1]
// (zero outside the image). Layout: images channel-major [images, C, H, W] (in the network,
// image = t·batch + b); weights PyTorch's [cout, cin, 3, 3] = [cout, cin·9]. Units follow the
// input (spikes, counts or normalised pixels). No checks: sizes are the caller's.
// Engine counterpart: sim::Conv3x3 (propagate for spike events, propagate_dense for real input),
// channel-last with weights stored [cin][3][3][cout].
#pragma once

#include <cstddef>

namespace evformer::models::ops {

/// in `[images, cin, h, w]`, weight `[cout, cin·9]` → out `[images, cout, h, w]` (overwritten).
void conv3x3_forward(const float* in, std::size_t images, std::size_t cin, std::size_t cout,
                     std::size_t h, std::size_t w, const float* weight, float* out);

/// Gradients of conv3x3_forward from dout `[images, cout, h, w]`: grad_weight `[cout, cin·9]`
/// += Σ dout·colᵀ; din `[images, cin, h, w]` = col2im(Wᵀ·dout) (overwritten) when not null.
void conv3x3_backward(const float* in, const float* dout, std::size_t images, std::size_t cin,
                      std::size_t cout, std::size_t h, std::size_t w, const float* weight,
                      float* grad_weight, float* din);

}  // namespace evformer::models::ops
