// The neuron models' update rules, declared once and used by both executors: the event-driven
// engine (sim/) and the dense trainer (models/ops/). The engine's vectorised paths perform the
// same operations in the same order and are tested against these functions.
//
// LIF (DESIGN.md "The model", SpikingJelly's LIFNode with decay_input = true, hard reset):
//   charge  u = v + (x − (v − v_reset)) / τ
//   fire    s = [u ≥ v_th]
//   reset   v = s ? v_reset : u
// IF (integrate-and-fire, no leak): u = v + x, then fire and reset as LIF.
#pragma once

namespace evformer::sim {

/// LIF constants: τ (time steps, > 0), threshold and reset potential (membrane units).
struct LifParams {
    float tau = 2.0f;
    float v_threshold = 1.0f;
    float v_reset = 0.0f;
};

/// The LIF charge of one neuron for one step: membrane `v`, input current `x` → u (pre-spike).
inline float lif_charge(float v, float x, const LifParams& p) {
    return v + (x - (v - p.v_reset)) / p.tau;
}

/// The IF charge: u = v + x (no leak).
inline float if_charge(float v, float x) {
    return v + x;
}

/// The spike condition shared by LIF and IF: u ≥ v_th (the Spikformer's `≥`; NIR uses `>`).
inline bool fires(float u, const LifParams& p) {
    return u >= p.v_threshold;
}

/// The membrane after the step: v_reset if the neuron fired (hard reset), u otherwise.
inline float after_spike(float u, bool fired, const LifParams& p) {
    return fired ? p.v_reset : u;
}

}  // namespace evformer::sim
