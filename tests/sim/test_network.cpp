#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/sim/network.hpp"
#include "sim/attention_flags.hpp"
#include "sim/dense_reference.hpp"

namespace sim = evformer::sim;
namespace testing = evformer::testing;

namespace {

constexpr std::size_t kSide = 8, kDim = 8, kHidden = 16, kClasses = 3, kSteps = 4;

// Weights with O(1) membrane inputs so every population fires sometimes but not always.
std::vector<float> random_weights(std::mt19937& rng, std::size_t count, std::size_t fan_in) {
    std::normal_distribution<float> g(0.f, 2.5f / std::sqrt(float(fan_in)));
    std::vector<float> w(count);
    for (auto& x : w) x = g(rng);
    return w;
}

// Fills every parameter of a validated graph: weights random, biases 0.3, BN neutral-ish.
void fill_parameters(sim::Graph& g, std::mt19937& rng) {
    for (std::size_t i = 0; i < g.nodes().size(); ++i) {
        auto& node = g.nodes()[i];
        node.params.clear();
        for (const auto& slot : g.parameter_slots(i)) {
            std::size_t count = 1;
            for (auto d : slot.shape) count *= d;
            sim::ParamTensor t{slot.shape, std::vector<float>(count, 0.f)};
            switch (slot.role) {
                case sim::ParamRole::weight:
                    t.data = random_weights(rng, count,
                                            std::max<std::size_t>(1, count / slot.shape[0] / 2));
                    break;
                case sim::ParamRole::bias:
                    t.data.assign(count, 0.3f);
                    break;
                case sim::ParamRole::bn_weight:
                    t.data.assign(count, 1.5f);
                    break;
                case sim::ParamRole::bn_bias:
                    t.data.assign(count, 0.2f);
                    break;
                case sim::ParamRole::bn_mean:
                    t.data.assign(count, 0.1f);
                    break;
                case sim::ParamRole::bn_var:
                    t.data.assign(count, 0.8f);
                    break;
                case sim::ParamRole::statistic:
                    t.data.assign(count, slot.name == "c_mean" ? 0.5f : 0.2f);
                    break;
                case sim::ParamRole::time_constant:
                case sim::ParamRole::neuron:
                case sim::ParamRole::delay_time:
                    t.data.assign(count, 1.f);
                    break;
            }
            node.params.push_back(std::move(t));
        }
    }
}

// A tiny Spikformer declared with the engine's node kinds: 1×8×8 input, stem channels 2, 4, 8,
// 8 (3×3 convs, BN after the first two), pooled after stages 2 and 3 (→ 2×2 = 4 tokens), the
// position embedding, D = 8, 2 heads, 2 blocks of attention (scale 1) and MLP, a readout.
sim::Graph tiny_graph(const testing::VariantFlags& info, unsigned seed) {
    using K = sim::NodeKind;
    sim::Graph g;
    sim::NodeAttributes in;
    in.shape = {1, kSide, kSide, false};
    g.add("input", K::input, {}, in);
    sim::NodeAttributes lif, attn_lif, conv, pool, lin, bn;
    attn_lif.lif.v_threshold = 0.5f;
    conv.kernel = 3;
    conv.padding = 1;
    conv.bias = true;
    pool.kernel = 3;
    pool.stride = 2;
    pool.padding = 1;
    lin.bias = true;
    const std::size_t channels[4] = {2, 4, 8, kDim};
    std::string x = "input";
    for (std::size_t i = 0; i < 4; ++i) {
        const auto id = std::to_string(i);
        conv.out_channels = channels[i];
        g.add("sps/conv" + id, K::conv2d, {x}, conv);
        x = "sps/conv" + id;
        if (i < 2) {
            g.add("sps/bn" + id, K::batchnorm, {x}, bn);
            x = "sps/bn" + id;
        }
        g.add("sps/lif" + id, K::lif, {x}, lif);
        x = "sps/lif" + id;
        if (i >= 2) {
            g.add("sps/pool" + id, K::max_pool, {x}, pool);
            x = "sps/pool" + id;
        }
    }
    conv.out_channels = kDim;
    g.add("sps/rpe_conv", K::conv2d, {x}, conv);
    g.add("sps/rpe_lif", K::lif, {"sps/rpe_conv"}, lif);
    g.add("sps/residual", K::merge_add, {x, "sps/rpe_lif"});
    sim::NodeAttributes tokens;
    tokens.to_tokens = true;
    g.add("sps/tokens", K::flatten, {"sps/residual"}, tokens);
    x = "sps/tokens";
    auto unit = [&](const std::string& name, const std::string& from, std::size_t out,
                    const sim::NodeAttributes& neuron) {
        lin.out_channels = out;
        g.add(name + "_linear", K::linear, {from}, lin);
        g.add(name + "_lif", K::lif, {name + "_linear"}, neuron);
        return name + "_lif";
    };
    for (int l = 0; l < 2; ++l) {
        const auto p = "blocks/" + std::to_string(l) + "/";
        const auto q = unit(p + "attn/q", x, kDim, lif), k = unit(p + "attn/k", x, kDim, lif),
                   v = unit(p + "attn/v", x, kDim, lif);
        sim::NodeAttributes a;
        a.heads = 2;
        a.attention_scale = 1.f;
        a.binary = info.binary;
        a.adaptive_threshold = info.adaptive_threshold;
        a.shift = info.shift;
        g.add(p + "attn", K::attention, {q, k, v}, a);
        g.add(p + "attn/attn_lif", K::lif, {p + "attn"}, attn_lif);
        const auto proj = unit(p + "attn/proj", p + "attn/attn_lif", kDim, lif);
        g.add(p + "attn_residual", K::merge_add, {x, proj});
        x = p + "attn_residual";
        const auto h = unit(p + "mlp/fc2", unit(p + "mlp/fc1", x, kHidden, lif), kDim, lif);
        g.add(p + "mlp_residual", K::merge_add, {x, h});
        x = p + "mlp_residual";
    }
    sim::NodeAttributes head;
    head.out_channels = kClasses;
    g.add("head", K::readout, {x}, head);
    g.validate();
    std::mt19937 rng(seed);
    fill_parameters(g, rng);
    return g;
}

sim::Network tiny_network(const testing::VariantFlags& info, unsigned seed) {
    return sim::Network(tiny_graph(info, seed), kSteps);
}

std::vector<float> random_image(unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> img(kSide * kSide);
    for (auto& p : img) p = u(rng) < 0.4f ? 0.f : u(rng);
    return img;
}

}  // namespace

TEST_CASE("the event-driven network gives the dense reference's spikes in every population") {
    for (const auto& vi : testing::kVariantFlags) {
        const auto graph = tiny_graph(vi, 11);
        const sim::Network net(graph, kSteps);
        sim::Simulator simulator(net);
        sim::SpikeRecorder recorder(net);
        std::size_t agree = 0, total = 0, same_prediction = 0, active = 0;
        for (unsigned s = 0; s < 8; ++s) {
            const auto image = random_image(s);
            recorder.clear();
            const auto result = simulator.run_image(image, &recorder);
            const auto ref =
                testing::dense_run(graph, std::vector<std::vector<float>>(kSteps, image));
            same_prediction += result.prediction == ref.prediction;
            for (const auto& raster : recorder.rasters()) {
                const auto& want = ref.spikes.at(raster.name);
                std::vector<std::vector<float>> got(kSteps, std::vector<float>(want[0].size()));
                for (std::size_t e = 0; e < raster.idx.size(); ++e) {
                    std::size_t n = raster.idx[e];
                    if (raster.neuron_order == sim::kChannelMajor) {  // → channel-last
                        const std::size_t hw = raster.shape[1] * raster.shape[2];
                        n = (n % hw) * raster.shape[0] + n / hw;
                    }
                    got[raster.time[e]][n] = 1.f;
                }
                for (std::size_t t = 0; t < kSteps; ++t)
                    for (std::size_t i = 0; i < got[t].size(); ++i) {
                        agree += got[t][i] == want[t][i];
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
    for (std::size_t t = 0; t < kSteps; ++t)
        for (std::size_t l = 0; l < infos.size(); ++l) by_step += r.at(l, t);
    CHECK(by_layer == r.total());
    CHECK(by_step == r.total());
    for (std::size_t l = 0; l < infos.size(); ++l) {
        if (infos[l].kind != sim::LayerKind::linear) continue;
        const auto c = r.layer_total(l);
        const double fr_in = double(c.input_events) / double(infos[l].input_neurons * kSteps);
        CAPTURE(infos[l].name);
        CHECK(double(c.sops) == doctest::Approx(fr_in * double(kSteps) * infos[l].flops));
        CHECK(c.sops == c.input_events * infos[l].shape[1]);
        CHECK(c.membrane_updates == infos[l].neurons * kSteps);
    }
    // Attention SOPs are the Q·Kᵀ and A·V parts.
    std::uint64_t qk = 0, av = 0;
    for (std::size_t t = 0; t < kSteps; ++t) {
        qk += r.attention[t].sops_qk;
        av += r.attention[t].sops_av;
    }
    CHECK(r.layer_total(net.attention()[0].row).sops == qk + av);
    CHECK(r.layer_total(0).macs > 0);  // the first conv on a static image is real-valued
    CHECK(r.layer_total(0).sops == 0);
    CHECK(r.layer_total(infos.size() - 1).macs == kClasses * kDim);
}

TEST_CASE("event input drives the first conv event by event, in SOPs") {
    const auto net = tiny_network(testing::variant_flags(1), 2);
    sim::Simulator simulator(net);
    // A binary image as events of count 1 at every step behaves like the image itself.
    std::vector<float> image(kSide * kSide, 0.f);
    std::vector<sim::EventList> frames(kSteps);
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
    CHECK(recorder.rasters()[1].idx.size() == recorded.layer_total(net.attention()[1].row).spikes);
    CHECK_THROWS_AS(sim::SpikeRecorder(net, {"blocks/9/attn/q_lif"}), evformer::ConfigError);
}

TEST_CASE("a graph whose sizes do not chain is refused, naming the node and the rule") {
    auto g = tiny_graph(testing::variant_flags(0), 4);
    g.node("blocks/0/mlp/fc2_linear").attr.out_channels = 4;
    CHECK_THROWS_WITH_AS(g.validate(),
                         "graph: node 'blocks/0/mlp_residual' (merge_add): input "
                         "'blocks/0/mlp/fc2_lif' is 4 tokens x 4 but 'blocks/0/attn_residual' "
                         "is 4 tokens x 8",
                         evformer::ConfigError);
}

TEST_CASE("begin/step_events/finish is run_events step by step; keep_state carries membranes") {
    const auto net = tiny_network(testing::variant_flags(4), 6);
    sim::Simulator simulator(net);
    std::mt19937 rng(9);
    std::vector<sim::EventList> frames(kSteps);
    for (auto& f : frames)
        for (std::uint32_t p = 0; p < kSide * kSide; ++p)
            if (rng() % 3 == 0) f.push(p, static_cast<std::uint16_t>(1 + rng() % 2));
    const auto whole = simulator.run_events(frames);
    simulator.begin();
    for (const auto& f : frames) simulator.step_events(f);
    const auto stepped = simulator.finish();
    CHECK(stepped.counts == whole.counts);
    CHECK(stepped.logits == whole.logits);
    CHECK(stepped.time_steps == kSteps);
    // Two windows of two steps with state kept end in the same membranes as one run: the
    // spikes of the second window equal those of steps 2 and 3 of the whole run.
    simulator.begin();
    simulator.step_events(frames[0]);
    simulator.step_events(frames[1]);
    (void)simulator.finish();
    simulator.begin(true);
    simulator.step_events(frames[2]);
    simulator.step_events(frames[3]);
    const auto second = simulator.finish();
    REQUIRE(second.time_steps == 2);
    for (std::size_t l = 0; l + 1 < net.layers().size(); ++l) {
        CHECK(second.at(l, 0).spikes == whole.at(l, 2).spikes);
        CHECK(second.at(l, 1).spikes == whole.at(l, 3).spikes);
    }
    // Without keep_state the second window starts from rest and differs somewhere.
    simulator.begin();
    simulator.step_events(frames[2]);
    simulator.step_events(frames[3]);
    const auto fresh = simulator.finish();
    CHECK(fresh.counts != second.counts);
    sim::EventList bad;
    bad.push(kSide * kSide);
    CHECK_THROWS_WITH_AS(simulator.step_events(bad),
                         "input event of neuron 64 is outside the 64 input neurons",
                         evformer::ConfigError);
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
    CHECK(empty.logits == net.graph().node("head").params[1].data);
    // An input neuron outside the network is refused before anything runs.
    sim::EventList bad;
    bad.push(static_cast<std::uint32_t>(net.input_neurons()));
    CHECK_THROWS_AS(simulator.step_events(bad), evformer::ConfigError);
}
