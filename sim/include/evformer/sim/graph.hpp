// A network as data: named nodes of declared kinds, edges by name, shapes checked along the
// edges. The engine runs any graph that validates (sim/network.hpp compiles it); the Spikformer is
// one function from its spec to such a graph (models/spikformer.hpp), a NIR file will be another.
//
// Node kinds are declared once, in kNodeKinds: what a kind takes and gives, its parameter tensors
// (name, shape, role) and its counting rule. The update rules live with the kernels
// (sim/neuron_rules.hpp, sim/layers.hpp, sim/attention.hpp) and are documented per kind in
// docs/simulator.md ("Node kinds").
//
// Shapes and neuron order: every signal is a map of C channels over H×W positions, stored
// channel-last, neuron (y·W + x)·C + c. A token sequence of N tokens × D channels is the map of
// its token grid (N = H·W, neuron n·D + d), flagged `tokens` for reports; a vector of F features is
// C = F, H = W = 1.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "evformer/sim/neuron_rules.hpp"

namespace evformer::sim {

/// The kinds of node the engine runs.
enum class NodeKind : std::uint8_t {
    input,      ///< the network's input: events, or a real-valued image (direct encoding)
    lif,        ///< LIF neuron population (sim/neuron_rules.hpp)
    if_neuron,  ///< IF neuron population (no leak)
    conv2d,     ///< 2-D convolution: kernel, stride, padding, dilation, groups, optional bias
    linear,     ///< linear/affine map applied alike at every position (a 1×1 convolution)
    batchnorm,  ///< evaluation-mode batch norm of a current (folded into its projection)
    scale,      ///< per-channel gain of a current
    max_pool,   ///< max-pool over spikes: an output fires when any input in its window fired
    sum_pool,   ///< sum-pool over events: an output event's count is its window's count sum
    avg_pool,   ///< sum-pool whose 1/k² is folded into the projection it feeds
    flatten,    ///< map → vector (C·H·W, PyTorch order) or map → token sequence (identity)
    merge_add,  ///< additive merge of several inputs (residual connections)
    attention,  ///< spiking self-attention (q, k, v) with the binary variants' flags
    readout,    ///< mean over positions and time steps, then affine: the classifier
    // The kinds NIR graphs bring (docs/nir.md): per-neuron parameters in NIR's continuous-time
    // units, discretised with the node's dt; spiking kinds fire on v > v_threshold.
    integrator,  ///< NIR I: v += r·x (no leak, no spikes); gives v
    li,          ///< NIR LI: v += dt/τ·(v_leak − v + r·x) (no spikes); gives v
    nir_if,      ///< NIR IF: v += r·x; fires on v > v_threshold, then v = v_reset
    nir_lif,     ///< NIR LIF: v += dt/τ·(v_leak − v + r·x); fires on v > v_threshold
    cuba_li,     ///< NIR CubaLI: synaptic current, then LI; gives v
    cuba_lif,    ///< NIR CubaLIF: synaptic current, then LIF
    threshold,   ///< NIR Threshold: a spike wherever the current x > θ (no state)
    delay,       ///< NIR Delay: each neuron's events leave round(delay/dt) steps later
    output,      ///< the network's output: class scores are its spike counts (or mean current)
};

/// Number of node kinds (kNodeKinds has one row per kind).
inline constexpr std::size_t kNodeKindCount = 23;

/// What flows out of a node.
enum class Signal : std::uint8_t {
    events,   ///< (neuron, count) events: spikes or graded integer sums
    current,  ///< a real-valued input current per neuron
    logits,   ///< class scores (readout)
};

/// What a parameter tensor is, for initialisation and validation.
enum class ParamRole : std::uint8_t {
    weight,
    bias,
    bn_weight,
    bn_bias,
    bn_mean,
    bn_var,         ///< must be ≥ 0
    statistic,      ///< a running statistic that is not trained (attention Δ mean, V̄)
    time_constant,  ///< a per-neuron time constant τ (seconds, NIR units): must be > 0
    neuron,         ///< another per-neuron constant (r, v_leak, v_threshold, w_in, θ, …)
    delay_time,     ///< per-neuron delay (seconds, NIR units): must be ≥ 0
};

/// One row of the node-kind table.
struct NodeKindInfo {
    NodeKind kind;
    std::string_view name;      ///< name in errors, reports and docs
    std::size_t min_inputs;     ///< edges into the node
    std::size_t max_inputs;     ///< (0 for the input)
    Signal input;               ///< signal the node takes (merge_add/flatten: either)
    Signal output;              ///< signal the node gives
    std::string_view counting;  ///< what the node adds to the per-layer counters
};

/// Every node kind, declared once.
inline constexpr std::array<NodeKindInfo, kNodeKindCount> kNodeKinds{{
    {NodeKind::input, "input", 0, 0, Signal::events, Signal::events,
     "nothing (its events are the first projection's input events)"},
    {NodeKind::lif, "lif", 1, 1, Signal::current, Signal::events,
     "one membrane update per neuron per step; its spikes"},
    {NodeKind::if_neuron, "if", 1, 1, Signal::current, Signal::events,
     "one membrane update per neuron per step; its spikes"},
    {NodeKind::conv2d, "conv2d", 1, 1, Signal::events, Signal::current,
     "SOPs: Σ count × output positions reached × output channels of the group (fewer at "
     "borders); MACs instead on a real-valued input; estimate fr_in × T × FLOPs"},
    {NodeKind::linear, "linear", 1, 1, Signal::events, Signal::current,
     "SOPs: Σ count × out features; MACs on a real-valued input; estimate fr_in × T × FLOPs"},
    {NodeKind::batchnorm, "batchnorm", 1, 1, Signal::current, Signal::current,
     "nothing: folded into the projection before it (part of the membrane update)"},
    {NodeKind::scale, "scale", 1, 1, Signal::current, Signal::current,
     "nothing: a gain of the current (part of the membrane update)"},
    {NodeKind::max_pool, "max_pool", 1, 1, Signal::events, Signal::events,
     "nothing (not a synaptic operation)"},
    {NodeKind::sum_pool, "sum_pool", 1, 1, Signal::events, Signal::events,
     "nothing (weight-free sums of counts)"},
    {NodeKind::avg_pool, "avg_pool", 1, 1, Signal::events, Signal::events,
     "nothing; its 1/k² is folded into the projection it feeds"},
    {NodeKind::flatten, "flatten", 1, 1, Signal::events, Signal::events, "nothing"},
    {NodeKind::merge_add, "merge_add", 1, 8, Signal::events, Signal::events,
     "nothing (integer sums of counts: a sum of 2 is one event of count 2)"},
    {NodeKind::attention, "attention", 3, 3, Signal::events, Signal::current,
     "SOPs: coincident (q, k) spike pairs + (non-zero attention entry, v spike) pairs; fr_attn; "
     "estimate (q + v spikes) × N"},
    {NodeKind::readout, "readout", 1, 1, Signal::events, Signal::logits,
     "MACs: classes × channels once per sample (on the time and position mean)"},
    {NodeKind::integrator, "integrator", 1, 1, Signal::current, Signal::current,
     "one membrane update per neuron per step; no spikes"},
    {NodeKind::li, "li", 1, 1, Signal::current, Signal::current,
     "one membrane update per neuron per step; no spikes"},
    {NodeKind::nir_if, "nir_if", 1, 1, Signal::current, Signal::events,
     "one membrane update per neuron per step; its spikes"},
    {NodeKind::nir_lif, "nir_lif", 1, 1, Signal::current, Signal::events,
     "one membrane update per neuron per step; its spikes"},
    {NodeKind::cuba_li, "cuba_li", 1, 1, Signal::current, Signal::current,
     "one membrane update per neuron per step (synaptic current and membrane); no spikes"},
    {NodeKind::cuba_lif, "cuba_lif", 1, 1, Signal::current, Signal::events,
     "one membrane update per neuron per step (synaptic current and membrane); its spikes"},
    {NodeKind::threshold, "threshold", 1, 1, Signal::current, Signal::events,
     "its spikes (a comparison, no state and no membrane update)"},
    {NodeKind::delay, "delay", 1, 1, Signal::events, Signal::events,
     "nothing (events held back, not a synaptic operation)"},
    {NodeKind::output, "output", 1, 1, Signal::events, Signal::logits,
     "nothing (its input's spike counts, or mean current, are the class scores)"},
}};
static_assert(kNodeKinds.size() == kNodeKindCount, "one row per node kind");

/// The row of a kind.
const NodeKindInfo& kind_info(NodeKind kind);

/// A signal's shape: C channels over H×W positions (channel-last); see the file comment.
struct Shape {
    std::size_t channels = 0;
    std::size_t height = 1;
    std::size_t width = 1;
    bool tokens = false;  ///< a token sequence (N = H·W tokens × C), for reports and rasters

    std::size_t positions() const { return height * width; }
    std::size_t size() const { return channels * height * width; }
    /// Same channels and positions (the `tokens` flag is presentation only).
    bool same_size(const Shape& o) const {
        return channels == o.channels && height == o.height && width == o.width;
    }
    /// "C×H×W" or "N×D tokens" for messages.
    std::string str() const;
};

/// The attributes of a node; each kind reads the fields its row names (unused ones are ignored).
struct NodeAttributes {
    Shape shape;                   ///< input: the input's shape
    LifParams lif;                 ///< lif, if_neuron (IF ignores τ)
    std::size_t out_channels = 0;  ///< conv2d, linear: output channels/features; readout: classes
    std::size_t kernel = 1;        ///< conv2d, pools: kernel height (and width, see kernel_w)
    std::size_t stride = 1;        ///< conv2d, pools: along the height (and width)
    std::size_t padding = 0;       ///< conv2d, pools (zero padding; pools ignore padded cells)
    std::size_t dilation = 1;      ///< conv2d
    /// conv2d, pools: the width's kernel, stride and dilation when they differ from the
    /// height's (0 = the same as the height's: square windows)
    std::size_t kernel_w = 0, stride_w = 0, dilation_w = 0;
    /// conv2d, pools: the width's padding (kSameAsHeight = the height's; 0 is a real padding)
    std::size_t padding_w = kSameAsHeight;
    static constexpr std::size_t kSameAsHeight = static_cast<std::size_t>(-1);
    std::size_t groups = 1;           ///< conv2d
    bool bias = false;                ///< conv2d, linear: the node has a bias tensor
    double eps = 1e-5;                ///< batchnorm
    std::size_t heads = 1;            ///< attention: H, dividing C
    float attention_scale = 0.125f;   ///< attention: s
    float kappa = 1.0f;               ///< attention: κ, value of a binary entry
    bool binary = false;              ///< attention: A = κ·[C > Δ] instead of C
    bool adaptive_threshold = false;  ///< attention: Δ = λ · c_mean (else 0)
    bool shift = false;               ///< attention: subtract V̄ (the v_bar tensor)
    double lambda = 1.0;              ///< attention: λ
    bool to_tokens = false;           ///< flatten: to a token sequence instead of a vector
    double dt = 1e-3;  ///< li, nir_lif, cuba_li, cuba_lif, delay: seconds per time step

    /// The window along the width: kernel_w etc., or the height's value when 0.
    std::size_t kw() const { return kernel_w ? kernel_w : kernel; }
    std::size_t sw() const { return stride_w ? stride_w : stride; }
    std::size_t pw() const { return padding_w == kSameAsHeight ? padding : padding_w; }
    std::size_t dw() const { return dilation_w ? dilation_w : dilation; }
};

/// A parameter tensor of a node (row-major).
struct ParamTensor {
    std::vector<std::size_t> shape;
    std::vector<float> data;
};

/// A parameter a node of some kind and shape has: its name under the node, shape and role.
struct ParamSlot {
    std::string name;  ///< e.g. "weight", "running_var", "c_mean"
    std::vector<std::size_t> shape;
    ParamRole role;
};

/// One node: name, kind, the names of its input nodes (edges, in order), attributes, parameters.
struct Node {
    std::string name;
    NodeKind kind = NodeKind::input;
    std::vector<std::string> inputs;
    NodeAttributes attr;
    std::vector<ParamTensor> params;  ///< in the order of Graph::parameter_slots (may be empty
                                      ///< while the graph only describes a layout)

    // Filled by Graph::validate():
    std::vector<std::size_t> input_index;  ///< index of each input node
    /// Per input: the edge closes a cycle, so it carries its source's output of the previous
    /// time step (NIR's one-step delay of recurrent edges; zero at the first step).
    std::vector<bool> recurrent;
    Shape shape;  ///< output shape
};

/// A network: nodes and edges. Build it with add(), then validate().
class Graph {
  public:
    /// Appends a node; edges may name nodes added later. Returns the node (valid until the next
    /// add).
    Node& add(std::string name, NodeKind kind, std::vector<std::string> inputs = {},
              NodeAttributes attr = {});

    /// Checks the graph and infers every shape; throws ConfigError naming the node and the rule:
    /// names non-empty and unique; edges name existing nodes; input counts and signals as the
    /// kind table says; exactly one input node and one sink (a readout or an output); shapes
    /// agree along every edge (channels, sizes, groups, heads); every node reachable from the
    /// input and reaching the sink. Cycles are allowed: a depth-first search from the input
    /// (inputs of a node in their listed order, consumers in declaration order) marks each edge
    /// that closes a cycle as recurrent (Node::recurrent); it carries the previous step's value.
    /// A recurrent edge must not feed an attention node (its inputs run within one step).
    void validate();
    /// validate() has succeeded and no node was added since.
    bool validated() const { return validated_; }

    const std::vector<Node>& nodes() const { return nodes_; }
    std::vector<Node>& nodes() { return nodes_; }
    /// The node called `name`; throws ConfigError if there is none.
    const Node& node(std::string_view name) const;
    Node& node(std::string_view name);
    /// Index of the node called `name`, or nodes().size() if there is none.
    std::size_t find(std::string_view name) const;

    /// After validate(): node indices in execution order (inputs before consumers; among ready
    /// nodes, declaration order).
    const std::vector<std::size_t>& order() const { return order_; }
    /// After validate(): the consumers of each node, in execution order.
    const std::vector<std::size_t>& consumers(std::size_t node) const { return consumers_[node]; }
    std::size_t input_node() const { return input_; }
    /// The sink: the readout node, or the output node of graphs that end in one.
    std::size_t readout_node() const { return readout_; }
    /// True if the graph has a recurrent edge.
    bool recurrent() const { return recurrent_; }
    /// After validate(): the signal a node gives.
    Signal signal(std::size_t node) const;

    /// After validate(): the parameter tensors node `i` has (name, shape, role), in order.
    std::vector<ParamSlot> parameter_slots(std::size_t i) const;
    /// Every parameter of the graph as "<node>/<slot>" with its shape and role, in declaration
    /// order of the nodes.
    std::vector<std::pair<std::string, ParamSlot>> parameter_layout() const;
    /// After validate(): every node holds its parameters with the declared shapes and finite
    /// values (running variances ≥ 0); throws ConfigError naming the tensor otherwise.
    void check_parameters() const;

  private:
    std::vector<Node> nodes_;
    std::vector<std::size_t> order_;
    std::vector<std::vector<std::size_t>> consumers_;
    std::size_t input_ = 0, readout_ = 0;
    bool recurrent_ = false;
    bool validated_ = false;
};

/// True for the kinds that are neuron populations (they keep a membrane per neuron and get a
/// report row): lif, if, and the NIR neuron kinds.
bool is_population(NodeKind kind);
/// True for the NIR neuron kinds with per-neuron parameters (integrator … cuba_lif).
bool is_nir_neuron(NodeKind kind);

/// The per-neuron parameter tensors of a NIR neuron kind, threshold or delay, in slot order
/// (each of shape [neurons]; names as NIR's fields): e.g. cuba_lif → tau_syn, tau_mem, r,
/// v_leak, v_threshold, v_reset, w_in. Empty for other kinds.
std::vector<std::pair<std::string_view, ParamRole>> nir_parameters(NodeKind kind);

/// Output size of a window of `kernel` (dilated by `dilation`) with `stride` and zero `padding`
/// over `n` cells: ⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1 (PyTorch's Conv2d/MaxPool2d formula), 0 if the
/// window does not fit.
std::size_t window_output(std::size_t n, std::size_t kernel, std::size_t stride,
                          std::size_t padding, std::size_t dilation = 1);

}  // namespace evformer::sim
