// A naive, dense, time-stepped evaluation of any sim::Graph, written from the node kinds'
// documented rules (docs/simulator.md "Node kinds") with plain loops over every neuron and
// weight: no events, no folding, no fast paths. Engine tests compare the event-driven
// Simulator with it (spikes, predictions and the counted SOPs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "evformer/sim/graph.hpp"
#include "evformer/sim/neuron_rules.hpp"

namespace evformer::testing {

/// What a dense run produced: per neuron node, per step, its spikes (channel-last, 0/1), and
/// the logits; `sops` counts Σ input count × weights reached for conv2d/linear (the engine's
/// rule, computed here by visiting every weight with a non-zero input).
struct DenseResult {
    std::map<std::string, std::vector<std::vector<float>>> spikes;
    std::vector<float> logits;
    std::size_t prediction = 0;
    std::uint64_t projection_sops = 0;
};

/// Runs `g` (validated, with parameters) for `frames.size()` steps; frame t is the input of step
/// t (counts, or the image repeated). A recurrent edge reads its source's output of the previous
/// step (zeros at the first). NIR neuron kinds follow docs/nir.md in double precision; delays
/// keep every step's output.
inline DenseResult dense_run(const sim::Graph& g, const std::vector<std::vector<float>>& frames) {
    using sim::NodeKind;
    const auto& nodes = g.nodes();
    std::vector<std::vector<float>> out(nodes.size()), v(nodes.size()), syn(nodes.size());
    std::vector<std::vector<std::vector<float>>> history(nodes.size());  // delay: inputs per step
    DenseResult r;
    std::vector<double> readout_sum;
    for (std::size_t t = 0; t < frames.size(); ++t) {
        for (auto i : g.order()) {
            const sim::Node& n = nodes[i];
            const auto& a = n.attr;
            std::vector<float> zeros;
            auto input = [&](std::size_t e) -> const std::vector<float>& {
                const auto& x = out[n.input_index[e]];
                if (!x.empty()) return x;
                zeros.assign(nodes[n.input_index[e]].shape.size(), 0.f);  // recurrent, step 0
                return zeros;
            };
            auto param = [&](std::string_view name) -> const std::vector<float>& {
                const auto names = sim::nir_parameters(n.kind);
                for (std::size_t p = 0; p < names.size(); ++p)
                    if (names[p].first == name) return n.params[p].data;
                throw std::logic_error("no parameter " + std::string(name));
            };
            const bool events_in =
                !n.input_index.empty() && g.signal(n.input_index[0]) == sim::Signal::events;
            const sim::Shape in = n.input_index.empty() ? n.shape : nodes[n.input_index[0]].shape;
            std::vector<float> y(n.shape.size(), 0.f);
            switch (n.kind) {
                case NodeKind::input:
                    y = frames[t];
                    break;
                case NodeKind::lif:
                case NodeKind::if_neuron: {
                    auto& vm = v[i];
                    if (vm.empty()) vm.assign(n.shape.size(), a.lif.v_reset);
                    const auto& x = input(0);
                    for (std::size_t k = 0; k < y.size(); ++k) {
                        const float u = n.kind == NodeKind::lif
                                            ? sim::lif_charge(vm[k], x[k], a.lif)
                                            : sim::if_charge(vm[k], x[k]);
                        const bool f = sim::fires(u, a.lif);
                        vm[k] = sim::after_spike(u, f, a.lif);
                        y[k] = f ? 1.f : 0.f;
                    }
                    r.spikes[n.name].push_back(y);
                    break;
                }
                case NodeKind::conv2d: {
                    const auto& x = input(0);
                    const std::size_t co = n.shape.channels, groups = a.groups;
                    const std::size_t cig = in.channels / groups, cog = co / groups, k = a.kernel,
                                      kw = a.kw();
                    for (std::size_t oy = 0; oy < n.shape.height; ++oy)
                        for (std::size_t ox = 0; ox < n.shape.width; ++ox)
                            for (std::size_t o = 0; o < co; ++o) {
                                float s = a.bias ? n.params[1].data[o] : 0.f;
                                const std::size_t gi = o / cog;
                                for (std::size_t ky = 0; ky < k; ++ky)
                                    for (std::size_t kx = 0; kx < kw; ++kx) {
                                        const long iy =
                                            long(oy * a.stride + ky * a.dilation) - long(a.padding);
                                        const long ix =
                                            long(ox * a.sw() + kx * a.dw()) - long(a.pw());
                                        if (iy < 0 || ix < 0 || iy >= long(in.height) ||
                                            ix >= long(in.width))
                                            continue;
                                        for (std::size_t ic = 0; ic < cig; ++ic) {
                                            const float xv =
                                                x[(std::size_t(iy) * in.width + std::size_t(ix)) *
                                                      in.channels +
                                                  gi * cig + ic];
                                            s += n.params[0]
                                                     .data[((o * cig + ic) * k + ky) * kw + kx] *
                                                 xv;
                                            if (events_in) r.projection_sops += std::uint64_t(xv);
                                        }
                                    }
                                y[(oy * n.shape.width + ox) * co + o] = s;
                            }
                    break;
                }
                case NodeKind::linear: {
                    const auto& x = input(0);
                    const std::size_t ci = in.channels, co = n.shape.channels;
                    for (std::size_t p = 0; p < in.positions(); ++p)
                        for (std::size_t o = 0; o < co; ++o) {
                            float s = a.bias ? n.params[1].data[o] : 0.f;
                            for (std::size_t c = 0; c < ci; ++c) {
                                s += n.params[0].data[o * ci + c] * x[p * ci + c];
                                if (events_in) r.projection_sops += std::uint64_t(x[p * ci + c]);
                            }
                            y[p * co + o] = s;
                        }
                    break;
                }
                case NodeKind::batchnorm: {
                    const auto& x = input(0);
                    const std::size_t c = n.shape.channels;
                    for (std::size_t k = 0; k < y.size(); ++k) {
                        const std::size_t ch = k % c;
                        y[k] = float((double(x[k]) - n.params[2].data[ch]) /
                                         std::sqrt(double(n.params[3].data[ch]) + a.eps) *
                                         n.params[0].data[ch] +
                                     n.params[1].data[ch]);
                    }
                    break;
                }
                case NodeKind::scale: {
                    const auto& x = input(0);
                    for (std::size_t k = 0; k < y.size(); ++k)
                        y[k] = x[k] * n.params[0].data[k % n.shape.channels];
                    break;
                }
                case NodeKind::max_pool:
                case NodeKind::sum_pool:
                case NodeKind::avg_pool: {
                    const auto& x = input(0);
                    const std::size_t c = in.channels;
                    for (std::size_t oy = 0; oy < n.shape.height; ++oy)
                        for (std::size_t ox = 0; ox < n.shape.width; ++ox)
                            for (std::size_t ch = 0; ch < c; ++ch) {
                                float acc = 0.f;
                                for (std::size_t ky = 0; ky < a.kernel; ++ky)
                                    for (std::size_t kx = 0; kx < a.kw(); ++kx) {
                                        const long iy = long(oy * a.stride + ky) - long(a.padding);
                                        const long ix = long(ox * a.sw() + kx) - long(a.pw());
                                        if (iy < 0 || ix < 0 || iy >= long(in.height) ||
                                            ix >= long(in.width))
                                            continue;
                                        const float xv =
                                            x[(std::size_t(iy) * in.width + std::size_t(ix)) * c +
                                              ch];
                                        acc = n.kind == NodeKind::max_pool ? std::max(acc, xv)
                                                                           : acc + xv;
                                    }
                                if (n.kind == NodeKind::max_pool) acc = acc > 0 ? 1.f : 0.f;
                                if (n.kind == NodeKind::avg_pool) acc /= float(a.kernel * a.kw());
                                y[(oy * n.shape.width + ox) * c + ch] = acc;
                            }
                    break;
                }
                case NodeKind::flatten: {
                    const auto& x = input(0);
                    if (a.to_tokens) {
                        y = x;
                    } else {
                        const std::size_t c = in.channels, hw = in.positions();
                        for (std::size_t k = 0; k < x.size(); ++k) y[(k % c) * hw + k / c] = x[k];
                    }
                    break;
                }
                case NodeKind::merge_add:
                    for (std::size_t e = 0; e < n.input_index.size(); ++e)
                        for (std::size_t k = 0; k < y.size(); ++k) y[k] += input(e)[k];
                    break;
                case NodeKind::attention: {
                    const auto &q = input(0), &kk = input(1), &vv = input(2);
                    const std::size_t tok = in.positions(), d = in.channels, hd = d / a.heads;
                    for (std::size_t h = 0; h < a.heads; ++h) {
                        const float delta =
                            a.adaptive_threshold ? float(a.lambda * n.params[0].data[h]) : 0.f;
                        for (std::size_t qi = 0; qi < tok; ++qi)
                            for (std::size_t kj = 0; kj < tok; ++kj) {
                                float c = 0;
                                for (std::size_t ch = h * hd; ch < (h + 1) * hd; ++ch)
                                    c += q[qi * d + ch] * kk[kj * d + ch];
                                const float e = a.binary ? (c > delta ? a.kappa : 0.f) : c;
                                for (std::size_t ch = h * hd; ch < (h + 1) * hd; ++ch)
                                    y[qi * d + ch] += a.attention_scale * e * vv[kj * d + ch];
                            }
                    }
                    if (a.shift)
                        for (std::size_t k = 0; k < y.size(); ++k) y[k] -= n.params[1].data[k % d];
                    break;
                }
                case NodeKind::readout: {
                    const auto& x = input(0);
                    if (readout_sum.empty()) readout_sum.assign(in.channels, 0.0);
                    for (std::size_t k = 0; k < x.size(); ++k) readout_sum[k % in.channels] += x[k];
                    break;
                }
                case NodeKind::integrator:
                case NodeKind::li:
                case NodeKind::nir_if:
                case NodeKind::nir_lif:
                case NodeKind::cuba_li:
                case NodeKind::cuba_lif: {
                    const auto& x = input(0);
                    const std::size_t count = n.shape.size();
                    if (v[i].empty()) v[i].assign(count, 0.f), syn[i].assign(count, 0.f);
                    const bool cuba = n.kind == NodeKind::cuba_li || n.kind == NodeKind::cuba_lif;
                    const bool leaky = n.kind != NodeKind::integrator && n.kind != NodeKind::nir_if;
                    const bool spiking = sim::kind_info(n.kind).output == sim::Signal::events;
                    for (std::size_t k = 0; k < count; ++k) {
                        double current = x[k];
                        if (cuba) {  // τ_syn dI/dt = −I + w_in·S, one forward-Euler step
                            syn[i][k] += float(a.dt / param("tau_syn")[k] *
                                               (param("w_in")[k] * current - syn[i][k]));
                            current = syn[i][k];
                        }
                        double u = v[i][k];
                        if (leaky)  // τ dv/dt = v_leak − v + r·I
                            u += a.dt / param(cuba ? "tau_mem" : "tau")[k] *
                                 (param("v_leak")[k] - u + param("r")[k] * current);
                        else  // dv/dt = r·I, one step per unit
                            u += param("r")[k] * current;
                        if (spiking && u > param("v_threshold")[k]) {
                            y[k] = 1.f;
                            u = param("v_reset")[k];
                        }
                        v[i][k] = float(u);
                        if (!spiking) y[k] = float(u);
                    }
                    r.spikes[n.name].push_back(spiking ? y : std::vector<float>(count, 0.f));
                    break;
                }
                case NodeKind::threshold: {
                    const auto& x = input(0);
                    for (std::size_t k = 0; k < y.size(); ++k)
                        y[k] = x[k] > param("threshold")[k] ? 1.f : 0.f;
                    r.spikes[n.name].push_back(y);
                    break;
                }
                case NodeKind::delay: {
                    history[i].push_back(input(0));
                    for (std::size_t k = 0; k < y.size(); ++k) {
                        const auto d = std::size_t(std::llround(param("delay")[k] / a.dt));
                        if (d <= t) y[k] = history[i][t - d][k];
                    }
                    break;
                }
                case NodeKind::output: {
                    const auto& x = input(0);
                    if (readout_sum.empty()) readout_sum.assign(x.size(), 0.0);
                    for (std::size_t k = 0; k < x.size(); ++k) readout_sum[k] += x[k];
                    break;
                }
            }
            out[i] = std::move(y);
        }
    }
    const sim::Node& ro = nodes[g.readout_node()];
    const sim::Shape in = nodes[ro.input_index[0]].shape;
    if (ro.kind == NodeKind::output) {  // spike counts, or the mean current
        const bool counts = g.signal(ro.input_index[0]) == sim::Signal::events;
        for (double x : readout_sum)
            r.logits.push_back(float(counts ? x : x / double(frames.size())));
        r.prediction =
            std::size_t(std::max_element(r.logits.begin(), r.logits.end()) - r.logits.begin());
        return r;
    }
    const std::size_t classes = ro.attr.out_channels;
    r.logits.assign(classes, 0.f);
    for (std::size_t k = 0; k < classes; ++k) {
        float s = ro.params[1].data[k];
        for (std::size_t c = 0; c < in.channels; ++c)
            s += ro.params[0].data[k * in.channels + c] *
                 float(readout_sum[c] / double(frames.size() * in.positions()));
        r.logits[k] = s;
    }
    r.prediction =
        std::size_t(std::max_element(r.logits.begin(), r.logits.end()) - r.logits.begin());
    return r;
}

}  // namespace evformer::testing
