// `evformer nir info FILE`: a NIR graph file's nodes (name, type, shape, parameter count), edges
// and the problems that keep the engine from running it; `evformer nir convert IN OUT`: reads a
// NIR graph into the engine's graph and writes it back as NIR (docs/nir.md).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/nir.hpp"
#include "evformer/models/weights.hpp"

namespace evformer::tools {
namespace {

struct NirOptions {
    std::string file, out;
    std::int64_t dt_us = 1000;
    bool json = false;
};

models::NirImportOptions import_options(const NirOptions& o) {
    models::NirImportOptions i;
    i.dt = double(o.dt_us) * 1e-6;
    return i;
}

void info(const NirOptions& o) {
    const auto s = models::summarize_nir(o.file, import_options(o));
    if (o.json) {
        nlohmann::json j;
        j["file"] = o.file;
        j["version"] = s.version;
        j["nodes"] = nlohmann::json::array();
        for (const auto& r : s.nodes)
            j["nodes"].push_back({{"name", r.name},
                                  {"type", r.type},
                                  {"shape", r.shape},
                                  {"parameters", r.parameters}});
        j["edges"] = s.edges;
        j["problems"] = s.problems;
        fmt::print("{}\n", j.dump(2));
    } else {
        std::size_t parameters = 0;
        for (const auto& r : s.nodes) parameters += r.parameters;
        fmt::print("{}: NIR {}, {} nodes, {} edges, {} parameters\n", o.file, s.version,
                   s.nodes.size(), s.edges.size(), parameters);
        fmt::print("{:<24} {:<10} {:>16} {:>12}\n", "node", "type", "shape", "parameters");
        for (const auto& r : s.nodes)
            fmt::print("{:<24} {:<10} {:>16} {:>12}\n", r.name, r.type,
                       r.shape.empty() ? "?" : r.shape, r.parameters);
        fmt::print("edges:\n");
        for (const auto& [a, b] : s.edges) fmt::print("  {} -> {}\n", a, b);
        if (s.problems.empty())
            fmt::print("problems: none (the engine runs it with dt = {} us)\n", o.dt_us);
        else
            for (const auto& p : s.problems) fmt::print("problem: {}\n", p);
    }
    if (!s.problems.empty()) exit_code() = 1;
}

void convert(const NirOptions& o) {
    check_distinct_files({{"input", o.file}}, {{"output", o.out}});
    prepare_outputs({{"output", o.out}});
    const double dt = double(o.dt_us) * 1e-6;
    // an evformer weights file (a trained Spikformer) or a NIR graph
    const sim::Graph g = models::is_nir_file(o.file)
                             ? models::read_nir_graph(o.file, import_options(o))
                             : models::build_network(models::load_weights(o.file)).graph();
    const auto nir = models::graph_to_nir(g, dt);
    io::nir::write(o.out, nir);
    fmt::print("{}: {} nodes, {} edges written to {} (NIR, dt = {} us)\n", o.file, nir.nodes.size(),
               nir.edges.size(), o.out, o.dt_us);
}

const RegisterCommand reg("nir", [](CLI::App& app) {
    auto* nir = app.add_subcommand("nir", "NIR graph files: inspect and convert");
    nir->require_subcommand(1);
    auto opt = std::make_shared<NirOptions>();
    auto* i = nir->add_subcommand(
        "info", "Print a NIR file's nodes, types, shapes, parameter counts, edges and problems");
    i->add_option("file", opt->file, "NIR file (HDF5)")->required();
    i->add_option("--dt", opt->dt_us, "Time step in us used to check the graph (default 1000)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    i->add_flag("--json", opt->json, "Print JSON instead of the table");
    i->callback([opt] { info(*opt); });
    auto* c = nir->add_subcommand(
        "convert",
        "Write a NIR file from a NIR file (read into the engine's graph and back) or from an "
        "evformer weights file (a trained Spikformer; attention and readout as evformer.* "
        "extension nodes)");
    c->add_option("file", opt->file, "NIR file or evformer weights file (HDF5) to read")
        ->required();
    c->add_option("out", opt->out, "NIR file to write")->required();
    c->add_option("--dt", opt->dt_us, "Time step in us (default 1000)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    c->callback([opt] { convert(*opt); });
});

}  // namespace
}  // namespace evformer::tools
