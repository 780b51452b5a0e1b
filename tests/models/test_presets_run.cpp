// Every preset builds, trains a step and simulates a sample on random weights: the dense trainer
// and the event-driven engine both run the paper-sized models (3-channel 32×32 images, 2×128×128
// event frames), and the engine agrees with the dense forward on the same sample.
#include <doctest/doctest.h>

#include <cmath>

#include "evformer/models/builder.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/presets.hpp"
#include "evformer/models/random_input.hpp"
#include "evformer/sim/network.hpp"

namespace m = evformer::models;
namespace sim = evformer::sim;

namespace {

bool event_input(const m::ModelSpec& s) {
    return s.in_channels == 2;
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
        auto batch = m::random_input(spec, layout, 1).dense;
        const auto second = m::random_input(spec, layout, 2).dense;
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
        const auto x = m::random_input(spec, layout, 3);
        m::DenseSpikformer dense(weights);
        m::SpikeProbe probe;
        const auto logits = dense.forward_eval(x.dense.data(), 1, &probe, layout);
        const auto engine_net = m::build_network(weights);
        sim::Simulator simulator(engine_net);
        const auto r = x.simulate(simulator, spec);
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
