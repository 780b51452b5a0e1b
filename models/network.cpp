#include "evformer/models/network.hpp"

#include <fmt/format.h>
#include <malloc.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "evformer/error.hpp"
#include "evformer/models/attention_variant.hpp"
#include "evformer/models/kernels.hpp"

namespace evformer::models {
namespace {

using Buf = std::vector<float>;

// Reductions are split into at most this many fixed chunks whose partial sums are added in order,
// so results do not depend on how the scheduler assigns chunks to threads.
constexpr std::size_t kReduceChunks = 32;
// Wide reductions (weight gradients) use fewer chunks: each chunk owns a zeroed partial of the
// whole width, and summing them is serial.
constexpr std::size_t kWideReduceChunks = 8;
constexpr std::size_t kWideReduce = 4096;

// Runs f(i) for i in [0, n) in parallel (each i writes its own outputs).
template <class F>
void parallel_items(std::size_t n, std::size_t grain, F&& f) {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, std::max<std::size_t>(1, grain)),
                      [&](const tbb::blocked_range<std::size_t>& r) {
                          for (std::size_t i = r.begin(); i != r.end(); ++i) f(i);
                      });
}

// out[0:width] += Σ over fixed chunks of f(begin, end, partial), chunks added in order.
template <class T, class F>
void chunked_reduce(std::size_t items, std::size_t width, T* out, F&& f) {
    const std::size_t max_chunks = width > kWideReduce ? kWideReduceChunks : kReduceChunks;
    const std::size_t chunk = std::max<std::size_t>(1, (items + max_chunks - 1) / max_chunks);
    const std::size_t chunks = (items + chunk - 1) / chunk;
    std::vector<T> partial(chunks * width, T{});
    parallel_items(chunks, 1, [&](std::size_t c) {
        f(c * chunk, std::min(items, (c + 1) * chunk), partial.data() + c * width);
    });
    for (std::size_t c = 0; c < chunks; ++c) {
        const T* src = partial.data() + c * width;
        for (std::size_t j = 0; j < width; ++j) out[j] += src[j];
    }
}

inline float sigmoid(float x) {
    return 1.f / (1.f + std::exp(-x));
}

// e^x for x in [−87, 88] within 2 ulp (Cephes' polynomial after range reduction by ln 2),
// branch-free so that loops over it vectorise; arguments outside are clamped.
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

// The spike surrogate α·σ(αx)(1 − σ(αx)) in the vectorisable form α·e/(1 + e)², e = e^(−α|x|)
// (the surrogate is even in x; e ≤ 1 keeps every term finite for any membrane value).
inline float surrogate_fast(float x, float alpha) {
    const float e = exp_fast(-alpha * std::abs(x));
    const float d = 1.f + e;
    return alpha * e / (d * d);
}

// ---------------------------------------------------------------- LIF

struct LifParams {
    float tau = 2.f;
    float v_th = 1.f;
    float v_reset = 0.f;
    float alpha = 4.f;
};

constexpr std::size_t kLifChunk = 4096;

// z: [T, S] input currents; writes the pre-spike membrane h and the spikes s.
void lif_forward(const float* z, std::size_t steps, std::size_t size, const LifParams& p,
                 bool smooth, float* h, float* s) {
    parallel_items((size + kLifChunk - 1) / kLifChunk, 2, [&](std::size_t c) {
        const std::size_t i0 = c * kLifChunk, n = std::min(size, i0 + kLifChunk) - i0;
        float v[kLifChunk];
        std::fill(v, v + n, p.v_reset);
        for (std::size_t t = 0; t < steps; ++t) {
            const std::size_t off = t * size + i0;
            const float* zt = z + off;
            float* ht = h + off;
            float* st = s + off;
            if (smooth) {
                for (std::size_t i = 0; i < n; ++i) {
                    const float hv = v[i] + (zt[i] - v[i]) / p.tau;
                    const float sv = sigmoid(p.alpha * (hv - p.v_th));
                    ht[i] = hv;
                    st[i] = sv;
                    v[i] = hv * (1.f - sv) + p.v_reset * sv;
                }
            } else {
                // v ← v + (x − v)/τ, literally as DESIGN.md writes it (the simulator too)
                for (std::size_t i = 0; i < n; ++i) {
                    const float hv = v[i] + (zt[i] - v[i]) / p.tau;
                    const bool fire = hv >= p.v_th;
                    ht[i] = hv;
                    st[i] = fire ? 1.f : 0.f;
                    v[i] = fire ? p.v_reset : hv;
                }
            }
        }
    });
}

// Backward of lif_forward: ds [T, S] → dz [T, S]. The reset is detached unless `smooth`.
void lif_backward(const float* h, const float* s, const float* ds, std::size_t steps,
                  std::size_t size, const LifParams& p, bool smooth, float* dz) {
    const float decay = 1.f - 1.f / p.tau, gain = 1.f / p.tau;
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
                    const float sg0 = sigmoid(p.alpha * (ht[i] - p.v_th));
                    const float sg = p.alpha * sg0 * (1.f - sg0);
                    float dh = gt[i] * sg + dv[i] * (1.f - st[i]);
                    dh += dv[i] * (p.v_reset - ht[i]) * sg;
                    out[i] = dh * gain;
                    dv[i] = dh * decay;
                }
            } else {
                for (std::size_t i = 0; i < n; ++i) {
                    const float sg = surrogate_fast(ht[i] - p.v_th, p.alpha);
                    const float dh = gt[i] * sg + dv[i] * (1.f - st[i]);
                    out[i] = dh * gain;
                    dv[i] = dh * decay;
                }
            }
        }
    });
}

// ---------------------------------------------------------------- BatchNorm

// BN over data [R, C, P]: statistics per channel over R × P.
struct BatchNorm {
    std::size_t channels = 0;
    float eps = 1e-5f;
    float* weight = nullptr;
    float* bias = nullptr;
    float* running_mean = nullptr;
    float* running_var = nullptr;
    float* grad_weight = nullptr;
    float* grad_bias = nullptr;
    Buf mean, invstd;  // of the last training batch
    Buf batch_var;     // unbiased, for the running update
    std::size_t count = 0;

    // Per-channel Σ f(y) and Σ g(y) over rows × plane into sums[0:C] and sums[C:2C]: float sums
    // within a plane or a chunk of rows, double across them.
    template <class F1, class F2>
    void channel_sums(const float* y, const float* y2, std::size_t rows, std::size_t plane,
                      double* sums, F1&& f1, F2&& f2) const {
        const std::size_t c_n = channels;
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

    void forward(const float* y, std::size_t rows, std::size_t plane, bool train, float* z) {
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
                y, y, rows, plane, sums.data(),
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

    // PyTorch convention: running ← 0.9·running + 0.1·batch (unbiased variance).
    void update_running() {
        for (std::size_t c = 0; c < channels; ++c) {
            running_mean[c] = 0.9f * running_mean[c] + 0.1f * mean[c];
            running_var[c] = 0.9f * running_var[c] + 0.1f * batch_var[c];
        }
    }

    // dz → dy (overwrites dy), accumulating the parameter gradients. Training statistics.
    void backward(const float* y, const float* dz, std::size_t rows, std::size_t plane, float* dy) {
        const std::size_t c_n = channels;
        std::vector<double> sums(2 * c_n, 0.0);
        const float* mu = mean.data();
        channel_sums(
            dz, y, rows, plane, sums.data(), [](float g, float, std::size_t) { return g; },
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
};

// ---------------------------------------------------------------- conv / linear

// out[n] = W · im2col(in[n]) for n < images; W [cout, cin·9].
void conv_forward(const float* in, std::size_t images, std::size_t cin, std::size_t cout,
                  std::size_t h, std::size_t w, const float* weight, float* out) {
    const std::size_t plane = h * w, k = cin * 9;
    parallel_items(images, 1, [&](std::size_t n) {
        thread_local Buf col;
        col.resize(k * plane);
        kernels::im2col3x3(in + n * cin * plane, cin, h, w, col.data());
        kernels::gemm(cout, plane, k, weight, k, col.data(), plane, out + n * cout * plane, plane,
                      false);
    });
}

// Gradients of conv_forward: dW += Σ dout·colᵀ; din = col2im(Wᵀ·dout) when din is not null.
// The weight gradient is accumulated transposed (dWᵀ += col·doutᵀ), which transposes the small
// dout instead of the nine-times larger col.
void conv_backward(const float* in, const float* dout, std::size_t images, std::size_t cin,
                   std::size_t cout, std::size_t h, std::size_t w, const float* weight,
                   float* grad_weight, float* din) {
    const std::size_t plane = h * w, k = cin * 9;
    Buf wt(k * cout), gwt(k * cout, 0.f);
    kernels::transpose(cout, k, weight, wt.data());
    chunked_reduce(images, k * cout, gwt.data(), [&](std::size_t n0, std::size_t n1, float* part) {
        thread_local Buf col, gt, dcol;
        col.resize(k * plane);
        gt.resize(plane * cout);
        if (din) dcol.resize(k * plane);
        for (std::size_t n = n0; n < n1; ++n) {
            const float* g = dout + n * cout * plane;
            kernels::im2col3x3(in + n * cin * plane, cin, h, w, col.data());
            kernels::transpose(cout, plane, g, gt.data());
            kernels::gemm(k, cout, plane, col.data(), plane, gt.data(), cout, part, cout, true);
            if (din) {
                kernels::gemm(k, plane, cout, wt.data(), cout, g, plane, dcol.data(), plane, false);
                float* di = din + n * cin * plane;
                std::fill(di, di + cin * plane, 0.f);
                kernels::col2im3x3(dcol.data(), cin, h, w, di);
            }
        }
    });
    for (std::size_t o = 0; o < cout; ++o)
        for (std::size_t j = 0; j < k; ++j) grad_weight[o * k + j] += gwt[j * cout + o];
}

constexpr std::size_t kRowBlock = 96;

// y[R, out] = x[R, in]·Wᵀ + b.
void linear_forward(const float* x, std::size_t rows, std::size_t in, std::size_t out,
                    const float* weight, const float* bias, float* y) {
    Buf wt(in * out);
    kernels::transpose(out, in, weight, wt.data());
    parallel_items((rows + kRowBlock - 1) / kRowBlock, 1, [&](std::size_t blk) {
        const std::size_t r0 = blk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
        kernels::gemm(r1 - r0, out, in, x + r0 * in, in, wt.data(), out, y + r0 * out, out, false);
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t j = 0; j < out; ++j) y[r * out + j] += bias[j];
    });
}

// dW += dyᵀ·x, db += Σ dy, dx = dy·W (overwritten) when dx is not null.
void linear_backward(const float* x, const float* dy, std::size_t rows, std::size_t in,
                     std::size_t out, const float* weight, float* grad_weight, float* grad_bias,
                     float* dx) {
    std::vector<float> gw_b(out * in + out, 0.f);
    chunked_reduce(
        rows, out * in + out, gw_b.data(), [&](std::size_t r0, std::size_t r1, float* part) {
            thread_local Buf dyt;
            dyt.resize(out * (r1 - r0));
            kernels::transpose(r1 - r0, out, dy + r0 * out, dyt.data());
            kernels::gemm(out, in, r1 - r0, dyt.data(), r1 - r0, x + r0 * in, in, part, in, true);
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t j = 0; j < out; ++j) part[out * in + j] += dy[r * out + j];
        });
    for (std::size_t i = 0; i < out * in; ++i) grad_weight[i] += gw_b[i];
    for (std::size_t j = 0; j < out; ++j) grad_bias[j] += gw_b[out * in + j];
    if (dx)
        parallel_items((rows + kRowBlock - 1) / kRowBlock, 1, [&](std::size_t blk) {
            const std::size_t r0 = blk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
            kernels::gemm(r1 - r0, in, out, dy + r0 * out, out, weight, in, dx + r0 * in, in,
                          false);
        });
}

// 3×3 / stride 2 / pad 1 max-pool over [R, C, H, W] planes; argmax = first maximum in scan order.
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

// ---------------------------------------------------------------- units

// conv3×3 → BN2d → LIF, over [T·B, C, H, W].
struct ConvUnit {
    std::string name;  // population name of its LIF
    std::size_t cin = 0, cout = 0, h = 0, w = 0;
    float* weight = nullptr;
    float* grad_weight = nullptr;
    BatchNorm bn;
    Buf y, hmem, s;  // conv output, membrane before spike, spikes

    std::size_t plane() const { return h * w; }
};

// Linear → BN1d → LIF over token rows [T·B·N, width].
struct LinearUnit {
    std::string name;
    std::size_t in = 0, out = 0;
    float* weight = nullptr;
    float* bias = nullptr;
    float* grad_weight = nullptr;
    float* grad_bias = nullptr;
    BatchNorm bn;
    Buf y, hmem, s;
};

struct Block {
    LinearUnit q, k, v, proj, fc1, fc2;
    float* c_mean = nullptr;
    float* v_bar = nullptr;
    Buf x_in, x_mid;     // residual stream before attention and before the MLP
    Buf attn_pre;        // input current of attn_lif (after the shift)
    Buf attn_h, attn_s;  // attn_lif
    Buf shift_used;      // V̄ subtracted in this pass [D] (batch mean or running)
    bool batch_shift = false;
    std::vector<double> batch_c_mean;  // [H]
    Buf batch_out_mean;                // [D], mean of s·B·V before the shift
    double nonzero = 0;                // attention entries ≠ 0 in this pass
};

}  // namespace

double spike_surrogate(double x, double alpha) {
    const double s = 1.0 / (1.0 + std::exp(-alpha * x));
    return alpha * s * (1.0 - s);
}

float spike_surrogate_fast(float x, float alpha) {
    return surrogate_fast(x, alpha);
}

double FiringCounts::rate(const std::string& population) const {
    auto it = spikes.find(population);
    auto jt = neuron_steps.find(population);
    if (it == spikes.end() || jt == neuron_steps.end() || jt->second <= 0) return 0;
    return it->second / jt->second;
}

double FiringCounts::fr_attn(std::size_t block) const {
    if (block >= attn_entries.size() || attn_entries[block] <= 0) return 0;
    return attn_nonzero[block] / attn_entries[block];
}

double FiringCounts::fr_out(std::size_t block) const {
    return rate(fmt::format("blocks/{}/attn/attn_lif", block));
}

void FiringCounts::merge(const FiringCounts& other) {
    for (const auto& [k, v] : other.spikes) spikes[k] += v;
    for (const auto& [k, v] : other.neuron_steps) neuron_steps[k] += v;
    if (attn_nonzero.size() < other.attn_nonzero.size()) {
        attn_nonzero.resize(other.attn_nonzero.size(), 0);
        attn_entries.resize(other.attn_entries.size(), 0);
    }
    for (std::size_t i = 0; i < other.attn_nonzero.size(); ++i) {
        attn_nonzero[i] += other.attn_nonzero[i];
        attn_entries[i] += other.attn_entries[i];
    }
}

struct DenseSpikformer::Impl {
    ModelWeights w;
    std::map<std::string, Tensor> grads;
    ModelSpec spec;
    models::AttentionVariantInfo variant;
    LifParams lif, attn_lif;
    std::array<ConvUnit, 4> stages;
    std::array<bool, 4> pool{};
    std::array<Buf, 4> pooled;
    std::array<std::vector<std::int32_t>, 4> argmax;
    ConvUnit rpe;
    std::vector<Block> blocks;
    float* head_w = nullptr;
    float* head_b = nullptr;

    // per pass
    std::size_t batch = 0, rows_tb = 0;
    bool static_input = true;
    Buf input0;   // stage 0 input: [B, cin, H, W] (static) or [T·B, cin, H, W]
    Buf tokens0;  // [T·B·N, D] after the stem
    Buf feat;     // [B, D]
    Buf logits;   // [B, K]
    bool train = false;
    bool smooth = false;
    // backward scratch, kept between steps (no page faults, no zero fills)
    Buf scratch_dz, scratch_dy, bw_dx, bw_g1, bw_g2, bw_dq, bw_dk, bw_dv, bw_dpre, bw_dstem,
        bw_ds_rpe, bw_drpe_in;
    std::array<Buf, 4> bw_dsp, bw_din;

    explicit Impl(const ModelWeights& weights) : w(weights) {
        // Every step allocates and frees large activation buffers: keep them in the heap instead
        // of mmap/munmap round trips, whose page faults would cost more than the arithmetic.
        mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        w.validate();
        spec = w.spec;
        variant = models::info(spec.attention.variant);
        lif = {static_cast<float>(spec.lif.tau), static_cast<float>(spec.lif.v_threshold),
               static_cast<float>(spec.lif.v_reset), static_cast<float>(spec.lif.surrogate_alpha)};
        attn_lif = lif;
        attn_lif.v_th = static_cast<float>(spec.lif.attn_v_threshold);
        for (const auto& p : parameter_layout(spec))
            if (p.kind == ParameterInfo::Kind::weight || p.kind == ParameterInfo::Kind::bias ||
                p.kind == ParameterInfo::Kind::bn_weight || p.kind == ParameterInfo::Kind::bn_bias)
                grads[p.name] = Tensor{p.shape, std::vector<float>(w.at(p.name).size(), 0.f)};
        bind();
    }

    float* param(const std::string& n) { return w.at(n).data.data(); }
    float* grad(const std::string& n) { return grads.at(n).data.data(); }

    void bind_bn(BatchNorm& bn, const std::string& prefix, std::size_t channels) {
        bn.channels = channels;
        bn.eps = static_cast<float>(spec.bn_eps);
        bn.weight = param(prefix + "/weight");
        bn.bias = param(prefix + "/bias");
        bn.running_mean = param(prefix + "/running_mean");
        bn.running_var = param(prefix + "/running_var");
        bn.grad_weight = grad(prefix + "/weight");
        bn.grad_bias = grad(prefix + "/bias");
    }

    void bind_linear(LinearUnit& u, const std::string& prefix, const std::string& nm,
                     std::size_t in, std::size_t out) {
        u.name = prefix + nm + "_lif";
        u.in = in;
        u.out = out;
        u.weight = param(prefix + nm + "_linear/weight");
        u.bias = param(prefix + nm + "_linear/bias");
        u.grad_weight = grad(prefix + nm + "_linear/weight");
        u.grad_bias = grad(prefix + nm + "_linear/bias");
        bind_bn(u.bn, prefix + nm + "_bn", out);
    }

    void bind() {
        std::size_t cin = spec.in_channels, h = spec.in_height, wd = spec.in_width;
        for (std::size_t i = 0; i < 4; ++i) {
            auto& u = stages[i];
            u.name = fmt::format("sps/lif{}", i);
            u.cin = cin;
            u.cout = spec.stage_channels(i);
            u.h = h;
            u.w = wd;
            u.weight = param(fmt::format("sps/conv{}/weight", i));
            u.grad_weight = grad(fmt::format("sps/conv{}/weight", i));
            bind_bn(u.bn, fmt::format("sps/bn{}", i), u.cout);
            pool[i] = spec.pool_after[i];
            if (pool[i]) {
                h = pooled_size(h);
                wd = pooled_size(wd);
            }
            cin = u.cout;
        }
        rpe.name = "sps/rpe_lif";
        rpe.cin = rpe.cout = spec.dim;
        rpe.h = h;
        rpe.w = wd;
        rpe.weight = param("sps/rpe_conv/weight");
        rpe.grad_weight = grad("sps/rpe_conv/weight");
        bind_bn(rpe.bn, "sps/rpe_bn", spec.dim);
        blocks.resize(spec.blocks);
        const std::size_t d = spec.dim;
        for (std::size_t l = 0; l < spec.blocks; ++l) {
            auto& b = blocks[l];
            const auto attn = fmt::format("blocks/{}/attn/", l);
            const auto mlp = fmt::format("blocks/{}/mlp/", l);
            bind_linear(b.q, attn, "q", d, d);
            bind_linear(b.k, attn, "k", d, d);
            bind_linear(b.v, attn, "v", d, d);
            bind_linear(b.proj, attn, "proj", d, d);
            bind_linear(b.fc1, mlp, "fc1", d, spec.mlp_hidden());
            bind_linear(b.fc2, mlp, "fc2", spec.mlp_hidden(), d);
            b.c_mean = param(attn + "c_mean");
            b.v_bar = param(attn + "v_bar");
        }
        head_w = param("head/weight");
        head_b = param("head/bias");
    }

    std::size_t steps() const { return spec.time_steps; }

    // Records spikes s ([T, B, neurons]) of a population into the probe and counts.
    void record(const std::string& name, const float* s, std::size_t neurons, SpikeProbe* probe,
                FiringCounts* counts) {
        const std::size_t t_n = steps();
        if (probe) {
            auto& out = probe->spikes[name];
            out.assign(batch * t_n * neurons, 0);
            probe->neurons[name] = neurons;
            for (std::size_t t = 0; t < t_n; ++t)
                for (std::size_t b = 0; b < batch; ++b) {
                    const float* src = s + (t * batch + b) * neurons;
                    std::uint8_t* dst = out.data() + (b * t_n + t) * neurons;
                    for (std::size_t i = 0; i < neurons; ++i) dst[i] = src[i] > 0.5f ? 1 : 0;
                }
        }
        if (counts) {
            double sum = 0;
            const std::size_t total = t_n * batch * neurons;
            for (std::size_t i = 0; i < total; ++i) sum += s[i];
            counts->spikes[name] += sum;
            counts->neuron_steps[name] += static_cast<double>(total);
        }
    }

    void conv_unit_forward(ConvUnit& u, const float* in, std::size_t images, Buf& z) {
        const std::size_t size = rows_tb * u.cout * u.plane();
        u.y.resize(size);
        if (images == rows_tb) {
            conv_forward(in, images, u.cin, u.cout, u.h, u.w, u.weight, u.y.data());
        } else {  // static input: one conv per image, the same current at every step
            const std::size_t per = images * u.cout * u.plane();
            conv_forward(in, images, u.cin, u.cout, u.h, u.w, u.weight, u.y.data());
            for (std::size_t t = 1; t < steps(); ++t)
                std::copy(u.y.begin(), u.y.begin() + static_cast<std::ptrdiff_t>(per),
                          u.y.begin() + static_cast<std::ptrdiff_t>(t * per));
        }
        z.resize(size);
        u.bn.forward(u.y.data(), rows_tb, u.plane(), train, z.data());
        u.hmem.resize(size);
        u.s.resize(size);
        lif_forward(z.data(), steps(), size / steps(), lif, smooth, u.hmem.data(), u.s.data());
    }

    void linear_unit_forward(LinearUnit& u, const float* x, std::size_t rows, Buf& z,
                             const LifParams& p) {
        u.y.resize(rows * u.out);
        linear_forward(x, rows, u.in, u.out, u.weight, u.bias, u.y.data());
        z.resize(rows * u.out);
        u.bn.forward(u.y.data(), rows, 1, train, z.data());
        u.hmem.resize(rows * u.out);
        u.s.resize(rows * u.out);
        lif_forward(z.data(), steps(), rows * u.out / steps(), p, smooth, u.hmem.data(),
                    u.s.data());
    }

    // The attention core of block l: q, k, v spikes → attn_pre (input current of attn_lif).
    void attention_forward(Block& b) {
        const std::size_t n_tok = spec.tokens(), d = spec.dim, heads = spec.heads;
        const std::size_t dh = spec.head_dim(), rows = rows_tb * n_tok;
        const float scale = static_cast<float>(spec.attention.scale);
        const float kappa = static_cast<float>(spec.attention.kappa);
        const auto delta = deltas(b);
        b.attn_pre.resize(rows * d);  // every entry is written below
        std::vector<double> c_sum(rows_tb * heads, 0.0), nz(rows_tb * heads, 0.0);
        parallel_items(rows_tb * heads, 4, [&](std::size_t task) {
            const std::size_t tb = task / heads, hd = task % heads;
            thread_local Buf m, acc;
            m.resize(n_tok * n_tok);
            acc.resize(dh);  // D/H has no upper bound in the spec
            const float* q = b.q.s.data() + tb * n_tok * d + hd * dh;
            const float* k = b.k.s.data() + tb * n_tok * d + hd * dh;
            const float* v = b.v.s.data() + tb * n_tok * d + hd * dh;
            attention_map(q, k, delta[hd], kappa, m.data(), &c_sum[task], &nz[task]);
            float* out = b.attn_pre.data() + tb * n_tok * d + hd * dh;
            for (std::size_t i = 0; i < n_tok; ++i) {
                std::fill(acc.begin(), acc.end(), 0.f);
                for (std::size_t j = 0; j < n_tok; ++j) {
                    const float mij = m[i * n_tok + j];
                    if (mij == 0.f) continue;
                    const float* vr = v + j * d;
                    for (std::size_t c = 0; c < dh; ++c) acc[c] += mij * vr[c];
                }
                for (std::size_t c = 0; c < dh; ++c) out[i * d + c] = scale * acc[c];
            }
        });
        b.batch_c_mean.assign(heads, 0.0);
        b.nonzero = 0;
        for (std::size_t task = 0; task < rows_tb * heads; ++task) {
            b.batch_c_mean[task % heads] += c_sum[task];
            b.nonzero += nz[task];
        }
        for (auto& c : b.batch_c_mean) c /= double(rows_tb * n_tok * n_tok);
        // batch mean of s·B·V per channel (for V̄ and the batch shift)
        std::vector<double> ch(d, 0.0);
        chunked_reduce(rows, d, ch.data(), [&](std::size_t r0, std::size_t r1, double* part) {
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t c = 0; c < d; ++c) part[c] += b.attn_pre[r * d + c];
        });
        b.batch_out_mean.assign(d, 0.f);
        for (std::size_t c = 0; c < d; ++c)
            b.batch_out_mean[c] = static_cast<float>(ch[c] / double(rows));
        b.batch_shift = false;
        b.shift_used.assign(d, 0.f);
        if (variant.shift) {
            if (train && spec.attention.train_shift == TrainShift::batch) {
                b.batch_shift = true;
                b.shift_used = b.batch_out_mean;
            } else {
                std::copy(b.v_bar, b.v_bar + d, b.shift_used.begin());
            }
            parallel_items(rows, 256, [&](std::size_t r) {
                for (std::size_t c = 0; c < d; ++c) b.attn_pre[r * d + c] -= b.shift_used[c];
            });
        }
    }

    std::vector<float> deltas(const Block& b) const {
        std::vector<float> out(spec.heads, 0.f);
        if (variant.adaptive_threshold)
            for (std::size_t h = 0; h < spec.heads; ++h)
                out[h] = static_cast<float>(spec.attention.lambda) * b.c_mean[h];
        return out;
    }

    // M = C (ssa), κ·[C > Δ] (binary) or κ·softmax(C row) (smooth) for one head of one step.
    // Also returns p = softmax rows of C in `p` when not null.
    void attention_map(const float* q, const float* k, float delta, float kappa, float* m,
                       double* c_sum, double* nonzero, float* p = nullptr) const {
        const std::size_t n_tok = spec.tokens(), d = spec.dim, dh = spec.head_dim();
        double cs = 0, nz = 0;
        for (std::size_t i = 0; i < n_tok; ++i) {
            const float* qi = q + i * d;
            float* mrow = m + i * n_tok;
            for (std::size_t j = 0; j < n_tok; ++j) {
                const float* kj = k + j * d;
                float c = 0;
                for (std::size_t e = 0; e < dh; ++e) c += qi[e] * kj[e];
                mrow[j] = c;
                cs += c;
            }
            if (p || (variant.binary && smooth)) {
                float mx = mrow[0];
                for (std::size_t j = 1; j < n_tok; ++j) mx = std::max(mx, mrow[j]);
                thread_local Buf e;
                e.resize(n_tok);
                float z = 0;
                if (smooth) {  // exact exponentials for the finite-difference checks
                    for (std::size_t j = 0; j < n_tok; ++j) e[j] = std::exp(mrow[j] - mx);
                } else {
                    for (std::size_t j = 0; j < n_tok; ++j) e[j] = exp_fast(mrow[j] - mx);
                }
                for (std::size_t j = 0; j < n_tok; ++j) z += e[j];
                const float inv_z = 1.f / z;
                float* prow = p ? p + i * n_tok : nullptr;
                for (std::size_t j = 0; j < n_tok; ++j) {
                    const float pj = e[j] * inv_z;
                    if (prow) prow[j] = pj;
                    if (variant.binary && smooth) mrow[j] = kappa * pj;
                }
            }
            if (variant.binary && !smooth)
                for (std::size_t j = 0; j < n_tok; ++j) mrow[j] = mrow[j] > delta ? kappa : 0.f;
            for (std::size_t j = 0; j < n_tok; ++j) nz += mrow[j] != 0.f ? 1 : 0;
        }
        if (c_sum) *c_sum = cs;
        if (nonzero) *nonzero = nz;
    }

    // Full forward pass; returns logits [B, K].
    void forward(const float* input, std::size_t b_n, InputLayout layout, SpikeProbe* probe,
                 FiringCounts* counts) {
        spec.validate();
        if (b_n == 0) throw ConfigError("forward: the batch must hold at least one sample");
        batch = b_n;
        rows_tb = steps() * batch;
        static_input = layout == InputLayout::static_image;
        const std::size_t in_plane = spec.in_channels * spec.in_height * spec.in_width;
        if (static_input) {
            input0.assign(input, input + batch * in_plane);
        } else {  // [B, T, …] → [T, B, …]
            input0.resize(rows_tb * in_plane);
            for (std::size_t b = 0; b < batch; ++b)
                for (std::size_t t = 0; t < steps(); ++t)
                    std::copy(
                        input + (b * steps() + t) * in_plane,
                        input + (b * steps() + t + 1) * in_plane,
                        input0.begin() + static_cast<std::ptrdiff_t>((t * batch + b) * in_plane));
        }
        Buf z;
        const float* x = input0.data();
        std::size_t images = static_input ? batch : rows_tb;
        for (std::size_t i = 0; i < 4; ++i) {
            auto& u = stages[i];
            conv_unit_forward(u, x, images, z);
            record(u.name, u.s.data(), u.cout * u.plane(), probe, counts);
            images = rows_tb;
            if (pool[i]) {
                const std::size_t planes = rows_tb * u.cout;
                pooled[i].resize(planes * pooled_size(u.h) * pooled_size(u.w));
                argmax[i].resize(pooled[i].size());
                maxpool_forward(u.s.data(), planes, u.h, u.w, pooled[i].data(), argmax[i].data());
                x = pooled[i].data();
            } else {
                x = u.s.data();
            }
        }
        conv_unit_forward(rpe, x, rows_tb, z);
        record(rpe.name, rpe.s.data(), rpe.cout * rpe.plane(), probe, counts);
        const std::size_t n_tok = spec.tokens(), d = spec.dim, rows = rows_tb * n_tok;
        tokens0.resize(rows * d);
        parallel_items(rows_tb, 4, [&](std::size_t tb) {
            Buf sum(d * n_tok);
            for (std::size_t i = 0; i < d * n_tok; ++i)
                sum[i] = x[tb * d * n_tok + i] + rpe.s[tb * d * n_tok + i];
            kernels::transpose(d, n_tok, sum.data(), tokens0.data() + tb * n_tok * d);
        });
        Buf stream = tokens0;
        for (std::size_t l = 0; l < blocks.size(); ++l) {
            auto& b = blocks[l];
            b.x_in = stream;
            for (auto* u : {&b.q, &b.k, &b.v}) {
                linear_unit_forward(*u, stream.data(), rows, z, lif);
                record(u->name, u->s.data(), n_tok * d, probe, counts);
            }
            attention_forward(b);
            if (counts) {
                if (counts->attn_nonzero.size() < blocks.size()) {
                    counts->attn_nonzero.resize(blocks.size(), 0);
                    counts->attn_entries.resize(blocks.size(), 0);
                }
                counts->attn_nonzero[l] += b.nonzero;
                counts->attn_entries[l] += double(rows_tb * spec.heads * n_tok * n_tok);
            }
            if (probe) {
                auto& cur = probe->currents[fmt::format("blocks/{}/attn/attn_input", l)];
                cur.resize(rows * d);
                const std::size_t per = n_tok * d;
                for (std::size_t t = 0; t < steps(); ++t)
                    for (std::size_t bi = 0; bi < batch; ++bi)
                        std::copy(
                            b.attn_pre.begin() +
                                static_cast<std::ptrdiff_t>((t * batch + bi) * per),
                            b.attn_pre.begin() +
                                static_cast<std::ptrdiff_t>((t * batch + bi + 1) * per),
                            cur.begin() + static_cast<std::ptrdiff_t>((bi * steps() + t) * per));
            }
            b.attn_h.resize(rows * d);
            b.attn_s.resize(rows * d);
            lif_forward(b.attn_pre.data(), steps(), rows * d / steps(), attn_lif, smooth,
                        b.attn_h.data(), b.attn_s.data());
            record(fmt::format("blocks/{}/attn/attn_lif", l), b.attn_s.data(), n_tok * d, probe,
                   counts);
            linear_unit_forward(b.proj, b.attn_s.data(), rows, z, lif);
            record(b.proj.name, b.proj.s.data(), n_tok * d, probe, counts);
            for (std::size_t i = 0; i < rows * d; ++i) stream[i] += b.proj.s[i];
            b.x_mid = stream;
            linear_unit_forward(b.fc1, stream.data(), rows, z, lif);
            record(b.fc1.name, b.fc1.s.data(), n_tok * spec.mlp_hidden(), probe, counts);
            linear_unit_forward(b.fc2, b.fc1.s.data(), rows, z, lif);
            record(b.fc2.name, b.fc2.s.data(), n_tok * d, probe, counts);
            for (std::size_t i = 0; i < rows * d; ++i) stream[i] += b.fc2.s[i];
        }
        // head: mean over tokens and steps, linear
        feat.assign(batch * d, 0.f);
        const float inv = 1.f / static_cast<float>(steps() * n_tok);
        for (std::size_t t = 0; t < steps(); ++t)
            for (std::size_t bi = 0; bi < batch; ++bi)
                for (std::size_t n = 0; n < n_tok; ++n) {
                    const float* src = stream.data() + ((t * batch + bi) * n_tok + n) * d;
                    for (std::size_t c = 0; c < d; ++c) feat[bi * d + c] += src[c] * inv;
                }
        const std::size_t k_n = spec.classes;
        logits.assign(batch * k_n, 0.f);
        for (std::size_t bi = 0; bi < batch; ++bi)
            for (std::size_t j = 0; j < k_n; ++j) {
                float acc = head_b[j];
                for (std::size_t c = 0; c < d; ++c) acc += head_w[j * d + c] * feat[bi * d + c];
                logits[bi * k_n + j] = acc;
            }
    }

    // Cross-entropy with label smoothing; fills dlogits (mean over the batch) when not null.
    double loss(const int* labels, double smoothing, std::size_t* correct, Buf* dlogits) const {
        const std::size_t k_n = spec.classes;
        double total = 0;
        std::size_t ok = 0;
        if (dlogits) dlogits->assign(batch * k_n, 0.f);
        for (std::size_t bi = 0; bi < batch; ++bi) {
            const int label = labels[bi];
            if (label < 0 || static_cast<std::size_t>(label) >= k_n)
                throw ConfigError(
                    fmt::format("label {} of sample {} is outside [0, {})", label, bi, k_n));
            const float* lg = logits.data() + bi * k_n;
            const std::size_t arg = static_cast<std::size_t>(std::max_element(lg, lg + k_n) - lg);
            ok += arg == static_cast<std::size_t>(label);
            double mx = lg[arg], z = 0;
            for (std::size_t j = 0; j < k_n; ++j) z += std::exp(lg[j] - mx);
            const double log_z = mx + std::log(z);
            for (std::size_t j = 0; j < k_n; ++j) {
                const double target =
                    (j == static_cast<std::size_t>(label) ? 1.0 - smoothing : 0.0) +
                    smoothing / double(k_n);
                const double logp = lg[j] - log_z;
                total -= target * logp;
                if (dlogits)
                    (*dlogits)[bi * k_n + j] =
                        static_cast<float>((std::exp(logp) - target) / double(batch));
            }
        }
        if (correct) *correct = ok;
        return total / double(batch);
    }

    // ------------------------------------------------------------ backward

    // ds (overwritten as scratch) → gradient of the conv unit's input (din may be null).
    void conv_unit_backward(ConvUnit& u, const float* in, std::size_t images, Buf& ds, float* din) {
        const std::size_t size = rows_tb * u.cout * u.plane();
        Buf& dz = scratch_dz;
        dz.resize(size);
        lif_backward(u.hmem.data(), u.s.data(), ds.data(), steps(), size / steps(), lif, smooth,
                     dz.data());
        u.bn.backward(u.y.data(), dz.data(), rows_tb, u.plane(), ds.data());
        if (images != rows_tb) {  // static input: the conv output is shared by all steps
            const std::size_t per = images * u.cout * u.plane();
            for (std::size_t t = 1; t < steps(); ++t)
                for (std::size_t i = 0; i < per; ++i) ds[i] += ds[t * per + i];
        }
        conv_backward(in, ds.data(), images, u.cin, u.cout, u.h, u.w, u.weight, u.grad_weight, din);
    }

    // ds → gradient of the unit's input written to dx (overwritten).
    void linear_unit_backward(LinearUnit& u, const float* x, std::size_t rows, const Buf& ds,
                              const LifParams& p, Buf& dx) {
        Buf& dz = scratch_dz;
        Buf& dy = scratch_dy;
        dz.resize(rows * u.out);
        dy.resize(rows * u.out);
        lif_backward(u.hmem.data(), u.s.data(), ds.data(), steps(), rows * u.out / steps(), p,
                     smooth, dz.data());
        u.bn.backward(u.y.data(), dz.data(), rows, 1, dy.data());
        dx.resize(rows * u.in);
        linear_backward(x, dy.data(), rows, u.in, u.out, u.weight, u.grad_weight, u.grad_bias,
                        dx.data());
    }

    // d attn_pre → dq, dk, dv (spike gradients).
    void attention_backward(Block& b, const Buf& dpre, Buf& dq, Buf& dk, Buf& dv) {
        const std::size_t n_tok = spec.tokens(), d = spec.dim, heads = spec.heads;
        const std::size_t dh = spec.head_dim(), rows = rows_tb * n_tok;
        const float scale = static_cast<float>(spec.attention.scale);
        const float kappa = static_cast<float>(spec.attention.kappa);
        thread_local Buf dout_centred;
        const Buf* dout_ptr = &dpre;
        if (b.batch_shift) {  // pre = out − mean(out): centre the gradient
            dout_centred = dpre;
            dout_ptr = &dout_centred;
            Buf& dout = dout_centred;
            std::vector<double> ch(d, 0.0);
            chunked_reduce(rows, d, ch.data(), [&](std::size_t r0, std::size_t r1, double* part) {
                for (std::size_t r = r0; r < r1; ++r)
                    for (std::size_t c = 0; c < d; ++c) part[c] += dpre[r * d + c];
            });
            Buf mean(d);
            for (std::size_t c = 0; c < d; ++c) mean[c] = static_cast<float>(ch[c] / double(rows));
            parallel_items(rows, 256, [&](std::size_t r) {
                for (std::size_t c = 0; c < d; ++c) dout[r * d + c] -= mean[c];
            });
        }
        dq.assign(rows * d, 0.f);
        dk.assign(rows * d, 0.f);
        dv.assign(rows * d, 0.f);
        const auto delta = deltas(b);
        parallel_items(rows_tb * heads, 4, [&](std::size_t task) {
            const std::size_t tb = task / heads, hd = task % heads;
            const std::size_t off = tb * n_tok * d + hd * dh;
            const float* q = b.q.s.data() + off;
            const float* k = b.k.s.data() + off;
            const float* v = b.v.s.data() + off;
            const float* go = dout_ptr->data() + off;
            thread_local Buf m, p, dm;
            m.resize(n_tok * n_tok);
            dm.resize(n_tok * n_tok);
            if (variant.binary) p.resize(n_tok * n_tok);
            attention_map(q, k, delta[hd], kappa, m.data(), nullptr, nullptr,
                          variant.binary ? p.data() : nullptr);
            float* gv = dv.data() + off;
            for (std::size_t i = 0; i < n_tok; ++i)
                for (std::size_t j = 0; j < n_tok; ++j) {
                    const float mij = m[i * n_tok + j];
                    float acc = 0;
                    for (std::size_t c = 0; c < dh; ++c) {
                        acc += go[i * d + c] * v[j * d + c];
                        gv[j * d + c] += scale * mij * go[i * d + c];
                    }
                    dm[i * n_tok + j] = scale * acc;
                }
            // dm → dC
            if (variant.binary) {
                for (std::size_t i = 0; i < n_tok; ++i) {
                    float* row = dm.data() + i * n_tok;
                    const float* prow = p.data() + i * n_tok;
                    if (smooth) {
                        float dot = 0;
                        for (std::size_t j = 0; j < n_tok; ++j) dot += prow[j] * row[j];
                        for (std::size_t j = 0; j < n_tok; ++j)
                            row[j] = kappa * prow[j] * (row[j] - dot);
                    } else {
                        for (std::size_t j = 0; j < n_tok; ++j) row[j] *= prow[j] * (1.f - prow[j]);
                    }
                }
            }
            float* gq = dq.data() + off;
            float* gk = dk.data() + off;
            for (std::size_t i = 0; i < n_tok; ++i)
                for (std::size_t j = 0; j < n_tok; ++j) {
                    const float g = dm[i * n_tok + j];
                    if (g == 0.f) continue;
                    for (std::size_t c = 0; c < dh; ++c) {
                        gq[i * d + c] += g * k[j * d + c];
                        gk[j * d + c] += g * q[i * d + c];
                    }
                }
        });
    }

    void backward(const Buf& dlogits) {
        const std::size_t n_tok = spec.tokens(), d = spec.dim, rows = rows_tb * n_tok;
        const std::size_t k_n = spec.classes;
        float* ghw = grad("head/weight");
        float* ghb = grad("head/bias");
        Buf dfeat(batch * d, 0.f);
        for (std::size_t bi = 0; bi < batch; ++bi)
            for (std::size_t j = 0; j < k_n; ++j) {
                const float g = dlogits[bi * k_n + j];
                ghb[j] += g;
                for (std::size_t c = 0; c < d; ++c) {
                    ghw[j * d + c] += g * feat[bi * d + c];
                    dfeat[bi * d + c] += g * head_w[j * d + c];
                }
            }
        const float inv = 1.f / static_cast<float>(steps() * n_tok);
        bw_dx.resize(rows * d);
        for (std::size_t t = 0; t < steps(); ++t)
            for (std::size_t bi = 0; bi < batch; ++bi)
                for (std::size_t n = 0; n < n_tok; ++n)
                    for (std::size_t c = 0; c < d; ++c)
                        bw_dx[((t * batch + bi) * n_tok + n) * d + c] = dfeat[bi * d + c] * inv;
        for (std::size_t l = blocks.size(); l-- > 0;) {
            auto& b = blocks[l];
            // x_out = x_mid + fc2(fc1(x_mid))
            linear_unit_backward(b.fc2, b.fc1.s.data(), rows, bw_dx, lif, bw_g1);
            linear_unit_backward(b.fc1, b.x_mid.data(), rows, bw_g1, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
            // x_mid = x_in + proj(attn_lif(attention(q, k, v)))
            linear_unit_backward(b.proj, b.attn_s.data(), rows, bw_dx, lif, bw_g1);
            bw_dpre.resize(rows * d);
            lif_backward(b.attn_h.data(), b.attn_s.data(), bw_g1.data(), steps(),
                         rows * d / steps(), attn_lif, smooth, bw_dpre.data());
            attention_backward(b, bw_dpre, bw_dq, bw_dk, bw_dv);
            linear_unit_backward(b.q, b.x_in.data(), rows, bw_dq, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
            linear_unit_backward(b.k, b.x_in.data(), rows, bw_dk, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
            linear_unit_backward(b.v, b.x_in.data(), rows, bw_dv, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
        }
        // tokens → channel-major [T·B, D, N]; the stem output feeds the RPE and the residual
        bw_dstem.resize(rows * d);
        parallel_items(rows_tb, 4, [&](std::size_t tb) {
            kernels::transpose(n_tok, d, bw_dx.data() + tb * n_tok * d,
                               bw_dstem.data() + tb * n_tok * d);
        });
        const float* x3 = pool[3] ? pooled[3].data() : stages[3].s.data();
        bw_ds_rpe = bw_dstem;
        bw_drpe_in.resize(rows * d);
        conv_unit_backward(rpe, x3, rows_tb, bw_ds_rpe, bw_drpe_in.data());
        for (std::size_t i = 0; i < rows * d; ++i) bw_dstem[i] += bw_drpe_in[i];
        const Buf* dcur = &bw_dstem;
        for (std::size_t i = 4; i-- > 0;) {
            auto& u = stages[i];
            Buf& dspi = bw_dsp[i];
            dspi.resize(rows_tb * u.cout * u.plane());
            if (pool[i])
                maxpool_backward(dcur->data(), argmax[i].data(), rows_tb * u.cout, u.h, u.w,
                                 dspi.data());
            else
                std::copy(dcur->begin(), dcur->end(), dspi.begin());
            const bool first = i == 0;
            const float* in = first ? input0.data()
                                    : (pool[i - 1] ? pooled[i - 1].data() : stages[i - 1].s.data());
            const std::size_t images = first && static_input ? batch : rows_tb;
            if (!first) bw_din[i].resize(rows_tb * u.cin * u.plane());
            conv_unit_backward(u, in, images, dspi, first ? nullptr : bw_din[i].data());
            dcur = &bw_din[i];
        }
    }

    void update_running() {
        for (auto& u : stages) u.bn.update_running();
        rpe.bn.update_running();
        const float mu = static_cast<float>(spec.attention.momentum);
        for (auto& b : blocks) {
            for (auto* u : {&b.q, &b.k, &b.v, &b.proj, &b.fc1, &b.fc2}) u->bn.update_running();
            for (std::size_t h = 0; h < spec.heads; ++h)
                b.c_mean[h] = mu * b.c_mean[h] + (1 - mu) * static_cast<float>(b.batch_c_mean[h]);
            for (std::size_t c = 0; c < spec.dim; ++c)
                b.v_bar[c] = mu * b.v_bar[c] + (1 - mu) * b.batch_out_mean[c];
        }
    }
};

DenseSpikformer::DenseSpikformer(const ModelWeights& weights)
    : impl_(std::make_unique<Impl>(weights)) {}

DenseSpikformer::~DenseSpikformer() = default;

const ModelSpec& DenseSpikformer::spec() const {
    return impl_->spec;
}
const ModelWeights& DenseSpikformer::weights() const {
    return impl_->w;
}
ModelWeights& DenseSpikformer::mutable_weights() {
    return impl_->w;
}
const std::map<std::string, Tensor>& DenseSpikformer::gradients() const {
    return impl_->grads;
}

std::vector<float> DenseSpikformer::forward_eval(const float* input, std::size_t batch,
                                                 SpikeProbe* probe, InputLayout layout,
                                                 FiringCounts* counts) {
    impl_->train = false;
    impl_->smooth = false;
    if (probe) {
        probe->spikes.clear();
        probe->neurons.clear();
        probe->currents.clear();
    }
    impl_->forward(input, batch, layout, probe, counts);
    return impl_->logits;
}

StepResult DenseSpikformer::train_step(const float* input, const int* labels, std::size_t batch,
                                       const TrainOptions& options, InputLayout layout) {
    auto& im = *impl_;
    im.train = true;
    im.smooth = options.smooth;
    for (auto& [name, g] : im.grads) std::fill(g.data.begin(), g.data.end(), 0.f);
    im.forward(input, batch, layout, nullptr, nullptr);
    StepResult r;
    Buf dlogits;
    r.loss = im.loss(labels, options.label_smoothing, &r.correct, &dlogits);
    const std::size_t classes = im.spec.classes;
    for (std::size_t bi = 0; bi < batch; ++bi)
        r.nonfinite_samples +=
            std::any_of(im.logits.begin() + static_cast<std::ptrdiff_t>(bi * classes),
                        im.logits.begin() + static_cast<std::ptrdiff_t>((bi + 1) * classes),
                        [](float v) { return !std::isfinite(v); });
    im.backward(dlogits);
    if (options.update_running) im.update_running();
    return r;
}

double DenseSpikformer::train_loss(const float* input, const int* labels, std::size_t batch,
                                   const TrainOptions& options, InputLayout layout) {
    auto& im = *impl_;
    im.train = true;
    im.smooth = options.smooth;
    im.forward(input, batch, layout, nullptr, nullptr);
    return im.loss(labels, options.label_smoothing, nullptr, nullptr);
}

std::vector<float> DenseSpikformer::delta(std::size_t block) const {
    if (block >= impl_->blocks.size())
        throw ConfigError(fmt::format("delta: block {} does not exist (the model has {})", block,
                                      impl_->blocks.size()));
    return impl_->deltas(impl_->blocks[block]);
}

std::vector<float> DenseSpikformer::v_bar(std::size_t block) const {
    if (block >= impl_->blocks.size())
        throw ConfigError(fmt::format("v_bar: block {} does not exist (the model has {})", block,
                                      impl_->blocks.size()));
    const float* v = impl_->blocks[block].v_bar;
    return {v, v + impl_->spec.dim};
}

std::vector<std::string> DenseSpikformer::population_names() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < 4; ++i) out.push_back(fmt::format("sps/lif{}", i));
    out.push_back("sps/rpe_lif");
    for (std::size_t l = 0; l < impl_->spec.blocks; ++l) {
        for (const char* n : {"q_lif", "k_lif", "v_lif", "attn_lif", "proj_lif"})
            out.push_back(fmt::format("blocks/{}/attn/{}", l, n));
        for (const char* n : {"fc1_lif", "fc2_lif"})
            out.push_back(fmt::format("blocks/{}/mlp/{}", l, n));
    }
    return out;
}

ModelWeights init_weights(const ModelSpec& spec, std::uint64_t seed) {
    auto w = zero_weights(spec);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.02);
    for (const auto& p : parameter_layout(spec)) {
        if (p.kind != ParameterInfo::Kind::weight) continue;
        auto& t = w.at(p.name);
        if (p.shape.size() == 4) {  // conv: PyTorch's default U(±1/√fan_in)
            const double bound = 1.0 / std::sqrt(double(p.shape[1] * 9));
            std::uniform_real_distribution<double> uni(-bound, bound);
            for (auto& v : t.data) v = static_cast<float>(uni(rng));
        } else {  // linear: truncated normal, std 0.02, cut at ±2 std
            for (auto& v : t.data) {
                double x;
                do x = normal(rng);
                while (std::abs(x) > 0.04);
                v = static_cast<float>(x);
            }
        }
    }
    return w;
}

}  // namespace evformer::models
