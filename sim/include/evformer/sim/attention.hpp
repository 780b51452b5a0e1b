// Spiking self-attention as sparse event propagation (DESIGN.md "Attention variants"). Per head,
// C = QKᵀ is built from coincident q/k spike events; the attention map A is C (ssa) or
// κ·[C > Δ] (binary variants); v spikes propagate only through the non-zero entries of A,
// scaled by s; the shifted variants subtract V̄ from the result, which then drives attn_lif.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "evformer/sim/events.hpp"

namespace evformer::sim {

/// One attention block's fixed data: sizes, scale, binarisation and shift.
struct SpikingAttention {
    std::size_t tokens = 0;        ///< N
    std::size_t dim = 0;           ///< D (all heads)
    std::size_t heads = 0;         ///< H; head h owns channels [h·D/H, (h+1)·D/H)
    float scale = 0.125f;          ///< s
    float kappa = 1.0f;            ///< κ, value of a binary entry
    bool binary = false;           ///< A = κ·[C > threshold] instead of C
    std::vector<float> threshold;  ///< [H]: Δ (or 0) per head, used when binary
    std::vector<float> shift;      ///< [D]: V̄ subtracted from the output, or empty

    /// Checks that the sizes agree; throws ConfigError naming `what` otherwise.
    void validate(const char* what) const;
    /// Dense operations of QKᵀ (and of A·V) in one step: H·N·N·(D/H) = N²·D.
    double flops_qk() const { return double(tokens * tokens * dim); }
    double flops_av() const { return double(tokens * tokens * dim); }
};

/// What one attention step did.
struct AttentionCounts {
    std::uint64_t sops_qk = 0;  ///< coincident (q spike, k spike) pairs
    std::uint64_t sops_av = 0;  ///< (non-zero entry of A, v spike) pairs
    std::uint64_t nonzero = 0;  ///< non-zero entries of A over all heads (C ≠ 0 for ssa)
};

/// Per-thread working memory of one attention size, kept between steps (all zero between calls).
class AttentionScratch {
  public:
    /// Scratch for attention of this size.
    explicit AttentionScratch(const SpikingAttention& a);
    AttentionScratch() = default;

  private:
    friend AttentionCounts attend(const SpikingAttention&, const EventList&, const EventList&,
                                  const EventList&, float*, AttentionScratch&);
    friend struct AttendImpl;
    std::vector<std::uint32_t> k_tokens_;  ///< [D][N]: per channel, tokens whose k fired
    std::vector<std::uint32_t> k_count_;   ///< [D]: how many
    std::vector<std::uint16_t> row_;       ///< [N]: C[h][i][·] of the current (i, h)
    std::vector<std::uint64_t> row_mask_;  ///< [⌈N/64⌉]: keys j with C[h][i][j] ≠ 0
    std::vector<float> v_dense_;           ///< [N][D]: v spike counts (0 where silent)
    std::vector<std::uint32_t> v_sum_;     ///< [N][H]: Σ counts of v spikes of (j, h)
    std::vector<std::uint32_t> q_sorted_;  ///< q neurons in ascending order if not given so
};

/// Computes the attention output of one step into `out` ([N][D], fully overwritten) from the
/// q, k and v spike events (neurons n·D + c). Counts the SOPs and the non-zero entries.
AttentionCounts attend(const SpikingAttention& a, const EventList& q, const EventList& k,
                       const EventList& v, float* out, AttentionScratch& scratch);

}  // namespace evformer::sim
