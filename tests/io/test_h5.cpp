#include <doctest/doctest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <numeric>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "support.hpp"

using evformer::FileError;
using evformer::test::ScratchDir;
namespace h5 = evformer::io::h5;

namespace {

template <class T>
void round_trip_type(const ScratchDir& dir) {
    const auto file = dir / "t.h5";
    std::vector<T> data(24);
    std::iota(data.begin(), data.end(), T(1));
    std::vector<T> scalar{T(42)};
    {
        h5::Writer w(file);
        w.write<T>("a/b/tensor", data, {2, 3, 4});
        w.write<T>("flat", data, {24}, {.chunk_rows = 5, .gzip_level = 4});
        w.write<T>("scalar", scalar, {});
        w.write<T>("empty", std::vector<T>{}, {0});
        w.commit();
    }
    h5::Reader r(file);
    CHECK(r.dtype("a/b/tensor") == h5::dtype_of<T>());
    CHECK(r.shape("a/b/tensor") == h5::Shape{2, 3, 4});
    CHECK(r.read<T>("a/b/tensor") == data);
    CHECK(r.read<T>("/a/b/tensor", {2, 3, 4}) == data);
    CHECK(r.read<T>("flat") == data);
    CHECK(r.read<T>("scalar") == scalar);
    CHECK(r.shape("scalar").empty());
    CHECK(r.read<T>("empty").empty());
    CHECK(r.read_rows<T>("a/b/tensor", 1, 1) == std::vector<T>(data.begin() + 12, data.end()));
    CHECK(r.read_rows<T>("flat", 20, 4) == std::vector<T>(data.begin() + 20, data.end()));
}

}  // namespace

TEST_CASE_TEMPLATE("h5 store round-trips every element type and shape", T, float, double,
                   std::int8_t, std::uint8_t, std::int16_t, std::uint16_t, std::int32_t,
                   std::uint32_t, std::int64_t, std::uint64_t) {
    ScratchDir dir;
    round_trip_type<T>(dir);
}

TEST_CASE("h5 store keeps string and number attributes on groups and datasets") {
    ScratchDir dir;
    const auto file = dir / "attrs.h5";
    {
        h5::Writer w(file);
        w.group("g/h");
        w.write<float>("g/h/w", std::vector<float>{1.5f}, {1});
        w.attr("/", "format", std::string("evformer-test"));
        w.attr("/", "version", std::int64_t{3});
        w.attr("g/h", "accuracy", 0.913);
        w.attr("g/h/w", "empty", std::string());
        w.commit();
    }
    h5::Reader r(file);
    CHECK(r.attr_string("/", "format") == "evformer-test");
    CHECK(r.attr_int("/", "version") == 3);
    CHECK(r.attr_number("g/h", "accuracy") == doctest::Approx(0.913));
    CHECK(r.attr_string("g/h/w", "empty").empty());
    CHECK(r.is_group("g"));
    CHECK(r.is_dataset("g/h/w"));
    CHECK(r.list("g") == std::vector<std::string>{"h"});
    CHECK(r.list("/") == std::vector<std::string>{"g"});
    CHECK(r.has_attr("/", "version"));
    CHECK_FALSE(r.has_attr("/", "nope"));
    CHECK_THROWS_WITH_AS(r.attr_string("/", "version"), doctest::Contains("expected a string"),
                         FileError);
}

TEST_CASE("h5 reader reads UTF-8 variable-length string attributes (as h5py writes them)") {
    ScratchDir dir;
    const auto file = dir / "h5py-like.h5";
    {  // what h5py does for f.attrs["format"] = "…": a scalar variable-length UTF-8 string
        const hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
        const hid_t space = H5Screate(H5S_SCALAR);
        const hid_t a = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
        const char* text = "evformer-weights \u00b5s";
        REQUIRE(H5Awrite(a, type, &text) >= 0);
        H5Aclose(a);
        H5Sclose(space);
        H5Tclose(type);
        H5Fclose(f);
    }
    h5::Reader r(file);
    CHECK(r.attr_string("/", "format") == "evformer-weights \u00b5s");
}

TEST_CASE("h5 appendable datasets grow chunk by chunk") {
    ScratchDir dir;
    const auto file = dir / "grow.h5";
    {
        h5::Writer w(file);
        w.create_appendable<std::int64_t>("events/t", 4, 1);
        for (std::int64_t k = 0; k < 5; ++k) {
            std::vector<std::int64_t> part{3 * k, 3 * k + 1, 3 * k + 2};
            w.append<std::int64_t>("events/t", part);
        }
        w.commit();
    }
    h5::Reader r(file);
    auto t = r.read<std::int64_t>("events/t");
    REQUIRE(t.size() == 15);
    for (std::size_t i = 0; i < t.size(); ++i) CHECK(t[i] == static_cast<std::int64_t>(i));
}

TEST_CASE("h5 reader converts stored integers to the requested type") {
    ScratchDir dir;
    const auto file = dir / "conv.h5";
    {
        h5::Writer w(file);
        w.write<std::uint16_t>("x", std::vector<std::uint16_t>{1, 65535}, {2});
        w.commit();
    }
    h5::Reader r(file);
    CHECK(r.read<std::int64_t>("x") == std::vector<std::int64_t>{1, 65535});
    CHECK(r.read<float>("x") == std::vector<float>{1.f, 65535.f});
}

TEST_CASE("h5 reader errors name the file and the missing or misshapen tensor") {
    ScratchDir dir;
    const auto file = dir / "e.h5";
    {
        h5::Writer w(file);
        w.write<float>("w", std::vector<float>(6, 0.f), {2, 3});
        w.commit();
    }
    h5::Reader r(file);
    CHECK_THROWS_WITH_AS(r.read<float>("missing/tensor"),
                         doctest::Contains("no dataset /missing/tensor"), FileError);
    CHECK_THROWS_WITH_AS(r.read<float>("w", {3, 2}),
                         doctest::Contains("/w has shape (2, 3), expected (3, 2)"), FileError);
    CHECK_THROWS_WITH_AS(r.read_rows<float>("w", 1, 5), doctest::Contains("rows 1..6"), FileError);
    CHECK_THROWS_WITH_AS(h5::Reader(dir / "none.h5"), doctest::Contains("no such file"), FileError);
}

TEST_CASE("h5 writer rejects data whose length does not match the shape") {
    ScratchDir dir;
    h5::Writer w(dir / "x.h5");
    CHECK_THROWS_AS(w.write<float>("w", std::vector<float>(5), {2, 3}), evformer::ConfigError);
}

TEST_CASE("h5 reader rejects a file that is not HDF5 or is truncated") {
    ScratchDir dir;
    evformer::test::write_bytes(dir / "text.h5", {'h', 'e', 'l', 'l', 'o'});
    CHECK_THROWS_WITH_AS(h5::Reader(dir / "text.h5"), doctest::Contains("not an HDF5 file"),
                         FileError);
    {
        h5::Writer w(dir / "full.h5");
        w.write<float>("w", std::vector<float>(4096, 1.f), {4096});
        w.commit();
    }
    auto bytes = evformer::test::read_bytes(dir / "full.h5");
    bytes.resize(bytes.size() / 2);
    evformer::test::write_bytes(dir / "half.h5", bytes);
    CHECK_THROWS_AS(
        [&] {
            h5::Reader r(dir / "half.h5");
            (void)r.read<float>("w");
        }(),
        FileError);
}

TEST_CASE("an uncommitted writer leaves no file under the final name") {
    ScratchDir dir;
    const auto file = dir / "atomic.h5";
    {
        h5::Writer w(file);
        w.write<float>("w", std::vector<float>(10, 1.f), {10});
        CHECK(std::filesystem::exists(w.temporary_path()));
        CHECK_FALSE(std::filesystem::exists(file));
    }
    CHECK_FALSE(std::filesystem::exists(file));
}

TEST_CASE("a writer killed midway leaves no file under the final name, and the old one intact") {
    ScratchDir dir;
    const auto file = dir / "killed.h5";
    {
        h5::Writer w(file);
        w.attr("/", "generation", std::int64_t{1});
        w.commit();
    }
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        h5::Writer w(file);
        w.attr("/", "generation", std::int64_t{2});
        w.write<float>("w", std::vector<float>(100000, 2.f), {100000});
        ::kill(::getpid(), SIGKILL);  // dies before commit(), like a crash
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    h5::Reader r(file);
    CHECK(r.attr_int("/", "generation") == 1);
    CHECK_FALSE(r.exists("w"));
}

TEST_CASE("h5 string datasets: scalar and N-D, written as h5py writes str, read back") {
    ScratchDir dir;
    const auto file = dir / "strings.h5";
    const std::vector<std::string> grid = {"input", "0", "0", "1", "1", "out \u00b5"};
    {
        h5::Writer w(file);
        w.write_strings("version", std::vector<std::string>{"1.0.7"}, {});
        w.write_strings("g/edges", grid, {3, 2});
        w.write_strings("none", std::vector<std::string>{}, {0, 2});
        w.write_strings("blank", std::vector<std::string>{""}, {});
        w.write<float>("numbers", std::vector<float>{1.f}, {1});
        CHECK_THROWS_AS(w.write_strings("bad", std::vector<std::string>{"a"}, {2}),
                        evformer::ConfigError);
        CHECK_THROWS_AS(
            w.write_strings("nul", std::vector<std::string>{std::string("a\0b", 3)}, {}),
            evformer::ConfigError);
        w.commit();
    }
    h5::Reader r(file);
    CHECK(r.is_string("version"));
    CHECK(r.shape("version").empty());
    CHECK(r.read_strings("version") == std::vector<std::string>{"1.0.7"});
    CHECK(r.shape("g/edges") == h5::Shape{3, 2});
    CHECK(r.read_strings("g/edges") == grid);
    CHECK(r.read_strings("none").empty());
    CHECK(r.shape("none") == h5::Shape{0, 2});
    CHECK(r.read_strings("blank") == std::vector<std::string>{""});
    CHECK_FALSE(r.is_string("numbers"));
    CHECK_FALSE(r.is_string("g"));
    CHECK_FALSE(r.is_string("missing"));
    CHECK_THROWS_WITH_AS(r.read_strings("numbers"), doctest::Contains("expected strings"),
                         FileError);
    CHECK_THROWS_WITH_AS(r.dtype("version"), doctest::Contains("holds strings"), FileError);

    // the element type on disk: variable-length UTF-8, as h5py's string_dtype()
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t ds = H5Dopen2(f, "/g/edges", H5P_DEFAULT);
    const hid_t type = H5Dget_type(ds);
    CHECK(H5Tget_class(type) == H5T_STRING);
    CHECK(H5Tis_variable_str(type) > 0);
    CHECK(H5Tget_cset(type) == H5T_CSET_UTF8);
    H5Tclose(type);
    H5Dclose(ds);
    H5Fclose(f);
}

TEST_CASE("h5 reads fixed-length string datasets (numpy S arrays), null- and space-padded") {
    ScratchDir dir;
    const auto file = dir / "fixed.h5";
    const auto write_fixed = [](hid_t f, const char* name, H5T_str_t pad, const std::string& bytes,
                                std::size_t width, hsize_t count) {
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, width);
        H5Tset_strpad(type, pad);
        const hid_t space = H5Screate_simple(1, &count, nullptr);
        const hid_t ds = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0);
        H5Dclose(ds);
        H5Sclose(space);
        H5Tclose(type);
    };
    {
        const hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        write_fixed(f, "nullpad", H5T_STR_NULLPAD, std::string("ab\0c\0\0def", 9), 3, 3);
        write_fixed(f, "spacepad", H5T_STR_SPACEPAD, "ab c  ", 3, 2);
        H5Fclose(f);
    }
    h5::Reader r(file);
    CHECK(r.is_string("nullpad"));
    CHECK(r.read_strings("nullpad") == std::vector<std::string>{"ab", "c", "def"});
    CHECK(r.read_strings("spacepad") == std::vector<std::string>{"ab", "c"});
}

TEST_CASE("h5 reads h5py-style variable-length UTF-8 string datasets and names enum types") {
    ScratchDir dir;
    const auto file = dir / "h5py-strings.h5";
    {
        const hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
        const hsize_t dims[2] = {2, 2};
        const hid_t space = H5Screate_simple(2, dims, nullptr);
        const hid_t ds = H5Dcreate2(f, "edges", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const char* text[4] = {"a", "b\u00e9", nullptr, "d"};  // a null pointer reads as ""
        REQUIRE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0);
        H5Dclose(ds);
        H5Sclose(space);
        H5Tclose(type);
        const hid_t flag = H5Tenum_create(H5T_NATIVE_INT8);
        std::int8_t yes = 1;
        H5Tenum_insert(flag, "TRUE", &yes);
        const hid_t scalar = H5Screate(H5S_SCALAR);
        const hid_t b = H5Dcreate2(f, "flag", flag, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(b, flag, H5S_ALL, H5S_ALL, H5P_DEFAULT, &yes);
        H5Dclose(b);
        H5Sclose(scalar);
        H5Tclose(flag);
        H5Fclose(f);
    }
    h5::Reader r(file);
    CHECK(r.read_strings("edges") == std::vector<std::string>{"a", "b\u00e9", "", "d"});
    CHECK_THROWS_WITH_AS(r.dtype("flag"),
                         doctest::Contains("/flag has a non-numeric element type "
                                           "(an enum, as h5py stores numpy bool)"),
                         FileError);
}
