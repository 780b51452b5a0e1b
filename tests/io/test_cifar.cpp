// The CIFAR-10 and CIFAR-100 binary readers on small hand-built files in the upstream layout
// (the data sets themselves are not on these machines).
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cifar_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/cifar.hpp"
#include "evformer/io/samples.hpp"
#include "support.hpp"

using evformer::ConfigError;
using evformer::FileError;
using evformer::test::cifar_pixel;
using evformer::test::cifar_record;
using evformer::test::concat;
using evformer::test::ScratchDir;
using evformer::test::write_bytes;
using evformer::test::write_cifar10;
using evformer::test::write_cifar100;
namespace io = evformer::io;

namespace {

// The message and offset of the FileError `f` throws.
template <class F>
std::pair<std::string, std::int64_t> file_error(F&& f) {
    try {
        f();
    } catch (const FileError& e) {
        return {e.what(), e.offset()};
    }
    FAIL("expected a FileError");
    return {};
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("cifar-10 reader reads the five training batches in order and the test batch") {
    ScratchDir dir;
    write_cifar10(dir.path());
    const auto folder = io::find_cifar(dir.path());
    REQUIRE(folder);
    CHECK(folder->version == io::CifarVersion::cifar10);
    const auto train = io::load_cifar(*folder, "train");
    CHECK(train.count == 10);
    CHECK(train.channels == 3);
    CHECK(train.rows == 32);
    CHECK(train.cols == 32);
    CHECK(train.classes == 10);
    for (std::size_t i = 0; i < 10; ++i) {
        CAPTURE(i);
        CHECK(train.labels[i] == i);
        // red (0, 0), green (1, 2), blue (31, 30): planes in order, each row-major
        CHECK(train.image(i)[0] == cifar_pixel(i, 0, 0, 0));
        CHECK(train.image(i)[1024 + 1 * 32 + 2] == cifar_pixel(i, 1, 1, 2));
        CHECK(train.image(i)[2048 + 31 * 32 + 30] == cifar_pixel(i, 2, 31, 30));
    }
    const auto test = io::load_cifar(*folder, "test");
    CHECK(test.count == 3);
    CHECK(test.labels == std::vector<std::uint8_t>{7, 8, 9});
    CHECK(test.image(2)[3071] == cifar_pixel(102, 2, 31, 31));
    CHECK(test.name == dir.path().filename().string() + "/test");
    CHECK_THROWS_AS(io::load_cifar(*folder, "valid"), ConfigError);
}

TEST_CASE("cifar-100 reader takes the fine or the coarse label as the class") {
    ScratchDir dir;
    write_cifar100(dir.path());
    const auto folder = io::find_cifar(dir.path());
    REQUIRE(folder);
    CHECK(folder->version == io::CifarVersion::cifar100);
    const auto fine = io::load_cifar(*folder, "train", io::CifarLabel::fine);
    CHECK(fine.count == 3);
    CHECK(fine.classes == 100);
    CHECK(fine.labels == std::vector<std::uint8_t>{99, 0, 57});
    CHECK(fine.image(1)[5] == cifar_pixel(1, 0, 0, 5));  // two label bytes skipped, not one
    const auto coarse = io::load_cifar(*folder, "train", io::CifarLabel::coarse);
    CHECK(coarse.classes == 20);
    CHECK(coarse.labels == std::vector<std::uint8_t>{19, 0, 4});
    CHECK(coarse.pixels == fine.pixels);
    CHECK(has(coarse.name, "(coarse)"));
    const auto test = io::load_cifar(*folder, "test", io::CifarLabel::coarse);
    CHECK(test.labels == std::vector<std::uint8_t>{12});
}

TEST_CASE("cifar readers reject a truncated file at the first byte of the partial record") {
    ScratchDir dir;
    const auto ten = concat({cifar_record({1}, 0), cifar_record({2}, 1)});
    const auto hundred = concat({cifar_record({1, 10}, 0), cifar_record({2, 20}, 1)});
    for (std::size_t cut : {std::size_t{1}, std::size_t{100}, std::size_t{3072}}) {
        CAPTURE(cut);
        // CIFAR-10: two 3073-byte records, the second cut short
        std::vector<unsigned char> bytes(ten.begin(), ten.end() - static_cast<long>(cut));
        write_bytes(dir / "data_batch_1.bin", bytes);
        auto [msg, offset] = file_error(
            [&] { io::read_cifar_file(dir / "data_batch_1.bin", io::CifarVersion::cifar10); });
        CHECK(offset == 3073);
        CHECK(has(msg, "data_batch_1.bin"));
        CHECK(has(msg, "truncated"));
        CHECK(has(msg, "3073"));
        // CIFAR-100: 3074-byte records
        std::vector<unsigned char> b100(hundred.begin(), hundred.end() - static_cast<long>(cut));
        write_bytes(dir / "train.bin", b100);
        std::tie(msg, offset) =
            file_error([&] { io::read_cifar_file(dir / "train.bin", io::CifarVersion::cifar100); });
        CHECK(offset == 3074);
        CHECK(has(msg, "train.bin"));
        CHECK(has(msg, "truncated"));
        CHECK(has(msg, "3074"));
    }
    // a CIFAR-100 file read as CIFAR-10 does not divide into records either
    write_bytes(dir / "test_batch.bin", hundred);
    const auto [msg, offset] =
        file_error([&] { io::read_cifar_file(dir / "test_batch.bin", io::CifarVersion::cifar10); });
    CHECK(offset == 3073 * 2);
    CHECK(has(msg, "truncated"));
    // an empty file holds no record
    write_bytes(dir / "empty.bin", {});
    const auto [empty_msg, empty_offset] =
        file_error([&] { io::read_cifar_file(dir / "empty.bin", io::CifarVersion::cifar10); });
    CHECK(empty_offset == 0);
    CHECK(has(empty_msg, "empty"));
}

TEST_CASE("cifar readers reject a label out of range at its byte") {
    ScratchDir dir;
    write_bytes(dir / "data_batch_1.bin", concat({cifar_record({3}, 0), cifar_record({10}, 1)}));
    auto [msg, offset] = file_error(
        [&] { io::read_cifar_file(dir / "data_batch_1.bin", io::CifarVersion::cifar10); });
    CHECK(offset == 3073);
    CHECK(has(msg, "data_batch_1.bin"));
    CHECK(has(msg, "label 10 of record 1, expected 0..9"));

    // both labels of a CIFAR-100 record are checked, whichever one is used
    write_bytes(dir / "train.bin", concat({cifar_record({0, 0}, 0), cifar_record({20, 5}, 1)}));
    std::tie(msg, offset) = file_error([&] {
        io::read_cifar_file(dir / "train.bin", io::CifarVersion::cifar100, io::CifarLabel::fine);
    });
    CHECK(offset == 3074);
    CHECK(has(msg, "coarse label 20 of record 1, expected 0..19"));
    write_bytes(dir / "train.bin", concat({cifar_record({0, 0}, 0), cifar_record({1, 2}, 1),
                                           cifar_record({3, 100}, 2)}));
    std::tie(msg, offset) = file_error([&] {
        io::read_cifar_file(dir / "train.bin", io::CifarVersion::cifar100, io::CifarLabel::coarse);
    });
    CHECK(offset == 2 * 3074 + 1);
    CHECK(has(msg, "fine label 100 of record 2, expected 0..99"));
}

TEST_CASE("cifar-10 loader names a missing batch and every file the version needs") {
    ScratchDir dir;
    write_cifar10(dir.path());
    std::filesystem::remove(dir / "data_batch_3.bin");
    const auto folder = io::find_cifar(dir.path());
    REQUIRE(folder);
    const auto [msg, offset] = file_error([&] { io::load_cifar(*folder, "train"); });
    CHECK(offset == -1);
    CHECK(has(msg, "data_batch_3.bin: no such file"));
    CHECK(has(msg, "data_batch_1.bin … data_batch_5.bin and test_batch.bin"));
    CHECK(io::load_cifar(*folder, "test").count == 3);  // the other split is whole
}

TEST_CASE("coarse labels are refused for CIFAR-10") {
    ScratchDir dir;
    write_cifar10(dir.path());
    const auto folder = io::find_cifar(dir.path());
    REQUIRE(folder);
    CHECK_THROWS_WITH_AS(io::load_cifar(*folder, "test", io::CifarLabel::coarse),
                         doctest::Contains("CIFAR-100 only"), ConfigError);
    CHECK_THROWS_AS(io::cifar_classes(io::CifarVersion::cifar10, io::CifarLabel::coarse),
                    ConfigError);
    CHECK(io::parse_cifar_label("coarse") == io::CifarLabel::coarse);
    CHECK_THROWS_WITH_AS(io::parse_cifar_label("super"), doctest::Contains("'fine' or 'coarse'"),
                         ConfigError);
}

TEST_CASE("cifar folders are found as upstream archives unpack, and not in event folders") {
    ScratchDir dir;
    write_cifar10(dir / "cifar-10-batches-bin");
    auto found = io::find_cifar(dir.path());  // the parent of the unpacked folder
    REQUIRE(found);
    CHECK(found->dir == dir / "cifar-10-batches-bin");
    CHECK(found->version == io::CifarVersion::cifar10);

    ScratchDir parent100;
    write_cifar100(parent100 / "cifar-100-binary");
    found = io::find_cifar(parent100.path());
    REQUIRE(found);
    CHECK(found->version == io::CifarVersion::cifar100);

    // a flat labels.txt folder of event recordings may hold a recording named train.bin
    ScratchDir events;
    write_bytes(events / "train.bin", {0, 0, 0, 0, 0});
    write_bytes(events / "labels.txt", {'t', 'r', 'a', 'i', 'n', ' ', '0', '\n'});
    CHECK_FALSE(io::find_cifar(events.path()));
    CHECK_FALSE(io::find_cifar(events / "no-such-folder"));

    CHECK(io::cifar_file_version("x/data_batch_5.bin") == io::CifarVersion::cifar10);
    CHECK(io::cifar_file_version("test_batch.bin") == io::CifarVersion::cifar10);
    CHECK(io::cifar_file_version("x/test.bin") == io::CifarVersion::cifar100);
    CHECK_FALSE(io::cifar_file_version("data_batch_6.bin"));
}

TEST_CASE("cifar folders open as sample sources of 3x32x32 images") {
    ScratchDir dir;
    write_cifar10(dir / "c10");
    write_cifar100(dir / "c100");
    CHECK(io::is_image_dataset((dir / "c10").string()));
    CHECK(io::is_image_dataset((dir / "c100").string()));

    io::SampleOptions o;
    o.data = (dir / "c10").string();
    o.split = "train";
    o.limit = 4;
    const auto src = io::open_samples(o);
    CHECK(src->encoding() == io::SampleEncoding::static_image);
    CHECK(src->shape() == io::SampleShape{3, 32, 32, 0});
    CHECK(src->classes() == 10);
    CHECK(src->size() == 4);
    CHECK(src->label(3) == 3);
    CHECK(has(src->describe(), "4 images 3x32x32, 10 classes"));
    std::vector<float> x(src->dense_size());
    REQUIRE(x.size() == 3 * 32 * 32);
    src->dense(3, x.data());
    CHECK(x[1024 + 5 * 32 + 6] == doctest::Approx(cifar_pixel(3, 1, 5, 6) / 255.0));

    o.data = (dir / "c100").string();
    o.limit = 0;
    o.label = io::CifarLabel::coarse;
    const auto coarse = io::open_samples(o);
    CHECK(coarse->classes() == 20);
    CHECK(coarse->label(0) == 19);

    // coarse labels on anything but CIFAR-100 are a configuration error, not a silent fine
    o.data = (dir / "c10").string();
    CHECK_THROWS_WITH_AS(io::open_samples(o), doctest::Contains("is not CIFAR-100"), ConfigError);
}
