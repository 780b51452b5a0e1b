#include "evformer/models/ops/head.hpp"

#include <algorithm>
#include <vector>

namespace evformer::models::ops {

void head_forward(const HeadSizes& n, const float* x, const float* weight, const float* bias,
                  float* feat, float* logits) {
    const std::size_t d = n.dim, k_n = n.classes;
    std::fill(feat, feat + n.batch * d, 0.f);
    const float inv = 1.f / static_cast<float>(n.steps * n.tokens);
    for (std::size_t t = 0; t < n.steps; ++t)
        for (std::size_t bi = 0; bi < n.batch; ++bi)
            for (std::size_t tok = 0; tok < n.tokens; ++tok) {
                const float* src = x + ((t * n.batch + bi) * n.tokens + tok) * d;
                for (std::size_t c = 0; c < d; ++c) feat[bi * d + c] += src[c] * inv;
            }
    for (std::size_t bi = 0; bi < n.batch; ++bi)
        for (std::size_t j = 0; j < k_n; ++j) {
            float acc = bias[j];
            for (std::size_t c = 0; c < d; ++c) acc += weight[j * d + c] * feat[bi * d + c];
            logits[bi * k_n + j] = acc;
        }
}

void head_backward(const HeadSizes& n, const float* feat, const float* dlogits, const float* weight,
                   float* grad_weight, float* grad_bias, float* dx) {
    const std::size_t d = n.dim, k_n = n.classes;
    std::vector<float> dfeat(n.batch * d, 0.f);
    for (std::size_t bi = 0; bi < n.batch; ++bi)
        for (std::size_t j = 0; j < k_n; ++j) {
            const float g = dlogits[bi * k_n + j];
            grad_bias[j] += g;
            for (std::size_t c = 0; c < d; ++c) {
                grad_weight[j * d + c] += g * feat[bi * d + c];
                dfeat[bi * d + c] += g * weight[j * d + c];
            }
        }
    const float inv = 1.f / static_cast<float>(n.steps * n.tokens);
    for (std::size_t t = 0; t < n.steps; ++t)
        for (std::size_t bi = 0; bi < n.batch; ++bi)
            for (std::size_t tok = 0; tok < n.tokens; ++tok)
                for (std::size_t c = 0; c < d; ++c)
                    dx[((t * n.batch + bi) * n.tokens + tok) * d + c] = dfeat[bi * d + c] * inv;
}

}  // namespace evformer::models::ops
