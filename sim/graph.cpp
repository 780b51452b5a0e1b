#include "evformer/sim/graph.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "evformer/error.hpp"

namespace evformer::sim {

const NodeKindInfo& kind_info(NodeKind kind) {
    return kNodeKinds[static_cast<std::size_t>(kind)];
}

std::string Shape::str() const {
    if (tokens) return fmt::format("{} tokens x {}", positions(), channels);
    if (height == 1 && width == 1) return fmt::format("{}", channels);
    return fmt::format("{}x{}x{}", channels, height, width);
}

std::size_t window_output(std::size_t n, std::size_t kernel, std::size_t stride,
                          std::size_t padding, std::size_t dilation) {
    const std::size_t span = dilation * (kernel - 1) + 1;
    if (stride == 0 || kernel == 0 || n + 2 * padding < span) return 0;
    return (n + 2 * padding - span) / stride + 1;
}

Node& Graph::add(std::string name, NodeKind kind, std::vector<std::string> inputs,
                 NodeAttributes attr) {
    validated_ = false;
    Node n;
    n.name = std::move(name);
    n.kind = kind;
    n.inputs = std::move(inputs);
    n.attr = attr;
    nodes_.push_back(std::move(n));
    return nodes_.back();
}

std::size_t Graph::find(std::string_view name) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].name == name) return i;
    return nodes_.size();
}

const Node& Graph::node(std::string_view name) const {
    const auto i = find(name);
    if (i == nodes_.size()) throw ConfigError(fmt::format("graph: no node '{}'", name));
    return nodes_[i];
}

Node& Graph::node(std::string_view name) {
    const auto i = find(name);
    if (i == nodes_.size()) throw ConfigError(fmt::format("graph: no node '{}'", name));
    return nodes_[i];
}

Signal Graph::signal(std::size_t i) const {
    const Node& n = nodes_[i];
    // flatten and merge_add pass on the signal they take
    if (n.kind == NodeKind::flatten || n.kind == NodeKind::merge_add) {
        std::size_t e = 0;
        while (e + 1 < n.input_index.size() && e < n.recurrent.size() && n.recurrent[e]) ++e;
        return signal(n.input_index[e]);
    }
    return kind_info(n.kind).output;
}

namespace {

[[noreturn]] void fail(const Node& n, const std::string& rule) {
    throw ConfigError(
        fmt::format("graph: node '{}' ({}): {}", n.name, kind_info(n.kind).name, rule));
}

// Kinds that take either signal: events, or a current (projections read a current densely).
bool takes_any_signal(NodeKind k) {
    return k == NodeKind::merge_add || k == NodeKind::flatten || k == NodeKind::conv2d ||
           k == NodeKind::linear || k == NodeKind::output;
}

std::size_t first_forward_input(const Node& n) {
    for (std::size_t e = 0; e < n.input_index.size(); ++e)
        if (e >= n.recurrent.size() || !n.recurrent[e]) return e;
    return 0;
}

void check_input_signal(const Node& n, std::size_t e, Signal s, Signal first) {
    const auto& k = kind_info(n.kind);
    const bool any = takes_any_signal(n.kind);
    if (s == Signal::logits) fail(n, "cannot take class scores");
    if (!any && s != k.input)
        fail(n, fmt::format("takes {} but '{}' gives {}",
                            k.input == Signal::events ? "events" : "a current", n.inputs[e],
                            s == Signal::events ? "events" : "a current"));
    if (n.kind == NodeKind::merge_add && s != first)
        fail(n, "its inputs must all be events or all currents");
}

}  // namespace

bool is_population(NodeKind k) {
    return k == NodeKind::lif || k == NodeKind::if_neuron || is_nir_neuron(k);
}

bool is_nir_neuron(NodeKind k) {
    switch (k) {
        case NodeKind::integrator:
        case NodeKind::li:
        case NodeKind::nir_if:
        case NodeKind::nir_lif:
        case NodeKind::cuba_li:
        case NodeKind::cuba_lif:
            return true;
        default:
            return false;
    }
}

void Graph::validate() {
    validated_ = false;
    const std::size_t count = nodes_.size();
    if (count == 0) throw ConfigError("graph: the graph has no nodes");
    // Names and edges.
    for (std::size_t i = 0; i < count; ++i) {
        Node& n = nodes_[i];
        if (static_cast<std::size_t>(n.kind) >= kNodeKindCount)
            throw ConfigError(fmt::format("graph: node '{}' has an unknown kind", n.name));
        if (n.name.empty()) fail(n, "every node needs a name");
        if (find(n.name) != i) fail(n, "the name is used by another node");
        const auto& k = kind_info(n.kind);
        if (n.inputs.size() < k.min_inputs || n.inputs.size() > k.max_inputs)
            fail(n, fmt::format("takes {} input{}, has {}",
                                k.min_inputs == k.max_inputs
                                    ? fmt::format("{}", k.min_inputs)
                                    : fmt::format("{} to {}", k.min_inputs, k.max_inputs),
                                k.max_inputs == 1 ? "" : "s", n.inputs.size()));
        n.input_index.clear();
        for (const auto& in : n.inputs) {
            const auto j = find(in);
            if (j == count) fail(n, fmt::format("its input '{}' is not a node of the graph", in));
            if (j == i) fail(n, "a node cannot be its own input");
            n.input_index.push_back(j);
        }
    }
    // Exactly one input and one sink (a readout or an output).
    std::size_t inputs = 0, sinks = 0;
    for (std::size_t i = 0; i < count; ++i) {
        if (nodes_[i].kind == NodeKind::input) input_ = i, ++inputs;
        if (nodes_[i].kind == NodeKind::readout || nodes_[i].kind == NodeKind::output)
            readout_ = i, ++sinks;
    }
    if (inputs != 1)
        throw ConfigError(fmt::format("graph: needs exactly one input node, has {}", inputs));
    if (sinks != 1)
        throw ConfigError(
            fmt::format("graph: needs exactly one readout or output node, has {}", sinks));
    consumers_.assign(count, {});
    for (std::size_t i = 0; i < count; ++i)
        for (auto j : nodes_[i].input_index)
            if (consumers_[j].empty() || consumers_[j].back() != i) consumers_[j].push_back(i);
    // Recurrent edges: a depth-first search from the input along consumers (in declaration
    // order); an edge into a node still on the search path closes a cycle.
    for (auto& n : nodes_) n.recurrent.assign(n.input_index.size(), false);
    recurrent_ = false;
    std::vector<std::uint8_t> state(count, 0);  // 0 unseen, 1 on the path, 2 done
    {
        std::vector<std::pair<std::size_t, std::size_t>> stack{{input_, 0}};
        state[input_] = 1;
        while (!stack.empty()) {
            auto& [at, next] = stack.back();
            if (next == consumers_[at].size()) {
                state[at] = 2;
                stack.pop_back();
                continue;
            }
            const std::size_t c = consumers_[at][next++];
            if (state[c] == 1) {
                Node& cn = nodes_[c];
                for (std::size_t e = 0; e < cn.input_index.size(); ++e)
                    if (cn.input_index[e] == at) cn.recurrent[e] = true;
                recurrent_ = true;
            } else if (state[c] == 0) {
                state[c] = 1;
                stack.emplace_back(c, 0);
            }
        }
    }
    for (std::size_t i = 0; i < count; ++i)
        if (state[i] == 0) fail(nodes_[i], "is not reachable from the input node");
    // Topological order over the other edges (Kahn; among ready nodes the one declared first).
    std::vector<std::size_t> pending(count, 0);
    for (std::size_t i = 0; i < count; ++i)
        for (std::size_t e = 0; e < nodes_[i].input_index.size(); ++e)
            if (!nodes_[i].recurrent[e]) ++pending[i];
    order_.clear();
    std::vector<bool> done(count, false);
    while (order_.size() < count) {
        std::size_t next = count;
        for (std::size_t i = 0; i < count && next == count; ++i)
            if (!done[i] && pending[i] == 0) next = i;
        if (next == count)
            for (std::size_t i = 0; i < count; ++i)
                if (!done[i]) fail(nodes_[i], "lies on a cycle the engine cannot order");
        done[next] = true;
        order_.push_back(next);
        for (auto c : consumers_[next]) {  // each consumer once, for all its edges from next
            const Node& cn = nodes_[c];
            for (std::size_t e = 0; e < cn.input_index.size(); ++e)
                if (cn.input_index[e] == next && !cn.recurrent[e]) --pending[c];
        }
    }
    std::vector<std::size_t> position(count);
    for (std::size_t k = 0; k < count; ++k) position[order_[k]] = k;
    for (auto& c : consumers_) {
        std::sort(c.begin(), c.end(),
                  [&](std::size_t a, std::size_t b) { return position[a] < position[b]; });
    }
    // Every node leads to the sink (a search backward along all edges, recurrent ones too).
    std::vector<bool> to_sink(count, false);
    {
        std::vector<std::size_t> todo{readout_};
        to_sink[readout_] = true;
        while (!todo.empty()) {
            const std::size_t at = todo.back();
            todo.pop_back();
            for (auto j : nodes_[at].input_index)
                if (!to_sink[j]) to_sink[j] = true, todo.push_back(j);
        }
    }
    for (std::size_t i = 0; i < count; ++i)
        if (!to_sink[i])
            fail(nodes_[i],
                 fmt::format("does not lead to the {}", kind_info(nodes_[readout_].kind).name));
    // Shapes of recurrent edges' sources are inferred after their consumers: such an edge takes
    // the shape the consumer expects from its other inputs, checked once the source is known.
    // Signals and shapes, in execution order.
    for (auto i : order_) {
        Node& n = nodes_[i];
        const auto& a = n.attr;
        auto in_shape = [&](std::size_t e) -> const Shape& {
            return nodes_[n.input_index[e]].shape;
        };
        auto in_signal = [&](std::size_t e) { return signal(n.input_index[e]); };
        const std::size_t first = first_forward_input(n);
        for (std::size_t e = 0; e < n.input_index.size(); ++e) {
            if (n.recurrent[e]) continue;  // checked below, once its source is known
            check_input_signal(n, e, in_signal(e), in_signal(first));
        }
        switch (n.kind) {
            case NodeKind::input:
                if (a.shape.size() == 0) fail(n, "its shape must have channels and positions");
                n.shape = a.shape;
                break;
            case NodeKind::lif:
                if (!(a.lif.tau > 0)) fail(n, "tau must be > 0");
                [[fallthrough]];
            case NodeKind::if_neuron:
                if (!(a.lif.v_threshold > a.lif.v_reset))
                    fail(n, "v_threshold must be greater than v_reset");
                n.shape = in_shape(0);
                break;
            case NodeKind::conv2d: {
                const Shape& s = in_shape(0);
                if (a.out_channels == 0 || a.kernel == 0 || a.stride == 0 || a.dilation == 0 ||
                    a.groups == 0 || a.kw() == 0 || a.sw() == 0 || a.dw() == 0)
                    fail(n, "out_channels, kernel, stride, dilation and groups must be positive");
                if (s.channels % a.groups != 0 || a.out_channels % a.groups != 0)
                    fail(n, fmt::format("groups ({}) must divide the input channels ({}) and "
                                        "out_channels ({})",
                                        a.groups, s.channels, a.out_channels));
                const auto h = window_output(s.height, a.kernel, a.stride, a.padding, a.dilation);
                const auto w = window_output(s.width, a.kw(), a.sw(), a.pw(), a.dw());
                if (h == 0 || w == 0)
                    fail(n, fmt::format("a {}x{} kernel does not fit the {} input", a.kernel,
                                        a.kw(), s.str()));
                n.shape = {a.out_channels, h, w, false};
                break;
            }
            case NodeKind::linear:
                if (a.out_channels == 0) fail(n, "out_channels must be positive");
                n.shape = in_shape(0);
                n.shape.channels = a.out_channels;
                break;
            case NodeKind::batchnorm:
                if (!(a.eps > 0)) fail(n, "eps must be > 0");
                n.shape = in_shape(0);
                break;
            case NodeKind::scale:
                n.shape = in_shape(0);
                break;
            case NodeKind::max_pool:
            case NodeKind::sum_pool:
            case NodeKind::avg_pool: {
                const Shape& s = in_shape(0);
                if (a.kernel == 0 || a.stride == 0 || a.kw() == 0 || a.sw() == 0)
                    fail(n, "kernel and stride must be positive");
                if (2 * a.padding > a.kernel || 2 * a.pw() > a.kw())
                    fail(n, "padding must be at most half the kernel");
                const auto h = window_output(s.height, a.kernel, a.stride, a.padding);
                const auto w = window_output(s.width, a.kw(), a.sw(), a.pw());
                if (h == 0 || w == 0) fail(n, "the window does not fit the input " + s.str());
                n.shape = {s.channels, h, w, false};
                if (n.kind == NodeKind::avg_pool)
                    for (auto c : consumers_[i]) {
                        const auto ck = nodes_[c].kind;
                        if (ck != NodeKind::conv2d && ck != NodeKind::linear)
                            fail(n,
                                 "must feed conv2d or linear nodes only (its 1/k² is folded "
                                 "into their weights)");
                    }
                break;
            }
            case NodeKind::flatten: {
                const Shape& s = in_shape(0);
                n.shape = a.to_tokens ? Shape{s.channels, s.height, s.width, true}
                                      : Shape{s.size(), 1, 1, false};
                break;
            }
            case NodeKind::merge_add:
                for (std::size_t e = 0; e < n.input_index.size(); ++e)
                    if (!n.recurrent[e] && !in_shape(e).same_size(in_shape(first)))
                        fail(n, fmt::format("input '{}' is {} but '{}' is {}", n.inputs[e],
                                            in_shape(e).str(), n.inputs[first],
                                            in_shape(first).str()));
                n.shape = in_shape(first);
                break;
            case NodeKind::attention: {
                for (std::size_t e = 0; e < 3; ++e)
                    if (n.recurrent[e])
                        fail(n, fmt::format("its input '{}' closes a cycle; q, k and v must come "
                                            "from the same time step",
                                            n.inputs[e]));
                for (std::size_t e = 1; e < 3; ++e)
                    if (!in_shape(e).same_size(in_shape(0)))
                        fail(n, "q, k and v must have the same shape");
                const Shape& s = in_shape(0);
                if (a.heads == 0 || s.channels % a.heads != 0)
                    fail(n, fmt::format("heads ({}) must divide the channels ({})", a.heads,
                                        s.channels));
                if (s.positions() * s.positions() * a.heads >= (std::size_t{1} << 32))
                    fail(n, "too many tokens for the attention map");
                if (!(a.attention_scale > 0) || !(a.kappa > 0))
                    fail(n, "scale and kappa must be > 0");
                n.shape = s;
                break;
            }
            case NodeKind::readout:
                if (a.out_channels == 0) fail(n, "out_channels (classes) must be positive");
                if (!consumers_[i].empty()) fail(n, "the readout must be the last node");
                n.shape = {a.out_channels, 1, 1, false};
                break;
            case NodeKind::li:
            case NodeKind::nir_lif:
            case NodeKind::cuba_li:
            case NodeKind::cuba_lif:
            case NodeKind::delay:
                if (!(a.dt > 0) || !std::isfinite(a.dt)) fail(n, "dt must be > 0 (seconds)");
                n.shape = in_shape(0);
                break;
            case NodeKind::integrator:
            case NodeKind::nir_if:
            case NodeKind::threshold:
                n.shape = in_shape(0);
                break;
            case NodeKind::output:
                if (!consumers_[i].empty()) fail(n, "the output must be the last node");
                n.shape = in_shape(0);
                break;
        }
        if (n.kind != NodeKind::input && n.kind != NodeKind::readout && n.shape.size() == 0)
            fail(n, "its shape is empty");
    }
    // Recurrent edges, now that every source is known: signal and shape as a forward edge.
    for (auto i : order_) {
        const Node& n = nodes_[i];
        const std::size_t first = first_forward_input(n);
        for (std::size_t e = 0; e < n.input_index.size(); ++e) {
            if (!n.recurrent[e]) continue;
            const std::size_t j = n.input_index[e];
            check_input_signal(n, e, signal(j), signal(n.input_index[first]));
            if (!nodes_[j].shape.same_size(nodes_[n.input_index[first]].shape))
                fail(n, fmt::format("its recurrent input '{}' is {} but '{}' is {}", n.inputs[e],
                                    nodes_[j].shape.str(), n.inputs[first],
                                    nodes_[n.input_index[first]].shape.str()));
        }
    }
    validated_ = true;
}

std::vector<ParamSlot> Graph::parameter_slots(std::size_t i) const {
    const Node& n = nodes_[i];
    const auto& a = n.attr;
    const std::size_t in = n.input_index.empty() ? 0 : nodes_[n.input_index[0]].shape.channels;
    const std::size_t c = n.shape.channels;
    std::vector<ParamSlot> out;
    switch (n.kind) {
        case NodeKind::conv2d:
            out.push_back({"weight", {c, in / a.groups, a.kernel, a.kw()}, ParamRole::weight});
            if (a.bias) out.push_back({"bias", {c}, ParamRole::bias});
            break;
        case NodeKind::linear:
            out.push_back({"weight", {c, in}, ParamRole::weight});
            if (a.bias) out.push_back({"bias", {c}, ParamRole::bias});
            break;
        case NodeKind::batchnorm:
            out.push_back({"weight", {c}, ParamRole::bn_weight});
            out.push_back({"bias", {c}, ParamRole::bn_bias});
            out.push_back({"running_mean", {c}, ParamRole::bn_mean});
            out.push_back({"running_var", {c}, ParamRole::bn_var});
            break;
        case NodeKind::scale:
            out.push_back({"weight", {c}, ParamRole::weight});
            break;
        case NodeKind::attention:
            out.push_back({"c_mean", {a.heads}, ParamRole::statistic});
            out.push_back({"v_bar", {c}, ParamRole::statistic});
            break;
        case NodeKind::readout:
            out.push_back({"weight", {a.out_channels, in}, ParamRole::weight});
            out.push_back({"bias", {a.out_channels}, ParamRole::bias});
            break;
        default:
            if (n.kind == NodeKind::threshold || n.kind == NodeKind::delay || is_nir_neuron(n.kind))
                for (const auto& [name, role] : nir_parameters(n.kind))
                    out.push_back({std::string(name), {n.shape.size()}, role});
            break;
    }
    return out;
}

std::vector<std::pair<std::string_view, ParamRole>> nir_parameters(NodeKind kind) {
    using R = ParamRole;
    switch (kind) {
        case NodeKind::integrator:
            return {{"r", R::neuron}};
        case NodeKind::li:
            return {{"tau", R::time_constant}, {"r", R::neuron}, {"v_leak", R::neuron}};
        case NodeKind::nir_if:
            return {{"r", R::neuron}, {"v_threshold", R::neuron}, {"v_reset", R::neuron}};
        case NodeKind::nir_lif:
            return {{"tau", R::time_constant},
                    {"r", R::neuron},
                    {"v_leak", R::neuron},
                    {"v_threshold", R::neuron},
                    {"v_reset", R::neuron}};
        case NodeKind::cuba_li:
            return {{"tau_syn", R::time_constant},
                    {"tau_mem", R::time_constant},
                    {"r", R::neuron},
                    {"v_leak", R::neuron},
                    {"w_in", R::neuron}};
        case NodeKind::cuba_lif:
            return {{"tau_syn", R::time_constant},
                    {"tau_mem", R::time_constant},
                    {"r", R::neuron},
                    {"v_leak", R::neuron},
                    {"v_threshold", R::neuron},
                    {"v_reset", R::neuron},
                    {"w_in", R::neuron}};
        case NodeKind::threshold:
            return {{"threshold", R::neuron}};
        case NodeKind::delay:
            return {{"delay", R::delay_time}};
        default:
            return {};
    }
}

std::vector<std::pair<std::string, ParamSlot>> Graph::parameter_layout() const {
    if (!validated_) throw ConfigError("graph: parameter_layout() needs a validated graph");
    std::vector<std::pair<std::string, ParamSlot>> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        for (auto& slot : parameter_slots(i))
            out.emplace_back(nodes_[i].name + "/" + slot.name, std::move(slot));
    return out;
}

void Graph::check_parameters() const {
    if (!validated_) throw ConfigError("graph: check_parameters() needs a validated graph");
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        const Node& n = nodes_[i];
        const auto slots = parameter_slots(i);
        if (n.params.size() != slots.size())
            fail(n, fmt::format("holds {} parameter tensors, expected {}", n.params.size(),
                                slots.size()));
        for (std::size_t p = 0; p < slots.size(); ++p) {
            const auto& t = n.params[p];
            std::size_t elements = 1;
            for (auto d : slots[p].shape) elements *= d;
            if (t.shape != slots[p].shape || t.data.size() != elements)
                fail(n, fmt::format("tensor '{}' has {} values, expected {}", slots[p].name,
                                    t.data.size(), elements));
            for (float v : t.data) {
                if (!std::isfinite(v))
                    fail(n, fmt::format("tensor '{}' has a non-finite value", slots[p].name));
                if (slots[p].role == ParamRole::bn_var && v < 0)
                    fail(n, fmt::format("tensor '{}' has a negative variance", slots[p].name));
                if (slots[p].role == ParamRole::time_constant && !(v > 0))
                    fail(n, fmt::format("tensor '{}' has a time constant ≤ 0", slots[p].name));
                if (slots[p].role == ParamRole::delay_time && v < 0)
                    fail(n, fmt::format("tensor '{}' has a negative delay", slots[p].name));
            }
        }
    }
}

}  // namespace evformer::sim
