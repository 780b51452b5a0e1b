// The `evformer` command-line program: parses the subcommand and turns every failure into one
// line on stderr and a non-zero exit code (2 for usage errors, 1 for everything else).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "command.hpp"
#include "evformer/error.hpp"

namespace evformer::tools {

std::vector<CommandEntry>& command_registry() {
    static std::vector<CommandEntry> registry;
    return registry;
}

int& exit_code() {
    static int code = 0;
    return code;
}

std::string& command_line() {
    static std::string line;
    return line;
}

}  // namespace evformer::tools

namespace {

std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

// Names an unknown subcommand at any level ("evformer frobnicate", "evformer events frob"),
// which CLI11 would report only as "a subcommand is required"; empty if there is none.
std::string unknown_subcommand(CLI::App& app, int argc, char** argv) {
    CLI::App* level = &app;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.empty() || arg[0] == '-') return {};  // options are CLI11's to check
        const auto subs = level->get_subcommands([](CLI::App*) { return true; });
        if (subs.empty()) return {};  // a positional argument of a leaf command
        CLI::App* next = nullptr;
        std::string names;
        for (auto* sub : subs) {
            if (sub->check_name(arg)) next = sub;
            names += (names.empty() ? "" : ", ") + sub->get_name();
        }
        if (!next)
            return fmt::format("unknown subcommand '{}'{}; expected one of: {}", arg,
                               level == &app ? "" : " of '" + level->get_name() + "'", names);
        level = next;
    }
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    using namespace evformer::tools;
    for (int i = 0; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i > 0) command_line() += ' ';
        command_line() += arg.find(' ') == std::string::npos ? arg : "'" + arg + "'";
    }
    CLI::App app{
        "evformer — spiking transformers with binary attention: train, simulate event "
        "by event, count every synaptic operation"};
    app.set_version_flag("--version", std::string("evformer ") + EVFORMER_VERSION);
    app.require_subcommand(1);
    auto& registry = command_registry();
    std::sort(registry.begin(), registry.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    for (const auto& entry : registry) entry.setup(app);
    if (const auto unknown = unknown_subcommand(app, argc, argv); !unknown.empty()) {
        std::fprintf(stderr, "evformer: error: %s (see --help)\n", unknown.c_str());
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "evformer: error: %s (see --help)\n", one_line(e.what()).c_str());
        return 2;
    } catch (const evformer::ConfigError& e) {
        std::fprintf(stderr, "evformer: error: %s\n", one_line(e.what()).c_str());
        return 2;
    } catch (const evformer::Error& e) {
        std::fprintf(stderr, "evformer: error: %s\n", one_line(e.what()).c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "evformer: internal error: %s\n", one_line(e.what()).c_str());
        return 3;
    }
    return exit_code();
}
