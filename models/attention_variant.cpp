#include "evformer/models/attention_variant.hpp"

#include "evformer/error.hpp"

namespace evformer::models {

const AttentionVariantInfo& info(AttentionVariant v) {
    for (const auto& i : kAttentionVariants)
        if (i.variant == v) return i;
    throw ConfigError("unknown attention variant value");
}

AttentionVariant parse_attention_variant(std::string_view name) {
    for (const auto& i : kAttentionVariants)
        if (i.name == name) return i.variant;
    throw ConfigError("unknown attention variant '" + std::string(name) +
                      "', expected one of: " + attention_variant_names());
}

std::string attention_variant_names() {
    std::string out;
    for (const auto& i : kAttentionVariants) {
        if (!out.empty()) out += ", ";
        out += i.name;
    }
    return out;
}

}  // namespace evformer::models
