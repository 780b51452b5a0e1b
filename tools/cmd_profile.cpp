// `evformer profile [MODEL.h5 …]`: the per-layer table of several weights files side by side
// (e.g. ssa vs ssa-bin: the paper's Tables 1 and 2 in one command). With no model arguments it
// profiles the shipped Fashion-MNIST models on 300 test images and writes out/raster.h5.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/idx.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/weights.hpp"

namespace evformer::tools {
namespace {

struct ProfileOptions {
    std::vector<std::string> models;
    std::string data = "fashion-mnist";
    std::string split = "test";
    std::size_t limit = 300;
    std::size_t threads = 0;
    std::string json, csv;
    std::string raster = "out/raster.h5";
    std::size_t raster_samples = 4;
    double sop_fj = 77.0;
    double mac_pj = 4.6;
};

void profile(ProfileOptions opt) {
    if (opt.models.empty())
        opt.models = {"examples/models/fmnist-ssa-bin.h5", "examples/models/fmnist-ssa.h5"};
    for (const auto& m : opt.models)
        if (!std::filesystem::exists(m))
            throw FileError(m, -1,
                            "no such weights file (train one with evformer train, or "
                            "pass weights files as arguments)");
    const auto data = io::load_mnist_like(io::resolve_dataset_dir(opt.data), opt.split);
    std::vector<sim::RunReport> reports;
    for (std::size_t i = 0; i < opt.models.size(); ++i) {
        models::SimulationOptions so;
        so.limit = opt.limit;
        so.threads = opt.threads;
        so.raster_samples = (i == 0 && !opt.raster.empty()) ? opt.raster_samples : 0;
        so.energy.joules_per_sop = opt.sop_fj * 1e-15;
        so.energy.joules_per_mac = opt.mac_pj * 1e-12;
        const auto weights = models::load_weights(opt.models[i]);
        auto result = models::simulate_dataset(weights, data, so, opt.models[i]);
        if (so.raster_samples) {
            const auto parent = std::filesystem::path(opt.raster).parent_path();
            if (!parent.empty()) std::filesystem::create_directories(parent);
            models::write_rasters(opt.raster, result.rasters);
        }
        reports.push_back(std::move(result.report));
    }
    if (!opt.json.empty()) write_text(opt.json, sim::to_json(reports) + "\n");
    if (!opt.csv.empty()) write_text(opt.csv, sim::to_csv(reports));
    if (opt.json != "-" && opt.csv != "-") {
        fmt::print("{}", sim::format_side_by_side(reports));
        if (!opt.raster.empty())
            fmt::print("rasters of {} samples of [1] written to {}\n",
                       std::min(opt.raster_samples, reports[0].samples), opt.raster);
    }
}

const RegisterCommand reg("profile", [](CLI::App& app) {
    auto opt = std::make_shared<ProfileOptions>();
    auto* cmd = app.add_subcommand(
        "profile",
        "Per-layer firing rates, SOPs and energy of several weights files side by "
        "side (default: the shipped fmnist-ssa-bin and fmnist-ssa models)");
    cmd->add_option("models", opt->models,
                    "Weights files (default examples/models/fmnist-ssa-bin.h5 "
                    "examples/models/fmnist-ssa.h5)");
    cmd->add_option("--data", opt->data, "Dataset: fashion-mnist or a folder of IDX files");
    cmd->add_option("--split", opt->split, "train or test (default test)")
        ->check(CLI::IsMember({"train", "test"}));
    cmd->add_option("--limit", opt->limit, "Samples per model (default 300; 0 = all)");
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)");
    cmd->add_option("--json", opt->json, "Write all reports as JSON to FILE ('-' = stdout)");
    cmd->add_option("--csv", opt->csv, "Write the per-layer rows as CSV to FILE ('-' = stdout)");
    cmd->add_option("--raster", opt->raster,
                    "Rasters of the first model's first samples (default out/raster.h5; '' = "
                    "none)");
    cmd->add_option("--raster-samples", opt->raster_samples, "Samples to record (default 4)");
    cmd->add_option("--sop-energy-fj", opt->sop_fj, "Energy per SOP in fJ (default 77)");
    cmd->add_option("--mac-energy-pj", opt->mac_pj, "Energy per MAC in pJ (default 4.6)");
    cmd->callback([opt] { profile(*opt); });
});

}  // namespace
}  // namespace evformer::tools
