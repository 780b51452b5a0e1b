// The engine's attention flags for each of the five variants (DESIGN.md "Attention variants"),
// for engine tests that do not link models/ (where the variant vocabulary lives).
#pragma once

#include <array>

namespace evformer::testing {

/// Which engine flags a variant sets.
struct VariantFlags {
    const char* name;
    bool binary;              ///< A = κ·[C > threshold]
    bool adaptive_threshold;  ///< threshold = Δ (else 0)
    bool shift;               ///< subtract V̄
};

/// ssa, bin, bin-shift, bin-mean, ssa-bin.
inline constexpr std::array<VariantFlags, 5> kVariantFlags{{
    {"ssa", false, false, false},
    {"bin", true, false, false},
    {"bin-shift", true, false, true},
    {"bin-mean", true, true, false},
    {"ssa-bin", true, true, true},
}};

/// Flags of the variant at index `i` of kVariantFlags.
inline const VariantFlags& variant_flags(std::size_t i) {
    return kVariantFlags[i];
}

}  // namespace evformer::testing
