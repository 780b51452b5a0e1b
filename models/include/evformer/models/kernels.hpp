// Dense kernels of the trainer: a cache-blocked, vectorised GEMM (the speed of training comes from
// here), im2col for 3×3 convolutions and transposes. Each call runs on one thread; callers
// parallelise over images or row chunks, which keeps results independent of scheduling.
#pragma once

#include <cstddef>

namespace evformer::models::kernels {

/// C[m×n] = A[m×k]·B[k×n] (or C += … when `accumulate`), row-major with leading dimensions.
void gemm(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
          const float* b, std::size_t ldb, float* c, std::size_t ldc, bool accumulate);

/// The same product by a plain triple loop: the reference of the tests and the benchmark baseline.
void gemm_naive(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                const float* b, std::size_t ldb, float* c, std::size_t ldc, bool accumulate);

/// dst[cols×rows] = transpose of src[rows×cols].
void transpose(std::size_t rows, std::size_t cols, const float* src, float* dst);

/// im2col of a 3×3, stride 1, pad 1 convolution: col[(c·9 + ky·3 + kx)·(h·w) + y·w + x].
void im2col3x3(const float* image, std::size_t channels, std::size_t h, std::size_t w, float* col);

/// The adjoint of im2col3x3: adds the column gradients into the image gradient.
void col2im3x3(const float* col, std::size_t channels, std::size_t h, std::size_t w, float* image);

}  // namespace evformer::models::kernels
