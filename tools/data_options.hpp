// The dataset option group shared by the subcommands that read labelled samples (`eval`, `run`,
// `profile`, `bench run`): declared once here so that every command accepts the same `--data`,
// `--split`, `--split-by` and `--limit`, and opens the data the same way.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <memory>
#include <string>

#include "evformer/io/samples.hpp"
#include "evformer/models/spec.hpp"

namespace evformer::tools {

/// The real N-MNIST test recordings shipped with the project (`examples/data/`).
inline constexpr const char* kShippedEventData = "examples/data/nmnist_test100";

/// Values of the dataset option group.
struct DataOptions {
    /// Empty: chosen from the model (event models: the shipped N-MNIST test recordings;
    /// image models: fashion-mnist).
    std::string data;
    std::string split = "test";
    std::string split_by = "number";
    std::size_t limit = 0;
};

/// Declares --data, --split, --split-by and --limit on `cmd`; `limit_help` describes the
/// default of --limit.
void add_data_options(CLI::App* cmd, DataOptions& options, const std::string& limit_help);

/// The dataset the options name for a model of `spec` (the default when --data is not given).
std::string data_for(const DataOptions& options, const models::ModelSpec& spec);

/// Opens the data for a model: event recordings are binned into the spec's T frames at its input
/// size. Throws what io::open_samples throws.
std::unique_ptr<io::SampleSource> open_data(const DataOptions& options,
                                            const models::ModelSpec& spec);

}  // namespace evformer::tools
