#include "evformer/models/builder.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "evformer/error.hpp"

namespace evformer::models {
namespace {

// Per-channel gain g = γ/√(var + eps) and shift β − mean·g of an evaluation-mode BatchNorm.
struct FoldedBn {
    std::vector<float> gain, shift;
};

FoldedBn fold_bn(const ModelWeights& w, const std::string& prefix, double eps) {
    const auto& gamma = w.at(prefix + "/weight").data;
    const auto& beta = w.at(prefix + "/bias").data;
    const auto& mean = w.at(prefix + "/running_mean").data;
    const auto& var = w.at(prefix + "/running_var").data;
    FoldedBn f;
    for (std::size_t c = 0; c < gamma.size(); ++c) {
        const double g = double(gamma[c]) / std::sqrt(double(var[c]) + eps);
        f.gain.push_back(float(g));
        f.shift.push_back(float(double(beta[c]) - double(mean[c]) * g));
    }
    return f;
}

sim::Conv3x3 build_conv(const ModelWeights& w, const std::string& conv, const std::string& bn,
                        std::size_t height, std::size_t width, double eps) {
    const auto& t = w.at(conv + "/weight");
    const std::size_t co = t.shape[0], ci = t.shape[1];
    const auto f = fold_bn(w, bn, eps);
    sim::Conv3x3 c;
    c.in_channels = ci;
    c.out_channels = co;
    c.height = height;
    c.width = width;
    c.weight_t.resize(ci * 9 * co);
    for (std::size_t o = 0; o < co; ++o)
        for (std::size_t i = 0; i < ci; ++i)
            for (std::size_t k = 0; k < 9; ++k)
                c.weight_t[(i * 9 + k) * co + o] = t.data[(o * ci + i) * 9 + k] * f.gain[o];
    c.bias = f.shift;  // the SPS convs have no bias of their own
    return c;
}

sim::TokenLinear build_linear(const ModelWeights& w, const std::string& prefix, std::size_t tokens,
                              double eps) {
    const auto& t = w.at(prefix + "_linear/weight");
    const auto& b = w.at(prefix + "_linear/bias").data;
    const std::size_t out = t.shape[0], in = t.shape[1];
    const auto f = fold_bn(w, prefix + "_bn", eps);
    sim::TokenLinear l;
    l.tokens = tokens;
    l.in_features = in;
    l.out_features = out;
    l.weight_t.resize(in * out);
    for (std::size_t o = 0; o < out; ++o)
        for (std::size_t i = 0; i < in; ++i)
            l.weight_t[i * out + o] = t.data[o * in + i] * f.gain[o];
    l.bias.resize(out);
    for (std::size_t o = 0; o < out; ++o) l.bias[o] = b[o] * f.gain[o] + f.shift[o];
    return l;
}

}  // namespace

sim::Network build_network(const ModelWeights& weights) {
    weights.validate();
    const auto& spec = weights.spec;
    const double eps = spec.bn_eps;
    sim::Network net;
    net.time_steps = spec.time_steps;
    net.lif = {float(spec.lif.tau), float(spec.lif.v_threshold), float(spec.lif.v_reset)};
    net.attn_lif = {float(spec.lif.tau), float(spec.lif.attn_v_threshold), float(spec.lif.v_reset)};
    std::size_t h = spec.in_height, w = spec.in_width;
    for (std::size_t i = 0; i < 4; ++i) {
        net.stem.push_back({build_conv(weights, fmt::format("sps/conv{}", i),
                                       fmt::format("sps/bn{}", i), h, w, eps),
                            spec.pool_after[i]});
        h = spec.stage_height(i);
        w = spec.stage_width(i);
    }
    net.rpe = build_conv(weights, "sps/rpe_conv", "sps/rpe_bn", h, w, eps);
    const std::size_t n = spec.tokens();
    const auto& variant = models::info(spec.attention.variant);
    for (std::size_t l = 0; l < spec.blocks; ++l) {
        const auto attn = fmt::format("blocks/{}/attn/", l);
        const auto mlp = fmt::format("blocks/{}/mlp/", l);
        sim::AttentionBlock b;
        b.q = build_linear(weights, attn + "q", n, eps);
        b.k = build_linear(weights, attn + "k", n, eps);
        b.v = build_linear(weights, attn + "v", n, eps);
        b.proj = build_linear(weights, attn + "proj", n, eps);
        b.fc1 = build_linear(weights, mlp + "fc1", n, eps);
        b.fc2 = build_linear(weights, mlp + "fc2", n, eps);
        auto& a = b.attention;
        a.tokens = n;
        a.dim = spec.dim;
        a.heads = spec.heads;
        a.scale = float(spec.attention.scale);
        a.kappa = float(spec.attention.kappa);
        a.binary = variant.binary;
        a.threshold.assign(spec.heads, 0.f);
        if (variant.adaptive_threshold) {
            const auto& c_mean = weights.at(attn + "c_mean").data;
            for (std::size_t hd = 0; hd < spec.heads; ++hd)
                a.threshold[hd] = float(spec.attention.lambda * double(c_mean[hd]));
        }
        if (variant.shift) a.shift = weights.at(attn + "v_bar").data;
        net.blocks.push_back(std::move(b));
    }
    net.head.in_features = spec.dim;
    net.head.classes = spec.classes;
    net.head.weight = weights.at("head/weight").data;
    net.head.bias = weights.at("head/bias").data;
    net.validate();
    return net;
}

std::vector<float> image_currents(std::span<const std::uint8_t> pixels, const ModelSpec& spec) {
    const std::size_t c = spec.in_channels, hw = spec.in_height * spec.in_width;
    if (pixels.size() != c * hw)
        throw ConfigError(fmt::format("image has {} pixels, the model expects {}x{}x{} = {}",
                                      pixels.size(), c, spec.in_height, spec.in_width, c * hw));
    std::vector<float> out(c * hw);
    for (std::size_t ch = 0; ch < c; ++ch)
        for (std::size_t p = 0; p < hw; ++p) out[p * c + ch] = float(pixels[ch * hw + p]) / 255.f;
    return out;
}

void check_model_fits(const ModelSpec& spec, const std::string& what, std::size_t channels,
                      std::size_t height, std::size_t width, std::size_t classes) {
    if (spec.in_channels != channels || spec.in_height != height || spec.in_width != width)
        throw ConfigError(fmt::format(
            "{}: the model expects inputs of {}x{}x{} (channels x height x width) but the data "
            "has {}x{}x{}",
            what, spec.in_channels, spec.in_height, spec.in_width, channels, height, width));
    if (spec.classes != classes)
        throw ConfigError(fmt::format("{}: the model has {} classes but the data has {}", what,
                                      spec.classes, classes));
}

ModelWeights random_weights(const ModelSpec& spec, std::uint64_t seed) {
    auto w = zero_weights(spec);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    for (const auto& p : parameter_layout(spec)) {
        auto& t = w.at(p.name).data;
        const bool first = p.name == "sps/conv0/weight";
        switch (p.kind) {
            case ParameterInfo::Kind::weight: {
                std::size_t fan_in = 1;
                for (std::size_t d = 1; d < p.shape.size(); ++d) fan_in *= p.shape[d];
                const float stddev = 1.f / std::sqrt(float(fan_in));
                for (auto& x : t) x = normal(rng) * stddev;
                break;
            }
            case ParameterInfo::Kind::bias:
                for (auto& x : t) x = 0.1f * normal(rng);
                break;
            case ParameterInfo::Kind::bn_weight:
                // Spike inputs are sparse (rate ~0.2), so their sums need a larger gain; the
                // first conv sees real pixels in [0, 1].
                for (auto& x : t)
                    x = (first || p.name.starts_with("sps/bn0") ? 2.5f : 4.0f) *
                        (0.75f + 0.5f * uniform(rng));
                break;
            case ParameterInfo::Kind::bn_bias:
                for (auto& x : t) x = 0.3f + 0.3f * normal(rng);
                break;
            case ParameterInfo::Kind::bn_mean:
                for (auto& x : t) x = 0.1f * normal(rng);
                break;
            case ParameterInfo::Kind::bn_var:
                for (auto& x : t) x = 0.5f + uniform(rng);
                break;
            case ParameterInfo::Kind::attn_stat:
                for (auto& x : t) x = p.name.ends_with("c_mean") ? 1.0f : 0.05f * uniform(rng);
                break;
        }
    }
    w.provenance.dataset = "random";
    w.provenance.seed = seed;
    w.provenance.command = "random_weights";
    return w;
}

}  // namespace evformer::models
