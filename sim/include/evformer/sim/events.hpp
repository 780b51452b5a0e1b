// Spikes as events: (neuron, count). A binary spike has count 1; a residual stream that sums
// spikes carries graded events (count m = m repeated additions downstream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace evformer::sim {

/// The events one population emits in one time step, in emission order.
struct EventList {
    std::vector<std::uint32_t> neuron;  ///< neuron index in the population's documented order
    std::vector<std::uint16_t> count;   ///< how many spikes the event stands for (≥ 1)

    /// Removes every event, keeping the capacity.
    void clear() noexcept {
        neuron.clear();
        count.clear();
    }
    /// Number of events.
    std::size_t size() const noexcept { return neuron.size(); }
    /// True when no event is held.
    bool empty() const noexcept { return neuron.empty(); }
    /// Appends an event of neuron `n` with count `m`.
    void push(std::uint32_t n, std::uint16_t m = 1) {
        neuron.push_back(n);
        count.push_back(m);
    }
    /// Sum of the counts (the number of spikes the events stand for).
    std::uint64_t total() const noexcept {
        std::uint64_t t = 0;
        for (auto m : count) t += m;
        return t;
    }
    /// Reserves room for `n` events.
    void reserve(std::size_t n) {
        neuron.reserve(n);
        count.reserve(n);
    }
};

}  // namespace evformer::sim
