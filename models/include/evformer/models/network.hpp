// The dense, time-stepped Spikformer: forward pass over a batch (evaluation and training mode),
// the hand-written backward pass (BPTT over T with surrogate gradients), and the spike probe the
// event-driven simulator is checked against.
//
// Model semantics are those of DESIGN.md, "The model". Inside, activations are stored time-major
// (row = t·batch + b); everything that leaves the class is sample-major.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "evformer/models/weights.hpp"

namespace evformer::models {

/// How a batch of inputs is laid out.
enum class InputLayout {
    /// `[batch, in_channels, H, W]` floats in [0, 1] (pixel/255): direct encoding, the same input
    /// current enters the first conv at each of the T steps.
    static_image,
    /// `[batch, T, in_channels, H, W]` floats: T event frames of per-polarity counts.
    event_frames,
};

/// Spikes of every spiking population, recorded by an evaluation forward pass.
///
/// `spikes[name]` is `[batch, T, neurons]` (0 or 1), neuron order per population:
/// - `sps/lif0` … `sps/lif3`: the LIF after BN of SPS conv i, before pooling; channel-major
///   `c·H_i·W_i + y·W_i + x` at the conv's resolution (the input resolution of stage i).
/// - `sps/rpe_lif`: channel-major `d·N + n`, n = y·W + x over the final token grid.
/// - `blocks/{l}/attn/{q_lif,k_lif,v_lif,attn_lif,proj_lif}`, `blocks/{l}/mlp/{fc1_lif,fc2_lif}`:
///   token-major `n·width + d` (width D, or mlp_hidden for fc1_lif); head h owns the channels
///   d ∈ [h·D/H, (h+1)·D/H).
///
/// `currents["blocks/{l}/attn/attn_input"]` is the input current of attn_lif, `[batch, T, N·D]`
/// token-major: s·C·V or s·B(C, Δ)·V, minus V̄ for the shifted variants.
struct SpikeProbe {
    std::map<std::string, std::vector<std::uint8_t>> spikes;
    std::map<std::string, std::size_t> neurons;  ///< neurons per population (per time step)
    std::map<std::string, std::vector<float>> currents;
};

/// Spike and attention counts accumulated over evaluation batches (firing rates for reports).
struct FiringCounts {
    std::map<std::string, double> spikes;        ///< population → spikes counted
    std::map<std::string, double> neuron_steps;  ///< population → neurons × T × samples
    std::vector<double> attn_nonzero;            ///< per block: non-zero attention entries
    std::vector<double> attn_entries;            ///< per block: tokens² × heads × T × samples

    /// Firing rate of a population (0 if never counted).
    double rate(const std::string& population) const;
    /// fr_attn of block l: fraction of non-zero attention entries (C ≠ 0 for ssa, B = 1 else).
    double fr_attn(std::size_t block) const;
    /// fr_out of block l: firing rate of its attn_lif.
    double fr_out(std::size_t block) const;
    /// Adds another set of counts.
    void merge(const FiringCounts& other);
};

/// Options of a training forward pass (test hooks included).
struct TrainOptions {
    double label_smoothing = 0.1;
    /// Test-only: spikes become σ(α(v − v_th)) (reset differentiated) and B becomes
    /// κ·softmax(row of C) with its exact Jacobian, so finite differences match the backward pass.
    bool smooth = false;
    /// Update BN running statistics, the running C mean and V̄ after the batch.
    bool update_running = true;
};

/// What a training step measured.
struct StepResult {
    double loss = 0;          ///< mean cross-entropy (with label smoothing) over the batch
    std::size_t correct = 0;  ///< samples whose arg-max logit is the label
    std::size_t nonfinite_samples = 0;  ///< samples with a NaN or infinite logit
};

/// The dense Spikformer with its parameters, gradients and running statistics.
class DenseSpikformer {
  public:
    /// Builds the model from validated weights (spec, tensors, running statistics).
    explicit DenseSpikformer(const ModelWeights& weights);
    ~DenseSpikformer();
    DenseSpikformer(const DenseSpikformer&) = delete;
    DenseSpikformer& operator=(const DenseSpikformer&) = delete;

    const ModelSpec& spec() const;
    /// The current parameters and running statistics, ready for save_weights().
    const ModelWeights& weights() const;
    /// Mutable parameters (for the optimizer and for tests): change values in place only (the
    /// network keeps pointers into the tensors' buffers).
    ModelWeights& mutable_weights();
    /// Gradients of the trainable tensors (conv/linear weights and biases, BN weight and bias)
    /// from the last backward(); same names and shapes as the parameters.
    const std::map<std::string, Tensor>& gradients() const;

    /// Evaluation forward pass (BN running statistics, frozen Δ and V̄); returns logits
    /// `[batch, classes]`. Records spikes into `probe` and counts into `counts` when given.
    std::vector<float> forward_eval(const float* input, std::size_t batch,
                                    SpikeProbe* probe = nullptr,
                                    InputLayout layout = InputLayout::static_image,
                                    FiringCounts* counts = nullptr);

    /// Training forward pass and backward pass on one batch: fills gradients(), then (if
    /// options.update_running) updates BN running statistics, the running C mean and V̄.
    StepResult train_step(const float* input, const int* labels, std::size_t batch,
                          const TrainOptions& options = {},
                          InputLayout layout = InputLayout::static_image);

    /// Training-mode loss only (no backward, no running updates): for finite-difference checks.
    double train_loss(const float* input, const int* labels, std::size_t batch,
                      const TrainOptions& options, InputLayout layout = InputLayout::static_image);

    /// Δ of block l per head (λ · running mean of C), as used in evaluation.
    std::vector<float> delta(std::size_t block) const;
    /// V̄ of block l per channel, as used in evaluation.
    std::vector<float> v_bar(std::size_t block) const;

    /// Names of the spiking populations, in network order.
    std::vector<std::string> population_names() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Surrogate gradient of the spike: α·σ(αx)(1 − σ(αx)), x = v − v_th.
double spike_surrogate(double x, double alpha);

/// The same surrogate in float as the training backward pass computes it (a branch-free,
/// vectorisable e^x; within a few ulp of the formula).
float spike_surrogate_fast(float x, float alpha);

/// A model of this spec initialised for training: conv weights U(±1/√fan_in), linear weights
/// truncated normal (std 0.02), biases 0, BN weight 1 and bias 0, running statistics neutral.
ModelWeights init_weights(const ModelSpec& spec, std::uint64_t seed);

}  // namespace evformer::models
