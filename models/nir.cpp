#include "evformer/models/nir.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "evformer/error.hpp"
#include "evformer/sim/network.hpp"

namespace evformer::models {

namespace {

namespace h5 = io::h5;
using io::nir::Value;
using sim::NodeKind;

[[noreturn]] void fail(const std::string& name, const std::string& type, const std::string& rule) {
    throw ConfigError(fmt::format("NIR node '{}' ({}): {}", name, type, rule));
}

// A leaf node of the (flattened) NIR graph: its full name and the file's node.
struct Leaf {
    std::string name;
    const io::nir::Node* node = nullptr;
};

struct Flat {
    std::vector<Leaf> leaves;
    std::vector<std::pair<std::string, std::string>> edges;
};

// Flattens nested NIRGraph nodes: nodes become "<graph>.<node>", and the nested graph's Input and
// Output nodes are spliced out (edges into the graph reach what its Input fed, edges out of it
// leave from what fed its Output).
Flat flatten_graph(const io::nir::Graph& g, const std::string& prefix, int depth) {
    if (depth > 64) throw ConfigError("NIR graph: nested deeper than 64 levels");
    Flat out;
    // name in this graph → (entry names, exit names) after flattening
    std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::string>>> ends;
    for (const auto& n : g.nodes) {
        const std::string full = prefix + n.name;
        if (n.type != "NIRGraph" || !n.graph) {
            out.leaves.push_back({full, &n});
            ends[n.name] = {{full}, {full}};
            continue;
        }
        Flat inner = flatten_graph(*n.graph, full + ".", depth + 1);
        std::set<std::string> inputs, outputs;
        for (const auto& l : inner.leaves) {
            if (l.node->type == "Input") inputs.insert(l.name);
            if (l.node->type == "Output") outputs.insert(l.name);
        }
        if (inputs.empty() || outputs.empty())
            fail(full, "NIRGraph", "a nested graph needs Input and Output nodes");
        std::vector<std::string> entry, exit;
        for (const auto& [a, b] : inner.edges) {
            if (inputs.count(a)) entry.push_back(b);
            if (outputs.count(b)) exit.push_back(a);
        }
        for (const auto& l : inner.leaves)
            if (!inputs.count(l.name) && !outputs.count(l.name)) out.leaves.push_back(l);
        for (const auto& e : inner.edges)
            if (!inputs.count(e.first) && !outputs.count(e.second)) out.edges.push_back(e);
        ends[n.name] = {entry, exit};
    }
    auto resolve = [&](const std::string& name, bool as_source) -> std::vector<std::string> {
        const auto it = ends.find(name);
        if (it != ends.end()) return as_source ? it->second.second : it->second.first;
        return {prefix + name};  // "<nested>.<node>" names a node inside a nested graph
    };
    for (const auto& [a, b] : g.edges)
        for (const auto& s : resolve(a, true))
            for (const auto& t : resolve(b, false)) out.edges.emplace_back(s, t);
    return out;
}

const Value& need(const Leaf& l, const std::string& key) {
    const Value* v = l.node->field(key);
    if (!v) fail(l.name, l.node->type, fmt::format("lacks the field '{}'", key));
    if (!v->is_number())
        fail(l.name, l.node->type,
             fmt::format("field '{}' must be numeric, is {}", key, v->describe()));
    return *v;
}

// Non-negative integers of a field (a scalar or an array).
std::vector<std::size_t> sizes(const Leaf& l, const std::string& key, const Value& v) {
    std::vector<std::size_t> out;
    for (double x : v.numbers) {
        if (!(x >= 0) || x != std::floor(x) || x > 1e9)
            fail(l.name, l.node->type,
                 fmt::format("field '{}' must hold non-negative integers, has {}", key, x));
        out.push_back(std::size_t(x));
    }
    return out;
}

// A per-axis field: a scalar applies to both axes; an array gives (height, width) ((1, value)
// of a one-element array for 1-D nodes).
std::pair<std::size_t, std::size_t> axes(const Leaf& l, const std::string& key, bool one_d,
                                         std::size_t fallback) {
    const Value* v = l.node->field(key);
    if (!v) return {one_d ? (key == "padding" ? 0 : 1) : fallback, fallback};
    if (v->is_string()) {
        const auto& text = v->as_string();
        if (text == "valid") return {0, 0};
        fail(l.name, l.node->type,
             fmt::format("field '{}' is '{}'; only numbers and 'valid' are supported", key, text));
    }
    const auto s = sizes(l, key, need(l, key));
    if (s.size() == 1) return {one_d ? (key == "padding" ? 0 : 1) : s[0], s[0]};
    if (s.size() == 2 && !one_d) return {s[0], s[1]};
    fail(l.name, l.node->type,
         fmt::format("field '{}' has {} values, expected {}", key, s.size(), one_d ? 1 : 2));
}

// The engine shape of a NIR shape: [N] → N×1×1, [C, L] → C×1×L, [C, H, W] → C×H×W.
sim::Shape shape_from(const Leaf& l, const std::vector<std::size_t>& dims) {
    if (dims.size() == 1) return {dims[0], 1, 1, false};
    if (dims.size() == 2) return {dims[0], 1, dims[1], false};
    if (dims.size() == 3) return {dims[0], dims[1], dims[2], false};
    fail(l.name, l.node->type,
         fmt::format("a shape of {} dimensions; 1 to 3 are supported", dims.size()));
}

// The shape of an Input or Output node: `shape` (NIR 0.x and 1.0) or `input_type`/`output_type`
// holding one array.
const Value* io_shape(const Leaf& l) {
    if (const Value* v = l.node->field("shape")) return v;
    for (const char* key : {"input_type", "output_type"})
        if (const Value* v = l.node->field(key)) {
            if (v->is_number()) return v;
            if (v->is_dict() && v->fields.size() == 1 && v->fields.begin()->second.is_number())
                return &v->fields.begin()->second;
        }
    return nullptr;
}

struct KindOf {
    std::string_view type;
    NodeKind kind;
};
constexpr KindOf kKinds[] = {
    {"Input", NodeKind::input},
    {"Output", NodeKind::output},
    {"Affine", NodeKind::linear},
    {"Linear", NodeKind::linear},
    {"Scale", NodeKind::scale},
    {"Conv1d", NodeKind::conv2d},
    {"Conv2d", NodeKind::conv2d},
    {"SumPool2d", NodeKind::sum_pool},
    {"AvgPool2d", NodeKind::avg_pool},
    {"Flatten", NodeKind::flatten},
    {"Threshold", NodeKind::threshold},
    {"Delay", NodeKind::delay},
    {"I", NodeKind::integrator},
    {"IF", NodeKind::nir_if},
    {"LI", NodeKind::li},
    {"LIF", NodeKind::nir_lif},
    {"CubaLI", NodeKind::cuba_li},
    {"CubaLIF", NodeKind::cuba_lif},
    // evformer's extension nodes (docs/nir.md, "Writing")
    {"evformer.MaxPool2d", NodeKind::max_pool},
    {"evformer.SpikingSelfAttention", NodeKind::attention},
    {"evformer.Readout", NodeKind::readout},
};

// evformer's own neuron kind recorded in a LIF/IF node's metadata ("lif", "if"), or "".
std::string evformer_kind(const io::nir::Node& n) {
    const Value* m = n.field("metadata");
    if (!m || !m->is_dict()) return "";
    const auto it = m->fields.find("evformer_kind");
    return it != m->fields.end() && it->second.is_string() ? it->second.as_string() : "";
}

double metadata_number(const io::nir::Node& n, const std::string& key, double fallback) {
    const Value* m = n.field("metadata");
    if (!m || !m->is_dict()) return fallback;
    const auto it = m->fields.find(key);
    return it != m->fields.end() && it->second.is_number() ? it->second.as_number() : fallback;
}

std::string known_types() {
    std::string s;
    for (const auto& k : kKinds) s += (s.empty() ? "" : ", ") + std::string(k.type);
    return s;
}

// The neuron-order map of a layer: engine (channel-last) index of each channel-major index.
std::size_t channel_last(const sim::Shape& s, std::size_t nir_index) {
    const std::size_t hw = s.positions(), c = nir_index / hw, p = nir_index % hw;
    return p * s.channels + c;
}

// A per-neuron parameter of node `l` over a layer of shape `s`: the layer's size (channel-major),
// one value per channel, or one value for all; in engine order.
std::vector<float> per_neuron(const Leaf& l, const std::string& key, const sim::Shape& s,
                              const std::vector<float>* fallback = nullptr) {
    const Value* v = l.node->field(key);
    if (!v && fallback) return *fallback;
    const Value& x = v ? *v : need(l, key);
    if (!x.is_number()) need(l, key);
    const std::size_t n = s.size();
    std::vector<float> out(n);
    if (x.numbers.size() == n) {
        for (std::size_t i = 0; i < n; ++i) out[channel_last(s, i)] = float(x.numbers[i]);
    } else if (x.numbers.size() == 1) {
        out.assign(n, float(x.numbers[0]));
    } else if (x.numbers.size() == s.channels) {
        for (std::size_t i = 0; i < n; ++i) out[i] = float(x.numbers[i % s.channels]);
    } else {
        fail(l.name, l.node->type,
             fmt::format("'{}' has {} values, the layer {} has {} neurons", key, x.numbers.size(),
                         s.str(), n));
    }
    for (float f : out)
        if (!std::isfinite(f)) fail(l.name, l.node->type, fmt::format("'{}' is not finite", key));
    return out;
}

std::vector<float> floats(const Value& v) {
    return std::vector<float>(v.numbers.begin(), v.numbers.end());
}

}  // namespace

sim::Graph graph_from_nir(const io::nir::Graph& nir, const NirImportOptions& options) {
    if (!(options.dt > 0) || !std::isfinite(options.dt))
        throw ConfigError(fmt::format("NIR: dt must be > 0 seconds, is {}", options.dt));
    const Flat flat = flatten_graph(nir, "", 0);
    std::map<std::string, const Leaf*> by_name;
    for (const auto& l : flat.leaves) by_name[l.name] = &l;
    std::map<std::string, std::vector<std::string>> incoming;
    for (const auto& [a, b] : flat.edges) {
        if (!by_name.count(a) || !by_name.count(b))
            throw ConfigError(fmt::format("NIR edge ({}, {}) names no node", a, b));
        incoming[b].push_back(a);
    }
    sim::Graph g;
    std::set<std::string> names;
    for (const auto& l : flat.leaves) names.insert(l.name);
    struct Pending {
        const Leaf* leaf;
        NodeKind kind;
    };
    std::vector<Pending> pending;
    for (const auto& l : flat.leaves) {
        const auto& type = l.node->type;
        const auto* k = std::find_if(std::begin(kKinds), std::end(kKinds),
                                     [&](const KindOf& x) { return x.type == type; });
        if (k == std::end(kKinds))
            fail(l.name, type,
                 fmt::format("evformer cannot run this node type; it runs {}", known_types()));
        NodeKind kind = k->kind;
        const std::string own = evformer_kind(*l.node);
        if (own == "lif" && kind == NodeKind::nir_lif) kind = NodeKind::lif;
        if (own == "if" && kind == NodeKind::nir_if) kind = NodeKind::if_neuron;
        std::vector<std::string> inputs = incoming[l.name];
        if (kind == NodeKind::attention) {  // q, k, v in order, named by the node's fields
            std::vector<std::string> qkv;
            for (const char* key : {"q", "k", "v"}) {
                const Value* v = l.node->field(key);
                if (!v || !v->is_string())
                    fail(l.name, type, fmt::format("lacks the string field '{}'", key));
                qkv.push_back(v->as_string());
            }
            auto sorted = inputs, want = qkv;
            std::sort(sorted.begin(), sorted.end());
            sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
            std::sort(want.begin(), want.end());
            want.erase(std::unique(want.begin(), want.end()), want.end());
            if (sorted != want)
                fail(l.name, type, "its q, k and v fields must name the nodes its edges come from");
            inputs = qkv;
        }
        if (k->kind == NodeKind::input && !inputs.empty())
            fail(l.name, type, "an Input node cannot have incoming edges");
        if (inputs.size() > 1 && kind != NodeKind::input && kind != NodeKind::attention) {
            // NIR sums the inputs of a node: an explicit merge before it
            std::string merge = l.name + ".sum";
            while (names.count(merge)) merge += "_";
            names.insert(merge);
            g.add(merge, NodeKind::merge_add, inputs);
            inputs = {merge};
        }
        sim::NodeAttributes a;
        a.dt = options.dt;
        const bool one_d = type == "Conv1d";
        switch (kind) {
            case NodeKind::lif:
            case NodeKind::if_neuron: {
                // evformer's LIF/IF written as NIR LIF/IF: one value for the whole population
                auto uniform = [&](const std::string& key) {
                    const auto& v = need(l, key);
                    for (double x : v.numbers)
                        if (x != v.numbers[0])
                            fail(l.name, type,
                                 fmt::format("evformer's {} needs one '{}' for all "
                                             "neurons",
                                             own, key));
                    return v.numbers.empty() ? 0.0 : v.numbers[0];
                };
                a.lif.v_threshold = float(uniform("v_threshold"));
                a.lif.v_reset = l.node->field("v_reset") ? float(uniform("v_reset")) : 0.f;
                if (kind == NodeKind::lif)
                    a.lif.tau = float(metadata_number(*l.node, "evformer_tau_steps",
                                                      uniform("tau") / options.dt));
                break;
            }
            case NodeKind::max_pool: {
                std::tie(a.kernel, a.kernel_w) = axes(l, "kernel_size", false, 1);
                std::tie(a.stride, a.stride_w) = axes(l, "stride", false, a.kernel);
                std::tie(a.padding, a.padding_w) = axes(l, "padding", false, 0);
                break;
            }
            case NodeKind::attention: {
                auto number = [&](const char* key) { return need(l, key).as_number(); };
                a.heads = std::size_t(number("heads"));
                a.attention_scale = float(number("scale"));
                a.kappa = float(number("kappa"));
                a.binary = number("binary") != 0;
                a.adaptive_threshold = number("adaptive_threshold") != 0;
                a.shift = number("shift") != 0;
                a.lambda = number("lambda");
                break;
            }
            case NodeKind::readout: {
                const auto& w = need(l, "weight");
                if (w.shape.size() != 2) fail(l.name, type, "weight must be [classes, channels]");
                a.out_channels = w.shape[0];
                break;
            }
            case NodeKind::input: {
                const Value* s = io_shape(l);
                if (!s) fail(l.name, type, "lacks its shape ('shape' or 'input_type')");
                a.shape = shape_from(l, sizes(l, "shape", *s));
                break;
            }
            case NodeKind::linear: {
                const auto& w = need(l, "weight");
                if (w.shape.size() != 2) fail(l.name, type, "weight must be [out, in]");
                a.out_channels = w.shape[0];
                a.bias = type == "Affine";
                break;
            }
            case NodeKind::conv2d: {
                const auto& w = need(l, "weight");
                if (w.shape.size() != (one_d ? 3u : 4u))
                    fail(l.name, type,
                         one_d ? "weight must be [out, in/groups, k]"
                               : "weight must be [out, in/groups, kh, kw]");
                a.out_channels = w.shape[0];
                a.kernel = one_d ? 1 : w.shape[2];
                a.kernel_w = w.shape[one_d ? 2 : 3];
                std::tie(a.stride, a.stride_w) = axes(l, "stride", one_d, 1);
                std::tie(a.padding, a.padding_w) = axes(l, "padding", one_d, 0);
                std::tie(a.dilation, a.dilation_w) = axes(l, "dilation", one_d, 1);
                if (const Value* gr = l.node->field("groups")) {
                    const auto s = sizes(l, "groups", *gr);
                    if (s.size() != 1) fail(l.name, type, "groups must be one number");
                    a.groups = s[0];
                }
                const Value* b = l.node->field("bias");
                a.bias = b && b->is_number() && b->numbers.size() == a.out_channels;
                break;
            }
            case NodeKind::sum_pool:
            case NodeKind::avg_pool: {
                std::tie(a.kernel, a.kernel_w) = axes(l, "kernel_size", false, 1);
                std::tie(a.stride, a.stride_w) = axes(l, "stride", false, a.kernel);
                std::tie(a.padding, a.padding_w) = axes(l, "padding", false, 0);
                if (a.stride_w == 0) a.stride_w = a.kernel_w;
                break;
            }
            case NodeKind::flatten: {
                // full flattens only: every dimension from start_dim to end_dim of the input
                if (const Value* it = l.node->field("input_type")) {
                    const Value* dims =
                        it->is_dict() && it->fields.size() == 1 ? &it->fields.begin()->second : it;
                    if (dims->is_number() && dims->numbers.size() > 1) {
                        const long rank = long(dims->numbers.size());
                        long start = 0, end = -1;
                        if (const Value* s = l.node->field("start_dim"))
                            start = long(s->as_number());
                        if (const Value* e = l.node->field("end_dim")) end = long(e->as_number());
                        if (start < 0) start += rank;
                        if (end < 0) end += rank;
                        for (long d = 0; d < rank; ++d)
                            if ((d < start || d > end) && dims->numbers[std::size_t(d)] != 1)
                                fail(l.name, type,
                                     fmt::format("flattens dimensions {} to {} of {} only; "
                                                 "evformer flattens whole maps",
                                                 start, end, dims->describe()));
                    }
                }
                break;
            }
            default:
                break;
        }
        g.add(l.name, kind, inputs, a);
        pending.push_back({&l, kind});
    }
    g.validate();
    // Parameters, now that every layer's shape is known.
    for (const auto& [lp, kind] : pending) {
        const Leaf& l = *lp;
        sim::Node& n = g.node(l.name);
        const auto& type = l.node->type;
        const sim::Shape in = n.input_index.empty() ? n.shape : g.nodes()[n.input_index[0]].shape;
        n.params.clear();
        switch (kind) {
            case NodeKind::input:
            case NodeKind::lif:
            case NodeKind::if_neuron:
            case NodeKind::max_pool:
                break;
            case NodeKind::attention:
                n.params.push_back({{n.attr.heads}, floats(need(l, "c_mean"))});
                n.params.push_back({{n.shape.channels}, floats(need(l, "v_bar"))});
                break;
            case NodeKind::readout: {
                const auto& w = need(l, "weight");
                if (w.shape[1] != in.channels)
                    fail(l.name, type,
                         fmt::format("weight is [{}, {}] but its input has {} channels", w.shape[0],
                                     w.shape[1], in.channels));
                n.params.push_back({{w.shape[0], w.shape[1]}, floats(w)});
                n.params.push_back({{w.shape[0]}, floats(need(l, "bias"))});
                break;
            }
            case NodeKind::output: {
                if (const Value* s = io_shape(l)) {
                    const auto dims = sizes(l, "shape", *s);
                    std::size_t count = 1;
                    for (auto d : dims) count *= d;
                    if (count != n.shape.size())
                        fail(l.name, type,
                             fmt::format("its shape {} holds {} values, its input gives {}",
                                         s->describe(), count, n.shape.size()));
                }
                break;
            }
            case NodeKind::linear: {
                const auto& w = need(l, "weight");
                if (w.shape[1] != in.channels)
                    fail(l.name, type,
                         fmt::format("weight is [{}, {}] but its input has {} features", w.shape[0],
                                     w.shape[1], in.channels));
                n.params.push_back({{w.shape[0], w.shape[1]}, floats(w)});
                if (n.attr.bias) {
                    const auto& b = need(l, "bias");
                    if (b.numbers.size() != w.shape[0])
                        fail(l.name, type,
                             fmt::format("bias has {} values, expected {}", b.numbers.size(),
                                         w.shape[0]));
                    n.params.push_back({{w.shape[0]}, floats(b)});
                }
                break;
            }
            case NodeKind::conv2d: {
                const auto& w = need(l, "weight");
                const auto slots = g.parameter_slots(g.find(l.name));
                std::size_t count = 1;
                for (auto d : slots[0].shape) count *= d;
                if (w.numbers.size() != count)
                    fail(l.name, type,
                         fmt::format("weight {} does not fit {} input channels / {} groups",
                                     w.describe(), in.channels, n.attr.groups));
                n.params.push_back({slots[0].shape, floats(w)});
                if (n.attr.bias) n.params.push_back({{n.shape.channels}, floats(need(l, "bias"))});
                if (const Value* is = l.node->field("input_shape"); is && is->is_number()) {
                    const auto dims = sizes(l, "input_shape", *is);
                    const bool ok = dims.size() == 1 ? (in.height == 1 && in.width == dims[0])
                                                     : (dims.size() == 2 && in.height == dims[0] &&
                                                        in.width == dims[1]);
                    if (!ok)
                        fail(l.name, type,
                             fmt::format("input_shape is {} but its input is {}", is->describe(),
                                         in.str()));
                }
                break;
            }
            case NodeKind::scale: {
                const auto gain = per_neuron(l, "scale", in);
                // the engine's scale is per channel: every position of a channel alike
                std::vector<float> per_channel(in.channels);
                for (std::size_t i = 0; i < gain.size(); ++i) {
                    const std::size_t c = i % in.channels;
                    if (i < in.channels)
                        per_channel[c] = gain[i];
                    else if (gain[i] != per_channel[c])
                        fail(l.name, type, "a gain that varies over positions is not supported");
                }
                n.params.push_back({{in.channels}, per_channel});
                break;
            }
            default: {
                if (kind == NodeKind::threshold || kind == NodeKind::delay ||
                    sim::is_nir_neuron(kind)) {
                    const std::vector<float> zeros(n.shape.size(), 0.f);
                    for (const auto& [name, role] : sim::nir_parameters(kind)) {
                        const std::string key(name);
                        // v_reset came with NIR 1.0; older files reset to 0
                        const auto values =
                            per_neuron(l, key, n.shape, key == "v_reset" ? &zeros : nullptr);
                        n.params.push_back({{n.shape.size()}, values});
                    }
                }
                break;
            }
        }
    }
    g.check_parameters();
    return g;
}

sim::Graph read_nir_graph(const std::filesystem::path& file, const NirImportOptions& options) {
    const auto nir = io::nir::read(file);
    try {
        return graph_from_nir(nir, options);
    } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{}: {}", file.string(), e.what()));
    }
}

namespace {

Value i64s(const std::vector<std::size_t>& v) {
    return Value::array({v.size()}, std::vector<double>(v.begin(), v.end()), h5::DType::i64);
}

Value f32s(h5::Shape shape, const std::vector<float>& v) {
    return Value::array(std::move(shape), std::vector<double>(v.begin(), v.end()), h5::DType::f32);
}

// NIR dims of an engine shape: [N] for vectors, [C, H, W] for maps.
std::vector<std::size_t> nir_dims(const sim::Shape& s) {
    if (s.height == 1 && s.width == 1) return {s.channels};
    return {s.channels, s.height, s.width};
}

// A per-neuron tensor in engine order → the layer's NIR array (channel-major, shaped like it).
Value layer_array(const sim::Shape& s, const std::vector<float>& engine_order) {
    std::vector<double> out(engine_order.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = engine_order[channel_last(s, i)];
    const auto dims = nir_dims(s);
    return Value::array(h5::Shape(dims.begin(), dims.end()), std::move(out), h5::DType::f32);
}

}  // namespace

io::nir::Graph graph_to_nir(const sim::Graph& g, double dt) {
    if (!g.validated()) throw ConfigError("graph_to_nir: the graph must be validated");
    if (!(dt > 0)) throw ConfigError("graph_to_nir: dt must be > 0 seconds");
    io::nir::Graph out;
    const auto& nodes = g.nodes();
    auto nir_name = [&](std::size_t j) {  // NIR names cannot hold '/': evformer's become dotted
        std::string name = nodes[j].name;
        std::replace(name.begin(), name.end(), '/', '.');
        return name;
    };
    // Nodes that vanish in NIR: merges (NIR sums the inputs of a node), batch norms (folded into
    // the projection before them) and token flattens (the identity on the engine's channel-last
    // maps; the attention extension reads positions as tokens). An edge into a node stands for
    // the producers behind such nodes.
    auto vanishes = [&](std::size_t j) {
        const auto k = nodes[j].kind;
        return k == NodeKind::merge_add || k == NodeKind::batchnorm ||
               (k == NodeKind::flatten && nodes[j].attr.to_tokens);
    };
    std::function<void(std::size_t, std::vector<std::size_t>&)> sources =
        [&](std::size_t j, std::vector<std::size_t>& acc) {
            if (vanishes(j))
                for (auto k : nodes[j].input_index) sources(k, acc);
            else
                acc.push_back(j);
        };
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const sim::Node& n = nodes[i];
        if (vanishes(i)) {
            if (n.kind == NodeKind::batchnorm) {
                const auto pk = nodes[n.input_index[0]].kind;
                if ((pk != NodeKind::conv2d && pk != NodeKind::linear) ||
                    g.consumers(n.input_index[0]).size() != 1)
                    throw ConfigError(fmt::format(
                        "graph_to_nir: batch norm '{}' must follow a conv2d or linear it can be "
                        "folded into",
                        n.name));
            }
            continue;
        }
        const sim::Shape in = n.input_index.empty() ? n.shape : nodes[n.input_index[0]].shape;
        io::nir::Node x;
        x.name = nir_name(i);
        const auto& a = n.attr;
        // a batch norm after this projection, folded into its weights and bias
        const sim::Node* bn = nullptr;
        if ((n.kind == NodeKind::conv2d || n.kind == NodeKind::linear) &&
            g.consumers(i).size() == 1 && nodes[g.consumers(i)[0]].kind == NodeKind::batchnorm)
            bn = &nodes[g.consumers(i)[0]];
        auto folded = [&](std::vector<float> w, std::vector<float> b) {
            if (!bn) return std::make_pair(std::move(w), std::move(b));
            const std::size_t co = n.shape.channels, per = w.size() / co;
            for (std::size_t o = 0; o < co; ++o) {  // as the engine folds (sim/network.cpp)
                const double gain = double(bn->params[0].data[o]) /
                                    std::sqrt(double(bn->params[3].data[o]) + bn->attr.eps);
                const float g32 = float(gain);
                const float shift =
                    float(double(bn->params[1].data[o]) - double(bn->params[2].data[o]) * gain);
                for (std::size_t k = 0; k < per; ++k) w[o * per + k] *= g32;
                b[o] = b.empty() ? shift : b[o] * g32 + shift;
            }
            return std::make_pair(std::move(w), std::move(b));
        };
        switch (n.kind) {
            case NodeKind::input:
                x.type = "Input";
                x.fields["shape"] = i64s(nir_dims(n.shape));
                break;
            case NodeKind::output:
                x.type = "Output";
                x.fields["shape"] = i64s(nir_dims(n.shape));
                break;
            case NodeKind::linear: {
                auto [w, b] = folded(
                    n.params[0].data,
                    a.bias ? n.params[1].data : std::vector<float>(bn ? n.shape.channels : 0, 0.f));
                const bool has_bias = a.bias || bn;
                if (in.positions() > 1) {  // per position of a map: a 1×1 convolution in NIR
                    x.type = "Conv2d";
                    x.fields["weight"] = f32s({n.shape.channels, in.channels, 1, 1}, w);
                    x.fields["bias"] =
                        f32s({n.shape.channels},
                             has_bias ? b : std::vector<float>(n.shape.channels, 0.f));
                    x.fields["stride"] = i64s({1, 1});
                    x.fields["padding"] = i64s({0, 0});
                    x.fields["dilation"] = i64s({1, 1});
                    x.fields["groups"] = Value::scalar(1, h5::DType::i64);
                    x.fields["input_shape"] = i64s({in.height, in.width});
                    break;
                }
                x.type = has_bias ? "Affine" : "Linear";
                x.fields["weight"] = f32s({n.shape.channels, in.channels}, w);
                if (has_bias) x.fields["bias"] = f32s({n.shape.channels}, b);
                break;
            }
            case NodeKind::conv2d: {
                auto [w, b] = folded(
                    n.params[0].data,
                    a.bias ? n.params[1].data : std::vector<float>(bn ? n.shape.channels : 0, 0.f));
                x.type = "Conv2d";
                x.fields["weight"] =
                    f32s(h5::Shape(n.params[0].shape.begin(), n.params[0].shape.end()), w);
                x.fields["bias"] =
                    f32s({n.shape.channels},
                         (a.bias || bn) ? b : std::vector<float>(n.shape.channels, 0.f));
                x.fields["stride"] = i64s({a.stride, a.sw()});
                x.fields["padding"] = i64s({a.padding, a.pw()});
                x.fields["dilation"] = i64s({a.dilation, a.dw()});
                x.fields["groups"] = Value::scalar(double(a.groups), h5::DType::i64);
                x.fields["input_shape"] = i64s({in.height, in.width});
                break;
            }
            case NodeKind::sum_pool:
            case NodeKind::avg_pool:
            case NodeKind::max_pool:
                x.type = n.kind == NodeKind::sum_pool   ? "SumPool2d"
                         : n.kind == NodeKind::avg_pool ? "AvgPool2d"
                                                        : "evformer.MaxPool2d";
                x.fields["kernel_size"] = i64s({a.kernel, a.kw()});
                x.fields["stride"] = i64s({a.stride, a.sw()});
                x.fields["padding"] = i64s({a.padding, a.pw()});
                break;
            case NodeKind::flatten:
                x.type = "Flatten";
                x.fields["start_dim"] = Value::scalar(0, h5::DType::i64);
                x.fields["end_dim"] = Value::scalar(-1, h5::DType::i64);
                x.fields["input_type"] = i64s(nir_dims(in));
                break;
            case NodeKind::scale: {
                x.type = "Scale";
                std::vector<float> gain(n.shape.size());
                for (std::size_t k = 0; k < gain.size(); ++k)
                    gain[k] = n.params[0].data[k % n.shape.channels];
                x.fields["scale"] = layer_array(n.shape, gain);
                break;
            }
            case NodeKind::lif:
            case NodeKind::if_neuron: {
                // NIR LIF: v += dt/τ·(v_leak − v + r·x) is evformer's LIF with τ·dt, v_leak =
                // v_reset, r = 1; the metadata keeps evformer's ≥ threshold rule and τ in steps
                const std::size_t count = n.shape.size();
                const auto& p = a.lif;
                auto all = [&](float v) {
                    return layer_array(n.shape, std::vector<float>(count, v));
                };
                std::map<std::string, Value> meta;
                meta["evformer_threshold_rule"] = Value::text("v >= v_threshold");
                if (n.kind == NodeKind::lif) {
                    x.type = "LIF";
                    x.fields["tau"] = all(float(double(p.tau) * dt));
                    x.fields["v_leak"] = all(p.v_reset);
                    meta["evformer_kind"] = Value::text("lif");
                    meta["evformer_tau_steps"] = Value::scalar(p.tau, h5::DType::f32);
                } else {
                    x.type = "IF";
                    meta["evformer_kind"] = Value::text("if");
                }
                x.fields["r"] = all(1.f);
                x.fields["v_threshold"] = all(p.v_threshold);
                x.fields["v_reset"] = all(p.v_reset);
                x.fields["metadata"] = Value::dict(std::move(meta));
                break;
            }
            case NodeKind::attention: {
                x.type = "evformer.SpikingSelfAttention";
                x.fields["heads"] = Value::scalar(double(a.heads), h5::DType::i64);
                x.fields["scale"] = Value::scalar(a.attention_scale, h5::DType::f32);
                x.fields["kappa"] = Value::scalar(a.kappa, h5::DType::f32);
                x.fields["binary"] = Value::scalar(a.binary, h5::DType::i64);
                x.fields["adaptive_threshold"] =
                    Value::scalar(a.adaptive_threshold, h5::DType::i64);
                x.fields["shift"] = Value::scalar(a.shift, h5::DType::i64);
                x.fields["lambda"] = Value::scalar(a.lambda, h5::DType::f64);
                x.fields["c_mean"] = f32s({a.heads}, n.params[0].data);
                x.fields["v_bar"] = f32s({n.shape.channels}, n.params[1].data);
                const char* keys[] = {"q", "k", "v"};
                for (std::size_t e = 0; e < 3; ++e) {
                    std::vector<std::size_t> from;
                    sources(n.input_index[e], from);
                    if (from.size() != 1)
                        throw ConfigError(fmt::format(
                            "graph_to_nir: attention '{}' input {} must come from one node", n.name,
                            keys[e]));
                    x.fields[keys[e]] = Value::text(nir_name(from[0]));
                }
                break;
            }
            case NodeKind::readout:
                x.type = "evformer.Readout";
                x.fields["weight"] = f32s({a.out_channels, in.channels}, n.params[0].data);
                x.fields["bias"] = f32s({a.out_channels}, n.params[1].data);
                break;
            default: {
                const bool nir_kind = n.kind == NodeKind::threshold || n.kind == NodeKind::delay ||
                                      sim::is_nir_neuron(n.kind);
                if (!nir_kind)
                    throw ConfigError(fmt::format("graph_to_nir: node '{}' ({}) has no NIR form",
                                                  n.name, sim::kind_info(n.kind).name));
                for (const auto& k : kKinds)
                    if (k.kind == n.kind) x.type = std::string(k.type);
                const auto names = sim::nir_parameters(n.kind);
                for (std::size_t p = 0; p < names.size(); ++p)
                    x.fields[std::string(names[p].first)] = layer_array(n.shape, n.params[p].data);
                break;
            }
        }
        std::vector<std::size_t> from;
        for (auto j : n.input_index) sources(j, from);
        std::set<std::size_t> seen;  // NIR sums a node's inputs: a producer twice is twice
        for (auto j : from)
            if (n.kind != NodeKind::attention || seen.insert(j).second)
                out.edges.emplace_back(nir_name(j), x.name);
        out.nodes.push_back(std::move(x));
    }
    std::sort(out.nodes.begin(), out.nodes.end(),
              [](const io::nir::Node& p, const io::nir::Node& q) { return p.name < q.name; });
    return out;
}

bool is_nir_file(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) return false;
    try {
        const io::h5::Reader r(file);
        return r.is_group("/node");
    } catch (const Error&) {
        return false;
    }
}

NirSummary summarize_nir(const std::filesystem::path& file, const NirImportOptions& options) {
    const auto nir = io::nir::read(file);
    NirSummary s;
    s.version = nir.version.empty() ? "(none)" : nir.version;
    static const std::set<std::string> structural{
        "shape",    "input_shape", "input_type",  "output_type", "stride",  "padding",
        "dilation", "groups",      "kernel_size", "start_dim",   "end_dim", "metadata"};
    const Flat flat = flatten_graph(nir, "", 0);
    std::optional<sim::Graph> g;
    try {
        g = graph_from_nir(nir, options);
        const sim::Network net(*g, 1);  // also the compile-time rules (dt against τ)
    } catch (const ConfigError& e) {
        s.problems.push_back(e.what());
    }
    // Rows in data-flow order: breadth first from the Input nodes along the edges (HDF5 lists
    // groups by name, which puts "10" before "2"); nodes no Input reaches follow in name order.
    std::map<std::string, std::size_t> leaf_of;
    for (std::size_t i = 0; i < flat.leaves.size(); ++i) leaf_of[flat.leaves[i].name] = i;
    std::map<std::string, std::vector<std::string>> next;
    for (const auto& [from, to] : flat.edges) next[from].push_back(to);
    std::vector<std::size_t> order;
    std::vector<bool> placed(flat.leaves.size(), false);
    auto place = [&](std::size_t i) {
        if (!placed[i]) {
            placed[i] = true;
            order.push_back(i);
        }
    };
    for (std::size_t i = 0; i < flat.leaves.size(); ++i)
        if (flat.leaves[i].node->type == "Input") place(i);
    for (std::size_t k = 0; k < order.size(); ++k) {
        const auto it = next.find(flat.leaves[order[k]].name);
        if (it == next.end()) continue;
        for (const auto& to : it->second)
            if (const auto l = leaf_of.find(to); l != leaf_of.end()) place(l->second);
    }
    for (std::size_t i = 0; i < flat.leaves.size(); ++i) place(i);
    std::map<std::string, std::size_t> rank;
    for (std::size_t k = 0; k < order.size(); ++k) rank[flat.leaves[order[k]].name] = k;
    for (const std::size_t i : order) {
        const auto& l = flat.leaves[i];
        NirSummary::Row r;
        r.name = l.name;
        r.type = l.node->type;
        for (const auto& [key, v] : l.node->fields)
            if (v.is_number() && !structural.count(key)) r.parameters += v.numbers.size();
        if (g && g->find(l.name) < g->nodes().size()) r.shape = g->node(l.name).shape.str();
        s.nodes.push_back(std::move(r));
    }
    // Edges in the same order, by their source, then their target (unknown names last).
    s.edges = flat.edges;
    auto rank_of = [&](const std::string& name) {
        const auto it = rank.find(name);
        return it == rank.end() ? rank.size() : it->second;
    };
    std::stable_sort(s.edges.begin(), s.edges.end(), [&](const auto& a, const auto& b) {
        return std::pair(rank_of(a.first), rank_of(a.second)) <
               std::pair(rank_of(b.first), rank_of(b.second));
    });
    return s;
}

}  // namespace evformer::models
