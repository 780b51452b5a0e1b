#include "evformer/sim/attention.hpp"

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
    : coincidences_(a.heads * a.tokens * a.tokens, 0),
      k_tokens_(a.dim),
      column_row_(a.heads * a.tokens),
      column_value_(a.heads * a.tokens) {}

AttentionCounts attend(const SpikingAttention& a, const EventList& q, const EventList& k,
                       const EventList& v, float* out, AttentionScratch& s) {
    const std::size_t n_tok = a.tokens, dim = a.dim, d = a.dim / a.heads;
    AttentionCounts counts;
    // Keys by channel: a q spike (i, c) coincides with every k spike (j, c) of the same channel.
    for (auto n : k.neuron) s.k_tokens_[n % dim].push_back(static_cast<std::uint32_t>(n / dim));
    auto* coincidences = s.coincidences_.data();
    for (auto n : q.neuron) {
        const std::size_t i = n / dim, c = n % dim, h = c / d;
        const auto& keys = s.k_tokens_[c];
        std::uint16_t* row = coincidences + (h * n_tok + i) * n_tok;
        for (auto j : keys)
            if (row[j]++ == 0)
                s.touched_.push_back(static_cast<std::uint32_t>((h * n_tok + i) * n_tok + j));
        counts.sops_qk += keys.size();
    }
    // The non-zero entries of A, grouped by key column so a v spike of token j finds its rows.
    for (auto entry : s.touched_) {
        const std::size_t j = entry % n_tok, hi = entry / n_tok, h = hi / n_tok, i = hi % n_tok;
        const std::uint16_t c_ij = coincidences[entry];
        coincidences[entry] = 0;
        float value;
        if (a.binary) {
            if (!(float(c_ij) > a.threshold[h])) continue;
            value = a.kappa * a.scale;
        } else {
            value = float(c_ij) * a.scale;
        }
        const std::size_t col = h * n_tok + j;
        if (s.column_row_[col].empty()) s.used_columns_.push_back(static_cast<std::uint32_t>(col));
        s.column_row_[col].push_back(static_cast<std::uint32_t>(i));
        s.column_value_[col].push_back(value);
        ++counts.nonzero;
    }
    s.touched_.clear();
    for (std::size_t x = 0; x < n_tok * dim; ++x) out[x] = 0.f;
    for (std::size_t e = 0; e < v.size(); ++e) {
        const std::size_t n = v.neuron[e];
        const std::size_t j = n / dim, c = n % dim, h = c / d;
        const auto& rows = s.column_row_[h * n_tok + j];
        const auto& values = s.column_value_[h * n_tok + j];
        const float m = float(v.count[e]);
        for (std::size_t r = 0; r < rows.size(); ++r) out[rows[r] * dim + c] += m * values[r];
        counts.sops_av += v.count[e] * rows.size();
    }
    // V̄ is a per-channel bias of attn_lif's input: part of the membrane update, not SOPs.
    if (!a.shift.empty())
        for (std::size_t i = 0; i < n_tok; ++i)
            for (std::size_t c = 0; c < dim; ++c) out[i * dim + c] -= a.shift[c];
    for (auto col : s.used_columns_) {
        s.column_row_[col].clear();
        s.column_value_[col].clear();
    }
    s.used_columns_.clear();
    for (auto n : k.neuron) s.k_tokens_[n % dim].clear();
    return counts;
}

}  // namespace evformer::sim
