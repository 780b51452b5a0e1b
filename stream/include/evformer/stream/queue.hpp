// The bounded queue between the network thread (producer) and the simulation thread (consumer):
// whole packets of decoded events, bounded in events so memory stays bounded under any load. A
// packet that does not fit is dropped whole and counted, never silently; buffers of consumed
// packets are recycled so a steady stream allocates nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "evformer/io/events.hpp"

namespace evformer::stream {

/// The events of one datagram or TCP packet, in arrival order.
struct Packet {
    std::vector<io::Event> events;
    /// When the network thread received it.
    std::chrono::steady_clock::time_point arrival;
};

/// Counters of the queue (updated under its lock, readable at any time).
struct QueueCounts {
    std::atomic<std::uint64_t> pushed_packets{0}, pushed_events{0};
    std::atomic<std::uint64_t> dropped_packets{0}, dropped_events{0};
    std::atomic<std::uint64_t> depth_packets{0}, depth_events{0};
    std::atomic<std::uint64_t> peak_events{0};
};

/// A multi-producer, single-consumer queue of packets holding at most `capacity_events` events.
class PacketQueue {
  public:
    /// A queue of at most `capacity_events` events (≥ 1).
    explicit PacketQueue(std::size_t capacity_events);

    /// Appends a packet; false when it does not fit (or the queue is closed): the packet is
    /// dropped whole and counted.
    bool push(Packet&& packet);
    /// Takes the oldest packet into `out` (its old buffer is recycled), waiting up to `timeout`;
    /// false when none came (timeout, or closed and empty).
    bool pop(Packet& out, std::chrono::milliseconds timeout);
    /// As pop(), waiting until `deadline` at most (a deadline already past: no wait).
    bool pop_until(Packet& out, std::chrono::steady_clock::time_point deadline);
    /// True when no packet is queued.
    bool empty() const;
    /// A packet with an empty, recycled buffer for the producer to fill.
    Packet fresh();
    /// Refuses further pushes and wakes the consumer; packets already queued can still be popped.
    void close();
    /// True once close() was called.
    bool closed() const;
    /// The capacity in events.
    std::size_t capacity() const noexcept { return capacity_; }
    /// Counters.
    const QueueCounts& counts() const noexcept { return counts_; }

  private:
    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Packet> packets_;
    std::size_t events_ = 0;
    bool closed_ = false;
    std::vector<std::vector<io::Event>> spare_;  // recycled buffers (bounded)
    QueueCounts counts_;
};

}  // namespace evformer::stream
