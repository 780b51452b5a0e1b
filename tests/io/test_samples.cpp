// Sample sources and the dataset layouts behind them: flat labels.txt folders, DVS128 Gesture
// label intervals, the seeded per-class split, binning of a real N-MNIST recording and the
// in-memory cache of binned recordings.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "events_bytes.hpp"
#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/events_dataset.hpp"
#include "evformer/io/samples.hpp"
#include "support.hpp"

using namespace evformer::io;
using evformer::test::Bytes;
using evformer::test::ScratchDir;

namespace {

const std::filesystem::path data_dir = EVFORMER_EVENTS_DATA;

void write_text_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path) << text;
}

std::vector<Event> events_at(std::initializer_list<std::int64_t> times) {
    std::vector<Event> ev;
    std::uint16_t i = 0;
    for (auto t : times) {
        ev.push_back({t, static_cast<std::uint16_t>(i % 30), static_cast<std::uint16_t>(i % 20),
                      static_cast<std::uint8_t>(i & 1)});
        ++i;
    }
    return ev;
}

// An AEDAT 3.1 file (DVS128) of polarity events at x = i, y = 2i, ON for odd i, at `times`.
Bytes aedat31(const std::vector<std::uint32_t>& times) {
    using namespace evformer::test;
    Bytes b;
    put_text(b, "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n");
    const auto n = static_cast<std::uint32_t>(times.size());
    put_le16(b, 1);  // polarity packet
    put_le16(b, 1);
    put_le32(b, 8);
    put_le32(b, 4);
    put_le32(b, 0);
    put_le32(b, n);
    put_le32(b, n);
    put_le32(b, n);
    for (std::uint32_t i = 0; i < n; ++i) {
        put_le32(b, (i << 17) | ((2 * i) << 2) | ((i & 1) << 1) | 1);
        put_le32(b, times[i]);
    }
    return b;
}

}  // namespace

TEST_CASE("a flat folder of <id>.bs2 files and labels.txt is one split with its labels") {
    ScratchDir dir;
    const auto ev = events_at({10, 20, 30});
    for (const char* id : {"1", "2", "7"})
        write_event_file(dir / (std::string(id) + ".bs2"), ev, "nmnist");
    write_text_file(dir / "labels.txt", "#sample\t#class\n1\t5\n2  0\n7\t3\n");
    const auto ds = open_event_dataset(dir.path());
    CHECK(ds.kind == "flat");
    CHECK_FALSE(ds.has_split);
    CHECK(ds.sensor == Geometry{34, 34});
    REQUIRE(ds.train.size() == 3);
    CHECK(ds.train[0].path.filename() == "1.bs2");
    CHECK(ds.train[0].label == 5);
    CHECK(ds.train[1].label == 0);
    CHECK(ds.train[2].path.filename() == "7.bs2");
    CHECK(ds.train[2].label == 3);
    CHECK(ds.test.size() == 3);
    CHECK(ds.classes.size() == 6);  // 0..5
    CHECK(ds.load(ds.train[1]) == ev);
}

TEST_CASE("a flat folder whose labels.txt does not match the layout is refused naming the line") {
    ScratchDir dir;
    write_event_file(dir / "1.bs2", events_at({1, 2}), "nmnist");
    write_text_file(dir / "labels.txt", "1 4\n2 1\n");
    CHECK_THROWS_WITH_AS(open_event_dataset(dir.path()),
                         doctest::Contains("line 2: no recording '2.bs2'"), evformer::FileError);
    write_text_file(dir / "labels.txt", "1 four\n");
    CHECK_THROWS_WITH_AS(open_event_dataset(dir.path()),
                         doctest::Contains("line 1: expected '<id> <class>'"), evformer::FileError);
    write_text_file(dir / "labels.txt", "1 -3\n");
    CHECK_THROWS_AS(open_event_dataset(dir.path()), evformer::FileError);
    write_text_file(dir / "labels.txt", "1 2 9\n");
    CHECK_THROWS_AS(open_event_dataset(dir.path()), evformer::FileError);
    write_text_file(dir / "labels.txt", "# nothing\n");
    CHECK_THROWS_WITH_AS(open_event_dataset(dir.path()), doctest::Contains("no '<id> <class>'"),
                         evformer::FileError);
}

TEST_CASE("DVS128 Gesture: each labelled interval of a recording is one sample") {
    ScratchDir dir;
    // 10 events at t = 100, 200, …, 1000 µs
    std::vector<std::uint32_t> times(10);
    for (std::uint32_t i = 0; i < 10; ++i) times[i] = 100 * (i + 1);
    evformer::test::write_bytes(dir / "user01_led.aedat", aedat31(times));
    evformer::test::write_bytes(dir / "user24_led.aedat", aedat31(times));
    const std::string csv = "class,startTime_usec,endTime_usec\r\n3,200,500\r\n11,500,1001\r\n";
    write_text_file(dir / "user01_led_labels.csv", csv);
    write_text_file(dir / "user24_led_labels.csv", "class,startTime_usec,endTime_usec\n1,0,150\n");
    const auto ds = open_event_dataset(dir.path());
    CHECK(ds.kind == "dvs-gesture");
    CHECK(ds.classes.size() == 11);
    CHECK(ds.sensor == Geometry{128, 128});
    REQUIRE(ds.train.size() == 2);  // user 1 trains
    REQUIRE(ds.test.size() == 1);   // user 24 tests
    CHECK(ds.train[0].label == 2);
    CHECK(ds.train[1].label == 10);
    const auto first = ds.load(ds.train[0]);  // [200, 500): t = 200, 300, 400
    REQUIRE(first.size() == 3);
    CHECK(first[0].t == 200);
    CHECK(first[0].x == 1);
    CHECK(first[0].y == 2);
    CHECK(first[0].p == 1);
    CHECK(first[2].t == 400);
    CHECK(ds.load(ds.train[1]).size() == 6);  // 500 … 1000
    CHECK(ds.load(ds.test[0]).size() == 1);   // 100

    // the official lists, when present, decide the split
    write_text_file(dir / "trials_to_train.txt", "user24_led.aedat\n");
    write_text_file(dir / "trials_to_test.txt", "user01_led.aedat\n");
    const auto listed = open_event_dataset(dir.path());
    CHECK(listed.train.size() == 1);
    CHECK(listed.test.size() == 2);

    write_text_file(dir / "user01_led_labels.csv",
                    "class,startTime_usec,endTime_usec\n12,200,500\n");
    CHECK_THROWS_WITH_AS(open_event_dataset(dir.path()), doctest::Contains("class 1..11"),
                         evformer::FileError);
    std::filesystem::remove(dir / "user01_led_labels.csv");
    CHECK_THROWS_WITH_AS(open_event_dataset(dir.path()),
                         doctest::Contains("cannot open the label file"), evformer::FileError);
}

TEST_CASE("the per-class ratio split with a seed shuffles each class the same way every time") {
    ScratchDir dir;
    const auto ev = events_at({1, 2, 3});
    for (const char* cls : {"a", "b"}) {
        std::filesystem::create_directories(dir / cls);
        for (int i = 0; i < 10; ++i) write_event_file(dir / cls / (std::to_string(i) + ".bin"), ev);
    }
    EventDatasetOptions o;
    o.kind = "ncaltech101";
    o.train_ratio = 0.7;
    o.split_seed = 42;
    const auto a = open_event_dataset(dir.path(), o);
    const auto b = open_event_dataset(dir.path(), o);
    CHECK(a.train.size() == 14);
    CHECK(a.test.size() == 6);
    for (std::size_t i = 0; i < a.test.size(); ++i) CHECK(a.test[i].path == b.test[i].path);
    o.split_seed = 0;  // by name: 7, 8, 9 of each class test
    const auto by_name = open_event_dataset(dir.path(), o);
    CHECK(by_name.test[0].path.filename() == "7.bin");
    bool differs = false;
    for (std::size_t i = 0; i < a.test.size(); ++i)
        differs |= a.test[i].path != by_name.test[i].path;
    CHECK(differs);
}

TEST_CASE("binning a real N-MNIST recording by event count matches the hand computation") {
    // 60001.bs2 holds 3330 events (README of the shared data): T = 4 frames of ⌊3330/4⌋ = 832
    // events, the last taking the remainder 834.
    const auto path = data_dir / "nmnist_test100" / "60001.bs2";
    const auto events = read_event_file(path);
    REQUIRE(events.size() == 3330);
    SampleOptions o;
    o.data = (data_dir / "nmnist_test100").string();
    o.frames.frames = 4;
    o.limit = 1;
    const auto source = open_samples(o);
    CHECK(source->encoding() == SampleEncoding::event_frames);
    CHECK(source->shape() == SampleShape{2, 34, 34, 4});
    CHECK(source->size() == 1);
    CHECK(source->label(0) == 7);  // labels.txt: 60001 → 7
    const auto& sparse = source->events(0);
    std::vector<std::uint64_t> per_frame(4, 0);
    for (std::size_t t = 0; t < 4; ++t)
        for (auto e = sparse.frame_begin[t]; e < sparse.frame_begin[t + 1]; ++e)
            per_frame[t] += sparse.count[e];
    CHECK(per_frame == std::vector<std::uint64_t>{832, 832, 832, 834});
    // every pixel count, recomputed from the decoded events by the rule
    std::vector<float> expected(4 * 2 * 34 * 34, 0.f);
    for (std::size_t i = 0; i < events.size(); ++i) {
        const std::size_t t = std::min<std::size_t>(i / 832, 3);
        const auto& e = events[i];
        expected[((t * 2 + e.p) * 34 + e.y) * 34 + e.x] += 1;
    }
    std::vector<float> dense(source->dense_size());
    source->dense(0, dense.data());
    CHECK(dense == expected);
    CHECK(sparse.events() == 3330);
    CHECK(sparse.duration_us == 307827 - 5087);  // README: t 5087..307827
}

TEST_CASE("the binned cache returns what a fresh decode does, for both split rules") {
    for (auto rule : {SplitBy::number, SplitBy::time}) {
        SampleOptions o;
        o.data = (data_dir / "nmnist_test100").string();
        o.frames.frames = 8;
        o.frames.split_by = rule;
        o.limit = 6;
        const auto source = open_samples(o);
        const auto ds = open_event_dataset(o.data);
        REQUIRE(source->size() == 6);
        for (std::size_t i = 0; i < 6; ++i) {
            FrameOptions f = o.frames;
            const auto fresh = ds.frames(ds.test[i], f);
            std::vector<float> cached(source->dense_size());
            source->dense(i, cached.data());
            CHECK(cached == fresh.data);
            CHECK(source->label(i) == ds.test[i].label);
        }
    }
}

TEST_CASE("sparse frames round-trip through dense counts") {
    FrameTensor f;
    f.frames = 2;
    f.height = 2;
    f.width = 3;
    f.data.assign(2 * 2 * 2 * 3, 0.f);
    f.data[1] = 3;
    f.data[7] = 1;
    f.data[12] = 70000;  // saturates at 65535
    f.data[23] = 2;
    const auto s = SparseFrames::from_dense(f);
    CHECK(s.frame_begin == std::vector<std::uint32_t>{0, 2, 4});
    CHECK(s.index == std::vector<std::uint32_t>{1, 7, 0, 11});
    CHECK(s.count == std::vector<std::uint16_t>{3, 1, 65535, 2});
    std::vector<float> back(f.data.size(), -1.f);
    s.to_dense(back.data());
    f.data[12] = 65535;
    CHECK(back == f.data);
    CHECK(s.events() == 65541);
}

TEST_CASE("image sources give pixel/255 and refuse event access") {
    ImageDataset images;
    images.name = "tiny";
    images.count = 2;
    images.rows = 1;
    images.cols = 2;
    images.classes = 10;
    images.pixels = {0, 255, 51, 102};
    images.labels = {3, 9};
    const auto source = image_samples(images);
    CHECK(source->encoding() == SampleEncoding::static_image);
    CHECK(source->shape() == SampleShape{1, 1, 2, 0});
    float out[2];
    source->dense(1, out);
    CHECK(out[0] == 51.f / 255.f);
    CHECK(out[1] == 102.f / 255.f);
    CHECK(source->label(1) == 9);
    CHECK_THROWS_AS(source->events(0), evformer::ConfigError);
}

TEST_CASE("open_samples names what is wrong with --data") {
    ScratchDir dir;
    SampleOptions o;
    o.data = (dir / "missing").string();
    CHECK_THROWS_WITH_AS(open_samples(o), doctest::Contains("no such dataset"),
                         evformer::FileError);
    std::filesystem::create_directories(dir / "empty");
    o.data = (dir / "empty").string();
    CHECK_THROWS_WITH_AS(open_samples(o), doctest::Contains("cannot tell the dataset layout"),
                         evformer::FileError);
    o.data = (data_dir / "nmnist_test100").string();
    o.split = "valid";
    CHECK_THROWS_AS(open_samples(o), evformer::ConfigError);
    o.split = "test";
    o.frames.frames = 0;
    CHECK_THROWS_AS(open_samples(o), evformer::ConfigError);
}

TEST_CASE("bin_event_file reports the options it applied (sensor from the file, crop, size)") {
    FrameOptions o;
    o.frames = 2;
    o.crop_x = 2;
    o.out_width = 16;
    FrameOptions applied;
    const auto f = bin_event_file(data_dir / "evt3_gen41_hd_expelliarmus.raw", o, {}, &applied);
    CHECK(applied.sensor == Geometry{1280, 720});
    CHECK(applied.crop_width == 1278);
    CHECK(applied.crop_height == 720);
    CHECK(applied.out_width == 16);
    CHECK(applied.out_height == 720);
    CHECK(f.width == 16);
    CHECK(f.height == 720);
}
