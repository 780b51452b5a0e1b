// Simulating a labelled image dataset with the event-driven engine: one sample at a time per
// thread (oneTBB over samples), counters summed into a report, rasters for the first samples.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "evformer/io/idx.hpp"
#include "evformer/models/raster.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/sim/energy.hpp"
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

/// Simulates `data` with `weights` (checked to fit: input shape, classes). `model` labels the
/// report and the raster file.
SimulationResult simulate_dataset(const ModelWeights& weights, const io::ImageDataset& data,
                                  const SimulationOptions& options, const std::string& model);

}  // namespace evformer::models
