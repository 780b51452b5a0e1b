// Trainer op: a population of LIF neurons run over T time steps, forward and backward (BPTT).
//
// Forward (DESIGN.md "The model"; SpikingJelly's LIFNode, decay_input = true, hard reset): the
// rule of sim/neuron_rules.hpp, the one the event-driven engine runs (sim::lif_step),
//   h_t = lif_charge(v_{t−1}, z_t) = v + (z − (v − v_reset))/τ,   s_t = fires(h_t) = [h_t ≥ v_th],
//   v_t = after_spike(h_t, s_t)    = s_t ? v_reset : h_t,          v_{−1} = v_reset.
// Backward: the spike's derivative is the surrogate α·σ(αx)(1 − σ(αx)), x = h − v_th (Spikformer's
// sigmoid surrogate), and the reset is detached (SpikingJelly's detach_reset = True), so
//   dh_t = ds_t·sg(h_t) + dv_t·(1 − s_t),   dz_t = dh_t/τ,   dv_{t−1} = dh_t·(1 − 1/τ).
//
// Smooth mode (test only, TrainOptions::smooth): s_t = σ(α(h_t − v_th)) and the reset
// v_t = h_t(1 − s_t) + v_reset·s_t is differentiated, so finite differences match the backward.
//
// Layout: time-major, element t·size + i for step t and neuron i of the `size` neurons per step
// (in the network, size = batch × neurons per sample, so row = t·batch + b). Values are membrane
// units (the input current z and the membrane h share them; spikes are 0/1). No checks: sizes
// are the caller's.
#pragma once

#include <cstddef>

#include "evformer/sim/neuron_rules.hpp"

namespace evformer::models::ops {

/// A LIF population's constants: the shared neuron rule's and the surrogate's slope α.
struct LifOpParams {
    sim::LifParams rule;  ///< τ, v_th, v_reset, as the engine uses them
    float alpha = 4.f;    ///< slope of the sigmoid surrogate
};

/// z `[steps, size]` input currents → h `[steps, size]` pre-spike membranes and s `[steps, size]`
/// spikes (0/1, or σ(α(h − v_th)) when `smooth`).
void lif_forward(const float* z, std::size_t steps, std::size_t size, const LifOpParams& p,
                 bool smooth, float* h, float* s);

/// Backward of lif_forward from its h and s: ds `[steps, size]` → dz `[steps, size]`
/// (overwritten). The reset is detached unless `smooth`.
void lif_backward(const float* h, const float* s, const float* ds, std::size_t steps,
                  std::size_t size, const LifOpParams& p, bool smooth, float* dz);

}  // namespace evformer::models::ops
