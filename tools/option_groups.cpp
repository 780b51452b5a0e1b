#include "option_groups.hpp"

#include <fmt/format.h>

#include <filesystem>

#include "cli_checks.hpp"

#include "evformer/error.hpp"
#include "evformer/models/trainer.hpp"

namespace evformer::tools {

void add_data_options(CLI::App* cmd, DataOptions& o, const std::string& limit_help) {
    cmd->add_option("--data", o.data,
                    "Dataset: fashion-mnist, a folder of IDX files, a CIFAR-10/100 binary folder, "
                    "or an event dataset folder (N-MNIST, labels.txt folder, CIFAR10-DVS, "
                    "N-Caltech101, DVS128 Gesture, HDF5 events); default: "
                    "examples/data/nmnist_test100 for event models, fashion-mnist for image "
                    "models");
    cmd->add_option("--split", o.split, "train or test (default " + o.split + ")")
        ->check(CLI::IsMember({"train", "test"}));
    cmd->add_option("--dt", o.dt_us, "Event data, --split-by duration: bin length in us (>= 1)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    cmd->add_option("--split-by", o.split_by,
                    "Event data: cut each recording into T frames of equal event count (number), "
                    "equal duration (time), or T bins of --dt us from its first event (duration; "
                    "later events unused: the bins of `evformer stream serve`); default: as the "
                    "model was trained (number for models that do not say)")
        ->check(CLI::IsMember({"number", "time", "duration"}));
    if (!limit_help.empty()) cmd->add_option("--limit", o.limit, limit_help);
    cmd->add_option("--label", o.label,
                    "CIFAR-100: classes from the fine labels (100, default) or the coarse ones "
                    "(20 superclasses)")
        ->check(CLI::IsMember({"fine", "coarse"}));
}

std::string shipped_path(const std::string& relative) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(relative, ec)) return relative;
    const auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const auto candidate = exe.parent_path().parent_path().parent_path() / relative;
        if (fs::exists(candidate, ec)) return candidate.string();
    }
    return relative;
}

std::string data_for(const DataOptions& o, const models::ModelSpec& spec) {
    if (!o.data.empty()) return o.data;
    return spec.in_channels == 2 ? shipped_path(kShippedEventData) : "fashion-mnist";
}

std::unique_ptr<io::SampleSource> open_data(const DataOptions& o, const models::ModelSpec& spec) {
    // Unless told, bin as the model was trained (--dt alone changes only the bin length).
    const std::string split_by = o.split_by.empty() ? spec.input_split_by : o.split_by;
    const std::int64_t dt_us =
        o.dt_us != 0 ? o.dt_us : (split_by == spec.input_split_by ? spec.input_dt_us : 0);
    if (split_by == "duration" && dt_us < 1)
        throw ConfigError("--split-by duration needs the bin length: --dt US");
    if (split_by != "duration" && dt_us != 0)
        throw ConfigError(
            o.split_by.empty()
                ? fmt::format("--dt is the bin length of --split-by duration, and this model was "
                              "trained on --split-by {}: give --split-by duration too",
                              split_by)
                : std::string("--dt is the bin length of --split-by duration; give both or "
                              "neither"));
    auto options =
        models::sample_options(spec, data_for(o, spec), o.split, split_by, o.limit, dt_us);
    options.label = io::parse_cifar_label(o.label);
    return io::open_samples(options);
}

sim::EnergyModel EnergyOptions::model() const {
    return energy_from_options(sop_fj, mac_pj);
}

void add_energy_options(CLI::App* cmd, EnergyOptions& o) {
    cmd->add_option("--sop-energy-fj", o.sop_fj, "Energy per SOP in fJ (default 77)");
    cmd->add_option("--mac-energy-pj", o.mac_pj, "Energy per MAC in pJ (default 4.6)");
}

}  // namespace evformer::tools
