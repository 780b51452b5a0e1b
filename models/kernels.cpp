#include "evformer/models/kernels.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace evformer::models::kernels {
namespace {

// One SIMD register of floats; the micro-kernel keeps kMr × 2 of them as accumulators.
#if defined(__AVX512F__)
constexpr std::size_t kVec = 16;
#else
constexpr std::size_t kVec = 8;
#endif
typedef float Vec __attribute__((vector_size(kVec * sizeof(float))));

constexpr std::size_t kMr = 6;         // rows of C per micro-kernel call
constexpr std::size_t kNr = 2 * kVec;  // columns of C per micro-kernel call (one packed panel)
constexpr std::size_t kKc = 256;       // depth of one packed block of B (fits L2 with n ≤ 1024)

inline Vec load(const float* p) {
    Vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store(float* p, const Vec& v) {
    std::memcpy(p, &v, sizeof v);
}

// Packs B[0:kc, 0:n] into panels of kNr columns (zero padded), panel-major then depth-major.
void pack_b(const float* b, std::size_t ldb, std::size_t kc, std::size_t n, float* out) {
    for (std::size_t jp = 0; jp < n; jp += kNr) {
        const std::size_t width = std::min(kNr, n - jp);
        float* panel = out + (jp / kNr) * kc * kNr;
        for (std::size_t p = 0; p < kc; ++p) {
            const float* src = b + p * ldb + jp;
            float* dst = panel + p * kNr;
            std::size_t j = 0;
            for (; j < width; ++j) dst[j] = src[j];
            for (; j < kNr; ++j) dst[j] = 0.f;
        }
    }
}

// C[0:MR, 0:cols] (+)= A[0:MR, 0:kc] · panel, the panel holding kNr packed columns per depth.
template <std::size_t MR>
void micro_kernel(std::size_t kc, const float* a, std::size_t lda, const float* panel, float* c,
                  std::size_t ldc, std::size_t cols, bool accumulate) {
    Vec c0[MR], c1[MR];
    for (std::size_t r = 0; r < MR; ++r) c0[r] = c1[r] = Vec{};
    for (std::size_t p = 0; p < kc; ++p) {
        const Vec b0 = load(panel + p * kNr);
        const Vec b1 = load(panel + p * kNr + kVec);
        for (std::size_t r = 0; r < MR; ++r) {
            const float av = a[r * lda + p];
            c0[r] += b0 * av;
            c1[r] += b1 * av;
        }
    }
    for (std::size_t r = 0; r < MR; ++r) {
        float* row = c + r * ldc;
        if (cols == kNr) {
            if (accumulate) {
                store(row, load(row) + c0[r]);
                store(row + kVec, load(row + kVec) + c1[r]);
            } else {
                store(row, c0[r]);
                store(row + kVec, c1[r]);
            }
        } else {
            float tmp[kNr];
            store(tmp, c0[r]);
            store(tmp + kVec, c1[r]);
            for (std::size_t j = 0; j < cols; ++j) row[j] = accumulate ? row[j] + tmp[j] : tmp[j];
        }
    }
}

void micro_dispatch(std::size_t rows, std::size_t kc, const float* a, std::size_t lda,
                    const float* panel, float* c, std::size_t ldc, std::size_t cols,
                    bool accumulate) {
    switch (rows) {
        case 6:
            micro_kernel<6>(kc, a, lda, panel, c, ldc, cols, accumulate);
            break;
        case 5:
            micro_kernel<5>(kc, a, lda, panel, c, ldc, cols, accumulate);
            break;
        case 4:
            micro_kernel<4>(kc, a, lda, panel, c, ldc, cols, accumulate);
            break;
        case 3:
            micro_kernel<3>(kc, a, lda, panel, c, ldc, cols, accumulate);
            break;
        case 2:
            micro_kernel<2>(kc, a, lda, panel, c, ldc, cols, accumulate);
            break;
        default:
            micro_kernel<1>(kc, a, lda, panel, c, ldc, cols, accumulate);
            break;
    }
}

}  // namespace

void gemm(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
          const float* b, std::size_t ldb, float* c, std::size_t ldc, bool accumulate) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (std::size_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
        return;
    }
    thread_local std::vector<float> packed;
    const std::size_t panels = (n + kNr - 1) / kNr;
    for (std::size_t k0 = 0; k0 < k; k0 += kKc) {
        const std::size_t kc = std::min(kKc, k - k0);
        packed.resize(panels * kc * kNr);
        pack_b(b + k0 * ldb, ldb, kc, n, packed.data());
        const bool acc = accumulate || k0 > 0;
        for (std::size_t jp = 0; jp < panels; ++jp) {
            const std::size_t cols = std::min(kNr, n - jp * kNr);
            const float* panel = packed.data() + jp * kc * kNr;
            for (std::size_t i = 0; i < m; i += kMr)
                micro_dispatch(std::min(kMr, m - i), kc, a + i * lda + k0, lda, panel,
                               c + i * ldc + jp * kNr, ldc, cols, acc);
        }
    }
}

void gemm_naive(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                const float* b, std::size_t ldb, float* c, std::size_t ldc, bool accumulate) {
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            float sum = accumulate ? c[i * ldc + j] : 0.f;
            for (std::size_t p = 0; p < k; ++p) sum += a[i * lda + p] * b[p * ldb + j];
            c[i * ldc + j] = sum;
        }
}

void transpose(std::size_t rows, std::size_t cols, const float* src, float* dst) {
    constexpr std::size_t kTile = 32;
    for (std::size_t i0 = 0; i0 < rows; i0 += kTile)
        for (std::size_t j0 = 0; j0 < cols; j0 += kTile) {
            const std::size_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
            for (std::size_t i = i0; i < i1; ++i)
                for (std::size_t j = j0; j < j1; ++j) dst[j * rows + i] = src[i * cols + j];
        }
}

void im2col3x3(const float* image, std::size_t channels, std::size_t h, std::size_t w, float* col) {
    const std::size_t plane = h * w;
    for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t ky = 0; ky < 3; ++ky)
            for (std::size_t kx = 0; kx < 3; ++kx) {
                float* dst = col + (c * 9 + ky * 3 + kx) * plane;
                const float* src = image + c * plane;
                for (std::size_t y = 0; y < h; ++y) {
                    float* drow = dst + y * w;
                    const std::size_t sy = y + ky;  // input row + 1
                    if (sy < 1 || sy > h) {
                        std::fill(drow, drow + w, 0.f);
                        continue;
                    }
                    const float* srow = src + (sy - 1) * w;
                    // x + kx − 1 in [0, w)
                    const std::size_t x0 = kx == 0 ? 1 : 0;
                    const std::size_t x1 = kx == 2 ? w - 1 : w;
                    if (x0 > 0) drow[0] = 0.f;
                    if (x1 < w) drow[w - 1] = 0.f;
                    for (std::size_t x = x0; x < x1; ++x) drow[x] = srow[x + kx - 1];
                }
            }
}

void col2im3x3(const float* col, std::size_t channels, std::size_t h, std::size_t w, float* image) {
    const std::size_t plane = h * w;
    for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t ky = 0; ky < 3; ++ky)
            for (std::size_t kx = 0; kx < 3; ++kx) {
                const float* src = col + (c * 9 + ky * 3 + kx) * plane;
                float* dst = image + c * plane;
                for (std::size_t y = 0; y < h; ++y) {
                    const std::size_t sy = y + ky;
                    if (sy < 1 || sy > h) continue;
                    const float* srow = src + y * w;
                    float* drow = dst + (sy - 1) * w;
                    const std::size_t x0 = kx == 0 ? 1 : 0;
                    const std::size_t x1 = kx == 2 ? w - 1 : w;
                    for (std::size_t x = x0; x < x1; ++x) drow[x + kx - 1] += srow[x];
                }
            }
}

}  // namespace evformer::models::kernels
