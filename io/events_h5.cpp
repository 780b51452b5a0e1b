// HDF5 event files: the project's layout (/events/{x,y,t,p} + root attributes, see
// docs/events.md), the DSEC layout (t relative to /t_offset) and any file with the same four
// datasets; read in bounded row slices. Writer for the project layout.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "events_internal.hpp"
#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"

namespace evformer::io::detail {
namespace {

constexpr const char* project_format = "evformer-events";
constexpr std::int64_t project_version = 1;

class H5EventReader final : public EventReader {
  public:
    H5EventReader(const std::filesystem::path& path, const ReaderOptions& opt) : file_(path) {
        source_ = path.string();
        format_ = "hdf5";
        strict_ = opt.strict;
        if (file_.has_attr("/", "format")) {
            const auto f = file_.attr_string("/", "format");
            if (f != project_format)
                throw FileError(source_, -1,
                                fmt::format("HDF5 root attribute format is '{}', expected '{}' "
                                            "(or an events/{{x,y,t,p}} file without it)",
                                            f, project_format));
            const auto v = file_.attr_int("/", "format_version");
            if (v > project_version)
                throw FileError(source_, -1,
                                fmt::format("events format_version {} is newer than this reader "
                                            "({})",
                                            v, project_version));
        }
        prefix_ = file_.is_dataset("/events/x") ? "/events/" : "/";
        for (const char* name : {"x", "y", "t", "p"}) {
            if (!file_.is_dataset(prefix_ + name))
                throw FileError(source_, -1,
                                fmt::format("no dataset {}{} (expected events/x, events/y, "
                                            "events/t and events/p)",
                                            prefix_, name));
            // A missing filter plugin is the cause to name before anything else.
            file_.require_filters(prefix_ + name);
            check_type(name, opt);
            const auto shape = file_.shape(prefix_ + name);
            if (shape.size() != 1)
                throw FileError(source_, -1,
                                fmt::format("{}{} has shape {}, expected one dimension", prefix_,
                                            name, h5::shape_string(shape)));
            if (name[0] == 'x')
                total_ = shape[0];
            else if (shape[0] != total_)
                throw FileError(source_, -1,
                                fmt::format("{}{} has {} elements but {}x has {}", prefix_, name,
                                            shape[0], prefix_, total_));
        }
        if (file_.is_dataset("/t_offset")) {
            const auto off = file_.read<std::int64_t>("/t_offset");
            if (off.size() != 1) throw FileError(source_, -1, "/t_offset is not a scalar");
            t_offset_ = off[0];
            format_ = "hdf5-dsec";
        }
        geometry_ = opt.geometry;
        for (const std::string obj : {"/", "/events"}) {
            if (geometry_.known()) break;
            if (file_.exists(obj) && file_.has_attr(obj, "width") && file_.has_attr(obj, "height"))
                geometry_ = {geometry_attr(obj, "width"), geometry_attr(obj, "height")};
        }
    }

    std::size_t read(EventChunk& chunk) override {
        const std::size_t k = std::min(chunk.capacity(), total_ - next_);
        if (k == 0) {
            chunk.set_size(0);
            return 0;
        }
        // x and y are read wide so that negative or too large values are seen, not clipped.
        const auto x = file_.read_rows<std::int64_t>(prefix_ + "x", next_, k);
        const auto y = file_.read_rows<std::int64_t>(prefix_ + "y", next_, k);
        const auto t = read_times(next_, k);
        const auto p = file_.read_rows<std::int64_t>(prefix_ + "p", next_, k);
        Event* out = chunk.data();
        std::size_t n = 0;
        for (std::size_t i = 0; i < k; ++i) {
            std::int64_t te;
            if (__builtin_add_overflow(t[i], t_offset_, &te)) [[unlikely]]
                throw FileError(source_, -1,
                                fmt::format("{}t[{}] = {} plus /t_offset {} does not fit in 64 "
                                            "bits of µs",
                                            prefix_, next_ + i, t[i], t_offset_));
            if (te < last_) violation(Violation::time_backwards, -1);
            last_ = te;
            if (p[i] < 0 || p[i] > 1) violation(Violation::bad_polarity, -1);
            const bool inside =
                geometry_.known()
                    ? x[i] >= 0 && y[i] >= 0 && x[i] < geometry_.width && y[i] < geometry_.height
                    : x[i] >= 0 && y[i] >= 0 && x[i] <= 0xFFFF && y[i] <= 0xFFFF;
            if (!inside) {
                violation(Violation::coordinate_out_of_range, -1);
                continue;
            }
            out[n++] = Event{te, static_cast<std::uint16_t>(x[i]), static_cast<std::uint16_t>(y[i]),
                             static_cast<std::uint8_t>(p[i] != 0)};
        }
        next_ += k;
        chunk.set_size(n);
        // A chunk whose events were all dropped must not look like the end of the stream.
        if (n == 0 && next_ < total_) return read(chunk);
        return n;
    }

  private:
    // A width or height attribute: a whole number of pixels in 0..65536 (0 = unknown, as the
    // writer stores for a file without events); anything else is refused by name.
    std::uint32_t geometry_attr(const std::string& object, const char* key) const {
        const double v = file_.attr_number(object, key);
        if (!(v >= 0 && v <= 65536) || v != std::floor(v))
            throw FileError(source_, -1,
                            fmt::format("attribute {} of {} is {}, expected a whole number of "
                                        "pixels in 0..65536",
                                        key, object, v));
        return static_cast<std::uint32_t>(v);
    }

    // Integer x, y, p and t are read as they are; floating-point t (seconds, as some tools
    // write) only when the user asks for the conversion; floating-point x, y or p never.
    void check_type(const char* name, const ReaderOptions& opt) {
        const auto type = file_.dtype(prefix_ + name);
        const bool is_float = type == h5::DType::f32 || type == h5::DType::f64;
        if (!is_float) return;
        if (name[0] == 't' && opt.float_seconds) {
            float_t_ = true;
            return;
        }
        throw FileError(
            source_, -1,
            name[0] == 't'
                ? fmt::format("{}t holds {} values: event time must be integer µs (if they are "
                              "seconds, convert on request: --t-seconds)",
                              prefix_, h5::dtype_name(type))
                : fmt::format("{}{} holds {} values, expected integers", prefix_, name,
                              h5::dtype_name(type)));
    }

    // Times of rows [first, first + count) in µs: integers as stored, or seconds × 10⁶ rounded
    // to the nearest µs; a non-finite or out-of-range time is a FileError.
    std::vector<std::int64_t> read_times(std::size_t first, std::size_t count) {
        if (!float_t_) return file_.read_rows<std::int64_t>(prefix_ + "t", first, count);
        const auto seconds = file_.read_rows<double>(prefix_ + "t", first, count);
        std::vector<std::int64_t> t(seconds.size());
        for (std::size_t i = 0; i < seconds.size(); ++i) {
            const double us = std::nearbyint(seconds[i] * 1e6);
            if (!std::isfinite(us) || std::fabs(us) > 9.0e18)
                throw FileError(source_, -1,
                                fmt::format("{}t[{}] = {} s cannot be converted to µs", prefix_,
                                            first + i, seconds[i]));
            t[i] = static_cast<std::int64_t>(us);
        }
        return t;
    }

    h5::Reader file_;
    bool float_t_ = false;
    std::string prefix_;
    std::size_t total_ = 0;
    std::size_t next_ = 0;
    std::int64_t t_offset_ = 0;
    std::int64_t last_ = std::numeric_limits<std::int64_t>::min();
};

int probe_hdf5(std::span<const std::uint8_t> head) {
    static constexpr std::string_view magic("\x89HDF\r\n\x1a\n", 8);
    for (std::size_t at : {0, 512, 1024, 2048})
        if (at < head.size() && starts_with(head.subspan(at), magic)) return 100;
    return 0;
}

class H5EventWriter final : public EventWriter {
  public:
    H5EventWriter(const std::filesystem::path& path, const WriterOptions& opt)
        : file_(path), options_(opt) {
        const auto rows = std::max<std::size_t>(opt.chunk_events, 1);
        file_.create_appendable<std::uint16_t>("/events/x", rows, opt.gzip_level);
        file_.create_appendable<std::uint16_t>("/events/y", rows, opt.gzip_level);
        file_.create_appendable<std::int64_t>("/events/t", rows, opt.gzip_level);
        file_.create_appendable<std::uint8_t>("/events/p", rows, opt.gzip_level);
    }

    void write(std::span<const Event> events) override {
        x_.resize(events.size());
        y_.resize(events.size());
        t_.resize(events.size());
        p_.resize(events.size());
        for (std::size_t i = 0; i < events.size(); ++i) {
            x_[i] = events[i].x;
            y_[i] = events[i].y;
            t_[i] = events[i].t;
            p_[i] = events[i].p;
            max_x_ = std::max<std::uint32_t>(max_x_, events[i].x);
            max_y_ = std::max<std::uint32_t>(max_y_, events[i].y);
        }
        file_.append<std::uint16_t>("/events/x", x_);
        file_.append<std::uint16_t>("/events/y", y_);
        file_.append<std::int64_t>("/events/t", t_);
        file_.append<std::uint8_t>("/events/p", p_);
        count_ += events.size();
    }

    void finish() override {
        Geometry g = options_.geometry;
        const bool inferred = !g.known();
        if (inferred) g = {count_ ? max_x_ + 1 : 0, count_ ? max_y_ + 1 : 0};
        file_.attr("/", "format", std::string(project_format));
        file_.attr("/", "format_version", project_version);
        file_.attr("/", "width", std::int64_t{g.width});
        file_.attr("/", "height", std::int64_t{g.height});
        file_.attr("/", "geometry_inferred", std::int64_t{inferred});
        file_.attr("/", "count", static_cast<std::int64_t>(count_));
        file_.attr("/", "time_unit", std::string("us"));
        file_.commit();
    }

  private:
    h5::Writer file_;
    WriterOptions options_;
    std::vector<std::uint16_t> x_, y_;
    std::vector<std::int64_t> t_;
    std::vector<std::uint8_t> p_;
    std::uint32_t max_x_ = 0, max_y_ = 0;
    std::size_t count_ = 0;
};

}  // namespace

EventFormat hdf5_format() {
    EventFormat f;
    f.name = "hdf5";
    f.description = "HDF5 events: evformer layout, DSEC layout or any events/{x,y,t,p}";
    f.probe = [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
        return probe_hdf5(head);
    };
    f.open_file = [](const std::filesystem::path& path, const ReaderOptions& opt) {
        return std::unique_ptr<EventReader>(new H5EventReader(path, opt));
    };
    return f;
}

EventWriterFormat hdf5_writer_format() {
    EventWriterFormat f;
    f.name = "hdf5";
    f.extensions = {".h5", ".hdf5"};
    f.description = "HDF5, evformer events layout (chunked, gzip)";
    f.create = [](const std::filesystem::path& path, const WriterOptions& opt) {
        return std::unique_ptr<EventWriter>(new H5EventWriter(path, opt));
    };
    return f;
}

}  // namespace evformer::io::detail
