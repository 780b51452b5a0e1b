// Trained weights of a Spikformer: the specification, every tensor by module path, the running
// statistics, and where the weights came from. Saved as a self-describing HDF5 file whose schema
// is documented in docs/weights-format.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "evformer/models/spec.hpp"

namespace evformer::models {

/// A dense float tensor, row-major, outermost dimension first.
struct Tensor {
    std::vector<std::size_t> shape;
    std::vector<float> data;

    std::size_t size() const noexcept { return data.size(); }
    bool operator==(const Tensor&) const = default;
};

/// One named parameter or statistic a model of a given spec must have.
struct ParameterInfo {
    std::string name;                ///< module path, e.g. "blocks/0/attn/q_linear/weight"
    std::vector<std::size_t> shape;  ///< expected shape
    enum class Kind { weight, bias, bn_weight, bn_bias, bn_mean, bn_var, attn_stat } kind;
};

/// Every tensor a model of this spec has, in a fixed order (the contract between the trainer,
/// the weights file and the simulator's builder).
std::vector<ParameterInfo> parameter_layout(const ModelSpec& spec);

/// Where trained weights came from.
struct Provenance {
    std::string dataset;       ///< e.g. "fashion-mnist"
    std::size_t epochs = 0;    ///< epochs trained
    std::uint64_t seed = 0;    ///< random seed of the run
    double accuracy = -1;      ///< test accuracy in [0, 1]; -1 if not evaluated
    std::string command;       ///< the command line that made the weights
    std::string created;       ///< ISO-8601 UTC time of writing
    std::string tool_version;  ///< evformer version that wrote the file
};

/// A model: its spec, tensors by module path, and provenance.
struct ModelWeights {
    ModelSpec spec;
    std::map<std::string, Tensor> tensors;
    Provenance provenance;

    /// Tensor by module path; throws ConfigError naming it if absent.
    const Tensor& at(const std::string& name) const;
    Tensor& at(const std::string& name);

    /// Throws ConfigError if a tensor of the layout is missing, misshapen or not finite, or an
    /// unknown tensor is present; the message names the tensor.
    void validate() const;
};

/// Tensors of a freshly initialised model (zeros; BN weight and running variance 1), for tests
/// and as the trainer's starting point before its own initialisation.
ModelWeights zero_weights(const ModelSpec& spec);

/// Format name and version written to, and required in, the root attributes.
inline constexpr const char* kWeightsFormat = "evformer-weights";
inline constexpr std::int64_t kWeightsFormatVersion = 1;

/// Writes weights atomically (temporary file, then rename).
void save_weights(const ModelWeights& weights, const std::filesystem::path& path);

/// Reads and validates weights; errors name the file and the tensor or attribute at fault.
ModelWeights load_weights(const std::filesystem::path& path);

}  // namespace evformer::models
