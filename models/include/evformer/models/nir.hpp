// NIR graphs (io/nir.hpp) turned into the engine's graphs (sim/graph.hpp) and back: which NIR
// node type becomes which node kind, with which parameters and in which neuron order, and the
// discretisation of NIR's continuous-time neurons with a time step dt (docs/nir.md, "Running NIR
// graphs"). The file layer (io/) knows nothing of what a type means; this is where it is decided.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "evformer/io/nir.hpp"
#include "evformer/sim/graph.hpp"

namespace evformer::models {

/// How a NIR graph is read into the engine.
struct NirImportOptions {
    /// Seconds per time step: the dt of the forward-Euler discretisation of LI, LIF, CubaLI and
    /// CubaLIF, and the unit of Delay (> 0).
    double dt = 1e-3;
};

/// The engine graph of a NIR graph, validated and with its parameters:
/// - Input/Output → input/output; Affine/Linear → linear (with/without bias); Scale → scale;
///   Conv1d/Conv2d → conv2d (Conv1d on a C×1×L map); SumPool2d/AvgPool2d → sum_pool/avg_pool;
///   Flatten → flatten (to a vector, PyTorch order); Threshold, Delay → threshold, delay;
///   I, IF, LI, LIF, CubaLI, CubaLIF → integrator, nir_if, li, nir_lif, cuba_li, cuba_lif.
/// - A node with several incoming edges sums them: a merge_add node "<name>.sum" is put before it.
/// - Nested NIRGraph nodes are flattened: their nodes are named "<graph>.<node>", and edges into
///   or out of the nested graph join its Input and Output nodes.
/// - Per-neuron parameter arrays (shaped like the layer, channel-major C×H×W, or one value for
///   all) are reordered to the engine's channel-last neurons; f32 and f64 alike.
/// - Missing v_reset is 0 (files before NIR 1.0); evformer's own nodes (docs/nir.md, "Writing")
///   read back as the kinds they were written from.
/// Throws ConfigError naming the node and the rule: an unknown type, a missing or misshapen
/// parameter, a shape mismatch along an edge, a cycle the engine cannot run.
sim::Graph graph_from_nir(const io::nir::Graph& nir, const NirImportOptions& options = {});

/// Reads a NIR file (io::nir::read) and converts it (graph_from_nir).
sim::Graph read_nir_graph(const std::filesystem::path& file, const NirImportOptions& options = {});

/// The NIR graph of an engine graph: every node kind graph_from_nir produces maps back to its NIR
/// type (so read → write → read gives the same graph), merge_add nodes become several edges into
/// their consumer. The Spikformer's own kinds are written as in docs/nir.md, "Writing": LIF and IF
/// as NIR LIF/IF (τ·dt, v_leak = v_reset; a metadata entry records evformer's `≥` threshold
/// rule), batch norm folded into the projection before it, and max-pool, token flatten,
/// attention and the readout as extension nodes of type "evformer.*". `dt` converts the Spikformer
/// LIF's τ in steps to seconds. Throws ConfigError for a graph that is not validated.
io::nir::Graph graph_to_nir(const sim::Graph& graph, double dt = 1e-3);

/// True when `file` is an HDF5 file with NIR's root group `/node` (an evformer weights file has
/// none); false for anything else, including a file that does not open.
bool is_nir_file(const std::filesystem::path& file);

/// What `evformer nir info` prints of a NIR file: per node its name, type, shape and parameter
/// count, then the edges, then the problems the engine finds (an empty list when it runs). Nodes
/// come in data-flow order (breadth first from the Input nodes; unreachable ones last, by name),
/// edges sorted by their source's and then their target's place in that order.
struct NirSummary {
    struct Row {
        std::string name, type, shape;
        std::size_t parameters = 0;
    };
    std::string version;
    std::vector<Row> nodes;
    std::vector<std::pair<std::string, std::string>> edges;
    std::vector<std::string> problems;
};

/// The summary of a NIR file (FileError when it cannot be read at all).
NirSummary summarize_nir(const std::filesystem::path& file, const NirImportOptions& options = {});

}  // namespace evformer::models
