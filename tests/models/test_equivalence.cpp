#include <doctest/doctest.h>

#include <filesystem>

#include "evformer/io/idx.hpp"
#include "evformer/models/attention_variant.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/network.hpp"

namespace m = evformer::models;
namespace sim = evformer::sim;

namespace {

struct Images {
    std::size_t count = 0;
    std::vector<std::uint8_t> pixels;  // [count][28][28]
};

// Test images: Fashion-MNIST when installed, else seeded synthetic ones.
Images test_images(std::size_t count) {
    Images out;
    out.count = count;
    if (std::filesystem::exists(std::string(EVFORMER_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz")) {
        const auto ds = evformer::io::load_mnist_like(EVFORMER_FMNIST_DIR, "test");
        out.pixels.assign(ds.pixels.begin(), ds.pixels.begin() + long(count * 28 * 28));
        return out;
    }
    out.pixels.resize(count * 28 * 28);
    std::uint32_t s = 12345;
    for (auto& p : out.pixels) {
        s = s * 1664525u + 1013904223u;
        p = (s >> 24) > 140 ? std::uint8_t(s >> 16) : 0;
    }
    return out;
}

struct Agreement {
    std::size_t agree = 0, total = 0, same_prediction = 0, samples = 0;
    double rate() const { return double(agree) / double(total); }
};

// Runs the dense evaluation forward and the event-driven engine on the same images and compares
// the spikes of every population and the predictions.
Agreement compare(const m::ModelWeights& weights, const Images& images) {
    const auto& spec = weights.spec;
    m::DenseSpikformer dense(weights);
    std::vector<float> input(images.pixels.size());
    for (std::size_t i = 0; i < input.size(); ++i) input[i] = float(images.pixels[i]) / 255.f;
    m::SpikeProbe probe;
    const auto logits = dense.forward_eval(input.data(), images.count, &probe);

    const auto net = m::build_network(weights);
    sim::Simulator simulator(net);
    sim::SpikeRecorder recorder(net);
    const std::size_t steps = spec.time_steps;
    Agreement a;
    for (std::size_t b = 0; b < images.count; ++b) {
        recorder.clear();
        const auto r = simulator.run_image(
            m::image_currents({images.pixels.data() + b * 28 * 28, 28 * 28}, spec), &recorder);
        std::size_t dense_pred = 0;
        for (std::size_t k = 1; k < spec.classes; ++k)
            if (logits[b * spec.classes + k] > logits[b * spec.classes + dense_pred])
                dense_pred = k;
        a.same_prediction += dense_pred == r.prediction;
        ++a.samples;
        for (const auto& raster : recorder.rasters()) {
            REQUIRE_MESSAGE(probe.spikes.count(raster.name), raster.name);
            const std::size_t n = probe.neurons.at(raster.name);
            std::size_t neurons = 1;
            for (auto d : raster.shape) neurons *= d;
            REQUIRE(n == neurons);
            std::vector<std::uint8_t> mine(steps * n, 0);
            for (std::size_t e = 0; e < raster.idx.size(); ++e)
                mine[raster.time[e] * n + raster.idx[e]] = 1;
            const auto* theirs = probe.spikes.at(raster.name).data() + b * steps * n;
            for (std::size_t x = 0; x < steps * n; ++x) a.agree += mine[x] == theirs[x];
            a.total += steps * n;
        }
    }
    return a;
}

}  // namespace

TEST_CASE("engine and dense evaluation forward give the same spikes on random weights") {
    const auto images = test_images(12);
    for (auto variant :
         {m::AttentionVariant::ssa_bin, m::AttentionVariant::ssa, m::AttentionVariant::bin_mean}) {
        m::ModelSpec spec;
        spec.attention.variant = variant;
        const auto a = compare(m::random_weights(spec, 21), images);
        CAPTURE(m::info(variant).name);
        MESSAGE(m::info(variant).name << ": spike agreement " << a.rate() << ", same prediction "
                                      << a.same_prediction << "/" << a.samples);
        CHECK(a.rate() >= 0.999);
        CHECK(double(a.same_prediction) >= 0.99 * double(a.samples));
    }
}

TEST_CASE("with v_reset below 0 both executors start and reset membranes there and agree") {
    const auto images = test_images(8);
    m::ModelSpec spec;
    spec.lif.v_reset = -0.3;
    const auto a = compare(m::random_weights(spec, 5), images);
    MESSAGE("v_reset -0.3: spike agreement " << a.rate() << ", same prediction "
                                             << a.same_prediction << "/" << a.samples);
    CHECK(a.rate() >= 0.999);
    CHECK(double(a.same_prediction) >= 0.99 * double(a.samples));
}

TEST_CASE("engine and dense evaluation forward agree on the shipped trained models") {
    for (const char* name : {"fmnist-ssa-bin.h5", "fmnist-ssa.h5"}) {
        const auto path = std::filesystem::path(EVFORMER_SOURCE_DIR) / "examples/models" / name;
        if (!std::filesystem::exists(path)) {
            MESSAGE(path.string() << " not shipped yet; skipped");
            continue;
        }
        const auto a = compare(m::load_weights(path), test_images(32));
        CAPTURE(name);
        CHECK(a.rate() >= 0.999);
        CHECK(a.same_prediction == a.samples);
    }
}
