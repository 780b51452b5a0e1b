#include "evformer/io/events_dataset.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "events_internal.hpp"
#include "evformer/error.hpp"

namespace evformer::io {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories,
                                     const std::vector<std::string>& extensions = {}) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (directories ? !entry.is_directory() : !entry.is_regular_file()) continue;
        if (!extensions.empty() &&
            std::find(extensions.begin(), extensions.end(),
                      detail::lower_extension(entry.path())) == extensions.end())
            continue;
        out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Class folders of recordings: the first ⌊ratio·n⌋ files of each class (by name) train.
void ratio_split(EventDataset& ds, const fs::path& root, const std::vector<std::string>& ext,
                 double ratio) {
    for (const auto& dir : sorted_entries(root, true)) {
        const auto files = sorted_entries(dir, false, ext);
        if (files.empty()) continue;
        const std::size_t label = ds.classes.size();
        ds.classes.push_back(dir.filename().string());
        const auto n_train = static_cast<std::size_t>(std::floor(ratio * double(files.size())));
        for (std::size_t i = 0; i < files.size(); ++i)
            (i < n_train ? ds.train : ds.test).push_back({files[i], label});
    }
}

// Official split folders (Train/Test or train/test) holding class folders.
void folder_split(EventDataset& ds, const fs::path& train, const fs::path& test,
                  const std::vector<std::string>& ext) {
    for (const auto& dir : sorted_entries(train, true))
        ds.classes.push_back(dir.filename().string());
    for (const auto& [split, out] : {std::pair{train, &ds.train}, std::pair{test, &ds.test}}) {
        for (const auto& dir : sorted_entries(split, true)) {
            const auto it =
                std::find(ds.classes.begin(), ds.classes.end(), dir.filename().string());
            if (it == ds.classes.end())
                throw FileError(dir.string(), -1, "class folder missing from the training split");
            const auto label = static_cast<std::size_t>(it - ds.classes.begin());
            for (const auto& f : sorted_entries(dir, false, ext)) out->push_back({f, label});
        }
    }
}

fs::path child(const fs::path& root, const char* a, const char* b) {
    if (fs::is_directory(root / a)) return root / a;
    if (fs::is_directory(root / b)) return root / b;
    return {};
}

std::string detect_kind(const fs::path& root) {
    if (!child(root, "Train", "train").empty() && !child(root, "Test", "test").empty()) {
        const auto train = child(root, "Train", "train");
        for (const auto& dir : sorted_entries(train, true))
            if (!sorted_entries(dir, false, {".h5", ".hdf5"}).empty()) return "hdf5";
        return "nmnist";
    }
    for (const auto& dir : sorted_entries(root, true)) {
        if (!sorted_entries(dir, false, {".aedat"}).empty()) return "cifar10-dvs";
        if (!sorted_entries(dir, false, {".bin"}).empty()) return "ncaltech101";
        if (!sorted_entries(dir, false, {".h5", ".hdf5"}).empty()) return "hdf5";
    }
    throw FileError(root.string(), -1,
                    "cannot tell the dataset layout (expected class folders of .aedat, .bin or "
                    ".h5 files, or Train/ and Test/ folders)");
}

}  // namespace

std::vector<Event> EventDataset::load(const EventSample& sample) const {
    return read_event_file(sample.path, reader);
}

FrameTensor EventDataset::frames(const EventSample& sample, FrameOptions options) const {
    if (!options.sensor.known()) options.sensor = sensor;
    return bin_events(load(sample), options);
}

EventDataset open_event_dataset(const std::filesystem::path& root,
                                const EventDatasetOptions& options) {
    if (!fs::is_directory(root))
        throw FileError(root.string(), -1, "no such folder (expected a dataset folder)");
    if (!(options.train_ratio >= 0.0 && options.train_ratio <= 1.0))
        throw ConfigError(fmt::format("train ratio {} must lie in [0, 1]", options.train_ratio));
    EventDataset ds;
    ds.kind = options.kind == "auto" ? detect_kind(root) : options.kind;
    ds.reader = options.reader;
    if (ds.kind == "cifar10-dvs") {
        ds.sensor = {128, 128};
        ratio_split(ds, root, {".aedat"}, options.train_ratio);
    } else if (ds.kind == "ncaltech101") {
        ds.sensor = {240, 180};
        ratio_split(ds, root, {".bin"}, options.train_ratio);
    } else if (ds.kind == "nmnist") {
        ds.sensor = {34, 34};
        const auto train = child(root, "Train", "train");
        const auto test = child(root, "Test", "test");
        if (train.empty() || test.empty())
            throw FileError(root.string(), -1, "N-MNIST needs Train/ and Test/ folders");
        folder_split(ds, train, test, {".bin", ".bs2"});
    } else if (ds.kind == "hdf5") {
        const auto train = child(root, "Train", "train");
        const auto test = child(root, "Test", "test");
        if (!train.empty() && !test.empty())
            folder_split(ds, train, test, {".h5", ".hdf5"});
        else
            ratio_split(ds, root, {".h5", ".hdf5"}, options.train_ratio);
        const auto& first = !ds.train.empty() ? ds.train : ds.test;
        if (!first.empty()) ds.sensor = open_event_file(first.front().path, ds.reader)->geometry();
    } else {
        throw ConfigError(fmt::format(
            "unknown dataset kind '{}' (expected cifar10-dvs, ncaltech101, nmnist, hdf5 or auto)",
            ds.kind));
    }
    if (ds.reader.geometry.known()) ds.sensor = ds.reader.geometry;
    if (ds.train.empty() && ds.test.empty())
        throw FileError(root.string(), -1, "no recordings found for a " + ds.kind + " dataset");
    return ds;
}

}  // namespace evformer::io
