// Event-camera datasets as users keep them on disk: CIFAR10-DVS (class folders of .aedat),
// N-Caltech101 (class folders of .bin), N-MNIST (Train/ and Test/ digit folders), flat labelled
// folders (`<id>.bs2` or `.bin` files plus `labels.txt`, as SLAYER's NMNISTsmall), DVS128 Gesture
// (AEDAT 3.1 recordings with `_labels.csv` intervals) and folders of HDF5 event files. Layouts and
// split rules are documented in docs/events.md, "Datasets".
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "evformer/io/events.hpp"
#include "evformer/io/events_frames.hpp"

namespace evformer::io {

/// One sample of a dataset: a recording (or the part of it in [t_begin, t_end) µs) and its class.
struct EventSample {
    std::filesystem::path path;
    std::size_t label = 0;
    /// First event time of the sample in µs (inclusive); the whole recording by default.
    std::int64_t t_begin = std::numeric_limits<std::int64_t>::min();
    /// End of the sample in µs (exclusive).
    std::int64_t t_end = std::numeric_limits<std::int64_t>::max();
};

/// How a dataset folder is opened.
struct EventDatasetOptions {
    /// Layout: "cifar10-dvs", "ncaltech101", "nmnist", "flat", "dvs-gesture", "hdf5", or "auto"
    /// (detected).
    std::string kind = "auto";
    /// Share of each class that goes to the training split, where the dataset has no official
    /// split (class-folder layouts).
    double train_ratio = 0.9;
    /// Order of each class's files before the ratio split: 0 = by file name; any other value
    /// shuffles them with this seed (std::mt19937_64, the same on every machine).
    std::uint64_t split_seed = 0;
    /// Reader options for every sample (e.g. the AEDAT 2.0 orientation for CIFAR10-DVS).
    ReaderOptions reader;
};

/// An indexed dataset: class names, the two splits and the sensor size of its samples.
struct EventDataset {
    std::string kind;
    /// False for layouts that hold one split only ("flat"): then `train` and `test` both list
    /// every sample, and a trainer must be given a separate test folder.
    bool has_split = true;
    std::vector<std::string> classes;
    std::vector<EventSample> train;
    std::vector<EventSample> test;
    Geometry sensor;
    ReaderOptions reader;

    /// All events of one sample (only those in [t_begin, t_end) for interval samples).
    std::vector<Event> load(const EventSample& sample) const;
    /// One sample binned into frames (options.sensor defaults to the dataset's sensor).
    FrameTensor frames(const EventSample& sample, FrameOptions options) const;
};

/// Indexes a dataset folder; throws FileError naming the file or folder and the expected layout
/// when it does not match (missing or malformed `labels.txt`/`_labels.csv`, no recordings), and
/// ConfigError for an unknown kind or a train ratio outside [0, 1].
EventDataset open_event_dataset(const std::filesystem::path& root,
                                const EventDatasetOptions& options = {});

}  // namespace evformer::io
