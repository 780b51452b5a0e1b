// When does a stream's event time pass on this machine's clock? Estimated from arrivals alone, so
// that a time bin (and a window) can be closed as soon as its end has passed, without waiting for
// an event of a later bin. Every packet tells the estimator when it arrived (wall clock, µs) and
// the event-time span of its events; the estimator remembers, over the last `memory_us` of
// arrivals:
//  - the least arrival offset, min(arrival − t_max): the least-delayed packet, i.e. where event
//    time t is on the wall clock at the earliest (t + that offset);
//  - the largest arrival offset, max(arrival − t_min): how long the sender has been seen to hold
//    an event back (its datagram buffering, its sleep jitter, the kernel's and this machine's
//    scheduling).
// The deadline of event time t is t + max(least offset + grace, largest offset): every event
// older than t has arrived by then unless it is later than any event of the last `memory_us`
// and than the grace. Events stamped on arrival (no timestamp) have arrival − t constant, so for
// them the deadline is exact: t + offset + grace.
//
// Pace: the offsets assume event time runs at the wall clock's pace (a camera, or a replay at
// --speed 1; the memory absorbs clock drift). A replay faster than real time makes the deadlines
// late (conservative: its windows close by their later events first). A sender whose event time
// runs measurably slower than the wall clock (pace < 0.99 over at least 100 ms, e.g. a replay at
// --speed 0.5) gets its deadlines stretched to the measured pace from the latest packet.
#pragma once

#include <cstdint>
#include <limits>

namespace evformer::stream {

/// Maps event time (µs) to a wall-clock deadline (µs on one steady clock) from packet arrivals.
class StreamClock {
  public:
    static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

    /// `grace_us` (≥ 0) is added to the least offset; `memory_us` (≥ 2) is how long arrivals are
    /// remembered (two halves: the older half is forgotten every memory_us / 2).
    explicit StreamClock(std::int64_t grace_us = 3000, std::int64_t memory_us = 2'000'000);

    /// A packet arrived at `arrival_us` holding events of times t_min ≤ … ≤ t_max.
    void observe(std::int64_t arrival_us, std::int64_t t_min, std::int64_t t_max) noexcept;
    /// True once a packet was observed.
    bool known() const noexcept { return seen_; }
    /// The wall time (µs) after which no event older than `t` is expected any more; kNever until
    /// a packet was observed.
    std::int64_t deadline_us(std::int64_t t) const noexcept;
    /// The least arrival − t remembered (µs).
    std::int64_t offset_us() const noexcept;
    /// How much later than the least offset an event has been seen to arrive (µs, ≥ 0).
    std::int64_t hold_us() const noexcept;
    /// Event µs per wall µs from the first packet to the latest (0 until 100 ms have passed).
    double pace() const noexcept;
    /// The grace (µs).
    std::int64_t grace_us() const noexcept { return grace_; }

  private:
    static constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::min();
    std::int64_t grace_, half_;
    bool seen_ = false;
    std::int64_t start_ = 0;                  // arrival that opened the current half
    std::int64_t lo_ = 0, hi_ = 0;            // current half: least, largest offset
    std::int64_t prev_lo_ = 0, prev_hi_ = 0;  // previous half (as the current when none)
    std::int64_t first_a_ = 0, first_t_ = 0, last_a_ = 0, last_t_ = 0;
};

}  // namespace evformer::stream
