// Trainer op: batch normalisation over channels (PyTorch's BatchNorm1d on token rows, BatchNorm2d
// on feature maps), forward, backward and the running-statistics update.
//
// Data are [rows, channels, plane]: plane = H·W for feature maps (rows = T·batch images,
// time-major), plane = 1 for token rows [T·batch·N, channels]. Statistics are per channel over
// rows × plane (Spikformer normalises over time steps and samples together).
//   training:   z = γ·(y − μ_B)/√(σ²_B + ε) + β, μ_B and σ²_B (biased) of this batch;
//   evaluation: the same with the running mean and variance;
//   running ← 0.9·running + 0.1·batch (μ_B and the unbiased σ²_B), PyTorch's momentum 0.1.
// Backward (training statistics): dy = γ/σ_B·(dz − mean(dz) − x̂·mean(dz·x̂)), x̂ = (y − μ_B)/σ_B,
// σ_B = √(σ²_B + ε), means per channel; dγ += Σ dz·x̂, dβ += Σ dz.
// No engine counterpart: the builder folds BN into the preceding conv/linear (models/builder.cpp).
// No checks: sizes and pointers are the caller's.
#pragma once

#include <cstddef>
#include <vector>

namespace evformer::models::ops {

/// One BN layer bound to its parameters (owned by the caller), with the statistics of the last
/// training forward pass that backward and update_running use.
struct BatchNorm {
    std::size_t channels = 0;
    float eps = 1e-5f;
    float* weight = nullptr;  ///< γ [channels]
    float* bias = nullptr;    ///< β [channels]
    float* running_mean = nullptr;
    float* running_var = nullptr;
    float* grad_weight = nullptr;     ///< dγ [channels], accumulated
    float* grad_bias = nullptr;       ///< dβ [channels], accumulated
    std::vector<float> mean, invstd;  ///< of the last forward pass (batch or running)
    std::vector<float> batch_var;     ///< unbiased, of the last training pass
    std::size_t count = 0;            ///< rows × plane of the last training pass

    /// y `[rows, channels, plane]` → z (same shape), with batch statistics when `train`, else
    /// with the running ones.
    void forward(const float* y, std::size_t rows, std::size_t plane, bool train, float* z);
    /// Moves the running statistics towards those of the last training pass.
    void update_running();
    /// dz → dy (overwritten), accumulating dγ and dβ; uses the statistics of the last training
    /// forward pass over the same y.
    void backward(const float* y, const float* dz, std::size_t rows, std::size_t plane, float* dy);
};

}  // namespace evformer::models::ops
