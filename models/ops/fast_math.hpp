// Internal to the trainer's ops: the logistic function and a branch-free e^x that lets loops
// over it vectorise (the spike surrogate and the softmax of binary attention use it).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace evformer::models::ops {

/// σ(x) = 1 / (1 + e^(−x)) with the library exponential (the smooth test path).
inline float sigmoid(float x) {
    return 1.f / (1.f + std::exp(-x));
}

/// e^x for x in [−87, 88] within 2 ulp (Cephes' polynomial after range reduction by ln 2),
/// branch-free so that loops over it vectorise; arguments outside are clamped.
inline float exp_fast(float x) {
    x = std::min(88.f, std::max(-87.f, x));
    const float n = std::floor(x * 1.44269504088896341f + 0.5f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.f;
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

/// The spike surrogate α·σ(αx)(1 − σ(αx)) in the vectorisable form α·e/(1 + e)², e = e^(−α|x|)
/// (the surrogate is even in x; e ≤ 1 keeps every term finite for any membrane value).
inline float surrogate_fast(float x, float alpha) {
    const float e = exp_fast(-alpha * std::abs(x));
    const float d = 1.f + e;
    return alpha * e / (d * d);
}

}  // namespace evformer::models::ops
