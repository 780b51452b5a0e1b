#include "evformer/io/h5.hpp"

#include <fmt/format.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>

#include "evformer/error.hpp"

namespace evformer::io::h5 {
namespace {

// Silences HDF5's own error printing once per process: errors are reported through FileError.
void quiet_hdf5() {
    static const bool once = [] {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        return true;
    }();
    (void)once;
}

// Owns one HDF5 identifier and closes it with the matching function.
class Handle {
  public:
    Handle() = default;
    Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = o.id_;
            close_ = o.close_;
            o.id_ = H5I_INVALID_HID;
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }
    void reset() {
        if (id_ >= 0 && close_) close_(id_);
        id_ = H5I_INVALID_HID;
    }
    hid_t get() const noexcept { return id_; }
    bool valid() const noexcept { return id_ >= 0; }

  private:
    hid_t id_ = H5I_INVALID_HID;
    herr_t (*close_)(hid_t) = nullptr;
};

// The messages on HDF5's error stack, outermost first ("" when it is empty): the cause of a
// failed call, kept in our messages.
std::string hdf5_cause() {
    std::string out;
    H5Ewalk2(
        H5E_DEFAULT, H5E_WALK_DOWNWARD,
        [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
            auto* text = static_cast<std::string*>(data);
            if (e->desc && *e->desc) {
                if (!text->empty()) *text += "; ";
                *text += e->desc;
            }
            return 0;
        },
        &out);
    return out;
}

// Names of the HDF5 filters event files use (registered ids, from the HDF Group's list).
std::string filter_name(H5Z_filter_t id) {
    static const std::map<H5Z_filter_t, const char*> names = {
        {1, "deflate (gzip)"}, {2, "shuffle"},   {3, "Fletcher32"}, {4, "szip"},
        {307, "bzip2"},        {32001, "Blosc"}, {32004, "LZ4"},    {32008, "bitshuffle"},
        {32013, "zfp"},        {32015, "zstd"},  {32026, "Blosc2"}, {0x8ECF, "Prophesee ECF"}};
    const auto it = names.find(id);
    return it != names.end() ? it->second : "unregistered filter";
}

hid_t native_type(DType t) {
    switch (t) {
        case DType::f32:
            return H5T_NATIVE_FLOAT;
        case DType::f64:
            return H5T_NATIVE_DOUBLE;
        case DType::i8:
            return H5T_NATIVE_INT8;
        case DType::u8:
            return H5T_NATIVE_UINT8;
        case DType::i16:
            return H5T_NATIVE_INT16;
        case DType::u16:
            return H5T_NATIVE_UINT16;
        case DType::i32:
            return H5T_NATIVE_INT32;
        case DType::u32:
            return H5T_NATIVE_UINT32;
        case DType::i64:
            return H5T_NATIVE_INT64;
        case DType::u64:
            return H5T_NATIVE_UINT64;
    }
    return H5T_NATIVE_FLOAT;
}

std::string normalise(const std::string& path) {
    if (path.empty() || path == "/") return "/";
    return path.front() == '/' ? path : "/" + path;
}

std::vector<hsize_t> to_hsize(const Shape& shape) {
    return std::vector<hsize_t>(shape.begin(), shape.end());
}

// True if every link along `path` exists (H5Lexists needs the parents to exist).
bool path_exists(hid_t file, const std::string& path) {
    const auto p = normalise(path);
    if (p == "/") return true;
    std::size_t pos = 1;
    while (true) {
        const auto next = p.find('/', pos);
        const auto prefix = p.substr(0, next);
        if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
        if (next == std::string::npos) return true;
        pos = next + 1;
    }
}

// Frees the strings HDF5 allocated when reading variable-length strings into `buffer`.
void reclaim_strings(hid_t mem_type, hid_t space, void* buffer) {
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mem_type, space, H5P_DEFAULT, buffer);
#else
    H5Dvlen_reclaim(mem_type, space, H5P_DEFAULT, buffer);
#endif
}

// A variable-length UTF-8 string type, as h5py writes Python `str`.
Handle utf8_vlen_type() {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
    return type;
}

Handle link_create_props() {
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    return lcpl;
}

}  // namespace

const char* dtype_name(DType t) noexcept {
    switch (t) {
        case DType::f32:
            return "f32";
        case DType::f64:
            return "f64";
        case DType::i8:
            return "i8";
        case DType::u8:
            return "u8";
        case DType::i16:
            return "i16";
        case DType::u16:
            return "u16";
        case DType::i32:
            return "i32";
        case DType::u32:
            return "u32";
        case DType::i64:
            return "i64";
        case DType::u64:
            return "u64";
    }
    return "?";
}

std::size_t element_count(const Shape& shape) noexcept {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

std::string shape_string(const Shape& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Writer::Impl {
    std::filesystem::path final_path;
    std::filesystem::path temp_path;
    Handle file;
    bool committed = false;

    std::string where(const std::string& object) const {
        return fmt::format("{}: {}", final_path.string(), normalise(object));
    }

    hid_t open_object(const std::string& object) const {
        const auto p = normalise(object);
        const hid_t id = H5Oopen(file.get(), p.c_str(), H5P_DEFAULT);
        if (id < 0) throw FileError(final_path.string(), -1, "no object " + p + " to annotate");
        return id;
    }
};

Writer::Writer(std::filesystem::path final_path) : impl_(std::make_unique<Impl>()) {
    quiet_hdf5();
    static std::atomic<int> counter{0};
    impl_->final_path = std::move(final_path);
    impl_->temp_path = impl_->final_path;
    impl_->temp_path += fmt::format(".tmp-{}-{}", ::getpid(), counter++);
    const hid_t f = H5Fcreate(impl_->temp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        throw FileError(impl_->final_path.string(), -1,
                        "cannot create (is the folder there and writable?)");
    impl_->file = Handle(f, H5Fclose);
}

Writer::~Writer() {
    if (impl_ && !impl_->committed) {
        impl_->file.reset();
        std::error_code ec;
        std::filesystem::remove(impl_->temp_path, ec);
    }
}

const std::filesystem::path& Writer::temporary_path() const noexcept {
    return impl_->temp_path;
}

void Writer::group(const std::string& path) {
    const auto p = normalise(path);
    if (path_exists(impl_->file.get(), p)) return;
    auto lcpl = link_create_props();
    Handle g(H5Gcreate2(impl_->file.get(), p.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
             H5Gclose);
    if (!g.valid()) throw FileError(impl_->final_path.string(), -1, "cannot create group " + p);
}

template <class T>
void Writer::write(const std::string& path, std::span<const T> data, const Shape& shape,
                   const StorageOptions& options) {
    const auto p = normalise(path);
    if (data.size() != element_count(shape))
        throw ConfigError(fmt::format("{}: {} elements given for shape {} ({} expected)",
                                      impl_->where(p), data.size(), shape_string(shape),
                                      element_count(shape)));
    const auto dims = to_hsize(shape);
    Handle space(shape.empty()
                     ? H5Screate(H5S_SCALAR)
                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                 H5Sclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (!shape.empty() && element_count(shape) > 0 &&
        (options.chunk_rows > 0 || options.gzip_level > 0)) {
        auto chunk = dims;
        const std::size_t row = element_count(shape) / std::max<std::size_t>(shape[0], 1);
        std::size_t rows = options.chunk_rows;
        if (rows == 0) rows = std::max<std::size_t>(1, (1u << 16) / std::max<std::size_t>(row, 1));
        chunk[0] = std::min<hsize_t>(rows, dims[0]);
        H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
        if (options.gzip_level > 0) {
            H5Pset_shuffle(dcpl.get());
            H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.gzip_level));
        }
    }
    auto lcpl = link_create_props();
    const hid_t type = native_type(dtype_of<T>());
    Handle ds(H5Dcreate2(impl_->file.get(), p.c_str(), type, space.get(), lcpl.get(), dcpl.get(),
                         H5P_DEFAULT),
              H5Dclose);
    if (!ds.valid())
        throw FileError(impl_->final_path.string(), -1,
                        "cannot create dataset " + p + " (does it exist already?)");
    if (!data.empty() && H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
        throw FileError(impl_->final_path.string(), -1, "cannot write dataset " + p);
}

void Writer::write_strings(const std::string& path, std::span<const std::string> data,
                           const Shape& shape) {
    const auto p = normalise(path);
    if (data.size() != element_count(shape))
        throw ConfigError(fmt::format("{}: {} strings given for shape {} ({} expected)",
                                      impl_->where(p), data.size(), shape_string(shape),
                                      element_count(shape)));
    std::vector<const char*> pointers;
    pointers.reserve(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i].find('\0') != std::string::npos)
            throw ConfigError(
                fmt::format("{}: string {} contains a NUL byte, which HDF5 strings cannot hold",
                            impl_->where(p), i));
        pointers.push_back(data[i].c_str());
    }
    const auto dims = to_hsize(shape);
    Handle space(shape.empty()
                     ? H5Screate(H5S_SCALAR)
                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                 H5Sclose);
    auto type = utf8_vlen_type();
    auto lcpl = link_create_props();
    Handle ds(H5Dcreate2(impl_->file.get(), p.c_str(), type.get(), space.get(), lcpl.get(),
                         H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
    if (!ds.valid())
        throw FileError(impl_->final_path.string(), -1,
                        "cannot create dataset " + p + " (does it exist already?)");
    if (!pointers.empty() &&
        H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0)
        throw FileError(impl_->final_path.string(), -1, "cannot write dataset " + p);
}

template <class T>
void Writer::create_appendable(const std::string& path, std::size_t chunk_rows, int gzip_level) {
    const auto p = normalise(path);
    hsize_t zero = 0;
    hsize_t unlimited = H5S_UNLIMITED;
    Handle space(H5Screate_simple(1, &zero, &unlimited), H5Sclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    hsize_t chunk = std::max<std::size_t>(chunk_rows, 1);
    H5Pset_chunk(dcpl.get(), 1, &chunk);
    if (gzip_level > 0) {
        H5Pset_shuffle(dcpl.get());
        H5Pset_deflate(dcpl.get(), static_cast<unsigned>(gzip_level));
    }
    auto lcpl = link_create_props();
    Handle ds(H5Dcreate2(impl_->file.get(), p.c_str(), native_type(dtype_of<T>()), space.get(),
                         lcpl.get(), dcpl.get(), H5P_DEFAULT),
              H5Dclose);
    if (!ds.valid()) throw FileError(impl_->final_path.string(), -1, "cannot create dataset " + p);
}

template <class T>
void Writer::append(const std::string& path, std::span<const T> data) {
    const auto p = normalise(path);
    if (data.empty()) return;
    Handle ds(H5Dopen2(impl_->file.get(), p.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) throw FileError(impl_->final_path.string(), -1, "no dataset " + p);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    hsize_t size = 0;
    if (H5Sget_simple_extent_ndims(space.get()) != 1)
        throw ConfigError(impl_->where(p) + ": append needs a one-dimensional dataset");
    H5Sget_simple_extent_dims(space.get(), &size, nullptr);
    const hsize_t grown = size + data.size();
    if (H5Dset_extent(ds.get(), &grown) < 0)
        throw FileError(impl_->final_path.string(), -1,
                        "cannot extend " + p + " (was it made by create_appendable?)");
    Handle file_space(H5Dget_space(ds.get()), H5Sclose);
    const hsize_t start = size;
    const hsize_t count = data.size();
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr);
    Handle mem_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
    if (H5Dwrite(ds.get(), native_type(dtype_of<T>()), mem_space.get(), file_space.get(),
                 H5P_DEFAULT, data.data()) < 0)
        throw FileError(impl_->final_path.string(), -1, "cannot append to " + p);
}

void Writer::attr(const std::string& object, const std::string& key, const AttrValue& value) {
    Handle obj(impl_->open_object(object), H5Oclose);
    if (H5Aexists(obj.get(), key.c_str()) > 0) H5Adelete(obj.get(), key.c_str());
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    herr_t rc = -1;
    if (const auto* s = std::get_if<std::string>(&value)) {
        Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(type.get(), std::max<std::size_t>(s->size(), 1));
        H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
        H5Tset_cset(type.get(), H5T_CSET_UTF8);
        Handle a(
            H5Acreate2(obj.get(), key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
            H5Aclose);
        std::string padded = s->empty() ? std::string(1, '\0') : *s;
        if (a.valid()) rc = H5Awrite(a.get(), type.get(), padded.data());
    } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
        Handle a(H5Acreate2(obj.get(), key.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                            H5P_DEFAULT),
                 H5Aclose);
        if (a.valid()) rc = H5Awrite(a.get(), H5T_NATIVE_INT64, i);
    } else {
        const double d = std::get<double>(value);
        Handle a(H5Acreate2(obj.get(), key.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT,
                            H5P_DEFAULT),
                 H5Aclose);
        if (a.valid()) rc = H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &d);
    }
    if (rc < 0)
        throw FileError(impl_->final_path.string(), -1,
                        fmt::format("cannot write attribute {} of {}", key, normalise(object)));
}

void Writer::commit() {
    if (impl_->committed) return;
    if (H5Fflush(impl_->file.get(), H5F_SCOPE_GLOBAL) < 0)
        throw FileError(impl_->temp_path.string(), -1, "flush failed");
    impl_->file.reset();
    std::error_code ec;
    std::filesystem::rename(impl_->temp_path, impl_->final_path, ec);
    if (ec)
        throw FileError(impl_->final_path.string(), -1,
                        "cannot rename the finished temporary file onto it: " + ec.message());
    impl_->committed = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Reader::Impl {
    std::filesystem::path path;
    Handle file;

    [[noreturn]] void fail(const std::string& what) const {
        throw FileError(path.string(), -1, what);
    }

    Handle open_dataset(const std::string& name) const {
        const auto p = normalise(name);
        if (!path_exists(file.get(), p)) fail("no dataset " + p);
        Handle ds(H5Dopen2(file.get(), p.c_str(), H5P_DEFAULT), H5Dclose);
        if (!ds.valid()) fail(p + " is not a dataset");
        return ds;
    }

    Handle open_object(const std::string& name) const {
        const auto p = normalise(name);
        if (!path_exists(file.get(), p)) fail("no object " + p);
        Handle obj(H5Oopen(file.get(), p.c_str(), H5P_DEFAULT), H5Oclose);
        if (!obj.valid()) fail("cannot open " + p);
        return obj;
    }

    Shape shape_of(hid_t ds, const std::string& name) const {
        Handle space(H5Dget_space(ds), H5Sclose);
        if (H5Sget_simple_extent_type(space.get()) == H5S_NULL)
            fail(normalise(name) + " has a null dataspace (no value at all)");
        const int rank = H5Sget_simple_extent_ndims(space.get());
        if (rank < 0) fail("unreadable dataspace");
        std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
        if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
        return Shape(dims.begin(), dims.end());
    }
};

Reader::Reader(std::filesystem::path path) : impl_(std::make_unique<Impl>()) {
    quiet_hdf5();
    impl_->path = std::move(path);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(impl_->path, ec))
        impl_->fail("no such file (expected an HDF5 file)");
    if (H5Fis_hdf5(impl_->path.c_str()) <= 0)
        impl_->fail("not an HDF5 file (no HDF5 signature found), or truncated");
    const hid_t f = H5Fopen(impl_->path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) impl_->fail("cannot open as HDF5 (truncated or corrupt)");
    impl_->file = Handle(f, H5Fclose);
}

Reader::~Reader() = default;
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;

const std::filesystem::path& Reader::path() const noexcept {
    return impl_->path;
}

bool Reader::exists(const std::string& path) const {
    return path_exists(impl_->file.get(), path);
}

bool Reader::is_group(const std::string& path) const {
    if (!exists(path)) return false;
    H5O_info_t info;
    if (H5Oget_info_by_name2(impl_->file.get(), normalise(path).c_str(), &info, H5O_INFO_BASIC,
                             H5P_DEFAULT) < 0)
        return false;
    return info.type == H5O_TYPE_GROUP;
}

bool Reader::is_dataset(const std::string& path) const {
    if (!exists(path)) return false;
    H5O_info_t info;
    if (H5Oget_info_by_name2(impl_->file.get(), normalise(path).c_str(), &info, H5O_INFO_BASIC,
                             H5P_DEFAULT) < 0)
        return false;
    return info.type == H5O_TYPE_DATASET;
}

std::vector<std::string> Reader::list(const std::string& group) const {
    const auto p = normalise(group);
    if (!is_group(p)) impl_->fail("no group " + p);
    Handle g(H5Gopen2(impl_->file.get(), p.c_str(), H5P_DEFAULT), H5Gclose);
    std::vector<std::string> names;
    H5Literate(
        g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
        [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
            static_cast<std::vector<std::string>*>(out)->emplace_back(name);
            return 0;
        },
        &names);
    std::sort(names.begin(), names.end());
    return names;
}

Shape Reader::shape(const std::string& dataset) const {
    auto ds = impl_->open_dataset(dataset);
    return impl_->shape_of(ds.get(), dataset);
}

DType Reader::dtype(const std::string& dataset) const {
    auto ds = impl_->open_dataset(dataset);
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    const auto cls = H5Tget_class(type.get());
    const auto size = H5Tget_size(type.get());
    if (cls == H5T_FLOAT) return size == 4 ? DType::f32 : DType::f64;
    if (cls == H5T_STRING) impl_->fail(normalise(dataset) + " holds strings, expected numbers");
    if (cls == H5T_INTEGER) {
        const bool is_signed = H5Tget_sign(type.get()) == H5T_SGN_2;
        switch (size) {
            case 1:
                return is_signed ? DType::i8 : DType::u8;
            case 2:
                return is_signed ? DType::i16 : DType::u16;
            case 4:
                return is_signed ? DType::i32 : DType::u32;
            case 8:
                return is_signed ? DType::i64 : DType::u64;
            default:
                break;
        }
    }
    const char* kind = cls == H5T_ENUM        ? "an enum, as h5py stores numpy bool"
                       : cls == H5T_COMPOUND  ? "a compound"
                       : cls == H5T_OPAQUE    ? "opaque bytes"
                       : cls == H5T_REFERENCE ? "a reference"
                       : cls == H5T_ARRAY     ? "an array type"
                       : cls == H5T_VLEN      ? "a variable-length sequence"
                                              : "not a number";
    impl_->fail(fmt::format("{} has a non-numeric element type ({})", normalise(dataset), kind));
}

bool Reader::is_string(const std::string& path) const {
    if (!is_dataset(path)) return false;
    auto ds = impl_->open_dataset(path);
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    return H5Tget_class(type.get()) == H5T_STRING;
}

std::vector<std::string> Reader::read_strings(const std::string& dataset) const {
    auto ds = impl_->open_dataset(dataset);
    const auto p = normalise(dataset);
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING)
        impl_->fail(p + " holds numbers (or another non-string type), expected strings");
    const auto n = element_count(impl_->shape_of(ds.get(), dataset));
    std::vector<std::string> out;
    if (n == 0) return out;
    out.reserve(n);
    const auto unreadable = [&] {
        const auto cause = hdf5_cause();
        require_filters(dataset);
        impl_->fail(fmt::format("cannot read the strings of {}{}", p,
                                cause.empty() ? "" : ": HDF5 says: " + cause));
    };
    if (H5Tis_variable_str(type.get()) > 0) {
        Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mem.get(), H5T_VARIABLE);
        // HDF5 converts between character sets not at all: read in the stored one
        H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
        std::vector<char*> pointers(n, nullptr);
        if (H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0)
            unreadable();
        for (const char* text : pointers) out.emplace_back(text ? text : "");
        Handle space(H5Dget_space(ds.get()), H5Sclose);
        reclaim_strings(mem.get(), space.get(), pointers.data());
        return out;
    }
    const std::size_t width = H5Tget_size(type.get());
    const bool space_padded = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
    std::vector<char> buffer(n * width);
    if (width > 0 &&
        H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0)
        unreadable();
    for (std::size_t i = 0; i < n; ++i) {
        const char* begin = buffer.data() + i * width;
        std::string text(begin, std::find(begin, begin + width, '\0'));
        if (space_padded)
            while (!text.empty() && text.back() == ' ') text.pop_back();
        out.push_back(std::move(text));
    }
    return out;
}

template <class T>
std::vector<T> Reader::read(const std::string& dataset) const {
    auto ds = impl_->open_dataset(dataset);
    const auto shape = impl_->shape_of(ds.get(), dataset);
    std::vector<T> out(element_count(shape));
    if (!out.empty() && H5Dread(ds.get(), native_type(dtype_of<T>()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                out.data()) < 0) {
        const auto cause = hdf5_cause();
        require_filters(dataset);
        impl_->fail(fmt::format("cannot read {} as {} (corrupt data or unconvertible type){}",
                                normalise(dataset), dtype_name(dtype_of<T>()),
                                cause.empty() ? "" : ": HDF5 says: " + cause));
    }
    return out;
}

template <class T>
std::vector<T> Reader::read(const std::string& dataset, const Shape& expected) const {
    const auto actual = shape(dataset);
    if (actual != expected)
        impl_->fail(fmt::format("{} has shape {}, expected {}", normalise(dataset),
                                shape_string(actual), shape_string(expected)));
    return read<T>(dataset);
}

template <class T>
std::vector<T> Reader::read_rows(const std::string& dataset, std::size_t first,
                                 std::size_t count) const {
    auto ds = impl_->open_dataset(dataset);
    const auto shape = impl_->shape_of(ds.get(), dataset);
    if (shape.empty()) impl_->fail(normalise(dataset) + " is a scalar, expected rows");
    if (first > shape[0] || count > shape[0] - first)
        impl_->fail(fmt::format("rows {}..{} of {} requested, it has {}", first, first + count,
                                normalise(dataset), shape[0]));
    const std::size_t row = element_count(shape) / std::max<std::size_t>(shape[0], 1);
    std::vector<T> out(count * row);
    if (count == 0) return out;
    Handle file_space(H5Dget_space(ds.get()), H5Sclose);
    auto start = std::vector<hsize_t>(shape.size(), 0);
    auto dims = to_hsize(shape);
    start[0] = first;
    dims[0] = count;
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(),
                        nullptr);
    Handle mem_space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                     H5Sclose);
    if (H5Dread(ds.get(), native_type(dtype_of<T>()), mem_space.get(), file_space.get(),
                H5P_DEFAULT, out.data()) < 0) {
        const auto cause = hdf5_cause();
        require_filters(dataset);
        impl_->fail(fmt::format("cannot read rows {}..{} of {}{}", first, first + count,
                                normalise(dataset), cause.empty() ? "" : ": HDF5 says: " + cause));
    }
    return out;
}

void Reader::require_filters(const std::string& dataset) const {
    auto ds = impl_->open_dataset(dataset);
    Handle plist(H5Dget_create_plist(ds.get()), H5Pclose);
    if (!plist.valid()) return;
    const int n = H5Pget_nfilters(plist.get());
    for (int i = 0; i < n; ++i) {
        unsigned flags = 0;
        std::size_t nvalues = 0;
        char name[64] = {};
        const H5Z_filter_t id = H5Pget_filter2(plist.get(), static_cast<unsigned>(i), &flags,
                                               &nvalues, nullptr, sizeof name, name, nullptr);
        if (id < 0 || H5Zfilter_avail(id) > 0) continue;
        const char* plugin_path = std::getenv("HDF5_PLUGIN_PATH");
        impl_->fail(fmt::format(
            "{} is compressed with the {} filter (id {}{}), which this HDF5 library cannot load: "
            "install the filter plugin and set HDF5_PLUGIN_PATH to its folder (now {})",
            normalise(dataset), filter_name(id), id, *name ? fmt::format(", '{}'", name) : "",
            plugin_path ? fmt::format("'{}'", plugin_path) : "unset"));
    }
}

bool Reader::has_attr(const std::string& object, const std::string& key) const {
    if (!exists(object)) return false;
    auto obj = impl_->open_object(object);
    return H5Aexists(obj.get(), key.c_str()) > 0;
}

std::vector<std::string> Reader::attrs(const std::string& object) const {
    auto obj = impl_->open_object(object);
    std::vector<std::string> names;
    H5Aiterate2(
        obj.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
        [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
            static_cast<std::vector<std::string>*>(out)->emplace_back(name);
            return 0;
        },
        &names);
    return names;
}

AttrValue Reader::attr(const std::string& object, const std::string& key) const {
    auto obj = impl_->open_object(object);
    const auto where = fmt::format("attribute {} of {}", key, normalise(object));
    if (H5Aexists(obj.get(), key.c_str()) <= 0) impl_->fail("no " + where);
    Handle a(H5Aopen(obj.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
    Handle type(H5Aget_type(a.get()), H5Tclose);
    const auto cls = H5Tget_class(type.get());
    if (cls == H5T_STRING) {
        if (H5Tis_variable_str(type.get()) > 0) {
            char* text = nullptr;
            Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
            H5Tset_size(mem.get(), H5T_VARIABLE);
            // h5py writes UTF-8 strings; HDF5 converts between character sets not at all
            H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
            if (H5Aread(a.get(), mem.get(), &text) < 0) impl_->fail("unreadable " + where);
            std::string s = text ? text : "";
            H5free_memory(text);
            return s;
        }
        const auto size = H5Tget_size(type.get());
        std::string s(size, '\0');
        if (H5Aread(a.get(), type.get(), s.data()) < 0) impl_->fail("unreadable " + where);
        s.resize(std::strlen(s.c_str()));
        return s;
    }
    if (cls == H5T_INTEGER) {
        std::int64_t v = 0;
        if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) impl_->fail("unreadable " + where);
        return v;
    }
    if (cls == H5T_FLOAT) {
        double v = 0;
        if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) impl_->fail("unreadable " + where);
        return v;
    }
    impl_->fail(where + " is neither a number nor a string");
}

std::string Reader::attr_string(const std::string& object, const std::string& key) const {
    const auto v = attr(object, key);
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    impl_->fail(
        fmt::format("attribute {} of {} is a number, expected a string", key, normalise(object)));
}

double Reader::attr_number(const std::string& object, const std::string& key) const {
    const auto v = attr(object, key);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    impl_->fail(
        fmt::format("attribute {} of {} is a string, expected a number", key, normalise(object)));
}

std::int64_t Reader::attr_int(const std::string& object, const std::string& key) const {
    const auto v = attr(object, key);
    if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
    impl_->fail(fmt::format("attribute {} of {} is not an integer", key, normalise(object)));
}

#define EVFORMER_H5_INSTANTIATE(T)                                                             \
    template void Writer::write<T>(const std::string&, std::span<const T>, const Shape&,       \
                                   const StorageOptions&);                                     \
    template void Writer::create_appendable<T>(const std::string&, std::size_t, int);          \
    template void Writer::append<T>(const std::string&, std::span<const T>);                   \
    template std::vector<T> Reader::read<T>(const std::string&) const;                         \
    template std::vector<T> Reader::read<T>(const std::string&, const Shape&) const;           \
    template std::vector<T> Reader::read_rows<T>(const std::string&, std::size_t, std::size_t) \
        const;

EVFORMER_H5_INSTANTIATE(float)
EVFORMER_H5_INSTANTIATE(double)
EVFORMER_H5_INSTANTIATE(std::int8_t)
EVFORMER_H5_INSTANTIATE(std::uint8_t)
EVFORMER_H5_INSTANTIATE(std::int16_t)
EVFORMER_H5_INSTANTIATE(std::uint16_t)
EVFORMER_H5_INSTANTIATE(std::int32_t)
EVFORMER_H5_INSTANTIATE(std::uint32_t)
EVFORMER_H5_INSTANTIATE(std::int64_t)
EVFORMER_H5_INSTANTIATE(std::uint64_t)
#undef EVFORMER_H5_INSTANTIATE

}  // namespace evformer::io::h5
