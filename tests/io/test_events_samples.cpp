// Every real recording in the shared sample folder decodes to its independently computed
// reference values (reference_summary.json), through large and through tiny buffers.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "evformer/io/events.hpp"

namespace fs = std::filesystem;
using namespace evformer::io;

namespace {

const fs::path data_dir{EVFORMER_EVENTS_DATA};

bool have_data() {
    if (fs::exists(data_dir / "reference_summary.json")) return true;
    MESSAGE("shared event samples not found at " << data_dir.string()
                                                 << " (set -DEVFORMER_EVENTS_DATA=…); skipped");
    return false;
}

nlohmann::json reference() {
    std::ifstream in(data_dir / "reference_summary.json");
    return nlohmann::json::parse(in);
}

// The statistics the reference lists, computed from decoded events.
struct Summary {
    std::uint64_t events = 0, n_on = 0, sum_x = 0, sum_y = 0, sum_t = 0;
    std::int64_t t_first = 0, t_last = 0;
    int x_min = 1 << 30, x_max = -1, y_min = 1 << 30, y_max = -1;
    bool monotonic = true;
    std::vector<Event> first5;
};

Summary summarise(EventReader& reader, std::size_t chunk_capacity) {
    Summary s;
    EventChunk chunk(chunk_capacity);
    while (reader.read(chunk) > 0) {
        for (const auto& e : chunk.events()) {
            if (s.events == 0) s.t_first = e.t;
            if (s.events > 0 && e.t < s.t_last) s.monotonic = false;
            s.t_last = e.t;
            if (s.first5.size() < 5) s.first5.push_back(e);
            ++s.events;
            s.n_on += e.p;
            s.sum_x += e.x;
            s.sum_y += e.y;
            s.sum_t += static_cast<std::uint64_t>(e.t);
            s.x_min = std::min<int>(s.x_min, e.x);
            s.x_max = std::max<int>(s.x_max, e.x);
            s.y_min = std::min<int>(s.y_min, e.y);
            s.y_max = std::max<int>(s.y_max, e.y);
        }
    }
    return s;
}

void check_against(const Summary& s, const nlohmann::json& ref) {
    CHECK(s.events == ref["events"].get<std::uint64_t>());
    CHECK(s.t_first == ref["t_first_us"].get<std::int64_t>());
    CHECK(s.t_last == ref["t_last_us"].get<std::int64_t>());
    CHECK(s.x_min == ref["x_min"].get<int>());
    CHECK(s.x_max == ref["x_max"].get<int>());
    CHECK(s.y_min == ref["y_min"].get<int>());
    CHECK(s.y_max == ref["y_max"].get<int>());
    CHECK(s.n_on == ref["n_on"].get<std::uint64_t>());
    CHECK(s.sum_x == ref["sum_x"].get<std::uint64_t>());
    CHECK(s.sum_y == ref["sum_y"].get<std::uint64_t>());
    CHECK(s.sum_t == ref["sum_t_mod2_64"].get<std::uint64_t>());
    CHECK(s.monotonic == ref["t_monotonic"].get<bool>());
    const auto& first = ref["first5"];
    REQUIRE(s.first5.size() == first.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
        CHECK(s.first5[i].t == first[i][0].get<std::int64_t>());
        CHECK(s.first5[i].x == first[i][1].get<int>());
        CHECK(s.first5[i].y == first[i][2].get<int>());
        CHECK(s.first5[i].p == first[i][3].get<int>());
    }
}

struct Sample {
    const char* file;
    const char* format;
    Geometry geometry;
};

const Sample samples[] = {
    {"nmnist_sample_tonic.bin", "nmnist", {}},
    {"ncaltech101_faces_easy_0001.bin", "nmnist", {}},
    {"evt2_gen3_vga_expelliarmus.raw", "evt2", {640, 480}},
    {"evt2_gen3_vga_faery.raw", "evt2", {640, 480}},
    {"evt3_gen41_hd_expelliarmus.raw", "evt3", {1280, 720}},
    {"aedat4_dvxplorer_320x240_tonic.aedat4", "aedat4", {320, 240}},
    {"aedat4_davis346_trimmed_evl.aedat4", "aedat4", {346, 260}},
    {"dat_ncars_atis_tonic.dat", "dat", {}},
    {"dsec_layout_from_evt3_gen41_hd.h5", "hdf5-dsec", {1280, 720}},
};

}  // namespace

TEST_CASE("every shared sample decodes to its reference values") {
    if (!have_data()) return;
    const auto ref = reference();
    for (const auto& sample : samples) {
        SUBCASE(sample.file) {
            INFO(std::string(sample.file));
            auto reader = open_event_file(data_dir / sample.file);
            CHECK(reader->format_name() == sample.format);
            CHECK(reader->geometry() == sample.geometry);
            const auto s = summarise(*reader, 1 << 16);
            check_against(s, ref[sample.file]);
            CHECK(reader->violations().total() == 0);
        }
    }
}

TEST_CASE("samples decode identically through tiny buffers and chunks that split records") {
    if (!have_data()) return;
    const auto ref = reference();
    for (const auto& sample : samples) {
        for (std::size_t buffer : {std::size_t{17}, std::size_t{4099}}) {
            INFO(std::string(sample.file) << " buffer " << buffer);
            ReaderOptions opt;
            opt.buffer_bytes = buffer;
            auto reader = open_event_file(data_dir / sample.file, opt);
            check_against(summarise(*reader, 100), ref[sample.file]);
        }
    }
}

TEST_CASE("aedat4 reader skips frame, IMU and trigger packets and counts them") {
    if (!have_data()) return;
    auto reader = open_event_file(data_dir / "aedat4_davis346_trimmed_evl.aedat4");
    read_all(*reader);
    const auto& skipped = reader->skipped();
    CHECK(skipped.count("FRME packets") == 1);
    CHECK(skipped.count("IMUS packets") == 1);
    CHECK(skipped.at("FRME packets") > 0);
}

TEST_CASE("the 100 SLAYER .bs2 files decode to the reference totals") {
    if (!have_data()) return;
    const auto ref = reference()["nmnist_test100/"];
    std::uint64_t total = 0, min_events = ~0ull, max_events = 0;
    int files = 0;
    for (const auto& entry : fs::directory_iterator(data_dir / "nmnist_test100")) {
        if (entry.path().extension() != ".bs2") continue;
        auto reader = open_event_file(entry.path());
        CHECK(reader->format_name() == "nmnist");
        const auto s = summarise(*reader, 4096);
        CHECK(s.x_max <= 33);
        CHECK(s.y_max <= 33);
        CHECK(s.t_last - s.t_first <= ref["max_span_us"].get<std::int64_t>());
        total += s.events;
        min_events = std::min(min_events, s.events);
        max_events = std::max(max_events, s.events);
        ++files;
        if (entry.path().stem() == "60001") check_against(s, ref["60001"]);
    }
    CHECK(files == ref["files"].get<int>());
    CHECK(total == ref["events"].get<std::uint64_t>());
    CHECK(min_events == ref["min_events"].get<std::uint64_t>());
    CHECK(max_events == ref["max_events"].get<std::uint64_t>());
}
