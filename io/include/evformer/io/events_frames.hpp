// Event → frame binning: T frames of per-pixel, per-polarity event counts, the input of the
// trainer's event-frame path. Layout of FrameTensor::data: row-major [T, 2, H, W]; channel 0
// counts OFF events (p = 0), channel 1 ON events (p = 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "evformer/io/events.hpp"

namespace evformer::io {

/// How events are divided among the T frames (SpikingJelly's `split_by`).
enum class SplitBy {
    number,  ///< equal event counts N/T (integer), the last frame takes the remainder
    time,  ///< equal durations (t_last − t_first)/T (integer µs), the last frame runs to the end
    /// fixed bins of FrameOptions::dt_us from the first event, as live streams bin: frame i holds
    /// [t_first + i·dt, t_first + (i + 1)·dt); events at or after t_first + T·dt are not used
    duration,
};

/// Name of a split rule as options and files spell it ("number", "time", "duration").
const char* split_by_name(SplitBy s) noexcept;

/// What binning produces: sensor region, output size and number of frames.
struct FrameOptions {
    /// Number of frames T (≥ 1).
    std::size_t frames = 16;
    /// Split rule.
    SplitBy split_by = SplitBy::number;
    /// Bin length in µs of SplitBy::duration (≥ 1 there; unused by the other rules).
    std::int64_t dt_us = 0;
    /// Sensor size of the input events (required).
    Geometry sensor;
    /// Crop window in sensor pixels; a zero width/height means the whole sensor.
    std::uint32_t crop_x = 0, crop_y = 0, crop_width = 0, crop_height = 0;
    /// Output frame size (0 = the crop size); pixel (x, y) of the crop lands in
    /// (x·out_width / crop_width, y·out_height / crop_height), so 128 → 64 sums 2×2 blocks.
    std::uint32_t out_width = 0, out_height = 0;
};

/// T frames of counts as a plain float array, layout [T, 2, H, W] (see the file comment).
struct FrameTensor {
    std::size_t frames = 0, height = 0, width = 0;
    /// Time from the first to the last binned (crop-kept) event, µs.
    std::int64_t duration_us = 0;
    std::vector<float> data;
    /// The axes of `data`, outermost first, as at() indexes them: the `layout` attribute of
    /// frame files (kept beside at() so the file describes the data as it is laid out).
    static constexpr const char* axes = "T,polarity(0=OFF,1=ON),y,x";
    /// The count of polarity `p` at pixel (x, y) of frame `t`.
    float at(std::size_t t, std::size_t p, std::size_t y, std::size_t x) const {
        return data[((t * 2 + p) * height + y) * width + x];
    }
    /// The shape {T, 2, H, W}.
    std::vector<std::size_t> shape() const { return {frames, 2, height, width}; }
    /// The counts as uint16 (saturating at 65535), same layout.
    std::vector<std::uint16_t> to_u16() const;
};

/// Where an event of the sensor lands in frames of resolved options: the crop test and the
/// down-sampling map shared by FrameBinner and live streams (x of the crop → x·out_w/crop_w).
class PixelMap {
  public:
    /// The map of `options`, which must have been through resolve_frame_options.
    explicit PixelMap(const FrameOptions& options)
        : cx_(options.crop_x),
          cy_(options.crop_y),
          cw_(options.crop_width),
          ch_(options.crop_height),
          ow_(options.out_width),
          oh_(options.out_height) {}
    /// True when pixel (x, y) lies inside the crop window.
    bool keeps(std::uint32_t x, std::uint32_t y) const noexcept {
        return x >= cx_ && x - cx_ < cw_ && y >= cy_ && y - cy_ < ch_;
    }
    /// Output column of a kept pixel's x.
    std::uint32_t out_x(std::uint32_t x) const noexcept {
        return static_cast<std::uint32_t>(std::uint64_t{x - cx_} * ow_ / cw_);
    }
    /// Output row of a kept pixel's y.
    std::uint32_t out_y(std::uint32_t y) const noexcept {
        return static_cast<std::uint32_t>(std::uint64_t{y - cy_} * oh_ / ch_);
    }

  private:
    std::uint32_t cx_, cy_, cw_, ch_, ow_, oh_;
};

/// Checks options against the rules (T ≥ 1, crop inside the sensor, output no larger than the
/// crop, dt ≥ 1 µs for SplitBy::duration) and fills in defaulted sizes; throws ConfigError naming
/// the broken rule.
FrameOptions resolve_frame_options(const FrameOptions& options);

/// Accumulates events streamed in order into frames; needs the number of events that pass the
/// crop and their first/last time up front (a first pass over the recording provides them).
class FrameBinner {
  public:
    /// A binner for `kept_events` events in the crop window, spanning t_first..t_last µs.
    FrameBinner(const FrameOptions& options, std::uint64_t kept_events, std::int64_t t_first,
                std::int64_t t_last);
    /// True when an event lies inside the crop window.
    bool keeps(const Event& e) const noexcept;
    /// Adds events (in stream order; events outside the crop are ignored).
    void add(std::span<const Event> events);
    /// The frames built so far.
    const FrameTensor& tensor() const noexcept { return tensor_; }
    /// Moves the frames out.
    FrameTensor take() { return std::move(tensor_); }

  private:
    FrameOptions o_;
    PixelMap map_;
    FrameTensor tensor_;
    std::uint64_t kept_ = 0;
    std::uint64_t index_ = 0;
    std::uint64_t per_frame_ = 0;
    std::int64_t t_first_ = 0;
    std::int64_t dt_ = 0;
};

/// Bins an in-memory event list.
FrameTensor bin_events(std::span<const Event> events, const FrameOptions& options);

/// Bins a recording in two streaming passes (constant memory); the sensor size defaults to the
/// file's geometry (options.sensor overrides it). When `resolved` is given it receives the options
/// as applied (sensor, crop and output size filled in), so callers need not open the file again.
/// Throws FileError (unreadable or corrupt file) and ConfigError (unknown sensor size, bad crop).
FrameTensor bin_event_file(const std::filesystem::path& path, FrameOptions options,
                           const ReaderOptions& reader_options = {},
                           FrameOptions* resolved = nullptr);

/// Writes frames to HDF5: dataset /frames [T, 2, H, W] as "f32" or "u16", with attributes
/// (format "evformer-frames", split_by, dt_us for SplitBy::duration, sensor and crop), atomically.
void write_frames(const std::filesystem::path& path, const FrameTensor& frames,
                  const FrameOptions& options, const std::string& dtype = "f32");

}  // namespace evformer::io
