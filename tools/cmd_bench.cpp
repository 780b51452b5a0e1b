// `evformer bench …`: the group of benchmarks. Each benchmark registers itself in its own file
// under the name "bench.<name>" (sorted after "bench") and adds itself to this group with
// bench_group(app).
#include "command.hpp"

namespace evformer::tools {

CLI::App* bench_group(CLI::App& app) {
    return app.get_subcommand("bench");
}

namespace {

const RegisterCommand reg("bench", [](CLI::App& app) {
    auto* bench = app.add_subcommand(
        "bench", "Benchmarks: print absolute figures and ratios against a baseline run alongside");
    bench->require_subcommand(1);
});

}  // namespace
}  // namespace evformer::tools
