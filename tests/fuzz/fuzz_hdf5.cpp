// libFuzzer target for the HDF5 events reader. Raw fuzzed bytes would mostly exercise libhdf5's
// own file parser (a third-party library, not instrumented here) and rarely get past it; instead
// each input describes an HDF5 file — layout (/events/ or root), element type, length, rank and
// chunking of x, y, t and p, their values, the root `format`/`format_version` attributes, the
// width/height attributes, /t_offset — which the project's HDF5 writer writes and the reader then
// reads to the end, with the reader options also taken from the input. evformer::Error is an
// expected outcome; anything else (crash, sanitizer report, other exception, hang) is a finding.
#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/h5.hpp"

namespace {

namespace h5 = evformer::io::h5;

// A number of type T from the input; floating-point values come from raw bits, so NaN,
// infinities, negative and huge values all occur.
template <class T>
T consume_value(FuzzedDataProvider& in) {
    if constexpr (std::is_same_v<T, float>)
        return std::bit_cast<float>(in.ConsumeIntegral<std::uint32_t>());
    else if constexpr (std::is_same_v<T, double>)
        return std::bit_cast<double>(in.ConsumeIntegral<std::uint64_t>());
    else
        return in.ConsumeIntegral<T>();
}

// Writes a dataset of element type T and the given shape, its values taken from the input.
template <class T>
void write_dataset(h5::Writer& w, const std::string& path, const h5::Shape& shape,
                   std::size_t chunk_rows, FuzzedDataProvider& in) {
    std::vector<T> values(h5::element_count(shape));
    // Small values are the common case of real files (coordinates, polarities, µs, seconds); a
    // flag per dataset lets its values be anything.
    const bool any = in.ConsumeBool();
    for (auto& v : values) {
        if (any)
            v = consume_value<T>(in);
        else if constexpr (std::is_floating_point_v<T>)
            v = static_cast<T>(in.ConsumeIntegralInRange<int>(0, 4095)) * static_cast<T>(1e-3);
        else
            v = static_cast<T>(in.ConsumeIntegralInRange<int>(0, 1023));
    }
    w.write<T>(path, values, shape, {chunk_rows, 0});
}

// write_dataset() for an element type chosen by its DType index.
void write_any(h5::Writer& w, const std::string& path, int dtype, const h5::Shape& shape,
               std::size_t chunk_rows, FuzzedDataProvider& in) {
    switch (static_cast<h5::DType>(dtype)) {
        case h5::DType::f32:
            return write_dataset<float>(w, path, shape, chunk_rows, in);
        case h5::DType::f64:
            return write_dataset<double>(w, path, shape, chunk_rows, in);
        case h5::DType::i8:
            return write_dataset<std::int8_t>(w, path, shape, chunk_rows, in);
        case h5::DType::u8:
            return write_dataset<std::uint8_t>(w, path, shape, chunk_rows, in);
        case h5::DType::i16:
            return write_dataset<std::int16_t>(w, path, shape, chunk_rows, in);
        case h5::DType::u16:
            return write_dataset<std::uint16_t>(w, path, shape, chunk_rows, in);
        case h5::DType::i32:
            return write_dataset<std::int32_t>(w, path, shape, chunk_rows, in);
        case h5::DType::u32:
            return write_dataset<std::uint32_t>(w, path, shape, chunk_rows, in);
        case h5::DType::i64:
            return write_dataset<std::int64_t>(w, path, shape, chunk_rows, in);
        case h5::DType::u64:
            return write_dataset<std::uint64_t>(w, path, shape, chunk_rows, in);
    }
}

// An attribute value of any kind: integer, floating point (any bits) or a short string.
h5::AttrValue consume_attr(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0:
            return in.ConsumeIntegralInRange<std::int64_t>(-2, 4000);
        case 1:
            return in.ConsumeIntegral<std::int64_t>();
        case 2:
            return consume_value<double>(in);
        default:
            return in.ConsumeRandomLengthString(16);
    }
}

// Writes the file the input describes; false when the writer refuses it.
bool write_file(const std::filesystem::path& path, FuzzedDataProvider& in) {
    try {
        h5::Writer w(path);
        const bool under_events = in.ConsumeBool();
        const std::string prefix = under_events ? "/events/" : "/";
        if (under_events) w.group("/events");
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
            case 1:
                w.attr("/", "format", std::string("evformer-events"));
                w.attr("/", "format_version", in.ConsumeIntegralInRange<std::int64_t>(0, 2));
                break;
            case 2:
                w.attr("/", "format", consume_attr(in));
                break;
            case 3:
                w.attr("/", "format", std::string("evformer-events"));
                w.attr("/", "format_version", consume_attr(in));
                break;
            default:
                break;
        }
        const auto rows = in.ConsumeIntegralInRange<std::size_t>(0, 200);
        for (const char* name : {"x", "y", "t", "p"}) {
            if (in.ConsumeIntegralInRange<int>(0, 31) == 0) continue;  // dataset missing
            const int dtype = in.ConsumeIntegralInRange<int>(0, 9);
            const std::size_t n = in.ConsumeIntegralInRange<int>(0, 15) == 0
                                      ? in.ConsumeIntegralInRange<std::size_t>(0, 200)
                                      : rows;
            h5::Shape shape{n};
            if (in.ConsumeIntegralInRange<int>(0, 31) == 0) shape.push_back(2);
            const std::size_t chunk =
                n > 0 && in.ConsumeBool() ? in.ConsumeIntegralInRange<std::size_t>(1, 64) : 0;
            write_any(w, prefix + name, dtype, shape, chunk, in);
        }
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
            case 1:
                w.write<std::int64_t>(
                    "/t_offset", std::vector<std::int64_t>{in.ConsumeIntegral<std::int64_t>()}, {});
                break;
            case 2:
                write_any(w, "/t_offset", in.ConsumeIntegralInRange<int>(0, 9),
                          {in.ConsumeIntegralInRange<std::size_t>(0, 3)}, 0, in);
                break;
            default:
                break;
        }
        for (const char* object : {"/", "/events"}) {
            if (object[1] != '\0' && !under_events) break;
            if (in.ConsumeBool()) {
                w.attr(object, "width", consume_attr(in));
                w.attr(object, "height", consume_attr(in));
            }
        }
        w.commit();
        return true;
    } catch (const evformer::Error&) {
        return false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto path = std::filesystem::temp_directory_path() /
                             ("evformer-fuzz-hdf5-" + std::to_string(::getpid()) + ".h5");
    FuzzedDataProvider in(data, size);
    evformer::io::ReaderOptions options;
    options.format = "hdf5";
    options.float_seconds = in.ConsumeBool();
    options.strict = in.ConsumeBool();
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0)
        options.geometry = {in.ConsumeIntegralInRange<std::uint32_t>(0, 2048),
                            in.ConsumeIntegralInRange<std::uint32_t>(0, 2048)};
    if (!write_file(path, in)) return 0;
    try {
        auto reader = evformer::io::open_event_file(path, options);
        evformer::io::EventChunk chunk(evformer::io::EventChunk::min_capacity);
        while (reader->read(chunk) > 0) {
        }
    } catch (const evformer::Error&) {
    }
    std::filesystem::remove(path);
    return 0;
}
