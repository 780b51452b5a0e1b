// NIR through the command line: `nir info` (table and JSON, problems, exit codes), `nir convert`
// of a NIR file and of an evformer model, `run GRAPH.nir` on the shipped recordings, and the
// one-line errors for broken files and options.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support.hpp"

using evformer::test::run_evformer;
using evformer::test::ScratchDir;
namespace fs = std::filesystem;

namespace {

const fs::path source = EVFORMER_SOURCE_DIR;
const std::string cnn = (source / "examples/nir/cnn_sinabs.nir").string();
const std::string braille = (source / "examples/nir/braille_noDelay_bias_zero.nir").string();

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("nir info prints nodes, types, shapes, parameter counts, edges and problems") {
    const auto r = run_evformer("nir info " + cnn);
    REQUIRE(r.exit_code == 0);
    CHECK(has(r.out, "NIR 0.2.0, 15 nodes, 14 edges, 57830 parameters"));
    CHECK(has(r.out, "Conv2d"));
    CHECK(has(r.out, "16x16x16"));
    CHECK(has(r.out, "input -> 0"));
    CHECK(has(r.out, "problems: none"));
    const auto j = run_evformer("nir info " + cnn + " --json");
    REQUIRE(j.exit_code == 0);
    const auto doc = nlohmann::json::parse(j.out);
    CHECK(doc["version"] == "0.2.0");
    CHECK(doc["nodes"].size() == 15);
    CHECK(doc["edges"].size() == 14);
    CHECK(doc["problems"].empty());
    // in data-flow order, not HDF5's name order ("10" before "2")
    std::vector<std::string> names;
    for (const auto& n : doc["nodes"]) names.push_back(n["name"]);
    CHECK(names == std::vector<std::string>{"input", "0", "1", "2", "3", "4", "5", "6", "7", "8",
                                            "9", "10", "11", "12", "output"});
    CHECK(doc["edges"][0] == nlohmann::json::array({"input", "0"}));
    CHECK(doc["edges"][13] == nlohmann::json::array({"12", "output"}));
    // the Braille RNN at dt = 1 ms: τ_syn = 0.22 ms cannot be stepped; a problem, exit 1
    const auto b = run_evformer("nir info " + braille);
    CHECK(b.exit_code == 1);
    CHECK(has(b.out,
              "problem: graph: node 'lif1.lif' (cuba_lif): dt (0.001 s) exceeds the "
              "synaptic time constant"));
    CHECK(run_evformer("nir info " + braille + " --dt 100").exit_code == 0);
}

TEST_CASE("run GRAPH.nir classifies the shipped N-MNIST recordings with the NIR paper's CNN") {
    const auto r = run_evformer("run " + cnn + " --T 320 --json -");
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["variant"] == "nir");
    CHECK(j["samples"] == 100);
    CHECK(j["correct"].get<int>() >= 95);
    CHECK(j["time_steps"] == 320);
    REQUIRE(j["layers"].size() == 6);
    CHECK(j["layers"][0]["name"] == "1");
    CHECK(j["per_sample"]["sops"].get<double>() > 1e6);
    CHECK(j["per_sample"]["macs"] == 0);
}

TEST_CASE("nir convert writes a NIR graph back and a Spikformer as NIR, which run the same") {
    ScratchDir dir;
    const auto out = (dir / "cnn.nir").string();
    REQUIRE(run_evformer("nir convert " + cnn + " " + out).exit_code == 0);
    const auto a =
        nlohmann::json::parse(run_evformer("run " + cnn + " --T 60 --limit 10 --json -").out);
    const auto b =
        nlohmann::json::parse(run_evformer("run " + out + " --T 60 --limit 10 --json -").out);
    CHECK(a["per_sample"]["sops"] == b["per_sample"]["sops"]);
    CHECK(a["per_sample"]["spikes"] == b["per_sample"]["spikes"]);
    CHECK(a["correct"] == b["correct"]);
    const auto model = (source / "examples/models/nmnist-ssa-bin.h5").string();
    const auto sf = (dir / "sf.nir").string();
    REQUIRE(run_evformer("nir convert " + model + " " + sf).exit_code == 0);
    const auto h5 =
        nlohmann::json::parse(run_evformer("run " + model + " --limit 10 --json -").out);
    const auto nir = nlohmann::json::parse(
        run_evformer("run " + sf + " --split-by number --T 16 --limit 10 --json -").out);
    CHECK(h5["per_sample"]["sops"] == nir["per_sample"]["sops"]);
    CHECK(h5["correct"] == nir["correct"]);
}

TEST_CASE("broken NIR files and options give one line and a non-zero exit") {
    ScratchDir dir;
    {  // truncated HDF5
        std::ifstream in(cnn, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream(dir / "half.nir", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
        const auto r = run_evformer("nir info " + (dir / "half.nir").string());
        CHECK(r.exit_code == 1);
        CHECK(has(r.err, "half.nir"));
        const auto run = run_evformer("run " + (dir / "half.nir").string());
        CHECK(run.exit_code == 1);
    }
    // --T belongs to NIR graphs only
    const auto t =
        run_evformer("run " + (source / "examples/models/nmnist-ssa-bin.h5").string() + " --T 8");
    CHECK(t.exit_code != 0);
    CHECK(has(t.err, "--T is the number of steps of a NIR graph"));
    CHECK(run_evformer("run " + cnn + " --T 0").exit_code == 2);
    // a NIR graph on images
    const auto img = run_evformer("run " + cnn + " --data fashion-mnist");
    CHECK(img.exit_code == 2);  // a ConfigError: the command does not fit the data
    CHECK(has(img.err, "a NIR graph runs on event recordings"));
}
