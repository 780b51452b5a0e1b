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
void check_against_dense(sim::Graph g, std::size_t steps, unsigned seed, bool sops = true,
                         void (*after_fill)(sim::Graph&) = nullptr) {
    g.validate();
    fill(g, seed);
    if (after_fill) after_fill(g);
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

// ---- The NIR kinds (docs/nir.md "Neuron kinds"): hand-worked steps and the dense rule ----------

namespace {

// Sets every neuron of node `name` to `value` in its parameter `param` (slot name).
void set_param(sim::Graph& g, const std::string& name, std::string_view param, float value) {
    auto& n = g.node(name);
    const auto names = sim::nir_parameters(n.kind);
    for (std::size_t p = 0; p < names.size(); ++p)
        if (names[p].first == param) {
            n.params.at(p).data.assign(n.params.at(p).data.size(), value);
            return;
        }
    FAIL("no parameter " << param);
}

// input [1] → linear (weight w) → `kind` → output: one neuron driven by x_t = w · count_t.
sim::Graph one_neuron(K kind, float w, double dt = 1e-3) {
    sim::Graph g;
    g.add("in", K::input, {}, input_of(1, 1, 1));
    g.add("fc", K::linear, {"in"}, with_out(1));
    sim::NodeAttributes a;
    a.dt = dt;
    g.add("n", kind, {"fc"}, a);
    g.add("out", K::output, {"n"});
    g.validate();
    for (std::size_t i = 0; i < g.nodes().size(); ++i) {
        auto& n = g.nodes()[i];
        n.params.clear();
        for (const auto& slot : g.parameter_slots(i)) {
            std::size_t count = 1;
            for (auto d : slot.shape) count *= d;
            n.params.push_back({slot.shape, std::vector<float>(count, 0.f)});
        }
    }
    g.node("fc").params[0].data = {w};
    return g;
}

std::vector<sim::EventList> counts(std::initializer_list<std::uint16_t> per_step) {
    std::vector<sim::EventList> frames;
    for (auto c : per_step) {
        sim::EventList f;
        if (c) f.push(0, c);
        frames.push_back(std::move(f));
    }
    return frames;
}

// Steps at which population row 0 fired.
std::vector<std::size_t> spike_steps(const sim::SampleResult& r) {
    std::vector<std::size_t> out;
    for (std::size_t t = 0; t < r.time_steps; ++t)
        if (r.at(0, t).spikes) out.push_back(t);
    return out;
}

}  // namespace

TEST_CASE("NIR IF fires on v > v_threshold (not ≥), resets to v_reset; the Spikformer IF on ≥") {
    // x = 0.5 per step: v = 0.5, 1.0 (equal: no spike), 1.5 → spike, reset 0, 0.5
    auto g = one_neuron(K::nir_if, 0.5f);
    set_param(g, "n", "r", 1.f);
    set_param(g, "n", "v_threshold", 1.f);
    const sim::Network net(g, 5);
    sim::Simulator s(net);
    const auto r = s.run_events(counts({1, 1, 1, 1, 1}));
    CHECK(spike_steps(r) == std::vector<std::size_t>{2});
    CHECK(r.logits == std::vector<float>{1.f});
    CHECK(r.at(0, 0).membrane_updates == 1);
    // the same input into the Spikformer's IF fires at v = 1.0 already (steps 1 and 3)
    sim::Graph h;
    h.add("in", K::input, {}, input_of(1, 1, 1));
    h.add("fc", K::linear, {"in"}, with_out(1));
    h.add("n", K::if_neuron, {"fc"});
    h.add("out", K::output, {"n"});
    h.validate();
    h.node("fc").params = {{{1, 1}, {0.5f}}};
    const sim::Network net2(h, 5);
    sim::Simulator s2(net2);
    CHECK(spike_steps(s2.run_events(counts({1, 1, 1, 1, 1}))) == std::vector<std::size_t>{1, 3});
}

TEST_CASE("NIR LIF, CubaLIF, LI, I and Threshold: hand-worked steps") {
    SUBCASE("LIF: v += dt/τ·(v_leak − v + r·x), dt/τ = 0.5, r = 2") {
        // x = 0.75: v = 0.5·(2·0.75) = 0.75; 0.75 + 0.5·(1.5 − 0.75) = 1.125 > 1 → spike, 0;
        // 0.75; 1.125 → spike
        auto g = one_neuron(K::nir_lif, 0.75f, 0.5e-3);
        set_param(g, "n", "tau", 1e-3f);
        set_param(g, "n", "r", 2.f);
        set_param(g, "n", "v_threshold", 1.f);
        const sim::Network net(g, 4);
        sim::Simulator s(net);
        CHECK(spike_steps(s.run_events(counts({1, 1, 1, 1}))) == std::vector<std::size_t>{1, 3});
    }
    SUBCASE("LIF leaks toward v_leak and resets to v_reset") {
        // v_leak = 1, no input: v = 0.5, 0.75, 0.875 … never above 1; v_reset = −1 unused
        auto g = one_neuron(K::nir_lif, 0.f, 0.5e-3);
        set_param(g, "n", "tau", 1e-3f);
        set_param(g, "n", "v_leak", 1.f);
        set_param(g, "n", "v_threshold", 0.8f);
        set_param(g, "n", "v_reset", -1.f);
        // 0.5, 0.75, 0.875 > 0.8 → spike, −1; then 0, 0.5
        const sim::Network net(g, 5);
        sim::Simulator s(net);
        CHECK(spike_steps(s.run_events(counts({0, 0, 0, 0, 0}))) == std::vector<std::size_t>{2});
    }
    SUBCASE("CubaLIF: I += dt/τ_syn·(w_in·x − I), then the LIF of I") {
        // dt/τ_syn = 0.5, w_in = 2, x = 1: I = 1, 1.5, 1.75; dt/τ_mem = 0.5, r = 1:
        // v = 0.5, 1.0, 1.375 > 1.2 → spike at step 2
        auto g = one_neuron(K::cuba_lif, 1.f, 0.5e-3);
        set_param(g, "n", "tau_syn", 1e-3f);
        set_param(g, "n", "tau_mem", 1e-3f);
        set_param(g, "n", "r", 1.f);
        set_param(g, "n", "w_in", 2.f);
        set_param(g, "n", "v_threshold", 1.2f);
        const sim::Network net(g, 3);
        sim::Simulator s(net);
        const auto r = s.run_events(counts({1, 1, 1}));
        CHECK(spike_steps(r) == std::vector<std::size_t>{2});
        CHECK(r.at(0, 2).membrane_updates == 1);
    }
    SUBCASE("LI and CubaLI give their membrane; the output is its mean over the steps") {
        // LI: dt/τ = 0.5, r = 1, x = 1, 1, 0: v = 0.5, 0.75, 0.375 → mean 0.541666…
        auto g = one_neuron(K::li, 1.f, 0.5e-3);
        set_param(g, "n", "tau", 1e-3f);
        set_param(g, "n", "r", 1.f);
        const sim::Network net(g, 3);
        sim::Simulator s(net);
        const auto r = s.run_events(counts({1, 1, 0}));
        CHECK(r.logits[0] == doctest::Approx((0.5 + 0.75 + 0.375) / 3));
        CHECK(r.at(0, 0).spikes == 0);
        CHECK(r.at(0, 0).membrane_updates == 1);
        // CubaLI: I = 0.5·x…: x = 1: I = 0.5, v = 0.25; I = 0.75, v = 0.5
        auto c = one_neuron(K::cuba_li, 1.f, 0.5e-3);
        set_param(c, "n", "tau_syn", 1e-3f);
        set_param(c, "n", "tau_mem", 1e-3f);
        set_param(c, "n", "r", 1.f);
        set_param(c, "n", "w_in", 1.f);
        const sim::Network net2(c, 2);
        sim::Simulator s2(net2);
        CHECK(s2.run_events(counts({1, 1})).logits[0] == doctest::Approx((0.25 + 0.5) / 2));
    }
    SUBCASE("I integrates r·x without leak; Threshold spikes where x > θ, with no state") {
        auto g = one_neuron(K::integrator, 1.f);
        set_param(g, "n", "r", 0.5f);
        const sim::Network net(g, 3);
        sim::Simulator s(net);
        // v = 0.5, 1.5 (count 2), 1.5 → mean 7/6
        CHECK(s.run_events(counts({1, 2, 0})).logits[0] == doctest::Approx(3.5 / 3));
        auto t = one_neuron(K::threshold, 1.f);
        set_param(t, "n", "threshold", 1.f);
        const sim::Network net2(t, 4);
        sim::Simulator s2(net2);
        const auto r = s2.run_events(counts({1, 2, 3, 0}));
        CHECK(spike_steps(r) == std::vector<std::size_t>{1, 2});
        CHECK(r.at(0, 1).membrane_updates == 0);
    }
}

TEST_CASE("NIR Delay holds each neuron's events back round(delay/dt) steps") {
    sim::Graph g;
    g.add("in", K::input, {}, input_of(2, 1, 1));
    sim::NodeAttributes a;
    a.dt = 1e-3;
    g.add("d", K::delay, {"in"}, a);
    g.add("fc", K::linear, {"d"}, with_out(2));
    g.add("n", K::threshold, {"fc"});
    g.add("out", K::output, {"n"});
    g.validate();
    g.node("d").params = {{{2}, {0.f, 2e-3f}}};  // neuron 0 at once, neuron 1 two steps late
    g.node("fc").params = {{{2, 2}, {1.f, 0.f, 0.f, 1.f}}};
    g.node("n").params = {{{2}, {0.5f, 0.5f}}};
    const sim::Network net(g, 4);
    sim::Simulator s(net);
    sim::SpikeRecorder rec(net);
    std::vector<sim::EventList> frames(4);
    frames[0].push(0, 1);
    frames[0].push(1, 1);
    frames[1].push(1, 1);
    const auto r = s.run_events(frames, &rec);
    const auto& raster = rec.rasters()[0];
    CHECK(raster.idx == std::vector<std::uint32_t>{0, 1, 1});
    CHECK(raster.time == std::vector<std::uint32_t>{0, 2, 3});
    CHECK(r.logits == std::vector<float>{1.f, 2.f});
}

TEST_CASE("a recurrent edge carries the previous step's output (zero at the first step)") {
    // in → fc → sum(fc, rec) → if → rec (back to sum) ; if → out.
    // x = 1 per step, rec weight −0.75, threshold 0.5 (fires on >):
    // t0: v = 1 → spike, 0; t1: v = 1 − 0.75 = 0.25; t2: 0.25 + 1 = 1.25 → spike, 0;
    // t3: 0.25; t4: 1.25 → spike
    sim::Graph g;
    g.add("in", K::input, {}, input_of(1, 1, 1));
    g.add("fc", K::linear, {"in"}, with_out(1));
    g.add("sum", K::merge_add, {"fc", "rec"});
    g.add("if", K::nir_if, {"sum"});
    g.add("rec", K::linear, {"if"}, with_out(1));
    g.add("out", K::output, {"if"});
    g.validate();
    CHECK(g.recurrent());
    CHECK(g.node("sum").recurrent == std::vector<bool>{false, true});
    g.node("fc").params = {{{1, 1}, {1.f}}};
    g.node("rec").params = {{{1, 1}, {-0.75f}}};
    g.node("if").params = {{{1}, {1.f}}, {{1}, {0.5f}}, {{1}, {0.f}}};
    const sim::Network net(g, 5);
    sim::Simulator s(net);
    const auto r = s.run_events(counts({1, 1, 1, 1, 1}));
    CHECK(spike_steps(r) == std::vector<std::size_t>{0, 2, 4});
    // the recurrent projection counts one SOP per spike it carries (its row is the IF's)
    // fc: 5 input events; rec: the spikes of t0, t2 and t4 (each step's spikes, used a step later)
    CHECK(r.layer_total(0).sops == 5 + 3);
    // a second sample starts from zero again
    CHECK(spike_steps(s.run_events(counts({1, 1, 1, 1, 1}))) == std::vector<std::size_t>{0, 2, 4});
}

namespace {
void dyadic_nir(sim::Graph& g) {  // parameters whose arithmetic is exact in float (dt/τ = 0.5)
    for (auto& n : g.nodes()) {
        if (!sim::is_nir_neuron(n.kind)) continue;
        n.attr.dt = 0.5e-3;
        const auto names = sim::nir_parameters(n.kind);
        for (std::size_t p = 0; p < names.size(); ++p) {
            float value = 0.f;
            const auto name = names[p].first;
            if (name == "tau" || name == "tau_mem" || name == "tau_syn") value = 1e-3f;
            if (name == "r" || name == "w_in") value = 1.f;
            if (name == "v_threshold") value = 0.25f;
            n.params[p].data.assign(n.params[p].data.size(), value);
        }
    }
}
}  // namespace

TEST_CASE("NIR kinds against the dense rule: conv1d, non-square pools, recurrence, LI readout") {
    SUBCASE("a Conv1d (1×L map, 1×3 kernel, stride 2) → LIF → sum-pool 1×2 → CubaLIF ↺ → IF") {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(2, 1, 12));
        auto conv = with_out(3, 1, 1, 0);
        conv.kernel_w = 3;
        conv.stride_w = 2;
        conv.padding_w = 1;
        conv.bias = true;
        g.add("conv", K::conv2d, {"in"}, conv);
        g.add("lif", K::nir_lif, {"conv"});
        auto pool = window(1, 1);
        pool.kernel_w = 2;
        pool.stride_w = 2;
        g.add("pool", K::sum_pool, {"lif"}, pool);
        g.add("flat", K::flatten, {"pool"});
        g.add("fc", K::linear, {"flat"}, with_out(6));
        g.add("sum", K::merge_add, {"fc", "rec"});
        g.add("cuba", K::cuba_lif, {"sum"});
        g.add("rec", K::linear, {"cuba"}, with_out(6));
        g.add("fc2", K::linear, {"cuba"}, with_out(4));
        g.add("if", K::nir_if, {"fc2"});
        g.add("out", K::output, {"if"});
        check_against_dense(g, 6, 21, true, dyadic_nir);
    }
    SUBCASE("a delay between populations and a leaky-integrator readout read densely (MACs)") {
        sim::Graph g;
        g.add("in", K::input, {}, input_of(3, 2, 2));
        g.add("conv", K::conv2d, {"in"}, with_out(4, 2, 1, 0));
        g.add("if", K::nir_if, {"conv"});
        g.add("d", K::delay, {"if"});
        g.add("flat", K::flatten, {"d"});
        g.add("fc", K::linear, {"flat"}, with_out(5));
        g.add("li", K::li, {"fc"});
        g.add("fc2", K::linear, {"li"}, with_out(3));
        g.add("thr", K::threshold, {"fc2"});
        g.add("out", K::output, {"thr"});
        check_against_dense(g, 6, 23, false, [](sim::Graph& h) {
            dyadic_nir(h);
            h.node("d").attr.dt = 1e-3;
            auto& d = h.node("d").params[0].data;
            for (std::size_t k = 0; k < d.size(); ++k) d[k] = float(k % 3) * 1e-3f;
        });
        // the projection reading the LI's membrane is counted in MACs, not SOPs
        g.validate();
        fill(g, 23);
        dyadic_nir(g);
        const sim::Network net(g, 6);
        CHECK(net.layers()[2].name == "thr");
        CHECK(net.layers()[2].kind == sim::LayerKind::conv_real);
    }
}
