// Faults found with small inputs rebuilt from public bug reports about event-camera readers
// (issue 11; the inputs and their right values are in ../shared/data/regressions/events/), one
// test per input, and for each kind of fault further hand-built inputs of the same kind at other
// positions, across chunk and buffer boundaries and through the vectorised (AVX-512) group path.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "events_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/h5.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace evformer::io;
using namespace evformer::test;

namespace {

const fs::path regressions = fs::path(EVFORMER_EVENTS_DATA) / ".." / "regressions" / "events";

bool have_regressions() {
    if (fs::exists(regressions / "README.md")) return true;
    MESSAGE("regression inputs not found at " << regressions.string() << "; skipped");
    return false;
}

struct Decoded {
    std::vector<Event> events;
    ViolationCounts violations;
    std::map<std::string, std::uint64_t> skipped;
    Geometry geometry;
    std::string format;
};

Decoded decode_reader(EventReader& r, std::size_t chunk) {
    Decoded d;
    d.events = read_all(r, chunk);
    d.violations = r.violations();
    d.skipped = r.skipped();
    d.geometry = r.geometry();
    d.format = r.format_name();
    return d;
}

Decoded decode_bytes(const Bytes& bytes, std::size_t chunk = 1 << 16, ReaderOptions opt = {}) {
    auto r = open_event_bytes(bytes, opt);
    return decode_reader(*r, chunk);
}

Decoded decode_file(const fs::path& path, ReaderOptions opt = {}, std::size_t chunk = 1 << 16) {
    auto r = open_event_file(path, opt);
    return decode_reader(*r, chunk);
}

// The message of the FileError or ConfigError that opening and reading `path` throws ("" if none).
std::string error_of(const fs::path& path, ReaderOptions opt = {}) {
    try {
        auto r = open_event_file(path, opt);
        read_all(*r);
    } catch (const evformer::Error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// An EVT 3.0 file (1280×720) with the given words.
Bytes evt3_file(const std::vector<std::uint16_t>& words) {
    Bytes b;
    put_text(b, "% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n");
    for (auto w : words) put_le16(b, w);
    return b;
}

// The same EVT 3.0 words decoded through every chunk size that matters (the 64-event minimum
// and a large one) and through small file buffers: all must give the same result.
Decoded decode_evt3_everywhere(const std::vector<std::uint16_t>& words) {
    const auto bytes = evt3_file(words);
    const auto big = decode_bytes(bytes);
    const auto small = decode_bytes(bytes, EventChunk::min_capacity);
    CHECK(small.events == big.events);
    CHECK(small.violations.by_kind == big.violations.by_kind);
    ScratchDir dir;
    write_bytes(dir / "f.raw", bytes);
    for (std::size_t buffer : {16, 18, 34, 70}) {
        ReaderOptions opt;
        opt.buffer_bytes = buffer;
        const auto d = decode_file(dir / "f.raw", opt, EventChunk::min_capacity);
        CHECK(d.events == big.events);
        CHECK(d.violations.by_kind == big.violations.by_kind);
    }
    return big;
}

// `lead` ADDR_Y words (no events) so the words after them land at every lane of a 16-word group
// and on both sides of a group boundary.
std::vector<std::uint16_t> padded(std::size_t lead, std::vector<std::uint16_t> words) {
    std::vector<std::uint16_t> w = {0x8000 | 1, 0x6000 | 1};
    w.insert(w.end(), lead, 0x0000 | 2);
    w.insert(w.end(), words.begin(), words.end());
    // Enough clean ADDR_X words after them for several full groups.
    for (int i = 0; i < 40; ++i) w.push_back(static_cast<std::uint16_t>(0x2000 | (i % 1280)));
    return w;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Kind 1: EVT 3.0 time

TEST_CASE("r01a: a TIME_HIGH starts its period at TIME_LOW 0 (incomplete vectors before it)") {
    if (!have_regressions()) return;
    const auto d = decode_file(regressions / "r01a_evt3_incomplete_vect.raw");
    const std::vector<Event> expected = {{1, 0, 0, 0}, {1, 10, 0, 0}, {1044480, 1, 0, 0}};
    CHECK(d.events == expected);
    CHECK(d.violations.total() == 0);
}

TEST_CASE("evt3 words after a TIME_HIGH and before the next TIME_LOW are stamped at TIME_LOW 0") {
    for (std::size_t lead = 0; lead < 34; ++lead) {
        INFO("lead " << lead);
        const auto d = decode_evt3_everywhere(
            padded(lead, {0x6000 | 0x800, 0x0000 | 5, 0x2000 | 10, 0x8000 | 3, 0x2000 | 11,
                          0x3000 | 0x800 | 20, 0x4000 | 0x3, 0x6000 | 9, 0x2000 | 12}));
        REQUIRE(d.events.size() >= 5);
        const std::vector<Event> expected = {{4096 + 0x800, 10, 5, 0},
                                             {3 * 4096, 11, 5, 0},
                                             {3 * 4096, 20, 5, 1},
                                             {3 * 4096, 21, 5, 1},
                                             {3 * 4096 + 9, 12, 5, 0}};
        CHECK(std::vector<Event>(d.events.begin(), d.events.begin() + 5) == expected);
        CHECK(d.violations.total() == 0);
    }
}

TEST_CASE("evt3 time that runs backwards is counted, at every position of a group") {
    for (std::size_t lead = 0; lead < 34; ++lead) {
        INFO("lead " << lead);
        // A TIME_LOW below the previous one, then the same TIME_HIGH again after a TIME_LOW > 0.
        const auto d =
            decode_evt3_everywhere(padded(lead, {0x0000 | 2, 0x6000 | 50, 0x2000 | 1, 0x6000 | 40,
                                                 0x2000 | 2, 0x8000 | 1, 0x2000 | 3}));
        REQUIRE(d.events.size() >= 3);
        const std::vector<Event> expected = {
            {4096 + 50, 1, 2, 0}, {4096 + 40, 2, 2, 0}, {4096, 3, 2, 0}};
        CHECK(std::vector<Event>(d.events.begin(), d.events.begin() + 3) == expected);
        CHECK(d.violations[Violation::time_backwards] == 2);
        CHECK(d.violations.total() == 2);
    }
}

TEST_CASE("evt3 strict mode names the offset of the first event stamped below the previous one") {
    // A TIME_LOW fall with no event before the time is restored is no violation.
    CHECK(decode_evt3_everywhere(padded(5, {0x6000 | 50, 0x6000 | 49, 0x6000 | 50}))
              .violations.total() == 0);
    auto bytes = evt3_file(padded(20, {0x6000 | 50, 0x2000 | 1, 0x6000 | 49, 0x2000 | 2}));
    const auto header = std::string("% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n");
    ReaderOptions opt;
    opt.strict = true;
    try {
        decode_bytes(bytes, 1 << 16, opt);
        FAIL("no error");
    } catch (const evformer::FileError& e) {
        CHECK(e.offset() == std::int64_t(header.size() + 2 * (2 + 20 + 3)));
    }
}

// ---------------------------------------------------------------------------------------------
// Kind 2: EVT 3.0 words

TEST_CASE("x1d: a vector's polarity comes from VECT_BASE_X only") {
    if (!have_regressions()) return;
    const auto d = decode_file(regressions / "x1d_evt3_vector_polarity_short.raw");
    const std::vector<Event> expected = {{4097, 3, 7, 0}, {4097, 100, 7, 1}};
    CHECK(d.events == expected);
}

TEST_CASE("evt3 vector polarity ignores ADDR_X words at every position of a group") {
    for (std::size_t lead = 0; lead < 34; ++lead) {
        INFO("lead " << lead);
        const auto d = decode_evt3_everywhere(padded(
            lead, {0x0000 | 7, 0x3000 | 0x800 | 100, 0x2000 | 3, 0x2000 | 0x800 | 4, 0x2000 | 5,
                   0x4000 | 0x801, 0x5000 | 0x81, 0x3000 | 200, 0x2000 | 0x800 | 6, 0x5000 | 0x1}));
        REQUIRE(d.events.size() >= 9);
        const std::int64_t t = 4097;
        const std::vector<Event> expected = {{t, 3, 7, 0},   {t, 4, 7, 1},   {t, 5, 7, 0},
                                             {t, 100, 7, 1}, {t, 111, 7, 1}, {t, 112, 7, 1},
                                             {t, 119, 7, 1}, {t, 6, 7, 1},   {t, 200, 7, 0}};
        CHECK(std::vector<Event>(d.events.begin(), d.events.begin() + 9) == expected);
    }
}

TEST_CASE("x1e: address words after a type 0x1 (EM) word are not CD events") {
    if (!have_regressions()) return;
    const auto d = decode_file(regressions / "x1e_evt3_em_events.raw");
    const std::vector<Event> expected = {{4097, 4, 9, 1}, {4097, 5, 11, 0}};
    CHECK(d.events == expected);
    CHECK(d.violations.total() == 0);
    CHECK(d.skipped.at("EM rows (type 0x1 words)") == 1);
    CHECK(d.skipped.at("address words of EM rows") == 3);
}

TEST_CASE("evt3 EM rows end at the next ADDR_Y, at every position and across groups") {
    for (std::size_t lead = 0; lead < 34; ++lead) {
        INFO("lead " << lead);
        std::vector<std::uint16_t> words = {0x0000 | 9, 0x2000 | 1, 0x1000 | 20};
        // A long EM row: it spans group boundaries, and its time words still count.
        for (int i = 0; i < 20; ++i)
            words.push_back(static_cast<std::uint16_t>(0x2000 | (100 + i)));
        words.push_back(0x3000 | 0x800 | 300);
        words.push_back(0x4FFF);
        words.push_back(0x6000 | 5);
        words.push_back(0x5000 | 0xFF);
        words.push_back(0x0000 | 11);
        words.push_back(0x2000 | 0x800 | 2);
        const auto d = decode_evt3_everywhere(padded(lead, words));
        REQUIRE(d.events.size() >= 2);
        const std::vector<Event> expected = {{4097, 1, 9, 0}, {4096 + 5, 2, 11, 1}};
        CHECK(std::vector<Event>(d.events.begin(), d.events.begin() + 2) == expected);
        CHECK(d.events.size() == 2 + 40);
        CHECK(d.violations.total() == 0);
    }
}

TEST_CASE("evt3 reserved word types are unknown words; trigger, others, continued are skipped") {
    std::vector<std::uint16_t> words = {0x8000 | 1, 0x9000, 0xB000, 0xC000, 0xD000,
                                        0xA000,     0xE000, 0x7000, 0xF000, 0x2000 | 4};
    const auto d = decode_evt3_everywhere(words);
    const std::vector<Event> expected = {{4096, 4, 0, 0}};
    CHECK(d.events == expected);
    CHECK(d.violations[Violation::unknown_word] == 4);
    CHECK(d.skipped.at("EXT_TRIGGER words") == 1);
    CHECK(d.skipped.at("OTHERS words") == 1);
    CHECK(d.skipped.at("CONTINUED words") == 2);
}

// ---------------------------------------------------------------------------------------------
// Kind 3: AEDAT 2.0 from chips other than the DVS128

namespace {

Bytes aedat2_file(const std::string& chip_line, const std::vector<std::uint32_t>& addresses) {
    Bytes b;
    put_text(b, "#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n");
    if (!chip_line.empty()) put_text(b, chip_line + "\r\n");
    std::uint32_t t = 100;
    for (auto a : addresses) {
        put_be32(b, a);
        put_be32(b, t++);
    }
    return b;
}

// jAER's DAVIS address: y bits 30..22, x bits 21..12, polarity bit 11.
std::uint32_t davis(std::uint32_t raw_x, std::uint32_t y, std::uint32_t on) {
    return (y << 22) | (raw_x << 12) | (on << 11);
}

}  // namespace

TEST_CASE("r10: AEDAT 2.0 from a DAVIS240C decodes in 240x180 with jAER's DAVIS layout") {
    if (!have_regressions()) return;
    const auto d = decode_file(regressions / "r10_aedat2_davis240c.aedat");
    CHECK(d.geometry == Geometry{240, 180});
    CHECK(d.events.size() == 3992);
    CHECK(d.skipped.at("APS/IMU samples (address bit 31)") == 16);
    CHECK(d.violations.total() == 0);
    // The first two records are APS samples; the first DVS record is address 0x0081a800 at
    // 1016 µs: y 2, raw x 26, ON.
    CHECK(d.events.front() == Event{1016, 239 - 26, 2, 1});
    for (const auto& e : d.events) {
        CHECK(e.x < 240);
        CHECK(e.y < 180);
    }
}

TEST_CASE("aedat2 DAVIS records: DVS events, APS/IMU samples and external events") {
    for (const auto& [chip, g] : std::vector<std::pair<std::string, Geometry>>{
             {"eu.seebetter.ini.chips.davis.DAVIS240C", {240, 180}},
             {"eu.seebetter.ini.chips.davis.Davis346B", {346, 260}},
             {"eu.seebetter.ini.chips.davis.Davis640", {640, 480}}}) {
        INFO(chip);
        const auto bytes = aedat2_file(
            "# AEChip: " + chip,
            {davis(0, 5, 1), 0x80000000u | davis(3, 4, 0), davis(7, 9, 0) | 0x400,
             davis(g.width - 1, g.height - 1, 0), davis(g.width, 0, 1), davis(1, g.height, 1)});
        const auto d = decode_bytes(bytes, EventChunk::min_capacity);
        CHECK(d.geometry == g);
        const std::vector<Event> expected = {{100, static_cast<std::uint16_t>(g.width - 1), 5, 1},
                                             {103, 0, static_cast<std::uint16_t>(g.height - 1), 0}};
        CHECK(d.events == expected);
        CHECK(d.skipped.at("APS/IMU samples (address bit 31)") == 1);
        CHECK(d.skipped.at("external input events (address bit 10)") == 1);
        CHECK(d.violations[Violation::coordinate_out_of_range] == 2);
    }
}

TEST_CASE("aedat2 from a chip whose layout is unknown is refused with one line naming it") {
    ScratchDir dir;
    write_bytes(dir / "f.aedat",
                aedat2_file("# AEChip: ch.unizh.ini.jaer.chip.dvs320.DVS320", {davis(1, 1, 1)}));
    const auto msg = error_of(dir / "f.aedat");
    CHECK(contains(msg, "DVS320"));
    CHECK(contains(msg, "AEChip"));
    CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("aedat2 without an AEChip line whose addresses are wider than DVS128's is refused") {
    ScratchDir dir;
    std::vector<std::uint32_t> addresses;
    for (std::uint32_t i = 0; i < 50; ++i) addresses.push_back(davis(i, 3, i & 1));
    addresses.push_back(5);  // a few DVS128-looking addresses do not make it DVS128
    write_bytes(dir / "f.aedat", aedat2_file("", addresses));
    CHECK(contains(error_of(dir / "f.aedat"), "AEChip"));
    // A DVS128 chip line keeps the DVS128 layout (and its orientations).
    const auto d = decode_bytes(
        aedat2_file("# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128", {(5u << 8) | (10u << 1)}));
    CHECK(d.events == std::vector<Event>{{100, 117, 5, 1}});
    CHECK(d.geometry == Geometry{128, 128});
    ReaderOptions opt;
    opt.aedat2_orientation = Aedat2Orientation::tonic;
    CHECK_THROWS_AS(decode_bytes(aedat2_file("# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C",
                                             {davis(1, 1, 1)}),
                                 1 << 16, opt),
                    evformer::ConfigError);
}

// ---------------------------------------------------------------------------------------------
// Kind 4: AEDAT 4.0 with several EVTS streams

TEST_CASE("x2: two EVTS streams are never merged; one is chosen, the other skipped and counted") {
    if (!have_regressions()) return;
    const auto path = regressions / "x2_aedat4_stereo_two_evts.aedat4";
    const auto first = decode_file(path);
    ReaderOptions opt;
    opt.aedat4_stream = "1";
    const auto second = decode_file(path, opt);
    CHECK(first.geometry == Geometry{346, 260});
    CHECK(!first.events.empty());
    CHECK(!second.events.empty());
    CHECK(first.events != second.events);
    CHECK(first.skipped.at("EVTS packets of stream 1 (not chosen)") > 0);
    CHECK(second.skipped.at("EVTS packets of stream 0 (not chosen)") > 0);
    for (const auto* d : {&first, &second})
        for (std::size_t i = 1; i < d->events.size(); ++i)
            CHECK(d->events[i - 1].t <= d->events[i].t);
    opt.aedat4_stream = "capture";  // both streams come from the module "capture"
    CHECK_THROWS_WITH_AS(decode_file(path, opt), doctest::Contains("names several EVTS streams"),
                         evformer::ConfigError);
    opt.aedat4_stream = "7";
    CHECK_THROWS_AS(decode_file(path, opt), evformer::ConfigError);
}

TEST_CASE("aedat4 stream choice by id or name, through every compression") {
    const std::string xml =
        "<dv version=\"2.0\"><node name=\"outInfo\" path=\"/outInfo/\">"
        "<node name=\"0\" path=\"/outInfo/0/\"><attr key=\"originalOutputName\" "
        "type=\"string\">left</attr><attr key=\"typeIdentifier\" type=\"string\">EVTS</attr>"
        "<node name=\"info\" path=\"/outInfo/0/info/\"><attr key=\"sizeX\" type=\"int\">64</attr>"
        "<attr key=\"sizeY\" type=\"int\">48</attr></node></node>"
        "<node name=\"1\" path=\"/outInfo/1/\"><attr key=\"originalOutputName\" "
        "type=\"string\">right</attr><attr key=\"typeIdentifier\" type=\"string\">EVTS</attr>"
        "<node name=\"info\" path=\"/outInfo/1/info/\"><attr key=\"sizeX\" type=\"int\">32</attr>"
        "<attr key=\"sizeY\" type=\"int\">24</attr></node></node></node></dv>";
    const std::vector<std::vector<A4Event>> left = {{{10, 1, 2, 1}, {20, 63, 47, 0}},
                                                    {{30, 3, 4, 1}}};
    const std::vector<std::vector<A4Event>> right = {{{11, 5, 6, 0}},
                                                     {{12, 31, 23, 1}, {40, 0, 0, 1}}};
    for (int compression : {0, 1, 3}) {
        INFO("compression " << compression);
        const auto bytes = aedat4_sample(compression, left, &right, xml);
        const auto d0 = decode_bytes(bytes, EventChunk::min_capacity);
        CHECK(d0.events == std::vector<Event>{{10, 1, 2, 1}, {20, 63, 47, 0}, {30, 3, 4, 1}});
        CHECK(d0.geometry == Geometry{64, 48});
        CHECK(d0.skipped.at("EVTS packets of stream 1 (not chosen)") == 2);
        for (const std::string name : {"1", "right"}) {
            ReaderOptions opt;
            opt.aedat4_stream = name;
            const auto d1 = decode_bytes(bytes, EventChunk::min_capacity, opt);
            CHECK(d1.events == std::vector<Event>{{11, 5, 6, 0}, {12, 31, 23, 1}, {40, 0, 0, 1}});
            CHECK(d1.geometry == Geometry{32, 24});
            CHECK(d1.skipped.at("EVTS packets of stream 0 (not chosen)") == 2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kind 5: HDF5 element types and filters

TEST_CASE("x3: HDF5 events with float seconds are refused, or converted on request") {
    if (!have_regressions()) return;
    const auto path = regressions / "x3_h5_float_seconds.h5";
    const auto msg = error_of(path);
    CHECK(contains(msg, "t holds f"));
    CHECK(contains(msg, "integer µs"));
    ReaderOptions opt;
    opt.float_seconds = true;
    const auto d = decode_file(path, opt);
    REQUIRE(d.events.size() > 2);
    CHECK(d.events.back().t > 1000);  // seconds became µs, not 0/1
}

TEST_CASE("r09: a dataset compressed with a filter that is not available names it first") {
    if (!have_regressions()) return;
    const auto msg = error_of(regressions / "r09_dsec_blosc_no_plugin.h5");
    CHECK(contains(msg, "Blosc"));
    CHECK(contains(msg, "32001"));
    CHECK(contains(msg, "HDF5_PLUGIN_PATH"));
    CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("hdf5 events: float x/y/p are refused, float t converted to µs only on request") {
    ScratchDir dir;
    const auto write = [&](const std::string& name, bool t_float, bool float_x) {
        evformer::io::h5::Writer w(dir / name);
        const std::vector<std::int64_t> ti = {1, 2, 3};
        const std::vector<double> td = {0.5, 1.25, 2.0000004};
        const std::vector<std::uint16_t> x = {1, 2, 3}, y = {4, 5, 6};
        const std::vector<double> xd = {1, 2, 3};
        const std::vector<std::uint8_t> p = {0, 1, 1};
        if (float_x)
            w.write<double>("/events/x", xd, {3});
        else
            w.write<std::uint16_t>("/events/x", x, {3});
        w.write<std::uint16_t>("/events/y", y, {3});
        if (t_float)
            w.write<double>("/events/t", td, {3});
        else
            w.write<std::int64_t>("/events/t", ti, {3});
        w.write<std::uint8_t>("/events/p", p, {3});
        w.commit();
    };
    write("ft.h5", true, false);
    write("fx.h5", false, true);
    CHECK(contains(error_of(dir / "ft.h5"), "/events/t holds f64"));
    CHECK(contains(error_of(dir / "fx.h5"), "/events/x holds f64 values, expected integers"));
    ReaderOptions opt;
    opt.float_seconds = true;
    CHECK(decode_file(dir / "ft.h5", opt).events ==
          std::vector<Event>{{500000, 1, 4, 0}, {1250000, 2, 5, 1}, {2000000, 3, 6, 1}});
    CHECK(contains(error_of(dir / "fx.h5", opt), "expected integers"));
}

TEST_CASE("hdf5 events: negative or too large coordinates are dropped and counted, not clipped") {
    ScratchDir dir;
    {
        evformer::io::h5::Writer w(dir / "s.h5");
        const std::vector<std::int32_t> x = {-1, 2, 70000}, y = {4, -5, 6};
        const std::vector<std::int64_t> t = {1, 2, 3};
        const std::vector<std::uint8_t> p = {0, 1, 1};
        w.write<std::int32_t>("/events/x", x, {3});
        w.write<std::int32_t>("/events/y", y, {3});
        w.write<std::int64_t>("/events/t", t, {3});
        w.write<std::uint8_t>("/events/p", p, {3});
        w.commit();
    }
    const auto d = decode_file(dir / "s.h5");
    CHECK(d.events.empty());
    CHECK(d.violations[Violation::coordinate_out_of_range] == 3);
}

TEST_CASE("hdf5 events: width/height attributes that are not pixel counts are refused by name") {
    // Found by fuzz_hdf5: a width of -2 was cast to an unsigned geometry (undefined behaviour).
    ScratchDir dir;
    const auto write = [&](const std::string& name, const evformer::io::h5::AttrValue& width) {
        evformer::io::h5::Writer w(dir / name);
        const std::vector<std::uint16_t> xy = {1, 2};
        const std::vector<std::int64_t> t = {1, 2};
        const std::vector<std::uint8_t> p = {0, 1};
        w.write<std::uint16_t>("/events/x", xy, {2});
        w.write<std::uint16_t>("/events/y", xy, {2});
        w.write<std::int64_t>("/events/t", t, {2});
        w.write<std::uint8_t>("/events/p", p, {2});
        w.attr("/", "width", width);
        w.attr("/", "height", std::int64_t{48});
        w.commit();
        return dir / name;
    };
    CHECK(contains(error_of(write("neg.h5", std::int64_t{-2})),
                   "attribute width of / is -2, expected a whole number of pixels in 0..65536"));
    CHECK(contains(error_of(write("big.h5", std::int64_t{1} << 40)), "attribute width of / is"));
    CHECK(contains(error_of(write("half.h5", 63.5)), "attribute width of / is 63.5"));
    CHECK(contains(error_of(write("nan.h5", std::nan(""))), "attribute width of / is nan"));
    CHECK(
        contains(error_of(write("text.h5", std::string("64"))), "is a string, expected a number"));
    CHECK(decode_file(write("float.h5", 64.0)).geometry == Geometry{64, 48});
    CHECK(decode_file(write("int.h5", std::int64_t{64})).geometry == Geometry{64, 48});
    CHECK(!decode_file(write("zero.h5", std::int64_t{0})).geometry.known());
}

TEST_CASE("hdf5 events: a time that overflows with /t_offset is a FileError naming the row") {
    ScratchDir dir;
    {
        evformer::io::h5::Writer w(dir / "o.h5");
        const std::vector<std::uint16_t> xy = {1, 2};
        const std::vector<std::int64_t> t = {5, std::numeric_limits<std::int64_t>::max() - 2};
        const std::vector<std::uint8_t> p = {0, 1};
        w.write<std::uint16_t>("/events/x", xy, {2});
        w.write<std::uint16_t>("/events/y", xy, {2});
        w.write<std::int64_t>("/events/t", t, {2});
        w.write<std::uint8_t>("/events/p", p, {2});
        w.write<std::int64_t>("/t_offset", std::vector<std::int64_t>{3}, {});
        w.commit();
    }
    CHECK(contains(error_of(dir / "o.h5"),
                   "/events/t[1] = 9223372036854775805 plus /t_offset 3 does not fit"));
}

// ---------------------------------------------------------------------------------------------
// Kind 6: format detection

TEST_CASE("a5c: an EVT 3.0 header with a 100 KB line is detected as EVT 3.0") {
    if (!have_regressions()) return;
    const auto d = decode_file(regressions / "a5c_evt3_huge_header_line_len5.raw");
    CHECK(d.format == "evt3");
    CHECK(!d.events.empty());
    CHECK(d.violations.total() == 0);
}

TEST_CASE("detection sees a long text header whole, from files and from memory") {
    for (std::size_t line : {70000, 200000, 900000}) {
        INFO("line " << line);
        Bytes b;
        put_text(b, "% " + std::string(line, 'c') + "\n% evt 2.0\n% end\n");
        put_le32(b, (8u << 28) | 1);
        put_le32(b, evt2_cd(1, 2, 3, 4));
        CHECK(decode_bytes(b).events == std::vector<Event>{{66, 3, 4, 1}});
        ScratchDir dir;
        write_bytes(dir / "f.raw", b);
        CHECK(decode_file(dir / "f.raw").format == "evt2");
    }
}

TEST_CASE("text, zero-filled and constant inputs are never taken for N-MNIST records") {
    ScratchDir dir;
    const auto unrecognised = [&](const Bytes& b, const std::string& name) {
        write_bytes(dir / name, b);
        return contains(error_of(dir / name), "unrecognised event format");
    };
    Bytes text;
    put_text(text, "% a comment that is not a Prophesee header\n% and another one\n");
    for (int i = 0; i < 100; ++i) text.push_back(std::uint8_t(i));
    CHECK(unrecognised(text, "a.bin"));
    Bytes hash;
    put_text(hash, "# some notes\n");
    CHECK(unrecognised(hash, "b.bin"));
    CHECK(unrecognised(Bytes(5000, 0), "zeros.bin"));
    Bytes constant;
    for (int i = 0; i < 300; ++i)
        for (auto c : {1, 2, 0, 0, 7}) constant.push_back(std::uint8_t(c));
    CHECK(unrecognised(constant, "constant.bin"));
    // Real N-MNIST records are still detected.
    CHECK(decode_bytes(nmnist_sample()).format == "nmnist");
}

// ---------------------------------------------------------------------------------------------
// Kind 7: Prophesee headers without `% end`; messages that name the real cause

TEST_CASE("a7: an EVT 2.0 first data word starting with byte 0x25 is data, not header") {
    if (!have_regressions()) return;
    const auto d = decode_file(regressions / "a7_evt2_no_end_percent_byte.raw");
    // The file holds 101 words after its two header lines: one TIME_HIGH (its first byte is
    // 0x25, '%', followed by "\n\n") and 100 CD events.
    CHECK(d.events.size() == 100);
    CHECK(d.violations.total() == 0);
    CHECK(d.events.front().t == (std::int64_t{0x0a0a0a25} << 6));
}

TEST_CASE("headers without % end: a first word that looks like a '%' line is data") {
    // EVT 2.0: TIME_HIGH words whose bytes read "%\n", "% \n", "%x\n" (not `% key` lines).
    for (std::uint32_t th : {0x8a0a0a25u, 0x800a2025u, 0x800a7825u, 0x8a000a25u}) {
        INFO(std::hex << th);
        Bytes b;
        put_text(b, "% evt 2.0\n% geometry 640x480\n");
        put_le32(b, th);
        put_le32(b, evt2_cd(1, 3, 5, 6));
        put_le32(b, evt2_cd(0, 4, 7, 8));
        const std::int64_t high = std::int64_t{th & 0x0FFFFFFF} << 6;
        CHECK(decode_bytes(b).events ==
              std::vector<Event>{{high + 3, 5, 6, 1}, {high + 4, 7, 8, 0}});
        ScratchDir dir;
        write_bytes(dir / "f.raw", b);
        ReaderOptions opt;
        opt.buffer_bytes = 16;
        CHECK(decode_file(dir / "f.raw", opt).events.size() == 2);
    }
    // DAT: a first timestamp whose low bytes are "%\n".
    Bytes dat;
    put_text(dat, "% Date 2020-01-01\n% Height 10\n% Width 10\n");
    dat.push_back(0x00);
    dat.push_back(0x08);
    put_le32(dat, 0x00000a25);
    put_le32(dat, 1 | (2u << 14) | (1u << 28));
    CHECK(decode_bytes(dat).events == std::vector<Event>{{0x0a25, 1, 2, 1}});
}

TEST_CASE("headers without % end: truly ambiguous bytes give one line naming the ambiguity") {
    // "%\n%\n" then four bytes: data of two EVT 3.0 words after two header lines, or of four
    // words after one; both fit the file size.
    Bytes b;
    put_text(b, "% evt 3.0\n%\n");
    put_le16(b, 0x8001);
    put_le16(b, 0x2005);
    ScratchDir dir;
    write_bytes(dir / "f.raw", b);
    const auto msg = error_of(dir / "f.raw");
    CHECK(contains(msg, "header/data ambiguity"));
    CHECK(msg.find('\n') == std::string::npos);
    // With `% end` nothing is ambiguous.
    Bytes c;
    put_text(c, "% evt 3.0\n% end\n");
    put_le16(c, 0x8001);
    put_le16(c, 0x2005);
    CHECK(decode_bytes(c).events == std::vector<Event>{{4096, 5, 0, 0}});
}

TEST_CASE("a9: a DAT file of external triggers names event type 0x0e") {
    if (!have_regressions()) return;
    const auto msg = error_of(regressions / "a9_dat_trigger.dat");
    CHECK(contains(msg, "0x0e"));
    CHECK(contains(msg, "external-trigger"));
    CHECK(!contains(msg, "unrecognised"));
}
