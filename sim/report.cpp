#include "evformer/sim/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "evformer/error.hpp"

namespace evformer::sim {

RunAccumulator::RunAccumulator(const Network& net)
    : layers_(net.layers()),
      attention_info_(net.attention()),
      time_steps_(net.time_steps),
      counts_(layers_.size() * net.time_steps),
      attention_(attention_info_.size() * net.time_steps) {}

void RunAccumulator::add(const SampleResult& r, std::size_t label) {
    if (r.time_steps != time_steps_ || r.counts.size() != counts_.size() ||
        r.attention.size() != attention_.size())
        throw ConfigError("run report: a sample result of another network or step count");
    ++samples_;
    correct_ += r.prediction == label;
    nonfinite_ +=
        std::any_of(r.logits.begin(), r.logits.end(), [](float v) { return !std::isfinite(v); });
    seconds_ += r.seconds;
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += r.counts[i];
    for (std::size_t i = 0; i < attention_.size(); ++i) {
        attention_[i].sops_qk += r.attention[i].sops_qk;
        attention_[i].sops_av += r.attention[i].sops_av;
        attention_[i].nonzero += r.attention[i].nonzero;
    }
}

void RunAccumulator::merge(const RunAccumulator& o) {
    samples_ += o.samples_;
    correct_ += o.correct_;
    nonfinite_ += o.nonfinite_;
    seconds_ += o.seconds_;
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    for (std::size_t i = 0; i < attention_.size(); ++i) {
        attention_[i].sops_qk += o.attention_[i].sops_qk;
        attention_[i].sops_av += o.attention_[i].sops_av;
        attention_[i].nonzero += o.attention_[i].nonzero;
    }
}

RunReport RunAccumulator::report(const EnergyModel& energy) const {
    RunReport r;
    r.samples = samples_;
    r.correct = correct_;
    r.nonfinite_samples = nonfinite_;
    r.time_steps = time_steps_;
    r.energy = energy;
    r.seconds_per_sample = samples_ ? seconds_ / double(samples_) : 0;
    const double per = samples_ ? 1.0 / double(samples_) : 0.0;
    const double steps = double(time_steps_);
    std::vector<StepCounts> total(layers_.size());
    for (std::size_t l = 0; l < layers_.size(); ++l)
        for (std::size_t t = 0; t < time_steps_; ++t) total[l] += counts_[l * time_steps_ + t];
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        const auto& info = layers_[l];
        const auto& c = total[l];
        LayerReport lr;
        lr.name = info.name;
        // the first conv is real-valued on static images but event-driven on event input (SOPs,
        // no MACs): then it is counted and estimated like any event-driven conv
        const bool event_input = info.kind == LayerKind::conv_real && c.macs == 0;
        lr.kind = event_input ? LayerKind::conv : info.kind;
        lr.neurons = info.neurons;
        lr.spikes = double(c.spikes) * per;
        lr.firing_rate = info.kind == LayerKind::head
                             ? 0.0
                             : double(c.spikes) / (double(info.neurons) * steps * double(samples_));
        lr.sops = double(c.sops) * per;
        lr.macs = double(c.macs) * per;
        lr.membrane_updates = double(c.membrane_updates) * per;
        // The paper's estimate: fr_in × T × FLOPs, fr_in = input spikes / (input neurons × T).
        switch (lr.kind) {
            case LayerKind::conv_real:
            case LayerKind::head:
                lr.macs_estimated = info.kind == LayerKind::head ? info.flops : steps * info.flops;
                break;
            case LayerKind::conv:
            case LayerKind::linear:
                lr.sops_estimated =
                    double(c.input_events) * per / double(info.input_neurons) * info.flops;
                break;
            case LayerKind::attention: {
                // fr_q·T·FLOPs(QKᵀ) + fr_v·T·FLOPs(A·V), each product N²·D: (q + v spikes) × N.
                std::uint64_t spikes = 0;
                for (auto row : info.estimate_rows) spikes += total[row].spikes;
                lr.sops_estimated = double(spikes) * per * double(info.tokens);
                break;
            }
        }
        lr.energy_mj = energy.millijoules(lr.sops, lr.macs);
        for (std::size_t t = 0; t < time_steps_; ++t) {
            lr.sops_per_step.push_back(double(counts_[l * time_steps_ + t].sops) * per);
            lr.spikes_per_step.push_back(double(counts_[l * time_steps_ + t].spikes) * per);
        }
        r.sops += lr.sops;
        r.sops_estimated += lr.sops_estimated;
        r.macs += lr.macs;
        r.membrane_updates += lr.membrane_updates;
        r.spikes += lr.spikes;
        r.layers.push_back(std::move(lr));
    }
    r.energy_mj = energy.millijoules(r.sops, r.macs);
    for (std::size_t b = 0; b < attention_info_.size(); ++b) {
        const auto& info = attention_info_[b];
        AttentionReport ar;
        ar.block = b;
        double nonzero = 0, qk = 0, av = 0;
        for (std::size_t t = 0; t < time_steps_; ++t) {
            const auto& a = attention_[b * time_steps_ + t];
            nonzero += double(a.nonzero);
            qk += double(a.sops_qk);
            av += double(a.sops_av);
        }
        const double entries =
            double(info.tokens * info.tokens * info.heads) * steps * double(samples_);
        ar.fr_attn = samples_ ? nonzero / entries : 0;
        ar.fr_out = r.layers[info.row].firing_rate;
        ar.sops_qk = qk * per;
        ar.sops_av = av * per;
        r.attention.push_back(ar);
    }
    return r;
}

}  // namespace evformer::sim
