// Event-camera datasets as users keep them on disk: CIFAR10-DVS (class folders of .aedat),
// N-Caltech101 (class folders of .bin), N-MNIST (Train/ and Test/ digit folders) and folders of
// HDF5 event files. Split rules are documented in docs/events.md.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "evformer/io/events.hpp"
#include "evformer/io/events_frames.hpp"

namespace evformer::io {

/// One recording of a dataset and its class.
struct EventSample {
    std::filesystem::path path;
    std::size_t label = 0;
};

/// How a dataset folder is opened.
struct EventDatasetOptions {
    /// Layout: "cifar10-dvs", "ncaltech101", "nmnist", "hdf5", or "auto" (detected).
    std::string kind = "auto";
    /// Share of each class (sorted by file name) that goes to the training split, where the
    /// dataset has no official split.
    double train_ratio = 0.9;
    /// Reader options for every sample (e.g. the AEDAT 2.0 orientation for CIFAR10-DVS).
    ReaderOptions reader;
};

/// An indexed dataset: class names, the two splits and the sensor size of its samples.
struct EventDataset {
    std::string kind;
    std::vector<std::string> classes;
    std::vector<EventSample> train;
    std::vector<EventSample> test;
    Geometry sensor;
    ReaderOptions reader;

    /// All events of one sample.
    std::vector<Event> load(const EventSample& sample) const;
    /// One sample binned into frames (options.sensor defaults to the dataset's sensor).
    FrameTensor frames(const EventSample& sample, FrameOptions options) const;
};

/// Indexes a dataset folder; throws FileError when the folder does not have the layout.
EventDataset open_event_dataset(const std::filesystem::path& root,
                                const EventDatasetOptions& options = {});

}  // namespace evformer::io
