#include "evformer/models/ops/pool.hpp"

#include <algorithm>
#include <cmath>

#include "evformer/models/spec.hpp"
#include "parallel.hpp"

namespace evformer::models::ops {

void maxpool_forward(const float* in, std::size_t planes, std::size_t h, std::size_t w, float* out,
                     std::int32_t* argmax) {
    const std::size_t ho = pooled_size(h), wo = pooled_size(w);
    parallel_items(planes, 8, [&](std::size_t p) {
        const float* src = in + p * h * w;
        for (std::size_t oy = 0; oy < ho; ++oy)
            for (std::size_t ox = 0; ox < wo; ++ox) {
                float best = -INFINITY;
                std::int32_t at = 0;
                for (std::size_t ky = 0; ky < 3; ++ky) {
                    const std::size_t y = 2 * oy + ky;  // +1 offset
                    if (y < 1 || y > h) continue;
                    for (std::size_t kx = 0; kx < 3; ++kx) {
                        const std::size_t x = 2 * ox + kx;
                        if (x < 1 || x > w) continue;
                        const float v = src[(y - 1) * w + (x - 1)];
                        if (v > best) {
                            best = v;
                            at = static_cast<std::int32_t>((y - 1) * w + (x - 1));
                        }
                    }
                }
                out[p * ho * wo + oy * wo + ox] = best;
                argmax[p * ho * wo + oy * wo + ox] = at;
            }
    });
}

void maxpool_backward(const float* dout, const std::int32_t* argmax, std::size_t planes,
                      std::size_t h, std::size_t w, float* din) {
    const std::size_t out_plane = pooled_size(h) * pooled_size(w);
    parallel_items(planes, 8, [&](std::size_t p) {
        float* dst = din + p * h * w;
        std::fill(dst, dst + h * w, 0.f);
        for (std::size_t q = 0; q < out_plane; ++q)
            dst[argmax[p * out_plane + q]] += dout[p * out_plane + q];
    });
}

}  // namespace evformer::models::ops
