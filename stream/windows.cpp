#include "evformer/stream/windows.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "evformer/error.hpp"

namespace evformer::stream {

using Clock = std::chrono::steady_clock;

namespace {

std::int64_t wall_us(Clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

}  // namespace

const char* window_close_name(WindowClose c) noexcept {
    switch (c) {
        case WindowClose::event:
            return "event";
        case WindowClose::deadline:
            return "deadline";
        case WindowClose::flush:
            return "flush";
    }
    return "event";
}

WindowRunner::WindowRunner(const sim::Network& net, WindowOptions options, Emit emit)
    : net_(net),
      o_(std::move(options)),
      emit_(std::move(emit)),
      simulator_(net),
      map_(o_.frames),
      clock_(o_.grace_us) {
    if (o_.window_steps == 0) o_.window_steps = net.time_steps;
    if (o_.dt_us < 1)
        throw ConfigError(fmt::format("--dt {} us: a bin lasts at least 1 us", o_.dt_us));
    if (o_.grace_us < 0)
        throw ConfigError(fmt::format("--grace-us {}: expected a grace >= 0 us", o_.grace_us));
    const auto& input = net.input_shape();
    if (input.channels != 2)
        throw ConfigError(
            fmt::format("the model reads {} input channel(s); live event streams need 2 (OFF, ON)",
                        input.channels));
    if (o_.frames.out_width != input.width || o_.frames.out_height != input.height)
        throw ConfigError(fmt::format("events are mapped to {}x{} but the model's input is {}x{}",
                                      o_.frames.out_width, o_.frames.out_height, input.width,
                                      input.height));
    width_ = input.width;
    plane_ = input.width * input.height;
    counts_.assign(2 * plane_, 0);
    // The pixel map as tables: output column / row offset of each sensor x / y, −1 outside the
    // crop.
    col_.assign(o_.frames.sensor.width, -1);
    row_.assign(o_.frames.sensor.height, -1);
    for (std::uint32_t x = 0; x < o_.frames.sensor.width; ++x)
        if (map_.keeps(x, o_.frames.crop_y)) col_[x] = static_cast<std::int32_t>(map_.out_x(x));
    for (std::uint32_t y = 0; y < o_.frames.sensor.height; ++y)
        if (map_.keeps(o_.frames.crop_x, y))
            row_[y] = static_cast<std::int32_t>(map_.out_y(y) * width_);
}

void WindowRunner::add(std::span<const io::Event> events,
                       std::chrono::steady_clock::time_point arrival) {
    const std::uint32_t sw = o_.frames.sensor.width, sh = o_.frames.sensor.height;
    const auto window = static_cast<std::int64_t>(o_.window_steps);
    // Counted locally and published once per call (the statistics read them from another thread).
    std::uint64_t outside = 0, crop = 0, late = 0, accepted = 0;
    // The event-time span of the packet's accepted (and recently late) events, for the clock.
    std::int64_t t_min = std::numeric_limits<std::int64_t>::max(),
                 t_max = std::numeric_limits<std::int64_t>::min();
    for (const auto& e : events) {
        if (e.x >= sw || e.y >= sh) {
            ++outside;
            continue;
        }
        const std::int32_t col = col_[e.x], row = row_[e.y];
        if (col < 0 || row < 0) {
            ++crop;
            continue;
        }
        // Fast path: the event falls into the bin being filled.
        if (!(open_ && e.t >= bin_lo_ && e.t < bin_hi_)) {
            if (!origin_set_) {
                origin_set_ = true;
                t0_ = e.t;
            }
            const std::int64_t rel = e.t - t0_;
            if (rel < 0) {
                ++late;
                continue;
            }
            const std::int64_t bin = rel / o_.dt_us;
            const std::int64_t first_open = open_ ? current_bin_ : next_free_bin_;
            if (bin < first_open) {
                ++late;
                // Late by less than a window: the sender held it back that long, the clock
                // learns it (later ones are another time base, or garbage).
                if (first_open - bin <= window) {
                    t_min = std::min(t_min, e.t);
                    t_max = std::max(t_max, e.t);
                }
                continue;
            }
            if (open_ && bin >= (window_ + 1) * window) close_window(WindowClose::event, arrival);
            if (!open_) open_window(bin);
            while (current_bin_ < bin) step_current();
        }
        const std::uint32_t index =
            (e.p ? static_cast<std::uint32_t>(plane_) : 0u) + static_cast<std::uint32_t>(row + col);
        auto& c = counts_[index];
        if (c == 0) touched_.push_back(index);
        if (c < 65535) ++c;
        ++window_events_;
        ++accepted;
        last_t_ = e.t;
        t_min = std::min(t_min, e.t);
        t_max = std::max(t_max, e.t);
    }
    if (accepted) last_arrival_ = arrival;
    if (t_min <= t_max) {
        clock_.observe(wall_us(arrival), t_min, t_max);
        counters_.deadline_after_end_us.store(std::max(clock_.grace_us(), clock_.hold_us()),
                                              std::memory_order_relaxed);
    }
    counters_.dropped_outside.fetch_add(outside, std::memory_order_relaxed);
    counters_.outside_crop.fetch_add(crop, std::memory_order_relaxed);
    counters_.dropped_late.fetch_add(late, std::memory_order_relaxed);
    counters_.events_simulated.fetch_add(accepted, std::memory_order_relaxed);
}

void WindowRunner::open_window(std::int64_t bin) {
    const auto window = static_cast<std::int64_t>(o_.window_steps);
    const std::int64_t w = bin / window;
    if (ran_window_ && w > window_ + 1)
        counters_.empty_windows.fetch_add(static_cast<std::uint64_t>(w - window_ - 1),
                                          std::memory_order_relaxed);
    else if (!ran_window_ && w > 0)
        counters_.empty_windows.fetch_add(static_cast<std::uint64_t>(w), std::memory_order_relaxed);
    simulator_.begin(o_.continuous && ran_window_);
    window_ = w;
    current_bin_ = w * window;
    bin_lo_ = t0_ + current_bin_ * o_.dt_us;
    bin_hi_ = bin_lo_ + o_.dt_us;
    window_events_ = 0;
    open_ = true;
}

void WindowRunner::step_current() {
    // The bin's events as `evformer run` lists them: channel-major order, counts aggregated.
    std::sort(touched_.begin(), touched_.end());
    input_.clear();
    for (const auto index : touched_) {
        const std::uint32_t c = index / static_cast<std::uint32_t>(plane_);
        const std::uint32_t pixel = index % static_cast<std::uint32_t>(plane_);
        input_.push(pixel * 2 + c, counts_[index]);
        counts_[index] = 0;
    }
    touched_.clear();
    simulator_.step_events(input_);
    counters_.steps.fetch_add(1, std::memory_order_relaxed);
    ++current_bin_;
    bin_lo_ = t0_ + current_bin_ * o_.dt_us;
    bin_hi_ = bin_lo_ + o_.dt_us;
}

void WindowRunner::close_window(WindowClose by, Clock::time_point ready) {
    const auto closing = Clock::now();
    const auto window = static_cast<std::int64_t>(o_.window_steps);
    while (current_bin_ < (window_ + 1) * window) step_current();
    WindowResult w;
    w.result = simulator_.finish();
    w.closed_by = by;
    w.last_arrival = last_arrival_;
    w.ready = ready;
    w.closing = closing;
    w.index = static_cast<std::uint64_t>(window_);
    w.t_start_us = t0_ + window_ * window * o_.dt_us;
    w.t_end_us = w.t_start_us + window * o_.dt_us;
    w.events_in = window_events_;
    w.t_last_us = last_t_;
    const auto done = Clock::now();
    w.close_s = std::chrono::duration<double>(done - closing).count();
    w.latency_s = std::chrono::duration<double>(done - last_arrival_).count();
    w.server_s = std::chrono::duration<double>(done - std::min(ready, done)).count();
    open_ = false;
    bin_lo_ = bin_hi_ = 0;
    ran_window_ = true;
    next_free_bin_ = (window_ + 1) * window;
    counters_.windows.fetch_add(1, std::memory_order_relaxed);
    emit_(std::move(w));
}

void WindowRunner::flush(Clock::time_point ready) {
    if (open_)
        close_window(WindowClose::flush, ready == Clock::time_point{} ? Clock::now() : ready);
}

Clock::time_point WindowRunner::next_deadline() const noexcept {
    if (!open_ || !clock_.known()) return Clock::time_point::max();
    const std::int64_t due = clock_.deadline_us(bin_hi_);
    // Beyond what the clock can represent: never.
    if (due >= wall_us(Clock::time_point::max()) - 1) return Clock::time_point::max();
    return Clock::time_point(std::chrono::microseconds(due));
}

std::size_t WindowRunner::advance(Clock::time_point now) {
    const auto window = static_cast<std::int64_t>(o_.window_steps);
    std::size_t closed = 0;
    while (open_) {
        const auto due = next_deadline();
        if (due > now) break;
        counters_.deadline_steps.fetch_add(1, std::memory_order_relaxed);
        if (current_bin_ + 1 == (window_ + 1) * window) {
            counters_.deadline_windows.fetch_add(1, std::memory_order_relaxed);
            close_window(WindowClose::deadline, due);
            ++closed;
        } else {
            step_current();
        }
    }
    return closed;
}

std::string window_json(const WindowResult& w, const std::vector<sim::LayerInfo>& layers,
                        const sim::EnergyModel& energy) {
    using json = nlohmann::ordered_json;  // "type" first, as written
    const auto& r = w.result;
    json per_layer = json::array();
    sim::StepCounts total;
    for (std::size_t l = 0; l < layers.size() && r.time_steps > 0; ++l) {
        const auto c = r.layer_total(l);
        total += c;
        per_layer.push_back({{"name", layers[l].name},
                             {"sops", c.sops},
                             {"macs", c.macs},
                             {"spikes", c.spikes},
                             {"energy_mj", energy.millijoules(double(c.sops), double(c.macs))}});
    }
    json j = {{"type", "window"},
              {"window", w.index},
              {"t_start_us", w.t_start_us},
              {"t_end_us", w.t_end_us},
              {"t_last_event_us", w.t_last_us},
              {"steps", r.time_steps},
              {"events_in", w.events_in},
              {"prediction", r.prediction},
              {"scores", r.logits},
              {"sops", total.sops},
              {"macs", total.macs},
              {"spikes", total.spikes},
              {"energy_mj", energy.millijoules(double(total.sops), double(total.macs))},
              {"latency_ms", w.latency_s * 1e3},
              {"closed_by", window_close_name(w.closed_by)},
              {"server_ms", w.server_s * 1e3},
              {"layers", per_layer}};
    return j.dump();
}

}  // namespace evformer::stream
