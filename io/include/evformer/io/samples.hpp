// Sample sources: one interface over every labelled input the trainer and the engine take —
// static images (direct encoding) and event recordings binned into T steps — so that `train`,
// `eval`, `run`, `profile` and `bench` open `--data` the same way (DESIGN.md, "Inputs are sample
// sources"). Event recordings are decoded and binned once, when the source is opened, and kept in
// memory as sparse per-step counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "evformer/io/cifar.hpp"
#include "evformer/io/events_dataset.hpp"
#include "evformer/io/events_frames.hpp"
#include "evformer/io/idx.hpp"

namespace evformer::io {

/// How a sample enters the network.
enum class SampleEncoding {
    /// An image (grey or colour): its pixels are the input current of the first conv at every one
    /// of the T steps (real-valued, counted in MACs by the engine).
    static_image,
    /// T frames of per-pixel, per-polarity event counts: the events of step t enter the first
    /// conv as events (counted in SOPs by the engine).
    event_frames,
};

/// Shape of one sample: channels × height × width, and the number of frames for event samples.
struct SampleShape {
    std::size_t channels = 0;
    std::size_t height = 0;
    std::size_t width = 0;
    /// T of event frames; 0 for static images (the model's T applies).
    std::size_t frames = 0;
    friend bool operator==(const SampleShape&, const SampleShape&) = default;
};

/// The event counts of one sample as a sparse list per frame (CSR over frames).
///
/// Entries of frame t are [frame_begin[t], frame_begin[t + 1]); each has a neuron index in the
/// channel-major order c·H·W + y·W + x of the `[T, C, H, W]` frames (channel 0 = OFF, 1 = ON) and
/// the number of events of that pixel and polarity in the frame (≥ 1, saturating at 65535).
struct SparseFrames {
    std::size_t frames = 0, channels = 0, height = 0, width = 0;
    std::vector<std::uint32_t> frame_begin;  ///< frames + 1 offsets
    std::vector<std::uint32_t> index;        ///< channel-major neuron index
    std::vector<std::uint16_t> count;        ///< events per entry
    /// Time from the first to the last binned event of the recording, µs (0 when unknown).
    std::int64_t duration_us = 0;

    /// The non-zero counts of dense frames (layout `[T, C, H, W]`, as FrameTensor: C = 2) and
    /// their span.
    static SparseFrames from_dense(const FrameTensor& frames);
    /// Writes the dense counts, `[T, C, H, W]` floats, into `out` (frames·C·H·W values).
    void to_dense(float* out) const;
    /// Total number of events (Σ count).
    std::uint64_t events() const noexcept;
};

/// A labelled set of samples of one shape and encoding.
class SampleSource {
  public:
    virtual ~SampleSource() = default;

    /// Static images or event frames.
    virtual SampleEncoding encoding() const = 0;
    /// Shape of every sample.
    virtual SampleShape shape() const = 0;
    /// Number of classes (labels lie in [0, classes)).
    virtual std::size_t classes() const = 0;
    /// Number of samples.
    virtual std::size_t size() const = 0;
    /// Class of sample i.
    virtual std::size_t label(std::size_t i) const = 0;
    /// Dense input of sample i written to `out` (dense_size() floats): a static image as
    /// `[C, H, W]` pixel/255 in [0, 1]; event frames as `[T, C, H, W]` counts.
    virtual void dense(std::size_t i, float* out) const = 0;
    /// The sparse counts of event sample i; throws ConfigError for static images.
    virtual const SparseFrames& events(std::size_t i) const;
    /// One line naming the data: "fashion-mnist/test: 10000 images 1x28x28, 10 classes".
    virtual std::string describe() const = 0;
    /// False when the dataset holds one split only (a flat labels.txt folder): then the `train`
    /// and `test` splits are both the whole folder.
    virtual bool split_given() const { return true; }

    /// Floats one dense() call writes.
    std::size_t dense_size() const;
};

/// Options that turn a dataset (name or folder) into a sample source.
struct SampleOptions {
    /// `fashion-mnist`, a folder of IDX files, a CIFAR-10 / CIFAR-100 binary folder (find_cifar),
    /// or an event dataset folder (any layout of open_event_dataset()).
    std::string data = "fashion-mnist";
    /// "train" or "test".
    std::string split = "test";
    /// Event datasets: binning (T, split rule, crop, output size). The sensor defaults to the
    /// dataset's; the output size to the crop size.
    FrameOptions frames;
    /// Event datasets: layout, ratio split, reader options.
    EventDatasetOptions dataset;
    /// Only the first N samples are prepared (0 = all).
    std::size_t limit = 0;
    /// CIFAR-100: which label is the class (fine: 100 classes, coarse: 20 superclasses); any
    /// other dataset takes `fine` only (ConfigError otherwise).
    CifarLabel label = CifarLabel::fine;
};

/// True when `data` names an image dataset: `fashion-mnist`, a folder holding
/// `train-images-idx3-ubyte[.gz]` or `t10k-images-idx3-ubyte[.gz]`, or a CIFAR-10 / CIFAR-100
/// binary folder (find_cifar).
bool is_image_dataset(const std::string& data);

/// Opens a dataset split as a sample source: IDX or CIFAR images, or an event dataset whose
/// recordings are all decoded and binned here, once. Throws FileError (missing or malformed files,
/// naming them and the expected layout) and ConfigError (bad split, bad binning options).
std::unique_ptr<SampleSource> open_samples(const SampleOptions& options);

/// A source over images already in memory (tests, benchmarks).
std::unique_ptr<SampleSource> image_samples(ImageDataset data);

/// A source over event frames already binned (tests, benchmarks); all must share one shape.
std::unique_ptr<SampleSource> event_samples(std::vector<SparseFrames> frames,
                                            std::vector<std::size_t> labels, std::size_t classes,
                                            std::string description, bool split_given = true);

}  // namespace evformer::io
