// The dense Spikformer: binds the weights to the trainer's ops (models/ops/) and runs them in
// network order, forward (recording spikes and counts) and backward. The ops hold the arithmetic.
#include "evformer/models/network.hpp"

#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "evformer/error.hpp"
#include "evformer/models/attention_variant.hpp"
#include "evformer/models/kernels.hpp"
#include "evformer/models/ops/attention.hpp"
#include "evformer/models/ops/batchnorm.hpp"
#include "evformer/models/ops/conv.hpp"
#include "evformer/models/ops/head.hpp"
#include "evformer/models/ops/lif.hpp"
#include "evformer/models/ops/linear.hpp"
#include "evformer/models/ops/loss.hpp"
#include "evformer/models/ops/pool.hpp"
#include "evformer/models/spikformer.hpp"
#include "ops/fast_math.hpp"
#include "ops/parallel.hpp"

namespace evformer::models {
namespace {

using Buf = std::vector<float>;
using ops::parallel_items;

// ---------------------------------------------------------------- units

// conv3×3 → BN2d → LIF, over [T·B, C, H, W].
struct ConvUnit {
    std::string name;  // population name of its LIF
    std::size_t cin = 0, cout = 0, h = 0, w = 0;
    float* weight = nullptr;
    float* grad_weight = nullptr;
    ops::BatchNorm bn;
    Buf y, hmem, s;  // conv output, membrane before spike, spikes

    std::size_t plane() const { return h * w; }
};

// Linear → BN1d → LIF over token rows [T·B·N, width].
struct LinearUnit {
    std::string name;
    std::size_t in = 0, out = 0;
    float* weight = nullptr;
    float* bias = nullptr;
    float* grad_weight = nullptr;
    float* grad_bias = nullptr;
    ops::BatchNorm bn;
    Buf y, hmem, s;
};

struct Block {
    LinearUnit q, k, v, proj, fc1, fc2;
    float* c_mean = nullptr;
    float* v_bar = nullptr;
    Buf x_in, x_mid;            // residual stream before attention and before the MLP
    Buf attn_pre;               // input current of attn_lif (after the shift)
    Buf attn_h, attn_s;         // attn_lif
    bool batch_shift = false;   // this pass subtracted the batch mean of s·B·V
    ops::AttentionStats stats;  // C mean per head, entries ≠ 0, mean of s·B·V before the shift
};

}  // namespace

double spike_surrogate(double x, double alpha) {
    const double s = 1.0 / (1.0 + std::exp(-alpha * x));
    return alpha * s * (1.0 - s);
}

float spike_surrogate_fast(float x, float alpha) {
    return ops::surrogate_fast(x, alpha);
}

double FiringCounts::rate(const std::string& population) const {
    auto it = spikes.find(population);
    auto jt = neuron_steps.find(population);
    if (it == spikes.end() || jt == neuron_steps.end() || jt->second <= 0) return 0;
    return it->second / jt->second;
}

double FiringCounts::fr_attn(std::size_t block) const {
    if (block >= attn_entries.size() || attn_entries[block] <= 0) return 0;
    return attn_nonzero[block] / attn_entries[block];
}

double FiringCounts::fr_out(std::size_t block) const {
    return rate(fmt::format("blocks/{}/attn/attn_lif", block));
}

void FiringCounts::merge(const FiringCounts& other) {
    for (const auto& [k, v] : other.spikes) spikes[k] += v;
    for (const auto& [k, v] : other.neuron_steps) neuron_steps[k] += v;
    if (attn_nonzero.size() < other.attn_nonzero.size()) {
        attn_nonzero.resize(other.attn_nonzero.size(), 0);
        attn_entries.resize(other.attn_entries.size(), 0);
    }
    for (std::size_t i = 0; i < other.attn_nonzero.size(); ++i) {
        attn_nonzero[i] += other.attn_nonzero[i];
        attn_entries[i] += other.attn_entries[i];
    }
}

struct DenseSpikformer::Impl {
    ModelWeights w;
    std::map<std::string, Tensor> grads;
    ModelSpec spec;
    models::AttentionVariantInfo variant;
    ops::LifOpParams lif, attn_lif;
    std::array<ConvUnit, 4> stages;
    std::array<bool, 4> pool{};
    std::array<Buf, 4> pooled;
    std::array<std::vector<std::int32_t>, 4> argmax;
    ConvUnit rpe;
    std::vector<Block> blocks;
    float* head_w = nullptr;
    float* head_b = nullptr;

    // per pass
    std::size_t batch = 0, rows_tb = 0;
    bool static_input = true;
    Buf input0;   // stage 0 input: [B, cin, H, W] (static) or [T·B, cin, H, W]
    Buf tokens0;  // [T·B·N, D] after the stem
    Buf feat;     // [B, D]
    Buf logits;   // [B, K]
    bool train = false;
    bool smooth = false;
    // backward scratch, kept between steps (no page faults, no zero fills)
    Buf scratch_dz, scratch_dy, bw_dx, bw_g1, bw_g2, bw_dq, bw_dk, bw_dv, bw_dpre, bw_dstem,
        bw_ds_rpe, bw_drpe_in;
    std::array<Buf, 4> bw_dsp, bw_din;

    explicit Impl(const ModelWeights& weights) : w(weights) {
        // Every step allocates and frees large activation buffers: keep them in the heap instead
        // of mmap/munmap round trips, whose page faults would cost more than the arithmetic.
        mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        w.validate();
        spec = w.spec;
        variant = models::info(spec.attention.variant);
        lif = {{static_cast<float>(spec.lif.tau), static_cast<float>(spec.lif.v_threshold),
                static_cast<float>(spec.lif.v_reset)},
               static_cast<float>(spec.lif.surrogate_alpha)};
        attn_lif = lif;
        attn_lif.rule.v_threshold = static_cast<float>(spec.lif.attn_v_threshold);
        for (const auto& p : parameter_layout(spec))
            if (p.kind == ParameterInfo::Kind::weight || p.kind == ParameterInfo::Kind::bias ||
                p.kind == ParameterInfo::Kind::bn_weight || p.kind == ParameterInfo::Kind::bn_bias)
                grads[p.name] = Tensor{p.shape, std::vector<float>(w.at(p.name).size(), 0.f)};
        bind();
    }

    float* param(const std::string& n) { return w.at(n).data.data(); }
    float* grad(const std::string& n) { return grads.at(n).data.data(); }

    void bind_bn(ops::BatchNorm& bn, const std::string& prefix, std::size_t channels) {
        bn.channels = channels;
        bn.eps = static_cast<float>(spec.bn_eps);
        bn.weight = param(prefix + "/weight");
        bn.bias = param(prefix + "/bias");
        bn.running_mean = param(prefix + "/running_mean");
        bn.running_var = param(prefix + "/running_var");
        bn.grad_weight = grad(prefix + "/weight");
        bn.grad_bias = grad(prefix + "/bias");
    }

    // One linear → BN → LIF unit from the graph: the linear node, its batchnorm and its LIF.
    void bind_linear(LinearUnit& u, const sim::Graph& g, std::size_t linear) {
        const auto& nodes = g.nodes();
        const auto& bn = nodes[g.consumers(linear).front()];
        const auto& neuron = nodes[g.consumers(g.find(bn.name)).front()];
        const auto& name = nodes[linear].name;
        u.name = neuron.name;
        u.in = nodes[nodes[linear].input_index[0]].shape.channels;
        u.out = nodes[linear].shape.channels;
        u.weight = param(name + "/weight");
        u.bias = param(name + "/bias");
        u.grad_weight = grad(name + "/weight");
        u.grad_bias = grad(name + "/bias");
        bind_bn(u.bn, bn.name, u.out);
    }
    // The units are bound by walking the Spikformer's graph (models/spikformer.hpp) in execution
    // order: each conv2d → batchnorm → LIF is the next SPS stage (then the position embedding),
    // a max-pool after a stage's LIF pools that stage, the linear nodes are q, k, v, proj, fc1,
    // fc2 of block after block, attention nodes hold Δ and V̄, the readout is the head. Names,
    // shapes and tensors all come from the graph; the forward pass runs them in the
    // Spikformer's order.
    void bind() {
        const auto g = spikformer_graph(spec);
        const auto& nodes = g.nodes();
        std::size_t convs = 0, linears = 0, attentions = 0;
        blocks.resize(spec.blocks);
        for (auto i : g.order()) {
            const auto& n = nodes[i];
            switch (n.kind) {
                case sim::NodeKind::conv2d: {
                    if (convs > 4) throw ConfigError("dense Spikformer: more than five convs");
                    ConvUnit& u = convs < 4 ? stages[convs] : rpe;
                    const auto& in = nodes[n.input_index[0]].shape;
                    const std::size_t bn = g.consumers(i).front();
                    const std::size_t neuron = g.consumers(bn).front();
                    u.name = nodes[neuron].name;
                    u.cin = in.channels;
                    u.cout = n.shape.channels;
                    u.h = in.height;
                    u.w = in.width;
                    u.weight = param(n.name + "/weight");
                    u.grad_weight = grad(n.name + "/weight");
                    bind_bn(u.bn, nodes[bn].name, u.cout);
                    if (convs < 4) {
                        pool[convs] = false;
                        for (auto c : g.consumers(neuron))
                            pool[convs] |= nodes[c].kind == sim::NodeKind::max_pool;
                    }
                    ++convs;
                    break;
                }
                case sim::NodeKind::linear: {
                    auto& b = blocks.at(linears / 6);
                    LinearUnit* units[6] = {&b.q, &b.k, &b.v, &b.proj, &b.fc1, &b.fc2};
                    bind_linear(*units[linears % 6], g, i);
                    ++linears;
                    break;
                }
                case sim::NodeKind::attention: {
                    auto& b = blocks.at(attentions++);
                    b.c_mean = param(n.name + "/c_mean");
                    b.v_bar = param(n.name + "/v_bar");
                    break;
                }
                case sim::NodeKind::readout:
                    head_w = param(n.name + "/weight");
                    head_b = param(n.name + "/bias");
                    break;
                default:
                    break;
            }
        }
        if (convs != 5 || linears != 6 * spec.blocks || attentions != spec.blocks)
            throw ConfigError("dense Spikformer: the graph is not a Spikformer of the spec");
    }

    std::size_t steps() const { return spec.time_steps; }

    // Records spikes s ([T, B, neurons]) of a population into the probe and counts.
    void record(const std::string& name, const float* s, std::size_t neurons, SpikeProbe* probe,
                FiringCounts* counts) {
        const std::size_t t_n = steps();
        if (probe) {
            auto& out = probe->spikes[name];
            out.assign(batch * t_n * neurons, 0);
            probe->neurons[name] = neurons;
            for (std::size_t t = 0; t < t_n; ++t)
                for (std::size_t b = 0; b < batch; ++b) {
                    const float* src = s + (t * batch + b) * neurons;
                    std::uint8_t* dst = out.data() + (b * t_n + t) * neurons;
                    for (std::size_t i = 0; i < neurons; ++i) dst[i] = src[i] > 0.5f ? 1 : 0;
                }
        }
        if (counts) {
            double sum = 0;
            const std::size_t total = t_n * batch * neurons;
            for (std::size_t i = 0; i < total; ++i) sum += s[i];
            counts->spikes[name] += sum;
            counts->neuron_steps[name] += static_cast<double>(total);
        }
    }

    void conv_unit_forward(ConvUnit& u, const float* in, std::size_t images, Buf& z) {
        const std::size_t size = rows_tb * u.cout * u.plane();
        u.y.resize(size);
        if (images == rows_tb) {
            ops::conv3x3_forward(in, images, u.cin, u.cout, u.h, u.w, u.weight, u.y.data());
        } else {  // static input: one conv per image, the same current at every step
            const std::size_t per = images * u.cout * u.plane();
            ops::conv3x3_forward(in, images, u.cin, u.cout, u.h, u.w, u.weight, u.y.data());
            for (std::size_t t = 1; t < steps(); ++t)
                std::copy(u.y.begin(), u.y.begin() + static_cast<std::ptrdiff_t>(per),
                          u.y.begin() + static_cast<std::ptrdiff_t>(t * per));
        }
        z.resize(size);
        u.bn.forward(u.y.data(), rows_tb, u.plane(), train, z.data());
        u.hmem.resize(size);
        u.s.resize(size);
        ops::lif_forward(z.data(), steps(), size / steps(), lif, smooth, u.hmem.data(), u.s.data());
    }

    void linear_unit_forward(LinearUnit& u, const float* x, std::size_t rows, Buf& z,
                             const ops::LifOpParams& p) {
        u.y.resize(rows * u.out);
        ops::linear_forward(x, rows, u.in, u.out, u.weight, u.bias, u.y.data());
        z.resize(rows * u.out);
        u.bn.forward(u.y.data(), rows, 1, train, z.data());
        u.hmem.resize(rows * u.out);
        u.s.resize(rows * u.out);
        ops::lif_forward(z.data(), steps(), rows * u.out / steps(), p, smooth, u.hmem.data(),
                         u.s.data());
    }

    // Sizes and constants of the attention core in this pass.
    ops::AttentionOpParams attention_params() const {
        return {spec.tokens(),
                spec.dim,
                spec.heads,
                static_cast<float>(spec.attention.scale),
                static_cast<float>(spec.attention.kappa),
                variant.binary,
                smooth};
    }

    // The attention core of block l: q, k, v spikes → attn_pre (input current of attn_lif).
    void attention_forward(Block& b) {
        const std::size_t rows = rows_tb * spec.tokens();
        const auto delta = deltas(b);
        auto shift = ops::AttentionShift::none;
        if (variant.shift)
            shift = train && spec.attention.train_shift == TrainShift::batch
                        ? ops::AttentionShift::batch_mean
                        : ops::AttentionShift::given;
        b.batch_shift = shift == ops::AttentionShift::batch_mean;
        b.attn_pre.resize(rows * spec.dim);  // every entry is written by the op
        ops::attention_forward(attention_params(), b.q.s.data(), b.k.s.data(), b.v.s.data(),
                               rows_tb, delta.data(), shift, b.v_bar, b.attn_pre.data(), b.stats);
    }

    std::vector<float> deltas(const Block& b) const {
        std::vector<float> out(spec.heads, 0.f);
        if (variant.adaptive_threshold)
            for (std::size_t h = 0; h < spec.heads; ++h)
                out[h] = static_cast<float>(spec.attention.lambda) * b.c_mean[h];
        return out;
    }

    // Full forward pass; returns logits [B, K].
    void forward(const float* input, std::size_t b_n, InputLayout layout, SpikeProbe* probe,
                 FiringCounts* counts) {
        spec.validate();
        if (b_n == 0) throw ConfigError("forward: the batch must hold at least one sample");
        batch = b_n;
        rows_tb = steps() * batch;
        static_input = layout == InputLayout::static_image;
        const std::size_t in_plane = spec.in_channels * spec.in_height * spec.in_width;
        if (static_input) {
            input0.assign(input, input + batch * in_plane);
        } else {  // [B, T, …] → [T, B, …]
            input0.resize(rows_tb * in_plane);
            for (std::size_t b = 0; b < batch; ++b)
                for (std::size_t t = 0; t < steps(); ++t)
                    std::copy(
                        input + (b * steps() + t) * in_plane,
                        input + (b * steps() + t + 1) * in_plane,
                        input0.begin() + static_cast<std::ptrdiff_t>((t * batch + b) * in_plane));
        }
        Buf z;
        const float* x = input0.data();
        std::size_t images = static_input ? batch : rows_tb;
        for (std::size_t i = 0; i < 4; ++i) {
            auto& u = stages[i];
            conv_unit_forward(u, x, images, z);
            record(u.name, u.s.data(), u.cout * u.plane(), probe, counts);
            images = rows_tb;
            if (pool[i]) {
                const std::size_t planes = rows_tb * u.cout;
                pooled[i].resize(planes * pooled_size(u.h) * pooled_size(u.w));
                argmax[i].resize(pooled[i].size());
                ops::maxpool_forward(u.s.data(), planes, u.h, u.w, pooled[i].data(),
                                     argmax[i].data());
                x = pooled[i].data();
            } else {
                x = u.s.data();
            }
        }
        conv_unit_forward(rpe, x, rows_tb, z);
        record(rpe.name, rpe.s.data(), rpe.cout * rpe.plane(), probe, counts);
        const std::size_t n_tok = spec.tokens(), d = spec.dim, rows = rows_tb * n_tok;
        tokens0.resize(rows * d);
        parallel_items(rows_tb, 4, [&](std::size_t tb) {
            Buf sum(d * n_tok);
            for (std::size_t i = 0; i < d * n_tok; ++i)
                sum[i] = x[tb * d * n_tok + i] + rpe.s[tb * d * n_tok + i];
            kernels::transpose(d, n_tok, sum.data(), tokens0.data() + tb * n_tok * d);
        });
        Buf stream = tokens0;
        for (std::size_t l = 0; l < blocks.size(); ++l) {
            auto& b = blocks[l];
            b.x_in = stream;
            for (auto* u : {&b.q, &b.k, &b.v}) {
                linear_unit_forward(*u, stream.data(), rows, z, lif);
                record(u->name, u->s.data(), n_tok * d, probe, counts);
            }
            attention_forward(b);
            if (counts) {
                if (counts->attn_nonzero.size() < blocks.size()) {
                    counts->attn_nonzero.resize(blocks.size(), 0);
                    counts->attn_entries.resize(blocks.size(), 0);
                }
                counts->attn_nonzero[l] += b.stats.nonzero;
                counts->attn_entries[l] += double(rows_tb * spec.heads * n_tok * n_tok);
            }
            if (probe) {
                auto& cur = probe->currents[fmt::format("blocks/{}/attn/attn_input", l)];
                cur.resize(rows * d);
                const std::size_t per = n_tok * d;
                for (std::size_t t = 0; t < steps(); ++t)
                    for (std::size_t bi = 0; bi < batch; ++bi)
                        std::copy(
                            b.attn_pre.begin() +
                                static_cast<std::ptrdiff_t>((t * batch + bi) * per),
                            b.attn_pre.begin() +
                                static_cast<std::ptrdiff_t>((t * batch + bi + 1) * per),
                            cur.begin() + static_cast<std::ptrdiff_t>((bi * steps() + t) * per));
            }
            b.attn_h.resize(rows * d);
            b.attn_s.resize(rows * d);
            ops::lif_forward(b.attn_pre.data(), steps(), rows * d / steps(), attn_lif, smooth,
                             b.attn_h.data(), b.attn_s.data());
            record(fmt::format("blocks/{}/attn/attn_lif", l), b.attn_s.data(), n_tok * d, probe,
                   counts);
            linear_unit_forward(b.proj, b.attn_s.data(), rows, z, lif);
            record(b.proj.name, b.proj.s.data(), n_tok * d, probe, counts);
            for (std::size_t i = 0; i < rows * d; ++i) stream[i] += b.proj.s[i];
            b.x_mid = stream;
            linear_unit_forward(b.fc1, stream.data(), rows, z, lif);
            record(b.fc1.name, b.fc1.s.data(), n_tok * spec.mlp_hidden(), probe, counts);
            linear_unit_forward(b.fc2, b.fc1.s.data(), rows, z, lif);
            record(b.fc2.name, b.fc2.s.data(), n_tok * d, probe, counts);
            for (std::size_t i = 0; i < rows * d; ++i) stream[i] += b.fc2.s[i];
        }
        // head: mean over tokens and steps, linear
        feat.resize(batch * d);
        logits.resize(batch * spec.classes);
        ops::head_forward(head_sizes(), stream.data(), head_w, head_b, feat.data(), logits.data());
    }

    ops::HeadSizes head_sizes() const {
        return {steps(), batch, spec.tokens(), spec.dim, spec.classes};
    }

    // Cross-entropy with label smoothing; fills dlogits (mean over the batch) when not null.
    double loss(const int* labels, double smoothing, std::size_t* correct, Buf* dlogits) const {
        const double total = ops::cross_entropy_forward(logits.data(), labels, batch, spec.classes,
                                                        smoothing, correct);
        if (dlogits) {
            dlogits->resize(batch * spec.classes);
            ops::cross_entropy_backward(logits.data(), labels, batch, spec.classes, smoothing,
                                        dlogits->data());
        }
        return total;
    }

    // ------------------------------------------------------------ backward

    // ds (overwritten as scratch) → gradient of the conv unit's input (din may be null).
    void conv_unit_backward(ConvUnit& u, const float* in, std::size_t images, Buf& ds, float* din) {
        const std::size_t size = rows_tb * u.cout * u.plane();
        Buf& dz = scratch_dz;
        dz.resize(size);
        ops::lif_backward(u.hmem.data(), u.s.data(), ds.data(), steps(), size / steps(), lif,
                          smooth, dz.data());
        u.bn.backward(u.y.data(), dz.data(), rows_tb, u.plane(), ds.data());
        if (images != rows_tb) {  // static input: the conv output is shared by all steps
            const std::size_t per = images * u.cout * u.plane();
            for (std::size_t t = 1; t < steps(); ++t)
                for (std::size_t i = 0; i < per; ++i) ds[i] += ds[t * per + i];
        }
        ops::conv3x3_backward(in, ds.data(), images, u.cin, u.cout, u.h, u.w, u.weight,
                              u.grad_weight, din);
    }

    // ds → gradient of the unit's input written to dx (overwritten).
    void linear_unit_backward(LinearUnit& u, const float* x, std::size_t rows, const Buf& ds,
                              const ops::LifOpParams& p, Buf& dx) {
        Buf& dz = scratch_dz;
        Buf& dy = scratch_dy;
        dz.resize(rows * u.out);
        dy.resize(rows * u.out);
        ops::lif_backward(u.hmem.data(), u.s.data(), ds.data(), steps(), rows * u.out / steps(), p,
                          smooth, dz.data());
        u.bn.backward(u.y.data(), dz.data(), rows, 1, dy.data());
        dx.resize(rows * u.in);
        ops::linear_backward(x, dy.data(), rows, u.in, u.out, u.weight, u.grad_weight, u.grad_bias,
                             dx.data());
    }

    // d attn_pre → dq, dk, dv (spike gradients).
    void attention_backward(Block& b, const Buf& dpre, Buf& dq, Buf& dk, Buf& dv) {
        const std::size_t size = rows_tb * spec.tokens() * spec.dim;
        dq.resize(size);
        dk.resize(size);
        dv.resize(size);
        const auto delta = deltas(b);
        ops::attention_backward(attention_params(), b.q.s.data(), b.k.s.data(), b.v.s.data(),
                                rows_tb, delta.data(), b.batch_shift, dpre.data(), dq.data(),
                                dk.data(), dv.data());
    }

    void backward(const Buf& dlogits) {
        const std::size_t n_tok = spec.tokens(), d = spec.dim, rows = rows_tb * n_tok;
        bw_dx.resize(rows * d);
        ops::head_backward(head_sizes(), feat.data(), dlogits.data(), head_w, grad("head/weight"),
                           grad("head/bias"), bw_dx.data());
        for (std::size_t l = blocks.size(); l-- > 0;) {
            auto& b = blocks[l];
            // x_out = x_mid + fc2(fc1(x_mid))
            linear_unit_backward(b.fc2, b.fc1.s.data(), rows, bw_dx, lif, bw_g1);
            linear_unit_backward(b.fc1, b.x_mid.data(), rows, bw_g1, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
            // x_mid = x_in + proj(attn_lif(attention(q, k, v)))
            linear_unit_backward(b.proj, b.attn_s.data(), rows, bw_dx, lif, bw_g1);
            bw_dpre.resize(rows * d);
            ops::lif_backward(b.attn_h.data(), b.attn_s.data(), bw_g1.data(), steps(),
                              rows * d / steps(), attn_lif, smooth, bw_dpre.data());
            attention_backward(b, bw_dpre, bw_dq, bw_dk, bw_dv);
            linear_unit_backward(b.q, b.x_in.data(), rows, bw_dq, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
            linear_unit_backward(b.k, b.x_in.data(), rows, bw_dk, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
            linear_unit_backward(b.v, b.x_in.data(), rows, bw_dv, lif, bw_g2);
            for (std::size_t i = 0; i < rows * d; ++i) bw_dx[i] += bw_g2[i];
        }
        // tokens → channel-major [T·B, D, N]; the stem output feeds the RPE and the residual
        bw_dstem.resize(rows * d);
        parallel_items(rows_tb, 4, [&](std::size_t tb) {
            kernels::transpose(n_tok, d, bw_dx.data() + tb * n_tok * d,
                               bw_dstem.data() + tb * n_tok * d);
        });
        const float* x3 = pool[3] ? pooled[3].data() : stages[3].s.data();
        bw_ds_rpe = bw_dstem;
        bw_drpe_in.resize(rows * d);
        conv_unit_backward(rpe, x3, rows_tb, bw_ds_rpe, bw_drpe_in.data());
        for (std::size_t i = 0; i < rows * d; ++i) bw_dstem[i] += bw_drpe_in[i];
        const Buf* dcur = &bw_dstem;
        for (std::size_t i = 4; i-- > 0;) {
            auto& u = stages[i];
            Buf& dspi = bw_dsp[i];
            dspi.resize(rows_tb * u.cout * u.plane());
            if (pool[i])
                ops::maxpool_backward(dcur->data(), argmax[i].data(), rows_tb * u.cout, u.h, u.w,
                                      dspi.data());
            else
                std::copy(dcur->begin(), dcur->end(), dspi.begin());
            const bool first = i == 0;
            const float* in = first ? input0.data()
                                    : (pool[i - 1] ? pooled[i - 1].data() : stages[i - 1].s.data());
            const std::size_t images = first && static_input ? batch : rows_tb;
            if (!first) bw_din[i].resize(rows_tb * u.cin * u.plane());
            conv_unit_backward(u, in, images, dspi, first ? nullptr : bw_din[i].data());
            dcur = &bw_din[i];
        }
    }

    void update_running() {
        for (auto& u : stages) u.bn.update_running();
        rpe.bn.update_running();
        const float mu = static_cast<float>(spec.attention.momentum);
        for (auto& b : blocks) {
            for (auto* u : {&b.q, &b.k, &b.v, &b.proj, &b.fc1, &b.fc2}) u->bn.update_running();
            for (std::size_t h = 0; h < spec.heads; ++h)
                b.c_mean[h] = mu * b.c_mean[h] + (1 - mu) * static_cast<float>(b.stats.c_mean[h]);
            for (std::size_t c = 0; c < spec.dim; ++c)
                b.v_bar[c] = mu * b.v_bar[c] + (1 - mu) * b.stats.out_mean[c];
        }
    }
};

DenseSpikformer::DenseSpikformer(const ModelWeights& weights)
    : impl_(std::make_unique<Impl>(weights)) {}

DenseSpikformer::~DenseSpikformer() = default;

const ModelSpec& DenseSpikformer::spec() const {
    return impl_->spec;
}
const ModelWeights& DenseSpikformer::weights() const {
    return impl_->w;
}
ModelWeights& DenseSpikformer::mutable_weights() {
    return impl_->w;
}
const std::map<std::string, Tensor>& DenseSpikformer::gradients() const {
    return impl_->grads;
}

std::vector<float> DenseSpikformer::forward_eval(const float* input, std::size_t batch,
                                                 SpikeProbe* probe, InputLayout layout,
                                                 FiringCounts* counts) {
    impl_->train = false;
    impl_->smooth = false;
    if (probe) {
        probe->spikes.clear();
        probe->neurons.clear();
        probe->currents.clear();
    }
    impl_->forward(input, batch, layout, probe, counts);
    return impl_->logits;
}

StepResult DenseSpikformer::train_step(const float* input, const int* labels, std::size_t batch,
                                       const TrainOptions& options, InputLayout layout) {
    auto& im = *impl_;
    im.train = true;
    im.smooth = options.smooth;
    for (auto& [name, g] : im.grads) std::fill(g.data.begin(), g.data.end(), 0.f);
    im.forward(input, batch, layout, nullptr, nullptr);
    StepResult r;
    Buf dlogits;
    r.loss = im.loss(labels, options.label_smoothing, &r.correct, &dlogits);
    const std::size_t classes = im.spec.classes;
    for (std::size_t bi = 0; bi < batch; ++bi)
        r.nonfinite_samples +=
            std::any_of(im.logits.begin() + static_cast<std::ptrdiff_t>(bi * classes),
                        im.logits.begin() + static_cast<std::ptrdiff_t>((bi + 1) * classes),
                        [](float v) { return !std::isfinite(v); });
    im.backward(dlogits);
    if (options.update_running) im.update_running();
    return r;
}

double DenseSpikformer::train_loss(const float* input, const int* labels, std::size_t batch,
                                   const TrainOptions& options, InputLayout layout) {
    auto& im = *impl_;
    im.train = true;
    im.smooth = options.smooth;
    im.forward(input, batch, layout, nullptr, nullptr);
    return im.loss(labels, options.label_smoothing, nullptr, nullptr);
}

std::vector<float> DenseSpikformer::delta(std::size_t block) const {
    if (block >= impl_->blocks.size())
        throw ConfigError(fmt::format("delta: block {} does not exist (the model has {})", block,
                                      impl_->blocks.size()));
    return impl_->deltas(impl_->blocks[block]);
}

std::vector<float> DenseSpikformer::v_bar(std::size_t block) const {
    if (block >= impl_->blocks.size())
        throw ConfigError(fmt::format("v_bar: block {} does not exist (the model has {})", block,
                                      impl_->blocks.size()));
    const float* v = impl_->blocks[block].v_bar;
    return {v, v + impl_->spec.dim};
}

std::vector<std::string> DenseSpikformer::population_names() const {
    // the neuron populations of the Spikformer's graph, in execution order
    const auto g = spikformer_graph(impl_->spec);
    std::vector<std::string> out;
    for (auto i : g.order())
        if (g.nodes()[i].kind == sim::NodeKind::lif) out.push_back(g.nodes()[i].name);
    return out;
}

ModelWeights init_weights(const ModelSpec& spec, std::uint64_t seed) {
    auto w = zero_weights(spec);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.02);
    for (const auto& p : parameter_layout(spec)) {
        if (p.kind != ParameterInfo::Kind::weight) continue;
        auto& t = w.at(p.name);
        if (p.shape.size() == 4) {  // conv: PyTorch's default U(±1/√fan_in)
            const double bound = 1.0 / std::sqrt(double(p.shape[1] * 9));
            std::uniform_real_distribution<double> uni(-bound, bound);
            for (auto& v : t.data) v = static_cast<float>(uni(rng));
        } else {  // linear: truncated normal, std 0.02, cut at ±2 std
            for (auto& v : t.data) {
                double x;
                do x = normal(rng);
                while (std::abs(x) > 0.04);
                v = static_cast<float>(x);
            }
        }
    }
    return w;
}

}  // namespace evformer::models
