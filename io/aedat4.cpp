// AEDAT 4.0 packet-level codec: IOHeader and EventPacket flatbuffers parsed by hand with every
// offset checked against the bytes present, LZ4/zstd frames, and the encoders the writer and the
// network sender use. Layouts: evformer/io/aedat4.hpp.
#include "evformer/io/aedat4.hpp"

#include <fmt/format.h>
#include <lz4frame.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "events_internal.hpp"
#include "evformer/error.hpp"

namespace evformer::io {
namespace {

using detail::load_le16;
using detail::load_le32;
using detail::load_le64;

// A flatbuffer table inside `buf` whose offsets are all checked before use.
class FbTable {
  public:
    // The table at absolute position `pos`; nullopt-like invalid when offsets leave the buffer.
    FbTable(std::span<const std::uint8_t> buf, std::size_t pos) : buf_(buf), pos_(pos) {
        if (pos_ > buf_.size() || buf_.size() - pos_ < 4) return;
        const auto soff = static_cast<std::int32_t>(load_le32(buf_.data() + pos_));
        const std::int64_t vt = static_cast<std::int64_t>(pos_) - soff;
        if (vt < 0 || static_cast<std::size_t>(vt) + 4 > buf_.size()) return;
        vt_ = static_cast<std::size_t>(vt);
        vt_size_ = load_le16(buf_.data() + vt_);
        if (vt_size_ < 4 || vt_ + vt_size_ > buf_.size()) return;
        ok_ = true;
    }
    // The table a root offset at `at` points to.
    static FbTable root(std::span<const std::uint8_t> buf, std::size_t at) {
        if (at + 4 > buf.size()) return FbTable(buf, buf.size());
        return FbTable(buf, at + load_le32(buf.data() + at));
    }
    bool ok() const { return ok_; }
    // Absolute position of field `i` with `bytes` bytes, or 0 when absent or out of bounds.
    std::size_t field(std::size_t i, std::size_t bytes) const {
        if (!ok_ || 4 + 2 * i + 2 > vt_size_) return 0;
        const std::size_t off = load_le16(buf_.data() + vt_ + 4 + 2 * i);
        if (off == 0 || pos_ + off + bytes > buf_.size()) return 0;
        return pos_ + off;
    }
    std::int64_t int_field(std::size_t i, std::size_t bytes, std::int64_t fallback) const {
        const auto at = field(i, bytes);
        if (at == 0) return fallback;
        if (bytes == 8) return static_cast<std::int64_t>(load_le64(buf_.data() + at));
        return static_cast<std::int32_t>(load_le32(buf_.data() + at));
    }
    // Start and element count of a vector (or string) field; {0, 0} when absent or bad.
    std::pair<std::size_t, std::size_t> vector(std::size_t i, std::size_t element) const {
        const auto at = field(i, 4);
        if (at == 0) return {0, 0};
        const std::size_t v = at + load_le32(buf_.data() + at);
        if (v + 4 > buf_.size() || v + 4 < v) return {0, 0};
        const std::size_t len = load_le32(buf_.data() + v);
        if (len > (buf_.size() - v - 4) / element) return {0, 0};
        return {v + 4, len};
    }

  private:
    std::span<const std::uint8_t> buf_;
    std::size_t pos_;
    std::size_t vt_ = 0;
    std::size_t vt_size_ = 0;
    bool ok_ = false;
};

std::string xml_attr(const std::string& xml, std::size_t from, std::size_t to,
                     const std::string& key) {
    const auto k = xml.find("key=\"" + key + "\"", from);
    if (k == std::string::npos || k >= to) return {};
    const auto gt = xml.find('>', k);
    const auto lt = xml.find('<', gt);
    if (gt == std::string::npos || lt == std::string::npos || lt > to) return {};
    return xml.substr(gt + 1, lt - gt - 1);
}

// Stream id → type and size from nodes named by path ".../outInfo/<id>/".
std::map<std::int32_t, Aedat4StreamInfo> parse_streams(const std::string& xml) {
    std::map<std::int32_t, Aedat4StreamInfo> streams;
    std::vector<std::pair<std::int32_t, std::size_t>> starts;
    const std::string marker = "outInfo/";
    std::size_t pos = 0;
    while ((pos = xml.find(marker, pos)) != std::string::npos) {
        pos += marker.size();
        std::int32_t id = 0;
        const auto r = std::from_chars(xml.data() + pos, xml.data() + xml.size(), id);
        if (r.ec == std::errc() && r.ptr < xml.data() + xml.size() && *r.ptr == '/' &&
            r.ptr + 1 < xml.data() + xml.size() && r.ptr[1] == '"')
            starts.emplace_back(id, pos);
    }
    for (std::size_t i = 0; i < starts.size(); ++i) {
        const auto from = starts[i].second;
        const auto to = i + 1 < starts.size() ? starts[i + 1].second : xml.size();
        Aedat4StreamInfo s;
        s.type = xml_attr(xml, from, to, "typeIdentifier");
        std::uint32_t w = 0, h = 0;
        const auto sx = xml_attr(xml, from, to, "sizeX");
        const auto sy = xml_attr(xml, from, to, "sizeY");
        std::from_chars(sx.data(), sx.data() + sx.size(), w);
        std::from_chars(sy.data(), sy.data() + sy.size(), h);
        s.geometry = {w, h};
        s.output = xml_attr(xml, from, to, "originalOutputName");
        s.module = xml_attr(xml, from, to, "originalModuleName");
        s.source = xml_attr(xml, from, to, "source");
        streams[starts[i].first] = s;
    }
    return streams;
}

void put32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put16(std::vector<std::uint8_t>& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put64(std::vector<std::uint8_t>& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '<')
            out += "&lt;";
        else if (c == '>')
            out += "&gt;";
        else if (c == '&')
            out += "&amp;";
        else if (c == '"')
            out += "&quot;";
        else
            out += c;
    }
    return out;
}

}  // namespace

const char* aedat4_compression_name(Aedat4Compression c) noexcept {
    switch (c) {
        case Aedat4Compression::none:
            return "none";
        case Aedat4Compression::lz4:
            return "lz4";
        case Aedat4Compression::lz4_high:
            return "lz4_high";
        case Aedat4Compression::zstd:
            return "zstd";
        case Aedat4Compression::zstd_high:
            return "zstd_high";
    }
    return "unknown";
}

std::int32_t Aedat4Header::first_event_stream() const {
    for (const auto& [id, s] : streams)
        if (s.type == "EVTS") return id;
    return -1;
}

Aedat4Header parse_aedat4_header(std::span<const std::uint8_t> fb, const std::string& source,
                                 std::int64_t offset) {
    const auto table = FbTable::root(fb, 0);
    if (!table.ok()) throw FileError(source, offset, "corrupt IOHeader flatbuffer (bad offsets)");
    const auto compression = table.int_field(0, 4, 0);
    Aedat4Header h;
    h.data_table_position = table.int_field(1, 8, -1);
    const auto [text, text_len] = table.vector(2, 1);
    const std::string xml(reinterpret_cast<const char*>(fb.data()) + text, text_len);
    if (compression < 0 || compression > 4)
        throw FileError(
            source, offset,
            fmt::format("unknown AEDAT 4.0 compression {} (expected 0..4)", compression));
    h.compression = static_cast<Aedat4Compression>(compression);
    h.streams = parse_streams(xml);
    return h;
}

std::vector<std::uint8_t> encode_aedat4_header(Aedat4Compression c, std::int32_t stream_id,
                                               Geometry geometry, const std::string& source) {
    static constexpr const char* kCompressionNames[] = {"NONE", "LZ4", "LZ4_HIGH", "ZSTD",
                                                        "ZSTD_HIGH"};
    const std::string base = "/mainloop/evformer/outInfo/";
    const std::string id = std::to_string(stream_id);
    const std::string xml = fmt::format(
        "<dv version=\"2.0\"><node name=\"outInfo\" path=\"{0}\">"
        "<node name=\"{1}\" path=\"{0}{1}/\">"
        "<attr key=\"compression\" type=\"string\">{2}</attr>"
        "<attr key=\"originalModuleName\" type=\"string\">evformer</attr>"
        "<attr key=\"originalOutputName\" type=\"string\">events</attr>"
        "<attr key=\"typeDescription\" type=\"string\">Array of events (polarity ON/OFF).</attr>"
        "<attr key=\"typeIdentifier\" type=\"string\">EVTS</attr>"
        "<node name=\"info\" path=\"{0}{1}/info/\">"
        "<attr key=\"sizeX\" type=\"int\">{3}</attr><attr key=\"sizeY\" type=\"int\">{4}</attr>"
        "<attr key=\"source\" type=\"string\">{5}</attr>"
        "</node></node></node></dv>",
        base, id, kCompressionNames[static_cast<int>(c)], geometry.width, geometry.height,
        xml_escape(source));
    // Layout (offsets in the flatbuffer; its u32 size prefix comes before byte 0, so the int64
    // field at 28 sits 8-aligned in the prefixed buffer): root offset → table at 20;
    // identifier "IOHE"; vtable at 8 (size 10, table size 20, fields at +16, +8, +4); table:
    // soffset, infoNode offset (→ 40), dataTablePosition (−1), compression; string at 40.
    std::vector<std::uint8_t> fb;
    put32(fb, 20);
    for (char ch : {'I', 'O', 'H', 'E'}) fb.push_back(static_cast<std::uint8_t>(ch));
    put16(fb, 10);
    put16(fb, 20);
    put16(fb, 16);
    put16(fb, 8);
    put16(fb, 4);
    fb.resize(20, 0);
    put32(fb, 12);
    put32(fb, 16);
    put64(fb, ~std::uint64_t{0});
    put32(fb, static_cast<std::uint32_t>(c));
    put32(fb, static_cast<std::uint32_t>(xml.size()));
    fb.insert(fb.end(), xml.begin(), xml.end());
    fb.push_back(0);
    while (fb.size() % 4) fb.push_back(0);
    return fb;
}

Aedat4PacketDecoder::Aedat4PacketDecoder(Aedat4Compression c, std::size_t max_plain)
    : compression_(c), max_plain_(max_plain) {}

Aedat4PacketDecoder::~Aedat4PacketDecoder() {
    if (lz4_) LZ4F_freeDecompressionContext(lz4_);
    if (zstd_) ZSTD_freeDCtx(zstd_);
}

Aedat4Event Aedat4PacketDecoder::operator[](std::size_t i) const noexcept {
    const std::uint8_t* p = elements_ + 16 * i;
    Aedat4Event e;
    e.t = static_cast<std::int64_t>(load_le64(p));
    e.x = static_cast<std::int16_t>(load_le16(p + 8));
    e.y = static_cast<std::int16_t>(load_le16(p + 10));
    e.on = p[12];
    return e;
}

bool Aedat4PacketDecoder::decode(std::span<const std::uint8_t> body) {
    count_ = 0;
    elements_ = nullptr;
    if (!decompress(body)) return false;
    // The decompressed body: u32 size prefix, then the EventPacket root table whose field 0 is
    // the vector of 16-byte events.
    if (plain_.size() < 8) return false;
    const std::size_t size = load_le32(plain_.data());
    if (size > plain_.size() - 4) return false;
    const std::span<const std::uint8_t> fb(plain_.data() + 4, size);
    const auto table = FbTable::root(fb, 0);
    if (!table.ok()) return false;
    const auto [start, count] = table.vector(0, 16);
    if (count > 0 && start == 0) return false;
    elements_ = plain_.data() + 4 + start;
    count_ = count;
    return true;
}

bool Aedat4PacketDecoder::grow() {
    if (plain_.size() >= max_plain_) return false;
    plain_.resize(std::min(max_plain_, std::max<std::size_t>(plain_.size() * 2, 1 << 16)));
    return true;
}

bool Aedat4PacketDecoder::decompress(std::span<const std::uint8_t> body) {
    plain_.clear();
    switch (compression_) {
        case Aedat4Compression::none:
            if (body.size() > max_plain_) return false;
            plain_.assign(body.begin(), body.end());
            return true;
        case Aedat4Compression::lz4:
        case Aedat4Compression::lz4_high: {
            if (!lz4_ && LZ4F_isError(LZ4F_createDecompressionContext(&lz4_, LZ4F_VERSION)))
                throw Error("lz4: cannot create a decompression context");
            LZ4F_resetDecompressionContext(lz4_);
            std::size_t in = 0, produced = 0;
            plain_.resize(std::min(max_plain_, std::max<std::size_t>(plain_.capacity(), 1 << 16)));
            while (true) {
                std::size_t src_size = body.size() - in;
                std::size_t dst_size = plain_.size() - produced;
                const auto rc = LZ4F_decompress(lz4_, plain_.data() + produced, &dst_size,
                                                body.data() + in, &src_size, nullptr);
                if (LZ4F_isError(rc)) return false;
                in += src_size;
                produced += dst_size;
                if (rc == 0) break;
                if (in == body.size() && dst_size == 0) return false;  // frame cut short
                if (produced == plain_.size() && !grow()) return false;
            }
            plain_.resize(produced);
            return true;
        }
        case Aedat4Compression::zstd:
        case Aedat4Compression::zstd_high: {
            if (!zstd_) zstd_ = ZSTD_createDCtx();
            if (!zstd_) throw Error("zstd: cannot create a decompression stream");
            ZSTD_DCtx_reset(zstd_, ZSTD_reset_session_only);
            plain_.resize(std::min(max_plain_, std::max<std::size_t>(plain_.capacity(), 1 << 16)));
            ZSTD_inBuffer in{body.data(), body.size(), 0};
            std::size_t produced = 0;
            while (true) {
                ZSTD_outBuffer o{plain_.data() + produced, plain_.size() - produced, 0};
                const auto rc = ZSTD_decompressStream(zstd_, &o, &in);
                if (ZSTD_isError(rc)) return false;
                produced += o.pos;
                if (rc == 0) break;
                if (in.pos == in.size && o.pos < o.size) return false;  // frame cut short
                if (produced == plain_.size() && !grow()) return false;
            }
            plain_.resize(produced);
            return true;
        }
    }
    return false;
}

std::span<const std::uint8_t> Aedat4PacketEncoder::encode(std::span<const Event> events) {
    // Size-prefixed EventPacket (offsets relative to the flatbuffer, after the prefix): root
    // offset → table at 16; identifier "EVTS"; vtable at 8 (size 6, table size 8, field 0 at +4);
    // table: soffset, vector offset (→ 24); vector length at 24, 16-byte events from 28 (8-aligned
    // in the prefixed buffer).
    auto& p = plain_;
    p.clear();
    const std::size_t fb_size = 28 + 16 * events.size();
    put32(p, static_cast<std::uint32_t>(fb_size));
    put32(p, 16);
    for (char ch : {'E', 'V', 'T', 'S'}) p.push_back(static_cast<std::uint8_t>(ch));
    put16(p, 6);
    put16(p, 8);
    put16(p, 4);
    p.resize(4 + 16, 0);
    put32(p, 8);
    put32(p, 4);
    put32(p, static_cast<std::uint32_t>(events.size()));
    const std::size_t at = p.size();
    p.resize(at + 16 * events.size(), 0);
    std::uint8_t* out = p.data() + at;
    for (const auto& e : events) {
        const auto t = static_cast<std::uint64_t>(e.t);
        std::memcpy(out, &t, 8);
        std::memcpy(out + 8, &e.x, 2);
        std::memcpy(out + 10, &e.y, 2);
        out[12] = e.p ? 1 : 0;
        out += 16;
    }
    switch (compression_) {
        case Aedat4Compression::none:
            return p;
        case Aedat4Compression::lz4:
        case Aedat4Compression::lz4_high: {
            LZ4F_preferences_t prefs{};
            prefs.compressionLevel = compression_ == Aedat4Compression::lz4_high ? 9 : 0;
            body_.resize(LZ4F_compressFrameBound(p.size(), &prefs));
            const auto n =
                LZ4F_compressFrame(body_.data(), body_.size(), p.data(), p.size(), &prefs);
            if (LZ4F_isError(n)) throw Error("lz4: cannot compress an AEDAT 4.0 packet");
            body_.resize(n);
            return body_;
        }
        case Aedat4Compression::zstd:
        case Aedat4Compression::zstd_high: {
            body_.resize(ZSTD_compressBound(p.size()));
            const auto n = ZSTD_compress(body_.data(), body_.size(), p.data(), p.size(),
                                         compression_ == Aedat4Compression::zstd_high ? 19 : 3);
            if (ZSTD_isError(n)) throw Error("zstd: cannot compress an AEDAT 4.0 packet");
            body_.resize(n);
            return body_;
        }
    }
    return p;
}

void append_aedat4_packet_header(std::vector<std::uint8_t>& out, std::int32_t stream_id,
                                 std::size_t body_size) {
    put32(out, static_cast<std::uint32_t>(stream_id));
    put32(out, static_cast<std::uint32_t>(body_size));
}

namespace detail {
namespace {

// AEDAT 4.0 files: the version line, the IOHeader (one EVTS stream, id 0, no data table) and
// EVTS packets of up to 8192 events each.
class Aedat4Writer final : public EventWriter {
  public:
    static constexpr std::size_t packet_events = 8192;

    Aedat4Writer(const std::filesystem::path& path, const WriterOptions& opt)
        : file_(path),
          path_(path.string()),
          encoder_(compression_of(opt.aedat4_compression, path.string())) {
        if (!opt.geometry.known())
            throw ConfigError(path_ +
                              ": AEDAT 4.0 states the sensor size in its header; give it "
                              "(--sensor WxH) when the input does not");
        const auto header = encode_aedat4_header(compression_of(opt.aedat4_compression, path_), 0,
                                                 opt.geometry, path.filename().string());
        const std::string magic = "#!AER-DAT4.0\r\n";
        bytes_.assign(magic.begin(), magic.end());
        put32(bytes_, static_cast<std::uint32_t>(header.size()));
        bytes_.insert(bytes_.end(), header.begin(), header.end());
    }

    void write(std::span<const Event> events) override {
        for (const auto& e : events) {
            if (e.t < last_t_)
                throw ConfigError(
                    fmt::format("{}: AEDAT 4.0 events must not go back in time "
                                "({} after {})",
                                path_, e.t, last_t_));
            last_t_ = e.t;
            pending_.push_back(e);
            if (pending_.size() == packet_events) packet();
        }
    }

    void finish() override {
        if (!pending_.empty()) packet();
        file_.write(bytes_.data(), bytes_.size());
        file_.commit();
    }

  private:
    static Aedat4Compression compression_of(int c, const std::string& path) {
        if (c < 0 || c > 4)
            throw ConfigError(fmt::format("{}: AEDAT 4.0 compression {} (expected 0..4)", path, c));
        return static_cast<Aedat4Compression>(c);
    }

    void packet() {
        const auto body = encoder_.encode(pending_);
        append_aedat4_packet_header(bytes_, 0, body.size());
        bytes_.insert(bytes_.end(), body.begin(), body.end());
        pending_.clear();
        if (bytes_.size() >= (std::size_t{1} << 20)) {
            file_.write(bytes_.data(), bytes_.size());
            bytes_.clear();
        }
    }

    AtomicFile file_;
    std::string path_;
    Aedat4PacketEncoder encoder_;
    std::vector<std::uint8_t> bytes_;
    std::vector<Event> pending_;
    std::int64_t last_t_ = std::numeric_limits<std::int64_t>::min();
};

}  // namespace

EventWriterFormat aedat4_writer_format() {
    EventWriterFormat f;
    f.name = "aedat4";
    f.extensions = {".aedat4"};
    f.description = "AEDAT 4.0 (one EVTS stream, LZ4 packets by default)";
    f.create = [](const std::filesystem::path& path, const WriterOptions& opt) {
        return std::unique_ptr<EventWriter>(new Aedat4Writer(path, opt));
    };
    return f;
}

}  // namespace detail
}  // namespace evformer::io
