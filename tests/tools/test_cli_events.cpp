// End-to-end tests of `evformer events …` and `evformer bench events --help`: good files,
// missing files, bad options and --help.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "evformer/io/events.hpp"
#include "evformer/io/h5.hpp"
#include "io/events_bytes.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using evformer::io::Event;
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

// A hand-built EVT 2.1 recording (640×480) in the plain or the legacy word order: two vectors,
// a skipped trigger, an unknown word and a lone event after a second TIME_HIGH.
fs::path evt21_raw(const ScratchDir& dir, bool legacy) {
    using namespace evformer::test;
    const auto path = dir / (legacy ? "legacy21.raw" : "plain21.raw");
    const std::string header = legacy ? "% evt 2.1\n% geometry 640x480\n% end\n"
                                      : "% format EVT21;height=480;width=640\n% end\n";
    write_bytes(path, evt21_file(header,
                                 {
                                     evt21_time_high(2),                  // t = 128
                                     evt21_cd(1, 3, 32, 20, 0x80000005),  // ON x 32, 34, 63
                                     evt21_cd(0, 10, 64, 7, 0x3),         // OFF x 64, 65
                                     (std::uint64_t{0xA} << 60) | 1,      // EXT_TRIGGER
                                     std::uint64_t{0x3} << 60,            // unknown word
                                     evt21_time_high(3),                  // t = 192
                                     evt21_cd(1, 0, 600, 479, 0x1),       // ON x 600
                                 },
                                 legacy));
    return path;
}

// The events evt21_raw() holds.
const std::vector<Event> evt21_events = {{131, 32, 20, 1}, {131, 34, 20, 1}, {131, 63, 20, 1},
                                         {138, 64, 7, 0},  {138, 65, 7, 0},  {192, 600, 479, 1}};

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

TEST_CASE("events frames --split duration: T bins of --dt us from the first event") {
    // small.bin: 40 events at t = 0, 100, …, 3900 µs
    ScratchDir dir;
    const auto in = small_bin(dir);
    for (const auto& [frames, expected_total] : {std::pair{3, 30}, std::pair{5, 40}}) {
        const auto out = dir / (std::to_string(frames) + "-frames.h5");
        std::string args = "events frames ";
        args += q(in);
        args += " --sensor 34x34 --split duration --dt 1000 --T ";
        args += std::to_string(frames);
        args += " -o ";
        args += q(out);
        const auto r = run_evformer(args);
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("split by duration, dt 1000 us") != std::string::npos);
        evformer::io::h5::Reader h(out);
        REQUIRE(h.shape("frames") == evformer::io::h5::Shape{std::size_t(frames), 2, 34, 34});
        CHECK(h.attr_string("/", "split_by") == "duration");
        CHECK(h.attr_int("/", "dt_us") == 1000);
        const auto f = h.read<float>("frames");
        const std::size_t per_frame = 2 * 34 * 34;
        double total = 0;
        for (int t = 0; t < frames; ++t) {
            double sum = 0;
            for (std::size_t i = 0; i < per_frame; ++i) sum += f[std::size_t(t) * per_frame + i];
            // 10 events per 1000 µs bin; the fifth bin (4000–4999 µs) is empty
            CHECK(sum == (t < 4 ? 10 : 0));
            total += sum;
        }
        CHECK(total == expected_total);  // with T = 3, the events from 3000 µs on are unused
    }
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
        {"events frames", bin, "--sensor 34x34 --split duration"},
        {"events frames", bin, "--sensor 34x34 --dt 1000"},
        {"events frames", bin, "--sensor 34x34 --split duration --dt 0"},
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

TEST_CASE("events info reads a hand-built EVT 2.1 file in both word orders") {
    ScratchDir dir;
    for (bool legacy : {false, true}) {
        INFO("legacy " << legacy);
        const auto r = run_evformer("events info --json - " + q(evt21_raw(dir, legacy)));
        REQUIRE(r.exit_code == 0);
        const auto j = nlohmann::json::parse(r.out);
        REQUIRE(j.size() == 1);
        CHECK(j[0]["format"] == "evt21");
        CHECK(j[0]["width"] == 640);
        CHECK(j[0]["height"] == 480);
        CHECK(j[0]["events"] == 6);
        CHECK(j[0]["t_first"] == 131);
        CHECK(j[0]["t_last"] == 192);
        CHECK(j[0]["span_us"] == 61);
        CHECK(j[0]["n_on"] == 4);
        CHECK(j[0]["n_off"] == 2);
        CHECK(j[0]["x_max"] == 600);
        CHECK(j[0]["y_max"] == 479);
        CHECK(j[0]["violations"] == 1);
        CHECK(j[0]["violations_by_kind"] == nlohmann::json{{"unknown_word", 1}});
        CHECK(j[0]["skipped"] == nlohmann::json{{"EXT_TRIGGER words", 1}});
    }
    const auto text = run_evformer("events info " + q(evt21_raw(dir, false)));
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("evt21") != std::string::npos);
    CHECK(text.out.find("6 (4 ON, 2 OFF)") != std::string::npos);
    CHECK(text.out.find("640x480") != std::string::npos);
}

TEST_CASE("events convert turns an EVT 2.1 file into files holding the same events") {
    ScratchDir dir;
    const auto in = evt21_raw(dir, true);
    for (const char* name : {"out.h5", "out.raw", "out.txt", "out.csv"}) {
        INFO(name);
        const auto r = run_evformer("events convert " + q(in) + " " + q(dir / name));
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("wrote 6 events from") != std::string::npos);
        CHECK(r.out.find("(evt21)") != std::string::npos);
        CHECK(r.out.find("note: 1 protocol violations were counted while reading") !=
              std::string::npos);
        evformer::io::ReaderOptions ro;
        ro.geometry = {640, 480};
        CHECK(evformer::io::read_event_file(dir / name, ro) == evt21_events);
    }
    const auto strict = run_evformer("events convert --strict " + q(in) + " " + q(dir / "s.h5"));
    CHECK(strict.exit_code != 0);
    CHECK(strict.err.find("unknown_word") != std::string::npos);
    CHECK(count_lines(strict.err) == 1);
    CHECK(!fs::exists(dir / "s.h5"));
}

TEST_CASE("events frames bins a hand-built EVT 2.1 file") {
    ScratchDir dir;
    const auto out = dir / "f.h5";
    const auto r = run_evformer("events frames " + q(evt21_raw(dir, false)) +
                                " --T 2 --size 320x240 -o " + q(out));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    evformer::io::h5::Reader h(out);
    REQUIRE(h.shape("frames") == evformer::io::h5::Shape{2, 2, 240, 320});
    const auto f = h.read<float>("frames");
    // [T, 2, H, W]; 640×480 → 320×240 halves x and y. Split by number: 3 events per frame.
    const auto at = [&](std::size_t t, std::size_t c, std::size_t y, std::size_t x) {
        return f[((t * 2 + c) * 240 + y) * 320 + x];
    };
    CHECK(at(0, 1, 10, 16) == 1);
    CHECK(at(0, 1, 10, 17) == 1);
    CHECK(at(0, 1, 10, 31) == 1);
    CHECK(at(1, 0, 3, 32) == 2);
    CHECK(at(1, 1, 239, 300) == 1);
    double total = 0;
    for (float v : f) total += v;
    CHECK(total == 6);
}
