// Hand-built NIR graphs shared by the NIR tests and the h5py check's writer: every kind of field
// and layout the NIR file layer must round-trip.
#pragma once

#include <cmath>
#include <limits>
#include <memory>

#include "evformer/io/nir.hpp"

namespace evformer::test {

namespace nir = evformer::io::nir;
namespace h5 = evformer::io::h5;

/// A graph with a nested NIRGraph (itself holding a nested NIRGraph with zero edges), float32,
/// float64, int64 and uint8 arrays, a NaN, string scalars and arrays, dict fields (metadata with a
/// nested dict), node names with dots, an unknown node type and an edge into a subgraph
/// ("sub.in"). Nodes are in name order, as read() returns them.
inline nir::Graph sample_graph() {
    using nir::Value;
    auto inner = std::make_shared<nir::Graph>();  // zero edges
    inner->nodes.push_back({"only", "Threshold", {{"threshold", Value::scalar(0.5)}}, nullptr});

    auto sub = std::make_shared<nir::Graph>();
    sub->nodes.push_back({"deep", "NIRGraph", {}, inner});
    sub->nodes.push_back({"in", "Input", {{"shape", Value::array({1}, {3}, h5::DType::i64)}}, {}});
    sub->nodes.push_back({"lif",
                          "LIF",
                          {{"tau", Value::array({3}, {0.01, 0.02, 0.03}, h5::DType::f32)},
                           {"r", Value::array({3}, {1, 1, 1}, h5::DType::f32)},
                           {"v_leak", Value::array({3}, {0, 0, 0}, h5::DType::f32)},
                           {"v_threshold", Value::array({3}, {1, 1, 1}, h5::DType::f32)}},
                          {}});
    sub->nodes.push_back(
        {"out", "Output", {{"shape", Value::array({1}, {3}, h5::DType::i64)}}, {}});
    sub->edges = {{"in", "lif"}, {"lif", "out"}};

    nir::Graph g;
    g.version = "1.0.7";
    g.fields["metadata"] =
        Value::dict({{"author", Value::text("evformer tests \u00b5")},
                     {"epochs", Value::scalar(3, h5::DType::i64)},
                     {"nested", Value::dict({{"flag", Value::scalar(1, h5::DType::u8)}})}});
    g.nodes.push_back(
        {"conv.0",
         "Conv2d",
         {{"weight", Value::array({2, 1, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8.5}, h5::DType::f32)},
          {"bias", Value::array({2}, {0.1, -0.25}, h5::DType::f64)},
          {"stride", Value::array({2}, {1, 1}, h5::DType::i64)},
          {"padding", Value::text("same")},
          {"groups", Value::scalar(1, h5::DType::i64)},
          {"metadata", Value::dict({{"labels", Value::texts({2}, {"a", "b"})}})}},
         {}});
    g.nodes.push_back(
        {"input", "Input", {{"shape", Value::array({3}, {1, 2, 2}, h5::DType::i64)}}, {}});
    g.nodes.push_back(
        {"mystery",
         "MyOwnNeuron",
         {{"gain", Value::array({2}, {std::numeric_limits<double>::quiet_NaN(), 2.0})},
          {"input_type", Value::dict({{"input", Value::array({1}, {2}, h5::DType::i64)}})}},
         {}});
    g.nodes.push_back(
        {"output", "Output", {{"shape", Value::array({1}, {3}, h5::DType::i64)}}, {}});
    g.nodes.push_back(
        {"sub", "NIRGraph", {{"metadata", Value::dict({{"note", Value::text("nested")}})}}, sub});
    g.edges = {
        {"input", "conv.0"}, {"conv.0", "mystery"}, {"mystery", "sub.in"}, {"sub", "output"}};
    return g;
}

}  // namespace evformer::test
