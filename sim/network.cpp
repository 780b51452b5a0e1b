#include "evformer/sim/network.hpp"

#include <algorithm>
#include <chrono>
#include <string>

#include "evformer/error.hpp"

namespace evformer::sim {
namespace {

constexpr const char* kBlockLayers[7] = {"attn/q_lif",    "attn/k_lif",    "attn/v_lif",
                                         "attn/attn_lif", "attn/proj_lif", "mlp/fc1_lif",
                                         "mlp/fc2_lif"};

std::string block_name(std::size_t l, std::size_t i) {
    return "blocks/" + std::to_string(l) + "/" + kBlockLayers[i];
}

}  // namespace

StepCounts& StepCounts::operator+=(const StepCounts& o) {
    sops += o.sops;
    macs += o.macs;
    membrane_updates += o.membrane_updates;
    spikes += o.spikes;
    input_events += o.input_events;
    return *this;
}

StepCounts SampleResult::layer_total(std::size_t layer) const {
    StepCounts t;
    for (std::size_t s = 0; s < time_steps; ++s) t += at(layer, s);
    return t;
}

StepCounts SampleResult::total() const {
    StepCounts t;
    for (const auto& c : counts) t += c;
    return t;
}

void Network::validate() const {
    auto fail = [](const std::string& rule) { throw ConfigError("network: " + rule); };
    if (time_steps == 0) fail("time_steps must be at least 1");
    if (stem.size() != 4) fail("the stem must have four stages");
    std::size_t c = stem[0].conv.in_channels, h = stem[0].conv.height, w = stem[0].conv.width;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto name = "sps/conv" + std::to_string(i);
        const auto& conv = stem[i].conv;
        conv.validate(name.c_str());
        if (conv.in_channels != c || conv.height != h || conv.width != w)
            fail(name + " does not take the previous stage's output shape");
        c = conv.out_channels;
        if (stem[i].pool_after) {
            SpikeMaxPool p(c, h, w);
            h = p.out_height();
            w = p.out_width();
        }
    }
    rpe.validate("sps/rpe_conv");
    if (rpe.in_channels != c || rpe.out_channels != c || rpe.height != h || rpe.width != w)
        fail("sps/rpe_conv must map the stem's output shape onto itself");
    const std::size_t n = h * w, d = c;
    for (std::size_t l = 0; l < blocks.size(); ++l) {
        const auto& b = blocks[l];
        const auto p = "blocks/" + std::to_string(l) + "/";
        auto check_linear = [&](const TokenLinear& lin, const std::string& name, std::size_t in,
                                std::size_t out) {
            lin.validate((p + name).c_str());
            if (lin.tokens != n || lin.in_features != in || lin.out_features != out)
                fail(p + name + " has the wrong shape");
        };
        check_linear(b.q, "attn/q_linear", d, d);
        check_linear(b.k, "attn/k_linear", d, d);
        check_linear(b.v, "attn/v_linear", d, d);
        check_linear(b.proj, "attn/proj_linear", d, d);
        check_linear(b.fc1, "mlp/fc1_linear", d, b.fc1.out_features);
        check_linear(b.fc2, "mlp/fc2_linear", b.fc1.out_features, d);
        b.attention.validate((p + "attn").c_str());
        if (b.attention.tokens != n || b.attention.dim != d) fail(p + "attn has the wrong size");
    }
    if (blocks.empty()) fail("at least one block is required");
    if (head.in_features != d || head.classes < 1 || head.weight.size() != head.classes * d ||
        head.bias.size() != head.classes)
        fail("head must map D features to the classes");
}

std::vector<LayerInfo> Network::layers() const {
    std::vector<LayerInfo> out;
    std::size_t in_neurons = stem[0].conv.inputs();
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& conv = stem[i].conv;
        LayerInfo li;
        li.name = "sps/lif" + std::to_string(i);
        li.kind = i == 0 ? LayerKind::conv_real : LayerKind::conv;
        li.shape = {conv.out_channels, conv.height, conv.width};
        li.neurons = conv.outputs();
        li.input_neurons = in_neurons;
        li.flops = conv.flops();
        out.push_back(li);
        in_neurons = stem[i].pool_after
                         ? SpikeMaxPool(conv.out_channels, conv.height, conv.width).outputs()
                         : conv.outputs();
    }
    out.push_back({"sps/rpe_lif",
                   LayerKind::conv,
                   {rpe.out_channels, rpe.height, rpe.width},
                   rpe.outputs(),
                   rpe.inputs(),
                   rpe.flops()});
    const std::size_t n = tokens(), d = dim();
    for (std::size_t l = 0; l < blocks.size(); ++l) {
        const auto& b = blocks[l];
        const TokenLinear* lin[7] = {&b.q, &b.k, &b.v, nullptr, &b.proj, &b.fc1, &b.fc2};
        for (std::size_t i = 0; i < 7; ++i) {
            LayerInfo li;
            li.name = block_name(l, i);
            if (lin[i]) {
                li.kind = LayerKind::linear;
                li.shape = {n, lin[i]->out_features};
                li.neurons = lin[i]->outputs();
                li.input_neurons = lin[i]->inputs();
                li.flops = lin[i]->flops();
            } else {
                li.kind = LayerKind::attention;
                li.shape = {n, d};
                li.neurons = n * d;
                li.input_neurons = n * d;
                li.flops = b.attention.flops_qk() + b.attention.flops_av();
            }
            out.push_back(li);
        }
    }
    out.push_back({"head",
                   LayerKind::head,
                   {head.classes},
                   head.classes,
                   head.in_features,
                   double(head.classes * head.in_features)});
    return out;
}

SpikeRecorder::SpikeRecorder(const Network& net, const std::vector<std::string>& layers) {
    const auto infos = net.layers();
    slot_.assign(infos.size(), -1);
    channels_.assign(infos.size(), 0);
    for (std::size_t i = 0; i + 1 < infos.size(); ++i) {
        const bool chosen = layers.empty() ||
                            std::find(layers.begin(), layers.end(), infos[i].name) != layers.end();
        if (!chosen) continue;
        slot_[i] = static_cast<int>(rasters_.size());
        if (i < 5) channels_[i] = infos[i].shape[0];
        // record() converts conv populations to channel-major; token populations keep the
        // engine's token-major order: the raster states the order it is converted to here
        rasters_.push_back(
            {infos[i].name, infos[i].shape, channels_[i] ? kChannelMajor : kTokenMajor, {}, {}});
    }
    for (const auto& name : layers) {
        bool known = false;
        for (std::size_t i = 0; i + 1 < infos.size(); ++i) known |= infos[i].name == name;
        if (!known) {
            std::string valid;
            for (std::size_t i = 0; i + 1 < infos.size(); ++i)
                valid += (i ? ", " : "") + infos[i].name;
            throw ConfigError("unknown population '" + name +
                              "' to record; expected one of: " + valid);
        }
    }
}

void SpikeRecorder::record(std::size_t layer, std::size_t step, const EventList& events) {
    auto& r = rasters_[static_cast<std::size_t>(slot_[layer])];
    const std::size_t c = channels_[layer];
    const std::size_t positions = c ? r.shape[1] * r.shape[2] : 0;
    for (std::size_t e = 0; e < events.size(); ++e)
        for (std::uint16_t m = 0; m < events.count[e]; ++m) {
            const std::size_t n = events.neuron[e];
            // Channel-last (engine) → channel-major (reports) for conv populations.
            r.idx.push_back(static_cast<std::uint32_t>(c ? (n % c) * positions + n / c : n));
            r.time.push_back(static_cast<std::uint32_t>(step));
        }
}

void SpikeRecorder::clear() {
    for (auto& r : rasters_) {
        r.idx.clear();
        r.time.clear();
    }
}

Simulator::Simulator(const Network& net) : net_(&net) {
    net.validate();
    const auto infos = net.layers();
    std::size_t largest = 0;
    for (const auto& li : infos) largest = std::max(largest, li.neurons);
    v_.resize(infos.size());
    for (std::size_t i = 0; i + 1 < infos.size(); ++i) v_[i].assign(infos[i].neurons, 0.f);
    acc_.assign(largest, 0.f);
    image_current_.assign(net.stem[0].conv.outputs(), 0.f);
    events_.resize(infos.size());
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& conv = net.stem[i].conv;
        pools_.emplace_back(conv.out_channels, conv.height, conv.width);
    }
    pool_seen_.assign(largest, 0);
    pooled_.resize(4);
    stream_ = ResidualStream(net.tokens() * net.dim());
    for (const auto& b : net.blocks) attention_scratch_.emplace_back(b.attention);
    head_sum_.assign(net.dim(), 0.0);
}

SampleResult Simulator::run_image(std::span<const float> image, SpikeRecorder* recorder) {
    if (image.size() != net_->input_neurons())
        throw ConfigError("image has " + std::to_string(image.size()) + " values, the network " +
                          "expects " + std::to_string(net_->input_neurons()));
    begin();
    const auto& conv = net_->stem[0].conv;
    conv.init(image_current_.data());
    const std::uint64_t image_macs = conv.propagate_dense(image.data(), image_current_.data());
    for (std::size_t t = 0; t < net_->time_steps; ++t) step(nullptr, image_macs, recorder);
    return finish();
}

SampleResult Simulator::run_events(std::span<const EventList> frames, SpikeRecorder* recorder) {
    if (frames.size() != net_->time_steps)
        throw ConfigError("event input has " + std::to_string(frames.size()) +
                          " frames, the network runs " + std::to_string(net_->time_steps) +
                          " time steps");
    for (const auto& f : frames) check_input(f);
    begin();
    for (const auto& f : frames) step(&f, 0, recorder);
    return finish();
}

void Simulator::check_input(const EventList& input) const {
    const auto limit = net_->input_neurons();
    for (auto n : input.neuron)
        if (n >= limit)
            throw ConfigError("input event of neuron " + std::to_string(n) + " is outside the " +
                              std::to_string(limit) + " input neurons");
}

void Simulator::begin(bool keep_state) {
    start_ = std::chrono::steady_clock::now();
    steps_ = 0;
    step_counts_.clear();
    step_attention_.clear();
    if (!keep_state)
        for (auto& v : v_) std::fill(v.begin(), v.end(), 0.f);
    std::fill(head_sum_.begin(), head_sum_.end(), 0.0);
}

void Simulator::step_events(const EventList& input, SpikeRecorder* recorder) {
    check_input(input);
    step(&input, 0, recorder);
}

void Simulator::step(const EventList* input_events, std::uint64_t image_macs,
                     SpikeRecorder* recorder) {
    const Network& net = *net_;
    const std::size_t layers = v_.size(), t = steps_++;
    step_counts_.resize(step_counts_.size() + layers);
    step_attention_.resize(step_attention_.size() + net.blocks.size());
    StepCounts* counts = step_counts_.data() + t * layers;
    AttentionStepCounts* attention = step_attention_.data() + t * net.blocks.size();
    float* acc = acc_.data();
    auto count = [&](std::size_t layer) -> StepCounts& { return counts[layer]; };
    // Runs the LIF of `layer` on acc_ and records its spikes.
    auto fire = [&](std::size_t layer, const LifParams& p, std::size_t n) -> EventList& {
        auto& ev = events_[layer];
        ev.clear();
        lif_step(p, v_[layer].data(), acc, n, ev);
        auto& c = count(layer);
        c.membrane_updates += n;
        c.spikes += ev.size();
        if (recorder && recorder->wants(layer)) recorder->record(layer, t, ev);
        return ev;
    };

    // SPS stem.
    const EventList* input = nullptr;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& conv = net.stem[i].conv;
        auto& c = count(i);
        if (i == 0 && !input_events) {
            std::copy(image_current_.begin(), image_current_.end(), acc);
            c.macs += image_macs;
        } else {
            const EventList& in = i == 0 ? *input_events : *input;
            conv.init(acc);
            c.sops += conv.propagate(in, acc);
            c.input_events += in.total();
        }
        const EventList& spikes = fire(i, net.lif, conv.outputs());
        input = &spikes;
        if (net.stem[i].pool_after) {
            pools_[i].apply(spikes, pooled_[i], pool_seen_);
            input = &pooled_[i];
        }
    }
    // After stage 3 `input` is the feature map x_feat.
    const EventList& feat = *input;
    net.rpe.init(acc);
    count(4).sops += net.rpe.propagate(feat, acc);
    count(4).input_events += feat.total();
    const EventList& rpe_spikes = fire(4, net.lif, net.rpe.outputs());
    stream_.clear();
    stream_.add(feat);
    stream_.add(rpe_spikes);
    EventList& x = stream_events_;
    stream_.to_events_by_token(x, net.dim());

    for (std::size_t l = 0; l < net.blocks.size(); ++l) {
        const auto& b = net.blocks[l];
        const std::size_t base = 5 + 7 * l;
        auto linear = [&](const TokenLinear& lin, std::size_t layer, const EventList& in,
                          const LifParams& p) -> EventList& {
            auto& ev = events_[layer];
            ev.clear();
            auto& c = count(layer);
            c.sops += lin.propagate_lif(in, p, v_[layer].data(), ev, acc);
            c.input_events += in.total();
            c.membrane_updates += lin.outputs();
            c.spikes += ev.size();
            if (recorder && recorder->wants(layer)) recorder->record(layer, t, ev);
            return ev;
        };
        const EventList& q = linear(b.q, base + 0, x, net.lif);
        const EventList& k = linear(b.k, base + 1, x, net.lif);
        const EventList& v = linear(b.v, base + 2, x, net.lif);
        const auto ac = attend(b.attention, q, k, v, acc, attention_scratch_[l]);
        auto& ca = count(base + 3);
        ca.sops += ac.sops_qk + ac.sops_av;
        ca.input_events += q.size() + v.size();
        attention[l] = {ac.sops_qk, ac.sops_av, ac.nonzero};
        const EventList& attn = fire(base + 3, net.attn_lif, b.attention.tokens * net.dim());
        const EventList& proj = linear(b.proj, base + 4, attn, net.lif);
        stream_.add(proj);
        stream_.to_events_by_token(x, net.dim());
        const EventList& h1 = linear(b.fc1, base + 5, x, net.lif);
        const EventList& h2 = linear(b.fc2, base + 6, h1, net.lif);
        stream_.add(h2);
        stream_.to_events_by_token(x, net.dim());
    }
    // Token and time mean: integer sums per channel, not SOPs.
    const std::size_t d = net.dim();
    for (std::size_t e = 0; e < x.size(); ++e) head_sum_[x.neuron[e] % d] += x.count[e];
}

SampleResult Simulator::finish() {
    const Network& net = *net_;
    const std::size_t steps = steps_, layers = v_.size(), blocks = net.blocks.size();
    SampleResult r;
    r.time_steps = steps;
    // [step][layer] as run → [layer][step] as reported.
    r.counts.resize(layers * steps);
    for (std::size_t t = 0; t < steps; ++t)
        for (std::size_t l = 0; l < layers; ++l)
            r.counts[l * steps + t] = step_counts_[t * layers + l];
    r.attention.resize(blocks * steps);
    for (std::size_t t = 0; t < steps; ++t)
        for (std::size_t b = 0; b < blocks; ++b)
            r.attention[b * steps + t] = step_attention_[t * blocks + b];

    const auto& head = net.head;
    r.logits.assign(head.bias.begin(), head.bias.end());
    if (steps > 0) {
        const double norm = 1.0 / double(steps * net.tokens());
        for (std::size_t k = 0; k < head.classes; ++k) {
            float s = head.bias[k];
            for (std::size_t c = 0; c < head.in_features; ++c)
                s += head.weight[k * head.in_features + c] * float(head_sum_[c] * norm);
            r.logits[k] = s;
        }
        r.counts[(layers - 1) * steps + steps - 1].macs += head.classes * head.in_features;
    }
    r.prediction = static_cast<std::size_t>(std::max_element(r.logits.begin(), r.logits.end()) -
                                            r.logits.begin());
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return r;
}

}  // namespace evformer::sim
