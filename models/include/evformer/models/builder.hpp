// The builder: turns a weights file's tensors into the simulator's event-driven network, with
// every BatchNorm folded into the preceding weights and bias (evaluation statistics), weights
// transposed so an event's fan-out is one contiguous row, and the attention variant's Δ and V̄
// set from the stored statistics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "evformer/models/weights.hpp"
#include "evformer/sim/network.hpp"

namespace evformer::models {

/// The event-driven network of these weights (validated first; ConfigError if unusable).
sim::Network build_network(const ModelWeights& weights);

/// Input currents of the first conv for an 8-bit image stored [C][H][W]: pixel / 255 (no
/// mean/std normalisation), rearranged channel-last as the simulator expects.
std::vector<float> image_currents(std::span<const std::uint8_t> pixels, const ModelSpec& spec);

/// Throws ConfigError if a model of `spec` cannot take this data: `what` names the data, the
/// message names the mismatching field (input shape, classes) and both values.
void check_model_fits(const ModelSpec& spec, const std::string& what, std::size_t channels,
                      std::size_t height, std::size_t width, std::size_t classes);

/// Seeded random weights whose populations fire at meaningful rates (neither 0 nor 1): normal
/// weights of std 1/√fan-in with BN gains that make membrane inputs O(1), non-trivial running
/// statistics (so folding matters), Δ = 1 and a small V̄. For tests and benchmarks.
ModelWeights random_weights(const ModelSpec& spec, std::uint64_t seed);

}  // namespace evformer::models
