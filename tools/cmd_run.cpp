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
#include "evformer/io/samples.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/nir.hpp"
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
    std::size_t nir_steps = 0;    ///< --T: steps of a NIR graph run
    bool split_by_given = false;  ///< --split-by was on the command line
};

// A NIR graph: the recordings are binned into T bins of --dt µs from each recording's first event
// (as frameworks bin for NIR graphs: tonic's ToFrame(time_window = dt)), and dt is also the
// graph's time step for its continuous-time neurons.
// An explicit --split-by number|time bins into T frames by that rule instead (an exported
// Spikformer's own binning); dt is then only the graph's time step.
models::SimulationResult run_nir(const RunOptions& opt, const sim::EnergyModel& energy) {
    const std::string rule = opt.split_by_given ? opt.data.split_by : "duration";
    const std::int64_t dt_us = opt.data.dt_us ? opt.data.dt_us : 1000;
    const std::size_t steps = opt.nir_steps ? opt.nir_steps : 300;
    models::NirImportOptions import;
    import.dt = double(dt_us) * 1e-6;
    const sim::Network net(models::read_nir_graph(opt.model, import), steps);
    io::SampleOptions o;
    o.data = opt.data.data.empty() ? shipped_path(kShippedEventData) : opt.data.data;
    if (io::is_image_dataset(o.data))
        throw ConfigError("a NIR graph runs on event recordings; " + o.data + " holds images");
    o.split = opt.data.split;
    o.limit = opt.data.limit;
    o.frames.frames = steps;
    o.frames.split_by = rule == "number" ? io::SplitBy::number
                        : rule == "time" ? io::SplitBy::time
                                         : io::SplitBy::duration;
    o.frames.dt_us = rule == "duration" ? dt_us : 0;
    const auto& in = net.input_shape();
    if (in.channels != 2)
        throw ConfigError(
            fmt::format("{}: the graph's input is {}; event recordings give 2 "
                        "polarity channels",
                        opt.model, in.str()));
    o.frames.out_width = static_cast<std::uint32_t>(in.width);
    o.frames.out_height = static_cast<std::uint32_t>(in.height);
    o.label = io::parse_cifar_label(opt.data.label);
    const auto data = io::open_samples(o);
    models::SimulationOptions so;
    so.threads = threads_to_use(opt.threads);
    so.raster_samples = opt.raster.empty() ? 0 : opt.raster_samples;
    so.raster_layers = opt.raster_layers;
    so.energy = energy;
    return models::simulate_network(net, *data, so, opt.model, "nir");
}

void run(const RunOptions& opt) {
    const std::vector<NamedPath> outputs{
        {"--json", opt.json}, {"--csv", opt.csv}, {"--raster", opt.raster}};
    const auto energy = opt.energy.model();
    std::vector<NamedPath> inputs = dataset_inputs(opt.data);
    inputs.push_back({"model", opt.model});
    check_distinct_files(inputs, outputs);
    prepare_outputs(outputs);
    models::SimulationResult result;
    if (models::is_nir_file(opt.model)) {
        result = run_nir(opt, energy);
    } else {
        if (opt.nir_steps)
            throw ConfigError(
                "--T is the number of steps of a NIR graph; an evformer model runs "
                "the T stored in its weights file");
        const auto weights = models::load_weights(opt.model);
        const auto data = open_data(opt.data, weights.spec);
        models::SimulationOptions so;
        so.threads = threads_to_use(opt.threads);
        so.raster_samples = opt.raster.empty() ? 0 : opt.raster_samples;
        so.raster_layers = opt.raster_layers;
        so.energy = energy;
        result = models::simulate_dataset(weights, *data, so, opt.model);
    }
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
    cmd->add_option("model", opt->model,
                    "Weights file (HDF5) written by evformer train, or a NIR graph file (.nir: "
                    "binned by --dt us, default 1000, into --T steps)")
        ->required();
    cmd->add_option("--T", opt->nir_steps,
                    "NIR graphs: time steps per recording (default 300; bins after the last "
                    "are empty)")
        ->check(count_in(1, 1000000));
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
    cmd->callback([opt, cmd] {
        opt->split_by_given = cmd->count("--split-by") > 0;
        run(*opt);
    });
});

}  // namespace
}  // namespace evformer::tools
