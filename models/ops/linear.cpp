#include "evformer/models/ops/linear.hpp"

#include <algorithm>
#include <vector>

#include "evformer/models/kernels.hpp"
#include "parallel.hpp"

namespace evformer::models::ops {
namespace {

using Buf = std::vector<float>;

// Rows per GEMM call: the row block of x stays in cache while it meets every weight column.
constexpr std::size_t kRowBlock = 96;

}  // namespace

void linear_forward(const float* x, std::size_t rows, std::size_t in, std::size_t out,
                    const float* weight, const float* bias, float* y) {
    Buf wt(in * out);
    kernels::transpose(out, in, weight, wt.data());
    parallel_items((rows + kRowBlock - 1) / kRowBlock, 1, [&](std::size_t blk) {
        const std::size_t r0 = blk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
        kernels::gemm(r1 - r0, out, in, x + r0 * in, in, wt.data(), out, y + r0 * out, out, false);
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t j = 0; j < out; ++j) y[r * out + j] += bias[j];
    });
}

void linear_backward(const float* x, const float* dy, std::size_t rows, std::size_t in,
                     std::size_t out, const float* weight, float* grad_weight, float* grad_bias,
                     float* dx) {
    std::vector<float> gw_b(out * in + out, 0.f);
    chunked_reduce(
        rows, out * in + out, gw_b.data(), [&](std::size_t r0, std::size_t r1, float* part) {
            thread_local Buf dyt;
            dyt.resize(out * (r1 - r0));
            kernels::transpose(r1 - r0, out, dy + r0 * out, dyt.data());
            kernels::gemm(out, in, r1 - r0, dyt.data(), r1 - r0, x + r0 * in, in, part, in, true);
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t j = 0; j < out; ++j) part[out * in + j] += dy[r * out + j];
        });
    for (std::size_t i = 0; i < out * in; ++i) grad_weight[i] += gw_b[i];
    for (std::size_t j = 0; j < out; ++j) grad_bias[j] += gw_b[out * in + j];
    if (dx)
        parallel_items((rows + kRowBlock - 1) / kRowBlock, 1, [&](std::size_t blk) {
            const std::size_t r0 = blk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
            kernels::gemm(r1 - r0, in, out, dy + r0 * out, out, weight, in, dx + r0 * in, in,
                          false);
        });
}

}  // namespace evformer::models::ops
