#include "evformer/models/builder.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "evformer/error.hpp"
#include "evformer/models/spikformer.hpp"

namespace evformer::models {

sim::Network build_network(const ModelWeights& weights) {
    weights.validate();
    auto graph = spikformer_graph(weights.spec);
    // Every node takes its tensors "<node>/<slot>" from the file; BN folding and the fast paths
    // are the engine's compile step.
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        auto& node = graph.nodes()[i];
        for (const auto& slot : graph.parameter_slots(i)) {
            const auto& t = weights.at(node.name + "/" + slot.name);
            node.params.push_back({t.shape, t.data});
        }
    }
    return sim::Network(std::move(graph), weights.spec.time_steps);
}

std::vector<float> image_currents(std::span<const std::uint8_t> pixels, const ModelSpec& spec) {
    const std::size_t c = spec.in_channels, hw = spec.in_height * spec.in_width;
    if (pixels.size() != c * hw)
        throw ConfigError(fmt::format("image has {} pixels, the model expects {}x{}x{} = {}",
                                      pixels.size(), c, spec.in_height, spec.in_width, c * hw));
    std::vector<float> out(c * hw);
    for (std::size_t ch = 0; ch < c; ++ch)
        for (std::size_t p = 0; p < hw; ++p) out[p * c + ch] = float(pixels[ch * hw + p]) / 255.f;
    return out;
}

void check_model_fits(const ModelSpec& spec, const std::string& what, std::size_t channels,
                      std::size_t height, std::size_t width, std::size_t classes) {
    if (spec.in_channels != channels || spec.in_height != height || spec.in_width != width)
        throw ConfigError(fmt::format(
            "{}: the model expects inputs of {}x{}x{} (channels x height x width) but the data "
            "has {}x{}x{}",
            what, spec.in_channels, spec.in_height, spec.in_width, channels, height, width));
    if (spec.classes != classes)
        throw ConfigError(fmt::format("{}: the model has {} classes but the data has {}", what,
                                      spec.classes, classes));
}

ModelWeights random_weights(const ModelSpec& spec, std::uint64_t seed) {
    auto w = zero_weights(spec);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    for (const auto& p : parameter_layout(spec)) {
        auto& t = w.at(p.name).data;
        const bool first = p.name == "sps/conv0/weight";
        switch (p.kind) {
            case ParameterInfo::Kind::weight: {
                std::size_t fan_in = 1;
                for (std::size_t d = 1; d < p.shape.size(); ++d) fan_in *= p.shape[d];
                const float stddev = 1.f / std::sqrt(float(fan_in));
                for (auto& x : t) x = normal(rng) * stddev;
                break;
            }
            case ParameterInfo::Kind::bias:
                for (auto& x : t) x = 0.1f * normal(rng);
                break;
            case ParameterInfo::Kind::bn_weight:
                // Spike inputs are sparse (rate ~0.2), so their sums need a larger gain; the
                // first conv sees real pixels in [0, 1].
                for (auto& x : t)
                    x = (first || p.name.starts_with("sps/bn0") ? 2.5f : 4.0f) *
                        (0.75f + 0.5f * uniform(rng));
                break;
            case ParameterInfo::Kind::bn_bias:
                for (auto& x : t) x = 0.3f + 0.3f * normal(rng);
                break;
            case ParameterInfo::Kind::bn_mean:
                for (auto& x : t) x = 0.1f * normal(rng);
                break;
            case ParameterInfo::Kind::bn_var:
                for (auto& x : t) x = 0.5f + uniform(rng);
                break;
            case ParameterInfo::Kind::attn_stat:
                for (auto& x : t) x = p.name.ends_with("c_mean") ? 1.0f : 0.05f * uniform(rng);
                break;
        }
    }
    w.provenance.dataset = "random";
    w.provenance.seed = seed;
    w.provenance.command = "random_weights";
    return w;
}

}  // namespace evformer::models
