#include "evformer/models/builder_run.hpp"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <memory>
#include <optional>

#include "evformer/models/builder.hpp"

namespace evformer::models {

SimulationResult simulate_dataset(const ModelWeights& weights, const io::ImageDataset& data,
                                  const SimulationOptions& options, const std::string& model) {
    options.energy.validate();
    check_model_fits(weights.spec, model, 1, data.rows, data.cols, data.classes);
    const sim::Network net = build_network(weights);
    const std::size_t count = options.limit ? std::min(options.limit, data.count) : data.count;
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
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, count, 4), [&](const tbb::blocked_range<
                                                                        std::size_t>& range) {
        auto& w = workers.local();
        if (!w) w = std::make_unique<Worker>(Worker{sim::Simulator(net), sim::RunAccumulator(net)});
        for (std::size_t i = range.begin(); i != range.end(); ++i) {
            const auto image = image_currents({data.image(i), data.rows * data.cols}, weights.spec);
            std::optional<sim::SpikeRecorder> recorder;
            if (i < recorded) recorder.emplace(net, options.raster_layers);
            const auto r = w->simulator.run_image(image, recorder ? &*recorder : nullptr);
            w->sums.add(r, data.labels[i]);
            if (recorder) rasters[i] = {i, data.labels[i], r.prediction, recorder->rasters()};
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
    out.report.variant = std::string(sim::info(weights.spec.attention.variant).name);
    out.report.wall_seconds = wall;
    out.report.threads = threads;
    out.rasters.time_steps = weights.spec.time_steps;
    out.rasters.model = model;
    out.rasters.samples = std::move(rasters);
    return out;
}

}  // namespace evformer::models
