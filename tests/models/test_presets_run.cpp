// Every preset builds, trains a step and simulates a sample on random weights: the dense trainer
// and the event-driven engine both run the paper-sized models (3-channel 32×32 images, 2×128×128
// event frames), and the engine agrees with the dense forward on the same sample.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "evformer/io/samples.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/presets.hpp"
#include "evformer/sim/network.hpp"

namespace io = evformer::io;
namespace m = evformer::models;
namespace sim = evformer::sim;

namespace {

bool event_input(const m::ModelSpec& s) {
    return s.in_channels == 2;
}

// One random sample of the spec's input in both executors' forms: an image of uniform 8-bit
// pixels (dense: pixel/255 as [C, H, W]), or T event frames in which each pixel and polarity holds
// 1-3 events with probability 1/10 (dense: [T, C, H, W] counts).
struct Sample {
    std::vector<float> dense;
    std::vector<std::uint8_t> pixels;
    io::SparseFrames events;
};

Sample random_sample(const m::ModelSpec& s, std::uint32_t seed) {
    std::mt19937 rng(seed);
    Sample out;
    if (!event_input(s)) {
        out.pixels.resize(s.in_channels * s.in_height * s.in_width);
        for (auto& p : out.pixels) p = static_cast<std::uint8_t>(rng() % 256);
        for (auto p : out.pixels) out.dense.push_back(float(p) / 255.f);
        return out;
    }
    io::FrameTensor f;
    f.frames = s.time_steps;
    f.height = s.in_height;
    f.width = s.in_width;
    f.data.assign(s.time_steps * 2 * s.in_height * s.in_width, 0.f);
    for (auto& v : f.data)
        if (rng() % 10 == 0) v = float(1 + rng() % 3);
    out.events = io::SparseFrames::from_dense(f);
    out.dense = std::move(f.data);
    return out;
}

// The engine's run of the sample, its input converted as `evformer run` converts it.
sim::SampleResult simulate(const sim::Network& net, const m::ModelSpec& s, const Sample& x) {
    sim::Simulator simulator(net);
    if (!event_input(s)) return simulator.run_image(m::image_currents(x.pixels, s));
    return simulator.run_events(m::engine_events(x.events));
}

bool all_finite(const std::vector<float>& v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

}  // namespace

TEST_CASE("every preset trains one step and simulates one sample on random weights") {
    for (const auto& preset : m::model_presets()) {
        CAPTURE(preset.name);
        const auto& spec = preset.spec;
        const auto weights = m::random_weights(spec, 7);
        const auto layout =
            event_input(spec) ? m::InputLayout::event_frames : m::InputLayout::static_image;

        // one training step (forward and backward) on a batch of two
        m::DenseSpikformer net(weights);
        auto batch = random_sample(spec, 1).dense;
        const auto second = random_sample(spec, 2).dense;
        batch.insert(batch.end(), second.begin(), second.end());
        const int labels[2] = {0, int(spec.classes - 1)};
        const auto step = net.train_step(batch.data(), labels, 2, {}, layout);
        CHECK(std::isfinite(step.loss));
        CHECK(step.loss > 0);
        CHECK(step.nonfinite_samples == 0);
        for (const char* name :
             {"sps/conv0/weight", "head/weight", "blocks/0/attn/q_linear/weight"}) {
            CAPTURE(name);
            const auto& g = net.gradients().at(name).data;
            CHECK(all_finite(g));
            double norm = 0;
            for (float v : g) norm += double(v) * v;
            CHECK(norm > 0);  // the loss reaches the first conv through every layer
        }

        // one sample, event by event, against the dense evaluation forward of the same weights
        const auto x = random_sample(spec, 3);
        m::DenseSpikformer dense(weights);
        m::SpikeProbe probe;
        const auto logits = dense.forward_eval(x.dense.data(), 1, &probe, layout);
        const auto engine_net = m::build_network(weights);
        const auto r = simulate(engine_net, spec, x);
        REQUIRE(r.logits.size() == spec.classes);
        CHECK(all_finite(r.logits));
        CHECK(r.time_steps == spec.time_steps);
        std::uint64_t sops = 0, spikes = 0;
        for (const auto& c : r.counts) {
            sops += c.sops;
            spikes += c.spikes;
        }
        CHECK(sops > 0);
        std::uint64_t dense_spikes = 0;
        for (const auto& [population, s] : probe.spikes)
            for (auto v : s) dense_spikes += v;
        CHECK(spikes > 0);
        // the two executors compute the same network; float sums in another order may flip a
        // neuron sitting on its threshold, so the totals agree to a fraction of a percent
        CHECK(double(spikes) == doctest::Approx(double(dense_spikes)).epsilon(0.01));
        double max_diff = 0, max_logit = 0;
        for (std::size_t k = 0; k < spec.classes; ++k) {
            max_diff = std::max(max_diff, double(std::fabs(r.logits[k] - logits[k])));
            max_logit = std::max(max_logit, double(std::fabs(logits[k])));
        }
        CHECK(max_diff <= 0.05 * max_logit + 1e-3);
    }
}
