// NIR files (Neuromorphic Intermediate Representation) as a generic graph of named, typed nodes
// whose fields are numeric arrays, string arrays or dicts. This layer knows the HDF5 layout of a
// NIR file and nothing of what the node types mean: "LIF", "Conv2d" or an unknown type all read
// the same way, and which fields a type needs is decided by the caller.
//
// Source of the format: the reference implementation neuromorphs/NIR, `nir/serialization.py`
// (1.0.4 and later; `nir/read.py` and `nir/write.py` before), read through its history from 0.1
// to the development after 1.0.7, and the real files of examples/nir/ (Norse, NIR 0.1.1; Sinabs,
// 0.2.0; a Braille RNN, 0.2.0). The layout and the differences between versions: docs/nir.md,
// "The file".
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evformer/io/h5.hpp"

namespace evformer::io::nir {

/// The version write() stores when Graph::version is empty: the newest released version of the
/// reference implementation (neuromorphs/NIR v1.0.7), whose layout this writer follows.
inline constexpr std::string_view default_version = "1.0.7";

/// A field of a NIR node: a numeric array (with the element type it has in the file), a string
/// array, or a dict (an HDF5 group that is not a node: `metadata`, or `input_type`/`output_type`
/// in files of the 1.0 development versions). Numbers are held as double whatever their type in
/// the file, so integers beyond 2^53 in magnitude are not exact.
struct Value {
    enum class Kind { number, string, dict };

    Kind kind = Kind::number;
    h5::DType dtype = h5::DType::f64;  ///< number: the element type in the file
    h5::Shape shape;                   ///< number/string: dimensions, outermost first; {} = scalar
    std::vector<double> numbers;       ///< number: row-major values
    std::vector<std::string> strings;  ///< string: row-major, bytes as stored (UTF-8)
    std::map<std::string, Value> fields;  ///< dict: members by name

    /// A numeric scalar. The value is rounded to `dtype` when that is f32; an integer dtype needs
    /// an integral value within its range (else ConfigError).
    static Value scalar(double value, h5::DType dtype = h5::DType::f64);

    /// A numeric array of `shape` (row-major `numbers`, count = element_count(shape), else
    /// ConfigError); values are rounded and checked as by scalar().
    static Value array(h5::Shape shape, std::vector<double> numbers,
                       h5::DType dtype = h5::DType::f64);

    /// A string scalar.
    static Value text(std::string value);

    /// A string array of `shape` (row-major, count = element_count(shape), else ConfigError).
    static Value texts(h5::Shape shape, std::vector<std::string> values);

    /// A dict of named values.
    static Value dict(std::map<std::string, Value> fields);

    bool is_number() const noexcept { return kind == Kind::number; }
    bool is_string() const noexcept { return kind == Kind::string; }
    bool is_dict() const noexcept { return kind == Kind::dict; }

    /// Number of elements (number or string) or of members (dict).
    std::size_t size() const noexcept;

    /// The text of a string scalar (shape {} or one element); ConfigError otherwise.
    const std::string& as_string() const;

    /// The value of a numeric scalar (shape {} or one element); ConfigError otherwise.
    double as_number() const;

    /// "f32 (16, 2, 5, 5)", "string ()", "dict {a, b}" — for messages.
    std::string describe() const;

    /// Same kind, dtype, shape and contents; NaN equals NaN (a file read twice compares equal).
    friend bool operator==(const Value& a, const Value& b);
};

struct Graph;

/// One node of a graph: an HDF5 group under `nodes/` holding a string dataset `type`.
struct Node {
    std::string name;  ///< the group's name, as in the file (may contain dots: "lif1.w_rec")
    std::string type;  ///< "Affine", "LIF", "NIRGraph", …, exactly as stored; not checked
    /// Every member of the group except `type` (and, for a NIRGraph, except `nodes` and `edges`);
    /// optional fields a file lacks are simply absent.
    std::map<std::string, Value> fields;
    /// Set iff type == "NIRGraph": the nested graph's nodes and edges. read() leaves its `version`
    /// and `fields` empty (the node's other members are in `fields` above); write() writes its
    /// `fields` beside the node's and ignores its `version` (a file has one, at the root).
    std::shared_ptr<Graph> graph;

    /// The field called `key`, or nullptr.
    const Value* field(std::string_view key) const;

    /// Same name, type and fields, and equal nested graphs (compared by value).
    friend bool operator==(const Node& a, const Node& b);
};

/// A NIR graph: the root (`/node` of the file) or a nested NIRGraph node.
struct Graph {
    /// The file's `/version` ("0.1.1", "0.2.0", "1.0.7", …) on the root; empty when the file has
    /// none (written before 0.1.1) and on nested graphs.
    std::string version;
    /// The nodes, sorted by name (byte order), as HDF5 lists the members of `nodes/`.
    std::vector<Node> nodes;
    /// The edges (source, target) in file order. A name is a node of this graph, or
    /// "<subgraph>.<node>" naming a node inside a NIRGraph node of this graph.
    std::vector<std::pair<std::string, std::string>> edges;
    /// The graph group's other members: `metadata`, and in some versions `input_type` and
    /// `output_type`. Filled for the root; a nested graph's are in its Node::fields.
    std::map<std::string, Value> fields;

    /// The node called `name` (exact match), or nullptr.
    const Node* find(std::string_view name) const;

    /// Same version, nodes (in order), edges (in order) and fields.
    friend bool operator==(const Graph& a, const Graph& b);
};

/// Options of write().
struct WriteOptions {
    /// gzip level (0 = none, 1–9) for numeric arrays of at least one element; scalars and strings
    /// are never compressed. No released reference version compresses (its development after
    /// v1.0.7 does, by default); read() takes both.
    int gzip_level = 0;
};

/// Reads a NIR file: `/version` (optional), the root graph `/node` (its `type`, if present, must
/// be "NIRGraph"), every node under `nodes/` recursively through nested NIRGraph nodes, numbers
/// with their element type (f32, f64, i64, …; gzip-compressed or not), strings (variable- or
/// fixed-length) and dicts (groups that are not nodes).
///
/// Throws FileError, one line naming the file, the HDF5 path and the rule broken, when: the file
/// is missing, not HDF5 or truncated; `/node` is missing; a node group has no `type`, or its
/// `type` is not a string scalar; a NIRGraph has no `nodes` group or no `edges`; `edges` is not an
/// N×2 string dataset (an empty dataset of any type, as h5py writes for an empty list, reads as
/// no edges); an edge names a node that does not exist; a member under `nodes/` is not a group;
/// a dataset holds neither numbers nor strings (enums such as numpy bool, compounds); nesting is
/// deeper than 64 levels (a cycle of hard links). Unknown node types are not an error.
Graph read(const std::filesystem::path& file);

/// Writes `graph` as a NIR file, atomically (a temporary file renamed on success, via
/// h5::Writer): `/version` (graph.version, or default_version when empty) as a variable-length
/// UTF-8 string scalar; group `/node` with `type` = "NIRGraph", a `nodes` group holding one group
/// per node (`type` string scalar, then the fields: numbers with their dtype, strings as
/// variable-length UTF-8, dicts as groups), `edges` as an N×2 variable-length UTF-8 string
/// dataset ((0, 2) when there are none), and the graph's fields. Nested NIRGraph nodes are written
/// the same way inside their node group. The result reads back with read() into an equal Graph
/// and opens with h5py and nir.read() of the reference.
///
/// Throws ConfigError, before creating the file, when the graph breaks a rule read() enforces or
/// HDF5 cannot store: an empty or duplicate node name, a name or field name containing '/' or
/// equal to "." or "..", an empty type, type "NIRGraph" without a graph (or a graph on another
/// type), a field called `type` (or `nodes`/`edges` on a NIRGraph), an edge naming no node, a
/// value whose data does not match its shape, an integer value that is not integral or out of its
/// dtype's range, a string with a NUL byte. Throws FileError when the file cannot be written.
void write(const std::filesystem::path& file, const Graph& graph, const WriteOptions& options = {});

}  // namespace evformer::io::nir
