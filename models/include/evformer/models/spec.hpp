// The Spikformer model specification shared by the trainer, the weights file, the simulator's
// builder and the command line.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "evformer/models/attention_variant.hpp"

namespace evformer::models {

/// LIF constants (SpikingJelly defaults): v ← v + (x − v)/τ, spike at v ≥ v_th, hard reset.
struct LifSpec {
    double tau = 2.0;
    double v_threshold = 1.0;
    double v_reset = 0.0;
    double attn_v_threshold = 0.5;  ///< threshold of attn_lif
    double surrogate_alpha = 4.0;   ///< slope α of the sigmoid surrogate

    bool operator==(const LifSpec&) const = default;
};

/// Which mean the shifted variants subtract in training (DESIGN.md "Attention variants"):
/// the batch mean of s·B·V, or the running V̄ used in evaluation.
enum class TrainShift { batch, running };

/// "batch" or "running".
std::string_view train_shift_name(TrainShift s);
/// The TrainShift with this name; throws ConfigError naming the valid ones otherwise.
TrainShift parse_train_shift(std::string_view name);

/// How the binary attention is set up (DESIGN.md "Attention variants").
struct AttentionSpec {
    AttentionVariant variant = AttentionVariant::ssa_bin;
    double scale = 0.125;    ///< s
    double kappa = 1.0;      ///< κ, the value of a binary attention entry
    double lambda = 1.0;     ///< Δ = λ · running mean of C
    double momentum = 0.99;  ///< μ of the running Δ and V̄
    /// In training, subtract the batch mean of s·B·V ("batch") or the running V̄ ("running").
    TrainShift train_shift = TrainShift::batch;

    bool operator==(const AttentionSpec&) const = default;
};

/// The architecture and its input: Spikformer-L-D with H heads over T time steps.
struct ModelSpec {
    std::size_t blocks = 2;       ///< L
    std::size_t dim = 64;         ///< D
    std::size_t heads = 4;        ///< H
    std::size_t mlp_ratio = 4;    ///< hidden width of the MLP is mlp_ratio · D
    std::size_t time_steps = 4;   ///< T
    std::size_t in_channels = 1;  ///< 1 for grey images, 2 for event frames (polarities)
    std::size_t in_height = 28;
    std::size_t in_width = 28;
    std::array<bool, 4> pool_after{false, false, true, true};  ///< max-pool after SPS stage i
    /// Event input: the crop window {x, y, width, height} in sensor pixels taken before the
    /// frames are scaled to in_width × in_height; width = height = 0 is the whole sensor.
    std::array<std::uint32_t, 4> input_crop{0, 0, 0, 0};
    /// Event input: how the model's training cut a recording into its T frames (io::SplitBy:
    /// "number", "time", or "duration" with bins of input_dt_us µs from the first event, as
    /// `evformer stream serve` bins a live stream). `run`, `eval`, `profile`, `grad`, `bench run`
    /// and `stream serve` bin that way unless told otherwise. Files written before these keys
    /// existed, and models trained with "number", do not store them (docs/weights-format.md).
    std::string input_split_by = "number";
    std::int64_t input_dt_us = 0;  ///< bin length of input_split_by "duration" (µs), else 0
    std::size_t classes = 10;
    double bn_eps = 1e-5;
    LifSpec lif;
    AttentionSpec attention;

    /// Throws ConfigError stating the broken rule if the specification is unusable.
    void validate() const;

    /// Channels of SPS stage i (0..3): D/8, D/4, D/2, D.
    std::size_t stage_channels(std::size_t stage) const;
    /// Spatial size after SPS stage i (0..3), pooling included.
    std::size_t stage_height(std::size_t stage) const;
    std::size_t stage_width(std::size_t stage) const;
    /// Tokens N after the stem.
    std::size_t tokens() const;
    std::size_t head_dim() const { return dim / heads; }
    std::size_t mlp_hidden() const { return dim * mlp_ratio; }

    /// JSON text of every field (the form stored in weights files and read from config files).
    std::string to_json() const;
    /// Parses JSON text; unknown keys and wrong types are ConfigErrors naming the key.
    static ModelSpec from_json(const std::string& text);

    bool operator==(const ModelSpec&) const = default;
};

/// Output size of the 3×3 / stride 2 / pad 1 max-pool.
constexpr std::size_t pooled_size(std::size_t n) {
    return n == 0 ? 0 : (n - 1) / 2 + 1;
}

}  // namespace evformer::models
