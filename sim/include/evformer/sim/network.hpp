// A Spikformer as an event-driven network: SPS stem (four conv → LIF stages, optional max-pool
// over spikes), relative position embedding, L blocks of spiking attention and MLP on an additive
// residual stream, and a linear head on the token- and time-mean. The builder in models/ fills it
// from a weights file (BN folded); the Simulator runs it one sample at a time and counts every
// operation per layer and per time step.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "evformer/sim/attention.hpp"
#include "evformer/sim/events.hpp"
#include "evformer/sim/layers.hpp"

namespace evformer::sim {

/// One SPS stage: conv → LIF, then an optional 3×3/s2/p1 max-pool over the spikes.
struct StemStage {
    Conv3x3 conv;
    bool pool_after = false;
};

/// One transformer block: q/k/v linear → LIF, attention → attn_lif, proj → LIF, MLP fc1/fc2.
struct AttentionBlock {
    TokenLinear q, k, v;
    SpikingAttention attention;
    TokenLinear proj, fc1, fc2;
};

/// The classifier on the token- and time-mean of the residual stream (real-valued: MACs).
struct LinearHead {
    std::size_t in_features = 0;
    std::size_t classes = 0;
    std::vector<float> weight;  ///< [classes][in]
    std::vector<float> bias;    ///< [classes]
};

/// What produces a layer's input and how its operations are counted.
enum class LayerKind { conv_real, conv, linear, attention, head };

/// One row of the per-layer report: a population and the projection that drives it.
struct LayerInfo {
    std::string name;  ///< population name, e.g. "blocks/0/attn/q_lif"
    LayerKind kind = LayerKind::conv;
    /// Population shape as reported and recorded: [C, H, W] for conv populations (rasters use
    /// channel-major c·H·W + y·W + x), [N, width] for token populations (n·width + d).
    std::vector<std::size_t> shape;
    std::size_t neurons = 0;
    std::size_t input_neurons = 0;  ///< size of the input the projection reads
    double flops = 0;               ///< dense operations of one step (attention: QKᵀ + A·V)
};

/// The whole network's fixed data (weights, sizes, constants); shared read-only by all threads.
struct Network {
    std::size_t time_steps = 4;
    LifParams lif;                ///< every LIF but attn_lif
    LifParams attn_lif;           ///< attn_lif (v_th 0.5)
    std::vector<StemStage> stem;  ///< four stages
    Conv3x3 rpe;                  ///< relative position embedding conv
    std::vector<AttentionBlock> blocks;
    LinearHead head;

    /// Checks that every size chains to the next; throws ConfigError naming the layer.
    void validate() const;
    /// Every reported layer in execution order: sps/lif0..3, sps/rpe_lif, per block
    /// q_lif, k_lif, v_lif, attn_lif, proj_lif, fc1_lif, fc2_lif, then head.
    std::vector<LayerInfo> layers() const;
    /// Input neurons of the first conv (H·W·C_in, channel-last).
    std::size_t input_neurons() const { return stem.front().conv.inputs(); }
    std::size_t tokens() const { return rpe.height * rpe.width; }
    std::size_t dim() const { return rpe.out_channels; }
    /// Index of a block's attn_lif layer in layers().
    static std::size_t attention_layer(std::size_t block) { return 5 + 7 * block + 3; }
};

/// Operations of one layer in one time step.
struct StepCounts {
    std::uint64_t sops = 0;              ///< synaptic operations caused by events
    std::uint64_t macs = 0;              ///< multiply-accumulates on real-valued input
    std::uint64_t membrane_updates = 0;  ///< LIF state updates
    std::uint64_t spikes = 0;            ///< spikes the population emitted
    std::uint64_t input_events = 0;      ///< spikes (Σ counts) that entered the projection

    /// Adds another count field by field.
    StepCounts& operator+=(const StepCounts& o);
    bool operator==(const StepCounts&) const = default;
};

/// Attention statistics of one block in one time step.
struct AttentionStepCounts {
    std::uint64_t sops_qk = 0;
    std::uint64_t sops_av = 0;
    std::uint64_t nonzero = 0;  ///< non-zero entries of A (out of H·N²)
};

/// Everything one simulated sample produced.
struct SampleResult {
    std::vector<float> logits;
    std::size_t prediction = 0;
    std::size_t time_steps = 0;
    std::vector<StepCounts> counts;              ///< [layer][step]
    std::vector<AttentionStepCounts> attention;  ///< [block][step]
    double seconds = 0;                          ///< wall time of the simulation

    /// Counts of one layer in one step.
    const StepCounts& at(std::size_t layer, std::size_t step) const {
        return counts[layer * time_steps + step];
    }
    /// Counts of one layer summed over the steps.
    StepCounts layer_total(std::size_t layer) const;
    /// Counts of all layers and steps.
    StepCounts total() const;
};

/// Neuron orders of recorded indices (Raster::neuron_order), as SpikeRecorder converts them:
/// conv populations `c·H·W + y·W + x` over shape [C, H, W], token populations `n·width + d` over
/// shape [N, width]. Both are row-major over the raster's shape.
inline constexpr const char* kChannelMajor = "channel-major";
inline constexpr const char* kTokenMajor = "token-major";

/// The spikes of one population for one sample: neuron index and time step of every spike.
struct Raster {
    std::string name;                 ///< population (layer) name
    std::vector<std::size_t> shape;   ///< population shape as indexed: [C, H, W] or [N, width]
    std::string neuron_order;         ///< how idx enumerates `shape`: kChannelMajor/kTokenMajor
    std::vector<std::uint32_t> idx;   ///< neuron of each spike (a count-m event appears m times)
    std::vector<std::uint32_t> time;  ///< time step of each spike
};

/// Collects rasters for chosen layers while a sample runs; pass nullptr to record nothing.
class SpikeRecorder {
  public:
    /// Records the named layers of `net` (all populations when `layers` is empty); unknown names
    /// are a ConfigError listing the valid ones.
    SpikeRecorder(const Network& net, const std::vector<std::string>& layers = {});
    /// True if layer `layer` is recorded.
    bool wants(std::size_t layer) const { return slot_[layer] >= 0; }
    /// Appends the events of one step.
    void record(std::size_t layer, std::size_t step, const EventList& events);
    /// The rasters, in layer order.
    const std::vector<Raster>& rasters() const { return rasters_; }
    /// Empties the rasters for the next sample.
    void clear();

  private:
    std::vector<int> slot_;
    std::vector<std::size_t> channels_;  ///< per layer: C of a conv population, 0 otherwise
    std::vector<Raster> rasters_;
};

/// Runs samples through a Network, event by event. Holds the mutable state (membranes,
/// accumulators, scratch): O(neurons + weights), nothing of size T × neurons. One per thread.
class Simulator {
  public:
    /// State for `net`, which must outlive the simulator.
    explicit Simulator(const Network& net);

    /// A static image by direct encoding: `image` ([H][W][C_in], channel-last) is the input
    /// current of the first conv at every step; that conv is real-valued and counted in MACs.
    SampleResult run_image(std::span<const float> image, SpikeRecorder* recorder = nullptr);

    /// Event input: one event list per step (neurons (y·W + x)·C_in + p, count = events of the
    /// pixel and polarity in the bin); the first conv is event-driven and counted in SOPs.
    SampleResult run_events(std::span<const EventList> frames, SpikeRecorder* recorder = nullptr);

    /// Starts a sample or window: zeroes the counters and the head's token/time sums; also the
    /// membranes (all state) unless `keep_state`, which continues from where the last step left
    /// them (live streams with `--continuous`).
    void begin(bool keep_state = false);
    /// Runs one time step of event input (neurons (y·W + x)·C_in + p, counts ≥ 1); an event of a
    /// neuron outside the input is a ConfigError. Steps since begin() are numbered from 0.
    void step_events(const EventList& input, SpikeRecorder* recorder = nullptr);
    /// Ends the sample or window: logits and prediction of the head over the steps run since
    /// begin() (token and time mean over those steps; the bias alone when none ran), counts
    /// [layer][step] for those steps (the head's MACs on the last one), wall time since begin().
    SampleResult finish();

  private:
    void check_input(const EventList& input) const;
    // One step: event input, or (input_events null) the static image whose first-conv output is
    // in image_current_ and costs `image_macs`.
    void step(const EventList* input_events, std::uint64_t image_macs, SpikeRecorder* recorder);

    const Network* net_;
    std::vector<std::vector<float>> v_;  ///< membrane per layer (empty for the head)
    std::vector<float> acc_;             ///< input currents, reused layer after layer
    std::vector<float> image_current_;   ///< first-conv output of a static image
    std::vector<EventList> events_;      ///< output events per layer
    std::vector<EventList> pooled_;      ///< max-pool output per stem stage
    EventList stream_events_;            ///< the residual stream as graded events
    std::vector<std::uint8_t> pool_seen_;
    std::vector<SpikeMaxPool> pools_;
    ResidualStream stream_;
    std::vector<AttentionScratch> attention_scratch_;
    std::vector<double> head_sum_;
    std::size_t steps_ = 0;                            ///< steps since begin()
    std::vector<StepCounts> step_counts_;              ///< [step][layer] since begin()
    std::vector<AttentionStepCounts> step_attention_;  ///< [step][block] since begin()
    std::chrono::steady_clock::time_point start_;
};

}  // namespace evformer::sim
