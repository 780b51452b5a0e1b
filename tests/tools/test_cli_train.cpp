#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "evformer/io/h5.hpp"
#include "evformer/models/weights.hpp"
#include "stream_child.hpp"
#include "support.hpp"

using evformer::test::count_lines;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;

TEST_CASE("train --help lists the training settings") {
    const auto r = run_evformer("train --help");
    CHECK(r.exit_code == 0);
    for (const char* flag : {"--epochs", "--batch", "--lr", "--resume", "--config", "--variant"})
        CHECK(r.out.find(flag) != std::string::npos);
}

TEST_CASE("eval on a missing weights file gives one line on stderr and exit code 1") {
    const auto r = run_evformer("eval /nonexistent/model.h5 --limit 10");
    CHECK(r.exit_code == 1);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("/nonexistent/model.h5") != std::string::npos);
}

TEST_CASE("eval and train with a bad option are usage errors") {
    const auto e = run_evformer("eval model.h5 --frobnicate 3");
    CHECK(e.exit_code == 2);
    CHECK(count_lines(e.err) == 1);
    const auto t = run_evformer("train --variant nonsense --epochs 1");
    CHECK(t.exit_code == 2);
    CHECK(count_lines(t.err) == 1);
    CHECK(t.err.find("ssa-bin") != std::string::npos);
}

TEST_CASE("train with a bad config file names the key") {
    ScratchDir dir;
    const auto cfg = dir / "cfg.json";
    evformer::test::write_bytes(cfg, {'{', '"', 'x', '"', ':', '1', '}'});
    const auto r = run_evformer("train --config " + cfg.string());
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'x'") != std::string::npos);
}

TEST_CASE("train records its command line; grad writes the loss and every gradient") {
    const std::string data = EVFORMER_FMNIST_DIR;
    if (!std::filesystem::exists(std::filesystem::path(data) / "train-labels-idx1-ubyte.gz"))
        return;
    ScratchDir dir;
    const auto model = dir / "m.h5";
    const std::string train_args = "train --data " + data +
                                   " --dim 16 --heads 2 --blocks 1 --time-steps 2 --epochs 1 "
                                   "--batch 16 --limit-train 32 --out " +
                                   model.string();
    const auto t = run_evformer(train_args);
    REQUIRE(t.exit_code == 0);
    const auto w = evformer::models::load_weights(model);
    CHECK(w.provenance.command == std::string(EVFORMER_BINARY) + " " + train_args);

    const auto grads = dir / "g.h5";
    const auto g = run_evformer("grad " + model.string() + " --data " + data + " --batch 4 --out " +
                                grads.string());
    REQUIRE(g.exit_code == 0);
    evformer::io::h5::Reader r(grads);
    CHECK(r.attr_string("/", "format") == "evformer-gradients");
    CHECK(r.attr_number("/", "loss") > 0);
    for (const auto& p : evformer::models::parameter_layout(w.spec)) {
        using Kind = evformer::models::ParameterInfo::Kind;
        const bool trainable = p.kind == Kind::weight || p.kind == Kind::bias ||
                               p.kind == Kind::bn_weight || p.kind == Kind::bn_bias;
        CAPTURE(p.name);
        CHECK(r.is_dataset(p.name) == trainable);
    }

    const auto bad = run_evformer("grad " + model.string() + " --data " + data +
                                  " --first 59999 --batch 4 --out " + grads.string());
    CHECK(bad.exit_code != 0);
    CHECK(count_lines(bad.err) == 1);
    CHECK(bad.err.find("outside") != std::string::npos);
}

TEST_CASE(
    "train bins recordings by duration (the bins of live streams) with --dt; the model keeps "
    "its binning for run, eval and stream serve") {
    ScratchDir dir;
    const std::string data = std::string(EVFORMER_SOURCE_DIR) + "/examples/data/nmnist_test100";
    const auto model = dir / "d.h5";
    const std::string common = "train --data " + data + " --test-data " + data +
                               " --dim 16 --heads 2 --blocks 1 --time-steps 4 --epochs 1 "
                               "--batch 8 --limit-train 16 --threads 1 --out " +
                               model.string();
    const auto t = run_evformer(common + " --split-by duration --dt 10000");
    INFO(t.err);
    REQUIRE(t.exit_code == 0);
    CHECK(t.out.find("(recordings split by duration, dt 10000 us)") != std::string::npos);
    const auto w = evformer::models::load_weights(model);
    CHECK(w.spec.input_split_by == "duration");
    CHECK(w.spec.input_dt_us == 10000);
    // run and eval bin as the model was trained unless told otherwise
    const std::string m = model.string();
    const auto r = run_evformer("run " + m + " --limit 3");
    CHECK(r.out.find("(split by duration, dt 10000 us)") != std::string::npos);
    const auto e = run_evformer("eval " + m + " --limit 3");
    CHECK(e.out.find("(split by duration, dt 10000 us)") != std::string::npos);
    const auto n = run_evformer("run " + m + " --limit 3 --split-by number");
    CHECK(n.out.find("(split by number)") != std::string::npos);
    const auto d = run_evformer("run " + m + " --limit 3 --dt 5000");
    CHECK(d.out.find("(split by duration, dt 5000 us)") != std::string::npos);
    // stream serve takes the model's bin length
    evformer::test::Child server(
        {"stream", "serve", m, "--no-udp", "--tcp-port", "0", "--stats-interval", "60"});
    const auto listening = server.wait_line(
        [](const std::string& l) { return l.find("\"listening\"") != std::string::npos; },
        std::chrono::seconds(20));
    REQUIRE(listening.has_value());
    CHECK(nlohmann::json::parse(*listening)["dt_us"] == 10000);
    server.signal(SIGTERM);
    CHECK(server.wait(std::chrono::seconds(20)) == 0);
    for (const char* bad : {" --split-by duration", " --dt 20000"}) {
        const auto b = run_evformer(common + bad);
        CHECK(b.exit_code == 2);
        CHECK(count_lines(b.err) == 1);
        CHECK(b.err.find("dt") != std::string::npos);
    }
}

TEST_CASE("grad takes event recordings through the sample source (the shipped N-MNIST model)") {
    ScratchDir dir;
    const auto grads = dir / "g.h5";
    const std::string model =
        std::string(EVFORMER_SOURCE_DIR) + "/examples/models/nmnist-ssa-bin.h5";
    const auto g = run_evformer("grad " + model + " --split test --batch 2 --threads 1 --out " +
                                grads.string());
    REQUIRE(g.exit_code == 0);
    evformer::io::h5::Reader r(grads);
    CHECK(r.attr_number("/", "loss") > 0);
    CHECK(r.attr_string("/", "data").find("nmnist_test100") != std::string::npos);
    CHECK(r.is_dataset("sps/conv0/weight"));
    const auto bad =
        run_evformer("grad " + model + " --first 99 --batch 4 --out " + grads.string());
    CHECK(bad.exit_code != 0);
    CHECK(count_lines(bad.err) == 1);
    CHECK(bad.err.find("samples [99, 103) are outside the train split") != std::string::npos);
}
