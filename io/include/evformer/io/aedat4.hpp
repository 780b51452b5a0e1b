// AEDAT 4.0 at the packet level, for files and for the network streams of iniVation's DV and
// dv-processing (facts from iniVation's AEDAT 4.0 description; no code of theirs): every
// flatbuffer is size-prefixed (u32 little-endian size, then the flatbuffer); a stream starts with
// the IOHeader (compression 0 none, 1 LZ4, 2 LZ4_HIGH, 3 ZSTD, 4 ZSTD_HIGH; dataTablePosition;
// infoNode: XML describing the output streams); then packets of i32 stream id, i32 size and a
// body of `size` bytes, which is one LZ4 or zstd frame (or the plain bytes) holding a size-prefixed
// flatbuffer. EVTS packets hold an EventPacket: a vector of 16-byte events {i64 t (µs), i16 x,
// i16 y, bool on, 3 bytes padding}. Files add the `#!AER-DAT4.0\r\n` line before the IOHeader;
// network streams do not (see docs/streaming.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "evformer/io/events.hpp"

struct LZ4F_dctx_s;
struct ZSTD_DCtx_s;

namespace evformer::io {

/// Compression of AEDAT 4.0 packet bodies, as the IOHeader's `compression` field numbers it.
enum class Aedat4Compression : std::int32_t {
    none = 0,
    lz4 = 1,
    lz4_high = 2,
    zstd = 3,
    zstd_high = 4
};

/// Name of a compression ("none", "lz4", "lz4_high", "zstd", "zstd_high").
const char* aedat4_compression_name(Aedat4Compression c) noexcept;

/// One output stream the IOHeader's infoNode declares (`.../outInfo/<id>/` nodes).
struct Aedat4StreamInfo {
    std::string type;   ///< typeIdentifier: "EVTS", "FRME", "IMUS", "TRIG", …
    Geometry geometry;  ///< sizeX/sizeY of the stream's info node (0 × 0 when absent)
    std::string output, module, source;  ///< originalOutputName, originalModuleName, info/source
};

/// What an IOHeader says.
struct Aedat4Header {
    Aedat4Compression compression = Aedat4Compression::none;
    /// Offset of the FileDataTable in a file; −1 when there is none (always, on the network).
    std::int64_t data_table_position = -1;
    /// Declared streams by id.
    std::map<std::int32_t, Aedat4StreamInfo> streams;
    /// The EVTS stream with the lowest id, −1 when none is declared.
    std::int32_t first_event_stream() const;
};

/// Parses an IOHeader flatbuffer (the bytes after its u32 size prefix), checking every offset
/// against the bytes given. Throws FileError naming `source` and the byte `offset` of the
/// flatbuffer for bad offsets or a compression outside 0..4.
Aedat4Header parse_aedat4_header(std::span<const std::uint8_t> flatbuffer,
                                 const std::string& source, std::int64_t offset);

/// The IOHeader flatbuffer (without its size prefix) of a stream with one EVTS output of id
/// `stream_id`, sensor size `geometry` and source name `source`, packets compressed as `c`,
/// no data table. Parsed back by parse_aedat4_header and by DV's own readers.
std::vector<std::uint8_t> encode_aedat4_header(Aedat4Compression c, std::int32_t stream_id,
                                               Geometry geometry, const std::string& source);

/// One event as an EVTS packet stores it (coordinates may be negative in hostile input).
struct Aedat4Event {
    std::int64_t t = 0;
    std::int16_t x = 0, y = 0;
    std::uint8_t on = 0;  ///< 0 OFF, 1 ON (other values are invalid)
};

/// Decompresses and parses EVTS packet bodies, reusing its buffers from packet to packet.
class Aedat4PacketDecoder {
  public:
    /// Largest decompressed packet accepted (a bigger one does not decode).
    static constexpr std::size_t default_max_plain = std::size_t{256} << 20;

    /// A decoder for bodies compressed as `c`, refusing packets that decompress to more than
    /// `max_plain` bytes.
    explicit Aedat4PacketDecoder(Aedat4Compression c, std::size_t max_plain = default_max_plain);
    ~Aedat4PacketDecoder();
    Aedat4PacketDecoder(const Aedat4PacketDecoder&) = delete;
    Aedat4PacketDecoder& operator=(const Aedat4PacketDecoder&) = delete;

    /// Decodes one packet body; false (and no events) when it does not decompress, is larger than
    /// the limit, or is not a size-prefixed EventPacket whose event vector fits its bytes.
    bool decode(std::span<const std::uint8_t> body);
    /// Events of the last decoded packet.
    std::size_t size() const noexcept { return count_; }
    /// Event `i` of the last decoded packet (i < size()).
    Aedat4Event operator[](std::size_t i) const noexcept;

  private:
    bool decompress(std::span<const std::uint8_t> body);
    bool grow();
    Aedat4Compression compression_;
    std::size_t max_plain_;
    std::vector<std::uint8_t> plain_;
    const std::uint8_t* elements_ = nullptr;
    std::size_t count_ = 0;
    LZ4F_dctx_s* lz4_ = nullptr;
    ZSTD_DCtx_s* zstd_ = nullptr;
};

/// Builds EVTS packet bodies (size-prefixed EventPacket, compressed as asked).
class Aedat4PacketEncoder {
  public:
    explicit Aedat4PacketEncoder(Aedat4Compression c) : compression_(c) {}
    /// The body of one packet holding `events` (valid until the next call).
    std::span<const std::uint8_t> encode(std::span<const Event> events);

  private:
    Aedat4Compression compression_;
    std::vector<std::uint8_t> plain_, body_;
};

/// Appends a packet header (i32 stream id, i32 body size, little-endian) to `out`.
void append_aedat4_packet_header(std::vector<std::uint8_t>& out, std::int32_t stream_id,
                                 std::size_t body_size);

}  // namespace evformer::io
