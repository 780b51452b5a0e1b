// The graph engine: validation rules (one clear error per broken rule), each node kind against
// the dense reference (tests/sim/dense_reference.hpp), and hand-worked counts.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/sim/graph.hpp"
#include "evformer/sim/network.hpp"
#include "sim/dense_reference.hpp"

namespace sim = evformer::sim;
namespace testing = evformer::testing;
using K = sim::NodeKind;

namespace {

sim::NodeAttributes input_of(std::size_t c, std::size_t h, std::size_t w) {
    sim::NodeAttributes a;
    a.shape = {c, h, w, false};
    return a;
}

sim::NodeAttributes with_out(std::size_t out, std::size_t kernel = 1, std::size_t stride = 1,
                             std::size_t padding = 0) {
    sim::NodeAttributes a;
    a.out_channels = out;
    a.kernel = kernel;
    a.stride = stride;
    a.padding = padding;
    return a;
}

sim::NodeAttributes window(std::size_t kernel, std::size_t stride, std::size_t padding = 0) {
    return with_out(0, kernel, stride, padding);
}

// Fills every parameter: weights N(0, 1.5/√fan_in)-ish, biases 0.2, BN/scale/statistics fixed.
void fill(sim::Graph& g, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (std::size_t i = 0; i < g.nodes().size(); ++i) {
        auto& n = g.nodes()[i];
        n.params.clear();
        for (const auto& slot : g.parameter_slots(i)) {
            std::size_t count = 1, fan_in = 1;
            for (auto d : slot.shape) count *= d;
            for (std::size_t d = 1; d < slot.shape.size(); ++d) fan_in *= slot.shape[d];
            sim::ParamTensor t{slot.shape, std::vector<float>(count, 0.2f)};
            if (slot.role == sim::ParamRole::weight)
                for (auto& x : t.data) x = normal(rng) * 1.5f / std::sqrt(float(fan_in));
            if (slot.role == sim::ParamRole::bn_var) t.data.assign(count, 0.7f);
            if (slot.role == sim::ParamRole::bn_weight) t.data.assign(count, 1.3f);
            n.params.push_back(std::move(t));
        }
    }
}

// Random event frames over `neurons` inputs with counts 1..3.
std::vector<sim::EventList> random_frames(std::size_t steps, std::size_t neurons, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<sim::EventList> frames(steps);
    for (auto& f : frames)
        for (std::uint32_t n = 0; n < neurons; ++n)
            if (rng() % 3 == 0) f.push(n, static_cast<std::uint16_t>(1 + rng() % 3));
    return frames;
}

std::vector<std::vector<float>> dense_frames(const std::vector<sim::EventList>& frames,
                                             std::size_t neurons) {
    std::vector<std::vector<float>> out;
    for (const auto& f : frames) {
        std::vector<float> x(neurons, 0.f);
        for (std::size_t e = 0; e < f.size(); ++e) x[f.neuron[e]] += f.count[e];
        out.push_back(std::move(x));
    }
    return out;
}

// Runs `g` event by event and densely; checks every population's spikes, the prediction, and
// (when `sops`) that the projections' counted SOPs equal the dense reference's weight visits.
void check_against_dense(sim::Graph g, std::size_t steps, unsigned seed, bool sops = true) {
    g.validate();
    fill(g, seed);
    const sim::Network net(g, steps);
    sim::Simulator simulator(net);
    sim::SpikeRecorder recorder(net);
    const auto inputs = net.input_neurons();
    for (unsigned trial = 0; trial < 4; ++trial) {
        const auto frames = random_frames(steps, inputs, seed * 10 + trial);
        recorder.clear();
        const auto r = simulator.run_events(frames, &recorder);
        const auto ref = testing::dense_run(g, dense_frames(frames, inputs));
        CHECK(r.prediction == ref.prediction);
        for (std::size_t k = 0; k < r.logits.size(); ++k)
            CHECK(r.logits[k] == doctest::Approx(ref.logits[k]).epsilon(1e-4));
        std::size_t spikes = 0;
        for (const auto& raster : recorder.rasters()) {
            const auto& want = ref.spikes.at(raster.name);
            std::vector<std::vector<float>> got(steps, std::vector<float>(want[0].size(), 0.f));
            for (std::size_t e = 0; e < raster.idx.size(); ++e) {
                std::size_t n = raster.idx[e];
                if (raster.neuron_order == sim::kChannelMajor) {
                    const std::size_t hw = raster.shape[1] * raster.shape[2];
                    n = (n % hw) * raster.shape[0] + n / hw;
                }
                got[raster.time[e]][n] = 1.f;
            }
            CAPTURE(raster.name);
            CHECK(got == want);
            spikes += raster.idx.size();
        }
        CHECK(spikes > 0);
        if (sops) {
            std::uint64_t counted = 0;
            for (std::size_t l = 0; l < net.layers().size(); ++l) counted += r.layer_total(l).sops;
            CHECK(counted == ref.projection_sops);
        }
    }
}

std::string validate_error(sim::Graph g) {
    try {
        g.validate();
    } catch (const evformer::ConfigError& e) {
        return e.what();
    }
    return "no error";
}

// input [1×3×3] → conv → lif → readout: a minimal valid graph to break in tests.
sim::Graph minimal() {
    sim::Graph g;
    g.add("in", K::input, {}, input_of(1, 3, 3));
    g.add("conv", K::conv2d, {"in"}, with_out(2, 3, 1, 1));
    g.add("lif", K::lif, {"conv"});
    g.add("out", K::readout, {"lif"}, with_out(2));
    return g;
}

}  // namespace

TEST_CASE("the node-kind table has one row per kind, in enum order") {
    for (std::size_t i = 0; i < sim::kNodeKindCount; ++i)
        CHECK(static_cast<std::size_t>(sim::kNodeKinds[i].kind) == i);
    CHECK(sim::kind_info(K::attention).name == "attention");
}

TEST_CASE("a broken graph is refused with one error naming the node and the rule") {
    CHECK(validate_error(minimal()) == "no error");
    {
        auto g = minimal();
        g.add("lif", K::lif, {"conv"});
        CHECK(validate_error(g) == "graph: node 'lif' (lif): the name is used by another node");
    }
    {
        auto g = minimal();
        g.node("lif").inputs = {"cnv"};
        CHECK(validate_error(g) ==
              "graph: node 'lif' (lif): its input 'cnv' is not a node of the graph");
    }
    {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(1, 3, 3));
        g.add("lif", K::lif, {"in"});
        g.add("out", K::readout, {"lif"}, with_out(2));
        CHECK(validate_error(g) ==
              "graph: node 'lif' (lif): takes a current but 'in' gives events");
    }
    {
        auto g = minimal();
        g.node("conv").inputs = {"in", "lif"};
        CHECK(validate_error(g) == "graph: node 'conv' (conv2d): takes 1 input, has 2");
    }
    {
        auto g = minimal();
        g.add("loose", K::lif, {"conv"});
        CHECK(validate_error(g) == "graph: node 'loose' (lif): does not lead to the readout");
    }
    {
        auto g = minimal();
        g.add("out2", K::readout, {"lif"}, with_out(2));
        CHECK(validate_error(g) == "graph: needs exactly one readout or output node, has 2");
    }
    {
        // a cycle through an attention node: its inputs must come from the same step
        sim::Graph g;
        g.add("in", K::input, {}, input_of(2, 2, 2));
        g.add("attn", K::attention, {"in", "in", "lif"});
        g.add("lif", K::lif, {"attn"});
        g.add("out", K::readout, {"lif"}, with_out(2));
        CHECK(validate_error(g) ==
              "graph: node 'attn' (attention): its input 'lif' closes a cycle; q, k and v must "
              "come from the same time step");
    }
    {
        auto g = minimal();
        g.node("conv").attr.kernel = 5;
        g.node("conv").attr.padding = 0;
        CHECK(validate_error(g) ==
              "graph: node 'conv' (conv2d): a 5x5 kernel does not fit the 1x3x3 input");
    }
    {
        auto g = minimal();
        g.node("conv").attr.groups = 2;
        CHECK(validate_error(g) ==
              "graph: node 'conv' (conv2d): groups (2) must divide the input "
              "channels (1) and out_channels (2)");
    }
    {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(6, 2, 2));
        g.add("attn", K::attention, {"in", "in", "in"}, [] {
            sim::NodeAttributes a;
            a.heads = 4;
            return a;
        }());
        g.add("lif", K::lif, {"attn"});
        g.add("out", K::readout, {"lif"}, with_out(2));
        CHECK(validate_error(g) ==
              "graph: node 'attn' (attention): heads (4) must divide the channels (6)");
    }
    {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(1, 4, 4));
        g.add("avg", K::avg_pool, {"in"}, window(2, 2));
        g.add("max", K::max_pool, {"avg"}, window(2, 2));
        g.add("lin", K::linear, {"max"}, with_out(2));
        g.add("lif", K::lif, {"lin"});
        g.add("out", K::readout, {"lif"}, with_out(2));
        CHECK(validate_error(g) ==
              "graph: node 'avg' (avg_pool): must feed conv2d or linear "
              "nodes only (its 1/k² is folded into their weights)");
    }
    {
        auto g = minimal();
        g.node("lif").attr.lif.v_threshold = -1.f;
        CHECK(validate_error(g) ==
              "graph: node 'lif' (lif): v_threshold must be greater than v_reset");
    }
    {
        // parameters are checked when the network is compiled
        auto g = minimal();
        g.validate();
        fill(g, 1);
        g.node("conv").params[0].data.pop_back();
        CHECK_THROWS_WITH_AS(sim::Network(g, 2),
                             "graph: node 'conv' (conv2d): tensor 'weight' has 17 values, "
                             "expected 18",
                             evformer::ConfigError);
        fill(g, 1);
        g.node("out").params[1].data[0] = std::nanf("");
        CHECK_THROWS_WITH_AS(sim::Network(g, 2),
                             "graph: node 'out' (readout): tensor 'bias' has a non-finite value",
                             evformer::ConfigError);
    }
}

TEST_CASE("hand-worked SOPs of a 3x3 convolution: fewer at borders, count m is m additions") {
    auto g = minimal();
    g.validate();
    fill(g, 2);
    const sim::Network net(g, 1);
    sim::Simulator simulator(net);
    sim::EventList frame;
    frame.push(0, 2);  // corner (0, 0) twice: 4 output positions × 2 channels × 2 = 16
    frame.push(4, 1);  // centre: 9 positions × 2 channels = 18
    const auto r = simulator.run_events(std::vector<sim::EventList>{frame});
    CHECK(r.layer_total(0).sops == 34);
    CHECK(r.layer_total(0).input_events == 3);
    CHECK(r.layer_total(0).membrane_updates == 18);
    CHECK(r.layer_total(1).macs == 2 * 2);  // readout: classes × channels
}

TEST_CASE("hand-worked pools: sum-pool adds counts, max-pool fires once per window") {
    // input 1×4×4, 2×2 windows with stride 2: events at (0,0)×1 and (1,1)×2 share window 0,
    // (3,3)×1 is window 3.
    sim::EventList in;
    in.push(0, 1);
    in.push(5, 2);
    in.push(15, 1);
    sim::SpikeMaxPool pool(1, 4, 4, 2, 2, 0);
    REQUIRE(pool.outputs() == 4);
    std::vector<std::uint32_t> sums(4, 0);
    sim::EventList out;
    pool.apply_sum(in, out, sums);
    CHECK(out.neuron == std::vector<std::uint32_t>{0, 3});
    CHECK(out.count == std::vector<std::uint16_t>{3, 1});
    std::vector<std::uint8_t> seen(4, 0);
    pool.apply(in, out, seen);
    CHECK(out.neuron == std::vector<std::uint32_t>{0, 3});
    CHECK(out.count == std::vector<std::uint16_t>{1, 1});
    CHECK(sums == std::vector<std::uint32_t>(4, 0));  // scratch left clean
}

TEST_CASE("general conv2d (stride, padding, dilation, groups, bias) equals the dense rule") {
    for (const auto& [k, s, p, d, groups] : std::vector<std::array<std::size_t, 5>>{
             {3, 2, 1, 1, 1}, {2, 2, 0, 1, 2}, {3, 1, 2, 2, 1}, {1, 1, 0, 1, 4}, {5, 3, 2, 1, 2}}) {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(4, 7, 6));
        auto c = with_out(8, k, s, p);
        c.dilation = d;
        c.groups = groups;
        c.bias = true;
        g.add("conv", K::conv2d, {"in"}, c);
        g.add("lif", K::lif, {"conv"});
        g.add("out", K::readout, {"lif"}, with_out(3));
        CAPTURE(k);
        CAPTURE(s);
        CAPTURE(groups);
        check_against_dense(g, 3, unsigned(k * 7 + s));
    }
}

TEST_CASE("every other kind against the dense rule: pools, flatten, merges, scale, IF, BN") {
    SUBCASE("sum-pool → flatten to a vector → linear → scale → IF") {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(2, 4, 4));
        g.add("pool", K::sum_pool, {"in"}, window(2, 2));
        g.add("flat", K::flatten, {"pool"});
        auto lin = with_out(5);
        lin.bias = true;
        g.add("fc", K::linear, {"flat"}, lin);
        g.add("gain", K::scale, {"fc"});
        g.add("if", K::if_neuron, {"gain"});
        g.add("out", K::readout, {"if"}, with_out(3));
        check_against_dense(g, 4, 3);
    }
    SUBCASE("avg-pool folded into a 1x1 conv, merged with a strided conv, BN, LIF, max-pool") {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(2, 4, 4));
        g.add("avg", K::avg_pool, {"in"}, window(2, 2));
        g.add("c1", K::conv2d, {"avg"}, with_out(3));
        g.add("c2", K::conv2d, {"in"}, with_out(3, 3, 2, 1));
        g.add("sum", K::merge_add, {"c1", "c2"});
        g.add("bn", K::batchnorm, {"sum"});
        g.add("lif", K::lif, {"bn"});
        g.add("max", K::max_pool, {"lif"}, window(2, 1));
        g.add("lin", K::linear, {"max"}, with_out(4));
        g.add("lif2", K::lif, {"lin"});
        g.add("out", K::readout, {"lif2"}, with_out(2));
        // avg-pool inputs are fractional in the reference: compare spikes, not SOPs
        check_against_dense(g, 4, 5, false);
    }
    SUBCASE("LIF and IF with v_reset below 0: membranes start and reset there") {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(3, 3, 3));
        sim::NodeAttributes neuron;
        neuron.lif = {2.f, 0.6f, -0.4f};
        g.add("conv", K::conv2d, {"in"}, with_out(4, 3, 1, 1));
        g.add("lif", K::lif, {"conv"}, neuron);
        g.add("fc", K::linear, {"lif"}, with_out(4));
        g.add("if", K::if_neuron, {"fc"}, neuron);
        g.add("out", K::readout, {"if"}, with_out(2));
        check_against_dense(g, 5, 9);
    }
    SUBCASE("a residual merge of events and token flatten") {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(4, 3, 3));
        g.add("tok", K::flatten, {"in"}, [] {
            sim::NodeAttributes a;
            a.to_tokens = true;
            return a;
        }());
        g.add("fc", K::linear, {"tok"}, with_out(4));
        g.add("lif", K::lif, {"fc"});
        g.add("res", K::merge_add, {"tok", "lif"});
        g.add("fc2", K::linear, {"res"}, with_out(4));
        g.add("lif2", K::lif, {"fc2"});
        g.add("out", K::readout, {"lif2"}, with_out(2));
        check_against_dense(g, 3, 7);
        g.validate();
        CHECK(g.node("lif").shape.tokens);
        CHECK(g.node("lif").shape.str() == "9 tokens x 4");
    }
}

TEST_CASE("a static image enters projections only") {
    sim::Graph g;
    g.add("in", K::input, {}, input_of(1, 4, 4));
    g.add("pool", K::max_pool, {"in"}, window(2, 2));
    g.add("fc", K::linear, {"pool"}, with_out(2));
    g.add("lif", K::lif, {"fc"});
    g.add("out", K::readout, {"lif"}, with_out(2));
    g.validate();
    fill(g, 8);
    const sim::Network net(g, 2);
    sim::Simulator simulator(net);
    CHECK_THROWS_WITH_AS(simulator.run_image(std::vector<float>(16, 0.5f)),
                         "network: a static image can only enter conv2d or linear nodes, but "
                         "'pool' reads the input; give it events",
                         evformer::ConfigError);
    CHECK(simulator.run_events(random_frames(2, 16, 1)).time_steps == 2);
}

TEST_CASE("the report rows and the recorder follow the graph") {
    sim::Graph g;
    g.add("in", K::input, {}, input_of(2, 4, 4));
    g.add("conv", K::conv2d, {"in"}, with_out(3, 3, 1, 1));
    g.add("n1", K::lif, {"conv"});
    g.add("fc", K::linear, {"n1"}, with_out(5));
    g.add("n2", K::if_neuron, {"fc"});
    g.add("cls", K::readout, {"n2"}, with_out(2));
    g.validate();
    fill(g, 4);
    const sim::Network net(g, 2);
    const auto& rows = net.layers();
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].name == "n1");
    CHECK(rows[0].kind == sim::LayerKind::conv_real);  // reads the input: MACs on images
    CHECK(rows[0].shape == std::vector<std::size_t>{3, 4, 4});
    CHECK(rows[0].channel_major);
    CHECK(rows[0].flops == 4 * 4 * 3 * 2 * 9);
    CHECK(rows[1].name == "n2");
    CHECK(rows[1].kind == sim::LayerKind::linear);
    CHECK(rows[1].shape == std::vector<std::size_t>{5, 4, 4});
    CHECK(rows[2].name == "cls");
    CHECK(rows[2].kind == sim::LayerKind::head);
    CHECK_THROWS_WITH_AS(sim::SpikeRecorder(net, {"cls"}),
                         "unknown population 'cls' to record; expected one of: n1, n2",
                         evformer::ConfigError);
}
