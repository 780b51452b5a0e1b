#include <doctest/doctest.h>

#include <numeric>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/models/weights.hpp"
#include "support.hpp"

using evformer::ConfigError;
using evformer::FileError;
using evformer::test::ScratchDir;
namespace m = evformer::models;

namespace {

m::ModelWeights numbered_weights() {
    m::ModelSpec spec;
    spec.dim = 16;
    spec.heads = 2;
    spec.blocks = 1;
    auto w = m::zero_weights(spec);
    float k = 0.f;
    for (auto& [name, t] : w.tensors)
        for (auto& v : t.data) v = (k += 0.25f);
    w.provenance.dataset = "fashion-mnist";
    w.provenance.epochs = 3;
    w.provenance.seed = 7;
    w.provenance.accuracy = 0.5;
    w.provenance.command = "evformer train";
    return w;
}

}  // namespace

TEST_CASE("the parameter layout of Spikformer-2-64 has the documented tensors and shapes") {
    m::ModelSpec spec;
    const auto layout = m::parameter_layout(spec);
    auto find = [&](const std::string& n) {
        for (const auto& p : layout)
            if (p.name == n) return p.shape;
        FAIL("no tensor " << n);
        return std::vector<std::size_t>{};
    };
    CHECK(find("sps/conv0/weight") == std::vector<std::size_t>{8, 1, 3, 3});
    CHECK(find("sps/conv3/weight") == std::vector<std::size_t>{64, 32, 3, 3});
    CHECK(find("sps/rpe_conv/weight") == std::vector<std::size_t>{64, 64, 3, 3});
    CHECK(find("blocks/1/attn/q_linear/weight") == std::vector<std::size_t>{64, 64});
    CHECK(find("blocks/1/attn/c_mean") == std::vector<std::size_t>{4});
    CHECK(find("blocks/0/mlp/fc1_linear/weight") == std::vector<std::size_t>{256, 64});
    CHECK(find("blocks/0/mlp/fc2_bn/running_var") == std::vector<std::size_t>{64});
    CHECK(find("head/weight") == std::vector<std::size_t>{10, 64});
    std::size_t params = 0;
    for (const auto& p : layout) params += evformer::io::h5::element_count(p.shape);
    CHECK(params > 100000);
}

TEST_CASE("weights round-trip through HDF5 exactly, provenance included") {
    ScratchDir dir;
    const auto w = numbered_weights();
    m::save_weights(w, dir / "w.h5");
    const auto r = m::load_weights(dir / "w.h5");
    CHECK(r.spec == w.spec);
    CHECK(r.tensors == w.tensors);
    CHECK(r.provenance.dataset == "fashion-mnist");
    CHECK(r.provenance.epochs == 3);
    CHECK(r.provenance.seed == 7);
    CHECK(r.provenance.accuracy == 0.5);
}

TEST_CASE("a weights file with a missing tensor names the tensor") {
    ScratchDir dir;
    auto w = numbered_weights();
    m::save_weights(w, dir / "w.h5");
    // Rewrite without one tensor, by hand, as a foreign tool might.
    evformer::io::h5::Reader r(dir / "w.h5");
    evformer::io::h5::Writer out(dir / "broken.h5");
    out.attr("/", "format", std::string(m::kWeightsFormat));
    out.attr("/", "format_version", m::kWeightsFormatVersion);
    out.attr("/", "spec", w.spec.to_json());
    for (const auto& p : m::parameter_layout(w.spec))
        if (p.name != "blocks/0/attn/k_bn/running_var")
            out.write<float>(p.name, w.tensors.at(p.name).data, p.shape);
    out.commit();
    CHECK_THROWS_WITH_AS(m::load_weights(dir / "broken.h5"),
                         doctest::Contains("blocks/0/attn/k_bn/running_var"), FileError);
}

TEST_CASE("weights validation rejects misshapen, unknown and non-finite tensors") {
    auto w = numbered_weights();
    w.tensors.at("head/bias").shape = {11};
    CHECK_THROWS_WITH_AS(w.validate(), doctest::Contains("'head/bias' has shape (11,)"),
                         ConfigError);
    w = numbered_weights();
    w.tensors["blocks/9/extra"] = {{1}, {0.f}};
    CHECK_THROWS_WITH_AS(w.validate(), doctest::Contains("unexpected tensor 'blocks/9/extra'"),
                         ConfigError);
    w = numbered_weights();
    w.tensors.at("head/weight").data[3] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(w.validate(), doctest::Contains("non-finite"), ConfigError);
}

TEST_CASE("a file that is not a weights file, or of another version, is refused") {
    ScratchDir dir;
    {
        evformer::io::h5::Writer out(dir / "other.h5");
        out.attr("/", "format", std::string("something-else"));
        out.commit();
    }
    CHECK_THROWS_WITH_AS(m::load_weights(dir / "other.h5"),
                         doctest::Contains("not an evformer weights file"), FileError);
    {
        evformer::io::h5::Writer out(dir / "future.h5");
        out.attr("/", "format", std::string(m::kWeightsFormat));
        out.attr("/", "format_version", std::int64_t{99});
        out.commit();
    }
    CHECK_THROWS_WITH_AS(m::load_weights(dir / "future.h5"), doctest::Contains("version 99"),
                         FileError);
}

TEST_CASE("a tensor outside the spec's layout is refused by name, not ignored (issue 14)") {
    ScratchDir dir;
    m::ModelSpec two;
    two.dim = 16;
    two.heads = 2;
    two.blocks = 2;
    const auto w2 = m::zero_weights(two);
    auto one = two;
    one.blocks = 1;
    // A two-block file whose spec was edited to say one block.
    {
        evformer::io::h5::Writer out(dir / "edited.h5");
        out.attr("/", "format", std::string(m::kWeightsFormat));
        out.attr("/", "format_version", m::kWeightsFormatVersion);
        out.attr("/", "spec", one.to_json());
        for (const auto& p : m::parameter_layout(two))
            out.write<float>(p.name, w2.tensors.at(p.name).data, p.shape);
        out.group("provenance");
        out.attr("provenance", "dataset", std::string("fashion-mnist"));
        out.commit();
    }
    CHECK_THROWS_WITH_AS(m::load_weights(dir / "edited.h5"),
                         doctest::Contains("unexpected tensor 'blocks/1/"), FileError);
    // A stray dataset at the root or deep in a known group is refused too; provenance is not a
    // tensor and may hold anything.
    const auto w1 = m::zero_weights(one);
    for (const std::string stray : {"notes", "sps/conv0/weight_orig", "head/extra/scale"}) {
        CAPTURE(stray);
        evformer::io::h5::Writer out(dir / "stray.h5");
        out.attr("/", "format", std::string(m::kWeightsFormat));
        out.attr("/", "format_version", m::kWeightsFormatVersion);
        out.attr("/", "spec", one.to_json());
        for (const auto& p : m::parameter_layout(one))
            out.write<float>(p.name, w1.tensors.at(p.name).data, p.shape);
        out.write<float>(stray, std::vector<float>{1.f}, {1});
        out.write<float>("provenance/loss_curve", std::vector<float>{1.f, 0.5f}, {2});
        out.commit();
        CHECK_THROWS_WITH_AS(m::load_weights(dir / "stray.h5"),
                             doctest::Contains(("unexpected tensor '" + stray + "'").c_str()),
                             FileError);
    }
    {
        evformer::io::h5::Writer out(dir / "prov.h5");
        out.attr("/", "format", std::string(m::kWeightsFormat));
        out.attr("/", "format_version", m::kWeightsFormatVersion);
        out.attr("/", "spec", one.to_json());
        for (const auto& p : m::parameter_layout(one))
            out.write<float>(p.name, w1.tensors.at(p.name).data, p.shape);
        out.write<float>("provenance/loss_curve", std::vector<float>{1.f, 0.5f}, {2});
        out.commit();
    }
    CHECK(m::load_weights(dir / "prov.h5").spec.blocks == 1);
}

TEST_CASE("the layout derived from the graph keeps the file's tensor order (format version 1)") {
    m::ModelSpec spec;
    spec.blocks = 1;
    std::vector<std::string> names;
    for (const auto& p : m::parameter_layout(spec)) names.push_back(p.name);
    std::vector<std::string> expected;
    auto bn = [&](const std::string& prefix) {
        for (const char* s : {"weight", "bias", "running_mean", "running_var"})
            expected.push_back(prefix + "/" + s);
    };
    for (int i = 0; i < 4; ++i) {
        expected.push_back("sps/conv" + std::to_string(i) + "/weight");
        bn("sps/bn" + std::to_string(i));
    }
    expected.push_back("sps/rpe_conv/weight");
    bn("sps/rpe_bn");
    for (const char* x : {"q", "k", "v", "proj"}) {
        expected.push_back(std::string("blocks/0/attn/") + x + "_linear/weight");
        expected.push_back(std::string("blocks/0/attn/") + x + "_linear/bias");
        bn(std::string("blocks/0/attn/") + x + "_bn");
    }
    expected.push_back("blocks/0/attn/c_mean");
    expected.push_back("blocks/0/attn/v_bar");
    for (const char* x : {"fc1", "fc2"}) {
        expected.push_back(std::string("blocks/0/mlp/") + x + "_linear/weight");
        expected.push_back(std::string("blocks/0/mlp/") + x + "_linear/bias");
        bn(std::string("blocks/0/mlp/") + x + "_bn");
    }
    expected.push_back("head/weight");
    expected.push_back("head/bias");
    CHECK(names == expected);
}

TEST_CASE("files written before the graph change load unchanged; the variant is stored once") {
    ScratchDir dir;
    const std::string shipped = std::string(EVFORMER_SOURCE_DIR) + "/examples/models/fmnist-ssa.h5";
    {
        // the shipped file predates the change: it still has the root attribute `variant`
        evformer::io::h5::Reader r(shipped);
        REQUIRE(r.has_attr("/", "variant"));
        CHECK(r.attr_string("/", "variant") == "ssa");
    }
    const auto w = m::load_weights(shipped);
    CHECK(w.spec.attention.variant == m::AttentionVariant::ssa);
    m::save_weights(w, dir / "again.h5");
    evformer::io::h5::Reader r(dir / "again.h5");
    CHECK_FALSE(r.has_attr("/", "variant"));
    CHECK(r.attr_string("/", "spec").find("\"variant\": \"ssa\"") != std::string::npos);
    const auto back = m::load_weights(dir / "again.h5");
    CHECK(back.tensors == w.tensors);
    CHECK(back.spec == w.spec);
}
