// Rendering of simulation reports for the command line: the per-layer text table, several reports
// side by side, JSON and CSV. The engine produces sim::RunReport; how it is shown lives here.
#pragma once

#include <string>
#include <vector>

#include "evformer/sim/report.hpp"

namespace evformer::tools {

using sim::RunReport;

/// The per-layer table (layer, neurons, spikes, firing rate, SOPs counted and estimated, MACs,
/// energy), the attention rates, the per-sample totals and the accuracy, as text.
std::string format_table(const RunReport& r);

/// Several reports side by side (e.g. ssa vs ssa-bin): firing rate, SOPs and energy per layer
/// for each, then fr_attn/fr_out, totals and accuracy. The reports must share their layers.
std::string format_side_by_side(const std::vector<RunReport>& reports);

/// JSON text: accuracy, samples, layers (per sample), attention, per_sample totals, energy.
std::string to_json(const RunReport& r);
/// JSON text of several reports: {"runs": [...]}.
std::string to_json(const std::vector<RunReport>& reports);

/// CSV, one row per layer (and per model when several): model, layer, neurons, spikes,
/// firing_rate, sops, sops_estimated, macs, membrane_updates, energy_mj.
std::string to_csv(const std::vector<RunReport>& reports);

}  // namespace evformer::tools
