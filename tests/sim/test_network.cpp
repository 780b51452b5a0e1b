#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/sim/network.hpp"
#include "sim/attention_flags.hpp"

namespace sim = evformer::sim;
namespace testing = evformer::testing;

namespace {

constexpr std::size_t kSide = 8, kDim = 8, kHidden = 16, kClasses = 3;

// Weights with O(1) membrane inputs so every population fires sometimes but not always.
std::vector<float> random_weights(std::mt19937& rng, std::size_t count, std::size_t fan_in) {
    std::normal_distribution<float> g(0.f, 2.5f / std::sqrt(float(fan_in)));
    std::vector<float> w(count);
    for (auto& x : w) x = g(rng);
    return w;
}

sim::Conv3x3 conv(std::mt19937& rng, std::size_t ci, std::size_t co, std::size_t side) {
    return {ci,
            co,
            side,
            side,
            random_weights(rng, ci * 9 * co, ci * 9 / 2),
            std::vector<float>(co, 0.3f)};
}

sim::TokenLinear linear(std::mt19937& rng, std::size_t tokens, std::size_t in, std::size_t out) {
    return {tokens, in, out, random_weights(rng, in * out, in / 3), std::vector<float>(out, 0.4f)};
}

// A tiny Spikformer: 1×8×8 input, stem channels 2, 4, 8, 8, pooled after stages 2 and 3 (→ 2×2
// = 4 tokens), D = 8, 2 heads, 2 blocks.
sim::Network tiny_network(const testing::VariantFlags& info, unsigned seed) {
    std::mt19937 rng(seed);
    sim::Network net;
    net.attn_lif.v_threshold = 0.5f;
    const std::size_t channels[5] = {1, 2, 4, 8, kDim};
    std::size_t side = kSide;
    for (std::size_t i = 0; i < 4; ++i) {
        net.stem.push_back({conv(rng, channels[i], channels[i + 1], side), i >= 2});
        if (i >= 2) side = (side - 1) / 2 + 1;
    }
    net.rpe = conv(rng, kDim, kDim, side);
    const std::size_t n = side * side;
    for (int l = 0; l < 2; ++l) {
        sim::AttentionBlock b;
        b.q = linear(rng, n, kDim, kDim);
        b.k = linear(rng, n, kDim, kDim);
        b.v = linear(rng, n, kDim, kDim);
        b.attention = {n,
                       kDim,
                       2,
                       0.125f * 8,
                       1.f,
                       info.binary,
                       std::vector<float>(2, info.adaptive_threshold ? 0.5f : 0.f),
                       {}};
        if (info.shift) b.attention.shift.assign(kDim, 0.2f);
        b.proj = linear(rng, n, kDim, kDim);
        b.fc1 = linear(rng, n, kDim, kHidden);
        b.fc2 = linear(rng, n, kHidden, kDim);
        net.blocks.push_back(std::move(b));
    }
    net.head = {kDim, kClasses, random_weights(rng, kClasses * kDim, kDim), {0.1f, 0.f, -0.1f}};
    return net;
}

std::vector<float> random_image(unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> img(kSide * kSide);
    for (auto& p : img) p = u(rng) < 0.4f ? 0.f : u(rng);
    return img;
}

// ---- A dense reference forward of the same network (no events, every input visited) ----

std::vector<float> dense_conv(const sim::Conv3x3& c, const std::vector<float>& in) {
    std::vector<float> out(c.outputs());
    for (std::size_t y = 0; y < c.height; ++y)
        for (std::size_t x = 0; x < c.width; ++x)
            for (std::size_t o = 0; o < c.out_channels; ++o) {
                float s = c.bias[o];
                for (std::size_t ky = 0; ky < 3; ++ky)
                    for (std::size_t kx = 0; kx < 3; ++kx) {
                        const long iy = long(y + ky) - 1, ix = long(x + kx) - 1;
                        if (iy < 0 || ix < 0 || iy >= long(c.height) || ix >= long(c.width))
                            continue;
                        for (std::size_t i = 0; i < c.in_channels; ++i)
                            s += c.weight_t[(i * 9 + ky * 3 + kx) * c.out_channels + o] *
                                 in[(std::size_t(iy) * c.width + std::size_t(ix)) * c.in_channels +
                                    i];
                    }
                out[(y * c.width + x) * c.out_channels + o] = s;
            }
    return out;
}

std::vector<float> dense_linear(const sim::TokenLinear& l, const std::vector<float>& in) {
    std::vector<float> out(l.outputs());
    for (std::size_t n = 0; n < l.tokens; ++n)
        for (std::size_t o = 0; o < l.out_features; ++o) {
            float s = l.bias[o];
            for (std::size_t i = 0; i < l.in_features; ++i)
                s += l.weight_t[i * l.out_features + o] * in[n * l.in_features + i];
            out[n * l.out_features + o] = s;
        }
    return out;
}

std::vector<float> dense_lif(const sim::LifParams& p, std::vector<float>& v,
                             const std::vector<float>& x) {
    std::vector<float> s(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        v[i] = v[i] + (x[i] - v[i]) / p.tau;
        s[i] = v[i] >= p.v_threshold ? 1.f : 0.f;
        if (s[i] != 0.f) v[i] = 0.f;
    }
    return s;
}

std::vector<float> dense_pool(std::size_t c, std::size_t h, std::size_t w,
                              const std::vector<float>& in) {
    const std::size_t oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1;
    std::vector<float> out(oh * ow * c, 0.f);
    for (std::size_t y = 0; y < h; ++y)
        for (std::size_t x = 0; x < w; ++x)
            for (std::size_t k = 0; k < c; ++k)
                for (std::size_t py = y / 2; py <= std::min((y + 1) / 2, oh - 1); ++py)
                    for (std::size_t px = x / 2; px <= std::min((x + 1) / 2, ow - 1); ++px) {
                        auto& o = out[(py * ow + px) * c + k];
                        o = std::max(o, in[(y * w + x) * c + k]);
                    }
    return out;
}

std::vector<float> dense_attention(const sim::SpikingAttention& a, const std::vector<float>& q,
                                   const std::vector<float>& k, const std::vector<float>& v) {
    const std::size_t n = a.tokens, d = a.dim, hd = d / a.heads;
    std::vector<float> out(n * d, 0.f);
    for (std::size_t h = 0; h < a.heads; ++h)
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                float c = 0;
                for (std::size_t ch = h * hd; ch < (h + 1) * hd; ++ch)
                    c += q[i * d + ch] * k[j * d + ch];
                const float e = a.binary ? (c > a.threshold[h] ? a.kappa : 0.f) : c;
                for (std::size_t ch = h * hd; ch < (h + 1) * hd; ++ch)
                    out[i * d + ch] += a.scale * e * v[j * d + ch];
            }
    if (!a.shift.empty())
        for (std::size_t x = 0; x < n * d; ++x) out[x] -= a.shift[x % d];
    return out;
}

// Spikes of every population, [layer][step][neuron], and the prediction.
struct DenseRun {
    std::vector<std::vector<std::vector<float>>> spikes;
    std::size_t prediction = 0;
};

DenseRun dense_forward(const sim::Network& net, const std::vector<float>& image) {
    const auto infos = net.layers();
    std::vector<std::vector<float>> v(infos.size());
    for (std::size_t i = 0; i < infos.size(); ++i) v[i].assign(infos[i].neurons, 0.f);
    DenseRun r;
    r.spikes.resize(infos.size() - 1);
    std::vector<double> sum(net.dim(), 0.0);
    for (std::size_t t = 0; t < net.time_steps; ++t) {
        std::vector<float> x = image;
        for (std::size_t i = 0; i < 4; ++i) {
            const auto& c = net.stem[i].conv;
            x = dense_lif(net.lif, v[i], dense_conv(c, x));
            r.spikes[i].push_back(x);
            if (net.stem[i].pool_after) x = dense_pool(c.out_channels, c.height, c.width, x);
        }
        auto rpe = dense_lif(net.lif, v[4], dense_conv(net.rpe, x));
        r.spikes[4].push_back(rpe);
        for (std::size_t e = 0; e < x.size(); ++e) x[e] += rpe[e];
        for (std::size_t l = 0; l < net.blocks.size(); ++l) {
            const auto& b = net.blocks[l];
            const std::size_t base = 5 + 7 * l;
            auto layer = [&](const sim::TokenLinear& lin, std::size_t id,
                             const std::vector<float>& in) {
                auto s = dense_lif(net.lif, v[id], dense_linear(lin, in));
                r.spikes[id].push_back(s);
                return s;
            };
            auto q = layer(b.q, base, x), k = layer(b.k, base + 1, x), vv = layer(b.v, base + 2, x);
            auto a = dense_lif(net.attn_lif, v[base + 3], dense_attention(b.attention, q, k, vv));
            r.spikes[base + 3].push_back(a);
            auto p = layer(b.proj, base + 4, a);
            for (std::size_t e = 0; e < x.size(); ++e) x[e] += p[e];
            auto h2 = layer(b.fc2, base + 6, layer(b.fc1, base + 5, x));
            for (std::size_t e = 0; e < x.size(); ++e) x[e] += h2[e];
        }
        for (std::size_t e = 0; e < x.size(); ++e) sum[e % net.dim()] += x[e];
    }
    std::vector<float> logits(net.head.classes);
    for (std::size_t k = 0; k < logits.size(); ++k) {
        float s = net.head.bias[k];
        for (std::size_t c = 0; c < net.dim(); ++c)
            s += net.head.weight[k * net.dim() + c] *
                 float(sum[c] / double(net.time_steps * net.tokens()));
        logits[k] = s;
    }
    r.prediction = std::size_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    return r;
}

}  // namespace

TEST_CASE("the event-driven network gives the dense reference's spikes in every population") {
    for (const auto& vi : testing::kVariantFlags) {
        const auto net = tiny_network(vi, 11);
        sim::Simulator simulator(net);
        sim::SpikeRecorder recorder(net);
        std::size_t agree = 0, total = 0, same_prediction = 0, active = 0;
        for (unsigned s = 0; s < 8; ++s) {
            const auto image = random_image(s);
            recorder.clear();
            const auto result = simulator.run_image(image, &recorder);
            const auto ref = dense_forward(net, image);
            same_prediction += result.prediction == ref.prediction;
            for (std::size_t l = 0; l < recorder.rasters().size(); ++l) {
                const auto& raster = recorder.rasters()[l];
                std::vector<std::vector<float>> got(net.time_steps,
                                                    std::vector<float>(ref.spikes[l][0].size()));
                for (std::size_t e = 0; e < raster.idx.size(); ++e) {
                    std::size_t n = raster.idx[e];
                    if (l < 5) {  // channel-major [C, H, W] → the reference's channel-last
                        const std::size_t hw = raster.shape[1] * raster.shape[2];
                        n = (n % hw) * raster.shape[0] + n / hw;
                    }
                    got[raster.time[e]][n] = 1.f;
                }
                for (std::size_t t = 0; t < net.time_steps; ++t)
                    for (std::size_t i = 0; i < got[t].size(); ++i) {
                        agree += got[t][i] == ref.spikes[l][t][i];
                        ++total;
                    }
                active += !raster.idx.empty();
            }
        }
        CAPTURE(vi.name);
        CHECK(double(agree) / double(total) >= 0.999);
        CHECK(same_prediction == 8);
        CHECK(active > 8 * 10);  // most populations fire
    }
}

TEST_CASE("totals are the sums of their parts; a linear layer's SOPs equal fr × T × FLOPs") {
    const auto net = tiny_network(testing::variant_flags(4), 5);
    sim::Simulator simulator(net);
    const auto r = simulator.run_image(random_image(1));
    const auto infos = net.layers();
    sim::StepCounts by_layer, by_step;
    for (std::size_t l = 0; l < infos.size(); ++l) by_layer += r.layer_total(l);
    for (std::size_t t = 0; t < net.time_steps; ++t)
        for (std::size_t l = 0; l < infos.size(); ++l) by_step += r.at(l, t);
    CHECK(by_layer == r.total());
    CHECK(by_step == r.total());
    for (std::size_t l = 0; l < infos.size(); ++l) {
        if (infos[l].kind != sim::LayerKind::linear) continue;
        const auto c = r.layer_total(l);
        const double fr_in =
            double(c.input_events) / double(infos[l].input_neurons * net.time_steps);
        CAPTURE(infos[l].name);
        CHECK(double(c.sops) == doctest::Approx(fr_in * double(net.time_steps) * infos[l].flops));
        CHECK(c.sops == c.input_events * infos[l].shape[1]);
        CHECK(c.membrane_updates == infos[l].neurons * net.time_steps);
    }
    // Attention SOPs are the Q·Kᵀ and A·V parts.
    std::uint64_t qk = 0, av = 0;
    for (std::size_t t = 0; t < net.time_steps; ++t) {
        qk += r.attention[t].sops_qk;
        av += r.attention[t].sops_av;
    }
    CHECK(r.layer_total(sim::Network::attention_layer(0)).sops == qk + av);
    CHECK(r.layer_total(0).macs > 0);  // the first conv on a static image is real-valued
    CHECK(r.layer_total(0).sops == 0);
    CHECK(r.layer_total(infos.size() - 1).macs == kClasses * kDim);
}

TEST_CASE("event input drives the first conv event by event, in SOPs") {
    const auto net = tiny_network(testing::variant_flags(1), 2);
    sim::Simulator simulator(net);
    // A binary image as events of count 1 at every step behaves like the image itself.
    std::vector<float> image(kSide * kSide, 0.f);
    std::vector<sim::EventList> frames(net.time_steps);
    for (std::uint32_t p = 0; p < image.size(); p += 3) {
        image[p] = 1.f;
        for (auto& f : frames) f.push(p);
    }
    const auto from_image = simulator.run_image(image);
    const auto from_events = simulator.run_events(frames);
    CHECK(from_events.layer_total(0).sops == from_image.layer_total(0).macs);
    CHECK(from_events.layer_total(0).macs == 0);
    CHECK(from_events.prediction == from_image.prediction);
    for (std::size_t l = 0; l < net.layers().size(); ++l)
        CHECK(from_events.layer_total(l).spikes == from_image.layer_total(l).spikes);
    frames.pop_back();
    CHECK_THROWS_AS(simulator.run_events(frames), evformer::ConfigError);
}

TEST_CASE("recording spikes changes nothing and unknown layers are refused") {
    const auto net = tiny_network(testing::variant_flags(0), 4);
    sim::Simulator simulator(net);
    sim::SpikeRecorder recorder(net, {"sps/lif1", "blocks/1/attn/attn_lif"});
    const auto plain = simulator.run_image(random_image(3));
    const auto recorded = simulator.run_image(random_image(3), &recorder);
    CHECK(plain.counts == recorded.counts);
    CHECK(plain.logits == recorded.logits);
    REQUIRE(recorder.rasters().size() == 2);
    CHECK(recorder.rasters()[0].idx.size() == recorded.layer_total(1).spikes);
    CHECK(recorder.rasters()[1].name == "blocks/1/attn/attn_lif");
    CHECK(recorder.rasters()[1].idx.size() ==
          recorded.layer_total(sim::Network::attention_layer(1)).spikes);
    CHECK_THROWS_AS(sim::SpikeRecorder(net, {"blocks/9/attn/q_lif"}), evformer::ConfigError);
}

TEST_CASE("a network whose sizes do not chain is refused") {
    auto net = tiny_network(testing::variant_flags(0), 4);
    net.blocks[0].fc2.out_features = 4;
    CHECK_THROWS_AS(net.validate(), evformer::ConfigError);
}

namespace {

// Random event input for the tiny network: about a third of the pixels, counts 1..3.
std::vector<sim::EventList> random_event_frames(std::size_t steps, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> count(1, 3);
    std::vector<sim::EventList> frames(steps);
    for (auto& f : frames)
        for (std::uint32_t p = 0; p < kSide * kSide; ++p)
            if (rng() % 3 == 0) f.push(p, static_cast<std::uint16_t>(count(rng)));
    return frames;
}

}  // namespace

TEST_CASE("begin, step_events and finish give run_events' results bit for bit") {
    for (int variant = 0; variant < 5; ++variant) {
        const auto net = tiny_network(testing::variant_flags(variant), 11);
        sim::Simulator simulator(net);
        const auto frames = random_event_frames(net.time_steps, 5);
        sim::SpikeRecorder rec_a(net), rec_b(net);
        const auto whole = simulator.run_events(frames, &rec_a);
        simulator.begin();
        for (const auto& f : frames) simulator.step_events(f, &rec_b);
        const auto stepped = simulator.finish();
        CHECK(stepped.time_steps == net.time_steps);
        CHECK(stepped.counts == whole.counts);
        CHECK(stepped.logits == whole.logits);
        CHECK(stepped.prediction == whole.prediction);
        for (std::size_t i = 0; i < rec_a.rasters().size(); ++i) {
            CHECK(rec_a.rasters()[i].idx == rec_b.rasters()[i].idx);
            CHECK(rec_a.rasters()[i].time == rec_b.rasters()[i].time);
        }
        // A second sample starts from rest: the same input gives the same result again.
        CHECK(simulator.run_events(frames).counts == whole.counts);
    }
}

TEST_CASE("windows of any length; keep_state continues the membranes, begin() resets them") {
    const auto net = tiny_network(testing::variant_flags(4), 12);
    sim::Simulator simulator(net);
    const auto frames = random_event_frames(2 * net.time_steps, 6);
    const std::size_t layers = net.layers().size(), half = net.time_steps;
    // One long window of 2T steps.
    simulator.begin();
    for (const auto& f : frames) simulator.step_events(f);
    const auto longer = simulator.finish();
    CHECK(longer.time_steps == 2 * half);
    // The same steps as two windows with the state kept: the second window's counts are the
    // long window's last T steps.
    simulator.begin();
    for (std::size_t t = 0; t < half; ++t) simulator.step_events(frames[t]);
    const auto first = simulator.finish();
    simulator.begin(true);
    for (std::size_t t = half; t < 2 * half; ++t) simulator.step_events(frames[t]);
    const auto second = simulator.finish();
    for (std::size_t l = 0; l + 1 < layers; ++l)
        for (std::size_t t = 0; t < half; ++t) {
            CHECK(first.at(l, t) == longer.at(l, t));
            CHECK(second.at(l, t) == longer.at(l, half + t));
        }
    // Reset between windows: the second half alone, from rest, as run_events would see it.
    const std::vector<sim::EventList> tail(frames.begin() + long(half), frames.end());
    const auto fresh = simulator.run_events(tail);
    simulator.begin();
    for (const auto& f : tail) simulator.step_events(f);
    CHECK(simulator.finish().counts == fresh.counts);
    // No step: the head's bias alone, no counts.
    simulator.begin();
    const auto empty = simulator.finish();
    CHECK(empty.time_steps == 0);
    CHECK(empty.counts.empty());
    CHECK(empty.logits == net.head.bias);
    // An input neuron outside the network is refused before anything runs.
    sim::EventList bad;
    bad.push(static_cast<std::uint32_t>(net.input_neurons()));
    CHECK_THROWS_AS(simulator.step_events(bad), evformer::ConfigError);
}
