// Event recordings through both executors: the engine receives per-step event lists (first conv
// event-driven, counted in SOPs), the dense trainer the same counts as frames; they must agree on
// spikes and predictions. Also: a tiny training run on real N-MNIST recordings learns.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include "evformer/error.hpp"
#include "evformer/io/samples.hpp"
#include "evformer/models/attention_variant.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/trainer.hpp"
#include "support.hpp"

namespace m = evformer::models;
namespace io = evformer::io;
namespace sim = evformer::sim;

namespace {

const std::filesystem::path events_dir = EVFORMER_EVENTS_DATA;

m::ModelSpec event_spec(std::size_t steps) {
    m::ModelSpec spec;
    spec.in_channels = 2;
    spec.in_height = spec.in_width = 34;
    spec.time_steps = steps;
    spec.pool_after = {false, true, true, true};
    return spec;
}

std::unique_ptr<io::SampleSource> recordings(const m::ModelSpec& spec, std::size_t count) {
    return io::open_samples(
        m::sample_options(spec, (events_dir / "nmnist_test100").string(), "test", "number", count));
}

struct Agreement {
    std::map<std::string, std::pair<std::size_t, std::size_t>> per_population;  // agree, total
    std::size_t same_prediction = 0, samples = 0;
    double worst() const {
        double w = 1;
        for (const auto& [name, at] : per_population)
            w = std::min(w, double(at.first) / double(at.second));
        return w;
    }
};

// The dense evaluation forward on the frames and the engine on the event lists of the same
// recordings: spikes of every population and predictions.
Agreement compare(const m::ModelWeights& weights, const io::SampleSource& samples) {
    const auto& spec = weights.spec;
    m::DenseSpikformer dense(weights);
    const std::size_t n = samples.size(), plane = samples.dense_size();
    std::vector<float> input(n * plane);
    for (std::size_t i = 0; i < n; ++i) samples.dense(i, input.data() + i * plane);
    m::SpikeProbe probe;
    const auto logits = dense.forward_eval(input.data(), n, &probe, m::InputLayout::event_frames);

    const auto net = m::build_network(weights);
    sim::Simulator simulator(net);
    sim::SpikeRecorder recorder(net);
    const std::size_t steps = spec.time_steps;
    Agreement a;
    for (std::size_t b = 0; b < n; ++b) {
        recorder.clear();
        const auto r = simulator.run_events(m::engine_events(samples.events(b)), &recorder);
        std::size_t dense_pred = 0;
        for (std::size_t k = 1; k < spec.classes; ++k)
            if (logits[b * spec.classes + k] > logits[b * spec.classes + dense_pred])
                dense_pred = k;
        a.same_prediction += dense_pred == r.prediction;
        ++a.samples;
        for (const auto& raster : recorder.rasters()) {
            REQUIRE_MESSAGE(probe.spikes.count(raster.name), raster.name);
            const std::size_t neurons = probe.neurons.at(raster.name);
            std::vector<std::uint8_t> mine(steps * neurons, 0);
            for (std::size_t e = 0; e < raster.idx.size(); ++e)
                mine[raster.time[e] * neurons + raster.idx[e]] = 1;
            const auto* theirs = probe.spikes.at(raster.name).data() + b * steps * neurons;
            auto& at = a.per_population[raster.name];
            for (std::size_t x = 0; x < steps * neurons; ++x) at.first += mine[x] == theirs[x];
            at.second += steps * neurons;
        }
    }
    return a;
}

}  // namespace

TEST_CASE("engine on event lists and dense forward on frames agree on random weights") {
    const auto spec0 = event_spec(8);
    const auto samples = recordings(spec0, 10);
    for (auto variant :
         {m::AttentionVariant::ssa_bin, m::AttentionVariant::ssa, m::AttentionVariant::bin_shift}) {
        auto spec = spec0;
        spec.attention.variant = variant;
        const auto a = compare(m::random_weights(spec, 5), *samples);
        CAPTURE(m::info(variant).name);
        MESSAGE(m::info(variant).name << ": worst population agreement " << a.worst()
                                      << ", same prediction " << a.same_prediction << "/"
                                      << a.samples);
        CHECK(a.per_population.size() == 5 + 7 * spec.blocks);
        CHECK(a.worst() >= 0.999);
        CHECK(a.same_prediction == a.samples);
    }
}

TEST_CASE("engine and dense forward agree on the shipped N-MNIST models and real recordings") {
    for (const char* name : {"nmnist-ssa-bin.h5", "nmnist-ssa.h5"}) {
        const auto path = std::filesystem::path(EVFORMER_SOURCE_DIR) / "examples/models" / name;
        if (!std::filesystem::exists(path)) {
            MESSAGE(path.string() << " not shipped yet; skipped");
            continue;
        }
        const auto weights = m::load_weights(path);
        const auto samples = recordings(weights.spec, 100);
        const auto a = compare(weights, *samples);
        CAPTURE(name);
        MESSAGE(std::string(name) << ": worst population agreement " << a.worst()
                                  << ", same prediction " << a.same_prediction << "/" << a.samples);
        CHECK(a.worst() >= 0.999);
        CHECK(a.same_prediction == a.samples);
    }
}

TEST_CASE("run and eval give the same accuracy on the same binned recordings") {
    auto spec = event_spec(4);
    const auto weights = m::random_weights(spec, 9);
    const auto samples = recordings(spec, 12);
    m::DenseSpikformer dense(weights);
    const auto eval = m::evaluate(dense, *samples, 0, 5);
    m::SimulationOptions so;
    so.threads = 1;
    const auto run = m::simulate_dataset(weights, *samples, so, "random");
    CHECK(run.report.samples == 12);
    CHECK(double(run.report.correct) / 12.0 == doctest::Approx(eval.accuracy));
    // the first conv is event-driven on event input: SOPs, no MACs
    const auto& first = run.report.layers.front();
    CHECK(first.name == "sps/lif0");
    CHECK(first.sops > 0);
    CHECK(first.macs == 0);
    CHECK(first.kind == sim::LayerKind::conv);
    CHECK(first.macs_estimated == 0);
    CHECK(first.sops_estimated > 0);  // the paper's fr_in × T × FLOPs over the input events
    CHECK(run.report.data.find("nmnist_test100") != std::string::npos);
}

TEST_CASE(
    "an input event of count m at a corner reaches 4 positions per output channel: 4·C·m SOPs") {
    const auto spec = event_spec(2);
    const auto weights = m::random_weights(spec, 3);
    const auto net = m::build_network(weights);
    sim::Simulator simulator(net);
    io::SparseFrames f;
    f.frames = 2;
    f.channels = 2;
    f.height = f.width = 34;
    f.frame_begin = {0, 1, 2};
    f.index = {0, 34 * 34 + 33 * 34 + 16};  // OFF at (0, 0); ON at (16, 33), a bottom edge
    f.count = {3, 1};
    const auto lists = m::engine_events(f);
    REQUIRE(lists[0].neuron == std::vector<std::uint32_t>{0});
    REQUIRE(lists[1].neuron == std::vector<std::uint32_t>{(33 * 34 + 16) * 2 + 1});
    const auto r = simulator.run_events(lists);
    const std::size_t c0 = spec.stage_channels(0);
    CHECK(r.at(0, 0).sops == 4 * c0 * 3);
    CHECK(r.at(0, 0).input_events == 3);
    CHECK(r.at(0, 1).sops == 6 * c0);  // an edge pixel reaches 2 rows × 3 columns
    CHECK(r.at(0, 0).macs == 0);
}

TEST_CASE("a tiny training run on real N-MNIST recordings lowers the loss") {
    evformer::test::ScratchDir dir;
    m::TrainConfig c;
    c.data = (events_dir / "nmnist_train900").string();
    c.test_data = (events_dir / "nmnist_test100").string();
    c.model = event_spec(4);
    c.epochs = 5;
    c.batch = 8;
    c.limit_train = 96;
    c.limit_test = 20;
    c.warmup_epochs = 0.5;
    c.event_drop = 0.05;
    c.out = dir / "tiny.h5";
    std::vector<double> loss;
    m::train(c, false, "test", [&](const m::Progress& p) {
        if (p.epoch_end) loss.push_back(p.loss);
    });
    REQUIRE(loss.size() == 5);
    MESSAGE("loss " << loss[0] << " -> " << loss[4]);
    CHECK(loss[4] < loss[0] - 0.2);
    const auto w = m::load_weights(c.out);
    CHECK(w.spec.in_channels == 2);

    // a one-split folder needs a test folder
    auto no_test = c;
    no_test.test_data.clear();
    CHECK_THROWS_WITH_AS(m::train(no_test, false, "test"), doctest::Contains("--test-data"),
                         evformer::ConfigError);
    // a model of the wrong input shape is refused before any work
    auto wrong = c;
    wrong.model.in_channels = 1;
    CHECK_THROWS_AS(m::train(wrong, false, "test"), evformer::ConfigError);
}

TEST_CASE("the spec's crop window and input size decide how recordings are binned") {
    auto spec = event_spec(4);
    spec.input_crop = {2, 3, 30, 28};
    spec.in_width = 15;  // 30 → 15: 2×1 blocks summed
    spec.in_height = 28;
    const auto samples = recordings(spec, 2);
    CHECK(samples->shape() == io::SampleShape{2, 28, 15, 4});
    // the round trip through the weights' JSON keeps the window
    CHECK(m::ModelSpec::from_json(spec.to_json()).input_crop == spec.input_crop);
    spec.input_crop = {10, 10, 30, 30};  // 10 + 30 > 34
    CHECK_THROWS_WITH_AS(recordings(spec, 1), doctest::Contains("must lie inside the 34x34 sensor"),
                         evformer::ConfigError);
}
