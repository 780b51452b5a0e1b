#include <doctest/doctest.h>
#include <zlib.h>

#include <filesystem>

#include "evformer/error.hpp"
#include "evformer/io/idx.hpp"
#include "support.hpp"

using evformer::FileError;
using evformer::test::ScratchDir;
using evformer::test::write_bytes;
namespace io = evformer::io;

namespace {

std::vector<unsigned char> idx_header(std::vector<std::uint32_t> dims) {
    std::vector<unsigned char> b{0, 0, 0x08, static_cast<unsigned char>(dims.size())};
    for (auto d : dims)
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
    return b;
}

std::vector<unsigned char> gzip_bytes(const std::vector<unsigned char>& plain) {
    z_stream zs{};
    deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    std::vector<unsigned char> out(deflateBound(&zs, plain.size()) + 32);
    zs.next_in = const_cast<Bytef*>(plain.data());
    zs.avail_in = static_cast<uInt>(plain.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

// A tiny 3-image 2x2 dataset with labels 0, 1, 2.
void write_tiny(const ScratchDir& dir, bool gz) {
    auto images = idx_header({3, 2, 2});
    for (unsigned char v = 0; v < 12; ++v) images.push_back(v * 20);
    auto labels = idx_header({3});
    labels.insert(labels.end(), {0, 1, 2});
    write_bytes(dir / (gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte"),
                gz ? gzip_bytes(images) : images);
    write_bytes(dir / (gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte"),
                gz ? gzip_bytes(labels) : labels);
}

}  // namespace

TEST_CASE("idx reader decodes a hand-built plain and gzip file alike") {
    for (bool gz : {false, true}) {
        ScratchDir dir;
        write_tiny(dir, gz);
        auto ds = io::load_mnist_like(dir.path(), "train");
        CHECK(ds.count == 3);
        CHECK(ds.rows == 2);
        CHECK(ds.cols == 2);
        CHECK(ds.labels == std::vector<std::uint8_t>{0, 1, 2});
        CHECK(ds.image(2)[3] == 11 * 20);
    }
}

TEST_CASE("idx reader rejects a wrong magic, naming the file") {
    ScratchDir dir;
    write_bytes(dir / "bad", {0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 1});
    try {
        io::read_idx(dir / "bad");
        FAIL("expected an error");
    } catch (const FileError& e) {
        CHECK(std::string(e.what()).find("wrong magic") != std::string::npos);
        CHECK(std::string(e.what()).find("bad") != std::string::npos);
        CHECK(e.offset() == 0);
    }
}

TEST_CASE("idx reader rejects a truncated file at every length") {
    ScratchDir dir;
    auto images = idx_header({2, 3, 3});
    images.resize(images.size() + 18, 7);
    for (std::size_t cut = 0; cut < images.size(); ++cut) {
        write_bytes(dir / "cut", std::vector<unsigned char>(images.begin(), images.begin() + cut));
        CHECK_THROWS_AS(io::read_idx(dir / "cut"), FileError);
    }
    write_bytes(dir / "whole", images);
    CHECK(io::read_idx(dir / "whole").data.size() == 18);
}

TEST_CASE("idx reader rejects trailing bytes and a truncated gzip stream") {
    ScratchDir dir;
    auto images = idx_header({1, 2, 2});
    images.insert(images.end(), {1, 2, 3, 4, 5});
    write_bytes(dir / "long", images);
    CHECK_THROWS_WITH_AS(io::read_idx(dir / "long"), doctest::Contains("trailing data"), FileError);
    images.pop_back();
    auto gz = gzip_bytes(images);
    gz.resize(gz.size() / 2);
    write_bytes(dir / "cut.gz", gz);
    CHECK_THROWS_WITH_AS(io::read_idx(dir / "cut.gz"), doctest::Contains("truncated"), FileError);
}

TEST_CASE("idx dataset rejects a label count that differs from the image count") {
    ScratchDir dir;
    auto images = idx_header({2, 1, 1});
    images.insert(images.end(), {1, 2});
    auto labels = idx_header({3});
    labels.insert(labels.end(), {0, 1, 2});
    write_bytes(dir / "i", images);
    write_bytes(dir / "l", labels);
    CHECK_THROWS_WITH_AS(io::read_idx_dataset(dir / "i", dir / "l", 10),
                         doctest::Contains("3 labels for 2 images"), FileError);
}

TEST_CASE("idx dataset rejects a label outside the class range") {
    ScratchDir dir;
    auto images = idx_header({1, 1, 1});
    images.push_back(9);
    auto labels = idx_header({1});
    labels.push_back(10);
    write_bytes(dir / "i", images);
    write_bytes(dir / "l", labels);
    CHECK_THROWS_WITH_AS(io::read_idx_dataset(dir / "i", dir / "l", 10),
                         doctest::Contains("expected 0..9"), FileError);
}

TEST_CASE("a missing split file names what was expected") {
    ScratchDir dir;
    CHECK_THROWS_WITH_AS(io::load_mnist_like(dir.path(), "test"),
                         doctest::Contains("t10k-images-idx3-ubyte"), FileError);
    CHECK_THROWS_AS(io::load_mnist_like(dir.path(), "valid"), evformer::ConfigError);
}

TEST_CASE("the real Fashion-MNIST package decodes to 60000 + 10000 images of 28x28") {
    const std::filesystem::path dir = EVFORMER_FMNIST_DIR;
    if (!std::filesystem::exists(dir / "train-images-idx3-ubyte.gz")) {
        MESSAGE("Fashion-MNIST not installed at " << dir
                                                  << " (Debian package "
                                                     "dataset-fashion-mnist); skipped");
        return;
    }
    auto train = io::load_mnist_like(dir, "train");
    CHECK(train.count == 60000);
    CHECK(train.rows == 28);
    CHECK(train.cols == 28);
    std::vector<std::size_t> per_class(10, 0);
    for (auto l : train.labels) ++per_class[l];
    for (auto c : per_class) CHECK(c == 6000);
    auto test = io::load_mnist_like(dir, "test");
    CHECK(test.count == 10000);
    // The first test label of Fashion-MNIST is 9 (ankle boot), the first train label 9 too.
    CHECK(test.labels[0] == 9);
    CHECK(train.labels[0] == 9);
}
