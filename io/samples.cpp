#include "evformer/io/samples.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "evformer/error.hpp"

namespace evformer::io {
namespace {

namespace fs = std::filesystem;

class ImageSource final : public SampleSource {
  public:
    explicit ImageSource(ImageDataset data) : data_(std::move(data)) {}
    SampleEncoding encoding() const override { return SampleEncoding::static_image; }
    SampleShape shape() const override { return {data_.channels, data_.rows, data_.cols, 0}; }
    std::size_t classes() const override { return data_.classes; }
    std::size_t size() const override { return data_.count; }
    std::size_t label(std::size_t i) const override { return data_.labels[i]; }
    void dense(std::size_t i, float* out) const override {
        const std::size_t size = data_.image_size();
        const std::uint8_t* src = data_.image(i);
        for (std::size_t p = 0; p < size; ++p) out[p] = static_cast<float>(src[p]) / 255.f;
    }
    std::string describe() const override {
        return fmt::format("{}: {} images {}x{}x{}, {} classes", data_.name, data_.count,
                           data_.channels, data_.rows, data_.cols, data_.classes);
    }

  private:
    ImageDataset data_;
};

class EventSource final : public SampleSource {
  public:
    EventSource(std::vector<SparseFrames> frames, std::vector<std::size_t> labels,
                std::size_t classes, std::string description, bool split_given)
        : split_given_(split_given),
          frames_(std::move(frames)),
          labels_(std::move(labels)),
          classes_(classes),
          description_(std::move(description)) {
        if (frames_.size() != labels_.size())
            throw ConfigError(fmt::format("event samples: {} samples but {} labels", frames_.size(),
                                          labels_.size()));
        for (std::size_t i = 0; i < frames_.size(); ++i) {
            const auto& f = frames_[i];
            const SampleShape s{f.channels, f.height, f.width, f.frames};
            if (i == 0) shape_ = s;
            if (!(s == shape_))
                throw ConfigError(fmt::format(
                    "event samples: sample {} has shape {}x{}x{}x{}, sample 0 {}x{}x{}x{}", i,
                    s.frames, s.channels, s.height, s.width, shape_.frames, shape_.channels,
                    shape_.height, shape_.width));
            if (labels_[i] >= classes_)
                throw ConfigError(fmt::format("event samples: sample {} has label {} of {} classes",
                                              i, labels_[i], classes_));
        }
    }
    SampleEncoding encoding() const override { return SampleEncoding::event_frames; }
    SampleShape shape() const override { return shape_; }
    std::size_t classes() const override { return classes_; }
    std::size_t size() const override { return frames_.size(); }
    std::size_t label(std::size_t i) const override { return labels_[i]; }
    void dense(std::size_t i, float* out) const override { frames_[i].to_dense(out); }
    const SparseFrames& events(std::size_t i) const override { return frames_[i]; }
    std::string describe() const override { return description_; }
    bool split_given() const override { return split_given_; }

  private:
    bool split_given_ = true;
    std::vector<SparseFrames> frames_;
    std::vector<std::size_t> labels_;
    std::size_t classes_ = 0;
    SampleShape shape_;
    std::string description_;
};

bool has_idx_images(const fs::path& dir) {
    for (const char* stem : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"})
        if (fs::exists(dir / stem) || fs::exists(dir / (std::string(stem) + ".gz"))) return true;
    return false;
}

// Decodes and bins every sample once, on all cores (samples are independent).
std::vector<SparseFrames> bin_all(const EventDataset& ds, const std::vector<EventSample>& samples,
                                  const FrameOptions& options) {
    std::vector<SparseFrames> out(samples.size());
    std::atomic<std::size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto work = [&] {
        for (std::size_t i = next++; i < samples.size(); i = next++) {
            try {
                out[i] = SparseFrames::from_dense(ds.frames(samples[i], options));
            } catch (...) {
                const std::lock_guard lock(failure_mutex);
                if (!failure) failure = std::current_exception();
                next = samples.size();
            }
        }
    };
    const std::size_t threads =
        std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), samples.size());
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (failure) std::rethrow_exception(failure);
    return out;
}

}  // namespace

SparseFrames SparseFrames::from_dense(const FrameTensor& frames) {
    SparseFrames s;
    s.frames = frames.frames;
    s.channels = 2;
    s.height = frames.height;
    s.width = frames.width;
    s.duration_us = frames.duration_us;
    const std::size_t per_frame = s.channels * s.height * s.width;
    s.frame_begin.reserve(s.frames + 1);
    s.frame_begin.push_back(0);
    for (std::size_t t = 0; t < s.frames; ++t) {
        const float* f = frames.data.data() + t * per_frame;
        for (std::size_t n = 0; n < per_frame; ++n)
            if (f[n] > 0.f) {
                s.index.push_back(static_cast<std::uint32_t>(n));
                s.count.push_back(static_cast<std::uint16_t>(std::min(f[n], 65535.f)));
            }
        s.frame_begin.push_back(static_cast<std::uint32_t>(s.index.size()));
    }
    return s;
}

void SparseFrames::to_dense(float* out) const {
    const std::size_t per_frame = channels * height * width;
    std::fill(out, out + frames * per_frame, 0.f);
    for (std::size_t t = 0; t < frames; ++t)
        for (std::size_t e = frame_begin[t]; e < frame_begin[t + 1]; ++e)
            out[t * per_frame + index[e]] = static_cast<float>(count[e]);
}

std::uint64_t SparseFrames::events() const noexcept {
    std::uint64_t n = 0;
    for (auto c : count) n += c;
    return n;
}

const SparseFrames& SampleSource::events(std::size_t) const {
    throw ConfigError("this dataset holds static images, not event recordings");
}

std::size_t SampleSource::dense_size() const {
    const auto s = shape();
    return std::max<std::size_t>(s.frames, 1) * s.channels * s.height * s.width;
}

bool is_image_dataset(const std::string& data) {
    const auto dir = resolve_dataset_dir(data);
    return has_idx_images(dir) || find_cifar(dir).has_value();
}

std::unique_ptr<SampleSource> open_samples(const SampleOptions& options) {
    if (options.split != "train" && options.split != "test")
        throw ConfigError(fmt::format("split '{}': expected 'train' or 'test'", options.split));
    const auto dir = resolve_dataset_dir(options.data);
    if (!fs::exists(dir))
        throw FileError(dir.string(), -1,
                        "no such dataset (expected fashion-mnist, a folder of IDX files, a "
                        "CIFAR-10/100 binary folder or an event dataset folder)");
    const auto cifar = find_cifar(dir);
    if (options.label != CifarLabel::fine && !(cifar && cifar->version == CifarVersion::cifar100))
        throw ConfigError(
            fmt::format("label '{}': {} is not CIFAR-100 (coarse labels exist in "
                        "CIFAR-100 only)",
                        cifar_label_name(options.label), dir.string()));
    if (has_idx_images(dir) || cifar) {
        auto images = cifar ? load_cifar(*cifar, options.split, options.label)
                            : load_mnist_like(dir, options.split);
        if (options.limit) images.keep_first(options.limit);
        return image_samples(std::move(images));
    }
    const auto ds = open_event_dataset(dir, options.dataset);
    auto samples = options.split == "train" ? ds.train : ds.test;
    if (samples.empty())
        throw FileError(dir.string(), -1,
                        fmt::format("the {} dataset has no recordings in its {} split", ds.kind,
                                    options.split));
    if (options.limit && options.limit < samples.size()) samples.resize(options.limit);
    FrameOptions frames = options.frames;
    if (!frames.sensor.known()) frames.sensor = ds.sensor;
    frames = resolve_frame_options(frames);
    std::vector<std::size_t> labels;
    for (const auto& s : samples) labels.push_back(s.label);
    auto binned = bin_all(ds, samples, frames);
    const std::string split_name = ds.has_split ? options.split : "all";
    auto description = fmt::format(
        "{} ({}, {}): {} recordings binned into {}x2x{}x{} (split by {}), {} classes", dir.string(),
        ds.kind, split_name, samples.size(), frames.frames, frames.out_height, frames.out_width,
        frames.split_by == SplitBy::duration ? fmt::format("duration, dt {} us", frames.dt_us)
                                             : std::string(split_by_name(frames.split_by)),
        ds.classes.size());
    return event_samples(std::move(binned), std::move(labels), ds.classes.size(),
                         std::move(description), ds.has_split);
}

std::unique_ptr<SampleSource> image_samples(ImageDataset data) {
    return std::make_unique<ImageSource>(std::move(data));
}

std::unique_ptr<SampleSource> event_samples(std::vector<SparseFrames> frames,
                                            std::vector<std::size_t> labels, std::size_t classes,
                                            std::string description, bool split_given) {
    return std::make_unique<EventSource>(std::move(frames), std::move(labels), classes,
                                         std::move(description), split_given);
}

}  // namespace evformer::io
