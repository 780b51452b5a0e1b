// `evformer profile [MODEL.h5 …]`: the per-layer table of several weights files side by side
// (e.g. ssa vs ssa-bin: the paper's Tables 1 and 2 in one command). With no model arguments it
// profiles the shipped N-MNIST models on the shipped real test recordings (with --data
// fashion-mnist: the shipped Fashion-MNIST models on 300 test images) and writes out/raster.h5.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/weights.hpp"
#include "option_groups.hpp"
#include "report_output.hpp"

namespace evformer::tools {
namespace {

struct ProfileOptions {
    std::vector<std::string> models;
    DataOptions data;
    std::size_t threads = 0;
    std::string json, csv;
    std::string raster = "out/raster.h5";
    std::size_t raster_samples = 4;
    EnergyOptions energy;
};

void profile(ProfileOptions opt) {
    const bool images = !opt.data.data.empty() && io::is_image_dataset(opt.data.data);
    if (opt.models.empty() && images)
        opt.models = {shipped_path("examples/models/fmnist-ssa-bin.h5"),
                      shipped_path("examples/models/fmnist-ssa.h5")};
    if (opt.models.empty())
        opt.models = {shipped_path("examples/models/nmnist-ssa-bin.h5"),
                      shipped_path("examples/models/nmnist-ssa.h5")};
    for (const auto& m : opt.models)
        if (!std::filesystem::exists(m))
            throw FileError(m, -1,
                            "no such weights file (train one with evformer train, or "
                            "pass weights files as arguments)");
    std::vector<NamedPath> inputs = dataset_inputs(opt.data);
    for (const auto& m : opt.models) inputs.push_back({"model", m});
    const std::vector<NamedPath> outputs{
        {"--json", opt.json}, {"--csv", opt.csv}, {"--raster", opt.raster}};
    const auto energy = opt.energy.model();
    check_distinct_files(inputs, outputs);
    prepare_outputs(outputs);
    const std::size_t threads = threads_to_use(opt.threads);
    std::vector<sim::RunReport> reports;
    for (std::size_t i = 0; i < opt.models.size(); ++i) {
        const auto weights = models::load_weights(opt.models[i]);
        const auto data = open_data(opt.data, weights.spec);
        models::SimulationOptions so;
        so.threads = threads;
        so.raster_samples = (i == 0 && !opt.raster.empty()) ? opt.raster_samples : 0;
        so.energy = energy;
        auto result = models::simulate_dataset(weights, *data, so, opt.models[i]);
        warn_nonfinite(opt.models[i], result.report.nonfinite_samples, result.report.samples);
        if (so.raster_samples) models::write_rasters(opt.raster, result.rasters);
        reports.push_back(std::move(result.report));
    }
    if (!opt.json.empty()) write_text(opt.json, to_json(reports) + "\n");
    if (!opt.csv.empty()) write_text(opt.csv, to_csv(reports));
    if (opt.json != "-" && opt.csv != "-") {
        fmt::print("{}", format_side_by_side(reports));
        if (!opt.raster.empty())
            fmt::print("rasters of {} samples of [1] written to {}\n",
                       std::min(opt.raster_samples, reports[0].samples), opt.raster);
    }
}

const RegisterCommand reg("profile", [](CLI::App& app) {
    auto opt = std::make_shared<ProfileOptions>();
    opt->data.limit = 300;
    auto* cmd = app.add_subcommand(
        "profile",
        "Per-layer firing rates, SOPs and energy of several weights files side by "
        "side (default: the shipped nmnist-ssa-bin and nmnist-ssa models on the shipped N-MNIST "
        "test recordings; with --data fashion-mnist the fmnist models)");
    cmd->add_option("models", opt->models,
                    "Weights files (default examples/models/nmnist-ssa-bin.h5 "
                    "examples/models/nmnist-ssa.h5, or the fmnist models with --data "
                    "fashion-mnist)");
    add_data_options(cmd, opt->data, "Samples per model (default 300; 0 = all)");
    cmd->get_option("--limit")->check(count_in());
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--json", opt->json, "Write all reports as JSON to FILE ('-' = stdout)");
    cmd->add_option("--csv", opt->csv, "Write the per-layer rows as CSV to FILE ('-' = stdout)");
    cmd->add_option("--raster", opt->raster,
                    "Rasters of the first model's first samples (default out/raster.h5; '' = "
                    "none)");
    cmd->add_option("--raster-samples", opt->raster_samples, "Samples to record (default 4)")
        ->check(count_in(1));
    add_energy_options(cmd, opt->energy);
    cmd->callback([opt] { profile(*opt); });
});

}  // namespace
}  // namespace evformer::tools
