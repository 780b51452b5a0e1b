// AEDAT recordings (facts from the iniVation format documentation and jAER): 2.0 with DVS128
// addresses, 3.1 polarity packets and 4.0 event streams (LZ4 / zstd compressed flatbuffers,
// parsed by hand with every offset checked against the bytes present).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include "events_internal.hpp"
#include "evformer/error.hpp"
#include "evformer/io/aedat4.hpp"

namespace evformer::io::detail {
namespace {

// The camera an AEDAT 2.0 file names in its `# AEChip:` header line (jAER's chip class), and
// the address layout and sensor size that go with it.
struct Aedat2Chip {
    enum class Layout { dvs128, davis } layout = Layout::dvs128;
    Geometry geometry{128, 128};
    std::string name;  // the class named by the header ("" when there is no AEChip line)
};

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Reads the chip from the header lines; throws FileError naming a chip whose layout is unknown.
Aedat2Chip aedat2_chip(const std::vector<std::string>& header, const std::string& source) {
    Aedat2Chip chip;
    for (const auto& line : header) {
        const auto at = line.find("AEChip:");
        if (at == std::string::npos) continue;
        chip.name = line.substr(at + 7);
        chip.name.erase(0, chip.name.find_first_not_of(" \t"));
        chip.name.erase(chip.name.find_last_not_of(" \t\r") + 1);
    }
    if (chip.name.empty()) return chip;
    const auto cls = lower(chip.name.substr(chip.name.rfind('.') + 1));
    if (cls.find("dvs128") != std::string::npos) return chip;
    struct Davis {
        const char* model;
        Geometry g;
    };
    static const Davis davis[] = {{"davis240", {240, 180}},
                                  {"davis346", {346, 260}},
                                  {"davis640", {640, 480}},
                                  {"davis208", {208, 192}},
                                  {"davis128", {128, 128}}};
    for (const auto& d : davis)
        if (cls.rfind(d.model, 0) == 0) {
            chip.layout = Aedat2Chip::Layout::davis;
            chip.geometry = d.g;
            return chip;
        }
    throw FileError(source, -1,
                    fmt::format("AEDAT 2.0 from chip '{}' (# AEChip header line): its address "
                                "layout is not known (read: DVS128, DAVIS128/208/240/346/640)",
                                chip.name));
}

// ---------------------------------------------------------------------------------------------
// AEDAT 2.0: '#' header lines, then big-endian (u32 address, u32 µs timestamp) records. The
// address layout depends on the chip (jAER's DVS128 and DAVIS extractors).

class Aedat2Reader final : public StreamReader {
  public:
    Aedat2Reader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "aedat2", opt), orientation_(opt.aedat2_orientation) {
        const auto header = read_text_header(*src_, '#');
        if (header.empty() || header[0].rfind("!AER-DAT2.0", 0) != 0)
            throw FileError(source_, 0, "not an AEDAT 2.0 file (expected '#!AER-DAT2.0')");
        chip_ = aedat2_chip(header, source_);
        if (chip_.layout == Aedat2Chip::Layout::davis && orientation_ != Aedat2Orientation::jaer)
            throw ConfigError(
                fmt::format("{}: --orientation applies to DVS128 addresses; this "
                            "file is from a {} (read in jAER's DAVIS layout)",
                            source_, chip_.name));
        if (chip_.name.empty()) refuse_wide_addresses();
        geometry_ = opt.geometry.known() ? opt.geometry : chip_.geometry;
    }

    std::size_t read(EventChunk& chunk) override {
        if (chip_.layout == Aedat2Chip::Layout::davis)
            return fill(chunk, 8, 1, [this](auto w, Event* out, std::size_t room) {
                return decode_davis(w, out, room);
            });
        return fill(chunk, 8, 1,
                    [this](auto w, Event* out, std::size_t room) { return decode(w, out, room); });
    }

  private:
    std::string record_name() const override { return "AEDAT 2.0 event (8 bytes)"; }

    // Without an AEChip line the file is taken for DVS128 (15-bit addresses, as CIFAR10-DVS);
    // a file whose first records mostly use wider addresses is from another chip and would
    // decode to pixels that are not in the recording, so it is refused.
    void refuse_wide_addresses() {
        src_->ensure(8 * 256);
        const auto w = src_->window();
        const std::size_t records = std::min<std::size_t>(w.size() / 8, 256);
        std::size_t wide = 0;
        for (std::size_t i = 0; i < records; ++i) wide += load_be32(w.data() + 8 * i) > 0xFFFF;
        if (records > 0 && 2 * wide > records)
            throw FileError(source_, src_->offset(),
                            fmt::format("AEDAT 2.0 addresses wider than DVS128's 15 bits ({} of "
                                        "the first {} records) and no '# AEChip:' header line "
                                        "naming the chip: cannot tell the address layout",
                                        wide, records));
    }

    // jAER's DAVIS layout: bit 31 set = APS or IMU sample (skipped), bit 10 set = external
    // input event (skipped); else y = bits 30..22, raw x = bits 21..12, ON = bit 11, and jAER
    // shows x = width − 1 − raw x.
    std::pair<std::size_t, std::size_t> decode_davis(std::span<const std::uint8_t> w, Event* out,
                                                     std::size_t room) {
        const std::size_t records = std::min(w.size() / 8, room);
        const std::uint8_t* p = w.data();
        const std::uint32_t width = geometry_.width, height = geometry_.height;
        const std::uint32_t chip_width = chip_.geometry.width;
        std::size_t n = 0;
        for (std::size_t i = 0; i < records; ++i) {
            const std::uint32_t addr = load_be32(p + 8 * i);
            const std::uint32_t ts = load_be32(p + 8 * i + 4);
            const auto at = src_->offset() + std::int64_t(8 * i);
            if (addr >> 31) [[unlikely]] {
                skip("APS/IMU samples (address bit 31)");
                continue;
            }
            if ((addr >> 10) & 1) [[unlikely]] {
                skip("external input events (address bit 10)");
                continue;
            }
            const std::int64_t t = timestamp(ts, at);
            const std::uint32_t raw_x = (addr >> 12) & 0x3FF;
            const std::uint32_t y = (addr >> 22) & 0x1FF;
            if (raw_x >= chip_width) [[unlikely]] {
                violation(Violation::coordinate_out_of_range, at);
                continue;
            }
            const Event e{t, static_cast<std::uint16_t>(chip_width - 1 - raw_x),
                          static_cast<std::uint16_t>(y),
                          static_cast<std::uint8_t>((addr >> 11) & 1)};
            if (e.x < width && e.y < height) [[likely]]
                out[n++] = e;
            else
                violation(Violation::coordinate_out_of_range, at);
        }
        return {records * 8, n};
    }

    // A 32-bit timestamp that falls by more than 2³¹ wraps (+2³²); a smaller fall is a violation.
    std::int64_t timestamp(std::uint32_t ts, std::int64_t at) {
        if (ts < last_) [[unlikely]] {
            if (last_ - ts > 0x80000000u)
                epoch_ += std::int64_t{1} << 32;
            else
                violation(Violation::time_backwards, at);
        }
        last_ = ts;
        return epoch_ + ts;
    }

    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        const std::size_t records = std::min(w.size() / 8, room);
        const std::uint8_t* p = w.data();
        std::size_t n = 0;
        for (std::size_t i = 0; i < records; ++i) {
            const std::uint32_t addr = load_be32(p + 8 * i);
            const std::uint32_t ts = load_be32(p + 8 * i + 4);
            const auto at = [&] { return src_->offset() + std::int64_t(8 * i); };
            if (addr > 0x7FFF) [[unlikely]] {
                if (addr >> 16)
                    violation(Violation::unknown_word, at());
                else
                    skip("external (special) events");
                continue;
            }
            const std::int64_t t = timestamp(ts, at());
            const auto raw_x = static_cast<std::uint16_t>((addr >> 1) & 0x7F);
            const auto raw_y = static_cast<std::uint16_t>((addr >> 8) & 0x7F);
            const auto bit0 = static_cast<std::uint8_t>(addr & 1);
            Event e{t, 0, 0, 0};
            switch (orientation_) {
                case Aedat2Orientation::jaer:
                    e.x = static_cast<std::uint16_t>(127 - raw_x);
                    e.y = raw_y;
                    e.p = bit0 ^ 1;
                    break;
                case Aedat2Orientation::spikingjelly:
                    e.x = static_cast<std::uint16_t>(127 - raw_y);
                    e.y = static_cast<std::uint16_t>(127 - raw_x);
                    e.p = bit0 ^ 1;
                    break;
                case Aedat2Orientation::tonic:
                    e.x = raw_y;
                    e.y = raw_x;
                    e.p = bit0;
                    break;
            }
            if (e.x < geometry_.width && e.y < geometry_.height) [[likely]]
                out[n++] = e;
            else
                violation(Violation::coordinate_out_of_range, at());
        }
        return {records * 8, n};
    }

    Aedat2Orientation orientation_;
    Aedat2Chip chip_;
    std::uint32_t last_ = 0;
    std::int64_t epoch_ = 0;
};

// ---------------------------------------------------------------------------------------------
// AEDAT 3.1: '#' header to '#!END-HEADER', then packets of a 28-byte little-endian header and
// capacity × size bytes of events; polarity events (type 1) are 8 bytes.

// Sensor size from a camera name in a header line ("DVS128", "DAVIS346", …).
Geometry sensor_from_name(const std::string& text) {
    struct Known {
        const char* name;
        Geometry g;
    };
    static const Known known[] = {{"DVS128", {128, 128}},   {"DAVIS128", {128, 128}},
                                  {"DAVIS208", {208, 192}}, {"DAVIS240", {240, 180}},
                                  {"DAVIS346", {346, 260}}, {"DAVIS640", {640, 480}},
                                  {"DVXplorer", {640, 480}}};
    for (const auto& k : known)
        if (text.find(k.name) != std::string::npos) return k.g;
    return {};
}

class Aedat3Reader final : public StreamReader {
  public:
    Aedat3Reader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "aedat3", opt) {
        const auto header = read_text_header(*src_, '#', "!END-HEADER");
        if (header.empty() || header[0].rfind("!AER-DAT3.1", 0) != 0)
            throw FileError(source_, 0, "not an AEDAT 3.1 file (expected '#!AER-DAT3.1')");
        if (header.back() != "!END-HEADER")
            throw FileError(source_, src_->offset(),
                            "AEDAT 3.1 header does not end with '#!END-HEADER'");
        geometry_ = opt.geometry;
        for (const auto& line : header)
            if (!geometry_.known() && line.find("Source") != std::string::npos)
                geometry_ = sensor_from_name(line);
    }

    std::size_t read(EventChunk& chunk) override {
        Event* out = chunk.data();
        std::size_t n = 0;
        while (n < chunk.capacity()) {
            if (events_left_ == 0 && bytes_left_ == 0) {
                if (!next_packet()) break;
                continue;
            }
            if (events_left_ == 0) {
                if (!src_->skip(bytes_left_)) throw_truncated(*src_, "AEDAT 3.1 packet body");
                bytes_left_ = 0;
                continue;
            }
            if (src_->available() < 8 && !src_->ensure(8))
                throw_truncated(*src_, "AEDAT 3.1 polarity event (8 bytes)");
            const auto w = src_->window();
            const std::size_t k = std::min({w.size() / 8, events_left_, chunk.capacity() - n});
            n += decode(w.data(), k, out + n);
            src_->consume(8 * k);
            events_left_ -= k;
            bytes_left_ -= 8 * k;
        }
        chunk.set_size(n);
        return n;
    }

  private:
    std::size_t decode(const std::uint8_t* p, std::size_t k, Event* out) {
        std::size_t n = 0;
        for (std::size_t i = 0; i < k; ++i) {
            const std::uint32_t data = load_le32(p + 8 * i);
            const auto ts = static_cast<std::int32_t>(load_le32(p + 8 * i + 4));
            const auto at = src_->offset() + std::int64_t(8 * i);
            if ((data & 1) == 0) {
                skip("invalid (cleared) polarity events");
                continue;
            }
            if (ts < 0) {
                violation(Violation::invalid_packet, at);
                continue;
            }
            const Event e{overflow_ | ts, static_cast<std::uint16_t>((data >> 17) & 0x7FFF),
                          static_cast<std::uint16_t>((data >> 2) & 0x7FFF),
                          static_cast<std::uint8_t>((data >> 1) & 1)};
            if (e.t < last_) violation(Violation::time_backwards, at);
            last_ = e.t;
            if (geometry_.known() && (e.x >= geometry_.width || e.y >= geometry_.height)) {
                violation(Violation::coordinate_out_of_range, at);
                continue;
            }
            out[n++] = e;
        }
        return n;
    }

    // Reads the next packet header; false at the clean end of the stream.
    bool next_packet() {
        if (src_->available() == 0 && !src_->refill()) return false;
        if (!src_->ensure(28)) throw_truncated(*src_, "AEDAT 3.1 packet header (28 bytes)");
        const auto* h = src_->window().data();
        const auto type = static_cast<std::int16_t>(load_le16(h));
        const auto size = static_cast<std::int32_t>(load_le32(h + 4));
        const auto ts_overflow = static_cast<std::int32_t>(load_le32(h + 12));
        const auto capacity = static_cast<std::int32_t>(load_le32(h + 16));
        const auto number = static_cast<std::int32_t>(load_le32(h + 20));
        const auto valid = static_cast<std::int32_t>(load_le32(h + 24));
        if (size <= 0 || capacity < 0 || number < 0 || number > capacity || valid < 0 ||
            valid > number || ts_overflow < 0 ||
            std::int64_t{size} * capacity > (std::int64_t{1} << 31))
            throw FileError(source_, src_->offset(),
                            fmt::format("inconsistent AEDAT 3.1 packet header (type {}, event "
                                        "size {}, capacity {}, number {}, valid {})",
                                        type, size, capacity, number, valid));
        src_->consume(28);
        bytes_left_ = static_cast<std::uint64_t>(size) * static_cast<std::uint64_t>(capacity);
        if (type == 1 && size == 8) {
            events_left_ = static_cast<std::size_t>(number);
            overflow_ = std::int64_t{ts_overflow} << 31;
        } else {
            if (type == 1) violation(Violation::invalid_packet, src_->offset() - 28);
            skip(fmt::format("type-{} packets", type));
            events_left_ = 0;
        }
        return true;
    }

    std::size_t events_left_ = 0;
    std::uint64_t bytes_left_ = 0;
    std::int64_t overflow_ = 0;
    std::int64_t last_ = 0;
};

// ---------------------------------------------------------------------------------------------
// AEDAT 4.0

class Aedat4Reader final : public StreamReader {
  public:
    static constexpr std::size_t max_packet = std::size_t{256} << 20;

    Aedat4Reader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "aedat4", opt) {
        const std::string magic = "#!AER-DAT4.0\r\n";
        if (!src_->ensure(magic.size() + 4) || !starts_with(src_->window(), magic))
            throw FileError(source_, 0, "not an AEDAT 4.0 file (expected '#!AER-DAT4.0\\r\\n')");
        src_->consume(magic.size());
        const std::size_t len = load_le32(src_->window().data());
        if (len > (std::size_t{16} << 20))
            throw FileError(source_, src_->offset(),
                            fmt::format("IOHeader length {} is implausible (at most 16 MiB)", len));
        src_->consume(4);
        const auto header_at = src_->offset();
        if (!src_->ensure(len)) throw_truncated(*src_, "AEDAT 4.0 IOHeader");
        const auto header = parse_aedat4_header(src_->window().first(len), source_, header_at);
        src_->consume(len);
        data_table_ = header.data_table_position;
        decoder_ = std::make_unique<Aedat4PacketDecoder>(header.compression, max_packet);
        streams_ = header.streams;
        chosen_ = choose_stream(opt.aedat4_stream);
        geometry_ = opt.geometry;
        if (!geometry_.known() && chosen_ >= 0) geometry_ = streams_.at(chosen_).geometry;
    }

    std::size_t read(EventChunk& chunk) override {
        Event* out = chunk.data();
        std::size_t n = 0;
        while (n < chunk.capacity()) {
            if (next_ == count_) {
                if (!next_packet()) break;
                continue;
            }
            const std::size_t k = std::min(count_ - next_, chunk.capacity() - n);
            n += copy_events(k, out + n);
        }
        chunk.set_size(n);
        return n;
    }

  private:
    // The EVTS stream to read: by id or name when asked, else the lowest id; -1 when the file
    // declares none (then no packet is read). Throws ConfigError for a choice that does not
    // name exactly one EVTS stream.
    std::int32_t choose_stream(const std::string& wanted) const {
        std::vector<std::int32_t> evts;
        std::string listing;
        for (const auto& [id, s] : streams_) {
            if (s.type != "EVTS") continue;
            evts.push_back(id);
            listing += fmt::format("{}{} ({}{}{})", listing.empty() ? "" : ", ", id,
                                   s.output.empty() ? s.module : s.output,
                                   s.source.empty() ? "" : ", ", s.source);
        }
        if (wanted.empty()) return evts.empty() ? -1 : evts.front();
        std::vector<std::int32_t> match;
        for (auto id : evts) {
            const auto& s = streams_.at(id);
            if (wanted == std::to_string(id) || wanted == s.output || wanted == s.module ||
                wanted == s.source)
                match.push_back(id);
        }
        if (match.size() != 1)
            throw ConfigError(fmt::format(
                "{}: --stream '{}' {} (EVTS streams: {}; name one by id)", source_, wanted,
                match.empty() ? "names no EVTS stream" : "names several EVTS streams",
                listing.empty() ? "none" : listing));
        return match.front();
    }

    std::size_t copy_events(std::size_t k, Event* out) {
        std::size_t n = 0;
        for (std::size_t i = next_; i < next_ + k; ++i) {
            const auto e = (*decoder_)[i];
            if (e.t < last_) violation(Violation::time_backwards, packet_at_);
            last_ = e.t;
            if (e.on > 1) violation(Violation::bad_polarity, packet_at_);
            if (e.x < 0 || e.y < 0 ||
                (geometry_.known() && (std::uint32_t(e.x) >= geometry_.width ||
                                       std::uint32_t(e.y) >= geometry_.height))) {
                violation(Violation::coordinate_out_of_range, packet_at_);
                continue;
            }
            out[n++] = Event{e.t, static_cast<std::uint16_t>(e.x), static_cast<std::uint16_t>(e.y),
                             static_cast<std::uint8_t>(e.on != 0)};
        }
        next_ += k;
        return n;
    }

    // Moves to the next EVTS packet, skipping other streams; false at the end of the packets.
    bool next_packet() {
        while (true) {
            next_ = count_ = 0;
            if (data_table_ >= 0 && src_->offset() >= data_table_) return false;
            if (src_->available() == 0 && !src_->refill()) return false;
            packet_at_ = src_->offset();
            if (!src_->ensure(8)) throw_truncated(*src_, "AEDAT 4.0 packet header (8 bytes)");
            const auto id = static_cast<std::int32_t>(load_le32(src_->window().data()));
            const auto size = static_cast<std::int32_t>(load_le32(src_->window().data() + 4));
            if (size < 0 || static_cast<std::size_t>(size) > max_packet)
                throw FileError(
                    source_, packet_at_,
                    fmt::format("AEDAT 4.0 packet size {} (expected 0..256 MiB)", size));
            src_->consume(8);
            const auto it = streams_.find(id);
            if (it != streams_.end() && it->second.type == "EVTS" && id != chosen_) {
                skip(fmt::format("EVTS packets of stream {} (not chosen)", id));
                if (!src_->skip(static_cast<std::uint64_t>(size)))
                    throw_truncated(*src_, "AEDAT 4.0 packet body");
                continue;
            }
            if (it == streams_.end() || it->second.type != "EVTS") {
                if (it == streams_.end()) violation(Violation::invalid_packet, packet_at_);
                skip(fmt::format("{} packets",
                                 it == streams_.end() ? "unknown-stream" : it->second.type));
                if (!src_->skip(static_cast<std::uint64_t>(size)))
                    throw_truncated(*src_, "AEDAT 4.0 packet body");
                continue;
            }
            if (!src_->ensure(static_cast<std::size_t>(size)))
                throw_truncated(*src_, "AEDAT 4.0 packet body");
            const auto body = src_->window().first(static_cast<std::size_t>(size));
            const bool ok = decoder_->decode(body);
            src_->consume(body.size());
            if (!ok) {
                violation(Violation::invalid_packet, packet_at_);
                continue;
            }
            count_ = decoder_->size();
            if (count_ > 0) return true;
        }
    }

    std::int64_t data_table_ = -1;
    std::map<std::int32_t, Aedat4StreamInfo> streams_;
    std::int32_t chosen_ = -1;
    std::unique_ptr<Aedat4PacketDecoder> decoder_;
    std::size_t count_ = 0;
    std::size_t next_ = 0;
    std::int64_t packet_at_ = 0;
    std::int64_t last_ = std::numeric_limits<std::int64_t>::min();
};

int probe_magic(std::span<const std::uint8_t> head, std::string_view magic) {
    return starts_with(head, magic) ? 100 : 0;
}

}  // namespace

EventFormat aedat2_format() {
    return stream_format<Aedat2Reader>(
        "aedat2", "AEDAT 2.0 (jAER, DVS128 addresses as in CIFAR10-DVS)",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_magic(head, "#!AER-DAT2.0");
        });
}

EventFormat aedat3_format() {
    return stream_format<Aedat3Reader>(
        "aedat3", "AEDAT 3.1 (polarity packets)",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_magic(head, "#!AER-DAT3.1");
        });
}

EventFormat aedat4_format() {
    return stream_format<Aedat4Reader>(
        "aedat4", "AEDAT 4.0 (EVTS streams; none, LZ4 or zstd packets)",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_magic(head, "#!AER-DAT4.0");
        });
}

}  // namespace evformer::io::detail
