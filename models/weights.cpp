#include "evformer/models/weights.hpp"

#include <fmt/format.h>

#include <cmath>
#include <set>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/models/spikformer.hpp"

namespace evformer::models {
namespace {

using Kind = ParameterInfo::Kind;

// Every dataset in the file under `group`, by path ("a/b/c"), skipping the provenance group.
void list_datasets(const io::h5::Reader& r, const std::string& group,
                   std::vector<std::string>& out) {
    for (const auto& name : r.list(group.empty() ? "/" : group)) {
        const std::string path = group.empty() ? name : group + "/" + name;
        if (path == "provenance") continue;
        if (r.is_dataset(path))
            out.push_back(path);
        else if (r.is_group(path))
            list_datasets(r, path, out);
    }
}

}  // namespace

std::vector<ParameterInfo> parameter_layout(const ModelSpec& spec) {
    std::vector<ParameterInfo> out;
    for (auto& [name, slot] : spikformer_graph(spec).parameter_layout()) {
        Kind kind = Kind::weight;
        switch (slot.role) {
            case sim::ParamRole::weight:
                kind = Kind::weight;
                break;
            case sim::ParamRole::bias:
                kind = Kind::bias;
                break;
            case sim::ParamRole::bn_weight:
                kind = Kind::bn_weight;
                break;
            case sim::ParamRole::bn_bias:
                kind = Kind::bn_bias;
                break;
            case sim::ParamRole::bn_mean:
                kind = Kind::bn_mean;
                break;
            case sim::ParamRole::bn_var:
                kind = Kind::bn_var;
                break;
            case sim::ParamRole::statistic:
                kind = Kind::attn_stat;
                break;
            case sim::ParamRole::time_constant:
            case sim::ParamRole::neuron:
            case sim::ParamRole::delay_time:
                throw ConfigError(
                    "parameter_layout: the Spikformer has no NIR neuron parameters (" + name + ")");
        }
        out.push_back({name, std::move(slot.shape), kind});
    }
    return out;
}

const Tensor& ModelWeights::at(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw ConfigError("weights: no tensor '" + name + "'");
    return it->second;
}

Tensor& ModelWeights::at(const std::string& name) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw ConfigError("weights: no tensor '" + name + "'");
    return it->second;
}

void ModelWeights::validate() const {
    const auto layout = parameter_layout(spec);
    std::set<std::string> expected;
    for (const auto& p : layout) {
        expected.insert(p.name);
        auto it = tensors.find(p.name);
        if (it == tensors.end())
            throw ConfigError(fmt::format("weights: tensor '{}' is missing (expected shape {})",
                                          p.name, io::h5::shape_string(p.shape)));
        const auto& t = it->second;
        if (t.shape != p.shape)
            throw ConfigError(fmt::format("weights: tensor '{}' has shape {}, expected {}", p.name,
                                          io::h5::shape_string(t.shape),
                                          io::h5::shape_string(p.shape)));
        if (t.data.size() != io::h5::element_count(t.shape))
            throw ConfigError(fmt::format("weights: tensor '{}' holds {} values for shape {}",
                                          p.name, t.data.size(), io::h5::shape_string(t.shape)));
        for (float v : t.data)
            if (!std::isfinite(v))
                throw ConfigError(
                    fmt::format("weights: tensor '{}' has a non-finite value", p.name));
        if (p.kind == Kind::bn_var)
            for (float v : t.data)
                if (v < 0)
                    throw ConfigError(fmt::format(
                        "weights: tensor '{}' has a negative running variance", p.name));
    }
    for (const auto& [name, t] : tensors)
        if (!expected.count(name))
            throw ConfigError(fmt::format(
                "weights: unexpected tensor '{}' (not part of a model of this spec)", name));
}

ModelWeights zero_weights(const ModelSpec& spec) {
    ModelWeights w;
    w.spec = spec;
    for (const auto& p : parameter_layout(spec)) {
        Tensor t;
        t.shape = p.shape;
        const float fill = (p.kind == Kind::bn_weight || p.kind == Kind::bn_var) ? 1.f : 0.f;
        t.data.assign(io::h5::element_count(p.shape), fill);
        w.tensors.emplace(p.name, std::move(t));
    }
    return w;
}

void save_weights(const ModelWeights& weights, const std::filesystem::path& path) {
    weights.validate();
    io::h5::Writer w(path);
    w.attr("/", "format", std::string(kWeightsFormat));
    w.attr("/", "format_version", kWeightsFormatVersion);
    w.attr("/", "spec", weights.spec.to_json());
    for (const auto& p : parameter_layout(weights.spec)) {
        const auto& t = weights.tensors.at(p.name);
        w.write<float>(p.name, t.data, t.shape);
    }
    const auto& pr = weights.provenance;
    w.group("provenance");
    w.attr("provenance", "dataset", pr.dataset);
    w.attr("provenance", "epochs", static_cast<std::int64_t>(pr.epochs));
    w.attr("provenance", "seed", static_cast<std::int64_t>(pr.seed));
    w.attr("provenance", "accuracy", pr.accuracy);
    w.attr("provenance", "command", pr.command);
    w.attr("provenance", "created", pr.created);
    w.attr("provenance", "tool_version", pr.tool_version);
    w.commit();
}

ModelWeights load_weights(const std::filesystem::path& path) {
    io::h5::Reader r(path);
    const auto file = path.string();
    if (!r.has_attr("/", "format") || r.attr_string("/", "format") != kWeightsFormat)
        throw FileError(file, -1,
                        fmt::format("not an evformer weights file (root attribute 'format' "
                                    "should be '{}')",
                                    kWeightsFormat));
    const auto version = r.attr_int("/", "format_version");
    if (version != kWeightsFormatVersion)
        throw FileError(file, -1,
                        fmt::format("weights format version {}, this evformer reads version {}",
                                    version, kWeightsFormatVersion));
    ModelWeights w;
    try {
        w.spec = ModelSpec::from_json(r.attr_string("/", "spec"));
    } catch (const ConfigError& e) {
        throw FileError(file, -1, std::string("root attribute 'spec': ") + e.what());
    }
    const auto layout = parameter_layout(w.spec);
    // Loading is strict: a tensor the spec does not name (e.g. a second block in a file whose
    // spec was edited to one block) is refused, never silently left unread.
    std::set<std::string> expected;
    for (const auto& p : layout) expected.insert(p.name);
    std::vector<std::string> present;
    list_datasets(r, "", present);
    for (const auto& name : present)
        if (!expected.count(name))
            throw FileError(file, -1,
                            fmt::format("unexpected tensor '{}': not part of the model its spec "
                                        "describes ({} blocks, dim {}, variant {}); the spec "
                                        "and the tensors disagree",
                                        name, w.spec.blocks, w.spec.dim,
                                        models::info(w.spec.attention.variant).name));
    for (const auto& p : layout) {
        if (!r.is_dataset(p.name))
            throw FileError(file, -1,
                            fmt::format("tensor '{}' is missing (expected shape {})", p.name,
                                        io::h5::shape_string(p.shape)));
        Tensor t;
        t.shape = p.shape;
        t.data = r.read<float>(p.name, p.shape);
        w.tensors.emplace(p.name, std::move(t));
    }
    if (r.is_group("provenance")) {
        auto text = [&](const char* key) {
            return r.has_attr("provenance", key) ? r.attr_string("provenance", key) : std::string();
        };
        auto& pr = w.provenance;
        pr.dataset = text("dataset");
        pr.command = text("command");
        pr.created = text("created");
        pr.tool_version = text("tool_version");
        if (r.has_attr("provenance", "epochs"))
            pr.epochs = static_cast<std::size_t>(r.attr_int("provenance", "epochs"));
        if (r.has_attr("provenance", "seed"))
            pr.seed = static_cast<std::uint64_t>(r.attr_int("provenance", "seed"));
        if (r.has_attr("provenance", "accuracy"))
            pr.accuracy = r.attr_number("provenance", "accuracy");
    }
    try {
        w.validate();
    } catch (const ConfigError& e) {
        throw FileError(file, -1, e.what());
    }
    return w;
}

}  // namespace evformer::models
