// NIR graphs in the engine (models/nir.hpp, docs/nir.md "Running NIR graphs"): the three real
// files of other frameworks load into the graphs they describe; the N-MNIST CNN classifies real
// recordings, and its event-driven run equals the dense rule; read → write → read gives the same
// graph and the same simulation; a Spikformer written to NIR runs the same from the NIR file;
// broken files are refused naming the node and the rule.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/io/nir.hpp"
#include "evformer/io/samples.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/builder_run.hpp"
#include "evformer/models/nir.hpp"
#include "evformer/models/weights.hpp"
#include "evformer/sim/network.hpp"
#include "sim/dense_reference.hpp"

namespace fs = std::filesystem;
namespace sim = evformer::sim;
namespace models = evformer::models;
namespace nir = evformer::io::nir;
using evformer::ConfigError;
using K = sim::NodeKind;

namespace {

const fs::path source = EVFORMER_SOURCE_DIR;
const fs::path cnn_file = source / "examples/nir/cnn_sinabs.nir";
const fs::path braille_file = source / "examples/nir/braille_noDelay_bias_zero.nir";
const fs::path norse_file = source / "examples/nir/lif_norse.nir";

fs::path temp(const std::string& name) {
    const auto dir = fs::temp_directory_path() / "evformer-test-nir";
    fs::create_directories(dir);
    return dir / name;
}

// The first `n` shipped N-MNIST test recordings binned as the NIR paper's frameworks did: bins of
// 1 ms from each recording's first event.
std::unique_ptr<evformer::io::SampleSource> nmnist(std::size_t n, std::size_t steps) {
    evformer::io::SampleOptions o;
    o.data = (source / "examples/data/nmnist_test100").string();
    o.limit = n;
    o.frames.frames = steps;
    o.frames.split_by = evformer::io::SplitBy::duration;
    o.frames.dt_us = 1000;
    o.frames.out_width = o.frames.out_height = 34;
    return evformer::io::open_samples(o);
}

std::string error_of(const nir::Graph& g, double dt = 1e-3) {
    try {
        models::NirImportOptions o;
        o.dt = dt;
        const sim::Network net(models::graph_from_nir(g, o), 4);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "no error";
}

// Same kinds, names, inputs, attributes that matter, shapes and parameters.
void check_same_graph(const sim::Graph& a, const sim::Graph& b) {
    REQUIRE(a.nodes().size() == b.nodes().size());
    for (const auto& n : a.nodes()) {
        CAPTURE(n.name);
        const auto& m = b.node(n.name);
        CHECK(m.kind == n.kind);
        CHECK(m.inputs == n.inputs);
        CHECK(m.shape.same_size(n.shape));
        CHECK(m.attr.dt == n.attr.dt);
        REQUIRE(m.params.size() == n.params.size());
        for (std::size_t p = 0; p < n.params.size(); ++p) {
            CHECK(m.params[p].shape == n.params[p].shape);
            CHECK(m.params[p].data == n.params[p].data);
        }
    }
}

}  // namespace

TEST_CASE("the three real NIR files load into the graphs they describe") {
    SUBCASE("Sinabs' N-MNIST CNN (NIR 0.2.0)") {
        const auto g = models::read_nir_graph(cnn_file);
        CHECK(g.node("input").shape.str() == "2x34x34");
        CHECK(g.node("0").kind == K::conv2d);
        CHECK(g.node("0").attr.kernel == 5);
        CHECK(g.node("0").attr.stride == 2);
        CHECK(g.node("0").shape.str() == "16x16x16");
        CHECK(g.node("1").kind == K::nir_if);
        CHECK(g.node("4").kind == K::sum_pool);
        CHECK(g.node("7").shape.str() == "8x4x4");
        CHECK(g.node("8").shape.str() == "128");
        CHECK(g.node("12").shape.str() == "10");
        CHECK(g.node("output").kind == K::output);
        CHECK_FALSE(g.recurrent());
        const sim::Network net(g, 10);
        // rows: the five IF populations, then the output
        REQUIRE(net.layers().size() == 6);
        CHECK(net.layers()[0].name == "1");
        CHECK(net.layers()[4].name == "12");
        CHECK(net.classes() == 10);
    }
    SUBCASE("the recurrent Braille CubaLIF network (NIR 0.2.0): a merge and a recurrent edge") {
        models::NirImportOptions o;
        o.dt = 1e-4;
        const auto g = models::read_nir_graph(braille_file, o);
        CHECK(g.node("lif1.lif").kind == K::cuba_lif);
        CHECK(g.node("lif1.lif").inputs == std::vector<std::string>{"lif1.lif.sum"});
        const auto& sum = g.node("lif1.lif.sum");
        CHECK(sum.kind == K::merge_add);
        CHECK(g.recurrent());
        // one of the two inputs of the sum closes the cycle lif → w_rec → sum → lif
        CHECK(std::count(sum.recurrent.begin(), sum.recurrent.end(), true) == 1);
        CHECK(g.node("lif1.lif").shape.str() == "38");
        // τ_syn = 0.222 ms: dt = 1 ms would overshoot, and is refused naming the neuron
        o.dt = 1e-3;
        try {
            const sim::Network net(models::read_nir_graph(braille_file, o), 4);
            FAIL("dt > τ_syn accepted");
        } catch (const ConfigError& e) {
            CHECK(std::string(e.what()).find("exceeds the synaptic time constant") !=
                  std::string::npos);
        }
    }
    SUBCASE("Norse's LIF (NIR 0.1.1, no v_reset): resets to 0") {
        models::NirImportOptions o;
        o.dt = 1e-4;
        const auto g = models::read_nir_graph(norse_file, o);
        CHECK(g.node("1").kind == K::nir_lif);
        const auto names = sim::nir_parameters(K::nir_lif);
        CHECK(names[4].first == "v_reset");
        CHECK(g.node("1").params[4].data == std::vector<float>{0.f});
        CHECK(g.node("1").params[3].data == std::vector<float>{0.1f});
        // dt/τ = 0.1 ms / 2.5 ms = 0.04, x = w·1 + b = 1: v = 0.04, 0.0784, 0.1153 > 0.1 → spike
        const sim::Network net(g, 4);
        sim::Simulator s(net);
        std::vector<sim::EventList> frames(4);
        for (auto& f : frames) f.push(0, 1);
        const auto r = s.run_events(frames);
        CHECK(r.at(0, 0).spikes == 0);
        CHECK(r.at(0, 1).spikes == 0);
        CHECK(r.at(0, 2).spikes == 1);
        CHECK(r.at(0, 3).spikes == 0);  // reset to 0: v = 0.04
    }
}

TEST_CASE("the N-MNIST CNN on real recordings: accurate, and event-driven equals the dense rule") {
    const auto g = models::read_nir_graph(cnn_file);
    const std::size_t steps = 320;  // 1 ms bins: every N-MNIST recording (≈ 300 ms) whole
    const sim::Network net(g, steps);
    const auto data = nmnist(100, steps);
    models::SimulationOptions so;
    const auto result = models::simulate_network(net, *data, so, "cnn_sinabs.nir", "nir");
    // the NIR paper: 0.979–0.985 on the 10,000 test recordings; 100 of them here
    CHECK(result.report.samples == 100);
    CHECK(result.report.correct >= 95);
    // the first three recordings, event by event and densely: every spike and every SOP
    sim::Simulator s(net);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto lists = models::engine_events(data->events(i));
        const auto r = s.run_events(lists);
        std::vector<std::vector<float>> dense;
        for (const auto& l : lists) {
            std::vector<float> x(net.input_neurons(), 0.f);
            for (std::size_t e = 0; e < l.size(); ++e) x[l.neuron[e]] += l.count[e];
            dense.push_back(std::move(x));
        }
        const auto ref = evformer::testing::dense_run(net.graph(), dense);
        CHECK(r.prediction == ref.prediction);
        CHECK(r.logits == ref.logits);
        std::uint64_t sops = 0, spikes = 0, ref_spikes = 0;
        for (std::size_t l = 0; l < net.layers().size(); ++l) {
            sops += r.layer_total(l).sops;
            spikes += r.layer_total(l).spikes;
        }
        for (const auto& [name, per_step] : ref.spikes)
            for (const auto& y : per_step)
                for (float v : y) ref_spikes += std::uint64_t(v);
        CHECK(sops == ref.projection_sops);
        CHECK(spikes == ref_spikes);
    }
}

TEST_CASE("read → write → read gives the same graph and the same simulation") {
    for (const auto& [file, dt] : std::vector<std::pair<fs::path, double>>{
             {cnn_file, 1e-3}, {braille_file, 1e-4}, {norse_file, 1e-4}}) {
        CAPTURE(file);
        models::NirImportOptions o;
        o.dt = dt;
        const auto g = models::read_nir_graph(file, o);
        const auto out = temp(file.filename().string());
        nir::write(out, models::graph_to_nir(g, dt));
        const auto h = models::read_nir_graph(out, o);
        check_same_graph(g, h);
        // the same spikes and counts on the same input
        const sim::Network a(g, 12), b(h, 12);
        sim::Simulator sa(a), sb(b);
        std::vector<sim::EventList> frames(12);
        for (std::size_t t = 0; t < frames.size(); ++t)
            for (std::uint32_t n = 0; n < a.input_neurons(); n += 3)
                if ((n + t) % 5 == 0) frames[t].push(n, 1);
        const auto ra = sa.run_events(frames), rb = sb.run_events(frames);
        CHECK(ra.counts == rb.counts);
        CHECK(ra.logits == rb.logits);
    }
}

TEST_CASE("a Spikformer written to NIR runs the same from the NIR file") {
    const auto weights = models::load_weights(source / "examples/models/nmnist-ssa-bin.h5");
    const auto net = models::build_network(weights);
    const auto out = temp("nmnist-ssa-bin.nir");
    nir::write(out, models::graph_to_nir(net.graph()));
    const auto file = nir::read(out);
    // standard NIR nodes for everything but max-pool, attention and the readout
    std::size_t extensions = 0;
    for (const auto& n : file.nodes) {
        if (n.type.rfind("evformer.", 0) == 0) ++extensions;
        CHECK(n.type != "BatchNorm");
    }
    CHECK(extensions == 3 /* max-pools */ + 2 /* attention blocks */ + 1 /* readout */);
    CHECK(file.find("blocks.0.attn.q_lif")->type == "LIF");
    const sim::Network back(models::read_nir_graph(out), net.time_steps);
    // the shipped recordings binned as the model was trained: identical results
    evformer::io::SampleOptions o;
    o.data = (source / "examples/data/nmnist_test100").string();
    o.limit = 8;
    o.frames.frames = weights.spec.time_steps;
    o.frames.out_width = o.frames.out_height = 34;
    const auto data = evformer::io::open_samples(o);
    sim::Simulator sa(net), sb(back);
    for (std::size_t i = 0; i < data->size(); ++i) {
        const auto lists = models::engine_events(data->events(i));
        const auto ra = sa.run_events(lists), rb = sb.run_events(lists);
        CHECK(ra.prediction == rb.prediction);
        CHECK(ra.logits == rb.logits);
        CHECK(ra.total().sops == rb.total().sops);
        CHECK(ra.total().spikes == rb.total().spikes);
    }
}

TEST_CASE("broken NIR graphs are refused naming the node and the rule") {
    auto base = [] {
        nir::Graph g;
        nir::Node in;
        in.name = "input";
        in.type = "Input";
        in.fields["shape"] = nir::Value::array({1}, {3}, evformer::io::h5::DType::i64);
        nir::Node fc;
        fc.name = "fc";
        fc.type = "Affine";
        fc.fields["weight"] = nir::Value::array({2, 3}, {1, 0, 0, 0, 1, 0});
        fc.fields["bias"] = nir::Value::array({2}, {0, 0});
        nir::Node lif;
        lif.name = "lif";
        lif.type = "LIF";
        for (const char* k : {"tau", "r", "v_leak", "v_threshold"})
            lif.fields[k] = nir::Value::array({2}, {1e-2, 1e-2});
        nir::Node out;
        out.name = "output";
        out.type = "Output";
        out.fields["shape"] = nir::Value::array({1}, {2}, evformer::io::h5::DType::i64);
        g.nodes = {fc, in, lif, out};
        g.edges = {{"input", "fc"}, {"fc", "lif"}, {"lif", "output"}};
        return g;
    };
    CHECK(error_of(base()) == "no error");
    {
        auto g = base();
        g.nodes[2].type = "Izhikevich";
        CHECK(error_of(g).find("NIR node 'lif' (Izhikevich): evformer cannot run this node type") !=
              std::string::npos);
    }
    {
        auto g = base();
        g.nodes[2].fields.erase("tau");
        CHECK(error_of(g) == "NIR node 'lif' (LIF): lacks the field 'tau'");
    }
    {
        auto g = base();
        g.nodes[2].fields["r"] = nir::Value::array({3}, {1, 1, 1});
        CHECK(error_of(g) == "NIR node 'lif' (LIF): 'r' has 3 values, the layer 2 has 2 neurons");
    }
    {
        auto g = base();
        g.nodes[0].fields["weight"] = nir::Value::array({2, 4}, std::vector<double>(8, 0.5));
        CHECK(error_of(g) ==
              "NIR node 'fc' (Affine): weight is [2, 4] but its input has 3 features");
    }
    {
        auto g = base();
        g.nodes[3].fields["shape"] = nir::Value::array({1}, {5}, evformer::io::h5::DType::i64);
        CHECK(error_of(g).find("NIR node 'output' (Output): its shape") != std::string::npos);
    }
    {
        auto g = base();  // dt of 20 ms against τ = 10 ms
        CHECK(error_of(g, 2e-2).find("exceeds the time constant") != std::string::npos);
    }
    {
        auto g = base();
        g.edges.push_back({"lif", "input"});
        CHECK(error_of(g) == "NIR node 'input' (Input): an Input node cannot have incoming edges");
    }
}

namespace {

nir::Value arr(evformer::io::h5::Shape shape, double fill) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = fill;
    return nir::Value::array(std::move(shape), std::move(v));
}

nir::Value ramp(evformer::io::h5::Shape shape, double scale) {  // varied weights, exact in float
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = scale * double(int((i * 7) % 11) - 5) / 8.0;
    return nir::Value::array(std::move(shape), std::move(v));
}

nir::Value ints(std::vector<double> v) {
    const std::size_t n = v.size();
    return nir::Value::array({n}, std::move(v), evformer::io::h5::DType::i64);
}

nir::Node node(std::string name, std::string type, std::map<std::string, nir::Value> fields) {
    nir::Node n;
    n.name = std::move(name);
    n.type = std::move(type);
    n.fields = std::move(fields);
    return n;
}

// Every NIR type the engine runs, in one graph with a nested NIRGraph and a recurrent loop:
// Input [2, 12] → Conv1d (k 3, stride 2, pad 1) → LIF → Delay → SumPool2d? (1-D: no) → Flatten →
// Affine → Scale → sub-graph {Input → Linear (a current read densely) → CubaLIF (↺ Affine) →
// Output} → Affine → IF; and a branch Affine → LI → Linear → I → Threshold; both → Output.
nir::Graph every_type() {
    nir::Graph g;
    const double dt = 0.5e-3;  // dt/τ = 0.5 everywhere: exact float arithmetic
    g.nodes.push_back(node("input", "Input", {{"shape", ints({2, 12})}}));
    g.nodes.push_back(node("conv", "Conv1d",
                           {{"weight", ramp({3, 2, 3}, 1.0)},
                            {"bias", arr({3}, 0.25)},
                            {"stride", ints({2})},
                            {"padding", ints({1})},
                            {"dilation", ints({1})},
                            {"groups", nir::Value::scalar(1, evformer::io::h5::DType::i64)},
                            {"input_shape", ints({12})}}));
    g.nodes.push_back(node("lif", "LIF",
                           {{"tau", arr({3, 6}, 2 * dt)},
                            {"r", arr({3, 6}, 1)},
                            {"v_leak", arr({3, 6}, 0)},
                            {"v_threshold", arr({3, 6}, 0.25)},
                            {"v_reset", arr({3, 6}, 0)}}));
    g.nodes.push_back(node("delay", "Delay", {{"delay", ramp({3, 6}, 0) /* 0 */}}));
    g.nodes.back().fields["delay"] = arr({3, 6}, dt);  // one step
    g.nodes.push_back(node("flat", "Flatten",
                           {{"start_dim", nir::Value::scalar(0, evformer::io::h5::DType::i64)},
                            {"end_dim", nir::Value::scalar(-1, evformer::io::h5::DType::i64)},
                            {"input_type", ints({3, 1, 6})}}));
    g.nodes.push_back(
        node("fc", "Affine", {{"weight", ramp({8, 18}, 1.0)}, {"bias", arr({8}, 0.125)}}));
    auto sub = std::make_shared<nir::Graph>();
    sub->nodes.push_back(node("input", "Input", {{"shape", ints({8})}}));
    sub->nodes.push_back(node("w", "Linear", {{"weight", ramp({8, 8}, 0.5)}}));
    sub->nodes.push_back(node("cuba", "CubaLIF",
                              {{"tau_syn", arr({8}, 2 * dt)},
                               {"tau_mem", arr({8}, 2 * dt)},
                               {"r", arr({8}, 1)},
                               {"v_leak", arr({8}, 0)},
                               {"v_threshold", arr({8}, 0.25)},
                               {"v_reset", arr({8}, 0)},
                               {"w_in", arr({8}, 1)}}));
    sub->nodes.push_back(
        node("rec", "Affine", {{"weight", ramp({8, 8}, -0.5)}, {"bias", arr({8}, 0)}}));
    sub->nodes.push_back(node("output", "Output", {{"shape", ints({8})}}));
    sub->edges = {
        {"input", "w"}, {"w", "cuba"}, {"cuba", "rec"}, {"rec", "cuba"}, {"cuba", "output"}};
    nir::Node s = node("rnn", "NIRGraph", {});
    s.graph = sub;
    g.nodes.push_back(s);
    g.nodes.push_back(node("scale", "Scale", {{"scale", arr({8}, 2)}}));
    g.nodes.push_back(
        node("fc2", "Affine", {{"weight", ramp({4, 8}, 1.0)}, {"bias", arr({4}, 0)}}));
    g.nodes.push_back(node("if", "IF", {{"r", arr({4}, 1)}, {"v_threshold", arr({4}, 0.5)}}));
    g.nodes.push_back(
        node("fc3", "Affine", {{"weight", ramp({5, 8}, 1.0)}, {"bias", arr({5}, 0)}}));
    g.nodes.push_back(
        node("li", "LI", {{"tau", arr({5}, 2 * dt)}, {"r", arr({5}, 1)}, {"v_leak", arr({5}, 0)}}));
    g.nodes.push_back(node("fc4", "Linear", {{"weight", ramp({4, 5}, 1.0)}}));
    g.nodes.push_back(node("i", "I", {{"r", arr({4}, 0.5)}}));
    g.nodes.push_back(node("thr", "Threshold", {{"threshold", arr({4}, 0.25)}}));
    g.nodes.push_back(node("output", "Output", {{"shape", ints({4})}}));
    g.edges = {{"input", "conv"}, {"conv", "lif"}, {"lif", "delay"}, {"delay", "flat"},
               {"flat", "fc"},    {"fc", "scale"}, {"scale", "rnn"}, {"rnn", "fc2"},
               {"fc2", "if"},     {"rnn", "fc3"},  {"fc3", "li"},    {"li", "fc4"},
               {"fc4", "i"},      {"i", "thr"},    {"if", "output"}, {"thr", "output"}};
    std::sort(g.nodes.begin(), g.nodes.end(),
              [](const nir::Node& a, const nir::Node& b) { return a.name < b.name; });
    return g;
}

}  // namespace

TEST_CASE("every NIR type, a nested graph and a recurrent loop: converted, run, round-tripped") {
    models::NirImportOptions o;
    o.dt = 0.5e-3;
    const auto g = models::graph_from_nir(every_type(), o);
    // the nested graph is flattened and its Input/Output spliced out; summed inputs get merges
    CHECK(g.node("rnn.cuba").kind == K::cuba_lif);
    CHECK(g.node("rnn.w").inputs == std::vector<std::string>{"scale"});
    CHECK(g.node("rnn.cuba").inputs == std::vector<std::string>{"rnn.cuba.sum"});
    CHECK(g.node("fc2").inputs == std::vector<std::string>{"rnn.cuba"});
    CHECK(g.node("output").inputs == std::vector<std::string>{"output.sum"});
    CHECK(g.recurrent());
    CHECK(g.node("conv").shape.str() == "3x1x6");
    CHECK(g.node("conv").attr.kw() == 3);
    CHECK(g.node("delay").kind == K::delay);
    CHECK(g.node("li").kind == K::li);
    CHECK(g.node("i").kind == K::integrator);
    // event-driven against the dense rule, every spike
    const std::size_t steps = 10;
    const sim::Network net(g, steps);
    sim::Simulator s(net);
    sim::SpikeRecorder rec(net);
    std::vector<sim::EventList> frames(steps);
    for (std::size_t t = 0; t < steps; ++t)
        for (std::uint32_t n = 0; n < 24; ++n)
            if ((n * 5 + t * 3) % 4 == 0) frames[t].push(n, std::uint16_t(1 + (n + t) % 2));
    const auto r = s.run_events(frames, &rec);
    std::vector<std::vector<float>> dense;
    for (const auto& f : frames) {
        std::vector<float> x(24, 0.f);
        for (std::size_t e = 0; e < f.size(); ++e) x[f.neuron[e]] += f.count[e];
        dense.push_back(std::move(x));
    }
    const auto ref = evformer::testing::dense_run(g, dense);
    CHECK(r.logits == ref.logits);
    std::size_t total = 0;
    for (const auto& raster : rec.rasters()) {
        CAPTURE(raster.name);
        const auto& want = ref.spikes.at(raster.name);
        std::size_t n = 0;
        for (const auto& y : want)
            for (float v : y) n += std::size_t(v);
        CHECK(raster.idx.size() == n);
        total += n;
    }
    CHECK(total > 0);
    // the round trip through a file
    const auto out = temp("every_type.nir");
    nir::write(out, models::graph_to_nir(g, o.dt));
    const auto h = models::read_nir_graph(out, o);
    check_same_graph(g, h);
}

TEST_CASE("a Conv2d padded on one axis only keeps a zero padding on the other") {
    nir::Graph g;
    g.nodes.push_back(node("input", "Input", {{"shape", ints({2, 5, 5})}}));
    g.nodes.push_back(node("conv", "Conv2d",
                           {{"weight", ramp({3, 2, 3, 3}, 1.0)},
                            {"bias", arr({3}, 0)},
                            {"stride", ints({1, 1})},
                            {"padding", ints({1, 0})},
                            {"dilation", ints({1, 1})},
                            {"groups", nir::Value::scalar(1, evformer::io::h5::DType::i64)}}));
    g.nodes.push_back(
        node("if", "IF", {{"r", arr({3, 5, 3}, 1)}, {"v_threshold", arr({3, 5, 3}, 0.5)}}));
    g.nodes.push_back(node("output", "Output", {{"shape", ints({3, 5, 3})}}));
    g.edges = {{"input", "conv"}, {"conv", "if"}, {"if", "output"}};
    const auto s = models::graph_from_nir(g);
    CHECK(s.node("conv").attr.padding == 1);
    CHECK(s.node("conv").attr.pw() == 0);
    CHECK(s.node("conv").shape.str() == "3x5x3");
    const sim::Network net(s, 3);
    sim::Simulator sim(net);
    std::vector<sim::EventList> frames(3);
    for (std::uint32_t n = 0; n < 50; n += 3) frames[n % 3].push(n, 1);
    const auto r = sim.run_events(frames);
    std::vector<std::vector<float>> dense;
    for (const auto& f : frames) {
        std::vector<float> x(50, 0.f);
        for (std::size_t e = 0; e < f.size(); ++e) x[f.neuron[e]] += f.count[e];
        dense.push_back(std::move(x));
    }
    const auto ref = evformer::testing::dense_run(s, dense);
    CHECK(r.logits == ref.logits);
    CHECK(r.total().sops == ref.projection_sops);
    // written back with its padding per axis
    const auto back = models::graph_to_nir(s);
    CHECK(back.find("conv")->field("padding")->numbers == std::vector<double>{1, 0});
    // a Conv1d without padding, stride or dilation fields: none on either axis
    nir::Graph c;
    c.nodes.push_back(node("input", "Input", {{"shape", ints({2, 8})}}));
    c.nodes.push_back(node("conv", "Conv1d", {{"weight", ramp({3, 2, 3}, 1.0)}}));
    c.nodes.push_back(node("if", "IF", {{"r", arr({3, 6}, 1)}, {"v_threshold", arr({3, 6}, 0.5)}}));
    c.nodes.push_back(node("output", "Output", {{"shape", ints({3, 6})}}));
    c.edges = {{"input", "conv"}, {"conv", "if"}, {"if", "output"}};
    const auto one = models::graph_from_nir(c);
    CHECK(one.node("conv").attr.padding == 0);
    CHECK(one.node("conv").attr.pw() == 0);
    CHECK(one.node("conv").shape.str() == "3x1x6");
}
