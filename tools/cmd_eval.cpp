// `evformer eval MODEL.h5`: accuracy, per-class accuracy and firing rates of trained weights on
// an image dataset split.
#include <fmt/format.h>
#include <tbb/global_control.h>

#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/models/trainer.hpp"
#include "option_groups.hpp"

namespace evformer::tools {
namespace {

struct EvalOptions {
    std::string model;
    DataOptions data;
    std::size_t batch = 128;
    std::size_t threads = 0;
    std::string json;
};

void run_eval(const EvalOptions& opt) {
    const std::vector<NamedPath> outputs{{"--json", opt.json}};
    std::vector<NamedPath> inputs = dataset_inputs(opt.data);
    inputs.push_back({"model", opt.model});
    check_distinct_files(inputs, outputs);
    prepare_outputs(outputs);
    const auto limit = limit_threads(threads_to_use(opt.threads));
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
    warn_nonfinite(opt.model, r.nonfinite_samples, r.samples);
    // a class with no samples has no accuracy: null, not 0
    nlohmann::json per_class = nlohmann::json::array();
    for (std::size_t c = 0; c < r.per_class.size(); ++c)
        per_class.push_back(r.per_class_samples[c] ? nlohmann::json(r.per_class[c])
                                                   : nlohmann::json(nullptr));
    if (!opt.json.empty()) {
        nlohmann::json j{{"model", opt.model},
                         {"variant", models::info(weights.spec.attention.variant).name},
                         {"data", data->describe()},
                         {"split", opt.data.split},
                         {"accuracy", r.accuracy},
                         {"samples", r.samples},
                         {"nonfinite_samples", r.nonfinite_samples},
                         {"per_class", per_class},
                         {"per_class_samples", r.per_class_samples},
                         {"firing_rates", rates}};
        write_text(opt.json, j.dump(2) + "\n");
        if (opt.json == "-") return;
    }
    fmt::print("{} ({}) on {}: accuracy {:.2f}% on {} samples\n", opt.model,
               models::info(weights.spec.attention.variant).name, data->describe(),
               100 * r.accuracy, r.samples);
    fmt::print("  per class:");
    for (std::size_t c = 0; c < r.per_class.size(); ++c)
        fmt::print("{} {}", c ? "," : "",
                   r.per_class_samples[c] ? fmt::format("{}: {:.1f}%", c, 100 * r.per_class[c])
                                          : fmt::format("{}: no samples", c));
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
    cmd->get_option("--limit")->check(count_in());
    cmd->add_option("--batch", opt->batch, "Batch size")->check(count_in(1, 4096));
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--json", opt->json,
                    "Write the results as JSON to FILE ('-' = stdout instead of the text)");
    cmd->callback([opt] { run_eval(*opt); });
});

}  // namespace
}  // namespace evformer::tools
