#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/io/aedat4.hpp"
#include "evformer/io/events.hpp"
#include "evformer/stream/wire.hpp"

namespace io = evformer::io;
namespace st = evformer::stream;
using Bytes = std::vector<std::uint8_t>;

namespace {

void put_host32(Bytes& b, std::uint32_t v) {
    std::uint8_t bytes[4];
    std::memcpy(bytes, &v, 4);
    b.insert(b.end(), bytes, bytes + 4);
}
void put_le16(Bytes& b, std::uint16_t v) {
    b.push_back(std::uint8_t(v));
    b.push_back(std::uint8_t(v >> 8));
}
void put_le32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void put_le64(Bytes& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}

// A SPIF word as AEStream writes it: x in bits 30..16, polarity in 15, y in 14..0.
std::uint32_t spif(std::uint32_t x, std::uint32_t y, std::uint32_t p, bool timestamp) {
    return (timestamp ? 0u : 0x80000000u) | (x & 0x7FFF) << 16 | (p & 1) << 15 | (y & 0x7FFF);
}

struct Collect : st::DvStreamSink {
    std::vector<io::Aedat4Header> headers;
    std::vector<io::Event> events;
    std::size_t packets = 0;
    void on_header(const io::Aedat4Header& h) override { headers.push_back(h); }
    void on_events(std::span<const io::Event> e) override {
        events.insert(events.end(), e.begin(), e.end());
        ++packets;
    }
};

Bytes packet(std::int32_t stream, std::span<const std::uint8_t> body) {
    Bytes b;
    io::append_aedat4_packet_header(b, stream, body.size());
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

}  // namespace

TEST_CASE("SPIF words decode with and without timestamps, in host byte order") {
    Bytes d;
    put_host32(d, spif(3, 4, 1, true));
    put_host32(d, 1000);
    put_host32(d, spif(32767, 5, 0, false));  // no timestamp: stamped on arrival
    put_host32(d, spif(7, 32767, 1, true));
    put_host32(d, 1003);
    st::TimeUnwrap clock;
    std::vector<io::Event> out;
    const auto r = st::decode_datagram(st::UdpFormat::spif, d, 777, clock, out);
    CHECK_FALSE(r.malformed);
    CHECK(r.events == 3);
    CHECK(r.stamped == 1);
    REQUIRE(out.size() == 3);
    CHECK(out[0] == io::Event{1000, 3, 4, 1});
    CHECK(out[1] == io::Event{777, 32767, 5, 0});
    CHECK(out[2] == io::Event{1003, 7, 32767, 1});
}

TEST_CASE("SPIF datagrams that are not whole records are malformed and add nothing") {
    st::TimeUnwrap clock;
    std::vector<io::Event> out{io::Event{1, 1, 1, 1}};
    Bytes odd(10, 0x80);  // not a multiple of 4 bytes
    CHECK(st::decode_datagram(st::UdpFormat::spif, odd, 0, clock, out).malformed);
    Bytes cut;
    put_host32(cut, spif(1, 2, 0, false));
    put_host32(cut, spif(1, 2, 0, true));  // announces a timestamp that is missing
    CHECK(st::decode_datagram(st::UdpFormat::spif, cut, 0, clock, out).malformed);
    CHECK(out.size() == 1);  // untouched
    CHECK_FALSE(st::decode_datagram(st::UdpFormat::spif, {}, 0, clock, out).malformed);
}

TEST_CASE("32-bit timestamps unwrap when they fall by more than 2^31") {
    st::TimeUnwrap clock;
    CHECK(clock(0xFFFFFF00u) == 0xFFFFFF00ll);
    CHECK(clock(0x10u) == (1ll << 32) + 0x10);
    CHECK(clock(0x08u) == (1ll << 32) + 0x08);  // a small fall is time going backwards, not a wrap
    CHECK(clock(0x7FFFFFFFu) == (1ll << 32) + 0x7FFFFFFF);
}

TEST_CASE("faery t64_x16_y16_on8: 13-byte little-endian records; bad polarity bytes are counted") {
    Bytes d;
    auto rec = [&](std::uint64_t t, std::uint16_t x, std::uint16_t y, std::uint8_t on) {
        put_le64(d, t);
        put_le16(d, x);
        put_le16(d, y);
        d.push_back(on);
    };
    rec(5'000'000'000ull, 639, 479, 1);
    rec(5'000'000'001ull, 0, 1, 0);
    rec(5'000'000'002ull, 2, 3, 7);  // garbage polarity byte
    st::TimeUnwrap clock;
    std::vector<io::Event> out;
    auto r = st::decode_datagram(st::UdpFormat::t64_x16_y16_on8, d, 0, clock, out);
    CHECK_FALSE(r.malformed);
    CHECK(r.events == 2);
    CHECK(r.bad_records == 1);
    CHECK(out[0] == io::Event{5'000'000'000ll, 639, 479, 1});
    CHECK(out[1] == io::Event{5'000'000'001ll, 0, 1, 0});
    d.pop_back();
    out.clear();
    r = st::decode_datagram(st::UdpFormat::t64_x16_y16_on8, d, 0, clock, out);
    CHECK(r.malformed);
    CHECK(out.empty());
}

TEST_CASE("faery t32_x16_y15_on1: 8-byte records, y << 1 | on, 32-bit time unwrapped") {
    Bytes d;
    put_le32(d, 0xFFFFFFF0u);
    put_le16(d, 100);
    put_le16(d, std::uint16_t(200 << 1 | 1));
    put_le32(d, 0x20u);  // wrapped
    put_le16(d, 101);
    put_le16(d, std::uint16_t(32767 << 1 | 0));
    st::TimeUnwrap clock;
    std::vector<io::Event> out;
    const auto r = st::decode_datagram(st::UdpFormat::t32_x16_y15_on1, d, 0, clock, out);
    CHECK(r.events == 2);
    CHECK(out[0] == io::Event{0xFFFFFFF0ll, 100, 200, 1});
    CHECK(out[1] == io::Event{(1ll << 32) + 0x20, 101, 32767, 0});
    d.push_back(0);
    CHECK(st::decode_datagram(st::UdpFormat::t32_x16_y15_on1, d, 0, clock, out).malformed);
}

TEST_CASE("records written by the encoder decode to the same events in every format") {
    const std::vector<io::Event> events{
        {10, 0, 0, 0}, {11, 33, 17, 1}, {4'000'000'000ll, 32767, 32767, 1}};
    for (auto f :
         {st::UdpFormat::spif, st::UdpFormat::t64_x16_y16_on8, st::UdpFormat::t32_x16_y15_on1}) {
        CAPTURE(st::udp_format_name(f));
        Bytes d(st::record_bytes(f) * events.size());
        st::encode_records(f, true, events, d.data());
        st::TimeUnwrap clock;
        std::vector<io::Event> out;
        const auto r = st::decode_datagram(f, d, 0, clock, out);
        CHECK(r.events == 3);
        CHECK(out == events);
        CHECK(st::parse_udp_format(st::udp_format_name(f)) == f);
    }
    Bytes d(4 * events.size());
    st::encode_records(st::UdpFormat::spif, false, events, d.data());
    st::TimeUnwrap clock;
    std::vector<io::Event> out;
    CHECK(st::decode_datagram(st::UdpFormat::spif, d, 99, clock, out).stamped == 3);
    CHECK(out[1] == io::Event{99, 33, 17, 1});
    const std::vector<io::Event> wide{{0, 40000, 0, 0}};
    Bytes w(8);
    CHECK_THROWS_AS(st::encode_records(st::UdpFormat::spif, true, wide, w.data()),
                    evformer::ConfigError);
    CHECK_THROWS_AS(st::parse_udp_format("aedat"), evformer::ConfigError);
    CHECK(st::default_datagram_bytes(st::UdpFormat::spif) == 512);
}

TEST_CASE("the dv-processing TCP framing parses however the bytes are cut") {
    for (auto c :
         {io::Aedat4Compression::none, io::Aedat4Compression::lz4, io::Aedat4Compression::zstd}) {
        CAPTURE(io::aedat4_compression_name(c));
        Bytes stream = st::dv_stream_opening(c, {64, 48}, "unit test");
        io::Aedat4PacketEncoder enc(c);
        const std::vector<io::Event> a{{1, 2, 3, 1}, {5, 63, 47, 0}}, b{{9, 10, 11, 1}};
        for (const auto* events : {&a, &b}) {
            const auto body = enc.encode(*events);
            const auto p = packet(0, body);
            stream.insert(stream.end(), p.begin(), p.end());
        }
        const Bytes other = packet(3, Bytes(20, 0x55));  // another stream: skipped
        stream.insert(stream.end(), other.begin(), other.end());
        const Bytes empty = packet(0, {});  // a zero-size body does not decode: counted
        stream.insert(stream.end(), empty.begin(), empty.end());
        for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{7}, stream.size()}) {
            CAPTURE(piece);
            st::DvStreamParser parser("test");
            Collect sink;
            for (std::size_t at = 0; at < stream.size(); at += piece)
                REQUIRE(parser.feed(
                    std::span(stream).subspan(at, std::min(piece, stream.size() - at)), sink));
            REQUIRE(sink.headers.size() == 1);
            CHECK(sink.headers[0].compression == c);
            CHECK(sink.headers[0].streams.at(0).geometry == io::Geometry{64, 48});
            CHECK(sink.events ==
                  std::vector<io::Event>{{1, 2, 3, 1}, {5, 63, 47, 0}, {9, 10, 11, 1}});
            CHECK(parser.counts().packets == 2);
            CHECK(parser.counts().skipped_packets == 1);
            CHECK(parser.counts().undecodable_packets == 1);
            CHECK_FALSE(parser.mid_packet());
        }
    }
}

TEST_CASE(
    "TCP framing faults: wrong sizes are fatal, undecodable bodies are skipped, a cut "
    "stream is mid-packet") {
    const Bytes opening = st::dv_stream_opening(io::Aedat4Compression::lz4, {34, 34}, "x");
    io::Aedat4PacketEncoder enc(io::Aedat4Compression::lz4);
    const std::vector<io::Event> ev{{1, 2, 3, 1}};
    const auto body = enc.encode(ev);
    const auto good = packet(0, Bytes(body.begin(), body.end()));
    SUBCASE("negative packet size") {
        Bytes s = opening;
        put_le32(s, 0);
        put_le32(s, 0xFFFFFFF0u);
        st::DvStreamParser parser("peer-a");
        Collect sink;
        CHECK_FALSE(parser.feed(s, sink));
        CHECK(parser.error().find("peer-a") != std::string::npos);
        CHECK(parser.error().find("size -16") != std::string::npos);
        CHECK_FALSE(parser.feed(good, sink));  // stays failed
    }
    SUBCASE("packet larger than the limit") {
        Bytes s = opening;
        put_le32(s, 0);
        put_le32(s, 1u << 30);
        st::DvStreamParser parser("peer-b");
        Collect sink;
        CHECK_FALSE(parser.feed(s, sink));
        CHECK(parser.error().find("expected 0..") != std::string::npos);
    }
    SUBCASE("garbage header") {
        Bytes s;
        put_le32(s, 12);
        for (int i = 0; i < 12; ++i) s.push_back(0xEE);
        st::DvStreamParser parser("peer-c");
        Collect sink;
        CHECK_FALSE(parser.feed(s, sink));
        CHECK(parser.error().find("IOHeader") != std::string::npos);
        Bytes huge;
        put_le32(huge, 0x7FFFFFFF);
        st::DvStreamParser p2("peer-d");
        CHECK_FALSE(p2.feed(huge, sink));
    }
    SUBCASE("undecodable body between good packets") {
        Bytes s = opening;
        s.insert(s.end(), good.begin(), good.end());
        const auto bad = packet(0, Bytes(40, 0xAB));  // not an LZ4 frame
        s.insert(s.end(), bad.begin(), bad.end());
        s.insert(s.end(), good.begin(), good.end());
        st::DvStreamParser parser("peer-e");
        Collect sink;
        CHECK(parser.feed(s, sink));
        CHECK(sink.events.size() == 2);
        CHECK(parser.counts().undecodable_packets == 1);
    }
    SUBCASE("bad polarity and negative coordinates inside a packet") {
        Bytes plain;  // an EVTS flatbuffer built by hand with one good and two bad events
        io::Aedat4PacketEncoder none(io::Aedat4Compression::none);
        const std::vector<io::Event> three{{1, 1, 1, 1}, {2, 2, 2, 1}, {3, 3, 3, 0}};
        const auto b = none.encode(three);
        plain.assign(b.begin(), b.end());
        plain[32 + 16 + 12] = 2;                               // second event: polarity byte 2
        plain[32 + 32 + 8] = 0xFF, plain[32 + 32 + 9] = 0xFF;  // third: x = -1
        Bytes s = st::dv_stream_opening(io::Aedat4Compression::none, {34, 34}, "y");
        const auto p = packet(0, plain);
        s.insert(s.end(), p.begin(), p.end());
        st::DvStreamParser parser("peer-f");
        Collect sink;
        CHECK(parser.feed(s, sink));
        CHECK(sink.events == std::vector<io::Event>{{1, 1, 1, 1}});
        CHECK(parser.counts().bad_records == 1);
        CHECK(parser.counts().negative_coordinates == 1);
    }
    SUBCASE("a stream cut in the middle of a packet") {
        Bytes s = opening;
        s.insert(s.end(), good.begin(), good.end() - 3);
        st::DvStreamParser parser("peer-g");
        Collect sink;
        CHECK(parser.feed(s, sink));
        CHECK(parser.mid_packet());
        st::DvStreamParser fresh("peer-h");
        CHECK_FALSE(fresh.mid_packet());
        CHECK(fresh.feed(Bytes(opening.begin(), opening.begin() + 6), sink));
        CHECK(fresh.mid_packet());
        CHECK_FALSE(fresh.has_header());
    }
    SUBCASE("a header without an event stream") {
        Bytes fb = io::encode_aedat4_header(io::Aedat4Compression::none, 0, {34, 34}, "z");
        const std::string evts = "EVTS";
        auto at = std::search(fb.begin(), fb.end(), evts.begin(), evts.end());
        REQUIRE(at != fb.end());
        std::copy_n("IMUS", 4, at);
        Bytes s;
        put_le32(s, std::uint32_t(fb.size()));
        s.insert(s.end(), fb.begin(), fb.end());
        st::DvStreamParser parser("peer-i");
        Collect sink;
        CHECK_FALSE(parser.feed(s, sink));
        CHECK(parser.error().find("no EVTS") != std::string::npos);
    }
}

TEST_CASE(
    "real DV recordings, sent as the network framing (no version line, no data table), "
    "decode to the file reader's events") {
    for (const char* name :
         {"aedat4_davis346_trimmed_evl.aedat4", "aedat4_dvxplorer_320x240_tonic.aedat4"}) {
        CAPTURE(name);
        const std::string path = std::string(EVFORMER_EVENTS_DATA) + "/" + name;
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            MESSAGE("shared recording missing; skipped: " << path);
            continue;
        }
        const Bytes file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::size_t magic = std::string("#!AER-DAT4.0\r\n").size();
        REQUIRE(file.size() > magic + 4);
        const std::size_t header_len = file[magic] | file[magic + 1] << 8 | file[magic + 2] << 16 |
                                       std::size_t(file[magic + 3]) << 24;
        const auto header = io::parse_aedat4_header(std::span(file).subspan(magic + 4, header_len),
                                                    path, std::int64_t(magic + 4));
        const std::size_t end =
            header.data_table_position >= 0 ? std::size_t(header.data_table_position) : file.size();
        st::DvStreamParser parser(name);
        Collect sink;
        const std::span<const std::uint8_t> network = std::span(file).subspan(magic, end - magic);
        for (std::size_t at = 0; at < network.size(); at += 4096)  // arrives in pieces
            REQUIRE(parser.feed(
                network.subspan(at, std::min<std::size_t>(4096, network.size() - at)), sink));
        CHECK_FALSE(parser.mid_packet());
        const auto expected = io::read_event_file(path);
        CHECK(sink.events.size() == expected.size());
        CHECK(sink.events == expected);
        CHECK(parser.counts().undecodable_packets == 0);
        MESSAGE(std::string(name) << ": " << parser.counts().packets << " EVTS packets, "
                                  << parser.counts().skipped_packets << " others skipped");
    }
}
