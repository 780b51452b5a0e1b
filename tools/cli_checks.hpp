// Checks every subcommand makes before it starts working: counts that are whole non-negative
// numbers in range, outputs that are neither an input nor another output, and output locations
// that exist (or are created) and can be written. One place, so every command behaves the same.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "evformer/sim/energy.hpp"
#include "option_groups.hpp"

namespace evformer::tools {

/// A file named on the command line: the option or argument that names it (e.g. "--raster",
/// "model") and the path given. An empty path means "not given"; "-" means stdout.
struct NamedPath {
    std::string option;
    std::string path;
};

/// The files a `--data` value stands for, as an input: the dataset folder it resolves to (files
/// inside it count as inputs), or the value itself when it does not resolve.
NamedPath dataset_input(const std::string& data);

/// The inputs a dataset option group stands for: the --data folder, or, when --data is not
/// given, every dataset it may default to (the model decides which).
std::vector<NamedPath> dataset_inputs(const DataOptions& data);

/// Refuses, with a ConfigError (exit 2) naming both options, an output that is the same file as
/// an input or as another output. Paths are compared as files: existing ones with
/// std::filesystem::equivalent (links, "./" and ".." forms count), others by their weakly
/// canonical form. Two outputs that are both "-" (stdout) are refused too. Nothing is written.
void check_distinct_files(const std::vector<NamedPath>& inputs,
                          const std::vector<NamedPath>& outputs);

/// Makes every output location ready before the work starts: creates missing parent folders,
/// refuses a path that is a folder and a folder that cannot be written. Empty paths and "-" are
/// skipped. Throws FileError (exit 1) naming the option, the path and what is wrong.
void prepare_outputs(const std::vector<NamedPath>& outputs);

/// Reports on stderr, as one warning line, that `count` of `samples` samples of `what` (a
/// weights file) gave NaN or infinite logits, so their predictions mean nothing; silent for 0.
void warn_nonfinite(const std::string& what, std::size_t count, std::size_t samples);

/// The energy model of `--sop-energy-fj` (fJ per SOP) and `--mac-energy-pj` (pJ per MAC); a
/// negative or non-finite value is a ConfigError naming the option, the value and its unit.
sim::EnergyModel energy_from_options(double sop_fj, double mac_pj);

/// A CLI11 check for count options: the text must be a whole decimal number in [min, max]
/// (no sign, no fraction), so "-2" is a usage error instead of wrapping round to 2^64 − 2.
CLI::Validator count_in(std::size_t min = 0,
                        std::size_t max = std::numeric_limits<std::uint32_t>::max());

/// The worker-thread count to use for `--threads requested` (0 = all cores): more than the
/// hardware has is allowed, but capped to the hardware and reported on stderr as the number used.
std::size_t threads_to_use(std::size_t requested);

}  // namespace evformer::tools
