#include "evformer/models/ops/conv.hpp"

#include <algorithm>
#include <vector>

#include "evformer/models/kernels.hpp"
#include "parallel.hpp"

namespace evformer::models::ops {

using Buf = std::vector<float>;

void conv3x3_forward(const float* in, std::size_t images, std::size_t cin, std::size_t cout,
                     std::size_t h, std::size_t w, const float* weight, float* out) {
    const std::size_t plane = h * w, k = cin * 9;
    parallel_items(images, 1, [&](std::size_t n) {
        thread_local Buf col;
        col.resize(k * plane);
        kernels::im2col3x3(in + n * cin * plane, cin, h, w, col.data());
        kernels::gemm(cout, plane, k, weight, k, col.data(), plane, out + n * cout * plane, plane,
                      false);
    });
}

// The weight gradient is accumulated transposed (dWᵀ += col·doutᵀ), which transposes the small
// dout instead of the nine-times larger col.
void conv3x3_backward(const float* in, const float* dout, std::size_t images, std::size_t cin,
                      std::size_t cout, std::size_t h, std::size_t w, const float* weight,
                      float* grad_weight, float* din) {
    const std::size_t plane = h * w, k = cin * 9;
    Buf wt(k * cout), gwt(k * cout, 0.f);
    kernels::transpose(cout, k, weight, wt.data());
    chunked_reduce(images, k * cout, gwt.data(), [&](std::size_t n0, std::size_t n1, float* part) {
        thread_local Buf col, gt, dcol;
        col.resize(k * plane);
        gt.resize(plane * cout);
        if (din) dcol.resize(k * plane);
        for (std::size_t n = n0; n < n1; ++n) {
            const float* g = dout + n * cout * plane;
            kernels::im2col3x3(in + n * cin * plane, cin, h, w, col.data());
            kernels::transpose(cout, plane, g, gt.data());
            kernels::gemm(k, cout, plane, col.data(), plane, gt.data(), cout, part, cout, true);
            if (din) {
                kernels::gemm(k, plane, cout, wt.data(), cout, g, plane, dcol.data(), plane, false);
                float* di = din + n * cin * plane;
                std::fill(di, di + cin * plane, 0.f);
                kernels::col2im3x3(dcol.data(), cin, h, w, di);
            }
        }
    });
    for (std::size_t o = 0; o < cout; ++o)
        for (std::size_t j = 0; j < k; ++j) grad_weight[o * k + j] += gwt[j * cout + o];
}

}  // namespace evformer::models::ops
