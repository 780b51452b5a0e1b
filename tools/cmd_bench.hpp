// The `bench` subcommand group: benchmark subcommands (`bench events`, …) add themselves to it.
#pragma once

#include <CLI/CLI.hpp>

namespace evformer::tools {

/// The `bench` group of `app`, created on first use (any bench subcommand may come first).
CLI::App* bench_group(CLI::App& app);

}  // namespace evformer::tools
