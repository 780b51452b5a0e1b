#include "evformer/models/presets.hpp"

#include <fmt/format.h>

#include "evformer/error.hpp"
#include "evformer/models/weights.hpp"

namespace evformer::models {
namespace {

// evformer's default: the model the shipped Fashion-MNIST weights were trained with.
ModelPreset spikformer_2_64() {
    ModelPreset p;
    p.name = "spikformer-2-64";
    p.summary = "Fashion-MNIST 1x28x28, T = 4: evformer's small default model";
    p.spec = ModelSpec{};  // L = 2, D = 64, 4 heads, MLP ratio 4, pool after stages 3-4
    const TrainConfig defaults;
    p.recipe = {.epochs = defaults.epochs,
                .batch = defaults.batch,
                .lr = defaults.lr,
                .min_lr = defaults.min_lr,
                .weight_decay = defaults.weight_decay,
                .warmup_epochs = defaults.warmup_epochs,
                .label_smoothing = defaults.label_smoothing,
                .crop_pad = defaults.crop_pad,
                .hflip = defaults.hflip};
    p.source =
        "evformer's own size (README, \"Training\"): the Spikformer architecture (Zhou et al., "
        "ICLR 2023) at L = 2, D = 64, 4 heads, MLP ratio 4, max-pool after SPS stages 3 and 4, "
        "scale 0.125";
    p.recipe_source =
        "evformer's Fashion-MNIST runs (README, \"Training\"; examples/models/README.md)";
    return p;
}

// Spikformer-4-384 as the Spikformer code builds it for CIFAR (cifar10/model.py, cifar10.yml).
ModelPreset spikformer_4_384_cifar() {
    ModelPreset p;
    p.name = "spikformer-4-384-cifar";
    p.summary = "CIFAR-10 / CIFAR-100 3x32x32, T = 4: Spikformer-4-384";
    auto& s = p.spec;
    s.blocks = 4;
    s.dim = 384;
    s.heads = 12;
    s.mlp_ratio = 4;
    s.time_steps = 4;
    s.in_channels = 3;
    s.in_height = s.in_width = 32;
    s.pool_after = {false, false, true, true};  // 32 -> 16 -> 8: 64 tokens
    s.attention.scale = 0.125;
    s.classes = 10;
    p.recipe = {.epochs = 400,
                .batch = 128,
                .lr = 5e-4,
                .min_lr = 1e-5,
                .weight_decay = 0.06,
                .warmup_epochs = 20,
                .label_smoothing = 0.1,
                .crop_pad = 4,
                .hflip = true};
    p.source =
        "Zhou et al., Spikformer, ICLR 2023, CIFAR table (Spikformer-4-384, T = 4, 9.32 M "
        "parameters); github.com/ZK-Zhou/spikformer cifar10/model.py and cifar10.yml (dim 384, "
        "12 heads, MLP ratio 4, 4 blocks, max-pool after SPS convs 3 and 4, scale 0.125); the "
        "model of Shen et al., ICLR 2024 Tiny Papers, appendix A.2";
    p.recipe_source =
        "cifar10.yml (AdamW, lr 5e-4 with cosine decay to 1e-5, weight decay 0.06, 20 warm-up "
        "epochs, batch 128, label smoothing 0.1) with the 400 epochs of Shen et al. A.2 and of "
        "Spikformer's 400-epoch row; random crop with 4-pixel padding and horizontal flip stand "
        "in for the code's RandAugment, mixup and random erasing";
    p.published_millions = 9.32;
    return p;
}

// Spikformer-2-256 as the Spikformer code builds it for CIFAR10-DVS (cifar10dvs/model.py).
ModelPreset spikformer_2_256_dvs128() {
    ModelPreset p;
    p.name = "spikformer-2-256-dvs128";
    p.summary = "CIFAR10-DVS / N-Caltech101 event frames 2x128x128, T = 16: Spikformer-2-256";
    auto& s = p.spec;
    s.blocks = 2;
    s.dim = 256;
    s.heads = 16;
    s.mlp_ratio = 4;
    s.time_steps = 16;
    s.in_channels = 2;
    s.in_height = s.in_width = 128;
    s.pool_after = {true, true, true, true};  // 128 -> 64 -> 32 -> 16 -> 8: 64 tokens
    s.attention.scale = 0.25;
    s.classes = 10;
    p.recipe = {.epochs = 106,
                .batch = 16,
                .lr = 1e-3,
                .min_lr = 1e-5,
                .weight_decay = 0.06,
                .warmup_epochs = 10,
                .label_smoothing = 0.1,
                .crop_pad = 5,
                .hflip = false};
    p.source =
        "Zhou et al., Spikformer, ICLR 2023, neuromorphic table (Spikformer-2-256, T = 16, 2.57 M "
        "parameters); github.com/ZK-Zhou/spikformer cifar10dvs/model.py (dim 256, 16 heads, MLP "
        "ratio 4, 2 blocks, max-pool after all four SPS convs, scale 0.25)";
    p.recipe_source =
        "cifar10dvs/train.py (AdamW, lr 1e-3 with cosine decay to 1e-5, weight decay 0.06, 10 "
        "warm-up epochs, 96 + 10 cool-down = 106 epochs, batch 16, label smoothing 0.1); a "
        "translation of up to 5 pixels stands in for the code's flip, TrivialAugment-style ops "
        "and mixup";
    p.published_millions = 2.57;
    return p;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
    static const std::vector<ModelPreset> presets = [] {
        std::vector<ModelPreset> all{spikformer_2_64(), spikformer_4_384_cifar(),
                                     spikformer_2_256_dvs128()};
        for (const auto& p : all) p.spec.validate();
        return all;
    }();
    return presets;
}

std::string model_preset_names() {
    std::string names;
    for (const auto& p : model_presets())
        names += (names.empty() ? "" : ", ") + std::string(p.name);
    return names;
}

const ModelPreset& find_model_preset(std::string_view name) {
    for (const auto& p : model_presets())
        if (p.name == name) return p;
    throw ConfigError(
        fmt::format("model '{}': no such preset (expected one of {})", name, model_preset_names()));
}

std::size_t trainable_parameter_count(const ModelSpec& spec) {
    using Kind = ParameterInfo::Kind;
    std::size_t n = 0;
    for (const auto& p : parameter_layout(spec)) {
        if (p.kind != Kind::weight && p.kind != Kind::bias && p.kind != Kind::bn_weight &&
            p.kind != Kind::bn_bias)
            continue;
        std::size_t size = 1;
        for (auto d : p.shape) size *= d;
        n += size;
    }
    return n;
}

TrainConfig preset_config(const ModelPreset& preset) {
    TrainConfig c;
    c.model = preset.spec;
    const auto& r = preset.recipe;
    c.epochs = r.epochs;
    c.batch = r.batch;
    c.lr = r.lr;
    c.min_lr = r.min_lr;
    c.weight_decay = r.weight_decay;
    c.warmup_epochs = r.warmup_epochs;
    c.label_smoothing = r.label_smoothing;
    c.crop_pad = r.crop_pad;
    c.hflip = r.hflip;
    return c;
}

}  // namespace evformer::models
