// Per-layer reports of a simulation run: counted SOPs beside the paper's fr × T × FLOPs estimate,
// MACs, membrane updates, spikes and firing rates, fr_attn/fr_out per attention block, energy,
// per-sample means. Rendering (table, JSON, CSV) is the command line's: tools/report_output.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "evformer/sim/energy.hpp"
#include "evformer/sim/network.hpp"

namespace evformer::sim {

/// One layer's figures, as means per sample.
struct LayerReport {
    std::string name;
    LayerKind kind = LayerKind::conv;
    std::size_t neurons = 0;
    double spikes = 0;
    double firing_rate = 0;     ///< spikes / (neurons × T)
    double sops = 0;            ///< counted
    double sops_estimated = 0;  ///< the paper's fr_in × T × FLOPs
    double macs = 0;            ///< counted
    double macs_estimated = 0;  ///< T × FLOPs of a real-valued layer
    double membrane_updates = 0;
    double energy_mj = 0;
    std::vector<double> sops_per_step;    ///< [T]
    std::vector<double> spikes_per_step;  ///< [T]
};

/// One attention node's rates and SOP split.
struct AttentionReport {
    std::size_t block = 0;  ///< index of the attention node in execution order
    double fr_attn = 0;     ///< non-zero attention entries / (N² × H × T)
    double fr_out = 0;      ///< firing rate of attn_lif
    double sops_qk = 0;     ///< per sample
    double sops_av = 0;     ///< per sample
};

/// A whole run's report.
struct RunReport {
    std::string model;    ///< weights file or label
    std::string variant;  ///< attention variant name
    std::string data;     ///< what was simulated (dataset, split, encoding)
    std::size_t samples = 0;
    std::size_t correct = 0;
    std::size_t nonfinite_samples = 0;  ///< samples with a NaN or infinite logit
    std::size_t time_steps = 0;
    std::vector<LayerReport> layers;
    std::vector<AttentionReport> attention;
    double sops = 0, sops_estimated = 0, macs = 0, membrane_updates = 0, spikes = 0;
    double energy_mj = 0;           ///< per sample
    double seconds_per_sample = 0;  ///< mean simulation time of one sample (one thread)
    double wall_seconds = 0;        ///< wall time of the whole run
    std::size_t threads = 1;
    EnergyModel energy;

    double accuracy() const { return samples ? double(correct) / double(samples) : 0.0; }
};

/// Sums sample results (one accumulator per thread, merged at the end).
class RunAccumulator {
  public:
    /// An empty accumulator for results of `net`.
    explicit RunAccumulator(const Network& net);
    /// Adds one sample; `label` is its true class.
    void add(const SampleResult& r, std::size_t label);
    /// Adds another accumulator's sums.
    void merge(const RunAccumulator& other);
    /// The report: per-sample means, estimates and energy.
    RunReport report(const EnergyModel& energy) const;

  private:
    std::vector<LayerInfo> layers_;
    std::vector<AttentionInfo> attention_info_;
    std::size_t time_steps_ = 0;
    std::size_t samples_ = 0, correct_ = 0, nonfinite_ = 0;
    double seconds_ = 0;
    std::vector<StepCounts> counts_;              ///< [layer][step], summed over samples
    std::vector<AttentionStepCounts> attention_;  ///< [block][step]
};

}  // namespace evformer::sim
