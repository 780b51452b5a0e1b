// Option groups shared by several subcommands, declared once so that every command spells, checks
// and applies them the same way: the dataset group (`--data`, `--split`, `--split-by`, `--limit`,
// `--label` for `eval`, `run`, `profile`, `bench run`) and the energy group (`--sop-energy-fj`,
// `--mac-energy-pj` for `run` and `profile`).
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <memory>
#include <string>

#include "evformer/io/samples.hpp"
#include "evformer/models/spec.hpp"
#include "evformer/sim/energy.hpp"

namespace evformer::tools {

/// The real N-MNIST test recordings shipped with the project (`examples/data/`).
inline constexpr const char* kShippedEventData = "examples/data/nmnist_test100";

/// A file or folder shipped in the repository (`examples/…`): the path relative to the working
/// directory when it exists there, else relative to the source tree the running binary was built
/// in (`<root>/build/tools/evformer` → `<root>/examples/…`), else `relative` unchanged (so the
/// error names the path the user would expect).
std::string shipped_path(const std::string& relative);

/// Values of the dataset option group.
struct DataOptions {
    /// Empty: chosen from the model (event models: the shipped N-MNIST test recordings;
    /// image models: fashion-mnist).
    std::string data;
    std::string split = "test";
    /// Empty: the model's own binning (ModelSpec::input_split_by, "number" for most models).
    std::string split_by;
    std::int64_t dt_us = 0;  ///< bin length of --split-by duration, µs (0: the model's)
    std::size_t limit = 0;
    /// CIFAR-100: "fine" (100 classes) or "coarse" (20 superclasses).
    std::string label = "fine";
};

/// Declares --data, --split, --split-by, --dt, --limit and --label on `cmd`; `limit_help`
/// describes the default of --limit (empty: no --limit option). The default split is
/// options.split.
void add_data_options(CLI::App* cmd, DataOptions& options, const std::string& limit_help);

/// The dataset the options name for a model of `spec` (the default when --data is not given).
std::string data_for(const DataOptions& options, const models::ModelSpec& spec);

/// Opens the data for a model: event recordings are binned into the spec's T frames at its input
/// size. Throws what io::open_samples throws.
std::unique_ptr<io::SampleSource> open_data(const DataOptions& options,
                                            const models::ModelSpec& spec);

/// Values of the energy option group (DESIGN.md: 77 fJ per SOP, 4.6 pJ per MAC by default).
struct EnergyOptions {
    double sop_fj = 77.0;  ///< femtojoules per synaptic operation
    double mac_pj = 4.6;   ///< picojoules per multiply-accumulate
    /// The energy model; ConfigError naming the option and its unit for a negative or non-finite
    /// value.
    sim::EnergyModel model() const;
};

/// Declares --sop-energy-fj and --mac-energy-pj on `cmd`.
void add_energy_options(CLI::App* cmd, EnergyOptions& options);

}  // namespace evformer::tools
