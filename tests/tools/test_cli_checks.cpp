// End-to-end tests of the checks every subcommand makes before working (issue 14): outputs that
// are inputs or other outputs, count options, output locations that cannot be written.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "evformer/io/events.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/weights.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
namespace m = evformer::models;
using evformer::test::count_lines;
using evformer::test::read_bytes;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;

namespace {

bool have_fmnist() {
    return fs::exists(std::string(EVFORMER_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz");
}

// A small random model (one block, D = 16) written by the library.
fs::path small_model(const ScratchDir& dir, const std::string& name = "w.h5") {
    m::ModelSpec spec;
    spec.blocks = 1;
    spec.dim = 16;
    spec.heads = 2;
    spec.time_steps = 2;
    const auto path = dir / name;
    m::save_weights(m::random_weights(spec, 3), path);
    return path;
}

fs::path small_events(const ScratchDir& dir) {
    const auto path = dir / "rec.bin";
    std::vector<evformer::io::Event> ev;
    for (int i = 0; i < 30; ++i)
        ev.push_back(
            {i * 100, std::uint16_t(i % 34), std::uint16_t((i * 5) % 34), std::uint8_t(i % 2)});
    evformer::io::write_event_file(path, ev);
    return path;
}

// The command was refused as a usage error, in one line naming `what`, and left `file` as it was.
void check_refused(const evformer::test::CommandResult& r, const std::string& what,
                   const fs::path& file, const std::vector<unsigned char>& before) {
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find(what) != std::string::npos);
    CHECK(read_bytes(file) == before);
}

}  // namespace

TEST_CASE("run --raster onto the weights file is refused before any work (issue 14 example)") {
    ScratchDir dir;
    const auto model = small_model(dir);
    const auto before = read_bytes(model);
    check_refused(run_evformer("run " + model.string() + " --limit 1 --raster " + model.string()),
                  "--raster", model, before);
    // the same file through "./", "..", and a symbolic link
    const auto cwd = "cd " + dir.path().string() + " && ";
    check_refused(
        evformer::test::run_command(cwd + EVFORMER_BINARY + " run w.h5 --limit 1 --raster ./w.h5"),
        "same file", model, before);
    fs::create_directories(dir / "sub");
    check_refused(run_evformer("run " + model.string() + " --limit 1 --json " +
                               (dir / "sub" / ".." / "w.h5").string()),
                  "--json", model, before);
    fs::create_symlink(model, dir / "link.h5");
    check_refused(
        run_evformer("run " + (dir / "link.h5").string() + " --limit 1 --csv " + model.string()),
        "--csv", model, before);
    fs::create_hard_link(model, dir / "hard.h5");
    check_refused(
        run_evformer("run " + model.string() + " --limit 1 --raster " + (dir / "hard.h5").string()),
        "--raster", model, before);
}

TEST_CASE("events convert onto its own input is refused (issue 14 example)") {
    ScratchDir dir;
    const auto rec = small_events(dir);
    const auto before = read_bytes(rec);
    check_refused(
        run_evformer("events convert " + rec.string() + " " + rec.string() + " --to hdf5"), "input",
        rec, before);
    check_refused(run_evformer("events frames " + rec.string() + " -o " + rec.string()), "--output",
                  rec, before);
}

TEST_CASE("two outputs of one command may not be the same file") {
    ScratchDir dir;
    const auto model = small_model(dir);
    const auto out = (dir / "r.json").string();
    auto r = run_evformer("run " + model.string() + " --limit 1 --json " + out + " --csv " + out);
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("--json") != std::string::npos);
    CHECK(r.err.find("--csv") != std::string::npos);
    CHECK_FALSE(fs::exists(out));
    auto t = run_evformer("train --epochs 1 --out " + (dir / "m.h5").string() + " --checkpoint " +
                          (dir / "." / "m.h5").string());
    CHECK(t.exit_code == 2);
    CHECK(t.err.find("--checkpoint") != std::string::npos);
    auto p =
        run_evformer("profile " + model.string() + " --limit 1 --raster " + out + " --json " + out);
    CHECK(p.exit_code == 2);
    CHECK(p.err.find("--raster") != std::string::npos);
}

TEST_CASE("grad, train and bench run refuse outputs onto their inputs") {
    ScratchDir dir;
    const auto model = small_model(dir);
    const auto before = read_bytes(model);
    check_refused(run_evformer("grad " + model.string() + " --out " + model.string()), "--out",
                  model, before);
    check_refused(run_evformer("bench run " + model.string() + " --save-weights " + model.string()),
                  "--save-weights", model, before);
    const auto cfg = dir / "cfg.json";
    evformer::test::write_bytes(cfg, {'{', '}'});
    const auto cfg_before = read_bytes(cfg);
    check_refused(
        run_evformer("train --config " + cfg.string() + " --epochs 1 --out " + cfg.string()),
        "--config", cfg, cfg_before);
    if (have_fmnist()) {
        // a file inside the dataset folder counts as an input
        const auto images = fs::path(EVFORMER_FMNIST_DIR) / "t10k-images-idx3-ubyte.gz";
        auto r = run_evformer("run " + model.string() + " --limit 1 --json " + images.string());
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("--data") != std::string::npos);
    }
}

TEST_CASE("negative and impossible counts are usage errors in one line (issue 14 examples)") {
    ScratchDir dir;
    const auto model = small_model(dir).string();
    for (const auto& args :
         {"run " + model + " --threads -2", "run " + model + " --limit -1",
          "run " + model + " --limit 1.5", "run " + model + " --raster-samples 0",
          "eval " + model + " --limit -1", "eval " + model + " --batch 0",
          "grad " + model + " --first -3 --out g.h5", "profile " + model + " --threads -1",
          std::string("train --epochs -1"), std::string("train --limit-train -64"),
          std::string("train --time-steps 0"), std::string("train --seed -5"),
          std::string("events frames x.bin --T -1"), std::string("bench train --steps -1"),
          "run " + model + " --threads 99999999999999999999",
          "eval " + model + " --threads 5000"}) {
        CAPTURE(args);
        const auto r = run_evformer(args);
        CHECK(r.exit_code == 2);
        CHECK(count_lines(r.err) == 1);
        CHECK(r.err.find("--") != std::string::npos);
    }
}

TEST_CASE("--threads above the hardware is allowed and reported as the number used") {
    if (!have_fmnist()) return;
    ScratchDir dir;
    const auto model = small_model(dir).string();
    const auto r = run_evformer("run " + model + " --limit 2 --threads 4096 --json -");
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("--threads 4096 is more than") != std::string::npos);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["threads"].get<std::size_t>() < 4096);
    CHECK(j["threads"].get<std::size_t>() >= 1);
}

TEST_CASE("output locations are made ready before the work (issue 14 example)") {
    if (!have_fmnist()) return;
    ScratchDir dir;
    const auto model = small_model(dir).string();
    // a missing folder is created for every output alike
    const auto json = dir / "out" / "missing" / "r.json";
    const auto csv = dir / "csv" / "r.csv";
    auto r = run_evformer("run " + model + " --limit 2 --json " + json.string() + " --csv " +
                          csv.string());
    REQUIRE(r.exit_code == 0);
    CHECK(fs::exists(json));
    CHECK(fs::exists(csv));
    // a location that cannot be written fails at once, before the simulation
    evformer::test::write_bytes(dir / "plain", {'x'});
    const auto bad = (dir / "plain" / "r.json").string();
    auto b = run_evformer("run " + model + " --json " + bad);
    CHECK(b.exit_code == 1);
    CHECK(count_lines(b.err) == 1);
    CHECK(b.err.find("--json") != std::string::npos);
    CHECK(b.out.empty());  // no table: nothing was simulated
    auto folder = run_evformer("grad " + model + " --out " + dir.path().string());
    CHECK(folder.exit_code == 1);
    CHECK(folder.err.find("folder") != std::string::npos);
    if (::geteuid() != 0) {
        fs::create_directories(dir / "ro");
        ::chmod((dir / "ro").c_str(), 0555);
        auto ro = run_evformer("profile " + model + " --limit 1 --raster " +
                               (dir / "ro" / "r.h5").string());
        CHECK(ro.exit_code == 1);
        CHECK(ro.err.find("not writable") != std::string::npos);
        auto t = run_evformer("train --epochs 1 --limit-train 16 --batch 16 --out " +
                              (dir / "ro" / "m.h5").string());
        CHECK(t.exit_code == 1);
        CHECK(t.err.find("--out") != std::string::npos);
        CHECK(t.out.empty());
        ::chmod((dir / "ro").c_str(), 0755);
    }
}

TEST_CASE("a weights file with tensors outside its spec is refused by every command") {
    ScratchDir dir;
    m::ModelSpec two;
    two.blocks = 2;
    two.dim = 16;
    two.heads = 2;
    two.time_steps = 2;
    const auto w = m::random_weights(two, 4);
    auto one = two;
    one.blocks = 1;
    const auto edited = (dir / "edited.h5").string();
    {
        evformer::io::h5::Writer out(edited);
        out.attr("/", "format", std::string(m::kWeightsFormat));
        out.attr("/", "format_version", m::kWeightsFormatVersion);
        out.attr("/", "spec", one.to_json());  // "blocks": 1, while the tensors are of 2 blocks
        for (const auto& p : m::parameter_layout(two))
            out.write<float>(p.name, w.tensors.at(p.name).data, p.shape);
        out.commit();
    }
    for (const auto& args : {"run " + edited + " --limit 1", "eval " + edited + " --limit 1",
                             "profile " + edited + " --limit 1 --raster ''",
                             "grad " + edited + " --out " + (dir / "g.h5").string()}) {
        CAPTURE(args);
        const auto r = run_evformer(args);
        CHECK(r.exit_code == 1);
        CHECK(count_lines(r.err) == 1);
        CHECK(r.err.find("unexpected tensor 'blocks/1/") != std::string::npos);
    }
}

TEST_CASE("NaN and Inf logits are reported by grad, run, eval and profile (issue 14 example)") {
    if (!have_fmnist()) return;
    ScratchDir dir;
    m::ModelSpec spec;
    spec.blocks = 1;
    spec.dim = 16;
    spec.heads = 2;
    spec.time_steps = 2;
    auto w = m::random_weights(spec, 3);
    for (auto& v : w.tensors.at("head/weight").data) v = 3e38f;  // finite, so the file loads
    const auto model = (dir / "huge.h5").string();
    m::save_weights(w, model);
    const auto grads = dir / "g.h5";
    auto g = run_evformer("grad " + model + " --batch 4 --out " + grads.string());
    CHECK(g.exit_code == 1);
    CHECK(count_lines(g.err) == 1);
    CHECK(g.err.find("4 of 4 samples gave NaN or infinite logits") != std::string::npos);
    CHECK_FALSE(fs::exists(grads));

    auto r = run_evformer("run " + model + " --limit 3 --json -");
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("warning: " + model + ": 3 of 3 samples gave NaN or infinite logits") !=
          std::string::npos);
    CHECK(nlohmann::json::parse(r.out)["nonfinite_samples"] == 3);
    auto table = run_evformer("run " + model + " --limit 2");
    REQUIRE(table.exit_code == 0);
    CHECK(table.out.find("WARNING: 2 of 2 samples") != std::string::npos);

    auto e = run_evformer("eval " + model + " --limit 5 --json -");
    REQUIRE(e.exit_code == 0);
    CHECK(e.err.find("5 of 5 samples gave NaN or infinite logits") != std::string::npos);
    CHECK(nlohmann::json::parse(e.out)["nonfinite_samples"] == 5);

    auto p = run_evformer("profile " + model + " --limit 2 --raster ''");
    REQUIRE(p.exit_code == 0);
    CHECK(p.err.find("2 of 2 samples gave NaN or infinite logits") != std::string::npos);

    // sound weights give no warning
    const auto fine = small_model(dir).string();
    auto ok = run_evformer("eval " + fine + " --limit 5");
    REQUIRE(ok.exit_code == 0);
    CHECK(ok.err.empty());
}

TEST_CASE("resuming a finished run says there is nothing to do; a bad epochs_done is refused") {
    if (!have_fmnist()) return;
    ScratchDir dir;
    const auto model = dir / "m.h5";
    const std::string train =
        "train --dim 16 --heads 2 --blocks 1 --time-steps 2 --epochs 1 "
        "--batch 16 --limit-train 32 --out " +
        model.string();
    REQUIRE(run_evformer(train).exit_code == 0);
    const auto weights = read_bytes(model);
    const auto ckpt = read_bytes(model.string() + ".ckpt");
    auto again = run_evformer(train + " --resume");
    CHECK(again.exit_code == 0);
    CHECK(again.out.find("nothing to do") != std::string::npos);
    CHECK(again.out.find("1 of 1 epochs") != std::string::npos);
    // no negative progress anywhere (the scratch folder's random name may hold "-100" itself)
    std::string text = again.out;
    for (auto at = text.find(dir.path().string()); at != std::string::npos;
         at = text.find(dir.path().string()))
        text.erase(at, dir.path().string().size());
    CHECK(text.find("-100") == std::string::npos);
    CHECK(read_bytes(model) == weights);
    CHECK(read_bytes(model.string() + ".ckpt") == ckpt);
    // fewer epochs asked than the checkpoint holds: nothing to do either
    {
        evformer::io::h5::Writer out(dir / "neg.ckpt");
        out.attr("/", "format", std::string("evformer-checkpoint"));
        out.attr("/", "format_version", std::int64_t{1});
        out.attr("/", "epochs_done", std::int64_t{-1});
        out.commit();
    }
    auto neg = run_evformer(train + " --resume --checkpoint " + (dir / "neg.ckpt").string());
    CHECK(neg.exit_code == 1);
    CHECK(count_lines(neg.err) == 1);
    CHECK(neg.err.find("'epochs_done' is -1") != std::string::npos);
    CHECK(neg.out.find("done:") == std::string::npos);
}

TEST_CASE("report and option faults of issue 14 item 9") {
    ScratchDir dir;
    const auto model = small_model(dir).string();
    // energy options name the option and the unit
    auto en = run_evformer("run " + model + " --sop-energy-fj -3");
    CHECK(en.exit_code == 2);
    CHECK(count_lines(en.err) == 1);
    CHECK(en.err.find("--sop-energy-fj -3") != std::string::npos);
    CHECK(en.err.find("femtojoules") != std::string::npos);
    auto en2 = run_evformer("profile " + model + " --mac-energy-pj nan");
    CHECK(en2.exit_code == 2);
    CHECK(en2.err.find("--mac-energy-pj") != std::string::npos);
    CHECK(en2.err.find("picojoules") != std::string::npos);
    // an unknown subcommand is named, at the top and within a group
    auto sub = run_evformer("frobnicate x");
    CHECK(sub.exit_code == 2);
    CHECK(count_lines(sub.err) == 1);
    CHECK(sub.err.find("unknown subcommand 'frobnicate'") != std::string::npos);
    CHECK(sub.err.find("run") != std::string::npos);
    auto sub2 = run_evformer("events convrt a b");
    CHECK(sub2.exit_code == 2);
    CHECK(sub2.err.find("'convrt' of 'events'") != std::string::npos);
    // two outputs on stdout would mix formats
    for (const auto& args : {"run " + model + " --json - --csv -",
                             "profile " + model + " --json - --csv - --raster ''"}) {
        const auto r = run_evformer(args);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("stdout") != std::string::npos);
        CHECK(r.out.empty());
    }
    // raster options without --raster
    for (const auto& args :
         {"run " + model + " --raster-layers sps/lif0", "run " + model + " --raster-samples 2"}) {
        const auto r = run_evformer(args);
        CHECK(r.exit_code == 2);
        CHECK(count_lines(r.err) == 1);
        CHECK(r.err.find("--raster") != std::string::npos);
    }
}

TEST_CASE("CSV fields are quoted, the head's firing rate is null, empty classes say so") {
    if (!have_fmnist()) return;
    ScratchDir dir;
    const auto model = small_model(dir, "a,\"b\".h5").string();
    const auto quoted = "'" + model + "'";
    auto csv = run_evformer("run " + quoted + " --limit 2 --csv -");
    REQUIRE(csv.exit_code == 0);
    std::string escaped;
    for (char c : model) escaped += c == '"' ? std::string("\"\"") : std::string(1, c);
    const auto first_row = csv.out.substr(csv.out.find('\n') + 1);
    CHECK(first_row.find("\"" + escaped + "\",") == 0);
    // the head row has empty spikes and firing-rate fields
    CHECK(csv.out.find(",head,") != std::string::npos);
    const auto head = csv.out.substr(csv.out.find(",head,"));
    CHECK(head.find(",head,10,,,") == 0);

    auto j = run_evformer("run " + quoted + " --limit 2 --json -");
    REQUIRE(j.exit_code == 0);
    const auto report = nlohmann::json::parse(j.out);
    CHECK(report["layers"].back()["name"] == "head");
    CHECK(report["layers"].back()["firing_rate"].is_null());
    CHECK(report["layers"].back()["spikes"].is_null());
    CHECK(report["layers"][0]["firing_rate"].is_number());

    // the first five test images are of classes 9, 2, 1, 1, 6
    auto e = run_evformer("eval " + quoted + " --limit 5");
    REQUIRE(e.exit_code == 0);
    CHECK(e.out.find("0: no samples") != std::string::npos);
    CHECK(e.out.find("1: no samples") == std::string::npos);
    const auto ej = dir / "eval" / "e.json";
    auto ef = run_evformer("eval " + quoted + " --limit 5 --json " + ej.string());
    REQUIRE(ef.exit_code == 0);
    const auto ejs = nlohmann::json::parse(
        std::string(reinterpret_cast<const char*>(read_bytes(ej).data()), read_bytes(ej).size()));
    CHECK(ejs["per_class"][0].is_null());
    CHECK(ejs["per_class"][1].is_number());
    CHECK(ejs["per_class_samples"][1] == 2);
    CHECK(ef.out.find("per class") != std::string::npos);  // the text still goes to stdout
}

TEST_CASE("every --json takes a file, '-' is stdout (one convention across subcommands)") {
    ScratchDir dir;
    const auto rec = small_events(dir);
    const auto info = dir / "info.json";
    auto r = run_evformer("events info " + rec.string() + " --json " + info.string());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("format") != std::string::npos);  // the text report
    const auto bytes = read_bytes(info);
    const auto j = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
    CHECK(j[0]["events"] == 30);
    auto s = run_evformer("events info --json - " + rec.string());
    REQUIRE(s.exit_code == 0);
    CHECK(nlohmann::json::parse(s.out)[0]["events"] == 30);
    // --json onto the recording itself is refused
    const auto before = read_bytes(rec);
    check_refused(run_evformer("events info " + rec.string() + " --json " + rec.string()), "--json",
                  rec, before);
    for (const char* cmd : {"eval", "data info", "events info", "bench run", "bench train",
                            "bench events", "run", "profile"}) {
        CAPTURE(cmd);
        const auto h = run_evformer(std::string(cmd) + " --help");
        CHECK(h.out.find("--json TEXT") != std::string::npos);
        CHECK(h.out.find("'-' = stdout") != std::string::npos);
    }
}

TEST_CASE("counts in a training config file are checked like the flags") {
    ScratchDir dir;
    for (const std::string text : {R"({"epochs": -1})", R"({"limit_train": -64})",
                                   R"({"batch": 1.5})", R"({"model": {"blocks": -2}})"}) {
        CAPTURE(text);
        const auto cfg = dir / "cfg.json";
        evformer::test::write_bytes(cfg, std::vector<unsigned char>(text.begin(), text.end()));
        const auto r = run_evformer("train --config " + cfg.string());
        CHECK(r.exit_code == 2);
        CHECK(count_lines(r.err) == 1);
        CHECK(r.err.find("expected a whole number >= 0") != std::string::npos);
    }
}

TEST_CASE("a file of the default event dataset counts as an input when --data is not given") {
    const fs::path source{EVFORMER_SOURCE_DIR};
    const auto labels = source / "examples/data/nmnist_test100/labels.txt";
    if (!fs::exists(labels)) return;
    const auto before = read_bytes(labels);
    const auto r = evformer::test::run_command(
        "cd " + source.string() + " && " + EVFORMER_BINARY +
        " run /nonexistent/model.h5 --json examples/data/nmnist_test100/labels.txt");
    check_refused(r, "--data", labels, before);
    // and --test-data of train is an input too
    ScratchDir dir;
    const auto t =
        run_evformer("train --data fashion-mnist --test-data " + labels.parent_path().string() +
                     " --epochs 1 --out " + labels.string());
    check_refused(t, "--test-data", labels, before);
}
