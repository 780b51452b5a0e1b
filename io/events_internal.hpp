// Shared machinery of the event decoders (private to io/): a bounded byte source over a file or
// a memory buffer, text-header parsing, and the format entries each decoder file provides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "evformer/io/events.hpp"

namespace evformer::io::detail {

/// Bytes of a recording seen through a bounded window that refills from a file (or one memory
/// span). Decoders consume whole records from window(); refill() keeps an unconsumed partial
/// record at the front, so records split across reads are handled.
class ByteSource {
  public:
    /// A source that reads `path` through a buffer of `buffer_bytes`.
    static std::unique_ptr<ByteSource> open_file(const std::filesystem::path& path,
                                                 std::size_t buffer_bytes);
    /// A source over bytes already in memory (no copy).
    static std::unique_ptr<ByteSource> from_memory(std::span<const std::uint8_t> bytes,
                                                   std::string name);
    ~ByteSource();
    ByteSource(const ByteSource&) = delete;
    ByteSource& operator=(const ByteSource&) = delete;

    /// The unconsumed bytes currently available.
    std::span<const std::uint8_t> window() const noexcept { return {begin_, end_}; }
    /// Number of unconsumed bytes available.
    std::size_t available() const noexcept { return static_cast<std::size_t>(end_ - begin_); }
    /// Marks `n` bytes of the window as used.
    void consume(std::size_t n) noexcept { begin_ += n; }
    /// Reads more bytes after the unconsumed ones; false when nothing could be added (end).
    bool refill();
    /// Refills until at least `n` bytes are available (growing the buffer if needed); false if
    /// the input ends first.
    bool ensure(std::size_t n);
    /// Skips `n` bytes (seeking in files); false if the input ends first.
    bool skip(std::uint64_t n);
    /// Byte offset in the input of window().front().
    std::int64_t offset() const noexcept {
        return consumed_before_ + static_cast<std::int64_t>(begin_ - base_);
    }
    /// True when no bytes are left at all.
    bool at_end() { return available() == 0 && !refill(); }
    /// File name (or memory buffer name) for messages.
    const std::string& name() const noexcept { return name_; }
    /// Total input size in bytes when known (files and buffers), else -1.
    std::int64_t total_size() const noexcept { return total_size_; }

  private:
    ByteSource() = default;
    std::string name_;
    int fd_ = -1;
    std::vector<std::uint8_t> buffer_;
    const std::uint8_t* base_ = nullptr;  // start of the current buffer contents
    const std::uint8_t* begin_ = nullptr;
    const std::uint8_t* end_ = nullptr;
    std::int64_t consumed_before_ = 0;  // input offset of base_
    std::int64_t total_size_ = -1;
    bool eof_ = false;
};

/// A binary output file written under a temporary name and renamed onto its final name on
/// commit(); removed if never committed.
class AtomicFile {
  public:
    /// Creates the temporary file beside `final_path`; throws FileError if it cannot.
    explicit AtomicFile(std::filesystem::path final_path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    /// Appends bytes.
    void write(const void* data, std::size_t n);
    /// Flushes, closes and renames onto the final name.
    void commit();

  private:
    std::filesystem::path final_;
    std::filesystem::path temp_;
    std::FILE* file_ = nullptr;
    bool committed_ = false;
};

/// Throws FileError for a record cut short by the end of the input.
[[noreturn]] void throw_truncated(const ByteSource& src, const std::string& what);

/// Lines of a text header whose lines start with `marker` ('%' or '#'); stops before the first
/// line that does not (or after a line equal to `terminator`, when given). Lines lose their
/// marker, leading blanks and line ending. Throws FileError if a line is unterminated or the
/// header exceeds 1 MiB.
std::vector<std::string> read_text_header(ByteSource& src, char marker,
                                          const std::string& terminator = "");

/// How a Prophesee header (RAW or DAT: `%` lines, `% end` optional) ended.
struct PropheseeHeader {
    /// Lines without their marker, leading blanks and line ending.
    std::vector<std::string> lines;
    /// Bytes the header takes (data, or DAT's type/size bytes, start there).
    std::size_t bytes = 0;
};

/// Finds where a Prophesee header ends in `bytes`, the start of a file (`at_end`: they reach the
/// end of the input; `total`: the input's size from bytes[0], -1 when unknown). A header line
/// is `%`, printable text and `\n`; `% end` ends the header. Without `% end`, a first data word
/// that starts with byte 0x25 ('%') can look like a header line: a line holding bytes that are
/// not printable text is data; trailing lines that are not of the form `% key…` (such as a bare
/// `%`) are header or data as the input's size decides — the data after the header (`prefix`
/// bytes, then whole `word`-byte records) must fill the input exactly. Sets `*ambiguous` when
/// several readings fit, `*unterminated` when the last line is cut by the end of `bytes` and
/// more bytes are needed to decide.
PropheseeHeader scan_prophesee_header(std::span<const std::uint8_t> bytes, bool at_end,
                                      std::int64_t total, std::size_t word, std::size_t prefix,
                                      bool* ambiguous, bool* unterminated);

/// Reads a Prophesee header from a source (see scan_prophesee_header) and consumes it. Throws
/// FileError when a line has no end, the header exceeds 1 MiB, or the end of the header is
/// truly ambiguous (naming the offset and the two readings).
std::vector<std::string> read_prophesee_header(ByteSource& src, std::size_t word,
                                               std::size_t prefix);

/// Splits "key value…" into key and the rest (both trimmed).
std::pair<std::string, std::string> split_key_value(const std::string& line);

/// Lines of a text header found in a probe's bytes (same rules, no errors; may be partial).
std::vector<std::string> probe_text_header(std::span<const std::uint8_t> head, char marker,
                                           std::size_t* header_end = nullptr);

/// Little-endian loads (unaligned, fast on x86).
inline std::uint16_t load_le16(const std::uint8_t* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline std::uint32_t load_le32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline std::uint64_t load_le64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
/// The second 8 bytes of an Event (x, y, p; padding zero), so a decoder can write a whole event
/// as one 16-byte store instead of four field stores.
inline std::uint64_t pack_xyp(std::uint32_t x, std::uint32_t y, std::uint32_t p) noexcept {
    return (x & 0xFFFFu) | (std::uint64_t{y & 0xFFFFu} << 16) | (std::uint64_t{p & 0xFFu} << 32);
}
static_assert(offsetof(Event, t) == 0 && offsetof(Event, x) == 8 && offsetof(Event, y) == 10 &&
                  offsetof(Event, p) == 12,
              "pack_xyp assumes the layout {t, x, y, p}");

/// An Event array seen as 64-bit words (t, xyp, t, xyp, …) for loops the compiler vectorises;
/// may_alias makes the stores visible to later reads through Event.
using EventWord = std::uint64_t __attribute__((may_alias));
inline EventWord* event_words(Event* e) noexcept {
    return reinterpret_cast<EventWord*>(e);
}

/// Writes one event {t, pack_xyp(x, y, p)} with a single 16-byte store.
inline void store_event(Event* dst, std::int64_t t, std::uint64_t xyp) noexcept {
    const std::uint64_t words[2] = {static_cast<std::uint64_t>(t), xyp};
    std::memcpy(static_cast<void*>(dst), words, sizeof words);
}

/// Big-endian 32-bit load.
inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
    return __builtin_bswap32(load_le32(p));
}

/// True when `s` starts with `prefix`.
inline bool starts_with(std::span<const std::uint8_t> s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && std::memcmp(s.data(), prefix.data(), prefix.size()) == 0;
}

/// The extension of a path, lower case, with the dot.
std::string lower_extension(const std::filesystem::path& path);

/// A reader over a ByteSource: the base of every byte-stream decoder.
class StreamReader : public EventReader {
  protected:
    StreamReader(std::unique_ptr<ByteSource> src, std::string format, const ReaderOptions& opt)
        : src_(std::move(src)) {
        source_ = src_->name();
        format_ = std::move(format);
        strict_ = opt.strict;
        geometry_ = opt.geometry;
    }
    /// Fills `chunk` by calling decode(window, out, room) until full or the input ends; decode
    /// returns {bytes consumed, events written}, consuming only whole records, and must make
    /// progress when at least `record` bytes and `max_per_record` slots are available.
    template <class Decode>
    std::size_t fill(EventChunk& chunk, std::size_t record, std::size_t max_per_record,
                     Decode&& decode) {
        Event* out = chunk.data();
        const std::size_t cap = chunk.capacity();
        std::size_t n = 0;
        while (cap - n >= max_per_record) {
            if (src_->available() < record) {
                if (!src_->refill()) {
                    if (src_->available() != 0) throw_truncated(*src_, record_name());
                    break;
                }
                continue;
            }
            const auto [used, made] = decode(src_->window(), out + n, cap - n);
            src_->consume(used);
            n += made;
            if (used == 0 && made == 0) break;
        }
        chunk.set_size(n);
        return n;
    }
    /// What one record is called in truncation messages.
    virtual std::string record_name() const { return "record"; }

    std::unique_ptr<ByteSource> src_;
};

/// A format's file and memory factories built from one constructor taking a ByteSource.
template <class Reader>
EventFormat stream_format(
    std::string name, std::string description,
    std::function<int(std::span<const std::uint8_t>, const std::filesystem::path&)> probe) {
    EventFormat f;
    f.name = std::move(name);
    f.description = std::move(description);
    f.probe = std::move(probe);
    f.open_file = [](const std::filesystem::path& path, const ReaderOptions& opt) {
        return std::unique_ptr<EventReader>(
            new Reader(ByteSource::open_file(path, opt.buffer_bytes), opt));
    };
    f.open_memory = [](std::span<const std::uint8_t> bytes, const std::string& n,
                       const ReaderOptions& opt) {
        return std::unique_ptr<EventReader>(new Reader(ByteSource::from_memory(bytes, n), opt));
    };
    return f;
}

// The format entries, one function per decoder file; events.cpp lists them in the registry.
EventFormat aedat2_format();
EventFormat aedat3_format();
EventFormat aedat4_format();
EventFormat nmnist_format();
EventFormat evt2_format();
EventFormat evt21_format();
EventFormat evt3_format();
EventFormat dat_format();
EventFormat hdf5_format();
EventFormat text_format();

EventWriterFormat hdf5_writer_format();
EventWriterFormat nmnist_writer_format();
EventWriterFormat evt2_writer_format();
EventWriterFormat text_writer_format();
EventWriterFormat csv_writer_format();
EventWriterFormat aedat4_writer_format();

}  // namespace evformer::io::detail
