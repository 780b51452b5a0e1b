#include "evformer/models/raster.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"

namespace evformer::models {

std::string raster_node_name(const std::string& layer) {
    std::string s = layer;
    std::replace(s.begin(), s.end(), '/', '.');
    return s;
}

void write_rasters(const std::filesystem::path& path, const RasterFile& file) {
    namespace h5 = io::h5;
    const std::size_t samples = file.samples.size();
    const std::size_t populations = samples ? file.samples[0].rasters.size() : 0;
    for (const auto& s : file.samples)
        if (s.rasters.size() != populations)
            throw ConfigError("rasters: every sample must record the same populations");
    h5::Writer w(path);
    w.attr("/", "__type__", std::string("NIRGraphData"));
    w.attr("/", "format", std::string(kRasterFormat));
    w.attr("/", "format_version", std::int64_t{1});
    w.attr("/", "time_steps", static_cast<std::int64_t>(file.time_steps));
    w.attr("/", "model", file.model);
    // The self-description comes from the rasters themselves (set by the recorder that converts
    // the indices): one order for the file if all populations share it, else "per-node".
    std::string order;
    for (std::size_t p = 0; p < populations; ++p) {
        const auto& o = file.samples[0].rasters[p].neuron_order;
        if (o.empty())
            throw ConfigError("rasters: population '" + file.samples[0].rasters[p].name +
                              "' does not state its neuron order");
        order = order.empty() || order == o ? o : "per-node";
    }
    w.attr("/", "neuron_order", order);
    std::vector<std::int64_t> index, label, prediction;
    for (const auto& s : file.samples) {
        index.push_back(static_cast<std::int64_t>(s.index));
        label.push_back(static_cast<std::int64_t>(s.label));
        prediction.push_back(static_cast<std::int64_t>(s.prediction));
    }
    w.write<std::int64_t>("sample_index", index, {samples});
    w.write<std::int64_t>("label", label, {samples});
    w.write<std::int64_t>("prediction", prediction, {samples});
    w.group("nodes");
    for (std::size_t p = 0; p < populations; ++p) {
        const auto& first = file.samples[0].rasters[p];
        const std::string node = "nodes/" + raster_node_name(first.name);
        const std::string obs = node + "/observables/spikes";
        std::size_t width = 1;  // padded row length; at least 1 so no dataset is empty
        std::vector<std::int64_t> n_events;
        for (const auto& s : file.samples) {
            width = std::max(width, s.rasters[p].idx.size());
            n_events.push_back(static_cast<std::int64_t>(s.rasters[p].idx.size()));
        }
        std::vector<std::int64_t> idx(samples * width, -1);
        std::vector<double> time(samples * width, std::numeric_limits<double>::infinity());
        for (std::size_t s = 0; s < samples; ++s) {
            const auto& r = file.samples[s].rasters[p];
            if (r.name != first.name || r.neuron_order != first.neuron_order)
                throw ConfigError("rasters: population " + std::to_string(p) +
                                  " differs between samples");
            for (std::size_t e = 0; e < r.idx.size(); ++e) {
                idx[s * width + e] = r.idx[e];
                time[s * width + e] = r.time[e];
            }
        }
        std::size_t neurons = 1;
        std::vector<std::int64_t> shape;
        for (auto d : first.shape) {
            neurons *= d;
            shape.push_back(static_cast<std::int64_t>(d));
        }
        const h5::StorageOptions opt{samples > 0 ? 1u : 0u, 4};
        w.write<std::int64_t>(obs + "/idx", idx, {samples, width}, opt);
        w.write<double>(obs + "/time", time, {samples, width}, opt);
        w.write<std::int64_t>(obs + "/n_events", n_events, {samples});
        w.write<std::int64_t>(node + "/shape", shape, {shape.size()});
        w.attr(node, "layer", first.name);
        w.attr(node, "neuron_order", first.neuron_order);
        w.attr(node, "position", static_cast<std::int64_t>(p));
        w.attr(obs, "__type__", std::string("EventData"));
        w.attr(obs, "n_neurons", static_cast<std::int64_t>(neurons));
        w.attr(obs, "t_max", static_cast<double>(file.time_steps));
        w.attr(obs, "dt", 1.0);
    }
    w.commit();
}

RasterFile read_rasters(const std::filesystem::path& path) {
    io::h5::Reader r(path);
    const auto file = path.string();
    if (!r.has_attr("/", "format") || r.attr_string("/", "format") != kRasterFormat)
        throw FileError(file, -1,
                        std::string("not an evformer raster file (root attribute 'format' "
                                    "should be '") +
                            kRasterFormat + "')");
    RasterFile out;
    out.time_steps = static_cast<std::size_t>(r.attr_int("/", "time_steps"));
    out.model = r.attr_string("/", "model");
    const auto index = r.read<std::int64_t>("sample_index");
    const auto label = r.read<std::int64_t>("label", {index.size()});
    const auto prediction = r.read<std::int64_t>("prediction", {index.size()});
    const std::size_t samples = index.size();
    out.samples.resize(samples);
    for (std::size_t s = 0; s < samples; ++s)
        out.samples[s] = {
            std::size_t(index[s]), std::size_t(label[s]), std::size_t(prediction[s]), {}};
    // Populations in the order they were written (execution order), not HDF5's sorted order.
    std::vector<std::tuple<std::int64_t, std::string, std::string>>
        nodes;  // position, layer, group
    for (const auto& n : r.list("nodes"))
        nodes.emplace_back(r.attr_int("nodes/" + n, "position"),
                           r.attr_string("nodes/" + n, "layer"), n);
    std::sort(nodes.begin(), nodes.end());
    for (const auto& [position, layer, n] : nodes) {
        const std::string node = "nodes/" + n, obs = node + "/observables/spikes";
        const auto shape64 = r.read<std::int64_t>(node + "/shape");
        const auto dims = r.shape(obs + "/idx");
        if (dims.size() != 2 || dims[0] != samples)
            throw FileError(file, -1, obs + "/idx: expected shape (samples, events)");
        const auto idx = r.read<std::int64_t>(obs + "/idx");
        const auto time = r.read<double>(obs + "/time", dims);
        const auto n_events = r.read<std::int64_t>(obs + "/n_events", {samples});
        for (std::size_t s = 0; s < samples; ++s) {
            sim::Raster ras;
            ras.name = layer;
            if (r.has_attr(node, "neuron_order"))
                ras.neuron_order = r.attr_string(node, "neuron_order");
            for (auto d : shape64) ras.shape.push_back(std::size_t(d));
            if (n_events[s] < 0 || std::size_t(n_events[s]) > dims[1])
                throw FileError(file, -1, obs + "/n_events: more events than the row holds");
            for (std::size_t e = 0; e < std::size_t(n_events[s]); ++e) {
                ras.idx.push_back(static_cast<std::uint32_t>(idx[s * dims[1] + e]));
                ras.time.push_back(static_cast<std::uint32_t>(time[s * dims[1] + e]));
            }
            out.samples[s].rasters.push_back(std::move(ras));
        }
    }
    return out;
}

}  // namespace evformer::models
