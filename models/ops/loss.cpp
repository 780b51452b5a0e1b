#include "evformer/models/ops/loss.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "evformer/error.hpp"

namespace evformer::models::ops {
namespace {

// Walks the samples: f(sample, j, log p_j, target_j) for every class of every sample; returns
// how many samples have their label as the first arg-max.
template <class F>
std::size_t for_each_log_prob(const float* logits, const int* labels, std::size_t batch,
                              std::size_t k_n, double smoothing, F&& f) {
    std::size_t ok = 0;
    for (std::size_t bi = 0; bi < batch; ++bi) {
        const int label = labels[bi];
        if (label < 0 || static_cast<std::size_t>(label) >= k_n)
            throw ConfigError(
                fmt::format("label {} of sample {} is outside [0, {})", label, bi, k_n));
        const float* lg = logits + bi * k_n;
        const std::size_t arg = static_cast<std::size_t>(std::max_element(lg, lg + k_n) - lg);
        ok += arg == static_cast<std::size_t>(label);
        double mx = lg[arg], z = 0;
        for (std::size_t j = 0; j < k_n; ++j) z += std::exp(lg[j] - mx);
        const double log_z = mx + std::log(z);
        for (std::size_t j = 0; j < k_n; ++j) {
            const double target = (j == static_cast<std::size_t>(label) ? 1.0 - smoothing : 0.0) +
                                  smoothing / double(k_n);
            f(bi, j, lg[j] - log_z, target);
        }
    }
    return ok;
}

}  // namespace

double cross_entropy_forward(const float* logits, const int* labels, std::size_t batch,
                             std::size_t classes, double smoothing, std::size_t* correct) {
    double total = 0;
    const std::size_t ok = for_each_log_prob(
        logits, labels, batch, classes, smoothing,
        [&](std::size_t, std::size_t, double logp, double target) { total -= target * logp; });
    if (correct) *correct = ok;
    return total / double(batch);
}

void cross_entropy_backward(const float* logits, const int* labels, std::size_t batch,
                            std::size_t classes, double smoothing, float* dlogits) {
    for_each_log_prob(logits, labels, batch, classes, smoothing,
                      [&](std::size_t bi, std::size_t j, double logp, double target) {
                          dlogits[bi * classes + j] =
                              static_cast<float>((std::exp(logp) - target) / double(batch));
                      });
}

}  // namespace evformer::models::ops
