// CIFAR folders and the model presets through the command line: `data info`, `train --model`
// with the class count taken from the labels, `eval --label`, and their one-line errors.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "evformer/io/h5.hpp"
#include "evformer/models/trainer.hpp"
#include "evformer/models/weights.hpp"
#include "io/cifar_bytes.hpp"
#include "support.hpp"

using evformer::test::count_lines;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;

namespace {

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("data info describes a CIFAR-10 folder, a CIFAR-100 folder and one batch file") {
    ScratchDir dir;
    evformer::test::write_cifar10(dir / "c10");
    evformer::test::write_cifar100(dir / "c100");

    const auto r = run_evformer("data info " + (dir / "c10").string() + " --json -");
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    REQUIRE(j.size() == 2);  // train and test
    CHECK(j[0]["count"] == 10);
    CHECK(j[0]["channels"] == 3);
    CHECK(j[0]["shape"] == nlohmann::json::array({32, 32}));
    CHECK(j[0]["classes"] == 10);
    CHECK(j[0]["per_class"] == nlohmann::json::array({1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
    CHECK(j[0]["channel_mean"].size() == 3);
    CHECK(j[1]["count"] == 3);

    const auto text = run_evformer("data info " + (dir / "c100").string() + " --label coarse");
    REQUIRE(text.exit_code == 0);
    CHECK(has(text.out, "3 images of 3x32x32, 20 classes"));
    CHECK(has(text.out, "per channel: mean"));

    const auto one =
        run_evformer("data info " + (dir / "c100" / "train.bin").string() + " --json -");
    REQUIRE(one.exit_code == 0);
    const auto o = nlohmann::json::parse(one.out);
    CHECK(o["classes"] == 100);
    CHECK(o["count"] == 3);

    // per-class mean images of colour data keep their channels
    const auto h5 = dir / "stats.h5";
    const auto ex = run_evformer("data info " + (dir / "c10").string() + " --split test --export " +
                                 h5.string());
    REQUIRE(ex.exit_code == 0);
    evformer::io::h5::Reader reader(h5);
    CHECK(reader.read<float>("split0/class_mean_image", {10, 3, 32, 32}).size() == 3072 * 10);
}

TEST_CASE("data info on a truncated or mislabelled CIFAR file is one line naming file and byte") {
    ScratchDir dir;
    evformer::test::write_cifar10(dir.path());
    auto bytes = evformer::test::read_bytes(dir / "test_batch.bin");
    bytes.resize(bytes.size() - 10);
    evformer::test::write_bytes(dir / "test_batch.bin", bytes);
    const auto r = run_evformer("data info " + dir.path().string() + " --split test");
    CHECK(r.exit_code == 1);
    CHECK(count_lines(r.err) == 1);
    CHECK(has(r.err, "test_batch.bin: at byte 6146: truncated"));

    bytes = evformer::test::read_bytes(dir / "data_batch_2.bin");
    bytes[3073] = 200;  // the label of record 1
    evformer::test::write_bytes(dir / "data_batch_2.bin", bytes);
    const auto l = run_evformer("data info " + (dir / "data_batch_2.bin").string());
    CHECK(l.exit_code == 1);
    CHECK(count_lines(l.err) == 1);
    CHECK(has(l.err, "data_batch_2.bin: at byte 3073: label 200 of record 1, expected 0..9"));

    const auto c = run_evformer("data info " + dir.path().string() + " --label coarse");
    CHECK(c.exit_code == 2);
    CHECK(count_lines(c.err) == 1);
    CHECK(has(c.err, "CIFAR-100 only"));
}

TEST_CASE("train --model takes the preset's model and recipe and the classes from the labels") {
    ScratchDir dir;
    evformer::test::write_cifar100(dir / "c100");
    const auto model = dir / "m.h5";
    // the preset's Spikformer-4-384 shrunk by flags, so that one step takes a moment
    const auto t =
        run_evformer("train --model spikformer-4-384-cifar --data " + (dir / "c100").string() +
                     " --label coarse --dim 16 --heads 2 --blocks 1 --epochs 1 "
                     "--warmup-epochs 0.5 --batch 2 --out " +
                     model.string());
    REQUIRE_MESSAGE(t.exit_code == 0, t.err);
    CHECK(has(t.out, "training Spikformer-1-16 (2 heads, T = 4"));
    const auto w = evformer::models::load_weights(model);
    CHECK(w.spec.in_channels == 3);
    CHECK(w.spec.in_height == 32);
    CHECK(w.spec.classes == 20);
    CHECK(w.spec.attention.scale == 0.125);
    evformer::io::h5::Reader ck(model.string() + ".ckpt");
    const auto cfg = evformer::models::TrainConfig::from_json(ck.attr_string("/", "config"));
    CHECK(cfg.lr == 5e-4);  // the recipe, where no flag overrides it
    CHECK(cfg.weight_decay == 0.06);
    CHECK(cfg.crop_pad == 4);
    CHECK(cfg.label == "coarse");

    const auto e = run_evformer("eval " + model.string() + " --data " + (dir / "c100").string() +
                                " --label coarse --json -");
    REQUIRE_MESSAGE(e.exit_code == 0, e.err);
    // the engine simulates the colour images event by event (first conv real-valued: MACs)
    const auto run = run_evformer("run " + model.string() + " --data " + (dir / "c100").string() +
                                  " --label coarse --json -");
    REQUIRE_MESSAGE(run.exit_code == 0, run.err);
    const auto report = nlohmann::json::parse(run.out);
    CHECK(report["samples"] == 1);
    const auto fine = run_evformer("eval " + model.string() + " --data " + (dir / "c100").string());
    CHECK(fine.exit_code == 2);
    CHECK(count_lines(fine.err) == 1);
    CHECK(has(fine.err, "the model has 20 classes but the data has 100"));
}

TEST_CASE("train --model names the presets when the name is unknown, and excludes --config") {
    const auto r = run_evformer("train --model spikformer-8-512");
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(has(r.err, "spikformer-2-256-dvs128"));
    const auto c = run_evformer("train --model spikformer-2-64 --config x.json");
    CHECK(c.exit_code == 2);
    CHECK(count_lines(c.err) == 1);
}

TEST_CASE("a preset keeps its input: CIFAR images do not fit the 1x28x28 default model") {
    ScratchDir dir;
    evformer::test::write_cifar10(dir / "c10");
    const auto r =
        run_evformer("train --model spikformer-2-64 --data " + (dir / "c10").string() +
                     " --epochs 1 --warmup-epochs 0 --batch 2 --out " + (dir / "m.h5").string());
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(has(r.err, "the model expects inputs of 1x28x28"));
}

TEST_CASE("a short run of a preset whose warm-up is longer names both settings") {
    ScratchDir dir;
    evformer::test::write_cifar10(dir / "c10");
    const auto r =
        run_evformer("train --model spikformer-4-384-cifar --data " + (dir / "c10").string() +
                     " --epochs 1 --out " + (dir / "m.h5").string());
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(has(r.err, "warmup_epochs = 20 must lie in [0, epochs = 1]"));
}

TEST_CASE("the DVS preset on event recordings keeps its pooling and scale, classes from the data") {
    const std::filesystem::path events = EVFORMER_EVENTS_DATA;
    const auto test100 =
        std::filesystem::path(EVFORMER_SOURCE_DIR) / "examples/data/nmnist_test100";
    if (!std::filesystem::exists(events / "nmnist_train900")) return;
    ScratchDir dir;
    const auto model = dir / "dvs.h5";
    // 34x34 N-MNIST frames at the preset's pooling after all four stages, shrunk by flags
    const auto t =
        run_evformer("train --model spikformer-2-256-dvs128 --data " +
                     (events / "nmnist_train900").string() + " --test-data " + test100.string() +
                     " --input-size 32x32 --dim 16 --heads 2 --blocks 1 --time-steps 2 "
                     "--epochs 1 --warmup-epochs 0 --batch 2 --limit-train 4 --out " +
                     model.string());
    REQUIRE_MESSAGE(t.exit_code == 0, t.err);
    const auto w = evformer::models::load_weights(model);
    CHECK(w.spec.in_channels == 2);
    CHECK(w.spec.in_height == 32);
    CHECK(w.spec.pool_after == std::array<bool, 4>{true, true, true, true});
    CHECK(w.spec.attention.scale == 0.25);
    CHECK(w.spec.classes == 10);
    CHECK(w.spec.time_steps == 2);
}
