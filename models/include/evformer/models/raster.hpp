// Spike rasters in HDF5, close to NIR's NIRGraphData EventData layout so NIR tooling and h5py
// read them directly (layout in docs/simulator.md): per population, the neuron index and time
// step of every spike of every recorded sample, the population's shape and its layer name.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "evformer/sim/network.hpp"

namespace evformer::models {

/// The rasters of one simulated sample.
struct RasterSample {
    std::size_t index = 0;       ///< position of the sample in its dataset
    std::size_t label = 0;       ///< true class
    std::size_t prediction = 0;  ///< predicted class
    std::vector<sim::Raster> rasters;
};

/// What a raster file holds.
struct RasterFile {
    std::size_t time_steps = 0;
    std::string model;  ///< the weights file the rasters came from
    std::vector<RasterSample> samples;
};

/// Format name written to, and required in, the root attribute `format`.
inline constexpr const char* kRasterFormat = "evformer-raster";

/// Writes the rasters atomically; every sample must record the same populations.
void write_rasters(const std::filesystem::path& path, const RasterFile& file);

/// Reads a raster file written by write_rasters (errors name the file and the object).
RasterFile read_rasters(const std::filesystem::path& path);

/// The HDF5 node name of a population: its layer name with '/' replaced by '.'.
std::string raster_node_name(const std::string& layer);

}  // namespace evformer::models
