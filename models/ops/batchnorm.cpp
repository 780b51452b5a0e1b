#include "evformer/models/ops/batchnorm.hpp"

#include <algorithm>
#include <cmath>

#include "parallel.hpp"

namespace evformer::models::ops {
namespace {

using Buf = std::vector<float>;

// Per-channel Σ f1(a, b, c) and Σ f2(a, b, c) over rows × plane of y and y2 into sums[0:C] and
// sums[C:2C]: float sums within a plane or a chunk of rows, double across them.
template <class F1, class F2>
void channel_sums(std::size_t c_n, const float* y, const float* y2, std::size_t rows,
                  std::size_t plane, double* sums, F1&& f1, F2&& f2) {
    chunked_reduce(rows, 2 * c_n, sums, [&](std::size_t r0, std::size_t r1, double* part) {
        if (plane == 1) {  // token rows [R, C]: vectorise over channels
            thread_local Buf acc;
            acc.assign(2 * c_n, 0.f);
            for (std::size_t r = r0; r < r1; ++r) {
                const float* a = y + r * c_n;
                const float* b = y2 + r * c_n;
                for (std::size_t c = 0; c < c_n; ++c) {
                    acc[c] += f1(a[c], b[c], c);
                    acc[c_n + c] += f2(a[c], b[c], c);
                }
            }
            for (std::size_t j = 0; j < 2 * c_n; ++j) part[j] += acc[j];
            return;
        }
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t c = 0; c < c_n; ++c) {
                const float* a = y + (r * c_n + c) * plane;
                const float* b = y2 + (r * c_n + c) * plane;
                float s1 = 0, s2 = 0;
                for (std::size_t q = 0; q < plane; ++q) {
                    s1 += f1(a[q], b[q], c);
                    s2 += f2(a[q], b[q], c);
                }
                part[c] += s1;
                part[c_n + c] += s2;
            }
    });
}

}  // namespace

void BatchNorm::forward(const float* y, std::size_t rows, std::size_t plane, bool train, float* z) {
    const std::size_t c_n = channels;
    mean.assign(c_n, 0.f);
    invstd.assign(c_n, 0.f);
    if (train) {
        // shifted by a sample of each channel so that float sums of squares stay exact
        Buf pivot(c_n);
        for (std::size_t c = 0; c < c_n; ++c) pivot[c] = y[c * plane];
        const float* pv = pivot.data();
        std::vector<double> sums(2 * c_n, 0.0);
        channel_sums(
            c_n, y, y, rows, plane, sums.data(),
            [pv](float a, float, std::size_t c) { return a - pv[c]; },
            [pv](float a, float, std::size_t c) { return (a - pv[c]) * (a - pv[c]); });
        count = rows * plane;
        const double m = static_cast<double>(count);
        batch_var.assign(c_n, 0.f);
        for (std::size_t c = 0; c < c_n; ++c) {
            const double d = sums[c] / m;
            const double var = std::max(0.0, sums[c_n + c] / m - d * d);
            mean[c] = static_cast<float>(pv[c] + d);
            invstd[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
            batch_var[c] = static_cast<float>(count > 1 ? var * m / (m - 1) : var);
        }
    } else {
        for (std::size_t c = 0; c < c_n; ++c) {
            mean[c] = running_mean[c];
            invstd[c] = 1.f / std::sqrt(running_var[c] + eps);
        }
    }
    Buf scale(c_n), shift(c_n);
    for (std::size_t c = 0; c < c_n; ++c) {
        scale[c] = weight[c] * invstd[c];
        shift[c] = bias[c] - mean[c] * scale[c];
    }
    const float* sc = scale.data();
    const float* sh = shift.data();
    parallel_items(rows, plane == 1 ? 256 : 16, [&](std::size_t r) {
        if (plane == 1) {
            const float* src = y + r * c_n;
            float* dst = z + r * c_n;
            for (std::size_t c = 0; c < c_n; ++c) dst[c] = src[c] * sc[c] + sh[c];
            return;
        }
        for (std::size_t c = 0; c < c_n; ++c) {
            const float* src = y + (r * c_n + c) * plane;
            float* dst = z + (r * c_n + c) * plane;
            for (std::size_t q = 0; q < plane; ++q) dst[q] = src[q] * sc[c] + sh[c];
        }
    });
}

void BatchNorm::update_running() {
    for (std::size_t c = 0; c < channels; ++c) {
        running_mean[c] = 0.9f * running_mean[c] + 0.1f * mean[c];
        running_var[c] = 0.9f * running_var[c] + 0.1f * batch_var[c];
    }
}

void BatchNorm::backward(const float* y, const float* dz, std::size_t rows, std::size_t plane,
                         float* dy) {
    const std::size_t c_n = channels;
    std::vector<double> sums(2 * c_n, 0.0);
    const float* mu = mean.data();
    channel_sums(
        c_n, dz, y, rows, plane, sums.data(), [](float g, float, std::size_t) { return g; },
        [mu](float g, float v, std::size_t c) { return g * (v - mu[c]); });
    for (std::size_t c = 0; c < c_n; ++c) sums[c_n + c] *= invstd[c];
    const double m = static_cast<double>(rows * plane);
    std::vector<float> a(c_n), b(c_n), k(c_n);
    for (std::size_t c = 0; c < c_n; ++c) {
        grad_bias[c] += static_cast<float>(sums[c]);
        grad_weight[c] += static_cast<float>(sums[c_n + c]);
        a[c] = weight[c] * invstd[c];
        b[c] = static_cast<float>(sums[c] / m);
        k[c] = static_cast<float>(sums[c_n + c] / m);
    }
    // dy = a·(dz − b − x̂·k), x̂ = (y − mean)·invstd
    Buf gy(c_n), g0(c_n);
    for (std::size_t c = 0; c < c_n; ++c) {
        gy[c] = a[c] * k[c] * invstd[c];
        g0[c] = a[c] * b[c];
    }
    const float *pa = a.data(), *py = gy.data(), *p0 = g0.data(), *mu0 = mean.data();
    parallel_items(rows, plane == 1 ? 256 : 16, [&](std::size_t r) {
        if (plane == 1) {
            const float* ys = y + r * c_n;
            const float* gs = dz + r * c_n;
            float* out = dy + r * c_n;
            for (std::size_t c = 0; c < c_n; ++c)
                out[c] = pa[c] * gs[c] - py[c] * (ys[c] - mu0[c]) - p0[c];
            return;
        }
        for (std::size_t c = 0; c < c_n; ++c) {
            const float* ys = y + (r * c_n + c) * plane;
            const float* gs = dz + (r * c_n + c) * plane;
            float* out = dy + (r * c_n + c) * plane;
            for (std::size_t q = 0; q < plane; ++q)
                out[q] = pa[c] * gs[q] - py[c] * (ys[q] - mu0[c]) - p0[c];
        }
    });
}

}  // namespace evformer::models::ops
