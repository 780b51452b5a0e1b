// `evformer bench …`: the group that benchmark subcommands join (speed is measured here, never
// asserted in tests).
#include "command.hpp"

namespace evformer::tools {

CLI::App* bench_group(CLI::App& app) {
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
        if (sub->get_name() == "bench") return sub;
    auto* bench = app.add_subcommand("bench",
                                     "Benchmarks that print throughput and ratios "
                                     "against a baseline run in the same process");
    bench->require_subcommand(1);
    return bench;
}

namespace {
const RegisterCommand reg("bench", [](CLI::App& app) { bench_group(app); });
}  // namespace

}  // namespace evformer::tools
