// The model presets: their specs as the sources give them, their recipes, and their parameter
// counts against the published figures.
#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <string>

#include "evformer/error.hpp"
#include "evformer/models/presets.hpp"
#include "evformer/models/random_input.hpp"

namespace m = evformer::models;

namespace {

// The parameter count of a Spikformer as its PyTorch modules hold it (Spikformer code,
// cifar10/model.py), written out from the architecture: SPS convs without bias + BatchNorm γ, β;
// per block q, k, v, proj (Linear D→D with bias) and fc1, fc2 (D→hD→D with bias), each followed
// by BatchNorm1d; the head Linear D→classes. `qkv_bias` = false drops the q, k, v biases as the
// CIFAR10-DVS code's Conv1d(bias=False) does.
std::size_t spikformer_count(std::size_t in, std::size_t blocks, std::size_t d, std::size_t ratio,
                             std::size_t classes, bool qkv_bias) {
    std::size_t n = 0;
    std::size_t c_in = in;
    for (std::size_t div : {8, 4, 2, 1}) {
        const std::size_t c = d / div;
        n += 9 * c_in * c + 2 * c;
        c_in = c;
    }
    n += 9 * d * d + 2 * d;  // RPE conv + BN
    const std::size_t h = ratio * d;
    const std::size_t block = 3 * (d * d + (qkv_bias ? d : 0) + 2 * d)  // q, k, v
                              + (d * d + d + 2 * d)                     // proj
                              + (d * h + h + 2 * h)                     // fc1
                              + (h * d + d + 2 * d);                    // fc2
    return n + blocks * block + d * classes + classes;
}

// A count in millions, rounded to the two decimals the papers print.
double millions(std::size_t n) {
    return std::round(double(n) / 1e4) / 100;
}

}  // namespace

TEST_CASE("presets are named once, valid, and the default model comes first") {
    const auto& presets = m::model_presets();
    REQUIRE(presets.size() == 3);
    CHECK(presets[0].name == "spikformer-2-64");
    CHECK(presets[0].spec == m::ModelSpec{});
    std::set<std::string> names;
    for (const auto& p : presets) {
        CAPTURE(p.name);
        CHECK(names.insert(std::string(p.name)).second);
        CHECK_NOTHROW(p.spec.validate());
        CHECK_FALSE(p.source.empty());
        CHECK_FALSE(p.recipe_source.empty());
        CHECK(&m::find_model_preset(p.name) == &p);
        CHECK(m::model_preset_names().find(std::string(p.name)) != std::string::npos);
    }
    CHECK_THROWS_WITH_AS(m::find_model_preset("spikformer-8-768"),
                         doctest::Contains("spikformer-4-384-cifar"), evformer::ConfigError);
}

TEST_CASE("spikformer-4-384-cifar is the Spikformer code's CIFAR model") {
    const auto& s = m::find_model_preset("spikformer-4-384-cifar").spec;
    CHECK(s.blocks == 4);
    CHECK(s.dim == 384);
    CHECK(s.heads == 12);
    CHECK(s.mlp_ratio == 4);
    CHECK(s.time_steps == 4);
    CHECK(s.in_channels == 3);
    CHECK(s.in_height == 32);
    CHECK(s.in_width == 32);
    CHECK(s.tokens() == 64);  // pooled after SPS convs 3 and 4: 32 -> 16 -> 8
    CHECK(s.attention.scale == 0.125);
    CHECK(s.lif.attn_v_threshold == 0.5);
}

TEST_CASE("spikformer-2-256-dvs128 is the Spikformer code's CIFAR10-DVS model") {
    const auto& s = m::find_model_preset("spikformer-2-256-dvs128").spec;
    CHECK(s.blocks == 2);
    CHECK(s.dim == 256);
    CHECK(s.heads == 16);
    CHECK(s.time_steps == 16);
    CHECK(s.in_channels == 2);
    CHECK(s.in_height == 128);
    CHECK(s.in_width == 128);
    CHECK(s.pool_after == std::array<bool, 4>{true, true, true, true});
    CHECK(s.tokens() == 64);  // 128 -> 64 -> 32 -> 16 -> 8
    CHECK(s.attention.scale == 0.25);
}

TEST_CASE("parameter counts equal the published ones where the papers give them") {
    for (const auto& p : m::model_presets()) {
        CAPTURE(p.name);
        const auto& s = p.spec;
        const auto n = m::trainable_parameter_count(s);
        // evformer's layout has a bias on every linear, as the CIFAR code has
        CHECK(n == spikformer_count(s.in_channels, s.blocks, s.dim, s.mlp_ratio, s.classes, true));
        if (p.published_millions > 0) CHECK(millions(n) == doctest::Approx(p.published_millions));
    }
    // exactly: Spikformer-4-384 on CIFAR-10 is the published 9.32 M; the code's printed count,
    // 9,330,874, adds the two LayerNorms per block it declares but never calls (4 × 2 × 768)
    const auto cifar =
        m::trainable_parameter_count(m::find_model_preset("spikformer-4-384-cifar").spec);
    CHECK(cifar == 9'324'730);
    CHECK(cifar + 4 * 2 * 2 * 384 == 9'330'874);
    // Spikformer-2-256 on CIFAR10-DVS: the code's q, k, v convolutions have no bias, evformer's
    // linears do (redundant before BatchNorm): 2 blocks × 3 × 256 more, and both round to 2.57 M
    const auto& dvs = m::find_model_preset("spikformer-2-256-dvs128").spec;
    const auto dvs_count = m::trainable_parameter_count(dvs);
    CHECK(dvs_count == 2'568'202);
    const auto code_dvs = spikformer_count(2, 2, 256, 4, 10, false);
    CHECK(code_dvs == 2'566'666);
    CHECK(dvs_count - code_dvs == 2 * 3 * 256);
    CHECK(millions(code_dvs) == doctest::Approx(2.57));
    // the default model
    CHECK(m::trainable_parameter_count(m::ModelSpec{}) == 163'906);
}

TEST_CASE("the class count changes only the head") {
    auto s = m::find_model_preset("spikformer-4-384-cifar").spec;
    const auto ten = m::trainable_parameter_count(s);
    s.classes = 100;  // CIFAR-100, fine labels
    CHECK(m::trainable_parameter_count(s) == ten + 90 * 384 + 90);
    s.classes = 20;  // coarse labels
    CHECK(m::trainable_parameter_count(s) == ten + 10 * 384 + 10);
}

TEST_CASE("running statistics are not parameters") {
    // BN running mean/var and the attention's c_mean and V̄ are buffers: a model of T = 16 or
    // another variant has the same count, and the layout holds more tensors than are counted
    auto s = m::find_model_preset("spikformer-2-64").spec;
    const auto n = m::trainable_parameter_count(s);
    s.time_steps = 16;
    s.attention.variant = m::AttentionVariant::ssa;
    CHECK(m::trainable_parameter_count(s) == n);
    std::size_t all = 0;
    for (const auto& p : m::parameter_layout(s)) {
        std::size_t size = 1;
        for (auto d : p.shape) size *= d;
        all += size;
    }
    // per BN channel two running statistics; per block H c_mean values and D V̄ values
    const std::size_t bn_channels = (8 + 16 + 32 + 64) + 64 + s.blocks * (4 * 64 + 256 + 64);
    CHECK(all - n == 2 * bn_channels + s.blocks * (s.heads + s.dim));
}

TEST_CASE("preset_config carries the recipe into a valid training configuration") {
    const auto& p = m::find_model_preset("spikformer-4-384-cifar");
    const auto c = m::preset_config(p);
    CHECK(c.model == p.spec);
    CHECK(c.epochs == 400);
    CHECK(c.batch == 128);
    CHECK(c.lr == 5e-4);
    CHECK(c.min_lr == 1e-5);
    CHECK(c.weight_decay == 0.06);
    CHECK(c.warmup_epochs == 20);
    CHECK(c.label_smoothing == 0.1);
    CHECK(c.crop_pad == 4);
    CHECK(c.hflip);
    for (const auto& q : m::model_presets()) {
        CAPTURE(q.name);
        CHECK_NOTHROW(m::preset_config(q).validate());
    }
    // the default preset's recipe is the trainer's defaults
    const auto d = m::preset_config(m::find_model_preset("spikformer-2-64"));
    CHECK(d.to_json() == m::TrainConfig{}.to_json());
}

TEST_CASE("random input is repeatable and gives both executors the same sample") {
    const auto& dvs = m::find_model_preset("spikformer-2-256-dvs128").spec;
    const auto a = m::random_input(dvs, m::InputLayout::event_frames, 5);
    CHECK(a.dense == m::random_input(dvs, m::InputLayout::event_frames, 5).dense);
    CHECK(a.dense != m::random_input(dvs, m::InputLayout::event_frames, 6).dense);
    REQUIRE(a.dense.size() == 16 * 2 * 128 * 128);
    double total = 0;
    for (float v : a.dense) total += v;
    CHECK(double(a.events.events()) == total);
    CHECK(a.events.frames == 16);
    // a tenth of the pixels with 1-3 events: about 6 550 events per frame
    CHECK(total / 16 == doctest::Approx(6554).epsilon(0.05));

    const auto& cifar = m::find_model_preset("spikformer-4-384-cifar").spec;
    const auto img = m::random_input(cifar, m::InputLayout::static_image, 5);
    REQUIRE(img.pixels.size() == 3 * 32 * 32);
    CHECK(img.dense[1000] == float(img.pixels[1000]) / 255.f);
    CHECK_THROWS_AS(m::random_input(cifar, m::InputLayout::event_frames, 5), evformer::ConfigError);
}
