#include "evformer/stream/clock.hpp"

#include <algorithm>
#include <cmath>

namespace evformer::stream {
namespace {

// Saturating a + b and a − b (event times are whatever the senders send).
std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    return r;
}
std::int64_t sub_sat(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    return r;
}

// A pace measured over at least this much wall time is trusted; below this fraction of real time
// the deadlines are stretched.
constexpr std::int64_t kPaceBaselineUs = 100'000;
constexpr double kSlowPace = 0.99;

}  // namespace

StreamClock::StreamClock(std::int64_t grace_us, std::int64_t memory_us)
    : grace_(std::max<std::int64_t>(grace_us, 0)),
      half_(std::max<std::int64_t>(memory_us / 2, 1)) {}

void StreamClock::observe(std::int64_t arrival_us, std::int64_t t_min,
                          std::int64_t t_max) noexcept {
    const std::int64_t lo = sub_sat(arrival_us, t_max), hi = sub_sat(arrival_us, t_min);
    if (!seen_) {
        seen_ = true;
        start_ = arrival_us;
        lo_ = prev_lo_ = lo;
        hi_ = prev_hi_ = hi;
        first_a_ = arrival_us;
        first_t_ = last_t_ = t_max;
    } else if (arrival_us - start_ >= half_) {
        // A new half: the previous one is forgotten (after a silence too: the last half before
        // it stays, event time keeps its pace through silence).
        prev_lo_ = lo_;
        prev_hi_ = hi_;
        start_ = arrival_us;
        lo_ = lo;
        hi_ = hi;
    } else {
        lo_ = std::min(lo_, lo);
        hi_ = std::max(hi_, hi);
    }
    last_a_ = arrival_us;
    last_t_ = std::max(last_t_, t_max);
}

std::int64_t StreamClock::offset_us() const noexcept {
    return std::min(lo_, prev_lo_);
}

std::int64_t StreamClock::hold_us() const noexcept {
    return std::max<std::int64_t>(sub_sat(std::max(hi_, prev_hi_), offset_us()), 0);
}

double StreamClock::pace() const noexcept {
    const std::int64_t wall = last_a_ - first_a_;
    if (!seen_ || wall < kPaceBaselineUs) return 0;
    return double(last_t_ - first_t_) / double(wall);
}

std::int64_t StreamClock::deadline_us(std::int64_t t) const noexcept {
    if (!seen_) return kNever;
    const std::int64_t wait = std::max(add_sat(offset_us(), grace_), std::max(hi_, prev_hi_));
    std::int64_t due = add_sat(t, wait);
    const double p = pace();
    if (p > 0 && p < kSlowPace) {
        // Slower than real time: from the latest packet at the measured pace.
        const double ahead = double(sub_sat(t, last_t_)) / std::max(p, 1e-6);
        const double slow = double(last_a_) + std::max(ahead, 0.0) + double(grace_);
        due = std::max(due, slow >= 9.2e18 ? kNever : static_cast<std::int64_t>(slow));
    }
    return due;
}

}  // namespace evformer::stream
