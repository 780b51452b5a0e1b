// `evformer eval MODEL.h5`: accuracy, per-class accuracy and firing rates of trained weights on
// an image dataset split.
#include <fmt/format.h>
#include <tbb/global_control.h>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "data_options.hpp"
#include "evformer/error.hpp"
#include "evformer/models/trainer.hpp"

namespace evformer::tools {
namespace {

struct EvalOptions {
    std::string model;
    DataOptions data;
    std::size_t batch = 128;
    std::size_t threads = 0;
    bool json = false;
};

void run_eval(const EvalOptions& opt) {
    const auto limit = limit_threads(opt.threads);
    const auto weights = models::load_weights(opt.model);
    const auto data = open_data(opt.data, weights.spec);
    models::DenseSpikformer net(weights);
    const auto r = models::evaluate(net, *data, 0, opt.batch);
    nlohmann::json rates = nlohmann::json::object();
    for (const auto& name : net.population_names()) rates[name] = r.counts.rate(name);
    nlohmann::json fr_attn = nlohmann::json::array(), fr_out = nlohmann::json::array();
    for (std::size_t l = 0; l < weights.spec.blocks; ++l) {
        fr_attn.push_back(r.counts.fr_attn(l));
        fr_out.push_back(r.counts.fr_out(l));
    }
    rates["fr_attn"] = fr_attn;
    rates["fr_out"] = fr_out;
    if (opt.json) {
        nlohmann::json j{
            {"model", opt.model},       {"variant", sim::info(weights.spec.attention.variant).name},
            {"data", data->describe()}, {"split", opt.data.split},
            {"accuracy", r.accuracy},   {"samples", r.samples},
            {"per_class", r.per_class}, {"firing_rates", rates}};
        fmt::print("{}\n", j.dump(2));
        return;
    }
    fmt::print("{} ({}) on {}: accuracy {:.2f}% on {} samples\n", opt.model,
               sim::info(weights.spec.attention.variant).name, data->describe(), 100 * r.accuracy,
               r.samples);
    fmt::print("  per class:");
    for (double a : r.per_class) fmt::print(" {:.1f}", 100 * a);
    fmt::print("\n");
    for (std::size_t l = 0; l < weights.spec.blocks; ++l)
        fmt::print("  block {}: fr_attn {:.4f}, fr_out {:.4f}\n", l, r.counts.fr_attn(l),
                   r.counts.fr_out(l));
    for (const auto& name : net.population_names())
        fmt::print("  {:<28} firing rate {:.4f}\n", name, r.counts.rate(name));
}

const RegisterCommand reg("eval", [](CLI::App& app) {
    auto opt = std::make_shared<EvalOptions>();
    auto* cmd = app.add_subcommand("eval",
                                   "Accuracy, per-class accuracy and firing rates of a "
                                   "weights file on a dataset split");
    cmd->add_option("model", opt->model, "Weights file (HDF5)")->required();
    add_data_options(cmd, opt->data, "Evaluate the first N samples only (0 = all)");
    cmd->add_option("--batch", opt->batch, "Batch size")->check(CLI::Range(1, 4096));
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)");
    cmd->add_flag("--json", opt->json, "Machine-readable output");
    cmd->callback([opt] { run_eval(*opt); });
});

}  // namespace
}  // namespace evformer::tools
