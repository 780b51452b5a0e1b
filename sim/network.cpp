#include "evformer/sim/network.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <new>
#include <string>

#include "evformer/error.hpp"

namespace evformer::sim {

namespace {

constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

enum class OpKind {
    conv3x3,         ///< Conv3x3 fast path → current
    conv2d,          ///< general Conv2d → current
    linear,          ///< TokenLinear → current
    linear_lif,      ///< TokenLinear fused with the LIF it drives → events
    attention,       ///< attend → current
    lif,             ///< lif_step → events
    if_neuron,       ///< IF rule → events
    affine_current,  ///< unfolded batchnorm or scale: current · gain + shift
    max_pool,
    sum_pool,
    merge_events,
    merge_currents,
    flatten_vector,  ///< channel-last → channel-major (events or current)
    readout,         ///< sums per channel for the mean
    nir_neuron,      ///< a NIR neuron kind (integrator … cuba_lif) → events or current
    threshold,       ///< current > θ → events
    delay,           ///< events held back per neuron
    output,          ///< sums of the output's events or currents
};

struct Op {
    OpKind kind = OpKind::lif;
    std::size_t node = 0;            ///< graph node this op computes
    std::size_t projection = kNone;  ///< conv2d/linear node whose kernel this op runs
    std::size_t row = kNone;         ///< report row its counts go to
    std::size_t out = 0;             ///< storage (node index) of its output
    std::vector<std::size_t> in;     ///< storage of its inputs
    std::size_t kernel = 0;          ///< index into the plan's kernels of this kind
    bool reads_input = false;        ///< a projection reading the graph's input node
    std::size_t neurons = 0;         ///< neuron ops: population size; others: output size
    LifParams lif;                   ///< neuron ops
    /// merge_events: the op whose residual stream it continues (it is the last reader of that
    /// op's output, so it adds its other inputs in place), or kNone to start a fresh sum
    std::size_t continues = kNone;
    std::size_t stream = 0;  ///< merge_events: the op whose residual stream holds the sum
    bool dense = false;      ///< conv/linear reading a current (not the image): MACs every step
    bool spiking = true;     ///< nir_neuron: gives events (else its membrane as a current)
};

// A NIR neuron population compiled to per-neuron coefficients of one discrete step
// (docs/nir.md, "Neuron kinds"): with a synapse, I += k_syn·(w_in·x − I) and x = I; then
// v += k_leak·(v_leak − v) + k_in·x; a spiking kind fires on v > v_threshold, then v = v_reset.
// I and IF: k_leak = 0, k_in = r. LI, LIF, CubaLI, CubaLIF: k_leak = dt/τ, k_in = dt/τ·r (forward
// Euler of τ·dv/dt = v_leak − v + r·I), k_syn = dt/τ_syn.
struct NirNeuron {
    bool synaptic = false, spiking = false;
    std::vector<float> k_syn, w_in, k_leak, v_leak, k_in, v_threshold, v_reset;
};

// A delay line: each neuron's events leave `steps[n]` steps after they came in.
struct DelayLine {
    std::vector<std::uint32_t> steps;
    std::size_t length = 1;  ///< ring slots: max steps + 1
};

struct Affine {
    std::vector<float> gain, shift;  ///< per channel (shift empty for scale)
    std::size_t channels = 0;
};

}  // namespace

struct Network::Plan {
    Graph graph;
    std::vector<Op> ops;
    std::vector<LayerInfo> layers;
    std::vector<AttentionInfo> attention;
    std::vector<std::size_t> storage;  ///< node → node whose buffer holds its output
    std::vector<std::size_t> op_of;    ///< node → op computing it (kNone if folded/aliased)
    std::vector<Conv3x3> conv3;
    std::vector<Conv2d> conv;
    std::vector<TokenLinear> linear;
    std::vector<SpikingAttention> attn;
    std::vector<SpikeMaxPool> pools;
    std::vector<Affine> affine;
    std::vector<NirNeuron> nir;
    std::vector<DelayLine> delays;
    std::vector<float> thresholds_flat;               ///< threshold ops: θ of every neuron
    std::vector<std::size_t> threshold_at;            ///< [threshold op kernel] offset
    bool output_sink = false;                         ///< the sink is an output node
    bool output_events = true;                        ///< it counts events (else mean current)
    std::vector<std::size_t> recurrent_sources;       ///< storages read one step late
    std::vector<float> readout_weight, readout_bias;  ///< [classes][C], [classes]
    std::size_t classes = 0, readout_channels = 0, readout_positions = 0;
    std::size_t largest = 0;  ///< largest signal (scratch size)
    /// node → its current lives in the shared scratch (consumed by the very next op only)
    std::vector<bool> scratch_current;
    /// Empty when static images may enter (only conv2d/linear nodes read the input), else the
    /// name of a node that needs events from it.
    std::string image_blocker;
};

namespace {

using Plan = Network::Plan;

[[noreturn]] void fail(const Node& n, const std::string& rule) {
    throw ConfigError(
        fmt::format("graph: node '{}' ({}): {}", n.name, kind_info(n.kind).name, rule));
}

// The compiled coefficients of a NIR neuron node (its parameters in slot order, nir_parameters).
NirNeuron compile_nir_neuron(const Node& n) {
    NirNeuron m;
    const auto names = nir_parameters(n.kind);
    auto param = [&](std::string_view name) -> const std::vector<float>* {
        for (std::size_t p = 0; p < names.size(); ++p)
            if (names[p].first == name) return &n.params[p].data;
        return nullptr;
    };
    const std::size_t count = n.shape.size();
    const double dt = n.attr.dt;
    m.synaptic = n.kind == NodeKind::cuba_li || n.kind == NodeKind::cuba_lif;
    m.spiking = kind_info(n.kind).output == Signal::events;
    const bool leaky = n.kind != NodeKind::integrator && n.kind != NodeKind::nir_if;
    const auto* r = param("r");
    const auto* tau = param(m.synaptic ? "tau_mem" : "tau");
    const auto* v_leak = param("v_leak");
    m.k_leak.assign(count, 0.f);
    m.v_leak.assign(count, 0.f);
    m.k_in.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        if (leaky) {
            const double a = dt / double((*tau)[i]);
            if (a > 1.0 + 1e-5)  // τ is often stored in float32 (1 ms reads 0.9999998 ms)
                fail(n, fmt::format("dt ({} s) exceeds the time constant ({} s) of neuron {}: the "
                                    "forward-Euler step would overshoot; use a smaller --dt",
                                    dt, (*tau)[i], i));
            m.k_leak[i] = float(a);
            m.v_leak[i] = (*v_leak)[i];
            m.k_in[i] = float(a * double((*r)[i]));
        } else {
            m.k_in[i] = (*r)[i];
        }
    }
    if (m.synaptic) {
        const auto& tau_syn = *param("tau_syn");
        m.w_in = *param("w_in");
        m.k_syn.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            const double a = dt / double(tau_syn[i]);
            if (a > 1.0 + 1e-5)
                fail(n, fmt::format("dt ({} s) exceeds the synaptic time constant ({} s) of "
                                    "neuron {}: use a smaller --dt",
                                    dt, tau_syn[i], i));
            m.k_syn[i] = float(a);
        }
    }
    if (m.spiking) {
        m.v_threshold = *param("v_threshold");
        m.v_reset = *param("v_reset");
    }
    return m;
}

// Per-channel gain and shift of an evaluation-mode BatchNorm: g = γ/√(σ² + eps),
// shift = β − μ·g (g in double, as the dense trainer's evaluation pass).
Affine fold_batchnorm(const Node& bn) {
    const auto& gamma = bn.params[0].data;
    const auto& beta = bn.params[1].data;
    const auto& mean = bn.params[2].data;
    const auto& var = bn.params[3].data;
    Affine a;
    a.channels = gamma.size();
    for (std::size_t c = 0; c < gamma.size(); ++c) {
        const double g = double(gamma[c]) / std::sqrt(double(var[c]) + bn.attr.eps);
        a.gain.push_back(float(g));
        a.shift.push_back(float(double(beta[c]) - double(mean[c]) * g));
    }
    return a;
}

// The weights of projection `p` (reading `in`) transposed per input channel
// ([in][taps][out/groups]), each output channel's row scaled by the gain g of `batchnorm` (when
// one is folded into it) and every weight by avg_pool's 1/k² when `in` is an avg_pool; the bias
// is bias·g + shift (shift alone when the node has no bias).
struct Folded {
    std::vector<float> weight_t, bias;
};

Folded fold_weights(const Node& p, const Node& in, const Node* batchnorm) {
    Affine folded;
    if (batchnorm) folded = fold_batchnorm(*batchnorm);
    const Affine* bn = batchnorm ? &folded : nullptr;
    const float input_gain =
        in.kind == NodeKind::avg_pool ? 1.f / float(in.attr.kernel * in.attr.kw()) : 1.f;
    const std::size_t in_channels = in.shape.channels;
    const std::size_t co = p.shape.channels;
    const std::size_t groups = p.kind == NodeKind::conv2d ? p.attr.groups : 1;
    const std::size_t taps = p.kind == NodeKind::conv2d ? p.attr.kernel * p.attr.kw() : 1;
    const std::size_t cig = in_channels / groups, cog = co / groups;
    const auto& w = p.params[0].data;
    Folded f;
    f.weight_t.resize(in_channels * taps * cog);
    for (std::size_t o = 0; o < co; ++o) {
        const std::size_t g = o / cog, oc = o - g * cog;
        const float gain = bn ? bn->gain[o] : 1.f;
        for (std::size_t ic = 0; ic < cig; ++ic)
            for (std::size_t t = 0; t < taps; ++t) {
                float value = w[(o * cig + ic) * taps + t] * gain;
                if (input_gain != 1.f) value *= input_gain;
                f.weight_t[((g * cig + ic) * taps + t) * cog + oc] = value;
            }
    }
    f.bias.resize(co);
    const bool has_bias = p.attr.bias;
    for (std::size_t o = 0; o < co; ++o) {
        if (bn)
            f.bias[o] = has_bias ? p.params[1].data[o] * bn->gain[o] + bn->shift[o] : bn->shift[o];
        else
            f.bias[o] = has_bias ? p.params[1].data[o] : 0.f;
    }
    return f;
}

std::vector<std::size_t> report_shape(const Shape& s, bool& channel_major) {
    channel_major = false;
    if (s.tokens) return {s.positions(), s.channels};
    if (s.height == 1 && s.width == 1) return {s.channels};
    channel_major = true;
    return {s.channels, s.height, s.width};
}

}  // namespace

Network::Network(Graph graph, std::size_t steps) : time_steps(steps), plan_(new Plan) {
    if (steps == 0) throw ConfigError("network: time_steps must be at least 1");
    Plan& P = *plan_;
    P.graph = std::move(graph);
    Graph& g = P.graph;
    g.validate();
    g.check_parameters();
    const auto& nodes = g.nodes();
    const std::size_t count = nodes.size();
    P.storage.resize(count);
    for (std::size_t i = 0; i < count; ++i) P.storage[i] = i;
    P.op_of.assign(count, kNone);
    for (const auto& n : nodes) P.largest = std::max(P.largest, n.shape.size());

    auto in_channels = [&](const Node& n) { return nodes[n.input_index[0]].shape.channels; };
    auto only_consumer = [&](std::size_t i) -> std::size_t {
        return g.consumers(i).size() == 1 ? g.consumers(i)[0] : kNone;
    };

    // Batchnorms folded into the projection before them, and which projections run fused.
    std::vector<const Node*> folded_bn(count, nullptr);  // projection → its folded batchnorm
    std::vector<bool> skip(count, false);
    for (std::size_t i = 0; i < count; ++i) {
        const Node& n = nodes[i];
        if (n.kind != NodeKind::batchnorm) continue;
        const std::size_t p = n.input_index[0];
        const auto pk = nodes[p].kind;
        if ((pk == NodeKind::conv2d || pk == NodeKind::linear) && only_consumer(p) == i) {
            folded_bn[p] = &n;
            P.storage[i] = p;
            skip[i] = true;
        }
    }
    // flatten to tokens is the identity on channel-last storage
    for (auto i : g.order()) {
        const Node& n = nodes[i];
        if (n.kind == NodeKind::flatten && n.attr.to_tokens) {
            P.storage[i] = P.storage[n.input_index[0]];
            skip[i] = true;
        }
    }
    // Resolve aliases transitively (order() has inputs first).
    for (auto i : g.order()) P.storage[i] = P.storage[P.storage[i]];

    // Report rows: neuron populations in execution order, then the readout.
    std::vector<std::size_t> row_of(count, kNone);
    for (auto i : g.order())
        if (is_population(nodes[i].kind) || nodes[i].kind == NodeKind::threshold) {
            row_of[i] = P.layers.size();
            LayerInfo li;
            li.name = nodes[i].name;
            li.shape = report_shape(nodes[i].shape, li.channel_major);
            li.neurons = nodes[i].shape.size();
            P.layers.push_back(std::move(li));
        }
    {
        const Node& r = nodes[g.readout_node()];
        row_of[g.readout_node()] = P.layers.size();
        LayerInfo li;
        li.name = r.name;
        li.kind = LayerKind::head;
        if (r.kind == NodeKind::output) {  // class scores are its input's counts: no operation
            li.shape = {r.shape.size()};
            li.neurons = li.input_neurons = r.shape.size();
        } else {
            li.shape = {r.attr.out_channels};
            li.neurons = r.attr.out_channels;
            li.input_neurons = in_channels(r);
            li.flops = double(r.attr.out_channels * in_channels(r));
        }
        P.layers.push_back(std::move(li));
    }
    // The neuron population a projection's current drives (through batchnorm, scale and merges
    // of currents).
    auto driven_row = [&](std::size_t i) -> std::size_t {
        std::size_t at = i;
        while (true) {
            const auto& cons = g.consumers(at);
            if (cons.empty()) return kNone;
            const std::size_t c = cons[0];
            if (row_of[c] != kNone) return row_of[c];
            at = c;
        }
    };
    // The population whose spikes an events edge carries (through flatten/pools), for estimates.
    auto source_row = [&](std::size_t i) -> std::size_t {
        std::size_t at = i;
        while (!is_population(nodes[at].kind) && !nodes[at].input_index.empty() &&
               nodes[at].kind != NodeKind::merge_add)
            at = nodes[at].input_index[0];
        return row_of[at];
    };

    std::vector<std::size_t> fused_linear(count, kNone);  // lif node → linear fused into it
    for (auto i : g.order()) {
        const Node& n = nodes[i];
        if (n.kind != NodeKind::lif) continue;
        const std::size_t src = P.storage[n.input_index[0]];
        if (nodes[src].kind != NodeKind::linear) continue;
        if (nodes[src].input_index[0] == g.input_node()) continue;  // image runs read it dense
        if (g.signal(nodes[src].input_index[0]) != Signal::events) continue;  // dense input
        if (nodes[nodes[src].input_index[0]].kind == NodeKind::avg_pool) continue;
        // the linear's current (after its folded batchnorm) must go to this population only
        // (a folded batchnorm is the linear's only consumer)
        const std::size_t after =
            folded_bn[src] ? only_consumer(only_consumer(src)) : only_consumer(src);
        if (after != i) continue;
        fused_linear[i] = src;
        skip[src] = true;
    }

    for (auto c : g.consumers(g.input_node())) {
        const auto k = nodes[c].kind;
        if (k != NodeKind::conv2d && k != NodeKind::linear) P.image_blocker = nodes[c].name;
    }
    for (auto i : g.order()) {
        const Node& n = nodes[i];
        if (skip[i] || n.kind == NodeKind::input) continue;
        Op op;
        op.node = i;
        op.out = P.storage[i];
        op.neurons = n.shape.size();
        for (auto j : n.input_index) op.in.push_back(P.storage[j]);
        const bool reads_input = !n.input_index.empty() && n.input_index[0] == g.input_node();
        op.dense = (n.kind == NodeKind::conv2d || n.kind == NodeKind::linear) && !reads_input &&
                   g.signal(n.input_index[0]) == Signal::current;
        const Node* in_node = n.input_index.empty() ? nullptr : &nodes[n.input_index[0]];
        switch (n.kind) {
            case NodeKind::input:
                break;
            case NodeKind::lif:
            case NodeKind::if_neuron: {
                op.row = row_of[i];
                op.lif = n.attr.lif;
                op.kind = n.kind == NodeKind::lif ? OpKind::lif : OpKind::if_neuron;
                break;
            }
            case NodeKind::conv2d: {
                op.row = driven_row(i);
                if (op.row == kNone) fail(n, "its current must drive a neuron population");
                op.reads_input = reads_input;
                const Shape& s = in_node->shape;
                auto f = fold_weights(n, *in_node, folded_bn[i]);
                const auto& a = n.attr;
                if (a.kernel == 3 && a.stride == 1 && a.padding == 1 && a.dilation == 1 &&
                    a.groups == 1 && a.kw() == 3 && a.sw() == 1 && a.pw() == 1 && a.dw() == 1) {
                    Conv3x3 c;
                    c.in_channels = s.channels;
                    c.out_channels = a.out_channels;
                    c.height = s.height;
                    c.width = s.width;
                    c.weight_t = std::move(f.weight_t);
                    c.bias = std::move(f.bias);
                    op.kind = OpKind::conv3x3;
                    op.projection = i;
                    op.kernel = P.conv3.size();
                    P.conv3.push_back(std::move(c));
                } else {
                    Conv2d c;
                    c.in_channels = s.channels;
                    c.out_channels = a.out_channels;
                    c.in_height = s.height;
                    c.in_width = s.width;
                    c.out_height = n.shape.height;
                    c.out_width = n.shape.width;
                    c.kernel = a.kernel;
                    c.stride = a.stride;
                    c.padding = a.padding;
                    c.dilation = a.dilation;
                    c.kernel_w = a.kw();
                    c.stride_w = a.sw();
                    c.padding_w = a.pw();
                    c.dilation_w = a.dw();
                    c.groups = a.groups;
                    c.weight_t = std::move(f.weight_t);
                    c.bias = std::move(f.bias);
                    op.kind = OpKind::conv2d;
                    op.projection = i;
                    op.kernel = P.conv.size();
                    P.conv.push_back(std::move(c));
                }
                auto& li = P.layers[op.row];
                li.kind = reads_input || op.dense ? LayerKind::conv_real : LayerKind::conv;
                li.input_neurons = s.size();
                li.flops =
                    op.kind == OpKind::conv3x3 ? P.conv3.back().flops() : P.conv.back().flops();
                break;
            }
            case NodeKind::linear: {
                op.row = driven_row(i);
                if (op.row == kNone) fail(n, "its current must drive a neuron population");
                op.reads_input = reads_input;
                op.kind = OpKind::linear;
                break;
            }
            case NodeKind::batchnorm:
                op.kind = OpKind::affine_current;
                op.kernel = P.affine.size();
                P.affine.push_back(fold_batchnorm(n));
                break;
            case NodeKind::scale: {
                op.kind = OpKind::affine_current;
                op.kernel = P.affine.size();
                Affine a;
                a.channels = n.shape.channels;
                a.gain = n.params[0].data;
                P.affine.push_back(std::move(a));
                break;
            }
            case NodeKind::max_pool:
            case NodeKind::sum_pool:
            case NodeKind::avg_pool: {
                const Shape& s = in_node->shape;
                op.kind = n.kind == NodeKind::max_pool ? OpKind::max_pool : OpKind::sum_pool;
                op.kernel = P.pools.size();
                const auto& a = n.attr;
                P.pools.emplace_back(s.channels, s.height, s.width, a.kernel, a.kw(), a.stride,
                                     a.sw(), a.padding, a.pw());
                break;
            }
            case NodeKind::flatten:
                op.kind = OpKind::flatten_vector;
                break;
            case NodeKind::merge_add:
                op.kind =
                    g.signal(i) == Signal::events ? OpKind::merge_events : OpKind::merge_currents;
                break;
            case NodeKind::attention: {
                op.row = driven_row(i);
                if (op.row == kNone) fail(n, "its current must drive a neuron population");
                op.kind = OpKind::attention;
                op.kernel = P.attn.size();
                const Shape& s = in_node->shape;
                SpikingAttention a;
                a.tokens = s.positions();
                a.dim = s.channels;
                a.heads = n.attr.heads;
                a.scale = n.attr.attention_scale;
                a.kappa = n.attr.kappa;
                a.binary = n.attr.binary;
                a.threshold.assign(a.heads, 0.f);
                if (n.attr.adaptive_threshold)
                    for (std::size_t h = 0; h < a.heads; ++h)
                        a.threshold[h] = float(n.attr.lambda * double(n.params[0].data[h]));
                if (n.attr.shift) a.shift = n.params[1].data;
                a.validate(n.name.c_str());
                auto& li = P.layers[op.row];
                li.kind = LayerKind::attention;
                li.input_neurons = s.size();
                li.flops = a.flops_qk() + a.flops_av();
                li.tokens = a.tokens;
                li.estimate_rows = {source_row(n.input_index[0]), source_row(n.input_index[2])};
                P.attention.push_back({n.name, op.row, a.tokens, a.dim, a.heads});
                P.attn.push_back(std::move(a));
                break;
            }
            case NodeKind::integrator:
            case NodeKind::li:
            case NodeKind::nir_if:
            case NodeKind::nir_lif:
            case NodeKind::cuba_li:
            case NodeKind::cuba_lif: {
                op.kind = OpKind::nir_neuron;
                op.row = row_of[i];
                op.kernel = P.nir.size();
                P.nir.push_back(compile_nir_neuron(n));
                op.spiking = P.nir.back().spiking;
                break;
            }
            case NodeKind::threshold:
                op.kind = OpKind::threshold;
                op.row = row_of[i];
                op.kernel = P.threshold_at.size();
                P.threshold_at.push_back(P.thresholds_flat.size());
                P.thresholds_flat.insert(P.thresholds_flat.end(), n.params[0].data.begin(),
                                         n.params[0].data.end());
                break;
            case NodeKind::delay: {
                op.kind = OpKind::delay;
                op.kernel = P.delays.size();
                DelayLine d;
                for (float seconds : n.params[0].data) {
                    const double delay_steps = std::round(double(seconds) / n.attr.dt);
                    if (delay_steps > 1e6)
                        fail(n, fmt::format("a delay of {} s is more than a million steps of dt",
                                            seconds));
                    d.steps.push_back(static_cast<std::uint32_t>(delay_steps));
                    d.length = std::max<std::size_t>(d.length, std::size_t(delay_steps) + 1);
                }
                P.delays.push_back(std::move(d));
                break;
            }
            case NodeKind::output:
                op.kind = OpKind::output;
                op.row = row_of[i];
                P.output_sink = true;
                P.output_events = g.signal(n.input_index[0]) == Signal::events;
                P.classes = n.shape.size();
                P.readout_channels = n.shape.size();
                break;
            case NodeKind::readout: {
                op.kind = OpKind::readout;
                op.row = row_of[i];
                P.classes = n.attr.out_channels;
                P.readout_channels = in_node->shape.channels;
                P.readout_positions = in_node->shape.positions();
                P.readout_weight = n.params[0].data;
                P.readout_bias = n.params[1].data;
                break;
            }
        }
        P.op_of[i] = P.ops.size();
        P.ops.push_back(std::move(op));
    }
    // Which op reads each storage last, in execution order.
    std::vector<std::size_t> last_reader(count, kNone), readers(count, 0);
    for (std::size_t o = 0; o < P.ops.size(); ++o) {
        auto ins = P.ops[o].in;
        std::sort(ins.begin(), ins.end());
        ins.erase(std::unique(ins.begin(), ins.end()), ins.end());
        for (auto j : ins) {
            last_reader[j] = o;
            ++readers[j];
        }
    }
    // A merge that is the last reader of another merge's output continues its sum in place
    // (the same events in the same order as a fresh sum, without re-adding them).
    for (std::size_t o = 0; o < P.ops.size(); ++o) {
        auto& op = P.ops[o];
        if (op.kind != OpKind::merge_events) continue;
        const std::size_t first = op.in[0], src = P.op_of[first];
        const auto& rec = nodes[op.node].recurrent;
        const bool any_recurrent = std::find(rec.begin(), rec.end(), true) != rec.end();
        if (src != kNone && P.ops[src].kind == OpKind::merge_events && last_reader[first] == o &&
            std::count(op.in.begin(), op.in.end(), first) == 1 && !any_recurrent)
            op.continues = src;
        op.stream = op.continues == kNone ? o : P.ops[op.continues].stream;
    }
    // Storages read through recurrent edges keep their value from one step to the next.
    std::vector<bool> recurrent_source(count, false);
    for (const auto& n : nodes)
        for (std::size_t e = 0; e < n.input_index.size(); ++e)
            if (n.recurrent[e] && !recurrent_source[P.storage[n.input_index[e]]]) {
                recurrent_source[P.storage[n.input_index[e]]] = true;
                P.recurrent_sources.push_back(P.storage[n.input_index[e]]);
            }
    // A current read only by the next op lives in one shared scratch buffer.
    P.scratch_current.assign(count, false);
    for (std::size_t o = 0; o + 1 < P.ops.size(); ++o) {
        const auto& op = P.ops[o];
        const bool current_op = op.kind == OpKind::conv3x3 || op.kind == OpKind::conv2d ||
                                op.kind == OpKind::linear || op.kind == OpKind::attention;
        const auto next = P.ops[o + 1].kind;
        if (current_op && readers[op.out] == 1 && last_reader[op.out] == o + 1 &&
            !recurrent_source[op.out] && (next == OpKind::lif || next == OpKind::if_neuron))
            P.scratch_current[op.out] = true;
    }
    // Linear kernels (plain and fused) once rows are known.
    for (auto& op : P.ops) {
        const bool fused = op.kind == OpKind::lif && fused_linear[op.node] != kNone;
        if (op.kind != OpKind::linear && !fused) continue;
        const std::size_t li_node = fused ? fused_linear[op.node] : op.node;
        const Node& lin = nodes[li_node];
        const Node& src = nodes[lin.input_index[0]];
        auto f = fold_weights(lin, src, folded_bn[li_node]);
        TokenLinear t;
        t.tokens = src.shape.positions();
        t.in_features = src.shape.channels;
        t.out_features = lin.shape.channels;
        t.weight_t = std::move(f.weight_t);
        t.bias = std::move(f.bias);
        if (fused) {
            op.kind = OpKind::linear_lif;
            op.in = {P.storage[lin.input_index[0]]};
        }
        op.kernel = P.linear.size();
        op.projection = li_node;
        auto& li = P.layers[op.row];
        li.kind =
            (!fused && (op.reads_input || op.dense)) ? LayerKind::conv_real : LayerKind::linear;
        li.input_neurons = t.inputs();
        li.flops = t.flops();
        P.linear.push_back(std::move(t));
    }
}

Network::Network(Network&&) noexcept = default;
Network& Network::operator=(Network&&) noexcept = default;
Network::~Network() = default;

const Graph& Network::graph() const {
    return plan_->graph;
}
const std::vector<LayerInfo>& Network::layers() const {
    return plan_->layers;
}
const std::vector<AttentionInfo>& Network::attention() const {
    return plan_->attention;
}
const Shape& Network::input_shape() const {
    return plan_->graph.nodes()[plan_->graph.input_node()].shape;
}
std::size_t Network::classes() const {
    return plan_->classes;
}

Network::Projection Network::projection(std::string_view node) const {
    const auto& P = *plan_;
    const std::size_t i = P.graph.find(node);
    for (const auto& op : P.ops) {
        if (op.projection != i || i == P.graph.nodes().size()) continue;
        if (op.kind == OpKind::conv3x3)
            return {P.conv3[op.kernel].weight_t, P.conv3[op.kernel].bias};
        if (op.kind == OpKind::conv2d) return {P.conv[op.kernel].weight_t, P.conv[op.kernel].bias};
        return {P.linear[op.kernel].weight_t, P.linear[op.kernel].bias};
    }
    throw ConfigError(fmt::format("network: '{}' is not a conv2d or linear node", node));
}

const SpikingAttention& Network::attention_kernel(std::size_t i) const {
    if (i >= plan_->attn.size()) throw ConfigError(fmt::format("network: no attention node {}", i));
    return plan_->attn[i];
}

StepCounts& StepCounts::operator+=(const StepCounts& o) {
    sops += o.sops;
    macs += o.macs;
    membrane_updates += o.membrane_updates;
    spikes += o.spikes;
    input_events += o.input_events;
    return *this;
}

StepCounts SampleResult::layer_total(std::size_t layer) const {
    StepCounts t;
    for (std::size_t s = 0; s < time_steps; ++s) t += at(layer, s);
    return t;
}

StepCounts SampleResult::total() const {
    StepCounts t;
    for (const auto& c : counts) t += c;
    return t;
}

SpikeRecorder::SpikeRecorder(const Network& net, const std::vector<std::string>& layers) {
    const auto& infos = net.layers();
    slot_.assign(infos.size(), -1);
    channels_.assign(infos.size(), 0);
    std::string valid;
    for (std::size_t i = 0; i < infos.size(); ++i) {
        if (infos[i].kind == LayerKind::head) continue;
        valid += (valid.empty() ? "" : ", ") + infos[i].name;
        const bool chosen = layers.empty() ||
                            std::find(layers.begin(), layers.end(), infos[i].name) != layers.end();
        if (!chosen) continue;
        slot_[i] = static_cast<int>(rasters_.size());
        if (infos[i].channel_major) channels_[i] = infos[i].shape[0];
        // record() converts map populations to channel-major; token populations keep the
        // engine's token-major order: the raster states the order it is converted to here
        rasters_.push_back(
            {infos[i].name, infos[i].shape, channels_[i] ? kChannelMajor : kTokenMajor, {}, {}});
    }
    for (const auto& name : layers) {
        bool known = false;
        for (const auto& li : infos) known |= li.kind != LayerKind::head && li.name == name;
        if (!known)
            throw ConfigError("unknown population '" + name +
                              "' to record; expected one of: " + valid);
    }
}

void SpikeRecorder::record(std::size_t layer, std::size_t step, const EventList& events) {
    auto& r = rasters_[static_cast<std::size_t>(slot_[layer])];
    const std::size_t c = channels_[layer];
    const std::size_t positions = c ? r.shape[1] * r.shape[2] : 0;
    for (std::size_t e = 0; e < events.size(); ++e)
        for (std::uint16_t m = 0; m < events.count[e]; ++m) {
            const std::size_t n = events.neuron[e];
            // Channel-last (engine) → channel-major (reports) for map populations.
            r.idx.push_back(static_cast<std::uint32_t>(c ? (n % c) * positions + n / c : n));
            r.time.push_back(static_cast<std::uint32_t>(step));
        }
}

void SpikeRecorder::clear() {
    for (auto& r : rasters_) {
        r.idx.clear();
        r.time.clear();
    }
}

namespace {

// Buffers the kernels stream through start on a cache line (64 bytes: one AVX-512 vector), so a
// row of 16·k floats never straddles two lines wherever malloc happened to put it.
template <class T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <class U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(std::size_t n) {
        return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
    }
    void deallocate(T* p, std::size_t) { ::operator delete (p, std::align_val_t{64}); }
    template <class U>
    bool operator==(const CacheLineAllocator<U>&) const {
        return true;
    }
};
using Floats = std::vector<float, CacheLineAllocator<float>>;

}  // namespace

struct Simulator::State {
    std::vector<EventList> events;                 ///< [node] output events
    std::vector<Floats> current;                   ///< [node] output currents (own buffers)
    std::vector<float*> cur;                       ///< [node] where its current lives
    std::vector<Floats> v;                         ///< [node] membranes of neuron nodes
    std::vector<Floats> image_cache;               ///< [op] dense projection of the image
    std::vector<std::uint64_t> image_macs;         ///< [op]
    std::vector<ResidualStream> streams;           ///< [op] merge_events
    std::vector<AttentionScratch> attention;       ///< [attention kernel]
    std::vector<std::uint8_t> seen;                ///< max-pool scratch
    std::vector<std::uint32_t> sums;               ///< sum-pool scratch
    Floats acc;                                    ///< fallback scratch of propagate_lif
    std::vector<double> readout_sum;               ///< [C] (output node: [its neurons])
    std::vector<Floats> syn;                       ///< [node] synaptic currents (Cuba kinds)
    std::vector<std::vector<EventList>> ring;      ///< [op] delay lines' pending events
    std::vector<StepCounts> counts;                ///< [step][row]
    std::vector<AttentionStepCounts> attn_counts;  ///< [step][attention]
    std::size_t steps = 0;
    std::size_t clock = 0;  ///< steps since the state was last reset (delay lines' time)
    bool image = false;
    std::chrono::steady_clock::time_point start;
};

Simulator::Simulator(const Network& net) : net_(&net), s_(new State) {
    const auto& P = net.plan();
    const auto& nodes = P.graph.nodes();
    State& s = *s_;
    s.events.resize(nodes.size());
    s.current.resize(nodes.size());
    s.v.resize(nodes.size());
    s.syn.resize(nodes.size());
    s.ring.resize(P.ops.size());
    s.image_cache.resize(P.ops.size());
    s.image_macs.assign(P.ops.size(), 0);
    s.streams.resize(P.ops.size());
    for (const auto& op : P.ops) {
        const Node& n = nodes[op.node];
        switch (op.kind) {
            case OpKind::lif:
            case OpKind::if_neuron:
            case OpKind::linear_lif:
                s.v[op.node].assign(n.shape.size(), 0.f);
                break;
            case OpKind::conv3x3:
            case OpKind::conv2d:
            case OpKind::linear:
            case OpKind::attention:
            case OpKind::affine_current:
            case OpKind::merge_currents:
                s.current[op.out].assign(n.shape.size(), 0.f);
                break;
            case OpKind::flatten_vector:
                if (P.graph.signal(op.node) == Signal::current)
                    s.current[op.out].assign(n.shape.size(), 0.f);
                break;
            case OpKind::merge_events:
                s.streams[P.op_of[op.node]] = ResidualStream(n.shape.size());
                break;
            case OpKind::nir_neuron:
                s.v[op.node].assign(n.shape.size(), 0.f);
                if (P.nir[op.kernel].synaptic) s.syn[op.node].assign(n.shape.size(), 0.f);
                if (!op.spiking) s.current[op.out].assign(n.shape.size(), 0.f);
                break;
            case OpKind::delay:
                s.ring[P.op_of[op.node]].resize(P.delays[op.kernel].length);
                break;
            default:
                break;
        }
    }
    for (const auto& a : P.attn) s.attention.emplace_back(a);
    s.seen.assign(P.largest, 0);
    s.sums.assign(P.largest, 0);
    s.acc.assign(P.largest, 0.f);
    s.cur.assign(nodes.size(), nullptr);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (P.scratch_current[i]) {
            s.current[i].clear();
            s.current[i].shrink_to_fit();
            s.cur[i] = s.acc.data();
        } else {
            s.cur[i] = s.current[i].data();
        }
    }
    s.readout_sum.assign(P.readout_channels, 0.0);
}

Simulator::~Simulator() = default;
Simulator::Simulator(Simulator&&) noexcept = default;

void Simulator::begin(bool keep_state) {
    State& s = *s_;
    s.start = std::chrono::steady_clock::now();
    s.steps = 0;
    s.counts.clear();
    s.attn_counts.clear();
    std::fill(s.readout_sum.begin(), s.readout_sum.end(), 0.0);
    s.image = false;
    if (keep_state) return;
    s.clock = 0;
    const auto& P = net_->plan();
    // every membrane starts at its population's v_reset (the trainer's rule); NIR kinds at 0
    for (const auto& op : P.ops) {
        if (op.kind == OpKind::lif || op.kind == OpKind::if_neuron || op.kind == OpKind::linear_lif)
            std::fill(s.v[op.node].begin(), s.v[op.node].end(), op.lif.v_reset);
        if (op.kind == OpKind::nir_neuron) {
            std::fill(s.v[op.node].begin(), s.v[op.node].end(), 0.f);
            std::fill(s.syn[op.node].begin(), s.syn[op.node].end(), 0.f);
        }
        if (op.kind == OpKind::delay)
            for (auto& slot : s.ring[P.op_of[op.node]]) slot.clear();
    }
    // recurrent edges carry nothing into the first step
    for (auto j : P.recurrent_sources) {
        s.events[j].clear();
        std::fill(s.current[j].begin(), s.current[j].end(), 0.f);
    }
}

SampleResult Simulator::run_image(std::span<const float> image, SpikeRecorder* recorder) {
    const Network& net = *net_;
    const auto& P = net.plan();
    if (!P.image_blocker.empty())
        throw ConfigError("network: a static image can only enter conv2d or linear nodes, but '" +
                          P.image_blocker + "' reads the input; give it events");
    if (image.size() != net.input_neurons())
        throw ConfigError("image has " + std::to_string(image.size()) + " values, the network " +
                          "expects " + std::to_string(net.input_neurons()));
    begin();
    State& s = *s_;
    s.image = true;
    for (std::size_t o = 0; o < P.ops.size(); ++o) {
        const Op& op = P.ops[o];
        if (!op.reads_input) continue;
        auto& cache = s.image_cache[o];
        switch (op.kind) {
            case OpKind::conv3x3: {
                const auto& c = P.conv3[op.kernel];
                cache.assign(c.outputs(), 0.f);
                c.init(cache.data());
                s.image_macs[o] = c.propagate_dense(image.data(), cache.data());
                break;
            }
            case OpKind::conv2d: {
                const auto& c = P.conv[op.kernel];
                cache.assign(c.outputs(), 0.f);
                c.init(cache.data());
                s.image_macs[o] = c.propagate_dense(image.data(), cache.data());
                break;
            }
            case OpKind::linear: {
                const auto& l = P.linear[op.kernel];
                cache.assign(l.outputs(), 0.f);
                l.init(cache.data());
                std::uint64_t macs = 0;
                for (std::size_t pos = 0; pos < l.tokens; ++pos)
                    for (std::size_t i = 0; i < l.in_features; ++i) {
                        const float x = image[pos * l.in_features + i];
                        if (x == 0.f) continue;
                        const float* row = l.weight_t.data() + i * l.out_features;
                        float* out = cache.data() + pos * l.out_features;
                        for (std::size_t k = 0; k < l.out_features; ++k) out[k] += x * row[k];
                        macs += l.out_features;
                    }
                s.image_macs[o] = macs;
                break;
            }
            default:
                break;
        }
    }
    for (std::size_t t = 0; t < net.time_steps; ++t) step(nullptr, recorder);
    return finish();
}

SampleResult Simulator::run_events(std::span<const EventList> frames, SpikeRecorder* recorder) {
    const Network& net = *net_;
    if (frames.size() != net.time_steps)
        throw ConfigError("event input has " + std::to_string(frames.size()) +
                          " frames, the network runs " + std::to_string(net.time_steps) +
                          " time steps");
    const auto limit = net.input_neurons();
    for (const auto& f : frames)
        for (auto n : f.neuron)
            if (n >= limit)
                throw ConfigError("input event of neuron " + std::to_string(n) +
                                  " is outside the " + std::to_string(limit) + " input neurons");
    begin();
    for (const auto& f : frames) step(&f, recorder);
    return finish();
}

void Simulator::step_events(const EventList& input, SpikeRecorder* recorder) {
    const auto limit = net_->input_neurons();
    for (auto n : input.neuron)
        if (n >= limit)
            throw ConfigError("input event of neuron " + std::to_string(n) + " is outside the " +
                              std::to_string(limit) + " input neurons");
    s_->image = false;
    step(&input, recorder);
}

void Simulator::step(const EventList* input, SpikeRecorder* recorder) {
    const auto& P = net_->plan();
    State& s = *s_;
    const std::size_t rows = P.layers.size(), t = s.steps;
    s.counts.resize((t + 1) * rows);
    s.attn_counts.resize((t + 1) * P.attn.size());
    StepCounts* count = s.counts.data() + t * rows;
    const std::size_t in_node = P.graph.input_node();
    auto events_of = [&](std::size_t storage) -> const EventList& {
        return storage == in_node ? *input : s.events[storage];
    };
    auto emit = [&](const Op& op, const EventList& ev) {
        auto& c = count[op.row];
        c.membrane_updates += op.neurons;
        c.spikes += ev.size();
        if (recorder && recorder->wants(op.row)) recorder->record(op.row, t, ev);
    };

    for (std::size_t o = 0; o < P.ops.size(); ++o) {
        const Op& op = P.ops[o];
        switch (op.kind) {
            case OpKind::conv3x3:
            case OpKind::conv2d:
            case OpKind::linear: {
                float* acc = s.cur[op.out];
                auto& c = count[op.row];
                if (op.reads_input && s.image) {
                    std::copy(s.image_cache[o].begin(), s.image_cache[o].end(), acc);
                    c.macs += s.image_macs[o];
                    break;
                }
                if (op.dense) {  // a real-valued current (e.g. an LI's membrane): MACs
                    const float* x = s.cur[op.in[0]];
                    if (op.kind == OpKind::conv3x3) {
                        P.conv3[op.kernel].init(acc);
                        c.macs += P.conv3[op.kernel].propagate_dense(x, acc);
                    } else if (op.kind == OpKind::conv2d) {
                        P.conv[op.kernel].init(acc);
                        c.macs += P.conv[op.kernel].propagate_dense(x, acc);
                    } else {
                        P.linear[op.kernel].init(acc);
                        c.macs += P.linear[op.kernel].propagate_dense(x, acc);
                    }
                    break;
                }
                const EventList& in = events_of(op.in[0]);
                if (op.kind == OpKind::conv3x3) {
                    const auto& k = P.conv3[op.kernel];
                    k.init(acc);
                    c.sops += k.propagate(in, acc);
                } else if (op.kind == OpKind::conv2d) {
                    const auto& k = P.conv[op.kernel];
                    k.init(acc);
                    c.sops += k.propagate(in, acc);
                } else {
                    const auto& k = P.linear[op.kernel];
                    k.init(acc);
                    c.sops += k.propagate(in, acc);
                }
                c.input_events += in.total();
                break;
            }
            case OpKind::linear_lif: {
                const EventList& in = events_of(op.in[0]);
                auto& ev = s.events[op.out];
                ev.clear();
                auto& c = count[op.row];
                c.sops += P.linear[op.kernel].propagate_lif(in, op.lif, s.v[op.node].data(), ev,
                                                            s.acc.data());
                c.input_events += in.total();
                emit(op, ev);
                break;
            }
            case OpKind::lif: {
                auto& ev = s.events[op.out];
                ev.clear();
                lif_step(op.lif, s.v[op.node].data(), s.cur[op.in[0]], op.neurons, ev);
                emit(op, ev);
                break;
            }
            case OpKind::if_neuron: {
                auto& ev = s.events[op.out];
                ev.clear();
                float* v = s.v[op.node].data();
                const float* x = s.cur[op.in[0]];
                for (std::size_t i = 0; i < op.neurons; ++i) {
                    const float u = if_charge(v[i], x[i]);
                    const bool fire = fires(u, op.lif);
                    v[i] = after_spike(u, fire, op.lif);
                    if (fire) ev.push(static_cast<std::uint32_t>(i), 1);
                }
                emit(op, ev);
                break;
            }
            case OpKind::attention: {
                const auto& q = events_of(op.in[0]);
                const auto& v = events_of(op.in[2]);
                const auto ac = attend(P.attn[op.kernel], q, events_of(op.in[1]), v, s.cur[op.out],
                                       s.attention[op.kernel]);
                auto& c = count[op.row];
                c.sops += ac.sops_qk + ac.sops_av;
                c.input_events += q.size() + v.size();
                s.attn_counts[t * P.attn.size() + op.kernel] = {ac.sops_qk, ac.sops_av, ac.nonzero};
                break;
            }
            case OpKind::affine_current: {
                const auto& a = P.affine[op.kernel];
                const float* x = s.cur[op.in[0]];
                float* y = s.cur[op.out];
                const std::size_t ch = a.channels;
                for (std::size_t i = 0; i < op.neurons; ++i)
                    y[i] = a.shift.empty() ? x[i] * a.gain[i % ch]
                                           : x[i] * a.gain[i % ch] + a.shift[i % ch];
                break;
            }
            case OpKind::max_pool:
                P.pools[op.kernel].apply(events_of(op.in[0]), s.events[op.out], s.seen);
                break;
            case OpKind::sum_pool:
                P.pools[op.kernel].apply_sum(events_of(op.in[0]), s.events[op.out], s.sums);
                break;
            case OpKind::merge_events: {
                auto& stream = s.streams[op.stream];
                if (op.continues == kNone) {
                    stream.clear();
                    stream.add(events_of(op.in[0]));
                }
                for (std::size_t e = 1; e < op.in.size(); ++e) stream.add(events_of(op.in[e]));
                const auto& shape = P.graph.nodes()[op.node].shape;
                stream.to_events_by_token(s.events[op.out], shape.channels);
                break;
            }
            case OpKind::merge_currents: {
                float* y = s.cur[op.out];
                std::fill(y, y + op.neurons, 0.f);
                for (auto j : op.in) {
                    const float* x = s.cur[j];
                    for (std::size_t i = 0; i < op.neurons; ++i) y[i] += x[i];
                }
                break;
            }
            case OpKind::flatten_vector: {
                const Shape& in = P.graph.nodes()[P.graph.nodes()[op.node].input_index[0]].shape;
                const std::size_t c = in.channels, hw = in.positions();
                if (P.graph.signal(op.node) == Signal::events) {
                    const EventList& x = events_of(op.in[0]);
                    auto& y = s.events[op.out];
                    y.clear();
                    for (std::size_t e = 0; e < x.size(); ++e) {
                        const std::size_t n = x.neuron[e];
                        y.push(static_cast<std::uint32_t>((n % c) * hw + n / c), x.count[e]);
                    }
                } else {
                    const float* x = s.cur[op.in[0]];
                    float* y = s.cur[op.out];
                    for (std::size_t n = 0; n < c * hw; ++n) y[(n % c) * hw + n / c] = x[n];
                }
                break;
            }
            case OpKind::readout: {
                const EventList& x = events_of(op.in[0]);
                const std::uint32_t d = static_cast<std::uint32_t>(P.readout_channels);
                double* sum = s.readout_sum.data();
                if ((d & (d - 1)) == 0) {  // channel of a channel-last neuron without a division
                    for (std::size_t e = 0; e < x.size(); ++e)
                        sum[x.neuron[e] & (d - 1)] += x.count[e];
                } else {
                    for (std::size_t e = 0; e < x.size(); ++e) sum[x.neuron[e] % d] += x.count[e];
                }
                break;
            }
            case OpKind::nir_neuron: {
                const auto& m = P.nir[op.kernel];
                float* v = s.v[op.node].data();
                float* syn = m.synaptic ? s.syn[op.node].data() : nullptr;
                const float* x = s.cur[op.in[0]];
                auto& ev = s.events[op.out];
                ev.clear();
                for (std::size_t i = 0; i < op.neurons; ++i) {
                    float in = x[i];
                    if (syn) {
                        syn[i] += m.k_syn[i] * (m.w_in[i] * in - syn[i]);
                        in = syn[i];
                    }
                    float u = v[i] + m.k_leak[i] * (m.v_leak[i] - v[i]) + m.k_in[i] * in;
                    if (m.spiking && u > m.v_threshold[i]) {  // NIR fires on v > v_threshold
                        ev.push(static_cast<std::uint32_t>(i), 1);
                        u = m.v_reset[i];
                    }
                    v[i] = u;
                }
                if (m.spiking)
                    emit(op, ev);
                else {
                    std::copy(v, v + op.neurons, s.cur[op.out]);
                    count[op.row].membrane_updates += op.neurons;
                }
                break;
            }
            case OpKind::threshold: {
                const float* x = s.cur[op.in[0]];
                const float* theta = P.thresholds_flat.data() + P.threshold_at[op.kernel];
                auto& ev = s.events[op.out];
                ev.clear();
                for (std::size_t i = 0; i < op.neurons; ++i)
                    if (x[i] > theta[i]) ev.push(static_cast<std::uint32_t>(i), 1);
                count[op.row].spikes += ev.size();
                if (recorder && recorder->wants(op.row)) recorder->record(op.row, t, ev);
                break;
            }
            case OpKind::delay: {
                const auto& d = P.delays[op.kernel];
                auto& ring = s.ring[o];
                const std::size_t now = s.clock;
                auto& slot = ring[now % d.length];
                auto& out = s.events[op.out];
                out.clear();
                for (std::size_t e = 0; e < slot.size(); ++e)
                    out.push(slot.neuron[e], slot.count[e]);
                slot.clear();
                const EventList& x = events_of(op.in[0]);
                for (std::size_t e = 0; e < x.size(); ++e) {
                    const auto n = x.neuron[e];
                    if (d.steps[n] == 0)
                        out.push(n, x.count[e]);
                    else
                        ring[(now + d.steps[n]) % d.length].push(n, x.count[e]);
                }
                break;
            }
            case OpKind::output: {
                if (P.output_events) {
                    const EventList& x = events_of(op.in[0]);
                    for (std::size_t e = 0; e < x.size(); ++e)
                        s.readout_sum[x.neuron[e]] += x.count[e];
                } else {
                    const float* x = s.cur[op.in[0]];
                    for (std::size_t i = 0; i < op.neurons; ++i) s.readout_sum[i] += x[i];
                }
                break;
            }
        }
    }
    ++s.steps;
    ++s.clock;
}

SampleResult Simulator::finish() {
    const auto& P = net_->plan();
    State& s = *s_;
    const std::size_t rows = P.layers.size(), steps = s.steps, attn = P.attn.size();
    SampleResult r;
    r.time_steps = steps;
    r.counts.resize(rows * steps);
    for (std::size_t t = 0; t < steps; ++t)
        for (std::size_t l = 0; l < rows; ++l) r.counts[l * steps + t] = s.counts[t * rows + l];
    r.attention.resize(attn * steps);
    for (std::size_t t = 0; t < steps; ++t)
        for (std::size_t a = 0; a < attn; ++a)
            r.attention[a * steps + t] = s.attn_counts[t * attn + a];
    const std::size_t in = P.readout_channels;
    r.logits.assign(P.classes, 0.f);
    if (P.output_sink) {  // spike counts, or the mean current over the steps
        const double norm = P.output_events || steps == 0 ? 1.0 : 1.0 / double(steps);
        for (std::size_t k = 0; k < P.classes; ++k) r.logits[k] = float(s.readout_sum[k] * norm);
    } else {
        const double norm = steps ? 1.0 / double(steps * P.readout_positions) : 0.0;
        for (std::size_t k = 0; k < P.classes; ++k) {
            float sum = P.readout_bias[k];
            for (std::size_t c = 0; c < in; ++c)
                sum += P.readout_weight[k * in + c] * float(s.readout_sum[c] * norm);
            r.logits[k] = sum;
        }
        if (steps) r.counts[(rows - 1) * steps + steps - 1].macs += P.classes * in;
    }
    r.prediction = static_cast<std::size_t>(std::max_element(r.logits.begin(), r.logits.end()) -
                                            r.logits.begin());
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.start).count();
    return r;
}

}  // namespace evformer::sim
