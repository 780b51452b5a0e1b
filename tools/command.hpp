// Subcommands of the `evformer` program register themselves here, one file each (cmd_*.cpp),
// so adding a subcommand touches no central list.
#pragma once

#include <tbb/global_control.h>
#include <CLI/CLI.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace evformer::tools {

/// Adds one subcommand to the application; the callback it installs does the work and may throw
/// evformer::Error, which main() turns into one line on stderr and a non-zero exit.
using CommandSetup = std::function<void(CLI::App& app)>;

/// A subcommand's registration, ordered by name in --help.
struct CommandEntry {
    std::string name;
    CommandSetup setup;
};

/// Every registered subcommand.
std::vector<CommandEntry>& command_registry();

/// Declare one static instance per subcommand file.
struct RegisterCommand {
    RegisterCommand(std::string name, CommandSetup setup) {
        command_registry().push_back({std::move(name), std::move(setup)});
    }
};

/// Exit code of the last subcommand that ran (callbacks set it; 0 by default).
int& exit_code();

/// The command line the program was started with, arguments joined by spaces (quoted where
/// they hold a space), for provenance records.
std::string& command_line();

/// Writes a report to a file, or to stdout for "-"; throws FileError naming the file.
void write_text(const std::string& path, const std::string& text);

/// Caps oneTBB's worker threads at `threads` while the returned object lives (0: no cap, all
/// cores).
inline std::unique_ptr<tbb::global_control> limit_threads(std::size_t threads) {
    if (threads == 0) return nullptr;
    return std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                 threads);
}

/// The `bench` subcommand group, created on first use; each benchmark adds itself to it.
CLI::App* bench_group(CLI::App& app);

}  // namespace evformer::tools
