#include "evformer/io/events.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "events_internal.hpp"
#include "evformer/error.hpp"

namespace evformer::io {

EventChunk::EventChunk(std::size_t capacity) : storage_(std::max(capacity, min_capacity)) {}

const char* violation_name(Violation v) noexcept {
    switch (v) {
        case Violation::unknown_word:
            return "unknown_word";
        case Violation::time_backwards:
            return "time_backwards";
        case Violation::coordinate_out_of_range:
            return "coordinate_out_of_range";
        case Violation::bad_polarity:
            return "bad_polarity";
        case Violation::invalid_packet:
            return "invalid_packet";
    }
    return "?";
}

std::uint64_t ViolationCounts::total() const noexcept {
    std::uint64_t n = 0;
    for (auto c : by_kind) n += c;
    return n;
}

void EventReader::violation(Violation v, std::int64_t offset) {
    if (strict_)
        throw FileError(source_, offset,
                        fmt::format("protocol violation: {} (strict mode)", violation_name(v)));
    ++violations_.by_kind[static_cast<std::size_t>(v)];
}

namespace detail {

std::unique_ptr<ByteSource> ByteSource::open_file(const std::filesystem::path& path,
                                                  std::size_t buffer_bytes) {
    std::unique_ptr<ByteSource> s(new ByteSource());
    s->name_ = path.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw FileError(s->name_, -1, "no such file (expected a readable event recording)");
    s->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (s->fd_ < 0) throw FileError(s->name_, -1, "cannot open for reading");
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) s->total_size_ = static_cast<std::int64_t>(size);
    s->buffer_.resize(std::max<std::size_t>(buffer_bytes, 16));
    s->base_ = s->begin_ = s->end_ = s->buffer_.data();
    return s;
}

std::unique_ptr<ByteSource> ByteSource::from_memory(std::span<const std::uint8_t> bytes,
                                                    std::string name) {
    std::unique_ptr<ByteSource> s(new ByteSource());
    s->name_ = std::move(name);
    s->base_ = s->begin_ = bytes.data();
    s->end_ = bytes.data() + bytes.size();
    s->total_size_ = static_cast<std::int64_t>(bytes.size());
    s->eof_ = true;
    return s;
}

ByteSource::~ByteSource() {
    if (fd_ >= 0) ::close(fd_);
}

bool ByteSource::refill() {
    if (eof_ || fd_ < 0) return false;
    const std::size_t keep = available();
    std::uint8_t* buf = buffer_.data();
    if (keep == buffer_.size()) return false;  // full: the caller must consume or ensure()
    consumed_before_ += static_cast<std::int64_t>(begin_ - base_);
    if (keep > 0 && begin_ != buf) std::memmove(buf, begin_, keep);
    base_ = begin_ = buf;
    end_ = buf + keep;
    std::size_t added = 0;
    while (keep + added < buffer_.size()) {
        const auto r = ::read(fd_, buf + keep + added, buffer_.size() - keep - added);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw FileError(name_, offset() + static_cast<std::int64_t>(keep + added),
                            "read failed");
        }
        if (r == 0) {
            eof_ = true;
            break;
        }
        added += static_cast<std::size_t>(r);
    }
    end_ = buf + keep + added;
    return added > 0;
}

bool ByteSource::ensure(std::size_t n) {
    while (available() < n) {
        if (fd_ >= 0 && n > buffer_.size()) {
            // Grow, keeping the window's position relative to the buffer.
            const auto b = begin_ - base_;
            const auto e = end_ - base_;
            const auto shift = base_ - buffer_.data();
            buffer_.resize(n);
            base_ = buffer_.data() + shift;
            begin_ = base_ + b;
            end_ = base_ + e;
        }
        if (!refill()) return false;
    }
    return true;
}

bool ByteSource::skip(std::uint64_t n) {
    const std::size_t here = std::min<std::uint64_t>(n, available());
    consume(here);
    n -= here;
    if (n == 0) return true;
    if (fd_ < 0 || eof_) return false;
    // Window is empty now: seek past the rest.
    consumed_before_ += static_cast<std::int64_t>(begin_ - base_);
    base_ = begin_ = end_ = buffer_.data();
    const auto target = consumed_before_ + static_cast<std::int64_t>(n);
    if (total_size_ >= 0 && target > total_size_) {
        consumed_before_ = total_size_;
        eof_ = true;
        return false;
    }
    if (::lseek(fd_, target, SEEK_SET) < 0) throw FileError(name_, target, "seek failed");
    consumed_before_ = target;
    return true;
}

AtomicFile::AtomicFile(std::filesystem::path final_path) : final_(std::move(final_path)) {
    static int counter = 0;
    temp_ = final_;
    temp_ += fmt::format(".tmp-{}-{}", ::getpid(), counter++);
    file_ = std::fopen(temp_.c_str(), "wb");
    if (!file_)
        throw FileError(final_.string(), -1, "cannot create (is the folder there and writable?)");
}

AtomicFile::~AtomicFile() {
    if (file_) std::fclose(file_);
    if (!committed_) {
        std::error_code ec;
        std::filesystem::remove(temp_, ec);
    }
}

void AtomicFile::write(const void* data, std::size_t n) {
    if (n > 0 && std::fwrite(data, 1, n, file_) != n)
        throw FileError(final_.string(), -1, "write failed (disk full?)");
}

void AtomicFile::commit() {
    if (committed_) return;
    const bool ok = std::fflush(file_) == 0;
    std::fclose(file_);
    file_ = nullptr;
    if (!ok) throw FileError(final_.string(), -1, "write failed (disk full?)");
    std::error_code ec;
    std::filesystem::rename(temp_, final_, ec);
    if (ec)
        throw FileError(final_.string(), -1, "cannot rename the temporary file: " + ec.message());
    committed_ = true;
}

void throw_truncated(const ByteSource& src, const std::string& what) {
    throw FileError(
        src.name(), src.offset(),
        fmt::format("truncated {}: the input ends after {} more byte(s)", what, src.available()));
}

namespace {

std::string trim(std::string s) {
    auto not_space = [](unsigned char c) { return !std::isspace(c); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
    s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
    return s;
}

}  // namespace

std::vector<std::string> read_text_header(ByteSource& src, char marker,
                                          const std::string& terminator) {
    constexpr std::size_t limit = std::size_t{1} << 20;
    std::vector<std::string> lines;
    std::size_t total = 0;
    while (true) {
        if (src.available() == 0 && !src.refill()) break;
        if (static_cast<char>(src.window()[0]) != marker) break;
        // Find the end of the line, refilling as needed.
        std::size_t nl = 0;
        while (true) {
            const auto w = src.window();
            const auto p =
                std::find(w.begin() + static_cast<std::ptrdiff_t>(nl), w.end(), std::uint8_t{'\n'});
            if (p != w.end()) {
                nl = static_cast<std::size_t>(p - w.begin());
                break;
            }
            nl = w.size();
            if (nl > limit || !src.ensure(w.size() + 1))
                throw FileError(src.name(), src.offset(),
                                "header line without end (expected a line ending in '\\n')");
        }
        const auto w = src.window();
        std::string line(reinterpret_cast<const char*>(w.data()) + 1, nl - 1);
        src.consume(nl + 1);
        total += nl + 1;
        if (total > limit)
            throw FileError(src.name(), src.offset(), "text header longer than 1 MiB");
        line = trim(line);
        lines.push_back(line);
        if (!terminator.empty() && line == terminator) break;
    }
    return lines;
}

namespace {

bool printable_text(std::span<const std::uint8_t> s) {
    for (auto c : s)
        if ((c < 0x20 && c != '\t' && c != '\r') || c > 0x7E) return false;
    return true;
}

// "% key…": a blank after the marker, then a letter, digit or '_'.
bool key_line(std::span<const std::uint8_t> line) {
    return line.size() >= 3 && (line[1] == ' ' || line[1] == '\t') &&
           (std::isalnum(line[2]) || line[2] == '_');
}

}  // namespace

PropheseeHeader scan_prophesee_header(std::span<const std::uint8_t> bytes, bool at_end,
                                      std::int64_t total, std::size_t word, std::size_t prefix,
                                      bool* ambiguous, bool* unterminated) {
    struct Line {
        std::size_t begin, end;
        bool keyed;
    };
    std::vector<Line> lines;
    std::size_t pos = 0;
    bool ended = false;
    *ambiguous = false;
    *unterminated = false;
    while (pos < bytes.size() && bytes[pos] == '%') {
        const auto nl = std::find(bytes.begin() + static_cast<std::ptrdiff_t>(pos), bytes.end(),
                                  std::uint8_t{'\n'});
        if (nl == bytes.end()) {
            // A line cut by the end of what is seen: more bytes are needed (or, at the end of
            // the file after a header, it is data).
            *unterminated = !at_end || lines.empty();
            break;
        }
        const auto end = static_cast<std::size_t>(nl - bytes.begin()) + 1;
        const auto line = bytes.subspan(pos, end - 1 - pos);
        if (!printable_text(line.subspan(1))) break;  // binary: the first data word
        lines.push_back({pos, end, key_line(line)});
        pos = end;
        if (trim(std::string(reinterpret_cast<const char*>(line.data()) + 1, line.size() - 1)) ==
            "end") {
            ended = true;
            break;
        }
    }
    // Without `% end`, trailing lines that are not `% key…` lines may be the first data words.
    std::size_t first_doubtful = lines.size();
    if (!ended && !*unterminated)
        while (first_doubtful > 0 && !lines[first_doubtful - 1].keyed) --first_doubtful;
    std::size_t count = lines.size();
    if (first_doubtful < lines.size()) {
        const auto fits = [&](std::size_t k) {  // header = lines [0, k)
            const std::size_t at = k == 0 ? 0 : lines[k - 1].end;
            const auto size = static_cast<std::size_t>(total);
            return size >= at + prefix && (size - at - prefix) % word == 0;
        };
        if (total < 0) {
            count = first_doubtful;  // unknown size: text that is not a key line is data
        } else {
            std::vector<std::size_t> fitting;
            for (std::size_t k = first_doubtful; k <= lines.size(); ++k)
                if (fits(k)) fitting.push_back(k);
            if (fitting.size() == 1)
                count = fitting[0];
            else if (fitting.size() > 1)
                *ambiguous = true;
        }
    }
    PropheseeHeader h;
    h.bytes = count == 0 ? 0 : lines[count - 1].end;
    for (std::size_t k = 0; k < count; ++k) {
        const auto& l = lines[k];
        h.lines.push_back(trim(std::string(
            reinterpret_cast<const char*>(bytes.data()) + l.begin + 1, l.end - l.begin - 2)));
    }
    return h;
}

std::vector<std::string> read_prophesee_header(ByteSource& src, std::size_t word,
                                               std::size_t prefix) {
    constexpr std::size_t limit = std::size_t{1} << 20;
    std::size_t want = 4096;
    while (true) {
        const bool all = !src.ensure(want);
        const auto w = src.window();
        const std::int64_t total =
            src.total_size() >= 0 ? src.total_size() - src.offset() : std::int64_t{-1};
        bool ambiguous = false, unterminated = false;
        auto h = scan_prophesee_header(w, all, total, word, prefix, &ambiguous, &unterminated);
        if (unterminated) {
            if (all || w.size() > limit)
                throw FileError(src.name(), src.offset() + std::int64_t(h.bytes),
                                all ? "header line without end (expected a line ending in '\\n')"
                                    : "text header longer than 1 MiB");
            want = w.size() * 2;
            continue;
        }
        if (ambiguous)
            throw FileError(
                src.name(), src.offset() + std::int64_t(h.bytes),
                "header/data ambiguity: the header has no '% end' and the line here may be a "
                "header line or the first data words (both fit the file size); add '% end' to "
                "the header");
        if (h.bytes > limit)
            throw FileError(src.name(), src.offset(), "text header longer than 1 MiB");
        // A header that reaches the end of what was seen may go on: look further.
        if (!all && h.bytes + 4096 > w.size() && w.size() <= limit) {
            want = w.size() * 2;
            continue;
        }
        src.consume(h.bytes);
        return h.lines;
    }
}

std::pair<std::string, std::string> split_key_value(const std::string& line) {
    const auto sp = line.find_first_of(" \t");
    if (sp == std::string::npos) return {trim(line), ""};
    return {trim(line.substr(0, sp)), trim(line.substr(sp + 1))};
}

std::vector<std::string> probe_text_header(std::span<const std::uint8_t> head, char marker,
                                           std::size_t* header_end) {
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < head.size() && static_cast<char>(head[pos]) == marker) {
        const auto p = std::find(head.begin() + static_cast<std::ptrdiff_t>(pos), head.end(),
                                 std::uint8_t{'\n'});
        if (p == head.end()) break;
        const auto nl = static_cast<std::size_t>(p - head.begin());
        lines.push_back(
            trim(std::string(reinterpret_cast<const char*>(head.data()) + pos + 1, nl - pos - 1)));
        pos = nl + 1;
        if (lines.back() == "end") break;
    }
    if (header_end) *header_end = pos;
    return lines;
}

std::string lower_extension(const std::filesystem::path& path) {
    auto e = path.extension().string();
    std::transform(e.begin(), e.end(), e.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return e;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Registry

const std::vector<EventFormat>& event_formats() {
    static const std::vector<EventFormat> formats = {
        detail::aedat2_format(), detail::aedat3_format(), detail::aedat4_format(),
        detail::evt2_format(),   detail::evt21_format(),  detail::evt3_format(),
        detail::dat_format(),    detail::hdf5_format(),   detail::text_format(),
        detail::nmnist_format(),
    };
    return formats;
}

const EventFormat& event_format(const std::string& name) {
    std::string names;
    for (const auto& f : event_formats()) {
        if (f.name == name) return f;
        names += (names.empty() ? "" : ", ") + f.name;
    }
    throw ConfigError(fmt::format("unknown event format '{}' (known: {})", name, names));
}

std::string detect_event_format(std::span<const std::uint8_t> head,
                                const std::filesystem::path& path) {
    int best = 0;
    std::string name;
    for (const auto& f : event_formats()) {
        const int score = f.probe(head, path);
        if (score > best) {
            best = score;
            name = f.name;
        }
    }
    return name;
}

namespace {

constexpr std::size_t probe_bytes = 64 * 1024;
// The probes see a text header whole, up to the size the readers accept (1 MiB) and a little
// data after it.
constexpr std::size_t header_probe_limit = (std::size_t{1} << 20) + probe_bytes;

// True when `head` starts with a `%` or `#` text header that goes on past its end.
bool text_header_unfinished(std::span<const std::uint8_t> head) {
    if (head.empty() || (head[0] != '%' && head[0] != '#')) return false;
    const auto marker = head[0];
    std::size_t pos = 0;
    while (pos < head.size() && head[pos] == marker) {
        const auto nl = std::find(head.begin() + static_cast<std::ptrdiff_t>(pos), head.end(),
                                  std::uint8_t{'\n'});
        if (nl == head.end()) return true;
        const std::string_view line(reinterpret_cast<const char*>(head.data()) + pos,
                                    static_cast<std::size_t>(nl - head.begin()) - pos);
        pos = static_cast<std::size_t>(nl - head.begin()) + 1;
        if (line.starts_with("% end") || line.starts_with("#!END-HEADER")) return false;
    }
    return pos + probe_bytes / 2 > head.size();
}

const EventFormat& pick(std::span<const std::uint8_t> head, const std::filesystem::path& path,
                        const std::string& source, const ReaderOptions& options) {
    if (!options.format.empty()) return event_format(options.format);
    const auto name = detect_event_format(head, path);
    if (name.empty())
        throw FileError(
            source, 0,
            "unrecognised event format (no known magic or header; expected AEDAT "
            "2/3.1/4, Prophesee EVT 2.0/2.1/3.0 or DAT, HDF5 events, text events or N-MNIST .bin)");
    return event_format(name);
}

}  // namespace

std::unique_ptr<EventReader> open_event_file(const std::filesystem::path& path,
                                             const ReaderOptions& options) {
    auto src = detail::ByteSource::open_file(path, probe_bytes);
    src->refill();
    while (text_header_unfinished(src->window()) && src->available() < header_probe_limit &&
           src->ensure(std::min(2 * src->available(), header_probe_limit))) {
    }
    const auto& format = pick(src->window(), path, path.string(), options);
    src.reset();
    return format.open_file(path, options);
}

std::unique_ptr<EventReader> open_event_bytes(std::span<const std::uint8_t> bytes,
                                              const ReaderOptions& options,
                                              const std::string& name) {
    auto head = bytes.first(std::min(bytes.size(), probe_bytes));
    while (text_header_unfinished(head) && head.size() < bytes.size() &&
           head.size() < header_probe_limit)
        head = bytes.first(std::min({bytes.size(), 2 * head.size(), header_probe_limit}));
    const auto& format = pick(head, name, name, options);
    if (!format.open_memory)
        throw ConfigError(
            fmt::format("{}: format {} can only be read from a file", name, format.name));
    return format.open_memory(bytes, name, options);
}

std::vector<Event> read_all(EventReader& reader, std::size_t chunk_capacity) {
    EventChunk chunk(chunk_capacity);
    std::vector<Event> all;
    while (reader.read(chunk) > 0) {
        const auto ev = chunk.events();
        all.insert(all.end(), ev.begin(), ev.end());
    }
    return all;
}

std::vector<Event> read_event_file(const std::filesystem::path& path,
                                   const ReaderOptions& options) {
    auto reader = open_event_file(path, options);
    return read_all(*reader);
}

// ---------------------------------------------------------------------------------------------
// Writers

const std::vector<EventWriterFormat>& event_writer_formats() {
    static const std::vector<EventWriterFormat> formats = {
        detail::hdf5_writer_format(), detail::nmnist_writer_format(),
        detail::evt2_writer_format(), detail::text_writer_format(),
        detail::csv_writer_format(),  detail::aedat4_writer_format(),
    };
    return formats;
}

std::unique_ptr<EventWriter> create_event_writer(const std::filesystem::path& path,
                                                 const std::string& format,
                                                 const WriterOptions& options) {
    std::string names;
    const auto ext = detail::lower_extension(path);
    for (const auto& f : event_writer_formats()) {
        if (format.empty()
                ? std::find(f.extensions.begin(), f.extensions.end(), ext) != f.extensions.end()
                : f.name == format)
            return f.create(path, options);
        names += (names.empty() ? "" : ", ") + f.name;
    }
    if (format.empty())
        throw ConfigError(fmt::format(
            "{}: cannot choose an output format from the extension '{}' (use .h5, .bin, "
            ".raw, .txt, .csv or .aedat4, or name one of: {})",
            path.string(), ext, names));
    throw ConfigError(
        fmt::format("unknown output event format '{}' (writable: {})", format, names));
}

void write_event_file(const std::filesystem::path& path, std::span<const Event> events,
                      const std::string& format, const WriterOptions& options) {
    auto w = create_event_writer(path, format, options);
    w->write(events);
    w->finish();
}

}  // namespace evformer::io
