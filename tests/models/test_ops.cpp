// The harness every trainer op joins (models/ops/, after ggml's test-backend-ops): one row per op
// in kOpTable, and for each row
//   (a) its forward against a reference written with plain loops, on small random inputs;
//   (b) its backward against central finite differences of its forward (in smooth mode where
//       the op has a step), and, where the hard step has no derivative, against the surrogate
//       formula written with plain loops;
//   (c) where the op exists in the event-driven engine, agreement with the engine on the same
//       input (bit for bit: spike inputs and dyadic weights make every sum exact in float).
// Adding an op to `Op` without a row fails to compile.
//
// Tolerances, stated at each check, are |a − b| ≤ abs + rel·max(|a|, |b|): forward references
// 1e-6 (float against double on values of order 1; the hard LIF and the pool are compared bit
// for bit); finite differences of ops linear in the probed input (conv, linear, head) take a
// step of 0.25 and allow 1e-5 + 1e-4 rel, those of curved ops (smooth LIF and attention, BN,
// loss) up to 2e-4 + 2e-3 rel for the step's curvature and the float rounding of the loss. The
// worst cases measured sit at least 6× inside every tolerance.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/models/attention_variant.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/ops/attention.hpp"
#include "evformer/models/ops/batchnorm.hpp"
#include "evformer/models/ops/conv.hpp"
#include "evformer/models/ops/head.hpp"
#include "evformer/models/ops/lif.hpp"
#include "evformer/models/ops/linear.hpp"
#include "evformer/models/ops/loss.hpp"
#include "evformer/models/ops/pool.hpp"
#include "evformer/models/spec.hpp"
#include "evformer/sim/attention.hpp"
#include "evformer/sim/layers.hpp"
#include "evformer/sim/neuron_rules.hpp"

namespace m = evformer::models;
namespace ops = evformer::models::ops;
namespace sim = evformer::sim;

namespace {

using Vec = std::vector<float>;

// ---------------------------------------------------------------- helpers

Vec uniform(std::size_t n, float lo, float hi, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(lo, hi);
    Vec out(n);
    for (auto& x : out) x = u(rng);
    return out;
}

// Spikes (0/1), or graded counts 0..max_count, each non-zero with probability `rate`.
Vec spikes(std::size_t n, double rate, std::mt19937& rng, int max_count = 1) {
    std::bernoulli_distribution fire(rate);
    Vec out(n, 0.f);
    for (auto& x : out)
        if (fire(rng)) x = float(1 + int(rng() % unsigned(max_count)));
    return out;
}

// Multiples of 1/64 in [−0.5, 0.5]: products with small counts and their sums are exact in
// float, so any summation order gives the same bits.
Vec dyadic(std::size_t n, std::mt19937& rng) {
    Vec out(n);
    for (auto& x : out) x = float(int(rng() % 65) - 32) / 64.f;
    return out;
}

double dot(const Vec& a, const Vec& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
    return s;
}

bool same_bits(const Vec& a, const Vec& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Tolerance {
    double abs, rel;
};

bool close(double a, double b, Tolerance t) {
    return std::abs(a - b) <= t.abs + t.rel * std::max(std::abs(a), std::abs(b));
}

// Every |a − b| within the tolerance; reports the worst entry.
void check_close(const char* what, const Vec& got, const std::vector<double>& want, Tolerance t) {
    REQUIRE(got.size() == want.size());
    std::size_t bad = 0, worst = 0;
    double worst_err = -1;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double err = std::abs(double(got[i]) - want[i]);
        if (!close(got[i], want[i], t)) ++bad;
        if (err > worst_err) worst_err = err, worst = i;
    }
    INFO(what, ": worst [", worst, "] got ", got[worst], " want ", want[worst]);
    CHECK(bad == 0);
}

// Central differences of `loss` (a double function of x) at entries of x, against `analytic`
// (at most ~60 entries, spread over x). The step actually taken is the float difference.
template <class Loss>
void check_gradient(const char* what, Vec& x, const Vec& analytic, float eps, Tolerance t,
                    Loss&& loss) {
    REQUIRE(x.size() == analytic.size());
    const std::size_t stride = std::max<std::size_t>(1, x.size() / 60);
    std::size_t probes = 0, bad = 0;
    for (std::size_t i = 0; i < x.size(); i += stride) {
        const float orig = x[i];
        x[i] = orig + eps;
        const float up = x[i];
        const double lp = loss();
        x[i] = orig - eps;
        const float down = x[i];
        const double lm = loss();
        x[i] = orig;
        const double fd = (lp - lm) / (double(up) - double(down));
        if (!close(analytic[i], fd, t)) {
            ++bad;
            INFO(what, "[", i, "] analytic ", analytic[i], " numeric ", fd);
            CHECK(close(analytic[i], fd, t));
        }
        ++probes;
    }
    CHECK(bad == 0);
    CHECK(probes >= std::min<std::size_t>(x.size(), 20));
}

// Dense values [positions][channels] read from a channel-major plane set [C, H·W] as the
// engine's channel-last events (neuron = position·C + c, count = value), in neuron order.
sim::EventList channel_last_events(const Vec& chw, std::size_t channels, std::size_t positions) {
    sim::EventList ev;
    for (std::size_t p = 0; p < positions; ++p)
        for (std::size_t c = 0; c < channels; ++c)
            if (const float v = chw[c * positions + p]; v != 0.f)
                ev.push(std::uint32_t(p * channels + c), std::uint16_t(v));
    return ev;
}

// Token-major values [N, D] (the op's layout within one group) as events n·D + c.
sim::EventList token_events(const float* x, std::size_t n) {
    sim::EventList ev;
    for (std::size_t i = 0; i < n; ++i)
        if (x[i] != 0.f) ev.push(std::uint32_t(i), std::uint16_t(x[i]));
    return ev;
}

Vec dense_from_events(const sim::EventList& ev, std::size_t n) {
    Vec out(n, 0.f);
    for (std::size_t e = 0; e < ev.size(); ++e) out[ev.neuron[e]] += float(ev.count[e]);
    return out;
}

// ---------------------------------------------------------------- lif

constexpr ops::LifOpParams kLif{{2.f, 1.f, 0.f}, 4.f};

void lif_reference() {
    std::mt19937 rng(101);
    const std::size_t steps = 5, size = 5000;  // more than one chunk of neurons
    Vec z = uniform(steps * size, -1.f, 3.f, rng);
    for (std::size_t i = 0; i < size; i += 7) z[i] = 2.f;  // h = 0 + (2 − 0)/2 = v_th exactly
    Vec h(z.size()), s(z.size());
    ops::lif_forward(z.data(), steps, size, kLif, false, h.data(), s.data());
    // DESIGN.md literally: v ← v + (x − v)/τ; s = [v ≥ v_th]; v ← v·(1 − s)
    Vec h_ref(z.size()), s_ref(z.size());
    std::size_t at_threshold = 0;
    for (std::size_t i = 0; i < size; ++i) {
        float v = 0.f;
        for (std::size_t t = 0; t < steps; ++t) {
            const std::size_t j = t * size + i;
            v = v + (z[j] - v) / 2.f;
            h_ref[j] = v;
            s_ref[j] = v >= 1.f ? 1.f : 0.f;
            at_threshold += v == 1.f;
            if (v >= 1.f) v = 0.f;
        }
    }
    CHECK(at_threshold >= size / 7);
    CHECK(same_bits(h, h_ref));
    CHECK(same_bits(s, s_ref));

    // smooth: s = σ(α(h − v_th)), v ← h(1 − s) + v_reset·s, in double
    ops::lif_forward(z.data(), steps, size, kLif, true, h.data(), s.data());
    std::vector<double> hs_ref(z.size()), ss_ref(z.size());
    for (std::size_t i = 0; i < size; ++i) {
        double v = 0;
        for (std::size_t t = 0; t < steps; ++t) {
            const std::size_t j = t * size + i;
            const double hv = v + (z[j] - v) / 2.0;
            const double sv = 1.0 / (1.0 + std::exp(-4.0 * (hv - 1.0)));
            hs_ref[j] = hv;
            ss_ref[j] = sv;
            v = hv * (1 - sv);
        }
    }
    check_close("smooth h", h, hs_ref, {1e-6, 1e-6});
    check_close("smooth s", s, ss_ref, {1e-6, 1e-6});
}

void lif_gradient() {
    std::mt19937 rng(102);
    const std::size_t steps = 4, size = 30;
    Vec z = uniform(steps * size, -0.5f, 2.5f, rng);
    const Vec r = uniform(steps * size, -1.f, 1.f, rng);
    Vec h(z.size()), s(z.size()), dz(z.size());
    for (float v_reset : {0.f, -0.25f}) {
        CAPTURE(v_reset);
        const ops::LifOpParams p{{2.f, 1.f, v_reset}, 4.f};
        ops::lif_forward(z.data(), steps, size, p, true, h.data(), s.data());
        ops::lif_backward(h.data(), s.data(), r.data(), steps, size, p, true, dz.data());
        check_gradient("smooth lif dz", z, dz, 2e-3f, {2e-4, 1e-3}, [&] {
            ops::lif_forward(z.data(), steps, size, p, true, h.data(), s.data());
            return dot(r, s);
        });
    }
    // Hard spikes have no derivative: the backward is the surrogate with the reset detached,
    // dh_t = ds_t·sg(h_t) + dv_t·(1 − s_t), dz_t = dh_t/τ, dv_{t−1} = dh_t·(1 − 1/τ).
    const std::size_t n = 3000;
    Vec zh = uniform(steps * n, -1.f, 3.f, rng), gh = uniform(steps * n, -1.f, 1.f, rng);
    Vec hh(zh.size()), sh(zh.size()), dzh(zh.size());
    ops::lif_forward(zh.data(), steps, n, kLif, false, hh.data(), sh.data());
    ops::lif_backward(hh.data(), sh.data(), gh.data(), steps, n, kLif, false, dzh.data());
    std::vector<double> want(zh.size());
    for (std::size_t i = 0; i < n; ++i) {
        double dv = 0;
        for (std::size_t t = steps; t-- > 0;) {
            const std::size_t j = t * n + i;
            const double dh = gh[j] * m::spike_surrogate(hh[j] - 1.0, 4.0) + dv * (1 - sh[j]);
            want[j] = dh / 2;
            dv = dh / 2;
        }
    }
    check_close("hard lif dz (surrogate)", dzh, want, {1e-6, 1e-5});
}

void lif_engine() {
    std::mt19937 rng(103);
    // (1) The op's hard forward against the engine's sim::lif_step, step by step.
    for (const sim::LifParams rule : {sim::LifParams{2.f, 1.f, 0.f}, sim::LifParams{2.f, 0.5f, 0.f},
                                      sim::LifParams{3.f, 1.f, -0.25f}}) {
        CAPTURE(rule.tau);
        CAPTURE(rule.v_threshold);
        CAPTURE(rule.v_reset);
        const std::size_t steps = 6, size = 2011;
        Vec z = uniform(steps * size, -1.f, 3.f, rng);
        Vec h(z.size()), s(z.size());
        ops::lif_forward(z.data(), steps, size, {rule, 4.f}, false, h.data(), s.data());
        Vec v(size, rule.v_reset);  // the op starts every membrane at v_reset
        for (std::size_t t = 0; t < steps; ++t) {
            sim::EventList ev;
            sim::lif_step(rule, v.data(), z.data() + t * size, size, ev);
            const Vec st(s.begin() + long(t * size), s.begin() + long((t + 1) * size));
            CHECK(dense_from_events(ev, size) == st);
            Vec v_op(size);
            for (std::size_t i = 0; i < size; ++i)
                v_op[i] = st[i] > 0 ? rule.v_reset : h[t * size + i];
            CHECK(same_bits(v, v_op));
        }
    }
    // (2) The engine's vectorised lif_step against the scalar rule functions, neuron by neuron,
    // on 1037 neurons (a ragged tail after the vector width) with membranes exactly at v_th.
    for (const sim::LifParams rule : {sim::LifParams{2.f, 1.f, 0.f}, sim::LifParams{2.f, 0.5f, 0.f},
                                      sim::LifParams{2.f, 1.f, -0.5f}}) {
        CAPTURE(rule.v_threshold);
        CAPTURE(rule.v_reset);
        const std::size_t n = 1037;
        Vec v = uniform(n, -0.5f, 0.9f, rng), v_ref = v;
        std::size_t exact = 0, exact_fired = 0;
        for (int step = 0; step < 5; ++step) {
            Vec x = uniform(n, -1.f, 3.f, rng);
            // from v = v_reset, u = v_reset + x/τ: x = τ·(v_th − v_reset) puts u exactly at v_th
            // (all exact in float for these constants); its neighbour gets x one ulp lower
            for (std::size_t i = 0; i + 1 < n; i += 5) {
                v[i] = v_ref[i] = rule.v_reset;
                x[i] = rule.tau * (rule.v_threshold - rule.v_reset);
                v[i + 1] = v_ref[i + 1] = rule.v_reset;
                x[i + 1] = std::nextafter(x[i], -10.f);
            }
            sim::EventList ev;
            sim::lif_step(rule, v.data(), x.data(), n, ev);
            sim::EventList ref;
            for (std::size_t i = 0; i < n; ++i) {
                const float u = sim::lif_charge(v_ref[i], x[i], rule);
                const bool fire = sim::fires(u, rule);
                if (u == rule.v_threshold) {
                    ++exact;
                    exact_fired += fire;
                }
                if (fire) ref.push(std::uint32_t(i));
                v_ref[i] = sim::after_spike(u, fire, rule);
            }
            CHECK(ev.neuron == ref.neuron);
            CHECK(ev.count == ref.count);
            CHECK(same_bits(v, v_ref));
        }
        CHECK(exact >= 5 * (n / 5));  // every prepared neuron sat exactly at v_th …
        CHECK(exact_fired == exact);  // … and fired (u ≥ v_th)
    }
}

// ---------------------------------------------------------------- batchnorm

struct BnFixture {
    Vec weight, bias, running_mean, running_var, grad_weight, grad_bias;
    ops::BatchNorm bn;

    BnFixture(std::size_t channels, std::mt19937& rng)
        : weight(uniform(channels, 0.5f, 1.5f, rng)),
          bias(uniform(channels, -0.5f, 0.5f, rng)),
          running_mean(uniform(channels, -1.f, 1.f, rng)),
          running_var(uniform(channels, 0.5f, 2.f, rng)),
          grad_weight(channels, 0.f),
          grad_bias(channels, 0.f) {
        bn.channels = channels;
        bn.eps = 1e-5f;
        bn.weight = weight.data();
        bn.bias = bias.data();
        bn.running_mean = running_mean.data();
        bn.running_var = running_var.data();
        bn.grad_weight = grad_weight.data();
        bn.grad_bias = grad_bias.data();
    }
};

void batchnorm_reference() {
    std::mt19937 rng(201);
    for (const auto [rows, channels, plane] :
         {std::array<std::size_t, 3>{6, 3, 5}, std::array<std::size_t, 3>{40, 7, 1}}) {
        CAPTURE(plane);
        BnFixture f(channels, rng);
        const Vec y = uniform(rows * channels * plane, 2.f, 4.f, rng);  // mean far from 0
        Vec z(y.size());
        const Vec rm0 = f.running_mean, rv0 = f.running_var;
        f.bn.forward(y.data(), rows, plane, true, z.data());
        std::vector<double> want(y.size()), want_eval(y.size());
        std::vector<double> mean(channels, 0), var(channels, 0);
        const double count = double(rows * plane);
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t q = 0; q < plane; ++q)
                    mean[c] += y[(r * channels + c) * plane + q];
        for (auto& x : mean) x /= count;
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t q = 0; q < plane; ++q) {
                    const double d = y[(r * channels + c) * plane + q] - mean[c];
                    var[c] += d * d / count;
                }
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t q = 0; q < plane; ++q) {
                    const std::size_t i = (r * channels + c) * plane + q;
                    want[i] = f.weight[c] * (y[i] - mean[c]) / std::sqrt(var[c] + 1e-5) + f.bias[c];
                    want_eval[i] =
                        f.weight[c] * (y[i] - rm0[c]) / std::sqrt(rv0[c] + 1e-5) + f.bias[c];
                }
        check_close("bn train", z, want, {2e-6, 2e-6});
        f.bn.forward(y.data(), rows, plane, false, z.data());
        check_close("bn eval", z, want_eval, {2e-6, 2e-6});
        // running ← 0.9·running + 0.1·batch, unbiased variance
        f.bn.forward(y.data(), rows, plane, true, z.data());
        f.bn.update_running();
        std::vector<double> rm(channels), rv(channels);
        for (std::size_t c = 0; c < channels; ++c) {
            rm[c] = 0.9 * rm0[c] + 0.1 * mean[c];
            rv[c] = 0.9 * rv0[c] + 0.1 * var[c] * count / (count - 1);
        }
        check_close("bn running mean", f.running_mean, rm, {1e-6, 1e-6});
        check_close("bn running var", f.running_var, rv, {1e-6, 1e-6});
    }
}

void batchnorm_gradient() {
    std::mt19937 rng(202);
    for (const auto [rows, channels, plane] :
         {std::array<std::size_t, 3>{4, 3, 6}, std::array<std::size_t, 3>{24, 5, 1}}) {
        CAPTURE(plane);
        BnFixture f(channels, rng);
        Vec y = uniform(rows * channels * plane, 0.f, 2.f, rng);
        const Vec r = uniform(y.size(), -1.f, 1.f, rng);
        Vec z(y.size()), dy(y.size());
        f.bn.forward(y.data(), rows, plane, true, z.data());
        f.bn.backward(y.data(), r.data(), rows, plane, dy.data());
        const Vec gw = f.grad_weight, gb = f.grad_bias;
        auto loss = [&] {
            f.bn.forward(y.data(), rows, plane, true, z.data());
            return dot(r, z);
        };
        const Tolerance t{1e-4, 1e-3};
        check_gradient("bn dy", y, dy, 1e-2f, t, loss);
        check_gradient("bn dgamma", f.weight, gw, 1e-2f, t, loss);
        check_gradient("bn dbeta", f.bias, gb, 1e-2f, t, loss);
    }
}

// ---------------------------------------------------------------- conv

// out[n, o, y, x] = Σ W[o, i, ky, kx]·in[n, i, y + ky − 1, x + kx − 1], in double.
std::vector<double> conv_reference(const Vec& in, std::size_t images, std::size_t cin,
                                   std::size_t cout, std::size_t h, std::size_t w, const Vec& wt) {
    std::vector<double> out(images * cout * h * w, 0.0);
    for (std::size_t n = 0; n < images; ++n)
        for (std::size_t o = 0; o < cout; ++o)
            for (std::size_t y = 0; y < h; ++y)
                for (std::size_t x = 0; x < w; ++x) {
                    double acc = 0;
                    for (std::size_t i = 0; i < cin; ++i)
                        for (std::size_t ky = 0; ky < 3; ++ky)
                            for (std::size_t kx = 0; kx < 3; ++kx) {
                                const long yy = long(y + ky) - 1, xx = long(x + kx) - 1;
                                if (yy < 0 || xx < 0 || yy >= long(h) || xx >= long(w)) continue;
                                acc +=
                                    double(wt[(o * cin + i) * 9 + ky * 3 + kx]) *
                                    in[((n * cin + i) * h + std::size_t(yy)) * w + std::size_t(xx)];
                            }
                    out[((n * cout + o) * h + y) * w + x] = acc;
                }
    return out;
}

void conv_reference_check() {
    std::mt19937 rng(301);
    const std::size_t images = 3, cin = 2, cout = 3, h = 5, w = 4;
    const Vec in = uniform(images * cin * h * w, -1.f, 1.f, rng);
    const Vec wt = uniform(cout * cin * 9, -0.5f, 0.5f, rng);
    Vec out(images * cout * h * w);
    ops::conv3x3_forward(in.data(), images, cin, cout, h, w, wt.data(), out.data());
    check_close("conv", out, conv_reference(in, images, cin, cout, h, w, wt), {1e-6, 1e-6});
}

void conv_gradient() {
    std::mt19937 rng(302);
    const std::size_t images = 2, cin = 2, cout = 3, h = 4, w = 5;
    Vec in = uniform(images * cin * h * w, -1.f, 1.f, rng);
    Vec wt = uniform(cout * cin * 9, -0.5f, 0.5f, rng);
    const Vec r = uniform(images * cout * h * w, -1.f, 1.f, rng);
    Vec out(r.size()), gw(wt.size(), 0.f), din(in.size());
    ops::conv3x3_backward(in.data(), r.data(), images, cin, cout, h, w, wt.data(), gw.data(),
                          din.data());
    auto loss = [&] {
        ops::conv3x3_forward(in.data(), images, cin, cout, h, w, wt.data(), out.data());
        return dot(r, out);
    };
    // linear in each argument: a large step leaves only rounding
    check_gradient("conv din", in, din, 0.25f, {1e-5, 1e-4}, loss);
    check_gradient("conv dW", wt, gw, 0.25f, {1e-5, 1e-4}, loss);
}

void conv_engine() {
    std::mt19937 rng(303);
    for (const std::size_t cout : {8u, 16u}) {  // 16: the engine's fixed-width kernel
        for (const auto [h, w] :
             {std::array<std::size_t, 2>{5, 7}, std::array<std::size_t, 2>{8, 8}}) {
            CAPTURE(cout);
            CAPTURE(h);
            const std::size_t cin = 3, plane = h * w;
            const Vec wt = dyadic(cout * cin * 9, rng);
            sim::Conv3x3 conv{cin, cout, h, w, Vec(cin * 9 * cout), Vec(cout, 0.f)};
            for (std::size_t o = 0; o < cout; ++o)
                for (std::size_t j = 0; j < cin * 9; ++j)
                    conv.weight_t[j * cout + o] = wt[o * cin * 9 + j];
            conv.validate("conv");
            // spike events (residual counts up to 2) and real-valued input (static images)
            for (const bool real : {false, true}) {
                CAPTURE(real);
                Vec in = real ? dyadic(cin * plane, rng) : spikes(cin * plane, 0.3, rng, 2);
                if (real)
                    for (std::size_t i = 0; i < in.size(); i += 4) in[i] = 0.f;
                Vec out(cout * plane);
                ops::conv3x3_forward(in.data(), 1, cin, cout, h, w, wt.data(), out.data());
                Vec acc(conv.outputs());
                conv.init(acc.data());
                if (real) {
                    Vec hwc(in.size());
                    for (std::size_t c = 0; c < cin; ++c)
                        for (std::size_t p = 0; p < plane; ++p)
                            hwc[p * cin + c] = in[c * plane + p];
                    conv.propagate_dense(hwc.data(), acc.data());
                } else {
                    conv.propagate(channel_last_events(in, cin, plane), acc.data());
                }
                Vec acc_chw(acc.size());
                for (std::size_t o = 0; o < cout; ++o)
                    for (std::size_t p = 0; p < plane; ++p)
                        acc_chw[o * plane + p] = acc[p * cout + o];
                CHECK(same_bits(out, acc_chw));
            }
        }
    }
}

// ---------------------------------------------------------------- linear

void linear_reference() {
    std::mt19937 rng(401);
    const std::size_t rows = 200, in = 7, out = 5;  // rows span several row blocks
    const Vec x = uniform(rows * in, -1.f, 1.f, rng), wt = uniform(out * in, -1.f, 1.f, rng),
              b = uniform(out, -1.f, 1.f, rng);
    Vec y(rows * out);
    ops::linear_forward(x.data(), rows, in, out, wt.data(), b.data(), y.data());
    std::vector<double> want(y.size());
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t j = 0; j < out; ++j) {
            double acc = b[j];
            for (std::size_t i = 0; i < in; ++i) acc += double(x[r * in + i]) * wt[j * in + i];
            want[r * out + j] = acc;
        }
    check_close("linear", y, want, {1e-6, 1e-6});
}

void linear_gradient() {
    std::mt19937 rng(402);
    const std::size_t rows = 130, in = 6, out = 4;
    Vec x = uniform(rows * in, -1.f, 1.f, rng), wt = uniform(out * in, -1.f, 1.f, rng),
        b = uniform(out, -1.f, 1.f, rng);
    const Vec r = uniform(rows * out, -1.f, 1.f, rng);
    Vec y(r.size()), gw(wt.size(), 0.f), gb(out, 0.f), dx(x.size());
    ops::linear_backward(x.data(), r.data(), rows, in, out, wt.data(), gw.data(), gb.data(),
                         dx.data());
    auto loss = [&] {
        ops::linear_forward(x.data(), rows, in, out, wt.data(), b.data(), y.data());
        return dot(r, y);
    };
    check_gradient("linear dx", x, dx, 0.25f, {1e-5, 1e-4}, loss);
    check_gradient("linear dW", wt, gw, 0.25f, {1e-5, 1e-4}, loss);
    check_gradient("linear db", b, gb, 0.25f, {1e-5, 1e-4}, loss);
}

void linear_engine() {
    std::mt19937 rng(403);
    const std::size_t tokens = 9, steps = 3, in = 32;
    for (const std::size_t out : {48u, 64u}) {  // 64: the fused fixed-width kernel
        CAPTURE(out);
        const Vec wt = dyadic(out * in, rng), b = dyadic(out, rng);
        sim::TokenLinear lin{tokens, in, out, Vec(in * out), b};
        for (std::size_t j = 0; j < out; ++j)
            for (std::size_t i = 0; i < in; ++i) lin.weight_t[i * out + j] = wt[j * in + i];
        lin.validate("linear");
        const Vec x = spikes(steps * tokens * in, 0.3, rng, 2);  // residual counts up to 2
        Vec y(steps * tokens * out), h(y.size()), s(y.size());
        ops::linear_forward(x.data(), steps * tokens, in, out, wt.data(), b.data(), y.data());
        ops::lif_forward(y.data(), steps, tokens * out, kLif, false, h.data(), s.data());
        Vec v(lin.outputs(), 0.f), acc(lin.outputs());
        std::size_t fired = 0;
        for (std::size_t t = 0; t < steps; ++t) {
            const auto ev = token_events(x.data() + t * tokens * in, tokens * in);
            // propagate: the input currents
            lin.init(acc.data());
            lin.propagate(ev, acc.data());
            CHECK(same_bits(acc, Vec(y.begin() + long(t * lin.outputs()),
                                     y.begin() + long((t + 1) * lin.outputs()))));
            // propagate_lif: the spikes after the LIF
            sim::EventList spk;
            lin.propagate_lif(ev, kLif.rule, v.data(), spk, acc.data());
            CHECK(dense_from_events(spk, lin.outputs()) ==
                  Vec(s.begin() + long(t * lin.outputs()),
                      s.begin() + long((t + 1) * lin.outputs())));
            fired += spk.size();
        }
        CHECK(fired > 0);
    }
}

// ---------------------------------------------------------------- pool

// The window maximum and its first position in scan order, by plain loops.
void pool_naive(const Vec& in, std::size_t planes, std::size_t h, std::size_t w, Vec& out,
                std::vector<std::int32_t>& at) {
    const std::size_t ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1;
    out.assign(planes * ho * wo, 0.f);
    at.assign(out.size(), -1);
    for (std::size_t p = 0; p < planes; ++p)
        for (std::size_t oy = 0; oy < ho; ++oy)
            for (std::size_t ox = 0; ox < wo; ++ox) {
                const std::size_t o = (p * ho + oy) * wo + ox;
                for (long y = long(2 * oy) - 1; y <= long(2 * oy) + 1; ++y)
                    for (long x = long(2 * ox) - 1; x <= long(2 * ox) + 1; ++x) {
                        if (y < 0 || x < 0 || y >= long(h) || x >= long(w)) continue;
                        const float v = in[(p * h + std::size_t(y)) * w + std::size_t(x)];
                        if (at[o] < 0 || v > out[o]) {
                            out[o] = v;
                            at[o] = std::int32_t(std::size_t(y) * w + std::size_t(x));
                        }
                    }
            }
}

void pool_reference() {
    std::mt19937 rng(501);
    for (const auto [h, w] : {std::array<std::size_t, 2>{7, 6}, std::array<std::size_t, 2>{8, 8}}) {
        for (const bool spiking : {false, true}) {  // spikes: ties, the first maximum wins
            const std::size_t planes = 4;
            const Vec in = spiking ? spikes(planes * h * w, 0.3, rng)
                                   : uniform(planes * h * w, -1.f, 1.f, rng);
            const std::size_t n_out = planes * m::pooled_size(h) * m::pooled_size(w);
            Vec out(n_out), want;
            std::vector<std::int32_t> at(n_out), at_want;
            ops::maxpool_forward(in.data(), planes, h, w, out.data(), at.data());
            pool_naive(in, planes, h, w, want, at_want);
            CHECK(out == want);
            CHECK(at == at_want);
        }
    }
}

void pool_gradient() {
    std::mt19937 rng(502);
    const std::size_t planes = 3, h = 7, w = 6;
    // distinct values 0.01 apart: a step of 1e-3 never reorders a window
    Vec in(planes * h * w);
    std::iota(in.begin(), in.end(), 0.f);
    std::shuffle(in.begin(), in.end(), rng);
    for (auto& v : in) v *= 0.01f;
    const std::size_t n_out = planes * m::pooled_size(h) * m::pooled_size(w);
    const Vec r = uniform(n_out, -1.f, 1.f, rng);
    Vec out(n_out), din(in.size());
    std::vector<std::int32_t> at(n_out);
    ops::maxpool_forward(in.data(), planes, h, w, out.data(), at.data());
    ops::maxpool_backward(r.data(), at.data(), planes, h, w, din.data());
    check_gradient("pool din", in, din, 1e-3f, {1e-4, 1e-3}, [&] {
        ops::maxpool_forward(in.data(), planes, h, w, out.data(), at.data());
        return dot(r, out);
    });
}

void pool_engine() {
    std::mt19937 rng(503);
    for (const auto [h, w] : {std::array<std::size_t, 2>{7, 6}, std::array<std::size_t, 2>{8, 8},
                              std::array<std::size_t, 2>{34, 34}}) {
        CAPTURE(h);
        const std::size_t channels = 5, plane = h * w;
        const std::size_t ho = m::pooled_size(h), wo = m::pooled_size(w);
        const Vec in = spikes(channels * plane, 0.1, rng);
        Vec out(channels * ho * wo);
        std::vector<std::int32_t> at(out.size());
        ops::maxpool_forward(in.data(), channels, h, w, out.data(), at.data());
        const sim::SpikeMaxPool pool(channels, h, w);
        REQUIRE(pool.out_height() == ho);
        REQUIRE(pool.out_width() == wo);
        sim::EventList ev;
        std::vector<std::uint8_t> seen(pool.outputs(), 0);
        pool.apply(channel_last_events(in, channels, plane), ev, seen);
        const Vec got = dense_from_events(ev, pool.outputs());  // channel-last
        Vec want(pool.outputs());
        for (std::size_t c = 0; c < channels; ++c)
            for (std::size_t p = 0; p < ho * wo; ++p) want[p * channels + c] = out[c * ho * wo + p];
        CHECK(got == want);
    }
}

// ---------------------------------------------------------------- attention

struct AttnCase {
    ops::AttentionOpParams a;
    std::size_t groups;
    Vec q, k, v, delta, v_bar;
};

ops::AttentionOpParams attn_params(const m::AttentionVariantInfo& info, std::size_t n,
                                   std::size_t d, std::size_t h, bool smooth) {
    return {n, d, h, 0.125f, 1.f, info.binary, smooth};
}

// The shift a variant applies in training (batch mean) or evaluation (given V̄).
ops::AttentionShift shift_of(const m::AttentionVariantInfo& info, bool train) {
    if (!info.shift) return ops::AttentionShift::none;
    return train ? ops::AttentionShift::batch_mean : ops::AttentionShift::given;
}

// s·M·V per group and head by plain loops (M = C, κ·[C > Δ] or κ·softmax), then the shift;
// also Σ C per head, the non-zero entries and the mean before the shift.
std::vector<double> attention_naive(const AttnCase& c, ops::AttentionShift shift,
                                    std::vector<double>& c_mean, double& nonzero,
                                    std::vector<double>& out_mean) {
    const auto& a = c.a;
    const std::size_t n = a.tokens, d = a.dim, dh = d / a.heads, rows = c.groups * n;
    std::vector<double> out(rows * d, 0.0);
    c_mean.assign(a.heads, 0.0);
    nonzero = 0;
    for (std::size_t g = 0; g < c.groups; ++g)
        for (std::size_t hd = 0; hd < a.heads; ++hd) {
            std::vector<double> cm(n * n, 0.0);
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < n; ++j)
                    for (std::size_t e = hd * dh; e < (hd + 1) * dh; ++e)
                        cm[i * n + j] +=
                            double(c.q[(g * n + i) * d + e]) * c.k[(g * n + j) * d + e];
            for (std::size_t i = 0; i < n; ++i) {
                double z = 0, mx = -1e300;
                for (std::size_t j = 0; j < n; ++j) mx = std::max(mx, cm[i * n + j]);
                for (std::size_t j = 0; j < n; ++j) z += std::exp(cm[i * n + j] - mx);
                for (std::size_t j = 0; j < n; ++j) {
                    const double cij = cm[i * n + j];
                    c_mean[hd] += cij;
                    double mij = cij;
                    if (a.binary)
                        mij = a.smooth ? a.kappa * std::exp(cij - mx) / z
                                       : (cij > c.delta[hd] ? a.kappa : 0.0);
                    nonzero += mij != 0;
                    for (std::size_t e = hd * dh; e < (hd + 1) * dh; ++e)
                        out[(g * n + i) * d + e] += a.scale * mij * c.v[(g * n + j) * d + e];
                }
            }
        }
    for (auto& x : c_mean) x /= double(c.groups * n * n);
    out_mean.assign(d, 0.0);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t e = 0; e < d; ++e) out_mean[e] += out[r * d + e] / double(rows);
    if (shift != ops::AttentionShift::none)
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t e = 0; e < d; ++e)
                out[r * d + e] -=
                    shift == ops::AttentionShift::given ? double(c.v_bar[e]) : out_mean[e];
    return out;
}

AttnCase attn_case(const m::AttentionVariantInfo& info, std::size_t groups, std::size_t n,
                   std::size_t d, std::size_t h, bool smooth, std::mt19937& rng) {
    AttnCase c{attn_params(info, n, d, h, smooth), groups, {}, {}, {}, {}, {}};
    const std::size_t size = groups * n * d;
    if (smooth) {  // real values: a differentiable C
        c.q = uniform(size, 0.f, 1.f, rng);
        c.k = uniform(size, 0.f, 1.f, rng);
        c.v = uniform(size, 0.f, 1.f, rng);
    } else {
        c.q = spikes(size, 0.4, rng);
        c.k = spikes(size, 0.4, rng);
        c.v = spikes(size, 0.5, rng);
    }
    c.delta.assign(h, 0.f);
    if (info.adaptive_threshold)
        for (std::size_t i = 0; i < h; ++i) c.delta[i] = 0.5f + 0.375f * float(i);
    for (std::size_t e = 0; e < d; ++e) c.v_bar.push_back(float(e % 5) / 8.f);
    return c;
}

void attention_reference() {
    std::mt19937 rng(601);
    for (const auto& info : m::kAttentionVariants) {
        const std::string variant(info.name);
        CAPTURE(variant);
        for (const bool smooth : {false, true}) {
            for (const bool train : {false, true}) {
                CAPTURE(smooth);
                CAPTURE(train);
                const auto c = attn_case(info, 3, 6, 8, 2, smooth, rng);
                const auto shift = shift_of(info, train);
                Vec out(c.q.size(), -7.f);
                ops::AttentionStats stats;
                ops::attention_forward(c.a, c.q.data(), c.k.data(), c.v.data(), c.groups,
                                       c.delta.data(), shift, c.v_bar.data(), out.data(), stats);
                std::vector<double> c_mean, out_mean;
                double nonzero = 0;
                const auto want = attention_naive(c, shift, c_mean, nonzero, out_mean);
                check_close("attention out", out, want, {1e-6, 1e-6});
                for (std::size_t hd = 0; hd < c.a.heads; ++hd)
                    CHECK(stats.c_mean[hd] == doctest::Approx(c_mean[hd]).epsilon(1e-6));
                CHECK(stats.nonzero == nonzero);
                check_close("attention out_mean", stats.out_mean, out_mean, {1e-6, 1e-6});
            }
        }
    }
}

void attention_gradient() {
    std::mt19937 rng(602);
    // every variant in smooth mode (training: the batch-mean shift for shifted variants)
    for (const auto& info : m::kAttentionVariants) {
        const std::string variant(info.name);
        CAPTURE(variant);
        auto c = attn_case(info, 2, 5, 6, 2, true, rng);
        const auto shift = shift_of(info, true);
        const Vec r = uniform(c.q.size(), -1.f, 1.f, rng);
        Vec out(r.size()), dq(r.size()), dk(r.size()), dv(r.size());
        ops::AttentionStats stats;
        ops::attention_backward(c.a, c.q.data(), c.k.data(), c.v.data(), c.groups, c.delta.data(),
                                shift == ops::AttentionShift::batch_mean, r.data(), dq.data(),
                                dk.data(), dv.data());
        auto loss = [&] {
            ops::attention_forward(c.a, c.q.data(), c.k.data(), c.v.data(), c.groups,
                                   c.delta.data(), shift, c.v_bar.data(), out.data(), stats);
            return dot(r, out);
        };
        const Tolerance t{2e-4, 2e-3};
        check_gradient("attention dq", c.q, dq, 2e-3f, t, loss);
        check_gradient("attention dk", c.k, dk, 2e-3f, t, loss);
        check_gradient("attention dv", c.v, dv, 2e-3f, t, loss);
    }
    // Hard binary attention has no derivative: dC = dM·p(1 − p), p = softmax of the C row
    // (DESIGN.md), by plain loops, for every binary variant.
    for (const auto& info : m::kAttentionVariants) {
        const std::string variant(info.name);
        CAPTURE(variant);
        const auto c = attn_case(info, 2, 6, 8, 2, false, rng);
        const auto& a = c.a;
        const std::size_t n = a.tokens, d = a.dim, dh = d / a.heads, rows = c.groups * n;
        const Vec r = uniform(rows * d, -1.f, 1.f, rng);
        Vec dq(r.size()), dk(r.size()), dv(r.size());
        const bool batch_shift = info.shift;
        ops::attention_backward(a, c.q.data(), c.k.data(), c.v.data(), c.groups, c.delta.data(),
                                batch_shift, r.data(), dq.data(), dk.data(), dv.data());
        std::vector<double> g(r.begin(), r.end());
        if (batch_shift)
            for (std::size_t e = 0; e < d; ++e) {
                double mean = 0;
                for (std::size_t row = 0; row < rows; ++row) mean += r[row * d + e] / double(rows);
                for (std::size_t row = 0; row < rows; ++row) g[row * d + e] -= mean;
            }
        std::vector<double> wq(r.size(), 0.0), wk(r.size(), 0.0), wv(r.size(), 0.0);
        for (std::size_t gr = 0; gr < c.groups; ++gr)
            for (std::size_t hd = 0; hd < a.heads; ++hd) {
                const auto at = [&](const Vec& x, std::size_t tok, std::size_t e) {
                    return double(x[(gr * n + tok) * d + hd * dh + e]);
                };
                for (std::size_t i = 0; i < n; ++i) {
                    std::vector<double> cm(n, 0.0), p(n), mm(n), dm(n, 0.0);
                    for (std::size_t j = 0; j < n; ++j)
                        for (std::size_t e = 0; e < dh; ++e) cm[j] += at(c.q, i, e) * at(c.k, j, e);
                    const double mx = *std::max_element(cm.begin(), cm.end());
                    double z = 0;
                    for (std::size_t j = 0; j < n; ++j) z += std::exp(cm[j] - mx);
                    for (std::size_t j = 0; j < n; ++j) {
                        p[j] = std::exp(cm[j] - mx) / z;
                        mm[j] = a.binary ? (cm[j] > c.delta[hd] ? a.kappa : 0.0) : cm[j];
                    }
                    for (std::size_t j = 0; j < n; ++j)
                        for (std::size_t e = 0; e < dh; ++e) {
                            const std::size_t oi = (gr * n + i) * d + hd * dh + e;
                            const std::size_t oj = (gr * n + j) * d + hd * dh + e;
                            dm[j] += a.scale * g[oi] * at(c.v, j, e);
                            wv[oj] += a.scale * mm[j] * g[oi];
                        }
                    for (std::size_t j = 0; j < n; ++j) {
                        const double dc = a.binary ? dm[j] * p[j] * (1 - p[j]) : dm[j];
                        for (std::size_t e = 0; e < dh; ++e) {
                            wq[(gr * n + i) * d + hd * dh + e] += dc * at(c.k, j, e);
                            wk[(gr * n + j) * d + hd * dh + e] += dc * at(c.q, i, e);
                        }
                    }
                }
            }
        check_close("hard attention dq", dq, wq, {1e-6, 1e-5});
        check_close("hard attention dk", dk, wk, {1e-6, 1e-5});
        check_close("hard attention dv", dv, wv, {1e-6, 1e-5});
    }
}

void attention_engine() {
    std::mt19937 rng(603);
    // (N, D, H): powers of two, more than 64 tokens (several mask words), and neither
    for (const auto [n, d, h] :
         {std::array<std::size_t, 3>{7, 8, 2}, std::array<std::size_t, 3>{70, 32, 4},
          std::array<std::size_t, 3>{9, 12, 3}}) {
        for (const auto& info : m::kAttentionVariants) {
            const std::string variant(info.name);
            CAPTURE(variant);
            CAPTURE(n);
            // evaluation: Δ and V̄ given, as the builder hands them to the engine
            const auto c = attn_case(info, 3, n, d, h, false, rng);
            const auto shift = shift_of(info, false);
            Vec out(c.q.size());
            sim::SpikingAttention sa;
            sa.tokens = n;
            sa.dim = d;
            sa.heads = h;
            sa.scale = c.a.scale;
            sa.kappa = c.a.kappa;
            sa.binary = info.binary;
            sa.threshold = c.delta;
            if (info.shift) sa.shift = c.v_bar;
            sa.validate("attention");
            sim::AttentionScratch scratch(sa);
            for (std::size_t g = 0; g < c.groups; ++g) {  // one engine call per step and sample
                const std::size_t off = g * n * d;
                ops::AttentionStats stats;
                ops::attention_forward(c.a, c.q.data() + off, c.k.data() + off, c.v.data() + off, 1,
                                       c.delta.data(), shift, c.v_bar.data(), out.data(), stats);
                Vec got(n * d, -7.f);
                const auto counts =
                    sim::attend(sa, token_events(c.q.data() + off, n * d),
                                token_events(c.k.data() + off, n * d),
                                token_events(c.v.data() + off, n * d), got.data(), scratch);
                CHECK(same_bits(got, Vec(out.begin(), out.begin() + long(n * d))));
                CHECK(double(counts.nonzero) == stats.nonzero);
                double c_total = 0;  // Σ C = coincident q/k pairs = the engine's QKᵀ SOPs
                for (double x : stats.c_mean) c_total += x * double(n * n);
                CHECK(double(counts.sops_qk) == doctest::Approx(c_total).epsilon(1e-12));
            }
        }
    }
}

// ---------------------------------------------------------------- loss

void loss_reference() {
    std::mt19937 rng(701);
    const std::size_t batch = 6, classes = 5;
    const Vec logits = uniform(batch * classes, -3.f, 3.f, rng);
    const int labels[batch] = {0, 4, 2, 2, 1, 3};
    for (const double eps : {0.0, 0.1}) {
        CAPTURE(eps);
        std::size_t correct = 0;
        const double got =
            ops::cross_entropy_forward(logits.data(), labels, batch, classes, eps, &correct);
        double want = 0;
        std::size_t want_correct = 0;
        for (std::size_t b = 0; b < batch; ++b) {
            double z = 0;
            std::size_t arg = 0;
            for (std::size_t j = 0; j < classes; ++j) {
                z += std::exp(double(logits[b * classes + j]));
                if (logits[b * classes + j] > logits[b * classes + arg]) arg = j;
            }
            want_correct += arg == std::size_t(labels[b]);
            for (std::size_t j = 0; j < classes; ++j) {
                const double target = (j == std::size_t(labels[b]) ? 1 - eps : 0) + eps / classes;
                want -= target * (logits[b * classes + j] - std::log(z)) / double(batch);
            }
        }
        CHECK(got == doctest::Approx(want).epsilon(1e-12));
        CHECK(correct == want_correct);
    }
    const int bad[batch] = {0, 4, 5, 2, 1, 3};
    CHECK_THROWS_WITH_AS(
        ops::cross_entropy_forward(logits.data(), bad, batch, classes, 0.1, nullptr),
        "label 5 of sample 2 is outside [0, 5)", evformer::ConfigError);
}

void loss_gradient() {
    std::mt19937 rng(702);
    const std::size_t batch = 4, classes = 6;
    Vec logits = uniform(batch * classes, -3.f, 3.f, rng);
    const int labels[batch] = {5, 0, 3, 3};
    for (const double eps : {0.0, 0.1}) {
        CAPTURE(eps);
        Vec d(logits.size());
        ops::cross_entropy_backward(logits.data(), labels, batch, classes, eps, d.data());
        check_gradient("loss dlogits", logits, d, 1e-2f, {1e-5, 1e-4}, [&] {
            return ops::cross_entropy_forward(logits.data(), labels, batch, classes, eps, nullptr);
        });
    }
}

// ---------------------------------------------------------------- head

void head_reference() {
    std::mt19937 rng(801);
    const ops::HeadSizes n{3, 2, 5, 4, 3};
    const Vec x = spikes(n.steps * n.batch * n.tokens * n.dim, 0.5, rng, 2);
    const Vec wt = uniform(n.classes * n.dim, -1.f, 1.f, rng),
              b = uniform(n.classes, -1.f, 1.f, rng);
    Vec feat(n.batch * n.dim), logits(n.batch * n.classes);
    ops::head_forward(n, x.data(), wt.data(), b.data(), feat.data(), logits.data());
    std::vector<double> want_feat(feat.size(), 0.0), want_logits(logits.size());
    for (std::size_t t = 0; t < n.steps; ++t)
        for (std::size_t bi = 0; bi < n.batch; ++bi)
            for (std::size_t tok = 0; tok < n.tokens; ++tok)
                for (std::size_t c = 0; c < n.dim; ++c)
                    want_feat[bi * n.dim + c] +=
                        x[((t * n.batch + bi) * n.tokens + tok) * n.dim + c] /
                        double(n.steps * n.tokens);
    for (std::size_t bi = 0; bi < n.batch; ++bi)
        for (std::size_t j = 0; j < n.classes; ++j) {
            double acc = b[j];
            for (std::size_t c = 0; c < n.dim; ++c)
                acc += wt[j * n.dim + c] * want_feat[bi * n.dim + c];
            want_logits[bi * n.classes + j] = acc;
        }
    check_close("head feat", feat, want_feat, {1e-6, 1e-6});
    check_close("head logits", logits, want_logits, {1e-6, 1e-6});
}

void head_gradient() {
    std::mt19937 rng(802);
    const ops::HeadSizes n{2, 3, 4, 5, 3};
    Vec x = uniform(n.steps * n.batch * n.tokens * n.dim, 0.f, 2.f, rng);
    Vec wt = uniform(n.classes * n.dim, -1.f, 1.f, rng), b = uniform(n.classes, -1.f, 1.f, rng);
    const Vec r = uniform(n.batch * n.classes, -1.f, 1.f, rng);
    Vec feat(n.batch * n.dim), logits(r.size()), gw(wt.size(), 0.f), gb(b.size(), 0.f),
        dx(x.size());
    ops::head_forward(n, x.data(), wt.data(), b.data(), feat.data(), logits.data());
    ops::head_backward(n, feat.data(), r.data(), wt.data(), gw.data(), gb.data(), dx.data());
    auto loss = [&] {
        ops::head_forward(n, x.data(), wt.data(), b.data(), feat.data(), logits.data());
        return dot(r, logits);
    };
    check_gradient("head dx", x, dx, 0.25f, {1e-5, 1e-4}, loss);
    check_gradient("head dW", wt, gw, 0.25f, {1e-5, 1e-4}, loss);
    check_gradient("head db", b, gb, 0.25f, {1e-5, 1e-4}, loss);
}

// ---------------------------------------------------------------- the table

/// Every trainer op (one header and source each under models/ops/).
enum class Op { lif, batchnorm, conv, linear, pool, attention, loss, head, count };
constexpr std::size_t kOpCount = static_cast<std::size_t>(Op::count);

/// One row of the harness: the op's three checks, or why it has no engine counterpart.
struct OpCase {
    Op op;
    std::string_view file;          ///< models/ops/<file>.cpp
    void (*reference)();            ///< (a) forward against plain loops
    void (*gradient)();             ///< (b) backward against finite differences
    void (*engine)();               ///< (c) agreement with the engine, or nullptr
    std::string_view engine_layer;  ///< the engine's counterpart, or why there is none
};

constexpr OpCase kOpTable[] = {
    {Op::lif, "lif", lif_reference, lif_gradient, lif_engine,
     "sim::lif_step (and the rule functions of sim/neuron_rules.hpp)"},
    {Op::batchnorm, "batchnorm", batchnorm_reference, batchnorm_gradient, nullptr,
     "none: models/builder.cpp folds BN into the conv/linear weights and biases"},
    {Op::conv, "conv", conv_reference_check, conv_gradient, conv_engine,
     "sim::Conv3x3::propagate (events) and propagate_dense (real input)"},
    {Op::linear, "linear", linear_reference, linear_gradient, linear_engine,
     "sim::TokenLinear::propagate and propagate_lif"},
    {Op::pool, "pool", pool_reference, pool_gradient, pool_engine, "sim::SpikeMaxPool::apply"},
    {Op::attention, "attention", attention_reference, attention_gradient, attention_engine,
     "sim::attend (all five variants)"},
    {Op::loss, "loss", loss_reference, loss_gradient, nullptr, "none: training only"},
    {Op::head, "head", head_reference, head_gradient, nullptr,
     "none separately: inside sim::Simulator; its logits are compared by "
     "tests/models/test_equivalence.cpp"},
};
static_assert(std::size(kOpTable) == kOpCount, "every Op needs a row in kOpTable");

constexpr bool rows_complete() {
    for (std::size_t i = 0; i < kOpCount; ++i) {
        const auto& row = kOpTable[i];
        if (row.op != static_cast<Op>(i) || row.file.empty() || !row.reference || !row.gradient ||
            row.engine_layer.empty())
            return false;
    }
    return true;
}
static_assert(rows_complete(),
              "kOpTable rows follow Op's order and each has a reference, a gradient check and "
              "its engine counterpart (or the reason it has none)");

}  // namespace

TEST_CASE("every op's forward matches a reference written with plain loops") {
    for (const auto& row : kOpTable) {
        const std::string op(row.file);
        CAPTURE(op);
        row.reference();
    }
}

TEST_CASE("every op's backward matches finite differences (smooth where the op steps)") {
    for (const auto& row : kOpTable) {
        const std::string op(row.file);
        CAPTURE(op);
        row.gradient();
    }
}

TEST_CASE("every op that exists in the engine computes the engine's result bit for bit") {
    std::size_t checked = 0;
    for (const auto& row : kOpTable) {
        if (!row.engine) continue;
        const std::string op(row.file);
        CAPTURE(op);
        row.engine();
        ++checked;
    }
    CHECK(checked == 5);  // lif, conv, linear, pool, attention
}

TEST_CASE(
    "every op source in models/ops/ has a harness row, and every row an op header and source") {
    const std::filesystem::path root(EVFORMER_SOURCE_DIR);
    std::set<std::string> sources, rows;
    for (const auto& entry : std::filesystem::directory_iterator(root / "models/ops"))
        if (entry.path().extension() == ".cpp") sources.insert(entry.path().stem().string());
    for (const auto& row : kOpTable) {
        rows.insert(std::string(row.file));
        const std::string header =
            "models/include/evformer/models/ops/" + std::string(row.file) + ".hpp";
        CAPTURE(header);
        CHECK(std::filesystem::exists(root / header));
    }
    CHECK(sources == rows);
}
