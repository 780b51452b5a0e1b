// Live events → time steps of the engine → windows of results. Events come in arrival order; bins
// of a fixed `dt` (µs) from the stream's first accepted event drive the steps; every `window`
// steps the network's result is emitted. Per step the engine receives the bin's events as
// `evformer run` feeds a recording binned the same way (`--split-by duration --dt`): per
// pixel and polarity one event whose count is the number of events (saturating at 65535), in the
// channel-major order c·H·W + y·W + x of the frames, as neuron (y·W + x)·2 + c.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "evformer/io/events.hpp"
#include "evformer/io/events_frames.hpp"
#include "evformer/sim/energy.hpp"
#include "evformer/sim/network.hpp"
#include "evformer/stream/clock.hpp"

namespace evformer::stream {

/// How events become steps and windows.
struct WindowOptions {
    std::int64_t dt_us = 20000;    ///< bin length = one time step, µs (≥ 1)
    std::size_t window_steps = 0;  ///< steps per window (≥ 1; 0 = the network's T)
    bool continuous = false;       ///< keep membrane state from window to window
    /// Deadlines (advance()): a bin closes once the wall clock passes its end (mapped by a
    /// StreamClock over the accepted events' arrivals) + this grace, µs (≥ 0).
    std::int64_t grace_us = 3000;
    /// Sensor, crop and output size (resolved: resolve_frame_options); the output size must be
    /// the network's input; `frames`, `split_by` and `dt_us` of it are not used.
    io::FrameOptions frames;
};

/// What closed a window.
enum class WindowClose {
    event,     ///< an event of a later window arrived
    deadline,  ///< the wall clock passed the window's end + grace (advance())
    flush,     ///< flush(): the stream went idle, or ends
};

/// "event", "deadline" or "flush".
const char* window_close_name(WindowClose c) noexcept;

/// One emitted window.
struct WindowResult {
    std::uint64_t index = 0;      ///< window number on the stream's grid (t0 + index·W·dt)
    std::int64_t t_start_us = 0;  ///< event time where the window starts
    std::int64_t t_end_us = 0;    ///< event time where it ends (exclusive)
    std::uint64_t events_in = 0;  ///< events simulated in the window
    std::int64_t t_last_us = 0;   ///< event time of the window's last event
    sim::SampleResult result;     ///< logits, prediction, counts [layer][step]
    /// Wall time from the arrival of the window's last event to the result, seconds.
    double latency_s = 0;
    WindowClose closed_by = WindowClose::event;
    /// When the window's last event arrived.
    std::chrono::steady_clock::time_point last_arrival{};
    /// When the window could be closed: the arrival of the event that closed it, its deadline,
    /// or the time given to flush().
    std::chrono::steady_clock::time_point ready{};
    /// When closing started (its remaining steps, then the head), and how long that took, s.
    std::chrono::steady_clock::time_point closing{};
    double close_s = 0;
    /// Wall time from `ready` to the result, seconds: the server's own share of the latency.
    double server_s = 0;
};

/// Counters of the runner (written by the simulation thread, readable from any thread).
struct WindowCounters {
    std::atomic<std::uint64_t> events_simulated{0};  ///< events accepted into a bin of a window
    std::atomic<std::uint64_t> dropped_late{0};      ///< older than the current bin (or window)
    std::atomic<std::uint64_t> dropped_outside{0};   ///< x or y outside the sensor
    std::atomic<std::uint64_t> outside_crop{0};      ///< inside the sensor, outside the crop
    std::atomic<std::uint64_t> windows{0};           ///< windows emitted
    std::atomic<std::uint64_t> empty_windows{0};     ///< windows without events, skipped
    std::atomic<std::uint64_t> steps{0};             ///< steps simulated
    std::atomic<std::uint64_t> deadline_steps{0};    ///< steps closed by their deadline
    std::atomic<std::uint64_t> deadline_windows{0};  ///< windows closed by their deadline
    /// How long after its end on the stream's clock a bin's deadline falls (max(grace, the
    /// clock's hold)), µs, as of the latest packet.
    std::atomic<std::int64_t> deadline_after_end_us{0};
};

/// Bins events into steps and runs the windows on a Simulator; emits each window's result.
class WindowRunner {
  public:
    /// Called with each finished window.
    using Emit = std::function<void(WindowResult&&)>;

    /// A runner for `net` (which must outlive it); ConfigError when the options do not fit the
    /// network (output size, channels) or break a rule (dt ≥ 1, window ≥ 1).
    WindowRunner(const sim::Network& net, WindowOptions options, Emit emit);

    /// Adds events in arrival order that arrived at `arrival`. Events outside the sensor, outside
    /// the crop, or older than the current bin are counted and dropped; an event of a later bin
    /// steps the engine up to it, closing windows as they fill.
    void add(std::span<const io::Event> events, std::chrono::steady_clock::time_point arrival);
    /// Closes the open window now (its remaining steps run empty): no more events are expected
    /// for it (the stream went idle, or ends). Later events of its time are dropped as late.
    /// `ready` is when the window could be closed (default: now).
    void flush(std::chrono::steady_clock::time_point ready = {});
    /// Closes every bin whose deadline (clock().deadline_us of its end) is at or before `now`:
    /// steps it, and closes the window with its last bin. Later events of a closed bin are late.
    /// Returns the number of windows closed.
    std::size_t advance(std::chrono::steady_clock::time_point now);
    /// The deadline of the bin being filled; time_point::max() when no window is open or no
    /// arrival has been seen.
    std::chrono::steady_clock::time_point next_deadline() const noexcept;
    /// True while a window has started and not been emitted.
    bool window_open() const noexcept { return open_; }
    /// The estimate of when event time passes on the wall clock.
    const StreamClock& clock() const noexcept { return clock_; }
    /// Counters.
    const WindowCounters& counters() const noexcept { return counters_; }
    /// The options as applied (window_steps filled in).
    const WindowOptions& options() const noexcept { return o_; }
    /// Event time simulated so far (steps × dt), µs.
    std::int64_t simulated_us() const noexcept {
        return static_cast<std::int64_t>(counters_.steps.load(std::memory_order_relaxed)) *
               o_.dt_us;
    }

  private:
    void open_window(std::int64_t bin);
    void step_current();
    void close_window(WindowClose by, std::chrono::steady_clock::time_point ready);

    const sim::Network& net_;
    WindowOptions o_;
    Emit emit_;
    sim::Simulator simulator_;
    io::PixelMap map_;
    std::size_t plane_ = 0, width_ = 0;
    bool origin_set_ = false;
    std::int64_t t0_ = 0;
    bool open_ = false;
    bool ran_window_ = false;
    std::int64_t window_ = 0;         // index of the open window
    std::int64_t current_bin_ = 0;    // bin being filled (absolute)
    std::int64_t next_free_bin_ = 0;  // first bin not yet closed
    std::uint64_t window_events_ = 0;
    std::int64_t last_t_ = 0;  // time of the open window's last event
    std::chrono::steady_clock::time_point last_arrival_{};
    std::int64_t bin_lo_ = 0, bin_hi_ = 0;  // event times of the bin being filled
    std::vector<std::int32_t> col_, row_;   // pixel map tables (−1: outside the crop)
    std::vector<std::uint16_t> counts_;     // per channel-major input index, current bin
    std::vector<std::uint32_t> touched_;    // indices with a count, current bin
    sim::EventList input_;
    StreamClock clock_;
    WindowCounters counters_;
};

/// The JSON line of one window (type "window"): index, event-time span, events in, prediction,
/// scores, per-layer SOPs/MACs/spikes/energy and totals, latency, what closed it and the
/// server's share of the latency.
std::string window_json(const WindowResult& w, const std::vector<sim::LayerInfo>& layers,
                        const sim::EnergyModel& energy);

}  // namespace evformer::stream
