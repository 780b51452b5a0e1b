// `evformer bench presets [NAME…]`: what each model preset costs on this machine before a user
// commits to its recipe — trainable parameters against the published count, the time of one
// training step (dense forward + backward) and of one sample simulated event by event, all on
// seeded random weights and random input (the data sets need not be present).
#include <fmt/format.h>
#include <tbb/info.h>

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/network.hpp"
#include "evformer/models/presets.hpp"
#include "evformer/models/random_input.hpp"
#include "evformer/sim/network.hpp"

namespace evformer::tools {
namespace {

struct BenchPresetsOptions {
    std::vector<std::string> names;
    std::size_t batch = 2;
    std::size_t warmup = 1;
    std::size_t threads = 0;
    std::string json;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct PresetTiming {
    std::size_t parameters = 0;
    double train_step_s = 0;
    double engine_sample_s = 0;
    std::uint64_t sops = 0, macs = 0, input_events = 0;
};

PresetTiming time_preset(const models::ModelPreset& preset, const BenchPresetsOptions& opt) {
    const auto& spec = preset.spec;
    const bool events = spec.in_channels == 2;
    const auto layout =
        events ? models::InputLayout::event_frames : models::InputLayout::static_image;
    const auto weights = models::random_weights(spec, 7);
    PresetTiming t;
    t.parameters = models::trainable_parameter_count(spec);

    models::DenseSpikformer net(weights);
    std::vector<float> batch;
    std::vector<int> labels;
    for (std::size_t i = 0; i < opt.batch; ++i) {
        const auto x = models::random_input(spec, layout, 11 + i).dense;
        batch.insert(batch.end(), x.begin(), x.end());
        labels.push_back(static_cast<int>(i % spec.classes));
    }
    for (std::size_t i = 0; i < opt.warmup; ++i)
        net.train_step(batch.data(), labels.data(), opt.batch, {}, layout);
    const auto t0 = std::chrono::steady_clock::now();
    net.train_step(batch.data(), labels.data(), opt.batch, {}, layout);
    t.train_step_s = seconds_since(t0);

    // the engine: one sample on one thread, its input converted as `evformer run` converts it
    const auto x = models::random_input(spec, layout, 3);
    const auto engine = models::build_network(weights);
    sim::Simulator simulator(engine);
    const auto t1 = std::chrono::steady_clock::now();
    const auto r = x.simulate(simulator, spec);
    t.engine_sample_s = seconds_since(t1);
    const auto total = r.total();
    t.sops = total.sops;
    t.macs = total.macs;  // attention SOPs are part of the attn_lif layer's count
    t.input_events = r.layer_total(0).input_events;
    return t;
}

void run_bench(const BenchPresetsOptions& opt) {
    std::FILE* text = opt.json == "-" ? stderr : stdout;
    const std::vector<NamedPath> outputs{{"--json", opt.json}};
    check_distinct_files({}, outputs);
    prepare_outputs(outputs);
    std::vector<const models::ModelPreset*> presets;
    if (opt.names.empty())
        for (const auto& p : models::model_presets()) presets.push_back(&p);
    else
        for (const auto& n : opt.names) presets.push_back(&models::find_model_preset(n));
    const std::size_t requested = threads_to_use(opt.threads);
    const auto limit = limit_threads(requested);
    const std::size_t threads =
        requested > 0 ? requested : static_cast<std::size_t>(tbb::info::default_concurrency());
    fmt::print(text,
               "bench presets: random weights (seed 7) and random input; one training step at "
               "batch {} on {} threads after {} untimed; one sample event by event on one "
               "thread\n",
               opt.batch, threads, opt.warmup);
    fmt::print(text, "{:<26} {:>10} {:>10} {:>13} {:>14} {:>14}\n", "preset", "parameters",
               "published", "train step s", "engine sample s", "SOPs");
    nlohmann::json out = nlohmann::json::array();
    for (const auto* p : presets) {
        const auto t = time_preset(*p, opt);
        const std::string published =
            p->published_millions > 0 ? fmt::format("{:.2f} M", p->published_millions) : "-";
        fmt::print(text, "{:<26} {:>10} {:>10} {:>13.3f} {:>14.3f} {:>14}\n", p->name, t.parameters,
                   published, t.train_step_s, t.engine_sample_s, t.sops);
        std::fflush(text);
        out.push_back({{"preset", p->name},
                       {"parameters", t.parameters},
                       {"published_millions", p->published_millions},
                       {"batch", opt.batch},
                       {"threads", threads},
                       {"train_step_s", t.train_step_s},
                       {"engine_sample_s", t.engine_sample_s},
                       {"sops", t.sops},
                       {"macs", t.macs},
                       {"input_events", t.input_events}});
    }
    if (!opt.json.empty()) write_text(opt.json, out.dump() + "\n");
}

const RegisterCommand reg("bench.presets", [](CLI::App& app) {
    auto opt = std::make_shared<BenchPresetsOptions>();
    auto* cmd = bench_group(app)->add_subcommand(
        "presets",
        "Parameters, one training step and one event-driven sample of each model preset "
        "(random weights)");
    cmd->add_option("names", opt->names,
                    "Presets to time (default all): " + models::model_preset_names());
    cmd->add_option("--batch", opt->batch, "Batch of the training step (default 2)")
        ->check(count_in(1, 4096));
    cmd->add_option("--warmup", opt->warmup, "Untimed training steps first (default 1)")
        ->check(count_in(0, 100));
    cmd->add_option("--threads", opt->threads, "Worker threads of the training step (0 = all)")
        ->check(count_in(0, 4096));
    cmd->add_option("--json", opt->json,
                    "Write the figures as JSON to FILE ('-' = stdout, the text then goes to "
                    "stderr)");
    cmd->callback([opt] { run_bench(*opt); });
});

}  // namespace
}  // namespace evformer::tools
