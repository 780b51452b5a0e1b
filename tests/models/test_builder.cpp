#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/io/idx.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/raster.hpp"
#include "support.hpp"

namespace m = evformer::models;
namespace sim = evformer::sim;
using evformer::test::ScratchDir;

namespace {

// Eight test images: Fashion-MNIST when installed, else seeded synthetic blobs.
std::vector<std::vector<std::uint8_t>> some_images(std::size_t count) {
    std::vector<std::vector<std::uint8_t>> out;
    if (std::filesystem::exists(std::string(EVFORMER_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz")) {
        const auto ds = evformer::io::load_mnist_like(EVFORMER_FMNIST_DIR, "test");
        for (std::size_t i = 0; i < count; ++i)
            out.emplace_back(ds.image(i), ds.image(i) + 28 * 28);
        return out;
    }
    for (std::size_t i = 0; i < count; ++i) {
        std::vector<std::uint8_t> img(28 * 28, 0);
        for (std::size_t y = 4 + i; y < 24; ++y)
            for (std::size_t x = 6; x < 22 - i; ++x) img[y * 28 + x] = std::uint8_t(80 + 20 * i);
        out.push_back(img);
    }
    return out;
}

}  // namespace

TEST_CASE("the builder folds BatchNorm into the conv weights and bias") {
    m::ModelSpec spec;
    spec.dim = 16;
    spec.heads = 2;
    spec.blocks = 1;
    auto w = m::zero_weights(spec);
    w.at("sps/conv1/weight").data[(1 * 2 + 0) * 9 + 4] = 2.0f;  // out 1, in 0, centre tap
    w.at("sps/bn1/weight").data[1] = 3.0f;
    w.at("sps/bn1/bias").data[1] = 0.5f;
    w.at("sps/bn1/running_mean").data[1] = 0.25f;
    w.at("sps/bn1/running_var").data[1] = 4.0f;
    w.at("blocks/0/mlp/fc1_linear/weight").data[5 * 16 + 7] = 1.5f;  // out 5, in 7
    w.at("blocks/0/mlp/fc1_linear/bias").data[5] = 1.0f;
    w.at("blocks/0/mlp/fc1_bn/weight").data[5] = 2.0f;
    w.at("blocks/0/mlp/fc1_bn/running_mean").data[5] = 0.5f;
    const auto net = m::build_network(w);
    const auto conv = net.projection("sps/conv1");  // in 2 channels, out 4
    const double g = 3.0 / std::sqrt(4.0 + spec.bn_eps);
    CHECK(conv.weight_t[(0 * 9 + 4) * 4 + 1] == doctest::Approx(2.0 * g));
    CHECK(conv.bias[1] == doctest::Approx(0.5 - 0.25 * g));
    CHECK(conv.bias[0] == 0.f);
    const auto fc1 = net.projection("blocks/0/mlp/fc1_linear");
    const double g1 = 2.0 / std::sqrt(1.0 + spec.bn_eps);
    CHECK(fc1.weight_t[7 * 64 + 5] == doctest::Approx(1.5 * g1));
    CHECK(fc1.bias[5] == doctest::Approx((1.0 - 0.5) * g1));
    CHECK(net.attention().at(0).tokens == 49);
    CHECK(net.layers().size() == 5 + 7 + 1);
    CHECK_THROWS_WITH_AS(net.projection("sps/lif1"),
                         "network: 'sps/lif1' is not a conv2d or linear node",
                         evformer::ConfigError);
}

TEST_CASE("the builder sets Δ = λ·c_mean and V̄ only for the variants that use them") {
    m::ModelSpec spec;
    spec.dim = 16;
    spec.heads = 2;
    spec.blocks = 1;
    spec.attention.lambda = 2.0;
    for (const auto& vi : m::kAttentionVariants) {
        spec.attention.variant = vi.variant;
        auto w = m::zero_weights(spec);
        w.at("blocks/0/attn/c_mean").data = {0.25f, 0.75f};
        w.at("blocks/0/attn/v_bar").data.assign(16, 0.125f);
        const auto net = m::build_network(w);
        const auto& a = net.attention_kernel(0);
        CAPTURE(vi.name);
        CHECK(a.binary == vi.binary);
        CHECK(a.threshold[1] == (vi.adaptive_threshold ? 1.5f : 0.f));
        CHECK(a.shift.empty() == !vi.shift);
    }
}

TEST_CASE("a model that does not fit the data is a clear error naming the field") {
    m::ModelSpec spec;
    spec.in_height = 32;
    spec.in_width = 32;
    spec.in_channels = 3;
    try {
        m::check_model_fits(spec, "model.h5", 1, 28, 28, 10);
        FAIL("no error");
    } catch (const evformer::ConfigError& e) {
        CHECK(std::string(e.what()).find("model.h5") != std::string::npos);
        CHECK(std::string(e.what()).find("3x32x32") != std::string::npos);
        CHECK(std::string(e.what()).find("1x28x28") != std::string::npos);
    }
    m::ModelSpec classes;
    classes.classes = 5;
    CHECK_THROWS_WITH_AS(m::check_model_fits(classes, "x", 1, 28, 28, 10),
                         doctest::Contains("5 classes"), evformer::ConfigError);
    CHECK_THROWS_AS(m::image_currents(std::vector<std::uint8_t>(10), spec), evformer::ConfigError);
}

TEST_CASE("random weights make every population fire at a rate strictly between 0 and 1") {
    const auto w = m::random_weights(m::ModelSpec{}, 1);
    const auto net = m::build_network(w);
    sim::Simulator simulator(net);
    const auto infos = net.layers();
    std::vector<sim::StepCounts> totals(infos.size());
    for (const auto& img : some_images(4)) {
        const auto r = simulator.run_image(m::image_currents(img, w.spec));
        for (std::size_t l = 0; l < infos.size(); ++l) totals[l] += r.layer_total(l);
    }
    for (std::size_t l = 0; l + 1 < infos.size(); ++l) {
        const double rate = double(totals[l].spikes) / double(totals[l].membrane_updates);
        CAPTURE(infos[l].name);
        CHECK(rate > 0.005);
        CHECK(rate < 0.9);
    }
}

TEST_CASE("rasters round-trip through HDF5: re-read spikes equal the engine's") {
    ScratchDir dir;
    auto spec = m::ModelSpec{};
    spec.blocks = 1;
    const auto w = m::random_weights(spec, 2);
    const auto net = m::build_network(w);
    sim::Simulator simulator(net);
    sim::SpikeRecorder recorder(net);
    m::RasterFile file;
    file.time_steps = net.time_steps;
    file.model = "random";
    const auto images = some_images(3);
    for (std::size_t i = 0; i < images.size(); ++i) {
        recorder.clear();
        const auto r = simulator.run_image(m::image_currents(images[i], spec), &recorder);
        file.samples.push_back({i, 7, r.prediction, recorder.rasters()});
        for (std::size_t l = 0; l + 1 < net.layers().size(); ++l)
            CHECK(recorder.rasters()[l].idx.size() == r.layer_total(l).spikes);
    }
    m::write_rasters(dir / "r.h5", file);
    const auto back = m::read_rasters(dir / "r.h5");
    REQUIRE(back.samples.size() == 3);
    CHECK(back.time_steps == 4);
    CHECK(back.model == "random");
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(back.samples[i].prediction == file.samples[i].prediction);
        REQUIRE(back.samples[i].rasters.size() == file.samples[i].rasters.size());
        for (std::size_t p = 0; p < file.samples[i].rasters.size(); ++p) {
            const auto& a = file.samples[i].rasters[p];
            const auto& b = back.samples[i].rasters[p];
            CHECK(a.name == b.name);
            CHECK(a.shape == b.shape);
            CHECK(a.idx == b.idx);
            CHECK(a.time == b.time);
        }
    }
    // The layout is NIRGraphData-like: nodes/<layer with dots>/observables/spikes/{idx,time}.
    evformer::io::h5::Reader r(dir / "r.h5");
    CHECK(r.attr_string("/", "__type__") == "NIRGraphData");
    CHECK(r.is_dataset("nodes/blocks.0.attn.attn_lif/observables/spikes/idx"));
    CHECK(r.attr_int("nodes/sps.lif0/observables/spikes", "n_neurons") == 8 * 28 * 28);
    CHECK_THROWS_AS(m::read_rasters(dir / "missing.h5"), evformer::FileError);
}

TEST_CASE("a raster file's neuron_order matches its indices (issue 14: it said channel-last)") {
    // Only channel 2 of sps/lif0 can fire, and only near the bright top-left corner of the
    // image: decoding the file's indices with the order the file states must give exactly that.
    ScratchDir dir;
    m::ModelSpec spec;
    spec.blocks = 1;
    auto w = m::zero_weights(spec);
    auto& conv0 = w.tensors.at("sps/conv0/weight");  // [C, 1, 3, 3]
    for (std::size_t k = 0; k < 9; ++k) conv0.data[2 * 9 + k] = 1.f;
    std::vector<std::uint8_t> image(28 * 28, 0);
    for (std::size_t y = 0; y < 6; ++y)
        for (std::size_t x = 0; x < 6; ++x) image[y * 28 + x] = 255;
    const auto net = m::build_network(w);
    sim::Simulator simulator(net);
    sim::SpikeRecorder recorder(net, {"sps/lif0", "blocks/0/mlp/fc1_lif"});
    const auto r = simulator.run_image(m::image_currents(image, spec), &recorder);
    m::RasterFile file;
    file.time_steps = net.time_steps;
    file.model = "one channel";
    file.samples.push_back({0, 0, r.prediction, recorder.rasters()});
    m::write_rasters(dir / "r.h5", file);

    evformer::io::h5::Reader h5(dir / "r.h5");
    const std::string node = "nodes/sps.lif0";
    const auto order = h5.attr_string(node, "neuron_order");
    const auto shape = h5.read<std::int64_t>(node + "/shape");
    REQUIRE(shape == std::vector<std::int64_t>{std::int64_t(spec.dim / 8), 28, 28});
    const auto n = h5.read<std::int64_t>(node + "/observables/spikes/n_events")[0];
    const auto idx = h5.read<std::int64_t>(node + "/observables/spikes/idx");
    REQUIRE(n > 0);
    REQUIRE(order == "channel-major");  // the only order this test knows how to decode
    for (std::int64_t e = 0; e < n; ++e) {
        const auto i = idx[std::size_t(e)];
        const auto c = i / (28 * 28), y = i / 28 % 28, x = i % 28;
        CAPTURE(i);
        CHECK(c == 2);
        CHECK(y <= 6);
        CHECK(x <= 6);
    }
    // the token population states its own order, and the root says the orders differ
    CHECK(h5.attr_string("nodes/blocks.0.mlp.fc1_lif", "neuron_order") == "token-major");
    CHECK(h5.attr_string("/", "neuron_order") == "per-node");
    // read back, the rasters keep their order
    const auto back = m::read_rasters(dir / "r.h5");
    CHECK(back.samples[0].rasters[0].neuron_order == "channel-major");
    CHECK(back.samples[0].rasters[1].neuron_order == "token-major");
    // a file of conv populations only states one order at the root
    sim::SpikeRecorder conv_only(net, {"sps/lif0", "sps/lif1"});
    const auto r2 = simulator.run_image(m::image_currents(image, spec), &conv_only);
    file.samples = {{0, 0, r2.prediction, conv_only.rasters()}};
    m::write_rasters(dir / "conv.h5", file);
    CHECK(evformer::io::h5::Reader(dir / "conv.h5").attr_string("/", "neuron_order") ==
          "channel-major");
}
