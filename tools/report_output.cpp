#include "report_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "evformer/error.hpp"

namespace evformer::tools {

using sim::AttentionReport;
using sim::LayerKind;
using sim::LayerReport;
using sim::RunReport;

namespace {

std::string si(double x) {
    if (x >= 1e9) return fmt::format("{:.3f}G", x / 1e9);
    if (x >= 1e6) return fmt::format("{:.3f}M", x / 1e6);
    if (x >= 1e3) return fmt::format("{:.1f}k", x / 1e3);
    return fmt::format("{:.0f}", x);
}

std::string dash_or(double x, bool show) {
    return show ? si(x) : "-";
}

}  // namespace

std::string format_table(const RunReport& r) {
    std::string out;
    out += fmt::format("model {} ({}), {} samples, T = {}\n", r.model, r.variant, r.samples,
                       r.time_steps);
    if (!r.data.empty()) out += fmt::format("data: {}\n", r.data);
    out += fmt::format("{:<26} {:>8} {:>10} {:>7} {:>10} {:>10} {:>9} {:>11}\n", "layer", "neurons",
                       "spikes", "fr", "SOPs", "SOPs est.", "MACs", "energy mJ");
    for (const auto& l : r.layers) {
        const bool pop = l.kind != LayerKind::head;
        out += fmt::format("{:<26} {:>8} {:>10} {:>7} {:>10} {:>10} {:>9} {:>11.3e}\n", l.name,
                           l.neurons, pop ? si(l.spikes) : "-",
                           pop ? fmt::format("{:.4f}", l.firing_rate) : "-",
                           dash_or(l.sops, l.sops > 0 || l.sops_estimated > 0),
                           dash_or(l.sops_estimated, l.sops_estimated > 0),
                           dash_or(l.macs, l.macs > 0), l.energy_mj);
    }
    out += fmt::format("{:<26} {:>8} {:>10} {:>7} {:>10} {:>10} {:>9} {:>11.3e}\n",
                       "total per sample", "", si(r.spikes), "", si(r.sops), si(r.sops_estimated),
                       si(r.macs), r.energy_mj);
    for (const auto& a : r.attention)
        out += fmt::format("blocks/{}/attn: fr_attn {:.4f}  fr_out {:.4f}  SOPs QK^T {}  A.V {}\n",
                           a.block, a.fr_attn, a.fr_out, si(a.sops_qk), si(a.sops_av));
    out += fmt::format(
        "accuracy {:.2f}% ({}/{}); energy {:.4e} mJ per sample ({:.0f} fJ/SOP, {:.2f} pJ/MAC); "
        "{:.3f} ms per sample, {:.2f} s wall on {} threads\n",
        100 * r.accuracy(), r.correct, r.samples, r.energy_mj, r.energy.joules_per_sop * 1e15,
        r.energy.joules_per_mac * 1e12, 1e3 * r.seconds_per_sample, r.wall_seconds, r.threads);
    if (r.nonfinite_samples)
        out += fmt::format(
            "WARNING: {} of {} samples gave NaN or infinite logits; their predictions and the "
            "accuracy are meaningless\n",
            r.nonfinite_samples, r.samples);
    return out;
}

std::string format_side_by_side(const std::vector<RunReport>& reports) {
    if (reports.empty()) return {};
    for (const auto& r : reports)
        if (r.layers.size() != reports[0].layers.size())
            throw ConfigError("side-by-side reports need models of the same architecture");
    std::string out = "columns per model: firing rate | SOPs counted | SOPs est. | energy mJ\n";
    for (std::size_t i = 0; i < reports.size(); ++i)
        out += fmt::format("  [{}] {} ({}), {} samples\n", i + 1, reports[i].model,
                           reports[i].variant, reports[i].samples);
    // One data line when every model read the same; else one per model (event models bin
    // recordings as each was trained, ModelSpec::input_split_by).
    const bool same_data = std::all_of(reports.begin(), reports.end(),
                                       [&](const auto& r) { return r.data == reports[0].data; });
    if (same_data && !reports[0].data.empty())
        out += fmt::format("data: {}\n", reports[0].data);
    else if (!same_data)
        for (std::size_t i = 0; i < reports.size(); ++i)
            out += fmt::format("data [{}]: {}\n", i + 1, reports[i].data);
    out += fmt::format("{:<26}", "layer");
    for (std::size_t i = 0; i < reports.size(); ++i)
        out += fmt::format(" | {:>7} {:>9} {:>9} {:>9}", fmt::format("fr[{}]", i + 1), "SOPs",
                           "est.", "mJ");
    out += "\n";
    for (std::size_t l = 0; l < reports[0].layers.size(); ++l) {
        out += fmt::format("{:<26}", reports[0].layers[l].name);
        for (const auto& r : reports) {
            const auto& x = r.layers[l];
            const bool pop = x.kind != LayerKind::head;
            out += fmt::format(
                " | {:>7} {:>9} {:>9} {:>9.2e}", pop ? fmt::format("{:.4f}", x.firing_rate) : "-",
                x.sops > 0 ? si(x.sops) : (x.macs > 0 ? si(x.macs) + "*" : "0"),
                x.sops_estimated > 0 ? si(x.sops_estimated)
                                     : (x.macs_estimated > 0 ? si(x.macs_estimated) + "*" : "-"),
                x.energy_mj);
        }
        out += "\n";
    }
    out += fmt::format("{:<26}", "total per sample");
    for (const auto& r : reports)
        out += fmt::format(" | {:>7} {:>9} {:>9} {:>9.2e}", "", si(r.sops), si(r.sops_estimated),
                           r.energy_mj);
    out += "\n(* = MACs on real-valued input)\n";
    for (std::size_t b = 0; b < reports[0].attention.size(); ++b) {
        out += fmt::format("blocks/{}/attn fr_attn / fr_out:", b);
        for (std::size_t i = 0; i < reports.size(); ++i)
            out += fmt::format("  [{}] {:.4f} / {:.4f}", i + 1, reports[i].attention[b].fr_attn,
                               reports[i].attention[b].fr_out);
        out += "\n";
    }
    out += "accuracy:";
    for (std::size_t i = 0; i < reports.size(); ++i)
        out += fmt::format("  [{}] {:.2f}%", i + 1, 100 * reports[i].accuracy());
    out += "\nenergy mJ per sample:";
    for (std::size_t i = 0; i < reports.size(); ++i)
        out += fmt::format("  [{}] {:.4e}", i + 1, reports[i].energy_mj);
    out += "\nms per sample:";
    for (std::size_t i = 0; i < reports.size(); ++i)
        out += fmt::format("  [{}] {:.3f}", i + 1, 1e3 * reports[i].seconds_per_sample);
    out += "\n";
    return out;
}

namespace {

nlohmann::json json_of(const RunReport& r) {
    using nlohmann::json;
    json layers = json::array();
    for (const auto& l : r.layers) {
        // the head holds no spiking population: no spikes and no firing rate (the table's "-")
        const bool pop = l.kind != LayerKind::head;
        layers.push_back({{"name", l.name},
                          {"neurons", l.neurons},
                          {"spikes", pop ? json(l.spikes) : json(nullptr)},
                          {"firing_rate", pop ? json(l.firing_rate) : json(nullptr)},
                          {"sops", l.sops},
                          {"sops_estimated", l.sops_estimated},
                          {"macs", l.macs},
                          {"macs_estimated", l.macs_estimated},
                          {"membrane_updates", l.membrane_updates},
                          {"energy_mj", l.energy_mj},
                          {"sops_per_step", l.sops_per_step},
                          {"spikes_per_step", l.spikes_per_step}});
    }
    json attention = json::array();
    for (const auto& a : r.attention)
        attention.push_back({{"block", a.block},
                             {"fr_attn", a.fr_attn},
                             {"fr_out", a.fr_out},
                             {"sops_qk", a.sops_qk},
                             {"sops_av", a.sops_av}});
    return {{"model", r.model},
            {"variant", r.variant},
            {"data", r.data},
            {"accuracy", r.accuracy()},
            {"correct", r.correct},
            {"samples", r.samples},
            {"nonfinite_samples", r.nonfinite_samples},
            {"time_steps", r.time_steps},
            {"layers", layers},
            {"attention", attention},
            {"per_sample",
             {{"sops", r.sops},
              {"sops_estimated", r.sops_estimated},
              {"macs", r.macs},
              {"membrane_updates", r.membrane_updates},
              {"spikes", r.spikes},
              {"energy_mj", r.energy_mj},
              {"seconds", r.seconds_per_sample}}},
            {"energy_model",
             {{"joules_per_sop", r.energy.joules_per_sop},
              {"joules_per_mac", r.energy.joules_per_mac}}},
            {"wall_seconds", r.wall_seconds},
            {"threads", r.threads}};
}

}  // namespace

std::string to_json(const RunReport& r) {
    return json_of(r).dump(2);
}

std::string to_json(const std::vector<RunReport>& reports) {
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : reports) runs.push_back(json_of(r));
    return nlohmann::json{{"runs", runs}}.dump(2);
}

namespace {

// A CSV field as RFC 4180 has it: quoted when it holds a comma, a quote, a line break or
// surrounding blanks, with quotes doubled.
std::string csv_field(const std::string& s) {
    const bool plain = s.find_first_of(",\"\r\n") == std::string::npos &&
                       (s.empty() || (s.front() != ' ' && s.back() != ' '));
    if (plain) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

}  // namespace

std::string to_csv(const std::vector<RunReport>& reports) {
    std::string out =
        "model,variant,layer,neurons,spikes,firing_rate,sops,sops_estimated,macs,"
        "membrane_updates,energy_mj\n";
    for (const auto& r : reports)
        for (const auto& l : r.layers) {
            // the head has no spikes or firing rate: empty fields, as null in JSON
            const bool pop = l.kind != LayerKind::head;
            out += fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(r.model),
                               csv_field(r.variant), csv_field(l.name), l.neurons,
                               pop ? fmt::format("{}", l.spikes) : "",
                               pop ? fmt::format("{}", l.firing_rate) : "", l.sops,
                               l.sops_estimated, l.macs, l.membrane_updates, l.energy_mj);
        }
    return out;
}

}  // namespace evformer::tools
