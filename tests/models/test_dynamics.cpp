#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "evformer/models/attention_variant.hpp"
#include "evformer/models/network.hpp"

namespace m = evformer::models;
using evformer::models::AttentionVariant;

namespace {

m::ModelSpec small_spec(AttentionVariant variant) {
    m::ModelSpec spec;
    spec.dim = 16;
    spec.heads = 2;
    spec.blocks = 1;
    spec.time_steps = 4;
    spec.in_height = 8;
    spec.in_width = 8;
    spec.attention.variant = variant;
    return spec;
}

std::vector<float> random_images(std::size_t n, std::size_t plane, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> x(n * plane);
    for (auto& v : x) v = u(rng);
    return x;
}

// LIF by hand: v ← v + (x − v)/τ; spike at v ≥ v_th; hard reset to 0.
std::vector<int> lif_by_hand(const std::vector<float>& x, float v_th) {
    std::vector<int> s;
    float v = 0;
    for (float xi : x) {
        v = v + (xi - v) / 2.f;
        s.push_back(v >= v_th ? 1 : 0);
        if (s.back()) v = 0;
    }
    return s;
}

}  // namespace

TEST_CASE("surrogate gradient is alpha sigma(alpha x)(1 - sigma(alpha x))") {
    for (double x : {-1.0, -0.25, 0.0, 0.3, 2.0}) {
        const double s = 1.0 / (1.0 + std::exp(-4.0 * x));
        CHECK(m::spike_surrogate(x, 4.0) == doctest::Approx(4.0 * s * (1.0 - s)));
    }
    CHECK(m::spike_surrogate(0.0, 4.0) == doctest::Approx(1.0));
}

TEST_CASE("the backward pass's float surrogate matches the formula and stays finite") {
    double worst = 0;
    for (int i = -4000; i <= 4000; ++i) {  // x in [−40, 40]: from saturation to the peak
        const float x = 0.01f * static_cast<float>(i);
        // α·σ(αx)(1 − σ(αx)) evaluated without cancellation: α·e/(1 + e)², e = exp(−α|x|)
        const double e = std::exp(-4.0 * std::abs(double(x)));
        const double want = 4.0 * e / ((1 + e) * (1 + e));
        const double got = m::spike_surrogate_fast(x, 4.f);
        CAPTURE(x);
        REQUIRE(std::isfinite(got));
        if (want > 1e-30)  // float's normal range
            worst = std::max(worst, std::abs(got - want) / want);
        else
            CHECK(got <= 1e-30);
    }
    MESSAGE("largest relative error ", worst);
    CHECK(worst < 1e-5);
    CHECK(m::spike_surrogate_fast(0.f, 4.f) == doctest::Approx(1.0).epsilon(1e-6));
    for (float x : {1e4f, -1e4f, 3e38f, -3e38f}) {  // far outside: vanishing, never NaN or inf
        CAPTURE(x);
        CHECK(m::spike_surrogate_fast(x, 4.f) >= 0.f);
        CHECK(m::spike_surrogate_fast(x, 4.f) <= 1e-30f);
    }
}

TEST_CASE("sps/lif0 charges, fires at v >= v_th and resets to zero (hand-worked sequences)") {
    // conv0 passes the pixel through (centre tap 1), BN is the identity: lif0 sees the pixel
    auto spec = small_spec(AttentionVariant::ssa);
    auto w = m::init_weights(spec, 1);
    auto& conv = w.at("sps/conv0/weight");
    std::fill(conv.data.begin(), conv.data.end(), 0.f);
    for (std::size_t c = 0; c < spec.stage_channels(0); ++c) conv.data[c * 9 + 4] = 1.f;
    auto& var = w.at("sps/bn0/running_var");
    std::fill(var.data.begin(), var.data.end(), static_cast<float>(1.0 - spec.bn_eps));
    m::DenseSpikformer net(w);
    std::vector<float> x(64, 0.f);
    x[0] = 2.0f;   // v = 1 at every step: fires every step
    x[1] = 1.5f;   // 0.75, 1.125 (fire), 0.75, 1.125 (fire)
    x[2] = 1.0f;   // 0.5, 0.75, 0.875, 0.9375: never reaches 1
    x[3] = 1.99f;  // 0.995, 1.4925 (fire), 0.995, 1.4925 (fire)
    m::SpikeProbe probe;
    net.forward_eval(x.data(), 1, &probe);
    const auto& s = probe.spikes["sps/lif0"];
    const std::size_t neurons = probe.neurons["sps/lif0"];
    auto seq = [&](std::size_t i) {
        std::vector<int> out;
        for (std::size_t t = 0; t < 4; ++t) out.push_back(s[t * neurons + i]);
        return out;
    };
    CHECK(seq(0) == std::vector<int>{1, 1, 1, 1});
    CHECK(seq(1) == std::vector<int>{0, 1, 0, 1});
    CHECK(seq(2) == std::vector<int>{0, 0, 0, 0});
    CHECK(seq(3) == std::vector<int>{0, 1, 0, 1});
    CHECK(seq(4) == std::vector<int>{0, 0, 0, 0});
    // channel-major: channel 1 holds the same picture
    CHECK(s[64 + 0] == 1);
}

TEST_CASE("each attention variant computes s*C*V or s*B(C,delta)*V (minus V-bar) by hand") {
    for (const auto& vi : evformer::models::kAttentionVariants) {
        CAPTURE(vi.name);
        auto spec = small_spec(vi.variant);
        auto w = m::init_weights(spec, 7);
        // strong q/k/v drive so that they spike in evaluation (BN running stats are neutral)
        std::mt19937 rng(11);
        std::normal_distribution<float> n01(0.f, 1.f);
        for (const char* name : {"q", "k", "v"}) {
            for (auto& x : w.at(fmt::format("blocks/0/attn/{}_linear/weight", name)).data)
                x = 0.3f * n01(rng);
            for (auto& x : w.at(fmt::format("blocks/0/attn/{}_linear/bias", name)).data) x = 1.2f;
        }
        // a non-trivial running state: Δ = 0.5 per head, V̄ = 0.01·(c + 1)
        for (auto& v : w.at("blocks/0/attn/c_mean").data) v = 0.5f;
        auto& vbar = w.at("blocks/0/attn/v_bar").data;
        for (std::size_t c = 0; c < vbar.size(); ++c) vbar[c] = 0.01f * float(c + 1);
        m::DenseSpikformer net(w);
        const auto x = random_images(2, 64, 3);
        m::SpikeProbe probe;
        net.forward_eval(x.data(), 2, &probe);
        const std::size_t n = spec.tokens(), d = spec.dim, dh = spec.head_dim();
        const auto& q = probe.spikes["blocks/0/attn/q_lif"];
        const auto& k = probe.spikes["blocks/0/attn/k_lif"];
        const auto& v = probe.spikes["blocks/0/attn/v_lif"];
        const auto& cur = probe.currents["blocks/0/attn/attn_input"];
        const auto delta = net.delta(0);
        CHECK(delta[0] == doctest::Approx(vi.adaptive_threshold ? 0.5 : 0.0));
        std::size_t checked = 0, nonzero = 0;
        for (std::size_t bt = 0; bt < 2 * spec.time_steps; ++bt)
            for (std::size_t h = 0; h < spec.heads; ++h)
                for (std::size_t i = 0; i < n; ++i)
                    for (std::size_t e = 0; e < dh; ++e) {
                        double acc = 0;
                        for (std::size_t j = 0; j < n; ++j) {
                            int c = 0;
                            for (std::size_t f = 0; f < dh; ++f)
                                c += q[(bt * n + i) * d + h * dh + f] *
                                     k[(bt * n + j) * d + h * dh + f];
                            double a = c;
                            if (vi.binary) {
                                const double thr = vi.adaptive_threshold ? 0.5 : 0.0;
                                a = c > thr ? 1.0 : 0.0;
                            }
                            acc += a * v[(bt * n + j) * d + h * dh + e];
                        }
                        double expect = 0.125 * acc;
                        if (vi.shift) expect -= 0.01 * double(h * dh + e + 1);
                        nonzero += acc != 0;
                        CHECK(cur[(bt * n + i) * d + h * dh + e] ==
                              doctest::Approx(expect).epsilon(1e-5));
                        ++checked;
                    }
        CHECK(checked == 2 * spec.time_steps * n * d);
        CHECK(nonzero > 0);
        // attn_lif fires at v >= 0.5 on that current
        const auto& a = probe.spikes["blocks/0/attn/attn_lif"];
        for (std::size_t b = 0; b < 2; ++b)
            for (std::size_t idx = 0; idx < n * d; idx += 7) {
                std::vector<float> xs;
                std::vector<int> got;
                for (std::size_t t = 0; t < spec.time_steps; ++t) {
                    xs.push_back(cur[(b * spec.time_steps + t) * n * d + idx]);
                    got.push_back(a[(b * spec.time_steps + t) * n * d + idx]);
                }
                CHECK(got == lif_by_hand(xs, 0.5f));
            }
    }
}

TEST_CASE("running C mean and V-bar update after each training batch and freeze in evaluation") {
    auto spec = small_spec(AttentionVariant::ssa);
    m::DenseSpikformer net(m::init_weights(spec, 5));
    const auto x = random_images(4, 64, 9);
    const int labels[4] = {0, 1, 2, 3};
    CHECK(net.delta(0)[0] == 0.f);
    net.train_step(x.data(), labels, 4);
    const auto c1 = net.weights().at("blocks/0/attn/c_mean").data;
    const auto v1 = net.v_bar(0);
    double c_total = 0, v_total = 0;
    for (float c : c1) c_total += c;
    for (float v : v1) v_total += std::abs(v);
    CHECK(c_total > 0);
    CHECK(v_total > 0);
    // the same batch again (training BN uses batch statistics, so the spikes repeat):
    // running ← μ·running + (1 − μ)·batch = 0.99·r1 + r1 = 1.99·r1
    net.train_step(x.data(), labels, 4);
    const auto c2 = net.weights().at("blocks/0/attn/c_mean").data;
    const auto v2 = net.v_bar(0);
    for (std::size_t h = 0; h < c1.size(); ++h) CHECK(c2[h] == doctest::Approx(1.99 * c1[h]));
    for (std::size_t c = 0; c < v1.size(); ++c) CHECK(v2[c] == doctest::Approx(1.99 * v1[c]));
    // Δ = λ·c_mean only for the adaptive variants
    CHECK(net.delta(0)[0] == 0.f);
    // evaluation leaves them alone
    net.forward_eval(x.data(), 4);
    CHECK(net.weights().at("blocks/0/attn/c_mean").data == c2);
    CHECK(net.v_bar(0) == v2);

    auto spec_bin = small_spec(AttentionVariant::ssa_bin);
    spec_bin.attention.lambda = 2.0;
    m::DenseSpikformer bin(m::init_weights(spec_bin, 5));
    bin.train_step(x.data(), labels, 4);
    const auto cm = bin.weights().at("blocks/0/attn/c_mean").data;
    CHECK(bin.delta(0)[1] == doctest::Approx(2.0 * cm[1]));
}
