// Trainer op: the SPS stem's 3×3 / stride 2 / padding 1 max-pool (DESIGN.md "The model"; PyTorch's
// MaxPool2d(3, 2, 1)), over the spikes of a stage.
//
//   out[p, oy, ox] = max over y ∈ [2·oy − 1, 2·oy + 1], x ∈ [2·ox − 1, 2·ox + 1] inside the plane
// of in[p, y, x]; output size pooled_size(n) = (n − 1)/2 + 1 (models/spec.hpp). The gradient goes
// to the first maximum in scan order (ky, then kx), as PyTorch's argmax. Layout: planes
// [planes, H, W] (planes = T·batch·C, channel-major, time-major). No checks.
// Engine counterpart: sim::SpikeMaxPool (an output fires when any input of its window fired).
#pragma once

#include <cstddef>
#include <cstdint>

namespace evformer::models::ops {

/// in `[planes, h, w]` → out `[planes, ho, wo]` and argmax (index y·w + x within the input plane
/// of each output's first maximum).
void maxpool_forward(const float* in, std::size_t planes, std::size_t h, std::size_t w, float* out,
                     std::int32_t* argmax);

/// dout `[planes, ho, wo]` → din `[planes, h, w]` (overwritten): each output's gradient to its
/// argmax.
void maxpool_backward(const float* dout, const std::int32_t* argmax, std::size_t planes,
                      std::size_t h, std::size_t w, float* din);

}  // namespace evformer::models::ops
