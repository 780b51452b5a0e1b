#include "evformer/io/events_frames.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"

namespace evformer::io {

std::vector<std::uint16_t> FrameTensor::to_u16() const {
    std::vector<std::uint16_t> out(data.size());
    for (std::size_t i = 0; i < data.size(); ++i)
        out[i] = static_cast<std::uint16_t>(std::min(data[i], 65535.f));
    return out;
}

const char* split_by_name(SplitBy s) noexcept {
    switch (s) {
        case SplitBy::number:
            return "number";
        case SplitBy::time:
            return "time";
        case SplitBy::duration:
            return "duration";
    }
    return "number";
}

FrameOptions resolve_frame_options(const FrameOptions& options) {
    FrameOptions o = options;
    if (o.frames == 0) throw ConfigError("frames: T must be at least 1");
    if (o.split_by == SplitBy::duration && o.dt_us < 1)
        throw ConfigError(fmt::format(
            "frames: split by duration needs a bin length dt of at least 1 us (got {})", o.dt_us));
    if (!o.sensor.known())
        throw ConfigError(
            "frames: the sensor size is unknown (the file does not state it; give --sensor WxH)");
    if (o.crop_width == 0) o.crop_width = o.sensor.width - std::min(o.crop_x, o.sensor.width);
    if (o.crop_height == 0) o.crop_height = o.sensor.height - std::min(o.crop_y, o.sensor.height);
    if (std::uint64_t{o.crop_x} + o.crop_width > o.sensor.width ||
        std::uint64_t{o.crop_y} + o.crop_height > o.sensor.height || o.crop_width == 0 ||
        o.crop_height == 0)
        throw ConfigError(fmt::format(
            "frames: crop {}x{} at ({}, {}) must lie inside the {}x{} sensor and be non-empty",
            o.crop_width, o.crop_height, o.crop_x, o.crop_y, o.sensor.width, o.sensor.height));
    if (o.out_width == 0) o.out_width = o.crop_width;
    if (o.out_height == 0) o.out_height = o.crop_height;
    if (o.out_width > o.crop_width || o.out_height > o.crop_height)
        throw ConfigError(fmt::format("frames: output size {}x{} must not exceed the crop {}x{}",
                                      o.out_width, o.out_height, o.crop_width, o.crop_height));
    return o;
}

FrameBinner::FrameBinner(const FrameOptions& options, std::uint64_t kept_events,
                         std::int64_t t_first, std::int64_t t_last)
    : o_(resolve_frame_options(options)), map_(o_), kept_(kept_events), t_first_(t_first) {
    tensor_.frames = o_.frames;
    tensor_.height = o_.out_height;
    tensor_.width = o_.out_width;
    tensor_.duration_us = std::max<std::int64_t>(t_last - t_first, 0);
    tensor_.data.assign(o_.frames * 2 * o_.out_height * o_.out_width, 0.f);
    per_frame_ = kept_ / o_.frames;
    dt_ = o_.split_by == SplitBy::duration
              ? o_.dt_us
              : std::max<std::int64_t>(t_last - t_first, 0) / static_cast<std::int64_t>(o_.frames);
    if (o_.split_by == SplitBy::duration)
        tensor_.duration_us =
            std::min(tensor_.duration_us, dt_ * static_cast<std::int64_t>(o_.frames) - 1);
}

bool FrameBinner::keeps(const Event& e) const noexcept {
    return map_.keeps(e.x, e.y);
}

void FrameBinner::add(std::span<const Event> events) {
    const std::uint64_t last = o_.frames - 1;
    const std::size_t plane = tensor_.height * tensor_.width;
    for (const auto& e : events) {
        if (!keeps(e)) continue;
        std::uint64_t f = last;
        if (o_.split_by == SplitBy::number) {
            if (per_frame_ > 0) f = std::min(index_ / per_frame_, last);
        } else if (o_.split_by == SplitBy::duration) {
            const auto rel = std::max<std::int64_t>(e.t - t_first_, 0);
            f = static_cast<std::uint64_t>(rel / dt_);
            if (f > last) continue;  // after the T bins: not used
        } else if (dt_ > 0) {
            const auto rel = std::max<std::int64_t>(e.t - t_first_, 0);
            f = std::min(static_cast<std::uint64_t>(rel / dt_), last);
        }
        ++index_;
        const std::size_t x = map_.out_x(e.x);
        const std::size_t y = map_.out_y(e.y);
        tensor_.data[(f * 2 + (e.p ? 1 : 0)) * plane + y * tensor_.width + x] += 1.f;
    }
}

FrameTensor bin_events(std::span<const Event> events, const FrameOptions& options) {
    const auto o = resolve_frame_options(options);
    FrameBinner probe(o, 0, 0, 0);
    std::uint64_t kept = 0;
    std::int64_t first = 0, last = 0;
    for (const auto& e : events) {
        if (!probe.keeps(e)) continue;
        if (kept == 0) first = e.t;
        last = e.t;
        ++kept;
    }
    FrameBinner binner(o, kept, first, last);
    binner.add(events);
    return binner.take();
}

FrameTensor bin_event_file(const std::filesystem::path& path, FrameOptions options,
                           const ReaderOptions& reader_options, FrameOptions* resolved) {
    auto reader = open_event_file(path, reader_options);
    if (!options.sensor.known()) options.sensor = reader->geometry();
    if (!options.sensor.known())
        throw ConfigError(path.string() +
                          ": the file does not state its sensor size; give it (--sensor WxH)");
    const auto o = resolve_frame_options(options);
    if (resolved) *resolved = o;
    FrameBinner probe(o, 0, 0, 0);
    EventChunk chunk;
    std::uint64_t kept = 0;
    std::int64_t first = 0, last = 0;
    while (reader->read(chunk) > 0) {
        for (const auto& e : chunk.events()) {
            if (!probe.keeps(e)) continue;
            if (kept == 0) first = e.t;
            last = e.t;
            ++kept;
        }
    }
    FrameBinner binner(o, kept, first, last);
    reader = open_event_file(path, reader_options);
    while (reader->read(chunk) > 0) binner.add(chunk.events());
    return binner.take();
}

void write_frames(const std::filesystem::path& path, const FrameTensor& frames,
                  const FrameOptions& options, const std::string& dtype) {
    h5::Writer w(path);
    const h5::Shape shape = frames.shape();
    const h5::StorageOptions storage{.chunk_rows = 1, .gzip_level = 4};
    if (dtype == "f32")
        w.write<float>("frames", frames.data, shape, storage);
    else if (dtype == "u16")
        w.write<std::uint16_t>("frames", frames.to_u16(), shape, storage);
    else
        throw ConfigError("frames: dtype '" + dtype + "' (expected f32 or u16)");
    w.attr("/", "format", std::string("evformer-frames"));
    w.attr("/", "format_version", std::int64_t{1});
    w.attr("/", "layout", std::string(FrameTensor::axes));
    w.attr("/", "split_by", std::string(split_by_name(options.split_by)));
    if (options.split_by == SplitBy::duration) w.attr("/", "dt_us", options.dt_us);
    w.attr("/", "sensor_width", std::int64_t{options.sensor.width});
    w.attr("/", "sensor_height", std::int64_t{options.sensor.height});
    w.attr("/", "crop",
           fmt::format("{},{},{},{}", options.crop_x, options.crop_y, options.crop_width,
                       options.crop_height));
    w.commit();
}

}  // namespace evformer::io
