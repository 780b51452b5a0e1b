#include "evformer/stream/wire.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "evformer/error.hpp"

namespace evformer::stream {
namespace {

std::uint32_t load32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
std::uint16_t load_le16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t load_le32(const std::uint8_t* p) noexcept {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
           std::uint32_t{p[3]} << 24;
}
std::uint64_t load_le64(const std::uint8_t* p) noexcept {
    return std::uint64_t{load_le32(p)} | std::uint64_t{load_le32(p + 4)} << 32;
}
void store_le16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v);
    p[1] = static_cast<std::uint8_t>(v >> 8);
}
void store_le32(std::uint8_t* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

constexpr std::uint32_t kNoTimestamp = 0x80000000u;

// Room for `more` events after the current ones, growing geometrically (reserve() alone would
// reallocate on every datagram of a batch).
void make_room(std::vector<io::Event>& out, std::size_t more) {
    const std::size_t need = out.size() + more;
    if (need > out.capacity()) out.reserve(std::max(need, 2 * out.capacity()));
}

DatagramResult decode_spif(std::span<const std::uint8_t> d, std::int64_t arrival_us,
                           TimeUnwrap& clock, std::vector<io::Event>& out) {
    DatagramResult r;
    if (d.size() % 4 != 0) {
        r.malformed = true;
        return r;
    }
    const std::size_t words = d.size() / 4, first = out.size();
    const std::uint8_t* p = d.data();
    // reserve + push_back: no zero-filling of events written right after (twice as fast as
    // resize + store); the clock works on a copy kept in registers (a malformed datagram leaves
    // it untouched).
    make_room(out, words);  // at most one event per word
    TimeUnwrap unwrap = clock;
    for (std::size_t i = 0; i < words; ++i) {
        const std::uint32_t w = load32(p + 4 * i);
        std::int64_t t;
        if (w & kNoTimestamp) {
            t = arrival_us;
            ++r.stamped;
        } else {
            if (i + 1 == words) {  // the timestamp this word announces is missing
                out.resize(first);
                DatagramResult bad;
                bad.malformed = true;
                return bad;
            }
            t = unwrap(load32(p + 4 * ++i));
        }
        out.push_back(io::Event{t, static_cast<std::uint16_t>((w >> 16) & 0x7FFF),
                                static_cast<std::uint16_t>(w & 0x7FFF),
                                static_cast<std::uint8_t>((w >> 15) & 1)});
    }
    clock = unwrap;
    r.events = out.size() - first;
    return r;
}

DatagramResult decode_t64(std::span<const std::uint8_t> d, std::vector<io::Event>& out) {
    DatagramResult r;
    if (d.size() % 13 != 0) {
        r.malformed = true;
        return r;
    }
    const std::size_t records = d.size() / 13;
    make_room(out, records);
    for (std::size_t i = 0; i < records; ++i) {
        const std::uint8_t* p = d.data() + 13 * i;
        const std::uint8_t on = p[12];
        if (on > 1) {
            ++r.bad_records;
            continue;
        }
        const std::uint64_t t = load_le64(p);
        if (t > std::uint64_t{1} << 62) {  // not a time in µs of this era: garbage
            ++r.bad_records;
            continue;
        }
        out.push_back(
            io::Event{static_cast<std::int64_t>(t), load_le16(p + 8), load_le16(p + 10), on});
        ++r.events;
    }
    return r;
}

DatagramResult decode_t32(std::span<const std::uint8_t> d, TimeUnwrap& clock,
                          std::vector<io::Event>& out) {
    DatagramResult r;
    if (d.size() % 8 != 0) {
        r.malformed = true;
        return r;
    }
    const std::size_t records = d.size() / 8;
    make_room(out, records);
    for (std::size_t i = 0; i < records; ++i) {
        const std::uint8_t* p = d.data() + 8 * i;
        const std::uint16_t yon = load_le16(p + 6);
        out.push_back(io::Event{clock(load_le32(p)), load_le16(p + 4),
                                static_cast<std::uint16_t>(yon >> 1),
                                static_cast<std::uint8_t>(yon & 1)});
    }
    r.events = records;
    return r;
}

}  // namespace

const char* udp_format_name(UdpFormat f) noexcept {
    switch (f) {
        case UdpFormat::spif:
            return "spif";
        case UdpFormat::t64_x16_y16_on8:
            return "t64_x16_y16_on8";
        case UdpFormat::t32_x16_y15_on1:
            return "t32_x16_y15_on1";
    }
    return "spif";
}

UdpFormat parse_udp_format(const std::string& name) {
    for (auto f : {UdpFormat::spif, UdpFormat::t64_x16_y16_on8, UdpFormat::t32_x16_y15_on1})
        if (name == udp_format_name(f)) return f;
    throw ConfigError(fmt::format(
        "unknown UDP format '{}' (expected spif, t64_x16_y16_on8 or t32_x16_y15_on1)", name));
}

std::size_t record_bytes(UdpFormat f, bool with_timestamps) noexcept {
    switch (f) {
        case UdpFormat::spif:
            return with_timestamps ? 8 : 4;
        case UdpFormat::t64_x16_y16_on8:
            return 13;
        case UdpFormat::t32_x16_y15_on1:
            return 8;
    }
    return 8;
}

std::size_t default_datagram_bytes(UdpFormat f) noexcept {
    switch (f) {
        case UdpFormat::spif:
            return 512;
        case UdpFormat::t64_x16_y16_on8:
            return 1209;
        case UdpFormat::t32_x16_y15_on1:
            return 1208;
    }
    return 512;
}

DatagramResult decode_datagram(UdpFormat format, std::span<const std::uint8_t> datagram,
                               std::int64_t arrival_us, TimeUnwrap& clock,
                               std::vector<io::Event>& out) {
    switch (format) {
        case UdpFormat::spif:
            return decode_spif(datagram, arrival_us, clock, out);
        case UdpFormat::t64_x16_y16_on8:
            return decode_t64(datagram, out);
        case UdpFormat::t32_x16_y15_on1:
            return decode_t32(datagram, clock, out);
    }
    return {};
}

void encode_records(UdpFormat format, bool with_timestamps, std::span<const io::Event> events,
                    std::uint8_t* out) {
    const std::size_t rb = record_bytes(format, with_timestamps);
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        std::uint8_t* p = out + rb * i;
        const bool y15 = format != UdpFormat::t64_x16_y16_on8;
        if ((format == UdpFormat::spif && e.x >= 0x8000) || (y15 && e.y >= 0x8000))
            throw ConfigError(
                fmt::format("event at ({}, {}) does not fit the 15-bit coordinate fields of {}",
                            e.x, e.y, udp_format_name(format)));
        switch (format) {
            case UdpFormat::spif: {
                std::uint32_t w =
                    std::uint32_t{e.x} << 16 | std::uint32_t{e.p ? 1u : 0u} << 15 | e.y;
                if (!with_timestamps) w |= kNoTimestamp;
                std::memcpy(p, &w, 4);
                if (with_timestamps) {
                    const auto ts = static_cast<std::uint32_t>(e.t);
                    std::memcpy(p + 4, &ts, 4);
                }
                break;
            }
            case UdpFormat::t64_x16_y16_on8:
                store_le32(p, static_cast<std::uint32_t>(e.t));
                store_le32(p + 4,
                           static_cast<std::uint32_t>(static_cast<std::uint64_t>(e.t) >> 32));
                store_le16(p + 8, e.x);
                store_le16(p + 10, e.y);
                p[12] = e.p ? 1 : 0;
                break;
            case UdpFormat::t32_x16_y15_on1:
                store_le32(p, static_cast<std::uint32_t>(e.t));
                store_le16(p + 4, e.x);
                store_le16(p + 6, static_cast<std::uint16_t>(e.y << 1 | (e.p ? 1 : 0)));
                break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dv-processing TCP framing

DvStreamParser::DvStreamParser(std::string peer) : DvStreamParser(std::move(peer), Limits{}) {}

DvStreamParser::DvStreamParser(std::string peer, Limits limits)
    : peer_(std::move(peer)), limits_(limits) {}

DvStreamParser::~DvStreamParser() = default;

bool DvStreamParser::fail(std::string what) {
    error_ = fmt::format("{}: byte {}: {}", peer_, item_offset_, what);
    return false;
}

bool DvStreamParser::feed(std::span<const std::uint8_t> bytes, DvStreamSink& sink) {
    if (!error_.empty()) return false;
    while (!bytes.empty()) {
        // Take what the current item still needs.
        const std::size_t take = std::min(need_ - buffer_.size(), bytes.size());
        buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + long(take));
        bytes = bytes.subspan(take);
        offset_ += take;
        if (buffer_.size() < need_) break;
        const std::span<const std::uint8_t> item(buffer_);
        switch (state_) {
            case State::header_size: {
                const std::size_t size = load_le32(item.data());
                if (size < 8 || size > limits_.max_header)
                    return fail(fmt::format("IOHeader size {} (expected 8..{} bytes)", size,
                                            limits_.max_header));
                state_ = State::header;
                need_ = size;
                break;
            }
            case State::header:
                if (!handle_header(item, sink)) return false;
                state_ = State::packet_header;
                need_ = 8;
                break;
            case State::packet_header: {
                packet_stream_ = static_cast<std::int32_t>(load_le32(item.data()));
                const auto size = static_cast<std::int32_t>(load_le32(item.data() + 4));
                if (size < 0 || static_cast<std::size_t>(size) > limits_.max_packet)
                    return fail(
                        fmt::format("packet of stream {} with size {} (expected 0..{} bytes)",
                                    packet_stream_, size, limits_.max_packet));
                state_ = State::body;
                need_ = static_cast<std::size_t>(size);
                break;
            }
            case State::body:
                handle_body(item, sink);
                state_ = State::packet_header;
                need_ = 8;
                break;
        }
        buffer_.clear();
        item_offset_ = offset_;
        // A zero-size body is complete at once.
        if (state_ == State::body && need_ == 0) {
            handle_body({}, sink);
            state_ = State::packet_header;
            need_ = 8;
        }
    }
    return true;
}

bool DvStreamParser::handle_header(std::span<const std::uint8_t> bytes, DvStreamSink& sink) {
    io::Aedat4Header header;
    try {
        header = io::parse_aedat4_header(bytes, peer_, static_cast<std::int64_t>(item_offset_));
    } catch (const FileError& e) {
        error_ = e.what();
        return false;
    }
    chosen_ = header.first_event_stream();
    if (chosen_ < 0) return fail("the IOHeader declares no EVTS (event) stream");
    decoder_ = std::make_unique<io::Aedat4PacketDecoder>(header.compression, limits_.max_plain);
    sink.on_header(header);
    return true;
}

void DvStreamParser::handle_body(std::span<const std::uint8_t> bytes, DvStreamSink& sink) {
    if (packet_stream_ != chosen_) {
        ++counts_.skipped_packets;
        return;
    }
    if (!decoder_->decode(bytes)) {
        ++counts_.undecodable_packets;
        return;
    }
    ++counts_.packets;
    events_.clear();
    events_.reserve(decoder_->size());
    for (std::size_t i = 0; i < decoder_->size(); ++i) {
        const auto e = (*decoder_)[i];
        if (e.on > 1) {
            ++counts_.bad_records;
            continue;
        }
        if (e.x < 0 || e.y < 0) {
            ++counts_.negative_coordinates;
            continue;
        }
        events_.push_back(
            io::Event{e.t, static_cast<std::uint16_t>(e.x), static_cast<std::uint16_t>(e.y), e.on});
    }
    counts_.events += events_.size();
    if (!events_.empty()) sink.on_events(events_);
}

std::vector<std::uint8_t> dv_stream_opening(io::Aedat4Compression c, io::Geometry geometry,
                                            const std::string& source) {
    const auto header = io::encode_aedat4_header(c, 0, geometry, source);
    std::vector<std::uint8_t> out(4 + header.size());
    store_le32(out.data(), static_cast<std::uint32_t>(header.size()));
    std::memcpy(out.data() + 4, header.data(), header.size());
    return out;
}

}  // namespace evformer::stream
