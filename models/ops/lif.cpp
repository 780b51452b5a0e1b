#include "evformer/models/ops/lif.hpp"

#include <algorithm>

#include "fast_math.hpp"
#include "parallel.hpp"

namespace evformer::models::ops {
namespace {

// Neurons per task: each task keeps its membranes in a stack array over all steps.
constexpr std::size_t kLifChunk = 4096;

}  // namespace

void lif_forward(const float* z, std::size_t steps, std::size_t size, const LifOpParams& p,
                 bool smooth, float* h, float* s) {
    const sim::LifParams rule = p.rule;
    parallel_items((size + kLifChunk - 1) / kLifChunk, 2, [&](std::size_t c) {
        const std::size_t i0 = c * kLifChunk, n = std::min(size, i0 + kLifChunk) - i0;
        float v[kLifChunk];
        std::fill(v, v + n, rule.v_reset);
        for (std::size_t t = 0; t < steps; ++t) {
            const std::size_t off = t * size + i0;
            const float* zt = z + off;
            float* ht = h + off;
            float* st = s + off;
            if (smooth) {
                for (std::size_t i = 0; i < n; ++i) {
                    const float hv = sim::lif_charge(v[i], zt[i], rule);
                    const float sv = sigmoid(p.alpha * (hv - rule.v_threshold));
                    ht[i] = hv;
                    st[i] = sv;
                    v[i] = hv * (1.f - sv) + rule.v_reset * sv;
                }
            } else {
                for (std::size_t i = 0; i < n; ++i) {
                    const float hv = sim::lif_charge(v[i], zt[i], rule);
                    const bool fire = sim::fires(hv, rule);
                    ht[i] = hv;
                    st[i] = fire ? 1.f : 0.f;
                    v[i] = sim::after_spike(hv, fire, rule);
                }
            }
        }
    });
}

void lif_backward(const float* h, const float* s, const float* ds, std::size_t steps,
                  std::size_t size, const LifOpParams& p, bool smooth, float* dz) {
    const float tau = p.rule.tau, v_th = p.rule.v_threshold, v_reset = p.rule.v_reset;
    const float decay = 1.f - 1.f / tau, gain = 1.f / tau;
    parallel_items((size + kLifChunk - 1) / kLifChunk, 2, [&](std::size_t c) {
        const std::size_t i0 = c * kLifChunk, n = std::min(size, i0 + kLifChunk) - i0;
        float dv[kLifChunk];
        std::fill(dv, dv + n, 0.f);
        for (std::size_t t = steps; t-- > 0;) {
            const std::size_t off = t * size + i0;
            const float* ht = h + off;
            const float* st = s + off;
            const float* gt = ds + off;
            float* out = dz + off;
            if (smooth) {
                for (std::size_t i = 0; i < n; ++i) {
                    const float sg0 = sigmoid(p.alpha * (ht[i] - v_th));
                    const float sg = p.alpha * sg0 * (1.f - sg0);
                    float dh = gt[i] * sg + dv[i] * (1.f - st[i]);
                    dh += dv[i] * (v_reset - ht[i]) * sg;
                    out[i] = dh * gain;
                    dv[i] = dh * decay;
                }
            } else {
                for (std::size_t i = 0; i < n; ++i) {
                    const float sg = surrogate_fast(ht[i] - v_th, p.alpha);
                    const float dh = gt[i] * sg + dv[i] * (1.f - st[i]);
                    out[i] = dh * gain;
                    dv[i] = dh * decay;
                }
            }
        }
    });
}

}  // namespace evformer::models::ops
