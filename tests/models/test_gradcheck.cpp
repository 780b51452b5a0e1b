#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "evformer/models/attention_variant.hpp"
#include "evformer/models/network.hpp"

namespace m = evformer::models;

namespace {

m::ModelSpec tiny_spec(evformer::models::AttentionVariant variant, bool pooling = false) {
    m::ModelSpec spec;
    spec.dim = 16;
    spec.heads = 2;
    spec.blocks = 1;
    spec.time_steps = 2;
    spec.in_height = 8;
    spec.in_width = 8;
    spec.classes = 3;
    spec.pool_after = {false, false, false, false};
    spec.in_height = spec.in_width = 5;
    if (pooling) {  // 7×7 → pool → 4×4 → pool → 2×2 tokens
        spec.pool_after = {false, false, true, true};
        spec.in_height = spec.in_width = 7;
    }
    spec.attention.variant = variant;
    return spec;
}

// Checks every trainable tensor at a few entries against central finite differences of the
// training loss in smooth mode; with `events`, the input is T frames of two-channel counts.
void check_gradients(evformer::models::AttentionVariant variant, bool pooling = false,
                     bool events = false) {
    auto spec = tiny_spec(variant, pooling);
    if (events) spec.in_channels = 2;
    const auto layout = events ? m::InputLayout::event_frames : m::InputLayout::static_image;
    auto w = m::init_weights(spec, 11);
    // larger linear weights than the init so the smooth spikes carry signal through every layer
    std::mt19937 rng(5);
    std::normal_distribution<float> n01(0.f, 1.f);
    for (auto& [name, t] : w.tensors)
        if (name.find("_linear/weight") != std::string::npos || name.find("head/") == 0)
            for (auto& v : t.data) v = 0.3f * n01(rng);
    for (auto& [name, t] : w.tensors)
        if (name.find("c_mean") != std::string::npos)
            for (auto& v : t.data) v = 0.5f;
    m::DenseSpikformer net(w);
    const std::size_t batch = 3;
    std::vector<float> x(batch * (events ? spec.time_steps : 1) * spec.in_channels *
                         spec.in_height * spec.in_width);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (auto& v : x) v = events ? float(rng() % 3) : u(rng);  // event counts 0..2
    const int labels[batch] = {0, 2, 1};
    m::TrainOptions opt;
    opt.smooth = true;
    opt.update_running = false;
    net.train_step(x.data(), labels, batch, opt, layout);
    const auto grads = net.gradients();
    std::size_t checked = 0, kinks = 0;
    for (const auto& [name, g] : grads) {
        auto& param = net.mutable_weights().at(name);
        const std::size_t n = param.size();
        for (std::size_t probe = 0; probe < 3; ++probe) {
            const std::size_t i = (probe * 7919 + 13) % n;
            const float orig = param.data[i];
            const float eps = 2e-3f;
            param.data[i] = orig + eps;
            const double lp = net.train_loss(x.data(), labels, batch, opt, layout);
            param.data[i] = orig - eps;
            const double lm = net.train_loss(x.data(), labels, batch, opt, layout);
            param.data[i] = orig;
            const double fd = (lp - lm) / (2.0 * eps);
            const double an = g.data[i];
            const auto close = [](double a, double b) {
                return std::abs(a - b) <= 2e-3 + 0.05 * std::max(std::abs(a), std::abs(b));
            };
            if (pooling && !close(an, fd)) {
                // A max-pool window whose two largest inputs swap order inside [−ε, ε] makes
                // the loss a kink there: the one-sided differences disagree, and the central
                // difference is no derivative. Such probes are counted, not compared.
                const double l0 = net.train_loss(x.data(), labels, batch, opt, layout);
                const double right = (lp - l0) / eps, left = (l0 - lm) / eps;
                if (!close(right, left)) {
                    ++kinks;
                    continue;
                }
            }
            INFO(name, "[", i, "] analytic ", an, " numeric ", fd);
            CHECK(close(an, fd));
            ++checked;
        }
    }
    CHECK(checked > 60);
    CHECK(kinks <= 2);
}

}  // namespace

TEST_CASE("smooth-mode backward matches finite differences for ssa") {
    check_gradients(evformer::models::AttentionVariant::ssa);
}

TEST_CASE("smooth-mode backward matches finite differences for ssa-bin (batch shift, Δ)") {
    check_gradients(evformer::models::AttentionVariant::ssa_bin);
}

TEST_CASE("smooth-mode backward matches finite differences for bin") {
    check_gradients(evformer::models::AttentionVariant::bin);
}

TEST_CASE("smooth-mode backward matches finite differences through both max-pools") {
    check_gradients(evformer::models::AttentionVariant::ssa_bin, true);
}

TEST_CASE("smooth-mode backward matches finite differences for bin-shift (shift, no Δ)") {
    check_gradients(evformer::models::AttentionVariant::bin_shift);
}

TEST_CASE("smooth-mode backward matches finite differences for bin-mean (Δ, no shift)") {
    check_gradients(evformer::models::AttentionVariant::bin_mean);
}

TEST_CASE("smooth-mode backward matches finite differences on event frames") {
    // two input channels and T distinct frames: the event-frame input layout
    check_gradients(evformer::models::AttentionVariant::ssa_bin, false, true);
}
