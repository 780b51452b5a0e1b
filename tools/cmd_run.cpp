// `evformer run MODEL.h5 --data …`: simulates a dataset sample by sample with the event-driven
// engine and reports accuracy, per-layer spikes, firing rates, counted and estimated SOPs, MACs
// and energy, fr_attn/fr_out per block, per-sample totals and the time taken; optionally as JSON
// or CSV, with spike rasters exported to HDF5.
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

struct RunOptions {
    std::string model;
    DataOptions data;
    std::size_t threads = 0;
    std::string json, csv, raster;
    std::size_t raster_samples = 4;
    std::vector<std::string> raster_layers;
    EnergyOptions energy;
};

void run(const RunOptions& opt) {
    const std::vector<NamedPath> outputs{
        {"--json", opt.json}, {"--csv", opt.csv}, {"--raster", opt.raster}};
    const auto energy = opt.energy.model();
    std::vector<NamedPath> inputs = dataset_inputs(opt.data);
    inputs.push_back({"model", opt.model});
    check_distinct_files(inputs, outputs);
    prepare_outputs(outputs);
    const auto weights = models::load_weights(opt.model);
    const auto data = open_data(opt.data, weights.spec);
    models::SimulationOptions so;
    so.threads = threads_to_use(opt.threads);
    so.raster_samples = opt.raster.empty() ? 0 : opt.raster_samples;
    so.raster_layers = opt.raster_layers;
    so.energy = energy;
    const auto result = models::simulate_dataset(weights, *data, so, opt.model);
    warn_nonfinite(opt.model, result.report.nonfinite_samples, result.report.samples);
    if (!opt.raster.empty()) models::write_rasters(opt.raster, result.rasters);
    if (!opt.json.empty()) write_text(opt.json, to_json(result.report) + "\n");
    if (!opt.csv.empty()) write_text(opt.csv, to_csv({result.report}));
    if (opt.json != "-" && opt.csv != "-") {
        fmt::print("{}", format_table(result.report));
        if (!opt.raster.empty())
            fmt::print("rasters of {} samples written to {}\n", result.rasters.samples.size(),
                       opt.raster);
    }
}

const RegisterCommand reg("run", [](CLI::App& app) {
    auto opt = std::make_shared<RunOptions>();
    auto* cmd = app.add_subcommand(
        "run",
        "Simulate a dataset event by event: accuracy, per-layer spikes, firing rates, "
        "SOPs (counted and estimated), MACs, energy, fr_attn/fr_out, rasters");
    cmd->add_option("model", opt->model, "Weights file (HDF5) written by evformer train")
        ->required();
    add_data_options(cmd, opt->data, "Simulate only the first N samples (0 = all)");
    cmd->get_option("--limit")->check(count_in());
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--json", opt->json, "Write the report as JSON to FILE ('-' = stdout)");
    cmd->add_option("--csv", opt->csv, "Write the per-layer table as CSV to FILE ('-' = stdout)");
    auto* raster =
        cmd->add_option("--raster", opt->raster, "Write spike rasters to this HDF5 file");
    cmd->add_option("--raster-samples", opt->raster_samples,
                    "Record rasters of the first N samples (default 4; needs --raster)")
        ->check(count_in(1))
        ->needs(raster);
    cmd->add_option("--raster-layers", opt->raster_layers,
                    "Populations to record, e.g. sps/lif0,blocks/0/attn/attn_lif (default all; "
                    "needs --raster)")
        ->delimiter(',')
        ->needs(raster);
    add_energy_options(cmd, opt->energy);
    cmd->callback([opt] { run(*opt); });
});

}  // namespace
}  // namespace evformer::tools
