// `evformer bench run [MODEL.h5]`: speed of the event-driven engine, one sample at a time on one
// core, against baselines run in the same process: the project's dense evaluation forward
// (DenseSpikformer, batch 1 and 64), a plain fan-out loop (a weight row added per event, the
// physical reference for SOP throughput) and the PyTorch CPU anchors measured on this machine.
// A sweep over input intensity shows the cost growing with the number of events. For an event
// model (two input channels) it times real recordings instead and adds the real-time factor.
#include <fmt/format.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/idx.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/trainer.hpp"
#include "evformer/models/weights.hpp"
#include "option_groups.hpp"

namespace evformer::tools {
namespace {

constexpr double kTorchBatch1Ms = 6.9;   // PyTorch 1.13 CPU, batch 1, one thread (issue anchor)
constexpr double kTorchBatch64Ms = 3.0;  // per sample at batch 64

struct BenchOptions {
    std::string model;
    DataOptions data;
    std::size_t samples = 200;
    std::string save_weights;
    std::string json;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The physical reference: one contiguous row of `width` floats added per event into a target
// row of an accumulator. Returns SOPs per second.
double fanout_loop(std::size_t width) {
    const std::size_t rows = 256, targets = 49, events = 1 << 20;
    std::mt19937 rng(1);
    std::vector<float> w(rows * width), acc(targets * width, 0.f);
    for (auto& x : w) x = float(rng() % 100) * 0.01f;
    std::vector<std::uint32_t> row(events), target(events);
    for (std::size_t e = 0; e < events; ++e) {
        row[e] = std::uint32_t(rng() % rows);
        target[e] = std::uint32_t(rng() % targets);
    }
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t e = 0; e < events; ++e) {
            float* __restrict a = acc.data() + target[e] * width;
            const float* __restrict r = w.data() + row[e] * width;
            for (std::size_t k = 0; k < width; ++k) a[k] += r[k];
        }
        best = std::min(best, seconds_since(start));
    }
    volatile float sink = acc[0];
    (void)sink;
    return double(events * width) / best;
}

// CPU time of the calling thread: on a shared machine it excludes the time the thread waited
// for a core, which wall time does not.
double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct EngineRun {
    double ms_per_sample = 0, cpu_ms_per_sample = 0, sops = 0, spikes = 0, macs = 0;
    std::size_t correct = 0;
};

EngineRun run_engine(const sim::Network& net, const models::ModelSpec& spec,
                     const io::ImageDataset& data, std::size_t count, float gain, int threshold) {
    sim::Simulator simulator(net);
    std::vector<std::vector<float>> inputs;
    for (std::size_t i = 0; i < count; ++i) {
        std::vector<std::uint8_t> px(data.image(i), data.image(i) + data.rows * data.cols);
        for (auto& p : px) {
            if (threshold >= 0) p = p > threshold ? 255 : 0;
            p = std::uint8_t(std::min(255.f, float(p) * gain));
        }
        inputs.push_back(models::image_currents(px, spec));
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(5, count); ++i)
        simulator.run_image(inputs[i]);  // warm-up
    EngineRun r;
    const double cpu_start = thread_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < count; ++i) {
        const auto res = simulator.run_image(inputs[i]);
        const auto t = res.total();
        r.sops += double(t.sops);
        r.spikes += double(t.spikes);
        r.macs += double(t.macs);
        r.correct += res.prediction == data.labels[i];
    }
    const double s = seconds_since(start);
    r.ms_per_sample = 1e3 * s / double(count);
    r.cpu_ms_per_sample = 1e3 * (thread_cpu_seconds() - cpu_start) / double(count);
    r.sops /= double(count);
    r.spikes /= double(count);
    r.macs /= double(count);
    return r;
}

// Per-sample milliseconds of the dense evaluation forward at a batch size.
double dense_ms(const models::ModelWeights& weights, const io::ImageDataset& data,
                std::size_t batch, std::size_t count) {
    models::DenseSpikformer dense(weights);
    const std::size_t px = data.rows * data.cols;
    std::vector<float> input(batch * px);
    const std::size_t batches = std::max<std::size_t>(1, count / batch);
    auto fill = [&](std::size_t first) {
        for (std::size_t b = 0; b < batch; ++b) {
            const auto* img = data.image((first + b) % data.count);
            for (std::size_t p = 0; p < px; ++p) input[b * px + p] = float(img[p]) / 255.f;
        }
    };
    fill(0);
    dense.forward_eval(input.data(), batch);  // warm-up
    double total = 0;
    for (std::size_t k = 0; k < batches; ++k) {
        fill(k * batch);
        const auto start = std::chrono::steady_clock::now();
        dense.forward_eval(input.data(), batch);
        total += seconds_since(start);
    }
    return 1e3 * total / double(batches * batch);
}

// Event recordings: the engine on per-step event lists (first conv event-driven), the dense
// forward on the same frames at batch 1 and 64, and the real-time factor (recording time
// simulated per second of wall time).
void bench_events(const models::ModelWeights& weights, const std::string& label,
                  const BenchOptions& opt) {
    // with the JSON on stdout, the text report goes to stderr so stdout holds JSON only
    std::FILE* text = opt.json == "-" ? stderr : stdout;
    auto data_opt = opt.data;
    if (data_opt.limit == 0) data_opt.limit = opt.samples;
    const auto samples = open_data(data_opt, weights.spec);
    models::check_samples_fit(weights.spec, *samples, label);
    const std::size_t count = samples->size();
    const auto net = models::build_network(weights);
    fmt::print(text, "evformer bench run — {}; {}; one core\n", label, samples->describe());
    std::vector<std::vector<sim::EventList>> inputs;
    double recorded_us = 0, input_events = 0;
    for (std::size_t i = 0; i < count; ++i) {
        inputs.push_back(models::engine_events(samples->events(i)));
        recorded_us += double(samples->events(i).duration_us);
        input_events += double(samples->events(i).events());
    }
    sim::Simulator simulator(net);
    for (std::size_t i = 0; i < std::min<std::size_t>(5, count); ++i)
        simulator.run_events(inputs[i]);  // warm-up
    EngineRun engine;
    const double cpu_start = thread_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < count; ++i) {
        const auto res = simulator.run_events(inputs[i]);
        const auto t = res.total();
        engine.sops += double(t.sops);
        engine.spikes += double(t.spikes);
        engine.correct += res.prediction == samples->label(i);
    }
    const double wall = seconds_since(start);
    engine.ms_per_sample = 1e3 * wall / double(count);
    engine.cpu_ms_per_sample = 1e3 * (thread_cpu_seconds() - cpu_start) / double(count);
    engine.sops /= double(count);
    engine.spikes /= double(count);
    const double sops_per_s = engine.sops / (engine.ms_per_sample * 1e-3);

    auto dense_ms_events = [&](std::size_t batch) {
        models::DenseSpikformer dense(weights);
        const std::size_t plane = samples->dense_size();
        std::vector<float> input(batch * plane);
        const std::size_t batches =
            std::max<std::size_t>(1, std::min<std::size_t>(count, 128) / batch);
        auto fill = [&](std::size_t first) {
            for (std::size_t b = 0; b < batch; ++b)
                samples->dense((first + b) % count, input.data() + b * plane);
        };
        fill(0);
        dense.forward_eval(input.data(), batch, nullptr, models::InputLayout::event_frames);
        double total = 0;
        for (std::size_t k = 0; k < batches; ++k) {
            fill(k * batch);
            const auto t0 = std::chrono::steady_clock::now();
            dense.forward_eval(input.data(), batch, nullptr, models::InputLayout::event_frames);
            total += seconds_since(t0);
        }
        return 1e3 * total / double(batches * batch);
    };
    const double dense1 = dense_ms_events(1), dense64 = dense_ms_events(64);
    const double realtime = recorded_us * 1e-6 / wall;

    fmt::print(text,
               "\nevent-driven engine, one recording at a time: {:.3f} ms/recording   {:.0f} input "
               "events   {:.3f} M SOPs/recording   {:.1f} k spikes   accuracy {:.1f}%\n",
               engine.ms_per_sample, input_events / double(count), engine.sops / 1e6,
               engine.spikes / 1e3, 100.0 * double(engine.correct) / double(count));
    fmt::print(text, "  throughput {:.2f} G SOP/s per core; thread CPU time {:.3f} ms/recording\n",
               sops_per_s / 1e9, engine.cpu_ms_per_sample);
    fmt::print(text,
               "  real-time factor {:.1f}x ({:.3f} s of recordings simulated in {:.3f} s of wall "
               "time)\n",
               realtime, recorded_us * 1e-6, wall);
    fmt::print(text, "\nbaselines (per recording, same frames)   ms     engine speed-up\n");
    fmt::print(text, "  dense forward (DenseSpikformer) b=1  {:8.3f}   {:6.2f}x\n", dense1,
               dense1 / engine.ms_per_sample);
    fmt::print(text, "  dense forward (DenseSpikformer) b=64 {:8.3f}   {:6.2f}x\n", dense64,
               dense64 / engine.ms_per_sample);
    if (!opt.json.empty()) {
        const nlohmann::json j{{"benchmark", "run"},
                               {"model", label},
                               {"data", samples->describe()},
                               {"samples", count},
                               {"ms_per_sample_batch1", engine.ms_per_sample},
                               {"cpu_ms_per_sample", engine.cpu_ms_per_sample},
                               {"sops_per_sample", engine.sops},
                               {"sops_per_s", sops_per_s},
                               {"realtime_factor", realtime},
                               {"dense_ms_per_sample_batch1", dense1},
                               {"dense_ms_per_sample_batch64", dense64}};
        write_text(opt.json, j.dump() + "\n");
    }
}

void bench(const BenchOptions& opt) {
    // with the JSON on stdout, the text report goes to stderr so stdout holds JSON only
    std::FILE* text = opt.json == "-" ? stderr : stdout;
    tbb::global_control one_core(tbb::global_control::max_allowed_parallelism, 1);
    std::string label = opt.model;
    if (label.empty() && std::filesystem::exists(shipped_path("examples/models/fmnist-ssa-bin.h5")))
        label = shipped_path("examples/models/fmnist-ssa-bin.h5");
    const std::vector<NamedPath> outputs{{"--save-weights", opt.save_weights},
                                         {"--json", opt.json}};
    std::vector<NamedPath> inputs = dataset_inputs(opt.data);
    inputs.push_back({"model", label});
    check_distinct_files(inputs, outputs);
    prepare_outputs(outputs);
    models::ModelWeights weights;
    if (label.empty()) {
        weights = models::random_weights(models::ModelSpec{}, 1);
        label = "random weights (seed 1, Spikformer-2-64, ssa-bin; no shipped model found)";
    } else {
        weights = models::load_weights(label);
    }
    if (!opt.save_weights.empty()) models::save_weights(weights, opt.save_weights);
    if (weights.spec.in_channels == 2) return bench_events(weights, label, opt);
    const auto data = io::load_mnist_like(io::resolve_dataset_dir("fashion-mnist"), "test");
    models::check_model_fits(weights.spec, label, 1, data.rows, data.cols, data.classes);
    const std::size_t count = std::min(opt.samples, data.count);
    const auto net = models::build_network(weights);

    fmt::print(text, "evformer bench run — {}; {} Fashion-MNIST test samples; one core\n", label,
               count);
    const auto engine = run_engine(net, weights.spec, data, count, 1.f, -1);
    const double sops_per_s = engine.sops / (engine.ms_per_sample * 1e-3);
    const double loop64 = fanout_loop(64), loop16 = fanout_loop(16);
    const double dense1 = dense_ms(weights, data, 1, std::min<std::size_t>(count, 100));
    const double dense64 = dense_ms(weights, data, 64, std::max<std::size_t>(count, 128));

    fmt::print(text,
               "\nevent-driven engine, batch 1:  {:.3f} ms/sample   {:.2f} M SOPs/sample   "
               "{:.0f} k spikes/sample   accuracy {:.1f}%\n",
               engine.ms_per_sample, engine.sops / 1e6, engine.spikes / 1e3,
               100.0 * double(engine.correct) / double(count));
    fmt::print(text,
               "  throughput {:.2f} G SOP/s per core (whole network, attention and LIF updates "
               "included)\n",
               sops_per_s / 1e9);
    fmt::print(
        text,
        "  thread CPU time {:.3f} ms/sample → {:.2f} G SOP/s (excludes waiting for a core on a "
        "shared machine)\n",
        engine.cpu_ms_per_sample, engine.sops / (engine.cpu_ms_per_sample * 1e-3) / 1e9);
    fmt::print(text,
               "  fan-out loop in this process: 64-float rows {:.2f} G SOP/s, 16-float rows "
               "{:.2f} G SOP/s  → engine at {:.0f}% of the 64-float loop\n",
               loop64 / 1e9, loop16 / 1e9, 100 * sops_per_s / loop64);
    fmt::print(text, "\nbaselines (per sample)                   ms     engine speed-up\n");
    fmt::print(text, "  dense forward (DenseSpikformer) b=1  {:8.3f}   {:6.2f}x\n", dense1,
               dense1 / engine.ms_per_sample);
    fmt::print(text, "  dense forward (DenseSpikformer) b=64 {:8.3f}   {:6.2f}x\n", dense64,
               dense64 / engine.ms_per_sample);
    fmt::print(text, "  PyTorch CPU anchor b=1 (issue)       {:8.3f}   {:6.2f}x   goal >= 3x\n",
               kTorchBatch1Ms, kTorchBatch1Ms / engine.ms_per_sample);
    fmt::print(text, "  PyTorch CPU anchor b=64 (issue)      {:8.3f}   {:6.2f}x   goal > 1x\n",
               kTorchBatch64Ms, kTorchBatch64Ms / engine.ms_per_sample);

    if (!opt.json.empty()) {
        // one line, last on stdout, for scripts (scripts/bench/compare.sh). The engine always
        // runs one sample at a time, so its ms/sample is the figure for either batch size.
        const nlohmann::json j{{"benchmark", "run"},
                               {"model", label},
                               {"samples", count},
                               {"ms_per_sample_batch1", engine.ms_per_sample},
                               {"ms_per_sample_batch64", engine.ms_per_sample},
                               {"cpu_ms_per_sample", engine.cpu_ms_per_sample},
                               {"sops_per_sample", engine.sops},
                               {"sops_per_s", sops_per_s},
                               {"dense_ms_per_sample_batch1", dense1},
                               {"dense_ms_per_sample_batch64", dense64}};
        write_text(opt.json, j.dump() + "\n");
        return;
    }
    fmt::print(text, "\ncost vs activity (input intensity sweep, {} samples each)\n",
               std::min<std::size_t>(count, 100));
    fmt::print(text, "  {:<22} {:>12} {:>12} {:>10} {:>10}\n", "input", "spikes", "SOPs", "ms",
               "ns/kSOP");
    struct Setting {
        const char* name;
        float gain;
        int threshold;
    };
    for (const auto& s :
         {Setting{"x0.25", 0.25f, -1}, Setting{"x0.5", 0.5f, -1}, Setting{"x1 (as is)", 1.f, -1},
          Setting{"x2 (clipped)", 2.f, -1}, Setting{"binarised at 128", 1.f, 128}}) {
        const auto r = run_engine(net, weights.spec, data, std::min<std::size_t>(count, 100),
                                  s.gain, s.threshold);
        fmt::print(text, "  {:<22} {:>12.0f} {:>12.0f} {:>10.3f} {:>10.1f}\n", s.name, r.spikes,
                   r.sops, r.ms_per_sample, r.sops > 0 ? 1e9 * r.ms_per_sample / r.sops : 0.0);
    }
}

const RegisterCommand reg("bench.run", [](CLI::App& app) {
    auto opt = std::make_shared<BenchOptions>();
    auto* cmd = bench_group(app)->add_subcommand(
        "run",
        "Event-driven engine speed vs the dense forward, a fan-out loop and PyTorch "
        "anchors, plus an activity sweep");
    cmd->add_option("model", opt->model,
                    "Weights file (default examples/models/fmnist-ssa-bin.h5, else random "
                    "weights)");
    cmd->add_option("--samples", opt->samples, "Test samples to time (default 200)")
        ->check(count_in(1));
    cmd->add_option("--data", opt->data.data,
                    "Event models: the recordings to time (default "
                    "examples/data/nmnist_test100); image models use fashion-mnist");
    cmd->add_option("--split-by", opt->data.split_by,
                    "Event data: frames of equal event count (number), equal duration (time), or "
                    "T bins of --dt us from the first event (duration); default: as the model "
                    "was trained")
        ->check(CLI::IsMember({"number", "time", "duration"}));
    cmd->add_option("--dt", opt->data.dt_us, "Event data, --split-by duration: bin length in us")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    cmd->add_option("--save-weights", opt->save_weights,
                    "Also write the weights used (e.g. the generated random ones) to FILE");
    cmd->add_option("--json", opt->json,
                    "Write the figures as one JSON line to FILE ('-' = stdout, the text then "
                    "goes to stderr) and skip the activity sweep");
    cmd->callback([opt] { bench(*opt); });
});

}  // namespace
}  // namespace evformer::tools
