#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "evformer/error.hpp"
#include "evformer/models/network.hpp"

namespace m = evformer::models;

namespace {

m::ModelSpec small_spec() {
    m::ModelSpec spec;
    spec.dim = 16;
    spec.heads = 2;
    spec.blocks = 1;
    spec.time_steps = 3;
    spec.in_height = 12;
    spec.in_width = 10;
    return spec;
}

std::vector<float> random_images(const m::ModelSpec& spec, std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> x(n * spec.in_channels * spec.in_height * spec.in_width);
    for (auto& v : x) v = u(rng);
    return x;
}

}  // namespace

TEST_CASE("the evaluation forward pass returns logits and records every population") {
    const auto spec = small_spec();
    m::DenseSpikformer net(m::init_weights(spec, 1));
    const auto x = random_images(spec, 3, 2);
    m::SpikeProbe probe;
    const auto logits = net.forward_eval(x.data(), 3, &probe);
    CHECK(logits.size() == 3 * spec.classes);
    for (float v : logits) CHECK(std::isfinite(v));
    const auto names = net.population_names();
    CHECK(names.size() == 5 + 7 * spec.blocks);
    for (const auto& n : names) {
        REQUIRE(probe.spikes.count(n) == 1);
        CHECK(probe.spikes[n].size() == 3 * spec.time_steps * probe.neurons[n]);
    }
    CHECK(probe.neurons["sps/lif0"] == 2 * 12 * 10);
    CHECK(probe.neurons["sps/lif3"] == 16 * 6 * 5);
    CHECK(probe.neurons["sps/rpe_lif"] == 16 * 3 * 3);
    CHECK(probe.neurons["blocks/0/mlp/fc1_lif"] == 9 * 64);
    // a batch of one gives the same spikes and logits as its row in a larger batch
    m::SpikeProbe one;
    const auto l1 = net.forward_eval(x.data() + 120, 1, &one);
    for (std::size_t j = 0; j < spec.classes; ++j)
        CHECK(l1[j] == doctest::Approx(logits[spec.classes + j]).epsilon(1e-5));
    const auto n0 = probe.neurons["blocks/0/attn/attn_lif"] * spec.time_steps;
    CHECK(std::equal(one.spikes["blocks/0/attn/attn_lif"].begin(),
                     one.spikes["blocks/0/attn/attn_lif"].end(),
                     probe.spikes["blocks/0/attn/attn_lif"].begin() + static_cast<long>(n0)));
}

TEST_CASE("event frames with identical frames give the static-image result") {
    const auto spec = small_spec();
    m::DenseSpikformer net(m::init_weights(spec, 3));
    const auto x = random_images(spec, 2, 4);
    const std::size_t plane = 120;
    std::vector<float> frames;
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < spec.time_steps; ++t)
            frames.insert(frames.end(), x.begin() + static_cast<long>(b * plane),
                          x.begin() + static_cast<long>((b + 1) * plane));
    const auto a = net.forward_eval(x.data(), 2);
    const auto e = net.forward_eval(frames.data(), 2, nullptr, m::InputLayout::event_frames);
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(e[i]));
}

TEST_CASE("a head wider than 256 channels runs (D/H has no bound in the spec)") {
    // regression: the attention accumulator was a float[256] indexed up to D/H
    auto spec = small_spec();
    spec.dim = 320;
    spec.heads = 1;
    spec.in_height = spec.in_width = 4;
    spec.pool_after = {false, false, false, false};
    spec.time_steps = 1;
    m::DenseSpikformer net(m::init_weights(spec, 3));
    const auto x = random_images(spec, 2, 4);
    const auto logits = net.forward_eval(x.data(), 2);
    REQUIRE(logits.size() == 2 * spec.classes);
    for (float l : logits) CHECK(std::isfinite(l));
    std::vector<int> labels{1, 2};
    const auto r = net.train_step(x.data(), labels.data(), 2);
    CHECK(std::isfinite(r.loss));
}
