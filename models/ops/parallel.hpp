// Internal to the trainer's ops (models/ops/, models/network.cpp): the two ways they run work on
// TBB threads. Both keep results independent of how the scheduler assigns work to threads, so a
// training run is bit-reproducible for any thread count.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace evformer::models::ops {

/// Reductions are split into at most this many fixed chunks whose partial sums are added in
/// order, so results do not depend on how the scheduler assigns chunks to threads.
inline constexpr std::size_t kReduceChunks = 32;
/// Wide reductions (weight gradients) use fewer chunks: each chunk owns a zeroed partial of the
/// whole width, and summing them is serial.
inline constexpr std::size_t kWideReduceChunks = 8;
/// Widths above this count as wide.
inline constexpr std::size_t kWideReduce = 4096;

/// Runs f(i) for i in [0, n) in parallel, `grain` items per task at least (each i writes its own
/// outputs).
template <class F>
void parallel_items(std::size_t n, std::size_t grain, F&& f) {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, std::max<std::size_t>(1, grain)),
                      [&](const tbb::blocked_range<std::size_t>& r) {
                          for (std::size_t i = r.begin(); i != r.end(); ++i) f(i);
                      });
}

/// out[0:width] += Σ over fixed chunks of `items` of f(begin, end, partial), where each chunk's
/// `partial` (width values) starts at zero; the partials are added in chunk order.
template <class T, class F>
void chunked_reduce(std::size_t items, std::size_t width, T* out, F&& f) {
    const std::size_t max_chunks = width > kWideReduce ? kWideReduceChunks : kReduceChunks;
    const std::size_t chunk = std::max<std::size_t>(1, (items + max_chunks - 1) / max_chunks);
    const std::size_t chunks = (items + chunk - 1) / chunk;
    std::vector<T> partial(chunks * width, T{});
    parallel_items(chunks, 1, [&](std::size_t c) {
        f(c * chunk, std::min(items, (c + 1) * chunk), partial.data() + c * width);
    });
    for (std::size_t c = 0; c < chunks; ++c) {
        const T* src = partial.data() + c * width;
        for (std::size_t j = 0; j < width; ++j) out[j] += src[j];
    }
}

}  // namespace evformer::models::ops
