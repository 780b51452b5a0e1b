// Wire formats of live event streams, as pure functions over bytes (no sockets), so every format
// is tested from hand-built bytes. Sources of each layout (checked against their public
// descriptions; docs/streaming.md says what was read):
//  - SPIF / AEStream UDP (AEStream's `dvs_to_udp`): 32-bit words in host byte order, x in bits
//    30..16, polarity in bit 15, y in bits 14..0; bit 31 set = no timestamp, clear = the word is
//    followed by a 32-bit word holding the time in µs (its low 32 bits); datagrams of up to 512
//    bytes; port 3333.
//  - faery UDP (`faery input/output udp`): `t64_x16_y16_on8`, 13 bytes per event: u64 t (µs),
//    u16 x, u16 y, u8 on, little-endian, packed; `t32_x16_y15_on1`, 8 bytes per event: u32 t
//    (µs, low 32 bits), u16 x, u16 holding y << 1 | on, little-endian.
//  - dv-processing / DV network streams over TCP: a u32 size and the IOHeader flatbuffer, then
//    packets of i32 stream id, i32 size and an AEDAT 4.0 body (io/aedat4.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "evformer/io/aedat4.hpp"
#include "evformer/io/events.hpp"

namespace evformer::stream {

/// The UDP word formats the server reads and the sender writes.
enum class UdpFormat { spif, t64_x16_y16_on8, t32_x16_y15_on1 };

/// The name of a format as `--udp-format` spells it ("spif", "t64_x16_y16_on8", …).
const char* udp_format_name(UdpFormat f) noexcept;

/// The format called `name`; ConfigError listing the known names otherwise.
UdpFormat parse_udp_format(const std::string& name);

/// Bytes of one record (SPIF: 8 with a timestamp, 4 without; faery: 13 or 8).
std::size_t record_bytes(UdpFormat f, bool with_timestamps = true) noexcept;

/// Payload bytes per datagram the sender uses by default: 512 for SPIF (AEStream's limit),
/// 1209 (93 events) and 1208 (151 events) for faery's formats (faery's defaults).
std::size_t default_datagram_bytes(UdpFormat f) noexcept;

/// Time of a sender's 32-bit µs timestamps unwrapped into 64 bits: a timestamp that falls by more
/// than 2^31 from the previous one has wrapped (+2^32), as faery's receiver assumes.
class TimeUnwrap {
  public:
    /// The 64-bit time of timestamp `ts`.
    std::int64_t operator()(std::uint32_t ts) noexcept {
        if (seen_ && ts < last_ && last_ - ts > (std::uint32_t{1} << 31))
            high_ += std::int64_t{1} << 32;
        seen_ = true;
        last_ = ts;
        return high_ + ts;
    }

  private:
    std::int64_t high_ = 0;
    std::uint32_t last_ = 0;
    bool seen_ = false;
};

/// What decoding one datagram found.
struct DatagramResult {
    std::uint64_t events = 0;       ///< events appended
    std::uint64_t stamped = 0;      ///< of which had no timestamp and were stamped on arrival
    std::uint64_t bad_records = 0;  ///< records with an invalid field, skipped (faery on > 1)
    bool malformed = false;         ///< not a whole number of records: nothing appended
};

/// Decodes one datagram of `format` and appends its events to `out` in datagram order. Events
/// without a timestamp (SPIF bit 31 set) get `arrival_us`. A datagram that is not a whole number
/// of records — for SPIF, also one whose last word announces a timestamp that is missing — is
/// malformed and appends nothing. Coordinates are not checked here (the window runner counts
/// events outside the sensor).
DatagramResult decode_datagram(UdpFormat format, std::span<const std::uint8_t> datagram,
                               std::int64_t arrival_us, TimeUnwrap& clock,
                               std::vector<io::Event>& out);

/// Writes the records of `events` in `format` to `out` (record_bytes × events.size() bytes);
/// SPIF without timestamps when `with_timestamps` is false. Coordinates beyond a format's
/// fields (SPIF x or y ≥ 32768, faery t32 y ≥ 32768) are a ConfigError naming the event.
void encode_records(UdpFormat format, bool with_timestamps, std::span<const io::Event> events,
                    std::uint8_t* out);

/// Receives the events a dv-processing / DV TCP stream carries, as the parser finds them.
class DvStreamSink {
  public:
    virtual ~DvStreamSink() = default;
    /// The IOHeader arrived (once, first).
    virtual void on_header(const io::Aedat4Header& header) = 0;
    /// Events of one EVTS packet of the chosen stream (valid during the call).
    virtual void on_events(std::span<const io::Event> events) = 0;
};

/// Counters of one TCP stream.
struct DvStreamCounts {
    std::uint64_t packets = 0;               ///< EVTS packets of the chosen stream decoded
    std::uint64_t events = 0;                ///< events passed on
    std::uint64_t undecodable_packets = 0;   ///< bodies that did not decompress or parse (skipped)
    std::uint64_t skipped_packets = 0;       ///< packets of other streams or types (skipped)
    std::uint64_t bad_records = 0;           ///< events with a polarity byte other than 0/1
    std::uint64_t negative_coordinates = 0;  ///< events with x or y < 0 (dropped)
};

/// Parses the byte stream of one dv-processing network connection incrementally, as bytes
/// arrive in any pieces: u32 IOHeader size, IOHeader, then packets of i32 stream id, i32 size and
/// body. Events of the EVTS stream with the lowest id are passed on; other packets are skipped and
/// counted. A header or packet size outside the limits is fatal — the stream cannot resynchronise
/// — and feed() returns false with a message; an undecodable body is counted and skipped.
class DvStreamParser {
  public:
    /// Limits on what one connection may make the server hold.
    struct Limits {
        std::size_t max_header = std::size_t{1} << 20;   ///< IOHeader bytes
        std::size_t max_packet = std::size_t{16} << 20;  ///< packet body bytes (compressed)
        std::size_t max_plain = std::size_t{64} << 20;   ///< decompressed packet bytes
    };

    /// A parser for the connection `peer` (named in messages).
    explicit DvStreamParser(std::string peer);
    DvStreamParser(std::string peer, Limits limits);
    ~DvStreamParser();
    DvStreamParser(const DvStreamParser&) = delete;
    DvStreamParser& operator=(const DvStreamParser&) = delete;

    /// Consumes bytes; false after a fatal fault (error() says what and where), after which the
    /// connection must be closed.
    bool feed(std::span<const std::uint8_t> bytes, DvStreamSink& sink);
    /// True when the stream stopped in the middle of the header or a packet (a peer that
    /// disconnected mid-packet).
    bool mid_packet() const noexcept {
        return !buffer_.empty() || state_ == State::header || state_ == State::body;
    }
    /// The fatal fault: peer, byte offset in the stream, what was found and expected.
    const std::string& error() const noexcept { return error_; }
    /// Counters so far.
    const DvStreamCounts& counts() const noexcept { return counts_; }
    /// Bytes consumed so far.
    std::uint64_t offset() const noexcept { return offset_; }
    /// True once the IOHeader has been parsed.
    bool has_header() const noexcept {
        return state_ != State::header_size && state_ != State::header;
    }

  private:
    enum class State { header_size, header, packet_header, body };
    bool fail(std::string what);
    bool handle_header(std::span<const std::uint8_t> bytes, DvStreamSink& sink);
    void handle_body(std::span<const std::uint8_t> bytes, DvStreamSink& sink);

    std::string peer_;
    Limits limits_;
    State state_ = State::header_size;
    std::vector<std::uint8_t> buffer_;
    std::size_t need_ = 4;
    std::int32_t packet_stream_ = 0;
    std::int32_t chosen_ = -1;
    std::unique_ptr<io::Aedat4PacketDecoder> decoder_;
    std::vector<io::Event> events_;
    DvStreamCounts counts_;
    std::uint64_t offset_ = 0;
    std::uint64_t item_offset_ = 0;
    std::string error_;
};

/// The opening bytes of a dv-processing network stream (u32 size + IOHeader) for one EVTS stream.
std::vector<std::uint8_t> dv_stream_opening(io::Aedat4Compression c, io::Geometry geometry,
                                            const std::string& source);

}  // namespace evformer::stream
