// Event-camera recordings: one event type, one streaming reader interface that yields events in
// bounded chunks (constant memory for any file size), a registry that picks the decoder by the
// file's magic or header, and writers. Formats and layouts are documented in docs/events.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace evformer::io {

/// One event: time in µs, pixel column x and row y, polarity p (1 = ON, 0 = OFF).
struct Event {
    std::int64_t t = 0;
    std::uint16_t x = 0;
    std::uint16_t y = 0;
    std::uint8_t p = 0;
    friend bool operator==(const Event&, const Event&) = default;
};
static_assert(sizeof(Event) == 16, "Event is one 16-byte record");

/// A reusable buffer of events that readers fill up to capacity(); allocated and touched once.
class EventChunk {
  public:
    /// Smallest capacity a chunk may have (a vectorised word can emit up to 12 events).
    static constexpr std::size_t min_capacity = 64;

    /// A chunk holding at most `capacity` events (raised to min_capacity).
    explicit EventChunk(std::size_t capacity = std::size_t{1} << 16);

    /// The largest number of events one read() may deliver.
    std::size_t capacity() const noexcept { return storage_.size(); }
    /// Number of valid events.
    std::size_t size() const noexcept { return size_; }
    /// True when the chunk holds no events.
    bool empty() const noexcept { return size_ == 0; }
    /// The valid events.
    std::span<const Event> events() const noexcept { return {storage_.data(), size_}; }
    /// One valid event.
    const Event& operator[](std::size_t i) const noexcept { return storage_[i]; }
    /// Writable storage for readers (capacity() slots).
    Event* data() noexcept { return storage_.data(); }
    /// Sets the number of valid events (readers only; at most capacity()).
    void set_size(std::size_t n) noexcept { size_ = n; }

  private:
    std::vector<Event> storage_;
    std::size_t size_ = 0;
};

/// Sensor size in pixels; zero when the file does not say.
struct Geometry {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    /// True when both dimensions are set.
    bool known() const noexcept { return width > 0 && height > 0; }
    friend bool operator==(const Geometry&, const Geometry&) = default;
};

/// Recoverable stream faults that readers count (or throw on, in strict mode).
enum class Violation : std::uint8_t {
    unknown_word,             ///< a word/record type the format does not define
    time_backwards,           ///< time decreased beyond what the format allows
    coordinate_out_of_range,  ///< x or y outside the sensor geometry (event dropped)
    bad_polarity,             ///< a polarity field with a value other than 0 or 1
    invalid_packet,           ///< a packet whose header is inconsistent (packet skipped)
};

/// Number of Violation kinds.
inline constexpr std::size_t violation_kinds = 5;

/// Name of a violation kind as printed by `events info` ("time_backwards", …).
const char* violation_name(Violation v) noexcept;

/// Counts of protocol violations per kind.
struct ViolationCounts {
    std::array<std::uint64_t, violation_kinds> by_kind{};
    /// The count of one kind.
    std::uint64_t operator[](Violation v) const noexcept {
        return by_kind[static_cast<std::size_t>(v)];
    }
    /// Sum over all kinds.
    std::uint64_t total() const noexcept;
};

/// How AEDAT 2.0 DVS128 addresses map to x, y and polarity (see docs/events.md).
enum class Aedat2Orientation {
    jaer,          ///< x = 127 − raw_x, y = raw_y, ON = (bit 0 == 0); as jAER, which wrote them
    spikingjelly,  ///< x = 127 − raw_y, y = 127 − raw_x, p = 1 − bit 0
    tonic,         ///< x = raw_y, y = raw_x, p = bit 0
};

/// Options for opening an event recording.
struct ReaderOptions {
    /// A registered format name to use instead of detection ("" = detect from the bytes).
    std::string format;
    /// Throw FileError at the first protocol violation instead of counting it.
    bool strict = false;
    /// Size of the read buffer in bytes (records split across refills are handled).
    std::size_t buffer_bytes = std::size_t{1} << 20;
    /// Orientation of AEDAT 2.0 DVS128 addresses.
    Aedat2Orientation aedat2_orientation = Aedat2Orientation::jaer;
    /// Sensor size to assume when the file does not state it (0 × 0 = unknown).
    Geometry geometry;
    /// AEDAT 4.0 event stream to read when a file has several EVTS streams (e.g. two cameras):
    /// its id ("1") or name (originalOutputName, originalModuleName or source of the stream);
    /// "" = the EVTS stream with the lowest id. Packets of the other EVTS streams are skipped
    /// and counted, never merged.
    std::string aedat4_stream;
    /// HDF5 events whose `t` dataset holds floating-point seconds: convert to integer µs
    /// (rounded to nearest) instead of refusing the file.
    bool float_seconds = false;
};

/// Streams the events of one recording in bounded chunks.
class EventReader {
  public:
    virtual ~EventReader() = default;
    EventReader() = default;
    EventReader(const EventReader&) = delete;
    EventReader& operator=(const EventReader&) = delete;

    /// Fills `chunk` with the next events and returns how many; 0 means the stream has ended.
    /// Throws FileError (naming the file and byte offset) on truncated or corrupt structure.
    virtual std::size_t read(EventChunk& chunk) = 0;

    /// Sensor size stated by the file (or given in the options); 0 × 0 when unknown.
    Geometry geometry() const noexcept { return geometry_; }
    /// Protocol violations counted so far.
    const ViolationCounts& violations() const noexcept { return violations_; }
    /// Registered name of the format being decoded ("evt3", "aedat4", …).
    const std::string& format_name() const noexcept { return format_; }
    /// The file (or buffer name) being read.
    const std::string& source_name() const noexcept { return source_; }
    /// Records of other kinds that were skipped on purpose, by description (e.g. "FRME packets").
    const std::map<std::string, std::uint64_t>& skipped() const noexcept { return skipped_; }

  protected:
    /// Counts a violation found at byte `offset`; throws FileError instead in strict mode.
    void violation(Violation v, std::int64_t offset);
    /// Counts `n` skipped records of kind `what`.
    void skip(const std::string& what, std::uint64_t n = 1) { skipped_[what] += n; }

    std::string source_;
    std::string format_;
    Geometry geometry_;
    ViolationCounts violations_;
    std::map<std::string, std::uint64_t> skipped_;
    bool strict_ = false;
};

/// A readable format: its name, a probe that scores the first bytes, and a factory.
struct EventFormat {
    /// Name used by --format and format_name() ("aedat2", "evt2", "hdf5", …).
    std::string name;
    /// One-line description for --help and docs.
    std::string description;
    /// Confidence 0..100 that `head` (the file's first bytes) starts a file of this format.
    std::function<int(std::span<const std::uint8_t> head, const std::filesystem::path& path)> probe;
    /// Opens a file of this format.
    std::function<std::unique_ptr<EventReader>(const std::filesystem::path& path,
                                               const ReaderOptions& options)>
        open_file;
    /// Opens an in-memory byte buffer of this format (null when the format needs a real file);
    /// the buffer must outlive the reader.
    std::function<std::unique_ptr<EventReader>(
        std::span<const std::uint8_t> bytes, const std::string& name, const ReaderOptions& options)>
        open_memory;
};

/// Every readable format, in registration order.
const std::vector<EventFormat>& event_formats();

/// The registered format called `name`; throws ConfigError listing the known names.
const EventFormat& event_format(const std::string& name);

/// Name of the format whose probe scores `head` highest, or "" when none matches.
std::string detect_event_format(std::span<const std::uint8_t> head,
                                const std::filesystem::path& path = {});

/// Opens a recording, picking the decoder by its first bytes unless options.format is set.
std::unique_ptr<EventReader> open_event_file(const std::filesystem::path& path,
                                             const ReaderOptions& options = {});

/// Opens an in-memory recording (for benchmarks and fuzzing); `bytes` must outlive the reader.
std::unique_ptr<EventReader> open_event_bytes(std::span<const std::uint8_t> bytes,
                                              const ReaderOptions& options = {},
                                              const std::string& name = "<memory>");

/// Reads every remaining event of a reader into one vector (for small recordings).
std::vector<Event> read_all(EventReader& reader, std::size_t chunk_capacity = 1 << 16);

/// Reads a whole recording into memory (for small recordings and tests).
std::vector<Event> read_event_file(const std::filesystem::path& path,
                                   const ReaderOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Writers

/// Options for writing an event file.
struct WriterOptions {
    /// Sensor size to record (required by some formats; 0 × 0 = unknown).
    Geometry geometry;
    /// gzip level of HDF5 datasets (0 = none).
    int gzip_level = 4;
    /// HDF5 chunk length in events.
    std::size_t chunk_events = std::size_t{1} << 16;
    /// AEDAT 4.0 packet compression as the IOHeader numbers it (0 none, 1 LZ4 — DV's default,
    /// 2 LZ4_HIGH, 3 ZSTD, 4 ZSTD_HIGH).
    int aedat4_compression = 1;
};

/// Writes events to one file; the file appears under its name only after finish().
class EventWriter {
  public:
    virtual ~EventWriter() = default;
    EventWriter() = default;
    EventWriter(const EventWriter&) = delete;
    EventWriter& operator=(const EventWriter&) = delete;
    /// Appends events (time must not decrease across calls for stream formats).
    virtual void write(std::span<const Event> events) = 0;
    /// Completes the file and moves it onto its final name.
    virtual void finish() = 0;
};

/// A writable format: name, file extensions it is chosen for, and a factory.
struct EventWriterFormat {
    /// Name used by --to ("hdf5", "nmnist", "evt2", "aedat4", …).
    std::string name;
    /// Extensions (with dot, lower case) that select this format when --to is not given.
    std::vector<std::string> extensions;
    /// One-line description.
    std::string description;
    /// Creates a writer for `path`.
    std::function<std::unique_ptr<EventWriter>(const std::filesystem::path& path,
                                               const WriterOptions& options)>
        create;
};

/// Every writable format.
const std::vector<EventWriterFormat>& event_writer_formats();

/// Creates a writer by format name, or by the path's extension when `format` is empty.
std::unique_ptr<EventWriter> create_event_writer(const std::filesystem::path& path,
                                                 const std::string& format = "",
                                                 const WriterOptions& options = {});

/// Writes a whole event list to a file (format by name or extension).
void write_event_file(const std::filesystem::path& path, std::span<const Event> events,
                      const std::string& format = "", const WriterOptions& options = {});

}  // namespace evformer::io
