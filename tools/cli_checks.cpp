#include "cli_checks.hpp"

#include <fmt/format.h>
#include <tbb/info.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "evformer/error.hpp"
#include "evformer/io/idx.hpp"

namespace evformer::tools {
namespace {

namespace fs = std::filesystem;

bool given(const NamedPath& p) {
    return !p.path.empty();
}
bool is_stdout(const NamedPath& p) {
    return p.path == "-";
}

// The path with links, "." and ".." resolved as far as the path exists.
fs::path resolved(const std::string& path) {
    std::error_code ec;
    auto abs = fs::absolute(path, ec);
    if (ec) return fs::path(path).lexically_normal();
    auto canon = fs::weakly_canonical(abs, ec);
    return ec ? abs.lexically_normal() : canon;
}

bool same_file(const std::string& a, const std::string& b) {
    std::error_code ec;
    if (fs::exists(a, ec) && fs::exists(b, ec)) {
        const bool eq = fs::equivalent(a, b, ec);
        if (!ec) return eq;
    }
    return resolved(a) == resolved(b);
}

// True if `file` exists and lies inside the folder `dir` (a dataset folder: any file there may be
// read as input).
bool inside_folder(const std::string& file, const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec) || !fs::is_regular_file(file, ec)) return false;
    const auto f = resolved(file), d = resolved(dir);
    const auto rel = f.lexically_relative(d);
    return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

NamedPath dataset_input(const std::string& data) {
    try {
        return {"--data", io::resolve_dataset_dir(data).string()};
    } catch (const Error&) {
        return {"--data", data};  // the command's own loading names the problem
    }
}

std::vector<NamedPath> dataset_inputs(const DataOptions& data) {
    if (!data.data.empty()) return {dataset_input(data.data)};
    return {dataset_input(shipped_path(kShippedEventData)), dataset_input("fashion-mnist")};
}

void check_distinct_files(const std::vector<NamedPath>& inputs,
                          const std::vector<NamedPath>& outputs) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const auto& out = outputs[i];
        if (!given(out)) continue;
        if (!is_stdout(out)) {
            for (const auto& in : inputs) {
                if (!given(in) || is_stdout(in)) continue;
                if (same_file(out.path, in.path))
                    throw ConfigError(fmt::format(
                        "{} '{}' is the same file as the input {} '{}'; writing it would destroy "
                        "the input (choose another output path)",
                        out.option, out.path, in.option, in.path));
                if (inside_folder(out.path, in.path))
                    throw ConfigError(fmt::format(
                        "{} '{}' is a file inside the input folder {} '{}'; writing it could "
                        "destroy the input (choose another output path)",
                        out.option, out.path, in.option, in.path));
            }
        }
        for (std::size_t j = 0; j < i; ++j) {
            const auto& other = outputs[j];
            if (!given(other)) continue;
            const bool both_stdout = is_stdout(out) && is_stdout(other);
            if (both_stdout)
                throw ConfigError(fmt::format(
                    "{} - and {} - both write to stdout, which would mix two formats in one "
                    "stream; send at most one of them to stdout",
                    other.option, out.option));
            if (!is_stdout(out) && !is_stdout(other) && same_file(out.path, other.path))
                throw ConfigError(fmt::format(
                    "{} '{}' and {} '{}' are the same file; each output needs its own path",
                    other.option, other.path, out.option, out.path));
        }
    }
}

void prepare_outputs(const std::vector<NamedPath>& outputs) {
    for (const auto& out : outputs) {
        if (!given(out) || is_stdout(out)) continue;
        const fs::path path(out.path);
        std::error_code ec;
        if (fs::is_directory(path, ec))
            throw FileError(out.path, -1,
                            fmt::format("{} names a folder; expected a file path", out.option));
        auto parent = path.parent_path();
        if (parent.empty()) parent = ".";
        if (!fs::exists(parent, ec)) {
            fs::create_directories(parent, ec);
            if (ec)
                throw FileError(out.path, -1,
                                fmt::format("{}: cannot create the folder '{}': {}", out.option,
                                            parent.string(), ec.message()));
        } else if (!fs::is_directory(parent, ec)) {
            throw FileError(out.path, -1,
                            fmt::format("{}: '{}' is not a folder", out.option, parent.string()));
        }
        // Files are written beside their final name first, then renamed: the folder itself
        // must be writable, and an existing file must be replaceable.
        if (::access(parent.c_str(), W_OK | X_OK) != 0)
            throw FileError(
                out.path, -1,
                fmt::format("{}: the folder '{}' is not writable", out.option, parent.string()));
        if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0)
            throw FileError(out.path, -1,
                            fmt::format("{}: the file exists and is not writable", out.option));
    }
}

void warn_nonfinite(const std::string& what, std::size_t count, std::size_t samples) {
    if (count == 0) return;
    std::fprintf(stderr,
                 "evformer: warning: %s: %zu of %zu samples gave NaN or infinite logits; their "
                 "predictions (and the accuracy) are meaningless\n",
                 what.c_str(), count, samples);
}

sim::EnergyModel energy_from_options(double sop_fj, double mac_pj) {
    auto check = [](double v, const char* option, const char* unit) {
        if (!std::isfinite(v) || v < 0)
            throw ConfigError(
                fmt::format("{} {:g}: the energy per operation must be a finite number of {} >= 0",
                            option, v, unit));
    };
    check(sop_fj, "--sop-energy-fj", "femtojoules per SOP");
    check(mac_pj, "--mac-energy-pj", "picojoules per MAC");
    sim::EnergyModel e;
    e.joules_per_sop = sop_fj * 1e-15;
    e.joules_per_mac = mac_pj * 1e-12;
    return e;
}

CLI::Validator count_in(std::size_t min, std::size_t max) {
    return CLI::Validator(
        [min, max](std::string& text) -> std::string {
            std::size_t v = 0;
            const auto* end = text.data() + text.size();
            const auto r = std::from_chars(text.data(), end, v);
            if (text.empty() || r.ec == std::errc::invalid_argument || r.ptr != end)
                return fmt::format("'{}' is not a count (a whole number >= {})", text, min);
            if (r.ec == std::errc::result_out_of_range || v < min || v > max)
                return fmt::format("{} is outside [{}, {}]", text, min, max);
            return {};
        },
        fmt::format("COUNT in [{}, {}]", min, max), "count");
}

std::size_t threads_to_use(std::size_t requested) {
    const auto hardware = static_cast<std::size_t>(std::max(1, tbb::info::default_concurrency()));
    if (requested <= hardware) return requested;
    std::fprintf(stderr,
                 "evformer: note: --threads %zu is more than the %zu hardware threads here; "
                 "using %zu\n",
                 requested, hardware, hardware);
    return hardware;
}

}  // namespace evformer::tools
