// Simulating a labelled dataset (static images or event recordings) with the event-driven
// engine: one sample at a time per thread (oneTBB over samples), counters summed into a report,
// rasters for the first samples.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "evformer/io/samples.hpp"
#include "evformer/models/raster.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/sim/energy.hpp"
#include "evformer/sim/network.hpp"
#include "evformer/sim/report.hpp"

namespace evformer::models {

/// What to simulate and record.
struct SimulationOptions {
    std::size_t limit = 0;                   ///< first N samples (0 = all)
    std::size_t raster_samples = 0;          ///< record rasters of the first N samples
    std::vector<std::string> raster_layers;  ///< populations to record (empty = all)
    std::size_t threads = 0;                 ///< 0 = all available
    sim::EnergyModel energy;
};

/// A simulation's report and the rasters it recorded.
struct SimulationResult {
    sim::RunReport report;
    RasterFile rasters;
};

/// Simulates `samples` with `weights` (checked to fit: input shape, T, classes; ConfigError
/// otherwise). Static images enter by direct encoding (first conv real-valued, in MACs); event
/// samples enter as per-step event lists, neuron (y·W + x)·C + p with the pixel's count, so the
/// first conv is event-driven and counted in SOPs. `model` labels the report and the raster file.
SimulationResult simulate_dataset(const ModelWeights& weights, const io::SampleSource& samples,
                                  const SimulationOptions& options, const std::string& model);

/// Simulates `samples` with a compiled network (a Spikformer's, or a NIR graph's): the samples'
/// channels × height × width must equal the network's input and their classes fit its outputs
/// (ConfigError otherwise); event samples must have net.time_steps frames. `variant` labels the
/// report (the attention variant, or "nir").
SimulationResult simulate_network(const sim::Network& net, const io::SampleSource& samples,
                                  const SimulationOptions& options, const std::string& model,
                                  const std::string& variant);

/// The engine's input lists of one event sample: per frame t, events with neuron
/// (y·W + x)·C + c (channel-last, as Simulator::run_events reads them) and the count.
std::vector<sim::EventList> engine_events(const io::SparseFrames& frames);

}  // namespace evformer::models
