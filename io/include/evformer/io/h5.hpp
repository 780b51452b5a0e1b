// The HDF5 tensor store: named numeric tensors with shapes, string tensors, string/number
// attributes and nested groups. Writers go to a temporary file that is renamed onto the final name
// on commit(), so a crash never leaves a half-written file under the real name. HDF5 itself stays
// out of this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace evformer::io::h5 {

/// Element types the store reads and writes.
enum class DType { f32, f64, i8, u8, i16, u16, i32, u32, i64, u64 };

/// The dimensions of a tensor, outermost first; an empty shape is a scalar.
using Shape = std::vector<std::size_t>;

/// An attribute value: integer, floating point or string.
using AttrValue = std::variant<std::int64_t, double, std::string>;

/// Name of a dtype as used in messages and docs ("f32", "u16", …).
const char* dtype_name(DType t) noexcept;

/// The dtype of a C++ element type.
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
    return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
    return DType::f64;
}
template <>
constexpr DType dtype_of<std::int8_t>() {
    return DType::i8;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
    return DType::u8;
}
template <>
constexpr DType dtype_of<std::int16_t>() {
    return DType::i16;
}
template <>
constexpr DType dtype_of<std::uint16_t>() {
    return DType::u16;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
    return DType::i32;
}
template <>
constexpr DType dtype_of<std::uint32_t>() {
    return DType::u32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
    return DType::i64;
}
template <>
constexpr DType dtype_of<std::uint64_t>() {
    return DType::u64;
}

/// Number of elements a shape holds (1 for a scalar).
std::size_t element_count(const Shape& shape) noexcept;

/// "(2, 3, 4)" — for messages.
std::string shape_string(const Shape& shape);

/// Storage options of one dataset: chunk length along the first axis (0 = contiguous) and the
/// gzip level (0 = none; needs chunking, which is then chosen automatically).
struct StorageOptions {
    std::size_t chunk_rows = 0;
    int gzip_level = 0;
};

/// Writes one HDF5 file atomically (temporary name, renamed on commit()).
class Writer {
  public:
    /// Opens a temporary file beside `final_path`; parent folders must exist.
    explicit Writer(std::filesystem::path final_path);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    /// Writes a dataset at `path` ("a/b/c": groups are created as needed). The data length must
    /// equal the shape's element count.
    template <class T>
    void write(const std::string& path, std::span<const T> data, const Shape& shape,
               const StorageOptions& options = {});

    /// Writes a string dataset at `path` ("a/b/c": groups are created as needed), the way h5py
    /// writes Python `str` values: variable-length, UTF-8, null-terminated. An empty shape writes a
    /// scalar; `data` is row-major and its length must equal the shape's element count (else a
    /// ConfigError), and no string may contain a NUL byte (ConfigError). Bytes are written as given
    /// (the caller supplies UTF-8). Throws FileError if the dataset cannot be created.
    void write_strings(const std::string& path, std::span<const std::string> data,
                       const Shape& shape);

    /// Creates a one-dimensional dataset that grows with append(); chunked, optionally gzip.
    template <class T>
    void create_appendable(const std::string& path, std::size_t chunk_rows, int gzip_level = 0);

    /// Appends elements to a dataset made by create_appendable().
    template <class T>
    void append(const std::string& path, std::span<const T> data);

    /// Creates a group (and its parents) if it does not exist.
    void group(const std::string& path);

    /// Sets an attribute on a group or dataset ("/" or "" is the root group).
    void attr(const std::string& object, const std::string& key, const AttrValue& value);

    /// Flushes, closes and renames the temporary file onto the final name.
    void commit();

    /// The temporary file being written (for tests of the atomic-write guarantee).
    const std::filesystem::path& temporary_path() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Reads an HDF5 file; every failure names the file and the object.
class Reader {
  public:
    explicit Reader(std::filesystem::path path);
    ~Reader();
    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;

    const std::filesystem::path& path() const noexcept;

    /// True if a group or dataset exists at `path`.
    bool exists(const std::string& path) const;
    bool is_group(const std::string& path) const;
    bool is_dataset(const std::string& path) const;

    /// Names of the members of a group, sorted.
    std::vector<std::string> list(const std::string& group) const;

    /// The dimensions of a dataset (numeric or string); empty for a scalar. A dataset with a null
    /// dataspace (no value at all, h5py's `Empty`) is a FileError.
    Shape shape(const std::string& dataset) const;

    /// The element type of a numeric dataset (a FileError for strings, enums, compounds, …).
    /// Floating-point types other than 4 bytes wide report f64.
    DType dtype(const std::string& dataset) const;

    /// True if `path` is a dataset whose elements are strings (fixed-length or variable-length,
    /// ASCII or UTF-8); false for numeric datasets, groups and missing paths.
    bool is_string(const std::string& path) const;

    /// Reads a whole string dataset, row-major (shape from shape()). Variable-length strings
    /// (h5py's `str`) come back as stored; fixed-length ones (numpy `S` arrays) are cut at the
    /// first NUL, and trailing spaces are removed when the type is space-padded. The bytes are
    /// returned as stored (UTF-8 or ASCII, no conversion). FileError if the dataset is missing,
    /// not a string dataset, or unreadable.
    std::vector<std::string> read_strings(const std::string& dataset) const;

    /// Reads a whole dataset, converting its numbers to T.
    template <class T>
    std::vector<T> read(const std::string& dataset) const;

    /// Reads a whole dataset whose shape must equal `expected` (else a FileError naming both).
    template <class T>
    std::vector<T> read(const std::string& dataset, const Shape& expected) const;

    /// Reads `count` rows starting at row `first` of a dataset (rows along the first axis).
    template <class T>
    std::vector<T> read_rows(const std::string& dataset, std::size_t first,
                             std::size_t count) const;

    /// Throws FileError when a filter the dataset's chunks need (Blosc, LZ4, zstd, bitshuffle,
    /// Prophesee ECF, …) cannot be loaded by this HDF5 library, naming the filter, its id and
    /// HDF5_PLUGIN_PATH (the folder where HDF5 looks for filter plugins).
    void require_filters(const std::string& dataset) const;

    bool has_attr(const std::string& object, const std::string& key) const;
    std::vector<std::string> attrs(const std::string& object) const;
    AttrValue attr(const std::string& object, const std::string& key) const;
    std::string attr_string(const std::string& object, const std::string& key) const;
    double attr_number(const std::string& object, const std::string& key) const;
    std::int64_t attr_int(const std::string& object, const std::string& key) const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace evformer::io::h5
