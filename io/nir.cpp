#include "evformer/io/nir.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <set>

#include "evformer/error.hpp"

namespace evformer::io::nir {
namespace {

using h5::DType;

// Nested graphs and dicts deeper than this are refused: HDF5 hard links can form cycles, and no
// real network nests this deep.
constexpr int max_depth = 64;

// True if `v` can be stored in `t` without changing it (integers: integral and in range; f32:
// finite values within the float range, and any NaN or infinity).
bool fits(double v, DType t) {
    switch (t) {
        case DType::f64:
            return true;
        case DType::f32:
            return !std::isfinite(v) || std::fabs(v) <= static_cast<double>(FLT_MAX);
        default:
            break;
    }
    if (!std::isfinite(v) || std::trunc(v) != v) return false;
    switch (t) {
        case DType::i8:
            return v >= -128.0 && v <= 127.0;
        case DType::u8:
            return v >= 0.0 && v <= 255.0;
        case DType::i16:
            return v >= -32768.0 && v <= 32767.0;
        case DType::u16:
            return v >= 0.0 && v <= 65535.0;
        case DType::i32:
            return v >= -2147483648.0 && v <= 2147483647.0;
        case DType::u32:
            return v >= 0.0 && v <= 4294967295.0;
        case DType::i64:
            return v >= -std::ldexp(1.0, 63) && v < std::ldexp(1.0, 63);
        case DType::u64:
            return v >= 0.0 && v < std::ldexp(1.0, 64);
        default:
            return true;
    }
}

// Checks that `numbers` fit `dtype` and rounds them to it (f32); ConfigError otherwise.
void normalise_numbers(std::vector<double>& numbers, DType dtype) {
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        if (!fits(numbers[i], dtype))
            throw ConfigError(fmt::format("NIR value: element {} ({}) does not fit its dtype {}", i,
                                          numbers[i], h5::dtype_name(dtype)));
        if (dtype == DType::f32) numbers[i] = static_cast<double>(static_cast<float>(numbers[i]));
    }
}

bool same_number(double a, double b) {
    return a == b || (std::isnan(a) && std::isnan(b));
}

// ---------------------------------------------------------------------------------------------
// Edge names: a node of the graph, or "<subgraph>.<name>" resolved inside a NIRGraph node (names
// may themselves contain dots, so every split is tried).

bool resolves(const Graph& graph, std::string_view name, int depth = 0) {
    if (graph.find(name)) return true;
    if (depth > max_depth) return false;
    for (auto dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
        const Node* sub = graph.find(name.substr(0, dot));
        if (sub && sub->graph && resolves(*sub->graph, name.substr(dot + 1), depth + 1))
            return true;
    }
    return false;
}

// The first edge end naming no node, as a rule text; empty when every edge resolves.
std::string unresolved_edge(const Graph& graph, const std::string& nodes_path) {
    for (std::size_t i = 0; i < graph.edges.size(); ++i) {
        const auto& [source, target] = graph.edges[i];
        for (const auto* end : {&source, &target}) {
            if (resolves(graph, *end)) continue;
            return fmt::format(
                "edge {} ('{}' -> '{}'): {} '{}' is not a node of {} (nor '<subgraph>.<node>' "
                "inside one of its NIRGraph nodes)",
                i, source, target, end == &source ? "source" : "target", *end, nodes_path);
        }
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Reading

class FileReader {
  public:
    explicit FileReader(const std::filesystem::path& file) : r_(file), file_(file.string()) {}

    Graph read_root() {
        Graph g;
        if (r_.exists("/version")) g.version = read_string_scalar("/version", "the NIR version");
        if (!r_.exists("/node") && r_.exists("/nodes"))
            fail("/node",
                 "missing, and /nodes is at the root: the layout of NIR 0.0.5 and older "
                 "(integer edges), which is not read");
        if (!r_.exists("/node"))
            fail("/node", "missing: a NIR file keeps its graph in the group /node");
        if (!r_.is_group("/node"))
            fail("/node", fmt::format("is {}, expected the graph's group", what("/node")));
        if (r_.exists("/node/type")) {
            const auto type = read_string_scalar("/node/type", "the node type");
            if (type != "NIRGraph")
                fail("/node/type",
                     fmt::format("is '{}': the root of a NIR file must be a NIRGraph", type));
        }
        read_graph("/node", 0, g, g.fields);
        return g;
    }

  private:
    [[noreturn]] void fail(const std::string& where, const std::string& rule) const {
        throw FileError(file_, -1, where + ": " + rule);
    }

    // "a group", "a string dataset of shape (3,)", "a f64 dataset of shape ()"…
    std::string what(const std::string& path) const {
        if (r_.is_group(path)) return "a group";
        if (!r_.is_dataset(path)) return "neither a group nor a dataset";
        const auto shape = h5::shape_string(r_.shape(path));
        if (r_.is_string(path)) return "a string dataset of shape " + shape;
        try {
            return fmt::format("a {} dataset of shape {}", h5::dtype_name(r_.dtype(path)), shape);
        } catch (const FileError&) {
            return "a dataset of a non-numeric, non-string type, shape " + shape;
        }
    }

    std::string read_string_scalar(const std::string& path, const std::string& role) const {
        if (!r_.is_string(path) || !r_.shape(path).empty())
            fail(path, fmt::format("{} must be a string scalar, found {}", role, what(path)));
        return r_.read_strings(path).front();
    }

    Value read_value(const std::string& path, int depth) const {
        Value v;
        if (r_.is_group(path)) {
            if (depth > max_depth)
                fail(path, fmt::format("groups nested deeper than {} levels (a cycle of links?)",
                                       max_depth));
            v.kind = Value::Kind::dict;
            for (const auto& member : r_.list(path))
                v.fields.emplace(member, read_value(path + "/" + member, depth + 1));
            return v;
        }
        if (!r_.is_dataset(path))
            fail(path, "is neither a group nor a dataset (a dangling or external link?)");
        v.shape = r_.shape(path);
        if (r_.is_string(path)) {
            v.kind = Value::Kind::string;
            v.strings = r_.read_strings(path);
            return v;
        }
        v.kind = Value::Kind::number;
        v.dtype = r_.dtype(path);  // FileError for enums (numpy bool), compounds, …
        v.numbers = r_.read<double>(path);
        return v;
    }

    std::vector<std::pair<std::string, std::string>> read_edges(const std::string& path) const {
        std::vector<std::pair<std::string, std::string>> edges;
        if (!r_.is_dataset(path))
            fail(path, fmt::format("edges must be an N×2 string dataset, found {}", what(path)));
        const auto shape = r_.shape(path);
        // h5py stores an empty Python list as a float64 array of shape (0,)
        if (!shape.empty() && h5::element_count(shape) == 0) return edges;
        if (!r_.is_string(path) || shape.size() != 2 || shape[1] != 2)
            fail(path, fmt::format("edges must be an N×2 string dataset, found {}", what(path)));
        const auto names = r_.read_strings(path);
        edges.reserve(shape[0]);
        for (std::size_t i = 0; i < shape[0]; ++i)
            edges.emplace_back(names[2 * i], names[2 * i + 1]);
        return edges;
    }

    // Reads the NIRGraph at `path` into `g`; its members other than type/nodes/edges go to
    // `fields` (the graph's own for the root, the node's for a nested graph).
    void read_graph(const std::string& path, int depth, Graph& g,
                    std::map<std::string, Value>& fields) const {
        if (depth > max_depth)
            fail(path,
                 fmt::format("NIRGraph nodes nested deeper than {} levels (a cycle of links?)",
                             max_depth));
        const auto nodes_path = path + "/nodes";
        if (!r_.exists(nodes_path))
            fail(path, "a NIRGraph needs a group `nodes` (one group per node); there is none");
        if (!r_.is_group(nodes_path))
            fail(nodes_path,
                 fmt::format("must be a group of node groups, found {}", what(nodes_path)));
        for (const auto& name : r_.list(nodes_path))
            g.nodes.push_back(read_node(nodes_path + "/" + name, name, depth));
        const auto edges_path = path + "/edges";
        if (!r_.exists(edges_path))
            fail(path, "a NIRGraph needs `edges` (an N×2 string dataset); there is none");
        g.edges = read_edges(edges_path);
        for (const auto& member : r_.list(path)) {
            if (member == "type" || member == "nodes" || member == "edges") continue;
            fields.emplace(member, read_value(path + "/" + member, depth + 1));
        }
        if (const auto rule = unresolved_edge(g, nodes_path); !rule.empty()) fail(edges_path, rule);
    }

    Node read_node(const std::string& path, const std::string& name, int depth) const {
        if (!r_.is_group(path))
            fail(path,
                 fmt::format("is {}, expected a node group (with a string `type`)", what(path)));
        Node n;
        n.name = name;
        const auto type_path = path + "/type";
        if (!r_.exists(type_path))
            fail(path, "node group without `type` (every NIR node holds a string dataset `type`)");
        n.type = read_string_scalar(type_path, "the node type");
        if (n.type == "NIRGraph") {
            n.graph = std::make_shared<Graph>();
            read_graph(path, depth + 1, *n.graph, n.fields);
            return n;
        }
        for (const auto& member : r_.list(path)) {
            if (member == "type") continue;
            n.fields.emplace(member, read_value(path + "/" + member, depth + 1));
        }
        return n;
    }

    h5::Reader r_;
    std::string file_;
};

// ---------------------------------------------------------------------------------------------
// Writing

void check_name(const std::string& where, const std::string& kind, const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos)
        throw ConfigError(fmt::format(
            "NIR write: {}: {} name '{}' cannot be an HDF5 link name (empty, '.', '..', or "
            "contains '/' or NUL)",
            where, kind, name));
}

void check_value(const std::string& path, const Value& v, int depth) {
    if (depth > max_depth)
        throw ConfigError(
            fmt::format("NIR write: {}: dicts nested deeper than {} levels", path, max_depth));
    switch (v.kind) {
        case Value::Kind::number: {
            if (v.numbers.size() != h5::element_count(v.shape))
                throw ConfigError(fmt::format("NIR write: {}: {} numbers for shape {}", path,
                                              v.numbers.size(), h5::shape_string(v.shape)));
            for (std::size_t i = 0; i < v.numbers.size(); ++i)
                if (!fits(v.numbers[i], v.dtype))
                    throw ConfigError(fmt::format("NIR write: {}: element {} ({}) does not fit {}",
                                                  path, i, v.numbers[i], h5::dtype_name(v.dtype)));
            break;
        }
        case Value::Kind::string: {
            if (v.strings.size() != h5::element_count(v.shape))
                throw ConfigError(fmt::format("NIR write: {}: {} strings for shape {}", path,
                                              v.strings.size(), h5::shape_string(v.shape)));
            for (const auto& s : v.strings)
                if (s.find('\0') != std::string::npos)
                    throw ConfigError(
                        fmt::format("NIR write: {}: a string contains a NUL byte", path));
            break;
        }
        case Value::Kind::dict:
            for (const auto& [key, member] : v.fields) {
                check_name(path, "field", key);
                check_value(path + "/" + key, member, depth + 1);
            }
            break;
    }
}

void check_fields(const std::string& path, const std::map<std::string, Value>& fields, bool graph) {
    for (const auto& [key, value] : fields) {
        check_name(path, "field", key);
        if (key == "type" || (graph && (key == "nodes" || key == "edges")))
            throw ConfigError(fmt::format(
                "NIR write: {}: a field may not be called '{}' (the layout's own member)", path,
                key));
        check_value(path + "/" + key, value, 1);
    }
}

void check_graph(const std::string& path, const Graph& g, int depth) {
    if (depth > max_depth)
        throw ConfigError(
            fmt::format("NIR write: {}: graphs nested deeper than {} levels", path, max_depth));
    const auto nodes_path = path + "/nodes";
    std::set<std::string_view> names;
    for (const auto& n : g.nodes) {
        check_name(nodes_path, "node", n.name);
        const auto node_path = nodes_path + "/" + n.name;
        if (!names.insert(n.name).second)
            throw ConfigError(
                fmt::format("NIR write: {}: two nodes are called '{}'", nodes_path, n.name));
        if (n.type.empty())
            throw ConfigError(fmt::format("NIR write: {}: empty node type", node_path));
        if (n.type.find('\0') != std::string::npos)
            throw ConfigError(fmt::format("NIR write: {}: node type contains NUL", node_path));
        const bool is_graph = n.type == "NIRGraph";
        if (is_graph != static_cast<bool>(n.graph))
            throw ConfigError(fmt::format(
                "NIR write: {}: {}", node_path,
                is_graph ? "a NIRGraph node needs its graph (Node::graph is null)"
                         : "only a NIRGraph node may carry a graph (type is '" + n.type + "')"));
        check_fields(node_path, n.fields, is_graph);
        if (n.graph) {
            for (const auto& key : n.graph->fields)
                if (n.fields.count(key.first))
                    throw ConfigError(fmt::format(
                        "NIR write: {}: field '{}' is both in the node's and its graph's fields",
                        node_path, key.first));
            check_fields(node_path, n.graph->fields, true);
            check_graph(node_path, *n.graph, depth + 1);
        }
    }
    for (const auto& [source, target] : g.edges)
        for (const auto* end : {&source, &target})
            if (end->find('\0') != std::string::npos)
                throw ConfigError(fmt::format("NIR write: {}/edges: a name contains NUL", path));
    if (const auto rule = unresolved_edge(g, nodes_path); !rule.empty())
        throw ConfigError(fmt::format("NIR write: {}/edges: {}", path, rule));
}

template <class T>
void write_numbers(h5::Writer& w, const std::string& path, const Value& v,
                   const h5::StorageOptions& options) {
    std::vector<T> data(v.numbers.size());
    std::transform(v.numbers.begin(), v.numbers.end(), data.begin(),
                   [](double x) { return static_cast<T>(x); });
    w.write<T>(path, data, v.shape, options);
}

void write_value(h5::Writer& w, const std::string& path, const Value& v,
                 const WriteOptions& options) {
    switch (v.kind) {
        case Value::Kind::string:
            w.write_strings(path, v.strings, v.shape);
            return;
        case Value::Kind::dict:
            w.group(path);
            for (const auto& [key, member] : v.fields)
                write_value(w, path + "/" + key, member, options);
            return;
        case Value::Kind::number:
            break;
    }
    h5::StorageOptions storage;
    if (!v.shape.empty() && !v.numbers.empty()) storage.gzip_level = options.gzip_level;
    switch (v.dtype) {
        case DType::f32:
            return write_numbers<float>(w, path, v, storage);
        case DType::f64:
            return write_numbers<double>(w, path, v, storage);
        case DType::i8:
            return write_numbers<std::int8_t>(w, path, v, storage);
        case DType::u8:
            return write_numbers<std::uint8_t>(w, path, v, storage);
        case DType::i16:
            return write_numbers<std::int16_t>(w, path, v, storage);
        case DType::u16:
            return write_numbers<std::uint16_t>(w, path, v, storage);
        case DType::i32:
            return write_numbers<std::int32_t>(w, path, v, storage);
        case DType::u32:
            return write_numbers<std::uint32_t>(w, path, v, storage);
        case DType::i64:
            return write_numbers<std::int64_t>(w, path, v, storage);
        case DType::u64:
            return write_numbers<std::uint64_t>(w, path, v, storage);
    }
}

void write_fields(h5::Writer& w, const std::string& path,
                  const std::map<std::string, Value>& fields, const WriteOptions& options) {
    for (const auto& [key, value] : fields) write_value(w, path + "/" + key, value, options);
}

void write_graph(h5::Writer& w, const std::string& path, const Graph& g,
                 const WriteOptions& options) {
    w.write_strings(path + "/type", std::vector<std::string>{"NIRGraph"}, {});
    w.group(path + "/nodes");
    for (const auto& n : g.nodes) {
        const auto node_path = path + "/nodes/" + n.name;
        w.group(node_path);
        if (n.graph) {
            write_graph(w, node_path, *n.graph, options);
        } else {
            w.write_strings(node_path + "/type", std::vector<std::string>{n.type}, {});
        }
        write_fields(w, node_path, n.fields, options);
    }
    std::vector<std::string> names;
    names.reserve(2 * g.edges.size());
    for (const auto& [source, target] : g.edges) {
        names.push_back(source);
        names.push_back(target);
    }
    w.write_strings(path + "/edges", names, {g.edges.size(), 2});
    write_fields(w, path, g.fields, options);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Value, Node, Graph

Value Value::scalar(double value, DType dtype) {
    return array({}, {value}, dtype);
}

Value Value::array(h5::Shape shape, std::vector<double> numbers, DType dtype) {
    if (numbers.size() != h5::element_count(shape))
        throw ConfigError(fmt::format("NIR value: {} numbers given for shape {}", numbers.size(),
                                      h5::shape_string(shape)));
    normalise_numbers(numbers, dtype);
    Value v;
    v.kind = Kind::number;
    v.dtype = dtype;
    v.shape = std::move(shape);
    v.numbers = std::move(numbers);
    return v;
}

Value Value::text(std::string value) {
    return texts({}, {std::move(value)});
}

Value Value::texts(h5::Shape shape, std::vector<std::string> values) {
    if (values.size() != h5::element_count(shape))
        throw ConfigError(fmt::format("NIR value: {} strings given for shape {}", values.size(),
                                      h5::shape_string(shape)));
    Value v;
    v.kind = Kind::string;
    v.shape = std::move(shape);
    v.strings = std::move(values);
    return v;
}

Value Value::dict(std::map<std::string, Value> fields) {
    Value v;
    v.kind = Kind::dict;
    v.fields = std::move(fields);
    return v;
}

std::size_t Value::size() const noexcept {
    switch (kind) {
        case Kind::number:
            return numbers.size();
        case Kind::string:
            return strings.size();
        case Kind::dict:
            return fields.size();
    }
    return 0;
}

const std::string& Value::as_string() const {
    if (kind != Kind::string || strings.size() != 1)
        throw ConfigError("NIR value: expected one string, found " + describe());
    return strings.front();
}

double Value::as_number() const {
    if (kind != Kind::number || numbers.size() != 1)
        throw ConfigError("NIR value: expected one number, found " + describe());
    return numbers.front();
}

std::string Value::describe() const {
    switch (kind) {
        case Kind::number:
            return fmt::format("{} {}", h5::dtype_name(dtype), h5::shape_string(shape));
        case Kind::string:
            return "string " + h5::shape_string(shape);
        case Kind::dict: {
            std::string keys;
            for (const auto& [key, value] : fields) keys += (keys.empty() ? "" : ", ") + key;
            return "dict {" + keys + "}";
        }
    }
    return "?";
}

bool operator==(const Value& a, const Value& b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case Value::Kind::number:
            return a.dtype == b.dtype && a.shape == b.shape &&
                   std::equal(a.numbers.begin(), a.numbers.end(), b.numbers.begin(),
                              b.numbers.end(), same_number);
        case Value::Kind::string:
            return a.shape == b.shape && a.strings == b.strings;
        case Value::Kind::dict:
            return a.fields == b.fields;
    }
    return false;
}

const Value* Node::field(std::string_view key) const {
    const auto it = fields.find(std::string(key));
    return it != fields.end() ? &it->second : nullptr;
}

bool operator==(const Node& a, const Node& b) {
    if (a.name != b.name || a.type != b.type || a.fields != b.fields) return false;
    if (!a.graph || !b.graph) return !a.graph && !b.graph;
    return *a.graph == *b.graph;
}

const Node* Graph::find(std::string_view name) const {
    const auto it =
        std::find_if(nodes.begin(), nodes.end(), [&](const Node& n) { return n.name == name; });
    return it != nodes.end() ? &*it : nullptr;
}

bool operator==(const Graph& a, const Graph& b) {
    return a.version == b.version && a.nodes == b.nodes && a.edges == b.edges &&
           a.fields == b.fields;
}

// ---------------------------------------------------------------------------------------------
// read / write

Graph read(const std::filesystem::path& file) {
    return FileReader(file).read_root();
}

void write(const std::filesystem::path& file, const Graph& graph, const WriteOptions& options) {
    if (options.gzip_level < 0 || options.gzip_level > 9)
        throw ConfigError(
            fmt::format("NIR write: gzip level {} (expected 0 to 9)", options.gzip_level));
    if (graph.version.find('\0') != std::string::npos)
        throw ConfigError("NIR write: the version contains a NUL byte");
    check_fields("/node", graph.fields, true);
    check_graph("/node", graph, 0);
    h5::Writer w(file);
    w.write_strings("/version",
                    std::vector<std::string>{graph.version.empty() ? std::string(default_version)
                                                                   : graph.version},
                    {});
    write_graph(w, "/node", graph, options);
    w.commit();
}

}  // namespace evformer::io::nir
