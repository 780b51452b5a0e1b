// Frame binning on hand-worked event lists (both split rules, remainder, crop, down-sampling)
// and the dataset folder layouts.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <numeric>

#include "evformer/error.hpp"
#include "evformer/io/events.hpp"
#include "evformer/io/events_dataset.hpp"
#include "evformer/io/events_frames.hpp"
#include "evformer/io/h5.hpp"
#include "support.hpp"

using namespace evformer::io;
using evformer::test::ScratchDir;

namespace {

// Ten events at t = 0, 10, …, 90 on a 4×4 sensor; event i at pixel (i % 4, i / 4 % 4).
std::vector<Event> ten_events() {
    std::vector<Event> ev;
    for (int i = 0; i < 10; ++i)
        ev.push_back({i * 10, std::uint16_t(i % 4), std::uint16_t(i / 4 % 4), std::uint8_t(i % 2)});
    return ev;
}

float frame_total(const FrameTensor& f, std::size_t t) {
    const std::size_t per = 2 * f.height * f.width;
    return std::accumulate(f.data.begin() + long(t * per), f.data.begin() + long((t + 1) * per),
                           0.f);
}

WriterOptions with_sensor(std::uint32_t w, std::uint32_t h) {
    WriterOptions o;
    o.geometry = {w, h};
    return o;
}

FrameOptions frames_of(std::size_t t, Geometry sensor = {}) {
    FrameOptions o;
    o.frames = t;
    o.sensor = sensor;
    return o;
}

EventDatasetOptions dataset_kind(const std::string& kind, double ratio = 0.9) {
    EventDatasetOptions o;
    o.kind = kind;
    o.train_ratio = ratio;
    return o;
}

}  // namespace

TEST_CASE("split by number gives N/T events per frame and the remainder to the last") {
    FrameOptions o;
    o.frames = 3;
    o.sensor = {4, 4};
    const auto f = bin_events(ten_events(), o);
    CHECK(f.shape() == std::vector<std::size_t>{3, 2, 4, 4});
    CHECK(frame_total(f, 0) == 3);
    CHECK(frame_total(f, 1) == 3);
    CHECK(frame_total(f, 2) == 4);
    CHECK(f.at(0, 0, 0, 0) == 1);  // event 0: OFF at (0, 0)
    CHECK(f.at(0, 1, 0, 1) == 1);  // event 1: ON at (1, 0)
    CHECK(f.at(2, 1, 2, 1) == 1);  // event 9: ON at (1, 2)
}

TEST_CASE("fewer events than frames all land in the last frame, as SpikingJelly does") {
    FrameOptions o;
    o.frames = 16;
    o.sensor = {4, 4};
    const auto f = bin_events(ten_events(), o);
    for (std::size_t t = 0; t < 15; ++t) CHECK(frame_total(f, t) == 0);
    CHECK(frame_total(f, 15) == 10);
}

TEST_CASE("split by time uses equal durations and the last frame runs to the end") {
    FrameOptions o;
    o.frames = 4;
    o.sensor = {4, 4};
    o.split_by = SplitBy::time;
    // span 90 µs, dt = 22: [0,22) → t 0,10,20; [22,44) → 30,40; [44,66) → 50,60; rest → 70,80,90.
    const auto f = bin_events(ten_events(), o);
    CHECK(frame_total(f, 0) == 3);
    CHECK(frame_total(f, 1) == 2);
    CHECK(frame_total(f, 2) == 2);
    CHECK(frame_total(f, 3) == 3);
}

TEST_CASE("split by duration: bins of dt from the first event, events after T bins unused") {
    FrameOptions o;
    o.frames = 3;
    o.sensor = {4, 4};
    o.split_by = SplitBy::duration;
    o.dt_us = 25;
    // [0,25) → t 0,10,20; [25,50) → 30,40; [50,75) → 50,60,70; t 80, 90 are past 3 bins.
    const auto f = bin_events(ten_events(), o);
    CHECK(frame_total(f, 0) == 3);
    CHECK(frame_total(f, 1) == 2);
    CHECK(frame_total(f, 2) == 3);
    CHECK(f.duration_us == 74);
    CHECK(std::string(split_by_name(SplitBy::duration)) == "duration");
    o.dt_us = 0;
    CHECK_THROWS_AS(bin_events(ten_events(), o), evformer::ConfigError);
    // The pixel map FrameBinner uses is the one live streams use.
    o.dt_us = 1000;
    o.crop_x = 1;
    o.crop_width = 2;
    o.out_width = 1;
    const PixelMap map(resolve_frame_options(o));
    CHECK_FALSE(map.keeps(0, 0));
    CHECK(map.keeps(2, 3));
    CHECK_FALSE(map.keeps(3, 0));
    CHECK(map.out_x(2) == 0);
    CHECK(map.out_y(3) == 3);
}

TEST_CASE("down-sampling sums blocks and cropping drops events outside the window") {
    FrameOptions o;
    o.frames = 1;
    o.sensor = {4, 4};
    o.out_width = 2;
    o.out_height = 2;
    const auto f = bin_events(ten_events(), o);
    // Pixels: events 0..3 on row 0, 4..7 on row 1, 8..9 on row 2.
    CHECK(f.at(0, 0, 0, 0) == 2);  // OFF events 0, 4 at x 0
    CHECK(f.at(0, 1, 0, 0) == 2);  // ON events 1, 5
    CHECK(f.at(0, 0, 0, 1) == 2);  // OFF 2, 6
    CHECK(f.at(0, 1, 1, 0) == 1);  // ON 9
    o.crop_x = 2;
    o.crop_width = 2;
    o.out_width = 0;
    o.out_height = 0;
    const auto c = bin_events(ten_events(), o);
    CHECK(c.width == 2);
    CHECK(c.height == 4);
    CHECK(frame_total(c, 0) == 4);  // events 2, 3, 6, 7
    CHECK(c.at(0, 0, 0, 0) == 1);   // event 2 at x 2 → 0
}

TEST_CASE("invalid frame options are rejected with the rule") {
    FrameOptions o;
    o.sensor = {4, 4};
    o.frames = 0;
    CHECK_THROWS_AS(bin_events(ten_events(), o), evformer::ConfigError);
    o.frames = 2;
    o.crop_x = 3;
    o.crop_width = 2;
    CHECK_THROWS_AS(bin_events(ten_events(), o), evformer::ConfigError);
    o = {};
    CHECK_THROWS_AS(bin_events(ten_events(), o), evformer::ConfigError);  // sensor unknown
}

TEST_CASE("file binning streams two passes and writes the documented HDF5 tensor") {
    ScratchDir dir;
    write_event_file(dir / "e.h5", ten_events(), "", with_sensor(4, 4));
    FrameOptions o;
    o.frames = 3;
    const auto f = bin_event_file(dir / "e.h5", o);
    CHECK(f.data == bin_events(ten_events(), frames_of(3, {4, 4})).data);
    o.sensor = {4, 4};
    write_frames(dir / "f.h5", f, resolve_frame_options(o), "u16");
    h5::Reader r(dir / "f.h5");
    CHECK(r.shape("frames") == h5::Shape{3, 2, 4, 4});
    CHECK(r.dtype("frames") == h5::DType::u16);
    CHECK(r.attr_string("/", "format") == "evformer-frames");
}

TEST_CASE("a frame file's layout attribute decodes its data to the events binned (issue 14)") {
    // One ON event at (x 3, y 1) and one OFF event at (x 0, y 2) on a 5x4 sensor, one frame:
    // reading the file with nothing but its own layout attribute must find them there.
    ScratchDir dir;
    const std::vector<Event> ev{{0, 3, 1, 1}, {5, 0, 2, 0}};
    auto o = frames_of(1, {5, 4});
    write_frames(dir / "f.h5", bin_events(ev, o), resolve_frame_options(o), "f32");
    h5::Reader r(dir / "f.h5");
    const auto shape = r.shape("frames");
    const auto data = r.read<float>("frames");
    const auto layout = r.attr_string("/", "layout");
    std::vector<std::string> axes(1);  // comma-separated, commas inside (…) excepted
    int depth = 0;
    for (char c : layout) {
        depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        if (c == ',' && depth == 0)
            axes.emplace_back();
        else
            axes.back() += c;
    }
    REQUIRE(axes.size() == shape.size());
    std::size_t on = 99;  // the polarity index the file says is ON
    for (const auto& a : axes)
        if (a.rfind("polarity", 0) == 0) on = a.find("0=ON") != std::string::npos ? 0 : 1;
    REQUIRE(on < 2);
    std::vector<std::map<std::string, std::size_t>> found;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] == 0) continue;
        std::map<std::string, std::size_t> where;
        std::size_t rest = i;
        for (std::size_t k = shape.size(); k-- > 0;) {
            const auto name = axes[k].substr(0, axes[k].find('('));
            where[name] = rest % shape[k];
            rest /= shape[k];
        }
        found.push_back(where);
    }
    REQUIRE(found.size() == 2);
    for (const auto& w : found) {
        CHECK(w.at("T") == 0);
        if (w.at("polarity") == on) {
            CHECK(w.at("x") == 3);
            CHECK(w.at("y") == 1);
        } else {
            CHECK(w.at("x") == 0);
            CHECK(w.at("y") == 2);
        }
    }
}

TEST_CASE("dataset loaders index N-MNIST, class-folder and HDF5 layouts with their splits") {
    ScratchDir dir;
    const auto ev = ten_events();
    for (const char* split : {"Train", "Test"})
        for (const char* digit : {"0", "1"})
            for (int i = 0; i < 2; ++i) {
                std::filesystem::create_directories(dir / "nmnist" / split / digit);
                write_event_file(dir / "nmnist" / split / digit / (std::to_string(i) + ".bin"), ev);
            }
    auto nm = open_event_dataset(dir / "nmnist");
    CHECK(nm.kind == "nmnist");
    CHECK(nm.classes == std::vector<std::string>{"0", "1"});
    CHECK(nm.train.size() == 4);
    CHECK(nm.test.size() == 4);
    CHECK(nm.sensor == Geometry{34, 34});
    CHECK(nm.load(nm.train[3]) == ev);
    CHECK(nm.train[3].label == 1);
    CHECK(nm.frames(nm.test[0], frames_of(2)).shape() == std::vector<std::size_t>{2, 2, 34, 34});

    for (const char* cls : {"airplane", "cat"}) {
        std::filesystem::create_directories(dir / "caltech" / cls);
        std::filesystem::create_directories(dir / "h5" / cls);
        for (int i = 0; i < 10; ++i) {
            write_event_file(dir / "caltech" / cls / (std::to_string(i) + ".bin"), ev);
            write_event_file(dir / "h5" / cls / (std::to_string(i) + ".h5"), ev, "",
                             with_sensor(4, 4));
        }
    }
    auto cal = open_event_dataset(dir / "caltech", dataset_kind("auto", 0.8));
    CHECK(cal.kind == "ncaltech101");
    CHECK(cal.train.size() == 16);
    CHECK(cal.test.size() == 4);
    CHECK(cal.test[0].path.filename() == "8.bin");  // first 80 % by name train
    auto h5s = open_event_dataset(dir / "h5");
    CHECK(h5s.kind == "hdf5");
    CHECK(h5s.sensor == Geometry{4, 4});
    CHECK(h5s.train.size() == 18);
    CHECK_THROWS_AS(open_event_dataset(dir / "missing"), evformer::FileError);
    CHECK_THROWS_AS(open_event_dataset(dir / "h5", dataset_kind("bogus")), evformer::ConfigError);
}
