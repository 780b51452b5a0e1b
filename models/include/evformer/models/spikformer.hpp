// The Spikformer, declared once: one function from a ModelSpec to the engine's graph
// (DESIGN.md "The model"). The weights file's layout (parameter_layout), the builder
// (build_network), the dense trainer's population names, the per-layer report and the spike
// recorder all derive from this graph.
#pragma once

#include "evformer/models/spec.hpp"
#include "evformer/sim/graph.hpp"

namespace evformer::models {

/// The validated graph of a Spikformer of `spec`, without parameter values. Node names are the
/// module paths of the weights file (a node's tensors are "<node>/<slot>"):
/// - `input` [C_in, H, W];
/// - SPS stage i = 0..3: `sps/conv{i}` (3×3, stride 1, padding 1, no bias) → `sps/bn{i}` →
///   `sps/lif{i}`, then `sps/pool{i}` (3×3 / stride 2 / padding 1 max-pool) if pool_after[i];
/// - `sps/rpe_conv` → `sps/rpe_bn` → `sps/rpe_lif`; `sps/residual` = stem output + rpe spikes;
///   `sps/tokens` flattens the map into N tokens × D;
/// - block l: `blocks/{l}/attn/{q,k,v}_linear` → `_bn` → `_lif`; `blocks/{l}/attn` (attention
///   with the variant's flags, tensors c_mean [H] and v_bar [D]) → `blocks/{l}/attn/attn_lif`
///   → `attn/proj_linear` → `_bn` → `attn/proj_lif`; `blocks/{l}/attn_residual`; then
///   `blocks/{l}/mlp/fc1_*` (D → mlp_ratio·D), `mlp/fc2_*` and `blocks/{l}/mlp_residual`;
/// - `head`: mean over tokens and steps, Linear(D → classes).
/// Nodes are declared in the weights file's tensor order. Throws ConfigError if the spec is
/// invalid.
sim::Graph spikformer_graph(const ModelSpec& spec);

}  // namespace evformer::models
