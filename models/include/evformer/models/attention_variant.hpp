// The five attention variants, declared once as data. The trainer, the simulator, the weights
// file and the command line all use these names.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace evformer::models {

/// Which attention a Spikformer block computes (DESIGN.md, "Attention variants").
enum class AttentionVariant { ssa, bin, bin_shift, bin_mean, ssa_bin };

/// What a variant does, as data.
struct AttentionVariantInfo {
    AttentionVariant variant;
    std::string_view name;       ///< name used everywhere: "ssa", "bin", …
    std::string_view paper_row;  ///< the row of the paper's Table 1
    bool binary;                 ///< attention map is B(C, threshold) instead of C
    bool adaptive_threshold;     ///< threshold is the running Δ (else 0)
    bool shift;                  ///< subtract the running mean V̄ of the attention output
};

/// Every variant, in the order of the paper's table.
inline constexpr std::array<AttentionVariantInfo, 5> kAttentionVariants{{
    {AttentionVariant::ssa, "ssa", "SSA", false, false, false},
    {AttentionVariant::bin, "bin", "baseline", true, false, false},
    {AttentionVariant::bin_shift, "bin-shift", "w/ shift", true, false, true},
    {AttentionVariant::bin_mean, "bin-mean", "w/ mean", true, true, false},
    {AttentionVariant::ssa_bin, "ssa-bin", "SSA_Bin", true, true, true},
}};

/// The data of a variant.
const AttentionVariantInfo& info(AttentionVariant v);

/// The variant with this name; throws ConfigError listing the valid names otherwise.
AttentionVariant parse_attention_variant(std::string_view name);

/// "ssa, bin, bin-shift, bin-mean, ssa-bin" — for messages and --help.
std::string attention_variant_names();

}  // namespace evformer::models
