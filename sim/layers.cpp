#include "evformer/sim/layers.hpp"

#include <algorithm>
#include <string>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "evformer/error.hpp"

namespace evformer::sim {
namespace {

#if defined(__AVX512F__)
// a[j] += count·row[16j…16j+15] for j < V: one event's fan-out into V registers (a plain add
// for count 1, so count-1 sums stay bit-identical to the scalar row loop).
template <std::size_t V>
inline void add_event_row(__m512 (&a)[V], const float* row, std::uint32_t count) {
    if (count == 1) {
        for (std::size_t j = 0; j < V; ++j)
            a[j] = _mm512_add_ps(a[j], _mm512_loadu_ps(row + 16 * j));
    } else {
        const __m512 m = _mm512_set1_ps(float(count));
        for (std::size_t j = 0; j < V; ++j)
            a[j] = _mm512_add_ps(a[j], _mm512_mul_ps(m, _mm512_loadu_ps(row + 16 * j)));
    }
}
#endif

// acc[k] += row[k] for k < n: the fan-out of one event (count 1).
inline void add_row(float* __restrict acc, const float* __restrict row, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) acc[k] += row[k];
}

// acc[k] += m·row[k]: the fan-out of a graded event or of a real-valued input.
inline void add_scaled_row(float* __restrict acc, const float* __restrict row, float m,
                           std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) acc[k] += m * row[k];
}

void require(bool ok, const char* what, const std::string& rule) {
    if (!ok) throw ConfigError(std::string(what) + ": " + rule);
}

}  // namespace

std::size_t lif_step(const LifParams& p, float* v, const float* input, std::size_t n,
                     EventList& out) {
    const std::size_t before = out.size();
    // One sweep: update, compare, compress-store the indices of the neurons that fire, reset.
    // The arithmetic is the scalar rule's, operation for operation (no FMA, same division).
    out.neuron.resize(before + n);
    std::uint32_t* idx = out.neuron.data() + before;
    std::size_t k = 0, i = 0;
#if defined(__AVX512F__)
    const __m512 vtau = _mm512_set1_ps(p.tau), vth = _mm512_set1_ps(p.v_threshold),
                 vreset = _mm512_set1_ps(p.v_reset);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 16 <= n; i += 16) {
        const __m512 vv = _mm512_loadu_ps(v + i);
        const __m512 x = _mm512_loadu_ps(input + i);
        const __m512 u =
            _mm512_add_ps(vv, _mm512_div_ps(_mm512_sub_ps(x, _mm512_sub_ps(vv, vreset)), vtau));
        const __mmask16 fire = _mm512_cmp_ps_mask(u, vth, _CMP_GE_OQ);
        _mm512_storeu_ps(v + i, _mm512_mask_blend_ps(fire, u, vreset));
        _mm512_mask_compressstoreu_epi32(idx + k, fire, lane);
        k += static_cast<std::size_t>(__builtin_popcount(fire));
        lane = _mm512_add_epi32(lane, step);
    }
#endif
    for (; i < n; ++i) {
        const float u = lif_charge(v[i], input[i], p);
        const bool fire = fires(u, p);
        idx[k] = static_cast<std::uint32_t>(i);
        k += fire;
        v[i] = after_spike(u, fire, p);
    }
    out.neuron.resize(before + k);
    out.count.resize(before + k, 1);
    return k;
}

void Conv3x3::validate(const char* what) const {
    require(in_channels > 0 && out_channels > 0 && height > 0 && width > 0, what,
            "channels, height and width must be positive");
    require(weight_t.size() == in_channels * 9 * out_channels, what,
            "weight holds " + std::to_string(weight_t.size()) +
                " values, expected in·9·out = " + std::to_string(in_channels * 9 * out_channels));
    require(bias.size() == out_channels, what, "bias must have one value per output channel");
}

void Conv3x3::init(float* acc) const {
    const std::size_t positions = height * width;
    for (std::size_t p = 0; p < positions; ++p)
        std::copy(bias.begin(), bias.end(), acc + p * out_channels);
}

std::uint64_t Conv3x3::fan_out(std::size_t y, std::size_t x) const {
    const std::uint64_t rows = 1 + (y > 0) + (y + 1 < height);
    const std::uint64_t cols = 1 + (x > 0) + (x + 1 < width);
    return rows * cols * out_channels;
}

namespace {

#if defined(__AVX512F__)
// Event conv for out_channels = 16·V. Consecutive events at the same input position form a
// run; for each tap the run's rows are summed into the output row held in registers (loaded
// and stored once per run and tap). Each output element still receives its contributions in
// event-list order, so the sums are bit-identical to the row-by-row loop. Border clipping is a
// precomputed tap range. Returns the SOPs.
template <std::size_t V>
std::uint64_t conv_kernel(const Conv3x3& conv, const EventList& in, float* acc) {
    constexpr std::size_t co = 16 * V;
    const std::size_t ci = conv.in_channels, height = conv.height, width = conv.width;
    const std::uint32_t* neuron = in.neuron.data();
    const std::uint16_t* count = in.count.data();
    const std::size_t events = in.size();
    const float* weight = conv.weight_t.data();
    std::uint64_t sops = 0;
    for (std::size_t e0 = 0; e0 < events;) {
        const std::size_t pos = neuron[e0] / ci, base = pos * ci;
        std::size_t e1 = e0 + 1;
        std::uint64_t spikes = count[e0];
        while (e1 < events && neuron[e1] - base < ci) spikes += count[e1++];
        const std::size_t y = pos / width, x = pos - y * width;
        const std::size_t ky_lo = y + 1 < height ? 0 : 1, ky_hi = y > 0 ? 2 : 1;
        const std::size_t kx_lo = x + 1 < width ? 0 : 1, kx_hi = x > 0 ? 2 : 1;
        sops += spikes * (ky_hi - ky_lo + 1) * (kx_hi - kx_lo + 1) * co;
        for (std::size_t ky = ky_lo; ky <= ky_hi; ++ky)
            for (std::size_t kx = kx_lo; kx <= kx_hi; ++kx) {
                float* out = acc + ((y + 1 - ky) * width + (x + 1 - kx)) * co;
                const float* tap = weight + (ky * 3 + kx) * co;
                __m512 a[V];
                for (std::size_t j = 0; j < V; ++j) a[j] = _mm512_loadu_ps(out + 16 * j);
                for (std::size_t e = e0; e < e1; ++e) {
                    add_event_row<V>(a, tap + (neuron[e] - base) * 9 * co, count[e]);
                }
                for (std::size_t j = 0; j < V; ++j) _mm512_storeu_ps(out + 16 * j, a[j]);
            }
        e0 = e1;
    }
    return sops;
}
#endif

}  // namespace

std::uint64_t Conv3x3::propagate(const EventList& in, float* acc) const {
#if defined(__AVX512F__)
    switch (out_channels) {
        case 16:
            return conv_kernel<1>(*this, in, acc);
        case 32:
            return conv_kernel<2>(*this, in, acc);
        case 64:
            return conv_kernel<4>(*this, in, acc);
        case 128:
            return conv_kernel<8>(*this, in, acc);
        default:
            break;
    }
#endif
    const std::size_t co = out_channels, ci = in_channels;
    std::uint64_t sops = 0;
    for (std::size_t e = 0; e < in.size(); ++e) {
        const std::size_t n = in.neuron[e];
        const std::size_t c = n % ci, pos = n / ci;
        const std::size_t y = pos / width, x = pos % width;
        const std::uint16_t m = in.count[e];
        // Input (y, x) reaches output (y + 1 − ky, x + 1 − kx) through tap (ky, kx).
        const std::size_t ky_lo = y + 1 < height ? 0 : 1, ky_hi = y > 0 ? 2 : 1;
        const std::size_t kx_lo = x + 1 < width ? 0 : 1, kx_hi = x > 0 ? 2 : 1;
        const float* w = weight_t.data() + c * 9 * co;
        for (std::size_t ky = ky_lo; ky <= ky_hi; ++ky) {
            const std::size_t oy = y + 1 - ky;
            for (std::size_t kx = kx_lo; kx <= kx_hi; ++kx) {
                const std::size_t ox = x + 1 - kx;
                float* out = acc + (oy * width + ox) * co;
                const float* row = w + (ky * 3 + kx) * co;
                if (m == 1)
                    add_row(out, row, co);
                else
                    add_scaled_row(out, row, float(m), co);
            }
        }
        sops += m * fan_out(y, x);
    }
    return sops;
}

std::uint64_t Conv3x3::propagate_dense(const float* in, float* acc) const {
    const std::size_t co = out_channels, ci = in_channels;
    std::uint64_t macs = 0;
    for (std::size_t y = 0; y < height; ++y) {
        for (std::size_t x = 0; x < width; ++x) {
            const std::size_t ky_lo = y + 1 < height ? 0 : 1, ky_hi = y > 0 ? 2 : 1;
            const std::size_t kx_lo = x + 1 < width ? 0 : 1, kx_hi = x > 0 ? 2 : 1;
            for (std::size_t c = 0; c < ci; ++c) {
                const float value = in[(y * width + x) * ci + c];
                if (value == 0.f) continue;
                const float* w = weight_t.data() + c * 9 * co;
                for (std::size_t ky = ky_lo; ky <= ky_hi; ++ky)
                    for (std::size_t kx = kx_lo; kx <= kx_hi; ++kx)
                        add_scaled_row(acc + ((y + 1 - ky) * width + (x + 1 - kx)) * co,
                                       w + (ky * 3 + kx) * co, value, co);
                macs += fan_out(y, x);
            }
        }
    }
    return macs;
}

void TokenLinear::validate(const char* what) const {
    require(tokens > 0 && in_features > 0 && out_features > 0, what,
            "tokens and features must be positive");
    require(weight_t.size() == in_features * out_features, what,
            "weight holds " + std::to_string(weight_t.size()) +
                " values, expected in·out = " + std::to_string(in_features * out_features));
    require(bias.size() == out_features, what, "bias must have one value per output feature");
}

void TokenLinear::init(float* acc) const {
    for (std::size_t n = 0; n < tokens; ++n)
        std::copy(bias.begin(), bias.end(), acc + n * out_features);
}

std::uint64_t TokenLinear::propagate(const EventList& in, float* acc) const {
    const std::size_t fi = in_features, fo = out_features;
    std::uint64_t spikes = 0;
    for (std::size_t e = 0; e < in.size(); ++e) {
        const std::size_t n = in.neuron[e];
        const std::uint16_t m = in.count[e];
        float* out = acc + (n / fi) * fo;
        const float* row = weight_t.data() + (n % fi) * fo;
        if (m == 1)
            add_row(out, row, fo);
        else
            add_scaled_row(out, row, float(m), fo);
        spikes += m;
    }
    return spikes * fo;
}

std::uint64_t TokenLinear::propagate_dense(const float* in, float* acc) const {
    const std::size_t fi = in_features, fo = out_features;
    std::uint64_t macs = 0;
    for (std::size_t n = 0; n < tokens; ++n)
        for (std::size_t i = 0; i < fi; ++i) {
            const float x = in[n * fi + i];
            if (x == 0.f) continue;
            add_scaled_row(acc + n * fo, weight_t.data() + i * fo, x, fo);
            macs += fo;
        }
    return macs;
}

namespace {

#if defined(__AVX512F__)
// LIF of 16 neurons starting at `first` (same arithmetic as lif_step), compress-storing the
// indices of the neurons that fire at idx[k…]; returns the new k.
inline std::size_t lif16(__m512 x, float* v, std::uint32_t first, __m512 vtau, __m512 vth,
                         __m512 vreset, std::uint32_t* idx, std::size_t k) {
    const __m512 vv = _mm512_loadu_ps(v);
    const __m512 u =
        _mm512_add_ps(vv, _mm512_div_ps(_mm512_sub_ps(x, _mm512_sub_ps(vv, vreset)), vtau));
    const __mmask16 fire = _mm512_cmp_ps_mask(u, vth, _CMP_GE_OQ);
    _mm512_storeu_ps(v, _mm512_mask_blend_ps(fire, u, vreset));
    const __m512i lane =
        _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first)),
                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    _mm512_mask_compressstoreu_epi32(idx + k, fire, lane);
    return k + static_cast<std::size_t>(__builtin_popcount(fire));
}

// The fused token loop for out_features = 16·V: V accumulators in registers per token.
template <std::size_t V>
std::size_t linear_lif_kernel(const TokenLinear& lin, const EventList& in, const LifParams& p,
                              float* v, std::uint32_t* idx) {
    const std::size_t fi = lin.in_features, fo = 16 * V;
    const __m512 vtau = _mm512_set1_ps(p.tau), vth = _mm512_set1_ps(p.v_threshold),
                 vreset = _mm512_set1_ps(p.v_reset);
    __m512 bias[V];
    for (std::size_t j = 0; j < V; ++j) bias[j] = _mm512_loadu_ps(lin.bias.data() + 16 * j);
    const std::uint32_t* neuron = in.neuron.data();
    const std::uint16_t* count = in.count.data();
    const std::size_t events = in.size();
    const float* w = lin.weight_t.data();
    std::size_t e = 0, k = 0;
    for (std::size_t n = 0; n < lin.tokens; ++n) {
        __m512 a[V];
        for (std::size_t j = 0; j < V; ++j) a[j] = bias[j];
        const std::size_t lo = n * fi, hi = lo + fi;
        for (; e < events && neuron[e] < hi; ++e) {
            add_event_row<V>(a, w + (neuron[e] - lo) * fo, count[e]);
        }
        float* vn = v + n * fo;
        for (std::size_t j = 0; j < V; ++j)
            k = lif16(a[j], vn + 16 * j, static_cast<std::uint32_t>(n * fo + 16 * j), vtau, vth,
                      vreset, idx, k);
    }
    return k;
}
#endif

}  // namespace

std::uint64_t TokenLinear::propagate_lif(const EventList& in, const LifParams& p, float* v,
                                         EventList& out, float* acc) const {
#if defined(__AVX512F__)
    const std::size_t fi = in_features, fo = out_features;
    // Grouped by ascending token, checked without divisions: token n's events lie in
    // [n·fi, (n+1)·fi) and come before token n+1's.
    bool grouped = true;
    std::uint64_t spikes = 0;
    {
        std::size_t e = 0;
        const std::size_t events = in.size();
        for (std::size_t lo = 0; lo < tokens * fi && grouped; lo += fi)
            for (; e < events && in.neuron[e] < lo + fi; ++e) {
                grouped &= in.neuron[e] >= lo;
                spikes += in.count[e];
            }
        grouped &= e == events;
    }
    if (grouped && (fo == 64 || fo == 256 || fo == 16 || fo == 32 || fo == 128)) {
        const std::size_t before = out.size();
        out.neuron.resize(before + tokens * fo);
        std::uint32_t* idx = out.neuron.data() + before;
        std::size_t k = 0;
        switch (fo) {
            case 16:
                k = linear_lif_kernel<1>(*this, in, p, v, idx);
                break;
            case 32:
                k = linear_lif_kernel<2>(*this, in, p, v, idx);
                break;
            case 64:
                k = linear_lif_kernel<4>(*this, in, p, v, idx);
                break;
            case 128:
                k = linear_lif_kernel<8>(*this, in, p, v, idx);
                break;
            default:
                k = linear_lif_kernel<16>(*this, in, p, v, idx);
                break;
        }
        out.neuron.resize(before + k);
        out.count.resize(before + k, 1);
        return spikes * fo;
    }
#endif
    init(acc);
    const std::uint64_t sops = propagate(in, acc);
    lif_step(p, v, acc, outputs(), out);
    return sops;
}

SpikeMaxPool::SpikeMaxPool(std::size_t channels, std::size_t height, std::size_t width,
                           std::size_t kernel, std::size_t stride, std::size_t padding)
    : c_(channels),
      h_(height),
      w_(width),
      k_(kernel),
      s_(stride),
      p_(padding),
      out_h_(height + 2 * padding < kernel ? 0 : (height + 2 * padding - kernel) / stride + 1),
      out_w_(width + 2 * padding < kernel ? 0 : (width + 2 * padding - kernel) / stride + 1),
      kw_(kernel),
      sw_(stride),
      pw_(padding) {}

SpikeMaxPool::SpikeMaxPool(std::size_t channels, std::size_t height, std::size_t width,
                           std::size_t kernel_h, std::size_t kernel_w, std::size_t stride_h,
                           std::size_t stride_w, std::size_t padding_h, std::size_t padding_w)
    : SpikeMaxPool(channels, height, width, kernel_h, stride_h, padding_h) {
    kw_ = kernel_w;
    sw_ = stride_w;
    pw_ = padding_w;
    out_w_ =
        width + 2 * padding_w < kernel_w ? 0 : (width + 2 * padding_w - kernel_w) / stride_w + 1;
}

namespace {

// Pool windows with the sizes known at compile time (the Spikformer's 3×3 / 2 / 1: divisions by
// 2 become shifts) or at run time.
template <std::size_t K, std::size_t S, std::size_t P>
struct FixedWindow {
    static constexpr std::size_t k() { return K; }
    static constexpr std::size_t s() { return S; }
    static constexpr std::size_t p() { return P; }
};
struct AnyWindow {
    std::size_t k_, s_, p_;
    std::size_t k() const { return k_; }
    std::size_t s() const { return s_; }
    std::size_t p() const { return p_; }
};

// Calls f(output neuron, event index) for every output of a channel-last map of c channels and
// width w each event reaches. The window is decoded once per run of events at one input
// position; outputs are reached in the same order as event by event. Output o's window covers
// inputs o·s − p … o·s − p + k − 1.
template <class Win, class WinX, class F>
void reach_outputs(const EventList& in, std::size_t c_, std::size_t w_, std::size_t out_h,
                   std::size_t out_w, Win win, WinX win_x, F&& f) {
    const std::size_t events = in.size();
    const std::size_t k = win.k(), s = win.s(), p = win.p();
    const std::size_t kw = win_x.k(), sw = win_x.s(), pw = win_x.p();
    for (std::size_t e0 = 0; e0 < events;) {
        const std::size_t pos = in.neuron[e0] / c_, base = pos * c_;
        std::size_t e1 = e0 + 1;
        while (e1 < events && in.neuron[e1] - base < c_) ++e1;
        const std::size_t y = pos / w_, x = pos - y * w_;
        const std::size_t py_lo = y + p + 1 > k ? (y + p + 1 - k + s - 1) / s : 0;
        const std::size_t px_lo = x + pw + 1 > kw ? (x + pw + 1 - kw + sw - 1) / sw : 0;
        const std::size_t py_hi = std::min((y + p) / s, out_h - 1);
        const std::size_t px_hi = std::min((x + pw) / sw, out_w - 1);
        for (std::size_t e = e0; e < e1; ++e) {
            const std::size_t ch = in.neuron[e] - base;
            for (std::size_t py = py_lo; py <= py_hi; ++py)
                for (std::size_t px = px_lo; px <= px_hi; ++px) f((py * out_w + px) * c_ + ch, e);
        }
        e0 = e1;
    }
}

}  // namespace

template <class F>
void SpikeMaxPool::for_each_reach(const EventList& in, F&& f) const {
    if (k_ == 3 && s_ == 2 && p_ == 1 && kw_ == 3 && sw_ == 2 && pw_ == 1)
        reach_outputs(in, c_, w_, out_h_, out_w_, FixedWindow<3, 2, 1>{}, FixedWindow<3, 2, 1>{},
                      f);
    else
        reach_outputs(in, c_, w_, out_h_, out_w_, AnyWindow{k_, s_, p_}, AnyWindow{kw_, sw_, pw_},
                      f);
}

void SpikeMaxPool::apply(const EventList& in, EventList& out,
                         std::vector<std::uint8_t>& seen) const {
    out.clear();
    if (k_ == 3 && s_ == 2 && p_ == 1 && kw_ == 3 && sw_ == 2 && pw_ == 1) {
        // The Spikformer's pool, written out: output p's window covers inputs 2p − 1 … 2p + 1.
        const std::size_t events = in.size();
        for (std::size_t e0 = 0; e0 < events;) {
            const std::size_t pos = in.neuron[e0] / c_, base = pos * c_;
            std::size_t e1 = e0 + 1;
            while (e1 < events && in.neuron[e1] - base < c_) ++e1;
            const std::size_t y = pos / w_, x = pos - y * w_;
            const std::size_t py_lo = y / 2, py_hi = std::min((y + 1) / 2, out_h_ - 1);
            const std::size_t px_lo = x / 2, px_hi = std::min((x + 1) / 2, out_w_ - 1);
            for (std::size_t e = e0; e < e1; ++e) {
                const std::size_t c = in.neuron[e] - base;
                for (std::size_t py = py_lo; py <= py_hi; ++py)
                    for (std::size_t px = px_lo; px <= px_hi; ++px) {
                        const std::size_t o = (py * out_w_ + px) * c_ + c;
                        if (!seen[o]) {
                            seen[o] = 1;
                            out.push(static_cast<std::uint32_t>(o), 1);
                        }
                    }
            }
            e0 = e1;
        }
        for (auto o : out.neuron) seen[o] = 0;
        return;
    }
    for_each_reach(in, [&](std::size_t o, std::size_t) {
        if (!seen[o]) {
            seen[o] = 1;
            out.push(static_cast<std::uint32_t>(o), 1);
        }
    });
    for (auto o : out.neuron) seen[o] = 0;
}

void SpikeMaxPool::apply_sum(const EventList& in, EventList& out,
                             std::vector<std::uint32_t>& sums) const {
    out.clear();
    for_each_reach(in, [&](std::size_t o, std::size_t e) {
        if (sums[o] == 0) out.push(static_cast<std::uint32_t>(o), 0);
        sums[o] += in.count[e];
    });
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto o = out.neuron[i];
        out.count[i] = static_cast<std::uint16_t>(std::min<std::uint32_t>(sums[o], 65535));
        sums[o] = 0;
    }
}

void Conv2d::init(float* acc) const {
    const std::size_t positions = out_height * out_width;
    for (std::size_t p = 0; p < positions; ++p)
        std::copy(bias.begin(), bias.end(), acc + p * out_channels);
}

namespace {

// The output cells (oy, ox) an input at (y, x) reaches through tap (ky, kx): oy·s − p + ky·d = y.
template <class F>
std::uint64_t conv2d_reach(const Conv2d& c, std::size_t y, std::size_t x, F&& f) {
    std::uint64_t reached = 0;
    for (std::size_t ky = 0; ky < c.kernel; ++ky) {
        const std::ptrdiff_t ny = std::ptrdiff_t(y + c.padding) - std::ptrdiff_t(ky * c.dilation);
        if (ny < 0 || ny % std::ptrdiff_t(c.stride) != 0) continue;
        const std::size_t oy = std::size_t(ny) / c.stride;
        if (oy >= c.out_height) continue;
        for (std::size_t kx = 0; kx < c.kernel_w; ++kx) {
            const std::ptrdiff_t nx =
                std::ptrdiff_t(x + c.padding_w) - std::ptrdiff_t(kx * c.dilation_w);
            if (nx < 0 || nx % std::ptrdiff_t(c.stride_w) != 0) continue;
            const std::size_t ox = std::size_t(nx) / c.stride_w;
            if (ox >= c.out_width) continue;
            f(oy, ox, ky * c.kernel_w + kx);
            ++reached;
        }
    }
    return reached;
}

}  // namespace

std::uint64_t Conv2d::propagate(const EventList& in, float* acc) const {
    const std::size_t ci = in_channels, cog = out_channels / groups, cig = in_channels / groups;
    const std::size_t taps = kernel * kernel_w;
    std::uint64_t sops = 0;
    for (std::size_t e = 0; e < in.size(); ++e) {
        const std::size_t n = in.neuron[e], c = n % ci, pos = n / ci;
        const std::size_t y = pos / in_width, x = pos % in_width;
        const std::uint16_t m = in.count[e];
        const std::size_t group_base = (c / cig) * cog;
        const float* w = weight_t.data() + c * taps * cog;
        const std::uint64_t reached =
            conv2d_reach(*this, y, x, [&](std::size_t oy, std::size_t ox, std::size_t tap) {
                float* out = acc + (oy * out_width + ox) * out_channels + group_base;
                if (m == 1)
                    add_row(out, w + tap * cog, cog);
                else
                    add_scaled_row(out, w + tap * cog, float(m), cog);
            });
        sops += m * reached * cog;
    }
    return sops;
}

std::uint64_t Conv2d::propagate_dense(const float* in, float* acc) const {
    const std::size_t ci = in_channels, cog = out_channels / groups, cig = in_channels / groups;
    const std::size_t taps = kernel * kernel_w;
    std::uint64_t macs = 0;
    for (std::size_t y = 0; y < in_height; ++y)
        for (std::size_t x = 0; x < in_width; ++x)
            for (std::size_t c = 0; c < ci; ++c) {
                const float value = in[(y * in_width + x) * ci + c];
                if (value == 0.f) continue;
                const std::size_t group_base = (c / cig) * cog;
                const float* w = weight_t.data() + c * taps * cog;
                macs +=
                    cog *
                    conv2d_reach(*this, y, x, [&](std::size_t oy, std::size_t ox, std::size_t tap) {
                        add_scaled_row(acc + (oy * out_width + ox) * out_channels + group_base,
                                       w + tap * cog, value, cog);
                    });
            }
    return macs;
}

void ResidualStream::add(const EventList& events) {
    for (std::size_t e = 0; e < events.size(); ++e) {
        const auto n = events.neuron[e];
        if (value_[n] == 0) touched_.push_back(n);
        value_[n] = static_cast<std::uint16_t>(value_[n] + events.count[e]);
    }
}

void ResidualStream::to_events(EventList& out) const {
    out.clear();
    for (auto n : touched_) out.push(n, value_[n]);
}

void ResidualStream::to_events_by_token(EventList& out, std::size_t width) {
    const std::size_t tokens = (value_.size() + width - 1) / width;
    bucket_.assign(tokens + 1, 0);
    out.neuron.resize(touched_.size());
    out.count.resize(touched_.size());
    auto scatter = [&](auto token_of) {
        for (auto n : touched_) ++bucket_[token_of(n) + 1];
        for (std::size_t t = 0; t < tokens; ++t) bucket_[t + 1] += bucket_[t];
        for (auto n : touched_) {
            const std::uint32_t at = bucket_[token_of(n)]++;
            out.neuron[at] = n;
            out.count[at] = value_[n];
        }
    };
    if ((width & (width - 1)) == 0) {
        const int shift = __builtin_ctzll(width);
        scatter([shift](std::uint32_t n) { return std::size_t{n} >> shift; });
    } else {
        scatter([width](std::uint32_t n) { return std::size_t{n} / width; });
    }
}

void ResidualStream::clear() {
    for (auto n : touched_) value_[n] = 0;
    touched_.clear();
}

}  // namespace evformer::sim
