// AEDAT 4.0 at the packet level (io/aedat4.hpp): the IOHeader and EVTS packets the writer and the
// network sender build parse back through the same decoder the file reader uses, for every
// compression; bodies that do not decompress or parse are refused, not crashed on.
#include <doctest/doctest.h>

#include <random>

#include "evformer/error.hpp"
#include "evformer/io/aedat4.hpp"
#include "evformer/io/events.hpp"
#include "support.hpp"

using namespace evformer::io;
using evformer::test::ScratchDir;

namespace {

std::vector<Event> random_events(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<Event> ev;
    std::int64_t t = 1'700'000'000'000'000;  // µs since 1970, as DV stamps events
    for (std::size_t i = 0; i < n; ++i) {
        t += rng() % 50;
        ev.push_back(
            {t, std::uint16_t(rng() % 346), std::uint16_t(rng() % 260), std::uint8_t(rng() % 2)});
    }
    return ev;
}

}  // namespace

TEST_CASE("the IOHeader the encoder writes parses back with its stream, size and compression") {
    for (int c = 0; c <= 4; ++c) {
        const auto comp = static_cast<Aedat4Compression>(c);
        const auto fb = encode_aedat4_header(comp, 7, {346, 260}, "cam <1> & \"2\"");
        const auto h = parse_aedat4_header(fb, "test", 0);
        CHECK(h.compression == comp);
        CHECK(h.data_table_position == -1);
        CHECK(h.first_event_stream() == 7);
        REQUIRE(h.streams.count(7) == 1);
        CHECK(h.streams.at(7).type == "EVTS");
        CHECK(h.streams.at(7).geometry == Geometry{346, 260});
        CHECK(h.streams.at(7).output == "events");
        CHECK(fb.size() % 4 == 0);
    }
    std::vector<std::uint8_t> garbage(40, 0xEE);
    CHECK_THROWS_AS(parse_aedat4_header(garbage, "g", 12), evformer::FileError);
}

TEST_CASE("EVTS packets encode and decode exactly in every compression; bad bodies are refused") {
    const auto ev = random_events(3000, 1);
    for (int c = 0; c <= 4; ++c) {
        CAPTURE(c);
        const auto comp = static_cast<Aedat4Compression>(c);
        Aedat4PacketEncoder enc(comp);
        const auto body = enc.encode(ev);
        const std::vector<std::uint8_t> copy(body.begin(), body.end());
        Aedat4PacketDecoder dec(comp);
        REQUIRE(dec.decode(copy));
        REQUIRE(dec.size() == ev.size());
        for (std::size_t i = 0; i < ev.size(); ++i) {
            const auto e = dec[i];
            CHECK(e.t == ev[i].t);
            CHECK(e.x == ev[i].x);
            CHECK(e.y == ev[i].y);
            CHECK(e.on == ev[i].p);
        }
        // Truncated, corrupted, empty: refused, and the decoder stays usable.
        CHECK_FALSE(dec.decode(std::span(copy).first(copy.size() / 2)));
        CHECK(dec.size() == 0);
        auto bad = copy;
        for (std::size_t i = 0; i < bad.size(); i += 7) bad[i] ^= 0x5A;
        dec.decode(bad);  // may or may not decode, must not crash or overrun
        CHECK_FALSE(dec.decode({}));
        CHECK(dec.decode(copy));
        CHECK(dec.size() == ev.size());
        // A limit on the decompressed size refuses larger packets.
        Aedat4PacketDecoder small(comp, 1024);
        CHECK_FALSE(small.decode(copy));
    }
    Aedat4PacketEncoder enc(Aedat4Compression::none);
    const std::vector<Event> none;
    Aedat4PacketDecoder dec(Aedat4Compression::none);
    CHECK(dec.decode(enc.encode(none)));
    CHECK(dec.size() == 0);
}

TEST_CASE("the aedat4 writer round-trips through the AEDAT 4.0 reader") {
    ScratchDir dir;
    const auto ev = random_events(20000, 2);  // several packets of 8192 events
    for (int c : {0, 1, 3}) {
        CAPTURE(c);
        WriterOptions wo;
        wo.geometry = {346, 260};
        wo.aedat4_compression = c;
        const auto path = dir / (c == 0 ? "none.aedat4" : c == 1 ? "lz4.aedat4" : "zstd.aedat4");
        auto w = create_event_writer(path, "", wo);
        const std::span<const Event> all(ev);
        w->write(all.first(5000));
        w->write(all.subspan(5000));
        w->finish();
        auto r = open_event_file(path);
        CHECK(r->format_name() == "aedat4");
        CHECK(r->geometry() == Geometry{346, 260});
        CHECK(read_all(*r, 777) == ev);
        CHECK(r->violations().total() == 0);
    }
    WriterOptions unknown;
    CHECK_THROWS_AS(create_event_writer(dir / "b.aedat4", "", unknown), evformer::ConfigError);
    WriterOptions bad;
    bad.geometry = {10, 10};
    bad.aedat4_compression = 9;
    CHECK_THROWS_AS(create_event_writer(dir / "c.aedat4", "", bad), evformer::ConfigError);
    const std::vector<Event> backwards = {{10, 1, 1, 0}, {5, 1, 1, 0}};
    WriterOptions ok;
    ok.geometry = {10, 10};
    CHECK_THROWS_AS(write_event_file(dir / "d.aedat4", backwards, "", ok), evformer::ConfigError);
}
