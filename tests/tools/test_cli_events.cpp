// End-to-end tests of `evformer events …` and `evformer bench events --help`: good files,
// missing files, bad options and --help.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "evformer/io/events.hpp"
#include "evformer/io/h5.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using evformer::test::count_lines;
using evformer::test::run_evformer;
using evformer::test::ScratchDir;

namespace {

const fs::path data_dir{EVFORMER_EVENTS_DATA};

bool have_data() {
    if (fs::exists(data_dir / "reference_summary.json")) return true;
    MESSAGE("shared event samples not found at " << data_dir.string() << "; skipped");
    return false;
}

std::string q(const fs::path& p) {
    std::string s(1, '\'');
    s.append(p.string()).push_back('\'');
    return s;
}

// A small recording every test can rely on, written by the library itself.
fs::path small_bin(const ScratchDir& dir) {
    const auto path = dir / "small.bin";
    std::vector<evformer::io::Event> ev;
    for (int i = 0; i < 40; ++i)
        ev.push_back(
            {i * 100, std::uint16_t(i % 34), std::uint16_t((i * 7) % 34), std::uint8_t(i % 2)});
    evformer::io::write_event_file(path, ev);
    return path;
}

}  // namespace

TEST_CASE("events info --json reports the documented fields per file") {
    if (!have_data()) return;
    const auto r =
        run_evformer("events info --json - " + q(data_dir / "evt3_gen41_hd_expelliarmus.raw") +
                     " " + q(data_dir / "nmnist_sample_tonic.bin"));
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    REQUIRE(j.size() == 2);
    CHECK(j[0]["format"] == "evt3");
    CHECK(j[0]["width"] == 1280);
    CHECK(j[0]["height"] == 720);
    CHECK(j[0]["events"] == 219596);
    CHECK(j[0]["t_first"] == 11718656);
    CHECK(j[0]["t_last"] == 11727457);
    CHECK(j[0]["n_on"] == 115532);
    CHECK(j[0]["violations"] == 0);
    CHECK(j[1]["format"] == "nmnist");
    CHECK(j[1]["events"] == 4325);
}

TEST_CASE("events info prints a readable summary") {
    ScratchDir dir;
    const auto r = run_evformer("events info " + q(small_bin(dir)));
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("nmnist") != std::string::npos);
    CHECK(r.out.find("40 (20 ON, 20 OFF)") != std::string::npos);
}

TEST_CASE("events convert writes a file that reads back identically") {
    ScratchDir dir;
    const auto in = small_bin(dir);
    for (const char* name : {"out.h5", "out.raw", "out2.bin"}) {
        const auto r = run_evformer("events convert --sensor 34x34 " + q(in) + " " + q(dir / name));
        INFO(name << ": " << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(evformer::io::read_event_file(dir / name) == evformer::io::read_event_file(in));
    }
}

TEST_CASE("events frames writes a [T, 2, H, W] tensor") {
    ScratchDir dir;
    const auto out = dir / "f.h5";
    const auto r = run_evformer("events frames " + q(small_bin(dir)) +
                                " --sensor 34x34 --T 4 --size 17x17 -o " + q(out));
    REQUIRE(r.exit_code == 0);
    evformer::io::h5::Reader h(out);
    CHECK(h.shape("frames") == evformer::io::h5::Shape{4, 2, 17, 17});
    double total = 0;
    for (float v : h.read<float>("frames")) total += v;
    CHECK(total == 40);
}

TEST_CASE("events commands fail with one line on stderr for missing files and bad options") {
    ScratchDir dir;
    const auto bin = q(small_bin(dir));
    const auto missing = q(dir / "missing.raw");
    const std::vector<std::vector<std::string>> cases = {
        {"events info", missing},
        {"events convert", missing, q(dir / "o.h5")},
        {"events frames", bin, "--T 0 --sensor 34x34"},
        {"events frames", bin, "--crop 1,2,3"},
        {"events info --bogus x"},
        {"events info --format nosuch", bin},
        {"events convert", bin, q(dir / "o.xyz")},
    };
    for (const auto& parts : cases) {
        std::string args;
        for (const auto& part : parts) args.append(part).append(" ");
        INFO(args);
        const auto r = run_evformer(args);
        CHECK(r.exit_code != 0);
        CHECK(r.err.rfind("evformer: error:", 0) == 0);
        CHECK(count_lines(r.err) == 1);
    }
}

TEST_CASE("events and bench events subcommands have --help") {
    for (const char* args : {"events --help", "events info --help", "events convert --help",
                             "events frames --help", "bench --help", "bench events --help"}) {
        INFO(args);
        const auto r = run_evformer(args);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("Usage") != std::string::npos);
    }
}
