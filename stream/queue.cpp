#include "evformer/stream/queue.hpp"

#include <algorithm>

namespace evformer::stream {
namespace {

// Recycled buffers: at most 64, of at most 65,536 events each (4 MiB per spare at most).
constexpr std::size_t kSpares = 64, kSpareEvents = std::size_t{1} << 16;

}  // namespace

PacketQueue::PacketQueue(std::size_t capacity_events)
    : capacity_(std::max<std::size_t>(capacity_events, 1)) {}

bool PacketQueue::push(Packet&& packet) {
    const std::size_t n = packet.events.size();
    {
        std::lock_guard lock(mutex_);
        if (closed_ || events_ + n > capacity_) {
            counts_.dropped_packets.fetch_add(1, std::memory_order_relaxed);
            counts_.dropped_events.fetch_add(n, std::memory_order_relaxed);
            packet.events.clear();
            if (spare_.size() < kSpares && packet.events.capacity() <= kSpareEvents)
                spare_.push_back(std::move(packet.events));
            return false;
        }
        events_ += n;
        packets_.push_back(std::move(packet));
        counts_.pushed_packets.fetch_add(1, std::memory_order_relaxed);
        counts_.pushed_events.fetch_add(n, std::memory_order_relaxed);
        counts_.depth_packets.store(packets_.size(), std::memory_order_relaxed);
        counts_.depth_events.store(events_, std::memory_order_relaxed);
        if (events_ > counts_.peak_events.load(std::memory_order_relaxed))
            counts_.peak_events.store(events_, std::memory_order_relaxed);
    }
    ready_.notify_one();
    return true;
}

bool PacketQueue::pop(Packet& out, std::chrono::milliseconds timeout) {
    return pop_until(out, std::chrono::steady_clock::now() + timeout);
}

bool PacketQueue::empty() const {
    std::lock_guard lock(mutex_);
    return packets_.empty();
}

bool PacketQueue::pop_until(Packet& out, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (packets_.empty() && !closed_ &&
        !ready_.wait_until(lock, deadline, [&] { return !packets_.empty() || closed_; }))
        return false;
    if (packets_.empty()) return false;
    out.events.clear();
    if (out.events.capacity() > 0 && out.events.capacity() <= kSpareEvents &&
        spare_.size() < kSpares)
        spare_.push_back(std::move(out.events));
    out = std::move(packets_.front());
    packets_.pop_front();
    events_ -= out.events.size();
    counts_.depth_packets.store(packets_.size(), std::memory_order_relaxed);
    counts_.depth_events.store(events_, std::memory_order_relaxed);
    return true;
}

Packet PacketQueue::fresh() {
    Packet p;
    std::lock_guard lock(mutex_);
    if (!spare_.empty()) {
        p.events = std::move(spare_.back());
        spare_.pop_back();
        p.events.clear();
    }
    return p;
}

void PacketQueue::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    ready_.notify_all();
}

bool PacketQueue::closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
}

}  // namespace evformer::stream
