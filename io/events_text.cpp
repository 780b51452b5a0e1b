// Text event files, one event per line: `t x y p` with t in seconds, separated by blanks (the
// Event Camera Dataset's events.txt, v2e's text output), or CSV with a header line naming the
// columns. Reader and writers; the detection rule is in docs/events.md.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>

#include "events_internal.hpp"
#include "evformer/error.hpp"

namespace evformer::io::detail {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Splits a line at `sep` (',' for CSV) or at runs of blanks (sep == 0).
std::vector<std::string_view> fields(std::string_view line, char sep) {
    std::vector<std::string_view> out;
    if (sep != 0) {
        std::size_t pos = 0;
        while (true) {
            const auto next = line.find(sep, pos);
            out.push_back(trim(line.substr(pos, next - pos)));
            if (next == std::string_view::npos) break;
            pos = next + 1;
        }
        return out;
    }
    std::size_t pos = 0;
    while (pos < line.size()) {
        while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
        if (pos == line.size()) break;
        auto end = pos;
        while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
        out.push_back(line.substr(pos, end - pos));
        pos = end;
    }
    return out;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    std::int64_t v = 0;
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
    return v;
}

// A decimal number of seconds as integer µs, exactly for plain decimals ("12.3456785" rounds
// half up at the 7th digit), through double for exponent notation.
std::optional<std::int64_t> parse_seconds(std::string_view s) {
    if (s.find_first_of("eE") != std::string_view::npos) {
        double v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v) ||
            std::fabs(v) > 9.0e12)
            return std::nullopt;
        return static_cast<std::int64_t>(std::llround(v * 1e6));
    }
    bool negative = false;
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    const auto dot = s.find('.');
    const auto whole = s.substr(0, dot);
    const auto frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    if (whole.empty() && frac.empty()) return std::nullopt;
    if (whole.size() > 12) return std::nullopt;
    std::int64_t us = 0;
    for (char c : whole) {
        if (c < '0' || c > '9') return std::nullopt;
        us = us * 10 + (c - '0');
    }
    us *= 1000000;
    std::int64_t scale = 100000;
    bool round_up = false;
    for (std::size_t i = 0; i < frac.size(); ++i) {
        const char c = frac[i];
        if (c < '0' || c > '9') return std::nullopt;
        if (i < 6) {
            us += (c - '0') * scale;
            scale /= 10;
        } else if (i == 6) {
            round_up = c >= '5';
        }
    }
    us += round_up;
    return negative ? -us : us;
}

// The layout of a text file: separator, column of each field, unit of t.
struct TextLayout {
    char sep = 0;  // 0: blanks, ',' for CSV
    std::size_t columns = 4;
    std::size_t t = 0, x = 1, y = 2, p = 3;
    enum class Unit { seconds, microseconds, guess } unit = Unit::seconds;
};

// Reads a CSV header line naming the columns: t (t, ts, time, timestamp; `_us`/`_s` suffixes
// give the unit), x, y and p (p, pol, polarity, on). Returns nullopt if it is not one.
std::optional<TextLayout> csv_header(std::string_view line) {
    if (line.find(',') == std::string_view::npos) return std::nullopt;
    const auto names = fields(line, ',');
    TextLayout l;
    l.sep = ',';
    l.columns = names.size();
    bool has[4] = {};
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto n = lower(names[i]);
        if (n.size() >= 2 && n.front() == '"' && n.back() == '"') n = n.substr(1, n.size() - 2);
        const auto set = [&](int k, std::size_t& column) {
            if (has[k]) return false;
            has[k] = true;
            column = i;
            return true;
        };
        bool ok = true;
        if (n == "t" || n == "ts" || n == "time" || n == "timestamp") {
            ok = set(0, l.t);
            l.unit = TextLayout::Unit::guess;
        } else if (n == "t_us" || n == "ts_us" || n == "time_us" || n == "timestamp_us") {
            ok = set(0, l.t);
            l.unit = TextLayout::Unit::microseconds;
        } else if (n == "t_s" || n == "ts_s" || n == "time_s" || n == "timestamp_s") {
            ok = set(0, l.t);
            l.unit = TextLayout::Unit::seconds;
        } else if (n == "x") {
            ok = set(1, l.x);
        } else if (n == "y") {
            ok = set(2, l.y);
        } else if (n == "p" || n == "pol" || n == "polarity" || n == "on") {
            ok = set(3, l.p);
        } else if (n.empty()) {
            return std::nullopt;
        }
        if (!ok) return std::nullopt;
    }
    if (!(has[0] && has[1] && has[2] && has[3])) return std::nullopt;
    return l;
}

// One parsed event line, or nullopt if the line is not an event of this layout.
struct Parsed {
    std::int64_t t;
    std::int64_t x, y, p;
};

std::optional<Parsed> parse_line(std::string_view line, const TextLayout& l) {
    const auto f = fields(line, l.sep);
    if (f.size() != l.columns) return std::nullopt;
    Parsed e{};
    const auto x = parse_int(f[l.x]);
    const auto y = parse_int(f[l.y]);
    const auto p = parse_int(f[l.p]);
    if (!x || !y || !p) return std::nullopt;
    std::optional<std::int64_t> t;
    if (l.unit == TextLayout::Unit::microseconds)
        t = parse_int(f[l.t]);
    else
        t = parse_seconds(f[l.t]);
    if (!t) return std::nullopt;
    e.t = *t;
    e.x = *x;
    e.y = *y;
    e.p = *p;
    return e;
}

bool comment(std::string_view line) {
    return !line.empty() && line.front() == '#';
}

// The next line of `text` from `pos` (without its line ending); pos moves past it.
std::string_view next_line(std::string_view text, std::size_t& pos) {
    const auto nl = text.find('\n', pos);
    const auto end = nl == std::string_view::npos ? text.size() : nl;
    auto line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    return line;
}

// The detection rule (docs/events.md): printable text; leading `#` comment lines; then either a
// CSV header naming t, x, y and p, or lines of exactly four blank-separated numbers `t x y p`;
// every complete line seen (at least one, up to 64) must be an event with x, y ≥ 0, p in
// {−1, 0, 1} and t not decreasing.
int probe_text(std::span<const std::uint8_t> head) {
    if (head.empty() || starts_with(head, "#!AER-DAT")) return 0;
    for (auto c : head)
        if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c > 0x7E) return 0;
    const std::string_view text(reinterpret_cast<const char*>(head.data()), head.size());
    std::size_t pos = 0;
    std::optional<TextLayout> layout;
    std::size_t events = 0;
    std::int64_t last = std::numeric_limits<std::int64_t>::min();
    while (pos < text.size() && events < 64) {
        const auto start = pos;
        const auto line = trim(next_line(text, pos));
        const bool complete = pos <= text.size() && text.find('\n', start) != std::string::npos;
        if (!complete && events > 0) break;  // a line cut by the end of the probe
        if (line.empty() || (comment(line) && !layout)) continue;
        if (!layout) {
            layout = csv_header(line);
            if (layout) continue;
            layout = TextLayout{};
        }
        auto probe_layout = *layout;
        if (probe_layout.unit == TextLayout::Unit::guess)
            probe_layout.unit = TextLayout::Unit::seconds;
        const auto e = parse_line(line, probe_layout);
        if (!e || e->x < 0 || e->y < 0 || e->p < -1 || e->p > 1 || e->t < last) return 0;
        last = e->t;
        ++events;
    }
    return events > 0 ? 50 : 0;
}

class TextReader final : public StreamReader {
  public:
    TextReader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "text", opt) {}

    std::size_t read(EventChunk& chunk) override {
        Event* out = chunk.data();
        std::size_t n = 0;
        while (n < chunk.capacity()) {
            const auto line = next();
            if (!line) break;
            if (auto e = event(*line)) out[n++] = *e;
        }
        chunk.set_size(n);
        return n;
    }

  private:
    // The next line (without its ending), or nullopt at the end of the input.
    std::optional<std::string_view> next() {
        constexpr std::size_t max_line = 4096;
        std::size_t scanned = 0;
        while (true) {
            const auto w = src_->window();
            const auto nl = std::find(w.begin() + static_cast<std::ptrdiff_t>(scanned), w.end(),
                                      std::uint8_t{'\n'});
            if (nl != w.end()) {
                const auto len = static_cast<std::size_t>(nl - w.begin());
                line_at_ = src_->offset();
                std::string_view line(reinterpret_cast<const char*>(w.data()), len);
                src_->consume(len + 1);
                ++line_no_;
                if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                return line;
            }
            scanned = w.size();
            if (w.size() > max_line)
                throw FileError(source_, src_->offset(),
                                fmt::format("line {} is longer than {} bytes (expected one event "
                                            "per line)",
                                            line_no_ + 1, max_line));
            if (!src_->ensure(w.size() + 1)) {
                if (src_->available() == 0) return std::nullopt;
                const auto rest = src_->window();
                line_at_ = src_->offset();
                std::string_view line(reinterpret_cast<const char*>(rest.data()), rest.size());
                src_->consume(rest.size());
                ++line_no_;
                return line;
            }
        }
    }

    std::optional<Event> event(std::string_view raw) {
        const auto line = trim(raw);
        if (line.empty()) return std::nullopt;
        if (!started_) {
            if (comment(line)) return std::nullopt;
            started_ = true;
            if (auto header = csv_header(line)) {
                layout_ = *header;
                return std::nullopt;
            }
        }
        if (layout_.unit == TextLayout::Unit::guess)  // plain `t` column: decided once
            layout_.unit = line.find('.') != std::string_view::npos
                               ? TextLayout::Unit::seconds
                               : TextLayout::Unit::microseconds;
        const auto e = parse_line(line, layout_);
        if (!e)
            throw FileError(source_, line_at_,
                            fmt::format("line {}: '{}' is not an event (expected {})", line_no_,
                                        std::string(line.substr(0, 80)), expected()));
        if (e->t < last_) violation(Violation::time_backwards, line_at_);
        last_ = e->t;
        if (e->p < -1 || e->p > 1) violation(Violation::bad_polarity, line_at_);
        const bool inside =
            e->x >= 0 && e->y >= 0 && e->x <= 0xFFFF && e->y <= 0xFFFF &&
            (!geometry_.known() || (e->x < geometry_.width && e->y < geometry_.height));
        if (!inside) {
            violation(Violation::coordinate_out_of_range, line_at_);
            return std::nullopt;
        }
        return Event{e->t, static_cast<std::uint16_t>(e->x), static_cast<std::uint16_t>(e->y),
                     static_cast<std::uint8_t>(e->p > 0)};
    }

    std::string expected() const {
        if (layout_.sep == 0) return "'t x y p' with t in seconds";
        return fmt::format("{} comma-separated fields as the header names them", layout_.columns);
    }

    TextLayout layout_;
    bool started_ = false;
    std::int64_t last_ = std::numeric_limits<std::int64_t>::min();
    std::int64_t line_at_ = 0;
    std::uint64_t line_no_ = 0;
};

// Writes `t x y p` lines (t in seconds with 6 decimals) or CSV `t_us,x,y,p`.
class TextWriter final : public EventWriter {
  public:
    TextWriter(const std::filesystem::path& path, bool csv) : file_(path), csv_(csv) {
        if (csv_) text_ = "t_us,x,y,p\n";
    }

    void write(std::span<const Event> events) override {
        for (const auto& e : events) {
            if (csv_) {
                fmt::format_to(std::back_inserter(text_), "{},{},{},{}\n", e.t, e.x, e.y, int(e.p));
            } else {
                const std::int64_t s = e.t / 1000000, us = e.t % 1000000;
                fmt::format_to(std::back_inserter(text_), "{}{}.{:06} {} {} {}\n",
                               e.t < 0 ? "-" : "", s < 0 ? -s : s, us < 0 ? -us : us, e.x, e.y,
                               int(e.p));
            }
            if (text_.size() >= (1 << 20)) flush();
        }
    }

    void finish() override {
        flush();
        file_.commit();
    }

  private:
    void flush() {
        file_.write(text_.data(), text_.size());
        text_.clear();
    }

    AtomicFile file_;
    bool csv_;
    std::string text_;
};

}  // namespace

EventFormat text_format() {
    return stream_format<TextReader>(
        "text", "Text events: 't x y p' lines (t in seconds) or CSV with a t,x,y,p header",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_text(head);
        });
}

EventWriterFormat text_writer_format() {
    EventWriterFormat f;
    f.name = "text";
    f.extensions = {".txt"};
    f.description = "Text events, 't x y p' lines with t in seconds";
    f.create = [](const std::filesystem::path& path, const WriterOptions&) {
        return std::unique_ptr<EventWriter>(new TextWriter(path, false));
    };
    return f;
}

EventWriterFormat csv_writer_format() {
    EventWriterFormat f;
    f.name = "csv";
    f.extensions = {".csv"};
    f.description = "CSV events with the header t_us,x,y,p";
    f.create = [](const std::filesystem::path& path, const WriterOptions&) {
        return std::unique_ptr<EventWriter>(new TextWriter(path, true));
    };
    return f;
}

}  // namespace evformer::io::detail
