#include <doctest/doctest.h>

#include "evformer/error.hpp"
#include "evformer/models/spec.hpp"

using evformer::ConfigError;
using evformer::models::ModelSpec;
namespace sim = evformer::sim;

TEST_CASE("the default spec is Spikformer-2-64 on 28x28 with 49 tokens") {
    ModelSpec s;
    s.validate();
    CHECK(s.tokens() == 49);
    CHECK(s.stage_channels(0) == 8);
    CHECK(s.stage_channels(3) == 64);
    CHECK(s.stage_height(1) == 28);
    CHECK(s.stage_height(2) == 14);
    CHECK(s.stage_height(3) == 7);
    CHECK(s.head_dim() == 16);
    CHECK(s.attention.variant == sim::AttentionVariant::ssa_bin);
}

TEST_CASE("a CIFAR10-DVS spec pools after all four stages to 8x8") {
    ModelSpec s;
    s.in_channels = 2;
    s.in_height = s.in_width = 128;
    s.pool_after = {true, true, true, true};
    s.dim = 256;
    s.heads = 16;
    s.time_steps = 16;
    s.validate();
    CHECK(s.tokens() == 64);
}

TEST_CASE("invalid specs are rejected with the broken rule") {
    ModelSpec s;
    s.heads = 5;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("divisible by heads"), ConfigError);
    s = {};
    s.dim = 60;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("multiple of 8"), ConfigError);
    s = {};
    s.classes = 1;
    CHECK_THROWS_AS(s.validate(), ConfigError);
    s = {};
    s.attention.momentum = 1.0;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("momentum"), ConfigError);
    s = {};
    s.lif.tau = 0.5;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("tau"), ConfigError);
    s = {};
    s.time_steps = 0;
    CHECK_THROWS_AS(s.validate(), ConfigError);
    // the trainer's and the engine's LIF agree only for a reset to 0
    s = {};
    s.lif.v_reset = -0.5;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("v_reset = -0.5 must be 0"), ConfigError);
}

TEST_CASE("the spec round-trips through JSON and rejects unknown keys and variants") {
    ModelSpec s;
    s.blocks = 3;
    s.attention.variant = sim::AttentionVariant::bin_shift;
    s.attention.lambda = 2.5;
    s.pool_after = {true, false, true, false};
    CHECK(ModelSpec::from_json(s.to_json()) == s);
    CHECK_THROWS_WITH_AS(ModelSpec::from_json(R"({"dimm": 64})"),
                         doctest::Contains("unknown key 'dimm'"), ConfigError);
    CHECK_THROWS_WITH_AS(ModelSpec::from_json(R"({"attention": {"variant": "softmax"}})"),
                         doctest::Contains("ssa, bin, bin-shift, bin-mean, ssa-bin"), ConfigError);
    CHECK_THROWS_WITH_AS(ModelSpec::from_json(R"({"dim": "big"})"),
                         doctest::Contains("'dim': wrong type"), ConfigError);
    CHECK_THROWS_AS(ModelSpec::from_json("{"), ConfigError);
}

TEST_CASE("every attention variant name parses back to itself") {
    for (const auto& v : sim::kAttentionVariants) {
        CHECK(sim::parse_attention_variant(v.name) == v.variant);
        CHECK(sim::info(v.variant).name == v.name);
    }
    CHECK(sim::info(sim::AttentionVariant::ssa_bin).shift);
    CHECK(sim::info(sim::AttentionVariant::ssa_bin).adaptive_threshold);
    CHECK_FALSE(sim::info(sim::AttentionVariant::ssa).binary);
    CHECK(sim::info(sim::AttentionVariant::bin_shift).shift);
    CHECK_FALSE(sim::info(sim::AttentionVariant::bin_shift).adaptive_threshold);
    CHECK(sim::info(sim::AttentionVariant::bin_mean).adaptive_threshold);
    CHECK_FALSE(sim::info(sim::AttentionVariant::bin_mean).shift);
}
