// N-MNIST / N-Caltech101 40-bit `.bin` (also SLAYER's `.bs2`): 5 bytes per event — x, y, then
// polarity in bit 7 and a 23-bit big-endian µs timestamp; y == 240 marks a timestamp overflow
// that adds 2²³ µs to every later event. Reader and writer.
#include <fmt/format.h>

#include <algorithm>

#include "events_internal.hpp"
#include "evformer/error.hpp"

namespace evformer::io::detail {
namespace {

constexpr std::int64_t overflow_step = std::int64_t{1} << 23;
constexpr std::uint8_t overflow_y = 240;

class NmnistReader final : public StreamReader {
  public:
    NmnistReader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "nmnist", opt) {}

    std::size_t read(EventChunk& chunk) override {
        return fill(chunk, 5, 1,
                    [this](auto w, Event* out, std::size_t room) { return decode(w, out, room); });
    }

  private:
    std::string record_name() const override { return "N-MNIST event (5 bytes)"; }

    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        const std::size_t records = std::min(w.size() / 5, room);
        const std::uint8_t* p = w.data();
        const std::uint32_t width = geometry_.known() ? geometry_.width : 256;
        const std::uint32_t height = geometry_.known() ? geometry_.height : 256;
        std::int64_t base = base_;
        std::int64_t last = last_;
        std::size_t n = 0;
        for (std::size_t i = 0; i < records; ++i) {
            const std::uint8_t* r = p + 5 * i;
            if (r[1] == overflow_y) [[unlikely]] {
                base += overflow_step;
                skip("timestamp overflow events");
                continue;
            }
            const std::int64_t ts =
                (std::int64_t{r[2] & 0x7F} << 16) | (std::int64_t{r[3]} << 8) | r[4];
            const Event e{base + ts, r[0], r[1], static_cast<std::uint8_t>(r[2] >> 7)};
            out[n] = e;
            // One branch for both faults, so a clean record costs no taken branch.
            const bool inside = e.x < width && e.y < height;
            if ((e.t < last) | !inside) [[unlikely]]
                fault(e.t < last, inside, i);
            last = e.t;
            n += inside;
        }
        base_ = base;
        last_ = last;
        return {records * 5, n};
    }

    [[gnu::noinline, gnu::cold]] void fault(bool backwards, bool inside, std::size_t i) {
        const auto at = src_->offset() + std::int64_t(5 * i);
        if (backwards) violation(Violation::time_backwards, at);
        if (!inside) violation(Violation::coordinate_out_of_range, at);
    }

    std::int64_t base_ = 0;
    std::int64_t last_ = 0;
};

// True when `head` starts with a line of text after a '%' or '#' (a header, never records).
bool starts_with_text_line(std::span<const std::uint8_t> head) {
    if (head.empty() || (head[0] != '%' && head[0] != '#')) return false;
    for (std::size_t i = 1; i < head.size(); ++i) {
        const auto c = head[i];
        if (c == '\n') return i > 1;
        if ((c < 0x20 && c != '\t' && c != '\r') || c > 0x7E) return false;
    }
    return true;
}

// A headerless format: plausible when the first records have y ≤ 240 and non-decreasing time,
// are not all the same record (zero-filled or constant bytes), and the file does not start with
// a `%` or `#` text line.
int probe_nmnist(std::span<const std::uint8_t> head, const std::filesystem::path& path) {
    if (head.size() < 5 || starts_with_text_line(head)) return 0;
    const auto ext = lower_extension(path);
    const std::size_t records = std::min<std::size_t>(head.size() / 5, 256);
    std::int64_t base = 0;
    std::int64_t last = 0;
    for (std::size_t i = 0; i < records; ++i) {
        const std::uint8_t* r = head.data() + 5 * i;
        if (r[1] > overflow_y) return 0;
        if (r[1] == overflow_y) {
            base += overflow_step;
            continue;
        }
        const std::int64_t t = base + ((std::int64_t{r[2] & 0x7F} << 16) | (r[3] << 8) | r[4]);
        if (t < last) return 0;
        last = t;
    }
    bool constant = records >= 2;
    for (std::size_t i = 1; i < records && constant; ++i)
        constant = std::equal(head.begin(), head.begin() + 5,
                              head.begin() + static_cast<std::ptrdiff_t>(5 * i));
    if (constant) return 0;
    return ext == ".bin" || ext == ".bs2" ? 30 : 10;
}

class NmnistWriter final : public EventWriter {
  public:
    NmnistWriter(const std::filesystem::path& path, const WriterOptions&)
        : file_(path), path_(path.string()) {
        bytes_.reserve(5 << 16);
    }

    void write(std::span<const Event> events) override {
        for (const auto& e : events) {
            if (e.t < last_t_)
                throw ConfigError(fmt::format(
                    "{}: event time {} µs is before the previous one ({} µs); N-MNIST .bin "
                    "needs non-decreasing, non-negative times",
                    path_, e.t, last_t_));
            if (e.x > 255 || e.y >= overflow_y || e.p > 1)
                throw ConfigError(fmt::format(
                    "{}: event (x {}, y {}, p {}) does not fit N-MNIST .bin (x ≤ 255, y ≤ 239, "
                    "p 0/1)",
                    path_, e.x, e.y, int(e.p)));
            last_t_ = e.t;
            while (e.t - base_ >= overflow_step) {
                const std::uint8_t overflow[5] = {0, overflow_y, 0, 0, 0};
                bytes_.insert(bytes_.end(), overflow, overflow + 5);
                base_ += overflow_step;
            }
            const auto ts = static_cast<std::uint32_t>(e.t - base_);
            const std::uint8_t rec[5] = {
                static_cast<std::uint8_t>(e.x), static_cast<std::uint8_t>(e.y),
                static_cast<std::uint8_t>((e.p << 7) | (ts >> 16)),
                static_cast<std::uint8_t>(ts >> 8), static_cast<std::uint8_t>(ts)};
            bytes_.insert(bytes_.end(), rec, rec + 5);
            if (bytes_.size() >= (5 << 16)) flush();
        }
    }

    void finish() override {
        flush();
        file_.commit();
    }

  private:
    void flush() {
        file_.write(bytes_.data(), bytes_.size());
        bytes_.clear();
    }

    AtomicFile file_;
    std::string path_;
    std::vector<std::uint8_t> bytes_;
    std::int64_t last_t_ = 0;
    std::int64_t base_ = 0;
};

}  // namespace

EventFormat nmnist_format() {
    return stream_format<NmnistReader>("nmnist", "N-MNIST / N-Caltech101 40-bit .bin (SLAYER .bs2)",
                                       probe_nmnist);
}

EventWriterFormat nmnist_writer_format() {
    EventWriterFormat f;
    f.name = "nmnist";
    f.extensions = {".bin", ".bs2"};
    f.description = "N-MNIST 40-bit .bin";
    f.create = [](const std::filesystem::path& path, const WriterOptions& opt) {
        return std::unique_ptr<EventWriter>(new NmnistWriter(path, opt));
    };
    return f;
}

}  // namespace evformer::io::detail
