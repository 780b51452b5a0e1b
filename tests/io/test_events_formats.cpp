// Every decoder on hand-built bytes (every word type, overflow and wrap-around, records split by
// buffer and chunk boundaries), and writer → reader round trips.
#include <doctest/doctest.h>

#include <random>

#include "events_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "support.hpp"

using namespace evformer::io;
using namespace evformer::test;

namespace {

struct Decoded {
    std::vector<Event> events;
    ViolationCounts violations;
    std::map<std::string, std::uint64_t> skipped;
    Geometry geometry;
    std::string format;
};

Decoded decode(const Bytes& bytes, ReaderOptions opt = {}, std::size_t chunk = 64) {
    auto r = open_event_bytes(bytes, opt);
    Decoded d;
    d.events = read_all(*r, chunk);
    d.violations = r->violations();
    d.skipped = r->skipped();
    d.geometry = r->geometry();
    d.format = r->format_name();
    return d;
}

// Decoding a file through buffers of every small size gives the same events.
void check_buffer_sizes(const Bytes& bytes, const std::vector<Event>& expected) {
    ScratchDir dir;
    write_bytes(dir / "f", bytes);
    for (std::size_t buffer = 16; buffer < 64; ++buffer) {
        ReaderOptions opt;
        opt.buffer_bytes = buffer;
        auto r = open_event_file(dir / "f", opt);
        CHECK(read_all(*r, EventChunk::min_capacity) == expected);
    }
}

}  // namespace

TEST_CASE("evt2 decoder handles every word type and counts violations") {
    const auto d = decode(evt2_sample());
    CHECK(d.format == "evt2");
    CHECK(d.geometry == Geometry{640, 480});
    const std::vector<Event> expected = {
        {69, 10, 20, 1}, {127, 639, 479, 0}, {(2 << 6) | 1, 3, 4, 0}};
    CHECK(d.events == expected);
    CHECK(d.violations[Violation::unknown_word] == 1);
    CHECK(d.violations[Violation::coordinate_out_of_range] == 1);
    CHECK(d.violations[Violation::time_backwards] == 1);
    CHECK(d.skipped.at("events before the first TIME_HIGH") == 1);
    CHECK(d.skipped.at("EXT_TRIGGER words") == 1);
    check_buffer_sizes(evt2_sample(), expected);
}

TEST_CASE("evt3 decoder expands vectors, loops TIME_HIGH and starts each period at TIME_LOW 0") {
    const auto d = decode(evt3_sample());
    CHECK(d.format == "evt3");
    CHECK(d.geometry == Geometry{1280, 720});
    const std::int64_t t0 = 5 * 4096 + 7;
    const std::int64_t t1 = (std::int64_t{1} << 24) + 4096;
    const std::vector<Event> expected = {{t0, 100, 3, 1},   {t0, 200, 3, 0}, {t0, 202, 3, 0},
                                         {t0, 211, 3, 0},   {t0, 212, 3, 0}, {t1, 50, 3, 0},
                                         {t1 + 3, 51, 3, 0}};
    CHECK(d.events == expected);
    CHECK(d.violations[Violation::unknown_word] == 1);
    CHECK(d.violations[Violation::time_backwards] == 1);
    CHECK(d.violations[Violation::coordinate_out_of_range] == 1);
    CHECK(d.violations.total() == 3);
    CHECK(d.skipped.at("CONTINUED words") == 2);
    check_buffer_sizes(evt3_sample(), expected);
}

TEST_CASE("strict mode turns the first violation into a FileError with its byte offset") {
    ReaderOptions opt;
    opt.strict = true;
    const auto bytes = evt2_sample();
    const auto header = std::string("% evt 2.0\n% geometry 640x480\n% end\n").size();
    try {
        decode(bytes, opt);
        FAIL("no error");
    } catch (const evformer::FileError& e) {
        CHECK(e.offset() == std::int64_t(header + 7 * 4));
    }
}

TEST_CASE("dat decoder handles 32-bit wrap, bad polarity and geometry") {
    const auto d = decode(dat_sample());
    CHECK(d.format == "dat");
    CHECK(d.geometry == Geometry{100, 50});
    const std::int64_t wrap = std::int64_t{1} << 32;
    const std::vector<Event> expected = {
        {10, 1, 2, 0}, {0xFFFFFF00, 99, 49, 1}, {wrap + 0x10, 5, 6, 1}, {wrap + 0x20, 7, 8, 1}};
    CHECK(d.events == expected);
    CHECK(d.violations[Violation::bad_polarity] == 1);
    CHECK(d.violations[Violation::coordinate_out_of_range] == 1);
    check_buffer_sizes(dat_sample(), expected);
}

TEST_CASE("nmnist decoder adds 2^23 per overflow event") {
    ScratchDir dir;
    write_bytes(dir / "a.bin", nmnist_sample());
    auto r = open_event_file(dir / "a.bin");
    CHECK(r->format_name() == "nmnist");
    const std::vector<Event> expected = {
        {100, 1, 2, 1}, {0x7FFFFF, 33, 33, 0}, {(1 << 23) + 3, 4, 5, 1}};
    CHECK(read_all(*r) == expected);
    CHECK(r->skipped().at("timestamp overflow events") == 1);
    check_buffer_sizes(nmnist_sample(), expected);
}

TEST_CASE("aedat2 decoder applies the jAER, SpikingJelly and tonic orientations") {
    ReaderOptions opt;
    auto d = decode(aedat2_sample(), opt);
    CHECK(d.format == "aedat2");
    CHECK(d.geometry == Geometry{128, 128});
    CHECK(d.events == std::vector<Event>{{1000, 117, 5, 1}, {1002, 127, 127, 0}});
    CHECK(d.skipped.at("external (special) events") == 1);
    opt.aedat2_orientation = Aedat2Orientation::spikingjelly;
    CHECK(decode(aedat2_sample(), opt).events ==
          std::vector<Event>{{1000, 122, 117, 1}, {1002, 0, 127, 0}});
    opt.aedat2_orientation = Aedat2Orientation::tonic;
    CHECK(decode(aedat2_sample(), opt).events ==
          std::vector<Event>{{1000, 5, 10, 0}, {1002, 127, 0, 1}});
    check_buffer_sizes(aedat2_sample(), decode(aedat2_sample()).events);
}

TEST_CASE("aedat3 decoder reads polarity packets with timestamp overflow") {
    const auto d = decode(aedat3_sample());
    CHECK(d.format == "aedat3");
    CHECK(d.geometry == Geometry{128, 128});
    const std::int64_t base = std::int64_t{1} << 31;
    const std::vector<Event> expected = {{base + 10, 3, 4, 1}, {base + 12, 127, 127, 0}};
    CHECK(d.events == expected);
    CHECK(d.skipped.at("invalid (cleared) polarity events") == 1);
    CHECK(d.skipped.at("type-2 packets") == 1);
    check_buffer_sizes(aedat3_sample(), expected);
}

TEST_CASE("aedat4 decoder reads uncompressed, LZ4 and zstd packets and skips other streams") {
    const std::vector<std::vector<A4Event>> packets = {
        {{100, 1, 2, 1}, {101, 63, 47, 0}}, {}, {{102, 64, 0, 1}, {103, 5, 6, 0}}};
    const std::vector<Event> expected = {{100, 1, 2, 1}, {101, 63, 47, 0}, {103, 5, 6, 0}};
    for (int compression : {0, 1, 3}) {
        INFO("compression " << compression);
        const auto bytes = aedat4_sample(compression, packets);
        const auto d = decode(bytes);
        CHECK(d.format == "aedat4");
        CHECK(d.geometry == Geometry{64, 48});
        CHECK(d.events == expected);
        CHECK(d.violations[Violation::coordinate_out_of_range] == 1);
        CHECK(d.skipped.at("IMUS packets") == 3);
        check_buffer_sizes(bytes, expected);
    }
}

TEST_CASE("chunks of the minimum size split EVT 3.0 vectors without losing events") {
    // 40 VECT_12 words with all bits set: 480 events through 64-event chunks.
    Bytes b;
    put_text(b, "% evt 3.0\n% end\n");
    put_le16(b, 0x8000 | 1);
    put_le16(b, 0x0000 | 9);
    for (int k = 0; k < 4; ++k) {
        put_le16(b, 0x3000);
        for (int i = 0; i < 10; ++i) put_le16(b, 0x4FFF);
    }
    const auto d = decode(b, {}, EventChunk::min_capacity);
    REQUIRE(d.events.size() == 480);
    CHECK(d.events[479].x == 119);
    CHECK(d.geometry == Geometry{});
}

TEST_CASE("writers round-trip exactly through their readers") {
    ScratchDir dir;
    std::mt19937 rng(7);
    std::vector<Event> ev;
    std::int64_t t = 0;
    for (int i = 0; i < 100000; ++i) {
        t += rng() % 300;  // spans several 2^23 µs N-MNIST overflows and EVT TIME_HIGHs
        ev.push_back(
            {t, std::uint16_t(rng() % 200), std::uint16_t(rng() % 200), std::uint8_t(rng() % 2)});
    }
    WriterOptions wo;
    wo.geometry = {200, 200};
    wo.chunk_events = 4096;
    for (const char* name : {"a.h5", "a.bin", "a.raw"}) {
        INFO(name);
        auto w = create_event_writer(dir / name, "", wo);
        const std::span<const Event> all(ev);
        w->write(all.first(12345));  // two calls: appends must continue exactly
        w->write(all.subspan(12345));
        w->finish();
        auto r = open_event_file(dir / name);
        CHECK(read_all(*r, 1000) == ev);
        CHECK(r->violations().total() == 0);
        if (std::string(name) != "a.bin") CHECK(r->geometry() == Geometry{200, 200});
    }
}

TEST_CASE("writers reject events their format cannot hold") {
    ScratchDir dir;
    const std::vector<Event> backwards = {{10, 1, 1, 0}, {5, 1, 1, 0}};
    CHECK_THROWS_AS(write_event_file(dir / "a.bin", backwards), evformer::ConfigError);
    CHECK_THROWS_AS(write_event_file(dir / "a.raw", backwards), evformer::ConfigError);
    const std::vector<Event> wide = {{10, 300, 1, 0}};
    CHECK_THROWS_AS(write_event_file(dir / "a.bin", wide), evformer::ConfigError);
    CHECK_THROWS_AS(write_event_file(dir / "a.xyz", wide), evformer::ConfigError);
    CHECK(!std::filesystem::exists(dir / "a.bin"));
}
