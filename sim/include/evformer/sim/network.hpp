// The event-driven engine: a validated Graph (sim/graph.hpp) compiled into a running network,
// and the Simulator that runs it one sample (or one stream window) at a time, step by step,
// counting every operation per population and per time step (DESIGN.md "Event-driven simulation
// and counting").
//
// Compiling folds each batchnorm into the projection before it (w·g, b·g + β − μ·g with
// g = γ/√(σ² + eps)), folds avg_pool's 1/k² into the projections after it, and picks the fast
// paths for the patterns they serve: 3×3 / stride 1 / padding 1 convolutions with widths of 16,
// 32, 64 or 128 run on fixed-width kernels; a linear node whose only consumer is a LIF population
// runs fused with it (propagate_lif). Everything else runs on the general kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "evformer/sim/attention.hpp"
#include "evformer/sim/events.hpp"
#include "evformer/sim/graph.hpp"
#include "evformer/sim/layers.hpp"

namespace evformer::sim {

/// What produces a population's input and how its operations are counted in reports.
enum class LayerKind { conv_real, conv, linear, attention, head };

/// One row of the per-layer report: a neuron population (or the readout) and the projections
/// that drive it.
struct LayerInfo {
    std::string name;  ///< the population's node name, e.g. "blocks/0/attn/q_lif"
    LayerKind kind = LayerKind::conv;
    /// Population shape as reported and recorded: [C, H, W] for maps (rasters channel-major
    /// c·H·W + y·W + x), [N, C] for token sequences and [C] for vectors (n·C + c).
    std::vector<std::size_t> shape;
    std::size_t neurons = 0;
    std::size_t input_neurons = 0;  ///< size of the input the projection reads
    double flops = 0;               ///< dense operations of one step (attention: QKᵀ + A·V)
    /// Attention rows: the report rows of the q and v populations (the paper's estimate).
    std::vector<std::size_t> estimate_rows;
    std::size_t tokens = 0;      ///< attention rows: N
    bool channel_major = false;  ///< rasters convert the engine's channel-last order
};

/// One attention node: its output population's row and its sizes.
struct AttentionInfo {
    std::string name;     ///< the attention node
    std::size_t row = 0;  ///< report row of the population it drives (attn_lif: fr_out)
    std::size_t tokens = 0, dim = 0, heads = 0;
};

/// Operations of one layer in one time step.
struct StepCounts {
    std::uint64_t sops = 0;              ///< synaptic operations caused by events
    std::uint64_t macs = 0;              ///< multiply-accumulates on real-valued input
    std::uint64_t membrane_updates = 0;  ///< neuron state updates
    std::uint64_t spikes = 0;            ///< spikes the population emitted
    std::uint64_t input_events = 0;      ///< spikes (Σ counts) that entered the projection

    /// Adds another count field by field.
    StepCounts& operator+=(const StepCounts& o);
    bool operator==(const StepCounts&) const = default;
};

/// Attention statistics of one attention node in one time step.
struct AttentionStepCounts {
    std::uint64_t sops_qk = 0;
    std::uint64_t sops_av = 0;
    std::uint64_t nonzero = 0;  ///< non-zero entries of A (out of H·N²)
};

/// The compiled, immutable network: shared read-only by all simulator threads.
class Network {
  public:
    /// Validates `graph`, checks its parameters and compiles it to run `time_steps` steps per
    /// sample. Throws ConfigError naming the node and the rule on any problem.
    Network(Graph graph, std::size_t time_steps);
    Network(Network&&) noexcept;
    Network& operator=(Network&&) noexcept;
    ~Network();

    /// Time steps of one sample (run_image, run_events).
    std::size_t time_steps = 4;

    /// The graph as given (validated).
    const Graph& graph() const;
    /// Every reported layer in execution order: the neuron populations, then the readout.
    const std::vector<LayerInfo>& layers() const;
    /// The attention nodes in execution order.
    const std::vector<AttentionInfo>& attention() const;
    /// The input node's shape and size (neurons (y·W + x)·C + c).
    const Shape& input_shape() const;
    std::size_t input_neurons() const { return input_shape().size(); }
    /// Classes of the readout.
    std::size_t classes() const;

    /// The compiled projection of a conv2d or linear node as the engine runs it (batchnorm and
    /// avg-pool folded): weights [in][taps][out/groups] (taps = k² for conv2d, 1 for linear) and
    /// bias [out]. Throws ConfigError for another kind of node or an unknown name. For tests and
    /// inspection.
    struct Projection {
        const std::vector<float>& weight_t;
        const std::vector<float>& bias;
    };
    Projection projection(std::string_view node) const;
    /// The compiled attention of attention node `i` (execution order): Δ per head (0 unless
    /// adaptive), V̄ (empty unless shifted), scale, κ.
    const SpikingAttention& attention_kernel(std::size_t i) const;

    struct Plan;  ///< the compiled operations (network.cpp)
    const Plan& plan() const { return *plan_; }

  private:
    std::unique_ptr<Plan> plan_;
};

/// Everything one simulated sample (or stream window) produced.
struct SampleResult {
    std::vector<float> logits;
    std::size_t prediction = 0;
    std::size_t time_steps = 0;
    std::vector<StepCounts> counts;              ///< [layer][step]
    std::vector<AttentionStepCounts> attention;  ///< [attention node][step]
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
/// map populations `c·H·W + y·W + x` over shape [C, H, W], token populations `n·width + d` over
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
    /// Records the named populations of `net` (all when `layers` is empty); unknown names are a
    /// ConfigError listing the valid ones.
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
    std::vector<std::size_t> channels_;  ///< per layer: C of a map population, 0 otherwise
    std::vector<Raster> rasters_;
};

/// Runs samples through a Network, event by event. Holds the mutable state (membranes,
/// currents, scratch): O(neurons + weights), nothing of size T × neurons. One per thread.
class Simulator {
  public:
    /// State for `net`, which must outlive the simulator.
    explicit Simulator(const Network& net);
    ~Simulator();
    Simulator(Simulator&&) noexcept;

    /// A static image by direct encoding: `image` ([H][W][C], channel-last) is the input of the
    /// projections after the input node at every one of net.time_steps steps; they are
    /// real-valued and counted in MACs. Throws ConfigError if the size is wrong.
    SampleResult run_image(std::span<const float> image, SpikeRecorder* recorder = nullptr);

    /// Event input: one event list per step (neurons (y·W + x)·C + p, count = events of the
    /// pixel and polarity in the bin); the first projection is event-driven and counted in SOPs.
    /// Throws ConfigError unless there are net.time_steps lists of in-range neurons.
    SampleResult run_events(std::span<const EventList> frames, SpikeRecorder* recorder = nullptr);

    /// Starts a sample or a stream window: zeroes the counters and the readout's sums; also the
    /// membranes and every other state unless `keep_state`.
    void begin(bool keep_state = false);
    /// Runs one time step of event input (neurons (y·W + x)·C + p, counts ≥ 1); throws
    /// ConfigError for a neuron outside the input.
    void step_events(const EventList& input, SpikeRecorder* recorder = nullptr);
    /// Ends the sample or window: logits and prediction from the readout's mean over the steps
    /// run since begin(), and their counts ([layer][step]).
    SampleResult finish();

  private:
    struct State;
    void step(const EventList* events, SpikeRecorder* recorder);
    const Network* net_;
    std::unique_ptr<State> s_;
};

}  // namespace evformer::sim
