#include "evformer/models/spikformer.hpp"

#include <fmt/format.h>

#include <string>

#include "evformer/models/attention_variant.hpp"

namespace evformer::models {

sim::Graph spikformer_graph(const ModelSpec& spec) {
    spec.validate();
    using sim::NodeKind;
    sim::Graph g;
    sim::NodeAttributes lif;
    lif.lif = {float(spec.lif.tau), float(spec.lif.v_threshold), float(spec.lif.v_reset)};
    sim::NodeAttributes attn_lif = lif;
    attn_lif.lif.v_threshold = float(spec.lif.attn_v_threshold);
    sim::NodeAttributes bn;
    bn.eps = spec.bn_eps;

    sim::NodeAttributes input;
    input.shape = {spec.in_channels, spec.in_height, spec.in_width, false};
    g.add("input", NodeKind::input, {}, input);

    // conv → BN → LIF (SPS stages and the relative position embedding).
    auto conv_unit = [&](const std::string& conv, const std::string& bn_name,
                         const std::string& lif_name, const std::string& from,
                         std::size_t channels) {
        sim::NodeAttributes c;
        c.out_channels = channels;
        c.kernel = 3;
        c.stride = 1;
        c.padding = 1;
        g.add(conv, NodeKind::conv2d, {from}, c);
        g.add(bn_name, NodeKind::batchnorm, {conv}, bn);
        g.add(lif_name, NodeKind::lif, {bn_name}, lif);
    };
    std::string x = "input";
    for (std::size_t i = 0; i < 4; ++i) {
        const auto lif_name = fmt::format("sps/lif{}", i);
        conv_unit(fmt::format("sps/conv{}", i), fmt::format("sps/bn{}", i), lif_name, x,
                  spec.stage_channels(i));
        x = lif_name;
        if (spec.pool_after[i]) {
            sim::NodeAttributes p;
            p.kernel = 3;
            p.stride = 2;
            p.padding = 1;
            const auto pool = fmt::format("sps/pool{}", i);
            g.add(pool, NodeKind::max_pool, {x}, p);
            x = pool;
        }
    }
    conv_unit("sps/rpe_conv", "sps/rpe_bn", "sps/rpe_lif", x, spec.dim);
    g.add("sps/residual", NodeKind::merge_add, {x, "sps/rpe_lif"});
    sim::NodeAttributes tokens;
    tokens.to_tokens = true;
    g.add("sps/tokens", NodeKind::flatten, {"sps/residual"}, tokens);
    x = "sps/tokens";

    // Linear → BN → LIF on tokens.
    auto linear_unit = [&](const std::string& prefix, const std::string& from, std::size_t features,
                           const sim::NodeAttributes& neuron) {
        sim::NodeAttributes l;
        l.out_channels = features;
        l.bias = true;
        g.add(prefix + "_linear", NodeKind::linear, {from}, l);
        g.add(prefix + "_bn", NodeKind::batchnorm, {prefix + "_linear"}, bn);
        g.add(prefix + "_lif", NodeKind::lif, {prefix + "_bn"}, neuron);
    };
    const auto& variant = info(spec.attention.variant);
    for (std::size_t l = 0; l < spec.blocks; ++l) {
        const auto attn = fmt::format("blocks/{}/attn", l);
        const auto mlp = fmt::format("blocks/{}/mlp", l);
        for (const char* name : {"q", "k", "v"}) linear_unit(attn + "/" + name, x, spec.dim, lif);
        // proj is declared before the attention node so that the tensors keep the file's order
        // (q, k, v, proj, c_mean, v_bar); execution order follows the edges.
        {
            sim::NodeAttributes p;
            p.out_channels = spec.dim;
            p.bias = true;
            g.add(attn + "/proj_linear", NodeKind::linear, {attn + "/attn_lif"}, p);
            g.add(attn + "/proj_bn", NodeKind::batchnorm, {attn + "/proj_linear"}, bn);
        }
        sim::NodeAttributes a;
        a.heads = spec.heads;
        a.attention_scale = float(spec.attention.scale);
        a.kappa = float(spec.attention.kappa);
        a.binary = variant.binary;
        a.adaptive_threshold = variant.adaptive_threshold;
        a.shift = variant.shift;
        a.lambda = spec.attention.lambda;
        g.add(attn, NodeKind::attention, {attn + "/q_lif", attn + "/k_lif", attn + "/v_lif"}, a);
        g.add(attn + "/attn_lif", NodeKind::lif, {attn}, attn_lif);
        g.add(attn + "/proj_lif", NodeKind::lif, {attn + "/proj_bn"}, lif);
        const auto attn_sum = fmt::format("blocks/{}/attn_residual", l);
        g.add(attn_sum, NodeKind::merge_add, {x, attn + "/proj_lif"});
        x = attn_sum;
        linear_unit(mlp + "/fc1", x, spec.mlp_hidden(), lif);
        linear_unit(mlp + "/fc2", mlp + "/fc1_lif", spec.dim, lif);
        const auto mlp_sum = fmt::format("blocks/{}/mlp_residual", l);
        g.add(mlp_sum, NodeKind::merge_add, {x, mlp + "/fc2_lif"});
        x = mlp_sum;
    }
    sim::NodeAttributes head;
    head.out_channels = spec.classes;
    g.add("head", NodeKind::readout, {x}, head);
    g.validate();
    return g;
}

}  // namespace evformer::models
