#include "evformer/io/events_dataset.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

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

// Class folders of recordings: the first ⌊ratio·n⌋ files of each class train, in name order or,
// with a seed, in an order shuffled per class by mt19937_64(seed + label).
void ratio_split(EventDataset& ds, const fs::path& root, const std::vector<std::string>& ext,
                 double ratio, std::uint64_t seed) {
    for (const auto& dir : sorted_entries(root, true)) {
        auto files = sorted_entries(dir, false, ext);
        if (files.empty()) continue;
        const std::size_t label = ds.classes.size();
        ds.classes.push_back(dir.filename().string());
        if (seed != 0) {
            std::mt19937_64 rng(seed + label);
            // Fisher–Yates with the engine's raw output: std::shuffle's use of it is unspecified
            for (std::size_t i = files.size(); i > 1; --i)
                std::swap(files[i - 1], files[rng() % i]);
        }
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

// One label per line, "<id> <class>" (tab or spaces; '#' starts a comment); each id names the file
// <id>.bs2, <id>.bin, <id>.h5 or <id>.aedat beside labels.txt. Classes are the digits 0..max.
void flat_folder(EventDataset& ds, const fs::path& root) {
    const auto list = root / "labels.txt";
    std::ifstream in(list);
    if (!in)
        throw FileError(list.string(), -1,
                        "cannot open (a flat dataset folder needs labels.txt: one '<id> <class>' "
                        "line per recording)");
    std::string line;
    std::size_t line_no = 0, max_label = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::istringstream fields(line);
        std::string id;
        if (!(fields >> id)) continue;
        long long label = -1;
        std::string extra;
        if (!(fields >> label) || label < 0 || label > 100000 || (fields >> extra))
            throw FileError(list.string(), -1,
                            fmt::format("line {}: expected '<id> <class>' with a class number "
                                        ">= 0, found '{}'",
                                        line_no, line));
        fs::path file;
        for (const char* ext : {".bs2", ".bin", ".h5", ".hdf5", ".aedat", ".aedat4", ".raw"})
            if (fs::is_regular_file(root / (id + ext))) {
                file = root / (id + ext);
                break;
            }
        if (file.empty())
            throw FileError(list.string(), -1,
                            fmt::format("line {}: no recording '{}.bs2' (or .bin, .h5, .aedat, "
                                        ".aedat4, .raw) in {}",
                                        line_no, id, root.string()));
        const auto l = static_cast<std::size_t>(label);
        max_label = std::max(max_label, l);
        ds.train.push_back({file, l});
    }
    if (ds.train.empty())
        throw FileError(list.string(), -1, "no '<id> <class>' line (expected one per recording)");
    for (std::size_t c = 0; c <= max_label; ++c) ds.classes.push_back(std::to_string(c));
    ds.test = ds.train;
    ds.has_split = false;
}

// DVS128 Gesture (Amir et al., CVPR 2017): userNN_<lighting>.aedat (AEDAT 3.1) with
// userNN_<lighting>_labels.csv rows "class,startTime_usec,endTime_usec" (classes 1..11); each row
// is one sample. Split: trials_to_train.txt / trials_to_test.txt when present, else the official
// rule (users 1–23 train, 24–29 test).
void dvs_gesture(EventDataset& ds, const fs::path& root) {
    ds.classes = {"hand_clapping",
                  "right_hand_wave",
                  "left_hand_wave",
                  "right_arm_clockwise",
                  "right_arm_counter_clockwise",
                  "left_arm_clockwise",
                  "left_arm_counter_clockwise",
                  "arm_roll",
                  "air_drums",
                  "air_guitar",
                  "other_gestures"};
    auto read_list = [&](const char* name) {
        std::vector<std::string> out;
        std::ifstream in(root / name);
        std::string w;
        while (in >> w) out.push_back(fs::path(w).filename().string());
        return out;
    };
    const auto train_list = read_list("trials_to_train.txt");
    const auto test_list = read_list("trials_to_test.txt");
    const bool lists = !train_list.empty() || !test_list.empty();
    for (const auto& file : sorted_entries(root, false, {".aedat"})) {
        const auto name = file.filename().string();
        bool train = false;
        if (lists) {
            const bool in_train =
                std::find(train_list.begin(), train_list.end(), name) != train_list.end();
            const bool in_test =
                std::find(test_list.begin(), test_list.end(), name) != test_list.end();
            if (!in_train && !in_test) continue;
            train = in_train;
        } else {
            unsigned user = 0;
            if (std::sscanf(name.c_str(), "user%u", &user) != 1)
                throw FileError(file.string(), -1,
                                "expected a DVS128 Gesture name 'userNN_<lighting>.aedat'");
            train = user <= 23;
        }
        auto csv = file;
        csv.replace_filename(file.stem().string() + "_labels.csv");
        std::ifstream in(csv);
        if (!in)
            throw FileError(csv.string(), -1,
                            "cannot open the label file of " + name +
                                " (expected 'class,startTime_usec,endTime_usec' rows)");
        std::string line;
        std::size_t line_no = 0;
        while (std::getline(in, line)) {
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty() || line_no == 1) continue;  // the header
            long long cls = 0, begin = 0, end = 0;
            char c1 = 0, c2 = 0;
            std::istringstream fields(line);
            std::string rest;
            if (!(fields >> cls >> c1 >> begin >> c2 >> end) || c1 != ',' || c2 != ',' ||
                (fields >> rest) || cls < 1 || cls > 11 || end <= begin)
                throw FileError(csv.string(), -1,
                                fmt::format("line {}: expected 'class,startTime_usec,endTime_usec' "
                                            "with class 1..11 and start < end, found '{}'",
                                            line_no, line));
            EventSample s{file, static_cast<std::size_t>(cls - 1), begin, end};
            (train ? ds.train : ds.test).push_back(s);
        }
    }
}

std::string detect_kind(const fs::path& root) {
    if (fs::is_regular_file(root / "labels.txt")) return "flat";
    if (!sorted_entries(root, false, {".csv"}).empty() &&
        !sorted_entries(root, false, {".aedat"}).empty())
        return "dvs-gesture";
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
                    ".h5 files, Train/ and Test/ folders, labels.txt beside the recordings, or "
                    "DVS128 Gesture .aedat files with _labels.csv)");
}

}  // namespace

std::vector<Event> EventDataset::load(const EventSample& sample) const {
    auto events = read_event_file(sample.path, reader);
    if (sample.t_begin != std::numeric_limits<std::int64_t>::min() ||
        sample.t_end != std::numeric_limits<std::int64_t>::max())
        std::erase_if(events,
                      [&](const Event& e) { return e.t < sample.t_begin || e.t >= sample.t_end; });
    return events;
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
        ratio_split(ds, root, {".aedat"}, options.train_ratio, options.split_seed);
    } else if (ds.kind == "ncaltech101") {
        ds.sensor = {240, 180};
        ratio_split(ds, root, {".bin"}, options.train_ratio, options.split_seed);
    } else if (ds.kind == "flat") {
        flat_folder(ds, root);
        const auto ext = detail::lower_extension(ds.train.front().path);
        ds.sensor = ext == ".bs2" || ext == ".bin"
                        ? Geometry{34, 34}  // N-MNIST's ATIS crop
                        : open_event_file(ds.train.front().path, ds.reader)->geometry();
    } else if (ds.kind == "dvs-gesture") {
        ds.sensor = {128, 128};
        dvs_gesture(ds, root);
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
            ratio_split(ds, root, {".h5", ".hdf5"}, options.train_ratio, options.split_seed);
        const auto& first = !ds.train.empty() ? ds.train : ds.test;
        if (!first.empty()) ds.sensor = open_event_file(first.front().path, ds.reader)->geometry();
    } else {
        throw ConfigError(fmt::format(
            "unknown dataset kind '{}' (expected cifar10-dvs, ncaltech101, nmnist, flat, "
            "dvs-gesture, hdf5 or auto)",
            ds.kind));
    }
    if (ds.reader.geometry.known()) ds.sensor = ds.reader.geometry;
    if (ds.train.empty() && ds.test.empty())
        throw FileError(root.string(), -1, "no recordings found for a " + ds.kind + " dataset");
    return ds;
}

}  // namespace evformer::io
