#include "evformer/sim/attention.hpp"

#include <algorithm>
#include <string>

#include "evformer/error.hpp"

namespace evformer::sim {

void SpikingAttention::validate(const char* what) const {
    auto fail = [&](const std::string& rule) {
        throw ConfigError(std::string(what) + ": " + rule);
    };
    if (tokens == 0 || dim == 0 || heads == 0 || dim % heads != 0)
        fail("tokens, dim and heads must be positive and heads must divide dim");
    if (tokens * tokens * heads >= (std::size_t{1} << 32))
        fail("too many tokens for the attention map");
    if (binary && threshold.size() != heads) fail("one threshold per head is required");
    if (!shift.empty() && shift.size() != dim) fail("the shift V̄ must have one value per channel");
}

AttentionScratch::AttentionScratch(const SpikingAttention& a)
    : k_tokens_(a.dim * a.tokens, 0),
      k_count_(a.dim, 0),
      row_(a.tokens, 0),
      row_mask_((a.tokens + 63) / 64, 0),
      v_dense_(a.tokens * a.dim, 0.f),
      v_sum_(a.tokens * a.heads, 0) {}

// Row by row: for each query token i and head h, the q spikes (i, c) of the head visit the k
// spikes (j, c) of their channel and count C[h][i][j] (one SOP per coincident pair). The
// non-zero entries of row i, in ascending key order j, give A[i][j]; each adds A[i][j]·(the v
// counts of token j in head h) to output row i: one SOP per (entry, v spike) pair, i.e. Σ of
// the counts of the v spikes of (j, h), and keys whose v is silent in the head are skipped.
// Every output element receives its products m·A in ascending j, the order of the v events
// (token-major), so the result equals the column formulation bit for bit.
namespace {

// n / dim, n % dim and c / d by shifts when the sizes are powers of two, else by division.
struct PowerOfTwoSizes {
    unsigned dim_shift, d_shift;
    std::size_t token(std::size_t n) const { return n >> dim_shift; }
    std::size_t channel(std::size_t n) const { return n & ((std::size_t{1} << dim_shift) - 1); }
    std::size_t head(std::size_t c) const { return c >> d_shift; }
};
struct AnySizes {
    std::size_t dim, d;
    std::size_t token(std::size_t n) const { return n / dim; }
    std::size_t channel(std::size_t n) const { return n % dim; }
    std::size_t head(std::size_t c) const { return c / d; }
};

}  // namespace

struct AttendImpl {
    template <class Sizes>
    static AttentionCounts run(const SpikingAttention& a, const EventList& q, const EventList& k,
                               const EventList& v, float* out, AttentionScratch& s, Sizes z) {
        const std::size_t n_tok = a.tokens, dim = a.dim, d = a.dim / a.heads, heads = a.heads;
        AttentionCounts counts;
        // Keys by channel (ascending token when k is in neuron order).
        for (auto n : k.neuron) {
            const std::size_t c = z.channel(n);
            s.k_tokens_[c * n_tok + s.k_count_[c]++] = static_cast<std::uint32_t>(z.token(n));
        }
        // v counts per token, dense over channels (zero where silent), and their sums per head.
        for (std::size_t e = 0; e < v.size(); ++e) {
            const std::size_t n = v.neuron[e];
            s.v_dense_[n] += float(v.count[e]);
            s.v_sum_[z.token(n) * heads + z.head(z.channel(n))] += v.count[e];
        }
        // q in ascending neuron order (token-major, heads contiguous within a token).
        const std::uint32_t* qn = q.neuron.data();
        std::size_t q_events = q.size();
        if (!std::is_sorted(q.neuron.begin(), q.neuron.end())) {
            s.q_sorted_.assign(q.neuron.begin(), q.neuron.end());
            std::sort(s.q_sorted_.begin(), s.q_sorted_.end());
            qn = s.q_sorted_.data();
        }
        for (std::size_t x = 0; x < n_tok * dim; ++x) out[x] = 0.f;
        std::uint16_t* row = s.row_.data();
        std::uint64_t* mask = s.row_mask_.data();
        const std::size_t words = s.row_mask_.size();
        std::size_t e = 0;
        while (e < q_events) {
            const std::size_t i = z.token(qn[e]), h = z.head(z.channel(qn[e]));
            const std::size_t end_n = i * dim + (h + 1) * d;
            for (; e < q_events && qn[e] < end_n; ++e) {
                const std::size_t c = z.channel(qn[e]);
                const std::uint32_t* keys = s.k_tokens_.data() + c * n_tok;
                const std::size_t nk = s.k_count_[c];
                for (std::size_t r = 0; r < nk; ++r) {
                    const std::uint32_t j = keys[r];
                    ++row[j];
                    mask[j >> 6] |= std::uint64_t{1} << (j & 63);
                }
                counts.sops_qk += nk;
            }
            float* o = out + i * dim + h * d;
            for (std::size_t w = 0; w < words; ++w) {
                for (std::uint64_t bits = mask[w]; bits; bits &= bits - 1) {
                    const std::size_t j = w * 64 + static_cast<std::size_t>(__builtin_ctzll(bits));
                    const std::uint16_t c_ij = row[j];
                    row[j] = 0;
                    float value;
                    if (a.binary) {
                        if (!(float(c_ij) > a.threshold[h])) continue;
                        value = a.kappa * a.scale;
                    } else {
                        value = float(c_ij) * a.scale;
                    }
                    ++counts.nonzero;
                    const std::uint32_t vs = s.v_sum_[j * heads + h];
                    if (vs == 0) continue;
                    counts.sops_av += vs;
                    const float* vd = s.v_dense_.data() + j * dim + h * d;
                    for (std::size_t c = 0; c < d; ++c) o[c] += vd[c] * value;
                }
                mask[w] = 0;
            }
        }
        // V̄ is a per-channel bias of attn_lif's input: part of the membrane update, not SOPs.
        if (!a.shift.empty())
            for (std::size_t i = 0; i < n_tok; ++i)
                for (std::size_t c = 0; c < dim; ++c) out[i * dim + c] -= a.shift[c];
        for (std::size_t x = 0; x < v.size(); ++x) {
            const std::size_t n = v.neuron[x];
            s.v_dense_[n] = 0.f;
            s.v_sum_[z.token(n) * heads + z.head(z.channel(n))] = 0;
        }
        for (auto n : k.neuron) s.k_count_[z.channel(n)] = 0;
        return counts;
    }
};

AttentionCounts attend(const SpikingAttention& a, const EventList& q, const EventList& k,
                       const EventList& v, float* out, AttentionScratch& s) {
    const std::size_t dim = a.dim, d = a.dim / a.heads;
    if ((dim & (dim - 1)) == 0 && (d & (d - 1)) == 0)
        return AttendImpl::run(a, q, k, v, out, s,
                               PowerOfTwoSizes{static_cast<unsigned>(__builtin_ctzll(dim)),
                                               static_cast<unsigned>(__builtin_ctzll(d))});
    return AttendImpl::run(a, q, k, v, out, s, AnySizes{dim, d});
}

}  // namespace evformer::sim
