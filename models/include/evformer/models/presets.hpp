// Named model configurations: each a model spec, the training recipe it comes with, and the
// source both were taken from (a paper's table and the authors' code), so that `evformer train
// --model NAME` reruns a published setting. The table, its sources and what differs from them
// are documented in docs/training.md, "Model presets".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "evformer/models/spec.hpp"
#include "evformer/models/trainer.hpp"

namespace evformer::models {

/// The settings of a training run that a preset fixes (the rest of TrainConfig keeps its
/// defaults): AdamW with linear warm-up and cosine decay, label smoothing, augmentation.
struct Recipe {
    std::size_t epochs = 0;
    std::size_t batch = 0;
    double lr = 0;             ///< peak learning rate
    double min_lr = 0;         ///< end of the cosine decay
    double weight_decay = 0;   ///< decoupled (AdamW)
    double warmup_epochs = 0;  ///< linear warm-up, epochs
    double label_smoothing = 0;
    std::size_t crop_pad = 0;  ///< random crop with zero padding (events: translation), pixels
    bool hflip = false;        ///< random horizontal flip (static images)
};

/// A named model: its spec, its recipe and where they come from.
struct ModelPreset {
    std::string_view name;     ///< the `--model` name, e.g. "spikformer-4-384-cifar"
    std::string_view summary;  ///< one line: the data it is for and its shape
    /// The architecture and input. `classes` is that of the preset's first data set (CIFAR-10,
    /// CIFAR10-DVS); `evformer train` replaces it with the class count of the data it is given.
    ModelSpec spec;
    Recipe recipe;
    std::string_view source;         ///< citation of the architecture (paper table, code file)
    std::string_view recipe_source;  ///< citation of the recipe
    /// The parameter count the source publishes for this spec, in millions (0 = none
    /// published); compare with trainable_parameter_count(spec).
    double published_millions = 0;
};

/// Every preset, the default (`spikformer-2-64`) first.
const std::vector<ModelPreset>& model_presets();

/// The preset of this name; throws ConfigError listing the valid names otherwise.
const ModelPreset& find_model_preset(std::string_view name);

/// "spikformer-2-64, spikformer-4-384-cifar, …" — for messages and --help.
std::string model_preset_names();

/// Trainable parameters of a model of this spec, counted as PyTorch's
/// `sum(p.numel() for p in model.parameters() if p.requires_grad)` counts them: conv and linear
/// weights and biases, BatchNorm γ and β; not the BatchNorm running statistics nor the
/// attention statistics (c_mean, V̄), which are buffers. Throws ConfigError for an invalid spec.
std::size_t trainable_parameter_count(const ModelSpec& spec);

/// A training configuration with the preset's spec and recipe (the other settings at their
/// defaults).
TrainConfig preset_config(const ModelPreset& preset);

}  // namespace evformer::models
