#include "evformer/models/builder_run.hpp"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "evformer/error.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/trainer.hpp"

namespace evformer::models {

std::vector<sim::EventList> engine_events(const io::SparseFrames& frames) {
    std::vector<sim::EventList> out(frames.frames);
    const std::size_t plane = frames.height * frames.width;
    for (std::size_t t = 0; t < frames.frames; ++t) {
        auto& list = out[t];
        list.reserve(frames.frame_begin[t + 1] - frames.frame_begin[t]);
        for (std::size_t e = frames.frame_begin[t]; e < frames.frame_begin[t + 1]; ++e) {
            const std::size_t c = frames.index[e] / plane, pixel = frames.index[e] % plane;
            list.push(static_cast<std::uint32_t>(pixel * frames.channels + c), frames.count[e]);
        }
    }
    return out;
}

SimulationResult simulate_dataset(const ModelWeights& weights, const io::SampleSource& samples,
                                  const SimulationOptions& options, const std::string& model) {
    check_samples_fit(weights.spec, samples, model);
    const sim::Network net = build_network(weights);
    return simulate_network(net, samples, options, model,
                            std::string(models::info(weights.spec.attention.variant).name));
}

SimulationResult simulate_network(const sim::Network& net, const io::SampleSource& samples,
                                  const SimulationOptions& options, const std::string& model,
                                  const std::string& variant) {
    options.energy.validate();
    const auto shape = samples.shape();
    const auto& input = net.input_shape();
    if (shape.channels != input.channels || shape.height != input.height ||
        shape.width != input.width)
        throw ConfigError(fmt::format(
            "{}: the network's input is {} (channels x height x width) but the data has {}x{}x{}",
            model, input.str(), shape.channels, shape.height, shape.width));
    if (samples.classes() > net.classes())
        throw ConfigError(fmt::format("{}: the network has {} outputs but the data has {} classes",
                                      model, net.classes(), samples.classes()));
    const bool events = samples.encoding() == io::SampleEncoding::event_frames;
    const std::size_t count =
        options.limit ? std::min(options.limit, samples.size()) : samples.size();
    const std::size_t recorded = std::min(options.raster_samples, count);
    // Fail early on unknown population names.
    if (recorded) sim::SpikeRecorder check(net, options.raster_layers);

    std::optional<tbb::global_control> limit;
    if (options.threads)
        limit.emplace(tbb::global_control::max_allowed_parallelism, options.threads);
    const std::size_t threads =
        tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);

    struct Worker {
        sim::Simulator simulator;
        sim::RunAccumulator sums;
    };
    tbb::enumerable_thread_specific<std::unique_ptr<Worker>> workers;
    std::vector<RasterSample> rasters(recorded);
    const auto start = std::chrono::steady_clock::now();
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, count, 4),
        [&](const tbb::blocked_range<std::size_t>& range) {
            auto& w = workers.local();
            if (!w)
                w = std::make_unique<Worker>(Worker{sim::Simulator(net), sim::RunAccumulator(net)});
            const std::size_t channels = input.channels, plane = input.height * input.width;
            std::vector<float> dense, image(channels * plane);
            for (std::size_t i = range.begin(); i != range.end(); ++i) {
                std::optional<sim::SpikeRecorder> recorder;
                if (i < recorded) recorder.emplace(net, options.raster_layers);
                sim::SampleResult r;
                if (events) {
                    const auto lists = engine_events(samples.events(i));
                    r = w->simulator.run_events(lists, recorder ? &*recorder : nullptr);
                } else {
                    // [C, H, W] → the engine's channel-last [H, W, C]
                    dense.resize(samples.dense_size());
                    samples.dense(i, dense.data());
                    for (std::size_t ch = 0; ch < channels; ++ch)
                        for (std::size_t p = 0; p < plane; ++p)
                            image[p * channels + ch] = dense[ch * plane + p];
                    r = w->simulator.run_image(image, recorder ? &*recorder : nullptr);
                }
                const std::size_t label = samples.label(i);
                w->sums.add(r, label);
                if (recorder) rasters[i] = {i, label, r.prediction, recorder->rasters()};
            }
        });
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    sim::RunAccumulator total(net);
    for (const auto& w : workers)
        if (w) total.merge(w->sums);
    SimulationResult out;
    out.report = total.report(options.energy);
    out.report.model = model;
    out.report.data = samples.describe();
    out.report.variant = variant;
    out.report.wall_seconds = wall;
    out.report.threads = threads;
    out.rasters.time_steps = net.time_steps;
    out.rasters.model = model;
    out.rasters.samples = std::move(rasters);
    return out;
}

}  // namespace evformer::models
