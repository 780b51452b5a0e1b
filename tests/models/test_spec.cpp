#include <doctest/doctest.h>

#include "evformer/error.hpp"
#include "evformer/models/spec.hpp"

using evformer::ConfigError;
using evformer::models::ModelSpec;
namespace models = evformer::models;

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
    CHECK(s.attention.variant == models::AttentionVariant::ssa_bin);
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
    // any reset below the thresholds runs in both executors (test_equivalence checks they agree)
    s = {};
    s.lif.v_reset = -0.5;
    CHECK_NOTHROW(s.validate());
    s.lif.v_reset = 1.0;
    CHECK_THROWS_WITH_AS(s.validate(),
                         "invalid model spec: lif.v_threshold must be greater than lif.v_reset",
                         ConfigError);
}

TEST_CASE("the spec round-trips through JSON and rejects unknown keys and variants") {
    ModelSpec s;
    s.blocks = 3;
    s.attention.variant = models::AttentionVariant::bin_shift;
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

TEST_CASE("the event binning a model was trained on is stored only when it is not 'number'") {
    ModelSpec s;
    CHECK(s.to_json().find("input_split_by") == std::string::npos);  // as files before it
    CHECK(ModelSpec::from_json(s.to_json()).input_split_by == "number");
    s.in_channels = 2;
    s.in_height = s.in_width = 34;
    s.input_split_by = "duration";
    s.input_dt_us = 20000;
    const auto back = ModelSpec::from_json(s.to_json());
    CHECK(back == s);
    CHECK(back.input_dt_us == 20000);
    s.input_dt_us = 0;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("input_dt_us"), ConfigError);
    s.input_split_by = "time";
    s.input_dt_us = 5;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("input_dt_us"), ConfigError);
    s.input_split_by = "frames";
    s.input_dt_us = 0;
    CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("input_split_by"), ConfigError);
}

TEST_CASE("every attention variant name parses back to itself") {
    for (const auto& v : models::kAttentionVariants) {
        CHECK(models::parse_attention_variant(v.name) == v.variant);
        CHECK(models::info(v.variant).name == v.name);
    }
    CHECK(models::info(models::AttentionVariant::ssa_bin).shift);
    CHECK(models::info(models::AttentionVariant::ssa_bin).adaptive_threshold);
    CHECK_FALSE(models::info(models::AttentionVariant::ssa).binary);
    CHECK(models::info(models::AttentionVariant::bin_shift).shift);
    CHECK_FALSE(models::info(models::AttentionVariant::bin_shift).adaptive_threshold);
    CHECK(models::info(models::AttentionVariant::bin_mean).adaptive_threshold);
    CHECK_FALSE(models::info(models::AttentionVariant::bin_mean).shift);
}

TEST_CASE("train_shift is an enum stored by name, and a wrong name is refused with the choices") {
    ModelSpec s;
    s.attention.train_shift = models::TrainShift::running;
    const auto text = s.to_json();
    CHECK(text.find("\"train_shift\": \"running\"") != std::string::npos);
    CHECK(ModelSpec::from_json(text) == s);
    CHECK_THROWS_WITH_AS(ModelSpec::from_json(R"({"attention": {"train_shift": "both"}})"),
                         "attention.train_shift must be 'batch' or 'running', not 'both'",
                         ConfigError);
}
