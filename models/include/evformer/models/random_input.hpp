// Seeded random input samples of a model spec, in the forms both executors take, for tests and
// benchmarks that run a model without its data set (the presets' checks, `bench presets`).
#pragma once

#include <cstdint>
#include <vector>

#include "evformer/io/samples.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/spec.hpp"
#include "evformer/sim/network.hpp"

namespace evformer::models {

/// One input sample of a spec in both executors' forms.
struct InputSample {
    InputLayout layout = InputLayout::static_image;
    /// The dense trainer's input: pixel/255 as `[C, H, W]`, or event counts as `[T, C, H, W]`.
    std::vector<float> dense;
    /// Static images: the 8-bit image, `[C, H, W]`.
    std::vector<std::uint8_t> pixels;
    /// Event frames: the counts of `dense`, sparse.
    io::SparseFrames events;

    /// Runs the sample through the engine, its input converted as `evformer run` converts it
    /// (image_currents for images, engine_events for event frames).
    sim::SampleResult simulate(sim::Simulator& simulator, const ModelSpec& spec) const;
};

/// A random sample for `spec` (deterministic in `seed`): an image of uniform 8-bit pixels, or T
/// event frames of the spec's size in which each pixel and polarity carries 1–3 events with
/// probability 1/10 per frame (about 6 550 events per 128×128 frame). Event frames need
/// in_channels = 2 (ConfigError otherwise).
InputSample random_input(const ModelSpec& spec, InputLayout layout, std::uint64_t seed);

}  // namespace evformer::models
