// The energy model: a price per synaptic operation and per multiply-accumulate.
#pragma once

#include <cstdint>

namespace evformer::sim {

/// Joules per operation; defaults are the paper's 77 fJ/SOP and Horowitz's 4.6 pJ/MAC (45 nm).
struct EnergyModel {
    double joules_per_sop = 77e-15;
    double joules_per_mac = 4.6e-12;

    /// Throws ConfigError unless both prices are finite and non-negative.
    void validate() const;

    /// Energy of a count of SOPs and MACs, in millijoules.
    double millijoules(double sops, double macs) const {
        return (sops * joules_per_sop + macs * joules_per_mac) * 1e3;
    }
};

}  // namespace evformer::sim
