#include "evformer/models/random_input.hpp"

#include <fmt/format.h>

#include <random>

#include "evformer/error.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"

namespace evformer::models {

sim::SampleResult InputSample::simulate(sim::Simulator& simulator, const ModelSpec& spec) const {
    if (layout == InputLayout::static_image)
        return simulator.run_image(image_currents(pixels, spec));
    return simulator.run_events(engine_events(events));
}

InputSample random_input(const ModelSpec& spec, InputLayout layout, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    InputSample out;
    out.layout = layout;
    if (layout == InputLayout::static_image) {
        out.pixels.resize(spec.in_channels * spec.in_height * spec.in_width);
        for (auto& p : out.pixels) p = static_cast<std::uint8_t>(rng() % 256);
        for (auto p : out.pixels) out.dense.push_back(float(p) / 255.f);
        return out;
    }
    if (spec.in_channels != 2)
        throw ConfigError(fmt::format(
            "random event frames have 2 polarity channels, the model takes {}", spec.in_channels));
    io::FrameTensor f;
    f.frames = spec.time_steps;
    f.height = spec.in_height;
    f.width = spec.in_width;
    f.data.assign(spec.time_steps * 2 * spec.in_height * spec.in_width, 0.f);
    for (auto& v : f.data)
        if (rng() % 10 == 0) v = float(1 + rng() % 3);
    out.events = io::SparseFrames::from_dense(f);
    out.dense = std::move(f.data);
    return out;
}

}  // namespace evformer::models
